"""The compiler's build: a list of named steps from a model to an accelerator and its program.

    import -> quantize -> map -> tile -> schedule -> emit
    import -> cast -> map -> tile -> schedule -> emit          (precision="bf16" / "fp16")

Each step is a function of a `Build` (the intermediates so far) that adds its own and, when the build has an
output folder, saves it there (FINN's build steps, hls4ml's passes); ``stop_after`` ends the build after any
step, and every intermediate prints (``str``):

- ``import``: ``graph/`` (a `FloatNetwork`) - or, for a QDQ model, the quantized network directly;
- ``quantize``: ``network/`` (the `QuantizedNetwork`: int8 weights, folded biases, multipliers, shifts, scales);
- ``cast`` (the float build's step instead of quantize): ``network/`` (the `CastNetwork`: bf16/fp16 weight
  patterns, fp32 biases, `hwgen.compiler.cast`); the map step then sizes a float weight-stationary accelerator
  (the matrix-vector engine is integer-only: fully connected layers run on the array);
- ``map``: ``map.json`` (each layer's engine, and the problem the hardware sees);
- ``tile``: ``tiles.json`` (each layer's commands);
- ``schedule``: ``program.json`` (the commands in order with their configuration fields, where each layer's
  output goes, and the cycle model's timeline);
- ``emit``: ``design.py`` (the accelerator and the network, a design file a user can edit and give to every
  ``hwgen`` command), the Verilog and its manifest, ``report.txt``/``report.json``.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HwgenError, MappingError
from ..spec import AcceleratorSpec, buffer_bytes_for
from .cast import FLOAT_PRECISIONS
from .program import IntLayer, link_layers, map_layers, tile_layers

__all__ = ["STEPS", "FLOAT_STEPS", "PRECISIONS", "Build", "BuildConfig", "build", "int_layers", "size_spec"]

STEPS = ("import", "quantize", "map", "tile", "schedule", "emit")
FLOAT_STEPS = ("import", "cast", "map", "tile", "schedule", "emit")     # --precision bf16 / fp16
PRECISIONS = ("int8", "bf16", "fp16")


@dataclass
class BuildConfig:
    """What to build. ``model``: an ONNX file or ``ModelProto``, a `FloatNetwork`, or a `QuantizedNetwork`
    (then import and quantize have nothing to do). ``calibration``: float inputs ``[N, ...]`` for the quantizer
    (required for a float model). ``spec``: the accelerator, or None to size one for the network
    (`size_spec`) as ``array`` (rows, cols) with the given engines. ``postop_lanes``: the sized accelerator's
    post-op lanes (None: one per column, so the chain keeps up with the array - see `size_spec`).
    ``precision``: ``"int8"`` (quantize), or ``"bf16"``/``"fp16"`` (cast: no calibration; ``weight_bits`` and
    ``sparsity`` are integer-only and rejected; ``mv_engine`` is ignored, the float datapath has none).
    ``sparsity`` prunes the quantized weights; with it, a sized accelerator gets the sparse engine beside the
    matrix-vector engine (``sparse_engine``), and ``sparse`` says which fully connected layers run there."""
    model: object
    output: Path = None
    name: str = None
    calibration: np.ndarray = None
    method: str = "minmax"
    percentile: float = 99.99
    activations: str = "symmetric"
    spec: AcceleratorSpec = None
    array: tuple = (8, 8)
    mv_engine: bool = True
    chaining: bool = True
    postop_lanes: int = None
    batch: int = 1
    stop_after: str = "emit"
    verilog: bool = True
    sparsity: object = None       # magnitude pruning after quantization: a fraction, or {layer name: fraction}
    sparse: object = "auto"       # FC layers on the sparse engine: "auto" (where the model says it is faster),
                                  # "never", or their names (`hwgen.compiler.program.map_layers`)
    sparse_engine: bool = None    # build the sparse engine into a sized spec (None: with `sparsity` and mv_engine)
    weight_bits: object = 8       # 8, or per layer: {layer name or "linear": 8, 4 or 2} (int4/int2 on FC layers)
    precision: str = "int8"       # "int8" (quantize), or "bf16"/"fp16": the float datapath (cast, no calibration)

    @property
    def is_float(self):
        return self.precision in FLOAT_PRECISIONS

    @property
    def steps(self):
        return FLOAT_STEPS if self.is_float else STEPS

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise MappingError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.stop_after not in self.steps:
            other = {"quantize": "cast", "cast": "quantize"}.get(self.stop_after)
            hint = (f" (a {self.precision} build has a {other!r} step instead of {self.stop_after!r})"
                    if other else "")
            raise MappingError(f"stop_after must be one of the steps {', '.join(self.steps)}, not "
                               f"{self.stop_after!r}{hint}")
        if self.is_float:
            for name, value, default in (("weight_bits", self.weight_bits, 8), ("sparsity", self.sparsity, None)):
                if value != default:
                    raise MappingError(f"{name}={value!r} is integer-only (int4 weights, pruning of int8 weights); "
                                       f"a {self.precision} build casts every layer to {self.precision}: leave "
                                       f"{name} unset, or build with precision='int8'")
        bits = self.weight_bits
        if not (isinstance(bits, dict) or (isinstance(bits, int) and not isinstance(bits, bool))):
            raise MappingError(f"weight_bits must be 8, 4, 2 or a dict {{layer name or 'linear': bits}}, not "
                               f"{bits!r}")


@dataclass
class Build:
    config: BuildConfig
    float_network: object = None
    network: object = None          # QuantizedNetwork
    layers: list = None             # IntLayer
    spec: AcceleratorSpec = None
    mapped: list = None
    program_layers: list = None
    program: object = None
    files: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    done: list = field(default_factory=list)

    def program_for(self, batch):
        """The compiled network as a program for a batch of ``batch`` inputs (after the map step)."""
        from .program import compile_program
        return compile_program(self.spec, self.layers, batch=batch, chain=self.config.chaining,
                               sparse=self.config.sparse)

    def predict(self, x):
        """Top-1 class of float inputs ``[N, ...]``: the int8 network's (`QuantizedNetwork.predict`), or a float
        build's bit-exact reference (the program's, `Program.float_reference`: the hardware's order of additions)."""
        if not self.config.is_float:
            return self.network.predict(x)
        program = self.program_for(1)
        return np.array([int(np.argmax(program.output_values(program.reference(sample)[-1]).reshape(-1)))
                         for sample in check_inputs(self.network, x)], dtype=np.int64)

    def save_json(self, name, doc):
        if self.config.output is None:
            return None
        path = Path(self.config.output) / name
        path.write_text(json.dumps(doc, indent=1) + "\n")
        self.files[name] = path
        return path


def int_layers(network):
    """A `QuantizedNetwork` -> the back end's `IntLayer`s (same integers; the input zero point pads); a
    `CastNetwork` -> its float layers' bit patterns (`hwgen.compiler.cast.cast_layers`)."""
    from .cast import CastNetwork, cast_layers
    if isinstance(network, CastNetwork):
        return cast_layers(network)
    return [IntLayer(name=layer.name, problem=layer.problem, weight=layer.weight, postops=layer.postops,
                     params=layer.params, pad_value=layer.in_zero_point, flatten=layer.flatten_from is not None,
                     weight_bits=layer.weight_bits)
            for layer in network.layers]


def _pow2_at_least(value, floor):
    size = floor
    while size < value:
        size *= 2
    return size


def size_spec(layers, *, rows, cols, name, mv_engine=True, chaining=True, act_type="int8", weight_type="int8",
              acc_type="int32", max_words=None, postop_lanes=None, sparse_mv=False):
    """An accelerator sized for `layers`: an activation bank that holds the largest input a layer loads whole
    (host-unrolled windows for the first one), accumulators for the largest output map, parameters for the
    most output channels, a pooling line buffer for the widest pooled output - powers of two, so a user can
    read them off and change them. ``max_words``: no buffer deeper than that (e.g. `hwgen.spec.MAX_BUFFER_WORDS`:
    `hwgen explore` sizes AlexNet's buffers as large as hwgen builds them, and the planner tiles what does not
    fit); None: as deep as the network needs (a buffer deeper than hwgen builds is an error). The matrix-vector
    engine decodes the packed widths the layers have (``packed_weight_bits``: 4 for int4 layers, 2 for int2).
    ``postop_lanes``: the post-op chain's lanes; None builds one per column (``cols``), not the bare spec's lean
    default (`hwgen.spec.default_postop_lanes`, ``cols // 4``): a network's pooled and chained layers then never
    wait for the chain (LeNet-5 on 8x8: 9,397 cycles with 8 lanes, 11,920 with 2). ``sparse_mv``: the sparse
    engine beside the matrix-vector engine, with accumulators for the widest fully connected layer in one
    command (``sparse_depth`` = its outputs / the ``rows * cols`` lanes, at most 64)."""
    # Only for the word widths: buffers of 64 x rows x cols bytes are whole words of any width (3x3, 6x6 too).
    probe = AcceleratorSpec(rows=rows, cols=cols, act_type=act_type, weight_type=weight_type, acc_type=acc_type,
                            act_buffer_bytes=64 * rows * cols, weight_buffer_bytes=64 * rows * cols,
                            acc_buffer_bytes=64 * rows * cols, name=name)
    act_word_bytes, acc_word_bytes = probe.act_word_bits // 8 or 1, probe.acc_word_bits // 8
    act_words, acc_words, channels, pool_width = 2, 2, cols, 2
    for index, layer in enumerate(layers):
        p = layer.problem
        c_groups = -(-p.C // rows)
        words = c_groups * p.H * p.W
        if index == 0 and p.R * p.S > 1:     # the first layer may take host-unrolled windows
            words = max(words, -(-p.C * p.R * p.S // rows) * p.E * p.F)
        act_words = max(act_words, words)
        acc_words = max(acc_words, p.E * p.F)
        channels = max(channels, p.M)
        if layer.postops.pool != "none":
            pool_width = max(pool_width, p.F)
    packed = tuple(sorted({getattr(layer, "weight_bits", 8) for layer in layers} - {8}, reverse=True))
    sparse_mv = bool(sparse_mv and mv_engine)
    fc_outputs = max((layer.problem.M for layer in layers if layer.problem.kind == "linear"), default=1)
    sparse_depth = min(64, -(-fc_outputs // (rows * cols)))

    def cap(words):
        return words if max_words is None else min(words, max_words)
    return AcceleratorSpec(
        rows=rows, cols=cols, act_type=act_type, weight_type=weight_type, acc_type=acc_type,
        act_buffer_bytes=buffer_bytes_for(cap(2 * _pow2_at_least(act_words, 64)), probe.act_word_bits),
        weight_buffer_bytes=buffer_bytes_for(512, probe.weight_word_bits),
        acc_buffer_bytes=buffer_bytes_for(cap(_pow2_at_least(acc_words, 64)), probe.acc_word_bits),
        max_out_channels=_pow2_at_least(channels, cols), max_pool_width=_pow2_at_least(pool_width, 2),
        mv_engine=mv_engine, chaining=chaining and rows == cols, packed_weight_bits=packed if mv_engine else (),
        name=name, sparse_mv=sparse_mv, sparse_depth=sparse_depth,
        postop_lanes=cols if postop_lanes is None else postop_lanes)


# The steps -------------------------------------------------------------------------------------------------

def step_import(b):
    from .cast import CastNetwork
    from .graph import FloatNetwork
    from .network import QuantizedNetwork
    model = b.config.model
    if isinstance(model, CastNetwork):
        if model.fmt != b.config.precision:
            raise MappingError(f"{model.name!r} is cast to {model.fmt}; build it with precision={model.fmt!r}, not "
                               f"{b.config.precision!r} (or give the float model)")
        b.network = model
    elif isinstance(model, QuantizedNetwork):
        b.network = model
    elif isinstance(model, FloatNetwork):
        b.float_network = model
    else:
        from .onnx_import import import_onnx
        imported = import_onnx(model, name=b.config.name)
        if isinstance(imported, QuantizedNetwork):
            b.network = imported
        else:
            b.float_network = imported
    if b.config.is_float and isinstance(b.network, QuantizedNetwork):
        raise MappingError(f"precision={b.config.precision!r} casts a float model to {b.config.precision}; "
                           f"{b.network.name!r} comes quantized (a QDQ model or a QuantizedNetwork) and has int8 "
                           f"weights and scales: give the float model, or build it with precision='int8'")
    if b.float_network is not None and b.config.output is not None:
        b.files["graph"] = b.float_network.save(Path(b.config.output) / "graph")
    return b.float_network or b.network


def step_cast(b):
    """The float build's step in place of quantize: weights to the chosen format, biases to fp32
    (`hwgen.compiler.cast`); leaves ``network/`` (a `CastNetwork`)."""
    if b.network is None:
        from .cast import cast
        b.network = cast(b.float_network, b.config.precision)
    if b.config.output is not None:
        b.files["network"] = b.network.save(Path(b.config.output) / "network")
    b.layers = int_layers(b.network)
    return b.network


def step_quantize(b):
    if b.network is None:
        if b.config.calibration is None:
            raise MappingError("a float model needs calibration data to be quantized (hwgen compile --calibrate "
                               "DATA.npy, or calibration= in the API), or give a QDQ model that carries its own "
                               "scales")
        from .quantize import quantize
        b.network = quantize(b.float_network, b.config.calibration, activations=b.config.activations,
                             method=b.config.method, percentile=b.config.percentile,
                             weight_bits=b.config.weight_bits)
    elif b.config.weight_bits != 8:
        raise MappingError(f"weight_bits={b.config.weight_bits!r} picks the precision hwgen quantizes a float model "
                           f"to; {b.network.name!r} comes quantized (a QDQ model or a QuantizedNetwork) and keeps its "
                           f"own weights: quantize it to int4/int2 before export, or give the float model")
    if b.config.sparsity is not None:
        from .prune import prune_network
        b.network = prune_network(b.network, b.config.sparsity)
    if b.config.output is not None:
        b.files["network"] = b.network.save(Path(b.config.output) / "network")
    b.layers = int_layers(b.network)
    return b.network


def step_map(b):
    c = b.config
    name = c.name or b.network.name
    ident = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_") or "network"
    ident = ident if not ident[0].isdigit() else f"n_{ident}"
    if c.is_float:
        # The float datapath is the weight-stationary array's (the matrix-vector engine is integer-only):
        # fully connected layers run on the array too.
        if c.spec is not None and c.spec.float_format != c.precision:
            raise MappingError(f"precision={c.precision!r} but the spec {c.spec.name!r} is built for "
                               f"{c.spec.act_type}: give AcceleratorSpec(act_type={c.precision!r}, weight_type="
                               f"{c.precision!r}, acc_type='fp32', ...) or spec=None to size one")
        types = dict(act_type=c.precision, weight_type=c.precision, acc_type="fp32")
        mv_engine = False
    else:
        if c.spec is not None and c.spec.is_float:
            raise MappingError(f"the spec {c.spec.name!r} is a {c.spec.float_format} accelerator; an int8 network "
                               f"needs integer types (or build with precision={c.spec.float_format!r})")
        types, mv_engine = {}, c.mv_engine
        sparse_engine = (c.sparsity is not None and mv_engine) if c.sparse_engine is None else c.sparse_engine
        if sparse_engine:
            if not mv_engine:
                raise MappingError("the sparse engine sits beside the matrix-vector engine: build with "
                                   "mv_engine=True, or sparse_engine=False")
            types["sparse_mv"] = True
    b.spec = c.spec or size_spec(b.layers, rows=c.array[0], cols=c.array[1], name=ident, mv_engine=mv_engine,
                                 chaining=c.chaining, postop_lanes=c.postop_lanes, **types)
    b.mapped = map_layers(b.spec, b.layers, chain=c.chaining, sparse=c.sparse)
    b.save_json("map.json", {"spec": b.spec.to_dict(), "layers": [m.to_dict() for m in b.mapped]})
    return b.mapped


def step_tile(b):
    b.program_layers = tile_layers(b.spec, b.mapped)
    b.save_json("tiles.json", {"layers": [{"layer": pl.name, "engine": pl.engine_name(), **pl.plan.manifest()}
                                          for pl in b.program_layers]})
    return b.program_layers


def step_schedule(b):
    from ..perf import FeedbackOverflowError
    try:
        b.program = link_layers(b.spec, b.program_layers, batch=b.config.batch, chain=b.config.chaining)
    except FeedbackOverflowError as error:
        raise MappingError(str(error)) from None
    timeline = []
    model = b.program.predict(timeline=timeline)
    b.save_json("program.json", program_document(b.program, model, timeline))
    return b.program


def program_document(program, model, timeline):
    commands = []
    for index, command in enumerate(program.commands()):
        commands.append({"index": index, "layer": command.problem.name, "engine": command.engine,
                         "config": command.config_values(), "config_word": hex(command.config_word())})
    return {"spec": program.spec.to_dict(), "batch": program.batch, "notes": program.notes,
            "model_cycles": model.cycles, "ideal_cycles": program.ideal_cycles(), "macs": model.macs,
            **program.dram_bytes(),
            "layers": program.layer_cycles(), "commands": commands, "timeline": timeline}


DESIGN_TEMPLATE = '''"""{title}

Made by `hwgen compile` ({date}). The accelerator below runs the network in network/ ({network_text}). Edit the spec - array size,
buffers, engines - and run `hwgen run` (or `hwgen plan`, `hwgen generate`) on this file or its folder again.
"""

from pathlib import Path

from hwgen import AcceleratorSpec
from hwgen.compiler.design import NetworkDesign

design = NetworkDesign(
    name={name!r},
    spec=AcceleratorSpec({spec_args}),
    network=Path(__file__).resolve().parent / "network",
    batch={batch},
    chaining={chaining},
    sparse={sparse!r},
)
'''


def spec_arguments(spec):
    fields = ["rows", "cols", "dataflow", "act_type", "weight_type", "acc_type", "act_buffer_bytes",
              "weight_buffer_bytes", "acc_buffer_bytes", "max_out_channels", "max_pool_width", "postops",
              "postop_lanes", "mv_engine", "chaining", "feedback_depth", "packed_weight_bits", "sparse_mv",
              "sparse_depth", "name"]
    parts = []
    for f in fields:
        value = getattr(spec, f)
        value = value.name if hasattr(value, "bits") else value
        parts.append(f"{f}={value!r}")
    return ", ".join(parts)


def step_emit(b):
    if b.config.output is None:
        return None
    out = Path(b.config.output)
    design_path = out / "design.py"
    design_path.write_text(DESIGN_TEMPLATE.format(
        title=f"{b.network.name}: {b.spec.rows}x{b.spec.cols} accelerator ({', '.join(b.spec.engines)})",
        date=time.strftime("%Y-%m-%d"), name=b.spec.name, network_text=(
            f"{b.network.fmt} weights and fp32 biases: `hwgen.compiler.cast.CastNetwork`" if b.config.is_float else
            "int8 weights, biases,\nrequantization multipliers and shifts, scales: `hwgen.compiler.QuantizedNetwork`"), spec_args=spec_arguments(b.spec), batch=b.config.batch,
        chaining=b.config.chaining,
        sparse=b.config.sparse if isinstance(b.config.sparse, str) else list(b.config.sparse)))
    b.files["design"] = design_path
    if b.config.verilog:
        from ..verilog import generate
        started = time.perf_counter()
        verilog = generate(b.spec)
        (out / f"{b.spec.name}.v").write_text(verilog)
        b.files["verilog"] = out / f"{b.spec.name}.v"
        b.seconds["verilog"] = time.perf_counter() - started
    report = report_text(b)
    (out / "report.txt").write_text(report + "\n")
    b.files["report"] = out / "report.txt"
    return design_path


STEP_FUNCTIONS = {"import": step_import, "quantize": step_quantize, "cast": step_cast, "map": step_map,
                  "tile": step_tile,
                  "schedule": step_schedule, "emit": step_emit}


def report_text(b):
    lines = [str(b.network), ""]
    spec = b.spec
    lines.append(f"accelerator {spec.name}: {spec.rows}x{spec.cols} {spec.dataflow}"
                 + (" + matrix-vector engine" if spec.mv_engine else "")
                 + (f" + sparse engine (depth {spec.sparse_depth})" if spec.sparse_mv else "")
                 + (", chaining" if spec.chaining else "")
                 + f"; activation buffer {spec.act_buffer_bytes} B, weight FIFO {spec.weight_buffer_bytes} B, "
                   f"accumulators {spec.acc_buffer_bytes} B")
    if b.program is not None:
        model = b.program.predict()
        lines += [f"program: {len(b.program.commands())} commands, batch {b.program.batch}"]
        lines += [f"  {note}" for note in b.program.notes]
        lines.append(f"{'layer':<10}{'engine':<8}{'cmds':>5}{'input':>10}{'output':>10}{'start':>9}{'end':>9}"
                     f"{'MACs':>11}")
        for row in b.program.layer_cycles():
            engine = {"matrix_vector": "mv", "sparse": "sparse"}.get(row["engine"], "array")
            lines.append(f"{row['layer']:<10}{engine:<8}{row['commands']:>5}{row['source']:>10}{row['dest']:>10}"
                         f"{row['start']:>9}{row['end']:>9}{row['macs']:>11}")
        lines.append(f"whole run: {model.cycles} cycles (model), ideal {b.program.ideal_cycles()} "
                     f"(MACs / {spec.pes} PEs), utilization {model.utilization:.1%}")
        if b.program.has_sparse:
            lines.append("  (the sparse layers counted with every activation nonzero; `hwgen run` counts them for "
                         "each input's nonzero activations)")
        traffic = b.program.dram_bytes()
        lines.append(f"off-chip traffic per input: {traffic['dram_bytes']} bytes (weights, parameters, the input and "
                     f"the output); {traffic['saved_by_chaining']} bytes of intermediate tensors stay on chip "
                     f"(every boundary through memory: {traffic['dram_bytes_unchained']})")
    return "\n".join(lines)


def build(config):
    """Run the steps up to ``config.stop_after``; returns the `Build` (every intermediate on it)."""
    if config.output is not None:
        out = Path(config.output)
        if out.exists() and not out.is_dir():
            raise MappingError(f"the output {out} exists and is not a folder; give a folder (-o DIR)")
        out.mkdir(parents=True, exist_ok=True)
    b = Build(config)
    for step in config.steps:
        started = time.perf_counter()
        STEP_FUNCTIONS[step](b)
        b.seconds[step] = time.perf_counter() - started
        b.done.append(step)
        if step == config.stop_after:
            break
    return b


__all__ += ["step_import", "step_quantize", "step_cast", "step_map", "step_tile", "step_schedule", "step_emit",
            "program_document", "report_text"]


def intermediate_text(b, step):
    """What a step left, as text (`hwgen compile --stop-after STEP` prints it)."""
    if step == "import":
        return str(b.float_network or b.network)
    if step in ("quantize", "cast"):
        return str(b.network)
    if step == "map":
        rows = [f"{m.layer.name:<10}{m.engine:<20}{m.problem.kind:<8}C={m.problem.C} M={m.problem.M} "
                f"{m.problem.E}x{m.problem.F}" for m in b.mapped]
        return f"map on {b.spec.name} ({', '.join(b.spec.engines)}):\n" + "\n".join(rows)
    if step == "tile":
        rows = [f"{pl.name:<10}{pl.engine_name():<20}{len(pl.plan.tiles)} commands, order {pl.plan.order}, "
                f"im2col {pl.plan.im2col}, {pl.plan.bytes_moved['total']} bytes moved" for pl in b.program_layers]
        return "tiles:\n" + "\n".join(rows)
    return report_text(b)


def check_inputs(network, x):
    """Float or int8 inputs ``[N, ...]`` -> int8 samples ``[N, C, H, W]`` for the network (a float array is
    quantized with the network's input scale and zero point)."""
    x = np.asarray(x)
    if x.ndim == len(network.input_layout):
        x = x[None]
    from .cast import CastNetwork
    if isinstance(network, CastNetwork):
        if tuple(x.shape[1:]) != tuple(network.input_layout):
            raise MappingError(f"inputs of shape {x.shape} do not match the network's input "
                               f"{tuple(network.input_layout)} (give [N, {', '.join(map(str, network.input_layout))}])")
        return network.encode_input(x)
    if tuple(x.shape[1:]) not in (tuple(network.input_layout), tuple(network.input_shape)):
        raise MappingError(f"inputs of shape {x.shape} do not match the network's input "
                           f"{tuple(network.input_layout)} (give [N, {', '.join(map(str, network.input_layout))}])")
    if x.dtype.kind == "f":
        x = network.quantize_input(x)
    elif x.dtype.kind in "iu":
        if x.size and (x.min() < -128 or x.max() > 127):
            raise MappingError(f"integer inputs must be int8 values (-128..127), found {int(x.min())}.."
                               f"{int(x.max())}; give float inputs to have them quantized")
    else:
        raise HwgenError(f"inputs must be numbers, not {x.dtype}")
    return x.reshape((len(x),) + tuple(network.input_shape)).astype(np.int64)
