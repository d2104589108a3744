"""The accumulator buffer: adds each fold's column sums into per-pixel accumulators, and on the last k-fold
sends the finished vector to the output instead of writing it back.

Three-stage read-modify-write on a `bram.PipelinedMemory` of ``cols`` accumulators per word: the read is
issued two cycles before the column sums arrive (``read_*`` inputs), its word comes from the memory's output
register (block RAM clock-to-out is slow, so nothing else is in that path), and the sum is formed and written (or emitted) in the
cycle the column sums arrive (``sum_*``). Every step happens only with ``en`` (so cycles below are enabled
cycles). Pixels of one fold are distinct addresses and one pixel recurs only every ``fold_period >= 2`` slots:
a read misses at most the write of the cycle it is issued in (a recurrence exactly 2 slots apart); that word is
forwarded from a register instead, so the sum never uses a stale word.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bram import PipelinedMemory

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
        m.submodules.buffer = buffer = PipelinedMemory(width=spec.acc_word_bits, depth=max(spec.acc_depth, 2))
        m.d.comb += [buffer.read_addr.eq(self.read_pixel), buffer.read_en.eq(self.en & self.read_valid),
                     buffer.data_en.eq(self.en)]

        # The words written 1 and 2 cycles ago. A read issued in cycle t sees the writes of cycles before t; the
        # one of cycle t (2 before its sum) is forwarded when it is the same pixel.
        written = [Signal(1 + len(self.sum_pixel), name=f"written{k}") for k in (1, 2)]   # valid, pixel
        written_word = [Signal(spec.acc_word_bits, name=f"written_word{k}") for k in (1, 2)]
        write_addr, write_data, write_en = buffer.write_addr, buffer.write_data, buffer.write_en
        forward = Signal()
        read_pixel_d = Signal.like(self.read_pixel)       # the pixel whose read data is being registered
        with m.If(self.en):
            m.d.sync += [read_pixel_d.eq(self.read_pixel),
                         written[1].eq(written[0]), written_word[1].eq(written_word[0]),
                         written[0].eq(Cat(write_addr, write_en)), written_word[0].eq(write_data),
                         # decided a cycle ahead: the pixel read 1 cycle ago sums next cycle, and then the
                         # write 2 cycles before its sum (the one its read missed) is in written[1]
                         forward.eq(written[0][-1] & (written[0][:-1] == read_pixel_d))]
        previous_word = Mux(forward, written_word[1], buffer.read_data)

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
            write_addr.eq(self.sum_pixel), write_data.eq(word),
            write_en.eq(self.en & self.sum_valid & ~self.sum_last),
            self.out_valid.eq(self.en & self.sum_valid & self.sum_last),
            self.out_data.eq(word),
        ]
        return m
