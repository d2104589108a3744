"""Run SCALE-Sim (PyPI `scalesim` 3.0.0) on a list of conv layers, traces off, and print per-layer figures as JSON.

This script runs INSIDE the SCALE-Sim venv (benchmarks/.scalesim-venv, made by benchmarks/scalesim.py), never in
the project's venv: scalesim 3.0.0 needs numpy < 2.4 and would clash with the project's numpy.

    benchmarks/.scalesim-venv/bin/python -I benchmarks/scalesim_runner.py JOB.json   # or '-' / nothing: stdin

Job (JSON):
    {"rows": 16, "cols": 16, "dataflow": "ws",                      # ws | os | is
     "sram_kb": 64,                      # or {"ifmap": 64, "filter": 64, "ofmap": 64}; whole KiB (SCALE-Sim parses int)
     "layers": [{"name": "conv3", "ifmap_h": 15, "ifmap_w": 15,      # PADDED input: SCALE-Sim has no padding field
                 "filter_h": 3, "filter_w": 3, "channels": 256, "num_filters": 384, "stride": 1}, ...],
     "verbose": false}                   # true: SCALE-Sim's own banner/per-layer prints and tqdm bars (on stderr)

Output (stdout, one JSON document; every progress message goes to stderr):
    {"scalesim_version": "3.0.0", "numpy_version": ..., "rows", "cols", "dataflow", "sram_kb", "bandwidth_mode": "CALC",
     "layers": [{"name", <the layer's fields>, "ofmap_h", "ofmap_w", "macs",
                 "cycles",                  # COMPUTE_REPORT "Total Cycles": compute incl. fill/drain + stalls
                 "cycles_incl_prefetch",    # "Total Cycles (incl. prefetch)": first DRAM read..last write
                 "stall_cycles", "overall_util_pct", "mapping_efficiency_pct", "compute_util_pct",
                 "bandwidth": {BANDWIDTH_REPORT columns}, "wall_seconds"}, ...]}

How SCALE-Sim is driven: the same objects its `scalesim` class wires up (scale_config read from a .cfg, topologies read
from a topology CSV, simulator), but with save_trace=False. Its CLI (`python -m scalesim.scale`) cannot do that: it
parses `-s N` and then ignores it (always passes save_disk_space=False), writing GBs of SRAM/DRAM traces. The `scalesim`
class cannot be used without a layout CSV either, so the simulator is driven directly with an empty layout object
(custom layouts are off). Each layer runs in its own simulator so progress and wall time are per layer; SCALE-Sim's
layers are independent anyway. Bandwidth mode is CALC ("estimate bandwidth"), in which SCALE-Sim's read buffers are
stall-free: the cycles are the array's compute cycles incl. fill and drain.
"""

import json
import os
import sys
import tempfile
import time

# `python benchmarks/scalesim_runner.py` puts benchmarks/ first on sys.path, where benchmarks/scalesim.py (the
# main-venv helper) would shadow the real `scalesim` package. The helper runs us with -I, which leaves it out; this
# covers a plain invocation.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

DATAFLOWS = ("ws", "os", "is")
LAYER_FIELDS = ("ifmap_h", "ifmap_w", "filter_h", "filter_w", "channels", "num_filters", "stride")
COMPUTE_COLUMNS = ("cycles_incl_prefetch", "cycles", "stall_cycles", "overall_util_pct", "mapping_efficiency_pct",
                   "compute_util_pct")
BANDWIDTH_COLUMNS = ("avg_ifmap_sram_bw", "avg_filter_sram_bw", "avg_ofmap_sram_bw", "avg_ifmap_dram_bw",
                     "avg_filter_dram_bw", "avg_ofmap_dram_bw")


class JobError(ValueError):
    pass


def log(message):
    print(f"[scalesim_runner] {message}", file=sys.stderr, flush=True)


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise JobError(f"{what} must be a positive integer, got {value!r}")
    return value


def parse_job(job):
    """Validate a job dict; return (rows, cols, dataflow, sram_kb dict, layers, verbose)."""
    if not isinstance(job, dict):
        raise JobError("job must be a JSON object")
    rows = _positive_int(job.get("rows"), "rows")
    cols = _positive_int(job.get("cols"), "cols")
    dataflow = job.get("dataflow")
    if dataflow not in DATAFLOWS:
        raise JobError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")
    sram = job.get("sram_kb", 64)
    if not isinstance(sram, dict):
        sram = {"ifmap": sram, "filter": sram, "ofmap": sram}
    sram_kb = {key: _positive_int(sram.get(key), f"sram_kb.{key}") for key in ("ifmap", "filter", "ofmap")}
    layers = job.get("layers")
    if not isinstance(layers, list) or not layers:
        raise JobError("layers must be a non-empty list")
    parsed = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise JobError(f"layers[{index}] must be an object")
        name = str(layer.get("name", f"layer{index}"))
        entry = {"name": name}
        for field in LAYER_FIELDS:
            value = layer.get(field)
            if field == "stride" and isinstance(value, (list, tuple)):
                if len(value) != 2 or value[0] != value[1]:
                    raise JobError(f"{name}: SCALE-Sim's topology CSV has one stride for both axes, got {value!r}")
                value = value[0]
            entry[field] = _positive_int(value, f"{name}.{field}")
        if entry["filter_h"] > entry["ifmap_h"] or entry["filter_w"] > entry["ifmap_w"]:
            raise JobError(f"{name}: filter larger than the (padded) ifmap")
        parsed.append(entry)
    return rows, cols, dataflow, sram_kb, parsed, bool(job.get("verbose", False))


def write_config(path, *, run_name, rows, cols, dataflow, sram_kb):
    # Every key scale_config.read_conf_file() reads in 3.0.0 must be present, [layout] and [sparsity] included.
    text = f"""[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: {sram_kb['ifmap']}
FilterSramSzkB: {sram_kb['filter']}
OfmapSramSzkB: {sram_kb['ofmap']}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth: 10
Dataflow: {dataflow}
MemoryBanks: 1
ReadRequestBuffer: 512
WriteRequestBuffer: 512

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""
    with open(path, "w") as handle:
        handle.write(text)


def write_topology(path, layer):
    # One layer per file. The name written is a neutral one: SCALE-Sim's parser splits a layer whose name contains
    # 'DP' into per-channel depth-wise layers, and a comma would shift the columns. Every row needs the trailing comma:
    # the parser drops the last comma-separated field (row.split(',')[:-1]).
    header = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    row = ", ".join(["layer"] + [str(layer[field]) for field in LAYER_FIELDS]) + ",\n"
    with open(path, "w") as handle:
        handle.write(header + row)


def read_report(path):
    """Rows of one of SCALE-Sim's report CSVs (header skipped, trailing empty field dropped), as lists of floats."""
    rows = []
    with open(path) as handle:
        next(handle)
        for line in handle:
            fields = [field.strip() for field in line.strip().split(",")]
            if fields and fields[-1] == "":
                fields.pop()
            if fields:
                rows.append([float(field) for field in fields[1:]])
    return rows


def _number(value):
    return int(value) if float(value).is_integer() else float(value)


def run_layer(layer, *, rows, cols, dataflow, sram_kb, verbose, workdir):
    from scalesim.layout_utils import layouts
    from scalesim.scale_config import scale_config
    from scalesim.simulator import simulator
    from scalesim.topology_utils import topologies

    config_path = os.path.join(workdir, "run.cfg")
    topology_path = os.path.join(workdir, "topology.csv")
    write_config(config_path, run_name="run", rows=rows, cols=cols, dataflow=dataflow, sram_kb=sram_kb)
    write_topology(topology_path, layer)

    config = scale_config()
    config.read_conf_file(config_path)
    if not config.valid_conf_flag:
        raise RuntimeError("SCALE-Sim rejected the generated config file")
    config.set_topology_file(topology_path)
    topo = topologies()
    topo.load_arrays(topofile=topology_path, mnk_inputs=False)
    if topo.get_num_layers() != 1:
        raise RuntimeError(f"SCALE-Sim parsed {topo.get_num_layers()} layers from one topology row")
    topo.topo_calc_hyperparams()
    ofmap_h, ofmap_w, macs, _window = topo.layers_calculated_hyperparams[0]

    sim = simulator()
    sim.set_params(config_obj=config, topo_obj=topo, layout_obj=layouts(), top_path=workdir, verbosity=verbose,
                   save_trace=False)
    started = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - started

    report_dir = os.path.join(workdir, "run")
    (compute,) = read_report(os.path.join(report_dir, "COMPUTE_REPORT.csv"))
    (bandwidth,) = read_report(os.path.join(report_dir, "BANDWIDTH_REPORT.csv"))
    if len(compute) != len(COMPUTE_COLUMNS) or len(bandwidth) != len(BANDWIDTH_COLUMNS):
        raise RuntimeError(f"unexpected SCALE-Sim report layout: {compute!r} / {bandwidth!r}")
    result = dict(layer)
    result.update(ofmap_h=ofmap_h, ofmap_w=ofmap_w, macs=macs)
    result.update({column: _number(value) for column, value in zip(COMPUTE_COLUMNS, compute)})
    result["bandwidth"] = {column: value for column, value in zip(BANDWIDTH_COLUMNS, bandwidth)}
    result["wall_seconds"] = round(wall, 3)
    # The report's utilization is MACs / (cycles * PEs); check we read the columns the way SCALE-Sim meant them.
    expected_util = 100.0 * macs / (result["cycles"] * rows * cols)
    if abs(expected_util - result["overall_util_pct"]) > 1e-6 * max(1.0, expected_util):
        raise RuntimeError(f"{layer['name']}: COMPUTE_REPORT columns do not match MACs/(cycles*PEs)")
    return result


def run_job(job):
    rows, cols, dataflow, sram_kb, layers, verbose = parse_job(job)
    import numpy
    from importlib.metadata import version

    results = []
    for index, layer in enumerate(layers):
        log(f"{dataflow} {rows}x{cols}: layer {index + 1}/{len(layers)} {layer['name']} "
            f"({layer['ifmap_h']}x{layer['ifmap_w']}x{layer['channels']}, {layer['filter_h']}x{layer['filter_w']}, "
            f"{layer['num_filters']} filters, stride {layer['stride']}) ...")
        with tempfile.TemporaryDirectory(prefix="scalesim-") as workdir:
            # SCALE-Sim prints freely (banners, tqdm); keep stdout for our JSON.
            saved_stdout = sys.stdout
            sys.stdout = sys.stderr
            try:
                result = run_layer(layer, rows=rows, cols=cols, dataflow=dataflow, sram_kb=sram_kb, verbose=verbose,
                                   workdir=workdir)
            finally:
                sys.stdout = saved_stdout
        log(f"  {layer['name']}: {result['cycles']} cycles, overall util {result['overall_util_pct']:.2f} %, "
            f"mapping eff {result['mapping_efficiency_pct']:.2f} % ({result['wall_seconds']:.1f} s)")
        results.append(result)
    return {"scalesim_version": version("scalesim"), "numpy_version": numpy.__version__, "rows": rows, "cols": cols,
            "dataflow": dataflow, "sram_kb": sram_kb, "bandwidth_mode": "CALC", "layers": results}


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__, file=sys.stderr)
        return 2
    source = argv[1] if len(argv) == 2 else "-"
    try:
        if source == "-":
            job = json.load(sys.stdin)
        else:
            with open(source) as handle:
                job = json.load(handle)
    except (json.JSONDecodeError, OSError) as error:
        print(f"scalesim_runner: cannot read the job from {source}: {error}", file=sys.stderr)
        return 2
    try:
        output = run_job(job)
    except JobError as error:
        print(f"scalesim_runner: bad job: {error}", file=sys.stderr)
        return 2
    except ImportError as error:
        print(f"scalesim_runner: SCALE-Sim is not importable here ({error}); run me with the SCALE-Sim venv's python "
              "(benchmarks/scalesim.py: ensure_venv())", file=sys.stderr)
        return 3
    json.dump(output, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
