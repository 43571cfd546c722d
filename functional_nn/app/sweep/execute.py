"""Executors: they only schedule ``run_trial``; the trial function is the same through each.

- ``LocalPool``: a spawned process pool (``--workers N``), each worker's BLAS limited to ``--threads-per-worker``
  threads while a trial runs; workers ignore SIGINT while idle. A worker that dies breaks Python's pool: the trials
  then in flight are handed back as ``Lost``, its surviving workers are killed, and a fresh pool takes the rest.
- ``DaskClient``: a ``distributed.Client`` on ``--scheduler ADDRESS`` or on a ``LocalCluster`` of
  ``--local-cluster N`` worker processes. Dask reschedules the trials of a lost worker itself; a trial that kills
  its workers too often comes back as ``KilledWorker``.

Both offer ``submit(fn, *args) -> handle``, ``wait(handles, timeout) -> done``, ``outcome(handle)`` (the record, or
``Lost(error)``), ``interrupt(signum)`` and ``capacity``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal

import attrs

from functional_nn.app.settings import UsageError

CLUSTER_HINT = ("--scheduler and --local-cluster need the cluster extra (Dask distributed): "
                "python -m pip install 'functional-nn[cluster]'")


@attrs.frozen
class Lost:
    """A trial whose worker was lost (killed, crashed) or that could not be scheduled."""
    error: str


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C reaches a trial through fnn train's own handler


class LocalPool:
    def __init__(self, workers: int):
        self.capacity = workers
        self._pool = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(self.capacity, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_worker_init)

    def submit(self, fn, *args):
        try:
            return self._pool.submit(fn, *args)
        except cf.process.BrokenProcessPool:            # a worker died since the last submission: a fresh pool
            self._abandon()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(fn, *args)

    @staticmethod
    def wait(handles, timeout: float):
        return cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED).done

    def outcome(self, handle):
        try:
            return handle.result()
        except cf.process.BrokenProcessPool as e:
            self._abandon()
            return Lost(f"the worker process was lost ({e})")
        except Exception as e:                          # noqa: BLE001 - a pickling or scheduling fault
            return Lost(f"{type(e).__name__}: {e}")

    def pids(self) -> list[int]:
        return list(getattr(self._pool, "_processes", None) or {})

    def _abandon(self) -> None:
        """Kill the workers of a broken pool. Their trials were all handed back as lost, and the pool's own
        clean-up joins them (on Python 3.13 while holding the lock that ``submit`` takes): a survivor still in
        its trial would hold the sweep up until that trial ended, or for ever."""
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                process.kill()

    def interrupt(self, signum: int, handles) -> None:
        """Pass the signal on to the workers: a running trial stops after its batch (status cancelled)."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)

    def close(self) -> None:
        if getattr(self._pool, "_broken", False):
            self._abandon()
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskClient:
    def __init__(self, *, scheduler: str | None, local_cluster: int | None):
        try:
            import distributed
        except ImportError:
            raise UsageError(CLUSTER_HINT) from None
        self._distributed = distributed
        self._cluster = None
        if local_cluster:
            import dask
            from functional_nn.app.malloc import MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which keeps fnn's own allocator tuning out and
            # makes a trial about 1.5x slower (freed arrays page-faulted back in every step); give them fnn's
            environ = {"MALLOC_TRIM_THRESHOLD_": MALLOC_TRIM_THRESHOLD, "MALLOC_MMAP_THRESHOLD_": MALLOC_MMAP_THRESHOLD}
            with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}):
                self._cluster = distributed.LocalCluster(n_workers=local_cluster, threads_per_worker=1,
                                                         processes=True, dashboard_address=None)
            self.client = distributed.Client(self._cluster)
        else:
            try:
                self.client = distributed.Client(scheduler, timeout="30s")
            except (OSError, TimeoutError, asyncio.TimeoutError) as e:     # the two differ before Python 3.11
                raise UsageError(f"--scheduler {scheduler}: cannot connect ({e})") from None
        self.capacity = 1 << 30                          # the scheduler balances: everything is submitted at once

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait(self, handles, timeout: float):
        try:
            return self._distributed.wait(list(handles), timeout=timeout, return_when="FIRST_COMPLETED").done
        except (TimeoutError, asyncio.TimeoutError):      # distributed raises asyncio's, not the builtin, on 3.10
            return set()

    def outcome(self, handle):
        try:
            return handle.result()
        except Exception as e:                          # noqa: BLE001 - KilledWorker, CancelledError, ...
            return Lost(f"{type(e).__name__}: {e}"[:500])

    def pids(self) -> list[int]:
        return sorted(self.client.run(os.getpid).values())

    def interrupt(self, signum: int, handles) -> None:
        """Cancel the trials (a LocalCluster's workers are closed with it; a remote worker finishes its trial)."""
        with contextlib.suppress(Exception):
            self.client.cancel(list(handles))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


def executor(*, workers: int, scheduler: str | None, local_cluster: int | None):
    """The local pool, or a Dask client when ``scheduler`` or ``local_cluster`` is given."""
    if scheduler or local_cluster:
        return DaskClient(scheduler=scheduler, local_cluster=local_cluster)
    return LocalPool(workers)


__all__ = ["CLUSTER_HINT", "DaskClient", "LocalPool", "Lost", "executor"]
