"""Per-layer weight precision in the compiler (issue 15): int4 or int2 weights on the fully connected layers, int8
on the convolutions, in one accelerator. The quantizer rounds those layers to int4 (``[-7, 7]``) or int2
(``[-1, 1]``, least-squares scale), per channel; the map step puts them on the matrix-vector engine with packed
weights (two or four per byte: the weight stream halves or quarters), and the whole program runs bit-exact
through the top with cycles equal to the model."""

import logging

import numpy as np
import pytest

pytest.importorskip("onnx")

from hwgen.compiler import import_onnx                                         # noqa: E402
from hwgen.compiler.build import BuildConfig, build, int_layers, size_spec      # noqa: E402
from hwgen.compiler.cli import _weight_bits                                    # noqa: E402
from hwgen.compiler.network import QuantizedNetwork                            # noqa: E402
from hwgen.compiler.program import IntLayer, compile_program                   # noqa: E402
from hwgen.compiler.quantize import quantize, quantize_weights                 # noqa: E402
from hwgen.errors import MappingError                                          # noqa: E402
from hwgen.sim.pysim import run_streams                                        # noqa: E402
from hwgen.spec import AcceleratorSpec                                         # noqa: E402
from tests.onnx_graphs import lenet_like                                       # noqa: E402

logging.getLogger().setLevel(logging.ERROR)

SPEC = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, packed_weight_bits=(4, 2),
                       act_buffer_bytes=4096, weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16,
                       name="packedfc4x4")
BITS = (4, 2)


@pytest.fixture(scope="module")
def networks():
    rng = np.random.default_rng(0)
    float_network = import_onnx(lenet_like())
    calibration = rng.standard_normal((64, 1, 12, 12)).astype(np.float32)
    int8 = quantize(float_network, calibration)
    return float_network, int8, {bits: quantize(float_network, calibration, weight_bits={"linear": bits})
                                 for bits in BITS}


@pytest.mark.parametrize("bits", BITS)
def test_the_quantizer_rounds_the_fc_layers(networks, tmp_path, bits):
    float_network, int8, packed = networks[0], networks[1], networks[2][bits]
    for a, b, f in zip(int8.layers, packed.layers, float_network.layers):
        if a.kind == "linear":
            q = 2 ** (bits - 1) - 1
            assert b.weight_bits == bits and np.abs(b.weight).max() == q
            if bits == 4:
                assert np.allclose(b.weight_scale, a.weight_scale * 127 / q)
            else:
                # The least-squares scale: one of peak * k / 64, no worse than peak / 1 (max-abs) would be.
                peak = a.weight_scale * 127
                k = b.weight_scale / peak * 64
                assert np.allclose(k, np.rint(k)) and np.all((k >= 1) & (k <= 64))
                w = np.asarray(f.weight, dtype=np.float64).reshape(len(peak), -1)
                lsq = ((w - b.weight_scale[:, None] * b.weight.reshape(len(peak), -1)) ** 2).sum(axis=1)
                maxabs = ((w - peak[:, None] * np.clip(np.rint(w / peak[:, None]), -1, 1)) ** 2).sum(axis=1)
                assert np.all(lsq <= maxabs + 1e-12) and lsq.sum() < maxabs.sum()
        else:
            assert b.weight_bits == 8 and np.array_equal(a.weight, b.weight)
    assert packed.metadata["weight_bits"] == {layer.name: layer.weight_bits for layer in packed.layers}
    loaded = QuantizedNetwork.load(packed.save(tmp_path / "net"))
    assert [layer.weight_bits for layer in loaded.layers] == [layer.weight_bits for layer in packed.layers]
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(loaded.layers, packed.layers))


def test_int2_weights_of_a_known_channel():
    """Ternary by least squares: a channel of +-1 and small weights keeps the +-1 at scale 1 and zeroes the
    rest; max-abs and least squares agree there; an all-zero channel gets scale 1 and zeros."""
    w = np.array([[1.0, -1.0, 0.1, -0.2, 0.0], [0.0] * 5, [0.9, 0.8, 1.0, -0.85, 0.95]])
    q, scale = quantize_weights(w, 2)
    assert q.tolist() == [[1, -1, 0, 0, 0], [0] * 5, [1, 1, 1, -1, 1]]
    assert scale[0] == 1.0 and scale[1] == 1.0 and 0.85 < scale[2] < 1.0
    with pytest.raises(ValueError, match="8, 4 or 2"):
        quantize_weights(w, 3)


@pytest.mark.parametrize("bits", BITS)
def test_a_packed_fc_network_runs_bit_exact_with_cycles_equal_to_the_model(networks, bits):
    _, int8, packed = networks[0], networks[1], networks[2][bits]
    program = compile_program(SPEC, int_layers(packed), batch=2)
    fcs = [pl for pl in program.layers if pl.layer.weight_bits == bits]
    assert fcs and all(pl.engine == "matrix_vector" and pl.plan.tiles[0].schedule.packed_bits == bits
                       for pl in fcs)
    # The packed weight stream is a half (a quarter) of the int8 one's, rounded up per command.
    k = 8 // bits
    reference = compile_program(SPEC, int_layers(int8), batch=2)
    for pl in fcs:
        (other,) = [q for q in reference.layers if q.name == pl.name]
        assert other.engine == "matrix_vector"
        assert [s.weight_words for s in pl.plan.commands] == [-(-s.weight_words // k) for s in other.plan.commands]
        assert k * pl.plan.bytes_moved["weights"] >= other.plan.bytes_moved["weights"]
        assert k * (pl.plan.bytes_moved["weights"] - SPEC.mv_weight_word_bits // 8) < other.plan.bytes_moved["weights"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    inputs = list(packed.quantize_input(x).reshape(2, 1, 12, 12))
    words, expected, goldens = program.streams(inputs)
    run = run_streams(SPEC, cfg=words["cfg"], weights=words["weights"], mv_weights=words["mv_weights"],
                      acts=words["acts"], params=words["params"], expect_beats=len(expected), max_cycles=200_000)
    assert run.out_beats == expected
    assert run.cycles == program.predict().cycles
    # The golden is the packed network's own forward pass.
    for image, golden in zip(inputs, goldens):
        y = image
        for layer in packed.layers:
            y = layer.forward(y)
        assert np.array_equal(golden[-1].reshape(-1), y.reshape(-1))


@pytest.mark.parametrize("bits", BITS)
def test_packed_weights_are_refused_where_they_cannot_run(networks, bits):
    float_network, packed = networks[0], networks[2][bits]
    conv = next(layer.name for layer in float_network.layers if layer.kind != "linear")
    with pytest.raises(MappingError, match=rf"{conv}: int{bits} weights run packed on the matrix-vector engine.*8 "
                                           rf"bits"):
        quantize(float_network, np.zeros((4, 1, 12, 12), np.float32), weight_bits=bits)
    with pytest.raises(MappingError, match=r"names layers \['nope'\].*its layers are"):
        quantize(float_network, np.zeros((4, 1, 12, 12), np.float32), weight_bits={"nope": bits})
    with pytest.raises(MappingError, match="must be 8, 4 or 2, not 3"):
        quantize(float_network, np.zeros((4, 1, 12, 12), np.float32), weight_bits={"linear": 3})
    plain = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, act_buffer_bytes=4096,
                            weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16, name="plain4x4")
    with pytest.raises(MappingError, match=rf"packed_weight_bits=\({bits},\).*has packed_weight_bits=\(\)"):
        compile_program(plain, int_layers(packed))
    other = AcceleratorSpec(rows=4, cols=4, mv_engine=True, chaining=True, act_buffer_bytes=4096,
                            weight_buffer_bytes=512, acc_buffer_bytes=4096, max_pool_width=16,
                            packed_weight_bits=(6 - bits,), name="other4x4")
    with pytest.raises(MappingError, match=rf"int{bits} weights run packed.*has packed_weight_bits=\({6 - bits},\)"):
        compile_program(other, int_layers(packed))
    # size_spec gives the network the packed engine it needs; without a matrix-vector engine the map step says why.
    assert size_spec(int_layers(packed), rows=4, cols=4, name="sized").packed_weight_bits == (bits,)
    unsized = size_spec(int_layers(packed), rows=4, cols=4, name="nomv", mv_engine=False)
    with pytest.raises(MappingError, match="has no such engine"):
        compile_program(unsized, int_layers(packed))
    # A layer whose integers do not fit its width is named before any plan.
    fc = next(layer for layer in int_layers(packed) if layer.weight_bits == bits)
    wide = np.full(fc.weight.shape, 2 ** (bits - 1))
    with pytest.raises(MappingError, match=rf"{fc.name}: int{bits} weights must lie in"):
        IntLayer(name=fc.name, problem=fc.problem, weight=wide, postops=fc.postops, params=fc.params,
                 weight_bits=bits)


def test_a_quantized_model_keeps_its_own_weights(networks):
    int8 = networks[1]
    with pytest.raises(MappingError, match="comes quantized"):
        build(BuildConfig(model=int8, weight_bits={"linear": 2}, stop_after="quantize"))


@pytest.mark.parametrize("text, expected", [(None, 8), ("8", 8), ("linear=4", {"linear": 4}),
                                            ("linear=2", {"linear": 2}), ("fc1=4, fc2=2", {"fc1": 4, "fc2": 2})])
def test_the_weight_bits_option_parses(text, expected):
    assert _weight_bits(text) == expected


@pytest.mark.parametrize("text, match", [("5", "must be 8, 4 or 2"), ("linear=3", "must be 8, 4 or 2"),
                                         ("linear=1", "must be 8, 4 or 2"), ("=4", "NAME=BITS"),
                                         ("fc1=2,x", "NAME=BITS")])
def test_a_bad_weight_bits_option_is_named(text, match):
    with pytest.raises(MappingError, match=match):
        _weight_bits(text)
