"""hwgen: loop nests of DNN layers -> verified dataflow accelerators.

The pipeline, one module per step: `dsl` (loop nests) -> `mapping` (directives, recognition into a canonical
`problem`) -> `schedule` (folds, buffer layout) on an `spec.AcceleratorSpec` -> `hw` (Amaranth) -> `verilog`;
beside it `reference` (NumPy golden values) and `perf` (cycle model); `hwgen.sim` proves the RTL against both,
`hwgen.fpga` takes it through Yosys and nextpnr, and `hwgen.designs` holds the built-in designs.
"""

__version__ = "0.1.0"

from .design import Design, Layer, load_design
from .dsl import conv2d, linear, loop_nest, tensor
from .dtypes import IntType, int4, int8, int16, int32, int48, uint8
from .errors import (AccumulatorOverflowError, BufferOverflowError, ConfigFieldError, DataError, DesignError,
                     DesignFileError, DesignTypeError, HwgenError, LoopNestError, MappingError, NonAffineIndexError,
                     PlanTooLargeError, UnsupportedModelError, UnsupportedTypeError)
from .mapping import Mapping, default_mapping, recognize
from .postops import PostOps, QuantParams
from .spec import AcceleratorSpec

__all__ = [
    "__version__",
    "Design", "Layer", "PostOps", "QuantParams", "load_design", "conv2d", "linear", "loop_nest", "tensor", "IntType", "int4", "int8", "int16",
    "int32", "int48", "uint8", "Mapping", "default_mapping", "recognize", "AcceleratorSpec", "HwgenError",
    "LoopNestError", "NonAffineIndexError", "MappingError", "BufferOverflowError", "AccumulatorOverflowError",
    "UnsupportedTypeError", "ConfigFieldError", "PlanTooLargeError", "DesignError", "DesignTypeError", "DesignFileError",
    "DataError", "UnsupportedModelError",
]
