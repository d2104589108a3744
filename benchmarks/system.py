"""The accelerator as a system (`hwgen.hw.system`): whole networks from DRAM across DRAM bandwidths - cycles
measured on the RTL (cocotb + Icarus; the testbench's `ExactDram`: fixed latency, fixed bandwidth, no
back-pressure; `AxiLiteMaster` as host) against the exact model (`hwgen.system.exact`) and the closed-form
roofline estimate (`hwgen.system.dram_model`), the counters, and what cross-layer prefetch and on-chip chaining
are worth over a no-overlap, everything-through-DRAM baseline.

    python benchmarks/system.py                  # the small networks, RTL at 8, 4, 2, 1 bytes/cycle
    python benchmarks/system.py --model-only     # the models only (seconds)
    python benchmarks/system.py --lenet          # also LeNet-5 (8x8 array + MV engine; slow on Icarus)
    python benchmarks/system.py --latency 1      # the DRAM's latency in cycles (default 10)
    python benchmarks/system.py --synth          # the 4x4 system on ECP5-85F beside the bare array's baseline

Modes, all on the same hardware:

- ``prefetch``: the compiler's program as is (outputs stay on chip where they can), and every descriptor
  dispatched as soon as its channel takes it - the next layer's weights, parameters and commands stream in
  while the current layer computes;
- ``fence``: the same program, but every layer's descriptors wait until the previous layer's output is in
  DRAM (no cross-layer prefetch);
- ``baseline``: compiled without chaining (every boundary through DRAM) and fenced: no overlap at all.

The bus is 64 bits (8 bytes per beat); ``interval`` cycles per beat on the read and write data channels make
the DRAM bandwidth ``8 / interval`` bytes per cycle. Prints a table and one ``BENCH {...}`` JSON line.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.compiler.program import compile_program   # noqa: E402
from hwgen.errors import HwgenError   # noqa: E402
from hwgen.system.dram_model import predict_system   # noqa: E402
from hwgen.system.exact import predict_exact   # noqa: E402
from hwgen.system.image import build_image   # noqa: E402
from tests.test_network_program import random_accelerator, random_network   # noqa: E402

BEAT_BYTES = 8
INTERVALS = (1, 2, 4, 8)
MODES = ("prefetch", "fence", "baseline")


def networks(lenet=False):
    """(name, spec, layers): two small random networks of the test family with layers fed through DRAM and on
    chip, and optionally LeNet-5 (benchmarks/networks.py)."""
    nets = []
    for seed, name in ((15, "conv-conv-fc 2x2 (seed 15)"), (13, "conv-conv-fc-fc 4x4 (seed 13)")):
        # a post-op lane per column, as the figures were measured (and as `hwgen compile` builds a network's)
        spec = random_accelerator(seed)
        spec = dataclasses.replace(spec, postop_lanes=spec.cols, postop_fifo_depth=None)
        nets.append((name, spec, random_network(seed), seed))
    if lenet:
        from benchmarks.networks import LENET_SPEC, lenet as lenet_layers
        nets.append(("LeNet-5 8x8+MV", LENET_SPEC, lenet_layers(), 0))
    return nets


def images(spec, layers, seed):
    x = np.random.default_rng(seed).integers(-128, 128, layers[0].in_shape)
    out = {}
    for mode in MODES:
        try:
            program = compile_program(spec, layers, chain=mode != "baseline")
            out[mode] = (program, build_image(program, [x], fence=mode != "prefetch"))
        except HwgenError as error:
            print(f"  {mode}: not runnable ({error})")
    return out


def synth(build_dir="build/fpga/ws4x4_system", router=None):
    """Synthesize, place and route the system around the 4x4 array of the FPGA baseline `ws4x4-ecp5-85f` and
    print both (the DMA channels, command processor and registers against the bare accelerator)."""
    from hwgen.fpga.baselines import load_baselines, spec_of
    from hwgen.fpga.flow import synthesize
    from hwgen.hw.system import SystemStreams
    base = load_baselines()["ws4x4-ecp5-85f"]
    spec = spec_of(base)
    summary = synthesize(spec, "ecp5-85f", component=SystemStreams(spec), name="ws4x4_system",
                         build_dir=build_dir, check_memory=False, freq_mhz=base["freq_mhz"],
                         nextpnr_extra=("--router", router) if router else ())
    keys = ("lut4", "carry", "ff", "dsp", "bram", "fmax_mhz")
    print(f"{'':16}" + "".join(f"{k:>10}" for k in keys))
    print(f"{'bare 4x4':16}" + "".join(f"{base['metrics'][k]:>10}" for k in keys))
    print(f"{'system 4x4':16}" + "".join(f"{summary.get(k)!s:>10}" for k in keys))
    print("BENCH " + json.dumps({"benchmark": "system_synth", "bare": base["metrics"],
                                 "system": {k: summary.get(k) for k in keys}}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-only", action="store_true")
    parser.add_argument("--lenet", action="store_true")
    parser.add_argument("--build-root", default=None)
    parser.add_argument("--latency", type=int, default=10, help="DRAM latency in cycles (default 10)")
    parser.add_argument("--synth", action="store_true", help="only synthesize the system on ECP5-85F")
    parser.add_argument("--router", choices=["router1", "router2"], default=None,
                        help="with --synth: the nextpnr router (default nextpnr's, router1; router2 finishes sooner)")
    args = parser.parse_args(argv)
    if args.synth:
        return synth(router=args.router)
    rows = []
    for name, spec, layers, seed in networks(args.lenet):
        print(f"\n{name}: {len(layers)} layers on {spec.rows}x{spec.cols}"
              f"{' + MV engine' if spec.mv_engine else ''}")
        built = images(spec, layers, seed)
        for mode, (program, image) in built.items():
            measured = [None] * len(INTERVALS)
            if not args.model_only:
                from hwgen.sim.system_runner import run_system
                started = time.perf_counter()
                result = run_system(image, spec, build_root=args.build_root, timeout_cycles=400_000,
                                    scenarios=[{"interval": i, "latency": args.latency} for i in INTERVALS])
                wall = time.perf_counter() - started
                for k, run in enumerate(result.runs):
                    if run["mismatches"] or run["error"] or run["hung"]:
                        raise SystemExit(f"{name} {mode} interval {INTERVALS[k]}: not exact: {run}")
                    measured[k] = run["registers"]
                print(f"  {mode}: RTL {wall:.0f} s for {len(INTERVALS)} runs, bit-exact")
            for interval, regs in zip(INTERVALS, measured):
                model = predict_system(program, image, beat_bytes=BEAT_BYTES, interval=interval)
                exact = predict_exact(program, image, beat_bytes=BEAT_BYTES, interval=interval, latency=args.latency)
                rows.append({
                    "network": name, "mode": mode, "bytes_per_cycle": BEAT_BYTES / interval,
                    "latency": args.latency, "cycles_model": exact.cycles, "model_exact": exact.exact,
                    "roofline_estimate": model.cycles, "lower_bound": model.lower, "stream_model": model.stream,
                    "bound": model.bound, "dram_bytes_read": image.bytes_read(),
                    "dram_bytes_written": image.bytes_written(),
                    "cycles_measured": regs["CYCLES"] if regs else None,
                    "stall_dram": regs["STALL_DRAM"] if regs else None,
                    "macs": regs["MACS_LO"] if regs else image.macs,
                })
    for row in rows:
        base = next((r for r in rows if r["network"] == row["network"] and r["mode"] == "baseline"
                     and r["bytes_per_cycle"] == row["bytes_per_cycle"]), None)
        key = "cycles_measured" if row["cycles_measured"] is not None else "cycles_model"
        row["speedup_over_baseline"] = round(base[key] / row[key], 3) if base else None
        if row["cycles_measured"]:
            row["model_error_cycles"] = row["cycles_model"] - row["cycles_measured"]
            row["roofline_error"] = round(row["roofline_estimate"] / row["cycles_measured"] - 1, 3)
    header = (f"{'network':32} {'mode':9} {'B/cyc':>5} {'measured':>9} {'model':>7} {'=':>2} {'roofline':>8} "
              f"{'lower':>6} {'stream':>6} {'bound':>7} {'read B':>7} {'stall':>6} {'vs base':>7}")
    print(f"\nDRAM latency {args.latency} cycles\n" + header)
    print("-" * len(header))
    for r in rows:
        same = "-" if r["cycles_measured"] is None else ("=" if r["cycles_measured"] == r["cycles_model"] else "!")
        print(f"{r['network']:32} {r['mode']:9} {r['bytes_per_cycle']:5g} {r['cycles_measured'] or '-':>9} "
              f"{r['cycles_model']:7}{'' if r['model_exact'] else '*'} {same:>2} {r['roofline_estimate']:8} "
              f"{r['lower_bound']:6} {r['stream_model']:6} {r['bound']:>7} "
              f"{r['dram_bytes_read']:7} {r['stall_dram'] if r['stall_dram'] is not None else '-':>6} "
              f"{r['speedup_over_baseline'] or '-':>7}")
    measured = [r for r in rows if r["cycles_measured"] is not None]
    print("BENCH " + json.dumps({"benchmark": "system", "bus_bytes": BEAT_BYTES, "latency": args.latency,
                                 "rows": rows, "runs_measured": len(measured),
                                 "runs_equal_to_model": sum(r["cycles_measured"] == r["cycles_model"]
                                                            for r in measured)}))


if __name__ == "__main__":
    main()
