"""Whole networks on one accelerator holding the weight-stationary array and the matrix-vector engine: the cycle
model of the whole run (first command to last output beat), per layer, against the ideal; optionally measured
on the RTL.

    python benchmarks/networks.py                         # LeNet-5 on 8x8, AlexNet on 16x16: model tables
    python benchmarks/networks.py --rtl lenet             # LeNet-5's whole program on the RTL (Verilator)
    python benchmarks/networks.py --rtl alexnet:conv3 alexnet:fc8 --sim verilator
    python benchmarks/networks.py --batch 4               # batches run as one program

Targets (issue 11): LeNet-5 at batch 1 on one 8x8 accelerator with both engines <= 7,600 cycles (ideal
MACs/64 = 6,510), measured on the RTL = model; AlexNet conv1-5 + FC6-8 at batch 1 on one 16x16 accelerator
within 5 % of the sum of per-layer ideals (conv MACs/256 + FC weight bytes/256); conv3 and FC8 measured = model.

Cycles do not depend on the values: the weights are random int8 (fixed seed); the digits demo
(`hwgen.examples.digits`) runs a trained LeNet for accuracy. Prints tables and one `BENCH {...}` JSON line per
network.
"""

import argparse
import json
import sys
import time
from math import ceil
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.compiler.program import compile_program   # noqa: E402
from hwgen.compiler.zoo import alexnet, conv, fc, lenet   # noqa: E402,F401  (the networks live in the package)
from hwgen.spec import AcceleratorSpec   # noqa: E402

# Both with one post-op lane per column, as `hwgen compile` builds a network's accelerator (`size_spec`).
LENET_SPEC = AcceleratorSpec(rows=8, cols=8, mv_engine=True, chaining=True, act_buffer_bytes=64 * 1024,
                             weight_buffer_bytes=4 * 1024, acc_buffer_bytes=32 * 784, max_out_channels=128,
                             max_pool_width=28, name="lenet_net8", postop_lanes=8)
# AlexNet: 256 KiB of activations (two banks), the 16x16 array's buffers of benchmarks/alexnet.py.
ALEXNET_SPEC = AcceleratorSpec(rows=16, cols=16, mv_engine=True, chaining=True, act_buffer_bytes=256 * 1024,
                               weight_buffer_bytes=16 * 1024, acc_buffer_bytes=64 * 1024, max_out_channels=4096,
                               max_pool_width=64, name="alexnet_net16", postop_lanes=16)


def ideal_cycles(spec, layers, batch):
    """Per layer: convolutions MACs / PEs, fully connected layers their weight bytes / the weight port's bytes
    per cycle (they are bandwidth bound at batch 1: each weight is used once)."""
    rows = []
    for layer in layers:
        p = layer.problem
        if p.kind == "linear":
            rows.append(batch * ceil(p.M * p.C * spec.weight_type.bits / spec.mv_weight_word_bits))
        else:
            rows.append(batch * ceil(p.macs / spec.pes))
    return rows


def report(name, spec, layers, *, batch, rtl_layers, simulator):
    started = time.perf_counter()
    program = compile_program(spec, layers, batch=batch)
    compile_seconds = time.perf_counter() - started
    model = program.predict()
    per_layer = program.layer_cycles()
    ideals = ideal_cycles(spec, layers, 1)
    print(f"\n{name}: {spec.rows}x{spec.cols} weight-stationary array + {spec.cols}x{spec.rows} matrix-vector engine, "
          f"batch {batch}, {len(program.commands())} commands (compiled in {compile_seconds:.1f} s)")
    for note in program.notes:
        print(f"  {note}")
    print(f"{'layer':<7}{'engine':<10}{'cmds':>5}{'in':>9}{'out':>9}{'start':>10}{'end':>10}{'cycles':>10}"
          f"{'ideal':>10}{'of ideal':>9}")
    rows, previous_end = [], 0
    for row, ideal in zip(per_layer, ideals):
        span = row["end"] - previous_end     # this layer's share of the run: from the previous layer's last beat
        previous_end = row["end"]
        engine = "array" if row["engine"] == "weight_stationary" else "mv"
        print(f"{row['layer']:<7}{engine:<10}{row['commands']:>5}{row['source']:>9}{row['dest']:>9}"
              f"{row['start']:>10}{row['end']:>10}{span:>10}{ideal:>10}{ideal / span:>9.1%}")
        rows.append({**row, "span_cycles": span, "ideal_cycles": ideal})
    ideal_total = batch * sum(ideals)
    print(f"whole network: model {model.cycles} cycles, ideal {ideal_total} ({ideal_total / model.cycles:.1%} of "
          f"ideal; MACs/PEs alone {program.ideal_cycles()})")
    measured = {}
    if rtl_layers:
        from hwgen.sim.runner import run_program
        rng = np.random.default_rng(1)
        for wanted in rtl_layers:
            if wanted == "all":
                part, part_layers = program, layers
            else:
                part_layers = [layer for layer in layers if layer.name == wanted]
                if not part_layers:
                    raise SystemExit(f"{name} has no layer {wanted!r}: {[layer.name for layer in layers]}")
                part = compile_program(spec, part_layers, batch=1)
            inputs = [rng.integers(-128, 128, part_layers[0].in_shape) for _ in range(part.batch)]
            t0 = time.perf_counter()
            result = run_program(part, inputs, simulator=simulator, tag=f"{name}_{wanted}")
            rate = result.measured_cycles / result.wall_seconds if result.measured_cycles else 0
            print(f"RTL {name} {wanted} on {simulator}: {'exact' if result.exact else 'WRONG'}, measured "
                  f"{result.measured_cycles} cycles (model {result.model_cycles}), build {result.build_seconds:.0f} s, "
                  f"simulation {result.wall_seconds:.0f} s ({rate:.0f} cycles/s)")
            measured[wanted] = {"exact": result.exact, "cycles_measured": result.measured_cycles,
                                "cycles_model": result.model_cycles, "layer_ends_measured": result.layer_ends,
                                "layer_ends_model": result.layer_model_ends, "simulator": simulator,
                                "build_seconds": result.build_seconds, "sim_seconds": result.wall_seconds,
                                "total_seconds": time.perf_counter() - t0}
    bench = {"network": name, "array": f"{spec.rows}x{spec.cols}", "engines": list(spec.engines), "batch": batch,
             "cycles_model": model.cycles,
             "cycles_measured": measured.get("all", {}).get("cycles_measured"),
             "ideal_cycles": ideal_total, "macs": model.macs, "layers": rows, "notes": program.notes,
             "rtl": measured, "spec": spec.to_dict()}
    print("BENCH " + json.dumps(bench))
    return bench


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", nargs="*", default=["lenet", "alexnet"], choices=["lenet", "alexnet"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rtl", nargs="*", default=[], metavar="NET[:LAYER]",
                        help="run on the RTL: 'lenet' (the whole program) or 'alexnet:conv3' (one layer)")
    parser.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    args = parser.parse_args()
    networks = {"lenet": (LENET_SPEC, lenet()), "alexnet": (ALEXNET_SPEC, alexnet())}
    for name in args.network:
        spec, layers = networks[name]
        wanted = [item.split(":", 1)[1] if ":" in item else "all" for item in args.rtl
                  if item.split(":", 1)[0] == name]
        report(name, spec, layers, batch=args.batch, rtl_layers=wanted, simulator=args.sim)


if __name__ == "__main__":
    main()
