"""Floating-point arithmetic for the float datapath, bit-exact to `hwgen.floats` (the golden model, whose module
documentation states the numeric policy: exact products, round-to-nearest-even fp32 additions, subnormals
flushed, IEEE infinities, one canonical NaN).

* `Fp32Adder`: a combinational fp32 adder (swap by magnitude, align with guard/round/sticky bits, add or subtract,
  leading-zero normalise, round to nearest even, flush/overflow/special cases). One adder is a few hundred
  LUTs and a long combinational path (align shifter, 28-bit carry chain, 27-bit normalising shifter, rounding
  increment): the float PE keeps the integer PE's cycle timing, at a lower Fmax.
* `FloatProductPipe`: the PE's multiplier for bf16/fp16 operands - the significand product on the
  `PipelinedMultiplier` (so it maps to the same hard multiplier, with the same two-cycle latency), sign and
  exponent in registers beside it, and the exact fp32 product packed from them.
* `fp32_relu`, `fp32_max`: the post-op chain's comparisons.
* `fp32_mul_operands`/`fp32_mul_round`: the post-op chain's fp32 multiply (the requantization scale), split
  around a pipelined 24 x 24 significand multiplier; `fp32_round_to`/`fp32_to_format`: the narrowing to
  bf16/fp16 (round to nearest even, flush, overflow to infinity).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..floats import CANONICAL_NAN, FORMATS
from .multiplier import PipelinedMultiplier

__all__ = ["Fp32Adder", "FloatProductPipe", "float_product", "fp32_add", "fp32_relu", "fp32_max", "fp32_max_flags",
           "fp32_max_choice", "fp32_is_nan",
           "fp32_mul_operands", "fp32_mul_round", "fp32_round_to", "fp32_to_format"]


def fp32_is_nan(x):
    return (x[23:31] == 0xFF) & (x[0:23] != 0)


class Fp32Adder(wiring.Component):
    """``s = a + b`` (fp32 bit patterns), combinational."""

    def __init__(self):
        super().__init__({"a": In(32), "b": In(32), "s": Out(32)})

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        ea, eb = a[23:31], b[23:31]
        a_nan, b_nan = fp32_is_nan(a), fp32_is_nan(b)
        a_inf, b_inf = (ea == 0xFF) & (a[0:23] == 0), (eb == 0xFF) & (b[0:23] == 0)
        a_zero, b_zero = ea == 0, eb == 0          # zero or subnormal (read as zero)

        # The generic path: both normal and finite. big >= small in magnitude.
        swap = Signal()
        m.d.comb += swap.eq(b[0:31] > a[0:31])
        big, small = Signal(32), Signal(32)
        m.d.comb += [big.eq(Mux(swap, b, a)), small.eq(Mux(swap, a, b))]
        e_big, e_small = big[23:31], small[23:31]
        diff = Signal(8)
        m.d.comb += diff.eq(e_big - e_small)
        shift = Signal(5)
        m.d.comb += shift.eq(Mux(diff > 27, 27, diff))
        big_ext = Cat(Const(0, 3), big[0:23], Const(1, 1))         # 1.f with guard, round, sticky: 27 bits
        small_ext = Cat(Const(0, 3), small[0:23], Const(1, 1))
        shifted = Signal(27)
        m.d.comb += shifted.eq(small_ext >> shift)
        # Sticky: a set bit was shifted out exactly when the shift exceeds the trailing zeros of small_ext (3 + those
        # of 1.f: at most 26), a priority encoder and a compare instead of a masked OR over a second shifter.
        trailing = Signal(5)
        m.d.comb += trailing.eq(26)
        for i in reversed(range(23)):           # the lowest set bit wins (the last assignment)
            with m.If(small[i]):
                m.d.comb += trailing.eq(3 + i)
        sticky = shift > trailing
        aligned = Signal(27)
        m.d.comb += aligned.eq(shifted | sticky)
        subtract = big[31] ^ small[31]
        # One adder: big + aligned, or big + ~aligned + 1 (= big - aligned >= 0, its carry out dropped).
        raw = Signal(28)
        m.d.comb += raw.eq(big_ext + (aligned ^ subtract.replicate(27)) + subtract)
        total = Signal(28)
        m.d.comb += total.eq(Cat(raw[0:27], raw[27] & ~subtract))

        # Normalise: a carry shifts right by one (its lost bit joins the sticky bits); otherwise shift left by
        # the leading zeros so that the hidden bit is bit 26.
        lz = Signal(5)
        for i in range(27):                     # the highest set bit wins (the last assignment)
            with m.If(total[i]):
                m.d.comb += lz.eq(26 - i)
        normal = Signal(27)
        m.d.comb += normal.eq((total[0:27] << lz)[:27])
        mant, guard, rest = Signal(24), Signal(), Signal()
        exp = Signal(range(-64, 512))
        with m.If(total[27]):
            m.d.comb += [mant.eq(total[4:28]), guard.eq(total[3]), rest.eq(total[0:3].any()),
                         exp.eq(e_big + 1)]
        with m.Else():
            m.d.comb += [mant.eq(normal[3:27]), guard.eq(normal[2]), rest.eq(normal[0:2].any()),
                         exp.eq(e_big - lz)]
        rounded = Signal(25)
        m.d.comb += rounded.eq(mant + (guard & (rest | mant[0])))
        exp_r = Signal(range(-64, 512))
        frac_r = Signal(23)
        with m.If(rounded[24]):
            m.d.comb += [exp_r.eq(exp + 1), frac_r.eq(rounded[1:24])]
        with m.Else():
            m.d.comb += [exp_r.eq(exp), frac_r.eq(rounded[0:23])]
        generic = Signal(32)
        with m.If(total == 0):
            m.d.comb += generic.eq(0)                                   # exact cancellation: +0
        with m.Elif(exp_r >= 255):
            m.d.comb += generic.eq(Cat(Const(0, 23), Const(0xFF, 8), big[31]))    # overflow: infinity
        with m.Elif(exp_r <= 0):
            m.d.comb += generic.eq(Cat(Const(0, 31), big[31]))                    # below 2**-126: flushed
        with m.Else():
            m.d.comb += generic.eq(Cat(frac_r, exp_r[0:8], big[31]))

        with m.If(a_nan | b_nan | (a_inf & b_inf & (a[31] != b[31]))):
            m.d.comb += self.s.eq(CANONICAL_NAN)
        with m.Elif(a_inf):
            m.d.comb += self.s.eq(a)
        with m.Elif(b_inf):
            m.d.comb += self.s.eq(b)
        with m.Elif(a_zero & b_zero):
            m.d.comb += self.s.eq(Cat(Const(0, 31), a[31] & b[31]))
        with m.Elif(a_zero):
            m.d.comb += self.s.eq(b)
        with m.Elif(b_zero):
            m.d.comb += self.s.eq(a)
        with m.Else():
            m.d.comb += self.s.eq(generic)
        return m


def fp32_add(m, a, b, name):
    """Instantiate an `Fp32Adder` as submodule ``name`` of ``m`` on ``a`` and ``b``; returns its sum."""
    adder = Fp32Adder()
    m.submodules[name] = adder
    m.d.comb += [adder.a.eq(a), adder.b.eq(b)]
    return adder.s


def fp32_relu(x):
    """ReLU of an fp32 pattern: negative values and -0 give +0; NaN stays."""
    return Mux(x[31] & ~fp32_is_nan(x), 0, x)


def fp32_max_flags(a, b):
    """The two decisions of `fp32_max` (``a``, ``b`` fp32 patterns): whether either is NaN, and whether ``b`` is
    greater than ``a`` as a value (``+0 > -0``); a pipeline may register them and choose a stage later
    (`fp32_max_choice`)."""
    # Order key: positive patterns as they are, negative ones reversed below them.
    def greater(x, y):       # x > y as values
        return Mux(x[31], Mux(y[31], x[0:31] < y[0:31], 0), Mux(y[31], 1, x[0:31] > y[0:31]))
    return fp32_is_nan(a) | fp32_is_nan(b), greater(b, a)


def fp32_max_choice(a, b, nan, b_greater):
    """`fp32_max` from its decisions (`fp32_max_flags`)."""
    return Mux(nan, CANONICAL_NAN, Mux(b_greater, b, a))


def fp32_max(a, b):
    """The larger of two fp32 patterns (+0 over -0); the canonical NaN if either is NaN."""
    return fp32_max_choice(a, b, *fp32_max_flags(a, b))


def float_product(m, a, b, fmt, name):
    """The exact fp32 product of two ``fmt`` (bf16/fp16) patterns, combinational (`hwgen.floats.product`): the
    output-stationary PE's multiplier, whose product register is its only stage."""
    ebits, fbits = FORMATS[fmt]
    emax, bias = (1 << ebits) - 1, (1 << (ebits - 1)) - 1
    ea, eb = a[fbits:fbits + ebits], b[fbits:fbits + ebits]
    fa, fb = a[0:fbits], b[0:fbits]
    a_zero, b_zero = ea == 0, eb == 0
    a_inf, b_inf = (ea == emax) & (fa == 0), (eb == emax) & (fb == 0)
    nan = ((ea == emax) & (fa != 0)) | ((eb == emax) & (fb != 0)) | (a_zero & b_inf) | (a_inf & b_zero)
    sig = Signal(2 * fbits + 2, name=f"{name}_sig")
    m.d.comb += sig.eq(Cat(fa, Const(1, 1)) * Cat(fb, Const(1, 1)))
    top = sig[2 * fbits + 1]
    exp = Signal(range(-512, 512), name=f"{name}_exp")
    m.d.comb += exp.eq(ea + eb - 2 * bias + 127 + top)
    frac = Mux(top, sig[0:2 * fbits + 1] << (23 - (2 * fbits + 1)), sig[0:2 * fbits] << (23 - 2 * fbits))[:23]
    sign = a[15] ^ b[15]
    result = Signal(32, name=f"{name}_product")
    with m.If(nan):
        m.d.comb += result.eq(CANONICAL_NAN)
    with m.Elif(a_inf | b_inf | (exp >= 255)):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
    with m.Elif(a_zero | b_zero | (exp <= 0)):
        m.d.comb += result.eq(Cat(Const(0, 31), sign))
    with m.Else():
        m.d.comb += result.eq(Cat(frac, exp[:8], sign))
    return result


class FloatProductPipe(wiring.Component):
    """The exact fp32 product of two ``fmt`` operands (``"bf16"``/``"fp16"``) with the `PipelinedMultiplier`'s
    timing: in every cycle with ``en`` the operands are registered and ``p`` is the product of the operands of
    two enabled cycles before (`LATENCY`). The significands multiply on the `PipelinedMultiplier` (unsigned
    8x8 or 11x11 bits); sign, exponent sum and the special-value flags ride two registers beside it; the
    packing into fp32 after the product register is combinational."""

    LATENCY = 2

    def __init__(self, fmt):
        if fmt not in ("bf16", "fp16"):
            raise ValueError(f"FloatProductPipe multiplies bf16 or fp16 operands, not {fmt!r}")
        self.fmt = fmt
        super().__init__({"a": In(16), "b": In(16), "en": In(1, init=1), "p": Out(32)})

    def elaborate(self, platform):
        m = Module()
        ebits, fbits = FORMATS[self.fmt]
        emax, bias = (1 << ebits) - 1, (1 << (ebits - 1)) - 1
        a, b = self.a, self.b
        ea, eb = a[fbits:fbits + ebits], b[fbits:fbits + ebits]
        fa, fb = a[0:fbits], b[0:fbits]
        m.submodules.multiplier = mult = PipelinedMultiplier(a_shape=fbits + 1, b_shape=fbits + 1)
        m.d.comb += [mult.a.eq(Cat(fa, Const(1, 1))), mult.b.eq(Cat(fb, Const(1, 1))), mult.en.eq(self.en)]
        # Stage 1 (with the multiplier's operand registers) and stage 2 (with its product register).
        exp_shape = range(-512, 512)
        s1_sign, s1_exp, s1_nan, s1_inf, s1_zero = Signal(), Signal(exp_shape), Signal(), Signal(), Signal()
        s2_sign, s2_exp, s2_nan, s2_inf, s2_zero = Signal(), Signal(exp_shape), Signal(), Signal(), Signal()
        a_zero, b_zero = ea == 0, eb == 0
        a_inf, b_inf = (ea == emax) & (fa == 0), (eb == emax) & (fb == 0)
        a_nan, b_nan = (ea == emax) & (fa != 0), (eb == emax) & (fb != 0)
        with m.If(self.en):
            m.d.sync += [
                s1_sign.eq(a[15] ^ b[15]),
                s1_exp.eq(ea + eb - 2 * bias + 127),
                s1_nan.eq(a_nan | b_nan | (a_zero & b_inf) | (a_inf & b_zero)),
                s1_inf.eq(a_inf | b_inf), s1_zero.eq(a_zero | b_zero),
                s2_sign.eq(s1_sign), s2_exp.eq(s1_exp), s2_nan.eq(s1_nan), s2_inf.eq(s1_inf),
                s2_zero.eq(s1_zero),
            ]
        sig = mult.p                                   # 2*fbits + 2 bits, top bit at 2*fbits + 1 or 2*fbits
        top = sig[2 * fbits + 1]
        exp = Signal(exp_shape)
        frac = Signal(23)
        m.d.comb += exp.eq(s2_exp + top)
        with m.If(top):
            m.d.comb += frac.eq(sig[0:2 * fbits + 1] << (23 - (2 * fbits + 1)))
        with m.Else():
            m.d.comb += frac.eq(sig[0:2 * fbits] << (23 - 2 * fbits))
        with m.If(s2_nan):
            m.d.comb += self.p.eq(CANONICAL_NAN)
        with m.Elif(s2_inf | (exp >= 255)):
            m.d.comb += self.p.eq(Cat(Const(0, 23), Const(0xFF, 8), s2_sign))
        with m.Elif(s2_zero | (exp <= 0)):
            m.d.comb += self.p.eq(Cat(Const(0, 31), s2_sign))
        with m.Else():
            m.d.comb += self.p.eq(Cat(frac, exp[0:8], s2_sign))
        return m


def fp32_mul_operands(m, a, b, name):
    """The parts of ``a * b`` (fp32 patterns) around the significand multiply: returns the two 24-bit
    significands (``1.f``) and the meta word (`fp32_mul_round` takes it, delayed as the product is): sign,
    exponent sum and the special-value flags."""
    ea, eb = a[23:31], b[23:31]
    a_zero, b_zero = ea == 0, eb == 0                 # zero or subnormal (read as zero)
    a_inf, b_inf = (ea == 0xFF) & (a[0:23] == 0), (eb == 0xFF) & (b[0:23] == 0)
    nan = fp32_is_nan(a) | fp32_is_nan(b) | (a_zero & b_inf) | (a_inf & b_zero)
    meta = Signal(14, name=f"{name}_meta")            # sign, exp sum - 127 (10 bits signed), nan, inf, zero
    exp = Signal(range(-512, 512), name=f"{name}_exp")
    m.d.comb += [exp.eq(ea + eb - 127),
                 meta.eq(Cat(a[31] ^ b[31], exp[:10], nan, a_inf | b_inf, a_zero | b_zero))]
    return Cat(a[0:23], Const(1, 1)), Cat(b[0:23], Const(1, 1)), meta


def fp32_mul_round(m, product, meta, name):
    """The fp32 pattern of the product: the 48-bit significand ``product`` normalised, rounded to 24 bits
    (ties to even), then overflow to infinity, below ``2**-126`` a zero of its sign (tininess after rounding),
    NaN canonical (`hwgen.floats.mul`)."""
    sign, nan, inf, zero = meta[0], meta[11], meta[12], meta[13]
    exp_sum = meta[1:11].as_signed()
    top = product[47]
    mant, guard, rest = Signal(24, name=f"{name}_mant"), Signal(name=f"{name}_guard"), Signal(name=f"{name}_rest")
    m.d.comb += [mant.eq(Mux(top, product[24:48], product[23:47])), guard.eq(Mux(top, product[23], product[22])),
                 rest.eq(Mux(top, product[0:23].any(), product[0:22].any()))]
    rounded = Signal(25, name=f"{name}_rounded")
    m.d.comb += rounded.eq(mant + (guard & (rest | mant[0])))
    exp = Signal(range(-512, 512), name=f"{name}_exp_r")
    m.d.comb += exp.eq(exp_sum + top + rounded[24])
    frac = Mux(rounded[24], rounded[1:24], rounded[0:23])
    result = Signal(32, name=f"{name}_result")
    with m.If(nan):
        m.d.comb += result.eq(CANONICAL_NAN)
    with m.Elif(inf | (exp >= 255)):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
    with m.Elif(zero | (exp <= 0)):
        m.d.comb += result.eq(Cat(Const(0, 31), sign))
    with m.Else():
        m.d.comb += result.eq(Cat(frac, exp[:8], sign))
    return result


def fp32_round_to(m, v, fmt, name):
    """fp32 pattern ``v`` -> the fp32 pattern of the nearest ``fmt`` (``"bf16"``/``"fp16"``) value, ties to even
    (`hwgen.floats.round_to`): overflow to infinity, below the format's smallest normal a zero of its sign
    (after rounding), NaN canonical."""
    e = v[23:31]
    special = e == 0xFF
    result = Signal(32, name=f"{name}_rounded")
    if fmt == "bf16":
        up = v[15] & (v[0:15].any() | v[16])
        top = Signal(16, name=f"{name}_top")
        m.d.comb += top.eq(v[16:32] + up)             # a carry runs into the exponent: 0x7f7f + 1 = inf
        with m.If(fp32_is_nan(v)):
            m.d.comb += result.eq(CANONICAL_NAN)
        with m.Elif(special | (e == 0)):
            m.d.comb += result.eq(Mux(special, v, Cat(Const(0, 31), v[31])))
        with m.Else():
            m.d.comb += result.eq(Cat(Const(0, 16), top))
        return result
    assert fmt == "fp16"
    up = v[12] & (v[0:12].any() | v[13])
    body = Signal(18, name=f"{name}_body")             # exponent (8) and 10 fraction bits, rounded
    m.d.comb += body.eq(v[13:31] + up)
    e_r = body[10:18]
    with m.If(fp32_is_nan(v)):
        m.d.comb += result.eq(CANONICAL_NAN)
    with m.Elif(special | (e_r >= 127 + 16)):          # >= 2**16 after rounding: infinity
        m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), v[31]))
    with m.Elif(e_r < 127 - 14):                       # below 2**-14 after rounding (zeros too): flushed
        m.d.comb += result.eq(Cat(Const(0, 31), v[31]))
    with m.Else():
        m.d.comb += result.eq(Cat(Const(0, 13), body, v[31]))
    return result


def fp32_to_format(v, fmt):
    """The ``fmt`` pattern (16 bits) of an fp32 pattern ``v`` that holds an ``fmt`` value (`fp32_round_to`'s
    result): a re-packing, exact."""
    if fmt == "bf16":
        return v[16:32]
    e = v[23:31]
    return Mux(fp32_is_nan(v), 0x7E00,
               Mux(e == 0xFF, Cat(Const(0, 10), Const(0x1F, 5), v[31]),
                   Mux(e == 0, Cat(Const(0, 15), v[31]), Cat(v[13:23], (e - 112)[:5], v[31]))))
