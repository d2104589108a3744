"""AlexNet conv1-conv5 on a 16x16 array: our cycle model and ideal cycles per layer, beside SCALE-Sim's
cycles for the same array and dataflow; optionally one layer measured on the RTL with Verilator.

    python benchmarks/alexnet.py                      # model + saved SCALE-Sim figures (benchmarks/results/)
    python benchmarks/alexnet.py --scalesim           # re-run SCALE-Sim side by side (minutes, own venv)
    python benchmarks/alexnet.py --rtl conv3          # also simulate conv3 on the RTL (Verilator)

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
# accumulators: buffer sizes of the order of SCALE-Sim's default scratchpads.
SPEC = AcceleratorSpec(rows=16, cols=16, act_buffer_bytes=256 * 1024, weight_buffer_bytes=16 * 1024,
                       acc_buffer_bytes=64 * 1024, max_out_channels=512, max_pool_width=64, name="alexnet_ws16")
POSTOPS = PostOps(bias=True, requant=True, relu=True)   # int8 out, as the next layer consumes it


# The matrix-vector engine with the MAC count of a 16x16 array: 16 lanes x 16-wide dot products, fed by a
# 256-byte weight word per cycle.
MV_SPEC = AcceleratorSpec(rows=16, cols=16, dataflow="matrix_vector", act_buffer_bytes=64 * 1024,
                          weight_buffer_bytes=64 * 1024, acc_buffer_bytes=4 * 1024, max_out_channels=4096,
                          name="alexnet_mv16")
ALEXNET_FC = (("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000))


def fc_plans():
    from hwgen import linear
    result = []
    for name, k, m in ALEXNET_FC:
        nest = linear(name=name, in_features=k, out_features=m, batch=1)
        result.append(plan_layer(MV_SPEC, recognize(nest, default_mapping(nest, dataflow="matrix_vector")),
                                 POSTOPS))
    return result


def plans():
    result = []
    for layer in ALEXNET_CONV:
        nest = conv2d(name=layer.name, in_channels=layer.C, out_channels=layer.M, height=layer.H, width=layer.W,
                      kernel=(layer.R, layer.S), stride=layer.stride, padding=layer.pad)
        result.append(plan_layer(SPEC, recognize(nest, default_mapping(nest)), POSTOPS))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalesim", action="store_true", help="re-run SCALE-Sim (else use the saved figures)")
    parser.add_argument("--rtl", nargs="*", default=[], metavar="LAYER",
                        help="layers to run on the RTL with Verilator (e.g. conv3)")
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

    print(f"AlexNet conv layers on {SPEC.rows}x{SPEC.cols} weight-stationary; int8 x int8 -> int32, "
          f"post-ops bias+requant+ReLU")
    print(f"{'layer':<7}{'MACs':>12}{'tiles':>6}{'ideal':>10}{'model':>10}{'util':>8}{'SCALE-Sim ws':>14}"
          f"{'util':>8}{'ours/SS':>9}{'SCALE-Sim os':>14}{'util':>8}")
    records = []
    for plan in plans():
        name = plan.problem.name
        est = predict_plan(plan)
        ws, os_ = by_layer.get("ws", {}).get(name), by_layer.get("os", {}).get(name)
        ws_cycles = ws["cycles"] if ws else None
        os_cycles = os_["cycles"] if os_ else None
        ratio = est.cycles / ws_cycles if ws_cycles else float("nan")
        print(f"{name:<7}{est.macs:>12}{len(plan.tiles):>6}{est.ideal_cycles:>10}{est.cycles:>10}"
              f"{est.utilization:>8.1%}{ws_cycles or '-':>14}"
              f"{(ws['overall_util_pct'] / 100 if ws else float('nan')):>8.1%}{ratio:>9.3f}"
              f"{os_cycles or '-':>14}{(os_['overall_util_pct'] / 100 if os_ else float('nan')):>8.1%}")
        records.append({"layer": name, "macs": est.macs, "tiles": len(plan.tiles), "ideal_cycles": est.ideal_cycles,
                        "model_cycles": est.cycles, "utilization": est.utilization,
                        "bytes_moved": plan.bytes_moved, "scalesim_ws_cycles": ws_cycles,
                        "scalesim_os_cycles": os_cycles})

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
    if args.rtl:
        from sim.runner import run_layers
        for plan in plans():
            if plan.problem.name not in args.rtl:
                continue
            started = time.perf_counter()
            result = run_layers(SPEC, [plan], simulator=args.sim, tag="alexnet")
            (layer,) = result.layers
            rate = layer["measured_cycles"] / layer["wall_seconds"] if layer["measured_cycles"] else 0
            print(f"RTL {plan.problem.name} on {args.sim}: {'exact' if layer['exact'] else 'WRONG'}, measured "
                  f"{layer['measured_cycles']} cycles (model {layer['model_cycles']}), build "
                  f"{result.build_seconds:.0f} s, simulation {layer['wall_seconds']:.0f} s = {rate:.0f} cycles/s")
            rtl.append({"layer": plan.problem.name, "simulator": args.sim, "exact": layer["exact"],
                        "measured_cycles": layer["measured_cycles"], "model_cycles": layer["model_cycles"],
                        "build_seconds": result.build_seconds, "sim_seconds": layer["wall_seconds"],
                        "cycles_per_second": rate, "total_seconds": time.perf_counter() - started})
    print("BENCH " + json.dumps({"benchmark": "alexnet_16x16", "spec": SPEC.to_dict(), "layers": records,
                                 "fc_spec": MV_SPEC.to_dict(), "fc_layers": fc_records, "rtl": rtl}))


if __name__ == "__main__":
    main()
