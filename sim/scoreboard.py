"""In-order scoreboard: expected output beats (from the NumPy reference) against the beats the monitor saw."""

from dataclasses import dataclass, field

__all__ = ["Scoreboard", "Mismatch"]


@dataclass
class Mismatch:
    beat: int
    lane: int
    expected: int
    actual: int
    where: str
    cycle: int = None         # the beat's handshake, in cycles from the first cfg handshake
    time_ns: float = None     # the same as simulation time: where to look in the waveform


@dataclass
class Scoreboard:
    """`describe(beat, lane)` names the tensor element a lane carries, for readable failures."""
    expected: list
    lane_bits: int
    lanes: int
    describe: object = None
    mismatches: list = field(default_factory=list)
    received: int = 0

    def check(self, actual_beats, times=None):
        """Compare in order. ``times``: per received beat, ``(cycle, time_ns)`` of its handshake, so a failure
        names the cycle of the first wrong beat (and the simulation time to jump to in a waveform)."""
        mask = (1 << self.lane_bits) - 1
        self.received = len(actual_beats)
        for beat, (want, got) in enumerate(zip(self.expected, actual_beats)):
            if want == got:
                continue
            cycle, time_ns = times[beat] if times and beat < len(times) else (None, None)
            for lane in range(self.lanes):
                w, g = (want >> (lane * self.lane_bits)) & mask, (int(got) >> (lane * self.lane_bits)) & mask
                if w != g:
                    where = self.describe(beat, lane) if self.describe else ""
                    self.mismatches.append(Mismatch(beat, lane, w, g, where, cycle, time_ns))
        return self.exact

    @property
    def first_wrong(self):
        return self.mismatches[0] if self.mismatches else None

    @property
    def exact(self):
        return self.received == len(self.expected) and not self.mismatches

    def report(self, limit=5):
        lines = []
        first = self.first_wrong
        if first is not None and first.cycle is not None:
            lines.append(f"first wrong beat: {first.beat}, at cycle {first.cycle} after the first cfg handshake "
                         f"(simulation time {first.time_ns:g} ns in the waveform)")
        if self.received != len(self.expected):
            lines.append(f"expected {len(self.expected)} output beats, received {self.received}")
        for mismatch in self.mismatches[:limit]:
            lines.append(f"beat {mismatch.beat} lane {mismatch.lane} ({mismatch.where}): expected "
                         f"{mismatch.expected:#x}, got {mismatch.actual:#x}")
        if len(self.mismatches) > limit:
            lines.append(f"... and {len(self.mismatches) - limit} more mismatching lanes")
        return "\n".join(lines)
