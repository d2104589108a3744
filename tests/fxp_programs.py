"""Random programs for the fixed-point engine (shared by the Amaranth-simulator and cocotb tests). Not a test
module."""

import numpy as np

from hwgen.fxp import (FxpSpec, ProgramBuilder, backward, forward, load_vectors, load_weights, lstm, read_vectors,
                       read_weights, update)


def random_spec(seed, *, name=None):
    rng = np.random.default_rng(seed)
    size = int(rng.choice([2, 4])) if seed % 3 else 4
    lstm_on = size == 4 and bool(rng.integers(0, 2))
    return FxpSpec(size=size, frac_bits=int(rng.integers(6, 13)), vector_words=256, weight_words=48, max_batch=3,
                   training=True, stochastic=bool(rng.integers(0, 2)), seed=int(rng.integers(1, 1000)),
                   lstm=lstm_on, cell_words=32, max_steps=3, name=name or f"fxp_rand{seed}")


def random_program(spec, seed, *, commands=6):
    """Loads, then `commands` random grid commands (forward, backward, update, reads, and LSTM sequences when the
    engine has the cell), one data load made by the host from the beats so far."""
    rng = np.random.default_rng(seed)
    n, f = spec.size, spec.frac_bits
    b = ProgramBuilder(spec)
    tiles = 24
    b.run(load_weights(address=0, count=tiles), weights=list(rng.integers(-(1 << f), 1 << f, (tiles, n, n))))
    b.run(load_vectors(address=0, count=64), data=list(rng.integers(-(2 << f), 2 << f, (64, n))))
    kinds = ["forward", "backward", "update", "read_vectors", "read_weights"] + (["lstm"] * 2 if spec.lstm else [])
    host_load = int(rng.integers(1, commands))
    for k in range(commands):
        if k == host_load and b.beats:
            beats = np.asarray(b.beats[-4:])
            b.run(load_vectors(address=int(rng.integers(0, 60)), count=len(beats)), data=list(beats // 2),
                  after_beats=len(b.beats))
        kind = str(rng.choice(kinds))
        stochastic = spec.stochastic and bool(rng.integers(0, 2))
        O, R, B = (int(v) for v in rng.integers(1, 4, 3))
        w = int(rng.integers(0, tiles - O * R + 1))
        if kind == "forward":
            b.run(forward(weights=w, outer=O, reduce=R, batch=B, inputs=int(rng.integers(0, 40)),
                          outputs=int(rng.integers(64, 120)), biases=int(rng.integers(40, 60)) if rng.integers(0, 2) else None,
                          relu=bool(rng.integers(0, 2)), emit=bool(rng.integers(0, 3)), stochastic=stochastic))
        elif kind == "backward":
            b.run(backward(weights=w, outer=O, reduce=R, batch=B, gradients=int(rng.integers(0, 40)),
                           outputs=int(rng.integers(64, 120)), mask=int(rng.integers(40, 50)) if rng.integers(0, 2) else None,
                           emit=bool(rng.integers(0, 3)), stochastic=stochastic))
        elif kind == "update":
            b.run(update(weights=w, outer=O, reduce=R, batch=B, gradients=int(rng.integers(0, 50)),
                         activations=int(rng.integers(0, 50)), lr_mult=int(rng.integers(0, 1 << 16)),
                         stochastic=stochastic))
        elif kind == "read_vectors":
            b.run(read_vectors(address=int(rng.integers(0, 200)), count=int(rng.integers(0, 5))))
        elif kind == "read_weights":
            b.run(read_weights(spec, address=int(rng.integers(0, tiles - 3)), count=int(rng.integers(1, 3))))
        else:
            xb, hb, T = int(rng.integers(1, 3)), 1, int(rng.integers(1, 4))
            R, O = xb + hb, 4 * hb
            base = 130
            words = (T + 1) * B * R
            b.run(load_vectors(address=base, count=words), data=list(rng.integers(-(1 << f), 1 << f, (words, n))))
            b.run(lstm(x_blocks=xb, hidden_blocks=hb, batch=B, steps=T, vectors=base,
                       biases=int(rng.integers(60, 120)) if rng.integers(0, 2) else None, emit=bool(rng.integers(0, 3)),
                       zero_state=bool(rng.integers(0, 2))),
                  weights=list(rng.integers(-(1 << f), 1 << f, (T * O * R, n, n)) // 2))
    b.run(read_weights(spec, address=0, count=4))        # every program ends by showing some weights
    return b.program()
