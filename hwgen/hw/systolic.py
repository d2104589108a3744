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

from .library import place
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

        # PE (i, j) drives the nets pe_i_j_act, pe_i_j_bank (to its right) and pe_i_j_psum (below). With a
        # module library (`library`), the PEs are rows * cols instances of one shared PE module.
        acts = [[Signal(act_shape, name=f"pe_{i}_{j}_act") for j in range(cols)] for i in range(rows)]
        banks = [[Signal(name=f"pe_{i}_{j}_bank") for j in range(cols)] for i in range(rows)]
        psums = [[Signal(self.psum_shape, name=f"pe_{i}_{j}_psum") for j in range(cols)] for i in range(rows)]
        make_pe = lambda: WeightStationaryPE(act_shape=act_shape, weight_shape=weight_shape,  # noqa: E731
                                             psum_shape=self.psum_shape)
        pe_key = tuple((shape.width, shape.signed) for shape in (act_shape, weight_shape, self.psum_shape))

        # Input skew: row i sees the vector i cycles late (a chain of i registers for act and bank).
        row_inputs = []
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
            row_inputs.append((act, bank))

        # Weight load: one row per cycle, broadcast along the row.
        row_selects = []
        for i in range(rows):
            row_selected = Signal(name=f"load_row_{i}")
            m.d.comb += row_selected.eq(self.load_en & (self.load_row == i))
            row_selects.append(row_selected)

        # Activations (and their bank tag) travel right, partial sums down; row 0 starts from zero.
        for i in range(rows):
            for j in range(cols):
                act_in, bank_in = row_inputs[i] if j == 0 else (acts[i][j - 1], banks[i][j - 1])
                place(m, f"pe_{i}_{j}", make_pe, kind="pe", key=pe_key, platform=platform,
                      act_in=act_in, bank_in=bank_in, act_out=acts[i][j], bank_out=banks[i][j],
                      psum_in=psums[i - 1][j] if i else 0, psum_out=psums[i][j],
                      load_en=row_selects[i], load_bank=self.load_bank,
                      load_data=self.load_data[j * wbits:(j + 1) * wbits],
                      # an explicit port: the PE's multiplier may be a device cell
                      en=enable(f"pe_{i}_{j}"))

        # Output de-skew: column j waits cols-1-j cycles so every column leaves together.
        pbits = self.psum_shape.width
        for j in range(cols):
            psum = psums[rows - 1][j]
            deskew_en = enable(f"deskew_{j}") if j < cols - 1 else 1
            for stage in range(cols - 1 - j):
                psum_d = Signal(self.psum_shape, name=f"deskew_{j}_{stage}")
                with m.If(deskew_en):
                    m.d.sync += psum_d.eq(psum)
                psum = psum_d
            m.d.comb += self.psums[j * pbits:(j + 1) * pbits].eq(psum)
        return m
