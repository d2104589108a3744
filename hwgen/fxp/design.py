"""Fixed-point engine designs: the generator option for training steps and LSTM layers.

A `FxpDesign` is one `FxpSpec` and the workload it runs - `MlpTraining` (SGD steps of an MLP: forward, ``W^T g``
from the stored tiles, outer-product updates with nearest or stochastic rounding) or `LstmSequence` (``steps``
LSTM steps over a batch, the weights streamed every step). A design file defines ``design = FxpDesign(...)``
like any other design (``designs/fxp_train.py``, ``designs/fxp_lstm.py``), and the command line takes it:

- ``hwgen generate`` writes the engine's Verilog and a manifest (spec, ports, the command word's fields, the
  workload and its commands with the cycle model's prediction);
- ``hwgen plan`` prints the workload's commands, each with its grid slots, the modelled cycles and the bound;
- ``hwgen sim`` runs the workload's program on the Verilog through cocotb (`hwgen.sim.fxp_runner`): every output
  word equal to the golden model's (`hwgen.fxp.machine`; the MLP's weights are read back after every step) and,
  without stalls, every handshake at the modelled cycle.

The workloads' data are synthetic and seeded (inputs in range, random labels; random LSTM weights), so the
command line needs no data set: the benchmarks (``benchmarks/training.py``, ``benchmarks/lstm.py``) run the
same programs on scikit-learn's digits and against PyTorch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DesignError, DesignTypeError
from .commands import command_layout
from .perf import ideal_cycles, predict
from .program import Program, ProgramBuilder
from .spec import LR_FRAC, FxpSpec

__all__ = ["FxpDesign", "MlpTraining", "LstmSequence", "LAYOUTS", "generate_fxp", "fxp_ports"]


def _check_int(owner, name, value, least=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise DesignError(f"{owner}: {name} must be an integer >= {least}, not {value!r}")


@dataclass(frozen=True)
class MlpTraining:
    """``steps`` SGD steps of the MLP ``sizes[0] -> ... -> sizes[-1]`` (the engine adds the constant-1 input that
    carries the first layer's bias) on mini-batches of ``batch``, learning rate ``lr`` (a multiple of 2**-16),
    rounding ``"nearest"`` or ``"stochastic"``. The weights are read back after every step."""
    sizes: tuple = (64, 16, 10)
    batch: int = 4
    steps: int = 2
    lr: float = 0.05
    rounding: str = "stochastic"
    logit_scale: float = 4.0
    input_scale: float = 0.25
    seed: int = 3

    def check(self, spec):
        owner = "MlpTraining"
        if not spec.training:
            raise DesignError(f"{owner} needs an engine built with training=True")
        if not isinstance(self.sizes, (tuple, list)) or len(self.sizes) < 2:
            raise DesignError(f"{owner}: sizes must list at least two layer widths, e.g. (64, 16, 10), not "
                              f"{self.sizes!r}")
        for size in self.sizes:
            _check_int(owner, "every size", size)
        for name in ("batch", "steps"):
            _check_int(owner, name, getattr(self, name))
        if self.batch > spec.max_batch:
            raise DesignError(f"{owner}: batch={self.batch} exceeds the engine's max_batch={spec.max_batch}")
        if self.rounding not in ("nearest", "stochastic"):
            raise DesignError(f"{owner}: rounding must be 'nearest' or 'stochastic', not {self.rounding!r}")
        if self.rounding == "stochastic" and not spec.stochastic:
            raise DesignError(f"{owner}: stochastic rounding needs an engine built with stochastic=True")
        if not isinstance(self.lr, (int, float)) or not 0 < self.lr * (1 << LR_FRAC) < (1 << LR_FRAC):
            raise DesignError(f"{owner}: lr must be in (0, 1) (the engine's learning rate is a multiple of "
                              f"2**-{LR_FRAC}), not {self.lr!r}")

    def build(self, spec):
        from .training import FixedPointMLP, init_weights
        sizes = (self.sizes[0] + 1, *self.sizes[1:])
        mlp = FixedPointMLP(spec, sizes, self.batch, self.logit_scale)
        rng = np.random.default_rng(self.seed)
        builder = ProgramBuilder(spec)
        mlp.load(builder, init_weights(sizes, self.seed))
        lr_mult = max(1, int(round(self.lr * (1 << LR_FRAC))))
        for _ in range(self.steps):
            x = rng.uniform(0, 1, (self.batch, self.sizes[0])) * self.input_scale
            labels = rng.integers(0, self.sizes[-1], self.batch)
            mlp.step(builder, x, labels, lr_mult=lr_mult, rounding=self.rounding, read_back=True)
        return builder.program()

    def describe(self):
        widths = " -> ".join(str(s) for s in self.sizes)
        return (f"{self.steps} SGD steps of the MLP {widths}, batch {self.batch}, lr {self.lr:g}, "
                f"{self.rounding} rounding")


@dataclass(frozen=True)
class LstmSequence:
    """``steps`` LSTM steps of ``hidden`` units over inputs of ``input_size``, for a batch of ``batch``; random
    weights in PyTorch's default range (``+-1/sqrt(hidden)``), inputs in [-1, 1]. The hidden states of every
    step are read back."""
    input_size: int = 8
    hidden: int = 8
    batch: int = 1
    steps: int = 4
    seed: int = 0

    def check(self, spec):
        owner = "LstmSequence"
        if not spec.lstm:
            raise DesignError(f"{owner} needs an engine built with lstm=True")
        for name in ("input_size", "hidden", "batch", "steps"):
            _check_int(owner, name, getattr(self, name))

    def shape(self):
        from .lstm_layer import LstmShape
        return LstmShape(self.input_size, self.hidden, self.batch, self.steps)

    def build(self, spec):
        from .lstm_layer import lstm_program
        rng = np.random.default_rng(self.seed)
        k = 1 / np.sqrt(self.hidden)
        H, X = self.hidden, self.input_size
        w_ih, w_hh, bias = (rng.uniform(-k, k, s) for s in ((4 * H, X), (4 * H, H), (4 * H,)))
        x = rng.uniform(-1, 1, (self.steps, self.batch, X))
        builder, _ = lstm_program(spec, self.shape(), x, w_ih, w_hh, bias, read_back=True)
        return builder.program()

    def describe(self):
        return (f"LSTM, {self.steps} steps of {self.hidden} hidden units over inputs of {self.input_size}, "
                f"batch {self.batch}")


@dataclass(frozen=True)
class FxpDesign:
    """A fixed-point engine and the workload it runs (checked, and its program built, when the design is made)."""
    name: str
    spec: FxpSpec
    workload: MlpTraining | LstmSequence

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise DesignError(f"design name {self.name!r} must be a valid identifier")
        if not isinstance(self.spec, FxpSpec):
            raise DesignTypeError(f"design {self.name!r}: spec must be a hwgen.fxp.FxpSpec, not {self.spec!r}")
        if not isinstance(self.workload, (MlpTraining, LstmSequence)):
            raise DesignTypeError(f"design {self.name!r}: workload must be an MlpTraining or an LstmSequence, not "
                                  f"{self.workload!r}")
        self.workload.check(self.spec)
        object.__setattr__(self, "_program", self.workload.build(self.spec))

    def program(self) -> Program:
        return self._program

    def rows(self):
        """Per command: kind, grid slots (tiles issued), MACs, modelled cycles (cfg handshake to done), the
        bound of one tile per cycle."""
        program = self._program
        timing = predict(program)
        n = self.spec.size
        rows = []
        for command, event in zip(program.commands, timing.commands):
            slots = command.slots if command.kind in ("forward", "backward", "update", "lstm") else 0
            rows.append({"kind": command.kind, "slots": slots, "macs": slots * n * n,
                         "cycles": event["done"] - event["accept"] + 1, "bound": ideal_cycles(self.spec, command),
                         "out_beats": event["beats"]})
        return rows, timing

    def manifest(self):
        rows, timing = self.rows()
        return {"design": self.name, "engine": "fxp", "spec": self.spec.to_dict(), "ports": fxp_ports(self.spec),
                "command_fields": {name: {"offset": f.offset, "width": f.width}
                                   for name, f in command_layout(self.spec)},
                "workload": {"type": type(self.workload).__name__, "description": self.workload.describe(),
                             **asdict(self.workload)},
                "layouts": LAYOUTS, "commands": rows, "model_cycles": timing.cycles()}


# How each grid command reads its operands (n = size; `hwgen.fxp.commands` has the whole table).
LAYOUTS = {
    "forward": "tile (o, r) at w_base + o*R + r, input word r of sample b at a_base + b*R + r; row sums: y = W x",
    "backward": "the forward layer's tiles in their forward layout: tile (r, o) at w_base + r*O + o (O: blocks of "
                "the layer's input, R: of its output); column sums of the same tile: g_in = W^T g, so W is never "
                "transposed (by the host or in memory); mask a > 0 from b_base + b*O + o",
    "update": "tile (o, r) at w_base + o*R + r, gradient g of the output at a_base + b*O + o, activation a of the "
              "input at b_base + b*R + r; per element sum_b g[l] a[i], then W -= lr * that, written in place",
    "lstm": "u = [x_t, h_(t-1)] of R = xb + hb words at a_base + (t*B + b)*R; gate word o holds i, f, g, o of n/4 "
            "hidden units; tiles stream in order t, o, r; h_t written into step t+1's u",
}


def fxp_ports(spec):
    cfg = command_layout(spec).size
    ports = {"clk": ("input", 1, "clock, rising edge"), "rst": ("input", 1, "synchronous reset, active high"),
             "busy": ("output", 1, "a command is running"), "done": ("output", 1, "pulse: a command finished")}
    for name, direction, width, meaning in (
            ("cfg", "input", cfg, "one command (fields: manifest 'command_fields')"),
            ("data_in", "input", spec.vector_bits, f"{spec.size} x 16-bit vector words, lane 0 in LSBs"),
            ("weights", "input", spec.tile_bits, f"{spec.size}x{spec.size} tiles of 16-bit weights, element "
                                                 f"(l, i) at lane l*{spec.size}+i"),
            ("out", "output", spec.vector_bits, f"{spec.size} x 16-bit vector words, lane 0 in LSBs")):
        back = "output" if direction == "input" else "input"
        ports[f"{name}__payload"] = (direction, width, meaning)
        ports[f"{name}__valid"] = (direction, 1, f"{name} stream valid")
        ports[f"{name}__ready"] = (back, 1, f"{name} stream ready")
    return {name: {"direction": d, "width": w, "meaning": m} for name, (d, w, m) in ports.items()}


def generate_fxp(spec):
    """The engine's Verilog (top module ``spec.name``)."""
    from amaranth.back import verilog as amaranth_verilog

    from ..hw.fxp_engine import FxpEngine
    return amaranth_verilog.convert(FxpEngine(spec), name=spec.name, emit_src=False)
