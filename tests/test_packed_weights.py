"""Packed weights on the matrix-vector engine (`AcceleratorSpec(packed_weight_bits=(4, 2))`, `plan_layer(...,
packed_bits=4 or 2)`): per layer, an int8-weight accelerator streams a fully connected layer's int4 weights two
per byte, or its int2 weights four per byte - each weight word serves two (four) slots - and decodes them in
front of the multipliers. Values exact against `hwgen.reference` (Amaranth's simulator and the RTL), cycles
equal to the model (unchanged: one slot per cycle, a word popped every second or fourth), and the weight bytes
halve (quarter) in the roofline and the energy model."""

import dataclasses
import os

import numpy as np
import pytest

from hwgen.energy import layer_energy
from hwgen.errors import DataError, DesignError, MappingError, UnsupportedTypeError
from hwgen.hw.config import unpack_config
from hwgen.perf import predict_commands, predict_plan
from hwgen.postops import PostOps
from hwgen.roofline import layer_traffic
from hwgen.sim.job import make_layer_data
from hwgen.spec import AcceleratorSpec
from hwgen.tiling import plan_layer
from tests.test_cocotb_accelerator import conv, linear
from tests.top_bench import check_beats, lane_decoder, run_top

SPEC = AcceleratorSpec(rows=4, cols=4, dataflow="matrix_vector", act_buffer_bytes=256, weight_buffer_bytes=512,
                       acc_buffer_bytes=256, max_out_channels=16, packed_weight_bits=(4, 2), name="mv4x4_packed")
LAYERS = [
    (linear("fc_odd_slots", K=21, M=10, N=1), PostOps()),                       # 3 m-folds x 6 groups
    (linear("fc_m_tiles_requant", K=32, M=24, N=1), PostOps(bias=True, requant=True, relu=True)),
    (linear("fc_batch3", K=9, M=7, N=3), PostOps(bias=True, requant=True)),      # 2 x 3 x 3 = 18 slots
    (linear("fc_one_slot", K=3, M=2, N=1), PostOps()),                           # a single slot
    (linear("fc_three_slots", K=12, M=4, N=1), PostOps(bias=True)),              # 3 slots: one part unused
]
BITS = (4, 2)


def run_pysim(plan, *, seed, stall=0.0):
    data = make_layer_data(plan, seed)
    spec = plan.spec
    stream = {"mv_weights" if spec.mv_engine else "weights": data.weight_words}
    run = run_top(spec, cfg=data.config_words, acts=data.act_words, params=data.param_words,
                  expect_beats=len(data.expected_beats), stall=stall, seed=seed, **stream)
    check_beats(run.beats, data.expected_beats, decode=lane_decoder(spec), describe=plan.describe_output,
                what=plan.problem.name)
    return run


def unpack(words, *, bits, slots, lanes):
    """The packing's inverse, written out: slot j's ``lanes`` weights from part ``j % k`` of word ``j // k``."""
    k, out = 8 // bits, []
    for j in range(slots):
        part = words[j // k] >> ((j % k) * lanes * bits)
        raw = [(part >> (i * bits)) & ((1 << bits) - 1) for i in range(lanes)]
        out.append([v - (1 << bits) if v >> (bits - 1) else v for v in raw])
    return np.array(out)


@pytest.mark.parametrize("bits", BITS)
def test_packing_holds_k_slots_per_word_in_order(bits):
    """The golden packing: ``8 // bits`` slots per word, slot ``k*t + j`` in part ``j`` of word ``t``, the slot
    order and lanes of the int8 stream; the config word says how many (w_packing = log2 k)."""
    problem, postops = LAYERS[2]
    plan, dense = plan_layer(SPEC, problem, postops, packed_bits=bits), plan_layer(SPEC, problem, postops)
    assert plan.weight_type.bits == bits and plan.weight_type.min == -(1 << (bits - 1))
    rng = np.random.default_rng(bits)
    w = rng.integers(plan.weight_type.min, plan.weight_type.max, problem.weight_canonical_shape, endpoint=True)
    (s,), (d,) = plan.commands, dense.commands
    k = 8 // bits
    assert s.slots_per_word == k and s.weight_words == -(-d.mv_slots // k) == -(-18 // k)
    words = plan.weight_stream(w)
    assert len(words) == s.weight_words and all(0 <= word < 1 << SPEC.mv_weight_word_bits for word in words)
    lanes = SPEC.rows * SPEC.cols
    int8_slots = np.array([[(word >> (8 * i)) & 0xFF for i in range(lanes)] for word in dense.weight_stream(w)])
    int8_slots = np.where(int8_slots > 127, int8_slots - 256, int8_slots)
    assert np.array_equal(unpack(words, bits=bits, slots=d.mv_slots, lanes=lanes), int8_slots)
    assert unpack_config(SPEC, s.config_word())["w_packing"] == k.bit_length() - 1
    assert unpack_config(SPEC, d.config_word())["w_packing"] == 0
    # The whole range of the type packs; one step outside it is a named error.
    assert plan.weight_stream(np.full(problem.weight_canonical_shape, plan.weight_type.min))
    with pytest.raises(DataError, match=rf"packed int{bits} weights must lie in {-(1 << (bits - 1))}\.\."):
        plan.weight_stream(np.full(problem.weight_canonical_shape, plan.weight_type.max + 1))


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("index", range(len(LAYERS)), ids=[p.name for p, _ in LAYERS])
def test_packed_layers_exact_and_cycles_equal_model(index, bits):
    problem, postops = LAYERS[index]
    plan = plan_layer(SPEC, problem, postops, packed_bits=bits)
    dense = plan_layer(SPEC, problem, postops)
    assert plan.weight_type.bits == bits
    assert [s.weight_words for s in plan.commands] == [-(-s.mv_slots // (8 // bits)) for s in dense.commands]
    run = run_pysim(plan, seed=10 * index + bits)
    assert run.cycles == predict_plan(plan).cycles == predict_plan(dense).cycles


def test_int8_int4_and_int2_layers_back_to_back_under_stalls():
    """One accelerator: int8, int4 and int2 layers in one run (the packing rides in each command)."""
    plans = [plan_layer(SPEC, *LAYERS[1], packed_bits=2), plan_layer(SPEC, *LAYERS[0]),
             plan_layer(SPEC, *LAYERS[2], packed_bits=4), plan_layer(SPEC, *LAYERS[4], packed_bits=2),
             plan_layer(SPEC, *LAYERS[3], packed_bits=2)]
    cfg, weights, acts, params, expected = [], [], [], [], []
    for n, plan in enumerate(plans):
        data = make_layer_data(plan, 10 + n)
        cfg += data.config_words
        weights += data.weight_words
        acts += data.act_words
        params += data.param_words
        expected += data.expected_beats
    for stall, seed in ((0.0, 0), (0.3, 3), (0.6, 7)):
        run = run_top(SPEC, cfg=cfg, weights=weights, acts=acts, params=params, expect_beats=len(expected),
                      stall=stall, seed=seed)
        check_beats(run.beats, expected, decode=lane_decoder(SPEC))
        if not stall:
            assert run.cycles == predict_commands([s for plan in plans for s in plan.commands]).cycles


def test_extreme_int2_weights_exact():
    """Every weight -2 (the decoder's sign extension) against the most negative and the largest activations."""
    problem, postops = linear("fc_extreme", K=32, M=8, N=2), PostOps()
    plan = plan_layer(SPEC, problem, postops, packed_bits=2)
    w = np.full(problem.weight_canonical_shape, -2)
    x = np.empty(problem.act_canonical_shape, dtype=np.int64)      # [C, 1, N]: sample 0 all -128, sample 1 all 127
    x[..., 0], x[..., 1] = -128, 127
    (s,) = plan.commands
    acc = np.einsum("mc,cn->mn", w.reshape(8, 32), x.reshape(32, 2)).reshape(8, 1, 2)
    expected = s.pack_outputs(acc)
    run = run_top(SPEC, cfg=plan.config_words(), weights=plan.weight_stream(w), acts=s.pack_acts(x), params=[],
                  expect_beats=len(expected))
    check_beats(run.beats, expected, decode=lane_decoder(SPEC))
    assert run.cycles == predict_plan(plan).cycles


def test_accumulator_bound_follows_the_packed_width():
    """The reduction bound is K x |int8 x int{bits}| (int2: 256, int4: 1024, int8: 16384): on an int16
    accumulator an int2 layer of K = 127 fits (127 x 256 = 32,512) and runs exact at that extreme, K = 128 is a
    named error asking for int17; int4 and int8 weights overflow far earlier."""
    from hwgen.errors import AccumulatorOverflowError
    spec = dataclasses.replace(SPEC, acc_type="int16", name="mv4x4_acc16")
    fits = linear("fc_k127", K=127, M=4, N=1)
    plan = plan_layer(spec, fits, PostOps(), packed_bits=2)
    w = np.full(fits.weight_canonical_shape, -2)
    x = np.full(fits.act_canonical_shape, -128)
    (s,) = plan.commands
    expected = s.pack_outputs(np.full((4, 1, 1), 127 * 256))
    run = run_top(spec, cfg=plan.config_words(), weights=plan.weight_stream(w), acts=s.pack_acts(x), params=[],
                  expect_beats=len(expected))
    check_beats(run.beats, expected, decode=lane_decoder(spec))
    assert run.cycles == predict_plan(plan).cycles
    with pytest.raises(AccumulatorOverflowError, match=r"int8 x int2 \(\|product\| <= 256\) can reach 32768.*int17"):
        plan_layer(spec, linear("fc_k128", K=128, M=4, N=1), PostOps(), packed_bits=2)
    with pytest.raises(AccumulatorOverflowError, match=r"int8 x int4 \(\|product\| <= 1024\)"):
        plan_layer(spec, fits, PostOps(), packed_bits=4)
    with pytest.raises(AccumulatorOverflowError, match=r"int8 x int8 \(\|product\| <= 16384\)"):
        plan_layer(spec, fits, PostOps())
    assert plan_layer(spec, linear("fc_k31", K=31, M=4, N=1), PostOps(), packed_bits=4).commands


@pytest.mark.parametrize("bits", BITS)
def test_weight_bytes_shrink_in_roofline_and_energy(bits):
    problem, postops = linear("fc", K=64, M=32, N=1), PostOps(bias=True, requant=True)
    packed, dense = plan_layer(SPEC, problem, postops, packed_bits=bits), plan_layer(SPEC, problem, postops)
    k = 8 // bits
    assert layer_traffic(packed).weight_bytes * k == layer_traffic(dense).weight_bytes
    assert packed.bytes_moved["weights"] * k == dense.bytes_moved["weights"]
    assert layer_energy(packed)["dram_pj"] < layer_energy(dense)["dram_pj"]
    if bits == 2:
        int4 = plan_layer(SPEC, problem, postops, packed_bits=4)
        assert layer_energy(packed)["dram_pj"] < layer_energy(int4)["dram_pj"]
        assert 2 * packed.bytes_moved["weights"] == int4.bytes_moved["weights"]


@pytest.mark.parametrize("bits", BITS)
def test_beside_a_weight_stationary_array(bits):
    spec = AcceleratorSpec(rows=4, cols=4, act_buffer_bytes=256, weight_buffer_bytes=256, acc_buffer_bytes=256,
                           max_out_channels=16, mv_engine=True, packed_weight_bits=(bits,), name=f"ws_mv_int{bits}")
    plan = plan_layer(spec, *LAYERS[0], engine="matrix_vector", packed_bits=bits)
    run = run_pysim(plan, seed=5)
    assert run.cycles == predict_plan(plan).cycles
    with pytest.raises(MappingError, match="matrix-vector engine"):
        plan_layer(spec, conv("c", C=4, M=4, H=4, W=4, R=3), packed_bits=bits)
    other = 6 - bits
    with pytest.raises(MappingError, match=rf"packed int{other} weights need .*packed_weight_bits=\({other},\)"):
        plan_layer(spec, *LAYERS[0], engine="matrix_vector", packed_bits=other)


def test_checks():
    with pytest.raises(MappingError, match="mv_engine=True"):
        AcceleratorSpec(rows=2, cols=2, packed_weight_bits=(2,))
    with pytest.raises(UnsupportedTypeError, match="weight_type int8"):
        AcceleratorSpec(rows=2, cols=2, dataflow="matrix_vector", weight_type="int4", packed_weight_bits=(2,))
    for bad in ((8,), (3,), 4, True, ("4",)):
        with pytest.raises(MappingError, match="packed_weight_bits must be a tuple"):
            AcceleratorSpec(rows=2, cols=2, dataflow="matrix_vector", packed_weight_bits=bad)
    with pytest.raises(MappingError, match="integer-only"):
        AcceleratorSpec(rows=2, cols=2, act_type="bf16", weight_type="bf16", acc_type="fp32",
                        packed_weight_bits=(2,))
    # Normalised (a list, any order, repeats): one spec, hashable, through to_dict/from_dict.
    spec = AcceleratorSpec(rows=2, cols=2, dataflow="matrix_vector", packed_weight_bits=[2, 4, 2])
    assert spec.packed_weight_bits == (4, 2) and AcceleratorSpec.from_dict(spec.to_dict()) == spec
    plain = dataclasses.replace(SPEC, packed_weight_bits=())
    with pytest.raises(MappingError, match=r"packed_weight_bits=\(2,\)"):
        plan_layer(plain, *LAYERS[0], packed_bits=2)
    for bad in (8, 3, True):
        with pytest.raises(DesignError, match="packed_bits must be one of"):
            plan_layer(SPEC, *LAYERS[0], packed_bits=bad)


SIM = os.environ.get("SIM", "icarus")


@pytest.mark.cocotb
@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_rtl_exact_and_cycles_equal_model(stall):
    """On Icarus: int2 and int4 layers (and an int8 one) back to back, values exact, and without stalls every
    layer's cycles equal to the model."""
    from hwgen.sim.runner import run_layers
    plans = [plan_layer(SPEC, *LAYERS[0], packed_bits=2), plan_layer(SPEC, *LAYERS[1], packed_bits=4),
             plan_layer(SPEC, *LAYERS[2], packed_bits=2), plan_layer(SPEC, *LAYERS[4]),
             plan_layer(SPEC, *LAYERS[4], packed_bits=2)]
    result = run_layers(SPEC, plans, simulator=SIM, stall=stall, seed=4, tag="packed")
    assert len(result.layers) == len(plans)
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        if not stall:
            assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]
