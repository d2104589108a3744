"""The network compiler: a trained model in, a program for one generated accelerator out.

A list of named steps, each leaving an intermediate a user can print (``str()``) and save:

* **import** (`import_onnx`, `from_torch`): an ONNX model or a live ``torch.nn.Module`` -> a `FloatNetwork`
  (or, for a QDQ model, directly a `QuantizedNetwork` with the model's own scales and zero points);
* **quantize** (`quantize`): a `FloatNetwork` and calibration data -> a `QuantizedNetwork`, the integer
  reference network (`QuantizedNetwork.forward_int`), defined only by `hwgen.reference.conv2d` and
  `hwgen.postops.apply`; or, for the float datapath (``precision="bf16"``/``"fp16"``), **cast** (`cast`): a
  `FloatNetwork` -> a `CastNetwork` (weights rounded to bf16/fp16, biases to fp32; no calibration), whose
  reference is the program's bit-exact float one (`Program.float_reference`);
* **map**, **tile**, **schedule** (`hwgen.compiler.program`): each layer on its engine, cut into commands,
  linked into one program (layers chained on chip where they can be), with the exact cycle model of the run;
* **emit**: the design file, the program, the Verilog and a report.

The model front end needs the optional extras ``onnx`` (onnx, onnxruntime) and ``torch``; the IR, the
quantizer, the integer network and the back end need only NumPy.
"""

from .cast import CastLayer, CastNetwork, cast
from .graph import FloatLayer, FloatNetwork
from .network import QLayer, QuantizedNetwork, quantize_tensor
from .onnx_import import SUPPORTED_OPS, import_onnx, is_qdq
from .program import IntLayer, Program, ProgramLayer, compile_program, reference_network
from .quantize import activation_qparams, calibrate_range, quantize, quantize_bias, quantize_weights

__all__ = ["CastLayer", "CastNetwork", "cast", "FloatLayer", "FloatNetwork", "QLayer", "QuantizedNetwork", "quantize_tensor", "import_onnx", "is_qdq",
           "SUPPORTED_OPS", "quantize", "quantize_weights", "calibrate_range", "activation_qparams", "quantize_bias",
           "from_torch", "to_onnx", "IntLayer", "Program", "ProgramLayer", "compile_program", "reference_network"]


def __getattr__(name):    # torch is optional: import it only when the PyTorch front end is asked for
    if name in ("from_torch", "to_onnx"):
        from . import torch_frontend
        return getattr(torch_frontend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
