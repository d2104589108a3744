"""A sweep: every point of a space evaluated for one network, resources estimated and calibrated against a
synthesized sample, the Pareto frontier, and the files a user reads (`write_outputs`).

    result = run_sweep(SweepConfig(network="lenet", space=Space(array=["4x4", "8x8"])))

The phases, each a batch of tasks on the pool (`hwgen.explore.executor`), each result stored in the cache as it
arrives (`hwgen.explore.cache`), so an interrupted or repeated sweep computes only what is missing:

1. model: `evaluate_point` per point (the exact cycle model of the whole network);
2. resources: `estimate_resources` per distinct accelerator of the valid points (elaborated, cells counted);
3. synthesis: `synthesize_spec` on a sample (``synth`` points; the ``pnr`` cheapest of them placed and routed);
4. calibration (`hwgen.explore.calibrate`), device shares, the frontier (`hwgen.explore.frontier`).
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArgumentError
from .cache import Cache
from .calibrate import ResourceModel
from .evaluate import estimate_resources, evaluate_point, spec_key_dict, synthesize_spec
from .executor import open_pool
from .frontier import DEFAULT_OBJECTIVES, pareto
from .progress import progress
from .space import Point, Space

__all__ = ["SweepConfig", "SweepResult", "predicted_seconds", "run_sweep", "select_sample"]


@dataclass
class SweepConfig:
    network: str
    space: Space = field(default_factory=Space)
    device: str = "ecp5-85f"
    synth: int = 0                 # points synthesized (Yosys) to calibrate the estimate
    pnr: int = 0                   # of those, placed and routed for Fmax (the cheapest)
    synth_max_pes: int = None      # synthesize only arrays of at most this many PEs (P&R time grows fast)
    synth_build_root: str = "build/explore/synth"
    workers: int = None            # local process pool (default: the cores); 0 runs in this process
    cluster: str = None            # a Dask scheduler address, or "local" for a LocalCluster of `workers`
    cache_dir: str = None
    recompute: tuple = ()          # kinds ("model", "resources", "synth") computed again even when cached
    elaborate: bool = False        # count DSP / block RAM in the elaborated design (seconds per spec) instead of the spec
    objectives: tuple = DEFAULT_OBJECTIVES
    retries: int = 2
    delay_s: float = 0.0           # each model task takes at least this long (tests, benchmarks)
    show_progress: bool = None     # None: on a terminal only
    timeout_s: float = None        # per synthesis tool run
    calibrate_from_cache: bool = True   # also learn from accelerators other sweeps synthesized (same device, tools)


@dataclass
class SweepResult:
    config: SweepConfig
    points: list                   # one record per point (see `hwgen.explore.evaluate`), merged with resources
    frontier: list                 # keys of the frontier points
    objectives: list
    calibration: dict
    calibration_rows: list
    calibration_errors: dict
    synthesized: list              # records of the synthesized sample
    stats: dict

    @property
    def valid(self):
        return [p for p in self.points if p["status"] == "ok"]

    @property
    def invalid(self):
        return [p for p in self.points if p["status"] != "ok"]

    def by_key(self, key):
        return next(p for p in self.points if p["key"] == key)


def _run_phase(pool, cache, kind, items, fn, make_call, bar, *, retries, on_result=None):
    """Look every item up in the cache; run the misses on the pool; store each result as it arrives. Returns
    {item key: result}, how many were computed and their task seconds (as the worker measured them)."""
    results, misses, seconds = {}, [], []
    for key, inputs in items:
        hit = cache.get(kind, inputs)
        if hit is not None:
            results[key] = hit
            bar.advance()
        else:
            misses.append((key, inputs))
    calls = [make_call(inputs) for _, inputs in misses]
    for index, value, error in pool.run(fn, calls, retries=retries):
        key, inputs = misses[index]
        if error is not None:
            value = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
        else:
            if not (isinstance(value, dict) and value.get("status") == "failed"):
                cache.put(kind, inputs, value)      # a tool that failed (killed, timed out) is tried again next time
            if isinstance(value, dict) and value.get("seconds") is not None:
                seconds.append(value["seconds"])
        results[key] = value
        bar.advance()
        if on_result:
            on_result(kind, key, value)
    return results, len(misses), seconds


def select_sample(records, n, *, max_pes=None):
    """``n`` distinct accelerators to synthesize: the frontier's first, then spread evenly over the rest by
    size (PEs, then block RAM) - the sample the calibration learns from should span the space."""
    by_spec = {}
    for record in records:
        if record["status"] != "ok" or not record.get("fits"):
            continue
        spec = record["spec"]
        if max_pes and spec["rows"] * spec["cols"] > max_pes:
            continue
        by_spec.setdefault(record["spec_key"], record)
    candidates = sorted(by_spec.values(), key=lambda r: (r["spec"]["rows"] * r["spec"]["cols"],
                                                         r.get("bram") or 0, r["key"]))
    chosen = [r for r in candidates if r.get("frontier")][:n]
    rest = [r for r in candidates if r not in chosen]
    need = n - len(chosen)
    if need > 0 and rest:
        step = len(rest) / need
        picks = sorted({min(len(rest) - 1, int(i * step + step / 2)) for i in range(need)})
        chosen += [rest[i] for i in picks]
        for r in rest:                      # rounding collisions: fill up in order
            if len(chosen) >= n:
                break
            if r not in chosen:
                chosen.append(r)
    return chosen[:n]


def _cost(record):
    spec = record["spec"]
    return (spec["rows"] * spec["cols"] * (2 if spec.get("mv_engine") else 1), record.get("bram") or 0)


def _apply_resources(records, resources, model, device_available):
    """Calibrated resources, device shares and the fit verdict on every valid record: judged on the calibrated
    figures where the model has them, else on the prior estimate's fit check (fit.py)."""
    calibrated = all(m in model.coefficients for m in ("lut4", "dsp", "bram"))
    for record in records:
        if record["status"] != "ok":
            continue
        estimate = resources.get(record["spec_key"])
        if estimate is None or estimate["status"] == "failed":
            record.update(status="failed", stage="resources",
                          reason=(estimate or {}).get("reason", "no resource estimate"))
            continue
        record["estimate"] = {k: estimate.get(k) for k in ("source", "dsp", "bram", "lut4_prior")}
        predicted = model.predict(record["spec"], estimate)
        record.update(predicted)
        available = estimate.get("available") or device_available
        shares = {m: predicted[m] / available[m] for m in ("lut4", "ff", "dsp", "bram")
                  if predicted.get(m) is not None and available.get(m)}
        record["shares"] = {m: round(v, 4) for m, v in shares.items()}
        record["area"] = round(max(shares.values()), 4) if shares else None
        record["binding"] = max(shares, key=shares.get) if shares else None
        record["fits"] = True
        if record["area"] is not None and record["area"] > 1.0:
            binding = record["binding"]
            record.update(status="invalid", stage="device", fits=False,
                          reason=f"does not fit the {estimate['device']}: the {'calibrated' if calibrated else 'prior'} "
                                 f"estimate needs {predicted[binding]} {binding} of {available[binding]}")
        elif not calibrated and estimate["status"] != "ok":
            record.update(status="invalid", stage="device", fits=False, reason=estimate.get("reason"))


def run_sweep(config, *, pool=None, on_result=None):
    """Run the sweep of ``config`` (see the module docstring). ``pool``: an open pool to use (else one is opened
    from ``config.workers`` / ``config.cluster``). ``on_result(kind, key, value)`` is called as results arrive."""
    from .networks import load
    started = time.perf_counter()
    target = load(config.network)          # fail here, in the driver, on a bad reference
    points = config.space.points()
    if not points:
        raise ArgumentError("the space has no points")
    cache = Cache(config.cache_dir, recompute=config.recompute)
    own_pool = pool is None
    pool = pool or open_pool(workers=config.workers, cluster=config.cluster)
    stats = {"points": len(points)}
    if own_pool:
        pool.__enter__()
    try:
        stats["pool"] = pool.describe()
        with progress(config.show_progress) as bars:
            # 1. the cycle model of every point
            bar = bars.task(f"{target.name}: model", len(points))
            items = [(p.key, {"network": target.fingerprint, "ref": config.network, "point": p.to_dict()})
                     for p in points]
            t0 = time.perf_counter()
            model_results, computed, task_s = _run_phase(
                pool, cache, "model", items, evaluate_point,
                lambda inputs: ((config.network, Point(**{**inputs["point"],
                                                           "extra": tuple(sorted(inputs["point"]["extra"].items()))})),
                                {"delay_s": config.delay_s}),
                bar, retries=config.retries, on_result=on_result)
            stats["model"] = {"computed": computed, "cached": len(points) - computed,
                              "seconds": round(time.perf_counter() - t0, 2), "task_seconds": task_s}
            records = []
            for p in points:
                record = dict(model_results[p.key])
                record.setdefault("key", p.key)
                record.setdefault("label", p.label())
                record.setdefault("point", p.to_dict())
                record["network"] = target.name
                if record.get("spec"):
                    spec = {k: v for k, v in record["spec"].items() if k != "name"}
                    record["spec_key"] = _digest(spec)
                records.append(record)

            # 2. resources of every distinct accelerator
            specs = {}
            for record in records:
                if record["status"] == "ok":
                    specs.setdefault(record["spec_key"], record["spec"])
            bar = bars.task(f"{target.name}: resources", len(specs))
            items = [(key, {"spec": spec_key_dict_of(spec), "device": config.device, "elaborate": config.elaborate})
                     for key, spec in specs.items()]
            t0 = time.perf_counter()
            resources, computed, task_s = _run_phase(
                pool, cache, "resources", items, estimate_resources,
                lambda inputs: (({**inputs["spec"], "name": "acc_" + _digest(inputs["spec"])}, inputs["device"]),
                                {"elaborate": inputs["elaborate"]}),
                bar, retries=config.retries, on_result=on_result)
            stats["resources"] = {"computed": computed, "cached": len(specs) - computed,
                                  "seconds": round(time.perf_counter() - t0, 2), "task_seconds": task_s}
            prior = ResourceModel()
            from ..fpga.devices import get_device
            device = get_device(config.device)
            available = {"lut4": device.luts, "ff": device.ffs, "dsp": device.dsps, "bram": device.brams[0].count}
            _apply_resources(records, resources, prior, available)
            front, objectives = pareto([r for r in records if r["status"] == "ok"], config.objectives)
            for record in front:
                record["frontier"] = True

            # 3. synthesis of a sample
            synthesized, samples = [], []
            if config.synth:
                sample = select_sample(records, config.synth, max_pes=config.synth_max_pes)
                by_cost = sorted(sample, key=_cost)
                routed = {r["spec_key"] for r in by_cost[:config.pnr]}
                bar = bars.task(f"{target.name}: synthesis", len(sample))
                items = []
                for record in sample:
                    spec = spec_key_dict_of(record["spec"])
                    items.append((record["spec_key"], {"spec": spec, "device": config.device,
                                                       "pnr": record["spec_key"] in routed}))
                root = Path(config.synth_build_root)
                t0 = time.perf_counter()
                synth_results, computed, task_s = _run_phase(
                    pool, cache, "synth", items, synthesize_spec,
                    lambda inputs: (({**inputs["spec"], "name": "acc_" + _digest(inputs["spec"])}, inputs["device"]),
                                    {"pnr": inputs["pnr"], "timeout_s": config.timeout_s,
                                     "build_dir": str(root / f"{_digest(inputs)}")}),
                    bar, retries=0, on_result=on_result)
                stats["synth"] = {"computed": computed, "cached": len(sample) - computed,
                                  "seconds": round(time.perf_counter() - t0, 2), "task_seconds": task_s}
                for record in sample:
                    measured = synth_results[record["spec_key"]]
                    entry = {"spec_key": record["spec_key"], "key": record["key"], "label": record["label"],
                             "spec": record["spec"], "measured": measured,
                             "estimate": resources[record["spec_key"]]}
                    synthesized.append(entry)
                    if measured.get("status") == "ok":
                        samples.append((spec_key_dict_of(record["spec"]), resources[record["spec_key"]], measured))

            # 4. calibration, shares, frontier
            if config.calibrate_from_cache:
                mine = {json.dumps(spec, sort_keys=True, default=str) for spec, _, _ in samples}
                for inputs, measured in cache.entries("synth"):
                    spec = inputs["spec"]
                    signature = json.dumps(spec, sort_keys=True, default=str)
                    if inputs.get("device") != config.device or measured.get("status") != "ok" or signature in mine:
                        continue
                    mine.add(signature)
                    samples.append((spec, estimate_resources({**spec, "name": "acc_" + _digest(spec)}, config.device,
                                                             elaborate=config.elaborate), measured))
                stats["calibration_samples"] = {"this sweep": len(synthesized), "all": len(samples)}
            model = ResourceModel.fit(samples)
            rows, errors = ResourceModel.table(samples) if samples else ([], {})
            for record in records:
                record.pop("frontier", None)
                if record.get("stage") == "device":       # re-judged with the calibrated model
                    record["status"], record["reason"] = "ok", None
                    record.pop("stage")
            _apply_resources(records, resources, model, available)
            measured_by_spec = {s["spec_key"]: s["measured"] for s in synthesized}
            for record in records:
                m = measured_by_spec.get(record.get("spec_key"))
                if m and m.get("status") == "ok":
                    record["measured"] = {k: m.get(k) for k in ("lut4", "carry", "ff", "dsp", "bram", "fmax_mhz")}
                    if m.get("fmax_mhz") and record.get("cycles"):
                        record["latency_us"] = round(record["cycles"] / m["fmax_mhz"], 3)
            front, objectives = pareto([r for r in records if r["status"] == "ok"], config.objectives)
            for record in front:
                record["frontier"] = True
    finally:
        if own_pool:
            pool.__exit__(None, None, None)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    stats["cache"] = {"hits": cache.hits, "misses": cache.misses, "dir": str(cache.directory)}
    return SweepResult(config=config, points=records, frontier=[r["key"] for r in front], objectives=objectives,
                       calibration=model.to_dict(), calibration_rows=rows, calibration_errors=errors,
                       synthesized=synthesized, stats=stats)


def predicted_seconds(stats, workers):
    """The wall time the sweep of ``stats`` (a `SweepResult.stats` whose tasks were computed, not cached) would
    take on ``workers`` workers: the phases run one after another, each phase's tasks scheduled longest first
    on the workers (LPT list scheduling), plus the driver's own time (everything outside the phases)."""
    import heapq
    phases = [stats[name] for name in ("model", "resources", "synth") if name in stats]
    driver = stats["seconds"] - sum(p["seconds"] for p in phases)
    total = max(0.0, driver)
    for phase in phases:
        loads = [0.0] * workers
        for t in sorted(phase.get("task_seconds") or [], reverse=True):
            heapq.heapreplace(loads, loads[0] + t)
        total += max(loads) if loads else 0.0
    return total


def _digest(doc):
    from hashlib import sha256
    return sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:12]


def spec_key_dict_of(spec):
    return {k: v for k, v in spec.items() if k != "name"}


__all__ += ["spec_key_dict", "spec_key_dict_of"]
