"""The layer-configuration word: one beat on the ``cfg`` stream programs one layer.

The layout is generated from the spec, and the host packs the same layout (`pack_config`), so the field
offsets exist in exactly one place.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

__all__ = ["CONFIG_FIELDS", "ZERO_POINT_BITS", "config_layout", "pack_config", "pack_fields", "unpack_config"]

# Counts and sizes: one unsigned field each, `field_bits(spec)` wide.
COUNT_FIELDS = (
    "in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "c_groups", "m_folds",
    "stride_h", "stride_w", "pad_h", "pad_w",
    "plane",           # in_h * in_w: activation words per channel group
    "row_step",        # stride_h * in_w: address step between output rows
    "pad_row_offset",  # pad_h * in_w: subtracted from the first row's address
    "fold_period",     # issue slots per fold (>= pixels; see schedule.fold_period)
    "pixels",          # out_h * out_w
    "act_words",       # words to load into the activation bank (when load_acts)
    "start_words",     # words loaded before the compute engine may start (the rest arrive as it computes)
    "acc_stride",      # accumulator words between m-folds: 0 when each m-fold is emitted before the next
    "param_words",     # post-op parameter beats to load with this command (one per m-fold, or 0)
    "emit_words",      # beats this command sends into the post-op chain: m_folds * pixels when it emits
    "reduction",       # output-stationary: reduction length K = words per pixel tile (0 otherwise)
    "pixel_tiles",     # output-stationary: tiles of `rows` pixels (0 otherwise)
)
# One-bit flags: how this command (one tile) uses the double-banked activations and the accumulators.
FLAG_FIELDS = (
    "act_bank",        # which half of the activation buffer holds this tile's activations
    "load_acts",       # load act_words from the acts stream first (else reuse what the bank holds)
    "release",         # the bank may be overwritten once this tile has read it
    "acc_init",        # this tile starts the accumulation (its first k-fold ignores the buffer)
    "acc_emit",        # this tile ends it (its last k-fold sends results to `out`)
    "param_bank",      # which bank of the post-op parameter memory this command's parameters use
    "pp_bias", "pp_requant", "pp_relu",   # the post-op chain (`hwgen.postops.PostOps`)
    "pp_stochastic",   # stochastic rounding of the requantization (PostOps.rounding)
    "sparse",          # run on the sparse matrix-vector engine (AcceleratorSpec.sparse_mv), words from `sparse`
    "engine",          # 0: the array (the spec's dataflow), 1: the matrix-vector engine beside it (mv_engine)
    "act_source",      # 0: load activations from the `acts` stream, 1: from the on-chip feedback (chaining)
    "out_dest",        # 0: emit to `out`, 1: to the on-chip feedback, as activation words (chaining)
)
# Wider settings: the post-op chain, the value a padded read gives (an input's zero point), and the packing of
# the matrix-vector engine's weights: log2 of the slots one weight word holds (0: int8, 1: int4 two per byte,
# 2: int2 four per byte; AcceleratorSpec.packed_weight_bits).
POSTOP_FIELDS = ("pp_pool", "pp_out_bits", "pp_out_signed", "pp_zero_point")
VALUE_FIELDS = ("pad_value", "w_packing")
CONFIG_FIELDS = COUNT_FIELDS + FLAG_FIELDS + POSTOP_FIELDS + VALUE_FIELDS
from ..postops import ZERO_POINT_BITS   # an output zero point: -2**15 .. 2**15 - 1, two's complement


def field_bits(spec):
    """One width for every count: enough for any address or count the buffers allow, plus a sign bit."""
    largest = max(spec.act_depth, spec.weight_depth, spec.acc_depth, 2 * max(spec.rows, spec.cols)) + 1
    return largest.bit_length() + 1


def config_layout(spec):
    bits = field_bits(spec)
    return data.StructLayout({**{name: unsigned(bits) for name in COUNT_FIELDS},
                              **{name: unsigned(1) for name in FLAG_FIELDS},
                              "pp_pool": unsigned(2), "pp_out_bits": unsigned(spec.acc_type.bits.bit_length()),
                              "pp_out_signed": unsigned(1), "pp_zero_point": unsigned(ZERO_POINT_BITS),
                              "pad_value": unsigned(spec.act_type.bits), "w_packing": unsigned(2)})


def pack_fields(layout, values, *, what="config"):
    """Dict of unsigned field values -> the integer of a `data.StructLayout` word (every field required)."""
    missing = {name for name, _ in layout} - set(values)
    if missing:
        raise ValueError(f"{what} is missing fields {sorted(missing)}")
    word = 0
    for name, field in layout:
        value = values[name]
        if not 0 <= value < (1 << field.width):
            raise ValueError(f"{what} field {name}={value} does not fit {field.width} bits")
        word |= value << field.offset
    return word


def pack_config(spec, values):
    """Dict of field values -> the integer to put on the ``cfg`` payload."""
    return pack_fields(config_layout(spec), values)


def unpack_config(spec, word):
    layout = config_layout(spec)
    return {name: (word >> field.offset) & ((1 << field.width) - 1) for name, field in layout}
