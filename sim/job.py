"""What a simulation run is asked to do, as JSON passed from the runner (pytest/CLI) to the cocotb test."""

import json
from dataclasses import dataclass, field, asdict

import numpy as np

from hwgen.problem import ConvProblem
from hwgen.reference import conv2d as reference_conv2d
from hwgen.schedule import LayerSchedule
from hwgen.spec import AcceleratorSpec

__all__ = ["SimJob", "LayerData", "make_layer_data"]

_CANONICAL = ("name", "kind", "C", "H", "W", "M", "E", "F", "R", "S", "stride_h", "stride_w", "pad_h", "pad_w")


@dataclass
class SimJob:
    spec: dict
    layers: list                 # canonical ConvProblem fields per layer
    seed: int = 1
    stall: float = 0.0           # probability that a source idles / the sink refuses, per cycle and stream
    results_path: str = ""
    flip_weight_bit: list = None  # [layer, word, bit]: corrupt one weight bit on the wire (fault injection)
    max_cycles_factor: int = 20  # a layer that takes longer than this times the model is reported hung
    extra: dict = field(default_factory=dict)

    @staticmethod
    def canonical(problem: ConvProblem):
        return {key: getattr(problem, key) for key in _CANONICAL}

    def schedules(self):
        spec = AcceleratorSpec.from_dict(self.spec)
        return [LayerSchedule(spec, ConvProblem(**layer)) for layer in self.layers]

    def dumps(self):
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def loads(cls, text):
        return cls(**json.loads(text))


@dataclass
class LayerData:
    weight_words: list
    act_words: list
    expected_beats: list


def make_layer_data(schedule, seed):
    """Random operands over the full range of their types, and the reference result as output beats."""
    spec, p = schedule.spec, schedule.problem
    rng = np.random.default_rng(seed)
    acts = rng.integers(spec.act_type.min, spec.act_type.max, p.act_canonical_shape, endpoint=True)
    weights = rng.integers(spec.weight_type.min, spec.weight_type.max, p.weight_canonical_shape, endpoint=True)
    expected = reference_conv2d(acts, weights, stride=(p.stride_h, p.stride_w), padding=(p.pad_h, p.pad_w),
                                acc_type=spec.acc_type, out_size=(p.E, p.F))
    return LayerData(weight_words=schedule.pack_weights(weights), act_words=schedule.pack_acts(acts),
                     expected_beats=schedule.pack_outputs(expected))
