"""The weight-stationary / matrix-vector planner as it was before closed-form evaluation: it builds every
candidate plan with `hwgen.tiling._build` and keeps the one that moves the fewest bytes (ties: fewer commands,
then the loop order, then the first built). Slow on large layers (it builds every tile of every candidate), kept
as the oracle `tests/test_tiling.py` checks the planner's choice against. Not a test module."""

from math import ceil

from hwgen.errors import BufferOverflowError, ConfigFieldError
from hwgen.spec import buffer_bytes_for
from hwgen.tiling import ORDERS, _build, _computed_rows, _even_ceil, _max_m_folds_per_command, _ranges, _window

__all__ = ["reference_plan_tiles"]


def _act_words(spec, problem, cg_tile, e_tile, rows_out):
    tallest = max(h1 - h0 for h0, h1, _ in (_window(problem, e0, e1) for e0, e1 in _ranges(rows_out, e_tile)))
    return cg_tile * tallest * problem.W


def reference_plan_tiles(spec, problem, postops, engine=None):
    p = problem
    c_groups, m_folds = ceil(p.C / spec.rows), ceil(p.M / spec.cols)
    rows_out = _computed_rows(p, postops)
    band = 2 if postops.pool != "none" else 1
    if _act_words(spec, p, 1, band, rows_out) > spec.act_bank_depth or band * p.F > spec.acc_depth:
        raise BufferOverflowError(f"{p.name}: the smallest tile does not fit")
    candidates, field_errors = [], []
    smallest_cg = c_groups if (engine or spec.dataflow) == "matrix_vector" else 1
    cg_sizes = sorted({ceil(c_groups / k) for k in range(1, 17)} | {1}, reverse=True)
    for cg_tile in [size for size in cg_sizes if size >= smallest_cg]:
        fitting = [e for e in range(rows_out, 0, -1) if e % band == 0 and e * p.F <= spec.acc_depth
                   and _act_words(spec, p, cg_tile, e, rows_out) <= spec.act_bank_depth]
        e_tiles = sorted(({_even_ceil(rows_out, ceil(rows_out / e), band) for e in fitting} & set(fitting))
                         | set(fitting[:1]), reverse=True)
        for e_tile in e_tiles:
            most = min(m_folds, spec.max_param_folds) if postops.needs_params else m_folds
            most = min(most, _max_m_folds_per_command(spec, e_tile * p.F))
            if cg_tile != c_groups:
                most = min(most, spec.acc_depth // (e_tile * p.F))
            if most < 1:
                continue
            for mf_tile in sorted({most, 1}):
                for order in ORDERS:
                    try:
                        candidates.append(_build(spec, p, postops, cg_tile=cg_tile, e_tile=e_tile,
                                                 mf_tile=mf_tile, order=order, engine=engine))
                    except ConfigFieldError as error:
                        field_errors.append(error)
        if cg_tile == c_groups and e_tiles and e_tiles[0] == rows_out:
            break
    if not candidates and field_errors:
        raise field_errors[0]
    if not candidates:
        words = _act_words(spec, p, c_groups, band, rows_out)
        raise BufferOverflowError(f"{p.name}: needs act_buffer_bytes >= {buffer_bytes_for(2 * words, spec.act_word_bits)}")
    return min(candidates, key=lambda plan: (plan.bytes_moved["total"], len(plan.tiles), ORDERS.index(plan.order)))
