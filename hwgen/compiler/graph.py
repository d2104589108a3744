"""The float network: what the import step leaves (a chain of conv / linear layers with float weights).

A `FloatNetwork` is a chain of `FloatLayer`s, each a 2-D convolution or a fully connected layer with its
bias, an optional ReLU and an optional 2x2 stride-2 pooling (max or average, floor sizes) fused in, in the
order ``relu(conv(x) + bias)`` then pool. Tensors are batch-first: the network input is ``[N, *input_layout]``
(``input_layout`` is the model's own input shape without the batch axis: ``(C, H, W)`` or ``(K,)``), a conv
layer's output ``[N, M, E', F']`` and a linear layer's ``[N, M]``. A linear layer after a conv takes that
conv's output flattened in ``(C, H, W)`` order (ONNX Flatten, ``torch.flatten``) and records the shape it
flattens in ``flatten_from``.

`FloatNetwork.forward` is a plain NumPy float64 forward pass: the reference the importer is tested against
(onnxruntime on the same float graph agrees to ~1e-5) and what the quantizer calibrates with.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dsl import conv2d as conv2d_nest, linear as linear_nest
from ..mapping import default_mapping, recognize

__all__ = ["FloatLayer", "FloatNetwork", "layer_nest", "layer_problem", "conv_out_size", "format_table"]

KINDS = ("conv2d", "linear")
POOLS = ("none", "max", "avg")


def conv_out_size(size, kernel, stride, pad):
    """Output extent of a convolution along one axis: ``(size + 2*pad - kernel) // stride + 1``."""
    return (size + 2 * pad - kernel) // stride + 1


def layer_nest(*, name, kind, in_shape, out_channels, kernel=(1, 1), stride=(1, 1), pad=(0, 0)):
    """The hwgen loop nest of a layer (batch 1): `hwgen.dsl.conv2d` or `hwgen.dsl.linear` (``K = C*H*W``)."""
    C, H, W = in_shape
    if kind == "linear":
        return linear_nest(name=name, in_features=C * H * W, out_features=out_channels)
    return conv2d_nest(name=name, in_channels=C, out_channels=out_channels, height=H, width=W,
                       kernel=tuple(kernel), stride=tuple(stride), padding=tuple(pad))


def layer_problem(**geometry):
    """The canonical `hwgen.problem.ConvProblem` of a layer (batch 1), exactly as the DSL's nest recognizes:
    conv ``C, H, W, M, E, F, R, S, stride, pad``; linear ``C=K, H=W=E=F=R=S=1``."""
    nest = layer_nest(**geometry)
    return recognize(nest, default_mapping(nest))


def _pair(value, what, layer, minimum):
    pair = tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or any(v < minimum for v in pair):
        raise ValueError(f"{layer}: {what} must be a pair of integers >= {minimum}, not {value!r}")
    return pair


def _shape(value, what, layer):
    shape = tuple(int(v) for v in value)
    if len(shape) != 3 or any(v <= 0 for v in shape):
        raise ValueError(f"{layer}: {what} must be a (C, H, W) triple of positive integers, not {value!r}")
    return shape


@dataclass(frozen=True, eq=False, kw_only=True)
class FloatLayer:
    """One float layer: ``out = pool(relu(conv(x, weight) + bias))``.

    ``weight`` is float64 ``[M, C, R, S]`` (linear: ``[M, K, 1, 1]``), ``bias`` float64 ``[M]`` (zeros when the
    model has none), ``in_shape`` the ``(C, H, W)`` the layer reads (linear: ``(K, 1, 1)``), ``stride`` and
    ``pad`` ``(h, w)`` pairs (symmetric padding with zeros), ``pool`` ``"none"``, ``"max"`` or ``"avg"``,
    ``flatten_from`` (linear only) the ``(C, H, W)`` of the tensor flattened into its ``K`` inputs, ``source``
    the names of the model's nodes folded into the layer.
    """
    name: str
    kind: str
    weight: np.ndarray
    bias: np.ndarray
    in_shape: tuple
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)
    relu: bool = False
    pool: str = "none"
    flatten_from: tuple | None = None
    source: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a layer name must be a Python identifier, not {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.pool not in POOLS:
            raise ValueError(f"{self.name}: pool must be one of {POOLS}, not {self.pool!r}")
        if not isinstance(self.relu, bool):
            raise TypeError(f"{self.name}: relu must be a bool, not {self.relu!r}")
        object.__setattr__(self, "in_shape", _shape(self.in_shape, "in_shape", self.name))
        object.__setattr__(self, "stride", _pair(self.stride, "stride", self.name, 1))
        object.__setattr__(self, "pad", _pair(self.pad, "pad", self.name, 0))
        weight = np.asarray(self.weight, dtype=np.float64)
        if weight.ndim != 4 or weight.shape[1] != self.in_shape[0] * (
                self.in_shape[1] * self.in_shape[2] if self.kind == "linear" else 1):
            raise ValueError(f"{self.name}: weight of shape {weight.shape} does not read an input of shape "
                             f"{self.in_shape}")
        bias = np.asarray(self.bias, dtype=np.float64)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"{self.name}: bias must have shape ({weight.shape[0]},), not {bias.shape}")
        if self.kind == "linear":
            if weight.shape[2:] != (1, 1) or self.stride != (1, 1) or self.pad != (0, 0) or self.pool != "none":
                raise ValueError(f"{self.name}: a linear layer has a [M, K, 1, 1] weight, no stride, padding or "
                                 f"pooling")
        elif self.flatten_from is not None:
            raise ValueError(f"{self.name}: only a linear layer flattens its input")
        if self.flatten_from is not None:
            flat = _shape(self.flatten_from, "flatten_from", self.name)
            if flat[0] * flat[1] * flat[2] != weight.shape[1]:
                raise ValueError(f"{self.name}: flatten_from {flat} does not hold K={weight.shape[1]} values")
            object.__setattr__(self, "flatten_from", flat)
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "source", tuple(str(s) for s in self.source))
        self.problem   # the geometry must be a valid hwgen layer

    @property
    def geometry(self):
        return dict(name=self.name, kind=self.kind, in_shape=self.in_shape, out_channels=self.weight.shape[0],
                    kernel=self.weight.shape[2:], stride=self.stride, pad=self.pad)

    @property
    def problem(self):
        """The canonical `ConvProblem` (batch 1)."""
        return layer_problem(**self.geometry)

    @property
    def conv_shape(self):
        """``(M, E, F)`` before pooling."""
        C, H, W = self.in_shape
        M, _, R, S = self.weight.shape
        if self.kind == "linear":
            return (M, 1, 1)
        return (M, conv_out_size(H, R, self.stride[0], self.pad[0]), conv_out_size(W, S, self.stride[1], self.pad[1]))

    @property
    def out_shape(self):
        """``(M, E', F')`` after pooling (linear: ``(M, 1, 1)``)."""
        M, E, F = self.conv_shape
        return (M, E // 2, F // 2) if self.pool != "none" else (M, E, F)

    def forward(self, x, *, pre_pool=False):
        """``x[N, C, H, W]`` -> ``[N, M, E', F']`` float64 (``pre_pool``: also return the tensor before pooling)."""
        x = np.asarray(x, dtype=np.float64)
        N = x.shape[0]
        x = x.reshape((N,) + self.in_shape)
        M, E, F = self.conv_shape
        (sh, sw), (ph, pw) = self.stride, self.pad
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        out = np.zeros((N, M, E, F))
        for r in range(self.weight.shape[2]):
            for s in range(self.weight.shape[3]):
                window = padded[:, :, r:r + (E - 1) * sh + 1:sh, s:s + (F - 1) * sw + 1:sw]
                out += np.einsum("mc,nchw->nmhw", self.weight[:, :, r, s], window, optimize=True)
        out += self.bias[None, :, None, None]
        if self.relu:
            out = np.maximum(out, 0.0)
        before = out
        if self.pool != "none":
            E2, F2 = E // 2, F // 2
            corners = [out[:, :, i:2 * E2:2, j:2 * F2:2] for i in (0, 1) for j in (0, 1)]
            out = np.maximum(np.maximum(corners[0], corners[1]), np.maximum(corners[2], corners[3])) \
                if self.pool == "max" else (corners[0] + corners[1] + corners[2] + corners[3]) / 4
        return (out, before) if pre_pool else out

    def to_json(self):
        return {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape), "stride": list(self.stride),
                "pad": list(self.pad), "relu": self.relu, "pool": self.pool,
                "flatten_from": None if self.flatten_from is None else list(self.flatten_from),
                "source": list(self.source)}


def format_table(header, rows):
    """A plain-text table: columns padded to their widest cell, numbers right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(c.rjust(w) if c[:1].isdigit() or c[:1] == "-" and c[1:2].isdigit() else c.ljust(w)
                         for c, w in zip(row, widths)).rstrip()
    return "\n".join(line(row) for row in cells)


def _dims(shape):
    return "x".join(str(d) for d in shape)


class NetworkShapes:
    """The shapes of a network of layers read from ``input_layout`` (`FloatNetwork`, `QuantizedNetwork`)."""

    @property
    def input_shape(self):
        """The input as ``(C, H, W)`` (a flat ``(K,)`` input is ``(K, 1, 1)``)."""
        return _canonical(self.input_layout)

    @property
    def output_shape(self):
        """One sample's output: ``(M,)`` after a linear layer, ``(M, E', F')`` after a conv."""
        last = self.layers[-1]
        return (last.out_shape[0],) if last.kind == "linear" else last.out_shape


@dataclass(frozen=True, eq=False, kw_only=True)
class FloatNetwork(NetworkShapes):
    """A chain of `FloatLayer`s, the output of `hwgen.compiler.import_onnx` on a float model.

    ``input_layout`` is the input shape without the batch axis as the model has it (``(C, H, W)`` or
    ``(K,)``); ``input_name``/``output_name`` the model's tensor names (to feed onnxruntime the same data).
    """
    name: str
    layers: tuple
    input_layout: tuple
    input_name: str = "input"
    output_name: str = "output"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers or not all(isinstance(layer, FloatLayer) for layer in layers):
            raise ValueError(f"network {self.name!r}: layers must be a non-empty sequence of FloatLayer")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "input_layout", tuple(int(d) for d in self.input_layout))
        _check_chain(self.name, self.input_shape, layers)

    def forward(self, x):
        """``x[N, *input_layout]`` (float) -> the output ``[N, *output_shape]`` (float64)."""
        return self.trace(x)[-1][0].reshape((-1,) + self.output_shape)

    def trace(self, x):
        """Per layer ``(output, before_pool)``, both ``[N, M, E, F]`` float64 (``before_pool`` is the tensor the
        layer's output quantization sees: after bias and ReLU, before pooling)."""
        x = _batch(x, self.input_layout, self.name)
        results = []
        for layer in self.layers:
            x, before = layer.forward(x, pre_pool=True)
            results.append((x, before))
        return results

    def __str__(self):
        rows = []
        for layer in self.layers:
            kernel = _dims(layer.weight.shape[2:]) if layer.kind == "conv2d" else "-"
            rows.append([layer.name, layer.kind, _dims(layer.in_shape), _dims(layer.out_shape), kernel,
                         _dims(layer.stride) if layer.kind == "conv2d" else "-",
                         _dims(layer.pad) if layer.kind == "conv2d" else "-",
                         "yes" if layer.relu else "no", layer.pool,
                         _dims(layer.flatten_from) if layer.flatten_from else "-",
                         layer.problem.macs, ",".join(layer.source)])
        table = format_table(["layer", "kind", "in", "out", "kernel", "stride", "pad", "relu", "pool", "flatten",
                              "MACs", "source nodes"], rows)
        return (f"FloatNetwork {self.name!r}: input {_dims(self.input_layout)} float, {len(self.layers)} layers, "
                f"{sum(layer.problem.macs for layer in self.layers):,} MACs\n{table}")

    # Persistence: <dir>/network.json + <dir>/tensors.npz -------------------------------------------------

    def save(self, path):
        """Write ``path/network.json`` (structure) and ``path/tensors.npz`` (weights, biases); no pickle."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        doc = {"format": "hwgen.FloatNetwork", "version": 1, "name": self.name,
               "input_layout": list(self.input_layout), "input_name": self.input_name,
               "output_name": self.output_name, "metadata": self.metadata,
               "layers": [layer.to_json() for layer in self.layers]}
        (path / "network.json").write_text(json.dumps(doc, indent=1) + "\n")
        tensors = {}
        for layer in self.layers:
            tensors[f"{layer.name}.weight"] = layer.weight
            tensors[f"{layer.name}.bias"] = layer.bias
        np.savez(path / "tensors.npz", **tensors)
        return path

    @classmethod
    def load(cls, path):
        path = Path(path)
        doc = _read_doc(path, "hwgen.FloatNetwork")
        with np.load(path / "tensors.npz", allow_pickle=False) as tensors:
            layers = [FloatLayer(name=d["name"], kind=d["kind"], weight=tensors[f"{d['name']}.weight"],
                                 bias=tensors[f"{d['name']}.bias"], in_shape=tuple(d["in_shape"]),
                                 stride=tuple(d["stride"]), pad=tuple(d["pad"]), relu=d["relu"], pool=d["pool"],
                                 flatten_from=None if d["flatten_from"] is None else tuple(d["flatten_from"]),
                                 source=tuple(d["source"])) for d in doc["layers"]]
        return cls(name=doc["name"], layers=tuple(layers), input_layout=tuple(doc["input_layout"]),
                   input_name=doc["input_name"], output_name=doc["output_name"], metadata=doc["metadata"])


def _read_doc(path, fmt):
    file = Path(path) / "network.json"
    if not file.is_file():
        raise FileNotFoundError(f"{file} does not exist; save a network there first")
    doc = json.loads(file.read_text())
    if doc.get("format") != fmt or doc.get("version") != 1:
        raise ValueError(f"{file} is not a {fmt} (version 1) file: format={doc.get('format')!r}, "
                         f"version={doc.get('version')!r}")
    return doc


def _canonical(layout):
    layout = tuple(int(d) for d in layout)
    if len(layout) == 1:
        return (layout[0], 1, 1)
    if len(layout) == 3:
        return layout
    raise ValueError(f"an input layout is (C, H, W) or (K,), not {layout}")


def _batch(x, layout, name):
    x = np.asarray(x)
    if x.shape[1:] != tuple(layout):
        raise ValueError(f"network {name!r}: the input must have shape [N, {', '.join(map(str, layout))}], "
                         f"got {x.shape}")
    return x


def _check_chain(name, input_shape, layers):
    """Each layer reads what the previous one writes (a linear layer its flattened output)."""
    shape = tuple(input_shape)
    for layer in layers:
        if layer.kind == "conv2d":
            ok = layer.in_shape == shape
        else:
            K = shape[0] * shape[1] * shape[2]
            ok = layer.in_shape == (K, 1, 1) and (layer.flatten_from == shape or
                                                  (layer.flatten_from is None and shape[1:] == (1, 1)))
        if not ok:
            raise ValueError(f"network {name!r}: layer {layer.name} reads {layer.in_shape} (flatten_from "
                             f"{layer.flatten_from}) but its input is {shape}")
        shape = layer.out_shape
