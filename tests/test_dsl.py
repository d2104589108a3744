"""The DSL front end: Python loop nests -> LoopNest, library forms, and every rejection message."""

import pytest

from hwgen.dsl import conv2d, linear, loop_nest, tensor
from hwgen.errors import LoopNestError, MappingError, NonAffineIndexError
from hwgen.ir import Affine

SIX = 6          # a module-level constant, resolved from the function's globals


def handwritten_conv(C, M, H, W_, R, S, sh, sw, ph, pw):
    """The conv2d nest written by hand; every size comes from the closure."""
    E = (H + 2 * ph - R) // sh + 1
    F = (W_ + 2 * pw - S) // sw + 1

    @loop_nest(name="conv")
    def conv(I: tensor(C, H, W_), W: tensor(M, C, R, S), O: tensor(M, E, F)):
        for m in range(M):
            for c in range(C):
                for e in range(E):
                    for f in range(F):
                        for r in range(R):
                            for s in range(S):
                                O[m, e, f] += I[c, e * sh + r - ph, sw * f + (s - pw)] * W[m, c, r, s]
    return conv


@pytest.mark.parametrize("C, M, H, W, R, S, sh, sw, ph, pw", [
    (3, 4, 8, 8, 3, 3, 1, 1, 0, 0),
    (3, 4, 8, 8, 3, 3, 1, 1, 1, 1),
    (2, 5, 9, 7, 3, 3, 2, 2, 1, 1),
    (2, 3, 10, 6, 3, 1, 2, 1, 0, 0),     # non-square kernel, stride and padding differ per axis
    (1, 2, 5, 11, 2, 4, 1, 3, 1, 2),
])
def test_handwritten_conv_equals_library_form(C, M, H, W, R, S, sh, sw, ph, pw):
    by_hand = handwritten_conv(C, M, H, W, R, S, sh, sw, ph, pw)
    library = conv2d(name="conv", in_channels=C, out_channels=M, height=H, width=W, kernel=(R, S),
                     stride=(sh, sw), padding=(ph, pw))
    assert by_hand == library


def test_conv2d_library_form_contents():
    nest = conv2d(name="l1", in_channels=16, out_channels=32, height=16, width=12, kernel=3, stride=2, padding=1)
    assert nest.loop_names == ("m", "c", "e", "f", "r", "s")
    assert [loop.extent for loop in nest.loops] == [32, 16, 8, 6, 3, 3]
    assert str(nest.lhs) == "I[c, 2*e + r - 1, 2*f + s - 1]"
    assert str(nest.rhs) == "W[m, c, r, s]" and str(nest.out) == "O[m, e, f]"
    assert nest.shapes == (("I", (16, 16, 12)), ("O", (32, 8, 6)), ("W", (32, 16, 3, 3)))


def test_handwritten_linear_equals_library_form():
    @loop_nest(name="fc")
    def fc(X: tensor(2, 10), W: tensor(SIX, 10), O: tensor(2, SIX)):
        for n in range(2):
            for m in range(SIX):
                for k in range(10):
                    O[n, m] += X[n, k] * W[m, k]
    assert fc == linear(name="fc", in_features=10, out_features=6, batch=2)
    assert linear(name="mv", in_features=3, out_features=4).loops[0].extent == 1


def test_plain_decorator_names_the_nest_after_the_function():
    @loop_nest
    def dot(A, B, O):
        """A docstring is allowed."""
        for i in range(4):
            for k in range(SIX):
                O[i] += A[i, k] * B[k]
    assert dot.name == "dot"
    assert dot.shapes == ()
    assert dot.lhs.tensor == "A" and dot.rhs.tensor == "B"


def test_affine_index_forms():
    K = 3

    @loop_nest
    def nest(A, B, O):
        for e in range(4):
            for r in range(K):
                O[e] += A[-(-e) * 2 + r - K // 2, (e - r) * 3, +e] * B[r]
    two_e_r, three, plain = nest.lhs.indices
    assert two_e_r == Affine.var("e").scale(2) + Affine.var("r") - 1
    assert three == Affine.var("e").scale(3) - Affine.var("r").scale(3)
    assert plain == Affine.var("e")


# Rejections -------------------------------------------------------------------------------------------------

def parse_source(tmp_path, source, name="nest_under_test"):
    """Write `source` (one function) to a real module, so inspect.getsource can read it, and parse it."""
    import importlib.util
    path = tmp_path / f"{name}.py"
    path.write_text("from hwgen.dsl import tensor\n" + source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return loop_nest(next(v for k, v in vars(module).items() if k != "tensor" and callable(v)))


def nest_with(statement):
    return ("def bad(A, B, O):\n"
            "    for e in range(4):\n"
            "        for f in range(4):\n"
            f"            {statement}\n")


@pytest.mark.parametrize("index, culprit", [
    ("e * f", r"'e \* f'"),
    ("e // 2", "'e // 2'"),
    ("e ** 2", r"'e \*\* 2'"),
    ("abs(e)", r"'abs\(e\)'"),
    ("e % 4", "'e % 4'"),
    ("e + 0.5", r"'0\.5'"),
    ("2.0 * e", r"'2\.0'"),
    ("e + undefined_name", "'undefined_name'"),
    ("A[e]", "'A\\[e\\]'"),
])
def test_non_affine_index(tmp_path, index, culprit):
    with pytest.raises(NonAffineIndexError, match=culprit) as info:
        parse_source(tmp_path, nest_with(f"O[e, f] += A[{index}, f] * B[e, f]"))
    message = str(info.value)
    assert f"index '{index}' of tensor A" in message
    assert "bad (line 5)" in message                     # the line in the user's file
    assert "multiply them by integer constants" in message


def test_non_affine_message_quotes_index_and_subexpression():
    with pytest.raises(NonAffineIndexError,
                       match=r"index 'e \+ 2 \* \(e \* f\)' of tensor A .*'e \* f' multiplies"):
        @loop_nest
        def bad(A, B, O):
            for e in range(4):
                for f in range(4):
                    O[e, f] += A[e + 2 * (e * f)] * B[e, f]


@pytest.mark.parametrize("statement, culprit", [
    ("O[e, f] = A[e] * B[f]", "assignment 'O\\[e, f\\] = A\\[e\\] \\* B\\[f\\]'.*'\\+='"),
    ("O[e, f] -= A[e] * B[f]", "only '\\+='"),
    ("O[e, f] += A[e] + B[f]", "'A\\[e\\] \\+ B\\[f\\]' is not a product of two tensor reads"),
    ("O[e, f] += A[e] * 2", "'A\\[e\\] \\* 2' is not a product"),
    ("O[e, f] += A[e] * B[f] * A[f]", "is not a product of two tensor reads"),
    ("if e > f: O[e, f] += A[e] * B[f]", "'if' statement"),
    ("O[e, f] += A[e] * X[f]", "tensor 'X' is not a parameter of bad\\(A, B, O\\)"),
    ("O[e, f] += A[e:f] * B[f]", "'e:f' is a slice"),
    ("print(e)", "found 'print\\(e\\)'"),
    ("acc += A[e] * B[f]", "'acc' must index a tensor parameter"),
])
def test_statement_shape_errors(tmp_path, statement, culprit):
    with pytest.raises(LoopNestError, match=culprit) as info:
        parse_source(tmp_path, nest_with(statement))
    assert "line 5" in str(info.value)


@pytest.mark.parametrize("header, culprit", [
    ("for f in range(1, 4):", "range\\(1, 4\\).*only range\\(N\\)"),
    ("for f in range(0, 8, 2):", "only range\\(N\\) is supported, not a start or a step"),
    ("for f in [0, 1, 2]:", "not a counted loop"),
    ("for f, g in range(4):", "loop target 'f, g'"),
    ("for f in range(e):", "depends on an enclosing loop variable"),
    ("for f in range(2.5):", "trip count of loop 'f' is 2.5"),
    ("for f in range(nowhere):", "cannot evaluate the trip count 'nowhere'"),
    ("for f in range(0):", "loop 'f' has extent 0"),
    ("for A in range(4):", "hides the tensor parameter 'A'"),
    ("for e in range(4):", "'e' is used by an enclosing loop"),
])
def test_loop_header_errors(tmp_path, header, culprit):
    source = ("def bad(A, B, O):\n"
              "    for e in range(4):\n"
              f"        {header}\n"
              "            O[e] += A[e] * B[e]\n")
    with pytest.raises(LoopNestError, match=culprit):
        parse_source(tmp_path, source)


def test_imperfect_nest_names_the_loop_and_the_extra_statement():
    with pytest.raises(LoopNestError, match=r"body of 'for e in \.\.\.' \(line \d+\) holds 2 statements.*"
                                            r"'O\[e\] \+= A\[e\] \* B\[e\]'.*perfect nest"):
        @loop_nest
        def bad(A, B, O):
            for e in range(4):
                for f in range(4):
                    O[e] += A[f] * B[f]
                O[e] += A[e] * B[e]


def test_two_statements_in_the_innermost_loop():
    with pytest.raises(LoopNestError, match="holds 2 statements"):
        @loop_nest
        def bad(A, B, O, P):
            for e in range(4):
                O[e] += A[e] * B[e]
                P[e] += A[e] * B[e]


def test_no_loops():
    with pytest.raises(LoopNestError, match="has no loops; expected a perfect nest of 'for v in range"):
        @loop_nest
        def bad(A, B, O):
            O[0] += A[0] * B[0]


def test_same_tensor_twice():
    with pytest.raises(LoopNestError, match="three different tensors"):
        @loop_nest
        def bad(A, O):
            for e in range(4):
                O[e] += A[e] * A[e]


def test_annotation_errors():
    with pytest.raises(LoopNestError, match=r"A is declared as tensor\(4, 4\) \(2 axes\) but the nest indexes "
                                            r"it as A\[e\] \(1 axes\)"):
        @loop_nest
        def bad(A: tensor(4, 4), B, O):
            for e in range(4):
                O[e] += A[e] * B[e]
    with pytest.raises(LoopNestError, match="parameter A is annotated with <class 'int'>"):
        @loop_nest
        def bad2(A: int, B, O):
            for e in range(4):
                O[e] += A[e] * B[e]
    with pytest.raises(LoopNestError, match="a tensor shape is one or more positive integers"):
        tensor(4, 0)
    with pytest.raises(LoopNestError, match="a tensor shape"):
        tensor()


def test_decorator_misuse():
    with pytest.raises(LoopNestError, match="not a 'def' function|decorates a 'def' function"):
        loop_nest(lambda A, B, O: None)
    with pytest.raises(LoopNestError, match="@loop_nest\\(name=...\\)"):
        loop_nest("conv")
    with pytest.raises(LoopNestError, match="name must be a Python identifier"):
        loop_nest(name="2 bad")


@pytest.mark.parametrize("kwargs, culprit", [
    (dict(in_channels=0), "in_channels must be a positive integer, not 0"),
    (dict(out_channels=True), "out_channels must be a positive integer, not True"),
    (dict(height=2.0), "height must be a positive integer"),
    (dict(kernel=(3, 3, 3)), r"kernel must be a positive integer or a \(height, width\) pair"),
    (dict(kernel=0), "kernel must be a positive integer"),
    (dict(stride=(1, 0)), "stride must be a positive integer"),
    (dict(padding=-1), "padding must be a non-negative integer"),
    (dict(name="my layer"), "layer name must be a Python identifier"),
])
def test_conv2d_parameter_errors(kwargs, culprit):
    params = dict(name="c", in_channels=3, out_channels=4, height=8, width=8, kernel=3)
    with pytest.raises(MappingError, match=culprit):
        conv2d(**{**params, **kwargs})


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(LoopNestError, match=r"c: the kernel width 5 is larger than the padded input width "
                                            r"2 \+ 2\*1 = 4.*at most 4 or more padding"):
        conv2d(name="c", in_channels=1, out_channels=1, height=8, width=2, kernel=(3, 5), padding=1)


def test_library_forms_are_keyword_only():
    with pytest.raises(TypeError):
        conv2d("c", 3, 4, 8, 8, 3)
    with pytest.raises(TypeError):
        linear("fc", 3, 4)
    with pytest.raises(MappingError, match="batch must be a positive integer, not 0"):
        linear(name="fc", in_features=3, out_features=4, batch=0)
