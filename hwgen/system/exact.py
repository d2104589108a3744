"""The exact cycle model of a run on the system top (`hwgen.hw.system.SystemTop`, its default parameters) with a
DRAM of fixed latency and fixed bandwidth and no back-pressure: the testbench's `ExactDram`
(`hwgen.sim.tb_system`; ``arready``/``awready`` always 1, in-order read beats from ``latency`` cycles after
their ``ar``, one beat every ``interval`` cycles on ``r`` and on ``w``, write responses ``latency`` cycles after
a burst's last beat). ``CYCLES`` measured on the RTL equals `predict_exact` on every run of the tests
(`tests/test_system.py`: three networks, prefetch / fenced / without chaining / a batch of two, five DRAM
timings; LeNet-5 at 8 bytes per cycle with latency 1 and 10).

Two halves, solved together:

- **the accelerator** - the stream-fed model's recurrences (`hwgen.perf.predict_commands`) with every word's
  arrival: a command's ``cfg`` handshake waits for its word; the loader writes each ``acts``/``params`` word
  once it is there; each issue slot of the weight-stationary array and of the matrix-vector engine waits,
  the engine frozen, until its weight word can be popped from the weight FIFO and the activation word it reads
  has been written (the read-after-write interlock), and the results in the frozen pipeline wait with it.
  It gives the cycle of every handshake on the accelerator's stream ports, every weight pop and every ``out``
  beat;
- **the memory side** - a cycle-by-cycle simulation of the command processor, the read DMA channels (byte
  credits, burst planning, ``max_outstanding``), the AXI ``ar`` round-robin arbiter, the DRAM, the gearboxes,
  the prefetch FIFOs, the accelerator's weight FIFOs, and the write channel (`hwgen.hw.dma`,
  `hwgen.hw.gearbox`, `hwgen.hw.fifo`), register by register. Given when the accelerator takes each word, it
  gives when each word is offered, and when ``done`` rises.

Each half's times only move later when the other's do, so iterating from ideal streams reaches the fixed point
the hardware runs at (`predict_exact`). The accelerator's half also says, for every loader word and weight pop,
the earliest cycle it could happen whatever the arrivals, and the simulation applies the arrivals to those
itself (a word is taken from that cycle on, once it is there and - for the pops - a slot after the previous
one), so a late word moves every later one within the same pass: a handful of passes (at most 9 on the tested
networks).

Where the accelerator would stall in a way the first half does not follow, the result says so (``exact``
False, ``reasons``; the cycles are then an estimate): an ``out`` beat that waits for the write channel (the
output FIFO may back up into the pipeline). Packed (int4, int2) matrix-vector weights are followed: a word
popped every 2 or 4 slots (`tests/test_system.py -k packed` against the RTL). The output-stationary array and
the sparse engine have no arrival-aware model (their stall is not followed either).
With random back-pressure (cocotbext-axi's `AxiRam` with pauses) only the bound of
`hwgen.system.dram_model` holds.
"""

from dataclasses import dataclass, field


from ..hw.axi import BOUNDARY_BYTES, MAX_BURST_BEATS
from ..hw.fifo import BlockRAMFIFO
from ..hw.gearbox import default_chunk_bytes
from ..perf import predict_commands
from ..hw.bram import READ_LATENCY
from .image import DESC_BYTES, read_channels, stream_word_bits
from .layout import word_bytes

__all__ = ["ExactResult", "predict_exact"]


@dataclass
class ExactResult:
    cycles: int                 # CYCLES: busy cycles from the start register write to done
    exact: bool                 # inside the class the model follows exactly
    reasons: list               # why not
    iterations: int
    ports: dict = field(repr=False, default_factory=dict)   # per port: (offered, taken) cycles of every word
    memory: dict = field(repr=False, default_factory=dict)


class _SyncFIFOBuffered:
    """`amaranth.lib.fifo.SyncFIFOBuffered` (depth >= 2): counts only."""

    def __init__(self, depth):
        self.depth, self.inner, self.r_rdy = depth, 0, False
        self.items = []          # payloads, in order (the output register's one first)

    @property
    def w_rdy(self):
        return self.inner != self.depth - 1

    def step(self, w_en, item, r_en):
        do_write = self.w_rdy and w_en
        do_inner_read = self.inner != 0 and (not self.r_rdy or r_en)
        popped = self.items.pop(0) if (self.r_rdy and r_en) else None
        if do_write:
            self.items.append(item)
        self.inner += int(do_write) - int(do_inner_read)
        if do_inner_read:
            self.r_rdy = True
        elif r_en:
            self.r_rdy = False
        return do_write, popped


class _SyncFIFO:
    """`amaranth.lib.fifo.SyncFIFO` (first word fall through)."""

    def __init__(self, depth):
        self.depth, self.items = depth, []

    @property
    def w_rdy(self):
        return len(self.items) < self.depth

    @property
    def r_rdy(self):
        return bool(self.items)


class _BlockRAMFIFO:
    """`hwgen.hw.fifo.BlockRAMFIFO`: the accelerator's weight FIFOs."""

    def __init__(self, depth):
        self.depth, self.queue_size = depth, BlockRAMFIFO.QUEUE
        self.stored = self.reserved = self.queued = 0
        self.not_full, self.issue, self.r_rdy = True, False, False
        self.in_flight = [False] * READ_LATENCY
        self.arrived = 0            # words that have entered the queue

    def step(self, w_valid, pop_wanted):
        """One cycle: returns (write handshake, pop done, arrive)."""
        write = w_valid and self.not_full
        arrive = self.in_flight[0]
        pop = pop_wanted and self.r_rdy
        next_stored = self.stored + int(write) - int(self.issue)
        next_reserved = self.reserved + int(self.issue) - int(pop)
        Q = self.queue_size
        if self.issue and not pop:
            room = self.reserved < Q - 1
        elif not self.issue and pop:
            room = True
        else:
            room = self.reserved < Q
        next_queued = self.queued + int(arrive) - int(pop)
        self.r_rdy = arrive or self.queued >= 2 or (self.queued == 1 and not pop)
        self.in_flight = self.in_flight[1:] + [self.issue]
        self.issue = next_stored != 0 and room
        self.not_full = next_stored != self.depth
        self.stored, self.reserved, self.queued = next_stored, next_reserved, next_queued
        return write, pop, arrive


def _plan(at, left, B, max_beats):
    """`hwgen.hw.dma._BurstPlanner`: (addr, beats, carried, lo, hi, final)."""
    base = at - at % B
    offset = at - base
    to_boundary = (BOUNDARY_BYTES // B) - (at % BOUNDARY_BYTES) // B
    needed = min(-(-(offset + left) // B), MAX_BURST_BEATS + 1)
    beats = max_beats
    if to_boundary < max_beats:
        beats = to_boundary
    if needed < max_beats and needed < to_boundary:
        beats = needed
    capacity = beats * B - offset
    final = left <= capacity
    end = ((offset + left - 1) & (B - 1)) + 1
    return base, beats, (left if final else capacity), offset, (end if final else B), final


class _ReadChannel:
    def __init__(self, name, axi_id, word_bytes_, B, fifo_depth, max_outstanding, max_burst_beats):
        self.name, self.axi_id, self.W, self.B = name, axi_id, word_bytes_, B
        self.capacity = fifo_depth * word_bytes_
        self.max_outstanding, self.max_beats = max_outstanding, max_burst_beats
        self.P = default_chunk_bytes(beat_bytes=B, word_bytes=word_bytes_)
        self.chunks = -(-word_bytes_ // self.P)
        self.last_size = word_bytes_ - (self.chunks - 1) * self.P
        self.active = self.calc = self.pending = self.committed = False
        self.at = self.left = 0
        self.burst = None
        self.credits = self.capacity
        self.outstanding = 0
        self.bursts = []            # (lo, hi) of issued bursts
        self.first = True
        # gearbox
        self.held_valid, self.k, self.k_last, self.first_lo, self.hi, self.g_first = False, 0, 0, 0, 0, False
        self.n, self.part = 0, 0
        self.fifo = _SyncFIFOBuffered(fifo_depth)
        self.words_in = 0           # words into the FIFO

    def ar_valid(self):
        return self.pending and (self.committed or (self.credits >= self.burst[2]
                                                    and self.outstanding != self.max_outstanding))

    def quiet(self):
        return self.outstanding == 0 and not self.ar_valid() and not self.committed

    def chunk(self, beat_valid, beat_lo, beat_hi):
        """Stage A's chunk (valid, lo, hi)."""
        if self.P == self.B:
            return beat_valid, beat_lo, beat_hi
        lo = self.first_lo if self.g_first else 0
        hi = self.hi - self.k * self.P if self.k == self.k_last else self.P
        return self.held_valid, lo, hi

    def gearbox(self, beat_valid, beat_lo, beat_hi):
        """Comb + next state of the gearbox for this cycle: returns beats.ready and whether a word goes into the
        FIFO (the FIFO's w_rdy is a register, so this is the cycle's value)."""
        c_valid, c_lo, c_hi = self.chunk(beat_valid, beat_lo, beat_hi)
        is_last = self.part == self.chunks - 1
        need = self.last_size if is_last else self.P
        have = self.n >= need
        words_valid = have and is_last
        words_ready = self.fifo.w_rdy
        emit = have and (not is_last or words_ready)
        n_after = self.n - need if emit else self.n
        c_ready = n_after <= self.P - 1
        accept = c_valid and c_ready
        if self.P == self.B:
            beats_ready = c_ready
        else:
            beats_ready = (not self.held_valid) or (c_ready and self.k == self.k_last)
        take = beat_valid and beats_ready
        # next state
        if emit:
            self.part = 0 if is_last else self.part + 1
        self.n = n_after + (c_hi - c_lo if accept else 0)
        if self.P != self.B:
            shift = self.P.bit_length() - 1
            if take:
                self.held_valid, self.k, self.k_last = True, beat_lo >> shift, (beat_hi - 1) >> shift
                self.first_lo, self.hi, self.g_first = beat_lo & (self.P - 1), beat_hi, True
            elif c_valid and c_ready:
                if self.k == self.k_last:
                    self.held_valid = False
                else:
                    self.k += 1
                    self.g_first = False
        return beats_ready, take, words_valid and words_ready


class _WriteChannel:
    def __init__(self, spec, B, fifo_depth, max_outstanding):
        self.B = B
        self.W = word_bytes(spec.acc_word_bits)
        narrow_bits = spec.act_type.bits if spec.postops else spec.acc_word_bits // spec.cols
        self.N = -(-spec.cols * narrow_bits // 8)
        self.P = default_chunk_bytes(beat_bytes=B, word_bytes=self.W)
        self.wide_chunks, self.narrow_chunks = -(-self.W // self.P), -(-self.N // self.P)
        self.wide_last = self.W - (self.wide_chunks - 1) * self.P
        self.narrow_last = self.N - (self.narrow_chunks - 1) * self.P
        self.max_outstanding = max_outstanding
        self.active = self.calc = self.pending = self.committed = False
        self.at = self.left = 0
        self.burst = None
        self.outstanding = 0
        self.transfers = _SyncFIFO(2)      # (bytes, lo, narrow)
        self.w_bursts = _SyncFIFO(max_outstanding)
        self.b_bursts = _SyncFIFO(max_outstanding)
        self.done_bytes = 0
        # gearbox stage 1
        self.held_valid, self.narrow, self.g_first, self.g_last, self.lo, self.k = False, False, False, False, 0, 0
        # stage 2
        self.n, self.flushing = 0, False
        self.beats = _SyncFIFOBuffered(fifo_depth)
        self.sent = 0

    def aw_valid(self):
        return self.pending and (self.committed or (self.outstanding != self.max_outstanding
                                                    and self.w_bursts.w_rdy and self.b_bursts.w_rdy))

    def quiet(self):
        return self.outstanding == 0 and not self.aw_valid() and not self.committed

    def idle(self):
        return (not self.active and not self.transfers.r_rdy and self.outstanding == 0 and self.gearbox_empty()
                and not self.beats.r_rdy and not self.w_bursts.r_rdy)

    def gearbox_empty(self):
        return not self.held_valid and self.n == 0 and not self.flushing

    def words_ready(self):
        """words.ready this cycle (from registers only)."""
        if not self.transfers.r_rdy:
            return False
        final = self.k == (self.narrow_chunks - 1 if self.narrow else self.wide_chunks - 1)
        if not self.held_valid:
            return True
        c_ready = self._c_ready()
        return c_ready and final

    def _c_ready(self):
        B = self.B
        o_valid = self.n >= B or (self.flushing and self.n != 0)
        emit = o_valid and self.beats.w_rdy
        n_after = (self.n - B if self.n >= B else 0) if emit else self.n
        flushing_after = self.flushing and not (emit and self.n <= B)
        return (not flushing_after) and n_after <= B - 1

    def step_words(self, word_taken):
        """The gearbox and the words side for one cycle; `word_taken`: a word handshake on `words`. Returns
        whether a beat went into the beats FIFO (and advances the gearbox)."""
        B = self.B
        final = self.k == (self.narrow_chunks - 1 if self.narrow else self.wide_chunks - 1)
        c_valid = self.held_valid
        c_count = (self.narrow_last if self.narrow else self.wide_last) if final else self.P
        c_first = self.g_first and self.k == 0
        c_last = self.g_last and final
        o_valid = self.n >= B or (self.flushing and self.n != 0)
        emit = o_valid and self.beats.w_rdy
        n_after = (self.n - B if self.n >= B else 0) if emit else self.n
        flushing_after = self.flushing and not (emit and self.n <= B)
        c_ready = (not flushing_after) and n_after <= B - 1
        accept = c_valid and c_ready
        at = self.lo if c_first else n_after
        if accept:
            self.n, self.flushing = at + c_count, c_last
        else:
            self.n, self.flushing = n_after, flushing_after
        # stage 1
        if word_taken:
            info = self.transfers.items[0]
            size = self.N if info[2] else self.W
            last = self.done_bytes + size >= info[0]
            self.held_valid, self.narrow, self.g_first, self.g_last, self.lo, self.k = \
                True, info[2], self.done_bytes == 0, last, info[1], 0
            if last:
                self.done_bytes = 0
                self.transfers.items.pop(0)
            else:
                self.done_bytes += size
        elif c_valid and c_ready:
            if final:
                self.held_valid = False
            else:
                self.k += 1
        return emit


def _words_per_channel(image, spec):
    """Per read channel, the word count of each descriptor, in program order (and the out descriptors)."""
    bits = stream_word_bits(spec)
    counts = {name: 0 for name in read_channels(spec)}
    for d in image.descriptors:
        if d.channel in counts and d.bytes:
            counts[d.channel] += d.bytes // word_bytes(bits[d.channel])
    return counts


def _simulate_memory(image, spec, takes, *, beat_bytes, interval, latency, fifo_depth, max_outstanding,
                     max_burst_beats, limit):
    """The memory side, cycle by cycle (cycle 0: the first busy cycle). `takes`: per port, the cycle the
    accelerator would take each word if it were there (cfg/acts/params handshakes, weight pops, out offers).
    Returns per port the cycles each word is offered / taken, the weight words' ready cycles, out handshakes,
    and the cycles (CYCLES)."""
    B = beat_bytes
    bits = stream_word_bits(spec)
    names = read_channels(spec)
    channels = []
    for index, name in enumerate(["prog"] + names):
        wbits = 8 * DESC_BYTES if name == "prog" else bits[name]
        W = word_bytes(wbits)
        depth = max(fifo_depth, -(-(2 * B + W) // W))
        fits = min(256, (depth * W - (W - 1)) // B)
        channels.append(_ReadChannel(name, index, W, B, depth, max_outstanding, min(fits, max_burst_beats)))
    by_name = {ch.name: ch for ch in channels}
    prog = channels[0]
    write = _WriteChannel(spec, B, fifo_depth, max_outstanding)
    weight_fifos = {"weights": _BlockRAMFIFO(spec.weight_depth)}
    if spec.mv_engine:
        weight_fifos["mv_weights"] = _BlockRAMFIFO(spec.mv_weight_depth)
    descs = list(image.descriptors)
    # dram
    reads, responses, writes_q = [], [], []
    r_offer, r_next, w_next, b_offer = None, 0, 0, False
    last_grant = 0
    # command processor
    state, index, completed, dispatched_out = "FETCH", 0, 0, 0
    # ports
    offered = {name: [] for name in names}
    taken = {name: [] for name in names}
    pending_arrival = {name: None for name in names}
    ready_at = {name: [] for name in weight_fifos}
    pops = {name: 0 for name in weight_fifos}
    last_pop = {name: -1 for name in weight_fifos}
    gaps = takes.get("gaps", {})
    out_next, out_taken = 0, []
    out_offers = takes["out"]
    events = {"ar": [], "r": [], "aw": [], "w": [], "b": []}
    cycle = 0
    while cycle < limit:
        c = cycle
        # ---- command processor (comb) -------------------------------------------------------------------
        if state == "DRAIN" and completed == dispatched_out and write.idle() and \
                all(ch.quiet() for ch in channels) and write.quiet():
            break
        desc_offer = None             # (channel name, desc) offered this cycle
        prog_pop = end_now = False
        if state == "FETCH":
            fetch = not prog.active
        elif state == "RUN" and prog.fifo.r_rdy:
            d = descs[prog.fifo.items[0]]
            if d.channel == "end":
                prog_pop = end_now = True
            elif completed >= d.wait:
                desc_offer = d
        # ---- read channels: descriptor handshakes, ar ------------------------------------------------
        took_desc = {}
        if state == "FETCH" and fetch:
            took_desc["prog"] = (image.program_addr, image.count * DESC_BYTES)
        write_take = None
        if desc_offer is not None:
            if desc_offer.channel == "out":
                if not write.active and write.transfers.w_rdy:
                    write_take = desc_offer
            elif not by_name[desc_offer.channel].active:
                took_desc[desc_offer.channel] = (desc_offer.addr, desc_offer.bytes)
        dispatched = write_take is not None or (desc_offer is not None and desc_offer.channel in took_desc)
        if dispatched:
            prog_pop = True
        valids = [ch.ar_valid() for ch in channels]
        sel = None
        if any(valids):
            after = [i for i, v in enumerate(valids) if v and i > last_grant]
            sel = after[0] if after else valids.index(True)
        # ---- DRAM r beat ---------------------------------------------------------------------------------
        r_took = None
        beat_for = {}
        if r_offer is not None:
            burst = reads[0]
            ch = channels[burst[1]]
            lo, hi = ch.bursts[0]
            beat_for[ch.axi_id] = (lo if ch.first else 0, hi if burst[3] == 1 else B, burst[3] == 1)
        # ---- per channel: gearbox, FIFO, pops ------------------------------------------------------------
        for ch in channels:
            beat = beat_for.get(ch.axi_id)
            ready, take, word_in = ch.gearbox(beat is not None, beat[0] if beat else 0, beat[1] if beat else B)
            if beat is not None and take:
                r_took = (ch, beat[2])
            # pop on the words side
            if ch is prog:
                r_en = prog_pop
            elif ch.name in weight_fifos:
                r_en = weight_fifos[ch.name].not_full
            else:
                port = ch.name
                k = len(taken[port])
                if ch.fifo.r_rdy and pending_arrival[port] is None:
                    pending_arrival[port] = c
                r_en = k < len(takes[port]) and takes[port][k] <= c
            popped_now = ch.fifo.r_rdy and r_en
            if ch is not prog and ch.name in weight_fifos:
                fifo_b = weight_fifos[ch.name]
                port = ch.name
                if ch.fifo.r_rdy and pending_arrival[port] is None:
                    pending_arrival[port] = c
                k = pops[port]
                gap = gaps.get(port, ())
                want = k < len(takes[port]) and takes[port][k] <= c and \
                    (k >= len(gap) or not gap[k] or c >= last_pop[port] + gap[k])
                write_hs, pop, arrive = fifo_b.step(ch.fifo.r_rdy, want)
                popped_now = write_hs
                if pop:
                    pops[port] += 1
                    last_pop[port] = c
                if arrive:
                    ready_at[port].append(c + 1)
            if popped_now and ch is not prog:
                offered[ch.name].append(pending_arrival[ch.name])
                taken[ch.name].append(c)
                pending_arrival[ch.name] = None
            ch.fifo.step(word_in, ch.words_in if word_in else None, popped_now)
            if word_in:
                ch.words_in += 1
            ch.popped = popped_now
        # ---- write side -----------------------------------------------------------------------------------
        w_ready_core = write.words_ready()
        out_hs = out_next < len(out_offers) and out_offers[out_next] <= c and w_ready_core
        if out_hs:
            out_taken.append(c)
            out_next += 1
        w_valid = write.w_bursts.r_rdy and write.beats.r_rdy
        w_hs = w_valid and w_next <= c
        final_beat = w_hs and write.sent == write.w_bursts.items[0]
        aw_hs = write.aw_valid()
        b_hs = b_offer and write.b_bursts.r_rdy
        beat_in = write.step_words(out_hs)
        write.beats.step(beat_in, 0, w_hs)
        # ---- next state: DRAM -------------------------------------------------------------------------------
        if sel is not None:
            ch = channels[sel]
            addr, beats, carried, lo, hi, final = ch.burst
            reads.append([c + latency, sel, addr, beats])
            events["ar"].append((c, sel, beats))
        if r_took is not None:
            events["r"].append((c, r_took[0].axi_id))
        if aw_hs:
            events["aw"].append((c, write.burst[1]))
        if w_hs:
            events["w"].append(c)
        if b_hs:
            events["b"].append(c)
        if r_took is not None:
            ch, last = r_took
            reads[0][3] -= 1
            if reads[0][3] == 0:
                reads.pop(0)
            r_offer = None
            r_next = c + interval
        if aw_hs:
            writes_q.append(write.burst[1])
        if w_hs:
            writes_q[0] -= 1
            if writes_q[0] == 0:
                writes_q.pop(0)
                responses.append(c + latency)
            w_next = c + interval
        completed_pulse = False
        if b_hs:
            responses.pop(0)
            b_offer = False
            completed_pulse = write.b_bursts.items.pop(0)
        if w_hs:
            write.sent = 0 if final_beat else write.sent + 1
        now = c + 1
        if r_offer is None and reads and reads[0][0] <= now and r_next <= now:
            r_offer = reads[0]
        if not b_offer and responses and responses[0] <= now:
            b_offer = True
        # ---- next state: read channels ----------------------------------------------------------------------
        for i, ch in enumerate(channels):
            issued = sel == i
            last_beat = r_took is not None and r_took[0] is ch and r_took[1]
            if r_took is not None and r_took[0] is ch:
                ch.first = r_took[1]
            calc_now = ch.calc
            if ch.name in took_desc:
                addr, length = took_desc[ch.name]
                if length:
                    ch.at, ch.left, ch.active, ch.calc = addr, length, True, True
            if issued:
                _, _, carried, lo, hi, final = ch.burst
                ch.bursts.append((lo, hi))
                ch.pending = ch.committed = False
                ch.at += carried
                ch.left -= carried
                if final:
                    ch.active = False
                else:
                    ch.calc = True
            elif ch.ar_valid():
                ch.committed = True
            if calc_now:
                ch.burst = _plan(ch.at, ch.left, B, ch.max_beats)
                ch.calc, ch.pending = False, True
                if issued:
                    raise AssertionError("calc and issue in one cycle")
            if last_beat:
                ch.bursts.pop(0)
            ch.outstanding += int(issued) - int(bool(last_beat))
            ch.credits += -(ch.burst[2] if issued else 0) + (ch.W if ch.popped else 0)
        if sel is not None:
            last_grant = sel
        # ---- next state: write channel -------------------------------------------------------------------
        calc_now = write.calc
        if write_take is not None:
            d = write_take
            write.transfers.items.append((d.bytes, d.addr % B, d.narrow))
            write.at, write.left, write.active, write.calc = d.addr, d.bytes, True, True
            dispatched_out += 1
        if aw_hs:
            _, beats, carried, lo, hi, final = write.burst
            write.w_bursts.items.append(beats - 1)
            write.b_bursts.items.append(final)
            write.pending = write.committed = False
            write.at += carried
            write.left -= carried
            if final:
                write.active = False
            else:
                write.calc = True
        if calc_now:
            write.burst = _plan(write.at, write.left, B, MAX_BURST_BEATS)
            write.calc, write.pending = False, True
        if final_beat:
            write.w_bursts.items.pop(0)
        write.outstanding += int(aw_hs) - int(b_hs)
        if completed_pulse:
            completed += 1
        # ---- next state: command processor ------------------------------------------------------------------
        if state == "FETCH":
            state = "RUN"
        elif state == "RUN" and end_now:
            state = "DRAIN"
        cycle += 1
    else:
        raise RuntimeError(f"the memory-side simulation did not finish in {limit} cycles")
    return {"offered": offered, "taken": taken, "ready_at": ready_at, "out": out_taken, "cycles": cycle + 1,
            "events": events}


def predict_exact(program, image, *, beat_bytes=8, interval=1, latency=1, fifo_depth=32, max_outstanding=4,
                  max_burst_beats=16, max_iterations=1000):
    """CYCLES of `image` (`hwgen.system.image.build_image` of `program`) on the system top (its default
    parameters: `fifo_depth`, `max_outstanding`, `max_burst_beats`) with the testbench's `ExactDram` of
    `latency` cycles and one beat of `beat_bytes` every `interval` cycles (see the module docstring)."""
    spec = program.spec
    commands = program.commands()
    names = read_channels(spec)
    totals = _words_per_channel(image, spec)
    arrivals = {name: [0] * n for name, n in totals.items()}
    for name in ("weights", "mv_weights"):
        if name in arrivals:
            arrivals[f"{name}_ready"] = [0] * len(arrivals[name])
    limit = 50 * (program.predict().cycles + 1000) + 1000 * len(image.descriptors)
    previous = None
    for iteration in range(1, max_iterations + 1):
        record = {}
        predict_commands(commands, arrivals=arrivals, record=record)
        # What the memory side is told: when the accelerator would take each word if it were there (for the
        # loader's words and the weight pops, the arrival-free earliest: the simulation applies the arrival).
        takes = {}
        for name in names:
            earliest = record.get(f"{name}_earliest")
            takes[name] = earliest if earliest is not None and len(earliest) == len(record[name]) else record[name]
        takes["out"] = record["out"]
        takes["gaps"] = {name: record[f"{name}_gap"] for name in ("weights", "mv_weights")
                         if name in names and len(record.get(f"{name}_gap", ())) == len(takes[name])}
        key = {name: list(v) for name, v in takes.items() if name != "gaps"}
        if key == previous:
            break
        previous = key
        memory = _simulate_memory(image, spec, takes, beat_bytes=beat_bytes, interval=interval, latency=latency,
                                  fifo_depth=fifo_depth, max_outstanding=max_outstanding,
                                  max_burst_beats=max_burst_beats, limit=limit)
        # Words the simulation did not get to (the accelerator's model was ahead of it): not there yet.
        pad = lambda times, name: list(times) + [memory["cycles"]] * (totals[name] - len(times))  # noqa: E731
        arrivals = {name: pad(memory["offered"][name], name) for name in names}
        for name in ("weights", "mv_weights"):
            if name in names:
                arrivals[f"{name}_ready"] = pad(memory["ready_at"][name], name)
    else:
        raise RuntimeError(f"no fixed point in {max_iterations} iterations")
    reasons = list(record["inexact"])
    late = [k for k, (o, h) in enumerate(zip(record["out"], memory["out"])) if h != o]
    if late:
        reasons.append(f"out beat {late[0]} waits for the write channel ({len(late)} beats do)")
    for name in names:
        if name in ("weights", "mv_weights"):
            continue
        if list(memory["taken"][name]) != list(record[name]):
            reasons.append(f"{name}: handshakes differ from the accelerator's model")
    return ExactResult(cycles=memory["cycles"], exact=not reasons, reasons=reasons, iterations=iteration,
                       ports={name: (memory["offered"][name], memory["taken"][name]) for name in names},
                       memory=memory)


