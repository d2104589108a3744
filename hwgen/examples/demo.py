"""The demo (`make demo`): a trained LeNet-5 in, one accelerator out, real handwritten digits through its RTL.

    python -m hwgen.examples.demo [--images 4] [--sim icarus|verilator] [--array 8x8] [-o build/digits]

1. trains the LeNet-5-style CNN of `hwgen.examples.digits` on scikit-learn's bundled digits (seconds, CPU,
   deterministic) and exports it to ONNX;
2. compiles it with `hwgen.compiler.build` - import, quantize (calibrated on training images), map, tile,
   schedule, emit - into a design folder (design file, program, Verilog, report);
3. runs the held-out images through the int8 NumPy network (all of them) and a sample through the RTL with
   cocotb (one program for the whole sample: every layer chained on chip), checking the RTL's outputs against the
   integer network bit for bit and its cycles against the model, per layer;
4. prints the float, int8 NumPy and RTL accuracy side by side, and the per-layer cycles.

The whole run takes about two minutes on two cores with the default sample (more images: ``--images``).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import HwgenError

__all__ = ["main"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hwgen.examples.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4, help="held-out images to run on the RTL (default 4)")
    parser.add_argument("--sim", default="icarus", choices=("icarus", "verilator"))
    parser.add_argument("--array", default="8x8", help="array size ROWSxCOLS (default 8x8)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("-o", "--output", default="build/digits", help="the design folder (default build/digits)")
    fc = parser.add_mutually_exclusive_group()
    fc.add_argument("--int4-fc", dest="fc_bits", action="store_const", const=4, default=8,
                    help="int4 weights on the fully connected layers (packed two to a byte on the matrix-vector "
                    "engine), int8 on the convolutions")
    fc.add_argument("--int2-fc", dest="fc_bits", action="store_const", const=2,
                    help="int2 weights on the fully connected layers (packed four to a byte)")
    parser.add_argument("--precision", default="int8", choices=("int8", "bf16", "fp16"),
                        help="int8 (default), or the float datapath: bf16 / fp16 operands, fp32 accumulation, every "
                             "layer on the array (hwgen compile --precision)")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be at least 1")
    if args.fc_bits != 8 and args.precision != "int8":
        parser.error(f"--int{args.fc_bits}-fc is an int8 build's option; drop it for --precision {args.precision}")
    float_build = args.precision != "int8"

    import onnx

    from ..compiler.build import BuildConfig, build
    from ..compiler.cli import _array
    from ..compiler.design import NetworkDesign
    from . import digits
    from hwgen.sim.runner import run_program

    started = time.perf_counter()
    split = digits.load_digits_split()
    x_train, y_train, x_test, y_test = split
    model = digits.train_lenet_digits(seed=args.seed, split=split)
    trained = time.perf_counter()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    proto = digits.export_onnx(model)
    onnx.save(proto, str(out / "digits.onnx"))
    b = build(BuildConfig(model=str(out / "digits.onnx"), output=out, name="digits",
                          calibration=None if float_build else x_train, precision=args.precision,
                          array=_array(args.array), weight_bits={"linear": args.fc_bits} if args.fc_bits != 8 else 8))
    compiled = time.perf_counter()
    network, program = b.network, b.program
    float_pred = digits.float_predict(model, x_test)
    int_pred = b.predict(x_test)
    engines = "array + matrix-vector engine" if b.spec.mv_engine else f"{args.precision} array"
    print(f"digits: LeNet-5 trained on {len(y_train)} images in {trained - started:.1f} s; compiled to "
          f"{b.spec.rows}x{b.spec.cols} {engines} in {compiled - trained:.1f} s -> {out}/")
    for note in program.notes:
        print(f"  {note}")

    from ..compiler.build import check_inputs
    sample = check_inputs(network, x_test[:args.images])
    rtl_program = NetworkDesign(name="digits", spec=b.spec, network=network).program_for(args.images)
    print(f"running {args.images} held-out images on the RTL ({args.sim}, one program of "
          f"{len(rtl_program.commands())} commands) ...", flush=True)
    result = run_program(rtl_program, list(sample), simulator=args.sim, tag="demo")
    rtl_pred = (np.array([int(np.argmax(rtl_program.output_values(y).reshape(-1))) for y in result.outputs])
                if result.exact else None)

    n, k = len(y_test), args.images
    kind, w = (f"int8/int{args.fc_bits}-FC", 30) if args.fc_bits != 8 else (args.precision, 22)
    print(f"\n{'':<{w}}{'held-out images':>18}{f'RTL sample ({k})':>20}")
    rows = [("float (PyTorch)", float_pred), (f"{kind} (NumPy network)", int_pred)]
    for label, pred in rows:
        print(f"{label:<{w}}{np.mean(pred == y_test):>17.1%}{np.mean(pred[:k] == y_test[:k]):>20.1%}")
    rtl_cell = f"{np.mean(rtl_pred == y_test[:k]):.1%}" if rtl_pred is not None else "WRONG"
    print(f"{kind + ' (RTL)':<{w}}{'-':>18}{rtl_cell:>20}")

    print(f"\n{'layer':<8}{'engine':<8}{'input':>10}{'output':>10}{'last beat':>12}{'model':>9}{'MACs':>9}")
    layers = len(rtl_program.layers)
    for index, pl in enumerate(rtl_program.layers):
        measured = result.layer_ends[index::layers][-1] if result.layer_ends else None
        modelled = result.layer_model_ends[index::layers][-1]
        engine = "mv" if pl.engine == "matrix_vector" else "array"
        print(f"{pl.name:<8}{engine:<8}{pl.source:>10}{pl.dest:>10}{str(measured):>12}{modelled:>9}"
              f"{pl.layer.problem.macs:>9}")
    one = program.predict()
    print(f"one image: {one.cycles} cycles (model; ideal MACs/{b.spec.pes} = {program.ideal_cycles()}); "
          f"{k} images as one program: measured {result.measured_cycles}, model {result.model_cycles}")
    print(f"simulation {result.wall_seconds:.1f} s (build {result.build_seconds:.1f} s); total "
          f"{time.perf_counter() - started:.1f} s")
    ok = result.exact and result.measured_cycles == result.model_cycles and result.layer_ends == result.layer_model_ends
    print(f"RTL bit-exact against the {kind} network on every image, cycles equal to the model on every layer" if ok
          else f"FAILED: {result.report or 'cycles differ from the model'}")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HwgenError as error:
        print(f"hwgen: error: {error}", file=sys.stderr)
        sys.exit(2)
