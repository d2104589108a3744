"""The accumulator buffer: adds each fold's column sums into per-pixel accumulators, and on the last k-fold
sends the finished vector to the output instead of writing it back.

Read-modify-write on a `bram.PipelinedMemory` of ``cols`` accumulators per word, in enabled cycles (every step
happens only with ``en``): the read is issued two cycles before the column sums arrive (``read_*`` inputs) and
its word comes from the memory's output register; in the cycle the column sums arrive (``sum_*``) the sum is
formed into a register, and in the next one it is written back (or emitted on ``out_*``: `LATENCY` = 1 after
``sum_*``). Pixels of one fold are distinct addresses and one pixel recurs only every ``fold_period >= 2``
slots, so a read misses at most the writes of the two cycles before its sum (recurrences 2 and 3 slots
apart): those words are forwarded from registers, and the sum never uses a stale word.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bram import PipelinedMemory
from .fanout import registered_copies
from .fpu import fp32_add
from .library import place

__all__ = ["Accumulator", "AccumulatorLane"]


class Accumulator(wiring.Component):
    LATENCY = 1           # sum_* -> out_*
    READ_PARTS = 4        # copies of the read address, each driving part of the block RAM columns
    WRITE_PARTS = 4       # and of the write address and enable

    def __init__(self, spec):
        self.spec = spec
        depth = max(spec.acc_depth, 2)
        super().__init__({
            "en": In(1),
            "en_next": In(1),     # the value `en` takes in the next cycle (the top's enable, `en` its register)
            "read_valid": In(1), "read_pixel": In(range(depth)),
            # READ_PARTS copies of read_pixel (each from a flip-flop of its own; `PipelinedMemory.read_parts`)
            "read_pixel_parts": In(unsigned(self.READ_PARTS * Shape.cast(range(depth)).width)),
            "read_valid_parts": In(self.READ_PARTS),        # and of read_valid
            "psums": In(unsigned(spec.cols * spec.psum_bits)),  # arrives with sum_*, two cycles after read_*
            "sum_valid": In(1), "sum_pixel": In(range(depth)), "sum_last": In(1),
            # the first-fold flag of the sums arriving in the next enabled cycle (each lane registers its own
            # copy of it: a flag of wide fan-out, one lane per column across the array)
            "sum_first_next": In(1),
            "out_valid": Out(1), "out_data": Out(unsigned(spec.acc_word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        acc_bits, psum_bits = spec.acc_type.bits, spec.psum_bits
        m.submodules.buffer = buffer = PipelinedMemory(width=spec.acc_word_bits, depth=max(spec.acc_depth, 2),
                                                       read_parts=self.READ_PARTS, write_parts=self.WRITE_PARTS)
        m.d.comb += [buffer.read_addr.eq(self.read_pixel), buffer.read_addr_parts.eq(self.read_pixel_parts),
                     buffer.read_en_parts.eq(self.read_valid_parts & self.en.replicate(self.READ_PARTS)),
                     buffer.read_en.eq(self.en & self.read_valid),
                     buffer.data_en.eq(self.en)]

        # Stage T: the sum, registered. Stage T + 1: it is written back (or emitted). A read issued in cycle t
        # sees the writes of cycles before t; a pixel recurs every fold_period >= 2 slots, so its read (issued
        # two cycles before its sum) can miss the write of the cycle before its sum or of two cycles before:
        # those words are forwarded from registers, the more recent one first.
        sum_valid, sum_last, sum_pixel = Signal(name="sum_reg_valid"), Signal(name="sum_reg_last"), \
            Signal.like(self.sum_pixel, name="sum_reg_pixel")
        writes = sum_valid & ~sum_last
        # Decided a cycle ahead (the pixel read one cycle ago sums next cycle): whether to forward (one copy
        # per lane) and the word, the one written in this cycle (w1 next cycle) before the one of the last.
        # The pixel compares are a cycle earlier still, on the registers' inputs, so that the word's
        # multiplexer select is a flip-flop.
        forward1, forward2 = Signal(), Signal()
        with m.If(self.en):
            m.d.sync += [forward1.eq(self.sum_valid & ~self.sum_last & (self.sum_pixel == self.read_pixel)),
                         forward2.eq(writes & (sum_pixel == self.read_pixel))]
        forward_next = Signal()          # registered in each lane, one copy per lane
        m.d.comb += forward_next.eq(forward1 | forward2)

        # The lanes: `cols` instances of one `AccumulatorLane` (with a module library, one module).
        sum_word = Signal(spec.acc_word_bits, name="sum_word")
        acc_shape = spec.acc_type.amaranth_shape()
        fmt = spec.float_format
        make_lane = lambda: AccumulatorLane(psum_bits=psum_bits, acc_shape=acc_shape,  # noqa: E731
                                            fp32=fmt is not None)
        lane_key = (psum_bits, acc_shape.width, acc_shape.signed, fmt is not None)
        for j in range(spec.cols):
            lane = slice(j * acc_bits, (j + 1) * acc_bits)
            place(m, f"lane_{j}", make_lane, kind="acc_lane", key=lane_key, platform=platform,
                  psum=self.psums[j * psum_bits:(j + 1) * psum_bits], read_data=buffer.read_data[lane],
                  forward_next=forward_next, forward1=forward1, first_next=self.sum_first_next, en=self.en,
                  sum=sum_word[lane])
        with m.If(self.en):
            m.d.sync += [sum_valid.eq(self.sum_valid), sum_last.eq(self.sum_last), sum_pixel.eq(self.sum_pixel)]
        # The buffer's write enable and `out_valid` are flip-flops of their own, set a cycle ahead from `en_next`
        # and the sum registers' next values (the 8x8's critical path at seed 4: the enable's register, shared
        # with the array's, 5.7 ns of route to the gate and 2.4 ns on to the output FIFO's block RAMs).
        write_en, out_valid = Signal(name="acc_write_en"), Signal(name="acc_out_valid")
        write_en_next = self.en_next & Mux(self.en, self.sum_valid & ~self.sum_last, writes)
        m.d.sync += [write_en.eq(write_en_next),
                     out_valid.eq(self.en_next & Mux(self.en, self.sum_valid & self.sum_last,
                                                     sum_valid & sum_last))]
        # The write address and enable also as kept copies, each driving a part of the block RAM columns (the
        # 8x8's critical path at seed 2: the one address register's route to a DP16KD 36 tiles away, 9.9 ns).
        parts = self.WRITE_PARTS
        addr_copies = registered_copies(m, self.sum_pixel, name="acc_write_addr", count=parts, enable=self.en)
        en_copies = registered_copies(m, write_en_next, name="acc_write_en", count=parts)
        m.d.comb += [
            buffer.write_addr.eq(sum_pixel), buffer.write_data.eq(sum_word),
            buffer.write_en.eq(write_en),
            buffer.write_addr_parts.eq(Cat(*addr_copies)), buffer.write_en_parts.eq(Cat(*en_copies)),
            self.out_valid.eq(out_valid),
            self.out_data.eq(sum_word),
        ]
        return m


class AccumulatorLane(wiring.Component):
    """One lane of the accumulator: the registered sum (``sum``) of the column sum ``psum`` arriving now and
    the lane's previous value (0 on ``first``, the lane's own registered copy of ``first_next`` of the enabled
    cycle before), which is the buffer's ``read_data`` or, when ``forward_next``
    was set in the enabled cycle before (the lane's own registered copy, ``forward_copy_lane``: a flag of wide
    fan-out, see `fanout`), the word of one of the two sums before it (``forward1``: the one registered in the
    cycle before), kept in registers here. Everything advances in cycles with ``en``.

    ``fp32=True`` (the float datapath): the sum is an fp32 addition (`fpu.Fp32Adder`, round to nearest even),
    ``previous + psum``; on ``first`` the column sum is taken as it is.
    """

    def __init__(self, *, psum_bits, acc_shape, fp32=False):
        self.psum_bits, self.acc_shape, self.fp32 = psum_bits, acc_shape, fp32
        acc_bits = acc_shape.width
        super().__init__({
            "psum": In(psum_bits), "read_data": In(acc_bits),
            "forward_next": In(1), "forward1": In(1), "first_next": In(1), "en": In(1),
            "sum": Out(acc_bits),
        })

    def elaborate(self, platform):
        m = Module()
        acc_bits = self.acc_shape.width
        sum_word = Signal(acc_bits, reset_less=True)
        w1_word = Signal(acc_bits)                    # the word written in the cycle before
        forward_word = Signal(acc_bits, reset_less=True)
        forward, first = Signal(name="forward_copy_lane"), Signal(name="first_copy_lane")
        with m.If(self.en):
            m.d.sync += [w1_word.eq(sum_word), forward_word.eq(Mux(self.forward1, sum_word, w1_word)),
                         forward.eq(self.forward_next), first.eq(self.first_next)]
        previous = Mux(forward, forward_word, self.read_data)
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
