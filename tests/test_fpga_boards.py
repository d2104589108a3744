"""Board tops: pin plans through amaranth-boards (fast), bitstreams with the YoWASP tools (``-m fpga``)."""

import json
from pathlib import Path

import pytest

from hwgen.fpga.boards import BOARDS, build_board, prepare_board
from hwgen.spec import AcceleratorSpec
from tests.test_fpga_wrapper import StandinTop, small_spec


@pytest.mark.parametrize("board", ["ulx3s", "icebreaker"])
def test_board_plan_places_the_pin_light_top(board):
    spec = small_spec(2, 2)
    plan = prepare_board(spec, board, component=StandinTop(spec), name="t")
    constraints = plan.files.get("t.lpf") or plan.files.get("t.pcf")
    io_bits = BOARDS[board].io_bits
    for bit in range(io_bits):
        assert f"hwgen_io_0__din__io[{bit}]" in constraints
        assert f"hwgen_io_0__dout__io[{bit}]" in constraints
    for pin in ("din_valid", "din_push", "dout_valid", "dout_next", "din_busy"):
        assert f"hwgen_io_0__{pin}__io" in constraints
    assert "hwgen_rst_0__io" in constraints
    commands = json.loads(plan.files["build_t.json"])["commands"]
    nextpnr = next(c for c in commands if c[0].startswith("nextpnr"))
    assert "--timing-allow-fail" in nextpnr and "--report" in nextpnr
    yosys_script = plan.files["t.ys"]
    if board == "icebreaker":
        assert "synth_ice40 -dsp" in yosys_script
    assert "stat -json" in yosys_script


def tiny_spec():
    # 2x1: the UP5K's 8 DSPs hold 2 PE multipliers plus the column's 4-DSP post-op multiply
    return AcceleratorSpec(rows=2, cols=1, act_buffer_bytes=256, weight_buffer_bytes=256, acc_buffer_bytes=512,
                           name="board2x1")


@pytest.mark.fpga
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_board_bitstream(board, tmp_path):
    summary = build_board(tiny_spec(), board, build_dir=tmp_path / board)
    bitstream = Path(summary["bitstream"])
    assert bitstream.exists() and bitstream.stat().st_size > 10_000
    assert summary["dsp"] >= 2
    assert summary["fmax_mhz"] > 0 and summary["timing_met"] in (True, False)   # a miss is reported, not fatal
    assert summary["memory_mapping"]["status"] == "ok"
