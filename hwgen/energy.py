"""Energy per layer and per network, from the accesses the schedule actually performs.

Counts (`access_counts`) come from the commands, the way the hardware executes them - not from the layer's
MACs alone:

- **MACs performed**: every PE that multiplies in an issued slot, padding lanes and channels included (the
  multipliers of an idle lane still switch): weight-stationary ``valid slots x rows x cols``, output-stationary
  ``reduction slots x rows x cols``, matrix-vector ``slots x rows x cols``;
- **activation buffer**: one write per word loaded (from ``acts`` or the on-chip feedback), one read per slot
  that reads a real, unpadded position (`hwgen.hw.top` enables the block RAM's read only then);
- **weight FIFO**: every weight word written and read once; **accumulators** (weight-stationary): a read per
  valid slot and a write per valid slot of every k-fold but a reduction's last (which emits instead); **post-op parameters**: a write per parameter word, a read per
  beat entering the chain and lane group (``postop_groups`` reads of ``postop_lanes`` channels' parameters); the **post-op arithmetic**: per lane of every beat, a 32-bit add (bias) and a 32-bit
  multiply (requantization) when the layer has them; the **feedback FIFO**: a write and a read per chained beat;
- **DRAM**: the bytes the layer moves off chip (`hwgen.roofline.layer_traffic`).

Energies per operation come from a table (`EnergyTable`, default `hwgen/data/energy_45nm.json`: Horowitz, ISSCC
2014, 45 nm), a file a user can replace. An SRAM access costs the table's 64-bit read energy of a memory of its
size (interpolated log-linearly between the sizes the table gives, clamped at the ends), scaled by the word
width; a write costs ``sram_write_factor`` reads. Energy is split by level: DRAM, SRAM (per buffer), compute
(MACs, post-ops). A floating-point accelerator's MACs cost the table's fp multiply of its operand width and
fp add of its accumulator's (fp16 x fp16 + fp32: 1.1 + 0.9 pJ), its post-op lanes fp32 adds and multiplies.
"""

import json
from dataclasses import dataclass, field
from math import ceil, log
from pathlib import Path

import numpy as np

from .roofline import layer_traffic

__all__ = ["EnergyTable", "access_counts", "layer_energy", "network_energy", "DEFAULT_TABLE"]

DEFAULT_TABLE = Path(__file__).resolve().parent / "data" / "energy_45nm.json"


@dataclass(frozen=True)
class EnergyTable:
    int_add: dict
    int_mult: dict
    sram_read_64b: dict
    dram_64b: float
    sram_write_factor: float = 1.0
    fp_add: dict = field(default_factory=dict)
    fp_mult: dict = field(default_factory=dict)
    source: str = ""

    @classmethod
    def load(cls, path=DEFAULT_TABLE):
        doc = json.loads(Path(path).read_text())
        conv = lambda d: {int(k): float(v) for k, v in d.items()}   # noqa: E731
        return cls(int_add=conv(doc["int_add"]), int_mult=conv(doc["int_mult"]),
                   sram_read_64b=conv(doc["sram_read_64b"]), dram_64b=float(doc["dram_64b"]),
                   sram_write_factor=float(doc.get("sram_write_factor", 1.0)),
                   fp_add=conv(doc.get("fp_add", {})), fp_mult=conv(doc.get("fp_mult", {})),
                   source=doc.get("source", str(path)))

    @staticmethod
    def _by_width(table, bits, what):
        widths = sorted(table)
        for width in widths:
            if bits <= width:
                return table[width]
        raise ValueError(f"the energy table has no {what} of {bits} bits (widths {widths})")

    def mult(self, bits):
        return self._by_width(self.int_mult, bits, "integer multiply")

    def add(self, bits):
        return self._by_width(self.int_add, bits, "integer add")

    def fmult(self, bits):
        return self._by_width(self.fp_mult, bits, "floating-point multiply")

    def fadd(self, bits):
        return self._by_width(self.fp_add, bits, "floating-point add")

    def sram(self, size_bytes, word_bits):
        """One read of a ``word_bits`` word from an SRAM of ``size_bytes``."""
        sizes = sorted(self.sram_read_64b)
        size = min(max(size_bytes, sizes[0]), sizes[-1])
        for lo, hi in zip(sizes, sizes[1:]):
            if lo <= size <= hi:
                t = (log(size) - log(lo)) / (log(hi) - log(lo))
                per64 = self.sram_read_64b[lo] + t * (self.sram_read_64b[hi] - self.sram_read_64b[lo])
                break
        else:
            per64 = self.sram_read_64b[sizes[0]]
        return per64 * word_bits / 64


def _ws_reads(s):
    """Weight-stationary: slots that read a real position, in closed form: per kernel offset the output rows and
    columns whose input position is inside, times every channel group and m-fold."""
    p = s.problem
    e = np.arange(p.E) * p.stride_h - p.pad_h
    f = np.arange(p.F) * p.stride_w - p.pad_w
    rows = sum(int(np.count_nonzero((e + r >= 0) & (e + r < p.H))) for r in range(p.R))
    cols = sum(int(np.count_nonzero((f + c >= 0) & (f + c < p.W))) for c in range(p.S))
    return s.m_folds * s.c_groups * rows * cols


def access_counts(plan, *, source="stream", dest="out"):
    """The accesses of a layer's commands (see the module docstring), as a dict of counts."""
    spec = plan.spec
    pes = spec.rows * spec.cols
    counts = dict(macs_performed=0, act_writes=0, act_reads=0, weight_words=0, acc_reads=0, acc_writes=0,
                  param_writes=0, param_reads=0, postop_beats=0, feedback_beats=0)
    for s in plan.commands:
        if s.sparse_words is not None:
            # The sparse engine: only valid entries multiply, each a read and a write of its accumulator; the
            # activations ride in the words (no buffer reads).
            counts["macs_performed"] += s.sparse_macs
            counts["acc_reads"] += s.sparse_macs
            counts["acc_writes"] += s.sparse_macs
        elif s.dataflow == "matrix_vector":
            counts["macs_performed"] += s.mv_slots * pes
            counts["act_reads"] += s.mv_slots
        elif s.dataflow == "output_stationary":
            counts["macs_performed"] += s.m_folds * s.pixel_tiles * s.reduction * pes
            counts["act_reads"] += s.m_folds * s.pixel_tiles * s.reduction
        else:
            valid = s.folds * s.pixels
            counts["macs_performed"] += valid * pes
            counts["act_reads"] += _ws_reads(s)
            # Every valid slot reads its accumulator word; all but the last k-fold's write it back (that one
            # emits the sum instead).
            counts["acc_reads"] += valid
            counts["acc_writes"] += valid - (s.m_folds * s.pixels if s.acc_emit else 0)
        if s.load_acts:
            counts["act_writes"] += s.act_words
        counts["weight_words"] += s.weight_words
        counts["param_writes"] += s.param_words
        if s.acc_emit:
            beats = s.m_folds * s.pixels
            counts["postop_beats"] += beats
            counts["param_reads"] += beats * spec.postop_groups if s.postops.needs_params else 0
        if s.out_dest == "feedback":
            counts["feedback_beats"] += s.out_beats
    return counts


def layer_energy(plan, table=None, *, source="stream", dest="out"):
    """Energy of a layer in pJ, split by where it goes, with the counts it comes from."""
    table = table or EnergyTable.load()
    spec = plan.spec
    c = access_counts(plan, source=source, dest=dest)
    traffic = layer_traffic(plan, source=source, dest=dest)
    operand = max(spec.act_type.bits, spec.weight_type.bits)
    if spec.is_float:     # bf16/fp16 products, fp32 accumulation (the float datapath)
        mac = table.fmult(operand) + table.fadd(spec.acc_type.bits)
    else:
        mac = table.mult(operand) + table.add(spec.acc_type.bits)
    act_size, acc_size = spec.act_buffer_bytes, spec.acc_buffer_bytes
    acc_word_bits = spec.acc_word_bits
    weight_bits = plan.commands[0].weight_word_bits
    weight_size = spec.mv_weight_buffer_bytes if plan.engine == "matrix_vector" and spec.mv_engine else \
        spec.weight_buffer_bytes
    if plan.commands[0].sparse_words is not None:
        from .hw.top import SPARSE_FIFO_DEPTH
        # The word FIFO; the accumulators: one lane's file of sparse_depth entries per access.
        weight_size = SPARSE_FIFO_DEPTH * weight_bits // 8
        acc_size, acc_word_bits = spec.sparse_depth * spec.acc_type.bits // 8, spec.acc_type.bits
    write = table.sram_write_factor
    sram = {
        "activations": (c["act_reads"] + write * c["act_writes"]) * table.sram(act_size, spec.act_word_bits),
        "weights": (1 + write) * c["weight_words"] * table.sram(weight_size, weight_bits),
        "accumulators": (c["acc_reads"] + write * c["acc_writes"]) * table.sram(acc_size, acc_word_bits),
        "params": (c["param_reads"] + write * c["param_writes"]) * table.sram(
            2 * spec.max_param_folds * ceil(70 * spec.cols / 8), 70 * spec.postop_lanes),
        "feedback": (1 + write) * c["feedback_beats"] * table.sram(
            spec.feedback_depth * spec.act_word_bits // 8 if spec.chaining else 0, spec.act_word_bits),
    }
    postops = plan.postops
    add32, mult32 = (table.fadd, table.fmult) if spec.is_float else (table.add, table.mult)
    per_lane = (add32(32) if postops.bias else 0) + (mult32(32) if postops.requant else 0)
    compute = {"macs": c["macs_performed"] * mac, "postops": c["postop_beats"] * spec.cols * per_lane}
    dram = traffic.dram_bytes * 8 / 64 * table.dram_64b
    total = dram + sum(sram.values()) + sum(compute.values())
    return {"layer": plan.problem.name, "engine": plan.engine, "macs": plan.macs, "counts": c,
            "dram_bytes": traffic.dram_bytes, "dram_pj": dram, "sram_pj": sum(sram.values()), "sram": sram,
            "compute_pj": sum(compute.values()), "compute": compute, "total_pj": total,
            "pj_per_mac": total / plan.macs if plan.macs else float("nan")}


def network_energy(program, table=None):
    """Per layer and in total for a compiled network (one input; a batch is that many times)."""
    table = table or EnergyTable.load()
    rows = [layer_energy(pl.plan, table, source=pl.source, dest=pl.dest) for pl in program.layers]
    total = sum(row["total_pj"] for row in rows)
    macs = sum(row["macs"] for row in rows)
    return {"layers": rows, "total_pj": total, "dram_pj": sum(r["dram_pj"] for r in rows),
            "sram_pj": sum(r["sram_pj"] for r in rows), "compute_pj": sum(r["compute_pj"] for r in rows),
            "pj_per_mac": total / macs if macs else float("nan"),
            "inferences_per_joule": 1e12 / total if total else float("inf"), "table": table.source}
