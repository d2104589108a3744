"""The mapper: a `LoopNest` plus per-layer directives becomes a canonical `ConvProblem`.

Recognition is by roles, not by names or loop order. With ``R`` the resident (weight) tensor and ``A`` the
other factor (the activation):

- an *output* loop indexes ``O``; a *reduction* loop does not;
- the output-channel loop ``m`` indexes ``O`` and ``R`` only;
- a spatial loop (``e``, ``f``, or the batch ``n`` of a matrix product) indexes ``O`` and ``A`` only, in
  ``A``'s index ``stride*e + r - pad`` together with at most one kernel loop ``r``;
- the input-channel loop ``c`` (``k`` of a matrix product) is a reduction loop that indexes ``A`` by itself.

Everything here is pure Python and runs before any hardware exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .errors import LoopNestError, MappingError
from .ir import LoopNest
from .problem import ConvProblem
from .spec import DATAFLOWS

__all__ = ["Mapping", "default_mapping", "recognize"]


@dataclass(frozen=True)
class Mapping:
    """Per-layer directives: which loop is unrolled onto the array rows and columns, which tensor stays in the
    processing elements, and the dataflow.

    Weight-stationary: rows = the input-channel loop, cols = the output-channel loop, resident = the weights.
    Output-stationary: rows = an output spatial loop (the output pixels, flattened in raster order, one per
    row), cols = the output-channel loop, resident = the output tensor.
    Matrix-vector: like weight-stationary (rows = the reduction, cols = the outputs)."""
    rows: str
    cols: str
    resident: str
    dataflow: str = "weight_stationary"

    def __post_init__(self):
        for field_name in ("rows", "cols", "resident", "dataflow"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value:
                raise MappingError(f"Mapping.{field_name} must be a non-empty string naming a "
                                   f"{'tensor' if field_name == 'resident' else 'loop'}, not {value!r}")
        if self.dataflow not in DATAFLOWS:
            raise MappingError(f"dataflow {self.dataflow!r} is not implemented; choose one of {DATAFLOWS}")


@dataclass(frozen=True)
class _Spatial:
    """One spatial axis of the activation: index ``stride*out_loop + kernel_loop - pad`` on `act_axis`."""
    out_loop: str
    kernel_loop: str  # or None for a 1-wide kernel
    stride: int
    pad: int
    act_axis: int


@dataclass(frozen=True)
class _Roles:
    act: object       # ir.Access
    weight: object
    out: object
    m: str
    c: str
    c_axis: int       # axis of the activation indexed by c
    spatial: tuple    # of _Spatial, at most 2, in the order their loops index the output (height first)


def _factors(nest):
    return (nest.lhs.tensor, nest.rhs.tensor)


def _check_resident(nest, resident):
    if resident in _factors(nest):
        return
    if resident == nest.out.tensor:
        raise MappingError(
            f"{nest.name}: resident={resident!r} names the output; keeping outputs in the PEs is the "
            f"output-stationary dataflow: set dataflow='output_stationary' (rows = an output spatial loop), or "
            f"keep a factor resident: set resident to {' or '.join(map(repr, _factors(nest)))}")
    raise MappingError(f"{nest.name}: resident={resident!r} is not a factor of '{nest.out} += {nest.lhs} * "
                       f"{nest.rhs}'; set it to the weight tensor, one of {' or '.join(map(repr, _factors(nest)))}")


def _plain_loops(nest, access, role, fix, error=LoopNestError):
    """The loop of each index of `access`, which must each be a distinct plain loop variable."""
    loops = []
    for pos, index in enumerate(access.indices):
        if not index.is_var():
            raise error(f"{nest.name}: axis {pos} of the {role} {access.tensor} is indexed by '{index}', "
                                f"not a plain loop variable; {fix}")
        loops.append(index.variables[0])
    for loop, count in Counter(loops).items():
        if count > 1:
            raise LoopNestError(f"{nest.name}: loop '{loop}' indexes {count} axes of the {role} {access} (a "
                                f"diagonal); each axis needs its own loop")
    return loops


def _analyze(nest, resident):
    """Assign a conv role to every loop of `nest` with `resident` as the weight tensor, or explain why not."""
    if not isinstance(nest, LoopNest):
        raise MappingError(f"expected an hwgen LoopNest (from @loop_nest, conv2d or linear), not {nest!r}")
    _check_resident(nest, resident)
    name = nest.name
    weight = nest.access(resident)
    act = nest.rhs if nest.lhs.tensor == resident else nest.lhs
    out = nest.out
    other = act.tensor

    out_loops = _plain_loops(nest, out, "output", fix=f"index each output axis with one loop, e.g. "
                             f"{out.tensor}[m, e, f], and move strides and offsets into the input index")
    weight_loops = _plain_loops(nest, weight, "resident tensor", fix=(
        f"weight-stationary keeps {weight.tensor} in the PEs, so it must be indexed by one loop per axis, like "
        f"W[m, c, r, s]; if {other} holds the weights, set resident={other!r}"),
        error=MappingError)   # most often the directive names the wrong factor
    act_loops = Counter(v for index in act.indices for v in index.variables)

    for loop in nest.loop_names:
        in_out, in_act, in_weight = loop in out_loops, loop in act_loops, loop in weight_loops
        if not (in_out or in_act or in_weight):
            raise LoopNestError(f"{name}: loop '{loop}' indexes no tensor, so it only repeats the same "
                                f"multiply-accumulate {nest.extent(loop)} times; remove the loop")
        if in_out and in_act and in_weight:
            raise LoopNestError(
                f"{name}: loop '{loop}' indexes the output {out.tensor} and both factors {act.tensor} and "
                f"{weight.tensor}; that is an element-wise (depthwise) product, which weight-stationary cannot "
                f"map - each output loop must index exactly one factor ('m' the weights, 'e'/'f' the input)")
        if in_out and not (in_act or in_weight):
            raise LoopNestError(f"{name}: output loop '{loop}' indexes only {out.tensor}, so every '{loop}' "
                                f"receives the same sum; remove '{loop}' from {out} or index a factor with it")
        if not in_out and in_act != in_weight:
            only = act.tensor if in_act else weight.tensor
            raise LoopNestError(
                f"{name}: reduction loop '{loop}' indexes {only} but not "
                f"{weight.tensor if in_act else act.tensor}, so the nest sums {only} before multiplying; a "
                f"multiply-accumulate needs every reduction loop in both factors - index both with '{loop}' or "
                f"put it in the output {out.tensor}")

    m_loops = [loop for loop in out_loops if loop in weight_loops]
    if len(m_loops) != 1:
        found = f"{len(m_loops)} ({', '.join(m_loops)})" if m_loops else "none"
        raise LoopNestError(
            f"{name}: weight-stationary needs exactly one output-channel loop (it indexes the output "
            f"{out.tensor} and the weights {weight.tensor}, like 'm'), found {found}; "
            f"{'flatten them into one loop' if m_loops else 'add a loop m over the output channels, even range(1)'}")
    out_set = set(out_loops)

    channel, spatial = None, []
    for pos, index in enumerate(act.indices):
        outs = [v for v in index.variables if v in out_set]
        reds = [v for v in index.variables if v not in out_set]
        where = f"{name}: index '{index}' (axis {pos}) of {act.tensor}"
        if len(outs) > 1:
            raise LoopNestError(f"{where} mixes the output loops {' and '.join(map(repr, outs))}; each input axis "
                                f"may follow one output loop (e.g. 'e*stride + r - pad')")
        if len(reds) > 1:
            raise LoopNestError(f"{where} mixes the reduction loops {' and '.join(map(repr, reds))}; each input "
                                f"axis may hold one channel loop, or one output loop plus one kernel loop")
        if not outs and not reds:
            raise LoopNestError(f"{where} is a constant; every axis must be indexed by a loop - slice the tensor "
                                f"before the layer and drop the axis")
        if not outs:
            if not index.is_var():
                raise LoopNestError(f"{where}: the channel loop '{reds[0]}' must index its axis plainly, as "
                                    f"'{reds[0]}' (no scale or offset)")
            if channel is not None:
                raise LoopNestError(f"{where}: loops '{channel[0]}' and '{reds[0]}' both index channel axes of "
                                    f"{act.tensor}; flatten them into one input-channel loop")
            channel = (reds[0], pos)
            continue
        loop, kernel = outs[0], (reds[0] if reds else None)
        stride = index.coef(loop)
        if stride <= 0:
            raise LoopNestError(f"{where}: the output loop '{loop}' has coefficient {stride}; the stride must be "
                                f"a positive integer (flip the tensor before the layer instead)")
        if kernel is not None and index.coef(kernel) != 1:
            raise LoopNestError(
                f"{where}: the kernel loop '{kernel}' has coefficient {index.coef(kernel)}, i.e. a "
                f"{'flipped' if index.coef(kernel) < 0 else 'dilated'} kernel; dilation not supported - the "
                f"kernel loop must appear as '+ {kernel}' (dilation 1)")
        if index.const > 0:
            raise LoopNestError(
                f"{where} starts reading at +{index.const}; only zero padding (an offset of 0 or -pad) is "
                f"supported - crop {act.tensor} before the layer")
        spatial.append(_Spatial(loop, kernel, stride, -index.const, pos))

    for loop, count in act_loops.items():
        if count > 1:
            raise LoopNestError(f"{name}: loop '{loop}' indexes {count} axes of {act}; each loop may index one "
                                f"axis of the input")
    if channel is None:
        raise LoopNestError(
            f"{name}: no reduction loop indexes an axis of {act} by itself, so there is no input-channel loop "
            f"to unroll onto the array rows; add one, even 'for c in range(1)', indexing {act.tensor} and "
            f"{weight.tensor}")
    if len(spatial) > 2:
        raise LoopNestError(f"{name}: {act} has {len(spatial)} spatial axes; hwgen maps at most two (a 2-D "
                            f"convolution) - fold the extra axis into another loop")
    spatial.sort(key=lambda sp: out_loops.index(sp.out_loop))
    return _Roles(act, weight, out, m_loops[0], channel[0], channel[1], tuple(spatial))


def _default_weight(nest):
    return "W" if "W" in _factors(nest) else nest.rhs.tensor


def _output_stationary_roles(nest):
    """Roles for an output-stationary mapping: the weight is whichever factor analyses as one (``W`` first)."""
    if not isinstance(nest, LoopNest):
        raise MappingError(f"expected an hwgen LoopNest (from @loop_nest, conv2d or linear), not {nest!r}")
    first = _default_weight(nest)
    others = [t for t in _factors(nest) if t != first]
    try:
        return _analyze(nest, first)
    except (MappingError, LoopNestError) as error:
        for other in others:
            try:
                return _analyze(nest, other)
            except (MappingError, LoopNestError):
                pass
        raise error


def default_mapping(nest: LoopNest, *, resident: str | None = None,
                    dataflow: str = "weight_stationary") -> Mapping:
    """The mapping of `nest`: output channels on columns; on rows the input channels (the reduction), or
    for ``dataflow="output_stationary"`` the output pixels (named by the innermost output spatial loop).

    `resident` defaults to the factor named ``W`` (as `conv2d` and `linear` build), else the second factor;
    output-stationary keeps the output resident.
    """
    if dataflow == "output_stationary":
        roles = _output_stationary_roles(nest)
        if not roles.spatial:
            raise MappingError(f"{nest.name}: output-stationary puts output pixels on the rows, and this nest has "
                               f"no output spatial loop; use dataflow='matrix_vector' or 'weight_stationary'")
        return Mapping(rows=roles.spatial[-1].out_loop, cols=roles.m, resident=nest.out.tensor,
                       dataflow=dataflow)
    if resident is None:
        resident = _default_weight(nest)
    roles = _analyze(nest, resident)
    return Mapping(rows=roles.c, cols=roles.m, resident=resident, dataflow=dataflow)


def _check_output_stationary(nest, mapping, roles):
    if mapping.resident != nest.out.tensor:
        raise MappingError(
            f"{nest.name}: resident={mapping.resident!r}, but output-stationary keeps the outputs in the PEs; "
            f"set resident={nest.out.tensor!r}")
    pixel_loops = [sp.out_loop for sp in roles.spatial]
    if mapping.rows not in pixel_loops:
        raise MappingError(
            f"{nest.name}: mapping.rows={mapping.rows!r}, but output-stationary unrolls the output pixels onto the "
            f"rows (each row accumulates one output pixel); set rows to an output spatial loop: "
            f"{' or '.join(map(repr, pixel_loops)) or '(none: this nest has none)'}")
    if mapping.cols != roles.m:
        raise MappingError(
            f"{nest.name}: mapping.cols={mapping.cols!r}, but output-stationary unrolls the output-channel loop "
            f"onto the columns; set cols={roles.m!r}")


def _check_directives(nest, mapping, roles):
    loops = nest.loop_names
    for field_name in ("rows", "cols"):
        loop = getattr(mapping, field_name)
        if loop not in loops:
            raise MappingError(f"{nest.name}: mapping.{field_name}={loop!r} is not a loop of the nest "
                               f"(loops: {', '.join(loops)})")
    if mapping.rows == mapping.cols:
        raise MappingError(f"{nest.name}: rows and cols both unroll loop '{mapping.rows}'; the columns take the "
                           f"output-channel loop and the rows the input-channel loop (weight-stationary) or an "
                           f"output spatial loop (output-stationary)")
    if roles is None:
        return
    role_of = {roles.m: "the output-channel loop", roles.c: "the input-channel loop"}
    for sp in roles.spatial:
        role_of[sp.out_loop] = "an output spatial loop"
        if sp.kernel_loop:
            role_of[sp.kernel_loop] = "a kernel-window loop"
    if mapping.rows != roles.c:
        raise MappingError(
            f"{nest.name}: mapping.rows={mapping.rows!r} is {role_of[mapping.rows]}, but weight-stationary unrolls "
            f"the input-channel loop onto the rows: each row holds one input channel of the resident "
            f"{roles.weight.tensor} and the column adds the row products into one partial sum. The input-channel "
            f"loop here is '{roles.c}' (a reduction indexing {roles.act.tensor} and {roles.weight.tensor}); set "
            f"rows={roles.c!r}")
    if mapping.cols != roles.m:
        raise MappingError(
            f"{nest.name}: mapping.cols={mapping.cols!r} is {role_of[mapping.cols]}, but weight-stationary unrolls "
            f"the output-channel loop onto the columns: each column holds the weights of one output channel. "
            f"The output-channel loop here is '{roles.m}' (it indexes {roles.out.tensor} and "
            f"{roles.weight.tensor}); set cols={roles.m!r}")


def recognize(nest: LoopNest, mapping: Mapping) -> ConvProblem:
    """Turn `nest` under `mapping` into the canonical `ConvProblem`, or raise a `LoopNestError` /
    `MappingError` naming the loop, index or tensor at fault."""
    if not isinstance(mapping, Mapping):
        raise MappingError(f"expected an hwgen.mapping.Mapping, not {mapping!r}; use default_mapping(nest)")
    if not isinstance(nest, LoopNest):
        raise MappingError(f"expected an hwgen LoopNest (from @loop_nest, conv2d or linear), not {nest!r}")
    _check_directives(nest, mapping, None)   # names first: they are the cheapest mistakes to explain
    if mapping.dataflow == "output_stationary":
        roles = _output_stationary_roles(nest)
        _check_output_stationary(nest, mapping, roles)
    else:
        roles = _analyze(nest, mapping.resident)
        _check_directives(nest, mapping, roles)
    return _problem(nest, roles)


def _problem(nest, roles):
    act, weight, out = roles.act, roles.weight, roles.out
    # One spatial axis (a matrix product's batch) is the width; height is then a unit axis.
    height = roles.spatial[0] if len(roles.spatial) == 2 else None
    width = roles.spatial[-1] if roles.spatial else None

    def extent(loop):
        return nest.extent(loop) if loop else 1

    C, M = nest.extent(roles.c), nest.extent(roles.m)
    declared_act = nest.declared_shape(act.tensor)
    if declared_act is not None and declared_act[roles.c_axis] != C:
        raise LoopNestError(
            f"{nest.name}: {act.tensor} is declared with {declared_act[roles.c_axis]} along axis {roles.c_axis}, "
            f"but the input-channel loop '{roles.c}' that indexes it runs {C} times; make them equal")
    act_shape = [C] * len(act.indices)
    sizes = {}
    for key, sp in (("h", height), ("w", width)):
        if sp is None:
            sizes[key] = dict(E=1, R=1, stride=1, pad=0, H=1)
            continue
        E, R = extent(sp.out_loop), extent(sp.kernel_loop)
        reach = (E - 1) * sp.stride + R    # one past the last index read, counted from -pad
        index = act.indices[sp.act_axis]
        if declared_act is not None:
            H = declared_act[sp.act_axis]
            if reach > H + 2 * sp.pad:
                raise LoopNestError(
                    f"{nest.name}: {act.tensor} is declared with {H} along axis {sp.act_axis}, but index "
                    f"'{index}' reads up to {reach - 1 - sp.pad}, beyond the {sp.pad} row(s) of zero padding "
                    f"after it; declare at least {reach - 2 * sp.pad}, or shorten loop '{sp.out_loop}'")
        else:
            H = reach - 2 * sp.pad     # the smallest input all reads fit in, with symmetric padding
            if H < 1:
                raise LoopNestError(
                    f"{nest.name}: index '{index}' of {act.tensor} reads only padding ({sp.pad} on each side "
                    f"of a {R}-wide kernel over {E} outputs); reduce the padding")
        act_shape[sp.act_axis] = H
        sizes[key] = dict(E=E, R=R, stride=sp.stride, pad=sp.pad, H=H)

    weight_shape = tuple(nest.extent(v) for v in (i.variables[0] for i in weight.indices))
    out_shape = tuple(nest.extent(v) for v in (i.variables[0] for i in out.indices))
    for access, shape in ((weight, weight_shape), (out, out_shape)):
        declared = nest.declared_shape(access.tensor)
        if declared is not None and tuple(declared) != shape:
            raise LoopNestError(f"{nest.name}: {access.tensor} is declared with shape {tuple(declared)}, but the "
                                f"loops of {access} give {shape}; make the declaration match the loop extents")

    def axis(access, loop):
        if loop is None:
            return None
        return [i.variables[0] for i in access.indices].index(loop)

    h, w = sizes["h"], sizes["w"]
    kernels = [sp.kernel_loop for sp in roles.spatial if sp.kernel_loop]
    is_matmul = (height is None and not kernels and w["stride"] == 1 and w["pad"] == 0
                 and len(act.indices) <= 2)
    return ConvProblem(
        name=nest.name, kind="linear" if is_matmul else "conv2d",
        C=C, H=h["H"], W=w["H"], M=M, E=h["E"], F=w["E"], R=h["R"], S=w["R"],
        stride_h=h["stride"], stride_w=w["stride"], pad_h=h["pad"], pad_w=w["pad"],
        act=act.tensor, weight=weight.tensor, out=out.tensor,
        act_axes=(roles.c_axis, height.act_axis if height else None, width.act_axis if width else None),
        weight_axes=(axis(weight, roles.m), axis(weight, roles.c),
                     axis(weight, height.kernel_loop if height else None),
                     axis(weight, width.kernel_loop if width else None)),
        out_axes=(axis(out, roles.m), axis(out, height.out_loop if height else None),
                  axis(out, width.out_loop if width else None)),
        act_shape=tuple(act_shape), weight_shape=weight_shape, out_shape=out_shape)
