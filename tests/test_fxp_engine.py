"""The fixed-point engine (`hwgen.hw.fxp_engine`) end to end in Amaranth's simulator: random programs of every
command kind bit-exact against the golden model and cycle-exact against `hwgen.fxp.perf.predict` (every cfg
handshake, every done pulse, every out beat); random stalls only slow it down. The transposed access is shown
on its own: one copy of W in the weight memory, forward order, gives both W x and W^T g."""

import numpy as np
import pytest

from hwgen.fxp import FxpSpec, ProgramBuilder, backward, forward, load_vectors, load_weights, predict
from hwgen.fxp.machine import unpack_vector
from hwgen.sim.fxp_pysim import run_program
from tests.fxp_programs import random_program, random_spec


def check_run(program, timing):
    got = [unpack_vector(w, program.spec.size) for w in timing.beats]
    assert len(got) == len(program.expected)
    for index, (g, e) in enumerate(zip(got, program.expected)):
        assert list(g) == list(e), f"beat {index}: {list(g)} != {list(e)}"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_programs_are_exact_and_cycle_exact(seed):
    spec = random_spec(seed)
    program = random_program(spec, seed)
    timing = run_program(program)
    check_run(program, timing)
    model = predict(program)
    assert timing.cfg == model.cfg
    assert timing.done == model.done
    assert timing.out == model.out


@pytest.mark.parametrize("seed", [2, 7])
def test_random_stalls_only_slow_it_down(seed):
    spec = random_spec(seed)
    program = random_program(spec, seed)
    timing = run_program(program, stall=0.3, seed=seed)
    check_run(program, timing)
    model = predict(program)
    assert all(t >= m for t, m in zip(timing.done, model.done))
    assert all(t >= m for t, m in zip(timing.out, model.out))


def test_backward_reads_the_forward_tiles_in_the_other_order():
    """W (3x2 tiles of 4x4) is loaded once, in forward order (tile (o, r) at o*R + r). The forward command sums the
    tiles' rows (W x); the backward command reads the same words with the tile address r*O + o... - the
    sequencer's other running offset - and sums their columns (W^T g). No transposed copy is ever made: the
    weight stream carries exactly the O*R forward tiles."""
    spec = FxpSpec(size=4, frac_bits=8, vector_words=64, weight_words=8, max_batch=2, training=True, name="fxp_T")
    rng = np.random.default_rng(0)
    n, O, R, B = 4, 3, 2, 2
    W = rng.integers(-300, 300, (O * n, R * n))
    tiles = W.reshape(O, n, R, n).transpose(0, 2, 1, 3).reshape(O * R, n, n)
    x = rng.integers(-300, 300, (B, R * n))
    g = rng.integers(-300, 300, (B, O * n))
    b = ProgramBuilder(spec)
    b.run(load_weights(address=0, count=O * R), weights=list(tiles))
    b.run(load_vectors(address=0, count=B * R), data=list(x.reshape(-1, n)))
    b.run(load_vectors(address=10, count=B * O), data=list(g.reshape(-1, n)))
    b.run(forward(weights=0, outer=O, reduce=R, batch=B, inputs=0, emit=True, store=False))
    b.run(backward(weights=0, outer=R, reduce=O, batch=B, gradients=10, emit=True, store=False))
    program = b.program()
    assert len(program.weights) == O * R
    timing = run_program(program)
    check_run(program, timing)
    beats = np.array([unpack_vector(w, n) for w in timing.beats])
    fwd, bwd = beats[:O * B], beats[O * B:]
    rnd = lambda v: np.clip((v + (1 << 7)) >> 8, -(1 << 15), (1 << 15) - 1)      # noqa: E731
    want_fwd = rnd(x @ W.T).reshape(B, O, n).transpose(1, 0, 2).reshape(-1, n)    # beats: word o, then sample b
    want_bwd = rnd(g @ W).reshape(B, R, n).transpose(1, 0, 2).reshape(-1, n)
    assert np.array_equal(fwd, want_fwd)
    assert np.array_equal(bwd, want_bwd)
    model = predict(program)
    assert (timing.cfg, timing.done, timing.out) == (model.cfg, model.done, model.out)
