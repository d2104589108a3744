"""Tiling: a layer whose tensors exceed the buffers becomes a sequence of commands that each fit.

A tile is a block of output channels ``[m0, m1)`` x output rows ``[e0, e1)`` x input channels ``[c0, c1)``.
Its activations are the rows of the input window it reads (padding is never stored: a tile at the border
keeps its share of the padding as a smaller pad), its weights are streamed, its outputs are emitted when its
last input-channel tile has been added in (the accumulators keep the partial sums between those tiles).

Tiles are ordered ``for e-band: for m-tile: for c-tile`` or ``for m-tile: for e-band: for c-tile``; an
activation tile that the next command uses again stays in its bank (no reload). The candidates are, for every
input-channel tile size, every band height that fits (one per number of bands, plus the tallest), with m-tiles
as large as the buffers allow or of one m-fold, and both orders; the one that moves the fewest bytes wins (ties: fewer
commands). The tests compare the choice with every tiling `_build` can make.

Planning is bounded: each candidate is evaluated in closed form (`_Candidate`: bytes moved, commands, the largest
value of each configuration field) and only the winner is built, so its cost does not grow with the number of
tiles; a layer of more than `MAX_COMMANDS` commands is rejected up front (`PlanTooLargeError`).
`tests/reference_planner.py` keeps the planner that built every candidate, and the tests check that both choose
the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil

import numpy as np

from .errors import (AccumulatorOverflowError, BufferOverflowError, ConfigFieldError, DataError, DesignError,
                     DesignTypeError, MappingError, PlanTooLargeError)
from .hw.config import COUNT_FIELDS, field_bits
from .postops import PostOps, check_supported, pack_params
from .problem import ConvProblem
from .schedule import LayerSchedule, fold_period
from .dtypes import IntType
from .spec import MAX_BUFFER_WORDS, PACKED_WEIGHT_BITS, AcceleratorSpec, buffer_bytes_for

__all__ = ["Tile", "LayerPlan", "plan_layer", "SparseLayerPlan", "plan_sparse_layer", "MAX_COMMANDS"]

ORDERS = ("e_outer", "m_outer")
# The most commands one layer may take. Planning evaluates its candidates in closed form, whatever their size,
# but the chosen plan is built, modelled and streamed command by command: a layer that needs more is
# rejected up front (`PlanTooLargeError`), naming the buffers whose size sets the tiles.
MAX_COMMANDS = 4096
# The largest tensors a layer may have (elements): the reference, the cycle model (which times every output beat)
# and the simulators hold them whole, so a layer beyond these is rejected once planned (closed form, cheap) and
# before any model runs, naming the tensor.
MAX_TENSOR_ELEMENTS = 1 << 28
MAX_OUTPUT_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class Tile:
    schedule: LayerSchedule
    m0: int
    m1: int
    c0: int
    c1: int
    e0: int
    e1: int
    h0: int          # first input row of the tile's window (global index)
    h1: int
    p0: int = None   # output-stationary pixel-range tiles: output pixels [p0, p1) in raster order
    p1: int = None

    @property
    def pixel_range(self):
        return self.p0 is not None


@dataclass(frozen=True)
class LayerPlan:
    spec: AcceleratorSpec
    problem: ConvProblem
    tiles: tuple
    order: str
    bytes_moved: dict = field(default_factory=dict)
    postops: PostOps = PostOps()
    im2col: bool = False   # the tiles run `lowered`: the host unrolls (r, s, c) into channels of a 1x1 conv
    lowered: ConvProblem = None

    @property
    def commands(self):
        return [tile.schedule for tile in self.tiles]

    @property
    def macs(self):
        return self.problem.macs

    @property
    def out_beats(self):
        return sum(tile.schedule.out_beats for tile in self.tiles)

    @property
    def tiled(self):
        return len(self.tiles) > 1

    # Host data -----------------------------------------------------------------------------------------------

    def config_words(self):
        return [tile.schedule.config_word() for tile in self.tiles]

    def weight_stream(self, weight_canonical):
        if self.im2col:
            weight_canonical = im2col_weights(weight_canonical)
        words = []
        for tile in self.tiles:
            words += tile.schedule.pack_weights(weight_canonical[tile.m0:tile.m1, tile.c0:tile.c1])
        return words

    def params_stream(self, params):
        """Post-op parameters (`hwgen.postops.QuantParams`) -> one beat per m-fold of every emitting tile."""
        if not self.postops.needs_params:
            return []
        words = []
        for tile in self.tiles:
            if tile.schedule.param_words:
                words += pack_params(params.channels_slice(tile.m0, tile.m1), cols=self.spec.cols,
                                      lanes=self.spec.postop_lanes)
        return words

    @property
    def weight_type(self):
        """The type of the weights the host streams: int4/int2 when packed, else the spec's."""
        return self.tiles[0].schedule.weight_type

    @property
    def engine(self):
        """The dataflow of the engine the plan's commands run on."""
        return self.tiles[0].schedule.engine

    def act_stream(self, act_canonical, *, pad_value=0):
        """The words of every activation load, in command order. ``pad_value`` (the input's zero point) is what
        the host unrolls into the padding when the plan takes host-unrolled windows."""
        if self.im2col:
            act_canonical = im2col_acts(self.problem, act_canonical, pad_value=pad_value)
        words = []
        for tile in self.tiles:
            if tile.schedule.load_acts:
                if tile.pixel_range:
                    window = act_canonical[tile.c0:tile.c1].reshape(tile.c1 - tile.c0, -1)[:, tile.p0:tile.p1]
                else:
                    window = act_canonical[tile.c0:tile.c1, tile.h0:tile.h1]
                words += tile.schedule.pack_acts(window)
        return words

    def _out_rows(self, tile):
        """Rows of the (post-op) output a tile emits: pooling halves row indices (bands start even)."""
        if self.postops.pool == "none":
            return tile.e0, tile.e1
        return tile.e0 // 2, tile.e0 // 2 + tile.schedule.out_size[0]

    @property
    def out_shape(self):
        p = self.problem
        return (p.M, *self.postops.out_size(p.E, p.F))

    def pack_outputs(self, out_canonical):
        """The layer's output after the post-ops, canonical ``[M, E', F']`` -> every beat on ``out``."""
        beats = []
        out_canonical = np.asarray(out_canonical)
        for tile in self.tiles:
            if tile.schedule.acc_emit:
                m1 = len(out_canonical) if tile.m1 == self.problem.M else tile.m1   # padding lanes, if given
                if tile.pixel_range:
                    flat = out_canonical[tile.m0:m1].reshape(m1 - tile.m0, -1)
                    beats += tile.schedule.pack_outputs(flat[:, None, tile.p0:tile.p1])
                    continue
                r0, r1 = self._out_rows(tile)
                beats += tile.schedule.pack_outputs(out_canonical[tile.m0:m1, r0:r1])
        return beats

    def apply_postops(self, acc, params):
        """The golden output of the layer: `hwgen.postops.apply` on its accumulators ``acc[M, E, F]``. With
        stochastic rounding each emitting command rounds with its own draws (the generators restart per command),
        so the chain is applied command by command."""
        from .postops import apply, apply_float
        spec = self.spec
        if spec.is_float:
            return apply_float(acc, params, self.postops)
        if self.postops.rounding != "stochastic":
            return apply(acc, params, self.postops, spec.acc_type)
        acc = np.asarray(acc)
        out = np.zeros(self.out_shape, dtype=np.int64)
        for tile in self.tiles:
            if not tile.schedule.acc_emit:
                continue
            sub_params = params.channels_slice(tile.m0, tile.m1) if params is not None else None
            if tile.pixel_range:
                if self.postops.pool != "none":
                    raise MappingError(f"{self.problem.name}: stochastic rounding with pooling on pixel-range "
                                       f"commands is not supported; drop the pooling or round to nearest")
                flat = acc.reshape(acc.shape[0], -1)[tile.m0:tile.m1, None, tile.p0:tile.p1]
                values = apply(flat, sub_params, self.postops, spec.acc_type, seed=spec.rounding_seed,
                               cols=spec.cols)
                out.reshape(out.shape[0], -1)[tile.m0:tile.m1, tile.p0:tile.p1] = values[:, 0]
                continue
            rows = tile.schedule.problem.E
            values = apply(acc[tile.m0:tile.m1, tile.e0:tile.e0 + rows], sub_params, self.postops,
                           spec.acc_type, seed=spec.rounding_seed, cols=spec.cols)
            r0, r1 = self._out_rows(tile)
            out[tile.m0:tile.m1, r0:r1] = values
        return out

    def unpack_outputs(self, beats):
        p = self.problem
        if len(beats) != self.out_beats:
            raise DataError(f"{p.name}: expected {self.out_beats} output beats, got {len(beats)}")
        out = np.zeros(self.out_shape, dtype=np.int64)
        at = 0
        for tile in self.tiles:
            n = tile.schedule.out_beats
            if n:
                values = tile.schedule.unpack_outputs(beats[at:at + n])
                if tile.pixel_range:
                    out.reshape(p.M, -1)[tile.m0:tile.m1, tile.p0:tile.p1] = values.reshape(tile.m1 - tile.m0, -1)
                else:
                    r0, r1 = self._out_rows(tile)
                    out[tile.m0:tile.m1, r0:r1] = values
                at += n
        return out

    def describe_output(self, beat, lane):
        at = 0
        for tile in self.tiles:
            n = tile.schedule.out_beats
            if beat < at + n:
                local = tile.schedule.describe_output(beat - at, lane)
                where = f"p{tile.p0}:{tile.p1}" if tile.pixel_range else f"e{tile.e0}:{tile.e1}"
                return f"tile m{tile.m0}:{tile.m1} {where}: {local} (local)"
            at += n
        return "beyond the plan"

    def manifest(self):
        return {"layer": self.problem.name, "kind": self.problem.kind, "problem": self.problem.to_dict(),
                "postops": {"bias": self.postops.bias, "requant": self.postops.requant,
                            "relu": self.postops.relu, "pool": self.postops.pool,
                            "rounding": self.postops.rounding},
                "packed_bits": self.tiles[0].schedule.packed_bits,
                "config_words": [hex(word) for word in self.config_words()],
                "order": self.order, "commands": len(self.tiles), "im2col": self.im2col,
                "bytes_moved": self.bytes_moved,
                "tiles": [{"m": [t.m0, t.m1], "c": [t.c0, t.c1], "e": [t.e0, t.e1], "h": [t.h0, t.h1],
                           **({"pixels": [t.p0, t.p1]} if t.pixel_range else {}),
                           "load_acts": t.schedule.load_acts, "act_bank": t.schedule.act_bank,
                           "acc_init": t.schedule.acc_init, "acc_emit": t.schedule.acc_emit}
                          for t in self.tiles]}


def im2col_problem(problem):
    """The layer as a 1x1 convolution over explicitly unrolled windows: channel ``(r*S + s)*C + c`` of the
    unrolled input at output pixel (e, f) is ``I[c, e*sh + r - ph, f*sw + s - pw]``."""
    p = problem
    return ConvProblem(p.name, p.kind, C=p.C * p.R * p.S, H=p.E, W=p.F, M=p.M, E=p.E, F=p.F, R=1, S=1,
                       act=p.act, weight=p.weight, out=p.out)


def im2col_acts(problem, act_canonical, *, pad_value=0):
    p = problem
    padded = np.pad(np.asarray(act_canonical), ((0, 0), (p.pad_h, p.pad_h), (p.pad_w, p.pad_w)),
                    constant_values=pad_value)
    taps = [padded[:, r:r + (p.E - 1) * p.stride_h + 1:p.stride_h, s:s + (p.F - 1) * p.stride_w + 1:p.stride_w]
            for r in range(p.R) for s in range(p.S)]
    return np.concatenate(taps, axis=0)     # [(r, s, c), E, F]


def im2col_weights(weight_canonical):
    w = np.asarray(weight_canonical)
    M, C, R, S = w.shape
    return w.transpose(0, 2, 3, 1).reshape(M, R * S * C, 1, 1)


def _window(problem, e0, e1):
    """Input rows [h0, h1) read by output rows [e0, e1), clipped to the tensor, and the tile's top pad."""
    p = problem
    top = e0 * p.stride_h - p.pad_h
    bottom = (e1 - 1) * p.stride_h + p.R - p.pad_h       # exclusive
    h0, h1 = max(0, top), min(p.H, bottom)
    if h1 <= h0:
        # The band reads only padding: load one real row and pad the tile so every read misses it.
        return 0, 1, (e1 - e0 - 1) * p.stride_h + p.R
    return h0, h1, h0 - top


def _sub_problem(problem, *, m0, m1, c0, c1, e0, e1):
    h0, h1, pad_top = _window(problem, e0, e1)
    p = problem
    sub = ConvProblem(f"{p.name}", p.kind, C=c1 - c0, H=h1 - h0, W=p.W, M=m1 - m0, E=e1 - e0, F=p.F, R=p.R,
                      S=p.S, stride_h=p.stride_h, stride_w=p.stride_w, pad_h=pad_top, pad_w=p.pad_w,
                      act=p.act, weight=p.weight, out=p.out)
    return sub, h0, h1


def _even_ceil(total, count, band):
    """The shortest band height (a multiple of `band`) that cuts `total` rows into `count` bands."""
    return ceil(ceil(total / count) / band) * band


def _ranges(total, step):
    return [(start, min(total, start + step)) for start in range(0, total, step)]


def _computed_rows(problem, postops):
    """Output rows worth computing: 2x2 pooling (floor) drops an odd last row, so it is not computed."""
    return problem.E - (problem.E % 2 if postops.pool != "none" else 0)


@lru_cache(maxsize=8192)
def _schedule(spec, problem, **flags):
    """Candidate plans share most of their commands: build (and validate) each one once."""
    return LayerSchedule(spec, problem, **flags)


def _build(spec, problem, postops, *, cg_tile, e_tile, mf_tile, order, engine=None, packed_bits=None):
    p, rows, cols = problem, spec.rows, spec.cols
    c_ranges = _ranges(p.C, cg_tile * rows)
    e_ranges = _ranges(_computed_rows(p, postops), e_tile)
    m_ranges = _ranges(p.M, mf_tile * cols)
    outer = [(e, m) for e in e_ranges for m in m_ranges] if order == "e_outer" else \
        [(e, m) for m in m_ranges for e in e_ranges]
    keep_partials = len(c_ranges) > 1
    steps = [(e, m, c) for e, m in outer for c in c_ranges]
    # Activation tiles are identified by (e-band, c-range); reuse one when the next command needs it too.
    act_keys = [(e, c) for e, _, c in steps]
    tiles, bank, loaded, param_bank = [], 1, None, 1
    subs = {}     # tiles of the same shape share their sub-problem (and so their schedules)
    for index, ((e0, e1), (m0, m1), (c0, c1)) in enumerate(steps):
        key = act_keys[index]
        load = key != loaded
        if load:
            bank ^= 1
            loaded = key
        release = index + 1 == len(steps) or act_keys[index + 1] != key
        shape = (m1 - m0, c1 - c0, e0, e1)
        if shape not in subs:
            subs[shape] = _sub_problem(p, m0=m0, m1=m1, c0=c0, c1=c1, e0=e0, e1=e1)
        sub, h0, h1 = subs[shape]
        emit = c1 == p.C
        if emit and postops.needs_params:
            param_bank ^= 1
        schedule = _schedule(spec, sub, engine=engine, act_bank=bank, load_acts=load, release=release,
                             acc_init=c0 == 0,
                             acc_emit=emit, keep_partials=keep_partials, postops=postops,
                             param_bank=param_bank if emit and postops.needs_params else 0,
                             packed_bits=packed_bits)
        tiles.append(Tile(schedule, m0, m1, c0, c1, e0, e1, h0, h1))
    moved = _bytes_moved(spec, tiles)
    return LayerPlan(spec, problem, tuple(tiles), order, moved, postops)


def _bytes_moved(spec, tiles):
    act_bytes = sum(t.schedule.act_words for t in tiles if t.schedule.load_acts) * spec.act_word_bits // 8
    weight_bytes = sum(t.schedule.weight_words * t.schedule.weight_word_bits for t in tiles) // 8
    out_bytes = sum(t.schedule.out_beats for t in tiles) * spec.acc_word_bits // 8
    return {"activations": act_bytes, "weights": weight_bytes, "outputs": out_bytes,
            "total": act_bytes + weight_bytes + out_bytes}


def _max_m_folds_per_command(spec, pixels):
    """The most m-folds one command of `pixels` output pixels may hold: its ``m_folds`` and ``emit_words =
    m_folds * pixels`` must fit their fields of the configuration word (`hw.config.field_bits`)."""
    limit = (1 << field_bits(spec)) - 1
    return min(limit, limit // max(pixels, 1))


def plan_layer(spec: AcceleratorSpec, problem: ConvProblem, postops: PostOps = PostOps(), *,
               im2col: bool | str = "auto", engine: str | None = None, packed_bits: int | None = None) -> LayerPlan:
    """The plan whose every command fits the buffers and that moves the fewest bytes.

    With few input channels (C < rows) most array rows idle, as the implicit im2col puts only channels on
    rows; ``im2col="auto"`` then also plans the layer as a 1x1 convolution over host-unrolled windows (the
    activations are duplicated R*S times in the stream, which `bytes_moved` shows) and keeps whichever plan
    the cycle model says is faster. ``im2col=True``/``False`` forces the choice.

    Raises `BufferOverflowError` naming the buffer and the size needed when even the smallest tile (one output
    row, one group of ``rows`` input channels, ``cols`` output channels) does not fit, `PlanTooLargeError` when
    every tiling takes more than `MAX_COMMANDS` commands, and the errors of `_check_layer` for what no tiling
    changes (the accumulator type, the pooling line buffer, the engine's kind of layer).

    ``packed_bits=4`` or ``2`` (a fully connected layer on the matrix-vector engine of an accelerator whose
    ``packed_weight_bits`` has it) streams its int4 weights two to a byte, or its int2 weights four: each
    command streams ``ceil(slots / k)`` words (``k = 8 // packed_bits``), which the engine decodes in front of
    its multipliers (a word every ``k`` slots); cycles are unchanged while the stream keeps up, the weight
    bytes (and the weight FIFO's words) shrink ``k`` times, and the accumulator has to hold a reduction of
    int8 x int4 (int2) products only."""
    plan = _plan_layer(spec, problem, postops, im2col=im2col, engine=engine, packed_bits=packed_bits)
    _check_size(problem)        # after the closed-form planning (its errors are more specific), before any model
    return plan


def _check_size(problem):
    """Reject a layer whose input, weight or output tensor is larger than hwgen handles (`MAX_TENSOR_ELEMENTS`,
    `MAX_OUTPUT_ELEMENTS`); the planner builds only the chosen plan, so this costs nothing first."""
    p = problem
    for tensor, shape, limit in (("input", (p.C, p.H, p.W), MAX_TENSOR_ELEMENTS),
                                 ("weight", (p.M, p.C, p.R, p.S), MAX_TENSOR_ELEMENTS),
                                 ("output", (p.M, p.E, p.F), MAX_OUTPUT_ELEMENTS)):
        size = 1
        for extent in shape:
            size *= extent
        if size > limit:
            raise PlanTooLargeError(
                f"{p.name}: its {tensor} tensor has {'x'.join(map(str, shape))} = {size:,} elements; hwgen plans "
                f"layers of at most {limit:,} {tensor} elements (the reference network and the cycle model hold "
                f"them whole): split the layer (fewer output channels or a smaller batch or image per layer)")


def _plan_layer(spec: AcceleratorSpec, problem: ConvProblem, postops: PostOps = PostOps(), *,
                im2col: bool | str = "auto", engine: str | None = None, packed_bits: int | None = None) -> LayerPlan:
    """`plan_layer` without the size check."""
    if im2col not in ("auto", True, False):
        raise DesignError(f"im2col must be 'auto', True or False, not {im2col!r}")
    if not isinstance(spec, AcceleratorSpec):
        raise DesignTypeError(f"plan_layer: spec must be an AcceleratorSpec, not {spec!r}")
    if not isinstance(problem, ConvProblem):
        raise DesignTypeError(f"plan_layer: problem must be a ConvProblem (from hwgen.recognize), not {problem!r}")
    if not isinstance(postops, PostOps):
        raise DesignTypeError(f"{problem.name}: postops must be a hwgen.PostOps, not {postops!r}")
    check_supported(spec, postops, problem.name)
    if engine is not None and engine not in spec.engines:
        raise MappingError(f"{problem.name}: accelerator {spec.name!r} has no {engine} engine (it has "
                           f"{', '.join(spec.engines)})")
    if packed_bits is not None:
        if isinstance(packed_bits, bool) or packed_bits not in PACKED_WEIGHT_BITS:
            raise DesignError(f"packed_bits must be one of {PACKED_WEIGHT_BITS} (int4 or int2 weights) or None "
                              f"(unpacked), not {packed_bits!r}")
        if (engine or spec.dataflow) != "matrix_vector":
            raise MappingError(f"{problem.name}: packed int{packed_bits} weights run on the matrix-vector engine, "
                               f"not on the {engine or spec.dataflow} one")
    _check_layer(spec, problem, postops, engine, packed_bits)
    if postops.pool != "none" and (problem.E < 2 or problem.F < 2):
        # Checked on the layer as written (tiles and the unrolled form would report a part of it).
        raise MappingError(f"{problem.name}: 2x2 pooling needs an output of at least 2x2, not "
                           f"{problem.E}x{problem.F}; drop the pooling or enlarge the layer")
    if engine == "matrix_vector" and spec.dataflow != "matrix_vector":
        # The matrix-vector engine beside an array: fully connected layers only, planned as on their own.
        return _plan_tiles(spec, problem, postops, engine=engine, packed_bits=packed_bits)
    if spec.dataflow == "output_stationary":
        if im2col is False:
            raise MappingError(f"{problem.name}: the output-stationary array always takes host-unrolled (im2col) "
                               f"activations; drop im2col=False or use a weight_stationary accelerator")
        return _plan_output_stationary(spec, problem, postops)
    lowerable = problem.R * problem.S > 1
    if im2col is True and not lowerable:
        im2col = False
    if im2col is False or (im2col == "auto" and (problem.C >= spec.rows or not lowerable)):
        return _plan_tiles(spec, problem, postops, packed_bits=packed_bits)
    # A form that cannot be planned (its tiles overflow a buffer or a configuration field, or too many of them)
    # leaves the other.
    unplannable = (BufferOverflowError, ConfigFieldError, PlanTooLargeError)
    try:
        lowered = _plan_tiles(spec, im2col_problem(problem), postops)
    except unplannable as error:
        if im2col is True and not isinstance(error, BufferOverflowError):
            raise
        if im2col is True:
            # Say which layer the sizes are of: the unrolled one, not the one the user wrote.
            raise BufferOverflowError(
                f"{problem.name} unrolled on the host (im2col=True: a 1x1 convolution over K = C*R*S = "
                f"{problem.C}*{problem.R}*{problem.S} = {problem.C * problem.R * problem.S} channels at each of "
                f"the E*F = {problem.E}*{problem.F} output pixels) does not fit: {error}") from None
        return _plan_tiles(spec, problem, postops)   # its error, if any, speaks of the layer as written
    lowered = LayerPlan(spec, problem, lowered.tiles, lowered.order, lowered.bytes_moved, postops, True,
                        lowered.problem)
    if im2col is True:
        return lowered
    from .perf import predict_plan
    try:
        direct = _plan_tiles(spec, problem, postops)
    except unplannable:
        return lowered
    return lowered if predict_plan(lowered).cycles < predict_plan(direct).cycles else direct


def _check_layer(spec, problem, postops, engine=None, packed_bits=None):
    """What holds for every command of the layer, checked once on the layer as the user wrote it (the
    commands would report a part of it)."""
    p = problem
    postops.output_type(spec.acc_type)
    # The accumulators keep partial sums across input-channel tiles: the whole reduction must fit, of the
    # products of the weights streamed (packed: int4/int2, decoded into the int8 lanes).
    K = p.C * p.R * p.S
    wtype = spec.weight_type if packed_bits is None else IntType(packed_bits)
    worst = K * spec.max_abs_product(wtype)
    if worst > spec.acc_type.max:
        need = worst.bit_length() + 1
        terms = (f"K = in_features = {K}" if p.kind == "linear" and p.R == p.S == 1 else
                 f"C*R*S = {p.C}*{p.R}*{p.S} = {K}")
        raise AccumulatorOverflowError(
            f"{p.name}: the reduction over {terms} products of {spec.act_type} x {wtype} "
            f"(|product| <= {spec.max_abs_product(wtype)}) can reach {worst}, which overflows acc_type {spec.acc_type} "
            f"(max {spec.acc_type.max}); use an accumulator of at least int{need} or reduce the reduction size")
    if postops.pool != "none" and p.F > spec.max_pool_width:
        raise MappingError(f"{p.name}: pooling an output {p.F} pixels wide needs a line buffer of {p.F // 2} "
                           f"entries but the post-op pipeline holds {spec.max_pool_width // 2}; set "
                           f"AcceleratorSpec(max_pool_width=...) >= {p.F}")
    if (engine or spec.dataflow) == "matrix_vector" and not (p.R == p.S == p.H == p.E == 1):
        raise MappingError(
            f"{p.name}: the matrix-vector engine runs fully connected layers (a matrix times vectors); a "
            f"{p.R}x{p.S} convolution would stream its weights once per output pixel - map it to a "
            f"weight_stationary accelerator")


def _plan_tiles(spec, problem, postops, engine=None, *, widest=False, packed_bits=None):
    """Candidates: for every input-channel tile size, every band of output rows that fits (bands even when
    pooling; one height per band count, plus the tallest), m-tiles as large as the buffers allow or of one
    m-fold, both loop orders; the fewest bytes moved wins (ties: fewer commands, then the first candidate).

    Each candidate is evaluated in closed form (`_Candidate`: bytes moved, commands and the largest value of
    every configuration field, without building a command), so planning costs the same for 1 command or
    4,096; only the winner is built. Candidates of more than `MAX_COMMANDS` commands are left out; when that
    leaves none, the planning is repeated with ``widest=True``, which also tries the most input channels a bank
    holds (a reduction of more than 16 bank-loads otherwise falls back to one channel group per command)."""
    p = problem
    c_groups, m_folds = ceil(p.C / spec.rows), ceil(p.M / spec.cols)
    rows_out = _computed_rows(p, postops)
    band = 2 if postops.pool != "none" else 1      # the thinnest band: one pooling window high
    what = "one output row" if band == 1 else "two output rows (one pooling window)"
    smallest_act = int(_tallest_windows(p, np.array([band]), rows_out)[0]) * p.W
    if smallest_act > spec.act_bank_depth:
        need = buffer_bytes_for(2 * smallest_act, spec.act_word_bits)
        raise BufferOverflowError(
            f"{p.name}: even {what} of one group of {spec.rows} input channels reads {smallest_act // p.W} input "
            f"rows x W={p.W} = {smallest_act} activation words, more than one activation bank holds "
            f"({spec.act_bank_depth} words); set act_buffer_bytes >= {need} (two banks)")
    if band * p.F > spec.acc_depth:
        need = buffer_bytes_for(band * p.F, spec.acc_word_bits)
        raise BufferOverflowError(
            f"{p.name}: {what} of F={p.F} pixels need {band * p.F} accumulator words but the accumulator "
            f"buffer holds {spec.acc_depth}; set acc_buffer_bytes >= {need}")
    # Band heights worth looking at: those that fit the accumulators (e*F words) and give at most
    # MAX_COMMANDS bands; the tallest window of each, for all of them at once.
    lowest = max(band, ceil(rows_out / MAX_COMMANDS))
    heights = np.arange(min(rows_out, spec.acc_depth // p.F), lowest - 1, -1, dtype=np.int64)
    heights = heights[(heights % band == 0)]
    windows = _tallest_windows(p, heights, rows_out)
    best, field_failure, too_many = None, None, None
    bands = {}                                       # e_tile -> its bands' windows (`_BandStats`)
    # The matrix-vector engine reduces over all of K in one command: only whole channel ranges.
    smallest_cg = c_groups if (engine or spec.dataflow) == "matrix_vector" else 1
    # Input-channel tile sizes: the whole reduction, then c_groups/k for small k (a finer split only reloads
    # more), down to one group.
    cg_sizes = {ceil(c_groups / k) for k in range(1, 17)} | {1}
    if widest:   # as many groups as a bank holds beside the thinnest band, and the even split they give
        most_groups = max(1, min(c_groups, spec.act_bank_depth // smallest_act))
        cg_sizes |= {most_groups, ceil(c_groups / ceil(c_groups / most_groups))}
    cg_sizes = sorted(cg_sizes, reverse=True)
    for cg_tile in [size for size in cg_sizes if size >= smallest_cg]:
        # Every band of output rows whose window fits one bank and whose pixels fit the accumulators: the
        # tallest is not always the cheapest (a shorter one may keep every m-fold's partial sums, or with
        # stride > R skip input rows no output reads). Band heights that give the same number of bands
        # differ only in where the last one ends: the tallest and the shortest of each count stand for them.
        fitting = heights[cg_tile * windows * p.W <= spec.act_bank_depth]
        counts = -(-rows_out // fitting)
        shortest = -(-(-(-rows_out // counts)) // band) * band          # _even_ceil(rows_out, count, band)
        e_tiles = sorted((set(shortest.tolist()) & set(fitting.tolist())) | set(fitting[:1].tolist()),
                         reverse=True)
        for e_tile in e_tiles:
            # A tile's post-op parameters must fit one bank of the parameter memory, and its counts
            # (m_folds, emit_words = m_folds * pixels) their fields of the configuration word.
            most = min(m_folds, spec.max_param_folds) if postops.needs_params else m_folds
            most = min(most, _max_m_folds_per_command(spec, e_tile * p.F))
            if cg_tile != c_groups:   # partial sums of every m-fold in the tile stay in the accumulators
                most = min(most, spec.acc_depth // (e_tile * p.F))
            if most < 1:
                continue
            if e_tile not in bands:
                bands[e_tile] = _BandStats(p, e_tile, rows_out)
            # m-tiles: as large as the buffers allow (fewest weight and activation passes), or one m-fold.
            for mf_tile in sorted({most, 1}):
                for order in ORDERS:
                    candidate = _Candidate(spec, p, postops, cg_tile=cg_tile, e_tile=e_tile, mf_tile=mf_tile,
                                           order=order, rows_out=rows_out, bands=bands[e_tile], engine=engine)
                    if candidate.field_error is not None:   # another count too large: a smaller tile may fit
                        field_failure = field_failure or candidate
                    elif candidate.commands > MAX_COMMANDS:
                        if too_many is None or candidate.commands < too_many.commands:
                            too_many = candidate
                    elif best is None or candidate.key < best.key:
                        best = candidate
        if cg_tile == c_groups and e_tiles and e_tiles[0] == rows_out:
            break   # the whole reduction and every row fit: splitting the reduction only moves more bytes
    if best is not None:
        return _build(spec, p, postops, cg_tile=best.cg_tile, e_tile=best.e_tile, mf_tile=best.mf_tile,
                      order=best.order, engine=engine, packed_bits=packed_bits)
    if too_many is not None or (lowest > band and field_failure is None):
        if not widest:
            return _plan_tiles(spec, p, postops, engine, widest=True, packed_bits=packed_bits)
        raise _too_many_commands(spec, p, too_many, rows_out, band)
    if field_failure is not None:
        raise field_failure.field_error
    # Only the matrix-vector engine, which cannot split the reduction, gets here.
    words = int(_tallest_windows(p, np.array([band]), rows_out)[0]) * c_groups * p.W
    need = buffer_bytes_for(2 * words, spec.act_word_bits)
    raise BufferOverflowError(
        f"{p.name}: the matrix-vector engine keeps all K={p.C} inputs of the {p.F} samples in one activation "
        f"bank ({words} words, the bank holds {spec.act_bank_depth}); set act_buffer_bytes >= {need}")


def _band_heights(problem, starts, lengths):
    """Input rows each band's window holds (`_window`: clipped to the tensor; a window of padding only holds
    one row), for bands of output rows ``[start, start + length)``; numpy arrays."""
    p = problem
    top = starts * p.stride_h - p.pad_h
    bottom = (starts + lengths - 1) * p.stride_h + p.R - p.pad_h
    return np.maximum(np.minimum(bottom, p.H) - np.maximum(top, 0), 1)


def _tallest_windows(problem, heights, rows_out):
    """For each band height ``e`` in `heights` (numpy), the tallest window among the bands of ``e`` output rows
    that cut ``rows_out`` rows (without the channel groups and W), in O(1) per height.

    A full band ``j`` starts at input row ``t = j*e*sh - ph`` and holds ``min(H, t + D) - max(0, t)`` rows
    (``D = (e-1)*sh + R``): rising while ``t <= 0``, falling after, so the tallest full band is the last one
    that starts in the top padding or the first one after it; the last, shorter band is looked at apart."""
    p = problem
    e = np.asarray(heights, dtype=np.int64)
    full = rows_out // e                                  # >= 1: every height is at most rows_out
    last_full = full - 1
    turn = p.pad_h // (e * p.stride_h)                    # the last band that starts at t <= 0
    tallest = np.ones_like(e)
    for j in (np.minimum(turn, last_full), np.minimum(turn + 1, last_full)):
        tallest = np.maximum(tallest, _band_heights(p, j * e, e))
    rest = rows_out - full * e
    partial = _band_heights(p, full * e, np.maximum(rest, 1))
    return np.where(rest > 0, np.maximum(tallest, partial), tallest)


class _BandStats:
    """The bands of `e_tile` output rows that cut ``rows_out`` rows (at most `MAX_COMMANDS` of them), as the
    tiles' sub-problems see them (`_sub_problem`): ``rows_loaded``, the input rows of all their windows summed
    (each loads once per channel group); ``tallest``, the tallest window; ``pad``, the largest top pad (a window
    of padding only holds one row and pads by its whole kernel extent)."""

    def __init__(self, problem, e_tile, rows_out):
        p = problem
        starts = np.arange(0, rows_out, e_tile, dtype=np.int64)
        lengths = np.minimum(e_tile, rows_out - starts)
        top = starts * p.stride_h - p.pad_h
        bottom = (starts + lengths - 1) * p.stride_h + p.R - p.pad_h
        held = np.minimum(bottom, p.H) - np.maximum(top, 0)
        heights = np.maximum(held, 1)
        pads = np.where(held > 0, np.maximum(top, 0) - top, (lengths - 1) * p.stride_h + p.R)
        self.rows_loaded, self.tallest, self.pad = int(heights.sum()), int(heights.max()), int(pads.max())


class _Candidate:
    """One tiling evaluated in closed form: what `_build` would make of it, without making it.

    ``key`` is the planner's order (bytes moved, commands, loop order), ``commands`` the tile count, and
    ``field_error`` the `ConfigFieldError` of the first configuration field whose largest value over the
    tiles does not fit (None when all fit). The tests compare it with the plan `_build` makes."""

    def __init__(self, spec, problem, postops, *, cg_tile, e_tile, mf_tile, order, rows_out, bands, engine=None):
        p, rows, cols = problem, spec.rows, spec.cols
        self.cg_tile, self.e_tile, self.mf_tile, self.order = cg_tile, e_tile, mf_tile, order
        c_groups, m_folds = ceil(p.C / rows), ceil(p.M / cols)
        n_c, n_e, n_m = ceil(p.C / (cg_tile * rows)), ceil(rows_out / e_tile), ceil(p.M / (mf_tile * cols))
        self.commands = n_e * n_m * n_c
        # Activation tiles (e-band, c-range) load once when the next command reuses them: with the whole
        # reduction in one tile, each band once (e outer, or a single band); otherwise once per m-tile.
        loads = 1 if n_c == 1 and (order == "e_outer" or n_e == 1) else n_m
        act_words = loads * c_groups * p.W * bands.rows_loaded
        engine = engine or spec.dataflow
        if engine == "matrix_vector":
            weight_words = m_folds * rows_out * p.F * c_groups
        else:
            weight_words = n_e * m_folds * p.R * p.S * c_groups * rows
        out_rows, out_cols = (rows_out // 2, p.F // 2) if postops.pool != "none" else (rows_out, p.F)
        out_beats = m_folds * out_rows * out_cols
        self.bytes_moved = (act_words * spec.act_word_bits // 8
                            + weight_words * spec.engine_weight_word_bits(engine) // 8
                            + out_beats * spec.acc_word_bits // 8)
        self.key = (self.bytes_moved, self.commands, ORDERS.index(order))
        self.field_error = self._fields(spec, p, postops, n_c=n_c, bands=bands)

    def _fields(self, spec, p, postops, *, n_c, bands):
        """The largest value of every count field over the tiles (`LayerSchedule.config_values`)."""
        e, tallest, pad_h = self.e_tile, bands.tallest, bands.pad
        pixels = e * p.F
        mf = min(self.mf_tile, ceil(p.M / spec.cols))
        values = dict(
            in_h=tallest, in_w=p.W, out_h=e, out_w=p.F, k_h=p.R, k_w=p.S, c_groups=self.cg_tile, m_folds=mf,
            stride_h=p.stride_h, stride_w=p.stride_w, pad_h=pad_h, pad_w=p.pad_w, plane=tallest * p.W,
            row_step=p.stride_h * p.W, pad_row_offset=pad_h * p.W,
            fold_period=fold_period(pixels=pixels, rows=spec.rows, cols=spec.cols), pixels=pixels,
            act_words=self.cg_tile * tallest * p.W, acc_stride=pixels if n_c > 1 else 0,
            param_words=mf if postops.needs_params else 0, emit_words=mf * pixels)
        bits = field_bits(spec)
        for name in COUNT_FIELDS:
            value = values.get(name, 0)
            if value >= 1 << bits:
                words = (1 << max(value.bit_length() - 2, 0)) - 1
                need = buffer_bytes_for(max(words, spec.weight_depth + 1), spec.weight_word_bits)
                return ConfigFieldError(
                    f"{p.name}: no tiling keeps {name} within its {bits}-bit field of the configuration word "
                    f"(at most {(1 << bits) - 1}; the smallest tiles that fit the buffers need {name}={value}); "
                    f"the width follows the deepest buffer: set weight_buffer_bytes >= {need} to widen the "
                    f"fields", field=name, value=value)
        return None


def _too_many_commands(spec, problem, fewest, rows_out, band):
    """The `PlanTooLargeError` of a layer whose every tiling needs more than `MAX_COMMANDS` commands: the split
    of the tiling that needs the fewest and what makes its tiles larger."""
    p = problem
    if fewest is None:
        # No band height short of MAX_COMMANDS bands fits: the tallest band that fits, and what a band of
        # the height needed would take.
        heights = np.arange(min(rows_out, spec.acc_depth // p.F), band - 1, -1, dtype=np.int64)
        heights = heights[heights % band == 0]
        windows = _tallest_windows(p, heights, rows_out)
        fits = heights[windows * p.W <= spec.act_bank_depth]
        tallest = int(fits[0]) if len(fits) else band
        e_need = ceil(ceil(rows_out / MAX_COMMANDS) / band) * band
        window = int(_tallest_windows(p, np.array([e_need]), rows_out)[0]) if e_need <= rows_out else p.H
        need_acc = buffer_bytes_for(e_need * p.F, spec.acc_word_bits)
        need_act = buffer_bytes_for(2 * window * p.W, spec.act_word_bits)
        return PlanTooLargeError(
            f"{p.name}: a command of {spec.name!r} computes at most {tallest} of the E={rows_out} output rows "
            f"(its accumulators hold {spec.acc_depth // p.F} rows of F={p.F} pixels, an activation bank "
            f"{spec.act_bank_depth} words), so the layer needs at least {ceil(rows_out / tallest)} commands, more "
            f"than the {MAX_COMMANDS} hwgen plans for one layer; bands of {e_need} rows need acc_buffer_bytes >= "
            f"{need_acc} and act_buffer_bytes >= {need_act} (with one group of {spec.rows} input channels per "
            f"command), or split the layer")
    n_c = ceil(p.C / (fewest.cg_tile * spec.rows))
    n_e, n_m = ceil(rows_out / fewest.e_tile), ceil(p.M / (fewest.mf_tile * spec.cols))
    fixes = []
    if n_c > 1:
        # Banks that hold enough channel groups for at most MAX_COMMANDS commands with the same bands.
        groups = ceil(ceil(p.C / spec.rows) / max(1, MAX_COMMANDS // (n_e * n_m)))
        window = int(_tallest_windows(p, np.array([fewest.e_tile]), rows_out)[0])
        need = buffer_bytes_for(2 * groups * window * p.W, spec.act_word_bits)
        largest = MAX_BUFFER_WORDS * spec.act_word_bits // 8
        size = (f"to >= {need}" if need <= largest else
                f"(it would take {need} bytes, more than the {largest} of the largest buffer hwgen builds)")
        fixes.append(f"act_buffer_bytes {size} (a bank holds {fewest.cg_tile} of the {ceil(p.C / spec.rows)} "
                     f"groups of {spec.rows} input channels; {groups} per command would do)")
    if n_e > 1:
        fixes.append(f"acc_buffer_bytes and act_buffer_bytes (a command computes {fewest.e_tile} of the "
                     f"{rows_out} output rows)")
    if n_m > 1:
        fixes.append(f"acc_buffer_bytes or max_out_channels (a command computes {fewest.mf_tile * spec.cols} of "
                     f"the M={p.M} output channels)")
    return PlanTooLargeError(
        f"{p.name}: the buffers of {spec.name!r} cut this layer into at least {fewest.commands} commands "
        f"({n_c} input-channel tiles x {n_e} row bands x {n_m} output-channel tiles), more than the "
        f"{MAX_COMMANDS} hwgen plans for one layer; enlarge " + "; or ".join(fixes) + ", or split the layer")


def _check_output_stationary_commands(spec, problem, postops, *, K, per_command):
    """Reject, before building any, an output-stationary plan of more than `MAX_COMMANDS` commands (the same
    counts `_plan_output_stationary` makes)."""
    p, rows, cols = problem, spec.rows, spec.cols
    per_command = max(1, per_command)
    if postops.pool == "none":
        pieces = ceil(p.E * p.F / (per_command * rows))
        largest, what = min(p.E * p.F, per_command * rows), f"{per_command * rows} output pixels"
    else:
        e_tile = min(per_command * rows // p.F, _computed_rows(p, postops)) // 2 * 2
        if not e_tile:
            return    # the caller names the buffer that cannot hold two rows
        pieces = ceil(_computed_rows(p, postops) / e_tile)
        largest, what = e_tile * p.F, f"{e_tile} output rows"
    m_folds = ceil(p.M / cols)
    mf_tile = min(m_folds, spec.max_param_folds) if postops.needs_params else m_folds
    m_tiles = ceil(m_folds / max(1, min(mf_tile, _max_m_folds_per_command(spec, largest))))
    if pieces * m_tiles > MAX_COMMANDS:
        # Enough pixel tiles per command for at most MAX_COMMANDS commands (with as many m-tiles).
        tiles = ceil(ceil(p.E * p.F / max(1, MAX_COMMANDS // m_tiles)) / rows)
        need = buffer_bytes_for(2 * K * tiles, spec.act_word_bits)
        raise PlanTooLargeError(
            f"{p.name}: one activation bank of {spec.name!r} holds {per_command} tiles of {rows} pixels x K={K} "
            f"unrolled inputs, so a command computes {what} and the layer needs {pieces * m_tiles} commands "
            f"({pieces} pixel blocks x {m_tiles} output-channel tiles), more than the {MAX_COMMANDS} hwgen plans "
            f"for one layer; set act_buffer_bytes >= {need}, or split the layer")


def _plan_output_stationary(spec, problem, postops):
    """Output-stationary: the layer unrolled into a 1x1 convolution over ``K = C*R*S`` inputs, its output
    pixels cut into commands of as many ``rows``-pixel tiles as one activation bank holds (``K`` words per
    tile), each command running every m-fold over the tiles it loaded once. Without pooling a command is a
    range of pixels in raster order (only the layer's last tile can be partial); with pooling it is a band of
    an even number of output rows, so that every 2x2 window lies in one command."""
    lowered = im2col_problem(problem)
    p, rows, cols, K = problem, spec.rows, spec.cols, lowered.C
    per_command = spec.act_bank_depth // K
    if per_command < 1 and postops.pool == "none":   # with pooling: the check below asks for enough
        need = buffer_bytes_for(2 * K, spec.act_word_bits)
        raise BufferOverflowError(
            f"{p.name}: one tile of {rows} output pixels needs its K = C*R*S = {p.C}*{p.R}*{p.S} = {K} unrolled "
            f"inputs in one activation bank ({K} words), which holds {spec.act_bank_depth}; set "
            f"act_buffer_bytes >= {need} (two banks), or use a weight_stationary accelerator, which splits the "
            f"reduction")
    m_folds = ceil(p.M / cols)
    mf_tile = min(m_folds, spec.max_param_folds) if postops.needs_params else m_folds
    pieces = []     # (height, width, e0, e1, p0, p1) of each command's output block
    _check_output_stationary_commands(spec, p, postops, K=K, per_command=per_command)
    if postops.pool == "none":
        for p0, p1 in _ranges(p.E * p.F, per_command * rows):
            pieces.append((1, p1 - p0, p0 // p.F, -(-p1 // p.F), p0, p1))
    else:
        # The tallest even band whose ceil(e*F / rows) pixel tiles fit one bank.
        e_tile = min(per_command * rows // p.F, _computed_rows(p, postops)) // 2 * 2
        if not e_tile:
            need = buffer_bytes_for(2 * ceil(2 * p.F / rows) * K, spec.act_word_bits)
            raise BufferOverflowError(
                f"{p.name}: 2x2 pooling needs two output rows ({2 * p.F} pixels, {ceil(2 * p.F / rows)} tiles "
                f"of {K} words) in one activation bank, which holds {spec.act_bank_depth} words; set "
                f"act_buffer_bytes >= {need} (two banks)")
        for e0, e1 in _ranges(_computed_rows(p, postops), e_tile):
            pieces.append((e1 - e0, p.F, e0, e1, None, None))
    # Each command's m_folds and emit_words = m_folds * pixels must fit their configuration fields.
    mf_tile = max(1, min(mf_tile, _max_m_folds_per_command(spec, max(h * w for h, w, *_ in pieces))))
    m_ranges = _ranges(p.M, mf_tile * cols)
    tiles, bank, param_bank = [], 1, 1
    for height, width, e0, e1, p0, p1 in pieces:
        bank ^= 1
        for index, (m0, m1) in enumerate(m_ranges):
            if postops.needs_params:
                param_bank ^= 1
            sub = ConvProblem(p.name, p.kind, C=K, H=height, W=width, M=m1 - m0, E=height, F=width, R=1, S=1,
                              act=p.act, weight=p.weight, out=p.out)
            schedule = LayerSchedule(
                spec, sub,
                act_bank=bank, load_acts=index == 0, release=index + 1 == len(m_ranges), postops=postops,
                param_bank=param_bank if postops.needs_params else 0)
            tiles.append(Tile(schedule, m0, m1, 0, K, e0, e1, e0, e1, p0, p1))
    moved = _bytes_moved(spec, tiles)
    return LayerPlan(spec, problem, tuple(tiles), "e_outer", moved, postops, True, lowered)


# The sparse engine -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SparseLayerPlan(LayerPlan):
    """A batch-1 fully connected layer on the sparse engine (`hwgen.sparse`): its commands are m-tiles whose
    words (`sparse_stream`) come from the layer's weights and activations, so the plan is made for them.
    ``dense_cycles``: the same layer on the dense matrix-vector engine of the spec (the model)."""
    weight: np.ndarray = None
    x: np.ndarray = None
    words: tuple = ()                 # per tile, its words
    dense_cycles: int = None

    def weight_stream(self, weight_canonical=None):
        return []                     # the weights ride in the sparse words

    def sparse_stream(self):
        return [w for words in self.words for w in words]


def plan_sparse_layer(spec, problem, postops=PostOps(), *, weight, x, pack=True):
    """``y = W @ x`` (``problem``: a batch-1 linear layer; ``weight[M, K]``, ``x[K]`` integers) on the sparse engine
    of ``spec``, with the post-ops: m-tiles of at most ``rows * cols * sparse_depth`` outputs (and as many as the
    post-op parameter memory holds), each one command streaming the columns of the nonzero activations.
    ``pack=False``: the commands and their cycles only, without the words (for the model of large layers)."""
    from .sparse import plan_sparse_fc
    if not spec.sparse_mv:
        raise MappingError(f"{problem.name}: accelerator {spec.name!r} has no sparse engine; build it with "
                           f"AcceleratorSpec(..., sparse_mv=True)")
    if problem.kind != "linear" or problem.F != 1 or problem.E != 1:
        raise MappingError(f"{problem.name}: the sparse engine runs batch-1 fully connected layers, not a "
                           f"{problem.kind} of {problem.E}x{problem.F} outputs")
    check_supported(spec, postops, problem.name)
    weight = np.asarray(weight).reshape(problem.M, problem.C)
    x = np.asarray(x).ravel()
    per_command = spec.rows * spec.cols * spec.sparse_depth
    if postops.needs_params:
        per_command = min(per_command, spec.max_param_folds * spec.cols)
    tiles, words, bank = [], [], 0
    for m0 in range(0, problem.M, per_command):
        m1 = min(problem.M, m0 + per_command)
        sub = ConvProblem(problem.name, "linear", C=problem.C, H=1, W=1, M=m1 - m0, E=1, F=1, R=1, S=1)
        part = plan_sparse_fc(spec, weight[m0:m1], x, pack=pack)
        (command,) = part.commands
        schedule = LayerSchedule(spec, sub, engine="matrix_vector", load_acts=False, release=False,
                                 postops=postops, param_bank=bank if postops.needs_params else 0,
                                 sparse_words=command.stream_words,
                                 sparse_macs=command.valid_entries)
        bank ^= int(postops.needs_params)
        tiles.append(Tile(schedule=schedule, m0=m0, m1=m1, c0=0, c1=problem.C, e0=0, e1=1, h0=0, h1=1))
        words.append(command.words)
    from .perf import predict_plan
    try:
        dense = predict_plan(_plan_layer(spec, problem, postops, engine="matrix_vector"
                                         if spec.dataflow != "matrix_vector" else None)).cycles
    except MappingError:
        dense = None
    return SparseLayerPlan(spec, problem, tuple(tiles), "m_outer", _bytes_moved(spec, tiles), postops,
                           weight=weight, x=x, words=tuple(words), dense_cycles=dense)
