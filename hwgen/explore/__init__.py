"""Design-space exploration: sweep accelerators for a network (`hwgen explore`), on a local process pool or a
Dask cluster, with a result cache, resources calibrated against synthesis, the Pareto frontier, plots and an
HTML report (`hwgen report`).

One module per step: `space` (the axes and points) -> `evaluate` (the task functions a worker runs) on
`executor` (where they run), results in `cache` -> `calibrate` (the resource estimate against synthesis) ->
`frontier` -> `outputs`, `plots`, `report`; `sweep` runs them in order, `testsweep` runs a pytest tier on the same
pools, `cli` wires the commands.
"""

from .space import Point, Space
from .sweep import SweepConfig, SweepResult, run_sweep

__all__ = ["Point", "Space", "SweepConfig", "SweepResult", "run_sweep"]
