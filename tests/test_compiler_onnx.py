"""ONNX import: every supported op from a small graph, the float network against onnxruntime on the same graph,
and every rejection path naming the node and its op type."""

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from hwgen.compiler import FloatNetwork, import_onnx                                    # noqa: E402
from hwgen.errors import HwgenError, UnsupportedModelError                              # noqa: E402
from tests.onnx_graphs import TensorProto, const, helper, lenet_like, model, rng_weights, run_ort  # noqa: E402


def inputs(shape, n=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


def check_against_ort(proto, n=3, **kw):
    net = import_onnx(proto, **kw)
    assert isinstance(net, FloatNetwork)
    x = inputs(net.input_layout, n)
    ours = net.forward(x)
    theirs = np.concatenate([run_ort(proto, sample[None])[0] for sample in x])   # one by one: batch may be fixed
    assert ours.shape == theirs.reshape(ours.shape).shape
    np.testing.assert_allclose(ours, theirs.reshape(ours.shape), rtol=1e-5, atol=1e-5)
    return net


# Supported ops, each against onnxruntime -------------------------------------------------------------------

@pytest.mark.parametrize("pool", ["MaxPool", "AveragePool"])
def test_conv_relu_pool_flatten_gemm(pool):
    net = check_against_ort(lenet_like(pool=pool))
    assert [layer.kind for layer in net.layers] == ["conv2d", "conv2d", "linear", "linear"]
    conv_a, conv_b, fc_a, fc_b = net.layers
    assert conv_a.pool == ("max" if pool == "MaxPool" else "avg") and conv_a.relu and conv_a.pad == (1, 1)
    assert conv_b.out_shape == (6, 4, 4) and conv_b.pool == "none"
    assert fc_a.flatten_from == (6, 4, 4) and fc_a.in_shape == (96, 1, 1) and fc_a.relu
    assert fc_b.flatten_from is None and not fc_b.relu
    assert conv_a.source == ("conv_a", "relu_a", "pool_a")
    assert net.metadata["onnx_outputs"]["fc2"] == "y"
    problem = fc_a.problem
    assert (problem.kind, problem.C, problem.H, problem.W, problem.M, problem.E, problem.F) == \
        ("linear", 96, 1, 1, 10, 1, 1)
    assert (conv_a.problem.C, conv_a.problem.H, conv_a.problem.M, conv_a.problem.R, conv_a.problem.pad_h) == \
        (1, 12, 4, 3, 1)


def test_conv_stride_pads_per_axis_no_bias():
    w = rng_weights(1, 3, 2, 3, 5)
    proto = model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", strides=[2, 1], pads=[1, 2, 1, 2],
                                    kernel_shape=[3, 5])], ["N", 2, 9, 8], [const("w", w)])
    net = check_against_ort(proto)
    layer = net.layers[0]
    assert (layer.stride, layer.pad, layer.out_shape) == ((2, 1), (1, 2), (3, 5, 8))
    assert not layer.bias.any()


@pytest.mark.parametrize("auto_pad,expected", [("SAME_UPPER", (1, 1)), ("SAME_LOWER", (1, 1)), ("VALID", (0, 0))])
def test_conv_auto_pad(auto_pad, expected):
    proto = model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad=auto_pad)], [1, 2, 6, 6],
                  [const("w", rng_weights(1, 3, 2, 3, 3))])
    assert check_against_ort(proto).layers[0].pad == expected


def test_gemm_without_transpose_and_flat_input():
    proto = model([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g")], ["batch", 7],
                  [const("w", rng_weights(1, 7, 4)), const("b", rng_weights(2, 1, 4))])
    net = check_against_ort(proto)
    assert net.input_layout == (7,) and net.input_shape == (7, 1, 1) and net.output_shape == (4,)
    np.testing.assert_array_equal(net.layers[0].weight[:, :, 0, 0], rng_weights(1, 7, 4).T)


def test_matmul_add_bias_and_constant_node():
    w = rng_weights(1, 6, 5)
    nodes = [helper.make_node("Constant", [], ["w"], name="wconst", value=const("wv", w)),
             helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["bias", "m"], ["a"], name="add_bias"),     # constant first: still a bias
             helper.make_node("Relu", ["a"], ["y"], name="r")]
    net = check_against_ort(model(nodes, [1, 6], [const("bias", rng_weights(2, 5))]))
    assert net.layers[0].relu and net.layers[0].source == ("mm", "add_bias", "r")


def test_conv_add_per_channel_bias():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="c"),
             helper.make_node("Add", ["c", "extra"], ["y"], name="add")]
    proto = model(nodes, [1, 2, 5, 5], [const("w", rng_weights(1, 3, 2, 3, 3)), const("b", rng_weights(2, 3)),
                                        const("extra", rng_weights(3, 1, 3, 1, 1))])
    net = check_against_ort(proto)
    np.testing.assert_allclose(net.layers[0].bias, rng_weights(2, 3) + rng_weights(3, 3), rtol=1e-6)


@pytest.mark.parametrize("shape", [[1, -1], [0, -1], [-1, 54], [1, 54]])
def test_reshape_flattens(shape):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node("Reshape", ["c", "shape"], ["f"], name="reshape"),
             helper.make_node("Gemm", ["f", "w2"], ["y"], name="g", transB=1)]
    proto = model(nodes, [1, 2, 5, 5], [const("w", rng_weights(1, 6, 2, 3, 3)),
                                        const("shape", shape, np.int64), const("w2", rng_weights(2, 4, 54))])
    net = check_against_ort(proto, n=1)
    assert net.layers[1].flatten_from == (6, 3, 3)


def test_identity_dropout_and_maxpool_before_relu():
    nodes = [helper.make_node("Identity", ["x"], ["i"], name="id"),
             helper.make_node("Conv", ["i", "w"], ["c"], name="c"),
             helper.make_node("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p"], ["r"], name="relu"),     # commutes with max pooling: exact
             helper.make_node("Dropout", ["r"], ["y"], name="drop")]
    net = check_against_ort(model(nodes, [1, 1, 7, 7], [const("w", rng_weights(1, 2, 1, 2, 2))]))
    layer = net.layers[0]
    assert layer.relu and layer.pool == "max" and layer.out_shape == (2, 3, 3)    # 6x6 -> 3x3


def test_odd_map_pools_with_floor_like_onnx():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node("AveragePool", ["c"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    net = check_against_ort(model(nodes, [1, 1, 8, 8], [const("w", rng_weights(1, 2, 1, 2, 2))]))
    assert net.layers[0].out_shape == (2, 3, 3)      # 7x7 -> 3x3, the last row and column dropped


def test_path_and_bytes_and_save_load(tmp_path):
    import onnx
    proto = lenet_like()
    onnx.save(proto, str(tmp_path / "m.onnx"))
    a = import_onnx(tmp_path / "m.onnx")
    b = import_onnx(proto.SerializeToString(), name="lenet")
    assert b.name == "lenet"
    x = inputs(a.input_layout)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    a.save(tmp_path / "net")
    c = FloatNetwork.load(tmp_path / "net")
    np.testing.assert_array_equal(a.forward(x), c.forward(x))
    assert str(c) == str(a) and "conv1" in str(a) and "fc2" in str(a)


# Rejections: each names the node and its op type ------------------------------------------------------------

def rejects(proto, node, op_type, *words):
    with pytest.raises(UnsupportedModelError) as info:
        import_onnx(proto)
    message = str(info.value)
    assert f"'{node}'" in message and f"({op_type})" in message, message
    assert info.value.node == node and info.value.op_type == op_type
    for word in words:
        assert word in message, message
    assert isinstance(info.value, HwgenError)
    return message


def conv_graph(**attrs):
    return model([helper.make_node("Conv", ["x", "w"], ["y"], name="the_conv", **attrs)], [1, 4, 8, 8],
                 [const("w", rng_weights(1, 4, 4 // attrs.get("group", 1), 3, 3))])


@pytest.mark.parametrize("op", ["Sigmoid", "LSTM", "Softmax", "Tanh"])
def test_unsupported_op_named_with_supported_list(op):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"), helper.make_node(op, ["c"], ["y"], name="odd")]
    message = rejects(model(nodes, [1, 1, 4, 4], [const("w", rng_weights(1, 2, 1, 3, 3))]), "odd", op,
                      f"op {op} is not supported", "Conv", "Gemm", "MaxPool")
    assert "supported:" in message


def test_unsupported_ops_rejected_before_anything_else():
    # A Concat after a malformed Conv: the op type is reported first, before shapes or attributes are looked at.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c", group=3),
             helper.make_node("Concat", ["c", "c"], ["y"], name="cat", axis=1)]
    rejects(model(nodes, [1, 1, 4, 4], [const("w", rng_weights(1, 2, 1, 3, 3))]), "cat", "Concat")


@pytest.mark.parametrize("attrs,words", [
    ({"group": 2}, ["group=2", "group=1"]),
    ({"group": 4}, ["depthwise"]),
    ({"dilations": [2, 2]}, ["dilations=[2, 2]", "dilation 1"]),
    ({"pads": [1, 1, 0, 0]}, ["not symmetric"]),
    ({"pads": [0, 1, 0, 2]}, ["not symmetric"]),
    ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, ["asymmetric padding"]),
])
def test_conv_rejections(attrs, words):
    rejects(conv_graph(**attrs), "the_conv", "Conv", *words)


@pytest.mark.parametrize("attrs,words", [
    ({"alpha": 2.0}, ["alpha=2.0", "alpha=beta=1"]),
    ({"beta": 0.5}, ["beta=0.5"]),
    ({"transA": 1}, ["transA=1"]),
])
def test_gemm_rejections(attrs, words):
    proto = model([helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transB=1, **attrs)], [1, 4],
                  [const("w", rng_weights(1, 4, 4))])
    rejects(proto, "g", "Gemm", *words)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs,words", [
    ({"kernel_shape": [3, 3], "strides": [2, 2]}, ["kernel_shape=[3, 3]", "exactly 2x2"]),
    ({"kernel_shape": [2, 2]}, ["strides=[1, 1]"]),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]}, ["pads="]),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, ["ceil_mode=1"]),
    ({"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, ["auto_pad"]),
])
def test_pool_rejections(op, attrs, words):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node(op, ["c"], ["y"], name="the_pool", **attrs)]
    rejects(model(nodes, [1, 1, 9, 9], [const("w", rng_weights(1, 2, 1, 2, 2))]), "the_pool", op, *words)


def test_pool_not_after_conv():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="early", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "w"], ["y"], name="c")]
    rejects(model(nodes, [1, 1, 8, 8], [const("w", rng_weights(1, 2, 1, 2, 2))]), "early", "MaxPool",
            "only right after a Conv")


def test_two_pools_after_one_conv():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node("MaxPool", ["c"], ["p"], name="p1", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxPool", ["p"], ["y"], name="p2", kernel_shape=[2, 2], strides=[2, 2])]
    rejects(model(nodes, [1, 1, 9, 9], [const("w", rng_weights(1, 2, 1, 2, 2))]), "p2", "MaxPool",
            "already pooled by 'p1'")


def test_relu_after_average_pool():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node("AveragePool", ["c"], ["p"], name="p", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p"], ["y"], name="late_relu")]
    rejects(model(nodes, [1, 1, 9, 9], [const("w", rng_weights(1, 2, 1, 2, 2))]), "late_relu", "Relu",
            "does not commute")


def test_relu_before_any_layer():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first_relu"),
             helper.make_node("Gemm", ["r", "w"], ["y"], name="g", transB=1)]
    rejects(model(nodes, [1, 4], [const("w", rng_weights(1, 3, 4))]), "first_relu", "Relu", "must follow")


def test_residual_add():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="r"),
             helper.make_node("Add", ["r", "c"], ["y"], name="residual")]
    rejects(model(nodes, [1, 2, 5, 5], [const("w", rng_weights(1, 2, 2, 3, 3))]), "residual", "Add",
            "residual")


def test_add_not_after_a_layer():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="g", transB=1),
             helper.make_node("Relu", ["g"], ["r"], name="r"),
             helper.make_node("Add", ["r", "b"], ["y"], name="late_add")]
    rejects(model(nodes, [1, 4], [const("w", rng_weights(1, 3, 4)), const("b", rng_weights(2, 3))]),
            "late_add", "Add", "right after a Conv")


def test_add_of_non_per_channel_constant():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="g", transB=1),
             helper.make_node("Add", ["g", "b"], ["y"], name="wide_add")]
    rejects(model(nodes, [1, 4], [const("w", rng_weights(1, 3, 4)), const("b", rng_weights(2, 2, 3))]),
            "wide_add", "Add", "per-channel bias")


def test_matmul_of_two_tensors():
    rejects(model([helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")], [1, 1]), "mm", "MatMul",
            "computed tensors")


def test_computed_weight():
    nodes = [helper.make_node("Relu", ["wraw"], ["w"], name="wrelu"),
             helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transB=1)]
    proto = model(nodes, [1, 4], [const("wraw", rng_weights(1, 3, 4))])
    with pytest.raises(UnsupportedModelError, match="'g' \\(Gemm\\).*computed tensors|'wrelu' \\(Relu\\)"):
        import_onnx(proto)


@pytest.mark.parametrize("axis", [0, 2])
def test_flatten_axis(axis):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node("Flatten", ["c"], ["y"], name="fl", axis=axis)]
    rejects(model(nodes, [1, 1, 4, 4], [const("w", rng_weights(1, 2, 1, 3, 3))]), "fl", "Flatten",
            f"axis={axis}", "axis=1")


def test_reshape_not_a_flatten():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="c"),
             helper.make_node("Reshape", ["c", "s"], ["y"], name="rs")]
    rejects(model(nodes, [1, 1, 4, 4], [const("w", rng_weights(1, 2, 1, 3, 3)), const("s", [1, 2, -1], np.int64)]),
            "rs", "Reshape", "[N, -1]")


def test_dropout_in_training_mode():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="g", transB=1),
             helper.make_node("Dropout", ["g", "ratio", "train"], ["y"], name="drop")]
    proto = model(nodes, [1, 4], [const("w", rng_weights(1, 3, 4)), const("ratio", 0.5),
                                  const("train", True, np.bool_)])
    rejects(proto, "drop", "Dropout", "training_mode")


def test_conv_after_flatten():
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="fl"),
             helper.make_node("Gemm", ["f", "w"], ["g"], name="g", transB=1),
             helper.make_node("Reshape", ["g", "s"], ["y"], name="rs")]
    proto = model(nodes, [1, 1, 2, 2], [const("w", rng_weights(1, 4, 4)), const("s", [1, 4], np.int64)])
    net = import_onnx(proto)             # a Reshape of a flat tensor to [1, K] is a no-op
    assert net.layers[0].flatten_from == (1, 2, 2)


def test_gemm_on_image_without_flatten():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm4d")]
    rejects(model(nodes, [1, 1, 4, 4], [const("w", rng_weights(1, 4, 3))]), "mm4d", "MatMul", "Flatten")


def test_graph_level_rejections():
    gemm = helper.make_node("Gemm", ["x", "w"], ["y"], name="g", transB=1)
    with pytest.raises(UnsupportedModelError, match="fixed batch of 2"):
        import_onnx(model([gemm], [2, 4], [const("w", rng_weights(1, 3, 4))]))
    with pytest.raises(UnsupportedModelError, match="\\[N, C, H, W\\] or \\[N, K\\]"):
        import_onnx(model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [1, 2, 4],
                          [const("w", rng_weights(1, 4, 3))]))
    with pytest.raises(UnsupportedModelError, match="nothing to map"):
        import_onnx(model([helper.make_node("Identity", ["x"], ["y"], name="i")], [1, 4]))
    with pytest.raises(UnsupportedModelError, match="element type INT8"):
        import_onnx(model([gemm], [1, 4], [const("w", rng_weights(1, 3, 4))], input_type=TensorProto.INT8))


def test_branch_rejected():
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="g", transB=1),
             helper.make_node("Relu", ["g"], ["y"], name="r"),
             helper.make_node("Relu", ["g"], ["side"], name="side_relu")]
    with pytest.raises(UnsupportedModelError, match="feeds 2 nodes.*'side_relu'") as info:
        import_onnx(model(nodes, [1, 4], [const("w", rng_weights(1, 3, 4))]))
    assert info.value.node == "side_relu"


def test_foreign_domain_rejected():
    node = helper.make_node("QLinearConv", ["x"], ["y"], name="qc", domain="com.microsoft")
    rejects(model([node], [1, 1, 4, 4]), "qc", "QLinearConv", "QDQ")


def test_non_model_argument():
    with pytest.raises(TypeError, match="ModelProto"):
        import_onnx(42)
    with pytest.raises(FileNotFoundError):
        import_onnx("/nonexistent/model.onnx")


def test_weight_only_dequantize_is_a_float_model():
    # DequantizeLinear on the weights only (activations stay float): a float model with the dequantized weights.
    w = np.random.default_rng(0).integers(-127, 128, (3, 2, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dq_w", axis=0),
             helper.make_node("Conv", ["x", "w"], ["y"], name="c")]
    proto = model(nodes, ["N", 2, 5, 5], [const("wq", w, np.int8), const("ws", [0.1, 0.2, 0.3]),
                                          const("wz", [0, 0, 0], np.int8)])
    net = check_against_ort(proto)
    np.testing.assert_allclose(net.layers[0].weight, w * np.float32([0.1, 0.2, 0.3])[:, None, None, None],
                               rtol=1e-6)
