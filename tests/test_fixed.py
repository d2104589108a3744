"""`hwgen.fixed`: the rounding shifts and saturation every fixed-point result goes through."""

import numpy as np
import pytest

from hwgen.fixed import round_shift, saturate, stochastic_offset, to_fixed, from_fixed


def test_nearest_rounds_half_up():
    v = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6])
    assert list(round_shift(v, 2)) == [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2]   # (v + 2) >> 2


def test_stochastic_offset_scales_a_draw_to_the_shift():
    d = np.array([0, 1, 0x8000, 0xFFFF])
    assert list(stochastic_offset(d, 16)) == [0, 1, 0x8000, 0xFFFF]
    assert list(stochastic_offset(d, 4)) == [0, 0, 8, 15]                         # the top 4 bits
    assert list(stochastic_offset(d, 20)) == [0, 16, 0x80000, 0xFFFF0]            # shifted up


@pytest.mark.parametrize("shift", [3, 14, 30])
def test_stochastic_rounding_is_unbiased_and_never_off_by_more_than_one(shift):
    rng = np.random.default_rng(shift)
    v = rng.integers(-(1 << (shift + 4)), 1 << (shift + 4), 200)
    draws = rng.integers(0, 1 << 16, (4000, 200))
    r = round_shift(v[None, :], shift, "stochastic", draws)
    floor = v >> shift
    assert np.all((r == floor) | (r == floor + 1))
    # The mean over draws is v / 2**shift to within the draw's 2**-16 quantization and the sampling noise.
    assert np.abs(r.mean(axis=0) - v / 2 ** shift).max() < 0.05
    # A value below half an LSB survives on average (round-to-nearest loses it).
    tiny = np.full(4000, (1 << shift) // 5)
    assert round_shift(tiny, shift).sum() == 0
    assert 0.1 < round_shift(tiny, shift, "stochastic", draws[:, 0]).mean() < 0.3


def test_saturate_and_conversions():
    assert list(saturate([-40000, -32768, 5, 32767, 40000])) == [-32768, -32768, 5, 32767, 32767]
    assert list(to_fixed([0.5, -2.0, 1.99999, 3.0, 2 ** -15], 14)) == [8192, -32768, 32767, 32767, 1]
    assert from_fixed(8192, 14) == 0.5


def test_stochastic_needs_draws_and_modes_are_named():
    with pytest.raises(ValueError, match="draw"):
        round_shift([1], 2, "stochastic")
    with pytest.raises(ValueError, match="rounding mode"):
        round_shift([1], 2, "even")
