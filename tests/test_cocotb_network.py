"""cocotb regression for whole networks on the Verilog: one program per network (`hwgen.compiler.program`) on
an accelerator holding the weight-stationary array and the matrix-vector engine, layers chained on chip or
through the host; the output against the NumPy reference network beat by beat, cycles (whole run and every
layer's last beat) equal to the model without stalls, random valid/ready stalls on every stream."""

import os

import numpy as np
import pytest

from hwgen.compiler.program import compile_program
from hwgen.sim.runner import run_program
from tests.test_network_program import SPEC, random_accelerator, random_network, small_cnn

pytestmark = pytest.mark.cocotb

SIM = os.environ.get("SIM", "icarus")


def check_program_run(result, program, inputs, *, stall=0.0):
    """A `run_program` result: exact, the final outputs the reference network's; without stalls the cycles of the
    whole run and of every layer's last beat equal to the model, with stalls no fewer."""
    assert result.exact, result.report
    goldens = [program.reference(x)[-1] for x in inputs]
    assert all(np.array_equal(got, want) for got, want in zip(result.outputs, goldens))
    if stall:
        assert result.measured_cycles >= result.model_cycles
    else:
        assert result.measured_cycles == result.model_cycles
        assert result.layer_ends == result.layer_model_ends


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
@pytest.mark.parametrize("chain", [True, False], ids=["on_chip", "through_host"])
def test_cnn_program_on_the_rtl(chain, stall):
    program = compile_program(SPEC, small_cnn(seed=3, zero_points=(-3, 0, 6)), batch=2, chain=chain)
    rng = np.random.default_rng(11)
    inputs = [rng.integers(-128, 128, (2, 8, 8)) for _ in range(2)]
    result = run_program(program, inputs, simulator=SIM, stall=stall, seed=5, tag="cnn")
    check_program_run(result, program, inputs, stall=stall)


@pytest.mark.parametrize("seed", [1, 4, 8])
def test_random_networks_on_the_rtl(seed):
    spec, layers = random_accelerator(seed), random_network(seed)
    program = compile_program(spec, layers, batch=2)
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, layers[0].in_shape) for _ in range(2)]
    result = run_program(program, inputs, simulator=SIM, seed=seed, tag=f"rand{seed}")
    assert result.exact, result.report
    assert result.measured_cycles == result.model_cycles


@pytest.mark.parametrize("fc_bits, first", [(4, 4), (2, 2), (2, 4)], ids=["int4", "int2", "int4_then_int2"])
def test_packed_fc_program_on_the_rtl(fc_bits, first):
    """int4 or int2 weights on the fully connected layers (packed two or four to a byte on the matrix-vector
    engine; ``first``: the first FC layer's width), int8 on the convolutions, one program on the Verilog: every
    output exact, cycles equal to the model per layer."""
    import dataclasses
    spec = dataclasses.replace(SPEC, packed_weight_bits=(4, 2), name="net4x4_packed")
    layers, fcs = [], 0
    for layer in small_cnn(seed=3, zero_points=(-3, 0, 6)):
        if layer.kind == "linear":
            bits = first if fcs == 0 else fc_bits
            fcs += 1
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            layer = dataclasses.replace(layer, weight=np.clip(layer.weight // (1 << (8 - bits)), lo, hi),
                                        weight_bits=bits)
        layers.append(layer)
    program = compile_program(spec, layers, batch=2)
    packed = [pl for pl in program.layers if pl.layer.weight_bits != 8]
    assert [pl.engine for pl in packed] == ["matrix_vector"] * 2
    assert [pl.plan.tiles[0].schedule.packed_bits for pl in packed] == [first, fc_bits]
    rng = np.random.default_rng(12)
    inputs = [rng.integers(-128, 128, (2, 8, 8)) for _ in range(2)]
    result = run_program(program, inputs, simulator=SIM, seed=5, tag=f"fc{first}{fc_bits}")
    check_program_run(result, program, inputs)
