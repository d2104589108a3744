"""The work of a sweep, as three task functions a worker runs (plain functions of plain data, so a process pool
or a Dask cluster can run them):

- `evaluate_point(ref, point)`: the exact cycle model of the whole network on the point's accelerator
  (`hwgen.compiler.program.compile_program` and `Program.predict`), per-layer spans and utilization, bytes moved
  (`LayerPlan.bytes_moved`: every word the commands stream) and DRAM bytes (`hwgen.roofline.layer_traffic`:
  only what crosses the chip boundary; on-chip boundaries move none);
  and energy (`hwgen.energy`: the accesses the commands perform, priced by the default table, Horowitz ISSCC
  2014 45 nm - the whole batch, split into DRAM, SRAM and compute);
- `estimate_resources(spec, device)`: the fast resource estimate of the accelerator - the generator's design
  elaborated (no synthesis) and its DSP and block-RAM cells counted (`hwgen.fpga.fit`), with fit.py's logic
  estimate as the prior that `hwgen.explore.calibrate` corrects against real synthesis;
- `synthesize_spec(spec, device, pnr)`: Yosys (and nextpnr for Fmax) on the accelerator, the measured figures.

Each returns a dict with ``status`` ("ok", or "invalid" with a ``reason`` a user can act on). A task never
raises for a bad point; an exception means the infrastructure failed (the sweep reports it as "failed").
"""

import dataclasses
import time
from functools import lru_cache

from ..errors import HwgenError
from .space import ENGINES

ENERGY_COLUMNS = ("energy_pj", "energy_dram_pj", "energy_sram_pj", "energy_compute_pj")

__all__ = ["ENERGY_COLUMNS", "evaluate_point", "estimate_resources", "synthesize_spec", "point_spec", "spec_key_dict"]


def point_spec(target, point):
    """The `AcceleratorSpec` of ``point`` for ``target``: "auto" buffers as `size_spec` sizes them for the
    network, at most as deep as hwgen builds a buffer (or the design's own), every other axis as the point
    says. Raises `HwgenError` (invalid point)."""
    from ..compiler.build import size_spec
    from ..spec import MAX_BUFFER_WORDS, AcceleratorSpec
    dataflow, mv_engine = ENGINES[point.engines]
    name = f"x{point.key}"
    if target.kind == "network":
        types = {}
        if target.base_spec is not None:
            types = {k: getattr(target.base_spec, k).name for k in ("act_type", "weight_type", "acc_type")}
        base = size_spec(target.layers, rows=point.rows, cols=point.cols, name=name, mv_engine=False,
                         chaining=False, max_words=MAX_BUFFER_WORDS, **types)
    else:       # a layer design: its own buffers, in whole words of the point's array
        own = target.base_spec
        base = AcceleratorSpec(**{**{k: getattr(own, k) for k in AcceleratorSpec.__dataclass_fields__},
                                  "rows": point.rows, "cols": point.cols, "name": name, "mv_engine": False,
                                  "chaining": False, "mv_weight_buffer_bytes": None,
                                  "dataflow": "weight_stationary", **_whole_words(own, point.rows, point.cols)})
    fields = base.to_dict()
    fields = {k: fields[k] for k in AcceleratorSpec.__dataclass_fields__}
    # The post-op chain's width and FIFO: a network's, one lane per column as `hwgen compile` builds it
    # (`size_spec`); a layer design's, the defaults of the point's own array and dataflow (a base spec's,
    # defaulted for another, would not fit: e.g. a narrow chain behind the output-stationary array).
    fields.update(dataflow=dataflow, mv_engine=mv_engine, chaining=point.chaining and target.kind == "network",
                  mv_weight_buffer_bytes=None, postop_fifo_depth=None,
                  postop_lanes=point.cols if target.kind == "network" else None)
    # A buffer given in bytes is rounded up to whole words of the point's array.
    from ..spec import buffer_bytes_for
    probe = AcceleratorSpec(**{**fields, "chaining": False, "mv_engine": False})
    for axis, field, bits in (("act_buffer", "act_buffer_bytes", probe.act_word_bits),
                              ("weight_buffer", "weight_buffer_bytes", probe.weight_word_bits),
                              ("acc_buffer", "acc_buffer_bytes", probe.acc_word_bits)):
        value = getattr(point, axis)
        if value != "auto":
            words = -(-value * 8 // bits)
            if field == "act_buffer_bytes":
                words += words % 2          # two equal banks
            fields[field] = buffer_bytes_for(max(words, 2), bits)
    fields.update(dict(point.extra))
    return AcceleratorSpec(**fields)


def _whole_words(spec, rows, cols):
    from ..spec import buffer_bytes_for
    a, w, acc = spec.act_type.bits * rows, spec.weight_type.bits * cols, spec.acc_type.bits * cols
    act_words = max(2, -(-spec.act_buffer_bytes * 8 // a))
    return {"act_buffer_bytes": buffer_bytes_for(act_words + act_words % 2, a),
            "weight_buffer_bytes": buffer_bytes_for(max(2, -(-spec.weight_buffer_bytes * 8 // w)), w),
            "acc_buffer_bytes": buffer_bytes_for(max(1, -(-spec.acc_buffer_bytes * 8 // acc)), acc)}


def spec_key_dict(spec):
    """The spec as the resource cache keys it: everything but the name (it only names the Verilog module)."""
    data = spec.to_dict()
    data.pop("name", None)
    return data


def _layer_spans(program, timeline):
    """`Program.layer_cycles` from the timeline a `Program.predict` already made (AlexNet's takes seconds)."""
    rows, at = [], 0
    for pl in program.layers:
        events = timeline[at:at + len(pl.plan.commands)]
        at += len(pl.plan.commands)
        rows.append({"layer": pl.name, "commands": len(events), "start": min(e["take"] for e in events),
                     "end": max(e["last_beat"] for e in events if e["last_beat"] is not None),
                     "macs": pl.layer.problem.macs})
    return rows


def _layer_rows(program, timeline=None):
    from ..energy import layer_energy
    from ..roofline import layer_traffic
    rows, previous_end = [], 0
    spans = program.layer_cycles() if timeline is None else _layer_spans(program, timeline)
    for span, pl in zip(spans, program.layers):
        traffic = layer_traffic(pl.plan, source=pl.source, dest=pl.dest)
        cycles = span["end"] - previous_end       # this layer's share of the run
        previous_end = span["end"]
        pes = program.spec.pes
        rows.append({"layer": pl.name, "engine": pl.engine_name(), "commands": span["commands"], "input": pl.source,
                     "output": pl.dest, "start": span["start"], "end": span["end"], "cycles": cycles,
                     "macs": span["macs"], "utilization": span["macs"] / (pes * cycles) if cycles else 0.0,
                     "bytes_moved": pl.plan.bytes_moved["total"], "dram_bytes": traffic.dram_bytes,
                     "im2col": bool(pl.plan.im2col), "tiles": len(pl.plan.tiles),
                     **_energy_columns(layer_energy(pl.plan, _energy_table(), source=pl.source, dest=pl.dest), 1)})
    return rows


@lru_cache(maxsize=1)
def _energy_table():
    from ..energy import EnergyTable
    return EnergyTable.load()


def _energy_columns(energy, batch):
    """A layer's energy (`hwgen.energy.layer_energy`, one input) for a batch, in pJ."""
    return {"energy_pj": energy["total_pj"] * batch, "energy_dram_pj": energy["dram_pj"] * batch,
            "energy_sram_pj": energy["sram_pj"] * batch, "energy_compute_pj": energy["compute_pj"] * batch}


def _evaluate_layers(target, spec, point):
    """A layer design: each layer planned on its own (from `acts`, to `out`) on the fastest engine it has."""
    from ..energy import layer_energy
    from ..perf import predict_plan
    from ..roofline import layer_traffic
    from ..tiling import plan_layer
    rows, total = [], 0
    for problem, postops in target.layers:
        plans = [plan_layer(spec, problem, postops)]
        if spec.mv_engine and problem.kind == "linear" and problem.E == problem.H == 1:
            try:
                plans.append(plan_layer(spec, problem, postops, engine="matrix_vector"))
            except HwgenError:
                pass
        estimates = [(predict_plan(p), p) for p in plans]
        estimate, plan = min(estimates, key=lambda item: item[0].cycles)
        cycles = estimate.cycles * point.batch
        traffic = layer_traffic(plan)
        rows.append({"layer": problem.name, "engine": plan.engine, "commands": len(plan.tiles), "input": "stream",
                     "output": "out", "start": total, "end": total + cycles, "cycles": cycles,
                     "macs": problem.macs * point.batch,
                     "utilization": problem.macs * point.batch / (spec.pes * cycles),
                     "bytes_moved": plan.bytes_moved["total"] * point.batch,
                     "dram_bytes": traffic.dram_bytes * point.batch, "im2col": bool(plan.im2col),
                     "tiles": len(plan.tiles), **_energy_columns(layer_energy(plan, _energy_table()), point.batch)})
        total += cycles
    return total, rows, [f"{target.name}: layers run one after another (a layer design)"]


def evaluate_point(ref, point, *, delay_s=0.0):
    """The cycle model of ``point`` for the network ``ref`` (see the module docstring). ``delay_s`` makes the
    task take at least that long (tests and benchmarks stand in an expensive point with it)."""
    from ..perf import FeedbackOverflowError
    from .networks import load
    started = time.perf_counter()
    result = {"key": point.key, "point": point.to_dict(), "label": point.label()}
    try:
        target = load(ref)
        spec = point_spec(target, point)
        result["spec"] = spec.to_dict()
        if target.kind == "network":
            from ..compiler.program import compile_program
            program = compile_program(spec, target.layers, batch=point.batch, chain=point.chaining)
            timeline = []
            model = program.predict(timeline=timeline)
            cycles, layers, notes = model.cycles, _layer_rows(program, timeline), list(program.notes)
            per_run = point.batch       # the rows are the first input's; the program runs the batch
        else:
            cycles, layers, notes = _evaluate_layers(target, spec, point)
            per_run = 1                 # the rows are whole batches already
    except (HwgenError, FeedbackOverflowError, ValueError) as error:
        result.update(status="invalid", reason=_first_line(error), stage="model")
    else:
        macs = per_run * sum(row["macs"] for row in layers)
        ideal = -(-macs // spec.pes)
        result.update(status="ok", cycles=cycles, ideal_cycles=ideal, macs=macs,
                      utilization=macs / (spec.pes * cycles) if cycles else 0.0,
                      bytes_moved=per_run * sum(row["bytes_moved"] for row in layers),
                      dram_bytes=per_run * sum(row["dram_bytes"] for row in layers), layers=layers, notes=notes,
                      **{k: per_run * sum(row[k] for row in layers) for k in ENERGY_COLUMNS})
        result["energy_per_input_pj"] = result["energy_pj"] / point.batch
        result["pj_per_mac"] = result["energy_pj"] / macs if macs else None
    if delay_s:
        time.sleep(max(0.0, delay_s - (time.perf_counter() - started)))
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result


def _first_line(error):
    text = str(error).strip()
    return text if len(text) < 400 else text[:400] + " ..."


def estimate_resources(spec_dict, device="ecp5-85f", *, elaborate=True):
    """The fast resource estimate of one accelerator on ``device``: DSP and block-RAM cells counted in the
    elaborated design when ``elaborate`` (every multiplier and memory the generator makes, seconds per spec),
    else from the spec alone (PE and post-op multipliers, the three buffers; milliseconds); logic from
    fit.py's rough formula (the prior `hwgen.explore.calibrate` corrects). Fit problems make it "invalid"."""
    from ..spec import AcceleratorSpec
    from ..fpga.devices import get_device
    from ..fpga.fit import estimate_fit
    started = time.perf_counter()
    spec = AcceleratorSpec.from_dict(spec_dict)
    device = get_device(device)
    estimate = estimate_fit(spec, device, check=False)
    source = "spec"
    if elaborate and not estimate.problems:
        from ..fpga.flow import default_component, elaborate_fitted
        _, estimate = elaborate_fitted(spec, default_component(spec), device, io_bits=8, name=spec.name,
                                       check_fit=False)
        source = "rtlil"
    result = {"status": "invalid" if estimate.problems else "ok", "device": device.key, "source": source,
              "dsp": estimate.dsps_needed, "bram": estimate.brams, "lut4_prior": estimate.luts_estimate,
              "multipliers": estimate.multipliers, "available": {"lut4": device.luts, "ff": device.ffs,
                                                                 "dsp": device.dsps, "bram": device.brams[0].count},
              "seconds": round(time.perf_counter() - started, 3)}
    if estimate.problems:
        result["reason"] = "; ".join(p.split(". Fix:")[0] for p in estimate.problems)
    return result


def synthesize_spec(spec_dict, device="ecp5-85f", *, pnr=False, build_dir=None, seed=1, timeout_s=None):
    """Yosys (and with ``pnr`` nextpnr) on one accelerator: the measured LUT4, carry, FF, DSP and block RAM
    (Yosys cell counts) and Fmax (post-route)."""
    from ..spec import AcceleratorSpec
    from ..fpga.flow import synthesize
    from ..fpga.tools import Progress, ToolError
    from ..fpga.fit import FitError
    spec = AcceleratorSpec.from_dict(spec_dict)
    started = time.perf_counter()
    try:
        summary = synthesize(spec, device, build_dir=build_dir, pnr=pnr, seed=seed, timeout_s=timeout_s,
                             progress=Progress(enabled=False))
    except FitError as error:
        return {"status": "invalid", "reason": _first_line(error), "seconds": round(time.perf_counter() - started, 1)}
    except ToolError as error:
        return {"status": "failed", "reason": _first_line(error), "seconds": round(time.perf_counter() - started, 1)}
    keep = ("lut4", "carry", "ff", "dsp", "bram", "lutram", "fmax_mhz", "timing_met", "freq_mhz", "critical_path",
            "share", "tool_seconds", "warnings")
    return {"status": "ok", "pnr": pnr, "seed": seed, **{k: summary.get(k) for k in keep},
            "build_dir": summary["files"]["dir"], "seconds": round(time.perf_counter() - started, 1)}
