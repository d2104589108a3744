"""``hwgen synth``: synthesize an accelerator for an FPGA, or build a board bitstream.

    hwgen synth DESIGN --device ecp5-85f|ice40-up5k [--freq MHZ]
    hwgen synth --rows 8 --cols 8 --device ecp5-85f --freq 150
    hwgen synth DESIGN --board ulx3s|icebreaker

The main CLI wires it with ``add_synth_parser(subparsers)`` and dispatches to ``run_synth(args)``; it also works on
its own: ``python -m hwgen.fpga.cli synth ...``.

Exit status: 0 done (a missed timing target is reported, not fatal, unless ``--require-timing``); 1 a tool failed;
2 the design does not fit the device or the arguments are wrong; 3 timing missed with ``--require-timing``.
"""

import argparse
import dataclasses
import json
import sys

from .devices import DEVICES, get_device
from .fit import FitError, estimate_fit
from .tools import Progress, ToolError
from hwgen.spec import DATAFLOWS

__all__ = ["add_synth_parser", "run_synth", "spec_from_args", "main"]


def add_synth_parser(subparsers):
    p = subparsers.add_parser(
        "synth", help="synthesize for an FPGA (Yosys + nextpnr): resources, Fmax, bitstreams",
        description="Synthesize an accelerator with Yosys and place and route it with nextpnr (YoWASP tools), "
                    "then report LUT4 / carry / FF / DSP / block RAM use, post-route Fmax and the critical path "
                    "(JSON + table). With --board, build a bitstream for the board.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  hwgen synth lenet_ws4 --device ecp5-85f --freq 150\n"
               "  hwgen synth conv_ws8 --estimate\n"
               "  hwgen synth --rows 8 --cols 8 --device ecp5-85f\n"
               "  hwgen synth --rows 2 --cols 2 --act-buffer-bytes 256 --weight-buffer-bytes 256 \\\n"
               "      --acc-buffer-bytes 256 --no-postops --device ice40-up5k\n"
               "  hwgen synth lenet_ws4 --board ulx3s\n"
               "  hwgen synth my_design.py --device ecp5-85f    # a file defining design = hwgen.Design(...)\n"
               "\nexit status: 0 done, 1 a tool failed, 2 does not fit or bad input, 3 timing missed with "
               "--require-timing\n")
    p.add_argument("design", nargs="?", metavar="DESIGN",
                   help="a built-in design (lenet_ws4, lenet_os4, conv_ws8, fc_mv, mlp_mv) or the path of a design "
                        "file; optional with --rows/--cols")
    target = p.add_argument_group("target")
    target.add_argument("--device", choices=sorted(DEVICES), help="FPGA (default ecp5-85f)")
    target.add_argument("--board", choices=["ulx3s", "icebreaker"],
                        help="build a bitstream for this board (ULX3S-85F or iCEBreaker) instead")
    target.add_argument("--freq", type=float, metavar="MHZ",
                        help="target clock for place and route (default 150 on ECP5, 24 on iCE40; "
                             "boards use their oscillator)")
    target.add_argument("--lut-multipliers", action="store_true",
                        help="if the device has too few DSPs, build the PEs beyond them from LUTs (all "
                             "multipliers if even the post-ops' do not fit; warning) instead of rejecting the "
                             "design")
    target.add_argument("--io-bits", type=int, default=8, help="width of the pin-light top's data pins (8)")
    target.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (1)")
    target.add_argument("--router", choices=["router1", "router2"],
                        help="nextpnr router (default: nextpnr's, router1; router2 finishes sooner on big arrays "
                             "but placed these designs slower)")
    target.add_argument("--placer", choices=["heap", "static", "sa"],
                        help="nextpnr placer (default: nextpnr's, heap)")
    target.add_argument("--tmg-ripup", action="store_true",
                        help="nextpnr's experimental timing-driven rip-up in the router (--tmg-ripup): nets "
                             "that miss timing are routed again, not only congested ones")
    spec = p.add_argument_group("spec (without DESIGN, or overriding its spec)")
    spec.add_argument("--rows", type=int)
    spec.add_argument("--cols", type=int)
    spec.add_argument("--dataflow", choices=list(DATAFLOWS))
    spec.add_argument("--act-type")
    spec.add_argument("--weight-type")
    spec.add_argument("--acc-type")
    spec.add_argument("--act-buffer-bytes", type=int)
    spec.add_argument("--weight-buffer-bytes", type=int)
    spec.add_argument("--acc-buffer-bytes", type=int)
    spec.add_argument("--no-postops", dest="postops", action="store_const", const=False,
                      help="build without the post-op chain (postops=False: raw int32 accumulators on out)")
    spec.add_argument("--postop-lanes", type=int, metavar="N",
                      help="channels the post-op chain processes per cycle (a divisor of cols; default cols // 4)")
    spec.add_argument("--mv-engine", dest="mv_engine", action="store_const", const=True,
                      help="build the matrix-vector engine beside the array (mv_engine=True)")
    spec.add_argument("--chaining", action="store_const", const=True,
                      help="build the on-chip feedback from the post-op chain to the loader (chaining=True)")
    spec.add_argument("--packed-weight-bits", dest="packed_weight_bits", type=_bit_widths, metavar="BITS",
                      help="the matrix-vector engine also takes weights of these widths packed into bytes: 4 "
                           "(int4, two per byte), 2 (int2, four per byte) or 4,2 (packed_weight_bits; needs "
                           "--mv-engine or --dataflow matrix_vector, int8 weights)")
    spec.add_argument("--sparse-mv", dest="sparse_mv", action="store_const", const=True,
                      help="build the sparse matrix-vector engine beside the matrix-vector engine (sparse_mv=True; "
                           "needs --mv-engine or --dataflow matrix_vector)")
    spec.add_argument("--sparse-depth", dest="sparse_depth", type=int, metavar="N",
                      help="the sparse engine's accumulators per lane (sparse_depth; default 64)")
    spec.add_argument("--no-pooling", dest="postop_pooling", action="store_const", const=False,
                      help="build the post-op chain without its 2x2 pooling (postop_pooling=False: bias, "
                           "requantization and ReLU; a smaller chain for small devices)")
    spec.add_argument("--max-out-channels", type=int, metavar="N",
                      help="output channels the post-op parameter memory holds per bank (default 512)")
    spec.add_argument("--max-pool-width", type=int, metavar="N",
                      help="widest output row the 2x2 pooling line buffer holds (default 64)")
    spec.add_argument("--postop-fifo-depth", type=int, metavar="N",
                      help="beats the FIFO in front of a post-op chain narrower than the array holds "
                           "(default 2 x the accumulator buffer's words, at least 16)")
    spec.add_argument("--name", help="top module / file name")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--out", metavar="DIR", help="build directory (default build/fpga/<name>-<target>)")
    out.add_argument("--no-pnr", action="store_true", help="synthesis only (no place and route, no Fmax)")
    out.add_argument("--breakdown", action="store_true",
                     help="also synthesize keeping the hierarchy and report the cells of every block "
                          "(<name>.breakdown.txt: PEs, skew, accumulator, post-op chain, loader, ...)")
    out.add_argument("--estimate", action="store_true",
                     help="only print the fit estimate (DSPs, block RAMs, pins) and exit")
    out.add_argument("--json", action="store_true", help="print the summary as JSON instead of the table")
    out.add_argument("--require-timing", action="store_true", help="exit 3 when the target clock is missed")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    out.add_argument("--timeout", type=float, metavar="S", help="kill a tool after S seconds")
    p.set_defaults(func=run_synth)
    return p


DEFAULT_DEPTHS = {"act": 2048, "weight": 2048, "acc": 256}


def _bit_widths(text):
    """``--packed-weight-bits 4,2`` -> ``(4, 2)`` (the spec checks which widths it can pack)."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 4 or 4,2, not {text!r}") from None

_SPEC_FIELDS = {"dataflow": "dataflow", "rows": "rows", "cols": "cols", "act_type": "act_type", "weight_type": "weight_type",
                "acc_type": "acc_type", "act_buffer_bytes": "act_buffer_bytes",
                "weight_buffer_bytes": "weight_buffer_bytes", "acc_buffer_bytes": "acc_buffer_bytes",
                "postops": "postops", "postop_lanes": "postop_lanes", "mv_engine": "mv_engine",
                "chaining": "chaining", "packed_weight_bits": "packed_weight_bits", "max_out_channels": "max_out_channels",
                "max_pool_width": "max_pool_width", "postop_fifo_depth": "postop_fifo_depth", "postop_pooling": "postop_pooling",
                "sparse_mv": "sparse_mv", "sparse_depth": "sparse_depth", "name": "name"}


def spec_from_args(args):
    """The spec: the design's (if given), with every spec option given on the command line applied."""
    from hwgen.spec import AcceleratorSpec
    overrides = {field: getattr(args, attr) for attr, field in _SPEC_FIELDS.items()
                 if getattr(args, attr, None) is not None}
    if args.design:
        from hwgen.design import load_design
        from hwgen.errors import ArgumentError
        from hwgen.spec import AcceleratorSpec
        spec = load_design(args.design).spec
        if not isinstance(spec, AcceleratorSpec):
            raise ArgumentError(f"{args.design}: synth takes an array design; the fixed-point engine "
                                f"({type(spec).__name__}) has no FPGA flow yet (hwgen generate writes its Verilog)")
        return dataclasses.replace(spec, **overrides) if overrides else spec
    if "rows" not in overrides or "cols" not in overrides:
        raise ValueError("give a DESIGN, or --rows and --cols")
    prefix = {"output_stationary": "os", "matrix_vector": "mv"}.get(overrides.get("dataflow"), "ws")
    overrides.setdefault("name", f"{prefix}{overrides['rows']}x{overrides['cols']}"
                                 + ("_nopost" if overrides.get("postops") is False else ""))
    # Buffers not given: the depths of the spec's defaults for an 8x8 int8 array (2048 act and weight words,
    # 256 accumulator words), so any array shape gets whole words.
    from hwgen.dtypes import parse_dtype
    bits = {field: parse_dtype(overrides.get(field, default), what=field).bits
            for field, default in (("act_type", "int8"), ("weight_type", "int8"), ("acc_type", "int32"))}
    rows, cols = overrides["rows"], overrides["cols"]
    overrides.setdefault("act_buffer_bytes", DEFAULT_DEPTHS["act"] * rows * bits["act_type"] // 8)
    lanes = cols * (rows if overrides.get("dataflow") == "matrix_vector" else 1)
    overrides.setdefault("weight_buffer_bytes", DEFAULT_DEPTHS["weight"] * lanes * bits["weight_type"] // 8)
    overrides.setdefault("acc_buffer_bytes", DEFAULT_DEPTHS["acc"] * cols * bits["acc_type"] // 8)
    return AcceleratorSpec(**overrides)


def run_synth(args):
    err = sys.stderr
    try:
        spec = spec_from_args(args)
    except Exception as error:                      # bad spec or design: a usage error
        print(f"hwgen synth: {error}", file=err)
        return 2
    if args.board and args.device:
        from .boards import BOARDS
        if BOARDS[args.board].device != get_device(args.device).key:
            print(f"hwgen synth: --board {args.board} is a {BOARDS[args.board].device}, not {args.device}",
                  file=err)
            return 2
    progress = Progress(enabled=not args.quiet)
    try:
        if args.estimate:
            from .boards import BOARDS
            device = BOARDS[args.board].device if args.board else (args.device or "ecp5-85f")
            io_bits = BOARDS[args.board].io_bits if args.board else args.io_bits
            estimate = estimate_fit(spec, device, lut_multipliers=args.lut_multipliers, io_bits=io_bits,
                                    check=False)
            if not estimate.problems:
                # The spec fits on its own: count every multiplier and memory of the elaborated top.
                from .flow import default_component, elaborate_fitted
                _, estimate = elaborate_fitted(spec, default_component(spec), get_device(device), io_bits=io_bits,
                                               name=spec.name, lut_multipliers=args.lut_multipliers,
                                               check_fit=False)
            print(json.dumps(estimate.to_dict(), indent=2))
            return 2 if estimate.problems else 0
        if args.board:
            from .boards import build_board
            summary = build_board(spec, args.board, build_dir=args.out, lut_multipliers=args.lut_multipliers,
                                  seed=args.seed, progress=progress, timeout_s=args.timeout)
        else:
            from .flow import synthesize
            summary = synthesize(spec, args.device or "ecp5-85f", freq_mhz=args.freq, build_dir=args.out,
                                 lut_multipliers=args.lut_multipliers, io_bits=args.io_bits, seed=args.seed,
                                 pnr=not args.no_pnr, progress=progress, timeout_s=args.timeout,
                                 nextpnr_extra=nextpnr_options(args), breakdown=args.breakdown)
    except FitError as error:
        print(f"hwgen synth: {error}", file=err)
        return 2
    except ToolError as error:
        print(f"hwgen synth: {error}", file=err)
        return 1
    from .reports import format_summary
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if summary.get("breakdown"):
            from .breakdown import format_breakdown
            print(format_breakdown(summary["breakdown"], macs=summary["macs"]))
        if summary.get("bitstream"):
            print(f"bitstream: {summary['bitstream']}")
        if summary.get("files"):
            print(f"files: {summary['files']['dir']}/ ({summary['files']['summary']}, "
                  f"{summary['files']['table']}, {summary['files']['netlist']}, ...)")
    if args.require_timing and summary.get("timing_met") is False:
        return 3
    return 0


def nextpnr_options(args):
    """The nextpnr options the command line chose (router, placer, timing-driven rip-up)."""
    options = []
    for name in ("router", "placer"):
        if getattr(args, name, None):
            options += [f"--{name}", getattr(args, name)]
    if getattr(args, "tmg_ripup", False):
        options.append("--tmg-ripup")
    return options


def main(argv=None):
    from hwgen.cli import guarded
    parser = argparse.ArgumentParser(prog="python -m hwgen.fpga.cli")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_synth_parser(subparsers)
    args = parser.parse_args(argv)
    return guarded(args.func, args, prog="hwgen synth")


if __name__ == "__main__":
    sys.exit(main())
