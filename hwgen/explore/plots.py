"""PNG plots of a sweep (matplotlib, no display needed): the frontier, and per-layer utilization of chosen points.
Each function takes the sweep document (`points.json`) and a path, and returns the path (None when there is
nothing to plot)."""

__all__ = ["frontier_plot", "layers_plot", "chosen_points", "layer_utilization_plot"]

ENGINE_STYLE = {"ws+mv": ("o", "tab:blue"), "ws": ("s", "tab:orange"), "os": ("^", "tab:green")}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _engines(point):
    return point.get("point", {}).get("engines", "ws+mv")


def _staircase(points, x):
    """The 2-D Pareto staircase of ``points`` in (``x``, cycles), sorted by ``x``."""
    front, best = [], None
    for p in sorted(points, key=lambda p: (p[x], p["cycles"])):
        if best is None or p["cycles"] < best:
            front.append(p)
            best = p["cycles"]
    return front


def frontier_plot(doc, path):
    """Cycles against the device share (and, where the points carry energy, against energy): every valid point
    by engine, the points on the sweep's frontier (all its objectives at once) circled, each panel's own 2-D
    staircase drawn, the synthesized sample crossed."""
    plt = _pyplot()
    valid = [p for p in doc["points"] if p["status"] == "ok" and p.get("area") is not None]
    if not valid:
        return None
    basis = "calibrated" if (doc.get("calibration") or {}).get("coefficients") else "prior"
    panels = [("area", 100, f"device share of the binding resource (%), {doc['device']} ({basis} estimate)")]
    if all(p.get("energy_pj") is not None for p in valid):
        panels.append(("energy_pj", 1e-6, "energy per run (µJ, hwgen.energy: Horowitz 45 nm)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 5.5), dpi=110, squeeze=False)
    keys = set(doc["frontier"])
    for ax, (x, scale, label) in zip(axes[0], panels):
        for engines, (marker, color) in ENGINE_STYLE.items():
            group = [p for p in valid if _engines(p) == engines]
            if group:
                ax.scatter([scale * p[x] for p in group], [p["cycles"] for p in group], marker=marker, color=color,
                           alpha=0.45, s=28, label=f"{engines} ({len(group)})")
        stairs = _staircase(valid, x)
        ax.step([scale * p[x] for p in stairs], [p["cycles"] for p in stairs], where="post", color="grey",
                linewidth=1.0, linestyle="--", label=f"staircase of this plane ({len(stairs)})")
        front = [p for p in valid if p["key"] in keys]
        if front:
            ax.scatter([scale * p[x] for p in front], [p["cycles"] for p in front], facecolors="none",
                       edgecolors="black", s=70, label=f"Pareto frontier, {' / '.join(doc['objectives'])} "
                                                       f"({len(front)})")
        for p in stairs[:14]:
            ax.annotate(f"{p['point']['rows']}x{p['point']['cols']}", (scale * p[x], p["cycles"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=7)
        synthesized = [p for p in valid if p.get("measured")]
        if synthesized:
            ax.scatter([scale * p[x] for p in synthesized], [p["cycles"] for p in synthesized], marker="x",
                       color="red", s=40, label=f"accelerator synthesized ({len(synthesized)} points)")
        ax.set_yscale("log")
        if x == "energy_pj":
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("whole-network cycles (exact model, log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    invalid = sum(p["status"] != "ok" for p in doc["points"])
    fig.suptitle(f"{doc['network']}: {len(doc['points'])} points, {len(valid)} valid, {invalid} invalid")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def chosen_points(doc, n=4):
    """Up to ``n`` frontier points spread from the fastest to the smallest."""
    keys = doc["frontier"]
    if len(keys) <= n:
        picks = keys
    else:
        picks = [keys[round(i * (len(keys) - 1) / (n - 1))] for i in range(n)]
    points = {p["key"]: p for p in doc["points"]}
    return [points[k] for k in dict.fromkeys(picks)]


def layer_utilization_plot(points, path, title):
    plt = _pyplot()
    points = [p for p in points if p.get("layers")]
    if not points:
        return None
    layers = [row["layer"] for row in points[0]["layers"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(layers) + 2), 4.5), dpi=110)
    width = 0.8 / len(points)
    for i, p in enumerate(points):
        values = [100 * row["utilization"] for row in p["layers"]]
        ax.bar([x + i * width - 0.4 + width / 2 for x in range(len(layers))], values, width,
               label=f"{p['label']} ({p['cycles']:,} cyc)")
    ax.set_xticks(range(len(layers)))
    ax.set_xticklabels(layers)
    ax.set_ylabel("utilization (MACs / (PEs x cycles)), %")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def layers_plot(doc, path):
    return layer_utilization_plot(chosen_points(doc), path,
                                  f"{doc['network']}: per-layer utilization of frontier points")
