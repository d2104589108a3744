"""The `hwgen` command line: never a raw traceback for a user's mistake, exit status 0 ok / 1 a check failed /
2 bad input (the same for plugged-in subcommands), `-o` handling, `--stall` and `--layers` checks, timeouts
shown, per-run folders and the cache location, help texts."""

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen import cli
from hwgen.design import builtin_designs, load_design
from hwgen.errors import DesignError, DesignFileError, HwgenError, ToolFailure

TINY = '''from hwgen import AcceleratorSpec, Design, linear

design = Design(name="tiny", spec=AcceleratorSpec(rows=2, cols=2, act_buffer_bytes=64, weight_buffer_bytes=16,
                                                 acc_buffer_bytes=64, name="tiny_accel"),
                layers=(linear(name="fc", in_features=6, out_features=3),))
'''


def hwgen(capsys, *argv):
    """Run the command in-process: (exit status, stdout, stderr)."""
    try:
        status = cli.main([str(arg) for arg in argv])
    except SystemExit as exit_:          # argparse's usage errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def design_file(tmp_path, text, name="mine.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


# Design files ---------------------------------------------------------------------------------------------------

def test_a_design_file_with_a_syntax_error_names_its_line(tmp_path, capsys):
    path = design_file(tmp_path, "from hwgen import *\n\ndesign = Design(name='x',\n")
    status, out, err = hwgen(capsys, "plan", path)
    assert status == 2 and out == ""
    assert err.startswith(f"hwgen: error: {path}, line 3: the design file is not valid Python ('(' was never "
                          f"closed): design = Design(name='x',")
    assert "Traceback" not in err


def test_a_design_file_that_raises_shows_the_users_line_not_hwgens(tmp_path, capsys):
    path = design_file(tmp_path, "import hwgen\n\n\ndef helper():\n    return {}['missing']\n\n\nhelper()\n")
    status, out, err = hwgen(capsys, "plan", path)
    assert status == 2
    assert err == (f"hwgen: error: {path}, line 5: the design file raised KeyError: 'missing'\n"
                   f"    return {{}}['missing']\n")


def test_a_design_file_that_calls_hwgen_wrongly_names_its_line(tmp_path, capsys):
    path = design_file(tmp_path, "from hwgen import AcceleratorSpec\n\nspec = AcceleratorSpec(rows=4)\n")
    status, _, err = hwgen(capsys, "plan", path)
    assert status == 2
    assert err.startswith(f"hwgen: error: {path}, line 3: the design file raised TypeError: ")
    assert "missing 1 required positional argument: 'cols'" in err and "Traceback" not in err


def test_an_hwgen_error_in_a_design_file_keeps_its_message_and_names_the_line(tmp_path, capsys):
    path = design_file(tmp_path, TINY.replace("in_features=6", "in_features=6 * 10 ** 6"))
    status, _, err = hwgen(capsys, "plan", path)
    assert status == 2
    assert err.startswith("hwgen: error: fc: the reduction over K = in_features = 6000000 products")
    assert err.endswith(f"(while loading the design file {path}, line 3)\n")


def test_a_file_without_a_design(tmp_path, capsys):
    path = design_file(tmp_path, "x = 1\n")
    status, _, err = hwgen(capsys, "plan", path)
    assert (status, err) == (2, f"hwgen: error: {path} must define `design = hwgen.Design(...)` (or a "
                                f"hwgen.compiler NetworkDesign, or a hwgen.fxp FxpDesign); its `design` is nothing\n")
    with pytest.raises(DesignFileError):
        load_design(path)


@pytest.mark.parametrize("name, message", [
    ("nosuch", "no design 'nosuch': expected the path of a file defining `design`, or one of the built-in designs "),
    ("model.onnx", "a design file is a Python file ending in .py"),
    ("", "expected a design name (one of "),
])
def test_an_unknown_design_lists_the_built_in_ones(name, message, capsys):
    status, _, err = hwgen(capsys, "plan", name)
    assert status == 2 and message in err and "lenet_ws4" in err


def test_built_in_designs_load_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert builtin_designs() == ["bf16_ws4", "conv_ws8", "fc_mv", "fxp_lstm", "fxp_train", "lenet_os4", "lenet_ws4",
                                 "mlp_mv"]
    assert load_design("lenet_ws4").name == "lenet_ws4"


# generate -o -----------------------------------------------------------------------------------------------------

def test_generate_reports_overwritten_files(tmp_path, capsys):
    path = design_file(tmp_path, TINY)
    out = tmp_path / "out"
    status, first, _ = hwgen(capsys, "generate", path, "-o", out)
    assert status == 0 and "overwrote" not in first
    assert first.splitlines()[1].startswith(f"  wrote {out}/tiny_accel.v and {out}/tiny_accel.json in ")
    status, second, _ = hwgen(capsys, "generate", path, "-o", out)
    assert status == 0 and second.splitlines()[2] == f"  overwrote {out}/tiny_accel.v and {out}/tiny_accel.json"


@pytest.mark.parametrize("target, message", [
    ("", "-o/--output is empty; give the directory to write into, e.g. -o build"),
    ("{tmp}/afile", "-o {tmp}/afile: {tmp}/afile exists and is not a directory; give a directory"),
    ("{tmp}/afile/below", "-o {tmp}/afile/below: cannot create the directory {tmp}/afile/below (Not a directory)"),
    ("/proc/hwgen-out", "-o /proc/hwgen-out: cannot create the directory /proc/hwgen-out (No such file or directory)"),
])
def test_generate_rejects_an_output_it_cannot_write(tmp_path, capsys, target, message):
    (tmp_path / "afile").write_text("")
    path = design_file(tmp_path, TINY)
    status, out, err = hwgen(capsys, "generate", path, "-o", target.format(tmp=tmp_path))
    assert (status, out, err) == (2, "", f"hwgen: error: {message.format(tmp=tmp_path)}\n")


def test_generate_into_a_read_only_directory(tmp_path, capsys):
    import os
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    status, _, err = hwgen(capsys, "generate", design_file(tmp_path, TINY), "-o", locked)
    assert status == 2 and "is not writable" in err


# sim arguments ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stall", ["2", "1", "-1", "nan", "inf", "-0.1", "often"])
def test_stall_must_be_a_probability_below_one(stall, capsys):
    status, out, err = hwgen(capsys, "sim", "lenet_ws4", "--stall", stall)
    assert status == 2 and out == ""
    assert err.endswith(f"hwgen sim: error: argument --stall: must be a probability p with 0 <= p < 1 (e.g. 0.3), "
                        f"not '{stall}'\n")


@pytest.mark.parametrize("layers, message", [
    ("nosuch", "design 'lenet_ws4' has no layer 'nosuch'; its layers are conv1, conv2, fc1, fc2, fc3"),
    ("fc1,,fc2", "--layers 'fc1,,fc2': a layer name is empty; give comma-separated names, e.g. --layers conv1,fc1"),
    ("", "--layers '': a layer name is empty"),
])
def test_layers_must_name_layers(layers, message, capsys):
    status, out, err = hwgen(capsys, "sim", "lenet_ws4", "--layers", layers)
    assert status == 2 and message in err and "Traceback" not in err


class FakeResult:
    def __init__(self, layers, run_dir=None):
        self.layers, self.run_dir, self.build_seconds, self.wall_seconds = layers, run_dir, 0.5, 1.5
        self.waves = None       # no --waves


def fake_layer(name, **changes):
    layer = {"layer": name, "exact": True, "hung": False, "timeout": None, "report": "", "measured_cycles": 290,
             "model_cycles": 290, "macs": 840, "utilization": 0.18, "wall_seconds": 0.3}
    layer.update(changes)
    return layer


def test_sim_passes_the_cache_location_and_reports_a_timeout(capsys, monkeypatch, tmp_path):
    import hwgen.sim.runner as runner
    calls = []
    timeout = ("timeout: stopped at cycle 6800 after the first cfg handshake (budget 6800 cycles: 20 x the model's "
               "290 for stall 0.0); 3 of 10 output beats received, the last came at cycle 45")

    def run_layers(spec, plans, **kwargs):
        calls.append(kwargs)
        return FakeResult([fake_layer(plans[0].problem.name, exact=False, hung=True, timeout=timeout, report=timeout,
                                      measured_cycles=None, utilization=None)], run_dir=str(tmp_path / "run"))
    monkeypatch.setattr(runner, "run_layers", run_layers)
    status, out, _ = hwgen(capsys, "sim", "lenet_ws4", "--layers", "fc3,fc2", "--cache-dir", tmp_path / "cache")
    assert status == 1
    assert calls[0]["build_root"] == str(tmp_path / "cache") and calls[0]["stall"] == 0.0
    lines = out.splitlines()
    assert re.match(r"fc3 +TIMEOUT +- +290 +840 +- +0$", lines[2])
    assert lines[3] == "    " + timeout
    assert lines[4] == "not run (after the timeout): fc2"
    assert lines[-1] == f"FAILED: see the rows above; the run's log is in {tmp_path / 'run'}"


def test_sim_exit_status_follows_the_checks(capsys, monkeypatch):
    import hwgen.sim.runner as runner
    results = iter([[fake_layer("fc3")], [fake_layer("fc3", measured_cycles=291)], [fake_layer("fc3", exact=False)]])
    monkeypatch.setattr(runner, "run_layers", lambda spec, plans, **kwargs: FakeResult(next(results)))
    assert hwgen(capsys, "sim", "lenet_ws4", "--layers", "fc3")[0] == 0
    assert hwgen(capsys, "sim", "lenet_ws4", "--layers", "fc3")[0] == 1      # cycles differ from the model
    status, out, _ = hwgen(capsys, "sim", "lenet_ws4", "--layers", "fc3", "--json")
    assert status == 1 and '"ok": false' in out


# The shared exit-status contract ------------------------------------------------------------------------------------

def test_guarded_maps_errors_to_the_documented_statuses(capsys):
    def raising(error):
        def func(args):
            raise error
        return func
    assert cli.guarded(lambda args: None, None) == 0
    assert cli.guarded(lambda args: 3, None) == 3
    assert cli.guarded(raising(DesignError("d: bad")), None, prog="hwgen compile") == 2
    assert capsys.readouterr().err == "hwgen compile: error: d: bad\n"
    assert cli.guarded(raising(ToolFailure("iverilog crashed")), None) == 1
    assert capsys.readouterr().err == "hwgen: error: iverilog crashed\n"
    assert cli.guarded(raising(KeyboardInterrupt()), None) == 130
    assert cli.guarded(raising(ZeroDivisionError("oops")), None) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: oops" in err
    assert err.rstrip().endswith("this is a bug in hwgen, not in your input; please report it with the command line "
                                 "and the traceback above")


def test_a_plugged_in_subcommand_gets_the_contract(capsys, monkeypatch):
    """Subcommands plug in with add_<name>_parser(subparsers); main runs them through `guarded`."""
    def add_boom_parser(subparsers):
        p = subparsers.add_parser("boom", help="raise a user error")
        p.set_defaults(func=lambda args: (_ for _ in ()).throw(DesignError("boom: the model names no layer")))
    build = cli.build_parser

    def build_parser():
        parser = build()
        add_boom_parser(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)))
        return parser
    monkeypatch.setattr(cli, "build_parser", build_parser)
    assert hwgen(capsys, "boom") == (2, "", "hwgen: error: boom: the model names no layer\n")


def test_synth_is_plugged_in_and_its_bad_input_exits_2(capsys):
    status, _, err = hwgen(capsys, "synth", "nosuch", "--estimate")
    assert status == 2 and "no design 'nosuch'" in err


def test_the_command_runs_as_a_module_with_the_exit_statuses(tmp_path):
    run = subprocess.run([sys.executable, "-m", "hwgen", "plan", "nosuch"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and run.stdout == "" and run.stderr.startswith("hwgen: error: no design 'nosuch'")


# Help ------------------------------------------------------------------------------------------------------------

def subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


@pytest.mark.parametrize("command", ["generate", "plan", "sim"])
def test_every_option_of_generate_plan_and_sim_has_help(command):
    _, commands = subparsers()
    for action in commands[command]._actions:
        assert action.help and action.help.strip(), (command, action.dest)


def test_the_help_documents_the_exit_statuses():
    parser, _ = subparsers()
    assert "exit status: 0 ok, 1 a check or a tool failed, 2 bad input (design, option, path), 70 a bug in hwgen" \
        in parser.format_help().replace("\n", " ").replace("  ", " ")
    assert cli.__doc__.count("\n    0   done") == 1


def test_synth_help_examples_name_real_designs():
    _, commands = subparsers()
    examples = [line.strip() for line in commands["synth"].epilog.splitlines() if line.strip().startswith("hwgen synth")]
    assert len(examples) >= 5
    named = 0
    for example in examples:
        words = shlex.split(example.split("#")[0].replace("\\", ""))[2:]
        design = words[0] if words and not words[0].startswith("-") else None
        if design is None or design == "my_design.py":
            continue
        assert design in builtin_designs(), example
        named += 1
    assert named >= 3


def test_readme_states_the_trust_model_and_the_exit_statuses():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "A design file is Python and runs with your rights" in readme
    assert "0 ok, 1 a check failed, 2 bad input" in readme
