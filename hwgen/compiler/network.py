"""The quantized network and its integer reference: what the quantize step leaves, and the oracle of a whole run.

A `QuantizedNetwork` is a chain of `QLayer`s. Every tensor between layers is int8 with a per-tensor scale and
zero point, ``real = scale * (q - zero_point)``; weights are int8, symmetric (zero point 0), per output channel
``real = weight_scale[m] * w``. One layer, on the int8 tensor ``x`` it reads (canonical ``[C, H, W]``; a linear
layer reads the previous output flattened in ``(C, H, W)`` order as ``[K, 1, 1]``)::

    acc = hwgen.reference.conv2d(x, weight, stride, padding, pad_value=in_zero_point)   # int32, exact
    out = hwgen.postops.apply(acc, params, postops)                                    # int8 [M, E', F']

and nothing else: `forward_int` is these two calls layer after layer, so the integer semantics are defined once,
in `hwgen.reference` and `hwgen.postops` (see that module's docstring). Padding reads the input's zero point
(the encoding of a real 0). The input zero point is folded into the bias, so the accumulator plus bias is
``sum w * (x - z_in) + bias``::

    params.bias[m] = round(b[m] / (in_scale * weight_scale[m])) - in_zero_point * sum(weight[m])
    params.multiplier[m], params.shift[m] = quantize_multiplier(in_scale * weight_scale[m] / out_scale)
    postops = PostOps(bias=True, requant=True, relu=..., pool=..., zero_point=out_zero_point)

A uint8 tensor with zero point ``z`` is the int8 tensor ``q - 128`` with zero point ``z - 128`` (exactly the same
reals); the importer converts, so activations are int8 throughout.

The network input is quantized like ONNX ``QuantizeLinear``: ``q = saturate(rint(x / scale) + zero_point)``
with ``x / scale`` computed in float32 and ``rint`` rounding half to even (`quantize_input`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import reference
from ..dtypes import IntType, int4, int8, int32
from ..postops import PostOps, QuantParams, apply as apply_postops, quantize_multiplier
from ..problem import ConvProblem
from .graph import _batch, _check_chain, _dims, _pair, _read_doc, _shape, format_table, layer_nest
from .graph import NetworkShapes, layer_problem

__all__ = ["QLayer", "QuantizedNetwork", "quantize_tensor", "ACT_TYPE"]

ACT_TYPE = int8       # every activation tensor between layers
WEIGHT_TYPE = int8
# A layer's weight precision: int8, or (fully connected layers) int4 or int2, packed 8 // bits to a byte on the
# matrix-vector engine (`hwgen.spec.PACKED_WEIGHT_BITS`).
WEIGHT_TYPES = {8: int8, 4: int4, 2: IntType(2)}


def check_weight_bits(bits, name, kind, *, error=ValueError):
    """A layer's ``weight_bits``: 8, or 4 or 2 for a fully connected layer (int4/int2 weights run packed two/four
    to a byte on the matrix-vector engine, which takes fully connected layers only). Raises ``error``."""
    if isinstance(bits, bool) or bits not in WEIGHT_TYPES:
        raise error(f"{name}: weight_bits must be 8, 4 or 2, not {bits!r}")
    if bits != 8 and kind != "linear":
        raise error(f"{name}: int{bits} weights run packed on the matrix-vector engine, which takes fully "
                    f"connected layers only; keep this {kind} layer at 8 bits (e.g. weight_bits={{'linear': "
                    f"{bits}}}, hwgen compile --weight-bits linear={bits})")
    return bits


def _as_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    return int(value)


def _as_scale(value, what):
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a positive float, not {value!r}") from None
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"{what} must be a positive finite float, not {value!r}")
    return scale


def quantize_tensor(x, scale, zero_point, *, dtype=ACT_TYPE):
    """ONNX ``QuantizeLinear`` onto int8: ``saturate(rint(float32(x) / float32(scale)) + zero_point)`` -> int64.

    The division is done in float32 and ``rint`` rounds half to even, as onnxruntime does, so a network imported
    from a QDQ model quantizes its input to the same integers onnxruntime does.
    """
    x = np.asarray(x, dtype=np.float32)
    q = np.rint(x / np.float32(scale)).astype(np.int64) + int(zero_point)
    return np.clip(q, dtype.min, dtype.max)


@dataclass(frozen=True, eq=False, kw_only=True)
class QLayer:
    """One integer layer: the canonical ``problem`` (batch 1), int8 ``weight[M, C, R, S]`` (linear
    ``[M, K, 1, 1]``), the post-op ``params``/``postops``, and the quantization of its input and output.

    ``in_zero_point`` is the input's zero point (the padding value), ``postops.zero_point`` the output's;
    ``in_scale``, ``out_scale`` and ``weight_scale[M]`` the float scales (for reporting and dequantizing; the
    integer semantics never read them). ``flatten_from`` (linear only): the ``(C, H, W)`` of the previous tensor
    that this layer reads flattened in ``(C, H, W)`` order (the hardware stores it in another order; the back end
    permutes the weight columns, this layer does not). ``source``: the model nodes folded into the layer.
    """
    name: str
    kind: str
    problem: ConvProblem
    weight: np.ndarray
    params: QuantParams
    postops: PostOps
    in_zero_point: int
    in_scale: float
    out_scale: float
    weight_scale: np.ndarray
    flatten_from: tuple | None = None
    source: tuple = ()
    weight_bits: int = 8

    def __post_init__(self):
        name = self.name
        if not isinstance(self.problem, ConvProblem):
            raise TypeError(f"{name}: problem must be a hwgen ConvProblem, not {self.problem!r}")
        p = self.problem
        if p.name != name or p.kind != self.kind:
            raise ValueError(f"{name}: the problem is {p.name!r} ({p.kind}), not this {self.kind} layer")
        weight = np.asarray(self.weight)
        if weight.dtype.kind not in "iu":
            raise TypeError(f"{name}: weight must hold integers, not {weight.dtype}")
        weight = weight.astype(np.int64)
        if weight.shape != p.weight_canonical_shape:
            raise ValueError(f"{name}: weight has shape {weight.shape}, the problem needs {p.weight_canonical_shape}")
        bits = check_weight_bits(self.weight_bits, name, self.kind)
        wtype = WEIGHT_TYPES[bits]
        if weight.size and (weight.min() < wtype.min or weight.max() > wtype.max):
            raise ValueError(f"{name}: weights must be {wtype} ({wtype.min}..{wtype.max}), found "
                             f"{int(weight.min())}..{int(weight.max())}")
        object.__setattr__(self, "weight", weight)
        if not isinstance(self.postops, PostOps):
            raise TypeError(f"{name}: postops must be a PostOps, not {self.postops!r}")
        if not (self.postops.bias and self.postops.requant and self.postops.out_type == ACT_TYPE):
            raise ValueError(f"{name}: a quantized layer adds its bias and requantizes to {ACT_TYPE}, got "
                             f"{self.postops}")
        if self.postops.pool != "none" and self.kind != "conv2d":
            raise ValueError(f"{name}: only a conv layer pools")
        if not isinstance(self.params, QuantParams):
            raise TypeError(f"{name}: params must be a QuantParams, not {self.params!r}")
        self.params.check(self.postops, p.M)
        zp = _as_int(self.in_zero_point, f"{name}: in_zero_point")
        if not ACT_TYPE.contains(zp):
            raise ValueError(f"{name}: in_zero_point {zp} is outside {ACT_TYPE}")
        object.__setattr__(self, "in_zero_point", zp)
        object.__setattr__(self, "in_scale", _as_scale(self.in_scale, f"{name}: in_scale"))
        object.__setattr__(self, "out_scale", _as_scale(self.out_scale, f"{name}: out_scale"))
        wscale = np.asarray(self.weight_scale, dtype=np.float64)
        if wscale.shape != (p.M,) or not np.all(np.isfinite(wscale)) or np.any(wscale <= 0):
            raise ValueError(f"{name}: weight_scale must hold {p.M} positive finite floats")
        object.__setattr__(self, "weight_scale", wscale)
        if self.flatten_from is not None:
            if self.kind != "linear":
                raise ValueError(f"{name}: only a linear layer flattens its input")
            flat = _shape(self.flatten_from, "flatten_from", name)
            if flat[0] * flat[1] * flat[2] != p.C:
                raise ValueError(f"{name}: flatten_from {flat} does not hold K={p.C} values")
            object.__setattr__(self, "flatten_from", flat)
        object.__setattr__(self, "source", tuple(str(s) for s in self.source))

    @classmethod
    def from_quantized(cls, *, name, kind, in_shape, weight, weight_scale, bias, in_scale, in_zero_point,
                       out_scale, out_zero_point, relu=False, pool="none", stride=(1, 1), pad=(0, 0),
                       flatten_from=None, source=(), weight_bits=8):
        """Build a layer from its quantized operands, folding the input zero point into the bias.

        ``weight`` int8 ``[M, C, R, S]`` (symmetric, zero point 0), ``weight_scale[M]`` (or a scalar),
        ``bias`` the int32 ``round(b / (in_scale * weight_scale[m]))`` (None: no bias),
        ``in_shape`` ``(C, H, W)`` (linear ``(K, 1, 1)``). The folded bias is ``bias - in_zero_point *
        sum(weight[m])`` and the multiplier/shift ``quantize_multiplier(in_scale * weight_scale[m] / out_scale)``
        (float64 arithmetic); either out of range raises `ValueError` naming the layer.
        """
        weight = np.asarray(weight)
        if weight.dtype.kind not in "iu":
            raise TypeError(f"{name}: weight must hold integers, not {weight.dtype}")
        weight = weight.astype(np.int64)
        if weight.ndim != 4:
            raise ValueError(f"{name}: weight must be [M, C, R, S], got shape {weight.shape}")
        M = weight.shape[0]
        in_shape = _shape(in_shape, "in_shape", name)
        stride, pad = _pair(stride, "stride", name, 1), _pair(pad, "pad", name, 0)
        problem = layer_problem(name=name, kind=kind, in_shape=in_shape, out_channels=M,
                                kernel=weight.shape[2:], stride=stride, pad=pad)
        wscale = np.broadcast_to(np.asarray(weight_scale, dtype=np.float64), (M,)).copy()
        in_scale = _as_scale(in_scale, f"{name}: in_scale")
        out_scale = _as_scale(out_scale, f"{name}: out_scale")
        in_zero_point = _as_int(in_zero_point, f"{name}: in_zero_point")
        out_zero_point = _as_int(out_zero_point, f"{name}: out_zero_point")
        bias = np.zeros(M, dtype=np.int64) if bias is None else np.asarray(bias)
        if bias.dtype.kind not in "iu" or bias.shape != (M,):
            raise ValueError(f"{name}: bias must be {M} integers, not {bias.dtype} of shape {bias.shape}")
        folded = bias.astype(np.int64) - in_zero_point * weight.reshape(M, -1).sum(axis=1)
        if folded.size and (folded.min() < int32.min or folded.max() > int32.max):
            worst = int(folded.max()) if folded.max() > int32.max else int(folded.min())
            raise ValueError(f"{name}: the bias (input zero point {in_zero_point} folded in) reaches {worst}, "
                             f"outside int32; the bias is too large for the activation and weight scales")
        multipliers, shifts = [], []
        for m in range(M):
            real = in_scale * float(wscale[m]) / out_scale
            try:
                mult, shift = quantize_multiplier(real)
            except ValueError as error:
                raise ValueError(f"{name}: channel {m}'s requantization scale in_scale * weight_scale / "
                                 f"out_scale = {real!r} cannot be a multiplier and shift: {error}") from None
            multipliers.append(mult)
            shifts.append(shift)
        params = QuantParams(bias=folded, multiplier=np.array(multipliers, dtype=np.int64),
                             shift=np.array(shifts, dtype=np.int64))
        postops = PostOps(bias=True, requant=True, relu=bool(relu), pool=pool, out_type=ACT_TYPE,
                          zero_point=out_zero_point)
        return cls(name=name, kind=kind, problem=problem, weight=weight, params=params, postops=postops,
                   in_zero_point=in_zero_point, in_scale=in_scale, out_scale=out_scale, weight_scale=wscale,
                   flatten_from=flatten_from, source=tuple(source), weight_bits=weight_bits)

    # Geometry ------------------------------------------------------------------------------------------

    @property
    def in_shape(self):
        """``(C, H, W)`` this layer reads (linear: ``(K, 1, 1)``)."""
        return self.problem.act_canonical_shape

    @property
    def out_shape(self):
        """``(M, E', F')`` this layer writes, after pooling."""
        p = self.problem
        return (p.M,) + self.postops.out_size(p.E, p.F)

    @property
    def stride(self):
        return (self.problem.stride_h, self.problem.stride_w)

    @property
    def pad(self):
        return (self.problem.pad_h, self.problem.pad_w)

    @property
    def out_zero_point(self):
        return self.postops.zero_point

    @property
    def nest(self):
        """The layer as a hwgen loop nest (`hwgen.dsl.conv2d` / `hwgen.dsl.linear`, batch 1)."""
        p = self.problem
        return layer_nest(name=self.name, kind=self.kind, in_shape=self.in_shape, out_channels=p.M,
                          kernel=(p.R, p.S), stride=self.stride, pad=self.pad)

    # The integer semantics -------------------------------------------------------------------------------

    def accumulate(self, x):
        """int8 ``x`` (``in_shape``, or a linear layer's input in any shape of ``K`` values, flattened in C order)
        -> the int32 accumulators ``[M, E, F]`` of `hwgen.reference.conv2d`, padding with ``in_zero_point``."""
        x = np.asarray(x)
        if x.size != int(np.prod(self.in_shape)):
            raise ValueError(f"{self.name}: the input holds {x.size} values, the layer reads {self.in_shape}")
        return reference.conv2d(x.reshape(self.in_shape), self.weight, stride=self.stride, padding=self.pad,
                                pad_value=self.in_zero_point)

    def forward(self, x):
        """int8 input -> int8 output ``[M, E', F']``: `accumulate` then `hwgen.postops.apply`."""
        return apply_postops(self.accumulate(x), self.params, self.postops)

    def dequantize(self, y):
        """This layer's int8 output -> reals: ``out_scale * (y - zero_point)``."""
        return self.out_scale * (np.asarray(y, dtype=np.float64) - self.out_zero_point)

    def to_json(self):
        p = self.problem
        return {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape), "out_channels": p.M,
                "kernel": [p.R, p.S], "stride": list(self.stride), "pad": list(self.pad),
                "relu": self.postops.relu, "pool": self.postops.pool, "out_type": self.postops.out_type.name,
                "out_zero_point": self.out_zero_point, "in_zero_point": self.in_zero_point,
                "in_scale": self.in_scale, "out_scale": self.out_scale,
                "flatten_from": None if self.flatten_from is None else list(self.flatten_from),
                "source": list(self.source), "weight_bits": self.weight_bits}


@dataclass(frozen=True, eq=False, kw_only=True)
class QuantizedNetwork(NetworkShapes):
    """A chain of `QLayer`s with the quantization of its input: the integer reference network.

    ``input_layout`` is the model's input shape without the batch axis (``(C, H, W)`` or ``(K,)``), ``in_scale``
    and ``in_zero_point`` the input's quantization. Each layer's ``in_scale``/``in_zero_point`` equal the
    previous tensor's (checked). ``metadata`` is free-form JSON (where the network came from, calibration).
    """
    name: str
    layers: tuple
    input_layout: tuple
    in_scale: float
    in_zero_point: int
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers or not all(isinstance(layer, QLayer) for layer in layers):
            raise ValueError(f"network {self.name!r}: layers must be a non-empty sequence of QLayer")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "input_layout", tuple(int(d) for d in self.input_layout))
        object.__setattr__(self, "in_scale", _as_scale(self.in_scale, f"network {self.name!r}: in_scale"))
        zp = _as_int(self.in_zero_point, f"network {self.name!r}: in_zero_point")
        if not ACT_TYPE.contains(zp):
            raise ValueError(f"network {self.name!r}: in_zero_point {zp} is outside {ACT_TYPE}")
        object.__setattr__(self, "in_zero_point", zp)
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"network {self.name!r}: layer names must be unique, got {names}")
        _check_chain(self.name, self.input_shape, layers)
        scale, zero_point, before = self.in_scale, zp, "the input"
        for layer in layers:
            if layer.in_zero_point != zero_point or not np.isclose(layer.in_scale, scale, rtol=1e-6, atol=0):
                raise ValueError(f"network {self.name!r}: layer {layer.name} expects its input quantized with "
                                 f"scale {layer.in_scale} and zero point {layer.in_zero_point}, but {before} has "
                                 f"scale {scale} and zero point {zero_point}")
            scale, zero_point, before = layer.out_scale, layer.out_zero_point, f"layer {layer.name}'s output"

    @property
    def out_scale(self):
        return self.layers[-1].out_scale

    @property
    def out_zero_point(self):
        return self.layers[-1].out_zero_point

    def quantize_input(self, x):
        """Float input (any shape) -> int8 values as int64: `quantize_tensor` with the input's scale/zero point."""
        return quantize_tensor(x, self.in_scale, self.in_zero_point)

    def forward_int(self, x_int):
        """One int8 input sample (``input_layout`` or ``input_shape``) -> every layer's int8 output, in order
        (``[M, E', F']`` each, int64), computed only with `hwgen.reference.conv2d` and `hwgen.postops.apply`."""
        x = np.asarray(x_int)
        if x.dtype.kind not in "iu":
            raise TypeError(f"network {self.name!r}: forward_int takes integers, not {x.dtype}; quantize the "
                            f"input with quantize_input first")
        if x.shape not in (self.input_layout, self.input_shape):
            raise ValueError(f"network {self.name!r}: one input sample has shape {self.input_layout}, got "
                             f"{x.shape} (for a batch use run_int)")
        if x.size and (x.min() < ACT_TYPE.min or x.max() > ACT_TYPE.max):
            raise ValueError(f"network {self.name!r}: the input must be {ACT_TYPE}, found "
                             f"{int(x.min())}..{int(x.max())}")
        outputs = []
        x = x.reshape(self.input_shape)
        for layer in self.layers:
            x = layer.forward(x)
            outputs.append(x)
        return outputs

    def run_int(self, x_int):
        """A batch of int8 inputs ``[N, *input_layout]`` -> the last layer's outputs ``[N, *output_shape]``."""
        x = _batch(x_int, self.input_layout, self.name)
        if len(x) == 0:
            return np.zeros((0,) + self.output_shape, dtype=np.int64)
        return np.stack([self.forward_int(sample)[-1].reshape(self.output_shape) for sample in x])

    def run(self, x):
        """Float inputs ``[N, *input_layout]`` -> the int8 outputs ``[N, *output_shape]`` (quantized input)."""
        return self.run_int(self.quantize_input(_batch(x, self.input_layout, self.name)))

    def predict(self, x):
        """Float inputs ``[N, *input_layout]`` -> top-1 class per sample (argmax of the int8 output, the first
        index on ties, as ``np.argmax``)."""
        out = self.run(x)
        return np.argmax(out.reshape(len(out), -1), axis=1)

    def dequantize_output(self, y_int):
        """The last layer's int8 outputs -> reals (``out_scale * (y - zero_point)``)."""
        return self.layers[-1].dequantize(y_int)

    def __str__(self):
        rows = []
        for layer in self.layers:
            p = layer.problem
            rows.append([layer.name, layer.kind, _dims(layer.in_shape), _dims(layer.out_shape),
                         f"{p.R}x{p.S}" if layer.kind == "conv2d" else "-",
                         _dims(layer.stride) if layer.kind == "conv2d" else "-",
                         _dims(layer.pad) if layer.kind == "conv2d" else "-",
                         "yes" if layer.postops.relu else "no", layer.postops.pool,
                         _dims(layer.flatten_from) if layer.flatten_from else "-",
                         f"{layer.in_scale:.4g}", layer.in_zero_point,
                         f"{layer.weight_scale.min():.3g}..{layer.weight_scale.max():.3g}",
                         f"{layer.out_scale:.4g}", layer.out_zero_point, p.macs])
        table = format_table(["layer", "kind", "in", "out", "kernel", "stride", "pad", "relu", "pool", "flatten",
                              "in scale", "in zp", "weight scales", "out scale", "out zp", "MACs"], rows)
        source = self.metadata.get("source", "")
        return (f"QuantizedNetwork {self.name!r}{f' ({source})' if source else ''}: input "
                f"{_dims(self.input_layout)} {ACT_TYPE} (scale {self.in_scale:.4g}, zero point "
                f"{self.in_zero_point}), {len(self.layers)} layers, "
                f"{sum(layer.problem.macs for layer in self.layers):,} MACs\n{table}")

    # Persistence: <dir>/network.json + <dir>/tensors.npz -------------------------------------------------

    def save(self, path):
        """Write ``path/network.json`` (structure, scales, zero points) and ``path/tensors.npz`` (int weights,
        folded biases, multipliers, shifts, weight scales). No pickle; `load` gives back the same integers."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        doc = {"format": "hwgen.QuantizedNetwork", "version": 1, "name": self.name,
               "input_layout": list(self.input_layout), "in_scale": self.in_scale,
               "in_zero_point": self.in_zero_point, "act_type": ACT_TYPE.name, "metadata": self.metadata,
               "layers": [layer.to_json() for layer in self.layers]}
        (path / "network.json").write_text(json.dumps(doc, indent=1) + "\n")
        tensors = {}
        for layer in self.layers:
            tensors[f"{layer.name}.weight"] = layer.weight.astype(np.int8)
            tensors[f"{layer.name}.bias"] = layer.params.bias.astype(np.int32)
            tensors[f"{layer.name}.multiplier"] = layer.params.multiplier.astype(np.int32)
            tensors[f"{layer.name}.shift"] = layer.params.shift.astype(np.int8)
            tensors[f"{layer.name}.weight_scale"] = layer.weight_scale
        np.savez(path / "tensors.npz", **tensors)
        return path

    @classmethod
    def load(cls, path):
        """Read a network `save` wrote."""
        path = Path(path)
        doc = _read_doc(path, "hwgen.QuantizedNetwork")
        layers = []
        with np.load(path / "tensors.npz", allow_pickle=False) as tensors:
            for d in doc["layers"]:
                name = d["name"]
                problem = layer_problem(name=name, kind=d["kind"], in_shape=tuple(d["in_shape"]),
                                        out_channels=d["out_channels"], kernel=tuple(d["kernel"]),
                                        stride=tuple(d["stride"]), pad=tuple(d["pad"]))
                params = QuantParams(bias=tensors[f"{name}.bias"].astype(np.int64),
                                     multiplier=tensors[f"{name}.multiplier"].astype(np.int64),
                                     shift=tensors[f"{name}.shift"].astype(np.int64))
                postops = PostOps(bias=True, requant=True, relu=d["relu"], pool=d["pool"], out_type=d["out_type"],
                                  zero_point=d["out_zero_point"])
                layers.append(QLayer(name=name, kind=d["kind"], problem=problem,
                                     weight=tensors[f"{name}.weight"].astype(np.int64), params=params,
                                     postops=postops, in_zero_point=d["in_zero_point"], in_scale=d["in_scale"],
                                     out_scale=d["out_scale"], weight_scale=tensors[f"{name}.weight_scale"],
                                     flatten_from=None if d["flatten_from"] is None else tuple(d["flatten_from"]),
                                     source=tuple(d["source"]), weight_bits=d.get("weight_bits", 8)))
        return cls(name=doc["name"], layers=tuple(layers), input_layout=tuple(doc["input_layout"]),
                   in_scale=doc["in_scale"], in_zero_point=doc["in_zero_point"], metadata=doc["metadata"])
