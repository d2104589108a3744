"""Where tasks run: a local process pool by default, a Dask cluster when the user names one.

    with open_pool(workers=2) as pool:                        # concurrent.futures processes on this machine
    with open_pool(cluster="tcp://host:8786") as pool:         # an existing Dask scheduler (dask scheduler / worker)
    with open_pool(cluster="local", workers=2) as pool:        # a Dask LocalCluster started (and stopped) here
        for call, value, error in pool.run(fn, calls):         # calls: [(args, kwargs)], results as they complete
            ...

Both are existing engines; this module only adapts them to one interface. Faults:

- Dask: a task whose worker dies is rescheduled by the scheduler on another worker (up to
  ``distributed.scheduler.allowed-failures`` deaths, then the task fails with `KilledWorker`, which `run`
  yields as its error); a task that raises is retried ``retries`` times (`Client.submit(retries=)`).
- Local pool: when a worker process dies, `concurrent.futures` breaks the whole pool (`BrokenProcessPool`);
  `run` starts a new pool and resubmits every call that had not completed, up to ``retries`` times per call.

The caller (the sweep) stores each result as it arrives, so a worker killed mid-sweep loses nothing that had
completed, and what it was running is run again or reported.
"""

import concurrent.futures as cf
import multiprocessing
import os

from ..errors import ArgumentError, ToolFailure

__all__ = ["open_pool", "LocalPool", "DaskPool", "SerialPool"]


class SerialPool:
    """In this process, one call after another (``workers=0``: debugging, profiling)."""
    kind = "serial"
    workers = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def describe(self):
        return "in process"

    def run(self, fn, calls, *, retries=2):
        for index, (args, kwargs) in enumerate(calls):
            try:
                yield index, fn(*args, **kwargs), None
            except Exception as error:     # reported per call, as the pools do
                yield index, None, error


class LocalPool:
    kind = "local"

    def __init__(self, workers):
        self.workers = workers
        self._pool = None

    def _start(self):
        # forkserver: workers do not inherit the driver's threads (progress bars) or open files.
        context = multiprocessing.get_context("forkserver")
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    def __enter__(self):
        self._start()
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        return False

    def describe(self):
        return f"local process pool of {self.workers}"

    def pids(self):
        """The worker processes' ids (tests kill one)."""
        return [p.pid for p in (self._pool._processes or {}).values()] if self._pool else []

    def run(self, fn, calls, *, retries=2):
        pending = dict(enumerate(calls))
        attempts = {index: 0 for index in pending}
        while pending:
            futures = {self._pool.submit(fn, *args, **kwargs): index for index, (args, kwargs) in pending.items()}
            broken = False
            for future in cf.as_completed(futures):
                index = futures[future]
                try:
                    value = future.result()
                except cf.process.BrokenProcessPool:
                    broken = True
                    continue
                except Exception as error:
                    attempts[index] += 1
                    if attempts[index] <= retries:
                        continue            # resubmitted below
                    del pending[index]
                    yield index, None, error
                    continue
                del pending[index]
                yield index, value, None
            if broken:
                # A worker died (killed, out of memory): every call still pending ran on a broken pool.
                self._pool.shutdown(wait=False, cancel_futures=True)
                for index in list(pending):
                    attempts[index] += 1
                    if attempts[index] > retries:
                        del pending[index]
                        yield index, None, ToolFailure(f"its worker process died {attempts[index]} times")
                self._start()


class DaskPool:
    kind = "dask"

    def __init__(self, cluster, workers=None):
        self.address = cluster
        self.requested_workers = workers
        self.client = self._cluster = None

    def __enter__(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ToolFailure("--cluster needs Dask: pip install 'hwgen[explore]' (dask[distributed])") from None
        if self.address == "local":
            # One single-threaded worker process per core asked for: the tasks are CPU-bound Python and tools.
            self._cluster = LocalCluster(n_workers=self.requested_workers or os.cpu_count() or 1,
                                         threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self._cluster)
        else:
            try:
                self.client = Client(self.address, timeout="20s")
            except OSError as error:
                raise ArgumentError(f"cannot reach the Dask scheduler at {self.address} ({error}); start one with "
                                 f"`dask scheduler` and `dask worker {self.address}`, or use --cluster local") from None
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        return False

    @property
    def workers(self):
        return len(self.client.scheduler_info(n_workers=-1)["workers"]) if self.client else 0

    def describe(self):
        where = "local Dask cluster" if self.address == "local" else f"Dask cluster {self.address}"
        return f"{where} of {self.workers} workers"

    def run(self, fn, calls, *, retries=2):
        from distributed import as_completed
        futures = {}
        for index, (args, kwargs) in enumerate(calls):
            futures[self.client.submit(fn, *args, pure=False, retries=retries, **kwargs)] = index
        for future in as_completed(list(futures)):
            index = futures[future]
            if future.status == "error":
                yield index, None, future.exception()
            else:
                yield index, future.result(), None
            future.release()


def open_pool(*, workers=None, cluster=None):
    """A local process pool of ``workers`` (default: the cores), in process for ``workers=0``, or a Dask pool
    for a ``cluster`` address ("local" starts a LocalCluster of ``workers``)."""
    if cluster:
        return DaskPool(cluster, workers)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers == 0:
        return SerialPool()
    return LocalPool(workers)
