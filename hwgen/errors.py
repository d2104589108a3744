"""Every error hwgen raises on purpose. Each message names what is at fault and how to fix it."""

__all__ = ["HwgenError", "LoopNestError", "NonAffineIndexError", "MappingError",
           "BufferOverflowError", "AccumulatorOverflowError", "ConfigFieldError", "UnsupportedTypeError",
           "UnsupportedModelError"]


class HwgenError(Exception):
    """Base class: a description or mapping hwgen cannot turn into hardware."""


class LoopNestError(HwgenError, ValueError):
    """The loop nest is not of the form hwgen recognizes (one multiply-accumulate over affine indices)."""


class NonAffineIndexError(LoopNestError):
    """A tensor index is not an affine function of the loop variables."""


class MappingError(HwgenError, ValueError):
    """The mapping directives cannot be realized (unknown loop, unsupported unrolling, bad sizes)."""


class BufferOverflowError(MappingError):
    """A layer's working set does not fit an on-chip buffer."""


class ConfigFieldError(MappingError):
    """A command's count does not fit its field of the configuration word (the planner splits the layer so
    that every count fits; a single hand-made command may not)."""

    def __init__(self, message, *, field=None, value=None):
        super().__init__(message)
        self.field, self.value = field, value


class AccumulatorOverflowError(MappingError):
    """The accumulator is too narrow for the worst-case reduction."""


class UnsupportedTypeError(HwgenError, TypeError):
    """An element type the hardware does not implement."""


class UnsupportedModelError(HwgenError, ValueError):
    """A model (ONNX graph, PyTorch module) holds an op, attribute or shape hwgen cannot map exactly.

    ``node`` and ``op_type`` name the culprit (None when the fault is the graph as a whole, e.g. two inputs);
    the message names them too, and says what is supported.
    """

    def __init__(self, message, *, node=None, op_type=None):
        super().__init__(message)
        self.node, self.op_type = node, op_type
