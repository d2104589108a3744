"""The pin-light top: a few pins in and out, whatever the width of the accelerator's stream ports.

An int8 8x8 accelerator has ~400 bits of stream payload (64 act + 64 weight + 256 out + config), more than the
205 user pins of a CABGA381 and ten times the 39 of an SG48. :class:`PinLightTop` puts the component behind a
narrow serial interface, so the same top serves out-of-context synthesis (``hwgen synth --device``) and the board
bitstreams (``hwgen synth --board``):

Load (host -> accelerator), all sampled on the rising clock edge:

* ``din`` (``io_bits`` wide) with ``din_valid``: shifts one chunk into the input shift register, which is as
  wide as the widest input payload (``in_chunks`` chunks). Send every beat as ``in_chunks`` chunks, least
  significant first (zero-padded above the stream's own width): the first chunk then sits at bit 0.
* ``din_sel`` selects the input stream (in the component's signature order) and ``din_push`` offers the
  shift register as one beat of that stream; ``din_busy`` is high until the component has taken it. Do not
  shift while ``din_busy``.

Read-out (accelerator -> host), registered:

* when the read-out register is empty and an output stream (``dout_sel`` picks among several) has a beat, the
  beat is captured (the stream sees ``ready`` for that cycle);
* ``dout`` (``io_bits``, straight from a flip-flop) shows the next chunk, least-significant first, while
  ``dout_valid`` is high; ``dout_next`` moves to the following chunk.

Every input of the component is thus driven from flip-flops the host controls, and every output reaches a pin,
so synthesis can neither constant-fold nor prune the array; the wrapper costs about one flip-flop per bit of the
widest input and output payload.

Reset on ECP5: the reset pin is registered and driven onto a global line (a ``DCCA``), and the wrapper and the
component run in a domain ``core`` of the same clock with that reset. The reset reaches thousands of flip-flops'
``LSR`` pins; on the general routing it was the net nextpnr's router1 kept ripping up on the 8x8's seeds it could
not finish (fpga/README.md). Everything is held in reset one cycle longer than the pin says; no other cycle moves.
Elsewhere (simulation, iCE40, whose nextpnr promotes a reset to a global buffer itself) the domain is ``sync``.
"""

from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Instance, Module, ResetSignal, Shape, \
    Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwgen.hw import target

__all__ = ["PinLightTop", "stream_ports"]


def _ceil_div(a, b):
    return -(-a // b)


def stream_ports(component):
    """``(inputs, outputs, status)``: ``(name, width)`` lists of the component's input and output streams
    (payload width) and of its plain output ports (status signals such as ``busy``)."""
    inputs, outputs, status = [], [], []
    for name, member in component.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            width = Shape.cast(member.signature.members["payload"].shape).width
            (inputs if member.flow == In else outputs).append((name, width))
        elif member.is_port and member.flow == Out:
            status.append((name, Shape.cast(member.shape).width))
        else:
            raise TypeError(f"PinLightTop wraps stream ports and plain outputs only; {name!r} is a plain input "
                            f"or a non-stream interface")
    if not inputs or not outputs:
        raise TypeError("PinLightTop needs at least one input and one output stream")
    return inputs, outputs, status


class PinLightTop(wiring.Component):
    """Wraps ``component`` (a :class:`wiring.Component` whose ports are :mod:`amaranth.lib.stream` interfaces
    in the ``sync`` domain) behind ``io_bits``-wide serial load and read-out ports; see the module docstring."""

    def __init__(self, component, *, io_bits=8):
        if io_bits < 1:
            raise ValueError("io_bits must be at least 1")
        self.component = component
        self.io_bits = io_bits
        self.inputs, self.outputs, self.status_ports = stream_ports(component)
        # Plain outputs (e.g. ``busy``) reach pins through a register; wide ones are XOR-folded to io_bits.
        self.status_bits = min(sum(w for _, w in self.status_ports), io_bits)
        self.in_width = max(w for _, w in self.inputs)
        self.out_width = max(w for _, w in self.outputs)
        self.in_chunks = _ceil_div(self.in_width, io_bits)
        self.out_chunks = _ceil_div(self.out_width, io_bits)
        super().__init__({
            "din": In(io_bits), "din_valid": In(1),
            "din_sel": In(range(max(2, len(self.inputs)))), "din_push": In(1), "din_busy": Out(1),
            "dout": Out(io_bits), "dout_valid": Out(1), "dout_next": In(1),
            "dout_sel": In(range(max(2, len(self.outputs)))),
            **({"status": Out(self.status_bits)} if self.status_bits else {}),
        })

    @property
    def pins(self):
        """Number of top-level pins besides clock and reset."""
        return sum(len(getattr(self, name)) for name in self.signature.members)

    def elaborate(self, platform):
        m = Module()
        core = self.component
        dom = "sync"
        if target.family(platform) == "ecp5":
            dom = "core"
            m.domains.core = ClockDomain("core", local=True)
            reset_q, reset_global = Signal(init=1, reset_less=True), Signal()
            m.d.sync += reset_q.eq(ResetSignal("sync", allow_reset_less=True))
            m.submodules.reset_buffer = Instance("DCCA", i_CLKI=reset_q, i_CE=Const(1), o_CLKO=reset_global)
            m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")), ResetSignal("core").eq(reset_global)]
            m.submodules.core = DomainRenamer({"sync": "core"})(core)
        else:
            m.submodules.core = core
        n = self.io_bits

        # Load path: one shift register shared by all input streams. `din_busy` (any beat pending) is a
        # register, and so are its copies that gate the shift, one per 64 bits of the shift register (a clock
        # enable for hundreds of flip-flops is otherwise one huge net).
        shreg = Signal(self.in_chunks * n)
        pending, next_pending = Signal(len(self.inputs)), Signal(len(self.inputs))
        pieces = _ceil_div(self.in_chunks, max(1, 64 // n))
        busy_copies = [Signal(name=f"din_busy_copy_{k}") for k in range(pieces)]
        m.d[dom] += [pending.eq(next_pending), self.din_busy.eq(next_pending.any()),
                     *(copy.eq(next_pending.any()) for copy in busy_copies)]
        chunk_bits = _ceil_div(self.in_chunks, pieces) * n
        shifted = Cat(shreg[n:], self.din)
        for k, busy in enumerate(busy_copies):
            part = slice(k * chunk_bits, min((k + 1) * chunk_bits, len(shreg)))
            with m.If(self.din_valid & ~busy):
                m.d[dom] += shreg[part].eq(shifted[part])
        m.d.comb += next_pending.eq(pending)
        for index, (name, width) in enumerate(self.inputs):
            port = getattr(core, name)
            m.d.comb += [port.valid.eq(pending[index]), port.payload.eq(shreg[:width])]
            with m.If(port.valid & port.ready):
                m.d.comb += next_pending[index].eq(0)
            with m.If(self.din_push & ~self.din_busy & (self.din_sel == index)):
                m.d.comb += next_pending[index].eq(1)

        # Read-out path: capture a beat into a register, shift it out chunk by chunk.
        # `empty` (left == 0) is a register, the streams' ready; its copies gate the read-out register in parts
        # of 64 bits, each copy one clock-enable net.
        outreg = Signal(self.out_chunks * n)
        left = Signal(range(self.out_chunks + 1))
        out_pieces = _ceil_div(len(outreg), 64)
        empties = [Signal(init=1, name=f"dout_empty_copy_{k}") for k in range(out_pieces)]
        empty = empties[0]
        m.d.comb += [self.dout.eq(outreg[:n]), self.dout_valid.eq(~empty)]
        piece_bits = _ceil_div(len(outreg), out_pieces)
        pieces = [slice(k * piece_bits, min((k + 1) * piece_bits, len(outreg))) for k in range(out_pieces)]
        shifted = outreg[n:]
        for index, (name, width) in enumerate(self.outputs):
            port = getattr(core, name)
            take = Signal(name=f"take_{name}")
            m.d.comb += [take.eq(empty & (self.dout_sel == index)), port.ready.eq(take)]
            payload = Value.cast(port.payload)
            with m.If(take & port.valid):
                m.d[dom] += [left.eq(_ceil_div(width, n)), *(e.eq(0) for e in empties)]
            for piece, copy in zip(pieces, empties):
                with m.If(copy & (self.dout_sel == index) & port.valid):
                    m.d[dom] += outreg[piece].eq(payload[piece] if piece.start < len(payload) else 0)
        with m.If(self.dout_valid & self.dout_next):
            m.d[dom] += [left.eq(left - 1), *(e.eq(left == 1) for e in empties)]
        for piece, copy in zip(pieces, empties):
            with m.If(~copy & self.dout_next):
                m.d[dom] += outreg[piece].eq(shifted[piece] if piece.start < len(shifted) else 0)

        if self.status_bits:
            bits = Cat(*[getattr(core, name) for name, _ in self.status_ports])
            folded = bits[:self.status_bits]
            for start in range(self.status_bits, len(bits), self.status_bits):
                folded = folded ^ bits[start:start + self.status_bits]
            m.d[dom] += self.status.eq(folded)
        return m
