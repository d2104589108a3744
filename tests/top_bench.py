"""Shared test bench for the whole accelerator (`hwgen.hw.top.AcceleratorTop`) in Amaranth's simulator, and the
operands/golden results the end-to-end tests feed it. Not a test module.

`run_top` is `hwgen.sim.pysim.run_streams` (the project's stream driver): it drives the four input streams from
lists of words, collects the output beats, and checks what a run must leave behind (every input word consumed,
no extra output beat, the accelerator idle with ``cfg`` ready). Cycles are counted like the cycle model: from
the first ``cfg`` handshake to the last ``out`` handshake.
"""

from dataclasses import dataclass

import numpy as np

from hwgen import reference
from hwgen.postops import QuantParams, apply, quantize_multiplier
from hwgen.problem import ConvProblem
from hwgen.spec import AcceleratorSpec
from hwgen.sim.pysim import run_streams

__all__ = ["run_top", "Operands", "random_operands", "check_beats"]


def run_top(spec, **kwargs):
    """`hwgen.sim.pysim.run_streams` with the test defaults: a 50,000-cycle bound and the idle checks after the run."""
    kwargs.setdefault("max_cycles", 50_000)
    return run_streams(spec, **kwargs)


# Operands and golden results ----------------------------------------------------------------------------------

@dataclass
class Operands:
    act: np.ndarray        # canonical I[C, H, W]
    weight: np.ndarray     # canonical W[M, C, R, S]
    acc: np.ndarray        # reference.conv2d: O[M, E, F] before the post-ops
    params: QuantParams    # bias, multiplier and shift per output channel (whatever the chain uses)

    def expected(self, postops, acc_type):
        return apply(self.acc, self.params, postops, acc_type)


def random_operands(spec, problem, seed):
    """Operands over the full range of their types (both extremes always present) and post-op parameters that
    scale the accumulators to about +-100 (int8 outputs mostly in range, some saturated) with biases of up to a
    quarter of the accumulator range, so ReLU and saturation both matter."""
    rng = np.random.default_rng(seed)
    p, a, w = problem, spec.act_type, spec.weight_type
    act = rng.integers(a.min, a.max, p.act_canonical_shape, endpoint=True)
    weight = rng.integers(w.min, w.max, p.weight_canonical_shape, endpoint=True)
    act.flat[0], weight.flat[0] = a.min, w.min
    act.flat[-1], weight.flat[-1] = a.max, w.max
    acc = reference.conv2d(act, weight, stride=(p.stride_h, p.stride_w), padding=(p.pad_h, p.pad_w),
                           acc_type=spec.acc_type, out_size=(p.E, p.F))
    big = int(np.abs(acc).max()) + 1
    pairs = [quantize_multiplier(float(rng.uniform(40, 200)) / big) for _ in range(p.M)]
    params = QuantParams(bias=rng.integers(-(big // 4) - 1, big // 4 + 1, p.M),
                         multiplier=np.array([m for m, _ in pairs]), shift=np.array([s for _, s in pairs]))
    return Operands(act, weight, acc, params)


def check_beats(got_beats, want_beats, *, decode, describe=None, what="outputs"):
    """Beat-exact comparison; on a mismatch, name the first differing beats and lanes (decoded)."""
    if got_beats == want_beats:
        return
    lines = [f"{what}: {len(got_beats)} beats, expected {len(want_beats)}"]
    for n, (got, want) in enumerate(zip(got_beats, want_beats)):
        if got != want:
            got_lanes, want_lanes = decode(got), decode(want)
            for lane, (g, w) in enumerate(zip(got_lanes, want_lanes)):
                if g != w:
                    where = describe(n, lane) if describe else f"beat {n} lane {lane}"
                    lines.append(f"  {where}: got {g}, expected {w}")
            if len(lines) > 8:
                break
    raise AssertionError("\n".join(lines))


def lane_decoder(spec):
    """One output beat -> its ``cols`` lanes as signed ``acc_type`` values."""
    bits = spec.acc_type.bits
    mask = (1 << bits) - 1

    def decode(word):
        lanes = [(word >> (j * bits)) & mask for j in range(spec.cols)]
        return [v - (1 << bits) if v >> (bits - 1) else v for v in lanes]
    return decode


def make_spec(rows, cols, *, bank, acc, weight_words=8, **extra):
    """int8 x int8 -> int32 with buffers in words: ``bank`` activation words per bank (two banks), ``acc``
    accumulator words, a small weight FIFO."""
    extra.setdefault("max_pool_width", 16)
    return AcceleratorSpec(rows=rows, cols=cols, act_buffer_bytes=2 * bank * rows,
                           weight_buffer_bytes=weight_words * cols, acc_buffer_bytes=acc * 4 * cols, **extra)


def conv(name, C, M, H, W, R, S=None, stride=1, pad=0):
    """A square-stride, symmetric-pad convolution with the output size it implies."""
    S = R if S is None else S
    return ConvProblem(name, "conv2d", C=C, H=H, W=W, M=M, E=(H + 2 * pad - R) // stride + 1,
                       F=(W + 2 * pad - S) // stride + 1, R=R, S=S, stride_h=stride, stride_w=stride,
                       pad_h=pad, pad_w=pad)


def run_plan_on_top(plan, *, seed, stall=0.0):
    """The plan's host streams through the top; the output beats must be the golden ones, bit for bit."""
    spec = plan.spec
    ops = random_operands(spec, plan.problem, seed)
    want = ops.expected(plan.postops, spec.acc_type)
    run = run_top(spec, cfg=plan.config_words(), weights=plan.weight_stream(ops.weight),
                  acts=plan.act_stream(ops.act), params=plan.params_stream(ops.params),
                  expect_beats=plan.out_beats, stall=stall, seed=seed)
    check_beats(run.beats, plan.pack_outputs(want), decode=lane_decoder(spec), describe=plan.describe_output,
                what=f"{plan.problem.name} with {plan.postops}")
    return run
