"""The error contract (`hwgen.errors`): every rejection a user can cause is an `HwgenError` subclass whose message
names the culprit and the fix. One regression test per finding of issue 14, plus the size limits and bounded
planning."""

import inspect
import re
import time

import numpy as np
import pytest

import hwgen
from hwgen import AcceleratorSpec, Design, Layer, Mapping, PostOps, QuantParams, conv2d, linear
from hwgen.errors import (AccumulatorOverflowError, DataError, DataOverflowError, DataTypeError, DesignError,
                          DesignTypeError, HwgenError, MappingError, PlanTooLargeError)
from hwgen.postops import apply, quantize_multiplier
from hwgen.problem import ConvProblem
from hwgen.spec import MAX_BUFFER_WORDS, MAX_NAME_LENGTH, MAX_OUT_CHANNELS
from hwgen.tiling import MAX_COMMANDS, plan_layer

SPEC = AcceleratorSpec(rows=4, cols=4, name="spec4")
FC = linear(name="fc", in_features=16, out_features=8)


def cpu_seconds(action):
    started = time.process_time()
    try:
        return action(), time.process_time() - started
    except HwgenError as error:
        return error, time.process_time() - started


# Crashes ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataflow", ["weight_stationary", "output_stationary", "matrix_vector"])
def test_pooling_a_linear_layer_is_a_named_error(dataflow):
    spec = AcceleratorSpec(rows=4, cols=4, dataflow=dataflow, name="pool_fc")
    with pytest.raises(MappingError, match=r"fc: 2x2 pooling needs an output of at least 2x2, not 1x1; drop the "
                                           r"pooling or enlarge the layer"):
        Design(name="d", spec=spec, layers=(Layer(FC, postops=PostOps(requant=True, pool="max")),))


@pytest.mark.parametrize("name", [None, 5, 4.0, b"accel"])
def test_a_spec_name_that_is_not_a_string(name):
    with pytest.raises(DesignTypeError, match=r"accelerator name must be a string \(it names the Verilog module "
                                              r"and files\), not "):
        AcceleratorSpec(rows=2, cols=2, name=name)


@pytest.mark.parametrize("name, why", [
    ("", "is not a plain identifier"), ("a b", "is not a plain identifier"), ("9lives", "is not a plain identifier"),
    ("café", "is not a plain identifier"), ("x-y", "is not a plain identifier"),
    ("module", "is a Verilog keyword"), ("wire", "is a Verilog keyword"), ("logic", "is a Verilog keyword"),
    ("a" * (MAX_NAME_LENGTH + 1), f"characters long; use at most {MAX_NAME_LENGTH}")])
def test_spec_names_that_cannot_name_a_verilog_module(name, why):
    with pytest.raises(MappingError, match=re.escape(why)):
        AcceleratorSpec(rows=2, cols=2, name=name)
    AcceleratorSpec(rows=2, cols=2, name="a" * MAX_NAME_LENGTH)     # the longest name that is accepted


# Plain TypeError / ValueError before, now HwgenError subclasses (and still the built-in class) -------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(relu="no"), DesignTypeError, "PostOps.relu must be a bool, not 'no'"),
    (dict(bias=1), DesignTypeError, "PostOps.bias must be a bool, not 1"),
    (dict(pool="MAX"), DesignError, "PostOps.pool must be one of ('none', 'max', 'avg'), not 'MAX'"),
    (dict(out_type="int8"), DesignError, "PostOps.out_type=int8 needs requant=True"),
    (dict(requant=True, zero_point=1.5), DesignTypeError, "PostOps.zero_point must be an integer, not 1.5"),
    (dict(requant=True, zero_point=300), DesignError, "PostOps.zero_point=300 is outside out_type int8"),
    (dict(requant=True, out_type="float64"), hwgen.UnsupportedTypeError, "floating-point type 'float64'"),
])
def test_postops_checks_are_hwgen_errors(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)) as info:
        PostOps(**kwargs)
    assert isinstance(info.value, HwgenError)
    assert isinstance(info.value, TypeError if error is DesignTypeError else (ValueError, TypeError))


def test_an_out_type_wider_than_the_lanes_is_rejected_when_planned():
    with pytest.raises(DesignError, match=r"out_type int32 does not fit the int16 output lanes"):
        Design(name="d", spec=AcceleratorSpec(rows=2, cols=2, act_type="int4", weight_type="int4", acc_type="int16"),
               layers=(Layer(FC, postops=PostOps(requant=True, out_type="int32")),))


@pytest.mark.parametrize("make, message", [
    (lambda: Layer("fc"), "Layer.nest must be a LoopNest (from @loop_nest, conv2d or linear), not 'fc'"),
    (lambda: Layer(FC, mapping="rows=c"), "fc: mapping must be a hwgen.Mapping, not 'rows=c'"),
    (lambda: Layer(FC, postops={"relu": True}), "fc: postops must be a hwgen.PostOps, not {'relu': True}"),
    (lambda: Design(name="d", spec={"rows": 4}, layers=(FC,)), "design 'd': spec must be an AcceleratorSpec"),
    (lambda: Design(name="d", spec=SPEC, layers=(FC, 3)), "design 'd': a layer is a hwgen.Layer, a LoopNest or a "
                                                          "(LoopNest, Mapping[, PostOps]) tuple, not 3"),
    (lambda: Design(name="d", spec=SPEC, layers=FC), "design 'd': layers must be a tuple of layers, not LoopNest "),
    (lambda: Design(name="d", spec=SPEC, layers=Layer(FC)), "layers must be a tuple of layers, not Layer"),
    (lambda: Design(name="d", spec=SPEC, layers="fc"), "layers must be a tuple of layers, not str 'fc'"),
    (lambda: Design(name=None, spec=SPEC, layers=(FC,)), "design name must be a string"),
])
def test_layer_and_design_type_checks_are_hwgen_errors(make, message):
    with pytest.raises(DesignTypeError, match=re.escape(message)):
        make()


def test_a_single_layer_instead_of_a_tuple_names_the_fix():
    with pytest.raises(DesignTypeError, match=re.escape("for one layer write layers=(fc,) or [fc]")):
        Design(name="d", spec=SPEC, layers=FC)
    # A list is a sequence of layers too.
    assert [p.problem.name for p in Design(name="d", spec=SPEC, layers=[FC]).plans()] == ["fc"]


@pytest.mark.parametrize("name, message", [
    ("", "design name '' is not a plain identifier"), ("my design", "design name 'my design' is not a plain"),
    ("lenet-5", "design name 'lenet-5' is not a plain identifier")])
def test_design_names_must_be_identifiers(name, message):
    with pytest.raises(DesignError, match=re.escape(message)):
        Design(name=name, spec=SPEC, layers=(FC,))


def test_design_level_mistakes_name_the_fix():
    with pytest.raises(DesignError, match=r"design 'd' has no layers; give at least one loop nest"):
        Design(name="d", spec=SPEC, layers=())
    with pytest.raises(DesignError, match=re.escape("but ['fc'] appear more than once (layers: ['fc', 'fc']); "
                                                    "name each layer apart")):
        Design(name="d", spec=SPEC, layers=(FC, FC))
    design = Design(name="d", spec=SPEC, layers=(FC,))
    with pytest.raises(DesignError, match=r"design 'd' has no layer 'fc9'; its layers are fc"):
        design.plan("fc9")


# The accumulator check speaks of the layer the user wrote ---------------------------------------------------------

def test_accumulator_overflow_names_the_layers_reduction_not_a_tiles():
    spec = AcceleratorSpec(rows=2, cols=4, name="small_spec")
    with pytest.raises(AccumulatorOverflowError) as info:
        Design(name="d", spec=spec, layers=(linear(name="big_fc", in_features=1_000_000, out_features=16, batch=4),))
    message = str(info.value)
    assert message.startswith("big_fc: the reduction over K = in_features = 1000000 products of int8 x int8 "
                              "(|product| <= 16384) can reach 16384000000, which overflows acc_type int32")
    assert message.endswith("use an accumulator of at least int35 or reduce the reduction size")
    conv = conv2d(name="deep", in_channels=20_000, out_channels=4, height=3, width=3, kernel=3, padding=1)
    with pytest.raises(AccumulatorOverflowError, match=r"deep: the reduction over C\*R\*S = 20000\*3\*3 = 180000 "):
        Design(name="d", spec=spec, layers=(conv,))


def test_a_split_reduction_is_checked_whole():
    """Tiles of the input channels each fit the accumulator type, their sum does not: the layer is rejected
    (before, each command was checked alone and the layer accepted)."""
    spec = AcceleratorSpec(rows=2, cols=2, acc_type="int20", act_buffer_bytes=16, acc_buffer_bytes=40, name="narrow")
    problem = ConvProblem("fc", "linear", C=40, H=1, W=1, M=2, E=1, F=1, R=1, S=1)   # 40 * 16384 > 2**19
    with pytest.raises(AccumulatorOverflowError, match=r"fc: the reduction over K = in_features = 40 products"):
        plan_layer(spec, problem)


# Bounded planning and sizes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_features, acc_type, expect", [
    (10 ** 7, "int32", AccumulatorOverflowError),
    (10 ** 7, "int64", PlanTooLargeError),
    (10 ** 5, "int64", 49),                   # 49 commands of 1024 channel groups
    (10 ** 5, "int32", 49),
])
def test_huge_linear_layers_plan_in_well_under_a_second(in_features, acc_type, expect):
    spec = AcceleratorSpec(rows=2, cols=4, acc_type=acc_type, acc_buffer_bytes=8192 * (2 if acc_type == "int64" else 1),
                           name="two_by_four")
    nest = linear(name="huge", in_features=in_features, out_features=16, batch=4)
    result, seconds = cpu_seconds(lambda: Design(name="d", spec=spec, layers=(nest,)))
    assert seconds < 0.5
    if isinstance(expect, int):
        assert len(result.plans()[0].tiles) == expect
    else:
        assert isinstance(result, expect), result


def test_a_layer_of_too_many_commands_is_rejected_naming_the_split_and_a_sufficient_buffer():
    spec = AcceleratorSpec(rows=2, cols=4, acc_type="int64", acc_buffer_bytes=16384, name="two_by_four")
    problem = ConvProblem("huge", "linear", C=10 ** 7, H=1, W=4, M=16, E=1, F=4, R=1, S=1)
    error, seconds = cpu_seconds(lambda: plan_layer(spec, problem))
    assert seconds < 0.5 and isinstance(error, PlanTooLargeError)
    message = str(error)
    assert message.startswith("huge: the buffers of 'two_by_four' cut this layer into at least 4883 commands (4883 "
                              f"input-channel tiles x 1 row bands x 1 output-channel tiles), more than the "
                              f"{MAX_COMMANDS} hwgen plans for one layer; enlarge act_buffer_bytes to >= ")
    need = int(re.search(r"act_buffer_bytes to >= (\d+)", message).group(1))
    plan = plan_layer(AcceleratorSpec(rows=2, cols=4, acc_type="int64", acc_buffer_bytes=16384,
                                      act_buffer_bytes=need, name="two_by_four"), problem)
    assert len(plan.tiles) <= MAX_COMMANDS      # the fix is sufficient on its own


@pytest.mark.parametrize("dataflow", ["weight_stationary", "output_stationary"])
def test_a_very_tall_layer_is_rejected_up_front(dataflow):
    spec = AcceleratorSpec(rows=8, cols=8, dataflow=dataflow, name="tall")
    problem = ConvProblem("tall", "conv2d", C=3, H=10 ** 6, W=4, M=8, E=10 ** 6, F=4, R=3, S=3, pad_h=1, pad_w=1)
    error, seconds = cpu_seconds(lambda: plan_layer(spec, problem))
    assert seconds < 0.5 and isinstance(error, PlanTooLargeError), error
    assert f"more than the {MAX_COMMANDS} hwgen plans for one layer" in str(error)


def test_huge_channel_counts_plan_or_are_rejected_quickly():
    spec = AcceleratorSpec(rows=8, cols=8, acc_type="int64", acc_buffer_bytes=16384, name="wide")
    nest = conv2d(name="huge_c", in_channels=10 ** 6, out_channels=10 ** 6, height=8, width=8, kernel=3, padding=1)
    error, seconds = cpu_seconds(lambda: Design(name="d", spec=spec, layers=(nest,)))
    assert seconds < 0.5 and isinstance(error, PlanTooLargeError)
    assert "more than the 524288 of the largest buffer hwgen builds" in str(error)


def test_a_vgg_layer_of_thousands_of_commands_plans_in_well_under_a_second():
    """It took 76 s when every candidate plan was built."""
    spec = AcceleratorSpec(rows=8, cols=8, name="vgg8")
    nest = conv2d(name="vgg", in_channels=512, out_channels=512, height=28, width=28, kernel=3, padding=1)
    design, seconds = cpu_seconds(
        lambda: Design(name="d", spec=spec, layers=(Layer(nest, postops=PostOps(bias=True, requant=True)),)))
    assert seconds < 1.0
    (plan,) = design.plans()
    assert (len(plan.tiles), plan.order, plan.bytes_moved["total"]) == (2464, "e_outer", 36_470_784)


@pytest.mark.parametrize("field, words_per_byte", [("act_buffer_bytes", 1 / 4), ("weight_buffer_bytes", 1 / 4),
                                                   ("acc_buffer_bytes", 1 / 16)])
def test_buffers_beyond_the_limit_are_rejected_naming_it(field, words_per_byte):
    limit = int(MAX_BUFFER_WORDS / words_per_byte)
    with pytest.raises(MappingError) as info:
        AcceleratorSpec(rows=4, cols=4, **{field: 10 ** 9})
    assert str(info.value).startswith(f"{field}=1000000000 is {int(10 ** 9 * words_per_byte)} words of ")
    assert str(info.value).endswith(f"hwgen builds buffers of at most {MAX_BUFFER_WORDS} words (no FPGA target holds "
                                    f"more, and generating the Verilog of deeper memories takes minutes): use "
                                    f"{field} <= {limit}")
    AcceleratorSpec(rows=4, cols=4, **{field: limit})


def test_post_op_memories_have_limits_too():
    with pytest.raises(MappingError, match=f"max_out_channels=1000000 is more than the {MAX_OUT_CHANNELS}"):
        AcceleratorSpec(rows=4, cols=4, max_out_channels=10 ** 6)
    with pytest.raises(MappingError, match=r"max_pool_width must be an integer from 2 to 65536, not 1000000"):
        AcceleratorSpec(rows=4, cols=4, max_pool_width=10 ** 6)
    with pytest.raises(MappingError, match=r"max_pool_width must be an integer from 2 to 65536, not True"):
        AcceleratorSpec(rows=4, cols=4, max_pool_width=True)


# Host data ----------------------------------------------------------------------------------------------------

def test_host_data_errors_are_hwgen_errors():
    with pytest.raises(DataTypeError, match="QuantParams.bias must hold integers, not float64"):
        QuantParams(bias=np.array([1.5]))
    with pytest.raises(DataError, match=r"QuantParams.shift holds 70, outside 0..63"):
        QuantParams(multiplier=[1], shift=[70])
    with pytest.raises(DataError, match="a requantization scale must be a finite number >= 0, not nan"):
        quantize_multiplier(float("nan"))
    with pytest.raises(DataOverflowError, match="an accumulator is outside int16"):
        apply(np.full((1, 1, 1), 40000), None, PostOps(), "int16")
    problem = ConvProblem("c", "conv2d", C=2, H=3, W=3, M=1, E=1, F=1, R=3, S=3)
    with pytest.raises(DataError, match=r"c.I: expected a tensor of canonical shape \(2, 3, 3\)"):
        problem.canonical_act(np.zeros((2, 3, 4)))


# Type hints ---------------------------------------------------------------------------------------------------

def test_the_public_functions_have_type_hints():
    import hwgen.design
    import hwgen.reference
    import hwgen.verilog
    functions = [getattr(hwgen, name) for name in hwgen.__all__ if inspect.isfunction(getattr(hwgen, name))]
    functions += [plan_layer, hwgen.verilog.generate, hwgen.verilog.write_design, hwgen.reference.conv2d,
                  hwgen.reference.linear, hwgen.reference.evaluate_loop_nest, hwgen.design.builtin_designs]
    for function in functions:
        signature = inspect.signature(function)
        missing = [name for name, parameter in signature.parameters.items()
                   if parameter.annotation is inspect.Parameter.empty]
        assert not missing and signature.return_annotation is not inspect.Signature.empty, (function, missing)
