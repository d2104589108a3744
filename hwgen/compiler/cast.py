"""The cast step: a float model onto the float datapath (bf16 or fp16 operands, fp32 accumulation).

The float counterpart of the quantize step (`hwgen.compiler.quantize`): no calibration, no scales. Each layer of
a `FloatNetwork` becomes a `CastLayer` whose numbers are the bit patterns the accelerator takes
(`hwgen.floats`):

* **weights** rounded to the operand format (``bf16`` or ``fp16``) to nearest, ties to even, with the numeric
  policy of `hwgen.floats.encode` (fp32 first, then the format; results below the format's smallest normal
  flush to a zero of their sign, fp16 overflow becomes an infinity, which `cast` refuses);
* **biases** rounded to fp32, the format the post-op chain adds them in (`hwgen.postops.apply_float`): the
  bias is added to the fp32 accumulator, so rounding it to 16 bits would only lose precision;
* **the input** rounded to the operand format as the weights (`CastNetwork.encode_input`).

Every tensor between layers is in the operand format: a layer other than the last one ends its post-op chain
with the float requantization at scale 1.0 (``PostOps(bias=True, requant=True, out_type=fmt)``: an fp32
multiply by 1.0 is exact, then the round to ``fmt``, nearest even), then ReLU and 2x2 max pooling where the
model has them - the output is the next layer's operand, so it can stay on chip (`hwgen.compiler.program`).
The last layer's output is fp32 (bias and ReLU, no narrowing): the network's logits as the accumulator has
them.

The exact value of a float layer depends on the order of its additions - the hardware's - so the network's
reference is the program's (`hwgen.compiler.program.Program.reference`, `hwgen.reference.float_layer`), not
a property of the cast network alone. Average pooling, pooling other than 2x2 and integer-only features
(int4 weights, pruning, the matrix-vector engine) are rejected with `UnsupportedModelError`/`MappingError`
naming the layer.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import floats
from ..errors import MappingError
from ..postops import PostOps, float_params
from ..problem import ConvProblem
from .graph import FloatNetwork, NetworkShapes, _batch, _dims, _read_doc, _shape, format_table, layer_problem

__all__ = ["FLOAT_PRECISIONS", "CastLayer", "CastNetwork", "cast", "cast_layers"]

FLOAT_PRECISIONS = ("bf16", "fp16")
ONE_FP32 = int(floats.encode(1.0, "fp32"))


def check_precision(fmt):
    if fmt not in FLOAT_PRECISIONS:
        raise MappingError(f"a float network is cast to one of {', '.join(FLOAT_PRECISIONS)}, not {fmt!r}")
    return fmt


def _patterns(values, bits, what):
    array = np.asarray(values)
    if array.dtype.kind not in "iu" or (array.size and (array.min() < 0 or array.max() >= 1 << bits)):
        raise ValueError(f"{what} must be {bits}-bit float patterns (unsigned integers below 2**{bits})")
    return array.astype(np.int64)


@dataclass(frozen=True, eq=False, kw_only=True)
class CastLayer:
    """One float layer as the accelerator runs it: ``weight`` ``[M, C, R, S]`` in ``fmt`` bit patterns, ``bias``
    ``[M]`` fp32 patterns, ``relu``/``pool`` (``"none"`` or ``"max"``) and ``last`` (the network's output layer:
    fp32 output, no narrowing). ``flatten_from`` and ``source`` as in `hwgen.compiler.FloatLayer`."""
    name: str
    kind: str
    problem: ConvProblem
    fmt: str
    weight: np.ndarray
    bias: np.ndarray
    relu: bool = False
    pool: str = "none"
    last: bool = False
    flatten_from: tuple | None = None
    source: tuple = ()

    def __post_init__(self):
        check_precision(self.fmt)
        p = self.problem
        weight = _patterns(self.weight, 16, f"{self.name}: weight")
        if weight.shape != p.weight_canonical_shape:
            raise ValueError(f"{self.name}: weight has shape {weight.shape}, the problem needs "
                             f"{p.weight_canonical_shape}")
        bias = _patterns(self.bias, 32, f"{self.name}: bias")
        if bias.shape != (p.M,):
            raise ValueError(f"{self.name}: bias must have shape ({p.M},), not {bias.shape}")
        if self.pool not in ("none", "max"):
            raise MappingError(f"{self.name}: pool={self.pool!r}; the float post-op chain pools 2x2 max only "
                               f"(average pooling is integer-only)")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)
        if self.flatten_from is not None:
            object.__setattr__(self, "flatten_from", _shape(self.flatten_from, "flatten_from", self.name))

    @property
    def postops(self):
        if self.last:
            return PostOps(bias=True, relu=self.relu, pool=self.pool)
        return PostOps(bias=True, requant=True, out_type=self.fmt, relu=self.relu, pool=self.pool)

    @property
    def params(self):
        """The post-op parameters: fp32 biases, and (not the last layer) the scale 1.0 of the narrowing."""
        M = self.problem.M
        return float_params(self.bias, None if self.last else np.full(M, ONE_FP32, dtype=np.int64))

    @property
    def in_shape(self):
        return self.problem.act_canonical_shape

    @property
    def out_shape(self):
        p = self.problem
        return (p.M,) + self.postops.out_size(p.E, p.F)

    @property
    def out_format(self):
        return "fp32" if self.last else self.fmt

    def to_json(self):
        p = self.problem
        return {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape), "out_channels": p.M,
                "kernel": [p.R, p.S], "stride": [p.stride_h, p.stride_w], "pad": [p.pad_h, p.pad_w],
                "relu": self.relu, "pool": self.pool, "last": self.last, "fmt": self.fmt,
                "flatten_from": None if self.flatten_from is None else list(self.flatten_from),
                "source": list(self.source)}


@dataclass(frozen=True, eq=False, kw_only=True)
class CastNetwork(NetworkShapes):
    """A chain of `CastLayer`s in one format (``fmt``): what the cast step leaves. ``metadata`` records where it
    came from and how far the rounding moved the weights (``weight_rounding``: per layer the largest relative
    change)."""
    name: str
    layers: tuple
    input_layout: tuple
    fmt: str
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        check_precision(self.fmt)
        layers = tuple(self.layers)
        if not layers or not all(isinstance(layer, CastLayer) and layer.fmt == self.fmt for layer in layers):
            raise ValueError(f"network {self.name!r}: layers must be a non-empty sequence of CastLayer in "
                             f"{self.fmt}")
        if [layer.last for layer in layers] != [False] * (len(layers) - 1) + [True]:
            raise ValueError(f"network {self.name!r}: exactly the last layer has last=True")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "input_layout", tuple(int(d) for d in self.input_layout))

    @property
    def precision(self):
        return self.fmt

    def encode_input(self, x):
        """Float inputs ``[N, *input_layout]`` -> ``fmt`` bit patterns ``[N, C, H, W]`` (int64), rounded to
        nearest even (`hwgen.floats.encode`)."""
        x = _batch(np.asarray(x), self.input_layout, self.name)
        if x.dtype.kind != "f":
            raise MappingError(f"network {self.name!r} runs in {self.fmt}: give float inputs (they are rounded to "
                               f"{self.fmt}), not {x.dtype}")
        return floats.encode(x, self.fmt).astype(np.int64).reshape((len(x),) + tuple(self.input_shape))

    def decode_output(self, y):
        """The last layer's output patterns (fp32) -> float64 values ``[*output_shape]``."""
        return floats.decode(np.asarray(y).astype(np.uint64), "fp32").reshape(self.output_shape)

    def __str__(self):
        rows = []
        errors = self.metadata.get("weight_rounding", {})
        for layer in self.layers:
            p = layer.problem
            rows.append([layer.name, layer.kind, _dims(layer.in_shape), _dims(layer.out_shape),
                         f"{p.R}x{p.S}" if layer.kind == "conv2d" else "-", "yes" if layer.relu else "no",
                         layer.pool, layer.fmt, "fp32", layer.out_format,
                         f"{errors[layer.name]:.2e}" if layer.name in errors else "-", p.macs])
        table = format_table(["layer", "kind", "in", "out", "kernel", "relu", "pool", "weights", "bias", "output",
                              "max rel. weight change", "MACs"], rows)
        return (f"CastNetwork {self.name!r}: input {_dims(self.input_layout)} rounded to {self.fmt}, "
                f"{len(self.layers)} layers, {self.fmt} x {self.fmt} products accumulated in fp32\n{table}")

    def save(self, path):
        """``path/network.json`` (structure) and ``path/tensors.npz`` (the bit patterns); no pickle."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        doc = {"format": "hwgen.CastNetwork", "version": 1, "name": self.name, "fmt": self.fmt,
               "input_layout": list(self.input_layout), "metadata": self.metadata,
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
        doc = _read_doc(path, "hwgen.CastNetwork")
        layers = []
        with np.load(path / "tensors.npz", allow_pickle=False) as tensors:
            for d in doc["layers"]:
                problem = layer_problem(name=d["name"], kind=d["kind"], in_shape=tuple(d["in_shape"]),
                                        out_channels=d["out_channels"], kernel=tuple(d["kernel"]),
                                        stride=tuple(d["stride"]), pad=tuple(d["pad"]))
                layers.append(CastLayer(name=d["name"], kind=d["kind"], problem=problem, fmt=d["fmt"],
                                        weight=tensors[f"{d['name']}.weight"], bias=tensors[f"{d['name']}.bias"],
                                        relu=d["relu"], pool=d["pool"], last=d["last"],
                                        flatten_from=None if d["flatten_from"] is None else tuple(d["flatten_from"]),
                                        source=tuple(d["source"])))
        return cls(name=doc["name"], layers=tuple(layers), input_layout=tuple(doc["input_layout"]),
                   fmt=doc["fmt"], metadata=doc["metadata"])


def cast(network, fmt, *, name=None):
    """The cast step: a `FloatNetwork` -> a `CastNetwork` in ``fmt`` (``"bf16"`` or ``"fp16"``; see the module
    docstring). Raises `MappingError` naming the layer for what the float datapath does not run (average
    pooling) and for weights or biases that do not fit the format (an infinity after rounding)."""
    if not isinstance(network, FloatNetwork):
        raise TypeError(f"cast takes a hwgen.compiler.FloatNetwork (from import_onnx or from_torch), not "
                        f"{type(network).__name__}")
    check_precision(fmt)
    layers, rounding = [], {}
    for index, layer in enumerate(network.layers):
        if layer.pool == "avg":
            raise MappingError(f"{layer.name}: average pooling is integer-only (the float post-op chain pools 2x2 "
                               f"max only); compile this model at int8 (--precision int8)")
        weight = floats.encode(layer.weight, fmt).astype(np.int64)
        bias = floats.encode(layer.bias, "fp32").astype(np.int64)
        w_values = floats.decode(weight, fmt)
        for what, values in (("weight", w_values), ("bias", floats.decode(bias, "fp32"))):
            if not np.all(np.isfinite(values)):
                bad = np.flatnonzero(~np.isfinite(values.ravel()))[0]
                source = layer.weight if what == "weight" else layer.bias
                raise MappingError(f"{layer.name}: {what} {source.ravel()[bad]!r} is beyond the range of "
                                   f"{fmt if what == 'weight' else 'fp32'} (it rounds to an infinity); use bf16, "
                                   f"whose range is fp32's, or rescale the layer")
        peak = np.abs(layer.weight).max(initial=0.0)
        rounding[layer.name] = float(np.abs(w_values - layer.weight).max(initial=0.0) / peak) if peak else 0.0
        layers.append(CastLayer(name=layer.name, kind=layer.kind, problem=layer.problem, fmt=fmt, weight=weight,
                                bias=bias, relu=layer.relu, pool=layer.pool,
                                last=index == len(network.layers) - 1, flatten_from=layer.flatten_from,
                                source=layer.source))
    metadata = {"source": "hwgen.cast", "from": network.name, "fmt": fmt, "weight_rounding": rounding}
    return CastNetwork(name=name or network.name, layers=tuple(layers), input_layout=network.input_layout,
                       fmt=fmt, metadata=metadata)


def cast_layers(network):
    """A `CastNetwork` -> the back end's layers (`hwgen.compiler.IntLayer`: the same bit patterns; padding reads
    ``+0``)."""
    from .program import IntLayer
    return [IntLayer(name=layer.name, problem=layer.problem, weight=layer.weight, postops=layer.postops,
                     params=layer.params, pad_value=0, flatten=layer.flatten_from is not None)
            for layer in network.layers]
