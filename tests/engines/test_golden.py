"""The fast engines against the golden model (:func:`snncc.semantics.run`).

The step engine evaluates each node over the whole run at once (and fuses sparse Dense -> IF
pairs into an event-driven kernel); the golden model steps every node once per time step, as the
semantics are written. Both must agree on every spike, decision, readout state and synaptic event
count.
"""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir, semantics
from snncc.engines import simulate, step


def _assert_engine_matches_golden(graph: ir.Graph, raw: np.ndarray, timesteps: int) -> None:
    """Every spike of a recorded run, and every count, decision and state of a run without
    recording (where the engine fuses an IF node's sum pool into its kernel), equal the golden
    model's."""
    golden = semantics.run(graph, raw, timesteps, mode="integer")
    recorded = simulate(graph, raw, timesteps, mode="integer", record=True, batch_size=5)
    assert set(recorded.rasters) == set(golden.rasters)
    for name, raster in recorded.rasters.items():
        np.testing.assert_array_equal(raster, golden.rasters[name], err_msg=name)
    plain = simulate(graph, raw, timesteps, mode="integer", batch_size=5, count_neurons=True)
    for engine in (recorded, plain):
        for name, raster in golden.rasters.items():
            per_neuron = raster.sum(axis=0)
            np.testing.assert_array_equal(engine.spike_counts[name],
                                          per_neuron.reshape(len(raw), -1).sum(axis=1),
                                          err_msg=name)
        np.testing.assert_array_equal(engine.predictions, golden.decisions)
        np.testing.assert_array_equal(engine.readout_state, golden.readout_state)
        np.testing.assert_array_equal(engine.synops, golden.synops)
        if golden.decision_time is not None:
            np.testing.assert_array_equal(engine.decision_time, golden.decision_time)
    for name, counts in plain.neuron_counts.items():
        np.testing.assert_array_equal(counts, golden.rasters[name].sum(axis=0), err_msg=name)


def _integer_mlp(coding_name: str, readout: str, seed: int = 0) -> ir.Graph:
    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1, 6, 6), coding=coding_name,
                           scale=1.0 if coding_name == "direct" else 1 / 255,
                           t_max=12 if coding_name == "latency" else None)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.integers(-4, 7, (20, 36)), bias=rng.integers(-2, 3, 20))),
        ("if1", ir.IF(threshold=rng.integers(3, 9, 20), v_init=rng.integers(0, 3, 20))),
        ("fc2", ir.Dense(weight=rng.integers(-5, 6, (12, 20)))),
        ("if2", ir.IF(threshold=np.array([4]), v_init=np.array([0]), reset="zero",
                      fire_once=True)),
        ("fc3", ir.Dense(weight=rng.integers(-3, 4, (4, 12)))),
        ("readout", ir.Readout(mode=readout, threshold=np.array([3]))),
    )
    return graph


@pytest.mark.parametrize("coding_name", ["rate", "latency", "direct"])
@pytest.mark.parametrize("readout", ["potential", "first_spike"])
@pytest.mark.parametrize("event_density", [0.0, 1.0])  # BLAS only / event-driven whenever it can
def test_mlp_engine_matches_golden(coding_name, readout, event_density, monkeypatch):
    monkeypatch.setattr(step, "EVENT_DENSITY", event_density)
    monkeypatch.setattr(step, "INTEGER_EVENT_DENSITY", event_density)
    graph = _integer_mlp(coding_name, readout)
    high = 4 if coding_name == "direct" else 256
    raw = np.random.default_rng(3).integers(0, high, (11, 1, 6, 6))
    _assert_engine_matches_golden(graph, raw, timesteps=12)


@pytest.mark.parametrize("event_density", [0.0, 1.0])  # BLAS (im2col) / event-driven conv
def test_cnn_with_pools_and_residual_add_matches_golden(event_density, monkeypatch):
    monkeypatch.setattr(step, "CONV_EVENT_DENSITY", event_density)
    monkeypatch.setattr(step, "EVENT_DENSITY", event_density)
    monkeypatch.setattr(step, "INTEGER_EVENT_DENSITY", event_density)
    rng = np.random.default_rng(5)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1, 8, 8), coding="rate", scale=1 / 255)),
        ("conv1", ir.Conv2d(weight=rng.integers(-3, 5, (4, 1, 3, 3)), bias=np.ones(4, np.int64),
                            padding=1)),
        ("if1", ir.IF(threshold=np.array([3, 4, 5, 6]), v_init=np.array([1]))),
        ("pool1", ir.MaxPool2d(kernel=2, stride=2)),
        ("conv2", ir.Conv2d(weight=rng.integers(-3, 4, (4, 4, 3, 3)), padding=1)),
    )
    graph.add("skip", ir.Conv2d(weight=rng.integers(-2, 3, (4, 4, 1, 1))), ["pool1"])
    graph.add("sum", ir.Add(), ["conv2", "skip"])
    graph.chain(
        ("if2", ir.IF(threshold=np.array([5]), v_init=np.array([0]))),
        ("pool2", ir.SumPool2d(kernel=2, stride=2)),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.integers(-3, 4, (3, 16)))),
        ("if3", ir.IF(threshold=np.array([2]), v_init=np.array([0]), reset="zero")),
        ("out", ir.Dense(weight=rng.integers(-2, 3, (3, 3)))),
        ("readout", ir.Readout()),
    )
    raw = rng.integers(0, 256, (7, 1, 8, 8))
    _assert_engine_matches_golden(graph, raw, timesteps=9)


@pytest.mark.parametrize("event_density", [0.0, 1.0])
@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (2, (1, 0, 2, 1), 1, 1), (1, (2, 2, 2, 2), 2, 2), (3, (0, 1, 1, 0), (2, 1), 4)])
def test_conv_geometries_match_step_oracle(stride, padding, dilation, groups, event_density,
                                           monkeypatch):
    monkeypatch.setattr(step, "CONV_EVENT_DENSITY", event_density)
    rng = np.random.default_rng(7)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(4, 9, 8), coding="rate", scale=1 / 255)),
        ("conv", ir.Conv2d(weight=rng.integers(-3, 5, (8, 4 // groups, 3, 2)),
                           bias=rng.integers(-1, 2, 8), stride=stride, padding=padding,
                           dilation=dilation, groups=groups)),
        ("if", ir.IF(threshold=np.array([3]), v_init=np.array([1]))),
        ("flatten", ir.Flatten()),
    )
    size = int(np.prod(graph.infer_shapes()["if"]))
    graph.chain(("fc", ir.Dense(weight=rng.integers(-2, 3, (3, size)))),
                ("readout", ir.Readout()))
    raw = rng.integers(0, 256, (6, 4, 9, 8))
    _assert_engine_matches_golden(graph, raw, timesteps=7)


@pytest.mark.parametrize("threshold", [2**24, 2**30])  # int32 / int64 state in the kernels
def test_saturation_is_applied_every_step_in_the_fused_kernel(threshold, monkeypatch):
    monkeypatch.setattr(step, "EVENT_DENSITY", 1.0)
    monkeypatch.setattr(step, "INTEGER_EVENT_DENSITY", 1.0)
    graph = ir.Graph()
    big = 2**22
    graph.chain(
        ("input", ir.Input(shape=(2,), coding="rate")),
        ("fc", ir.Dense(weight=np.array([[big, big], [-big, -big]]))),
        # never fires: v pins at the 24-bit bounds
        ("if", ir.IF(threshold=np.array([threshold]), v_init=np.array([0]))),
        ("out", ir.Dense(weight=np.ones((2, 2), np.int64))),
        ("readout", ir.Readout()),
    )
    raw = np.full((2, 2), 1.0)
    _assert_engine_matches_golden(graph, raw, timesteps=6)


@pytest.mark.parametrize("seed", [0, 1])
def test_ttfs_engine_matches_golden(seed):
    from snncc.engines.ttfs import simulate_ttfs

    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1, 6, 6), coding="latency", t_max=16, scale=1 / 255)),
        ("flatten", ir.Flatten()),
        ("dense1", ir.Dense(weight=rng.choice(np.array([-1, 0, 1]), (20, 36)))),
        ("hidden", ir.IF(threshold=rng.integers(1, 4, 20), v_init=np.zeros(1, np.int64),
                         reset="zero", fire_once=True)),
        ("dense2", ir.Dense(weight=rng.choice(np.array([-1, 1]), (5, 20)))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([2]))),
    )
    raw = rng.integers(0, 256, (30, 1, 6, 6))
    raw[rng.random(raw.shape) < 0.4] = 0
    engine = simulate_ttfs(graph, raw, mode="integer", record=True, timesteps=16)
    golden = semantics.run(graph, raw, 16, mode="integer")
    for name, raster in golden.rasters.items():
        np.testing.assert_array_equal(engine.rasters[name], raster, err_msg=name)
    np.testing.assert_array_equal(engine.predictions, golden.decisions)
    np.testing.assert_array_equal(engine.decision_time, golden.decision_time)
    np.testing.assert_array_equal(engine.readout_state, golden.readout_state)
    np.testing.assert_array_equal(engine.synops, golden.synops)


def test_float_mode_matches_golden_to_rounding():
    graph = _integer_mlp("rate", "potential")
    raw = np.random.default_rng(3).integers(0, 256, (11, 1, 6, 6))
    engine = simulate(graph, raw, 12, mode="float", record=True)
    golden = semantics.run(graph, raw, 12, mode="float")
    for name, raster in golden.rasters.items():
        np.testing.assert_array_equal(engine.rasters[name], raster, err_msg=name)
    np.testing.assert_allclose(engine.readout_state, golden.readout_state, rtol=1e-6)


def test_first_spike_tie_break_is_largest_potential_then_lowest_index():
    crossing = np.array([[True, True, True], [False, True, True], [False, False, False]])
    v = np.array([[5, 7, 7], [9, 4, 4], [1, 2, 3]])
    np.testing.assert_array_equal(semantics.first_spike_winner(crossing, v), [1, 1, -1])


# ------------------------------------------------------------------------------ leaky neurons


def _leaky_graph(reset: str, reset_delay: bool, comparison: str, seed: int = 0,
                 readout_dv: int = 0) -> ir.Graph:
    """Direct-coded Dense -> LIF -> Dense -> CubaLIF -> Readout, integer parameters, per-neuron
    decays, thresholds and initial potentials, big enough currents to reach the wrap and the
    saturation."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(12,))),
        ("fc1", ir.Dense(weight=rng.integers(-9, 12, (16, 12)), bias=rng.integers(-3, 4, 16))),
        ("lif", ir.LIF(threshold=rng.integers(5, 40, 16), dv=rng.integers(0, 4097, 16),
                       v_init=rng.integers(-3, 4, 16), reset=reset, reset_delay=reset_delay,
                       comparison=comparison)),
        ("fc2", ir.Dense(weight=rng.integers(-6, 8, (8, 16)))),
        ("cuba", ir.CubaLIF(threshold=np.array([6]), du=rng.integers(0, 4097, 8),
                            dv=np.array([300]), reset=reset, reset_delay=reset_delay,
                            comparison=comparison)),
        ("fc3", ir.Dense(weight=rng.integers(-4, 5, (4, 8)))),
        ("readout", ir.Readout(dv=readout_dv)),
    )
    return graph


@pytest.mark.parametrize("reset, reset_delay", [("zero", False), ("subtract", False),
                                                ("subtract", True)])
@pytest.mark.parametrize("comparison", [">", ">="])
def test_leaky_engine_matches_golden(reset, reset_delay, comparison):
    graph = _leaky_graph(reset, reset_delay, comparison, readout_dv=0 if reset == "zero" else 700)
    raw = np.random.default_rng(4).integers(-20, 60, (9, 12))
    _assert_engine_matches_golden(graph, raw, timesteps=15)
    spikes = simulate(graph, raw, 15, mode="integer").spike_counts
    assert spikes["lif"].sum() > 0 and spikes["cuba"].sum() > 0


def test_leaky_float_mode_matches_golden():
    graph = _leaky_graph("subtract", True, ">", seed=2)
    for name in ("lif", "cuba"):  # fractional decays are allowed in float mode
        graph.nodes[name].dv = graph.nodes[name].dv + 0.4
    raw = np.random.default_rng(5).integers(-20, 60, (9, 12))
    engine = simulate(graph, raw, 15, mode="float", record=True)
    golden = semantics.run(graph, raw, 15, mode="float")
    for name, raster in golden.rasters.items():
        np.testing.assert_array_equal(engine.rasters[name], raster, err_msg=name)
    np.testing.assert_allclose(engine.readout_state, golden.readout_state, rtol=1e-5)


def test_leaky_integer_rules_match_loihi_arithmetic():
    # trunc toward zero, 64x input, wrap of u once past 2**23, saturation of v at 2**23 - 1
    np.testing.assert_array_equal(semantics.decay(np.array([-100, 100, -1, 7]), 2048, True),
                                  [-50, 50, 0, 3])
    assert semantics.wrap_current(np.array([2**23 + 5]))[0] == 5 - 2**23
    assert semantics.wrap_current(np.array([-2**23]))[0] == 2**23
    assert semantics.wrap_current(np.array([2**23]))[0] == 2**23
    v, u, spikes = semantics.leaky_update(
        np.array([10 - 2**23]), np.zeros(1, np.int64), np.zeros(1, bool), np.array([-100]),
        np.array([5]), np.array([4096]), np.array([0]), "zero", False, ">", True)
    assert u[0] == -6400 and v[0] == 1 - 2**23 and not spikes[0]
    v, _, spikes = semantics.leaky_update(
        np.array([320]), np.zeros(1, np.int64), np.zeros(1, bool), np.array([0]),
        np.array([5]), np.array([4096]), np.array([0]), "zero", False, ">", True)
    assert v[0] == 320 and not spikes[0]  # v > 64 * threshold is strict


def test_delayed_subtract_is_snntorch_update():
    # mem[t] = beta mem[t-1] + I[t] - spk[t-1] thr; spk[t] = mem[t] > thr (unscaled by beta)
    node = ir.LIF(threshold=np.array([1.0]), dv=np.array([409.6]), reset="subtract",
                  reset_delay=True)
    state = semantics.initial_state(node, (1,), 1, False)
    mem, previous = 0.0, 0.0
    for current in [0.7, 0.9, 0.2, 1.5, 0.0, 0.4]:
        spike = semantics.leaky_step(node, state, np.array([[current]]), False)[0, 0]
        mem = 0.9 * mem + current - previous * 1.0
        previous = float(mem > 1.0)
        assert spike == previous and state["v"][0, 0] == pytest.approx(mem)
