"""Two weight-stationary PEs of one row, in neighbouring columns, sharing one hard multiplier.

A hard multiplier is far wider than a narrow product: an ECP5 MULT18X18D multiplies two 18-bit operands, and an
int8 activation times an int4 weight needs 12 bits of its 36. Two such products with the same activation fit
one multiply: with ``P`` the product width (``act bits + weight bits``),

    a * (w1 * 2**P + w0) = (a * w1) * 2**P + a * w0,

and ``a * w0`` fits ``P`` bits, so the low ``P`` bits of the packed product are ``a * w0`` and the rest is
``a * w1`` (for signed products, plus one when the low part is negative: ``hi = p >> P`` floors, and ``lo`` was
borrowed from it). The packed weight ``w1 * 2**P + w0`` needs ``weight bits + P`` bits (one more when the
weights are unsigned, to stay a signed operand): int8 x int4 is 8 x 16 bits, inside the 18 x 18 of a
MULT18X18D (and the 16 x 16 of an iCE40 SB_MAC16). int8 x int8 is not (8 x 24: Yosys would spread it over two
multipliers, no saving; `pair_weight_shape` says which types pair). Every product is exact; nothing is
approximated.

The two PEs share the activation: the left PE's registered activation (``act_a``) feeds the multiplier for both,
so the right PE (column ``2k + 1``) multiplies one cycle earlier than it would on its own, and so does every PE
of its column: that column's sum leaves the bottom one cycle early, and the array's de-skew holds it one cycle
longer (`systolic.SystolicArray`). The array's latency and every cycle outside it are unchanged. The
activation still travels through both PEs' registers (``act_a``, ``act_b``) to the next pair.

The weight banks hold each pair's weights already packed for the multiplier: ``w0`` as it is (``W`` bits) and
``hi = w1 - (w0 < 0)`` (``W + 1`` bits; the borrow taken at load time), so the packed operand is wiring: the
bits of ``w0``, ``w0``'s sign repeated up to bit ``P``, then ``hi``. No adder sits in front of the multiplier.

Per cycle, with ``en`` (1 when left unconnected): ``act_a``/``bank_a`` = ``act_in``/``bank_in`` delayed 1,
``act_b``/``bank_b`` (the outputs ``act_out``/``bank_out``) delayed 2; ``psum0_out = psum0_in + act_in * w0`` and
``psum1_out = psum1_in + act_in * w1`` delayed 5 (the weights those of bank ``bank_in``): the left PE's timing
(`pe.WeightStationaryPE`: operands, the multiplier's two registers, the split products, the adders), for both.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .multiplier import PipelinedMultiplier, product_shape

__all__ = ["PackedPEPair", "pair_weight_shape"]


def pair_weight_shape(act_shape, weight_shape, *, operand_bits):
    """The packed weight operand's shape when two ``act_shape`` x ``weight_shape`` products fit one multiplier of
    signed ``operand_bits``-bit operands, else ``None``."""
    act_shape, weight_shape = Shape.cast(act_shape), Shape.cast(weight_shape)
    p_bits = product_shape(act_shape, weight_shape).width
    packed = signed(weight_shape.width + 1 + p_bits)     # hi (W + 1 bits, signed) above P bits of w0
    if act_shape.width + (0 if act_shape.signed else 1) > operand_bits or packed.width > operand_bits:
        return None
    return packed


class PackedPEPair(wiring.Component):
    LATENCY = 4      # act_in -> the split products' registers, as `WeightStationaryPE.LATENCY`

    def __init__(self, *, act_shape, weight_shape, psum_shape, operand_bits=18, multiplier_cell=True):
        self.act_shape, self.weight_shape = Shape.cast(act_shape), Shape.cast(weight_shape)
        self.psum_shape = Shape.cast(psum_shape)
        self.multiplier_cell = multiplier_cell
        self.packed_shape = pair_weight_shape(act_shape, weight_shape, operand_bits=operand_bits)
        if self.packed_shape is None:
            raise ValueError(f"two {self.act_shape} x {self.weight_shape} products do not fit one multiplier of "
                             f"{operand_bits}-bit operands: pair PEs only for weights of at most "
                             f"(operand bits - act bits) / 2 - 1 bits (int8 activations: int4 weights)")
        self.product_bits = product_shape(act_shape, weight_shape)
        super().__init__({
            "act_in": In(act_shape), "bank_in": In(1),
            "act_out": Out(act_shape), "bank_out": Out(1),
            "psum0_in": In(psum_shape), "psum0_out": Out(psum_shape),
            "psum1_in": In(psum_shape), "psum1_out": Out(psum_shape),
            # weight load: when load_en, bank load_bank of both PEs takes load_data (w0 low, w1 high)
            "load_en": In(1), "load_bank": In(1), "load_data": In(unsigned(2 * self.weight_shape.width)),
            "en": In(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        wbits, p = self.weight_shape.width, self.product_bits
        pbits = p.width
        w_in0 = self.load_data[:wbits].as_signed() if self.weight_shape.signed else self.load_data[:wbits]
        w_in1 = self.load_data[wbits:].as_signed() if self.weight_shape.signed else self.load_data[wbits:]
        # Per bank: w0 as loaded, and hi = w1 - (w0 < 0), the packed operand's upper part.
        low = [Signal(self.weight_shape, name=f"w0_{bank}", reset_less=True) for bank in range(2)]
        high = [Signal(signed(wbits + 1), name=f"hi_{bank}", reset_less=True) for bank in range(2)]
        sel_low = Signal(self.weight_shape, name="weight0", reset_less=True)
        sel_high = Signal(signed(wbits + 1), name="weight_hi", reset_less=True)
        act_a = Signal(self.act_shape, name="act_a", reset_less=True)
        bank_a = Signal(name="bank_a")
        m.submodules.multiplier = multiplier = PipelinedMultiplier(
            a_shape=self.act_shape, b_shape=self.packed_shape, cell=self.multiplier_cell)
        sign = sel_low[-1] if self.weight_shape.signed else 0
        packed = Cat(sel_low, *([sign] * (pbits - wbits)), sel_high)
        m.d.comb += [multiplier.a.eq(act_a), multiplier.b.eq(packed.as_signed()), multiplier.en.eq(self.en)]
        # The split: lo = the low P bits (signed when the products are), hi = the rest, plus the borrow.
        prod = multiplier.p
        lo = prod[:pbits].as_signed() if p.signed else prod[:pbits]
        hi = (prod[pbits:].as_signed() + prod[pbits - 1])[:pbits] if p.signed else prod[pbits:2 * pbits]
        product0 = Signal(p, name="product0_d", reset_less=True)
        product1 = Signal(p, name="product1_d", reset_less=True)
        borrow = w_in0[-1] if self.weight_shape.signed else 0
        with m.If(self.en):
            for bank in range(2):
                with m.If(self.load_en & (self.load_bank == bank)):
                    m.d.sync += [low[bank].eq(w_in0), high[bank].eq(w_in1 - borrow)]
            m.d.sync += [
                act_a.eq(self.act_in), bank_a.eq(self.bank_in),
                self.act_out.eq(act_a), self.bank_out.eq(bank_a),
                sel_low.eq(Mux(self.bank_in, low[1], low[0])),
                sel_high.eq(Mux(self.bank_in, high[1], high[0])),
                product0.eq(lo), product1.eq(hi.as_signed() if p.signed else hi),
                self.psum0_out.eq(self.psum0_in + product0),
                self.psum1_out.eq(self.psum1_in + product1),
            ]
        return m
