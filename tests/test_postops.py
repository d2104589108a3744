"""The post-op golden model (`hwgen.postops`): rounding, saturation, ordering, pooling, and the host packing.

`literal_chain` below is the module docstring's definition written element by element with Python ints and
fractions; `apply` must equal it everywhere, so the vectorized model cannot drift from the stated semantics.
"""

from fractions import Fraction
from math import floor

import numpy as np
import pytest

from hwgen.dtypes import IntType, int4, int8, int16, int32, int48, uint8
from hwgen.errors import MappingError
from hwgen.postops import (PostOps, QuantParams, apply, avg_pool2x2, check_layer, config_layout, config_values,
                           max_pool2x2, pack_config, pack_params, pack_stream, params_layout, pool_out_size,
                           quantize_multiplier, relu, requantize, round_shift, unpack_stream)
from hwgen.spec import AcceleratorSpec


def literal_round(v, s):
    return floor(Fraction(v, 2 ** s) + Fraction(1, 2))


def literal_chain(acc, params, postops, acc_type):
    """The chain, one element at a time, straight from the definitions (slow; small arrays only)."""
    out_type = postops.output_type(acc_type)
    M, E, F = acc.shape
    y = [[[int(acc[m, e, f]) for f in range(F)] for e in range(E)] for m in range(M)]
    for m in range(M):
        for e in range(E):
            for f in range(F):
                v = y[m][e][f]
                if postops.bias:
                    v += int(params.bias[m])
                if postops.requant:
                    v = literal_round(v * int(params.multiplier[m]), int(params.shift[m]))
                    v = min(max(v, out_type.min), out_type.max)
                if postops.relu:
                    v = max(v, 0)
                y[m][e][f] = v
    if postops.pool == "none":
        return np.array(y, dtype=np.int64)
    E2, F2 = E // 2, F // 2
    out = np.zeros((M, E2, F2), dtype=np.int64)
    for m in range(M):
        for e in range(E2):
            for f in range(F2):
                window = [y[m][2 * e + a][2 * f + b] for a in (0, 1) for b in (0, 1)]
                out[m, e, f] = max(window) if postops.pool == "max" else literal_round(sum(window), 2)
    return out


# Rounding -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, shift, expected", [
    (5, 1, 3), (-5, 1, -2), (4, 1, 2), (-4, 1, -2), (3, 1, 2), (-3, 1, -1), (1, 1, 1), (-1, 1, 0),
    (6, 2, 2), (-6, 2, -1), (7, 2, 2), (-7, 2, -2), (5, 2, 1), (-5, 2, -1), (-2, 2, 0), (2, 2, 1),
    (0, 0, 0), (-9, 0, -9), (9, 0, 9), (123, 7, 1), (-64, 7, 0), (-65, 7, -1), (64, 7, 1), (63, 7, 0),
    (-1, 63, 0), (1 << 62, 63, 1), (-(1 << 62), 63, 0), ((1 << 62) - 1, 63, 0),
])
def test_round_shift_is_round_half_up(value, shift, expected):
    assert literal_round(value, shift) == expected
    assert int(round_shift(np.array([value]), shift)[0]) == expected
    assert int(round_shift(np.array([value], dtype=object), shift)[0]) == expected


def test_round_shift_equals_definition_on_random_values():
    rng = np.random.default_rng(1)
    values = rng.integers(-(1 << 61), 1 << 61, size=2000)
    shifts = rng.integers(0, 64, size=2000)
    got = round_shift(values, shifts)
    assert [int(g) for g in got] == [literal_round(int(v), int(s)) for v, s in zip(values, shifts)]
    big = np.array([int(v) << 30 for v in values[:200]], dtype=object)   # beyond int64
    got = round_shift(big, shifts[:200])
    assert list(got) == [literal_round(int(v), int(s)) for v, s in zip(big, shifts[:200])]


# Requantization -------------------------------------------------------------------------------------------

def test_requantize_saturates_both_ends():
    x = np.array([[1000], [-1000], [127], [-128], [128], [-129]])
    ones = np.ones(6, dtype=np.int64)
    assert requantize(x, ones, 0 * ones, int8).ravel().tolist() == [127, -128, 127, -128, 127, -128]
    assert requantize(x, ones, 0 * ones, uint8).ravel().tolist() == [255, 0, 127, 0, 128, 0]
    assert requantize(x, ones, 0 * ones, int4).ravel().tolist() == [7, -8, 7, -8, 7, -8]


def test_requantize_rounds_after_the_full_product():
    # x * multiplier = 3 * 3 = 9; 9 / 4 = 2.25 -> 2; -9 / 4 = -2.25 -> -2; 10 / 4 = 2.5 -> 3; -10/4 -> -2
    x = np.array([[3], [-3], [5], [-5]])
    mult = np.array([3, 3, 2, 2])
    assert requantize(x, mult, np.full(4, 2), int16).ravel().tolist() == [2, -2, 3, -2]


def test_requantize_is_exact_for_wide_products():
    rng = np.random.default_rng(2)
    x = rng.integers(-(1 << 47), 1 << 47, size=(16, 3))
    mult = rng.integers(1 << 30, (1 << 31) - 1, size=16)
    shift = rng.integers(40, 64, size=16)
    wide = IntType(40)
    got = requantize(x, mult, shift, wide)
    for m in range(16):
        for k in range(3):
            v = literal_round(int(x[m, k]) * int(mult[m]), int(shift[m]))
            assert got[m, k] == min(max(v, wide.min), wide.max)


def test_relu():
    assert relu(np.array([-3, 0, 4])).tolist() == [0, 0, 4]


# Pooling --------------------------------------------------------------------------------------------------

def test_pool_floor_semantics_drop_last_odd_row_and_column():
    y = np.arange(1 * 5 * 7).reshape(1, 5, 7) - 20
    assert pool_out_size(5, 7) == (2, 3)
    assert max_pool2x2(y).tolist() == [[[-12, -10, -8], [2, 4, 6]]]
    expected = [[[literal_round(sum(int(y[0, 2 * e + a, 2 * f + b]) for a in (0, 1) for b in (0, 1)), 2)
                  for f in range(3)] for e in range(2)]]
    assert avg_pool2x2(y).tolist() == expected


def test_avg_pool_rounds_half_up_and_max_pool_handles_negatives():
    y = np.array([[[-1, -1], [0, 0]], [[1, 1], [0, 0]], [[-3, -3], [0, 0]], [[-8, -5], [-7, -6]]])
    # sums -2, 2, -6, -26 -> -0.5 -> 0, 0.5 -> 1, -1.5 -> -1, -6.5 -> -6
    assert avg_pool2x2(y).ravel().tolist() == [0, 1, -1, -6]
    assert max_pool2x2(y).ravel().tolist() == [0, 1, 0, -5]


@pytest.mark.parametrize("shape", [(1, 1, 4), (1, 4, 1), (2, 1, 1)])
def test_pool_needs_two_by_two(shape):
    with pytest.raises(ValueError, match="at least 2x2"):
        apply(np.zeros(shape, dtype=np.int64), None, PostOps(pool="max"))


# The chain ------------------------------------------------------------------------------------------------

CHAINS = [
    PostOps(),
    PostOps(bias=True),
    PostOps(relu=True),
    PostOps(bias=True, relu=True, pool="max"),
    PostOps(pool="avg"),
    PostOps(requant=True),
    PostOps(bias=True, requant=True),
    PostOps(bias=True, requant=True, relu=True),
    PostOps(bias=True, requant=True, relu=True, pool="max"),
    PostOps(bias=True, requant=True, relu=True, pool="avg"),
    PostOps(bias=True, requant=True, pool="avg", out_type=uint8),
    PostOps(requant=True, relu=True, pool="max", out_type=int4),
    PostOps(bias=True, requant=True, out_type=int16),
]


def random_params(rng, M, *, acc_bits=32):
    """Multipliers and shifts around a typical int32 -> int8 scale, so values hit the range and saturate."""
    return QuantParams(bias=rng.integers(-(1 << 20), 1 << 20, size=M),
                       multiplier=rng.integers(0, 1 << 31, size=M),
                       shift=rng.integers(max(acc_bits - 6, 0), min(acc_bits + 28, 64), size=M))


@pytest.mark.parametrize("postops", CHAINS, ids=lambda p: repr(p))
@pytest.mark.parametrize("shape", [(3, 4, 6), (5, 5, 7), (2, 3, 2)])
def test_apply_equals_the_literal_definition(postops, shape):
    rng = np.random.default_rng(sum(shape) + len(repr(postops)))
    acc = rng.integers(-(1 << 24), 1 << 24, size=shape)
    params = random_params(rng, shape[0])
    got = apply(acc, params, postops, int32)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, literal_chain(acc, params, postops, int32))
    out_type = postops.output_type(int32)
    assert got.min(initial=0) >= out_type.min and got.max(initial=0) <= out_type.max


def test_apply_with_int32_extremes_and_wide_accumulators():
    rng = np.random.default_rng(3)
    postops = PostOps(bias=True, requant=True, relu=False)
    acc = np.array([[[int32.min, int32.max], [int32.min + 1, -1]]])
    params = QuantParams(bias=[int32.min], multiplier=[(1 << 31) - 1], shift=[0])
    np.testing.assert_array_equal(apply(acc, params, postops, int32), literal_chain(acc, params, postops, int32))
    params = QuantParams(bias=[int32.max], multiplier=[(1 << 31) - 1], shift=[63])
    np.testing.assert_array_equal(apply(acc, params, postops, int32), literal_chain(acc, params, postops, int32))
    acc = rng.integers(int48.min, int48.max, size=(4, 4, 4), endpoint=True)
    for postops in CHAINS:
        if postops.requant:
            params = random_params(rng, 4, acc_bits=48)
            np.testing.assert_array_equal(apply(acc, params, postops, int48),
                                          literal_chain(acc, params, postops, int48))


def test_relu_comes_before_pooling_and_bias_before_requant():
    acc = np.array([[[-4, 4], [0, 0]]])
    assert apply(acc, None, PostOps(relu=True, pool="avg")).tolist() == [[[1]]]   # avg then ReLU would be 0
    params = QuantParams(bias=[1], multiplier=[1], shift=[1])
    # (1 + 1) * 1 >> 1 = 1; requant before bias would give round(0.5) + 1 = 2
    assert apply(np.array([[[1]]]), params, PostOps(bias=True, requant=True)).tolist() == [[[1]]]


def test_bias_overflow_without_requant_is_an_error():
    acc = np.array([[[int32.max - 5]]])
    with pytest.raises(OverflowError, match="without requantization"):
        apply(acc, QuantParams(bias=[6]), PostOps(bias=True), int32)
    # With requantization the sum is exact and simply saturates.
    params = QuantParams(bias=[6], multiplier=[1], shift=[0])
    assert apply(acc, params, PostOps(bias=True, requant=True), int32).tolist() == [[[127]]]


def test_apply_rejects_bad_inputs():
    with pytest.raises(OverflowError, match="outside int16"):
        apply(np.array([[[1 << 20]]]), None, PostOps(), int16)
    with pytest.raises(TypeError, match="QuantParams"):
        apply(np.zeros((1, 2, 2), dtype=np.int64), None, PostOps(bias=True))
    with pytest.raises(ValueError, match="M=2"):
        apply(np.zeros((2, 2, 2), dtype=np.int64), QuantParams(bias=[1, 2, 3]), PostOps(bias=True))
    with pytest.raises(ValueError, match="no multiplier"):
        apply(np.zeros((1, 2, 2), dtype=np.int64), QuantParams(bias=[1]), PostOps(requant=True))
    with pytest.raises(TypeError, match="integers"):
        apply(np.zeros((1, 2, 2)), None, PostOps())
    with pytest.raises(ValueError, match="int16 output lanes"):
        apply(np.zeros((1, 2, 2), dtype=np.int64), QuantParams(multiplier=[1], shift=[0]),
              PostOps(requant=True, out_type=int32), IntType(16))


# Settings and parameters ----------------------------------------------------------------------------------

def test_postops_settings():
    assert PostOps(requant=True).out_type == int8
    assert PostOps().output_type(int32) == int32
    assert PostOps(requant=True, out_type="uint8").output_type(int32) == uint8
    assert PostOps(pool="max").out_size(5, 7) == (2, 3) and PostOps().out_size(5, 7) == (5, 7)
    assert PostOps(bias=True).needs_params and not PostOps(relu=True).needs_params
    with pytest.raises(ValueError, match="pool must be one of"):
        PostOps(pool="mean")
    with pytest.raises(ValueError, match="needs requant=True"):
        PostOps(out_type=int8)
    with pytest.raises(TypeError, match="bool"):
        PostOps(relu=1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(bias=[1 << 31]), "bias holds 2147483648"),
    (dict(multiplier=[-1], shift=[0]), "multiplier holds -1"),
    (dict(multiplier=[1], shift=[64]), "shift holds 64"),
    (dict(multiplier=[1]), "both multiplier and shift"),
    (dict(bias=[1, 2], multiplier=[1], shift=[1]), "differ in length"),
    (dict(bias=[[1]]), "1-D"),
])
def test_quant_params_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QuantParams(**kwargs)


def test_quantize_multiplier():
    assert quantize_multiplier(1.0) == (1 << 30, 30)
    assert quantize_multiplier(0.5) == (1 << 30, 31)
    assert quantize_multiplier(0) == (0, 0)
    assert quantize_multiplier(float((1 << 31) - 1)) == ((1 << 31) - 1, 0)
    assert quantize_multiplier(2.0 ** -40) == (1 << 23, 63)
    rng = np.random.default_rng(4)
    for scale in 10.0 ** rng.uniform(-9, 4, size=200):
        multiplier, shift = quantize_multiplier(float(scale))
        assert (1 << 30) <= multiplier < (1 << 31) and 0 <= shift <= 63
        assert abs(multiplier / 2 ** shift - scale) <= scale * 2.0 ** -30
    with pytest.raises(ValueError, match="too large"):
        quantize_multiplier(2.0 ** 31)
    with pytest.raises(ValueError, match=">= 0"):
        quantize_multiplier(-1.0)
    params = QuantParams.from_scales([0.25, 0.001], bias=[3, -3])
    assert params.multiplier.tolist() == [quantize_multiplier(0.25)[0], quantize_multiplier(0.001)[0]]


def test_pack_params_layout():
    params = QuantParams(bias=[-1, 2, 3], multiplier=[5, (1 << 31) - 1, 7], shift=[0, 63, 9])
    words = pack_params(params, cols=2)
    layout = params_layout(2)
    assert layout.size == 2 * 70 and len(words) == 2
    lane = 70

    def field(word, j, offset, width):
        return (word >> (j * lane + offset)) & ((1 << width) - 1)

    assert field(words[0], 0, 0, 32) == (1 << 32) - 1                       # bias -1, two's complement
    assert field(words[0], 0, 32, 32) == 5 and field(words[0], 0, 64, 6) == 0
    assert field(words[0], 1, 0, 32) == 2 and field(words[0], 1, 32, 32) == (1 << 31) - 1
    assert field(words[0], 1, 64, 6) == 63
    assert field(words[1], 0, 0, 32) == 3 and field(words[1], 0, 64, 6) == 9
    assert field(words[1], 1, 0, 70) == 0                                     # padding lane
    assert pack_params(QuantParams(bias=[1, 2, 3]), cols=4) == [1 | 2 << 70 | 3 << 140]
    part = params.channels_slice(1, 3)
    assert pack_params(part, cols=2) == [(words[0] >> 70) | (words[1] & ((1 << 70) - 1)) << 70]
    # Narrower words for a narrower post-op chain: cols // lanes words per m-fold, channels in order.
    one_lane = pack_params(params, cols=2, lanes=1)
    assert one_lane == [words[0] & ((1 << 70) - 1), words[0] >> 70, words[1] & ((1 << 70) - 1), 0]
    assert pack_params(QuantParams(bias=[1, 2, 3]), cols=4, lanes=2) == [1 | 2 << 70, 3]
    with pytest.raises(ValueError, match="lanes=3 must divide cols=4"):
        pack_params(params, cols=4, lanes=3)


def test_config_and_layer_checks():
    spec = AcceleratorSpec(rows=4, cols=4)
    values = config_values(PostOps(requant=True, relu=True, pool="avg", out_type=uint8), int32,
                           out_h=6, out_w=5, m_folds=3)
    assert values == dict(bias=0, requant=1, relu=1, pool=2, out_bits=8, out_signed=0, out_h=6, out_w=5,
                          m_folds=3, zero_point=0, dest=0, stochastic=0)
    word = pack_config(spec, values)
    for name, fld in config_layout(spec):
        assert (word >> fld.offset) & ((1 << fld.width) - 1) == values[name]
    assert config_values(PostOps(), int32, out_h=1, out_w=1, m_folds=1)["out_bits"] == 32
    with pytest.raises(MappingError, match=r"max_pool_width=\.\.\.\) >= 40"):
        check_layer(PostOps(pool="max"), out_h=4, out_w=40, m_folds=1, max_out_w=32, max_m_folds=4)
    with pytest.raises(MappingError, match=r"max_out_channels=\.\.\.\) to at least 5 x cols"):
        check_layer(PostOps(bias=True), out_h=4, out_w=4, m_folds=5, max_out_w=32, max_m_folds=4)
    with pytest.raises(MappingError, match="at least 2x2"):
        check_layer(PostOps(pool="avg"), out_h=1, out_w=4, m_folds=1, max_out_w=32, max_m_folds=4)
    check_layer(PostOps(relu=True), out_h=1, out_w=400, m_folds=9, max_out_w=32, max_m_folds=4)


def test_stream_packing_round_trip():
    rng = np.random.default_rng(5)
    values = rng.integers(-128, 128, size=(5, 3, 4))
    beats = pack_stream(values, cols=4, lane_type=int32)
    assert len(beats) == 2 * 12
    assert (beats[0] & 0xFFFFFFFF) == values[0, 0, 0] & 0xFFFFFFFF
    assert (beats[13] >> 32) & 0xFFFFFFFF == 0                               # m-fold 1, lane 1 = channel 5
    np.testing.assert_array_equal(unpack_stream(beats, M=5, E=3, F=4, cols=4, lane_type=int32), values)
