"""The cycle model: exact cycles of one layer from its schedule alone, with sources always valid and the sink
always ready.

``cycles`` counts clock edges from the ``cfg`` handshake to the handshake of the last output beat. The phases
follow `hw.top.AcceleratorTop` stage by stage; the cocotb regression asserts equality on every no-stall run.
"""

from dataclasses import dataclass, asdict

from .hw.systolic import array_latency
from .schedule import LayerSchedule

__all__ = ["CycleEstimate", "predict"]

CFG_TO_LOAD = 1        # the cfg beat is latched; the LOAD phase starts next cycle
LOAD_TO_COMPUTE = 1    # the cycle that sees both buffers full and starts the sequencer
PRE_SLOT = 1           # the sequencer's first cycle only starts loading fold 0's weights
BUFFER_READ = 1        # activation buffer read latency
OUTPUT_FIFO = 2        # write into the buffered output FIFO -> handshake on `out`


@dataclass(frozen=True)
class CycleEstimate:
    layer: str
    cycles: int
    load: int          # buffer fill: max(weight words, activation words)
    issue: int         # from the first pixel slot to the last one, inclusive
    pipeline: int      # from the last pixel slot to its result on `out`
    overhead: int      # fixed phase transitions
    macs: int
    pes: int

    @property
    def ideal_cycles(self):
        return -(-self.macs // self.pes)

    @property
    def utilization(self):
        return self.macs / (self.pes * self.cycles)

    def to_dict(self):
        data = asdict(self)
        data.update(ideal_cycles=self.ideal_cycles, utilization=self.utilization)
        return data


def predict(schedule: LayerSchedule) -> CycleEstimate:
    spec = schedule.spec
    load = max(schedule.weight_words, schedule.act_words)
    # Every fold issues fold_period slots; the last fold's trailing bubbles are not waited for.
    issue = (schedule.folds - 1) * schedule.fold_period + schedule.pixels
    # The last pixel slot: buffer read, array, then the accumulator writes the FIFO; the FIFO hands it out.
    pipeline = BUFFER_READ + array_latency(rows=spec.rows, cols=spec.cols) + OUTPUT_FIFO
    overhead = CFG_TO_LOAD + LOAD_TO_COMPUTE + PRE_SLOT
    # The first pixel slot is one cycle after the pre-slot; `issue` counts it, so subtract the double count.
    cycles = overhead + load + issue - 1 + pipeline
    return CycleEstimate(layer=schedule.problem.name, cycles=cycles, load=load, issue=issue, pipeline=pipeline,
                         overhead=overhead, macs=schedule.macs, pes=spec.pes)
