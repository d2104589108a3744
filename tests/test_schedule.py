"""The layer schedule (`hwgen.schedule`): host data layouts, the slot sequence, the fold period, and the errors
that reject a layer a spec cannot run.

Golden models beside the tests: `lanes` decodes a buffer word by the documented layout, and `run_slots` is a
transaction-level accelerator that executes the golden slots on the packed buffers; composing it with the
packers and `unpack_outputs` must give `reference.conv2d` exactly.
"""

import re
from dataclasses import replace
from itertools import product
from math import ceil

import numpy as np
import pytest

from hwgen import reference
from hwgen.dtypes import IntType, int32, parse_dtype
from hwgen.errors import AccumulatorOverflowError, BufferOverflowError, MappingError
from hwgen.hw.config import CONFIG_FIELDS, field_bits, unpack_config
from hwgen.postops import PostOps
from hwgen.problem import ConvProblem
from hwgen.schedule import LayerSchedule, fold_period
from hwgen.spec import AcceleratorSpec


def make_spec(rows, cols, *, act_type="int8", weight_type="int8", acc_type=int32, act_words=256,
              weight_words=256, acc_words=256):
    a, w, acc = (parse_dtype(t, what="dtype") for t in (act_type, weight_type, acc_type))
    # Whole words for any word width: 8 words of `bits` bits are `bits` bytes.
    return AcceleratorSpec(rows=rows, cols=cols, act_type=a, weight_type=w, acc_type=acc,
                           act_buffer_bytes=act_words // 8 * rows * a.bits,
                           weight_buffer_bytes=weight_words // 8 * cols * w.bits,
                           acc_buffer_bytes=acc_words // 8 * cols * acc.bits)


def conv(C, M, H, W, R, S, stride=(1, 1), pad=(0, 0), name="layer"):
    (sh, sw), (ph, pw) = stride, pad
    return ConvProblem(name=name, kind="conv2d", C=C, H=H, W=W, M=M, E=(H + 2 * ph - R) // sh + 1,
                       F=(W + 2 * pw - S) // sw + 1, R=R, S=S, stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw)


def linear(K, N, M, name="fc"):
    return ConvProblem(name=name, kind="linear", C=K, H=1, W=N, M=M, E=1, F=N, R=1, S=1)


def lanes(word, dtype, count):
    """One buffer word -> its ``count`` lane values, lane 0 in the least significant bits."""
    mask = (1 << dtype.bits) - 1
    values = []
    for lane in range(count):
        value = (word >> (lane * dtype.bits)) & mask
        if dtype.signed and value >> (dtype.bits - 1):
            value -= 1 << dtype.bits
        values.append(value)
    return values


def word_of(values, dtype):
    return sum((int(v) & ((1 << dtype.bits) - 1)) << (lane * dtype.bits) for lane, v in enumerate(values))


def random_tensors(schedule, seed):
    spec, p = schedule.spec, schedule.problem
    rng = np.random.default_rng(seed)
    a, w = spec.act_type, spec.weight_type
    act = rng.integers(a.min, a.max + 1, (p.C, p.H, p.W), dtype=np.int64)
    weight = rng.integers(w.min, w.max + 1, (p.M, p.C, p.R, p.S), dtype=np.int64)
    act.flat[0], weight.flat[0] = a.min, w.min   # the extremes on every run
    act.flat[-1], weight.flat[-1] = a.max, w.max
    return act, weight


def golden_conv(problem, act, weight):
    return reference.conv2d(act, weight, stride=(problem.stride_h, problem.stride_w),
                            padding=(problem.pad_h, problem.pad_w), out_size=(problem.E, problem.F))


def run_slots(schedule, act_words, weight_words):
    """A transaction-level accelerator: execute the golden slots on packed buffers, return the output beats."""
    spec = schedule.spec
    rows, cols = spec.rows, spec.cols
    acts = np.array([lanes(word, spec.act_type, rows) for word in act_words], dtype=np.int64)
    weights = np.array([lanes(word, spec.weight_type, cols) for word in weight_words], dtype=np.int64)
    accumulators = np.zeros((schedule.pixels, cols), dtype=np.int64)
    beats = []
    for slot in schedule.slots():
        if not slot.valid:
            continue
        if not slot.padded:
            assert 0 <= slot.act_addr < len(acts), slot
        vector = np.zeros(rows, dtype=np.int64) if slot.padded else acts[slot.act_addr]
        column_sums = vector @ weights[slot.fold * rows:(slot.fold + 1) * rows]
        total = (0 if slot.first_k else accumulators[slot.pixel]) + column_sums
        if slot.last_k:
            beats.append(word_of(total, spec.acc_type))
        else:
            accumulators[slot.pixel] = total
    return beats


LAYERS = [
    # (rows, cols, problem, act_type, weight_type)
    (4, 4, conv(4, 4, 5, 5, 3, 3), "int8", "int8"),
    (4, 4, conv(3, 6, 7, 6, 3, 3, stride=(2, 2), pad=(1, 1)), "int8", "int8"),
    (3, 5, conv(2, 3, 4, 5, 3, 3, pad=(2, 2)), "int8", "int8"),
    (4, 4, conv(5, 3, 3, 7, 2, 3, stride=(1, 2), pad=(0, 1)), "int8", "int8"),
    (4, 4, conv(9, 10, 3, 4, 2, 2), "int8", "int8"),
    (4, 4, conv(8, 5, 3, 3, 1, 1), "uint8", "int8"),
    (4, 4, linear(6, 5, 7), "int8", "int8"),
    (4, 4, conv(4, 8, 3, 3, 3, 3), "int8", "int8"),
    (2, 8, conv(3, 9, 2, 2, 2, 2), "int16", "int4"),
    (1, 1, conv(2, 2, 3, 3, 2, 2, pad=(1, 1)), "int8", "int8"),
    (3, 2, conv(5, 3, 4, 4, 3, 3, stride=(2, 1), pad=(1, 2)), "int4", "uint4"),
]
LAYER_IDS = [f"{r}x{c}-{p.kind}-C{p.C}M{p.M}H{p.H}W{p.W}R{p.R}S{p.S}-s{p.stride_h}{p.stride_w}"
             f"p{p.pad_h}{p.pad_w}-{a}x{w}" for r, c, p, a, w in LAYERS]


def layer_schedule(rows, cols, problem, act_type, weight_type):
    return LayerSchedule(make_spec(rows, cols, act_type=act_type, weight_type=weight_type), problem)


# Host data layout -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, cols, problem, act_type, weight_type", LAYERS, ids=LAYER_IDS)
def test_pack_acts_layout(rows, cols, problem, act_type, weight_type):
    schedule = layer_schedule(rows, cols, problem, act_type, weight_type)
    act, _ = random_tensors(schedule, 1)
    words = schedule.pack_acts(act)
    p = problem
    assert len(words) == schedule.act_words == schedule.c_groups * p.H * p.W
    for cg, h, w in product(range(schedule.c_groups), range(p.H), range(p.W)):
        got = lanes(words[(cg * p.H + h) * p.W + w], schedule.spec.act_type, rows)
        want = [int(act[c, h, w]) if c < p.C else 0 for c in range(cg * rows, (cg + 1) * rows)]
        assert got == want, (cg, h, w)
    assert all(0 <= word < 1 << schedule.spec.act_word_bits for word in words)


@pytest.mark.parametrize("rows, cols, problem, act_type, weight_type", LAYERS, ids=LAYER_IDS)
def test_pack_weights_layout(rows, cols, problem, act_type, weight_type):
    schedule = layer_schedule(rows, cols, problem, act_type, weight_type)
    _, weight = random_tensors(schedule, 2)
    words = schedule.pack_weights(weight)
    p = problem
    assert len(words) == schedule.weight_words
    assert schedule.fold_order() == [(mf, r, s, cg) for mf in range(schedule.m_folds) for r in range(p.R)
                                     for s in range(p.S) for cg in range(schedule.c_groups)]
    for fold, (mf, r, s, cg) in enumerate(schedule.fold_order()):
        for row in range(rows):
            got = lanes(words[fold * rows + row], schedule.spec.weight_type, cols)
            c = cg * rows + row
            want = [int(weight[m, c, r, s]) if m < p.M and c < p.C else 0
                    for m in range(mf * cols, (mf + 1) * cols)]
            assert got == want, (fold, row)


@pytest.mark.parametrize("rows, cols, problem, act_type, weight_type", LAYERS, ids=LAYER_IDS)
def test_outputs_round_trip_and_layout(rows, cols, problem, act_type, weight_type):
    schedule = layer_schedule(rows, cols, problem, act_type, weight_type)
    acc = schedule.spec.acc_type
    rng = np.random.default_rng(3)
    out = rng.integers(acc.min, acc.max + 1, problem.out_canonical_shape, dtype=np.int64)
    out.flat[0], out.flat[-1] = acc.min, acc.max
    beats = schedule.pack_outputs(out)
    assert len(beats) == schedule.out_beats == schedule.m_folds * problem.E * problem.F
    for beat, word in enumerate(beats):
        mf, pixel = divmod(beat, schedule.pixels)
        e, f = divmod(pixel, problem.F)
        want = [int(out[m, e, f]) if m < problem.M else 0 for m in range(mf * cols, (mf + 1) * cols)]
        assert lanes(word, acc, cols) == want
    back = schedule.unpack_outputs(beats)
    assert back.shape == problem.out_canonical_shape and np.array_equal(back, out)


def test_unpack_outputs_ignores_padding_lanes_and_checks_the_count():
    schedule = LayerSchedule(make_spec(4, 4), conv(2, 5, 2, 2, 1, 1))   # m-fold 1 has 3 padding lanes
    out = np.arange(-10, 10).reshape(5, 2, 2)
    beats = schedule.pack_outputs(out)
    junk = [beat | (0x7 << (32 * 3)) if beat_index >= schedule.pixels else beat
            for beat_index, beat in enumerate(beats)]
    assert np.array_equal(schedule.unpack_outputs(junk), out)
    with pytest.raises(ValueError, match=r"layer: expected 8 output beats, got 7"):
        schedule.unpack_outputs(beats[:-1])


def test_describe_output_names_the_element():
    schedule = LayerSchedule(make_spec(4, 4), conv(2, 5, 3, 4, 1, 2, name="conv1"))
    assert (schedule.problem.E, schedule.problem.F) == (3, 3)
    assert schedule.describe_output(0, 0) == "O[m=0, e=0, f=0]"
    assert schedule.describe_output(5, 2) == "O[m=2, e=1, f=2]"
    assert schedule.describe_output(9 + 4, 0) == "O[m=4, e=1, f=1]"
    assert schedule.describe_output(9, 3) == "padding lane m=7"


# The slot sequence, composed with the layouts ------------------------------------------------------------

@pytest.mark.parametrize("rows, cols, problem, act_type, weight_type", LAYERS, ids=LAYER_IDS)
def test_golden_slots_on_packed_buffers_compute_the_layer(rows, cols, problem, act_type, weight_type):
    schedule = layer_schedule(rows, cols, problem, act_type, weight_type)
    act, weight = random_tensors(schedule, 4)
    beats = run_slots(schedule, schedule.pack_acts(act), schedule.pack_weights(weight))
    want = golden_conv(problem, act, weight)
    assert beats == schedule.pack_outputs(want)
    assert np.array_equal(schedule.unpack_outputs(beats), want)


@pytest.mark.parametrize("rows, cols, problem, act_type, weight_type", LAYERS, ids=LAYER_IDS)
def test_padded_slots_are_exactly_the_out_of_bounds_taps(rows, cols, problem, act_type, weight_type):
    schedule = layer_schedule(rows, cols, problem, act_type, weight_type)
    p = problem
    for slot in schedule.slots():
        if not slot.valid:
            continue
        mf, r, s, cg = schedule.fold_order()[slot.fold]
        e, f = divmod(slot.pixel, p.F)
        h, w = e * p.stride_h + r - p.pad_h, f * p.stride_w + s - p.pad_w
        assert slot.padded == (not (0 <= h < p.H and 0 <= w < p.W))
        if not slot.padded:
            assert slot.act_addr == (cg * p.H + h) * p.W + w


@pytest.mark.parametrize("rows, cols, problem, act_type, weight_type", LAYERS, ids=LAYER_IDS)
def test_config_word_round_trips(rows, cols, problem, act_type, weight_type):
    schedule = layer_schedule(rows, cols, problem, act_type, weight_type)
    values = schedule.config_values()
    assert set(values) == set(CONFIG_FIELDS)
    assert unpack_config(schedule.spec, schedule.config_word()) == values
    p = problem
    assert (values["plane"], values["row_step"], values["pad_row_offset"]) == (
        p.H * p.W, p.stride_h * p.W, p.pad_h * p.W)
    assert (values["fold_period"], values["pixels"], values["act_words"]) == (
        schedule.fold_period, p.E * p.F, schedule.act_words)
    # A whole layer is one command: load bank 0, release it, start and end the reduction, emit every pixel.
    assert {name: values[name] for name in ("act_bank", "load_acts", "release", "acc_init", "acc_emit",
                                            "acc_stride", "param_words", "param_bank")} == dict(
        act_bank=0, load_acts=1, release=1, acc_init=1, acc_emit=1, acc_stride=0, param_words=0, param_bank=0)
    assert values["emit_words"] == schedule.m_folds * p.E * p.F == schedule.out_beats
    # No post-ops: the chain passes the accumulators through at their own width.
    assert {name: values[name] for name in ("pp_bias", "pp_requant", "pp_relu", "pp_pool", "pp_out_signed")} == \
        dict(pp_bias=0, pp_requant=0, pp_relu=0, pp_pool=0, pp_out_signed=1)
    assert values["pp_out_bits"] == schedule.spec.acc_type.bits


@pytest.mark.parametrize("flags", [
    dict(act_bank=1, load_acts=False, release=False),
    dict(acc_init=True, acc_emit=False, keep_partials=True),
    dict(acc_init=False, acc_emit=False, keep_partials=True),
    dict(acc_init=False, acc_emit=True, keep_partials=True, postops=PostOps(bias=True, requant=True), param_bank=1),
    dict(postops=PostOps(bias=True, requant=True, relu=True, pool="max", out_type="uint4"), param_bank=1),
], ids=["reused_bank_1", "first_c_tile", "middle_c_tile", "last_c_tile_requant", "pooled_uint4"])
def test_tile_flags_and_postops_in_the_config_word(flags):
    spec = make_spec(4, 4)
    problem = conv(9, 10, 4, 5, 2, 2)                # 3 channel groups, 3 m-folds, 3 x 4 pixels
    schedule = LayerSchedule(spec, problem, **flags)
    values = unpack_config(spec, schedule.config_word())
    assert values == schedule.config_values()
    flag = lambda name, default: int(flags.get(name, default))
    assert (values["act_bank"], values["load_acts"], values["release"], values["acc_init"], values["acc_emit"]) == (
        flag("act_bank", 0), flag("load_acts", True), flag("release", True), flag("acc_init", True),
        flag("acc_emit", True))
    kept = flags.get("keep_partials", False)
    assert values["acc_stride"] == (schedule.pixels if kept else 0) == (12 if kept else 0)
    assert schedule.acc_words == 12 * (3 if kept else 1)
    emits, postops = flags.get("acc_emit", True), flags.get("postops", PostOps())
    assert values["emit_words"] == (3 * 12 if emits else 0)
    assert schedule.out_beats == (3 * postops.out_size(3, 4)[0] * postops.out_size(3, 4)[1] if emits else 0)
    # a parameter beat per m-fold and lane group
    assert values["param_words"] == (3 * spec.postop_groups if emits and postops.needs_params else 0) == schedule.param_words
    assert values["param_bank"] == flags.get("param_bank", 0)
    out = postops.output_type(spec.acc_type)
    assert (values["pp_bias"], values["pp_requant"], values["pp_relu"], values["pp_pool"]) == (
        postops.bias, postops.requant, postops.relu, {"none": 0, "max": 1, "avg": 2}[postops.pool])
    assert (values["pp_out_bits"], values["pp_out_signed"]) == (out.bits, out.signed)
    # The golden slots follow the flags: init/emit gate first_k/last_k, kept partials stride the m-folds.
    slots = [slot for slot in schedule.slots() if slot.valid]
    assert any(slot.first_k for slot in slots) == flags.get("acc_init", True)
    assert any(slot.last_k for slot in slots) == emits
    assert sorted({slot.pixel for slot in slots}) == list(range(schedule.acc_words))


def test_a_command_checks_its_flags_and_postops():
    spec = make_spec(4, 4)
    with pytest.raises(ValueError, match=r"act_bank must be 0 or 1, not 2"):
        LayerSchedule(spec, conv(4, 4, 3, 3, 1, 1), act_bank=2)
    with pytest.raises(TypeError, match=r"layer: postops must be a hwgen.postops.PostOps"):
        LayerSchedule(spec, conv(4, 4, 3, 3, 1, 1), postops="relu")
    with pytest.raises(MappingError, match=r"layer: 2x2 pooling needs an output of at least 2x2, not 1x3"):
        LayerSchedule(spec, conv(4, 4, 1, 3, 1, 1), postops=PostOps(pool="max"))
    # A command that does not emit runs no post-ops, so they are not checked against its size.
    LayerSchedule(spec, conv(4, 4, 1, 3, 1, 1), postops=PostOps(pool="max"), acc_emit=False)
    small = replace(spec, max_out_channels=8, max_pool_width=4)
    with pytest.raises(MappingError, match=r"3 m-folds of parameters do not fit the post-op parameter memory of 2"):
        LayerSchedule(small, conv(4, 10, 3, 3, 1, 1), postops=PostOps(bias=True))
    with pytest.raises(MappingError, match=r"pooling an output 5 pixels wide needs a line buffer of 2 entries"):
        LayerSchedule(small, conv(4, 4, 3, 5, 1, 1), postops=PostOps(pool="avg"))
    LayerSchedule(small, conv(4, 10, 3, 5, 1, 1))    # no parameters, no pooling: nothing to fit


# The fold period -------------------------------------------------------------------------------------------

def test_fold_period_meets_every_constraint():
    for pixels, rows, cols in product(range(1, 41), range(1, 17), range(1, 17)):
        period = fold_period(pixels=pixels, rows=rows, cols=cols)
        assert period >= pixels, "every pixel of a fold is issued"
        assert period >= rows, "one weight row per cycle: a fold's load fits in one period"
        assert 2 * period >= pixels + cols - 1, "the spare bank's last reader has left the array"
        assert period >= 2, "the accumulator's read-modify-write"
    with pytest.raises(TypeError):
        fold_period(16, 4, 4)


# Rejections ------------------------------------------------------------------------------------------------

def needed_bytes(message):
    return int(re.search(r"set \w+_buffer_bytes >= (\d+)", message).group(1))


@pytest.mark.parametrize("buffer, knob, flags, problem, why", [
    ("activation", "act_buffer_bytes", {}, conv(8, 4, 6, 3, 3, 3),
     "C=8 channels in 2 groups of 4 x H*W = 6*3, in one of its two banks"),
    ("accumulator", "acc_buffer_bytes", {}, conv(4, 4, 5, 5, 1, 1), "E*F = 5*5 output pixels"),
    ("accumulator", "acc_buffer_bytes", dict(keep_partials=True, acc_emit=False), conv(4, 8, 3, 4, 1, 1),
     "E*F = 3*4 output pixels x 2 m-folds"),
])
def test_buffer_overflow_names_the_buffer_and_the_bytes_needed(buffer, knob, flags, problem, why):
    # 64 activation words are two banks of 32; 16 accumulator words.
    spec = make_spec(4, 4, act_words=64, weight_words=16, acc_words=16)
    with pytest.raises(BufferOverflowError) as info:
        LayerSchedule(spec, problem, **flags)
    message = str(info.value)
    assert isinstance(info.value, MappingError)
    assert message.startswith(f"{problem.name}: the {buffer} buffer needs ")
    assert why in message
    need = needed_bytes(message)
    assert f"set {knob} >= {need}" in message
    # The advice is enough, and no more: that many bytes run the command and hold exactly its words.
    fixed = replace(spec, **{knob: need})
    schedule = LayerSchedule(fixed, problem, **flags)
    words = {"activation": schedule.act_words, "accumulator": schedule.acc_words}[buffer]
    assert {"activation": fixed.act_bank_depth, "accumulator": fixed.acc_depth}[buffer] == words


def test_weights_are_streamed_so_the_weight_fifo_does_not_limit_a_layer():
    """v1 stored a layer's weights; v2 streams them through a FIFO: 144 weight words pass a 16-word FIFO."""
    spec = make_spec(4, 4, act_words=64, weight_words=16, acc_words=16)
    schedule = LayerSchedule(spec, conv(8, 8, 3, 3, 3, 3))
    assert schedule.weight_words == 2 * 18 * 4 > spec.weight_depth == 16
    assert "weight_words" not in schedule.config_values()


def test_buffer_overflow_advice_works_for_words_that_are_not_whole_bytes():
    # 3 rows of int4: a 12-bit activation word, two words per 3 bytes. 5 words per bank: 10 words, 15 bytes.
    spec = replace(make_spec(3, 2, act_type="int4", weight_type="int4"), act_buffer_bytes=6)   # 2 x 2 words
    problem = linear(3, 5, 2, name="odd")
    with pytest.raises(BufferOverflowError, match=r"odd: the activation buffer needs 5 words .* holds 2;") as info:
        LayerSchedule(spec, problem)
    need = needed_bytes(str(info.value))
    assert need == 15
    assert replace(spec, act_buffer_bytes=need).act_bank_depth == LayerSchedule(
        replace(spec, act_buffer_bytes=need), problem).act_words == 5
    with pytest.raises(BufferOverflowError):
        LayerSchedule(replace(spec, act_buffer_bytes=need - 3), problem)
    with pytest.raises(MappingError, match=r"act_buffer_bytes=7 is not a whole number of 12-bit words"):
        replace(spec, act_buffer_bytes=7)


def reduction_layer(C, R, S):
    return conv(C, 2, R, S, R, S, name="deep")   # one output pixel, a C*R*S reduction


@pytest.mark.parametrize("act_type, weight_type, C, R, S", [
    ("int8", "int8", 8, 2, 2),     # 32 * 16384 = 2**19: one past int20's max
    ("int8", "int8", 7, 3, 3),
    ("uint8", "int8", 5, 1, 1),
    ("uint8", "uint8", 3, 3, 1),
    ("int4", "int4", 100, 1, 1),
    ("int16", "int8", 2, 3, 3),
])
def test_accumulator_overflow_names_the_reduction_and_the_width_needed(act_type, weight_type, C, R, S):
    probe = make_spec(4, 4, act_type=act_type, weight_type=weight_type)
    worst = C * R * S * probe.max_abs_product()
    need = worst.bit_length() + 1
    # The narrowest accumulator the spec accepts that is too narrow for this reduction.
    narrow = IntType(max(need - 1, probe.product_bits))
    assert worst > narrow.max
    spec = make_spec(4, 4, act_type=act_type, weight_type=weight_type, acc_type=narrow)
    problem = reduction_layer(C, R, S)
    with pytest.raises(AccumulatorOverflowError) as info:
        LayerSchedule(spec, problem)
    message = str(info.value)
    assert isinstance(info.value, MappingError)
    assert message.startswith("deep: the reduction over C*R*S = ")
    assert f"C*R*S = {C}*{R}*{S} = {C * R * S} products" in message
    assert f"overflows acc_type {narrow}" in message
    advised = int(re.search(r"accumulator of at least int(\d+)", message).group(1))
    assert advised == need
    # The advice is the narrowest width that works.
    LayerSchedule(make_spec(4, 4, act_type=act_type, weight_type=weight_type, acc_type=IntType(advised)), problem)
    if advised - 1 >= probe.product_bits:
        with pytest.raises(AccumulatorOverflowError):
            LayerSchedule(make_spec(4, 4, act_type=act_type, weight_type=weight_type,
                                    acc_type=IntType(advised - 1)), problem)


def test_accumulator_bound_is_exact_at_the_edge():
    # 31 products of 16384 = 507904 fit int20 (max 524287); 32 reach 524288 and do not.
    spec = make_spec(4, 4, acc_type="int20")
    LayerSchedule(spec, conv(31, 2, 1, 1, 1, 1))
    with pytest.raises(AccumulatorOverflowError, match=r"can reach 524288, .* at least int21"):
        LayerSchedule(spec, conv(32, 2, 1, 1, 1, 1))


def test_a_value_beyond_its_config_field_is_rejected():
    spec = make_spec(2, 2, act_words=64, weight_words=64, acc_words=64)
    problem = ConvProblem(name="far", kind="conv2d", C=1, H=2, W=4, M=1, E=1, F=4, R=1, S=1, stride_h=100)
    with pytest.raises(MappingError, match=r"far: row_step=400 does not fit its \d+-bit field of the configuration word"):
        LayerSchedule(spec, problem)


def test_postop_fields_are_not_limited_by_the_width_of_the_counts():
    """Counts are sized from the buffers; flags and post-op fields have widths of their own. With tiny buffers
    the counts are 5 bits wide, and an int32 pass-through chain still needs pp_out_bits=32."""
    spec = make_spec(2, 2, act_words=8, weight_words=8, acc_words=8)
    assert field_bits(spec) == 5
    schedule = LayerSchedule(spec, conv(2, 2, 2, 2, 1, 1))
    assert schedule.config_values()["pp_out_bits"] == 32
    assert unpack_config(spec, schedule.config_word()) == schedule.config_values()


def test_fold_counts():
    schedule = LayerSchedule(make_spec(4, 3), conv(9, 7, 6, 5, 3, 2, stride=(2, 1), pad=(1, 0)))
    p = schedule.problem
    assert (schedule.c_groups, schedule.m_folds) == (ceil(9 / 4), ceil(7 / 3)) == (3, 3)
    assert schedule.k_folds == 3 * 2 * 3 and schedule.folds == 3 * 18
    assert schedule.pixels == p.E * p.F == 3 * 4
    assert schedule.weight_words == schedule.folds * 4
    assert schedule.act_words == 3 * 6 * 5
    assert schedule.out_beats == 3 * 12
    assert schedule.macs == 7 * 9 * 12 * 3 * 2


# Early start: the compute engine may begin before its activations are all loaded --------------------------------

def test_start_words_never_lets_a_read_overtake_the_load():
    """With word a written 1 + a cycles after the load starts and the command started after `start_words`,
    every read of the golden slot sequence lands at least `SlotQueue.CHECK_LAG` cycles after its write: the
    property the cycle model relies on (the hardware interlock would otherwise stall and the model would be
    wrong)."""
    from hwgen.hw.slot_queue import SlotQueue
    from hwgen.perf import LOAD_HANDOFF, QUEUED_SLOT, TAKE_TO_FIRST_SLOT
    from hwgen.problem import ConvProblem
    spec = make_spec(4, 4, act_words=512)
    cases = [ConvProblem("s1", "conv2d", C=6, H=6, W=7, M=5, E=6, F=7, R=3, S=3, pad_h=1, pad_w=1),
             ConvProblem("s2", "conv2d", C=9, H=9, W=8, M=3, E=4, F=4, R=3, S=2, stride_h=2, stride_w=2),
             ConvProblem("pw", "conv2d", C=12, H=5, W=5, M=4, E=5, F=5, R=1, S=1)]
    for problem in cases:
        schedule = LayerSchedule(spec, problem)
        start = schedule.start_words
        assert 0 <= start <= schedule.act_words
        # handoff at start + 2, the first slot 3 cycles later and more through the slot queue (perf.py)
        first_slot = start + LOAD_HANDOFF + TAKE_TO_FIRST_SLOT + QUEUED_SLOT
        lag = SlotQueue.CHECK_LAG - 1
        for tau, slot in enumerate(schedule.slots()):
            if slot.valid and not slot.padded:
                assert 1 + slot.act_addr + lag < first_slot + tau, (problem.name, tau, slot)
        # ...and it is the least such count: one word less and some read would overtake the load.
        if start:
            tight = [1 + s.act_addr + lag >= first_slot - 1 + tau for tau, s in enumerate(schedule.slots())
                     if s.valid and not s.padded]
            assert any(tight)
