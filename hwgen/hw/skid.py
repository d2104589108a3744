"""A register slice for any valid/ready channel: every output a flip-flop, full throughput.

Between two blocks whose handshake would otherwise be one long combinational path (a bus port's ``ready``
decided deep inside a DMA, say), a `RegisterSlice` cuts it: ``o.valid``, the payload and ``i.ready`` all come
straight from registers. Two entries (the output register and a skid register that catches the word offered in
the cycle ``o.ready`` fell), so it moves a word every cycle when both sides are willing; latency one cycle.

The channel is any `wiring.Signature` with ``valid`` and ``ready`` members whose other members (the payload)
flow the way ``valid`` does: a `lib.stream.Signature`, or one channel of `hwgen.hw.axi`'s buses (give the
signature as its producer sees it: ``wiring.flipped`` for ``r`` and ``b`` of a master's signature).
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Flow

__all__ = ["RegisterSlice", "payload_members"]


def payload_members(signature):
    """The names of a channel's payload members (everything but ``valid`` and ``ready``), checked."""
    members = signature.members
    if "valid" not in members or "ready" not in members:
        raise TypeError(f"a channel signature needs 'valid' and 'ready' members, not {signature!r}")
    flow = members["valid"].flow
    if members["ready"].flow == flow:
        raise TypeError("a channel's 'ready' must flow against its 'valid'")
    names = []
    for name, member in members.items():
        if name in ("valid", "ready"):
            continue
        if not member.is_port or member.flow != flow:
            raise TypeError(f"channel member {name!r} must be a port flowing with 'valid'")
        names.append(name)
    return names


class RegisterSlice(wiring.Component):
    """``i`` (the producer's side) -> ``o`` (the consumer's side), one register stage. ``signature``: the
    channel as its producer sees it (``valid`` is ``Out``)."""

    def __init__(self, signature):
        if not isinstance(signature, (wiring.Signature, wiring.FlippedSignature)):
            raise TypeError(f"RegisterSlice needs a channel signature, not {signature!r}")
        self._names = payload_members(signature)
        if signature.members["valid"].flow != Flow.Out:
            raise TypeError("give the channel's signature as its producer sees it (valid is Out); flip it with "
                            "wiring.flipped()")
        super().__init__({"i": In(signature), "o": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        names = self._names
        i_payload = Cat(*(getattr(self.i, name) for name in names))
        o_payload = Signal(len(i_payload))
        skid, skid_valid, o_valid = Signal(len(i_payload)), Signal(), Signal()
        m.d.comb += [self.i.ready.eq(~skid_valid), self.o.valid.eq(o_valid)]
        at = 0
        for name in names:
            port = getattr(self.o, name)
            m.d.comb += port.eq(o_payload[at:at + len(port)])
            at += len(port)
        with m.If(self.o.ready | ~o_valid):
            # The output register is free (or being taken): refill it, from the skid first.
            with m.If(skid_valid):
                m.d.sync += [o_payload.eq(skid), o_valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [o_payload.eq(i_payload), o_valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            # The consumer stalls: catch the word offered in this cycle (i.ready was still high).
            m.d.sync += [skid.eq(i_payload), skid_valid.eq(1)]
        return m
