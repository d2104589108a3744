"""Will this accelerator fit that FPGA? Estimates from the spec alone, before any synthesis.

* Multipliers: the weight-stationary array has one multiplier per PE (``spec.pes``), and the post-op chain one
  33x32 requantization multiply per lane (``spec.postop_lanes``, 4 MULT18X18D each; none with
  ``postops=False``). Each PE multiply maps to one hard
  multiplier (MULT18X18D on ECP5, SB_MAC16 on iCE40 UltraPlus) when both operands fit it. A design that needs
  more than the device has is rejected with the fix spelled out, unless the caller allows the LUT fallback
  (``lut_multipliers=True``): then the PEs take the hard multipliers the other multipliers leave, column by
  column, and the rest of the PEs multiply in logic (``pe_multiplier_cells``, `hwgen.hw.target`); only when
  the other multipliers alone do not fit is every multiplier built from LUTs (Yosys ``-nodsp``). A warning
  says which.
* Block RAM: every buffer is one memory of ``depth`` words of one array-wide vector. Its block count is the best
  tiling of the device's block shapes (e.g. DP16KD: 512x36, 1024x18, 2048x9, 4096x4, ...). SPRAM (iCE40) is only
  counted as a hint: Yosys maps only single-port memories to it. On ECP5 the buffers are DP16KD instances
  (`hwgen.hw.bram`, tiled with at most 18-bit blocks) and the PE multipliers MULT18X18D instances: the RTLIL
  count takes those cells as they are.
* Pins: the pin-light top needs about 2 * io_bits + 8 pins whatever the array size.
"""

import math
import re
from dataclasses import dataclass, field

from hwgen.hw.bram import ecp5_tiling
from hwgen.hw.pe_pair import pair_weight_shape
from hwgen.hw.target import FAMILIES, Target, pair_operand_bits
from hwgen.spec import default_postop_lanes

from .devices import get_device

__all__ = ["FitError", "FitEstimate", "estimate_fit", "memory_blocks", "lut_mult_cost", "design_resources", "postop_multipliers",
           "spec_resources", "dsp_tiles"]

def lut_mult_cost(a_bits, b_bits):
    """Rough LUT4 count (incl. the carry cells' two each) of an a x b multiplier built from logic, for the fallback
    estimate: `hwgen.hw.multiplier`'s three-stage form measured about 58 LUT4 and 42 carry cells for int8 x int8
    on ECP5 (an AND gate per partial-product bit, then pairs, pairs of pairs and the product in carry chains)."""
    return 2 * a_bits * b_bits + a_bits + b_bits


class FitError(ValueError):
    """The design cannot fit the device; the message says why and how to fix it."""


@dataclass
class FitEstimate:
    device: str
    source: str                      # "rtlil" (counted in the elaborated design) or "spec" (PEs + buffers)
    multipliers: int                 # multiply operations (one per PE, plus post-ops with "rtlil")
    dsps: int                        # hard multipliers it will use
    dsps_needed: int                 # hard multipliers all multiplies would take
    dsps_available: int
    lut_multipliers: int             # multipliers built from LUTs (fallback)
    brams: int                       # block RAMs (primary kind) for all buffers
    brams_available: int
    buffers: dict                    # name -> {"depth", "width", "bits", "blocks"}
    buffer_bits: int
    pins: int
    pins_available: int
    luts_estimate: int               # rough: PEs' adders and registers + LUT multipliers
    warnings: list = field(default_factory=list)
    problems: list = field(default_factory=list)   # why it does not fit (empty: it fits)
    pe_multiplier_cells: int | None = None         # PEs on hard multipliers when not all fit (None: all or none)

    @property
    def use_dsp(self):
        """Whether synthesis maps multipliers to the device's hard cells (all, or all but the logic PEs)."""
        return self.lut_multipliers == 0 or self.pe_multiplier_cells is not None

    def to_dict(self):
        return dict(self.__dict__)


def memory_blocks(depth, width, block):
    """Fewest blocks of kind ``block`` (a :class:`~fpga.devices.BlockRam`) holding a ``depth`` x ``width``
    memory, and the ``(depth, width)`` shape used."""
    best = None
    for shape_depth, shape_width in block.shapes:
        count = math.ceil(width / shape_width) * math.ceil(depth / shape_depth)
        if best is None or count < best[0]:
            best = (count, (shape_depth, shape_width))
    return best


_MEMORY_RE = re.compile(r"^\s*memory width (\d+) size (\d+) \\?(\S+)", re.M)
_INSTANCE_RE = re.compile(r"^\s*cell \\(MULT18X18D|DP16KD) ", re.M)
_CELL_RE = re.compile(r"^\s*cell \$(mul|mem_v2) \S+\n(.*?)^\s*end", re.M | re.S)
_PARAM_RE = re.compile(r"parameter \\(\w+) (\S+)")

# Memories this shallow become LUT RAM (ECP5 DPR16X4) or flip-flops, not block RAM; the iCE40 has no LUT RAM,
# so there everything but a tiny FIFO goes to block RAM (measured: a 32-deep line buffer does).
DISTRIBUTED_MAX_DEPTH = {"ecp5": 32, "ice40": 4}


def design_resources(rtlil_text):
    """Multipliers and memories of an elaborated design, read from its RTLIL (before any synthesis).

    Returns ``{"multipliers": [(a_bits, b_bits), ...], "memories": [(name, width, depth), ...],
    "bram_cells": n}``: instanced MULT18X18D count as 18x18 multipliers, instanced DP16KD as ``bram_cells``.
    """
    multipliers, memories = [], []
    cells = [match.group(1) for match in _INSTANCE_RE.finditer(rtlil_text)]
    multipliers += [(18, 18)] * cells.count("MULT18X18D")
    for match in _MEMORY_RE.finditer(rtlil_text):
        memories.append((match.group(3), int(match.group(1)), int(match.group(2))))
    for match in _CELL_RE.finditer(rtlil_text):
        params = dict(_PARAM_RE.findall(match.group(2)))
        if match.group(1) == "mul":
            multipliers.append((int(params["A_WIDTH"]), int(params["B_WIDTH"])))
        else:
            memories.append(("$mem_v2", int(params["WIDTH"]), int(params["SIZE"])))
    return {"multipliers": multipliers, "memories": memories, "bram_cells": cells.count("DP16KD")}


def _chunks(bits, device):
    """Pieces Yosys' mul2dsp cuts one operand into; a leftover under 2 bits is done in LUTs."""
    full, rest = divmod(bits, device.dsp_max_operand_bits)
    return full + (1 if rest >= 2 else 0)


def dsp_tiles(a_bits, b_bits, device):
    """Hard multipliers Yosys uses for one ``a_bits`` x ``b_bits`` multiply (0: too narrow, done in LUTs)."""
    if min(a_bits, b_bits) < 2:
        return 0
    return _chunks(a_bits, device) * _chunks(b_bits, device)


def postop_multipliers(spec):
    """The post-op chain's multipliers: one ``(acc + bias) x multiplier`` per lane (``postop_lanes``),
    ``max(acc_bits, 32) + 1`` by 32 bits (4 MULT18X18D each on ECP5); none when the spec is built without
    post-ops."""
    if not spec.postops:
        return []
    return [(max(spec.acc_type.bits, 32) + 1, 32)] * spec.postop_lanes


def pe_multipliers(spec, device):
    """The array's multipliers as ``[(a_bits, b_bits)]``: one per PE, or one per pair of PEs in neighbouring
    columns where two products fit the device's hard multiplier (`hwgen.hw.pe_pair`: int8 x int4 on a
    MULT18X18D; the odd last column alone)."""
    a, w = spec.act_type, spec.weight_type
    bits = pair_operand_bits(Target(device.family)) if device.family in FAMILIES and not spec.is_float else None
    packed = bits and pair_weight_shape(a.amaranth_shape(), w.amaranth_shape(), operand_bits=bits)
    if not packed:
        return [(a.bits, w.bits)] * spec.pes
    return ([(a.bits, packed.width)] * (spec.rows * (spec.cols // 2))
            + [(a.bits, w.bits)] * (spec.rows * (spec.cols % 2)))


def spec_resources(spec, device):
    """The resources the spec alone implies: one multiplier per PE (per pair of PEs where two products share
    one, `pe_multipliers`), the post-op chain's multipliers (unless ``postops=False``) and the three buffers
    (on ECP5 as the DP16KD cells `hwgen.hw.bram` instantiates)."""
    resources = {"multipliers": pe_multipliers(spec, device) + postop_multipliers(spec), "memories": [],
                 "bram_cells": 0}
    for name, (depth, width) in _buffers(spec).items():
        if device.family == "ecp5":
            banks, columns, _ = ecp5_tiling(max(depth, 2), width)
            resources["bram_cells"] += banks * columns
        else:
            resources["memories"].append((name, width, depth))
    return resources


def _buffers(spec):
    buffers = {
        "act": (spec.act_depth, spec.act_word_bits),
        "weight": (spec.weight_depth, spec.weight_word_bits),
        "acc": (spec.acc_depth, spec.acc_word_bits),
    }
    if spec.postop_fifo_depth:
        buffers["postop_fifo"] = (spec.postop_fifo_depth, spec.acc_word_bits)
    return buffers


def estimate_fit(spec, device, *, lut_multipliers=False, io_bits=8, check=True, resources=None):
    """Estimate what ``spec`` needs on ``device``; raise :class:`FitError` (if ``check``) when it cannot fit.

    ``resources``: the multipliers and memories of the elaborated design (:func:`design_resources` of its
    RTLIL); without it, only what the spec implies (:func:`spec_resources`: PE and post-op multipliers and the
    three buffers), which misses the other memories of the top (e.g. the post-op parameter memory).
    ``lut_multipliers``: allow building the multipliers from LUTs when there are too few DSPs (warning),
    instead of rejecting the design.
    """
    device = get_device(device) if isinstance(device, str) else device
    source = "spec" if resources is None else "rtlil"
    resources = resources or spec_resources(spec, device)
    a_bits, w_bits = spec.act_type.bits, spec.weight_type.bits
    muls = len(resources["multipliers"])
    dsp_need = sum(dsp_tiles(a, b, device) for a, b in resources["multipliers"])
    pe_muls = pe_multipliers(spec, device)
    pe_dsps = sum(dsp_tiles(a, b, device) for a, b in pe_muls)
    other_dsps = dsp_need - pe_dsps
    warnings, problems = [], []
    use_dsp = dsp_need <= device.dsps
    per_pe = pe_dsps / spec.pes          # 1 per PE for int8 on ECP5, 1/2 where two PEs share a multiplier
    pe_cells = None
    if not use_dsp and lut_multipliers and per_pe and other_dsps <= device.dsps:
        pe_cells = int((device.dsps - other_dsps) / per_pe)
    if not use_dsp:
        detail = f"{spec.rows}x{spec.cols} = {spec.pes} PE multipliers"
        if other_dsps > 0:
            detail += f" + {other_dsps} {device.dsp_cell} for the other {muls - len(pe_muls)} multipliers (post-ops)"
        reason = (f"{detail} need {dsp_need} {device.dsp_cell} but the {device.part} has {device.dsps} "
                  f"{device.dsp_cell}")
        if pe_cells is not None:
            warnings.append(f"{reason}: {pe_cells} PEs multiply on {device.dsp_cell}, the other "
                            f"{spec.pes - pe_cells} in logic (about {lut_mult_cost(a_bits, w_bits)} LUT4 each)")
        elif lut_multipliers:
            warnings.append(f"{reason}: ALL {muls} multipliers will be built from LUTs (about "
                            f"{lut_mult_cost(a_bits, w_bits)} LUT4 per PE) and Fmax will be lower")
        else:
            per_col = other_dsps / spec.cols if spec.cols else 0

            def fits(r, c):
                return r * c * per_pe + c * per_col <= device.dsps
            square = max((n for n in range(1, 65) if fits(n, n)), default=0)
            # the most PEs with rows >= cols and rows <= 2 * cols (per-column costs favour more rows)
            shapes = [(r * c, -(r - c), r, c) for c in range(1, 65) for r in range(c, min(2 * c, 64) + 1)
                      if fits(r, c)]
            best = max(shapes, default=None)
            if square:
                fix = f"use a smaller array: at most {square}x{square} (--rows {square} --cols {square})"
                if best and best[0] > square * square:
                    fix += f", or {best[2]}x{best[3]} (--rows {best[2]} --cols {best[3]})"
            elif best:
                fix = f"use at most {best[2]}x{best[3]} (--rows {best[2]} --cols {best[3]})"
            else:
                small = max((r for r in range(1, 65) if fits(r, 1)), default=0)
                fix = (f"use a single column (at most --rows {small} --cols 1)" if small else
                       "no array of this top fits the DSPs")
            if other_dsps > 0 and spec.postops:
                bare = max((n for n in range(1, 65) if n * n * per_pe <= device.dsps), default=0)
                if bare:
                    fix += (f", or build without the post-op chain (postops=False, --no-postops: "
                            f"up to {bare}x{bare})")
            problems.append(f"{reason}. Fix: {fix}, or build the PEs beyond the "
                            f"{device.dsp_cell} cells in logic with --lut-multipliers")

    primary = device.brams[0]
    buffers, blocks_total, bits_total = {}, 0, 0
    for name, width, depth in resources["memories"]:
        if depth <= DISTRIBUTED_MAX_DEPTH[device.family]:
            continue
        count, shape = memory_blocks(depth, width, primary)
        key = name if name not in buffers else f"{name}_{len(buffers)}"
        buffers[key] = {"depth": depth, "width": width, "bits": depth * width, "blocks": count,
                        "block_shape": list(shape)}
        blocks_total += count
        bits_total += depth * width
    if resources.get("bram_cells"):
        cells = resources["bram_cells"]
        buffers[f"{primary.cell} cells"] = {"depth": None, "width": None, "bits": cells * primary.bits,
                                            "blocks": cells, "block_shape": None}
        blocks_total += cells
        bits_total += sum(depth * width for _, (depth, width) in _buffers(spec).items())
    if blocks_total > primary.count:
        extra = [b for b in device.brams[1:]]
        hint = ""
        if extra:
            hint = (f" ({', '.join(f'{b.count} {b.cell}' for b in extra)} exist too, but Yosys maps only "
                    f"single-port memories to them and the buffers are dual-port)")
        problems.append(
            f"the memories need {blocks_total} {primary.cell} ({bits_total // 8} bytes: "
            + ", ".join(f"{n} {b['depth']}x{b['width']} -> {b['blocks']}" if b["depth"] else f"{n}: {b['blocks']}"
                        for n, b in buffers.items())
            + f") but the {device.part} has {primary.count}{hint}. Fix: shrink the buffers, e.g. "
            f"--act-buffer-bytes/--weight-buffer-bytes/--acc-buffer-bytes (a design's spec fields "
            f"act_buffer_bytes, weight_buffer_bytes, acc_buffer_bytes)")

    pins = 2 * io_bits + 8
    if pins > device.io:
        problems.append(f"the pin-light top needs {pins} pins, the {device.package} has {device.io}; "
                        f"use a smaller --io-bits")

    # Rough logic estimate (LUT4 + carry halves = nextpnr TRELLIS_COMB), calibrated on the measured hwgen top
    # (2x2, 4x4 and 8x8 on the ECP5-85F): ~1000 for control, ~50 per PE (operand and psum registers, weight
    # banks), ~100 per column (accumulator, output FIFO) and ~1600 per post-op lane (its 66-bit shifter, adders
    # and stage registers; ~1400 without its pooling, `postop_pooling=False`) plus ~40 per column for its group
    # multiplexer and output register. iCE40 logic cells hold a LUT and a flip-flop together and this top has
    # about as many flip-flops as LUTs: x2.2 there (1x1 with post-ops measured 5959 cells; 1x1 without pooling,
    # int20 accumulators and small buffers 4991).
    # A float datapath (bf16/fp16 x bf16/fp16 -> fp32) is another order: ~1100 per PE (the fp32 adder, the
    # product's normalisation) and ~1900 per fp32 post-op lane (bias adder, scale multiply rounding, max
    # pooling), from the 4x4 and 8x8 bf16 tops with full-width chains (27,180 and 87,700 LUT4 + carry halves in
    # Yosys); the 8x8 with its default two-lane chain measured 77,431 (estimate 76,320).
    lane_luts = 1900 if spec.is_float else 1600 if spec.postop_pooling else 1400
    pe_luts = 1100 if spec.is_float else 50
    postop_luts = (lane_luts * spec.postop_lanes + (40 * spec.cols if spec.postop_groups > 1 else 0)
                   if spec.postops else 0)
    luts = 1000 + pe_luts * spec.pes + 100 * spec.cols + postop_luts
    if device.family == "ice40":
        luts = int(luts * 2.2)
    lut_muls = 0 if use_dsp else muls if pe_cells is None else spec.pes - pe_cells
    luts += lut_muls * lut_mult_cost(a_bits, w_bits)
    if luts > 1.1 * device.luts:
        fix = "a smaller array"
        if postop_luts:
            fix = "build without the post-op chain (postops=False, --no-postops), or " + fix
            if spec.postop_pooling:
                fix = "build the post-op chain without its pooling (postop_pooling=False, --no-pooling), " + fix
            lean = default_postop_lanes(spec.cols, spec.dataflow)
            if spec.postop_lanes > lean:
                fix = (f"a narrower post-op chain (postop_lanes={lean}, --postop-lanes {lean}: a beat in "
                       f"{spec.cols // lean} cycles), " + fix)
        problems.append(f"about {luts} LUT4 needed (rough estimate), the {device.part} has {device.luts}. "
                        f"Fix: {fix}")
    elif luts > 0.8 * device.luts:
        warnings.append(f"about {luts} LUT4 needed (rough estimate) of {device.luts}: placement may fail")

    estimate = FitEstimate(
        device=device.key, source=source, multipliers=muls,
        dsps=dsp_need if use_dsp else 0 if pe_cells is None else other_dsps + math.ceil(pe_cells * per_pe),
        dsps_needed=dsp_need, dsps_available=device.dsps,
        lut_multipliers=lut_muls, brams=blocks_total, brams_available=primary.count, buffers=buffers,
        buffer_bits=bits_total, pins=pins, pins_available=device.io, luts_estimate=luts, warnings=warnings,
        problems=problems, pe_multiplier_cells=pe_cells)
    if problems and check:
        raise FitError(f"{spec.name} ({spec.rows}x{spec.cols} {spec.act_type}x{spec.weight_type}) does not fit "
                       f"the {device.key} ({device.part}):\n  - " + "\n  - ".join(problems))
    return estimate
