"""The fixed-point engine: training steps and LSTM layers in 16-bit fixed point, on one grid of multipliers.

Ports: ``cfg`` (one command per beat, `hwgen.fxp.commands`), ``data_in`` (vector words), ``weights`` (tiles:
``size * size`` 16-bit values, element ``(l, i)`` at lane ``l*size + i``), ``out`` (vector words), ``busy`` and
``done`` (a pulse as each command finishes). Commands run one after another; the golden model is
`hwgen.fxp.machine`, the cycle model `hwgen.fxp.perf`.

Memories: the vector memory (``vector_words`` x ``size`` lanes; two read ports, one write port with a write
enable per lane), the weight memory (``weight_words`` tiles; one read, one write port), and with ``lstm`` the
cell-state memory. The weight stream passes a block-RAM FIFO (`BlockRAMFIFO`).

The grid's pipeline, one slot per enabled cycle from the sequencer (`hwgen.hw.fxp_sequencer`), stage by stage
after the slot issues (stage 0: its reads):

1. the tile (the weight memory's read data, or the streamed tile of an LSTM step, held for the batch) and the
   vector word(s) arrive;
2. ``size * size`` products: ``W[l,i] * x[i]`` (forward, LSTM), ``W[l,i] * g[l]`` (backward: the same stored
   tile, W's transpose is never formed), ``g[l] * a[i]`` (update);
3. row sums (forward, LSTM) or column sums (backward) - and for update the per-element sums over the batch;
4. the lane accumulators (one per lane and sample, so the batch shares each tile read) - for update, the
   tile's sum times the learning rate (the tile's old value is read in stage 3);
5. rounding and saturation to 16 bits (+ bias, ReLU or the backward mask); the result is written to the vector
   memory and/or sent to ``out`` - for update, the new tile is written back;
6. - 11. LSTM only: sigmoid/tanh (`hwgen.hw.activation`, two stages), the cell update with the cell-state
   memory, tanh of the cell, ``h = o * tanh(c)``, written into the next step's input vectors.

The whole pipeline has one enable: it advances while ``out`` has room and (an LSTM slot that pops a tile) the
weight FIFO has one; a stalled stream freezes it. Reads of the vector and weight memories by later stages
(bias, mask, the tile being updated) are issued at stage 3 for data at stage 4.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..activation import PiecewiseLinear
from ..fxp.commands import KINDS, command_layout
from ..fxp.spec import LR_FRAC, WORD_BITS, FxpSpec
from ..lfsr import DRAW_STEPS
from .activation import ActivationUnit
from .fifo import BlockRAMFIFO
from .fxp_sequencer import FxpSequencer, kind_is
from .lfsr import LfsrBank

__all__ = ["FxpEngine", "OUT_FIFO_DEPTH", "STAGES"]

OUT_FIFO_DEPTH = 4
# The stage at which a command's last effect happens (its write or its beat into the output FIFO).
STAGES = {"read_vectors": 2, "read_weights": 2, "forward": 5, "backward": 5, "update": 5, "lstm": 11}
LAST_STAGE = max(STAGES.values())


def _lanes(value, count, width=WORD_BITS):
    """Split a packed value into `count` signed lanes."""
    return [value[k * width:(k + 1) * width].as_signed() for k in range(count)]


def _saturate(m, value, name):
    """``value`` clamped to a signed 16-bit word (a new signal)."""
    lo, hi = -(1 << (WORD_BITS - 1)), (1 << (WORD_BITS - 1)) - 1
    out = Signal(signed(WORD_BITS), name=name)
    m.d.comb += out.eq(Mux(value < lo, lo, Mux(value > hi, hi, value)))
    return out


class FxpEngine(wiring.Component):
    def __init__(self, spec):
        if not isinstance(spec, FxpSpec):
            raise TypeError(f"FxpEngine needs an FxpSpec, not {spec!r}")
        self.spec = spec
        super().__init__({
            "cfg": In(stream.Signature(unsigned(command_layout(spec).size))),
            "data_in": In(stream.Signature(unsigned(spec.vector_bits))),
            "weights": In(stream.Signature(unsigned(spec.tile_bits))),
            "out": Out(stream.Signature(unsigned(spec.vector_bits))),
            "busy": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        n, f, bits = spec.size, spec.frac_bits, spec.field_bits
        layout = command_layout(spec)

        # Memories, FIFOs ----------------------------------------------------------------------------------
        m.submodules.vectors = vmem = memory.Memory(shape=unsigned(spec.vector_bits), depth=spec.vector_words,
                                                    init=[])
        va, vb = vmem.read_port(), vmem.read_port()
        vw = vmem.write_port(granularity=WORD_BITS)
        m.submodules.weight_memory = wmem = memory.Memory(shape=unsigned(spec.tile_bits),
                                                          depth=spec.weight_words, init=[])
        wr, ww = wmem.read_port(), wmem.write_port()
        m.submodules.weight_fifo = wfifo = BlockRAMFIFO(width=spec.tile_bits, depth=spec.weight_fifo_depth)
        wiring.connect(m, wiring.flipped(self.weights), wfifo.w_stream)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=spec.vector_bits, depth=OUT_FIFO_DEPTH)
        m.d.comb += [self.out.payload.eq(out_fifo.r_data), self.out.valid.eq(out_fifo.r_rdy),
                     out_fifo.r_en.eq(self.out.ready)]

        # Command FSM --------------------------------------------------------------------------------------
        cmd = Signal(layout)
        m.submodules.seq = seq = FxpSequencer(spec)
        m.d.comb += seq.cmd.eq(cmd)
        is_ = {k: Signal(name=f"is_{k}") for k in KINDS}
        for k, sig in is_.items():
            m.d.comb += sig.eq(kind_is(cmd, k))
        left = Signal(bits)                          # words still to load
        load_addr = Signal(bits)
        drained, running = Signal(), Signal()
        loading = is_["load_vectors"] | is_["load_weights"]
        with m.FSM(name="command"):
            with m.State("IDLE"):
                m.d.comb += self.cfg.ready.eq(1)
                with m.If(self.cfg.valid):
                    m.d.sync += cmd.eq(self.cfg.payload)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [seq.start.eq(1), self.busy.eq(1)]
                m.d.sync += [left.eq(cmd.count), load_addr.eq(Mux(is_["load_weights"], cmd.w_base, cmd.a_base))]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [running.eq(1), self.busy.eq(1)]
                with m.If(Mux(loading, left == 0, ~seq.busy & drained)):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

        # Loads: one word per cycle as the stream offers it.
        load_v, load_w = Signal(), Signal()
        m.d.comb += [
            self.data_in.ready.eq(running & is_["load_vectors"] & (left != 0)),
            load_v.eq(self.data_in.valid & self.data_in.ready),
            load_w.eq(running & is_["load_weights"] & (left != 0) & wfifo.r_rdy),
        ]
        with m.If(load_v | load_w):
            m.d.sync += [left.eq(left - 1), load_addr.eq(load_addr + 1)]

        # The pipeline ---------------------------------------------------------------------------------------
        en = Signal()
        pops = Signal()
        m.d.comb += [
            pops.eq(seq.valid & seq.pop),
            en.eq(out_fifo.w_rdy & (~pops | wfifo.r_rdy)),
            seq.en.eq(en), seq.drained.eq(drained),
        ]
        issue = Signal()
        m.d.comb += issue.eq(seq.valid & en)

        # Control delay line: one entry per stage 1..LAST_STAGE.
        control = dict(valid=issue, first=seq.first, last=seq.last, first_b=seq.first_b, last_b=seq.last_b,
                       b=seq.b, row=seq.r, w_addr=seq.w_addr, b_addr=seq.b_addr, y_addr=seq.y_addr,
                       c_addr=seq.c_addr, group=seq.o[:2], zero_a=seq.zero_a, zero_c=seq.zero_c)
        stages = [control]
        for k in range(1, LAST_STAGE + 1):
            entry = {name: Signal.like(sig, name=f"s{k}_{name}") for name, sig in control.items()}
            with m.If(en):
                m.d.sync += [entry[name].eq(stages[-1][name]) for name in control]
            with m.If(self.done):        # slots past the command's last stage are forgotten
                m.d.sync += entry["valid"].eq(0)
            stages.append(entry)
        last_stage = Mux(is_["lstm"], STAGES["lstm"], Mux(is_["read_vectors"] | is_["read_weights"], 2, 5))
        in_flight = Cat(*(stages[k]["valid"] & (k <= last_stage) for k in range(1, LAST_STAGE + 1)))
        m.d.comb += drained.eq(~in_flight.any())
        s1, s2, s3, s4, s5 = stages[1:6]

        # Stage 0: reads. The update reads its tile, the others their bias/mask word, at stage 3.
        upd = is_["update"]
        m.d.comb += [
            wr.addr.eq(Mux(upd, s3["w_addr"], seq.w_addr)), wr.en.eq(en),
            va.addr.eq(seq.a_addr), va.en.eq(en),
            vb.addr.eq(Mux(upd, seq.b_addr, s3["b_addr"])), vb.en.eq(en),
            wfifo.r_en.eq((pops & en) | load_w),
        ]
        popped = Signal(spec.tile_bits)
        with m.If(pops & en):
            m.d.sync += popped.eq(wfifo.r_data)

        # Stage 1: operands.
        tile = _lanes(Mux(is_["lstm"], popped, wr.data), n * n)
        x = _lanes(Mux(s1["zero_a"], 0, va.data), n)
        a = _lanes(vb.data, n)
        rows = Array(wr.data[k * n * WORD_BITS:(k + 1) * n * WORD_BITS] for k in range(n))
        read_word = Mux(is_["read_vectors"], va.data, rows[s1["row"]])
        read_word2 = Signal(spec.vector_bits)
        fwd_like = is_["forward"] | is_["lstm"]
        products = [[Signal(signed(2 * WORD_BITS), name=f"p{l}_{i}") for i in range(n)] for l in range(n)]
        with m.If(en):
            m.d.sync += read_word2.eq(read_word)
            for l in range(n):
                for i in range(n):
                    lhs = Mux(upd, x[l], tile[l * n + i])
                    rhs = Mux(fwd_like, x[i], Mux(is_["backward"], x[l], a[i]))
                    m.d.sync += products[l][i].eq(lhs * rhs)

        # Stage 2 -> 3: row or column sums; the update's per-element sums over the batch.
        sum_shape = signed(2 * WORD_BITS + max(n - 1, 1).bit_length() + 1)
        sums = [Signal(sum_shape, name=f"sum{k}") for k in range(n)]
        with m.If(en):
            for k in range(n):
                m.d.sync += sums[k].eq(Mux(is_["backward"], sum(products[l][k] for l in range(n)),
                                           sum(products[k][i] for i in range(n))))
        totals = None
        if spec.training:
            ushape = signed(spec.update_acc_bits)
            grads = [Signal(ushape, name=f"dw{k}") for k in range(n * n)]
            totals = [Signal(ushape, name=f"dw_total{k}") for k in range(n * n)]
            with m.If(en & s2["valid"] & upd):
                for k in range(n * n):
                    nxt = Mux(s2["first_b"], 0, grads[k]) + products[k // n][k % n]
                    m.d.sync += grads[k].eq(nxt)
                    with m.If(s2["last_b"]):
                        m.d.sync += totals[k].eq(nxt)

        # Stage 3 -> 4: the lane accumulators, one per lane and sample.
        acc_shape = signed(spec.acc_bits)
        accs = Array(Array(Signal(acc_shape, name=f"acc_b{b}_{k}") for k in range(n)) for b in range(spec.max_batch))
        result = [Signal(acc_shape, name=f"result{k}") for k in range(n)]
        with m.If(en & s3["valid"]):
            for k in range(n):
                total = Signal(acc_shape, name=f"acc_total{k}")
                m.d.comb += total.eq(Mux(s3["first"], 0, accs[s3["b"]][k]) + sums[k])
                m.d.sync += accs[s3["b"]][k].eq(total)
                with m.If(s3["last"]):
                    m.d.sync += result[k].eq(total)
        scaled = None
        if spec.training:
            scaled = [Signal(signed(spec.update_acc_bits + LR_FRAC + 1), name=f"dw_scaled{k}") for k in range(n * n)]
            with m.If(en):
                m.d.sync += [scaled[k].eq(totals[k] * cmd.lr_mult) for k in range(n * n)]

        # Stage 4 -> 5: round to 16 bits. Forward/backward/LSTM write (or emit) at stage 5.
        finish = Signal()
        m.d.comb += finish.eq(en & s4["valid"] & s4["last"])
        stochastic = cmd.stochastic
        out_draws = None
        if spec.stochastic:
            m.submodules.out_lfsr = out_lfsr = LfsrBank(seed=spec.seed, count=n, first=0)
            m.d.comb += out_lfsr.step.eq(Mux(finish & stochastic & (is_["forward"] | is_["backward"]),
                                             (1 << n) - 1, 0))
            out_draws = [out_lfsr.draws[k * DRAW_STEPS:(k + 1) * DRAW_STEPS] for k in range(n)]
        bias = _lanes(vb.data, n)
        y = [Signal(signed(WORD_BITS), name=f"y{k}") for k in range(n)]
        for k in range(n):
            value = Signal(signed(spec.acc_bits + 1), name=f"pre{k}")
            m.d.comb += value.eq(result[k] + Mux(cmd.bias & fwd_like, bias[k] << f, 0))
            offset = Const(1 << (f - 1), unsigned(f))
            if out_draws is not None:
                offset = Mux(stochastic, out_draws[k][DRAW_STEPS - f:], offset)
            rounded = Signal(signed(spec.acc_bits + 2), name=f"rounded{k}")
            m.d.comb += rounded.eq((value + offset) >> f)
            word = _saturate(m, rounded, f"sat{k}")
            word = Mux(cmd.relu & is_["forward"] & (word < 0), 0, word)
            word = Mux(cmd.mask & is_["backward"] & (bias[k] <= 0), 0, word)
            with m.If(en):
                m.d.sync += y[k].eq(word)
        if spec.training:
            # The update: W - round(dW * lr_mult, f + 16), saturated; written back at stage 5.
            step_draws = None
            if spec.stochastic:
                m.submodules.update_lfsr = update_lfsr = LfsrBank(seed=spec.seed, count=n * n, first=n)
                m.d.comb += update_lfsr.step.eq(Mux(en & s4["valid"] & s4["last_b"] & upd & stochastic,
                                                    (1 << (n * n)) - 1, 0))
                step_draws = [update_lfsr.draws[k * DRAW_STEPS:(k + 1) * DRAW_STEPS] for k in range(n * n)]
            old = _lanes(wr.data, n * n)
            new = [Signal(signed(WORD_BITS), name=f"w_new{k}") for k in range(n * n)]
            shift = f + LR_FRAC
            for k in range(n * n):
                offset = Const(1 << (shift - 1), unsigned(shift))
                if step_draws is not None:
                    offset = Mux(stochastic, Cat(Const(0, f), step_draws[k]), offset)
                step = Signal(signed(spec.update_acc_bits + 2), name=f"w_step{k}")
                m.d.comb += step.eq((scaled[k] + offset) >> shift)
                value = Signal(signed(spec.update_acc_bits + 3), name=f"w_diff{k}")
                m.d.comb += value.eq(old[k] - step)
                with m.If(en):
                    m.d.sync += new[k].eq(_saturate(m, value, f"w_sat{k}"))
            m.d.comb += [ww.addr.eq(Mux(upd, s5["w_addr"], load_addr)),
                         ww.data.eq(Mux(upd, Cat(*new), wfifo.r_data)),
                         ww.en.eq(Mux(upd, en & s5["valid"] & s5["last_b"], load_w))]
        else:
            m.d.comb += [ww.addr.eq(load_addr), ww.data.eq(wfifo.r_data), ww.en.eq(load_w)]

        # Writes and output beats ----------------------------------------------------------------------------
        grid_out = is_["forward"] | is_["backward"]
        five = en & s5["valid"] & s5["last"]
        write_en = Signal(n)
        write_addr = Signal(bits)
        write_data = Signal(spec.vector_bits)
        push, push_data = Signal(), Signal(spec.vector_bits)
        m.d.comb += [
            write_en.eq(Mux(load_v, (1 << n) - 1, Mux(five & grid_out & cmd.store, (1 << n) - 1, 0))),
            write_addr.eq(Mux(load_v, load_addr, s5["y_addr"])),
            write_data.eq(Mux(load_v, self.data_in.payload, Cat(*y))),
            push.eq(Mux(is_["read_vectors"] | is_["read_weights"], en & s2["valid"], five & grid_out & cmd.emit)),
            push_data.eq(Mux(is_["read_vectors"] | is_["read_weights"], read_word2, Cat(*y))),
        ]
        if spec.lstm:
            h_en, h_addr, h_data, h_push, h_beat = self._lstm(m, stages, en, y, cmd)
            m.d.comb += [
                vw.en.eq(Mux(is_["lstm"], h_en, write_en)), vw.addr.eq(Mux(is_["lstm"], h_addr, write_addr)),
                vw.data.eq(Mux(is_["lstm"], h_data, write_data)),
                out_fifo.w_en.eq(Mux(is_["lstm"], h_push, push)),
                out_fifo.w_data.eq(Mux(is_["lstm"], h_beat, push_data)),
            ]
        else:
            m.d.comb += [vw.en.eq(write_en), vw.addr.eq(write_addr), vw.data.eq(write_data),
                         out_fifo.w_en.eq(push), out_fifo.w_data.eq(push_data)]
        return m

    def _lstm(self, m, stages, en, z, cmd):
        """Stages 5 - 11: the cell. ``z`` (stage 5) holds the gate pre-activations of ``size/4`` hidden units,
        gate-major: lanes ``[0, q)`` input gate, ``[q, 2q)`` forget gate, ``[2q, 3q)`` cell input, ``[3q, 4q)``
        output gate. Returns the vector-memory write (lane enables, address, data), the output push and beat."""
        spec = self.spec
        n, q, f = spec.size, spec.size // 4, spec.frac_bits
        s = stages
        m.submodules.cells = cmem = memory.Memory(shape=unsigned(q * WORD_BITS), depth=spec.cell_words, init=[])
        cr, cw = cmem.read_port(), cmem.write_port()
        sig = PiecewiseLinear("sigmoid", f, spec.segment_bits)
        tanh = PiecewiseLinear("tanh", f, spec.segment_bits)
        acts = []
        for k in range(n):                                    # stages 5 -> 7
            unit = ActivationUnit(tanh if q * 2 <= k < q * 3 else sig)
            m.submodules[f"gate_act{k}"] = unit
            m.d.comb += [unit.en.eq(en), unit.x.eq(z[k])]
            acts.append(unit.y)
        i_g, f_g, g_g, o_g = (acts[j * q:(j + 1) * q] for j in range(4))
        # Stage 6: read the cell state (data at stage 7); stage 7 -> 8: the new cell state, written at stage 8.
        m.d.comb += [cr.addr.eq(s[6]["c_addr"]), cr.en.eq(en)]
        prev = _lanes(cr.data, q)
        cells = [Signal(signed(WORD_BITS), name=f"cell{k}") for k in range(q)]
        for k in range(q):
            c_prev = Mux(s[7]["zero_c"], 0, prev[k])
            total = Signal(signed(2 * WORD_BITS + 2), name=f"cell_sum{k}")
            m.d.comb += total.eq(f_g[k] * c_prev + i_g[k] * g_g[k])
            rounded = Signal(signed(2 * WORD_BITS + 2), name=f"cell_round{k}")
            m.d.comb += rounded.eq((total + (1 << (f - 1))) >> f)
            with m.If(en):
                m.d.sync += cells[k].eq(_saturate(m, rounded, f"cell_sat{k}"))
        m.d.comb += [cw.addr.eq(s[8]["c_addr"]), cw.data.eq(Cat(*cells)),
                     cw.en.eq(en & s[8]["valid"] & s[8]["last"] & cmd.kind.matches(KINDS.index("lstm")))]
        # Stages 8 -> 10: tanh of the cell; the output gate waits beside it. 10 -> 11: h.
        tanh_c = []
        for k in range(q):
            unit = ActivationUnit(tanh)
            m.submodules[f"cell_tanh{k}"] = unit
            m.d.comb += [unit.en.eq(en), unit.x.eq(cells[k])]
            tanh_c.append(unit.y)
        o_wait = o_g
        for stage in (8, 9, 10):
            delayed = [Signal(signed(WORD_BITS), name=f"og{stage}_{k}") for k in range(q)]
            with m.If(en):
                m.d.sync += [d.eq(v) for d, v in zip(delayed, o_wait)]
            o_wait = delayed
        h = [Signal(signed(WORD_BITS), name=f"h{k}") for k in range(q)]
        for k in range(q):
            product = Signal(signed(2 * WORD_BITS + 1), name=f"h_prod{k}")
            m.d.comb += product.eq((o_wait[k] * tanh_c[k] + (1 << (f - 1))) >> f)
            with m.If(en):
                m.d.sync += h[k].eq(_saturate(m, product, f"h_sat{k}"))
        eleven = s[11]
        group = eleven["group"]
        lanes_en = Signal(n)
        m.d.comb += lanes_en.eq(Mux(en & eleven["valid"] & eleven["last"], ((1 << q) - 1) << (group * q), 0))
        word = Cat(*(h * 4))                       # every group carries h; the enables pick one
        beat = Signal(self.spec.vector_bits)
        m.d.comb += beat.eq(Cat(*(Mux(group == g, Cat(*h), 0) for g in range(4))))
        return lanes_en, eleven["y_addr"], word, en & eleven["valid"] & eleven["last"] & cmd.emit, beat
