"""The sweep and the test sweep on real pools: a local Dask cluster of two worker processes and the local
process pool, a worker killed mid-sweep (no result lost: its points run again), the cache making a re-run
cheap."""

import os
import signal
import time

import pytest

from hwgen.explore.executor import DaskPool, LocalPool
from hwgen.explore.space import Space
from hwgen.explore.sweep import SweepConfig, run_sweep

SPACE = dict(array=["2x2", "4x4", "8x8"], engines=["ws+mv", "ws"], act_buffer=["auto", "8K"])   # 12 points
DELAY = 1.5      # each model task takes at least this long: the sweep is still running when a worker dies


def _sweep(pool, cache, kill):
    killed = []

    def on_result(kind, key, value):
        if kind == "model" and not killed:
            killed.append(kill())

    config = SweepConfig(network="lenet", space=Space(**SPACE), cache_dir=str(cache), delay_s=DELAY,
                         show_progress=False)
    started = time.perf_counter()
    result = run_sweep(config, pool=pool, on_result=on_result)
    return result, killed, time.perf_counter() - started


def _check(result, killed, cache):
    assert killed and killed[0]
    assert len(result.points) == 12
    assert [p["status"] for p in result.points] == ["ok"] * 12, [p.get("reason") for p in result.points]
    assert result.stats["model"]["computed"] == 12
    assert len(list((cache / "model").glob("*/*.json"))) == 12


def test_local_dask_cluster_survives_a_killed_worker_and_the_cache_makes_a_rerun_cheap(tmp_path):
    pytest.importorskip("distributed")
    with DaskPool("local", workers=2) as pool:
        assert pool.workers == 2
        pids = pool.client.run(os.getpid)

        def kill():
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            return pid

        result, killed, first = _sweep(pool, tmp_path, kill)
        _check(result, killed, tmp_path)
        # both workers did work before the kill, and the cluster recovered (the nanny restarts the worker)
        assert "Dask" in result.stats["pool"]
        again, _, second = _sweep(pool, tmp_path, lambda: 1)
        assert again.stats["model"]["computed"] == 0 and again.stats["resources"]["computed"] == 0
        assert [p["cycles"] for p in again.points] == [p["cycles"] for p in result.points]
        assert second < first / 3


def test_local_process_pool_survives_a_killed_worker(tmp_path):
    with LocalPool(2) as pool:
        def kill():
            pid = pool.pids()[0]
            os.kill(pid, signal.SIGKILL)
            return pid

        result, killed, _ = _sweep(pool, tmp_path, kill)
        _check(result, killed, tmp_path)


def test_test_sweep_runs_each_test_on_a_worker_and_reports_outcomes(tmp_path):
    from hwgen.explore.testsweep import run_test_sweep
    (tmp_path / "test_things.py").write_text(
        "import pytest\n"
        "def test_passes():\n    assert True\n"
        "@pytest.mark.slow\ndef test_slow_passes():\n    assert 1 + 1 == 2\n"
        "@pytest.mark.slow\ndef test_slow_fails():\n    assert 1 + 1 == 3\n"
        "@pytest.mark.slow\n@pytest.mark.parametrize('n', [1, 2])\ndef test_slow_param(n):\n    assert n\n"
        "@pytest.mark.slow\ndef test_slow_skips():\n    pytest.skip('not here')\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: long\n")
    result = run_test_sweep(marker="slow", paths=["test_things.py"], workers=2, cwd=tmp_path, show_progress=False,
                            junit=tmp_path / "junit.xml")
    outcomes = {r["nodeid"].split("::")[1]: r["outcome"] for r in result.results}
    assert outcomes == {"test_slow_passes": "passed", "test_slow_fails": "failed", "test_slow_param[1]": "passed",
                        "test_slow_param[2]": "passed", "test_slow_skips": "skipped"}
    assert not result.ok and "3 passed, 1 failed, 1 skipped" in result.summary()
    assert "AssertionError" in result.summary() and "assert 1 + 1 == 3" in result.results[1]["message"]
    assert len({r["worker"] for r in result.results}) >= 1
    assert (tmp_path / "junit.xml").read_text().count("<testcase") == 5
