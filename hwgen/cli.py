"""The `hwgen` command: generate, plan, sim, doctor (and synth, with the FPGA extra)."""

import argparse
import json
import os
import sys
import time

from .errors import HwgenError

__all__ = ["main"]


def _design(name):
    from .design import load_design
    return load_design(name)


def cmd_generate(args):
    from .verilog import write_design
    design = _design(args.design)
    started = time.perf_counter()
    verilog_path, manifest_path = write_design(design, args.output)
    print(f"{design.name}: {design.spec.rows}x{design.spec.cols} {design.spec.dataflow} array, "
          f"{len(design.plans())} layers")
    print(f"  wrote {verilog_path} and {manifest_path} in {time.perf_counter() - started:.2f} s")
    return 0


def _plan_rows(design):
    from .perf import predict_plan
    rows = []
    for plan in design.plans():
        estimate = predict_plan(plan)
        rows.append({"layer": plan.problem.name, "kind": plan.problem.kind, "tiles": len(plan.tiles),
                     "order": plan.order, "bytes_moved": plan.bytes_moved,
                     "folds": sum(t.schedule.folds for t in plan.tiles),
                     **{k: v for k, v in estimate.to_dict().items() if k != "layer"}})
    return rows


def _is_network(design):
    from .compiler.design import NetworkDesign
    return isinstance(design, NetworkDesign)


def cmd_plan(args):
    design = _design(args.design)
    if _is_network(design):
        from .compiler.build import program_document
        program = design.program
        timeline = []
        model = program.predict(timeline=timeline)
        if args.json:
            doc = program_document(program, model, timeline)
            print(json.dumps({"design": design.name, **{k: v for k, v in doc.items() if k != "commands"}},
                             indent=2))
            return 0
        from .compiler.build import Build, BuildConfig, report_text
        b = Build(BuildConfig(model=None), network=design.network, spec=design.spec, program=program)
        print(report_text(b))
        return 0
    rows = _plan_rows(design)
    if args.json:
        print(json.dumps({"design": design.name, "spec": design.spec.to_dict(), "layers": rows}, indent=2))
        return 0
    print(f"{design.name}: {design.spec.rows}x{design.spec.cols} {design.spec.dataflow}")
    print(f"{'layer':<16}{'kind':<8}{'tiles':>6}{'folds':>7}{'KiB moved':>11}{'MACs':>12}{'model cyc':>11}"
          f"{'ideal':>10}{'util':>8}")
    for row in rows:
        print(f"{row['layer']:<16}{row['kind']:<8}{row['tiles']:>6}{row['folds']:>7}"
              f"{row['bytes_moved']['total'] / 1024:>11.1f}{row['macs']:>12}{row['cycles']:>11}"
              f"{row['ideal_cycles']:>10}{row['utilization']:>8.1%}")
    return 0


def cmd_sim(args):
    from .sim.runner import run_layers
    design = _design(args.design)
    if _is_network(design):
        raise HwgenError(f"{args.design} is a compiled network: run it with `hwgen run {args.design} --inputs X.npy`")
    plans = design.plans()
    if args.layers:
        plans = [design.plan(name) for name in args.layers.split(",")]
    if not args.json:
        print(f"{design.name}: simulating {len(plans)} layers on {args.sim} "
              f"({'random stalls p=' + str(args.stall) if args.stall else 'no stalls'}) ...", flush=True)
    result = run_layers(design.spec, plans, simulator=args.sim, stall=args.stall, seed=args.seed, tag="cli",
                        build_root=args.cache_dir)
    ok = True
    rows = []
    for layer in result.layers:
        cycles_ok = args.stall > 0 or layer["measured_cycles"] == layer["model_cycles"]
        ok &= layer["exact"] and cycles_ok
        rows.append({**layer, "cycles_match": layer["measured_cycles"] == layer["model_cycles"]})
    if len(result.layers) != len(plans):
        ok = False
    if args.json:
        print(json.dumps({"design": design.name, "simulator": args.sim, "stall": args.stall, "ok": ok,
                          "build_seconds": result.build_seconds, "sim_seconds": result.wall_seconds,
                          "layers": rows}, indent=2))
        return 0 if ok else 1
    print(f"{'layer':<16}{'values':<8}{'measured':>10}{'model':>10}{'MACs':>12}{'util':>8}{'cycles/s':>10}")
    for row in rows:
        rate = row["measured_cycles"] / row["wall_seconds"] if row["measured_cycles"] and row["wall_seconds"] else 0
        util = f"{row['utilization']:.1%}" if row["utilization"] else "-"
        print(f"{row['layer']:<16}{'exact' if row['exact'] else 'WRONG':<8}{str(row['measured_cycles']):>10}"
              f"{row['model_cycles']:>10}{row['macs']:>12}{util:>8}{rate:>10.0f}")
        if row["report"]:
            print("    " + row["report"].replace("\n", "\n    "))
    print(f"build {result.build_seconds:.1f} s, simulation {result.wall_seconds:.1f} s")
    verdict = "all layers bit-exact" + ("" if args.stall else ", cycles equal to the model")
    print(verdict if ok else "FAILED: see the rows above")
    return 0 if ok else 1


def cmd_doctor(args):
    from .doctor import check_tools
    tools = check_tools()
    for tool in tools:
        print(tool.line())
    missing = [t for t in tools if not t.found]
    required = [t for t in missing if t.name.startswith(("icarus", "amaranth"))]
    print("all tools found" if not missing else f"{len(missing)} missing "
          f"({'required for the default flow' if required else 'optional'})")
    return 1 if required else 0


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(prog="hwgen", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write the Verilog and the JSON manifest of a design")
    p.add_argument("design", help="a name in designs/ or the path of a design file")
    p.add_argument("-o", "--output", default="build", help="output directory (default: build)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("plan", help="print each layer's folds and the cycle model's prediction")
    p.add_argument("design")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("sim", help="run the design's layers on the RTL against the NumPy reference")
    p.add_argument("design")
    p.add_argument("--sim", default=os.environ.get("SIM", "icarus"), choices=("icarus", "verilator"))
    p.add_argument("--stall", type=float, default=0.0,
                   help="probability of a random valid/ready stall per stream and cycle (default 0)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--layers", help="comma-separated layer names (default: all)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="simulator build cache (default: $HWGEN_SIM_BUILD, else ~/.cache/hwgen/sim)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("doctor", help="list the simulation and FPGA tools and how to install missing ones")
    p.set_defaults(func=cmd_doctor)

    from .compiler.cli import add_compile_parsers
    add_compile_parsers(sub)

    try:
        from .fpga.cli import add_synth_parser
    except ImportError:
        pass
    else:
        add_synth_parser(sub)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HwgenError as error:
        print(f"hwgen: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
