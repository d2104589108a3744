"""LeNet-5 on scikit-learn's bundled handwritten digits: train (PyTorch), export (ONNX), quantize (hwgen), compare.

``python -m hwgen.examples.digits`` trains a LeNet-5-style CNN on the 1,797 8x8 images of
``sklearn.datasets.load_digits`` (no download: the data ships with scikit-learn), upscaled to LeNet's 28x28,
deterministically in a few seconds on one CPU thread; quantizes it with hwgen's post-training quantization
calibrated on the training images; and prints the float and int8 NumPy-network accuracy on the held-out split,
side by side. ``--onnxruntime`` adds the independent oracle: the same float model quantized by
``onnxruntime.quantization.quantize_static`` (QDQ, per channel) and run by onnxruntime, against hwgen's integer
network imported from that QDQ model (`hwgen.compiler.oracle`).

The network: conv 1->6 5x5 pad 2, ReLU, maxpool 2; conv 6->16 5x5, ReLU, maxpool 2; FC 400->120, ReLU;
FC 120->84, ReLU; FC 84->10.

Data: pixel values 0..16 scaled to [0, 1], each image upscaled 8x8 -> 28x28 by bilinear interpolation with
half-pixel centers (``torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False)``), computed in
NumPy. The split is fixed: per class, a seeded permutation (``numpy.random.default_rng(split_seed)``) puts
``round(test_fraction * n_class)`` images in the held-out set (360 of 1,797 with the defaults).
"""

import argparse
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["load_digits_split", "upscale", "lenet5", "train_lenet_digits", "accuracy", "float_predict",
           "export_onnx", "quantize_digits", "run_digits", "DigitsRun", "main"]

IMAGE_SIZE = 28


def _interpolation_matrix(n_in, n_out):
    """``[n_out, n_in]`` bilinear weights with half-pixel centers (PyTorch ``align_corners=False``)."""
    matrix = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        matrix[i, lo] += 1.0 - frac
        matrix[i, hi] += frac
    return matrix


def upscale(images, size=IMAGE_SIZE):
    """``[N, h, w]`` -> ``[N, size, size]`` float32, bilinear (half-pixel centers)."""
    images = np.asarray(images, dtype=np.float64)
    rows = _interpolation_matrix(images.shape[1], size)
    cols = _interpolation_matrix(images.shape[2], size)
    return np.einsum("ih,nhw,jw->nij", rows, images, cols).astype(np.float32)


def load_digits_split(*, test_fraction=0.2, split_seed=0, size=IMAGE_SIZE):
    """``(x_train, y_train, x_test, y_test)``: images ``[N, 1, size, size]`` float32 in [0, 1], labels int64.

    A fixed stratified split (see the module docstring); the same arguments give the same split everywhere.
    """
    from sklearn.datasets import load_digits
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction!r}")
    digits = load_digits()
    images = upscale(digits.images / 16.0, size)[:, None]
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen = rng.permutation(members)[:int(round(test_fraction * len(members)))]
        test[chosen] = True
    return images[~test], labels[~test], images[test], labels[test]


def lenet5(num_classes=10):
    """The LeNet-5-style CNN (named layers: the ONNX nodes are /conv1/Conv, /pool1/MaxPool, /fc1/Gemm, ...)."""
    import torch.nn as nn
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 6, 5, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 16, 5)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(400, 120)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(120, 84)), ("relu4", nn.ReLU()),
        ("fc3", nn.Linear(84, num_classes)),
    ]))


def train_lenet_digits(*, seed=0, epochs=15, batch_size=32, lr=3e-3, split=None):
    """Train `lenet5` on the training split; returns the module in eval mode.

    Deterministic: ``torch.manual_seed(seed)`` for the initial weights, a seeded ``torch.Generator`` for the
    batch order, ``torch.use_deterministic_algorithms(True)`` and one thread (all restored afterwards), so the
    same arguments give the same weights bit for bit on the same machine and torch build. Adam, cross-entropy.
    ``split`` is a `load_digits_split` tuple (default: the default split).
    """
    import torch
    for what, value in (("seed", seed), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if what == "seed" else 1):
            raise ValueError(f"{what} must be a {'non-negative' if what == 'seed' else 'positive'} integer, "
                             f"not {value!r}")
    x_train, y_train, _, _ = split if split is not None else load_digits_split()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = lenet5()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        x = torch.from_numpy(np.ascontiguousarray(x_train))
        y = torch.from_numpy(y_train)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                optimizer.zero_grad()
                loss_fn(model(x[batch]), y[batch]).backward()
                optimizer.step()
        model.eval()
        return model
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def float_predict(model, x):
    """Top-1 of the PyTorch model on float images ``[N, 1, 28, 28]``."""
    import torch
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).argmax(dim=1).numpy()


def accuracy(predictions, labels):
    """Fraction of ``predictions`` equal to ``labels``."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return float(np.mean(predictions == labels)) if len(labels) else float("nan")


def export_onnx(model, *, exporter="torchscript"):
    """The trained model as an ``onnx.ModelProto`` (symbolic batch; input ``input``, output ``output``); save it
    with ``onnx.save(proto, "digits.onnx")``."""
    from ..compiler import to_onnx
    return to_onnx(model, np.zeros((1, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32), exporter=exporter)


def quantize_digits(onnx_model, x_calibration, **options):
    """Import the exported model and quantize it with hwgen's PTQ, calibrated on ``x_calibration``."""
    from ..compiler import import_onnx, quantize
    return quantize(import_onnx(onnx_model, name="lenet_digits"), x_calibration, **options)


@dataclass(kw_only=True)
class DigitsRun:
    """Everything `run_digits` made: the split, the trained module, its ONNX export, hwgen's quantized network,
    the held-out predictions and accuracies, and (with ``onnxruntime=True``) the QDQ model, the network imported
    from it and its `Agreement` with onnxruntime."""
    split: tuple
    model: object
    onnx_model: object
    network: object
    float_predictions: np.ndarray
    int8_predictions: np.ndarray
    train_seconds: float
    options: dict
    qdq_model: object = None
    qdq_network: object = None
    agreement: object = None
    fc_bits: int = 8                  # the FC layers' weight width in `fc_network` (4 or 2; 8: none made)
    fc_network: object = None
    fc_predictions: np.ndarray = None
    float_builds: dict = None          # precision ("bf16"/"fp16") -> the `Build` (cast network, program)
    cast_predictions: dict = None      # precision -> held-out top-1 of its bit-exact reference

    @property
    def labels(self):
        return self.split[3]

    @property
    def float_accuracy(self):
        return accuracy(self.float_predictions, self.labels)

    @property
    def int8_accuracy(self):
        return accuracy(self.int8_predictions, self.labels)

    def report(self):
        """The accuracy table (and the onnxruntime agreement) as text."""
        y, n = self.labels, len(self.labels)
        o = self.options
        rows = [("float (PyTorch)", self.float_predictions),
                (f"int8 hwgen network ({o['activations']}, {o['method']})", self.int8_predictions)]
        if self.fc_network is not None:
            rows.append((f"hwgen network, int{self.fc_bits} weights on the FC layers", self.fc_predictions))
        for fmt, pred in (self.cast_predictions or {}).items():
            rows.append((f"{fmt} hwgen network (fp32 accumulation, the hardware's order)", pred))
        if self.agreement is not None:
            rows += [("int8 onnxruntime QDQ", self.agreement.ort_predictions),
                     ("int8 hwgen network from the QDQ model", self.agreement.hwgen_predictions)]
        width = max(len(label) for label, _ in rows)
        lines = [f"digits: {len(self.split[1])} training / {n} held-out images, LeNet-5 trained in "
                 f"{self.train_seconds:.1f} s (seed {o['seed']}, {o['epochs']} epochs)"]
        for label, pred in rows:
            right = int(np.sum(pred == y))
            lines.append(f"{label:<{width}}  {right:4d}/{n}  {100 * right / n:6.2f} %")
        lines.append(f"float vs int8 hwgen: top-1 agrees on "
                     f"{int(np.sum(self.float_predictions == self.int8_predictions))}/{n} images")
        if self.agreement is not None:
            lines.append(str(self.agreement))
        return "\n".join(lines)


def run_digits(*, seed=0, epochs=15, activations="symmetric", method="minmax", percentile=99.99,
               onnxruntime=False, fc_bits=8, precisions=()):
    """Train, export, quantize (calibrated on the training images) and predict the held-out split -> `DigitsRun`.

    ``onnxruntime=True`` also quantizes the exported model with onnxruntime (QDQ, uint8 activations, per-channel
    weights, calibrated on every 4th training image) and compares hwgen's network imported from it with
    onnxruntime on every held-out image. ``fc_bits=4`` (or 2) also quantizes the fully connected layers' weights
    to int4 (int2) (``weight_bits={"linear": fc_bits}``; the convolutions stay int8) and predicts with that
    network.
    ``precisions`` (``"bf16"``, ``"fp16"``): also cast the float model to each (`hwgen.compiler.cast`), compile it
    for an 8x8 float accelerator and predict with the program's bit-exact float reference (slow: about 0.4 s an
    image).
    """
    split = load_digits_split()
    x_train, _, x_test, _ = split
    started = time.perf_counter()
    model = train_lenet_digits(seed=seed, epochs=epochs, split=split)
    train_seconds = time.perf_counter() - started
    proto = export_onnx(model)
    network = quantize_digits(proto, x_train, activations=activations, method=method, percentile=percentile)
    result = DigitsRun(split=split, model=model, onnx_model=proto, network=network,
                       float_predictions=float_predict(model, x_test), int8_predictions=network.predict(x_test),
                       train_seconds=train_seconds,
                       options={"seed": seed, "epochs": epochs, "activations": activations, "method": method,
                                "percentile": percentile})
    if fc_bits != 8:
        result.fc_bits = fc_bits
        result.fc_network = quantize_digits(proto, x_train, activations=activations, method=method,
                                            percentile=percentile, weight_bits={"linear": fc_bits})
        result.fc_predictions = result.fc_network.predict(x_test)
    if precisions:
        from ..compiler.build import BuildConfig, build
        result.float_builds, result.cast_predictions = {}, {}
        for fmt in precisions:
            b = build(BuildConfig(model=proto, name="lenet_digits", precision=fmt, stop_after="schedule"))
            result.float_builds[fmt] = b
            result.cast_predictions[fmt] = b.predict(x_test)
    if onnxruntime:
        from ..compiler import import_onnx
        from ..compiler.oracle import compare_with_onnxruntime, quantize_static_qdq
        result.qdq_model = quantize_static_qdq(proto, x_train[::4])
        result.qdq_network = import_onnx(result.qdq_model, name="lenet_digits_qdq")
        result.agreement = compare_with_onnxruntime(result.qdq_network, result.qdq_model, x_test)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hwgen.examples.digits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--activations", choices=("symmetric", "asymmetric"), default="symmetric")
    parser.add_argument("--method", choices=("minmax", "percentile"), default="minmax")
    parser.add_argument("--percentile", type=float, default=99.99)
    parser.add_argument("--onnxruntime", action="store_true",
                        help="also quantize with onnxruntime (QDQ) and compare hwgen's network imported from it")
    fc = parser.add_mutually_exclusive_group()
    fc.add_argument("--int4-fc", dest="fc_bits", action="store_const", const=4, default=8,
                    help="also quantize the fully connected layers' weights to int4 and report that accuracy")
    fc.add_argument("--int2-fc", dest="fc_bits", action="store_const", const=2,
                    help="... to int2 ([-1, 1], least-squares scale per channel)")
    parser.add_argument("--precision", action="append", choices=("bf16", "fp16"), default=[],
                        help="also compile the float model for the bf16 (or fp16) datapath and report the bit-exact "
                             "reference's accuracy (repeat for both)")
    parser.add_argument("--save", metavar="DIR", help="save digits.onnx and the quantized network here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run_digits(seed=args.seed, epochs=args.epochs, activations=args.activations, method=args.method,
                        percentile=args.percentile, onnxruntime=args.onnxruntime, fc_bits=args.fc_bits,
                        precisions=tuple(dict.fromkeys(args.precision)))
    print(result.network)
    print(result.report())
    if args.save:
        import onnx
        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        onnx.save(result.onnx_model, str(out / "digits.onnx"))
        result.network.save(out / "quantized")
        if result.qdq_model is not None:
            onnx.save(result.qdq_model, str(out / "digits_qdq.onnx"))
        print(f"saved {out / 'digits.onnx'} and {out / 'quantized'}/")
    print(f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
