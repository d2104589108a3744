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
    front = [p for p in valid if p.get("frontier")]
    assert front and {p["key"] for p in front} == set(result.frontier)
    for p in front:
        assert not any(q["cycles"] <= p["cycles"] and q["area"] <= p["area"] and
                       (q["cycles"] < p["cycles"] or q["area"] < p["area"]) for q in valid)
    for p in valid:
        if not p.get("frontier"):
            assert any(q["cycles"] <= p["cycles"] and q["area"] <= p["area"] for q in front)


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
