"""Rules of the reset_zero and single_threshold passes (hardware-profile constraints)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_mlp_graph

from snncc import ir
from snncc.engines import run_ann, simulate
from snncc.errors import SnnccError
from snncc.passes import PassContext, run_passes
from snncc.passes.reset_zero import reset_zero
from snncc.passes.single_threshold import single_threshold


def _converted(seed: int = 0, **convert: object) -> tuple[ir.Graph, np.ndarray]:
    graph = tiny_mlp_graph(seed, hidden=24)
    samples = np.random.default_rng(seed).integers(0, 256, (300, 8)).astype(np.float64)
    context = PassContext(calibration=samples, timesteps=16, options={"convert": convert})
    converted, _ = run_passes(graph, ["convert"], context)
    return converted, samples


def test_reset_zero_rule_1_every_if_layer_resets_to_zero_from_zero():
    converted, samples = _converted()
    assert converted.nodes["relu1"].reset == "subtract" and np.any(converted.nodes["relu1"].v_init)
    result = reset_zero(converted, PassContext(options={"reset_zero": {"bias_correction": False}}))
    neurons = result.graph.nodes["relu1"]
    assert result.changed and neurons.reset == "zero" and not np.any(neurons.v_init)
    assert converted.nodes["relu1"].reset == "subtract"  # the input graph is untouched
    np.testing.assert_array_equal(neurons.threshold, converted.nodes["relu1"].threshold)
    again = reset_zero(result.graph, PassContext(calibration=samples, timesteps=16))
    assert not again.changed and "bias_correction" not in again.info  # rule 3


def test_reset_zero_rule_2_bias_correction_restores_the_delivered_rates():
    converted, samples = _converted()
    context = PassContext(calibration=samples, timesteps=16)
    plain = reset_zero(converted, PassContext(options={"reset_zero": {"bias_correction": False}}))
    corrected = reset_zero(converted, context)
    assert corrected.info["bias_correction"]["relu1"][0] > 0

    def shortfall(graph: ir.Graph) -> float:
        counts = simulate(graph, samples, 16, count_neurons=True).neuron_counts["relu1"]
        target = run_ann(converted, samples, outputs=["relu1"])["relu1"]
        return float(np.mean(np.abs(target.mean(axis=0) - counts.mean(axis=0) / 16)))

    assert shortfall(corrected.graph) < 0.5 * shortfall(plain.graph)


def test_reset_zero_needs_if_neurons_a_float_graph_for_correction_and_known_options():
    with pytest.raises(SnnccError, match="no spiking neurons"):
        reset_zero(tiny_mlp_graph(), PassContext())
    with pytest.raises(SnnccError, match="unknown option 'tune'"):
        reset_zero(_converted()[0], PassContext(options={"reset_zero": {"tune": True}}))
    converted, samples = _converted()
    folded, _ = run_passes(converted, ["fold"], PassContext(calibration=samples))
    with pytest.raises(SnnccError, match="needs a float graph"):
        reset_zero(folded, PassContext(calibration=samples, timesteps=16))


def test_single_threshold_rule_1_per_channel_thresholds_fold_into_the_weights_exactly():
    converted, samples = _converted(per_channel=True)
    assert np.unique(converted.nodes["relu1"].threshold).size > 1
    result = single_threshold(converted, PassContext())
    neurons = result.graph.nodes["relu1"]
    assert result.changed and neurons.threshold.size == 1
    assert neurons.threshold[0] == converted.nodes["relu1"].threshold.max()
    assert result.info["scaled"]["relu1"]["gain_min"] == 1.0
    np.testing.assert_allclose(run_ann(result.graph, samples), run_ann(converted, samples),
                               rtol=1e-9, atol=1e-9)
    first = simulate(converted, samples[:50], 16, record=True)
    second = simulate(result.graph, samples[:50], 16, record=True)
    assert (first.rasters["relu1"] != second.rasters["relu1"]).mean() < 1e-3  # float32 rounding
    assert not single_threshold(result.graph, PassContext()).changed


def test_single_threshold_rule_2_thresholds_varying_within_a_channel_are_an_error():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1, 4, 4))),
        ("conv", ir.Conv2d(weight=np.ones((2, 1, 3, 3)), padding=1)),
        ("if1", ir.IF(threshold=np.arange(1, 33, dtype=np.float64).reshape(2, 4, 4))),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=np.ones((3, 32)))),
        ("readout", ir.Readout()),
    )
    with pytest.raises(SnnccError, match="vary within a channel"):
        single_threshold(graph, PassContext())
    with pytest.raises(SnnccError, match="no options"):
        single_threshold(graph, PassContext(options={"single_threshold": {"x": 1}}))


def test_reset_zero_rule_3_refit_brings_the_readout_to_the_ann_logits():
    converted, samples = _converted()
    context = PassContext(calibration=samples, timesteps=16,
                          options={"reset_zero": {"refit": False}})
    corrected = reset_zero(converted, context)
    refitted = reset_zero(converted, PassContext(calibration=samples, timesteps=16))
    assert set(refitted.info["refit"]) == {"fc2"} and refitted.info["refit"]["fc2"] > 0
    assert "fc1" not in refitted.info["refit"]  # it reads the input, not spikes
    np.testing.assert_array_equal(refitted.graph.nodes["fc1"].weight,
                                  corrected.graph.nodes["fc1"].weight)
    logits = run_ann(converted, samples)

    def error(graph: ir.Graph) -> float:
        state = simulate(graph, samples, 16).readout_state / 16
        return float(np.mean((state - logits) ** 2))

    assert error(refitted.graph) < 0.8 * error(corrected.graph)
    assert converted.nodes["fc2"].bias is not None  # the input graph is untouched
    np.testing.assert_array_equal(converted.nodes["fc2"].weight,
                                  _converted()[0].nodes["fc2"].weight)


def test_refit_normal_equations_of_a_conv_layer_recover_its_weights_exactly():
    from snncc.engines.step import conv2d
    from snncc.passes.refit import _NormalEquations

    rng = np.random.default_rng(3)
    truth = ir.Conv2d(weight=rng.normal(0, 1, (5, 3, 3, 3)), bias=rng.normal(0, 1, 5),
                      stride=2, padding=1)
    node = ir.Conv2d(weight=np.zeros((5, 3, 3, 3)), bias=np.zeros(5), stride=2, padding=1)
    equations = _NormalEquations(node, stride=3)
    for _ in range(3):  # batch by batch
        rates = rng.integers(0, 17, (20, 3, 9, 9)).astype(np.float32) / 16
        target = conv2d(rates.astype(np.float64), truth) + truth.bias.reshape(1, -1, 1, 1)
        equations.add(rates, target)
    assert equations.solve(ridge=0.0) > 0
    np.testing.assert_allclose(node.weight, truth.weight, atol=1e-6)
    np.testing.assert_allclose(node.bias, truth.bias, atol=1e-6)


def test_refit_ridge_keeps_the_weights_near_the_trained_ones_and_is_checked():
    converted, samples = _converted()
    loose = reset_zero(converted, PassContext(calibration=samples, timesteps=16,
                                              options={"reset_zero": {"refit_ridge": 0.0}}))
    tight = reset_zero(converted, PassContext(calibration=samples, timesteps=16,
                                              options={"reset_zero": {"refit_ridge": 100.0}}))
    assert tight.info["refit"]["fc2"] < 0.1 * loose.info["refit"]["fc2"]
    with pytest.raises(SnnccError, match="refit_ridge must be >= 0"):
        reset_zero(converted, PassContext(calibration=samples, timesteps=16,
                                          options={"reset_zero": {"refit_ridge": -1}}))
