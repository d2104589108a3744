"""Registered copies of one signal, so that no single flip-flop drives a net of hundreds of loads.

A copy is a flip-flop named ``<name>_copy_<k>``; the FPGA flow marks flip-flops named ``*_copy_*`` ``keep``
(`fpga.flow.KEEP_COPIES`), otherwise synthesis merges the identical flip-flops back into one.
"""

from amaranth.hdl import Signal

__all__ = ["registered_copies"]


def registered_copies(m, value, *, name, count, enable=None):
    """``count`` flip-flops that each take ``value`` (in cycles with ``enable``, if given); returns them."""
    copies = [Signal.like(value, name=f"{name}_copy_{k}") for k in range(count)]
    assignments = [copy.eq(value) for copy in copies]
    if enable is None:
        m.d.sync += assignments
    else:
        with m.If(enable):
            m.d.sync += assignments
    return copies
