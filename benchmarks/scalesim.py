"""SCALE-Sim side of the AlexNet cycle comparison: runs SCALE-Sim 3.0.0 in its own venv and returns per-layer figures.

    python benchmarks/scalesim.py                        # 16x16, ws and os, AlexNet conv1-5 -> results/...16x16.json
    python benchmarks/scalesim.py --rows 8 --cols 8 --dataflow ws --layers conv3 conv4 --out /tmp/x.json

From the main venv (benchmarks/ on sys.path, as when a script in benchmarks/ runs):

    from scalesim import ALEXNET_CONV, ensure_venv, load_results, run_scalesim
    per_layer = run_scalesim(ALEXNET_CONV, rows=16, cols=16, dataflow="ws")   # minutes: SCALE-Sim is slow
    saved = load_results()                 # the committed figures, without running SCALE-Sim

SCALE-Sim (PyPI `scalesim` 3.0.0) crashes under numpy 2.4 (an int() of a 1-element array in
memory/double_buffered_scratchpad_mem.py:307), so it lives in benchmarks/.scalesim-venv (git-ignored, made on demand
by ensure_venv()) with numpy < 2.4, and benchmarks/scalesim_runner.py runs there as a subprocess, JSON in and out.

Each per-layer dict has the layer's padded SCALE-Sim shape and, from SCALE-Sim's COMPUTE_REPORT:
`cycles` ("Total Cycles": compute cycles incl. fill/drain, plus stalls, which are 0 in the CALC bandwidth mode used),
`cycles_incl_prefetch` (first DRAM read to last DRAM write), `stall_cycles`, `overall_util_pct` (MACs / (cycles *
PEs)), `mapping_efficiency_pct`, `compute_util_pct`; also `bandwidth` (BANDWIDTH_REPORT), `ofmap_h/w`, `macs`,
`wall_seconds`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_DIR = HERE / ".scalesim-venv"
RUNNER = HERE / "scalesim_runner.py"
RESULTS_DIR = HERE / "results"
RESULTS_PATH = RESULTS_DIR / "scalesim_alexnet_16x16.json"
SCALESIM_VERSION = "3.0.0"
REQUIREMENTS = (f"scalesim=={SCALESIM_VERSION}", "numpy<2.4")
DATAFLOWS = ("ws", "os", "is")


class ScaleSimError(RuntimeError):
    """SCALE-Sim could not be installed or run."""


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """A conv layer in our terms (unpadded input C x H x W, M filters of R x S, stride, symmetric zero padding)."""

    name: str
    C: int
    H: int
    W: int
    M: int
    R: int
    S: int
    stride: int = 1
    pad: int = 0

    @property
    def out_h(self) -> int:
        return (self.H + 2 * self.pad - self.R) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.W + 2 * self.pad - self.S) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.out_h * self.out_w * self.M * self.C * self.R * self.S

    def scalesim_layer(self) -> dict:
        """SCALE-Sim's description: no padding field, so the padded input size."""
        return {"name": self.name, "ifmap_h": self.H + 2 * self.pad, "ifmap_w": self.W + 2 * self.pad,
                "filter_h": self.R, "filter_w": self.S, "channels": self.C, "num_filters": self.M,
                "stride": self.stride}

    def topology_row(self) -> str:
        """The layer as a row of a SCALE-Sim topology CSV (the trailing comma is required)."""
        layer = self.scalesim_layer()
        return ", ".join([self.name] + [str(layer[key]) for key in ("ifmap_h", "ifmap_w", "filter_h", "filter_w",
                                                                    "channels", "num_filters", "stride")]) + ","


# AlexNet conv1-5 as SCALE-Sim's alexnet topology lists them (ungrouped conv2/4/5: 96->256, 384->384, 384->256), with
# the padding that makes the outputs the real 55/27/13/13/13; SCALE-Sim gets the padded inputs 227, 31, 15, 15, 15.
# These padded shapes reproduce the published 16x16 SCALE-Sim utilizations (ws 78.6 % on conv3-5, os 94.8-97.8 % on
# conv2-5). Beware: the alexnet.csv in SCALE-Sim's repository (topologies/conv_nets/alexnet.csv, the package on PyPI
# ships no topologies) gives UNPADDED inputs 224/27/13/13/13, i.e. 54x54/23x23/11x11 outputs; it is kept below as
# SCALESIM_REPO_ALEXNET_CSV for reference, not used.
ALEXNET_CONV = (
    ConvLayer("conv1", C=3, H=227, W=227, M=96, R=11, S=11, stride=4, pad=0),
    ConvLayer("conv2", C=96, H=27, W=27, M=256, R=5, S=5, stride=1, pad=2),
    ConvLayer("conv3", C=256, H=13, W=13, M=384, R=3, S=3, stride=1, pad=1),
    ConvLayer("conv4", C=384, H=13, W=13, M=384, R=3, S=3, stride=1, pad=1),
    ConvLayer("conv5", C=384, H=13, W=13, M=256, R=3, S=3, stride=1, pad=1),
)

SCALESIM_REPO_ALEXNET_CSV = """\
Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,
Conv1     ,224         ,224        ,11           ,11          ,3       ,96        ,4      ,
Conv2     ,27         ,27        ,5            ,5           ,96      ,256       ,1      ,
Conv3     ,13          ,13         ,3            ,3           ,256     ,384       ,1      ,
Conv4     ,13          ,13         ,3            ,3           ,384     ,384       ,1      ,
Conv5     ,13          ,13         ,3            ,3           ,384     ,256       ,1      ,
"""


def closed_form_cycles(layer: ConvLayer | Mapping, *, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim 3.0.0's cycle count ('Total Cycles', CALC mode: no stalls) in closed form, read off its demand
    matrices (compute/systolic_compute_{ws,os}.py) and checked against its runs (run_alexnet() records both):

        ws: ceil(R*S*C / rows) * ceil(M / cols) * (2*rows + cols + E - 2) - 1     (E = output pixels)
            each fold: `rows` cycles to load the weights, then E input rows streamed with rows+cols-2 fill/drain
        os: ceil(E / rows) * ceil(M / cols) * (R*S*C + rows + cols - 2) - 1

    The final -1: SCALE-Sim reports the 0-based index of the last output line, not a count.
    """
    layer = layer.scalesim_layer() if isinstance(layer, ConvLayer) else layer
    out_h = (layer["ifmap_h"] - layer["filter_h"]) // layer["stride"] + 1
    out_w = (layer["ifmap_w"] - layer["filter_w"]) // layer["stride"] + 1
    pixels = out_h * out_w
    window = layer["filter_h"] * layer["filter_w"] * layer["channels"]
    col_folds = -(-layer["num_filters"] // cols)
    if dataflow == "ws":
        return -(-window // rows) * col_folds * (2 * rows + cols + pixels - 2) - 1
    if dataflow == "os":
        return -(-pixels // rows) * col_folds * (window + rows + cols - 2) - 1
    raise ValueError(f"no closed form for dataflow {dataflow!r} (ws and os only)")


def _log(message: str) -> None:
    print(f"[scalesim] {message}", file=sys.stderr, flush=True)


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


_PROBE = ("import importlib.metadata as m, numpy, scalesim.simulator; "
          "print(m.version('scalesim')); print(numpy.__version__)")


def _venv_ready(python: Path) -> tuple[bool, str]:
    """Whether `python` imports scalesim==SCALESIM_VERSION with numpy < 2.4; with what it found."""
    if not python.exists():
        return False, "no interpreter"
    try:
        probe = subprocess.run([str(python), "-I", "-c", _PROBE], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    if probe.returncode != 0:
        lines = probe.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit {probe.returncode}"
    scalesim_version, numpy_version = probe.stdout.split()[:2]
    try:
        numpy_ok = tuple(int(part) for part in numpy_version.split(".")[:2]) < (2, 4)
    except ValueError:
        numpy_ok = False
    found = f"scalesim {scalesim_version}, numpy {numpy_version}"
    return scalesim_version == SCALESIM_VERSION and numpy_ok, found


def _run_step(command: list[str], what: str, timeout: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ScaleSimError(f"could not {what}: {error}") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise ScaleSimError(f"could not {what} (exit {done.returncode}):\n{tail}")


def ensure_venv(venv_dir: Path | str = VENV_DIR, *, python: str | None = None) -> Path:
    """Make sure `venv_dir` is a venv with scalesim==3.0.0 and numpy<2.4; return its Python interpreter.

    Idempotent: a venv that already imports the right versions is left alone (one quick probe). A missing or broken
    one is (re)created with `python -m venv` (`python` defaults to this interpreter) and filled from PyPI with pip,
    which takes a minute or two. Progress goes to stderr. Raises ScaleSimError with pip's/venv's output if that fails.
    """
    venv_dir = Path(venv_dir)
    interpreter = _venv_python(venv_dir)
    ready, found = _venv_ready(interpreter)
    if ready:
        return interpreter
    if not interpreter.exists():
        if venv_dir.exists():
            if not (venv_dir / "pyvenv.cfg").exists() and any(venv_dir.iterdir()):
                raise ScaleSimError(f"{venv_dir} exists and is not a venv; remove it or pass another venv_dir")
            _log(f"removing the broken venv {venv_dir}")
            shutil.rmtree(venv_dir)
        _log(f"creating the SCALE-Sim venv {venv_dir} ...")
        _run_step([python or sys.executable, "-m", "venv", str(venv_dir)], f"create the venv {venv_dir} (on Debian "
                  "the venv module may need `apt-get install python3-venv`)", timeout=600)
    else:
        _log(f"SCALE-Sim venv {venv_dir} not usable yet ({found})")
    _log(f"installing {' '.join(REQUIREMENTS)} into it (a minute or two) ...")
    _run_step([str(interpreter), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *REQUIREMENTS],
              f"pip install {' '.join(REQUIREMENTS)} into {venv_dir}", timeout=1800)
    ready, found = _venv_ready(interpreter)
    if not ready:
        raise ScaleSimError(f"the SCALE-Sim venv {venv_dir} still does not work after pip install: {found}")
    _log(f"SCALE-Sim venv ready ({found})")
    return interpreter


def _as_scalesim_layer(layer) -> dict:
    if isinstance(layer, ConvLayer):
        return layer.scalesim_layer()
    if isinstance(layer, Mapping):
        return dict(layer)
    raise TypeError(f"a layer must be a ConvLayer or a dict in scalesim_runner's format, got {type(layer).__name__}")


def run_scalesim_job(layers: Iterable, *, rows: int, cols: int, dataflow: str, sram_kb: int | Mapping = 64,
                     verbose: bool = False, timeout: float | None = None, venv_dir: Path | str = VENV_DIR) -> dict:
    """Run SCALE-Sim on `layers` (ConvLayers, or dicts as scalesim_runner.py takes them) and return the runner's whole
    JSON document (versions, configuration and "layers"). Progress lines go to stderr as the layers finish."""
    if dataflow not in DATAFLOWS:
        raise ValueError(f"dataflow must be one of {DATAFLOWS}, got {dataflow!r}")
    job = {"rows": rows, "cols": cols, "dataflow": dataflow,
           "sram_kb": dict(sram_kb) if isinstance(sram_kb, Mapping) else sram_kb,
           "layers": [_as_scalesim_layer(layer) for layer in layers], "verbose": verbose}
    interpreter = ensure_venv(venv_dir)
    # -I: the runner's directory (benchmarks/, where this file would shadow the real `scalesim`) stays off sys.path.
    process = subprocess.Popen([str(interpreter), "-I", str(RUNNER), "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines: list[str] = []

    def tee_stderr():
        for line in process.stderr:
            stderr_lines.append(line)
            sys.stderr.write(line)
            sys.stderr.flush()

    tee = threading.Thread(target=tee_stderr, daemon=True)
    tee.start()
    timed_out = threading.Event()

    def kill():
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    try:
        # Not communicate(): it would read stderr too, racing the tee thread for the progress lines.
        try:
            process.stdin.write(json.dumps(job))
            process.stdin.close()
        except BrokenPipeError:
            pass
        stdout = process.stdout.read()
        process.wait()
    finally:
        if timer:
            timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        tee.join(timeout=5)
    if timed_out.is_set():
        raise ScaleSimError(f"SCALE-Sim ({dataflow} {rows}x{cols}) did not finish within {timeout} s")
    if process.returncode != 0:
        tail = "".join(stderr_lines[-25:]).rstrip()
        raise ScaleSimError(f"SCALE-Sim runner failed (exit {process.returncode}, {dataflow} {rows}x{cols}):\n{tail}")
    try:
        return json.loads(stdout)
    except json.JSONDecodeError as error:
        raise ScaleSimError(f"SCALE-Sim runner printed no JSON ({error}): {stdout[:500]!r}") from error


def run_scalesim(layers: Iterable, *, rows: int, cols: int, dataflow: str, sram_kb: int | Mapping = 64,
                 verbose: bool = False, timeout: float | None = None, venv_dir: Path | str = VENV_DIR) -> list[dict]:
    """Per-layer SCALE-Sim results (one dict per layer, in order; see the module docstring for the keys)."""
    return run_scalesim_job(layers, rows=rows, cols=cols, dataflow=dataflow, sram_kb=sram_kb, verbose=verbose,
                            timeout=timeout, venv_dir=venv_dir)["layers"]


def run_alexnet(*, rows: int = 16, cols: int = 16, dataflows: Iterable[str] = ("ws", "os"),
                sram_kb: int | Mapping = 64, layers: Iterable[ConvLayer] = ALEXNET_CONV, parallel: bool = True) -> dict:
    """Run SCALE-Sim on AlexNet's conv layers for each dataflow (the dataflows in parallel processes) and return a
    document in the format of results/scalesim_alexnet_16x16.json."""
    layers = tuple(layers)
    dataflows = tuple(dataflows)
    ensure_venv()
    jobs: dict[str, dict] = {}
    errors: dict[str, BaseException] = {}

    def one(dataflow):
        try:
            jobs[dataflow] = run_scalesim_job(layers, rows=rows, cols=cols, dataflow=dataflow, sram_kb=sram_kb)
        except BaseException as error:  # re-raised below, in the caller's thread
            errors[dataflow] = error

    started = time.perf_counter()
    if parallel and len(dataflows) > 1:
        threads = [threading.Thread(target=one, args=(dataflow,)) for dataflow in dataflows]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        for dataflow in dataflows:
            one(dataflow)
    for dataflow in dataflows:
        if dataflow in errors:
            raise errors[dataflow]
    first = jobs[dataflows[0]]
    return {
        "benchmark": "scalesim_alexnet_conv",
        "scalesim_version": first["scalesim_version"], "numpy_version": first["numpy_version"],
        "rows": rows, "cols": cols, "sram_kb": first["sram_kb"], "bandwidth_mode": first["bandwidth_mode"],
        "cycles_meaning": "COMPUTE_REPORT 'Total Cycles': compute cycles incl. fill/drain + stall cycles (0 in CALC)",
        "layers": [dict(dataclasses.asdict(layer), out_h=layer.out_h, out_w=layer.out_w, macs=layer.macs,
                        scalesim=layer.scalesim_layer()) for layer in layers],
        "dataflows": {dataflow: [dict(result, closed_form_cycles=closed_form_cycles(result, rows=rows, cols=cols,
                                                                                   dataflow=dataflow))
                                 if dataflow in ("ws", "os") else result for result in jobs[dataflow]["layers"]]
                      for dataflow in dataflows},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def load_results(path: Path | str = RESULTS_PATH) -> dict:
    """The saved SCALE-Sim figures (results/scalesim_alexnet_16x16.json by default), without running SCALE-Sim."""
    with open(path) as handle:
        return json.load(handle)


def format_table(results: Mapping) -> str:
    """A per-layer table of a run_alexnet()/load_results() document."""
    lines = [f"SCALE-Sim {results['scalesim_version']}, {results['rows']}x{results['cols']} array, "
             f"SRAM {results['sram_kb']} KiB, bandwidth mode {results['bandwidth_mode']}",
             f"{'dataflow':<9}{'layer':<7}{'ifmap':>12}{'filter':>8}{'M':>5}{'stride':>7}{'cycles':>10}{'stalls':>8}"
             f"{'util %':>8}{'map eff %':>10}{'sim s':>8}"]
    for dataflow, per_layer in results["dataflows"].items():
        for layer in per_layer:
            ifmap = f"{layer['ifmap_h']}x{layer['ifmap_w']}x{layer['channels']}"
            kernel = f"{layer['filter_h']}x{layer['filter_w']}"
            lines.append(f"{dataflow:<9}{layer['name']:<7}{ifmap:>12}{kernel:>8}"
                         f"{layer['num_filters']:>5}{layer['stride']:>7}{layer['cycles']:>10}"
                         f"{layer['stall_cycles']:>8}{layer['overall_util_pct']:>8.2f}"
                         f"{layer['mapping_efficiency_pct']:>10.2f}{layer['wall_seconds']:>8.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run SCALE-Sim 3.0.0 (own venv) on AlexNet conv1-5 and save the "
                                                 "per-layer cycles and utilizations as JSON.")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--dataflow", nargs="+", default=["ws", "os"], choices=DATAFLOWS)
    parser.add_argument("--sram-kb", type=int, default=64, help="each of the ifmap/filter/ofmap SRAMs (KiB)")
    parser.add_argument("--layers", nargs="+", default=[layer.name for layer in ALEXNET_CONV],
                        choices=[layer.name for layer in ALEXNET_CONV])
    parser.add_argument("--out", type=Path, help="default: results/scalesim_alexnet_<rows>x<cols>.json")
    parser.add_argument("--serial", action="store_true", help="run the dataflows one after another")
    parser.add_argument("--setup-only", action="store_true", help="only create/check the SCALE-Sim venv")
    args = parser.parse_args(argv)
    try:
        interpreter = ensure_venv()
        if args.setup_only:
            print(interpreter)
            return 0
        layers = [layer for layer in ALEXNET_CONV if layer.name in args.layers]
        results = run_alexnet(rows=args.rows, cols=args.cols, dataflows=args.dataflow, sram_kb=args.sram_kb,
                              layers=layers, parallel=not args.serial)
    except ScaleSimError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out = args.out or RESULTS_DIR / f"scalesim_alexnet_{args.rows}x{args.cols}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(format_table(results))
    mismatches = [f"{dataflow} {layer['name']}: {layer['cycles']} != {layer['closed_form_cycles']}"
                  for dataflow, per_layer in results["dataflows"].items() for layer in per_layer
                  if "closed_form_cycles" in layer and layer["closed_form_cycles"] != layer["cycles"]]
    print("closed form (closed_form_cycles()): " + ("MISMATCH " + "; ".join(mismatches) if mismatches
                                                     else "matches SCALE-Sim on every layer"))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
