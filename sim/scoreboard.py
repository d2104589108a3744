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


@dataclass
class Scoreboard:
    """`describe(beat, lane)` names the tensor element a lane carries, for readable failures."""
    expected: list
    lane_bits: int
    lanes: int
    describe: object = None
    mismatches: list = field(default_factory=list)
    received: int = 0

    def check(self, actual_beats):
        mask = (1 << self.lane_bits) - 1
        self.received = len(actual_beats)
        for beat, (want, got) in enumerate(zip(self.expected, actual_beats)):
            if want == got:
                continue
            for lane in range(self.lanes):
                w, g = (want >> (lane * self.lane_bits)) & mask, (int(got) >> (lane * self.lane_bits)) & mask
                if w != g:
                    where = self.describe(beat, lane) if self.describe else ""
                    self.mismatches.append(Mismatch(beat, lane, w, g, where))
        return self.exact

    @property
    def exact(self):
        return self.received == len(self.expected) and not self.mismatches

    def report(self, limit=5):
        lines = []
        if self.received != len(self.expected):
            lines.append(f"expected {len(self.expected)} output beats, received {self.received}")
        for mismatch in self.mismatches[:limit]:
            lines.append(f"beat {mismatch.beat} lane {mismatch.lane} ({mismatch.where}): expected "
                         f"{mismatch.expected:#x}, got {mismatch.actual:#x}")
        if len(self.mismatches) > limit:
            lines.append(f"... and {len(self.mismatches) - limit} more mismatching lanes")
        return "\n".join(lines)
