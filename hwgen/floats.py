"""Floating-point numerics of the float datapath: the bit-exact golden model of what the hardware computes.

Formats: ``bf16`` (1 sign, 8 exponent, 7 fraction bits, bias 127), ``fp16`` (1, 5, 10, bias 15) operands and an
``fp32`` (1, 8, 23, bias 127) accumulator. Values travel as their raw bit patterns (unsigned integers: uint16
for the operands, uint32 for the accumulator) everywhere in hwgen - the streams, the buffers and the reference -
so the integer machinery (packing, beats, scoreboard) is unchanged; `encode`/`decode` convert real numbers.

The numeric policy (the hardware, `hwgen.hw.fpu`, implements exactly this; `product` and `add` are its model):

* **Products are exact.** A bf16 x bf16 product has a 16-bit significand and an fp16 x fp16 one 22 bits, both
  within fp32's 24, so the multiplier never rounds. bf16 products may leave fp32's exponent range: a product
  of magnitude ``>= 2**128`` becomes an infinity, one ``< 2**-126`` a zero of the product's sign (flush to
  zero). fp16 products always fit.
* **Additions round to nearest, ties to even** (IEEE 754 roundTiesToEven) into fp32; a sum that overflows
  becomes an infinity.
* **Subnormals are flushed**: a subnormal operand (bf16, fp16 or fp32 input of an add) reads as a zero of its
  sign (denormals-are-zero), and a result below ``2**-126`` in magnitude - only ever an exact one, from
  cancellation - is written as a zero of the result's sign (flush-to-zero). No subnormal is ever produced.
* **Zeros** follow IEEE: an exact zero sum is ``+0`` (``x + (-x)``, ``+0 + -0``) except ``-0 + -0 = -0``; a zero
  product has the sign XOR of its operands.
* **Infinities** propagate by IEEE rules (``inf + x = inf``, ``inf * x = inf`` of the XOR sign, overflow gives
  ``inf``); ``inf - inf`` and ``0 * inf`` are invalid and give NaN.
* **NaN**: every NaN result is the one canonical quiet NaN ``0x7FC00000`` (payloads and signs are not
  propagated); a NaN operand makes the result NaN.
* **The post-op chain** (`hwgen.postops.apply_float`): the bias is an fp32 `add`; the requantization scale an
  fp32 multiply (`mul`: the exact product rounded to 24 bits, ties to even, as if the exponent were unbounded,
  then overflow to infinity and a result below ``2**-126`` flushed - tininess after rounding); the output
  narrowing to bf16/fp16 (`round_to`, `to_format`) rounds the same way to 8/11 significant bits (fp16: ``>=
  2**16`` after rounding is an infinity, below ``2**-14`` a zero of its sign); ReLU sends negatives and ``-0``
  to ``+0`` (NaN stays NaN); max pooling orders ``-0`` below ``+0`` and gives NaN if any input is NaN. The
  canonical NaN of bf16 is ``0x7FC0``, of fp16 ``0x7E00``.

The order of the additions is the hardware's (it matters: float addition is not associative). A
weight-stationary column adds its PEs' products top to bottom starting from ``+0`` (``((+0 + p0) + p1) + ...``,
unused rows contributing their ``0 * 0 = +0`` products), and the accumulator adds each fold's column sum to the
running total in the order the schedule issues the folds (the first fold's sum is taken as it is); an
output-stationary PE adds its output's ``K`` host-unrolled products in order, the first taken as it is.
`hwgen.reference.float_layer` follows that order from a `hwgen.tiling.LayerPlan`.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError

__all__ = ["FORMATS", "CANONICAL_NAN", "encode", "decode", "product", "add", "mul", "relu", "maximum",
           "round_to", "to_format", "narrow", "float_sum"]

CANONICAL_NAN = 0x7FC00000
_SIGN32 = np.uint32(0x80000000)
_MIN_NORMAL32 = 2.0 ** -126

# name: (exponent bits, fraction bits)
FORMATS = {"bf16": (8, 7), "fp16": (5, 10), "fp32": (8, 23)}


def _fields(bits, fmt):
    ebits, fbits = FORMATS[fmt]
    bits = np.asarray(bits, dtype=np.uint64)
    sign = (bits >> np.uint64(ebits + fbits)) & np.uint64(1)
    exp = (bits >> np.uint64(fbits)) & np.uint64((1 << ebits) - 1)
    frac = bits & np.uint64((1 << fbits) - 1)
    return sign.astype(np.int64), exp.astype(np.int64), frac.astype(np.int64)


def decode(bits, fmt):
    """Bit patterns of ``fmt`` -> float64 values (exactly; subnormals decode as what they are, NaN as NaN)."""
    ebits, fbits = FORMATS[fmt]
    sign, exp, frac = _fields(bits, fmt)
    bias = (1 << (ebits - 1)) - 1
    emax = (1 << ebits) - 1
    normal = np.ldexp(1.0 + frac / float(1 << fbits), (exp - bias).astype(np.int64))
    sub = np.ldexp(frac / float(1 << fbits), 1 - bias)
    value = np.where(exp == 0, sub, normal)
    value = np.where(exp == emax, np.where(frac == 0, np.inf, np.nan), value)
    return np.where(sign == 1, -value, value)


def _daz_value(bits, fmt):
    """As `decode`, but a subnormal reads as a zero of its sign (the hardware's operand policy)."""
    sign, exp, _ = _fields(bits, fmt)
    value = decode(bits, fmt)
    return np.where(exp == 0, np.where(sign == 1, -0.0, 0.0), value)


def encode(values, fmt):
    """Real values -> bit patterns of ``fmt`` (uint64 array), rounded to nearest even. Results below the
    format's smallest normal flush to a zero of their sign, as the hardware would; NaN is the canonical quiet
    NaN of the format."""
    values = np.asarray(values, dtype=np.float64)
    if fmt == "fp32":
        with np.errstate(over="ignore"):
            bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        return _flush(bits, "fp32")
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            bits = values.astype(np.float16).view(np.uint16).astype(np.uint64)
        return _flush(bits, "fp16")
    if fmt == "bf16":
        # Round the fp32 value to 16 bits, ties to even (float64 -> fp32 first: exact for any value that
        # matters here, since callers pass values of at most fp32 precision; double rounding is otherwise
        # possible but harmless for test data).
        with np.errstate(over="ignore"):
            b32 = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        lsb = (b32 >> np.uint64(16)) & np.uint64(1)
        rounded = (b32 + np.uint64(0x7FFF) + lsb) >> np.uint64(16)
        nan = np.isnan(values)
        rounded = np.where(nan, np.uint64(0x7FC0), rounded)
        return _flush(rounded & np.uint64(0xFFFF), "bf16")
    raise DataError(f"unknown float format {fmt!r}; choose one of {tuple(FORMATS)}")


def _flush(bits, fmt):
    """Subnormal patterns -> zero of their sign; NaN patterns -> the canonical quiet NaN of the format."""
    ebits, fbits = FORMATS[fmt]
    bits = np.asarray(bits, dtype=np.uint64)
    sign, exp, frac = _fields(bits, fmt)
    emax = (1 << ebits) - 1
    sign_bit = np.uint64(1 << (ebits + fbits))
    quiet = np.uint64((emax << fbits) | (1 << (fbits - 1)))
    bits = np.where(exp == 0, bits & sign_bit, bits)
    return np.where((exp == emax) & (frac != 0), quiet, bits).astype(np.uint64)


def product(a_bits, b_bits, fmt):
    """The PE multiplier: ``fmt`` (bf16/fp16) operands -> the exact fp32 product's bits (uint64 array).

    Subnormal operands read as zeros; a product of magnitude ``>= 2**128`` is an infinity, one ``< 2**-126`` a
    zero of the product's sign; ``0 * inf`` and NaN operands give the canonical NaN."""
    if fmt not in ("bf16", "fp16"):
        raise DataError(f"products are of bf16 or fp16 operands, not {fmt!r}")
    a, b = _daz_value(a_bits, fmt), _daz_value(b_bits, fmt)
    with np.errstate(invalid="ignore", over="ignore"):
        p = a * b                                        # exact in float64: 16- or 22-bit significands
    sign = (np.signbit(a) ^ np.signbit(b)).astype(np.uint64) << np.uint64(31)
    mag = np.abs(p)
    with np.errstate(invalid="ignore", over="ignore"):
        bits = np.abs(p).astype(np.float32).view(np.uint32).astype(np.uint64)   # exact when normal in fp32
    bits = np.where(mag >= 2.0 ** 128, np.uint64(0x7F800000), bits)
    bits = np.where(mag < _MIN_NORMAL32, np.uint64(0), bits)
    bits = bits | sign
    return np.where(np.isnan(p), np.uint64(CANONICAL_NAN), bits).astype(np.uint64)


def add(a_bits, b_bits):
    """The fp32 adder: round to nearest even, subnormal inputs read as zeros of their sign, subnormal results
    flushed to zeros of their sign, NaN canonical. Inputs and output are fp32 bit patterns (uint64 arrays)."""
    a = _flush(np.asarray(a_bits, dtype=np.uint64), "fp32").astype(np.uint32).view(np.float32)
    b = _flush(np.asarray(b_bits, dtype=np.uint64), "fp32").astype(np.uint32).view(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.add(a, b, dtype=np.float32)          # IEEE binary32, round to nearest even
    return _flush(np.asarray(total, dtype=np.float32).view(np.uint32).astype(np.uint64), "fp32")


def float_sum(terms):
    """``((terms[0] + terms[1]) + terms[2]) + ...`` with `add` (fp32 bit patterns; the first taken as it is)."""
    total = None
    for term in terms:
        total = np.asarray(term, dtype=np.uint64) if total is None else add(total, term)
    return total


def relu(bits):
    """fp32 ReLU: negative numbers and ``-0`` become ``+0``; NaN stays NaN, ``+inf`` stays."""
    bits = np.asarray(bits, dtype=np.uint64)
    nan = ((bits >> np.uint64(23)) & np.uint64(0xFF) == 0xFF) & (bits & np.uint64(0x7FFFFF) != 0)
    return np.where((bits >> np.uint64(31)).astype(bool) & ~nan, np.uint64(0), bits).astype(np.uint64)


def _order_key(bits):
    """An integer that orders fp32 patterns as their values (``-0`` just below ``+0``)."""
    bits = np.asarray(bits, dtype=np.int64)
    return np.where(bits >> 31 & 1, -(bits & 0x7FFFFFFF) - 1, bits)


def maximum(a_bits, b_bits):
    """fp32 max of two patterns: the larger value (``+0`` over ``-0``); NaN if either is NaN (canonical)."""
    a, b = np.asarray(a_bits, dtype=np.uint64), np.asarray(b_bits, dtype=np.uint64)
    nan = lambda x: ((x >> np.uint64(23)) & np.uint64(0xFF) == 0xFF) & (x & np.uint64(0x7FFFFF) != 0)  # noqa: E731
    out = np.where(_order_key(b) > _order_key(a), b, a)
    return np.where(nan(a) | nan(b), np.uint64(CANONICAL_NAN), out).astype(np.uint64)


_RANGE = {"bf16": (8, 2.0 ** -126, 2.0 ** 128), "fp16": (11, 2.0 ** -14, 2.0 ** 16),
          "fp32": (24, 2.0 ** -126, 2.0 ** 128)}     # significand bits, smallest normal, overflow threshold


def _round_value(value, fmt):
    """float64 values -> fp32 patterns of the nearest ``fmt`` value: rounded to ``fmt``'s significand bits, ties
    to even, as if the exponent were unbounded; then ``>=`` the overflow threshold is an infinity and below the
    smallest normal a zero of the value's sign (tininess after rounding); NaN canonical."""
    sig, smallest, overflow = _RANGE[fmt]
    value = np.asarray(value, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mant, exp = np.frexp(value)                      # value = mant * 2**exp, 0.5 <= |mant| < 1
        q = np.ldexp(np.round(mant * 2.0 ** sig) / 2.0 ** sig, exp)   # np.round: half to even
    q = np.where(np.isinf(value), value, q)
    q = np.where(np.abs(q) >= overflow, np.copysign(np.inf, value), q)
    q = np.where(np.abs(q) < smallest, np.copysign(0.0, value), q)
    with np.errstate(invalid="ignore", over="ignore"):
        bits = q.astype(np.float32).view(np.uint32).astype(np.uint64)     # exact: q is an fmt value
    return np.where(np.isnan(value), np.uint64(CANONICAL_NAN), bits).astype(np.uint64)


def mul(a_bits, b_bits):
    """The fp32 multiplier of the post-op chain (the requantization scale): the exact product rounded to 24
    bits, ties to even; overflow to infinity, results below ``2**-126`` (after rounding) flushed to zeros of
    their sign; subnormal operands read as zeros; ``0 * inf`` and NaN give the canonical NaN."""
    a, b = _daz_value(a_bits, "fp32"), _daz_value(b_bits, "fp32")
    with np.errstate(invalid="ignore", over="ignore"):
        p = a * b                                         # exact in float64 (24 x 24 bits)
    return _round_value(p, "fp32")


def round_to(bits, fmt):
    """fp32 patterns -> fp32 patterns of the nearest ``fmt`` (bf16/fp16/fp32) value (`_round_value`'s rules:
    ties to even, overflow to infinity, results below ``fmt``'s smallest normal flushed, NaN canonical)."""
    return _round_value(_daz_value(bits, "fp32"), fmt)


def to_format(bits, fmt):
    """fp32 patterns of ``fmt`` values (`round_to`'s results) -> ``fmt`` patterns, exactly (NaN canonical)."""
    if fmt == "fp32":
        return np.asarray(bits, dtype=np.uint64)
    return encode(decode(bits, "fp32"), fmt)


def narrow(bits, fmt):
    """fp32 patterns -> ``fmt`` (bf16/fp16/fp32) patterns: `round_to` then `to_format`."""
    return to_format(round_to(bits, fmt), fmt)
