"""Post-ops on the output stream: bias, requantization, ReLU, 2x2 pooling. The golden model and the host side.

This module is the single source of truth for the integer semantics of the post-op chain; the hardware
(`hwgen.hw.postops.PostOpPipeline`) is tested bit for bit against `apply`, and the host packs the parameter and
configuration words with the layouts defined here.

The chain, per output channel ``m`` (all steps optional, always in this order)::

    x = acc + bias[m]                                         bias add, exact
    y = saturate(round_shift(x * multiplier[m], shift[m]) + z)   requantization to ``out_type``
    y = max(y, z)                                             ReLU
    out = pool2x2(y)                                          max, or average = round_shift(sum of 4, 2)

``z`` is the output's zero point (``PostOps.zero_point``, 0 unless the layer's output is an asymmetric
quantized tensor: ``real = scale * (y - z)``). ReLU clamps at ``z``, the encoding of a real 0; both poolings
commute with it (``round_shift(sum - 4z, 2) + z == round_shift(sum, 2)``), so pooling needs no zero point.

Rounding, defined once (`round_shift`) and used by requantization and average pooling::

    round_shift(v, s) = floor(v / 2**s + 1/2)   i.e.  (v + (1 << (s - 1))) >> s  for s > 0,  v  for s == 0

with ``>>`` the arithmetic (flooring) shift: round half toward +infinity (``round_shift(5, 1) == 3``,
``round_shift(-5, 1) == -2``). Saturation clamps to ``out_type.min .. out_type.max``.

Stochastic rounding (``PostOps(rounding="stochastic")``, on an accelerator built with
``AcceleratorSpec(stochastic_rounding=True, rounding_seed=...)``) replaces the requantization's
``round_shift`` by ``floor((v + r) / 2**s)``, ``r`` the top ``s`` bits of a 16-bit random draw ``R`` (``r = R >>
(16 - s)``; ``R << (s - 16)`` for shifts past 16): ``v / 2**s`` rounds up with probability equal to its
discarded fraction (to 16 bits), so the rounding error has mean zero. Every output lane (column ``j``) has its
own generator - the project's 32-bit Galois LFSR (`hwgen.lfsr`, 16 fresh bits of its m-sequence per draw, the
same source as the fixed-point engine's) - restarted at ``lane_seed(rounding_seed, j)`` on each command's first
beat and drawing once per beat; beat ``t`` of a command uses draw ``t`` (`stochastic_draws`, `layer_draws`).
Average pooling still rounds half up.

Widths (so the hardware is exact): ``bias`` is int32, ``x`` fits ``max(acc_bits, 32) + 1`` bits, ``multiplier``
is a non-negative int32 and ``shift`` is 0..63, so ``x * multiplier`` fits ``max(acc_bits, 32) + 33`` bits. All
of it is computed exactly; nothing wraps. Without requantization the output lanes carry ``x`` itself, so ``x``
must then fit ``acc_type`` (`apply` raises `OverflowError` otherwise).

Pooling is 2x2 with stride 2 and floor semantics (PyTorch's default, ``ceil_mode=False``): an ``E x F`` map gives
``E//2 x F//2``; with an odd ``E`` (``F``) the last row (column) is dropped. It needs ``E, F >= 2``.

All post-ops run in one streaming pass on the output beats (no extra pass over memory). Output beats keep the
accumulator beat layout - beat ``mf*P' + p'`` with ``p' = e'*F' + f'``, lane ``j`` = channel ``mf*cols + j``,
``acc_bits`` per lane - and each lane carries the ``out_type`` value sign-extended (its integer value encoded as
``acc_type``), so `unpack_stream` with ``lane_type=acc_type`` decodes it.
"""

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor, frexp, isfinite

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .dtypes import IntType, int8, int32, parse_dtype
from .lfsr import DRAW_STEPS as DRAW_BITS, LfsrBank, lane_seed
from .errors import (DataError, DataOverflowError, DataTypeError, DesignError, DesignTypeError,
                     MappingError)

__all__ = [
    "POOL_MODES", "ROUNDING_MODES", "PostOps", "column_seeds", "stochastic_draws", "layer_draws",
    "stochastic_round_shift", "QuantParams", "quantize_multiplier",
    "round_shift", "add_bias", "requantize", "relu", "max_pool2x2", "avg_pool2x2", "pool_out_size", "apply",
    "PARAM_FIELDS", "params_lane_layout", "params_layout", "pack_params",
    "config_layout", "config_values", "pack_config", "check_layer", "check_supported", "params_port_bits",
    "pack_stream", "unpack_stream", "float_params", "apply_float", "check_float",
]

POOL_MODES = ("none", "max", "avg")
ROUNDING_MODES = ("nearest", "stochastic")   # of the requantization (`PostOps.rounding`)
POOL_CODES = {"none": 0, "max": 1, "avg": 2}   # the ``pool`` configuration field

MULTIPLIER_MAX = (1 << 31) - 1
SHIFT_MAX = 63
BIAS_TYPE = int32


# Per-layer settings --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PostOps:
    """Which post-ops a layer applies to its accumulators, and the output element type.

    ``out_type`` defaults to int8 with ``requant``; without it the output is the accumulator type itself (leave
    ``out_type`` unset): only requantization narrows values.
    """
    bias: bool = False
    requant: bool = False
    relu: bool = False
    pool: str = "none"
    out_type: IntType | None = None
    zero_point: int = 0     # the output's zero point (requantized outputs only), in out_type's range
    rounding: str = "nearest"   # of the requantization: "nearest" (half up) or "stochastic" (see module doc)

    def __post_init__(self):
        if self.rounding not in ROUNDING_MODES:
            raise DesignError(f"PostOps.rounding must be one of {ROUNDING_MODES}, not {self.rounding!r}")
        if self.rounding == "stochastic" and not self.requant:
            raise DesignError("PostOps.rounding='stochastic' rounds the requantization; set requant=True too, or "
                              "leave rounding='nearest'")
        for name in ("bias", "requant", "relu"):
            if not isinstance(getattr(self, name), bool):
                raise DesignTypeError(f"PostOps.{name} must be a bool, not {getattr(self, name)!r}")
        if self.pool not in POOL_MODES:
            raise DesignError(f"PostOps.pool must be one of {POOL_MODES}, not {self.pool!r}")
        if self.out_type is None:
            if self.requant:
                object.__setattr__(self, "out_type", int8)
        else:
            if not self.requant:
                raise DesignError(f"PostOps.out_type={self.out_type} needs requant=True: only requantization "
                                 f"narrows the accumulators; leave out_type unset to output the accumulator type")
            object.__setattr__(self, "out_type", parse_dtype(self.out_type, what="PostOps.out_type"))
        zero_point = self.zero_point
        if not isinstance(zero_point, (int, np.integer)) or isinstance(zero_point, bool):
            raise DesignTypeError(f"PostOps.zero_point must be an integer, not {zero_point!r}")
        object.__setattr__(self, "zero_point", int(zero_point))
        if zero_point:
            if not self.requant:
                raise DesignError(f"PostOps.zero_point={zero_point} needs requant=True: the zero point is added "
                                 f"to the requantized output")
            if not self.out_type.min <= zero_point <= self.out_type.max:
                raise DesignError(f"PostOps.zero_point={zero_point} is outside out_type {self.out_type} "
                                 f"({self.out_type.min}..{self.out_type.max})")

    @property
    def needs_params(self):
        """Whether the layer needs a `QuantParams` (and the hardware a parameter load)."""
        return self.bias or self.requant

    @property
    def is_identity(self):
        return not (self.bias or self.requant or self.relu) and self.pool == "none"

    def output_type(self, acc_type):
        """The element type of the results: ``out_type`` when requantizing, else ``acc_type``."""
        acc_type = parse_dtype(acc_type, what="acc_type")
        out = self.out_type if self.requant else acc_type
        if getattr(out, "is_float", False) != getattr(acc_type, "is_float", False):
            raise DesignError(f"out_type {out} and acc_type {acc_type}: a float output needs a float accelerator "
                              f"(acc_type fp32, PostOps(requant=True, out_type='bf16'/'fp16'/'fp32')), an integer "
                              f"one an integer out_type (e.g. int8)")
        if out.min < acc_type.min or out.max > acc_type.max:
            raise DesignError(f"out_type {out} does not fit the {acc_type} output lanes; use an out_type whose "
                             f"range lies inside {acc_type} (e.g. int8)")
        return out

    def out_size(self, E, F):
        """Output height and width after pooling (floor semantics)."""
        return pool_out_size(E, F) if self.pool != "none" else (E, F)


# Per-channel parameters ----------------------------------------------------------------------------------------

def _channel_array(value, what, low, high):
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise DataTypeError(f"QuantParams.{what} must hold integers, not {array.dtype}")
    if array.ndim != 1:
        raise DataError(f"QuantParams.{what} must be 1-D (one value per output channel), got shape {array.shape}")
    array = array.astype(np.int64)
    if array.size and (array.min() < low or array.max() > high):
        bad = array[(array < low) | (array > high)][0]
        raise DataError(f"QuantParams.{what} holds {bad}, outside {low}..{high}")
    return array


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Per-output-channel parameters: ``bias`` (int32), ``multiplier`` (0 .. 2**31-1), ``shift`` (0..63).

    Each is a 1-D integer array of one entry per output channel, or None when the layer does not use it. The
    real scale a (multiplier, shift) pair stands for is ``multiplier * 2**-shift``; see `quantize_multiplier`.
    """
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None

    def __post_init__(self):
        limits = {"bias": (BIAS_TYPE.min, BIAS_TYPE.max), "multiplier": (0, MULTIPLIER_MAX), "shift": (0, SHIFT_MAX)}
        lengths = set()
        for name, (low, high) in limits.items():
            if getattr(self, name) is not None:
                array = _channel_array(getattr(self, name), name, low, high)
                object.__setattr__(self, name, array)
                lengths.add(len(array))
        if len(lengths) > 1:
            raise DataError(f"QuantParams arrays differ in length ({sorted(lengths)}); give one entry per "
                             f"output channel")
        if (self.multiplier is None) != (self.shift is None):
            raise DataError("QuantParams needs both multiplier and shift for requantization, or neither")

    @property
    def channels(self):
        for array in (self.bias, self.multiplier, self.shift):
            if array is not None:
                return len(array)
        return None

    @classmethod
    def from_scales(cls, scales, bias=None):
        """Per-channel real scales (e.g. ``in_scale * w_scale[m] / out_scale``) -> multipliers and shifts."""
        pairs = [quantize_multiplier(float(s)) for s in np.asarray(scales, dtype=np.float64).ravel()]
        return cls(bias=bias, multiplier=np.array([p[0] for p in pairs], dtype=np.int64),
                   shift=np.array([p[1] for p in pairs], dtype=np.int64))

    def channels_slice(self, start, stop):
        """The parameters of output channels ``start .. stop-1`` (for a command covering part of M)."""
        pick = {name: None if getattr(self, name) is None else getattr(self, name)[start:stop]
                for name in ("bias", "multiplier", "shift")}
        return QuantParams(**pick)

    def check(self, postops, M):
        """Raise unless these parameters give what `postops` needs for ``M`` output channels."""
        if postops.bias and self.bias is None:
            raise DataError("PostOps.bias is set but QuantParams.bias is None")
        if postops.requant and self.multiplier is None:
            raise DataError("PostOps.requant is set but QuantParams has no multiplier/shift")
        if self.channels is not None and self.channels != M:
            raise DataError(f"QuantParams has {self.channels} channels but the layer has M={M} output channels")


def quantize_multiplier(scale):
    """A real scale -> ``(multiplier, shift)`` with ``multiplier * 2**-shift`` nearest to it (like TFLite).

    The multiplier is normalized into ``[2**30, 2**31)`` for full precision whenever the shift range allows;
    scales below ``2**-33`` lose precision (shift is capped at 63) and round to 0 below ``2**-64``.
    """
    if not isinstance(scale, (int, float)) or not isfinite(scale) or scale < 0:
        raise DataError(f"a requantization scale must be a finite number >= 0, not {scale!r}")
    if scale == 0:
        return 0, 0
    _, exponent = frexp(scale)            # scale = mantissa * 2**exponent, mantissa in [0.5, 1)
    shift = min(31 - exponent, SHIFT_MAX)
    if shift < 0:
        raise DataError(f"scale {scale} is too large: at most {MULTIPLIER_MAX} (multiplier 2**31-1, shift 0)")
    multiplier = floor(Fraction(scale) * 2 ** shift + Fraction(1, 2))
    if multiplier > MULTIPLIER_MAX:       # the mantissa rounded up to 1.0
        if shift == 0:
            raise DataError(f"scale {scale} is too large: at most {MULTIPLIER_MAX}")
        multiplier, shift = ceil(multiplier / 2), shift - 1
    return int(multiplier), int(shift)


# The golden model --------------------------------------------------------------------------------------------

def round_shift(value, shift):
    """``floor(value / 2**shift + 1/2)``: arithmetic right shift rounding half toward +infinity.

    ``(value + (1 << (shift - 1))) >> shift`` for ``shift > 0``; ``value`` itself for ``shift == 0``. Works
    elementwise on int64 or Python-int (object) arrays, ``shift`` broadcast against ``value``. On int64 it is
    computed as ``(value >> shift) + ((value >> (shift - 1)) & 1)``, the same number without the addend that
    could overflow.
    """
    value = np.asarray(value)
    shift = np.broadcast_to(np.asarray(shift), value.shape)
    if value.dtype == object:
        flat = [(int(v) + (1 << (int(s) - 1))) >> int(s) if s > 0 else int(v)
                for v, s in zip(value.ravel(), shift.ravel())]
        return np.array(flat, dtype=object).reshape(value.shape)
    value = value.astype(np.int64)
    shift = shift.astype(np.int64)
    below = np.maximum(shift - 1, 0)
    return np.where(shift > 0, (value >> shift) + ((value >> below) & 1), value)


def column_seeds(seed, cols):
    """The start state of each column's generator: `hwgen.lfsr.lane_seed` of the accelerator's
    ``rounding_seed`` and the column."""
    return [lane_seed(seed, j) for j in range(cols)]


def stochastic_draws(*, seed, cols, beats):
    """``draws[j, t]``: the 16-bit random number (`hwgen.lfsr.draw`) lane ``j`` uses for the ``t``-th beat of a
    command (the generator restarts at `column_seeds` on each command's first beat, and draws once per beat)."""
    return LfsrBank(seed, cols).draw(beats).T


def stochastic_round_shift(value, shift, draw):
    """``floor((value + r) / 2**shift)`` with ``r = draw >> (16 - shift)`` (``shift <= 16``) or ``draw << (shift -
    16)``: rounds up with probability equal to the discarded fraction (``draw`` uniform over 16 bits; beyond
    16 discarded bits the fraction counts to 16 bits, a bias below ``2**-16``). Exact (Python ints),
    elementwise; ``shift``/``draw`` broadcast against ``value``."""
    value = np.asarray(value)
    shift = np.broadcast_to(np.asarray(shift), value.shape)
    draw = np.broadcast_to(np.asarray(draw), value.shape)
    flat = []
    for v, s, d in zip(value.ravel().tolist(), shift.ravel().tolist(), draw.ravel().tolist()):
        s, d = int(s), int(d)
        r = d >> (DRAW_BITS - s) if s <= DRAW_BITS else d << (s - DRAW_BITS)
        flat.append((int(v) + r) >> s)
    return np.array(flat, dtype=object).reshape(value.shape)


def _per_channel(array, values):
    """Broadcast a per-channel vector against ``[M, ...]``."""
    return np.asarray(values).reshape((-1,) + (1,) * (array.ndim - 1))


def add_bias(acc, bias):
    """``acc[m, ...] + bias[m]``, exact (in ``acc``'s dtype: int64, or object for wide accumulators)."""
    acc = np.asarray(acc)
    return acc + _per_channel(acc, np.asarray(bias, dtype=np.int64).astype(acc.dtype))


def requantize(x, multiplier, shift, out_type, zero_point=0, *, draws=None):
    """``saturate_out(round_shift(x * multiplier[m], shift[m]) + zero_point)`` -> int64, exact for any integer
    ``x``. With ``draws`` (an array like ``x`` of 32-bit random numbers) the rounding is stochastic
    (`stochastic_round_shift`)."""
    out_type = parse_dtype(out_type, what="out_type")
    x = np.asarray(x)
    if draws is not None:
        x = x.astype(object)
        multiplier = _per_channel(x, np.asarray(multiplier, dtype=np.int64).astype(object))
        shift = _per_channel(x, np.asarray(shift, dtype=np.int64))
        rounded = stochastic_round_shift(x * multiplier, shift, draws) + int(zero_point)
        return np.minimum(np.maximum(rounded, out_type.min), out_type.max).astype(np.int64)
    if x.dtype != object and x.size and int(np.abs(x).max()) >= 1 << 31:
        x = x.astype(object)    # |x * multiplier| could pass 2**62: compute with Python ints
    multiplier = _per_channel(x, np.asarray(multiplier, dtype=np.int64).astype(x.dtype))
    rounded = round_shift(x * multiplier, _per_channel(x, np.asarray(shift, dtype=np.int64))) + int(zero_point)
    return np.minimum(np.maximum(rounded, out_type.min), out_type.max).astype(np.int64)


def relu(y, zero_point=0):
    """ReLU on quantized values: ``max(y, zero_point)`` (the zero point encodes a real 0)."""
    return np.maximum(np.asarray(y), int(zero_point))


def pool_out_size(E, F):
    """``(E // 2, F // 2)``: 2x2 windows with stride 2, a last odd row/column dropped (floor semantics)."""
    if E < 2 or F < 2:
        raise MappingError(f"2x2 pooling needs an output of at least 2x2, not {E}x{F}")
    return E // 2, F // 2


def _windows(y):
    """``[M, E, F]`` -> the four ``[M, E//2, F//2]`` corners of each 2x2 window (odd row/column dropped)."""
    y = np.asarray(y)
    if y.ndim != 3:
        raise DataError(f"pooling takes a [M, E, F] array, got shape {y.shape}")
    E2, F2 = pool_out_size(y.shape[1], y.shape[2])
    y = y[:, :2 * E2, :2 * F2]
    return y[:, 0::2, 0::2], y[:, 0::2, 1::2], y[:, 1::2, 0::2], y[:, 1::2, 1::2]


def max_pool2x2(y):
    a, b, c, d = _windows(y)
    return np.maximum(np.maximum(a, b), np.maximum(c, d))


def avg_pool2x2(y):
    """``round_shift(a + b + c + d, 2)``: the average of the window, rounded half toward +infinity."""
    a, b, c, d = _windows(y)
    return round_shift(a + b + c + d, 2)


def layer_draws(M, E, F, *, seed, cols):
    """``draws[M, E, F]``: the random number each accumulator of one command is rounded with. Channel ``m`` is
    lane ``m % cols`` of the beats of m-fold ``m // cols``; beat ``t = mf*E*F + e*F + f`` of the command takes
    draw ``t`` of its lane's generator (`stochastic_draws`)."""
    m_folds = ceil(M / cols)
    draws = stochastic_draws(seed=seed, cols=cols, beats=m_folds * E * F)     # [cols, m_folds*E*F]
    per = draws.reshape(cols, m_folds, E, F).transpose(1, 0, 2, 3).reshape(m_folds * cols, E, F)
    return per[:M]


def apply(acc, params, postops, acc_type=int32, *, seed=None, cols=None):
    """Run the post-op chain on accumulators ``acc[M, E, F]`` -> ``out[M, E', F']`` (int64).

    ``params`` is a `QuantParams` (or None when ``postops`` needs no parameters); ``acc`` must fit ``acc_type``.
    Stochastic rounding (``postops.rounding``) needs the accelerator's ``seed`` (``AcceleratorSpec.rounding_seed``)
    and ``cols``: ``acc`` is then one command's output, whose beats draw from the lanes' generators in stream order
    (`layer_draws`; a tiled layer: `hwgen.tiling.LayerPlan.apply_postops`).
    """
    if not isinstance(postops, PostOps):
        raise DesignTypeError(f"postops must be a PostOps, not {postops!r}")
    acc_type = parse_dtype(acc_type, what="acc_type")
    out_type = postops.output_type(acc_type)
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise DataTypeError(f"acc must hold integers, not {acc.dtype}")
    if acc.ndim != 3:
        raise DataError(f"acc must be a [M, E, F] array, got shape {acc.shape}")
    # int64 is exact up to 32-bit accumulators (x < 2**33; `requantize` widens itself); wider: Python ints.
    acc = acc.astype(np.int64) if acc_type.bits <= 32 else acc.astype(object)
    if acc.size and (acc.min() < acc_type.min or acc.max() > acc_type.max):
        raise DataOverflowError(f"an accumulator is outside {acc_type}")
    M = acc.shape[0]
    if postops.needs_params:
        if not isinstance(params, QuantParams):
            raise DataTypeError(f"these post-ops need a QuantParams, not {params!r}")
        params.check(postops, M)
    if postops.pool != "none":
        pool_out_size(acc.shape[1], acc.shape[2])

    y = add_bias(acc, params.bias) if postops.bias else acc
    draws = None
    if postops.rounding == "stochastic":
        if seed is None or cols is None:
            raise DataError("stochastic rounding draws from the accelerator's generators: pass apply(..., "
                            "seed=spec.rounding_seed, cols=spec.cols)")
        draws = layer_draws(*acc.shape, seed=seed, cols=cols)
    if postops.requant:
        y = requantize(y, params.multiplier, params.shift, out_type, postops.zero_point, draws=draws)
    elif y.size and (y.min() < acc_type.min or y.max() > acc_type.max):
        worst = int(y.max()) if y.max() > acc_type.max else int(y.min())
        raise DataOverflowError(f"accumulator + bias reaches {worst}, outside {acc_type}; without requantization the "
                            f"output lanes carry it - requantize, or use smaller biases or a wider acc_type")
    if postops.relu:
        y = relu(y, postops.zero_point)
    if postops.pool == "max":
        y = max_pool2x2(y)
    elif postops.pool == "avg":
        y = avg_pool2x2(y)
    return np.asarray(y, dtype=np.int64)


# Host side: parameter beats -------------------------------------------------------------------------------

PARAM_FIELDS = (("bias", signed(32)), ("multiplier", signed(32)), ("shift", unsigned(6)))


def params_lane_layout():
    """One channel's parameters: ``bias`` bits 0..31, ``multiplier`` 32..63, ``shift`` 64..69 (70 bits)."""
    return data.StructLayout(dict(PARAM_FIELDS))


def params_port_bits(spec):
    """Width of the accelerator's ``params`` stream: one `params_layout` beat of ``spec.postop_lanes`` lanes, or 1
    (an unused port that never accepts) when the spec builds no post-op chain (``postops=False``)."""
    return params_layout(spec.postop_lanes).size if spec.postops else 1


def params_layout(lanes):
    """One parameter beat: ``lanes`` lanes of `params_lane_layout`, lane ``j`` at bit ``70*j``."""
    return data.ArrayLayout(params_lane_layout(), lanes)


def pack_params(params, *, cols, M=None, lanes=None):
    """`QuantParams` -> the parameter-stream words: per m-fold (``ceil(M / cols)``), ``cols // lanes`` words of
    ``lanes`` channels each (the post-op chain's groups; ``lanes`` defaults to ``cols``: one word per m-fold),
    lane 0 of a word in its LSBs. Word ``mf * (cols // lanes) + g`` holds channels
    ``mf*cols + g*lanes .. + lanes - 1``.

    Missing fields and lanes past ``M`` are packed as zero (bias 0, multiplier 0, shift 0).
    """
    M = params.channels if M is None else M
    lanes = cols if lanes is None else lanes
    if M is None:
        raise DataError("pack_params needs M when QuantParams holds no arrays")
    if params.channels is not None and params.channels != M:
        raise DataError(f"QuantParams has {params.channels} channels, not M={M}")
    if lanes < 1 or cols % lanes:
        raise DataError(f"lanes={lanes} must divide cols={cols}")
    lane_layout = params_lane_layout()
    m_folds = ceil(M / cols)
    fields = {name: np.zeros(m_folds * cols, dtype=np.int64) for name, _ in PARAM_FIELDS}
    for name, _ in PARAM_FIELDS:
        if getattr(params, name) is not None:
            fields[name][:M] = getattr(params, name)
    words = []
    for first in range(0, m_folds * cols, lanes):
        word = 0
        for j in range(lanes):
            lane = 0
            for name, shape in PARAM_FIELDS:
                field = lane_layout[name]
                lane |= (int(fields[name][first + j]) & ((1 << field.width) - 1)) << field.offset
            word |= lane << (j * lane_layout.size)
        words.append(word)
    return words


# Host side: configuration ---------------------------------------------------------------------------------

def config_layout(spec, *, dims_bits=None):
    """The per-layer configuration the post-op pipeline reads (held constant while a layer streams).

    ``bias``/``requant``/``relu`` flags; ``pool`` (0 none, 1 max, 2 avg); the output type as ``out_bits`` and
    ``out_signed`` (saturation bounds); the layer's ``out_h`` (E), ``out_w`` (F) and ``m_folds``, all unsigned
    and ``dims_bits`` wide (default: the accelerator's configuration field width, `hwgen.hw.config.field_bits`).
    """
    from .hw.config import field_bits
    bits = field_bits(spec) if dims_bits is None else dims_bits
    return data.StructLayout({
        "bias": unsigned(1), "requant": unsigned(1), "relu": unsigned(1), "pool": unsigned(2),
        "out_bits": unsigned(spec.acc_type.bits.bit_length()), "out_signed": unsigned(1),
        "out_h": unsigned(bits), "out_w": unsigned(bits), "m_folds": unsigned(bits),
        "zero_point": unsigned(ZERO_POINT_BITS),    # two's complement
        "dest": unsigned(1),                        # where the beats go: `o_dest` (0: out, 1: on-chip feedback)
        "stochastic": unsigned(1),                  # stochastic rounding of the requantization
    })


ZERO_POINT_BITS = 16


def config_values(postops, acc_type, *, out_h, out_w, m_folds, dest=0):
    """The `config_layout` field values of one layer (pre-pooling ``out_h``, ``out_w``)."""
    out = postops.output_type(acc_type)
    if not -(1 << (ZERO_POINT_BITS - 1)) <= postops.zero_point < 1 << (ZERO_POINT_BITS - 1):
        raise MappingError(f"PostOps.zero_point={postops.zero_point} is beyond the {ZERO_POINT_BITS}-bit zero "
                           f"point of the post-op chain")
    return {"bias": int(postops.bias), "requant": int(postops.requant), "relu": int(postops.relu),
            "pool": POOL_CODES[postops.pool], "out_bits": out.bits, "out_signed": int(out.signed),
            "out_h": out_h, "out_w": out_w, "m_folds": m_folds,
            "zero_point": postops.zero_point & ((1 << ZERO_POINT_BITS) - 1), "dest": dest,
            "stochastic": int(postops.rounding == "stochastic")}


def pack_config(spec, values, *, dims_bits=None):
    """`config_values` -> the integer of a `config_layout` word."""
    from .hw.config import pack_fields
    return pack_fields(config_layout(spec, dims_bits=dims_bits), values, what="post-op config")


def check_layer(postops, *, out_h, out_w, m_folds, max_out_w, max_m_folds, layer="layer"):
    """Raise `MappingError` unless a pipeline built with ``max_out_w``/``max_m_folds`` can run this layer."""
    if postops.pool != "none":
        if out_h < 2 or out_w < 2:
            raise MappingError(f"{layer}: 2x2 pooling needs an output of at least 2x2, not {out_h}x{out_w}; "
                               f"drop the pooling or enlarge the layer")
        if out_w > max_out_w:
            raise MappingError(f"{layer}: pooling an output {out_w} pixels wide needs a line buffer of "
                               f"{out_w // 2} entries but the post-op pipeline holds {max_out_w // 2}; set "
                               f"AcceleratorSpec(max_pool_width=...) >= {out_w}")
    if postops.needs_params and m_folds > max_m_folds:
        raise MappingError(f"{layer}: {m_folds} m-folds of parameters do not fit the post-op parameter memory "
                           f"of {max_m_folds} m-folds per bank; set AcceleratorSpec(max_out_channels=...) to at "
                           f"least {m_folds} x cols, or plan the layer with hwgen.tiling.plan_layer, which splits "
                           f"its output channels")


def check_supported(spec, postops, layer="layer"):
    """Raise `MappingError` if ``postops`` asks for a chain that ``spec`` was built without."""
    if getattr(spec, "is_float", False):
        check_float(postops, layer, spec.float_format)
    if postops.rounding == "stochastic" and not getattr(spec, "stochastic_rounding", False):
        raise MappingError(f"{layer}: the layer asks for stochastic rounding but accelerator {spec.name!r} is built "
                           f"without the rounding generators; build it with AcceleratorSpec(..., "
                           f"stochastic_rounding=True), or use PostOps(rounding='nearest')")
    if postops.pool != "none" and getattr(spec, "postops", False) and not getattr(spec, "postop_pooling", True):
        raise MappingError(f"{layer}: the layer asks for pool={postops.pool!r} but accelerator {spec.name!r} is "
                           f"built without the post-op chain's pooling (postop_pooling=False); build it with "
                           f"AcceleratorSpec(..., postop_pooling=True), or pool on the host (hwgen.postops."
                           f"max_pool2x2 / avg_pool2x2)")
    if not spec.postops and not postops.is_identity:
        asked = [name for name in ("bias", "requant", "relu") if getattr(postops, name)]
        asked += [f"pool={postops.pool!r}"] if postops.pool != "none" else []
        raise MappingError(f"{layer}: the layer asks for post-ops ({', '.join(asked)}) but accelerator "
                           f"{spec.name!r} is built without the post-op chain (postops=False); build it with "
                           f"AcceleratorSpec(..., postops=True), or drop the post-ops from the layer and apply "
                           f"them on the host (hwgen.postops.apply)")


# The float chain (`hwgen.floats`; accelerators with act_type bf16/fp16 and acc_type fp32) ----------------------

def check_float(postops, layer="layer", fmt=None):
    """Raise `MappingError` unless ``postops`` is a chain the float datapath (operands of format ``fmt``) runs:
    fp32 bias add, requantization as an fp32 scale multiply with the output in ``fmt`` or fp32
    (``PostOps(requant=True, out_type=fmt)``), ReLU and 2x2 max pooling. Average pooling, zero points and
    stochastic rounding are integer-only."""
    asked = [name for name, on in (("pool='avg'", postops.pool == "avg"),
                                   (f"zero_point={postops.zero_point}", postops.zero_point != 0),
                                   ("rounding='stochastic'", postops.rounding == "stochastic")) if on]
    if asked:
        raise MappingError(f"{layer}: a float layer's post-ops are an fp32 bias add, an fp32 scale (requant), "
                           f"ReLU and 2x2 max pooling; {', '.join(asked)} is integer-only - drop it, or quantize "
                           f"the layer to an integer accelerator")
    if postops.requant:
        allowed = ("fp32",) + ((fmt,) if fmt else ("bf16", "fp16"))
        if not getattr(postops.out_type, "is_float", False) or postops.out_type.name not in allowed:
            raise MappingError(f"{layer}: a float layer's requantization multiplies by an fp32 scale and outputs "
                               f"{' or '.join(allowed)}, not {postops.out_type}; use PostOps(requant=True, "
                               f"out_type={allowed[-1]!r})")


def float_params(bias=None, scale=None):
    """Per-channel fp32 biases and requantization scales (bit patterns, e.g. from ``hwgen.floats.encode(b,
    "fp32")``; scales non-negative) as the `QuantParams` the parameter stream carries: the bias pattern in the
    32-bit bias field, the scale's in the multiplier field."""
    fields = {}
    for name, value in (("bias", bias), ("scale", scale)):
        if value is None:
            continue
        bits = np.asarray(value, dtype=np.int64)
        top = 0x7FFFFFFF if name == "scale" else 0xFFFFFFFF
        if bits.ndim != 1 or (bits.size and (bits.min() < 0 or bits.max() > top)):
            raise DataError(f"float {name}s must be a 1-D array of {'non-negative ' if name == 'scale' else ''}"
                            f"fp32 bit patterns (0..{top:#x}); encode real values with "
                            f"hwgen.floats.encode(values, 'fp32')")
        fields[name] = bits
    params = {}
    if "bias" in fields:
        bits = fields["bias"]
        params["bias"] = np.where(bits >= 1 << 31, bits - (1 << 32), bits)
    if "scale" in fields:
        params["multiplier"] = fields["scale"]
        params["shift"] = np.zeros_like(fields["scale"])
    return QuantParams(**params)


def apply_float(acc, params, postops):
    """The float post-op chain on fp32 accumulators ``acc[M, E, F]`` (bit patterns) -> output patterns (int64):
    ``x = acc + bias[m]`` (`hwgen.floats.add`), with ``requant`` ``y = round_to(x * scale[m], out_type)``
    (`hwgen.floats.mul`, `hwgen.floats.round_to`: fp32, then the output format, each to nearest even), ``relu``
    (negatives and -0 to +0, NaN kept), 2x2 max pooling (floor semantics; ``+0 > -0``, NaN if any of the window
    is NaN), then the output format's patterns (fp32, or bf16/fp16 in the low 16 bits of the lane)."""
    from . import floats
    check_float(postops)
    acc = np.asarray(acc)
    if acc.ndim != 3:
        raise DataError(f"acc must be a [M, E, F] array, got shape {acc.shape}")
    y = acc.astype(np.uint64)
    if postops.needs_params:
        if not isinstance(params, QuantParams):
            raise DataTypeError("a float layer with bias or scale needs hwgen.postops.float_params(bias, scale)")
        params.check(postops, acc.shape[0])
    if postops.bias:
        bias = (params.bias.astype(np.int64) & 0xFFFFFFFF).astype(np.uint64)
        y = floats.add(y, bias[:, None, None])
    out = postops.out_type.name if postops.requant else "fp32"
    if postops.requant:
        y = floats.mul(y, params.multiplier.astype(np.uint64)[:, None, None])
        y = floats.round_to(y, out)
    if postops.relu:
        y = floats.relu(y)
    if postops.pool == "max":
        E, F = pool_out_size(acc.shape[1], acc.shape[2])
        w = y[:, :2 * E, :2 * F]
        y = floats.maximum(floats.maximum(w[:, 0::2, 0::2], w[:, 0::2, 1::2]),
                           floats.maximum(w[:, 1::2, 0::2], w[:, 1::2, 1::2]))
    return np.asarray(floats.to_format(y, out), dtype=np.int64)


# Host side: beats <-> arrays ------------------------------------------------------------------------------

def pack_stream(values, *, cols, lane_type):
    """``values[M, E, F]`` -> beats in output-stream order (``mf*E*F + e*F + f``), lanes past ``M`` zero."""
    values = np.asarray(values, dtype=np.int64)
    M, E, F = values.shape
    m_folds = ceil(M / cols)
    padded = np.zeros((m_folds * cols, E, F), dtype=np.int64)
    padded[:M] = values
    lanes = lane_type.to_bits(padded.reshape(m_folds, cols, E * F).transpose(0, 2, 1).reshape(-1, cols))
    return [sum(int(v) << (j * lane_type.bits) for j, v in enumerate(row.tolist())) for row in lanes]


def unpack_stream(beats, *, M, E, F, cols, lane_type):
    """Inverse of `pack_stream`: beats -> ``[M, E, F]`` (lanes past ``M`` dropped)."""
    m_folds = ceil(M / cols)
    if len(beats) != m_folds * E * F:
        raise DataError(f"expected {m_folds * E * F} beats ({m_folds} m-folds x {E}x{F}), got {len(beats)}")
    mask = (1 << lane_type.bits) - 1
    raw = np.array([[(int(b) >> (j * lane_type.bits)) & mask for j in range(cols)] for b in beats],
                   dtype=np.uint64).reshape(-1, cols)
    values = lane_type.from_bits(raw).reshape(m_folds, E * F, cols).transpose(0, 2, 1)
    return values.reshape(m_folds * cols, E, F)[:M]
