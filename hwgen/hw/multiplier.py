"""A multiplier with registered operands and a registered product, both stages advancing with ``en``.

In every cycle with ``en``: the operand registers take ``a`` and ``b``, the product register takes their
product; so ``p`` is ``a * b`` of two enabled cycles before (`LATENCY`; three for the logic form's
``stages=3``). The product is exact (``p_shape``
holds any product of the operand shapes).

Generic form: Amaranth registers around a ``*`` (Yosys infers the hard multiplier, but never folds fabric
flip-flops into it, so the DSP sits combinationally between two routes). ECP5 form
(`target.family(platform) == "ecp5"`, unless the platform asks for no multiplier cells): a MULT18X18D instance with its input and output registers on
(``REG_INPUTA/B``, ``REG_OUTPUT`` on CLK0, clock-enabled by CE0 = ``en``). Logic form (``cell=False``, on
any platform): the product from LUTs and carry chains, for the multipliers a device has no hard cell left for
(a 16x16 array on the ECP5-85F: 256 PEs, 156 MULT18X18D). It is written as partial products, not ``*``, so
that synthesis cannot map it to a hard multiplier anyway: one partial product per bit of ``b`` (``a`` where the
bit is set; a signed ``b``'s top bit subtracts), taken from ``a`` and ``b`` directly (the PE has registered them).
Stage 1 registers neighbouring partial products added in pairs, each at its own weight (one narrow adder, an AND
gate in front); stage 2 registers the product, the pairs' sums added in a tree. With ``stages=3`` (the PE's
form, whose next register it replaces: `pe.WeightStationaryPE`) stage 2 registers the pairs' sums added in
pairs again and stage 3 the product, so every stage is one carry chain (on ECP5 about 60 LUT4 and 42 carry cells
for int8 x int8, against 170 and 22 when the partial products were summed four at a time, and from 139 to 163
MHz in a 4-PE column alone). ``LATENCY`` is ``stages``. The forms with two stages behave the same cycle for
cycle; no register here is reset (nothing consumes a product before operands have passed through).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import target

__all__ = ["PipelinedMultiplier", "product_shape"]

_MULT18_BITS = 18


def product_shape(a_shape, b_shape):
    """The shape that holds every product of ``a_shape`` and ``b_shape`` values."""
    a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
    return Shape(a_shape.width + b_shape.width, a_shape.signed or b_shape.signed)


class PipelinedMultiplier(wiring.Component):
    LATENCY = 2

    def __init__(self, *, a_shape, b_shape, cell=True, stages=2):
        if not isinstance(cell, bool):
            raise TypeError(f"cell must be True (a hard multiplier where the platform has one) or False (from "
                            f"logic), not {cell!r}")
        if stages not in (2, 3) or (stages == 3 and cell):
            raise ValueError(f"stages must be 2, or 3 for the logic form (cell=False), not {stages!r}")
        self.a_shape, self.b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self.cell, self.stages = cell, stages
        self.LATENCY = stages
        self.p_shape = product_shape(self.a_shape, self.b_shape)
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape), "en": In(1, init=1),
                          "p": Out(self.p_shape)})

    @staticmethod
    def _fits_mult18(shape):
        """As a signed 18-bit operand (unsigned values are zero-extended)."""
        return shape.width + (0 if shape.signed else 1) <= _MULT18_BITS

    def elaborate(self, platform):
        if not self.cell:
            return self._elaborate_logic()
        if (target.multiplier_cells(platform) and target.family(platform) == "ecp5"
                and self._fits_mult18(self.a_shape)
                and self._fits_mult18(self.b_shape)):
            return self._elaborate_ecp5()
        m = Module()
        a, b = Signal(self.a_shape, reset_less=True), Signal(self.b_shape, reset_less=True)
        p = Signal(self.p_shape, reset_less=True)
        with m.If(self.en):
            m.d.sync += [a.eq(self.a), b.eq(self.b), p.eq(a * b)]
        m.d.comb += self.p.eq(p)
        return m

    def _elaborate_logic(self):
        m = Module()
        p_shape, width = self.p_shape, self.p_shape.width
        a = self.a.as_signed() if self.a_shape.signed else self.a
        # One partial product per bit of b, ``a << k`` where bit k is set; a signed b's top bit weighs -2**k.
        bits = self.b_shape.width
        partials = []
        for k in range(bits):
            term = Mux(self.b[k], a, 0)
            partials.append((k, -term if self.b_shape.signed and k == bits - 1 else term))
        # Stage 1: neighbouring partial products in pairs (one adder each, at their own weight);
        # stage 2: the pairs' sums in a tree, registered as the product.
        pairs = []
        for n in range(0, bits, 2):
            group = partials[n:n + 2]
            low = group[0][0]
            value = sum((t.shift_left(k - low) for k, t in group), Const(0, 1))
            reg = Signal(Shape(width - low, p_shape.signed), name=f"pair_{n // 2}", reset_less=True)
            with m.If(self.en):
                m.d.sync += reg.eq(value)
            pairs.append((low, reg))
        p = Signal(p_shape, reset_less=True)
        level = [r.shift_left(low) for low, r in pairs]
        if self.stages == 3:
            # Stage 2: the pairs' sums in pairs again, registered; stage 3 adds those.
            halves = []
            for n in range(0, len(pairs), 2):
                group = pairs[n:n + 2]
                low = group[0][0]
                value = sum((r.shift_left(k - low) for k, r in group), Const(0, 1))
                reg = Signal(Shape(width - low, p_shape.signed), name=f"quad_{n // 2}", reset_less=True)
                with m.If(self.en):
                    m.d.sync += reg.eq(value)
                halves.append(reg.shift_left(low))
            level = halves
        while len(level) > 1:
            level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        with m.If(self.en):
            m.d.sync += p.eq(level[0])
        m.d.comb += self.p.eq(p[:width])
        return m

    def _elaborate_ecp5(self):
        m = Module()
        # Both operands as signed 18-bit values (unsigned ones zero-extended): the 36-bit product is exact.
        a18, b18 = Signal(signed(_MULT18_BITS)), Signal(signed(_MULT18_BITS))
        p36 = Signal(signed(2 * _MULT18_BITS))
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36[:self.p_shape.width])]
        ports = {}
        for k in range(_MULT18_BITS):
            ports[f"i_A{k}"], ports[f"i_B{k}"], ports[f"i_C{k}"] = a18[k], b18[k], Const(0)
        for k in range(2 * _MULT18_BITS):
            ports[f"o_P{k}"] = p36[k]
        # nextpnr allows four distinct CLK/CE/RST nets per DSP block of four MULT18X18D, and a CE pin tied to 0
        # is one more net: the unused CE1-3 carry the same enable, so four multipliers with their own enables
        # share a block (with them tied low, at most three could, and a 12x12 array never legalised).
        m.submodules.mult = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            i_CLK0=ClockSignal(), i_CLK1=0, i_CLK2=0, i_CLK3=0,
            i_CE0=self.en, i_CE1=self.en, i_CE2=self.en, i_CE3=self.en,
            i_RST0=0, i_RST1=0, i_RST2=0, i_RST3=0,
            i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
            **ports)
        return m
