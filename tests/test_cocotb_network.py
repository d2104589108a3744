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


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
@pytest.mark.parametrize("chain", [True, False], ids=["on_chip", "through_host"])
def test_cnn_program_on_the_rtl(chain, stall):
    program = compile_program(SPEC, small_cnn(seed=3, zero_points=(-3, 0, 6)), batch=2, chain=chain)
    rng = np.random.default_rng(11)
    inputs = [rng.integers(-128, 128, (2, 8, 8)) for _ in range(2)]
    result = run_program(program, inputs, simulator=SIM, stall=stall, seed=5, tag="cnn")
    assert result.exact, result.report
    goldens = [program.reference(x)[-1] for x in inputs]
    assert all(np.array_equal(got, want) for got, want in zip(result.outputs, goldens))
    if stall:
        assert result.measured_cycles >= result.model_cycles
    else:
        assert result.measured_cycles == result.model_cycles
        assert result.layer_ends == result.layer_model_ends


@pytest.mark.parametrize("seed", [1, 4, 8])
def test_random_networks_on_the_rtl(seed):
    spec, layers = random_accelerator(seed), random_network(seed)
    program = compile_program(spec, layers, batch=2)
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, layers[0].in_shape) for _ in range(2)]
    result = run_program(program, inputs, simulator=SIM, seed=seed, tag=f"rand{seed}")
    assert result.exact, result.report
    assert result.measured_cycles == result.model_cycles


def test_int4_fc_program_on_the_rtl():
    """int4 weights on the fully connected layers (packed two to a byte on the matrix-vector engine), int8 on
    the convolutions, one program on the Verilog: every output exact, cycles equal to the model per layer."""
    import dataclasses
    spec = dataclasses.replace(SPEC, packed_int4=True, name="net4x4_int4")
    layers = [dataclasses.replace(layer, weight=np.clip(layer.weight // 16, -8, 7), weight_bits=4)
              if layer.kind == "linear" else layer for layer in small_cnn(seed=3, zero_points=(-3, 0, 6))]
    program = compile_program(spec, layers, batch=2)
    assert [pl.engine for pl in program.layers if pl.layer.weight_bits == 4] == ["matrix_vector"] * 2
    rng = np.random.default_rng(12)
    inputs = [rng.integers(-128, 128, (2, 8, 8)) for _ in range(2)]
    result = run_program(program, inputs, simulator=SIM, seed=5, tag="int4fc")
    assert result.exact, result.report
    goldens = [program.reference(x)[-1] for x in inputs]
    assert all(np.array_equal(got, want) for got, want in zip(result.outputs, goldens))
    assert result.measured_cycles == result.model_cycles
    assert result.layer_ends == result.layer_model_ends
