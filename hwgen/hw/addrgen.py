"""The fold sequencer and activation address generator (implicit im2col).

Walks ``for mf: for r: for s: for cg: for slot in fold_period`` one slot per enabled cycle, and for each pixel
slot computes the activation-buffer address of ``I[cg*rows.., e*sh + r - ph, f*sw + s - pw]`` with adders only
(no multipliers), flagging out-of-bounds positions as padding instead of storing zeros. It also runs the weight
loader: one weight row per cycle (popped from the weight FIFO in stream order), starting one slot before each
fold. Golden model: `LayerSchedule.slots`.

Built for Fmax: every output is a register or one adder after registers, and every next-state value is one
adder or one compare (against constants registered from ``cfg``) and a multiplexer away from registers. The
address moves incrementally (``+ stride_w`` along a row; the next row's first address is kept beside it), the
fold counters carry their wrap flags, and the next fold's start position is registered ahead (a fold lasts at
least two slots). ``padded`` is the one output that is logic after registers: the bounds check of the
registered position (the slot queue registers it).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import config_layout, field_bits

__all__ = ["FoldSequencer"]


class FoldSequencer(wiring.Component):
    """``start`` (one cycle, with ``cfg`` valid; ``cfg`` stays valid until ``done``) begins a layer; then every
    cycle with ``en`` issues one slot.

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
        })

    def elaborate(self, platform):
        m = Module()
        cfg, spec = self.cfg, self.spec
        sbits = self.addr_bits
        pos = lambda name: Signal(signed(sbits), name=name)  # noqa: E731
        count = lambda name: Signal(range(1 << field_bits(spec)), name=name)  # noqa: E731

        # Constants of the command, registered from cfg (valid from the cycle after `start`, before the first
        # slot moves on): the bounds the next position is compared with, and the last indices.
        period_m2, pixels_m1, out_w_m2 = pos("period_m2"), pos("pixels_m1"), pos("out_w_m2")
        cg_m2, s_m2, r_m2, mf_m2 = pos("cg_m2"), pos("s_m2"), pos("r_m2"), pos("mf_m2")
        first_h, first_w, first_addr = pos("first_h"), pos("first_w"), pos("first_addr")   # fold 0, slot 0
        m.d.sync += [period_m2.eq(cfg.fold_period - 2), pixels_m1.eq(cfg.pixels - 1), out_w_m2.eq(cfg.out_w - 2),
                     cg_m2.eq(cfg.c_groups - 2), s_m2.eq(cfg.k_w - 2), r_m2.eq(cfg.k_h - 2),
                     mf_m2.eq(cfg.m_folds - 2), first_h.eq(-cfg.pad_h), first_w.eq(-cfg.pad_w),
                     first_addr.eq(-cfg.pad_row_offset - cfg.pad_w)]

        def outside(value, size):
            return (value < 0) | (value >= size)

        pre = Signal()
        slot = count("slot")
        mf, r, s, cg = (count(n) for n in ("mf", "r", "s", "cg"))
        f = count("f")
        bank = Signal()      # kept across commands: a fold always loads the bank the previous fold did not use
        acc_base = Signal.like(self.acc_addr)
        # The fold's start position, and its first address kept three ways: for this fold (cg*plane + r*in_w
        # + s, all less the padding offsets), for cg = 0 (rs_first) and for cg = s = 0 (r_first_addr), so
        # that the next fold's first address is one adder from registers whichever counters wrap.
        r_h0, s_w0 = pos("r_h0"), pos("s_w0")
        fold_first, rs_first, r_first_addr = pos("fold_first"), pos("rs_first"), pos("r_first_addr")
        # The current position, its address and the address of its row's first pixel.
        h, w, addr, row_first = pos("h"), pos("w"), pos("addr"), pos("row_first")
        fold_end, in_pixels, f_last = Signal(name="fold_end"), Signal(name="in_pixels"), Signal(name="f_last")
        # busy & ~pre & fold_end as a flip-flop of its own (set beside them from their next values): the
        # registers that move only at a fold change then have the clock enable start | (en & fold_change), one
        # gate (the 8x8's critical path at seed 1: fold_end -> three gates -> s_w0's clock enable, 8.9 ns).
        fold_change = Signal(name="fold_change")

        # Each fold counter's "last value" and "first value" flags, and their products, registered with the
        # counters: a fold change is one clock enable and multiplexers of flags.
        flag_names = ("cg_wrap", "s_wrap", "r_wrap", "mf_last", "cg_first", "s_first", "r_first",
                      "rs_wrap", "last_k", "last_fold", "first_k")
        flags = {name: Signal(name=name) for name in flag_names}
        cg_wrap, s_wrap, r_wrap, mf_last = (flags[n] for n in ("cg_wrap", "s_wrap", "r_wrap", "mf_last"))
        rs_wrap, last_k, last_fold, first_k = (flags[n] for n in ("rs_wrap", "last_k", "last_fold", "first_k"))

        # The next fold's start, registered every cycle from the fold counters (valid a cycle after they move).
        # Each counter at its last value but one, and each size 1, registered (valid like the nf_* values).
        before_last = [Signal(name=f"{n}_before_last") for n in ("cg", "s", "r", "mf")]
        sizes_1 = [Signal(name=f"{n}_size_1") for n in ("cg", "s", "r", "mf")]
        m.d.sync += [before_last[0].eq(cg == cg_m2), before_last[1].eq(s == s_m2), before_last[2].eq(r == r_m2),
                     before_last[3].eq(mf == mf_m2), sizes_1[0].eq(cfg.c_groups == 1), sizes_1[1].eq(cfg.k_w == 1),
                     sizes_1[2].eq(cfg.k_h == 1), sizes_1[3].eq(cfg.m_folds == 1)]
        nf_s_w0, nf_r_h0 = pos("nf_s_w0"), pos("nf_r_h0")
        nf_first, nf_rs_first, nf_r_first_addr = pos("nf_first"), pos("nf_rs_first"), pos("nf_r_first_addr")
        m.d.sync += [
            nf_s_w0.eq(Mux(cg_wrap, Mux(s_wrap, -cfg.pad_w, s_w0 + 1), s_w0)),
            nf_r_h0.eq(Mux(rs_wrap, Mux(r_wrap, -cfg.pad_h, r_h0 + 1), r_h0)),
        ]
        # The next fold's first addresses, each a base and an increment chosen by the wrap flags, then one
        # adder. With fold_period >= 3 (any array with 3 or more rows or columns) a fold change is at least 3
        # cycles after the last one, so base and increment get a register of their own (the multiplexers and
        # the adder are then in different cycles); with fold_period 2 they are one cycle.
        staged_next = max(spec.rows, spec.cols) >= 3

        def next_address(target, choices, default):
            """``target`` = base + increment of the first ``(condition, base, increment)`` that holds."""
            base, increment = default
            for condition, choice_base, choice_increment in reversed(choices):
                base, increment = Mux(condition, choice_base, base), Mux(condition, choice_increment, increment)
            if staged_next:
                base_reg, increment_reg = pos(f"{target.name}_base"), pos(f"{target.name}_increment")
                m.d.sync += [base_reg.eq(base), increment_reg.eq(increment)]
                base, increment = base_reg, increment_reg
            m.d.sync += target.eq(base + increment)

        # cg + 1 (the next channel group's plane), else s + 1 (cg = 0), else r + 1 (s = cg = 0), else fold 0.
        next_address(nf_first, [(~cg_wrap, fold_first, cfg.plane), (~s_wrap, rs_first, 1),
                                (~r_wrap, r_first_addr, cfg.in_w)], (first_addr, 0))
        next_address(nf_rs_first, [(~cg_wrap, rs_first, 0), (~s_wrap, rs_first, 1),
                                   (~r_wrap, r_first_addr, cfg.in_w)], (first_addr, 0))
        next_address(nf_r_first_addr, [(~rs_wrap, r_first_addr, 0), (~r_wrap, r_first_addr, cfg.in_w)],
                     (first_addr, 0))

        m.d.comb += [
            self.slot_valid.eq(self.busy & ~pre & in_pixels),
            self.act_addr.eq(addr[:len(self.act_addr)]),
            self.padded.eq(outside(h, cfg.in_h) | outside(w, cfg.in_w)),
            self.acc_addr.eq(acc_base + slot),
            # Across tiles of one reduction, only the first tile starts from zero and only the last emits.
            self.first_k.eq(first_k & cfg.acc_init), self.last_k.eq(last_k & cfg.acc_emit),
            self.bank.eq(bank),
        ]

        def set_flags(cg_wrap_, s_wrap_, r_wrap_, mf_last_, cg_first_, s_first_, r_first_):
            rs_wrap_ = cg_wrap_ & s_wrap_
            last_k_ = rs_wrap_ & r_wrap_
            m.d.sync += [flags[name].eq(value) for name, value in zip(flag_names, (
                cg_wrap_, s_wrap_, r_wrap_, mf_last_, cg_first_, s_first_, r_first_, rs_wrap_, last_k_,
                last_k_ & mf_last_, cg_first_ & s_first_ & r_first_))]

        def start_fold(h0, w0, first):
            m.d.sync += [slot.eq(0), f.eq(0), h.eq(h0), w.eq(w0), addr.eq(first), row_first.eq(first)]

        with m.If(self.start):
            m.d.sync += [
                self.busy.eq(1), self.done.eq(0), pre.eq(1),
                mf.eq(0), r.eq(0), s.eq(0), cg.eq(0), acc_base.eq(0),
                r_h0.eq(-cfg.pad_h), s_w0.eq(-cfg.pad_w),
                # slot 0 of fold 0: fold_period >= 2, so it does not end the fold
                fold_end.eq(0), fold_change.eq(0), in_pixels.eq(cfg.pixels != 0), f_last.eq(cfg.out_w == 1),
            ]
        with m.Elif(self.en & self.busy):
            with m.If(pre):
                # slot 0 of fold 0 follows (from the registered constants: valid from the cycle after start)
                m.d.sync += [pre.eq(0), fold_change.eq(fold_end)]
                # The fold counters' flags for fold 0, from the sizes registered from cfg (not at `start`
                # from cfg's compares: the 8x8's critical path at seed 4, `cfg` -> the four size compares ->
                # `last_fold`, 6.74 ns). Nothing reads them before the pre-slot ends: slots are issued after
                # it, and the flags are used at a fold change.
                set_flags(*sizes_1, 1, 1, 1)
                start_fold(first_h, first_w, first_addr)
                m.d.sync += [fold_first.eq(first_addr), rs_first.eq(first_addr), r_first_addr.eq(first_addr)]
            with m.Elif(fold_change):
                m.d.sync += [f_last.eq(cfg.out_w == 1), bank.eq(~bank), fold_end.eq(0), fold_change.eq(0),
                             in_pixels.eq(1)]
                start_fold(nf_r_h0, nf_s_w0, nf_first)
            with m.Else():
                m.d.sync += [slot.eq(slot + 1), fold_end.eq(slot == period_m2), fold_change.eq(slot == period_m2),
                             in_pixels.eq(slot < pixels_m1)]
                with m.If(f_last):
                    # Next row: h moves down a stride, w back to the fold's first column.
                    m.d.sync += [f.eq(0), f_last.eq(cfg.out_w == 1), h.eq(h + cfg.stride_h), w.eq(s_w0),
                                 addr.eq(row_first + cfg.row_step), row_first.eq(row_first + cfg.row_step)]
                with m.Else():
                    m.d.sync += [f.eq(f + 1), f_last.eq(f == out_w_m2), w.eq(w + cfg.stride_w),
                                 addr.eq(addr + cfg.stride_w)]
        # The registers that move only at a fold change (fold_change implies busy and not pre; start, above,
        # takes precedence).
        with m.If(~self.start & self.en & fold_change):
            with m.If(last_fold):
                m.d.sync += [self.busy.eq(0), self.done.eq(1)]
            m.d.sync += [s_w0.eq(nf_s_w0), r_h0.eq(nf_r_h0), fold_first.eq(nf_first), rs_first.eq(nf_rs_first),
                         r_first_addr.eq(nf_r_first_addr)]
            # cg counts every fold, s when cg wraps, r when both do, mf when all three do; each wrap flag
            # is decided from the counter's old value (== last - 1), or from the size after a wrap.
            m.d.sync += [cg.eq(Mux(cg_wrap, 0, cg + 1)),
                         s.eq(Mux(cg_wrap, Mux(s_wrap, 0, s + 1), s)),
                         r.eq(Mux(rs_wrap, Mux(r_wrap, 0, r + 1), r)),
                         mf.eq(Mux(last_k, mf + 1, mf)),
                         acc_base.eq(Mux(last_k, acc_base + cfg.acc_stride, acc_base))]
            set_flags(Mux(cg_wrap, sizes_1[0], before_last[0]),
                      Mux(cg_wrap, Mux(s_wrap, sizes_1[1], before_last[1]), s_wrap),
                      Mux(rs_wrap, Mux(r_wrap, sizes_1[2], before_last[2]), r_wrap),
                      Mux(last_k, before_last[3], mf_last),
                      cg_wrap, Mux(cg_wrap, s_wrap, flags["s_first"]), Mux(rs_wrap, r_wrap, flags["r_first"]))

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
        return m
