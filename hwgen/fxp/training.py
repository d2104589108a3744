"""SGD training of a multilayer perceptron on the fixed-point engine, and the fixed-point-training experiment.

One SGD step on a mini-batch is one sequence of engine commands (`FixedPointMLP.step`):

1. ``load_vectors`` the inputs (each with a constant 1 appended: the first layer's bias is a weight column);
2. ``forward`` layer by layer (ReLU on hidden layers, stored for the backward pass); the last layer's outputs go
   to ``out``;
3. the host turns them into the loss gradient ``(softmax(z) - onehot(y)) / B`` (cross-entropy, the batch mean),
   rounded to the nearest 16-bit word, and loads it (``load_vectors``, after those beats);
4. from the last layer down: ``backward`` (``W^T g`` from the same stored tiles, masked by the ReLU of the
   layer's input) and ``update`` (``W -= lr * g a^T`` summed over the batch).

Every value the engine stores is a 16-bit word with ``frac_bits`` fractional bits; each rounding point (layer
outputs, gradients, the update) rounds to nearest or stochastically (`hwgen.fixed`), as the step's ``rounding``
says. The NumPy model of the step *is* the golden model (`FxpMachine` running the same commands), so the
experiment below and the RTL runs share one definition of the arithmetic.

`train_digits` reproduces the known result of fixed-point training (Gupta et al., ICML 2015): with 16-bit words
and 14 fractional bits, rounding to nearest stalls (updates smaller than half an LSB round away) while stochastic
rounding tracks float32 - on scikit-learn's bundled digits, with an MLP 64-32-10.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import BufferOverflowError, DataError
from ..fixed import from_fixed, to_fixed
from .commands import backward, forward, load_vectors, load_weights, read_weights, update
from .machine import FxpMachine
from .spec import LR_FRAC, FxpSpec

__all__ = ["FixedPointMLP", "FloatMLP", "MachineRunner", "init_weights", "loss_gradient", "digits_data",
           "train_digits", "TrainingCurve"]


def init_weights(sizes, seed):
    """Float weights per layer (``d_out x (d_in)``), uniform Glorot; the first layer's last column multiplies the
    constant-1 input (its bias), zero."""
    rng = np.random.default_rng(seed)
    weights = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6.0 / (d_in + d_out))
        weights.append(rng.uniform(-limit, limit, (d_out, d_in)))
    weights[0][:, -1] = 0.0
    return weights


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def loss_gradient(z, labels, frac, logit_scale=1.0):
    """The host's step: the last layer's 16-bit outputs ``z`` (``B x M`` words), read as logits
    ``logit_scale * z`` -> the 16-bit gradient of the mean cross-entropy with respect to ``z``."""
    p = softmax(logit_scale * from_fixed(z, frac))
    p[np.arange(len(labels)), labels] -= 1.0
    return to_fixed(logit_scale * p / len(labels), frac)


class MachineRunner:
    """Runs commands on the golden model only (no program is recorded): what the experiment uses."""

    def __init__(self, spec):
        self.spec, self.machine = spec, FxpMachine(spec)
        self.beats = []

    def run(self, command, *, data=(), weights=(), after_beats=0):
        out = self.machine.execute(command, data=data, weights=weights)
        self.beats += out
        return out


def _blocks(d, n):
    return -(-d // n)


@dataclass
class FixedPointMLP:
    """An MLP ``sizes[0] -> ... -> sizes[-1]`` (``sizes[0]`` counts the constant-1 input) laid out in the engine's
    memories for mini-batches of ``batch``: layer ``l``'s tiles from ``weight_base[l]``; per layer its activations
    (``acts[l]``, ``acts[0]`` the input) and gradients (``grads[l]``), ``batch`` x its words each."""
    spec: FxpSpec
    sizes: tuple
    batch: int
    logit_scale: float = 1.0      # the host reads the last layer's outputs z as logits logit_scale * z
    weight_base: list = field(init=False)
    acts: list = field(init=False)
    grads: list = field(init=False)

    def __post_init__(self):
        n = self.spec.size
        self.blocks = [_blocks(d, n) for d in self.sizes]
        self.weight_base, base = [], 0
        for o, r in zip(self.blocks[1:], self.blocks[:-1]):
            self.weight_base.append(base)
            base += o * r
        if base > self.spec.weight_words:
            raise BufferOverflowError(f"the MLP's {base} tiles do not fit weight_words={self.spec.weight_words}")
        self.acts, self.grads, at = [], [], 0
        for words in self.blocks:
            self.acts.append(at)
            at += self.batch * words
        for words in self.blocks:
            self.grads.append(at)
            at += self.batch * words
        if at > self.spec.vector_words:
            raise BufferOverflowError(f"batch {self.batch} of the MLP needs {at} vector words, not {self.spec.vector_words}")

    # Packing --------------------------------------------------------------------------------------------------

    def tiles(self, weights):
        """Per layer, its float weights -> 16-bit tiles in the engine's order (``o*R + r``)."""
        n, f = self.spec.size, self.spec.frac_bits
        out = []
        for w, o, r in zip(weights, self.blocks[1:], self.blocks[:-1]):
            padded = np.zeros((o * n, r * n), dtype=np.int64)
            padded[:w.shape[0], :w.shape[1]] = to_fixed(w, f)
            out.append(padded.reshape(o, n, r, n).transpose(0, 2, 1, 3).reshape(o * r, n, n))
        return out

    def unpack(self, tiles, layer):
        """Tiles of one layer (``o*R + r`` order) -> its 16-bit weight matrix (padding cut off)."""
        n = self.spec.size
        o, r = self.blocks[layer + 1], self.blocks[layer]
        full = np.asarray(tiles).reshape(o, r, n, n).transpose(0, 2, 1, 3).reshape(o * n, r * n)
        return full[:self.sizes[layer + 1], :self.sizes[layer]]

    def vectors(self, x):
        """Inputs (``B x (sizes[0] - 1)`` floats) -> the words of their vectors, the constant 1 appended."""
        n, f = self.spec.size, self.spec.frac_bits
        full = np.zeros((len(x), self.blocks[0] * n), dtype=np.int64)
        full[:, :self.sizes[0] - 1] = to_fixed(x, f)
        full[:, self.sizes[0] - 1] = 1 << f
        return list(full.reshape(-1, n))

    def logits(self, beats):
        """The last layer's out beats (production order: word o, then sample b) -> ``B x M`` words."""
        n, o = self.spec.size, self.blocks[-1]
        z = np.asarray(beats, dtype=np.int64).reshape(o, self.batch, n).transpose(1, 0, 2).reshape(self.batch, -1)
        return z[:, :self.sizes[-1]]

    def gradient_words(self, g):
        n = self.spec.size
        full = np.zeros((self.batch, self.blocks[-1] * n), dtype=np.int64)
        full[:, :g.shape[1]] = g
        return list(full.reshape(-1, n))

    # Programs -----------------------------------------------------------------------------------------------

    def load(self, runner, weights):
        """Load the float weights (rounded to nearest words) into the engine."""
        for tiles, base in zip(self.tiles(weights), self.weight_base):
            runner.run(load_weights(address=base, count=len(tiles)), weights=list(tiles))

    def step(self, runner, x, labels, *, lr_mult, rounding="nearest", read_back=False):
        """One SGD step on a mini-batch (``x``: ``B x (sizes[0] - 1)`` floats in range): the commands of the
        module docstring. Returns the 16-bit logits of the forward pass. ``read_back``: end with a
        ``read_weights`` of every layer (the RTL tests compare the weights after each step)."""
        if len(x) != self.batch:
            raise DataError(f"a step takes a batch of {self.batch}, not {len(x)}")
        stochastic = rounding == "stochastic"
        B, blocks, L = self.batch, self.blocks, len(self.sizes) - 1
        runner.run(load_vectors(address=self.acts[0], count=B * blocks[0]), data=self.vectors(x))
        for layer in range(L):
            last = layer == L - 1
            out = runner.run(forward(weights=self.weight_base[layer], outer=blocks[layer + 1], reduce=blocks[layer],
                                     batch=B, inputs=self.acts[layer], outputs=self.acts[layer + 1],
                                     relu=not last, emit=last, store=not last, stochastic=stochastic))
        z = self.logits(out)
        g = loss_gradient(z, labels, self.spec.frac_bits, self.logit_scale)
        runner.run(load_vectors(address=self.grads[L], count=B * blocks[L]), data=self.gradient_words(g),
                   after_beats=len(runner.beats))
        for layer in reversed(range(L)):
            if layer:
                runner.run(backward(weights=self.weight_base[layer], outer=blocks[layer], reduce=blocks[layer + 1],
                                    batch=B, gradients=self.grads[layer + 1], outputs=self.grads[layer],
                                    mask=self.acts[layer], stochastic=stochastic))
            runner.run(update(weights=self.weight_base[layer], outer=blocks[layer + 1], reduce=blocks[layer],
                              batch=B, gradients=self.grads[layer + 1], activations=self.acts[layer],
                              lr_mult=lr_mult, stochastic=stochastic))
        if read_back:
            for layer in range(L):
                o, r = blocks[layer + 1], blocks[layer]
                runner.run(read_weights(self.spec, address=self.weight_base[layer], count=o * r))
        return z

    def weights(self, machine):
        """The 16-bit weight matrices now in the golden model's memory."""
        return [self.unpack(machine.weights[base:base + o * r], layer)
                for layer, (base, o, r) in enumerate(zip(self.weight_base, self.blocks[1:], self.blocks[:-1]))]

    def predict(self, machine, x):
        """Forward pass in the engine's arithmetic (nearest rounding) on the golden model's weights, any batch."""
        f = self.spec.frac_bits
        a = np.concatenate([to_fixed(x, f), np.full((len(x), 1), 1 << f)], axis=1)
        ws = self.weights(machine)
        for layer, w in enumerate(ws):
            acc = a @ w.T
            a = np.clip((acc + (1 << (f - 1))) >> f, -(1 << 15), (1 << 15) - 1)
            if layer < len(ws) - 1:
                a = np.maximum(a, 0)
        return a


class FloatMLP:
    """The same MLP and SGD in float32: the baseline."""

    def __init__(self, weights, logit_scale=1.0):
        self.weights = [np.asarray(w, dtype=np.float32).copy() for w in weights]
        self.logit_scale = np.float32(logit_scale)

    def forward(self, x):
        a = [np.concatenate([x, np.ones((len(x), 1))], axis=1).astype(np.float32)]
        for layer, w in enumerate(self.weights):
            z = a[-1] @ w.T
            a.append(np.maximum(z, 0) if layer < len(self.weights) - 1 else z)
        return a

    def step(self, x, labels, lr):
        a = self.forward(x)
        p = softmax(self.logit_scale * a[-1])
        p[np.arange(len(labels)), labels] -= 1.0
        g = (self.logit_scale * p / len(labels)).astype(np.float32)
        for layer in reversed(range(len(self.weights))):
            grad_w = g.T @ a[layer]
            if layer:
                g = (g @ self.weights[layer]) * (a[layer] > 0)
            self.weights[layer] -= np.float32(lr) * grad_w
        return a[-1]

    def predict(self, x):
        return self.forward(x)[-1]


def digits_data(split_seed=0):
    """scikit-learn's digits, 8x8 pixels scaled to [0, 1] and flattened: (x_train, y_train, x_test, y_test), the
    fixed stratified split of `hwgen.examples.digits` (1,438 training and 359 held-out images)."""
    from ..examples.digits import load_digits_split
    x_train, y_train, x_test, y_test = load_digits_split(size=8, split_seed=split_seed)
    return (x_train.reshape(len(x_train), -1).astype(np.float64), y_train,
            x_test.reshape(len(x_test), -1).astype(np.float64), y_test)


@dataclass
class TrainingCurve:
    label: str
    rounding: str          # "float", "nearest" or "stochastic"
    frac_bits: int         # None for float
    train_error: list      # per epoch, after it (fraction misclassified)
    test_error: list
    train_loss: list       # mean cross-entropy during the epoch
    changed: list = field(default_factory=list)   # per epoch: mean fraction of the weights a step changes


def _error(logits, labels):
    return float(np.mean(np.argmax(logits, axis=1) != labels))


def _cross_entropy(logits, labels):
    z = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))


def train_digits(*, rounding, frac_bits=14, hidden=32, epochs=30, batch=10, lr=0.1, input_scale=0.25,
                 logit_scale=8.0, size=8, seed=0, lfsr_seed=1, data=None):
    """Train the digits MLP ``64 -> hidden -> 10`` with SGD; ``rounding``: ``"float"`` (float32 baseline),
    ``"nearest"`` or ``"stochastic"`` (the engine's fixed-point arithmetic with ``frac_bits`` fractional bits).
    Same initial weights, same mini-batches in the same order for every setting. Returns a `TrainingCurve`."""
    x_train, y_train, x_test, y_test = data if data is not None else digits_data()
    x_train, x_test = x_train * input_scale, x_test * input_scale
    sizes = (x_train.shape[1] + 1, hidden, 10)
    init = init_weights(sizes, seed)
    order_rng = np.random.default_rng(seed + 1)
    steps = len(x_train) // batch
    curve = TrainingCurve(label="", rounding=rounding, frac_bits=None if rounding == "float" else frac_bits,
                          train_error=[], test_error=[], train_loss=[])
    if rounding == "float":
        model = FloatMLP(init, logit_scale)
        curve.label = "float32"
    else:
        blocks = [-(-d // size) for d in sizes]
        spec = FxpSpec(size=size, frac_bits=frac_bits, training=True, stochastic=True, seed=lfsr_seed,
                       max_batch=batch, vector_words=2 * batch * sum(blocks),
                       weight_words=sum(o * r for o, r in zip(blocks[1:], blocks[:-1])))
        mlp = FixedPointMLP(spec, sizes, batch, logit_scale)
        runner = MachineRunner(spec)
        mlp.load(runner, init)
        lr_mult = int(round(lr * (1 << LR_FRAC)))
        curve.label = f"{rounding}, Q{15 - frac_bits}.{frac_bits}"
    def current():
        return model.weights if rounding == "float" else mlp.weights(runner.machine)

    for _ in range(epochs):
        order = order_rng.permutation(len(x_train))
        losses, changed = [], []
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            before = [w.copy() for w in current()]
            if rounding == "float":
                z = model.step(x_train[idx], y_train[idx], lr)
            else:
                z = from_fixed(mlp.step(runner, x_train[idx], y_train[idx], lr_mult=lr_mult, rounding=rounding),
                               frac_bits)
                runner.beats.clear()
            after = current()
            changed.append(sum(int(np.count_nonzero(a != b)) for a, b in zip(after, before))
                           / sum(w.size for w in after))
            losses.append(_cross_entropy(logit_scale * z, y_train[idx]))
        curve.changed.append(float(np.mean(changed)))
        if rounding == "float":
            train_logits, test_logits = model.predict(x_train), model.predict(x_test)
        else:
            train_logits, test_logits = mlp.predict(runner.machine, x_train), mlp.predict(runner.machine, x_test)
        curve.train_error.append(_error(train_logits, y_train))
        curve.test_error.append(_error(test_logits, y_test))
        curve.train_loss.append(float(np.mean(losses)))
    return curve
