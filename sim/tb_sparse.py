"""cocotb test: stream a sparse plan (`hwgen.sparse.SparseMVPlan`) through the generated sparse matrix-vector
engine (`hwgen.hw.sparse_mv`), record every output beat and the cycles from the first word's handshake to the
last beat's. The job (``$HWGEN_SPARSE_JOB``, JSON) gives the commands' words (hex) and slots, and optionally a
stall probability (random gaps on ``i.valid`` and ``o.ready``); the results go to its ``results_path``."""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer


@cocotb.test()
async def run_sparse_job(dut):
    job = json.loads(open(os.environ["HWGEN_SPARSE_JOB"]).read())
    rng = random.Random(job.get("seed", 1))
    stall = job.get("stall", 0.0)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.slots.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    commands = [([int(w, 16) for w in c["words"]], c["slots"]) for c in job["commands"]]
    total_beats = sum(slots for _, slots in commands)
    beats, first, last, cycle = [], None, None, 0
    cmd, sent, emitted_in_cmd = 0, 0, 0
    while len(beats) < total_beats:
        await FallingEdge(dut.clk)
        assert cycle < job.get("max_cycles", 100000), "the engine stopped making progress"
        words, slots = commands[cmd]
        dut.slots.value = slots
        offer = sent < len(words) and rng.random() >= stall
        dut.i__valid.value = int(offer)
        if offer:
            dut.i__payload.value = words[sent]
        ready = rng.random() >= stall
        dut.o__ready.value = int(ready)
        await Timer(1, unit="ns")
        if offer and int(dut.i__ready.value):
            sent += 1
            first = cycle if first is None else first
        if int(dut.o__valid.value) and ready:
            beats.append(int(dut.o__payload.value))
            last = cycle
            emitted_in_cmd += 1
            if emitted_in_cmd == slots:
                cmd, sent, emitted_in_cmd = cmd + 1, 0, 0
        cycle += 1
    await FallingEdge(dut.clk)
    dut.i__valid.value = 0
    with open(job["results_path"], "w") as f:
        json.dump({"beats": [hex(b) for b in beats], "cycles": last - first}, f)
