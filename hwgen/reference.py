"""The NumPy golden model: the single source of truth for values.

Everything is computed exactly in int64 and then checked against the accumulator type: the hardware never
wraps (the mapper rejects accumulators too narrow for the worst case), so a result that does not fit is an
error here, not a value to wrap. `evaluate_loop_nest` is a slow, literal interpreter of any `LoopNest`; tests
use it to prove the fast reference computes what the user wrote.
"""

from __future__ import annotations

import itertools

import numpy as np

from .dtypes import IntType, int32, parse_dtype
from .errors import DataError, DataOverflowError, UnsupportedTypeError
from .ir import LoopNest

__all__ = ["conv2d", "linear", "run_problem", "evaluate_loop_nest", "float_layer"]


def _int_array(value, what, ndim):
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise UnsupportedTypeError(f"{what} must hold integers, not {array.dtype}; quantize it first")
    if ndim is not None and array.ndim != ndim:
        raise DataError(f"{what} must be a {ndim}-D array, got shape {array.shape}")
    return array.astype(np.int64)


def _pair(value, what, minimum):
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise DataError(f"{what} must be an integer >= {minimum} or a (height, width) pair, not {value!r}")
    return tuple(int(v) for v in pair)


def _check_exact(a, b, terms):
    """int64 must hold every partial sum exactly: ``terms`` products of the largest magnitudes."""
    bound = int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0)) * terms
    if bound >= 1 << 63:
        raise DataOverflowError(f"sums of {terms} products may reach {bound}, beyond int64; the reference cannot "
                            f"compute this layer exactly")


def _fit(result, acc_type):
    acc_type = parse_dtype(acc_type, what="acc_type")
    if result.size:
        low, high = int(result.min()), int(result.max())
        if low < acc_type.min or high > acc_type.max:
            worst = high if high > acc_type.max else low
            raise DataOverflowError(f"a result is {worst}, outside {acc_type} ({acc_type.min}..{acc_type.max}); the "
                                f"largest magnitude is {max(abs(low), abs(high))} - use a wider acc_type")
    return result


def conv2d(I: np.ndarray, W: np.ndarray, *, stride: int | tuple[int, int] = (1, 1),
           padding: int | tuple[int, int] = (0, 0), acc_type: IntType | str = int32,
           out_size: tuple[int, int] | None = None, pad_value: int = 0) -> np.ndarray:
    """``O[m,e,f] = sum_{c,r,s} I[c, e*sh + r - ph, f*sw + s - pw] * W[m,c,r,s]``, reads outside ``I`` give
    ``pad_value`` (0; a quantized input with zero point ``z`` pads with ``z``, the encoding of a real 0).

    Canonical layouts ``I[C,H,W]``, ``W[M,C,R,S]`` -> ``O[M,E,F]`` (int64). `out_size` ``(E, F)`` defaults to
    ``((H + 2*ph - R)//sh + 1, ...)``; a nest may compute fewer rows than that (its input is larger than it
    reads), never more than the padded input holds.
    """
    I = _int_array(I, "I", 3)
    W = _int_array(W, "W", 4)
    (C, H, Wd), (M, C_w, R, S) = I.shape, W.shape
    if C != C_w:
        raise DataError(f"I has {C} channels but W expects {C_w} (W shape {W.shape})")
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if out_size is None:
        out_size = ((H + 2 * ph - R) // sh + 1, (Wd + 2 * pw - S) // sw + 1)
    E, F = out_size
    if E < 1 or F < 1 or (E - 1) * sh + R > H + 2 * ph or (F - 1) * sw + S > Wd + 2 * pw:
        raise DataError(f"an {E}x{F} output of a {R}x{S} kernel with stride ({sh}, {sw}) does not fit an "
                         f"{H}x{Wd} input padded by ({ph}, {pw})")
    if int(pad_value) != pad_value:
        raise DataError(f"pad_value must be an integer, not {pad_value!r}")
    _check_exact(np.concatenate([I.ravel(), [int(pad_value)]]), W, C * R * S)
    padded = np.pad(I, ((0, 0), (ph, ph), (pw, pw)), constant_values=int(pad_value))
    out = np.zeros((M, E, F), dtype=np.int64)
    # One (r, s) tap at a time: the strided window of every output is a view, and the channel sum a tensordot.
    for r in range(R):
        for s in range(S):
            window = padded[:, r:r + (E - 1) * sh + 1:sh, s:s + (F - 1) * sw + 1:sw]   # [C, E, F]
            out += np.tensordot(W[:, :, r, s], window, axes=1)
    return _fit(out, acc_type)


def linear(X: np.ndarray, W: np.ndarray, *, acc_type: IntType | str = int32) -> np.ndarray:
    """``O[n,m] = sum_k X[n,k] * W[m,k]`` for ``X[N,K]``, ``W[M,K]`` -> ``O[N,M]`` (int64)."""
    X = _int_array(X, "X", 2)
    W = _int_array(W, "W", 2)
    if X.shape[1] != W.shape[1]:
        raise DataError(f"X has {X.shape[1]} features but W expects {W.shape[1]} (X {X.shape}, W {W.shape})")
    _check_exact(X, W, X.shape[1])
    return _fit(X @ W.T, acc_type)


def run_problem(problem, act_user_array, weight_user_array, acc_type=int32):
    """Evaluate a `ConvProblem` on tensors in the user's layouts; returns the output in the user's layout."""
    act = problem.canonical_act(_int_array(act_user_array, problem.act, None))
    weight = problem.canonical_weight(_int_array(weight_user_array, problem.weight, None))
    out = conv2d(act, weight, stride=(problem.stride_h, problem.stride_w),
                 padding=(problem.pad_h, problem.pad_w), acc_type=acc_type, out_size=(problem.E, problem.F))
    return problem.user_out(out)


def evaluate_loop_nest(nest: LoopNest, tensors: dict[str, np.ndarray],
                       shapes: dict[str, tuple[int, ...]] | None = None) -> np.ndarray:
    """Run `nest` literally: every loop iteration, reads outside a tensor (negative included) give 0.

    `tensors` maps the two factor names to arrays. The output shape is ``shapes[out]``, else the nest's
    declared shape, else one past the largest index written. Slow: for small tests only.
    """
    shapes = dict(shapes or {})
    arrays = {}
    for access in (nest.lhs, nest.rhs):
        if access.tensor not in tensors:
            raise DataError(f"{nest.name}: no array given for {access.tensor} (got {sorted(tensors)})")
        array = _int_array(tensors[access.tensor], access.tensor, len(access.indices))
        expected = shapes.get(access.tensor) or nest.declared_shape(access.tensor)
        if expected is not None and tuple(expected) != array.shape:
            raise DataError(f"{nest.name}: {access.tensor} has shape {array.shape}, expected {tuple(expected)}")
        arrays[access.tensor] = array
    out_shape = shapes.get(nest.out.tensor) or nest.declared_shape(nest.out.tensor)
    if out_shape is None:   # the largest value of an affine index over the loop box, plus one
        out_shape = tuple(i.const + sum(c * (nest.extent(v) - 1) for v, c in i.terms if c > 0) + 1
                          for i in nest.out.indices)
    result = np.zeros(out_shape, dtype=np.int64)

    def read(access, env):
        array = arrays[access.tensor]
        index = tuple(i.evaluate(env) for i in access.indices)
        if all(0 <= x < n for x, n in zip(index, array.shape)):
            return int(array[index])
        return 0

    names = nest.loop_names
    for values in itertools.product(*(range(loop.extent) for loop in nest.loops)):
        env = dict(zip(names, values))
        index = tuple(i.evaluate(env) for i in nest.out.indices)
        if not all(0 <= x < n for x, n in zip(index, result.shape)):
            raise IndexError(f"{nest.name}: {nest.out} writes {index}, outside the output shape {result.shape}")
        result[index] += read(nest.lhs, env) * read(nest.rhs, env)
    return result


def float_layer(plan, act_canonical, weight_canonical, *, pad_channels=False, lanes=False):
    """The fp32 accumulators ``[M, E, F]`` (bit patterns, int64) of a float layer planned for a float accelerator
    (`hwgen.tiling.LayerPlan` of a spec with ``act_type='bf16'``/``'fp16'``), computed in the hardware's order
    with the hardware's arithmetic (`hwgen.floats`): float addition is not associative, so the order is part of
    the result.

    ``act_canonical`` ``[C, H, W]`` and ``weight_canonical`` ``[M, C, R, S]`` hold bf16/fp16 bit patterns. For each
    command (tile) in plan order, for each of its folds in issue order (``for r: for s: for cg``, or the channel
    groups of the host-unrolled windows when the plan runs im2col), the weight-stationary column sums its
    ``rows`` products top to bottom from ``+0`` - rows past the last channel multiply ``0 * 0``, padded reads
    are ``+0`` - and the accumulator adds that column sum to the pixel's running total (the first fold of a
    command that starts the reduction takes it as it is; later commands of a split reduction continue it). On
    the output-stationary array each output sums its ``K = C*R*S`` unrolled inputs in order (``(r, s, c)``), the
    first product as it is.

    ``pad_channels=True``: also the array columns past ``M`` in the last m-fold (zero weights), ``[M', E, F]`` with
    ``M' = ceil(M / cols) * cols``: what the hardware's padding lanes carry (``+0``, or NaN where an activation
    it multiplies by ``+0`` is an infinity or NaN).

    ``lanes=True``: ``act_canonical`` may hold more than ``C`` channels, up to the ``ceil(C / rows) * rows``
    lanes of its activation words - the activations a layer fed on chip reads (the previous layer's padding
    lanes, `hwgen.compiler.program`), which the rows past ``C`` multiply by zero weights. (Weight-stationary,
    without host-unrolled windows; without ``lanes`` they are ``+0``.)
    """
    from . import floats
    from .tiling import im2col_acts, im2col_weights
    spec = plan.spec
    if not getattr(spec, "is_float", False):
        raise UnsupportedTypeError(f"{plan.problem.name}: float_layer evaluates layers of float accelerators; "
                                   f"use conv2d for integer ones")
    if plan.engine not in ("weight_stationary", "output_stationary"):
        raise UnsupportedTypeError(f"{plan.problem.name}: the float datapath runs on the weight-stationary and "
                                   f"output-stationary arrays, not on the {plan.engine} engine")
    fmt, rows = spec.float_format, spec.rows
    acts = np.asarray(act_canonical).astype(np.int64)
    weights = np.asarray(weight_canonical).astype(np.int64)
    p = plan.problem
    extra = 0
    if lanes and acts.ndim == 3 and acts.shape[0] > p.C:
        extra = acts.shape[0] - p.C
        if (extra > -(-p.C // rows) * rows - p.C or plan.im2col or plan.engine != "weight_stationary"):
            raise DataError(f"{p.name}: {acts.shape[0]} activation lanes for C={p.C} on {rows} rows "
                            f"(lanes past C are read by a weight-stationary layer without host-unrolled windows)")
        acts_lanes, acts = acts, acts[:p.C]
    if acts.shape != tuple(p.act_canonical_shape) or weights.shape != tuple(p.weight_canonical_shape):
        raise DataError(f"{p.name}: expected activations {p.act_canonical_shape} and weights "
                        f"{p.weight_canonical_shape}, got {acts.shape} and {weights.shape}")
    for name, array in (("activations", acts), ("weights", weights)):
        if array.size and (array.min() < 0 or array.max() > 0xFFFF):
            raise DataError(f"{p.name}: {name} must be {fmt} bit patterns (0..0xffff); encode real values with "
                            f"hwgen.floats.encode(values, {fmt!r})")
    if plan.im2col:
        acts, weights = im2col_acts(p, acts, pad_value=0), im2col_weights(weights)
    cols = spec.cols
    M_out = -(-p.M // cols) * cols if pad_channels else p.M
    if plan.engine == "output_stationary":
        # Every PE sums its output's K host-unrolled inputs in order, the first product as it is; a command
        # always covers the whole reduction, so the tiling does not change the order.
        K = acts.shape[0]
        w = np.zeros((M_out, K), dtype=np.uint64)
        w[:p.M] = weights[:, :, 0, 0]
        total = None
        for k in range(K):
            term = floats.product(acts[k][None].astype(np.uint64), w[:, k][:, None, None], fmt)
            total = term if total is None else floats.add(total, term)
        return total.astype(np.int64)
    total = np.zeros((M_out, p.E, p.F), dtype=np.uint64)
    for tile in plan.tiles:
        sched = tile.schedule
        sub = sched.problem
        m_rows = sched.m_folds * cols if pad_channels and tile.m1 == p.M else sub.M
        groups = sched.c_groups * rows
        window = np.zeros((groups, sub.H, sub.W), dtype=np.uint64)
        window[:sub.C] = acts[tile.c0:tile.c1, tile.h0:tile.h1]
        if extra and tile.c1 == p.C:       # the last channel group's lanes past C, as the words carry them
            more = min(extra, groups - sub.C)
            window[sub.C:sub.C + more] = acts_lanes[p.C:p.C + more, tile.h0:tile.h1]
        w = np.zeros((m_rows, groups, sub.R, sub.S), dtype=np.uint64)
        w[:sub.M, :sub.C] = weights[tile.m0:tile.m1, tile.c0:tile.c1]
        # Reads outside the window are padding: +0 (a margin wide enough for every read).
        ph, pw = sub.pad_h, sub.pad_w
        height = ph + sub.H + sub.R + sub.E * sub.stride_h
        width = pw + sub.W + sub.S + sub.F * sub.stride_w
        padded = np.zeros((groups, height, width), dtype=np.uint64)
        padded[:, ph:ph + sub.H, pw:pw + sub.W] = window
        out = total[tile.m0:tile.m0 + m_rows, tile.e0:tile.e0 + sub.E]
        first = sched.acc_init
        for r in range(sub.R):
            for s in range(sub.S):
                for cg in range(sched.c_groups):
                    column = np.zeros(out.shape, dtype=np.uint64)          # +0 enters the top PE
                    for i in range(rows):
                        c = cg * rows + i
                        tap = padded[c, r:r + (sub.E - 1) * sub.stride_h + 1:sub.stride_h,
                                     s:s + (sub.F - 1) * sub.stride_w + 1:sub.stride_w]
                        column = floats.add(column, floats.product(tap[None], w[:, c, r, s][:, None, None], fmt))
                    out[...] = column if first else floats.add(out, column)
                    first = False
    return total.astype(np.int64)
