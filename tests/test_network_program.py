"""Whole networks on one accelerator (`hwgen.compiler.program`): layers chained on chip, the array and the
matrix-vector engine in one top, zero points and padding values, batches. Every run: the output beats equal the
NumPy reference network's, and the cycles from the first ``cfg`` handshake to the last ``out`` beat equal the
model's (`Program.predict`), on the Amaranth-level top (a seeded family of random networks) and on the Verilog
with cocotb (Icarus), with and without random stalls on every stream.
"""

import random

import numpy as np
import pytest

from hwgen.compiler.program import IntLayer, compile_program, reference_network, storage_order_weights
from hwgen.errors import HwgenError, MappingError
from hwgen.perf import FeedbackOverflowError
from hwgen.postops import PostOps, QuantParams, quantize_multiplier
from hwgen.problem import ConvProblem
from hwgen.spec import AcceleratorSpec
from hwgen.sim.pysim import run_streams


def conv(name, C, M, H, W, R, stride=1, pad=0):
    return ConvProblem(name, "conv2d", C=C, H=H, W=W, M=M, E=(H + 2 * pad - R) // stride + 1,
                       F=(W + 2 * pad - R) // stride + 1, R=R, S=R, stride_h=stride, stride_w=stride,
                       pad_h=pad, pad_w=pad)


def fc(name, K, M):
    return ConvProblem(name, "linear", C=K, H=1, W=1, M=M, E=1, F=1, R=1, S=1)


def params_for(nrng, M, reduction):
    """Scales that keep int8 outputs mostly in range (some saturate), biases that matter."""
    pairs = [quantize_multiplier(float(nrng.uniform(50, 200)) / (128 * 128 * reduction) * 8) for _ in range(M)]
    return QuantParams(bias=nrng.integers(-1000, 1000, M), multiplier=np.array([a for a, _ in pairs]),
                       shift=np.array([b for _, b in pairs]))


def random_network(seed):
    """1-2 convolutions (stride, padding, pooling, output zero points) then 0-2 fully connected layers (the
    first flattening), on inputs of 1-4 channels."""
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    C, H, W = rng.randint(1, 4), rng.randint(4, 9), rng.randint(4, 9)
    layers = []
    for i in range(rng.randint(0, 2)):
        R = rng.choice([1, 2, 3])
        pad, stride = (rng.choice([0, 1]) if R > 1 else 0), rng.choice([1, 1, 2])
        M = rng.randint(1, 9)
        if H + 2 * pad < R or W + 2 * pad < R:
            break
        problem = conv(f"conv{i}", C, M, H, W, R, stride, pad)
        pool = "max" if rng.random() < 0.4 and problem.E >= 2 and problem.F >= 2 else "none"
        postops = PostOps(bias=True, requant=True, relu=rng.random() < 0.7, pool=pool,
                          zero_point=rng.choice([0, 0, -5, 3]))
        pad_value = layers[-1].postops.zero_point if layers else rng.choice([0, 7])
        layers.append(IntLayer(f"conv{i}", problem, nrng.integers(-128, 128, (M, C, R, R)), postops,
                               params_for(nrng, M, C * R * R), pad_value=pad_value))
        C, (H, W) = M, postops.out_size(problem.E, problem.F)
    K = C * H * W
    count = rng.randint(1 if not layers else 0, 2)
    for i in range(count):
        M = rng.randint(1, 12)
        last = i == count - 1
        postops = PostOps(bias=True, requant=True, relu=not last and rng.random() < 0.7,
                          zero_point=rng.choice([0, 0, 4]))
        pad_value = layers[-1].postops.zero_point if layers else 0
        layers.append(IntLayer(f"fc{i}", fc(f"fc{i}", K, M), nrng.integers(-128, 128, (M, K, 1, 1)), postops,
                               params_for(nrng, M, K), pad_value=pad_value, flatten=bool(layers) and i == 0))
        K = M
    return layers


def random_accelerator(seed):
    rng = random.Random(seed * 7919)
    size = rng.choice([2, 3, 4])
    return AcceleratorSpec(rows=size, cols=size, mv_engine=rng.random() < 0.7, chaining=rng.random() < 0.8,
                           act_buffer_bytes=rng.choice([64, 256, 1024]) * size, weight_buffer_bytes=32 * size,
                           acc_buffer_bytes=rng.choice([32, 128]) * 4 * size,
                           max_out_channels=rng.choice([size, 64]), max_pool_width=16,
                           feedback_depth=rng.choice([16, 256]),
                           # the post-op chain takes a beat in `size` cycles; a small FIFO in front of it makes
                           # the engines hold back beat-finishing slots
                           postop_fifo_depth=rng.choice([None, 3, 8]))


def run_on_top(program, inputs, *, stall=0.0, seed=0):
    words, expected, _ = program.streams(inputs)
    run = run_streams(program.spec, cfg=words["cfg"], weights=words["weights"], mv_weights=words["mv_weights"],
                      acts=words["acts"], params=words["params"], expect_beats=len(expected), stall=stall,
                      seed=seed, max_cycles=200_000, acts_gates=program.acts_gates())
    assert run.out_beats == expected, "the output beats differ from the reference network's"
    return run


@pytest.mark.parametrize("seed", range(16))
def test_random_networks_are_exact_and_meet_the_model(seed):
    spec, layers = random_accelerator(seed), random_network(seed)
    batch = 1 + seed % 2
    try:
        program = compile_program(spec, layers, batch=batch)
    except (HwgenError, FeedbackOverflowError) as error:
        pytest.skip(f"not compilable on this accelerator: {error}")
    nrng = np.random.default_rng(seed)
    inputs = [nrng.integers(-128, 128, layers[0].in_shape) for _ in range(batch)]
    run = run_on_top(program, inputs)
    assert run.cycles == program.predict().cycles


@pytest.mark.parametrize("seed", [3, 5])
def test_random_stalls_keep_a_network_exact(seed):
    spec, layers = random_accelerator(seed), random_network(seed)
    program = compile_program(spec, layers, batch=2)
    nrng = np.random.default_rng(seed)
    inputs = [nrng.integers(-128, 128, layers[0].in_shape) for _ in range(2)]
    run = run_on_top(program, inputs, stall=0.3, seed=seed)
    assert run.cycles >= program.predict().cycles


SPEC = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, act_buffer_bytes=4096,
                       weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16, name="net4x4")


def small_cnn(seed=1, zero_points=(0, 0, 0)):
    """conv 2->5 3x3 pad 1, ReLU, max pool; conv 5->6 3x3, ReLU; flatten; fc 24->7 ReLU; fc 7->3."""
    nrng = np.random.default_rng(seed)
    z1, z2, z3 = zero_points
    c1 = conv("conv1", 2, 5, 8, 8, 3, pad=1)
    c2 = conv("conv2", 5, 6, 4, 4, 3)
    return [
        IntLayer("conv1", c1, nrng.integers(-128, 128, (5, 2, 3, 3)),
                 PostOps(bias=True, requant=True, relu=True, pool="max", zero_point=z1), params_for(nrng, 5, 18)),
        IntLayer("conv2", c2, nrng.integers(-128, 128, (6, 5, 3, 3)),
                 PostOps(bias=True, requant=True, relu=True, zero_point=z2), params_for(nrng, 6, 45), pad_value=z1),
        IntLayer("fc1", fc("fc1", 24, 7), nrng.integers(-128, 128, (7, 24, 1, 1)),
                 PostOps(bias=True, requant=True, relu=True, zero_point=z3), params_for(nrng, 7, 24), pad_value=z2,
                 flatten=True),
        IntLayer("fc2", fc("fc2", 7, 3), nrng.integers(-128, 128, (3, 7, 1, 1)), PostOps(bias=True, requant=True),
                 params_for(nrng, 3, 7), pad_value=z3),
    ]


def test_a_cnn_compiles_to_one_program_with_every_boundary_on_chip():
    program = compile_program(SPEC, small_cnn())
    assert [(pl.engine, pl.source, pl.dest) for pl in program.layers] == [
        ("weight_stationary", "stream", "feedback"), ("weight_stationary", "feedback", "feedback"),
        ("matrix_vector", "feedback", "feedback"), ("matrix_vector", "feedback", "out")]
    assert all("on chip" in note for note in program.notes)
    nrng = np.random.default_rng(0)
    x = nrng.integers(-128, 128, (2, 8, 8))
    words, expected, goldens = program.streams([x])
    # Only the network's input and its final output cross the chip boundary.
    assert len(words["acts"]) == program.layers[0].plan.commands[0].act_words
    assert len(expected) == program.layers[-1].plan.out_beats
    run = run_on_top(program, [x])
    assert run.cycles == program.predict().cycles


def test_zero_points_and_padding_values_are_exact():
    program = compile_program(SPEC, small_cnn(seed=2, zero_points=(-7, 5, -128)))
    x = np.random.default_rng(2).integers(-128, 128, (2, 8, 8))
    run = run_on_top(program, [x])
    assert run.cycles == program.predict().cycles


def test_without_chaining_every_layer_goes_through_out():
    program = compile_program(SPEC, small_cnn(), chain=False)
    assert all(pl.dest == "out" for pl in program.layers)
    assert [pl.source for pl in program.layers] == ["stream", "host", "host", "host"]
    x = np.random.default_rng(3).integers(-128, 128, (2, 8, 8))
    run = run_on_top(program, [x])
    assert run.cycles == program.predict().cycles
    assert program.predict().cycles > compile_program(SPEC, small_cnn()).predict().cycles


def test_a_batch_runs_as_one_program_and_overlaps_inputs():
    one = compile_program(SPEC, small_cnn(), batch=1)
    three = compile_program(SPEC, small_cnn(), batch=3)
    assert len(three.commands()) == 3 * len(one.commands())
    assert three.predict().cycles < 3 * one.predict().cycles      # the next input loads while this one finishes
    nrng = np.random.default_rng(4)
    inputs = [nrng.integers(-128, 128, (2, 8, 8)) for _ in range(3)]
    run = run_on_top(three, inputs)
    assert run.cycles == three.predict().cycles


def test_flattening_weights_follow_the_storage_order():
    """Word mf*P + p, lane i of a [C, H, W] output is channel mf*cols + i at pixel p: the permuted weights give
    the same dot products as the original ones on the flattened tensor."""
    rng = np.random.default_rng(5)
    x = rng.integers(-9, 9, (6, 2, 3))
    w = rng.integers(-9, 9, (4, 36, 1, 1))
    permuted = storage_order_weights(w, channels=6, pixels=6, cols=4)
    assert permuted.shape == (4, 2 * 6 * 4, 1, 1)
    storage = np.zeros((2, 4, 6), dtype=np.int64)
    storage.reshape(8, 6)[:6] = x.reshape(6, 6)
    vector = storage.transpose(0, 2, 1).reshape(-1)
    assert np.array_equal(permuted[:, :, 0, 0] @ vector, w[:, :, 0, 0] @ x.reshape(-1))


def test_the_engine_is_chosen_by_the_model():
    program = compile_program(SPEC, small_cnn())
    fc1 = program.layers[2]
    assert fc1.engine == "matrix_vector"
    no_mv = compile_program(AcceleratorSpec(rows=4, cols=4, chaining=True, act_buffer_bytes=4096,
                                            weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16),
                            small_cnn())
    assert {pl.engine for pl in no_mv.layers} == {"weight_stationary"}
    assert program.predict().cycles < no_mv.predict().cycles


def test_bad_networks_are_rejected_naming_the_layer():
    layers = small_cnn()
    with pytest.raises(MappingError, match=r"conv2: takes an input of shape \(5, 5, 5\) but conv1 gives \(5, 4, 4\)"):
        compile_program(SPEC, [layers[0], IntLayer("conv2", conv("conv2", 5, 6, 5, 5, 3),
                                                   layers[1].weight, layers[1].postops, layers[1].params)])
    with pytest.raises(MappingError, match="weight has shape"):
        IntLayer("bad", conv("bad", 2, 3, 4, 4, 3), np.zeros((3, 2, 2, 2)))
    with pytest.raises(MappingError, match="no layers"):
        compile_program(SPEC, [])


def test_a_feedback_that_would_overflow_is_refused_by_the_model():
    """A first layer whose input loads long after its output starts (host-unrolled windows, a tiny feedback
    FIFO): the model refuses what it could not predict, naming the size that would do."""
    spec = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, act_buffer_bytes=2048,
                           weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16, feedback_depth=4)
    nrng = np.random.default_rng(6)
    layers = [IntLayer("wide", conv("wide", 3, 8, 8, 8, 3, pad=1), nrng.integers(-128, 128, (8, 3, 3, 3)),
                       PostOps(bias=True, requant=True, relu=True), params_for(nrng, 8, 27)),
              IntLayer("fc", fc("fc", 512, 3), nrng.integers(-128, 128, (3, 512, 1, 1)),
                       PostOps(bias=True, requant=True), params_for(nrng, 3, 512), flatten=True)]
    try:
        program = compile_program(spec, layers)
    except FeedbackOverflowError as error:
        assert "feedback_depth >=" in str(error)
    else:
        assert all(pl.dest == "out" for pl in program.layers[:-1]) or program.predict().cycles > 0


def test_reference_network_follows_the_layers():
    layers = small_cnn()
    x = np.random.default_rng(7).integers(-128, 128, (2, 8, 8))
    outs = reference_network(layers, x, SPEC.acc_type)
    assert [o.shape for o in outs] == [(5, 4, 4), (6, 2, 2), (7, 1, 1), (3, 1, 1)]
    assert np.array_equal(outs[1], layers[1].forward(outs[0], SPEC.acc_type))
    assert np.array_equal(outs[2], layers[2].forward(outs[1].reshape(-1, 1, 1), SPEC.acc_type))
