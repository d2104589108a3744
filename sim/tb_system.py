"""cocotb test: a whole network on the system top (`hwgen.hw.system.SystemPorts`) from DRAM.

cocotbext-axi's `AxiRam` is the DRAM and `AxiLiteMaster` the host. The job (JSON, `hwgen.sim.system_runner`)
holds the DRAM image (`hwgen.system.image.build_image`): the host writes it into the RAM, writes the program's
address and descriptor count, enables the interrupt, pokes ``CTRL.start``, waits for ``irq``, reads the status
and the performance counters, and compares every output region of DRAM with the NumPy reference network's
bytes. A job may hold several runs one after another on the same design (e.g. one with an injected bus error,
then a clean one: the accelerator must recover).

DRAM timing, per run: ``interval`` - the read data channel offers at most one beat every ``interval`` cycles (bytes per
cycle = beat bytes / interval; the write data channel likewise); ``pause`` - the probability that each AXI
channel (``ar``, ``r``, ``aw``, ``w``, ``b``) stalls in a cycle, drawn independently per channel.
"""

import itertools
import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_steps, get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hwgen.hw.system import ERROR_CAUSES, REGISTERS

CLOCK_NS = 10


def _pauses(seed, probability, interval=1):
    rng = random.Random(seed)
    for cycle in itertools.count():
        yield (interval > 1 and cycle % interval != 0) or (probability > 0 and rng.random() < probability)


@cocotb.test()
async def run_system(dut):
    job = json.loads(open(os.environ["HWGEN_SIM_JOB"]).read())
    for name in ("cocotb.system_top", "cocotb"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    period = get_sim_steps(CLOCK_NS, "ns")
    dut.rst.value = 1
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=job["size"])
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    for log in (ram.write_if.log, ram.read_if.log, host.write_if.log, host.read_if.log):
        log.setLevel(logging.WARNING)
    seed = job["seed"]
    channels = {"ar": ram.read_if.ar_channel, "r": ram.read_if.r_channel, "aw": ram.write_if.aw_channel,
                "w": ram.write_if.w_channel, "b": ram.write_if.b_channel}

    def timing(pause, interval, salt):
        for n, (name, channel) in enumerate(channels.items()):
            spacing = interval if name in ("r", "w") else 1
            if pause or spacing > 1:
                channel.set_pause_generator(_pauses(seed * 31 + n + 1000 * salt, pause, spacing))
            else:
                channel.clear_pause_generator()
    original_read = ram.read_if._read
    fault = {"range": None}

    async def read_with_faults(address, length):
        span = fault["range"]
        if span is not None and address < span[1] and span[0] < address + length:
            raise IOError("injected bus error")
        return await original_read(address, length)

    ram.read_if._read = read_with_faults
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    for addr, data in job["segments"]:
        ram.write(addr, bytes.fromhex(data))
    assert await host.read_dword(REGISTERS["ID"]) == 0x48574731

    results = []
    for number, run in enumerate(job["runs"]):
        timing(run["pause"], run["interval"], number)
        fault["range"] = run.get("fault")
        for addr, length in run.get("clear", []):
            ram.write(addr, bytes(length))
        await host.write_dword(REGISTERS["PROG_ADDR"], run["program_addr"])
        await host.write_dword(REGISTERS["PROG_COUNT"], run["count"])
        await host.write_dword(REGISTERS["IRQ_ENABLE"], 1)
        await host.write_dword(REGISTERS["WATCHDOG"], run.get("watchdog", 0))
        started = get_sim_time("step")
        await host.write_dword(REGISTERS["CTRL"], 1)
        try:
            await with_timeout(RisingEdge(dut.irq), run["timeout_cycles"] * period, "step")
            hung = False
        except cocotb.triggers.SimTimeoutError:
            hung = True
        wall = (get_sim_time("step") - started) // period
        regs = {name: await host.read_dword(addr) for name, addr in REGISTERS.items() if name != "CTRL"}
        await host.write_dword(REGISTERS["IRQ"], 1)
        irq_after_clear = int(dut.irq.value)
        mismatches = []
        for addr, expected, name in run["outputs"]:
            expected = bytes.fromhex(expected)
            got = ram.read(addr, len(expected))
            if got != expected:
                first = next(i for i in range(len(expected)) if got[i] != expected[i])
                mismatches.append(f"{name}: {sum(a != b for a, b in zip(got, expected))} of {len(expected)} "
                                  f"bytes differ, first at +{first} ({got[first]:#04x}, expected "
                                  f"{expected[first]:#04x})")
        status = regs["STATUS"]
        results.append({"hung": hung, "irq_cycles": wall, "registers": regs, "mismatches": mismatches,
                        "busy": bool(status & 1), "done": bool(status & 2), "error": bool(status & 4),
                        "cause": ERROR_CAUSES.get(regs["ERROR"] & 15, "?"), "irq_after_clear": irq_after_clear,
                        "macs": regs["MACS_LO"] | regs["MACS_HI"] << 32})
        await ClockCycles(dut.clk, 4)
    with open(job["results_path"], "w") as f:
        json.dump({"runs": results}, f, indent=1)
