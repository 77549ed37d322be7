"""Input encoders shared by all backends."""

from __future__ import annotations

import numpy as np

from snncc import coding


def test_latency_times_formula():
    x = np.array([[1.0, 0.5, 0.0, 1 / 255, 2.0, -1.0]])
    times = coding.latency_spike_times(x, 256)
    assert times.tolist() == [[0, 127, coding.NEVER, 254, 0, coding.NEVER]]


def test_latency_raster_one_spike_per_active_input():
    x = np.random.default_rng(0).random((3, 10))
    raster = coding.latency_spikes(x, 16)
    assert raster.shape == (16, 3, 10)
    assert (raster.sum(axis=0) == 1).all()


def test_rate_spikes_do_not_depend_on_batching():
    x = np.random.default_rng(1).random((6, 4))
    whole = coding.rate_spikes(x, coding.rate_uniforms(np.arange(6), (4,), 50, seed=3))
    part = coding.rate_spikes(x[2:5], coding.rate_uniforms(np.arange(2, 5), (4,), 50, seed=3))
    np.testing.assert_array_equal(whole[:, 2:5], part)
    # the firing rate approximates the clipped value
    many = coding.rate_spikes(x, coding.rate_uniforms(np.arange(6), (4,), 4000, seed=0))
    assert np.abs(many.mean(axis=0) - x).max() < 0.05
