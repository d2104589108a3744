"""The cycle model (`hwgen.perf`) against the whole accelerator (`hwgen.hw.top.AcceleratorTop`) in Amaranth's
simulator.

With sources always valid and the sink always ready the model is exact: cycles from the first ``cfg`` handshake
to the handshake of the last ``out`` beat equal ``predict(schedule).cycles`` for one command (and its closed
form, `single_command_cycles`), and ``predict_commands(schedules).cycles`` for commands streamed back to back,
where the loader fills one activation bank while the compute engine works on the other. Every value equals
`reference.conv2d`. With random stalls on every stream the values must still be exact and the cycles can only
grow. Tiled layers and post-ops: `tests.test_tiling`, `tests.test_hw_top`.
"""

from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen import reference
from hwgen.dtypes import int32, parse_dtype
from hwgen.hw.systolic import array_latency
from hwgen.hw.top import AcceleratorTop
from hwgen.perf import predict, predict_commands, single_command_cycles
from hwgen.problem import ConvProblem
from hwgen.schedule import LayerSchedule
from hwgen.spec import AcceleratorSpec
from tests.top_bench import run_top


def make_spec(rows, cols, *, act_type="int8", weight_type="int8", words=256):
    """Buffers of ``words`` words each, whole words for any shape: small memories simulate fast."""
    a, w, acc = parse_dtype(act_type, what="act"), parse_dtype(weight_type, what="weight"), int32
    return AcceleratorSpec(rows=rows, cols=cols, act_type=a, weight_type=w, acc_type=acc,
                           act_buffer_bytes=words // 8 * rows * a.bits,
                           weight_buffer_bytes=words // 8 * cols * w.bits,
                           acc_buffer_bytes=words // 8 * cols * acc.bits)


def conv(name, C, M, H, W, R, S, stride=(1, 1), pad=(0, 0)):
    (sh, sw), (ph, pw) = stride, pad
    return ConvProblem(name=name, kind="conv2d", C=C, H=H, W=W, M=M, E=(H + 2 * ph - R) // sh + 1,
                       F=(W + 2 * pw - S) // sw + 1, R=R, S=S, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw)


def linear(name, K, N, M):
    return ConvProblem(name=name, kind="linear", C=K, H=1, W=N, M=M, E=1, F=N, R=1, S=1)


@dataclass
class Layer:
    schedule: LayerSchedule
    act: np.ndarray
    weight: np.ndarray

    @classmethod
    def random(cls, spec, problem, seed):
        rng = np.random.default_rng(seed)
        a, w = spec.act_type, spec.weight_type
        act = rng.integers(a.min, a.max + 1, problem.act_canonical_shape, dtype=np.int64)
        weight = rng.integers(w.min, w.max + 1, problem.weight_canonical_shape, dtype=np.int64)
        act.flat[0], weight.flat[0] = a.min, w.min
        return cls(LayerSchedule(spec, problem), act, weight)

    @property
    def operands(self):
        return self.act, self.weight

    @property
    def golden(self):
        p = self.schedule.problem
        return reference.conv2d(self.act, self.weight, stride=(p.stride_h, p.stride_w),
                                padding=(p.pad_h, p.pad_w), out_size=(p.E, p.F))


@dataclass
class LayerRun:
    beats: list
    cfg_cycle: int     # the cycle of the cfg handshake
    last_cycle: int    # the cycle of the last out handshake

    @property
    def cycles(self):
        return self.last_cycle - self.cfg_cycle


def run_accelerator(spec, layers, *, stall=0.0, sink_stall=None, seed=0):
    """Run ``layers`` back to back; each layer's cfg is offered once the previous layer's last beat is out.

    One testbench drives every stream: each cycle it sets valid/payload/ready (a source drops valid with
    probability ``stall``, the sink drops ready with probability ``sink_stall``, default ``stall``), records the
    handshakes, then ticks.
    """
    dut = AcceleratorTop(spec)
    rng = np.random.default_rng(seed)
    runs = []
    sink_stall = stall if sink_stall is None else sink_stall

    def offer(probability=stall):
        return not (probability and rng.random() < probability)

    async def testbench(ctx):
        cycle = 0
        for layer in layers:
            schedule = layer.schedule
            streams = {"cfg": [schedule.config_word()], "weights": schedule.pack_weights(layer.weight),
                       "acts": schedule.pack_acts(layer.act)}
            sent = dict.fromkeys(streams, 0)
            beats, cfg_cycle, last_cycle = [], None, None
            limit = cycle + 4 * predict(schedule).cycles + 100
            while len(beats) < schedule.out_beats:
                assert cycle < limit, f"{schedule.problem.name}: no progress ({len(beats)} beats, sent {sent})"
                valid = {}
                for name, words in streams.items():
                    port = getattr(dut, name)
                    valid[name] = sent[name] < len(words) and offer()
                    ctx.set(port.valid, valid[name])
                    ctx.set(port.payload, words[sent[name]] if sent[name] < len(words) else 0)
                ready = offer(sink_stall)
                ctx.set(dut.out.ready, ready)
                for name in streams:
                    if valid[name] and ctx.get(getattr(dut, name).ready):
                        sent[name] += 1
                        if name == "cfg":
                            cfg_cycle = cycle
                if ready and ctx.get(dut.out.valid):
                    beats.append(ctx.get(dut.out.payload))
                    last_cycle = cycle
                await ctx.tick()
                cycle += 1
            for name, words in streams.items():
                assert sent[name] == len(words), f"{schedule.problem.name}: {name} not fully consumed"
            runs.append(LayerRun(beats, cfg_cycle, last_cycle))
        # Afterwards: no stray beat, and the accelerator goes idle.
        for name in ("cfg", "weights", "acts"):
            ctx.set(getattr(dut, name).valid, 0)
        ctx.set(dut.out.ready, 1)
        for _ in range(array_latency(rows=spec.rows, cols=spec.cols) + 8):
            assert not ctx.get(dut.out.valid), "an output beat beyond the layer's out_beats"
            await ctx.tick()
        assert not ctx.get(dut.busy) and ctx.get(dut.cfg.ready), "the accelerator did not return to idle"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return runs


def check_values(layer, run):
    got = layer.schedule.unpack_outputs(run.beats)
    want = layer.golden
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)[:5]
        raise AssertionError(f"{layer.schedule.problem.name}: {len(np.argwhere(got != want))} wrong outputs, "
                             f"first at [m, e, f] = {bad.tolist()}: got {[int(got[tuple(i)]) for i in bad]}, "
                             f"want {[int(want[tuple(i)]) for i in bad]}")


LAYERS = {
    # name: ((rows, cols, act_type), problem)
    "2x2_conv3x3_pad1": ((2, 2, "int8"), conv("2x2_conv3x3_pad1", C=3, M=3, H=4, W=4, R=3, S=3, pad=(1, 1))),
    "3x4_stride2_pad1": ((3, 4, "int8"), conv("3x4_stride2_pad1", C=5, M=6, H=5, W=5, R=3, S=3, stride=(2, 2),
                                              pad=(1, 1))),
    "4x4_one_pixel_1x1": ((4, 4, "int8"), conv("4x4_one_pixel_1x1", C=4, M=4, H=1, W=1, R=1, S=1)),
    "4x4_one_pixel_3x3": ((4, 4, "int8"), conv("4x4_one_pixel_3x3", C=6, M=8, H=3, W=3, R=3, S=3)),
    "4x4_C_M_beyond": ((4, 4, "int8"), conv("4x4_C_M_beyond", C=6, M=9, H=3, W=3, R=2, S=2)),
    "4x4_non_square": ((4, 4, "int8"), conv("4x4_non_square", C=3, M=5, H=3, W=6, R=2, S=3, stride=(1, 2),
                                            pad=(1, 0))),
    "3x4_uint8_1x1": ((3, 4, "uint8"), conv("3x4_uint8_1x1", C=4, M=3, H=2, W=3, R=1, S=1)),
    "2x2_linear": ((2, 2, "int8"), linear("2x2_linear", K=5, N=4, M=3)),
    "2x8_one_pixel": ((2, 8, "int8"), conv("2x8_one_pixel", C=3, M=9, H=2, W=2, R=2, S=2)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_measured_cycles_equal_the_model_and_values_are_exact(name):
    (rows, cols, act_type), problem = LAYERS[name]
    spec = make_spec(rows, cols, act_type=act_type)
    layer = Layer.random(spec, problem, seed=len(name))
    run, = run_accelerator(spec, [layer])
    check_values(layer, run)
    assert run.cycles == predict(layer.schedule).cycles


@pytest.mark.parametrize("name", ["2x2_conv3x3_pad1", "3x4_stride2_pad1", "4x4_one_pixel_3x3", "2x8_one_pixel"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_stalls_keep_values_exact_and_only_add_cycles(name, seed):
    (rows, cols, act_type), problem = LAYERS[name]
    spec = make_spec(rows, cols, act_type=act_type)
    layer = Layer.random(spec, problem, seed=seed)
    run, = run_accelerator(spec, [layer], stall=0.3, seed=seed)
    check_values(layer, run)
    assert run.cycles >= predict(layer.schedule).cycles


@pytest.mark.parametrize("name", ["3x4_stride2_pad1", "4x4_non_square"])
def test_a_slow_sink_freezes_the_pipeline_without_losing_results(name):
    """The sink takes one beat in five: the output FIFO fills and the whole pipeline must stop and resume."""
    (rows, cols, act_type), problem = LAYERS[name]
    spec = make_spec(rows, cols, act_type=act_type)
    layer = Layer.random(spec, problem, seed=5)
    run, = run_accelerator(spec, [layer], sink_stall=0.8, seed=5)
    check_values(layer, run)
    assert run.cycles > predict(layer.schedule).cycles


def test_layers_back_to_back_each_meet_the_model():
    """One accelerator, several layer shapes in a row: no state leaks from one layer into the next."""
    spec = make_spec(4, 4)
    problems = [LAYERS[n][1] for n in ("4x4_C_M_beyond", "4x4_one_pixel_1x1", "4x4_non_square",
                                       "4x4_one_pixel_3x3")]
    layers = [Layer.random(spec, p, seed=n) for n, p in enumerate(problems)]
    for layer, run in zip(layers, run_accelerator(spec, layers)):
        check_values(layer, run)
        assert run.cycles == predict(layer.schedule).cycles, layer.schedule.problem.name


def test_layers_back_to_back_with_stalls():
    spec = make_spec(3, 4)
    problems = [LAYERS["3x4_stride2_pad1"][1], LAYERS["3x4_uint8_1x1"][1]]
    layers = [Layer.random(spec, p, seed=n) for n, p in enumerate(problems)]
    for layer, run in zip(layers, run_accelerator(spec, layers, stall=0.25, seed=9)):
        check_values(layer, run)
        assert run.cycles >= predict(layer.schedule).cycles


def test_estimate_fields_and_the_closed_form():
    """`predict` on one command is `predict_commands` of it, and without pooling its documented closed form."""
    for (rows, cols, act_type), problem in LAYERS.values():
        schedule = LayerSchedule(make_spec(rows, cols, act_type=act_type), problem)
        estimate = predict(schedule)
        assert estimate == predict_commands([schedule])
        if schedule.m_folds == 1 or schedule.spec.postop_groups == 1:   # where the closed form holds
            assert estimate.cycles == single_command_cycles(
                start_words=schedule.start_words, folds=schedule.folds, fold_period=schedule.fold_period,
                pixels=schedule.pixels, rows=rows, cols=cols, groups=schedule.spec.postop_groups)
        assert estimate.layer == problem.name and estimate.commands == 1
        assert estimate.macs == problem.macs and estimate.pes == rows * cols
        assert estimate.ideal_cycles == -(-problem.macs // (rows * cols))
        assert 0 < estimate.utilization <= 1
        assert estimate.cycles >= estimate.ideal_cycles
        data = estimate.to_dict()
        assert data["cycles"] == estimate.cycles and data["utilization"] == estimate.utilization
        assert data["ideal_cycles"] == estimate.ideal_cycles


def test_predict_commands_needs_an_emitting_command():
    spec = make_spec(4, 4)
    problem = LAYERS["4x4_C_M_beyond"][1]
    with pytest.raises(ValueError, match="no commands"):
        predict_commands([])
    with pytest.raises(ValueError, match="no command emits outputs"):
        predict_commands([LayerSchedule(spec, problem, acc_emit=False, keep_partials=True)])
    estimate = predict_commands([LayerSchedule(spec, problem)] * 2, name="twice", macs=7)
    assert (estimate.layer, estimate.commands, estimate.macs) == ("twice", 2, 7)


# Commands streamed back to back: the loader and the compute engine overlap ------------------------------------

@pytest.mark.parametrize("banks", ["alternating", "one_bank"])
def test_commands_streamed_back_to_back_meet_predict_commands(banks):
    """Whole layers as one command stream: the next layer's activations load into the other bank while the
    current one computes (or, all in one bank, wait for its release); the cycles are `predict_commands`."""
    spec = make_spec(4, 4)
    names = ["4x4_C_M_beyond", "4x4_one_pixel_1x1", "4x4_non_square", "4x4_one_pixel_3x3"]
    schedules = [LayerSchedule(spec, LAYERS[name][1], act_bank=n % 2 if banks == "alternating" else 0)
                 for n, name in enumerate(names)]
    layers = [Layer(schedule, *Layer.random(spec, schedule.problem, seed=n).operands)
              for n, schedule in enumerate(schedules)]
    run = run_top(spec, cfg=[s.config_word() for s in schedules],
                  weights=[w for layer in layers for w in layer.schedule.pack_weights(layer.weight)],
                  acts=[a for layer in layers for a in layer.schedule.pack_acts(layer.act)],
                  expect_beats=sum(s.out_beats for s in schedules))
    at = 0
    for layer in layers:
        beats = run.beats[at:at + layer.schedule.out_beats]
        at += layer.schedule.out_beats
        check_values(layer, LayerRun(beats, None, None))
    assert run.cycles == predict_commands(schedules).cycles
    # Streaming beats running the layers one at a time (each on an idle accelerator).
    assert run.cycles < sum(predict(s).cycles for s in schedules)


def test_a_command_object_repeated_counts_from_the_first_handshake():
    # Plans share identical command objects (hwgen.tiling builds each distinct command once): the model must
    # count from the first command, not from the last one that `is` the first.
    spec = make_spec(2, 2)
    problem = ConvProblem("twice", "conv2d", C=2, H=4, W=4, M=2, E=3, F=3, R=2, S=2)
    first = LayerSchedule(spec, problem, act_bank=0)
    second = LayerSchedule(spec, problem, act_bank=0)
    assert first == second and first is not second
    assert predict_commands([first, first]).cycles == predict_commands([first, second]).cycles
    assert predict_commands([first, first]).cycles > predict(first).cycles


@pytest.mark.parametrize("postops", [True, False])
def test_closed_form_is_the_readme_formula(postops):
    """The README prints the closed form with its constants: keep the two the same. G is the post-op chain's
    cycles per beat (`postop_groups`): 1 with a full-width chain, whose FIFO adds 2 and whose latency L is 13,
    and more with a narrower one, whose block-RAM FIFO adds 3 and whose L is 14 (the pooling pair in two
    stages)."""
    for start_words, folds, period, pixels, rows, cols in [(1, 1, 4, 4, 4, 4), (9, 3, 16, 16, 8, 8),
                                                           (0, 2, 12, 10, 12, 3)]:
        for groups in (1, 4):
            g = groups if postops else 1
            readme = (start_words + 10 + (folds - 1) * period + g * pixels - 1
                      + (2 + (rows + cols + 3) + 1 + (2 if g == 1 else 3) + ((13 if g == 1 else 14) if postops else 0)))
            assert single_command_cycles(start_words=start_words, folds=folds, fold_period=period, pixels=pixels,
                                         rows=rows, cols=cols, postops=postops, groups=groups) == readme
