"""The independent oracle: onnxruntime's own int8 quantization and execution, against hwgen's integer network.

`quantize_static_qdq` quantizes a float ONNX model with ``onnxruntime.quantization.quantize_static`` (QDQ format,
int8 weights per output channel, calibration on user data); `import_onnx` turns that QDQ model into a
`QuantizedNetwork` with the model's own integers, scales and zero points; `compare_with_onnxruntime` runs the QDQ
model in onnxruntime, with every layer's QuantizeLinear output exposed as a graph output, and compares each
int8 tensor and the top-1 with hwgen's `QuantizedNetwork.forward_int`.

Where the two round differently, and why they may differ by one LSB:

* **Requantization.** hwgen computes ``round_shift((acc + bias) * multiplier, shift)`` with a 31-bit fixed-point
  multiplier (``quantize_multiplier(in_scale * weight_scale / out_scale)``, scale error below 2**-31 relative) and
  rounds half toward +infinity. onnxruntime (QLinearConv / QGemm after its QDQ fusion, or float Conv followed by
  QuantizeLinear) scales in float32 (``acc * scale``, 24-bit mantissa) and rounds half to even. A value within
  float32 rounding of a half-way point, or exactly on one, can come out one apart.
* **Average pooling** would differ often (hwgen's ``round_shift(sum, 2)`` rounds half up, a QDQ model's
  QuantizeLinear half to even, and a quarter of all sums are ties), so `import_onnx` rejects AveragePool in QDQ
  models; MaxPool commutes with quantization and is exact.
* **Input.** Both quantize the input the same way (float32 ``x / scale``, round half to even), so the input
  tensors are equal.

A one-LSB difference in one layer can grow in the next (it is an input there); the check therefore asks for the
same top-1 on every input and at least 99 % of every layer's int8 values within one LSB.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .network import QuantizedNetwork

__all__ = ["quantize_static_qdq", "expose_layer_outputs", "run_onnxruntime", "compare_with_onnxruntime",
           "Agreement"]


def _ort():
    try:
        import onnxruntime
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise ImportError("the onnxruntime oracle needs onnxruntime: pip install 'hwgen[onnx]'") from None
    return onnxruntime


def _input_name(model):
    initializers = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def quantize_static_qdq(float_model, calibration_data, *, activation_type="int8", per_channel=True,
                        batch_size=64):
    """``onnxruntime.quantization.quantize_static`` on a float ``onnx.ModelProto`` -> the QDQ ``ModelProto``.

    ``activation_type`` ``"int8"`` (QInt8) or ``"uint8"`` (QUInt8); weights QInt8, per output channel unless
    ``per_channel=False``; MinMax calibration on ``calibration_data`` ``[N, ...]`` (the model's input layout).
    The float model is copied (quantize_static modifies its argument).
    """
    ort = _ort()
    import onnx
    from onnxruntime import quantization as q
    types = {"int8": q.QuantType.QInt8, "uint8": q.QuantType.QUInt8}
    if activation_type not in types:
        raise ValueError(f"activation_type must be one of {sorted(types)}, not {activation_type!r}")
    data = np.ascontiguousarray(calibration_data, dtype=np.float32)
    name = _input_name(float_model)

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: data[i:i + 1]} for i in range(len(data))]) if batch_size == 1 else \
                iter([{name: data[i:i + batch_size]} for i in range(0, len(data), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    copy = onnx.ModelProto()
    copy.CopyFrom(float_model)
    del ort
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "qdq.onnx"
        q.quantize_static(copy, str(out), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                          activation_type=types[activation_type], weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax)
        return onnx.load(str(out))


def expose_layer_outputs(model, tensor_names):
    """A copy of ``model`` with ``tensor_names`` added as graph outputs (to read intermediate tensors)."""
    import onnx
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    inferred = onnx.shape_inference.infer_shapes(copy)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    present = {o.name for o in copy.graph.output}
    for tensor in tensor_names:
        if tensor not in present:
            if tensor not in types:
                raise ValueError(f"tensor {tensor!r} is not in the model")
            copy.graph.output.append(onnx.helper.make_tensor_value_info(tensor, types[tensor], None))
            present.add(tensor)
    return copy


def run_onnxruntime(model, x, outputs=None):
    """Run ``model`` on ``x`` with onnxruntime's CPU provider -> ``{output name: array}`` (one thread)."""
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3      # errors only (not the advice about unused initializers)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})
    return dict(zip(names, values))


@dataclass
class Agreement:
    """hwgen's integer network vs onnxruntime on the same inputs: per tensor (the quantized input, then each
    layer's output), how many int8 values are equal and how many within one LSB, the largest difference; and the
    top-1 of each."""
    layers: list = field(default_factory=list)    # (name, total, equal, within_1, max_diff)
    hwgen_predictions: np.ndarray = None
    ort_predictions: np.ndarray = None

    @property
    def same_top1(self):
        return int(np.sum(self.hwgen_predictions == self.ort_predictions))

    @property
    def inputs(self):
        return len(self.hwgen_predictions)

    @property
    def all_same_top1(self):
        return self.same_top1 == self.inputs

    def within_one(self, layer=None):
        """Fraction of int8 values within one LSB (one layer, or all layers together)."""
        rows = [r for r in self.layers if layer is None or r[0] == layer]
        return sum(r[3] for r in rows) / sum(r[1] for r in rows)

    def __str__(self):
        lines = [f"hwgen integer network vs onnxruntime (QDQ) on {self.inputs} inputs: same top-1 on "
                 f"{self.same_top1}/{self.inputs}"]
        width = max(len(r[0]) for r in self.layers)
        digits = max(len(str(r[1])) for r in self.layers)
        for name, total, equal, within, worst in self.layers:
            lines.append(f"  {name:<{width}}  equal {equal:>{digits}}/{total:<{digits}} ({100 * equal / total:8.4f} %)"
                         f"  within 1 LSB {within:>{digits}}/{total:<{digits}} ({100 * within / total:8.4f} %)"
                         f"  max |diff| {worst}")
        return "\n".join(lines)


def compare_with_onnxruntime(network, qdq_model, x):
    """Run ``qdq_model`` in onnxruntime and ``network`` (imported from it by `import_onnx`) on float inputs
    ``x[N, ...]``; compare the quantized input, every layer's int8 output (uint8 tensors shifted by -128) and the
    top-1."""
    if not isinstance(network, QuantizedNetwork) or "onnx_outputs" not in network.metadata:
        raise TypeError("compare_with_onnxruntime takes the QuantizedNetwork import_onnx made from the QDQ model")
    x = np.asarray(x, dtype=np.float32)
    tensors = network.metadata["onnx_outputs"]
    names = [network.metadata["onnx_input_int"]] + [tensors[layer.name] for layer in network.layers]
    ort_out = run_onnxruntime(expose_layer_outputs(qdq_model, names), x, outputs=names)
    shapes = [network.input_layout] + [layer.out_shape for layer in network.layers]
    ort_layers = []
    for shape, tensor in zip(shapes, names):
        value = ort_out[tensor].astype(np.int64)
        if ort_out[tensor].dtype == np.uint8:
            value = value - 128
        ort_layers.append(value.reshape((len(x),) + tuple(shape)))
    x_int = network.quantize_input(x)
    hw_layers = [list(x_int)] + [[] for _ in network.layers]
    for sample in x_int:
        for i, out in enumerate(network.forward_int(sample)):
            hw_layers[i + 1].append(out)
    agreement = Agreement()
    for name, ours, theirs in zip(["input"] + [layer.name for layer in network.layers], hw_layers, ort_layers):
        diff = np.abs(np.stack(ours) - theirs)
        agreement.layers.append((name, int(diff.size), int(np.sum(diff == 0)), int(np.sum(diff <= 1)),
                                 int(diff.max(initial=0))))
    agreement.hwgen_predictions = np.argmax(np.stack(hw_layers[-1]).reshape(len(x), -1), axis=1)
    agreement.ort_predictions = np.argmax(ort_layers[-1].reshape(len(x), -1), axis=1)
    return agreement
