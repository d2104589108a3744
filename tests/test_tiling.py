"""Tiling (`hwgen.tiling.plan_layer`): a layer too large for the buffers becomes a sequence of commands.

Three levels of proof:

- the plan's structure: every command fits, the emitting tiles cover the output exactly once, the input-channel
  tiles of one output tile are consecutive with ``acc_init`` on the first and ``acc_emit`` on the last, an
  activation tile is reused (``load_acts=0``) only when the previous command holds it, loads alternate banks,
  ``release`` is on a tile's last user, and ``bytes_moved`` is what the host streams carry;
- `run_plan`, a transaction-level accelerator, executes the golden slots of every command on the packed host
  streams with banked activations and one accumulator memory that poisons what it must not read: composed with
  the post-op golden model, it must give ``apply(reference.conv2d)`` for the chosen plan and for every
  alternative plan `_build` can make;
- the Amaranth simulation of the whole top (`tests.top_bench.run_top`): tiled layers bit-exact, and the measured
  cycles equal to `hwgen.perf.predict_plan` (no stalls) or above it (random stalls).
"""

import re
from dataclasses import replace
from collections import Counter
from itertools import product
from math import ceil

import numpy as np
import pytest

from hwgen.errors import BufferOverflowError, MappingError
from hwgen.perf import predict_plan
from hwgen.postops import PostOps, QuantParams, apply, params_lane_layout
from hwgen.problem import ConvProblem
from hwgen.schedule import LayerSchedule
from hwgen.spec import AcceleratorSpec, buffer_granule_bytes
from hwgen.tiling import ORDERS, _build, plan_layer
from tests.top_bench import conv, make_spec, random_operands, run_plan_on_top




def linear(name, K, N, M):
    return ConvProblem(name, "linear", C=K, H=1, W=N, M=M, E=1, F=N, R=1, S=1)


REQUANT_RELU = PostOps(bias=True, requant=True, relu=True)
MAXPOOL = PostOps(bias=True, requant=True, relu=True, pool="max")

# name: (spec, problem, postops, what the case must exercise)
CASES = {
    "e_bands": (make_spec(2, 2, bank=30, acc=64), conv("e_bands", 2, 3, 8, 5, 3, pad=1), PostOps(), "e"),
    "e_bands_by_accumulators": (make_spec(2, 2, bank=64, acc=10), conv("e_acc", 3, 3, 6, 5, 3, pad=1), PostOps(),
                                "e"),
    "e_bands_stride2_pad1": (make_spec(2, 2, bank=30, acc=64), conv("e_s2", 4, 3, 9, 5, 3, stride=2, pad=1),
                             PostOps(), "ec"),
    "c_tiles": (make_spec(2, 2, bank=12, acc=64), conv("c_tiles", 5, 3, 3, 4, 2), PostOps(), "c"),
    "c_tiles_linear": (make_spec(2, 2, bank=12, acc=64), linear("c_fc", K=9, N=3, M=5), PostOps(), "c"),
    "c_tiles_several_m_folds_kept": (make_spec(2, 2, bank=20, acc=40), conv("c_kept", 6, 5, 4, 5, 2), PostOps(),
                                     "c"),
    "c_and_m_tiles": (make_spec(2, 2, bank=12, acc=12), conv("c_m", 5, 7, 3, 4, 2), PostOps(), "cm"),
    "m_tiles_by_param_memory": (make_spec(2, 2, bank=64, acc=64, max_out_channels=2),
                                conv("m_params", 3, 5, 4, 4, 3, pad=1), PostOps(bias=True), "m"),
    "m_tiles_requant": (make_spec(2, 2, bank=64, acc=64, max_out_channels=4),
                        conv("m_requant", 3, 9, 4, 4, 3, pad=1), REQUANT_RELU, "m"),
    "pool_bands": (make_spec(2, 2, bank=20, acc=64), conv("pool", 2, 3, 8, 4, 3, pad=1), MAXPOOL, "e"),
    "everything": (make_spec(2, 2, bank=16, acc=16, max_out_channels=4), conv("all", 3, 5, 6, 4, 3, pad=1),
                   MAXPOOL, "ecm"),
    "4x4_bands_and_c_tiles": (make_spec(4, 4, bank=24, acc=24), conv("mix4", 9, 6, 6, 5, 3, pad=1), PostOps(),
                              "ec"),
}


def plan_of(case, **kwargs):
    spec, problem, postops, _ = CASES[case]
    return plan_layer(spec, problem, postops, im2col=False, **kwargs)


def ranges(plan):
    """The distinct e-bands, c-ranges and m-ranges of a plan's tiles."""
    tiles = plan.tiles
    return (sorted({(t.e0, t.e1) for t in tiles}), sorted({(t.c0, t.c1) for t in tiles}),
            sorted({(t.m0, t.m1) for t in tiles}))


# The plan's structure -----------------------------------------------------------------------------------------

def check_structure(plan):
    """Every invariant a plan must satisfy for the hardware to compute the layer (see the module docstring)."""
    spec, p, postops = plan.spec, plan.problem if not plan.im2col else plan.lowered, plan.postops
    tiles = plan.tiles
    assert tiles and plan.commands == [t.schedule for t in tiles]
    # Pooling (floor) drops an odd last output row: the plan does not compute it.
    rows_out = p.E - (p.E % 2 if postops.pool != "none" else 0)
    covered = np.zeros((p.M, rows_out), dtype=int)
    reduced = {}                                    # output tile -> the indices of its commands
    for index, tile in enumerate(tiles):
        s, sub = tile.schedule, tile.schedule.problem
        # It fits: one activation bank, the accumulators, one parameter bank.
        assert s.act_words <= spec.act_bank_depth and s.acc_words <= spec.acc_depth
        assert s.param_words <= spec.max_param_folds * spec.postop_groups   # a beat per lane group
        assert s.postops == postops
        # The sub-problem is the tile's block of the layer, reading the rows [h0, h1) of the input.
        assert (sub.C, sub.M, sub.E) == (tile.c1 - tile.c0, tile.m1 - tile.m0, tile.e1 - tile.e0)
        assert (sub.W, sub.F, sub.R, sub.S, sub.stride_h, sub.stride_w, sub.pad_w) == (
            p.W, p.F, p.R, p.S, p.stride_h, p.stride_w, p.pad_w)
        assert (sub.H, sub.pad_h) == (tile.h1 - tile.h0, tile.h0 - (tile.e0 * p.stride_h - p.pad_h))
        for e, r in product(range(tile.e0, tile.e1), range(p.R)):
            h = e * p.stride_h + r - p.pad_h        # global input row read by output row e, kernel row r
            local = (e - tile.e0) * sub.stride_h + r - sub.pad_h
            if 0 <= h < p.H:
                assert tile.h0 <= h < tile.h1 and local == h - tile.h0, (tile, e, r)
            else:
                assert not 0 <= local < sub.H, (tile, e, r)   # padding stays padding
        reduced.setdefault((tile.m0, tile.m1, tile.e0, tile.e1), []).append(index)
        if s.acc_emit:
            covered[tile.m0:tile.m1, tile.e0:tile.e1] += 1
            assert s.param_words == (s.m_folds * spec.postop_groups if postops.needs_params else 0)
        else:
            assert s.param_words == 0 and s.out_beats == 0
    assert (covered == 1).all(), "the emitting tiles must cover the output exactly once"
    # The reduction of one output tile: its c-tiles in consecutive commands, in order, covering C once.
    for key, indices in reduced.items():
        assert indices == list(range(indices[0], indices[-1] + 1)), f"c-tiles of {key} are not consecutive"
        group = [tiles[i] for i in indices]
        assert [(t.c0, t.c1) for t in group] == list(zip([0] + [t.c1 for t in group[:-1]],
                                                         [t.c1 for t in group])) and group[-1].c1 == p.C
        assert [t.schedule.acc_init for t in group] == [True] + [False] * (len(group) - 1)
        assert [t.schedule.acc_emit for t in group] == [False] * (len(group) - 1) + [True]
        # A split reduction keeps the partial sums of every m-fold apart in the accumulators.
        if len(group) > 1:
            assert all(t.schedule.keep_partials for t in group)
            assert {t.schedule.config_values()["acc_stride"] for t in group} == {group[0].schedule.pixels}
    # Activation banks: reuse only what the previous command holds; loads alternate; release on the last user.
    key = lambda t: (t.e0, t.e1, t.c0, t.c1)
    held = [None, None]
    for index, tile in enumerate(tiles):
        s = tile.schedule
        previous = tiles[index - 1] if index else None
        if s.load_acts:
            assert held[s.act_bank] is None, f"command {index} loads a bank still in use"
            if previous is not None:
                assert s.act_bank != previous.schedule.act_bank and key(previous) != key(tile)
            held[s.act_bank] = key(tile)
        else:
            assert previous is not None and key(previous) == key(tile)
            assert s.act_bank == previous.schedule.act_bank and held[s.act_bank] == key(tile)
        last_user = index + 1 == len(tiles) or key(tiles[index + 1]) != key(tile)
        assert s.release == last_user
        if s.release:
            held[s.act_bank] = None
    assert tiles[0].schedule.load_acts
    # Parameter banks alternate over the commands that load parameters.
    banks = [t.schedule.param_bank for t in tiles if t.schedule.param_words]
    assert all(a != b for a, b in zip(banks, banks[1:])), banks
    # Pooling windows never straddle two bands: bands start on even rows.
    if postops.pool != "none":
        assert all(t.e0 % 2 == 0 for t in tiles)
    assert plan.out_beats == sum(t.schedule.out_beats for t in tiles)


def check_bytes_moved(plan, operands):
    """``bytes_moved`` per tensor is the sum over the tiles, and the size of the host streams."""
    spec, tiles = plan.spec, plan.tiles
    act_words = sum(t.schedule.act_words for t in tiles if t.schedule.load_acts)
    weight_words = sum(t.schedule.weight_words for t in tiles)
    out_beats = sum(t.schedule.out_beats for t in tiles)
    assert len(plan.act_stream(operands.act)) == act_words
    assert len(plan.weight_stream(operands.weight)) == weight_words
    assert len(plan.pack_outputs(operands.expected(plan.postops, spec.acc_type))) == out_beats
    moved = plan.bytes_moved
    assert moved["activations"] == act_words * spec.act_word_bits // 8
    assert moved["weights"] == weight_words * spec.weight_word_bits // 8
    assert moved["outputs"] == out_beats * spec.acc_word_bits // 8
    assert moved["total"] == moved["activations"] + moved["weights"] + moved["outputs"]


@pytest.mark.parametrize("case", CASES)
def test_plan_structure(case):
    spec, problem, postops, exercises = CASES[case]
    plan = plan_of(case)
    assert (plan.problem, plan.postops, plan.im2col) == (problem, postops, False)
    check_structure(plan)
    check_bytes_moved(plan, random_operands(spec, problem, seed=1))
    # The case exercises what it is named for.
    bands, c_ranges, m_ranges = ranges(plan)
    split = dict(zip("ecm", (len(bands) > 1, len(c_ranges) > 1, len(m_ranges) > 1)))
    assert all(split[x] for x in exercises), (bands, c_ranges, m_ranges)


def test_a_layer_that_fits_is_one_command_with_the_default_flags():
    spec = make_spec(2, 2, bank=30, acc=15)
    problem = conv("fits", 3, 5, 3, 5, 3, pad=1)             # 2 groups x 3 x 5 = 30 words, E*F = 15 pixels
    assert LayerSchedule(spec, problem).act_words == spec.act_bank_depth
    assert problem.E * problem.F == spec.acc_depth
    for postops in (PostOps(), MAXPOOL):
        plan = plan_layer(spec, problem, postops, im2col=False)
        (tile,) = plan.tiles
        computed = 2 if postops.pool != "none" else 3       # pooling drops the odd last row: not computed
        assert (tile.m0, tile.m1, tile.c0, tile.c1, tile.e0, tile.e1, tile.h0, tile.h1) == (0, 5, 0, 3, 0, computed,
                                                                                           0, 3)
        if postops.pool == "none":
            assert tile.schedule == LayerSchedule(spec, problem, postops=postops)
        assert not plan.tiled and plan.out_beats == tile.schedule.out_beats
        check_structure(plan)
        check_bytes_moved(plan, random_operands(spec, problem, seed=2))
    # Exactly full: with one activation word or one accumulator word less, it must split.
    assert plan_layer(replace(spec, act_buffer_bytes=spec.act_buffer_bytes - 2 * spec.rows), problem,
                      im2col=False).tiled
    assert plan_layer(replace(spec, acc_buffer_bytes=14 * 4 * spec.cols), problem, im2col=False).tiled


def test_splits_follow_the_buffer_that_is_too_small():
    problem = conv("split", 5, 7, 6, 5, 3, pad=1)      # 3 channel groups, 4 m-folds, 6 x 5 outputs
    fits = dict(bank=3 * 6 * 5, acc=4 * 30)
    plans = {"whole": plan_layer(make_spec(2, 2, **fits), problem, im2col=False)}
    assert ranges(plans["whole"]) == ([(0, 6)], [(0, 5)], [(0, 7)])
    # One channel group and a bank for 6 of its 8 input rows: bands of rows (with a halo of R-1 rows).
    one_group = conv("split1", 2, 7, 6, 5, 3, pad=1)
    plans["bands"] = plan_layer(make_spec(2, 2, bank=20, acc=120), one_group, im2col=False)
    # The border bands read padding, so 3-row bands (4 real input rows each) fit the 20-word bank.
    assert ranges(plans["bands"]) == ([(0, 3), (3, 6)], [(0, 2)], [(0, 7)])
    # Too few accumulators for every pixel: bands again.
    plans["acc_bands"] = plan_layer(make_spec(2, 2, bank=90, acc=15), problem, im2col=False)
    assert ranges(plans["acc_bands"]) == ([(0, 3), (3, 6)], [(0, 5)], [(0, 7)])
    # A bank for one channel group of the whole input: input-channel tiles, nothing moved twice.
    plans["c_tiles"] = plan_layer(make_spec(2, 2, bank=30, acc=120), problem, im2col=False)
    assert ranges(plans["c_tiles"]) == ([(0, 6)], [(0, 2), (2, 4), (4, 5)], [(0, 7)])
    assert plans["c_tiles"].bytes_moved == plans["whole"].bytes_moved
    # Split reduction with accumulators for two of the four m-folds: output-channel tiles too.
    plans["c_m_tiles"] = plan_layer(make_spec(2, 2, bank=30, acc=60), problem, im2col=False)
    assert ranges(plans["c_m_tiles"]) == ([(0, 6)], [(0, 2), (2, 4), (4, 5)], [(0, 4), (4, 7)])
    # A parameter memory for two m-folds: output-channel tiles sharing the activations in one bank.
    plans["m_tiles"] = plan_layer(make_spec(2, 2, **fits, max_out_channels=4), problem, PostOps(bias=True),
                                  im2col=False)
    assert ranges(plans["m_tiles"]) == ([(0, 6)], [(0, 5)], [(0, 4), (4, 7)])
    assert [(t.schedule.load_acts, t.schedule.release, t.schedule.act_bank) for t in plans["m_tiles"].tiles] == [
        (True, False, 0), (False, True, 0)]
    assert [t.schedule.param_bank for t in plans["m_tiles"].tiles] == [0, 1]
    for plan in plans.values():
        check_structure(plan)


def test_pooling_forces_even_bands():
    spec = make_spec(2, 2, bank=24, acc=64)
    problem = conv("pool", 2, 3, 8, 4, 3, pad=1)          # a bank holds 6 input rows: 5 output rows at a border
    plain = plan_layer(spec, problem, im2col=False)
    pooled = plan_layer(spec, problem, PostOps(pool="avg"), im2col=False)
    assert ranges(plain)[0] == [(0, 5), (5, 8)]
    assert ranges(pooled)[0] == [(0, 4), (4, 8)]
    for plan in (plain, pooled):
        check_structure(plan)
    # The pooled plan's emitted rows are the layer's pooled rows, each once.
    assert [plan_row for t in pooled.tiles for plan_row in range(*pooled._out_rows(t))] == [0, 1, 2, 3]


def test_pooling_with_an_odd_number_of_rows_in_bands():
    spec = make_spec(2, 2, bank=16, acc=64)
    problem = conv("pool_odd", 2, 2, 5, 4, 3, pad=1)      # E = 5: bands of 2 leave one row
    plan = plan_layer(spec, problem, PostOps(pool="max"), im2col=False)
    check_structure(plan)
    ops = random_operands(spec, problem, seed=3)
    assert run_plan(plan, ops) == plan.pack_outputs(ops.expected(plan.postops, spec.acc_type))


# Errors ---------------------------------------------------------------------------------------------------------

def needed_bytes(message, knob):
    return int(re.search(rf"set {knob} >= (\d+)", message).group(1))


def test_untileable_layer_names_the_activation_buffer_and_the_bytes_needed():
    # One output row of one channel group reads R=3 input rows of W=7: 21 words, and a bank holds 16.
    spec = make_spec(2, 2, bank=16, acc=64)
    problem = conv("wide", 4, 2, 6, 7, 3)
    with pytest.raises(BufferOverflowError) as info:
        plan_layer(spec, problem, im2col=False)
    message = str(info.value)
    assert message.startswith("wide: even one output row of one group of 2 input channels reads 3 input rows x "
                              "W=7 = 21 activation words, more than one activation bank holds (16 words)")
    need = needed_bytes(message, "act_buffer_bytes")
    # Enough, and no more: with that many bytes a bank holds exactly the 21 words.
    fixed = replace(spec, act_buffer_bytes=need)
    assert fixed.act_bank_depth == 21
    check_structure(plan_layer(fixed, problem, im2col=False))
    with pytest.raises(BufferOverflowError):
        plan_layer(replace(spec, act_buffer_bytes=need - 2 * buffer_granule_bytes(spec.act_word_bits)), problem,
                   im2col=False)


def test_untileable_layer_names_the_accumulator_buffer_and_the_bytes_needed():
    spec = make_spec(2, 2, bank=64, acc=6)
    problem = linear("long_row", K=3, N=7, M=2)            # one output row of F=7 pixels
    with pytest.raises(BufferOverflowError) as info:
        plan_layer(spec, problem, im2col=False)
    message = str(info.value)
    assert message.startswith("long_row: one output row of F=7 pixels need 7 accumulator words but the "
                              "accumulator buffer holds 6")
    need = needed_bytes(message, "acc_buffer_bytes")
    fixed = replace(spec, acc_buffer_bytes=need)
    assert fixed.acc_depth == 7
    check_structure(plan_layer(fixed, problem, im2col=False))
    with pytest.raises(BufferOverflowError):
        plan_layer(replace(spec, acc_buffer_bytes=need - buffer_granule_bytes(spec.acc_word_bits)), problem,
                   im2col=False)


def test_untileable_pooled_layer_names_the_activation_buffer():
    spec = make_spec(2, 2, bank=12, acc=12)   # one output row reads 3 input rows of 4: 12 words; two rows 16
    problem = conv("pooled", 2, 2, 7, 4, 3, pad=1)
    plan_layer(spec, problem, im2col=False)                # fits without pooling
    with pytest.raises(BufferOverflowError, match=r"pooled: .*activation.*set act_buffer_bytes >= (\d+)"):
        plan_layer(spec, problem, PostOps(pool="max"), im2col=False)


def test_a_bad_im2col_choice_is_rejected():
    spec, problem, _, _ = CASES["e_bands"]
    with pytest.raises(ValueError, match=r"im2col must be 'auto', True or False, not 'yes'"):
        plan_layer(spec, problem, im2col="yes")


# A transaction-level accelerator for plans -----------------------------------------------------------------------

def decode_lanes(word, dtype, count):
    mask = (1 << dtype.bits) - 1
    values = [(word >> (lane * dtype.bits)) & mask for lane in range(count)]
    return [v - (1 << dtype.bits) if dtype.signed and v >> (dtype.bits - 1) else v for v in values]


def decode_params(word, cols):
    layout = params_lane_layout()
    lanes = []
    for j in range(cols):
        lane = word >> (j * layout.size)
        fields = {}
        for name, field in layout:
            value = (lane >> field.offset) & ((1 << field.width) - 1)
            if field.shape.signed and value >> (field.width - 1):
                value -= 1 << field.width
            fields[name] = value
        lanes.append(fields)
    return lanes


def run_plan(plan, operands):
    """Execute the plan's commands on its host streams, slot by slot; return the output beats.

    Activations live in two banks (a load into a bank that holds an unreleased tile, or a reuse of a released
    one, is an error); weights are taken from the stream in order; the accumulator memory is shared by all
    commands and poisons a word once it has been emitted, so a reduction that reads what an earlier tile left
    behind, or was never initialized, fails. Emitted accumulators go through the post-op golden model with the
    parameters taken from the params stream."""
    spec = plan.spec
    rows, cols = spec.rows, spec.cols
    acts = [decode_lanes(w, spec.act_type, rows) for w in plan.act_stream(operands.act)]
    weights = [decode_lanes(w, spec.weight_type, cols) for w in plan.weight_stream(operands.weight)]
    params = [decode_params(w, spec.postop_lanes) for w in plan.params_stream(operands.params)]
    acts_at = weights_at = params_at = 0
    banks = [None, None]
    accumulators = [None] * spec.acc_depth
    beats = []
    for index, tile in enumerate(plan.tiles):
        s = tile.schedule
        if s.load_acts:
            assert banks[s.act_bank] is None, f"command {index} overwrites a bank in use"
            banks[s.act_bank] = np.array(acts[acts_at:acts_at + s.act_words], dtype=np.int64)
            acts_at += s.act_words
        bank = banks[s.act_bank]
        assert bank is not None and len(bank) == s.act_words, f"command {index} reads a released bank"
        fold_weights = np.array(weights[weights_at:weights_at + s.weight_words], dtype=np.int64)
        weights_at += s.weight_words
        emitted = []
        for slot in s.slots():
            if not slot.valid:
                continue
            if slot.padded:
                vector = np.zeros(rows, dtype=np.int64)
            else:
                assert 0 <= slot.act_addr < s.act_words, (index, slot)
                vector = bank[slot.act_addr]
            sums = vector @ fold_weights[slot.fold * rows:(slot.fold + 1) * rows]
            assert 0 <= slot.pixel < spec.acc_depth, (index, slot)
            if slot.first_k:
                total = sums
            else:
                assert accumulators[slot.pixel] is not None, f"command {index} reads a dead accumulator {slot}"
                total = accumulators[slot.pixel] + sums
            if slot.last_k:
                emitted.append(total)
                accumulators[slot.pixel] = None
            else:
                accumulators[slot.pixel] = total
        if s.release:
            banks[s.act_bank] = None
        if not s.acc_emit:
            assert not emitted
            continue
        p = s.problem
        block = np.array(emitted).reshape(s.m_folds, s.pixels, cols).transpose(0, 2, 1)
        block = block.reshape(s.m_folds * cols, p.E, p.F)[:p.M]
        quant = QuantParams()
        if s.param_words:
            lanes = [lane for word in params[params_at:params_at + s.param_words] for lane in word][:p.M]
            params_at += s.param_words
            quant = QuantParams(**{name: [lane[name] for lane in lanes] for name in ("bias", "multiplier", "shift")})
        beats += s.pack_outputs(apply(block, quant, s.postops, spec.acc_type))
    assert (acts_at, weights_at, params_at) == (len(acts), len(weights), len(params)), "streams not consumed"
    assert all(bank is None for bank in banks), "a bank was never released"
    return beats


def alternatives(spec, problem, postops):
    """Every plan `_build` makes that fits the buffers and the parameter memory (pooled layers: bands of even
    length)."""
    plans = []
    for cg_tile, e_tile, mf_tile, order in product(range(1, ceil(problem.C / spec.rows) + 1),
                                                    range(1, problem.E + 1),
                                                    range(1, ceil(problem.M / spec.cols) + 1), ORDERS):
        if postops.pool != "none" and e_tile % 2 and e_tile != problem.E:
            continue
        if postops.needs_params and mf_tile > spec.max_param_folds:
            continue   # a tile's parameters must fit one bank of the parameter memory
        try:
            plans.append(_build(spec, problem, postops, cg_tile=cg_tile, e_tile=e_tile, mf_tile=mf_tile,
                                order=order))
        except BufferOverflowError:
            pass
    return plans


@pytest.mark.parametrize("case", CASES)
def test_transaction_level_run_of_the_plan_computes_the_layer(case):
    spec, problem, postops, _ = CASES[case]
    plan = plan_of(case)
    ops = random_operands(spec, problem, seed=4)
    assert run_plan(plan, ops) == plan.pack_outputs(ops.expected(postops, spec.acc_type))
    back = plan.unpack_outputs(plan.pack_outputs(ops.expected(postops, spec.acc_type)))
    assert np.array_equal(back, ops.expected(postops, spec.acc_type))


@pytest.mark.parametrize("case", ["c_and_m_tiles", "everything", "e_bands_stride2_pad1"])
def test_every_alternative_plan_is_well_formed_and_computes_the_layer(case):
    spec, problem, postops, _ = CASES[case]
    ops = random_operands(spec, problem, seed=5)
    want = ops.expected(postops, spec.acc_type)
    plans = alternatives(spec, problem, postops)
    assert len(plans) >= 4
    for plan in plans:
        check_structure(plan)
        check_bytes_moved(plan, ops)
        assert run_plan(plan, ops) == plan.pack_outputs(want), (plan.order, len(plan.tiles))


# Bytes moved: the chosen plan is the cheapest ---------------------------------------------------------------------

LEAST_BYTES = [pytest.param(*CASES[case][:3], id=case) for case in CASES] + [
    # With stride > R a band's window holds rows no output reads, so shorter bands move fewer activations.
    pytest.param(make_spec(2, 2, bank=22, acc=35), conv("stride_skips_rows", 1, 1, 7, 5, 1, stride=2), PostOps(),
                 id="stride_skips_rows"),
    # The tallest band (5 rows) leaves accumulators for one m-fold, so activations reload per m-tile; 3-row
    # bands keep both m-folds (688 bytes against 704).
    pytest.param(make_spec(2, 2, bank=20, acc=29), conv("smaller_band_keeps_every_m_fold", 3, 4, 8, 4, 1),
                 PostOps(), id="smaller_band_keeps_every_m_fold"),
]


@pytest.mark.parametrize("spec, problem, postops", LEAST_BYTES)
def test_the_chosen_plan_moves_no_more_bytes_than_any_alternative(spec, problem, postops):
    chosen = plan_layer(spec, problem, postops, im2col=False)
    plans = alternatives(spec, problem, postops)
    assert any(plan.tiles == chosen.tiles for plan in plans)
    cheapest = min(plans, key=lambda plan: plan.bytes_moved["total"])
    assert chosen.bytes_moved["total"] <= cheapest.bytes_moved["total"], (
        f"{problem.name}: the plan moves {chosen.bytes_moved} in {len(chosen.tiles)} commands, but "
        f"{cheapest.order} tiles of (c, e, m) = {[(t.c1 - t.c0, t.e1 - t.e0, t.m1 - t.m0) for t in cheapest.tiles[:1]]} "
        f"move {cheapest.bytes_moved} in {len(cheapest.tiles)}")


# Host im2col -------------------------------------------------------------------------------------------------------

def test_im2col_plans_a_1x1_convolution_over_unrolled_windows():
    spec = make_spec(4, 4, bank=20, acc=32)
    problem = conv("few_channels", 2, 5, 6, 5, 3, pad=1)         # C=2 < rows=4: half the rows would idle
    postops = PostOps(bias=True, requant=True)
    lowered = plan_layer(spec, problem, postops, im2col=True)
    direct = plan_layer(spec, problem, postops, im2col=False)
    assert lowered.im2col and not direct.im2col
    assert lowered.problem == problem and lowered.out_shape == direct.out_shape == (5, 6, 5)
    low = lowered.lowered
    assert (low.C, low.H, low.W, low.R, low.S, low.E, low.F, low.M) == (2 * 9, 6, 5, 1, 1, 6, 5, 5)
    assert (low.stride_h, low.stride_w, low.pad_h, low.pad_w) == (1, 1, 0, 0)
    check_structure(lowered)
    ops = random_operands(spec, problem, seed=6)
    want = ops.expected(postops, spec.acc_type)
    # The unrolled stream is R*S times the activations, and the plans compute the same layer.
    assert lowered.bytes_moved["activations"] > direct.bytes_moved["activations"]
    for plan in (lowered, direct):
        check_bytes_moved(plan, ops)
        assert run_plan(plan, ops) == plan.pack_outputs(want)
    # "auto" keeps whichever the cycle model says is faster; layers it cannot help run directly.
    auto = plan_layer(spec, problem, postops)
    faster = min((lowered, direct), key=lambda plan: predict_plan(plan).cycles)
    assert auto.im2col == faster.im2col and predict_plan(auto).cycles == predict_plan(faster).cycles
    assert not plan_layer(spec, conv("one_by_one", 2, 5, 6, 5, 1), im2col=True).im2col
    assert not plan_layer(spec, conv("enough_channels", 4, 5, 6, 5, 3, pad=1)).im2col


# End to end in the Amaranth simulator -----------------------------------------------------------------------------

def im2col_plan():
    return plan_layer(make_spec(4, 4, bank=20, acc=32), conv("few_channels", 2, 5, 6, 5, 3, pad=1),
                      PostOps(bias=True, requant=True), im2col=True)


def m_outer_plan():
    spec, problem, postops, _ = CASES["m_tiles_requant"]
    return _build(spec, problem, postops, cg_tile=2, e_tile=4, mf_tile=2, order="m_outer")


SIM_PLANS = {
    "e_bands_and_c_tiles_stride2_pad1": lambda: plan_of("e_bands_stride2_pad1"),
    "c_tiles_several_m_folds_kept": lambda: plan_of("c_tiles_several_m_folds_kept"),
    "c_and_m_tiles": lambda: plan_of("c_and_m_tiles"),
    "m_tiles_sharing_a_bank": lambda: plan_of("m_tiles_by_param_memory"),
    "m_outer_order": m_outer_plan,
    "pool_bands": lambda: plan_of("pool_bands"),
    "4x4_bands_and_c_tiles": lambda: plan_of("4x4_bands_and_c_tiles"),
    "4x4_im2col": im2col_plan,
}


@pytest.mark.parametrize("name", SIM_PLANS)
def test_tiled_layer_is_exact_and_meets_the_cycle_model(name):
    plan = SIM_PLANS[name]()
    assert plan.tiled
    run = run_plan_on_top(plan, seed=len(name))
    assert run.cycles == predict_plan(plan).cycles


@pytest.mark.parametrize("name, seed", [("c_and_m_tiles", 1), ("pool_bands", 2), ("m_outer_order", 3)])
def test_tiled_layer_under_random_stalls_is_exact_and_only_slower(name, seed):
    plan = SIM_PLANS[name]()
    run = run_plan_on_top(plan, seed=seed, stall=0.3)
    assert run.cycles >= predict_plan(plan).cycles      # the model is a lower bound under stalls


# Output-stationary plans ---------------------------------------------------------------------------------------

def os_spec(bank, **extra):
    return make_spec(4, 4, bank=bank, acc=4, dataflow="output_stationary", **extra)


def check_os_structure(plan):
    """Every command fits one bank, and the emitting commands cover every (channel, output pixel) once."""
    spec, p = plan.spec, plan.problem
    covered = np.zeros((p.M, p.E * p.F), dtype=int)
    for tile in plan.tiles:
        s = tile.schedule
        assert s.act_words <= spec.act_bank_depth and s.acc_words == 0 and s.reduction == p.C * p.R * p.S
        p0, p1 = (tile.p0, tile.p1) if tile.pixel_range else (tile.e0 * p.F, tile.e1 * p.F)
        assert s.pixels == p1 - p0
        covered[tile.m0:tile.m1, p0:p1] += 1
    rows_out = p.E - (p.E % 2 if plan.postops.pool != "none" else 0)
    assert (covered[:, :rows_out * p.F] == 1).all() and (covered[:, rows_out * p.F:] == 0).all()


def test_output_stationary_plan_cuts_pixels_into_commands_of_whole_tiles():
    spec = os_spec(3 * 27)                                   # three tiles of K = 3*3*3 = 27 per bank
    problem = conv("os", 3, 6, 7, 7, 3, pad=1)               # 49 pixels: 13 tiles
    plan = plan_layer(spec, problem)
    check_os_structure(plan)
    assert plan.im2col and plan.lowered.C == 27
    assert [(t.p0, t.p1) for t in plan.tiles] == [(0, 12), (12, 24), (24, 36), (36, 48), (48, 49)]
    assert all(t.schedule.act_words <= spec.act_bank_depth for t in plan.tiles)
    assert [t.schedule.act_bank for t in plan.tiles] == [0, 1, 0, 1, 0]
    # Activations are loaded once (unrolled R*S times: 13 tiles x 27 words); the weights stream again for
    # every tile of every m-fold; every output beat once.
    assert plan.bytes_moved["activations"] == 13 * 27 * 4
    assert plan.bytes_moved["weights"] == 2 * 13 * 27 * 4
    assert plan.bytes_moved["outputs"] == 2 * 49 * 16
    # Only the layer's last tile is partial: the array is busy on 48 of its 52 pixel slots.
    assert sum(t.schedule.pixel_tiles for t in plan.tiles) == 13


def test_output_stationary_m_tiles_share_their_loaded_pixels():
    spec = os_spec(64, max_out_channels=4)                   # parameters for one m-fold per command
    plan = plan_layer(spec, conv("os_m", 2, 10, 4, 4, 1), PostOps(bias=True))
    check_os_structure(plan)
    assert [(t.m0, t.m1) for t in plan.tiles] == [(0, 4), (4, 8), (8, 10)]
    assert [t.schedule.load_acts for t in plan.tiles] == [True, False, False]
    assert [t.schedule.release for t in plan.tiles] == [False, False, True]
    assert [t.schedule.param_bank for t in plan.tiles] == [0, 1, 0]


def test_output_stationary_pooling_plans_bands_of_even_rows():
    spec = os_spec(4 * 18)                                   # four tiles of K = 18 per bank
    plan = plan_layer(spec, conv("os_pool", 2, 3, 7, 5, 3, pad=1), PostOps(pool="max"))
    check_os_structure(plan)
    # Two rows of F=5 make 3 tiles (fits), four rows 5 tiles (does not); the odd last row is not computed.
    assert [(t.e0, t.e1, t.p0) for t in plan.tiles] == [(0, 2, None), (2, 4, None), (4, 6, None)]


def test_output_stationary_rejects_a_reduction_larger_than_a_bank_with_the_size_needed():
    spec = os_spec(20)
    problem = conv("deep", 3, 2, 5, 5, 3)                    # K = 27 words for one tile
    with pytest.raises(BufferOverflowError) as info:
        plan_layer(spec, problem)
    message = str(info.value)
    assert message.startswith("deep: one tile of 4 output pixels needs its K = C*R*S = 3*3*3 = 27 unrolled inputs "
                              "in one activation bank (27 words), which holds 20")
    fixed = replace(spec, act_buffer_bytes=needed_bytes(message, "act_buffer_bytes"))
    assert fixed.act_bank_depth == 27
    check_os_structure(plan_layer(fixed, problem))


def test_output_stationary_rejects_pooling_without_two_rows_in_a_bank():
    spec = os_spec(2 * 9)                                    # two tiles of K = 9; two rows of F=6 need three
    with pytest.raises(BufferOverflowError, match=r"2x2 pooling needs two output rows \(12 pixels, 3 tiles of 9 "
                                                  r"words\).*set act_buffer_bytes >= 216"):
        plan_layer(spec, conv("pool_wide", 1, 2, 6, 6, 3, pad=1), PostOps(pool="avg"))


def test_output_stationary_commands_are_unrolled_1x1_convolutions():
    spec = os_spec(64)
    with pytest.raises(MappingError, match=r"a command is a 1x1 convolution; plan the 3x3 layer with "
                                           r"hwgen.tiling.plan_layer"):
        LayerSchedule(spec, conv("direct", 2, 2, 5, 5, 3))
    with pytest.raises(MappingError, match="always takes host-unrolled"):
        plan_layer(spec, conv("no_im2col", 2, 2, 5, 5, 3), im2col=False)


# Closed-form planning: the same choice as building every candidate --------------------------------------------------

def _random_layer(rng):
    """A small spec and layer (weight-stationary or matrix-vector), buffers from a few words up, sometimes a
    weight FIFO so shallow that the configuration fields are narrow."""
    rows, cols = rng.randint(1, 5), rng.randint(1, 5)
    flow = rng.choice(["weight_stationary", "weight_stationary", "matrix_vector"])
    lanes = cols * (rows if flow == "matrix_vector" else 1)
    spec = AcceleratorSpec(rows=rows, cols=cols, dataflow=flow, act_buffer_bytes=2 * rng.randint(1, 60) * rows,
                           weight_buffer_bytes=rng.randint(2, 8) * lanes, acc_buffer_bytes=rng.randint(1, 60) * 4 * cols,
                           max_out_channels=rng.randint(1, 12), max_pool_width=64)
    if flow == "matrix_vector":
        N = rng.randint(1, 8)
        return spec, ConvProblem("fc", "linear", C=rng.randint(1, 20), H=1, W=N, M=rng.randint(1, 20), E=1, F=N,
                                 R=1, S=1), rng.choice([PostOps(), PostOps(bias=True)])
    while True:
        H, W, R, S = rng.randint(1, 14), rng.randint(1, 8), rng.randint(1, 4), rng.randint(1, 4)
        sh, sw, ph, pw = rng.randint(1, 3), rng.randint(1, 2), rng.randint(0, 3), rng.randint(0, 2)
        if R <= H + 2 * ph and S <= W + 2 * pw:
            break
    E, F = (H + 2 * ph - R) // sh + 1, (W + 2 * pw - S) // sw + 1
    problem = ConvProblem("c", "conv2d", C=rng.randint(1, 12), H=H, W=W, M=rng.randint(1, 12), E=E, F=F, R=R, S=S,
                          stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw)
    postops = rng.choice([PostOps(), PostOps(bias=True)] + ([PostOps(requant=True, pool="max")] if E > 1 < F else []))
    return spec, problem, postops


def test_the_planner_chooses_what_building_every_candidate_chooses():
    """`_plan_tiles` evaluates candidates in closed form; `tests.reference_planner` builds each of them (the
    planner as it was). Same plan (tiles, order, bytes) or the same rejection, on 600 random small layers."""
    import random

    from hwgen.errors import ConfigFieldError, HwgenError
    from hwgen.tiling import _plan_tiles
    from tests.reference_planner import reference_plan_tiles
    rng = random.Random(14)
    outcomes = Counter()
    for _ in range(600):
        spec, problem, postops = _random_layer(rng)

        def outcome(planner):
            try:
                return planner(spec, problem, postops)
            except HwgenError as error:
                return type(error)
        want, got = outcome(reference_plan_tiles), outcome(_plan_tiles)
        context = (spec, problem, postops)
        if isinstance(want, type):
            assert got is want, context
            outcomes[want.__name__] += 1
        else:
            assert not isinstance(got, type), (context, got)
            assert (got.tiles, got.order, got.bytes_moved) == (want.tiles, want.order, want.bytes_moved), context
            outcomes["planned"] += 1
    assert outcomes["planned"] >= 300 and outcomes[ConfigFieldError.__name__] + outcomes["BufferOverflowError"] >= 50


@pytest.mark.parametrize("spec, problem, postops", LEAST_BYTES)
def test_closed_form_candidates_are_what_build_makes(spec, problem, postops):
    """Every candidate's bytes moved, command count and configuration-field verdict, computed without building,
    equal those of the plan `_build` makes of it."""
    from hwgen.errors import ConfigFieldError
    from hwgen.tiling import _BandStats, _Candidate, _computed_rows
    rows_out = _computed_rows(problem, postops)
    checked = 0
    for cg_tile, e_tile, mf_tile, order in product(range(1, ceil(problem.C / spec.rows) + 1), range(1, rows_out + 1),
                                                    range(1, ceil(problem.M / spec.cols) + 1), ORDERS):
        if postops.pool != "none" and e_tile % 2:
            continue
        candidate = _Candidate(spec, problem, postops, cg_tile=cg_tile, e_tile=e_tile, mf_tile=mf_tile, order=order,
                               rows_out=rows_out, bands=_BandStats(problem, e_tile, rows_out))
        try:
            plan = _build(spec, problem, postops, cg_tile=cg_tile, e_tile=e_tile, mf_tile=mf_tile, order=order)
        except ConfigFieldError:
            assert candidate.field_error is not None
            continue
        except (BufferOverflowError, MappingError):
            continue     # the planner never proposes a tile that overflows a buffer
        assert candidate.field_error is None
        assert (candidate.bytes_moved, candidate.commands) == (plan.bytes_moved["total"], len(plan.tiles))
        checked += 1
    assert checked >= 4


def test_a_layer_with_giant_tensors_is_rejected_before_the_model_runs():
    """Fuzz campaign, shard 2: a conv with 10,000,000 output channels planned in closed form, then the cycle model
    timed its billions of output beats until the machine ran out of memory. The tensor sizes are checked
    right after the (closed-form) planning."""
    import time

    from hwgen import AcceleratorSpec, Design, Layer, conv2d
    from hwgen.errors import PlanTooLargeError
    from hwgen.tiling import MAX_OUTPUT_ELEMENTS
    spec = AcceleratorSpec(rows=2, cols=8, acc_type="int64", act_buffer_bytes=8192, weight_buffer_bytes=524288,
                           acc_buffer_bytes=4096, max_out_channels=4)
    nest = conv2d(name="conv", in_channels=64, out_channels=10_000_000, height=1000, width=3, kernel=(11, 1),
                  stride=4, padding=1)
    started = time.process_time()
    with pytest.raises(PlanTooLargeError, match=r"conv: its weight tensor has 10000000x64x11x1 = 7,040,000,000"):
        Design(name="giant", spec=spec, layers=(Layer(nest),)).plans()
    assert time.process_time() - started < 1.0
    wide = conv2d(name="wide", in_channels=1, out_channels=MAX_OUTPUT_ELEMENTS // 64 + 1, height=8, width=8,
                  kernel=(1, 1))
    with pytest.raises(PlanTooLargeError, match="output tensor"):
        Design(name="giant", spec=spec, layers=(Layer(wide),)).plans()
