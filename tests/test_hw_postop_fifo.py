"""A post-op chain narrower than the array (`AcceleratorSpec.postop_lanes`): the block-RAM FIFO in front of it
(`hwgen.hw.fifo.BlockRAMHeadFIFO`) against a queue model, and whole layers on the top whose beats come faster
than the chain takes them, so that the engines hold back the slots that finish beats (`hwgen.hw.top`'s
credits): every value exact, measured cycles = the model's (`hwgen.perf`), holds included.
"""

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.errors import MappingError
from hwgen.hw.fifo import BlockRAMHeadFIFO
from hwgen.perf import _PostOpFifo, predict_commands, predict_plan
from hwgen.postops import PostOps
from hwgen.spec import AcceleratorSpec, default_postop_lanes
from hwgen.tiling import plan_layer
from tests.top_bench import conv, run_plan_on_top

FULL = PostOps(bias=True, requant=True, relu=True)
POOL = PostOps(bias=True, requant=True, relu=True, pool="max")
AVG = PostOps(bias=True, requant=True, pool="avg", zero_point=3)


def lin(name, K, N, M):
    from hwgen.problem import ConvProblem
    return ConvProblem(name=name, kind="linear", C=K, H=1, W=N, M=M, E=1, F=N, R=1, S=1)


# The FIFO ------------------------------------------------------------------------------------------------------

def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("p_write, p_pop", [(0.9, 0.3), (0.3, 0.9), (1.0, 1.0), (0.6, 0.6)])
def test_head_fifo_equals_a_queue(p_write, p_pop):
    """Random writes and pops against a deque: same words in order, `released` once per word, the head no
    earlier than WRITE_TO_HEAD cycles after its write and one word per cycle when words are stored."""
    depth = 5
    dut = BlockRAMHeadFIFO(width=16, depth=depth)
    rng = np.random.default_rng(int(10 * p_write + p_pop * 100))
    got, written_at, released = [], {}, []

    async def testbench(ctx):
        model, word = deque(), 0
        for cycle in range(600):
            write = bool(rng.random() < p_write) and word < 300
            ctx.set(dut.w_stream.valid, write)
            ctx.set(dut.w_stream.payload, word)
            pop = bool(rng.random() < p_pop)
            ctx.set(dut.r_en, pop)
            if ctx.get(dut.released):
                released.append(cycle)
            if ctx.get(dut.r_rdy):
                head = ctx.get(dut.r_data)
                assert model and head == model[0], f"cycle {cycle}: head {head}, queue {list(model)[:3]}"
                assert cycle >= written_at[head] + BlockRAMHeadFIFO.WRITE_TO_HEAD
                if pop:
                    got.append(model.popleft())
            if write and ctx.get(dut.w_stream.ready):
                model.append(word)
                written_at[word] = cycle
                word += 1
            await ctx.tick()

    run(dut, testbench)
    assert got == list(range(len(got))) and len(got) > 50
    assert len(released) >= len(got)


@pytest.mark.parametrize("p_write, p_pop", [(0.9, 0.3), (0.3, 0.9), (1.0, 1.0), (0.6, 0.6), (1.0, 0.5)])
def test_head_fifo_read_parts_form_is_cycle_identical(p_write, p_pop):
    """`read_parts=4` (the output-register enables as flip-flop copies registered with the consumer's
    `next_r_en`, the read enables a gate from them) against the one-part form on the same random writes and pops: the same ready, head, data and
    `released` in every cycle."""
    rng = np.random.default_rng(int(100 * p_write + 7 * p_pop))
    cycles = 500
    writes = rng.random(cycles) < p_write
    pops = np.append(rng.random(cycles) < p_pop, False)

    def trace(read_parts):
        dut = BlockRAMHeadFIFO(width=16, depth=5, read_parts=read_parts)
        seen = []

        async def testbench(ctx):
            word = 0
            for cycle in range(cycles):
                ctx.set(dut.w_stream.valid, bool(writes[cycle]))
                ctx.set(dut.w_stream.payload, word if writes[cycle] else int(rng.integers(1 << 16)))
                ctx.set(dut.r_en, bool(pops[cycle]))
                if read_parts > 1:
                    ctx.set(dut.next_r_en, bool(pops[cycle + 1]))
                ready, rdy = ctx.get(dut.w_stream.ready), ctx.get(dut.r_rdy)
                seen.append((ready, rdy, ctx.get(dut.r_data) if rdy else None, ctx.get(dut.released)))
                if writes[cycle] and ready:
                    word += 1
                await ctx.tick()

        run(dut, testbench)
        return seen

    one, four = trace(1), trace(4)
    assert sum(rdy and pops[k] for k, (_, rdy, _, _) in enumerate(one)) > 50
    assert four == one


def test_head_fifo_delivers_a_word_per_cycle():
    """Ten words written back to back, then popped every cycle: heads in cycles 3..12 after the first write."""
    dut = BlockRAMHeadFIFO(width=8, depth=16)
    heads = []

    async def testbench(ctx):
        ctx.set(dut.r_en, 1)
        for cycle in range(20):
            ctx.set(dut.w_stream.valid, cycle < 10)
            ctx.set(dut.w_stream.payload, cycle)
            if ctx.get(dut.r_rdy):
                heads.append((cycle, ctx.get(dut.r_data)))
            await ctx.tick()

    run(dut, testbench)
    assert heads == [(3 + k, k) for k in range(10)]


# The spec ------------------------------------------------------------------------------------------------------

def test_default_lanes_and_fifo_depth():
    assert [default_postop_lanes(c) for c in (1, 2, 4, 6, 8, 12, 16, 32)] == [1, 1, 1, 1, 2, 3, 4, 8]
    assert default_postop_lanes(8, "output_stationary") == 8
    spec = AcceleratorSpec(rows=8, cols=8)
    assert (spec.postop_lanes, spec.postop_groups, spec.postop_fifo_depth) == (2, 4, 512)
    full = AcceleratorSpec(rows=8, cols=8, postop_lanes=8)
    assert (full.postop_groups, full.postop_fifo_depth) == (1, 0)
    assert AcceleratorSpec(rows=8, cols=8, postops=False).postop_fifo_depth == 0
    assert AcceleratorSpec.from_dict(spec.to_dict()) == spec


def test_bad_lanes_are_named():
    with pytest.raises(MappingError, match=r"postop_lanes=3 must divide cols=8 \(one of \[1, 2, 4, 8\]\)"):
        AcceleratorSpec(rows=8, cols=8, postop_lanes=3)
    with pytest.raises(MappingError, match="output-stationary array's read-out cannot be held back"):
        AcceleratorSpec(rows=4, cols=4, dataflow="output_stationary", postop_lanes=2)
    with pytest.raises(MappingError, match="postop_fifo_depth=1 must be an integer from 2 to 65536"):
        AcceleratorSpec(rows=4, cols=4, postop_fifo_depth=1)
    # A depth without a narrower chain (carried over by dataclasses.replace) is dropped.
    assert AcceleratorSpec(rows=4, cols=4, postop_lanes=4, postop_fifo_depth=8).postop_fifo_depth == 0
    import dataclasses
    assert dataclasses.replace(AcceleratorSpec(rows=8, cols=8), postops=False).postop_fifo_depth == 0


# Whole layers on the top: beats faster than the chain, slots held back ----------------------------------------

def holds(plan):
    """The cycles the model holds back beat-finishing slots over the plan (0 with a full-width chain)."""
    spec = plan.spec
    if spec.postop_groups == 1:
        return 0
    import hwgen.perf as perf
    total = []
    original = perf._PostOpFifo.run

    def run(self, s, first_slot):
        entries, held = original(self, s, first_slot)
        total.append(held)
        return entries, held
    perf._PostOpFifo.run = run
    try:
        predict_plan(plan)
    finally:
        perf._PostOpFifo.run = original
    return sum(total)


def spec_of(rows, cols, lanes, depth, **extra):
    extra.setdefault("max_pool_width", 16)
    extra.setdefault("acc_buffer_bytes", 64 * 4 * cols)
    return AcceleratorSpec(rows=rows, cols=cols, postop_lanes=lanes, postop_fifo_depth=depth,
                           act_buffer_bytes=256 * rows, weight_buffer_bytes=64 * cols * rows, **extra)


CASES = {
    # one k-fold per m-fold: a beat per slot, the chain takes one per `groups` cycles
    "ws2x2_one_kfold": (spec_of(2, 2, 1, 4), conv("a", 2, 6, 6, 5, 1), FULL),
    "ws4x4_one_kfold_maxpool": (spec_of(4, 4, 1, 3), conv("b", 3, 9, 6, 6, 1), POOL),
    "ws4x4_two_lanes": (spec_of(4, 4, 2, 5), conv("c", 6, 9, 5, 5, 1), FULL),
    "ws3x3_avgpool_stride": (spec_of(3, 3, 1, 2), conv("d", 3, 7, 9, 8, 3, stride=2, pad=1), AVG),
    # several commands (the emit queue fills: each command's beats are still in the FIFO as the next starts)
    "ws2x4_tiled": (spec_of(2, 4, 1, 6, acc_buffer_bytes=8 * 4 * 4), conv("e", 2, 10, 5, 6, 1), FULL),
    "mv4x4_one_group": (spec_of(4, 4, 1, 2, dataflow="matrix_vector"), lin("f", 3, 2, 13), FULL),
    "mv2x2_holds": (spec_of(2, 2, 1, 3, dataflow="matrix_vector"), lin("g", 2, 3, 9), FULL),
}


@pytest.mark.parametrize("name", list(CASES))
def test_held_slots_are_exact_and_modelled(name):
    spec, problem, postops = CASES[name]
    plan = plan_layer(spec, problem, postops)
    if name != "ws3x3_avgpool_stride":
        assert holds(plan) > 0, "the case must hold slots back"
    run = run_plan_on_top(plan, seed=len(name))
    assert run.cycles == predict_plan(plan).cycles
    model = []
    predict_commands(plan.commands, out_cycles=model)
    assert [t - run.cfg_cycles[0] for t in run.out_cycles] == model, "every beat leaves when the model says"


@pytest.mark.parametrize("name", ["ws4x4_one_kfold_maxpool", "mv2x2_holds"])
def test_random_stalls_keep_held_layers_exact(name):
    spec, problem, postops = CASES[name]
    plan = plan_layer(spec, problem, postops)
    run = run_plan_on_top(plan, seed=3, stall=0.3)
    assert run.cycles >= predict_plan(plan).cycles


def test_a_deep_fifo_never_holds_a_layer_whose_outputs_come_slowly_enough():
    """Nine k-folds per m-fold on a chain of a quarter of the columns: the FIFO takes each m-fold's burst and
    drains it before the next, and the model holds nothing."""
    spec = AcceleratorSpec(rows=4, cols=4, max_pool_width=16)
    assert spec.postop_groups == 4
    plan = plan_layer(spec, conv("k9", 4, 12, 8, 8, 3, pad=1), FULL)
    assert holds(plan) == 0
    run = run_plan_on_top(plan, seed=5)
    assert run.cycles == predict_plan(plan).cycles


def test_the_fifo_model_recurrence():
    """Six beats of one command on a 2x2 array with a one-lane chain (two cycles a beat) and a two-beat FIFO.
    A beat is written 10 cycles after its slot (buffer read 2, array 7, accumulator 1), leaves the storage a
    cycle later (or as the previous beat moves to the head), enters the chain two cycles after that and never
    sooner than `groups` after the previous one; slot j may issue only after beat j - 2 left the storage."""
    spec = spec_of(2, 2, 1, 2)
    plan = plan_layer(spec, conv("h", 2, 2, 1, 6, 1), FULL)
    fifo = _PostOpFifo(spec)
    entries, held = fifo.run(plan.commands[0], first_slot=0)
    assert fifo.latched == [11, 12, 23, 24, 35, 36]
    assert entries.tolist() == [13, 15, 25, 27, 37, 39]
    assert held == 20            # slot 2 issues at 12 instead of 2, slot 4 at 24 instead of 14
    run = run_plan_on_top(plan, seed=6)
    assert run.cycles == predict_plan(plan).cycles


def test_every_beat_leaves_when_the_model_says_and_the_emit_queue_holds_commands_back():
    """Thirty short commands whose beats wait for a one-lane chain on a 16-wide array (each command's settings
    wait in the emit queue until its last beat enters the chain: at most four commands ahead), then a layer
    of long reductions: the cycle of every output beat equals the model's, and the model without the emit
    queue's limit would not."""
    import hwgen.perf as perf
    from hwgen.sim.pysim import run_streams
    from tests.top_bench import random_operands
    spec = AcceleratorSpec(rows=2, cols=16, postop_lanes=1, postop_fifo_depth=200, act_buffer_bytes=2 * 2 * 64,
                           weight_buffer_bytes=16 * 64, acc_buffer_bytes=2 * 16 * 4, max_pool_width=16)
    plans = [plan_layer(spec, conv("short", 2, 16, 30, 2, 1), PostOps(relu=True)),
             plan_layer(spec, conv("long", 8, 16, 2, 2, 3, pad=1), PostOps(relu=True))]
    assert len(plans[0].commands) == 30
    streams = {"cfg": [], "weights": [], "acts": [], "params": []}
    for n, plan in enumerate(plans):
        ops = random_operands(spec, plan.problem, seed=n)
        streams["cfg"] += plan.config_words()
        streams["weights"] += plan.weight_stream(ops.weight)
        streams["acts"] += plan.act_stream(ops.act)
    commands = [s for plan in plans for s in plan.commands]
    model = []
    perf.predict_commands(commands, out_cycles=model)
    run = run_streams(spec, **streams, expect_beats=sum(plan.out_beats for plan in plans), max_cycles=50_000)
    measured = [t - run.cfg_cycles[0] for t in run.out_cycles]
    assert measured == model
    unlimited = []
    depth, perf.EMIT_QUEUE_DEPTH = perf.EMIT_QUEUE_DEPTH, 1 << 30
    try:
        perf.predict_commands(commands, out_cycles=unlimited)
    finally:
        perf.EMIT_QUEUE_DEPTH = depth
    assert unlimited != model
