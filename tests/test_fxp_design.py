"""The fixed-point engine as a generator option: `FxpDesign` files (designs/fxp_train.py, designs/fxp_lstm.py)
through `hwgen generate`, `plan` and `sim`; bad workloads and options named as `HwgenError`s."""

import json

import pytest

from hwgen import cli
from hwgen.design import load_design
from hwgen.errors import DesignTypeError, HwgenError
from hwgen.fxp import FxpSpec
from hwgen.fxp.design import FxpDesign, LstmSequence, MlpTraining
from hwgen.fxp.perf import predict


def hwgen(capsys, *argv):
    try:
        status = cli.main([str(arg) for arg in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


TRAIN = FxpSpec(size=4, frac_bits=14, training=True, stochastic=True, vector_words=128, weight_words=32,
                max_batch=4, name="fxp_t4")
LSTM = FxpSpec(size=4, frac_bits=12, lstm=True, vector_words=64, weight_words=2, max_batch=2, cell_words=16,
               max_steps=4, name="fxp_l4")


@pytest.mark.parametrize("name", ["fxp_train", "fxp_lstm"])
def test_built_in_designs_plan(name, capsys):
    design = load_design(name)
    assert isinstance(design, FxpDesign)
    status, out, _ = hwgen(capsys, "plan", name)
    assert status == 0 and out.startswith(f"{name}: 8x8 fixed-point engine")
    status, out, _ = hwgen(capsys, "plan", name, "--json")
    doc = json.loads(out)
    assert status == 0 and doc["model_cycles"] == predict(design.program()).cycles()
    kinds = {row["kind"] for row in doc["commands"]}
    assert kinds >= ({"forward", "backward", "update", "read_weights"} if name == "fxp_train" else {"lstm"})


def test_generate_writes_the_engine_and_its_manifest(tmp_path, capsys):
    path = tmp_path / "small.py"
    path.write_text("from hwgen.fxp import FxpSpec\nfrom hwgen.fxp.design import FxpDesign, LstmSequence\n"
                    "design = FxpDesign(name='small', spec=FxpSpec(size=4, frac_bits=12, lstm=True, vector_words=64,\n"
                    "    weight_words=2, max_batch=2, cell_words=16, max_steps=4, name='fxp_l4'),\n"
                    "    workload=LstmSequence(input_size=3, hidden=2, batch=2, steps=3))\n")
    status, out, err = hwgen(capsys, "generate", path, "-o", tmp_path / "out")
    assert status == 0, err
    assert out.startswith("small: 4x4 fixed-point engine (Q3.12), LSTM, 3 steps of 2 hidden units")
    verilog = (tmp_path / "out" / "fxp_l4.v").read_text()
    assert "module fxp_l4(" in verilog
    manifest = json.loads((tmp_path / "out" / "fxp_l4.json").read_text())
    assert manifest["engine"] == "fxp" and manifest["spec"]["lstm"] is True
    assert manifest["ports"]["weights__payload"]["width"] == 4 * 4 * 16
    assert manifest["workload"]["type"] == "LstmSequence" and manifest["commands"][-2]["kind"] == "lstm"
    assert set(manifest["command_fields"]) >= {"kind", "lr_mult", "stochastic", "w_base"}
    assert "W is never transposed" in manifest["layouts"]["backward"]


@pytest.mark.parametrize("spec, workload, message", [
    (LSTM, MlpTraining(sizes=(6, 4)), "MlpTraining needs an engine built with training=True"),
    (TRAIN, LstmSequence(), "LstmSequence needs an engine built with lstm=True"),
    (TRAIN, MlpTraining(sizes=(6, 4), batch=8), "batch=8 exceeds the engine's max_batch=4"),
    (TRAIN, MlpTraining(sizes=(6, 4), rounding="up"), "rounding must be 'nearest' or 'stochastic'"),
    (TRAIN, MlpTraining(sizes=(6,)), "sizes must list at least two layer widths"),
    (TRAIN, MlpTraining(sizes=(6, 4), lr=2.0), "lr must be in (0, 1)"),
    (LSTM, LstmSequence(hidden=0), "hidden must be an integer >= 1"),
    (TRAIN, MlpTraining(sizes=(600, 400)), "do not fit weight_words=32"),
])
def test_bad_workloads_are_named(spec, workload, message):
    with pytest.raises(HwgenError) as caught:     # DesignError, or the engine's BufferOverflowError
        FxpDesign(name="bad", spec=spec, workload=workload)
    assert message in str(caught.value)


def test_wrong_types_are_named():
    with pytest.raises(DesignTypeError, match="spec must be a hwgen.fxp.FxpSpec"):
        FxpDesign(name="bad", spec=object(), workload=LstmSequence())
    with pytest.raises(DesignTypeError, match="workload must be an MlpTraining or an LstmSequence"):
        FxpDesign(name="bad", spec=LSTM, workload="lstm")


@pytest.mark.parametrize("argv, message", [
    (("plan", "fxp_lstm", "--dram-bw", "16"), "--dram-bw and --energy are for the array's layers"),
    (("sim", "fxp_lstm", "--layers", "a"), "it runs one program, not layers"),
    (("synth", "fxp_lstm"), "synth takes an array design"),
])
def test_array_only_options_are_refused(capsys, argv, message):
    status, _, err = hwgen(capsys, *argv)
    assert status == 2 and message in err, err


@pytest.mark.cocotb
def test_hwgen_sim_runs_the_lstm_design_exact_and_cycle_exact(capsys, tmp_path):
    status, out, err = hwgen(capsys, "sim", "fxp_lstm", "--json", "--cache-dir", tmp_path)
    doc = json.loads(out)
    assert status == 0, err
    assert doc["exact"] and doc["cycle_exact"] and doc["measured_cycles"] == doc["model_cycles"]
