"""The canonical layer: every recognized loop nest becomes a `ConvProblem`.

Canonical tensors: activations ``I[C, H, W]``, weights ``W[M, C, R, S]``, outputs ``O[M, E, F]`` with
``O[m,e,f] = sum_{c,r,s} I[c, e*stride_h + r - pad_h, f*stride_w + s - pad_w] * W[m,c,r,s]``
where reads outside ``I`` are zero. A matrix product ``O[n,m] += X[n,k] * W[m,k]`` is the case
``C=K, H=E=1, W=F=N, R=S=1``.

The ``*_axes`` fields say how the user's tensors map onto the canonical ones: entry ``i`` is the user-tensor
axis that canonical axis ``i`` comes from, or ``None`` for a unit axis the user tensor does not have.
"""

from dataclasses import dataclass

import numpy as np

from .errors import DataError, MappingError

__all__ = ["ConvProblem"]


def _to_canonical(array, axes, canonical_shape, what):
    array = np.asarray(array)
    present = [a for a in axes if a is not None]
    if sorted(present) != list(range(array.ndim)):
        raise DataError(f"{what}: a {array.ndim}-D tensor cannot take canonical axes {axes}")
    moved = np.transpose(array, present)
    result = moved.reshape([array.shape[a] if a is not None else 1 for a in axes])
    if result.shape != tuple(canonical_shape):
        raise DataError(f"{what}: expected a tensor of canonical shape {tuple(canonical_shape)} "
                         f"(user shape {tuple(array.shape)}), got {result.shape}")
    return result


def _from_canonical(array, axes):
    present = [(axis, i) for i, axis in enumerate(axes) if axis is not None]
    squeezed = np.squeeze(array, axis=tuple(i for i, a in enumerate(axes) if a is None))
    order = [i for _, i in sorted(present)]            # canonical positions in user-axis order
    rank = {pos: n for n, pos in enumerate(i for _, i in present)}
    return np.transpose(squeezed, [rank[pos] for pos in order])


@dataclass(frozen=True)
class ConvProblem:
    name: str
    kind: str          # "conv2d" or "linear": what the user wrote
    C: int
    H: int
    W: int
    M: int
    E: int
    F: int
    R: int
    S: int
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    act: str = "I"
    weight: str = "W"
    out: str = "O"
    act_axes: tuple = (0, 1, 2)
    weight_axes: tuple = (0, 1, 2, 3)
    out_axes: tuple = (0, 1, 2)
    act_shape: tuple = ()      # user shapes of the three tensors
    weight_shape: tuple = ()
    out_shape: tuple = ()

    def __post_init__(self):
        for field_name in ("C", "H", "W", "M", "E", "F", "R", "S", "stride_h", "stride_w"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MappingError(f"{self.name}: {field_name} must be a positive integer, not {value!r}")
        for field_name in ("pad_h", "pad_w"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 0:
                raise MappingError(f"{self.name}: {field_name} must be a non-negative integer, not {value!r}")
        if self.kind not in ("conv2d", "linear"):
            raise MappingError(f"{self.name}: unknown layer kind {self.kind!r}")
        if not self.act_shape:
            object.__setattr__(self, "act_shape", (self.C, self.H, self.W))
        if not self.weight_shape:
            object.__setattr__(self, "weight_shape", (self.M, self.C, self.R, self.S))
        if not self.out_shape:
            object.__setattr__(self, "out_shape", (self.M, self.E, self.F))

    # Canonical sizes -------------------------------------------------------------------------------------

    @property
    def macs(self):
        return self.M * self.C * self.E * self.F * self.R * self.S

    @property
    def pixels(self):
        return self.E * self.F

    @property
    def act_canonical_shape(self):
        return (self.C, self.H, self.W)

    @property
    def weight_canonical_shape(self):
        return (self.M, self.C, self.R, self.S)

    @property
    def out_canonical_shape(self):
        return (self.M, self.E, self.F)

    # Layout conversion ------------------------------------------------------------------------------------

    def canonical_act(self, array):
        return _to_canonical(array, self.act_axes, self.act_canonical_shape, f"{self.name}.{self.act}")

    def canonical_weight(self, array):
        return _to_canonical(array, self.weight_axes, self.weight_canonical_shape, f"{self.name}.{self.weight}")

    def canonical_out(self, array):
        return _to_canonical(array, self.out_axes, self.out_canonical_shape, f"{self.name}.{self.out}")

    def user_out(self, canonical):
        """Canonical ``O[M, E, F]`` back to the user's output layout."""
        return _from_canonical(np.asarray(canonical), self.out_axes).reshape(self.out_shape)

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
