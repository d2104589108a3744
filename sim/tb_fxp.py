"""cocotb test: run a fixed-point engine program (`hwgen.fxp.program.Program`, sent as a job by
`hwgen.sim.fxp_runner`) on the Verilog, cycle by cycle, and record every handshake.

The host is cycle-exact, like `hwgen.sim.fxp_pysim`: each input stream offers its next word every cycle (unless
a random stall withholds it), a ``data_in`` word made from ``out`` beats only `hwgen.fxp.perf.HOST_TURNAROUND`
cycles after the last of them; ``out`` is always ready (or randomly not). In each cycle the inputs are driven
after the clock edge and the handshakes read once the cycle has settled (``ReadOnly``). The beats are compared
with the golden model's in order; the cycles of every cfg handshake, ``done`` pulse and ``out`` beat are
written to the results file, for the runner to compare with `hwgen.fxp.perf.predict`.
"""

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

HOST_TURNAROUND = int(os.environ.get("HWGEN_FXP_TURNAROUND", "3"))
STREAMS = ("cfg", "data_in", "weights")


@cocotb.test()
async def run_job(dut):
    job = json.loads(open(os.environ["HWGEN_SIM_JOB"]).read())
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    queues = {name: [int(w, 16) for w in job["words"][name]] for name in STREAMS}
    expected = [int(w, 16) for w in job["expected"]]
    gates = job["data_gates"]
    rng = random.Random(job["seed"])
    stall = job["stall"]
    commands = job["commands"]
    budget = job["max_cycles"]

    for name in STREAMS:
        getattr(dut, f"{name}__valid").value = 0
        getattr(dut, f"{name}__payload").value = 0
    dut.out__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    sent = dict.fromkeys(STREAMS, 0)
    cfg_times, done_times, out_times, beats = [], [], [], []

    def gate(index):
        need = 0
        for first, count in gates:
            if first <= index:
                need = max(need, count)
        return need

    started = time.perf_counter()
    cycle = 0
    while (len(beats) < len(expected) or len(done_times) < commands) and cycle < budget:
        offered = {}
        for name in STREAMS:
            offer = sent[name] < len(queues[name])
            if offer and name == "data_in":
                need = gate(sent[name])
                offer = not need or (len(out_times) >= need and cycle >= out_times[need - 1] + HOST_TURNAROUND)
            offer = offer and not (stall and rng.random() < stall)
            offered[name] = offer
            getattr(dut, f"{name}__valid").value = int(offer)
            getattr(dut, f"{name}__payload").value = queues[name][sent[name]] if offer else 0
        ready = not (stall and rng.random() < stall)
        dut.out__ready.value = int(ready)
        await ReadOnly()
        for name in STREAMS:
            if offered[name] and getattr(dut, f"{name}__ready").value:
                sent[name] += 1
                if name == "cfg":
                    cfg_times.append(cycle)
        if ready and dut.out__valid.value:
            beats.append(int(dut.out__payload.value))
            out_times.append(cycle)
        if dut.done.value:
            done_times.append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1
    hung = cycle >= budget
    for name in STREAMS:
        getattr(dut, f"{name}__valid").value = 0
    dut.out__ready.value = 1
    extra = 0
    for _ in range(16):
        await ReadOnly()
        extra += int(dut.out__valid.value)
        await RisingEdge(dut.clk)
    mismatches = [i for i, (got, want) in enumerate(zip(beats, expected)) if got != want]
    exact = not hung and not extra and len(beats) == len(expected) and not mismatches
    report = []
    if hung:
        report.append(f"hung: {len(beats)} of {len(expected)} beats, {len(done_times)} of {commands} commands "
                      f"done after {cycle} cycles, words sent {sent}")
    if extra:
        report.append(f"{extra} output beats beyond the expected {len(expected)}")
    for i in mismatches[:8]:
        report.append(f"beat {i}: got {beats[i]:#x}, want {expected[i]:#x}")
    results = {"exact": exact, "hung": hung, "report": "\n".join(report), "cfg": cfg_times, "done": done_times,
               "out": out_times, "beats": [hex(b) for b in beats], "cycles": cycle,
               "wall_seconds": time.perf_counter() - started}
    with open(job["results_path"], "w") as f:
        json.dump(results, f)
    assert exact, "\n".join(report)
