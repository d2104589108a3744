"""Packed int4 weights on the matrix-vector engine (`AcceleratorSpec(packed_int4=True)`, `plan_layer(...,
packed_int4=True)`): per layer, an int8-weight accelerator streams a fully connected layer's int4 weights two per
byte - each weight word holds two slots - and decodes them in front of the multipliers. Values exact against
`hwgen.reference` (Amaranth's simulator and the RTL), cycles equal to the model (unchanged: one slot per
cycle), and the weight bytes halve (roofline, energy)."""

import dataclasses
import os

import pytest

from hwgen.energy import layer_energy
from hwgen.errors import DataError, MappingError, UnsupportedTypeError
from hwgen.perf import predict_plan
from hwgen.postops import PostOps
from hwgen.roofline import layer_traffic
from hwgen.sim.job import make_layer_data
from hwgen.spec import AcceleratorSpec
from hwgen.tiling import plan_layer
from tests.test_cocotb_accelerator import conv, linear
from tests.top_bench import check_beats, lane_decoder, run_top

SPEC = AcceleratorSpec(rows=4, cols=4, dataflow="matrix_vector", act_buffer_bytes=256, weight_buffer_bytes=512,
                       acc_buffer_bytes=256, max_out_channels=16, packed_int4=True, name="mv4x4_int4")
LAYERS = [
    (linear("fc_odd_slots", K=21, M=10, N=1), PostOps()),                       # 3 m-folds x 6 groups
    (linear("fc_m_tiles_requant", K=32, M=24, N=1), PostOps(bias=True, requant=True, relu=True)),
    (linear("fc_batch3", K=9, M=7, N=3), PostOps(bias=True, requant=True)),      # 2 x 3 x 3 = 18 slots
    (linear("fc_one_slot", K=3, M=2, N=1), PostOps()),                           # a single, odd slot
]


def run_pysim(plan, *, seed, stall=0.0):
    data = make_layer_data(plan, seed)
    spec = plan.spec
    stream = {"mv_weights" if spec.mv_engine else "weights": data.weight_words}
    run = run_top(spec, cfg=data.config_words, acts=data.act_words, params=data.param_words,
                  expect_beats=len(data.expected_beats), stall=stall, seed=seed, **stream)
    check_beats(run.beats, data.expected_beats, decode=lane_decoder(spec), describe=plan.describe_output,
                what=plan.problem.name)
    return run


@pytest.mark.parametrize("index", range(len(LAYERS)), ids=[p.name for p, _ in LAYERS])
def test_packed_layers_exact_and_cycles_equal_model(index):
    problem, postops = LAYERS[index]
    plan = plan_layer(SPEC, problem, postops, packed_int4=True)
    dense = plan_layer(SPEC, problem, postops)
    assert plan.weight_type.bits == 4
    assert [s.weight_words for s in plan.commands] == [-(-s.mv_slots // 2) for s in dense.commands]
    run = run_pysim(plan, seed=index)
    assert run.cycles == predict_plan(plan).cycles == predict_plan(dense).cycles


def test_packed_and_int8_layers_back_to_back_under_stalls():
    """One accelerator: int8 and packed int4 layers in one run (the flag rides in each command)."""
    plans = [plan_layer(SPEC, *LAYERS[1], packed_int4=True), plan_layer(SPEC, *LAYERS[0]),
             plan_layer(SPEC, *LAYERS[2], packed_int4=True)]
    cfg, weights, acts, params, expected = [], [], [], [], []
    for n, plan in enumerate(plans):
        data = make_layer_data(plan, 10 + n)
        cfg += data.config_words
        weights += data.weight_words
        acts += data.act_words
        params += data.param_words
        expected += data.expected_beats
    run = run_top(SPEC, cfg=cfg, weights=weights, acts=acts, params=params, expect_beats=len(expected),
                  stall=0.3, seed=3)
    check_beats(run.beats, expected, decode=lane_decoder(SPEC))


def test_weight_bytes_halve_in_roofline_and_energy():
    problem, postops = linear("fc", K=64, M=32, N=1), PostOps(bias=True, requant=True)
    packed, dense = plan_layer(SPEC, problem, postops, packed_int4=True), plan_layer(SPEC, problem, postops)
    assert layer_traffic(packed).weight_bytes * 2 == layer_traffic(dense).weight_bytes
    assert packed.bytes_moved["weights"] * 2 == dense.bytes_moved["weights"]
    assert layer_energy(packed)["dram_pj"] < layer_energy(dense)["dram_pj"]


def test_beside_a_weight_stationary_array():
    spec = AcceleratorSpec(rows=4, cols=4, act_buffer_bytes=256, weight_buffer_bytes=256, acc_buffer_bytes=256,
                           max_out_channels=16, mv_engine=True, packed_int4=True, name="ws_mv_int4")
    plan = plan_layer(spec, *LAYERS[0], engine="matrix_vector", packed_int4=True)
    run = run_pysim(plan, seed=5)
    assert run.cycles == predict_plan(plan).cycles
    with pytest.raises(MappingError, match="matrix-vector engine"):
        plan_layer(spec, conv("c", C=4, M=4, H=4, W=4, R=3), packed_int4=True)


def test_checks():
    with pytest.raises(MappingError, match="mv_engine=True"):
        AcceleratorSpec(rows=2, cols=2, packed_int4=True)
    with pytest.raises(UnsupportedTypeError, match="weight_type int8"):
        AcceleratorSpec(rows=2, cols=2, dataflow="matrix_vector", weight_type="int4", packed_int4=True)
    plain = dataclasses.replace(SPEC, packed_int4=False)
    with pytest.raises(MappingError, match="packed_int4=True"):
        plan_layer(plain, *LAYERS[0], packed_int4=True)
    import numpy as np
    plan = plan_layer(SPEC, *LAYERS[0], packed_int4=True)
    with pytest.raises(DataError, match="-8..7"):
        plan.weight_stream(np.full((10, 21, 1, 1), 9))


SIM = os.environ.get("SIM", "icarus")


@pytest.mark.cocotb
def test_rtl_exact_and_cycles_equal_model():
    from hwgen.sim.runner import run_layers
    plans = [plan_layer(SPEC, problem, postops, packed_int4=True) for problem, postops in LAYERS[:3]]
    result = run_layers(SPEC, plans, simulator=SIM, stall=0.0, seed=4, tag="int4")
    assert len(result.layers) == len(plans)
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]
