"""A pytest tier spread over workers: the long cocotb sweep (``make test-slow``: ``-m slow``) on the same pools
as `hwgen explore` (`hwgen.explore.executor`: local processes, or a Dask cluster).

The driver collects the node ids (``pytest --collect-only``), and every worker runs one test at a time in a
pytest process of its own (``python -m pytest NODEID``, in the checkout the driver runs in: a remote Dask worker
needs the same path, e.g. a shared file system). A test whose worker dies is run again (``retries``) or reported
as an error; the outcome of each comes back as it finishes.

    hwgen sweep-tests                       # -m slow over the local cores
    hwgen sweep-tests --cluster local --workers 2 -m cocotb tests/test_cocotb_network.py
"""

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ArgumentError
from .executor import open_pool
from .progress import progress

__all__ = ["collect", "run_test", "run_test_sweep", "TestSweepResult"]


def collect(paths, marker=None, keyword=None, cwd=None):
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *paths]
    if marker:
        command += ["-m", marker]
    if keyword:
        command += ["-k", keyword]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 5):
        raise ArgumentError(f"pytest could not collect {paths}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return [line.strip() for line in done.stdout.splitlines() if "::" in line and not line.startswith(" ")]


def run_test(nodeid, cwd, marker=None, timeout_s=None):
    """One test in a pytest process of its own; its outcome from a JUnit XML."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hwgen-test-") as tmp:
        xml = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", nodeid]
        if marker:
            command += ["-m", marker]
        try:
            done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"nodeid": nodeid, "outcome": "error", "message": f"timed out after {timeout_s} s",
                    "seconds": round(time.perf_counter() - started, 1), "worker": os.getpid()}
        outcome, message = "error", (done.stdout + done.stderr)[-3000:]
        if xml.exists():
            cases = ET.parse(xml).getroot().iter("testcase")
            outcomes, failures = [], []
            for case in cases:
                kinds = [child.tag for child in case]
                outcomes.append("failed" if "failure" in kinds else "error" if "error" in kinds
                                else "skipped" if "skipped" in kinds else "passed")
                for child in case:
                    if child.tag in ("failure", "error"):
                        failures.append((child.text or child.get("message") or "").strip())
            if failures:
                message = "\n".join(failures)[-3000:]
            if outcomes:
                outcome = ("failed" if "failed" in outcomes else "error" if "error" in outcomes
                           else "passed" if "passed" in outcomes else "skipped")
        return {"nodeid": nodeid, "outcome": outcome, "message": "" if outcome in ("passed", "skipped") else message,
                "seconds": round(time.perf_counter() - started, 1), "worker": os.getpid()}


@dataclass
class TestSweepResult:
    __test__ = False        # not a pytest class
    results: list = field(default_factory=list)
    seconds: float = 0.0
    pool: str = ""

    @property
    def ok(self):
        return all(r["outcome"] in ("passed", "skipped") for r in self.results)

    def counts(self):
        counts = {}
        for r in self.results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return counts

    def summary(self):
        lines = []
        for r in self.results:
            if r["outcome"] not in ("passed", "skipped"):
                lines.append(f"{r['outcome'].upper()} {r['nodeid']} ({r['seconds']} s)\n    "
                             + r["message"][-1500:].replace("\n", "\n    "))
        c = self.counts()
        busy = sum(r["seconds"] for r in self.results)
        lines.append(f"{c.get('passed', 0)} passed, {c.get('failed', 0)} failed"
                     + (f", {c['skipped']} skipped" if c.get("skipped") else "")
                     + (f", {c['error']} errors" if c.get("error") else "")
                     + f" in {self.seconds:.1f} s on {self.pool} ({busy:.1f} s of test time: "
                       f"{busy / self.seconds if self.seconds else 0:.2f}x)")
        return "\n".join(lines)

    def write_junit(self, path):
        suite = ET.Element("testsuite", name="hwgen-sweep-tests", tests=str(len(self.results)))
        for r in self.results:
            module, _, name = r["nodeid"].partition("::")
            case = ET.SubElement(suite, "testcase", classname=module, name=name, time=str(r["seconds"]))
            if r["outcome"] in ("failed", "error"):
                ET.SubElement(case, "failure" if r["outcome"] == "failed" else "error").text = r["message"]
            elif r["outcome"] == "skipped":
                ET.SubElement(case, "skipped")
        ET.ElementTree(suite).write(path)


def run_test_sweep(*, marker="slow", paths=("tests",), keyword=None, workers=None, cluster=None, retries=1,
                   timeout_s=None, show_progress=None, junit=None, cwd=None):
    cwd = str(Path(cwd or os.getcwd()).resolve())
    nodeids = collect(list(paths), marker, keyword, cwd=cwd)
    if not nodeids:
        raise ArgumentError(f"no test in {' '.join(paths)} matches" + (f" -m {marker!r}" if marker else "")
                            + (f" -k {keyword!r}" if keyword else ""))
    result = TestSweepResult()
    started = time.perf_counter()
    with open_pool(workers=workers, cluster=cluster) as pool, progress(show_progress) as bars:
        result.pool = pool.describe()
        bar = bars.task(f"tests ({marker or 'all'})", len(nodeids))
        calls = [((nodeid, cwd), {"marker": marker, "timeout_s": timeout_s}) for nodeid in nodeids]
        for index, value, error in pool.run(run_test, calls, retries=retries):
            if error is not None:
                value = {"nodeid": nodeids[index], "outcome": "error", "seconds": 0.0,
                         "message": f"{type(error).__name__}: {error}"}
            result.results.append(value)
            bar.advance()
    result.seconds = time.perf_counter() - started
    result.results.sort(key=lambda r: nodeids.index(r["nodeid"]))
    if junit:
        result.write_junit(junit)
    return result
