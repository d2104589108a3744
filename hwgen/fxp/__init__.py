"""The fixed-point engine: a training step (forward, input gradient through the transposed weights, weight
gradient and SGD update with round-to-nearest or stochastic rounding) and LSTM layers, in 16-bit fixed point.

`spec.FxpSpec` describes one engine (`hwgen.hw.fxp_engine.FxpEngine` builds it); `commands` are its instructions;
`machine.FxpMachine` is the bit-exact golden model; `perf.predict` the cycle model; `program.Program` ties a
command list to its stream words; `training` and `lstm_layer` build programs for an MLP's SGD steps and for LSTM
sequences; `design.FxpDesign` makes an engine and its workload a design for the command line (``hwgen generate /
plan / sim``).
"""

from .commands import (Command, backward, forward, load_vectors, load_weights, lstm, read_vectors, read_weights,
                       update)
from .machine import FxpMachine
from .perf import Timing, predict
from .program import Program, ProgramBuilder
from .spec import FxpSpec

__all__ = ["Command", "FxpMachine", "FxpSpec", "Program", "ProgramBuilder", "Timing", "backward", "forward",
           "load_vectors", "load_weights", "lstm", "predict", "read_vectors", "read_weights", "update"]
