"""The rows x cols weight-stationary systolic array, with its input skew and output de-skew.

Seen from outside it is a fixed-latency pipeline: the activation vector presented at cycle ``t`` (lane ``i`` for
row ``i``) yields the column sums ``sum_i act[i] * w[i][j]`` at the output ``LATENCY`` cycles later, all columns
aligned. Inside, row ``i`` is delayed ``i`` cycles (skew), activations travel right one PE per cycle, partial
sums travel down one PE per cycle, and column ``j`` is delayed ``cols-1-j`` cycles (de-skew).

Weight rows are written with no skew: writing row ``i`` at cycle ``t + i`` is the same as skewing a
simultaneous write, so a fold's weights can be streamed in one row per cycle just ahead of its activations.

``enable_copies=True`` adds an ``en`` input: the array then advances in the cycle after each cycle with ``en``
high (``en`` registered), and every PE, skew row and de-skew column takes its own registered copy of ``en``
(flip-flops named ``en_copy_*``), so no single net drives the clock enable of every register of the array. The
FPGA flow marks those flip-flops ``keep`` so that synthesis does not merge the copies back into one.
``enable_groups=G`` makes ``en`` G bits wide, G registered copies of the same enable made outside: bit ``g``
feeds the copies of the columns ``j`` with ``j * G // cols == g`` (and of their de-skew; the input skew takes
bit 0). Each group's copies then sit behind a gate of their own (synthesis puts the synchronous reset of a
flip-flop into a LUT in front of it, and one such LUT shared by every copy was a route across the chip to the
LUT and another back to each copy) instead of one net reaching all of them: the same enable every cycle.
``enable_registered=False`` (with ``enable_groups``, the top's form) drops the array's own copies: bit ``g`` of
``en`` is itself the clock enable of its columns' registers, and the array advances in the cycles ``en`` is
high. The caller then registers ``en`` one stage earlier (one flip-flop per column, fed from a flip-flop: no
logic between the stall decision's register and the array's clock enables).

Structure: ``cols`` instances ``col_j`` of one `SystolicColumn` (``rows`` PEs ``pe_i``, the partial sums
flowing down inside it), so PE ``(i, j)`` is ``array.col_j.pe_i``; the skew and de-skew are `delay.DelayLine`
blocks. With a module library (`library`; the Verilog back end) the column and the PE are one module each:
the Verilog of an array is a few hundred lines whatever its size.

Under a platform that limits the array's hard multipliers (`target.pe_multiplier_cells`, e.g. a 16x16 array on
the 156 MULT18X18D of an ECP5-85F), PEs take them column by column from ``col_0``, top row first, and the
rest multiply in logic (`WeightStationaryPE`'s ``multiplier_cell=False``): same cycles, same sums.

Where the products are narrow enough for two to share one hard multiplier (int8 x int4 on a MULT18X18D;
`target.pair_operand_bits`, `pe_pair.pair_weight_shape`), columns ``2k`` and ``2k + 1`` are one
`SystolicColumnPair` ``cols_{2k}_{2k+1}`` of `pe_pair.PackedPEPair` ``pair_i``, half the multipliers; an odd last
column stays a `SystolicColumn`. The right column of a pair multiplies a cycle early (the pair shares the left
PE's activation) and its de-skew is a cycle longer, so the array's latency and its output are unchanged.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import target
from .delay import delayed
from .library import place
from .pe import WeightStationaryPE
from .pe_pair import PackedPEPair, pair_weight_shape

__all__ = ["SystolicArray", "SystolicColumn", "SystolicColumnPair", "array_latency", "load_select_groups"]


def array_latency(*, rows, cols):
    """Cycles from an activation vector at the input to its aligned column sums at the output."""
    # Row rows-1 is skewed rows-1 cycles, then its operand, multiplier (2), product and psum registers (5),
    # then column j's sum leaves the bottom after j more hops and is de-skewed to cols-1 hops.
    return (rows - 1) + WeightStationaryPE.LATENCY + 1 + (cols - 1)


def _member_enable(m, column, name):
    """The enable of one PE (or PE pair) of ``column``: 1 without ``enable_copies``; the column's ``en`` itself with
    ``enable_registered=False``; else a flip-flop ``name`` registered from it."""
    if not column.enable_copies:
        return 1
    if not column.enable_registered:
        return column.en
    copy = Signal(name=name)
    m.d.sync += copy.eq(column.en)
    return copy


def _shape_key(*shapes):
    return tuple((shape.width, shape.signed) for shape in shapes)


def load_select_groups(cols):
    """Column groups that take their own copy of the weight-load selects (`SystolicArray`'s
    ``load_select_groups``): one per 4 columns."""
    return -(-cols // 4)


class SystolicArray(wiring.Component):
    """See the module docstring. ``load_select_groups=G``: instead of ``load_en``/``load_row``/``load_bank``
    the array takes ``load_sel``, G copies of the decoded selects, copy ``g`` (bits ``g * (rows + 1)`` on: the
    one-hot row select ``load_en & (load_row == i)``, then ``load_bank``) driving the columns ``j`` with
    ``j * G // cols == g`` (a pair by its left column). The copies are registers outside (the top decodes the
    row a stage early), so a row select reaches ``cols / G`` columns from a flip-flop instead of being decoded
    once for the whole width: the same loads in the same cycles."""

    def __init__(self, *, rows, cols, act_type, weight_type, psum_bits, enable_copies=False,
                 load_select_groups=None, enable_groups=None, enable_registered=True):
        self.rows, self.cols = rows, cols
        self.enable_copies, self.enable_registered = enable_copies, enable_registered
        if enable_groups is not None and (not enable_copies or not 1 <= enable_groups <= cols):
            raise ValueError(f"enable_groups needs enable_copies and must be 1 to cols ({cols}), "
                             f"not {enable_groups!r}")
        if not enable_registered and not enable_copies:
            raise ValueError("enable_registered=False needs enable_copies (the `en` input it leaves unregistered)")
        self.enable_groups = 1 if enable_groups is None else enable_groups
        if load_select_groups is not None and not 1 <= load_select_groups <= cols:
            raise ValueError(f"load_select_groups must be 1 to cols ({cols}), not {load_select_groups!r}")
        self.load_select_groups = load_select_groups
        self.act_type, self.weight_type = act_type, weight_type
        is_signed = act_type.signed or weight_type.signed
        self.psum_shape = signed(psum_bits) if is_signed else unsigned(psum_bits)
        self.fmt = act_type.name if getattr(act_type, "is_float", False) else None   # the float PEs' format
        super().__init__({
            "acts": In(unsigned(rows * act_type.bits)),
            "bank": In(1),
            **({"load_en": In(1), "load_row": In(range(rows)), "load_bank": In(1)} if load_select_groups is None
               else {"load_sel": In(load_select_groups * (rows + 1))}),
            "load_data": In(unsigned(cols * weight_type.bits)),
            "psums": Out(unsigned(cols * psum_bits)),
            **({"en": In(self.enable_groups)} if enable_copies else {}),
        })

    @property
    def latency(self):
        return array_latency(rows=self.rows, cols=self.cols)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        abits, wbits, pbits = self.act_type.bits, self.weight_type.bits, self.psum_shape.width
        act_shape, weight_shape = self.act_type.amaranth_shape(), self.weight_type.amaranth_shape()

        def group_en(j):
            """Column j's bit of `en` (see ``enable_groups``)."""
            return self.en[j * self.enable_groups // cols]

        def enable(name, j):
            """A registered copy of column j's `en` for one group of registers (1 when the array is always
            enabled; the group's bit itself with ``enable_registered=False``)."""
            if not self.enable_copies:
                return 1
            if not self.enable_registered:
                return group_en(j)
            copy = Signal(name=f"en_copy_{name}")
            m.d.sync += copy.eq(group_en(j))
            return copy

        # Input skew: row i sees the vector i cycles late (its activation and the bank tag, i registers). The
        # skew and de-skew registers hold data only (the slot's control rides in the top's delay line): not reset.
        skewed_acts, skewed_banks = [], []
        for i in range(rows):
            lane = Cat(self.acts[i * abits:(i + 1) * abits], self.bank)
            lane = delayed(m, lane, i, name=f"skew_{i}", platform=platform, en=enable(f"skew_{i}", 0) if i else 1,
                           reset_less=True)
            skewed_acts.append(lane[:abits])
            skewed_banks.append(lane[abits])

        # Weight load: one row per cycle, broadcast along the row.
        groups = self.load_select_groups
        if groups is None:
            row_selects = Signal(rows, name="load_rows")
            m.d.comb += row_selects.eq(Cat(self.load_en & (self.load_row == i) for i in range(rows)))
            selects = lambda j: (row_selects, self.load_bank)     # noqa: E731
        else:
            def selects(j):
                g = j * groups // cols
                return self.load_sel[g * (rows + 1):g * (rows + 1) + rows], self.load_sel[g * (rows + 1) + rows]

        # Activations (and their bank tag) travel right from column to column, partial sums down each column.
        cells = target.pe_multiplier_cells(platform)
        cells = rows * cols if cells is None or self.fmt is not None else cells
        operand_bits = target.pair_operand_bits(platform)
        paired = (self.fmt is None and operand_bits is not None
                  and pair_weight_shape(act_shape, weight_shape, operand_bits=operand_bits) is not None)
        acts, banks = Cat(*skewed_acts), Cat(*skewed_banks)
        column_sums, early = [], []         # early: the column's sum leaves a cycle ahead (a pair's right column)
        j = 0
        while j < cols:
            acts_out = Signal(rows * abits, name=f"col_{j}_acts")
            banks_out = Signal(rows, name=f"col_{j}_banks")
            load_rows, load_bank = selects(j)
            common = dict(acts_in=acts, banks_in=banks, acts_out=acts_out, banks_out=banks_out,
                          load_rows=load_rows, load_bank=load_bank,
                          **({"en": group_en(j)} if self.enable_copies else {}))
            if paired and j + 1 < cols:
                # Pair column j // 2: its PEs take hard multipliers two at a time, top row first.
                cell_rows = min(rows, max(0, cells // 2 - (j // 2) * rows))
                make_pair = lambda cell_rows=cell_rows: SystolicColumnPair(  # noqa: E731
                    rows=rows, act_shape=act_shape, weight_shape=weight_shape, psum_shape=self.psum_shape,
                    enable_copies=self.enable_copies, enable_registered=self.enable_registered,
                    operand_bits=operand_bits, cell_rows=cell_rows)
                pair_key = (rows, self.enable_copies, self.enable_registered, operand_bits,
                            *_shape_key(act_shape, weight_shape, self.psum_shape),
                            *((cell_rows,) if cell_rows < rows else ()))
                psums = [Signal(self.psum_shape, name=f"col_{j + k}_psum") for k in range(2)]
                place(m, f"cols_{j}_{j + 1}", make_pair, kind="column_pair", key=pair_key, platform=platform,
                      load_data=self.load_data[j * wbits:(j + 2) * wbits],
                      psum0_out=psums[0], psum1_out=psums[1], **common)
                column_sums += psums
                early += [False, True]
                j += 2
            else:
                cell_rows = min(rows, max(0, cells - j * rows))     # this column's PEs on hard multipliers
                make_column = lambda cell_rows=cell_rows: SystolicColumn(  # noqa: E731
                    rows=rows, act_shape=act_shape, weight_shape=weight_shape, psum_shape=self.psum_shape,
                    enable_copies=self.enable_copies, enable_registered=self.enable_registered, fmt=self.fmt,
                    cell_rows=cell_rows)
                column_key = (rows, self.enable_copies, self.enable_registered, self.fmt,
                              *_shape_key(act_shape, weight_shape, self.psum_shape),
                              *((cell_rows,) if cell_rows < rows else ()))
                psum = Signal(self.psum_shape, name=f"col_{j}_psum")
                place(m, f"col_{j}", make_column, kind="column", key=column_key, platform=platform,
                      load_data=self.load_data[j * wbits:(j + 1) * wbits], psum_out=psum, **common)
                column_sums.append(psum)
                early.append(False)
                j += 1
            acts, banks = acts_out, banks_out

        # Output de-skew: column j waits cols-1-j cycles so every column leaves together.
        for j in range(cols):
            wait = cols - 1 - j + early[j]
            psum = delayed(m, column_sums[j], wait, name=f"deskew_{j}", platform=platform,
                           en=enable(f"deskew_{j}", j) if wait else 1, reset_less=True)
            m.d.comb += self.psums[j * pbits:(j + 1) * pbits].eq(psum)
        return m


class SystolicColumn(wiring.Component):
    """One column of the array: ``rows`` PEs ``pe_i``, partial sums flowing down from zero at the top (``+0``
    for the float form, ``fmt``: the column sum is ``((+0 + p_0) + p_1) + ...``, top to bottom).

    Lane ``i`` of ``acts_in``/``banks_in`` feeds PE ``i``; ``acts_out``/``banks_out`` are the PEs' registered
    activations and bank tags (for the next column), ``psum_out`` the bottom PE's partial sum. Bit ``i`` of
    ``load_rows`` loads PE ``i``'s weight bank ``load_bank`` with ``load_data``. ``enable_copies=True``: every PE
    advances on its own registered copy of ``en`` (``en_copy_pe_i``), or with ``enable_registered=False`` on
    ``en`` itself; otherwise always. ``cell_rows``: the PEs
    of the top ``cell_rows`` rows multiply on the device's hard multiplier, the others in logic (all: ``None``).
    """

    def __init__(self, *, rows, act_shape, weight_shape, psum_shape, enable_copies, enable_registered=True,
                 fmt=None, cell_rows=None):
        self.rows, self.enable_copies, self.fmt = rows, enable_copies, fmt
        self.enable_registered = enable_registered
        self.cell_rows = rows if cell_rows is None else cell_rows
        self.act_shape, self.weight_shape, self.psum_shape = act_shape, weight_shape, psum_shape
        abits = act_shape.width
        super().__init__({
            "acts_in": In(rows * abits), "banks_in": In(rows),
            "acts_out": Out(rows * abits), "banks_out": Out(rows),
            "load_rows": In(rows), "load_bank": In(1), "load_data": In(weight_shape),
            "psum_out": Out(psum_shape),
            "en": In(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        abits = self.act_shape.width
        def make_pe(cell):
            return lambda: WeightStationaryPE(act_shape=self.act_shape, weight_shape=self.weight_shape,
                                              psum_shape=self.psum_shape, fmt=self.fmt, multiplier_cell=cell)
        psum = Const(0, self.psum_shape)
        acts, banks = [], []
        for i in range(self.rows):
            act, bank = Signal(self.act_shape, name=f"pe_{i}_act"), Signal(name=f"pe_{i}_bank")
            psum_out = Signal(self.psum_shape, name=f"pe_{i}_psum")
            en = _member_enable(m, self, f"en_copy_pe_{i}")   # a port: the PE's multiplier may be a device cell
            cell = i < self.cell_rows
            pe_key = (self.fmt, *_shape_key(self.act_shape, self.weight_shape, self.psum_shape),
                      *(() if cell else ("logic",)))
            place(m, f"pe_{i}", make_pe(cell), kind="pe", key=pe_key, platform=platform,
                  act_in=self.acts_in[i * abits:(i + 1) * abits], bank_in=self.banks_in[i],
                  act_out=act, bank_out=bank, psum_in=psum, psum_out=psum_out,
                  load_en=self.load_rows[i], load_bank=self.load_bank, load_data=self.load_data, en=en)
            acts.append(act)
            banks.append(bank)
            psum = psum_out
        m.d.comb += [self.acts_out.eq(Cat(*acts)), self.banks_out.eq(Cat(*banks)), self.psum_out.eq(psum)]
        return m


class SystolicColumnPair(wiring.Component):
    """Two neighbouring columns of the array as ``rows`` `pe_pair.PackedPEPair` ``pair_i``, each sharing one
    multiplier between its two PEs (``operand_bits``: the multiplier's signed operand width).

    Ports as `SystolicColumn`'s, for two columns: ``load_data`` holds the left column's weight (low) and the
    right's (high); ``psum0_out`` is the left column's sum, ``psum1_out`` the right's, which leaves one cycle
    earlier than a `SystolicColumn` would give it (the pair multiplies with the left PE's activation);
    ``acts_out``/``banks_out`` leave after both columns' registers (two cycles), as after two columns.
    ``cell_rows``: the pairs of the top ``cell_rows`` rows multiply on the device's hard multiplier, the others
    in logic.
    """

    def __init__(self, *, rows, act_shape, weight_shape, psum_shape, enable_copies, operand_bits,
                 enable_registered=True, cell_rows=None):
        self.rows, self.enable_copies, self.operand_bits = rows, enable_copies, operand_bits
        self.enable_registered = enable_registered
        self.cell_rows = rows if cell_rows is None else cell_rows
        self.act_shape, self.weight_shape, self.psum_shape = act_shape, weight_shape, psum_shape
        abits = act_shape.width
        super().__init__({
            "acts_in": In(rows * abits), "banks_in": In(rows),
            "acts_out": Out(rows * abits), "banks_out": Out(rows),
            "load_rows": In(rows), "load_bank": In(1), "load_data": In(2 * weight_shape.width),
            "psum0_out": Out(psum_shape), "psum1_out": Out(psum_shape),
            "en": In(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        abits = self.act_shape.width

        def make_pair(cell):
            return lambda: PackedPEPair(act_shape=self.act_shape, weight_shape=self.weight_shape,
                                        psum_shape=self.psum_shape, operand_bits=self.operand_bits,
                                        multiplier_cell=cell)
        psums = [Const(0, self.psum_shape)] * 2
        acts, banks = [], []
        for i in range(self.rows):
            act, bank = Signal(self.act_shape, name=f"pair_{i}_act"), Signal(name=f"pair_{i}_bank")
            outs = [Signal(self.psum_shape, name=f"pair_{i}_psum{k}") for k in range(2)]
            en = _member_enable(m, self, f"en_copy_pair_{i}")
            cell = i < self.cell_rows
            key = (self.operand_bits, *_shape_key(self.act_shape, self.weight_shape, self.psum_shape),
                   *(() if cell else ("logic",)))
            place(m, f"pair_{i}", make_pair(cell), kind="pe_pair", key=key, platform=platform,
                  act_in=self.acts_in[i * abits:(i + 1) * abits], bank_in=self.banks_in[i],
                  act_out=act, bank_out=bank, psum0_in=psums[0], psum1_in=psums[1],
                  psum0_out=outs[0], psum1_out=outs[1],
                  load_en=self.load_rows[i], load_bank=self.load_bank, load_data=self.load_data, en=en)
            acts.append(act)
            banks.append(bank)
            psums = outs
        m.d.comb += [self.acts_out.eq(Cat(*acts)), self.banks_out.eq(Cat(*banks)),
                     self.psum0_out.eq(psums[0]), self.psum1_out.eq(psums[1])]
        return m
