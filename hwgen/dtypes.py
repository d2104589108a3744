"""Element types. Integer semantics live here and in `reference`; hardware shapes derive from them."""

from dataclasses import dataclass

from .errors import DataError, UnsupportedTypeError

__all__ = ["IntType", "int4", "int8", "uint8", "int16", "int32", "int48", "parse_dtype"]


@dataclass(frozen=True)
class IntType:
    """A two's-complement (``signed=True``) or unsigned integer of ``bits`` bits."""
    bits: int
    signed: bool = True

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


int4 = IntType(4)
int8 = IntType(8)
uint8 = IntType(8, signed=False)
int16 = IntType(16)
int32 = IntType(32)
int48 = IntType(48)


def parse_dtype(value, *, what):
    """Accept an `IntType` or a name like ``"int8"``/``"uint8"``; reject floats and the rest by name."""
    if isinstance(value, IntType):
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        for prefix, signed in (("uint", False), ("int", True)):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                return IntType(int(name[len(prefix):]), signed)
        if name.startswith(("float", "fp", "bf", "half", "double")):
            raise UnsupportedTypeError(
                f"{what}: floating-point type {value!r} is not supported; hwgen builds integer datapaths "
                f"- quantize to an integer type such as 'int8'")
    raise UnsupportedTypeError(f"{what}: expected an integer type such as 'int8' or hwgen.int8, not {value!r}")
