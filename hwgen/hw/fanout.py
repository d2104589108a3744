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


def flag_copies(name, count, *, init=0):
    """``count`` flip-flops meant to be assigned together (see `assign_all`): one flag, several drivers."""
    return [Signal(init=init, name=f"{name}_copy_{k}") for k in range(count)]


def assign_all(copies, value):
    """The statements that give every copy of a flag the same next value."""
    return [copy.eq(value) for copy in copies]


def follow_unless(m, target, source, holds):
    """``target`` takes ``source`` in every cycle its hold flag is low: the bits of part ``k`` follow the
    flag copy ``holds[k]``, so each copy enables ``len(target) / len(holds)`` flip-flops."""
    target, source = target.as_value(), source.as_value()
    step = -(-len(target) // len(holds))
    for k, hold in enumerate(holds):
        part = slice(k * step, min((k + 1) * step, len(target)))
        with m.If(~hold):
            m.d.sync += target[part].eq(source[part])
