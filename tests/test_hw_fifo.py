"""`hwgen.hw.fifo.BlockRAMFIFO` (the weight FIFO) against a queue model (`FIFOModel`): random writes and pops,
the same words in order (garbage on the payload while ``valid`` is low), the head no earlier than
``WRITE_TO_READ`` cycles after its write, ``next_r_rdy``
equal to the next cycle's ``r_rdy``, the capacity ``depth + QUEUE``, and a word per cycle while words are
stored. The generic form on Amaranth's simulator (the ECP5 form, DP16KD instances in several read parts, runs
in the cocotb accelerator tests with `sim/models/ecp5_cells.v`).
"""

from collections import deque

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwgen.hw.fifo import BlockRAMFIFO


class FIFOModel:
    """The FIFO's words in order, each with the cycle it was written."""

    def __init__(self, *, depth):
        self.capacity = depth + BlockRAMFIFO.QUEUE
        self.words = deque()

    def write(self, word, cycle):
        assert len(self.words) < self.capacity, "the FIFO took a word beyond its capacity"
        self.words.append((word, cycle))

    def head(self):
        return self.words[0]

    def pop(self):
        return self.words.popleft()[0]


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("p_write, p_pop", [(0.9, 0.3), (0.3, 0.9), (1.0, 1.0), (0.6, 0.6), (1.0, 0.5)])
def test_fifo_equals_a_queue(p_write, p_pop):
    depth = 6
    dut = BlockRAMFIFO(width=12, depth=depth)
    rng = np.random.default_rng(int(10 * p_write + 100 * p_pop))
    model, got, full_seen = FIFOModel(depth=depth), [], []

    async def testbench(ctx):
        word, predicted_rdy = 0, 0
        for cycle in range(800):
            write = bool(rng.random() < p_write) and word < 400
            pop = bool(rng.random() < p_pop)
            ctx.set(dut.w_stream.valid, write)
            # Without valid the payload is garbage: the block RAM writes it at the free slot (its write
            # enable is the not-full flag), and the next word must overwrite it before any read.
            ctx.set(dut.w_stream.payload, word if write else int(rng.integers(1 << 12)))
            ctx.set(dut.r_en, pop)
            rdy = ctx.get(dut.r_rdy)
            assert rdy == predicted_rdy, f"cycle {cycle}: r_rdy {rdy}, next_r_rdy said {predicted_rdy}"
            if rdy:
                head, written = model.head()
                assert ctx.get(dut.r_data) == head, f"cycle {cycle}: head {ctx.get(dut.r_data)}, model {head}"
                assert cycle >= written + BlockRAMFIFO.WRITE_TO_READ
                if pop:
                    got.append(model.pop())
            elif model.words:
                # A stored word is the head once it has had its WRITE_TO_READ cycles.
                assert cycle < model.head()[1] + BlockRAMFIFO.WRITE_TO_READ + 1, f"cycle {cycle}: head late"
            ready = ctx.get(dut.w_stream.ready)
            if not ready:
                full_seen.append(len(model.words))
            if write and ready:
                model.write(word, cycle)
                word += 1
            predicted_rdy = ctx.get(dut.next_r_rdy)
            await ctx.tick()

    run(dut, testbench)
    assert got == list(range(len(got))) and len(got) > 100
    # Not ready only when the block RAM holds `depth` words: the queue's words come on top of them.
    assert all(depth <= held <= model.capacity for held in full_seen)
    if p_write > 2 * p_pop:
        assert full_seen, "the FIFO never filled"


def test_fifo_delivers_a_word_per_cycle():
    """Twenty words written back to back, popped every cycle: the heads in cycles 4..23, one per cycle."""
    dut = BlockRAMFIFO(width=8, depth=16)
    heads = []

    async def testbench(ctx):
        ctx.set(dut.r_en, 1)
        for cycle in range(30):
            ctx.set(dut.w_stream.valid, cycle < 20)
            ctx.set(dut.w_stream.payload, cycle)
            if ctx.get(dut.r_rdy):
                heads.append((cycle, ctx.get(dut.r_data)))
            await ctx.tick()

    run(dut, testbench)
    assert heads == [(BlockRAMFIFO.WRITE_TO_READ + k, k) for k in range(20)]


def test_fifo_holds_depth_plus_queue_words():
    """Nothing popped: the FIFO takes exactly depth + QUEUE words, then holds `ready` low."""
    depth = 5
    dut = BlockRAMFIFO(width=8, depth=depth)
    taken = []

    async def testbench(ctx):
        ctx.set(dut.w_stream.valid, 1)
        for cycle in range(40):
            ctx.set(dut.w_stream.payload, cycle)
            if ctx.get(dut.w_stream.ready):
                taken.append(cycle)
            await ctx.tick()

    run(dut, testbench)
    assert len(taken) == depth + BlockRAMFIFO.QUEUE
