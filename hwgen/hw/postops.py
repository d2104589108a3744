"""The post-op pipeline: bias, requantization, ReLU and 2x2 pooling on the accumulator's output stream.

One pass: every output beat goes through the chain once, on its way out; nothing is written back. Semantics are
`hwgen.postops.apply`, bit for bit (the module docstring there defines the rounding and the widths).

Stages (one register each; lane ``j`` of every stage is channel ``mf*cols + j``)::

    i ─► S1 beat + params ─► S2 x = acc + bias ─► S3 p = x * multiplier ─► S4 r = round_shift(p, shift)
      ─► S5 y = clamp(r) (saturation and ReLU in one clamp) ─► S6 horizontal pair ─► O pooled / passed beat ─► o

- S1 registers the beat while the params memory (indexed by the beat's m-fold) is read; S2 adds the bias (or
  0), widening to ``max(acc_bits, 32) + 1``; S3 is the registered multiply (registered operands, registered
  product: DSP-friendly); S4 is the barrel shifter with rounding, ``((2p >> s) + 1) >> 1`` (equal to
  ``round_shift``); S5 clamps to the output type's range, raised to 0 by ReLU.
- Pooling in one pass: a register holds the even column's value; on the odd column the horizontal pair
  (max, or sum) is formed and registered (S6; a stage of its own so that the pair's and the window's adders
  are not in series); on even rows it is written to a line buffer (``max_out_w // 2`` entries of ``cols``
  lanes, `lib.memory`), on odd rows it is combined with the entry of the row above and emitted (average:
  ``(sum4 + 2) >> 2``). The line buffer read is issued one stage ahead, when the beat enters S6.
- Without requantization the multiplier is forced to 1 and the shift to 0, and the configuration sets the
  clamp to the accumulator range, so one datapath serves every combination.

Timing: `LATENCY` = 7. A beat accepted on ``i`` in cycle ``t`` (``i.valid & i.ready``) is presented on ``o`` in
cycle ``t + 7`` when no stall intervenes; with pooling, the window's output appears 7 cycles after its
bottom-right input. Throughput is one beat per cycle while ``o`` is ready (pooling emits one beat per 2x2
window, i.e. per four kept inputs). The pipeline stalls as a whole: ``i.ready = ~o.valid | o.ready``
(combinational from ``o.ready``, independent of ``i.valid``), so it holds up to 7 beats and never drops one.

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

    LATENCY = 7

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

        valid = [stage(f"s{k}_valid", 1) for k in range(1, 7)]
        tags = [stage(f"s{k}_tag", tag_layout) for k in range(1, 7)]
        with m.If(advance):
            m.d.sync += [valid[0].eq(self.i.valid), tags[0].eq(tag)]
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, 6)]
            m.d.sync += [tags[k].eq(tags[k - 1]) for k in range(1, 6)]
        m.d.comb += self.busy.eq(Cat(*valid, self.o.valid).any())

        # S1: the beat; the params memory answers in the same cycle.
        s1_beat = stage("s1_beat", unsigned(spec.acc_word_bits))
        with m.If(advance):
            m.d.sync += s1_beat.eq(self.i.payload)
        params = data.View(self.params_layout, params_read.data)

        # Saturation bounds from the output type of the beat in S4 (they are used entering S5).
        s4 = tags[3]
        unused_bits = Signal(range(acc_bits))          # acc_bits - out_bits (host checks 1 <= out_bits <= acc_bits)
        out_umax = Signal(unsigned(acc_bits))           # (1 << out_bits) - 1
        lo, hi = Signal(signed(acc_bits + 1)), Signal(signed(acc_bits + 1))
        m.d.comb += [unused_bits.eq(acc_bits - s4.out_bits),
                     out_umax.eq(Const((1 << acc_bits) - 1, acc_bits) >> unused_bits),
                     hi.eq(Mux(s4.out_signed, out_umax >> 1, out_umax)),
                     lo.eq(Mux(s4.relu, 0, Mux(s4.out_signed, -(out_umax >> 1) - 1, 0)))]

        s5, s6 = tags[4], tags[5]
        pair_avg = s5.pool == POOL_CODES["avg"]          # the pair is formed in S5
        pool_on = s6.pool != POOL_CODES["none"]          # the window and the output in S6
        is_avg = s6.pool == POOL_CODES["avg"]
        s1 = tags[0]

        # Line buffer of horizontal pairs from even rows; read issued as a beat enters S6.
        m.submodules.line_buffer = line_buffer = memory.Memory(
            shape=unsigned(cols * lb_bits), depth=lb_depth, init=[])
        lb_write, lb_read = line_buffer.write_port(), line_buffer.read_port()
        m.d.comb += [lb_read.addr.eq(s5.pair), lb_read.en.eq(advance)]
        m.d.comb += [lb_write.addr.eq(s6.pair),
                     lb_write.en.eq(advance & valid[5] & pool_on & s6.col_odd & ~s6.row_odd)]

        out_lanes, lb_lanes = [], []
        for j in range(cols):
            # S2: bias add, and the multiplier operands (bypassed to *1 >> 0 without requantization).
            lane = params[j]
            acc = s1_beat[j * acc_bits:(j + 1) * acc_bits].as_signed()
            x, mult = stage(f"s2_x_{j}", signed(x_bits)), stage(f"s2_mult_{j}", signed(32))
            shift2, shift3 = stage(f"s2_shift_{j}", unsigned(6)), stage(f"s3_shift_{j}", unsigned(6))
            with m.If(advance):
                m.d.sync += [x.eq(acc + Mux(s1.bias, lane.bias, 0)),
                             mult.eq(Mux(s1.requant, lane.multiplier, 1)),
                             shift2.eq(Mux(s1.requant, lane.shift, 0))]
            # S3: the registered multiply.
            p = stage(f"s3_p_{j}", signed(p_bits))
            with m.If(advance):
                m.d.sync += [p.eq(x * mult), shift3.eq(shift2)]
            # S4: round_shift(p, s) = ((2p >> s) + 1) >> 1 (arithmetic shifts): no special case for s == 0.
            r = stage(f"s4_r_{j}", signed(p_bits + 1))
            with m.If(advance):
                m.d.sync += r.eq((((p << 1) >> shift3) + 1) >> 1)
            # S5: saturate to the output type; ReLU raises the lower bound to 0.
            y = stage(f"s5_y_{j}", signed(acc_bits))
            with m.If(advance):
                m.d.sync += y.eq(Mux(r < lo, lo, Mux(r > hi, hi, r)))

            # Pooling: the horizontal pair formed in the S5 cycle, registered into S6 (beside the value itself);
            # the window formed in the S6 cycle, registered into O.
            held = stage(f"pool_held_{j}", signed(acc_bits))      # the even column's value
            with m.If(advance & valid[4] & ~s5.col_odd):
                m.d.sync += held.eq(y)
            y6 = stage(f"s6_y_{j}", signed(acc_bits))
            pair = stage(f"s6_pair_{j}", signed(lb_bits))
            with m.If(advance):
                m.d.sync += [y6.eq(y), pair.eq(Mux(pair_avg, held + y, Mux(held > y, held, y)))]
            above = lb_read.data[j * lb_bits:(j + 1) * lb_bits].as_signed()
            window = Signal(signed(lb_bits + 1), name=f"pool_window_{j}")
            m.d.comb += window.eq(Mux(is_avg, above + pair, Mux(above > pair, above, pair)))
            pooled = Mux(is_avg, (window + 2) >> 2, window)
            out_lanes.append(Mux(pool_on, pooled, y6)[:acc_bits])
            lb_lanes.append(pair)
        m.d.comb += lb_write.data.eq(Cat(*lb_lanes))

        emit = ~pool_on | (s6.col_odd & s6.row_odd)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(valid[5] & emit), self.o.payload.eq(Cat(*out_lanes))]
        return m
