"""The accumulator buffer: adds each fold's column sums into per-pixel accumulators, and on the last k-fold
sends the finished vector to the output instead of writing it back.

Two-stage read-modify-write on an `amaranth.lib.memory` buffer of ``cols`` accumulators per word: the read is
issued one cycle before the column sums arrive (``read_*`` inputs), the sum is formed and written (or emitted)
in the next cycle (``sum_*``). Pixels of one fold are distinct addresses and one pixel recurs only every
``fold_period >= 2`` slots, so a non-transparent read port never sees a stale word.
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
            "psums": In(unsigned(spec.cols * spec.psum_bits)),  # arrives the cycle after read_*
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

        lanes = []
        for j in range(spec.cols):
            psum = self.psums[j * psum_bits:(j + 1) * psum_bits].as_signed()
            previous = read.data[j * acc_bits:(j + 1) * acc_bits].as_signed()
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
