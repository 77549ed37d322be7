"""Where sweeps and sharded validations run: this process, a local Dask cluster, or a scheduler.

:class:`Executor` runs one function over many items and yields each item's outcome as it
finishes. Rules (the same for every kind of executor):

1. **Kinds.** ``workers=1`` and no scheduler: serially in this process. ``workers=N > 1``: a local
   Dask cluster of ``N`` worker processes with one thread each (BLAS, OpenMP and numba held to one
   thread in each, and Dask's profiler and dashboard housekeeping off, :data:`LOCAL_SETTINGS`, so
   ``N`` workers use ``N`` cores), shut down on exit. ``scheduler=ADDRESS``
   (``tcp://HOST:PORT``, or ``$SNNCC_SCHEDULER``): an existing Dask cluster, whose workers need
   the snncc package and, for datasets with files, the data directory.
2. **Unreachable scheduler**: :class:`SnnccError` after ``timeout`` seconds, never a hang.
3. **Outcomes.** An item's function returns (``Outcome.value``), or raises: a
   :class:`SnnccError` is bad input (a missing data directory on a worker, a bad option value)
   and ends the whole run with that error, after the outcomes already yielded; any other
   exception marks the item failed (``Outcome.error``) and the run goes on.
4. **Worker deaths.** An item whose worker process dies while running it is submitted once
   more; when that worker dies too, the item fails with a message saying so. (A local cluster
   lets its scheduler retry nothing itself; an existing cluster's scheduler applies its own
   ``distributed.scheduler.allowed-failures`` first.) At most one item per worker thread is in
   flight, so a dying worker takes down only the item it was running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from snncc.errors import SnnccError

#: Environment variable naming the default scheduler address.
SCHEDULER_ENV = "SNNCC_SCHEDULER"
#: Seconds to wait for a scheduler before giving up.
SCHEDULER_TIMEOUT = 10.0
#: How many times an item runs when its workers keep dying (rule 4).
ATTEMPTS = 2
#: Environment of local worker processes: one thread per worker for every threaded library.
#: (Dask's default also sets MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's adaptive mmap
#: threshold: every large temporary array is then mapped and unmapped anew, and the simulator
#: spent as much time in page faults as in computing; measured 5.4 s system time per sweep point
#: against 0.2 s in one process.)
#: numba's own NUMBA_NUM_THREADS is left alone: distributed sets these variables in *this*
#: process before spawning (and never restores them), and numba refuses a NUMBA_NUM_THREADS that
#: differs from the pool it already launched; SNNCC_THREADS caps the kernels' threads instead.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "SNNCC_THREADS": "1"}
#: Dask settings of a local cluster (its workers inherit this process's configuration): Dask's
#: housekeeping for a dashboard this cluster does not have took CPU from the points. Its
#: statistical profiler samples every thread's stack each 10 ms (in the workers, in the scheduler
#: and nannies here); the event loops wake every 20 ms for a health check, and every 500 ms for
#: psutil samples. Measured on the 2-core box: a worker's process spent 7-8 % more CPU than the
#: thread computing its point (1-2 % with these settings), and an idle cluster used 4 % of a core
#: per worker plus 5 % in this process (under 1 % and 1.5 %). Work stealing has nothing to steal:
#: at most one item per worker thread is in flight (rule 4). With a scheduler they apply to this
#: process's client only; that cluster's workers keep their own configuration.
LOCAL_SETTINGS = {"distributed.worker.profile.enabled": False,
                  "distributed.admin.tick.interval": "1s",
                  "distributed.admin.system-monitor.interval": "5s",
                  "distributed.scheduler.work-stealing": False}


def _restore_environment(saved: dict[str, str | None]) -> None:
    """Put back this process's variables that spawning local workers overwrote."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _restore_start_method(was_unset: bool) -> None:
    """Leave multiprocessing's start method unset when it was before local workers started.

    Spawning a worker asks the stdlib for the start method (multiprocessing.spawn's
    get_preparation_data), which fixes this process's default to 'fork'; lava-nc sets 'fork'
    itself when first imported and fails ("context has already been set") when it is fixed."""
    import multiprocessing

    if was_unset and multiprocessing.get_start_method(allow_none=True) is not None:
        multiprocessing.set_start_method(None, force=True)


def machine_workers() -> int:
    """Cores this process may use (the default size of a local cluster)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def resolve_scheduler(scheduler: str | None) -> str | None:
    """``scheduler``, else ``$SNNCC_SCHEDULER``, else ``None`` (no external cluster)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


@dataclass
class Outcome:
    """One item's result: ``value`` when it ran, else ``error`` (one line), and ``attempts``."""

    index: int
    value: Any = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor:
    """Runs a function over items serially, on a local Dask cluster or on a scheduler (module
    rules). Use as a context manager; :meth:`run` yields :class:`Outcome` in completion order."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 timeout: float = SCHEDULER_TIMEOUT) -> None:
        if workers is not None and workers < 1:
            raise SnnccError(f"workers must be >= 1, got {workers}")
        if workers is not None and scheduler is not None:
            raise SnnccError("give a number of local workers or a scheduler address, not both")
        if timeout <= 0:
            raise SnnccError(f"scheduler timeout must be > 0 seconds, got {timeout:g}")
        if scheduler is not None and "://" not in scheduler:
            raise SnnccError(f"bad scheduler address {scheduler!r}: expected tcp://HOST:PORT")
        self.workers = workers if workers is not None else (None if scheduler else 1)
        self.scheduler = scheduler
        self.timeout = timeout
        self.client: Any = None
        self._stack = contextlib.ExitStack()

    @property
    def serial(self) -> bool:
        return self.scheduler is None and self.workers == 1

    def describe(self) -> str:
        """``serial``, ``local:N`` or the scheduler address."""
        if self.serial:
            return "serial"
        return self.scheduler if self.scheduler else f"local:{self.workers}"

    def threads(self) -> int:
        """Worker threads available (1 when serial)."""
        if self.serial:
            return 1
        return max(sum(self.client.nthreads().values()), 1)

    def __enter__(self) -> Executor:
        if self.serial:
            return self
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        if not os.environ.get("SNNCC_DEBUG"):
            # worker restarts and lost connections are reported through Outcome, not logs
            for name in ("distributed", "tornado"):
                logger = logging.getLogger(name)
                self._stack.callback(logger.setLevel, logger.level)
                logger.setLevel(logging.CRITICAL)
        saved = {key: os.environ.get(key) for key in WORKER_ENV}
        self._stack.callback(_restore_environment, saved)
        import multiprocessing

        unset = multiprocessing.get_start_method(allow_none=True) is None
        self._stack.callback(_restore_start_method, unset)
        settings = {"distributed.scheduler.allowed-failures": 0,
                    "distributed.nanny.pre-spawn-environ": dict(WORKER_ENV),
                    "distributed.comm.timeouts.connect": f"{self.timeout}s", **LOCAL_SETTINGS}
        self._stack.enter_context(dask.config.set(settings))
        if self.scheduler is not None:
            try:
                self.client = self._stack.enter_context(
                    Client(self.scheduler, timeout=self.timeout, set_as_default=False))
            except (OSError, TimeoutError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise SnnccError(f"scheduler {self.scheduler} unreachable within "
                                 f"{self.timeout:g} s ({reason})") from None
            except ValueError as error:
                raise SnnccError(f"bad scheduler address {self.scheduler!r} ({error})") from None
            if not self.client.nthreads():
                raise SnnccError(f"scheduler {self.scheduler} has no workers")
            return
        with warnings.catch_warnings():
            # no dashboard; the scheduler's small HTTP server warns when port 8787 is taken
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            cluster = self._stack.enter_context(LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=None, silence_logs=logging.CRITICAL))
        self.client = self._stack.enter_context(Client(cluster, set_as_default=False))
        _restore_start_method(unset)  # lava-nc may be imported while the cluster runs

    def run(self, function: Callable[..., Any], items: Iterable[Any], *shared: Any,
            progress: Callable[[int], None] | None = None) -> Iterator[Outcome]:
        """``function(item, *shared)`` for every item; outcomes in completion order (rules 3-4).

        ``shared`` arguments go with every call (not scattered: data held only on workers
        would be lost with them, rule 4). ``progress(1)`` is called after each item.
        """
        items = list(items)
        if self.serial:
            yield from self._run_serial(function, items, shared, progress)
        else:
            yield from self._run_cluster(function, items, shared, progress)

    @staticmethod
    def _run_serial(function: Callable[..., Any], items: list[Any], shared: tuple,
                    progress: Callable[[int], None] | None) -> Iterator[Outcome]:
        for index, item in enumerate(items):
            try:
                outcome = Outcome(index, value=function(item, *shared))
            except SnnccError:
                raise
            except Exception as error:  # noqa: BLE001 - rule 3: the item fails, the run goes on
                outcome = Outcome(index, error=describe_error(error))
            if progress is not None:
                progress(1)
            yield outcome

    def _run_cluster(self, function: Callable[..., Any], items: list[Any], shared: tuple,
                     progress: Callable[[int], None] | None) -> Iterator[Outcome]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        pending = list(range(len(items)))[::-1]  # a stack: pop() takes the next index
        attempts = dict.fromkeys(range(len(items)), 0)
        running = as_completed(loop=self.client.loop)
        owner: dict[str, int] = {}

        def submit(index: int) -> None:
            attempts[index] += 1
            future = self.client.submit(function, items[index], *shared, pure=False)
            owner[future.key] = index
            running.add(future)

        for _ in range(min(self.threads(), len(pending))):
            submit(pending.pop())
        try:
            for future in running:
                index = owner.pop(future.key)
                try:
                    outcome = Outcome(index, value=future.result(), attempts=attempts[index])
                except SnnccError:
                    raise
                except KilledWorker:
                    if attempts[index] < ATTEMPTS:
                        submit(index)
                        continue
                    outcome = Outcome(index, error=f"the worker running it died, {ATTEMPTS} "
                                      "times", attempts=attempts[index])
                except Exception as error:  # noqa: BLE001 - rule 3
                    outcome = Outcome(index, error=describe_error(error),
                                      attempts=attempts[index])
                if pending:
                    submit(pending.pop())
                if progress is not None:
                    progress(1)
                yield outcome
        finally:
            for future in list(running.futures):
                future.cancel()


def describe_error(error: BaseException) -> str:
    """An exception as one line: ``Type: first line of the message``."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


# ------------------------------------------------------------------------- sharded validation

#: Shards per worker thread: several, so the progress bar moves and a slow shard evens out.
SHARDS_PER_THREAD = 4


def shard_bounds(samples: int, rows: int, shards: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges covering ``samples`` in about ``shards`` pieces, each starting at
    a multiple of ``rows`` (the simulator's batch, so a sharded run evaluates exactly the
    batches of one whole run; see :func:`snncc.engines.step.batch_rows`)."""
    rows = max(int(rows), 1)
    batches = -(-samples // rows)
    per_shard = max(-(-batches // max(shards, 1)), 1) * rows
    return [(start, min(start + per_shard, samples)) for start in range(0, samples, per_shard)]


def run_shard(bounds: tuple[int, int], graph: Any, dataset: str, data_dir: str | None,
              timesteps: int) -> Any:
    """snncc's engines (the ``sim`` target) on test samples ``[start, stop)``, read from the
    worker's data directory; rate coding seeded by the global sample index."""
    from snncc import engines
    from snncc.datasets import Dataset, load_dataset
    from snncc.loading import model_inputs

    start, stop = bounds
    test = load_dataset(dataset, "test", data_dir)  # read once per worker process
    if stop > len(test):
        raise SnnccError(f"dataset {dataset!r} on a worker has {len(test)} test samples, "
                         f"fewer than the {stop} this run needs (different data directory?)")
    part = Dataset(test.name, test.split, test.images[start:stop], test.labels[start:stop])
    return engines.run(graph, model_inputs(graph, part), timesteps, labels=part.labels,
                       sample_offset=start)


def simulate_sharded(executor: Executor, graph: Any, *, dataset: str, data_dir: str | None,
                     samples: int, timesteps: int,
                     progress: Callable[[int], None] | None = None) -> Any:
    """The ``sim`` target's run over the first ``samples`` test samples, split into shards run
    by ``executor``; the joined :class:`~snncc.engines.SimResult` equals one whole run's.

    A shard that fails (rule 3/4 of this module) fails the whole run with a
    :class:`SnnccError`: a validation with samples missing would be wrong, not partial.
    """
    from snncc.engines import SimResult
    from snncc.engines.step import batch_rows

    bounds = shard_bounds(samples, batch_rows(graph.infer_shapes(), timesteps),
                          executor.threads() * SHARDS_PER_THREAD)
    parts: dict[int, Any] = {}
    for outcome in executor.run(run_shard, bounds, graph, dataset, data_dir, timesteps):
        start, stop = bounds[outcome.index]
        if not outcome.ok:
            raise SnnccError(f"samples {start}..{stop - 1} could not be simulated: "
                             f"{outcome.error}")
        parts[outcome.index] = outcome.value
        if progress is not None:
            progress(stop - start)
    return SimResult.concatenate([parts[index] for index in range(len(bounds))])
