"""A bank of LFSRs for stochastic rounding; golden model `hwgen.lfsr` (same taps, seeds and draw).

Each lane is a 32-bit Galois LFSR. Its draw - the 16 bits it would shift out in 16 steps - is a fixed XOR
network of its state, offered combinationally every cycle; ``step`` moves the lane to the state after those 16
steps (also an XOR network: 16 steps unrolled at elaboration). Lanes start from `hwgen.lfsr.lane_seed` of the
generator parameter ``seed`` and their index, and return to it on reset.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import lfsr as golden

__all__ = ["LfsrBank", "unrolled_draw"]


def _linear_map():
    """For each bit of the next state and of the draw, the state bits XORed into it (the draw is linear in the
    state over GF(2): find its matrix from the golden model on the unit vectors)."""
    nxt = [[] for _ in range(golden.STATE_BITS)]
    out = [[] for _ in range(golden.DRAW_STEPS)]
    for i in range(golden.STATE_BITS):
        state, draw = golden.draw(1 << i)
        for j in range(golden.STATE_BITS):
            if (state >> j) & 1:
                nxt[j].append(i)
        for k in range(golden.DRAW_STEPS):
            if (draw >> k) & 1:
                out[k].append(i)
    return nxt, out


_NEXT, _DRAW = _linear_map()


def unrolled_draw(state):
    """(next state, draw) as Amaranth expressions of a 32-bit state value: `hwgen.lfsr.draw` as two flat XOR
    networks (one XOR of a few state bits per output bit)."""
    def xor(indices):
        if not indices:
            return Const(0, 1)
        value = state[indices[0]]
        for i in indices[1:]:
            value = value ^ state[i]
        return value
    return Cat(*(xor(ix) for ix in _NEXT)), Cat(*(xor(ix) for ix in _DRAW))


class LfsrBank(wiring.Component):
    """``count`` lanes (``first .. first + count - 1`` of an engine seeded with ``seed``). ``draws`` holds lane
    ``k``'s 16-bit draw at bits ``16k``; ``step`` (one bit per lane) advances those lanes."""

    def __init__(self, *, seed, count, first=0):
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, not {count!r}")
        self.seed, self.count, self.first = seed, count, first
        super().__init__({"step": In(count), "draws": Out(count * golden.DRAW_STEPS)})

    def elaborate(self, platform):
        m = Module()
        draws = []
        for k in range(self.count):
            state = Signal(golden.STATE_BITS, init=golden.lane_seed(self.seed, self.first + k), name=f"lfsr{k}")
            nxt, draw = unrolled_draw(state)
            with m.If(self.step[k]):
                m.d.sync += state.eq(nxt)
            draws.append(draw)
        m.d.comb += self.draws.eq(Cat(*draws))
        return m
