"""The regression must bite: injected faults in the data or in the hardware make it fail."""

import re
from pathlib import Path

import pytest
from amaranth.hdl import Signal

import hwgen.hw.top as top_module
from hwgen.hw.addrgen import FoldSequencer
from hwgen.verilog import generate
from hwgen.sim.runner import run_layers
from hwgen.hw.os_array import OutputStationaryArray
from tests.test_cocotb_accelerator import LAYERS_4X4, LAYERS_OS, SIM, SPEC_4X4, SPEC_OS

pytestmark = pytest.mark.cocotb


class OffByOneSequencer(FoldSequencer):
    """The activation address generator reads one word too far."""

    def elaborate(self, platform):
        port = self.act_addr
        inner = Signal.like(port, name="act_addr_correct")
        self.__dict__["act_addr"] = inner  # the parent drives `inner`...
        try:
            m = super().elaborate(platform)
        finally:
            self.__dict__["act_addr"] = port
        m.d.comb += port.eq(inner + 1)  # ...and the port carries the fault
        return m


class LastRowDroppedArray(OutputStationaryArray):
    """The output-stationary read-out never picks the bottom row (a one-hot select built one row short)."""

    def elaborate(self, platform):
        rows = self.rows
        self.rows = rows - 1
        try:
            return super().elaborate(platform)
        finally:
            self.rows = rows


@pytest.mark.parametrize("spec, layer", [(SPEC_4X4, LAYERS_4X4[0]), (SPEC_OS, LAYERS_OS[1])], ids=["ws", "os"])
def test_flipped_weight_bit_is_caught(spec, layer):
    result = run_layers(spec, [layer], simulator=SIM, flip_weight_bit=[0, 5, 3], tag=f"fault-weight-{spec.name}")
    (outcome,) = result.layers
    assert not outcome["exact"]
    assert "expected" in outcome["report"] and "O[m=" in outcome["report"]
    # the first wrong beat is named by its cycle (from the first cfg handshake), to find it in a waveform
    assert 0 < outcome["first_wrong_cycle"] <= outcome["measured_cycles"]
    assert f"at cycle {outcome['first_wrong_cycle']} after the first cfg handshake" in outcome["report"]


def test_waves_are_written(tmp_path):
    """`hwgen sim --waves`: the run's FST, from a build of its own (the plain build stays trace-free)."""
    result = run_layers(SPEC_4X4, [LAYERS_4X4[3]], simulator=SIM, waves=tmp_path / "run.fst", tag="waves")
    assert result.exact and result.waves == str(tmp_path / "run.fst")
    assert (tmp_path / "run.fst").stat().st_size > 1000


def run_with_faulty_block(monkeypatch, spec, layer, *, block, faulty_class, tag):
    """Generate `spec` with `top.<block>` replaced by `faulty_class` and run `layer` on that Verilog."""
    monkeypatch.setattr(top_module, block, faulty_class)
    faulty = generate(spec)
    monkeypatch.undo()
    assert faulty != generate(spec)
    (outcome,) = run_layers(spec, [layer], simulator=SIM, verilog=faulty, tag=tag).layers
    return outcome


def test_address_generator_off_by_one_is_caught(monkeypatch):
    outcome = run_with_faulty_block(monkeypatch, SPEC_4X4, LAYERS_4X4[1], block="FoldSequencer",
                                    faulty_class=OffByOneSequencer, tag="fault-addr")
    assert not outcome["exact"]


def test_output_stationary_read_out_fault_is_caught(monkeypatch):
    outcome = run_with_faulty_block(monkeypatch, SPEC_OS, LAYERS_OS[3], block="OutputStationaryArray",
                                    faulty_class=LastRowDroppedArray, tag="fault-os-readout")
    assert not outcome["exact"]


@pytest.mark.parametrize("stream, since", [("weights", "the first cfg handshake"),
                                           ("cfg", "the layer's streams were queued")])
def test_a_stalled_source_ends_in_a_timeout_that_names_the_cycle(stream, since):
    """The last weight word (or the only command) never comes: the layer is stopped within its cycle budget and
    reported as a timeout naming the cycle it reached and the beats it got, not waited on forever."""
    layer = LAYERS_4X4[0]
    result = run_layers(SPEC_4X4, [layer, LAYERS_4X4[1]], simulator=SIM, withhold_words={stream: 1},
                        tag=f"fault-timeout-{stream}")
    (outcome,) = result.layers                     # the run stops at the hung layer
    assert outcome["hung"] and not outcome["exact"] and outcome["measured_cycles"] is None
    model = outcome["model_cycles"]
    budget = model * 20 + 1000
    found = re.match(rf"timeout: stopped at cycle (\d+) after {since} \(budget {budget} cycles: 20 x the "
                     rf"model's {model} for stall 0.0\); (cfg was never accepted; )?(\d+) of "
                     rf"{outcome['expected_beats']} output beats received, ", outcome["timeout"])
    assert found, outcome["timeout"]
    assert budget - 10 <= int(found.group(1)) <= budget
    assert bool(found.group(2)) == (stream == "cfg")
    assert int(found.group(3)) < outcome["expected_beats"]
    assert outcome["report"].startswith(outcome["timeout"])
    assert result.run_dir is not None and (Path(result.run_dir) / "sim.log").is_file()   # kept: it failed
