"""Fixed-point numbers and their rounding: the integer semantics of the fixed-point engine, defined once.

A value is a signed ``bits``-bit integer ``q`` standing for ``q / 2**frac`` (``Q(bits - frac).frac``; 16-bit words
with 14 fractional bits hold ``[-2, 2)`` in steps of ``2**-14``). Products of two such words are exact
(``2*frac`` fractional bits) and are summed exactly in a wide accumulator; a result goes back to a word by one
rounding shift and a saturation:

    nearest:     (v + 2**(s-1)) >> s            (half toward +inf, as `hwgen.postops` rounds)
    stochastic:  (v + r) >> s,  r = (d << s) >> 16  for a 16-bit random draw d

so a stochastically rounded value moves up with probability ``frac(v / 2**s)`` (quantized to ``2**-16``), and its
expectation is ``v / 2**s``: small updates survive on average instead of rounding away (Gupta et al., "Deep
learning with limited numerical precision", ICML 2015). The draws come from `hwgen.lfsr`, reproduced exactly by
the hardware (`hwgen.hw.lfsr`). ``>>`` is the arithmetic (floor) shift of two's complement.
"""

import numpy as np

from .errors import DataError

__all__ = ["ROUNDING_MODES", "DRAW_BITS", "round_shift", "saturate", "stochastic_offset", "to_fixed",
           "from_fixed", "word_range"]

ROUNDING_MODES = ("nearest", "stochastic")
DRAW_BITS = 16          # bits of one random draw


def word_range(bits=16):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(values, bits=16):
    """Clamp to a signed ``bits``-bit word."""
    lo, hi = word_range(bits)
    return np.clip(np.asarray(values, dtype=np.int64), lo, hi)


def stochastic_offset(draws, shift):
    """The offset a 16-bit draw adds before a ``shift``-bit rounding shift: the draw scaled to ``[0, 2**shift)``,
    ``(d << shift) >> 16`` (the draw's top bits when ``shift < 16``, the draw shifted up when it is larger)."""
    draws = np.asarray(draws, dtype=np.int64)
    return (draws << shift) >> DRAW_BITS


def round_shift(values, shift, mode="nearest", draws=None):
    """``values / 2**shift`` rounded to an integer: ``nearest`` (half up) or ``stochastic`` with one 16-bit
    draw per value (``draws``, broadcast against ``values``). Exact in int64 for ``|values| < 2**62``."""
    values = np.asarray(values, dtype=np.int64)
    if shift == 0:
        return values.copy()
    if mode == "nearest":
        return (values + (1 << (shift - 1))) >> shift
    if mode == "stochastic":
        if draws is None:
            raise DataError("stochastic rounding needs one random draw per value")
        return (values + stochastic_offset(draws, shift)) >> shift
    raise DataError(f"rounding mode must be one of {ROUNDING_MODES}, not {mode!r}")


def to_fixed(x, frac, bits=16):
    """Float -> the nearest ``bits``-bit word with ``frac`` fractional bits (half up, saturating): how the host
    quantizes inputs, parameters and the loss gradient."""
    scaled = np.floor(np.asarray(x, dtype=np.float64) * (1 << frac) + 0.5)
    lo, hi = word_range(bits)
    return np.clip(scaled, lo, hi).astype(np.int64)


def from_fixed(q, frac):
    return np.asarray(q, dtype=np.float64) / (1 << frac)
