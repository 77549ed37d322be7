"""Exact statistics of chunked values (snncc.passes.streaming) and the bias-correction mean."""

from __future__ import annotations

import numpy as np
import pytest

from snncc.passes import streaming
from snncc.passes.convert import MSE_PERCENTILES, _BatchStore, _ChannelMean


def _streamed(rows: np.ndarray, percentiles: list[float], chunk: int) -> np.ndarray:
    stats = streaming.StreamingPercentiles(rows.shape[0], rows.shape[1], percentiles)

    def feed(add) -> None:
        for start in range(0, rows.shape[1], chunk):
            add(0, rows[:, start:start + chunk])

    streaming.run_passes([stats], feed)
    return stats.result()


@pytest.mark.parametrize("case", ["relu", "mostly_zero", "ties", "negative", "per_channel"])
@pytest.mark.parametrize("collect", [50, 1 << 20])  # many radix passes / collected at once
def test_streamed_percentiles_equal_numpy_bit_for_bit(case, collect, monkeypatch):
    monkeypatch.setattr(streaming, "COLLECT", collect)
    rng = np.random.default_rng(len(case))
    rows = np.maximum(rng.normal(size=(1, 30_001)), 0)
    if case == "mostly_zero":
        rows[:, :29_000] = 0
    elif case == "ties":
        rows = np.round(rows * 3) / 3
    elif case == "negative":
        rows = -rows * 1e-200 + rng.normal(size=rows.shape)
    elif case == "per_channel":
        rows = np.maximum(rng.normal(size=(4, 5_000)) * [[1e-3], [1], [10], [1e6]], 0)
    for percentiles in (MSE_PERCENTILES, [99.9], [0, 50, 100]):
        expected = np.percentile(rows, percentiles, axis=1).T
        np.testing.assert_array_equal(_streamed(rows, percentiles, chunk=997), expected)


def test_sortable_keys_order_like_the_values():
    values = np.array([-np.inf, -3.5, -1e-300, -0.0, 0.0, 1e-300, 2.0, np.inf])
    keys = streaming.sortable_keys(values)
    assert np.all(np.diff(keys.astype(np.float64)) >= 0) and np.all(keys[1:] > keys[:-1])
    for value, key in zip(values, keys, strict=True):
        assert streaming._value_of(key) == value


@pytest.mark.parametrize("shape", [(37, 5, 7, 9), (50, 16, 14, 14), (13, 3, 1, 1), (41, 256)])
@pytest.mark.parametrize("batch", [1, 10, 16])
def test_channel_mean_sums_in_numpys_order(shape, batch):
    rng = np.random.default_rng(1)
    error = rng.normal(size=shape) * rng.integers(0, 2, size=shape)
    mean = _ChannelMean(shape[1:])
    channels_last = np.moveaxis(np.ascontiguousarray(np.moveaxis(error, 1, -1)), -1, 1)
    for start in range(0, len(error), batch):  # the layout the ANN's conv output has
        mean.add(channels_last[start:start + batch])
    axes = (0,) + tuple(range(2, error.ndim))
    np.testing.assert_array_equal(mean.result(), error.mean(axis=axes))


def test_batch_store_round_trips_spikes_packed_and_values_raw(tmp_path):
    rng = np.random.default_rng(2)
    spikes = (rng.random((13, 6, 16, 16)) < 0.3).astype(np.uint8)
    currents = rng.normal(size=(3, 7)).astype(np.float32)
    store = _BatchStore(tmp_path, timesteps=13)
    assert store.load(0) == {}
    store.save(0, {"if1": spikes, "static": currents})
    loaded = store.load(0)
    np.testing.assert_array_equal(loaded["if1"], spikes)
    np.testing.assert_array_equal(loaded["static"], currents)
    assert loaded["static"].dtype == np.float32
    assert (tmp_path / "0.npz").stat().st_size < spikes.nbytes  # bit-packed
