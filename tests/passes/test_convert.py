"""convert: one test per rule in snncc/passes/convert.py's docstring."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_cnn_graph, tiny_mlp_graph

from snncc import ir
from snncc.datasets import arrange, load_dataset
from snncc.engines import run_ann, simulate
from snncc.errors import SnnccError
from snncc.passes import PassContext, run_passes
from snncc.passes.convert import convert


def _calibration(graph, count=64, seed=0):
    shape = graph.input.shape
    return np.random.default_rng(seed).integers(0, 256, (count,) + shape)


def _convert(graph, **options):
    options = {"bias_correction": False, "threshold_method": "percentile", **options}
    context = PassContext(calibration=_calibration(graph), timesteps=16,
                          options={"convert": options})
    return convert(graph, context)


def test_rule1_relu_threshold_is_percentile_per_layer_and_channel():
    graph = tiny_cnn_graph()
    calibration = _calibration(graph)
    activation = run_ann(graph, calibration, outputs=["relu1"])["relu1"]
    per_layer = _convert(graph, per_channel=False, percentile=99.0).graph
    assert per_layer.nodes["relu1"].threshold[0] == pytest.approx(np.percentile(activation, 99.0))
    per_channel = _convert(graph, per_channel=True, percentile="max").graph
    expected = activation.max(axis=(0, 2, 3))
    expected[expected == 0] = expected.max()  # dead channels take the layer maximum
    np.testing.assert_allclose(per_channel.nodes["relu1"].threshold, expected)
    assert isinstance(per_channel.nodes["relu1"], ir.IF)
    assert per_channel.nodes["relu1"].reset == "subtract"


def test_rule1_clip_sets_threshold_directly_and_rejects_other_clips():
    graph = tiny_mlp_graph()
    graph.replace("relu1", ir.Clip(0.0, 2.5))
    converted = convert(graph, PassContext(options={"convert": {"bias_correction": False}}))
    assert converted.graph.nodes["relu1"].threshold.tolist() == [2.5]
    graph.replace("relu1", ir.Clip(-1.0, 1.0))
    with pytest.raises(SnnccError, match="no IF equivalent"):
        convert(graph, PassContext())


def test_rule1_dead_units_get_the_layer_maximum():
    graph = tiny_mlp_graph()
    graph.nodes["fc1"].weight[3] = -1.0
    graph.nodes["fc1"].bias[3] = -1.0
    threshold = _convert(graph, per_channel=True).graph.nodes["relu1"].threshold
    assert threshold[3] == threshold.max() > 0


def test_rule2_consumer_weights_scaled_by_threshold():
    graph = tiny_mlp_graph()
    converted = _convert(graph, per_channel=True).graph
    threshold = converted.nodes["relu1"].threshold
    np.testing.assert_allclose(converted.nodes["fc2"].weight,
                               graph.nodes["fc2"].weight * threshold[None, :])
    np.testing.assert_array_equal(converted.nodes["fc1"].weight, graph.nodes["fc1"].weight)


def test_rule2_scaling_through_pooling_and_flatten_keeps_ann_function():
    graph = tiny_cnn_graph()
    converted = _convert(graph, per_channel=True, percentile="max").graph
    x = _calibration(graph)
    # with max thresholds nothing clips on the calibration data, so the ANN function is unchanged
    np.testing.assert_allclose(run_ann(converted, x), run_ann(graph, x), rtol=1e-9, atol=1e-9)


def test_rule3_v_init_fraction():
    converted = _convert(tiny_mlp_graph(), v_init_fraction=0.25).graph
    node = converted.nodes["relu1"]
    np.testing.assert_allclose(node.v_init, node.threshold * 0.25)


def test_rule4_readout_and_rule5_coding():
    converted = _convert(tiny_mlp_graph(), coding="rate").graph
    assert isinstance(converted.nodes[converted.output_name], ir.Readout)
    assert converted.input.coding == "rate"
    with pytest.raises(SnnccError, match="coding"):
        _convert(tiny_mlp_graph(), coding="latency")


def test_bad_options_and_double_conversion():
    with pytest.raises(SnnccError, match="unknown option"):
        _convert(tiny_mlp_graph(), percentil=3)
    with pytest.raises(SnnccError, match="percentile"):
        _convert(tiny_mlp_graph(), percentile=0)
    converted = _convert(tiny_mlp_graph()).graph
    with pytest.raises(SnnccError, match="already a spiking"):
        _convert(converted)
    with pytest.raises(SnnccError, match="calibration"):
        convert(tiny_mlp_graph(), PassContext())


def test_convert_does_not_mutate_its_input():
    graph = tiny_mlp_graph()
    before = graph.nodes["fc2"].weight.copy()
    _convert(graph)
    np.testing.assert_array_equal(graph.nodes["fc2"].weight, before)
    assert isinstance(graph.nodes["relu1"], ir.ReLU)


def test_residual_add_branches_share_threshold():
    rng = np.random.default_rng(0)
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(6,), scale=1 / 255))
    graph.add("a", ir.Dense(weight=rng.normal(size=(5, 6))), ["input"])
    graph.add("ra", ir.ReLU(), ["a"])
    graph.add("b", ir.Dense(weight=rng.normal(size=(5, 6)) * 3), ["input"])
    graph.add("rb", ir.ReLU(), ["b"])
    graph.add("sum", ir.Add(), ["ra", "rb"])
    graph.add("out", ir.Dense(weight=rng.normal(size=(2, 5))), ["sum"])
    converted = _convert(graph).graph
    assert converted.nodes["ra"].threshold.tolist() == converted.nodes["rb"].threshold.tolist()


def _digits_mlp():
    from snncc.pipeline import load_model

    return load_model("examples/digits_mlp.onnx")


def test_snn_approaches_ann_as_t_grows_on_digits():
    graph = _digits_mlp()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    x_train = arrange(train.images, graph.input.shape)
    x_test = arrange(test.images, graph.input.shape)
    ann = (run_ann(graph, x_test).argmax(axis=1) == test.labels).mean()
    snn, _ = run_passes(graph, ["convert"], PassContext(calibration=x_train, timesteps=64))
    curve = simulate(snn, x_test, 64, labels=test.labels).accuracy_curve
    assert curve[-1] >= ann - 0.01
    assert curve[63] >= curve[0]


def test_bias_correction_does_not_hurt_on_digits():
    graph = _digits_mlp()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    x_train = arrange(train.images, graph.input.shape)
    x_test = arrange(test.images, graph.input.shape)
    results = {}
    for corrected in (False, True):
        context = PassContext(calibration=x_train, timesteps=4,
                              options={"convert": {"bias_correction": corrected}})
        snn = convert(graph, context).graph
        results[corrected] = simulate(snn, x_test, 4, labels=test.labels).accuracy
    assert results[True] >= results[False] - 0.01


def test_rule1_mse_threshold_trades_clipping_for_resolution():
    from snncc.passes.convert import MSE_PERCENTILES, _mse_threshold

    rng = np.random.default_rng(0)
    # a long tail: at small T the MSE-optimal λ sits below the maximum, at large T it moves up
    rows = rng.exponential(1.0, (1, 20000))
    candidates = np.percentile(rows, MSE_PERCENTILES, axis=1).T
    small_t = _mse_threshold(candidates, rows, 4, 0.5)[0]
    large_t = _mse_threshold(candidates, rows, 256, 0.5)[0]
    assert small_t < large_t <= rows.max()
    graph = tiny_mlp_graph()
    threshold = _convert(graph, threshold_method="mse").graph.nodes["relu1"].threshold
    assert threshold.shape == (1,) and threshold[0] > 0
    with pytest.raises(SnnccError, match="threshold_method"):
        _convert(graph, threshold_method="magic")
