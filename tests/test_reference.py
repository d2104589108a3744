"""The golden model: the vectorized reference equals the loop nest the user wrote, run literally."""

import time

import numpy as np
import pytest

from hwgen import reference
from hwgen.dsl import conv2d, linear, loop_nest
from hwgen.dtypes import int8, int16, int32
from hwgen.errors import UnsupportedTypeError
from hwgen.mapping import default_mapping, recognize
from tests.nests import hwc_conv, larger_input_conv

CONV_CASES = [
    # C, M, H, W, R, S, sh, sw, ph, pw
    (3, 4, 8, 8, 3, 3, 1, 1, 0, 0),
    (3, 4, 8, 8, 3, 3, 1, 1, 1, 1),
    (2, 5, 9, 7, 3, 3, 2, 2, 1, 1),
    (2, 3, 10, 6, 3, 1, 2, 1, 0, 0),
]




def int8_array(rng, shape):
    return rng.integers(int8.min, int8.max + 1, shape, dtype=np.int64).astype(np.int8)


@pytest.mark.parametrize("C, M, H, W, R, S, sh, sw, ph, pw", CONV_CASES + [(1, 2, 5, 11, 2, 4, 1, 3, 1, 2)])
def test_conv2d_equals_the_loop_nest(C, M, H, W, R, S, sh, sw, ph, pw):
    rng = np.random.default_rng(C * 100 + H)
    nest = conv2d(name="conv", in_channels=C, out_channels=M, height=H, width=W, kernel=(R, S),
                  stride=(sh, sw), padding=(ph, pw))
    act, weight = int8_array(rng, (C, H, W)), int8_array(rng, (M, C, R, S))
    literal = reference.evaluate_loop_nest(nest, {"I": act, "W": weight})
    fast = reference.conv2d(act, weight, stride=(sh, sw), padding=(ph, pw))
    assert fast.dtype == np.int64
    assert np.array_equal(fast, literal)
    assert np.array_equal(reference.run_problem(recognize(nest, default_mapping(nest)), act, weight), literal)


@pytest.mark.parametrize("C, M, H, W, R, S, sh, sw, ph, pw", CONV_CASES)
def test_run_problem_on_user_layouts_equals_the_loop_nest(C, M, H, W, R, S, sh, sw, ph, pw):
    rng = np.random.default_rng(7)
    nest = hwc_conv(C, M, H, W, R, S, sh, sw, ph, pw)
    problem = recognize(nest, default_mapping(nest))
    act, weight = int8_array(rng, (H, W, C)), int8_array(rng, (R, S, C, M))
    literal = reference.evaluate_loop_nest(nest, {"I": act, "W": weight})
    assert np.array_equal(reference.run_problem(problem, act, weight, int32), literal)


def test_run_problem_when_the_input_is_larger_than_the_reads():
    conv = larger_input_conv()
    rng = np.random.default_rng(3)
    act, weight = int8_array(rng, (2, 17, 4)), int8_array(rng, (3, 2, 3))
    problem = recognize(conv, default_mapping(conv))
    literal = reference.evaluate_loop_nest(conv, {"I": act, "W": weight})
    assert literal.shape == (3, 8, 4)
    assert np.array_equal(reference.run_problem(problem, act, weight), literal)


@pytest.mark.parametrize("batch", [1, 4])
def test_linear_equals_the_loop_nest(batch):
    rng = np.random.default_rng(batch)
    nest = linear(name="fc", in_features=9, out_features=5, batch=batch)
    x, w = int8_array(rng, (batch, 9)), int8_array(rng, (5, 9))
    literal = reference.evaluate_loop_nest(nest, {"X": x, "W": w})
    assert np.array_equal(reference.linear(x, w), literal)
    assert np.array_equal(reference.linear(x, w), x.astype(np.int64) @ w.astype(np.int64).T)
    problem = recognize(nest, default_mapping(nest))
    assert np.array_equal(reference.run_problem(problem, x, w), literal)


def test_matrix_vector_with_other_resident():
    @loop_nest
    def mv(x, Wt, y):
        for k in range(7):
            for j in range(3):
                y[j] += x[k] * Wt[k, j]
    rng = np.random.default_rng(11)
    x, wt = int8_array(rng, (7,)), int8_array(rng, (7, 3))
    literal = reference.evaluate_loop_nest(mv, {"x": x, "Wt": wt})
    assert literal.shape == (3,)
    assert np.array_equal(reference.run_problem(recognize(mv, default_mapping(mv)), x, wt), literal)


def test_evaluate_loop_nest_reads_outside_as_zero_and_checks_shapes():
    @loop_nest
    def shift(A, B, O):
        for e in range(3):
            O[e] += A[e - 1] * B[e + 1]
    out = reference.evaluate_loop_nest(shift, {"A": np.array([1, 2, 3]), "B": np.array([4, 5, 6])})
    # e=0 reads A[-1] (zero, not Python's wrap-around); e=2 reads B[3] (zero).
    assert out.tolist() == [0, 1 * 6, 0]
    with pytest.raises(ValueError, match="no array given for B"):
        reference.evaluate_loop_nest(shift, {"A": np.zeros(3, np.int8)})
    with pytest.raises(ValueError, match=r"A has shape \(3,\), expected \(4,\)"):
        reference.evaluate_loop_nest(shift, {"A": np.zeros(3, np.int8), "B": np.zeros(3, np.int8)},
                                     {"A": (4,)})
    with pytest.raises(IndexError, match="outside the output shape"):
        reference.evaluate_loop_nest(shift, {"A": np.zeros(3, np.int8), "B": np.zeros(3, np.int8)}, {"O": (2,)})


def test_overflow_is_detected_not_wrapped():
    act = np.full((64, 4, 4), 127, dtype=np.int8)
    weight = np.full((2, 64, 3, 3), 127, dtype=np.int8)
    worst = 127 * 127 * 64 * 9
    assert reference.conv2d(act, weight, acc_type=int32).max() == worst
    with pytest.raises(OverflowError, match=f"{worst}.*int16.*largest magnitude is {worst}"):
        reference.conv2d(act, weight, acc_type=int16)
    with pytest.raises(OverflowError, match="int16"):
        reference.linear(np.full((1, 8), -128), np.full((2, 8), 127), acc_type="int16")
    with pytest.raises(OverflowError, match="beyond int64"):
        reference.linear(np.full((1, 4), 2 ** 31), np.full((1, 4), 2 ** 31), acc_type="int64")


def test_inputs_are_validated():
    with pytest.raises(UnsupportedTypeError, match="I must hold integers, not float64; quantize"):
        reference.conv2d(np.zeros((1, 3, 3)), np.zeros((1, 1, 1, 1), np.int8))
    with pytest.raises(ValueError, match="I has 2 channels but W expects 3"):
        reference.conv2d(np.zeros((2, 3, 3), np.int8), np.zeros((1, 3, 1, 1), np.int8))
    with pytest.raises(ValueError, match="does not fit"):
        reference.conv2d(np.zeros((1, 3, 3), np.int8), np.zeros((1, 1, 1, 1), np.int8), out_size=(4, 3))
    with pytest.raises(ValueError, match="X has 3 features but W expects 4"):
        reference.linear(np.zeros((1, 3), np.int8), np.zeros((2, 4), np.int8))


def test_reference_is_fast_on_a_real_layer():
    rng = np.random.default_rng(0)
    act, weight = int8_array(rng, (64, 16, 16)), int8_array(rng, (64, 64, 3, 3))
    start = time.perf_counter()
    out = reference.conv2d(act, weight, padding=1)
    assert time.perf_counter() - start < 1.0
    assert out.shape == (64, 16, 16)
    # Spot-check one output against the definition.
    padded = np.pad(act.astype(np.int64), ((0, 0), (1, 1), (1, 1)))
    assert out[5, 7, 9] == int((padded[:, 7:10, 9:12] * weight[5].astype(np.int64)).sum())
