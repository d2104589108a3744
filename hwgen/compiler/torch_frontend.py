"""The PyTorch front end: a live ``torch.nn.Module`` -> ONNX (in memory) -> `import_onnx`.

A user never writes layer shapes: the module is traced on an example input and exported with
``torch.onnx.export``. Two exporters, picked with ``exporter=``:

* ``"torchscript"`` (default): torch's TorchScript-based exporter (``dynamo=False``). In torch 2.13 it is
  deprecated but present, needs nothing beyond torch, and exports LeNet in ~0.1 s; it writes Conv, Relu,
  MaxPool, Flatten and Gemm nodes, all of which hwgen imports.
* ``"dynamo"``: the ``torch.export``-based exporter, torch's default since 2.9. It needs the ``onnxscript``
  package (in the ``torch`` extra) and takes ~4 s for LeNet; it writes Reshape instead of Flatten.

Both give the same float network (tests check it). Nothing is pickled: the model goes through the Python API
only; a model file on disk must be ONNX (`import_onnx`).
"""

import io
import warnings

import numpy as np

from .onnx_import import import_onnx

__all__ = ["to_onnx", "from_torch", "EXPORTERS"]

EXPORTERS = ("torchscript", "dynamo")
OPSET = 17


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("the PyTorch front end needs torch: pip install 'hwgen[torch]'") from None
    return torch


def to_onnx(module, example_input, *, exporter="torchscript", input_name="input", output_name="output",
            opset=OPSET):
    """Export ``module`` (evaluated on ``example_input``, a tensor or array ``[1, ...]``) to an
    ``onnx.ModelProto`` in memory, with a symbolic batch axis. ``module`` is put in eval mode for the export
    and its mode restored afterwards. Save the result with ``onnx.save(model, path)``.
    """
    torch = _torch()
    import onnx
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"to_onnx takes a torch.nn.Module, not {type(module).__name__}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, not {exporter!r}")
    x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(np.asarray(example_input))
    if not x.is_floating_point():
        raise TypeError(f"example_input must be a float tensor, not {x.dtype}")
    if x.ndim < 2 or x.shape[0] != 1:
        raise ValueError(f"example_input must be one sample with a leading batch axis of 1, e.g. [1, C, H, W], "
                         f"not shape {tuple(x.shape)}")
    x = x.to(torch.float32)
    training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                buffer = io.BytesIO()
                torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=opset,
                                  input_names=[input_name], output_names=[output_name],
                                  dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
                return onnx.load_from_string(buffer.getvalue())
            try:
                import onnxscript  # noqa: F401
            except ImportError:
                raise ImportError("exporter='dynamo' needs the onnxscript package: pip install 'hwgen[torch]' "
                                  "(or use exporter='torchscript')") from None
            batch = torch.export.Dim("batch", min=1)
            program = torch.onnx.export(module, (x,), dynamo=True, opset_version=max(opset, 18),
                                        input_names=[input_name], output_names=[output_name],
                                        dynamic_shapes=({0: batch},), verbose=False)
            return program.model_proto
    finally:
        module.train(training)


def from_torch(module, example_input, *, exporter="torchscript", name=None):
    """Import a live ``torch.nn.Module``: `to_onnx` then `import_onnx` -> a `FloatNetwork`.

    ``example_input`` is one sample ``[1, *input_shape]``; the network then takes ``[N, *input_shape]``.
    """
    model = to_onnx(module, example_input, exporter=exporter)
    return import_onnx(model, name=name or type(module).__name__.lower())
