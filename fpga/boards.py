"""Board bitstreams through ``amaranth-boards``: ULX3S-85F (ECP5) and iCEBreaker (iCE40 UP5K).

The accelerator sits behind :class:`~fpga.wrapper.PinLightTop`, whose few pins go to a header of the board:

* ULX3S: ``io_bits`` = 8 on the ``gpio`` 0 header (``din`` 0+..3-, ``din_valid`` 4+, ``din_push`` 4-,
  ``din_sel`` 5+ 5-, ``dout`` 6+..9-, ``dout_valid`` 10+, ``dout_next`` 10-, ``din_busy`` 11+, ``status`` 11-,
  ``rst`` 12+); clock: the 25 MHz oscillator.
* iCEBreaker: ``io_bits`` = 4; PMOD1A: ``din`` 1-4, ``din_valid`` 7, ``din_push`` 8, ``din_sel`` 9 10; PMOD1B:
  ``dout`` 1-4, ``dout_valid`` 7, ``dout_next`` 8, ``din_busy`` 9, ``status`` 10; PMOD2 pin 1: ``rst``;
  clock: the 12 MHz oscillator.

``rst`` is an active-high reset, synchronized to the clock (with the power-on reset). With several output
streams, ``dout_sel`` would need pins too; the accelerator has one, so it is tied to 0.

Amaranth writes the build files (``.il``, ``.ys``, ``.lpf``/``.pcf`` and ``build_<name>.json``); we run the
commands of ``build_<name>.json`` with the YoWASP tools ourselves, adding ``--report`` and
``--timing-allow-fail`` to nextpnr, so a board build gives the same summary as ``hwgen synth --device`` and a
missed board clock is reported instead of aborting the build.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.build import Attrs, Pins, Resource, Subsignal
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io

from .devices import get_device
from .fit import estimate_fit
from .flow import after_read, default_component, elaborate_fitted, memory_check, share
from .reports import cell_summary, format_summary, parse_nextpnr_report, parse_yosys_stat
from .tools import Progress, file_arg, find_tool, run_tool
from .wrapper import PinLightTop

__all__ = ["BOARDS", "Board", "BoardTop", "build_board", "prepare_board"]


@dataclass(frozen=True)
class Board:
    key: str
    device: str                  # key in fpga.devices
    io_bits: int
    clock_mhz: float
    bitstream_suffix: str

    def platform(self):
        if self.key == "ulx3s":
            from amaranth_boards.ulx3s import ULX3S_85F_Platform
            return ULX3S_85F_Platform()
        from amaranth_boards.icebreaker import ICEBreakerPlatform
        return ICEBreakerPlatform()

    def resources(self, status_bits):
        if self.key == "ulx3s":
            conn, attrs = ("gpio", 0), Attrs(IO_TYPE="LVCMOS33")
            g = [f"{i}{s}" for i in range(28) for s in "+-"]
            layout = [("din", "i", g[0:8]), ("din_valid", "i", [g[8]]), ("din_push", "i", [g[9]]),
                      ("din_sel", "i", g[10:12]), ("dout", "o", g[12:20]), ("dout_valid", "o", [g[20]]),
                      ("dout_next", "i", [g[21]]), ("din_busy", "o", [g[22]]),
                      ("status", "o", g[23:23 + status_bits])]
            rst = Resource("hwgen_rst", 0, Pins(g[24], dir="i", conn=conn), attrs)
            return [Resource("hwgen_io", 0, *[Subsignal(n, Pins(" ".join(p), dir=d, conn=conn)) for n, d, p in
                                               layout if p], attrs), rst]
        attrs = Attrs(IO_STANDARD="SB_LVCMOS")
        a, b = ("pmod", 0), ("pmod", 1)
        layout = [("din", "i", "1 2 3 4", a), ("din_valid", "i", "7", a), ("din_push", "i", "8", a),
                  ("din_sel", "i", "9 10", a), ("dout", "o", "1 2 3 4", b), ("dout_valid", "o", "7", b),
                  ("dout_next", "i", "8", b), ("din_busy", "o", "9", b),
                  ("status", "o", "10" if status_bits else "", b)]
        rst = Resource("hwgen_rst", 0, Pins("1", dir="i", conn=("pmod", 2)), attrs)
        return [Resource("hwgen_io", 0, *[Subsignal(n, Pins(p, dir=d, conn=c)) for n, d, p, c in layout if p],
                         attrs), rst]


BOARDS = {
    "ulx3s": Board("ulx3s", "ecp5-85f", io_bits=8, clock_mhz=25.0, bitstream_suffix=".bit"),
    "icebreaker": Board("icebreaker", "ice40-up5k", io_bits=4, clock_mhz=12.0, bitstream_suffix=".bin"),
}


class BoardTop(Elaboratable):
    """Connects a :class:`PinLightTop` to the board's ``hwgen_io`` resource."""

    def __init__(self, wrapped):
        self.wrapped = wrapped

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = top = self.wrapped
        res = platform.request("hwgen_io", 0, dir="-")
        if len(top.outputs) > 1:
            raise ValueError("board tops route one output stream; dout_sel has no pins")

        def buffer(direction, name):
            m.submodules[f"{name}_buffer"] = buf = io.Buffer(direction, getattr(res, name))
            return buf

        for name in ("din", "din_valid", "din_push", "din_sel", "dout_next"):
            m.d.comb += getattr(top, name).eq(buffer("i", name).i)
        for name in ("dout", "dout_valid", "din_busy"):
            m.d.comb += buffer("o", name).o.eq(getattr(top, name))
        if top.status_bits:
            status = buffer("o", "status")
            m.d.comb += status.o.eq(top.status[:len(status.o)])
        m.d.comb += top.dout_sel.eq(0)
        return m


def prepare_board(spec, board, *, component=None, name=None, use_dsp=True, pe_multiplier_cells=None, seed=1):
    """Elaborate the board top and let Amaranth write its build plan (no tool runs); returns the plan."""
    board = BOARDS[board] if isinstance(board, str) else board
    device = get_device(board.device)
    name = name or spec.name
    wrapped = PinLightTop(component if component is not None else default_component(spec), io_bits=board.io_bits)
    platform = board.platform()
    platform.multiplier_cells = use_dsp     # `hwgen.hw.target`: no MULT18X18D cells with LUT multipliers
    platform.pe_multiplier_cells = pe_multiplier_cells      # or only this many PEs on them
    platform.add_resources(board.resources(wrapped.status_bits))
    platform.default_rst = "hwgen_rst"
    synth_opts = []
    if device.family == "ice40" and use_dsp:
        synth_opts.append("-dsp")      # without it synth_ice40 leaves the 8 SB_MAC16 unused
    if device.family == "ecp5" and not use_dsp:
        synth_opts.append("-nodsp")
    overrides = {
        "synth_opts": " ".join(synth_opts),
        "script_after_read": "\n".join(after_read(device)),
        "script_after_synth": f"tee -q -o {name}.stat.json stat -json",
        "nextpnr_opts": f"--timing-allow-fail --report {name}.report.json --seed {seed}",
        "verbose": True,             # full tool output in the logs (and for the progress lines)
        "debug_verilog": False,
    }
    # The ULX3S platform lists openFPGALoader among its required tools even when nothing is programmed.
    saved = os.environ.get("OPENFPGALOADER")
    os.environ["OPENFPGALOADER"] = saved or "true"
    try:
        return platform.build(BoardTop(wrapped), name=name, do_build=False, do_program=False, **overrides)
    finally:
        if saved is None:
            del os.environ["OPENFPGALOADER"]


def _map_args(argv, name, mount):
    return [file_arg(a, mount) if a.startswith(f"{name}.") else a for a in argv]


def build_board(spec, board, *, component=None, build_dir=None, name=None, lut_multipliers=False, seed=1,
                progress=None, timeout_s=None, check_fit=True):
    """Build the bitstream of ``spec`` for ``board`` ("ulx3s" | "icebreaker"); return the summary dict
    (with ``bitstream`` = its path)."""
    board = BOARDS[board] if isinstance(board, str) else board
    device = get_device(board.device)
    progress = progress or Progress()
    name = name or spec.name
    build_dir = Path(build_dir or Path("build") / "fpga" / f"{name}-{board.key}")
    build_dir.mkdir(parents=True, exist_ok=True)
    # Quick check from the spec alone (PE multipliers, buffers) before elaborating anything.
    estimate_fit(spec, device, lut_multipliers=lut_multipliers, io_bits=board.io_bits, check=check_fit)
    started = time.monotonic()

    component = component if component is not None else default_component(spec)
    # Exact fit check on the elaborated design (post-op multipliers and every memory count too).
    _, estimate = elaborate_fitted(spec, component, device, io_bits=board.io_bits, name=name,
                                   lut_multipliers=lut_multipliers, check_fit=check_fit)
    for warning in estimate.warnings:
        progress.say(f"warning: {warning}")
    use_dsp = estimate.use_dsp
    plan = prepare_board(spec, board, component=component, name=name, use_dsp=use_dsp,
                         pe_multiplier_cells=estimate.pe_multiplier_cells, seed=seed)
    plan.extract(str(build_dir))
    commands = json.loads((build_dir / f"build_{name}.json").read_text())["commands"]

    seconds = {}
    for argv in commands:
        tool = find_tool(argv[0])
        if tool.name == "yosys" and os.environ.get("YOWASP_MOUNT"):
            # The script names files relative to the build directory: point them into the sandbox mount.
            script = (build_dir / f"{name}.ys").read_text()
            for suffix in (".il", ".json", ".stat.json"):
                script = script.replace(f" {name}{suffix}", f" {file_arg(name + suffix, '/hwgen_build')}")
            (build_dir / f"{name}.mount.ys").write_text(script)
            argv = [a if a != f"{name}.ys" else f"{name}.mount.ys" for a in argv]
        args = argv[1:]
        seconds[tool.name] = round(run_tool(tool, lambda mount, args=args: _map_args(args, name, mount),
                                            build_dir=build_dir, log_name=f"{tool.name}.log", progress=progress,
                                            timeout_s=timeout_s), 1)

    cells = parse_yosys_stat((build_dir / f"{name}.stat.json").read_text())
    counts = cell_summary(cells, device.family)
    report = parse_nextpnr_report((build_dir / f"{name}.report.json").read_text(), device)
    bitstream = build_dir / f"{name}{board.bitstream_suffix}"
    summary = {
        "design": name, "device": device.key, "board": board.key, "part": device.part, "package": device.package,
        "spec": spec.to_dict(), "macs": spec.pes, "freq_mhz": board.clock_mhz, "io_bits": board.io_bits,
        "multipliers": "dsp" if use_dsp else "lut", "seed": seed, **counts, "yosys_cells": cells,
        "available": {"lut4": device.luts, "ff": device.ffs, "dsp": device.dsps, "bram": device.brams[0].count,
                      **({"spram": device.brams[1].count} if len(device.brams) > 1 else {})},
        "estimate": estimate.to_dict(), "warnings": list(estimate.warnings), "pnr": True, **report,
        "bitstream": str(bitstream), "bitstream_bytes": bitstream.stat().st_size if bitstream.exists() else None,
        "tool_seconds": seconds,
    }
    summary["share"] = {m: report["utilization"][k]["percent"] for m, k in
                        (("lut4", "lut"), ("dsp", "dsp"), ("bram", "bram"), ("io", "io"))
                        if k in report["utilization"]}
    summary["share"]["ff"] = share(counts["ff"], device.ffs)
    summary["memory_mapping"] = memory_check(estimate, counts)
    if summary["memory_mapping"]["status"] != "ok":
        summary["warnings"].append(summary["memory_mapping"]["message"])
    if report["fmax_mhz"] is not None:
        summary["gops"] = round(2 * spec.pes * report["fmax_mhz"] / 1000.0, 2)
        summary["gops_at_board_clock"] = round(2 * spec.pes * board.clock_mhz / 1000.0, 3)
        if not report["timing_met"]:
            summary["warnings"].append(f"timing missed at the {board.clock_mhz:g} MHz board clock: "
                                       f"{report['fmax_mhz']:.2f} MHz")
    if not bitstream.exists():
        summary["warnings"].append(f"no bitstream was written ({bitstream})")
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["files"] = {"dir": str(build_dir), "bitstream": bitstream.name, "netlist": f"{name}.json",
                        "nextpnr_report": f"{name}.report.json", "summary": f"{name}.summary.json",
                        "table": f"{name}.summary.txt", "constraints": f"{name}{'.lpf' if device.family == 'ecp5' else '.pcf'}"}
    (build_dir / f"{name}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (build_dir / f"{name}.summary.txt").write_text(format_summary(summary) + f"\nbitstream: {bitstream}\n")
    return summary
