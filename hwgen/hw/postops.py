"""The post-op pipeline: bias, requantization, ReLU and 2x2 pooling on the accumulator's output stream.

One pass: every output beat goes through the chain once, on its way out; nothing is written back. Semantics are
`hwgen.postops.apply`, bit for bit (the module docstring there defines the rounding and the widths).

Stages (one register each; lane ``j`` of every stage is channel ``mf*cols + j``)::

    i ─► S1 beat + params ─► S2 x = acc + bias ─► S3-S6 p = x * multiplier ─► S7 sh = 2p >> shift
      ─► S8 r = (sh + 1) >> 1, under/over ─► S9 y = clamp(r) ─► S10 horizontal pair ─► S11 window ─► O ─► o

- S1 registers the beat while the params memory (indexed by the beat's m-fold) is read; S2 adds the bias (or
  0), widening to ``max(acc_bits, 32) + 1``; S3-S6 is the multiply, a `WideMultiplier` (18-bit tiles on hard
  multipliers with their own registers, then two registered levels of partial sums); S7 is the barrel
  shifter and S8 the rounding of ``round_shift(p, s) = ((2p >> s) + 1) >> 1``, beside the saturation tests
  made on the shifted value (``(sh + 1) >> 1 < lo`` exactly when ``sh < 2 lo - 1``, ``> hi`` when
  ``sh > 2 hi``), so S9's clamp is a multiplexer; the bounds (from the output type, raised to 0 by ReLU) are
  registered as the beat enters S7.
- Pooling in one pass: a register holds the even column's value; on the odd column the horizontal pair
  (max, or sum) is formed and registered (S10); on even rows it is written to a line buffer (``max_out_w // 2``
  entries of ``cols`` lanes, `lib.memory`), on odd rows it is combined with the entry of the row above into
  the window (S11, read issued as the beat enters S10) and emitted (average: ``(sum4 + 2) >> 2`` on the way
  out). Every adder and compare has a cycle of its own: the chain is built for the array's clock.
- Without requantization the multiplier is forced to 1 and the shift to 0, and the configuration sets the
  clamp to the accumulator range, so one datapath serves every combination.

Timing: `LATENCY` = 12. A beat accepted on ``i`` in cycle ``t`` (``i.valid & i.ready``) is presented on ``o``
in cycle ``t + 12`` when no stall intervenes; with pooling, the window's output appears 12 cycles after its
bottom-right input. Throughput is one beat per cycle while ``o`` is ready (pooling emits one beat per 2x2
window, i.e. per four kept inputs). The pipeline stalls as a whole: ``i.ready = ~o.valid | o.ready``
(combinational from ``o.ready``, independent of ``i.valid``), so it holds up to 12 beats and never drops one.

Position in the layer comes from counters over accepted beats (``f``, then ``e``, then m-fold, wrapping back to
zero after ``m_folds * out_h * out_w`` beats). ``cfg`` and ``bank`` describe the command whose beats arrive on
``i``; they are sampled with each beat and ride down the stages with it, so consecutive commands with different
settings follow each other without a drain (the top switches them at the exact beat boundary). Parameters are
written through ``params_en``/``params_addr``/``params_data`` into two banks of ``max_m_folds`` words (bank ``b``
holds m-fold ``k`` at ``b * max_m_folds + k``), so the next command's parameters load while this one's beats
still read the other bank.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..postops import POOL_CODES, config_layout, params_layout
from ..spec import AcceleratorSpec
from .wide_multiplier import WideMultiplier

__all__ = ["PostOpPipeline"]


class PostOpPipeline(wiring.Component):
    """Post-op chain for ``spec``'s output beats.

    ``max_m_folds``: entries of the parameter memory (the most m-folds a layer with bias or requantization may
    have). ``max_out_w``: the widest layer output (``out_w``, before pooling) that can be pooled; the line buffer
    holds ``max_out_w // 2`` words. ``dims_bits``: width of the ``cfg`` fields ``out_h``, ``out_w``,
    ``m_folds`` (default: the accelerator's configuration field width).

    Ports: ``cfg`` (`hwgen.postops.config_layout`), ``params`` (stream of `hwgen.postops.params_layout` beats,
    plain unsigned), ``i`` and ``o`` (streams of ``cols`` lanes of ``acc_bits``), ``busy`` (a beat is in
    flight).
    """

    LATENCY = 12

    def __init__(self, spec, *, max_m_folds, max_out_w=None, dims_bits=None):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"PostOpPipeline needs an AcceleratorSpec, not {spec!r}")
        if not isinstance(max_m_folds, int) or isinstance(max_m_folds, bool) or max_m_folds < 1:
            raise ValueError(f"max_m_folds must be a positive integer, not {max_m_folds!r}")
        max_out_w = spec.acc_depth if max_out_w is None else max_out_w
        if not isinstance(max_out_w, int) or isinstance(max_out_w, bool) or max_out_w < 2:
            raise ValueError(f"max_out_w must be an integer >= 2 (the widest output to pool), not {max_out_w!r}")
        self.spec = spec
        self.max_m_folds = max_m_folds
        self.max_out_w = max_out_w
        self.cfg_layout = config_layout(spec, dims_bits=dims_bits)
        self.params_layout = params_layout(spec.cols)
        super().__init__({
            "cfg": In(self.cfg_layout),           # of the command whose beats arrive on `i`
            "bank": In(1),                        # which parameter bank those beats use
            # Parameter writes: bank b holds m-fold k at address b * max_m_folds + k.
            "params_en": In(1), "params_addr": In(range(2 * max_m_folds)),
            "params_data": In(unsigned(self.params_layout.size)),
            "i": In(stream.Signature(unsigned(spec.acc_word_bits))),
            "o": Out(stream.Signature(unsigned(spec.acc_word_bits))),
            "busy": Out(1),
        })

    @property
    def latency(self):
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        spec, cfg = self.spec, self.cfg
        cols, acc_bits = spec.cols, spec.acc_type.bits
        x_bits = max(acc_bits, 32) + 1          # acc + bias, exact
        p_bits = x_bits + 32                    # x * multiplier, exact
        lb_bits = acc_bits + 1                  # a horizontal pair: max, or sum of two

        advance = Signal()                      # every stage register moves on (the whole pipe stalls at once)
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        accept = self.i.valid & advance

        # Parameter memory: two banks of one word per m-fold, so the next command's parameters load while
        # this command's beats still use the other bank.
        m.submodules.params_mem = params_mem = memory.Memory(
            shape=unsigned(self.params_layout.size), depth=2 * self.max_m_folds, init=[])
        params_write, params_read = params_mem.write_port(), params_mem.read_port()
        m.d.comb += [params_write.addr.eq(self.params_addr), params_write.data.eq(self.params_data),
                     params_write.en.eq(self.params_en)]

        # Position of the next input beat.
        f, e, mf = Signal.like(cfg.out_w), Signal.like(cfg.out_h), Signal.like(cfg.m_folds)
        last_f, last_e = f + 1 >= cfg.out_w, e + 1 >= cfg.out_h
        with m.If(accept):
            m.d.sync += f.eq(Mux(last_f, 0, f + 1))
            with m.If(last_f):
                m.d.sync += e.eq(Mux(last_e, 0, e + 1))
                with m.If(last_e):
                    m.d.sync += mf.eq(Mux(mf + 1 >= cfg.m_folds, 0, mf + 1))
        m.d.comb += [params_read.addr.eq(mf + Mux(self.bank, self.max_m_folds, 0)), params_read.en.eq(advance)]

        # Pooling tags ride beside the data: odd row/column and the line-buffer entry (the column pair). Floor
        # semantics need no tag: an odd E's last row and an odd F's last column have even indices, so they only
        # fill the line buffer or the held value, and a later beat overwrites both before any use.
        lb_depth = max(self.max_out_w // 2, 2)
        # The command's settings ride with every beat too: commands follow each other without a drain.
        tag_layout = data.StructLayout({"row_odd": 1, "col_odd": 1, "pair": range(lb_depth),
                                        "bias": 1, "requant": 1, "relu": 1, "pool": 2,
                                        "out_bits": cfg.out_bits.shape(), "out_signed": 1})
        tag = Signal(tag_layout)
        m.d.comb += [tag.row_odd.eq(e[0]), tag.col_odd.eq(f[0]), tag.pair.eq(f >> 1),
                     tag.bias.eq(cfg.bias), tag.requant.eq(cfg.requant), tag.relu.eq(cfg.relu),
                     tag.pool.eq(cfg.pool), tag.out_bits.eq(cfg.out_bits), tag.out_signed.eq(cfg.out_signed)]

        def stage(name, shape):
            return Signal(shape, name=name)

        # Stage k (1-based) of the beat: its valid flag and tags are valid[k - 1], tags[k - 1].
        stages = self.LATENCY - 1
        valid = [stage(f"s{k}_valid", 1) for k in range(1, stages + 1)]
        tags = [stage(f"s{k}_tag", tag_layout) for k in range(1, stages + 1)]
        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i.valid), tags[0].eq(tag)]
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, stages)]
            m.d.sync += [tags[k].eq(tags[k - 1]) for k in range(1, stages)]
        m.d.comb += self.busy.eq(Cat(*valid, self.o.valid).any())

        def delayed(name, value, cycles):
            """``value`` through ``cycles`` registers that advance with the pipe."""
            for k in range(cycles):
                reg = stage(f"{name}_{k}", value.shape())
                with m.If(advance):
                    m.d.sync += reg.eq(value)
                value = reg
            return value

        # S1: the beat; the params memory answers in the same cycle.
        s1_beat = stage("s1_beat", unsigned(spec.acc_word_bits))
        with m.If(advance):
            m.d.sync += s1_beat.eq(self.i.payload)
        params = data.View(self.params_layout, params_read.data)
        s1 = tags[0]

        # Saturation bounds of the beat entering S7 (one set for all lanes), registered with it: lo and hi,
        # and the bounds on the shifted value S8 compares (see there).
        s6 = tags[5]
        unused_bits = Signal(range(acc_bits))          # acc_bits - out_bits (host checks 1 <= out_bits <= acc_bits)
        out_umax = Signal(unsigned(acc_bits))           # (1 << out_bits) - 1
        lo_now, hi_now = Signal(signed(acc_bits + 1)), Signal(signed(acc_bits + 1))
        m.d.comb += [unused_bits.eq(acc_bits - s6.out_bits),
                     out_umax.eq(Const((1 << acc_bits) - 1, acc_bits) >> unused_bits),
                     hi_now.eq(Mux(s6.out_signed, out_umax >> 1, out_umax)),
                     lo_now.eq(Mux(s6.relu, 0, Mux(s6.out_signed, -(out_umax >> 1) - 1, 0)))]
        lo7, hi7 = stage("s7_lo", signed(acc_bits + 1)), stage("s7_hi", signed(acc_bits + 1))
        below7, above7 = stage("s7_below", signed(acc_bits + 3)), stage("s7_above", signed(acc_bits + 3))
        with m.If(advance):
            m.d.sync += [lo7.eq(lo_now), hi7.eq(hi_now), below7.eq((lo_now << 1) - 1), above7.eq(hi_now << 1)]
        lo8, hi8 = delayed("s8_lo", lo7, 1), delayed("s8_hi", hi7, 1)

        s9, s10 = tags[8], tags[9]
        pair_avg = s9.pool == POOL_CODES["avg"]          # the pair is formed entering S10
        pool_on = s10.pool != POOL_CODES["none"]
        is_avg = s10.pool == POOL_CODES["avg"]            # the window is formed entering S11
        s11 = tags[10]
        out_pool_on = s11.pool != POOL_CODES["none"]      # and divided on the way out
        out_is_avg = s11.pool == POOL_CODES["avg"]

        # Line buffer of horizontal pairs from even rows; read issued as a beat enters S10.
        m.submodules.line_buffer = line_buffer = memory.Memory(
            shape=unsigned(cols * lb_bits), depth=lb_depth, init=[])
        lb_write, lb_read = line_buffer.write_port(), line_buffer.read_port()
        m.d.comb += [lb_read.addr.eq(s9.pair), lb_read.en.eq(advance)]
        m.d.comb += [lb_write.addr.eq(s10.pair),
                     lb_write.en.eq(advance & valid[9] & pool_on & s10.col_odd & ~s10.row_odd)]

        out_lanes, lb_lanes = [], []
        for j in range(cols):
            # S2: bias add, and the multiplier operands (bypassed to *1 >> 0 without requantization).
            lane = params[j]
            acc = s1_beat[j * acc_bits:(j + 1) * acc_bits].as_signed()
            x, mult = stage(f"s2_x_{j}", signed(x_bits)), stage(f"s2_mult_{j}", signed(32))
            shift2 = stage(f"s2_shift_{j}", unsigned(6))
            with m.If(advance):
                m.d.sync += [x.eq(acc + Mux(s1.bias, lane.bias, 0)),
                             mult.eq(Mux(s1.requant, lane.multiplier, 1)),
                             shift2.eq(Mux(s1.requant, lane.shift, 0))]
            # S3-S6: the multiply, tiled over hard multipliers with its partial sums registered.
            multiplier = WideMultiplier(a_shape=x.shape(), b_shape=mult.shape())
            m.submodules[f"requant_multiplier_{j}"] = multiplier
            m.d.comb += [multiplier.a.eq(x), multiplier.b.eq(mult), multiplier.en.eq(advance)]
            p = multiplier.p
            assert len(p) <= p_bits
            shift6 = delayed(f"shift_{j}", shift2, WideMultiplier.LATENCY)
            # S7: sh = (2p) >> s (arithmetic), so that round_shift(p, s) = (sh + 1) >> 1.
            sh = stage(f"s7_sh_{j}", signed(p_bits + 1))
            with m.If(advance):
                m.d.sync += sh.eq((p << 1) >> shift6)
            # S8: the rounded value's low bits (all a value in range has), and the saturation tests made on
            # sh itself: (sh + 1) >> 1 < lo  <=>  sh < 2 lo - 1, and  > hi  <=>  sh > 2 hi.
            r = stage(f"s8_r_{j}", signed(acc_bits))
            under, over = stage(f"s8_under_{j}", 1), stage(f"s8_over_{j}", 1)
            with m.If(advance):
                m.d.sync += [r.eq(((sh[:acc_bits + 1] + 1) >> 1)[:acc_bits]),
                             under.eq(sh < below7), over.eq(sh > above7)]
            # S9: saturate to the output type; ReLU raised the lower bound to 0.
            y = stage(f"s9_y_{j}", signed(acc_bits))
            with m.If(advance):
                m.d.sync += y.eq(Mux(under, lo8, Mux(over, hi8, r)))

            # Pooling: the horizontal pair registered into S10 (beside the value itself); the window, from the
            # pair and the line buffer's entry of the row above, into S11; averaged on the way out.
            held = stage(f"pool_held_{j}", signed(acc_bits))      # the even column's value
            with m.If(advance & valid[8] & ~s9.col_odd):
                m.d.sync += held.eq(y)
            y10 = stage(f"s10_y_{j}", signed(acc_bits))
            pair = stage(f"s10_pair_{j}", signed(lb_bits))
            with m.If(advance):
                m.d.sync += [y10.eq(y), pair.eq(Mux(pair_avg, held + y, Mux(held > y, held, y)))]
            above = lb_read.data[j * lb_bits:(j + 1) * lb_bits].as_signed()
            y11 = stage(f"s11_y_{j}", signed(acc_bits))
            window = stage(f"s11_window_{j}", signed(lb_bits + 1))
            with m.If(advance):
                m.d.sync += [y11.eq(y10), window.eq(Mux(is_avg, above + pair, Mux(above > pair, above, pair)))]
            pooled = Mux(out_is_avg, (window + 2) >> 2, window)
            out_lanes.append(Mux(out_pool_on, pooled, y11)[:acc_bits])
            lb_lanes.append(pair)
        m.d.comb += lb_write.data.eq(Cat(*lb_lanes))

        emit = ~out_pool_on | (s11.col_odd & s11.row_odd)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(valid[10] & emit), self.o.payload.eq(Cat(*out_lanes))]
        return m
