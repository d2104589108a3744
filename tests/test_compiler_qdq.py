"""QDQ models: onnxruntime's own quantization imported with its scales and zero points, checked against onnxruntime
running the same model (the independent oracle), and the QDQ shapes hwgen cannot express exactly, rejected.

onnxruntime requantizes in float32 and rounds half to even; hwgen uses a 31-bit fixed-point multiplier and rounds
half up (see hwgen/compiler/oracle.py): the check is the same top-1 everywhere and >= 99 % of int8 values within
one LSB in every layer.
"""

import logging

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hwgen.compiler import QuantizedNetwork, import_onnx                                  # noqa: E402
from hwgen.compiler.oracle import compare_with_onnxruntime, quantize_static_qdq          # noqa: E402
from hwgen.errors import UnsupportedModelError                                            # noqa: E402
from tests.onnx_graphs import TensorProto, const, helper, lenet_like, model, rng_weights  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)      # quantize_static logs advice about pre-processing


def images(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 1, 12, 12)).astype(np.float32)


def assert_agrees(network, qdq, x):
    agreement = compare_with_onnxruntime(network, qdq, x)
    assert agreement.all_same_top1, agreement
    name, total, equal, _, _ = agreement.layers[0]
    assert name == "input" and equal == total, agreement      # the same QuantizeLinear of the input
    for name, total, equal, within, worst in agreement.layers:
        assert within >= 0.99 * total, agreement
    return agreement


@pytest.mark.parametrize("activation_type", ["uint8", "int8"])
def test_quantize_static_model_agrees_with_onnxruntime(activation_type):
    pool = "MaxPool"
    float_model = lenet_like(pool=pool)
    qdq = quantize_static_qdq(float_model, images(64, 0), activation_type=activation_type)
    network = import_onnx(qdq)
    assert isinstance(network, QuantizedNetwork) and network.metadata["source"] == "onnx-qdq"
    assert [layer.name for layer in network.layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert network.in_zero_point != 0                        # an asymmetric input: its zero point is kept
    assert network.layers[0].postops.pool == ("max" if pool == "MaxPool" else "avg")
    assert network.layers[1].out_zero_point == -128          # post-ReLU: uint8 0 / int8 -128, the ReLU itself
    assert network.layers[2].flatten_from == (6, 4, 4)
    assert_agrees(network, qdq, images(40, 1))


def test_per_tensor_weights_agree():
    qdq = quantize_static_qdq(lenet_like(), images(64, 0), per_channel=False)
    network = import_onnx(qdq)
    assert all(np.all(layer.weight_scale == layer.weight_scale[0]) for layer in network.layers)
    assert_agrees(network, qdq, images(20, 2))


def test_the_oracle_bites():
    qdq = quantize_static_qdq(lenet_like(), images(64, 0))
    network = import_onnx(qdq)
    conv1 = network.layers[0]
    broken = conv1.params.__class__(bias=conv1.params.bias + 3, multiplier=conv1.params.multiplier,
                                    shift=conv1.params.shift)
    bad = QuantizedNetwork(name="bad", layers=(conv1.__class__(**{**conv1.__dict__, "params": broken}),)
                           + network.layers[1:], input_layout=network.input_layout, in_scale=network.in_scale,
                           in_zero_point=network.in_zero_point, metadata=network.metadata)
    agreement = compare_with_onnxruntime(bad, qdq, images(10, 3))
    assert agreement.layers[0][0] == "input" and agreement.layers[0][2] == agreement.layers[0][1]
    assert agreement.layers[1][0] == "conv1" and agreement.layers[1][2] < agreement.layers[1][1]  # differs now


# Hand-built QDQ graphs ------------------------------------------------------------------------------------

def qdq_model(*, after="", w_zp=0, w_dtype=np.int8, bias="int32", bias_scale_factor=1.0, act_axis=False,
              pool_scale=None, second_gemm=False, skip_out_q=False):
    """x -> Q/DQ -> Conv(DQ w, DQ bias) -> [Relu] -> Q/DQ -> [pool -> Q/DQ] -> Flatten -> Q/DQ -> Gemm -> Q/DQ."""
    s_in, s_w, s_out = 0.02, np.array([0.01, 0.005], np.float32), 0.05
    w = np.random.default_rng(0).integers(-100, 100, (2, 1, 3, 3)).astype(w_dtype)
    inits = [const("s_in", s_in), const("z_in", 3, np.int8), const("s_out", s_out), const("z_out", -128, np.int8),
             const("w_q", w, w_dtype), const("s_w", s_w), const("z_w", [w_zp, w_zp], w_dtype),
             const("b_q", [100, -50], np.int32), const("s_b", np.float32(s_in) * s_w * bias_scale_factor),
             const("z_b", [0, 0], np.int32), const("b_f", [0.1, -0.1]),
             const("g_q", np.ones((3, 2 * 3 * 3), np.int8), np.int8), const("s_g", [0.01] * 3),
             const("z_g", [0] * 3, np.int8), const("gb_q", [0, 0, 0], np.int32),
             const("s_gb", np.float32(s_out) * np.float32([0.01] * 3)), const("z_gb", [0] * 3, np.int32),
             const("s_y", 0.1), const("z_y", 0, np.int8), const("s_pool", pool_scale or s_out)]
    out_q = ["s_out", "z_out"]
    if act_axis:        # the conv output quantized per channel
        inits += [const("s_out_c", [s_out, s_out]), const("z_out_c", [-128, -128], np.int8)]
        out_q = ["s_out_c", "z_out_c"]
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"], name="q_in"),
             n("DequantizeLinear", ["xq", "s_in", "z_in"], ["xd"], name="dq_in"),
             n("DequantizeLinear", ["w_q", "s_w", "z_w"], ["w"], name="dq_w", axis=0)]
    conv_inputs = ["xd", "w"]
    if bias == "int32":
        nodes.append(n("DequantizeLinear", ["b_q", "s_b", "z_b"], ["b"], name="dq_b", axis=0))
        conv_inputs.append("b")
    elif bias == "float":
        conv_inputs.append("b_f")
    nodes.append(n("Conv", conv_inputs, ["c"], name="conv", pads=[1, 1, 1, 1]))
    t = "c"
    if after == "relu_then_q":
        nodes.append(n("Relu", [t], ["r"], name="relu"))
        t = "r"
    if after == "avgpool_float":
        nodes.append(n("AveragePool", [t], ["ap"], name="avg", kernel_shape=[2, 2], strides=[2, 2]))
        t = "ap"
    if not skip_out_q:
        nodes += [n("QuantizeLinear", [t] + out_q, ["cq"], name="q_conv", axis=1),
                  n("DequantizeLinear", ["cq"] + out_q, ["cd"], name="dq_conv", axis=1)]
        t = "cd"
    if after in ("avgpool", "maxpool"):
        op = "AveragePool" if after == "avgpool" else "MaxPool"
        nodes += [n(op, [t], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
                  n("QuantizeLinear", ["p", "s_pool", "z_out"], ["pq"], name="q_pool"),
                  n("DequantizeLinear", ["pq", "s_pool", "z_out"], ["pd"], name="dq_pool")]
        t = "pd"
    pooled = after in ("avgpool", "maxpool", "avgpool_float")
    nodes.append(n("Flatten", [t], ["f"], name="flat"))
    t = "f"
    if second_gemm:
        K = 2 * (3 if pooled else 6) ** 2
        g = np.random.default_rng(1).integers(-60, 61, (3, K))
        inits = [i for i in inits if i.name != "g_q"] + [const("g_q", g, np.int8)]
        nodes += [n("DequantizeLinear", ["g_q", "s_g", "z_g"], ["g"], name="dq_g", axis=0),
                  n("DequantizeLinear", ["gb_q", "s_gb", "z_gb"], ["gb"], name="dq_gb", axis=0),
                  n("Gemm", [t, "g", "gb"], ["gy"], name="gemm", transB=1),
                  n("QuantizeLinear", ["gy", "s_y", "z_y"], ["yq"], name="q_y"),
                  n("DequantizeLinear", ["yq", "s_y", "z_y"], ["y"], name="dq_y")]
    else:
        nodes.append(n("Identity", [t], ["y"], name="out"))
    return model(nodes, ["N", 1, 6, 6], inits)


def test_hand_built_qdq_imports_and_agrees():
    for after in ("", "relu_then_q", "maxpool"):
        qdq = qdq_model(after=after, second_gemm=True)
        network = import_onnx(qdq)
        conv = network.layers[0]
        assert conv.in_zero_point == 3 and conv.out_zero_point == -128
        assert conv.postops.relu == (after == "relu_then_q")
        w = np.random.default_rng(0).integers(-100, 100, (2, 1, 3, 3))
        np.testing.assert_array_equal(conv.params.bias, np.array([100, -50]) - 3 * w.reshape(2, -1).sum(1))
        assert_agrees(network, qdq, np.random.default_rng(1).standard_normal((20, 1, 6, 6)).astype(np.float32))


def qdq_rejects(proto, node, op_type, *words):
    with pytest.raises(UnsupportedModelError) as info:
        import_onnx(proto)
    message = str(info.value)
    assert f"'{node}'" in message and f"({op_type})" in message, message
    for word in words:
        assert word in message, message


def test_pool_requantized_to_another_scale():
    qdq_rejects(qdq_model(after="maxpool", pool_scale=0.07), "q_pool", "QuantizeLinear", "requantizes")


def test_average_pool_rounds_differently():
    # quantize_static's own output: DQ -> AveragePool -> Q with the same scale. Half to even vs hwgen's half up.
    qdq = quantize_static_qdq(lenet_like(pool="AveragePool"), images(16, 0))
    with pytest.raises(UnsupportedModelError, match="AveragePool.*half to even.*MaxPool"):
        import_onnx(qdq)
    qdq_rejects(qdq_model(after="avgpool"), "pool", "AveragePool", "half to even", "hwgen.compiler.quantize")


def test_average_pool_before_the_quantize():
    qdq_rejects(qdq_model(after="avgpool_float"), "avg", "AveragePool", "before its layer's QuantizeLinear")


def test_asymmetric_and_uint8_weights():
    qdq_rejects(qdq_model(w_zp=2), "conv", "Conv", "nonzero zero point", "symmetric")
    qdq_rejects(qdq_model(w_dtype=np.uint8), "conv", "Conv", "uint8", "QInt8")


def test_float_bias_in_a_qdq_model():
    qdq_rejects(qdq_model(bias="float"), "conv", "Conv", "bias is float")


def test_bias_scale_mismatch():
    qdq_rejects(qdq_model(bias_scale_factor=1.5), "conv", "Conv", "bias scale", "in_scale * weight_scale")


def test_unquantized_layer_output():
    qdq_rejects(qdq_model(skip_out_q=True, second_gemm=True), "gemm", "Gemm", "not quantized")
    qdq_rejects(qdq_model(skip_out_q=True), "conv", "Conv", "not quantized")


def test_per_axis_activation_quantization():
    qdq_rejects(qdq_model(act_axis=True), "q_conv", "QuantizeLinear", "per tensor")


def test_integer_consumer_of_quantize():
    n = helper.make_node
    nodes = [n("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             n("Identity", ["xq"], ["xi"], name="int_identity"),
             n("DequantizeLinear", ["xi", "s", "z"], ["xd"], name="dq"),
             n("Gemm", ["xd", "w"], ["y"], name="g", transB=1)]
    proto = model(nodes, [1, 4], [const("s", 0.1), const("z", 0, np.int8), const("w", rng_weights(1, 3, 4))])
    qdq_rejects(proto, "int_identity", "Identity", "integer output of QuantizeLinear 'q'")


def test_integer_input_rejected():
    n = helper.make_node
    nodes = [n("DequantizeLinear", ["x", "s", "z"], ["xd"], name="dq"), n("Gemm", ["xd", "w"], ["y"], name="g",
                                                                          transB=1)]
    proto = model(nodes, [1, 4], [const("s", 0.1), const("z", 0, np.int8), const("w", rng_weights(1, 3, 4))],
                  input_type=TensorProto.INT8)
    with pytest.raises(UnsupportedModelError, match="float inputs"):
        import_onnx(proto)
