"""The accumulator buffer: adds each fold's column sums into per-pixel accumulators, and on the last k-fold
sends the finished vector to the output instead of writing it back.

Three-stage read-modify-write on an `amaranth.lib.memory` buffer of ``cols`` accumulators per word: the read
is issued two cycles before the column sums arrive (``read_*`` inputs), its data is registered (block RAM
clock-to-out is slow, so nothing else is in that path), and the sum is formed and written (or emitted) in the
cycle the column sums arrive (``sum_*``). Every step happens only with ``en`` (so cycles below are enabled
cycles). Pixels of one fold are distinct addresses and one pixel recurs only every ``fold_period >= 2`` slots:
a read misses at most the write of the cycle it is issued in (a recurrence exactly 2 slots apart); that word is
forwarded from a register instead, so the sum never uses a stale word.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Accumulator"]


class Accumulator(wiring.Component):
    def __init__(self, spec):
        self.spec = spec
        depth = max(spec.acc_depth, 2)
        super().__init__({
            "en": In(1),
            "read_valid": In(1), "read_pixel": In(range(depth)),
            "psums": In(unsigned(spec.cols * spec.psum_bits)),  # arrives with sum_*, two cycles after read_*
            "sum_valid": In(1), "sum_pixel": In(range(depth)), "sum_first": In(1), "sum_last": In(1),
            "out_valid": Out(1), "out_data": Out(unsigned(spec.acc_word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        acc_bits, psum_bits = spec.acc_type.bits, spec.psum_bits
        m.submodules.buffer = buffer = memory.Memory(shape=unsigned(spec.acc_word_bits),
                                                     depth=max(spec.acc_depth, 2), init=[])
        read = buffer.read_port()
        write = buffer.write_port()
        m.d.comb += [read.addr.eq(self.read_pixel), read.en.eq(self.en & self.read_valid)]

        # The read data, registered; and the words written 1 and 2 cycles ago. A read issued in cycle t sees the
        # writes of cycles before t; the one of cycle t (2 before its sum) is forwarded when it is the same pixel.
        read_data = Signal.like(read.data)
        written = [Signal(1 + len(self.sum_pixel), name=f"written{k}") for k in (1, 2)]   # valid, pixel
        written_word = [Signal(spec.acc_word_bits, name=f"written_word{k}") for k in (1, 2)]
        forward = Signal()
        read_pixel_d = Signal.like(self.read_pixel)       # the pixel whose read data is being registered
        with m.If(self.en):
            m.d.sync += [read_data.eq(read.data), read_pixel_d.eq(self.read_pixel),
                         written[1].eq(written[0]), written_word[1].eq(written_word[0]),
                         written[0].eq(Cat(write.addr, write.en)), written_word[0].eq(write.data),
                         # decided a cycle ahead: the pixel read 1 cycle ago sums next cycle, and then the
                         # write 2 cycles before its sum (the one its read missed) is in written[1]
                         forward.eq(written[0][-1] & (written[0][:-1] == read_pixel_d))]
        previous_word = Mux(forward, written_word[1], read_data)

        lanes = []
        for j in range(spec.cols):
            psum = self.psums[j * psum_bits:(j + 1) * psum_bits].as_signed()
            previous = previous_word[j * acc_bits:(j + 1) * acc_bits].as_signed()
            total = Signal(spec.acc_type.amaranth_shape(), name=f"sum_{j}")
            # The schedule proved |sum| fits acc_type, so truncating the adder's carry loses nothing.
            m.d.comb += total.eq(Mux(self.sum_first, 0, previous) + psum)
            lanes.append(total)
        word = Cat(*lanes)
        m.d.comb += [
            write.addr.eq(self.sum_pixel), write.data.eq(word),
            write.en.eq(self.en & self.sum_valid & ~self.sum_last),
            self.out_valid.eq(self.en & self.sum_valid & self.sum_last),
            self.out_data.eq(word),
        ]
        return m
