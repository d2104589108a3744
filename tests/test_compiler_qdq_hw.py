"""A QDQ model (onnxruntime's quantize_static, asymmetric activations: every tensor has a zero point) on the
accelerator: imported with its own scales and zero points, compiled into one program, run through the whole top -
the post-op chain adds the output zero points, padding reads the input zero points - bit-exact against hwgen's
integer network and, through it, within onnxruntime's rounding of the model itself; cycles equal to the model."""

import logging

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hwgen.compiler import import_onnx                                         # noqa: E402
from hwgen.compiler.build import int_layers                                    # noqa: E402
from hwgen.compiler.oracle import quantize_static_qdq, run_onnxruntime         # noqa: E402
from hwgen.compiler.program import compile_program                             # noqa: E402
from hwgen.sim.pysim import run_streams                                        # noqa: E402
from hwgen.spec import AcceleratorSpec                                         # noqa: E402
from tests.onnx_graphs import lenet_like                                       # noqa: E402

logging.getLogger().setLevel(logging.ERROR)

SPEC = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, act_buffer_bytes=4096,
                       weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16, name="qdq4x4")


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
def test_a_qdq_model_runs_bit_exact_on_the_top(activation_type):
    rng = np.random.default_rng(0)
    float_model = lenet_like()
    qdq = quantize_static_qdq(float_model, rng.standard_normal((64, 1, 12, 12)).astype(np.float32),
                              activation_type=activation_type)
    network = import_onnx(qdq)
    assert network.in_zero_point != 0 and any(layer.out_zero_point for layer in network.layers)
    program = compile_program(SPEC, int_layers(network), batch=2)
    assert all("on chip" in note for note in program.notes)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    inputs = list(network.quantize_input(x).reshape(2, 1, 12, 12))
    words, expected, goldens = program.streams(inputs)
    run = run_streams(SPEC, cfg=words["cfg"], weights=words["weights"], mv_weights=words["mv_weights"],
                      acts=words["acts"], params=words["params"], expect_beats=len(expected), max_cycles=200_000)
    assert run.out_beats == expected
    assert run.cycles == program.predict().cycles
    # The RTL's logits are the integer network's, which agree with onnxruntime's top-1 on these inputs.
    n = program.layers[-1].plan.out_beats
    rtl = [program.layers[-1].plan.unpack_outputs(expected[i * n:(i + 1) * n]).reshape(-1) for i in range(2)]
    assert all(np.array_equal(r, g[-1].reshape(-1)) for r, g in zip(rtl, goldens))
    ort = run_onnxruntime(qdq, x)
    ort = next(iter(ort.values())) if isinstance(ort, dict) else ort[0]
    ort_top1 = np.argmax(np.asarray(ort).reshape(2, -1), axis=1)
    assert list(ort_top1) == [int(np.argmax(r)) for r in rtl]
