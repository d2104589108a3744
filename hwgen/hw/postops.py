"""The post-op pipeline: bias, requantization, ReLU and 2x2 pooling on the accumulator's output stream.

One pass: every output beat goes through the chain once, on its way out; nothing is written back. Semantics are
`hwgen.postops.apply`, bit for bit (the module docstring there defines the rounding and the widths).

The chain has ``spec.postop_lanes`` lanes: a beat of ``cols`` channels passes it as ``G = spec.postop_groups``
*groups* of ``lanes`` channels, one group per cycle (group ``g`` = channels ``mf*cols + g*lanes ..``). Finished
outputs leave the accumulators far less often than once a cycle on most layers (one beat per pixel per m-fold,
after the last k-fold), so a chain sized to that rate does the work of ``cols`` lanes with ``lanes`` of them;
the top keeps the beats waiting in a block-RAM FIFO and holds back the compute engines only when it is full
(`hwgen.hw.top`, modelled exactly by `hwgen.perf`). With ``lanes == cols`` (``G = 1``) a beat passes in one
cycle.

Stages (one register each; lane ``j`` of every stage is channel ``mf*cols + g*lanes + j`` of the group's beat)::

    i ─► S1 group ─► S2 group + params ─► S3 x = acc + bias ─► S4-S7 p = x * multiplier ─► S8 sh = 2p >> shift
      ─► S9 r = ((sh + 1) >> 1) + z, under/over ─► S10 y = clamp(r) ─► S11 horizontal pair ─► S12 window ─► O ─► o

    (a narrow chain, ``G > 1``: S11 the pair's compare and sum ─► S11b the pair, its sum + 2)

- ``i`` offers a whole beat; the chain takes its groups on consecutive advancing cycles (the group multiplexer
  in front of S1) and accepts the beat (``i.ready``) with its last group. The output register assembles the
  groups of a beat and offers it on ``o`` with the last one.
- The params memory holds one word of ``lanes`` channels per (m-fold, group) and is read as the group is taken;
  it answers from a register in S2 (a `PipelinedMemory`: no block RAM clock-to-out in front of an adder); S3
  adds the bias (or 0), widening to ``max(acc_bits, 32) + 1`` bits (the low 17 bits and their carry registered
  in S3, the high bits added from S3's registers in front of S4); S4-S7 is the multiply, a `WideMultiplier`
  (18-bit tiles on hard multipliers with their own input registers, then two registered levels of partial
  sums); S8 is the barrel shifter (by multiples of `SHIFT_UNIT`: S3 pre-shifts the multiplier left by the
  rest, so the product carries it; iCE40 keeps the whole shift in S8) and S9 the rounding of ``round_shift(p, s) = ((2p >> s) + 1) >> 1`` with the output zero
  point added in the same adder (``(sh + 2z + 1) >> 1``), beside the saturation tests made on the shifted value
  (``(sh + 1) >> 1 < lo`` exactly when ``sh < 2 lo - 1``, ``> hi`` when ``sh > 2 hi``), so S10's clamp is a
  multiplexer; the bounds (from the output type, raised to 0 by ReLU) are registered as the group enters S8.
- Pooling in one pass: the even column's value is held (per group: a register with one group, a small LUT
  memory of ``G`` entries otherwise, read a cycle ahead); on the odd column the horizontal pair (max, or sum) is
  formed and registered (S11; on a narrow chain in two stages: the compare and the sum registered with both
  operands in S11, the choice in S11b beside the sum + 2 the average's rounding adds); on even rows it is
  written to a line buffer (``max_out_w // 2`` entries per group, a `PipelinedMemory` read as the group enters
  the stage before the pair's; with one group the one write that can land at the edge of that read is
  forwarded, with more the row above is always written several cycles before), on odd rows it is combined
  with the entry of the row above: the window's sum and compare are registered side by side (S12), and the way
  out picks the maximum or divides (average: ``(sum4 + 2) >> 2``; on a narrow chain the window's sum already
  holds the + 2). Every adder and compare has a cycle of its own: the chain is built for the array's clock.
- Without requantization the multiplier is forced to 1 and the shift to 0, and the configuration sets the
  clamp to the accumulator range, so one datapath serves every combination.
- An output zero point ``z`` (``cfg.zero_point``) is added in S9's rounding adder (S10 takes it in range); the
  saturation tests compare against the type's bounds less ``z`` (made a stage earlier), ReLU clamps at ``z``.
- ``cfg.dest`` rides with the beat and leaves on ``o_dest`` beside it (the top routes the beat by it).
- Without pooling hardware (``spec.postop_pooling=False``, for small devices): no line buffer, no held
  column, no pair or window; S11 (S11b) and S12 keep only the value's registers, so the latency and every
  cycle are those of the chain with pooling. Layers that pool are rejected (`hwgen.postops.check_supported`).
- Float accelerators (``spec.is_float``, `hwgen.floats`): the lanes are fp32 patterns; S3 adds the bias with an
  `fpu.Fp32Adder` (round to nearest even); requantization multiplies by the channel's fp32 scale (the
  ``multiplier`` field holds its pattern) on a 24 x 24 `WideMultiplier` in S4-S7, rounded into S8, and rounds
  to the 16-bit output format (the spec's bf16/fp16) into S9; S10 applies ReLU (negatives and -0 to +0),
  pooling takes the fp32 maximum (`fpu.fp32_max`) in the same stages, and the way out re-packs a 16-bit
  output. A float chain is as wide as the spec says, like the integer one: with ``G > 1`` its lanes take the
  beat group by group (the params word, the held value and the line buffer per group as above), and the pair
  is split the same way (S11 registers the NaN test and the compare, `fpu.fp32_max_flags`, beside both
  operands; S11b the choice), so its latency is the integer chain's for that width (13 full width, 14 narrow)
  and the cycle model is the same.

Timing: `LATENCY` = 13 (`latency_for`: 14 on a narrow chain, one more with stochastic rounding; ``L`` below). A
group taken in cycle ``t`` (``advance`` with ``i.valid``) is in the output register in cycle ``t + L`` when no
stall intervenes; a beat's groups are taken in cycles ``t .. t + G - 1`` and the beat is presented on ``o`` in
cycle ``t + G - 1 + L``; with pooling, the window's output appears then for its bottom-right input. Throughput
is one group per cycle while ``o`` is ready (pooling emits one beat per 2x2 window, i.e. per four kept inputs).
A full-width chain (``G = 1``) stalls as a whole: ``advance = ~o.valid | o.ready`` (combinational from
``o.ready``, independent of ``i.valid``), so it holds up to ``L`` groups and never drops one. A narrow chain
(``G > 1``, `free_running`) never stalls: every stage moves on each cycle (no clock enable from ``o.ready``), a
group enters only with an output credit (``credit``, a flip-flop: ``i.ready = credit & last group``), and a
beat ``o`` does not take in the cycle it reaches the output register waits in a skid (a LUT memory of
`skid_depth` entries, one per credit) and is offered from there in order; with the skid empty ``o`` is the
output register itself, so while ``o`` is ready the timing above is unchanged. A credit is taken as a beat is
accepted and returned a cycle after the beat leaves on ``o``, or as its last group leaves the window stage
without an output (pooling): ``o.ready`` reaches only the skid's pointers and one flip-flop, not the stages or
the block-RAM FIFO in front of the chain.

Position in the layer comes from counters over accepted beats (``f``, then ``e``, then m-fold, wrapping back to
zero after ``m_folds * out_h * out_w`` beats). ``cfg`` and ``bank`` describe the command whose beats arrive on
``i``; they are sampled with each group and ride down the stages with it, so consecutive commands with
different settings follow each other without a drain (the top switches them at the exact beat boundary).
Parameters are written through ``params_en``/``params_addr``/``params_data`` into two banks of
``max_m_folds * G`` words (bank ``b`` holds group ``g`` of m-fold ``k`` at ``(b * max_m_folds + k) * G + g``,
`param_address`), so the next command's parameters load while this one's beats still read the other bank.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..postops import POOL_CODES, column_seeds, config_layout, params_layout
from ..spec import AcceleratorSpec
from . import target
from .arith import add_with_carry
from .bram import PipelinedMemory
from .fanout import registered_copies
from .fpu import (fp32_add, fp32_max, fp32_max_choice, fp32_max_flags, fp32_mul_operands, fp32_mul_round,
                  fp32_relu, fp32_round_to, fp32_to_format)
from .lfsr import unrolled_draw
from .wide_multiplier import WideMultiplier, operand_parts

__all__ = ["PostOpPipeline"]


def _shift_right(m, value, amounts, width, out_width=None, unit=1, *, name):
    """The low ``out_width`` bits (default ``width``) of ``value >> (unit * amount)`` (arithmetic; ``value``
    signed, sign-extended to ``width`` bits) as levels of 2:1 multiplexers, one level per bit of the amount, the
    largest step first, so each level keeps only the bits the later (smaller) steps can still bring down
    (``out_width + step - unit``); output bit ``i`` of a level of ``n`` bits is selected by the copy
    ``amounts[i * len(amounts) // n]`` (all copies hold the same amount). Each level is a wire of ``m``
    (``<name>_level_<k>``), so the next level's two uses of it do not copy its expression."""
    out_width = width if out_width is None else out_width
    value = value.as_signed()
    sign = value[min(width, len(value)) - 1]
    level = Cat(value[:width], sign.replicate(max(0, width - len(value))))
    copies = len(amounts)
    for k in reversed(range(len(amounts[0]))):
        step = unit << k
        keep = min(width, out_width + step - unit)
        shifted = Cat(level[step:], sign.replicate(max(0, keep + step - len(level))))
        # Bits i with i * copies // keep == c take copy c: a contiguous run each, one multiplexer per run (a
        # vector, not one per bit: per-bit multiplexers grew the 8x8's Verilog by 60 % and made its elaboration
        # several times slower).
        runs = []
        for c in range(copies):
            start, end = -(-c * keep // copies), -(-(c + 1) * keep // copies)
            if start < end:
                runs.append(Mux(amounts[c][k], shifted[start:end], level[start:end]))
        wire = Signal(keep, name=f"{name}_level_{k}")
        m.d.comb += wire.eq(Cat(*runs))
        level = wire
    return level[:out_width].as_signed()


def _sign_extended(m, value, width, *, name):
    """``value`` (signed) as ``width`` bits: itself if that wide, else a wire driven with it."""
    if len(value) == width:
        return value
    wide = Signal(signed(width), name=name)
    m.d.comb += wide.eq(value)
    return wide


def greater_parts(width, parts=3):
    """The bit ranges ``[lo, hi)`` `greater_in_parts` splits a ``width``-bit compare into, lowest first."""
    step = -(-width // parts)
    return [(lo, min(lo + step, width)) for lo in range(0, width, step)]


def greater_in_parts(m, a, b, *, name, enable, parts=3):
    """``a > b`` (signed) for the cycle after ``enable``, from per-part flags registered with ``enable`` (see
    `greater_parts`): each part's greater and, for all but the lowest, its equality, combined after them by
    ``g2 | e2 & (g1 | e1 & g0)`` (one LUT level for three parts). Each part's carry chain is short (a 33-bit
    compare is 17 CCU2C on ECP5, which nextpnr split with feed-through cells: 2.2 ns of the 8x8's critical path
    at seeds 3 and 4), and each chain alone in front of its flag: the greater is the borrow of ``b - a`` (Yosys
    makes ``>`` from a less-than and the equality, which put the part's equality tree after the chain: 6.73 ns
    at seed 4), the top part compared unsigned with its sign bits inverted (a signed compare's mapping uses the
    carry into the top bit, which nextpnr brings out of the chain by splitting it with feed-out and feed-in
    cells, about 1.8 ns: 6.79-6.82 ns at seeds 1, 3 and 4 at 553a5e0), and the equalities XOR-reduced in
    LUTs. The narrower operand is sign-extended."""
    width = max(len(a), len(b))
    a, b = (_sign_extended(m, v.as_signed(), width, name=f"{name}_{which}") for v, which in ((a, "a"), (b, "b")))
    bounds = greater_parts(len(a), parts)
    result = None
    for k, (lo, hi) in enumerate(bounds):
        top = k == len(bounds) - 1
        a_k, b_k = a[lo:hi], b[lo:hi]
        if top:
            # signed as unsigned with the sign bits inverted (see above)
            flip = 1 << (hi - lo - 1)
            a_k, b_k = a_k ^ flip, b_k ^ flip
        greater = Signal(name=f"{name}_part{k}_greater")
        with m.If(enable):
            # a > b as the borrow of b - a (see above)
            m.d.sync += greater.eq((b_k - a_k)[hi - lo])
        if result is None:
            result = greater
            continue
        equal = Signal(name=f"{name}_part{k}_equal")
        with m.If(enable):
            m.d.sync += equal.eq(~(a[lo:hi] ^ b[lo:hi]).any())
        result = greater | (equal & result)
    return result


def _times(value, constant):
    """``value * constant`` as a sum of shifts: no multiplier cell (Yosys may give a product by a constant such
    as 3 a hard multiplier, and the fit check counts every ``$mul``)."""
    terms = [value << k for k in range(constant.bit_length()) if constant >> k & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0)


class PostOpPipeline(wiring.Component):
    """Post-op chain for ``spec``'s output beats, ``spec.postop_lanes`` channels per cycle.

    ``max_m_folds``: m-folds of parameters per bank (the most m-folds a layer with bias or requantization may
    have). ``max_out_w``: the widest layer output (``out_w``, before pooling) that can be pooled; the line buffer
    holds ``max_out_w // 2`` words per group. ``dims_bits``: width of the ``cfg`` fields ``out_h``, ``out_w``,
    ``m_folds`` (default: the accelerator's configuration field width).

    Ports: ``cfg`` (`hwgen.postops.config_layout`), ``params_*`` (words of `hwgen.postops.params_layout`
    (``postop_lanes``), plain unsigned, at `param_address`), ``i`` and ``o`` (streams of ``cols`` lanes of
    ``acc_bits``), ``busy`` (a group is in flight).
    """

    SHIFT_COPIES = 4         # flip-flop copies of each lane's shift amount in S8, each driving part of the shifter
    SKID_PARTS = 4           # a free-running chain's skid memory in parts, each with its own pointer copies
    SHIFT_UNIT = 4           # S8 shifts by multiples of this; the rest of the shift is a pre-shift of the multiplier
    LATENCY = 13             # one more with stochastic rounding, one more for a narrow chain (`latency_for`)

    @classmethod
    def latency_for(cls, spec):
        """The pipeline's latency for ``spec``: `LATENCY`, plus the stage that adds the rounding offset when the
        spec builds stochastic rounding, plus the pooling pair's second stage when the chain is narrower than the
        array (``postop_groups > 1``: the held value comes from a small memory and the pair is split into a
        compare/sum stage and a choice stage, `split_pair`)."""
        return cls.LATENCY + int(spec.stochastic_rounding) + int(cls.split_pair(spec))

    @staticmethod
    def split_pair(spec):
        """Whether the horizontal pair takes two stages (registered compare and sum, then the choice): on a
        narrow chain (``postop_groups > 1``), whose pair stage was the 8x8's critical path."""
        return spec.postop_groups > 1

    @staticmethod
    def free_running(spec):
        """Whether the chain never stalls (a narrow chain, ``postop_groups > 1``): its stages always advance, a
        beat enters only with an output credit, and beats ``o`` does not take at once wait in a skid of
        `skid_depth` entries behind the output register. ``o.ready`` then reaches only the skid and a credit
        flip-flop, not the stage registers' enables or the input FIFO's read port (the 8x8's critical path)."""
        return spec.postop_groups > 1

    @classmethod
    def skid_depth(cls, spec):
        """Skid entries (= output credits) of a free-running chain: enough that the credits never hold back a
        beat while ``o`` is ready. A credit is out from the cycle after a beat is accepted until two cycles
        after the beat reaches the output register (``L + 1`` cycles), and a beat is accepted at most every
        ``postop_groups`` cycles."""
        return -(-(cls.latency_for(spec) + 2) // spec.postop_groups) + 1

    def __init__(self, spec, *, max_m_folds, max_out_w=None, dims_bits=None):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"PostOpPipeline needs an AcceleratorSpec, not {spec!r}")
        if not isinstance(max_m_folds, int) or isinstance(max_m_folds, bool) or max_m_folds < 1:
            raise ValueError(f"max_m_folds must be a positive integer, not {max_m_folds!r}")
        max_out_w = spec.acc_depth if max_out_w is None else max_out_w
        if not isinstance(max_out_w, int) or isinstance(max_out_w, bool) or max_out_w < 2:
            raise ValueError(f"max_out_w must be an integer >= 2 (the widest output to pool), not {max_out_w!r}")
        self.spec = spec
        self.lanes, self.groups = spec.postop_lanes, spec.postop_groups
        self.max_m_folds = max_m_folds
        self.max_out_w = max_out_w
        self.cfg_layout = config_layout(spec, dims_bits=dims_bits)
        self.params_layout = params_layout(self.lanes)
        super().__init__({
            "cfg": In(self.cfg_layout),           # of the command whose beats arrive on `i`
            "bank": In(1),                        # which parameter bank those beats use
            # Parameter writes: see `param_address`.
            "params_en": In(1), "params_addr": In(range(2 * self.bank_words)),
            "params_data": In(unsigned(self.params_layout.size)),
            "i": In(stream.Signature(unsigned(spec.acc_word_bits))),
            "o": Out(stream.Signature(unsigned(spec.acc_word_bits))),
            "o_dest": Out(1),                     # cfg.dest of the beat on `o` (routing, see AcceleratorTop)
            "busy": Out(1),
            # the value `i.ready` takes in the next cycle, where it is a flip-flop (a free-running chain,
            # `free_running`; 0 otherwise): the top registers its input FIFO's read from it
            "next_i_ready": Out(1),
        })

    @property
    def latency(self):
        return self.latency_for(self.spec)

    @property
    def bank_words(self):
        """Parameter words per bank: ``max_m_folds`` m-folds of ``groups`` words."""
        return self.max_m_folds * self.groups

    def param_address(self, bank, m_fold, group):
        """Where the parameters of ``group`` of ``m_fold`` in ``bank`` live (the host writes word ``k`` of a
        command's parameter stream at ``bank * bank_words + k``: words come m-fold by m-fold, group by group)."""
        return (bank * self.max_m_folds + m_fold) * self.groups + group

    def elaborate(self, platform):
        m = Module()
        spec, cfg = self.spec, self.cfg
        lanes, groups, cols = self.lanes, self.groups, spec.cols
        acc_bits = spec.acc_type.bits
        X = int(spec.stochastic_rounding)       # the extra stage (S7a: p + rounding offset) shifts S8 on by X
        P = int(self.split_pair(spec))          # the pair's second stage (S11b) shifts the window and out by P
        x_bits = max(acc_bits, 32) + 1          # acc + bias, exact
        # The requantization shift s is split: the multiplier is pre-shifted left by e = (unit - 1) - s % unit in
        # S3 (32 + unit - 1 bits still take two 18-bit tiles), so that 2p' >> (s + e) = 2p >> s and S8 shifts
        # by unit * (s // unit) after a constant unit - 1: a shifter with log2(unit) levels fewer. On iCE40 (one
        # `*` that Yosys tiles over SB_MAC16) the multiplier keeps its 32 bits: unit 1, the whole shift in S8.
        unit = 1 if target.family(platform) == "ice40" else self.SHIFT_UNIT
        pre_bits = unit.bit_length() - 1
        assert unit == 1 << pre_bits
        m_bits = 32 + unit - 1
        p_bits = x_bits + m_bits                # x * pre-shifted multiplier, exact
        lb_bits = acc_bits + 1                  # a horizontal pair: max, or sum of two
        group_bits = lanes * acc_bits

        free = self.free_running(spec)
        advance = Signal()                      # every stage register moves on (the whole pipe stalls at once)
        group = Signal(range(groups))           # the group of the beat on `i` taken next
        last_group = group == groups - 1
        if free:
            # Never stalls: every stage moves on each cycle. A beat enters only with an output credit (`credit`,
            # a flip-flop), so the skid behind the output register has room for every beat in flight.
            credit = Signal(init=1)
            m.d.comb += advance.eq(1)
            take = self.i.valid & credit        # a group enters S1
            # i.ready = credit & last_group, as a flip-flop of its own (set below from their next values): the
            # accept, the input FIFO's read and the emit queue's pop start one gate from flip-flops.
            in_ready = Signal(name="in_ready")
            m.d.comb += self.i.ready.eq(in_ready)
        else:
            m.d.comb += advance.eq(~self.o.valid | self.o.ready)
            take = self.i.valid & advance       # a group enters S1
            m.d.comb += self.i.ready.eq(advance & last_group)
        accept = self.i.valid & self.i.ready    # the beat's last group: the beat is consumed
        if groups > 1:
            with m.If(take):
                m.d.sync += group.eq(Mux(last_group, 0, group + 1))

        # Parameter memory: two banks of one word per (m-fold, group), so the next command's parameters load
        # while this command's beats still use the other bank. A `PipelinedMemory`: its read data leaves from a
        # register (on ECP5 the block RAM's own), so the bias adder does not follow a block RAM's clock-to-out.
        m.submodules.params_mem = params_mem = PipelinedMemory(width=self.params_layout.size,
                                                               depth=2 * self.bank_words)
        m.d.comb += [params_mem.write_addr.eq(self.params_addr), params_mem.write_data.eq(self.params_data),
                     params_mem.write_en.eq(self.params_en)]

        # Position of the next input beat.
        f, e, mf = Signal.like(cfg.out_w), Signal.like(cfg.out_h), Signal.like(cfg.m_folds)
        if groups == 1:
            last_f, last_e, last_mf = f + 1 >= cfg.out_w, e + 1 >= cfg.out_h, mf + 1 >= cfg.m_folds
        else:
            # Registered a cycle ahead (the 8x8's critical path at seed 4: f -> the emit queue's `out_w` ->
            # `f + 1 >= out_w` carry chain -> the counters' enables). Exact with groups > 1: a beat is accepted
            # with its last group, at least one cycle after its first group was taken, so in the cycle before an
            # accept the counters (moved only by accepts) and `cfg` (switched only at a beat boundary, the cycle
            # after an accept, or before the next beat's first group) already hold what the accept sees.
            last_f, last_e, last_mf = (Signal(name=name) for name in ("last_f", "last_e", "last_mf"))
            m.d.sync += [last_f.eq(f + 1 >= cfg.out_w), last_e.eq(e + 1 >= cfg.out_h),
                         last_mf.eq(mf + 1 >= cfg.m_folds)]
        with m.If(accept):
            m.d.sync += f.eq(Mux(last_f, 0, f + 1))
            with m.If(last_f):
                m.d.sync += e.eq(Mux(last_e, 0, e + 1))
                with m.If(last_e):
                    m.d.sync += mf.eq(Mux(last_mf, 0, mf + 1))
        m.d.comb += [params_mem.read_addr.eq(_times(mf + Mux(self.bank, self.max_m_folds, 0), groups) + group),
                     params_mem.read_en.eq(take), params_mem.data_en.eq(advance)]   # read for a group only

        # Pooling tags ride beside the data: odd row/column and the line-buffer entry (the column pair). Floor
        # semantics need no tag: an odd E's last row and an odd F's last column have even indices, so they only
        # fill the line buffer or the held value, and a later beat overwrites both before any use.
        lb_depth = max(self.max_out_w // 2, 2)
        # The command's settings ride with every group too: commands follow each other without a drain.
        tag_layout = data.StructLayout({"row_odd": 1, "col_odd": 1, "pair": range(lb_depth),
                                        "group": range(groups),
                                        "bias": 1, "requant": 1, "relu": 1, "pool": 2,
                                        "out_bits": cfg.out_bits.shape(), "out_signed": 1,
                                        "zero_point": cfg.zero_point.shape(), "dest": 1,
                                        "first": 1, "stochastic": 1})
        tag = Signal(tag_layout)
        m.d.comb += [tag.row_odd.eq(e[0]), tag.col_odd.eq(f[0]), tag.pair.eq(f >> 1), tag.group.eq(group),
                     tag.bias.eq(cfg.bias), tag.requant.eq(cfg.requant), tag.relu.eq(cfg.relu),
                     tag.pool.eq(cfg.pool), tag.out_bits.eq(cfg.out_bits), tag.out_signed.eq(cfg.out_signed),
                     tag.zero_point.eq(cfg.zero_point), tag.dest.eq(cfg.dest),
                     tag.first.eq((f == 0) & (e == 0) & (mf == 0)), tag.stochastic.eq(cfg.stochastic)]

        def stage(name, shape):
            return Signal(shape, name=name)

        # Stage k (1-based) of the group: its valid flag and tags are valid[k - 1], tags[k - 1].
        stages = self.latency - 1
        valid = [stage(f"s{k}_valid", 1) for k in range(1, stages + 1)]
        tags = [stage(f"s{k}_tag", tag_layout) for k in range(1, stages + 1)]
        with m.If(advance):
            m.d.sync += [valid[0].eq(take), tags[0].eq(tag)]
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

        # S1, S2: the group, while the params memory (read as it is taken) answers in S2.
        if groups == 1:
            offered = self.i.payload
        else:
            offered = Signal(group_bits)
            with m.Switch(group):
                for g in range(groups):
                    with m.Case(g):
                        m.d.comb += offered.eq(self.i.payload[g * group_bits:(g + 1) * group_bits])
        s2_group = delayed("group", offered, 2)
        params = data.View(self.params_layout, params_mem.read_data)
        s2 = tags[1]

        # Saturation bounds of the group entering S8 (one set for all lanes), registered with it: lo and hi,
        # and the bounds on the shifted value S9 compares (see there). With an output zero point z the clamp
        # is of r + z: r itself is compared with lo - z and hi - z, and ReLU raises lo to z (lo - z to 0).
        # The bounds are made in two steps (S6 -> S7: the type's range; S7 -> S8: less z), a register apart.
        # S8's lower bound 2 (lo - z) - 1 = 2 lo + ~(2 z) is one adder of two registers: S7 holds the type's lo
        # (0 under ReLU) and ~(2 z) (-1 under ReLU), made from S6's tag (a carry chain fewer in front of
        # `s8_below`: the 8x8's critical path at seed 4 went s7 zero point -> lo - z -> 2 (lo - z) - 1).
        # The type's range itself is made a stage earlier still (S5 -> S6, registered beside the group's S6 tag:
        # the 8x8's critical path at seed 4 went s6 out_bits -> acc_bits - out_bits -> the shift -> lo7/hi7).
        s5, s6, s7 = tags[4 + X], tags[5 + X], tags[6 + X]
        # The range from a thermometer code of out_bits registered a stage earlier (S4 -> S5: `therm[k]` is
        # k < out_bits, a shift of all-ones, three LUT levels from S4's tag), so that each bit of lo and hi is one
        # LUT of two of its bits and the sign: hi = 2**(bits - s) - 1 has bit k set where k + s < bits, and a
        # signed lo = -2**(bits - 1) has bit k set where k + 1 >= bits. Not `acc_bits - out_bits` and a shift
        # of all-ones in one stage (a carry chain and a shifter: the 8x8's critical path at seed 3, `s5_tag` ->
        # `s6_type_hi`, 7.28 ns), nor a table of the seven tag bits (six and seven LUT levels after synthesis:
        # the critical path at seed 2 after the bias change, 6.99 ns; a full table is mapped to a block RAM).
        # The host checks 1 <= out_bits <= acc_bits.
        s4 = tags[3 + X]
        therm = stage("s5_therm", unsigned(acc_bits + 2))
        with m.If(advance):
            m.d.sync += therm.eq(~(Const(-1, acc_bits + 2) << s4.out_bits))
        type_lo, type_hi = stage("s6_type_lo", signed(acc_bits + 1)), stage("s6_type_hi", signed(acc_bits + 1))
        with m.If(advance):
            m.d.sync += [type_hi.eq(Cat(*(Mux(s5.out_signed, therm[k + 1], therm[k])
                                          for k in range(acc_bits + 1)))),
                         type_lo.eq(Cat(*(s5.out_signed & ~therm[k + 1] for k in range(acc_bits + 1))))]
        lo7, hi7 = stage("s7_type_lo", signed(acc_bits + 1)), stage("s7_type_hi", signed(acc_bits + 1))
        not_2z7 = stage("s7_not_2z", signed(len(s6.zero_point) + 2))
        with m.If(advance):
            m.d.sync += [lo7.eq(Mux(s6.relu, 0, type_lo)), hi7.eq(type_hi),
                         not_2z7.eq(Mux(s6.relu, -1, ~(s6.zero_point.as_signed() << 1)))]
        z7 = s7.zero_point.as_signed()
        lo_now, hi_now = Signal(signed(acc_bits + 1)), Signal(signed(acc_bits + 1))
        hi_rel = Signal(signed(acc_bits + 2))
        m.d.comb += [lo_now.eq(Mux(s7.relu, z7, lo7)), hi_now.eq(hi7), hi_rel.eq(hi7 - z7)]
        lo8, hi8 = stage("s8_lo", signed(acc_bits + 1)), stage("s8_hi", signed(acc_bits + 1))
        below8, above8 = stage("s8_below", signed(acc_bits + 4)), stage("s8_above", signed(acc_bits + 4))
        # S9 rounds and adds the zero point in one adder: ((sh + 1) >> 1) + z = (sh + 2z + 1) >> 1.
        round8 = stage("s8_round", signed(cfg.zero_point.shape().width + 2))
        with m.If(advance):
            m.d.sync += [lo8.eq(lo_now), hi8.eq(hi_now), below8.eq((lo7 << 1) + not_2z7), above8.eq(hi_rel << 1),
                         round8.eq((z7 << 1) + 1)]
        lo9, hi9 = delayed("s9_lo", lo8, 1), delayed("s9_hi", hi8, 1)

        # Pooling stages: the pair is registered in S11 (split: compare and sum in S11, the choice in S11b), the
        # window in S12; tags of the stage a group leaves as it enters the next one.
        s9, s10 = tags[8 + X], tags[9 + X]
        s_lb_read = tags[8 + X + P]                       # entering the stage before the pair's
        s_pair_in = tags[9 + X + P]                       # entering the pair register
        s_pair = tags[10 + X + P]                         # in the pair register
        s_window = tags[11 + X + P]                       # in the window register, entering the output one
        pair_avg = s_pair_in.pool == POOL_CODES["avg"]
        pool_on = s_pair.pool != POOL_CODES["none"]
        out_pool_on = s_window.pool != POOL_CODES["none"]  # and divided on the way out
        out_is_avg = s_window.pool == POOL_CODES["avg"]

        pooling = spec.postop_pooling            # False: no pooling hardware (the stages keep their
                                                 # registers: same latency, same cycles)
        if pooling:
            # Line buffer of horizontal pairs from even rows, a `PipelinedMemory` (no block RAM clock-to-out in
            # front of the window's adder): entry pair * groups + group; read issued as a group enters the stage
            # before the pair's (S10; S11 when split), its word with the group's pair. With one group, only the pair
            # of the row above can be written at the edge the read is issued (2 beats ahead, when out_w is 2): that
            # write is forwarded. With more, the row above was written at least 2 * groups groups before its read.
            m.submodules.line_buffer = line_buffer = PipelinedMemory(width=lanes * lb_bits, depth=lb_depth * groups)
            lb_write_en = advance & valid[10 + X + P] & pool_on & s_pair.col_odd & ~s_pair.row_odd
            lb_data = Signal(lanes * lb_bits)
            if groups > 1:
                # Read a stage earlier still and registered in the fabric (the window's compare started at the
                # block RAM's output register, 7.8 ns of route at the 8x8's seed 1): the row above was written at
                # least 2 * groups - 1 groups before this read (2 * groups before the one a stage later).
                s_lb_read = tags[7 + X + P]
            m.d.comb += [line_buffer.read_addr.eq(_times(s_lb_read.pair, groups) + s_lb_read.group),
                         line_buffer.read_en.eq(advance), line_buffer.data_en.eq(advance),
                         line_buffer.write_addr.eq(_times(s_pair.pair, groups) + s_pair.group),
                         line_buffer.write_data.eq(lb_data), line_buffer.write_en.eq(lb_write_en)]
            if groups == 1:
                assert not P
                forward10, forward_data10 = stage("s10_forward", 1), stage("s10_forward_data", lanes * lb_bits)
                with m.If(advance):
                    m.d.sync += [forward10.eq(lb_write_en & (s_pair.pair == s_lb_read.pair)),
                                 forward_data10.eq(lb_data)]
                forward11 = delayed("s11_forward", forward10, 1)
                forward_data11 = delayed("s11_forward_data", forward_data10, 1)
                row_above = Mux(forward11, forward_data11, line_buffer.read_data)
            else:
                row_above = delayed("s11_row_above", line_buffer.read_data, 1)

            # The even column's value of every group, read as the odd column's group forms its pair.
            if groups == 1:
                held_all = stage("pool_held", unsigned(group_bits))
                held_write = advance & valid[9 + X] & ~s10.col_odd
                held_word = held_all
            else:
                # Read a cycle ahead (the group in S9, as it enters S10) into the read port's register, so the pair's
                # compare starts from a flip-flop, not a LUT RAM read (that was the 8x8's critical path, 9.2 ns). The
                # even column's group g is written as it leaves S10; the odd column's group g enters S10 at least
                # `groups` groups later, so with groups >= 2 its read (an edge earlier) always follows the write.
                m.submodules.pool_held = held_mem = memory.Memory(shape=unsigned(group_bits), depth=groups, init=[])
                held_w, held_r = held_mem.write_port(), held_mem.read_port()
                held_write = held_w.en
                m.d.comb += [held_w.addr.eq(s10.group), held_r.addr.eq(s9.group), held_r.en.eq(advance),
                             held_w.en.eq(advance & valid[9 + X] & ~s10.col_odd)]
                held_word = held_r.data

        out_lanes, lb_lanes, y_lanes = [], [], []
        if spec.is_float:
            # The float lane: ``lanes`` of them, a group of the beat per cycle like the integer lanes (s2_group is
            # the group's lanes, the held value and the line buffer are the shared ones above). No stochastic
            # rounding on a float spec (X = 0); a narrow chain splits the pair (P = 1) as the integer lane does,
            # so the latency is latency_for(spec).
            assert not X, X
            s8 = tags[7]
        for j in range(lanes if spec.is_float else 0):
            # The float lane: bias add into S3; the scale multiply (S4-S7 on a 24 x 24 `WideMultiplier`, rounded
            # into S8); rounding to the 16-bit output format into S9 (still an fp32 pattern); ReLU into S10; max
            # pooling in S11/S12 (a narrow chain: the pair's NaN test and compare registered in S11 beside both
            # operands, the choice in S11b); re-packed to 16 bits on the way out.
            fmt = spec.float_format
            lane = params[j]
            acc = s2_group[j * 32:(j + 1) * 32]
            x, scale = stage(f"s3_x_{j}", 32), stage(f"s3_scale_{j}", 32)
            biased = fp32_add(m, acc, lane.bias.as_unsigned(), f"bias_adder_{j}")
            with m.If(advance):
                m.d.sync += [x.eq(Mux(s2.bias, biased, acc)), scale.eq(lane.multiplier.as_unsigned())]
            sig_x, sig_scale, meta = fp32_mul_operands(m, x, scale, f"scale_{j}")
            multiplier = WideMultiplier(a_shape=unsigned(24), b_shape=unsigned(24))
            m.submodules[f"scale_multiplier_{j}"] = multiplier
            m.d.comb += [multiplier.a.eq(sig_x), multiplier.b.eq(sig_scale), multiplier.en.eq(advance)]
            meta7 = delayed(f"scale_meta_{j}", meta, WideMultiplier.LATENCY)
            x7 = delayed(f"x_{j}", x, WideMultiplier.LATENCY)
            scaled = fp32_mul_round(m, multiplier.p, meta7, f"scale_{j}")
            r8, n9 = stage(f"s8_r_{j}", 32), stage(f"s9_n_{j}", 32)
            narrowed = fp32_round_to(m, r8, fmt, f"narrow_{j}")
            with m.If(advance):
                m.d.sync += [r8.eq(Mux(s7.requant, scaled, x7)),
                             n9.eq(Mux(s8.requant & (s8.out_bits == 16), narrowed, r8))]
            y = stage(f"s10_y_{j}", 32)
            with m.If(advance):
                m.d.sync += y.eq(Mux(s9.relu, fp32_relu(n9), n9))
            y_lanes.append(y)
            if not pooling:
                value = y
                for name in ("s11_y", "s11b_y", "s12_y") if P else ("s11_y", "s12_y"):
                    reg = stage(f"{name}_{j}", 32)
                    with m.If(advance):
                        m.d.sync += reg.eq(value)
                    value = reg
                out16 = s_window.requant & (s_window.out_bits == 16)
                out_lanes.append(Mux(out16, fp32_to_format(value, fmt), value))
                continue
            held = held_word[j * 32:(j + 1) * 32]          # the even column's value (the shared pool_held)
            y11, pair = stage(f"s11_y_{j}", 32), stage(f"s11_pair_{j}", 32)
            if P:
                held11 = stage(f"s11_held_{j}", 32)
                nan11, y_greater11 = stage(f"s11_pair_nan_{j}", 1), stage(f"s11_y_greater_{j}", 1)
                nan, y_greater = fp32_max_flags(held, y)
                with m.If(advance):
                    m.d.sync += [y11.eq(y), held11.eq(held), nan11.eq(nan), y_greater11.eq(y_greater)]
                y_pair, pair = stage(f"s11b_y_{j}", 32), stage(f"s11b_pair_{j}", 32)
                with m.If(advance):
                    m.d.sync += [y_pair.eq(y11), pair.eq(fp32_max_choice(held11, y11, nan11, y_greater11))]
            else:
                with m.If(advance):
                    m.d.sync += [y11.eq(y), pair.eq(fp32_max(held, y))]
                y_pair = y11
            above = row_above[j * lb_bits:j * lb_bits + 32]
            y12, window = stage(f"s12_y_{j}", 32), stage(f"s12_window_{j}", 32)
            with m.If(advance):
                m.d.sync += [y12.eq(y_pair), window.eq(fp32_max(above, pair))]
            value = Mux(out_pool_on, window, y12)
            out16 = s_window.requant & (s_window.out_bits == 16)
            out_lanes.append(Mux(out16, fp32_to_format(value, fmt), value))
            lb_lanes.append(Cat(pair, Const(0, lb_bits - 32)))
        for j in range(0 if spec.is_float else lanes):
            # S3: bias add, and the multiplier operands (bypassed to *1 >> 0 without requantization).
            lane = params[j]
            acc = s2_group[j * acc_bits:(j + 1) * acc_bits].as_signed()
            mult = stage(f"s3_mult_{j}", signed(m_bits))
            shift3 = stage(f"s3_shift_{j}", unsigned(6))
            shift2 = Signal(unsigned(6), name=f"s2_shift_{j}")
            m.d.comb += shift2.eq(Mux(s2.requant, lane.shift, 0))
            # x = acc + bias (0 without bias), added in two halves split where the multiplier's operand parts are
            # (`operand_parts`: 17 low bits): S3 registers the low half's sum and carry beside the high halves of acc
            # and bias, and the high half's sum (with that carry) is made from those flip-flops in front of the
            # multiplier's own input registers (S4). The parameter word comes from a block RAM that can sit far
            # from the lane, and the multiplier's tiles from the lane: a 33-bit carry chain after either route
            # was the 8x8's critical path (the word -> the adder -> S3's x, seeds 2 and 3 at e2d32fb, 6.75 and
            # 7.08 ns, 2.7-3.0 ns of it the route from the block RAM; the bias register -> the adder -> a tile's
            # A pins, seed 1 with the whole add after S3, 6.94 ns, 3.0 ns of it the route to the tile).
            low_bits = operand_parts(signed(x_bits))[1][0]     # x_bits >= 33: two parts or more
            acc_x, bias_x = Signal(signed(x_bits)), Signal(signed(x_bits))
            m.d.comb += [acc_x.eq(acc), bias_x.eq(lane.bias)]
            # On iCE40 (whose clock the chain does not set, and whose UP5K is nearly full with it) the no-bias
            # choice stays in S2, after the chain: no copy of acc's low half.
            lean = target.family(platform) == "ice40"
            low3 = stage(f"s3_x_low_{j}", unsigned(low_bits))
            acc_low3 = None if lean else stage(f"s3_acc_low_{j}", unsigned(low_bits))
            carry3 = stage(f"s3_x_carry_{j}", 1)
            acc_high3 = stage(f"s3_acc_high_{j}", unsigned(x_bits - low_bits))
            bias_high3 = stage(f"s3_bias_high_{j}", unsigned(x_bits - low_bits))
            high = add_with_carry(acc_high3, bias_high3, carry3)[:x_bits - low_bits]
            x = Signal(signed(x_bits), name=f"s3_x_{j}")
            # Without bias the low half is acc's own, chosen here, in front of the multiplier's input registers
            # (a gate after the low chain put a LUT and a route between the block RAM and S3: 7.14 ns at seed 2
            # of b8dd837, 3.94 ns of it the route from the block RAM).
            m.d.comb += x.eq(Cat(low3 if lean else Mux(tags[2].bias, low3, acc_low3), high))
            # The multiplier is pre-shifted by the word's own shift and then chosen against the constant that
            # 1 << e is without requantization.
            with m.If(advance):
                # The word's bias goes straight into the low adder and its sum straight into S3 (a gate in front
                # of the chain added a LUT and a route after the block RAM's: 7.48 ns at seed 1 of an earlier
                # form); the carry is kept only with bias (a flip-flop's synchronous reset, no LUT after it).
                low_sum = Signal(unsigned(low_bits + 1), name=f"s2_x_low_sum_{j}")
                m.d.comb += low_sum.eq(acc_x[:low_bits] + bias_x[:low_bits])
                if lean:
                    m.d.sync += low3.eq(Mux(s2.bias, low_sum[:low_bits], acc_x[:low_bits]))
                else:
                    m.d.sync += [low3.eq(low_sum[:low_bits]), acc_low3.eq(acc_x[:low_bits])]
                m.d.sync += [carry3.eq(low_sum[low_bits] & s2.bias),
                             acc_high3.eq(acc_x[low_bits:]),
                             bias_high3.eq(Mux(s2.bias, bias_x[low_bits:], 0)),
                             mult.eq(Mux(s2.requant, lane.multiplier << ~lane.shift[:pre_bits],
                                         1 << ((1 << pre_bits) - 1)) if pre_bits
                                     else Mux(s2.requant, lane.multiplier, 1)),
                             shift3.eq(shift2)]
            # S4-S7: the multiply, tiled over hard multipliers with its partial sums registered.
            multiplier = WideMultiplier(a_shape=x.shape(), b_shape=mult.shape())
            m.submodules[f"requant_multiplier_{j}"] = multiplier
            m.d.comb += [multiplier.a.eq(x), multiplier.b.eq(mult), multiplier.en.eq(advance)]
            p = multiplier.p
            assert len(p) <= p_bits
            if X:
                # Stochastic rounding: lane j's LFSR gives the beat in S3 its 16-bit draw R (restarting at the
                # lane's seed on a command's first beat); r = floor(R * 2**(s - 16)) = (R << 47) >> (63 - s), and
                # the offset r - 2**(s-1) added to p (S7a) turns S8/S9's round-half-up into floor((p + r) / 2**s).
                # A narrow chain (groups > 1): lane j processes column g * lanes + j for group g, so it keeps
                # that column's generator for each group and selects (and advances) the one of the group in S3:
                # still one generator per column, drawing once per beat.
                s3 = tags[2]
                seeds = [column_seeds(spec.rounding_seed, cols)[g * lanes + j] for g in range(groups)]
                states = [Signal(32, init=seed, name=f"sr_state_{j}" if groups == 1 else f"sr_state_{j}_g{g}")
                          for g, seed in enumerate(seeds)]
                current = Signal(32, name=f"sr_current_{j}")
                if groups == 1:
                    m.d.comb += current.eq(Mux(s3.first, seeds[0], states[0]))
                else:
                    with m.Switch(s3.group):
                        for g in range(groups):
                            with m.Case(g):
                                m.d.comb += current.eq(Mux(s3.first, seeds[g], states[g]))
                following, draw = unrolled_draw(current)
                with m.If(advance & valid[2]):
                    if groups == 1:
                        m.d.sync += states[0].eq(following)
                    else:
                        with m.Switch(s3.group):
                            for g in range(groups):
                                with m.Case(g):
                                    m.d.sync += states[g].eq(following)
                r = Signal(unsigned(63), name=f"sr_r_{j}")
                half = Signal(unsigned(63), name=f"sr_half_{j}")
                m.d.comb += [r.eq((draw << 47) >> (~shift3)[:6]), half.eq((Const(1, 64) << shift3)[1:])]
                # The offset is added to the pre-shifted product p' = p << e: shifted by e as well.
                off = stage(f"s4_sr_offset_{j}", signed(65 + unit - 1))
                offset = Signal(signed(65), name=f"sr_offset_now_{j}")
                m.d.comb += offset.eq(r - half)
                with m.If(advance):
                    m.d.sync += off.eq(Mux(s3.stochastic & s3.requant,
                                           offset << ~shift3[:pre_bits] if pre_bits else offset, 0))
                off7 = delayed(f"sr_offset_{j}", off, WideMultiplier.LATENCY - 1)
                p2 = stage(f"s7a_p_{j}", signed(p_bits + 1))
                with m.If(advance):
                    m.d.sync += p2.eq(p + off7)
                p = p2
            # The shift amount reaches S8 as SHIFT_COPIES flip-flop copies, each selecting one part of every
            # level of the shifter (not a shifter per part: the levels are shared), so no flip-flop drives
            # a whole level (the 8x8's critical path at seed 1: 4.9 ns of route from one shift register).
            shift6 = delayed(f"shift_{j}", shift3[pre_bits:], WideMultiplier.LATENCY + X - 1)
            shift7 = registered_copies(m, shift6, name=f"shift_{j}", count=self.SHIFT_COPIES, enable=advance)
            # S8: sh = (2p) >> s (arithmetic), so that round_shift(p, s) = (sh + 1) >> 1; made as q >> u with
            # q = 2p' >> (unit - 1) and u = unit * (s // unit) (p' the pre-shifted product: the same value).
            # Only sh's low `sh_bits` bits (a narrow shifter): the saturation tests below need sh exactly only
            # while it fits the bounds' `bound_bits`, and beyond that only its sign and whether it fits. sh fits
            # bound_bits (signed) when the bits of q from t = u + bound_bits - 1 up are all its sign: bits
            # t .. t + 2 are sh's bits bound_bits - 1 .. sh_bits - 1, and from the first 4-bit block of q that
            # starts at or after t (it starts by t + 3) each block's "all sign" flag is registered beside its
            # "counts" flag (block start >= t, from the shift amount); S9 combines them.
            q = (p.as_signed() << 1) >> (unit - 1)
            q_bits = len(q)
            bound_bits = len(below8)
            sh_bits = bound_bits + 2
            assert len(above8) == bound_bits and sh_bits <= q_bits
            sh = stage(f"s8_sh_{j}", signed(sh_bits))
            sign8 = stage(f"s8_sign_{j}", 1)
            first_block, blocks = -(-(bound_bits - 1) // 4), -(-q_bits // 4)
            all_sign8 = stage(f"s8_block_all_sign_{j}", max(blocks - first_block, 1))
            counts8 = stage(f"s8_block_counts_{j}", max(blocks - first_block, 1))
            q_sign = q.as_signed()[-1]
            with m.If(advance):
                m.d.sync += [sh.eq(_shift_right(m, q, shift7, q_bits, sh_bits, unit, name=f"s8_shifter_{j}")),
                             sign8.eq(q_sign)]
                for n, b in enumerate(range(first_block, blocks)):
                    block = [q.as_signed()[min(k, len(q) - 1)] for k in range(4 * b, min(4 * b + 4, q_bits))]
                    copy = shift7[n * len(shift7) // (blocks - first_block)]
                    m.d.sync += [all_sign8[n].eq(Cat(*block) == Mux(q_sign, (1 << len(block)) - 1, 0)),
                                 counts8[n].eq(copy <= (4 * b - bound_bits + 1) // unit)]
            fits = Signal(name=f"s8_sh_fits_{j}")
            top = sh[bound_bits - 1:]
            m.d.comb += fits.eq((top == Mux(sign8, (1 << len(top)) - 1, 0)) & (all_sign8 | ~counts8).all())
            # S9: the rounded value plus the zero point, ((sh + 1) >> 1) + z = (sh + 2z + 1) >> 1, in its low
            # bits (all a value in range has; modulo 2**acc_bits the same bits), and the saturation tests made
            # on sh itself: (sh + 1) >> 1 < lo  <=>  sh < 2 lo - 1, and  > hi  <=>  sh > 2 hi (sh beyond
            # bound_bits is beyond both bounds, on its sign's side).
            # The compares are registered as part flags (`greater_in_parts`) beside `fits` and the sign, and
            # combined in front of S10's choice (a 38-bit compare under `fits`, five LUT levels, was the 8x8's
            # critical path at seed 3: `s8_above` -> `s9_over`, 7.56 ns).
            rz = stage(f"s9_rz_{j}", signed(acc_bits))
            fits9, sign9 = stage(f"s9_fits_{j}", 1), stage(f"s9_sign_{j}", 1)
            below_sh = greater_in_parts(m, below8, sh, name=f"s9_below_{j}", enable=advance)
            sh_above = greater_in_parts(m, sh, above8, name=f"s9_above_{j}", enable=advance)
            with m.If(advance):
                m.d.sync += [rz.eq(((sh[:acc_bits + 1] + round8) >> 1)[:acc_bits]), fits9.eq(fits),
                             sign9.eq(sign8)]
            under, over = Signal(name=f"s9_under_{j}"), Signal(name=f"s9_over_{j}")
            m.d.comb += [under.eq(Mux(fits9, below_sh, sign9)), over.eq(Mux(fits9, sh_above, ~sign9))]
            # S10: saturate to the output type (ReLU raised the lower bound to z); in range, r + z.
            y = stage(f"s10_y_{j}", signed(acc_bits))
            with m.If(advance):
                m.d.sync += y.eq(Mux(under, lo9, Mux(over, hi9, rz)))
            y_lanes.append(y)

            # Pooling: the horizontal pair registered into S11 (beside the value itself); the window, from the
            # pair and the line buffer's entry of the row above, into S12; averaged on the way out. Split (a
            # narrow chain): S11 registers the pair's compare and sum beside both operands, S11b the choice, and
            # the sum + 2 that the average's rounding needs, so the window's sum is the rounded one.
            if not pooling:
                # The pooling stages' value registers only (S11, S11b on a narrow chain, S12).
                value = y
                for name in ("s11_y", "s11b_y", "s12_y") if P else ("s11_y", "s12_y"):
                    reg = stage(f"{name}_{j}", signed(acc_bits))
                    with m.If(advance):
                        m.d.sync += reg.eq(value)
                    value = reg
                out_lanes.append(value)
                continue
            held = held_word[j * acc_bits:(j + 1) * acc_bits].as_signed()       # the even column's value
            y11 = stage(f"s11_y_{j}", signed(acc_bits))
            pair = stage(f"s11_pair_{j}", signed(lb_bits))
            if P:
                held11 = stage(f"s11_held_{j}", signed(acc_bits))
                sum11 = stage(f"s11_sum_{j}", signed(lb_bits))
                held_greater11 = greater_in_parts(m, held, y, name=f"s11_held_{j}", enable=advance)
                with m.If(advance):
                    m.d.sync += [y11.eq(y), held11.eq(held), sum11.eq(held + y)]
                y_pair = stage(f"s11b_y_{j}", signed(acc_bits))
                pair = stage(f"s11b_pair_{j}", signed(lb_bits))
                pair_rounding = stage(f"s11b_pair_plus_2_{j}", signed(lb_bits + 1))   # sum + 2 (average only)
                with m.If(advance):
                    m.d.sync += [y_pair.eq(y11), pair_rounding.eq(sum11 + 2),
                                 pair.eq(Mux(pair_avg, sum11, Mux(held_greater11, held11, y11)))]
            else:
                with m.If(advance):
                    m.d.sync += [y11.eq(y), pair.eq(Mux(pair_avg, held + y, Mux(held > y, held, y)))]
                y_pair, pair_rounding = y11, None
            above = row_above[j * lb_bits:(j + 1) * lb_bits].as_signed()
            # The window's sum and compare side by side (registered with both operands); the output stage
            # picks the maximum, or divides the sum.
            y12 = stage(f"s12_y_{j}", signed(acc_bits))
            window_sum = stage(f"s12_window_sum_{j}", signed(lb_bits + 2))
            above_greater = greater_in_parts(m, above, pair, name=f"s12_above_{j}", enable=advance)
            above12, pair12 = stage(f"s12_above_{j}", signed(lb_bits)), stage(f"s12_pair_{j}", signed(lb_bits))
            with m.If(advance):
                m.d.sync += [y12.eq(y_pair), above12.eq(above), pair12.eq(pair),
                             window_sum.eq(above + (pair if pair_rounding is None else pair_rounding))]
            average = (window_sum + 2) >> 2 if pair_rounding is None else window_sum >> 2
            pooled = Mux(out_is_avg, average, Mux(above_greater, above12, pair12))
            out_lanes.append(Mux(out_pool_on, pooled, y12)[:acc_bits])
            lb_lanes.append(pair)
        if pooling:
            m.d.comb += lb_data.eq(Cat(*lb_lanes))
            if groups == 1:
                with m.If(held_write):
                    m.d.sync += held_all.eq(Cat(*y_lanes))
            else:
                m.d.comb += held_w.data.eq(Cat(*y_lanes))

        # The output register: each group's lanes, the beat offered with its last group (on a free-running
        # chain offered through the skid below).
        if free:
            o_valid, o_dest = Signal(name="co_valid"), Signal(name="co_dest")
            o_payload = Signal(spec.acc_word_bits, name="co_payload")
        else:
            o_valid, o_dest, o_payload = self.o.valid, self.o_dest, self.o.payload
        emit = (~out_pool_on | (s_window.col_odd & s_window.row_odd)) if pooling else Const(1, 1)
        last_group12 = s_window.group == groups - 1
        with m.If(advance):
            m.d.sync += [o_valid.eq(valid[11 + X + P] & emit & last_group12), o_dest.eq(s_window.dest)]
            if groups == 1:
                m.d.sync += o_payload.eq(Cat(*out_lanes))
            else:
                with m.If(valid[11 + X + P] & emit):
                    with m.Switch(s_window.group):
                        for g in range(groups):
                            with m.Case(g):
                                m.d.sync += o_payload[g * group_bits:(g + 1) * group_bits].eq(Cat(*out_lanes))
        if free:
            # The skid: a beat the output register offers while `o` is not ready (or behind older beats) is
            # written into a small LUT memory, read from there in order; `o` shows the skid's head, or the
            # output register itself when the skid is empty (no cycle added while `o` is ready).
            # The memory is SKID_PARTS memories side by side, each addressed by its own copies of the head and
            # tail registers (the 8x8's critical path at seed 2: one head register's route to every LUT-RAM
            # slice of the 257-bit word, 6.7 ns over 3 tiles).
            depth = self.skid_depth(spec)
            width = spec.acc_word_bits + 1
            parts = min(self.SKID_PARTS, width)
            step = -(-width // parts)
            bounds = [(k * step, min((k + 1) * step, width)) for k in range(parts)]
            head, tail = Signal(range(depth), name="skid_head"), Signal(range(depth), name="skid_tail")
            heads = [Signal(range(depth), name=f"skid_head_copy_{k}") for k in range(parts)]
            tails = [Signal(range(depth), name=f"skid_tail_copy_{k}") for k in range(parts)]
            count = Signal(range(depth + 1), name="skid_count")
            nonempty = Signal(name="skid_nonempty")
            skid_read, skid_write = Signal(name="skid_read"), Signal(name="skid_write")
            write_data, read_data = Signal(width), Signal(width)
            m.d.comb += write_data.eq(Cat(o_payload, o_dest))
            for k, (lo, hi) in enumerate(bounds):
                m.submodules[f"skid_{k}"] = part = memory.Memory(shape=unsigned(hi - lo), depth=depth, init=[])
                part_w, part_r = part.write_port(), part.read_port(domain="comb")
                m.d.comb += [part_r.addr.eq(heads[k]), part_w.addr.eq(tails[k]), part_w.en.eq(skid_write),
                             part_w.data.eq(write_data[lo:hi]), read_data[lo:hi].eq(part_r.data)]
            m.d.comb += [
                self.o.valid.eq(nonempty | o_valid),
                self.o.payload.eq(Mux(nonempty, read_data[:-1], o_payload)),
                self.o_dest.eq(Mux(nonempty, read_data[-1], o_dest)),
                skid_write.eq(o_valid & (nonempty | ~self.o.ready)),
                skid_read.eq(nonempty & self.o.ready),
            ]
            next_count = Signal(range(depth + 1))
            m.d.comb += next_count.eq(count + skid_write - skid_read)
            m.d.sync += [count.eq(next_count), nonempty.eq(next_count != 0)]
            with m.If(skid_write):
                m.d.sync += [r.eq(Mux(tail == depth - 1, 0, tail + 1)) for r in [tail, *tails]]
            with m.If(skid_read):
                m.d.sync += [r.eq(Mux(head == depth - 1, 0, head + 1)) for r in [head, *heads]]
            # Credits: one per skid entry, taken as a beat is accepted, returned a cycle after the beat leaves
            # on `o` (registered: `o.ready` reaches no further than the skid and this flip-flop) or as its last
            # group leaves the window stage without an output (pooling keeps one beat of four).
            credits = Signal(range(depth + 1), init=depth, name="out_credits")
            left, dropped = Signal(name="credit_left"), Signal(name="credit_dropped")
            m.d.sync += [left.eq(self.o.valid & self.o.ready),
                         dropped.eq(valid[11 + X + P] & ~emit & last_group12)]
            next_credits = Signal(range(depth + 1))
            m.d.comb += next_credits.eq(credits - accept + left + dropped)
            m.d.comb += self.next_i_ready.eq((next_credits != 0) & Mux(take, group == groups - 2, last_group))
            m.d.sync += [credits.eq(next_credits), credit.eq(next_credits != 0), in_ready.eq(self.next_i_ready)]
        return m
