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
models the cells for simulating the ECP5 form. Under a platform with a module library (`library`; the Verilog
back end) either form is one shared module per shape (``<top>.memory_<width>x<depth>``), the generic one's
RTLIL written by `generic_rtlil`.

A read of the word being written in the same cycle is undefined (the generic form returns the old word):
callers never depend on it. No register of the read path is reset (nothing consumes it before a read).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from . import target
from .library import shared_body

__all__ = ["PipelinedMemory", "READ_LATENCY", "check_parts", "check_width_depth", "ecp5_tiling", "ECP5_SHAPES", "generic_rtlil"]

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


def check_width_depth(width, depth):
    """A memory's (or FIFO's) ``width`` (bits, >= 1) and ``depth`` (words, >= 2), validated."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, not {width!r}")
    if not isinstance(depth, int) or depth < 2:
        raise ValueError(f"depth must be an integer of at least 2, not {depth!r}")
    return width, depth


def check_parts(label, parts):
    """A count of address copies (``read_parts``, ``write_parts``: a positive integer), validated."""
    if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
        raise ValueError(f"{label} must be a positive integer, not {parts!r}")
    return parts


class PipelinedMemory(wiring.Component):
    """``depth`` words of ``width`` bits; one write port, one two-step read port (see the module docstring)."""

    def __init__(self, *, width, depth, read_parts=1, write_parts=1, data_en_parts=False):
        self.width, self.depth = check_width_depth(width, depth)
        self.read_parts = check_parts("read_parts", read_parts)
        self.write_parts = check_parts("write_parts", write_parts)
        if data_en_parts and read_parts == 1:
            raise ValueError("data_en_parts needs read_parts > 1 (a copy of data_en per read part)")
        self.split_data_en = bool(data_en_parts)
        members = {
            "write_addr": In(range(depth)), "write_data": In(unsigned(width)), "write_en": In(1),
            "read_addr": In(range(depth)), "read_en": In(1),
            "data_en": In(1), "read_data": Out(unsigned(width)),
        }
        if read_parts > 1:
            # Copies of read_addr and read_en (the caller drives each with the same value, from flip-flops of
            # its own):
            # the ECP5 form gives copy k to the k-th part of its block RAM columns, so no flip-flop drives the
            # address pins of every block of a wide memory; the generic form reads read_addr only.
            members["read_addr_parts"] = In(unsigned(read_parts * Shape.cast(range(depth)).width))
            members["read_en_parts"] = In(read_parts)       # copies of read_en, likewise
            if data_en_parts:
                members["data_en_parts"] = In(read_parts)   # and of data_en (the generic form: data_en)
        if write_parts > 1:
            # Copies of write_addr and write_en, likewise: copy k drives the k-th part of the ECP5 form's block
            # RAM columns; the generic form writes at write_addr / write_en only.
            members["write_addr_parts"] = In(unsigned(write_parts * Shape.cast(range(depth)).width))
            members["write_en_parts"] = In(write_parts)
        super().__init__(members)

    def elaborate(self, platform):
        ecp5 = target.family(platform) == "ecp5"
        # With a module library, one module per memory shape; the generic form's RTLIL written by
        # `generic_rtlil` (the same text Amaranth writes, without the cost of a zero initializer emitted bit by
        # bit).
        shared = None if self.read_parts > 1 or self.write_parts > 1 else shared_body(self, platform, kind=f"memory_{self.width}x{self.depth}", key=(self.width, self.depth),
                             make=lambda: PipelinedMemory(width=self.width, depth=self.depth),
                             rtlil_text=None if ecp5 else
                             lambda name: generic_rtlil(name, width=self.width, depth=self.depth),
                             name="memory")
        if shared is not None:
            return shared
        if ecp5:
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
            for c in range(columns):
                write_addr, write_en = self.write_addr, self.write_en
                if self.write_parts > 1:
                    part, bits = c * self.write_parts // columns, len(self.write_addr)
                    write_addr = self.write_addr_parts[part * bits:(part + 1) * bits]
                    write_en = self.write_en_parts[part]
                write_here = write_en & ((write_addr >> low_bits) == b) if banks > 1 else write_en
                lo, hi = c * block_width, min((c + 1) * block_width, self.width)
                din = Signal(18, name=f"ram{b}_{c}_din")
                dout = Signal(18, name=f"ram{b}_{c}_dout")
                m.d.comb += [din.eq(self.write_data[lo:hi]), banked[b][lo:hi].eq(dout[:hi - lo])]
                wa, ra = Signal(14, name=f"ram{b}_{c}_wa"), Signal(14, name=f"ram{b}_{c}_ra")
                # The word address sits on AD[13:lsb]; in 18-bit mode AD[1:0] are port A's byte enables.
                read_addr, read_en, data_en = self.read_addr, self.read_en, self.data_en
                if self.read_parts > 1:
                    part, bits = c * self.read_parts // columns, len(self.read_addr)
                    read_addr = self.read_addr_parts[part * bits:(part + 1) * bits]
                    read_en = self.read_en_parts[part]
                    if self.split_data_en:
                        data_en = self.data_en_parts[part]
                m.d.comb += [wa.eq((write_addr[:low_bits] << lsb) | (0b11 if block_width == 18 else 0)),
                             ra.eq(read_addr[:low_bits] << lsb)]
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
                    i_CLKB=ClockSignal(), i_CEB=read_en, i_OCEB=data_en, i_WEB=0, i_RSTB=0,
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



def generic_rtlil(name, *, width, depth):
    """The RTLIL that ``amaranth.back.rtlil.convert(PipelinedMemory(width=, depth=), name=name,
    emit_src=False)`` writes for the generic form, character for character (`tests/test_hw_bram.py` compares
    the two). Amaranth emits the zero initializer of the ``width * depth`` bits one net at a time, which costs
    a second or more for the buffers of one accelerator; here it is one string."""
    abits = Shape.cast(range(depth)).width

    def span(count):                        # all bits of a wire of `count` bits
        return "[0]" if count == 1 else f"[{count - 1}:0]"

    def const(digit, count):
        return f"{count}'{digit * count}"

    write_en = "\\write_en [0]" if width == 1 else "{ " + " ".join(["\\write_en [0]"] * width) + " }"
    return _GENERIC_RTLIL.format(
        name=name, width=width, depth=depth, abits=abits, zeros=const("0", width), ones=const("1", width),
        undefined=const("x", width), init=const("0", width * depth), write_en=write_en,
        addr=span(abits), data=span(width))


_GENERIC_RTLIL = """attribute \\generator "Amaranth"
attribute \\top 1
module \\{name}

  memory width {width} size {depth} \\storage

  wire width {abits} \\$signature__addr

  wire width {width} \\$signature__data

  wire width 1 \\$signature__en

  wire width {abits} \\read__addr

  wire width 1 \\read__en

  attribute \\init {zeros}
  wire width {width} \\data

  wire width {width} \\read__data

  wire width {abits} input 0  \\write_addr

  wire width {width} input 1  \\write_data

  wire width 1 input 2  \\write_en

  wire width {abits} input 3  \\read_addr

  wire width 1 input 4  \\read_en

  wire width 1 input 5  \\data_en

  wire width 1 input 6  \\clk

  wire width 1 input 7  \\rst

  attribute \\init {zeros}
  wire width {width} output 8  \\read_data

  wire width {width} $1

  cell $meminit_v2 $2
    parameter \\MEMID "\\\\storage"
    parameter \\ABITS 0
    parameter \\WIDTH {width}
    parameter \\WORDS {depth}
    parameter \\PRIORITY 0
    connect \\ADDR {{  }}
    connect \\DATA {init}
    connect \\EN {ones}
  end

  cell $memwr_v2 $3
    parameter \\MEMID "\\\\storage"
    parameter \\ABITS {abits}
    parameter \\WIDTH {width}
    parameter \\CLK_ENABLE 1
    parameter \\CLK_POLARITY 1
    parameter \\PORTID 0
    parameter \\PRIORITY_MASK 0
    connect \\ADDR \\write_addr {addr}
    connect \\DATA \\write_data {data}
    connect \\EN {write_en}
    connect \\CLK \\clk [0]
  end

  cell $memrd_v2 $4
    parameter \\MEMID "\\\\storage"
    parameter \\ABITS {abits}
    parameter \\WIDTH {width}
    parameter \\TRANSPARENCY_MASK 1'0
    parameter \\COLLISION_X_MASK 1'0
    parameter \\ARST_VALUE {undefined}
    parameter \\SRST_VALUE {undefined}
    parameter \\INIT_VALUE {undefined}
    parameter \\CE_OVER_SRST 0
    parameter \\CLK_ENABLE 1
    parameter \\CLK_POLARITY 1
    connect \\ADDR \\read_addr {addr}
    connect \\DATA \\read__data
    connect \\ARST 1'0
    connect \\SRST 1'0
    connect \\EN \\read_en [0]
    connect \\CLK \\clk [0]
  end

  process $5
    assign $1 {data} \\read_data {data}
    switch \\data_en [0]
      case 1'1
        assign $1 {data} \\read__data {data}
    end
  end

  cell $dff $6
    parameter \\WIDTH {width}
    parameter \\CLK_POLARITY 1
    connect \\D $1 {data}
    connect \\CLK \\clk [0]
    connect \\Q \\read_data
  end

connect \\$signature__addr \\write_addr {addr}
connect \\$signature__data \\write_data {data}
connect \\$signature__en \\write_en [0]
connect \\read__addr \\read_addr {addr}
connect \\read__en \\read_en [0]
connect \\data \\read_data {data}

end

"""
