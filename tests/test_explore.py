"""hwgen explore: the space, the sweep in one process (model, resources, frontier, invalid points), the cache,
the calibration, the files and the HTML report."""

import csv
import json
import random

import pytest

from hwgen.errors import HwgenError
from hwgen.explore.calibrate import ResourceModel
from hwgen.explore.cache import Cache
from hwgen.explore.frontier import pareto
from hwgen.explore.outputs import CSV_COLUMNS, write_outputs
from hwgen.explore.space import Point, Space, parse_bytes
from hwgen.explore.sweep import SweepConfig, run_sweep

SMALL = dict(array=["2x2", "4x4", "4x8"], engines=["ws+mv", "os"], act_buffer=["auto", "8K"], chaining=[True, False])


def test_space_spans_the_product_and_keys_are_stable():
    space = Space(**SMALL)
    points = space.points()
    assert len(points) == 3 * 2 * 2 * 2
    assert len({p.key for p in points}) == len(points)
    again = Space(**SMALL).points()
    assert [p.key for p in points] == [p.key for p in again]
    assert points[0].label() == "2x2 ws+mv chain"
    assert parse_bytes("16K") == 16384 and parse_bytes("4M") == 4 << 20 and parse_bytes("auto") == "auto"


def test_space_file_and_errors(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text('array = ["2x2", "8x8"]\nengines = ["ws"]\nact_buffer = ["16K"]\n[set]\nfeedback_depth = [256, 512]\n')
    space = Space.from_file(path)
    assert len(space.points()) == 4
    assert dict(space.points()[0].extra) == {"feedback_depth": 256}
    with pytest.raises(HwgenError, match="engines"):
        Space(engines=["tpu"])
    with pytest.raises(HwgenError, match="ROWSxCOLS"):
        Space(array=["8by8"])
    with pytest.raises(HwgenError, match="not an AcceleratorSpec field"):
        Space(set={"warp_drive": [1]})
    bad = tmp_path / "bad.toml"
    bad.write_text("arrays = ['2x2']\n")
    with pytest.raises(HwgenError, match="unknown axes"):
        Space.from_file(bad)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    config = SweepConfig(network="lenet", space=Space(**SMALL), workers=0, cache_dir=str(cache), show_progress=False)
    return config, run_sweep(config)


def test_sweep_gives_exact_cycles_and_lists_invalid_points_with_reasons(swept):
    config, result = swept
    from hwgen.compiler.program import compile_program
    from hwgen.compiler.zoo import lenet
    from hwgen.explore.evaluate import point_spec
    from hwgen.explore.networks import load
    assert len(result.points) == 24
    # 4x8 with chaining cannot be built: listed, with the reason, not dropped.
    bad = [p for p in result.points if p["status"] != "ok"]
    assert {p["label"] for p in bad} >= {"4x8 ws+mv chain", "4x8 os chain"}
    assert all("square array" in p["reason"] for p in bad if p["label"].startswith("4x8") and "nochain" not in p["label"])
    # The cycles are the compiler's exact model for the same accelerator.
    record = next(p for p in result.points if p["label"] == "4x4 ws+mv chain")
    spec = point_spec(load("lenet"), Point(rows=4, cols=4, engines="ws+mv"))
    assert record["cycles"] == compile_program(spec, lenet(random=False)).predict().cycles
    assert record["utilization"] == pytest.approx(record["macs"] / (16 * record["cycles"]))
    assert [row["layer"] for row in record["layers"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert record["layers"][-1]["end"] == record["cycles"]
    assert record["bytes_moved"] > record["dram_bytes"] > 0       # on-chip boundaries move no DRAM bytes
    assert record["dsp"] and record["bram"] and record["area"]


def test_frontier_is_the_non_dominated_set(swept):
    _, result = swept
    valid = result.valid
    objectives = result.objectives
    assert objectives == ["cycles", "area", "energy_pj"]       # energy is a default objective, every point has it
    front = [p for p in valid if p.get("frontier")]
    assert front and {p["key"] for p in front} == set(result.frontier)

    def dominates(q, p):
        return all(q[o] <= p[o] for o in objectives) and any(q[o] < p[o] for o in objectives)
    for p in front:
        assert not any(dominates(q, p) for q in valid)
    for p in valid:
        if not p.get("frontier"):
            assert any(all(q[o] <= p[o] for o in objectives) for q in front)


def test_energy_is_the_energy_model_of_the_whole_batch(swept):
    _, result = swept
    from hwgen.compiler.program import compile_program
    from hwgen.compiler.zoo import lenet
    from hwgen.energy import network_energy
    from hwgen.explore.evaluate import evaluate_point, point_spec
    from hwgen.explore.networks import load
    record = next(p for p in result.points if p["label"] == "4x4 ws+mv chain")
    spec = point_spec(load("lenet"), Point(rows=4, cols=4, engines="ws+mv"))
    energy = network_energy(compile_program(spec, lenet(random=False)))
    assert record["energy_pj"] == pytest.approx(energy["total_pj"])
    assert record["energy_dram_pj"] + record["energy_sram_pj"] + record["energy_compute_pj"] == \
        pytest.approx(record["energy_pj"])
    assert [row["energy_pj"] for row in record["layers"]] == pytest.approx([r["total_pj"] for r in energy["layers"]])
    # A batch of 3 costs 3 inputs' energy and MACs (the per-layer rows stay the first input's).
    batched = evaluate_point("lenet", Point(rows=4, cols=4, engines="ws+mv", batch=3))
    assert batched["energy_pj"] == pytest.approx(3 * record["energy_pj"])
    assert batched["energy_per_input_pj"] == pytest.approx(record["energy_pj"])
    assert batched["macs"] == 3 * record["macs"] and batched["pj_per_mac"] == pytest.approx(record["pj_per_mac"])
    assert batched["utilization"] == pytest.approx(batched["macs"] / (16 * batched["cycles"]))


def test_pareto_skips_an_objective_no_point_has():
    points = [{"cycles": 10, "area": 0.5}, {"cycles": 5, "area": 0.9}, {"cycles": 12, "area": 0.6}]
    front, objectives = pareto(points, ("cycles", "area", "energy_pj"))
    assert objectives == ["cycles", "area"] and [p["cycles"] for p in front] == [5, 10]
    points[0]["energy_pj"], points[1]["energy_pj"], points[2]["energy_pj"] = 3, 4, 1
    front, objectives = pareto(points, ("cycles", "area", "energy_pj"))
    assert objectives == ["cycles", "area", "energy_pj"] and len(front) == 3


def test_rerun_is_served_from_the_cache(swept):
    config, first = swept
    again = run_sweep(config)
    assert again.stats["model"]["computed"] == 0 and again.stats["resources"]["computed"] == 0
    assert [p["cycles"] for p in again.valid] == [p["cycles"] for p in first.valid]
    changed = SweepConfig(**{**config.__dict__, "space": Space(**{**SMALL, "array": ["2x2", "4x4", "8x8"]})})
    third = run_sweep(changed)
    assert third.stats["model"]["computed"] == 8         # only the 8x8 points are new
    fresh = SweepConfig(**{**config.__dict__, "recompute": ("model",)})
    assert run_sweep(fresh).stats["model"]["computed"] == 24


def test_cache_key_follows_the_inputs_and_versions(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    cache.put("model", {"a": 1}, {"status": "ok"})
    assert cache.get("model", {"a": 1}) == {"status": "ok"} and cache.get("model", {"a": 2}) is None
    import hwgen.explore.cache as module
    versions = dict(module.tool_versions("model"))
    monkeypatch.setattr(module, "tool_versions", lambda kind: {**versions, "hwgen": "99"})
    assert cache.get("model", {"a": 1}) is None                 # another hwgen: computed again
    assert list(cache.entries("model")) == []


def test_calibration_recovers_a_linear_cost_and_reports_leave_one_out():
    rng = random.Random(3)
    samples = []
    for rows, cols, mv, os_ in [(2, 2, True, False), (4, 4, True, False), (2, 2, False, False), (4, 4, False, True),
                                (8, 8, False, False), (4, 8, True, False), (3, 3, False, True), (6, 6, True, False)]:
        spec = {"rows": rows, "cols": cols, "mv_engine": mv, "postops": True,
                "dataflow": "output_stationary" if os_ else "weight_stationary"}
        pes = rows * cols
        bram = rng.randint(5, 40)
        measured = {"lut4": 900 + 40 * pes + 1500 * cols + 70 * pes * mv + 10 * pes * os_,
                    "ff": 1200 + 60 * pes + 1800 * cols, "carry": 300 + 5 * pes, "dsp": pes + pes * mv + 4 * cols,
                    "bram": bram + 8}
        estimate = {"lut4_prior": 1000 + 50 * pes, "dsp": pes + 4 * cols, "bram": bram}
        samples.append((spec, estimate, measured))
    model = ResourceModel.fit(samples)
    for spec, estimate, measured in samples:
        predicted = model.predict(spec, estimate)
        for metric in ("lut4", "ff", "dsp", "bram"):
            assert predicted[metric] == pytest.approx(measured[metric], rel=0.02), metric
    rows, errors = ResourceModel.table(samples)
    assert len(rows) == len(samples) and errors["dsp"]["calibrated"] < 1.0
    assert ResourceModel.fit(samples[:2]).predict(*samples[0][:2])["ff"] is None     # too few: the prior


def test_outputs_csv_json_plots_and_report(swept, tmp_path):
    _, result = swept
    files = write_outputs(result, tmp_path)
    rows = list(csv.DictReader(open(files["csv"])))
    assert len(rows) == 24 and tuple(rows[0]) == CSV_COLUMNS
    assert {r["status"] for r in rows} == {"ok", "invalid"} and all(r["reason"] for r in rows if r["status"] != "ok")
    doc = json.loads(files["json"].read_text())
    assert doc["frontier"] == result.frontier and len(doc["points"]) == 24
    for name in ("frontier_png", "layers_png"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = files["html"].read_text()
    assert "Pareto frontier" in html and "Invalid points" in html and "data:image/png;base64" in html
    assert "square array" in html and "<script" not in html


def test_cli_explore_and_report(tmp_path, capsys):
    from hwgen.cli import main
    out = tmp_path / "sweep"
    assert main(["explore", "lenet", "--array", "2x2,4x4", "--engines", "ws+mv,ws", "--workers", "0", "-o", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "-q"]) == 0
    text = capsys.readouterr().out
    assert "Pareto frontier" in text and "wrote" in text and (out / "report.html").exists()
    assert main(["report", str(out), "-o", str(tmp_path / "again.html")]) == 0
    assert "Pareto frontier" in (tmp_path / "again.html").read_text()
    assert main(["explore", "lenet", "--array", "8by8", "--workers", "0"]) == 2
    assert "ROWSxCOLS" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["explore", "lenet", "--workers", "-1"], "argument --workers: must be a whole number >= 0, not '-1'"),
    (["explore", "lenet", "--synth", "-2"], "argument --synth: must be a whole number >= 0"),
    (["explore", "lenet", "--synth", "1", "--pnr", "2"], "give --synth >= --pnr (now 1)"),
    (["explore", "lenet", "--timeout", "0"], "argument --timeout: must be a positive number of seconds"),
    (["explore", "lenet", "--objectives", "cycles,speed"], "--objectives 'cycles,speed': no column speed"),
    (["explore", "lenet", "--engines", "zz"], "engines 'zz' is not one of ws, ws+mv, os"),
    (["explore", "nosuch"], "'nosuch' is not a built-in network (lenet, alexnet) nor a design"),
    (["explore", "lenet", "--no-cache", "everything"], "--no-cache takes model, resources or synth"),
    (["explore", "lenet", "--set", "feedback_depth"], "--set takes FIELD=V1,V2"),
    (["explore", "lenet", "--space", "{tmp}/space.json"], "space.json: not JSON"),
    (["explore", "lenet", "-o", "{tmp}/space.json"], "exists and is not a directory"),
    (["report", "{tmp}/nowhere"], "no folder"),
    (["report", "{tmp}", "--dram-bw", "0"], "--dram-bw must be a positive number"),
    (["sweep-tests", "tests/test_sim_job.py", "-k", "no_such_test"], "no test in tests/test_sim_job.py matches"),
])
def test_cli_bad_input_is_one_line_and_status_2(args, message, tmp_path, capsys):
    """The exit-status contract of `hwgen.cli` holds for explore, report and sweep-tests: bad input is status 2
    and one line on stderr, no traceback, before any work is done."""
    from hwgen.cli import main
    (tmp_path / "space.json").write_text("{array: 2x2")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    try:
        status = main([*args, "--cache-dir", str(tmp_path / "cache")] if args[0] == "explore" else args)
    except SystemExit as exit:      # argparse's own errors
        status = exit.code
    assert status == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err and captured.out == ""


def test_cli_explore_fails_with_status_1_when_points_could_not_be_computed(tmp_path, capsys, monkeypatch):
    """A point whose task failed (not an invalid point: that is a result) makes the sweep exit 1, its outputs
    still written."""
    import hwgen.explore.evaluate as evaluate
    from hwgen.cli import main
    real = evaluate.evaluate_point

    def broken(ref, point, **kwargs):
        if point.rows == 4:
            raise RuntimeError("the worker lost its disk")
        return real(ref, point, **kwargs)
    monkeypatch.setattr(evaluate, "evaluate_point", broken)
    import hwgen.explore.sweep as sweep
    monkeypatch.setattr(sweep, "evaluate_point", broken)
    status = main(["explore", "lenet", "--array", "2x2,4x4", "--engines", "ws+mv", "--workers", "0", "-q",
                   "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 1 and "FAILED: 1 points and 0 syntheses" in out and "the worker lost its disk" in out
    assert (tmp_path / "out" / "points.csv").exists()


def test_a_failed_tool_run_is_not_cached(tmp_path):
    """A synthesis that failed (killed, timed out: `synthesize_spec` returns status "failed") is tried again by
    the next sweep, not served from the cache; a result is."""
    from hwgen.explore.executor import SerialPool
    from hwgen.explore.progress import progress
    from hwgen.explore.sweep import _run_phase
    cache = Cache(tmp_path)
    items = [("a", {"n": 1}), ("b", {"n": 2})]
    fn = lambda n: {"status": "failed" if n == 1 else "ok", "seconds": 0.1}      # noqa: E731
    with progress(False) as bars:
        results, computed, _ = _run_phase(SerialPool(), cache, "synth", items, fn, lambda i: ((i["n"],), {}),
                                          bars.task("t", 2), retries=0)
    assert computed == 2 and results["a"]["status"] == "failed"
    assert cache.get("synth", {"n": 1}) is None and cache.get("synth", {"n": 2})["status"] == "ok"


def test_synthesis_results_survive_edits_of_the_model_code():
    """The synth cache key hashes `synthesize_spec`'s own source, not its whole module (the cycle model's task
    lives beside it); a missing function is a loud error, not a silently constant key."""
    from pathlib import Path
    import hwgen.explore.evaluate as evaluate
    from hwgen.explore.cache import _SOURCES, _function_source
    assert "explore/evaluate.py::synthesize_spec" in _SOURCES["synth"]
    assert "explore/evaluate.py" not in _SOURCES["synth"] + _SOURCES["resources"]
    text = _function_source(Path(evaluate.__file__), "synthesize_spec")
    assert text.startswith("def synthesize_spec(") and "def evaluate_point" not in text
    with pytest.raises(LookupError):
        _function_source(Path(evaluate.__file__), "no_such_function")


def test_alexnet_points_are_shape_only_and_capped():
    """AlexNet's auto buffers are capped at the deepest buffer hwgen builds (the planner tiles the rest), and its
    zero weights stay a broadcast view through the flattening layer (no 300 MB copy per point)."""
    import numpy as np
    from hwgen.compiler.program import map_layers
    from hwgen.explore.evaluate import point_spec
    from hwgen.explore.networks import load
    from hwgen.spec import MAX_BUFFER_WORDS
    target = load("alexnet")
    spec = point_spec(target, Point(rows=16, cols=16, engines="ws+mv"))
    assert spec.act_buffer_bytes * 8 // spec.act_word_bits == MAX_BUFFER_WORDS
    fc6 = map_layers(spec, target.layers)[5]
    assert fc6.weight.shape == (4096, 9216, 1, 1) and not any(fc6.weight.strides) and not np.any(fc6.weight[:2])


def test_report_of_a_design_folder(tmp_path):
    from hwgen.cli import main
    assert main(["generate", "lenet_ws4", "-o", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path), "--dram-bw", "4"]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "conv2" in html and "Roofline" in html and ("compute" in html or "memory" in html)
    (tmp_path / "sim.json").write_text(json.dumps({"layers": [{"layer": "conv1", "measured_cycles": 1},
                                                              {"layer": "conv2", "measured_cycles": 2}]}))
    assert main(["report", str(tmp_path)]) == 0
    assert "measured per layer from sim.json" in (tmp_path / "report.html").read_text()
    from hwgen.explore.report import render_report
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HwgenError, match="nothing to report"):
        render_report(empty)


def test_layer_design_sweep(tmp_path):
    result = run_sweep(SweepConfig(network="lenet_ws4", space=Space(array=["4x4", "8x8"], engines=["ws", "ws+mv"]),
                                   workers=0, cache_dir=str(tmp_path), show_progress=False))
    assert {p["status"] for p in result.points} == {"ok"}
    four = next(p for p in result.points if p["label"] == "4x4 ws chain")
    from hwgen.design import load_design
    from hwgen.perf import predict_plan
    assert four["cycles"] == sum(predict_plan(plan).cycles for plan in load_design("lenet_ws4").plans())
