"""`hwgen.activation` (the sigmoid/tanh tables and their error) and `hwgen.hw.activation` (the unit)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.activation import PiecewiseLinear
from hwgen.hw.activation import ActivationUnit

# The stated maximum errors against float over all 65,536 inputs (README, hwgen.fxp.lstm_layer): Q3.12, 256 segments.
BOUNDS = {"sigmoid": 1.5e-4, "tanh": 3.1e-4}


@pytest.mark.parametrize("function", ["sigmoid", "tanh"])
def test_max_error_over_every_input(function):
    table = PiecewiseLinear(function, frac=12, segment_bits=8)
    worst, mean = table.max_error()
    assert worst <= BOUNDS[function]
    assert mean < worst / 2
    # Within one and a half output LSBs, and finer tables are closer.
    assert worst * 2 ** 12 < 1.5
    assert PiecewiseLinear(function, frac=12, segment_bits=9).max_error()[0] < worst


@pytest.mark.parametrize("function", ["sigmoid", "tanh"])
def test_tables_are_monotonic_and_in_range(function):
    table = PiecewiseLinear(function, frac=12)
    x = np.arange(-(1 << 15), 1 << 15)
    y = table(x)
    assert np.all(np.diff(y) >= 0)
    lo = 0 if function == "sigmoid" else -(1 << 12)
    assert y.min() >= lo and y.max() <= 1 << 12


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="function"):
        PiecewiseLinear("relu")
    with pytest.raises(ValueError, match="frac"):
        PiecewiseLinear("tanh", frac=15)


@pytest.mark.parametrize("function", ["sigmoid", "tanh"])
def test_unit_matches_the_table(function):
    table = PiecewiseLinear(function, frac=12, segment_bits=6)
    dut = ActivationUnit(table)
    rng = np.random.default_rng(1)
    # Every segment's ends and a random sample; the unit answers LATENCY cycles later.
    step = 1 << table.offset_bits
    xs = [int(v) for v in np.concatenate([np.arange(-(1 << 15), 1 << 15, step), np.arange(-(1 << 15) + step - 1, 1 << 15, step),
                                          rng.integers(-(1 << 15), 1 << 15, 300)])]
    want = table(np.array(xs))
    got = []

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for k in range(len(xs) + ActivationUnit.LATENCY):
            if k < len(xs):
                ctx.set(dut.x, xs[k])
            await ctx.tick()
            if k + 1 >= ActivationUnit.LATENCY:
                got.append(ctx.get(dut.y))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(xs)] == [int(v) for v in want]
