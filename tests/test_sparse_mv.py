"""The sparse matrix-vector mode (`hwgen.sparse`, `hwgen.hw.sparse_mv`): magnitude pruning, the compressed format,
the exact cycle model from the sparsity pattern, the engine bit for bit against `hwgen.reference.linear` in
Amaranth's simulator and on the RTL (cocotb, Icarus; cycles equal to the model), and the AlexNet-FC6 target
(9216 -> 4096, 90 % zero weights, 50 % zero activations: at least 5x fewer cycles than the dense matrix-vector
engine of the same multiplier count, from the model)."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.errors import DataError, MappingError
from hwgen.hw.sparse_mv import SparseMatrixVectorEngine
from hwgen.sparse import magnitude_prune, plan_sparse_fc, sparse_cycles
from hwgen.spec import AcceleratorSpec


def small_spec(rows=2, cols=2, depth=4, name="sparse_mv"):
    return AcceleratorSpec(rows=rows, cols=cols, dataflow="matrix_vector", act_buffer_bytes=rows * 8,
                           weight_buffer_bytes=rows * cols * 8, acc_buffer_bytes=cols * 8, sparse_mv=True,
                           sparse_depth=depth,
                           name=name)


def sparse_operands(M, K, w_sparsity, a_sparsity, seed):
    rng = np.random.default_rng(seed)
    weight = magnitude_prune(rng.integers(-128, 128, (M, K)), w_sparsity)
    weight.flat[0] = -128
    x = rng.integers(-128, 128, K)
    x[rng.random(K) < a_sparsity] = 0
    return weight, x


def test_magnitude_prune_hits_the_target_and_keeps_the_largest():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(40, 50))
    pruned = magnitude_prune(w, 0.9)
    assert np.count_nonzero(pruned) == 200
    assert np.abs(w[pruned == 0]).max() <= np.abs(pruned[pruned != 0]).min()
    assert (pruned[pruned != 0] == w[pruned != 0]).all()
    with pytest.raises(DataError, match="from 0 to 1"):
        magnitude_prune(w, 1.5)


def simulate(spec, plan, *, stall=0.0, seed=0, max_cycles=20000):
    """The engine in Amaranth's simulator: (beats, cycles from the first word's handshake to the last beat's)."""
    dut = SparseMatrixVectorEngine(spec)
    rng = np.random.default_rng(seed)
    got, times = [], {}

    async def testbench(ctx):
        cycle, first = 0, None
        for command in plan.commands:
            words, sent, emitted = list(command.words), 0, 0
            ctx.set(dut.slots, command.slots)
            while emitted < command.slots:
                assert cycle < max_cycles
                offer = sent < len(words) and rng.random() >= stall
                ctx.set(dut.i.valid, offer)
                if offer:
                    ctx.set(dut.i.payload, words[sent])
                ready = bool(rng.random() >= stall)
                ctx.set(dut.o.ready, ready)
                if offer and ctx.get(dut.i.ready):
                    sent += 1
                    first = cycle if first is None else first
                if ctx.get(dut.o.valid) and ready:
                    got.append(ctx.get(dut.o.payload))
                    emitted += 1
                    times["last"] = cycle
                await ctx.tick()
                cycle += 1
        ctx.set(dut.i.valid, 0)
        times["first"] = first

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, times["last"] - times["first"]


@pytest.mark.parametrize("w_sparsity,a_sparsity", [(0.0, 0.0), (0.6, 0.5), (0.9, 0.5), (1.0, 0.0)])
def test_engine_exact_and_cycles_equal_model(w_sparsity, a_sparsity):
    """Two commands (M = 21 > 2*2*4 rows per command), lanes past M, dense and empty matrices."""
    spec = small_spec()
    weight, x = sparse_operands(21, 13, w_sparsity, a_sparsity, seed=int(w_sparsity * 10))
    if w_sparsity == 1.0:
        weight[:] = 0
    plan = plan_sparse_fc(spec, weight, x)
    assert len(plan.commands) == 2
    beats, cycles = simulate(spec, plan)
    assert beats == plan.expected_beats(weight, x)
    assert cycles == plan.cycles == sparse_cycles(spec, weight, x)


def test_engine_exact_under_random_stalls():
    spec = small_spec(cols=3, depth=3)
    weight, x = sparse_operands(25, 11, 0.7, 0.4, seed=3)
    plan = plan_sparse_fc(spec, weight, x)
    beats, cycles = simulate(spec, plan, stall=0.35, seed=4)
    assert beats == plan.expected_beats(weight, x) and cycles >= plan.cycles


def test_cycles_scale_with_nonzeros_and_zero_activations_cost_nothing():
    spec = small_spec(rows=4, cols=4, depth=8)
    weight, x = sparse_operands(128, 200, 0.0, 0.0, seed=5)
    dense = sparse_cycles(spec, weight, x)
    assert dense == 200 * 8 + 8 + 1                 # every lane has 8 rows of every column
    x_half = x.copy()
    x_half[::2] = 0
    assert sparse_cycles(spec, weight, x_half) == 100 * 8 + 8 + 1
    pruned = magnitude_prune(weight, 0.9)
    assert sparse_cycles(spec, pruned, x) < dense / 3


def test_checks():
    plain = AcceleratorSpec(rows=2, cols=2)
    with pytest.raises(MappingError, match="sparse_mv=True"):
        plan_sparse_fc(plain, np.zeros((2, 2), dtype=int), np.zeros(2, dtype=int))
    with pytest.raises(MappingError, match="sparse_depth"):
        AcceleratorSpec(rows=2, cols=2, sparse_mv=True, sparse_depth=0)
    with pytest.raises(DataError, match="outside"):
        plan_sparse_fc(small_spec(), np.full((2, 3), 300), np.zeros(3, dtype=int))
    with pytest.raises(MappingError, match="without mv_engine"):
        AcceleratorSpec(rows=2, cols=2, sparse_mv=True)
    with pytest.raises(MappingError, match="output_stationary array"):
        AcceleratorSpec(rows=2, cols=2, dataflow="output_stationary", sparse_mv=True)


def test_alexnet_fc6_target_at_least_5x_fewer_cycles_than_dense():
    """9216 -> 4096 on 8x8 = 64 multipliers: 90 % zero weights (magnitude-pruned), 50 % zero activations."""
    from hwgen.perf import predict_plan
    from hwgen.tiling import plan_layer
    from tests.test_cocotb_accelerator import linear
    rng = np.random.default_rng(15)
    # Magnitude pruning of i.i.d. weights leaves an i.i.d. pattern: drawn directly (pruning is tested above).
    weight = np.zeros((4096, 9216), dtype=np.int8)
    keep = rng.random((4096, 9216), dtype=np.float32) < 0.1
    weight[keep] = 1
    x = rng.integers(1, 128, 9216)
    x[rng.permutation(9216)[:4608]] = 0
    spec = AcceleratorSpec(rows=8, cols=8, dataflow="matrix_vector", act_buffer_bytes=2 * 9216,
                           weight_buffer_bytes=8 * 64 * 32, acc_buffer_bytes=256, max_out_channels=4096,
                           sparse_mv=True, sparse_depth=64)
    dense = predict_plan(plan_layer(spec, linear("fc6", K=9216, M=4096, N=1))).cycles
    sparse = sparse_cycles(spec, weight, x)
    assert dense / sparse >= 5, (dense, sparse)


# On the RTL ------------------------------------------------------------------------------------------------------

SIM = os.environ.get("SIM", "icarus")


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_rtl_exact_and_cycles_equal_model(stall, tmp_path):
    from amaranth.back import verilog
    from hwgen.sim.runner import run_block
    spec = small_spec(rows=2, cols=4, depth=4, name="sparse_mv2x4")
    weight, x = sparse_operands(45, 30, 0.85, 0.5, seed=9)
    plan = plan_sparse_fc(spec, weight, x)
    assert len(plan.commands) == 2
    source = tmp_path / "sparse_mv2x4.v"
    source.write_text(verilog.convert(SparseMatrixVectorEngine(spec), name=spec.name, emit_src=False))
    job = {"commands": [{"words": [hex(w) for w in c.words], "slots": c.slots} for c in plan.commands],
           "stall": stall, "seed": 7}
    got = run_block([source], spec.name, "hwgen.sim.tb_sparse", job, env_var="HWGEN_SPARSE_JOB",
                    work_dir=tmp_path, simulator=SIM)
    assert [int(b, 16) for b in got["beats"]] == plan.expected_beats(weight, x)
    if stall:
        assert got["cycles"] >= plan.cycles
    else:
        assert got["cycles"] == plan.cycles


# Magnitude pruning in the compiler -------------------------------------------------------------------------------

def test_compiler_prunes_each_layer_to_its_target_and_stays_an_integer_network():
    from hwgen.compiler import quantize
    from hwgen.compiler.prune import layer_sparsity, prune_network
    from tests.test_compiler_network import calibration, small_float_network
    qnet = quantize(small_float_network(), calibration())
    pruned = prune_network(qnet, {"fc1": 0.9, "conv1": 0.5})
    got = layer_sparsity(pruned)
    assert abs(got["fc1"] - 0.9) < 0.01 and abs(got["conv1"] - 0.5) < 0.02
    assert got["fc2"] == layer_sparsity(qnet)["fc2"]
    fc1, before = pruned.layers[1], qnet.layers[1]
    kept = fc1.weight != 0
    real = np.abs(before.weight) * before.weight_scale.reshape(-1, 1, 1, 1)
    assert real[~kept].max() <= real[kept].min()            # the largest real magnitudes survive
    x = qnet.quantize_input(calibration(n=2)[0])
    assert [y.shape for y in pruned.forward_int(x)] == [y.shape for y in qnet.forward_int(x)]
    with pytest.raises(MappingError, match="does not have"):
        prune_network(qnet, {"fc9": 0.5})


# The sparse engine in the accelerator (beside the dense matrix-vector engine) -------------------------------------

from hwgen.perf import predict_plan  # noqa: E402
from hwgen.postops import PostOps  # noqa: E402
from hwgen.tiling import plan_layer, plan_sparse_layer  # noqa: E402
from tests.test_cocotb_accelerator import linear  # noqa: E402
from tests.test_energy import probed_top  # noqa: E402,F401  (a fixture)

TOP_SPEC = AcceleratorSpec(rows=2, cols=2, dataflow="matrix_vector", act_buffer_bytes=64, weight_buffer_bytes=64,
                           acc_buffer_bytes=64, max_out_channels=8, sparse_mv=True, sparse_depth=4, name="sparse2x2")
TOP_LAYERS = [
    (linear("fc_sparse_raw", K=13, M=21, N=1), PostOps(), 0.7, 0.4),            # 2 commands (16 + 5 rows)
    (linear("fc_sparse_requant_relu", K=17, M=19, N=1), PostOps(bias=True, requant=True, relu=True), 0.9, 0.5),
    (linear("fc_sparse_empty", K=6, M=3, N=1), PostOps(bias=True), 1.0, 0.0),    # no nonzero: one empty word
]


def top_plans(spec=TOP_SPEC, layers=TOP_LAYERS):
    plans = []
    for n, (problem, postops, w_s, a_s) in enumerate(layers):
        weight, x = sparse_operands(problem.M, problem.C, w_s, a_s, seed=20 + n)
        if w_s == 1.0:
            weight[:] = 0
        plans.append(plan_sparse_layer(spec, problem, postops, weight=weight, x=x))
    return plans


def run_on_top(plans, *, stall=0.0, seed=0):
    from hwgen.sim.job import make_layer_data
    from tests.top_bench import check_beats, lane_decoder, run_top
    streams = {"cfg": [], "sparse": [], "params": [], "weights": [], "acts": []}
    expected = []
    for n, plan in enumerate(plans):
        data = make_layer_data(plan, seed + n)
        streams["cfg"] += data.config_words
        streams["sparse"] += data.sparse_words
        streams["params"] += data.param_words
        streams["weights"] += data.weight_words
        streams["acts"] += data.act_words
        expected += data.expected_beats
    run = run_top(plans[0].spec, **streams, expect_beats=len(expected), stall=stall, seed=seed)
    check_beats(run.beats, expected, decode=lane_decoder(plans[0].spec))
    return run


def three_engine_spec(narrow):
    """A weight-stationary array with the matrix-vector engine and the sparse engine beside it (the accelerator a
    network with convolutions and pruned fully connected layers runs on)."""
    if narrow:
        return AcceleratorSpec(rows=4, cols=4, mv_engine=True, act_buffer_bytes=1024, weight_buffer_bytes=128,
                               acc_buffer_bytes=512, max_out_channels=16, max_pool_width=16, sparse_mv=True,
                               sparse_depth=2, postop_lanes=1, name="ws_sparse4x4n")
    return AcceleratorSpec(rows=2, cols=2, mv_engine=True, act_buffer_bytes=256, weight_buffer_bytes=64,
                           acc_buffer_bytes=256, max_out_channels=8, max_pool_width=16, sparse_mv=True,
                           sparse_depth=4, name="ws_sparse2x2")


@pytest.mark.parametrize("narrow", [False, True], ids=["full_chain", "one_lane_chain"])
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_sparse_engine_beside_the_array_and_the_mv_engine(narrow, stall):
    """Convolutions on the array, dense FC on the matrix-vector engine and pruned FC on the sparse engine, in
    every order of hand-over between them: values exact, cycles = model (`hwgen.perf.predict_commands`) without
    stalls; the engines take turns on the output FIFO (a sparse command starts once the array has drained)."""
    from hwgen.perf import predict_commands
    from hwgen.sim.job import make_layer_data
    from tests.test_cocotb_accelerator import conv
    from tests.top_bench import check_beats, lane_decoder, run_top
    spec = three_engine_spec(narrow)
    w, x = sparse_operands(37, 23, 0.8, 0.5, seed=20)
    sparse = plan_sparse_layer(spec, linear("fc_sp", K=23, M=37, N=1), PostOps(bias=True, requant=True),
                               weight=w, x=x)
    w, x = sparse_operands(9, 17, 0.9, 0.5, seed=21)
    sparse_raw = plan_sparse_layer(spec, linear("fc_sp_raw", K=17, M=9, N=1), PostOps(), weight=w, x=x)
    array = plan_layer(spec, conv("cv", C=3, M=6, H=6, W=6, R=3),
                       PostOps(bias=True, requant=True, relu=True, pool="max"))
    dense = plan_layer(spec, linear("fc_mv", K=9, M=5, N=1), PostOps(bias=True, requant=True),
                       engine="matrix_vector")
    assert (array.engine, dense.engine, sparse.engine) == ("weight_stationary", "matrix_vector", "matrix_vector")
    order = [array, sparse, dense, sparse_raw, array, sparse]
    streams = {"cfg": [], "sparse": [], "params": [], "weights": [], "acts": [], "mv_weights": []}
    expected = []
    for n, plan in enumerate(order):
        data = make_layer_data(plan, n)
        streams["cfg"] += data.config_words
        streams["sparse"] += data.sparse_words
        streams["params"] += data.param_words
        streams["mv_weights" if plan is dense else "weights"] += data.weight_words
        streams["acts"] += data.act_words
        expected += data.expected_beats
    run = run_top(spec, **streams, expect_beats=len(expected), stall=stall, seed=3)
    check_beats(run.beats, expected, decode=lane_decoder(spec))
    model = predict_commands([c for plan in order for c in plan.commands]).cycles
    assert run.cycles >= model if stall else run.cycles == model


@pytest.mark.parametrize("index", range(len(TOP_LAYERS)), ids=[layer[0].name for layer in TOP_LAYERS])
def test_top_sparse_layer_exact_and_cycles_equal_model(index):
    plan = top_plans()[index]
    run = run_on_top([plan], seed=index)
    assert run.cycles == predict_plan(plan).cycles


def test_top_sparse_and_dense_layers_back_to_back_under_stalls():
    """Sparse and dense commands on one accelerator, with random stalls on every stream."""
    from hwgen.sim.job import make_layer_data  # noqa: F401
    plans = top_plans()
    dense = plan_layer(TOP_SPEC, linear("fc_dense", K=9, M=5, N=1), PostOps(bias=True, requant=True))
    run_on_top([plans[1], dense, plans[0]], stall=0.3, seed=6)


def test_alexnet_fc6_in_the_accelerator_at_least_5x_fewer_cycles():
    """The accelerator's own model (commands, post-ops, hand-offs) for FC6 on the sparse engine vs the dense one."""
    rng = np.random.default_rng(16)
    weight = np.zeros((4096, 9216), dtype=np.int8)
    weight[rng.random((4096, 9216), dtype=np.float32) < 0.1] = 1
    x = rng.integers(1, 128, 9216)
    x[rng.permutation(9216)[:4608]] = 0
    spec = AcceleratorSpec(rows=8, cols=8, dataflow="matrix_vector", act_buffer_bytes=2 * 9216,
                           weight_buffer_bytes=2048, acc_buffer_bytes=256, max_out_channels=4096,
                           sparse_mv=True, sparse_depth=64)
    plan = plan_sparse_layer(spec, linear("fc6", K=9216, M=4096, N=1), PostOps(bias=True, requant=True, relu=True),
                             weight=weight, x=x, pack=False)
    assert plan.dense_cycles / predict_plan(plan).cycles >= 5


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_top_rtl_exact_and_cycles_equal_model(stall):
    from hwgen.sim.runner import run_layers
    dense = plan_layer(TOP_SPEC, linear("fc_dense", K=9, M=5, N=1), PostOps(bias=True, requant=True))
    plans = top_plans() + [dense]
    result = run_layers(TOP_SPEC, plans, simulator=SIM, stall=stall, seed=8, tag="sparse")
    assert len(result.layers) == len(plans)
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        if stall:
            assert layer["measured_cycles"] >= layer["model_cycles"]
        else:
            assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]


def test_energy_counts_equal_the_hardware(probed_top):
    """`hwgen.energy.access_counts` of sparse commands: the words popped, the multiplies performed (a valid entry's
    product added, counted per lane), no activation-buffer access - counted on the top in Amaranth's simulator."""
    from hwgen.energy import access_counts
    from hwgen.hw.top import AcceleratorTop
    from hwgen.sim.job import make_layer_data
    from tests.top_bench import run_top
    plan = top_plans()[1]
    dut = AcceleratorTop(TOP_SPEC)

    def probes():
        sparse = dut.parts["sparse_engine"]
        return {"words": dut.parts["sparse_fifo"].r_en, "act_reads": dut.parts["act_buffer"].read_en,
                **{f"mult{p}": valid for p, valid in enumerate(sparse.multiplies)}}
    data = make_layer_data(plan, 0)
    run = run_top(TOP_SPEC, cfg=data.config_words, sparse=data.sparse_words, params=data.param_words,
                  expect_beats=len(data.expected_beats), dut=dut, probes=probes)
    c, got = access_counts(plan), run.probe_counts
    assert got["words"] == c["weight_words"] == sum(s.sparse_words for s in plan.commands)
    assert sum(v for k, v in got.items() if k.startswith("mult")) == c["macs_performed"] == c["acc_writes"]
    assert got["act_reads"] == c["act_reads"] == 0


def test_port_map_names_the_sparse_stream():
    from hwgen.verilog import port_map
    ports = port_map(TOP_SPEC)
    assert ports["sparse__payload"] == ("input", TOP_SPEC.sparse_word_bits, ports["sparse__payload"][2])
    assert "sparse__payload" not in port_map(AcceleratorSpec(rows=2, cols=2))
