"""Fewer bits, skipped zeros, and joules (issue 15): the sparse matrix-vector mode against the dense engine of the
same multiplier count on AlexNet FC6 (9216 -> 4096, batch 1), with energy split by level (`hwgen.energy`), the
crossover sparsity, and stochastic rounding's mean error beside round-to-nearest; then whole networks (LeNet-5
on 64 multipliers, AlexNet on 256) at batch 1 and 16 in five modes - int8 everywhere, int4 or int2 weights packed
(two or four to a byte) on the fully connected layers, the fully connected layers pruned to 90 % zero weights on
the sparse engine, and fp16 with fp32 accumulation on the array - with
a bar chart of energy per inference and cycles (``benchmarks/results/precision_energy.png``).

    python benchmarks/precision_energy.py            # tables + one `BENCH {...}` JSON line (a few minutes)
    python benchmarks/precision_energy.py --quick    # fewer sparsity points for the crossover, LeNet-5 only

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

from hwgen.compiler.zoo import alexnet, lenet   # noqa: E402
from hwgen.energy import EnergyTable, layer_energy   # noqa: E402
from hwgen.perf import predict_plan   # noqa: E402
from hwgen.postops import PostOps, QuantParams, apply   # noqa: E402
from hwgen.problem import ConvProblem   # noqa: E402
from hwgen.sparse import magnitude_prune   # noqa: E402
from hwgen.spec import AcceleratorSpec   # noqa: E402
from hwgen.tiling import plan_layer, plan_sparse_layer   # noqa: E402

M, K = 4096, 9216
# One accelerator: the dense matrix-vector engine (8x8 = 64 multipliers), which also takes packed int4/int2 weights,
# and the sparse engine beside it with the same 64 multipliers.
SPEC = AcceleratorSpec(rows=8, cols=8, dataflow="matrix_vector", act_buffer_bytes=2 * K, weight_buffer_bytes=2048,
                       acc_buffer_bytes=256, max_out_channels=M, sparse_mv=True, sparse_depth=64,
                       packed_weight_bits=(4, 2),
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


# Whole networks: the accelerators of benchmarks/networks.py (weight-stationary array + matrix-vector engine),
# able to take packed int4 and int2 weights on the matrix-vector engine; the sparse engine is built only on a
# matrix-vector accelerator (`AcceleratorSpec(sparse_mv=True)` needs dataflow="matrix_vector"), so the sparse
# rows run their fully connected layers on one of those with the same multipliers.
NETWORK_SPECS = {
    "lenet": AcceleratorSpec(rows=8, cols=8, mv_engine=True, chaining=True, act_buffer_bytes=64 * 1024,
                             weight_buffer_bytes=4 * 1024, acc_buffer_bytes=32 * 784, max_out_channels=128,
                             max_pool_width=28, packed_weight_bits=(4, 2), postop_lanes=8, name="lenet_net8"),
    "alexnet": AcceleratorSpec(rows=16, cols=16, mv_engine=True, chaining=True, act_buffer_bytes=256 * 1024,
                               weight_buffer_bytes=16 * 1024, acc_buffer_bytes=64 * 1024, max_out_channels=4096,
                               max_pool_width=64, packed_weight_bits=(4, 2), postop_lanes=16,
                               name="alexnet_net16"),
}
NETWORK_MODES = ("int8", "int4-FC", "int2-FC", "sparse-FC w90% a50%", "fp16")
PACKED_MODES = {"int4-FC": 4, "int2-FC": 2}


def float_spec(spec):
    """The same array in fp16 with fp32 accumulation (`AcceleratorSpec(act_type="fp16", ...)`): buffers of twice
    the bytes (the same words), no matrix-vector engine (the float datapath is on the arrays only), so every
    layer runs on the weight-stationary array."""
    return AcceleratorSpec(rows=spec.rows, cols=spec.cols, act_type="fp16", weight_type="fp16", acc_type="fp32",
                           act_buffer_bytes=2 * spec.act_buffer_bytes, weight_buffer_bytes=2 * spec.weight_buffer_bytes,
                           acc_buffer_bytes=spec.acc_buffer_bytes, max_out_channels=spec.max_out_channels,
                           max_pool_width=spec.max_pool_width, name=f"{spec.name}_fp16")


def float_postops(postops):
    return PostOps(bias=postops.bias, requant=postops.requant, relu=postops.relu, pool=postops.pool,
                   out_type="fp16")


def sparse_spec(spec):
    return AcceleratorSpec(rows=spec.rows, cols=spec.cols, dataflow="matrix_vector", act_buffer_bytes=2 * 9216,
                           weight_buffer_bytes=2048, acc_buffer_bytes=256, max_out_channels=4096, sparse_mv=True,
                           sparse_depth=64, postop_lanes=spec.cols, name=f"{spec.name}_sparse")


def batched_fc(problem, batch):
    """A fully connected layer over ``batch`` inputs at once (the batch as its output pixels)."""
    p = problem
    return ConvProblem(p.name, "linear", C=p.C, H=1, W=1, M=p.M, E=1, F=batch, R=1, S=1, act_axes=(1, None, 0),
                       out_axes=(1, None, 0), act_shape=(batch, p.C), weight_shape=(p.M, p.C),
                       out_shape=(batch, p.M))


def network_rows(name, batch, table, seed=15):
    """Per mode: the sum of the layers' exact models for ``batch`` inputs (every layer reads its input from and
    writes its output to memory, the same for every mode), and the energy of one inference by level.

    Convolutions run once per input (a batch re-streams their weights per input). Fully connected layers: int8
    takes the faster engine at batch 1 and, at batch > 1, the weight-stationary array over the whole batch at
    once (each weight read from memory once per batch) when that is at most 1 % slower than the matrix-vector
    engine once per input; int4 and int2 run on the matrix-vector engine (the only one that unpacks them) once
    per input, and so does the sparse engine (batch-1 matrix-vector by construction). fp16 runs every layer on the
    array in fp16 with fp32 accumulation (`float_spec`), fully connected layers like int8's."""
    spec = NETWORK_SPECS[name]
    layers = (lenet if name == "lenet" else alexnet)(random=True)
    rng = np.random.default_rng(seed)
    out = []
    for mode in NETWORK_MODES:
        cycles, energy, macs, per_layer = 0, {"dram": 0.0, "sram": 0.0, "compute": 0.0}, 0, []
        for layer in layers:
            p = layer.problem
            runs = batch       # how many times the plan runs for the batch
            if mode == "fp16":
                fspec, fpost = float_spec(spec), float_postops(layer.postops)
                plan = plan_layer(fspec, p, fpost)
                if p.kind == "linear" and batch > 1:
                    whole = plan_layer(fspec, batched_fc(p, batch), fpost)
                    if predict_plan(whole).cycles <= 1.01 * batch * predict_plan(plan).cycles:
                        plan, runs = whole, 1
            elif p.kind != "linear":
                plan = plan_layer(spec, p, layer.postops)
            elif mode == "int8":
                plan = min((plan_layer(spec, p, layer.postops, engine=engine)
                            for engine in ("weight_stationary", "matrix_vector")),
                           key=lambda plan: predict_plan(plan).cycles)
                if batch > 1:
                    whole = plan_layer(spec, batched_fc(p, batch), layer.postops, engine="weight_stationary")
                    if predict_plan(whole).cycles <= 1.01 * batch * predict_plan(plan).cycles:
                        plan, runs = whole, 1
            elif mode in PACKED_MODES:
                plan = plan_layer(spec, p, layer.postops, engine="matrix_vector", packed_bits=PACKED_MODES[mode])
            else:
                weight = magnitude_prune(np.asarray(layer.weight).reshape(p.M, p.C), 0.9)
                x = rng.integers(1, 128, p.C)
                x[rng.permutation(p.C)[:p.C // 2]] = 0
                plan = plan_sparse_layer(sparse_spec(spec), p, layer.postops, weight=weight, x=x, pack=False)
            c = predict_plan(plan).cycles
            e = layer_energy(plan, table)
            cycles += runs * c
            macs += p.macs
            for level in energy:
                energy[level] += e[f"{level}_pj"] * runs / batch
            per_layer.append({"layer": p.name, "engine": plan.engine, "runs": runs, "cycles": runs * c,
                              "energy_pj_per_inference": round(e["total_pj"] * runs / batch)})
        total = sum(energy.values())
        out.append({"network": name, "batch": batch, "mode": mode, "multipliers": spec.pes, "cycles_model": cycles,
                    "energy_pj": {**{k: round(v) for k, v in energy.items()}, "total": round(total)},
                    "pj_per_mac": round(total / macs, 3), "inferences_per_joule": round(1e12 / total),
                    "layers": per_layer})
    return out


def bar_chart(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = sorted({(r["network"], r["batch"]) for r in rows}, key=lambda g: (g[0] != "lenet", g[1]))
    fig, axes = plt.subplots(2, len({g[0] for g in groups}), figsize=(11, 7), squeeze=False)
    colors = {"dram": "#c44e52", "sram": "#4c72b0", "compute": "#55a868"}
    for col, network in enumerate(sorted({g[0] for g in groups}, key=lambda n: n != "lenet")):
        mine = [r for r in rows if r["network"] == network]
        batches = sorted({r["batch"] for r in mine})
        modes = [r["mode"] for r in mine if r["batch"] == batches[0]]
        x = np.arange(len(modes))
        width = 0.8 / len(batches)
        ax = axes[0][col]
        for i, batch in enumerate(batches):
            bottom = np.zeros(len(modes))
            for level, color in colors.items():
                values = np.array([r["energy_pj"][level] / 1e6 for r in mine if r["batch"] == batch])
                ax.bar(x + (i - (len(batches) - 1) / 2) * width, values, width, bottom=bottom, color=color,
                       alpha=1.0 if i == 0 else 0.6, edgecolor="black", linewidth=0.4,
                       label=f"{level} (batch {batch})")
                bottom += values
        ax.set_xticks(x, [m.replace(" ", "\n", 1) for m in modes], fontsize=8)
        ax.set_ylabel("energy per inference (uJ)")
        ax.set_title(f"{network}: energy per inference by level (left bar batch {batches[0]}, right batch "
                     f"{batches[-1]})", fontsize=9)
        ax.legend(fontsize=7, ncol=2)
        ax = axes[1][col]
        for i, batch in enumerate(batches):
            at = x + (i - (len(batches) - 1) / 2) * width
            conv = np.array([sum(l["cycles"] for l in r["layers"] if not l["layer"].startswith("fc")) / batch
                             for r in mine if r["batch"] == batch])
            fc = np.array([sum(l["cycles"] for l in r["layers"] if l["layer"].startswith("fc")) / batch
                           for r in mine if r["batch"] == batch])
            ax.bar(at, conv, width, color="#8172b2", alpha=1.0 if i == 0 else 0.6, edgecolor="black",
                   linewidth=0.4, label=f"conv layers (batch {batch})")
            ax.bar(at, fc, width, bottom=conv, color="#ccb974", alpha=1.0 if i == 0 else 0.6, edgecolor="black",
                   linewidth=0.4, label=f"FC layers (batch {batch})")
        ax.set_xticks(x, [m.replace(" ", "\n", 1) for m in modes], fontsize=8)
        ax.set_ylabel("cycles per input (model)")
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("hwgen: int8 vs int4 / int2 FC weights vs 90 %-sparse FC vs fp16 (Horowitz 45 nm energy table)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    for bits in (4, 2):
        packed_plan = plan_layer(SPEC, fc("fc6"), POSTOPS, packed_bits=bits)
        rows.append({"layer": "alexnet_fc6", "mode": f"int{bits}-packed dense M×V", "multipliers": SPEC.pes,
                     "cycles_model": predict_plan(packed_plan).cycles,
                     "energy_pj": split(layer_energy(packed_plan, table))})

    for w_s, a_s in ((0.9, 0.5), (0.9, 0.0), (0.5, 0.5)):
        weight, x = operands(w_s, a_s)
        plan = plan_sparse_layer(SPEC, fc("fc6"), POSTOPS, weight=weight, x=x, pack=False)
        cycles = predict_plan(plan).cycles
        rows.append({"layer": "alexnet_fc6", "mode": f"int8 sparse M×V w{int(w_s * 100)}% a{int(a_s * 100)}%",
                     "multipliers": SPEC.pes, "cycles_model": cycles, "dense_cycles": plan.dense_cycles,
                     "speedup": round(plan.dense_cycles / cycles, 2),
                     "energy_pj": split(layer_energy(plan, table)),
                     "weight_zeros": round(float(np.mean(weight == 0)), 4),
                     "act_zeros": round(float(np.mean(x == 0)), 4)})

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
    networks = []
    for name in ("lenet",) if args.quick else ("lenet", "alexnet"):
        for batch in (1, 16):
            networks += network_rows(name, batch, table)
    print(f"\nwhole networks (sum of the layers' exact models; every layer through memory; energy of one "
          f"inference, uJ; at batch 16 the int8 FC layers take the whole batch on the array, int4, int2 and "
          f"sparse run once per input)")
    print(f"{'network':8} {'batch':>5} {'mode':22} {'cycles':>12} {'DRAM uJ':>9} {'SRAM uJ':>9} {'compute uJ':>10} "
          f"{'total uJ':>9} {'pJ/MAC':>7} {'inf/J':>10}")
    for r in networks:
        e = r["energy_pj"]
        print(f"{r['network']:8} {r['batch']:>5} {r['mode']:22} {r['cycles_model']:>12,} {e['dram'] / 1e6:>9.2f} "
              f"{e['sram'] / 1e6:>9.2f} {e['compute'] / 1e6:>10.2f} {e['total'] / 1e6:>9.2f} {r['pj_per_mac']:>7.2f} "
              f"{r['inferences_per_joule']:>10,}")
    chart = Path(__file__).resolve().parent / "results" / "precision_energy.png"
    bar_chart(networks, chart)
    print(f"bar chart: {chart}")
    bench = {"benchmark": "precision_energy", "rows": rows + [{k: v for k, v in r.items() if k != "layers"}
                                                              for r in networks], "crossover": cross,
             "stochastic_rounding": {"mean_error_nearest": round(nearest, 5),
                                     "mean_error_stochastic": round(stochastic, 5), "bound": 0.01},
             "seconds": round(time.time() - started, 1)}
    print("BENCH " + json.dumps(bench))


if __name__ == "__main__":
    main()
