"""A design: one accelerator spec and the layers it must run. Everything is checked when it is built."""

import importlib.resources
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import HwgenError
from .ir import LoopNest
from .mapping import Mapping, default_mapping, recognize
from .postops import PostOps
from .spec import AcceleratorSpec
from .tiling import plan_layer

__all__ = ["Design", "Layer", "load_design", "DESIGNS_DIR"]


@dataclass(frozen=True)
class Layer:
    """One layer of a design: its loop nest, how it maps (default: `default_mapping`), and the post-op chain
    on its output (bias, requantization, ReLU, pooling)."""
    nest: LoopNest
    mapping: Mapping = None
    postops: PostOps = PostOps()

    def __post_init__(self):
        if not isinstance(self.nest, LoopNest):
            raise TypeError(f"Layer.nest must be a LoopNest (from @loop_nest, conv2d or linear), not {self.nest!r}")
        if self.mapping is not None and not isinstance(self.mapping, Mapping):
            raise TypeError(f"{self.nest.name}: mapping must be a hwgen.Mapping, not {self.mapping!r}")
        if not isinstance(self.postops, PostOps):
            raise TypeError(f"{self.nest.name}: postops must be a hwgen.PostOps, not {self.postops!r}")

# The built-in designs: the package hwgen.designs (designs/ in the repository), wherever hwgen is installed.
DESIGNS_DIR = Path(str(importlib.resources.files("hwgen.designs")))


@dataclass(frozen=True)
class Design:
    """``layers`` holds `Layer`s, bare `LoopNest`s (default mapping, no post-ops) or ``(LoopNest, Mapping)``
    pairs. Every layer is mapped and planned (tiled if it must be) when the design is built."""
    name: str
    spec: AcceleratorSpec
    layers: tuple

    def __post_init__(self):
        if not isinstance(self.spec, AcceleratorSpec):
            raise TypeError(f"design {self.name!r}: spec must be an AcceleratorSpec, not {self.spec!r}")
        layers = []
        for layer in self.layers:
            if isinstance(layer, Layer):
                layers.append(layer)
            elif isinstance(layer, LoopNest):
                layers.append(Layer(layer))
            elif isinstance(layer, tuple) and 2 <= len(layer) <= 3 and isinstance(layer[0], LoopNest):
                layers.append(Layer(*layer))
            else:
                raise TypeError(f"design {self.name!r}: a layer is a hwgen.Layer, a LoopNest or a "
                                f"(LoopNest, Mapping[, PostOps]) tuple, not {layer!r}")
        if not layers:
            raise HwgenError(f"design {self.name!r} has no layers; give at least one loop nest")
        names = [layer.nest.name for layer in layers]
        if len(set(names)) != len(names):
            raise HwgenError(f"design {self.name!r}: layer names must be unique, got {names}")
        layers = [layer if layer.mapping is not None else
                  Layer(layer.nest, default_mapping(layer.nest, dataflow=self.spec.dataflow), layer.postops)
                  for layer in layers]
        for layer in layers:
            if layer.mapping.dataflow != self.spec.dataflow:
                raise HwgenError(
                    f"design {self.name!r}: layer {layer.nest.name!r} is mapped for {layer.mapping.dataflow} but "
                    f"the accelerator is {self.spec.dataflow}; set Mapping(dataflow={self.spec.dataflow!r}) or "
                    f"put the layer on an accelerator of that dataflow")
        object.__setattr__(self, "layers", tuple(layers))
        # Map and plan every layer now, so a bad layer fails before any hardware is generated.
        object.__setattr__(self, "_plans", tuple(
            plan_layer(self.spec, recognize(layer.nest, layer.mapping), layer.postops) for layer in layers))

    def plans(self):
        return self._plans

    def plan(self, layer_name):
        for plan in self._plans:
            if plan.problem.name == layer_name:
                return plan
        raise KeyError(f"design {self.name!r} has no layer {layer_name!r}; layers: "
                       f"{[p.problem.name for p in self._plans]}")


def load_design(name_or_path):
    """A design by name (``designs/<name>.py``), by the path of a Python file defining ``design``, or by a folder
    holding such a ``design.py`` (what ``hwgen compile`` writes). ``design`` is a `Design` or a
    `hwgen.compiler.design.NetworkDesign`."""
    path = Path(name_or_path)
    if path.is_dir() and (path / "design.py").is_file():
        path = path / "design.py"
    elif not path.suffix:
        path = DESIGNS_DIR / f"{name_or_path}.py"
    if not path.is_file():
        available = sorted(p.stem for p in DESIGNS_DIR.glob("*.py") if not p.name.startswith("_"))
        raise HwgenError(f"no design {str(name_or_path)!r}: expected a file defining `design`, or one of "
                         f"{available}")
    module_spec = importlib.util.spec_from_file_location(f"hwgen_design_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    design = getattr(module, "design", None)
    from .compiler.design import NetworkDesign
    if not isinstance(design, (Design, NetworkDesign)):
        raise HwgenError(f"{path} must define `design = hwgen.Design(...)` (or a hwgen.compiler NetworkDesign)")
    return design
