"""cocotb test: random writes and reads on one `hwgen.hw.bram.PipelinedMemory` (either form), checked against a
Python dictionary. Each cycle may write one word and issue one read of a word written before (never the word
being written in the same cycle: undefined, see `bram`); ``data_en`` is high in every cycle, so the word read
in cycle ``t`` is on ``read_data`` after the edge of cycle ``t + 1``. Copies of the address and enable
(``*_parts``, when the memory has them) are driven with the same values as the ports they copy. The job
(``$HWGEN_MEMORY_JOB``, JSON) gives ``depth``, ``cycles``, ``seed``, ``read_parts``, ``write_parts`` and
``results_path``; the results are the count of reads checked and the mismatches."""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge


def _replicate(value, bits, count):
    return sum(value << (k * bits) for k in range(count))


@cocotb.test()
async def run_memory_job(dut):
    job = json.loads(open(os.environ["HWGEN_MEMORY_JOB"]).read())
    rng = random.Random(job["seed"])
    depth, width = job["depth"], len(dut.write_data)
    addr_bits = len(dut.write_addr)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    for port in ("write_en", "read_en", "data_en", "write_addr", "read_addr", "write_data"):
        getattr(dut, port).value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    dut.data_en.value = 1
    words, written = {}, []
    expected = [None, None]          # the word read two edges ago (due now), and the one read at the last edge
    checked, mismatches = 0, []
    for cycle in range(job["cycles"]):
        write = rng.random() < 0.6 or not written
        write_addr = rng.randrange(depth)
        read = bool(written) and rng.random() < 0.7
        read_addr = rng.choice(written) if read else 0
        if read and write and read_addr == write_addr:
            read = False
        data = rng.getrandbits(width)
        dut.write_en.value, dut.write_addr.value, dut.write_data.value = int(write), write_addr, data
        dut.read_en.value, dut.read_addr.value = int(read), read_addr
        if job["write_parts"] > 1:
            dut.write_addr_parts.value = _replicate(write_addr, addr_bits, job["write_parts"])
            dut.write_en_parts.value = _replicate(int(write), 1, job["write_parts"])
        if job["read_parts"] > 1:
            dut.read_addr_parts.value = _replicate(read_addr, addr_bits, job["read_parts"])
            dut.read_en_parts.value = _replicate(int(read), 1, job["read_parts"])
        issued = (read_addr, words[read_addr]) if read else None    # the word before this cycle's write
        await RisingEdge(dut.clk)
        if write:
            if write_addr not in words:
                written.append(write_addr)
            words[write_addr] = data
        expected = [expected[1], issued]
        await ReadOnly()
        if expected[0] is not None:
            addr, want = expected[0]
            got = int(dut.read_data.value)
            checked += 1
            if got != want:
                mismatches.append({"cycle": cycle, "addr": addr, "want": hex(want), "got": hex(got)})
        await FallingEdge(dut.clk)
    with open(job["results_path"], "w") as f:
        json.dump({"checked": checked, "mismatches": mismatches[:20], "mismatch_count": len(mismatches)}, f)
