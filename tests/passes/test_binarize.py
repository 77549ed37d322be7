"""Rules of the binarize pass (see snncc/passes/binarize.py)."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.engines import run_ann
from snncc.errors import SnnccError
from snncc.passes import PassContext, run_passes
from snncc.passes.binarize import binarize


def _binarize(graph: ir.Graph, calibration=None, **options) -> ir.Graph:
    context = PassContext(calibration=calibration, options={"binarize": options})
    return binarize(graph, context).graph


def _scaled_signs(graph: ir.Graph, names: list[str], per_channel: bool = True) -> ir.Graph:
    """The approximation binarize folds away: W -> alpha * sign(W), thresholds unchanged."""
    graph = graph.copy()
    for name in names:
        node = graph.nodes[name]
        flat = np.abs(node.weight.reshape(node.weight.shape[0], -1))
        count = (flat != 0).sum(axis=1)
        alpha = flat.sum(axis=1) / np.maximum(count, 1)
        if not per_channel:
            alpha = np.full_like(alpha, flat.sum() / max((flat != 0).sum(), 1))
        node.weight = np.sign(node.weight) * alpha.reshape((-1,) + (1,) * (node.weight.ndim - 1))
    return graph


def _is_binary(weight: np.ndarray) -> bool:
    return set(np.unique(weight)) <= {-1.0, 0.0, 1.0}


def test_default_binarizes_hidden_layers_only(snn_mlp, snn_cnn):
    for graph, first, hidden, last in ((snn_mlp, "fc1", "fc_mid", "fc2"),
                                       (snn_cnn, "conv1", "conv2", "fc")):
        result = _binarize(graph)
        assert _is_binary(result.nodes[hidden].weight)
        for kept in (first, last):
            np.testing.assert_array_equal(result.nodes[kept].weight, graph.nodes[kept].weight)
        assert set(result.metadata["binarize"]["layers"]) == {hidden}


def test_layer_choice_all_list_and_unknown_names(snn_mlp):
    assert all(_is_binary(_binarize(snn_mlp, layers="all").nodes[n].weight)
               for n in ("fc1", "fc_mid", "fc2"))
    chosen = _binarize(snn_mlp, layers=["fc1"])
    assert _is_binary(chosen.nodes["fc1"].weight) and not _is_binary(chosen.nodes["fc_mid"].weight)
    with pytest.raises(SnnccError, match="binarize: no layer named 'fc9'; layers are fc1, fc_mid, fc2"):
        _binarize(snn_mlp, layers=["fc9"])


def test_absent_synapses_stay_absent(snn_mlp):
    graph = snn_mlp.copy()
    graph.nodes["fc_mid"].weight[:, ::3] = 0.0
    result = _binarize(graph)
    np.testing.assert_array_equal(result.nodes["fc_mid"].weight == 0, graph.nodes["fc_mid"].weight == 0)


@pytest.mark.parametrize("per_channel", [True, False])
def test_alpha_is_folded_exactly_into_threshold_bias_and_v_init(samples, snn_cnn, per_channel):
    result = _binarize(snn_cnn, per_channel=per_channel)
    approximation = _scaled_signs(snn_cnn, ["conv2"], per_channel)
    raw = samples(snn_cnn, 40, seed=2)
    names = ["relu1", "relu2", "fc"]
    ours, theirs = run_ann(result, raw, outputs=names), run_ann(approximation, raw, outputs=names)
    for name in names:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-9, atol=1e-9)
    original = snn_cnn.nodes["relu2"].threshold.size
    assert result.nodes["relu2"].threshold.size == (6 if per_channel else original)


def test_output_layer_uses_one_alpha(samples, snn_mlp):
    result = _binarize(snn_mlp, layers=["fc2"], per_channel=True)
    approximation = _scaled_signs(snn_mlp, ["fc2"], per_channel=False)
    raw = samples(snn_mlp, 50, seed=3)
    ours, theirs = run_ann(result, raw), run_ann(approximation, raw)
    np.testing.assert_array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    ratio = theirs / np.where(ours == 0, 1, ours)
    assert np.allclose(ratio[ours != 0], ratio[ours != 0].flat[0])


def test_recalibration_needs_data_and_brings_rates_back(samples, snn_mlp):
    with pytest.raises(SnnccError, match="needs calibration samples"):
        _binarize(snn_mlp, recalibrate=True)
    calibration = samples(snn_mlp, 300, seed=4)
    plain = _binarize(snn_mlp)
    tuned = _binarize(snn_mlp, calibration=calibration, recalibrate=True)
    np.testing.assert_array_equal(plain.nodes["fc_mid"].weight, tuned.nodes["fc_mid"].weight)
    names = ["relu_mid"]
    reference = run_ann(snn_mlp, calibration, outputs=names)["relu_mid"]
    plain_error = np.abs(run_ann(plain, calibration, outputs=names)["relu_mid"] - reference).mean()
    tuned_error = np.abs(run_ann(tuned, calibration, outputs=names)["relu_mid"] - reference).mean()
    assert tuned_error < plain_error


def test_registered_deterministic_and_input_untouched(snn_mlp):
    before = snn_mlp.nodes["fc_mid"].weight.copy()
    first, _ = run_passes(snn_mlp, ["binarize"], PassContext())
    second, _ = run_passes(snn_mlp, ["binarize"], PassContext())
    np.testing.assert_array_equal(snn_mlp.nodes["fc_mid"].weight, before)
    for name in first.nodes:
        for key, value in first.nodes[name].arrays().items():
            np.testing.assert_array_equal(second.nodes[name].arrays()[key], value)
    with pytest.raises(SnnccError, match="unknown option 'alpha'"):
        _binarize(snn_mlp, alpha="mean")


def test_all_zero_channel_keeps_alpha_one(snn_mlp):
    graph = snn_mlp.copy()
    graph.nodes["fc_mid"].weight[2] = 0.0
    result = _binarize(graph)
    threshold = np.broadcast_to(result.nodes["relu_mid"].threshold, (16,))
    original = np.broadcast_to(graph.nodes["relu_mid"].threshold, (16,))
    assert threshold[2] == original[2]
    assert result.metadata["binarize"]["layers"]["fc_mid"]["alpha_mean"] > 0
