"""The accelerator as a system on a memory bus: `SystemTop` wraps the stream-fed `AcceleratorTop` with DMA
channels (`hwgen.hw.dma`), a command processor and an AXI4-Lite register file.

::

    host --AXI4-Lite--> registers --start--> command processor --descriptors--> DMA channels <--AXI4--> DRAM
                                                                    |  cfg / weights / mv_weights / params / acts
                                                                    v
                                                              AcceleratorTop --out--> write DMA

The host writes the DRAM image (`hwgen.system.image.build_image`: tensors and a program of 16-byte
descriptors), the program's address and descriptor count, and sets ``CTRL.start``. The command processor then:

1. resets the datapath (the accelerator and every DMA channel: one cycle, so every run starts from a clean
   state, also after an aborted one);
2. reads the program through its own read channel and, in order, hands each descriptor to its channel once
   (a) the channel can take one (a read channel takes its next descriptor as soon as the last burst of the
   previous one is issued - the channels' FIFOs prefetch the next layer's words while the current one
   computes) and (b) as many ``out`` descriptors as the descriptor's ``wait`` field says are complete (all their
   write responses in: a layer reading an earlier layer's output from DRAM waits for it);
3. after the ``END`` descriptor, waits until every ``out`` descriptor is complete, then sets ``done`` and
   raises the interrupt.

Errors are reported, never hung on: a malformed descriptor (wrong magic byte, unknown channel), a DMA response
other than OKAY, or a watchdog expiry (``WATCHDOG`` cycles without a handshake on any bus or stream, 0 = off)
aborts every channel (`hwgen.hw.dma`: bursts already on the bus complete, nothing more is issued), waits until
the bus is quiet, and finishes with ``STATUS.error`` and the cause in ``ERROR``. The next start resets the
datapath and runs normally.

Reads share the AXI4 read channels: each read DMA has its own AXI id (its channel number + 1; the program
channel 0), ``ar`` is granted round robin (the first requesting channel after the one granted last) and held
until its handshake, and ``r`` beats are routed by id. Every read DMA reserves room for a burst before requesting it, so no ``r`` beat
waits for a consumer.

Register map (`REGISTERS`; 32-bit, byte addresses; RO registers ignore writes):

======  ===========  ==================================================================================
0x00    ID           RO  ``0x48574731`` ("HWG1")
0x04    CTRL         WO  bit 0: start (ignored while busy)
0x08    STATUS       RO  bit 0 busy, bit 1 done, bit 2 error
0x0C    IRQ          RW  bit 0: interrupt pending (set on done; write 1 to clear)
0x10    IRQ_ENABLE   RW  bit 0: drive ``irq`` when pending
0x14    ERROR        RO  bits 0-3 cause (`ERROR_CAUSES`), bits 4-5 the AXI response
0x18    ERROR_ADDR   RO  the burst address of a bus error, the descriptor's index of a malformed one
0x1C    PROG_ADDR    RW  byte address of the program
0x20    PROG_COUNT   RW  descriptors in it (the END one included)
0x24    WATCHDOG     RW  cycles without progress before an abort (0: off)
0x40    CYCLES       RO  cycles busy (start to done)
0x44    STALL_DRAM   RO  busy cycles in which a stream the accelerator is ready to take is empty while its
                         DMA channel is still fetching for it, or ``out`` waits for the write channel
0x48    MACS_LO      RO  MACs of the commands dispatched (``cfg`` descriptors' ``macs``), low word
0x4C    MACS_HI      RO  high word
0x50    BYTES_READ   RO  bytes read from DRAM (whole beats)
0x54    BYTES_WRITTEN RO bytes written to DRAM (whole beats)
0x58    DESCRIPTORS  RO  descriptors dispatched
======  ===========  ==================================================================================
"""

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import MappingError
from ..spec import AcceleratorSpec
from ..system.image import CHANNELS, DESC_BYTES, END, MAGIC, read_channels, stream_word_bits
from .axi import RESP_OKAY, axi4_lite_signature, axi4_signature
from .dma import ReadDMA, WriteDMA
from .top import AcceleratorTop

__all__ = ["SystemTop", "SystemPorts", "SystemStreams", "REGISTERS", "ERROR_CAUSES", "SYSTEM_ID", "LITE_ADDR_WIDTH"]

SYSTEM_ID = 0x48574731
LITE_ADDR_WIDTH = 12
REGISTERS = {
    "ID": 0x00, "CTRL": 0x04, "STATUS": 0x08, "IRQ": 0x0C, "IRQ_ENABLE": 0x10, "ERROR": 0x14, "ERROR_ADDR": 0x18,
    "PROG_ADDR": 0x1C, "PROG_COUNT": 0x20, "WATCHDOG": 0x24,
    "CYCLES": 0x40, "STALL_DRAM": 0x44, "MACS_LO": 0x48, "MACS_HI": 0x4C, "BYTES_READ": 0x50,
    "BYTES_WRITTEN": 0x54, "DESCRIPTORS": 0x58,
}
ERROR_CAUSES = {0: "none", 1: "read bus error", 2: "write bus error", 3: "malformed descriptor", 4: "watchdog"}


class SystemTop(wiring.Component):
    """The system (see the module docstring). Ports: ``s_axil`` (AXI4-Lite slave: the registers), ``m_axi``
    (AXI4 master: DRAM), ``irq``."""

    def __init__(self, spec, *, data_width=64, addr_width=32, id_width=4, fifo_depth=32, max_outstanding=4,
                 max_burst_beats=16):
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"SystemTop needs an AcceleratorSpec, not {spec!r}")
        if getattr(spec, "sparse_mv", False):
            raise MappingError(f"{spec.name}: the system top has no DMA channel for the sparse engine's stream "
                               f"(its words are packed by the host from each input's activations); build the "
                               f"system without sparse_mv, or run the design on the plain stream ports")
        self.spec, self.data_width, self.addr_width, self.id_width = spec, data_width, addr_width, id_width
        self.fifo_depth, self.max_outstanding, self.max_burst_beats = fifo_depth, max_outstanding, max_burst_beats
        self.beat_bytes = data_width // 8
        self.channels = read_channels(spec)
        if len(self.channels) + 1 > (1 << id_width):
            raise ValueError(f"SystemTop: {len(self.channels) + 1} read channels need id_width >= 3")
        super().__init__({
            "s_axil": In(axi4_lite_signature(addr_width=LITE_ADDR_WIDTH)),
            "m_axi": Out(axi4_signature(data_width=data_width, addr_width=addr_width, id_width=id_width)),
            "irq": Out(1),
        })

    def _read_dma(self, word_bits, axi_id):
        word_bytes = -(-word_bits // 8)
        depth = max(self.fifo_depth, -(-(2 * self.beat_bytes + word_bytes) // word_bytes))
        # Short bursts: DRAM answers bursts in order, so one channel's long burst would hold up the data
        # another channel needs now (measured: 256-beat bursts cost up to 20 % on the benchmark networks).
        fits = min(256, (depth * word_bytes - (word_bytes - 1)) // self.beat_bytes)
        return ReadDMA(word_bits=word_bits, data_width=self.data_width, addr_width=self.addr_width,
                       id_width=self.id_width, axi_id=axi_id, fifo_depth=depth,
                       max_outstanding=self.max_outstanding, max_burst_beats=min(fits, self.max_burst_beats))

    def elaborate(self, platform):
        m = Module()
        spec, B = self.spec, self.beat_bytes
        bits = stream_word_bits(spec)
        soft = Signal()            # the datapath's reset, one cycle at each start

        core = AcceleratorTop(spec)
        m.submodules.core = ResetInserter(soft)(core)
        prog = self._read_dma(8 * DESC_BYTES, 0)
        m.submodules.prog_dma = ResetInserter(soft)(prog)
        reads = {}
        for index, name in enumerate(self.channels):
            reads[name] = self._read_dma(bits[name], index + 1)
            m.submodules[f"{name}_dma"] = ResetInserter(soft)(reads[name])
        narrow = spec.act_type.bits if spec.postops else None
        write = WriteDMA(word_bits=spec.acc_word_bits, lanes=spec.cols, narrow_bits=narrow,
                         data_width=self.data_width, addr_width=self.addr_width, id_width=self.id_width, axi_id=0,
                         fifo_depth=self.fifo_depth, max_outstanding=self.max_outstanding)
        m.submodules.out_dma = ResetInserter(soft)(write)

        # Streams: DMA words -> accelerator -> write DMA.
        for name, dma in reads.items():
            port = getattr(core, name)
            m.d.comb += [port.payload.eq(dma.words.payload), port.valid.eq(dma.words.valid),
                         dma.words.ready.eq(port.ready)]
        m.d.comb += [write.words.payload.eq(core.out.payload), write.words.valid.eq(core.out.valid),
                     core.out.ready.eq(write.words.ready)]

        # AXI read arbitration: ar to the lowest requesting channel, held until taken; r routed by id. -------
        bus = self.m_axi
        all_reads = [prog] + [reads[name] for name in self.channels]
        locked, grant = Signal(), Signal(range(len(all_reads)))
        last = Signal(range(len(all_reads)))       # the channel granted last: round robin from the one after it
        pick, pick_after, after = Signal(range(len(all_reads))), Signal(range(len(all_reads))), Signal()
        for index in reversed(range(len(all_reads))):
            with m.If(all_reads[index].bus.ar.valid):
                m.d.comb += pick.eq(index)
                with m.If(index > last):
                    m.d.comb += [pick_after.eq(index), after.eq(1)]
        with m.If(after):
            m.d.comb += pick.eq(pick_after)
        sel = Signal(range(len(all_reads)))
        m.d.comb += sel.eq(Mux(locked, grant, pick))
        with m.Switch(sel):
            for index, dma in enumerate(all_reads):
                with m.Case(index):
                    a = dma.bus.ar
                    m.d.comb += [bus.ar.valid.eq(a.valid), bus.ar.id.eq(a.id), bus.ar.addr.eq(a.addr),
                                 bus.ar.len.eq(a.len), bus.ar.size.eq(a.size), bus.ar.burst.eq(a.burst),
                                 a.ready.eq(bus.ar.ready)]
        with m.If(bus.ar.valid & ~bus.ar.ready):
            m.d.sync += [locked.eq(1), grant.eq(sel)]
        with m.Elif(bus.ar.valid & bus.ar.ready):
            m.d.sync += locked.eq(0)
        with m.If(bus.ar.valid & bus.ar.ready):
            m.d.sync += last.eq(sel)
        for index, dma in enumerate(all_reads):
            r = dma.bus.r
            hit = bus.r.id == dma.axi_id
            m.d.comb += [r.valid.eq(bus.r.valid & hit), r.id.eq(bus.r.id), r.data.eq(bus.r.data),
                         r.resp.eq(bus.r.resp), r.last.eq(bus.r.last)]
            with m.If(hit):
                m.d.comb += bus.r.ready.eq(r.ready)
        wb = write.bus
        m.d.comb += [
            bus.aw.valid.eq(wb.aw.valid), bus.aw.id.eq(wb.aw.id), bus.aw.addr.eq(wb.aw.addr),
            bus.aw.len.eq(wb.aw.len), bus.aw.size.eq(wb.aw.size), bus.aw.burst.eq(wb.aw.burst),
            wb.aw.ready.eq(bus.aw.ready),
            bus.w.valid.eq(wb.w.valid), bus.w.data.eq(wb.w.data), bus.w.strb.eq(wb.w.strb), bus.w.last.eq(wb.w.last),
            wb.w.ready.eq(bus.w.ready),
            wb.b.valid.eq(bus.b.valid), wb.b.id.eq(bus.b.id), wb.b.resp.eq(bus.b.resp), bus.b.ready.eq(wb.b.ready),
        ]

        # Registers (AXI4-Lite slave). -----------------------------------------------------------------------
        lite = self.s_axil
        reg = {name: Signal(32, name=f"reg_{name.lower()}") for name in
               ("IRQ_ENABLE", "PROG_ADDR", "PROG_COUNT", "WATCHDOG", "CYCLES", "STALL_DRAM", "BYTES_READ",
                "BYTES_WRITTEN", "DESCRIPTORS", "ERROR_ADDR")}
        macs = Signal(64)
        busy, done, error, irq_pending = Signal(), Signal(), Signal(), Signal()
        cause, cause_resp = Signal(4), Signal(2)
        start = Signal()
        b_pending, r_pending = Signal(), Signal()
        r_data = Signal(32)
        m.d.comb += [lite.b.valid.eq(b_pending), lite.b.resp.eq(RESP_OKAY),
                     lite.r.valid.eq(r_pending), lite.r.data.eq(r_data), lite.r.resp.eq(RESP_OKAY)]
        write_now = Signal()
        m.d.comb += [write_now.eq(lite.aw.valid & lite.w.valid & ~b_pending),
                     lite.aw.ready.eq(write_now), lite.w.ready.eq(write_now)]
        with m.If(lite.b.valid & lite.b.ready):
            m.d.sync += b_pending.eq(0)
        waddr = lite.aw.addr[2:LITE_ADDR_WIDTH]
        wdata = lite.w.data
        with m.If(write_now):
            m.d.sync += b_pending.eq(1)
            with m.Switch(waddr):
                with m.Case(REGISTERS["CTRL"] >> 2):
                    m.d.comb += start.eq(wdata[0] & lite.w.strb[0] & ~busy)
                with m.Case(REGISTERS["IRQ"] >> 2):
                    with m.If(wdata[0] & lite.w.strb[0]):
                        m.d.sync += irq_pending.eq(0)
                for name in ("IRQ_ENABLE", "PROG_ADDR", "PROG_COUNT", "WATCHDOG"):
                    with m.Case(REGISTERS[name] >> 2):
                        for byte in range(4):
                            with m.If(lite.w.strb[byte]):
                                m.d.sync += reg[name][8 * byte:8 * byte + 8].eq(wdata[8 * byte:8 * byte + 8])
        m.d.comb += lite.ar.ready.eq(~r_pending)
        with m.If(lite.r.valid & lite.r.ready):
            m.d.sync += r_pending.eq(0)
        with m.If(lite.ar.valid & ~r_pending):
            m.d.sync += r_pending.eq(1)
            values = {"ID": SYSTEM_ID, "CTRL": 0, "STATUS": Cat(busy, done, error), "IRQ": irq_pending,
                      "ERROR": Cat(cause, cause_resp), "MACS_LO": macs[:32], "MACS_HI": macs[32:],
                      **{name: reg[name] for name in reg}}
            m.d.sync += r_data.eq(0)
            with m.Switch(lite.ar.addr[2:LITE_ADDR_WIDTH]):
                for name, value in values.items():
                    with m.Case(REGISTERS[name] >> 2):
                        m.d.sync += r_data.eq(value)
        m.d.comb += self.irq.eq(irq_pending & reg["IRQ_ENABLE"][0])

        # Command processor. ---------------------------------------------------------------------------------
        desc_layout = data.StructLayout({"channel": 4, "narrow": 1, "_pad": 3, "magic": 8, "wait": 16,
                                         "addr": 32, "bytes": 32, "macs": 32})
        head = data.View(desc_layout, prog.words.payload)
        completed = Signal(16)                 # out descriptors complete this run
        dispatched_out = Signal(16)            # out descriptors handed to the write channel
        index = Signal(32)                     # descriptors taken from the program
        aborting = Signal()
        dma_error = Signal()
        all_dmas = all_reads + [write]
        m.d.comb += dma_error.eq(Cat(*(d.error for d in all_dmas)).any())
        quiet = Signal()
        m.d.comb += quiet.eq(Cat(*(d.quiet for d in all_dmas)).all())
        # Between runs every channel stays stopped: a run ended by the watchdog or a malformed command leaves
        # channels with work they must not resume (no sticky error holds them), and the next start resets them.
        for dma in all_dmas:
            m.d.comb += dma.abort.eq(aborting | ~busy)
        with m.If(write.completed):
            m.d.sync += completed.eq(completed + 1)

        # Progress, for the watchdog: any handshake on the bus or a stream.
        progress = Signal()
        m.d.comb += progress.eq((bus.ar.valid & bus.ar.ready) | (bus.r.valid & bus.r.ready) |
                                (bus.aw.valid & bus.aw.ready) | (bus.w.valid & bus.w.ready) |
                                (bus.b.valid & bus.b.ready) | (core.out.valid & core.out.ready) |
                                Cat(*(getattr(core, n).valid & getattr(core, n).ready
                                      for n in self.channels)).any())
        idle_for = Signal(32)
        m.d.sync += idle_for.eq(Mux(progress | ~busy, 0, idle_for + 1))
        watchdog = Signal()
        m.d.comb += watchdog.eq((reg["WATCHDOG"] != 0) & (idle_for >= reg["WATCHDOG"]))

        # Counters.
        with m.If(busy):
            m.d.sync += reg["CYCLES"].eq(reg["CYCLES"] + 1)
            waiting = Signal()
            m.d.comb += waiting.eq(Cat(*((getattr(core, n).ready & ~getattr(core, n).valid
                                          & ~reads[n].quiet) for n in self.channels)).any()
                                   | (core.out.valid & ~core.out.ready))
            with m.If(waiting):
                m.d.sync += reg["STALL_DRAM"].eq(reg["STALL_DRAM"] + 1)
        with m.If(bus.r.valid & bus.r.ready):
            m.d.sync += reg["BYTES_READ"].eq(reg["BYTES_READ"] + B)
        with m.If(bus.w.valid & bus.w.ready):
            m.d.sync += reg["BYTES_WRITTEN"].eq(reg["BYTES_WRITTEN"] + B)

        def fail(code, resp, addr):
            return [cause.eq(code), cause_resp.eq(resp), reg["ERROR_ADDR"].eq(addr), error.eq(1)]

        m.d.comb += soft.eq(start)
        with m.FSM(name="command_processor"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [busy.eq(1), done.eq(0), error.eq(0), cause.eq(0), cause_resp.eq(0),
                                 reg["ERROR_ADDR"].eq(0), completed.eq(0), dispatched_out.eq(0), index.eq(0),
                                 reg["CYCLES"].eq(0), reg["STALL_DRAM"].eq(0), reg["BYTES_READ"].eq(0),
                                 reg["BYTES_WRITTEN"].eq(0), reg["DESCRIPTORS"].eq(0), macs.eq(0)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [prog.desc.valid.eq(1), prog.desc.payload.addr.eq(reg["PROG_ADDR"]),
                             prog.desc.payload.bytes.eq(reg["PROG_COUNT"] * DESC_BYTES)]
                with m.If(reg["PROG_COUNT"] == 0):
                    m.d.sync += fail(3, 0, 0)
                    m.next = "ABORT"
                with m.Elif(prog.desc.ready):
                    m.next = "RUN"
            with m.State("RUN"):
                valid = prog.words.valid
                channel = head.channel
                bad = (head.magic != MAGIC) | ((channel > CHANNELS["out"]) & (channel != END))
                if "mv_weights" not in self.channels:
                    bad = bad | (channel == CHANNELS["mv_weights"])
                ready_now = Signal()
                m.d.comb += ready_now.eq(0)
                with m.Switch(channel):
                    for name in self.channels:
                        with m.Case(CHANNELS[name]):
                            d = reads[name].desc
                            m.d.comb += [d.payload.addr.eq(head.addr), d.payload.bytes.eq(head.bytes)]
                            m.d.comb += d.valid.eq(valid & ~bad & (completed >= head.wait) & ~dma_error
                                                   & ~watchdog)
                            m.d.comb += ready_now.eq(d.ready)
                    with m.Case(CHANNELS["out"]):
                        d = write.desc
                        m.d.comb += [d.payload.addr.eq(head.addr), d.payload.bytes.eq(head.bytes),
                                     d.payload.narrow.eq(head.narrow)]
                        m.d.comb += d.valid.eq(valid & ~bad & (completed >= head.wait) & ~dma_error & ~watchdog)
                        m.d.comb += ready_now.eq(d.ready)
                take = Signal()
                m.d.comb += take.eq(valid & ~bad & (channel != END) & (completed >= head.wait) & ready_now
                                    & ~dma_error & ~watchdog)
                m.d.comb += prog.words.ready.eq(take | (valid & ~bad & (channel == END) & ~dma_error))
                with m.If(take):
                    m.d.sync += [index.eq(index + 1), reg["DESCRIPTORS"].eq(reg["DESCRIPTORS"] + 1)]
                    with m.If(channel == CHANNELS["cfg"]):
                        m.d.sync += macs.eq(macs + head.macs)
                    with m.If(channel == CHANNELS["out"]):
                        m.d.sync += dispatched_out.eq(dispatched_out + 1)
                with m.If(dma_error):
                    self._bus_error(m, all_dmas, write, fail)
                    m.next = "ABORT"
                with m.Elif(watchdog):
                    m.d.sync += fail(4, 0, index)
                    m.next = "ABORT"
                with m.Elif(valid & bad):
                    m.d.sync += fail(3, 0, index)
                    m.next = "ABORT"
                with m.Elif(valid & (channel == END)):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(dma_error):
                    self._bus_error(m, all_dmas, write, fail)
                    m.next = "ABORT"
                with m.Elif(watchdog):
                    m.d.sync += fail(4, 0, index)
                    m.next = "ABORT"
                with m.Elif((completed == dispatched_out) & write.idle & quiet):
                    m.d.sync += [busy.eq(0), done.eq(1), irq_pending.eq(1)]
                    m.next = "IDLE"
            with m.State("ABORT"):
                m.d.comb += aborting.eq(1)
                # Read words still queued are dropped so that no channel waits on a consumer.
                with m.If(quiet):
                    m.d.sync += [busy.eq(0), done.eq(1), irq_pending.eq(1)]
                    m.next = "IDLE"
        return m

    @staticmethod
    def _bus_error(m, dmas, write, fail):
        """Record the first failing channel's response and burst address (reads before the write)."""
        first = True
        for dma in dmas:
            code = 2 if dma is write else 1
            cond = m.If(dma.error) if first else m.Elif(dma.error)
            with cond:
                m.d.sync += fail(code, dma.error_resp, dma.error_addr)
            first = False


class SystemPorts(wiring.Component):
    """`SystemTop` with flat port names as cocotbext-axi and vendor tools expect them: ``m_axi_arvalid``,
    ``s_axil_awaddr``, ... (the Verilog top for simulation and synthesis)."""

    def __init__(self, spec, **kwargs):
        self.system = SystemTop(spec, **kwargs)
        members = {}
        self._map = []
        for prefix, port in (("m_axi", self.system.m_axi), ("s_axil", self.system.s_axil)):
            for path, flow in _leaves(port.signature):
                name = f"{prefix}_{path[0]}{path[1]}"
                sig_port = port
                for part in path:
                    sig_port = getattr(sig_port, part)
                width = len(sig_port)
                members[name] = Out(width) if flow == "out" else In(width)
                self._map.append((name, path, prefix, flow))
        members["irq"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = self.system
        for name, path, prefix, flow in self._map:
            inner = getattr(self.system, prefix)
            for part in path:
                inner = getattr(inner, part)
            outer = getattr(self, name)
            if flow == "out":
                m.d.comb += outer.eq(inner)
            else:
                m.d.comb += inner.eq(outer)
        m.d.comb += self.irq.eq(self.system.irq)
        return m


def _leaves(signature):
    """``((channel, field), "out" | "in")`` for every port of a two-level AXI signature, as seen from outside
    the system top (an ``Out`` member of the master's ``m_axi`` leaves it; ``s_axil`` is flipped)."""
    from amaranth.lib.wiring import Flow
    leaves = []
    for channel, member in signature.members.items():
        # A member's signature is already seen from the outside (flipped for an In member).
        for field, leaf in member.signature.members.items():
            flow = leaf.flow
            leaves.append(((channel, field), "out" if flow == Flow.Out else "in"))
    return leaves


class SystemStreams(wiring.Component):
    """`SystemTop` with every AXI channel as an `amaranth.lib.stream` port (payload: the channel's fields
    concatenated in signature order), for tools that wrap stream components - the FPGA flow's pin-light top
    (`hwgen.fpga.wrapper.PinLightTop`) synthesizes the system through it."""

    def __init__(self, spec, **kwargs):
        self.system = SystemTop(spec, **kwargs)
        members, self._channels = {}, []
        for prefix in ("m_axi", "s_axil"):
            port = getattr(self.system, prefix)
            for channel, member in port.signature.members.items():
                fields = [(name, leaf) for name, leaf in member.signature.members.items()
                          if name not in ("valid", "ready")]
                width = sum(len(getattr(getattr(port, channel), name)) for name, _ in fields)
                leaving = member.signature.members["valid"].flow == Out
                members[f"{prefix}_{channel}"] = (Out if leaving else In)(stream.Signature(unsigned(width)))
                self._channels.append((prefix, channel, [name for name, _ in fields], leaving))
        members["irq"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = self.system
        for prefix, channel, fields, leaving in self._channels:
            inner = getattr(getattr(self.system, prefix), channel)
            outer = getattr(self, f"{prefix}_{channel}")
            payload = Cat(*(getattr(inner, name) for name in fields))
            if leaving:
                m.d.comb += [outer.payload.eq(payload), outer.valid.eq(inner.valid), inner.ready.eq(outer.ready)]
            else:
                m.d.comb += [payload.eq(outer.payload), inner.valid.eq(outer.valid), outer.ready.eq(inner.ready)]
        m.d.comb += self.irq.eq(self.system.irq)
        return m
