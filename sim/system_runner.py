"""Runner glue for the system top: build `hwgen.hw.system.SystemPorts` for a spec (cached like the stream-fed
accelerator, `hwgen.sim.runner`) and run `hwgen.sim.tb_system` on a network's DRAM image."""

import json
import os
import shutil
import tempfile
import types
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hwgen.errors import ArgumentError

from .runner import SIMULATORS, _build, _read_results, _restore_environment, simulator_environment

__all__ = ["system_verilog", "run_system", "SystemRun"]


def system_verilog(spec, **kwargs):
    """The system top's Verilog (module ``<spec.name>_system``); cached per process."""
    return _system_verilog(spec, tuple(sorted(kwargs.items())))


@lru_cache(maxsize=8)
def _system_verilog(spec, kwargs):
    from hwgen.verilog import generate_system
    return generate_system(spec, **dict(kwargs))


@dataclass
class SystemRun:
    runs: list              # per run: hung, done, error, cause, registers, mismatches, irq_cycles, macs
    build_seconds: float

    @property
    def exact(self):
        return all(not r["hung"] and not r["error"] and not r["mismatches"] for r in self.runs)


def run_system(image, spec, *, scenarios=({},), pause=0.0, interval=1, seed=1, simulator="icarus",
               build_root=None, timeout_cycles=200_000, tag="sys", latency=None, trace=False, **system_kwargs):
    """Run `image` (`hwgen.system.image.SystemImage`) on the system top of `spec`, once per scenario:
    ``{"fault": (start, end)}`` makes every read touching those bytes answer SLVERR; ``{"watchdog": n}`` sets
    the watchdog; ``{"program": (addr, count)}`` runs another program of the image; ``pause`` and ``interval``
    (default: the arguments) set the DRAM's timing for that run (`hwgen.sim.tb_system`). ``latency`` (an
    argument or a scenario's key): the DRAM is the testbench's `ExactDram` (fixed latency and bandwidth, no
    back-pressure, the timing `hwgen.system.exact` models) instead of cocotbext-axi's `AxiRam`, for the whole
    job."""
    if simulator not in SIMULATORS:
        raise ArgumentError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    env = simulator_environment(simulator)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        name = types.SimpleNamespace(name=f"{spec.name}_system")
        runner, build_dir, build_seconds = _build(name, simulator, verilog=system_verilog(spec, **system_kwargs),
                                                  build_root=build_root)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=build_dir))
        results_path = run_dir / "results.json"
        runs = []
        for scenario in scenarios:
            program_addr, count = scenario.get("program", (image.program_addr, image.count))
            runs.append({"program_addr": program_addr, "count": count,
                         "outputs": [(a, e.hex(), n) for a, e, n in image.outputs],
                         "clear": [(a, len(e)) for a, e, _ in image.outputs],
                         "fault": list(scenario["fault"]) if scenario.get("fault") else None,
                         "watchdog": scenario.get("watchdog", 0), "timeout_cycles": timeout_cycles,
                         "pause": scenario.get("pause", pause), "interval": scenario.get("interval", interval),
                         "latency": scenario.get("latency", latency)})
        job = {"size": -(-image.size // 4096) * 4096, "segments": [(a, d.hex()) for a, d in image.segments],
               "runs": runs, "seed": seed, "results_path": str(results_path),
               "exact": any(run["latency"] is not None for run in runs), "trace": trace}
        job_path = run_dir / "job.json"
        job_path.write_text(json.dumps(job))
        try:
            runner.test(test_module="hwgen.sim.tb_system", hdl_toplevel=name.name, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                        extra_env={"HWGEN_SIM_JOB": str(job_path), **env}, log_file=run_dir / "sim.log")
        except SystemExit:
            pass
        result = SystemRun(runs=_read_results(run_dir, results_path)["runs"], build_seconds=build_seconds)
        shutil.rmtree(run_dir, ignore_errors=True)
        return result
    finally:
        _restore_environment(saved)
