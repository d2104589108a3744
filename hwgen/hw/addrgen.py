"""The fold sequencer and activation address generator (implicit im2col).

Walks ``for mf: for r: for s: for cg: for slot in fold_period`` one slot per enabled cycle, and for each pixel
slot computes the activation-buffer address of ``I[cg*rows.., e*sh + r - ph, f*sw + s - pw]`` with adders only
(no multipliers), flagging out-of-bounds positions as padding instead of storing zeros. It also runs the weight
loader: one weight row per cycle (popped from the weight FIFO in stream order), starting one slot before each
fold. Golden model: `LayerSchedule.slots`.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import config_layout, field_bits

__all__ = ["FoldSequencer"]


class FoldSequencer(wiring.Component):
    """``start`` (one cycle, with ``cfg`` valid) begins a layer; then every cycle with ``en`` issues one slot.

    The first cycle is a pre-slot that only starts loading fold 0's weights. ``done`` rises after the last
    slot has been issued and stays until the next ``start``.
    """

    def __init__(self, spec):
        self.spec = spec
        bits = field_bits(spec)
        self.addr_bits = bits + 2  # signed: positions may be negative before the bounds check
        super().__init__({
            "cfg": In(config_layout(spec)),
            "start": In(1), "en": In(1),
            "busy": Out(1), "done": Out(1),
            # activation slot
            "slot_valid": Out(1), "act_addr": Out(range(max(spec.act_depth, 2))), "padded": Out(1),
            "acc_addr": Out(range(max(spec.acc_depth, 2))), "first_k": Out(1), "last_k": Out(1), "bank": Out(1),
            # weight loader
            "load_en": Out(1), "load_row": Out(range(spec.rows)), "load_bank": Out(1),
            # the slot after the next edge if this cycle is enabled (or starts): lets the top decide its
            # read-after-write interlock a cycle ahead
            "next_reads": Out(1), "next_act_addr": Out(range(max(spec.act_depth, 2))), "next_load_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, spec = self.cfg, self.spec
        sbits = self.addr_bits
        pos = lambda name: Signal(signed(sbits), name=name)

        pre = Signal()
        slot = Signal(range(1 << field_bits(spec)))
        mf, r, s, cg = (Signal(range(1 << field_bits(spec)), name=n) for n in ("mf", "r", "s", "cg"))
        e, f = Signal.like(slot, name="e"), Signal.like(slot, name="f")
        bank = Signal()      # kept across commands: a fold always loads the bank the previous fold did not use
        acc_base = Signal.like(self.acc_addr)
        cg_plane, r_row, r_h0, s_w0 = pos("cg_plane"), pos("r_row"), pos("r_h0"), pos("s_w0")
        h, w, row_addr = pos("h"), pos("w"), pos("row_addr")

        cg_wrap = cg == cfg.c_groups - 1
        s_wrap = s == cfg.k_w - 1
        r_wrap = r == cfg.k_h - 1
        first_k = (cg == 0) & (s == 0) & (r == 0)
        last_k = cg_wrap & s_wrap & r_wrap
        # Registered for Fmax (they feed the pipeline enable): the slot's address, padding, pixel and fold-end
        # flags are computed with the next slot's counters, and `last_fold` one cycle after the fold counters
        # change (a fold ends at least one enabled cycle after the fold counters last moved).
        last_fold = Signal()
        m.d.sync += last_fold.eq(last_k & (mf == cfg.m_folds - 1))
        fold_end, in_pixels = Signal(), Signal()
        act_addr, padded = Signal.like(self.act_addr), Signal()

        def goto_slot(next_slot):
            m.d.sync += [slot.eq(next_slot), fold_end.eq(next_slot == cfg.fold_period - 1),
                         in_pixels.eq(next_slot < cfg.pixels)]

        # The slot's address and padding after the next edge, if the sequencer moves (start or an enabled
        # cycle): combinational, so the top can look one slot ahead; the registers take them when it moves.
        next_addr, next_padded, next_valid = Signal.like(act_addr), Signal(), Signal()
        m.d.comb += [next_addr.eq(act_addr), next_padded.eq(padded), next_valid.eq(self.slot_valid)]
        with m.If(self.start | (self.en & self.busy)):
            m.d.sync += [act_addr.eq(next_addr), padded.eq(next_padded)]
        m.d.comb += [self.next_act_addr.eq(next_addr), self.next_reads.eq(next_valid & ~next_padded)]

        def move_position(next_h, next_w, next_row_addr):
            m.d.sync += [h.eq(next_h), w.eq(next_w), row_addr.eq(next_row_addr)]

        def goto_position(next_h, next_w, next_row_addr):
            m.d.comb += [next_addr.eq((next_row_addr + next_w)[:len(act_addr)]),
                         next_padded.eq((next_h < 0) | (next_h >= cfg.in_h) | (next_w < 0) | (next_w >= cfg.in_w))]

        m.d.comb += [
            self.slot_valid.eq(self.busy & ~pre & in_pixels),
            self.act_addr.eq(act_addr),
            self.padded.eq(padded),
            self.acc_addr.eq(acc_base + slot),
            # Across tiles of one reduction, only the first tile starts from zero and only the last emits.
            self.first_k.eq(first_k & cfg.acc_init), self.last_k.eq(last_k & cfg.acc_emit),
            self.bank.eq(bank),
        ]

        # Values for the next fold's first pixel, chosen by which fold counters wrap.
        next_cg_plane = Mux(cg_wrap, 0, cg_plane + cfg.plane)
        next_s_w0 = Mux(cg_wrap, Mux(s_wrap, -cfg.pad_w, s_w0 + 1), s_w0)
        rs_wrap = cg_wrap & s_wrap
        next_r_h0 = Mux(rs_wrap, Mux(r_wrap, -cfg.pad_h, r_h0 + 1), r_h0)
        next_r_row = Mux(rs_wrap, Mux(r_wrap, -cfg.pad_row_offset, r_row + cfg.in_w), r_row)
        # ... registered every cycle (like `last_fold`: valid from the cycle after the fold counters move, and
        # a fold ends no earlier than that), so a fold change does not chain compares, muxes and adders.
        nf_cg_plane, nf_s_w0, nf_r_h0, nf_r_row = (pos(f"nf_{n}") for n in ("cg_plane", "s_w0", "r_h0", "r_row"))
        m.d.sync += [nf_cg_plane.eq(next_cg_plane), nf_s_w0.eq(next_s_w0), nf_r_h0.eq(next_r_h0),
                     nf_r_row.eq(next_r_row)]
        # The last output column of the row, registered with the column counter.
        f_last = Signal()

        with m.If(self.start):
            m.d.sync += [
                self.busy.eq(1), self.done.eq(0), pre.eq(1),
                mf.eq(0), r.eq(0), s.eq(0), cg.eq(0), e.eq(0), f.eq(0), f_last.eq(cfg.out_w == 1), acc_base.eq(0),
                cg_plane.eq(0), r_h0.eq(-cfg.pad_h), s_w0.eq(-cfg.pad_w), r_row.eq(-cfg.pad_row_offset),
            ]
            goto_slot(0)
            move_position(-cfg.pad_h, -cfg.pad_w, -cfg.pad_row_offset)
            goto_position(-cfg.pad_h, -cfg.pad_w, -cfg.pad_row_offset)
            m.d.comb += next_valid.eq(0)
        with m.Elif(self.busy):
            # The comb `next_*` values are what an enabled cycle would do; the registers move only with `en`.
            with m.If(pre):
                m.d.comb += next_valid.eq(in_pixels)
            with m.Elif(fold_end):
                m.d.comb += next_valid.eq(~last_fold)
                goto_position(nf_r_h0, nf_s_w0, nf_cg_plane + nf_r_row)
            with m.Else():
                m.d.comb += next_valid.eq(slot + 1 < cfg.pixels)
                with m.If(f_last):
                    goto_position(h + cfg.stride_h, s_w0, row_addr + cfg.row_step)
                with m.Else():
                    goto_position(h, w + cfg.stride_w, row_addr)
        with m.If(~self.start & self.en & self.busy):
            with m.If(pre):
                m.d.sync += pre.eq(0)
            with m.Elif(fold_end):
                m.d.sync += [e.eq(0), f.eq(0), f_last.eq(cfg.out_w == 1), bank.eq(~bank)]
                goto_slot(0)
                with m.If(last_fold):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                m.d.sync += [
                    cg.eq(Mux(cg_wrap, 0, cg + 1)), cg_plane.eq(nf_cg_plane),
                    s_w0.eq(nf_s_w0), r_h0.eq(nf_r_h0), r_row.eq(nf_r_row),
                ]
                move_position(nf_r_h0, nf_s_w0, nf_cg_plane + nf_r_row)
                with m.If(cg_wrap):
                    m.d.sync += s.eq(Mux(s_wrap, 0, s + 1))
                    with m.If(s_wrap):
                        m.d.sync += r.eq(Mux(r_wrap, 0, r + 1))
                        with m.If(r_wrap):
                            m.d.sync += [mf.eq(mf + 1), acc_base.eq(acc_base + cfg.acc_stride)]
            with m.Else():
                goto_slot(slot + 1)
                with m.If(f_last):
                    m.d.sync += [f.eq(0), f_last.eq(cfg.out_w == 1), e.eq(e + 1)]
                    move_position(h + cfg.stride_h, s_w0, row_addr + cfg.row_step)
                with m.Else():
                    m.d.sync += [f.eq(f + 1), f_last.eq(f + 2 == cfg.out_w)]
                    move_position(h, w + cfg.stride_w, row_addr)

        # Weight loader: triggered on the pre-slot and on the last slot of every fold but the last; then one
        # row per enabled cycle. fold_period >= rows, so a load ends before the next trigger.
        load_count = Signal(range(spec.rows))
        load_bank = Signal()
        trigger = self.busy & (pre | (fold_end & ~last_fold))
        trigger_bank = Mux(pre, bank, ~bank)
        m.d.comb += [
            self.load_en.eq(trigger | (load_count != 0)),
            self.load_row.eq(load_count),
            self.load_bank.eq(Mux(trigger, trigger_bank, load_bank)),
        ]
        with m.If(self.start):
            m.d.sync += load_count.eq(0)
        with m.Elif(self.en & self.load_en):
            m.d.sync += load_count.eq(Mux(load_count == spec.rows - 1, 0, load_count + 1))
            with m.If(trigger):
                m.d.sync += load_bank.eq(trigger_bank)

        # `load_en` after the next edge if this cycle is enabled (or starts). A pre-slot or a fold end is
        # followed by slot 0 (no trigger: fold_period >= 2); another slot by slot + 1, in the same fold.
        next_count_busy = Mux(self.load_en, Mux(load_count == spec.rows - 1, 0, load_count + 1), load_count) != 0
        next_trigger = (slot + 1 == cfg.fold_period - 1) & ~(last_k & (mf == cfg.m_folds - 1))
        with m.If(self.start):
            m.d.comb += self.next_load_en.eq(1)
        with m.Elif(self.busy & (pre | fold_end)):
            m.d.comb += self.next_load_en.eq(next_count_busy)
        with m.Elif(self.busy):
            m.d.comb += self.next_load_en.eq(next_trigger | next_count_busy)
        with m.Else():
            m.d.comb += self.next_load_en.eq(self.load_en)
        return m
