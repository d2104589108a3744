"""cocotb regression: layers streamed through the generated RTL, every value against NumPy, no-stall cycles
against the cycle model, random valid/ready stalls on every stream. Layers run as the planner plans them
(`hwgen.tiling.plan_layer`): whole, or tiled when a small spec forces bands of rows, input-channel tiles and
output-channel tiles; with post-op chains (bias, requantization, ReLU, pooling) on the output."""

import dataclasses
import os
import re

import pytest

from hwgen.verilog import generate

from hwgen import AcceleratorSpec
from hwgen.dtypes import uint8
from hwgen.postops import PostOps
from hwgen.problem import ConvProblem
from hwgen.tiling import plan_layer
from hwgen.sim.runner import run_layers

pytestmark = pytest.mark.cocotb

SIM = os.environ.get("SIM", "icarus")


def conv(name, *, C, M, H, W, R, S=None, stride=1, pad=0):
    S = R if S is None else S
    E = (H + 2 * pad - R) // stride + 1
    F = (W + 2 * pad - S) // stride + 1
    return ConvProblem(name, "conv2d", C=C, H=H, W=W, M=M, E=E, F=F, R=R, S=S, stride_h=stride,
                       stride_w=stride, pad_h=pad, pad_w=pad)


def linear(name, *, K, M, N):
    return ConvProblem(name, "linear", C=K, H=1, W=N, M=M, E=1, F=N, R=1, S=1, act_axes=(1, None, 0),
                       out_axes=(1, None, 0), act_shape=(N, K), weight_shape=(M, K), out_shape=(N, M))


SPEC_4X4 = AcceleratorSpec(rows=4, cols=4, act_buffer_bytes=2048, weight_buffer_bytes=4096,
                           acc_buffer_bytes=2048, name="ws4x4")
SPEC_8X8 = AcceleratorSpec(rows=8, cols=8, act_buffer_bytes=2048, weight_buffer_bytes=8192,
                           acc_buffer_bytes=4096, name="ws8x8")

LAYERS_4X4 = [
    conv("s1_p0_fold_nonsquare", C=6, M=9, H=7, W=5, R=3),        # C, M beyond the array; 5x3 output
    conv("s2_p1", C=5, M=4, H=9, W=8, R=3, stride=2, pad=1),
    conv("s1_p1_rect_kernel", C=4, M=6, H=5, W=6, R=3, S=2, pad=1),
    conv("s2_p0_1x1", C=7, M=5, H=6, W=6, R=1, stride=2),
    linear("mv_batch1", K=21, M=10, N=1),
    linear("mm_batch4", K=12, M=7, N=4),
]
LAYERS_8X8 = [
    conv("s1_p1_fold", C=20, M=12, H=6, W=7, R=3, pad=1),
    conv("s2_p0", C=8, M=16, H=9, W=9, R=3, stride=2),
    linear("mv_batch1", K=100, M=20, N=1),
    linear("mm_batch4", K=30, M=9, N=4),
]


# Buffers small enough that every layer below is tiled: 12 activation words per bank, 12 accumulator words,
# post-op parameters for one m-fold (2 channels) per bank.
SPEC_TILED = AcceleratorSpec(rows=2, cols=2, act_buffer_bytes=48, weight_buffer_bytes=16, acc_buffer_bytes=96,
                             max_out_channels=2, max_pool_width=8, name="ws2x2_tiled")
LAYERS_TILED = [
    conv("bands_c_tiles", C=3, M=3, H=5, W=3, R=3, pad=1),
    (conv("bands_c_m_tiles_requant_relu_maxpool", C=3, M=3, H=6, W=3, R=3, pad=1),
     PostOps(bias=True, requant=True, relu=True, pool="max")),
    (linear("fc_c_m_tiles_requant", K=15, M=3, N=2), PostOps(bias=True, requant=True)),
    (conv("bands_uint8_avgpool", C=2, M=2, H=3, W=3, R=2, pad=1), PostOps(requant=True, pool="avg", out_type=uint8)),
    (conv("m_tiles_sharing_acts_bias", C=2, M=5, H=3, W=4, R=2), PostOps(bias=True)),
]


def _plans(spec, layers):
    """What the testbench runs: `run_layers` plans each layer with `plan_layer`'s defaults."""
    pairs = [layer if isinstance(layer, tuple) else (layer, PostOps()) for layer in layers]
    return [plan_layer(spec, problem, postops) for problem, postops in pairs]


def _check(spec, layers, result, *, stall):
    plans = _plans(spec, layers)
    assert [layer["layer"] for layer in result.layers] == [plan.problem.name for plan in plans]
    for layer, plan in zip(result.layers, plans):
        name = plan.problem.name
        assert layer["exact"], f"{name}: {layer['report']}"
        assert layer["commands"] == len(plan.tiles) and layer["postops"] == str(plan.postops)
        assert layer["beats"] == layer["expected_beats"] == plan.out_beats
        if stall:
            assert layer["measured_cycles"] >= layer["model_cycles"]
        else:
            assert layer["measured_cycles"] == layer["model_cycles"], name
    return plans


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
@pytest.mark.parametrize("spec,layers", [(SPEC_4X4, LAYERS_4X4), (SPEC_8X8, LAYERS_8X8)], ids=["4x4", "8x8"])
def test_layers_exact_and_cycle_accurate(spec, layers, stall, tmp_path_factory):
    result = run_layers(spec, layers, simulator=SIM, stall=stall, seed=7)
    _check(spec, layers, result, stall=stall)


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_tiled_layers_with_postops_exact_and_cycle_accurate(stall):
    result = run_layers(SPEC_TILED, LAYERS_TILED, simulator=SIM, stall=stall, seed=5, tag="tiled")
    plans = _check(SPEC_TILED, LAYERS_TILED, result, stall=stall)
    # The spec forces what the test is for: bands of rows and input-channel tiles, and (with parameters for
    # one m-fold) output-channel tiles sharing their activations.
    for plan in plans:
        assert plan.tiled, plan.problem.name
    assert len({(t.e0, t.e1) for t in plans[0].tiles}) > 1 and len({(t.c0, t.c1) for t in plans[0].tiles}) > 1
    assert len({(t.m0, t.m1) for t in plans[1].tiles}) > 1 and len({(t.c0, t.c1) for t in plans[2].tiles}) > 1
    assert [t.schedule.load_acts for t in plans[4].tiles] == [True, False, False]


def test_one_accelerator_runs_layers_back_to_back_with_heavy_stalls():
    # Heavier stalls than above, different seed: the output FIFO fills and the pipeline must freeze cleanly.
    layers = [LAYERS_4X4[0], LAYERS_4X4[5], LAYERS_4X4[1]]
    result = run_layers(SPEC_4X4, layers, simulator=SIM, stall=0.6, seed=11)
    _check(SPEC_4X4, layers, result, stall=True)


# Built without the post-op chain (postops=False): raw accumulators straight from the output FIFO -------------------

SPEC_4X4_BARE = dataclasses.replace(SPEC_4X4, postops=False, name="ws4x4_bare")


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_layers_without_postop_chain_exact_and_cycle_accurate(stall):
    result = run_layers(SPEC_4X4_BARE, LAYERS_4X4, simulator=SIM, stall=stall, seed=9, tag="bare")
    _check(SPEC_4X4_BARE, LAYERS_4X4, result, stall=stall)


# The matrix-vector engine ------------------------------------------------------------------------------------------

SPEC_MV = AcceleratorSpec(rows=4, cols=4, dataflow="matrix_vector", act_buffer_bytes=256, weight_buffer_bytes=512,
                          acc_buffer_bytes=256, max_out_channels=16, name="mv4x4")
LAYERS_MV = [
    (linear("mv_batch1", K=21, M=10, N=1), PostOps()),
    (linear("mv_requant_relu", K=32, M=24, N=1), PostOps(bias=True, requant=True, relu=True)),   # m-tiles
    (linear("mm_batch3", K=9, M=7, N=3), PostOps(bias=True, requant=True)),
]


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_matrix_vector_engine_exact_and_cycle_accurate(stall):
    result = run_layers(SPEC_MV, LAYERS_MV, simulator=SIM, stall=stall, seed=5)
    assert [layer["layer"] for layer in result.layers] == [p.name for p, _ in LAYERS_MV]
    for layer in result.layers:
        assert layer["exact"], f"{layer['layer']}: {layer['report']}"
        if stall:
            assert layer["measured_cycles"] >= layer["model_cycles"]
        else:
            assert layer["measured_cycles"] == layer["model_cycles"], layer["layer"]


# The output-stationary array -------------------------------------------------------------------------------------

# Two tiles of K = 36 per bank: the larger layers run as several pixel-range commands; parameters for two
# m-folds: m-tiles sharing their loaded activations.
SPEC_OS = AcceleratorSpec(rows=4, cols=4, dataflow="output_stationary", act_buffer_bytes=2 * 80 * 4,
                          weight_buffer_bytes=256, acc_buffer_bytes=256, max_out_channels=8, max_pool_width=16,
                          name="os4x4")
LAYERS_OS = [
    (conv("os_s1_p1_requant_relu", C=4, M=10, H=7, W=7, R=3, pad=1), PostOps(bias=True, requant=True, relu=True)),
    (conv("os_s2_p0", C=3, M=5, H=9, W=8, R=3, stride=2), PostOps()),
    (conv("os_s2_p1_maxpool", C=2, M=6, H=10, W=10, R=3, stride=2, pad=1),
     PostOps(bias=True, requant=True, pool="max")),
    (conv("os_1x1_k_below_rows", C=2, M=3, H=5, W=6, R=1), PostOps(bias=True)),
    (conv("os_uint8_avgpool", C=5, M=4, H=6, W=6, R=2, pad=1), PostOps(requant=True, pool="avg", out_type=uint8)),
    (linear("os_matmul_batch6", K=13, M=9, N=6), PostOps(bias=True, requant=True)),
]


@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
def test_output_stationary_exact_and_cycle_accurate(stall):
    result = run_layers(SPEC_OS, LAYERS_OS, simulator=SIM, stall=stall, seed=9, tag="os")
    plans = _check(SPEC_OS, LAYERS_OS, result, stall=stall)
    assert any(len({t.p0 for t in plan.tiles}) > 1 for plan in plans)             # pixel-range commands
    assert any(len({(t.m0, t.m1) for t in plan.tiles}) > 1 for plan in plans)      # m-tiles
    assert any(plan.tiled and plan.postops.pool != "none" for plan in plans)      # pooled bands


# The ECP5 form: block RAMs and PE multipliers as device cells (DP16KD with its output register, MULT18X18D with
# its input and output registers), simulated with sim/models/ecp5_cells.v: the same values and cycles -----------

@pytest.mark.parametrize("stall", [0.0, 0.3], ids=["no_stall", "random_stall"])
@pytest.mark.parametrize("spec,layers", [(SPEC_4X4, LAYERS_4X4), (SPEC_TILED, LAYERS_TILED), (SPEC_OS, LAYERS_OS),
                                         (SPEC_MV, LAYERS_MV)], ids=["4x4", "tiled", "os", "mv"])
def test_ecp5_cells_form_is_exact_and_cycle_accurate(spec, layers, stall):
    result = run_layers(spec, layers, simulator=SIM, stall=stall, seed=3, tag="ecp5", family="ecp5")
    _check(spec, layers, result, stall=stall)


def test_pes_beyond_the_hard_multipliers_are_exact_and_cycle_accurate():
    """The form a device with too few multipliers gets (`hwgen.hw.target` ``pe_multiplier_cells``, the FPGA
    flow's --lut-multipliers): 6 of the 16 PEs on MULT18X18D cells (column 0 and two of column 1), the
    other 10 multiplying in logic. Same values, same cycles."""
    verilog = generate(SPEC_4X4, family="ecp5", pe_multiplier_cells=6)
    bodies = dict(re.findall(r"^module \\(\S+) ?\((.*?)^endmodule", verilog, re.M | re.S))
    name = SPEC_4X4.name
    assert "MULT18X18D" in bodies[f"{name}.pe.multiplier"]              # the PEs on cells
    assert "MULT18X18D" not in bodies[f"{name}.pe_2.multiplier"]        # the PEs in logic
    assert {f"{name}.column", f"{name}.column_2", f"{name}.column_3"} <= set(bodies)   # all, two, no cells
    result = run_layers(SPEC_4X4, LAYERS_4X4, simulator=SIM, seed=3, tag="mixed", family="ecp5", verilog=verilog)
    _check(SPEC_4X4, LAYERS_4X4, result, stall=0.0)


def test_paired_pes_on_one_multiplier_are_exact_and_cycle_accurate():
    """int8 activations x int4 weights in the ECP5 form: two PEs of a row share one MULT18X18D
    (`hwgen.hw.pe_pair`), 2 x 5 pairs of a 5x5 array on 10 cells and its odd last column on 5 more; the
    post-op chain as usual. Same values (bias, requantization, ReLU, pooling included), same cycles as the
    model, with and without stalls."""
    spec = AcceleratorSpec(rows=5, cols=5, weight_type="int4", act_buffer_bytes=2560, weight_buffer_bytes=2560,
                           acc_buffer_bytes=2560, name="ws5x5_int4")
    verilog = generate(spec, family="ecp5")
    bodies = dict(re.findall(r"^module \\(\S+) ?\((.*?)^endmodule", verilog, re.M | re.S))
    assert "MULT18X18D" in bodies[f"{spec.name}.pe_pair.multiplier"]
    assert f"{spec.name}.column_pair" in bodies and f"{spec.name}.column" in bodies
    layers = [conv("int4_s1_p1", C=7, M=8, H=6, W=5, R=3, pad=1),
              (conv("int4_requant_relu_maxpool", C=5, M=6, H=6, W=6, R=3, pad=1),
               PostOps(bias=True, requant=True, relu=True, pool="max")),
              linear("int4_mv", K=23, M=11, N=1)]
    for stall in (0.0, 0.3):
        result = run_layers(spec, layers, simulator=SIM, seed=5, stall=stall, tag="pairs", family="ecp5",
                            verilog=verilog)
        _check(spec, layers, result, stall=stall)


# Issue 18's family on the Verilog: short commands that each load post-op parameters (the slot queue froze the
# pipeline when a command's first slot reached an empty queue), and a bank loaded full while it is read (the
# loader's write address wrapped) -------------------------------------------------------------------------------

SPEC_SHORT = AcceleratorSpec(rows=3, cols=5, act_buffer_bytes=12288, weight_buffer_bytes=4000, acc_buffer_bytes=8000,
                             max_out_channels=5, name="ws35_short")
LAYERS_SHORT = [
    (conv("c258_one_row_commands_bias", C=3, M=2, H=18, W=7, R=1, stride=3, pad=3), PostOps(bias=True)),
    (linear("k1_m_tiles_bias", K=1, M=12, N=1), PostOps(bias=True)),
    (conv("rows_bands_requant_relu", C=4, M=7, H=9, W=5, R=3, pad=1), PostOps(bias=True, requant=True, relu=True)),
]
SPEC_OS_FULL_BANK = AcceleratorSpec(rows=4, cols=5, dataflow="output_stationary", act_buffer_bytes=256,
                                    weight_buffer_bytes=40, acc_buffer_bytes=1280, max_out_channels=5,
                                    name="os45_full_bank")
LAYERS_OS_FULL_BANK = [(conv("full_bank", C=4, M=6, H=11, W=2, R=1, stride=2, pad=3), PostOps())]


@pytest.mark.parametrize("spec,layers", [(SPEC_SHORT, LAYERS_SHORT), (SPEC_OS_FULL_BANK, LAYERS_OS_FULL_BANK)],
                         ids=["ws_short_commands", "os_full_bank"])
def test_short_commands_with_parameters_meet_the_model_on_the_rtl(spec, layers):
    result = run_layers(spec, layers, simulator=SIM, seed=4, tag="short")
    plans = _check(spec, layers, result, stall=False)
    assert all(len(plan.tiles) >= 2 for plan in plans)


# int16 activations with int8 weights (the wide-activation mode; a layer of int8 data runs on it too).
SPEC_INT16 = AcceleratorSpec(rows=4, cols=4, act_type="int16", weight_type="int8", acc_type="int32",
                             act_buffer_bytes=4096, weight_buffer_bytes=4096, acc_buffer_bytes=2048, name="ws4x4_a16")
LAYERS_INT16 = [
    (conv("a16_requant_relu_maxpool", C=6, M=6, H=8, W=6, R=3, pad=1),
     PostOps(bias=True, requant=True, relu=True, pool="max", out_type="int16")),
    (linear("a16_fc_requant", K=20, M=9, N=3), PostOps(bias=True, requant=True, out_type="int16")),
    conv("a16_raw_accumulators", C=5, M=4, H=5, W=5, R=2),
]


def test_int16_activations_exact_and_cycle_accurate():
    result = run_layers(SPEC_INT16, LAYERS_INT16, simulator=SIM, tag="a16")
    _check(SPEC_INT16, LAYERS_INT16, result, stall=0.0)
