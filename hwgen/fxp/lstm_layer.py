"""LSTM layers on the fixed-point engine: packing a PyTorch ``nn.LSTM`` (one layer) for it, the program that runs
a sequence, and the comparison against float.

The format: every value - weights, biases, inputs, gates, the cell state ``c`` and the hidden state ``h`` - is a
16-bit word with ``frac_bits`` fractional bits, Q3.12 by default. Why: ``h``, the gates and ``tanh`` live in
[-1, 1], where 12 fractional bits put the rounding error (2**-13) below the sigmoid/tanh tables' own error (about
1.5e-4 and 3e-4, `hwgen.activation`); the gate pre-activations need a few units of range before sigmoid and tanh
saturate (at +-8 they are within 3.4e-4 of their limits); and ``c``, a running sum ``f*c + i*g`` with ``|i*g| <=
1``, stays within +-8 unless the forget gate holds it near 1 for many steps (it saturates there; the DeepBench
runs below reach at most a few units). A 16-bit word also keeps one multiplier width for the whole engine.

The gates are one matrix-vector product per step over ``u = [x_t, h_(t-1)]`` (``4H x (X + H)``), the rows
interleaved so that one output word carries the four gates of ``size/4`` hidden units (`pack_gates`); the weight
stream carries the whole matrix again every step, as a batch-1 RNN kernel reads it from DRAM every step.
"""

from dataclasses import dataclass

import numpy as np

from ..fixed import from_fixed, to_fixed
from .commands import load_vectors, lstm, read_vectors
from .program import ProgramBuilder
from .spec import FxpSpec

__all__ = ["LstmShape", "pack_gates", "lstm_program", "float_lstm", "torch_lstm", "deepbench_spec",
           "run_fixed_lstm"]


def _blocks(d, n):
    return -(-d // n)


@dataclass(frozen=True)
class LstmShape:
    input_size: int
    hidden: int
    batch: int
    steps: int

    def blocks(self, spec):
        """(x_blocks, hidden_blocks, R, O): words of x, of h, of u = [x, h]; gate words."""
        n = spec.size
        xb, hb = _blocks(self.input_size, n), _blocks(self.hidden, n)
        return xb, hb, xb + hb, 4 * hb

    def vector_words(self, spec):
        """Vector-memory words of a run: the input vectors of every step and the last h, then the biases."""
        xb, hb, R, O = self.blocks(spec)
        return (self.steps + 1) * self.batch * R + O

    def weight_bytes_per_step(self, spec):
        xb, hb, R, O = self.blocks(spec)
        return O * R * spec.tile_bits // 8

    def macs(self):
        return self.steps * self.batch * 4 * self.hidden * (self.input_size + self.hidden)


def pack_gates(spec, shape, w_ih, w_hh, bias):
    """PyTorch's LSTM parameters (gate order i, f, g, o; ``w_ih``: ``4H x X``, ``w_hh``: ``4H x H``, ``bias`` =
    ``b_ih + b_hh``), float -> (the 16-bit tiles of one step in stream order ``o, r``; the bias words).

    Engine row ``o*n + gate*q + k`` (``q = n/4``) is hidden unit ``o*q + k``'s ``gate``; columns: ``x`` padded to
    ``xb`` words, then ``h`` padded to ``hb`` words. Padding hidden units have zero weights and biases: their
    ``c`` and ``h`` stay 0."""
    n, f, q = spec.size, spec.frac_bits, spec.size // 4
    X, H = shape.input_size, shape.hidden
    xb, hb, R, O = shape.blocks(spec)
    full = np.zeros((O * n, R * n), dtype=np.int64)
    words = np.zeros(O * n, dtype=np.int64)
    wq_ih, wq_hh, bq = to_fixed(w_ih, f), to_fixed(w_hh, f), to_fixed(bias, f)
    for gate in range(4):
        for j in range(H):
            row = (j // q) * n + gate * q + j % q
            full[row, :X] = wq_ih[gate * H + j]
            full[row, xb * n:xb * n + H] = wq_hh[gate * H + j]
            words[row] = bq[gate * H + j]
    tiles = full.reshape(O, n, R, n).transpose(0, 2, 1, 3).reshape(O * R, n, n)
    return tiles, words.reshape(O, n)


def lstm_program(spec, shape, x, w_ih, w_hh, bias, *, h0=None, emit=True, read_back=False, builder=None):
    """The program of one sequence: load the input vectors (``x``: ``T x B x X`` floats) and the biases, run the
    LSTM command. Returns the builder (its golden model holds the result) and the vector-memory base of the
    input vectors."""
    n, f = spec.size, spec.frac_bits
    xb, hb, R, O = shape.blocks(spec)
    T, B = shape.steps, shape.batch
    b = builder or ProgramBuilder(spec)
    u = np.zeros((T + 1, B, R * n), dtype=np.int64)
    u[:T, :, :shape.input_size] = to_fixed(x, f)
    if h0 is not None:
        u[0, :, xb * n:xb * n + shape.hidden] = to_fixed(h0, f)
    tiles, bias_words = pack_gates(spec, shape, w_ih, w_hh, bias)
    base, bias_base = 0, (T + 1) * B * R
    b.run(load_vectors(address=base, count=(T + 1) * B * R), data=list(u.reshape(-1, n)))
    b.run(load_vectors(address=bias_base, count=O), data=list(bias_words))
    b.run(lstm(x_blocks=xb, hidden_blocks=hb, batch=B, steps=T, vectors=base, biases=bias_base, emit=emit,
               zero_state=h0 is None), weights=list(np.tile(tiles, (T, 1, 1))))
    if read_back:
        b.run(read_vectors(address=base + B * R, count=T * B * R))
    return b, base


def hidden_states(spec, shape, machine, base=0):
    """``T x B x H`` floats: the h the golden model wrote for every step."""
    n, f = spec.size, spec.frac_bits
    xb, hb, R, O = shape.blocks(spec)
    T, B = shape.steps, shape.batch
    words = machine.vectors[base + B * R:base + (T + 1) * B * R].reshape(T, B, R * n)
    return from_fixed(words[:, :, xb * n:xb * n + shape.hidden], f)


def run_fixed_lstm(spec, shape, x, w_ih, w_hh, bias, h0=None):
    """The fixed-point LSTM on the golden model: ``T x B x H`` floats (the engine's h, read as numbers)."""
    b, base = lstm_program(spec, shape, x, w_ih, w_hh, bias, h0=h0, emit=False)
    return hidden_states(spec, shape, b.machine, base)


def float_lstm(x, w_ih, w_hh, bias, h0=None):
    """The same LSTM in float64 NumPy (exact sigmoid and tanh)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H)) if h0 is None else np.asarray(h0, dtype=np.float64)
    c = np.zeros((B, H))
    out = []
    for t in range(T):
        z = x[t] @ w_ih.T + h @ w_hh.T + bias
        i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
        sig = lambda v: 1.0 / (1.0 + np.exp(-v))          # noqa: E731
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        out.append(h)
    return np.stack(out)


def torch_lstm(x, input_size, hidden, seed=0):
    """A PyTorch ``nn.LSTM`` (default init, seeded) run on ``x`` (``T x B x X``) in float32: (its h for every
    step, ``w_ih``, ``w_hh``, ``b_ih + b_hh`` as float64 arrays)."""
    import torch
    torch.manual_seed(seed)
    module = torch.nn.LSTM(input_size, hidden)
    with torch.no_grad():
        out, _ = module(torch.as_tensor(x, dtype=torch.float32))
    params = {name: p.detach().double().numpy() for name, p in module.named_parameters()}
    return (out.double().numpy(), params["weight_ih_l0"], params["weight_hh_l0"],
            params["bias_ih_l0"] + params["bias_hh_l0"])


def deepbench_spec(shape, *, size=8, frac_bits=12, name="fxp_lstm"):
    """An engine sized for `shape` (the vector memory holds every step's inputs; the cell memory the batch)."""
    xb, hb, R, O = shape.blocks(FxpSpec(size=size, frac_bits=frac_bits, lstm=True))
    return FxpSpec(size=size, frac_bits=frac_bits, lstm=True,
                   vector_words=shape.vector_words(FxpSpec(size=size, frac_bits=frac_bits, lstm=True)),
                   weight_words=2, max_batch=max(shape.batch, 1), max_steps=max(shape.steps, 2),
                   cell_words=shape.batch * O, name=name)
