"""The DMA channels (`hwgen.hw.dma`) on an AXI4 memory model (`hwgen.sim.axi_pysim.AxiMemory`), against the
golden model: the DRAM layout of a stream (`hwgen.system.layout`).

Read: descriptors of random word counts at random byte addresses (across 4 KiB pages, bursts split as
`split_bursts` says), random memory latency, bandwidth and back-pressure on every channel, a consumer that
stalls at random; the words out must be the memory's bytes regrouped, the bursts on the bus those of
`split_bursts`, never more than ``max_outstanding`` in flight, and never more bytes requested than the FIFO has
room for. Write: random words (some descriptors narrowed) must land as their bytes at the descriptors'
addresses, nothing else written, one ``completed`` pulse per descriptor. Errors: a response error is reported
with the burst's address, the channel drains the bus (``quiet``) and does not hang.
"""

import random

import pytest
from amaranth.sim import Simulator

from hwgen.hw.axi import RESP_SLVERR, RESP_DECERR
from hwgen.hw.dma import ReadDMA, WriteDMA
from hwgen.sim.axi_pysim import AxiMemory, run_bench
from hwgen.system.layout import bytes_to_words, split_bursts, words_to_bytes


def _descriptors(rng, W, count, span=3 * 4096):
    out = []
    for _ in range(count):
        words = rng.choice([1, 2, 3, rng.randint(1, 40), rng.randint(40, 200)])
        addr = rng.randrange(0, span - words * W)
        out.append((addr, words * W))
    return out


def run_read(dma, memory_kwargs, descriptors, *, p_desc=1.0, p_ready=1.0, seed=0, abort_at=None,
             max_cycles=60_000):
    """Drive `descriptors` into `dma`, collect its words; returns (words, memory, trace dict)."""
    rng = random.Random(seed)
    mem = AxiMemory(dma.bus, beat_bytes=dma.beat_bytes, write=False, seed=seed + 1, **memory_kwargs)
    prng = random.Random(seed + 7)
    for i in range(len(mem.memory)):
        mem.memory[i] = prng.randrange(256)
    got, trace = [], {"max_outstanding": 0, "word_cycles": [], "desc_cycles": [], "error_cycle": None}
    state = {"sent": 0, "offer": False, "ready": False}
    expected_words = sum(n for _, n in descriptors) // dma.word_bytes

    def step(ctx, cycle, values):
        if values is None:
            state["offer"] = state["sent"] < len(descriptors) and rng.random() < p_desc
            ctx.set(dma.desc.valid, state["offer"])
            if state["offer"]:
                addr, length = descriptors[state["sent"]]
                ctx.set(dma.desc.payload, {"addr": addr, "bytes": length})
            state["ready"] = rng.random() < p_ready
            ctx.set(dma.words.ready, state["ready"])
            ctx.set(dma.abort, abort_at is not None and cycle >= abort_at)
            return False
        desc_ready, w_valid, w_data, idle, quiet, error = values
        if state["offer"] and desc_ready:
            state["sent"] += 1
            trace["desc_cycles"].append(cycle)
        if w_valid and state["ready"]:
            got.append(w_data)
            trace["word_cycles"].append(cycle)
        in_flight = len(mem.read_bursts) - sum(1 for _ in ()) - 0
        trace["max_outstanding"] = max(trace["max_outstanding"], len(mem.read_bursts) - _finished(mem, dma))
        if error and trace["error_cycle"] is None:
            trace["error_cycle"] = cycle
        if error or abort_at is not None:
            return quiet and mem.quiet and cycle > (abort_at or 0) + 2
        return len(got) == expected_words and idle

    async def bench(ctx):
        await run_bench(ctx, [mem], step, max_cycles=max_cycles,
                        extra=(dma.desc.ready, dma.words.valid, dma.words.payload, dma.idle, dma.quiet, dma.error))

    sim = Simulator(dma)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, mem, trace


def _finished(mem, dma):
    """Read bursts whose last beat has been taken."""
    beats = len(mem.r_cycles)
    done, at = 0, 0
    for _, _, n, _ in mem.read_bursts:
        at += n
        if at <= beats:
            done += 1
    return done


def _expected(mem, descriptors, word_bits):
    out = []
    for addr, length in descriptors:
        out += bytes_to_words(bytes(mem.memory[addr:addr + length]), word_bits)
    return out


READ_CASES = [
    # data_width, word_bits, fifo_depth, latency, bytes/cycle, pause
    (64, 32, 16, 1, 8, 0.0),
    (64, 280, 8, 7, 4, 0.3),
    (32, 8, 32, 3, 4, 0.2),
    (128, 100, 4, 12, 16, 0.0),
    (256, 64, 16, 20, 8, 0.4),
    (64, 453, 4, 2, 1, 0.1),
]


@pytest.mark.parametrize("data_width,word_bits,fifo_depth,latency,bpc,pause", READ_CASES)
def test_read_dma_moves_the_layout(data_width, word_bits, fifo_depth, latency, bpc, pause):
    dma = ReadDMA(word_bits=word_bits, data_width=data_width, fifo_depth=fifo_depth, max_outstanding=3, axi_id=2)
    rng = random.Random(word_bits + latency)
    descriptors = _descriptors(rng, dma.word_bytes, 8)
    got, mem, trace = run_read(dma, dict(latency=latency, bytes_per_cycle=bpc, pause=pause), descriptors,
                               p_desc=0.8, p_ready=0.7, seed=latency)
    assert got == _expected(mem, descriptors, word_bits)
    bursts = [(a, n) for addr, length in descriptors
              for a, n, _ in split_bursts(addr, length, dma.beat_bytes, dma.max_burst_beats)]
    assert [(a, n) for _, a, n, _ in mem.read_bursts] == bursts
    assert all(ident == 2 for *_, ident in mem.read_bursts)
    assert trace["max_outstanding"] <= 3


def test_read_dma_keeps_several_bursts_in_flight():
    """A long latency and a deep FIFO: the channel has max_outstanding bursts on the bus at once."""
    dma = ReadDMA(word_bits=64, data_width=64, fifo_depth=256, max_burst_beats=8, max_outstanding=4)
    descriptors = [(0x100, 200 * 8)]
    got, mem, trace = run_read(dma, dict(latency=30), descriptors)
    assert got == _expected(mem, descriptors, 64)
    assert trace["max_outstanding"] == 4


def test_read_dma_respects_the_fifo_room():
    """A consumer that never takes a word: the channel requests no more bytes than its FIFO holds."""
    dma = ReadDMA(word_bits=32, data_width=64, fifo_depth=8, max_outstanding=4)   # 32 bytes = 4 beats
    mem_holder = {}

    def never_ready():
        got, mem, trace = run_read(dma, dict(latency=3), [(0, 4 * 100)], p_ready=0.0, max_cycles=300)
        return mem
    with pytest.raises(RuntimeError, match="no end"):
        never_ready()


@pytest.mark.parametrize("resp", [RESP_SLVERR, RESP_DECERR])
def test_read_error_is_reported_and_drained(resp):
    dma = ReadDMA(word_bits=64, data_width=64, fifo_depth=64, max_burst_beats=4, max_outstanding=4)
    descriptors = [(0, 64), (0x800, 256), (0x1000, 64)]
    errors = [(0x840, 0x848, resp)]
    got, mem, trace = run_read(dma, dict(latency=5, errors=errors), descriptors)
    assert trace["error_cycle"] is not None
    sim_values = {}
    # The first descriptor and the bursts before the bad one arrived intact; nothing after it was delivered.
    good = _expected(mem, [(0, 64), (0x800, 64)], 64)
    assert got == good[:len(got)] and len(got) <= len(good)
    assert mem.quiet


def run_write(dma, memory_kwargs, descriptors, words, *, p_valid=1.0, p_desc=1.0, seed=0, max_cycles=60_000,
              abort_at=None):
    rng = random.Random(seed)
    mem = AxiMemory(dma.bus, beat_bytes=dma.beat_bytes, read=False, seed=seed + 1, **memory_kwargs)
    state = {"desc": 0, "word": 0, "d_offer": False, "w_offer": False, "completed": 0, "cycles": []}

    def step(ctx, cycle, values):
        if values is None:
            state["d_offer"] = state["desc"] < len(descriptors) and rng.random() < p_desc
            ctx.set(dma.desc.valid, state["d_offer"])
            if state["d_offer"]:
                addr, length, narrow = descriptors[state["desc"]]
                ctx.set(dma.desc.payload, {"addr": addr, "bytes": length, "narrow": narrow})
            state["w_offer"] = state["word"] < len(words) and rng.random() < p_valid
            ctx.set(dma.words.valid, state["w_offer"])
            if state["w_offer"]:
                ctx.set(dma.words.payload, words[state["word"]])
            ctx.set(dma.abort, abort_at is not None and cycle >= abort_at)
            return False
        d_ready, w_ready, completed, idle, quiet, error = values
        if state["d_offer"] and d_ready:
            state["desc"] += 1
        if state["w_offer"] and w_ready:
            state["word"] += 1
        if completed:
            state["completed"] += 1
            state["cycles"].append(cycle)
        if error or abort_at is not None:
            return quiet and mem.quiet and cycle > (abort_at or 0) + 2
        return state["completed"] == len(descriptors) and idle

    async def bench(ctx):
        await run_bench(ctx, [mem], step, max_cycles=max_cycles,
                        extra=(dma.desc.ready, dma.words.ready, dma.completed, dma.idle, dma.quiet, dma.error))

    sim = Simulator(dma)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return mem, state


def _narrow(word, lanes, lane_bits, narrow_bits):
    return sum(((word >> (j * lane_bits)) & ((1 << narrow_bits) - 1)) << (j * narrow_bits) for j in range(lanes))


WRITE_CASES = [
    # data_width, lanes, lane_bits, narrow_bits, latency, bytes/cycle, pause
    (64, 4, 32, 8, 1, 8, 0.0),
    (64, 8, 32, 8, 6, 2, 0.3),
    (32, 2, 32, 8, 2, 4, 0.2),
    (128, 4, 20, 8, 9, 16, 0.1),
    (256, 8, 32, 8, 3, 32, 0.4),
]


@pytest.mark.parametrize("data_width,lanes,lane_bits,narrow_bits,latency,bpc,pause", WRITE_CASES)
def test_write_dma_lands_the_layout(data_width, lanes, lane_bits, narrow_bits, latency, bpc, pause):
    dma = WriteDMA(word_bits=lanes * lane_bits, lanes=lanes, narrow_bits=narrow_bits, data_width=data_width,
                   max_burst_beats=16, max_outstanding=3, axi_id=1)
    rng = random.Random(lanes * lane_bits + latency)
    descriptors, words, expected = [], [], {}
    used = set()
    for _ in range(8):
        narrow = rng.random() < 0.5
        size = dma.narrow_bytes if narrow else dma.word_bytes
        count = rng.choice([1, 2, rng.randint(1, 30), rng.randint(30, 90)])
        while True:
            addr = rng.randrange(0, 3 * 4096 - count * size)
            span = set(range(addr, addr + count * size))
            if not span & used:
                break
        used |= span
        values = [rng.randrange(1 << (lanes * lane_bits)) for _ in range(count)]
        descriptors.append((addr, count * size, narrow))
        words += values
        stored = [_narrow(v, lanes, lane_bits, narrow_bits) for v in values] if narrow else values
        raw = words_to_bytes(stored, 8 * size)
        for i, byte in enumerate(raw):
            expected[addr + i] = byte
    mem, state = run_write(dma, dict(latency=latency, bytes_per_cycle=bpc, pause=pause), descriptors, words,
                           p_valid=0.7, p_desc=0.8, seed=latency)
    image = bytearray(len(mem.memory))
    for addr, byte in expected.items():
        image[addr] = byte
    assert bytes(mem.memory) == bytes(image)
    assert state["completed"] == len(descriptors)
    assert all(ident == 1 for *_, ident in mem.write_bursts)


@pytest.mark.parametrize("resp", [RESP_SLVERR, RESP_DECERR])
def test_write_error_is_reported_and_drained(resp):
    dma = WriteDMA(word_bits=128, lanes=4, narrow_bits=8, max_burst_beats=4)
    descriptors = [(0, 64, 0), (0x200, 256, 0), (0x400, 64, 0)]
    words = list(range(1, 1 + (64 + 256 + 64) // 16))
    mem, state = run_write(dma, dict(latency=4, errors=[(0x220, 0x228, resp)]), descriptors, words)
    assert state["completed"] == 1
    assert mem.quiet


def test_abort_drains_the_bus_mid_transfer():
    """Abort while bursts are in flight and their data is still owed: every issued write burst gets its beats
    (no strobes) and its response, every read burst's beats are taken; then the channels are quiet."""
    rdma = ReadDMA(word_bits=64, data_width=64, fifo_depth=64, max_burst_beats=8, max_outstanding=4)
    got, mem, trace = run_read(rdma, dict(latency=20), [(0, 8 * 200)], abort_at=30)
    assert mem.quiet and len(mem.read_bursts) >= 2
    wdma = WriteDMA(word_bits=64, data_width=64, max_burst_beats=8, max_outstanding=4)
    words = list(range(1, 50))
    mem, state = run_write(wdma, dict(latency=5), [(0, 8 * 200, 0)], words, p_valid=0.2, abort_at=40)
    assert mem.quiet and mem.write_bursts
    written = [i for i, b in enumerate(mem.memory) if b]
    assert max(written) < 8 * 50        # nothing but the words that came


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="fifo_depth"):
        ReadDMA(word_bits=64, fifo_depth=0)
    with pytest.raises(ValueError, match="max_burst_beats"):
        ReadDMA(word_bits=64, fifo_depth=4, max_burst_beats=5)
    with pytest.raises(ValueError, match="data_width"):
        ReadDMA(word_bits=64, data_width=48)
    with pytest.raises(ValueError, match="narrow_bits"):
        WriteDMA(word_bits=64, lanes=2, narrow_bits=33)


@pytest.mark.parametrize("beat_bytes, max_beats", [(4, 16), (8, 3), (8, 16), (16, 1), (32, 256)])
def test_burst_planner_matches_the_split(beat_bytes, max_beats):
    """`_BurstPlanner` (load once, then plan / advance per burst) plans the bursts of `split_bursts` - the
    exact model's `_plan` - field by field: addresses, beats (never more than max_beats, never across 4 KiB),
    bytes carried, first and last beats' byte ranges, the final flag; a transfer near the top of the 32-bit
    space, and the first burst of the longest one."""
    from amaranth.hdl import Module, Signal
    from hwgen.hw.dma import _BurstPlanner
    from hwgen.system.exact import _plan
    B = beat_bytes
    m = Module()
    planner = _BurstPlanner(beat_bytes=B, addr_width=32, max_burst_beats=max_beats)
    addr, nbytes, load, plan, advance = Signal(32), Signal(32), Signal(), Signal(), Signal()
    with m.If(load):
        m.d.sync += planner.load(addr, nbytes)
    with m.If(plan):
        m.d.sync += planner.plan(m)
    with m.If(advance):
        m.d.sync += planner.advance()
    rng = random.Random(B * 1000 + max_beats)
    cases = [((1 << 32) - 3 * B - 1, 2), (4096 - 1, 2), (0, 4096), (4096 - B + 1, (1 << 32) - 4096 - 1)]
    for _ in range(25):
        cases.append((rng.choice([rng.randrange(1 << 31), 4096 * rng.randrange(1, 50) - rng.randrange(70),
                                  rng.randrange(9000)]),
                      rng.choice([1, B, rng.randrange(1, 300), rng.randrange(1, 6000)])))

    async def bench(ctx):
        for start, count in cases:
            ctx.set(addr, start)
            ctx.set(nbytes, count)
            ctx.set(load, 1)
            await ctx.tick()
            ctx.set(load, 0)
            at, left = start, count
            for _ in range(3 if count > 100_000 else 10_000):
                ctx.set(plan, 1)
                await ctx.tick()
                ctx.set(plan, 0)
                base, beats, carried, lo, hi, final = _plan(at, left, B, max_beats)
                got = (ctx.get(planner.addr), ctx.get(planner.len) + 1, ctx.get(planner.carried),
                       ctx.get(planner.lo), ctx.get(planner.hi), bool(ctx.get(planner.final)))
                assert got == (base, beats, carried, lo, hi, final), (start, count, at, left)
                assert 1 <= beats <= max_beats and base // 4096 == (base + beats * B - 1) // 4096
                at, left = at + carried, left - carried
                if final:
                    assert left == 0
                    break
                ctx.set(advance, 1)
                await ctx.tick()
                ctx.set(advance, 0)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
