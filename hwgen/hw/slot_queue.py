"""The slot queue between the fold sequencer and the weight-stationary pipeline's issue stage.

The sequencer pushes one slot per cycle while the queue has ``room``; the issue stage pops the head with the
pipeline enable. So the sequencer's logic runs on its own registered enable and never sees the pipeline's,
and the enable itself is an AND of flip-flops: ``advance`` (a head whose read may happen, or an empty queue,
which issues a bubble), the head's ``load_en`` (it pops a weight word), the weight FIFO's and the output
FIFO's registered flags.

Read-after-write interlock: a slot may issue only once the activation word it reads has been written (its
command may still be loading, see `AcceleratorTop`). Every entry carries an ``ok`` flag, set in the cycle after
its word is written (or at once when it reads nothing) and never cleared: the loader's write pointer only
grows while the bank is read. A pushed entry starts with ``ok`` clear, so it waits at least one cycle; in that
cycle it is checked against the write pointer of the cycle before its issue, as a decision one cycle ahead.

Timing: an entry pushed in cycle ``t`` can issue (the head with ``advance``) from cycle ``t + 2``. ``room`` is
registered (from the count after this cycle's push and pop), so the queue holds two entries of margin.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SlotQueue", "slot_layout"]


def slot_layout(spec):
    """One issue slot of the weight-stationary sequencer, as the issue stage needs it."""
    return data.StructLayout({
        "reads": 1,                                   # a real, unpadded pixel: reads act_addr
        "act_addr": range(max(spec.act_depth, 2)),    # in the command's bank (for the interlock)
        "read_addr": range(max(spec.act_depth, 2)),   # in the activation buffer
        "slot_valid": 1, "padded": 1, "acc_addr": range(max(spec.acc_depth, 2)),
        "first_k": 1, "last_k": 1, "bank": 1,
        "load_en": 1, "load_row": range(spec.rows), "load_bank": 1,
    })


class SlotQueue(wiring.Component):
    DEPTH = 4
    PUSH_TO_ISSUE = 2     # pushed in cycle t: issued from cycle t + 2

    def __init__(self, spec):
        self.spec = spec
        self.layout = slot_layout(spec)
        super().__init__({
            "push": In(1), "push_data": In(self.layout), "room": Out(1),
            "head": Out(self.layout), "advance": Out(1), "pop": In(1), "empty": Out(1, init=1),
            # the loader: words [0, written) of the bank are in; `writing` writes word `written` now
            "written": In(range(max(spec.act_depth, 2) + 1)), "writing": In(1), "same_bank": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.DEPTH
        entries = [Signal(self.layout, name=f"entry{k}") for k in range(depth)]
        oks = [Signal(name=f"ok{k}") for k in range(depth)]
        count = Signal(range(depth + 1))

        # Registered (exact: the loader state it follows changes only at a load's start, into a bank that is not
        # being read, or at its end, when every word is in; and the command's bank is set before its first push).
        same_bank = Signal()
        m.d.sync += same_bank.eq(self.same_bank)

        def written_now(entry):
            """The entry's word is in by the end of this cycle (or it reads none of this loading bank)."""
            beyond = Mux(self.writing, entry.act_addr > self.written, entry.act_addr >= self.written)
            return ~entry.reads | ~same_bank | ~beyond

        next_count, pop = Signal.like(count), Signal()
        m.d.comb += [pop.eq(self.pop & ~self.empty), next_count.eq(count + self.push - pop)]
        # count as a one-hot register too: where a push lands (count - pop) is then a multiplexer, not a sum
        count_is = Signal(depth + 1, init=1)
        m.d.sync += count_is.eq(1 << next_count)
        for k in range(depth):
            lands_here = Mux(pop, count_is[k + 1], count_is[k])
            # A pop moves every entry one place towards the head; each one's check is kept as it moves.
            with m.If(pop):
                if k + 1 < depth:
                    m.d.sync += [entries[k].eq(entries[k + 1]), oks[k].eq(oks[k + 1] | written_now(entries[k + 1]))]
            with m.Else():
                m.d.sync += oks[k].eq(oks[k] | written_now(entries[k]))
            with m.If(self.push & lands_here):
                m.d.sync += [entries[k].eq(self.push_data), oks[k].eq(0)]
        m.d.sync += [count.eq(next_count), self.room.eq(next_count <= depth - 2),
                     self.empty.eq(next_count == 0)]
        # An empty queue issues a bubble (the sequencer is between commands or has not pushed yet: never in the
        # middle of a command, where it pushes a slot every cycle the queue has room).
        m.d.comb += [self.head.eq(entries[0]), self.advance.eq(self.empty | oks[0])]
        with m.If(self.empty):
            m.d.comb += [self.head.slot_valid.eq(0), self.head.reads.eq(0), self.head.load_en.eq(0)]
        return m
