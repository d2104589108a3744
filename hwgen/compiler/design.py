"""A network design: one accelerator and the quantized network it runs, as a design file holds it.

`hwgen compile` writes a ``design.py`` that defines ``design = NetworkDesign(...)``; every ``hwgen`` command that
takes a design takes it (``hwgen run``, ``plan``, ``generate``, ``sim``, ``synth``). Like `hwgen.Design`,
everything is checked when it is built: the network is loaded, mapped, tiled and linked into its program
(`hwgen.compiler.program`), so a spec too small for the network fails here, naming the layer and the buffer,
before any Verilog exists.
"""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import MappingError
from ..spec import AcceleratorSpec

__all__ = ["NetworkDesign"]


@dataclass(frozen=True, eq=False)
class NetworkDesign:
    """``network`` is a `hwgen.compiler.QuantizedNetwork` (an integer spec) or a `hwgen.compiler.cast.CastNetwork`
    (a bf16/fp16 spec), or the folder one was saved to (``network.json`` and ``tensors.npz``). ``batch`` inputs run as one program; ``chaining`` keeps layer outputs on chip where the
    next layer can take them (the spec must be built with ``chaining=True`` too); ``sparse`` picks the fully connected
    layers that run on the sparse engine of a spec built with ``sparse_mv=True``."""
    name: str
    spec: AcceleratorSpec
    network: object
    batch: int = 1
    chaining: bool = True
    sparse: object = "auto"      # fully connected layers on the sparse engine (`map_layers`): "auto", "never", names

    def __post_init__(self):
        if not isinstance(self.spec, AcceleratorSpec):
            raise MappingError(f"design {self.name!r}: spec must be an AcceleratorSpec, not {self.spec!r}")
        from .cast import CastNetwork
        from .network import QuantizedNetwork
        network = self.network
        if isinstance(network, (str, Path)):
            path = Path(network)
            if not (path / "network.json").is_file():
                raise MappingError(f"design {self.name!r}: {path} holds no saved network (network.json); give the "
                                   f"folder `hwgen compile` wrote, or a QuantizedNetwork")
            import json
            fmt = json.loads((path / "network.json").read_text()).get("format")
            network = CastNetwork.load(path) if fmt == "hwgen.CastNetwork" else QuantizedNetwork.load(path)
        if not isinstance(network, (QuantizedNetwork, CastNetwork)):
            raise MappingError(f"design {self.name!r}: network must be a QuantizedNetwork, a CastNetwork or its "
                               f"folder, not {network!r}")
        if isinstance(network, CastNetwork) != self.spec.is_float or (
                isinstance(network, CastNetwork) and network.fmt != self.spec.float_format):
            raise MappingError(f"design {self.name!r}: the network is "
                               f"{network.fmt if isinstance(network, CastNetwork) else 'int8'} but the spec's "
                               f"activations are {self.spec.act_type}; give a spec of the network's precision")
        object.__setattr__(self, "network", network)
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise MappingError(f"design {self.name!r}: batch must be a positive integer, not {self.batch!r}")
        self.program          # map, tile and link now: a bad spec fails before any Verilog

    @cached_property
    def layers(self):
        from .build import int_layers
        return int_layers(self.network)

    @cached_property
    def program(self):
        return self.program_for(self.batch)

    def program_for(self, batch):
        from ..perf import FeedbackOverflowError
        from .program import compile_program
        try:
            return compile_program(self.spec, self.layers, batch=batch, chain=self.chaining, sparse=self.sparse)
        except FeedbackOverflowError as error:
            raise MappingError(f"design {self.name!r}: {error}") from None

    def plans(self):
        """The layers' plans (as `hwgen.Design.plans`: the manifest and `hwgen plan` list them)."""
        return [pl.plan for pl in self.program.layers]
