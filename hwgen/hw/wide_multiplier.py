"""A multiplier for operands wider than one hard multiplier: 18-bit tiles and a registered adder tree.

Each operand is cut into 17-bit unsigned low parts and a top part of at most 18 bits (signed when the operand
is), so that every partial product fits one `PipelinedMultiplier` (on ECP5 a MULT18X18D with its own registers;
unsigned parts are zero-extended to 18 signed bits). The partial products, each with its weight ``2**(17*(i+j))``,
are summed in two registered levels: adjacent pairs, then the rest. An addition of two terms of different
weights only adds where they overlap; the low bits of the lighter one pass by (short carry chains).

In every cycle with ``en`` everything advances one stage: ``p`` is ``a * b`` of `LATENCY` enabled cycles before,
exact (``p_shape`` holds any product). Yosys would split a wide ``*`` into the same tiles, but with the partial
products' sum in the multiplier's cycle; this keeps every carry chain in a cycle of its own.

On iCE40 (`target.family(platform) == "ice40"`) the product is one registered ``*`` delayed to the same
latency: Yosys tiles it over SB_MAC16 (16x16, signedness per operand) with fewer cells than 18-bit signed tiles
would take (4 for 33x32, where these tiles would take 9), and that device's clock is not set by it.
"""

from amaranth.hdl import Cat, Module, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import target
from .library import shared_body
from .multiplier import PipelinedMultiplier, product_shape

__all__ = ["WideMultiplier", "operand_parts"]

_LOW_BITS = 17      # an unsigned part, zero-extended, is an 18-bit signed operand
_TOP_BITS = 18


def operand_parts(shape):
    """``[(lsb, shape)]`` of the parts ``shape`` is cut into: 17-bit unsigned ones, then the top one."""
    shape = Shape.cast(shape)
    top_limit = _TOP_BITS if shape.signed else _LOW_BITS
    parts, lsb = [], 0
    while shape.width - lsb > top_limit:
        parts.append((lsb, unsigned(_LOW_BITS)))
        lsb += _LOW_BITS
    width = shape.width - lsb
    parts.append((lsb, signed(width) if shape.signed else unsigned(width)))
    return parts


def _add_weighted(m, first, second):
    """``first + second`` of two ``(value, weight_bits)`` terms, adding only where they overlap."""
    (a, a_shift), (b, b_shift) = sorted([first, second], key=lambda term: term[1])
    gap = b_shift - a_shift
    if gap == 0:
        return a + b, a_shift
    if len(a) <= gap:                 # extended, so that `a >> gap` carries its sign
        wider = Signal(Shape(gap + 1, a.shape().signed))
        m.d.comb += wider.eq(a)
        a = wider
    high = (a >> gap) + b
    combined = Cat(a[:gap], high)
    return (combined.as_signed() if high.shape().signed else combined), a_shift


class WideMultiplier(wiring.Component):
    LATENCY = PipelinedMultiplier.LATENCY + 2      # the tiles, then two adder levels

    def __init__(self, *, a_shape, b_shape):
        self.a_shape, self.b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self.p_shape = product_shape(self.a_shape, self.b_shape)
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape), "en": In(1, init=1),
                          "p": Out(self.p_shape)})

    @property
    def tiles(self):
        """How many 18-bit tiles (hard multipliers on ECP5): one per pair of parts."""
        return len(operand_parts(self.a_shape)) * len(operand_parts(self.b_shape))

    def elaborate(self, platform):
        key = tuple((shape.width, shape.signed) for shape in (self.a_shape, self.b_shape))
        shared = shared_body(self, platform, kind="wide_multiplier", key=key,
                             make=lambda: WideMultiplier(a_shape=self.a_shape, b_shape=self.b_shape),
                             name="multiplier")
        if shared is not None:      # one module for every multiplier of these shapes (`library`)
            return shared
        m = Module()
        if target.family(platform) == "ice40":
            m.submodules.product = whole = PipelinedMultiplier(a_shape=self.a_shape, b_shape=self.b_shape)
            m.d.comb += [whole.a.eq(self.a), whole.b.eq(self.b), whole.en.eq(self.en)]
            value = whole.p
            for level in range(self.LATENCY - PipelinedMultiplier.LATENCY):
                delayed = Signal(self.p_shape, name=f"product_{level}", reset_less=True)
                with m.If(self.en):
                    m.d.sync += delayed.eq(value)
                value = delayed
            m.d.comb += self.p.eq(value)
            return m
        terms = []
        for i, (a_lsb, a_part) in enumerate(operand_parts(self.a_shape)):
            for j, (b_lsb, b_part) in enumerate(operand_parts(self.b_shape)):
                tile = PipelinedMultiplier(a_shape=a_part, b_shape=b_part)
                m.submodules[f"tile_{i}_{j}"] = tile
                m.d.comb += [tile.a.eq(self.a[a_lsb:a_lsb + a_part.width]),
                             tile.b.eq(self.b[b_lsb:b_lsb + b_part.width]), tile.en.eq(self.en)]
                terms.append((tile.p, a_lsb + b_lsb))
        terms.sort(key=lambda term: term[1])

        def register(level, index, term):
            value, weight = term
            reg = Signal(value.shape(), name=f"sum{level}_{index}", reset_less=True)
            with m.If(self.en):
                m.d.sync += reg.eq(value)
            return reg, weight

        # Level 1: adjacent pairs (in weight order); level 2: all the rest.
        pairs = [terms[k:k + 2] for k in range(0, len(terms), 2)]
        level1 = [register(1, k, pair[0] if len(pair) == 1 else _add_weighted(m, *pair))
                  for k, pair in enumerate(pairs)]
        total = level1[0]
        for term in level1[1:]:
            total = _add_weighted(m, total, term)
        value, weight = total
        product = Signal(self.p_shape, reset_less=True)
        with m.If(self.en):
            m.d.sync += product.eq(value << weight)
        m.d.comb += self.p.eq(product)
        return m
