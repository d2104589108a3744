"""A program for the fixed-point engine: its commands and every word its streams carry, with the output the
golden model (`hwgen.fxp.machine`) says it produces. One object for the hardware runs (Amaranth's simulator,
`hwgen.sim.fxp_pysim`; cocotb, `hwgen.sim.tb_fxp`) and the cycle model (`hwgen.fxp.perf.predict`)."""

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .commands import pack_command
from .machine import FxpMachine, pack_tile, pack_vector
from .perf import HOST_TURNAROUND
from .spec import FxpSpec

__all__ = ["Program", "ProgramBuilder"]


@dataclass
class Program:
    spec: FxpSpec
    commands: list
    data: list                   # vector words for data_in, as arrays of `size` values
    weights: list                # tiles for the weights stream, as (size, size) arrays
    expected: list               # output beats, as arrays of `size` values
    data_gates: list = field(default_factory=list)   # (first data word, out beats it waits for), ascending

    def __post_init__(self):
        for c in self.commands:
            c.check(self.spec)

    @property
    def out_beats(self):
        return len(self.expected)

    def cfg_words(self):
        return [pack_command(self.spec, c) for c in self.commands]

    @property
    def data_words(self):
        return [pack_vector(v) for v in self.data]

    @property
    def weight_words(self):
        return [pack_tile(t) for t in self.weights]

    @property
    def expected_words(self):
        return [pack_vector(v) for v in self.expected]

    def data_gate(self, index):
        """How many out beats the host needs before it can send data word `index` (0: none)."""
        need = 0
        for first, beats in self.data_gates:
            if first <= index:
                need = max(need, beats)
        return need

    def data_offered(self, index, out_times):
        """The first cycle data word `index` is offered, given the cycles of the out beats so far."""
        need = self.data_gate(index)
        if not need:
            return 0
        if need > len(out_times):
            raise DataError(f"data word {index} waits for {need} out beats; only {len(out_times)} come before")
        return out_times[need - 1] + HOST_TURNAROUND


class ProgramBuilder:
    """Build a program while running it on the golden model: each command executes as it is added, so the
    host can compute later words (a loss gradient) from the beats so far (`beats`)."""

    def __init__(self, spec, machine=None):
        self.spec = spec
        self.machine = machine or FxpMachine(spec)
        self.commands, self.data, self.weights, self.beats, self.gates = [], [], [], [], []

    def run(self, command, *, data=(), weights=(), after_beats=0):
        """Add `command` with the words it takes; ``after_beats``: the host makes its data from the first that many
        output beats (it sends them only after it has those)."""
        data = [np.asarray(v, dtype=np.int64) for v in data]
        weights = [np.asarray(t, dtype=np.int64) for t in weights]
        if after_beats and data:
            self.gates.append((len(self.data), after_beats))
        out = self.machine.execute(command, data=data, weights=weights)
        self.commands.append(command)
        self.data += data
        self.weights += weights
        self.beats += out
        return out

    def program(self):
        return Program(self.spec, list(self.commands), list(self.data), list(self.weights), list(self.beats),
                       list(self.gates))
