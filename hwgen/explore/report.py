"""`hwgen report DIR`: one self-contained HTML page (plots inlined as PNG data, no server, no scripts) of what
a folder holds:

- a sweep (``points.json`` of `hwgen explore`): frontier table and plot, per-layer utilization of chosen points,
  estimate vs measured, every point, invalid points with their reasons;
- a design (``design.py``: a folder `hwgen compile` wrote, or any design file's folder) or the output of `hwgen
  generate` (``<name>.json`` manifest): the spec, a per-layer table (cycles, model vs measured when a
  ``sim.json``/``run.json`` of `hwgen sim --json`/`hwgen run --json` is there, utilization, bytes moved, DRAM
  bytes, energy (`hwgen.energy`), and with a DRAM bandwidth the bound: compute or memory), a utilization plot and the roofline;
- synthesis summaries (``*.summary.json`` of `hwgen synth`, in the folder or below it): resources and Fmax.
"""

import base64
import html
import io
import json
from pathlib import Path

from ..errors import ArgumentError, HwgenError

__all__ = ["write_report", "render_report"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.front td { background: #eef6ee; } .bad { color: #a00; } .note { color: #555; font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def _e(value):
    return html.escape(str(value))


def _num(value, fmt="{:,}"):
    if value is None or value == "":
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return _e(value)


def _table(headers, rows, *, left=1, row_classes=None):
    out = ["<table><tr>" + "".join(f"<th class='l'>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>"
                                   for i, h in enumerate(headers)) + "</tr>"]
    for index, row in enumerate(rows):
        cls = f" class='{row_classes[index]}'" if row_classes and row_classes[index] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>"
                                          for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(path_or_fig):
    if path_or_fig is None:
        return ""
    data = Path(path_or_fig).read_bytes()
    return f"<img src='data:image/png;base64,{base64.b64encode(data).decode()}'>"


def _fig_png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return f"<img src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


# A sweep ---------------------------------------------------------------------------------------------------

def _uj(pj):
    return None if pj is None else pj / 1e6


def _sweep_sections(directory, doc):
    from .outputs import _engines
    from .plots import frontier_plot, layers_plot
    parts = []
    points = {p["key"]: p for p in doc["points"]}
    valid = [p for p in doc["points"] if p["status"] == "ok"]
    stats = doc.get("stats", {})
    parts.append(f"<p>{len(doc['points'])} points for <b>{_e(doc['network'])}</b> on {_e(doc['device'])}: "
                 f"{len(valid)} valid, {len(doc['points']) - len(valid)} invalid; {len(doc['frontier'])} on the "
                 f"frontier ({_e(' vs '.join(doc['objectives']))}). Run on {_e(stats.get('pool', '?'))} in "
                 f"{_num(stats.get('seconds'), '{:.1f}')} s; cache {_e(stats.get('cache', {}))}.</p>")
    space = doc.get("space", {})
    parts.append("<p class='note'>Space: " + "; ".join(f"{_e(k)} = {_e(v)}" for k, v in space.items() if v) + "</p>")
    png = directory / "frontier.png"
    parts.append("<h2>Pareto frontier</h2>" + (_img(png) if png.exists() else _img(frontier_plot(doc, png))))
    rows = []
    for key in doc["frontier"]:
        p = points[key]
        m = p.get("measured") or {}
        rows.append([_e(p["label"]), _num(p["cycles"]), _num(p["utilization"], "{:.1%}"),
                     _num(p["bytes_moved"]), _num(p["dram_bytes"]), _num(p.get("lut4")), _num(p.get("ff")),
                     _num(p.get("dsp")), _num(p.get("bram")), _num(p.get("area"), "{:.1%}"),
                     _e(p.get("binding") or "-"), _num(m.get("fmax_mhz"), "{:.1f}"),
                     _num(_uj(p.get("energy_pj")), "{:,.2f}"), _num(p.get("pj_per_mac"), "{:.1f}")])
    parts.append(_table(["point", "cycles", "util", "bytes moved", "DRAM bytes", "LUT4", "FF", "DSP", "BRAM",
                         "area", "binding", "Fmax MHz", "energy µJ", "pJ/MAC"], rows))
    parts.append("<p class='note'>Energy: `hwgen.energy` (the accesses the commands perform, priced by Horowitz, "
                 "ISSCC 2014, 45 nm; the whole batch), DRAM + SRAM + compute.</p>")
    png = directory / "layers.png"
    parts.append("<h2>Per-layer utilization of chosen frontier points</h2>"
                 + (_img(png) if png.exists() else _img(layers_plot(doc, png))))
    if doc.get("calibration_rows"):
        parts.append("<h2>Resource estimate vs measured</h2><p class='note'>Measured: Yosys cell counts "
                     "(Fmax: nextpnr, where placed and routed). Prior: fit.py's estimate and the elaborated cell "
                     "counts; calibrated: fitted on the whole sample; LOO: fitted without the point itself "
                     f"(the error to expect on unsynthesized points). Model: {_e(doc['calibration'])}</p>")
        rows = []
        for row in doc["calibration_rows"]:
            for metric in ("lut4", "carry", "ff", "dsp", "bram"):
                m, loo = row["measured"].get(metric), row["leave_one_out"].get(metric)
                err = f"{100.0 * (loo - m) / m:+.1f}%" if m and loo is not None else "-"
                rows.append([_e(f"{row['array']} {_engines(row['spec'])}"), metric,
                             _num(row["prior"].get(metric)), _num(row["calibrated"].get(metric)), _num(loo),
                             _num(m), err])
            rows.append([_e(f"{row['array']} {_engines(row['spec'])}"), "Fmax MHz", "-", "-", "-",
                         _num(row["measured"].get("fmax_mhz"), "{:.1f}"), "-"])
        parts.append(_table(["accelerator", "metric", "prior", "calibrated", "LOO", "measured", "LOO error"], rows,
                            left=2))
        parts.append("<p>Mean |error| %: " + _e(doc.get("calibration_errors")) + "</p>")
    bad = [p for p in doc["points"] if p["status"] != "ok"]
    parts.append(f"<h2>Invalid points ({len(bad)})</h2>")
    if bad:
        parts.append(_table(["point", "status", "reason"],
                            [[_e(p["label"]), _e(p["status"]), f"<span class='bad'>{_e(p.get('reason'))}</span>"]
                             for p in bad], left=3))
    rows, classes = [], []
    for p in sorted(valid, key=lambda p: p["cycles"]):
        rows.append([_e(p["label"]), _num(p["cycles"]), _num(p["utilization"], "{:.1%}"), _num(p["bytes_moved"]),
                     _num(_uj(p.get("energy_pj")), "{:,.2f}"), _num(p.get("lut4")), _num(p.get("dsp")),
                     _num(p.get("bram")), _num(p.get("area"), "{:.1%}")])
        classes.append("front" if p.get("frontier") else "")
    parts.append(f"<h2>All valid points ({len(valid)}; frontier shaded)</h2>")
    parts.append(_table(["point", "cycles", "util", "bytes moved", "energy µJ", "LUT4", "DSP", "BRAM", "area"], rows,
                        row_classes=classes))
    parts.append("<p class='note'>Every point, with per-layer rows: points.json; flat: points.csv.</p>")
    return f"Design-space exploration: {doc['network']}", parts


# A design --------------------------------------------------------------------------------------------------

def _design_rows(design, dram_bw):
    from ..compiler.design import NetworkDesign
    from ..energy import layer_energy
    from ..roofline import layer_traffic
    from .evaluate import _energy_columns, _energy_table, _layer_rows
    if isinstance(design, NetworkDesign):
        program = design.program
        rows = _layer_rows(program)
        plans = [(pl.plan, pl.source, pl.dest) for pl in program.layers]
        total = program.predict().cycles
    else:
        from ..perf import predict_plan
        rows, plans, at = [], [], 0
        for plan in design.plans():
            cycles = predict_plan(plan).cycles
            traffic = layer_traffic(plan)
            rows.append({"layer": plan.problem.name, "engine": plan.engine, "commands": len(plan.tiles),
                         "input": "stream", "output": "out", "start": at, "end": at + cycles, "cycles": cycles,
                         "macs": plan.macs, "utilization": plan.macs / (plan.spec.pes * cycles),
                         "bytes_moved": plan.bytes_moved["total"], "dram_bytes": traffic.dram_bytes,
                         **_energy_columns(layer_energy(plan, _energy_table()), 1)})
            plans.append((plan, "stream", "out"))
            at += cycles
        total = at
    if dram_bw:
        for row, (plan, source, dest) in zip(rows, plans):
            traffic = layer_traffic(plan, source=source, dest=dest)
            row.update(traffic.at(dram_bw, plan.spec.pes), intensity=traffic.intensity)
    return rows, total


def _measured(directory):
    """Measured cycles per layer from a ``sim.json`` (`hwgen sim --json`) or ``run.json`` (`hwgen run --json`)."""
    for name in ("sim.json", "run.json"):
        path = directory / name
        if path.is_file():
            doc = json.loads(path.read_text())
            if "layers" in doc and doc["layers"] and "measured_cycles" in doc["layers"][0]:
                return name, {row["layer"]: row.get("measured_cycles") for row in doc["layers"]}
            if "layers" in doc:
                return name, {row["layer"]: (row.get("last_beat_measured") or [None])[-1] for row in doc["layers"]}
    return None, {}


def _design_sections(directory, design, dram_bw):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    spec = design.spec
    parts = [f"<h2>Accelerator</h2>",
             _table(["field", "value"], [[_e(k), _e(v)] for k, v in spec.to_dict().items()], left=2)]
    rows, total = _design_rows(design, dram_bw)
    source, measured = _measured(directory)
    headers = ["layer", "engine", "cmds", "in", "out", "cycles (model)", "measured" if measured else None,
               "MACs", "util", "bytes moved", "DRAM bytes", "energy nJ", "pJ/MAC"]
    if dram_bw:
        headers += ["MACs/byte", "memory cyc", "bound"]
    headers = [h for h in headers if h]
    table = []
    for row in rows:
        line = [_e(row["layer"]), _e(row["engine"]), _num(row["commands"]), _e(row["input"]), _e(row["output"]),
                _num(row["cycles"])]
        if measured:
            # a network run measures the last beat of each layer; the model's is `end`
            m = measured.get(row["layer"])
            want = row["end"] if source == "run.json" else row["cycles"]
            line.append(_num(m) + ("" if m is None or m == want else f" <span class='bad'>(model {want:,})</span>"))
        line += [_num(row["macs"]), _num(row["utilization"], "{:.1%}"), _num(row["bytes_moved"]),
                 _num(row["dram_bytes"]), _num(row["energy_pj"] / 1e3, "{:,.1f}"),
                 _num(row["energy_pj"] / row["macs"] if row["macs"] else None, "{:.1f}")]
        if dram_bw:
            line += [_num(row["intensity"], "{:.1f}"), _num(row["memory_cycles"]), _e(row["bound"])]
        table.append(line)
    energy = sum(row["energy_pj"] for row in rows)
    parts.append(f"<h2>Layers</h2><p>Whole run: {total:,} cycles (model), {energy / 1e3:,.1f} nJ per input "
                 f"(hwgen.energy: Horowitz, ISSCC 2014, 45 nm; DRAM + SRAM + compute)"
                 + (f"; measured per layer from {source}" if measured else "; no measurement here (hwgen sim "
                    "--json > DIR/sim.json, or hwgen run --json > DIR/run.json, adds it)")
                 + (f"; bound at {dram_bw:g} DRAM bytes/cycle" if dram_bw else "; give --dram-bw for the bound")
                 + ".</p>")
    parts.append(_table(headers, table, left=5))
    fig, ax = plt.subplots(figsize=(max(5, 1.0 * len(rows) + 2), 3.8), dpi=110)
    ax.bar([r["layer"] for r in rows], [100 * r["utilization"] for r in rows], color="tab:blue")
    ax.set_ylabel("utilization %")
    ax.set_ylim(0, 105)
    ax.set_title(f"{design.name}: utilization per layer ({spec.rows}x{spec.cols})")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    parts.append(_fig_png(fig))
    if dram_bw:
        fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=110)
        xs = [r["intensity"] for r in rows if r["intensity"] not in (None, float("inf"))]
        lo, hi = (min(xs) / 2, max(xs) * 2) if xs else (0.1, 1000)
        lo, hi = min(lo, spec.pes / dram_bw / 4), max(hi, spec.pes / dram_bw * 4)
        grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        ax.plot(grid, [min(spec.pes, x * dram_bw) for x in grid], color="black", label="roof")
        for r in rows:
            if r["intensity"] not in (None, float("inf")):
                ax.scatter([r["intensity"]], [r["macs"] / r["cycles"]], s=30)
                ax.annotate(r["layer"], (r["intensity"], r["macs"] / r["cycles"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 3))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("operational intensity (MACs per DRAM byte)")
        ax.set_ylabel("MACs per cycle")
        ax.set_title(f"roofline at {dram_bw:g} bytes/cycle, {spec.pes} PEs")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        parts.append("<h2>Roofline</h2>" + _fig_png(fig))
    return parts


def _synth_sections(directory):
    summaries = sorted(directory.glob("*.summary.json")) + sorted(directory.glob("*/*.summary.json"))
    if not summaries:
        return []
    rows = []
    for path in summaries:
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            continue            # a summary being written, or not one of hwgen synth's
        if not isinstance(s, dict):
            continue
        spec = s.get("spec", {})
        rows.append([_e(s.get("design")), _e(s.get("device")), _e(f"{spec.get('rows')}x{spec.get('cols')}"),
                     _num(s.get("lut4")), _num(s.get("carry")), _num(s.get("ff")), _num(s.get("dsp")),
                     _num(s.get("bram")), _num(s.get("fmax_mhz"), "{:.1f}"),
                     _e((s.get("critical_path") or {}).get("to", "-"))])
    return ["<h2>Synthesis</h2>",
            _table(["design", "device", "array", "LUT4", "carry", "FF", "DSP", "BRAM", "Fmax MHz", "critical path to"],
                   rows, left=3)]


def render_report(directory, *, dram_bw=None):
    directory = Path(directory)
    if not directory.is_dir():
        raise ArgumentError(f"no folder {directory}: give a folder hwgen explore, compile, generate or synth wrote")
    title, parts = None, []
    if (directory / "points.json").is_file():
        try:
            sweep = json.loads((directory / "points.json").read_text())
        except ValueError as error:
            raise ArgumentError(f"{directory / 'points.json'} is not a sweep's JSON ({error}); run hwgen explore "
                                f"-o {directory} again") from None
        title, parts = _sweep_sections(directory, sweep)
    else:
        design = None
        if (directory / "design.py").is_file():
            from ..design import load_design
            design = load_design(directory)
        else:
            for manifest in sorted(directory.glob("*.json")):
                try:
                    doc = json.loads(manifest.read_text())
                except (OSError, ValueError):
                    continue
                if isinstance(doc, dict) and "design" in doc and "config_fields" in doc:
                    from ..design import load_design
                    try:
                        design = load_design(doc["design"])
                    except HwgenError:
                        design = None
                    break
        if design is not None:
            title = f"{design.name}: {design.spec.rows}x{design.spec.cols} {design.spec.dataflow}"
            parts += _design_sections(directory, design, dram_bw)
    synth = _synth_sections(directory)
    if title is None and synth:
        title = f"Synthesis: {directory.name}"
    if title is None:
        raise ArgumentError(f"{directory} holds nothing to report: no points.json (hwgen explore), design.py "
                         f"(hwgen compile), manifest (hwgen generate) or *.summary.json (hwgen synth)")
    parts += synth
    import hwgen
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{STYLE}</style>"
            f"</head><body><h1>{_e(title)}</h1>\n" + "\n".join(parts)
            + f"\n<p class='note'>hwgen {hwgen.__version__}, {_e(directory.resolve())}</p></body></html>\n")


def write_report(directory, *, dram_bw=None, output=None):
    directory = Path(directory)
    text = render_report(directory, dram_bw=dram_bw)
    path = Path(output) if output else directory / "report.html"
    try:
        path.write_text(text)
    except OSError as error:
        from ..errors import OutputPathError
        raise OutputPathError(f"cannot write the report to {path} ({error.strerror})") from None
    return path
