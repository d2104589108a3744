"""PE utilization of the 8x8 weight-stationary array on a conv layer (C=M=64, 16x16, 3x3, stride 1, pad 1),
measured on the RTL and compared with the cycle model; also the simulators' speed on that run.

    python benchmarks/utilization.py [--sim icarus verilator]

Target: utilization >= 85 %, measured == model. Prints a table and one machine-readable `BENCH {...}` line.
"""

import argparse
import json
import time

from hwgen import AcceleratorSpec, conv2d, default_mapping, recognize
from hwgen.perf import predict_plan
from hwgen.tiling import plan_layer
from hwgen.sim.runner import run_layers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", nargs="+", default=["icarus", "verilator"], choices=["icarus", "verilator"])
    args = parser.parse_args()

    spec = AcceleratorSpec(rows=8, cols=8, act_buffer_bytes=16 * 1024, weight_buffer_bytes=40 * 1024,
                           acc_buffer_bytes=8 * 1024, name="bench_ws8", postop_lanes=8)
    nest = conv2d(name="conv64_16x16_3x3", in_channels=64, out_channels=64, height=16, width=16, kernel=3,
                  padding=1)
    problem = recognize(nest, default_mapping(nest))
    plan = plan_layer(spec, problem)
    model = predict_plan(plan)
    print(f"layer {problem.name}: {model.macs} MACs on {spec.pes} PEs, ideal {model.ideal_cycles} cycles")
    print(f"plan: {len(plan.tiles)} commands ({plan.order}), {plan.bytes_moved['total']} bytes moved; model "
          f"{model.cycles} cycles, utilization {model.utilization:.2%}")
    print(f"{'simulator':<11}{'exact':<7}{'measured':>10}{'model':>10}{'util':>8}{'build s':>9}{'sim s':>8}"
          f"{'cycles/s':>10}")
    records = []
    for simulator in args.sim:
        started = time.perf_counter()
        result = run_layers(spec, [plan], simulator=simulator, tag="bench")
        (layer,) = result.layers
        rate = layer["measured_cycles"] / layer["wall_seconds"]
        print(f"{simulator:<11}{str(layer['exact']):<7}{layer['measured_cycles']:>10}{layer['model_cycles']:>10}"
              f"{layer['utilization']:>8.2%}{result.build_seconds:>9.1f}{layer['wall_seconds']:>8.1f}{rate:>10.0f}")
        records.append({"simulator": simulator, "exact": layer["exact"], "measured_cycles": layer["measured_cycles"],
                        "model_cycles": layer["model_cycles"], "utilization": layer["utilization"],
                        "build_seconds": result.build_seconds, "sim_seconds": layer["wall_seconds"],
                        "cycles_per_second": rate, "total_seconds": time.perf_counter() - started})
    print("BENCH " + json.dumps({"benchmark": "ws8x8_conv_utilization", "macs": model.macs, "pes": spec.pes,
                                 "ideal_cycles": model.ideal_cycles, "model_cycles": model.cycles,
                                 "model_utilization": model.utilization, "runs": records}))


if __name__ == "__main__":
    main()
