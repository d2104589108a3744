"""Gearboxes between a bus of ``beat_bytes``-byte beats and a stream of ``word_bytes``-byte words.

The DRAM layout of an accelerator stream (`hwgen.system.layout`): its words packed back to back at
``word_bytes = ceil(word_bits / 8)`` bytes each, little endian (byte 0 of a word holds its bits 0..7), from any
byte address. A transfer therefore starts and ends anywhere inside a bus beat, and a word straddles beats.

`BeatsToWords` (reads) takes bus beats, each with the range ``[lo, hi)`` of its bytes that belong to the
transfer, and emits the words; `WordsToBeats` (writes) takes words, each flagged with where its transfer starts
(``first``, ``lo``) and ends (``last``), and emits bus beats with byte strobes. Golden model: the byte stream
itself (`hwgen.system.layout.words_to_bytes` / `bytes_to_words`).

Both work on *chunks* of ``chunk_bytes`` (``P``, a power of two dividing ``beat_bytes``) bytes: a word is cut
into ``ceil(W / P)`` chunks at fixed positions (chunk ``k`` = bytes ``kP .. kP+P-1``, the last one shorter
when ``P`` does not divide ``W``), so moving chunks in and out of a word needs no multiplexer wider than the
number of chunks. The only byte-granular realignment is one small buffer of ``2P-1`` (reads) or ``B+P-1``
(writes) bytes whose insert position varies - a ``P:1`` multiplexer per byte. Cost therefore grows with
``P^2`` and the word width, not with their product, which matters for the wide words of the post-op parameter
and configuration streams. A word of ``W`` bytes takes ``ceil(W/P)`` cycles; the default ``P`` is the smallest
power of two holding a whole word (capped at the beat), one word per cycle.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BeatsToWords", "WordsToBeats", "default_chunk_bytes", "beat_in_layout", "word_out_layout",
           "beat_out_layout"]


def _power_of_two(value):
    return value >= 1 and value & (value - 1) == 0


def default_chunk_bytes(*, beat_bytes, word_bytes):
    """The smallest power of two that holds a word, at most one beat."""
    return min(beat_bytes, 1 << max(word_bytes - 1, 0).bit_length())


def _check(beat_bytes, word_bytes, chunk_bytes, *, what):
    if not isinstance(beat_bytes, int) or not _power_of_two(beat_bytes) or not 4 <= beat_bytes <= 32:
        raise ValueError(f"{what}: beat_bytes must be 4, 8, 16 or 32 (a 32- to 256-bit bus), not {beat_bytes!r}")
    if not isinstance(word_bytes, int) or word_bytes < 1:
        raise ValueError(f"{what}: word_bytes must be a positive integer, not {word_bytes!r}")
    if chunk_bytes is None:
        return default_chunk_bytes(beat_bytes=beat_bytes, word_bytes=word_bytes)
    if not isinstance(chunk_bytes, int) or not _power_of_two(chunk_bytes) or chunk_bytes > beat_bytes:
        raise ValueError(f"{what}: chunk_bytes must be a power of two of at most beat_bytes={beat_bytes}, not "
                         f"{chunk_bytes!r}")
    return chunk_bytes


def beat_in_layout(beat_bytes):
    """A read beat: its data and the range ``[lo, hi)`` of its bytes that belong to the transfer."""
    return data.StructLayout({"data": unsigned(8 * beat_bytes), "lo": range(beat_bytes),
                              "hi": range(1, beat_bytes + 1)})


def beat_out_layout(beat_bytes):
    """A write beat: data, byte strobes, and whether it is the last beat of its transfer."""
    return data.StructLayout({"data": unsigned(8 * beat_bytes), "strb": unsigned(beat_bytes), "last": 1})


def word_out_layout(word_bytes, beat_bytes):
    """A word to write: ``narrow`` (only its first ``narrow_bytes`` bytes are written), ``first``/``lo`` (the
    first word of a transfer, which starts at byte ``lo`` of its first beat) and ``last`` (its last word)."""
    return data.StructLayout({"data": unsigned(8 * word_bytes), "narrow": 1, "first": 1, "lo": range(beat_bytes),
                              "last": 1})


def _bytes(value, count):
    return [value[8 * i:8 * i + 8] for i in range(count)]


class BeatsToWords(wiring.Component):
    """Bus beats -> words (see the module docstring). ``beats.payload``: `beat_in_layout`; ``words.payload``:
    ``8 * word_bytes`` bits. Every beat must carry at least one byte (``lo < hi``)."""

    def __init__(self, *, beat_bytes, word_bytes, chunk_bytes=None):
        self.chunk_bytes = _check(beat_bytes, word_bytes, chunk_bytes, what="BeatsToWords")
        self.beat_bytes, self.word_bytes = beat_bytes, word_bytes
        super().__init__({
            "beats": In(stream.Signature(beat_in_layout(beat_bytes))),
            "words": Out(stream.Signature(unsigned(8 * word_bytes))),
            "empty": Out(1),        # nothing held (no partial word, no beat being cut)
        })

    def elaborate(self, platform):
        m = Module()
        B, W, P = self.beat_bytes, self.word_bytes, self.chunk_bytes
        chunks = -(-W // P)
        last_size = W - (chunks - 1) * P          # bytes of a word's last chunk

        # Stage A: beats -> chunks of P bytes with their valid range [clo, chi).
        c_valid, c_ready = Signal(), Signal()
        c_data, c_lo, c_hi = Signal(8 * P), Signal(range(P)), Signal(range(P + 1))
        serializer_empty = Signal()
        if P == B:
            beat = self.beats.payload
            m.d.comb += [c_valid.eq(self.beats.valid), self.beats.ready.eq(c_ready),
                         c_data.eq(beat.data), c_lo.eq(beat.lo), c_hi.eq(beat.hi), serializer_empty.eq(1)]
        else:
            per_beat = B // P
            held, held_valid = Signal(8 * B), Signal()
            k, k_last = Signal(range(per_beat)), Signal(range(per_beat))
            first_lo, hi = Signal(range(P)), Signal(range(B + 1))
            first = Signal()
            shift = (P - 1).bit_length()
            beat = self.beats.payload
            take = self.beats.valid & self.beats.ready
            m.d.comb += [
                c_valid.eq(held_valid),
                c_data.eq(held.word_select(k, 8 * P)),
                c_lo.eq(Mux(first, first_lo, 0)),
                c_hi.eq(Mux(k == k_last, hi - Cat(Const(0, shift), k), P)),
                self.beats.ready.eq(~held_valid | (c_ready & (k == k_last))),
                serializer_empty.eq(~held_valid),
            ]
            with m.If(take):
                m.d.sync += [held.eq(beat.data), held_valid.eq(1), k.eq(beat.lo >> shift),
                             k_last.eq((beat.hi - 1) >> shift), first_lo.eq(beat.lo[:shift] if shift else 0),
                             hi.eq(beat.hi), first.eq(1)]
            with m.Elif(c_valid & c_ready):
                with m.If(k == k_last):
                    m.d.sync += held_valid.eq(0)
                with m.Else():
                    m.d.sync += [k.eq(k + 1), first.eq(0)]

        # Stage B: realign the byte stream so that every word starts a chunk, and assemble the words.
        size = 2 * P - 1
        buf = Signal(8 * size)
        n = Signal(range(size + 1))               # bytes held in buf
        part = Signal(range(chunks))              # which chunk of the word comes next
        is_last = Signal()
        m.d.comb += is_last.eq(part == chunks - 1)
        need = Mux(is_last, last_size, P)
        have = Signal()
        m.d.comb += have.eq(n >= need)
        assembled = Signal(8 * P * max(chunks - 1, 1))
        word = Cat(assembled[:8 * P * (chunks - 1)], buf[:8 * last_size]) if chunks > 1 else buf[:8 * last_size]
        m.d.comb += [self.words.valid.eq(have & is_last), self.words.payload.eq(word)]
        emit = Signal()
        m.d.comb += emit.eq(have & (~is_last | self.words.ready))
        with m.If(emit):
            if chunks > 1:
                with m.If(is_last):
                    m.d.sync += part.eq(0)
                with m.Else():
                    m.d.sync += [part.eq(part + 1), assembled.word_select(part, 8 * P).eq(buf[:8 * P])]
        # After this cycle's emit: what stays, shifted down.
        n_after = Signal(range(size + 1))
        kept = Signal(8 * size)
        m.d.comb += n_after.eq(Mux(emit, n - need, n))
        with m.If(emit & is_last):
            m.d.comb += kept.eq(buf >> (8 * last_size))
        with m.Elif(emit):
            m.d.comb += kept.eq(buf >> (8 * P))
        with m.Else():
            m.d.comb += kept.eq(buf)
        accept = Signal()
        m.d.comb += [c_ready.eq(n_after <= P - 1), accept.eq(c_valid & c_ready)]
        # Insert the chunk's bytes [c_lo, c_hi) at n_after: byte j of buf takes chunk byte i = j - n_after + c_lo.
        offset = Signal(range(-P, 2 * P))         # n_after - c_lo
        m.d.comb += offset.eq(n_after - c_lo)
        chunk_bytes = _bytes(c_data, P)
        in_range = [Signal(name=f"in_range_{i}") for i in range(P)]
        m.d.comb += [in_range[i].eq((i >= c_lo) & (i < c_hi)) for i in range(P)]
        new_buf = []
        kept_bytes = _bytes(kept, size)
        for j in range(size):
            byte = Signal(8, name=f"buf_next_{j}")
            m.d.comb += byte.eq(kept_bytes[j])
            with m.If(accept):
                for i in range(P):
                    with m.If((offset == j - i) & in_range[i]):
                        m.d.comb += byte.eq(chunk_bytes[i])
            new_buf.append(byte)
        m.d.sync += buf.eq(Cat(*new_buf))
        m.d.sync += n.eq(n_after + Mux(accept, c_hi - c_lo, 0))
        m.d.comb += self.empty.eq(serializer_empty & (n == 0) & (part == 0))
        return m


class WordsToBeats(wiring.Component):
    """Words -> bus beats with strobes (see the module docstring). ``words.payload``: `word_out_layout`;
    ``beats.payload``: `beat_out_layout`. ``narrow_bytes`` (default ``word_bytes``): the bytes a word flagged
    ``narrow`` contributes (its low ones)."""

    def __init__(self, *, beat_bytes, word_bytes, narrow_bytes=None, chunk_bytes=None):
        self.chunk_bytes = _check(beat_bytes, word_bytes, chunk_bytes, what="WordsToBeats")
        narrow_bytes = word_bytes if narrow_bytes is None else narrow_bytes
        if not isinstance(narrow_bytes, int) or not 1 <= narrow_bytes <= word_bytes:
            raise ValueError(f"WordsToBeats: narrow_bytes must be 1 to word_bytes={word_bytes}, not {narrow_bytes!r}")
        self.beat_bytes, self.word_bytes, self.narrow_bytes = beat_bytes, word_bytes, narrow_bytes
        super().__init__({
            "words": In(stream.Signature(word_out_layout(word_bytes, beat_bytes))),
            "beats": Out(stream.Signature(beat_out_layout(beat_bytes))),
            "empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B, W, P = self.beat_bytes, self.word_bytes, self.chunk_bytes
        wide_chunks, narrow_chunks = -(-W // P), -(-self.narrow_bytes // P)
        wide_last, narrow_last = W - (wide_chunks - 1) * P, self.narrow_bytes - (narrow_chunks - 1) * P

        # Stage 1: a word -> its chunks (chunk k = bytes kP .. kP+P-1; the last one `*_last` bytes).
        held = Signal(8 * wide_chunks * P)
        held_valid, narrow, first, last = Signal(), Signal(), Signal(), Signal()
        lo = Signal(range(B))
        k = Signal(range(wide_chunks))
        k_last = Mux(narrow, narrow_chunks - 1, wide_chunks - 1)
        final = Signal()
        m.d.comb += final.eq(k == k_last)
        c_valid, c_ready = Signal(), Signal()
        c_data, c_count = Signal(8 * P), Signal(range(P + 1))
        c_first, c_last = Signal(), Signal()
        m.d.comb += [
            c_valid.eq(held_valid), c_data.eq(held.word_select(k, 8 * P)),
            c_count.eq(Mux(final, Mux(narrow, narrow_last, wide_last), P)),
            c_first.eq(first & (k == 0)), c_last.eq(last & final),
            self.words.ready.eq(~held_valid | (c_ready & final)),
        ]
        word = self.words.payload
        with m.If(self.words.valid & self.words.ready):
            m.d.sync += [held.eq(word.data), held_valid.eq(1), narrow.eq(word.narrow), first.eq(word.first),
                         last.eq(word.last), lo.eq(word.lo), k.eq(0)]
        with m.Elif(c_valid & c_ready):
            with m.If(final):
                m.d.sync += held_valid.eq(0)
            with m.Else():
                m.d.sync += k.eq(k + 1)

        # Stage 2: pack chunks into beats; a transfer starts at byte `lo` of its first beat and its last beat is
        # flushed with the strobes of the bytes it holds.
        size = B + P - 1
        buf, mask = Signal(8 * size), Signal(size)
        n = Signal(range(size + 1))
        flushing = Signal()                       # the transfer's last chunk is in: send what is left
        o_valid = Signal()
        m.d.comb += [o_valid.eq((n >= B) | (flushing & (n != 0))),
                     self.beats.valid.eq(o_valid),
                     self.beats.payload.data.eq(buf[:8 * B]), self.beats.payload.strb.eq(mask[:B]),
                     self.beats.payload.last.eq(flushing & (n <= B))]
        emit = Signal()
        m.d.comb += emit.eq(o_valid & self.beats.ready)
        n_after = Signal(range(size + 1))
        kept, kept_mask = Signal(8 * size), Signal(size)
        with m.If(emit):
            m.d.comb += [n_after.eq(Mux(n >= B, n - B, 0)), kept.eq(buf >> (8 * B)), kept_mask.eq(mask >> B)]
        with m.Else():
            m.d.comb += [n_after.eq(n), kept.eq(buf), kept_mask.eq(mask)]
        flushing_after = Signal()
        m.d.comb += flushing_after.eq(flushing & ~(emit & (n <= B)))
        accept = Signal()
        m.d.comb += [c_ready.eq(~flushing_after & (n_after <= B - 1)), accept.eq(c_valid & c_ready)]
        at = Signal(range(size + 1))              # where the chunk's first byte goes
        m.d.comb += at.eq(Mux(c_first, lo, n_after))
        chunk_bytes = _bytes(c_data, P)
        new_buf, new_mask = [], []
        kept_bytes = _bytes(kept, size)
        for j in range(size):
            byte, valid = Signal(8, name=f"pack_{j}"), Signal(name=f"strb_{j}")
            m.d.comb += [byte.eq(kept_bytes[j]), valid.eq(kept_mask[j])]
            with m.If(accept):
                for i in range(min(P, j + 1)):
                    with m.If((at == j - i) & (i < c_count)):
                        m.d.comb += [byte.eq(chunk_bytes[i]), valid.eq(1)]
            new_buf.append(byte)
            new_mask.append(valid)
        m.d.sync += [buf.eq(Cat(*new_buf)), mask.eq(Cat(*new_mask))]
        with m.If(accept):
            m.d.sync += [n.eq(at + c_count), flushing.eq(c_last)]
        with m.Else():
            m.d.sync += [n.eq(n_after), flushing.eq(flushing_after)]
        m.d.comb += self.empty.eq(~held_valid & (n == 0) & ~flushing)
        return m
