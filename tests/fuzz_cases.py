"""Random designs for the fuzz campaign (`tests/test_fuzz.py`). Not a test module.

A case is a random accelerator spec, one random layer (a `conv2d`, a `linear`, a hand-written loop nest with
its loops in any order and sometimes a defect, or a layout-permuted convolution), a random mapping (mostly the
default) and random post-ops, described by plain values so a failure prints as something to paste. `run_case`
builds the `Design` and then:

- rejected: the only allowed outcome is an `HwgenError` (anything else fails the case);
- accepted: planning took less than `PLAN_CPU_SECONDS` of CPU, the plan's commands are at most
  `hwgen.tiling.MAX_COMMANDS`; "small" cases (shrunk to about `SMALL_MACS_PER_PE` MACs per PE) then run on the
  Python-level simulator (`hwgen.sim.pysim` through `tests.top_bench.run_top`) with random operands: the output
  beats must be the NumPy reference's bit for bit and the cycles `hwgen.perf.predict_plan`'s exactly (a run
  that goes on past four times the model's count is stopped as a hang). "large" cases (huge sizes, to stress the planner
  and the limits) are not simulated.

A case is drawn from its seed (`RandomDraw(seed)`, uniform choices): hypothesis picks the seeds
(`tests/test_fuzz.py`), and a seed reproduces its case: ``make_case(RandomDraw(seed), seed)``.
"""

import linecache
import random
import gc
import time
from dataclasses import dataclass, field

from hwgen import AcceleratorSpec, Design, Layer, Mapping, PostOps, conv2d, linear
from hwgen.errors import HwgenError
from hwgen.perf import predict_plan
from hwgen.spec import buffer_bytes_for
from hwgen.tiling import MAX_COMMANDS
from tests.nests import hwc_conv

__all__ = ["Case", "RandomDraw", "make_case", "run_case", "build_design", "PLAN_CPU_SECONDS", "Outcome"]

PLAN_CPU_SECONDS = 1.0       # a design of one layer is checked, mapped and planned within this much CPU time
SMALL_MACS_PER_PE = 3000      # small cases are shrunk to about this much work per PE (a few seconds to simulate)


class RandomDraw:
    def __init__(self, seed):
        self.rng = random.Random(seed)

    def integers(self, low, high):
        return self.rng.randint(low, high)

    def choice(self, options):
        return options[self.rng.randrange(len(options))]

    def chance(self, p):
        return self.rng.random() < p


@dataclass
class Case:
    profile: str                 # "small" (simulated when accepted) or "large" (planning only)
    spec: dict                   # AcceleratorSpec keyword arguments
    layer: tuple                 # ("conv2d" | "linear" | "hwc_conv" | "source", arguments)
    mapping: tuple = None        # (rows, cols, resident, dataflow) or None for the default mapping
    postops: dict = field(default_factory=dict)
    design_name: object = "fuzz"
    seed: int = 0

    def __str__(self):
        return (f"Case(profile={self.profile!r}, spec={self.spec!r}, layer={self.layer!r}, "
                f"mapping={self.mapping!r}, postops={self.postops!r}, design_name={self.design_name!r}, "
                f"seed={self.seed})")


TYPES = ["int8", "int8", "int8", "int4", "uint8", "int16", "int2", "int6"]
BAD_TYPES = ["float32", "int1", "int17", "bf16", "int", 8, None]
ACC_TYPES = ["int32", "int32", "int24", "int40", "int48", "int64", "int20"]
BAD_ACC = ["uint32", "int8", "float64"]
DATAFLOWS = ["weight_stationary", "weight_stationary", "output_stationary", "matrix_vector"]
BAD_NAMES = ["", "a b", "module", "9lives", "x" * 70, "café", None, 5]


def _bits(name):
    return int(str(name).lstrip("uint")) if isinstance(name, str) and name.lstrip("uint").isdigit() else 8


def make_spec(d, profile):
    rows = d.integers(1, 6) if profile == "small" else d.choice([1, 2, 8, 16, 64])
    cols = d.integers(1, 6) if profile == "small" else d.choice([1, 3, 8, 32, 64])
    dataflow = d.choice(DATAFLOWS)
    act = d.choice(BAD_TYPES) if d.chance(0.02) else d.choice(TYPES)
    weight = d.choice(BAD_TYPES) if d.chance(0.02) else d.choice(TYPES)
    acc = d.choice(BAD_ACC) if d.chance(0.03) else d.choice(ACC_TYPES)
    if not d.chance(0.1) and _bits(acc) < _bits(act) + _bits(weight):
        acc = "int32" if _bits(act) + _bits(weight) <= 32 else "int48"   # mostly wide enough for a product
    act_word = rows * _bits(act)
    weight_word = cols * (rows if dataflow == "matrix_vector" else 1) * _bits(weight)
    acc_word = cols * _bits(acc)

    def buffer(word_bits, low, high):
        if d.chance(0.04):                      # any byte count, maybe not whole words, maybe absurd
            return d.choice([0, -8, 3, 10 ** 9, 2 ** 40, 1.5, "64", True])
        words = d.integers(low, high) if profile == "small" else d.choice([2, 64, 4096, 65536, 65538])
        return buffer_bytes_for(words, word_bits)

    spec = dict(rows=rows, cols=cols, dataflow=dataflow, act_type=act, weight_type=weight, acc_type=acc,
                act_buffer_bytes=buffer(act_word, 2, 200), weight_buffer_bytes=buffer(weight_word, 2, 16),
                acc_buffer_bytes=buffer(acc_word, 1, 160),
                max_out_channels=d.choice([1, 2, 3, 4, 8, 16, 512]) if not d.chance(0.02) else d.choice([0, 10 ** 6]),
                max_pool_width=d.choice([2, 4, 8, 16, 64]) if not d.chance(0.02) else d.choice([1, 10 ** 6]),
                postops=True if d.chance(0.85) else d.choice([False] * 8 + ["yes"]),
                name=d.choice(BAD_NAMES) if d.chance(0.03) else "fuzz_accel")
    if isinstance(spec["act_buffer_bytes"], int) and spec["act_buffer_bytes"] > 0 and not d.chance(0.05):
        spec["act_buffer_bytes"] *= 2          # two banks: an even number of words, nearly always
    return spec


def _dims(d, profile):
    if profile == "small":
        return dict(C=d.integers(1, 12), M=d.integers(1, 12), H=d.integers(1, 9), W=d.integers(1, 9),
                    R=d.integers(1, 3), S=d.integers(1, 3), stride=d.integers(1, 3), pad=d.integers(0, 2))
    big = [1, 3, 64, 1000, 10 ** 5, 10 ** 7]
    return dict(C=d.choice(big), M=d.choice(big), H=d.choice(big[:5]), W=d.choice(big[:5]), R=d.choice([1, 3, 11, 200]),
                S=d.choice([1, 3, 11]), stride=d.choice([1, 2, 4]), pad=d.choice([0, 1, 5]))


def shrink_small(x, spec):
    """Halve the largest of C, M, H, W until the layer is about `SMALL_MACS_PER_PE` MACs per PE, so that an
    accepted small case simulates in seconds."""
    pes = spec["rows"] * spec["cols"]
    while True:
        out = [max(1, (x[size] + 2 * x["pad"] - x[k]) // x["stride"] + 1) for size, k in (("H", "R"), ("W", "S"))]
        if x["C"] * x["M"] * out[0] * out[1] * x["R"] * x["S"] <= SMALL_MACS_PER_PE * pes:
            return
        largest = max(("C", "M", "H", "W"), key=lambda key: x[key])
        x[largest] = max(1, x[largest] // 2)


_SOURCE_TEMPLATE = '''
@loop_nest(name="nest")
def nest({params}):
{body}
'''


def make_source_nest(d, x):
    """A hand-written convolution nest, loops in a random order, sometimes with one defect."""
    C, M, H, W, R, S, sh, pw = x["C"], x["M"], x["H"], x["W"], x["R"], x["S"], x["stride"], x["pad"]
    E, F = max(1, (H + 2 * pw - R) // sh + 1), max(1, (W + 2 * pw - S) // sh + 1)
    loops = [("m", M), ("c", C), ("e", E), ("f", F), ("r", R), ("s", S)]
    order = list(range(6))
    for i in range(5, 0, -1):
        j = d.integers(0, i)
        order[i], order[j] = order[j], order[i]
    loops = [loops[i] for i in order]
    act_h = f"{sh} * e + r - {pw}" if sh > 1 else f"e + r - {pw}"
    statement = f"O[m, e, f] += I[c, {act_h}, {sh} * f + s - {pw}] * W[m, c, r, s]"
    defect = d.choice([None] * 6 + ["nonaffine", "assign", "extra", "range2", "unknown", "const", "swap"])
    if defect == "nonaffine":
        statement = statement.replace("e + r", "e * r + r")
    elif defect == "assign":
        statement = statement.replace("+=", "=")
    elif defect == "range2":
        loops[0] = (loops[0][0], f"1, {loops[0][1] + 1}")
    elif defect == "unknown":
        statement = statement.replace("W[m, c, r, s]", "V[m, c, r, s]")
    elif defect == "const":
        statement = statement.replace("W[m, c, r, s]", "W[m, c, r, 0]")
    elif defect == "swap":
        statement = statement.replace("W[m, c, r, s]", "W[c, m, r, s]")
    lines = [("    " * (depth + 1)) + f"for {var} in range({extent}):" for depth, (var, extent) in enumerate(loops)]
    lines.append("    " * 7 + statement)
    if defect == "extra":
        lines.append("    " * 7 + "O[m, e, f] += 0")
    annotate = d.chance(0.5)
    params = (f"I: tensor({C}, {H}, {W}), W: tensor({M}, {C}, {R}, {S}), O: tensor({M}, {E}, {F})"
              if annotate else "I, W, O")
    return _SOURCE_TEMPLATE.format(params=params, body="\n".join(lines))


def compile_nest(source, seed):
    """The `LoopNest` a source text defines (parsed from its text, as `@loop_nest` does with a file)."""
    from hwgen import dsl
    filename = f"<fuzz-nest-{seed}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"loop_nest": dsl.loop_nest, "tensor": dsl.tensor}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["nest"]


def make_case(d, seed=0):
    profile = "large" if d.chance(0.12) else "small"
    spec = make_spec(d, profile)
    x = _dims(d, profile)
    if spec["dataflow"] == "matrix_vector" and not d.chance(0.15):
        kind = "linear"                         # the engine of fully connected layers
    else:
        kind = d.choice(["conv2d", "conv2d", "linear", "linear", "hwc_conv", "source"])
    if profile == "small" and not d.chance(0.05):   # a kernel that fits the padded input
        x["R"], x["S"] = min(x["R"], x["H"] + 2 * x["pad"]), min(x["S"], x["W"] + 2 * x["pad"])
    if profile == "small":
        shrink_small(x, spec)
    if kind == "conv2d":
        layer = ("conv2d", dict(name="conv", in_channels=x["C"], out_channels=x["M"], height=x["H"], width=x["W"],
                                kernel=(x["R"], x["S"]), stride=x["stride"], padding=x["pad"]))
    elif kind == "linear":
        layer = ("linear", dict(name="fc", in_features=x["C"] * (x["R"] if profile == "small" else 1),
                                out_features=x["M"], batch=d.choice([1, 1, 2, 3, 4, 7]) if profile == "small"
                                else d.choice([1, 4, 1000])))
    elif kind == "hwc_conv":
        layer = ("hwc_conv", (x["C"], x["M"], x["H"], x["W"], x["R"], x["S"], x["stride"], x["stride"],
                              x["pad"], x["pad"]))
    else:
        layer = ("source", make_source_nest(d, x) if profile == "small" else make_source_nest(d, _dims(d, "small")))
    mapping = None
    if d.chance(0.15):
        loops = ["m", "c", "e", "f", "r", "s", "n", "k", "x"]
        mapping = (d.choice(loops), d.choice(loops), d.choice(["W", "O", "I", "X", "Z"]),
                   spec["dataflow"] if d.chance(0.8) else d.choice(DATAFLOWS + ["row_stationary"]))
    postops = {}
    if d.chance(0.6):
        postops = dict(bias=d.chance(0.5), requant=d.chance(0.5), relu=d.chance(0.4),
                       pool=d.choice(["none", "none", "max", "avg"]) if kind != "linear" or d.chance(0.1)
                       else "none")
        if postops["requant"] and d.chance(0.3):
            postops["out_type"] = d.choice(["int8", "uint8", "int4", "int16", "int32"])
        if d.chance(0.03):
            postops[d.choice(["relu", "pool", "out_type", "zero_point", "bias"])] = d.choice(
                ["no", "MAX", 3, "int8", None, 1.5])
    design_name = d.choice(BAD_NAMES) if d.chance(0.03) else "fuzz"
    return Case(profile, spec, layer, mapping, postops, design_name, seed)


def build_nest(case):
    kind, args = case.layer
    if kind == "conv2d":
        return conv2d(**args)
    if kind == "linear":
        return linear(**args)
    if kind == "hwc_conv":
        return hwc_conv(*args)
    return compile_nest(args, case.seed)


@dataclass
class Outcome:
    status: str                  # "accepted" or "rejected"
    detail: str = ""             # the error class of a rejection; "simulated"/"planned" for an acceptance
    cycles: int = None
    plan_seconds: float = 0.0


def build_design(case):
    """The case's `Design` (raises what hwgen raises for it)."""
    nest = build_nest(case)
    mapping = Mapping(*case.mapping) if case.mapping is not None else None
    postops = PostOps(**case.postops)
    spec = AcceleratorSpec(**case.spec)
    return Design(name=case.design_name, spec=spec, layers=(Layer(nest, mapping, postops),))


def run_case(case, *, simulate=True):
    """Build the case's design, then check it as the module docstring says. Raises AssertionError (or lets
    the unexpected exception through) when the case breaks the contract."""
    # The previous cases' garbage (simulators, plans) is collected first, so a full collection cannot land inside
    # this case's planning time (a campaign once saw a 6-input linear layer "plan" in 4.9 s of CPU that way).
    gc.collect()
    started = time.process_time()
    try:
        design = build_design(case)
    except HwgenError as error:
        spent = time.process_time() - started
        assert spent < PLAN_CPU_SECONDS * 4, f"rejecting took {spent:.2f} s of CPU: {case}"
        message = str(error)
        assert message and "Traceback" not in message, f"an empty or raw message from {type(error).__name__}"
        return Outcome("rejected", type(error).__name__, plan_seconds=spent)
    spent = time.process_time() - started
    assert spent < PLAN_CPU_SECONDS, f"planning took {spent:.2f} s of CPU (bound {PLAN_CPU_SECONDS} s): {case}"
    (plan,) = design.plans()
    assert 1 <= len(plan.tiles) <= MAX_COMMANDS
    model = predict_plan(plan).cycles
    if case.profile != "small" or not simulate:
        return Outcome("accepted", "planned", model, spent)
    from tests.top_bench import check_beats, lane_decoder, random_operands, run_top
    spec = plan.spec
    ops = random_operands(spec, plan.problem, case.seed)
    want = ops.expected(plan.postops, spec.acc_type)
    # A run that makes no progress for long past the model's count is a hang (run_streams raises).
    run = run_top(spec, cfg=plan.config_words(), weights=plan.weight_stream(ops.weight),
                  acts=plan.act_stream(ops.act), params=plan.params_stream(ops.params), expect_beats=plan.out_beats,
                  seed=case.seed, max_cycles=4 * model + 2000)
    check_beats(run.beats, plan.pack_outputs(want), decode=lane_decoder(spec), describe=plan.describe_output,
                what=f"{case}")
    assert run.cycles == model, f"measured {run.cycles} cycles, model {model}: {case}"
    return Outcome("accepted", "simulated", model, spent)
