"""Synthesis and place-and-route with the YoWASP tools (``pytest -m fpga``): the CLI end to end and the
regression baselines of fpga/baselines/*.json."""

import argparse
import json

import pytest

from hwgen.fpga import baselines
from hwgen.fpga.cli import add_synth_parser, run_synth
from hwgen.fpga.flow import synthesize

pytestmark = pytest.mark.fpga


def run(*argv):
    parser = argparse.ArgumentParser()
    add_synth_parser(parser.add_subparsers(dest="command"))
    return run_synth(parser.parse_args(["synth", *argv]))


# The UP5K's logic cells hold the array without the post-op chain only (the fit check says so).
@pytest.mark.parametrize("device, extra, name", [("ice40-up5k", ["--no-postops"], "ws2x1_nopost"),
                                                 ("ecp5-85f", [], "ws2x1")])
def test_cli_synth_writes_netlist_report_and_summary(device, extra, name, tmp_path, capsys):
    out = tmp_path / device
    assert run("--rows", "2", "--cols", "1", "--act-buffer-bytes", "256", "--weight-buffer-bytes", "256",
               "--acc-buffer-bytes", "512", "--device", device, "-o", str(out), "--json", "-q", *extra) == 0
    summary = json.loads(capsys.readouterr().out)
    for name in (f"{name}.json", f"{name}.v", f"{name}.report.json", f"{name}.summary.json",
                 f"{name}.summary.txt", "nextpnr.log", "yosys.log"):
        assert (out / name).exists(), name
    assert summary["dsp"] == summary["estimate"]["dsps_needed"] >= 2, "one hard multiplier per MAC"
    assert summary["fmax_mhz"] > 0 and summary["critical_path"]["from"]
    assert summary["memory_mapping"]["status"] == "ok", summary["memory_mapping"]
    assert summary["bram"] >= 2


def test_timing_miss_is_reported_not_fatal(tmp_path, capsys):
    """nextpnr exits 1 on a missed target without --timing-allow-fail; we report the miss instead."""
    code = run("--rows", "2", "--cols", "1", "--act-buffer-bytes", "256", "--weight-buffer-bytes", "256",
               "--acc-buffer-bytes", "512", "--device", "ice40-up5k", "--freq", "400", "-o", str(tmp_path), "-q")
    assert code == 0
    text = capsys.readouterr().out
    assert "timing MISSED" in text
    assert run("--rows", "2", "--cols", "1", "--act-buffer-bytes", "256", "--weight-buffer-bytes", "256",
               "--acc-buffer-bytes", "512", "--device", "ice40-up5k", "--freq", "400", "-o", str(tmp_path),
               "-q", "--require-timing") == 3


@pytest.mark.parametrize("name", sorted(baselines.load_baselines()))
def test_baseline(name, tmp_path):
    baseline = baselines.load_baselines()[name]
    summary = synthesize(baselines.spec_of(baseline), baseline["device"], freq_mhz=baseline["freq_mhz"],
                         seed=baseline.get("seed", 1), build_dir=tmp_path / name,
                         pnr=baselines.needs_pnr(baseline))
    failures = baselines.compare(baseline, summary)
    assert not failures, f"{name} regressed (re-record with `python -m hwgen.fpga.baselines --update {name}` if " \
                         f"intended):\n  " + "\n  ".join(failures)
