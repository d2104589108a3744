"""AXI4 and AXI4-Lite as Amaranth wiring signatures: one valid/ready sub-signature per channel.

A master port is ``Out(axi4_signature(...))``, a slave port ``In(...)`` (or ``wiring.flipped``). Every channel
is a member of its own (``aw``, ``w``, ``b``, ``ar``, ``r``), so a top-level port flattens to Verilog names like
``m_axi__ar__valid`` and ``m_axi__r__data``; `hwgen.hw.system.SystemPorts` renames them to the flat names
cocotbext-axi's buses and vendor tools expect (``m_axi_arvalid``).

The read half (``ar``, ``r``: `axi4_read_signature`) and the write half (``aw``, ``w``, ``b``:
`axi4_write_signature`) are also signatures of their own, for blocks that only read or only write; the full
`axi4_signature` has the members of both, so a read DMA's port connects member by member to the full bus.

What hwgen's masters drive (documented so a slave knows what to expect):

- only ``INCR`` bursts of full-width beats (``size = log2(data_width / 8)``), at most 256 beats, never crossing
  a 4 KiB boundary; addresses of a burst's first beat are aligned to the data width (a transfer that starts or
  ends inside a beat reads the whole beat and drops the bytes it does not need, and writes it with ``strb``
  clear on them);
- the side signals AXI4 makes optional (``lock``, ``cache``, ``prot``, ``qos``, ``region``, ``user``) are not
  part of these signatures: a slave that needs them ties them to 0.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "BURST_INCR", "RESP_OKAY", "RESP_EXOKAY", "RESP_SLVERR", "RESP_DECERR", "MAX_BURST_BEATS", "BOUNDARY_BYTES",
    "check_axi_params", "axi4_address_signature", "axi4_write_data_signature", "axi4_write_response_signature",
    "axi4_read_data_signature", "axi4_read_signature", "axi4_write_signature", "axi4_signature",
    "axi4_lite_signature", "beat_size",
]

BURST_INCR = 0b01
RESP_OKAY, RESP_EXOKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b01, 0b10, 0b11
MAX_BURST_BEATS = 256          # AXI4 INCR bursts: awlen/arlen = beats - 1, 8 bits
BOUNDARY_BYTES = 4096          # a burst never crosses a 4 KiB boundary


def check_axi_params(*, data_width, addr_width, id_width=1, lite=False):
    """Raise `TypeError`/`ValueError` unless the widths make a legal bus for hwgen's blocks."""
    for name, value in (("data_width", data_width), ("addr_width", addr_width), ("id_width", id_width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"AXI {name} must be an integer, not {value!r}")
    allowed = (32, 64) if lite else (32, 64, 128, 256)
    if data_width not in allowed:
        raise ValueError(f"AXI{'4-Lite' if lite else '4'} data_width must be one of {allowed} bits, not "
                         f"{data_width}")
    if not 12 <= addr_width <= 64:
        raise ValueError(f"AXI addr_width must be 12 to 64 bits (a 4 KiB page at least), not {addr_width}")
    if not 1 <= id_width <= 16:
        raise ValueError(f"AXI id_width must be 1 to 16 bits, not {id_width}")


def beat_size(data_width):
    """The ``size`` field of a full-width beat: log2 of its bytes."""
    return (data_width // 8).bit_length() - 1


def axi4_address_signature(*, addr_width, id_width):
    """``aw`` or ``ar``, as the master sees it."""
    return wiring.Signature({
        "valid": Out(1), "ready": In(1),
        "id": Out(id_width), "addr": Out(addr_width), "len": Out(8), "size": Out(3), "burst": Out(2),
    })


def axi4_write_data_signature(*, data_width):
    return wiring.Signature({
        "valid": Out(1), "ready": In(1),
        "data": Out(data_width), "strb": Out(data_width // 8), "last": Out(1),
    })


def axi4_write_response_signature(*, id_width):
    """``b``, as the master sees it (flows from the slave)."""
    return wiring.Signature({"valid": In(1), "ready": Out(1), "id": In(id_width), "resp": In(2)})


def axi4_read_data_signature(*, data_width, id_width):
    """``r``, as the master sees it (flows from the slave)."""
    return wiring.Signature({
        "valid": In(1), "ready": Out(1),
        "id": In(id_width), "data": In(data_width), "resp": In(2), "last": In(1),
    })


def axi4_read_signature(*, data_width, addr_width, id_width=1):
    """The read half of an AXI4 master port: ``ar`` and ``r``."""
    check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
    return wiring.Signature({
        "ar": Out(axi4_address_signature(addr_width=addr_width, id_width=id_width)),
        "r": Out(axi4_read_data_signature(data_width=data_width, id_width=id_width)),
    })


def axi4_write_signature(*, data_width, addr_width, id_width=1):
    """The write half of an AXI4 master port: ``aw``, ``w`` and ``b``."""
    check_axi_params(data_width=data_width, addr_width=addr_width, id_width=id_width)
    return wiring.Signature({
        "aw": Out(axi4_address_signature(addr_width=addr_width, id_width=id_width)),
        "w": Out(axi4_write_data_signature(data_width=data_width)),
        "b": Out(axi4_write_response_signature(id_width=id_width)),
    })


def axi4_signature(*, data_width, addr_width, id_width=1):
    """An AXI4 master port (``Out(...)``; ``In(...)`` for a slave): the members of both halves."""
    read = axi4_read_signature(data_width=data_width, addr_width=addr_width, id_width=id_width)
    write = axi4_write_signature(data_width=data_width, addr_width=addr_width, id_width=id_width)
    return wiring.Signature({**dict(write.members.items()), **dict(read.members.items())})


def axi4_lite_signature(*, addr_width, data_width=32):
    """An AXI4-Lite master port (``In(...)`` for the slave side, e.g. a register file). No ids, no bursts; the
    ``prot`` signals are left out (tie them off)."""
    check_axi_params(data_width=data_width, addr_width=addr_width, lite=True)
    return wiring.Signature({
        "aw": Out(wiring.Signature({"valid": Out(1), "ready": In(1), "addr": Out(addr_width)})),
        "w": Out(wiring.Signature({"valid": Out(1), "ready": In(1), "data": Out(data_width),
                                   "strb": Out(data_width // 8)})),
        "b": Out(wiring.Signature({"valid": In(1), "ready": Out(1), "resp": In(2)})),
        "ar": Out(wiring.Signature({"valid": Out(1), "ready": In(1), "addr": Out(addr_width)})),
        "r": Out(wiring.Signature({"valid": In(1), "ready": Out(1), "data": In(data_width), "resp": In(2)})),
    })

