"""The cycle model of a whole run on the system top (`hwgen.hw.system`): the stream-fed accelerator's exact model
(`hwgen.compiler.program.Program.predict`) with the memory wall added - what the DMA channels and the DRAM
cost on top of ideal streams.

A run's cycles (``CYCLES``: from the start register write to ``done``) are modelled as

``compute path``
    ``START + stream + boundaries * (ROUND_TRIP - HOST_TURNAROUND) + END``: the accelerator's own cycles with
    every stream always valid (``stream``), plus the start (program fetch, then the first descriptors' first
    words: two DRAM reads one after the other), plus, for every layer that reads its input from an earlier
    layer's output in DRAM, the round trip from that output's last beat to the first gathered word (write
    response, dispatch, read) instead of the stream model's host turnaround, plus the last write's response;
``bandwidth path``
    ``START + read_beats * interval + END``: the read data channel moves one beat every ``interval`` cycles
    (``beat_bytes / interval`` bytes per cycle) and every byte the program reads crosses it once;

and the estimate is ``max(compute path, bandwidth path) + OVERLAP * min(...)``, where ``OVERLAP`` is the
fraction of the smaller path that does not hide under the larger one (prefetch hides most of it; the
calibration is in `benchmarks/system.py`). ``lower`` = ``max(stream, read_beats * interval)`` is a hard lower
bound: the RTL never beats ideal streams, nor its read channel's bandwidth. Both are checked against the RTL
(`tests/test_system_model.py`): measured >= lower always, and the estimate within `TOLERANCE` of the
measured cycles for a DRAM of fixed bandwidth (cocotbext-axi `AxiRam`, one beat every ``interval`` cycles, no
random back-pressure). With random back-pressure only the lower bound holds.

The constants are cycles of this implementation on `AxiRam` (whose read latency is
`AXIRAM_READ_LATENCY` cycles from ``ar`` to the first ``r`` beat).
"""

from dataclasses import dataclass

from ..perf import HOST_TURNAROUND
from .image import DESC_BYTES
from .layout import split_bursts

__all__ = ["SystemEstimate", "predict_system", "transfer_beats_of", "TOLERANCE", "AXIRAM_READ_LATENCY"]

AXIRAM_READ_LATENCY = 3
START = 20            # start -> first cfg word at the accelerator (two dependent DRAM reads)
ROUND_TRIP = 24       # a DRAM boundary: last out beat -> write response -> dispatch -> first gathered word
END = 8               # last out beat -> its write response -> done
OVERLAP = 0.25
TOLERANCE = 0.2


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


def predict_system(program, image, *, beat_bytes=8, interval=1):
    """The cycles of `image` (`hwgen.system.image.build_image` of `program`) on the system top with a DRAM of
    ``beat_bytes / interval`` bytes per cycle (see the module docstring)."""
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be a positive integer (cycles per beat), not {interval!r}")
    stream = program.predict().cycles
    reads, writes = transfer_beats_of(image, beat_bytes)
    boundaries = program.batch * sum(1 for pl in program.layers if pl.source == "host")
    fenced = sum(1 for d in image.descriptors if d.channel == "cfg" and d.wait)
    compute_path = START + stream + boundaries * (ROUND_TRIP - HOST_TURNAROUND) + fenced * ROUND_TRIP + END
    bandwidth_path = START + max(reads, writes) * interval + END
    big, small = max(compute_path, bandwidth_path), min(compute_path, bandwidth_path)
    cycles = round(big + OVERLAP * small) if fenced else round(big + OVERLAP * max(0, small - START - END))
    return SystemEstimate(cycles=cycles, lower=max(stream, reads * interval), stream=stream,
                          compute_path=compute_path, bandwidth_path=bandwidth_path, read_beats=reads,
                          write_beats=writes, boundaries=boundaries)
