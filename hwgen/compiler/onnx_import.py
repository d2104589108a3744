"""The import step: an ONNX model -> a `FloatNetwork` (float model) or a `QuantizedNetwork` (QDQ model).

The model is parsed, never executed (``onnx.load`` reads protobuf; no pickle anywhere). Supported, on a single
chain from the one input to the one output:

* ``Conv``: 2-D, ``group=1``, ``dilations=1``, symmetric ``pads`` (``auto_pad`` NOTSET, VALID, or SAME_* when
  the padding it implies is symmetric), constant weight and optional constant bias.
* ``Gemm`` (``transA=0``, ``alpha=beta=1``, constant ``B`` and ``C``), ``MatMul`` with a constant right operand,
  and ``Add`` of a constant per-channel bias right after a Conv/Gemm/MatMul.
* ``Relu`` after a layer (a ReLU after a MaxPool is moved before it: they commute exactly).
* ``MaxPool``/``AveragePool``: exactly 2x2, stride 2, no padding, ``ceil_mode=0``, after a Conv (and its ReLU).
* ``Flatten`` (``axis=1``) and ``Reshape`` to ``[N, C*H*W]`` (shape ``[N or 0 or -1, -1 or C*H*W]``); a linear
  layer after a conv records that it reads the conv output flattened in ``(C, H, W)`` order.
* ``Identity``, ``Dropout`` (inference: no ``training_mode``, no mask output), ``Constant``.
* ``QuantizeLinear``/``DequantizeLinear`` (QDQ format, as `onnxruntime.quantization.quantize_static(...,
  quant_format=QuantFormat.QDQ)` writes): see below.

The batch axis must be 1 or symbolic. Anything else - another op (LSTM, Sigmoid, Concat, ...), an attribute
value, a branch or a residual ``Add`` of two tensors, pooling not after a conv - raises
`hwgen.errors.UnsupportedModelError` naming the node, its op type and what is supported, before anything is
built. Nothing is approximated.

QDQ models
----------
Every activation is a ``QuantizeLinear -> DequantizeLinear`` pair with one scale and zero point (int8, or uint8:
converted exactly to int8 by ``q - 128``, zero point ``z - 128``); weights are ``DequantizeLinear`` of int8
constants, symmetric (zero point 0), per output channel or per tensor; the bias a ``DequantizeLinear`` of int32
with scale ``in_scale * weight_scale[m]`` (to float32 rounding) and zero point 0. hwgen keeps the model's
integers and scales: `QLayer.from_quantized` folds the input zero point into the bias and takes the
multiplier/shift from ``quantize_multiplier(in_scale * weight_scale[m] / out_scale)``. A ReLU between the layer
and its QuantizeLinear, or a Relu/MaxPool/Flatten between a QDQ pair and another pair with the same scale and
zero point, is exact in the integer semantics. A model that needs more - a pooling or ReLU whose output is
requantized to another scale, a float bias, asymmetric or uint8 weights, a per-channel activation scale - is
rejected, naming the node. So is AveragePool: the QDQ model rounds the average half to even (QuantizeLinear) where
hwgen's pooling rounds half up (``round_shift(sum, 2)``); one pooled value in eight differs and the difference
grows downstream (measured on a small CNN: 8 % of the next layer's values off by more than one), so such a model
cannot run bit for bit. (onnxruntime also drops a Relu before a QuantizeLinear whose range starts at 0: the
saturation at the zero point is then the ReLU, and the layer's ``relu`` flag stays False.)
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UnsupportedModelError
from .graph import FloatLayer, FloatNetwork, conv_out_size
from .network import QLayer, QuantizedNetwork

__all__ = ["import_onnx", "SUPPORTED_OPS", "is_qdq"]

SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "AveragePool", "Flatten", "Reshape",
                 "Identity", "Dropout", "Constant", "QuantizeLinear", "DequantizeLinear")
SUPPORTED = ("Conv (2-D, group 1, no dilation, symmetric pads), Gemm/MatMul with constant weights (+ Add of a "
             "constant bias), Relu, MaxPool/AveragePool 2x2 stride 2 after a Conv, Flatten/Reshape to [N, -1], "
             "Identity, Dropout (inference), QuantizeLinear/DequantizeLinear pairs")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("importing ONNX models needs the onnx package: pip install 'hwgen[onnx]'") from None
    return onnx


def _label(node, index=None):
    return repr(node.name) if node.name else f"#{index}" if index is not None else "(unnamed)"


def _reject(node, message, index=None):
    raise UnsupportedModelError(f"node {_label(node, index)} ({node.op_type}): {message}",
                                node=node.name or None, op_type=node.op_type)


def _reject_graph(message):
    raise UnsupportedModelError(message)


# Constants -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _QConst:
    """A constant behind a DequantizeLinear: integer ``q`` (int64), float ``scale``/``zero_point`` arrays."""
    q: np.ndarray
    dtype: str
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None       # None: per-tensor
    node: object

    @property
    def real(self):
        if self.axis is None:
            return (self.q - self.zero_point.reshape(())) * self.scale.reshape(()).astype(np.float64)
        shape = [1] * self.q.ndim
        shape[self.axis] = -1
        return (self.q - self.zero_point.reshape(shape)) * self.scale.astype(np.float64).reshape(shape)


def _attrs(node):
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Model:
    """Lookup tables over one graph: constants, producers, consumers, inferred shapes."""

    def __init__(self, model):
        onnx = _onnx()
        self.model = model
        graph = model.graph
        self.nodes = list(graph.node)
        self.index = {id(node): i for i, node in enumerate(self.nodes)}
        self.initializers = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.constants = dict(self.initializers)
        for node in self.nodes:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = _constant_value(node, self)
        self.producer = {out: node for node in self.nodes for out in node.output if out}
        self.consumers = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.input):
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.shapes = {}
        self.add_shapes(graph)

    def add_shapes(self, graph):
        """Record the tensor shapes ``graph`` declares (after ONNX shape inference: all it could infer)."""
        for info in list(graph.value_info) + list(graph.input) + list(graph.output):
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
                self.shapes[info.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                               for d in info.type.tensor_type.shape.dim)

    def label(self, node):
        return _label(node, self.index.get(id(node)))

    def reject(self, node, message):
        _reject(node, message, self.index.get(id(node)))

    def is_constant(self, name):
        """Whether ``name`` is an initializer, a Constant's output, or a DequantizeLinear/Identity of one."""
        if name in self.constants:
            return True
        node = self.producer.get(name)
        return node is not None and node.op_type in ("DequantizeLinear", "Identity") and \
            self.is_constant(node.input[0])

    def const(self, name, user, what):
        """The float array or `_QConst` behind ``name``, or a rejection naming ``user``."""
        if name in self.constants:
            return np.asarray(self.constants[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Identity" and self.is_constant(node.input[0]):
            return self.const(node.input[0], user, what)
        if node is not None and node.op_type == "DequantizeLinear" and node.input[0] in self.constants:
            return _dequantize_const(node, self)
        self.reject(user, f"its {what} ({name!r}) must be a constant (an initializer), not a computed tensor")


def _constant_value(node, model):
    onnx = _onnx()
    attrs = {a.name: a for a in node.attribute}
    if "value" in attrs:
        return onnx.numpy_helper.to_array(attrs["value"].t)
    for key in ("value_float", "value_int"):
        if key in attrs:
            return np.array(onnx.helper.get_attribute_value(attrs[key]))
    for key in ("value_floats", "value_ints"):
        if key in attrs:
            return np.array(onnx.helper.get_attribute_value(attrs[key]))
    model.reject(node, f"only tensor, float(s) and int(s) values are supported, got {sorted(attrs)}")


def _zero_point(node, model, index=2):
    """The zero point array of a Q/DQ node and its element type name (uint8 when absent, per ONNX)."""
    if len(node.input) > index and node.input[index]:
        if node.input[index] not in model.constants:
            model.reject(node, "its zero point must be a constant")
        zp = np.asarray(model.constants[node.input[index]])
        return zp.astype(np.int64), zp.dtype.name
    return np.zeros((), dtype=np.int64), "uint8"


def _scale(node, model):
    if node.input[1] not in model.constants:
        model.reject(node, "its scale must be a constant")
    scale = np.asarray(model.constants[node.input[1]])
    if scale.dtype.kind != "f" or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        model.reject(node, f"its scale must hold positive finite floats, got {scale!r}")
    return scale


def _dequantize_const(node, model):
    attrs = _attrs(node)
    q = np.asarray(model.constants[node.input[0]])
    scale = _scale(node, model)
    zp, zp_type = _zero_point(node, model)
    if q.dtype.name not in ("int8", "uint8", "int32"):
        model.reject(node, f"a quantized constant must be int8, uint8 or int32, not {q.dtype.name}")
    if scale.size == 1 and zp.size == 1:
        axis = None
    else:
        axis = int(attrs.get("axis", 1))
        axis = axis + q.ndim if axis < 0 else axis
        if not 0 <= axis < q.ndim or scale.shape != (q.shape[axis],) or zp.size not in (1, q.shape[axis]):
            model.reject(node, f"per-axis scale of shape {scale.shape} does not match axis {axis} of a constant "
                               f"of shape {q.shape}")
    return _QConst(q=q.astype(np.int64), dtype=q.dtype.name, scale=scale.astype(np.float32).ravel(),
                   zero_point=np.broadcast_to(zp.ravel(), scale.ravel().shape).copy() if axis is not None
                   else zp.reshape(()), axis=axis, node=node)


# Node-local checks (before anything is built) ---------------------------------------------------------------

def _check_attributes(node, model):
    op, attrs = node.op_type, _attrs(node)

    def reject(message):
        model.reject(node, message)

    def only(allowed):
        extra = sorted(set(attrs) - set(allowed))
        if extra:
            reject(f"attribute(s) {extra} are not supported (supported: {sorted(allowed)})")

    if op == "Conv":
        only({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
        if attrs.get("group", 1) != 1:
            reject(f"group={attrs['group']} (grouped or depthwise convolution) is not supported; only group=1")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            reject(f"dilations={list(attrs['dilations'])} are not supported; only dilation 1")
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
            reject(f"auto_pad={auto_pad!r} is not an ONNX value")
        pads = list(attrs.get("pads", []))
        if pads and (len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]):
            reject(f"pads={pads} are not symmetric; only [ph, pw, ph, pw] (the same padding before and after)")
        if len(node.input) < 2:
            reject("a Conv needs a weight input")
    elif op == "Gemm":
        only({"alpha", "beta", "transA", "transB"})
        if attrs.get("transA", 0) != 0:
            reject("transA=1 is not supported; only transA=0 (the activations as [N, K])")
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            reject(f"alpha={attrs.get('alpha', 1.0)}, beta={attrs.get('beta', 1.0)} are not supported; only "
                   f"alpha=beta=1 (fold the factors into the weights and bias)")
    elif op in ("MaxPool", "AveragePool"):
        only({"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides", "storage_order",
              "count_include_pad"})
        what = "exactly 2x2 pooling with stride 2, no padding, ceil_mode=0"
        if list(attrs.get("kernel_shape", [])) != [2, 2]:
            reject(f"kernel_shape={list(attrs.get('kernel_shape', []))} is not supported; only {what}")
        if list(attrs.get("strides", [1, 1])) != [2, 2]:
            reject(f"strides={list(attrs.get('strides', [1, 1]))} are not supported; only {what}")
        if any(attrs.get("pads", [0, 0, 0, 0])):
            reject(f"pads={list(attrs['pads'])} are not supported; only {what}")
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID"):
            reject(f"auto_pad={auto_pad!r} is not supported; only {what}")
        if attrs.get("ceil_mode", 0) != 0:
            reject(f"ceil_mode=1 is not supported; only {what} (floor sizes)")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            reject(f"dilations={list(attrs['dilations'])} are not supported; only {what}")
        if len(node.output) > 1 and node.output[1]:
            reject("the Indices output is not supported")
    elif op == "Flatten":
        only({"axis"})
        if attrs.get("axis", 1) != 1:
            reject(f"axis={attrs['axis']} is not supported; only axis=1 (flatten everything but the batch)")
    elif op == "Reshape":
        only({"allowzero"})
    elif op == "Dropout":
        only({"seed"})
        if len(node.input) > 2 and node.input[2]:
            value = model.constants.get(node.input[2])
            if value is None or bool(np.asarray(value)):
                reject("training_mode must be absent or a constant false (hwgen runs inference)")
        if len(node.output) > 1 and node.output[1]:
            reject("the mask output is not supported (inference has none)")
    elif op in ("Relu", "Identity", "Add", "MatMul"):
        only(set())
    elif op == "QuantizeLinear":
        only({"axis", "saturate", "block_size", "output_dtype"})
        if attrs.get("block_size", 0):
            reject("blocked quantization (block_size) is not supported")
    elif op == "DequantizeLinear":
        only({"axis", "block_size"})
        if attrs.get("block_size", 0):
            reject("blocked quantization (block_size) is not supported")


# The chain -------------------------------------------------------------------------------------------------

@dataclass
class _Op:
    kind: str          # conv, linear, bias, relu, pool, flatten, quant (a Q -> DQ pair), skip
    node: object
    data: dict


def _walk(model):
    """Follow the single data path from the graph input to the output -> `_Op` list (every node checked)."""
    graph = model.model.graph
    inputs = [i for i in graph.input if i.name not in model.constants]
    if len(inputs) != 1:
        _reject_graph(f"the model has {len(inputs)} inputs ({[i.name for i in inputs]}); hwgen imports networks "
                      f"with exactly one input")
    if len(graph.output) != 1:
        _reject_graph(f"the model has {len(graph.output)} outputs ({[o.name for o in graph.output]}); hwgen "
                      f"imports networks with exactly one output")
    output = graph.output[0].name
    tensor = inputs[0].name
    ops, visited = [], set()
    while tensor != output:
        users = model.consumers.get(tensor, [])
        if not users:
            _reject_graph(f"tensor {tensor!r} is not used by any node and is not the graph output {output!r}; "
                          f"hwgen imports a single chain from the input to the output")
        if len(users) > 1:
            for user in users:
                if user.op_type == "Add" and sum(1 for i in user.input if i and not model.is_constant(i)) > 1:
                    model.reject(user, "it adds two computed tensors (a residual connection); hwgen supports Add "
                                       "only of a constant bias right after a Conv, Gemm or MatMul")
            names = ", ".join(f"{model.label(n)} ({n.op_type})" for n in users)
            raise UnsupportedModelError(
                f"tensor {tensor!r} feeds {len(users)} nodes ({names}); branching graphs (residual "
                f"connections, multiple heads) are not supported: hwgen imports a single chain",
                node=users[1].name or None, op_type=users[1].op_type)
        node = users[0]
        visited.add(id(node))
        data_inputs = [name for name in node.input if name and not model.is_constant(name)]
        if data_inputs != [tensor]:
            if node.op_type == "Add":
                model.reject(node, "it adds two computed tensors (a residual connection); hwgen supports Add only "
                                   "of a constant bias right after a Conv, Gemm or MatMul")
            model.reject(node, f"it reads the computed tensors {data_inputs}; only its first input may be "
                               f"computed, the others must be constants")
        if node.input[0] != tensor and node.op_type != "Add":
            model.reject(node, f"its first input must be the activation, but {tensor!r} is input "
                               f"{list(node.input).index(tensor)}")
        ops.append(_op(node, tensor, model))
        extra = [o for o in node.output[1:] if o and model.consumers.get(o)]
        if extra:
            model.reject(node, f"its extra outputs {extra} are used; only the first output is supported")
        tensor = node.output[0]
    for node in model.nodes:
        if id(node) not in visited and not all(model.is_constant(o) for o in node.output if o):
            model.reject(node, "it is not on the path from the input to the output (a side branch or dead code)")
    return _pair_qdq(ops, model)


def _op(node, tensor, model):
    op = node.op_type
    if op == "Conv":
        weight = model.const(node.input[1], node, "weight")
        bias = model.const(node.input[2], node, "bias") if len(node.input) > 2 and node.input[2] else None
        shape = (weight.q if isinstance(weight, _QConst) else weight).shape
        if len(shape) != 4:
            model.reject(node, f"only 2-D convolution is supported (a 4-D weight), got a weight of shape {shape}")
        return _Op("conv", node, {"weight": weight, "bias": bias, "attrs": _attrs(node)})
    if op == "Gemm":
        attrs = _attrs(node)
        weight = model.const(node.input[1], node, "B (weight)")
        bias = model.const(node.input[2], node, "C (bias)") if len(node.input) > 2 and node.input[2] else None
        return _Op("linear", node, {"weight": weight, "bias": bias, "transposed": attrs.get("transB", 0) == 1})
    if op == "MatMul":
        weight = model.const(node.input[1], node, "right operand (weight)")
        return _Op("linear", node, {"weight": weight, "bias": None, "transposed": False})
    if op == "Add":
        other = node.input[1] if node.input[0] == tensor else node.input[0]
        return _Op("bias", node, {"value": model.const(other, node, "addend")})
    if op == "Relu":
        return _Op("relu", node, {})
    if op in ("MaxPool", "AveragePool"):
        return _Op("pool", node, {"mode": "max" if op == "MaxPool" else "avg"})
    if op == "Flatten":
        return _Op("flatten", node, {"shape": None})
    if op == "Reshape":
        if len(node.input) < 2 or not model.is_constant(node.input[1]):
            model.reject(node, "its target shape must be a constant")
        return _Op("flatten", node, {"shape": np.asarray(model.const(node.input[1], node, "shape")).ravel(),
                                     "allowzero": _attrs(node).get("allowzero", 0)})
    if op in ("Identity", "Dropout"):
        return _Op("skip", node, {})
    if op == "QuantizeLinear":
        return _Op("quantize", node, _act_qparams(node, model))
    if op == "DequantizeLinear":
        return _Op("dequantize", node, _act_qparams(node, model))
    model.reject(node, f"{op} cannot stand on the activation path; supported: {SUPPORTED}")


def _act_qparams(node, model):
    scale = _scale(node, model)
    zp, zp_type = _zero_point(node, model)
    if scale.size != 1 or zp.size != 1:
        model.reject(node, f"activations must be quantized per tensor (one scale and zero point), got a scale of "
                           f"shape {scale.shape}")
    if zp_type not in ("int8", "uint8"):
        model.reject(node, f"activations must be int8 or uint8, not {zp_type}")
    z = int(zp.reshape(()))
    return {"scale": float(np.float32(scale.reshape(()))), "zero_point": z - 128 if zp_type == "uint8" else z,
            "dtype": zp_type}


def _pair_qdq(ops, model):
    """``quantize`` followed by ``dequantize`` with the same parameters -> one ``quant`` op."""
    result, i = [], 0
    while i < len(ops):
        op = ops[i]
        if op.kind == "quantize":
            nxt = ops[i + 1] if i + 1 < len(ops) else None
            if nxt is None:       # the graph output is the quantized tensor itself
                result.append(_Op("quant", op.node, op.data))
                i += 1
                continue
            if nxt.kind != "dequantize":
                model.reject(nxt.node, f"it reads the integer output of QuantizeLinear {model.label(op.node)}; "
                                       f"only DequantizeLinear may (QDQ format)")
            if (nxt.data["scale"], nxt.data["zero_point"]) != (op.data["scale"], op.data["zero_point"]):
                model.reject(nxt.node, f"it dequantizes with scale {nxt.data['scale']} and zero point "
                                       f"{nxt.data['zero_point']}, but its QuantizeLinear {model.label(op.node)} "
                                       f"used {op.data['scale']} and {op.data['zero_point']}")
            result.append(_Op("quant", op.node, op.data))
            i += 2
        elif op.kind == "dequantize":
            model.reject(op.node, "it dequantizes a tensor that no QuantizeLinear produced (an integer graph input "
                                  "is not supported; the input must be float)")
        else:
            result.append(op)
            i += 1
    return [op for op in result if op.kind != "skip"]


# Building layers ---------------------------------------------------------------------------------------------

def _input_layout(model):
    graph = model.model.graph
    info = next(i for i in graph.input if i.name not in model.constants)
    tensor_type = info.type.tensor_type
    onnx = _onnx()
    if tensor_type.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        _reject_graph(f"the model input {info.name!r} has element type "
                      f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; hwgen imports float inputs")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if len(dims) not in (2, 4):
        _reject_graph(f"the model input {info.name!r} has shape {dims}; hwgen imports [N, C, H, W] or [N, K] "
                      f"inputs")
    if dims[0] not in (None, 1):
        _reject_graph(f"the model input {info.name!r} has a fixed batch of {dims[0]}; export it with batch 1 or a "
                      f"symbolic batch axis (hwgen runs a batch as a sequence of samples)")
    if any(d is None or d <= 0 for d in dims[1:]):
        _reject_graph(f"the model input {info.name!r} has shape {dims}; every axis but the batch must be fixed")
    return info.name, tuple(dims[1:])


class _Builder:
    """Turns the `_Op` chain into layers, tracking the activation shape (and, for QDQ, its quantization)."""

    def __init__(self, model, layout, qdq):
        self.model, self.qdq = model, qdq
        self.shape = (layout[0], 1, 1) if len(layout) == 1 else tuple(layout)
        self.flat = len(layout) == 1
        self.flatten_from = None
        self.layers = []          # dicts
        self.counts = {"conv2d": 0, "linear": 0}
        self.cur_q = None         # QDQ: the quantization of the current tensor (None: float)
        self.input_q = None
        self.input_tensor = None  # QDQ: the integer tensor of the quantized input

    @property
    def layer(self):
        return self.layers[-1] if self.layers else None

    def reject(self, op, message):
        self.model.reject(op.node, message)

    def run(self, ops):
        for op in ops:
            getattr(self, "op_" + op.kind)(op)
        if not self.layers:
            _reject_graph("the model has no Conv, Gemm or MatMul; there is nothing to map onto the hardware")
        if self.qdq:
            last = self.layer
            if last["out_q"] is None:
                self.reject(last["ops"][0], "the output of this layer is not quantized (no QuantizeLinear after "
                                            "it); a QDQ model must quantize every layer's output")
        return self.layers

    def _start(self, op, kind):
        if self.layer is not None and self.qdq and self.layer["out_q"] is None:
            self.reject(op, f"its input, the output of {self.model.label(self.layer['ops'][0].node)}, is not quantized "
                            f"(no QuantizeLinear/DequantizeLinear pair between them)")
        if self.qdq and self.cur_q is None:
            self.reject(op, "its input is not quantized (no QuantizeLinear/DequantizeLinear pair before it)")
        self.counts[kind] += 1
        layer = {"kind": kind, "name": f"{'conv' if kind == 'conv2d' else 'fc'}{self.counts[kind]}",
                 "ops": [op], "stage": "compute", "relu": False, "pool": "none", "in_q": self.cur_q,
                 "out_q": None}
        self.layers.append(layer)
        self.cur_q = None
        return layer

    def op_conv(self, op):
        if self.flat:
            self.reject(op, f"a Conv needs a [N, C, H, W] input, but its input is flat ({self.shape[0]} values)")
        weight, bias = op.data["weight"], op.data["bias"]
        w_shape = (weight.q if isinstance(weight, _QConst) else weight).shape
        C, H, W = self.shape
        M, Cw, R, S = w_shape
        if Cw != C:
            self.reject(op, f"its weight reads {Cw} channels but the input has {C}")
        attrs = op.data["attrs"]
        if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != [R, S]:
            self.reject(op, f"kernel_shape={list(attrs['kernel_shape'])} differs from the weight's {R}x{S}")
        sh, sw = (list(attrs.get("strides", [1, 1])) + [1, 1])[:2]
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad == "VALID":
            ph = pw = 0
        elif auto_pad.startswith("SAME"):
            pads = []
            for size, k, s in ((H, R, sh), (W, S, sw)):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                if total % 2:
                    self.reject(op, f"auto_pad={auto_pad} pads {total} in total along an axis of {size} (kernel {k}, "
                                    f"stride {s}): asymmetric padding is not supported; pad explicitly and "
                                    f"symmetrically")
                pads.append(total // 2)
            ph, pw = pads
        else:
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            ph, pw = pads[0], pads[1]
        E, F = conv_out_size(H, R, sh, ph), conv_out_size(W, S, sw, pw)
        if E < 1 or F < 1:
            self.reject(op, f"a {R}x{S} kernel does not fit the {H}x{W} input padded by ({ph}, {pw})")
        layer = self._start(op, "conv2d")
        layer.update(weight=weight, bias=bias, in_shape=(C, H, W), stride=(sh, sw), pad=(ph, pw),
                     flatten_from=None)
        self.shape = (M, E, F)
        self.check_shape(op)

    def op_linear(self, op):
        weight = op.data["weight"]
        w = weight.q if isinstance(weight, _QConst) else weight
        if w.ndim != 2:
            self.reject(op, f"the weight must be a matrix, got shape {w.shape}")
        if not self.flat:
            self.reject(op, f"a fully connected layer needs a flat [N, K] input, but its input is "
                            f"{'x'.join(map(str, self.shape))}; insert a Flatten")
        K = self.shape[0]
        M, Kw = w.shape if op.data["transposed"] else w.shape[::-1]
        if Kw != K:
            self.reject(op, f"its weight reads {Kw} features but the input has {K}")
        layer = self._start(op, "linear")
        layer.update(weight=weight, bias=op.data["bias"], in_shape=(K, 1, 1), stride=(1, 1), pad=(0, 0),
                     transposed=op.data["transposed"], flatten_from=self.flatten_from)
        self.flatten_from = None
        self.shape = (M, 1, 1)
        self.check_shape(op)

    def op_bias(self, op):
        layer = self.layer
        if layer is None or layer["stage"] != "compute" or layer["ops"][-1].kind not in ("conv", "linear", "bias"):
            self.reject(op, "Add of a constant is supported only as the bias right after a Conv, Gemm or MatMul")
        value = op.data["value"]
        M = self.shape[0]
        arr = value.q if isinstance(value, _QConst) else np.asarray(value)
        ok_shapes = {(M,), (1, M)} if layer["kind"] == "linear" else {(M, 1, 1), (1, M, 1, 1)}
        if arr.shape not in ok_shapes:
            self.reject(op, f"the constant of shape {arr.shape} is not a per-channel bias of the {M} outputs "
                            f"(expected one of {sorted(ok_shapes)})")
        layer.setdefault("extra_bias", []).append((value if isinstance(value, _QConst) else arr.reshape(M), op))
        layer["ops"].append(op)
        self.check_shape(op)

    def op_relu(self, op):
        layer = self.layer
        if layer is None:
            self.reject(op, "a Relu must follow a Conv, Gemm or MatMul (or its pooling)")
        if layer["pool"] == "avg":
            self.reject(op, "a Relu after an AveragePool is not supported (it does not commute with averaging); "
                            "put the Relu before the pooling")
        layer["relu"] = True      # on a quantized tensor (QDQ): max(q, zero point), exact
        layer["ops"].append(op)
        self.check_shape(op)

    def op_pool(self, op):
        layer = self.layer
        mode = op.data["mode"]
        if layer is None or layer["kind"] != "conv2d" or self.flat:
            self.reject(op, "pooling is supported only right after a Conv (and its Relu)")
        if layer["pool"] != "none":
            self.reject(op, f"the layer is already pooled by {self.model.label(layer['pool_node'])}; only one 2x2 "
                            f"pooling per Conv")
        M, E, F = self.shape
        if E < 2 or F < 2:
            self.reject(op, f"2x2 pooling needs at least a 2x2 input, got {E}x{F}")
        if self.qdq and mode == "avg":
            if self.cur_q is None:
                self.reject(op, "an AveragePool before its layer's QuantizeLinear is not supported: hwgen averages "
                                "the requantized int8 values")
            self.reject(op, "average pooling in a QDQ model rounds the average half to even (its QuantizeLinear), "
                            "hwgen's pooling rounds it half up (round_shift(sum, 2)): one value in eight differs "
                            "by one and the difference grows in the layers after it, so hwgen cannot run this "
                            "model bit for bit; use MaxPool, or import the float model and quantize it with "
                            "hwgen.compiler.quantize")
        layer["pool"] = mode
        layer["pool_node"] = op.node
        layer["ops"].append(op)
        self.shape = (M, E // 2, F // 2)
        self.check_shape(op)

    def op_flatten(self, op):
        shape = op.data["shape"]
        C, H, W = self.shape
        total = C * H * W
        if shape is not None:
            s = [int(v) for v in shape]
            zero_ok = not op.data["allowzero"]
            ok = len(s) == 2 and (s[0] in (1, -1) or (s[0] == 0 and zero_ok)) and s[1] in (-1, total) and \
                not (s[0] == -1 and s[1] == -1)
            if not ok:
                self.reject(op, f"Reshape to {s} is not supported; only a flattening Reshape to [N, -1] "
                                f"(here [1, {total}] or [-1, {total}] or [0, -1])")
        if not self.flat:
            self.flatten_from = self.shape
            self.flat = True
            self.shape = (total, 1, 1)
        if self.layer is not None:
            self.layer["ops"].append(op)
        self.check_shape(op)

    def op_quant(self, op):
        q = (op.data["scale"], op.data["zero_point"])
        layer = self.layer
        if layer is None:
            if self.input_q is not None and self.input_q != q:
                self.reject(op, f"it requantizes the network input from {self.input_q} to {q}; the input is "
                                f"quantized once")
            self.input_q = self.cur_q = q
            self.input_tensor = op.node.output[0]
        elif layer["stage"] == "compute":
            layer["out_q"] = self.cur_q = q
            layer["stage"] = "quantized"
            layer["ops"].append(op)
        else:
            if q != self.cur_q:
                after = self.model.label(layer["ops"][-1].node)
                self.reject(op, f"it requantizes the output of layer {layer['name']} from scale {self.cur_q[0]}, "
                                f"zero point {self.cur_q[1]} to scale {q[0]}, zero point {q[1]} after "
                                f"{after} ({layer['ops'][-1].node.op_type}); hwgen requantizes once per layer, so "
                                f"the ops after a layer's QuantizeLinear must keep its scale and zero point")
            layer["ops"].append(op)

    def check_shape(self, op):
        """Cross-check against ONNX shape inference where it knows the shape."""
        inferred = self.model.shapes.get(op.node.output[0])
        if inferred is None or None in inferred[1:]:
            return
        ours = (self.shape[0],) if self.flat else self.shape
        if tuple(inferred[1:]) != ours:
            self.reject(op, f"ONNX shape inference gives {list(inferred)} but hwgen computes [N, "
                            f"{', '.join(map(str, ours))}]")


def _real(value):
    """A float constant, or the dequantized value of a `_QConst` (a float model may hold DequantizeLinear'd
    constants: weight-only quantization is still a float model)."""
    return value.real if isinstance(value, _QConst) else np.asarray(value, dtype=np.float64)


def _float_weight(layer):
    w = _real(layer["weight"])
    if layer["kind"] == "linear":
        w = w if layer["transposed"] else w.T
        w = w.reshape(w.shape + (1, 1))
    return w


def _build_float(name, layers, layout, input_name, output_name, model):
    result = []
    for layer in layers:
        weight = _float_weight(layer)
        M = weight.shape[0]
        bias = np.zeros(M)
        if layer["bias"] is not None:
            b = _real(layer["bias"])
            if b.size not in (1, M):
                model.reject(layer["ops"][0].node, f"its bias of shape {b.shape} does not give one value per "
                                                   f"output ({M})")
            bias = bias + np.broadcast_to(b.ravel(), (M,))
        for value, _ in layer.get("extra_bias", []):
            bias = bias + _real(value).reshape(M)
        result.append(FloatLayer(name=layer["name"], kind=layer["kind"], weight=weight, bias=bias,
                                 in_shape=layer["in_shape"], stride=layer["stride"], pad=layer["pad"],
                                 relu=layer["relu"], pool=layer["pool"], flatten_from=layer["flatten_from"],
                                 source=tuple(op.node.name for op in layer["ops"])))
    outputs = {layer["name"]: layer["ops"][-1].node.output[0] for layer in layers}
    return FloatNetwork(name=name, layers=tuple(result), input_layout=layout, input_name=input_name,
                        output_name=output_name, metadata={"source": "onnx", "onnx_outputs": outputs})


def _qdq_weight(layer, model):
    node = layer["ops"][0].node
    weight = layer["weight"]
    if not isinstance(weight, _QConst):
        model.reject(node, "its weight is float in a quantized (QDQ) model; quantize the weights too "
                           "(DequantizeLinear of an int8 constant)")
    if weight.dtype != "int8":
        model.reject(node, f"its weight is {weight.dtype}; hwgen's weights are int8 (quantize with "
                           f"weight_type=QuantType.QInt8)")
    if np.any(weight.zero_point != 0):
        model.reject(node, "its weight has a nonzero zero point; hwgen's weights are symmetric (zero point 0)")
    q = weight.q
    m_axis = 0
    if layer["kind"] == "linear":
        m_axis = 0 if layer["transposed"] else 1
        q = q if layer["transposed"] else q.T
        q = q.reshape(q.shape + (1, 1))
    M = q.shape[0]
    if weight.axis is None:
        scale = np.full(M, float(weight.scale.reshape(-1)[0]))
    elif weight.axis == m_axis:
        scale = weight.scale.astype(np.float64)
    else:
        model.reject(node, f"its weight is quantized per axis {weight.axis}; hwgen needs per output channel "
                           f"(axis {m_axis} here) or per tensor")
    return q, scale


def _qdq_bias(value, in_scale, w_scale, node, model, what="bias"):
    if not isinstance(value, _QConst):
        model.reject(node, f"its {what} is float in a quantized (QDQ) model; hwgen adds an int32 bias "
                           f"(DequantizeLinear of int32 with scale in_scale * weight_scale)")
    M = len(w_scale)
    if value.dtype != "int32" or np.any(value.zero_point != 0):
        model.reject(node, f"its {what} must be int32 with zero point 0, got {value.dtype}")
    q = value.q.reshape(-1)
    if q.size not in (1, M):
        model.reject(node, f"its {what} of shape {value.q.shape} does not give one value per output ({M})")
    scale = np.broadcast_to(value.scale.astype(np.float64).reshape(-1), (M,))
    expected = np.float32(in_scale) * w_scale.astype(np.float32)
    if not np.allclose(scale, expected, rtol=1e-6, atol=0):
        m = int(np.argmax(np.abs(scale / expected - 1)))
        model.reject(node, f"its {what} scale {scale[m]!r} (channel {m}) is not in_scale * weight_scale = "
                           f"{float(expected[m])!r}; hwgen adds the int32 bias to the accumulator unscaled")
    return np.broadcast_to(q, (M,)).astype(np.int64)


def _build_qdq(name, layers, layout, input_q, input_name, input_tensor, model):
    result = []
    for layer in layers:
        node = layer["ops"][0].node
        in_scale, in_zp = layer["in_q"]
        out_scale, out_zp = layer["out_q"]
        q, w_scale = _qdq_weight(layer, model)
        bias = np.zeros(len(w_scale), dtype=np.int64)
        if layer["bias"] is not None:
            bias += _qdq_bias(layer["bias"], in_scale, w_scale, node, model)
        for value, op in layer.get("extra_bias", []):
            bias += _qdq_bias(value, in_scale, w_scale, op.node, model, what="added bias")
        if bias.size and (bias.min() < -2**31 or bias.max() > 2**31 - 1):
            model.reject(node, "its bias (with the added biases) is outside int32")
        try:
            result.append(QLayer.from_quantized(
                name=layer["name"], kind=layer["kind"], in_shape=layer["in_shape"], weight=q, weight_scale=w_scale,
                bias=bias, in_scale=in_scale, in_zero_point=in_zp, out_scale=out_scale, out_zero_point=out_zp,
                relu=layer["relu"], pool=layer["pool"], stride=layer["stride"], pad=layer["pad"],
                flatten_from=layer["flatten_from"], source=tuple(op.node.name for op in layer["ops"])))
        except ValueError as error:
            model.reject(node, str(error))
    # The integer tensor each layer's output is (its last QuantizeLinear), for comparing with onnxruntime.
    outputs = {layer["name"]: [op for op in layer["ops"] if op.kind == "quant"][-1].node.output[0]
               for layer in layers}
    return QuantizedNetwork(name=name, layers=tuple(result), input_layout=layout, in_scale=input_q[0],
                            in_zero_point=input_q[1], metadata={"source": "onnx-qdq", "onnx_input": input_name,
                                                                "onnx_input_int": input_tensor,
                                                                "onnx_outputs": outputs})


def is_qdq(model):
    """Whether an ONNX ``ModelProto`` holds QuantizeLinear/DequantizeLinear nodes (a QDQ-format model)."""
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node)


def _load(model):
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}")
        return onnx.load(str(path))
    raise TypeError(f"import_onnx takes an onnx.ModelProto, the bytes of one or the path of a .onnx file, not "
                    f"{type(model).__name__}")


def import_onnx(model, *, name=None):
    """Import an ONNX model (``ModelProto``, serialized bytes, or a ``.onnx`` path) into hwgen's IR.

    A float model gives a `FloatNetwork` (quantize it with `hwgen.compiler.quantize`); a QDQ model (QuantizeLinear/
    DequantizeLinear pairs) gives a `QuantizedNetwork` keeping the model's own integers, scales and zero points.
    Raises `UnsupportedModelError` naming the node, its op type and what is supported, for anything hwgen cannot
    map exactly (see the module docstring); every check runs before anything is built.
    """
    onnx = _onnx()
    proto = _load(model)
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"name must be a non-empty string, not {name!r}")
    name = name or proto.graph.name or "network"
    # 1. Op types and domains, every node, first.
    for i, node in enumerate(proto.graph.node):
        if node.domain not in ("", "ai.onnx"):
            _reject(node, f"ops of domain {node.domain!r} are not supported (a QOperator-format model? quantize "
                          f"with quant_format=QuantFormat.QDQ); supported: {SUPPORTED}", i)
        if node.op_type not in SUPPORTED_OPS:
            _reject(node, f"op {node.op_type} is not supported; supported: {SUPPORTED}", i)
    # 2. Attributes, node by node.
    m = _Model(proto)
    for node in m.nodes:
        _check_attributes(node, m)
    input_name, layout = _input_layout(m)
    # 3. Shapes (ONNX shape inference; a malformed graph stops here).
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except Exception as error:     # onnx raises InferenceError / ValidationError / RuntimeError by version
        raise UnsupportedModelError(f"ONNX shape inference failed on this model (it is malformed): "
                                    f"{error}") from None
    m.add_shapes(inferred.graph)
    # 4. The chain and the layers.
    ops = _walk(m)
    qdq = any(op.kind == "quant" for op in ops)
    if qdq:
        first = next(op for op in ops if op.kind in ("conv", "linear", "quant"))
        if first.kind != "quant":
            m.reject(first.node, "its input is not quantized, but the model is a QDQ model; quantize the input "
                                 "(QuantizeLinear/DequantizeLinear right after it)")
    builder = _Builder(m, layout, qdq)
    layers = builder.run(ops)
    output_name = proto.graph.output[0].name
    if qdq:
        return _build_qdq(name, layers, layout, builder.input_q, input_name, builder.input_tensor, m)
    return _build_float(name, layers, layout, input_name, output_name, m)
