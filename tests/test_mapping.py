"""The mapper: recognition of conv and matrix-product nests in any loop and axis order, and every rejection."""

import numpy as np
import pytest

from hwgen.dsl import conv2d, linear, loop_nest, tensor
from hwgen.errors import LoopNestError, MappingError
from hwgen.ir import Access, Affine, Loop, LoopNest
from hwgen.mapping import Mapping, default_mapping, recognize
from hwgen.problem import ConvProblem
from tests.nests import hwc_conv, larger_input_conv

WS = Mapping(rows="c", cols="m", resident="W")




CONV_CASES = [
    # C, M, H, W, R, S, sh, sw, ph, pw
    (3, 4, 8, 8, 3, 3, 1, 1, 0, 0),
    (3, 4, 8, 8, 3, 3, 1, 1, 1, 1),
    (2, 5, 9, 7, 3, 3, 2, 2, 1, 1),
    (2, 3, 10, 6, 3, 1, 2, 1, 0, 0),
]


@pytest.mark.parametrize("C, M, H, W, R, S, sh, sw, ph, pw", CONV_CASES)
def test_conv2d_recognizes_to_canonical_problem(C, M, H, W, R, S, sh, sw, ph, pw):
    nest = conv2d(name="conv", in_channels=C, out_channels=M, height=H, width=W, kernel=(R, S),
                  stride=(sh, sw), padding=(ph, pw))
    assert default_mapping(nest) == WS
    problem = recognize(nest, WS)
    E, F = (H + 2 * ph - R) // sh + 1, (W + 2 * pw - S) // sw + 1
    assert problem == ConvProblem(name="conv", kind="conv2d", C=C, H=H, W=W, M=M, E=E, F=F, R=R, S=S,
                                  stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw)


@pytest.mark.parametrize("C, M, H, W, R, S, sh, sw, ph, pw", CONV_CASES)
def test_scrambled_hwc_conv_recognizes_to_same_sizes(C, M, H, W, R, S, sh, sw, ph, pw):
    library = recognize(conv2d(name="conv", in_channels=C, out_channels=M, height=H, width=W, kernel=(R, S),
                               stride=(sh, sw), padding=(ph, pw)), WS)
    nest = hwc_conv(C, M, H, W, R, S, sh, sw, ph, pw)
    assert default_mapping(nest) == WS
    problem = recognize(nest, WS)
    sizes = ("kind", "C", "H", "W", "M", "E", "F", "R", "S", "stride_h", "stride_w", "pad_h", "pad_w")
    assert {k: getattr(problem, k) for k in sizes} == {k: getattr(library, k) for k in sizes}
    assert problem.act_axes == (2, 0, 1)
    assert problem.weight_axes == (3, 2, 0, 1)
    assert problem.out_axes == (2, 0, 1)
    assert problem.act_shape == (H, W, C) and problem.weight_shape == (R, S, C, M)
    # The recorded axes let the problem convert user arrays both ways.
    rng = np.random.default_rng(0)
    act = rng.integers(-8, 8, (H, W, C))
    assert np.array_equal(problem.canonical_act(act), act.transpose(2, 0, 1))
    weight = rng.integers(-8, 8, (R, S, C, M))
    assert np.array_equal(problem.canonical_weight(weight), weight.transpose(3, 2, 0, 1))
    out = rng.integers(-8, 8, (M, problem.E, problem.F))
    assert np.array_equal(problem.user_out(out), out.transpose(1, 2, 0))
    assert np.array_equal(problem.canonical_out(problem.user_out(out)), out)


def test_conv_without_declared_shapes_infers_the_smallest_input():
    @loop_nest
    def conv(I, W, O):
        for m in range(4):
            for c in range(2):
                for e in range(8):
                    for f in range(5):
                        for r in range(3):
                            for s in range(3):
                                O[m, e, f] += I[c, 2 * e + r - 1, f + s] * W[m, c, r, s]
    problem = recognize(conv, WS)
    assert (problem.H, problem.W) == ((8 - 1) * 2 + 3 - 2, 5 + 3 - 1)
    assert (problem.stride_h, problem.pad_h, problem.stride_w, problem.pad_w) == (2, 1, 1, 0)


def test_declared_input_may_be_larger_than_the_reads():
    # PyTorch-style floor: a 17-row input, stride 2, pad 1, 3x3 gives 8 rows; the last input row is unread.
    conv = larger_input_conv()
    problem = recognize(conv, WS)
    assert (problem.H, problem.E, problem.R, problem.W, problem.S) == (17, 8, 3, 4, 1)
    assert problem.weight_axes == (0, 1, 2, None)


def test_pointwise_conv_without_kernel_loops():
    @loop_nest
    def pointwise(I, W, O):
        for m in range(8):
            for c in range(4):
                for e in range(3):
                    for f in range(3):
                        O[m, e, f] += I[c, 2 * e, 2 * f] * W[m, c]
    problem = recognize(pointwise, WS)
    assert (problem.kind, problem.R, problem.S, problem.H, problem.W, problem.stride_h) == ("conv2d", 1, 1, 5, 5, 2)
    assert problem.weight_axes == (0, 1, None, None)


@pytest.mark.parametrize("batch", [1, 5])
def test_linear_recognizes_as_matrix_product(batch):
    nest = linear(name="fc", in_features=10, out_features=6, batch=batch)
    mapping = default_mapping(nest)
    assert mapping == Mapping(rows="k", cols="m", resident="W")
    problem = recognize(nest, mapping)
    assert problem == ConvProblem(
        name="fc", kind="linear", C=10, H=1, W=batch, M=6, E=1, F=batch, R=1, S=1, act="X",
        act_axes=(1, None, 0), weight_axes=(0, 1, None, None), out_axes=(1, None, 0),
        act_shape=(batch, 10), weight_shape=(6, 10), out_shape=(batch, 6))
    x = np.arange(batch * 10).reshape(batch, 10)
    assert problem.canonical_act(x).shape == (10, 1, batch)
    assert np.array_equal(problem.canonical_act(x)[:, 0, :], x.T)


def test_matrix_vector_without_batch_loop_and_transposed_weights():
    @loop_nest
    def mv(x, Wt, y):
        for k in range(7):
            for j in range(3):
                y[j] += x[k] * Wt[k, j]
    mapping = default_mapping(mv)
    assert mapping == Mapping(rows="k", cols="j", resident="Wt")
    problem = recognize(mv, mapping)
    assert (problem.kind, problem.C, problem.M, problem.H, problem.W, problem.E, problem.F) == \
        ("linear", 7, 3, 1, 1, 1, 1)
    assert problem.act_axes == (0, None, None) and problem.weight_axes == (1, 0, None, None)
    assert problem.act_shape == (7,) and problem.out_shape == (3,)


def test_either_factor_can_be_resident():
    nest = linear(name="fc", in_features=4, out_features=6, batch=3)
    problem = recognize(nest, Mapping(rows="k", cols="n", resident="X"))
    assert (problem.act, problem.weight, problem.M, problem.F, problem.W) == ("W", "X", 3, 6, 6)
    assert problem.out_axes == (0, None, 1)


def test_recognize_does_not_depend_on_loop_names():
    nest = LoopNest("renamed", (Loop("oc", 4), Loop("ic", 3), Loop("y", 5), Loop("x", 5)),
                    Access("out", (Affine.var("oc"), Affine.var("y"), Affine.var("x"))),
                    Access("act", (Affine.var("ic"), Affine.var("y"), Affine.var("x"))),
                    Access("w", (Affine.var("oc"), Affine.var("ic"))))
    problem = recognize(nest, Mapping(rows="ic", cols="oc", resident="w"))
    assert (problem.C, problem.M, problem.E, problem.F) == (3, 4, 5, 5)


# Rejections: directives --------------------------------------------------------------------------------------

CONV = conv2d(name="l1", in_channels=3, out_channels=4, height=8, width=8, kernel=3, padding=1)


@pytest.mark.parametrize("mapping, error, culprit", [
    (Mapping(rows="k", cols="m", resident="W"), MappingError,
     r"l1: mapping.rows='k' is not a loop of the nest \(loops: m, c, e, f, r, s\)"),
    (Mapping(rows="c", cols="n", resident="W"), MappingError, r"mapping.cols='n' is not a loop"),
    (Mapping(rows="c", cols="c", resident="W"), MappingError, "rows and cols both unroll loop 'c'"),
    (Mapping(rows="m", cols="c", resident="W"), MappingError,
     r"mapping.rows='m' is the output-channel loop, but weight-stationary unrolls the input-channel loop onto "
     r"the rows.*set rows='c'"),
    (Mapping(rows="r", cols="m", resident="W"), MappingError, r"rows='r' is a kernel-window loop.*set rows='c'"),
    (Mapping(rows="c", cols="e", resident="W"), MappingError,
     r"cols='e' is an output spatial loop.*output-channel loop.*set cols='m'"),
    (Mapping(rows="c", cols="m", resident="B"), MappingError,
     r"resident='B' is not a factor of 'O\[m, e, f\] \+= I\[.*\]'; set it to the weight tensor, one of 'I' or 'W'"),
    (Mapping(rows="c", cols="m", resident="O"), MappingError, "resident='O' names the output.*set dataflow='output_stationary'"),
    (Mapping(rows="c", cols="m", resident="I"), MappingError,
     r"axis 1 of the resident tensor I is indexed by 'e \+ r - 1'.*set resident='W'"),
])
def test_directive_errors(mapping, error, culprit):
    with pytest.raises(error, match=culprit):
        recognize(CONV, mapping)


def test_mapping_validates_its_fields():
    with pytest.raises(MappingError, match="dataflow 'row_stationary' is not implemented; choose one of"):
        Mapping(rows="c", cols="m", resident="W", dataflow="row_stationary")
    with pytest.raises(MappingError, match="Mapping.rows must be a non-empty string naming a loop, not 3"):
        Mapping(rows=3, cols="m", resident="W")
    with pytest.raises(MappingError, match="expected an hwgen.mapping.Mapping"):
        recognize(CONV, {"rows": "c"})
    with pytest.raises(MappingError, match="expected an hwgen LoopNest"):
        recognize("conv", WS)


# Rejections: nest shapes the weight-stationary array cannot run ----------------------------------------------

def test_index_mixing_two_output_loops():
    @loop_nest
    def bad(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(4):
                    for f in range(4):
                        O[m, e, f] += I[c, e + f] * W[m, c]
    with pytest.raises(LoopNestError, match=r"index 'e \+ f' \(axis 1\) of I mixes the output loops 'e' and 'f'"):
        recognize(bad, WS)


def test_loop_in_no_tensor():
    @loop_nest
    def bad(I, W, O):
        for m in range(2):
            for c in range(2):
                for t in range(3):
                    O[m] += I[c] * W[m, c]
    with pytest.raises(LoopNestError, match="loop 't' indexes no tensor.*3 times; remove the loop"):
        recognize(bad, WS)


def test_output_index_not_a_plain_loop():
    @loop_nest
    def bad(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(4):
                    O[m, e + 1] += I[c, e] * W[m, c]
    with pytest.raises(LoopNestError, match=r"axis 1 of the output O is indexed by 'e \+ 1', not a plain loop"):
        recognize(bad, WS)


def test_depthwise_loop_in_output_and_both_factors():
    @loop_nest
    def depthwise(I, W, O):
        for c in range(4):
            for e in range(4):
                for r in range(3):
                    O[c, e] += I[c, e + r] * W[c, r]
    with pytest.raises(LoopNestError, match="loop 'c' indexes the output O and both factors I and W.*depthwise"):
        recognize(depthwise, Mapping(rows="r", cols="c", resident="W"))


def test_reduction_loop_in_one_factor_only():
    @loop_nest
    def bad(I, W, O):
        for m in range(2):
            for c in range(2):
                for t in range(3):
                    O[m] += I[c, t] * W[m, c]
    with pytest.raises(LoopNestError, match="reduction loop 't' indexes I but not W"):
        recognize(bad, WS)


def test_output_loop_in_output_only():
    @loop_nest
    def bad(I, W, O):
        for m in range(2):
            for c in range(2):
                for b in range(3):
                    O[m, b] += I[c] * W[m, c]
    with pytest.raises(LoopNestError, match="output loop 'b' indexes only O"):
        recognize(bad, WS)


def test_dilation_not_supported():
    @loop_nest
    def dilated(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(4):
                    for r in range(3):
                        O[m, e] += I[c, e + 2 * r] * W[m, c, r]
    with pytest.raises(LoopNestError, match=r"index 'e \+ 2\*r'.*kernel loop 'r' has coefficient 2.*dilation not "
                                            r"supported"):
        recognize(dilated, WS)


def test_negative_stride_and_crop():
    @loop_nest
    def flipped(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(4):
                    O[m, e] += I[c, 3 - e] * W[m, c]
    with pytest.raises(LoopNestError, match="output loop 'e' has coefficient -1; the stride must be"):
        recognize(flipped, WS)

    @loop_nest
    def cropped(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(4):
                    O[m, e] += I[c, e + 1] * W[m, c]
    with pytest.raises(LoopNestError, match=r"index 'e \+ 1' .* starts reading at \+1.*crop I"):
        recognize(cropped, WS)


def test_no_or_two_output_channel_loops():
    @loop_nest
    def no_m(I, W, O):
        for c in range(2):
            for e in range(4):
                O[e] += I[c, e] * W[c]
    with pytest.raises(LoopNestError, match="exactly one output-channel loop.*found none.*add a loop m"):
        recognize(no_m, Mapping(rows="c", cols="e", resident="W"))

    @loop_nest
    def two_m(I, W, O):
        for m in range(2):
            for g in range(2):
                for c in range(2):
                    O[g, m] += I[c] * W[g, m, c]
    with pytest.raises(LoopNestError, match=r"found 2 \(g, m\); flatten them"):
        recognize(two_m, WS)


def test_channel_axis_errors():
    @loop_nest
    def scaled(I, W, O):
        for m in range(2):
            for c in range(2):
                O[m] += I[2 * c] * W[m, c]
    with pytest.raises(LoopNestError, match=r"index '2\*c' .*channel loop 'c' must index its axis plainly"):
        recognize(scaled, WS)

    @loop_nest
    def two_channels(I, W, O):
        for m in range(2):
            for c in range(2):
                for d in range(2):
                    O[m] += I[c, d] * W[m, c, d]
    with pytest.raises(LoopNestError, match="loops 'c' and 'd' both index channel axes of I; flatten"):
        recognize(two_channels, WS)

    @loop_nest
    def no_channel(I, W, O):
        for m in range(2):
            for e in range(4):
                for r in range(3):
                    O[m, e] += I[e + r] * W[m, r]
    with pytest.raises(LoopNestError, match=r"no reduction loop indexes an axis of I\[e \+ r\] by itself.*"
                                            r"for c in range\(1\)"):
        recognize(no_channel, Mapping(rows="r", cols="m", resident="W"))

    @loop_nest
    def constant_axis(I, W, O):
        for m in range(2):
            for c in range(2):
                O[m] += I[c, 0] * W[m, c]
    with pytest.raises(LoopNestError, match=r"index '0' \(axis 1\) of I is a constant"):
        recognize(constant_axis, WS)


def test_weight_diagonal_and_reused_input_loop():
    @loop_nest
    def diagonal(I, W, O):
        for m in range(2):
            for c in range(2):
                O[m] += I[c] * W[m, c, c]
    with pytest.raises(LoopNestError, match=r"loop 'c' indexes 2 axes of the resident tensor W\[m, c, c\]"):
        recognize(diagonal, WS)

    @loop_nest
    def reused(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(3):
                    O[m, e] += I[c, e, e] * W[m, c]
    with pytest.raises(LoopNestError, match=r"loop 'e' indexes 2 axes of I\[c, e, e\]"):
        recognize(reused, WS)


def test_three_spatial_axes():
    @loop_nest
    def conv3d(I, W, O):
        for m in range(2):
            for c in range(2):
                for d in range(2):
                    for e in range(2):
                        for f in range(2):
                            O[m, d, e, f] += I[c, d, e, f] * W[m, c]
    with pytest.raises(LoopNestError, match="has 3 spatial axes; hwgen maps at most two"):
        recognize(conv3d, WS)


# Rejections: declared shapes ---------------------------------------------------------------------------------

def test_declared_input_too_small():
    @loop_nest
    def conv(I: tensor(2, 6, 8), W, O):
        for m in range(2):
            for c in range(2):
                for e in range(8):
                    for f in range(8):
                        for r in range(3):
                            O[m, e, f] += I[c, e + r - 1, f] * W[m, c, r]
    with pytest.raises(LoopNestError, match=r"I is declared with 6 along axis 1, but index 'e \+ r - 1' reads up "
                                            r"to 8, beyond the 1 row\(s\) of zero padding.*declare at least 8"):
        recognize(conv, WS)


def test_declared_channel_and_output_mismatch():
    @loop_nest
    def channels(I: tensor(3, 4), W, O):
        for m in range(2):
            for c in range(2):
                for f in range(4):
                    O[m, f] += I[c, f] * W[m, c]
    with pytest.raises(LoopNestError, match="I is declared with 3 along axis 0, but the input-channel loop 'c'"):
        recognize(channels, WS)

    @loop_nest
    def output(I, W, O: tensor(2, 5)):
        for m in range(2):
            for c in range(2):
                for f in range(4):
                    O[m, f] += I[c, f] * W[m, c]
    with pytest.raises(LoopNestError, match=r"O is declared with shape \(2, 5\), but the loops of O\[m, f\] give "
                                            r"\(2, 4\)"):
        recognize(output, WS)

    @loop_nest
    def weight(I, W: tensor(3, 2), O):
        for m in range(2):
            for c in range(2):
                O[m] += I[c] * W[m, c]
    with pytest.raises(LoopNestError, match=r"W is declared with shape \(3, 2\)"):
        recognize(weight, WS)


def test_undeclared_input_that_reads_only_padding():
    @loop_nest
    def bad(I, W, O):
        for m in range(2):
            for c in range(2):
                for e in range(1):
                    O[m, e] += I[c, e - 1] * W[m, c]
    with pytest.raises(LoopNestError, match=r"index 'e - 1' of I reads only padding.*reduce the padding"):
        recognize(bad, WS)


# Output-stationary ------------------------------------------------------------------------------------------

OS = "output_stationary"


def test_output_stationary_default_mapping_puts_pixels_on_rows():
    mapping = default_mapping(CONV, dataflow=OS)
    assert mapping == Mapping(rows="f", cols="m", resident="O", dataflow=OS)
    problem = recognize(CONV, mapping)
    assert problem == recognize(CONV, default_mapping(CONV))   # the same layer, whichever dataflow


def test_output_stationary_finds_the_weight_factor_by_its_role():
    # The kernel is the first factor and not named W: only it analyses as the weight of a convolution.
    @loop_nest(name="kernel_first")
    def kernel_first(K: tensor(4, 3, 3), X: tensor(3, 7), Y: tensor(4, 5)):
        for m in range(4):
            for c in range(3):
                for f in range(5):
                    for s in range(3):
                        Y[m, f] += K[m, c, s] * X[c, f + s]
    mapping = default_mapping(kernel_first, dataflow=OS)
    assert (mapping.rows, mapping.cols, mapping.resident) == ("f", "m", "Y")
    problem = recognize(kernel_first, mapping)
    assert (problem.weight, problem.C, problem.M, problem.F, problem.S) == ("K", 3, 4, 5, 3)


@pytest.mark.parametrize("mapping, culprit", [
    (Mapping(rows="f", cols="m", resident="W", dataflow=OS),
     "resident='W', but output-stationary keeps the outputs in the PEs; set resident='O'"),
    (Mapping(rows="c", cols="m", resident="O", dataflow=OS),
     "mapping.rows='c', but output-stationary unrolls the output pixels onto the rows.*'e' or 'f'"),
    (Mapping(rows="f", cols="e", resident="O", dataflow=OS),
     "cols='e', but output-stationary unrolls the output-channel loop onto the columns; set cols='m'"),
])
def test_output_stationary_directive_errors(mapping, culprit):
    with pytest.raises(MappingError, match=culprit):
        recognize(CONV, mapping)
