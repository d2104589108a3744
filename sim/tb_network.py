"""cocotb test: a whole network's program on one generated accelerator, against the NumPy reference network.

The job (`sim.job.NetworkJob`, JSON) holds the words of every input stream and the beats ``out`` must carry,
made by `hwgen.compiler.program.Program.streams` from the reference network. Roles as in `tb_accelerator`:
cocotbext-axi sources drive ``cfg``/``weights``/``mv_weights``/``acts``/``params`` (queued in full before the
first ``cfg`` beat, so no source idles: the model's condition), a sink collects ``out``, a monitor times the
``cfg`` handshakes, and a counter of the ``emitted`` pulse times every layer's last beat (a chained layer's
output never reaches ``out``). The scoreboard compares ``out`` beat by beat, in order.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_steps, get_sim_time, get_time_from_sim_steps
from cocotbext.axi import AxiStreamFrame

from hwgen.sim import streams
from hwgen.sim.job import NetworkJob
from hwgen.sim.scoreboard import Scoreboard

CLOCK_NS = 10
INPUTS = ("cfg", "weights", "mv_weights", "acts", "params", "sparse")


@cocotb.test()
async def run_network(dut):
    job = NetworkJob.loads(open(os.environ["HWGEN_SIM_JOB"]).read())
    words = {name: [int(word, 16) for word in job.words.get(name, [])] for name in INPUTS}
    expected = [int(beat, 16) for beat in job.expected]
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value = 1
    present = [name for name in INPUTS if hasattr(dut, f"{name}__valid")]
    for name in present:
        getattr(dut, f"{name}__valid").value = 0
    dut.out__ready.value = 0
    sources = {name: streams.source(dut, name) for name in present}
    out = streams.sink(dut, "out")
    cfg_monitor = streams.monitor(dut, "cfg")
    if job.stall:
        for n, name in enumerate(present):
            sources[name].set_pause_generator(streams.random_pauses(job.seed * 101 + n, job.stall))
        out.set_pause_generator(streams.random_pauses(job.seed * 101 + 99, job.stall))
    period = get_sim_steps(CLOCK_NS, "ns")
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    emitted = []       # simulation time (steps) of the clock edge ending each cycle a beat leaves the chain

    async def count_emitted():
        # Woken only when the pulse rises (no Python work in the cycles between beats); each beat is sampled at
        # the clock edge ending its cycle, before that edge updates anything, as the AXI models sample.
        while True:
            await RisingEdge(dut.emitted)
            while True:
                await RisingEdge(dut.clk)
                if not dut.emitted.value:
                    break
                emitted.append(get_sim_time("step"))

    started = time.perf_counter()
    beats, stamps, last_time = [], [], None
    # The host: every stream queued in full before the first cfg beat, except the activations it makes from
    # `out` beats (layers whose input did not stay on chip): each such segment once those beats are in.
    gated = {"acts": [tuple(gate) for gate in job.acts_gates],
             "sparse": [tuple(gate) for gate in job.sparse_gates]}
    for name in present:
        if name not in ("cfg", "acts", "sparse") and words[name]:
            await sources[name].send(AxiStreamFrame(words[name]))
    for name in ("acts", "sparse"):
        first = gated[name][0][0] if gated[name] else len(words[name])
        if name in present and first > 0:
            await sources[name].send(AxiStreamFrame(words[name][:first]))

    async def host(name):
        gates = gated[name]
        cuts = [word for word, _ in gates] + [len(words[name])]
        for (word, need), end in zip(gates, cuts[1:]):
            while len(beats) < need:
                await RisingEdge(dut.clk)
            if end > word:
                await sources[name].send(AxiStreamFrame(words[name][word:end]))

    counter = cocotb.start_soon(count_emitted())
    feeders = [cocotb.start_soon(host(name)) for name in ("acts", "sparse") if name in present]
    await sources["cfg"].send(AxiStreamFrame(words["cfg"]))
    first_cfg = await cfg_monitor.recv()

    async def collect():
        nonlocal last_time
        while len(beats) < len(expected):
            frame = await out.recv()
            beats.extend(frame.tdata)
            stamps.extend([frame.sim_time_end] * len(frame.tdata))
            last_time = frame.sim_time_end

    try:
        await with_timeout(collect(), (job.model_cycles * job.max_cycles_factor + 2000) * period, "step")
        hung = False
    except cocotb.triggers.SimTimeoutError:
        hung = True
    await ClockCycles(dut.clk, 8)
    while not out.empty():
        frame = out.recv_nowait()
        beats.extend(frame.tdata)
        stamps.extend([frame.sim_time_end] * len(frame.tdata))
    counter.cancel()
    for feeder in feeders:
        feeder.cancel()
    board = Scoreboard(expected=expected, lane_bits=job.lane_bits, lanes=job.lanes)
    origin = first_cfg.sim_time_start
    board.check(beats, times=[((t - origin) // period, get_time_from_sim_steps(t, "ns")) for t in stamps])
    measured = None if hung or last_time is None else (last_time - first_cfg.sim_time_start) // period
    # Cycles from the first cfg handshake, as the monitor stamps a handshake (the sink's frames likewise).
    layer_ends, at = [], 0
    for count in job.layer_beats:
        at += count
        layer_ends.append((emitted[at - 1] - first_cfg.sim_time_start) // period
                          if at <= len(emitted) and count else None)
    result = {"exact": board.exact and not hung, "hung": hung, "report": board.report(),
              "beats": len(beats), "expected_beats": len(expected), "measured_cycles": measured,
              "model_cycles": job.model_cycles, "layer_ends": layer_ends, "emitted": len(emitted),
              "first_wrong_cycle": board.first_wrong.cycle if board.first_wrong else None,
              "wall_seconds": time.perf_counter() - started}
    with open(job.results_path, "w") as f:
        json.dump(result, f, indent=1)
    assert result["exact"], f"the network's output differs from the NumPy reference\n{board.report()}"
    if not job.stall:
        assert measured == job.model_cycles, f"measured {measured} cycles, model {job.model_cycles}"
