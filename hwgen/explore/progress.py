"""Progress on long work (sweeps, synthesis, simulation of many layers): a rich progress bar with the count,
the elapsed time and an estimate of the time left, on a terminal only - off a terminal (CI, a pipe, a log file)
nothing is drawn."""

import sys

__all__ = ["progress"]


class _Quiet:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def task(self, description, total):
        return _QuietTask()


class _QuietTask:
    def advance(self, n=1, description=None):
        pass


class _Rich:
    def __init__(self, stream):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                                  console=Console(file=stream), transient=False)

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def task(self, description, total):
        progress = self._progress
        task_id = progress.add_task(description, total=total)

        class Task:
            def advance(self, n=1, description=None):
                progress.update(task_id, advance=n, **({"description": description} if description else {}))
        return Task()


def progress(enabled=None, stream=None):
    """A context whose ``task(description, total)`` returns an object with ``advance()``. ``enabled=None``:
    draw only when ``stream`` (default stderr) is a terminal."""
    stream = stream or sys.stderr
    if enabled is None:
        enabled = hasattr(stream, "isatty") and stream.isatty()
    if not enabled:
        return _Quiet()
    try:
        return _Rich(stream)
    except ImportError:
        return _Quiet()
