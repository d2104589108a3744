"""The integer reference network (QLayer, QuantizedNetwork) and the post-training quantizer: NumPy only."""

import json

import numpy as np
import pytest

from hwgen import reference
from hwgen.compiler import (FloatLayer, FloatNetwork, QLayer, QuantizedNetwork, activation_qparams, calibrate_range,
                            quantize, quantize_bias, quantize_tensor, quantize_weights)
from hwgen.postops import PostOps, QuantParams, apply, quantize_multiplier


def small_float_network(seed=0):
    rng = np.random.default_rng(seed)
    conv = FloatLayer(name="conv1", kind="conv2d", weight=rng.standard_normal((4, 2, 3, 3)) * 0.3,
                      bias=rng.standard_normal(4) * 0.1, in_shape=(2, 8, 8), pad=(1, 1), relu=True, pool="max")
    fc1 = FloatLayer(name="fc1", kind="linear", weight=rng.standard_normal((6, 64, 1, 1)) * 0.2,
                     bias=rng.standard_normal(6) * 0.1, in_shape=(64, 1, 1), relu=True, flatten_from=(4, 4, 4))
    fc2 = FloatLayer(name="fc2", kind="linear", weight=rng.standard_normal((3, 6, 1, 1)) * 0.5,
                     bias=rng.standard_normal(3) * 0.1, in_shape=(6, 1, 1))
    return FloatNetwork(name="small", layers=(conv, fc1, fc2), input_layout=(2, 8, 8))


def calibration(n=64, seed=1, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, 2, 8, 8)).astype(np.float32) + shift


# Quantizer building blocks ---------------------------------------------------------------------------------

def test_quantize_weights_per_channel_symmetric():
    w = np.array([[[[0.5, -1.0]]], [[[0.02, 0.01]]], [[[0.0, 0.0]]]])
    q, scale = quantize_weights(w)
    np.testing.assert_allclose(scale, [1.0 / 127, 0.02 / 127, 1.0])
    np.testing.assert_array_equal(q[:, 0, 0], [[64, -127], [127, 64], [0, 0]])   # 63.5 -> 64, half to even
    assert q.min() >= -127 and q.max() <= 127
    # Reconstruction error at most half a step per channel.
    assert np.all(np.abs(q * scale[:, None, None, None] - w) <= scale[:, None, None, None] / 2 + 1e-12)


def test_calibrate_range_minmax_and_percentile():
    values = np.concatenate([np.linspace(-1, 1, 10001), [50.0]])
    assert calibrate_range(values) == (-1.0, 50.0)
    lo, hi = calibrate_range(values, method="percentile", percentile=99.9)
    assert -1.0 < lo < -0.99 and 0.99 < hi < 1.0      # the outlier no longer sets the range
    assert calibrate_range(values, method="percentile", percentile=100) == (-1.0, 50.0)
    with pytest.raises(ValueError, match="percentile must be"):
        calibrate_range(values, method="percentile", percentile=40)
    with pytest.raises(ValueError, match="method must be"):
        calibrate_range(values, method="mse")
    with pytest.raises(ValueError, match="at least one value"):
        calibrate_range([])


def test_activation_qparams():
    assert activation_qparams(-2.0, 1.0) == (float(np.float32(2.0 / 127)), 0)
    scale, zp = activation_qparams(0.0, 6.35)                  # post-ReLU, symmetric: [0, 127]
    assert zp == 0 and scale == float(np.float32(0.05))
    scale, zp = activation_qparams(0.0, 2.55, symmetric=False)  # post-ReLU, asymmetric: the full range
    assert zp == -128 and scale == float(np.float32(0.01))
    scale, zp = activation_qparams(-1.0, 3.0, symmetric=False)
    assert scale == float(np.float32(4.0 / 255)) and zp == int(np.rint(-128 + 1.0 / scale))
    assert quantize_tensor(-1.0, scale, zp) == -128 and quantize_tensor(3.0, scale, zp) == 127
    assert quantize_tensor(0.0, scale, zp) == zp                # real 0 is exact
    scale, zp = activation_qparams(0.5, 3.0, symmetric=False)   # the range is widened to hold 0
    assert quantize_tensor(0.0, scale, zp) == zp == -128
    assert activation_qparams(0.0, 0.0) == (1.0, 0)


def test_quantize_tensor_rounds_half_to_even_and_saturates():
    np.testing.assert_array_equal(quantize_tensor([0.5, 1.5, 2.5, -0.5, -2.5, 1e9, -1e9], 1.0, 0),
                                  [0, 2, 2, 0, -2, 127, -128])
    np.testing.assert_array_equal(quantize_tensor([0.5, 1.5], 1.0, 10), [10, 12])


def test_quantize_bias():
    np.testing.assert_array_equal(quantize_bias([0.1, -0.25], 0.01, [0.5, 0.1]), [20, -250])
    with pytest.raises(ValueError, match="conv9.*outside int32"):
        quantize_bias([1e6], 1e-4, [1e-4], layer="conv9")


def test_multiplier_from_scales():
    layer = QLayer.from_quantized(name="fc", kind="linear", in_shape=(4, 1, 1), weight=np.ones((2, 4, 1, 1), int),
                                  weight_scale=[0.01, 0.02], bias=[5, -5], in_scale=0.5, in_zero_point=0,
                                  out_scale=0.25, out_zero_point=0)
    for m, ws in enumerate([0.01, 0.02]):
        mult, shift = quantize_multiplier(0.5 * ws / 0.25)
        assert (layer.params.multiplier[m], layer.params.shift[m]) == (mult, shift)
        assert abs(mult * 2.0 ** -shift - 0.5 * ws / 0.25) < 1e-9 * ws
    np.testing.assert_array_equal(layer.params.bias, [5, -5])


# The integer semantics: only reference.conv2d and postops.apply ----------------------------------------------

def test_zero_point_folded_into_bias_and_padding():
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (3, 2, 3, 3))
    layer = QLayer.from_quantized(name="conv1", kind="conv2d", in_shape=(2, 5, 5), weight=w, weight_scale=0.01,
                                  bias=[100, -7, 0], in_scale=0.02, in_zero_point=-20, out_scale=0.1,
                                  out_zero_point=11, relu=True, pool="avg", pad=(1, 1))
    np.testing.assert_array_equal(layer.params.bias, np.array([100, -7, 0]) + 20 * w.reshape(3, -1).sum(1))
    assert layer.postops == PostOps(bias=True, requant=True, relu=True, pool="avg", zero_point=11)
    x = rng.integers(-128, 128, (2, 5, 5))
    # Padding with the zero point, then the bias with z_in folded in, equals the reals' sum w * (x - z_in).
    acc = layer.accumulate(x)
    centered = reference.conv2d(x + 20, w, padding=(1, 1)) + np.array([100, -7, 0])[:, None, None]
    np.testing.assert_array_equal(acc + layer.params.bias[:, None, None], centered)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, apply(acc, layer.params, layer.postops))
    assert out.min() >= 11           # ReLU clamps at the output zero point
    assert out.shape == layer.out_shape == (3, 2, 2)


def test_uint8_is_int8_shifted():
    # A uint8 tensor with zero point z is the int8 tensor q - 128 with zero point z - 128: the same reals.
    x = np.linspace(-1, 3, 50)
    scale, z = 4 / 255, 64
    u8 = np.clip(np.rint(x / scale) + z, 0, 255)
    i8 = quantize_tensor(x, scale, z - 128)
    np.testing.assert_array_equal(u8 - 128, i8)
    np.testing.assert_allclose(scale * (u8 - z), scale * (i8 - (z - 128)))


def test_forward_int_is_reference_then_postops():
    qnet = quantize(small_float_network(), calibration())
    x = qnet.quantize_input(calibration(1, seed=9)[0])
    outs = qnet.forward_int(x)
    expected, h = [], x
    for layer in qnet.layers:
        acc = reference.conv2d(np.asarray(h).reshape(layer.in_shape), layer.weight, stride=layer.stride,
                               padding=layer.pad, pad_value=layer.in_zero_point)
        h = apply(acc, layer.params, layer.postops)
        expected.append(h)
    for a, b in zip(outs, expected):
        np.testing.assert_array_equal(a, b)
    assert [o.shape for o in outs] == [(4, 4, 4), (6, 1, 1), (3, 1, 1)]
    np.testing.assert_array_equal(qnet.run_int(x[None])[0], outs[-1].ravel())


@pytest.mark.parametrize("activations", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_quantized_network_tracks_float(activations, method):
    net = small_float_network()
    shift = 0.7 if activations == "asymmetric" else 0.0     # an off-center input: a nonzero input zero point
    calib = calibration(shift=shift)
    qnet = quantize(net, calib, activations=activations, method=method, percentile=99.9)
    assert qnet.metadata["activations"] == activations and qnet.metadata["method"] == method
    for layer in qnet.layers:
        assert layer.weight.min() >= -127 and layer.weight.max() <= 127
        if activations == "symmetric":
            assert layer.in_zero_point == 0 and layer.out_zero_point == 0
    if activations == "asymmetric":
        assert qnet.in_zero_point != 0
        assert qnet.layers[0].out_zero_point == -128 and qnet.layers[1].out_zero_point == -128   # post-ReLU
    x = calibration(16, seed=5, shift=shift)
    real = net.forward(x)
    approx = qnet.dequantize_output(qnet.run(x))
    assert np.max(np.abs(real - approx)) < 0.08 * np.max(np.abs(real))
    assert np.mean(qnet.predict(x) == real.argmax(1)) >= 0.8


def test_float_forward_matches_a_literal_loop():
    net = small_float_network()
    x = calibration(2, seed=4)
    conv = net.layers[0]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    literal = np.zeros((2, 4, 8, 8))
    for n in range(2):
        for m in range(4):
            for e in range(8):
                for f in range(8):
                    literal[n, m, e, f] = np.sum(padded[n, :, e:e + 3, f:f + 3] * conv.weight[m]) + conv.bias[m]
    literal = np.maximum(literal, 0).reshape(2, 4, 4, 2, 4, 2).max(axis=(3, 5))
    np.testing.assert_allclose(net.trace(x)[0][0], literal, rtol=1e-12, atol=1e-12)
    fc = literal.reshape(2, -1) @ net.layers[1].weight[:, :, 0, 0].T + net.layers[1].bias
    np.testing.assert_allclose(net.trace(x)[1][0].reshape(2, -1), np.maximum(fc, 0), rtol=1e-12, atol=1e-12)


def test_save_load_round_trip(tmp_path):
    qnet = quantize(small_float_network(), calibration(), activations="asymmetric")
    qnet.save(tmp_path / "q")
    doc = json.loads((tmp_path / "q" / "network.json").read_text())
    assert doc["format"] == "hwgen.QuantizedNetwork" and [d["name"] for d in doc["layers"]] == ["conv1", "fc1", "fc2"]
    back = QuantizedNetwork.load(tmp_path / "q")
    assert str(back) == str(qnet)
    for a, b in zip(qnet.layers, back.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        for field in ("bias", "multiplier", "shift"):
            np.testing.assert_array_equal(getattr(a.params, field), getattr(b.params, field))
        assert a.postops == b.postops and a.problem == b.problem and a.flatten_from == b.flatten_from
    x = qnet.quantize_input(calibration(1)[0])
    for a, b in zip(qnet.forward_int(x), back.forward_int(x)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError):
        QuantizedNetwork.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a hwgen.QuantizedNetwork"):
        small_float_network().save(tmp_path / "f")
        QuantizedNetwork.load(tmp_path / "f")


def test_summary_table():
    text = str(quantize(small_float_network(), calibration()))
    lines = text.splitlines()
    assert lines[0].startswith("QuantizedNetwork 'small' (hwgen.quantize): input 2x8x8 int8")
    assert "out scale" in lines[1] and lines[2].split()[:4] == ["conv1", "conv2d", "2x8x8", "4x4x4"]
    assert "4x4x4" in lines[3]          # fc1 flattens conv1's output


def test_problem_is_the_dsl_canonical_form():
    qnet = quantize(small_float_network(), calibration())
    conv, fc1, _ = qnet.layers
    p = conv.problem
    assert (p.kind, p.C, p.H, p.W, p.M, p.E, p.F, p.R, p.S, p.pad_h, p.pad_w) == \
        ("conv2d", 2, 8, 8, 4, 8, 8, 3, 3, 1, 1)
    p = fc1.problem
    assert (p.kind, p.C, p.H, p.W, p.M, p.E, p.F, p.R, p.S) == ("linear", 64, 1, 1, 6, 1, 1, 1, 1)
    assert conv.nest.name == "conv1" and fc1.nest.name == "fc1"


def test_validation_errors():
    qnet = quantize(small_float_network(), calibration())
    with pytest.raises(TypeError, match="quantize_input first"):
        qnet.forward_int(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="must be int8"):
        qnet.forward_int(np.full((2, 8, 8), 300))
    with pytest.raises(ValueError, match="one input sample has shape"):
        qnet.forward_int(np.zeros((1, 2, 8, 8), int))
    conv, fc1, fc2 = qnet.layers
    with pytest.raises(ValueError, match="fc2 expects its input quantized"):
        QuantizedNetwork(name="bad", layers=(conv, fc1, QLayer(**{**fc2.__dict__, "in_zero_point": 3})),
                         input_layout=(2, 8, 8), in_scale=qnet.in_scale, in_zero_point=0)
    with pytest.raises(ValueError, match="reads"):
        QuantizedNetwork(name="bad", layers=(conv, fc2), input_layout=(2, 8, 8), in_scale=qnet.in_scale,
                         in_zero_point=0)
    with pytest.raises(ValueError, match="int8"):
        QLayer(**{**conv.__dict__, "weight": conv.weight * 200})
    with pytest.raises(TypeError, match="FloatNetwork"):
        quantize(qnet, calibration())
    with pytest.raises(ValueError, match="activations must be"):
        quantize(small_float_network(), calibration(), activations="int4")
    with pytest.raises(ValueError, match=r"\[N, 2, 8, 8\]"):
        quantize(small_float_network(), np.zeros((3, 8, 8, 2)))
    with pytest.raises(ValueError, match="QuantParams has 5 channels"):
        QLayer(**{**conv.__dict__, "params": QuantParams(bias=np.zeros(5, int), multiplier=np.ones(5, int),
                                                         shift=np.ones(5, int))})
