"""A quick roofline estimate and a hard lower bound of a whole run on the system top (`hwgen.hw.system`): the
stream-fed accelerator's exact model (`hwgen.compiler.program.Program.predict`) with the memory wall added -
what the DMA channels and the DRAM cost on top of ideal streams. The *exact* model of a run on a DRAM of fixed
latency and fixed bandwidth is `hwgen.system.exact` (a cycle-by-cycle simulation of the memory side, slower);
this one is closed form, for sweeps and for DRAMs the exact one does not model (random back-pressure).

A run's cycles (``CYCLES``: from the start register write to ``done``) are modelled layer by layer, as a
roofline in time:

``START + program_beats * interval + sum over layers of max(compute_i, read_beats_i * interval)
+ boundaries * ROUND_TRIP + END``

- ``compute_i``: the layer's share of the stream-fed model's whole-program timeline (from the previous layer's
  last beat to its own), i.e. what it costs with every stream always valid;
- ``read_beats_i * interval``: the bus beats its descriptors read (commands, weights, parameters, input or
  gathered activations), one every ``interval`` cycles (``beat_bytes / interval`` bytes per cycle);
- layers do not overlap beyond that: the read channels' FIFOs and the accelerator's weight FIFO hold only a
  few hundred bytes, so the next layer's weights prefetch into them and then wait (measured: cross-layer
  prefetch gains at most a few percent on these networks, `benchmarks/system.py`);
- ``boundaries``: layers that read their input from an earlier layer's output in DRAM; each costs the round
  trip from that output's last beat to the first gathered word (write response, dispatch, read);
- ``START``: start to the first command at the accelerator (program fetch, then the first descriptors' first
  words: two dependent DRAM reads); ``END``: last beat to ``done``.

``lower`` = ``max(stream, read_beats * interval)`` is a hard lower bound: the RTL never beats ideal streams,
nor its read channel's bandwidth. Both are checked against the RTL (`tests/test_system.py`): measured >=
``lower`` always, and the estimate within `TOLERANCE` of the measured cycles for a DRAM of fixed bandwidth
(cocotbext-axi `AxiRam`, one beat every ``interval`` cycles, no random back-pressure). With random
back-pressure only the lower bound holds. This estimate is *not* cycle-exact: ``START`` and ``ROUND_TRIP`` are
calibrated on `AxiRam` (fit over three networks x four bandwidths x three modes and LeNet-5: worst error
15 %), not derived from the RTL's pipeline (`hwgen.system.exact` is).
"""

from dataclasses import dataclass

from .image import DESC_BYTES
from .layout import split_bursts

__all__ = ["SystemEstimate", "predict_system", "transfer_beats_of", "TOLERANCE", "START", "ROUND_TRIP"]

START = 36            # start -> first command at the accelerator (calibrated on AxiRam)
ROUND_TRIP = 56       # a layer fed from DRAM: the producer's last beat -> first gathered word (calibrated)
END = 0
TOLERANCE = 0.17


@dataclass(frozen=True)
class SystemEstimate:
    cycles: int           # the estimate
    lower: int            # a hard lower bound
    stream: int           # the accelerator alone on ideal streams
    compute_path: int
    bandwidth_path: int
    read_beats: int
    write_beats: int
    boundaries: int       # layer loads gathered from DRAM

    @property
    def bound(self):
        """Which path dominates: 'compute' or 'memory'."""
        return "memory" if self.bandwidth_path > self.compute_path else "compute"


def transfer_beats_of(image, beat_bytes):
    """``(read beats, write beats)`` the image's program moves on a bus of ``beat_bytes``-byte beats (the program
    itself included)."""
    reads = sum(b for _, b, _ in split_bursts(image.program_addr, image.count * DESC_BYTES, beat_bytes))
    writes = 0
    for d in image.descriptors:
        if d.channel == "end" or not d.bytes:
            continue
        beats = sum(b for _, b, _ in split_bursts(d.addr, d.bytes, beat_bytes))
        if d.channel == "out":
            writes += beats
        else:
            reads += beats
    return reads, writes


def _beats(addr, length, beat_bytes):
    return sum(b for _, b, _ in split_bursts(addr, length, beat_bytes)) if length else 0


def predict_system(program, image, *, beat_bytes=8, interval=1):
    """The cycles of `image` (`hwgen.system.image.build_image` of `program`) on the system top with a DRAM of
    ``beat_bytes / interval`` bytes per cycle (see the module docstring)."""
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        raise ValueError(f"interval must be a positive integer (cycles per beat), not {interval!r}")
    stream = program.predict().cycles
    # Per layer (in program order, every input of the batch): its reads, from its cfg descriptor to the next.
    layer_reads, writes = [], 0
    for d in image.descriptors:
        if d.channel == "cfg":
            layer_reads.append(0)
        if d.channel == "end" or not d.bytes:
            continue
        if d.channel == "out":
            writes += _beats(d.addr, d.bytes, beat_bytes)
        else:
            layer_reads[-1] += _beats(d.addr, d.bytes, beat_bytes)
    timeline = []
    program.predict(timeline=timeline)
    ends, at = [], 0
    for _ in range(program.batch):
        for pl in program.layers:
            events = timeline[at:at + len(pl.plan.commands)]
            at += len(pl.plan.commands)
            ends.append(max(e["last_beat"] for e in events if e["last_beat"] is not None))
    compute = [end - before for end, before in zip(ends, [0] + ends[:-1])]
    program_beats = _beats(image.program_addr, image.count * DESC_BYTES, beat_bytes)
    reads = program_beats + sum(layer_reads)
    boundaries = program.batch * sum(1 for pl in program.layers if pl.source == "host")
    layers = sum(max(c, r * interval) for c, r in zip(compute, layer_reads))
    cycles = START + program_beats * interval + layers + boundaries * ROUND_TRIP + END
    compute_path = START + stream + boundaries * ROUND_TRIP + END
    bandwidth_path = START + reads * interval + END
    return SystemEstimate(cycles=cycles, lower=max(stream, reads * interval), stream=stream,
                          compute_path=compute_path, bandwidth_path=bandwidth_path, read_beats=reads,
                          write_beats=writes, boundaries=boundaries)
