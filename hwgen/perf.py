"""The cycle model: exact cycles of a layer (one command or a tiled sequence) from its schedule alone, with
every source valid from the first ``cfg`` handshake on and the sink always ready.

``cycles`` counts clock edges from the first ``cfg`` handshake to the handshake of the last output beat. The
recurrences below follow the two engines of `hw.top.AcceleratorTop` handshake by handshake; the cocotb
regression and the Amaranth-simulator tests assert equality on every no-stall run.
"""

from dataclasses import dataclass, asdict

from .hw.accumulator import Accumulator
from .hw.mv import MatrixVectorEngine
from .hw.os_array import output_latency
from .hw.postops import PostOpPipeline
from .hw.slot_queue import SlotQueue
from .hw.systolic import array_latency

__all__ = ["CycleEstimate", "predict", "predict_commands", "predict_plan", "single_command_cycles"]

# Loader: a command is taken (the cfg handshake) whenever the loader is idle, and checked from the next cycle
# on until its bank, its parameter bank and the hand-off slot are free; acted on (c) a cycle after that; then
# one activation beat per cycle, then one cycle to hand it on.
TAKE_TO_DECIDE = 1
DECIDE = 1                # the decision is registered and acted on a cycle later
LOAD_HANDOFF = 2          # a loading command is handed to the compute engine at c + act_words + 2
NO_LOAD_HANDOFF = 1       # a command that reuses its bank at c + 1
# Compute engine: takes the hand-off (IDLE), starts the sequencer (START), whose first cycle is the pre-slot
# that only starts fold 0's weight load; the first pixel slot follows.
TAKE_TO_FIRST_SLOT = 3
# Weight-stationary: the sequencer's slots reach the issue stage through the slot queue.
QUEUED_SLOT = SlotQueue.PUSH_TO_ISSUE
DONE_TO_IDLE = 2          # after a command's last slot the engine is idle again (and its bank released) 2 later
BUFFER_READ = 2           # activation buffer read latency, and the register its read data goes into
OUTPUT_FIFO = 2           # write into the buffered output FIFO -> into the post-op chain
POSTOPS = PostOpPipeline.LATENCY   # the post-op chain -> handshake on `out` (0 when built without it)


def postops_latency(spec):
    """Cycles from a beat entering the post-op chain to its handshake on `out`: none without the chain (the
    output FIFO drives `out` itself)."""
    return POSTOPS if spec.postops else 0


@dataclass(frozen=True)
class CycleEstimate:
    layer: str
    cycles: int
    commands: int
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


def predict_commands(schedules, *, name=None, macs=None):
    """Cycles of `schedules` (commands issued back to back) from the first cfg handshake to the last output."""
    schedules = list(schedules)
    if not schedules:
        raise ValueError("no commands")
    spec = schedules[0].spec
    to_chain = BUFFER_READ + array_latency(rows=spec.rows, cols=spec.cols) + Accumulator.LATENCY + OUTPUT_FIFO
    accept = -1               # cfg handshake of the previous command
    loader_free = 0           # first cycle the loader is idle again
    handoff_clear = 0         # first cycle the hand-off register is empty
    compute_idle = 0          # first cycle the compute engine is idle
    bank_free = [0, 0]        # first cycle each activation bank may be loaded
    param_free = [0, 0]       # first cycle each post-op parameter bank may be loaded
    last_out = None
    for index, s in enumerate(schedules):
        accept = max(accept + 1, loader_free)
        decide = DECIDE + max(accept + TAKE_TO_DECIDE, handoff_clear, bank_free[s.act_bank] if s.load_acts else 0,
                              param_free[s.param_bank] if s.param_words else 0)
        if s.load_acts or s.param_words:
            # Activations and parameters load side by side; the command is handed on once its parameters and
            # its first start_words activations are in, and the loader is free when all are.
            handoff = decide + max(s.start_words, s.param_words) + LOAD_HANDOFF
            loader_free = decide + max(s.act_words if s.load_acts else 0, s.param_words) + LOAD_HANDOFF
        else:
            handoff = decide + NO_LOAD_HANDOFF
            loader_free = decide + 1
        take = max(handoff, compute_idle)
        handoff_clear = take + 1
        if spec.dataflow == "matrix_vector":
            # No pre-slot: one weight word per cycle from the cycle after START; a sum reaches the output
            # FIFO LATENCY cycles after its last slot.
            first_slot = take + TAKE_TO_FIRST_SLOT - 1
            last_slot = first_slot + s.mv_slots - 1
            last_beat_in_chain = last_kept_in_chain = last_slot + MatrixVectorEngine.LATENCY + OUTPUT_FIFO
        elif spec.dataflow == "output_stationary":
            # No pre-slot; tile after tile, `fold_period` slots each, the reduction in the last K. Pixel p of
            # m-fold mf is row p % rows of tile p // rows: its beat enters the output FIFO 1 + latency + row
            # cycles after the tile's last slot.
            first_slot = take + TAKE_TO_FIRST_SLOT - 1
            last_slot = first_slot + s.os_slots - 1
            to_fifo = BUFFER_READ + output_latency(cols=spec.cols) + OUTPUT_FIFO

            def in_chain(pixel, mf=s.m_folds - 1):
                tile, row = divmod(pixel, spec.rows)
                return first_slot + (mf * s.pixel_tiles + tile + 1) * s.fold_period - 1 + row + to_fifo
            last_beat_in_chain = in_chain(s.pixels - 1)
            last_kept_in_chain = in_chain(s.last_emit_pixel)
        else:
            first_slot = take + TAKE_TO_FIRST_SLOT + QUEUED_SLOT
            last_slot = first_slot + s.folds * s.fold_period - 1          # bubbles of the last fold included
            last_fold = first_slot + (s.folds - 1) * s.fold_period
            last_beat_in_chain = last_fold + s.pixels - 1 + to_chain
            # With pooling, the last output comes from the last kept window's corner.
            last_kept_in_chain = last_fold + s.last_emit_pixel + to_chain
        compute_idle = last_slot + DONE_TO_IDLE
        if s.release:
            bank_free[s.act_bank] = last_slot + DONE_TO_IDLE
        if s.acc_emit:
            # The chain frees the parameter bank when the command's last beat enters it.
            if s.param_words:
                param_free[s.param_bank] = last_beat_in_chain + 1
            last_out = last_kept_in_chain + postops_latency(spec)
        if index == 0:   # not `s is schedules[0]`: a command may run twice
            first_accept = accept
    if last_out is None:
        raise ValueError("no command emits outputs")
    return CycleEstimate(layer=name or schedules[0].problem.name, cycles=last_out - first_accept,
                         commands=len(schedules), macs=macs if macs is not None else
                         sum(s.macs for s in schedules), pes=spec.pes)


def predict(schedule):
    """One command on an idle accelerator."""
    return predict_commands([schedule])


def predict_plan(plan):
    """A tiled layer (`hwgen.tiling.LayerPlan`): its commands back to back."""
    return predict_commands(plan.commands, name=plan.problem.name, macs=plan.macs)


def single_command_cycles(*, start_words, folds, fold_period, pixels, rows, cols, postops=True):
    """The closed form of `predict` for one command without pooling (documented in the README)."""
    return (start_words + TAKE_TO_DECIDE + DECIDE + LOAD_HANDOFF + TAKE_TO_FIRST_SLOT + QUEUED_SLOT + (folds - 1) * fold_period + pixels - 1
            + BUFFER_READ + array_latency(rows=rows, cols=cols) + Accumulator.LATENCY + OUTPUT_FIFO
            + (POSTOPS if postops else 0))
