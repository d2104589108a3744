"""The rows x cols output-stationary systolic array: every PE keeps one output in its accumulator.

Row ``i`` computes output pixel ``i`` of a pixel tile, column ``j`` output channel ``j`` of an m-fold; the
reduction ``k`` streams through: activation vectors (lane ``i`` = pixel ``i``'s ``k``-th input) enter on the
left and travel right, weight vectors (lane ``j`` = channel ``j``'s ``k``-th weight) enter at the top and travel
down, one PE per cycle each, so ``act[i]`` and ``w[j]`` of the same ``k`` meet in PE ``(i, j)`` ``i + j`` cycles
after they entered (row ``i`` is skewed ``i`` cycles, column ``j`` ``j`` cycles).

Each vector carries per-row control beside it: ``valid`` (lane ``i``: pixel ``i`` exists), ``first`` (the
accumulator restarts) and ``last`` (the reduction ends). A PE registers its product (the multiplier is not in
series with the adder) and, on ``last``, holds the finished sum for exactly one cycle with a ``done`` flag, while
the next tile's first product already restarts the accumulator: tiles follow each other with no drain.

Read-out: the PEs of one column finish one row per cycle (row ``i`` ``i`` cycles after row 0), so when tiles
are at least ``rows`` reductions apart at most one PE of a column is ``done`` in any cycle; an AND-OR
multiplexer per column picks it into a register, and the columns are de-skewed. The result leaves as one beat
per pixel, the ``cols`` channels side by side, in pixel order: ``LATENCY + i`` cycles after the vector with
``last`` entered, for row ``i``.

Float form (``act_type`` bf16/fp16, ``acc_type`` fp32; `hwgen.floats`): the product register takes the exact
fp32 product (`fpu.float_product`) and the accumulator ``product`` on ``first``, else ``acc + product`` with a
combinational `fpu.Fp32Adder` (round to nearest even): each output sums its ``k`` in order, the first product
as it is. The same registers and timing.
"""

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fpu import float_product, fp32_add

__all__ = ["OutputStationaryArray"]


class OutputStationaryArray(wiring.Component):
    # vector in at t -> row i's PEs at t + i + j -> product t + i + j + 1 -> sum/done t + i + j + 2
    # -> column register t + i + j + 3 -> de-skewed to column cols - 1: t + i + cols + 2.
    FIXED_LATENCY = 3

    def __init__(self, *, rows, cols, act_type, weight_type, acc_type):
        self.rows, self.cols = rows, cols
        self.act_type, self.weight_type, self.acc_type = act_type, weight_type, acc_type
        super().__init__({
            "acts": In(unsigned(rows * act_type.bits)),
            "weights": In(unsigned(cols * weight_type.bits)),
            "valid": In(rows), "first": In(1), "last": In(1),
            "out_valid": Out(1),
            "out_data": Out(unsigned(cols * acc_type.bits)),
        })

    @property
    def latency(self):
        """Cycles from the ``last`` vector at the input to row 0's beat at the output."""
        return output_latency(cols=self.cols)

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        abits, wbits, accbits = self.act_type.bits, self.weight_type.bits, self.acc_type.bits
        act_shape, weight_shape = self.act_type.amaranth_shape(), self.weight_type.amaranth_shape()
        acc_shape = self.acc_type.amaranth_shape()
        fmt = self.act_type.name if getattr(self.act_type, "is_float", False) else None
        product_bits = 32 if fmt else abits + wbits
        product_shape = signed(product_bits) if self.act_type.signed or self.weight_type.signed \
            else unsigned(product_bits)

        def delayed(value, shape, cycles, name):
            for stage in range(cycles):
                reg = Signal(shape, name=f"{name}_{stage}")
                m.d.sync += reg.eq(value)
                value = reg
            return value

        # Left edge: row i's lane and its control, skewed i cycles.
        left = []
        for i in range(rows):
            act = self.acts[i * abits:(i + 1) * abits]
            act = act.as_signed() if self.act_type.signed else act
            left.append((delayed(act, act_shape, i, f"skew_act_{i}"),
                         delayed(Cat(self.valid[i], self.first, self.last), 3, i, f"skew_ctl_{i}")))
        # Top edge: column j's lane, skewed j cycles.
        top = []
        for j in range(cols):
            weight = self.weights[j * wbits:(j + 1) * wbits]
            weight = weight.as_signed() if self.weight_type.signed else weight
            top.append(delayed(weight, weight_shape, j, f"skew_w_{j}"))

        column_sums = [[] for _ in range(cols)]
        weights_in = list(top)
        for i in range(rows):
            act_in, ctl_in = left[i]
            for j in range(cols):
                weight_in = weights_in[j]
                act_out = Signal(act_shape, name=f"pe_{i}_{j}_act")
                weight_out = Signal(weight_shape, name=f"pe_{i}_{j}_w")
                ctl_out = Signal(3, name=f"pe_{i}_{j}_ctl")
                product = Signal(product_shape, name=f"pe_{i}_{j}_product")
                ctl_p = Signal(3, name=f"pe_{i}_{j}_ctl_p")
                acc = Signal(acc_shape, name=f"pe_{i}_{j}_acc")
                done = Signal(name=f"pe_{i}_{j}_done")
                valid_p, first_p, last_p = ctl_p[0], ctl_p[1], ctl_p[2]
                multiplied = (act_in * weight_in if fmt is None
                              else float_product(m, act_in, weight_in, fmt, f"pe_{i}_{j}_mul"))
                m.d.sync += [act_out.eq(act_in), weight_out.eq(weight_in), ctl_out.eq(ctl_in),
                             product.eq(multiplied), ctl_p.eq(ctl_in),
                             done.eq(valid_p & last_p)]
                # The schedule proved the reduction fits acc_type: the truncation loses nothing.
                summed = acc + product if fmt is None else fp32_add(m, acc, product, f"pe_{i}_{j}_adder")
                with m.If(valid_p):
                    with m.If(first_p):
                        m.d.sync += acc.eq(product)
                    with m.Else():
                        m.d.sync += acc.eq(summed)
                column_sums[j].append((done, acc))
                act_in, ctl_in = act_out, ctl_out
                weights_in[j] = weight_out

        lanes, valids = [], []
        for j in range(cols):
            picked = Signal(unsigned(accbits), name=f"col_{j}_sum")
            picked_valid = Signal(name=f"col_{j}_valid")
            # One-hot by construction (see the module docstring): an AND-OR multiplexer.
            m.d.sync += [picked.eq(_or_reduce([acc.as_unsigned() & done.replicate(accbits)
                                               for done, acc in column_sums[j]])),
                         picked_valid.eq(_or_reduce([done for done, _ in column_sums[j]]))]
            lanes.append(delayed(picked, unsigned(accbits), cols - 1 - j, f"deskew_{j}"))
            valids.append(picked_valid)
        m.d.comb += [self.out_data.eq(Cat(*lanes)), self.out_valid.eq(valids[cols - 1])]
        return m


def _or_reduce(values):
    """A balanced OR tree (a flat chain would be as deep as the column)."""
    values = list(values)
    while len(values) > 1:
        values = [values[k] | values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


def output_latency(*, cols):
    """Cycles from the vector carrying ``last`` at the array input to row 0's beat at the output."""
    return OutputStationaryArray.FIXED_LATENCY + cols - 1
