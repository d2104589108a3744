"""Sigmoid and tanh as a piecewise-linear table: the integer semantics of `hwgen.hw.activation`, and its error.

Input and output are 16-bit words with ``frac`` fractional bits. The input range ``[-2**(15-frac), 2**(15-frac))``
is cut into ``2**segment_bits`` equal segments: with the input offset to ``u = x + 2**15`` (unsigned),

    segment = u >> (16 - segment_bits),   d = u mod 2**(16 - segment_bits)
    y = (base[segment] + slope[segment] * d + 2**(SLOPE_FRAC-1)) >> SLOPE_FRAC

``slope`` is the chord of the segment in output LSBs per input LSB and ``base`` the chord's start moved by half
the chord's error range, which centres the error (the minimax line for a convex or concave segment), both with
``SLOPE_FRAC`` fractional bits, so the output is rounded once. One multiply (``d`` has ``16 - segment_bits``
bits) and one add: the hardware's table is these two integer arrays, generated from the same function.

`max_error` measures the table exhaustively (all 65,536 inputs) against the float function at the same input;
with ``frac=12`` and 256 segments both functions are within 1.3 output LSBs (3.2e-4 for tanh, whose curvature
is the larger; see `tests/test_activation.py`).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import MappingError

__all__ = ["FUNCTIONS", "SLOPE_FRAC", "PiecewiseLinear", "sigmoid", "tanh"]

SLOPE_FRAC = 12
WORD = 16


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def tanh(x):
    return np.tanh(np.asarray(x, dtype=np.float64))


FUNCTIONS = {"sigmoid": sigmoid, "tanh": tanh}


@dataclass(frozen=True)
class PiecewiseLinear:
    """The table of one function (``"sigmoid"`` or ``"tanh"``) for ``frac`` fractional bits."""
    function: str
    frac: int = 12
    segment_bits: int = 8

    def __post_init__(self):
        if self.function not in FUNCTIONS:
            raise MappingError(f"function must be one of {sorted(FUNCTIONS)}, not {self.function!r}")
        if not 1 <= self.frac <= 14:
            raise MappingError(f"frac must be 1 to 14 fractional bits of a 16-bit word, not {self.frac!r}")
        if not 2 <= self.segment_bits <= 12:
            raise MappingError(f"segment_bits must be 2 to 12, not {self.segment_bits!r}")

    @property
    def offset_bits(self):
        """Bits of ``d``, the position inside a segment."""
        return WORD - self.segment_bits

    @property
    def slope_bits(self):
        """Signed width that holds every slope."""
        return max(int(abs(s)).bit_length() for s in self.tables[1]) + 1

    @property
    def base_bits(self):
        """Signed width that holds every base."""
        return max(int(abs(b)).bit_length() for b in self.tables[0]) + 1

    @cached_property
    def tables(self):
        """(base, slope): int64 arrays of ``2**segment_bits`` entries."""
        f, frac, width = FUNCTIONS[self.function], self.frac, 1 << self.offset_bits
        count = 1 << self.segment_bits
        base = np.zeros(count, dtype=np.int64)
        slope = np.zeros(count, dtype=np.int64)
        d = np.arange(width)
        for seg in range(count):
            x0 = seg * width - (1 << (WORD - 1))                     # the segment's first input word
            y0, y1 = f(x0 / (1 << frac)) * (1 << frac), f((x0 + width) / (1 << frac)) * (1 << frac)
            slope[seg] = int(np.floor((y1 - y0) / width * (1 << SLOPE_FRAC) + 0.5))
            exact = f((x0 + d) / (1 << frac)) * (1 << (frac + SLOPE_FRAC))
            error = exact - slope[seg] * d                                # the base that centres the error
            base[seg] = int(np.floor((error.max() + error.min()) / 2 + 0.5))
        return base, slope

    def __call__(self, x):
        """The table's output for 16-bit input words `x` (int array): 16-bit words."""
        x = np.asarray(x, dtype=np.int64)
        u = x + (1 << (WORD - 1))
        seg, d = u >> self.offset_bits, u & ((1 << self.offset_bits) - 1)
        base, slope = self.tables
        y = (base[seg] + slope[seg] * d + (1 << (SLOPE_FRAC - 1))) >> SLOPE_FRAC
        return np.clip(y, -(1 << (WORD - 1)), (1 << (WORD - 1)) - 1)

    def max_error(self):
        """(max, mean) absolute error against the float function over every 16-bit input, in output units."""
        x = np.arange(-(1 << (WORD - 1)), 1 << (WORD - 1), dtype=np.int64)
        got = self(x) / (1 << self.frac)
        want = FUNCTIONS[self.function](x / (1 << self.frac))
        err = np.abs(got - want)
        return float(err.max()), float(err.mean())
