"""An AXI4 memory for Amaranth's simulator: the slave side of a `hwgen.hw.axi` port, with the DRAM timing of
a DRAM: fixed latency, a bandwidth, random back-pressure, and injected response errors.

Timing, per cycle ``c`` (a handshake "at ``c``" happens at the clock edge that ends cycle ``c``):

- ``ar``/``aw`` are ready unless paused; a read burst accepted at ``c`` may present its first beat from
  ``c + latency``; beats are presented in the order the bursts were accepted (all ids share one queue), at most
  one new beat every ``interval = beat_bytes / bytes_per_cycle`` cycles, each held until taken;
- ``w`` is ready (unless paused) when a burst's address has been accepted and ``interval`` cycles have passed
  since the last beat it took; a burst's write response is presented from ``latency`` cycles after its last
  beat was taken, in order.

``pause``: the probability that a channel withholds ``ready`` (``ar``, ``aw``, ``w``) or ``valid`` (``r``,
``b``) in a cycle, drawn independently per channel from ``seed``. ``errors``: ``(start, end, resp)`` byte
ranges; a burst touching one gets ``resp`` on every beat (reads return zeros) or as its write response (and
writes nothing).

For the Verilog, the cocotb testbench of the system top (`hwgen.sim.tb_system`) uses cocotbext-axi's `AxiRam`
with pause generators instead.
"""

import random
from collections import deque

from hwgen.hw.axi import RESP_OKAY

__all__ = ["AxiMemory", "run_bench"]


class AxiMemory:
    def __init__(self, bus, *, beat_bytes, size=1 << 16, latency=1, bytes_per_cycle=None, pause=0.0, seed=0,
                 errors=(), read=True, write=True):
        if latency < 1:
            raise ValueError(f"latency must be at least 1 cycle, not {latency}")
        bytes_per_cycle = beat_bytes if bytes_per_cycle is None else bytes_per_cycle
        if beat_bytes % bytes_per_cycle:
            raise ValueError(f"bytes_per_cycle must divide the beat's {beat_bytes} bytes, not {bytes_per_cycle}")
        self.bus, self.B = bus, beat_bytes
        self.memory = bytearray(size)
        self.latency, self.interval = latency, beat_bytes // bytes_per_cycle
        self.pause, self.rng = pause, random.Random(seed)
        self.errors = list(errors)
        self.read, self.write = read, write
        self.reads = deque()              # [first_cycle, addr, beats_left, id, resp]
        self.r_beat = None                # (id, data, resp, last) being presented
        self.last_r = -10**9
        self.writes = deque()             # [addr, beats_left, id, resp] whose address was accepted
        self.last_w = -10**9
        self.responses = deque()          # [cycle, id, resp]
        self.b_resp = None
        self.cycle = 0
        self.read_bursts, self.write_bursts = [], []     # (cycle, addr, beats, id) of every burst accepted
        self.r_cycles = []                # cycle of every read beat taken
        self._drive = {}

    def _paused(self):
        return self.pause and self.rng.random() < self.pause

    def _resp(self, addr, length):
        for start, end, resp in self.errors:
            if addr < end and start < addr + length:
                return resp
        return RESP_OKAY

    def signals(self):
        """The master's signals to sample at each edge."""
        sigs = []
        if self.read:
            b = self.bus
            sigs += [b.ar.valid, b.ar.addr, b.ar.len, b.ar.id, b.ar.size, b.ar.burst, b.r.ready]
        if self.write:
            b = self.bus
            sigs += [b.aw.valid, b.aw.addr, b.aw.len, b.aw.id, b.aw.size, b.aw.burst, b.w.valid, b.w.data, b.w.strb,
                     b.w.last, b.b.ready]
        return sigs

    def drive(self, ctx):
        """Set the slave's outputs for the current cycle."""
        c, bus = self.cycle, self.bus
        if self.read:
            self._drive["arready"] = not self._paused()
            ctx.set(bus.ar.ready, self._drive["arready"])
            if self.r_beat is None and self.reads and c >= self.reads[0][0] and c >= self.last_r + self.interval \
                    and not self._paused():
                burst = self.reads[0]
                first, addr, left, ident, resp = burst
                data = 0 if resp != RESP_OKAY else int.from_bytes(self.memory[addr:addr + self.B], "little")
                self.r_beat = (ident, data, resp, left == 1)
                self.last_r = c
                burst[1] += self.B
                burst[2] -= 1
                if burst[2] == 0:
                    self.reads.popleft()
            ctx.set(bus.r.valid, self.r_beat is not None)
            if self.r_beat is not None:
                ident, data, resp, last = self.r_beat
                ctx.set(bus.r.id, ident)
                ctx.set(bus.r.data, data)
                ctx.set(bus.r.resp, resp)
                ctx.set(bus.r.last, last)
        if self.write:
            self._drive["awready"] = not self._paused()
            ctx.set(bus.aw.ready, self._drive["awready"])
            self._drive["wready"] = bool(self.writes) and c >= self.last_w + self.interval and not self._paused()
            ctx.set(bus.w.ready, self._drive["wready"])
            if self.b_resp is None and self.responses and c >= self.responses[0][0] and not self._paused():
                self.b_resp = self.responses.popleft()[1:]
            ctx.set(bus.b.valid, self.b_resp is not None)
            if self.b_resp is not None:
                ctx.set(bus.b.id, self.b_resp[0])
                ctx.set(bus.b.resp, self.b_resp[1])

    def observe(self, values):
        """Take the sampled master signals (in `signals` order) of the edge ending the current cycle."""
        c = self.cycle
        values = list(values)
        if self.read:
            ar_valid, ar_addr, ar_len, ar_id, ar_size, ar_burst, r_ready = values[:7]
            values = values[7:]
            if ar_valid and self._drive["arready"]:
                assert ar_burst == 1 and 1 << ar_size == self.B, "only INCR bursts of full-width beats"
                beats = ar_len + 1
                assert ar_addr % self.B == 0, f"a burst at {ar_addr:#x} is not beat-aligned"
                assert ar_addr // 4096 == (ar_addr + beats * self.B - 1) // 4096, "a burst crosses 4 KiB"
                resp = self._resp(ar_addr, beats * self.B)
                self.reads.append([c + self.latency, ar_addr, beats, ar_id, resp])
                self.read_bursts.append((c, ar_addr, beats, ar_id))
            if self.r_beat is not None and r_ready:
                self.r_beat = None
                self.r_cycles.append(c)
        if self.write:
            aw_valid, aw_addr, aw_len, aw_id, aw_size, aw_burst, w_valid, w_data, w_strb, w_last, b_ready = values
            if aw_valid and self._drive["awready"]:
                assert aw_burst == 1 and 1 << aw_size == self.B, "only INCR bursts of full-width beats"
                beats = aw_len + 1
                assert aw_addr % self.B == 0 and aw_addr // 4096 == (aw_addr + beats * self.B - 1) // 4096
                self.writes.append([aw_addr, beats, aw_id, self._resp(aw_addr, beats * self.B)])
                self.write_bursts.append((c, aw_addr, beats, aw_id))
            if w_valid and self._drive["wready"]:
                burst = self.writes[0]
                addr, left, ident, resp = burst
                assert bool(w_last) == (left == 1), f"wlast={w_last} with {left} beats left in the burst"
                if resp == RESP_OKAY:
                    for i in range(self.B):
                        if w_strb >> i & 1:
                            self.memory[addr + i] = (w_data >> (8 * i)) & 0xFF
                self.last_w = c
                burst[0] += self.B
                burst[1] -= 1
                if burst[1] == 0:
                    self.writes.popleft()
                    self.responses.append([c + self.latency, ident, resp])
            if self.b_resp is not None and b_ready:
                self.b_resp = None
        self.cycle += 1

    @property
    def quiet(self):
        return not (self.reads or self.r_beat or self.writes or self.responses or self.b_resp)


async def run_bench(ctx, memories, step, *, max_cycles=100_000, extra=()):
    """Run cycle by cycle: each cycle ``step(ctx, cycle, sampled_extra)`` is called twice - before the edge
    with ``sampled_extra=None`` (set the testbench's own inputs) and after it with the values of `extra`
    sampled at the edge - and returns True to stop after the edge. The memories drive and observe their
    buses around it."""
    cycle = 0
    sigs = [s for mem in memories for s in mem.signals()]
    while True:
        if cycle >= max_cycles:
            raise RuntimeError(f"no end after {max_cycles} cycles")
        for mem in memories:
            mem.drive(ctx)
        step(ctx, cycle, None)
        _, _, *values = await ctx.tick().sample(*sigs, *extra)
        at = 0
        for mem in memories:
            n = len(mem.signals())
            mem.observe(values[at:at + n])
            at += n
        if step(ctx, cycle, values[at:]):
            return cycle
        cycle += 1
