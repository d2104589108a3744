"""Stochastic rounding of the requantization (`PostOps(rounding="stochastic")`, `AcceleratorSpec(
stochastic_rounding=True, rounding_seed=...)`): the golden model's generators and rounding, its statistics (mean
error within a stated bound of zero where round-to-nearest is biased), the post-op pipeline bit for bit against it
in Amaranth's simulator (layers back to back, random stalls), and a whole accelerator on the RTL (cocotb, Icarus):
values exact, cycles equal to the model."""

import dataclasses
import os

import numpy as np
import pytest

from hwgen.dtypes import int8, int32
from hwgen.errors import DataError, DesignError, MappingError
from hwgen.hw.postops import PostOpPipeline
from hwgen.perf import postops_latency, predict_plan
from hwgen.postops import (PostOps, QuantParams, apply, column_seeds, config_values, layer_draws,
                           stochastic_draws, stochastic_round_shift)
from hwgen.spec import AcceleratorSpec
from hwgen.tiling import plan_layer
from tests.test_hw_postops import Layer, StreamBench, random_layer

SR = PostOps(bias=True, requant=True, rounding="stochastic")


def sr_spec(cols=4, seed=12345, postop_lanes=None):
    return AcceleratorSpec(rows=2, cols=cols, act_buffer_bytes=64, weight_buffer_bytes=64,
                           acc_buffer_bytes=cols * 32 * 8, stochastic_rounding=True, rounding_seed=seed,
                           postop_lanes=postop_lanes)


# The golden model ------------------------------------------------------------------------------------------------

def test_generators_are_the_projects_lfsr_restarted_per_command():
    from hwgen import lfsr
    assert column_seeds(7, 3) == [lfsr.lane_seed(7, j) for j in range(3)]
    draws = stochastic_draws(seed=7, cols=3, beats=4)
    state = lfsr.lane_seed(7, 1)
    for t in range(4):
        state, value = lfsr.draw(state)
        assert int(draws[1, t]) == value
    assert draws.max() < 1 << 16


def test_stochastic_round_shift_is_floor_of_value_plus_top_bits_of_draw():
    # shift 4: r = draw >> 12 in 0..15; value 0x13 = 1 + 3/16 rounds up when r >= 13
    assert stochastic_round_shift(0x13, 4, 12 << 12) == 1 and stochastic_round_shift(0x13, 4, 13 << 12) == 2
    assert stochastic_round_shift(-0x13, 4, 2 << 12) == -2 and stochastic_round_shift(-0x13, 4, 3 << 12) == -1
    assert stochastic_round_shift(5, 0, (1 << 16) - 1) == 5               # nothing discarded: exact
    assert stochastic_round_shift(48, 4, (1 << 16) - 1) == 3              # an exact quotient never rounds up
    assert stochastic_round_shift(0x13, 4, 0) == 1                        # a zero draw: down
    assert stochastic_round_shift(1 << 40, 40, 1) == 1                    # shift past 16: r = draw << 24
    assert stochastic_round_shift((1 << 40) - (1 << 24) - 1, 40, 1) == 0
    assert stochastic_round_shift((1 << 40) - (1 << 24), 40, 1) == 1


def test_draws_follow_the_beat_order():
    M, E, F, cols = 5, 2, 3, 2
    draws = layer_draws(M, E, F, seed=3, cols=cols)
    per_lane = stochastic_draws(seed=3, cols=cols, beats=3 * E * F)
    for m in range(M):
        for e in range(E):
            for f in range(F):
                assert draws[m, e, f] == per_lane[m % cols, (m // cols) * E * F + e * F + f]


# Mean error: where round-half-up is biased, stochastic rounding is not (the stated bound) -------------------------

MEAN_ERROR_BOUND = 0.01     # |mean error| in output units; 100,000 values: about 7 standard errors


@pytest.mark.parametrize("fraction", [1, 2, 3])
def test_mean_error_is_within_bound_of_zero_where_nearest_is_not(fraction):
    """Every value is k + fraction/4 (shift 2): round-half-up errs by -1/4, +1/2 or +1/4 on every value; the
    stochastic mean error is within MEAN_ERROR_BOUND of zero."""
    rng = np.random.default_rng(fraction)
    M, E, F, cols = 64, 40, 40, 8
    acc = 4 * rng.integers(-30, 30, size=(M, E, F)) + fraction
    params = QuantParams(multiplier=np.ones(M, dtype=np.int64), shift=np.full(M, 2))
    exact = acc / 4
    nearest = apply(acc, params, PostOps(requant=True))
    stochastic = apply(acc, params, PostOps(requant=True, rounding="stochastic"), seed=99, cols=cols)
    nearest_error, stochastic_error = (nearest - exact).mean(), (stochastic - exact).mean()
    assert abs(nearest_error) >= 0.25
    assert abs(stochastic_error) < MEAN_ERROR_BOUND, stochastic_error
    assert set(np.unique(stochastic - np.floor(exact))) == {0, 1}       # only ever the two neighbours


def test_settings_are_checked():
    with pytest.raises(DesignError, match="requant=True"):
        PostOps(rounding="stochastic")
    with pytest.raises(DesignError, match="rounding must be one of"):
        PostOps(requant=True, rounding="even")
    with pytest.raises(MappingError, match="postops=True"):
        AcceleratorSpec(rows=2, cols=2, postops=False, stochastic_rounding=True)
    with pytest.raises(MappingError, match="rounding_seed"):
        AcceleratorSpec(rows=2, cols=2, stochastic_rounding=True, rounding_seed=0)
    plain = AcceleratorSpec(rows=2, cols=2, act_buffer_bytes=64, weight_buffer_bytes=64, acc_buffer_bytes=64)
    from tests.test_cocotb_accelerator import linear
    with pytest.raises(MappingError, match="stochastic_rounding=True"):
        plan_layer(plain, linear("fc", K=4, M=2, N=1), SR)
    acc = np.zeros((2, 1, 1), dtype=np.int64)
    with pytest.raises(DataError, match="seed=spec.rounding_seed"):
        apply(acc, QuantParams(bias=[0, 0], multiplier=[1, 1], shift=[1, 1]), SR)


# The post-op pipeline, bit for bit -------------------------------------------------------------------------------

class SRLayer(Layer):
    """`Layer` whose golden output rounds with the spec's generators."""

    def __init__(self, spec, postops, acc, params):
        super().__init__(spec, dataclasses.replace(postops, rounding="nearest"), acc, params)
        self.postops = postops
        self.cfg = config_values(postops, spec.acc_type, out_h=acc.shape[1], out_w=acc.shape[2],
                                 m_folds=self.m_folds)
        self.expected = apply(acc, params, postops, spec.acc_type, seed=spec.rounding_seed, cols=spec.cols)


def test_pipeline_latency_grows_by_one_stage():
    spec = sr_spec(postop_lanes=4)
    assert PostOpPipeline.latency_for(spec) == PostOpPipeline.LATENCY + 1 == postops_latency(spec)
    assert postops_latency(dataclasses.replace(spec, stochastic_rounding=False)) == PostOpPipeline.LATENCY
    # a narrow chain (the default one lane of 4 columns) has one stage more, its pooling pair's
    narrow = sr_spec()
    assert PostOpPipeline.latency_for(narrow) == PostOpPipeline.LATENCY + 2 == postops_latency(narrow)


@pytest.mark.parametrize("lanes", [4, 2, 1], ids=["lanes4", "lanes2", "lanes1"])
@pytest.mark.parametrize("stalls", [False, True], ids=["full_rate", "stalls"])
def test_pipeline_equals_golden_model_back_to_back(stalls, lanes):
    """Stochastic and nearest layers interleaved (each restarts the generators on its first beat), pooling and
    ReLU after the rounding, small shifts (where the random part matters most) and large ones. A narrow chain
    (lanes < cols) keeps each column's generator and advances it as that column's group passes."""
    spec = sr_spec(cols=4, postop_lanes=lanes)
    rng = np.random.default_rng(5)
    layers = []
    for n, (postops, shape) in enumerate([
            (SR, (6, 3, 5)), (PostOps(bias=True, requant=True), (3, 2, 2)),
            (PostOps(bias=True, requant=True, relu=True, pool="max", rounding="stochastic"), (5, 4, 4)),
            (PostOps(requant=True, pool="avg", rounding="stochastic", zero_point=-3), (4, 2, 3)),
            (SR, (2, 1, 3))]):
        layer = random_layer(spec, dataclasses.replace(postops, rounding="nearest"), shape, rng)
        M = shape[0]
        if n % 2 == 0:      # shifts 1..8 on modest values: every output has a random fraction
            acc = rng.integers(-300, 300, size=shape)
            params = QuantParams(bias=rng.integers(-20, 20, M), multiplier=rng.integers(1, 4, M),
                                 shift=rng.integers(3, 9, M))
            layer = SRLayer(spec, postops, acc, params)
        else:
            layer = SRLayer(spec, postops, layer.acc, layer.params)
        layers.append(layer)
    bench = StreamBench(spec)
    p = 0.7 if stalls else 1.0
    bench.check(layers, bench.run(layers, p_valid=p, p_ready=p, seed=11))
    # The draws matter: rounding to nearest would have given other values (and no saturation hides them).
    nearest = apply(layers[0].acc, layers[0].params, PostOps(bias=True, requant=True))
    assert (nearest != layers[0].expected).mean() > 0.1 and (np.abs(nearest) < 127).all()


# The whole accelerator on the RTL (cocotb, Icarus) ---------------------------------------------------------------

SIM = os.environ.get("SIM", "icarus")


@pytest.mark.cocotb
def test_accelerator_rtl_exact_and_cycles_equal_model():
    from hwgen.sim.runner import run_layers
    from tests.test_cocotb_accelerator import conv, linear
    spec = AcceleratorSpec(rows=4, cols=4, act_buffer_bytes=512, weight_buffer_bytes=1024, acc_buffer_bytes=512,
                           max_out_channels=16, stochastic_rounding=True, rounding_seed=0xC0FFEE, name="sr4x4")
    layers = [(linear("fc_sr", K=21, M=10, N=1), PostOps(bias=True, requant=True, rounding="stochastic")),
              (conv("conv_sr_relu", C=5, M=6, H=6, W=6, R=3, pad=1),
               PostOps(bias=True, requant=True, relu=True, rounding="stochastic")),
              (linear("fc_nearest", K=9, M=5, N=2), PostOps(bias=True, requant=True))]
    result = run_layers(spec, layers, simulator=SIM, stall=0.0, seed=3, tag="sr")
    assert len(result.layers) == len(layers)
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]
