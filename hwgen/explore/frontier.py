"""The Pareto frontier of a sweep: the points no other point beats on every objective at once.

Objectives are columns of the point records, all minimized: ``cycles`` (the exact whole-network latency),
``area`` (the share of the device the binding resource takes: the largest of the LUT4, flip-flop, DSP and
block-RAM shares), and any column a model adds - ``energy_pj`` joins the default objectives as soon as a point
carries it (the energy model of issue 15), ``dram_bytes`` or a bandwidth-bound latency likewise by name. An
objective no point has is left out, so the same call works before and after those models exist.
"""

__all__ = ["DEFAULT_OBJECTIVES", "pareto", "usable_objectives"]

DEFAULT_OBJECTIVES = ("cycles", "area", "energy_pj")


def usable_objectives(points, objectives=DEFAULT_OBJECTIVES):
    return [name for name in objectives if any(p.get(name) is not None for p in points)]


def dominates(a, b, objectives):
    return all(a[o] <= b[o] for o in objectives) and any(a[o] < b[o] for o in objectives)


def pareto(points, objectives=DEFAULT_OBJECTIVES):
    """The non-dominated points among those with every usable objective (sorted by the first objective)."""
    objectives = usable_objectives(points, objectives)
    candidates = [p for p in points if all(p.get(o) is not None for o in objectives)]
    front = [p for p in candidates if not any(dominates(q, p, objectives) for q in candidates if q is not p)]
    # Equal points: keep the first of each group.
    seen, unique = set(), []
    for p in sorted(front, key=lambda p: tuple(p[o] for o in objectives)):
        signature = tuple(p[o] for o in objectives)
        if signature not in seen:
            seen.add(signature)
            unique.append(p)
    return unique, objectives
