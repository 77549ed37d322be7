"""Leaky neurons (:class:`snncc.ir.LIF`, :class:`snncc.ir.CubaLIF`) for the step engine.

The recurrence runs in a compiled kernel over all steps of a batch, sample by sample, computing
exactly :func:`snncc.semantics.leaky_update` (``tests/engines/test_golden.py`` checks every
spike). Float mode keeps float32 state (like the IF kernels), integer mode int64 with Loihi's
truncating decays, the current wrap and the membrane saturation.
"""

from __future__ import annotations

import numba
import numpy as np

from snncc import ir


def run_leaky(node: ir.LIF | ir.CubaLIF, shape: ir.Shape, current: np.ndarray, timed: bool,
              timesteps: int, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """The node's spikes ``(T, N, *shape)`` uint8 and spike counts per neuron ``(N, *shape)``.

    ``current`` is ``(T, N, *shape)`` when ``timed``, else ``(N, *shape)`` (the same every step).
    """
    size = int(np.prod(shape))
    dtype = np.int64 if integer else np.float32

    def per_neuron(values: np.ndarray, what: str) -> np.ndarray:
        return np.ascontiguousarray(ir.broadcast_per_neuron(values, shape, what),
                                    np.float64).reshape(-1)

    threshold = per_neuron(node.threshold, "threshold")
    v_init = per_neuron(node.v_init, "v_init")
    du, dv = per_neuron(node.du, "du"), per_neuron(node.dv, "dv")
    if integer:
        threshold = threshold.astype(np.int64) << ir.LEAKY_SHIFT
        v_init = v_init.astype(np.int64) << ir.LEAKY_SHIFT
        # integer kernels multiply by what is kept, 4096 - d (exact int64)
        keep_u = (ir.DECAY_UNITY - du).astype(np.int64)
        keep_v = (ir.DECAY_UNITY - dv).astype(np.int64)
    else:
        keep_u = (1.0 - du / ir.DECAY_UNITY).astype(np.float32)
        keep_v = (1.0 - dv / ir.DECAY_UNITY).astype(np.float32)
        threshold, v_init = threshold.astype(np.float32), v_init.astype(np.float32)
    batch = current.shape[1] if timed else current.shape[0]
    steps = current if timed else current[None]
    steps = np.ascontiguousarray(steps.reshape(steps.shape[0], batch, size), dtype=dtype)
    spikes = np.zeros((timesteps, batch, size), np.uint8)
    totals = np.zeros((batch, size), np.int64)
    rule = (node.reset == "subtract", node.reset_delay, node.comparison == ">")
    if integer:
        _leaky_integer_kernel(steps, v_init, threshold, keep_u, keep_v, *rule, spikes, totals)
    else:
        _leaky_float_kernel(steps, v_init, threshold, keep_u, keep_v, *rule, spikes, totals)
    return (spikes.reshape((timesteps, batch) + tuple(shape)),
            totals.reshape((batch,) + tuple(shape)))


@numba.njit(cache=True, nogil=True)
def _leaky_float_kernel(current, v_init, threshold, keep_u, keep_v, subtract, delayed, strict,
                        spikes, totals):  # pragma: no cover - compiled
    """Float mode: ``u = keep_u u + x``, ``v = keep_v v + u`` (- threshold after a spike with
    ``delayed``), spike on ``v > threshold`` (``strict``) or ``>=``, same-step reset unless
    ``delayed``. ``current`` (Tc, N, F), Tc = T or 1; ``spikes`` (T, N, F); ``totals`` (N, F)."""
    steps, samples, neurons = spikes.shape
    repeat = current.shape[0] == 1
    for n in range(samples):
        v = v_init.copy()
        u = np.zeros(neurons, np.float32)
        pending = np.zeros(neurons, np.bool_)
        for t in range(steps):
            row = current[0 if repeat else t, n]
            out = spikes[t, n]
            for f in range(neurons):
                u[f] = u[f] * keep_u[f] + row[f]
                value = v[f] * keep_v[f] + u[f]
                if delayed and pending[f]:
                    value -= threshold[f]
                crossed = value > threshold[f] if strict else value >= threshold[f]
                if crossed:
                    out[f] = 1
                    totals[n, f] += 1
                    if not delayed:
                        value = value - threshold[f] if subtract else np.float32(0.0)
                pending[f] = crossed
                v[f] = value


@numba.njit(cache=True, nogil=True)
def _decay(x, keep):  # pragma: no cover - compiled
    """Loihi's truncating decay ``sign(x) * ((|x| * keep) >> 12)``."""
    if x >= 0:
        return (x * keep) >> 12
    return -(((-x) * keep) >> 12)


@numba.njit(cache=True, nogil=True)
def _leaky_integer_kernel(current, v_init, threshold, keep_u, keep_v, subtract, delayed, strict,
                          spikes, totals):  # pragma: no cover - compiled
    """Integer mode (Loihi CUBA): ``u = wrap(decay(u) + 64 x)``, ``v = clip(decay(v) + u [- T64
    after a spike, delayed], +-(2**23 - 1))``; ``threshold`` and ``v_init`` arrive x64."""
    steps, samples, neurons = spikes.shape
    repeat = current.shape[0] == 1
    wrap = 1 << 23
    v_max = (1 << 23) - 1
    for n in range(samples):
        v = v_init.copy()
        u = np.zeros(neurons, np.int64)
        pending = np.zeros(neurons, np.bool_)
        for t in range(steps):
            row = current[0 if repeat else t, n]
            out = spikes[t, n]
            for f in range(neurons):
                value_u = _decay(u[f], keep_u[f]) + (row[f] << 6)
                if value_u > wrap:
                    value_u -= 2 * wrap
                elif value_u <= -wrap:
                    value_u += 2 * wrap
                u[f] = value_u
                value = _decay(v[f], keep_v[f]) + value_u
                if delayed and pending[f]:
                    value -= threshold[f]
                value = min(max(value, -v_max), v_max)
                crossed = value > threshold[f] if strict else value >= threshold[f]
                if crossed:
                    out[f] = 1
                    totals[n, f] += 1
                    if not delayed:
                        value = value - threshold[f] if subtract else 0
                pending[f] = crossed
                v[f] = value
