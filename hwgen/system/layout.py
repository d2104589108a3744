"""The DRAM layout of an accelerator stream, and how a transfer maps onto bus beats.

A stream of ``word_bits``-bit words lives in DRAM as its words packed back to back, ``word_bytes(word_bits) =
ceil(word_bits / 8)`` bytes each, little endian: byte ``k`` of a word holds its bits ``8k .. 8k+7`` (the top
byte zero-padded). A transfer of ``n`` words at byte address ``a`` is the bytes ``[a, a + n * word_bytes)``; no
alignment is required of ``a``.

On a bus of ``beat_bytes``-byte beats such a transfer touches the beats from ``a // beat_bytes`` to
``(a + length - 1) // beat_bytes``; `transfer_beats` lists them with the byte range ``[lo, hi)`` each holds of
the transfer - what the read DMA hands its gearbox (`hwgen.hw.gearbox.BeatsToWords`), and the golden model of
it.
"""

__all__ = ["word_bytes", "words_to_bytes", "bytes_to_words", "transfer_beats", "split_bursts"]

from ..hw.axi import BOUNDARY_BYTES, MAX_BURST_BEATS


def word_bytes(word_bits):
    if not isinstance(word_bits, int) or word_bits < 1:
        raise ValueError(f"word_bits must be a positive integer, not {word_bits!r}")
    return -(-word_bits // 8)


def words_to_bytes(words, word_bits):
    """Words (non-negative ints below ``2**word_bits``) -> their DRAM bytes."""
    size = word_bytes(word_bits)
    out = bytearray()
    for index, word in enumerate(words):
        word = int(word)
        if not 0 <= word < (1 << word_bits):
            raise ValueError(f"word {index} = {word:#x} does not fit {word_bits} bits")
        out += word.to_bytes(size, "little")
    return bytes(out)


def bytes_to_words(raw, word_bits):
    """DRAM bytes (a whole number of words) -> the words, each masked to ``word_bits``."""
    size = word_bytes(word_bits)
    if len(raw) % size:
        raise ValueError(f"{len(raw)} bytes are not a whole number of {size}-byte words")
    mask = (1 << word_bits) - 1
    return [int.from_bytes(raw[i:i + size], "little") & mask for i in range(0, len(raw), size)]


def transfer_beats(address, length, beat_bytes):
    """``[(beat_address, lo, hi), ...]``: the beats of the transfer ``[address, address + length)`` and the byte
    range of each that belongs to it."""
    if length < 1:
        raise ValueError(f"a transfer has at least one byte, not {length}")
    first, end = address // beat_bytes, (address + length - 1) // beat_bytes
    beats = []
    for beat in range(first, end + 1):
        base = beat * beat_bytes
        lo = max(address - base, 0)
        hi = min(address + length - base, beat_bytes)
        beats.append((base, lo, hi))
    return beats


def split_bursts(address, length, beat_bytes, max_beats=MAX_BURST_BEATS):
    """``[(burst_address, beats, bytes), ...]``: the INCR bursts a DMA issues for ``[address, address +
    length)`` - full-width beats from the beat holding the first byte, at most ``max_beats`` each, never across a
    4 KiB boundary; ``bytes``: how many bytes of the transfer each carries."""
    bursts = []
    at, left = address, length
    while left:
        base = at - at % beat_bytes
        offset = at - base
        to_boundary = (BOUNDARY_BYTES - base % BOUNDARY_BYTES) // beat_bytes
        needed = -(-(offset + left) // beat_bytes)
        beats = min(max_beats, to_boundary, needed)
        carried = min(left, beats * beat_bytes - offset)
        bursts.append((base, beats, carried))
        at += carried
        left -= carried
    return bursts
