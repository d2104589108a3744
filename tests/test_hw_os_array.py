"""The output-stationary array (`hwgen.hw.os_array`) and its sequencer (`hwgen.hw.os_sequencer`) in Amaranth's
simulator: tiles of random sizes back to back give the exact dot products, row by row in pixel order, at the
documented latency; the sequencer walks the golden slot sequence of `LayerSchedule.os_slots_sequence`."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.dtypes import IntType
from hwgen.hw.config import pack_config
from hwgen.hw.os_array import OutputStationaryArray, output_latency
from hwgen.hw.os_sequencer import OutputStationarySequencer
from hwgen.problem import ConvProblem
from hwgen.schedule import LayerSchedule
from tests.top_bench import make_spec

INT8, UINT8, INT32 = IntType(8), IntType(8, signed=False), IntType(32)


def _pack(values, bits):
    return sum((int(v) & ((1 << bits) - 1)) << (n * bits) for n, v in enumerate(values))


def _unpack(word, count, bits):
    lanes = [(word >> (n * bits)) & ((1 << bits) - 1) for n in range(count)]
    return [v - (1 << bits) if v >> (bits - 1) else v for v in lanes]


def run_tiles(*, rows, cols, tiles, act_type=INT8, gap=0):
    """Feed tiles (acts[K, rows], weights[K, cols], valid lanes) back to back, each led by bubbles to at least
    ``rows`` slots (plus ``gap``), as the sequencer does; return the (cycle, lanes) of every output beat and
    each tile's last-slot cycle."""
    dut = OutputStationaryArray(rows=rows, cols=cols, act_type=act_type, weight_type=INT8, acc_type=INT32)
    slots, last_cycles = [], []
    for acts, weights, lanes in tiles:
        K = len(acts)
        slots += [None] * (max(0, rows - K) + gap)
        for k in range(K):
            slots.append((_pack(acts[k], act_type.bits), _pack(weights[k], 8), (1 << lanes) - 1, k == 0,
                          k == K - 1))
        last_cycles.append(len(slots) - 1)
    beats = []

    async def bench(ctx):
        for cycle in range(len(slots) + rows + cols + 8):
            slot = slots[cycle] if cycle < len(slots) else None
            acts, weights, valid, first, last = slot if slot else (0, 0, 0, 0, 0)
            ctx.set(dut.acts, acts)
            ctx.set(dut.weights, weights)
            ctx.set(dut.valid, valid)
            ctx.set(dut.first, first)
            ctx.set(dut.last, last)
            if ctx.get(dut.out_valid):
                beats.append((cycle, _unpack(ctx.get(dut.out_data), cols, 32)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return beats, last_cycles


def random_tiles(rng, *, rows, cols, count, act_type=INT8, k_range=(1, 20)):
    tiles = []
    for _ in range(count):
        K = int(rng.integers(*k_range))
        acts = rng.integers(act_type.min, act_type.max, (K, rows), endpoint=True)
        weights = rng.integers(-128, 127, (K, cols), endpoint=True)
        tiles.append((acts, weights, int(rng.integers(1, rows + 1))))
    return tiles


@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 3), (4, 4), (5, 2)])
@pytest.mark.parametrize("act_type", [INT8, UINT8], ids=["int8", "uint8"])
def test_back_to_back_tiles_give_exact_outputs_at_the_documented_latency(rows, cols, act_type):
    rng = np.random.default_rng(rows * 10 + cols)
    tiles = random_tiles(rng, rows=rows, cols=cols, count=6, act_type=act_type)
    beats, last_cycles = run_tiles(rows=rows, cols=cols, tiles=tiles, act_type=act_type)
    want = []
    for (acts, weights, lanes), last in zip(tiles, last_cycles):
        result = acts.T.astype(np.int64) @ weights.astype(np.int64)      # [rows, cols]
        for row in range(lanes):
            want.append((last + output_latency(cols=cols) + row, result[row].tolist()))
    assert beats == want


def test_extreme_products_over_a_long_reduction_are_exact():
    rows, cols, K = 3, 2, 1000
    acts = np.full((K, rows), -128)
    weights = np.full((K, cols), -128)
    beats, _ = run_tiles(rows=rows, cols=cols, tiles=[(acts, weights, rows)])
    assert [lanes for _, lanes in beats] == [[K * 128 * 128] * cols] * rows


def test_slack_between_tiles_changes_nothing_but_the_timing():
    rng = np.random.default_rng(7)
    tiles = random_tiles(rng, rows=3, cols=2, count=4)
    tight, _ = run_tiles(rows=3, cols=2, tiles=tiles)
    loose, _ = run_tiles(rows=3, cols=2, tiles=tiles, gap=5)
    assert [lanes for _, lanes in tight] == [lanes for _, lanes in loose]


@pytest.mark.parametrize("C, E, F, M", [(5, 2, 3, 3), (2, 3, 3, 9), (13, 1, 9, 4)])
def test_sequencer_walks_the_golden_slots(C, E, F, M):
    spec = make_spec(4, 4, bank=64, acc=4, dataflow="output_stationary")
    schedule = LayerSchedule(spec, ConvProblem("s", "conv2d", C=C, H=E, W=F, M=M, E=E, F=F, R=1, S=1))
    dut = OutputStationarySequencer(spec)
    seen, done_at = [], []

    async def bench(ctx):
        ctx.set(dut.cfg.as_value(), pack_config(spec, schedule.config_values()))
        ctx.set(dut.en, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(schedule.os_slots + 3):
            if ctx.get(dut.issue):
                seen.append((ctx.get(dut.act_addr), ctx.get(dut.valid), bool(ctx.get(dut.first)),
                             bool(ctx.get(dut.last))))
            await ctx.tick()
            if ctx.get(dut.done) and not done_at:
                done_at.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == list(schedule.os_slots_sequence())
    assert done_at == [schedule.os_slots - 1]   # bubbles of the last tile included
