"""Drive `AcceleratorTop` in Amaranth's own simulator: fast, no HDL toolchain, for unit tests of the cycle
model and of the tiling. The cocotb testbench (`hwgen.sim.tb_accelerator`) is the one that proves the Verilog.

Streams are fed from Python lists, one beat per cycle when not stalled; cycles are counted from the first
``cfg`` handshake to the last ``out`` handshake (the cycle model's definition). The tests drive the top through
this too (`tests.top_bench.run_top`).
"""

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from hwgen.hw.top import AcceleratorTop
from hwgen.perf import HOST_TURNAROUND

__all__ = ["StreamRun", "run_streams"]


@dataclass
class StreamRun:
    out_beats: list
    cycles: int            # last out handshake - first cfg handshake
    cfg_cycles: list       # cycle index of each cfg handshake
    out_cycles: list
    sent: dict = field(default_factory=dict)   # words taken from each input stream
    probe_counts: dict = field(default_factory=dict)

    @property
    def beats(self):
        return self.out_beats


STREAMS = ("cfg", "weights", "acts", "params", "mv_weights", "sparse")


def run_streams(spec, *, cfg, weights=(), acts=(), params=(), mv_weights=(), sparse=(), expect_beats, stall=0.0,
                sink_stall=None, seed=0, tail=40, max_cycles=2_000_000, dut=None, acts_gates=(), sparse_gates=(),
                probes=None):
    """Feed the input streams from lists, collect `expect_beats` output beats, then check what a run must leave
    behind: for ``tail`` cycles no further output beat, every input word consumed, the accelerator idle with
    ``cfg`` ready.

    ``stall``: per-cycle probability that a source withholds its next word; ``sink_stall`` (default ``stall``):
    probability that ``out`` is not ready. Each stream draws independently.

    ``probes``: a callable returning ``{name: value}`` of signals inside the design (called once the simulator
    has elaborated it); `StreamRun.probe_counts` holds, per name, the number of cycles each was non-zero.

    ``acts_gates``: ``(word, beats)`` pairs - a host that makes ``acts`` words from ``out`` beats: word ``word``
    and the later ones are offered only `hwgen.perf.HOST_TURNAROUND` cycles after the ``beats``-th output beat
    was taken (as the cocotb testbench's host does); ``sparse_gates`` the same for the ``sparse`` stream (a pruned
    layer's words, packed by the host from the previous layer's output)."""
    dut = dut if dut is not None else AcceleratorTop(spec)
    rng = random.Random(seed)
    sink_stall = stall if sink_stall is None else sink_stall
    queues = {"cfg": list(cfg), "weights": list(weights), "acts": list(acts), "params": list(params),
              "mv_weights": list(mv_weights), "sparse": list(sparse)}
    streams = [name for name in STREAMS if hasattr(dut, name)]     # mv_weights only with an MV engine beside
    if queues["mv_weights"] and "mv_weights" not in streams:
        raise ValueError(f"{spec.name} has no mv_weights port (build it with mv_engine=True)")
    sent = dict.fromkeys(STREAMS, 0)
    run = StreamRun(out_beats=[], cycles=0, cfg_cycles=[], out_cycles=[], sent=sent)

    async def testbench(ctx):
        ports = [getattr(dut, name) for name in streams]
        watched = probes() if probes else {}
        run.probe_counts = dict.fromkeys(watched, 0)
        watched_names, watched_values = list(watched), list(watched.values())
        cycle = 0
        while len(run.out_beats) < expect_beats:
            if cycle >= max_cycles:
                raise RuntimeError(f"no progress: {len(run.out_beats)} of {expect_beats} beats after {cycle} "
                                   f"cycles, sent {sent}")
            offered = []
            for name, port in zip(streams, ports):
                pending = sent[name] < len(queues[name])
                if name in ("acts", "sparse") and pending:
                    gates = acts_gates if name == "acts" else sparse_gates
                    pending = all(len(run.out_beats) >= beats and cycle >= run.out_cycles[beats - 1] + HOST_TURNAROUND
                                  for word, beats in gates if word <= sent[name] and beats)
                offered.append(pending and not (stall and rng.random() < stall))
                ctx.set(port.valid, offered[-1])
                ctx.set(port.payload, queues[name][sent[name]] if pending else 0)
            ready = not (sink_stall and rng.random() < sink_stall)
            ctx.set(dut.out.ready, ready)
            # tick() yields (clk, rst), then the samples
            sampled = await ctx.tick().sample(*(port.ready for port in ports), dut.out.valid, dut.out.payload,
                                              *watched_values)
            readies = sampled[2:2 + len(ports)]
            out_valid, out_payload = sampled[2 + len(ports)], sampled[3 + len(ports)]
            probed = sampled[4 + len(ports):]
            for name, value in zip(watched_names, probed):
                if value:
                    run.probe_counts[name] += 1
            for name, offer, port_ready in zip(streams, offered, readies):
                if offer and port_ready:
                    sent[name] += 1
                    if name == "cfg":
                        run.cfg_cycles.append(cycle)
            if ready and out_valid:
                run.out_beats.append(out_payload)
                run.out_cycles.append(cycle)
            cycle += 1
        # The last output may leave before the last input words are taken (pooling drops the last pixels,
        # whose weights still stream in): keep offering what is left, without stalls, while checking that no
        # further output comes.
        ctx.set(dut.out.ready, 1)
        for _ in range(tail):
            for name, port in zip(streams, ports):
                pending = sent[name] < len(queues[name])
                ctx.set(port.valid, pending)
                ctx.set(port.payload, queues[name][sent[name]] if pending else 0)
            sampled = await ctx.tick().sample(*(port.ready for port in ports), dut.out.valid, *watched_values)
            readies, out_valid = sampled[2:2 + len(ports)], sampled[2 + len(ports)]
            probed = sampled[3 + len(ports):]
            for name, value in zip(watched_names, probed):
                if value:
                    run.probe_counts[name] += 1
            assert not out_valid, f"an output beat beyond the expected {expect_beats}"
            for name, port_ready in zip(streams, readies):
                if port_ready and sent[name] < len(queues[name]):
                    sent[name] += 1
        for port in ports:
            ctx.set(port.valid, 0)
        if tail:
            assert not ctx.get(dut.busy), "the accelerator did not return to idle"
            assert ctx.get(dut.cfg.ready), "cfg is not ready after the last command"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for name in STREAMS:
        assert sent[name] == len(queues[name]), f"{name}: {sent[name]} of {len(queues[name])} words consumed"
    run.cycles = run.out_cycles[-1] - run.cfg_cycles[0] if run.out_cycles else 0
    return run
