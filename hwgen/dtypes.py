"""Element types. Integer semantics live here and in `reference`; hardware shapes derive from them."""

from dataclasses import dataclass
from typing import ClassVar

from .errors import DataError, UnsupportedTypeError

__all__ = ["IntType", "FloatType", "int4", "int8", "uint8", "int16", "int32", "int48", "bf16", "fp16", "fp32",
           "parse_dtype", "is_float"]


@dataclass(frozen=True)
class IntType:
    """A two's-complement (``signed=True``) or unsigned integer of ``bits`` bits."""
    bits: int
    signed: bool = True
    is_float: ClassVar[bool] = False

    def __post_init__(self):
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or not 1 <= self.bits <= 64:
            raise UnsupportedTypeError(f"integer width must be an int from 1 to 64, not {self.bits!r}")
        if not isinstance(self.signed, bool):
            raise UnsupportedTypeError(f"signed must be a bool, not {self.signed!r}")

    @property
    def name(self):
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @property
    def min(self):
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def amaranth_shape(self):
        from amaranth.hdl import signed, unsigned
        return signed(self.bits) if self.signed else unsigned(self.bits)

    def contains(self, value):
        return self.min <= value <= self.max

    def to_bits(self, values):
        """Two's-complement encode (array or int) into unsigned ``bits``-wide fields."""
        import numpy as np
        arr = np.asarray(values, dtype=np.int64)
        if arr.size and (arr.min() < self.min or arr.max() > self.max):
            raise DataError(f"value out of range for {self.name}")
        return (arr & ((1 << self.bits) - 1)).astype(np.uint64) if self.bits < 64 else arr.view(np.uint64)

    def from_bits(self, raw):
        """Decode unsigned ``bits``-wide fields (array of uint64 or Python ints) into int64 values."""
        import numpy as np
        arr = np.asarray(raw, dtype=np.uint64).astype(np.int64) & ((1 << self.bits) - 1)
        if self.signed:
            arr = np.where(arr >= (1 << (self.bits - 1)), arr - (1 << self.bits), arr)
        return arr.astype(np.int64)

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class FloatType:
    """A binary floating-point format: ``"bf16"``, ``"fp16"`` or ``"fp32"`` (`hwgen.floats` has the numerics).

    Values of a float type travel as their raw bit patterns (unsigned integers of ``bits`` bits) through the
    streams, the buffers and the reference, so ``min``/``max``/``to_bits``/``from_bits`` describe the patterns;
    `hwgen.floats.encode`/`decode` convert to and from real numbers."""
    format: str
    is_float: ClassVar[bool] = True
    signed: ClassVar[bool] = False      # the pattern is unsigned; the sign is its top bit

    def __post_init__(self):
        if self.format not in ("bf16", "fp16", "fp32"):
            raise UnsupportedTypeError(f"float format must be 'bf16', 'fp16' or 'fp32', not {self.format!r}")

    @property
    def name(self):
        return self.format

    @property
    def bits(self):
        return 32 if self.format == "fp32" else 16

    @property
    def exp_bits(self):
        return 5 if self.format == "fp16" else 8

    @property
    def frac_bits(self):
        return {"bf16": 7, "fp16": 10, "fp32": 23}[self.format]

    @property
    def min(self):
        return 0

    @property
    def max(self):
        return (1 << self.bits) - 1

    def amaranth_shape(self):
        from amaranth.hdl import unsigned
        return unsigned(self.bits)

    def contains(self, value):
        return 0 <= value <= self.max

    def to_bits(self, values):
        """Bit patterns (array or int) -> uint64 fields (checked to fit ``bits``)."""
        import numpy as np
        arr = np.asarray(values)
        if arr.dtype.kind == "f":
            raise DataError(f"{self.name} values travel as bit patterns: encode them first with "
                            f"hwgen.floats.encode(values, {self.name!r})")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > self.max):
            raise DataError(f"value out of range for {self.name} bit patterns (0..{self.max:#x})")
        return arr.astype(np.uint64)

    def from_bits(self, raw):
        import numpy as np
        return (np.asarray(raw, dtype=np.uint64) & np.uint64(self.max)).astype(np.int64)

    def __str__(self):
        return self.name


def is_float(dtype):
    """Whether ``dtype`` is a `FloatType`."""
    return getattr(dtype, "is_float", False)


bf16 = FloatType("bf16")
fp16 = FloatType("fp16")
fp32 = FloatType("fp32")
_FLOAT_NAMES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half": "fp16",
                "fp32": "fp32", "float32": "fp32", "float": "fp32"}

int4 = IntType(4)
int8 = IntType(8)
uint8 = IntType(8, signed=False)
int16 = IntType(16)
int32 = IntType(32)
int48 = IntType(48)


def parse_dtype(value, *, what):
    """Accept an `IntType`/`FloatType` or a name like ``"int8"``/``"uint8"``/``"bf16"``/``"fp16"``/``"fp32"``;
    reject other floats and the rest by name."""
    if isinstance(value, (IntType, FloatType)):
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name in _FLOAT_NAMES:
            return FloatType(_FLOAT_NAMES[name])
        for prefix, signed in (("uint", False), ("int", True)):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                return IntType(int(name[len(prefix):]), signed)
        if name.startswith(("float", "fp", "bf", "half", "double")):
            raise UnsupportedTypeError(
                f"{what}: floating-point type {value!r} is not supported; hwgen's float datapath takes 'bf16' "
                f"or 'fp16' operands with an 'fp32' accumulator - or quantize to an integer type such as 'int8'")
    raise UnsupportedTypeError(f"{what}: expected an integer type such as 'int8' or hwgen.int8, not {value!r}")
