"""The accumulator buffer: adds each fold's column sums into per-pixel accumulators, and on the last k-fold
sends the finished vector to the output instead of writing it back.

Read-modify-write on a `bram.PipelinedMemory` of ``cols`` accumulators per word, in enabled cycles (every step
happens only with ``en``): the read is issued three cycles before the column sums arrive (``read_*`` inputs);
its word leaves the memory's output register and is registered again in the fabric beside the lanes (the
block RAMs sit in fixed rows, often far from the lanes: a route of its own, then the adder), as the lane's
``previous`` value; in the cycle the column sums arrive (``sum_*``) the sum is formed into a register, and in
the next one it is written back (or emitted on ``out_*``: `LATENCY` = 1 after ``sum_*``). Pixels of one fold
are distinct addresses and one pixel recurs only every ``fold_period >= 2`` slots, so a read misses at most
the writes of the three cycles before its sum (recurrences 2, 3 and 4 slots apart): those words are forwarded
from registers into ``previous`` instead of the memory's word, the most recent first, and the sum never uses
a stale word. A fold's period is never shorter than the array's larger side (`schedule.fold_period`), so only
the recurrences an array can have are built (`Accumulator.forwards`): all three on a 2x2, none from 5x5 on.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import target
from .bram import PipelinedMemory
from .fanout import registered_copies
from .fpu import fp32_add
from .library import place

__all__ = ["Accumulator", "AccumulatorLane"]


class Accumulator(wiring.Component):
    LATENCY = 1           # sum_* -> out_*
    READ_PARTS = 4        # copies of the read address, each driving part of the block RAM columns
    WRITE_PARTS = 4       # and of the write address and enable
    READ_AHEAD = 3        # a read is issued this many enabled cycles before its sum

    def __init__(self, spec):
        from ..schedule import fold_period
        self.spec = spec
        # Distances (in slots) between two sums of one pixel that a read can miss - the sums 2 .. READ_AHEAD + 1
        # slots before its own - and that the array's shortest fold period allows: forwarded from registers.
        shortest = fold_period(pixels=0, rows=spec.rows, cols=spec.cols)
        self.forwards = tuple(d for d in range(2, self.READ_AHEAD + 2) if d >= shortest)
        depth = max(spec.acc_depth, 2)
        super().__init__({
            "en": In(1),
            "en_next": In(1),     # the value `en` takes in the next cycle (the top's enable, `en` its register)
            "read_valid": In(1), "read_pixel": In(range(depth)),
            # READ_PARTS copies of read_pixel (each from a flip-flop of its own; `PipelinedMemory.read_parts`)
            "read_pixel_parts": In(unsigned(self.READ_PARTS * Shape.cast(range(depth)).width)),
            # READ_PARTS copies of `en & read_valid`, each a flip-flop of its own: the read enable of a part of
            # the block RAM columns (one gate shared by all of them, from the enable's register, was the 8x8's
            # critical path at seed 1: a route of 5.8 ns to a part 65 tiles away)
            "read_en_parts": In(self.READ_PARTS),
            "psums": In(unsigned(spec.cols * spec.psum_bits)),  # arrives with sum_*, READ_AHEAD cycles after read_*
            "sum_valid": In(1), "sum_pixel": In(range(depth)), "sum_last": In(1),
            # the first-fold flag of the sums arriving in the next enabled cycle (each lane registers its own
            # copy of it: a flag of wide fan-out, one lane per column across the array)
            "sum_first_next": In(1),
            "out_valid": Out(1), "out_data": Out(unsigned(spec.acc_word_bits)),
            "out_valid_parts": Out(self.WRITE_PARTS),     # copies of out_valid, each a flip-flop of its own
        })

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        acc_bits, psum_bits = spec.acc_type.bits, spec.psum_bits
        m.submodules.buffer = buffer = PipelinedMemory(width=spec.acc_word_bits, depth=max(spec.acc_depth, 2),
                                                       read_parts=self.READ_PARTS, write_parts=self.WRITE_PARTS)
        m.d.comb += [buffer.read_addr.eq(self.read_pixel), buffer.read_addr_parts.eq(self.read_pixel_parts),
                     buffer.read_en_parts.eq(self.read_en_parts),
                     buffer.read_en.eq(self.en & self.read_valid),
                     buffer.data_en.eq(self.en)]

        # Stage T: the sum, registered. Stage T + 1: it is written back (or emitted). A read issued in cycle t
        # sees the writes of cycles before t; a pixel recurs every fold_period >= 2 slots, so its read (issued
        # three cycles before its sum) can miss the writes of the sums 2, 3 and 4 cycles before its own: those
        # words are forwarded from registers, the most recent first.
        sum_valid, sum_last, sum_pixel = Signal(name="sum_reg_valid"), Signal(name="sum_reg_last"), \
            Signal.like(self.sum_pixel, name="sum_reg_pixel")
        writes = sum_valid & ~sum_last
        # Two cycles before a sum (the pixel read one cycle ago, `read_pixel_d`, sums in two cycles), compared
        # with the sums arriving now (distance 2), one (3) and two cycles ago (4): which word replaces the
        # memory's in the lanes' `previous` register in the next cycle. Registered in each lane (one copy per
        # lane), so the multiplexer's selects are flip-flops.
        if self.forwards:
            forward_next = Signal(len(self.forwards))
            read_pixel_d = Signal.like(self.read_pixel, name="read_reg_pixel")
            sum_valid2, sum_last2, sum_pixel2 = Signal(name="sum_reg2_valid"), Signal(name="sum_reg2_last"), \
                Signal.like(self.sum_pixel, name="sum_reg2_pixel")
            with m.If(self.en):
                m.d.sync += [read_pixel_d.eq(self.read_pixel),
                             sum_valid2.eq(sum_valid), sum_last2.eq(sum_last), sum_pixel2.eq(sum_pixel)]
            match = {2: self.sum_valid & ~self.sum_last & (self.sum_pixel == read_pixel_d),
                     3: writes & (sum_pixel == read_pixel_d),
                     4: sum_valid2 & ~sum_last2 & (sum_pixel2 == read_pixel_d)}
            m.d.comb += forward_next.eq(Cat(*(match[d] for d in self.forwards)))

        # The lanes: `cols` instances of one `AccumulatorLane` (with a module library, one module).
        sum_word = Signal(spec.acc_word_bits, name="sum_word")
        acc_shape = spec.acc_type.amaranth_shape()
        fmt = spec.float_format
        make_lane = lambda: AccumulatorLane(psum_bits=psum_bits, acc_shape=acc_shape,  # noqa: E731
                                            fp32=fmt is not None, forwards=self.forwards)
        lane_key = (psum_bits, acc_shape.width, acc_shape.signed, fmt is not None, self.forwards)
        for j in range(spec.cols):
            lane = slice(j * acc_bits, (j + 1) * acc_bits)
            place(m, f"lane_{j}", make_lane, kind="acc_lane", key=lane_key, platform=platform,
                  psum=self.psums[j * psum_bits:(j + 1) * psum_bits], read_data=buffer.read_data[lane],
                  **({"forward_next": forward_next} if self.forwards else {}),
                  first_next=self.sum_first_next, en=self.en,
                  sum=sum_word[lane])
        with m.If(self.en):
            m.d.sync += [sum_valid.eq(self.sum_valid), sum_last.eq(self.sum_last), sum_pixel.eq(self.sum_pixel)]
        # The buffer's write enable and `out_valid` are flip-flops of their own, set a cycle ahead from `en_next`
        # and the sum registers' next values (the 8x8's critical path at seed 4: the enable's register, shared
        # with the array's, 5.7 ns of route to the gate and 2.4 ns on to the output FIFO's block RAMs).
        write_en, out_valid = Signal(name="acc_write_en"), Signal(name="acc_out_valid")
        write_en_next = self.en_next & Mux(self.en, self.sum_valid & ~self.sum_last, writes)
        out_valid_next = self.en_next & Mux(self.en, self.sum_valid & self.sum_last, sum_valid & sum_last)
        m.d.sync += [write_en.eq(write_en_next), out_valid.eq(out_valid_next)]
        # Copies for the ECP5 form's block RAM parts only (the generic form reads and writes at the shared ports,
        # and the FPGA flow keeps every `*_copy_*` flip-flop: unused copies would stay as dead flip-flops).
        ecp5 = target.family(platform) == "ecp5"
        out_valid_copies = (registered_copies(m, out_valid_next, name="acc_out_valid", count=self.WRITE_PARTS)
                            if ecp5 else [out_valid] * self.WRITE_PARTS)
        # The write address and enable also as kept copies, each driving a part of the block RAM columns (the
        # 8x8's critical path at seed 2: the one address register's route to a DP16KD 36 tiles away, 9.9 ns).
        parts = self.WRITE_PARTS
        if ecp5:
            addr_copies = registered_copies(m, self.sum_pixel, name="acc_write_addr", count=parts, enable=self.en)
            en_copies = registered_copies(m, write_en_next, name="acc_write_en", count=parts)
        else:
            addr_copies, en_copies = [sum_pixel] * parts, [write_en] * parts
        m.d.comb += [
            buffer.write_addr.eq(sum_pixel), buffer.write_data.eq(sum_word),
            buffer.write_en.eq(write_en),
            buffer.write_addr_parts.eq(Cat(*addr_copies)), buffer.write_en_parts.eq(Cat(*en_copies)),
            self.out_valid.eq(out_valid), self.out_valid_parts.eq(Cat(*out_valid_copies)),
            self.out_data.eq(sum_word),
        ]
        return m


class AccumulatorLane(wiring.Component):
    """One lane of the accumulator: the registered sum (``sum``) of the column sum ``psum`` arriving now and
    the lane's previous value (0 on ``first``, the lane's own registered copy of ``first_next`` of the enabled
    cycle before), which is ``previous``: a register loaded in the cycle before the sum with the buffer's
    ``read_data`` or, when a bit of ``forward_next`` was set in the enabled cycle before that (the lane's own
    registered copy, ``forward_copy_lane``: flags of wide fan-out, see `fanout`), the word of a sum before it,
    kept in registers here: bit i for the sum ``forwards[i]`` slots before the one being formed (2: the sum
    registered in that cycle, 3: the one before, 4: the one before that), the lower bit first. Without
    ``forwards`` (an array whose folds are at least 5 slots long) ``previous`` is the memory's word. Everything
    advances in cycles with ``en``.

    ``fp32=True`` (the float datapath): the sum is an fp32 addition (`fpu.Fp32Adder`, round to nearest even),
    ``previous + psum``; on ``first`` the column sum is taken as it is.
    """

    def __init__(self, *, psum_bits, acc_shape, fp32=False, forwards=(2, 3, 4)):
        self.psum_bits, self.acc_shape, self.fp32 = psum_bits, acc_shape, fp32
        if tuple(forwards) != tuple(sorted(set(forwards))) or not set(forwards) <= {2, 3, 4}:
            raise ValueError(f"forwards must be increasing distances among 2, 3 and 4, not {forwards!r}")
        self.forwards = tuple(forwards)
        acc_bits = acc_shape.width
        members = {"psum": In(psum_bits), "read_data": In(acc_bits), "first_next": In(1), "en": In(1),
                   "sum": Out(acc_bits)}
        if self.forwards:
            members["forward_next"] = In(len(self.forwards))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        acc_bits = self.acc_shape.width
        sum_word = Signal(acc_bits, reset_less=True)
        # history[k]: the sum registered k cycles before sum_word's (the word of distance k + 2 when `previous`
        # is loaded, a cycle before the sum that uses it)
        history = [sum_word] + [Signal(acc_bits, reset_less=True, name=f"w{k}_word")
                                for k in range(1, max(self.forwards, default=2) - 1)]
        previous = Signal(acc_bits, reset_less=True)
        first = Signal(name="first_copy_lane")
        word = self.read_data
        if self.forwards:
            forward = Signal(len(self.forwards), name="forward_copy_lane")
            with m.If(self.en):
                m.d.sync += forward.eq(self.forward_next)
            for i, distance in reversed(list(enumerate(self.forwards))):      # the nearest sum last: first
                word = Mux(forward[i], history[distance - 2], word)
        with m.If(self.en):
            m.d.sync += [previous.eq(word), first.eq(self.first_next)]
            m.d.sync += [history[k].eq(history[k - 1]) for k in range(1, len(history))]
        total = Signal(self.acc_shape, name="total")
        # The schedule proved |sum| fits acc_type, so truncating the adder's carry loses nothing.
        if self.fp32:
            m.d.comb += total.eq(Mux(first, self.psum, fp32_add(m, previous, self.psum, "adder")))
        else:
            m.d.comb += total.eq(Mux(first, 0, previous.as_signed()) + self.psum.as_signed())
        with m.If(self.en):
            m.d.sync += sum_word.eq(total)
        m.d.comb += self.sum.eq(sum_word)
        return m
