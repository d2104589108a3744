"""The validated, immutable description of one accelerator: the single source of truth.

Hardware is elaborated from an `AcceleratorSpec`; the manifest, the host-side packing and the cycle model read
the same object, so they cannot drift apart.
"""

import re
from dataclasses import dataclass, asdict
from math import gcd

from .dtypes import IntType, is_float, parse_dtype
from .errors import DesignTypeError, MappingError, UnsupportedTypeError

__all__ = ["AcceleratorSpec", "DATAFLOWS", "buffer_bytes_for", "buffer_granule_bytes", "check_name",
           "default_postop_lanes", "MAX_BUFFER_WORDS", "PACKED_WEIGHT_BITS", "MAX_OUT_CHANNELS", "MAX_POOL_WIDTH",
           "MAX_NAME_LENGTH"]

DATAFLOWS = ("weight_stationary", "output_stationary", "matrix_vector")

# Operand widths the PE multiplier is built and tested for.
_OPERAND_BITS = range(2, 17)

# Size limits. A buffer is one memory of array-wide words; generating its Verilog takes time and memory in
# proportion to its depth (65,536 words: tens of seconds), and no FPGA target holds more (the LFE5U-85F has
# 0.47 MiB of block RAM in all).
MAX_BUFFER_WORDS = 1 << 16
# Packed weight widths the matrix-vector engine can decode from its int8 weight lanes (8 // bits weights a byte).
PACKED_WEIGHT_BITS = (4, 2)
MAX_OUT_CHANNELS = 1 << 15       # post-op parameter memory: two banks of max_out_channels / cols entries
MAX_POOL_WIDTH = 1 << 16         # pooling line buffer: max_pool_width / 2 entries
MAX_NAME_LENGTH = 64

# Names become Verilog module names and file names: plain ASCII identifiers that are no Verilog keyword.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VERILOG_KEYWORDS = frozenset("""
    always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign default defparam
    design disable edge else end endcase endconfig endfunction endgenerate endmodule endprimitive endspecify
    endtable endtask event for force forever fork function generate genvar highz0 highz1 if ifnone incdir include
    initial inout input instance integer join large liblist library localparam macromodule medium module nand
    negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1
    pulldown pullup pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat rnmos rpmos
    rtran rtranif0 rtranif1 scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1
    table task time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
    weak0 weak1 while wire wor xnor xor
    alias always_comb always_ff always_latch assert assume bind bit break byte chandle class clocking const
    constraint context continue cover covergroup coverpoint cross dist do endclass endclocking endgroup
    endinterface endpackage endprogram endproperty endsequence enum expect export extends extern final
    first_match foreach forkjoin iff ignore_bins illegal_bins import inside int interface intersect join_any
    join_none local logic longint matches modport new null package packed priority program property protected
    pure rand randc randcase randsequence ref return sequence shortint shortreal solve static string struct super
    tagged this throughout timeprecision timeunit type typedef union unique var virtual void wait_order wildcard
    with within""".split())


def check_name(name, what, *, error=MappingError):
    """`name` if it may name hardware and files (an ASCII identifier of at most `MAX_NAME_LENGTH` characters,
    no Verilog keyword); else `error` (`DesignTypeError` when it is not a string) naming the rule."""
    if not isinstance(name, str):
        raise DesignTypeError(f"{what} must be a string (it names the Verilog module and files), not {name!r}")
    if not _NAME.match(name):
        raise error(f"{what} {name!r} is not a plain identifier: use letters, digits and '_', not starting with a "
                    f"digit (it names the Verilog module and files), e.g. 'conv_ws8'")
    if len(name) > MAX_NAME_LENGTH:
        raise error(f"{what} {name[:20]!r}... is {len(name)} characters long; use at most {MAX_NAME_LENGTH}")
    if name in _VERILOG_KEYWORDS:
        raise error(f"{what} {name!r} is a Verilog keyword and cannot name a module; choose another, e.g. "
                    f"'{name}_accel'")
    return name


def _positive_int(value, what, *, fix):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise MappingError(f"{what} must be a positive integer, not {value!r}; {fix}")
    return value


def default_postop_lanes(cols, dataflow="weight_stationary", is_float=False):
    """The default `AcceleratorSpec.postop_lanes`: all ``cols`` on the output-stationary array, else the largest
    divisor of ``cols`` not above ``max(1, cols // 4)`` (a beat in four cycles on an 8- or 16-wide array), on
    an integer and a float datapath alike (``is_float`` no longer changes the answer: the float chain takes a
    beat group by group too, and its fp32 lanes are what a narrow chain saves, fpga/README.md "Precisions
    side by side").
    """
    if dataflow == "output_stationary":
        return cols
    target = max(1, cols // 4)
    return max(d for d in range(1, target + 1) if cols % d == 0)


def buffer_granule_bytes(word_bits):
    """The smallest byte count that is a whole number of `word_bits`-bit words."""
    return word_bits // gcd(word_bits, 8)


def buffer_bytes_for(words, word_bits):
    """The smallest buffer size in bytes that holds `words` words and is a whole number of words."""
    granule = buffer_granule_bytes(word_bits)          # bytes per granule
    words_per_granule = granule * 8 // word_bits
    return -(-words // words_per_granule) * granule


@dataclass(frozen=True)
class AcceleratorSpec:
    """A ``rows`` x ``cols`` processing-element array with its buffers.

    ``dataflow="weight_stationary"``: a systolic array, input channels on rows, output channels on columns.
    ``dataflow="output_stationary"``: a systolic array, output pixels on rows, output channels on columns; every
    PE keeps one output while the host-unrolled (im2col) activations and the weights stream through.
    ``dataflow="matrix_vector"``: ``cols`` dot-product lanes of ``rows`` multipliers (batch-1 fully connected
    layers), fed straight from the weight stream.

    Buffer sizes are in bytes. Each buffer is one memory whose word is one array-wide vector:
    the activation buffer holds ``rows`` activations per word, the weight buffer ``cols`` weights per word,
    the accumulator buffer ``cols`` accumulators per word (output-stationary keeps its sums in the PEs and
    builds no accumulator buffer).

    ``postops=False`` builds no post-op chain (no parameter memory, no requantization multipliers, no pooling
    line buffer): the int32 accumulators go straight to ``out``, and layers that ask for post-ops are rejected.

    ``postop_pooling=False`` builds the chain without its 2x2 pooling (no line buffer, no held column, no pair
    or window compare): the stages keep their registers, so the latency and the cycle model are unchanged, and
    layers that ask for pooling are rejected (`hwgen.postops.check_supported`). For devices where the chain
    barely fits (the iCE40 UP5K).

    ``postop_lanes``: how many channels the post-op chain processes per cycle (a divisor of ``cols``). With fewer
    lanes than columns, finished accumulator beats wait in a block-RAM FIFO (``postop_fifo_depth`` beats) and
    each beat passes the chain in ``cols // postop_lanes`` cycles (`postop_groups`): the chain is sized to the
    rate outputs are finished at (one beat per pixel per m-fold, after the last k-fold) rather than to the
    array's peak rate. A compute engine issues a slot that finishes a beat only while the FIFO has room for it
    (`hwgen.perf` models it exactly). Default: ``cols // 4`` lanes (at least 1; the largest divisor of
    ``cols`` not above it) on the weight-stationary array and the matrix-vector engine, all ``cols`` on the
    output-stationary array (which needs them: its read-out is not held back). A float datapath follows the
    same rule: its fp32 lanes take a beat group by group like the integer ones.

    Whole networks (`hwgen.compiler`): ``mv_engine=True`` builds the matrix-vector engine beside a
    weight-stationary array, in one accelerator (shared loader, activation buffer, post-op chain and output;
    its weights arrive on a port of their own, ``mv_weights``, into a FIFO of ``mv_weight_buffer_bytes``), so
    each command runs on the engine that is fastest for it. ``chaining=True`` (square arrays with the post-op
    chain) adds the on-chip path from the post-op chain's output back into the activation loader: a command
    may send its (requantized) output there instead of to ``out``, and a later command may load its
    activations from there instead of from ``acts`` - layer N's output becomes layer N+1's input without
    leaving the chip.
    On a float accelerator (bf16/fp16) the feedback takes each post-op lane's low 16 bits: a layer chains when
    its chain narrows the output to the operand format (``PostOps(requant=True, out_type=fmt)``).
    """
    rows: int
    cols: int
    dataflow: str = "weight_stationary"
    act_type: IntType = IntType(8)
    weight_type: IntType = IntType(8)
    acc_type: IntType = IntType(32)
    act_buffer_bytes: int = 16 * 1024
    weight_buffer_bytes: int = 16 * 1024
    acc_buffer_bytes: int = 8 * 1024
    max_out_channels: int = 512   # post-op parameter memory: one bias/multiplier/shift per output channel
    max_pool_width: int = 64      # widest output row the 2x2 pooling line buffer holds
    postops: bool = True          # build the post-op chain (bias, requant, ReLU, pooling); False: raw accumulators
    name: str = "hwgen_accel"
    mv_engine: bool = False       # also build the matrix-vector engine beside the weight-stationary array
    mv_weight_buffer_bytes: int = None   # its weight FIFO (default: 32 words of rows x cols weights)
    chaining: bool = False        # the on-chip path from the post-op output back into the activation loader
    feedback_depth: int = 512     # words the on-chip feedback FIFO holds (chaining), in block RAM
    postop_lanes: int = None      # channels the post-op chain processes per cycle (default: see above)
    postop_fifo_depth: int = None  # beats its input FIFO holds when it is narrower than the array (default: 2 x
                                   # the accumulator buffer's words, at least 16; always 0 without it)
    stochastic_rounding: bool = False   # build a random-number generator per column for stochastic rounding
    rounding_seed: int = 1        # its seed (1 .. 2**32 - 1): the column generators start from column_seeds(seed)
    sparse_mv: bool = False       # the sparse matrix-vector engine (`hwgen.hw.sparse_mv`, `hwgen.sparse`)
    sparse_depth: int = 64        # its accumulators per lane: a command covers rows x cols x sparse_depth outputs
    # Packed weights on the matrix-vector engine, per layer: the widths it also decodes, each from int8 weight lanes
    # holding 8 // bits weights (``(4,)``: int4 two per byte; ``(2,)``: int2 four per byte; ``(4, 2)``: both).
    packed_weight_bits: tuple = ()
    postop_pooling: bool = True   # build the chain's 2x2 pooling (line buffer, held column, pair and window);
                                  # False: bias, requantization and ReLU only, layers that pool are rejected

    def __post_init__(self):
        _positive_int(self.rows, "rows", fix="give the array height, e.g. rows=8")
        _positive_int(self.cols, "cols", fix="give the array width, e.g. cols=8")
        if self.rows > 64 or self.cols > 64:
            raise MappingError(f"a {self.rows}x{self.cols} array is larger than the 64x64 hwgen supports; "
                               f"use at most 64 rows and 64 cols")
        if self.dataflow not in DATAFLOWS:
            raise MappingError(f"dataflow {self.dataflow!r} is not implemented; choose one of {DATAFLOWS}")
        for field_name in ("act_type", "weight_type", "acc_type"):
            object.__setattr__(self, field_name, parse_dtype(getattr(self, field_name), what=field_name))
        if any(is_float(getattr(self, name)) for name in ("act_type", "weight_type", "acc_type")):
            self._check_float()
        for field_name in ("act_type", "weight_type"):
            dtype = getattr(self, field_name)
            if dtype.bits not in _OPERAND_BITS:
                raise UnsupportedTypeError(
                    f"{field_name} {dtype} is not supported: multiplier operands must be 2 to 16 bits wide")
        if not self.acc_type.signed and not self.is_float:
            raise UnsupportedTypeError(f"acc_type {self.acc_type} must be signed (e.g. int32)")
        if self.acc_type.bits < self.product_bits:
            raise UnsupportedTypeError(
                f"acc_type {self.acc_type} is narrower than one product ({self.product_bits} bits for "
                f"{self.act_type} x {self.weight_type}); use at least int{self.product_bits}")
        check_name(self.name, "accelerator name")
        for field_name, word_bits in (("act_buffer_bytes", self.act_word_bits),
                                      ("weight_buffer_bytes", self.weight_word_bits),
                                      ("acc_buffer_bytes", self.acc_word_bits)):
            size = _positive_int(getattr(self, field_name), field_name, fix="give the buffer size in bytes")
            if (size * 8) % word_bits:
                chunk = buffer_granule_bytes(word_bits)
                raise MappingError(
                    f"{field_name}={size} is not a whole number of {word_bits}-bit words (one array-wide "
                    f"vector); round it to a multiple of {chunk} bytes")
        for field_name, depth, word_bits in (("act_buffer_bytes", self.act_depth, self.act_word_bits),
                                             ("weight_buffer_bytes", self.weight_depth, self.weight_word_bits),
                                             ("acc_buffer_bytes", self.acc_depth, self.acc_word_bits)):
            if depth > MAX_BUFFER_WORDS:
                raise MappingError(
                    f"{field_name}={getattr(self, field_name)} is {depth} words of {word_bits} bits; hwgen builds "
                    f"buffers of at most {MAX_BUFFER_WORDS} words (no FPGA target holds more, and generating "
                    f"the Verilog of deeper memories takes minutes): use {field_name} <= "
                    f"{MAX_BUFFER_WORDS * word_bits // 8}")
        if self.act_depth < 2 or self.act_depth % 2:
            raise MappingError(
                f"act_buffer_bytes={self.act_buffer_bytes} holds {self.act_depth} words; the activation buffer "
                f"is two equal banks (one loads while the other computes), so it needs an even number of "
                f"{self.act_word_bits}-bit words, at least 2")
        if not isinstance(self.postops, bool):
            raise MappingError(f"postops must be True (build the post-op chain) or False (raw accumulators on "
                               f"`out`, no post-op hardware), not {self.postops!r}")
        _positive_int(self.max_out_channels, "max_out_channels", fix="give the most output channels a layer with "
                      "bias or requantization may have")
        if self.max_out_channels > MAX_OUT_CHANNELS:
            raise MappingError(f"max_out_channels={self.max_out_channels} is more than the {MAX_OUT_CHANNELS} "
                               f"the post-op parameter memory holds; use at most {MAX_OUT_CHANNELS} (layers with "
                               f"more output channels are split into commands of at most that many)")
        if (not isinstance(self.max_pool_width, int) or isinstance(self.max_pool_width, bool)
                or not 2 <= self.max_pool_width <= MAX_POOL_WIDTH):
            raise MappingError(f"max_pool_width must be an integer from 2 to {MAX_POOL_WIDTH}, not "
                               f"{self.max_pool_width!r}")
        if self.weight_depth < 2:
            raise MappingError(f"weight_buffer_bytes={self.weight_buffer_bytes} must hold at least 2 weight words")
        for flag in ("mv_engine", "chaining"):
            if not isinstance(getattr(self, flag), bool):
                raise MappingError(f"{flag} must be True or False, not {getattr(self, flag)!r}")
        if self.mv_engine:
            if self.dataflow != "weight_stationary":
                raise MappingError(f"mv_engine=True builds the matrix-vector engine beside a weight-stationary "
                                   f"array, not beside a {self.dataflow} one; set dataflow='weight_stationary'")
            if self.mv_weight_buffer_bytes is None:
                object.__setattr__(self, "mv_weight_buffer_bytes", 32 * self.mv_weight_word_bits // 8)
            size = _positive_int(self.mv_weight_buffer_bytes, "mv_weight_buffer_bytes",
                                 fix="give the matrix-vector engine's weight FIFO size in bytes")
            if (size * 8) % self.mv_weight_word_bits or self.mv_weight_depth < 2:
                raise MappingError(
                    f"mv_weight_buffer_bytes={size} must be a whole number, at least 2, of "
                    f"{self.mv_weight_word_bits}-bit words (rows x cols weights); round it to a multiple of "
                    f"{buffer_granule_bytes(self.mv_weight_word_bits)} bytes")
            if self.mv_weight_depth > MAX_BUFFER_WORDS:
                raise MappingError(f"mv_weight_buffer_bytes={size} is {self.mv_weight_depth} words; hwgen builds "
                                   f"buffers of at most {MAX_BUFFER_WORDS} words: use mv_weight_buffer_bytes <= "
                                   f"{MAX_BUFFER_WORDS * self.mv_weight_word_bits // 8}")
        elif self.mv_weight_buffer_bytes is not None:
            raise MappingError("mv_weight_buffer_bytes sizes the matrix-vector engine's weight FIFO; set "
                               "mv_engine=True too, or leave it unset")
        if self.chaining:
            if self.rows != self.cols:
                raise MappingError(
                    f"chaining=True feeds an output beat ({self.cols} channels) back as an activation word "
                    f"({self.rows} channels): it needs a square array, not {self.rows}x{self.cols}")
            if not self.postops:
                raise MappingError("chaining=True feeds the requantized output of the post-op chain back; build "
                                   "the chain too (postops=True)")
            _positive_int(self.feedback_depth, "feedback_depth", fix="give the feedback FIFO's depth in words")
            if not 2 <= self.feedback_depth <= MAX_BUFFER_WORDS:
                raise MappingError(f"feedback_depth={self.feedback_depth} must be from 2 to {MAX_BUFFER_WORDS} words")
        if self.postop_lanes is None:
            object.__setattr__(self, "postop_lanes", default_postop_lanes(self.cols, self.dataflow, self.is_float))
        lanes = self.postop_lanes
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1 or self.cols % lanes:
            divisors = [d for d in range(1, self.cols + 1) if self.cols % d == 0]
            raise MappingError(f"postop_lanes={lanes!r} must divide cols={self.cols} (one of {divisors}): each "
                               f"output beat passes the post-op chain in cols // postop_lanes cycles")
        if self.dataflow == "output_stationary" and lanes != self.cols:
            raise MappingError(f"postop_lanes={lanes}: the output-stationary array's read-out cannot be held back "
                               f"for a narrower post-op chain; use postop_lanes={self.cols} (= cols)")
        narrow = self.postops and self.postop_groups > 1
        if self.postop_fifo_depth is None:
            object.__setattr__(self, "postop_fifo_depth", max(2 * self.acc_depth, 16) if narrow else 0)
        elif narrow:
            depth = self.postop_fifo_depth
            if not isinstance(depth, int) or isinstance(depth, bool) or not 2 <= depth <= MAX_BUFFER_WORDS:
                raise MappingError(f"postop_fifo_depth={depth!r} must be an integer from 2 to {MAX_BUFFER_WORDS} "
                                   f"(beats waiting for the post-op chain)")
        else:
            # No FIFO in front of a chain as wide as the array (or without one): a depth carried over from a
            # narrower spec (`dataclasses.replace(spec, postops=False)`, `from_dict`) is dropped.
            object.__setattr__(self, "postop_fifo_depth", 0)

        if not isinstance(self.postop_pooling, bool):
            raise MappingError(f"postop_pooling must be True (build the post-op chain's 2x2 pooling) or False "
                               f"(bias, requantization and ReLU only: a smaller chain for small devices), not "
                               f"{self.postop_pooling!r}")
        if not isinstance(self.stochastic_rounding, bool):
            raise MappingError(f"stochastic_rounding must be True or False, not {self.stochastic_rounding!r}")
        if self.stochastic_rounding and not self.postops:
            raise MappingError("stochastic_rounding=True rounds the requantization of the post-op chain; build the "
                               "chain too (postops=True)")
        if (not isinstance(self.rounding_seed, int) or isinstance(self.rounding_seed, bool)
                or not 1 <= self.rounding_seed < 1 << 32):
            raise MappingError(f"rounding_seed must be an integer from 1 to 2**32 - 1 (the stochastic-rounding "
                               f"generators' seed), not {self.rounding_seed!r}")
        if not isinstance(self.sparse_mv, bool):
            raise MappingError(f"sparse_mv must be True or False, not {self.sparse_mv!r}")
        if (not isinstance(self.sparse_depth, int) or isinstance(self.sparse_depth, bool)
                or not 1 <= self.sparse_depth <= 4096):
            raise MappingError(f"sparse_depth must be an integer from 1 to 4096 (accumulators per lane of the "
                               f"sparse engine), not {self.sparse_depth!r}")
        if self.sparse_mv and not (self.dataflow == "matrix_vector" or
                                   (self.dataflow == "weight_stationary" and self.mv_engine)):
            raise MappingError(f"sparse_mv=True builds the sparse engine beside a matrix-vector engine: on a "
                               f"dataflow='matrix_vector' accelerator, or on a weight-stationary one with "
                               f"mv_engine=True; not beside a {self.dataflow} array"
                               + ("" if self.mv_engine else " without mv_engine"))
        self._check_packed_weight_bits()

    def _check_packed_weight_bits(self):
        bits = self.packed_weight_bits
        if isinstance(bits, (list, tuple)) and all(isinstance(b, int) and not isinstance(b, bool) for b in bits):
            bits = tuple(sorted(set(bits), reverse=True))
        if not isinstance(bits, tuple) or not set(bits) <= set(PACKED_WEIGHT_BITS):
            raise MappingError(f"packed_weight_bits must be a tuple of the packed weight widths the matrix-vector "
                               f"engine decodes, from {PACKED_WEIGHT_BITS} (e.g. (4,) or (4, 2)), not "
                               f"{self.packed_weight_bits!r}")
        object.__setattr__(self, "packed_weight_bits", bits)
        if bits:
            what = f"packed_weight_bits={bits}"
            if "matrix_vector" not in self.engines:
                raise MappingError(f"{what} decodes packed weights in the matrix-vector engine; build one "
                                   f"(dataflow='matrix_vector', or mv_engine=True)")
            if self.weight_type.bits != 8 or not self.weight_type.signed:
                raise UnsupportedTypeError(f"{what} packs int{min(bits)}..int{max(bits)} weights into each int8 "
                                           f"weight lane's byte; it needs weight_type int8, not {self.weight_type}")

    def _check_float(self):
        """The float datapath (`hwgen.floats`): bf16 or fp16 operands of one format, fp32 accumulation, on the
        weight-stationary or output-stationary array."""
        a, w, acc = self.act_type, self.weight_type, self.acc_type
        example = "AcceleratorSpec(..., act_type='bf16', weight_type='bf16', acc_type='fp32')"
        if not (is_float(a) and is_float(w) and is_float(acc)):
            raise UnsupportedTypeError(
                f"act_type {a}, weight_type {w}, acc_type {acc} mix integer and floating-point types; the float "
                f"datapath multiplies bf16 or fp16 operands and accumulates in fp32: use {example} (or 'fp16' "
                f"operands), or integer types throughout")
        if a.name not in ("bf16", "fp16") or w != a:
            raise UnsupportedTypeError(
                f"act_type {a} and weight_type {w}: the float PEs multiply two operands of one 16-bit format, "
                f"bf16 x bf16 or fp16 x fp16 (products exact in fp32); use {example}")
        if acc.name != "fp32":
            raise UnsupportedTypeError(f"acc_type {acc}: the float datapath accumulates in fp32; use {example}")
        if self.dataflow == "matrix_vector":
            raise MappingError(f"the float datapath is built on the weight-stationary and output-stationary "
                               f"arrays, not the matrix-vector engine; set dataflow='weight_stationary' (or use "
                               f"integer types)")
        for flag, why in (("mv_engine", "the matrix-vector engine"),
                          ("stochastic_rounding", "stochastic rounding"), ("sparse_mv", "the sparse engine"),
                          ("packed_weight_bits", "packed weights")):
            value = getattr(self, flag)
            if value:                                   # True, or a non-empty packed_weight_bits
                raise MappingError(f"{flag}={value!r}: {why} is integer-only; leave {flag}="
                                   f"{'()' if flag == 'packed_weight_bits' else 'False'} for a {a} accelerator")

    @property
    def is_float(self):
        """Whether the datapath is floating point (bf16/fp16 operands, fp32 accumulation)."""
        return is_float(self.acc_type)

    @property
    def float_format(self):
        """The operands' float format (``"bf16"``/``"fp16"``), None for an integer datapath."""
        return self.act_type.name if self.is_float else None

    @property
    def sparse_word_bits(self):
        """The sparse engine's stream word: the activation, a last flag, and per lane (valid, slot, weight)."""
        slot_bits = max(1, (self.sparse_depth - 1).bit_length())
        return self.act_type.bits + 1 + self.rows * self.cols * (1 + slot_bits + self.weight_type.bits)

    # Derived hardware quantities --------------------------------------------------------------------------

    @property
    def pes(self):
        return self.rows * self.cols

    @property
    def product_bits(self):
        """Width of one exact product of an activation and a weight (fp32 for the float datapath)."""
        if self.is_float:
            return 32
        return self.act_type.bits + self.weight_type.bits

    @property
    def product_type(self):
        signed = self.act_type.signed or self.weight_type.signed
        return IntType(self.product_bits, signed)

    @property
    def psum_bits(self):
        """Column partial sums add at most ``rows`` products: this width cannot overflow (fp32 when float)."""
        if self.is_float:
            return 32
        return self.product_bits + max(1, (self.rows - 1).bit_length()) + 1

    @property
    def act_word_bits(self):
        return self.rows * self.act_type.bits

    @property
    def weight_word_bits(self):
        """Weight-stationary: one row of PE weights. Matrix-vector: every lane's ``rows`` weights, one cycle's worth."""
        lanes = self.cols * (self.rows if self.dataflow == "matrix_vector" else 1)
        return lanes * self.weight_type.bits

    @property
    def mv_weight_word_bits(self):
        """The matrix-vector engine's weight word: every lane's ``rows`` weights (one cycle's worth)."""
        return self.rows * self.cols * self.weight_type.bits

    @property
    def mv_weight_depth(self):
        return (self.mv_weight_buffer_bytes or 0) * 8 // self.mv_weight_word_bits

    @property
    def engines(self):
        """The compute engines this accelerator holds, by the dataflow each runs."""
        return (self.dataflow, "matrix_vector") if self.mv_engine else (self.dataflow,)

    def engine_weight_word_bits(self, engine):
        """Width of the weight words a command on ``engine`` streams."""
        if engine == "matrix_vector":
            return self.mv_weight_word_bits
        return self.cols * self.weight_type.bits

    @property
    def acc_word_bits(self):
        return self.cols * self.acc_type.bits

    @property
    def act_depth(self):
        return self.act_buffer_bytes * 8 // self.act_word_bits

    @property
    def max_param_folds(self):
        """Entries per bank of the post-op parameter memory (one per m-fold of ``cols`` channels)."""
        return -(-self.max_out_channels // self.cols)

    @property
    def postop_groups(self):
        """Cycles one output beat takes through the post-op chain: ``cols // postop_lanes``."""
        return self.cols // self.postop_lanes

    @property
    def act_bank_depth(self):
        """The activation buffer is two banks: one loads while the other is read."""
        return self.act_depth // 2

    @property
    def weight_depth(self):
        return self.weight_buffer_bytes * 8 // self.weight_word_bits

    @property
    def acc_depth(self):
        return self.acc_buffer_bytes * 8 // self.acc_word_bits

    def max_abs_product(self, weight_type=None):
        """The largest |product| (integer datapaths; 0 for float, whose sums cannot overflow a type: they
        saturate to infinities by the numeric policy). ``weight_type``: of the weights a layer streams, when
        narrower than the spec's (packed int4/int2 on the matrix-vector engine; e.g. int8 x int2: 256)."""
        if self.is_float:
            return 0
        a, w = self.act_type, weight_type or self.weight_type
        return max(abs(x * y) for x in (a.min, a.max) for y in (w.min, w.max))

    @classmethod
    def from_dict(cls, data):
        """Inverse of `to_dict` (derived entries are ignored)."""
        names = [f for f in cls.__dataclass_fields__]
        return cls(**{name: data[name] for name in names if name in data})

    def to_dict(self):
        data = asdict(self)
        for key in ("act_type", "weight_type", "acc_type"):
            data[key] = getattr(self, key).name
        data["packed_weight_bits"] = list(self.packed_weight_bits)     # JSON's form (from_dict takes it back)
        data.update(pes=self.pes, act_depth=self.act_depth, weight_depth=self.weight_depth,
                    acc_depth=self.acc_depth, psum_bits=self.psum_bits, mv_weight_depth=self.mv_weight_depth,
                    postop_groups=self.postop_groups)
        return data
