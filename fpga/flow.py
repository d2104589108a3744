"""``synthesize()``: an accelerator spec -> pin-light top -> Yosys netlist -> nextpnr -> summary JSON + table.

Files written to the build directory (``build/fpga/<name>-<device>/`` by default), all named ``<name>.*``:

* ``.il`` the RTLIL of the pin-light top (input to Yosys), ``.ys`` the Yosys script;
* ``.json`` the synthesized netlist (nextpnr input), ``.v`` the same as Verilog, ``.stat.json`` Yosys cell counts;
* ``.report.json`` the nextpnr report, ``.config`` / ``.asc`` the placed-and-routed design;
* ``yosys.log``, ``nextpnr.log``;
* ``.summary.json`` and ``.summary.txt``: the figures (LUT4, carry, FF, DSP, block RAM, Fmax, critical path).
"""

import json
import time
from pathlib import Path

from amaranth.back import rtlil

from hwgen.hw.target import FAMILIES, Target

from .devices import get_device
from .fit import design_resources, estimate_fit
from .reports import cell_summary, format_summary, parse_nextpnr_report, parse_yosys_stat
from .tools import Progress, ToolError, file_arg, find_tool, run_tool
from .wrapper import PinLightTop

__all__ = ["synthesize", "default_component", "elaborate_fitted", "yosys_script", "after_read", "nextpnr_args", "memory_check",
           "share"]


def default_component(spec):
    """The real accelerator top for ``spec``."""
    try:
        from hwgen.hw.top import AcceleratorTop
    except ImportError as error:
        raise RuntimeError(f"hwgen.hw.top.AcceleratorTop is not available ({error})") from error
    return AcceleratorTop(spec)


def elaborate_fitted(spec, component, device, *, io_bits, name, lut_multipliers=False, check_fit=True):
    """``(rtlil_text, estimate)``: ``component`` behind the pin-light top, elaborated for ``device`` (its cells,
    e.g. DP16KD and MULT18X18D on ECP5, see `hwgen.hw.target`), with the exact fit check of the result. When
    the multipliers only fit with some in LUTs (``lut_multipliers``), it is elaborated again: with the PEs
    beyond the hard multipliers' count in logic, or without multiplier cells at all."""
    def elaborate(multiplier_cells, pe_cells=None):
        platform = (Target(device.family, multiplier_cells, pe_multiplier_cells=pe_cells)
                    if device.family in FAMILIES else None)
        return rtlil.convert(PinLightTop(component, io_bits=io_bits), name=name, platform=platform)
    text = elaborate(True)
    estimate = estimate_fit(spec, device, lut_multipliers=lut_multipliers, io_bits=io_bits, check=check_fit,
                            resources=design_resources(text))
    if estimate.lut_multipliers and device.family in FAMILIES:
        text = elaborate(estimate.use_dsp, estimate.pe_multiplier_cells)
    return text, estimate


# Registered copies of one signal (hwgen.hw.fanout, and the array's enable copies en_copy_*), each driving a
# part of a huge fan-out: keep them, or synthesis merges the identical flip-flops back into one net.
# `%a` adds the wires a copy is connected to: when a copy drives a submodule's port, Amaranth names the
# flip-flop's output after the port (`pop`, `read_pixel_parts`) and the copy is only an alias of it, which
# `%ci1` alone does not reach (en_copy_0/1/3, en_copy_ctl/acc and acc_read_addr_copy_* were merged so).
KEEP_COPIES = "setattr -set keep 1 w:*_copy_* %a %ci1:+$dff[Q] t:$dff %i"

# iCE40: no synchronous read port of an hwgen top reads a word in the cycle it is written, or uses what such a
# read returns (`hwgen.hw.bram.PipelinedMemory` documents it as undefined; the post-op chain's `pool_held`
# memory always reads a group after its write; Amaranth's SyncFIFOBuffered never reads an address it writes).
# Amaranth emits them as read-first ports (COLLISION_X_MASK 0), which SB_RAM40_4K cannot do: Yosys emulates it
# with the write address and data registered and a bypass multiplexer, two flip-flops and a LUT per bit of every
# memory (371 FF and 228 LUT4 of a 1x1 top). Declaring the collision undefined removes the emulation.
# (ECP5 buffers are DP16KD instances already.)
COLLISION_UNDEFINED = "setparam -set COLLISION_X_MASK 1 t:$memrd_v2 r:CLK_ENABLE=1 %i"


def after_read(device):
    """Yosys commands between reading the RTLIL and synthesis, for ``device``'s family."""
    return [KEEP_COPIES] + ([COLLISION_UNDEFINED] if device.family == "ice40" else [])


def yosys_script(name, device, *, use_dsp=True, mount=None, extra=()):
    f = lambda suffix: file_arg(f"{name}{suffix}", mount)  # noqa: E731
    synth = device.synth_cmd if use_dsp else device.synth_cmd_nodsp
    return "\n".join([
        f"read_rtlil {f('.il')}",
        *after_read(device),
        *extra,
        f"{synth} -top {name}",
        f"tee -q -o {f('.stat.json')} stat -json",
        f"write_json {f('.json')}",
        f"write_verilog -noattr {f('.v')}",
    ]) + "\n"


def nextpnr_args(name, device, *, freq_mhz, seed=1, mount=None, extra=()):
    f = lambda suffix: file_arg(f"{name}{suffix}", mount)  # noqa: E731
    args = list(device.nextpnr_args) + [
        "--json", f(".json"),
        "--report", f(".report.json"),
        "--freq", f"{freq_mhz:g}",
        # nextpnr exits 1 when timing fails: we want the figures and report the miss ourselves.
        "--timing-allow-fail",
        "--seed", str(seed),
    ]
    if device.family == "ecp5":
        args += ["--textcfg", f(".config")]
    else:
        args += ["--asc", f(".asc")]
    return args + list(extra)


def share(used, available):
    return None if not available else round(100.0 * used / available, 2)


def memory_check(estimate, cells_summary):
    """Did the buffers land in block RAM? Compare the spec's buffer bits with what Yosys mapped."""
    expected = estimate.brams
    bram = cells_summary.get("bram", 0) + cells_summary.get("spram", 0)
    lutram = cells_summary.get("lutram", 0)
    ff = cells_summary.get("ff", 0)
    if estimate.buffer_bits == 0:
        return {"status": "ok", "message": "no buffers", "expected_blocks": 0, "blocks": bram}
    if bram >= max(1, expected // 2):
        status, message = "ok", (f"{bram} block RAMs for {estimate.buffer_bits // 8} buffer bytes "
                                 f"(estimate {expected})")
    elif lutram and bram + lutram > 0:
        status, message = "warning", (f"only {bram} block RAMs (estimate {expected}) and {lutram} LUT-RAM cells: "
                                      f"some buffers went to distributed RAM")
    elif ff >= estimate.buffer_bits // 2:
        status, message = "error", (f"buffers mapped to flip-flops: {bram} block RAMs (estimate {expected}) and "
                                    f"{ff} flip-flops for {estimate.buffer_bits} buffer bits; the buffers need a "
                                    f"synchronous read port to map to block RAM")
    else:
        status, message = "warning", (f"{bram} block RAMs where about {expected} were expected for "
                                      f"{estimate.buffer_bits // 8} buffer bytes: did synthesis remove a buffer?")
    return {"status": status, "message": message, "expected_blocks": expected, "blocks": bram,
            "lutram": lutram}


def synthesize(spec, device, *, component=None, freq_mhz=None, build_dir=None, name=None,
               lut_multipliers=False, io_bits=8, seed=1, pnr=True, progress=None, timeout_s=None,
               yosys_extra=(), nextpnr_extra=(), check_fit=True, check_memory=True, breakdown=False):
    """Synthesize (and unless ``pnr=False`` place and route) ``spec`` for ``device``; return the summary dict.

    ``component``: the Amaranth stream component to wrap (default: ``AcceleratorTop(spec)``).
    ``lut_multipliers``: when the device has too few DSPs, build the PEs beyond them from LUTs (every multiplier
    when even the others do not fit; warning) instead of rejecting the design with :class:`~fpga.fit.FitError`.
    ``check_memory``: compare the block RAMs Yosys used with the spec's buffers (off for experiments whose
    component is not an accelerator).
    ``breakdown``: synthesize once more keeping the hierarchy and add the cells of every block
    (`fpga.breakdown`) as ``summary["breakdown"]`` (also ``<name>.breakdown.txt``).
    """
    device = get_device(device) if isinstance(device, str) else device
    progress = progress or Progress()
    freq_mhz = float(freq_mhz or device.default_freq_mhz)
    name = name or spec.name
    build_dir = Path(build_dir or Path("build") / "fpga" / f"{name}-{device.key}")
    build_dir.mkdir(parents=True, exist_ok=True)

    # Quick check from the spec alone (PE multipliers, buffers) before elaborating anything.
    estimate_fit(spec, device, lut_multipliers=lut_multipliers, io_bits=io_bits, check=check_fit)

    started = time.monotonic()
    progress.say(f"elaborating {name} ({spec.rows}x{spec.cols}) with a {io_bits}-bit pin-light top")
    # Exact fit check on the elaborated design: every multiplier (PEs, post-ops) and memory, before Yosys.
    rtlil_text, estimate = elaborate_fitted(spec, component if component is not None else default_component(spec),
                                            device, io_bits=io_bits, name=name, lut_multipliers=lut_multipliers,
                                            check_fit=check_fit)
    (build_dir / f"{name}.il").write_text(rtlil_text)
    for warning in estimate.warnings:
        progress.say(f"warning: {warning}")
    use_dsp = estimate.use_dsp

    yosys = find_tool("yosys")
    script = lambda mount: yosys_script(name, device, use_dsp=use_dsp, mount=mount, extra=yosys_extra)  # noqa
    (build_dir / f"{name}.ys").write_text(script(None))
    yosys_s = run_tool(yosys, lambda mount: ["-p", script(mount).replace("\n", "; ")],
                       build_dir=build_dir, log_name="yosys.log", progress=progress, timeout_s=timeout_s)
    cells = parse_yosys_stat((build_dir / f"{name}.stat.json").read_text())
    counts = cell_summary(cells, device.family)

    summary = {
        "design": name, "device": device.key, "part": device.part, "package": device.package,
        "spec": spec.to_dict(), "macs": spec.pes, "freq_mhz": freq_mhz, "io_bits": io_bits,
        "multipliers": ("lut" if not use_dsp else "dsp" if estimate.pe_multiplier_cells is None
                        else f"dsp for {estimate.pe_multiplier_cells} PEs, lut for the rest"), "seed": seed,
        **counts,
        "yosys_cells": cells,
        "available": {"lut4": device.luts, "ff": device.ffs, "dsp": device.dsps,
                      "bram": device.brams[0].count,
                      **({"spram": device.brams[1].count} if len(device.brams) > 1 else {})},
        "estimate": estimate.to_dict(),
        "warnings": list(estimate.warnings),
        "pnr": pnr,
        "tool_seconds": {"yosys": round(yosys_s, 1)},
    }
    if breakdown:
        from .breakdown import format_breakdown, hierarchy_script, module_breakdown
        hier = lambda mount: hierarchy_script(name, file_arg(f"{name}.il", mount),  # noqa: E731
                                              file_arg(f"{name}.hier.stat.json", mount),
                                              synth=device.synth_cmd if use_dsp else device.synth_cmd_nodsp,
                                              keep_copies="\n".join(after_read(device)))
        seconds = run_tool(yosys, lambda mount: ["-p", hier(mount).replace("\n", "; ")], build_dir=build_dir,
                           log_name="yosys.hier.log", progress=progress, timeout_s=timeout_s)
        summary["tool_seconds"]["yosys_hierarchy"] = round(seconds, 1)
        summary["breakdown"] = module_breakdown((build_dir / f"{name}.hier.stat.json").read_text(), device.family)
        (build_dir / f"{name}.breakdown.txt").write_text(format_breakdown(summary["breakdown"],
                                                                          macs=spec.pes) + "\n")
    summary["memory_mapping"] = memory_check(estimate, counts) if check_memory else None
    if check_memory and summary["memory_mapping"]["status"] != "ok":
        summary["warnings"].append(summary["memory_mapping"]["message"])
    if use_dsp and counts.get("dsp", 0) < estimate.dsps_needed:
        summary["warnings"].append(f"Yosys used {counts.get('dsp', 0)} {device.dsp_cell} where "
                                   f"{estimate.dsps_needed} were estimated; some multipliers are in LUTs")

    if pnr:
        nextpnr = find_tool(device.nextpnr)
        try:
            pnr_s = run_tool(nextpnr, lambda mount: nextpnr_args(name, device, freq_mhz=freq_mhz, seed=seed,
                                                                 mount=mount, extra=nextpnr_extra),
                             build_dir=build_dir, log_name="nextpnr.log", progress=progress, timeout_s=timeout_s)
        except ToolError as error:
            hint = ""
            if "Unable to place" in error.log_tail or "failed to place" in error.log_tail.lower():
                hint = "\nhint: the design does not fit the device (see the utilisation lines in the log)"
            raise ToolError(str(error) + hint, log_path=error.log_path) from None
        summary["tool_seconds"]["nextpnr"] = round(pnr_s, 1)
        report = parse_nextpnr_report((build_dir / f"{name}.report.json").read_text(), device)
        summary.update(report)
        util = report["utilization"]
        # Device shares: DSP/BRAM/FF from nextpnr (what was placed); LUT share of the LUT/slice resource.
        summary["share"] = {metric: util[metric]["percent"] for metric in ("lut", "dsp", "bram", "io", "spram")
                            if metric in util}
        summary["share"]["lut4"] = summary["share"].pop("lut", None)
        summary["share"]["ff"] = share(counts["ff"], device.ffs)
        if report["fmax_mhz"] is not None:
            summary["gops"] = round(2 * spec.pes * report["fmax_mhz"] / 1000.0, 2)
            if not report["timing_met"]:
                summary["warnings"].append(f"timing missed: {report['fmax_mhz']:.2f} MHz < "
                                           f"{freq_mhz:g} MHz target")
    else:
        summary["share"] = {m: share(counts.get(m, 0), summary["available"].get(m))
                            for m in ("lut4", "ff", "dsp", "bram")}
        summary["fmax_mhz"] = None
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["files"] = {"dir": str(build_dir), "netlist": f"{name}.json", "verilog": f"{name}.v",
                        "rtlil": f"{name}.il", "yosys_log": "yosys.log",
                        **({"nextpnr_report": f"{name}.report.json", "nextpnr_log": "nextpnr.log"} if pnr else {}),
                        "summary": f"{name}.summary.json", "table": f"{name}.summary.txt"}
    (build_dir / f"{name}.summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (build_dir / f"{name}.summary.txt").write_text(format_summary(summary) + "\n")
    return summary
