"""The matrix-vector engine: ``cols`` dot-product lanes of ``rows`` multipliers each, for batch-1 fully
connected layers, where a systolic array idles (a weight is used once, so there is nothing to keep stationary).

Every enabled cycle it takes one weight word (``cols`` lanes x ``rows`` weights: ``W[mf*cols + l, kg*rows + i]``)
from the weight FIFO and one activation word (``rows`` inputs ``x[n, kg*rows + i]``) from the activation bank;
each lane multiplies element-wise, sums in a registered adder tree and accumulates over the ``c_groups`` words
of the reduction; after the last one the ``cols`` sums leave as one beat. It is bound only by the weight
stream: one word per cycle, so a layer takes ``m_folds * N * c_groups`` cycles plus the pipeline.

Packed weights (``spec.packed_weight_bits``, per command ``cfg.w_packing``): a word holds ``k = 8 // bits``
slots' weights (int4: 2, int2: 4), slot ``k*t + j`` in part ``j`` of word ``t``; the engine pops a word every
``k`` slots and sign-extends the slot's part into the int8 weight lanes, so the multipliers, the adder tree and
the accumulators are those of int8 weights (whose bounds cover the narrower products). The slot rate is the
same; the stream needs a word every ``k`` cycles.

Loop order ``for mf: for n: for kg`` keeps the output beat order of the systolic schedule (beat ``mf*N + n``).
Pipeline: issue (0) -> operands (2: the buffer's two-step read, the popped weight registered twice) ->
products (3) -> tree and accumulate/emit (`LATENCY` = 4 after issue).
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import config_layout
from .library import place

__all__ = ["MatrixVectorEngine", "MatrixVectorLane"]


class MatrixVectorEngine(wiring.Component):
    LATENCY = 4

    def __init__(self, spec):
        self.spec = spec
        super().__init__({
            "cfg": In(config_layout(spec)),
            "start": In(1), "en": In(1),
            "busy": Out(1), "done": Out(1),
            "issue": Out(1),                                   # a slot is issued this cycle
            "pop": Out(1),                                     # ... and pops a weight word (packed: every 2nd/4th)
            "in_flight": Out(1),                               # busy, or a slot still on its way to out_valid
            "act_addr": Out(range(max(spec.act_depth, 2))),
            "act_data": In(unsigned(spec.act_word_bits)),      # the buffer's answer, two cycles after act_addr
            "weight_data": In(unsigned(spec.mv_weight_word_bits)),  # the FIFO head, taken when issue & en
            "out_valid": Out(1), "out_data": Out(unsigned(spec.acc_word_bits)),
            # The slot that finishes a beat (the last of its reduction) issues only with `credit` (room in the
            # post-op FIFO, see AcceleratorTop); without it a bubble issues instead. `beat_issued`: it issued.
            "credit": In(1, init=1), "beat_issued": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        spec, cfg = self.spec, self.cfg
        rows, cols = spec.rows, spec.cols
        abits, wbits = spec.act_type.bits, spec.weight_type.bits
        product_shape = signed(spec.product_bits) if spec.product_type.signed else unsigned(spec.product_bits)
        tree_shape = signed(spec.psum_bits) if spec.product_type.signed else unsigned(spec.psum_bits)
        en = self.en

        # Sequencer: for mf: for n: for kg, one slot per enabled cycle.
        mf, n, kg = (Signal(cfg.m_folds.shape(), name=name) for name in ("mf", "n", "kg"))
        base, addr = Signal.like(self.act_addr), Signal.like(self.act_addr)
        last_kg = kg == cfg.c_groups - 1
        last_n = n == cfg.pixels - 1
        last_mf = mf == cfg.m_folds - 1
        # Packed weights (cfg.w_packing = log2 of the slots a word serves: 1 for int4, 2 for int2): slot k*t + j
        # takes part j of word t (part 0 in the low bits); `phase` is j, and only j == 0 pops a word.
        phase = Signal(2)
        last_phase = Signal(2)
        m.d.comb += last_phase.eq((1 << cfg.w_packing) - 1)
        hold = self.busy & last_kg & ~self.credit
        m.d.comb += [self.issue.eq(self.busy & ~hold), self.act_addr.eq(addr),
                     self.pop.eq(self.issue & (phase == 0)),
                     self.beat_issued.eq(en & self.issue & last_kg)]
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), self.done.eq(0), mf.eq(0), n.eq(0), kg.eq(0), base.eq(0), addr.eq(0),
                         phase.eq(0)]
        with m.Elif(en & self.issue):
            m.d.sync += phase.eq(Mux(phase == last_phase, 0, phase + 1))
            with m.If(~last_kg):
                m.d.sync += [kg.eq(kg + 1), addr.eq(addr + cfg.plane)]
            with m.Else():
                m.d.sync += kg.eq(0)
                with m.If(~last_n):
                    m.d.sync += [n.eq(n + 1), base.eq(base + 1), addr.eq(base + 1)]
                with m.Else():
                    m.d.sync += [n.eq(0), base.eq(0), addr.eq(0), mf.eq(mf + 1)]
                    with m.If(last_mf):
                        m.d.sync += [self.busy.eq(0), self.done.eq(1)]

        # Control beside the data: valid, first (kg == 0) and last (kg == c_groups - 1) of a reduction.
        control = [self.issue, kg == 0, last_kg]
        stages = [control]
        for stage in range(self.LATENCY):
            delayed = [Signal(name=f"mv_ctl{stage}_{k}") for k in range(len(control))]
            with m.If(en):
                m.d.sync += [d.eq(s) for d, s in zip(delayed, stages[-1])]
            stages.append(delayed)
        m.d.comb += self.in_flight.eq(self.busy | Cat(*(stage[0] for stage in stages[1:])).any())

        popped, weights = Signal.like(self.weight_data), Signal.like(self.weight_data)
        phase1, packing1 = Signal(2), Signal(2)
        word = popped
        for bits in spec.packed_weight_bits:
            # Part `phase1` of the word, each packed weight sign-extended to its int8 weight lane.
            per, part = wbits // bits, rows * cols * bits
            parts = Signal(part, name=f"int{bits}_part")
            select = phase1[:per.bit_length() - 1]
            m.d.comb += parts.eq(Array(popped[j * part:(j + 1) * part] for j in range(per))[select])
            decoded = Cat(*(Cat(parts[bits * k:bits * (k + 1)], *([parts[bits * (k + 1) - 1]] * (wbits - bits)))
                            for k in range(rows * cols)))
            word = Mux(packing1 == per.bit_length() - 1, decoded, word)
        with m.If(en):
            with m.If(self.pop):
                m.d.sync += popped.eq(self.weight_data)
            m.d.sync += [phase1.eq(phase), packing1.eq(cfg.w_packing), weights.eq(word)]

        # The lanes: `cols` instances of one `MatrixVectorLane` (with a module library, one module).
        acc_shape = spec.acc_type.amaranth_shape()
        make_lane = lambda: MatrixVectorLane(rows=rows, act_shape=spec.act_type.amaranth_shape(),  # noqa: E731
                                             weight_shape=spec.weight_type.amaranth_shape(),
                                             product_shape=product_shape, tree_shape=tree_shape,
                                             acc_shape=acc_shape)
        lane_key = (rows, *((shape.width, shape.signed) for shape in (
            spec.act_type.amaranth_shape(), spec.weight_type.amaranth_shape(), product_shape, tree_shape,
            acc_shape)))
        lanes = []
        for lane in range(cols):
            total = Signal(acc_shape, name=f"mv_sum{lane}")
            place(m, f"lane_{lane}", make_lane, kind="mv_lane", key=lane_key, platform=platform,
                  acts=self.act_data, weights=weights[lane * rows * wbits:(lane + 1) * rows * wbits], en=en,
                  valid=stages[self.LATENCY][0], first=stages[self.LATENCY][1], total=total)
            lanes.append(total)
        m.d.comb += [self.out_valid.eq(en & stages[self.LATENCY][0] & stages[self.LATENCY][2]), self.out_data.eq(Cat(*lanes))]
        return m


class MatrixVectorLane(wiring.Component):
    """One dot-product lane: ``rows`` registered products of ``acts`` and ``weights`` (lane ``i`` of each), their
    registered sum, and the accumulator over the words of a reduction.

    In every cycle with ``en`` the products and their sum advance one register each; ``total`` is the running
    sum including the word whose products' sum is registered now (``first``: the accumulator restarts from 0),
    and it is kept in the accumulator in cycles with ``en & valid``.
    """

    def __init__(self, *, rows, act_shape, weight_shape, product_shape, tree_shape, acc_shape):
        self.rows = rows
        self.act_shape, self.weight_shape = act_shape, weight_shape
        self.product_shape, self.tree_shape, self.acc_shape = product_shape, tree_shape, acc_shape
        super().__init__({
            "acts": In(unsigned(rows * act_shape.width)), "weights": In(unsigned(rows * weight_shape.width)),
            "en": In(1), "valid": In(1), "first": In(1),
            "total": Out(acc_shape),
        })

    def elaborate(self, platform):
        m = Module()
        abits, wbits = self.act_shape.width, self.weight_shape.width
        en = self.en
        products = []
        for i in range(self.rows):
            x = self.acts[i * abits:(i + 1) * abits]
            w = self.weights[i * wbits:(i + 1) * wbits]
            x = x.as_signed() if self.act_shape.signed else x
            w = w.as_signed() if self.weight_shape.signed else w
            product = Signal(self.product_shape, name=f"p_{i}")
            with m.If(en):
                m.d.sync += product.eq(x * w)
            products.append(product)
        tree = Signal(self.tree_shape, name="tree")
        with m.If(en):
            m.d.sync += tree.eq(sum(products))
        acc = Signal(self.acc_shape, name="acc")
        # The schedule proved the reduction fits acc_type: nothing is lost in the truncation.
        m.d.comb += self.total.eq(Mux(self.first, 0, acc) + tree)
        with m.If(en & self.valid):
            m.d.sync += acc.eq(self.total)
        return m
