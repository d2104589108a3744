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

A job with ``"exact": true`` replaces `AxiRam` with `ExactDram`, a DRAM of fixed latency and fixed bandwidth and
no back-pressure whose timing is exactly what `hwgen.system.exact` models (every run's ``latency`` and
``interval``; no ``pause``, no injected faults).
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


async def _mark_start(dut, cycles):
    """Cycle 0 of a trace: the first cycle the system is busy (the one after the start register's write)."""
    count = -1
    while True:
        await RisingEdge(dut.clk)
        count += 1
        if int(dut.s_axil_awvalid.value) and int(dut.s_axil_awready.value) and int(dut.s_axil_wvalid.value) \
                and int(dut.s_axil_awaddr.value) == REGISTERS["CTRL"]:
            cycles["start"] = count + 1
            return


class ExactDram:
    """An AXI4 slave with exact, documented timing (cycle ``c``: the values between two rising edges; a
    handshake "in cycle c" is valid & ready sampled at the edge ending it):

    - ``arready`` and ``awready`` are always 1;
    - reads are answered in order: the first beat of a burst whose ``ar`` handshake is in cycle ``a`` is
      offered from cycle ``a + latency``; each beat is offered from ``max(that, h + interval)``, ``h`` the
      previous read beat's handshake, and held until ``rready``;
    - ``wready`` is 1 from ``h + interval`` on, ``h`` the previous write beat's handshake (1 before the first);
    - a burst's write response is offered from ``latency`` cycles after the cycle of its last ``w`` handshake,
      in order, and held until ``bready``.
    """

    def __init__(self, dut, size):
        self.dut, self.mem = dut, bytearray(size)
        self.width = len(dut.m_axi_rdata) // 8
        self.latency, self.interval = 1, 1

    def write(self, addr, data):
        self.mem[addr:addr + len(data)] = data

    def read(self, addr, length):
        return bytes(self.mem[addr:addr + length])

    async def run(self):
        dut, B = self.dut, self.width
        dut.m_axi_arready.value = 1
        dut.m_axi_awready.value = 1
        dut.m_axi_rvalid.value = 0
        dut.m_axi_bvalid.value = 0
        dut.m_axi_wready.value = 1
        reads, writes, responses = [], [], []     # bursts: [due, id, addr, beats left]; [addr, beats]; [due, id]
        r_offer = None                            # the beat on r: (burst)
        r_next = 0                                # earliest cycle of the next read beat
        w_next = 0
        b_offer = False
        cycle = -1
        while True:
            await RisingEdge(dut.clk)
            cycle += 1                            # the cycle that just ended
            if int(dut.rst.value):
                reads.clear(); writes.clear(); responses.clear()
                r_offer, b_offer, r_next, w_next = None, False, 0, 0
                dut.m_axi_rvalid.value = 0
                dut.m_axi_bvalid.value = 0
                dut.m_axi_wready.value = 1
                continue
            if int(dut.m_axi_arvalid.value):
                reads.append([cycle + self.latency, int(dut.m_axi_arid.value), int(dut.m_axi_araddr.value),
                              int(dut.m_axi_arlen.value) + 1])
            if r_offer is not None and int(dut.m_axi_rready.value):
                burst = reads[0]
                burst[2] += B
                burst[3] -= 1
                if burst[3] == 0:
                    reads.pop(0)
                r_offer = None
                r_next = cycle + self.interval
            if int(dut.m_axi_awvalid.value):
                writes.append([int(dut.m_axi_awaddr.value), int(dut.m_axi_awlen.value) + 1,
                               int(dut.m_axi_awid.value)])
            if int(dut.m_axi_wready.value) and int(dut.m_axi_wvalid.value):
                burst = writes[0]
                data, strb = int(dut.m_axi_wdata.value), int(dut.m_axi_wstrb.value)
                base = burst[0] - burst[0] % B
                for i in range(B):
                    if strb >> i & 1:
                        self.mem[base + i] = (data >> (8 * i)) & 0xFF
                burst[0] = base + B
                burst[1] -= 1
                if burst[1] == 0:
                    writes.pop(0)
                    responses.append([cycle + self.latency, burst[2]])
                w_next = cycle + self.interval
            if b_offer and int(dut.m_axi_bready.value):
                responses.pop(0)
                b_offer = False
            # Drive the next cycle (cycle + 1).
            now = cycle + 1
            if r_offer is None and reads and reads[0][0] <= now and r_next <= now:
                burst = reads[0]
                addr = burst[2] - burst[2] % B
                dut.m_axi_rdata.value = int.from_bytes(self.read(addr, B), "little")
                dut.m_axi_rid.value = burst[1]
                dut.m_axi_rresp.value = 0
                dut.m_axi_rlast.value = int(burst[3] == 1)
                r_offer = burst
            dut.m_axi_rvalid.value = int(r_offer is not None)
            dut.m_axi_wready.value = int(w_next <= now)
            if not b_offer and responses and responses[0][0] <= now:
                dut.m_axi_bid.value = responses[0][1]
                dut.m_axi_bresp.value = 0
                b_offer = True
            dut.m_axi_bvalid.value = int(b_offer)


def _pauses(seed, probability, interval=1):
    rng = random.Random(seed)
    for cycle in itertools.count():
        yield (interval > 1 and cycle % interval != 0) or (probability > 0 and rng.random() < probability)


PORTS = {"cfg": ("cfg__valid", ("cfg__ready",)), "acts": ("acts__valid", ("acts__ready", "acts_more_copy_0")),
         "params": ("params__valid", ("params__ready",)), "weights": ("w_stream__valid", ("weights__ready",)),
         "mv_weights": ("w_stream__valid$10", ("mv_weights__ready",)), "out": ("out__valid", ("out__ready",))}


def _handle(scope, name):
    try:
        return scope._id(name, extended=False)
    except (AttributeError, KeyError, ValueError):
        return None


async def trace_ports(dut, trace, cycles):
    """Debugging aid (job ``"trace": true``): every handshake on the AXI channels and the accelerator's stream
    ports, as (cycle, ...) with cycle counted from the start register write."""
    core = dut.system.core
    ports = {}
    for name, (valid, readies) in PORTS.items():
        v = _handle(core, valid)
        r = next((h for h in (_handle(core, x) for x in readies) if h is not None), None)
        if v is not None and r is not None:
            ports[name] = (v, r)
    arrival = {name: None for name in ports}
    for name in list(ports) + ["ar", "r", "aw", "w", "b"]:
        trace[name] = []
    cycle = -1
    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        at = cycle - cycles["start"] if cycles["start"] is not None else None
        if at is None:
            continue
        for name, (v, r) in ports.items():
            valid = int(v.value)
            if valid and arrival[name] is None:
                arrival[name] = at
            if valid and int(r.value):
                trace[name].append((arrival[name], at))
                arrival[name] = None
        if int(dut.m_axi_arvalid.value) and int(dut.m_axi_arready.value):
            trace["ar"].append((at, int(dut.m_axi_arid.value), int(dut.m_axi_arlen.value) + 1))
        if int(dut.m_axi_rvalid.value) and int(dut.m_axi_rready.value):
            trace["r"].append((at, int(dut.m_axi_rid.value)))
        if int(dut.m_axi_awvalid.value) and int(dut.m_axi_awready.value):
            trace["aw"].append((at, int(dut.m_axi_awlen.value) + 1))
        if int(dut.m_axi_wvalid.value) and int(dut.m_axi_wready.value):
            trace["w"].append(at)
        if int(dut.m_axi_bvalid.value) and int(dut.m_axi_bready.value):
            trace["b"].append(at)


@cocotb.test()
async def run_system(dut):
    job = json.loads(open(os.environ["HWGEN_SIM_JOB"]).read())
    for name in ("cocotb.system_top", "cocotb"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    period = get_sim_steps(CLOCK_NS, "ns")
    dut.rst.value = 1
    exact = job.get("exact", False)
    host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    seed = job["seed"]
    fault = {"range": None}
    if exact:
        ram = ExactDram(dut, job["size"])
        cocotb.start_soon(ram.run())
        for log in (host.write_if.log, host.read_if.log):
            log.setLevel(logging.WARNING)

        def timing(pause, interval, salt, latency=1):
            assert not pause, "the exact DRAM has no random back-pressure"
            ram.latency, ram.interval = (1 if latency is None else latency), interval
    else:
        ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=job["size"])
        for log in (ram.write_if.log, ram.read_if.log, host.write_if.log, host.read_if.log):
            log.setLevel(logging.WARNING)
        channels = {"ar": ram.read_if.ar_channel, "r": ram.read_if.r_channel, "aw": ram.write_if.aw_channel,
                    "w": ram.write_if.w_channel, "b": ram.write_if.b_channel}

        def timing(pause, interval, salt, latency=None):
            for n, (name, channel) in enumerate(channels.items()):
                spacing = interval if name in ("r", "w") else 1
                if pause or spacing > 1:
                    channel.set_pause_generator(_pauses(seed * 31 + n + 1000 * salt, pause, spacing))
                else:
                    channel.clear_pause_generator()
        original_read = ram.read_if._read

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
        timing(run["pause"], run["interval"], number, run.get("latency"))
        fault["range"] = run.get("fault")
        for addr, length in run.get("clear", []):
            ram.write(addr, bytes(length))
        await host.write_dword(REGISTERS["PROG_ADDR"], run["program_addr"])
        await host.write_dword(REGISTERS["PROG_COUNT"], run["count"])
        await host.write_dword(REGISTERS["IRQ_ENABLE"], 1)
        await host.write_dword(REGISTERS["WATCHDOG"], run.get("watchdog", 0))
        started = get_sim_time("step")
        trace, cycles = {}, {"start": None}
        tracer = cocotb.start_soon(trace_ports(dut, trace, cycles)) if job.get("trace") else None
        if tracer is not None:
            cocotb.start_soon(_mark_start(dut, cycles))
        await host.write_dword(REGISTERS["CTRL"], 1)
        try:
            await with_timeout(RisingEdge(dut.irq), run["timeout_cycles"] * period, "step")
            hung = False
        except cocotb.triggers.SimTimeoutError:
            hung = True
        wall = (get_sim_time("step") - started) // period
        if tracer is not None:
            tracer.cancel()
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
                        "macs": regs["MACS_LO"] | regs["MACS_HI"] << 32, "trace": trace or None})
        await ClockCycles(dut.clk, 4)
    with open(job["results_path"], "w") as f:
        json.dump({"runs": results}, f, indent=1)
