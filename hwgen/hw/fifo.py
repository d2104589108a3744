"""A deep FIFO in block RAM whose read side is flip-flops: the head word, ``r_rdy`` and the pop logic are all
a gate or two from registers, so a pipeline enable may pop it without a block-RAM path in series.

Words are written into a `PipelinedMemory` of ``depth`` words and prefetched into a ``QUEUE``-word register
queue as soon as the queue has room for them. The block RAM's two-step read means two reads in flight, so the
queue holds ``READ_LATENCY + 2`` words: then a read can be issued every cycle from registered counts alone
(not looking at this cycle's pop) and the FIFO still delivers a word per cycle.

Timing: a word written in cycle ``t`` is the head (``r_rdy``) from cycle ``t + WRITE_TO_READ`` at the
earliest; the capacity is ``depth + QUEUE`` words. Golden model: `FIFOModel` in ``tests/test_hw_fifo.py``.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import target
from .bram import READ_LATENCY, PipelinedMemory, check_parts, check_width_depth, ecp5_tiling
from .fanout import assign_all, flag_copies, registered_copies

__all__ = ["BlockRAMFIFO", "BlockRAMHeadFIFO"]


class BlockRAMFIFO(wiring.Component):
    QUEUE = READ_LATENCY + 2
    READ_PARTS = 4      # at most this many copies of the read enable and address (one per part of the columns)
    # write -> counted in storage (1) -> read issued (1) -> two read steps -> into the queue (1)
    WRITE_TO_READ = 2 + READ_LATENCY

    def __init__(self, *, width, depth):
        self.width, self.depth = check_width_depth(width, depth)
        super().__init__({
            "w_stream": In(stream.Signature(unsigned(width))),
            "r_data": Out(unsigned(width)), "r_rdy": Out(1), "r_en": In(1),
            "next_r_rdy": Out(1),        # r_rdy after this cycle's write and pop (it is registered from it)
        })

    def elaborate(self, platform):
        m = Module()
        depth, queue_size = self.depth, self.QUEUE
        # The read enable and address also as flip-flop copies, each driving a part of the block RAM columns
        # (a wide FIFO's blocks can sit far apart: one read enable's route to them was the 8x8's critical path).
        parts = min(self.READ_PARTS, ecp5_tiling(depth, self.width)[1])
        # The write side's copies (below) only where the block RAM columns are separate cells (the generic
        # form writes at the shared port: on iCE40 the copies were kept flip-flops and incrementers of no use).
        write_parts = parts if target.family(platform) == "ecp5" else 1
        m.submodules.ram = storage = PipelinedMemory(width=self.width, depth=depth, read_parts=parts,
                                                     write_parts=write_parts)

        # Storage side: words written and not yet read out of the block RAM.
        produce, consume = Signal(range(depth)), Signal(range(depth))
        stored = Signal(range(depth + 1))
        write = Signal()
        not_full = Signal(init=1)                   # stored != depth, registered
        # The block RAM writes the payload at `produce` in EVERY cycle the FIFO is not full, the stream's valid
        # or not: that slot holds no unread word (it is the next free one; when the FIFO is full it is the
        # oldest unread word, and then nothing is written), so a write without a handshake is overwritten by
        # the next one before any read can reach it. The write enable is thus the registered not-full flag
        # (a flip-flop copy per part of the block RAM columns), not `valid & ready`: the stream's valid, which
        # comes from outside (the 8x8's critical path at seed 1: `w_stream.valid` -> the write gate -> a
        # DP16KD `WEA`, 6.86 ns, 5.96 of it route), drives only the pointer's and the counts' logic.
        m.d.comb += [self.w_stream.ready.eq(not_full),
                     write.eq(self.w_stream.valid & self.w_stream.ready),
                     storage.write_addr.eq(produce), storage.write_data.eq(self.w_stream.payload),
                     storage.write_en.eq(not_full)]
        with m.If(write):
            m.d.sync += produce.eq(_advance(produce, depth))

        # Queue side: `queued` words held, `in_flight` reads whose word arrives now or in the next cycle, and
        # `reserved` = queued + reads in flight.
        queued = Signal(range(queue_size + 1))
        reserved, next_reserved = Signal(range(queue_size + 1)), Signal(range(queue_size + 1))
        in_flight = Signal(READ_LATENCY)            # bit k: a word arrives k cycles from now
        issue, arrive, pop = Signal(), Signal(), Signal()
        m.d.comb += [
            arrive.eq(in_flight[0]),
            pop.eq(self.r_en & self.r_rdy),
            storage.read_addr.eq(consume), storage.read_en.eq(issue), storage.data_en.eq(1),
            next_reserved.eq(reserved + issue - pop),
        ]
        # A read is issued while words are stored and the queue has room for them, not counting this cycle's
        # pop; decided from the next counts and registered, so the block RAM's enable is a flip-flop.
        # The comparisons of the next counts are made on the counts themselves, one per outcome of this
        # cycle's write, issue and pop, which come last (the write is the weight stream's handshake and the
        # pop the pipeline enable's).
        def next_is(count, value, up, down):
            """``count + up - down == value``."""
            return Mux(up, Mux(down, count == value, count == value - 1), Mux(down, count == value + 1,
                                                                              count == value))
        # The compares themselves are flip-flops, registered from the next counts (the 8x8's critical path at
        # seed 4: the stored count -> compares -> the issue copies, 10.2 ns): only the write, the issue and the
        # pop select among them.
        stored_0, stored_1 = Signal(init=1, name="stored_is_0"), Signal(name="stored_is_1")
        room_2up, room_1up = Signal(init=queue_size >= 2, name="queue_room_2up"), Signal(init=1, name="queue_room")
        # next_stored == 0 / 1 as a choice among compares of `stored` itself (no adder after the write, which is
        # the stream's handshake: the 8x8's critical path at seed 2, `w_stream.valid` -> the count's adder ->
        # `stored_is_1`, 7.46 ns).
        m.d.sync += [stored_0.eq(next_is(stored, 0, write, issue)), stored_1.eq(next_is(stored, 1, write, issue)),
                     room_2up.eq(next_reserved < queue_size - 1), room_1up.eq(next_reserved < queue_size)]
        empty_next = Mux(write, issue & stored_0, Mux(issue, stored_1, stored_0))   # next_is(stored, 0, ...)
        next_issue = Signal()
        m.d.comb += next_issue.eq(~empty_next & Mux(issue & ~pop, room_2up, Mux(~issue & pop, 1, room_1up)))
        # The count itself moves as a choice among stored, stored + 1 and stored - 1, the write and the issue
        # selecting last: no adder after the write (the 8x8's critical path at seed 2: the FIFO's ready -> the
        # stream's handshake at its source -> the count's adder, 7.81 ns).
        m.d.sync += [issue.eq(next_issue),
                     stored.eq(Mux(write, Mux(issue, stored, stored + 1), Mux(issue, stored - 1, stored))),
                     reserved.eq(next_reserved)]
        next_not_full = ~next_is(stored, depth, write, issue)
        m.d.sync += not_full.eq(next_not_full)
        if write_parts > 1:
            write_ens = flag_copies("not_full", parts, init=1)
            m.d.sync += assign_all(write_ens, next_not_full)
            produces = [Signal.like(produce, name=f"produce_copy_{k}") for k in range(parts)]
            with m.If(write):
                m.d.sync += [copy.eq(_advance(produce, depth)) for copy in produces]
            m.d.comb += [storage.write_addr_parts.eq(Cat(*produces)), storage.write_en_parts.eq(Cat(*write_ens))]
        m.d.sync += in_flight.eq((in_flight >> 1) | (issue << (READ_LATENCY - 1)))
        with m.If(issue):
            m.d.sync += consume.eq(_advance(consume, depth))
        if parts > 1:
            issues = registered_copies(m, next_issue, name="issue", count=parts)
            consumes = [Signal.like(consume, name=f"consume_copy_{k}") for k in range(parts)]
            with m.If(issue):
                m.d.sync += [copy.eq(_advance(consume, depth)) for copy in consumes]
            m.d.comb += [storage.read_addr_parts.eq(Cat(*consumes)), storage.read_en_parts.eq(Cat(*issues))]

        words = Array(Signal(self.width, name=f"queue{k}", reset_less=True) for k in range(queue_size))
        head, tail = Signal(range(queue_size)), Signal(range(queue_size))
        with m.If(arrive):
            m.d.sync += [words[tail].eq(storage.read_data), tail.eq(_advance(tail, queue_size))]
        with m.If(pop):
            m.d.sync += head.eq(_advance(head, queue_size))
        next_queued = queued + arrive - pop
        # next_queued != 0 from one-hot flags of `queued`: the pop (the pipeline enable) is one gate from it
        queued_1, queued_2up = Signal(), Signal()
        m.d.sync += [queued_1.eq(next_queued == 1), queued_2up.eq(next_queued >= 2)]
        m.d.comb += self.next_r_rdy.eq(arrive | queued_2up | (queued_1 & ~pop))
        m.d.sync += [queued.eq(next_queued), self.r_rdy.eq(self.next_r_rdy)]
        m.d.comb += self.r_data.eq(words[head])
        return m


class BlockRAMHeadFIFO(wiring.Component):
    """A block-RAM FIFO for wide words whose head is the block RAM's own output register: no register queue
    (a `BlockRAMFIFO` holds ``QUEUE`` words in flip-flops), for a consumer that takes a word at most every
    other cycle or so - the post-op chain, which takes a beat in ``postop_groups`` cycles.

    A word passes the memory's two read steps (`PipelinedMemory`): ``read_en`` latches it in the block RAM's
    read latch (it leaves the storage: ``released``), ``data_en`` moves it into the output register, which is
    ``r_data``. The latch refills in the cycle the head moves on, so the FIFO still delivers a word per cycle
    while words are stored.

    Timing: a word written in cycle ``t`` (``w_stream`` handshake) is latched from ``t + 1`` and is the head
    (``r_rdy``) from ``t + WRITE_TO_HEAD`` when the FIFO was empty; a pop in cycle ``t`` (``r_en & r_rdy``)
    shows the next word from ``t + 1`` if it was latched. The storage holds ``depth`` words, plus one latched
    and one at the head. ``w_stream.ready`` is low only while the storage is full.
    """
    WRITE_TO_HEAD = 3

    def __init__(self, *, width, depth, write_parts=1, read_parts=1):
        self.width, self.depth = check_width_depth(width, depth)
        self.write_parts = check_parts("write_parts", write_parts)
        self.read_parts = check_parts("read_parts", read_parts)
        members = {
            "w_stream": In(stream.Signature(unsigned(width))),
            "r_data": Out(unsigned(width)), "r_rdy": Out(1), "r_en": In(1),
            "released": Out(1),          # a word left the storage this cycle (latched)
            "busy": Out(1),              # a word is stored, latched or at the head
        }
        if write_parts > 1:
            # Copies of w_stream.valid (the writer drives each with the same value, from flip-flops of its own):
            # part k of the block RAM columns is written at copy k, with copies of the write pointer and of the
            # not-full flag of its own (`PipelinedMemory.write_parts`).
            members["w_valid_parts"] = In(write_parts)
        if read_parts > 1:
            # The consumer's r_en of the NEXT cycle (it registers r_en from it): the block RAM's output-register
            # enable is then a flip-flop, and its read enable one gate from it, per part of its columns (a wide
            # FIFO's blocks sit far apart: one gate's route to all of them was the 8x8's critical path at seed 1
            # with the post-op chain's bias change, `i.ready` -> the move -> a DP16KD `OCEB` 57 tiles away,
            # 6.91 ns, 5.00 of it that route).
            members["next_r_en"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        parts = self.read_parts
        m.submodules.ram = storage = PipelinedMemory(width=self.width, depth=depth, write_parts=self.write_parts,
                                                     read_parts=parts, data_en_parts=parts > 1)
        produce, consume = Signal(range(depth)), Signal(range(depth))
        stored = Signal(range(depth + 1))
        latched = Signal()                       # a word waits in the read latch
        stored_nonzero = Signal()                # stored != 0, registered from the next count (the read
                                                 # enable's route to the far block RAMs follows few gates)
        write, read, move, pop = Signal(), Signal(), Signal(), Signal()
        not_full = Signal(init=1)                # stored != depth, registered from the next count
        next_move = Signal()
        m.d.comb += [
            self.w_stream.ready.eq(not_full),
            write.eq(self.w_stream.valid & self.w_stream.ready),
            pop.eq(self.r_en & self.r_rdy),
            storage.write_addr.eq(produce), storage.write_data.eq(self.w_stream.payload),
            storage.write_en.eq(write),
            storage.read_addr.eq(consume), storage.read_en.eq(read), storage.data_en.eq(move),
            self.r_data.eq(storage.read_data), self.released.eq(read),
            self.busy.eq((stored != 0) | latched | self.r_rdy),
        ]
        # The next count as a choice among stored + 1, stored and stored - 1 (no adder after `read`, which comes
        # from the consumer's pop and is the late input); next_stored != 0 without the sum: a write leaves
        # words; a read (only while stored != 0) leaves stored - 1 (+ the write); else the count stays.
        next_stored = Mux(read, Mux(write, stored, stored - 1), Mux(write, stored + 1, stored))
        # Full next: no read, and a write onto depth - 1 words or none onto depth (a read and a write keep the
        # count, which is below depth while a write happens).
        next_not_full = ~(~read & Mux(write, stored == depth - 1, stored == depth))
        m.d.sync += not_full.eq(next_not_full)
        next_stored_nonzero = write | Mux(read, stored >= 2, stored_nonzero)
        next_latched, next_r_rdy = read | (latched & ~move), move | (self.r_rdy & ~pop)
        m.d.sync += [stored.eq(next_stored), stored_nonzero.eq(next_stored_nonzero),
                     latched.eq(next_latched), self.r_rdy.eq(next_r_rdy)]
        if parts == 1:
            m.d.comb += [move.eq(latched & (~self.r_rdy | pop)),                 # latch -> output register
                         read.eq(stored_nonzero & (~latched | move))]            # storage -> latch
        else:
            # move = latched & (~r_rdy | r_en), registered from the next values of the flip-flops it is made
            # of (r_en's from `next_r_en`), with a copy per part of the block RAM columns; each part's read
            # enable is one gate of its copy, stored_nonzero & (~latched | move) (registering it too put the
            # chain's next i.ready and next_move in front of it: 7.01 ns at seed 1). The copies of the read
            # pointer move with the shared one.
            m.d.comb += next_move.eq(next_latched & (~next_r_rdy | self.next_r_en))
            moves = flag_copies("move", parts)
            m.d.sync += assign_all(moves, next_move)
            reads = [Signal(name=f"read_part_{k}") for k in range(parts)]
            m.d.comb += [part.eq(stored_nonzero & (~latched | copy)) for part, copy in zip(reads, moves)]
            consumes = [Signal(range(depth), name=f"consume_copy_{k}") for k in range(parts)]
            with m.If(read):
                m.d.sync += [copy.eq(_advance(consume, depth)) for copy in consumes]
            m.d.comb += [move.eq(moves[0]), read.eq(reads[0]),
                         storage.read_addr_parts.eq(Cat(*consumes)), storage.read_en_parts.eq(Cat(*reads)),
                         storage.data_en_parts.eq(Cat(*moves))]
        with m.If(write):
            m.d.sync += produce.eq(_advance(produce, depth))
        with m.If(read):
            m.d.sync += consume.eq(_advance(consume, depth))
        if self.write_parts > 1 and target.family(platform) != "ecp5":
            # The generic form writes at the shared port: the parts get the shared gate and pointer.
            m.d.comb += [storage.write_addr_parts.eq(produce.replicate(self.write_parts)),
                         storage.write_en_parts.eq(write.replicate(self.write_parts))]
        elif self.write_parts > 1:
            # Part k: its own write gate, pointer and not-full flag, each equal to the shared one (same inputs,
            # same updates), so that the gate sits beside the part's block RAMs.
            addresses, enables = [], []
            for k in range(self.write_parts):
                part_full = Signal(init=1, name=f"not_full_copy_{k}")
                part_produce = Signal(range(depth), name=f"produce_copy_{k}")
                part_write = Signal(name=f"write_part_{k}")
                m.d.comb += part_write.eq(self.w_valid_parts[k] & part_full)
                m.d.sync += part_full.eq(next_not_full)
                with m.If(part_write):
                    m.d.sync += part_produce.eq(_advance(part_produce, depth))
                addresses.append(part_produce)
                enables.append(part_write)
            m.d.comb += [storage.write_addr_parts.eq(Cat(*addresses)), storage.write_en_parts.eq(Cat(*enables))]
        return m


def _advance(pointer, size):
    """``pointer + 1`` modulo ``size``."""
    return Mux(pointer == size - 1, 0, pointer + 1)
