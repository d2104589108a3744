"""Verilog generation time for weight-stationary arrays with the post-op chain (issue 13 targets: 8x8 < 2 s,
16x16 < 4 s, 32x32 < 10 s).

    python benchmarks/generation_time.py [--sizes 4 8 16 32] [--repeat 3] [--family ecp5]

Every generation is a cold start: a fresh Python process that imports hwgen, elaborates the default spec of that
size (`hwgen.verilog.elaborate`: Amaranth's elaboration, netlist and RTLIL, all Python) and turns it into
Verilog (`hwgen.verilog.rtlil_to_verilog`: Amaranth's bundled Yosys, a subprocess). The table shows the median
over ``repeat`` processes of each phase's wall time (the import of hwgen is not counted, it is printed below),
and whether every process wrote the same bytes; the CPU column (elaboration and Yosys) tells a loaded machine
from a slow generator. One `BENCH {...}` line at the end, with every run and the load average.
"""

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def worker(size, family):
    """One cold generation in this process; prints a JSON line."""
    started = time.perf_counter()
    from hwgen import AcceleratorSpec
    from hwgen.verilog import elaborate, rtlil_to_verilog
    imported, cpu_imported = time.perf_counter(), time.process_time()
    spec = AcceleratorSpec(rows=size, cols=size, name=f"ws{size}x{size}")
    text = elaborate(spec, family=family)
    elaborated = time.perf_counter()
    verilog = rtlil_to_verilog(text)
    done = time.perf_counter()
    cpu_own, children = time.process_time() - cpu_imported, resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "import_seconds": imported - started, "elaboration_seconds": elaborated - imported,
        "yosys_seconds": done - elaborated, "total_seconds": done - imported,
        "cpu_seconds": cpu_own + children.ru_utime + children.ru_stime,
        "verilog_lines": verilog.count("\n"), "verilog_bytes": len(verilog.encode()),
        "sha256": hashlib.sha256(verilog.encode()).hexdigest(),
    }))


def measure(size, family, repeat):
    command = [sys.executable, __file__, "--worker", str(size)] + (["--family", family] if family else [])
    runs = []
    for _ in range(repeat):
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    median = {key: statistics.median(run[key] for run in runs)
              for key in ("import_seconds", "elaboration_seconds", "yosys_seconds", "total_seconds", "cpu_seconds")}
    return {"rows": size, "cols": size, "family": family or "generic", **median,
            "verilog_lines": runs[0]["verilog_lines"], "lines_per_pe": runs[0]["verilog_lines"] / size ** 2,
            "verilog_bytes": runs[0]["verilog_bytes"],
            "byte_identical": len({run["sha256"] for run in runs}) == 1, "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[4, 8, 16, 32])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--family", choices=["ecp5"], default=None, help="the ECP5 cell form (default: generic)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.family)
        return
    load_before = os.getloadavg()
    print(f"{args.repeat} cold processes per size, median wall seconds; load average {load_before[0]:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"{'array':<8}{'elab s':>8}{'yosys s':>9}{'total s':>9}{'cpu s':>7}{'lines':>9}{'lines/PE':>10}"
          f"{'identical':>11}")
    records = []
    for size in args.sizes:
        r = measure(size, args.family, args.repeat)
        records.append(r)
        print(f"{size}x{size:<5}{r['elaboration_seconds']:>8.2f}{r['yosys_seconds']:>9.2f}{r['total_seconds']:>9.2f}"
              f"{r['cpu_seconds']:>7.2f}{r['verilog_lines']:>9,}{r['lines_per_pe']:>10.0f}"
              f"{'yes' if r['byte_identical'] else 'NO':>11}", flush=True)
    load_after = os.getloadavg()
    print(f"(import of hwgen, not counted: {statistics.median(r['import_seconds'] for r in records):.2f} s; "
          f"load average after: {load_after[0]:.2f})")
    print("BENCH " + json.dumps({"benchmark": "verilog_generation_time", "statistic": "median of cold processes",
                                 "repeat": args.repeat, "load_average": [load_before[0], load_after[0]],
                                 "cpu_count": os.cpu_count(), "runs": records}))


if __name__ == "__main__":
    main()
