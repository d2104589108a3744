"""A design: one accelerator spec and the layers it must run. Everything is checked when it is built."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import HwgenError
from .ir import LoopNest
from .mapping import Mapping, default_mapping, recognize
from .schedule import LayerSchedule
from .spec import AcceleratorSpec

__all__ = ["Design", "load_design", "DESIGNS_DIR"]

DESIGNS_DIR = Path(__file__).resolve().parent.parent / "designs"


@dataclass(frozen=True)
class Design:
    """``layers`` holds `LoopNest`s (mapped with `default_mapping`) or ``(LoopNest, Mapping)`` pairs."""
    name: str
    spec: AcceleratorSpec
    layers: tuple

    def __post_init__(self):
        if not isinstance(self.spec, AcceleratorSpec):
            raise TypeError(f"design {self.name!r}: spec must be an AcceleratorSpec, not {self.spec!r}")
        pairs = []
        for layer in self.layers:
            if isinstance(layer, LoopNest):
                pairs.append((layer, default_mapping(layer)))
            elif (isinstance(layer, tuple) and len(layer) == 2 and isinstance(layer[0], LoopNest)
                  and isinstance(layer[1], Mapping)):
                pairs.append(layer)
            else:
                raise TypeError(f"design {self.name!r}: a layer is a LoopNest or a (LoopNest, Mapping) pair, "
                                f"not {layer!r}")
        if not pairs:
            raise HwgenError(f"design {self.name!r} has no layers; give at least one loop nest")
        names = [nest.name for nest, _ in pairs]
        if len(set(names)) != len(names):
            raise HwgenError(f"design {self.name!r}: layer names must be unique, got {names}")
        object.__setattr__(self, "layers", tuple(pairs))
        # Map and schedule every layer now, so a bad layer fails before any hardware is generated.
        object.__setattr__(self, "_schedules", tuple(
            LayerSchedule(self.spec, recognize(nest, mapping)) for nest, mapping in pairs))

    def schedules(self):
        return self._schedules

    def schedule(self, layer_name):
        for schedule in self._schedules:
            if schedule.problem.name == layer_name:
                return schedule
        raise KeyError(f"design {self.name!r} has no layer {layer_name!r}; layers: "
                       f"{[s.problem.name for s in self._schedules]}")


def load_design(name_or_path):
    """A design by name (``designs/<name>.py``) or by the path of a Python file defining ``design``."""
    path = Path(name_or_path)
    if not path.suffix:
        path = DESIGNS_DIR / f"{name_or_path}.py"
    if not path.is_file():
        available = sorted(p.stem for p in DESIGNS_DIR.glob("*.py") if not p.name.startswith("_"))
        raise HwgenError(f"no design {str(name_or_path)!r}: expected a file defining `design`, or one of "
                         f"{available}")
    module_spec = importlib.util.spec_from_file_location(f"hwgen_design_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    design = getattr(module, "design", None)
    if not isinstance(design, Design):
        raise HwgenError(f"{path} must define `design = hwgen.Design(...)`")
    return design
