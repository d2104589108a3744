"""How one layer runs on one accelerator: folds, configuration word, host data layout, and the slot sequence.

Weight-stationary schedule. The reduction ``k = (r, s, c)`` is cut into *k-folds* of ``rows`` input channels at
one kernel offset ``(r, s)``; output channels into *m-folds* of ``cols``. Folds run in the order
``for mf: for r: for s: for cg`` and each fold issues ``fold_period`` slots: one per output pixel, then bubbles.

Data layout in the buffers (the host packs it this way, see `pack_*`):
- activation word ``(cg*H + h)*W + w`` = channels ``cg*rows .. cg*rows+rows-1`` at ``(h, w)`` (lane = channel);
- weight word ``fold*rows + i`` = the weights of PE row ``i`` for that fold (lane = output channel);
- output beat ``mf*P + p`` = the ``cols`` output channels of m-fold ``mf`` at pixel ``p`` (lane = channel).
Padding is never stored: the address generator reads zero for out-of-bounds positions (implicit im2col).

Output-stationary schedule (`hw.os_sequencer`): a command is a 1x1 convolution over host-unrolled windows
(`hwgen.tiling` lowers the layer), ``K = C`` of it is the reduction; its ``pixels`` are cut into tiles of
``rows`` (row ``i`` = pixel ``tile*rows + i``), and slots run ``for mf: for tile: for k`` with
``fold_period = max(K, rows)`` slots per tile. Activation word ``tile*K + k`` = input ``k`` of the tile's pixels
(lane = pixel); weight word (slot order) = the m-fold's ``cols`` weights of input ``k``; output beats as above.
"""

from dataclasses import dataclass
from functools import cached_property
from math import ceil

import numpy as np

from .dtypes import IntType
from .errors import (AccumulatorOverflowError, BufferOverflowError, ConfigFieldError, DataError, DesignTypeError,
                     MappingError)
from .hw.config import CONFIG_FIELDS, COUNT_FIELDS, ZERO_POINT_BITS, field_bits, pack_config
from .hw.slot_queue import SlotQueue
from .postops import PostOps, check_layer, check_supported
from .postops import config_values as postops_config_values
from .problem import ConvProblem
from .spec import AcceleratorSpec, buffer_bytes_for

__all__ = ["LayerSchedule", "Slot", "fold_period"]


def fold_period(*, pixels, rows, cols):
    """Issue slots per fold.

    A fold's weights are written into the PEs' spare bank just in time, one row per cycle starting one
    slot before the fold, while the previous fold still streams (two weight banks per PE). The spare bank
    was last read by the fold before the previous one, whose last activation leaves column ``cols-1`` of a
    row ``cols - 1`` cycles after entering it: two periods must cover ``pixels + cols - 1`` slots, which
    ``period >= max(pixels, cols)`` guarantees (also across commands, where a one-fold command sits between
    the two users of a bank). One weight row is read per cycle, so a period is at least ``rows``; and the
    accumulator's read-modify-write needs two slots between visits of one pixel.
    """
    return max(pixels, rows, cols, 2)


@dataclass(frozen=True)
class Slot:
    """One issue slot of the golden sequencer (what the address generator must produce)."""
    fold: int
    valid: bool       # a real pixel (not a bubble)
    pixel: int        # the accumulator address
    act_addr: int     # meaningful only when valid and not padded
    padded: bool
    first_k: bool
    last_k: bool
    bank: int


@dataclass(frozen=True)
class LayerSchedule:
    """One command: a (sub-)layer that fits the buffers, with the flags that place it in a tiled layer.

    A whole layer that fits is one command with the defaults. `hwgen.tiling` cuts larger layers into commands
    that each fit, share activation banks (``load_acts``/``release``) and split the reduction
    (``acc_init``/``acc_emit``/``keep_partials``).
    """
    spec: AcceleratorSpec
    problem: ConvProblem
    act_bank: int = 0
    load_acts: bool = True
    release: bool = True
    acc_init: bool = True
    acc_emit: bool = True
    keep_partials: bool = False   # accumulators of every m-fold stay live (the reduction continues in a later tile)
    postops: PostOps = PostOps()  # the chain on this command's output (used when it emits)
    param_bank: int = 0
    engine: str = None            # the engine's dataflow: one of spec.engines (default: the spec's dataflow)
    # Where its activations load from: "stream" (`acts`), "feedback" (on chip), or "host" (`acts`, made by the
    # host from earlier `out` beats: they arrive late, so the command starts only when all are in).
    act_source: str = "stream"
    out_dest: str = "out"         # where its output goes: "out" or "feedback" (activation words, on chip)
    pad_value: int = 0            # what a padded read gives (the input's zero point), weight-stationary only
    # Matrix-vector: the weights' width when packed (4: int4, two slots per weight word; 2: int2, four), one of
    # spec.packed_weight_bits; None: the spec's weight_type, one slot per word.
    packed_bits: int = None
    # The sparse engine (spec.sparse_mv): the words of the command's `sparse` stream (`hwgen.sparse`) and the
    # multiplies they hold; None: a dense command.
    sparse_words: int = None
    sparse_macs: int = 0

    def __post_init__(self):
        spec, p = self.spec, self.problem
        if self.packed_bits is not None and self.packed_bits not in spec.packed_weight_bits:
            raise MappingError(f"{p.name}: packed int{self.packed_bits} weights need an accelerator built with "
                               f"AcceleratorSpec(..., packed_weight_bits=({self.packed_bits},)) (accelerator "
                               f"{spec.name!r} has packed_weight_bits={spec.packed_weight_bits}); or plan the "
                               f"layer with int8 weights")
        if not isinstance(self.postops, PostOps):
            raise DesignTypeError(f"{p.name}: postops must be a hwgen.postops.PostOps, not {self.postops!r}")
        if self.engine is None:
            object.__setattr__(self, "engine", spec.dataflow)
        if self.engine not in spec.engines:
            raise MappingError(f"{p.name}: accelerator {spec.name!r} has no {self.engine} engine (it has "
                               f"{', '.join(spec.engines)}); build it with mv_engine=True for the matrix-vector "
                               f"engine beside the array")
        check_supported(spec, self.postops, p.name)
        self.postops.output_type(spec.acc_type)
        self._check_chaining()
        if self.acc_emit:
            check_layer(self.postops, out_h=p.E, out_w=p.F, m_folds=self.m_folds, max_out_w=spec.max_pool_width,
                        max_m_folds=spec.max_param_folds, layer=p.name)
        if self.dataflow == "matrix_vector":
            if not (p.R == p.S == p.H == p.E == 1):
                raise MappingError(
                    f"{p.name}: the matrix-vector engine runs fully connected layers (a matrix times vectors); a "
                    f"{p.R}x{p.S} convolution would stream its weights once per output pixel - map it to a "
                    f"weight_stationary accelerator")
            if self.keep_partials or not (self.acc_init and self.acc_emit):
                raise MappingError(f"{p.name}: the matrix-vector engine reduces over all of K in one command")
            if self.sparse_words is not None:
                if not spec.sparse_mv:
                    raise MappingError(f"{p.name}: a sparse command needs an accelerator built with "
                                       f"AcceleratorSpec(..., sparse_mv=True)")
                if self.pixels != 1 or self.load_acts or self.packed_bits or self.sparse_words < 1:
                    raise MappingError(f"{p.name}: a sparse command is one batch-1 product whose activations "
                                       f"ride in its words (load_acts=False), of at least one word")
                if self.m_folds > spec.rows * spec.sparse_depth:
                    raise MappingError(f"{p.name}: {p.M} outputs are more than the sparse engine's "
                                       f"{spec.rows * spec.cols * spec.sparse_depth} per command; plan the layer "
                                       f"with hwgen.tiling.plan_sparse_layer, which splits it")
        elif self.sparse_words is not None:
            raise MappingError(f"{p.name}: sparse commands run on the matrix-vector side only")
        elif self.packed_bits is not None:
            raise MappingError(f"{p.name}: packed int{self.packed_bits} weights run on the matrix-vector engine "
                               f"only, not on the {self.dataflow} one; plan the layer with int8 weights")
        if self.dataflow == "output_stationary":
            if not (p.R == p.S == p.stride_h == p.stride_w == 1 and p.pad_h == p.pad_w == 0):
                raise MappingError(
                    f"{p.name}: the output-stationary array takes host-unrolled (im2col) activations, so a command "
                    f"is a 1x1 convolution; plan the {p.R}x{p.S} layer with hwgen.tiling.plan_layer, which "
                    f"unrolls its windows")
            if self.keep_partials or not (self.acc_init and self.acc_emit):
                raise MappingError(f"{p.name}: the output-stationary array keeps each output in its PE for the "
                                   f"whole reduction; a command cannot split it")
        # The products of the weights this command streams (packed int4/int2: narrower than the spec's).
        worst = p.C * p.R * p.S * spec.max_abs_product(self.weight_type)
        if worst > spec.acc_type.max:
            need = worst.bit_length() + 1
            raise AccumulatorOverflowError(
                f"{p.name}: the reduction over C*R*S = {p.C}*{p.R}*{p.S} = {p.C * p.R * p.S} products of "
                f"{spec.act_type} x {self.weight_type} (|product| <= {spec.max_abs_product(self.weight_type)}) can "
                f"reach {worst}, which overflows acc_type {spec.acc_type} (max {spec.acc_type.max}); use an "
                f"accumulator of at least int{need} or reduce the reduction size")
        if self.act_bank not in (0, 1):
            raise MappingError(f"act_bank must be 0 or 1, not {self.act_bank!r}")
        # The activation buffer is two banks; one tile's activations live in one bank.
        checks = (
            ("activation", "act_buffer_bytes", self.act_words, spec.act_bank_depth, spec.act_word_bits, 2,
             f"C={p.C} channels in {self.c_groups} groups of {spec.rows} x H*W = {p.H}*{p.W}, in one of its "
             f"two banks"),
            ("accumulator", "acc_buffer_bytes", self.acc_words, spec.acc_depth, spec.acc_word_bits, 1,
             f"E*F = {p.E}*{p.F} output pixels" + (f" x {self.m_folds} m-folds" if self.keep_partials else "")),
        )
        if self.dataflow == "output_stationary":   # no accumulator buffer: the outputs live in the PEs
            checks = ((checks[0][:6] + (f"K={p.C} reduction words for each of {self.pixel_tiles} tiles of "
                                        f"{spec.rows} pixels, in one of its two banks",)),)
        for buffer, knob, words, depth, word_bits, banks, why in checks:
            if words > depth:
                need = buffer_bytes_for(banks * words, word_bits)   # whole words for both banks
                raise BufferOverflowError(
                    f"{p.name}: the {buffer} buffer needs {words} words ({why}) but holds {depth}; set "
                    f"{knob} >= {need}")
        bits = field_bits(spec)
        # start_words <= act_words, which the buffer check bounds: no need to compute it here.
        for name, value in self.config_values(start_words=0).items():
            if name in COUNT_FIELDS and value >= 1 << bits:   # flags and post-op fields have their own widths
                # The field width follows the deepest buffer (`hw.config.field_bits`): the weight FIFO depth
                # that widens it enough.
                words = (1 << max(value.bit_length() - 2, 0)) - 1
                need = buffer_bytes_for(max(words, spec.weight_depth + 1), spec.weight_word_bits)
                raise ConfigFieldError(
                    f"{p.name}: {name}={value} does not fit its {bits}-bit field of the configuration word (at "
                    f"most {(1 << bits) - 1}; the width follows the deepest buffer); plan the layer with "
                    f"hwgen.tiling.plan_layer, which splits it into commands whose counts fit, or set "
                    f"weight_buffer_bytes >= {need} to widen the fields", field=name, value=value)

    def _check_chaining(self):
        spec, p = self.spec, self.problem
        if self.act_source not in ("stream", "feedback", "host") or self.out_dest not in ("out", "feedback"):
            raise MappingError(f"{p.name}: act_source must be 'stream', 'feedback' or 'host' and out_dest 'out' "
                               f"or 'feedback', not {self.act_source!r} / {self.out_dest!r}")
        chained = self.act_source == "feedback" or self.out_dest == "feedback"
        if chained and not spec.chaining:
            raise MappingError(f"{p.name}: an on-chip feedback path (act_source/out_dest='feedback') needs an "
                               f"accelerator built with chaining=True")
        if self.act_source == "feedback" and not self.load_acts:
            raise MappingError(f"{p.name}: act_source='feedback' loads activations; set load_acts=True")
        if self.out_dest == "feedback":
            out = self.postops.output_type(spec.acc_type)
            if not self.acc_emit:
                raise MappingError(f"{p.name}: out_dest='feedback' sends the command's outputs on; it must emit "
                                   f"(acc_emit=True)")
            if out != spec.act_type:
                raise MappingError(
                    f"{p.name}: its output feeds the next layer's activations on chip, so it must be requantized "
                    f"to the activation type {spec.act_type}, not {out}; use PostOps(requant=True, "
                    f"out_type={spec.act_type.name!r})")
        if not isinstance(self.pad_value, int) or not spec.act_type.min <= self.pad_value <= spec.act_type.max:
            raise MappingError(f"{p.name}: pad_value={self.pad_value!r} must be an integer in {spec.act_type} "
                               f"({spec.act_type.min}..{spec.act_type.max}): the padded activation")

    @property
    def dataflow(self):
        """The dataflow of the engine this command runs on."""
        return self.engine

    @property
    def weight_word_bits(self):
        if self.sparse_words is not None:
            return self.spec.sparse_word_bits
        return self.spec.engine_weight_word_bits(self.engine)

    # Fold structure ---------------------------------------------------------------------------------------

    @property
    def c_groups(self):
        return ceil(self.problem.C / self.spec.rows)

    @property
    def m_folds(self):
        return ceil(self.problem.M / self.spec.cols)

    @property
    def k_folds(self):
        return self.problem.R * self.problem.S * self.c_groups

    @property
    def folds(self):
        """Passes over the array: (m-fold, k-fold) pairs; output-stationary: (m-fold, pixel tile) pairs."""
        if self.dataflow == "output_stationary":
            return self.m_folds * self.pixel_tiles
        return self.m_folds * self.k_folds

    @property
    def pixels(self):
        return self.problem.E * self.problem.F

    @property
    def fold_period(self):
        if self.dataflow == "output_stationary":
            # Slots per pixel tile: bubbles up to `rows`, then the K reduction slots (see hw.os_sequencer).
            return max(self.reduction, self.spec.rows)
        return fold_period(pixels=self.pixels, rows=self.spec.rows, cols=self.spec.cols)

    @property
    def reduction(self):
        """Output-stationary: the reduction length K (the command is a 1x1 convolution over unrolled windows)."""
        return self.problem.C

    @property
    def pixel_tiles(self):
        """Output-stationary: tiles of ``rows`` output pixels (row ``i`` of the array computes pixel ``i``)."""
        return ceil(self.pixels / self.spec.rows)

    @property
    def os_slots(self):
        """Output-stationary: issue slots of the command, bubbles included."""
        return self.m_folds * self.pixel_tiles * self.fold_period

    @property
    def act_words(self):
        if self.sparse_words is not None:
            return 0                 # the activations ride in the sparse words
        if self.dataflow == "output_stationary":
            return self.pixel_tiles * self.reduction
        return self.c_groups * self.problem.H * self.problem.W

    @property
    def mv_slots(self):
        """Matrix-vector engine: one weight word per (m-fold, sample, channel group)."""
        return self.m_folds * self.pixels * self.c_groups

    @property
    def slots_per_word(self):
        """Matrix-vector slots one weight word serves: ``8 // packed_bits`` packed (2 for int4, 4 for int2), else 1.
        The engine pops a word every ``slots_per_word`` slots; the weight stream and FIFO carry that many times
        fewer words."""
        return 1 if self.packed_bits is None else self.spec.weight_type.bits // self.packed_bits

    @property
    def weight_type(self):
        """The type of the weights the host streams: ``int{packed_bits}`` packed, else the spec's."""
        return self.spec.weight_type if self.packed_bits is None else IntType(self.packed_bits)

    @property
    def weight_words(self):
        if self.sparse_words is not None:
            return self.sparse_words
        if self.dataflow == "matrix_vector":
            return -(-self.mv_slots // self.slots_per_word)
        if self.dataflow == "output_stationary":
            return self.m_folds * self.pixel_tiles * self.reduction
        return self.folds * self.spec.rows

    @cached_property
    def start_words(self):
        """Activation words that must be loaded before the compute engine may start, so that with one word
        loaded per cycle no read overtakes the load (the hardware interlock would otherwise stall it).

        Word ``a`` is written ``1 + a`` cycles after the cfg handshake and the slot issued ``tau`` slots after
        the first reads it at least ``start + 8 + tau`` cycles after on the weight-stationary array (its
        slots pass the slot queue, `hw.slot_queue`, which lets a slot issue two cycles after its word is
        written), ``start + 4 + tau`` on the others, which have no pre-slot and read a word written in an
        earlier cycle."""
        if not self.load_acts:
            return 0
        if self.act_source in ("feedback", "host"):
            # Words arrive as an earlier command emits them, not one per cycle: start on the last one. (A
            # command started early would hold the shared pipeline in the read-after-write interlock, and with
            # it the earlier command's last results - the very ones its input is made from.)
            return self.act_words
        p = self.problem
        lead = (3 + SlotQueue.PUSH_TO_ISSUE - (SlotQueue.CHECK_LAG - 1)
                if self.dataflow == "weight_stationary" else 2)
        if self.dataflow == "output_stationary":
            # The first m-fold reads word tile*K + k at slot tile*period + (period - K) + k: never ahead of
            # the load.
            tile, k = np.meshgrid(np.arange(self.pixel_tiles), np.arange(self.reduction), indexing="ij")
            lead_bubbles = self.fold_period - self.reduction
            addr, tau = (tile * self.reduction + k).ravel(), (tile * self.fold_period + lead_bubbles + k).ravel()
            return int(max(0, (addr - tau - lead).max()))
        if self.dataflow == "matrix_vector":
            # Slots (n, kg) of the first m-fold read word kg*N + n; later m-folds re-read them.
            n, kg = np.meshgrid(np.arange(self.pixels), np.arange(self.c_groups), indexing="ij")
            addr = (kg * p.W + n).ravel()
            tau = np.arange(addr.size)
            return int(max(0, (addr - tau - lead).max()))
        e, f = np.divmod(np.arange(self.pixels), p.F)
        worst = 0
        # The folds of the first m-fold read every word the layer reads; later m-folds only re-read them.
        for fold, (_, r, s, cg) in enumerate(self.fold_order()[:self.k_folds]):
            h = e * p.stride_h + r - p.pad_h
            w = f * p.stride_w + s - p.pad_w
            inside = (h >= 0) & (h < p.H) & (w >= 0) & (w < p.W)
            if inside.any():
                addr = (cg * p.H + h) * p.W + w
                tau = fold * self.fold_period + np.arange(self.pixels)
                worst = max(worst, int((addr - tau - lead)[inside].max()))
        return min(worst, self.act_words)

    @property
    def acc_words(self):
        if self.dataflow == "output_stationary":
            return 0
        return self.pixels * (self.m_folds if self.keep_partials else 1)

    @property
    def out_size(self):
        """(E', F') of the emitted output: pooling halves it (floor)."""
        return self.postops.out_size(self.problem.E, self.problem.F)

    @property
    def out_beats(self):
        if not self.acc_emit:
            return 0
        e, f = self.out_size
        return self.m_folds * e * f

    @property
    def last_emit_pixel(self):
        """The last pixel whose value reaches `out`: with pooling, the last kept window's bottom-right one."""
        if self.postops.pool == "none":
            return self.pixels - 1
        e_out, f_out = self.out_size
        return (2 * e_out - 1) * self.problem.F + 2 * f_out - 1

    @property
    def param_words(self):
        """Post-op parameter beats: ``postop_groups`` per m-fold (one per group of ``postop_lanes`` channels)."""
        if not (self.acc_emit and self.postops.needs_params):
            return 0
        return self.m_folds * self.spec.postop_groups

    @property
    def macs(self):
        return self.problem.macs

    # Configuration word -----------------------------------------------------------------------------------

    def config_values(self, *, start_words=None):
        p = self.problem
        values = dict(
            in_h=p.H, in_w=p.W, out_h=p.E, out_w=p.F, k_h=p.R, k_w=p.S, c_groups=self.c_groups,
            m_folds=self.m_folds, stride_h=p.stride_h, stride_w=p.stride_w, pad_h=p.pad_h, pad_w=p.pad_w,
            plane=p.H * p.W, row_step=p.stride_h * p.W, pad_row_offset=p.pad_h * p.W,
            fold_period=self.fold_period, pixels=self.pixels, act_words=self.act_words,
            start_words=self.start_words if start_words is None else start_words,
            acc_stride=self.pixels if self.keep_partials else 0, act_bank=self.act_bank,
            load_acts=int(self.load_acts), release=int(self.release), acc_init=int(self.acc_init),
            acc_emit=int(self.acc_emit), param_words=self.param_words,
            emit_words=self.m_folds * self.pixels if self.acc_emit else 0, param_bank=self.param_bank,
            **(dict(reduction=self.reduction, pixel_tiles=self.pixel_tiles)
               if self.dataflow == "output_stationary" else dict(reduction=0, pixel_tiles=0)))
        chain = postops_config_values(self.postops, self.spec.acc_type, out_h=p.E, out_w=p.F,
                                      m_folds=self.m_folds)
        values.update(pp_bias=chain["bias"], pp_requant=chain["requant"], pp_relu=chain["relu"],
                      pp_stochastic=chain["stochastic"], w_packing=self.slots_per_word.bit_length() - 1,
                      sparse=int(self.sparse_words is not None),
                      pp_pool=chain["pool"], pp_out_bits=chain["out_bits"], pp_out_signed=chain["out_signed"],
                      pp_zero_point=self.postops.zero_point & ((1 << ZERO_POINT_BITS) - 1),
                      engine=int(self.engine == "matrix_vector" and self.spec.dataflow != "matrix_vector"),
                      act_source=int(self.act_source == "feedback"), out_dest=int(self.out_dest == "feedback"),
                      pad_value=self.pad_value & ((1 << self.spec.act_type.bits) - 1))
        assert set(values) == set(CONFIG_FIELDS), set(values) ^ set(CONFIG_FIELDS)
        return values

    def config_word(self):
        return pack_config(self.spec, self.config_values())

    # Host data layout -------------------------------------------------------------------------------------

    def _lanes_to_words(self, lanes, dtype):
        """(words, lanes) int array -> list of Python ints, lane 0 in the least significant bits."""
        raw = dtype.to_bits(lanes)
        words = []
        for row in raw:
            word = 0
            for lane, value in enumerate(row.tolist()):
                word |= int(value) << (lane * dtype.bits)
            words.append(word)
        return words

    def pack_acts(self, act_canonical):
        """Canonical I[C,H,W] -> activation-stream words (channel groups zero-padded to ``rows``).

        Output-stationary: word ``tile*K + k`` holds input ``k`` of the tile's pixels (lane = pixel, raster
        order, zero beyond the last pixel)."""
        p, rows = self.problem, self.spec.rows
        if self.dataflow == "output_stationary":
            act = np.zeros((p.C, self.pixel_tiles * rows), dtype=np.int64)
            act[:, :self.pixels] = np.asarray(act_canonical).reshape(p.C, self.pixels)
            lanes = act.reshape(p.C, self.pixel_tiles, rows).transpose(1, 0, 2).reshape(-1, rows)
            return self._lanes_to_words(lanes, self.spec.act_type)
        act = np.zeros((self.c_groups * rows, p.H, p.W), dtype=np.int64)
        act[:p.C] = act_canonical
        # (cg, lane, h, w) -> (cg, h, w, lane)
        lanes = act.reshape(self.c_groups, rows, p.H, p.W).transpose(0, 2, 3, 1).reshape(-1, rows)
        return self._lanes_to_words(lanes, self.spec.act_type)

    def pack_weights(self, weight_canonical):
        """Canonical W[M,C,R,S] -> weight-stream words: in fold order (mf, r, s, cg, row) with one output
        channel per lane; for the matrix-vector engine in slot order (mf, n, kg), lane-major
        (``W[mf*cols + l, kg*rows + i]`` at lane ``l*rows + i``), repeated for every sample n."""
        p, rows, cols = self.problem, self.spec.rows, self.spec.cols
        w = np.zeros((self.m_folds * cols, self.c_groups * rows, p.R, p.S), dtype=np.int64)
        w[:p.M, :p.C] = weight_canonical
        if self.dataflow == "output_stationary":
            # Slot order (mf, tile, k), lane = output channel: the m-fold's weights again for every tile.
            w = w[:, :p.C, 0, 0].reshape(self.m_folds, cols, p.C).transpose(0, 2, 1)
            w = np.broadcast_to(w[:, None], (self.m_folds, self.pixel_tiles, p.C, cols))
            return self._lanes_to_words(w.reshape(-1, cols), self.spec.weight_type)
        if self.dataflow == "matrix_vector":
            w = w[:, :, 0, 0].reshape(self.m_folds, cols, self.c_groups, rows).transpose(0, 2, 1, 3)
            w = np.broadcast_to(w[:, None], (self.m_folds, self.pixels, self.c_groups, cols, rows))
            if self.packed_bits is not None:
                # `slots_per_word` (k) slots per word: slot k*t + j in part j of word t (part 0 in the least
                # significant bits), `packed_bits` a weight; the last word zero-filled.
                wtype, per = self.weight_type, self.slots_per_word
                if w.size and (w.min() < wtype.min or w.max() > wtype.max):
                    raise DataError(f"{p.name}: packed {wtype} weights must lie in {wtype.min}..{wtype.max}, got "
                                    f"{int(w.min())}..{int(w.max())}; quantize the layer to {wtype}")
                slots = self._lanes_to_words(w.reshape(-1, cols * rows), wtype)
                part = cols * rows * wtype.bits
                slots = slots + [0] * (-len(slots) % per)
                return [sum(slot << (j * part) for j, slot in enumerate(slots[t:t + per]))
                        for t in range(0, len(slots), per)]
            return self._lanes_to_words(w.reshape(-1, cols * rows), self.spec.weight_type)
        # (mf, lane, cg, row, r, s) -> (mf, r, s, cg, row, lane)
        w = w.reshape(self.m_folds, cols, self.c_groups, rows, p.R, p.S).transpose(0, 4, 5, 2, 3, 1)
        return self._lanes_to_words(w.reshape(-1, cols), self.spec.weight_type)

    def pack_outputs(self, out_canonical):
        """Canonical O[M,E',F'] (after the post-ops) -> the output beats the hardware sends (every lane is
        acc_bits wide, the value sign-extended). Lanes beyond M carry the post-ops of a zero sum with zero
        parameters: the output zero point (0 unless the layer has one) - or, when ``out_canonical`` has rows for
        them too (float layers: `hwgen.reference.float_layer(..., pad_channels=True)`), those rows."""
        p, cols = self.problem, self.spec.cols
        e_out, f_out = self.out_size
        out = np.full((self.m_folds * cols, e_out, f_out), self.postops.zero_point, dtype=np.int64)
        out_canonical = np.asarray(out_canonical)
        if not p.M <= len(out_canonical) <= len(out):
            raise DataError(f"{p.name}: {len(out_canonical)} output channels given, expected {p.M} (or up to the "
                            f"{len(out)} lanes of its m-folds, padding lanes included)")
        out[:len(out_canonical)] = out_canonical
        lanes = out.reshape(self.m_folds, cols, e_out * f_out).transpose(0, 2, 1).reshape(-1, cols)
        return self._lanes_to_words(lanes, self.spec.acc_type)

    def describe_output(self, beat, lane):
        """Which output element beat/lane carries, e.g. ``O[m=3, e=0, f=2]``."""
        e_out, f_out = self.out_size
        mf, pixel = divmod(beat, e_out * f_out)
        e, f = divmod(pixel, f_out)
        m = mf * self.spec.cols + lane
        return f"{self.problem.out}[m={m}, e={e}, f={f}]" if m < self.problem.M else f"padding lane m={m}"

    def unpack_outputs(self, beats):
        """Output-stream words -> canonical O[M,E,F] (lanes beyond M dropped)."""
        p, cols, acc = self.problem, self.spec.cols, self.spec.acc_type
        if len(beats) != self.out_beats:
            raise DataError(f"{p.name}: expected {self.out_beats} output beats, got {len(beats)}")
        mask = (1 << acc.bits) - 1
        e_out, f_out = self.out_size
        raw = np.array([[(int(b) >> (lane * acc.bits)) & mask for lane in range(cols)] for b in beats],
                       dtype=np.uint64)
        values = acc.from_bits(raw).reshape(self.m_folds, e_out * f_out, cols)
        out = values.transpose(0, 2, 1).reshape(self.m_folds * cols, e_out, f_out)
        return out[:p.M]

    # Golden sequencer ----------------------------------------------------------------------------------------

    def fold_order(self):
        """(mf, r, s, cg) per fold, in issue order."""
        p = self.problem
        return [(mf, r, s, cg) for mf in range(self.m_folds) for r in range(p.R) for s in range(p.S)
                for cg in range(self.c_groups)]

    def slots(self, *, start_bank=0):
        """Every issue slot in order: the reference the hardware address generator is tested against.

        `start_bank` is the weight bank of the first fold (weight banks alternate across commands)."""
        p = self.problem
        last = (p.R - 1, p.S - 1, self.c_groups - 1)
        stride = self.pixels if self.keep_partials else 0
        for fold, (mf, r, s, cg) in enumerate(self.fold_order()):
            for t in range(self.fold_period):
                valid = t < self.pixels
                e, f = divmod(t, p.F) if valid else (0, 0)
                h = e * p.stride_h + r - p.pad_h
                w = f * p.stride_w + s - p.pad_w
                padded = not (0 <= h < p.H and 0 <= w < p.W)
                yield Slot(fold=fold, valid=valid, pixel=(mf * stride + t) if valid else 0,
                           act_addr=(cg * p.H + h) * p.W + w, padded=padded,
                           first_k=(r, s, cg) == (0, 0, 0) and self.acc_init,
                           last_k=(r, s, cg) == last and self.acc_emit, bank=(start_bank + fold) % 2)

    def os_slots_sequence(self):
        """Output-stationary: (act_addr, valid lanes, first, last) of every reduction slot in issue order (bubbles
        left out): the reference for `hw.os_sequencer`."""
        rows, K = self.spec.rows, self.reduction
        for _ in range(self.m_folds):
            for tile in range(self.pixel_tiles):
                lanes = min(rows, self.pixels - tile * rows)
                for k in range(K):
                    yield tile * K + k, (1 << lanes) - 1, k == 0, k == K - 1

    def manifest(self):
        return {"layer": self.problem.name, "kind": self.problem.kind, "problem": self.problem.to_dict(),
                "folds": {"m": self.m_folds, "k": self.k_folds, "c_groups": self.c_groups,
                          "period": self.fold_period},
                "words": {"weights": self.weight_words, "activations": self.act_words,
                          "outputs": self.out_beats},
                "config": self.config_values(), "macs": self.macs}
