"""What a sweep leaves in its folder, and the tables it prints.

- ``points.json``: everything - the sweep's configuration and space, every point (valid or not, with the reason),
  per-layer rows, resources, the frontier, the synthesized sample and the calibration;
- ``points.csv``: one flat row per point (`CSV_COLUMNS`): the spec's axes, cycles, utilization, bytes, the
  calibrated resources and device share, what synthesis measured, and energy (`hwgen.energy`, the whole batch,
  per input, per MAC, and split into DRAM, SRAM and compute);
- ``calibration.csv``: estimate vs measured per synthesized point;
- ``frontier.png``, ``layers.png`` (`hwgen.explore.plots`) and ``report.html`` (`hwgen.explore.report`).
"""

import csv
import json
from pathlib import Path

__all__ = ["CSV_COLUMNS", "write_outputs", "frontier_table", "invalid_table", "calibration_table", "load_sweep"]

CSV_COLUMNS = ("key", "network", "label", "status", "reason", "frontier", "rows", "cols", "dataflow", "mv_engine",
               "chaining", "batch", "act_buffer_bytes", "weight_buffer_bytes", "acc_buffer_bytes", "cycles",
               "ideal_cycles", "utilization", "macs", "bytes_moved", "dram_bytes", "lut4", "carry", "ff", "dsp",
               "bram", "area", "binding", "measured_lut4", "measured_ff", "measured_dsp", "measured_bram",
               "fmax_mhz", "latency_us", "energy_pj", "energy_per_input_pj", "pj_per_mac", "energy_dram_pj",
               "energy_sram_pj", "energy_compute_pj")


def _flat(record):
    spec = record.get("spec") or {}
    point = record.get("point") or {}
    measured = record.get("measured") or {}
    row = {"key": record["key"], "network": record.get("network"), "label": record.get("label"),
           "status": record["status"], "reason": record.get("reason") or "",
           "frontier": bool(record.get("frontier")), "rows": point.get("rows"), "cols": point.get("cols"),
           "dataflow": spec.get("dataflow"), "mv_engine": spec.get("mv_engine"),
           "chaining": point.get("chaining"), "batch": point.get("batch"),
           "act_buffer_bytes": spec.get("act_buffer_bytes"), "weight_buffer_bytes": spec.get("weight_buffer_bytes"),
           "acc_buffer_bytes": spec.get("acc_buffer_bytes"),
           "fmax_mhz": measured.get("fmax_mhz")}
    for name in ("cycles", "ideal_cycles", "utilization", "macs", "bytes_moved", "dram_bytes", "lut4", "carry",
                 "ff", "dsp", "bram", "area", "binding", "latency_us", "energy_pj", "energy_per_input_pj", "pj_per_mac",
                 "energy_dram_pj", "energy_sram_pj", "energy_compute_pj"):
        row[name] = record.get(name)
    for name in ("lut4", "ff", "dsp", "bram"):
        row[f"measured_{name}"] = measured.get(name)
    return row


def document(result):
    config = result.config
    return {"network": config.network, "device": config.device, "space": config.space.to_dict(),
            "objectives": result.objectives, "frontier": result.frontier, "stats": result.stats,
            "calibration": result.calibration, "calibration_rows": result.calibration_rows,
            "calibration_errors": result.calibration_errors, "synthesized": result.synthesized,
            "points": result.points}


def write_outputs(result, directory, *, plots=True, html=True):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    doc = document(result)
    files = {"json": directory / "points.json", "csv": directory / "points.csv"}
    files["json"].write_text(json.dumps(doc, indent=1, default=str) + "\n")
    with open(files["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for record in result.points:
            writer.writerow(_flat(record))
    if result.calibration_rows:
        files["calibration"] = directory / "calibration.csv"
        with open(files["calibration"], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["array", "engines", "metric", "prior", "calibrated", "leave_one_out", "measured"])
            for row in result.calibration_rows:
                engines = _engines(row["spec"])
                for metric in ("lut4", "carry", "ff", "dsp", "bram"):
                    writer.writerow([row["array"], engines, metric, row["prior"].get(metric),
                                     row["calibrated"].get(metric), row["leave_one_out"].get(metric),
                                     row["measured"].get(metric)])
    if plots:
        from .plots import frontier_plot, layers_plot
        files["frontier_png"] = frontier_plot(doc, directory / "frontier.png")
        files["layers_png"] = layers_plot(doc, directory / "layers.png")
    if html:
        from .report import write_report
        files["html"] = write_report(directory)
    return files


def load_sweep(directory):
    return json.loads((Path(directory) / "points.json").read_text())


def _engines(spec):
    if spec.get("dataflow") == "output_stationary":
        return "os"
    return "ws+mv" if spec.get("mv_engine") else "ws"


def _fmt(value, spec="{:,}"):
    return "-" if value is None else spec.format(value)


def frontier_table(doc, limit=None):
    points = {p["key"]: p for p in doc["points"]}
    lines = [f"Pareto frontier ({' vs '.join(doc['objectives'])}; {len(doc['frontier'])} of "
             f"{sum(p['status'] == 'ok' for p in doc['points'])} valid points):",
             f"{'point':<34}{'cycles':>12}{'util':>7}{'KiB moved':>11}{'uJ':>10}{'LUT4':>8}{'FF':>8}{'DSP':>5}"
             f"{'BRAM':>6}{'area':>7}{'Fmax':>8}"]
    for key in doc["frontier"][:limit]:
        p = points[key]
        measured = p.get("measured") or {}
        energy = p.get("energy_pj")
        lines.append(f"{p['label'][:33]:<34}{p['cycles']:>12,}{p['utilization']:>7.1%}{p['bytes_moved'] / 1024:>11.1f}"
                     f"{_fmt(energy and energy / 1e6, '{:,.1f}'):>10}{_fmt(p.get('lut4')):>8}{_fmt(p.get('ff')):>8}{_fmt(p.get('dsp')):>5}{_fmt(p.get('bram')):>6}"
                     f"{_fmt(p.get('area'), '{:.1%}'):>7}{_fmt(measured.get('fmax_mhz'), '{:.1f}'):>8}")
    return "\n".join(lines)


def invalid_table(doc):
    bad = [p for p in doc["points"] if p["status"] != "ok"]
    if not bad:
        return "invalid points: none"
    lines = [f"invalid points ({len(bad)}):"]
    for p in bad:
        lines.append(f"  {p['label']:<34} {p['status']}: {p.get('reason')}")
    return "\n".join(lines)


def calibration_table(doc):
    rows = doc.get("calibration_rows") or []
    if not rows:
        return "calibration: no synthesized point (resources are fit.py's prior estimate)"
    lines = [f"estimate vs measured (Yosys; Fmax from nextpnr where placed and routed), {len(rows)} synthesized "
             f"points; calibrated = fitted on all of them, LOO = fitted without the point itself:",
             f"{'accelerator':<18}{'metric':<7}{'prior':>8}{'calib.':>8}{'LOO':>8}{'measured':>10}{'LOO err':>9}"]
    for row in rows:
        name = f"{row['array']} {_engines(row['spec'])}"
        for metric in ("lut4", "ff", "dsp", "bram"):
            m, loo = row["measured"].get(metric), row["leave_one_out"].get(metric)
            err = f"{100.0 * (loo - m) / m:+.1f}%" if m and loo is not None else "-"
            lines.append(f"{name:<18}{metric:<7}{_fmt(row['prior'].get(metric)):>8}"
                         f"{_fmt(row['calibrated'].get(metric)):>8}{_fmt(loo):>8}{_fmt(m):>10}{err:>9}")
            name = ""
        fmax = row["measured"].get("fmax_mhz")
        if fmax:
            lines.append(f"{'':<18}{'Fmax':<7}{'':>8}{'':>8}{'':>8}{fmax:>10.1f}")
    errors = doc.get("calibration_errors") or {}
    lines.append("mean |error| %: " + ", ".join(
        f"{metric} prior {e.get('prior', '-')} / calibrated {e.get('calibrated', '-')} / LOO {e.get('leave_one_out', '-')}"
        for metric, e in errors.items()))
    return "\n".join(lines)
