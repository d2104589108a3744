"""`hwgen.hw.fxp_sequencer` against its golden model `hwgen.fxp.machine.slots`: every slot of every command kind,
with every address, in order; the LSTM step barrier; random enables."""

import random

import pytest
from amaranth.sim import Simulator

from hwgen.fxp import FxpSpec, backward, forward, lstm, read_vectors, read_weights, update
from hwgen.fxp.commands import pack_command
from hwgen.fxp.machine import slots
from hwgen.hw.fxp_sequencer import FxpSequencer

SPEC = FxpSpec(size=4, frac_bits=12, vector_words=512, weight_words=64, max_batch=4, training=True, lstm=True,
               cell_words=64, max_steps=4)
FIELDS = ("o", "r", "b", "first", "last", "first_b", "last_b", "w_addr", "a_addr", "b_addr", "y_addr", "c_addr",
          "pop", "zero_a", "zero_c")
LOOPS = ("o", "r", "b", "first", "last", "first_b", "last_b", "pop", "zero_a", "zero_c")
# The addresses each kind uses (the others are don't-cares).
USED = {"read_vectors": ("a_addr",), "read_weights": ("w_addr",), "forward": ("w_addr", "a_addr", "b_addr", "y_addr"),
        "backward": ("w_addr", "a_addr", "b_addr", "y_addr"), "update": ("w_addr", "a_addr", "b_addr"),
        "lstm": ("a_addr", "b_addr", "y_addr", "c_addr")}

COMMANDS = {
    "forward": forward(weights=3, outer=3, reduce=2, batch=3, inputs=40, outputs=100, biases=90),
    "backward": backward(weights=5, outer=2, reduce=3, batch=2, gradients=60, outputs=120, mask=20),
    "update": update(weights=1, outer=2, reduce=3, batch=4, gradients=7, activations=200, lr_mult=9),
    "lstm": lstm(x_blocks=2, hidden_blocks=1, batch=2, steps=3, vectors=30, biases=300),
    "lstm_with_state": lstm(x_blocks=1, hidden_blocks=2, batch=1, steps=2, vectors=5, zero_state=False),
    "read_vectors": read_vectors(address=17, count=5),
    "read_weights": read_weights(SPEC, address=9, count=3),
    "batch_one": forward(weights=0, outer=2, reduce=3, batch=1, inputs=0, outputs=50),
}


def run_sequencer(command, *, seed):
    dut = FxpSequencer(SPEC)
    rng = random.Random(seed)
    word = pack_command(SPEC, command)
    got, barriers = [], []

    async def bench(ctx):
        ctx.set(dut.cmd.as_value(), word)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(2000):
            if not ctx.get(dut.busy):
                break
            en = rng.random() < 0.7
            drained = rng.random() < 0.5
            ctx.set(dut.en, en)
            ctx.set(dut.drained, drained)
            if en and ctx.get(dut.valid):
                got.append({name: ctx.get(getattr(dut, name)) for name in FIELDS})
                if ctx.get(dut.step_last):
                    barriers.append(len(got))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, barriers


@pytest.mark.parametrize("name", COMMANDS)
def test_every_slot_and_address(name):
    command = COMMANDS[name]
    keys = LOOPS + USED[command.kind]
    want = [{k: int(slot[k]) for k in keys} for slot in slots(SPEC, command)]
    got, barriers = run_sequencer(command, seed=len(name))
    got = [{k: g[k] for k in keys} for g in got]
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"slot {index}: {g} != {w}"
    if command.kind == "lstm":
        per_step = command.outer * command.reduce * command.batch
        assert barriers == [per_step * (t + 1) for t in range(command.steps)]
