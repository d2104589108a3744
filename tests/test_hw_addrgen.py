"""The fold sequencer (`hwgen.hw.addrgen`) against its golden model, `LayerSchedule.slots()`.

Every enabled cycle after ``start`` is one issue: first the pre-slot, then one golden slot each, in order. The
weight loader is checked against the rule the schedule is built on: fold ``k``'s weights are popped from the
weight FIFO one row per enabled cycle, starting at the pre-slot for fold 0 and at the last slot of fold ``k - 1``
otherwise, so the ``n``-th pop is weight word ``n = k*rows + row`` of the command's stream, into the bank the
fold computes with. The weight bank is not reset by ``start``: it keeps alternating across commands, so a
command's first fold uses the bank its predecessor's last fold did not (``slots(start_bank=...)``). Tile flags
gate ``first_k``/``last_k`` (``acc_init``/``acc_emit``) and move the accumulator address by ``acc_stride`` per
m-fold. While ``en`` is low nothing may move.
"""

from itertools import product

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.dtypes import int32, parse_dtype
from hwgen.hw.addrgen import FoldSequencer
from hwgen.problem import ConvProblem
from hwgen.schedule import LayerSchedule
from hwgen.spec import AcceleratorSpec

SLOT_PORTS = ("slot_valid", "act_addr", "padded", "acc_addr", "first_k", "last_k", "bank")
LOAD_PORTS = ("load_en", "load_row", "load_bank")
STATUS_PORTS = ("busy", "done")


def small_spec(rows, cols, *, words=256):
    """A spec whose buffers hold ``words`` words each whatever the shape."""
    a, w, acc = parse_dtype("int8", what="act"), parse_dtype("int8", what="weight"), int32
    return AcceleratorSpec(rows=rows, cols=cols, act_buffer_bytes=words * rows * a.bits // 8,
                           weight_buffer_bytes=words * cols * w.bits // 8,
                           acc_buffer_bytes=words * cols * acc.bits // 8)


def conv(name, C, M, H, W, R, S, stride=(1, 1), pad=(0, 0)):
    (sh, sw), (ph, pw) = stride, pad
    return ConvProblem(name=name, kind="conv2d", C=C, H=H, W=W, M=M, E=(H + 2 * ph - R) // sh + 1,
                       F=(W + 2 * pw - S) // sw + 1, R=R, S=S, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw)


def linear(name, K, N, M):
    """``O[n, m] = sum_k X[n, k] * W[m, k]`` as the canonical problem: H=E=1, W=F=N, R=S=1."""
    return ConvProblem(name=name, kind="linear", C=K, H=1, W=N, M=M, E=1, F=N, R=1, S=1)


CASES = {
    # name: ((rows, cols), problem)
    "stride1_pad0": ((4, 4), conv("stride1_pad0", C=4, M=4, H=5, W=5, R=3, S=3)),
    "stride2_pad1": ((4, 4), conv("stride2_pad1", C=3, M=6, H=7, W=6, R=3, S=3, stride=(2, 2), pad=(1, 1))),
    "stride2_pad2": ((4, 4), conv("stride2_pad2", C=2, M=3, H=5, W=5, R=3, S=3, stride=(2, 2), pad=(2, 2))),
    "pad2": ((3, 5), conv("pad2", C=2, M=3, H=4, W=5, R=3, S=3, pad=(2, 2))),
    "non_square": ((4, 4), conv("non_square", C=5, M=3, H=3, W=7, R=2, S=3, stride=(1, 2), pad=(0, 1))),
    "stride3_by_1": ((4, 4), conv("stride3_by_1", C=2, M=2, H=8, W=3, R=2, S=1, stride=(3, 1), pad=(1, 0))),
    "C_and_M_beyond_array": ((4, 4), conv("C_and_M_beyond_array", C=9, M=10, H=3, W=4, R=2, S=2)),
    "kernel_1x1": ((4, 4), conv("kernel_1x1", C=8, M=5, H=3, W=3, R=1, S=1)),
    "linear": ((4, 4), linear("linear", K=6, N=5, M=7)),
    "one_pixel": ((4, 4), conv("one_pixel", C=4, M=8, H=3, W=3, R=3, S=3)),
    "one_pixel_wide_array": ((2, 8), conv("one_pixel_wide_array", C=3, M=9, H=2, W=2, R=2, S=2)),
    "array_1x1": ((1, 1), conv("array_1x1", C=2, M=2, H=3, W=3, R=2, S=2, pad=(1, 1))),
}


def golden_issues(schedule, start_bank=0):
    """Per enabled cycle after ``start``: (golden slot or None for the pre-slot, golden load or None)."""
    slots = list(schedule.slots(start_bank=start_bank))
    rows = schedule.spec.rows
    issues = [None] + slots
    # Fold k's load starts at the pre-slot (k = 0) or at the last slot of fold k - 1.
    starts = [0] + [i + 1 for i in range(len(slots) - 1) if slots[i + 1].fold != slots[i].fold]
    assert len(starts) == schedule.folds
    loads = [None] * len(issues)
    for fold, start in enumerate(starts):
        for row in range(rows):
            assert loads[start + row] is None, "loads of two folds overlap"
            loads[start + row] = {"load_en": 1, "popped": fold * rows + row, "load_row": row,
                                  "load_bank": (start_bank + fold) % 2}
    return list(zip(issues, loads))


def expected_slot(slot):
    if slot is None:  # the pre-slot issues nothing
        return {"slot_valid": 0}
    want = {"slot_valid": int(slot.valid), "first_k": int(slot.first_k), "last_k": int(slot.last_k),
            "bank": slot.bank}
    if slot.valid:
        want.update(acc_addr=slot.pixel, padded=int(slot.padded))
        if not slot.padded:
            want["act_addr"] = slot.act_addr
    return want


def run_sequencer(spec, schedules, *, stall=0.0, seed=0):
    """Run the layers one after another (each with one ``start``); returns per layer the list of
    ``(en, outputs)`` from the cycle after ``start`` until ``busy`` falls, and the outputs a few cycles later."""
    dut = FoldSequencer(spec)
    rng = np.random.default_rng(seed)
    ports = SLOT_PORTS + LOAD_PORTS + STATUS_PORTS
    traces = []

    async def testbench(ctx):
        for schedule in schedules:
            ctx.set(dut.cfg, schedule.config_values())
            ctx.set(dut.start, 1)
            ctx.set(dut.en, int(rng.random() >= stall))   # start wins over en
            await ctx.tick()
            ctx.set(dut.start, 0)
            trace = []
            limit = 10 * (schedule.folds * schedule.fold_period + 2) + 100
            while ctx.get(dut.busy):
                assert len(trace) < limit, f"{schedule.problem.name}: the sequencer never finished"
                en = int(rng.random() >= stall)
                ctx.set(dut.en, en)
                trace.append((en, {port: ctx.get(getattr(dut, port)) for port in ports}))
                await ctx.tick()
            after = []
            for _ in range(3):
                ctx.set(dut.en, 1)
                after.append({port: ctx.get(getattr(dut, port)) for port in ports})
                await ctx.tick()
            traces.append((trace, after))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return traces


def check_trace(schedule, trace, after, start_bank=0):
    name = schedule.problem.name
    # A disabled cycle changes nothing: it shows exactly what the next cycle shows.
    for n, (en, outputs) in enumerate(trace):
        if not en:
            assert n + 1 < len(trace), f"{name}: busy fell after a disabled cycle"
            assert outputs == trace[n + 1][1], f"{name}: state moved at disabled cycle {n}"
    issued = [outputs for en, outputs in trace if en]
    golden = golden_issues(schedule, start_bank)
    assert len(issued) == len(golden) == 1 + schedule.folds * schedule.fold_period, name
    popped = 0   # weight words taken from the FIFO so far: the FIFO hands them out in stream order
    for n, (outputs, (slot, load)) in enumerate(zip(issued, golden)):
        where = f"{name}: issue {n} ({'pre-slot' if slot is None else slot})"
        want = expected_slot(slot)
        assert {key: outputs[key] for key in want} == want, where
        got_load = {"load_en": outputs["load_en"]}
        if outputs["load_en"]:
            got_load.update(popped=popped, load_row=outputs["load_row"], load_bank=outputs["load_bank"])
            popped += 1
        assert got_load == (load or {"load_en": 0}), where
        assert outputs["busy"] == 1 and outputs["done"] == 0, where
    assert popped == schedule.weight_words == len(schedule.pack_weights(
        np.zeros(schedule.problem.weight_canonical_shape, dtype=np.int64))), name
    for outputs in after:
        assert (outputs["busy"], outputs["done"], outputs["slot_valid"], outputs["load_en"]) == (0, 1, 0, 0), \
            f"{name}: after the last slot"


def check_commands(schedules, traces):
    """Commands back to back on one sequencer: the weight bank carries over from one to the next."""
    bank = 0
    for schedule, (trace, after) in zip(schedules, traces):
        check_trace(schedule, trace, after, start_bank=bank)
        bank = (bank + schedule.folds) % 2


@pytest.mark.parametrize("case", CASES)
def test_issues_the_golden_slots_and_weight_rows(case):
    shape, problem = CASES[case]
    spec = small_spec(*shape)
    schedule = LayerSchedule(spec, problem)
    (trace, after), = run_sequencer(spec, [schedule])
    check_trace(schedule, trace, after)


@pytest.mark.parametrize("case", ["stride2_pad1", "pad2", "C_and_M_beyond_array", "one_pixel_wide_array",
                                  "array_1x1", "linear"])
@pytest.mark.parametrize("seed", [1, 2])
def test_nothing_advances_while_en_is_low(case, seed):
    shape, problem = CASES[case]
    spec = small_spec(*shape)
    schedule = LayerSchedule(spec, problem)
    (trace, after), = run_sequencer(spec, [schedule], stall=0.4, seed=seed)
    assert any(not en for en, _ in trace), "the stimulus should stall at least once"
    check_trace(schedule, trace, after)


def test_start_reinitializes_for_the_next_layer():
    """Layers of different shapes back to back on one sequencer: nothing leaks from one to the next but the
    weight bank, which alternates on (odd fold counts make the next command start on bank 1)."""
    names = ["C_and_M_beyond_array", "stride2_pad2", "one_pixel", "stride2_pad1", "linear", "kernel_1x1"]
    spec = small_spec(4, 4)
    schedules = [LayerSchedule(spec, CASES[name][1]) for name in names]
    assert any(schedule.folds % 2 for schedule in schedules)
    check_commands(schedules, run_sequencer(spec, schedules, stall=0.2, seed=5))


# Tiles: the flags of one command in a tiled layer ---------------------------------------------------------------

TILE_FLAGS = {
    # name: flags of a command in the middle, at the start or at the end of a split reduction
    "first_c_tile": dict(acc_init=True, acc_emit=False, keep_partials=True),
    "middle_c_tile": dict(acc_init=False, acc_emit=False, keep_partials=True),
    "last_c_tile": dict(acc_init=False, acc_emit=True, keep_partials=True),
    "whole_reduction_kept": dict(acc_init=True, acc_emit=True, keep_partials=True),
    "reused_bank_1": dict(act_bank=1, load_acts=False, release=False),
}


@pytest.mark.parametrize("flags", TILE_FLAGS)
@pytest.mark.parametrize("case", ["C_and_M_beyond_array", "stride2_pad1", "one_pixel_wide_array"])
def test_tile_flags_gate_the_reduction_and_stride_the_accumulators(case, flags):
    shape, problem = CASES[case]
    spec = small_spec(*shape)
    schedule = LayerSchedule(spec, problem, **TILE_FLAGS[flags])
    assert schedule.m_folds > 1
    slots = [slot for slot in schedule.slots() if slot.valid]
    # The golden model itself: flags gate first_k/last_k; kept partials give each m-fold its own pixels.
    assert any(slot.first_k for slot in slots) == schedule.acc_init
    assert any(slot.last_k for slot in slots) == schedule.acc_emit
    stride = schedule.pixels if schedule.keep_partials else 0
    assert {slot.pixel for slot in slots} == {mf * stride + p for mf in range(schedule.m_folds)
                                                for p in range(schedule.pixels)}
    assert max(slot.pixel for slot in slots) < schedule.acc_words
    # Two commands back to back, the second starting on the bank the first left.
    traces = run_sequencer(spec, [schedule, schedule], stall=0.2, seed=len(flags))
    check_commands([schedule, schedule], traces)


def test_golden_slots_cover_every_pixel_once_per_fold():
    """The golden model itself: each fold issues every pixel once, then bubbles, with its bank and k flags."""
    for (shape, problem), start_bank in product(CASES.values(), (0, 1)):
        schedule = LayerSchedule(small_spec(*shape), problem)
        slots = list(schedule.slots(start_bank=start_bank))
        assert len(slots) == schedule.folds * schedule.fold_period
        for fold in range(schedule.folds):
            mine = slots[fold * schedule.fold_period:(fold + 1) * schedule.fold_period]
            assert {s.fold for s in mine} == {fold} and {s.bank for s in mine} == {(start_bank + fold) % 2}
            assert [s.pixel for s in mine if s.valid] == list(range(schedule.pixels))
            assert all(s.valid for s in mine[:schedule.pixels]) and not any(s.valid for s in mine[schedule.pixels:])
            k = fold % schedule.k_folds
            assert {s.first_k for s in mine} == {k == 0} and {s.last_k for s in mine} == {k == schedule.k_folds - 1}
