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
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pe import WeightStationaryPE

__all__ = ["SystolicArray", "array_latency"]


def array_latency(*, rows, cols):
    """Cycles from an activation vector at the input to its aligned column sums at the output."""
    # Row rows-1 is skewed rows-1 cycles, then its operand, multiplier (2), product and psum registers (5),
    # then column j's sum leaves the bottom after j more hops and is de-skewed to cols-1 hops.
    return (rows - 1) + WeightStationaryPE.LATENCY + 1 + (cols - 1)


class SystolicArray(wiring.Component):
    def __init__(self, *, rows, cols, act_type, weight_type, psum_bits, enable_copies=False):
        self.rows, self.cols = rows, cols
        self.enable_copies = enable_copies
        self.act_type, self.weight_type = act_type, weight_type
        is_signed = act_type.signed or weight_type.signed
        self.psum_shape = signed(psum_bits) if is_signed else unsigned(psum_bits)
        super().__init__({
            "acts": In(unsigned(rows * act_type.bits)),
            "bank": In(1),
            "load_en": In(1), "load_row": In(range(rows)), "load_bank": In(1),
            "load_data": In(unsigned(cols * weight_type.bits)),
            "psums": Out(unsigned(cols * psum_bits)),
            **({"en": In(1)} if enable_copies else {}),
        })

    @property
    def latency(self):
        return array_latency(rows=self.rows, cols=self.cols)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        abits, wbits = self.act_type.bits, self.weight_type.bits
        act_shape, weight_shape = self.act_type.amaranth_shape(), self.weight_type.amaranth_shape()

        def enable(name):
            """A registered copy of `en` for one group of registers (1 when the array is always enabled)."""
            if not self.enable_copies:
                return 1
            copy = Signal(name=f"en_copy_{name}")
            m.d.sync += copy.eq(self.en)
            return copy

        pes = [[WeightStationaryPE(act_shape=act_shape, weight_shape=weight_shape, psum_shape=self.psum_shape)
                for _ in range(cols)] for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pes[i][j]
                if self.enable_copies:     # an explicit port: the PE's multiplier may be a device cell
                    m.d.comb += pes[i][j].en.eq(enable(f"pe_{i}_{j}"))

        # Input skew: row i sees the vector i cycles late (a chain of i registers for act and bank).
        for i in range(rows):
            act = self.acts[i * abits:(i + 1) * abits].as_signed() if self.act_type.signed \
                else self.acts[i * abits:(i + 1) * abits]
            bank = self.bank
            skew_en = enable(f"skew_{i}") if i else 1
            for stage in range(i):
                act_d = Signal(act_shape, name=f"skew_act_{i}_{stage}")
                bank_d = Signal(name=f"skew_bank_{i}_{stage}")
                with m.If(skew_en):
                    m.d.sync += [act_d.eq(act), bank_d.eq(bank)]
                act, bank = act_d, bank_d
            m.d.comb += [pes[i][0].act_in.eq(act), pes[i][0].bank_in.eq(bank)]
            for j in range(1, cols):
                m.d.comb += [pes[i][j].act_in.eq(pes[i][j - 1].act_out),
                             pes[i][j].bank_in.eq(pes[i][j - 1].bank_out)]

        # Weight load: one row per cycle, broadcast along the row.
        for i in range(rows):
            row_selected = Signal(name=f"load_row_{i}")
            m.d.comb += row_selected.eq(self.load_en & (self.load_row == i))
            for j in range(cols):
                m.d.comb += [pes[i][j].load_en.eq(row_selected), pes[i][j].load_bank.eq(self.load_bank),
                             pes[i][j].load_data.eq(self.load_data[j * wbits:(j + 1) * wbits])]

        # Partial sums flow down; row 0 starts from zero.
        for j in range(cols):
            m.d.comb += pes[0][j].psum_in.eq(0)
            for i in range(1, rows):
                m.d.comb += pes[i][j].psum_in.eq(pes[i - 1][j].psum_out)

        # Output de-skew: column j waits cols-1-j cycles so every column leaves together.
        pbits = self.psum_shape.width
        for j in range(cols):
            psum = pes[rows - 1][j].psum_out
            deskew_en = enable(f"deskew_{j}") if j < cols - 1 else 1
            for stage in range(cols - 1 - j):
                psum_d = Signal(self.psum_shape, name=f"deskew_{j}_{stage}")
                with m.If(deskew_en):
                    m.d.sync += psum_d.eq(psum)
                psum = psum_d
            m.d.comb += self.psums[j * pbits:(j + 1) * pbits].eq(psum)
        return m
