"""The sparse matrix-vector engine: ``P = rows * cols`` lanes of one multiplier each, column by column of a
compressed weight matrix, zero activations and zero weights skipped (format, plan and cycle model:
`hwgen.sparse`).

Ports: ``i``, a stream of `hwgen.sparse.word_fields` words (the activation ``x[k]``, a ``last`` flag, and per
lane an entry ``(valid, slot, weight)``); ``slots``, the number of beats the current command emits (held while
its words stream); ``o``, a stream of beats of ``P`` accumulators (lane ``p`` at bit ``p * acc_bits``).

Pipeline: the word is registered as it is taken (1); each lane multiplies ``x * weight`` of a valid entry into a
register (2, enabled only for a valid entry: an invalid one does not switch the multiplier); the product is added
into the lane's accumulator ``slot`` (a register file of ``sparse_depth`` entries, read and written in the same
cycle, so back-to-back entries to one slot need no forwarding). After the ``last`` word has been added in, the
engine emits beat ``d`` = every lane's accumulator ``d`` for ``d < slots``, clearing each as it leaves; ``i`` is
not ready from the cycle after ``last`` until the last beat has left.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import MappingError
from ..sparse import word_fields

__all__ = ["SparseMatrixVectorEngine"]


class SparseMatrixVectorEngine(wiring.Component):
    def __init__(self, spec):
        if not spec.sparse_mv:
            raise MappingError(f"accelerator {spec.name!r} has no sparse engine; build it with "
                               f"AcceleratorSpec(..., sparse_mv=True)")
        self.spec = spec
        self.lanes = spec.rows * spec.cols
        super().__init__({
            "i": In(stream.Signature(unsigned(spec.sparse_word_bits))),
            "slots": In(range(spec.sparse_depth + 1)),
            "o": Out(stream.Signature(unsigned(self.lanes * spec.acc_type.bits))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        spec, P = self.spec, self.lanes
        abits, slot_bits, entry_bits = word_fields(spec)
        wbits, acc_bits = spec.weight_type.bits, spec.acc_type.bits
        depth = spec.sparse_depth
        act_shape = signed(abits) if spec.act_type.signed else unsigned(abits)
        w_shape = signed(wbits) if spec.weight_type.signed else unsigned(wbits)
        prod_shape = signed(spec.product_bits) if spec.product_type.signed else unsigned(spec.product_bits)

        closing, emitting = Signal(), Signal()     # `last` taken / beats leaving
        m.d.comb += self.i.ready.eq(~closing & ~emitting)
        take = self.i.valid & self.i.ready

        # Stage 1: the word.
        word, valid1 = Signal.like(self.i.payload), Signal()
        m.d.sync += valid1.eq(take)
        with m.If(take):
            m.d.sync += word.eq(self.i.payload)
            with m.If(self.i.payload[abits]):
                m.d.sync += closing.eq(1)
        x = word[:abits].as_signed() if spec.act_type.signed else word[:abits]
        last1 = valid1 & word[abits]

        # Stage 2: products of valid entries; stage 3: into the accumulators.
        last2 = Signal()
        m.d.sync += last2.eq(last1)
        d = Signal(range(max(depth, 2)))
        accs = []
        for p in range(P):
            entry = word[abits + 1 + p * entry_bits:abits + 1 + (p + 1) * entry_bits]
            valid, slot = entry[0], entry[1:1 + slot_bits]
            w = entry[1 + slot_bits:]
            w = w.as_signed() if spec.weight_type.signed else w
            product = Signal(prod_shape, name=f"sp_product_{p}")
            pvalid, pslot = Signal(name=f"sp_valid_{p}"), Signal(slot_bits, name=f"sp_slot_{p}")
            m.d.sync += pvalid.eq(valid1 & valid)
            with m.If(valid1 & valid):
                m.d.sync += [product.eq(x * w), pslot.eq(slot)]
            acc = Array(Signal(signed(acc_bits), name=f"sp_acc_{p}_{k}") for k in range(depth))
            with m.If(pvalid):
                m.d.sync += acc[pslot].eq(acc[pslot] + product)
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += acc[d].eq(0)
            accs.append(acc)

        # Emission: beat d = every lane's accumulator d, cleared as it leaves.
        m.d.comb += [self.o.valid.eq(emitting), self.o.payload.eq(Cat(*(acc[d] for acc in accs)))]
        with m.If(last2):
            m.d.sync += [emitting.eq(1), d.eq(0)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += d.eq(d + 1)
            with m.If(d + 1 >= self.slots):
                m.d.sync += [emitting.eq(0), closing.eq(0), d.eq(0)]
        m.d.comb += self.busy.eq(closing | emitting | valid1 | last2)
        return m


class SparseEngine(wiring.Component):
    """The sparse engine as a compute engine of `hwgen.hw.top.AcceleratorTop` (``AcceleratorSpec(dataflow=
    "matrix_vector", sparse_mv=True)``, or ``AcceleratorSpec(mv_engine=True, sparse_mv=True)`` beside a
    weight-stationary array), beside the dense matrix-vector engine: a command with the ``sparse`` flag runs
    here (its ``engine`` field says the matrix-vector side, so it starts once the array has drained). The same
    lanes and pipeline as `SparseMatrixVectorEngine`; the words come from the top's ``sparse`` FIFO (``pop``
    while running, one per cycle while the FIFO has one), and the results leave as the dense engine's do:
    ``m_folds`` beats of ``cols`` accumulators, beat ``b`` = outputs ``b*cols .. b*cols + cols - 1`` of the
    command (lane ``r*cols + j`` of slot ``d`` for ``b = d*rows + r``), each written into the output FIFO when
    it has room (``out_room``).

    Accumulators: a memory of ``sparse_depth`` words per lane (block RAM or LUT RAM on an FPGA, not flip-flops:
    an 8x8 engine of depth 64 holds 131,072 accumulator bits), one synchronous read port transparent for the
    write port. A word's entry reads its slot in the cycle the word is registered (stage 1), the product is
    registered beside the read (stage 2), and ``read + product`` is written back in stage 2; the next word's
    read of the same slot in that cycle sees the new value through the transparency, so back-to-back entries
    to one slot need no other forwarding. Emission reads slot ``d`` of every lane at once (when the last word's
    products are being added, and as the last lane group of slot ``d`` leaves), each lane group's beat then
    takes its lanes' read data, and a lane's slot is written back to 0 as its beat leaves.

    Timing (`hwgen.perf`): started (``start``) in cycle ``t``, it pops word ``i`` in ``t + 1 + i`` while the
    FIFO has it; the last word's products are in the accumulators `EMIT` cycles after its pop, when beat 0
    leaves; then a beat per cycle; ``done`` rises the cycle after the last beat."""

    EMIT = 3            # the last word's pop -> beat 0 (register, multiply, accumulate)

    def __init__(self, spec):
        from .config import config_layout
        self.spec = spec
        self.lanes = spec.rows * spec.cols
        super().__init__({
            "cfg": In(config_layout(spec)),
            "start": In(1),
            "busy": Out(1), "done": Out(1),
            "word_valid": In(1), "word": In(unsigned(spec.sparse_word_bits)), "pop": Out(1),
            "out_room": In(1), "out_valid": Out(1), "out_data": Out(unsigned(spec.acc_word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        spec, P, cfg = self.spec, self.lanes, self.cfg
        rows, cols = spec.rows, spec.cols
        abits, slot_bits, entry_bits = word_fields(spec)
        acc_bits = spec.acc_type.bits
        depth = spec.sparse_depth
        prod_shape = signed(spec.product_bits) if spec.product_type.signed else unsigned(spec.product_bits)

        running, emitting = Signal(), Signal()       # popping words / sending beats
        m.d.comb += self.pop.eq(running & self.word_valid)
        with m.If(self.start):
            m.d.sync += [running.eq(1), self.busy.eq(1), self.done.eq(0)]

        word, valid1 = Signal.like(self.word), Signal()
        m.d.sync += valid1.eq(self.pop)
        with m.If(self.pop):
            m.d.sync += word.eq(self.word)
            with m.If(self.word[abits]):
                m.d.sync += running.eq(0)
        x = word[:abits].as_signed() if spec.act_type.signed else word[:abits]
        last2 = Signal()
        m.d.sync += last2.eq(valid1 & word[abits])

        d = Signal(range(max(depth, 2)))
        r = Signal(range(max(rows, 2)))
        beat = Signal.like(cfg.m_folds)
        leave = Signal()
        m.d.comb += [leave.eq(emitting & self.out_room), self.out_valid.eq(leave)]
        # Emission reads slot 0 of every lane while the last products are added (last2), then slot d + 1 as
        # the last lane group of slot d leaves; no word is being accumulated then (the engine stopped popping).
        emit_read, emit_slot = Signal(), Signal.like(d)
        m.d.comb += [emit_read.eq(last2 | (leave & (r == rows - 1))), emit_slot.eq(Mux(last2, 0, d + 1))]
        groups = [[] for _ in range(rows)]          # groups[r][j]: the read data of lane r*cols + j
        self.multiplies = []                        # per lane: a valid product is added (energy probes)
        for p in range(P):
            entry = word[abits + 1 + p * entry_bits:abits + 1 + (p + 1) * entry_bits]
            valid, slot = entry[0], entry[1:1 + slot_bits]
            w = entry[1 + slot_bits:]
            w = w.as_signed() if spec.weight_type.signed else w
            product = Signal(prod_shape, name=f"sp_product_{p}")
            pvalid, pslot = Signal(name=f"sp_valid_{p}"), Signal(slot_bits, name=f"sp_slot_{p}")
            m.d.sync += pvalid.eq(valid1 & valid)
            self.multiplies.append(pvalid)
            with m.If(valid1 & valid):
                m.d.sync += [product.eq(x * w), pslot.eq(slot)]
            m.submodules[f"sp_acc_{p}"] = acc = memory.Memory(shape=signed(acc_bits), depth=depth, init=[])
            write = acc.write_port()
            read = acc.read_port(transparent_for=(write,))
            m.d.comb += [read.en.eq(emit_read | (valid1 & valid)), read.addr.eq(Mux(emit_read, emit_slot, slot))]
            clear = leave & (r == p // cols)
            m.d.comb += [write.en.eq(pvalid | clear), write.addr.eq(Mux(clear, d, pslot)),
                         write.data.eq(Mux(clear, 0, read.data + product))]
            groups[p // cols].append(read.data)
        beats = Array(Cat(*group) for group in groups)
        m.d.comb += self.out_data.eq(beats[r])

        with m.If(last2):
            m.d.sync += [emitting.eq(1), d.eq(0), r.eq(0), beat.eq(0)]
        with m.If(leave):
            m.d.sync += beat.eq(beat + 1)
            with m.If(r == rows - 1):
                m.d.sync += [r.eq(0), d.eq(d + 1)]
            with m.Else():
                m.d.sync += r.eq(r + 1)
            with m.If(beat + 1 >= cfg.m_folds):
                m.d.sync += [emitting.eq(0), self.busy.eq(0), self.done.eq(1)]
        return m
