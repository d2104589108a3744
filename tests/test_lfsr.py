"""`hwgen.lfsr` (golden) and `hwgen.hw.lfsr` (hardware): the random draws of stochastic rounding."""

import numpy as np
from amaranth.sim import Simulator

from hwgen import lfsr
from hwgen.hw.lfsr import LfsrBank


def _step_matrix():
    """The step map as 32 column bitmasks (column i = the image of state bit i)."""
    return [lfsr.step(1 << i)[0] for i in range(32)]


def _apply(columns, state):
    out = 0
    for i in range(32):
        if (state >> i) & 1:
            out ^= columns[i]
    return out


def _compose(a, b):
    """a after b."""
    return [_apply(a, col) for col in b]


def _power(columns, e):
    result = [1 << i for i in range(32)]
    base = columns
    while e:
        if e & 1:
            result = _compose(base, result)
        base = _compose(base, base)
        e >>= 1
    return result


def test_taps_give_the_maximal_period():
    """The step map has order 2**32 - 1 (= 3 * 5 * 17 * 257 * 65537): every nonzero state recurs only after
    all 2**32 - 1 of them."""
    identity = [1 << i for i in range(32)]
    step = _step_matrix()
    period = (1 << 32) - 1
    assert _power(step, period) == identity
    for prime in (3, 5, 17, 257, 65537):
        assert _power(step, period // prime) != identity


def test_a_draw_is_sixteen_output_bits():
    state = lfsr.lane_seed(7, 3)
    s, bits = state, []
    for _ in range(16):
        s, out = lfsr.step(s)
        bits.append(out)
    assert lfsr.draw(state) == (s, sum(b << k for k, b in enumerate(bits)))


def test_bank_draws_match_the_scalar_definition_and_lanes_differ():
    bank = lfsr.LfsrBank(seed=5, count=6, first=2)
    got = bank.draw(40)
    for lane in range(6):
        s = lfsr.lane_seed(5, 2 + lane)
        for t in range(40):
            s, d = lfsr.draw(s)
            assert got[t, lane] == d
    assert len({tuple(got[:, k]) for k in range(6)}) == 6
    assert all(lfsr.lane_seed(s, k) for s in range(50) for k in range(50))        # never the zero state
    # Roughly uniform: the mean of many draws is near 2**15.
    assert abs(lfsr.LfsrBank(seed=1, count=64).draw(200).mean() / 2 ** 15 - 1) < 0.02


def test_hardware_bank_draws_the_golden_sequence():
    dut = LfsrBank(seed=9, count=3, first=4)
    pattern = [0b111, 0b000, 0b101, 0b010, 0b111, 0b001, 0b111]

    async def bench(ctx):
        expected = lfsr.LfsrBank(seed=9, count=3, first=4)
        for step in pattern:
            draws = ctx.get(dut.draws)
            for lane in range(3):
                state = int(expected.state[lane])
                assert (draws >> (16 * lane)) & 0xFFFF == lfsr.draw(state)[1]
                if (step >> lane) & 1:
                    expected.state[lane] = lfsr.draw(state)[0]
            ctx.set(dut.step, step)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
