"""Drive `AcceleratorTop` in Amaranth's own simulator: fast, no HDL toolchain, for unit tests of the cycle
model and of the tiling. The cocotb testbench (`sim/tb_accelerator.py`) is the one that proves the Verilog.

Streams are fed from Python lists, one beat per cycle when not stalled; cycles are counted from the first
``cfg`` handshake to the last ``out`` handshake (the cycle model's definition).
"""

import random
from dataclasses import dataclass

from amaranth.sim import Simulator

from hwgen.hw.top import AcceleratorTop

__all__ = ["StreamRun", "run_streams"]


@dataclass
class StreamRun:
    out_beats: list
    cycles: int            # last out handshake - first cfg handshake
    cfg_cycles: list       # cycle index of each cfg handshake
    out_cycles: list


def run_streams(spec, *, cfg, weights, acts, expect_beats, params=(), stall=0.0, seed=0, max_cycles=2_000_000,
                dut=None):
    """Feed the three input streams, collect `expect_beats` output beats. `stall` is the per-cycle
    probability that a source idles or the sink refuses (each stream independently)."""
    dut = dut if dut is not None else AcceleratorTop(spec)
    rng = random.Random(seed)
    queues = {"cfg": list(cfg), "weights": list(weights), "acts": list(acts), "params": list(params)}
    sent = {name: 0 for name in queues}
    run = StreamRun(out_beats=[], cycles=0, cfg_cycles=[], out_cycles=[])

    async def testbench(ctx):
        ports = {name: getattr(dut, name) for name in queues}
        cycle = 0
        while len(run.out_beats) < expect_beats:
            offer = {}
            for name, port in ports.items():
                index = sent[name]
                offer[name] = index < len(queues[name]) and not (stall and rng.random() < stall)
                ctx.set(port.valid, offer[name])
                if index < len(queues[name]):
                    ctx.set(port.payload, queues[name][index])
            ready_out = not (stall and rng.random() < stall)
            ctx.set(dut.out.ready, ready_out)
            sampled = await ctx.tick().sample(*(p.ready for p in ports.values()), dut.out.valid, dut.out.payload)
            *readies, out_valid, out_payload = sampled[2:]   # tick() yields (clk, rst), then the samples
            for (name, port), ready in zip(ports.items(), readies):
                if offer[name] and ready:
                    sent[name] += 1
                    if name == "cfg":
                        run.cfg_cycles.append(cycle)
            if out_valid and ready_out:
                run.out_beats.append(out_payload)
                run.out_cycles.append(cycle)
            cycle += 1
            if cycle > max_cycles:
                raise RuntimeError(f"no progress: {len(run.out_beats)} of {expect_beats} beats after {cycle} cycles")
        run.cycles = run.out_cycles[-1] - run.cfg_cycles[0] if run.out_cycles else 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return run
