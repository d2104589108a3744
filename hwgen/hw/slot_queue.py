"""The slot queue between the fold sequencer and the weight-stationary pipeline's issue stage.

The sequencer pushes one slot per cycle while the queue has ``room``, into an input register (so the bounds
check and the address sum the sequencer leaves as logic end there); the issue stage pops the head with the
pipeline enable. So the sequencer's logic runs on its own registered enable and never sees the pipeline's,
and the enable itself is an AND of flip-flops: ``advance`` (a head whose read may happen, or an empty queue,
which issues a bubble), the head's ``load_en`` (it pops a weight word), the weight FIFO's and the output
FIFO's registered flags.

Read-after-write interlock: a slot may issue only once the activation word it reads has been written (its
command may still be loading, see `AcceleratorTop`). Every entry carries an ``ok`` flag, set from the cycle
after its word is written (or from the start when it reads nothing) and never cleared: the loader's write
pointer only grows while the bank is read. The pipeline enable is decided a cycle ahead from
the flags as they are (not from this cycle's checks, which would put the pointer compare in its path): a slot
issues at ``t`` only if its word was written by the end of ``t - CHECK_LAG``.

Timing: a slot pushed in cycle ``t`` is in the queue from ``t + 2`` and can issue (the head with ``advance``)
from cycle ``t + 3``. ``room`` is registered (from the count after this cycle's push and pop, with the input
register), so the queue holds two entries of margin.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .arith import add_with_carry

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
    DEPTH = 5
    PUSH_TO_ISSUE = 3     # pushed in cycle t: issued from cycle t + 3
    CHECK_LAG = 2         # a word written in cycle t: a slot reading it issues from t + 2

    def __init__(self, spec):
        self.spec = spec
        self.layout = slot_layout(spec)
        pointer = range(max(spec.act_depth, 2) + 1)
        super().__init__({
            "push": In(1), "push_data": In(self.layout), "room": Out(1),
            "head": Out(self.layout), "advance": Out(1),
            "drained": Out(1, init=1),       # nothing queued, nothing in the input register
            # `pop` for the control, `pop_entries` (the same signal, its own flip-flop) to move the entries
            "pop": In(1), "pop_entries": In(1),
            # `advance` and `head.load_en` as they will be after this cycle's push and pop (without this
            # cycle's checks): the pipeline enable is decided from them a cycle ahead and registered
            "next_advance": Out(1), "next_load_en": Out(1),
            # the loader: words [0, written) of the bank are in; `writing` writes word `written` now
            "written": In(pointer), "writing": In(1), "same_bank": In(1),
            # copies of `written`, one per entry (each always equal to it: the top keeps each as a register of
            # its own, so that an entry's pointer compare starts at a flip-flop near it, not at one that fans out
            # to every entry: the 8x8's critical path at seed 2 at 553a5e0, 6.83 ns, 1.68 of it that route)
            "written_at": In(data.ArrayLayout(Shape.cast(pointer), self.DEPTH)),
            # A slot that finishes an output beat (valid, last k-fold of an emitting command) issues only with
            # `beat_credit` (the post-op FIFO has room for it, see AcceleratorTop); without it the head stays
            # and a bubble issues in its place. `beat_issued`: such a slot is popped in this cycle.
            "beat_credit": In(1, init=1), "beat_issued": Out(1),
            # the value `beat_credit` takes in the next cycle (it is a flip-flop outside; the queue registers
            # whether its head may pop from it: exact only while `beat_credit` is that register)
            "next_beat_credit": In(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.DEPTH
        staged, staged_valid = Signal(self.layout, name="staged"), Signal()
        m.d.sync += [staged.eq(self.push_data), staged_valid.eq(self.push)]
        # The staged slot's check is made as it is staged, against the write pointer of that cycle, and brought
        # up to date with the one write that may happen then: the pointer moves by at most one word a cycle
        # (its reset to 0 at a load's start comes with same_bank still 0): whether its word is in
        # (`staged_settled`, or it reads none of a loading bank); whether it is the one at the pointer is made
        # as the entries' is (below).
        # same_bank a cycle early is exact: the loader state it follows changes only at a load's start, into a
        # bank that is not being read, or at its end, when every word is in; and the command's bank is set
        # before its first push.
        # Whether it reads is not part of the registered check (`staged_in`) but ORed in after (`staged.reads`
        # is registered anyway): the sequencer's `reads` is logic after its bounds compare (the 8x8's critical
        # path at seed 4 after 2a24b67: the position `h` -> the compare -> `reads` -> the check, 6.92 ns).
        # Its word is in after this cycle's write: addr < written + writing, one carry chain with the write as
        # its carry-in (written + ~addr + writing >= 0 over a bit more), not a compare, an equality and a gate
        # (the 8x8's critical path at seed 1 after the post-op chain's bias change: the sequencer's address ->
        # `addr < written` -> three LUT levels -> `staged_in`, 7.05 ns).
        staged_in = Signal()
        addr = self.push_data.act_addr
        n = max(len(addr), len(self.written))
        total = add_with_carry(Cat(self.written, Const(0, n + 1 - len(self.written))),
                               ~Cat(addr, Const(0, n + 1 - len(addr))), self.writing)
        m.d.sync += staged_in.eq(~self.same_bank | ~total[n])
        staged_settled = Signal()
        m.d.comb += staged_settled.eq(~staged.reads | staged_in)
        push, push_data = staged_valid, staged
        entries = [Signal(self.layout, name=f"entry{k}") for k in range(depth)]
        # Each flag as two flip-flops, ORed where it is read: `settled` (the check without this cycle's write) and
        # `written_now` (this cycle's write is its word), so the loader's handshake (`writing`, from the stream's
        # valid: a route from wherever the source sits) is one gate from a flip-flop's input (the 8x8's critical
        # path at seed 1: the stream's valid -> four LUT levels of the flag's update, 7.63 ns).
        ok_settled = [Signal(name=f"ok{k}_settled") for k in range(depth)]
        ok_written_now = [Signal(name=f"ok{k}_written_now") for k in range(depth)]
        oks = [Signal(name=f"ok{k}") for k in range(depth)]
        m.d.comb += [ok.eq(a | b) for ok, a, b in zip(oks, ok_settled, ok_written_now)]
        count = Signal(range(depth + 1))

        # An entry's flag: its word is in by the end of the cycle before (or it reads none of a loading bank).
        # An entry in the queue was checked a cycle ago, and the pointer moves by at most one word a cycle: it
        # only needs to see whether that word is its own.
        # Not an equality: `pointer >= address`, one carry chain straight from the flip-flops (the borrow of
        # `pointer - address`), not a tree of LUTs in front of the flag's multiplexers (the 8x8's critical path
        # at seed 1 after b9e7d05: `written_at` -> a 14-bit equality's three LUT levels -> `ok2_written_now`,
        # 7.18 ns). The same for every entry whose flag matters: one whose word is not in has its address at or
        # beyond the pointer, where the two agree; one whose word is in has its flag set already.
        # The staged slot's likewise, from its register and `written` (the pointer-wide add and equality in front
        # of a flip-flop made at staging were the 8x8's critical path at seed 1 after b396fbe, 6.95 ns).
        at_pointer = [~(pointer - slot.act_addr)[max(len(slot.act_addr), len(pointer))]
                      for slot, pointer in [*zip(entries, self.written_at), (staged, self.written)]]
        staged_at = at_pointer.pop()

        next_count, pop, pop_entries = Signal.like(count), Signal(), Signal()
        # The head may pop: the queue is not empty (see `next_empty` below) and the head is not held (it
        # finishes a beat and has no credit: a bubble issues instead). A flip-flop, registered from the next
        # values of the registers it is made of (the entries, the empty flag and `beat_credit` load every cycle),
        # so the pops, and through them the pipeline enable's lookahead, start one gate from flip-flops.
        can_pop = Signal(name="can_pop")
        m.d.comb += [pop.eq(self.pop & can_pop), pop_entries.eq(self.pop_entries & can_pop),
                     next_count.eq(count + push - pop),
                     self.beat_issued.eq(pop & entries[0].slot_valid & entries[0].last_k)]
        # count as a one-hot register too: where a push lands (count - pop) is then a multiplexer, not a sum
        count_is = Signal(depth + 1, init=1)
        m.d.sync += count_is.eq(1 << next_count)
        next_entries = [Signal(self.layout, name=f"next_entry{k}") for k in range(depth)]
        next_settled = [Signal(name=f"next_ok{k}_settled") for k in range(depth)]
        next_written_now = [Signal(name=f"next_ok{k}_written_now") for k in range(depth)]
        for k in range(depth):
            # A pop moves every entry one place towards the head; each one's check is kept as it moves. The
            # flag's two inputs (settled; at the pointer) are chosen for both cases from flip-flops, then by
            # `pop`, and `writing` (the one input that is logic, the loader's handshake) comes last.
            above = min(k + 1, depth - 1)
            choices = {}
            for popped, source in ((True, above), (False, k)):
                takes_staged = push & count_is[k + 1 if popped else k]
                choices[popped] = (Mux(takes_staged, staged_settled, oks[source]),
                                   Mux(takes_staged, staged_at, at_pointer[source]))
            settled = Mux(pop, choices[True][0], choices[False][0])
            if_writing = Mux(pop, choices[True][1], choices[False][1])
            m.d.comb += [next_settled[k].eq(settled), next_written_now[k].eq(self.writing & if_writing)]
            moved = entries[above]
            with m.If(push & Mux(pop_entries, count_is[k + 1], count_is[k])):
                m.d.comb += next_entries[k].eq(push_data)
            with m.Elif(pop_entries):
                m.d.comb += next_entries[k].eq(moved)
            with m.Else():
                m.d.comb += next_entries[k].eq(entries[k])
        # From the one-hot count: no adder in the pipeline enable's lookahead. A slot that lands in an empty
        # queue stays hidden for its first cycle there (it still counts as empty: the head reads as a bubble, not
        # popped): its flag is not known in time to decide the enable, and a bubble then keeps the pipeline
        # moving, where freezing it would delay the previous command's slots still in flight.
        nothing_left = count_is[0] | (pop & count_is[1])
        next_empty = nothing_left
        m.d.sync += can_pop.eq(~next_empty & ~(next_entries[0].slot_valid & next_entries[0].last_k &
                                               ~self.next_beat_credit))
        m.d.sync += [count.eq(next_count), self.room.eq(next_count + self.push <= depth - 1),
                     self.drained.eq(nothing_left & ~push & ~self.push),
                     *(entry.eq(next_entry) for entry, next_entry in zip(entries, next_entries)),
                     *(ok.eq(next_ok) for ok, next_ok in zip(ok_settled, next_settled)),
                     *(ok.eq(next_ok) for ok, next_ok in zip(ok_written_now, next_written_now))]
        # The head's flag after this cycle's moves, from the flags alone (a slot checked in this cycle issues
        # one cycle later than it could: CHECK_LAG). A slot pushed into an empty queue is hidden (above).
        head_ok = Mux(pop, oks[1], oks[0])
        m.d.comb += [self.next_advance.eq(next_empty | head_ok),
                     # the head's load_en after the moves, chosen by `pop` last between the entries that can be
                     # the head then (next_entries[0] uses `pop_entries`; a push lands at the head only into a
                     # queue that stays empty): the pipeline enable's lookahead is a gate fewer from the pop
                     self.next_load_en.eq(Mux(pop, ~count_is[1] & entries[1].load_en,
                                              ~count_is[0] & entries[0].load_en))]
        # An empty queue issues a bubble (the sequencer is between commands or has not pushed yet: never in the
        # middle of a command, where it pushes a slot every cycle the queue has room).
        advance = Signal()
        m.d.sync += advance.eq(self.next_advance)
        m.d.comb += [self.head.eq(entries[0]), self.advance.eq(advance)]
        with m.If(~can_pop):
            m.d.comb += [self.head.slot_valid.eq(0), self.head.reads.eq(0), self.head.load_en.eq(0)]
        return m
