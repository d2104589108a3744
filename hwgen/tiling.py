"""Tiling: a layer whose tensors exceed the buffers becomes a sequence of commands that each fit.

A tile is a block of output channels ``[m0, m1)`` x output rows ``[e0, e1)`` x input channels ``[c0, c1)``.
Its activations are the rows of the input window it reads (padding is never stored: a tile at the border
keeps its share of the padding as a smaller pad), its weights are streamed, its outputs are emitted when its
last input-channel tile has been added in (the accumulators keep the partial sums between those tiles).

Tiles are ordered ``for e-band: for m-tile: for c-tile`` or ``for m-tile: for e-band: for c-tile``; an
activation tile that the next command uses again stays in its bank (no reload). The candidates are, for every
input-channel tile size, the tallest band of output rows that fits, with every m-tile size the buffers allow
and both orders; the one that moves the fewest bytes wins (ties: fewer commands). That is a search over a
useful family, not over every tiling: a shorter band can occasionally move a few bytes less.
"""

from dataclasses import dataclass, field
from math import ceil

import numpy as np

from .errors import BufferOverflowError
from .postops import PostOps, check_supported, pack_params
from .problem import ConvProblem
from .schedule import LayerSchedule
from .spec import AcceleratorSpec, buffer_bytes_for

__all__ = ["Tile", "LayerPlan", "plan_layer"]

ORDERS = ("e_outer", "m_outer")


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
                words += pack_params(params.channels_slice(tile.m0, tile.m1), cols=self.spec.cols)
        return words

    def act_stream(self, act_canonical):
        if self.im2col:
            act_canonical = im2col_acts(self.problem, act_canonical)
        words = []
        for tile in self.tiles:
            if tile.schedule.load_acts:
                words += tile.schedule.pack_acts(act_canonical[tile.c0:tile.c1, tile.h0:tile.h1])
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
        for tile in self.tiles:
            if tile.schedule.acc_emit:
                r0, r1 = self._out_rows(tile)
                beats += tile.schedule.pack_outputs(out_canonical[tile.m0:tile.m1, r0:r1])
        return beats

    def unpack_outputs(self, beats):
        p = self.problem
        if len(beats) != self.out_beats:
            raise ValueError(f"{p.name}: expected {self.out_beats} output beats, got {len(beats)}")
        out = np.zeros(self.out_shape, dtype=np.int64)
        at = 0
        for tile in self.tiles:
            n = tile.schedule.out_beats
            if n:
                r0, r1 = self._out_rows(tile)
                out[tile.m0:tile.m1, r0:r1] = tile.schedule.unpack_outputs(beats[at:at + n])
                at += n
        return out

    def describe_output(self, beat, lane):
        at = 0
        for tile in self.tiles:
            n = tile.schedule.out_beats
            if beat < at + n:
                local = tile.schedule.describe_output(beat - at, lane)
                return f"tile m{tile.m0}:{tile.m1} e{tile.e0}:{tile.e1}: {local} (local)"
            at += n
        return "beyond the plan"

    def manifest(self):
        return {"layer": self.problem.name, "kind": self.problem.kind, "problem": self.problem.to_dict(),
                "postops": {"bias": self.postops.bias, "requant": self.postops.requant,
                            "relu": self.postops.relu, "pool": self.postops.pool},
                "config_words": [hex(word) for word in self.config_words()],
                "order": self.order, "commands": len(self.tiles), "im2col": self.im2col,
                "bytes_moved": self.bytes_moved,
                "tiles": [{"m": [t.m0, t.m1], "c": [t.c0, t.c1], "e": [t.e0, t.e1], "h": [t.h0, t.h1],
                           "load_acts": t.schedule.load_acts, "act_bank": t.schedule.act_bank,
                           "acc_init": t.schedule.acc_init, "acc_emit": t.schedule.acc_emit}
                          for t in self.tiles]}


def im2col_problem(problem):
    """The layer as a 1x1 convolution over explicitly unrolled windows: channel ``(r*S + s)*C + c`` of the
    unrolled input at output pixel (e, f) is ``I[c, e*sh + r - ph, f*sw + s - pw]``."""
    p = problem
    return ConvProblem(p.name, p.kind, C=p.C * p.R * p.S, H=p.E, W=p.F, M=p.M, E=p.E, F=p.F, R=1, S=1,
                       act=p.act, weight=p.weight, out=p.out)


def im2col_acts(problem, act_canonical):
    p = problem
    padded = np.pad(np.asarray(act_canonical), ((0, 0), (p.pad_h, p.pad_h), (p.pad_w, p.pad_w)))
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


def _ranges(total, step):
    return [(start, min(total, start + step)) for start in range(0, total, step)]


def _computed_rows(problem, postops):
    """Output rows worth computing: 2x2 pooling (floor) drops an odd last row, so it is not computed."""
    return problem.E - (problem.E % 2 if postops.pool != "none" else 0)


def _build(spec, problem, postops, *, cg_tile, e_tile, mf_tile, order):
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
    for index, ((e0, e1), (m0, m1), (c0, c1)) in enumerate(steps):
        key = act_keys[index]
        load = key != loaded
        if load:
            bank ^= 1
            loaded = key
        release = index + 1 == len(steps) or act_keys[index + 1] != key
        sub, h0, h1 = _sub_problem(p, m0=m0, m1=m1, c0=c0, c1=c1, e0=e0, e1=e1)
        emit = c1 == p.C
        if emit and postops.needs_params:
            param_bank ^= 1
        schedule = LayerSchedule(spec, sub, act_bank=bank, load_acts=load, release=release,
                                 acc_init=c0 == 0, acc_emit=emit, keep_partials=keep_partials,
                                 postops=postops, param_bank=param_bank if emit and postops.needs_params else 0)
        tiles.append(Tile(schedule, m0, m1, c0, c1, e0, e1, h0, h1))
    act_bytes = sum(t.schedule.act_words for t in tiles if t.schedule.load_acts) * spec.act_word_bits // 8
    weight_bytes = sum(t.schedule.weight_words for t in tiles) * spec.weight_word_bits // 8
    out_bytes = sum(t.schedule.out_beats for t in tiles) * spec.acc_word_bits // 8
    moved = {"activations": act_bytes, "weights": weight_bytes, "outputs": out_bytes,
             "total": act_bytes + weight_bytes + out_bytes}
    return LayerPlan(spec, problem, tuple(tiles), order, moved, postops)


def _act_words(spec, problem, cg_tile, e_tile, rows_out=None):
    """Words of the largest activation window among the bands of `e_tile` output rows (clipped windows:
    border bands read padding instead of rows)."""
    rows_out = problem.E if rows_out is None else rows_out
    tallest = max(h1 - h0 for h0, h1, _ in (_window(problem, e0, e1) for e0, e1 in _ranges(rows_out, e_tile)))
    return cg_tile * tallest * problem.W


def plan_layer(spec, problem, postops=PostOps(), *, im2col="auto"):
    """The plan whose every command fits the buffers and that moves the fewest bytes.

    With few input channels (C < rows) most array rows idle, as the implicit im2col puts only channels on
    rows; ``im2col="auto"`` then also plans the layer as a 1x1 convolution over host-unrolled windows (the
    activations are duplicated R*S times in the stream, which `bytes_moved` shows) and keeps whichever plan
    the cycle model says is faster. ``im2col=True``/``False`` forces the choice.

    Raises `BufferOverflowError` naming the buffer and the size needed when even the smallest tile (one output
    row, one group of ``rows`` input channels, ``cols`` output channels) does not fit."""
    if im2col not in ("auto", True, False):
        raise ValueError(f"im2col must be 'auto', True or False, not {im2col!r}")
    check_supported(spec, postops, problem.name)
    lowerable = problem.R * problem.S > 1
    if im2col is True and not lowerable:
        im2col = False
    if im2col is False or (im2col == "auto" and (problem.C >= spec.rows or not lowerable)):
        return _plan_tiles(spec, problem, postops)
    lowered = _plan_tiles(spec, im2col_problem(problem), postops)
    lowered = LayerPlan(spec, problem, lowered.tiles, lowered.order, lowered.bytes_moved, postops, True,
                        lowered.problem)
    if im2col is True:
        return lowered
    from .perf import predict_plan
    try:
        direct = _plan_tiles(spec, problem, postops)
    except BufferOverflowError:
        return lowered
    return lowered if predict_plan(lowered).cycles < predict_plan(direct).cycles else direct


def _plan_tiles(spec, problem, postops):
    """Candidates: for every input-channel tile size, the tallest band of output rows that fits (bands even
    when pooling), every m-tile size the buffers allow, both loop orders; the fewest bytes moved wins."""
    p = problem
    c_groups, m_folds = ceil(p.C / spec.rows), ceil(p.M / spec.cols)
    rows_out = _computed_rows(p, postops)
    band = 2 if postops.pool != "none" else 1      # the thinnest band: one pooling window high
    what = "one output row" if band == 1 else "two output rows (one pooling window)"
    smallest_act = _act_words(spec, p, 1, band, rows_out)
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
    candidates = []
    # The matrix-vector engine reduces over all of K in one command: only whole channel ranges.
    smallest_cg = c_groups if spec.dataflow == "matrix_vector" else 1
    # Input-channel tile sizes: the whole reduction, then c_groups/k for small k (a finer split only reloads
    # more), down to one group.
    cg_sizes = sorted({ceil(c_groups / k) for k in range(1, 17)} | {1}, reverse=True)
    for cg_tile in [size for size in cg_sizes if size >= smallest_cg]:
        # The largest band of output rows whose window fits one bank and whose pixels fit the accumulators.
        e_tile = 0
        for e in range(rows_out, 0, -1):
            if e % band:
                continue   # a pooling window must not straddle two bands
            if _act_words(spec, p, cg_tile, e, rows_out) <= spec.act_bank_depth and e * p.F <= spec.acc_depth:
                e_tile = e
                break
        if not e_tile:
            continue
        # A tile's post-op parameters must fit one bank of the parameter memory.
        most = min(m_folds, spec.max_param_folds) if postops.needs_params else m_folds
        if cg_tile == c_groups:
            mf_tiles = [most]
        else:   # partial sums of every m-fold in the tile stay in the accumulators between c-tiles
            most = min(most, spec.acc_depth // (e_tile * p.F))
            if most < 1:
                continue
            mf_tiles = sorted({most, 1})
        for mf_tile in mf_tiles:
            for order in ORDERS:
                candidates.append(_build(spec, p, postops, cg_tile=cg_tile, e_tile=e_tile, mf_tile=mf_tile,
                                         order=order))
        if cg_tile == c_groups and e_tile == rows_out:
            break   # the whole reduction and every row fit: splitting the reduction only moves more bytes
    if not candidates:   # only the matrix-vector engine, which cannot split the reduction, gets here
        words = _act_words(spec, p, c_groups, band, rows_out)
        need = buffer_bytes_for(2 * words, spec.act_word_bits)
        raise BufferOverflowError(
            f"{p.name}: the matrix-vector engine keeps all K={p.C} inputs of the {p.F} samples in one activation "
            f"bank ({words} words, the bank holds {spec.act_bank_depth}); set act_buffer_bytes >= {need}")
    return min(candidates, key=lambda plan: (plan.bytes_moved["total"], len(plan.tiles), ORDERS.index(plan.order)))
