"""Per-layer weight precision in the compiler (issue 15): int4 weights on the fully connected layers, int8 on the
convolutions, in one accelerator. The quantizer rounds those layers to int4 (``[-7, 7]``, per channel), the map
step puts them on the matrix-vector engine with packed weights (two per byte: the weight stream halves), and
the whole program runs bit-exact through the top with cycles equal to the model."""

import logging

import numpy as np
import pytest

pytest.importorskip("onnx")

from hwgen.compiler import import_onnx                                         # noqa: E402
from hwgen.compiler.build import BuildConfig, build, int_layers, size_spec      # noqa: E402
from hwgen.compiler.cli import _weight_bits                                    # noqa: E402
from hwgen.compiler.network import QuantizedNetwork                            # noqa: E402
from hwgen.compiler.program import compile_program                             # noqa: E402
from hwgen.compiler.quantize import quantize                                   # noqa: E402
from hwgen.errors import MappingError                                          # noqa: E402
from hwgen.sim.pysim import run_streams                                        # noqa: E402
from hwgen.spec import AcceleratorSpec                                         # noqa: E402
from tests.onnx_graphs import lenet_like                                       # noqa: E402

logging.getLogger().setLevel(logging.ERROR)

SPEC = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, packed_int4=True, act_buffer_bytes=4096,
                       weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16, name="int4fc4x4")


@pytest.fixture(scope="module")
def networks():
    rng = np.random.default_rng(0)
    float_network = import_onnx(lenet_like())
    calibration = rng.standard_normal((64, 1, 12, 12)).astype(np.float32)
    int8 = quantize(float_network, calibration)
    int4 = quantize(float_network, calibration, weight_bits={"linear": 4})
    return float_network, int8, int4


def test_the_quantizer_rounds_the_fc_layers_to_int4(networks, tmp_path):
    _, int8, int4 = networks
    for a, b in zip(int8.layers, int4.layers):
        if a.kind == "linear":
            assert b.weight_bits == 4 and np.abs(b.weight).max() == 7
            assert np.allclose(b.weight_scale, a.weight_scale * 127 / 7)
        else:
            assert b.weight_bits == 8 and np.array_equal(a.weight, b.weight)
    assert int4.metadata["weight_bits"] == {layer.name: layer.weight_bits for layer in int4.layers}
    loaded = QuantizedNetwork.load(int4.save(tmp_path / "net"))
    assert [layer.weight_bits for layer in loaded.layers] == [layer.weight_bits for layer in int4.layers]
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(loaded.layers, int4.layers))


def test_an_int4_fc_network_runs_bit_exact_with_cycles_equal_to_the_model(networks):
    _, int8, int4 = networks
    program = compile_program(SPEC, int_layers(int4), batch=2)
    fcs = [pl for pl in program.layers if pl.layer.weight_bits == 4]
    assert fcs and all(pl.engine == "matrix_vector" and pl.plan.tiles[0].schedule.packed_int4 for pl in fcs)
    # The packed weight stream is half the int8 one's (rounded up per command).
    reference = compile_program(SPEC, int_layers(int8), batch=2)
    for pl in fcs:
        (other,) = [q for q in reference.layers if q.name == pl.name]
        assert other.engine == "matrix_vector"
        assert [s.weight_words for s in pl.plan.commands] == [-(-s.weight_words // 2) for s in other.plan.commands]
        assert 2 * pl.plan.bytes_moved["weights"] == other.plan.bytes_moved["weights"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    inputs = list(int4.quantize_input(x).reshape(2, 1, 12, 12))
    words, expected, goldens = program.streams(inputs)
    run = run_streams(SPEC, cfg=words["cfg"], weights=words["weights"], mv_weights=words["mv_weights"],
                      acts=words["acts"], params=words["params"], expect_beats=len(expected), max_cycles=200_000)
    assert run.out_beats == expected
    assert run.cycles == program.predict().cycles
    # The golden is the int4 network's own forward pass.
    for image, golden in zip(inputs, goldens):
        y = image
        for layer in int4.layers:
            y = layer.forward(y)
        assert np.array_equal(golden[-1].reshape(-1), y.reshape(-1))


def test_int4_weights_are_refused_where_they_cannot_run(networks):
    float_network, _, int4 = networks
    conv = next(layer.name for layer in float_network.layers if layer.kind != "linear")
    with pytest.raises(MappingError, match=rf"{conv}: int4 weights run packed on the matrix-vector engine.*8 bits"):
        quantize(float_network, np.zeros((4, 1, 12, 12), np.float32), weight_bits=4)
    with pytest.raises(MappingError, match=r"names layers \['nope'\].*its layers are"):
        quantize(float_network, np.zeros((4, 1, 12, 12), np.float32), weight_bits={"nope": 4})
    plain = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, act_buffer_bytes=4096,
                            weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16, name="plain4x4")
    with pytest.raises(MappingError, match=r"packed_int4=True.*has packed_int4=False"):
        compile_program(plain, int_layers(int4))
    # size_spec gives an int4 network the packed engine; without a matrix-vector engine the map step says why.
    assert size_spec(int_layers(int4), rows=4, cols=4, name="sized").packed_int4
    unsized = size_spec(int_layers(int4), rows=4, cols=4, name="nomv", mv_engine=False)
    with pytest.raises(MappingError, match="has no such engine"):
        compile_program(unsized, int_layers(int4))


def test_a_quantized_model_keeps_its_own_weights(networks):
    _, int8, _ = networks
    with pytest.raises(MappingError, match="comes quantized"):
        build(BuildConfig(model=int8, weight_bits={"linear": 4}, stop_after="quantize"))


@pytest.mark.parametrize("text, expected", [(None, 8), ("8", 8), ("linear=4", {"linear": 4}),
                                            ("fc1=4, fc2=8", {"fc1": 4, "fc2": 8})])
def test_the_weight_bits_option_parses(text, expected):
    assert _weight_bits(text) == expected


@pytest.mark.parametrize("text, match", [("5", "must be 8 or 4"), ("linear=2", "must be 8 or 4"),
                                         ("=4", "NAME=BITS"), ("fc1=4,x", "NAME=BITS")])
def test_a_bad_weight_bits_option_is_named(text, match):
    with pytest.raises(MappingError, match=match):
        _weight_bits(text)
