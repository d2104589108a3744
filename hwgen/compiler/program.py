"""A network of integer layers on one accelerator: the map, tile, schedule and emit steps of the compiler.

The input is a list of `IntLayer`s - the integer network the front end (`hwgen.compiler.network`) makes from a
quantized model, or that a user writes - and an `AcceleratorSpec`. The output is a `Program`: every layer's
commands in order, each placed on an engine, with the data of every stream and the golden output.

- **map** (`map_layers`): convolutions run on the array; a fully connected layer runs on the array or, when
  the accelerator has one beside it (``mv_engine``), on the matrix-vector engine, whichever the cycle model says
  is faster for it; a pruned batch-1 one on the sparse engine (``sparse_mv``) when that is faster even with
  every activation nonzero (or when named: ``sparse=[...]``).
- **bind** (`Program.bind`, data-dependent): a sparse layer's commands stream only the columns of its input's
  nonzero activations, so they are made per input, from the reference network's activations; the host packs
  them from the previous layer's ``out`` beats (the ``sparse`` stream, gated like a host-fed ``acts``).
- **tile**: `hwgen.tiling.plan_layer` cuts each layer into commands that fit the buffers.
- **schedule** (`link`): where a layer's output goes. With ``chaining``, a layer's output stays on chip when
  the next layer can take it whole: the producer's beats leave the post-op chain into the feedback FIFO in the
  order the consumer's activation words are laid out (beat ``mf*P + p`` is word ``mf*P + p``: channel group
  ``mf`` at position ``p``, `hwgen.schedule`), and the consumer loads them as one tile. The re-layout is a fixed
  address pattern the hardware follows - the identity, because both layouts put channels on the vector lanes
  and pixels in raster order; a flattening fully connected layer takes the pixels-then-channels order by a
  permutation of its weight columns, made here once (`storage_order_weights`), so no activation is ever moved
  by the host. A boundary that cannot chain (the consumer needs its input in several tiles, host-unrolled
  windows, or another type) sends the output to ``out``; the host packs it as the next layer's ``acts``.
  Activation banks and post-op parameter banks alternate across layers (each plan's banks are flipped as a
  whole), so the next layer loads while this one computes.
- **emit** (`Program.streams`): the words of ``cfg``, ``weights``, ``mv_weights``, ``params`` and ``acts`` for a
  batch of inputs, and the beats ``out`` must carry; `Program.predict` is the exact cycle model of the whole
  run (`hwgen.perf.predict_commands`).

A batch of N inputs runs as one program: the per-input command sequence N times, so the next input's first
layer loads while the last layers of the previous one compute. Weights are streamed again for every input:
the weight buffer is a FIFO that streams them through the array (weights are used once per fold), so nothing
holds a layer's weights between inputs.
"""

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil

import numpy as np

from .. import reference
from ..errors import HwgenError, MappingError
from ..perf import CycleEstimate, predict_commands, predict_plan
from ..postops import PostOps, QuantParams, apply
from ..problem import ConvProblem
from ..spec import AcceleratorSpec
from ..tiling import LayerPlan, SparseLayerPlan, plan_layer, plan_sparse_layer
from .network import WEIGHT_TYPES, check_weight_bits

__all__ = ["IntLayer", "MappedLayer", "ProgramLayer", "Program", "check_network", "compile_program",
           "link_layers", "map_layers", "reference_network", "storage_order_weights", "tile_layers"]


@dataclass(frozen=True, eq=False)
class IntLayer:
    """One integer layer: ``O = postops(conv(I, weight) + ...)`` with the semantics of `hwgen.reference` and
    `hwgen.postops.apply`.

    ``problem`` is the canonical layer for one input (a fully connected layer: ``C=K, H=W=E=F=1``); ``weight``
    is ``[M, C, R, S]``; ``pad_value`` is what padding reads (the input's zero point). ``flatten`` marks a fully
    connected layer whose input is the previous layer's ``[C, H, W]`` output flattened in that order (as
    ``torch.flatten`` and ONNX ``Flatten`` do). ``host_pool = (k, stride)``: a ``k x k`` max pooling the
    hardware does not have (its post-op chain pools 2x2 only), applied by the host to this layer's output on its
    way to the next layer (the boundary then goes through ``out``; say so in any report)."""
    name: str
    problem: ConvProblem
    weight: np.ndarray
    postops: PostOps = PostOps()
    params: QuantParams = None
    pad_value: int = 0
    flatten: bool = False
    host_pool: tuple = None
    weight_bits: int = 8

    def __post_init__(self):
        if not isinstance(self.problem, ConvProblem):
            raise TypeError(f"{self.name}: problem must be a hwgen.problem.ConvProblem, not {self.problem!r}")
        weight = np.asarray(self.weight)
        if weight.shape != tuple(self.problem.weight_canonical_shape):
            raise MappingError(f"{self.name}: weight has shape {weight.shape}, the layer needs "
                               f"{tuple(self.problem.weight_canonical_shape)} ([M, C, R, S])")
        # A read-only int64 array (a broadcast zero: `hwgen.compiler.zoo`'s shape-only networks) is kept as it
        # is; anything else is copied, so the caller's array can change without changing the layer.
        keep = weight.dtype == np.int64 and not weight.flags.writeable
        object.__setattr__(self, "weight", weight if keep else weight.astype(np.int64))
        bits = check_weight_bits(self.weight_bits, self.name, self.problem.kind, error=MappingError)
        if bits != 8:
            wtype, w = WEIGHT_TYPES[bits], self.weight
            if w.size and (w.min() < wtype.min or w.max() > wtype.max):
                raise MappingError(f"{self.name}: {wtype} weights must lie in {wtype.min}..{wtype.max}, got "
                                   f"{int(w.min())}..{int(w.max())}; quantize the layer to {bits} bits "
                                   f"(weight_bits)")
        if self.postops.needs_params:
            if not isinstance(self.params, QuantParams):
                raise MappingError(f"{self.name}: {self.postops} needs QuantParams (bias/multiplier/shift)")
            self.params.check(self.postops, self.problem.M)

    @property
    def kind(self):
        return self.problem.kind

    @property
    def in_shape(self):
        p = self.problem
        return (p.C, p.H, p.W)

    @property
    def out_shape(self):
        """The shape the next layer receives (after any host pooling)."""
        p = self.problem
        E, F = self.postops.out_size(p.E, p.F)
        if self.host_pool:
            k, stride = self.host_pool
            E, F = (E - k) // stride + 1, (F - k) // stride + 1
        return (p.M, E, F)

    def host_pooled(self, y):
        """The host's pooling of this layer's output (identity without ``host_pool``)."""
        if not self.host_pool:
            return y
        k, stride = self.host_pool
        _, E, F = self.out_shape
        windows = [y[:, r:r + (E - 1) * stride + 1:stride, c:c + (F - 1) * stride + 1:stride]
                   for r in range(k) for c in range(k)]
        return np.max(windows, axis=0)

    def forward(self, x, acc_type):
        """The layer on one input ``x[C, H, W]`` (int) -> its output ``[M, E', F']``."""
        p = self.problem
        acc = reference.conv2d(x, self.weight, stride=(p.stride_h, p.stride_w), padding=(p.pad_h, p.pad_w),
                               acc_type=acc_type, out_size=(p.E, p.F), pad_value=self.pad_value)
        return apply(acc, self.params, self.postops, acc_type)


def reference_network(layers, x, acc_type):
    """Every layer's output for one input ``x`` (the layers' integer semantics, one after another)."""
    outputs = []
    for layer in layers:
        if layer.flatten:
            x = np.asarray(x).reshape(-1, 1, 1)
        outputs.append(layer.forward(x, acc_type))
        x = layer.host_pooled(outputs[-1])
    return outputs


def storage_order_weights(weight, *, channels, pixels, cols):
    """A flattening fully connected layer's weights ``[M, channels*pixels, 1, 1]`` (input feature ``c*pixels +
    p``, the ``[C, H, W]`` flatten order) -> ``[M, m_folds*pixels*cols, 1, 1]`` in the order its input arrives
    as activation words: word ``mf*pixels + p`` lane ``i`` is channel ``mf*cols + i`` at pixel ``p``; the
    padding lanes (channels beyond ``channels``) get zero weights."""
    weight = np.asarray(weight)
    M = weight.shape[0]
    m_folds = ceil(channels / cols)
    if weight.size and not any(weight.strides) and weight.flat[0] == 0:
        # A shape-only layer (`hwgen.compiler.zoo.alexnet(random=False)`: one zero, broadcast): its storage
        # order is zeros too, and stays a view (AlexNet's fc6 would be a 300 MB copy).
        return np.broadcast_to(np.zeros((), dtype=np.int64), (M, m_folds * pixels * cols, 1, 1))
    w = np.zeros((M, m_folds * cols, pixels), dtype=np.int64)
    w[:, :channels] = weight.reshape(M, channels, pixels)
    # (M, mf, lane, p) -> (M, mf, p, lane)
    return w.reshape(M, m_folds, cols, pixels).transpose(0, 1, 3, 2).reshape(M, -1, 1, 1)


def _to_storage_order(x, *, cols):
    """An output ``[C, H, W]`` -> the flattened vector in storage order (see `storage_order_weights`)."""
    x = np.asarray(x)
    C = x.shape[0]
    pixels = x[0].size
    m_folds = ceil(C / cols)
    padded = np.zeros((m_folds * cols, pixels), dtype=np.int64)
    padded[:C] = x.reshape(C, pixels)
    return padded.reshape(m_folds, cols, pixels).transpose(0, 2, 1).reshape(-1, 1, 1)


@dataclass(eq=False)
class ProgramLayer:
    """A layer as the program runs it: its plan (commands flagged for engine, banks, source and destination),
    the canonical problem and weights the hardware sees (a flattening layer's in storage order)."""
    layer: IntLayer
    plan: LayerPlan
    weight: np.ndarray          # for plan.problem
    source: str = "stream"      # its activations: "stream" (acts: the network's input), "feedback" (the previous
                                # layer, on chip) or "host" (acts, packed by the host from `out`)
    dest: str = "out"           # its output: "out" or "feedback"

    @property
    def name(self):
        return self.layer.name

    @property
    def engine(self):
        return self.plan.engine

    @property
    def sparse(self):
        """Whether the layer runs on the sparse engine (its commands are made for each input's activations:
        `Program.bind`)."""
        return isinstance(self.plan, SparseLayerPlan)

    def engine_name(self):
        return "sparse" if self.sparse else self.engine

    def plan_for(self, x):
        """A sparse layer's plan for its input ``x`` (the previous layer's output): the commands of ``self.plan``
        (banks, destinations) with the words and word counts of ``x``'s nonzero activations."""
        bound = plan_sparse_layer(self.plan.spec, self.plan.problem, self.plan.postops, weight=self.weight,
                                  x=self.hardware_input(x))
        if len(bound.tiles) != len(self.plan.tiles):
            raise HwgenError(f"{self.name}: its sparse plan has {len(bound.tiles)} commands for this input, "
                             f"{len(self.plan.tiles)} when compiled")
        tiles = tuple(dataclasses.replace(t, schedule=dataclasses.replace(
            t.schedule, sparse_words=b.schedule.sparse_words, sparse_macs=b.schedule.sparse_macs))
            for t, b in zip(self.plan.tiles, bound.tiles))
        return dataclasses.replace(self.plan, tiles=tiles, x=bound.x, words=bound.words)

    def hardware_input(self, x):
        """The layer's input as its plan's canonical activations (storage order for a flattening layer)."""
        if self.layer.flatten:
            return _to_storage_order(x, cols=self.plan.spec.cols)
        return x


@dataclass(eq=False)
class Program:
    spec: AcceleratorSpec
    layers: list
    batch: int = 1
    notes: list = field(default_factory=list)     # decisions worth reporting (chaining, engines)
    # Per input of the batch, the plans of its sparse layers made for that input (`bind`); None: the compiled
    # plans, made as if every activation were nonzero.
    bound: list = None
    inputs: list = None

    @property
    def has_sparse(self):
        return any(pl.sparse for pl in self.layers)

    def bind(self, inputs):
        """The program for this batch of ``inputs``: each sparse layer's commands made for the activations it will
        see (the reference network's output of the layer before it), so `predict` is exact and `streams` carries
        them. A program without sparse layers is returned as it is."""
        inputs = list(inputs)
        if len(inputs) != self.batch:
            raise ValueError(f"the program runs a batch of {self.batch}, got {len(inputs)} inputs")
        if not self.has_sparse:
            return self
        bound = []
        for x in inputs:
            outs = self.reference(x)
            previous, plans = x, {}
            for index, (pl, out) in enumerate(zip(self.layers, outs)):
                if pl.sparse:
                    plans[index] = pl.plan_for(previous)
                previous = pl.layer.host_pooled(out)
            bound.append(plans)
        return dataclasses.replace(self, bound=bound, inputs=[np.asarray(x) for x in inputs])

    def _layer_plans(self, image):
        """The layers' plans for input ``image`` of the batch (a bound program's sparse plans for it)."""
        if self.bound is None:
            return [pl.plan for pl in self.layers]
        return [self.bound[image].get(index, pl.plan) for index, pl in enumerate(self.layers)]

    def commands(self):
        """Every command, in order, for the whole batch (banks alternate across layers and inputs)."""
        return [command for image in self._image_plans() for plan in image for command in plan.commands]

    def _image_plans(self):
        """Per input, the layers' plans with their banks flipped so that each plan loads (and takes post-op
        parameters) into the bank the command before it does not use."""
        images, last_bank, last_param = [], None, None
        for image in range(self.batch):
            plans = []
            for plan in self._layer_plans(image):
                first_load = next((c.act_bank for c in plan.commands if c.load_acts), None)
                flip_acts = first_load is not None and last_bank is not None and first_load == last_bank
                first_param = next((c.param_bank for c in plan.commands if c.param_words), None)
                flip_params = first_param is not None and last_param is not None and first_param == last_param
                if flip_acts or flip_params:
                    plan = _flip_banks(plan, acts=flip_acts, params=flip_params)
                plans.append(plan)
                last_bank = plan.commands[-1].act_bank
                params = [c.param_bank for c in plan.commands if c.param_words]
                last_param = params[-1] if params else last_param
            images.append(plans)
        return images

    def predict(self, *, timeline=None):
        """The exact cycles of the whole batch, first ``cfg`` handshake to last ``out`` beat (a layer fed by the
        host from an earlier layer's ``out`` beats waits for them, `acts_gates`)."""
        macs = self.batch * sum(pl.layer.problem.macs for pl in self.layers)
        return predict_commands(self.commands(), name="network", macs=macs, timeline=timeline,
                                acts_after=self.acts_after(), sparse_after=self.sparse_after())

    def acts_after(self):
        """Per command: how many ``out`` beats the host must have before it can send the command's activations
        (0: the network's input, or none to send)."""
        waits, out_beats = [], 0
        for image in range(self.batch):
            for index, pl in enumerate(self.layers):
                for command in pl.plan.commands:
                    host_fed = command.load_acts and pl.source == "host"
                    waits.append(out_beats if host_fed else 0)
                if pl.dest == "out":
                    out_beats += pl.plan.out_beats
        return waits

    def sparse_after(self):
        """Per command: ``(out beats, word offset)`` for a sparse command whose words the host makes from earlier
        ``out`` beats (its layer's words are offered from then on, this command's first being word ``offset``),
        else None."""
        waits, out_beats = [], 0
        for plans in self._image_plans():
            for pl, plan in zip(self.layers, plans):
                offset = 0
                for command in plan.commands:
                    host_fed = pl.sparse and pl.source == "host" and out_beats
                    waits.append((out_beats, offset) if host_fed else None)
                    offset += command.sparse_words or 0
                if pl.dest == "out":
                    out_beats += plan.out_beats
        return waits

    def sparse_gates(self):
        """``(first sparse word, out beats needed)`` for every sparse layer fed by the host, in stream order (as
        `acts_gates`)."""
        gates, words, out_beats = [], 0, 0
        for plans in self._image_plans():
            for pl, plan in zip(self.layers, plans):
                if pl.sparse:
                    if pl.source == "host":
                        gates.append((words, out_beats))
                    words += sum(c.sparse_words for c in plan.commands)
                if pl.dest == "out":
                    out_beats += plan.out_beats
        return gates

    def acts_gates(self):
        """``(first acts word, out beats needed)`` for every host-fed layer, in stream order: the host may send
        word ``first`` and the ones after it only once it has received that many ``out`` beats."""
        gates, words, out_beats = [], 0, 0
        for plans in self._image_plans():
            for index, (pl, plan) in enumerate(zip(self.layers, plans)):
                if pl.source in ("stream", "host") and not pl.sparse:
                    if pl.source == "host":
                        gates.append((words, out_beats))
                    words += sum(c.act_words for c in plan.commands if c.load_acts)
                if pl.dest == "out":
                    out_beats += plan.out_beats
        return gates

    def ideal_cycles(self):
        return ceil(self.batch * sum(pl.layer.problem.macs for pl in self.layers) / self.spec.pes)

    def layer_cycles(self):
        """Per layer (first input): the cycles from its first command's start to its last beat, from the
        whole-program timeline."""
        timeline = []
        self.predict(timeline=timeline)
        rows, at = [], 0
        for pl in self.layers:
            events = timeline[at:at + len(pl.plan.commands)]
            at += len(pl.plan.commands)
            start = min(e["take"] for e in events)
            end = max(e["last_beat"] for e in events if e["last_beat"] is not None)
            rows.append({"layer": pl.name, "engine": pl.engine_name(), "commands": len(events), "source": pl.source,
                         "dest": pl.dest, "start": start, "end": end, "macs": pl.layer.problem.macs})
        return rows

    def reference(self, x):
        """Every layer's golden output for one input (canonical ``[M, E', F']`` each). On a float accelerator
        the input and the outputs are bit patterns (`hwgen.floats`) and the reference is `float_reference`."""
        if self.spec.is_float:
            return [out[:pl.layer.problem.M] for pl, out in zip(self.layers, self.float_reference(x))]
        return reference_network([pl.layer for pl in self.layers], x, self.spec.acc_type)

    def output_values(self, y):
        """The last layer's output as numbers to compare or rank: the integers themselves, or on a float
        accelerator the bit patterns decoded (fp32, or the operand format after a narrowing requant)."""
        y = np.asarray(y)
        if not self.spec.is_float:
            return y
        from .. import floats
        fmt = self.layers[-1].layer.postops.output_type(self.spec.acc_type).name
        return floats.decode(y.astype(np.uint64), fmt)

    def float_reference(self, x):
        """A float program's golden outputs for one input ``x`` (``[C, H, W]`` bf16/fp16 patterns), each with the
        padding lanes of its last m-fold (``[M', E', F']``, ``M' = ceil(M / cols) * cols``), exactly as the
        hardware computes them: each layer's fp32 accumulators in the hardware's order of additions
        (`hwgen.reference.float_layer` on its plan), then the float post-op chain (`hwgen.postops.apply_float`,
        zero parameters on the padding lanes). A layer fed on chip reads the previous layer's output with its
        padding lanes (``+0`` for finite data; an infinity times a zero weight makes them NaN, and the next
        layer's rows past its channels multiply them by zero weights), a layer fed by the host or the
        ``acts`` stream reads zeros there."""
        from ..postops import apply_float, float_params
        outputs, carried = [], np.asarray(x)
        for pl in self.layers:
            layer, plan = pl.layer, pl.plan
            if layer.host_pool:
                raise MappingError(f"{layer.name}: host pooling is integer-only")
            if outputs and pl.source != "feedback":       # the host packs the real channels, zeros past them
                carried = carried[:self.layers[len(outputs) - 1].layer.problem.M]
            acts = pl.hardware_input(carried)
            acc = reference.float_layer(plan, acts, pl.weight, pad_channels=True, lanes=pl.source == "feedback")
            params = layer.params
            if layer.postops.needs_params:
                pad = np.zeros(len(acc) - layer.problem.M, dtype=np.int64)
                params = float_params(
                    None if params.bias is None else np.concatenate([params.bias & 0xFFFFFFFF, pad]),
                    None if params.multiplier is None or not layer.postops.requant
                    else np.concatenate([params.multiplier, pad]))
            carried = apply_float(acc, params, layer.postops)
            outputs.append(carried)
        return outputs

    def streams(self, inputs):
        """The words of every input stream for a batch of ``inputs`` (each ``[C, H, W]`` of the first layer),
        the beats ``out`` must carry, and every layer's golden outputs per input."""
        inputs = list(inputs)
        if len(inputs) != self.batch:
            raise ValueError(f"the program runs a batch of {self.batch}, got {len(inputs)} inputs")
        if self.has_sparse and (self.inputs is None or len(self.inputs) != len(inputs)
                                or not all(np.array_equal(a, b) for a, b in zip(self.inputs, inputs))):
            return self.bind(inputs).streams(inputs)
        words = {"cfg": [], "weights": [], "mv_weights": [], "params": [], "acts": [], "sparse": []}
        expected, goldens = [], []
        for x, plans in zip(inputs, self._image_plans()):
            lanes = self.float_reference(x) if self.spec.is_float else None
            outs = self.reference(x) if lanes is None else [o[:pl.layer.problem.M]
                                                            for pl, o in zip(self.layers, lanes)]
            goldens.append(outs)
            previous = x
            for index, (pl, plan, out) in enumerate(zip(self.layers, plans, outs)):
                words["cfg"] += plan.config_words()
                stream = "mv_weights" if plan.engine == "matrix_vector" and self.spec.mv_engine else "weights"
                words[stream] += plan.weight_stream(pl.weight)
                if pl.layer.postops.needs_params:
                    words["params"] += plan.params_stream(pl.layer.params)
                if pl.sparse:
                    words["sparse"] += plan.sparse_stream()
                elif pl.source in ("stream", "host"):
                    words["acts"] += plan.act_stream(pl.hardware_input(previous), pad_value=pl.layer.pad_value)
                if pl.dest == "out":
                    expected += plan.pack_outputs(out if lanes is None else lanes[index])
                previous = pl.layer.host_pooled(out)
        return words, expected, goldens

    def dram_bytes(self):
        """Bytes the program moves off chip per input (`hwgen.roofline`), and what the same layers would move
        with every boundary through memory: the difference is what chaining saves."""
        from ..roofline import layer_traffic
        chained = sum(layer_traffic(pl.plan, source=pl.source, dest=pl.dest).dram_bytes for pl in self.layers)
        unchained = sum(layer_traffic(pl.plan, source="stream", dest="out").dram_bytes for pl in self.layers)
        return {"dram_bytes": chained, "dram_bytes_unchained": unchained, "saved_by_chaining": unchained - chained}

    def summary_rows(self):
        rows = []
        for pl in self.layers:
            p = pl.layer.problem
            rows.append({"layer": pl.name, "kind": p.kind, "engine": pl.engine_name(), "commands": len(pl.plan.tiles),
                         "im2col": pl.plan.im2col, "input": pl.source, "output": pl.dest,
                         "macs": p.macs, "model_cycles_alone": predict_plan(pl.plan).cycles})
        return rows


def _flip_banks(plan, *, acts, params):
    tiles = []
    for tile in plan.tiles:
        s = tile.schedule
        changes = {}
        if acts:
            changes["act_bank"] = 1 - s.act_bank
        if params and s.param_words:
            changes["param_bank"] = 1 - s.param_bank
        tiles.append(dataclasses.replace(tile, schedule=dataclasses.replace(s, **changes)))
    return dataclasses.replace(plan, tiles=tuple(tiles))


def _retag(plan, **changes):
    return dataclasses.replace(plan, tiles=tuple(dataclasses.replace(t, schedule=dataclasses.replace(
        t.schedule, **changes)) for t in plan.tiles))


def _emission_is_storage_order(plan):
    """Whether the plan's output beats leave in the order of the next layer's activation words."""
    spec, p = plan.spec, plan.problem
    e_out, f_out = plan.out_shape[1:]
    order = []
    for tile in plan.tiles:
        s = tile.schedule
        if not s.acc_emit:
            continue
        if tile.pixel_range:
            first_pixel, pixels = tile.p0, tile.p1 - tile.p0
        else:
            r0, _ = plan._out_rows(tile)
            first_pixel, pixels = r0 * f_out, s.out_size[0] * s.out_size[1]
        for mf in range(s.m_folds):
            base = (tile.m0 // spec.cols + mf) * e_out * f_out + first_pixel
            order.extend(range(base, base + pixels))
    return order == list(range(len(order)))


def check_network(layers):
    """Raise `MappingError` unless every layer takes the shape the one before it gives."""
    layers = list(layers)
    if not layers:
        raise MappingError("the network has no layers")
    for layer in layers:
        if not isinstance(layer, IntLayer):
            raise TypeError(f"a network is a list of hwgen.compiler.IntLayer, not {layer!r}")
    for before, after in zip(layers, layers[1:]):
        expected = (before.out_shape if not after.flatten else (int(np.prod(before.out_shape)), 1, 1))
        if after.in_shape != tuple(expected):
            raise MappingError(f"{after.name}: takes an input of shape {after.in_shape} but {before.name} gives "
                               f"{before.out_shape}" + (" (flattened)" if after.flatten else ""))
    return layers


@dataclass(frozen=True, eq=False)
class MappedLayer:
    """The map step's decision for one layer: the engine, and the problem and weights the hardware sees."""
    layer: IntLayer
    engine: str
    problem: ConvProblem
    weight: np.ndarray
    im2col: object          # what the tile step may use: "auto", or False for a layer meant to be fed on chip

    def to_dict(self):
        return {"layer": self.layer.name, "engine": self.engine, "problem": self.problem.to_dict(),
                "im2col": self.im2col, "flatten": self.layer.flatten, "pad_value": self.layer.pad_value,
                "weight_bits": self.layer.weight_bits}


@lru_cache(maxsize=256)
def _engine_plans(spec, problem, postops, *, im2col, weight_bits=8):
    """The plan on every engine that can run the layer (errors of the ones that cannot); cached, as the map
    and tile steps both ask. A layer with int4 or int2 weights runs packed on the matrix-vector engine only."""
    if weight_bits != 8:
        if not (weight_bits in spec.packed_weight_bits and "matrix_vector" in spec.engines):
            has = ("no such engine" if "matrix_vector" not in spec.engines else
                   f"packed_weight_bits={spec.packed_weight_bits}")
            raise MappingError(f"{problem.name}: its int{weight_bits} weights run packed on a matrix-vector engine "
                               f"built with AcceleratorSpec(..., mv_engine=True, packed_weight_bits=({weight_bits},)"
                               f"); accelerator {spec.name!r} has {has} (or quantize the layer to 8 bits)")
        engine = None if spec.dataflow == "matrix_vector" else "matrix_vector"
        return {"matrix_vector": plan_layer(spec, problem, postops, engine=engine, packed_bits=weight_bits)}
    plans, errors = {}, []
    attempts = [(spec.dataflow, im2col)]
    if im2col is False:
        attempts.append((spec.dataflow, "auto"))      # fed through the host then, it may unroll windows
    if spec.mv_engine and problem.kind == "linear" and problem.E == problem.H == 1:
        attempts.append(("matrix_vector", "auto"))
    for engine, unroll in attempts:
        if engine in plans:
            continue
        try:
            if engine == "matrix_vector" and spec.dataflow != "matrix_vector":
                plans[engine] = plan_layer(spec, problem, postops, engine=engine)
            else:
                plans[engine] = plan_layer(spec, problem, postops, im2col=unroll)
        except HwgenError as error:
            errors.append(error)
    if not plans:
        raise errors[0]
    return plans


def map_layers(spec, layers, *, chain=True, sparse="auto"):
    """The map step: each layer's engine (where the cycle model says it runs fastest: the array, or for a fully
    connected layer the matrix-vector engine beside it, or on an accelerator built with the sparse engine a
    pruned fully connected layer there - `_sparse_wins`), and the problem and weights the hardware sees (a
    flattening layer's weight columns in storage order, `storage_order_weights`).

    ``sparse``: ``"auto"`` (the rule above), ``"never"``, or the names of the layers to run on the sparse engine
    (each must be a batch-1 fully connected int8 layer; the others stay dense)."""
    if not isinstance(spec, AcceleratorSpec):
        raise TypeError(f"spec must be an AcceleratorSpec, not {spec!r}")
    layers = check_network(layers)
    forced = _sparse_choice(spec, layers, sparse)
    if spec.is_float:
        for layer in layers:
            if layer.host_pool or layer.weight_bits != 8:
                raise MappingError(f"{layer.name}: {'host pooling' if layer.host_pool else 'int4 weights'} is "
                                   f"integer-only; the float accelerator {spec.name!r} runs {spec.float_format} "
                                   f"layers with the post-op chain's 2x2 max pooling")
    mapped = []
    for index, layer in enumerate(layers):
        problem, weight = layer.problem, layer.weight
        if layer.flatten:
            previous = layers[index - 1]
            channels, pixels = previous.out_shape[0], previous.out_shape[1] * previous.out_shape[2]
            weight = storage_order_weights(weight, channels=channels, pixels=pixels, cols=spec.cols)
            problem = ConvProblem(problem.name, "linear", C=weight.shape[1], H=1, W=1, M=problem.M, E=1, F=1,
                                  R=1, S=1)
        # A layer meant to be fed on chip takes its input as it is laid out: no host-unrolled windows.
        im2col = False if chain and spec.chaining and index > 0 and not layers[index - 1].host_pool else "auto"
        plans = _engine_plans(spec, problem, layer.postops, im2col=im2col, weight_bits=layer.weight_bits)
        engine = min(plans, key=lambda name: predict_plan(plans[name]).cycles)
        if forced is not None:
            if layer.name in forced:
                if not _sparse_eligible(spec, layer, problem):
                    raise MappingError(f"{layer.name}: only a batch-1 fully connected layer with int8 weights (no "
                                       f"host pooling) runs on the sparse engine; not a {problem.kind} of "
                                       f"{problem.E}x{problem.F} outputs with int{layer.weight_bits} weights")
                _sparse_template(spec, layer, problem, weight)      # raises if the engine cannot take it
                engine = "sparse"
        elif _sparse_wins(spec, layer, problem, weight, predict_plan(plans[engine]).cycles):
            engine = "sparse"
        mapped.append(MappedLayer(layer, engine, problem, weight, im2col))
    return mapped


def _sparse_template(spec, layer, problem, weight):
    """A fully connected layer's plan on the sparse engine as if every activation were nonzero (its most words):
    the commands a compiled program holds until `Program.bind` makes them for real inputs."""
    return plan_sparse_layer(spec, problem, layer.postops, weight=weight, x=np.ones(problem.C, dtype=np.int64),
                             pack=False)


def _sparse_choice(spec, layers, sparse):
    """None for the automatic choice, else the set of layer names to run on the sparse engine."""
    if isinstance(sparse, str):
        if sparse == "auto":
            return None
        if sparse == "never":
            return set()
        raise MappingError(f"sparse must be 'auto', 'never' or a list of layer names, not {sparse!r}")
    try:
        names = set(sparse)
    except TypeError:
        raise MappingError(f"sparse must be 'auto', 'never' or a list of layer names, not {sparse!r}") from None
    unknown = sorted(names - {layer.name for layer in layers})
    if unknown:
        raise MappingError(f"sparse names layers {unknown} the network does not have; its layers are "
                           f"{[layer.name for layer in layers]}")
    if names and not spec.sparse_mv:
        raise MappingError(f"layers {sorted(names)} are to run on the sparse engine, but accelerator {spec.name!r} "
                           f"has none; build it with AcceleratorSpec(..., mv_engine=True, sparse_mv=True)")
    return names


def _sparse_eligible(spec, layer, problem):
    return (spec.sparse_mv and problem.kind == "linear" and problem.E == problem.F == problem.H == problem.W == 1
            and layer.weight_bits == 8 and not layer.host_pool)


def _sparse_wins(spec, layer, problem, weight, dense_cycles):
    """Whether a layer runs on the sparse engine: a batch-1 fully connected int8 layer with zero weights, on an
    accelerator that has the engine, when its cycles with every activation nonzero (zero activations only take
    words away) are fewer than the best dense engine's."""
    if not _sparse_eligible(spec, layer, problem):
        return False
    if not np.any(np.asarray(weight) == 0):
        return False
    try:
        template = _sparse_template(spec, layer, problem, weight)
    except HwgenError:
        return False
    return predict_plan(template).cycles < dense_cycles


def tile_layers(spec, mapped):
    """The tile step: each layer's commands on its engine (`hwgen.tiling.plan_layer`), with its padding
    value. A layer meant to be fed on chip that only fits with host-unrolled windows gets them (it will be
    fed through the host)."""
    program_layers = []
    for m in mapped:
        if m.engine == "sparse":
            plan = _sparse_template(spec, m.layer, m.problem, m.weight)
            program_layers.append(ProgramLayer(layer=m.layer, plan=plan, weight=m.weight))
            continue
        plan = _engine_plans(spec, m.problem, m.layer.postops, im2col=m.im2col,
                             weight_bits=m.layer.weight_bits)[m.engine]
        if m.layer.pad_value and plan.engine == "weight_stationary" and not plan.im2col:
            plan = _retag(plan, pad_value=m.layer.pad_value)
        program_layers.append(ProgramLayer(layer=m.layer, plan=plan, weight=m.weight))
    return program_layers


def link_layers(spec, program_layers, *, batch=1, chain=True):
    """The schedule step: where every layer's output goes (on chip when the next layer can take it whole, else
    through ``out`` and the host), banks alternating across layers (`Program`), and the cycle model of the
    whole run - which refuses a plan it could not predict (`FeedbackOverflowError`)."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise MappingError(f"batch must be a positive integer, not {batch!r}")
    notes = []
    for producer, consumer in zip(program_layers, program_layers[1:]):
        reason = _chain_blocker(spec, producer, consumer) if chain else "chaining not asked for"
        if reason is None:
            producer.dest, consumer.source = "feedback", "feedback"
            producer.plan = _retag_emitting(producer.plan, out_dest="feedback")
            consumer.plan = _retag_loading(consumer.plan, act_source="feedback")
            notes.append(f"{producer.name} -> {consumer.name}: on chip")
        else:
            consumer.source = "host"
            consumer.plan = _retag_loading(consumer.plan, act_source="host")
            notes.append(f"{producer.name} -> {consumer.name}: through out/acts ({reason})")
    program = Program(spec=spec, layers=program_layers, batch=batch, notes=notes)
    program.predict()     # raises if the feedback would overflow (the model would not be exact)
    return program


def compile_program(spec, layers, *, batch=1, chain=True, sparse="auto"):
    """Map, tile and link `layers` (`IntLayer`s, in order) on the accelerator of `spec` (see the module
    docstring). ``chain=False`` sends every layer's output to ``out`` (the host packs the next input);
    ``sparse``: which fully connected layers run on the sparse engine (`map_layers`)."""
    mapped = map_layers(spec, layers, chain=chain, sparse=sparse)
    return link_layers(spec, tile_layers(spec, mapped), batch=batch, chain=chain)


def _retag_emitting(plan, **changes):
    return dataclasses.replace(plan, tiles=tuple(
        dataclasses.replace(t, schedule=dataclasses.replace(t.schedule, **changes)) if t.schedule.acc_emit else t
        for t in plan.tiles))


def _retag_loading(plan, **changes):
    return dataclasses.replace(plan, tiles=tuple(
        dataclasses.replace(t, schedule=dataclasses.replace(t.schedule, **changes)) if t.schedule.load_acts else t
        for t in plan.tiles))


def _chain_blocker(spec, producer, consumer):
    """Why the boundary cannot stay on chip, or None."""
    if producer.layer.host_pool:
        return f"the host pools {producer.name}'s output {producer.layer.host_pool[0]}x{producer.layer.host_pool[0]}"
    if not spec.chaining:
        return "the accelerator is built without chaining"
    if consumer.sparse:
        return f"{consumer.name} runs on the sparse engine, whose words the host packs from the nonzero activations"
    out_type = producer.layer.postops.output_type(spec.acc_type)
    if out_type != spec.act_type:
        return f"{producer.name}'s output is {out_type}, not the activation type {spec.act_type}"
    loads = [c for c in consumer.plan.commands if c.load_acts]
    if len(loads) != 1 or not consumer.plan.commands[0].load_acts:
        return f"{consumer.name} loads its input in {len(loads)} tiles (it must fit one activation bank)"
    if consumer.plan.im2col:
        return f"{consumer.name} takes host-unrolled windows"
    if not _emission_is_storage_order(producer.plan):
        return f"{producer.name}'s tiles emit out of the next layer's word order"
    if loads[0].act_words != producer.plan.out_beats:
        return (f"{consumer.name} loads {loads[0].act_words} words but {producer.name} emits "
                f"{producer.plan.out_beats} beats")
    return None
