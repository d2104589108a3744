"""The loop-nest IR: what the DSL produces and the mapper consumes.

A `LoopNest` is a perfect nest of counted loops around one multiply-accumulate
``out[...] += a[...] * b[...]`` whose indices are affine in the loop variables.
"""

from dataclasses import dataclass, field

from .errors import LoopNestError

__all__ = ["Affine", "Loop", "Access", "LoopNest"]


@dataclass(frozen=True)
class Affine:
    """``const + sum(coef * var)``; `terms` is a sorted tuple of ``(var, coef)`` with non-zero coefs."""
    terms: tuple = ()
    const: int = 0

    @staticmethod
    def var(name):
        return Affine(((name, 1),), 0)

    @staticmethod
    def constant(value):
        return Affine((), int(value))

    def __add__(self, other):
        other = _as_affine(other)
        coefs = dict(self.terms)
        for name, coef in other.terms:
            coefs[name] = coefs.get(name, 0) + coef
        return Affine(tuple(sorted((n, c) for n, c in coefs.items() if c)), self.const + other.const)

    __radd__ = __add__

    def __neg__(self):
        return Affine(tuple((n, -c) for n, c in self.terms), -self.const)

    def __sub__(self, other):
        return self + (-_as_affine(other))

    def __rsub__(self, other):
        return _as_affine(other) - self

    def scale(self, factor):
        if factor == 0:
            return Affine()
        return Affine(tuple((n, c * factor) for n, c in self.terms), self.const * factor)

    @property
    def variables(self):
        return tuple(n for n, _ in self.terms)

    def coef(self, name):
        return dict(self.terms).get(name, 0)

    def is_var(self):
        """True when this is exactly one loop variable with coefficient 1 and no constant."""
        return len(self.terms) == 1 and self.terms[0][1] == 1 and self.const == 0

    def evaluate(self, env):
        return self.const + sum(c * env[n] for n, c in self.terms)

    def __str__(self):
        parts = []
        for name, coef in self.terms:
            parts.append(name if coef == 1 else f"{coef}*{name}")
        if self.const or not parts:
            parts.append(str(self.const))
        return " + ".join(parts).replace("+ -", "- ")


def _as_affine(value):
    if isinstance(value, Affine):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Affine.constant(value)
    raise TypeError(f"cannot use {value!r} in an affine index")


@dataclass(frozen=True)
class Loop:
    name: str
    extent: int

    def __post_init__(self):
        if not isinstance(self.extent, int) or isinstance(self.extent, bool) or self.extent <= 0:
            raise LoopNestError(
                f"loop '{self.name}' has extent {self.extent!r}; every loop needs a positive integer trip "
                f"count (write 'for {self.name} in range(N)' with N >= 1)")


@dataclass(frozen=True)
class Access:
    tensor: str
    indices: tuple  # of Affine

    def __str__(self):
        return f"{self.tensor}[{', '.join(str(i) for i in self.indices)}]"


@dataclass(frozen=True)
class LoopNest:
    """``for loops: out += lhs * rhs``. `shapes` maps tensor name -> declared shape (or None to infer)."""
    name: str
    loops: tuple  # of Loop, outermost first
    out: Access
    lhs: Access
    rhs: Access
    shapes: tuple = field(default=())  # sorted ((tensor, shape), ...) of declared shapes

    def __post_init__(self):
        names = [loop.name for loop in self.loops]
        if len(set(names)) != len(names):
            raise LoopNestError(f"{self.name}: loop variables must be distinct, got {names}")
        tensors = [self.out.tensor, self.lhs.tensor, self.rhs.tensor]
        if len(set(tensors)) != 3:
            raise LoopNestError(
                f"{self.name}: the output and the two factors must be three different tensors, got "
                f"{tensors[0]} += {tensors[1]} * {tensors[2]}")
        for access in (self.out, self.lhs, self.rhs):
            for index in access.indices:
                for var in index.variables:
                    if var not in names:
                        raise LoopNestError(
                            f"{self.name}: index '{index}' of {access.tensor} uses '{var}', which is not a loop "
                            f"variable (loops: {', '.join(names)})")

    @property
    def loop_names(self):
        return tuple(loop.name for loop in self.loops)

    def extent(self, name):
        for loop in self.loops:
            if loop.name == name:
                return loop.extent
        raise KeyError(name)

    def access(self, tensor):
        for access in (self.out, self.lhs, self.rhs):
            if access.tensor == tensor:
                return access
        raise KeyError(tensor)

    def declared_shape(self, tensor):
        return dict(self.shapes).get(tensor)

    @property
    def macs(self):
        total = 1
        for loop in self.loops:
            total *= loop.extent
        return total

    def __str__(self):
        lines = []
        for depth, loop in enumerate(self.loops):
            lines.append("    " * depth + f"for {loop.name} in range({loop.extent}):")
        lines.append("    " * len(self.loops) + f"{self.out} += {self.lhs} * {self.rhs}")
        return "\n".join(lines)
