"""The fixed-point engine's commands: one ``cfg`` beat each, run strictly in order.

| kind | what it does |
| --- | --- |
| ``load_vectors`` | ``count`` words from ``data_in`` into the vector memory at ``a_base`` |
| ``load_weights`` | ``count`` tiles from ``weights`` into the weight memory at ``w_base`` |
| ``read_vectors`` | ``count`` vector-memory words from ``a_base`` to ``out`` |
| ``read_weights`` | ``count`` tiles from ``w_base`` to ``out``, one beat per tile row |
| ``forward`` | ``y[b] = W x[b]`` for a batch: row sums of the stored tiles (+ bias, ReLU) |
| ``backward`` | ``g_in[b] = (W^T g[b]) * (a[b] > 0)``: column sums of the same stored tiles |
| ``update`` | ``W -= lr * sum_b g[b] a[b]^T``: outer products over the batch, then the SGD step per tile |
| ``lstm`` | ``steps`` LSTM steps over a batch: gates from the ``weights`` stream, the cell, ``h`` written back |

Layouts (``n`` = ``spec.size``; a vector of ``K`` values is ``ceil(K / n)`` words, zero-padded; a matrix of
``M x K`` is ``O x R`` tiles, ``O = ceil(M / n)``, ``R = ceil(K / n)``, tile ``(o, r)`` at ``w_base + o*R + r``,
tile row ``l`` = output ``o*n + l``, column ``i`` = input ``r*n + i``):

- forward: tile ``(o, r)`` at ``w_base + o*R + r``, input word ``r`` of sample ``b`` at ``a_base + b*R + r``,
  bias word ``o`` at ``b_base + o``, output word ``o`` of sample ``b`` at ``y_base + b*O + o``.
- backward, for the layer ``y = W x`` whose tiles are read in the other order: ``O`` counts the blocks of ``x``
  and ``R`` those of ``y``; tile ``(r, o)`` at ``w_base + r*O + o`` (the forward layout of the same matrix),
  gradient word ``r`` of sample ``b`` at ``a_base + b*R + r``, the forward input ``x`` (its ReLU mask) at
  ``b_base + b*O + o``, output at ``y_base + b*O + o``.
- update: tile ``(o, r)`` at ``w_base + o*R + r``, gradient ``g`` (of ``y``, ``O`` words) at ``a_base + b*O + o``,
  activation ``a`` (of ``x``, ``R`` words) at ``b_base + b*R + r``.
- lstm: the input of step ``t`` for sample ``b`` is the vector ``u = [x_t, h_(t-1)]`` of ``R = xb + hb`` words at
  ``a_base + (t*B + b)*R``; the engine writes ``h_t`` into the ``h`` part of ``u`` of step ``t + 1``, so the whole
  sequence of hidden states stays in the vector memory (the host loads the ``x`` parts, and ``h_(-1)`` unless
  ``zero_state``). ``O = 4*hb`` gate words: word ``o`` holds the four gates (i, f, g, o; ``n/4`` lanes each) of
  hidden units ``o*n/4 ...``. Gate biases at ``b_base + o``. The weights stream in order ``t, o, r`` (every step
  streams them all again, as a batch-1 RNN kernel reads them from DRAM every step).

Rounding: ``stochastic`` picks stochastic rounding for the outputs of forward/backward and for the update
(`hwgen.fixed`); LSTM commands round to nearest.
"""

from dataclasses import dataclass, fields, replace

from amaranth.hdl import unsigned
from amaranth.lib import data

from ..errors import DesignTypeError, MappingError
from .spec import LR_FRAC, FxpSpec

__all__ = ["KINDS", "Command", "command_layout", "pack_command", "unpack_command", "load_vectors",
           "load_weights", "read_vectors", "read_weights", "forward", "backward", "update", "lstm"]

KINDS = ("load_vectors", "load_weights", "read_vectors", "read_weights", "forward", "backward", "update", "lstm")
COMPUTE = ("forward", "backward", "update", "lstm")
COUNT_FIELDS = ("count", "outer", "reduce", "batch", "steps", "x_blocks", "step_words",
                "w_base", "a_base", "b_base", "y_base")
FLAG_FIELDS = ("relu", "mask", "bias", "emit", "store", "stochastic", "zero_state")


@dataclass(frozen=True)
class Command:
    kind: str
    count: int = 0          # words or tiles (loads and reads)
    outer: int = 1          # O: output words per sample (or gate words)
    reduce: int = 1         # R: input words per sample (the reduction, in tiles)
    batch: int = 1          # B
    steps: int = 1          # T (lstm)
    x_blocks: int = 0       # xb (lstm): words of x in each input vector
    step_words: int = 0     # B * R (lstm): vector words per step
    w_base: int = 0
    a_base: int = 0
    b_base: int = 0
    y_base: int = 0
    relu: bool = False
    mask: bool = False
    bias: bool = False
    emit: bool = False
    store: bool = False
    stochastic: bool = False
    zero_state: bool = False
    lr_mult: int = 0        # update: the learning rate is lr_mult / 2**16

    def __post_init__(self):
        if self.kind not in KINDS:
            raise MappingError(f"command kind must be one of {KINDS}, not {self.kind!r}")

    # What a command moves --------------------------------------------------------------------------------

    @property
    def slots(self):
        """Issue slots (one tile or word per slot) of a command that runs on the grid: T * O * R * B."""
        if self.kind == "read_vectors":
            return self.count
        if self.kind in ("read_weights",):
            return self.count * self.outer   # count tiles x rows (outer is set to spec.size by check)
        if self.kind in COMPUTE:
            return self.steps * self.outer * self.reduce * self.batch
        return 0

    @property
    def hidden_blocks(self):
        return self.reduce - self.x_blocks

    def out_beats(self, spec):
        """Beats the command sends to ``out``."""
        if self.kind == "read_vectors":
            return self.count
        if self.kind == "read_weights":
            return self.count * spec.size
        if self.kind in ("forward", "backward", "lstm") and self.emit:
            return self.steps * self.outer * self.batch
        return 0

    def input_words(self):
        """Words taken from ``data_in`` (load_vectors) or ``weights`` (load_weights, lstm)."""
        if self.kind == "load_vectors":
            return {"data_in": self.count}
        if self.kind == "load_weights":
            return {"weights": self.count}
        if self.kind == "lstm":
            return {"weights": self.steps * self.outer * self.reduce}
        return {}

    def check(self, spec):
        """Raise `MappingError` naming the field at fault when the command does not fit `spec`."""
        if not isinstance(spec, FxpSpec):
            raise DesignTypeError(f"check needs an FxpSpec, not {spec!r}")
        limit = (1 << spec.field_bits) - 1
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0 or value > limit:
                raise MappingError(f"{self.kind}: {name}={value!r} must be an integer in 0..{limit} (the command "
                                   f"word's {spec.field_bits}-bit field)")
        if not isinstance(self.lr_mult, int) or not 0 <= self.lr_mult < 1 << LR_FRAC:
            raise MappingError(f"{self.kind}: lr_mult={self.lr_mult!r} must be in 0..{(1 << LR_FRAC) - 1} (the "
                               f"learning rate is lr_mult / 2**{LR_FRAC})")
        if self.stochastic and not spec.stochastic:
            raise MappingError(f"{self.kind}: stochastic rounding needs an engine built with stochastic=True")
        if self.kind in ("backward", "update") and not spec.training:
            raise MappingError(f"{self.kind}: needs an engine built with training=True")
        if self.kind == "lstm":
            if not spec.lstm:
                raise MappingError("lstm: needs an engine built with lstm=True")
            if self.stochastic:
                raise MappingError("lstm: the LSTM cell rounds to nearest; clear stochastic")
            hb = self.hidden_blocks
            if not (1 <= self.x_blocks and hb >= 1 and self.outer == 4 * hb):
                raise MappingError(f"lstm: outer={self.outer} gate words must be 4 x the hidden words "
                                   f"(reduce - x_blocks = {self.reduce} - {self.x_blocks} = {hb})")
            if self.step_words != self.batch * self.reduce:
                raise MappingError(f"lstm: step_words={self.step_words} must be batch * reduce = "
                                   f"{self.batch * self.reduce}")
            if self.batch * self.outer > spec.cell_words:
                raise MappingError(f"lstm: the cell state of batch {self.batch} x {self.outer} gate words needs "
                                   f"cell_words >= {self.batch * self.outer}, not {spec.cell_words}")
            if self.steps > spec.max_steps:
                raise MappingError(f"lstm: steps={self.steps} exceeds max_steps={spec.max_steps}")
        if self.kind in COMPUTE:
            if min(self.outer, self.reduce, self.batch, self.steps) < 1:
                raise MappingError(f"{self.kind}: outer, reduce, batch and steps must be at least 1")
            if self.batch > spec.max_batch:
                raise MappingError(f"{self.kind}: batch={self.batch} exceeds max_batch={spec.max_batch}")
            if self.kind != "lstm" and self.steps != 1:
                raise MappingError(f"{self.kind}: steps is for lstm commands only")
            if self.reduce > spec.max_reduction_blocks:
                raise MappingError(f"{self.kind}: a reduction over {self.reduce} tiles can overflow the "
                                   f"{spec.acc_bits}-bit accumulator (at most {spec.max_reduction_blocks})")
        if self.kind == "read_weights" and self.outer != spec.size:
            raise MappingError(f"read_weights: outer must be {spec.size} (one beat per tile row); use "
                               f"read_weights(spec, ...)")
        self._check_ranges(spec)
        return self

    def _check_ranges(self, spec):
        """Every address the command touches is inside its memory."""
        O, R, B, T = self.outer, self.reduce, self.batch, self.steps
        spans = []   # (memory, base, words, what)
        if self.kind == "load_vectors":
            spans.append(("vector", self.a_base, self.count, "loaded words"))
        elif self.kind == "read_vectors":
            spans.append(("vector", self.a_base, self.count, "read words"))
        elif self.kind in ("load_weights", "read_weights"):
            spans.append(("weight", self.w_base, self.count, "tiles"))
        elif self.kind == "forward":
            spans += [("weight", self.w_base, O * R, "tiles"), ("vector", self.a_base, B * R, "inputs")]
            if self.bias:
                spans.append(("vector", self.b_base, O, "biases"))
            if self.store:
                spans.append(("vector", self.y_base, B * O, "outputs"))
        elif self.kind == "backward":
            spans += [("weight", self.w_base, O * R, "tiles"), ("vector", self.a_base, B * R, "gradients")]
            if self.mask:
                spans.append(("vector", self.b_base, B * O, "mask activations"))
            if self.store:
                spans.append(("vector", self.y_base, B * O, "outputs"))
        elif self.kind == "update":
            spans += [("weight", self.w_base, O * R, "tiles"), ("vector", self.a_base, B * O, "gradients"),
                      ("vector", self.b_base, B * R, "activations")]
        elif self.kind == "lstm":
            spans.append(("vector", self.a_base, (T + 1) * B * R, "input vectors of every step and the last h"))
            if self.bias:
                spans.append(("vector", self.b_base, O, "gate biases"))
        for memory, base, words, what in spans:
            depth = spec.vector_words if memory == "vector" else spec.weight_words
            if base + words > depth:
                knob = "vector_words" if memory == "vector" else "weight_words"
                raise MappingError(f"{self.kind}: its {what} span {memory} memory words {base}..{base + words - 1}, "
                                   f"beyond its {depth} words; move the base or set {knob} >= {base + words}")
        # The pipeline reads a command's inputs while it writes its outputs: they must not overlap.
        written = [s for s in spans if s[3] in ("outputs",)]
        if self.kind == "lstm" and self.bias:
            written = [("vector", self.a_base, (T + 1) * B * R, "input vectors of every step and the last h")]
        for _, wbase, wwords, wwhat in written:
            for memory, base, words, what in spans:
                if memory == "vector" and what != wwhat and base < wbase + wwords and wbase < base + words:
                    raise MappingError(f"{self.kind}: its {wwhat} (vector words {wbase}..{wbase + wwords - 1}) "
                                       f"overlap its {what} ({base}..{base + words - 1}); the engine reads one "
                                       f"while it writes the other: place them apart")


def command_layout(spec):
    bits = spec.field_bits
    return data.StructLayout({"kind": unsigned(3), **{name: unsigned(bits) for name in COUNT_FIELDS},
                              **{name: unsigned(1) for name in FLAG_FIELDS}, "lr_mult": unsigned(LR_FRAC)})


def pack_command(spec, command):
    command.check(spec)
    layout = command_layout(spec)
    word = 0
    for name, field in layout:
        value = KINDS.index(command.kind) if name == "kind" else int(getattr(command, name))
        word |= value << field.offset
    return word


def unpack_command(spec, word):
    layout = command_layout(spec)
    values = {name: (word >> f.offset) & ((1 << f.width) - 1) for name, f in layout}
    values["kind"] = KINDS[values["kind"]]
    for name in FLAG_FIELDS:
        values[name] = bool(values[name])
    return Command(**values)


# Constructors: the fields each kind uses, named ---------------------------------------------------------------

def load_vectors(*, address, count):
    return Command("load_vectors", count=count, a_base=address)


def load_weights(*, address, count):
    return Command("load_weights", count=count, w_base=address)


def read_vectors(*, address, count):
    return Command("read_vectors", count=count, a_base=address)


def read_weights(spec, *, address, count):
    return Command("read_weights", count=count, w_base=address, outer=spec.size)


def forward(*, weights, outer, reduce, batch, inputs, outputs=0, biases=None, relu=False, emit=False,
            store=True, stochastic=False):
    return Command("forward", outer=outer, reduce=reduce, batch=batch, w_base=weights, a_base=inputs,
                   b_base=biases or 0, bias=biases is not None, y_base=outputs, relu=relu, emit=emit, store=store,
                   stochastic=stochastic)


def backward(*, weights, outer, reduce, batch, gradients, outputs=0, mask=None, emit=False, store=True,
             stochastic=False):
    return Command("backward", outer=outer, reduce=reduce, batch=batch, w_base=weights, a_base=gradients,
                   b_base=mask or 0, mask=mask is not None, y_base=outputs, emit=emit, store=store,
                   stochastic=stochastic)


def update(*, weights, outer, reduce, batch, gradients, activations, lr_mult, stochastic=False):
    return Command("update", outer=outer, reduce=reduce, batch=batch, w_base=weights, a_base=gradients,
                   b_base=activations, lr_mult=lr_mult, stochastic=stochastic)


def lstm(*, x_blocks, hidden_blocks, batch, steps, vectors, biases=None, emit=False, zero_state=True):
    reduce = x_blocks + hidden_blocks
    return Command("lstm", outer=4 * hidden_blocks, reduce=reduce, batch=batch, steps=steps, x_blocks=x_blocks,
                   step_words=batch * reduce, a_base=vectors, b_base=biases or 0, bias=biases is not None,
                   emit=emit, zero_state=zero_state)


def with_fields(command, **changes):
    return replace(command, **changes)


FIELD_NAMES = tuple(f.name for f in fields(Command))
