"""`hwgen.fxp.machine`, the golden model of the fixed-point engine, against direct definitions (Python integers,
element by element) of what each command computes; and the checks every command gets before it runs."""

import numpy as np
import pytest

from hwgen.activation import PiecewiseLinear
from hwgen.errors import MappingError
from hwgen.fxp import (FxpMachine, FxpSpec, backward, forward, load_vectors, load_weights, lstm, read_vectors,
                       read_weights, update)
from hwgen.fxp.commands import pack_command, unpack_command
from hwgen.lfsr import lane_seed, draw

SPEC = FxpSpec(size=4, frac_bits=10, vector_words=256, weight_words=64, max_batch=4, training=True,
               stochastic=True, lstm=True, cell_words=64, max_steps=4, seed=77)
N, F = SPEC.size, SPEC.frac_bits


def rnd(v, s):
    return (v + (1 << (s - 1))) >> s


def sat(v):
    return max(-(1 << 15), min((1 << 15) - 1, v))


def setup(rng, tiles, words):
    m = FxpMachine(SPEC)
    W = rng.integers(-3000, 3000, (tiles, N, N))
    V = rng.integers(-3000, 3000, (words, N))
    m.execute(load_weights(address=0, count=tiles), weights=list(W))
    m.execute(load_vectors(address=0, count=words), data=list(V))
    return m, W, V


def test_forward_is_the_matrix_product_of_the_stored_tiles():
    rng = np.random.default_rng(1)
    O, R, B = 2, 3, 2
    m, W, V = setup(rng, O * R, 40)
    out = m.execute(forward(weights=0, outer=O, reduce=R, batch=B, inputs=10, outputs=30, biases=5, relu=True,
                            emit=True))
    for o in range(O):
        for b in range(B):
            for l in range(N):
                acc = sum(int(W[o * R + r][l, i]) * int(V[10 + b * R + r][i]) for r in range(R) for i in range(N))
                want = max(sat(rnd(acc + (int(V[5 + o][l]) << F), F)), 0)
                assert out[o * B + b][l] == want
                assert m.vectors[30 + b * O + o][l] == want


def test_backward_reads_the_same_tiles_transposed():
    """Backward of the layer y = W x (tiles in forward order, W stored once): W^T g, masked by x > 0."""
    rng = np.random.default_rng(2)
    Oy, Rx, B = 3, 2, 2           # the forward layer: O = 3 output words, R = 2 input words
    m, W, V = setup(rng, Oy * Rx, 60)
    out = m.execute(backward(weights=0, outer=Rx, reduce=Oy, batch=B, gradients=20, outputs=40, mask=0,
                             emit=True))
    for k in range(Rx):              # input word k
        for b in range(B):
            for i in range(N):
                acc = sum(int(W[o * Rx + k][l, i]) * int(V[20 + b * Oy + o][l]) for o in range(Oy) for l in range(N))
                want = sat(rnd(acc, F)) if V[b * Rx + k][i] > 0 else 0
                assert out[k * B + b][i] == want


def test_update_is_sgd_on_the_batch_outer_product_with_lane_lfsrs():
    rng = np.random.default_rng(3)
    O, R, B = 2, 2, 3
    m, W, V = setup(rng, O * R, 40)
    lr = 40000
    m.execute(update(weights=0, outer=O, reduce=R, batch=B, gradients=0, activations=20, lr_mult=lr,
                     stochastic=True))
    states = [lane_seed(77, N + k) for k in range(N * N)]
    for o in range(O):
        for r in range(R):
            for l in range(N):
                for i in range(N):
                    k = l * N + i
                    states[k], d = draw(states[k])
                    total = sum(int(V[b * O + o][l]) * int(V[20 + b * R + r][i]) for b in range(B))
                    s = F + 16
                    step = (total * lr + ((d << s) >> 16)) >> s
                    assert m.weights[o * R + r][l, i] == sat(int(W[o * R + r][l, i]) - step)


def test_lstm_step_by_hand():
    rng = np.random.default_rng(4)
    m = FxpMachine(SPEC)
    xb, hb, B, T = 1, 1, 1, 2
    R, O = xb + hb, 4 * hb
    tiles = rng.integers(-400, 400, (T * O * R, N, N))
    u = rng.integers(-800, 800, ((T + 1) * B * R, N))
    m.execute(load_vectors(address=0, count=len(u)), data=list(u))
    out = m.execute(lstm(x_blocks=xb, hidden_blocks=hb, batch=B, steps=T, vectors=0, emit=True), weights=list(tiles))
    sig, tanh = PiecewiseLinear("sigmoid", F), PiecewiseLinear("tanh", F)
    act = lambda table, v: int(table(np.array([v]))[0])          # noqa: E731
    q = N // 4
    h, c = [0] * N, [0] * N          # hidden unit j = o*q + k
    for t in range(T):
        x = list(u[t * R]) + h
        new_h = [0] * N
        for o in range(O):
            z = [sat(rnd(sum(int(tiles[(t * O + o) * R + r][row, i]) * int(x[r * N + i])
                             for r in range(R) for i in range(N)), F)) for row in range(N)]
            for k in range(q):
                j = o * q + k
                i_g, f_g = act(sig, z[k]), act(sig, z[q + k])
                g_g, o_g = act(tanh, z[2 * q + k]), act(sig, z[3 * q + k])
                c[j] = sat(rnd(f_g * c[j] + i_g * g_g, F))
                new_h[j] = sat(rnd(o_g * act(tanh, c[j]), F))
            beat = [0] * N
            beat[(o % 4) * q:(o % 4 + 1) * q] = new_h[o * q:(o + 1) * q]
            assert list(out[t * O + o]) == beat
        h = new_h
        assert list(m.vectors[(t + 1) * R + xb]) == h


def test_reads_and_the_command_word_round_trip():
    rng = np.random.default_rng(5)
    m, W, V = setup(rng, 3, 8)
    assert [list(v) for v in m.execute(read_vectors(address=2, count=3))] == [list(v) for v in V[2:5]]
    rows = m.execute(read_weights(SPEC, address=1, count=2))
    assert [list(r) for r in rows] == [list(r) for t in W[1:3] for r in t]
    c = update(weights=3, outer=2, reduce=5, batch=3, gradients=9, activations=70, lr_mult=1234, stochastic=True)
    assert unpack_command(SPEC, pack_command(SPEC, c)) == c


@pytest.mark.parametrize("command, message", [
    (forward(weights=60, outer=2, reduce=3, batch=1, inputs=0), "weight_words >= 66"),
    (forward(weights=0, outer=2, reduce=3, batch=9, inputs=0), "max_batch"),
    (forward(weights=0, outer=1, reduce=1, batch=1, inputs=256, outputs=0), "vector_words >= 257"),
    (update(weights=0, outer=1, reduce=1, batch=1, gradients=0, activations=0, lr_mult=1 << 16), "lr_mult"),
    (lstm(x_blocks=1, hidden_blocks=1, batch=2, steps=9, vectors=0), "max_steps"),
])
def test_commands_that_do_not_fit_are_named(command, message):
    with pytest.raises(MappingError, match=message):
        command.check(SPEC)


def test_engine_options_are_required():
    plain = FxpSpec(size=4)
    with pytest.raises(MappingError, match="training=True"):
        backward(weights=0, outer=1, reduce=1, batch=1, gradients=0).check(plain)
    with pytest.raises(MappingError, match="stochastic=True"):
        forward(weights=0, outer=1, reduce=1, batch=1, inputs=0, stochastic=True).check(plain)
    with pytest.raises(MappingError, match="lstm=True"):
        lstm(x_blocks=1, hidden_blocks=1, batch=1, steps=1, vectors=0).check(plain)
    with pytest.raises(MappingError, match="multiple of 4"):
        FxpSpec(size=6, lstm=True)
    with pytest.raises(MappingError, match="frac_bits"):
        FxpSpec(size=4, lstm=True, frac_bits=14)


def test_outputs_may_not_overlap_inputs():
    with pytest.raises(MappingError, match="overlap"):
        forward(weights=0, outer=2, reduce=2, batch=2, inputs=0, outputs=3).check(SPEC)
    with pytest.raises(MappingError, match="overlap"):
        lstm(x_blocks=1, hidden_blocks=1, batch=1, steps=2, vectors=0, biases=4).check(SPEC)
