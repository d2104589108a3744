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


def frontier_plot(doc, path):
    plt = _pyplot()
    valid = [p for p in doc["points"] if p["status"] == "ok" and p.get("area") is not None]
    if not valid:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    for engines, (marker, color) in ENGINE_STYLE.items():
        group = [p for p in valid if _engines(p) == engines]
        if group:
            ax.scatter([100 * p["area"] for p in group], [p["cycles"] for p in group], marker=marker, color=color,
                       alpha=0.45, s=28, label=f"{engines} ({len(group)})")
    keys = set(doc["frontier"])
    front = sorted((p for p in valid if p["key"] in keys), key=lambda p: p["area"])
    if front:
        ax.step([100 * p["area"] for p in front], [p["cycles"] for p in front], where="post", color="black",
                linewidth=1.2, label=f"Pareto frontier ({len(front)})")
        ax.scatter([100 * p["area"] for p in front], [p["cycles"] for p in front], facecolors="none",
                   edgecolors="black", s=70)
        for p in front[:12]:
            ax.annotate(p["point"]["rows"] and f"{p['point']['rows']}x{p['point']['cols']}",
                        (100 * p["area"], p["cycles"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    synthesized = [p for p in valid if p.get("measured")]
    if synthesized:
        ax.scatter([100 * p["area"] for p in synthesized], [p["cycles"] for p in synthesized], marker="x",
                   color="red", s=40, label=f"synthesized ({len(synthesized)})")
    ax.set_yscale("log")
    ax.set_xlabel(f"device share of the binding resource (%), {doc['device']} (calibrated estimate)")
    ax.set_ylabel("whole-network cycles (exact model, log)")
    invalid = sum(p["status"] != "ok" for p in doc["points"])
    ax.set_title(f"{doc['network']}: {len(doc['points'])} points, {len(valid)} valid, {invalid} invalid")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
