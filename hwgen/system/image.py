"""The DRAM image of a compiled network: every tensor, the program of DMA descriptors, and the bytes the run
must leave behind - the host side of the system top (`hwgen.hw.system.SystemTop`).

A `hwgen.compiler.program.Program` already says, per layer, the words of every stream the accelerator takes
(``cfg``, ``weights`` / ``mv_weights``, ``params``, ``acts``) and where the output goes (on chip to the next
layer, or ``out``). `build_image` lays those words out in DRAM (`hwgen.system.layout`: words packed at
``ceil(bits / 8)`` bytes, little endian) and writes the *program*: one 16-byte `Descriptor` per transfer, in
the order the accelerator consumes them, ended by an ``END`` descriptor. The command processor fetches it and
hands each descriptor to its channel.

Where a layer's output goes through DRAM (the compiler could not keep it on chip), the next layer reads its
input **straight from the producer's output region**: the output beats are written narrowed to the activation
type (one beat = ``cols`` channels of one pixel = one activation word when ``rows == cols``), and the
consumer's activation words are *gathered* from them - a list of contiguous runs of beats, one ``acts``
descriptor each (`gather_runs`, found by tracing tagged tensors through both layers' packing). The runs wait
(``wait``) until the producer's output descriptors have all been acknowledged by the memory. Nothing is
re-laid-out by the host between layers.

Descriptor (16 bytes, four little-endian 32-bit words)
    ``w0``: bits 0-3 channel (`CHANNELS`; 15 = ``END``), bit 4 ``narrow`` (``out`` only), bits 8-15 the magic
    byte `MAGIC`, bits 16-31 ``wait``: the number of ``out`` descriptors that must be complete (every write
    response in) before this one is dispatched. ``w1``: byte address; ``w2``: byte count (a whole number of the
    channel's words); ``w3``: MACs the descriptor's commands perform (``cfg`` descriptors; added to the MAC
    counter when dispatched). A wrong magic byte or an unknown channel is a malformed command: the run stops
    with an error status.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import MappingError
from .layout import bytes_to_words, word_bytes, words_to_bytes

__all__ = ["CHANNELS", "END", "MAGIC", "DESC_BYTES", "Descriptor", "SystemImage", "build_image", "gather_runs",
           "stream_word_bits", "read_channels", "check_outputs",
           "interpret"]

CHANNELS = {"cfg": 0, "weights": 1, "mv_weights": 2, "params": 3, "acts": 4, "out": 5}
END = 15
MAGIC = 0xD5
DESC_BYTES = 16
WAIT_MAX = (1 << 16) - 1


def read_channels(spec):
    """The accelerator's input streams, in channel order (``mv_weights`` only with an MV engine)."""
    return [name for name in ("cfg", "weights", "mv_weights", "params", "acts")
            if name != "mv_weights" or spec.mv_engine]


def stream_word_bits(spec):
    from ..hw.config import config_layout
    from ..postops import params_port_bits
    bits = {"cfg": config_layout(spec).size, "weights": spec.weight_word_bits, "params": params_port_bits(spec),
            "acts": spec.act_word_bits, "out": spec.acc_word_bits}
    if spec.mv_engine:
        bits["mv_weights"] = spec.mv_weight_word_bits
    return bits


@dataclass(frozen=True)
class Descriptor:
    channel: str            # a key of CHANNELS, or "end"
    addr: int = 0
    bytes: int = 0
    narrow: bool = False
    wait: int = 0
    macs: int = 0

    def encode(self, *, magic=MAGIC):
        code = END if self.channel == "end" else CHANNELS[self.channel]
        if not 0 <= self.wait <= WAIT_MAX:
            raise MappingError(f"a descriptor waits for at most {WAIT_MAX} output transfers, not {self.wait}")
        w0 = code | (int(self.narrow) << 4) | (magic << 8) | (self.wait << 16)
        words = [w0, self.addr, self.bytes, min(self.macs, 0xFFFFFFFF)]
        return b"".join(int(w).to_bytes(4, "little") for w in words)


@dataclass
class SystemImage:
    """Everything the host writes into DRAM, and what the run must leave there."""
    segments: list                   # (addr, bytes) to write before the run
    program_addr: int
    descriptors: list                # Descriptor, the END one included
    outputs: list                    # (addr, expected bytes, "image/layer") the run must write
    size: int                        # bytes of DRAM the image spans (from 0)
    macs: int
    notes: list = field(default_factory=list)

    @property
    def count(self):
        return len(self.descriptors)

    def bytes_read(self):
        """Payload bytes the descriptors read (the program itself included)."""
        return self.count * DESC_BYTES + sum(d.bytes for d in self.descriptors if d.channel not in ("out", "end"))

    def bytes_written(self):
        return sum(d.bytes for d in self.descriptors if d.channel == "out")


def _tags_out(plan, base=1 << 20):
    """Every output beat of `plan` as a tuple of lane tags: output element ``(m, e, f)`` -> ``base + index``,
    padding lanes -> None."""
    M, E, F = plan.out_shape
    tagged = base + np.arange(M * E * F, dtype=np.int64).reshape(M, E, F)
    beats = plan.pack_outputs(tagged)
    bits, lanes = plan.spec.acc_type.bits, plan.spec.cols
    mask = (1 << bits) - 1
    rows = []
    for beat in beats:
        lanes_v = [(beat >> (bits * j)) & mask for j in range(lanes)]
        rows.append(tuple(v - base if v >= base and v < base + M * E * F else None for v in lanes_v))
    return rows


def _tags_acts(program_layer, plan, shape):
    """Every activation word `plan` loads for an input of `shape`, as a tuple of lane tags (element index of the
    input in ``[C, H, W]`` order, None for padding), by packing the index digit by digit (base 127, 1..127)."""
    count = int(np.prod(shape))
    index = np.arange(count, dtype=np.int64)
    digits, n = [], count
    while True:
        digits.append(None)
        n //= 127
        if n == 0:
            break
    bits, lanes = plan.spec.act_type.bits, plan.spec.rows
    mask = (1 << bits) - 1
    decoded = None
    for d in range(len(digits)):
        x = ((index // 127 ** d) % 127 + 1).reshape(shape)
        words = plan.act_stream(program_layer.hardware_input(x))
        lanes_v = [[(w >> (bits * j)) & mask for j in range(lanes)] for w in words]
        if decoded is None:
            decoded = [[0 if v else None for v in ws] for ws in lanes_v]
        for wi, ws in enumerate(lanes_v):
            for j, v in enumerate(ws):
                if decoded[wi][j] is not None:
                    if not 1 <= v <= 127:
                        raise MappingError("an activation lane mixes padding and data; cannot gather it")
                    decoded[wi][j] += (v - 1) * 127 ** d
    return [tuple(ws) for ws in decoded]


def gather_runs(producer, consumer):
    """The consumer's activation words as runs ``(first beat, beats)`` of the producer's output beats, or
    `MappingError` when a word is not one output beat (different lane counts, host pooling, host-unrolled
    windows)."""
    spec = producer.plan.spec
    if spec.rows != spec.cols:
        raise MappingError(f"{consumer.name}: an output beat is an activation word only on a square array "
                           f"({spec.rows}x{spec.cols})")
    if producer.layer.host_pool:
        raise MappingError(f"{producer.name}: the host pools its output; the system has no pooling between layers")
    out_type = producer.layer.postops.output_type(spec.acc_type)
    if out_type != spec.act_type:
        raise MappingError(f"{producer.name}: its output is {out_type}, not the activation type {spec.act_type}")
    beats = {}
    for index, tags in enumerate(_tags_out(producer.plan)):
        beats.setdefault(tags, index)
    words = _tags_acts(consumer, consumer.plan, producer.plan.out_shape)
    runs = []
    for tags in words:
        index = beats.get(tags)
        if index is None:
            raise MappingError(f"{consumer.name}: an activation word is not one output beat of {producer.name}")
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1][1] += 1
        else:
            runs.append([index, 1])
    return [tuple(r) for r in runs]


def build_image(program, inputs, *, base=0x1000, align=64, fence=False, magic=MAGIC):
    """Lay out `program` (a `hwgen.compiler.program.Program`) for the batch `inputs` (each ``[C, H, W]``).

    ``fence``: every layer's descriptors wait until the previous layer's output is in DRAM (the no-overlap
    baseline: nothing of layer N+1 is fetched while layer N computes). Otherwise the only waits are the ones a
    layer reading another's output needs, and the next layer's weights, parameters and commands stream in
    while the current one computes (cross-layer prefetch)."""
    spec = program.spec
    bits = stream_word_bits(spec)
    inputs = list(inputs)
    if len(inputs) != program.batch:
        raise MappingError(f"the program runs a batch of {program.batch}, got {len(inputs)} inputs")
    segments, at = [], base

    def place(raw):
        nonlocal at
        addr = at
        if raw:
            segments.append((addr, bytes(raw)))
        at += -(-max(len(raw), 1) // align) * align
        return addr

    def reserve(size):
        nonlocal at
        addr = at
        at += -(-max(size, 1) // align) * align
        return addr

    narrow_bytes = word_bytes(spec.cols * spec.act_type.bits)
    acc_bytes = word_bytes(spec.acc_word_bits)
    descriptors, outputs, out_count, notes = [], [], 0, []
    gathers = {}
    # Weights, commands and parameters do not depend on the input: one copy, read again for every input.
    static = {}
    for image, (x, plans) in enumerate(zip(inputs, program._image_plans())):
        goldens = program.reference(x)
        previous, last_out_of = x, {}
        layer_fence = 0
        for index, (pl, plan, golden) in enumerate(zip(program.layers, plans, goldens)):
            wait = layer_fence if fence else 0
            key = (index, tuple(c.act_bank for c in plan.commands), tuple(c.param_bank for c in plan.commands))
            if key not in static:
                entry = {"cfg": place(words_to_bytes(plan.config_words(), bits["cfg"]))}
                entry["cfg_bytes"] = len(plan.config_words()) * word_bytes(bits["cfg"])
                stream = "mv_weights" if plan.engine == "matrix_vector" and spec.mv_engine else "weights"
                w = plan.weight_stream(pl.weight)
                entry["wname"], entry["w"], entry["w_bytes"] = stream, place(words_to_bytes(w, bits[stream])), \
                    len(w) * word_bytes(bits[stream])
                p = plan.params_stream(pl.layer.params) if pl.layer.postops.needs_params else []
                entry["p"], entry["p_bytes"] = place(words_to_bytes(p, bits["params"])), \
                    len(p) * word_bytes(bits["params"])
                static[key] = entry
            entry = static[key]
            descriptors.append(Descriptor("cfg", entry["cfg"], entry["cfg_bytes"], wait=wait,
                                          macs=pl.layer.problem.macs))
            if entry["w_bytes"]:
                descriptors.append(Descriptor(entry["wname"], entry["w"], entry["w_bytes"], wait=wait))
            if entry["p_bytes"]:
                descriptors.append(Descriptor("params", entry["p"], entry["p_bytes"], wait=wait))
            if pl.source == "stream":
                acts = plan.act_stream(pl.hardware_input(previous), pad_value=pl.layer.pad_value)
                addr = place(words_to_bytes(acts, bits["acts"]))
                descriptors.append(Descriptor("acts", addr, len(acts) * word_bytes(bits["acts"]), wait=wait))
            elif pl.source == "host":
                producer = program.layers[index - 1]
                if index not in gathers:
                    gathers[index] = gather_runs(producer, pl)
                    notes.append(f"{pl.name}: gathers its input from {producer.name}'s output in DRAM in "
                                 f"{len(gathers[index])} runs")
                out_addr, produced = last_out_of[index - 1]
                for first, count in gathers[index]:
                    descriptors.append(Descriptor("acts", out_addr + first * narrow_bytes, count * narrow_bytes,
                                                  wait=max(wait, produced)))
            if pl.dest == "out":
                beats = plan.pack_outputs(golden)
                narrow = pl.layer.postops.output_type(spec.acc_type) == spec.act_type
                if narrow:
                    lane_mask = (1 << spec.act_type.bits) - 1
                    words = []
                    for beat in beats:
                        word = 0
                        for j in range(spec.cols):
                            lane = (beat >> (spec.acc_type.bits * j)) & lane_mask
                            word |= lane << (spec.act_type.bits * j)
                        words.append(word)
                    expected = words_to_bytes(words, spec.cols * spec.act_type.bits)
                else:
                    expected = words_to_bytes(beats, spec.acc_word_bits)
                addr = reserve(len(expected))
                descriptors.append(Descriptor("out", addr, len(expected), narrow=narrow, wait=wait))
                out_count += 1
                last_out_of[index] = (addr, out_count)
                layer_fence = out_count
                outputs.append((addr, expected, f"{image}/{pl.name}"))
            previous = pl.layer.host_pooled(golden)
    descriptors.append(Descriptor("end"))
    program_addr = place(b"".join(d.encode(magic=magic) for d in descriptors))
    macs = program.batch * sum(pl.layer.problem.macs for pl in program.layers)
    return SystemImage(segments=segments, program_addr=program_addr, descriptors=descriptors, outputs=outputs,
                       size=at, macs=macs, notes=notes)


def check_outputs(image, read):
    """Compare every output region with its expected bytes; ``read(addr, length) -> bytes``. Returns a list of
    mismatch descriptions (empty: exact)."""
    problems = []
    for addr, expected, name in image.outputs:
        got = bytes(read(addr, len(expected)))
        if got != expected:
            first = next(i for i in range(len(expected)) if got[i] != expected[i])
            problems.append(f"{name}: {sum(a != b for a, b in zip(got, expected))} of {len(expected)} bytes differ, "
                            f"first at +{first} ({got[first]:#04x}, expected {expected[first]:#04x})")
    return problems


def interpret(image, spec, memory):
    """The golden model of the command processor: run the program of `image` against `memory` (a bytes-like
    DRAM holding the image, and the outputs a correct run writes) and return the words every read channel
    delivers to the accelerator, ``{channel: [word, ...]}``, and the ``out`` transfers in order
    (``[(addr, bytes, narrow), ...]``). Descriptors are decoded from `memory` as the hardware decodes them; a
    malformed one raises `ValueError` (the hardware's error status)."""
    bits = stream_word_bits(spec)
    words = {name: [] for name in read_channels(spec)}
    writes = []
    names = {code: name for name, code in CHANNELS.items()}
    at = image.program_addr
    for index in range(image.count):
        raw = bytes(memory[at + DESC_BYTES * index:at + DESC_BYTES * (index + 1)])
        w0, addr, length, _ = (int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4))
        code, narrow, magic = w0 & 15, bool(w0 >> 4 & 1), w0 >> 8 & 255
        if magic != MAGIC or (code not in names and code != END) or (code in names and names[code] not in
                                                                      (*words, "out")):
            raise ValueError(f"descriptor {index} is malformed (w0 = {w0:#010x})")
        if code == END:
            break
        name = names[code]
        if name == "out":
            writes.append((addr, length, narrow))
        elif length:
            words[name] += bytes_to_words(bytes(memory[addr:addr + length]), bits[name])
    return words, writes
