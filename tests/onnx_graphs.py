"""Small ONNX graphs built with onnx.helper for the import tests (no files, no network)."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def const(name, array, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(array, dtype=dtype), name)


def model(nodes, input_shape, initializers=(), *, output="y", input_name="x", output_shape=None,
          input_type=TensorProto.FLOAT, output_type=TensorProto.FLOAT, opset=OPSET, extra_outputs=()):
    """A model from ``nodes``: one input ``x`` of ``input_shape`` (a string is a symbolic axis), output ``y``."""
    graph = helper.make_graph(
        list(nodes), "test",
        [helper.make_tensor_value_info(input_name, input_type, list(input_shape))],
        [helper.make_tensor_value_info(output, output_type, output_shape)] +
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in extra_outputs],
        initializer=list(initializers))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    return proto


def rng_weights(seed, *shape, scale=0.3):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def lenet_like(*, pool="MaxPool", batch="N"):
    """conv 1->4 3x3 pad 1, relu, pool 2x2, conv 4->6 3x3, relu, flatten, gemm 6*4*4 -> 10 (+bias), relu, gemm ->5."""
    inits = [const("w1", rng_weights(1, 4, 1, 3, 3)), const("b1", rng_weights(2, 4)),
             const("w2", rng_weights(3, 6, 4, 3, 3)), const("b2", rng_weights(4, 6)),
             const("w3", rng_weights(5, 10, 96, scale=0.1)), const("b3", rng_weights(6, 10)),
             const("w4", rng_weights(7, 5, 10)), const("b4", rng_weights(8, 5))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu_a"),
             helper.make_node(pool, ["r1"], ["p1"], name="pool_a", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv_b"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu_b"),
             helper.make_node("Flatten", ["r2"], ["f"], name="flat", axis=1),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["g1"], name="fc_a", transB=1),
             helper.make_node("Relu", ["g1"], ["r3"], name="relu_c"),
             helper.make_node("Gemm", ["r3", "w4", "b4"], ["y"], name="fc_b", transB=1)]
    return model(nodes, [batch, 1, 12, 12], inits)


def run_ort(proto, x, outputs=None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(outputs, {session.get_inputs()[0].name: np.asarray(x, dtype=np.float32)})


__all__ = ["const", "model", "rng_weights", "lenet_like", "run_ort", "onnx", "helper", "TensorProto"]
