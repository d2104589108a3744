"""AlexNet conv1-conv5 on a 16x16 array, weight- and output-stationary: our cycle model and ideal cycles per
layer, beside SCALE-Sim's cycles for the same array and dataflow; optionally layers measured on the RTL with
Verilator.

    python benchmarks/alexnet.py                      # model + saved SCALE-Sim figures (benchmarks/results/)
    python benchmarks/alexnet.py --scalesim           # re-run SCALE-Sim side by side (minutes, own venv)
    python benchmarks/alexnet.py --rtl conv3          # also simulate conv3 on the RTL (Verilator)
    python benchmarks/alexnet.py --rtl-os conv3       # the same on the output-stationary RTL

Targets (issue 3): utilization >= 95 % on conv2-conv5 and fewer cycles than SCALE-Sim on every layer. Prints a
table and one machine-readable `BENCH {...}` line.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scalesim import ALEXNET_CONV, load_results, run_alexnet   # noqa: E402  (benchmarks/scalesim.py)

from hwgen import AcceleratorSpec, PostOps, conv2d, default_mapping, recognize   # noqa: E402
from hwgen.perf import predict_plan   # noqa: E402
from hwgen.tiling import plan_layer   # noqa: E402

# A 16x16 int8 array with 256 KiB of activations (two 128 KiB banks), a 16 KiB weight FIFO and 64 KiB of
# accumulators: buffer sizes of the order of SCALE-Sim's default scratchpads; a post-op lane per column (a
# network's chain, `hwgen.compiler.build.size_spec`).
SPEC = AcceleratorSpec(rows=16, cols=16, act_buffer_bytes=256 * 1024, weight_buffer_bytes=16 * 1024,
                       acc_buffer_bytes=64 * 1024, max_out_channels=512, max_pool_width=64, name="alexnet_ws16",
                       postop_lanes=16)
# The output-stationary array with the same activation budget (the accumulators live in the PEs; no
# accumulator buffer is used).
OS_SPEC = AcceleratorSpec(rows=16, cols=16, dataflow="output_stationary", act_buffer_bytes=256 * 1024,
                          weight_buffer_bytes=16 * 1024, acc_buffer_bytes=1024, max_out_channels=512,
                          max_pool_width=64, name="alexnet_os16")
POSTOPS = PostOps(bias=True, requant=True, relu=True)   # int8 out, as the next layer consumes it


# The matrix-vector engine with the MAC count of a 16x16 array: 16 lanes x 16-wide dot products, fed by a
# 256-byte weight word per cycle.
MV_SPEC = AcceleratorSpec(rows=16, cols=16, dataflow="matrix_vector", act_buffer_bytes=64 * 1024,
                          weight_buffer_bytes=64 * 1024, acc_buffer_bytes=4 * 1024, max_out_channels=4096,
                          name="alexnet_mv16", postop_lanes=16)
ALEXNET_FC = (("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000))


def fc_plans():
    from hwgen import linear
    result = []
    for name, k, m in ALEXNET_FC:
        nest = linear(name=name, in_features=k, out_features=m, batch=1)
        result.append(plan_layer(MV_SPEC, recognize(nest, default_mapping(nest, dataflow="matrix_vector")),
                                 POSTOPS))
    return result


def plans(spec=SPEC):
    result = []
    for layer in ALEXNET_CONV:
        nest = conv2d(name=layer.name, in_channels=layer.C, out_channels=layer.M, height=layer.H, width=layer.W,
                      kernel=(layer.R, layer.S), stride=layer.stride, padding=layer.pad)
        mapping = default_mapping(nest, dataflow=spec.dataflow)
        result.append(plan_layer(spec, recognize(nest, mapping), POSTOPS))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalesim", action="store_true", help="re-run SCALE-Sim (else use the saved figures)")
    parser.add_argument("--rtl", nargs="*", default=[], metavar="LAYER",
                        help="layers to run on the RTL with Verilator (e.g. conv3)")
    parser.add_argument("--rtl-os", nargs="*", default=[], metavar="LAYER",
                        help="layers to run on the output-stationary RTL with Verilator")
    parser.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    args = parser.parse_args()

    if args.scalesim:
        scalesim = run_alexnet(rows=16, cols=16)
    else:
        try:
            scalesim = load_results()
        except FileNotFoundError:
            print("(no saved SCALE-Sim figures: run with --scalesim)")
            scalesim = {}
    by_layer = {df: {layer["name"]: layer for layer in runs}
                for df, runs in scalesim.get("dataflows", {}).items()}

    print(f"AlexNet conv layers on {SPEC.rows}x{SPEC.cols}, both dataflows; int8 x int8 -> int32, post-ops "
          f"bias+requant+ReLU; SCALE-Sim 3.0.0 for the same array and dataflow")
    print(f"{'':<7}{'':>12}{'':>10}{'-- weight-stationary ----------------':>38}"
          f"{'-- output-stationary ----------------':>38}")
    print(f"{'layer':<7}{'MACs':>12}{'ideal':>10}{'hwgen':>10}{'util':>7}{'SCALE-Sim':>11}{'ratio':>7}"
          f"{'':>3}{'hwgen':>10}{'util':>7}{'SCALE-Sim':>11}{'ratio':>7}")
    records = []
    for ws_plan, os_plan in zip(plans(SPEC), plans(OS_SPEC)):
        name = ws_plan.problem.name
        record = {"layer": name, "macs": ws_plan.macs}
        cells = []
        for key, plan in (("ws", ws_plan), ("os", os_plan)):
            est = predict_plan(plan)
            theirs = by_layer.get(key, {}).get(name)
            their_cycles = theirs["cycles"] if theirs else None
            ratio = est.cycles / their_cycles if their_cycles else float("nan")
            record.update({"ideal_cycles": est.ideal_cycles, f"{key}_model_cycles": est.cycles,
                           f"{key}_utilization": est.utilization, f"{key}_commands": len(plan.tiles),
                           f"{key}_bytes_moved": plan.bytes_moved, f"scalesim_{key}_cycles": their_cycles,
                           f"scalesim_{key}_utilization": theirs["overall_util_pct"] / 100 if theirs else None})
            cells.append(f"{est.cycles:>10}{est.utilization:>7.1%}{their_cycles or '-':>11}{ratio:>7.3f}")
        print(f"{name:<7}{ws_plan.macs:>12}{record['ideal_cycles']:>10}{cells[0]}{'':>3}{cells[1]}")
        records.append(record)
    print("ratio = hwgen cycles / SCALE-Sim cycles (below 1: fewer cycles)")

    print(f"\nAlexNet FC layers at batch 1 on the matrix-vector engine ({MV_SPEC.cols} lanes x {MV_SPEC.rows}, "
          f"{MV_SPEC.pes} MACs, weight port {MV_SPEC.weight_word_bits // 8} bytes/cycle)")
    print(f"{'layer':<7}{'weights B':>12}{'roof cyc':>10}{'model':>10}{'of roof':>9}{'16x16 WS model':>16}")
    fc_records = []
    for plan in fc_plans():
        est = predict_plan(plan)
        # The roof: the layer's real weights (no padding lanes) through the weight port, one word per cycle.
        real_bytes = plan.problem.M * plan.problem.C * MV_SPEC.weight_type.bits // 8
        roof = -(-real_bytes // (MV_SPEC.weight_word_bits // 8))
        nest_ws = plan.problem
        ws_cycles = predict_plan(plan_layer(SPEC, nest_ws, POSTOPS)).cycles
        print(f"{plan.problem.name:<7}{real_bytes:>12}{roof:>10}{est.cycles:>10}"
              f"{roof / est.cycles:>9.1%}{ws_cycles:>16}")
        fc_records.append({"layer": plan.problem.name, "weight_bytes": real_bytes,
                           "roof_cycles": roof, "model_cycles": est.cycles, "fraction_of_roof": roof / est.cycles,
                           "systolic_ws_model_cycles": ws_cycles})

    rtl = []
    from hwgen.sim.runner import run_layers
    for spec, wanted in ((SPEC, args.rtl), (OS_SPEC, args.rtl_os)):
        for plan in plans(spec) if wanted else ():
            if plan.problem.name not in wanted:
                continue
            started = time.perf_counter()
            result = run_layers(spec, [plan], simulator=args.sim, tag=f"alexnet_{spec.dataflow}")
            (layer,) = result.layers
            rate = layer["measured_cycles"] / layer["wall_seconds"] if layer["measured_cycles"] else 0
            print(f"RTL {plan.problem.name} ({spec.dataflow}) on {args.sim}: {'exact' if layer['exact'] else 'WRONG'}, measured "
                  f"{layer['measured_cycles']} cycles (model {layer['model_cycles']}), build "
                  f"{result.build_seconds:.0f} s, simulation {layer['wall_seconds']:.0f} s = {rate:.0f} cycles/s")
            rtl.append({"layer": plan.problem.name, "dataflow": spec.dataflow, "simulator": args.sim,
                        "exact": layer["exact"],
                        "measured_cycles": layer["measured_cycles"], "model_cycles": layer["model_cycles"],
                        "build_seconds": result.build_seconds, "sim_seconds": layer["wall_seconds"],
                        "cycles_per_second": rate, "total_seconds": time.perf_counter() - started})
    print("BENCH " + json.dumps({"benchmark": "alexnet_16x16", "spec": SPEC.to_dict(),
                                 "os_spec": OS_SPEC.to_dict(), "layers": records,
                                 "fc_spec": MV_SPEC.to_dict(), "fc_layers": fc_records, "rtl": rtl}))


if __name__ == "__main__":
    main()
