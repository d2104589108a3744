"""hwgen's post-training quantization: a `FloatNetwork` and calibration data -> a `QuantizedNetwork`.

Written once, each step a small function with exact semantics:

* **Weights** (`quantize_weights`): int8, symmetric, per output channel. ``weight_scale[m] = max|W[m]| / 127``
  (1.0 for an all-zero channel) and ``w = clip(rint(W / weight_scale[m]), -127, 127)``; ``rint`` rounds half to
  even. -128 is never used, so the weight range is symmetric. ``weight_bits`` picks int4 or int2 per layer
  instead for fully connected layers, which run packed two (four) to a byte on the matrix-vector engine
  (`layer_weight_bits`): int4 ``q = 7``, ``weight_scale[m] = max|W[m]| / 7``, ``w`` in ``[-7, 7]``; int2
  ``q = 1``, ``w`` in ``[-1, 1]`` (ternary: symmetric and zero-centred like int8/int4 - a per-channel scale
  carries the magnitude, so -2, which would make the range lopsided, is not used). With one level a side,
  ``max|W[m]| / 1`` would round every weight under half the channel's peak to 0; the int2 scale is instead the
  one of ``max|W[m]| * k / 64``, ``k = 1..64``, with the least squared error ``sum (W - scale * w)**2`` over the
  channel (the smallest such ``k`` on a tie).
* **Activations** (`calibrate_range`, `activation_qparams`): one scale and zero point per tensor, from the float
  network run on the calibration inputs (`FloatNetwork.trace`). The tensor a layer's output quantization sees
  is its output after bias and ReLU, before pooling (pooling commutes with it). The range is the min/max of
  the calibration values (``method="minmax"``) or their ``percentile`` / ``100 - percentile`` percentiles
  (``method="percentile"``, e.g. 99.99: a few outliers no longer stretch the scale; the rest saturate).

  - ``activations="symmetric"`` (default, what today's hardware runs): zero point 0 and
    ``scale = max(|lo|, |hi|) / 127``; a post-ReLU tensor (``lo >= 0``) uses ``[0, 127]``.
  - ``activations="asymmetric"``: the range is widened to hold 0, ``scale = (hi - lo) / 255`` and
    ``zero_point = clip(round(-128 - lo / scale), -128, 127)``, the full ``[-128, 127]`` (a post-ReLU tensor
    gets zero point -128). This uses `PostOps.zero_point` and ``reference.conv2d(pad_value=...)``, which the
    hardware does not have yet (`hwgen.postops.check_supported` rejects it).

  Scales are rounded to float32 (what an ONNX QDQ model would hold); a tensor that is 0 on every calibration
  input gets scale 1.0.
* **Bias** (`quantize_bias`): int32 ``round(b[m] / (in_scale * weight_scale[m]))`` (half to even); a bias
  outside int32 is an error naming the layer. `QLayer.from_quantized` then folds the input zero point in and
  derives the fixed-point multiplier and shift with `hwgen.postops.quantize_multiplier`.
"""

import numpy as np

from ..errors import MappingError
from .graph import FloatNetwork
from .network import ACT_TYPE, WEIGHT_TYPES, QLayer, QuantizedNetwork, check_weight_bits

__all__ = ["quantize", "quantize_weights", "layer_weight_bits", "calibrate_range", "activation_qparams",
           "quantize_bias", "ACTIVATION_MODES", "CALIBRATION_METHODS"]

ACTIVATION_MODES = ("symmetric", "asymmetric")
CALIBRATION_METHODS = ("minmax", "percentile")
WEIGHT_MAX = 127
INT2_SCALE_STEPS = 64     # the int2 scale: the best of max|W[m]| * k / 64, k = 1..64


def quantize_weights(weight, bits=8):
    """Float ``weight[M, ...]`` -> ``(w, weight_scale)``: int64 ``w`` in ``[-q, q]`` with ``q = 2**(bits-1) - 1``
    (127 for int8, 7 for int4, 1 for int2) and float64 scales [M] with ``weight ~ weight_scale[m] * w[m]``
    (symmetric, per output channel, ``rint`` half to even; the int2 scale least-squares, see the module)."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim < 1 or not np.all(np.isfinite(weight)):
        raise ValueError("quantize_weights takes a finite float array [M, ...]")
    if isinstance(bits, bool) or bits not in WEIGHT_TYPES:
        raise ValueError(f"quantize_weights: bits must be 8, 4 or 2, not {bits!r}")
    qmax = 2 ** (bits - 1) - 1
    flat = weight.reshape(len(weight), -1)
    peak = np.abs(flat).max(axis=1, initial=0.0)
    scale = np.where(peak > 0, peak / qmax, 1.0)
    if bits == 2:
        best = np.full(len(flat), np.inf)
        for k in range(1, INT2_SCALE_STEPS + 1):
            candidate = np.where(peak > 0, peak * k / INT2_SCALE_STEPS, 1.0)
            q = np.clip(np.rint(flat / candidate[:, None]), -qmax, qmax)
            error = ((flat - candidate[:, None] * q) ** 2).sum(axis=1)
            better = error < best
            best, scale = np.where(better, error, best), np.where(better, candidate, scale)
    q = np.rint(weight / scale.reshape((-1,) + (1,) * (weight.ndim - 1)))
    return np.clip(q, -qmax, qmax).astype(np.int64), scale


def layer_weight_bits(network, weight_bits):
    """``{layer name: bits}`` from a `quantize` ``weight_bits`` argument: one number for every layer, or a dict
    naming layers, where the key ``"linear"`` stands for every fully connected layer (e.g. ``{"linear": 4}``:
    int4 weights on the FC layers, int8 on the convolutions; ``{"linear": 2}``: int2). Raises `MappingError`
    naming the culprit."""
    names = [layer.name for layer in network.layers]
    kinds = {layer.name: layer.kind for layer in network.layers}
    if isinstance(weight_bits, dict):
        unknown = sorted(set(weight_bits) - set(names) - {"linear"})
        if unknown:
            raise MappingError(f"weight_bits names layers {unknown} that network {network.name!r} does not have; "
                               f"its layers are {names} (or 'linear' for every fully connected layer)")
        chosen = {name: weight_bits.get(name, weight_bits.get("linear", 8) if kinds[name] == "linear" else 8)
                  for name in names}
    else:
        chosen = {name: weight_bits for name in names}
    for name, bits in chosen.items():
        check_weight_bits(bits, name, kinds[name], error=MappingError)
    return chosen


def calibrate_range(values, *, method="minmax", percentile=99.99):
    """The ``(lo, hi)`` range of calibration ``values`` (any shape, float).

    ``method="minmax"``: ``(min, max)``. ``method="percentile"``: ``(P(100 - percentile), P(percentile))`` with
    NumPy's linear interpolation; ``percentile`` is in ``(50, 100]``.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {CALIBRATION_METHODS}, not {method!r}")
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("calibration needs at least one value; give at least one calibration input")
    if not np.all(np.isfinite(values)):
        raise ValueError("calibration values must be finite (a NaN or inf reached a layer)")
    if method == "minmax":
        return float(values.min()), float(values.max())
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 50 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (50, 100], not {percentile!r}")
    lo, hi = np.percentile(values, [100.0 - percentile, percentile])
    return float(lo), float(hi)


def activation_qparams(lo, hi, *, symmetric=True):
    """A calibrated range -> ``(scale, zero_point)`` for an int8 tensor (see the module docstring).

    Symmetric: zero point 0, ``scale = max(|lo|, |hi|) / 127``. Asymmetric: the range widened to hold 0,
    ``scale = (hi - lo) / 255``, ``zero_point = clip(round(-128 - lo / scale), -128, 127)``. The scale is
    rounded to float32; a zero range gives scale 1.0.
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"a calibration range needs finite lo <= hi, not ({lo}, {hi})")
    if symmetric:
        peak = max(abs(lo), abs(hi))
        scale = float(np.float32(peak / ACT_TYPE.max)) if peak > 0 else 1.0
        return scale, 0
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        return 1.0, 0
    scale = float(np.float32((hi - lo) / (ACT_TYPE.max - ACT_TYPE.min)))
    zero_point = int(np.clip(np.rint(ACT_TYPE.min - lo / scale), ACT_TYPE.min, ACT_TYPE.max))
    return scale, zero_point


def quantize_bias(bias, in_scale, weight_scale, *, layer="layer"):
    """Float ``bias[M]`` -> int32 values (int64 array) ``rint(b[m] / (in_scale * weight_scale[m]))``."""
    bias = np.asarray(bias, dtype=np.float64)
    q = np.rint(bias / (float(in_scale) * np.asarray(weight_scale, dtype=np.float64)))
    if q.size and (np.abs(q).max() > 2**31 - 1):
        m = int(np.argmax(np.abs(q)))
        raise ValueError(f"{layer}: bias {bias[m]!r} of channel {m} is {q[m]:.0f} in units of in_scale * "
                         f"weight_scale, outside int32; the input or weight scale is too small for this bias")
    return q.astype(np.int64)


def _calibration_batches(data, layout, batch_size):
    data = np.asarray(data)
    if data.ndim == len(layout):
        data = data[None]
    if data.shape[1:] != tuple(layout) or len(data) == 0:
        raise ValueError(f"calibration data must have shape [N, {', '.join(map(str, layout))}] with N >= 1, "
                         f"got {data.shape}")
    if data.dtype.kind not in "fiu":
        raise TypeError(f"calibration data must be numbers, not {data.dtype}")
    return [data[i:i + batch_size] for i in range(0, len(data), batch_size)]


def quantize(network, calibration_data, *, activations="symmetric", method="minmax", percentile=99.99,
             name=None, batch_size=256, weight_bits=8):
    """Quantize a `FloatNetwork` to int8 with calibration inputs ``[N, *input_layout]`` (float).
    ``weight_bits``: 8, or per layer (`layer_weight_bits`: e.g. ``{"linear": 4}`` for int4 weights on the fully
    connected layers, ``{"linear": 2}`` for int2).

    Returns a `QuantizedNetwork` whose ``metadata`` records the options. See the module docstring for every
    rule; ``activations`` is ``"symmetric"`` or ``"asymmetric"``, ``method`` ``"minmax"`` or ``"percentile"``.
    """
    if not isinstance(network, FloatNetwork):
        raise TypeError(f"quantize takes a hwgen.compiler.FloatNetwork (from import_onnx or from_torch), not "
                        f"{type(network).__name__}")
    if activations not in ACTIVATION_MODES:
        raise ValueError(f"activations must be one of {ACTIVATION_MODES}, not {activations!r}")
    calibrate_range(np.zeros(1), method=method, percentile=percentile)      # validates method and percentile
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    symmetric = activations == "symmetric"
    bits = layer_weight_bits(network, weight_bits)
    batches = _calibration_batches(calibration_data, network.input_layout, batch_size)

    # One pass of the float network: the values each quantized tensor sees (input; each layer before pooling).
    seen = [[np.asarray(b, dtype=np.float32).ravel() for b in batches]] + [[] for _ in network.layers]
    for batch in batches:
        for i, (_, before) in enumerate(network.trace(batch)):
            seen[i + 1].append(before.astype(np.float32).ravel())
    ranges = [calibrate_range(np.concatenate(values), method=method, percentile=percentile) for values in seen]
    qparams = [activation_qparams(lo, hi, symmetric=symmetric) for lo, hi in ranges]

    layers = []
    (in_scale, in_zero_point) = qparams[0]
    for layer, (out_scale, out_zero_point) in zip(network.layers, qparams[1:]):
        weight, weight_scale = quantize_weights(layer.weight, bits[layer.name])
        bias = quantize_bias(layer.bias, in_scale, weight_scale, layer=layer.name)
        layers.append(QLayer.from_quantized(
            name=layer.name, kind=layer.kind, in_shape=layer.in_shape, weight=weight, weight_scale=weight_scale,
            bias=bias, in_scale=in_scale, in_zero_point=in_zero_point, out_scale=out_scale,
            out_zero_point=out_zero_point, relu=layer.relu, pool=layer.pool, stride=layer.stride, pad=layer.pad,
            flatten_from=layer.flatten_from, source=layer.source, weight_bits=bits[layer.name]))
        in_scale, in_zero_point = out_scale, out_zero_point
    metadata = {"source": "hwgen.quantize", "from": network.name, "activations": activations, "method": method,
                "calibration_inputs": int(sum(len(b) for b in batches)),
                "ranges": [[lo, hi] for lo, hi in ranges], "weight_bits": bits}
    if method == "percentile":
        metadata["percentile"] = percentile
    return QuantizedNetwork(name=name or network.name, layers=tuple(layers), input_layout=network.input_layout,
                            in_scale=qparams[0][0], in_zero_point=qparams[0][1], metadata=metadata)
