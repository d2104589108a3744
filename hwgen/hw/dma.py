"""AXI4 DMA channels: `ReadDMA` (DRAM -> a stream of words) and `WriteDMA` (a stream of words -> DRAM).

A channel takes *descriptors* - a byte address and a byte length - one at a time and moves the bytes in INCR
bursts of full-width beats (`hwgen.system.layout.split_bursts`: at most ``max_burst_beats``, never across a
4 KiB boundary), converting between bus beats and the stream's words with a gearbox (`hwgen.hw.gearbox`; the
DRAM layout of a stream is its words packed back to back at ``ceil(word_bits / 8)`` bytes each). Several bursts
may be outstanding (``max_outstanding``); every channel uses one AXI id, so its responses come back in order.

Read channel
    The words go into the channel's own FIFO (``fifo_depth`` words), the prefetch buffer: a burst is issued
    only once the FIFO has room reserved for every byte it brings (byte credits: the FIFO's capacity minus the
    bytes requested and not yet taken out of it), so read data never waits on the bus for the consumer, and one
    slow channel never blocks the shared read-data channel. Burst issue: a descriptor is taken in cycle ``t``
    (while no other is active), its first burst computed in ``t + 1`` and offered on ``ar`` from ``t + 2`` when
    the credits and ``max_outstanding`` allow; after each ``ar`` handshake the next burst is computed in the
    following cycle and offered in the one after (a burst at most every two cycles).

Write channel
    A descriptor also says whether its words are *narrowed* (``narrow``: only each ``lane_bits`` lane's low
    ``narrow_bits`` are written - an accelerator output beat of int32 lanes holding requantized int8 values
    lands in DRAM as the int8 activation words of the next layer). Bursts are offered on ``aw`` as soon as they
    are computed (as for reads, at most ``max_outstanding`` without a write response), and their beats follow
    on ``w`` as the words arrive. A descriptor is *complete* when every one of its bursts has its write
    response; ``completed`` pulses then (the command processor's fences count these).

Errors, abort
    A read or write response other than OKAY sets ``error`` (sticky until reset) with the response and the
    address of the burst that got it. From then on the channel behaves as if ``abort`` were high: it offers no
    new burst (one already offered stays offered until taken, as AXI requires), takes and drops every read
    beat still due, sends the beats still owed to bursts already issued with all strobes clear (nothing is
    written), and takes every write response. ``quiet`` says no transaction of the channel is left on the bus;
    only then may the channel be reset (the system's soft reset waits for it).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import (BOUNDARY_BYTES, BURST_INCR, MAX_BURST_BEATS, RESP_OKAY, axi4_read_signature,
                  axi4_write_signature, beat_size, check_axi_params)
from .gearbox import BeatsToWords, WordsToBeats

__all__ = ["ReadDMA", "WriteDMA", "read_descriptor_layout", "write_descriptor_layout", "LENGTH_BITS"]

LENGTH_BITS = 32        # a descriptor moves at most 4 GiB - 1 bytes


def read_descriptor_layout(addr_width):
    return data.StructLayout({"addr": unsigned(addr_width), "bytes": unsigned(LENGTH_BITS)})


def write_descriptor_layout(addr_width):
    return data.StructLayout({"addr": unsigned(addr_width), "bytes": unsigned(LENGTH_BITS), "narrow": 1})


def _positive(value, name, owner):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, not {value!r}")


class _BurstPlanner:
    """The burst arithmetic both channels share (`hwgen.system.layout.split_bursts`), kept short: a transfer is
    tracked as its next byte address ``at``, the beats still to move from ``at``'s beat on (``rest``, computed
    once from the descriptor) and where its last beat ends (``end``, fixed for the transfer), so planning the
    next burst (`plan`, one cycle) is narrow arithmetic only - the 4 KiB-boundary room from ``at``'s bits below
    4 KiB, ``rest`` saturated against ``max_burst_beats`` (an OR of its high bits) and the bytes the burst
    carries (at most ``max_burst_beats x beat_bytes``) - and the wide updates (`advance`: ``at`` plus the bytes
    carried, ``rest`` minus the beats) are each one adder from registers when the burst is issued."""

    def __init__(self, *, beat_bytes, addr_width, max_burst_beats):
        self.B, self.addr_width, self.max_beats = beat_bytes, addr_width, max_burst_beats
        self.shift = beat_size(8 * beat_bytes)
        self.at = Signal(addr_width)              # the transfer's next byte address
        self.rest = Signal(LENGTH_BITS + 1)       # beats from at's beat to the transfer's end
        self.end = Signal(range(1, beat_bytes + 1), init=beat_bytes)   # end of the transfer's last beat's bytes
        # The planned burst:
        self.addr = Signal(addr_width)            # aligned address of the burst's first beat
        self.beats = Signal(range(max_burst_beats + 1))
        self.len = Signal(8)                      # beats - 1
        self.carried = Signal(range(max_burst_beats * beat_bytes + 1))   # bytes of the transfer it carries
        self.lo = Signal(range(beat_bytes))       # first byte of its first beat
        self.hi = Signal(range(1, beat_bytes + 1), init=beat_bytes)   # end of its last beat's bytes
        self.final = Signal()                     # the transfer's last burst

    def load(self, addr, nbytes):
        """Statements (sync) that start a transfer of `nbytes` (> 0) bytes at `addr`."""
        B, shift = self.B, self.shift
        offset = addr[:shift]
        return [self.at.eq(addr),
                self.rest.eq((offset + nbytes + (B - 1))[shift:]),
                self.end.eq(((offset + nbytes[:shift] - 1) & (B - 1)) + 1)]

    def plan(self, m):
        """Statements (sync) that set the burst registers for the transfer's next burst."""
        B, shift, at = self.B, self.shift, self.at
        offset = at[:shift]
        to_boundary = Signal(range(BOUNDARY_BYTES // B + 1))
        m.d.comb += to_boundary.eq((BOUNDARY_BYTES // B) - at[shift:12])
        big = Signal()                            # more than max_burst_beats beats to go
        m.d.comb += big.eq(self.rest > self.max_beats)
        needed = self.rest[:len(self.beats)]     # the beats to go, when not big
        most = Signal.like(self.beats)
        m.d.comb += most.eq(Mux(big, self.max_beats, needed))
        beats = Signal.like(self.beats)
        m.d.comb += beats.eq(Mux(to_boundary < most, to_boundary, most))
        final = Signal()
        m.d.comb += final.eq(~big & (needed == beats))
        full = Signal(range(self.max_beats * B + 1))          # the burst's bytes from its first beat on
        m.d.comb += full.eq(Cat(Const(0, shift), beats))
        carried = Mux(final, full - B + self.end - offset, full - offset)
        return [self.addr.eq(Cat(Const(0, shift), at[shift:])), self.beats.eq(beats), self.len.eq(beats - 1),
                self.lo.eq(offset), self.final.eq(final), self.carried.eq(carried),
                self.hi.eq(Mux(final, self.end, B))]

    def advance(self):
        """Statements (sync) that step the transfer past the planned burst (when it is issued)."""
        return [self.at.eq(self.at + self.carried), self.rest.eq(self.rest - self.beats)]

    def offer(self, m, channel, *, valid, axi_id, data_width, pending, committed, active, calc):
        """Drive the address channel (``ar`` or ``aw``) with the planned burst while ``valid``, and step on its
        handshake: the next burst is planned (``calc``) or the transfer ends (``active``); an offer once made
        stays (``committed``) until taken, as AXI requires. Returns the handshake signal."""
        m.d.comb += [
            channel.valid.eq(valid), channel.id.eq(axi_id), channel.addr.eq(self.addr),
            channel.len.eq(self.len), channel.size.eq(beat_size(data_width)), channel.burst.eq(BURST_INCR),
        ]
        issued = Signal()
        m.d.comb += issued.eq(valid & channel.ready)
        with m.If(issued):
            m.d.sync += [pending.eq(0), committed.eq(0)]
            m.d.sync += self.advance()
            with m.If(self.final):
                m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += calc.eq(1)
        with m.Elif(valid):
            m.d.sync += committed.eq(1)
        return issued


class ReadDMA(wiring.Component):
    """DRAM -> ``words`` (see the module docstring).

    ``desc``: `read_descriptor_layout` (``bytes`` a whole number of words; 0 moves nothing); ``bus``: the read
    half of an AXI4 master (``ar``/``r``, id ``axi_id``); ``words``: the stream, out of the prefetch FIFO.
    ``delivered`` pulses when a word enters the FIFO; ``idle``: no descriptor in progress and nothing held
    (FIFO empty)."""

    def __init__(self, *, word_bits, data_width=64, addr_width=32, id_width=4, axi_id=0, fifo_depth=16,
                 max_burst_beats=None, max_outstanding=4, chunk_bytes=None):
        check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
        _positive(word_bits, "word_bits", "ReadDMA")
        _positive(fifo_depth, "fifo_depth", "ReadDMA")
        _positive(max_outstanding, "max_outstanding", "ReadDMA")
        if not isinstance(axi_id, int) or not 0 <= axi_id < (1 << id_width):
            raise ValueError(f"ReadDMA: axi_id must be 0 to {(1 << id_width) - 1}, not {axi_id!r}")
        self.word_bits, self.word_bytes = word_bits, -(-word_bits // 8)
        self.data_width, self.addr_width, self.id_width, self.axi_id = data_width, addr_width, id_width, axi_id
        self.beat_bytes = data_width // 8
        self.fifo_depth, self.max_outstanding = fifo_depth, max_outstanding
        self.capacity_bytes = fifo_depth * self.word_bytes
        # A burst must fit the room the FIFO has once every whole word is out of it: the bytes of a word that
        # straddles two bursts stay reserved until the second one brings the rest.
        room = self.capacity_bytes - (self.word_bytes - 1)
        fits = min(MAX_BURST_BEATS, room // self.beat_bytes)
        if max_burst_beats is None:
            max_burst_beats = fits
        if fits < 1:
            need = -(-(self.beat_bytes + self.word_bytes - 1) // self.word_bytes)
            raise ValueError(f"ReadDMA: a FIFO of {fifo_depth} x {self.word_bytes}-byte words cannot take a "
                             f"{self.beat_bytes}-byte beat beside a partial word; make fifo_depth >= {need}")
        if not isinstance(max_burst_beats, int) or not 1 <= max_burst_beats <= fits:
            raise ValueError(f"ReadDMA: max_burst_beats must be 1 to {fits} (256, and what the FIFO of "
                             f"{self.capacity_bytes} bytes can take beside a partial word), not {max_burst_beats!r}")
        self.max_burst_beats = max_burst_beats
        self.gearbox = BeatsToWords(beat_bytes=self.beat_bytes, word_bytes=self.word_bytes, chunk_bytes=chunk_bytes)
        super().__init__({
            "desc": In(stream.Signature(read_descriptor_layout(addr_width))),
            "bus": Out(axi4_read_signature(data_width=data_width, addr_width=addr_width, id_width=id_width)),
            "words": Out(stream.Signature(unsigned(word_bits))),
            "abort": In(1),
            "idle": Out(1), "quiet": Out(1), "active": Out(1), "delivered": Out(1),
            "error": Out(1), "error_resp": Out(2), "error_addr": Out(addr_width),
        })

    def elaborate(self, platform):
        m = Module()
        B, W = self.beat_bytes, self.word_bytes
        bus = self.bus

        # Issue side ------------------------------------------------------------------------------------------
        active, calc, pending, committed = Signal(), Signal(), Signal(), Signal()
        planner = _BurstPlanner(beat_bytes=B, addr_width=self.addr_width, max_burst_beats=self.max_burst_beats)
        credits = Signal(range(self.capacity_bytes + 1), init=self.capacity_bytes)
        outstanding = Signal(range(self.max_outstanding + 1))
        stopping = Signal()
        m.d.comb += stopping.eq(self.abort | self.error)

        m.d.comb += self.desc.ready.eq(~active)
        with m.If(self.desc.valid & self.desc.ready & (self.desc.payload.bytes != 0)):
            m.d.sync += planner.load(self.desc.payload.addr, self.desc.payload.bytes)
            m.d.sync += [active.eq(1), calc.eq(1)]
        with m.If(calc):
            m.d.sync += planner.plan(m)
            m.d.sync += [calc.eq(0), pending.eq(1)]
        may_offer = (credits >= planner.carried) & (outstanding != self.max_outstanding) & ~stopping
        ar_valid = Signal()
        m.d.comb += ar_valid.eq(pending & (committed | may_offer))
        issued = planner.offer(m, bus.ar, valid=ar_valid, axi_id=self.axi_id, data_width=self.data_width,
                               pending=pending, committed=committed, active=active, calc=calc)

        # Read-data side --------------------------------------------------------------------------------------
        info_layout = data.StructLayout({"lo": range(B), "hi": range(1, B + 1), "addr": unsigned(self.addr_width)})
        m.submodules.bursts = bursts = fifo.SyncFIFO(width=info_layout.size, depth=self.max_outstanding)
        m.d.comb += [bursts.w_en.eq(issued),
                     bursts.w_data.eq(Cat(planner.lo, planner.hi, planner.addr))]
        head = data.View(info_layout, bursts.r_data)
        m.submodules.gearbox = gearbox = self.gearbox
        first = Signal(init=1)                    # the next beat is its burst's first
        discard = Signal()
        m.d.comb += discard.eq(stopping)
        beat = gearbox.beats.payload
        m.d.comb += [
            beat.data.eq(bus.r.data), beat.lo.eq(Mux(first, head.lo, 0)), beat.hi.eq(Mux(bus.r.last, head.hi, B)),
            gearbox.beats.valid.eq(bus.r.valid & ~discard & (bus.r.resp == RESP_OKAY)),
            bus.r.ready.eq(discard | (bus.r.resp != RESP_OKAY) | gearbox.beats.ready),
        ]
        took = Signal()
        m.d.comb += took.eq(bus.r.valid & bus.r.ready)
        with m.If(took):
            m.d.sync += first.eq(bus.r.last)
            with m.If((bus.r.resp != RESP_OKAY) & ~self.error):
                m.d.sync += [self.error.eq(1), self.error_resp.eq(bus.r.resp), self.error_addr.eq(head.addr)]
        m.d.comb += bursts.r_en.eq(took & bus.r.last)
        with m.If(issued & ~(took & bus.r.last)):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~issued & took & bus.r.last):
            m.d.sync += outstanding.eq(outstanding - 1)

        # Prefetch FIFO ---------------------------------------------------------------------------------------
        m.submodules.fifo = buffer = fifo.SyncFIFOBuffered(width=self.word_bits, depth=self.fifo_depth)
        m.d.comb += [buffer.w_data.eq(gearbox.words.payload), buffer.w_en.eq(gearbox.words.valid),
                     gearbox.words.ready.eq(buffer.w_rdy),
                     self.words.payload.eq(buffer.r_data), self.words.valid.eq(buffer.r_rdy),
                     buffer.r_en.eq(self.words.ready),
                     self.delivered.eq(gearbox.words.valid & buffer.w_rdy)]
        popped = Signal()
        m.d.comb += popped.eq(self.words.valid & self.words.ready)
        m.d.sync += credits.eq(credits - Mux(issued, planner.carried, 0) + Mux(popped, W, 0))

        m.d.comb += [
            self.active.eq(active),
            self.quiet.eq((outstanding == 0) & ~ar_valid & ~committed),
            self.idle.eq(~active & (outstanding == 0) & gearbox.empty & (buffer.r_level == 0)),
        ]
        return m


class WriteDMA(wiring.Component):
    """``words`` -> DRAM (see the module docstring).

    ``desc``: `write_descriptor_layout` (``bytes`` a whole number of words of the size ``narrow`` selects; 0
    moves nothing); ``words``: the stream (``word_bits`` wide, ``lanes`` lanes of ``word_bits // lanes``
    bits; narrowed, each lane's low ``narrow_bits``); ``bus``: the write half of an AXI4 master (id ``axi_id``).
    ``completed`` pulses when a descriptor's last write response arrives; ``taken`` pulses for each word taken
    (``narrow_taken`` for a narrowed one); ``idle``: nothing in progress."""

    def __init__(self, *, word_bits, lanes=1, narrow_bits=None, data_width=64, addr_width=32, id_width=4, axi_id=0,
                 fifo_depth=16, max_burst_beats=MAX_BURST_BEATS, max_outstanding=4, chunk_bytes=None):
        check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
        _positive(word_bits, "word_bits", "WriteDMA")
        _positive(lanes, "lanes", "WriteDMA")
        _positive(fifo_depth, "fifo_depth", "WriteDMA")
        _positive(max_outstanding, "max_outstanding", "WriteDMA")
        if word_bits % lanes:
            raise ValueError(f"WriteDMA: word_bits={word_bits} is not a whole number of {lanes} lanes")
        lane_bits = word_bits // lanes
        narrow_bits = lane_bits if narrow_bits is None else narrow_bits
        if not isinstance(narrow_bits, int) or not 1 <= narrow_bits <= lane_bits:
            raise ValueError(f"WriteDMA: narrow_bits must be 1 to the lane's {lane_bits} bits, not {narrow_bits!r}")
        if not isinstance(max_burst_beats, int) or not 1 <= max_burst_beats <= MAX_BURST_BEATS:
            raise ValueError(f"WriteDMA: max_burst_beats must be 1 to 256, not {max_burst_beats!r}")
        if not isinstance(axi_id, int) or not 0 <= axi_id < (1 << id_width):
            raise ValueError(f"WriteDMA: axi_id must be 0 to {(1 << id_width) - 1}, not {axi_id!r}")
        self.word_bits, self.lanes, self.lane_bits, self.narrow_bits = word_bits, lanes, lane_bits, narrow_bits
        self.word_bytes = -(-word_bits // 8)
        self.narrow_bytes = -(-lanes * narrow_bits // 8)
        self.data_width, self.addr_width, self.id_width, self.axi_id = data_width, addr_width, id_width, axi_id
        self.beat_bytes = data_width // 8
        self.fifo_depth, self.max_burst_beats, self.max_outstanding = fifo_depth, max_burst_beats, max_outstanding
        self.gearbox = WordsToBeats(beat_bytes=self.beat_bytes, word_bytes=self.word_bytes,
                                    narrow_bytes=self.narrow_bytes, chunk_bytes=chunk_bytes)
        super().__init__({
            "desc": In(stream.Signature(write_descriptor_layout(addr_width))),
            "words": In(stream.Signature(unsigned(word_bits))),
            "bus": Out(axi4_write_signature(data_width=data_width, addr_width=addr_width, id_width=id_width)),
            "abort": In(1),
            "idle": Out(1), "quiet": Out(1), "active": Out(1), "completed": Out(1),
            "taken": Out(1), "narrow_taken": Out(1),
            "error": Out(1), "error_resp": Out(2), "error_addr": Out(addr_width),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.beat_bytes
        bus = self.bus
        stopping = Signal()
        m.d.comb += stopping.eq(self.abort | self.error)

        # Address side: a descriptor's bursts, offered on aw as computed. --------------------------------------
        active, calc, pending, committed = Signal(), Signal(), Signal(), Signal()
        planner = _BurstPlanner(beat_bytes=B, addr_width=self.addr_width, max_burst_beats=self.max_burst_beats)
        outstanding = Signal(range(self.max_outstanding + 1))

        # The words side learns each descriptor's size, start offset and narrowing through a small queue.
        word_info = data.StructLayout({"bytes": unsigned(LENGTH_BITS), "lo": range(B), "narrow": 1})
        m.submodules.transfers = transfers = fifo.SyncFIFO(width=word_info.size, depth=2)
        desc = self.desc.payload
        m.d.comb += self.desc.ready.eq(~active & transfers.w_rdy)
        take = Signal()
        m.d.comb += take.eq(self.desc.valid & self.desc.ready & (desc.bytes != 0))
        m.d.comb += [transfers.w_en.eq(take),
                     transfers.w_data.eq(Cat(desc.bytes, desc.addr[:beat_size(self.data_width)], desc.narrow))]
        with m.If(take):
            m.d.sync += planner.load(desc.addr, desc.bytes)
            m.d.sync += [active.eq(1), calc.eq(1)]
        with m.If(calc):
            m.d.sync += planner.plan(m)
            m.d.sync += [calc.eq(0), pending.eq(1)]

        m.submodules.w_bursts = w_bursts = fifo.SyncFIFO(width=8, depth=self.max_outstanding)
        b_layout = data.StructLayout({"addr": unsigned(self.addr_width), "final": 1})
        m.submodules.b_bursts = b_bursts = fifo.SyncFIFO(width=b_layout.size, depth=self.max_outstanding)
        may_offer = (outstanding != self.max_outstanding) & ~stopping & w_bursts.w_rdy & b_bursts.w_rdy
        aw_valid = Signal()
        m.d.comb += aw_valid.eq(pending & (committed | may_offer))
        issued = planner.offer(m, bus.aw, valid=aw_valid, axi_id=self.axi_id, data_width=self.data_width,
                               pending=pending, committed=committed, active=active, calc=calc)
        m.d.comb += [w_bursts.w_en.eq(issued), w_bursts.w_data.eq(planner.len),
                     b_bursts.w_en.eq(issued), b_bursts.w_data.eq(Cat(planner.addr, planner.final))]

        # Words side: tag each word with its transfer's start and end, narrow it, and pack it into beats. ------
        info = data.View(word_info, transfers.r_data)
        done_bytes = Signal(LENGTH_BITS)          # bytes of the current transfer taken so far
        size = Mux(info.narrow, self.narrow_bytes, self.word_bytes)
        last = Signal()
        m.d.comb += last.eq(done_bytes + size >= info.bytes)
        m.submodules.gearbox = gearbox = self.gearbox
        word = self.words.payload
        narrowed = Cat(*(word[j * self.lane_bits:j * self.lane_bits + self.narrow_bits] for j in range(self.lanes)))
        g = gearbox.words.payload
        m.d.comb += [
            g.data.eq(Mux(info.narrow, narrowed, word)), g.narrow.eq(info.narrow), g.first.eq(done_bytes == 0),
            g.lo.eq(info.lo), g.last.eq(last),
            gearbox.words.valid.eq(self.words.valid & transfers.r_rdy & ~stopping),
            self.words.ready.eq(transfers.r_rdy & gearbox.words.ready & ~stopping),
        ]
        word_taken = Signal()
        m.d.comb += [word_taken.eq(self.words.valid & self.words.ready),
                     self.taken.eq(word_taken), self.narrow_taken.eq(word_taken & info.narrow)]
        with m.If(word_taken):
            with m.If(last):
                m.d.sync += done_bytes.eq(0)
            with m.Else():
                m.d.sync += done_bytes.eq(done_bytes + size)
        m.d.comb += transfers.r_en.eq(word_taken & last)

        # Beats -> w, cut into the issued bursts (wlast on each one's last beat). ------------------------------
        m.submodules.beats = beats = fifo.SyncFIFOBuffered(width=len(gearbox.beats.payload.as_value()),
                                                           depth=self.fifo_depth)
        m.d.comb += [beats.w_data.eq(gearbox.beats.payload), beats.w_en.eq(gearbox.beats.valid),
                     gearbox.beats.ready.eq(beats.w_rdy)]
        head = data.View(gearbox.beats.payload.shape(), beats.r_data)
        sent = Signal(8)                           # beats of the current burst sent
        final_beat = Signal()
        m.d.comb += final_beat.eq(sent == w_bursts.r_data)
        # Aborting, the beats still owed to issued bursts go out with no strobe (and no data is taken for them).
        m.d.comb += [
            bus.w.valid.eq(w_bursts.r_rdy & (stopping | beats.r_rdy)),
            bus.w.data.eq(Mux(stopping, 0, head.data)), bus.w.strb.eq(Mux(stopping, 0, head.strb)), bus.w.last.eq(final_beat),
        ]
        w_sent = Signal()
        m.d.comb += [w_sent.eq(bus.w.valid & bus.w.ready),
                     beats.r_en.eq(w_sent & ~stopping), w_bursts.r_en.eq(w_sent & final_beat)]
        with m.If(w_sent):
            m.d.sync += sent.eq(Mux(final_beat, 0, sent + 1))

        # Write responses. ------------------------------------------------------------------------------------
        b_head = data.View(b_layout, b_bursts.r_data)
        m.d.comb += [bus.b.ready.eq(b_bursts.r_rdy)]
        got_b = Signal()
        m.d.comb += [got_b.eq(bus.b.valid & bus.b.ready), b_bursts.r_en.eq(got_b),
                     self.completed.eq(got_b & b_head.final & (bus.b.resp == RESP_OKAY) & ~self.error)]
        with m.If(got_b & (bus.b.resp != RESP_OKAY) & ~self.error):
            m.d.sync += [self.error.eq(1), self.error_resp.eq(bus.b.resp), self.error_addr.eq(b_head.addr)]
        with m.If(issued & ~got_b):
            m.d.sync += outstanding.eq(outstanding + 1)
        with m.Elif(~issued & got_b):
            m.d.sync += outstanding.eq(outstanding - 1)

        m.d.comb += [
            self.active.eq(active | transfers.r_rdy),
            self.quiet.eq((outstanding == 0) & ~aw_valid & ~committed),
            self.idle.eq(~active & ~transfers.r_rdy & (outstanding == 0) & gearbox.empty & ~beats.r_rdy
                         & ~w_bursts.r_rdy),
        ]
        return m
