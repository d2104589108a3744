"""What a sweep explores for: a built-in network (``lenet``, ``alexnet``), a design (a name in designs/, a design
file) or a compiled network folder (what ``hwgen compile`` wrote).

Workers resolve the reference themselves (`load`, cached per process), so nothing large crosses the wire: a
task carries the reference string and a point.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256

from ..errors import DesignError, HwgenError

__all__ = ["Target", "load"]


@dataclass(frozen=True, eq=False)
class Target:
    """``kind`` is "network" (`IntLayer`s, compiled as one program) or "layers" (a layer design: each layer
    planned on its own, ``layers`` holds ``(problem, postops)`` pairs); ``base_spec`` is the design's own spec
    (None for a built-in network: every point is sized for it)."""
    ref: str
    name: str
    kind: str
    layers: list
    base_spec: object = None

    @property
    def fingerprint(self):
        """A hash of what the cycle model reads: every layer's shape, post-ops and boundaries (not the weights:
        cycles, plans and resources do not depend on values)."""
        doc = []
        for layer in self.layers:
            if self.kind == "network":
                doc.append([layer.problem.to_dict(), str(layer.postops), layer.flatten, layer.host_pool,
                            layer.pad_value != 0])
            else:
                problem, postops = layer
                doc.append([problem.to_dict(), str(postops)])
        if self.base_spec is not None:
            doc.append(self.base_spec.to_dict())
        return sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def macs(self):
        return sum((layer.problem if self.kind == "network" else layer[0]).macs for layer in self.layers)


@lru_cache(maxsize=8)
def load(ref):
    """The `Target` a reference names (see the module docstring)."""
    from ..compiler.zoo import NETWORKS
    if ref in NETWORKS:
        return Target(ref=ref, name=ref, kind="network", layers=NETWORKS[ref](random=False))
    from ..compiler.build import int_layers
    from ..compiler.design import NetworkDesign
    from ..design import load_design
    try:
        design = load_design(ref)
    except HwgenError as error:
        raise DesignError(f"{ref!r} is not a built-in network ({', '.join(NETWORKS)}) nor a design: {error}") from None
    if isinstance(design, NetworkDesign):
        return Target(ref=ref, name=design.name, kind="network", layers=int_layers(design.network),
                      base_spec=design.spec)
    return Target(ref=ref, name=design.name, kind="layers",
                  layers=[(plan.problem, plan.postops) for plan in design.plans()], base_spec=design.spec)
