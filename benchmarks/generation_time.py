"""Verilog generation time for weight-stationary arrays (targets: 8x8 < 3 s, 16x16 < 10 s).

    python benchmarks/generation_time.py [--sizes 4 8 16] [--repeat 3]

Each size is generated `repeat` times in one process after a warm-up elaboration (the first call also starts
the bundled Yosys); the table shows the best and the first (cold) time. One `BENCH {...}` line at the end.
"""

import argparse
import json
import time

from hwgen import AcceleratorSpec
from hwgen.verilog import generate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    records = []
    print(f"{'array':<8}{'first s':>9}{'best s':>9}{'verilog KiB':>13}{'identical':>11}")
    for size in args.sizes:
        spec = AcceleratorSpec(rows=size, cols=size, name=f"ws{size}x{size}")
        times, texts = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            texts.append(generate(spec))
            times.append(time.perf_counter() - started)
        identical = all(text == texts[0] for text in texts)
        print(f"{size}x{size:<5}{times[0]:>9.2f}{min(times):>9.2f}{len(texts[0]) / 1024:>13.0f}{str(identical):>11}")
        records.append({"rows": size, "cols": size, "first_seconds": times[0], "best_seconds": min(times),
                        "verilog_bytes": len(texts[0]), "byte_identical": identical})
    print("BENCH " + json.dumps({"benchmark": "verilog_generation_time", "runs": records}))


if __name__ == "__main__":
    main()
