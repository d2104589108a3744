"""The multiply-accumulate processing element of the weight-stationary array."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fpu import FloatProductPipe, fp32_add
from .multiplier import PipelinedMultiplier

__all__ = ["WeightStationaryPE"]


class WeightStationaryPE(wiring.Component):
    """Holds two weights (one in use, one being loaded); multiplies the passing activation by the weight its
    ``bank`` tag selects, and adds the product to the partial sum coming from above.

    Every step is registered for Fmax, and every crossing between the fabric and the hard multiplier has a
    cycle of its own (on a large array the placer cannot keep every DSP next to its PE): the activation
    (``act_out``) and the bank-selected weight (``weight``) are registered in the fabric, then enter the
    `PipelinedMultiplier` (on ECP5 a MULT18X18D with its own input and output registers), whose product is
    registered once more in the fabric (``product_d``) before the adder.

    Everything advances only in cycles with ``en`` (1 when left unconnected). No register is reset: each holds
    data that is read only after a slot has written it (the array's control rides beside it, reset).

    Per cycle: ``act_out``/``bank_out`` = ``act_in``/``bank_in`` delayed 1; ``weight`` = ``w[bank_in]`` delayed 1
    (the banks as they are in the cycle ``act_in`` arrives); ``product`` = ``act_out * weight`` delayed 2 (the
    multiplier), i.e. ``act_in * w[bank_in]`` delayed 3; ``product_d`` = ``product`` delayed 1; ``psum_out`` =
    ``psum_in + product_d`` delayed 1.

    Float form (``fmt="bf16"``/``"fp16"``, `hwgen.floats`): the operands are 16-bit patterns, the multiplier is
    a `fpu.FloatProductPipe` (the significands on the same `PipelinedMultiplier`, the same two cycles) giving
    the exact fp32 product, and the adder is a combinational `fpu.Fp32Adder` (round to nearest even): the same
    registers and the same cycle timing, with the fp32 add as the PE's longest path.

    ``multiplier_cell=False``: the integer product from logic (`PipelinedMultiplier`'s ``cell=False``) instead of
    the device's hard multiplier, for PEs beyond a device's multiplier count; same cycles, same values. Its
    three stages of adders (``stages=3``) take the operand, product and ``product_d`` registers' places: the
    last stage is ``product_d``.
    """

    LATENCY = 4      # act_in -> product_d register; psum_in -> psum_out is 1

    def __init__(self, *, act_shape, weight_shape, psum_shape, fmt=None, multiplier_cell=True):
        self.act_shape, self.weight_shape, self.psum_shape = act_shape, weight_shape, psum_shape
        self.fmt, self.multiplier_cell = fmt, multiplier_cell
        super().__init__({
            "act_in": In(act_shape), "bank_in": In(1),
            "act_out": Out(act_shape), "bank_out": Out(1),
            "psum_in": In(psum_shape), "psum_out": Out(psum_shape),
            # weight load: when load_en, bank load_bank takes load_data
            "load_en": In(1), "load_bank": In(1), "load_data": In(weight_shape),
            "en": In(1, init=1),
        })

    def elaborate(self, platform):
        if self.fmt is not None and not self.multiplier_cell:
            raise ValueError("a float PE's significands always take the hard multiplier (multiplier_cell=True)")
        m = Module()
        # Data registers without reset (`reset_less`): nothing reads them before a valid slot has written them,
        # and a reset net to every PE register was most of the 8x8's 9,228 reset loads (router1's most re-routed
        # net, which it at times never finished routing). The operand, bank and sum registers likewise.
        weights = [Signal(self.weight_shape, name=f"w{bank}", reset_less=True) for bank in range(2)]
        selected = Signal(self.weight_shape, name="weight", reset_less=True)
        act_reg = Signal(self.act_shape, name="act", reset_less=True)
        bank_reg = Signal(name="bank", reset_less=True)
        psum_reg = Signal(self.psum_shape, name="psum", reset_less=True)
        m.d.comb += [self.act_out.eq(act_reg), self.bank_out.eq(bank_reg), self.psum_out.eq(psum_reg)]
        if self.fmt is None:
            # In logic, the multiplier's third adder stage is the product register (``product_d``).
            m.submodules.multiplier = multiplier = PipelinedMultiplier(
                a_shape=self.act_shape, b_shape=self.weight_shape, cell=self.multiplier_cell,
                stages=2 if self.multiplier_cell else 3)
            p_shape = multiplier.p_shape
        else:
            m.submodules.multiplier = multiplier = FloatProductPipe(self.fmt)
            p_shape = 32
        m.d.comb += [multiplier.a.eq(self.act_out), multiplier.b.eq(selected), multiplier.en.eq(self.en)]
        product_d = Signal(p_shape, reset_less=True)
        logic_product = self.fmt is None and not self.multiplier_cell
        if logic_product:
            product_d = multiplier.p
        total = (self.psum_in + product_d if self.fmt is None
                 else fp32_add(m, self.psum_in, product_d, "adder"))
        with m.If(self.en):
            for bank, weight in enumerate(weights):
                with m.If(self.load_en & (self.load_bank == bank)):
                    m.d.sync += weight.eq(self.load_data)
            m.d.sync += [
                act_reg.eq(self.act_in),
                bank_reg.eq(self.bank_in),
                selected.eq(Mux(self.bank_in, weights[1], weights[0])),
                *([] if logic_product else [product_d.eq(multiplier.p)]),
                psum_reg.eq(total),
            ]
        return m
