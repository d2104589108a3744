"""The design space: the axes a sweep varies, and the points (one accelerator each) they span.

A space is a cartesian product of axes, given on the command line (``--array 4x4,8x8 --engines ws+mv,os``) or
in a small TOML or JSON file (``--space space.toml``)::

    array = ["2x2", "4x4", "8x8", "16x16"]      # rows x cols
    engines = ["ws+mv", "ws", "os"]             # weight-stationary array (+ the matrix-vector engine), output-stationary
    act_buffer = ["auto", "16K", "64K"]         # bytes; "auto": sized for the network (size_spec)
    weight_buffer = ["auto"]
    acc_buffer = ["auto"]
    chaining = [true, false]                    # layer outputs stay on chip where they can
    batch = [1]
    [set]                                       # any other AcceleratorSpec field, e.g. precision
    act_type = ["int8"]

Every axis has a default of one value, so a space names only what it varies. A `Point` is one combination; its
`key` (a hash of its canonical JSON) names it in the cache and in every output. Points that cannot be built
(a non-square array with chaining, a layer that fits no buffer, a design too big for the device) are kept and
reported with the reason (`hwgen.explore.evaluate`).
"""

import itertools
import json
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path

from ..errors import ArgumentError

__all__ = ["ENGINES", "Point", "Space", "parse_bytes", "parse_array"]

# engines value -> (dataflow, mv_engine)
ENGINES = {"ws": ("weight_stationary", False), "ws+mv": ("weight_stationary", True),
           "os": ("output_stationary", False)}

AXES = ("array", "engines", "act_buffer", "weight_buffer", "acc_buffer", "chaining", "batch")


def parse_array(text):
    try:
        rows, cols = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ArgumentError(f"an array is ROWSxCOLS, e.g. 8x8, not {text!r}") from None
    if rows < 1 or cols < 1:
        raise ArgumentError(f"an array needs at least one row and one column, not {text!r}")
    return rows, cols


def parse_bytes(text):
    """``"auto"``, or a byte count with an optional K/M suffix (powers of 1024): ``16K``, ``4M``, ``1536``."""
    if text is None or str(text).lower() == "auto":
        return "auto"
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        s = str(text).strip().upper().removesuffix("B").removesuffix("I")
        scale = {"K": 1024, "M": 1024 * 1024}.get(s[-1:], 1)
        try:
            value = int(float(s[:-1] if scale > 1 else s) * scale)
        except ValueError:
            raise ArgumentError(f"a buffer size is 'auto' or bytes such as 16K, 256K or 4M, not {text!r}") from None
    if value <= 0:
        raise ArgumentError(f"a buffer size must be positive, not {text!r}")
    return value


def _bool(value):
    if isinstance(value, bool):
        return value
    s = str(value).lower()
    if s in ("on", "true", "yes", "1"):
        return True
    if s in ("off", "false", "no", "0"):
        return False
    raise ArgumentError(f"chaining is on or off, not {value!r}")


@dataclass(frozen=True)
class Point:
    """One accelerator of the space (the network is the sweep's, not the point's)."""
    rows: int
    cols: int
    engines: str = "ws+mv"
    act_buffer: object = "auto"          # bytes, or "auto"
    weight_buffer: object = "auto"
    acc_buffer: object = "auto"
    chaining: bool = True
    batch: int = 1
    extra: tuple = ()                    # ((spec field, value), ...) sorted

    def to_dict(self):
        data = asdict(self)
        data["extra"] = dict(self.extra)
        return data

    @property
    def array(self):
        return f"{self.rows}x{self.cols}"

    @property
    def key(self):
        return sha256(json.dumps(self.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:12]

    def label(self):
        parts = [self.array, self.engines]
        for name, value in (("act", self.act_buffer), ("w", self.weight_buffer), ("acc", self.acc_buffer)):
            if value != "auto":
                parts.append(f"{name}={_short_bytes(value)}")
        parts.append("chain" if self.chaining else "nochain")
        if self.batch != 1:
            parts.append(f"b{self.batch}")
        parts += [f"{k}={v}" for k, v in self.extra]
        return " ".join(parts)


def _short_bytes(value):
    if value % (1024 * 1024) == 0:
        return f"{value // (1024 * 1024)}M"
    if value % 1024 == 0:
        return f"{value // 1024}K"
    return str(value)


@dataclass
class Space:
    array: list = field(default_factory=lambda: ["8x8"])
    engines: list = field(default_factory=lambda: ["ws+mv"])
    act_buffer: list = field(default_factory=lambda: ["auto"])
    weight_buffer: list = field(default_factory=lambda: ["auto"])
    acc_buffer: list = field(default_factory=lambda: ["auto"])
    chaining: list = field(default_factory=lambda: [True])
    batch: list = field(default_factory=lambda: [1])
    set: dict = field(default_factory=dict)          # other AcceleratorSpec fields -> values

    def __post_init__(self):
        for axis in AXES:
            values = getattr(self, axis)
            if not isinstance(values, (list, tuple)):
                values = [values]
            if not values:
                raise ArgumentError(f"the space's axis {axis!r} has no values")
            setattr(self, axis, list(values))
        self.array = [parse_array(a) if not isinstance(a, tuple) else a for a in self.array]
        for engine in self.engines:
            if engine not in ENGINES:
                raise ArgumentError(f"engines {engine!r} is not one of {', '.join(ENGINES)} (ws: weight-stationary "
                                 f"array, ws+mv: with the matrix-vector engine beside it, os: output-stationary)")
        for axis in ("act_buffer", "weight_buffer", "acc_buffer"):
            setattr(self, axis, [parse_bytes(v) for v in getattr(self, axis)])
        self.chaining = [_bool(v) for v in self.chaining]
        for b in self.batch:
            if not isinstance(b, int) or isinstance(b, bool) or b < 1:
                raise ArgumentError(f"batch is a positive integer, not {b!r}")
        from ..spec import AcceleratorSpec
        fields = set(AcceleratorSpec.__dataclass_fields__) - {"rows", "cols", "dataflow", "mv_engine", "chaining",
                                                             "act_buffer_bytes", "weight_buffer_bytes",
                                                             "acc_buffer_bytes", "name"}
        self.set = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in (self.set or {}).items()}
        for name in self.set:
            if name not in fields:
                raise ArgumentError(f"--set {name}: not an AcceleratorSpec field the space can vary; one of "
                                 f"{sorted(fields)}")

    @classmethod
    def from_file(cls, path):
        path = Path(path)
        if not path.is_file():
            raise ArgumentError(f"no space file {path}")
        text = path.read_text()
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except ValueError as error:
                raise ArgumentError(f"{path}: not JSON ({error}); give a .toml or .json space file") from None
        else:
            import tomllib
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                raise ArgumentError(f"{path}: not TOML ({error}); give a .toml or .json space file") from None
        if not isinstance(data, dict):
            raise ArgumentError(f"{path}: a space file holds a table of axes ({', '.join(AXES)}, [set])")
        unknown = set(data) - set(AXES) - {"set"}
        if unknown:
            raise ArgumentError(f"{path}: unknown axes {sorted(unknown)}; a space has {', '.join(AXES)} and [set]")
        return cls(**data)

    def points(self):
        extra_names = sorted(self.set)
        extras = [tuple(zip(extra_names, combo)) for combo in itertools.product(*(self.set[n] for n in extra_names))]
        points = []
        for (rows, cols), engines, act, weight, acc, chaining, batch, extra in itertools.product(
                self.array, self.engines, self.act_buffer, self.weight_buffer, self.acc_buffer, self.chaining,
                self.batch, extras):
            points.append(Point(rows=rows, cols=cols, engines=engines, act_buffer=act, weight_buffer=weight,
                                acc_buffer=acc, chaining=chaining, batch=batch, extra=extra))
        return points

    def to_dict(self):
        return {"array": [f"{r}x{c}" for r, c in self.array], "engines": self.engines,
                "act_buffer": self.act_buffer, "weight_buffer": self.weight_buffer, "acc_buffer": self.acc_buffer,
                "chaining": self.chaining, "batch": self.batch, "set": self.set}
