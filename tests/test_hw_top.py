"""The accelerator top (`hwgen.hw.top.AcceleratorTop`) with its post-op chain, end to end in Amaranth's simulator.

Every chain of post-ops runs on an untiled and on a tiled layer: the output beats must be
``hwgen.postops.apply(reference.conv2d)`` bit for bit, and the measured cycles `hwgen.perf.predict_plan`. Then
commands with different post-op settings follow each other back to back: the settings ride with each beat
through the chain, and the parameters of the next command load into the other bank (or wait for it) while the
current one streams.
"""

import dataclasses

import pytest

from hwgen.dtypes import uint8
from hwgen.errors import MappingError
from hwgen.perf import POSTOPS, predict_commands, predict_plan
from hwgen.postops import PostOps, pack_params
from hwgen.schedule import LayerSchedule
from hwgen.tiling import plan_layer
from tests.top_bench import (check_beats, conv, lane_decoder, make_spec, random_operands, run_plan_on_top,
                              run_top)

CHAINS = {
    "none": PostOps(),
    "bias": PostOps(bias=True),
    "requant": PostOps(bias=True, requant=True),
    "requant_relu": PostOps(bias=True, requant=True, relu=True),
    "requant_relu_maxpool": PostOps(bias=True, requant=True, relu=True, pool="max"),
    "avgpool": PostOps(pool="avg"),
    "requant_uint8_avgpool": PostOps(requant=True, pool="avg", out_type=uint8),
}




# (spec, problem): one command; and one split into row bands, channel tiles and output-channel tiles.
# Odd output sizes (5x3, 4x3): pooling drops the last row and/or column; M=3 leaves a padding lane.
UNTILED = (make_spec(2, 2, bank=64, acc=64), conv("untiled", 3, 3, 6, 4, 2))
TILED = (make_spec(2, 2, bank=12, acc=6, max_out_channels=4), conv("tiled", 3, 3, 4, 3, 3, pad=1))


@pytest.mark.parametrize("tiled", [False, True], ids=["untiled", "tiled"])
@pytest.mark.parametrize("chain", CHAINS)
def test_every_chain_is_exact_and_meets_the_cycle_model(chain, tiled):
    spec, problem = TILED if tiled else UNTILED
    plan = plan_layer(spec, problem, CHAINS[chain], im2col=False)
    if tiled:
        assert len({(t.e0, t.e1) for t in plan.tiles}) > 1 and len({(t.c0, t.c1) for t in plan.tiles}) > 1
        assert len({(t.m0, t.m1) for t in plan.tiles}) > 1
    else:
        assert not plan.tiled
    run = run_plan_on_top(plan, seed=len(chain))
    assert run.cycles == predict_plan(plan).cycles


def test_tiled_chain_under_random_stalls():
    spec, problem = TILED
    plan = plan_layer(spec, problem, CHAINS["requant_relu_maxpool"], im2col=False)
    run = run_plan_on_top(plan, seed=4, stall=0.3)
    # Stalls only slow the RTL down; one that hits no critical cycle costs nothing.
    assert run.cycles >= predict_plan(plan).cycles


# Commands with different post-ops, back to back -------------------------------------------------------------------

SEQUENCE = [
    # (problem, chain): output sizes differ, so the pooling line buffer and the counters restart every command
    (conv("c0", 2, 3, 5, 5, 2), "requant_relu_maxpool"),
    (conv("c1", 2, 3, 3, 4, 2, pad=1), "none"),
    (conv("c2", 4, 4, 3, 4, 2), "bias"),
    (conv("c3", 2, 3, 4, 4, 3, pad=1), "requant_uint8_avgpool"),
    (conv("c4", 2, 2, 3, 3, 1), "requant"),
    (conv("c5", 3, 3, 5, 4, 2), "avgpool"),
    (conv("c6", 1, 5, 2, 3, 2, pad=1), "requant_relu"),
]


def sequence_commands(spec, *, act_banks, param_banks):
    """One command per layer of `SEQUENCE`, each loading its activations into ``act_banks(n)`` and, when it has
    parameters, them into ``param_banks(k)`` (k counts the commands with parameters)."""
    commands, k = [], 0
    for n, (problem, chain) in enumerate(SEQUENCE):
        postops = CHAINS[chain]
        bank = param_banks(k) if postops.needs_params else 0
        k += postops.needs_params
        commands.append(LayerSchedule(spec, problem, act_bank=act_banks(n), postops=postops, param_bank=bank))
    return commands


def run_sequence(spec, commands, *, seed, stall=0.0):
    streams = {"cfg": [], "weights": [], "acts": [], "params": []}
    expected = []
    for n, schedule in enumerate(commands):
        ops = random_operands(spec, schedule.problem, seed + n)
        streams["cfg"].append(schedule.config_word())
        streams["weights"] += schedule.pack_weights(ops.weight)
        streams["acts"] += schedule.pack_acts(ops.act)
        if schedule.param_words:
            streams["params"] += pack_params(ops.params, cols=spec.cols, lanes=spec.postop_lanes)
        expected.append(schedule.pack_outputs(ops.expected(schedule.postops, spec.acc_type)))
    run = run_top(spec, **streams, expect_beats=sum(len(beats) for beats in expected), stall=stall, seed=seed)
    at, run.last_out = 0, []
    for schedule, beats in zip(commands, expected):
        check_beats(run.beats[at:at + len(beats)], beats, decode=lane_decoder(spec),
                    describe=schedule.describe_output, what=f"{schedule.problem.name} with {schedule.postops}")
        at += len(beats)
        run.last_out.append(run.out_cycles[at - 1])
    return run


BANKINGS = {
    # How consecutive commands share the two activation banks and the two parameter banks.
    "alternating_banks": (lambda n: n % 2, lambda k: k % 2),
    "one_bank_each": (lambda n: 0, lambda k: 0),     # every load waits for the previous user's release
    "mixed": (lambda n: (n // 2) % 2, lambda k: (k // 2) % 2),
}


@pytest.mark.parametrize("banking", BANKINGS)
def test_commands_with_different_postops_back_to_back(banking):
    spec = make_spec(2, 2, bank=64, acc=64)
    act_banks, param_banks = BANKINGS[banking]
    commands = sequence_commands(spec, act_banks=act_banks, param_banks=param_banks)
    run = run_sequence(spec, commands, seed=10)
    if banking == "alternating_banks":
        # No drain between commands: each is accepted before the previous one's last result is out.
        assert all(accept < last for accept, last in zip(run.cfg_cycles[1:], run.last_out))
    assert run.cycles == predict_commands(commands).cycles


def test_commands_with_different_postops_back_to_back_under_random_stalls():
    spec = make_spec(2, 2, bank=64, acc=64)
    commands = sequence_commands(spec, act_banks=lambda n: n % 2, param_banks=lambda k: k % 2)
    run = run_sequence(spec, commands, seed=20, stall=0.35)
    assert run.cycles > predict_commands(commands).cycles


# The output-stationary array -----------------------------------------------------------------------------------

OS_UNTILED = (make_spec(4, 4, bank=256, acc=4, dataflow="output_stationary"),
              conv("os_untiled", 3, 6, 6, 5, 3, pad=1))
# A bank of 54 words holds two tiles of K = 27: pixel-range commands; parameters for one m-fold: m-tiles.
OS_TILED = (make_spec(4, 4, bank=54, acc=4, dataflow="output_stationary", max_out_channels=4),
            conv("os_tiled", 3, 6, 7, 7, 3, stride=2, pad=1))


@pytest.mark.parametrize("tiled", [False, True], ids=["untiled", "tiled"])
@pytest.mark.parametrize("chain", CHAINS)
def test_output_stationary_every_chain_is_exact_and_meets_the_cycle_model(chain, tiled):
    spec, problem = OS_TILED if tiled else OS_UNTILED
    plan = plan_layer(spec, problem, CHAINS[chain])
    assert plan.im2col
    if tiled:
        assert len({(t.e0, t.e1, t.p0) for t in plan.tiles}) > 1
        if CHAINS[chain].needs_params:
            assert len({(t.m0, t.m1) for t in plan.tiles}) > 1
    else:
        assert not plan.tiled
    run = run_plan_on_top(plan, seed=len(chain))
    assert run.cycles == predict_plan(plan).cycles


def test_output_stationary_reductions_shorter_than_the_array_follow_long_ones():
    # K = 36 then K = 1 < rows (bubbles lead the tile) then K = 9: the read-out must never see two finished
    # rows of a column at once, across commands too.
    spec = make_spec(4, 4, bank=128, acc=4, dataflow="output_stationary")
    plans = [plan_layer(spec, problem, postops) for problem, postops in (
        (conv("long", 4, 5, 5, 5, 3), PostOps()),
        (conv("short", 1, 6, 5, 3, 1), PostOps(bias=True, requant=True)),
        (conv("mid", 1, 3, 5, 5, 3, pad=1), PostOps(pool="max")))]
    commands = [tile.schedule for plan in plans for tile in plan.tiles]
    assert [c.reduction for c in commands] == [36, 1, 9]
    run = run_sequence(spec, commands, seed=3)
    assert run.cycles == predict_commands(commands).cycles


def test_output_stationary_under_random_stalls():
    spec, problem = OS_TILED
    plan = plan_layer(spec, problem, CHAINS["requant_relu"])
    run = run_plan_on_top(plan, seed=8, stall=0.3)
    assert run.cycles >= predict_plan(plan).cycles


# Built without the post-op chain (postops=False) ------------------------------------------------------------------

@pytest.mark.parametrize("tiled", [False, True], ids=["untiled", "tiled"])
def test_without_postop_chain_raw_accumulators_meet_the_cycle_model(tiled):
    spec, problem = TILED if tiled else UNTILED
    bare = dataclasses.replace(spec, postops=False)
    plan = plan_layer(bare, problem, PostOps(), im2col=False)
    assert plan.tiled == tiled
    run = run_plan_on_top(plan, seed=3)
    model = predict_plan(plan).cycles
    assert run.cycles == model
    # The same layer with a full-width chain built (and unused) takes exactly the chain's latency longer.
    full = dataclasses.replace(spec, postop_lanes=spec.cols)
    assert predict_plan(plan_layer(full, problem, PostOps(), im2col=False)).cycles == model + POSTOPS


def test_without_postop_chain_under_random_stalls():
    spec, problem = TILED
    plan = plan_layer(dataclasses.replace(spec, postops=False), problem, PostOps(), im2col=False)
    run = run_plan_on_top(plan, seed=8, stall=0.3)
    assert run.cycles >= predict_plan(plan).cycles


@pytest.mark.parametrize("chain", [c for c in CHAINS if c != "none"])
def test_without_postop_chain_layers_with_postops_are_rejected(chain):
    spec, problem = UNTILED
    bare = dataclasses.replace(spec, postops=False)
    with pytest.raises(MappingError, match=r"postops=False.*postops=True"):
        plan_layer(bare, problem, CHAINS[chain])
    with pytest.raises(MappingError, match="postops=True"):
        LayerSchedule(bare, problem, postops=CHAINS[chain])


@pytest.mark.parametrize("problem, period", [(conv("two_pixels", 4, 3, 1, 3, 1, 2), 2),
                                             (conv("one_pixel", 5, 2, 2, 2, 2), 2),
                                             (conv("three_pixels", 4, 3, 1, 3, 1, 1), 3),
                                             (conv("four_pixels", 4, 3, 1, 4, 1, 1), 4)],
                         ids=["two_pixels", "one_pixel", "three_pixels", "four_pixels"])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_pixels_recurring_every_two_three_or_four_slots_use_the_forwarded_accumulator(problem, period, stall):
    # fold_period 2, 3 or 4: a pixel's next read is issued (three cycles before its sum) before its previous
    # sum has been written back (the sum is registered, then written), so the accumulator must forward that
    # sum (its block RAM read misses it): the sum of 2, 3 or 4 cycles before.
    spec = make_spec(2, 2, bank=64, acc=64)
    plan = plan_layer(spec, problem, PostOps(), im2col=False)
    assert all(t.schedule.fold_period == period and t.schedule.k_folds > 1 for t in plan.tiles)
    run = run_plan_on_top(plan, seed=5, stall=stall)
    model = predict_plan(plan).cycles
    assert run.cycles == model if not stall else run.cycles >= model


def test_many_small_commands_fill_the_emit_queue():
    """24 one-pixel commands while the output is mostly stalled: their beats pile up in the output FIFO and
    the post-op chain, so the hand-off fills the queue of emitting commands (`emit_not_full`) and waits for
    room; every beat still comes out exact and in order (a room flag that let a write into a full queue would
    lose a command's settings)."""
    spec = make_spec(2, 2, bank=64, acc=64)
    chain = CHAINS["none"]         # no parameters: a parameter bank is released only as its command leaves
    commands = [LayerSchedule(spec, conv(f"p{n}", 2, 2, 1, 1, 1), act_bank=n % 2, postops=chain,
                              param_bank=n % 2) for n in range(24)]
    streams = {"cfg": [], "weights": [], "acts": [], "params": []}
    expected = []
    for n, schedule in enumerate(commands):
        ops = random_operands(spec, schedule.problem, 40 + n)
        streams["cfg"].append(schedule.config_word())
        streams["weights"] += schedule.pack_weights(ops.weight)
        streams["acts"] += schedule.pack_acts(ops.act)
        expected.append(schedule.pack_outputs(ops.expected(chain, spec.acc_type)))
    run = run_top(spec, **streams, expect_beats=sum(len(beats) for beats in expected), stall=0.0,
                  sink_stall=0.97, seed=3)
    check_beats(run.beats, [beat for beats in expected for beat in beats], decode=lane_decoder(spec))
