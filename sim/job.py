"""What a simulation run is asked to do, as JSON passed from the runner (pytest/CLI) to the cocotb test."""

import json
from dataclasses import dataclass, field, asdict

import numpy as np

from hwgen.postops import PostOps, QuantParams, apply as apply_postops, quantize_multiplier
from hwgen.problem import ConvProblem
from hwgen.reference import conv2d as reference_conv2d
from hwgen.spec import AcceleratorSpec
from hwgen.tiling import SparseLayerPlan, plan_layer, plan_sparse_layer

__all__ = ["SimJob", "NetworkJob", "LayerData", "make_layer_data"]

_CANONICAL = ("name", "kind", "C", "H", "W", "M", "E", "F", "R", "S", "stride_h", "stride_w", "pad_h", "pad_w")
_POSTOPS = ("bias", "requant", "relu", "pool", "zero_point", "rounding")


@dataclass
class SimJob:
    spec: dict
    layers: list                 # {"problem": canonical ConvProblem fields, "postops": PostOps fields}
    seed: int = 1
    stall: float = 0.0           # probability that a source idles / the sink refuses, per cycle and stream
    results_path: str = ""
    flip_weight_bit: list = None  # [layer, word, bit]: corrupt one weight bit on the wire (fault injection)
    withhold_words: dict = None  # {"weights": n, ...}: never send a stream's last n words (a stalled source)
    max_cycles_factor: int = 20  # a layer that takes longer than this times the model is reported hung
    extra: dict = field(default_factory=dict)

    @staticmethod
    def layer(problem: ConvProblem, postops: PostOps = PostOps(), im2col="auto", packed_bits=None, sparse=None):
        """``sparse``: ``(weight, x)`` of a layer on the sparse engine (the plan is made for its data)."""
        return {"problem": {key: getattr(problem, key) for key in _CANONICAL}, "im2col": im2col,
                "packed_bits": packed_bits,
                "sparse": None if sparse is None else [np.asarray(a).tolist() for a in sparse],
                "postops": {**{key: getattr(postops, key) for key in _POSTOPS},   # and the output type, by name
                            "out_type": postops.out_type.name if postops.out_type else None}}

    def plans(self):
        spec = AcceleratorSpec.from_dict(self.spec)
        return [plan_sparse_layer(spec, ConvProblem(**layer["problem"]), PostOps(**layer["postops"]),
                                  weight=np.array(layer["sparse"][0], dtype=np.int64),
                                  x=np.array(layer["sparse"][1], dtype=np.int64))
                if layer.get("sparse") else
                plan_layer(spec, ConvProblem(**layer["problem"]), PostOps(**layer["postops"]),
                           im2col=layer.get("im2col", "auto"), packed_bits=layer.get("packed_bits"))
                for layer in self.layers]

    def dumps(self):
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def loads(cls, text):
        return cls(**json.loads(text))


@dataclass
class LayerData:
    config_words: list
    weight_words: list
    act_words: list
    param_words: list
    expected_beats: list
    sparse_words: list = field(default_factory=list)


def random_params(rng, acc, M):
    """Post-op parameters that keep the int8 outputs in range but not all saturated: a per-channel scale of
    about 100 / max|acc| and a bias of up to a quarter of that range."""
    big = int(np.abs(acc).max()) + 1
    multipliers, shifts = zip(*(quantize_multiplier(float(rng.uniform(40, 200)) / big) for _ in range(M)))
    bias = rng.integers(-(big // 4) - 1, big // 4 + 1, M)
    return QuantParams(bias=bias, multiplier=np.array(multipliers), shift=np.array(shifts))


def float_operands(rng, shape, fmt, *, scale=1.0, specials=False):
    """Random ``fmt`` (bf16/fp16) bit patterns of normally distributed values (every product and sum rounds);
    ``specials``: about 2 % of them replaced by zeros of both signs, infinities, NaN, subnormals (read as
    zeros), the largest finite value (bf16 products overflow) and the smallest normal (products flush)."""
    from hwgen import floats
    bits = floats.encode(rng.standard_normal(shape) * scale, fmt).astype(np.int64)
    if specials:
        ebits, fbits = floats.FORMATS[fmt]
        emax = (1 << ebits) - 1
        pool = [0x0000, 0x8000, emax << fbits, 0x8000 | (emax << fbits), (emax << fbits) | 1, 0x0001, 0x8002,
                ((emax - 1) << fbits) | ((1 << fbits) - 1), 1 << fbits, 0x8000 | (1 << fbits)]
        where = rng.random(shape) < 0.02
        bits = np.where(where, rng.choice(pool, shape), bits)
    return bits


def make_float_layer_data(plan, seed):
    """A float layer's data: bf16/fp16 operands (`float_operands`; with special values when the layer's name
    contains ``specials``), fp32 post-op parameters (bias ~ N(0, 1), scale ~ U(0.01, 4)), and the reference
    (`float_layer`, then `hwgen.postops.apply_float`) as output beats - the padding lanes of the last m-fold included, as the hardware
    computes them (zero weights: ``+0``, or NaN where an activation is an infinity or NaN)."""
    from hwgen import floats
    from hwgen.postops import apply_float, float_params
    from hwgen.reference import float_layer
    spec, p = plan.spec, plan.problem
    rng = np.random.default_rng(seed)
    fmt, specials = spec.float_format, "specials" in p.name
    acts = float_operands(rng, p.act_canonical_shape, fmt, specials=specials)
    weights = float_operands(rng, p.weight_canonical_shape, fmt, scale=0.5, specials=specials)
    acc = float_layer(plan, acts, weights, pad_channels=True)     # the padding lanes as the hardware has them
    bias = floats.encode(rng.standard_normal(p.M), "fp32").astype(np.int64)
    scale = floats.encode(rng.uniform(0.01, 4.0, p.M), "fp32").astype(np.int64)
    params = float_params(bias, scale)
    pad = np.zeros(len(acc) - p.M, dtype=np.int64)       # the padding lanes' parameters: zeros
    padded = float_params(np.concatenate([bias, pad]), np.concatenate([scale, pad]))
    expected = apply_float(acc, padded, plan.postops)
    return LayerData(config_words=plan.config_words(), weight_words=plan.weight_stream(weights),
                     act_words=plan.act_stream(acts), param_words=plan.params_stream(params),
                     expected_beats=plan.pack_outputs(expected))


def make_layer_data(plan, seed):
    """Random operands over the full range of their types, random post-op parameters, and the reference
    result as output beats (float accelerators: `make_float_layer_data`)."""
    spec, p = plan.spec, plan.problem
    if spec.is_float:
        return make_float_layer_data(plan, seed)
    rng = np.random.default_rng(seed)
    if isinstance(plan, SparseLayerPlan):       # the plan is made for its data: W @ x, then the post-ops
        acc = (plan.weight.astype(np.int64) @ plan.x.astype(np.int64)).reshape(p.M, 1, 1)
        params = random_params(rng, acc, p.M)
        return LayerData(config_words=plan.config_words(), weight_words=[], act_words=[],
                         param_words=plan.params_stream(params),
                         expected_beats=plan.pack_outputs(plan.apply_postops(acc, params)),
                         sparse_words=plan.sparse_stream())
    acts = rng.integers(spec.act_type.min, spec.act_type.max, p.act_canonical_shape, endpoint=True)
    weights = rng.integers(plan.weight_type.min, plan.weight_type.max, p.weight_canonical_shape, endpoint=True)
    acc = reference_conv2d(acts, weights, stride=(p.stride_h, p.stride_w), padding=(p.pad_h, p.pad_w),
                           acc_type=spec.acc_type, out_size=(p.E, p.F))
    params = random_params(rng, acc, p.M)
    expected = plan.apply_postops(acc, params)
    return LayerData(config_words=plan.config_words(), weight_words=plan.weight_stream(weights),
                     act_words=plan.act_stream(acts), param_words=plan.params_stream(params),
                     expected_beats=plan.pack_outputs(expected))


@dataclass
class NetworkJob:
    """A whole program for `sim.tb_network`: every stream's words (hex), the beats `out` must carry (hex), the
    model's cycles, and how many beats each layer sends out of the post-op chain (to time it)."""
    words: dict
    expected: list
    model_cycles: int
    layer_beats: list
    lane_bits: int
    lanes: int
    acts_gates: list = field(default_factory=list)   # (first acts word, out beats needed) of host-fed layers
    sparse_gates: list = field(default_factory=list)  # the same for the sparse words of host-fed pruned layers
    seed: int = 1
    stall: float = 0.0
    results_path: str = ""
    max_cycles_factor: int = 20

    def dumps(self):
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text):
        return cls(**json.loads(text))
