"""The memory wall: whole networks on the system top (`hwgen.hw.system`) across DRAM bandwidths with the exact
cycle model (`hwgen.system.exact`; the RTL where it ran), and the roofline of every LeNet-5 and AlexNet layer.

    python benchmarks/memory_wall.py                 # models only (a few minutes: the exact model simulates)
    python benchmarks/memory_wall.py --rtl           # + the RTL (Icarus) at 8, 4, 2, 1 bytes/cycle, small nets
    python benchmarks/memory_wall.py --rtl-lenet     # + LeNet-5 on the RTL at 8 bytes/cycle (about 2 minutes)

Whole networks (rows with ``layer`` = ``"all"``): LeNet-5 (8x8 array + MV engine) and the two small test
networks, batch 1 and 16 (LeNet-5 batch 16 only with ``--lenet-batch16``), at 1, 2, 4, 8 bytes per cycle (a
64-bit bus, one beat every 8, 4, 2, 1 cycles), 16 and 32 (a 128- and 256-bit bus, one beat a cycle), DRAM
latency ``--latency`` cycles. Three modes on the same hardware: ``prefetch`` (outputs on chip where the
compiler can keep them, descriptors dispatched as soon as a channel takes them), ``fence`` (every layer waits
for the previous one's output in DRAM: no cross-layer prefetch), ``baseline`` (no chaining, fenced: every
boundary through DRAM, no overlap). ``speedup_prefetch`` = fence / prefetch, ``speedup_chaining`` = baseline /
fence, ``speedup`` = baseline / prefetch. ``cycles_model`` is the exact model (``model_exact`` False: outside
the class it follows exactly), ``cycles_measured`` the RTL's ``CYCLES`` where it ran.

Per layer (``layer`` = its name): the roofline (`hwgen.roofline`): the DRAM bytes the schedule moves, MACs per
byte, and ``cycles_model`` = max(compute-only cycles, bytes / bandwidth) - a bound, not the exact model (the
exact model simulates every cycle in Python, too slow for AlexNet's millions of cycles). Batch 16 streams the
weights again for every input (the weight buffer is a FIFO), so its rows are 16x batch 1's.

Prints a table and one ``BENCH {...}`` JSON line; writes benchmarks/results/memory_wall.png.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.compiler.program import compile_program   # noqa: E402
from hwgen.errors import HwgenError   # noqa: E402
from hwgen.roofline import roofline   # noqa: E402
from hwgen.system.exact import predict_exact   # noqa: E402
from hwgen.system.image import build_image   # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BANDWIDTHS = (1, 2, 4, 8, 16, 32)
MODES = ("prefetch", "fence", "baseline")


def bus(bytes_per_cycle):
    """(beat bytes, cycles per beat) for a bandwidth: a 64-bit bus up to 8 bytes/cycle, wider above."""
    return (8, 8 // bytes_per_cycle) if bytes_per_cycle <= 8 else (bytes_per_cycle, 1)


def whole_networks(lenet_batch16):
    from benchmarks.networks import LENET_SPEC, lenet
    from tests.test_network_program import random_accelerator, random_network
    nets = [("LeNet-5 8x8+MV", LENET_SPEC, lenet(), 0, (1, 16) if lenet_batch16 else (1,))]
    for seed, name in ((13, "conv-conv-fc-fc 4x4 (seed 13)"), (15, "conv-conv-fc 2x2 (seed 15)")):
        nets.append((name, random_accelerator(seed), random_network(seed), seed, (1, 16)))
    return nets


def images(spec, layers, seed, batch):
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, layers[0].in_shape) for _ in range(batch)]
    out = {}
    for mode in MODES:
        try:
            program = compile_program(spec, layers, chain=mode != "baseline", batch=batch)
            out[mode] = (program, build_image(program, inputs, fence=mode != "prefetch"))
        except HwgenError as error:
            out[mode] = None
            print(f"  {mode}: not runnable ({str(error)[:100]})")
    return out


def layer_rows():
    from benchmarks.networks import ALEXNET_SPEC, LENET_SPEC, alexnet, lenet
    rows = []
    for name, spec, layers in (("LeNet-5 8x8+MV", LENET_SPEC, lenet()), ("AlexNet 16x16+MV", ALEXNET_SPEC, alexnet())):
        program = compile_program(spec, layers)
        for bpc in BANDWIDTHS:
            for r in roofline(program, bpc):
                for batch in (1, 16):
                    rows.append({"network": name, "layer": r["layer"], "engine": r["engine"], "batch": batch,
                                 "bytes_per_cycle": bpc, "model": "roofline",
                                 "cycles_model": batch * r["cycles_lower_bound"], "cycles_measured": None,
                                 "compute_cycles": batch * r["compute_cycles"],
                                 "dram_bytes": batch * r["dram_bytes"], "macs": batch * r["macs"],
                                 "intensity": round(r["intensity"], 3), "bound": r["bound"],
                                 "attainable_macs_per_cycle": round(r["attainable_macs_per_cycle"], 2),
                                 "pes": spec.pes})
    return rows


def plot(rows, layers, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    styles = {"prefetch": "-", "fence": "--", "baseline": ":"}
    colors = {}
    for r in rows:
        colors.setdefault((r["network"], r["batch"]), f"C{len(colors)}")
    for (network, batch), color in colors.items():
        for mode in MODES:
            pts = sorted((r["bytes_per_cycle"], r["cycles_model"]) for r in rows
                         if (r["network"], r["batch"], r["mode"]) == (network, batch, mode))
            if pts:
                x, y = zip(*pts)
                ax1.plot(x, y, styles[mode], color=color, lw=1.3,
                         label=f"{network} b{batch}" if mode == "prefetch" else None)
            measured = [(r["bytes_per_cycle"], r["cycles_measured"]) for r in rows
                        if (r["network"], r["batch"], r["mode"]) == (network, batch, mode) and r["cycles_measured"]]
            if measured:
                ax1.scatter(*zip(*measured), color=color, marker="o", s=18, zorder=3)
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("DRAM bytes per cycle")
    ax1.set_ylabel("cycles (exact model; dots: RTL)")
    ax1.set_title("whole networks: prefetch (solid), fenced (dashed), baseline (dotted)", fontsize=10)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    x = np.logspace(-1, 4, 200)
    for network, marker in (("LeNet-5 8x8+MV", "o"), ("AlexNet 16x16+MV", "s")):
        pts = [r for r in layers if r["network"] == network and r["batch"] == 1 and r["bytes_per_cycle"] == 8]
        if not pts:
            continue
        pes = pts[0]["pes"]
        ax2.plot(x, np.minimum(pes, 8 * x), "k-" if marker == "s" else "k--", lw=1,
                 label=f"{network.split()[0]} ceiling ({pes} MACs/cycle, 8 B/cycle)")
        for r in pts:
            y = r["macs"] / r["cycles_model"]
            ax2.scatter(r["intensity"], y, marker=marker,
                        color="tab:green" if r["layer"].startswith("conv") else "tab:orange", zorder=3)
            ax2.annotate(r["layer"], (r["intensity"], y), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("MACs per DRAM byte")
    ax2.set_ylabel("MACs per cycle (roofline bound)")
    ax2.set_title("layers at 8 bytes/cycle: conv (green), FC (orange)", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtl", action="store_true", help="run the small networks on the RTL (64-bit bus)")
    parser.add_argument("--rtl-lenet", action="store_true", help="run LeNet-5 on the RTL at 8 bytes/cycle")
    parser.add_argument("--lenet-batch16", action="store_true", help="also LeNet-5 batch 16 (slow: ~270k cycles)")
    parser.add_argument("--latency", type=int, default=10, help="DRAM latency in cycles (default 10)")
    parser.add_argument("--build-root", default=None)
    parser.add_argument("--png", type=Path, default=RESULTS / "memory_wall.png")
    args = parser.parse_args(argv)
    rows = []
    for name, spec, layers, seed, batches in whole_networks(args.lenet_batch16):
        for batch in batches:
            print(f"{name}, batch {batch}", flush=True)
            for mode, built in images(spec, layers, seed, batch).items():
                if built is None:
                    continue
                program, image = built
                measured = {}
                lenet = name.startswith("LeNet")
                if (args.rtl and not lenet and batch == 1) or (args.rtl_lenet and lenet and batch == 1):
                    from hwgen.sim.system_runner import run_system
                    bws = [b for b in BANDWIDTHS if b <= 8] if not lenet else [8]
                    started = time.perf_counter()
                    result = run_system(image, spec, build_root=args.build_root, timeout_cycles=2_000_000,
                                        scenarios=[{"interval": bus(b)[1], "latency": args.latency} for b in bws])
                    if not result.exact:
                        raise SystemExit(f"{name} {mode}: not bit-exact")
                    measured = {b: run["registers"]["CYCLES"] for b, run in zip(bws, result.runs)}
                    print(f"  {mode}: RTL {time.perf_counter() - started:.0f} s, bit-exact", flush=True)
                for bpc in BANDWIDTHS:
                    beat, interval = bus(bpc)
                    started = time.perf_counter()
                    model = predict_exact(program, image, beat_bytes=beat, interval=interval, latency=args.latency)
                    rows.append({"network": name, "layer": "all", "batch": batch, "bytes_per_cycle": bpc,
                                 "mode": mode, "latency": args.latency, "model": "exact",
                                 "cycles_model": model.cycles, "model_exact": model.exact,
                                 "cycles_measured": measured.get(bpc),
                                 "dram_bytes": image.bytes_read() + image.bytes_written(),
                                 "stream_model": program.predict().cycles, "macs": image.macs,
                                 "model_seconds": round(time.perf_counter() - started, 2)})
    for r in rows:
        same = {m: next((x["cycles_model"] for x in rows if (x["network"], x["batch"], x["bytes_per_cycle"], x["mode"])
                         == (r["network"], r["batch"], r["bytes_per_cycle"], m)), None) for m in MODES}
        if r["mode"] == "prefetch":
            fence = same["fence"]
            base = same["baseline"]
            r["speedup_prefetch"] = round(fence / r["cycles_model"], 3) if fence else None
            r["speedup_chaining"] = round(base / fence, 3) if base and fence else None
            r["speedup"] = round(base / r["cycles_model"], 3) if base else None
    header = (f"{'network':30} {'b':>2} {'mode':8} {'B/cyc':>5} {'model':>9} {'measured':>9} {'DRAM B':>9} "
              f"{'stream':>8} {'prefetch':>8} {'chaining':>8} {'total':>6}")
    print(f"\nWhole networks, DRAM latency {args.latency} cycles (exact model; * outside its exact class)\n" + header)
    print("-" * len(header))
    for r in rows:
        sp = lambda k: f"{r[k]:.2f}x" if r.get(k) else "-"   # noqa: E731
        print(f"{r['network']:30} {r['batch']:2} {r['mode']:8} {r['bytes_per_cycle']:5} "
              f"{r['cycles_model']:9,}{'' if r['model_exact'] else '*'} {r['cycles_measured'] or '-':>9} "
              f"{r['dram_bytes']:9,} {r['stream_model']:8,} {sp('speedup_prefetch'):>8} "
              f"{sp('speedup_chaining'):>8} {sp('speedup'):>6}")
    layers = layer_rows()
    header = (f"{'network':18} {'layer':6} {'b':>2} {'B/cyc':>5} {'cycles':>11} {'compute':>11} {'DRAM B':>12} "
              f"{'MAC/B':>7} {'bound':>7}")
    print("\nPer layer: the roofline bound (max of compute-only cycles and DRAM bytes / bandwidth)\n" + header)
    print("-" * len(header))
    for r in layers:
        if r["bytes_per_cycle"] in (1, 8, 32):
            print(f"{r['network']:18} {r['layer']:6} {r['batch']:2} {r['bytes_per_cycle']:5} {r['cycles_model']:11,} "
                  f"{r['compute_cycles']:11,} {r['dram_bytes']:12,} {r['intensity']:7.1f} {r['bound']:>7}")
    plot(rows, layers, args.png)
    print(f"\nwrote {args.png}")
    measured = [r for r in rows if r["cycles_measured"] is not None]
    print("BENCH " + json.dumps({"benchmark": "memory_wall", "latency": args.latency, "rows": rows + layers,
                                 "runs_measured": len(measured),
                                 "runs_equal_to_model": sum(r["cycles_measured"] == r["cycles_model"]
                                                            for r in measured)}))


if __name__ == "__main__":
    main()
