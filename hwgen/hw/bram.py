"""A simple dual-port block RAM whose read data leaves from a register, in two enabled read steps.

Block RAM clock-to-out is slow (5.8 ns on an ECP5-6 without the output register, against 1.0 ns with it), so
every buffer read on a fast path goes through this block: ``read_en`` latches the address (the RAM's own
synchronous read), ``data_en`` moves the word read into the output register, and ``read_data`` is that
register. A word read with ``read_en`` in enabled cycle ``t`` is on ``read_data`` after the next ``data_en``
edge that follows: callers run both steps on the same pipeline enable (or ``data_en`` one cycle later, on a
registered copy of it), so the read latency is two enabled cycles.

Generic form (simulation, iCE40, any other target): an `amaranth.lib.memory.Memory` with a synchronous read
port and a fabric output register. ECP5 form (`target.family(platform) == "ecp5"`): DP16KD instances in
true-dual-port mode (port A writes, port B reads) with ``REGMODE_B="OUTREG"``, which Yosys never infers (it
maps memories with ``NOREG``). The two forms behave the same cycle for cycle; `sim/models/ecp5_cells.v`
models the cells for simulating the ECP5 form.

A read of the word being written in the same cycle is undefined (the generic form returns the old word):
callers never depend on it. No register of the read path is reset (nothing consumes it before a read).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from . import target

__all__ = ["PipelinedMemory", "READ_LATENCY", "ecp5_tiling", "ECP5_SHAPES"]

READ_LATENCY = 2

# DP16KD shapes in true-dual-port mode: (depth, data bits, address LSB on the AD pins). Wider PDP modes (36
# bits) put half of the read word on port A's outputs; they are not used here.
ECP5_SHAPES = ((1024, 18, 4), (2048, 9, 3), (4096, 4, 2), (8192, 2, 1), (16384, 1, 0))


def ecp5_tiling(depth, width):
    """``(banks, columns, (block_depth, block_width, address_lsb))``: the fewest DP16KD for ``depth`` x
    ``width`` (``banks`` in depth times ``columns`` in width), preferring fewer depth banks on a tie."""
    best = None
    for block_depth, block_width, lsb in ECP5_SHAPES:
        banks, columns = -(-depth // block_depth), -(-width // block_width)
        key = (banks * columns, banks)
        if best is None or key < best[0]:
            best = (key, banks, columns, (block_depth, block_width, lsb))
    return best[1:]


class PipelinedMemory(wiring.Component):
    """``depth`` words of ``width`` bits; one write port, one two-step read port (see the module docstring)."""

    def __init__(self, *, width, depth):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"depth must be an integer of at least 2, not {depth!r}")
        self.width, self.depth = width, depth
        super().__init__({
            "write_addr": In(range(depth)), "write_data": In(unsigned(width)), "write_en": In(1),
            "read_addr": In(range(depth)), "read_en": In(1),
            "data_en": In(1), "read_data": Out(unsigned(width)),
        })

    def elaborate(self, platform):
        if target.family(platform) == "ecp5":
            return self._elaborate_ecp5()
        m = Module()
        m.submodules.storage = storage = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        write, read = storage.write_port(), storage.read_port()
        m.d.comb += [write.addr.eq(self.write_addr), write.data.eq(self.write_data), write.en.eq(self.write_en),
                     read.addr.eq(self.read_addr), read.en.eq(self.read_en)]
        data = Signal(self.width, reset_less=True)
        with m.If(self.data_en):
            m.d.sync += data.eq(read.data)
        m.d.comb += self.read_data.eq(data)
        return m

    def _elaborate_ecp5(self):
        m = Module()
        banks, columns, (block_depth, block_width, lsb) = ecp5_tiling(self.depth, self.width)
        low_bits = (block_depth - 1).bit_length()
        banked = [Signal(self.width, name=f"bank{b}_data") for b in range(banks)]
        for b in range(banks):
            write_here = self.write_en & ((self.write_addr >> low_bits) == b) if banks > 1 else self.write_en
            for c in range(columns):
                lo, hi = c * block_width, min((c + 1) * block_width, self.width)
                din = Signal(18, name=f"ram{b}_{c}_din")
                dout = Signal(18, name=f"ram{b}_{c}_dout")
                m.d.comb += [din.eq(self.write_data[lo:hi]), banked[b][lo:hi].eq(dout[:hi - lo])]
                wa, ra = Signal(14, name=f"ram{b}_{c}_wa"), Signal(14, name=f"ram{b}_{c}_ra")
                # The word address sits on AD[13:lsb]; in 18-bit mode AD[1:0] are port A's byte enables.
                m.d.comb += [wa.eq((self.write_addr[:low_bits] << lsb) | (0b11 if block_width == 18 else 0)),
                             ra.eq(self.read_addr[:low_bits] << lsb)]
                ports = {}
                for k in range(14):
                    ports[f"i_ADA{k}"], ports[f"i_ADB{k}"] = wa[k], ra[k]
                for k in range(18):
                    ports[f"i_DIA{k}"], ports[f"i_DIB{k}"] = din[k], Const(0)
                    ports[f"o_DOB{k}"] = dout[k]
                m.submodules[f"ram{b}_{c}"] = Instance(
                    "DP16KD",
                    p_DATA_WIDTH_A=block_width, p_DATA_WIDTH_B=block_width,
                    p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG", p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                    p_GSR="AUTO",
                    i_CLKA=ClockSignal(), i_CEA=1, i_OCEA=1, i_WEA=write_here, i_RSTA=0,
                    i_CSA0=0, i_CSA1=0, i_CSA2=0,
                    i_CLKB=ClockSignal(), i_CEB=self.read_en, i_OCEB=self.data_en, i_WEB=0, i_RSTB=0,
                    i_CSB0=0, i_CSB1=0, i_CSB2=0,
                    **ports)
        if banks == 1:
            m.d.comb += self.read_data.eq(banked[0])
        else:
            # The bank of the word in the output registers: its address bits, through the same two steps.
            bank_read, bank_data = Signal(range(banks)), Signal(range(banks))
            with m.If(self.read_en):
                m.d.sync += bank_read.eq(self.read_addr >> low_bits)
            with m.If(self.data_en):
                m.d.sync += bank_data.eq(bank_read)
            selected = banked[0]
            for b in range(1, banks):
                selected = Mux(bank_data == b, banked[b], selected)
            m.d.comb += self.read_data.eq(selected)
        return m
