"""The fast resource estimate, calibrated against real synthesis.

Every point gets a prior estimate in milliseconds (`hwgen.explore.evaluate.estimate_resources`, fit.py): DSPs
and block RAM from the spec (the PE and post-op multipliers, the three buffers; or, with ``--elaborate``, the
cells of the elaborated design) and fit.py's rough logic formula. A sample of points is synthesized (Yosys; some
placed and routed for Fmax). From the sample, `ResourceModel.fit` learns, per metric (LUT4, carry cells,
flip-flops, DSP, block RAM), what the generator actually spends, as a non-negative least-squares fit

    measured = a + b*PEs + c*cols_with_postops + d*PEs_of_the_matrix_vector_engine
                 + e*PEs_of_an_output_stationary_array + f*prior_block_RAMs (+ g*prior_DSPs)

- structural counts of the spec, the coefficients taken from synthesis, never written down here (an engineer who
makes the PE smaller changes the coefficients, not this file). Features that do not vary in the sample are left
out; with fewer samples than coefficients a metric keeps its prior (LUT4: fit.py's estimate; DSP and block RAM:
the counts; no FF or carry figure). `ResourceModel.table` is the estimate-vs-measured table: prior, calibrated
(in-sample) and leave-one-out (each sample point predicted by a model fitted without it: the honest error for
unsynthesized points).
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ResourceModel", "features", "LOGIC_METRICS", "CELL_METRICS"]

LOGIC_METRICS = ("lut4", "carry", "ff")
CELL_METRICS = ("dsp", "bram")
FEATURES = ("1", "pes", "postop_cols", "mv_pes", "os_pes", "prior_bram")
METRIC_FEATURES = {"lut4": FEATURES[:5], "carry": FEATURES[:5], "ff": FEATURES[:5],
                   "dsp": FEATURES[:5], "bram": FEATURES}


def features(spec, estimate):
    """The structural counts of a spec dict and its prior estimate (see the module docstring)."""
    pes = spec["rows"] * spec["cols"]
    return {"1": 1.0, "pes": float(pes), "postop_cols": float(spec["cols"] if spec.get("postops", True) else 0),
            "mv_pes": float(pes if spec.get("mv_engine") else 0),
            "os_pes": float(pes if spec.get("dataflow") == "output_stationary" else 0),
            "prior_bram": float(estimate.get("bram") or 0)}


def prior(metric, estimate):
    return {"lut4": estimate.get("lut4_prior"), "dsp": estimate.get("dsp"), "bram": estimate.get("bram")}.get(metric)


def _nnls(a, b):
    try:
        from scipy.optimize import nnls
        return nnls(a, b)[0]
    except ImportError:        # least squares, negative coefficients clipped
        return np.clip(np.linalg.lstsq(a, b, rcond=None)[0], 0, None)


@dataclass
class ResourceModel:
    used: dict = field(default_factory=dict)            # metric -> the features its fit uses
    coefficients: dict = field(default_factory=dict)    # metric -> [coefficient per used feature]
    samples: int = 0

    @classmethod
    def fit(cls, samples):
        """``samples``: [(spec dict, prior estimate dict, measured dict)]."""
        model = cls(samples=len(samples))
        if not samples:
            return model
        x = {name: np.array([features(spec, estimate)[name] for spec, estimate, _ in samples]) for name in FEATURES}
        for metric in LOGIC_METRICS + CELL_METRICS:
            used = ["1"] + [name for name in METRIC_FEATURES[metric][1:] if np.ptp(x[name]) > 0]
            rows = [(i, m.get(metric)) for i, (_, _, m) in enumerate(samples) if m.get(metric) is not None]
            if len(rows) < len(used) + 1:
                continue
            a = np.stack([x[name][[i for i, _ in rows]] for name in used], axis=1)
            b = np.array([float(v) for _, v in rows])
            model.used[metric] = used
            model.coefficients[metric] = [round(float(c), 4) for c in _nnls(a, b)]
        return model

    def predict(self, spec, estimate):
        """Calibrated LUT4 / carry / FF / DSP / block RAM of one accelerator (None where there is no basis)."""
        out = {}
        f = features(spec, estimate)
        for metric in LOGIC_METRICS + CELL_METRICS:
            if metric in self.coefficients:
                out[metric] = int(round(sum(c * f[name] for c, name in zip(self.coefficients[metric],
                                                                            self.used[metric]))))
            else:
                out[metric] = prior(metric, estimate)
        return out

    def to_dict(self):
        return {"samples": self.samples, "features": self.used, "coefficients": self.coefficients,
                "basis": "synthesis" if self.coefficients else "prior (fit.py) - too few synthesized points"}

    @staticmethod
    def table(samples):
        """Estimate vs measured per synthesized point: the prior, the in-sample calibrated figure and the
        leave-one-out figure, per metric. Returns rows (dicts) and the mean absolute error per metric (%)."""
        full = ResourceModel.fit(samples)
        rows = []
        for index, (spec, estimate, measured) in enumerate(samples):
            loo = ResourceModel.fit(samples[:index] + samples[index + 1:])
            inside, outside = full.predict(spec, estimate), loo.predict(spec, estimate)
            row = {"array": f"{spec['rows']}x{spec['cols']}", "spec": spec, "measured": measured,
                   "prior": {m: prior(m, estimate) for m in LOGIC_METRICS + CELL_METRICS},
                   "calibrated": inside, "leave_one_out": outside}
            rows.append(row)
        errors = {}
        for metric in LOGIC_METRICS + CELL_METRICS:
            for kind in ("prior", "calibrated", "leave_one_out"):
                pairs = [(r[kind].get(metric), r["measured"].get(metric)) for r in rows]
                pairs = [(e, m) for e, m in pairs if e is not None and m]
                if pairs:
                    errors.setdefault(metric, {})[kind] = round(
                        100.0 * sum(abs(e - m) / m for e, m in pairs) / len(pairs), 1)
        return rows, errors
