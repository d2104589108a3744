"""Verilog back end: one `AcceleratorSpec` -> one Verilog module, byte-identical for identical input."""

from __future__ import annotations

import contextlib
import gc
import importlib.resources
import json
import re
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from amaranth.back import rtlil
from amaranth.back import verilog as amaranth_verilog

from .hw.config import config_layout
from .hw.library import ModuleLibrary
from .hw.target import Target
from .postops import params_port_bits
from .hw.top import AcceleratorTop
from .spec import AcceleratorSpec

if TYPE_CHECKING:
    from .design import Design

__all__ = ["generate", "elaborate", "rtlil_to_verilog", "port_map", "write_design", "CELL_MODELS"]

# Simulation models of the device cells that `generate(spec, family=...)` instantiates.
CELL_MODELS = {"ecp5": Path(str(importlib.resources.files("hwgen.sim") / "models" / "ecp5_cells.v"))}


def generate(spec: AcceleratorSpec, *, family: str | None = None, pe_multiplier_cells: int | None = None) -> str:
    """Elaborate the accelerator and return its Verilog text (top module named ``spec.name``).

    ``family="ecp5"``: the form an ECP5 build gets, with DP16KD and MULT18X18D instances (simulate it with
    `CELL_MODELS` ``[family]``); default: the generic form, plain Verilog for any tool.
    ``pe_multiplier_cells=N``: only N of the array's PEs multiply on the device's multiplier (the generic
    form's ``*``), the others in logic, as an FPGA build with more PEs than hard multipliers gets them.

    The PEs are ``rows * cols`` instances of one module, ``<name>.pe`` (see `hwgen.hw.library`); every other
    block is a module of its own, named after its place in the hierarchy (``<name>.array``, ...).
    """
    return rtlil_to_verilog(elaborate(spec, family=family, pe_multiplier_cells=pe_multiplier_cells))


def elaborate(spec: AcceleratorSpec, *, family: str | None = None, pe_multiplier_cells: int | None = None) -> str:
    """The accelerator as RTLIL text: the shared modules (`hwgen.hw.library`), then the hierarchy below the
    top module ``spec.name``. `generate` is ``rtlil_to_verilog(elaborate(spec))``."""
    library = ModuleLibrary(prefix=spec.name)
    platform = Target(family, library=library, pe_multiplier_cells=pe_multiplier_cells)
    with _without_cyclic_gc():
        text = rtlil.convert(AcceleratorTop(spec), name=spec.name, platform=platform, emit_src=False)
    shared = library.rtlil()
    clash = set(_MODULE.findall(shared)) & set(_MODULE.findall(text))
    if clash:
        raise RuntimeError(f"shared module names clash with the hierarchy: {', '.join(sorted(clash))}")
    return shared + text


def rtlil_to_verilog(rtlil_text: str) -> str:
    """Verilog from RTLIL, with the Yosys that Amaranth's own Verilog back end runs (the same script:
    ``proc``, ``memory_collect``, ``write_verilog``)."""
    # amaranth.back.verilog.convert does the elaboration too; its Yosys step alone is this function, private
    # in Amaranth 0.5 (pinned below 0.6 in pyproject.toml).
    return amaranth_verilog._convert_rtlil_text(rtlil_text)


@contextlib.contextmanager
def _without_cyclic_gc():
    """Elaboration allocates millions of small objects that live until it ends: Python's cyclic collector
    would walk them again and again (a third of the elaboration time, measured). It collects them afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_MODULE = re.compile(r"^module (\\\S+)$", re.MULTILINE)      # RTLIL: module \ws8x8.pe


def generate_system(spec: AcceleratorSpec, **system_kwargs) -> str:
    """The accelerator as a system on a memory bus (`hwgen.hw.system`: AXI4 master to DRAM, AXI4-Lite
    registers, ``irq``) as Verilog, top module ``<spec.name>_system`` with flat AXI port names
    (``m_axi_arvalid``, ``s_axil_awaddr``, ...). ``system_kwargs``: `hwgen.hw.system.SystemTop`'s bus and
    buffering parameters (``data_width``, ``addr_width``, ``id_width``, ``fifo_depth``, ``max_outstanding``)."""
    from .hw.system import SystemPorts
    name = f"{spec.name}_system"
    library = ModuleLibrary(prefix=name)
    with _without_cyclic_gc():
        text = rtlil.convert(SystemPorts(spec, **system_kwargs), name=name, platform=Target(None, library=library),
                             emit_src=False)
    return rtlil_to_verilog(library.rtlil() + text)


def system_manifest(spec: AcceleratorSpec) -> dict:
    """What a host driver needs of the system top: the register map, error causes, descriptor format."""
    from .hw.system import ERROR_CAUSES, REGISTERS, SYSTEM_ID
    from .system.image import CHANNELS, DESC_BYTES, END, MAGIC
    return {"top": f"{spec.name}_system", "id": SYSTEM_ID,
            "registers": {name: f"{addr:#04x}" for name, addr in REGISTERS.items()},
            "error_causes": {str(code): text for code, text in ERROR_CAUSES.items()},
            "descriptor": {"bytes": DESC_BYTES, "magic": f"{MAGIC:#04x}",
                           "channels": {**CHANNELS, "end": END},
                           "words": ["channel[3:0] narrow[4] magic[15:8] wait[31:16]", "addr", "bytes", "macs"]}}


def port_map(spec: AcceleratorSpec) -> dict[str, tuple[str, int, str]]:
    """The top-level ports as the Verilog sees them: name -> (direction, width, meaning)."""
    cfg_bits = config_layout(spec).size
    ports = {"clk": ("input", 1, "clock, rising edge"), "rst": ("input", 1, "synchronous reset, active high"),
             "busy": ("output", 1, "a layer is loading or computing"),
             "emitted": ("output", 1, "a beat leaves the post-op chain (to out, or on chip to the next layer)")}
    streams = (("cfg", "input", cfg_bits, "layer configuration word (fields: manifest 'config_fields')"),
               ("weights", "input", spec.weight_word_bits, f"{spec.cols} x {spec.weight_type} weights, lane 0 in LSBs"),
               ("acts", "input", spec.act_word_bits, f"{spec.rows} x {spec.act_type} activations, lane 0 in LSBs"),
               ("params", "input", params_port_bits(spec),
                f"{spec.cols} x (bias int32, multiplier int32, shift uint6) post-op parameters, lane 0 in LSBs"
                if spec.postops else "unused: built without post-ops (never ready)"),
               ("out", "output", spec.acc_word_bits, f"{spec.cols} x {spec.acc_type} results, lane 0 in LSBs"))
    if spec.mv_engine:
        streams += (("mv_weights", "input", spec.mv_weight_word_bits,
                     f"matrix-vector engine: {spec.cols} lanes x {spec.rows} x {spec.weight_type} weights, lane-major"),)
    if spec.sparse_mv:
        streams += (("sparse", "input", spec.sparse_word_bits,
                     f"sparse engine words: {spec.act_type} activation, last flag, {spec.rows * spec.cols} x "
                     f"(valid, slot, {spec.weight_type} weight) (hwgen.sparse)"),)
    for name, direction, width, meaning in streams:
        back = "output" if direction == "input" else "input"
        ports[f"{name}__payload"] = (direction, width, meaning)
        ports[f"{name}__valid"] = (direction, 1, f"{name} stream valid")
        ports[f"{name}__ready"] = (back, 1, f"{name} stream ready")
    return ports


def write_design(design: Design, out_dir: str | PathLike, *, system: bool = False) -> tuple[Path, Path]:
    """Write ``<name>.v`` and ``<name>.json`` (the manifest: spec, ports, buffers, layer schedules). With
    ``system``: the system top (`generate_system`) as ``<name>_system.v`` and ``<name>_system.json`` (the same
    manifest plus ``system``: registers, error causes, descriptor format)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = design.spec
    stem = f"{spec.name}_system" if system else spec.name
    verilog_path = out_dir / f"{stem}.v"
    verilog_path.write_text(generate_system(spec) if system else generate(spec))
    layout = config_layout(spec)
    manifest = {
        "design": design.name,
        "spec": spec.to_dict(),
        "ports": {name: {"direction": d, "width": w, "meaning": m} for name, (d, w, m) in port_map(spec).items()},
        "config_fields": {name: {"offset": f.offset, "width": f.width} for name, f in layout},
        "buffers": {
            "activations": {"words": spec.act_depth, "word_bits": spec.act_word_bits, "bytes": spec.act_buffer_bytes},
            "weights": {"words": spec.weight_depth, "word_bits": spec.weight_word_bits,
                        "bytes": spec.weight_buffer_bytes},
            "accumulators": {"words": spec.acc_depth, "word_bits": spec.acc_word_bits, "bytes": spec.acc_buffer_bytes},
        },
        "layers": [plan.manifest() for plan in design.plans()],
    }
    if system:
        manifest["system"] = system_manifest(spec)
    manifest_path = out_dir / f"{stem}.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return verilog_path, manifest_path
