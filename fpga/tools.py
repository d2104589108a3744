"""Run Yosys, nextpnr and the bitstream packers -- YoWASP builds from PyPI by default -- in a build directory.

Pitfalls handled here:

* A YoWASP tool runs in a WebAssembly sandbox that sees only the directories it is given. Without
  ``YOWASP_MOUNT`` that is the current directory (and its parents); with ``YOWASP_MOUNT`` set, *only* the listed
  mounts. So every tool runs with ``cwd`` = the build directory and is given relative file names; when the user
  has set ``YOWASP_MOUNT`` we add the build directory as a mount and pass absolute names under that mount point.
* The first call of each YoWASP tool compiles it to machine code (about a minute; cached afterwards in the
  YoWASP cache directory). We detect the runtime's "Preparing to run" message and say so, and print a heartbeat
  while a tool runs, so a long first run or a long place-and-route does not look like a hang.
* Native tools can be used instead through ``HWGEN_YOSYS``, ``HWGEN_NEXTPNR_ECP5``, ``HWGEN_NEXTPNR_ICE40``,
  ``HWGEN_ECPPACK``, ``HWGEN_ICEPACK`` (a command name or path).
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ToolError", "ToolNotFound", "Tool", "find_tool", "run_tool", "MOUNT_POINT", "Progress"]

# Where the build directory appears inside the WebAssembly sandbox when the user has set YOWASP_MOUNT.
MOUNT_POINT = "/hwgen_build"

_PROGRESS_PATTERNS = {
    "yosys": [re.compile(r"^\d+\.\d+\. Executing (\w+) pass"), re.compile(r"^\d+\. Executing (\w+) pass")],
    "nextpnr": [re.compile(r"^Info: (Packing \w+|Running main analytical placer|Running placer|"
                           r"Placing \w+|Routing|Running router2|Setting up routing queue|"
                           r"Max frequency for clock [^:]+: [0-9.]+ MHz.*|Device utilisation)")],
}


class ToolError(RuntimeError):
    """A tool exited with an error. ``log_tail`` holds its last lines."""

    def __init__(self, message, *, log_path=None, log_tail=""):
        super().__init__(message + (f"\n--- last lines of {log_path} ---\n{log_tail}" if log_tail else ""))
        self.log_path = log_path
        self.log_tail = log_tail


class ToolNotFound(ToolError):
    pass


@dataclass(frozen=True)
class Tool:
    name: str          # "yosys", "nextpnr-ecp5", ...
    argv0: tuple       # command prefix
    yowasp: bool

    def __str__(self):
        return " ".join(self.argv0)


def _env_override(name):
    return "HWGEN_" + name.upper().replace("-", "_")


def find_tool(name):
    """Locate ``name`` ("yosys", "nextpnr-ecp5", "nextpnr-ice40", "ecppack", "icepack").

    Order: ``$HWGEN_<NAME>`` (native tool), ``yowasp-<name>`` next to the running Python, ``yowasp-<name>`` on PATH.
    """
    override = os.environ.get(_env_override(name))
    if override:
        path = shutil.which(override)
        if path is None:
            raise ToolNotFound(f"{_env_override(name)}={override!r} does not name an executable")
        return Tool(name, (path,), yowasp="yowasp" in Path(path).name)
    candidates = [Path(sys.executable).parent / f"yowasp-{name}"]
    on_path = shutil.which(f"yowasp-{name}")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return Tool(name, (str(candidate),), yowasp=True)
    raise ToolNotFound(
        f"cannot find yowasp-{name}: install the FPGA tools with `pip install 'hwgen[fpga]'` "
        f"(or point {_env_override(name)} at a native {name})")


class Progress:
    """Prints what a running tool is doing: phase changes (rate-limited) and a heartbeat."""

    def __init__(self, stream=None, *, enabled=True, heartbeat_s=30.0, min_gap_s=3.0):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.heartbeat_s = heartbeat_s
        self.min_gap_s = min_gap_s

    def say(self, text):
        if self.enabled:
            print(text, file=self.stream, flush=True)


def _kind(tool_name):
    return "nextpnr" if tool_name.startswith("nextpnr") else tool_name


def tool_environment(tool, build_dir):
    """The environment and the sandbox path of ``build_dir`` (``None``: use relative names) for ``tool``."""
    env = dict(os.environ)
    mount = None
    if tool.yowasp and env.get("YOWASP_MOUNT"):
        env["YOWASP_MOUNT"] = f"{env['YOWASP_MOUNT']}:{MOUNT_POINT}={Path(build_dir).resolve()}"
        mount = MOUNT_POINT
    return env, mount


def file_arg(name, mount):
    """The argument naming file ``name`` (relative to the build directory) for a tool run in it."""
    return f"{mount}/{name}" if mount else str(name)


def run_tool(tool, args, *, build_dir, log_name, progress=None, timeout_s=None, ok_returncodes=(0,)):
    """Run ``tool`` with ``args`` in ``build_dir``; its merged output goes to ``build_dir/log_name``.

    ``args`` is a list, or a callable ``args(mount) -> list`` for file names that depend on the sandbox mount
    (see :func:`file_arg`). Returns the elapsed seconds. Raises :class:`ToolError` on a non-zero exit.
    """
    progress = progress or Progress(enabled=False)
    build_dir = Path(build_dir)
    env, mount = tool_environment(tool, build_dir)
    if callable(args):
        args = args(mount)
    argv = list(tool.argv0) + [str(a) for a in args]
    log_path = build_dir / log_name
    kind = _kind(tool.name)
    patterns = _PROGRESS_PATTERNS.get(kind, [])
    label = f"[{tool.name}]"
    start = time.monotonic()
    progress.say(f"{label} started: {Path(argv[0]).name} {' '.join(argv[1:])}")
    lines = queue.Queue()

    proc = subprocess.Popen(argv, cwd=build_dir, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")

    def reader():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    tail = []
    last_said = start
    phase = None
    with open(log_path, "w", buffering=1) as log:      # line-buffered: the log can be followed live
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                line = ""
            now = time.monotonic()
            if line is None:
                break
            if line:
                log.write(line)
                tail.append(line)
                del tail[:-40]
                if line.startswith("Preparing to run"):
                    progress.say(f"{label} first run: compiling the WebAssembly tool to machine code "
                                 f"(about a minute; cached afterwards in the YoWASP cache directory)")
                    last_said = now
                for pattern in patterns:
                    match = pattern.match(line)
                    if match:
                        phase = match.group(1) if match.groups() else line.strip()
                        if phase.startswith("Max frequency") or now - last_said >= progress.min_gap_s:
                            progress.say(f"{label} {now - start:6.0f}s  {phase}")
                            last_said = now
                        break
            if now - last_said >= progress.heartbeat_s:
                progress.say(f"{label} {now - start:6.0f}s  still running" + (f" ({phase})" if phase else ""))
                last_said = now
            if timeout_s is not None and now - start > timeout_s:
                proc.kill()
                proc.wait()
                proc.stdout.close()
                raise ToolError(f"{tool.name} timed out after {timeout_s:.0f}s", log_path=log_path,
                                log_tail="".join(tail[-20:]))
    returncode = proc.wait()
    thread.join(timeout=5)
    proc.stdout.close()
    elapsed = time.monotonic() - start
    if returncode not in ok_returncodes:
        raise ToolError(f"{tool.name} failed (exit {returncode}) after {elapsed:.0f}s; full log: {log_path}",
                        log_path=log_path, log_tail="".join(tail[-25:]))
    progress.say(f"{label} done in {elapsed:.0f}s (log: {log_path})")
    return elapsed
