"""Rules of the quantize pass (see snncc/passes/quantize.py)."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.engines import simulate
from snncc.errors import SnnccError
from snncc.passes import PassContext, run_passes
from snncc.passes.fold import fold
from snncc.passes.quantize import TARGETS, quantize


def _quantize(graph: ir.Graph, **options) -> tuple[ir.Graph, dict]:
    result = quantize(graph, PassContext(options={"quantize": options}))
    return result.graph, result.info


@pytest.fixture
def folded_cnn(snn_cnn_no_mean):
    return fold(snn_cnn_no_mean, PassContext()).graph


@pytest.fixture
def folded_mlp(snn_mlp):
    return fold(snn_mlp, PassContext()).graph


def _hand_graph() -> ir.Graph:
    """Spike input -> Dense (max |W| 100) -> IF(1000, v_init 500) -> Dense -> Readout."""
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(4,), coding="rate")),
        ("fc", ir.Dense(weight=np.array([[100, 50, -25, 10]]))),
        ("if", ir.IF(threshold=np.array([1000]), v_init=np.array([500]))),
        ("out", ir.Dense(weight=np.array([[3], [-7]]))),
        ("readout", ir.Readout()),
    )
    return graph


@pytest.mark.parametrize("options, message", [
    ({"bits": 1}, "bits=1 is outside generic's range 2..16"),
    ({"bits": 17}, "bits=17 is outside generic's range 2..16"),
    ({"bits": 9, "target": "loihi"}, "bits=9 is outside loihi's range 2..8"),
    ({"target": "truenorth"}, "unknown target 'truenorth'"),
    ({"bit": 8}, "unknown option 'bit'"),
    ({"weight_percentile": 0}, "weight_percentile must be in"),
])
def test_bad_options_are_one_line_errors(folded_mlp, options, message):
    with pytest.raises(SnnccError, match=message):
        _quantize(folded_mlp, **options)


def test_needs_an_integer_graph(snn_mlp):
    with pytest.raises(SnnccError, match="run fold first"):
        _quantize(snn_mlp)


@pytest.mark.parametrize("target, bits", [("generic", 8), ("generic", 4), ("loihi", 8)])
def test_weights_are_mantissa_times_one_exponent_per_layer(folded_cnn, target, bits):
    graph, _ = _quantize(folded_cnn, target=target, bits=bits)
    record = graph.quantization
    assert record.target == target and record.bits == bits
    for name in graph.of_type(*ir.SYNAPTIC):
        exponent = record.layers[name].weight_exponent
        assert TARGETS[target].exponent[0] <= exponent <= TARGETS[target].exponent[1]
        weight = graph.nodes[name].weight
        assert weight.dtype.kind == "i"
        assert np.all(weight % 2**exponent == 0)
        assert np.abs(weight >> exponent).max() <= 2 ** (bits - 1) - 1
    assert record.layers["fc"].weight_exponent == 0  # the readout layer


def test_exponent_is_the_largest_that_fits_the_limits():
    graph, info = _quantize(_hand_graph(), bits=8)
    # generic: state room (2**23 - 1 - 3.5) / (1000 + 500 + 185) allows scale <= 4978,
    # scale = 1.27 * 2**e -> e = 11
    assert info["layers"]["fc"]["weight_exponent"] == 11
    assert graph.nodes["fc"].weight[0, 0] == 127 * 2**11
    assert graph.nodes["if"].threshold[0] == round(1000 * 1.27 * 2**11)
    graph, info = _quantize(_hand_graph(), bits=8, target="loihi")
    # loihi: (2**17 - 1 - 3.5) / 1685 = 77.8 -> 1.27 * 2**5 = 40.6 fits, 2**6 does not
    assert info["layers"]["fc"]["weight_exponent"] == 5
    assert graph.nodes["if"].threshold[0] <= 2**17 - 1


def test_loihi_has_one_threshold_per_layer_within_17_bits_and_bias_on_its_grid(folded_cnn):
    graph, _ = _quantize(folded_cnn, target="loihi")
    for name in graph.of_type(ir.IF):
        node = graph.nodes[name]
        assert node.threshold.size == 1 and 1 <= node.threshold[0] <= 2**17 - 1
        assert np.abs(node.v_init).max() <= 2**17 - 1
    for name in graph.of_type(*ir.SYNAPTIC):
        bias = graph.nodes[name].bias
        exponent = graph.quantization.layers[name].bias_exponent
        assert exponent in (0, 1)
        assert np.all(bias % 2**exponent == 0) and np.abs(bias >> exponent).max() <= 4096


def test_weights_beyond_the_percentile_saturate(folded_mlp):
    graph, info = _quantize(folded_mlp, bits=4, weight_percentile=50)
    assert info["layers"]["fc1"]["saturated_weights"] > 0
    exponent = info["layers"]["fc1"]["weight_exponent"]
    assert np.abs(graph.nodes["fc1"].weight >> exponent).max() == 7


def test_int8_keeps_the_decisions(samples, snn_cnn_no_mean, folded_cnn):
    graph, _ = _quantize(folded_cnn, bits=8)
    raw = samples(folded_cnn, 150, seed=3)
    reference = simulate(snn_cnn_no_mean, raw, 32, mode="float")
    quantized = simulate(graph, raw, 32, mode="integer")
    assert (reference.predictions[-1] == quantized.predictions[-1]).mean() >= 0.95


def test_layers_that_cannot_keep_their_bits_are_warned_about():
    graph = _hand_graph()
    graph.nodes["if"].threshold = np.array([10**7])  # threshold / weight far beyond 2**17 / 127
    _, info = _quantize(graph, bits=8, target="loihi")
    assert any("'fc' keeps only" in line for line in info["warnings"])
    _, info = _quantize(_hand_graph(), bits=8, target="loihi")
    assert not info["warnings"]


def test_binarized_layers_are_kept(folded_mlp):
    graph = folded_mlp.copy()
    graph.nodes["fc_mid"].weight = np.sign(graph.nodes["fc_mid"].weight)
    graph.metadata["binarize"] = {"layers": {"fc_mid": {}}}
    quantized, info = _quantize(graph, bits=4)
    np.testing.assert_array_equal(quantized.nodes["fc_mid"].weight, graph.nodes["fc_mid"].weight)
    assert info["layers"]["fc_mid"]["weight_bits"] == 1


def test_deterministic_registered_and_leaves_its_input_alone(folded_cnn):
    before = {n: folded_cnn.nodes[n].weight.copy() for n in folded_cnn.of_type(*ir.SYNAPTIC)}
    first, _ = run_passes(folded_cnn, ["quantize"], PassContext())
    second, _ = run_passes(folded_cnn, ["quantize"], PassContext())
    for name, weight in before.items():
        np.testing.assert_array_equal(folded_cnn.nodes[name].weight, weight)
        np.testing.assert_array_equal(first.nodes[name].weight, second.nodes[name].weight)
    assert first.metadata["passes"] == ["quantize"]


def test_loihi_rejects_binarized_layers_with_per_channel_thresholds(folded_mlp):
    graph = folded_mlp.copy()
    graph.nodes["fc_mid"].weight = np.sign(graph.nodes["fc_mid"].weight)
    graph.nodes["relu_mid"].threshold = np.arange(1, 17)
    graph.metadata["binarize"] = {"layers": {"fc_mid": {}}}
    with pytest.raises(SnnccError, match="binarized layer 'fc_mid' has per-channel thresholds"):
        _quantize(graph, target="loihi")


def test_lava_target_rounds_thresholds_to_17_bit_mantissas():
    from snncc.passes.quantize import mantissa_grid

    values = np.array([1, 131071, 131072, 149571, 2**23 - 1])
    grid = mantissa_grid(values, 17)
    assert grid[:3].tolist() == [1, 131071, 131072]
    for value in grid:
        value = int(value)
        shift = (value & -value).bit_length() - 1
        assert value >> shift <= 2**17 - 1 or value <= 2**17 - 1
    assert np.all(np.abs(grid - values) / values <= 2.0**-16)
