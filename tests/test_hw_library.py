"""Shared module definitions (`hwgen.hw.library`): one module per component kind and parameters, instantiated
by name; the memory RTLIL written without Amaranth is Amaranth's, character for character; the Verilog of an
accelerator has one PE module and ``rows * cols`` PE instances."""

import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Fragment, Module, Signal, signed

from hwgen.hw.bram import PipelinedMemory, generic_rtlil
from hwgen.hw.library import ModuleLibrary, place
from hwgen.hw.multiplier import PipelinedMultiplier
from hwgen.hw.target import Target, module_library
from hwgen.spec import AcceleratorSpec
from hwgen.verilog import elaborate, generate


@pytest.mark.parametrize("width, depth", [(1, 2), (2, 3), (5, 6), (3, 1024), (64, 2048), (1056, 32), (70, 33)])
def test_memory_rtlil_is_amaranths(width, depth):
    amaranth_text = rtlil.convert(PipelinedMemory(width=width, depth=depth), name="top.memory", emit_src=False)
    assert generic_rtlil("top.memory", width=width, depth=depth) == amaranth_text


def test_every_memory_of_an_accelerator_is_checked_above():
    """The shapes an accelerator's memories take also convert to Amaranth's text (a 3x2 array's buffers)."""
    spec = AcceleratorSpec(rows=3, cols=2, name="mem3x2", act_buffer_bytes=96, weight_buffer_bytes=64,
                           acc_buffer_bytes=128, max_out_channels=8, max_pool_width=8)
    text = elaborate(spec)
    shapes = {(int(w), int(d)) for w, d in re.findall(r"^module \\mem3x2\.memory_(\d+)x(\d+)$", text, re.M)}
    assert len(shapes) >= 4
    for width, depth in shapes:
        test_memory_rtlil_is_amaranths(width, depth)


def multiplier(width):
    return lambda: PipelinedMultiplier(a_shape=signed(width), b_shape=signed(width))


def test_a_kind_is_defined_once_per_key_and_named_below_the_prefix():
    library = ModuleLibrary(prefix="acc")
    platform = Target(None, library=library)
    calls = []

    def make(width):
        def build():
            calls.append(width)
            return multiplier(width)()
        return build

    first = library.define(make(8), kind="mul", key=8, platform=platform)
    again = library.define(make(8), kind="mul", key=8, platform=platform)
    other = library.define(make(4), kind="mul", key=4, platform=platform)
    assert first is again and calls == [8, 4]
    assert (first.name, other.name) == ("acc.mul", "acc.mul_2")
    assert library.module_names == ["acc.mul", "acc.mul_2"]
    assert set(first.ports) == {"a", "b", "en", "p", "clk", "rst"}
    text = library.rtlil()
    assert re.findall(r"^module (\S+)$", text, re.M) == ["\\acc.mul", "\\acc.mul_2"]
    assert "attribute \\top" not in text           # only the design's own top is the top


def test_instances_check_their_connections():
    library = ModuleLibrary(prefix="acc")
    platform = Target(None, library=library)
    a, b, p = Signal(signed(8)), Signal(signed(8)), Signal(signed(16))
    instance = library.instance(multiplier(8), kind="mul", key=8, platform=platform, a=a, b=b, p=p)
    assert instance.type == "acc.mul"
    with pytest.raises(NameError, match="no port named q"):
        library.instance(multiplier(8), kind="mul", key=8, platform=platform, q=a)
    with pytest.raises(ValueError, match="port a of the mul is 8 bits wide, not 4"):
        library.instance(multiplier(8), kind="mul", key=8, platform=platform, a=Signal(4))


def test_place_without_a_library_adds_an_ordinary_submodule():
    m = Module()
    a, p = Signal(signed(8)), Signal(signed(16))
    place(m, "mul", multiplier(8), kind="mul", key=8, platform=None, a=a, b=3, p=p)
    assert isinstance(m.submodules["mul"], PipelinedMultiplier)
    Fragment.get(m, None)
    assert module_library(None) is None and module_library(Target("ecp5")) is None


@pytest.mark.parametrize("family", [None, "ecp5"])
def test_accelerator_verilog_has_one_pe_module_and_rows_times_cols_pes(family):
    spec = AcceleratorSpec(rows=3, cols=5, name="shared3x5", act_buffer_bytes=96, weight_buffer_bytes=160,
                           acc_buffer_bytes=640, max_out_channels=10, max_pool_width=8)
    text = generate(spec, family=family)
    modules = re.findall(r"^module (\S+?)\s*\(", text, re.M)
    assert modules.count("\\shared3x5.pe") == 1 and modules.count("\\shared3x5.column") == 1
    column = text[text.index("module \\shared3x5.column "):]
    column = column[:column.index("endmodule")]
    array = text[text.index("module \\shared3x5.array "):]
    array = array[:array.index("endmodule")]
    assert re.findall(r"^  \\shared3x5\.pe  (pe_\d+) \($", column, re.M) == ["pe_0", "pe_1", "pe_2"]
    assert re.findall(r"^  \\shared3x5\.column  (col_\d+) \($", array, re.M) == [f"col_{j}" for j in range(5)]
    if family == "ecp5":          # the PE's multiplier cell is in the one PE module
        assert text.count("MULT18X18D ") == 1 + 4      # the PE's, and the shared requantization tiles'
