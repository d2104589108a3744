"""`hwgen compile` (a model in, a design folder out) and `hwgen run` (a compiled network on the RTL)."""

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import HwgenError, MappingError

__all__ = ["add_compile_parsers"]


def _array(text):
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise MappingError(f"--array takes ROWSxCOLS, e.g. 8x8, not {text!r}") from None
    return rows, cols


def _load_npy(path, what):
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{what} {path} does not exist")
    try:
        return np.load(path, allow_pickle=False)     # data files are parsed, never unpickled
    except ValueError as error:
        raise MappingError(f"{what} {path}: not a plain NumPy array file ({error})") from None


def _per_layer(text, value_of, *, whole, each, usage):
    """An option that is one value for every layer or ``NAME=VALUE[,NAME=VALUE...]``: ``value_of(value, where)``
    parses and checks one value (``where`` names it in the error: ``whole``, or ``each`` with the layer's name);
    ``usage`` is the error for a malformed list."""
    if "=" not in text:
        return value_of(text, whole)
    chosen = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise MappingError(usage)
        chosen[name.strip()] = value_of(value, f"{each} {name.strip()!r}")
    return chosen


def _weight_bits(text):
    """``--weight-bits``: ``8``, or ``NAME=BITS[,NAME=BITS...]`` where NAME is a layer or ``linear`` (every fully
    connected layer), e.g. ``linear=4`` or ``linear=2``; BITS is 8, 4 or 2."""
    if text is None:
        return 8

    def bits_of(value, where):
        if value.strip() not in ("8", "4", "2"):
            raise MappingError(f"--weight-bits {text!r}: {where} must be 8, 4 or 2, not {value.strip()!r}")
        return int(value)
    return _per_layer(text, bits_of, whole="the precision", each="the bits of",
                      usage=f"--weight-bits {text!r}: write NAME=BITS[,NAME=BITS...] with NAME a layer or 'linear' "
                            f"(every fully connected layer), e.g. --weight-bits linear=4")


def _sparsity(text):
    """``--sparsity``: one fraction for every layer (``0.9``), or ``NAME=FRACTION[,NAME=FRACTION...]``."""
    if text is None:
        return None

    def fraction(value, where):
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0 <= number <= 1:
            raise MappingError(f"--sparsity {text!r}: {where} must be a fraction from 0 to 1 (the share of zero "
                               f"weights), not {value.strip()!r}")
        return number
    return _per_layer(text, fraction, whole="the target", each="the target of",
                      usage=f"--sparsity {text!r}: write NAME=FRACTION[,NAME=FRACTION...] with NAME a layer, "
                            f"e.g. --sparsity fc1=0.9,fc2=0.8")


def _sparse_layers(text):
    """``--sparse``: ``auto``, ``never`` or ``NAME[,NAME...]``."""
    if text in ("auto", "never"):
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise MappingError(f"--sparse {text!r}: give auto, never or layer names (e.g. --sparse fc1,fc2)")
    return names


def cmd_compile(args):
    from .build import BuildConfig, build, intermediate_text
    model = Path(args.model)
    if not model.is_file():
        raise MappingError(f"no model file {model}: give an ONNX model (.onnx); a PyTorch module goes in through "
                           f"the Python API (hwgen.compiler.from_torch), never as a pickled file")
    if model.suffix.lower() != ".onnx":
        raise MappingError(f"{model}: hwgen reads ONNX models (.onnx); export a PyTorch model with "
                           f"hwgen.compiler.to_onnx or torch.onnx.export first")
    if not args.output:
        raise MappingError("-o/--output must name a folder for the design, program and report")
    if args.precision != "int8":
        for flag, given in (("--calibrate", args.calibrate), ("--weight-bits", args.weight_bits),
                            ("--sparsity", args.sparsity), ("--sparse", args.sparse != "auto"),
                            ("--activations", args.activations != "symmetric"), ("--method", args.method != "minmax")):
            if given:
                raise MappingError(f"{flag} sets up int8 quantization; --precision {args.precision} casts the float "
                                   f"model (no calibration, every layer {args.precision}): drop {flag}")
    calibration = _load_npy(args.calibrate, "--calibrate") if args.calibrate else None
    config = BuildConfig(model=str(model), output=Path(args.output), name=args.name or model.stem,
                         calibration=calibration,
                         method=args.method, percentile=args.percentile, activations=args.activations,
                         array=_array(args.array), mv_engine=not args.no_mv, chaining=not args.no_chain,
                         postop_lanes=args.postop_lanes,
                         batch=args.batch, stop_after=args.stop_after, verilog=not args.no_verilog,
                         weight_bits=_weight_bits(args.weight_bits), precision=args.precision,
                         sparsity=_sparsity(args.sparsity), sparse=_sparse_layers(args.sparse))
    started = time.perf_counter()
    b = build(config)
    print(intermediate_text(b, b.done[-1]))
    print(f"\nsteps: " + ", ".join(f"{step} {b.seconds[step]:.1f} s" for step in b.done)
          + f" ({time.perf_counter() - started:.1f} s)")
    for name, path in b.files.items():
        print(f"  wrote {path}")
    if b.done[-1] == "emit":
        print(f"next: hwgen run {args.output} --inputs X.npy [--labels Y.npy]")
    return 0


def cmd_run(args):
    from ..design import load_design
    from .build import check_inputs
    from .design import NetworkDesign
    from hwgen.sim.runner import run_program
    design = load_design(args.design)
    if not isinstance(design, NetworkDesign):
        raise MappingError(f"{args.design} is a layer design; `hwgen run` runs compiled networks (hwgen compile), "
                           f"`hwgen sim` runs layer designs")
    network = design.network
    inputs = check_inputs(network, _load_npy(args.inputs, "--inputs"))
    labels = _load_npy(args.labels, "--labels").reshape(-1) if args.labels else None
    if args.limit:
        inputs = inputs[:args.limit]
    if labels is not None:
        if len(labels) < len(inputs):
            raise MappingError(f"--labels has {len(labels)} labels for {len(inputs)} inputs")
        labels = labels[:len(inputs)]
    program = design.program_for(len(inputs))
    if not args.json:
        print(f"{design.name}: {len(inputs)} inputs as one program ({len(program.commands())} commands) on "
              f"{args.sim}" + (f", random stalls p={args.stall}" if args.stall else "") + " ...", flush=True)
    result = run_program(program, list(inputs), simulator=args.sim, stall=args.stall, seed=args.seed, tag="run")
    precision = getattr(network, "fmt", "int8")
    reference = [program.reference(x)[-1] for x in inputs]
    reference_top1 = [int(np.argmax(program.output_values(y).reshape(-1))) for y in reference]
    rtl_top1 = ([int(np.argmax(program.output_values(y).reshape(-1))) for y in result.outputs]
                if result.exact else [])
    per_layer = []
    n_layers = len(program.layers)
    for index, pl in enumerate(program.layers):
        ends = result.layer_ends[index::n_layers] if result.layer_ends else []
        model_ends = result.layer_model_ends[index::n_layers]
        per_layer.append({"layer": pl.name, "engine": pl.engine_name(), "input": pl.source, "output": pl.dest,
                          "last_beat_measured": ends, "last_beat_model": model_ends})
    cycles_ok = args.stall > 0 or result.measured_cycles == result.model_cycles
    ok = result.exact and cycles_ok
    summary = {
        "design": design.name, "simulator": args.sim, "inputs": len(inputs), "stall": args.stall,
        "exact": result.exact, "predictions": rtl_top1, "reference_predictions": reference_top1,
        "cycles_measured": result.measured_cycles, "cycles_model": result.model_cycles, "cycles_match": cycles_ok,
        "layers": per_layer, "build_seconds": result.build_seconds, "sim_seconds": result.wall_seconds,
        "report": result.report,
    }
    if labels is not None:
        summary["accuracy_rtl"] = float(np.mean(np.array(rtl_top1) == labels)) if rtl_top1 else None
        summary["accuracy_reference"] = float(np.mean(np.array(reference_top1) == labels))
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0 if ok else 1
    print(f"{'layer':<10}{'engine':<8}{'input':>10}{'output':>10}{'last beat (measured)':>24}{'(model)':>12}")
    for row in per_layer:
        measured = row["last_beat_measured"][-1] if row["last_beat_measured"] else "-"
        engine = {"matrix_vector": "mv", "sparse": "sparse"}.get(row["engine"], "array")
        print(f"{row['layer']:<10}{engine:<8}{row['input']:>10}{row['output']:>10}{str(measured):>24}"
              f"{row['last_beat_model'][-1]:>12}")
    print(f"predictions (RTL): {rtl_top1 if rtl_top1 else 'n/a (not exact)'}")
    if labels is not None:
        acc = summary["accuracy_rtl"]
        print(f"accuracy: RTL {acc:.1%} / {precision} NumPy {summary['accuracy_reference']:.1%} on {len(inputs)} "
              f"inputs" if acc is not None else f"accuracy: {precision} NumPy {summary['accuracy_reference']:.1%}")
    print(f"cycles: measured {result.measured_cycles}, model {result.model_cycles}; build {result.build_seconds:.1f} s, "
          f"simulation {result.wall_seconds:.1f} s")
    what = "integer" if precision == "int8" else f"{precision} (hardware-order) float"
    print((f"bit-exact against the {what} reference network" + ("" if args.stall else ", cycles equal to the model"))
          if ok else f"FAILED: {result.report or 'cycles differ from the model'}")
    return 0 if ok else 1


def add_compile_parsers(sub):
    from .build import FLOAT_STEPS, PRECISIONS, STEPS
    p = sub.add_parser("compile", help="compile an ONNX model into an accelerator and its program (a design folder)",
                       description="import -> quantize -> map -> tile -> schedule -> emit (--precision bf16/fp16: "
                                   "import -> cast -> map -> ...); every step leaves its intermediate in the output "
                                   "folder.")
    p.add_argument("model", help="an ONNX model: float (quantized with --calibrate) or QDQ (keeps its own scales)")
    p.add_argument("-o", "--output", required=True, help="the design folder to write")
    p.add_argument("--array", default="8x8", help="array size ROWSxCOLS (default 8x8)")
    p.add_argument("--no-mv", action="store_true", help="no matrix-vector engine beside the array")
    p.add_argument("--no-chain", action="store_true", help="send every layer's output through `out` (no on-chip chaining)")
    p.add_argument("--postop-lanes", type=int, metavar="N",
                   help="post-op lanes, a divisor of the array's columns (default: one per column; fewer take "
                        "cols/N cycles per output beat behind a FIFO, for less area)")
    p.add_argument("--calibrate", metavar="DATA.npy", help="float inputs [N, ...] to calibrate a float model on")
    p.add_argument("--method", default="minmax", choices=("minmax", "percentile"),
                   help="activation range calibration (default minmax)")
    p.add_argument("--percentile", type=float, default=99.99, help="the percentile of --method percentile")
    p.add_argument("--activations", default="symmetric", choices=("symmetric", "asymmetric"),
                   help="activation quantization: symmetric (zero point 0) or asymmetric (zero points)")
    p.add_argument("--batch", type=int, default=1, help="inputs per program (default 1)")
    p.add_argument("--weight-bits", metavar="SPEC", help="weight precision per layer: 8 (default) or NAME=BITS[,...] "
                   "with NAME a layer or 'linear' for every fully connected layer; BITS 8, 4 or 2 (int4/int2 "
                   "weights run packed two/four to a byte on the matrix-vector engine), e.g. --weight-bits "
                   "linear=4")
    p.add_argument("--sparsity", metavar="SPEC", help="magnitude-prune the quantized weights: a fraction of zero "
                   "weights for every layer (0.9) or NAME=FRACTION[,...]; the sized accelerator then gets the "
                   "sparse engine for pruned fully connected layers")
    p.add_argument("--sparse", default="auto", metavar="WHICH",
                   help="fully connected layers on the sparse engine: auto (default: where the cycle model says "
                        "it is faster even with no zero activation), never, or NAME[,NAME...]")
    p.add_argument("--precision", default="int8", choices=PRECISIONS,
                   help="int8 (default: quantized with --calibrate), or bf16 / fp16: the float datapath (weights "
                        "rounded to nearest even, fp32 accumulation and biases, no calibration; every layer on "
                        "the weight-stationary array, chained on chip)")
    p.add_argument("--stop-after", default="emit", choices=tuple(dict.fromkeys(STEPS + FLOAT_STEPS)),
                   help="end the build after this step and print its intermediate (quantize for int8, cast for "
                        "bf16/fp16)")
    p.add_argument("--name", help="the network's name (default: the model's)")
    p.add_argument("--no-verilog", action="store_true", help="do not write the Verilog in the emit step")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", help="run a compiled network on the RTL against its reference network (int8, "
                                             "or the bit-exact bf16/fp16 one)")
    p.add_argument("design", help="a folder `hwgen compile` wrote (or its design.py)")
    p.add_argument("--inputs", required=True, metavar="X.npy", help="inputs [N, ...]: float (quantized with the "
                                                                    "network's input scale, or rounded to bf16/fp16"
                                                                    " for a float network) or int8")
    p.add_argument("--labels", metavar="Y.npy", help="class labels [N], to report accuracy")
    p.add_argument("--limit", type=int, help="run only the first N inputs")
    p.add_argument("--sim", default="icarus", choices=("icarus", "verilator"))
    p.add_argument("--stall", type=float, default=0.0, help="random valid/ready stall probability per stream and "
                                                           "cycle (0 <= p < 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object: predictions, exact, cycles")
    p.set_defaults(func=cmd_run)
