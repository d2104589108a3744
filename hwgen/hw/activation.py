"""Sigmoid or tanh of 16-bit words, one per cycle per lane: the piecewise-linear table of `hwgen.activation`.

Two pipeline steps on one enable: the segment's (base, slope) is read from a ROM built from the golden table
(``x`` -> registered entry, with the position ``d`` inside the segment beside it), then
``(base + slope * d + 2**(SLOPE_FRAC-1)) >> SLOPE_FRAC``, saturated, into the output register. `LATENCY` = 2.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..activation import SLOPE_FRAC, WORD, PiecewiseLinear

__all__ = ["ActivationUnit"]


class ActivationUnit(wiring.Component):
    LATENCY = 2

    def __init__(self, table):
        if not isinstance(table, PiecewiseLinear):
            raise TypeError(f"ActivationUnit needs a hwgen.activation.PiecewiseLinear, not {table!r}")
        self.table = table
        super().__init__({"en": In(1), "x": In(signed(WORD)), "y": Out(signed(WORD))})

    def elaborate(self, platform):
        m = Module()
        t = self.table
        base, slope = t.tables
        base_shape, slope_shape = signed(t.base_bits), signed(t.slope_bits)
        # One ROM word per segment: the base in the low bits, the slope above it (two's complement fields).
        init = [(int(b) & ((1 << t.base_bits) - 1)) | ((int(s) & ((1 << t.slope_bits) - 1)) << t.base_bits)
                for b, s in zip(base, slope)]
        m.submodules.rom = rom = memory.Memory(shape=unsigned(t.base_bits + t.slope_bits), depth=len(init),
                                               init=init)
        port = rom.read_port()
        u = Signal(unsigned(WORD))
        m.d.comb += u.eq(self.x + (1 << (WORD - 1)))
        d = Signal(unsigned(t.offset_bits))
        m.d.comb += [port.addr.eq(u[t.offset_bits:]), port.en.eq(self.en)]
        with m.If(self.en):
            m.d.sync += d.eq(u[:t.offset_bits])
        entry_base, entry_slope = Signal(base_shape), Signal(slope_shape)
        m.d.comb += [entry_base.eq(port.data[:t.base_bits]), entry_slope.eq(port.data[t.base_bits:])]
        value = Signal(signed(max(t.base_bits, t.slope_bits + t.offset_bits + 1) + 2))
        m.d.comb += value.eq((entry_base + entry_slope * d + (1 << (SLOPE_FRAC - 1))) >> SLOPE_FRAC)
        lo, hi = -(1 << (WORD - 1)), (1 << (WORD - 1)) - 1
        with m.If(self.en):
            with m.If(value < lo):
                m.d.sync += self.y.eq(lo)
            with m.Elif(value > hi):
                m.d.sync += self.y.eq(hi)
            with m.Else():
                m.d.sync += self.y.eq(value)
        return m
