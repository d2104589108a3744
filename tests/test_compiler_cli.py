"""`hwgen compile` and `hwgen run`: an ONNX model in, a design folder out (every step's intermediate), the
network on the RTL bit-exact and cycle-exact; bad input rejected with a named error and exit code 2."""

import json

import numpy as np
import pytest

pytest.importorskip("onnx")

from hwgen.cli import main   # noqa: E402
from hwgen.compiler.design import NetworkDesign   # noqa: E402
from hwgen.design import load_design   # noqa: E402
from tests.onnx_graphs import lenet_like, onnx   # noqa: E402


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    onnx.save(lenet_like(), str(folder / "tiny.onnx"))
    rng = np.random.default_rng(0)
    np.save(folder / "calib.npy", rng.uniform(0, 1, (16, 1, 12, 12)).astype(np.float32))
    np.save(folder / "x.npy", rng.uniform(0, 1, (2, 1, 12, 12)).astype(np.float32))
    np.save(folder / "y.npy", np.array([1, 3]))
    return folder


@pytest.fixture(scope="module")
def compiled(model_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("design")
    code = main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                 str(model_files / "calib.npy"), "-o", str(out)])
    assert code == 0
    return out


def test_compile_writes_every_step_and_a_design(compiled):
    for name in ("graph/network.json", "network/network.json", "network/tensors.npz", "map.json", "tiles.json",
                 "program.json", "design.py", "tiny.v", "report.txt"):
        assert (compiled / name).is_file(), name
    program = json.loads((compiled / "program.json").read_text())
    assert program["notes"] == ["conv1 -> conv2: on chip", "conv2 -> fc1: on chip", "fc1 -> fc2: on chip"]
    assert [row["engine"] for row in program["layers"]] == ["weight_stationary", "weight_stationary",
                                                           "matrix_vector", "matrix_vector"]
    design = load_design(compiled)
    assert isinstance(design, NetworkDesign) and design.spec.rows == 4 and design.spec.mv_engine
    assert design.program.predict().cycles == program["model_cycles"]
    # A post-op lane per column (not the bare spec's cols // 4), written into design.py so a re-load keeps it.
    assert design.spec.postop_lanes == 4 and "postop_lanes=4" in (compiled / "design.py").read_text()


def test_postop_lanes_option_builds_a_narrower_chain(model_files, compiled, tmp_path):
    code = main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                 str(model_files / "calib.npy"), "--postop-lanes", "1", "--no-verilog", "-o", str(tmp_path)])
    assert code == 0
    design = load_design(tmp_path)
    assert (design.spec.postop_lanes, design.spec.postop_groups) == (1, 4)
    wide = json.loads((compiled / "program.json").read_text())["model_cycles"]
    narrow = json.loads((tmp_path / "program.json").read_text())["model_cycles"]
    assert narrow == design.program.predict().cycles > wide
    assert main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                 str(model_files / "calib.npy"), "--postop-lanes", "3", "-o", str(tmp_path / "bad")]) == 2


def test_stop_after_prints_the_intermediate(model_files, tmp_path, capsys):
    code = main(["compile", str(model_files / "tiny.onnx"), "--calibrate", str(model_files / "calib.npy"),
                 "--stop-after", "quantize", "-o", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "QuantizedNetwork" in out and "conv1" in out
    assert (tmp_path / "network" / "network.json").is_file() and not (tmp_path / "map.json").exists()


def test_plan_and_generate_take_the_design_folder(compiled, tmp_path, capsys):
    assert main(["plan", str(compiled)]) == 0
    out = capsys.readouterr().out
    assert "on chip" in out and "whole run" in out
    assert main(["generate", str(compiled), "-o", str(tmp_path)]) == 0


@pytest.mark.cocotb
def test_run_on_the_rtl_is_exact_and_cycle_exact(compiled, model_files, capsys):
    code = main(["run", str(compiled), "--inputs", str(model_files / "x.npy"), "--labels",
                 str(model_files / "y.npy"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["exact"] and summary["cycles_measured"] == summary["cycles_model"]
    assert summary["predictions"] == summary["reference_predictions"] and len(summary["predictions"]) == 2
    for layer in summary["layers"]:
        assert layer["last_beat_measured"] == layer["last_beat_model"]


def test_bad_input_is_a_named_error(model_files, compiled, tmp_path, capsys):
    cases = [
        (["compile", str(model_files / "tiny.onnx"), "-o", str(tmp_path / "a")], "needs calibration data"),
        (["compile", str(tmp_path / "model.pt"), "-o", str(tmp_path / "b")], "hwgen reads ONNX models"),
        (["run", str(compiled), "--inputs", str(model_files / "calib.npy"), "--limit", "1", "--labels",
          str(model_files / "y.npy")], None),
        (["run", "lenet_ws4", "--inputs", str(model_files / "x.npy")], "layer design"),
        (["sim", str(compiled)], "hwgen run"),
        (["compile", str(model_files / "tiny.onnx"), "--array", "4by4", "--calibrate",
          str(model_files / "calib.npy"), "-o", str(tmp_path / "c")], "ROWSxCOLS"),
    ]
    (tmp_path / "model.pt").write_bytes(b"not a model")
    for argv, message in cases:
        if message is None:
            continue
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 12, 12), dtype=np.float32))
    assert main(["run", str(compiled), "--inputs", str(bad)]) == 2
    assert "do not match the network's input" in capsys.readouterr().err


def test_weight_bits_option_compiles_int2_fc_layers(model_files, compiled, tmp_path, capsys):
    """`--weight-bits linear=2`: the FC layers int2 (packed four to a byte on the matrix-vector engine), the
    design folder's spec built with that decoder and re-loaded as written; a convolution asked for int2 is a
    named error (exit 2)."""
    code = main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                 str(model_files / "calib.npy"), "--weight-bits", "linear=2", "--no-verilog", "-o", str(tmp_path)])
    assert code == 0
    design = load_design(tmp_path)
    assert design.spec.packed_weight_bits == (2,) and "packed_weight_bits=(2,)" in (tmp_path / "design.py").read_text()
    assert [layer.weight_bits for layer in design.network.layers] == [8, 8, 2, 2]
    fcs = [pl for pl in design.program.layers if pl.layer.weight_bits == 2]
    assert [pl.plan.tiles[0].schedule.packed_bits for pl in fcs] == [2, 2]
    int8 = load_design(compiled)
    for pl in fcs:
        (other,) = [q for q in int8.program.layers if q.name == pl.name]
        assert pl.plan.bytes_moved["weights"] < other.plan.bytes_moved["weights"]
    capsys.readouterr()
    assert main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                 str(model_files / "calib.npy"), "--weight-bits", "conv1=2", "-o", str(tmp_path / "bad")]) == 2
    assert "conv1: int2 weights run packed on the matrix-vector engine" in capsys.readouterr().err


@pytest.mark.cocotb
def test_sparsity_option_runs_pruned_fc_layers_on_the_sparse_engine(model_files, tmp_path, capsys):
    """`--sparsity fc1=0.9 --sparse fc1`: the layer pruned, the sized accelerator built with the sparse engine
    beside the matrix-vector engine, the design folder re-loaded as written (same choice of engines); on the RTL
    the layer's words are made from each input's nonzero activations: exact, cycles equal to the model. Bad
    options are named errors (exit 2)."""
    code = main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                 str(model_files / "calib.npy"), "--sparsity", "fc1=0.9", "--sparse", "fc1", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sparse engine" in out and "fc1       sparse" in out
    design = load_design(tmp_path)
    text = (tmp_path / "design.py").read_text()
    assert design.spec.sparse_mv and "sparse_mv=True" in text and "sparse=['fc1']" in text
    (fc1,) = [layer for layer in design.network.layers if layer.name == "fc1"]
    assert np.mean(fc1.weight == 0) >= 0.9
    assert [pl.engine_name() for pl in design.program.layers][-2:] == ["sparse", "matrix_vector"]
    for argv, message in [(["--sparsity", "1.5"], "must be a fraction from 0 to 1"),
                          (["--sparsity", "fc1"], "must be a fraction"),
                          (["--sparsity", "=0.5"], "NAME=FRACTION"),
                          (["--sparse", "fc_zz"], "names layers ['fc_zz']"),
                          (["--no-mv", "--sparsity", "0.5", "--sparse", "fc1"], "has none; build it with"),
                          (["--sparse", "conv1", "--sparsity", "0.5"], "conv1: only a batch-1 fully connected layer")]:
        assert main(["compile", str(model_files / "tiny.onnx"), "--array", "4x4", "--calibrate",
                     str(model_files / "calib.npy"), "--no-verilog", "-o", str(tmp_path / "bad"), *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    code = main(["run", str(tmp_path), "--inputs", str(model_files / "x.npy"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert summary["exact"] and summary["cycles_measured"] == summary["cycles_model"]
    assert [layer["engine"] for layer in summary["layers"]][-2:] == ["sparse", "matrix_vector"]
    for layer in summary["layers"]:
        assert layer["last_beat_measured"] == layer["last_beat_model"]
