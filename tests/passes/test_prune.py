"""Rules of the prune pass (see snncc/passes/prune.py)."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.engines import run_ann
from snncc.errors import SnnccError
from snncc.passes import PassContext, run_passes
from snncc.passes.fold import fold
from snncc.passes.prune import erk_sparsity, prune
from snncc.passes.quantize import quantize


def _prune(graph: ir.Graph, calibration=None, **options):
    result = prune(graph, PassContext(calibration=calibration, options={"prune": options}))
    return result.graph, result.info


@pytest.mark.parametrize("options, message", [
    ({"sparsity": 1.0}, "sparsity for 'fc1' must be in \\[0, 1\\), got 1"),
    ({"sparsity": -0.1}, "must be in \\[0, 1\\), got -0.1"),
    ({"sparsity": "lots"}, "must be a number"),
    ({"sparsity": {"fc7": 0.5}}, "no layer named 'fc7'"),
    ({"scope": "model"}, "scope must be"),
    ({"criterion": "random"}, "criterion must be"),
    ({"rounds": 0}, "rounds must be a positive integer"),
    ({"amount": 0.5}, "unknown option 'amount'"),
    ({"recalibrate": True}, "needs calibration samples"),
    ({"reconstruct": True}, "needs calibration samples"),
    ({"criterion": "activation"}, "needs calibration samples"),
])
def test_bad_options_are_one_line_errors(snn_mlp, options, message):
    with pytest.raises(SnnccError, match=message):
        _prune(snn_mlp, **options)


def test_magnitude_pruning_zeroes_exactly_the_smallest_weights(snn_mlp):
    graph, info = _prune(snn_mlp, sparsity=0.75, remove_dead=False)
    for name in ("fc1", "fc_mid", "fc2"):
        before, after = snn_mlp.nodes[name].weight, graph.nodes[name].weight
        assert np.count_nonzero(after == 0) == round(0.75 * before.size)
        kept, pruned = np.abs(before[after != 0]), np.abs(before[after == 0])
        assert kept.min() >= pruned.max()
        np.testing.assert_array_equal(after[after != 0], before[after != 0])
        assert info["connectivity"][name] == pytest.approx(np.count_nonzero(after) / after.size)
    assert graph.metadata["prune"]["total_connectivity"] == info["total_connectivity"]


def test_ties_go_to_the_lower_index():
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(4,))),
                ("fc", ir.Dense(weight=np.array([[1.0, 1.0, 1.0, 2.0]]))),
                ("if", ir.IF(threshold=np.ones(1))),
                ("out", ir.Dense(weight=np.ones((2, 1)))),
                ("readout", ir.Readout()))
    pruned, _ = _prune(graph, sparsity={"fc": 0.5}, remove_dead=False)
    np.testing.assert_array_equal(pruned.nodes["fc"].weight, [[0.0, 0.0, 1.0, 2.0]])


def test_global_scope_is_blind_to_each_layers_units(snn_mlp):
    scaled = snn_mlp.copy()
    scaled.nodes["fc_mid"].weight = scaled.nodes["fc_mid"].weight * 1000
    plain, info = _prune(snn_mlp, sparsity=0.6, scope="global", remove_dead=False)
    other, _ = _prune(scaled, sparsity=0.6, scope="global", remove_dead=False)
    for name in ("fc1", "fc_mid", "fc2"):
        np.testing.assert_array_equal(plain.nodes[name].weight == 0, other.nodes[name].weight == 0)
    total = sum(snn_mlp.nodes[n].weight.size for n in ("fc1", "fc_mid", "fc2"))
    assert info["nonzero_synapses"] == total - round(0.6 * total)


def test_erk_keeps_small_layers_denser_with_the_same_total(snn_mlp):
    sparsity = erk_sparsity(snn_mlp, ["fc1", "fc_mid", "fc2"], 0.7)
    sizes = {n: snn_mlp.nodes[n].weight.size for n in sparsity}
    kept = sum((1 - s) * sizes[n] for n, s in sparsity.items())
    assert kept == pytest.approx(0.3 * sum(sizes.values()))
    assert sparsity["fc2"] < sparsity["fc_mid"]
    graph, info = _prune(snn_mlp, sparsity=0.7, scope="erk", remove_dead=False)
    assert info["total_connectivity"] == pytest.approx(0.3, abs=0.02)


def test_activation_criterion_prunes_synapses_of_silent_inputs_first(samples, snn_mlp):
    calibration = samples(snn_mlp, 200, seed=6)
    calibration[:, :2] = 0  # the first two inputs never carry anything
    zero_mean = snn_mlp.copy()
    zero_mean.input.mean = np.zeros(1)
    graph, _ = _prune(zero_mean, calibration, sparsity={"fc1": 0.25}, criterion="activation",
                      reconstruct=False, recalibrate=False, remove_dead=False)
    assert np.all(graph.nodes["fc1"].weight[:, :2] == 0)  # 16 x 2 = 32 = 25% of 128


def test_structured_pruning_removes_units_and_their_columns(samples, snn_mlp):
    graph, info = _prune(snn_mlp, sparsity=0.25, structured=True, layers="hidden",
                         remove_dead=False)
    assert graph.nodes["fc_mid"].weight.shape == (12, 16)
    assert graph.nodes["fc2"].weight.shape == (4, 12)
    assert graph.nodes["relu_mid"].threshold.size in (1, 12)
    assert info["removed_units"] == {"fc_mid": 4}
    graph.validate()
    run_ann(graph, samples(graph, 5))


def test_dead_units_are_removed(snn_mlp):
    graph = snn_mlp.copy()
    graph.nodes["fc_mid"].weight[3] = -np.abs(graph.nodes["fc_mid"].weight[3])  # never fires
    graph.nodes["fc_mid"].bias[3] = -1.0
    graph.nodes["fc2"].weight[:, 5] = 0.0  # unit 5 of fc_mid feeds nothing
    # fc1 reads normalised input that can be negative: its all-negative unit is not "silent"
    graph.nodes["fc1"].weight[2] = -np.abs(graph.nodes["fc1"].weight[2])
    graph.nodes["fc1"].bias[2] = -1.0
    pruned, info = _prune(graph, sparsity=0.0)
    assert pruned.nodes["fc_mid"].weight.shape[0] == 14
    assert pruned.nodes["fc2"].weight.shape[1] == 14
    assert info["removed_units"] == {"fc_mid": 2}
    assert info["connectivity"]["fc_mid"] < 1.0


def test_reconstruction_and_recalibration_bring_the_rates_back(samples, snn_cnn):
    calibration = samples(snn_cnn, 200, seed=8)
    names = ["relu2", "fc"]
    reference = run_ann(snn_cnn, calibration, outputs=names)
    plain, _ = _prune(snn_cnn, sparsity=0.6, criterion="magnitude", remove_dead=False)
    tuned, info = _prune(snn_cnn, calibration, sparsity=0.6, criterion="magnitude",
                         remove_dead=False)
    assert set(info) >= {"reconstruction", "recalibration"}
    for name in ("conv1", "conv2", "fc"):  # same sparsity pattern, refitted values
        np.testing.assert_array_equal(plain.nodes[name].weight == 0, tuned.nodes[name].weight == 0)
    plain_out = run_ann(plain, calibration, outputs=names)
    tuned_out = run_ann(tuned, calibration, outputs=names)
    for name in names:
        assert (np.abs(tuned_out[name] - reference[name]).mean()
                < np.abs(plain_out[name] - reference[name]).mean())


def test_rounds_prune_gradually_to_the_same_sparsity(samples, snn_mlp):
    calibration = samples(snn_mlp, 100, seed=2)
    graph, info = _prune(snn_mlp, calibration, sparsity=0.8, rounds=3, remove_dead=False)
    for name in ("fc1", "fc_mid", "fc2"):
        weight = graph.nodes[name].weight
        assert np.count_nonzero(weight == 0) == round(0.8 * weight.size)


def test_integer_and_quantized_graphs_stay_deployable(samples, snn_cnn_no_mean):
    calibration = samples(snn_cnn_no_mean, 100, seed=5)
    context = PassContext(calibration=calibration)
    folded = fold(snn_cnn_no_mean, context).graph
    pruned, _ = _prune(folded, calibration, sparsity=0.5)
    pruned.check_integer()
    quantized = quantize(folded, PassContext(options={"quantize": {"target": "loihi"}})).graph
    pruned, _ = _prune(quantized, calibration, sparsity=0.5, remove_dead=False)
    pruned.check_integer()
    record = pruned.quantization.layers
    for name in ("conv1", "conv2", "fc"):
        exponent = record[name].weight_exponent
        weight = pruned.nodes[name].weight
        assert np.all(weight % 2**exponent == 0) and np.abs(weight >> exponent).max() <= 127
    for name in pruned.of_type(ir.IF):
        threshold = pruned.nodes[name].threshold
        assert threshold.size == 1 and 1 <= threshold[0] <= 2**17 - 1


def test_deterministic_registered_and_input_untouched(samples, snn_mlp):
    calibration = samples(snn_mlp, 100, seed=2)
    before = snn_mlp.nodes["fc1"].weight.copy()
    context = PassContext(calibration=calibration, options={"prune": {"sparsity": 0.6}})
    first, _ = run_passes(snn_mlp, ["prune"], context)
    second, _ = run_passes(snn_mlp, ["prune"], context)
    np.testing.assert_array_equal(snn_mlp.nodes["fc1"].weight, before)
    for name in first.nodes:
        for key, value in first.nodes[name].arrays().items():
            np.testing.assert_array_equal(second.nodes[name].arrays()[key], value)
    assert first.metadata["passes"] == ["prune"]


def test_pruning_a_lava_quantized_graph_keeps_thresholds_on_the_mantissa_grid(samples,
                                                                             snn_cnn_no_mean):
    calibration = samples(snn_cnn_no_mean, 100, seed=5)
    folded = fold(snn_cnn_no_mean, PassContext(calibration=calibration)).graph
    quantized = quantize(folded, PassContext(options={"quantize": {"target": "lava"}})).graph
    pruned, _ = _prune(quantized, calibration, sparsity=0.5)
    for name in pruned.of_type(ir.IF):
        for value in np.unique(pruned.nodes[name].threshold):
            value = int(value)
            shift = (value & -value).bit_length() - 1
            assert value >> shift <= 2**17 - 1
