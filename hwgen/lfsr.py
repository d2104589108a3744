"""The random source of stochastic rounding: banks of 32-bit Galois LFSRs, reproduced bit for bit by
`hwgen.hw.lfsr`.

One LFSR step (right shift, Galois form): ``out = s & 1; s >>= 1; if out: s ^= TAPS``. ``TAPS = 0x80200003`` is
x^32 + x^22 + x^2 + x + 1, a primitive polynomial: every nonzero state recurs after 2**32 - 1 steps
(`tests/test_lfsr.py` checks the order of the step map). A *draw* advances the LFSR 16 steps and is the 16 bits
it shifted out, the first in bit 0 - sixteen fresh bits of the m-sequence per draw, so consecutive draws of one
lane share none.

Every rounding lane has its own LFSR (the hardware steps them in parallel); lane ``k`` of an engine starts from
``lane_seed(seed, k)``, a 32-bit mix of the generator parameter ``seed`` and ``k`` that is never zero. A lane
draws only when it rounds stochastically.
"""

import numpy as np

__all__ = ["TAPS", "STATE_BITS", "DRAW_STEPS", "step", "draw", "lane_seed", "LfsrBank"]

TAPS = 0x80200003
STATE_BITS = 32
DRAW_STEPS = 16
_MASK = (1 << STATE_BITS) - 1


def step(state):
    """One step: (new state, the bit shifted out)."""
    out = state & 1
    state >>= 1
    if out:
        state ^= TAPS
    return state, out


def draw(state):
    """Advance `DRAW_STEPS` steps: (new state, the 16-bit draw, first bit out in bit 0)."""
    value = 0
    for k in range(DRAW_STEPS):
        state, out = step(state)
        value |= out << k
    return state, value


def lane_seed(seed, lane):
    """The start state of lane `lane` for the generator parameter `seed` (murmur3's 32-bit finalizer of
    ``seed + lane * 0x9E3779B9``; 1 if that is 0)."""
    h = (int(seed) + int(lane) * 0x9E3779B9) & _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h or 1


def _tables():
    """Per byte position and byte value: (state after a draw, the draw) of that byte alone. Both are linear
    over GF(2) in the state, so a whole state's draw is the XOR over its four bytes."""
    states = np.zeros((4, 256), dtype=np.uint32)
    draws = np.zeros((4, 256), dtype=np.uint32)
    for position in range(4):
        for value in range(256):
            state, d = draw(value << (8 * position))
            states[position, value], draws[position, value] = state, d
    return states, draws


_STATE_TABLE, _DRAW_TABLE = _tables()


class LfsrBank:
    """``count`` LFSR lanes, lanes ``first .. first + count - 1`` of an engine seeded with `seed`; `draw` advances
    all (or a subset of) lanes once, vectorized."""

    def __init__(self, seed, count, *, first=0):
        self.seed, self.first = seed, first
        self.state = np.array([lane_seed(seed, first + k) for k in range(count)], dtype=np.uint32)

    def draw(self, times=1):
        """`times` draws of every lane: an int64 array (times, lanes)."""
        out = np.empty((times, len(self.state)), dtype=np.int64)
        state = self.state
        for t in range(times):
            b0, b1, b2, b3 = state & 0xFF, (state >> 8) & 0xFF, (state >> 16) & 0xFF, state >> 24
            out[t] = (_DRAW_TABLE[0, b0] ^ _DRAW_TABLE[1, b1] ^ _DRAW_TABLE[2, b2] ^ _DRAW_TABLE[3, b3])
            state = (_STATE_TABLE[0, b0] ^ _STATE_TABLE[1, b1] ^ _STATE_TABLE[2, b2] ^ _STATE_TABLE[3, b3])
        self.state = state.astype(np.uint32)
        return out

    def copy(self):
        other = LfsrBank.__new__(LfsrBank)
        other.seed, other.first, other.state = self.seed, self.first, self.state.copy()
        return other
