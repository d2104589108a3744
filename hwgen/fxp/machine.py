"""The golden model of the fixed-point engine: every command's effect on the memories and on ``out``, bit for bit,
in NumPy (vectorized over whole commands; the random draws in the hardware's order).

The arithmetic is `hwgen.fixed` (one rounding shift and a saturation wherever a wide sum becomes a 16-bit word),
`hwgen.lfsr` (the draws of stochastic rounding) and `hwgen.activation` (sigmoid and tanh). Where each command
rounds:

- forward / backward: ``y = sat(round(sum + bias << f, f))`` per output lane, then ReLU (forward) or the mask
  ``a > 0`` (backward). Stochastic: output lane ``l`` draws from LFSR lane ``l``, once per output word, in the
  order the words are produced (``o`` outer, ``b`` inner).
- update: ``W = sat(W - round(T * lr_mult, f + 16))`` with ``T = sum_b g_b a_b^T`` exact; stochastic: element
  ``(l, i)`` of a tile draws from LFSR lane ``n + l*n + i``, once per tile, tiles in order ``(o, r)``.
- lstm: gate pre-activations ``z = sat(round(sum + bias << f, f))``; ``i, f, o = sigmoid(z)``, ``g = tanh(z)``
  (tables); ``c = sat(round(f*c_prev + i*g, f))``; ``h = sat(round(o*tanh(c), f))``; all nearest.
"""

import numpy as np

from ..activation import PiecewiseLinear
from ..errors import DataError, DesignTypeError, MappingError
from ..fixed import round_shift, saturate
from ..lfsr import LfsrBank
from .commands import Command
from .spec import LR_FRAC, WORD_BITS, FxpSpec

__all__ = ["FxpMachine", "pack_vector", "unpack_vector", "pack_tile", "unpack_tile", "slots"]

_MASK = (1 << WORD_BITS) - 1


def pack_vector(values):
    """``n`` 16-bit values -> one vector word (lane 0 in the least significant bits)."""
    word = 0
    for lane, v in enumerate(np.asarray(values, dtype=np.int64).tolist()):
        word |= (v & _MASK) << (lane * WORD_BITS)
    return word


def unpack_vector(word, lanes):
    raw = np.array([(int(word) >> (lane * WORD_BITS)) & _MASK for lane in range(lanes)], dtype=np.int64)
    return np.where(raw >= 1 << (WORD_BITS - 1), raw - (1 << WORD_BITS), raw)


def pack_tile(tile):
    """``n x n`` values -> one tile word: element ``(l, i)`` (row l = output lane) at lane ``l*n + i``."""
    return pack_vector(np.asarray(tile).reshape(-1))


def unpack_tile(word, n):
    return unpack_vector(word, n * n).reshape(n, n)


class FxpMachine:
    """The engine's state: the vector memory, the weight memory, the LSTM cell state and the LFSR banks."""

    def __init__(self, spec):
        if not isinstance(spec, FxpSpec):
            raise DesignTypeError(f"FxpMachine needs an FxpSpec, not {spec!r}")
        self.spec = spec
        n = spec.size
        self.vectors = np.zeros((spec.vector_words, n), dtype=np.int64)
        self.weights = np.zeros((spec.weight_words, n, n), dtype=np.int64)
        self.cells = np.zeros((spec.cell_words, max(n // 4, 1)), dtype=np.int64)
        self.out_lfsr = LfsrBank(spec.seed, n, first=0)
        self.update_lfsr = LfsrBank(spec.seed, n * n, first=n)
        if spec.lstm:
            self.sigmoid = PiecewiseLinear("sigmoid", spec.frac_bits, spec.segment_bits)
            self.tanh = PiecewiseLinear("tanh", spec.frac_bits, spec.segment_bits)

    # Running commands -------------------------------------------------------------------------------------

    def run(self, commands, *, data=(), weights=()):
        """Run `commands` in order, taking vector words (arrays of ``n`` values) from `data` and tiles (``n x n``)
        from `weights` as they need them; return the output beats (arrays of ``n`` values)."""
        data, weights = list(data), list(weights)
        out = []
        for command in commands:
            need = command.input_words()
            take_d, take_w = need.get("data_in", 0), need.get("weights", 0)
            if take_d > len(data) or take_w > len(weights):
                raise DataError(f"{command.kind}: needs {take_d} data words and {take_w} tiles, "
                                 f"{len(data)} and {len(weights)} left")
            out += self.execute(command, data=data[:take_d], weights=weights[:take_w])
            data, weights = data[take_d:], weights[take_w:]
        return out

    def execute(self, command, *, data=(), weights=()):
        if not isinstance(command, Command):
            raise DesignTypeError(f"execute needs a Command, not {command!r}")
        command.check(self.spec)
        return getattr(self, f"_{command.kind}")(command, list(data), list(weights))

    def _load_vectors(self, c, data, weights):
        words = np.asarray(data, dtype=np.int64).reshape(c.count, self.spec.size) if c.count else None
        if c.count:
            if words.min() < -(1 << 15) or words.max() >= 1 << 15:
                raise DataError("load_vectors: values must be 16-bit")
            self.vectors[c.a_base:c.a_base + c.count] = words
        return []

    def _load_weights(self, c, data, weights):
        n = self.spec.size
        if c.count:
            tiles = np.asarray(weights, dtype=np.int64).reshape(c.count, n, n)
            if tiles.min() < -(1 << 15) or tiles.max() >= 1 << 15:
                raise DataError("load_weights: values must be 16-bit")
            self.weights[c.w_base:c.w_base + c.count] = tiles
        return []

    def _read_vectors(self, c, data, weights):
        return [w.copy() for w in self.vectors[c.a_base:c.a_base + c.count]]

    def _read_weights(self, c, data, weights):
        return [row.copy() for tile in self.weights[c.w_base:c.w_base + c.count] for row in tile]

    # The grid ---------------------------------------------------------------------------------------------

    def _matrix(self, base, O, R):
        """Tiles ``base + o*R + r`` as one ``(O*n, R*n)`` matrix."""
        n = self.spec.size
        tiles = self.weights[base:base + O * R].reshape(O, R, n, n)
        return tiles.transpose(0, 2, 1, 3).reshape(O * n, R * n)

    def _words(self, base, count, per):
        """``count`` vectors of ``per`` consecutive words from ``base`` as ``(count, per*n)``."""
        n = self.spec.size
        return self.vectors[base:base + count * per].reshape(count, per * n)

    def _round_outputs(self, acc, c):
        """acc: (O, B, n) in production order -> 16-bit words, drawing for stochastic rounding."""
        f = self.spec.frac_bits
        if c.stochastic:
            draws = self.out_lfsr.draw(acc.shape[0] * acc.shape[1]).reshape(acc.shape)
            return saturate(round_shift(acc, f, "stochastic", draws))
        return saturate(round_shift(acc, f))

    def _emit_store(self, y, c):
        """y: (O, B, n). Store word o of sample b at y_base + b*O + o; emit in production order."""
        O, B = y.shape[:2]
        if c.store:
            self.vectors[c.y_base:c.y_base + B * O] = y.transpose(1, 0, 2).reshape(B * O, -1)
        return [w.copy() for w in y.reshape(O * B, -1)] if c.emit else []

    def _forward(self, c, data, weights):
        n, O, R, B = self.spec.size, c.outer, c.reduce, c.batch
        acc = self._words(c.a_base, B, R) @ self._matrix(c.w_base, O, R).T            # (B, O*n)
        if c.bias:
            acc = acc + (self.vectors[c.b_base:c.b_base + O].reshape(O * n) << self.spec.frac_bits)
        y = self._round_outputs(acc.reshape(B, O, n).transpose(1, 0, 2), c)
        if c.relu:
            y = np.maximum(y, 0)
        return self._emit_store(y, c)

    def _backward(self, c, data, weights):
        n, O, R, B = self.spec.size, c.outer, c.reduce, c.batch
        # The same tiles as the forward pass of y = W x (W: R*n x O*n), summed over their rows.
        acc = self._words(c.a_base, B, R) @ self._matrix(c.w_base, R, O)                # (B, O*n)
        y = self._round_outputs(acc.reshape(B, O, n).transpose(1, 0, 2), c)
        if c.mask:
            active = self._words(c.b_base, B, O).reshape(B, O, n).transpose(1, 0, 2) > 0
            y = np.where(active, y, 0)
        return self._emit_store(y, c)

    def _update(self, c, data, weights):
        spec = self.spec
        n, O, R, B = spec.size, c.outer, c.reduce, c.batch
        g = self._words(c.a_base, B, O)                   # (B, O*n)
        a = self._words(c.b_base, B, R)                   # (B, R*n)
        total = g.T @ a                                   # (O*n, R*n), exact
        tiles = total.reshape(O, n, R, n).transpose(0, 2, 1, 3).reshape(O * R, n, n) * c.lr_mult
        shift = spec.frac_bits + LR_FRAC
        if c.stochastic:
            draws = self.update_lfsr.draw(O * R).reshape(O * R, n, n)
            step = round_shift(tiles, shift, "stochastic", draws)
        else:
            step = round_shift(tiles, shift)
        old = self.weights[c.w_base:c.w_base + O * R]
        self.weights[c.w_base:c.w_base + O * R] = saturate(old - step)
        return []

    def _lstm(self, c, data, weights):
        spec = self.spec
        n, q, f = spec.size, spec.size // 4, spec.frac_bits
        O, R, B, T, xb = c.outer, c.reduce, c.batch, c.steps, c.x_blocks
        stream = np.asarray(weights, dtype=np.int64).reshape(T, O, R, n, n)
        bias = (self.vectors[c.b_base:c.b_base + O].reshape(O * n) << f) if c.bias else 0
        out = []
        for t in range(T):
            u = self._words(c.a_base + t * B * R, B, R).copy()                         # (B, R*n)
            if t == 0 and c.zero_state:
                u[:, xb * n:] = 0
            W = stream[t].transpose(0, 2, 1, 3).reshape(O * n, R * n)
            z = saturate(round_shift(u @ W.T + bias, f)).reshape(B, O, n)
            i, fg, g, og = (z[..., k * q:(k + 1) * q] for k in range(4))
            i, fg, g, og = self.sigmoid(i), self.sigmoid(fg), self.tanh(g), self.sigmoid(og)
            cells = self.cells[:B * O].reshape(B, O, q)
            prev = np.zeros_like(cells) if (t == 0 and c.zero_state) else cells
            cell = saturate(round_shift(fg * prev + i * g, f))
            self.cells[:B * O] = cell.reshape(B * O, q)
            h = saturate(round_shift(og * self.tanh(cell), f))                           # (B, O, q)
            nxt = c.a_base + (t + 1) * B * R
            words = self.vectors[nxt:nxt + B * R].reshape(B, R, n)
            words[:, xb:, :] = h.reshape(B, O // 4, n)                                  # o = 4*word + group
            if c.emit:
                for o in range(O):
                    for b in range(B):
                        beat = np.zeros(n, dtype=np.int64)
                        beat[(o % 4) * q:(o % 4 + 1) * q] = h[b, o]
                        out.append(beat)
        return out


def slots(spec, command):
    """Every issue slot of a command that runs on the grid, in order: the reference the hardware sequencer
    (`hwgen.hw.fxp_sequencer`) is tested against. Loops ``t, o, r, b``."""
    c = command.check(spec)
    O, R, B, T = c.outer, c.reduce, c.batch, c.steps
    if c.kind == "read_vectors":
        O, R, B, T = c.count, 1, 1, 1
    elif c.kind == "read_weights":
        O, R, B, T = c.count, spec.size, 1, 1
    elif c.kind not in ("forward", "backward", "update", "lstm"):
        raise MappingError(f"{c.kind} does not run on the grid")
    for t in range(T):
        for o in range(O):
            for r in range(R):
                for b in range(B):
                    slot = dict(t=t, o=o, r=r, b=b, first=r == 0, last=r == R - 1, first_b=b == 0,
                                last_b=b == B - 1, w_addr=0, a_addr=0, b_addr=0, y_addr=0, c_addr=b * O + o,
                                pop=False, zero_a=False, zero_c=False)
                    if c.kind == "read_vectors":
                        slot.update(a_addr=c.a_base + o)
                    elif c.kind == "read_weights":
                        slot.update(w_addr=c.w_base + o)
                    elif c.kind == "forward":
                        slot.update(w_addr=c.w_base + o * R + r, a_addr=c.a_base + b * R + r, b_addr=c.b_base + o,
                                    y_addr=c.y_base + b * O + o)
                    elif c.kind == "backward":
                        slot.update(w_addr=c.w_base + r * O + o, a_addr=c.a_base + b * R + r,
                                    b_addr=c.b_base + b * O + o, y_addr=c.y_base + b * O + o)
                    elif c.kind == "update":
                        slot.update(w_addr=c.w_base + o * R + r, a_addr=c.a_base + b * O + o,
                                    b_addr=c.b_base + b * R + r)
                    else:
                        base = c.a_base + t * c.step_words
                        slot.update(a_addr=base + b * R + r, b_addr=c.b_base + o,
                                    y_addr=base + c.step_words + b * R + c.x_blocks + o // 4, pop=b == 0,
                                    zero_a=c.zero_state and t == 0 and r >= c.x_blocks,
                                    zero_c=c.zero_state and t == 0)
                    yield slot
