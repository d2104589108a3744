"""Pruned fully connected layers of a compiled network on the sparse engine (`hwgen.compiler.program`,
``AcceleratorSpec(mv_engine=True, sparse_mv=True)``): the map step's choice, the host-packed words of each input's
nonzero activations (`Program.bind`), the layers around them on the array and the matrix-vector engine, chained on
chip where they can be; values exact against the reference network and cycles equal to the model (whose sparse
commands are made for the data), in Amaranth's simulator and on the Verilog (cocotb, Icarus)."""

import dataclasses
import os

import numpy as np
import pytest

from hwgen.compiler.program import IntLayer, compile_program
from hwgen.errors import MappingError
from hwgen.postops import PostOps
from hwgen.sim.pysim import run_streams
from hwgen.sparse import magnitude_prune
from hwgen.spec import AcceleratorSpec
from tests.test_network_program import SPEC, fc, params_for, small_cnn

SIM = os.environ.get("SIM", "icarus")
SPARSE_SPEC = dataclasses.replace(SPEC, sparse_mv=True, sparse_depth=2, name="net4x4_sparse")


def pruned(layers, targets):
    return [dataclasses.replace(layer, weight=magnitude_prune(layer.weight, targets[layer.name]))
            if layer.name in targets else layer for layer in layers]


def sparse_cnn(seed=3):
    """`small_cnn` (conv, conv, flatten fc 24->7, fc 7->3) with a third fc 3->9, the fc layers pruned."""
    layers = small_cnn(seed=seed, zero_points=(-3, 0, 6))
    nrng = np.random.default_rng(seed + 10)
    layers[-1] = dataclasses.replace(layers[-1], postops=PostOps(bias=True, requant=True, relu=True, zero_point=-2))
    layers.append(IntLayer("fc3", fc("fc3", 3, 9), nrng.integers(-128, 128, (9, 3, 1, 1)),
                           PostOps(bias=True, requant=True), params_for(nrng, 9, 3), pad_value=-2))
    return pruned(layers, {"fc1": 0.8, "fc2": 0.6, "fc3": 0.7})


def inputs_for(batch, seed=0):
    return [np.random.default_rng(seed + i).integers(-128, 128, (2, 8, 8)) for i in range(batch)]


def run_on_top(program, inputs, *, stall=0.0, seed=1):
    bound = program.bind(inputs)
    words, expected, goldens = bound.streams(inputs)
    run = run_streams(program.spec, **{name: words[name] for name in ("cfg", "weights", "mv_weights", "acts",
                                                                      "params", "sparse")},
                      expect_beats=len(expected), stall=stall, seed=seed, max_cycles=200_000,
                      acts_gates=bound.acts_gates(), sparse_gates=bound.sparse_gates())
    assert run.out_beats == expected, "the output beats differ from the reference network's"
    return run, bound


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("sparse", [("fc1", "fc2", "fc3"), ("fc1",), ("fc2",), ("fc1", "fc3")],
                         ids=["all_fc", "fc1", "fc2", "fc1_fc3"])
def test_sparse_layers_in_a_network_are_exact_and_meet_the_model(sparse, batch):
    program = compile_program(SPARSE_SPEC, sparse_cnn(), batch=batch, sparse=sparse)
    assert [pl.name for pl in program.layers if pl.sparse] == list(sparse)
    for index, pl in enumerate(program.layers):
        if pl.sparse:     # fed by the host (its words are made from the activations); its output may chain
            assert pl.engine_name() == "sparse" and pl.source == "host"
            assert "sparse engine" in program.notes[index - 1]
    run, bound = run_on_top(program, inputs_for(batch))
    assert run.cycles == bound.predict().cycles


@pytest.mark.parametrize("sparse", [("fc1", "fc2"), ("fc2",)], ids=["both", "fc2"])
def test_sparse_layers_of_several_commands(sparse):
    """Layers wider than the engine's ``rows * cols * sparse_depth`` outputs (32 here): fc1 (70 outputs) in 3
    commands, fc2 (40) in 2, each streaming its input's columns again; the host offers a layer's words from its
    gate on, and the later commands' words wait in the sparse FIFO. Exact, cycles = model, batch 2."""
    layers = small_cnn(seed=3, zero_points=(-3, 0, 6))[:2]
    nrng = np.random.default_rng(8)
    layers += [IntLayer("fc1", fc("fc1", 24, 70), nrng.integers(-128, 128, (70, 24, 1, 1)),
                        PostOps(bias=True, requant=True, relu=True), params_for(nrng, 70, 24), flatten=True),
               IntLayer("fc2", fc("fc2", 70, 40), nrng.integers(-128, 128, (40, 70, 1, 1)),
                        PostOps(bias=True, requant=True), params_for(nrng, 40, 70))]
    program = compile_program(SPARSE_SPEC, pruned(layers, {"fc1": 0.5, "fc2": 0.8}), batch=2, sparse=sparse)
    assert [len(pl.plan.commands) for pl in program.layers if pl.sparse] == [3, 2][-len(sparse):]
    run, bound = run_on_top(program, inputs_for(2))
    assert run.cycles == bound.predict().cycles


def test_a_sparse_layer_chains_its_output_on_chip():
    program = compile_program(SPARSE_SPEC, sparse_cnn(), sparse=["fc1"])
    assert [(pl.engine_name(), pl.source, pl.dest) for pl in program.layers] == [
        ("weight_stationary", "stream", "feedback"), ("weight_stationary", "feedback", "out"),
        ("sparse", "host", "feedback"), ("matrix_vector", "feedback", "feedback"),
        ("matrix_vector", "feedback", "out")]


def test_random_stalls_keep_a_sparse_network_exact():
    program = compile_program(SPARSE_SPEC, sparse_cnn(seed=4), batch=2, sparse=["fc1", "fc3"])
    run, bound = run_on_top(program, inputs_for(2, seed=7), stall=0.3, seed=4)
    assert run.cycles >= bound.predict().cycles


def test_the_sparse_commands_follow_each_input():
    """The compiled program counts every activation as nonzero; bound to an input, the commands stream only the
    columns of its nonzero activations, so the model (and the RTL) take fewer cycles."""
    program = compile_program(SPARSE_SPEC, sparse_cnn(), batch=2, sparse=["fc1", "fc2", "fc3"])
    inputs = inputs_for(2)
    bound = program.bind(inputs)
    fc1 = [plans[2] for plans in bound._image_plans()]
    assert [sum(c.sparse_words for c in plan.commands) for plan in fc1] != [
        sum(c.sparse_words for c in program.layers[2].plan.commands)] * 2
    assert bound.predict().cycles < program.predict().cycles
    x = program.reference(inputs[0])[1]       # conv2's output, fc1's input (flattened in storage order)
    assert np.array_equal(fc1[0].x, program.layers[2].hardware_input(x).ravel())
    # streams() binds a program by itself; the same inputs give the same words
    assert program.streams(inputs)[0]["sparse"] == bound.streams(inputs)[0]["sparse"]


def test_the_map_step_picks_the_sparse_engine_by_the_model():
    """A large pruned FC layer goes to the sparse engine (fewer cycles even with every activation nonzero); the
    same layer dense, or ``sparse="never"``, stays on the matrix-vector engine."""
    spec = dataclasses.replace(SPARSE_SPEC, sparse_depth=4, name="net4x4_sparse4")
    nrng = np.random.default_rng(9)
    weight = nrng.integers(-128, 128, (64, 256, 1, 1))
    layer = IntLayer("big", fc("big", 256, 64), magnitude_prune(weight, 0.9), PostOps(bias=True, requant=True),
                     params_for(nrng, 64, 256))
    program = compile_program(spec, [layer])
    assert program.layers[0].sparse
    dense = compile_program(spec, [dataclasses.replace(layer, weight=weight)])
    assert dense.layers[0].engine_name() == "matrix_vector"
    assert compile_program(spec, [layer], sparse="never").layers[0].engine_name() == "matrix_vector"
    x = [nrng.integers(-128, 128, (256, 1, 1))]
    assert program.bind(x).predict().cycles < compile_program(spec, [layer], sparse="never").predict().cycles
    run, bound = run_on_top(program, x)
    assert run.cycles == bound.predict().cycles


def test_sparse_choices_are_checked():
    with pytest.raises(MappingError, match=r"names layers \['fc9'\]"):
        compile_program(SPARSE_SPEC, sparse_cnn(), sparse=["fc9"])
    with pytest.raises(MappingError, match="conv1: only a batch-1 fully connected layer"):
        compile_program(SPARSE_SPEC, sparse_cnn(), sparse=["conv1"])
    with pytest.raises(MappingError, match="has none; build it with .*sparse_mv=True"):
        compile_program(SPEC, sparse_cnn(), sparse=["fc1"])
    with pytest.raises(MappingError, match="'auto', 'never' or a list"):
        compile_program(SPARSE_SPEC, sparse_cnn(), sparse="sometimes")
    with pytest.raises(MappingError, match="without mv_engine"):
        AcceleratorSpec(rows=4, cols=4, sparse_mv=True)
    program = compile_program(SPARSE_SPEC, sparse_cnn(), batch=2, sparse=["fc1"])
    with pytest.raises(ValueError, match="batch of 2, got 1"):
        program.bind(inputs_for(1))


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_sparse_network_on_the_rtl(stall):
    from hwgen.sim.runner import run_program
    program = compile_program(SPARSE_SPEC, sparse_cnn(), batch=2, sparse=["fc1", "fc3"])
    inputs = inputs_for(2, seed=3)
    from tests.test_cocotb_network import check_program_run
    result = run_program(program, inputs, simulator=SIM, stall=stall, seed=5, tag="sparse_net")
    check_program_run(result, program, inputs, stall=stall)
    if not stall:
        assert result.model_cycles == program.bind(inputs).predict().cycles
