"""The tiled wide multiplier (`hwgen.hw.wide_multiplier`): exact products, `LATENCY` enabled cycles late."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Shape, signed, unsigned
from amaranth.sim import Simulator

from hwgen.hw.target import Target
from hwgen.hw.wide_multiplier import WideMultiplier, operand_parts


class ElaboratedFor(Elaboratable):
    """``dut`` elaborated for ``platform`` (the simulator elaborates with none)."""

    def __init__(self, dut, platform):
        self.dut, self.platform = dut, platform
        dut._MustUse__silence = True      # elaborated here, not by Amaranth's Fragment.get

    def elaborate(self, platform):
        return self.dut.elaborate(self.platform)


def value_range(shape):
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def test_operand_parts_fit_one_hard_multiplier_each():
    assert operand_parts(signed(33)) == [(0, unsigned(17)), (17, signed(16))]
    assert operand_parts(signed(32)) == [(0, unsigned(17)), (17, signed(15))]
    assert operand_parts(signed(18)) == [(0, signed(18))]
    assert operand_parts(unsigned(35)) == [(0, unsigned(17)), (17, unsigned(17)), (34, unsigned(1))]
    dut = WideMultiplier(a_shape=signed(33), b_shape=signed(32))
    dut._MustUse__silence = True
    assert dut.tiles == 4


@pytest.mark.parametrize("platform", [None, Target("ice40")], ids=["tiles", "ice40_whole"])
@pytest.mark.parametrize("a_shape, b_shape", [
    (signed(33), signed(32)),        # the post-op requantization multiply
    (signed(18), signed(18)),        # one tile
    (unsigned(40), signed(20)),
    (signed(52), unsigned(35)),      # nine tiles, a three-term second level
    (unsigned(5), unsigned(3)),
])
def test_wide_multiplier_is_exact_with_stalls(a_shape, b_shape, platform):
    dut = WideMultiplier(a_shape=a_shape, b_shape=b_shape)
    rng = np.random.default_rng(Shape.cast(a_shape).width * 7 + Shape.cast(b_shape).width)

    def pick(shape):
        lo, hi = value_range(shape)
        return int(rng.choice([lo, hi, 0, -1 if lo < 0 else 1, int(rng.integers(lo, hi, endpoint=True))]))

    stimulus = [(pick(a_shape), pick(b_shape), int(rng.random() < 0.7)) for _ in range(400)]
    seen = []

    async def testbench(ctx):
        for a, b, en in stimulus:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.en, en)
            seen.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(ElaboratedFor(dut, platform))
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # The model: a shift register of LATENCY stages that moves only with en.
    stages = [None] * WideMultiplier.LATENCY
    for cycle, (a, b, en) in enumerate(stimulus):
        if stages[-1] is not None:
            assert seen[cycle] == stages[-1], f"cycle {cycle}"
        if en:
            stages = [a * b] + stages[:-1]
