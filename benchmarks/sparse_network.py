"""Pruned fully connected layers of a compiled network on the sparse engine (issue 15): a trained LeNet-5 on
scikit-learn's digits, its FC layers but the classifier magnitude-pruned after quantization, compiled onto one 8x8 accelerator that
holds the weight-stationary array, the matrix-vector engine and the sparse engine (`hwgen compile --sparsity`),
against the same network on the dense engines.

    python benchmarks/sparse_network.py                 # sparsity sweep: accuracy, cycles (model) per input
    python benchmarks/sparse_network.py --rtl 3         # also 3 held-out images on the RTL (Verilator)

Per sparsity: the pruned int8 network's accuracy on the 359 held-out images (the NumPy reference the hardware
matches bit for bit), the program's layers and engines, and the model's cycles of a whole inference - the
sparse layers' commands made for each image's nonzero activations (`Program.bind`), so the cycles vary by image:
mean, min and max over the first ``--images`` held-out images - against the dense program (``sparse="never"``).
Needs the `examples` extra (PyTorch, scikit-learn). Prints tables and one `BENCH {...}` JSON line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.compiler.build import BuildConfig, build, check_inputs   # noqa: E402
from hwgen.compiler.program import compile_program   # noqa: E402

SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)


def fc_targets(network, sparsity):
    """Every fully connected layer but the classifier (pruning LeNet's 840-weight fc3 by 90 % costs 25 points of
    accuracy; fc1 and fc2 hold 58,080 of the 59,000 FC weights)."""
    linear = [layer.name for layer in network.layers if layer.kind == "linear"]
    return {name: sparsity for name in linear[:-1]}


def lenet_rows(args):
    from hwgen.examples import digits
    started = time.perf_counter()
    split = digits.load_digits_split()
    x_train, _, x_test, y_test = split
    model = digits.export_onnx(digits.train_lenet_digits(seed=0, split=split))
    print(f"trained LeNet-5 on digits in {time.perf_counter() - started:.1f} s")
    base = build(BuildConfig(model=model, calibration=x_train, stop_after="quantize")).network
    rows, rtl = [], []
    print(f"\n{'FC sparsity':>11}{'accuracy':>10}{'engines (fc1 fc2 fc3)':>24}{'dense cycles':>14}"
          f"{'sparse mean':>13}{'min':>7}{'max':>7}{'speed-up':>10}{'FC dense':>10}{'FC sparse':>11}")
    for sparsity in SPARSITIES:
        b = build(BuildConfig(model=base, sparsity=fc_targets(base, sparsity) if sparsity else None,
                              sparse_engine=True, stop_after="schedule"))
        accuracy = digits.accuracy(b.predict(x_test), y_test)
        program, dense = b.program, compile_program(b.spec, b.layers, sparse="never")
        images = check_inputs(b.network, x_test[:args.images])
        cycles, fc_cycles = [], []
        for x in images:
            bound = program.bind([x])
            cycles.append(bound.predict().cycles)
            spans = bound.layer_cycles()
            fc_cycles.append(spans[-1]["end"] - spans[1]["end"])      # from conv2's last beat to the end
        spans = dense.layer_cycles()
        dense_fc = spans[-1]["end"] - spans[1]["end"]
        dense_cycles = dense.predict().cycles
        engines = [pl.engine_name() for pl in program.layers if pl.layer.kind == "linear"]
        short = " ".join({"matrix_vector": "mv", "sparse": "sparse"}.get(e, e) for e in engines)
        mean, mean_fc = float(np.mean(cycles)), float(np.mean(fc_cycles))
        print(f"{sparsity:>11.0%}{accuracy:>10.1%}{short:>24}{dense_cycles:>14,}{mean:>13,.0f}{min(cycles):>7,}"
              f"{max(cycles):>7,}{dense_cycles / mean:>9.3f}x{dense_fc:>10,}{mean_fc:>11,.0f}")
        rows.append({"network": "lenet5_digits", "fc_sparsity": sparsity, "accuracy": round(accuracy, 4),
                     "engines": engines, "dense_cycles": dense_cycles, "cycles_model_mean": round(mean, 1),
                     "cycles_model_min": min(cycles), "cycles_model_max": max(cycles),
                     "fc_dense_cycles": dense_fc, "fc_cycles_mean": round(mean_fc, 1), "images": len(images),
                     "spec": b.spec.name, "sparse_depth": b.spec.sparse_depth})
        if args.rtl and sparsity == max(SPARSITIES):
            from hwgen.sim.runner import run_program
            for n, x in enumerate(images[:args.rtl]):
                result = run_program(program, [x], simulator=args.sim, tag=f"sparse_lenet{n}")
                print(f"  RTL image {n} on {args.sim}: {'exact' if result.exact else 'WRONG'}, measured "
                      f"{result.measured_cycles} cycles, model {result.model_cycles} (simulation "
                      f"{result.wall_seconds:.0f} s)")
                rtl.append({"image": n, "exact": result.exact, "cycles_measured": result.measured_cycles,
                            "cycles_model": result.model_cycles, "simulator": args.sim})
    return rows, rtl


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="held-out images whose cycles are averaged")
    parser.add_argument("--rtl", type=int, default=0, metavar="N", help="run N images of the sparsest program "
                                                                        "on the RTL")
    parser.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    args = parser.parse_args(argv)
    rows, rtl = lenet_rows(args)
    print("BENCH " + json.dumps({"benchmark": "sparse_network", "rows": rows, "rtl": rtl}))
    return 0 if all(r["exact"] and r["cycles_measured"] == r["cycles_model"] for r in rtl) else 1


if __name__ == "__main__":
    sys.exit(main())
