"""`hwgen explore` (a design-space sweep), `hwgen report DIR` (an HTML page of a folder) and `hwgen sweep-tests`
(a pytest tier spread over the same pool or cluster). Registered by `hwgen.cli.build_parser` through
`add_explore_parsers`.

They follow the exit-status contract of `hwgen.cli`: 0 done; 1 a check or a tool failed (a sweep point whose
model, estimate or synthesis could not run - an invalid point, one that does not fit, is a result, not a
failure -, a failed test of ``sweep-tests``, Dask missing); 2 bad input (a space, an option, an output path, a
cluster that cannot be reached), one line on stderr; 70 a bug.
"""

import argparse
import json
import sys

from ..cli import EXIT_CHECK_FAILED, EXIT_OK
from ..errors import ArgumentError, OutputPathError

__all__ = ["add_explore_parsers"]


def _list(text):
    return [item.strip() for item in str(text).split(",") if item.strip()]


def _space(args):
    from .space import Space
    if args.space:
        space = Space.from_file(args.space)
    else:
        space = Space()
    for axis in ("array", "engines", "act_buffer", "weight_buffer", "acc_buffer", "chaining"):
        value = getattr(args, axis)
        if value is not None:
            setattr(space, axis, _list(value))
    if args.batch is not None:
        space.batch = [int(b) for b in _list(args.batch)]
    for item in args.set or []:
        name, _, values = item.partition("=")
        if not values:
            raise ArgumentError(f"--set takes FIELD=V1,V2 (an AcceleratorSpec field), not {item!r}")
        parsed = []
        for v in _list(values):
            try:
                parsed.append(json.loads(v))
            except ValueError:
                parsed.append(v)
        space.set[name.strip()] = parsed
    space.__post_init__()
    return space


# Columns a frontier can minimize (a point carries them once the model that makes them ran).
OBJECTIVES = ("cycles", "area", "energy_pj", "latency_us", "dram_bytes", "bytes_moved", "lut4", "ff", "dsp", "bram")


def _objectives(text):
    names = _list(text)
    unknown = [name for name in names if name not in OBJECTIVES]
    if unknown or not names:
        raise ArgumentError(f"--objectives {text!r}: " + (f"no column {', '.join(unknown)}" if unknown else "empty")
                            + f"; the frontier minimizes comma-separated columns of {', '.join(OBJECTIVES)}")
    return tuple(names)


def cmd_explore(args):
    from ..cli import _output_dir
    from .outputs import calibration_table, document, frontier_table, invalid_table, write_outputs
    from .sweep import SweepConfig, run_sweep
    objectives = _objectives(args.objectives)
    if args.pnr > args.synth:
        raise ArgumentError(f"--pnr {args.pnr} places and routes some of the --synth points: give --synth >= --pnr "
                            f"(now {args.synth})")
    if args.output is not None:
        args.output = _output_dir(str(args.output))     # checked before the sweep, not after it
    config = SweepConfig(network=args.network, space=_space(args), device=args.device, synth=args.synth,
                         pnr=args.pnr, synth_max_pes=args.synth_max_pes, workers=args.workers, cluster=args.cluster,
                         cache_dir=args.cache_dir, recompute=_recompute(args.no_cache), elaborate=args.elaborate,
                         objectives=objectives, show_progress=False if args.quiet else None,
                         timeout_s=args.timeout,
                         synth_build_root=str(args.output / "synth") if args.output else "build/explore/synth")
    if not args.json and not args.quiet:
        print(f"{args.network}: {len(config.space.points())} points on {args.device} ...", file=sys.stderr, flush=True)
    result = run_sweep(config)
    doc = document(result)
    try:
        files = write_outputs(result, args.output) if args.output else {}
    except OSError as error:
        raise OutputPathError(f"-o {args.output}: cannot write {error.filename or args.output} "
                              f"({error.strerror})") from None
    failed = [p for p in result.points if p["status"] == "failed"]
    failed_synth = [s for s in result.synthesized if (s.get("measured") or {}).get("status") == "failed"]
    status = EXIT_CHECK_FAILED if failed or failed_synth else EXIT_OK
    if args.json:
        print(json.dumps({k: v for k, v in doc.items() if k != "points"} | {
            "points": [{k: v for k, v in p.items() if k != "layers"} for p in doc["points"]],
            "files": {k: str(v) for k, v in files.items() if v}}, indent=1, default=str))
        return status
    print(frontier_table(doc, limit=args.limit))
    print()
    print(calibration_table(doc))
    print()
    print(invalid_table(doc))
    s = result.stats
    print(f"\n{s['points']} points on {s['pool']} in {s['seconds']:.1f} s: model {s['model']['computed']} computed / "
          f"{s['model']['cached']} cached, resources {s['resources']['computed']} / {s['resources']['cached']}"
          + (f", synthesis {s['synth']['computed']} / {s['synth']['cached']}" if "synth" in s else "")
          + f" (cache {s['cache']['dir']})")
    for name, path in files.items():
        if path:
            print(f"  wrote {path}")
    if failed or failed_synth:
        print(f"FAILED: {len(failed)} points and {len(failed_synth)} syntheses could not be computed "
              f"(the reasons are in the rows above and in points.json)")
        for p in failed[:5]:
            print(f"  {p['label']}: {p.get('reason')}")
        for s_ in failed_synth[:5]:
            print(f"  synthesis of {s_['label']}: {s_['measured'].get('reason')}")
    return status


def cmd_report(args):
    from .report import write_report
    if args.dram_bw is not None and not args.dram_bw > 0:
        raise ArgumentError(f"--dram-bw must be a positive number of bytes per cycle, not {args.dram_bw}")
    path = write_report(args.dir, dram_bw=args.dram_bw, output=args.output)
    print(f"wrote {path} (open it in a browser; no server needed)")
    return EXIT_OK


def cmd_sweep_tests(args):
    from .testsweep import run_test_sweep
    result = run_test_sweep(marker=args.marker, paths=args.paths, keyword=args.keyword, workers=args.workers,
                            cluster=args.cluster, retries=args.retries, timeout_s=args.timeout,
                            show_progress=False if args.quiet else None, junit=args.junit)
    print(result.summary())
    return EXIT_OK if result.ok else EXIT_CHECK_FAILED


def _pool_options(p):
    g = p.add_argument_group("where the work runs")
    g.add_argument("--workers", type=_count, help="local worker processes (default: the cores; 0: in this process); "
                                               "with --cluster local, the cluster's workers")
    g.add_argument("--cluster", metavar="ADDRESS", help="run on a Dask cluster: its scheduler address "
                                                        "(tcp://host:8786), or 'local' to start one here")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars (they are off a terminal anyway)")


def add_explore_parsers(sub):
    p = sub.add_parser("explore", help="sweep accelerators for a network: cycles, utilization, bytes, resources, "
                                       "Pareto frontier",
                       description="Evaluate every point of a design space for a network with the exact cycle "
                                   "model, estimate each accelerator's resources (calibrated against a synthesized "
                                   "sample), and write the Pareto frontier, every point (CSV/JSON), plots and an "
                                   "HTML report. Results are cached: a re-run computes only what changed.")
    p.add_argument("network", help="lenet, alexnet, a design (name in designs/ or file) or a folder hwgen compile "
                                   "wrote")
    s = p.add_argument_group("the space (comma-separated values per axis; or --space FILE)")
    s.add_argument("--space", metavar="FILE", help="a TOML or JSON space file (see hwgen.explore.space)")
    s.add_argument("--array", help="ROWSxCOLS values, e.g. 2x2,4x4,8x8 (default 8x8)")
    s.add_argument("--engines", help="ws, ws+mv (with the matrix-vector engine), os (default ws+mv)")
    s.add_argument("--act-buffer", help="activation buffer bytes: auto (sized for the network), 16K, 256K, ...")
    s.add_argument("--weight-buffer", help="weight FIFO bytes (default auto)")
    s.add_argument("--acc-buffer", help="accumulator bytes (default auto)")
    s.add_argument("--chaining", help="on,off (default on)")
    s.add_argument("--batch", help="inputs per program, e.g. 1,4 (default 1)")
    s.add_argument("--set", action="append", metavar="FIELD=V1,V2",
                   help="any other AcceleratorSpec field, e.g. --set feedback_depth=256,512")
    r = p.add_argument_group("resources")
    r.add_argument("--device", default="ecp5-85f", help="FPGA for the resource estimate and synthesis (ecp5-85f)")
    r.add_argument("--synth", type=_count, default=0, metavar="N",
                   help="synthesize N points (Yosys) to calibrate the estimate (default 0)")
    r.add_argument("--pnr", type=_count, default=0, metavar="M",
                   help="of those, place and route the M cheapest for Fmax (minutes each)")
    r.add_argument("--synth-max-pes", type=_positive_int, metavar="PES", help="synthesize only arrays of at most PES PEs")
    r.add_argument("--elaborate", action="store_true",
                   help="prior DSP and block-RAM counts from the elaborated design (seconds per accelerator) "
                        "instead of the spec (milliseconds); the calibration corrects either")
    r.add_argument("--timeout", type=_seconds, metavar="S", help="kill a synthesis tool run after S seconds")
    o = p.add_argument_group("output")
    o.add_argument("-o", "--output", type=_path, help="folder for points.json/.csv, calibration.csv, PNGs, "
                                                      "report.html")
    o.add_argument("--objectives", default="cycles,area,energy_pj",
                   help=f"frontier objectives, all minimized, of {', '.join(OBJECTIVES)}; one no point carries "
                        f"(latency_us without a placed point) is skipped (default cycles,area,energy_pj)")
    o.add_argument("--limit", type=_positive_int, help="print at most this many frontier rows")
    o.add_argument("--json", action="store_true", help="print the sweep as JSON")
    o.add_argument("--cache-dir", metavar="DIR", help="result cache (default $HWGEN_EXPLORE_CACHE or "
                                                      "~/.cache/hwgen/explore)")
    o.add_argument("--no-cache", nargs="?", const="all", metavar="KINDS",
                   help="recompute (and refresh in the cache) everything, or only these kinds: model, resources, "
                        "synth (e.g. --no-cache model,resources)")
    _pool_options(p)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("report", help="write an HTML report of a folder (explore, compile, generate or synth output)")
    p.add_argument("dir", help="the folder")
    p.add_argument("--dram-bw", type=float, metavar="BYTES_PER_CYCLE",
                   help="a design's per-layer bound (compute or memory) and roofline at this DRAM bandwidth")
    p.add_argument("-o", "--output", help="the HTML file (default DIR/report.html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sweep-tests", help="run a pytest tier (default: -m slow, the cocotb sweep) spread over "
                                           "local workers or a Dask cluster")
    p.add_argument("paths", nargs="*", default=["tests"], help="test files or folders (default tests)")
    p.add_argument("-m", "--marker", default="slow", help="pytest marker expression (default slow)")
    p.add_argument("-k", "--keyword", help="pytest -k expression")
    p.add_argument("--retries", type=_count, default=1, help="re-run a test whose worker died (default 1)")
    p.add_argument("--timeout", type=_seconds, metavar="S", help="per test")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML of the results")
    _pool_options(p)
    p.set_defaults(func=cmd_sweep_tests)


def _recompute(value):
    if value is None:
        return ()
    kinds = ("model", "resources", "synth") if value == "all" else tuple(_list(value))
    for kind in kinds:
        if kind not in ("model", "resources", "synth"):
            raise ArgumentError(f"--no-cache takes model, resources or synth, not {kind!r}")
    return kinds


def _count(text):
    """A whole number >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return value


def _positive_int(text):
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _path(text):
    from pathlib import Path
    return Path(text)
