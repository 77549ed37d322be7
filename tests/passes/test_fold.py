"""Rules of the fold pass (see snncc/passes/fold.py), one test or more per rule."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.engines import run_ann, simulate
from snncc.errors import SnnccError
from snncc.passes import PassContext, run_passes
from snncc.passes.fold import fold
from snncc.passes.layers import input_magnitude, step_current_bound


def _fold(graph: ir.Graph, **options) -> ir.Graph:
    return fold(graph, PassContext(options={"fold": options})).graph


def _affine_after_dense() -> ir.Graph:
    rng = np.random.default_rng(3)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(6,))),
        ("fc1", ir.Dense(weight=rng.normal(size=(5, 6)), bias=rng.normal(size=5))),
        ("bn1", ir.Affine(scale=rng.uniform(0.5, 2, 5), bias=rng.normal(size=5))),
        ("relu1", ir.ReLU()),
        ("fc2", ir.Dense(weight=rng.normal(size=(3, 5)))),
    )
    return graph


def _affine_before_conv(padding: int, shift: float) -> ir.Graph:
    """Input -> Affine -> Conv (the affine must fold forward)."""
    rng = np.random.default_rng(4)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 5, 5))),
        ("bn0", ir.Affine(scale=np.array([0.5, 2.0]), bias=np.array([shift, -shift]))),
        ("conv", ir.Conv2d(weight=rng.normal(size=(3, 2, 3, 3)), padding=padding)),
        ("relu", ir.ReLU()),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.normal(size=(2, 3 * (5 + 2 * padding - 2) ** 2)))),
    )
    return graph


def test_affine_after_dense_folds_backward_exactly():
    graph = _affine_after_dense()
    folded = _fold(graph, integerize=False)
    assert not folded.of_type(ir.Affine)
    raw = np.random.default_rng(0).normal(size=(20, 6))
    np.testing.assert_allclose(run_ann(folded, raw), run_ann(graph, raw), rtol=1e-10, atol=1e-10)


def test_affine_folds_forward_into_unpadded_conv():
    graph = _affine_before_conv(padding=0, shift=0.7)
    folded = _fold(graph, integerize=False)
    assert not folded.of_type(ir.Affine)
    raw = np.random.default_rng(1).normal(size=(10, 2, 5, 5))
    np.testing.assert_allclose(run_ann(folded, raw), run_ann(graph, raw), rtol=1e-10, atol=1e-10)


def test_affine_folds_forward_through_flatten_into_dense():
    rng = np.random.default_rng(5)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 3, 3))),
        ("bn0", ir.Affine(scale=np.array([0.5, 2.0]), bias=np.array([0.3, -1.0]))),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.normal(size=(4, 18)), bias=rng.normal(size=4))),
    )
    folded = _fold(graph, integerize=False)
    raw = rng.normal(size=(7, 2, 3, 3))
    np.testing.assert_allclose(run_ann(folded, raw), run_ann(graph, raw), rtol=1e-10, atol=1e-10)


def test_affine_with_shift_before_padded_conv_is_an_error():
    with pytest.raises(SnnccError, match="Affine 'bn0' cannot be folded"):
        _fold(_affine_before_conv(padding=1, shift=0.7), integerize=False)
    # without a shift the padding stays zero, so the fold is exact and allowed
    graph = _affine_before_conv(padding=1, shift=0.0)
    folded = _fold(graph, integerize=False)
    raw = np.random.default_rng(2).normal(size=(5, 2, 5, 5))
    np.testing.assert_allclose(run_ann(folded, raw), run_ann(graph, raw), rtol=1e-10, atol=1e-10)


def test_affine_without_synaptic_neighbour_is_an_error():
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(1, 4, 4))), ("pool", ir.MaxPool2d()),
                ("bn", ir.Affine(scale=np.ones(1), bias=np.ones(1))), ("relu", ir.ReLU()))
    with pytest.raises(SnnccError, match="Affine 'bn' cannot be folded"):
        _fold(graph, integerize=False)


def test_input_preprocessing_moves_into_first_layer(samples, snn_mlp, snn_cnn_no_mean):
    raw_mlp, raw_cnn = samples(snn_mlp, 30, seed=9), samples(snn_cnn_no_mean, 30, seed=9)
    for graph, raw in ((snn_mlp, raw_mlp), (snn_cnn_no_mean, raw_cnn)):
        assert not graph.input.is_identity
        folded = _fold(graph, integerize=False)
        assert folded.input.is_identity
        np.testing.assert_allclose(run_ann(folded, raw), run_ann(graph, raw), rtol=1e-9,
                                   atol=1e-9)


def test_input_fold_into_padded_conv_with_mean_is_reported_approximate(snn_cnn):
    result = fold(snn_cnn, PassContext(options={"fold": {"integerize": False}}))
    assert result.graph.input.is_identity
    assert any("padding now stands for raw 0" in line for line in result.info["approximations"])


def test_rate_coded_input_keeps_its_preprocessing(snn_mlp):
    graph = snn_mlp.copy()
    graph.input.coding = "rate"
    folded = _fold(graph)
    assert folded.input.scale == graph.input.scale
    np.testing.assert_array_equal(folded.input.mean, graph.input.mean)


def test_sumpool_scale_moves_into_consumer(samples, snn_cnn_no_mean):
    assert snn_cnn_no_mean.nodes["pool1"].scale == 0.25
    folded = _fold(snn_cnn_no_mean, integerize=False)
    assert folded.nodes["pool1"].scale == 1.0
    raw = samples(snn_cnn_no_mean, 20, seed=4)
    np.testing.assert_allclose(run_ann(folded, raw), run_ann(snn_cnn_no_mean, raw), rtol=1e-9,
                               atol=1e-9)


def test_integerized_graph_runs_in_integer_mode_and_matches_float(samples, snn_mlp, snn_cnn_no_mean):
    for graph in (snn_mlp, snn_cnn_no_mean):
        folded = _fold(graph)
        folded.check_integer()
        raw = samples(graph, 100, seed=11)
        reference = simulate(graph, raw, 32, mode="float")
        integer = simulate(folded, raw, 32, mode="integer")
        agreement = (reference.predictions[-1] == integer.predictions[-1]).mean()
        assert agreement >= 0.97
        for name, counts in reference.spike_counts.items():
            relative = np.abs(integer.spike_counts[name] - counts).sum() / max(counts.sum(), 1)
            assert relative < 0.01, name


def test_integer_parameters_respect_weight_bits_thresholds_and_state(snn_cnn):
    for bits in (4, 8, 16):
        folded = _fold(snn_cnn, weight_bits=bits)
        bounds = input_magnitude(folded, 255)
        for name in folded.of_type(*ir.SYNAPTIC):
            node = folded.nodes[name]
            assert node.weight.dtype.kind == "i" and node.bias.dtype.kind == "i"
            assert np.abs(node.weight).max() <= 2 ** (bits - 1) - 1
            target = folded.nodes[folded.consumers(name)[0]]
            if isinstance(target, ir.IF):
                assert np.all(target.threshold >= 1)
                current = step_current_bound(node, bounds[folded.inputs_of(name)[0]])
                threshold = np.broadcast_to(target.threshold, current.shape)
                v_init = np.broadcast_to(np.abs(target.v_init), current.shape)
                assert np.all(threshold + v_init + current <= ir.STATE_MAX)
            else:
                current = step_current_bound(node, bounds[folded.inputs_of(name)[0]])
                assert np.all(current * 32 <= ir.STATE_MAX)


def test_readout_layer_uses_one_scale(snn_mlp):
    result = fold(snn_mlp, PassContext())
    report = result.info["layers"]["fc2"]
    assert report["scale_min"] == report["scale_max"]
    # and the integer readout weights are the float ones times that single scale
    float_weight = snn_mlp.nodes["fc2"].weight
    np.testing.assert_allclose(result.graph.nodes["fc2"].weight, float_weight * report["scale_min"],
                               atol=0.5 + 1e-9)


def test_per_layer_scale_option(snn_mlp):
    result = fold(snn_mlp, PassContext(options={"fold": {"per_channel": False}}))
    for name in ("fc1", "fc_mid"):
        assert result.info["layers"][name]["scale_min"] == result.info["layers"][name]["scale_max"]


def test_rounding_is_half_to_even_and_thresholds_at_least_one():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(3,))),
        ("fc", ir.Dense(weight=np.array([[1.0, -1.0, 2.0], [2.0, 3.0, 4.0]]),
                        bias=np.array([5.0, 6.0]))),
        ("if", ir.IF(threshold=np.array([1.0]), v_init=np.array([0.5]))),
        ("out", ir.Dense(weight=np.ones((2, 2)))),
        ("readout", ir.Readout()),
    )
    # weight_bits=2: scale = 1 / max|W[o]| -> row 0 scale 0.5, row 1 scale 0.25
    folded = _fold(graph, weight_bits=2, input_max=1)
    np.testing.assert_array_equal(folded.nodes["fc"].weight, [[0, -0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(folded.nodes["fc"].bias, [2, 2])  # 2.5 -> 2, 1.5 -> 2
    # thresholds 0.5 and 0.25 become 1 (at least 1); v_init 0.25 and 0.125 round to 0
    np.testing.assert_array_equal(np.broadcast_to(folded.nodes["if"].threshold, 2), [1, 1])
    np.testing.assert_array_equal(np.broadcast_to(folded.nodes["if"].v_init, 2), [0, 0])


def test_binarized_layers_keep_unit_weights(snn_mlp):
    graph = snn_mlp.copy()
    node = graph.nodes["fc_mid"]
    node.weight = np.sign(node.weight)
    graph.metadata["binarize"] = {"layers": {"fc_mid": {}}}
    folded = _fold(graph)
    assert set(np.unique(folded.nodes["fc_mid"].weight)) <= {-1, 0, 1}


def test_fold_is_idempotent_deterministic_and_leaves_its_input_alone(snn_cnn):
    before = {n: {k: v.copy() for k, v in node.arrays().items()} for n, node in snn_cnn.nodes.items()}
    first = fold(snn_cnn, PassContext())
    second = fold(first.graph, PassContext())
    third = fold(snn_cnn, PassContext())
    assert first.changed and not second.changed
    for name, node in first.graph.nodes.items():
        for key, value in node.arrays().items():
            np.testing.assert_array_equal(second.graph.nodes[name].arrays()[key], value)
            np.testing.assert_array_equal(third.graph.nodes[name].arrays()[key], value)
    for name, arrays in before.items():
        for key, value in arrays.items():
            np.testing.assert_array_equal(snn_cnn.nodes[name].arrays()[key], value)


def test_registered_and_bad_options_are_one_line_errors(snn_mlp):
    graph, _ = run_passes(snn_mlp, ["fold"], PassContext())
    assert graph.metadata["passes"] == ["fold"]
    with pytest.raises(SnnccError, match="unknown option 'bits'"):
        _fold(snn_mlp, bits=8)
    with pytest.raises(SnnccError, match="weight_bits must be in 2..24"):
        _fold(snn_mlp, weight_bits=1)


def test_integerize_needs_a_converted_graph(ann_mlp):
    with pytest.raises(SnnccError, match="'relu1' \\(ReLU\\) has no integer form"):
        _fold(ann_mlp)
