"""Sparse matrix x sparse vector for batch-1 fully connected layers: the format, magnitude pruning, the plan,
the exact cycle model and the energy of `hwgen.hw.sparse_mv.SparseMatrixVectorEngine`.

The engine has ``P = rows * cols`` lanes of one multiplier each - the multiplier count of the dense
matrix-vector engine of the same spec - and lane ``p`` owns the outputs ``m0 + d*P + p`` of a command
(``d < sparse_depth``), each in an accumulator of its own. It works column by column of ``W`` (the EIE
organization): for an activation ``x[k]``, every lane multiplies ``x[k]`` by the nonzero weights of column
``k`` in its rows and adds each into the accumulator its entry names.

**Format: a column-major index format, lanes interleaved, not a bitmask.** One stream word per cycle holds the
activation ``x[k]`` and one entry per lane: ``(valid, slot d, weight)``. A column takes ``L_k = max_p nnz_p(k)``
words (the lane with the most nonzeros in it), shorter lanes padded with invalid entries. Why an index format:
with a bitmask, a lane still spends a cycle per position of its rows to find the next set bit (or needs a
priority encoder and a weight buffer per lane to stay busy), so cycles would follow the dense size; with the
index, every cycle of every lane is a multiply of a nonzero weight except for the padding to ``L_k``. Rows are
interleaved over the lanes (``m mod P``), so the nonzeros of a column spread evenly and the padding is small:
for AlexNet FC6 at 90 % zero weights a column has about 6.4 nonzeros per lane and ``L_k`` about 12.
The index costs ``1 + ceil(log2(sparse_depth))`` bits per entry; below the crossover that is the price.

**Zero activations are skipped**: the columns of zero activations are not in the stream at all (the host's
packer plays the weight fetcher, which reads the column pointers of the nonzero activations only), so they cost
no cycle, no DRAM byte and no multiply; an all-zero column of a nonzero activation is skipped too.

Commands: a layer of ``M`` outputs runs as ``ceil(M / (P * sparse_depth))`` commands of at most ``P *
sparse_depth`` rows each (the accumulator depth), every one streaming the columns of the nonzero activations
over its rows, then emitting ``D = ceil(rows / P)`` beats of ``P`` accumulators (beat ``d``, lane ``p``: output
``m0 + d*P + p``; lanes past ``M`` are 0).

Cycle model (no stalls; counted from the first word's handshake to the last beat's): a command of ``W`` words
(``sum_k L_k`` over the nonzero activations, at least 1: a command with no work sends one empty word) and
``D`` beats takes ``W + D + 1`` cycles, the next command's first word is taken ``W + D + 2`` cycles after its
own: a layer takes ``sum (W_i + D_i + 2) - 1``. `sparse_cycles` computes it from the sparsity pattern.
"""

from dataclasses import dataclass
from math import ceil

import numpy as np

from .errors import DataError, DataTypeError, MappingError

__all__ = ["magnitude_prune", "SparseCommand", "SparseMVPlan", "plan_sparse_fc", "column_lengths",
           "sparse_cycles", "sparse_energy", "ACCUMULATE_LATENCY"]

ACCUMULATE_LATENCY = 2     # a word's handshake -> its products (1) -> into the accumulators (2)


def magnitude_prune(weight, sparsity):
    """``weight`` with its ``round(sparsity * size)`` smallest-magnitude entries set to 0 (ties: the lower flat
    index goes first, so the result is deterministic). Entries already 0 count towards the target."""
    weight = np.asarray(weight)
    if weight.dtype.kind not in "iuf":
        raise DataTypeError(f"magnitude_prune needs a numeric weight array, not {weight.dtype}")
    if not isinstance(sparsity, (int, float)) or isinstance(sparsity, bool) or not 0 <= sparsity <= 1:
        raise DataError(f"target sparsity {sparsity!r} must be a number from 0 to 1 (the fraction of zero weights)")
    count = int(round(sparsity * weight.size))
    flat = weight.ravel().copy()
    if count:
        order = np.argsort(np.abs(flat), kind="stable")
        flat[order[:count]] = 0
    return flat.reshape(weight.shape)


def _lanes(spec):
    return spec.rows * spec.cols


def column_lengths(spec, weight, x):
    """Per command: ``L_k`` for the columns the command streams (nonzero activations, nonzero columns)."""
    weight, x = np.asarray(weight), np.asarray(x).ravel()
    M, K = weight.shape
    P, depth = _lanes(spec), spec.sparse_depth
    live = np.flatnonzero(x)
    mask = (weight != 0)[:, live]                                     # the columns the layer streams
    lengths = []
    for m0 in range(0, M, P * depth):
        m1 = min(M, m0 + P * depth)
        D = ceil((m1 - m0) / P)
        nz = np.zeros((D * P, len(live)), dtype=np.uint8)
        nz[:m1 - m0] = mask[m0:m1]
        per_lane = nz.reshape(D, P, len(live)).sum(axis=0, dtype=np.int32)   # [P, columns]
        L = per_lane.max(axis=0) if len(live) else np.zeros(0, dtype=np.int64)
        lengths.append((m0, m1, D, live[L > 0], L[L > 0]))
    return lengths


def sparse_cycles(spec, weight, x):
    """The exact cycles of the layer on the sparse engine, from the sparsity pattern (see the module doc)."""
    total = 0
    for _, _, D, _, L in column_lengths(spec, weight, x):
        total += max(1, int(L.sum())) + D + 2
    return total - 1


@dataclass(frozen=True)
class SparseCommand:
    m0: int
    m1: int
    slots: int           # D: beats emitted, accumulator slots used per lane
    words: tuple         # the stream words (ints)
    stream_words: int    # len(words)
    valid_entries: int   # multiplies performed (nonzero weight x nonzero activation)


@dataclass(frozen=True)
class SparseMVPlan:
    spec: object
    M: int
    K: int
    commands: tuple
    weight_nonzeros: int
    act_nonzeros: int

    @property
    def cycles(self):
        return sum(c.stream_words + c.slots + 2 for c in self.commands) - 1

    @property
    def words(self):
        return [w for c in self.commands for w in c.words]

    @property
    def stream_words(self):
        return sum(c.stream_words for c in self.commands)

    def expected_beats(self, weight, x):
        """The beats `out` must carry: ``W @ x`` (the golden model, `hwgen.reference.linear`) per command."""
        from .reference import linear
        y = linear(np.asarray(x).reshape(1, -1), weight, acc_type=self.spec.acc_type)[0]
        P, bits = _lanes(self.spec), self.spec.acc_type.bits
        beats = []
        for c in self.commands:
            part = np.zeros(c.slots * P, dtype=np.int64)
            part[:c.m1 - c.m0] = y[c.m0:c.m1]
            for d in range(c.slots):
                beats.append(sum((int(v) & ((1 << bits) - 1)) << (p * bits) for p, v in enumerate(part[d * P:(d + 1) * P])))
        return beats


def word_fields(spec):
    """Bit offsets of the stream word: ``act`` (act bits), ``last`` (1), then per lane ``valid`` (1), ``slot``
    (slot bits), ``weight`` (weight bits)."""
    slot_bits = max(1, (spec.sparse_depth - 1).bit_length())
    entry_bits = 1 + slot_bits + spec.weight_type.bits
    return spec.act_type.bits, slot_bits, entry_bits


def plan_sparse_fc(spec, weight, x, *, pack=True):
    """The commands of ``y = W @ x`` (``W[M, K]``, ``x[K]``) on the sparse engine of ``spec``; ``pack=False``
    skips building the stream words (for the model on large layers)."""
    if not getattr(spec, "sparse_mv", False):
        raise MappingError(f"accelerator {spec.name!r} has no sparse matrix-vector engine; build it with "
                           f"AcceleratorSpec(..., sparse_mv=True)")
    weight, x = np.asarray(weight), np.asarray(x).ravel()
    if weight.ndim != 2 or weight.shape[1] != len(x):
        raise DataError(f"W must be [M, K] with K = len(x) = {len(x)}, not {weight.shape}")
    for name, array, dtype in (("W", weight, spec.weight_type), ("x", x, spec.act_type)):
        if array.dtype.kind not in "iu":
            raise DataTypeError(f"{name} must hold integers, not {array.dtype}; quantize it first")
        if array.size and (array.min() < dtype.min or array.max() > dtype.max):
            raise DataError(f"{name} holds values outside {dtype}")
    from .reference import linear
    linear(x.reshape(1, -1), weight, acc_type=spec.acc_type)      # the accumulators must fit (raises if not)
    P = _lanes(spec)
    abits, slot_bits, entry_bits = word_fields(spec)
    wbits = spec.weight_type.bits
    commands = []
    for m0, m1, D, cols, L in column_lengths(spec, weight, x):
        words, valid = [], 0
        if pack:
            for k, length in zip(cols.tolist(), L.tolist()):
                lane_rows = [[] for _ in range(P)]
                for m in np.flatnonzero(weight[m0:m1, k]).tolist():
                    lane_rows[m % P].append(m // P)
                for i in range(length):
                    word = int(x[k]) & ((1 << abits) - 1)
                    for p in range(P):
                        if i < len(lane_rows[p]):
                            d = lane_rows[p][i]
                            w = int(weight[m0 + d * P + p, k]) & ((1 << wbits) - 1)
                            entry = 1 | (d << 1) | (w << (1 + slot_bits))
                            word |= entry << (abits + 1 + p * entry_bits)
                            valid += 1
                    words.append(word)
            if not words:
                words.append(0)
            words[-1] |= 1 << abits                       # last
            stream = len(words)
        else:
            stream = max(1, int(L.sum()))
            valid = int(np.count_nonzero(weight[m0:m1][:, cols]))
        commands.append(SparseCommand(m0=m0, m1=m1, slots=D, words=tuple(words), stream_words=stream,
                                      valid_entries=valid))
    return SparseMVPlan(spec=spec, M=weight.shape[0], K=weight.shape[1], commands=tuple(commands),
                        weight_nonzeros=int(np.count_nonzero(weight)), act_nonzeros=int(np.count_nonzero(x)))


def sparse_energy(plan, table=None):
    """Energy in pJ by level, like `hwgen.energy.layer_energy`: DRAM (the compressed stream, and the outputs),
    SRAM (the stream FIFO: a write and a read per word; the accumulators: a read and a write per multiply),
    compute (one multiply and add per valid entry: an invalid entry's multiplier is not enabled)."""
    from .energy import EnergyTable
    table = table or EnergyTable.load()
    spec = plan.spec
    word_bits = spec.sparse_word_bits
    out_bytes = sum(c.slots for c in plan.commands) * _lanes(spec) * spec.acc_type.bits // 8
    dram_bytes = plan.stream_words * word_bits / 8 + out_bytes
    dram = dram_bytes * 8 / 64 * table.dram_64b
    macs = sum(c.valid_entries for c in plan.commands)
    fifo_bytes = 32 * word_bits // 8
    acc_bytes = spec.sparse_depth * spec.acc_type.bits // 8
    write = table.sram_write_factor
    sram = {"weights": (1 + write) * plan.stream_words * table.sram(fifo_bytes, word_bits),
            "accumulators": (1 + write) * macs * table.sram(acc_bytes, spec.acc_type.bits)}
    operand = max(spec.act_type.bits, spec.weight_type.bits)
    compute = {"macs": macs * (table.mult(operand) + table.add(spec.acc_type.bits))}
    total = dram + sum(sram.values()) + sum(compute.values())
    return {"dram_bytes": dram_bytes, "dram_pj": dram, "sram_pj": sum(sram.values()), "sram": sram,
            "compute_pj": sum(compute.values()), "compute": compute, "total_pj": total, "macs_performed": macs}
