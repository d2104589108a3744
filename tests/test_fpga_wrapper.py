"""The pin-light top (hwgen.fpga.wrapper) in simulation, around a small stand-in stream accelerator.

``StandinTop`` mimics the interface of ``hwgen.hw.top.AcceleratorTop`` (streams ``cfg``, ``weights``, ``acts``,
``out`` in the ``sync`` domain) with a real weight-stationary array (registered activation x stationary weight,
registered product, systolic partial sums) and an activation FIFO in block RAM, so the FPGA flow can be exercised
without the real top.
"""

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hwgen.fpga.wrapper import PinLightTop, stream_ports
from hwgen.spec import AcceleratorSpec


class StandinTop(wiring.Component):
    def __init__(self, spec, cfg_bits=32):
        self.spec = spec
        super().__init__({
            "cfg": In(stream.Signature(unsigned(cfg_bits))),
            "weights": In(stream.Signature(unsigned(spec.cols * spec.weight_type.bits))),
            "acts": In(stream.Signature(unsigned(spec.rows * spec.act_type.bits))),
            "out": Out(stream.Signature(unsigned(spec.cols * spec.acc_type.bits))),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.spec
        rows, cols, ab, wb = s.rows, s.cols, s.act_type.bits, s.weight_type.bits
        pb = s.psum_bits
        m.d.comb += self.cfg.ready.eq(1)
        cfg = Signal.like(self.cfg.payload)
        with m.If(self.cfg.valid):
            m.d.sync += cfg.eq(self.cfg.payload)

        # Weights: one row per beat, row counter wraps.
        w = [[Signal(signed(wb), name=f"w_{i}_{j}") for j in range(cols)] for i in range(rows)]
        row = Signal(range(rows))
        m.d.comb += self.weights.ready.eq(1)
        with m.If(self.weights.valid):
            m.d.sync += row.eq(0 if rows == 1 else (row + 1) % rows)
            for i in range(rows):
                with m.If(row == i):
                    m.d.sync += [w[i][j].eq(self.weights.payload[j * wb:(j + 1) * wb]) for j in range(cols)]

        # Activations through a FIFO (block RAM).
        depth = max(16, min(s.act_depth, 4096))
        m.submodules.act_fifo = act_fifo = fifo.SyncFIFOBuffered(width=rows * ab, depth=depth)
        m.d.comb += [act_fifo.w_data.eq(self.acts.payload), act_fifo.w_en.eq(self.acts.valid),
                     self.acts.ready.eq(act_fifo.w_rdy)]

        latency = rows + cols
        valid = Signal(latency + 1)
        en = Signal()
        m.d.comb += [en.eq(~(self.out.valid & ~self.out.ready)), act_fifo.r_en.eq(en),
                     self.out.valid.eq(valid[-1])]
        with m.If(en):
            m.d.sync += valid.eq(Cat(act_fifo.r_rdy, valid[:-1]))

        act_row = []
        for i in range(rows):
            a = act_fifo.r_data[i * ab:(i + 1) * ab].as_signed()
            for stage in range(i):
                d = Signal(signed(ab), name=f"skew_{i}_{stage}")
                with m.If(en):
                    m.d.sync += d.eq(a)
                a = d
            act_row.append(a)
        psum_prev = [0] * cols
        for i in range(rows):
            a = act_row[i]
            for j in range(cols):
                a_reg = Signal(signed(ab), name=f"act_{i}_{j}")
                prod = Signal(signed(ab + wb), name=f"prod_{i}_{j}")
                psum = Signal(signed(pb), name=f"psum_{i}_{j}")
                with m.If(en):
                    m.d.sync += [a_reg.eq(a), prod.eq(a_reg * w[i][j]), psum.eq(psum_prev[j] + prod)]
                a = a_reg
                psum_prev[j] = psum
        outs = []
        for j in range(cols):
            p = psum_prev[j]
            for stage in range(cols - 1 - j):
                d = Signal(signed(pb), name=f"deskew_{j}_{stage}")
                with m.If(en):
                    m.d.sync += d.eq(p)
                p = d
            outs.append(p)
        wide = []
        for j, o in enumerate(outs):
            o_ext = Signal(signed(s.acc_type.bits), name=f"out_{j}")
            m.d.comb += o_ext.eq(o)
            wide.append(o_ext)
        m.d.comb += self.out.payload.eq(Cat(*wide))
        return m


def small_spec(rows=2, cols=2):
    return AcceleratorSpec(rows=rows, cols=cols, act_buffer_bytes=rows * 64, weight_buffer_bytes=cols * 64,
                           acc_buffer_bytes=cols * 4 * 32, name=f"standin_{rows}x{cols}")


def test_stream_ports_of_standin():
    top = StandinTop(small_spec(2, 3))
    inputs, outputs, status = stream_ports(top)
    assert status == []
    assert dict(inputs) == {"cfg": 32, "weights": 24, "acts": 16}
    assert dict(outputs) == {"out": 96}


def test_pin_light_top_is_narrow():
    top = PinLightTop(StandinTop(small_spec(4, 4)), io_bits=8)
    assert top.in_chunks == 4 and top.out_chunks == 16
    assert top.pins == 8 + 1 + 2 + 1 + 1 + 8 + 1 + 1 + 1


def test_pin_light_top_rejects_plain_ports():
    class Plain(wiring.Component):
        x: In(8)
        y: Out(8)

        def elaborate(self, platform):
            return Module()
    with pytest.raises(TypeError, match="plain input"):
        PinLightTop(Plain())


@pytest.mark.parametrize("io_bits", [4, 8])
def test_pin_light_top_computes_through_serial_load(io_bits):
    """Load weights and one activation vector through the serial pins; read back the column sums."""
    rows, cols = 2, 3
    spec = small_spec(rows, cols)
    dut = PinLightTop(StandinTop(spec), io_bits=io_bits)
    rng = np.random.default_rng(1)
    weights = rng.integers(-128, 128, size=(rows, cols))
    acts = rng.integers(-128, 128, size=rows)
    expected = acts @ weights
    index = {name: i for i, (name, _) in enumerate(dut.inputs)}
    results = []

    async def testbench(ctx):
        async def load(value, width, sel):
            chunks = dut.in_chunks          # always a whole shift register, whatever the stream's width
            value &= (1 << (chunks * io_bits)) - 1
            for c in range(chunks):
                ctx.set(dut.din, (value >> (c * io_bits)) & ((1 << io_bits) - 1))
                ctx.set(dut.din_valid, 1)
                await ctx.tick()
            ctx.set(dut.din_valid, 0)
            ctx.set(dut.din_sel, sel)
            ctx.set(dut.din_push, 1)
            await ctx.tick()
            ctx.set(dut.din_push, 0)
            while ctx.get(dut.din_busy):
                await ctx.tick()

        def pack(values, bits):
            word = 0
            for k, v in enumerate(values):
                word |= (int(v) & ((1 << bits) - 1)) << (k * bits)
            return word

        for i in range(rows):
            await load(pack(weights[i], 8), cols * 8, index["weights"])
        await load(pack(acts, 8), rows * 8, index["acts"])
        word, got = 0, 0
        chunks = -(-cols * 32 // io_bits)
        for _ in range(200):
            if ctx.get(dut.dout_valid):
                word |= ctx.get(dut.dout) << (got * io_bits)
                got += 1
                ctx.set(dut.dout_next, 1)
                await ctx.tick()
                ctx.set(dut.dout_next, 0)
                if got == chunks:
                    break
            else:
                await ctx.tick()
        assert got == chunks, "no result came out"
        for j in range(cols):
            v = (word >> (32 * j)) & 0xFFFFFFFF
            results.append(v - (1 << 32) if v >> 31 else v)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert results == list(expected)
