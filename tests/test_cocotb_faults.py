"""The regression must bite: injected faults in the data or in the hardware make it fail."""

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
