"""Fewer bits, skipped zeros, and joules (issue 15): the sparse matrix-vector mode against the dense engine of the
same multiplier count on AlexNet FC6 (9216 -> 4096, batch 1), with energy split by level (`hwgen.energy`), the
crossover sparsity, and stochastic rounding's mean error beside round-to-nearest.

    python benchmarks/precision_energy.py            # tables + one `BENCH {...}` JSON line (about a minute)
    python benchmarks/precision_energy.py --quick    # fewer sparsity points for the crossover

Cycles are the exact cycle models: `hwgen.perf.predict_plan` for the dense matrix-vector engine, `hwgen.sparse`
for the sparse one (from the sparsity pattern; both equal the RTL's on the cocotb tests, on scaled-down shapes).
Weights: i.i.d. int8 magnitude-pruned to the target (`hwgen.sparse.magnitude_prune`); activations: post-ReLU
int8 with the given fraction of zeros.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.energy import EnergyTable, layer_energy   # noqa: E402
from hwgen.perf import predict_plan   # noqa: E402
from hwgen.postops import PostOps, QuantParams, apply   # noqa: E402
from hwgen.problem import ConvProblem   # noqa: E402
from hwgen.sparse import magnitude_prune   # noqa: E402
from hwgen.spec import AcceleratorSpec   # noqa: E402
from hwgen.tiling import plan_layer, plan_sparse_layer   # noqa: E402

M, K = 4096, 9216
# One accelerator: the dense matrix-vector engine (8x8 = 64 multipliers), which also takes packed int4 weights,
# and the sparse engine beside it with the same 64 multipliers.
SPEC = AcceleratorSpec(rows=8, cols=8, dataflow="matrix_vector", act_buffer_bytes=2 * K, weight_buffer_bytes=2048,
                       acc_buffer_bytes=256, max_out_channels=M, sparse_mv=True, sparse_depth=64, packed_int4=True,
                       name="fc6_mv8x8", postop_lanes=8)
POSTOPS = PostOps(bias=True, requant=True, relu=True)


def fc(name):
    return ConvProblem(name, "linear", C=K, H=1, W=1, M=M, E=1, F=1, R=1, S=1, act_axes=(1, None, 0),
                       out_axes=(1, None, 0), act_shape=(1, K), weight_shape=(M, K), out_shape=(1, M))


def operands(w_sparsity, a_sparsity, seed=15):
    rng = np.random.default_rng(seed)
    weight = np.clip(np.rint(rng.normal(0, 30, (M, K)).astype(np.float32)), -127, 127).astype(np.int8)
    weight = magnitude_prune(weight, w_sparsity) if w_sparsity else weight
    x = rng.integers(1, 128, K)
    x[rng.permutation(K)[:int(round(a_sparsity * K))]] = 0
    return weight, x


def split(e):
    return {"dram": round(e["dram_pj"]), "sram": round(e["sram_pj"]), "compute": round(e["compute_pj"]),
            "total": round(e["total_pj"])}


def crossover(points, key):
    """Linear interpolation of the weight sparsity where ``key`` (sparse / dense cycles) crosses 1."""
    for (s0, r0), (s1, r1) in zip(points, points[1:]):
        if r0[key] >= 1 > r1[key]:
            return s0 + (r0[key] - 1) / (r0[key] - r1[key]) * (s1 - s0)
    return 0.0 if points[0][1][key] < 1 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    started = time.time()
    table = EnergyTable.load()
    rows = []

    dense_plan = plan_layer(SPEC, fc("fc6"), POSTOPS)
    dense_cycles = predict_plan(dense_plan).cycles
    rows.append({"layer": "alexnet_fc6", "mode": "int8 dense M×V", "multipliers": SPEC.pes,
                 "cycles_model": dense_cycles, "energy_pj": split(layer_energy(dense_plan, table))})
    int4_plan = plan_layer(SPEC, fc("fc6"), POSTOPS, packed_int4=True)
    rows.append({"layer": "alexnet_fc6", "mode": "int4-packed dense M×V", "multipliers": SPEC.pes,
                 "cycles_model": predict_plan(int4_plan).cycles, "energy_pj": split(layer_energy(int4_plan, table))})

    for w_s, a_s in ((0.9, 0.5), (0.9, 0.0), (0.5, 0.5)):
        weight, x = operands(w_s, a_s)
        plan = plan_sparse_layer(SPEC, fc("fc6"), POSTOPS, weight=weight, x=x, pack=False)
        cycles = predict_plan(plan).cycles
        rows.append({"layer": "alexnet_fc6", "mode": f"int8 sparse M×V w{int(w_s * 100)}% a{int(a_s * 100)}%",
                     "multipliers": SPEC.pes, "cycles_model": cycles, "dense_cycles": plan.dense_cycles,
                     "speedup": round(plan.dense_cycles / cycles, 2),
                     "energy_pj": split(layer_energy(plan, table)),
                     "weight_zeros": round(float(np.mean(weight == 0)), 4), "act_zeros": round(float(np.mean(x == 0)), 4)})

    # Crossover: sparse / dense cycles over the weight sparsity, compute-bound (a stream word per cycle) and
    # bandwidth-bound (the stream carries the dense engine's weight bits per cycle; a sparse word is wider).
    widen = SPEC.sparse_word_bits / SPEC.mv_weight_word_bits
    grid = (0.0, 0.25, 0.5, 0.75, 0.9) if args.quick else (0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.95)
    sweep = {0.0: [], 0.5: []}
    for w_s in grid:
        for a_s in sweep:
            weight, x = operands(w_s, a_s)
            plan = plan_sparse_layer(SPEC, fc("fc6"), POSTOPS, weight=weight, x=x, pack=False)
            cycles = predict_plan(plan).cycles
            words = plan.commands[0].sparse_words
            bandwidth = cycles + int(np.ceil(words * widen)) - words
            sweep[a_s].append((w_s, {"compute": cycles / dense_cycles, "bandwidth": bandwidth / dense_cycles}))
    cross = {f"act_zeros_{int(a_s * 100)}": {key: (None if crossover(points, key) is None else
                                                   round(crossover(points, key), 3))
                                             for key in ("compute", "bandwidth")}
             for a_s, points in sweep.items()}

    # Stochastic rounding: every value k + 1/4 (requantization by 1/4): mean error of each rounding mode.
    rng = np.random.default_rng(1)
    acc = 4 * rng.integers(-30, 30, size=(64, 40, 40)) + 1
    params = QuantParams(multiplier=np.ones(64, dtype=np.int64), shift=np.full(64, 2))
    exact = acc / 4
    nearest = float((apply(acc, params, PostOps(requant=True)) - exact).mean())
    stochastic = float((apply(acc, params, PostOps(requant=True, rounding="stochastic"), seed=99, cols=8)
                        - exact).mean())

    print(f"AlexNet FC6 ({K} -> {M}, batch 1) on {SPEC.rows}x{SPEC.cols} = {SPEC.pes} multipliers "
          f"(energy: {table.source.split(',')[0]}, pJ)")
    print(f"{'mode':34} {'cycles':>10} {'dense':>10} {'speedup':>8} {'DRAM pJ':>14} {'SRAM pJ':>12} "
          f"{'compute pJ':>11} {'total pJ':>14}")
    for r in rows:
        e = r["energy_pj"]
        print(f"{r['mode']:34} {r['cycles_model']:>10} {r.get('dense_cycles', ''):>10} {r.get('speedup', ''):>8} "
              f"{e['dram']:>14} {e['sram']:>12} {e['compute']:>11} {e['total']:>14}")
    print("\nsparse / dense cycles over the weight sparsity (compute-bound | bandwidth-bound: same stream bits "
          f"per cycle, a sparse word is {widen:.2f}x a dense one)")
    for a_s, points in sweep.items():
        print(f"  {int(a_s * 100):>2}% zero activations: " + "  ".join(
            f"{int(w * 100)}%:{r['compute']:.3f}|{r['bandwidth']:.3f}" for w, r in points))
    for key, value in cross.items():
        print(f"  crossover ({key}): compute-bound {value['compute']}, bandwidth-bound {value['bandwidth']} "
              f"(weight sparsity below which dense is faster)")
    print(f"\nstochastic rounding, 102,400 values k + 1/4: mean error nearest {nearest:+.4f}, "
          f"stochastic {stochastic:+.5f} (bound 0.01)")
    bench = {"benchmark": "precision_energy", "rows": rows, "crossover": cross,
             "stochastic_rounding": {"mean_error_nearest": round(nearest, 5),
                                     "mean_error_stochastic": round(stochastic, 5), "bound": 0.01},
             "seconds": round(time.time() - started, 1)}
    print("BENCH " + json.dumps(bench))


if __name__ == "__main__":
    main()
