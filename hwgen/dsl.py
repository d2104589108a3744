"""The HLS-style front end: a plain Python loop nest becomes an `ir.LoopNest`.

    @loop_nest
    def conv(I: tensor(64, 16, 16), W: tensor(64, 64, 3, 3), O: tensor(64, 16, 16)):
        for m in range(64):
            for c in range(64):
                for e in range(16):
                    for f in range(16):
                        for r in range(3):
                            for s in range(3):
                                O[m, e, f] += I[c, e + r - 1, f + s - 1] * W[m, c, r, s]

The function is never called: its source is parsed with `ast`, so hwgen sees exactly what the user wrote.
`conv2d` and `linear` build the same `LoopNest` a user would write by hand.
"""

from __future__ import annotations

import ast
import inspect
import operator
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from .errors import LoopNestError, MappingError, NonAffineIndexError
from .ir import Access, Affine, Loop, LoopNest

__all__ = ["tensor", "TensorType", "loop_nest", "conv2d", "linear"]

_EXPECTED_FORM = ("a perfect nest of 'for v in range(N):' loops around exactly one statement "
                  "'O[...] += A[...] * B[...]'")
_AFFINE_HELP = ("an index may add and subtract loop variables, multiply them by integer constants, negate "
                "them and use parentheses, e.g. 'e*2 + r - 1'")


def _as_int(value):
    """`value` as a Python int (numpy integers included), or None for bools, floats and the rest."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


# Tensor annotations -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorType:
    """The declared shape of a loop-nest parameter; made by `tensor`."""
    shape: tuple

    def __repr__(self):
        return f"tensor({', '.join(map(str, self.shape))})"


def tensor(*dims: int) -> TensorType:
    """Annotate a loop-nest parameter with its shape: ``def conv(I: tensor(64, 16, 16), ...)``."""
    shape = tuple(_as_int(d) for d in dims)
    if not shape or any(d is None or d <= 0 for d in shape):
        raise LoopNestError(f"tensor{dims!r}: a tensor shape is one or more positive integers, "
                            f"e.g. tensor(64, 16, 16)")
    return TensorType(shape)


# The decorator ------------------------------------------------------------------------------------------------

def loop_nest(fn: Callable | None = None, *, name: str | None = None) -> LoopNest | Callable[[Callable], LoopNest]:
    """Parse a loop-nest function into an `ir.LoopNest`. Use as ``@loop_nest`` or ``@loop_nest(name="x")``.

    The decorated name is bound to the `LoopNest`, not to a callable.
    """
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise LoopNestError(f"loop_nest name must be a Python identifier (it names the layer), not {name!r}")
    if fn is None:
        return lambda f: loop_nest(f, name=name)
    if not inspect.isfunction(fn) or fn.__name__ == "<lambda>":
        raise LoopNestError(f"@loop_nest decorates a 'def' function holding the loop nest, not {fn!r}; "
                            f"to name the layer write @loop_nest(name=...)")
    return _Parser(fn, name or fn.__name__).parse()


class _NotAffine(Exception):
    """Internal: `node` (a sub-expression of an index) is not affine, for `reason`."""
    def __init__(self, node, reason):
        self.node, self.reason = node, reason


class _Parser:
    def __init__(self, fn, name):
        self.fn, self.name = fn, name
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError) as exc:
            raise LoopNestError(f"{name}: cannot read the source of {fn.__qualname__} ({exc}); @loop_nest parses "
                                f"source text, so define the function in a .py file") from None
        self.source = textwrap.dedent(source)
        # getsource() and co_firstlineno both start at the first decorator line.
        self.first_line = fn.__code__.co_firstlineno
        self.filename = inspect.getsourcefile(fn) or "<unknown>"
        # Names in extents and indices resolve like they would at run time: closure over globals.
        self.env = {**fn.__globals__, **inspect.getclosurevars(fn).nonlocals}
        tree = ast.parse(self.source)
        if not tree.body or not isinstance(tree.body[0], ast.FunctionDef):
            raise LoopNestError(f"{name}: @loop_nest needs a plain 'def' function (not async, not a lambda)")
        self.fdef = tree.body[0]
        args = self.fdef.args
        self.params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        self.loop_vars = []

    # Helpers ---------------------------------------------------------------------------------------------

    def _where(self, node):
        return f"{self.name} (line {self.first_line + node.lineno - 1})"

    def _src(self, node):
        return ast.get_source_segment(self.source, node) or ast.unparse(node)

    def _mentions_loop_var(self, node):
        return any(isinstance(n, ast.Name) and n.id in self.loop_vars for n in ast.walk(node))

    def _eval(self, node):
        code = compile(ast.Expression(node), self.filename, "eval")
        return eval(code, dict(self.env))  # a copy: eval() must not add to the function's globals

    # The nest --------------------------------------------------------------------------------------------

    def parse(self):
        body = self.fdef.body
        if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body = body[1:]  # the docstring
        loops = []
        parent = None
        while True:
            if len(body) != 1:
                self._not_one_statement(body, parent)
            stmt = body[0]
            if not isinstance(stmt, ast.For):
                break
            loops.append(self._loop(stmt))
            parent, body = stmt, stmt.body
        if not loops:
            raise LoopNestError(f"{self._where(stmt)}: the function has no loops; expected {_EXPECTED_FORM}")
        out, lhs, rhs = self._statement(stmt)
        return LoopNest(self.name, tuple(loops), out, lhs, rhs, self._shapes((out, lhs, rhs)))

    def _not_one_statement(self, body, parent):
        if not body:
            raise LoopNestError(f"{self.name}: the function body is empty; expected {_EXPECTED_FORM}")
        extra = body[1]
        if parent is None:
            context = "the function body holds"
        else:
            context = f"the body of 'for {parent.target.id} in ...' (line {self.first_line + parent.lineno - 1}) holds"
        raise LoopNestError(
            f"{self._where(extra)}: {context} {len(body)} statements, so the nest is not perfect "
            f"(second one: '{self._src(extra).splitlines()[0]}'); expected {_EXPECTED_FORM}")

    def _loop(self, stmt):
        where = self._where(stmt)
        if not isinstance(stmt.target, ast.Name):
            raise LoopNestError(f"{where}: loop target '{self._src(stmt.target)}' must be a single name, "
                                f"as in 'for c in range(64):'")
        var = stmt.target.id
        header = f"for {var} in {self._src(stmt.iter)}"
        call = stmt.iter
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "range"):
            raise LoopNestError(f"{where}: '{header}' is not a counted loop; write 'for {var} in range(N):'")
        if call.keywords or len(call.args) != 1 or isinstance(call.args[0], ast.Starred):
            raise LoopNestError(
                f"{where}: '{header}' - only range(N) is supported, not a start or a step; loop from 0 and "
                f"move the offset or step into the index (e.g. 'I[c, 2*{var} + 1]')")
        if stmt.orelse:
            raise LoopNestError(f"{where}: 'for {var} ... else:' is not supported; remove the 'else' clause")
        if var in self.params:
            raise LoopNestError(f"{where}: loop variable '{var}' hides the tensor parameter '{var}'; rename the loop")
        if var in self.loop_vars:
            raise LoopNestError(f"{where}: loop variable '{var}' is used by an enclosing loop; rename it")
        extent_node = call.args[0]
        if self._mentions_loop_var(extent_node):
            raise LoopNestError(
                f"{where}: the trip count of '{header}' depends on an enclosing loop variable; hwgen needs "
                f"rectangular nests - use a constant extent and let padding (out-of-bounds reads are zero) "
                f"handle the edges")
        try:
            value = self._eval(extent_node)
        except Exception as exc:
            raise LoopNestError(
                f"{where}: cannot evaluate the trip count '{self._src(extent_node)}' of loop '{var}' "
                f"({type(exc).__name__}: {exc}); use an integer literal or a name defined outside the "
                f"function") from None
        extent = _as_int(value)
        if extent is None:
            raise LoopNestError(f"{where}: the trip count of loop '{var}' is {value!r}; it must be an integer")
        self.loop_vars.append(var)
        return Loop(var, extent)

    def _statement(self, stmt):
        where = self._where(stmt)
        text = self._src(stmt).splitlines()[0]
        if isinstance(stmt, ast.If):
            raise LoopNestError(
                f"{where}: found an 'if' statement ('{text}'); conditions are not supported - express edges "
                f"through padding (reads outside a tensor are zero). Expected {_EXPECTED_FORM}")
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            raise LoopNestError(f"{where}: found the assignment '{text}'; hwgen accumulates, so write "
                                f"'O[...] += A[...] * B[...]' with '+='")
        if isinstance(stmt, ast.AugAssign) and not isinstance(stmt.op, ast.Add):
            raise LoopNestError(f"{where}: found '{text}'; only '+=' (multiply-accumulate) is supported: "
                                f"'O[...] += A[...] * B[...]'")
        if not isinstance(stmt, ast.AugAssign):
            raise LoopNestError(f"{where}: found '{text}'; expected {_EXPECTED_FORM}")
        value = stmt.value
        if not (isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult)
                and all(isinstance(v, ast.Subscript) for v in (value.left, value.right))):
            raise LoopNestError(f"{where}: the right-hand side '{self._src(value)}' is not a product of two "
                                f"tensor reads; expected 'O[...] += A[...] * B[...]'")
        return tuple(self._access(node, where) for node in (stmt.target, value.left, value.right))

    # Tensor accesses -------------------------------------------------------------------------------------

    def _access(self, node, where):
        if not isinstance(node, ast.Subscript) or not isinstance(node.value, ast.Name):
            raise LoopNestError(f"{where}: '{self._src(node)}' must index a tensor parameter, "
                                f"as in 'O[m, e, f]' or 'I[c, e + r, f + s]'")
        tensor_name = node.value.id
        if tensor_name not in self.params:
            raise LoopNestError(
                f"{where}: tensor '{tensor_name}' is not a parameter of {self.fdef.name}"
                f"({', '.join(self.params)}); pass every tensor the nest reads or writes as a parameter")
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        indices = []
        for item in items:
            try:
                indices.append(self._affine(item))
            except _NotAffine as exc:
                raise NonAffineIndexError(
                    f"{where}: index '{self._src(item)}' of tensor {tensor_name} is not affine in the loop "
                    f"variables: '{self._src(exc.node)}' {exc.reason}; {_AFFINE_HELP}") from None
        return Access(tensor_name, tuple(indices))

    def _affine(self, node):
        if isinstance(node, ast.Name) and node.id in self.loop_vars:
            return Affine.var(node.id)
        if isinstance(node, ast.Slice):
            raise _NotAffine(node, "is a slice; index each axis with a single expression")
        if not self._mentions_loop_var(node):
            return Affine.constant(self._constant(node))
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            left, right = self._affine(node.left), self._affine(node.right)
            return left + right if isinstance(node.op, ast.Add) else left - right
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            left, right = self._affine(node.left), self._affine(node.right)
            if left.terms and right.terms:
                raise _NotAffine(node, "multiplies two expressions of loop variables")
            return right.scale(left.const) if not left.terms else left.scale(right.const)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self._affine(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            raise _NotAffine(node, f"applies '{_OPERATORS.get(type(node.op), type(node.op).__name__)}' "
                                   f"to a loop variable")
        if isinstance(node, ast.Call):
            raise _NotAffine(node, "calls a function on a loop variable")
        raise _NotAffine(node, f"is a {type(node).__name__} expression of a loop variable")

    def _constant(self, node):
        """A sub-expression without loop variables: it must evaluate to an integer in the function's scope."""
        if isinstance(node, ast.Constant):
            value = node.value
        else:
            try:
                value = self._eval(node)
            except NameError:
                names = sorted({n.id for n in ast.walk(node) if isinstance(n, ast.Name)})
                raise _NotAffine(node, f"uses {', '.join(map(repr, names))}, which is neither a loop variable "
                                       f"(loops: {', '.join(self.loop_vars)}) nor a constant in scope") from None
            except Exception as exc:
                raise _NotAffine(node, f"cannot be evaluated ({type(exc).__name__}: {exc})") from None
        result = _as_int(value)
        if result is None:
            raise _NotAffine(node, f"is {value!r} ({type(value).__name__}), not an integer constant")
        return result

    # Declared shapes -------------------------------------------------------------------------------------

    def _shapes(self, accesses):
        try:
            annotations = inspect.get_annotations(self.fn, eval_str=True)
        except Exception as exc:
            raise LoopNestError(f"{self.name}: cannot evaluate the parameter annotations ({type(exc).__name__}: "
                                f"{exc}); annotate tensors as 'I: tensor(64, 16, 16)'") from None
        shapes = {}
        for access in accesses:
            declared = annotations.get(access.tensor)
            if declared is None:
                continue
            if not isinstance(declared, TensorType):
                raise LoopNestError(f"{self.name}: parameter {access.tensor} is annotated with {declared!r}; "
                                    f"annotate tensors with hwgen.dsl.tensor(...), e.g. tensor(64, 16, 16), "
                                    f"or leave them unannotated")
            if len(declared.shape) != len(access.indices):
                raise LoopNestError(
                    f"{self.name}: {access.tensor} is declared as {declared!r} ({len(declared.shape)} axes) but "
                    f"the nest indexes it as {access} ({len(access.indices)} axes); make them agree")
            shapes[access.tensor] = declared.shape
        return tuple(sorted(shapes.items()))


_OPERATORS = {ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%", ast.Pow: "**", ast.LShift: "<<",
              ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.MatMult: "@"}


# Library forms -----------------------------------------------------------------------------------------------

def _check_name(name):
    if not isinstance(name, str) or not name.isidentifier():
        raise MappingError(f"layer name must be a Python identifier (it names hardware and files), not {name!r}")


def _positive(layer, param, value):
    result = _as_int(value)
    if result is None or result <= 0:
        raise MappingError(f"{layer}: {param} must be a positive integer, not {value!r}")
    return result


def _pair(layer, param, value, *, minimum):
    """An int or a 2-tuple of ints, each >= `minimum`, as ``(height, width)``."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    pair = tuple(_as_int(v) for v in items)
    if len(pair) != 2 or any(v is None or v < minimum for v in pair):
        kind = "positive integer" if minimum > 0 else "non-negative integer"
        raise MappingError(f"{layer}: {param} must be a {kind} or a (height, width) pair of them, not {value!r}")
    return pair


def conv2d(*, name: str, in_channels: int, out_channels: int, height: int, width: int,
           kernel: int | tuple[int, int], stride: int | tuple[int, int] = 1,
           padding: int | tuple[int, int] = 0) -> LoopNest:
    """The nest of a 2-D convolution: loops m, c, e, f, r, s and
    ``O[m, e, f] += I[c, e*sh + r - ph, f*sw + s - pw] * W[m, c, r, s]`` with declared shapes
    ``I(C, H, W)``, ``W(M, C, R, S)``, ``O(M, E, F)`` where ``E = (H + 2*ph - R) // sh + 1``.
    """
    _check_name(name)
    C = _positive(name, "in_channels", in_channels)
    M = _positive(name, "out_channels", out_channels)
    H = _positive(name, "height", height)
    W = _positive(name, "width", width)
    R, S = _pair(name, "kernel", kernel, minimum=1)
    sh, sw = _pair(name, "stride", stride, minimum=1)
    ph, pw = _pair(name, "padding", padding, minimum=0)
    for axis, size, k, p in (("height", H, R, ph), ("width", W, S, pw)):
        if k > size + 2 * p:
            raise LoopNestError(f"{name}: the kernel {axis} {k} is larger than the padded input {axis} "
                                f"{size} + 2*{p} = {size + 2 * p}, so there is no output; use a kernel of at "
                                f"most {size + 2 * p} or more padding")
    E = (H + 2 * ph - R) // sh + 1
    F = (W + 2 * pw - S) // sw + 1
    m, c, e, f, r, s = (Affine.var(v) for v in "mcefrs")
    loops = (Loop("m", M), Loop("c", C), Loop("e", E), Loop("f", F), Loop("r", R), Loop("s", S))
    out = Access("O", (m, e, f))
    act = Access("I", (c, e.scale(sh) + r - ph, f.scale(sw) + s - pw))
    weight = Access("W", (m, c, r, s))
    shapes = (("I", (C, H, W)), ("O", (M, E, F)), ("W", (M, C, R, S)))
    return LoopNest(name, loops, out, act, weight, shapes)


def linear(*, name: str, in_features: int, out_features: int, batch: int = 1) -> LoopNest:
    """The nest of a fully-connected layer: loops n, m, k and ``O[n, m] += X[n, k] * W[m, k]``
    with declared shapes ``X(N, K)``, ``W(M, K)``, ``O(N, M)``. ``batch=1`` is a matrix-vector product.
    """
    _check_name(name)
    K = _positive(name, "in_features", in_features)
    M = _positive(name, "out_features", out_features)
    N = _positive(name, "batch", batch)
    n, m, k = (Affine.var(v) for v in "nmk")
    loops = (Loop("n", N), Loop("m", M), Loop("k", K))
    shapes = (("O", (N, M)), ("W", (M, K)), ("X", (N, K)))
    return LoopNest(name, loops, Access("O", (n, m)), Access("X", (n, k)), Access("W", (m, k)), shapes)
