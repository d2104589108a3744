"""Drive the fixed-point engine (`hwgen.hw.fxp_engine.FxpEngine`) in Amaranth's simulator from a
`hwgen.fxp.program.Program`: fast, no HDL toolchain (the cocotb testbench `hwgen.sim.tb_fxp` proves the Verilog).

Streams are fed one word per cycle when not stalled; a ``data_in`` word the host makes from ``out`` beats (a
loss gradient) is offered only `hwgen.fxp.perf.HOST_TURNAROUND` cycles after the last beat it needs. Every
handshake is timed (cycle 0 = the first cycle after reset).
"""

import random

from amaranth.sim import Simulator

from hwgen.fxp.perf import HOST_TURNAROUND, Timing
from hwgen.hw.fxp_engine import FxpEngine

__all__ = ["run_program"]

STREAMS = ("cfg", "data_in", "weights")


def run_program(program, *, stall=0.0, sink_stall=None, seed=0, max_cycles=1_000_000, tail=20):
    """Run `program` on the engine; returns a `Timing` of what happened (beats, and the cycle of every cfg
    handshake, ``done`` pulse and ``out`` beat). ``stall``: per-cycle probability that a source withholds its
    word, ``sink_stall`` (default ``stall``) that ``out`` is not ready."""
    spec = program.spec
    dut = FxpEngine(spec)
    rng = random.Random(seed)
    sink_stall = stall if sink_stall is None else sink_stall
    queues = {"cfg": program.cfg_words(), "data_in": list(program.data_words), "weights": list(program.weight_words)}
    sent = dict.fromkeys(STREAMS, 0)
    timing = Timing(cfg=[], done=[], out=[], beats=[])
    expect = program.out_beats

    def offered_now(name, cycle):
        if sent[name] >= len(queues[name]):
            return False
        if name == "data_in":
            need = program.data_gate(sent[name])
            if need:
                return len(timing.out) >= need and cycle >= timing.out[need - 1] + HOST_TURNAROUND
        return True

    async def testbench(ctx):
        ports = [getattr(dut, name) for name in STREAMS]
        cycle = 0
        while len(timing.beats) < expect or len(timing.done) < len(program.commands):
            if cycle >= max_cycles:
                raise RuntimeError(f"no progress after {cycle} cycles: {len(timing.beats)} of {expect} beats, "
                                   f"{len(timing.done)} of {len(program.commands)} commands done, sent {sent}")
            offered = []
            for name, port in zip(STREAMS, ports):
                offer = offered_now(name, cycle) and not (stall and rng.random() < stall)
                offered.append(offer)
                ctx.set(port.valid, offer)
                ctx.set(port.payload, queues[name][sent[name]] if offer else 0)
            ready = not (sink_stall and rng.random() < sink_stall)
            ctx.set(dut.out.ready, ready)
            _, _, *readies, out_valid, out_payload, done = await ctx.tick().sample(
                *(port.ready for port in ports), dut.out.valid, dut.out.payload, dut.done)
            for name, offer, port_ready in zip(STREAMS, offered, readies):
                if offer and port_ready:
                    sent[name] += 1
                    if name == "cfg":
                        timing.cfg.append(cycle)
            if ready and out_valid:
                timing.beats.append(out_payload)
                timing.out.append(cycle)
            if done:
                timing.done.append(cycle)
            cycle += 1
        ctx.set(dut.out.ready, 1)
        for port in ports:
            ctx.set(port.valid, 0)
        for _ in range(tail):
            _, _, out_valid = await ctx.tick().sample(dut.out.valid)
            assert not out_valid, f"an output beat beyond the expected {expect}"
        assert not ctx.get(dut.busy), "the engine did not return to idle"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for name in STREAMS:
        assert sent[name] == len(queues[name]), f"{name}: {sent[name]} of {len(queues[name])} words consumed"
    return timing
