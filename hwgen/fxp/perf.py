"""The cycle model of the fixed-point engine: the cycle of every ``cfg`` handshake, ``out`` beat and ``done``
pulse of a program, exact against the RTL when every source is valid from cycle 0 (the host's words made from
``out`` beats arriving `HOST_TURNAROUND` cycles after the last of them) and ``out`` is always ready; with stalls
the RTL only gets slower. The tests assert equality on every no-stall run (`tests/test_fxp_engine.py`, and in
cocotb `tests/test_cocotb_fxp.py`).

The rules, from `hwgen.hw.fxp_engine` (cycle ``A``: a command's ``cfg`` handshake):

- ``A + 1``: the command starts; ``A + 2``: the first slot issues (grid commands) or the first word may load.
- A grid command issues a slot per cycle; an LSTM command waits after each step's last slot until the pipeline
  is empty, ``STEP_GAP`` cycles from that slot's issue to the next step's first. A slot's write, or its beat into
  the output FIFO, happens ``STAGES[kind]`` cycles after its issue; the beat is on ``out`` `OUT_LATENCY` later.
- A load takes one word per cycle from ``A + 2``, none before it is offered.
- ``done`` pulses as the last slot leaves the pipeline (``last issue + stage + 1``), or after the
  last word loaded; the next ``cfg`` handshake is the cycle after ``done``.
- Weights: word ``i`` of the ``weights`` stream (loads and LSTM tiles, in order) can be taken from the weight FIFO
  ``WEIGHT_LAG`` cycles after cycle ``i`` at the earliest; the FIFO then delivers a word per cycle, so only the
  first word a command takes can wait.
"""

from dataclasses import dataclass, field

import numpy as np

from ..hw.fifo import BlockRAMFIFO
from ..hw.fxp_engine import STAGES
from .commands import COMPUTE

__all__ = ["HOST_TURNAROUND", "OUT_LATENCY", "STEP_GAP", "WEIGHT_LAG", "Timing", "predict"]

START = 2                       # cfg handshake -> first slot / first load
OUT_LATENCY = 2                 # a beat written into the output FIFO -> its handshake on `out`
STEP_GAP = STAGES["lstm"] + 2   # an LSTM step's last slot -> the next step's first
DRAIN = 1                       # last stage -> done
WEIGHT_LAG = BlockRAMFIFO.WRITE_TO_READ
HOST_TURNAROUND = 3             # an `out` beat -> the first data word the host makes from it


@dataclass
class Timing:
    """Cycles (from the first cycle after reset) of every cfg handshake, done pulse and out beat; and the beats."""
    cfg: list
    done: list
    out: list
    beats: list = field(default_factory=list)
    commands: list = field(default_factory=list)   # per command: dict(kind, accept, first, last, done, beats)

    def cycles(self):
        """First cfg handshake to the last event (beat or done)."""
        return max(self.done[-1], self.out[-1] if self.out else 0) - self.cfg[0]


def _emitting_slots(spec, c):
    """Slot indices (in issue order, per step for LSTM) whose result is written / sent: (o, b) at the last r."""
    O, R, B = c.outer, c.reduce, c.batch
    o, b = np.divmod(np.arange(O * B), B)
    return (o * R + R - 1) * B + b          # slot index of (o, r = R - 1, b)


def predict(program):
    """The `Timing` of `program` (`hwgen.fxp.program.Program`) on the RTL: cycles of every event."""
    spec = program.spec
    cfg, done, out, per_command = [], [], [], []
    free = 0                 # first cycle the engine may take a cfg beat
    weights_taken = 0        # words of the weights stream taken so far
    data_taken = 0
    for c in program.commands:
        accept = free
        first = accept + START
        beats = []
        if c.kind in ("load_vectors", "load_weights"):
            t = first - 1
            for i in range(c.count):
                if c.kind == "load_vectors":
                    t = max(t + 1, program.data_offered(data_taken + i, out))
                else:
                    t = max(t + 1, weights_taken + i + WEIGHT_LAG)
            if c.kind == "load_vectors":
                data_taken += c.count
            else:
                weights_taken += c.count
            end = t + 1 if c.count else first
            last = t if c.count else None
        else:
            stage = STAGES[c.kind]
            if c.kind == "read_vectors" or c.kind == "read_weights":
                slots = c.count * (spec.size if c.kind == "read_weights" else 1)
                issue = first + np.arange(slots)
                beats = issue + stage + OUT_LATENCY
            else:
                per_step = c.outer * c.reduce * c.batch
                emit = _emitting_slots(spec, c)
                start = first
                if c.kind == "lstm":     # the first tile popped waits for the weight FIFO
                    start = max(start, weights_taken + WEIGHT_LAG)
                    weights_taken += c.steps * c.outer * c.reduce
                step_starts = start + np.arange(c.steps) * (per_step - 1 + STEP_GAP)
                issue = (step_starts[:, None] + np.arange(per_step)[None, :]).reshape(-1)
                slots = issue.size
                if c.kind in ("forward", "backward", "lstm") and c.emit:
                    beats = (step_starts[:, None] + emit[None, :]).reshape(-1) + stage + OUT_LATENCY
            end = int(issue[-1]) + stage + DRAIN if slots else first
            last = int(issue[-1]) if slots else None
        beats = [int(b) for b in beats]
        out += beats
        cfg.append(accept)
        done.append(end)
        per_command.append(dict(kind=c.kind, accept=accept, first=first, last=last, done=end,
                                beats=len(beats)))
        free = end + 1
    return Timing(cfg=cfg, done=done, out=out, commands=per_command)


def ideal_cycles(spec, command):
    """The grid's bound for one command: one tile per cycle (forward, backward, LSTM: the weight-read or
    weight-stream bound at batch 1; every command: ``size**2`` multiply-accumulates per cycle)."""
    if command.kind in COMPUTE:
        return command.steps * command.outer * command.reduce * command.batch
    if command.kind == "read_weights":
        return command.count * command.outer     # a beat per tile row
    return command.count
