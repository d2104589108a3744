"""`hwgen.hw.slot_queue.SlotQueue` on its own: random pushes and pops against a queue model. The slots leave in
order (a pop takes the head only while it is shown), a pushed slot is the head no earlier than
``PUSH_TO_ISSUE`` cycles after its push, and the lookahead outputs the pipeline enable is decided from are
exact: ``next_advance`` and ``next_load_en`` equal the next cycle's ``advance`` and head ``load_en`` (with the
beat credit always given: the hold it adds is the top's, tested there).
"""

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.hw.slot_queue import SlotQueue
from hwgen.spec import AcceleratorSpec


@pytest.mark.parametrize("p_push, p_pop", [(0.9, 0.3), (0.3, 0.9), (1.0, 1.0), (0.6, 0.6), (0.5, 1.0)])
def test_slot_queue_order_and_lookahead(p_push, p_pop):
    spec = AcceleratorSpec(rows=2, cols=2)
    dut = SlotQueue(spec)
    rng = np.random.default_rng(int(10 * p_push + 100 * p_pop))
    model, popped, pushed_at = deque(), [], {}

    async def testbench(ctx):
        # Nothing reads a bank being loaded: every slot is settled, so `advance` follows the queue alone.
        ctx.set(dut.same_bank, 0)
        slot, expected = 0, None
        for cycle in range(1500):
            push = ctx.get(dut.room) and bool(rng.random() < p_push) and slot < 1000
            pop = bool(rng.random() < p_pop)
            load_en = int(rng.random() < 0.5)
            ctx.set(dut.push, push)
            ctx.set(dut.push_data.acc_addr, slot % 4)
            ctx.set(dut.push_data.act_addr, slot % 7)
            ctx.set(dut.push_data.slot_valid, 1)
            ctx.set(dut.push_data.load_en, load_en)
            ctx.set(dut.pop, pop)
            ctx.set(dut.pop_entries, pop)
            head_valid = ctx.get(dut.head.slot_valid)
            if expected is not None:
                assert (ctx.get(dut.advance), ctx.get(dut.head.load_en)) == expected, f"cycle {cycle}"
            if head_valid:
                number, load = model[0]
                assert ctx.get(dut.head.acc_addr) == number % 4 and ctx.get(dut.head.act_addr) == number % 7
                assert ctx.get(dut.head.load_en) == load
                assert cycle >= pushed_at[number] + SlotQueue.PUSH_TO_ISSUE
                if pop:
                    popped.append(model.popleft()[0])
            if push:
                model.append((slot, load_en))
                pushed_at[slot] = cycle
                slot += 1
            expected = (ctx.get(dut.next_advance), ctx.get(dut.next_load_en))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert popped == list(range(len(popped))) and len(popped) > 200


@pytest.mark.parametrize("p_write, spread", [(0.5, 4), (0.9, 3), (0.2, 8), (1.0, 2)])
def test_slot_queue_interlock_is_exact(p_write, spread):
    """The read-after-write interlock against the loader's write pointer, while the bank is being loaded: a
    shown head that reads issues (``advance``) in cycle ``t`` exactly when its word was written by the end of
    ``t - CHECK_LAG`` (``act_addr < written`` in cycle ``t - 1``), one that reads nothing at once: never
    earlier (it would read a stale word) and never later (the cycle model counts on it). Slots read words around the pointer, some already in, some
    a few ahead; the pipeline pops only with ``advance``, as the top's enable does."""
    spec = AcceleratorSpec(rows=2, cols=2)
    dut = SlotQueue(spec)
    rng = np.random.default_rng(int(100 * p_write) + spread)
    counts = {"held": 0, "issued": 0}

    async def testbench(ctx):
        ctx.set(dut.same_bank, 1)
        written, written_before = 0, 0
        for cycle in range(3000):
            writing = written < spec.act_depth and bool(rng.random() < p_write)
            ctx.set(dut.written, written)
            for k in range(SlotQueue.DEPTH):
                ctx.set(dut.written_at[k], written)
            ctx.set(dut.writing, writing)
            push = ctx.get(dut.room) and bool(rng.random() < 0.8)
            reads = bool(rng.random() < 0.8)
            address = int(np.clip(written + rng.integers(-spread, 2 * spread), 0, spec.act_depth - 1))
            ctx.set(dut.push, push)
            ctx.set(dut.push_data.slot_valid, 1)
            ctx.set(dut.push_data.reads, reads)
            ctx.set(dut.push_data.act_addr, address)
            advance = ctx.get(dut.advance)
            pop = advance and bool(rng.random() < 0.9)
            ctx.set(dut.pop, pop)
            ctx.set(dut.pop_entries, pop)
            if ctx.get(dut.head.slot_valid) and cycle > 0:
                ready = not ctx.get(dut.head.reads) or ctx.get(dut.head.act_addr) < written_before
                assert advance == ready, (f"cycle {cycle}: head reads word {ctx.get(dut.head.act_addr)}, "
                                          f"written {written_before} a cycle before, advance {advance}")
                counts["issued" if ready else "held"] += 1
            written_before = written
            written += writing
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert counts["held"] > 50 and counts["issued"] > 200, counts
