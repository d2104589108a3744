"""Parse Yosys ``stat -json`` and the nextpnr ``--report`` JSON into one summary; render it as a table.

The nextpnr report is the source for device utilization (used / available per bel type), post-route Fmax per
clock and the critical paths; Yosys ``stat -json`` gives the mapped cell counts (LUT4 vs carry cells, FFs, DSPs,
block RAMs), which nextpnr folds together (an ECP5 ``TRELLIS_COMB`` is a LUT4 or half a CCU2C; an iCE40
``ICESTORM_LC`` holds a LUT, a carry and a FF).
"""

import json

__all__ = ["parse_yosys_stat", "parse_nextpnr_report", "cell_summary", "critical_path", "format_summary",
           "METRICS"]

# Summary metric -> cell types counted from Yosys stat, per family.
_CELLS = {
    "ecp5": {
        "lut4": ("LUT4",),
        "carry": ("CCU2C",),
        "ff": ("TRELLIS_FF",),
        "dsp": ("MULT18X18D",),
        "bram": ("DP16KD",),
        "lutram": ("TRELLIS_DPR16X4",),
        "widemux": ("PFUMX", "L6MUX21"),
    },
    "ice40": {
        "lut4": ("SB_LUT4",),
        "carry": ("SB_CARRY",),
        "ff": ("SB_DFF*",),
        "dsp": ("SB_MAC16",),
        "bram": ("SB_RAM40_4K",),
        "spram": ("SB_SPRAM256KA",),
    },
}

# The metrics a summary reports (and the baselines compare), in table order.
METRICS = ("lut4", "carry", "ff", "dsp", "bram", "spram", "lutram", "fmax_mhz")


def parse_yosys_stat(data):
    """``num_cells_by_type`` of the design (or of the only module) from Yosys ``stat -json`` output."""
    if isinstance(data, str):
        data = json.loads(data)
    design = data.get("design")
    if design is None:
        modules = data.get("modules", {})
        if len(modules) != 1:
            raise ValueError("Yosys stat JSON has no 'design' section and not exactly one module")
        design = next(iter(modules.values()))
    return {cell: count for cell, count in design.get("num_cells_by_type", {}).items()
            if not cell.startswith("$scopeinfo")}


def cell_summary(cells, family):
    """Map Yosys cell counts to the summary metrics (lut4, carry, ff, dsp, bram, ...) of ``family``."""
    summary = {}
    for metric, patterns in _CELLS[family].items():
        total = 0
        for pattern in patterns:
            if pattern.endswith("*"):
                total += sum(n for cell, n in cells.items() if cell.startswith(pattern[:-1]))
            else:
                total += cells.get(pattern, 0)
        summary[metric] = total
    return summary


def critical_path(path_entry):
    """Start, end and delay split of one entry of the report's ``critical_paths``."""
    segments = path_entry.get("path", [])
    if not segments:
        return None
    first, last = segments[0], segments[-1]
    logic = sum(s.get("delay", 0.0) for s in segments if s.get("type") != "routing")
    routing = sum(s.get("delay", 0.0) for s in segments if s.get("type") == "routing")
    return {
        "from": f"{first['from']['cell']}.{first['from']['port']}",
        "to": f"{last['to']['cell']}.{last['to']['port']}",
        "clock_from": path_entry.get("from"), "clock_to": path_entry.get("to"),
        "delay_ns": round(logic + routing, 3), "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
        "segments": len(segments),
    }


def parse_nextpnr_report(data, device):
    """Utilization, Fmax and the critical path from a nextpnr ``--report`` JSON (dict or text)."""
    if isinstance(data, str):
        data = json.loads(data)
    util = data.get("utilization", {})
    utilization = {}
    for metric, bel in device.pnr_keys.items():
        if bel in util:
            used, available = util[bel]["used"], util[bel]["available"]
            utilization[metric] = {"bel": bel, "used": used, "available": available,
                                   "percent": round(100.0 * used / available, 2) if available else 0.0}
    clocks = {}
    for clock, entry in data.get("fmax", {}).items():
        clocks[clock] = {"achieved_mhz": round(entry["achieved"], 2), "constraint_mhz": entry["constraint"]}
    fmax = min((c["achieved_mhz"] for c in clocks.values()), default=None)
    constraint = min((c["constraint_mhz"] for c in clocks.values()), default=None)
    # The critical path is the register-to-register one of the slowest clock; I/O paths ('<async>') are not.
    worst = None
    for entry in data.get("critical_paths", []):
        if "<async>" in (entry.get("from"), entry.get("to")):
            continue
        info = critical_path(entry)
        if info and (worst is None or info["delay_ns"] > worst["delay_ns"]):
            worst = info
    return {"utilization": utilization, "clocks": clocks, "fmax_mhz": fmax, "constraint_mhz": constraint,
            "timing_met": None if fmax is None else fmax >= constraint, "critical_path": worst}


def _fmt(value, fmt="{}"):
    return "-" if value is None else fmt.format(value)


def format_summary(summary):
    """A readable table of one summary (the dict ``fpga.flow.synthesize`` writes)."""
    lines = []
    title = f"{summary['design']} on {summary['device']} ({summary['part']})"
    lines.append(title)
    lines.append("=" * len(title))
    spec = summary.get("spec", {})
    if spec:
        lines.append(f"array {spec.get('rows')}x{spec.get('cols')} {spec.get('act_type')} x "
                     f"{spec.get('weight_type')} -> {spec.get('acc_type')}, {spec.get('pes')} MACs, "
                     f"multipliers: {summary.get('multipliers', 'dsp')}")
    util = summary.get("utilization", {})
    rows = [("resource", "used", "available", "share")]
    labels = [("lut4", "LUT4 (logic)"), ("carry", "carry cells"), ("ff", "flip-flops"), ("dsp", "DSP"),
              ("bram", "block RAM"), ("spram", "SPRAM"), ("lutram", "LUT RAM"), ("io", "I/O pins")]
    for metric, label in labels:
        used = summary.get(metric)
        if metric == "io":
            used = util.get("io", {}).get("used")
        if used is None:
            continue
        available = summary.get("available", {}).get(metric)
        share = summary.get("share", {}).get(metric)
        rows.append((label, str(used), _fmt(available), _fmt(share, "{:.1f}%")))
    if "lut" in util:
        rows.append((f"nextpnr {util['lut']['bel']}", str(util["lut"]["used"]), str(util["lut"]["available"]),
                     f"{util['lut']['percent']:.1f}%"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                               for i, cell in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    if summary.get("fmax_mhz") is not None:
        verdict = "met" if summary.get("timing_met") else "MISSED"
        lines.append(f"Fmax (post-route): {summary['fmax_mhz']:.2f} MHz, target {summary['freq_mhz']:.2f} MHz "
                     f"-> timing {verdict}")
        if summary.get("gops") is not None:
            lines.append(f"peak throughput: {summary['gops']:.2f} GOPS (2 x {summary['macs']} MACs x Fmax)")
        path = summary.get("critical_path")
        if path:
            lines.append(f"critical path: {path['from']} -> {path['to']}")
            lines.append(f"  {path['delay_ns']:.2f} ns = {path['logic_ns']:.2f} ns logic/cell + "
                         f"{path['routing_ns']:.2f} ns routing, {path['segments']} segments")
    elif summary.get("pnr") is False:
        lines.append("place and route skipped (synthesis only): no Fmax")
    memory = summary.get("memory_mapping")
    if memory:
        lines.append(f"buffers: {memory['status']} -- {memory['message']}")
    for warning in summary.get("warnings", []):
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
