"""Magnitude pruning of a quantized network: a target sparsity per layer (`prune_network`).

A layer's weights are ranked by their real magnitude, ``|q| * weight_scale[m]`` (per-channel scales make the
integer magnitude alone the wrong ranking), and the smallest ``round(sparsity * size)`` are set to 0; the
biases, scales and post-ops are unchanged, so the pruned network is again an exact integer reference network.
A batch-1 fully connected layer pruned this way runs on the sparse matrix-vector engine (`hwgen.sparse`:
cycles scale with the nonzero weights and activations) when the accelerator has one (``AcceleratorSpec(
mv_engine=True, sparse_mv=True)``, or `BuildConfig(sparsity=...)` on a sized one) and the map step finds it faster
there (`hwgen.compiler.program.map_layers`); the host packs its words from each input's nonzero activations
(`Program.bind`). Otherwise it runs on the dense engines: the same exact values, the dense cycles."""

import dataclasses

import numpy as np

from ..errors import MappingError
from ..sparse import magnitude_prune

__all__ = ["prune_network", "layer_sparsity"]


def _targets(network, sparsity):
    names = [layer.name for layer in network.layers]
    if isinstance(sparsity, dict):
        unknown = sorted(set(sparsity) - set(names))
        if unknown:
            raise MappingError(f"pruning targets name layers {unknown} that network {network.name!r} does not have; "
                               f"its layers are {names}")
        return dict(sparsity)
    return {name: sparsity for name in names}


def prune_network(network, sparsity):
    """A copy of ``network`` (a `QuantizedNetwork`) with each named layer's weights magnitude-pruned to its
    target: ``sparsity`` is one fraction for every layer or ``{layer name: fraction}``."""
    targets = _targets(network, sparsity)
    layers = []
    for layer in network.layers:
        if layer.name in targets:
            scale = np.asarray(layer.weight_scale, dtype=np.float64).reshape((-1,) + (1,) * (layer.weight.ndim - 1))
            real = np.abs(layer.weight) * scale
            keep = magnitude_prune(real, targets[layer.name]) != 0
            layer = dataclasses.replace(layer, weight=np.where(keep, layer.weight, 0).astype(layer.weight.dtype))
        layers.append(layer)
    return dataclasses.replace(network, layers=tuple(layers),
                               metadata={**network.metadata, "pruning": {k: float(v) for k, v in targets.items()}})


def layer_sparsity(network):
    """The fraction of zero weights of every layer."""
    return {layer.name: float(np.mean(np.asarray(layer.weight) == 0)) for layer in network.layers}
