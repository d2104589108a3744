"""Slot sequencer of the output-stationary engine: ``for mf: for tile: for t in range(period)``.

The activation bank holds the command's pixels im2col-unrolled by the host, one word per (pixel tile, k):
word ``tile*K + k`` = the ``k``-th reduction input of the tile's ``rows`` pixels (lane = pixel). A tile takes
``period = max(K, rows)`` slots: first ``period - K`` bubbles (only when ``K < rows``), then slot
``period - K + k`` reads word ``tile*K + k`` and pops one weight word (lane = output channel of m-fold ``mf``).
Bubbles lead, so the last slots of any two tiles, in one command or in consecutive ones with different K, are
at least ``rows`` apart: the columns' read-out then never sees two finished rows at once. Lane ``i`` is valid
while pixel ``tile*rows + i`` exists. The golden model is `hwgen.schedule.LayerSchedule.os_slots_sequence`.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import config_layout

__all__ = ["OutputStationarySequencer"]


class OutputStationarySequencer(wiring.Component):
    def __init__(self, spec):
        self.spec = spec
        super().__init__({
            "cfg": In(config_layout(spec)),
            "start": In(1), "en": In(1),
            "busy": Out(1), "done": Out(1),
            "issue": Out(1),                                   # a reduction slot: reads a word, pops a weight
            "act_addr": Out(range(max(spec.act_depth, 2))),
            "valid": Out(spec.rows),                           # lanes (pixels) that exist, with issue
            "first": Out(1), "last": Out(1),                   # k == 0, k == K - 1
        })

    def elaborate(self, platform):
        m = Module()
        spec, cfg = self.spec, self.cfg
        rows = spec.rows
        mf, tile, t = (Signal(cfg.m_folds.shape(), name=name) for name in ("mf", "tile", "t"))
        base = Signal.like(self.act_addr)           # tile * K
        addr = Signal.like(self.act_addr)           # base + k
        lead = Signal.like(cfg.fold_period)         # period - K leading bubbles
        remaining = Signal.like(cfg.pixels)         # pixels - tile * rows
        last_t = t == cfg.fold_period - 1
        last_tile = tile == cfg.pixel_tiles - 1
        m.d.comb += [
            self.issue.eq(self.busy & (t >= lead)),
            self.act_addr.eq(addr),
            self.first.eq(t == lead),
            self.last.eq(last_t),
        ]
        for i in range(rows):
            m.d.comb += self.valid[i].eq(self.issue & (remaining > i))
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), self.done.eq(0), mf.eq(0), tile.eq(0), t.eq(0), base.eq(0), addr.eq(0),
                         lead.eq(cfg.fold_period - cfg.reduction), remaining.eq(cfg.pixels)]
        with m.Elif(self.en & self.busy):
            with m.If(self.issue):
                m.d.sync += addr.eq(addr + 1)
            with m.If(~last_t):
                m.d.sync += t.eq(t + 1)
            with m.Else():
                m.d.sync += t.eq(0)
                with m.If(~last_tile):
                    m.d.sync += [tile.eq(tile + 1), base.eq(base + cfg.reduction), addr.eq(base + cfg.reduction),
                                 remaining.eq(remaining - rows)]
                with m.Else():
                    m.d.sync += [tile.eq(0), base.eq(0), addr.eq(0), remaining.eq(cfg.pixels), mf.eq(mf + 1)]
                    with m.If(mf == cfg.m_folds - 1):
                        m.d.sync += [self.busy.eq(0), self.done.eq(1)]
        return m
