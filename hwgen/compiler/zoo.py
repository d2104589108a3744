"""Built-in integer networks: LeNet-5 and AlexNet as `IntLayer` lists, with random int8 weights (cycles, plans
and resources do not depend on the values; the digits demo, `hwgen.examples.digits`, trains a real LeNet).

`benchmarks/networks.py` measures them; `hwgen explore lenet|alexnet` sweeps accelerators for them.
"""

import numpy as np

from ..postops import PostOps, QuantParams, quantize_multiplier
from ..problem import ConvProblem
from .program import IntLayer

__all__ = ["NETWORKS", "alexnet", "conv", "fc", "lenet"]


def conv(name, C, M, H, W, R, stride=1, pad=0):
    return ConvProblem(name, "conv2d", C=C, H=H, W=W, M=M, E=(H + 2 * pad - R) // stride + 1,
                       F=(W + 2 * pad - R) // stride + 1, R=R, S=R, stride_h=stride, stride_w=stride,
                       pad_h=pad, pad_w=pad)


def fc(name, K, M):
    return ConvProblem(name, "linear", C=K, H=1, W=1, M=M, E=1, F=1, R=1, S=1)


def _layer(rng, problem, postops, *, random=True, **extra):
    p = problem
    pairs = [quantize_multiplier(100.0 / (128 * 128 * p.C * p.R * p.S)) for _ in range(p.M)]
    params = QuantParams(bias=rng.integers(-1000, 1000, p.M), multiplier=np.array([a for a, _ in pairs]),
                         shift=np.array([b for _, b in pairs]))
    shape = p.weight_canonical_shape
    # random=False: one zero broadcast to the shape (no memory; planning and the models read shapes only)
    weight = rng.integers(-128, 128, shape) if random else np.broadcast_to(np.int64(0), shape)
    return IntLayer(p.name, p, weight, postops, params, **extra)


def lenet(seed=0, *, random=True):
    """LeNet-5: conv 1->6 5x5 pad 2, 2x2 max pool, conv 6->16 5x5, pool, FC 400->120->84->10.
    ``random=False``: zero weights (faster to make; for the cycle model and planning only)."""
    rng = np.random.default_rng(seed)
    pool = PostOps(bias=True, requant=True, relu=True, pool="max")
    relu = PostOps(bias=True, requant=True, relu=True)
    return [_layer(rng, conv("conv1", 1, 6, 28, 28, 5, pad=2), pool, random=random),
            _layer(rng, conv("conv2", 6, 16, 14, 14, 5), pool, random=random),
            _layer(rng, fc("fc1", 400, 120), relu, flatten=True, random=random),
            _layer(rng, fc("fc2", 120, 84), relu, random=random),
            _layer(rng, fc("fc3", 84, 10), PostOps(bias=True, requant=True), random=random)]


def alexnet(seed=0, *, random=True):
    """conv1-5 and FC6-8 (ImageNet AlexNet, one tower); its 3x3 stride-2 max poolings are not in the post-op
    chain (2x2 only): the host pools at those three boundaries, which go through `out` anyway (the maps do not
    fit on chip). ``random=False``: zero weights (61 M of them: much faster to make)."""
    rng = np.random.default_rng(seed)
    relu = PostOps(bias=True, requant=True, relu=True)
    r = random
    return [_layer(rng, conv("conv1", 3, 96, 227, 227, 11, stride=4), relu, host_pool=(3, 2), random=r),
            _layer(rng, conv("conv2", 96, 256, 27, 27, 5, pad=2), relu, host_pool=(3, 2), random=r),
            _layer(rng, conv("conv3", 256, 384, 13, 13, 3, pad=1), relu, random=r),
            _layer(rng, conv("conv4", 384, 384, 13, 13, 3, pad=1), relu, random=r),
            _layer(rng, conv("conv5", 384, 256, 13, 13, 3, pad=1), relu, host_pool=(3, 2), random=r),
            _layer(rng, fc("fc6", 9216, 4096), relu, flatten=True, random=r),
            _layer(rng, fc("fc7", 4096, 4096), relu, random=r),
            _layer(rng, fc("fc8", 4096, 1000), PostOps(bias=True, requant=True), random=r)]


NETWORKS = {"lenet": lenet, "alexnet": alexnet}
