"""The gearboxes (`hwgen.hw.gearbox`) against their golden model, the byte stream of `hwgen.system.layout`.

Reads: random memory, transfers of random words at random byte addresses cut into beats as the DMA cuts them
(`transfer_beats`), back to back; the words out must be the memory's bytes regrouped (`bytes_to_words`).
Writes: random words of random transfers (some narrowed), the beats out with their strobes applied to a memory
must give the same bytes as writing the words' bytes at the transfer's address. Random valid/ready stalls on
both sides; the stream contract (an offered beat holds until taken) is checked every cycle; directed runs check
the documented throughput.
"""

import random

import pytest
from amaranth.sim import Simulator

from hwgen.hw.gearbox import BeatsToWords, WordsToBeats, default_chunk_bytes
from hwgen.system.layout import bytes_to_words, transfer_beats, words_to_bytes


def _read_case(rng, B, W, transfers):
    memory = bytes(rng.randrange(256) for _ in range(4096))
    beats, expected = [], []
    for _ in range(transfers):
        count = rng.randint(1, 6)
        address = rng.randrange(0, 4096 - count * W)
        for base, lo, hi in transfer_beats(address, count * W, B):
            beats.append((int.from_bytes(memory[base:base + B], "little"), lo, hi))
        expected += bytes_to_words(memory[address:address + count * W], 8 * W)
    return beats, expected


def run_reads(B, W, P, beats, expected, *, p_valid, p_ready, seed, max_cycles=20000):
    dut = BeatsToWords(beat_bytes=B, word_bytes=W, chunk_bytes=P)
    rng = random.Random(seed)
    got, cycles = [], []

    async def bench(ctx):
        sent, cycle, offered = 0, 0, None
        while len(got) < len(expected):
            assert cycle < max_cycles, f"stuck: {len(got)} of {len(expected)} words"
            if offered is None and sent < len(beats) and rng.random() < p_valid:
                offered = beats[sent]
            if offered is not None:
                data, lo, hi = offered
                ctx.set(dut.beats.valid, 1)
                ctx.set(dut.beats.payload, {"data": data, "lo": lo, "hi": hi})
            else:
                ctx.set(dut.beats.valid, 0)
            ready = rng.random() < p_ready
            ctx.set(dut.words.ready, ready)
            _, _, b_ready, w_valid, w_data = await ctx.tick().sample(dut.beats.ready, dut.words.valid,
                                                                    dut.words.payload)
            if offered is not None and b_ready:
                offered, sent = None, sent + 1
            if w_valid and ready:
                got.append(w_data)
                cycles.append(cycle)
            cycle += 1
        ctx.set(dut.beats.valid, 0)
        ctx.set(dut.words.ready, 1)
        for _ in range(4):
            _, _, w_valid = await ctx.tick().sample(dut.words.valid)
            assert not w_valid, "a word beyond the expected ones"
        assert ctx.get(dut.empty)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, cycles


CASES = [(4, 1, None), (4, 3, None), (4, 4, None), (8, 4, None), (8, 8, None), (8, 5, 4), (8, 35, None),
         (8, 35, 2), (8, 13, 1), (16, 70, None), (16, 16, None), (32, 9, None), (32, 64, 8), (4, 17, None)]


@pytest.mark.parametrize("B,W,P", CASES)
def test_beats_to_words_regroups_the_byte_stream(B, W, P):
    rng = random.Random(B * 1000 + W * 10 + (P or 0))
    beats, expected = _read_case(rng, B, W, transfers=6)
    got, _ = run_reads(B, W, P, beats, expected, p_valid=0.7, p_ready=0.6, seed=B + W)
    assert got == expected


@pytest.mark.parametrize("B,W", [(8, 8), (8, 4), (8, 3), (16, 35), (4, 16)])
def test_beats_to_words_throughput(B, W):
    """Sources always valid and the sink always ready: a word every ceil(W/P) cycles once the first is out
    (a word of one chunk: every cycle), bounded by the bus (W/B beats per word)."""
    P = default_chunk_bytes(beat_bytes=B, word_bytes=W)
    memory = bytes(range(256)) * 8
    count = 40
    beats = [(int.from_bytes(memory[b:b + B], "little"), lo, hi) for b, lo, hi in transfer_beats(0, count * W, B)]
    expected = bytes_to_words(memory[:count * W], 8 * W)
    got, cycles = run_reads(B, W, None, beats, expected, p_valid=1.0, p_ready=1.0, seed=0)
    assert got == expected
    per_word = max(-(-W // P), W / B)
    assert cycles[-1] - cycles[0] <= (count - 1) * per_word + 1


def _write_case(rng, B, W, Wn, transfers):
    words, writes = [], []
    for _ in range(transfers):
        count = rng.randint(1, 6)
        narrow = Wn < W and rng.random() < 0.5
        size = Wn if narrow else W
        address = rng.randrange(0, 4096 - count * size)
        values = [rng.randrange(1 << (8 * W)) for _ in range(count)]
        for k, value in enumerate(values):
            words.append({"data": value, "narrow": narrow, "first": k == 0, "lo": address % B, "last": k == count - 1})
        writes.append((address, words_to_bytes([v & ((1 << (8 * size)) - 1) for v in values], 8 * size)))
    return words, writes


def run_writes(B, W, Wn, P, words, *, p_valid, p_ready, seed, max_cycles=20000):
    dut = WordsToBeats(beat_bytes=B, word_bytes=W, narrow_bytes=Wn, chunk_bytes=P)
    rng = random.Random(seed)
    beats, cycles = [], []
    transfers = sum(w["last"] for w in words)

    async def bench(ctx):
        sent, cycle, offered, held = 0, 0, None, None
        while sum(b[2] for b in beats) < transfers:
            assert cycle < max_cycles, f"stuck: {len(beats)} beats"
            if offered is None and sent < len(words) and rng.random() < p_valid:
                offered = words[sent]
            ctx.set(dut.words.valid, offered is not None)
            if offered is not None:
                ctx.set(dut.words.payload, offered)
            ready = rng.random() < p_ready
            ctx.set(dut.beats.ready, ready)
            _, _, w_ready, b_valid, b_payload = await ctx.tick().sample(dut.words.ready, dut.beats.valid,
                                                                       dut.beats.payload)
            if b_valid:
                beat = (b_payload.data, b_payload.strb, b_payload.last)
                if held is not None:
                    assert beat == held, "an offered beat changed before it was taken"
                held = None if ready else beat
                if ready:
                    beats.append(beat)
                    cycles.append(cycle)
            else:
                assert held is None, "an offered beat was withdrawn"
            if offered is not None and w_ready:
                offered, sent = None, sent + 1
            cycle += 1
        assert sent == len(words)
        ctx.set(dut.beats.ready, 1)
        for _ in range(4):
            _, _, b_valid = await ctx.tick().sample(dut.beats.valid)
            assert not b_valid, "a beat beyond the last transfer's"
        assert ctx.get(dut.empty)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return beats, cycles


def _apply(writes_beats, writes, B):
    """Play the beats of every transfer onto memory, at the beats `transfer_beats` names."""
    memory, expected = bytearray(4096), bytearray(4096)
    at = 0
    for address, raw in writes:
        expected[address:address + len(raw)] = raw
        for base, lo, hi in transfer_beats(address, len(raw), B):
            data, strb, last = writes_beats[at]
            at += 1
            assert strb == sum(1 << i for i in range(lo, hi)), f"strobes {strb:#x} for bytes [{lo}, {hi})"
            for i in range(B):
                if strb >> i & 1:
                    memory[base + i] = (data >> (8 * i)) & 0xFF
        assert last, "the last beat of a transfer is flagged"
    assert at == len(writes_beats)
    return bytes(memory), bytes(expected)


@pytest.mark.parametrize("B,W,Wn,P", [(4, 4, 1, None), (8, 16, 4, None), (8, 32, 8, None), (8, 35, 35, None),
                                      (8, 35, 9, 4), (16, 64, 16, None), (32, 128, 32, 16), (4, 3, 2, None),
                                      (8, 16, 4, 1)])
def test_words_to_beats_writes_the_byte_stream(B, W, Wn, P):
    rng = random.Random(B * 7 + W + Wn)
    words, writes = _write_case(rng, B, W, Wn, transfers=6)
    beats, _ = run_writes(B, W, Wn, P, words, p_valid=0.7, p_ready=0.6, seed=W)
    memory, expected = _apply(beats, writes, B)
    assert memory == expected


@pytest.mark.parametrize("B,W", [(8, 16), (8, 8), (8, 4), (16, 35)])
def test_words_to_beats_throughput(B, W):
    P = default_chunk_bytes(beat_bytes=B, word_bytes=W)
    count = 40
    words = [{"data": k + 1, "narrow": 0, "first": k == 0, "lo": 0, "last": k == count - 1} for k in range(count)]
    beats, cycles = run_writes(B, W, W, None, words, p_valid=1.0, p_ready=1.0, seed=0)
    per_beat = max(1, B / W * -(-W // P))     # cycles of chunking per beat's worth of words
    assert cycles[-1] - cycles[0] <= (len(beats) - 1) * per_beat + 1


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_parameters_are_checked():
    with pytest.raises(ValueError, match="beat_bytes"):
        BeatsToWords(beat_bytes=6, word_bytes=4)
    with pytest.raises(ValueError, match="chunk_bytes"):
        BeatsToWords(beat_bytes=8, word_bytes=4, chunk_bytes=16)
    with pytest.raises(ValueError, match="narrow_bytes"):
        WordsToBeats(beat_bytes=8, word_bytes=4, narrow_bytes=5)
