"""Delay lines (`hwgen.hw.delay`): ``delayed(value, n)`` is a chain of ``n`` registers on one enable, built from
power-of-two `DelayLine` blocks."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hwgen.hw.delay import delayed


class Delayed(Elaboratable):
    def __init__(self, width, stages):
        self.i, self.en, self.o = Signal(width), Signal(), Signal(width)
        self.stages = stages

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(delayed(m, self.i, self.stages, name="line", platform=platform, en=self.en))
        return m


@pytest.mark.parametrize("stages", [1, 2, 3, 5, 8, 11])
def test_delayed_is_a_register_chain_on_one_enable(stages):
    dut = Delayed(6, stages)
    rng = np.random.default_rng(stages)
    stimulus = [(int(rng.integers(0, 64)), int(rng.random() < 0.6)) for _ in range(80)]
    seen = []

    async def testbench(ctx):
        for value, en in stimulus:
            ctx.set(dut.i, value)
            ctx.set(dut.en, en)
            seen.append(ctx.get(dut.o))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    chain = [0] * stages          # registers reset to 0
    for cycle, (value, en) in enumerate(stimulus):
        assert seen[cycle] == chain[-1], f"cycle {cycle}"
        if en:
            chain = [value] + chain[:-1]


def test_no_stages_is_the_value_itself():
    m, value = Module(), Signal(3)
    m._MustUse__silence = True
    assert delayed(m, value, 0, name="line", platform=None) is value


def test_delayed_uses_one_block_per_set_bit_longest_first():
    m = Module()
    delayed(m, Signal(4), 11, name="line", platform=None)
    blocks = [(name, sub.stages) for name, sub in ((n, m.submodules[n]) for n in
              ("line_delay8", "line_delay2", "line_delay1"))]
    assert blocks == [("line_delay8", 8), ("line_delay2", 2), ("line_delay1", 1)]
    for name, _ in blocks:
        m.submodules[name]._MustUse__silence = True
    m._MustUse__silence = True

