"""Sharded simulation: shards seeded by the global sample index give one whole run's results."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import raw_samples

from snncc.cluster import Executor, shard_bounds, simulate_sharded
from snncc.engines import SimResult, simulate
from snncc.engines.step import batch_rows


def rate_coded(graph):
    graph = graph.copy()
    graph.input.coding = "rate"
    return graph


def assert_same(first: SimResult, second: SimResult) -> None:
    np.testing.assert_array_equal(first.predictions, second.predictions)
    np.testing.assert_array_equal(first.synops, second.synops)
    np.testing.assert_array_equal(first.readout_state, second.readout_state)
    assert first.spike_counts.keys() == second.spike_counts.keys()
    for name in first.spike_counts:
        np.testing.assert_array_equal(first.spike_counts[name], second.spike_counts[name])


def test_shards_with_their_offset_equal_one_run_and_without_it_do_not(snn_mlp):
    graph = rate_coded(snn_mlp)
    samples = raw_samples(graph, 300, seed=3)
    whole = simulate(graph, samples, 12, batch_size=64)
    cut = 128  # a multiple of the batch
    shards = [simulate(graph, samples[:cut], 12, batch_size=64),
              simulate(graph, samples[cut:], 12, batch_size=64, sample_offset=cut)]
    assert_same(whole, SimResult.concatenate(shards))
    unseeded = simulate(graph, samples[cut:], 12, batch_size=64)  # positions restart at 0
    assert not np.array_equal(unseeded.spike_counts["input:input"],
                              whole.spike_counts["input:input"][cut:])


def test_batch_rows_bounds_one_nodes_run(snn_cnn):
    shapes = snn_cnn.infer_shapes()
    assert batch_rows(shapes, 8) == 256
    largest = max(int(np.prod(shape)) for shape in shapes.values())
    small = batch_rows(shapes, 10**7)
    assert small == max(1, 2**26 // (8 * 10**7 * largest))


@pytest.mark.parametrize("samples, rows, shards", [(10_000, 10, 8), (360, 256, 8), (7, 3, 100),
                                                    (1, 256, 4), (1000, 1, 3)])
def test_shard_bounds_cover_the_set_at_batch_boundaries(samples, rows, shards):
    bounds = shard_bounds(samples, rows, shards)
    assert bounds[0][0] == 0 and bounds[-1][1] == samples
    assert all(stop == start for (_, stop), (start, _) in zip(bounds, bounds[1:], strict=False))
    assert all(start % rows == 0 and stop > start for start, stop in bounds)
    assert len(bounds) <= max(shards, 1)


def test_serial_executor_runs_shards_of_a_digits_run():
    """simulate_sharded in this process: the shard reader and join, without a cluster."""
    from conftest import REPO

    from snncc.datasets import load_dataset
    from snncc.loading import load_model, model_inputs
    from snncc.pipeline import prepare

    graph, _ = prepare(load_model(REPO / "examples" / "digits_mlp.onnx"), ["convert"],
                       dataset="digits", data_dir=None,
                       timesteps=8, options={"convert": {"coding": "rate"}})
    test = load_dataset("digits", "test")
    whole = simulate(graph, model_inputs(graph, test), 8, labels=test.labels)
    with Executor(workers=1) as executor:
        sharded = simulate_sharded(executor, graph, dataset="digits", data_dir=None,
                                   samples=len(test), timesteps=8)
    assert_same(whole, sharded)
    np.testing.assert_array_equal(sharded.labels, test.labels)
