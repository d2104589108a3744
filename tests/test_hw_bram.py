"""`hwgen.hw.bram.PipelinedMemory` on the RTL (Icarus): random writes and reads against a dictionary, in the
generic form and in the ECP5 form (DP16KD cells, `sim/models/ecp5_cells.v`), with the read and write address
copies (``read_parts``, ``write_parts``) of a memory several blocks deep and wide."""

import os

import pytest

from hwgen.hw.bram import PipelinedMemory, ecp5_tiling
from hwgen.hw.target import Target
from hwgen.verilog import CELL_MODELS

SIM = os.environ.get("SIM", "icarus")


@pytest.mark.cocotb
@pytest.mark.parametrize("family,width,depth,read_parts,write_parts", [
    ("ecp5", 40, 2500, 3, 2),       # 3 banks x 3 columns of DP16KD: a part's address decodes its own bank
    ("ecp5", 40, 2500, 1, 1),
    ("ecp5", 70, 300, 4, 4),        # 1 bank x 4 columns: one copy per column
    (None, 40, 2500, 3, 2),         # the generic form reads and writes at the ports the copies copy
], ids=["ecp5_banked_parts", "ecp5_banked", "ecp5_columns_parts", "generic_parts"])
def test_memory_reads_back_every_word(family, width, depth, read_parts, write_parts, tmp_path):
    from amaranth.back import verilog
    from hwgen.sim.runner import run_block
    if family == "ecp5":
        banks, columns, _ = ecp5_tiling(depth, width)
        assert banks * columns > 1
    memory = PipelinedMemory(width=width, depth=depth, read_parts=read_parts, write_parts=write_parts)
    source = tmp_path / "memory.v"
    source.write_text(verilog.convert(memory, name="memory", platform=Target(family), emit_src=False))
    sources = [source] + ([CELL_MODELS["ecp5"]] if family == "ecp5" else [])
    job = {"depth": depth, "cycles": 1500, "seed": 5, "read_parts": read_parts, "write_parts": write_parts}
    got = run_block(sources, "memory", "hwgen.sim.tb_memory", job, env_var="HWGEN_MEMORY_JOB", work_dir=tmp_path,
                    simulator=SIM)
    assert got["mismatch_count"] == 0, got["mismatches"]
    assert got["checked"] > 700


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("parts", [0, -1, 1.5, True, "2"])
def test_parts_are_positive_integers(parts):
    with pytest.raises(ValueError, match="write_parts must be a positive integer"):
        PipelinedMemory(width=8, depth=16, write_parts=parts)
    with pytest.raises(ValueError, match="read_parts must be a positive integer"):
        PipelinedMemory(width=8, depth=16, read_parts=parts)
