"""The `hwgen` command: generate, plan, sim, doctor (and synth, with the FPGA extra).

Exit status, the same for every subcommand (plugged-in ones too, see `guarded`):

    0   done, every check passed
    1   a check failed (a layer not bit-exact, not cycle-exact or timed out; a required tool missing) or a tool
        hwgen runs failed
    2   bad input: the design or design file, an option, an output path (one line on stderr, no traceback)
    3   hwgen synth --require-timing: the clock target was missed
    70  an internal error: a bug in hwgen (the traceback is printed; please report it)

Subcommands are plugged in by the modules that own them: a function ``add_<name>_parser(subparsers)`` adds a
subparser and sets ``func`` to a function of the parsed arguments that returns the exit status (see
`hwgen.fpga.cli.add_synth_parser`). `main` runs every ``func`` through `guarded`, so an `HwgenError` from any of
them is reported as one line with its ``exit_status``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from .errors import ArgumentError, HwgenError, OutputPathError

__all__ = ["main", "build_parser", "guarded", "EXIT_OK", "EXIT_CHECK_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 70

DESIGN_HELP = ("a built-in design (lenet_ws4, lenet_os4, conv_ws8, fc_mv, mlp_mv), the path of a Python file "
               "that defines `design = hwgen.Design(...)` (it runs as Python, with your rights), or a folder "
               "`hwgen compile` wrote")


def format_error(error: BaseException, prog: str = "hwgen") -> str:
    """One `HwgenError` as the command prints it: ``prog: error: message``, then its notes."""
    notes = "".join(f"\n{note}" for note in getattr(error, "__notes__", ()))
    return f"{prog}: error: {error}{notes}"


def guarded(func, args, *, prog: str = "hwgen") -> int:
    """Run ``func(args)`` under the exit-status contract of the module docstring: its status (None: 0); an
    `HwgenError` printed as one line with its ``exit_status``; an interrupt 130; anything else, a bug in
    hwgen, with its traceback and 70."""
    try:
        status = func(args)
        sys.stdout.flush()
        return EXIT_OK if status is None else int(status)
    except HwgenError as error:
        print(format_error(error, prog), file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`hwgen plan x | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:
        traceback.print_exc()
        print(f"{prog}: internal error: this is a bug in hwgen, not in your input; please report it with the "
              f"command line and the traceback above", file=sys.stderr)
        return EXIT_INTERNAL


def _design(name):
    from .design import load_design
    return load_design(name)


def _output_dir(text):
    """The ``-o`` directory: an existing directory or one that can be made; never a file or an empty name."""
    if not text.strip():
        raise OutputPathError("-o/--output is empty; give the directory to write into, e.g. -o build")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"-o {text}: {path} exists and is not a directory; give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputPathError(f"-o {text}: cannot create the directory {path} ({error.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"-o {text}: the directory {path} is not writable")
    return path


def _is_fxp(design):
    from .fxp.design import FxpDesign
    return isinstance(design, FxpDesign)


def _write_fxp(design, out_dir):
    from .fxp.design import generate_fxp
    verilog_path = out_dir / f"{design.spec.name}.v"
    manifest_path = out_dir / f"{design.spec.name}.json"
    verilog_path.write_text(generate_fxp(design.spec))
    manifest_path.write_text(json.dumps(design.manifest(), indent=2, sort_keys=True) + "\n")
    return verilog_path, manifest_path


def cmd_generate(args):
    from .verilog import write_design
    design = _design(args.design)
    out_dir = _output_dir(args.output)
    stem = f"{design.spec.name}_system" if args.system else design.spec.name
    targets = [out_dir / f"{stem}.v", out_dir / f"{stem}.json"]
    existing = [str(path) for path in targets if path.exists()]
    for path in targets:
        if path.exists() and not path.is_file():
            raise OutputPathError(f"-o {args.output}: {path} exists and is not a file; remove it or choose another "
                                  f"directory")
    started = time.perf_counter()
    try:
        if _is_fxp(design) and args.system:
            raise ArgumentError(f"{args.design}: --system wraps the DNN accelerator; the fixed-point engine has "
                                f"no system top")
        if _is_fxp(design):
            verilog_path, manifest_path = _write_fxp(design, out_dir)
        else:
            verilog_path, manifest_path = write_design(design, out_dir, system=args.system)
    except OSError as error:
        raise OutputPathError(f"-o {args.output}: cannot write {error.filename or out_dir} ({error.strerror})") from None
    if _is_fxp(design):
        print(f"{design.name}: {design.spec.size}x{design.spec.size} fixed-point engine "
              f"(Q{15 - design.spec.frac_bits}.{design.spec.frac_bits}), {design.workload.describe()}")
    else:
        print(f"{design.name}: {design.spec.rows}x{design.spec.cols} {design.spec.dataflow} array, "
              f"{len(design.plans())} layers" + (" - as a system: AXI4 DRAM master, AXI4-Lite registers, irq"
                                                  if args.system else ""))
    print(f"  wrote {verilog_path} and {manifest_path} in {time.perf_counter() - started:.2f} s")
    if existing:
        print(f"  overwrote {' and '.join(existing)}")
    return EXIT_OK


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


def _print_roofline(program, bandwidth, as_json):
    from .roofline import roofline
    if bandwidth is None:
        return None
    if not bandwidth > 0:
        raise ArgumentError(f"--dram-bw must be a positive number of bytes per cycle, not {bandwidth}")
    rows = roofline(program, bandwidth)
    if as_json:
        return rows
    pes = program.spec.pes
    print(f"\nroofline at {bandwidth:g} DRAM bytes/cycle (ridge: {pes / bandwidth:.1f} MACs/byte):")
    print(f"{'layer':<12}{'DRAM bytes':>12}{'MACs/byte':>11}{'compute cyc':>13}{'memory cyc':>12}  bound")
    for row in rows:
        print(f"{row['layer']:<12}{row['dram_bytes']:>12}{row['intensity']:>11.1f}{row['compute_cycles']:>13}"
              f"{row['memory_cycles']:>12}  {row['bound']}")
    return rows


def _print_energy(program, table_arg, as_json):
    from .energy import DEFAULT_TABLE, EnergyTable, layer_energy
    if table_arg is None:
        return None
    path = DEFAULT_TABLE if table_arg == "default" else table_arg
    try:
        table = EnergyTable.load(path)
    except (OSError, KeyError, ValueError) as error:
        raise ArgumentError(f"--energy: cannot read the energy table {path} ({error}); give a JSON file like "
                         f"{DEFAULT_TABLE}") from None
    rows = [layer_energy(pl.plan, table, source=pl.source, dest=pl.dest) for pl in program.layers]
    if as_json:
        return rows
    total = sum(r["total_pj"] for r in rows)
    macs = sum(r["macs"] for r in rows)
    print(f"\nenergy ({table.source.split(',')[0]}): nJ per layer")
    print(f"{'layer':<12}{'DRAM':>10}{'SRAM':>10}{'compute':>10}{'total':>10}{'pJ/MAC':>9}")
    for r in rows:
        print(f"{r['layer']:<12}{r['dram_pj'] / 1e3:>10.1f}{r['sram_pj'] / 1e3:>10.1f}{r['compute_pj'] / 1e3:>10.1f}"
              f"{r['total_pj'] / 1e3:>10.1f}{r['pj_per_mac']:>9.2f}")
    print(f"whole: {total / 1e3:.1f} nJ per input, {total / macs:.2f} pJ/MAC, {1e12 / total:,.0f} inferences per joule")
    return rows


def _layer_program(design):
    """A layer design as a program of independent layers (each from `acts`, to `out`) for the roofline."""
    from types import SimpleNamespace
    layers = [SimpleNamespace(plan=plan, source="stream", dest="out") for plan in design.plans()]
    return SimpleNamespace(layers=layers, spec=design.spec)


def _plan_fxp(design, args):
    if args.dram_bw is not None or args.energy is not None:
        raise ArgumentError(f"{args.design} is a fixed-point engine design: --dram-bw and --energy are for the "
                            f"array's layers (benchmarks/lstm.py gives the engine's weight-bandwidth roof)")
    rows, timing = design.rows()
    if args.json:
        print(json.dumps({"design": design.name, "spec": design.spec.to_dict(),
                          "workload": design.manifest()["workload"], "commands": rows,
                          "model_cycles": timing.cycles()}, indent=2))
        return EXIT_OK
    spec = design.spec
    print(f"{design.name}: {spec.size}x{spec.size} fixed-point engine (Q{15 - spec.frac_bits}.{spec.frac_bits}), "
          f"{design.workload.describe()}")
    print(f"{'#':>4}  {'command':<14}{'slots':>8}{'MACs':>10}{'model cyc':>11}{'bound':>8}{'out beats':>11}")
    for i, row in enumerate(rows):
        print(f"{i:>4}  {row['kind']:<14}{row['slots']:>8}{row['macs']:>10}{row['cycles']:>11}{row['bound']:>8}"
              f"{row['out_beats']:>11}")
    macs = sum(r["macs"] for r in rows)
    print(f"program: {len(rows)} commands, {macs} MACs, {timing.cycles()} cycles (model), "
          f"{macs / (timing.cycles() * spec.size ** 2):.1%} of the grid")
    return EXIT_OK


def _sim_fxp(design, args):
    from .sim.fxp_runner import run_fxp
    if args.layers is not None:
        raise ArgumentError(f"{args.design} is a fixed-point engine design: it runs one program, not layers; "
                            f"drop --layers")
    program = design.program()
    if not args.json:
        print(f"{design.name}: simulating {len(program.commands)} commands on {args.sim} "
              f"({'random stalls p=' + str(args.stall) if args.stall else 'no stalls'}) ...", flush=True)
    result = run_fxp(program, simulator=args.sim, stall=args.stall, seed=args.seed, build_root=args.cache_dir,
                     tag="cli")
    ok = result.exact and (args.stall > 0 or result.cycle_exact)
    measured, model = result.measured.cycles(), result.model.cycles()
    if args.json:
        print(json.dumps({"design": design.name, "simulator": args.sim, "stall": args.stall, "ok": ok,
                          "exact": result.exact, "cycle_exact": result.cycle_exact, "measured_cycles": measured,
                          "model_cycles": model, "out_beats": len(result.measured.out),
                          "build_seconds": result.build_seconds, "sim_seconds": result.wall_seconds}, indent=2))
        return EXIT_OK if ok else EXIT_CHECK_FAILED
    print(f"values: {'exact' if result.exact else 'WRONG'} ({len(result.measured.out)} out beats); cycles: "
          f"measured {measured}, model {model}"
          + ("" if args.stall else f" ({'every handshake at the modelled cycle' if result.cycle_exact else 'DIFFER'})"))
    if result.report and not result.exact:
        print("    " + result.report.replace("\n", "\n    "))
    print(f"build {result.build_seconds:.1f} s, simulation {result.wall_seconds:.1f} s")
    return EXIT_OK if ok else EXIT_CHECK_FAILED


def cmd_plan(args):
    design = _design(args.design)
    if _is_fxp(design):
        return _plan_fxp(design, args)
    if _is_network(design):
        if (args.dram_bw is not None or args.energy is not None) and not args.json:
            from .compiler.build import Build, BuildConfig, report_text
            print(report_text(Build(BuildConfig(model=None), network=design.network, spec=design.spec,
                                    program=design.program)))
            _print_roofline(design.program, args.dram_bw, False)
            _print_energy(design.program, args.energy, False)
            return EXIT_OK
        from .compiler.build import program_document
        program = design.program
        timeline = []
        model = program.predict(timeline=timeline)
        if args.json:
            doc = program_document(program, model, timeline)
            print(json.dumps({"design": design.name, **{k: v for k, v in doc.items() if k != "commands"}},
                             indent=2))
            return EXIT_OK
        from .compiler.build import Build, BuildConfig, report_text
        b = Build(BuildConfig(model=None), network=design.network, spec=design.spec, program=program)
        print(report_text(b))
        return EXIT_OK
    rows = _plan_rows(design)
    if args.json:
        doc = {"design": design.name, "spec": design.spec.to_dict(), "layers": rows}
        if args.dram_bw is not None:
            doc["roofline"] = _print_roofline(_layer_program(design), args.dram_bw, True)
        if args.energy is not None:
            doc["energy"] = _print_energy(_layer_program(design), args.energy, True)
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    print(f"{design.name}: {design.spec.rows}x{design.spec.cols} {design.spec.dataflow}")
    print(f"{'layer':<16}{'kind':<8}{'tiles':>6}{'folds':>7}{'KiB moved':>11}{'MACs':>12}{'model cyc':>11}"
          f"{'ideal':>10}{'util':>8}")
    for row in rows:
        print(f"{row['layer']:<16}{row['kind']:<8}{row['tiles']:>6}{row['folds']:>7}"
              f"{row['bytes_moved']['total'] / 1024:>11.1f}{row['macs']:>12}{row['cycles']:>11}"
              f"{row['ideal_cycles']:>10}{row['utilization']:>8.1%}")
    _print_roofline(_layer_program(design), args.dram_bw, False)
    _print_energy(_layer_program(design), args.energy, False)
    return EXIT_OK


def _layer_names(text):
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ArgumentError(f"--layers {text!r}: a layer name is empty; give comma-separated names, e.g. "
                            f"--layers conv1,fc1")
    return names


def cmd_sim(args):
    from .sim.runner import run_layers
    design = _design(args.design)
    if _is_fxp(design):
        return _sim_fxp(design, args)
    if _is_network(design):
        raise ArgumentError(f"{args.design} is a compiled network: run it with `hwgen run {args.design} --inputs "
                            f"X.npy`")
    plans = list(design.plans())
    if args.layers is not None:
        plans = [design.plan(name) for name in _layer_names(args.layers)]
    if not args.json:
        print(f"{design.name}: simulating {len(plans)} layers on {args.sim} "
              f"({'random stalls p=' + str(args.stall) if args.stall else 'no stalls'}) ...", flush=True)
    from .explore.progress import progress
    waves = args.waves if args.waves != "auto" else os.path.join("build", "waves", f"{design.name}.fst")
    with progress(False if args.json else None) as bars:
        bar = bars.task(f"{design.name}: layers", len(plans))
        result = run_layers(design.spec, plans, simulator=args.sim, stall=args.stall, seed=args.seed, tag="cli",
                            build_root=args.cache_dir, waves=waves, on_layer=lambda name: bar.advance())
    ok = len(result.layers) == len(plans)
    rows = []
    for layer in result.layers:
        cycles_ok = args.stall > 0 or layer["measured_cycles"] == layer["model_cycles"]
        ok &= layer["exact"] and cycles_ok
        rows.append({**layer, "cycles_match": layer["measured_cycles"] == layer["model_cycles"]})
    not_run = [plan.problem.name for plan in plans[len(result.layers):]]
    if args.json:
        print(json.dumps({"design": design.name, "simulator": args.sim, "stall": args.stall, "ok": ok,
                          "waves": result.waves,
                          "build_seconds": result.build_seconds, "sim_seconds": result.wall_seconds,
                          "layers": rows, "not_run": not_run, "run_dir": result.run_dir}, indent=2))
        return EXIT_OK if ok else EXIT_CHECK_FAILED
    print(f"{'layer':<16}{'values':<8}{'measured':>10}{'model':>10}{'MACs':>12}{'util':>8}{'cycles/s':>10}")
    for row in rows:
        rate = row["measured_cycles"] / row["wall_seconds"] if row["measured_cycles"] and row["wall_seconds"] else 0
        util = f"{row['utilization']:.1%}" if row["utilization"] else "-"
        values = "TIMEOUT" if row.get("timeout") else "exact" if row["exact"] else "WRONG"
        measured = "-" if row["measured_cycles"] is None else str(row["measured_cycles"])
        print(f"{row['layer']:<16}{values:<8}{measured:>10}{row['model_cycles']:>10}{row['macs']:>12}{util:>8}"
              f"{rate:>10.0f}")
        if row["report"]:
            print("    " + row["report"].replace("\n", "\n    "))
    if not_run:
        print(f"not run (after the timeout): {', '.join(not_run)}")
    print(f"build {result.build_seconds:.1f} s, simulation {result.wall_seconds:.1f} s"
          + (f"; waveform {result.waves}" if result.waves else ""))
    verdict = "all layers bit-exact" + ("" if args.stall else ", cycles equal to the model")
    print(verdict if ok else f"FAILED: see the rows above; the run's log is in {result.run_dir}")
    return EXIT_OK if ok else EXIT_CHECK_FAILED


def cmd_doctor(args):
    from .doctor import check_tools
    tools = check_tools()
    for tool in tools:
        print(tool.line())
    missing = [t for t in tools if not t.found]
    required = [t for t in missing if t.name.startswith(("icarus", "amaranth"))]
    print("all tools found" if not missing else f"{len(missing)} missing "
          f"({'required for the default flow' if required else 'optional'})")
    return EXIT_CHECK_FAILED if required else EXIT_OK


def _stall(text):
    """``--stall``: a probability p with 0 <= p < 1 (at 1 nothing would move; NaN must not mean 'no stalls')."""
    from .sim.runner import check_stall
    try:
        return check_stall(text)
    except ArgumentError:
        raise argparse.ArgumentTypeError(f"must be a probability p with 0 <= p < 1 (e.g. 0.3), not {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="hwgen", description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 ok, 1 a check or a tool failed, 2 bad input "
                                            "(design, option, path), 70 a bug in hwgen")
    parser.add_argument("--version", action="version", version=f"hwgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write the Verilog and the JSON manifest of a design",
                       description="Write DESIGN's accelerator as Verilog (<spec name>.v) and its manifest "
                                   "(<spec name>.json: spec, ports, buffers, configuration fields, layer plans).")
    p.add_argument("design", metavar="DESIGN", help=DESIGN_HELP)
    p.add_argument("-o", "--output", default="build", metavar="DIR",
                   help="directory to write into, made if missing; files of the same names are overwritten "
                        "(and reported) (default: build)")
    p.add_argument("--system", action="store_true",
                   help="generate the accelerator as a system on a memory bus (<spec name>_system.v): DMA "
                        "from DRAM over AXI4, a command processor, AXI4-Lite registers, an interrupt; default: "
                        "the plain stream ports")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("plan", help="print each layer's tiles, bytes moved and the cycle model's prediction",
                       description="Plan every layer of DESIGN on its accelerator and print commands (tiles), folds, "
                                   "bytes moved, MACs and the cycle model's prediction; nothing is generated. A "
                                   "compiled network (a `hwgen compile` folder) prints its program's report.")
    p.add_argument("design", metavar="DESIGN", help=DESIGN_HELP)
    p.add_argument("--json", action="store_true",
                   help="print the spec and every layer's figures (bytes moved per tensor too) as JSON")
    p.add_argument("--dram-bw", type=float, metavar="BYTES_PER_CYCLE",
                   help="also show each layer's DRAM traffic, intensity and bound (roofline) at this bandwidth")
    p.add_argument("--energy", nargs="?", const="default", metavar="TABLE.json",
                   help="also show each layer's energy split by DRAM, SRAM and compute (default table: Horowitz, "
                        "ISSCC 2014, 45 nm; or a JSON table of your own)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("sim", help="run the design's layers on the RTL against the NumPy reference",
                       description="Generate DESIGN's Verilog, build it with the simulator (cached) and run its "
                                   "layers through the cocotb testbench on random operands: values must equal "
                                   "the NumPy reference bit for bit and, without stalls, cycles the model's. A "
                                   "layer that takes far longer than the model is stopped and reported as a "
                                   "timeout at the cycle it reached.")
    p.add_argument("design", metavar="DESIGN", help=DESIGN_HELP)
    p.add_argument("--sim", default=os.environ.get("SIM", "icarus"), choices=("icarus", "verilator"),
                   help="RTL simulator (default: $SIM, else icarus)")
    p.add_argument("--stall", type=_stall, default=0.0, metavar="P",
                   help="probability 0 <= P < 1 that a stream stalls in a cycle: each source withholds its word "
                        "and the sink refuses, independently (default 0: no stalls, cycles checked exactly)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random operands and stalls (default 1)")
    p.add_argument("--layers", metavar="NAMES", help="comma-separated layer names to run (default: all)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="simulator build cache (default: $HWGEN_SIM_BUILD, else ~/.cache/hwgen/sim); each run's own "
                        "folder inside it is removed after a run that passed")
    p.add_argument("--waves", nargs="?", const="auto", metavar="FILE",
                   help="record the run's waveform: FILE.fst (Icarus, Verilator) or FILE.vcd (Verilator); "
                        "default build/waves/DESIGN.fst")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("doctor", help="list the simulation and FPGA tools and how to install missing ones")
    p.set_defaults(func=cmd_doctor)

    from .compiler.cli import add_compile_parsers
    add_compile_parsers(sub)
    from .explore.cli import add_explore_parsers
    add_explore_parsers(sub)

    try:
        from .fpga.cli import add_synth_parser
    except ImportError:
        pass
    else:
        add_synth_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
