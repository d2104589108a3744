"""cocotb test: run every layer of a `SimJob` on the generated accelerator and check it against NumPy.

Roles (as in cocotb's matrix_multiplier example): drivers are cocotbext-axi sources on ``cfg``/``weights``/
``acts``; the monitors are a sink on ``out`` and a monitor on ``cfg`` (for handshake times); the model is
`hwgen.reference` (through `hwgen.sim.job.make_layer_data`); the scoreboard compares beat by beat, in order.
"""

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_steps, get_sim_time, get_time_from_sim_steps
from cocotbext.axi import AxiStreamFrame

from hwgen.perf import predict_plan
from hwgen.sim import streams
from hwgen.sim.job import SimJob, make_layer_data
from hwgen.sim.scoreboard import Scoreboard

CLOCK_NS = 10


class AcceleratorTestbench:
    def __init__(self, dut, job):
        self.dut, self.job = dut, job
        # Defined levels before the models sample anything: they read valid/ready from the first edge on.
        dut.rst.value = 1
        for name in ("cfg", "weights", "acts", "params"):
            getattr(dut, f"{name}__valid").value = 0
        dut.out__ready.value = 0
        self.cfg = streams.source(dut, "cfg")
        self.weights = streams.source(dut, "weights")
        self.acts = streams.source(dut, "acts")
        self.params = streams.source(dut, "params")
        self.out = streams.sink(dut, "out")
        self.sparse = None
        if hasattr(dut, "sparse__valid"):        # the sparse engine's words (AcceleratorSpec.sparse_mv)
            dut.sparse__valid.value = 0
            self.sparse = streams.source(dut, "sparse")
        self.cfg_monitor = streams.monitor(dut, "cfg")
        self.period_steps = get_sim_steps(CLOCK_NS, "ns")
        if job.stall:
            for n, model in enumerate((self.cfg, self.weights, self.acts, self.params, self.out)):
                model.set_pause_generator(streams.random_pauses(job.seed * 101 + n, job.stall))
            if self.sparse is not None:
                self.sparse.set_pause_generator(streams.random_pauses(job.seed * 101 + 5, job.stall))

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def run_layer(self, index, plan):
        job = self.job
        data = make_layer_data(plan, seed=job.seed * 1000 + index)
        weight_words = list(data.weight_words)
        if job.flip_weight_bit and job.flip_weight_bit[0] == index:
            _, word, bit = job.flip_weight_bit
            weight_words[word] ^= 1 << bit
        model = predict_plan(plan)
        streams_words = {"weights": weight_words, "acts": list(data.act_words), "params": list(data.param_words),
                         "cfg": list(data.config_words), "sparse": list(data.sparse_words)}
        for name, count in (job.withhold_words or {}).items():   # fault injection: a source that stops early
            streams_words[name] = streams_words[name][:max(0, len(streams_words[name]) - count)]
        # Queue everything before the first cfg beat goes out, so no source is ever idle (the no-stall timing).
        for name in ("weights", "acts", "params", "sparse", "cfg"):
            if streams_words[name]:
                await getattr(self, name).send(AxiStreamFrame(streams_words[name]))
        # Every wait is bounded: a layer that takes far longer than the model (scaled for the stalls: each
        # stream moves a word with probability 1 - stall) is reported as a timeout, naming the cycle.
        budget_cycles = int(model.cycles * job.max_cycles_factor / (1 - job.stall) ** 2) + 1000
        budget = budget_cycles * self.period_steps
        started = get_sim_time("step")
        beats, stamps, last_time, cfg_beat, timeout = [], [], None, None, None

        async def collect():
            nonlocal last_time, cfg_beat
            cfg_beat = await self.cfg_monitor.recv()   # one frame per beat (no tlast): the first command
            while len(beats) < plan.out_beats:
                frame = await self.out.recv()
                beats.extend(frame.tdata)
                stamps.extend([frame.sim_time_end] * len(frame.tdata))
                last_time = frame.sim_time_end

        try:
            await with_timeout(collect(), budget, "step")
        except cocotb.triggers.SimTimeoutError:
            since = "the layer's streams were queued" if cfg_beat is None else "the first cfg handshake"
            start = started if cfg_beat is None else cfg_beat.sim_time_start
            stopped = (get_sim_time("step") - start) // self.period_steps
            last = ("no output beat came" if last_time is None else
                    f"the last came at cycle {(last_time - start) // self.period_steps}")
            timeout = (f"timeout: stopped at cycle {stopped} after {since} (budget {budget_cycles} cycles: "
                       f"{job.max_cycles_factor} x the model's {model.cycles} for stall {job.stall}); "
                       f"{'cfg was never accepted; ' if cfg_beat is None else ''}{len(beats)} of {plan.out_beats} "
                       f"output beats received, {last}")
        hung = timeout is not None
        # A hang or an extra beat both show up here: wait a little and look for surplus output.
        await ClockCycles(self.dut.clk, 8)
        while not self.out.empty():
            frame = self.out.recv_nowait()
            beats.extend(frame.tdata)
            stamps.extend([frame.sim_time_end] * len(frame.tdata))
        while not self.cfg_monitor.empty():
            self.cfg_monitor.recv_nowait()
        board = Scoreboard(expected=data.expected_beats, lane_bits=plan.spec.acc_type.bits,
                           lanes=plan.spec.cols, describe=plan.describe_output)
        origin = cfg_beat.sim_time_start if cfg_beat is not None else started
        board.check(beats, times=[((t - origin) // self.period_steps, get_time_from_sim_steps(t, "ns"))
                                  for t in stamps])
        measured = None if hung or last_time is None else (last_time - cfg_beat.sim_time_start) // self.period_steps
        return {
            "layer": plan.problem.name, "exact": board.exact and not hung, "hung": hung, "timeout": timeout,
            "commands": len(plan.tiles), "postops": str(plan.postops),
            "report": "\n".join(filter(None, (timeout, board.report()))), "beats": len(beats), "expected_beats": len(data.expected_beats),
            "measured_cycles": measured, "model_cycles": model.cycles, "macs": plan.macs,
            "first_wrong_cycle": board.first_wrong.cycle if board.first_wrong else None,
            "pes": plan.spec.pes, "stall": job.stall,
            "utilization": (plan.macs / (plan.spec.pes * measured)) if measured else None,
        }


@cocotb.test()
async def run_job(dut):
    job = SimJob.loads(open(os.environ["HWGEN_SIM_JOB"]).read())
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    tb = AcceleratorTestbench(dut, job)
    await tb.reset()
    results, started = [], time.perf_counter()
    for index, plan in enumerate(job.plans()):
        layer_start = time.perf_counter()
        result = await tb.run_layer(index, plan)
        result["wall_seconds"] = time.perf_counter() - layer_start
        results.append(result)
        dut._log.info("%s: %s, %s cycles (model %s)", result["layer"], "exact" if result["exact"] else "WRONG",
                      result["measured_cycles"], result["model_cycles"])
        if result["hung"]:
            break  # the DUT state is unknown; later layers would only add noise
    summary = {"layers": results, "wall_seconds": time.perf_counter() - started}
    with open(job.results_path, "w") as f:
        json.dump(summary, f, indent=1)
    for result in results:
        assert result["exact"], f"{result['layer']}: outputs differ from the NumPy reference\n{result['report']}"
        if not job.stall:
            assert result["measured_cycles"] == result["model_cycles"], (
                f"{result['layer']}: measured {result['measured_cycles']} cycles, model {result['model_cycles']}")
