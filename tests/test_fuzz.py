"""The project's own fuzz campaign (hypothesis): random specs, layers, mappings and post-ops.

Every case (`tests.fuzz_cases.make_case`) must be either accepted, planned within the CPU bound and then
bit-exact on the Python-level simulator with cycles equal to `hwgen.perf.predict_plan` (or, for the "large"
cases of huge sizes, planned within the bound), or rejected with an `HwgenError`. Nothing else: no other
exception, no case over its time bound (`CASE_SECONDS` of wall time).

- `test_fuzz_fast`: a deterministic slice in the default tier (seconds);
- `test_fuzz_campaign`: at least 10,000 cases under ``-m slow``, in `SHARDS` shards of hypothesis examples
  (``HWGEN_FUZZ_CASES`` sets the total); a case that breaks the contract is recorded and the campaign goes on, so
  the counts (accepted / rejected / failed) are complete; they are printed and written to
  ``$HWGEN_FUZZ_REPORT`` (default ``fuzz-report-<shard>.json`` in pytest's temporary directory);
- `test_fuzz_rtl_slice`: a few accepted cases on Icarus (`hwgen.sim.runner.run_layers`) with random stalls:
  bit-exact, and never faster than the model.
"""

import json
import os
import signal
import traceback
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, assume, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz_cases import RandomDraw, make_case, run_case

CASE_SECONDS = 900            # wall time of one case, simulation included: a guard against hangs on a shared machine
SHARDS = 4


SEEDS = st.integers(0, 2 ** 32 - 1)


def case_of(case_seed):
    """The case of a seed (hypothesis draws the seeds; a seed reproduces its case)."""
    return make_case(RandomDraw(case_seed), seed=case_seed)


def cases():
    return SEEDS.map(case_of)


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout(f"the case ran over its {CASE_SECONDS} s bound")


def run_bounded(case):
    """`run_case` under a wall-time bound (SIGALRM: pytest and xdist workers run tests in the main thread)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        return run_case(case)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_fuzz_fast():
    """30 cases, the same on every run (derandomized): both sides of the contract are exercised."""
    counts = Counter()

    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases())
    def fast(case):
        counts[run_bounded(case).status] += 1

    fast()
    assert counts["accepted"] >= 5 and counts["rejected"] >= 5, counts


def _campaign_cases():
    return int(os.environ.get("HWGEN_FUZZ_CASES", "10000"))


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_fuzz_campaign(shard, tmp_path_factory):
    per_shard = -(-_campaign_cases() // SHARDS)
    counts, details, failures, seen = Counter(), Counter(), [], set()
    path = Path(os.environ.get("HWGEN_FUZZ_REPORT", tmp_path_factory.mktemp("fuzz") / "report"))
    path = path.with_name(f"{path.name}-{shard}.json")
    path.parent.mkdir(parents=True, exist_ok=True)

    def report():
        return {"shard": shard, "cases": sum(counts.values()), "accepted": counts["accepted"],
                "rejected": counts["rejected"], "failed": counts["failed"], "details": dict(details),
                "failures": failures}

    @seed(20261204 + shard)
    @settings(max_examples=per_shard, deadline=None, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(SEEDS)
    def campaign(case_seed):
        assume(case_seed not in seen)          # distinct cases: hypothesis may draw a seed twice
        seen.add(case_seed)
        case = case_of(case_seed)
        try:
            outcome = run_bounded(case)
        except Exception as error:      # recorded, so the campaign goes on and the counts stay complete
            counts["failed"] += 1
            failures.append({"case": str(case), "error": f"{type(error).__name__}: {error}",
                             "traceback": traceback.format_exc(limit=8)})
        else:
            counts[outcome.status] += 1
            details[f"{outcome.status}:{outcome.detail}"] += 1
        if sum(counts.values()) % 50 == 0:      # the counts so far, for a campaign watched from outside
            path.write_text(json.dumps(report(), indent=1))

    campaign()
    final = report()
    path.write_text(json.dumps(final, indent=1))
    print(f"\nfuzz shard {shard}: {final['cases']} cases, {final['accepted']} accepted, {final['rejected']} "
          f"rejected, {final['failed']} failed ({path})")
    assert final["cases"] >= per_shard
    assert not failures, "\n\n".join(f"{f['case']}\n{f['traceback']}" for f in failures[:5])


@pytest.mark.cocotb
def test_fuzz_rtl_slice():
    """Accepted small cases (arrays up to 4x4) on the RTL with random valid/ready stalls on every stream."""
    from hwgen.sim.runner import run_layers
    from tests.fuzz_cases import build_design
    ran = []

    @settings(max_examples=3, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases(), st.sampled_from([0.2, 0.4]))
    def rtl(case, stall):
        assume(case.profile == "small" and case.spec.get("rows", 9) <= 4 and case.spec.get("cols", 9) <= 4)
        assume(run_bounded(case).status == "accepted")
        design = build_design(case)
        result = run_layers(design.spec, design.plans(), simulator=os.environ.get("SIM", "icarus"), stall=stall,
                            seed=case.seed % 1000 + 1, tag="fuzz")
        (layer,) = result.layers
        assert layer["exact"], f"{case}\n{layer['report']}"
        assert layer["measured_cycles"] >= layer["model_cycles"], case
        ran.append((case.seed, stall, layer["measured_cycles"], layer["model_cycles"]))

    rtl()
    assert len(ran) == 3, ran
