"""Per-patient fan-out, pure: one function mapped over many items (one patient each) on a local
process pool or a Dask distributed cluster, with the same semantics on both.

`open_compute(backend, ...)` is a context manager giving a `Compute` whose
`map_patients(fn, items)` yields `(item, result)` or `(item, exception)` per item, in completion
order (`collect` puts them back in input order). `fn` and the items must be picklable (a
module-level function and plain data): they travel to other processes or machines.

Faults:
- `fn` raising: that item's exception is yielded; the others proceed.
- A worker killed mid-patient: the patients it held are retried once, then each is yielded as a
  `WorkerLost` naming the reason. Local: a `BrokenProcessPool` is detected, the pool rebuilt, and
  the suspects are retried one at a time (so a patient that kills its worker alone is the one
  recorded). Dask: the scheduler reschedules the task (`retries=1`); `KilledWorker` -> `WorkerLost`.
- The Dask scheduler unreachable: `ComputeUnavailable` naming the address, before any work.
- The data root not visible from a worker: `ComputeUnavailable` naming the path and the worker
  (a cheap probe task on every worker, before any work).

Never imports Dagster.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import socket
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

BACKENDS = ("local", "dask")
CONNECT_TIMEOUT_S = 10.0


class ComputeUnavailable(RuntimeError):
    """The compute backend cannot start: scheduler unreachable, no worker, data root not visible."""


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory) while it held this patient, twice."""


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_INITIALIZED: set[str] = set()


def _init_key(initializer: Callable) -> str:
    """Identity of an initializer across tasks: its qualified name, plus the arguments of a
    `functools.partial` (e.g. another model checkpoint is another initialization)."""
    if isinstance(initializer, functools.partial):
        return f"{_init_key(initializer.func)}{initializer.args!r}{sorted(initializer.keywords.items())!r}"
    return f"{initializer.__module__}.{initializer.__qualname__}"


class _WithInit:
    """`fn` that first runs `initializer` once per process (Dask workers have no pool initializer)."""

    def __init__(self, fn: Callable, initializer: Callable | None):
        self.fn, self.initializer = fn, initializer

    def __call__(self, item):
        if self.initializer is not None:
            key = _init_key(self.initializer)
            if key not in _INITIALIZED:
                self.initializer()
                _INITIALIZED.add(key)
        return self.fn(item)


def probe_root(path: str) -> tuple[str, bool]:
    """(this worker's host name, whether `path` is a readable directory here): the probe task."""
    return socket.gethostname(), os.path.isdir(path) and os.access(path, os.R_OK)


class Compute(ABC):
    """Base: `map_patients(fn, items, initializer=None)` -> iterator of (item, result | exception)."""

    name = "base"
    workers = 1

    @abstractmethod
    def map_patients(self, fn: Callable, items: Iterable[Any], *, initializer: Callable | None = None
                     ) -> Iterator[tuple[Any, Any]]:  # fmt: skip
        """Yield (item, result or the exception it raised) per item; a lost worker gives `WorkerLost`."""

    def describe(self) -> str:
        return self.name


class LocalCompute(Compute):
    """A process pool on this machine ("spawn" by default, `initializer` once per worker process);
    workers <= 1 (or one item) runs in this process, without the initializer."""

    name = "local"

    def __init__(self, workers: int | None = None, mp_context: str = "spawn", max_tasks_per_child: int | None = None):
        self.workers = max(1, workers or usable_cpus())
        self.mp_context, self.max_tasks_per_child = mp_context, max_tasks_per_child

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker(s)"

    def map_patients(self, fn, items, *, initializer=None):
        items = list(items)
        if self.workers <= 1 or len(items) <= 1:  # in this process: not a worker, no initializer
            for item in items:
                try:
                    yield item, fn(item)
                except Exception as exc:  # one patient's failure is its result; the others proceed
                    yield item, exc
            return
        yield from self._pooled(fn, items, initializer, min(self.workers, len(items)))

    def _pool(self, size: int, initializer):
        context = multiprocessing.get_context(self.mp_context)
        return ProcessPoolExecutor(size, mp_context=context, initializer=initializer,
                                   max_tasks_per_child=self.max_tasks_per_child)  # fmt: skip

    def _pooled(self, fn, items, initializer, size):
        todo = deque(range(len(items)))
        retry: deque[int] = deque()  # suspects of a broken pool, retried one at a time
        deaths = [0] * len(items)  # deaths known to be the patient's own (it was alone in flight)
        pool = self._pool(size, initializer)
        running: dict = {}
        try:
            while todo or retry or running:
                if retry:  # isolation: a suspect runs alone, so a death is then its own
                    if not running:
                        i = retry.popleft()
                        running[pool.submit(fn, items[i])] = i
                else:
                    while todo and len(running) < size:  # at most `size` in flight: they are the suspects
                        i = todo.popleft()
                        running[pool.submit(fn, items[i])] = i
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = []
                for future in done:
                    i = running.pop(future)
                    try:
                        yield items[i], future.result()
                    except BrokenProcessPool:
                        broken.append(i)
                    except Exception as exc:
                        yield items[i], exc
                if broken:
                    broken += [running.pop(f) for f in list(running)]  # the pool is gone: all in flight
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._pool(size, initializer)
                    alone = len(broken) == 1  # else the culprit is unknown: none of them is blamed yet
                    for i in sorted(broken):
                        deaths[i] += alone
                        if deaths[i] >= 2:  # died alone, was retried alone, and died again
                            yield items[i], WorkerLost("worker process died twice while processing this patient "
                                                       "(killed or out of memory); gave up after one retry")  # fmt: skip
                        else:
                            retry.append(i)
        except BaseException:  # a bug or Ctrl-C: do not wait for the queued patients
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


class DaskCompute(Compute):
    """Tasks on a Dask distributed cluster at `address` (`dask scheduler` + `dask worker`)."""

    name = "dask"

    def __init__(self, client, address: str):
        self.client, self.address = client, address
        self.workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))

    def describe(self) -> str:
        return f"dask scheduler {self.address}, {self.workers} worker(s)"

    def check_root(self, path: str) -> None:
        """ComputeUnavailable naming the path and worker(s) that cannot see `path`."""
        seen = self.client.run(probe_root, str(path))
        blind = [f"{worker} (host {host})" for worker, (host, ok) in sorted(seen.items()) if not ok]
        if blind:
            raise ComputeUnavailable(f"data root {path} is not visible from Dask worker(s) {', '.join(blind)} "
                                     f"of scheduler {self.address}: mount it at the same path on every worker")  # fmt: skip

    def map_patients(self, fn, items, *, initializer=None):
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        items = list(items)
        if not items:
            return
        call = _WithInit(fn, initializer)
        futures = self.client.map(call, items, retries=1, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            with self.client.as_current():  # as_completed looks up the current client
                pending = as_completed(futures)
            for future in pending:
                i = index[future.key]
                if future.status == "finished":
                    yield items[i], future.result()
                    continue
                exc = future.exception()
                if isinstance(exc, KilledWorker):
                    exc = WorkerLost(f"Dask worker died while processing this patient, also on retry: {exc}")
                yield items[i], exc
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def connect_dask(address: str, timeout: float = CONNECT_TIMEOUT_S):
    """A `distributed.Client` at `address` with at least one worker, or ComputeUnavailable naming it."""
    if not address:
        raise ComputeUnavailable("backend 'dask' needs a scheduler address (e.g. tcp://10.0.0.5:8786)")
    from distributed import Client

    # A busy scheduler can garble the first handshake (distributed's `assert len(msg) == 1` when
    # many runs connect at once), so a failed connection is retried until `timeout` has passed.
    deadline, attempt = time.monotonic() + timeout, 0
    while True:
        attempt += 1
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
            break
        except Exception as exc:
            if time.monotonic() + 1.0 >= deadline:
                raise ComputeUnavailable(f"Dask scheduler {address} unreachable after {attempt} attempt(s): "
                                         f"{type(exc).__name__}: {exc}") from exc  # fmt: skip
            time.sleep(min(1.0 * attempt, 3.0))
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception as exc:
        client.close()
        raise ComputeUnavailable(f"Dask scheduler {address} has no worker (waited {timeout:.0f} s)") from exc
    return client


@contextmanager
def open_compute(backend: str = "local", *, workers: int | None = None, scheduler_address: str = "",
                 data_root: str | None = None, **local_options) -> Iterator[Compute]:  # fmt: skip
    """A `Compute` for `backend` ("local" | "dask"), checked before any work, closed on exit.

    Raises:
        ValueError: unknown backend.
        ComputeUnavailable: dask scheduler unreachable or without workers, or `data_root` not
            visible from a worker.
    """
    if backend == "local":
        yield LocalCompute(workers, **local_options)
        return
    if backend != "dask":
        raise ValueError(f"compute backend {backend!r}: use one of {', '.join(BACKENDS)}")
    client = connect_dask(scheduler_address)
    try:
        compute = DaskCompute(client, scheduler_address)
        if data_root is not None:
            compute.check_root(str(data_root))
        yield compute
    finally:
        client.close()


def collect(pairs: Iterable[tuple[Any, Any]], items: list) -> list[tuple[Any, Any]]:
    """`map_patients`' pairs back in the order of `items` (both backends yield the caller's own item objects)."""
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(pairs, key=lambda pair: order[id(pair[0])])
