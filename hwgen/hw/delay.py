"""Delay lines: a value through a chain of registers that advance together on one enable.

`delayed` builds ``stages`` registers as a chain of `DelayLine` blocks of power-of-two lengths (5 stages: one of
4, one of 1). The registers are the same as a plain chain (reset to 0 unless `reset_less`, one clock enable); the blocks only
matter with a module library (`library`), where each length is one shared module: the array's skew and de-skew
(``rows`` and ``cols`` lines of 0 to n-1 stages) then cost ``log2 n`` modules instead of ``n**2 / 2`` register
stages to elaborate.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .library import place

__all__ = ["DelayLine", "delayed"]


class DelayLine(wiring.Component):
    """``o`` is ``i`` of ``stages`` enabled cycles before: ``stages`` registers of ``width`` bits (reset to 0;
    with ``reset_less=True`` not reset, for data that nothing reads before it is written), advancing in cycles
    with ``en`` (1 when left unconnected)."""

    def __init__(self, *, width, stages, reset_less=False):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(stages, int) or stages < 1:
            raise ValueError(f"stages must be a positive integer, not {stages!r}")
        self.width, self.stages, self.reset_less = width, stages, bool(reset_less)
        super().__init__({"i": In(width), "en": In(1, init=1), "o": Out(width)})

    def elaborate(self, platform):
        m = Module()
        value = self.i
        for stage in range(self.stages):
            register = Signal(self.width, name=f"stage_{stage}", reset_less=self.reset_less)
            with m.If(self.en):
                m.d.sync += register.eq(value)
            value = register
        m.d.comb += self.o.eq(value)
        return m


def delayed(m, value, stages, *, name, platform, en=1, reset_less=False):
    """``value`` delayed ``stages`` enabled cycles (``en``) by `DelayLine` blocks ``<name>_delay<n>`` added to
    ``m``, longest first; returns the delayed bits (``value`` itself when ``stages`` is 0), the net
    ``<name>_<stages>`` (``<name>_<k>``: after ``k`` stages)."""
    width, done = len(value), 0
    for length in sorted((1 << bit for bit in range(stages.bit_length()) if stages >> bit & 1), reverse=True):
        done += length
        out = Signal(width, name=f"{name}_{done}")       # after `done` stages
        place(m, f"{name}_delay{length}",
              lambda length=length: DelayLine(width=width, stages=length, reset_less=reset_less),
              kind=f"delay{length}_{width}b" + ("_data" if reset_less else ""), key=(width, length, reset_less),
              platform=platform, i=value, en=en, o=out)
        value = out
    return value
