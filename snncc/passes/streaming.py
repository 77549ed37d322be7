"""Exact statistics of values that arrive in chunks: percentiles without holding every value.

:class:`StreamingPercentiles` gives the very numbers ``np.percentile(rows, q, axis=1)`` (numpy's
default ``linear`` method) would give for rows too large to keep in memory (calibration
activations: 2,000 samples x 25,088 neurons per layer). ``np.percentile`` needs two order
statistics per percentile, at ranks ``floor((n - 1) q / 100)`` and the next one; they are found by
radix selection over the float64 bit patterns, mapped to unsigned keys whose order is the order
of the values:

1. A pass over the values counts them per top-16-bit key prefix: that tells which prefix holds
   each wanted rank and the rank inside it.
2. Each further pass either counts the next 16 bits inside the prefixes still too crowded, or,
   once a prefix holds at most ``COLLECT`` values, keeps those values and selects exactly.

Every pass re-reads the values (the caller recomputes them: they are cheap next to memory), so
the memory used is the histograms plus at most ``COLLECT`` values per wanted rank. The
interpolation between the two order statistics copies numpy's formula operation for operation, so
the result is bit-identical (tests compare with ``np.percentile``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

#: A prefix holding at most this many values is collected and selected exactly.
COLLECT = 1 << 22
#: Values turned into keys at a time (bounds the temporaries of :meth:`StreamingPercentiles.add`).
PIECE = 1 << 20
_DIGIT = 16
_BINS = 1 << _DIGIT


def sortable_keys(values: np.ndarray) -> np.ndarray:
    """float64 values -> uint64 keys with the same order (``-0.0`` just below ``+0.0``)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


def percentile_ranks(count: int, percentiles: Iterable[float]) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """numpy's ``linear`` method: ``(previous_rank, next_rank, gamma)`` per percentile."""
    quantiles = np.true_divide(np.asarray(list(percentiles), dtype=np.float64), 100)
    virtual = (count - 1) * quantiles
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= count - 1
    previous[above] = count - 1
    following[above] = count - 1
    below = virtual < 0
    previous[below] = 0
    following[below] = 0
    gamma = virtual - previous
    return previous.astype(np.intp), following.astype(np.intp), gamma


def lerp(low: np.ndarray, high: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's percentile interpolation, operation for operation (``numpy.lib.function_base``)."""
    difference = np.subtract(high, low)
    result = np.asanyarray(np.add(low, difference * gamma))
    np.subtract(high, difference * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe",
                dtype=result.dtype)
    return result


class StreamingPercentiles:
    """Exact ``np.percentile(rows, percentiles, axis=1)`` of ``rows`` (R, n) fed in column chunks.

    Drive it with :func:`run_passes` (or, while not :attr:`done`: :meth:`begin_pass`, every chunk
    of columns in order to :meth:`add`, the same chunks each pass, then :meth:`end_pass`);
    :meth:`result` gives ``(R, len(percentiles))``.
    """

    def __init__(self, rows: int, count: int, percentiles: Iterable[float]) -> None:
        self.rows = rows
        self.count = count
        previous, following, self.gamma = percentile_ranks(count, list(percentiles))
        self.ranks = np.unique(np.concatenate([previous, following]))
        self.previous, self.following = previous, following
        wanted = len(self.ranks)
        # per row and wanted rank: the key prefix found so far, its length in bits, how many
        # values share it, and the wanted rank among them
        self.prefix = np.zeros((rows, wanted), np.uint64)
        self.bits = np.zeros((rows, wanted), np.int64)
        self.size = np.full((rows, wanted), count, np.int64)
        self.inside = np.tile(self.ranks, (rows, 1)).astype(np.int64)
        self.found = np.full((rows, wanted), np.nan)
        self.resolved = np.zeros((rows, wanted), bool)
        self._plan: list[dict] = []

    @property
    def done(self) -> bool:
        return bool(self.resolved.all())

    def begin_pass(self) -> None:
        """Group the open ranks by prefix; a prefix holding few values is collected this pass."""
        groups: dict[tuple[int, int, int], dict] = {}
        for row, index in zip(*np.nonzero(~self.resolved), strict=True):
            key = (int(row), int(self.prefix[row, index]), int(self.bits[row, index]))
            group = groups.setdefault(key, {
                "row": int(row), "prefix": key[1], "bits": key[2], "indices": [],
                "collect": int(self.size[row, index]) <= COLLECT, "values": [],
                "counts": np.zeros(_BINS, np.int64)})
            group["indices"].append(int(index))
        self._plan = list(groups.values())

    def add(self, rows: np.ndarray) -> None:
        """Feed the next columns of every row, ``(R, m)``, in the same order every pass."""
        if rows.shape[1] > PIECE:  # bounded temporaries: the keys of a piece at a time
            for start in range(0, rows.shape[1], PIECE):
                self.add(rows[:, start:start + PIECE])
            return
        keys: dict[int, np.ndarray] = {}
        for group in self._plan:
            row = group["row"]
            if row not in keys:
                keys[row] = sortable_keys(rows[row])
            matching = keys[row]
            if group["bits"]:
                shift = np.uint64(64 - group["bits"])
                matching = matching[(matching >> shift) == np.uint64(group["prefix"])]
            if group["collect"]:
                group["values"].append(matching)
            else:
                digit = (matching >> np.uint64(64 - group["bits"] - _DIGIT)) & np.uint64(_BINS - 1)
                group["counts"] += np.bincount(digit.astype(np.intp), minlength=_BINS)

    def end_pass(self) -> None:
        """Select exactly inside collected prefixes; narrow counted ones by one digit."""
        for group in self._plan:
            row = group["row"]
            if group["collect"]:
                keys = np.sort(np.concatenate(group["values"]))
                for index in group["indices"]:
                    self.found[row, index] = _value_of(keys[self.inside[row, index]])
                    self.resolved[row, index] = True
                continue
            cumulative = np.cumsum(group["counts"])
            for index in group["indices"]:
                digit = int(np.searchsorted(cumulative, self.inside[row, index], side="right"))
                self.inside[row, index] -= int(cumulative[digit - 1]) if digit else 0
                prefix = (group["prefix"] << _DIGIT) | digit
                self.prefix[row, index] = np.uint64(prefix)
                self.bits[row, index] = group["bits"] + _DIGIT
                self.size[row, index] = group["counts"][digit]
                if self.bits[row, index] == 64:  # the whole key is known
                    self.found[row, index] = _value_of(np.uint64(prefix))
                    self.resolved[row, index] = True
        self._plan = []

    def result(self) -> np.ndarray:
        """``(R, len(percentiles))``, as ``np.percentile(rows, percentiles, axis=1).T``."""
        position = {int(rank): i for i, rank in enumerate(self.ranks)}
        low = self.found[:, [position[int(r)] for r in self.previous]]
        high = self.found[:, [position[int(r)] for r in self.following]]
        return lerp(low, high, self.gamma[None, :])


def _value_of(key: np.uint64) -> float:
    """The float64 whose :func:`sortable_keys` key is ``key``."""
    key = np.uint64(key)
    bits = key & ~np.uint64(1 << 63) if key >> np.uint64(63) else ~key
    return float(np.array([bits], np.uint64).view(np.float64)[0])


def run_passes(stats: list[StreamingPercentiles],
               feed: Callable[[Callable[[int, np.ndarray], None]], None]) -> None:
    """Drive ``stats`` to completion: ``feed(add)`` must call ``add(i, rows)`` for every chunk of
    statistic ``i``'s rows, in the same order every time it is called (one call per pass)."""
    while not all(s.done for s in stats):
        for s in stats:
            s.begin_pass()
        feed(lambda i, rows: stats[i].add(rows) if not stats[i].done else None)
        for s in stats:
            if not s.done:
                s.end_pass()
