"""The float datapath (bf16/fp16 operands, fp32 accumulation): the generator option and its checks, the PE and
the post-op chain on the Amaranth simulator against the golden model, the reference's accumulation order, and
(cocotb, Icarus) whole layers on the generated Verilog: every output word bit for bit, cycles = model."""

import os
from math import ceil

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen import AcceleratorSpec, floats
from hwgen.dtypes import bf16, fp16, fp32, parse_dtype
from hwgen.errors import MappingError, UnsupportedTypeError
from hwgen.perf import postops_latency
from hwgen.hw.pe import WeightStationaryPE
from hwgen.hw.postops import PostOpPipeline
from hwgen.hw.systolic import SystolicArray
from hwgen.postops import PostOps, apply_float, check_layer, config_values, float_params, pack_params, pack_stream
from hwgen.reference import conv2d, float_layer
from hwgen.sim.job import float_operands
from hwgen.tiling import plan_layer
from tests.test_cocotb_accelerator import conv, linear

SIM = os.environ.get("SIM", "icarus")




def float_spec(fmt="bf16", **kw):
    base = dict(rows=4, cols=4, act_type=fmt, weight_type=fmt, acc_type="fp32", act_buffer_bytes=2048,
                weight_buffer_bytes=4096, acc_buffer_bytes=2048, name=f"{fmt}_ws4x4")
    return AcceleratorSpec(**{**base, **kw})


# The generator option -----------------------------------------------------------------------------------------

def test_float_types_parse_and_spec_builds():
    assert parse_dtype("bfloat16", what="x") == bf16 and parse_dtype("half", what="x") == fp16
    spec = float_spec()
    assert spec.is_float and spec.float_format == "bf16" and spec.act_type == bf16 and spec.acc_type == fp32
    assert spec.psum_bits == 32 and spec.acc_word_bits == 4 * 32 and spec.act_word_bits == 4 * 16
    assert AcceleratorSpec.from_dict(spec.to_dict()) == spec
    assert float_spec("fp16").float_format == "fp16"
    assert not AcceleratorSpec(rows=2, cols=2).is_float
    # A float accelerator's post-op chain is as narrow as the integer one by default (cols // 4 lanes).
    assert float_spec(rows=8, cols=8).postop_lanes == 2 and float_spec(rows=8, cols=8).postop_groups == 4
    assert float_spec().postop_lanes == 1 and float_spec(postops=False).postop_lanes == 1
    assert float_spec(rows=8, cols=8, postop_lanes=8).postop_groups == 1
    assert float_spec(dataflow="output_stationary").postop_lanes == 4


@pytest.mark.parametrize("kw, error, words", [
    (dict(act_type="bf16", weight_type="int8", acc_type="int32"), UnsupportedTypeError, "mix integer"),
    (dict(act_type="int8", weight_type="int8", acc_type="fp32"), UnsupportedTypeError, "mix integer"),
    (dict(act_type="bf16", weight_type="fp16", acc_type="fp32"), UnsupportedTypeError, "one 16-bit format"),
    (dict(act_type="fp32", weight_type="fp32", acc_type="fp32"), UnsupportedTypeError, "one 16-bit format"),
    (dict(act_type="bf16", weight_type="bf16", acc_type="bf16"), UnsupportedTypeError, "accumulates in fp32"),
    (dict(act_type="float64", weight_type="float64", acc_type="fp32"), UnsupportedTypeError, "'bf16'"),
    (dict(dataflow="matrix_vector"), MappingError, "not the matrix-vector engine"),
    (dict(mv_engine=True), MappingError, "integer-only"),
    (dict(stochastic_rounding=True), MappingError, "integer-only"),
    (dict(cols=8, postop_lanes=3), MappingError, "must divide cols=8"),
    (dict(dataflow="output_stationary", postop_lanes=2), MappingError, "cannot be held back"),
])
def test_float_spec_rejects_what_it_cannot_build(kw, error, words):
    base = dict(rows=4, cols=4, act_type="bf16", weight_type="bf16", acc_type="fp32")
    with pytest.raises(error, match=words):
        AcceleratorSpec(**{**base, **kw})


@pytest.mark.parametrize("postops, words", [
    (PostOps(requant=True), "outputs fp32 or bf16, not int8"), (PostOps(requant=True, out_type="fp16"), "not fp16"),
    (PostOps(pool="avg"), "pool='avg'"), (PostOps(requant=True, out_type="bf16", zero_point=3), "zero_point=3"),
])
def test_float_layers_reject_integer_postops(postops, words):
    with pytest.raises(MappingError, match=words):
        plan_layer(float_spec(), conv("c", C=4, M=4, H=4, W=4, R=1), postops)


# The PE -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_float_pe_timing_and_values(fmt):
    """The float PE has the integer PE's timing: act_in * w[bank_in] joins psum_in 4 cycles later, and
    psum_out = fp32(psum_in + product) one cycle after that."""
    pe = WeightStationaryPE(act_shape=fp16.amaranth_shape(), weight_shape=fp16.amaranth_shape(),
                            psum_shape=fp32.amaranth_shape(), fmt=fmt)
    rng = np.random.default_rng(3)
    n = 300
    acts = float_operands(rng, n, fmt, specials=True)
    ws = float_operands(rng, 2, fmt)
    psums = floats.encode(rng.standard_normal(n) * 4, "fp32")
    banks = rng.integers(0, 2, n)
    seen = []

    async def testbench(ctx):
        for bank in range(2):
            ctx.set(pe.load_en, 1)
            ctx.set(pe.load_bank, bank)
            ctx.set(pe.load_data, int(ws[bank]))
            await ctx.tick()
        ctx.set(pe.load_en, 0)
        for t in range(n + 6):
            ctx.set(pe.act_in, int(acts[t]) if t < n else 0)
            ctx.set(pe.bank_in, int(banks[t]) if t < n else 0)
            ctx.set(pe.psum_in, int(psums[t - 4]) if 4 <= t < n + 4 else 0)
            seen.append(ctx.get(pe.psum_out))
            await ctx.tick()

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    products = floats.product(acts, ws[banks], fmt)
    want = floats.add(psums, products)
    assert [int(v) for v in want] == seen[5:5 + n]


def test_systolic_array_column_order():
    """A 3x2 float array: column sums are ((+0 + p0) + p1) + p2, top to bottom, de-skewed."""
    rows, cols, fmt = 3, 2, "bf16"
    array = SystolicArray(rows=rows, cols=cols, act_type=bf16, weight_type=bf16, psum_bits=32)
    rng = np.random.default_rng(5)
    w = float_operands(rng, (rows, cols), fmt)
    vectors = [float_operands(rng, rows, fmt, specials=True) for _ in range(40)]
    # Values whose order matters: big, small, -big in one column.
    vectors.append(floats.encode([2.0 ** 25, 1.0, -2.0 ** 25], fmt).astype(np.int64))
    w[:, 0] = floats.encode([1.0, 1.0, 1.0], fmt)
    seen = []

    async def testbench(ctx):
        for i in range(rows):
            ctx.set(array.load_en, 1)
            ctx.set(array.load_row, i)
            ctx.set(array.load_bank, 0)
            ctx.set(array.load_data, sum(int(w[i, j]) << (16 * j) for j in range(cols)))
            await ctx.tick()
        ctx.set(array.load_en, 0)
        for t in range(len(vectors) + array.latency + 1):
            vec = vectors[t] if t < len(vectors) else np.zeros(rows, dtype=np.int64)
            ctx.set(array.acts, sum(int(v) << (16 * i) for i, v in enumerate(vec)))
            seen.append(ctx.get(array.psums))
            await ctx.tick()

    sim = Simulator(array)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for t, vec in enumerate(vectors):
        word = seen[t + array.latency]
        for j in range(cols):
            want = floats.float_sum([np.uint64(0)] + [floats.product(vec[i], w[i, j], fmt) for i in range(rows)])
            assert (word >> (32 * j)) & 0xFFFFFFFF == int(want), (t, j)
    # (2**25 + 1) - 2**25 in fp32 is 0 when summed in that order: the array's order, not the exact sum.
    assert seen[len(vectors) - 1 + array.latency] & 0xFFFFFFFF == 0


# The reference's order -----------------------------------------------------------------------------------------

def test_float_reference_is_exact_for_integer_valued_data_and_follows_tiles():
    """With small integer values every product and sum is exact, so the float reference must equal the
    integer one whatever the order; a tiled plan (split reduction) gives the same too."""
    rng = np.random.default_rng(1)
    problem = conv("c", C=6, M=5, H=6, W=5, R=3, pad=1)
    ints_a = rng.integers(-8, 9, problem.act_canonical_shape)
    ints_w = rng.integers(-8, 9, problem.weight_canonical_shape)
    acts, weights = floats.encode(ints_a, "bf16"), floats.encode(ints_w, "bf16")
    exact = conv2d(ints_a, ints_w, padding=1)
    for spec in (float_spec(), float_spec(rows=2, cols=2, act_buffer_bytes=128, acc_buffer_bytes=96,
                                          weight_buffer_bytes=16, max_out_channels=2, name="tiny")):
        plan = plan_layer(spec, problem)
        got = floats.decode(float_layer(plan, acts, weights), "fp32")
        np.testing.assert_array_equal(got, exact)
    assert plan.tiled


def test_float_reference_rounding_depends_on_order_and_is_close_to_exact():
    rng = np.random.default_rng(2)
    problem = conv("c", C=9, M=4, H=5, W=5, R=3, pad=1)
    acts = float_operands(rng, problem.act_canonical_shape, "bf16")
    weights = float_operands(rng, problem.weight_canonical_shape, "bf16")
    plan = plan_layer(float_spec(), problem)
    got = floats.decode(float_layer(plan, acts, weights), "fp32")
    exact = np.zeros_like(got)
    a, w = floats.decode(acts, "bf16"), floats.decode(weights, "bf16")
    for r in range(3):
        for s in range(3):
            window = np.pad(a, ((0, 0), (1, 1), (1, 1)))[:, r:r + 5, s:s + 5]
            exact += np.tensordot(w[:, :, r, s], window, axes=1)
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
    assert not np.array_equal(got, exact.astype(np.float32))      # it does round somewhere


# The post-op chain --------------------------------------------------------------------------------------------

FLOAT_CHAINS = [PostOps(), PostOps(bias=True), PostOps(relu=True), PostOps(bias=True, relu=True, pool="max"),
                PostOps(pool="max"), PostOps(bias=True, requant=True, out_type="fp32"),
                PostOps(bias=True, requant=True, out_type="bf16", relu=True, pool="max"),
                PostOps(requant=True, out_type="bf16")]


class FloatChainLayer:
    """One layer for `tests.test_hw_postops.StreamBench` on a float chain: fp32 accumulator patterns ``acc``
    ``[M, E, F]`` and the packed float ``params``, with their beats and `apply_float`'s expected output."""

    def __init__(self, spec, postops, acc, params):
        M, E, F = acc.shape
        self.postops, self.shape, self.m_folds = postops, acc.shape, ceil(M / spec.cols)
        self.cfg = config_values(postops, spec.acc_type, out_h=E, out_w=F, m_folds=self.m_folds)
        self.param_beats = (pack_params(params, cols=spec.cols, M=M, lanes=spec.postop_lanes)
                            if postops.needs_params else [])
        self.in_beats = pack_stream(acc, cols=spec.cols, lane_type=spec.acc_type)
        self.expected = apply_float(acc, params, postops)
        self.out_size = postops.out_size(E, F)


@pytest.mark.parametrize("lanes", [4, 1, 2], ids=["full_width", "lanes1", "lanes2"])
@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("postops", FLOAT_CHAINS, ids=str)
def test_float_postop_chain_equals_golden(postops, fmt, lanes):
    """The float chain on the Amaranth simulator, bit for bit against `apply_float`, under random stalls on both
    sides: full width (one group) and narrow (4 and 2 groups of 1 and 2 lanes; pooling across groups)."""
    from tests.test_hw_postops import StreamBench

    if lanes == 2 and postops.pool == "none":
        pytest.skip("two lanes: the pooled chains (the one- and four-group runs cover the rest)")
    if postops.requant and postops.out_type.name != "fp32":
        postops = PostOps(**{**postops.__dict__, "out_type": fmt})
    spec = float_spec(fmt, cols=4, name="pp", postop_lanes=lanes)

    def random_layer(shape, rng):
        M = shape[0]
        values = rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 6, shape)
        acc = floats.encode(values, "fp32").astype(np.int64)
        specials = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, floats.CANONICAL_NAN, 0x00000001])
        acc = np.where(rng.random(shape) < 0.05, rng.choice(specials, shape), acc)
        params = float_params(floats.encode(rng.standard_normal(M), "fp32").astype(np.int64),
                              floats.encode(rng.uniform(0, 3, M) ** 4, "fp32").astype(np.int64))
        return FloatChainLayer(spec, postops, acc, params)

    rng = np.random.default_rng(11)
    layers = [random_layer(shape, rng) for shape in [(6, 5, 7), (3, 4, 4)]]
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers, p_valid=0.7, p_ready=0.6, seed=4))


def test_float_chain_latency_is_the_integer_chains():
    """A float chain has the integer chain's latency for its width: 13 full width (one group, the pooling pair in
    one stage), 14 narrow (the pair split over S11/S11b), as `latency_for` and the cycle model say."""
    assert AcceleratorSpec(rows=8, cols=8).postop_groups == 4
    full, narrow = float_spec(rows=8, cols=8, postop_lanes=8), float_spec(rows=8, cols=8)
    assert full.postop_groups == 1 and full.postop_fifo_depth == 0 and not PostOpPipeline.split_pair(full)
    dut = PostOpPipeline(full, max_m_folds=2, max_out_w=4)
    assert dut.groups == 1 and dut.latency == PostOpPipeline.LATENCY == 13 == postops_latency(full)
    assert narrow.postop_groups == 4 and narrow.postop_fifo_depth > 0 and PostOpPipeline.split_pair(narrow)
    dut = PostOpPipeline(narrow, max_m_folds=2, max_out_w=4)
    assert dut.groups == 4 and dut.latency == PostOpPipeline.LATENCY + 1 == 14 == postops_latency(narrow)


@pytest.mark.parametrize("lanes", [4, 2, 1])
def test_float_chain_takes_a_group_per_cycle_and_leaves_after_the_last(lanes):
    """Every source valid and the sink ready: one beat in per cols / lanes cycles, back to back across layers
    with different chains, each output beat ``latency`` cycles after its last group went in (unpooled layers),
    the values bit for bit."""
    from tests.test_hw_postops import StreamBench
    spec = float_spec("bf16", cols=4, name="pp", postop_lanes=lanes)
    rng = np.random.default_rng(5)
    chains = [PostOps(bias=True, requant=True, out_type="bf16"), PostOps(bias=True, relu=True),
              PostOps(requant=True, out_type="fp32")]
    layers = []
    for postops, (M, E, F) in zip(chains, [(4, 3, 5), (6, 2, 3), (3, 4, 2)]):
        acc = floats.encode(rng.standard_normal((M, E, F)) * 100, "fp32").astype(np.int64)
        params = float_params(floats.encode(rng.standard_normal(M), "fp32").astype(np.int64),
                              floats.encode(rng.uniform(0, 2, M), "fp32").astype(np.int64))
        layers.append(FloatChainLayer(spec, postops, acc, params))
    bench = StreamBench(spec)
    bench.check(layers, bench.run(layers))
    groups, latency = spec.postop_groups, postops_latency(spec)
    total = sum(len(layer.in_beats) for layer in layers)
    first = bench.accepted[0]
    assert bench.accepted == list(range(first, first + groups * total, groups))
    assert bench.emitted == [t + latency for t in bench.accepted]


# Whole layers on the generated Verilog (cocotb, Icarus) ------------------------------------------------------

FLOAT_LAYERS = [
    (conv("conv_s1_p1_bias_relu_maxpool", C=6, M=6, H=6, W=6, R=3, pad=1), PostOps(bias=True, relu=True, pool="max")),
    (conv("conv_s2_p1_specials", C=5, M=5, H=7, W=7, R=3, stride=2, pad=1), PostOps()),
    (linear("fc_batch2_bias", K=21, M=10, N=2), PostOps(bias=True)),
    (linear("fc_batch1_specials_relu", K=13, M=6, N=1), PostOps(bias=True, relu=True)),
    (conv("conv_requant_narrow_relu_maxpool", C=5, M=7, H=6, W=5, R=2, pad=1),
     PostOps(bias=True, requant=True, out_type="bf16", relu=True, pool="max")),
    (linear("fc_requant_fp32_specials", K=9, M=5, N=3), PostOps(requant=True, out_type="fp32")),
]


def float_layers(fmt):
    """`FLOAT_LAYERS` with the narrowing to ``fmt`` (the spec's format) instead of bf16."""
    return [(p, PostOps(**{**o.__dict__, "out_type": fmt}) if o.requant and o.out_type.name == "bf16" else o)
            for p, o in FLOAT_LAYERS]


@pytest.mark.cocotb
@pytest.mark.parametrize("fmt, lanes", [("bf16", None), ("fp16", None), ("bf16", 4)],
                         ids=["bf16", "fp16", "bf16_full_width"])
def test_float_layers_exact_and_cycle_accurate_on_verilog(fmt, lanes):
    """The spec's default chain (one lane on the 4x4: a beat in four groups) and a full-width one."""
    from hwgen.sim.runner import run_layers
    spec = float_spec(fmt, postop_lanes=lanes)
    assert spec.postop_groups == (1 if lanes else 4)
    layers = float_layers(fmt)
    result = run_layers(spec, layers, simulator=SIM, stall=0.0, seed=3,
                        tag=f"float_{fmt}" + ("_full" if lanes else ""))
    assert [layer["layer"] for layer in result.layers] == [p.name for p, _ in layers]
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]


@pytest.mark.cocotb
def test_float_layers_exact_under_random_stalls():
    from hwgen.sim.runner import run_layers
    spec = float_spec("bf16")
    result = run_layers(spec, float_layers("bf16")[3:5], simulator=SIM, stall=0.3, seed=8, tag="float_stall")
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["measured_cycles"] >= layer["model_cycles"]


# A narrow chain of two lanes on the 4x4 (two groups a beat): pooling across groups through the line buffer,
# requantization to bf16 and fp32, NaN/inf/-0 in the data (`float_operands`), output stalls.
NARROW_LAYERS = [
    (conv("conv_requant_relu_maxpool_two_groups_specials", C=5, M=7, H=6, W=5, R=2, pad=1),
     PostOps(bias=True, requant=True, out_type="bf16", relu=True, pool="max")),
    (conv("conv_s1_p1_maxpool_specials", C=6, M=6, H=6, W=6, R=3, pad=1), PostOps(pool="max")),
    (linear("fc_requant_fp32_specials", K=9, M=5, N=3), PostOps(requant=True, out_type="fp32")),
]


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_narrow_float_chain_layers_exact_and_cycle_accurate(stall):
    from hwgen.sim.runner import run_layers
    spec = float_spec("bf16", postop_lanes=2, name="bf16_ws4x4_lanes2")
    assert spec.postop_groups == 2 and spec.postop_fifo_depth > 0
    result = run_layers(spec, NARROW_LAYERS, simulator=SIM, stall=stall, seed=13, tag="float_narrow")
    assert [layer["layer"] for layer in result.layers] == [p.name for p, _ in NARROW_LAYERS]
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        if stall:
            assert layer["measured_cycles"] >= layer["model_cycles"]
        else:
            assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]


# Tiled: bands of rows, input-channel tiles (the reduction continues in the accumulator across commands: the
# order of the additions crosses commands), output-channel tiles, and a host-unrolled (im2col) plan.
SPEC_TILED = dict(rows=2, cols=2, act_buffer_bytes=96, weight_buffer_bytes=16, acc_buffer_bytes=96,
                  max_out_channels=2, max_pool_width=8)
TILED_LAYERS = [
    (conv("bands_c_tiles", C=3, M=3, H=5, W=3, R=3, pad=1), PostOps()),
    (conv("bands_c_m_tiles_bias_relu_maxpool", C=3, M=3, H=6, W=3, R=3, pad=1),
     PostOps(bias=True, relu=True, pool="max")),
    (linear("fc_c_m_tiles_bias_requant_specials", K=15, M=3, N=2), PostOps(bias=True, requant=True, out_type="bf16")),
    (conv("im2col_c1_specials", C=1, M=3, H=4, W=3, R=3, pad=1), PostOps(bias=True)),
]


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_tiled_float_layers_exact_and_cycle_accurate(stall):
    from hwgen.sim.runner import run_layers
    spec = float_spec("bf16", **SPEC_TILED, name="bf16_ws2x2_tiled")
    plans = [plan_layer(spec, problem, postops) for problem, postops in TILED_LAYERS]
    assert all(plan.tiled for plan in plans) and plans[3].im2col
    assert all(len({(t.c0, t.c1) for t in plan.tiles}) > 1 for plan in plans)      # split reductions
    result = run_layers(spec, TILED_LAYERS, simulator=SIM, stall=stall, seed=6, tag="float_tiled")
    for layer, plan in zip(result.layers, plans):
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["commands"] == len(plan.tiles)
        if stall:
            assert layer["measured_cycles"] >= layer["model_cycles"]
        else:
            assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]


@pytest.mark.cocotb
def test_float_layers_in_ecp5_cells_form():
    """The ECP5 form (the significand multipliers as MULT18X18D cells, block RAMs as DP16KD; simulated with
    sim/models/ecp5_cells.v): the same values and cycles."""
    from hwgen.sim.runner import run_layers
    spec = float_spec("bf16")
    layers = float_layers("bf16")[:5]
    result = run_layers(spec, layers, simulator=SIM, stall=0.0, seed=12, tag="float_ecp5", family="ecp5")
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]


def test_the_cocotb_data_exercises_rounding_and_special_values():
    """The layers the Verilog runs are not degenerate: sums that round (the fp32 result differs from the exact
    sum rounded once) and, in the ``specials`` layers, NaN, infinities and zeros of both signs on the lanes."""
    from hwgen.sim.job import make_layer_data
    spec = float_spec("bf16")
    seen = set()
    for index, (problem, postops) in enumerate(float_layers("bf16")):
        plan = plan_layer(spec, problem, postops)
        data = make_layer_data(plan, seed=3 * 1000 + index)
        lanes = {(int(beat) >> (32 * j)) & 0xFFFFFFFF for beat in data.expected_beats for j in range(spec.cols)}
        if "specials" in problem.name:
            seen |= {"nan" for v in lanes if v == floats.CANONICAL_NAN}
            seen |= {"inf" for v in lanes if v & 0x7FFFFFFF == 0x7F800000}
            seen |= {"-0" for v in lanes if v == 0x80000000} | {"+0" for v in lanes if v == 0}
    assert {"nan", "inf", "+0"} <= seen, seen
    # Rounding: the accumulators of an ordinary layer against the exact sum rounded once.
    problem = FLOAT_LAYERS[0][0]
    plan = plan_layer(spec, problem)
    rng = np.random.default_rng(0)
    acts = float_operands(rng, problem.act_canonical_shape, "bf16")
    weights = float_operands(rng, problem.weight_canonical_shape, "bf16", scale=0.5)
    got = float_layer(plan, acts, weights)
    a, w = floats.decode(acts, "bf16"), floats.decode(weights, "bf16")
    exact = np.zeros(got.shape)
    padded = np.pad(a, ((0, 0), (1, 1), (1, 1)))
    for r in range(3):
        for s in range(3):
            exact += np.tensordot(w[:, :, r, s], padded[:, r:r + problem.E, s:s + problem.F], axes=1)
    once = floats.encode(exact, "fp32").astype(np.int64)
    assert 0 < np.count_nonzero(got != once) < got.size


# The output-stationary array: each output's K unrolled inputs summed in order in its PE; pixel-range commands,
# m-tiles sharing their activations, pooled bands.
SPEC_OS = dict(rows=4, cols=4, dataflow="output_stationary", act_buffer_bytes=2 * 80 * 8, weight_buffer_bytes=512,
               acc_buffer_bytes=256, max_out_channels=8, max_pool_width=16)
OS_LAYERS = [
    (conv("os_s1_p1_bias_requant_relu", C=4, M=10, H=7, W=7, R=3, pad=1),
     PostOps(bias=True, requant=True, out_type="bf16", relu=True)),
    (conv("os_s2_p0_specials", C=3, M=5, H=9, W=8, R=3, stride=2), PostOps()),
    (conv("os_s2_p1_maxpool", C=2, M=6, H=10, W=10, R=3, stride=2, pad=1), PostOps(bias=True, pool="max")),
    (linear("os_matmul_batch6_specials", K=13, M=9, N=6), PostOps(bias=True)),
]


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_output_stationary_float_layers_exact_and_cycle_accurate(stall):
    from hwgen.sim.runner import run_layers
    spec = float_spec("bf16", **SPEC_OS, name="bf16_os4x4")
    plans = [plan_layer(spec, problem, postops) for problem, postops in OS_LAYERS]
    assert any(len({t.p0 for t in plan.tiles}) > 1 for plan in plans)             # pixel-range commands
    assert any(len({(t.m0, t.m1) for t in plan.tiles}) > 1 for plan in plans)      # m-tiles
    result = run_layers(spec, OS_LAYERS, simulator=SIM, stall=stall, seed=9, tag="float_os")
    for layer, plan in zip(result.layers, plans):
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["commands"] == len(plan.tiles)
        if stall:
            assert layer["measured_cycles"] >= layer["model_cycles"]
        else:
            assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]
