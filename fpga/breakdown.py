"""Per-module area: Yosys ``stat`` of the hierarchy, grouped into the accelerator's blocks.

The flow synthesizes a flattened netlist (``synth_ecp5`` flattens, so logic is optimised across module
boundaries); for the breakdown the same RTLIL is synthesized again with ``-noflatten`` and every module's own
cells (its submodules' excluded) are summed into a block named after its place in the hierarchy: the PEs, the
array's skew and de-skew, the accumulator, the post-op unit (its requantization multipliers, parameter memory
and line buffer apart), the loader and command registers (the top's own logic), the pin-light wrapper, ...
The hierarchical totals differ from the flattened ones by a few per cent (cross-boundary optimisation); the
table gives both.

    python -m hwgen.fpga.breakdown build/fpga/ws8x8-ecp5-85f/hier.stat.json --macs 64
"""

import argparse
import json
import re
import sys

from .reports import cell_summary

__all__ = ["BLOCKS", "block_of", "module_breakdown", "format_breakdown", "hierarchy_script"]

# (regular expression on the module path below the top, block name, what it is), first match wins.
BLOCKS = (
    (r"core\.array\.(pe_\d+_\d+|col_\d+\.pe_\d+|cols_\d+_\d+\.pair_\d+)(\..*)?$", "array PEs",
     "multiply-accumulate PEs (weights, operand/product/psum registers; two PEs per multiplier in a pair)"),
    (r"core\.array(\..*)?$", "array skew/de-skew", "input skew, output de-skew, enable copies"),
    (r"core\.postops\.requant_multiplier_\d+(\..*)?$", "post-op requant multipliers",
     "33x32 requantization products (MULT18X18D tiles, partial-sum adders)"),
    (r"core\.postops\.params_mem(\..*)?$", "post-op parameter memory", "bias/multiplier/shift per channel"),
    (r"core\.postops\.line_buffer(\..*)?$", "post-op line buffer", "2x2 pooling: the row above"),
    (r"core\.postops\.input_fifo(\..*)?$", "post-op input FIFO", "finished accumulators waiting for the post-op lanes"),
    (r"core\.postops(\..*)?$", "post-op chain", "bias add, shift, rounding, saturation, pooling, output register"),
    (r"core\.accumulator(\..*)?$", "accumulator", "read-modify-write of the column sums, forwarding"),
    (r"core\.engine(\..*)?$", "fold sequencer", "slot counters, implicit im2col addresses, weight loader"),
    (r"core\.slots(\..*)?$", "slot queue", "read-after-write interlock, enable lookahead"),
    (r"core\.act_buffer(\..*)?$", "activation buffer", "two banks (block RAM)"),
    (r"core\.weight_fifo(\..*)?$", "weight FIFO", "block RAM + register queue"),
    (r"core\.mv_weight_fifo(\..*)?$", "MV weight FIFO", "block RAM + register queue"),
    (r"core\.mv_engine(\..*)?$", "matrix-vector engine", "cols lanes of rows multipliers, adder trees"),
    (r"core\.feedback(\..*)?$", "feedback FIFO", "chaining: post-op output back to the loader"),
    (r"core\.out_fifo(\..*)?$", "output FIFO",
     "between the accumulator and the post-op chain (block RAM when the chain is narrower than the array)"),
    (r"core\.emit_queue(\..*)?$", "emit queue", "post-op settings of the emitting commands"),
    (r"core\..*", "other core blocks", ""),
    (r"core$", "loader and control", "command registers, loader, compute FSM, pipeline enable"),
    (r"$", "pin-light wrapper", "serial load shift register, read-out register (measurement harness)"),
)


def block_of(path):
    """The block a module path (below the top, e.g. ``core.array.pe_0_0``; ``""`` for the top) belongs to."""
    for pattern, block, _ in BLOCKS:
        if re.match(pattern, path):
            return block
    raise AssertionError(path)


def hierarchy_script(name, il_name, stat_name, *, synth="synth_ecp5", keep_copies=None):
    """A Yosys script that synthesizes ``il_name`` keeping the hierarchy and writes ``stat -json``."""
    from .flow import KEEP_COPIES
    return "\n".join([f"read_rtlil {il_name}", keep_copies or KEEP_COPIES, f"{synth} -noflatten -top {name}",
                      f"tee -q -o {stat_name} stat -json"]) + "\n"


def module_breakdown(stat, family="ecp5"):
    """``{block: {metric: count}}`` from a hierarchical ``stat -json`` (each module's own cells)."""
    if isinstance(stat, str):
        stat = json.loads(stat)
    modules = stat["modules"]
    names = [n.lstrip("\\") for n in modules]
    top = min(names, key=len)
    blocks = {}
    for raw, info in modules.items():
        name = raw.lstrip("\\")
        path = name[len(top) + 1:] if name != top else ""
        cells = {cell: n for cell, n in info.get("num_cells_by_type", {}).items()
                 if cell.lstrip("\\") not in names and not cell.startswith("$scopeinfo")}
        counts = cell_summary(cells, family)
        block = blocks.setdefault(block_of(path), {k: 0 for k in counts})
        for metric, n in counts.items():
            block[metric] += n
    return blocks


def format_breakdown(blocks, *, macs, metrics=("lut4", "carry", "ff", "dsp", "bram", "lutram")):
    """The table: per block its cells and LUT4 / FF per multiplier (``macs``), then the total."""
    order = [b for _, b, _ in BLOCKS]
    rows = sorted(blocks.items(), key=lambda kv: order.index(kv[0]))
    total = {m: sum(b.get(m, 0) for b in blocks.values()) for m in metrics}
    head = ("block", *metrics, "LUT4/MAC", "FF/MAC")
    lines = [head]
    for name, counts in rows + [("total", total)]:
        lines.append((name, *(str(counts.get(m, 0)) for m in metrics),
                      f"{counts.get('lut4', 0) / macs:.1f}", f"{counts.get('ff', 0) / macs:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for index, line in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if index == 0 or index == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stat", help="stat -json of a hierarchical synthesis")
    parser.add_argument("--macs", type=int, required=True, help="multipliers of the array (rows * cols)")
    parser.add_argument("--family", default="ecp5")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with open(args.stat) as f:
        blocks = module_breakdown(f.read(), args.family)
    print(json.dumps(blocks, indent=2) if args.json else format_breakdown(blocks, macs=args.macs))


if __name__ == "__main__":
    sys.exit(main())
