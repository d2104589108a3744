"""Run a fixed-point engine program on the Verilog (Icarus or Verilator) through cocotb: the build is cached like
`hwgen.sim.runner`'s (by the Verilog's hash), the testbench is `hwgen.sim.tb_fxp`."""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hwgen.fxp.design import generate_fxp
from hwgen.fxp.perf import HOST_TURNAROUND, Timing, predict
from hwgen.sim.runner import _build, _read_results, _restore_environment, check_stall, simulator_environment

__all__ = ["FxpRun", "generate_fxp", "run_fxp"]


@dataclass
class FxpRun:
    exact: bool
    report: str
    measured: Timing
    model: Timing
    build_seconds: float
    wall_seconds: float
    simulator: str

    @property
    def cycle_exact(self):
        m, p = self.measured, self.model
        return m.cfg == p.cfg and m.done == p.done and m.out == p.out


def run_fxp(program, *, simulator="icarus", stall=0.0, seed=1, build_root=None, tag="fxp", verilog=None):
    """Run `program` on the RTL; the result holds the measured and the modelled `Timing`."""
    spec = program.spec
    env = simulator_environment(simulator)      # ArgumentError for an unknown simulator
    stall = check_stall(stall)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        runner, build_dir, build_seconds = _build(spec, simulator, verilog=verilog or generate_fxp(spec),
                                                  build_root=build_root)
        model = predict(program)
        run_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=build_dir))
        results_path = run_dir / "results.json"
        last = max(model.done[-1], model.out[-1] if model.out else 0)
        job = {"words": {"cfg": [hex(w) for w in program.cfg_words()],
                         "data_in": [hex(w) for w in program.data_words],
                         "weights": [hex(w) for w in program.weight_words]},
               "expected": [hex(w) for w in program.expected_words], "data_gates": program.data_gates,
               "commands": len(program.commands), "seed": seed, "stall": stall,
               "max_cycles": int(last * (4 / (1 - stall) ** 2 if stall else 1.5)) + 200,
               "results_path": str(results_path)}
        job_path = run_dir / "job.json"
        job_path.write_text(json.dumps(job))
        try:
            runner.test(test_module="hwgen.sim.tb_fxp", hdl_toplevel=spec.name, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                        extra_env={"HWGEN_SIM_JOB": str(job_path), "HWGEN_FXP_TURNAROUND": str(HOST_TURNAROUND),
                                   **env},
                        log_file=run_dir / "sim.log")
        except SystemExit:
            pass
        r = _read_results(run_dir, results_path)
        measured = Timing(cfg=r["cfg"], done=r["done"], out=r["out"], beats=[int(b, 16) for b in r["beats"]])
        result = FxpRun(exact=r["exact"], report=r["report"], measured=measured, model=model,
                        build_seconds=build_seconds, wall_seconds=r["wall_seconds"], simulator=simulator)
        if result.exact and (stall or result.cycle_exact):
            shutil.rmtree(run_dir, ignore_errors=True)
        return result
    finally:
        _restore_environment(saved)
