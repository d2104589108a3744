"""A design: one accelerator spec and the layers it must run. Everything is checked when it is built."""

from __future__ import annotations

import importlib.resources
import importlib.util
import linecache
import sys
import traceback
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DesignError, DesignFileError, DesignTypeError, HwgenError
from .ir import LoopNest
from .mapping import Mapping, default_mapping, recognize
from .postops import PostOps
from .spec import AcceleratorSpec, check_name
from .tiling import LayerPlan, plan_layer

if TYPE_CHECKING:
    from .compiler.design import NetworkDesign
    from .fxp.design import FxpDesign

__all__ = ["Design", "Layer", "load_design", "DESIGNS_DIR", "builtin_designs"]


@dataclass(frozen=True)
class Layer:
    """One layer of a design: its loop nest, how it maps (default: `default_mapping`), and the post-op chain
    on its output (bias, requantization, ReLU, pooling)."""
    nest: LoopNest
    mapping: Mapping | None = None
    postops: PostOps = PostOps()

    def __post_init__(self):
        if not isinstance(self.nest, LoopNest):
            raise DesignTypeError(f"Layer.nest must be a LoopNest (from @loop_nest, conv2d or linear), not "
                                  f"{self.nest!r}")
        if self.mapping is not None and not isinstance(self.mapping, Mapping):
            raise DesignTypeError(f"{self.nest.name}: mapping must be a hwgen.Mapping, not {self.mapping!r}")
        if not isinstance(self.postops, PostOps):
            raise DesignTypeError(f"{self.nest.name}: postops must be a hwgen.PostOps, not {self.postops!r}")


# The built-in designs: the package hwgen.designs (designs/ in the repository), wherever hwgen is installed.
DESIGNS_DIR = Path(str(importlib.resources.files("hwgen.designs")))


def builtin_designs() -> list[str]:
    """The names `load_design` accepts for the built-in designs (``designs/<name>.py``)."""
    return sorted(p.stem for p in DESIGNS_DIR.glob("*.py") if not p.name.startswith("_"))


@dataclass(frozen=True)
class Design:
    """``layers`` is a tuple (or list) of `Layer`s, bare `LoopNest`s (default mapping, no post-ops) or
    ``(LoopNest, Mapping[, PostOps])`` tuples. Every layer is mapped and planned (tiled if it must be) when
    the design is built."""
    name: str
    spec: AcceleratorSpec
    layers: tuple

    def __post_init__(self):
        check_name(self.name, "design name", error=DesignError)
        if not isinstance(self.spec, AcceleratorSpec):
            raise DesignTypeError(f"design {self.name!r}: spec must be an AcceleratorSpec, not {self.spec!r}")
        if isinstance(self.layers, (LoopNest, Layer)) or not isinstance(self.layers, (tuple, list)):
            one = self.layers.name if isinstance(self.layers, LoopNest) else "..."
            raise DesignTypeError(
                f"design {self.name!r}: layers must be a tuple of layers, not {type(self.layers).__name__} "
                f"{self.layers!r}" + (f"; for one layer write layers=({one},) or [{one}]"
                                      if isinstance(self.layers, (LoopNest, Layer)) else ""))
        layers = []
        for layer in self.layers:
            if isinstance(layer, Layer):
                layers.append(layer)
            elif isinstance(layer, LoopNest):
                layers.append(Layer(layer))
            elif isinstance(layer, tuple) and 2 <= len(layer) <= 3 and isinstance(layer[0], LoopNest):
                layers.append(Layer(*layer))
            else:
                raise DesignTypeError(f"design {self.name!r}: a layer is a hwgen.Layer, a LoopNest or a "
                                      f"(LoopNest, Mapping[, PostOps]) tuple, not {layer!r}")
        if not layers:
            raise DesignError(f"design {self.name!r} has no layers; give at least one loop nest")
        names = [layer.nest.name for layer in layers]
        if len(set(names)) != len(names):
            twice = sorted({name for name in names if names.count(name) > 1})
            raise DesignError(f"design {self.name!r}: layer names must be unique, but {twice} appear more than "
                              f"once (layers: {names}); name each layer apart (conv2d(name=...), "
                              f"@loop_nest(name=...))")
        layers = [layer if layer.mapping is not None else
                  Layer(layer.nest, default_mapping(layer.nest, dataflow=self.spec.dataflow), layer.postops)
                  for layer in layers]
        for layer in layers:
            if layer.mapping.dataflow != self.spec.dataflow:
                raise DesignError(
                    f"design {self.name!r}: layer {layer.nest.name!r} is mapped for {layer.mapping.dataflow} but "
                    f"the accelerator is {self.spec.dataflow}; set Mapping(dataflow={self.spec.dataflow!r}) or "
                    f"put the layer on an accelerator of that dataflow")
        object.__setattr__(self, "layers", tuple(layers))
        # Map and plan every layer now, so a bad layer fails before any hardware is generated.
        object.__setattr__(self, "_plans", tuple(
            plan_layer(self.spec, recognize(layer.nest, layer.mapping), layer.postops) for layer in layers))

    def plans(self) -> tuple[LayerPlan, ...]:
        return self._plans

    def plan(self, layer_name: str) -> LayerPlan:
        for plan in self._plans:
            if plan.problem.name == layer_name:
                return plan
        raise DesignError(f"design {self.name!r} has no layer {layer_name!r}; its layers are "
                          f"{', '.join(p.problem.name for p in self._plans)}")


def _user_frame(error, path):
    """The innermost frame of `error`'s traceback that runs in the design file: (line number, source line)."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            found = frame
    if found is None:
        return None, None
    return found.lineno, (found.line or linecache.getline(str(path), found.lineno)).strip()


def load_design(name_or_path: str | PathLike) -> Design | NetworkDesign | FxpDesign:
    """A design by name (``designs/<name>.py``, see `builtin_designs`), by the path of a Python file that
    defines ``design``, or by a folder holding such a ``design.py`` (what ``hwgen compile`` writes). ``design``
    is a `Design`, a `hwgen.compiler.design.NetworkDesign` or a `hwgen.fxp.design.FxpDesign` (the fixed-point
    engine: training steps, LSTM layers).

    The file is Python and runs with the caller's rights, like a build script. A file that does not parse or
    raises while it runs is reported as a `DesignFileError` naming the file and line; an `HwgenError` raised by
    the design itself (a mapping, a buffer) keeps its class and gains a note naming the line."""
    if not isinstance(name_or_path, (str, PathLike)) or not str(name_or_path).strip():
        raise DesignError(f"expected a design name (one of {builtin_designs()}) or the path of a design file, "
                          f"not {name_or_path!r}")
    path = Path(name_or_path)
    if path.is_dir() and (path / "design.py").is_file():
        path = path / "design.py"
    elif not path.suffix and path.name == str(name_or_path):
        path = DESIGNS_DIR / f"{name_or_path}.py"
    if not path.is_file():
        hint = "" if path.suffix in ("", ".py") else "; a design file is a Python file ending in .py"
        raise DesignError(f"no design {str(name_or_path)!r}: expected the path of a file defining `design`, or one "
                          f"of the built-in designs {builtin_designs()}{hint}")
    module_name = f"hwgen_design_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module     # dataclasses in the file look their module up
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as error:
        where = f"{path}, line {error.lineno}" if error.lineno else str(path)
        text = f": {error.text.strip()}" if error.text and error.text.strip() else ""
        raise DesignFileError(f"{where}: the design file is not valid Python ({error.msg}){text}") from None
    except HwgenError as error:
        line, _ = _user_frame(error, path)
        error.add_note(f"(while loading the design file {path}" + (f", line {line})" if line else ")"))
        raise
    except Exception as error:   # the user's code raised: show their line, not hwgen's internals
        line, source = _user_frame(error, path)
        where = f"{path}, line {line}" if line else str(path)
        raise DesignFileError(f"{where}: the design file raised {type(error).__name__}: {error}"
                              + (f"\n    {source}" if source else "")) from None
    finally:
        sys.modules.pop(module_name, None)
    design = getattr(module, "design", None)
    from .compiler.design import NetworkDesign
    from .fxp.design import FxpDesign
    if not isinstance(design, (Design, NetworkDesign, FxpDesign)):
        got = "nothing" if design is None else f"a {type(design).__name__}"
        raise DesignFileError(f"{path} must define `design = hwgen.Design(...)` (or a hwgen.compiler "
                              f"NetworkDesign, or a hwgen.fxp FxpDesign); its `design` is {got}")
    return design
