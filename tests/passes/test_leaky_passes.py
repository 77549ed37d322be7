"""fold and quantize on leaky (LIF/CubaLIF) networks: Loihi's state limit, decays, accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import engines, ir
from snncc.datasets import load_dataset
from snncc.loading import load_model, model_inputs
from snncc.passes.layers import current_growth, round_decays, state_limit
from snncc.pipeline import prepare


def test_leaky_state_limit_and_current_growth():
    assert state_limit(ir.IF()) == ir.STATE_MAX
    assert state_limit(ir.LIF()) == pytest.approx((2**23 - 1) / 64)
    np.testing.assert_array_equal(current_growth(ir.CubaLIF(du=np.array([1024])), 3), [4, 4, 4])
    np.testing.assert_array_equal(current_growth(ir.LIF(), 2), [1, 1])


def test_decays_round_half_to_even_to_whole_steps():
    node = ir.CubaLIF(du=np.array([409.5, 410.5]), dv=np.array([409.6]))
    round_decays(node)
    np.testing.assert_array_equal(node.du, [410])  # half to even: 409.5, 410.5 -> 410 (compacted)
    assert node.du.dtype == np.int64 and node.dv.tolist() == [410]


@pytest.mark.parametrize("name, samples", [("snntorch_mnist_mlp_lif", 2000),
                                           ("snntorch_fashion_mlp_if", 2000)])
def test_fold_quantize_for_lava_keeps_accuracy(name, samples, nir_dir, data_dir):
    graph = load_model(nir_dir / f"{name}.nir")
    dataset = graph.metadata["dataset"]
    integer, _ = prepare(graph, ["fold", "quantize"], dataset=dataset, data_dir=str(data_dir),
                         timesteps=25, options={"quantize": {"target": "lava"}})
    assert integer.is_integer()
    for node in integer.nodes.values():
        if isinstance(node, ir.LEAKY):
            assert np.max(np.abs(node.threshold)) <= state_limit(node)
    test = load_dataset(dataset, "test", data_dir).take(samples)
    float_run = engines.run(graph, model_inputs(graph, test), 25, labels=test.labels)
    integer_run = engines.run(integer, model_inputs(integer, test), 25, labels=test.labels)
    assert integer_run.mode == "integer"
    assert integer_run.accuracy >= float_run.accuracy - 0.005


@pytest.mark.slow
@pytest.mark.parametrize("name", ["snntorch_mnist_mlp_lif", "snntorch_fashion_mlp_if",
                                  "snntorch_mnist_cnn_lif"])
def test_fold_quantize_full_test_within_half_a_point_of_producer(name, nir_dir, data_dir):
    graph = load_model(nir_dir / f"{name}.nir")
    dataset = graph.metadata["dataset"]
    integer, _ = prepare(graph, ["fold", "quantize"], dataset=dataset, data_dir=str(data_dir),
                         timesteps=25, options={"quantize": {"target": "lava"}})
    test = load_dataset(dataset, "test", data_dir)
    result = engines.run(integer, model_inputs(integer, test), 25, labels=test.labels)
    assert abs(result.accuracy - graph.metadata["producer_test_accuracy"]) <= 0.005


def test_partition_counts_leaky_neurons(nir_dir):
    from snncc.passes.partition import partition

    graph = load_model(nir_dir / "snntorch_mnist_cnn_lif.nir")
    report = partition(graph, "loihi")
    neurons = {plan.layer.name: plan.layer.neurons for plan in report.layers}
    assert neurons == {"0": 8 * 24 * 24, "3": 16 * 8 * 8, "7": 10}
    assert report.chips_needed == 1
