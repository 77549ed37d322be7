"""The event-driven TTFS simulator equals the step simulator (the definition) exactly."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.engines import simulate
from snncc.engines.ttfs import fire_times, is_ttfs_graph, simulate_ttfs
from snncc.errors import SnnccError


def ttfs_graph(seed: int = 0, hidden: int = 24, classes: int = 5, t_max: int = 24,
               per_neuron: bool = False, zeros: bool = False) -> ir.Graph:
    """Input(1x6x6, latency) -> Flatten -> Dense(+-1) -> IF(fire once) -> Dense(+-1) -> Readout."""
    rng = np.random.default_rng(seed)
    w1 = rng.choice(np.array([-1, 1], np.int8), (hidden, 36))
    w2 = rng.choice(np.array([-1, 1], np.int8), (classes, hidden))
    if zeros:
        w1[rng.random(w1.shape) < 0.3] = 0
    threshold = rng.integers(1, 5, hidden) if per_neuron else np.array([3])
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(1, 6, 6), coding="latency", t_max=t_max, scale=1 / 255)),
        ("flatten", ir.Flatten()),
        ("dense1", ir.Dense(weight=w1)),
        ("hidden1", ir.IF(threshold=threshold.astype(np.int64), v_init=np.zeros(1, np.int64),
                          reset="zero", fire_once=True)),
        ("dense2", ir.Dense(weight=w2)),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([2], np.int64))),
    )
    return graph


def raw_samples(count: int = 40, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (count, 1, 6, 6))
    raw[rng.random(raw.shape) < 0.4] = 0  # many silent inputs, as in images
    return raw.astype(np.uint8)


def assert_same(event, step) -> None:
    np.testing.assert_array_equal(event.predictions, step.predictions)
    np.testing.assert_array_equal(event.decision_time, step.decision_time)
    np.testing.assert_array_equal(event.readout_state, step.readout_state)
    np.testing.assert_array_equal(event.synops, step.synops)
    assert event.spike_counts.keys() == step.spike_counts.keys()
    for name in step.spike_counts:
        np.testing.assert_array_equal(event.spike_counts[name], step.spike_counts[name])
    assert event.rasters.keys() == step.rasters.keys()
    for name in step.rasters:
        np.testing.assert_array_equal(event.rasters[name], step.rasters[name])


@pytest.mark.parametrize("mode", ["integer", "float"])
@pytest.mark.parametrize("variant", [{}, {"per_neuron": True}, {"zeros": True, "seed": 3},
                                     {"t_max": 3, "seed": 5}])
def test_matches_step_simulator(mode: str, variant: dict) -> None:
    graph = ttfs_graph(**variant)
    raw = raw_samples()
    labels = np.arange(len(raw)) % 5
    t_max = graph.input.t_max
    step = simulate(graph, raw, timesteps=t_max, mode=mode, labels=labels, record=True)
    event = simulate_ttfs(graph, raw, labels=labels, mode=mode, record=True)
    assert_same(event, step)
    assert event.accuracy == step.accuracy
    # the test is not vacuous: hidden neurons spike, some outputs decide, some fall back
    assert event.spike_counts["hidden1"].sum() > 0
    assert (event.decision_time < t_max).any()


def test_fewer_timesteps_than_t_max_drop_late_spikes() -> None:
    graph = ttfs_graph(t_max=24)
    raw = raw_samples(seed=5)
    step = simulate(graph, raw, timesteps=10, mode="integer", record=True)
    event = simulate_ttfs(graph, raw, timesteps=10, record=True)
    assert_same(event, step)


def test_spike_times_and_decision_time() -> None:
    graph = ttfs_graph()
    raw = raw_samples()
    result = simulate_ttfs(graph, raw, record=True)
    hidden_times = result.spike_times["hidden1"]
    raster = result.rasters["hidden1"]
    spiked = raster.any(axis=0)
    np.testing.assert_array_equal(hidden_times >= 0, spiked)
    np.testing.assert_array_equal(raster.argmax(axis=0)[spiked], hidden_times[spiked])
    assert result.mean_decision_time == pytest.approx(result.decision_time.mean())


def test_first_spike_tie_takes_larger_potential_then_lower_index() -> None:
    pre = np.array([[0, 0, 0, 1]])
    weight = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]], np.int8)
    times, v_fire, _, curve = fire_times(pre, weight, np.array([2, 2, 2]), 4, with_curve=True)
    np.testing.assert_array_equal(times, [[0, 0, 0]])
    np.testing.assert_array_equal(v_fire, [[2, 3, 3]])
    np.testing.assert_array_equal(curve, [[1, 1, 1, 1]])


def test_recognises_only_ttfs_chains(tiny_mlp: ir.Graph) -> None:
    assert is_ttfs_graph(ttfs_graph())
    assert not is_ttfs_graph(tiny_mlp)
    with_bias = ttfs_graph()
    with_bias.nodes["dense1"].bias = np.ones(24, np.int64)
    assert not is_ttfs_graph(with_bias)
    repeated = ttfs_graph()
    repeated.nodes["hidden1"].fire_once = False
    assert not is_ttfs_graph(repeated)
    with pytest.raises(SnnccError, match="not a single-spike"):
        simulate_ttfs(tiny_mlp, np.zeros((1, 8)))


def test_integer_mode_rejects_float_weights_and_inputs() -> None:
    graph = ttfs_graph()
    graph.nodes["dense2"].weight = graph.nodes["dense2"].weight.astype(np.float64) * 0.5
    with pytest.raises(SnnccError, match="non-integer"):
        simulate_ttfs(graph, raw_samples())
    assert simulate_ttfs(graph, raw_samples(), mode="float").predictions.shape == (24, 40)
    with pytest.raises(SnnccError, match="integer input"):
        simulate_ttfs(ttfs_graph(), raw_samples() + 0.5)


@pytest.mark.parametrize("scale", [2**22, 2**27])
def test_large_integer_weights_saturate_like_the_step_simulator(scale: int) -> None:
    """Potentials wider than int16 (int32, int64) and saturation at STATE_BITS."""
    graph = ttfs_graph(seed=4)
    dense1 = graph.nodes["dense1"]
    dense1.weight = dense1.weight.astype(np.int64) * scale
    graph.nodes["hidden1"].threshold = np.array([ir.STATE_MAX], np.int64)  # only by saturating
    graph.nodes["readout"].threshold = np.array([2], np.int64)
    raw = raw_samples(seed=7)
    step = simulate(graph, raw, timesteps=24, mode="integer", record=True)
    event = simulate_ttfs(graph, raw, record=True)
    assert_same(event, step)
    assert event.spike_counts["hidden1"].sum() > 0


@pytest.mark.parametrize("mean, std", [([0.0], [1.0]), ([0.1, 0.3], [0.5, 0.9])])
def test_tabulated_uint8_latency_code_equals_the_shared_encoder(mean, std):
    from snncc import coding
    from snncc.engines.ttfs import input_spike_times

    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 3, 3), coding="latency", scale=1 / 255, t_max=40,
                           mean=np.array(mean), std=np.array(std))),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=np.ones((2, 18), np.int64))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([3]))),
    )
    raw = np.random.default_rng(0).integers(0, 256, (20, 2, 3, 3)).astype(np.uint8)
    expected = coding.latency_spike_times(graph.input.preprocess(raw), 40).reshape(20, -1)
    np.testing.assert_array_equal(input_spike_times(graph, raw), expected)
    np.testing.assert_array_equal(input_spike_times(graph, raw.astype(np.int64)), expected)
