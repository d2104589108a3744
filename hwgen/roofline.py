"""The memory wall per layer: the bytes each layer moves to and from DRAM, its operational intensity, and which
ceiling bounds it at a given DRAM bandwidth (the roofline).

A layer's DRAM traffic is what its commands actually stream (`hwgen.tiling.LayerPlan`: every word of every
command, padding lanes included): its weights and post-op parameters always; its activations when they come
from memory (the network's input, or the output of a layer that did not stay on chip), not when the previous
layer's output reaches it on chip; its output when it leaves the chip - one byte per int8 value (``cols``
lanes per beat, the form the next layer loads), or the accumulator word when the output is not requantized.

At ``B`` bytes per cycle a layer cannot take fewer than ``bytes / B`` cycles (the memory ceiling) nor fewer than
its compute-only cycles (`hwgen.perf`, every source assumed ready: the compute ceiling); the larger one bounds
it. ``intensity = MACs / bytes``; the ridge point of the accelerator is ``PEs / B`` MACs per byte.
"""

from dataclasses import asdict, dataclass
from math import ceil

from .perf import predict_plan
from .postops import params_port_bits

__all__ = ["LayerTraffic", "layer_traffic", "roofline"]


@dataclass(frozen=True)
class LayerTraffic:
    layer: str
    engine: str
    macs: int
    weight_bytes: int
    param_bytes: int
    act_bytes: int
    out_bytes: int
    compute_cycles: int

    @property
    def dram_bytes(self):
        return self.weight_bytes + self.param_bytes + self.act_bytes + self.out_bytes

    @property
    def intensity(self):
        """MACs per DRAM byte."""
        return self.macs / self.dram_bytes if self.dram_bytes else float("inf")

    def at(self, bytes_per_cycle, pes):
        """The layer on a DRAM of ``bytes_per_cycle``: memory cycles, the bound, attainable MACs per cycle."""
        memory = ceil(self.dram_bytes / bytes_per_cycle)
        attainable = min(pes, self.intensity * bytes_per_cycle)
        return {"memory_cycles": memory, "bound": "memory" if memory > self.compute_cycles else "compute",
                "cycles_lower_bound": max(memory, self.compute_cycles), "attainable_macs_per_cycle": attainable}

    def to_dict(self):
        data = asdict(self)
        data.update(dram_bytes=self.dram_bytes, intensity=self.intensity)
        return data


def layer_traffic(plan, *, source="stream", dest="out"):
    """A plan's DRAM traffic: ``source`` is where its activations come from ("stream"/"host": memory,
    "feedback": on chip), ``dest`` where its output goes ("out": memory, "feedback": on chip)."""
    spec = plan.spec
    commands = plan.commands
    weight_bytes = sum(s.weight_words * s.weight_word_bits for s in commands) // 8
    param_bytes = sum(s.param_words for s in commands) * ceil(params_port_bits(spec) / 8)
    act_bytes = 0
    if source in ("stream", "host"):
        act_bytes = sum(s.act_words for s in commands if s.load_acts) * ceil(spec.act_word_bits / 8)
    out_bytes = 0
    if dest == "out":
        out_type = plan.postops.output_type(spec.acc_type)
        lane_bits = out_type.bits if plan.postops.requant else spec.acc_type.bits
        out_bytes = plan.out_beats * ceil(spec.cols * lane_bits / 8)
    return LayerTraffic(layer=plan.problem.name, engine=plan.engine, macs=plan.macs, weight_bytes=weight_bytes,
                        param_bytes=param_bytes, act_bytes=act_bytes, out_bytes=out_bytes,
                        compute_cycles=_alone(plan))


def _alone(plan):
    """Compute-only cycles of the layer on its own: activations from `acts` (ready), output to `out`."""
    import dataclasses
    tiles = tuple(dataclasses.replace(t, schedule=dataclasses.replace(t.schedule, out_dest="out",
                                                                       act_source="stream"))
                  for t in plan.tiles)
    return predict_plan(dataclasses.replace(plan, tiles=tiles)).cycles


def roofline(program, bytes_per_cycle):
    """Per layer of a compiled network (`hwgen.compiler.program.Program`): traffic, intensity and the bound at
    ``bytes_per_cycle`` of DRAM bandwidth."""
    if not bytes_per_cycle or bytes_per_cycle <= 0:
        raise ValueError(f"the DRAM bandwidth must be a positive number of bytes per cycle, not {bytes_per_cycle!r}")
    rows = []
    for pl in program.layers:
        traffic = layer_traffic(pl.plan, source=pl.source, dest=pl.dest)
        rows.append({**traffic.to_dict(), **traffic.at(bytes_per_cycle, program.spec.pes)})
    return rows
