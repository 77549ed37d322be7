"""How many CPU threads snncc computes with: ``--threads`` or ``SNNCC_THREADS``, default all cores.

One setting caps both thread pools a run can use: numba's (the compiled engine kernels spread
their samples over it with ``prange``) and the BLAS library's (OpenBLAS behind numpy).

Inside the engines (:func:`snncc.engines.step.simulate`, :func:`~snncc.engines.step.run_ann`)
BLAS is held to one thread. A multi-threaded BLAS splits the sums of a product among its threads,
so float results would change in their last bits with the thread count (measured on the shared
CNNs: spike counts differ between one and two OpenBLAS threads); with one thread they never do,
and no idle BLAS helper busy-waits on a core that a kernel needs. (Integer sums are exact in any
order, but there the products are small and waking BLAS's threads for each cost more than they
saved.) The kernels themselves compute whole samples per thread with the same arithmetic in the
same order: results are the same for every thread count.

:func:`configure` also keeps freed batch memory for reuse (:func:`keep_freed_memory`): the
engines' runtime setup, done once before any compiled kernel runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from snncc.errors import SnnccError

THREADS_ENV = "SNNCC_THREADS"
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# arrays up to this size are served from the heap and reused once freed (see keep_freed_memory)
REUSED_BYTES = 2**28

_configured: int | None = None
_memory_kept: bool | None = None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parse_threads(value: str | int | None, origin: str = THREADS_ENV) -> int | None:
    """``value`` as a thread count >= 1 (``None`` or ``""``: not set); a clear error otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        threads = int(value)
    except ValueError:
        raise SnnccError(f"{origin} must be a whole number of threads, got {value!r}") from None
    if threads < 1:
        raise SnnccError(f"{origin} must be >= 1, got {threads}")
    return threads


def configure(threads: int | None = None) -> int:
    """Cap numba and BLAS at ``threads`` (default: ``$SNNCC_THREADS``, else every core).

    The cap never exceeds the cores available. Returns the thread count in force. Called by the
    CLI for ``--threads`` and, with no argument, by the engines before any compiled kernel runs
    (so numba's threads start here, leaving multiprocessing's start method as it was).
    """
    global _configured
    if threads is None:
        threads = parse_threads(os.environ.get(THREADS_ENV))
    threads = min(threads or available_cores(), available_cores())
    if threads == _configured:
        return threads
    import multiprocessing

    import numba
    from threadpoolctl import threadpool_limits

    unset = multiprocessing.get_start_method(allow_none=True) is None
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # launches its threads
    if unset and multiprocessing.get_start_method(allow_none=True) is not None:
        # numba's launch asks for the start method, which fixes it; leave it unset, as it was,
        # for code that sets it later (lava-nc sets 'fork' when imported, and fails otherwise)
        multiprocessing.set_start_method(None, force=True)
    threadpool_limits(limits=threads, user_api="blas")
    keep_freed_memory()
    _configured = threads
    return threads


def keep_freed_memory() -> bool:
    """Let freed arrays up to ``REUSED_BYTES`` be reused by the next batch (glibc's malloc).

    The engines allocate the same few arrays for every batch (a layer's spikes over a run, a few
    MB each). glibc maps arrays above its mmap threshold fresh from the kernel and unmaps them
    when freed (and trims freed heap above its trim threshold), so each batch page-faults its
    memory in again. On virtual machines a fault is slow: on a 2-core Firecracker VM,
    mnist_cnn_bn_unfused (500 samples, T=32) took 178k faults and 2.4 s per run, 1.4 s once
    the memory was kept. Raising both thresholds keeps it in the heap; peak memory is
    unchanged. Returns whether the allocator took the setting (False elsewhere than glibc).
    """
    global _memory_kept
    if _memory_kept is None:
        import ctypes

        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):  # not glibc
            _memory_kept = False
        else:
            _memory_kept = bool(mallopt(_M_MMAP_THRESHOLD, REUSED_BYTES)) and bool(
                mallopt(_M_TRIM_THRESHOLD, 2 * REUSED_BYTES))
    return _memory_kept


def current() -> int:
    """The thread count in force (configuring from the environment on first use)."""
    return _configured if _configured is not None else configure()


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold BLAS to one thread inside the block (the caller splits work across threads itself)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded thread pools, taken once (numpy's BLAS is loaded with
    numpy): finding them reads the process's memory map, ~2 ms that every simulation paid."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()
