"""Input encoders: what the network sees at each step, shared by every backend and by training.

All functions take *preprocessed* values ``x`` (see :meth:`snncc.ir.Input.preprocess`) shaped
``(batch, *shape)``. Every backend and the BSTDG trainer call these functions, so spike times and
rate spikes are identical everywhere.
"""

from __future__ import annotations

import numpy as np

NEVER = -1  #: spike time of an input that never spikes


def latency_spike_times(x: np.ndarray, t_max: int) -> np.ndarray:
    """Time-to-first-spike coding: ``floor((1 - x) * (t_max - 1))`` for ``x > 0``, else ``NEVER``.

    ``x`` is clipped to [0, 1] first, so brighter inputs spike earlier and ``x = 1`` spikes at 0.
    Returns int64 spike steps in ``[0, t_max - 1]`` or ``NEVER``.
    """
    clipped = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    times = np.floor((1.0 - clipped) * (t_max - 1)).astype(np.int64)
    return np.where(clipped > 0.0, times, NEVER)


def rate_uniforms(sample_indices: np.ndarray, shape: tuple[int, ...], timesteps: int,
                  seed: int) -> np.ndarray:
    """The uniform draws behind rate coding: ``(timesteps, batch, *shape)``.

    Sample ``k`` (its index in the whole evaluated set) draws all its steps from
    ``numpy.random.default_rng([seed, k])``, so results do not depend on batching.
    """
    draws = np.empty((timesteps, len(sample_indices)) + tuple(shape))
    for position, index in enumerate(sample_indices):
        rng = np.random.default_rng([seed, int(index)])
        draws[:, position] = rng.random((timesteps,) + tuple(shape))
    return draws


def rate_spikes(x: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Bernoulli rate coding for all steps: ``s[t] = u[t] < clip(x, 0, 1)`` as uint8."""
    return (uniforms < np.clip(x, 0.0, 1.0)[None]).astype(np.uint8)


def latency_spikes(x: np.ndarray, timesteps: int, t_max: int | None = None) -> np.ndarray:
    """Latency coding as a raster ``(timesteps, batch, *shape)`` of 0/1 (uint8)."""
    times = latency_spike_times(x, t_max or timesteps)
    steps = np.arange(timesteps).reshape((-1,) + (1,) * times.ndim)
    return (times[None] == steps).astype(np.uint8)
