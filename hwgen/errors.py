"""Every error hwgen raises on purpose. Each message names what is at fault and how to fix it.

The contract: whatever a user gets wrong - a loop nest, a mapping, a spec, a design file, a model, host data, a
command line - is rejected with a subclass of `HwgenError` (which also derives from the built-in class a Python
programmer would expect: `ValueError`, `TypeError`, `OverflowError`). Anything else escaping hwgen is a bug in
hwgen. The `hwgen` command prints an `HwgenError` as one line and exits with its ``exit_status``, 2 unless the
class says otherwise (`hwgen.cli`).
"""

__all__ = ["HwgenError", "LoopNestError", "NonAffineIndexError", "MappingError", "BufferOverflowError",
           "AccumulatorOverflowError", "ConfigFieldError", "PlanTooLargeError", "UnsupportedTypeError", "DesignError",
           "DesignTypeError", "DesignFileError", "DataError", "DataTypeError", "DataOverflowError", "ArgumentError",
           "ToolFailure", "OutputPathError", "UnsupportedModelError"]


class HwgenError(Exception):
    """Base class: a description or mapping hwgen cannot turn into hardware.

    ``exit_status`` is the `hwgen` command's exit status for it: 2, bad input (`hwgen.cli`)."""
    exit_status = 2


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


class PlanTooLargeError(MappingError):
    """Every tiling of a layer on this accelerator needs more commands than hwgen plans for one layer
    (`hwgen.tiling.MAX_COMMANDS`): the buffers are far too small for it."""


class AccumulatorOverflowError(MappingError):
    """The accumulator is too narrow for the worst-case reduction."""


class UnsupportedTypeError(HwgenError, TypeError):
    """An element type the hardware does not implement."""


class DesignError(HwgenError, ValueError):
    """A design, a layer or a layer's post-ops described wrongly: a bad name, no layers, duplicate layers, a
    post-op setting out of range."""


class DesignTypeError(DesignError, TypeError):
    """An argument of the wrong type: a layer that is not a loop nest, ``PostOps(relu="no")``, a name that is not
    a string."""


class DesignFileError(DesignError):
    """A design file that cannot be loaded: a syntax error, an exception while it runs (the message shows the
    file and line), no ``design = hwgen.Design(...)`` in it."""


class DataError(HwgenError, ValueError):
    """Host data that does not fit its layer: tensors of the wrong shape, post-op parameters out of range,
    output beats of the wrong count."""


class DataTypeError(DataError, TypeError):
    """Host data of the wrong kind (floats where integers are needed, not a `QuantParams`)."""


class DataOverflowError(DataError, OverflowError):
    """A value the data produces does not fit its type (an accumulator, int64 in the reference)."""


class ArgumentError(HwgenError, ValueError):
    """A bad argument to a command or run function: a stall probability outside [0, 1), an empty layer list, an
    unknown simulator."""


class ToolFailure(HwgenError, RuntimeError):
    """A tool hwgen runs could not do its work (a simulator missing, a build that failed): the `hwgen` command
    exits with status 1 for it, like for a failed check."""
    exit_status = 1


class OutputPathError(HwgenError):
    """An output path hwgen cannot write: an existing file where a directory is needed, no permission, an empty
    name."""
class UnsupportedModelError(HwgenError, ValueError):
    """A model (ONNX graph, PyTorch module) holds an op, attribute or shape hwgen cannot map exactly.

    ``node`` and ``op_type`` name the culprit (None when the fault is the graph as a whole, e.g. two inputs);
    the message names them too, and says what is supported.
    """

    def __init__(self, message, *, node=None, op_type=None):
        super().__init__(message)
        self.node, self.op_type = node, op_type
