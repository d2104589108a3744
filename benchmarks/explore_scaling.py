"""A sweep with synthesis in the loop, on 1 and on 2 workers: measured wall time, and the speedup the design
predicts for N workers (`hwgen.explore.sweep.predicted_seconds`: the phases in order, each phase's tasks
scheduled longest first on N workers, plus the driver's own time, from the task times the 1-worker run measured).

    python benchmarks/explore_scaling.py                         # LeNet-5, 24 model points, 4 synthesized (Yosys)
    python benchmarks/explore_scaling.py --synth 6 --cluster     # the 2-worker run on a local Dask cluster

Every run computes everything (its own fresh cache): the figures are the work, not cache hits. Prints a table
and one `BENCH {...}` JSON line.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwgen.explore.space import Space   # noqa: E402
from hwgen.explore.sweep import SweepConfig, predicted_seconds, run_sweep   # noqa: E402


def run(workers, args, root):
    space = Space(array=args.array, engines=["ws+mv", "ws", "os"], act_buffer=["8K", "16K"], chaining=[True, False])
    config = SweepConfig(network=args.network, space=space, synth=args.synth, pnr=0,
                         synth_max_pes=args.synth_max_pes, workers=workers,
                         cluster="local" if args.cluster and workers > 1 else None,
                         cache_dir=str(root / f"cache{workers}"), synth_build_root=str(root / f"synth{workers}"),
                         show_progress=False, calibrate_from_cache=False)
    started = time.perf_counter()
    result = run_sweep(config)
    return result, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="lenet")
    parser.add_argument("--array", nargs="*", default=["2x2", "4x4"])
    parser.add_argument("--synth", type=int, default=4)
    parser.add_argument("--synth-max-pes", type=int, default=16)
    parser.add_argument("--cluster", action="store_true", help="the 2-worker run on a local Dask cluster")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hwgen-explore-bench-") as tmp:
        root = Path(tmp)
        one, wall_one = run(1, args, root)
        two, wall_two = run(2, args, root)
    stats = one.stats
    print(f"{args.network}: {stats['points']} points, {stats.get('synth', {}).get('computed', 0)} synthesized "
          f"(Yosys), every result computed")
    for name in ("model", "resources", "synth"):
        if name in stats:
            tasks = stats[name]["task_seconds"]
            print(f"  {name:<10}{len(tasks):>4} tasks, {sum(tasks):8.1f} s of work, longest {max(tasks, default=0):6.1f} s"
                  f"; phase wall {stats[name]['seconds']:.1f} s (1 worker) / {two.stats[name]['seconds']:.1f} s "
                  f"(2 workers)")
    print(f"wall: 1 worker {wall_one:.1f} s ({one.stats['pool']}), 2 workers {wall_two:.1f} s "
          f"({two.stats['pool']}): measured speedup {wall_one / wall_two:.2f}x")
    predicted = {n: predicted_seconds(stats, n) for n in (1, 2, 4, 8, 16, 32)}
    print(f"{'workers':>8}{'predicted s':>13}{'speedup':>9}")
    for n, seconds in predicted.items():
        print(f"{n:>8}{seconds:>13.1f}{predicted[1] / seconds:>8.2f}x")
    print("BENCH " + json.dumps({"network": args.network, "points": stats["points"], "synth": args.synth,
                                 "wall_1": round(wall_one, 1), "wall_2": round(wall_two, 1),
                                 "speedup_measured": round(wall_one / wall_two, 2),
                                 "pools": [one.stats["pool"], two.stats["pool"]],
                                 "predicted_seconds": {n: round(s, 1) for n, s in predicted.items()},
                                 "task_seconds": {k: stats[k]["task_seconds"] for k in ("model", "resources", "synth")
                                                  if k in stats}}))


if __name__ == "__main__":
    main()
