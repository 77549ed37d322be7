"""BSTDG training: gradient rules, a fast digits run, determinism, resume, export, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from snncc.commands.train import register
from snncc.datasets import load_dataset
from snncc.engines import simulate
from snncc.engines.ttfs import fire_times, simulate_ttfs
from snncc.errors import SnnccError
from snncc.frontend.bstdg import load_bstdg, read_bstdg
from snncc.train.bstdg import (
    BSTDGConfig,
    BSTDGNetwork,
    Working,
    checkpoint_path,
    initial_network,
    layer_sparsities,
    prune,
    sgd_samples,
    to_model,
    train,
)
from snncc.train.config import DATASET_RECIPES, recipe_config

#: The fast digits run of the CI, the digits recipe: 1,437 training images, 360 test images, a
#: few seconds. 90.6% (seeds 1 and 2: 89.7% and 88.6%). The potential margin, tuned on MNIST,
#: costs these small thresholds 3-5 pp (margin 1: 87.5%, 85.8%, 83.3%; margin 2: 86.1%, 85.6%,
#: 86.4%).
DIGITS_CONFIG = DATASET_RECIPES["digits"]
DIGITS_MIN_ACCURACY = 0.85


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="module")
def digits_result(digits):
    train_set, test_set = digits
    return train(BSTDGConfig(**DIGITS_CONFIG), train_set.images, train_set.labels,
                 test_set.images, test_set.labels)


# -------------------------------------------------------------------------------- learning rules


def reference_sample(network: BSTDGNetwork, rates: list[np.ndarray], times_in: np.ndarray,
                     label: int, config: BSTDGConfig, rate: float, frozen: bool = False) -> None:
    """One sample of the module docstring's rules, written plainly in numpy (in place)."""
    t_max = network.t_max
    times, v_fire, v_final = network.forward(times_in[None])
    times = [t[0].astype(np.int64) for t in times]
    for layer, rate_layer in enumerate(rates):
        fired = times[layer + 1] < t_max
        rate_layer[:] = 0.999 * rate_layer + 0.001 * fired
    out = times[-1].astype(np.float64)
    if config.potential_margin:  # the error's view: correct at theta + m, others at theta - m
        threshold = network.integer_thresholds()[-1]
        view = [fire_times(times[-2][None], network.deployed[-1], limit, t_max)[0][0]
                for limit in (threshold + config.potential_margin,
                              max(1, threshold - config.potential_margin))]
        out = view[1].astype(np.float64)
        out[label] = view[0][label]
        times[-1] = out.astype(np.int64)
    margin = config.margin * t_max
    target_correct = min(out.min(), t_max - margin)
    target = np.minimum(np.maximum(out, target_correct + margin), t_max)
    target[label] = target_correct
    delta = (out - target) / t_max
    if not delta.any():
        return
    deltas = [np.empty(0)] * len(network.weights)
    deltas[-1] = delta / np.linalg.norm(delta) if config.normalize_error else delta
    for layer in range(len(network.weights) - 2, -1, -1):
        upper, own = times[layer + 2], times[layer + 1]
        reach = upper[:, None] >= own[None, :] - config.backprop_window  # (upper, own)
        delta = (deltas[layer + 1][:, None] * network.deployed[layer + 1] * reach).sum(axis=0)
        if config.normalize_error and delta.any():
            delta = delta / np.linalg.norm(delta)
        quiet = (own == t_max) & (rates[layer] < config.min_firing_rate)
        delta = delta + quiet * config.dead_push * (1 - rates[layer] / config.min_firing_rate)
        deltas[layer] = delta
    mode = 0 if config.target_sparsity == 0 else (2 if config.fixed_signs else 1)
    for layer, (shadow, deployed) in enumerate(zip(network.weights, network.deployed,
                                                   strict=True)):
        pre, post = times[layer], times[layer + 1]
        causal = (pre[None, :] < t_max) & (pre[None, :] <= post[:, None])  # (out, in)
        if frozen:  # a frozen mask: pruned synapses do not learn
            causal = causal & (deployed != 0)
        step = rate * deltas[layer][:, None] * causal
        if mode == 2:
            step = step * network.fixed_signs[layer]
        shadow[...] = np.where(causal & (deltas[layer][:, None] != 0),
                               np.clip(shadow + step, -1, 1), shadow)
        follow = np.ones_like(deployed, bool) if mode == 0 else (deployed != 0) & (mode == 1)
        deployed[...] = np.where(follow, np.where(shadow >= 0, 1, -1), deployed)
        scaled = config.threshold_learning_rate * rate / config.learning_rate
        network.thresholds[layer] = max(1.0, network.thresholds[layer]
                                        - scaled * deltas[layer].sum())


@pytest.mark.parametrize("settings", [
    dict(hidden=(12,)),
    dict(hidden=(12, 9), backprop_window=0, threshold_learning_rate=0.3),
    dict(hidden=(12,), normalize_error=False, margin=0.2, min_firing_rate=0.6,
         potential_margin=0),
    dict(hidden=(12,), potential_margin=1),  # the output threshold 2 - 1 is the floor of 1
    dict(hidden=(12,), target_sparsity=0.4),
    dict(hidden=(12, 9), target_sparsity=0.4, pruning="gradr", threshold_learning_rate=0.1),
    dict(hidden=(12,), target_sparsity=0.4, prune_start=0.0, prune_ramp=0.0),  # frozen mask
])
def test_compiled_updates_follow_the_documented_rules(settings) -> None:
    rng = np.random.default_rng(7)
    t_max, inputs, classes = 16, 20, 4
    config = BSTDGConfig(t_max=t_max, hidden_threshold=2, output_threshold=2, learning_rate=0.2,
                         final_learning_rate=0.2, init_scale=0.3, **settings)
    times = rng.integers(0, t_max + 1, (30, inputs)).astype(np.int16)  # t_max: no spike
    labels = rng.integers(0, classes, 30)
    compiled = initial_network(config, (inputs,), classes)
    if config.target_sparsity and not config.fixed_signs:
        for shadow, deployed in zip(compiled.weights, compiled.deployed, strict=True):
            prune(shadow, deployed, None, config.target_sparsity)
    plain = BSTDGNetwork([w.copy() for w in compiled.weights], compiled.thresholds.copy(), t_max,
                         (inputs,), deployed=compiled.binary_weights(),
                         fixed_signs=compiled.fixed_signs)
    rates = [np.full(h, 0.5) for h in config.hidden]
    plain_rates = [r.copy() for r in rates]
    updated = 0
    for sample in range(len(labels)):
        working = Working.of(compiled)
        # done > 0: with no ramp the mask counts as pruned already, and is frozen
        sgd_samples(working, compiled.thresholds, rates, times, labels, np.array([sample]),
                    config, 1, 10**9)
        working.store(compiled)
        frozen = config.target_sparsity > 0 and config.sparsity_at(0.0) == 0.4 \
            and not config.fixed_signs
        reference_sample(plain, plain_rates, times[sample], int(labels[sample]), config,
                         config.learning_rate, frozen)
        for a, b in zip(compiled.weights, plain.weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        for a, b in zip(compiled.deployed, plain.deployed, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(compiled.thresholds, plain.thresholds, atol=1e-12)
        for a, b in zip(rates, plain_rates, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-15)
        updated += not np.array_equal(compiled.weights[0], initial_network(
            config, (inputs,), classes).weights[0])
    assert updated  # the rules were exercised, not skipped


def test_compiled_forward_matches_the_golden_simulator(digits) -> None:
    train_set, _ = digits
    config = BSTDGConfig(hidden=(40, 30), t_max=32, hidden_threshold=3, output_threshold=3,
                         learning_rate=1e-9, final_learning_rate=0.0)
    network = initial_network(config, train_set.images.shape[1:], 10)
    times = network.input_times(train_set.images)
    golden = network.predict(train_set.images)
    spikes = sum((t < 32).sum() for t in network.forward(times)[0][1:-1])
    # a zero learning rate leaves everything as it is: the counts are of one fixed network
    frozen = BSTDGConfig(**{**config.to_json(), "hidden": (40, 30), "learning_rate": 1e-300})
    correct, hidden = sgd_samples(Working.of(network), network.thresholds.copy(),
                                  [np.full(40, 0.5), np.full(30, 0.5)], times,
                                  train_set.labels, np.arange(len(times)), frozen, 0, 1)
    assert correct == int((golden == train_set.labels).sum())
    assert hidden == spikes


def test_a_silent_hidden_neuron_below_the_minimum_rate_is_pushed_to_fire() -> None:
    t_max = 16
    config = BSTDGConfig(hidden=(2,), t_max=t_max, hidden_threshold=50, output_threshold=1,
                         min_firing_rate=0.2, dead_push=0.1, learning_rate=0.5,
                         final_learning_rate=0.5)
    changes = []
    for rate in (0.1, 0.5):  # below and above the minimum firing rate
        network = initial_network(config, (3,), 2)
        before = network.weights[0].copy()
        working = Working.of(network)
        # threshold 50 is out of reach: both hidden neurons stay silent
        sgd_samples(working, network.thresholds, [np.full(2, rate)],
                    np.array([[1, 2, t_max]], np.int16), np.array([0]), np.array([0]), config,
                    0, 1)
        working.store(network)
        changes.append(network.weights[0] - before)
    extra = changes[0] - changes[1]
    running = 0.999 * 0.1  # the rate after this silent sample
    np.testing.assert_allclose(extra[:, :2], 0.5 * 0.1 * (1 - running / 0.2), rtol=1e-9)
    assert (extra[:, 2] == 0).all()  # an input that never spiked gets nothing


def test_layer_sparsities_share_a_global_budget_by_the_erk_rule() -> None:
    sizes = [(784, 600), (600, 10)]
    total = 784 * 600 + 600 * 10
    for sparsity in (0.5, 0.9, 0.99):
        layers = layer_sparsities(sizes, sparsity)
        kept = sum((1 - p) * a * b for p, (a, b) in zip(layers, sizes, strict=True))
        assert kept == pytest.approx((1 - sparsity) * total)
        assert layers[1] < layers[0]  # the small output layer keeps more
    assert layer_sparsities(sizes, 0.9)[1] == 0.0  # capped: dense
    assert layer_sparsities(sizes, 0.9)[0] == pytest.approx(1 - (0.1 * total - 6000) / 470400)
    unscaled = layer_sparsities(sizes, 0.99)
    ratio = (1 - unscaled[1]) / (1 - unscaled[0])
    assert ratio == pytest.approx((610 / 6000) / (1384 / 470400))
    assert layer_sparsities(sizes, 0.0) == [0.0, 0.0]


def test_prune_removes_the_weakest_and_deploys_the_rest() -> None:
    shadow = np.array([[0.5, -0.1, 0.02], [-0.7, 0.0, 0.3]])
    deployed = np.zeros(shadow.shape, np.int8)
    prune(shadow, deployed, None, 0.5)  # floor(3) smallest |w| pruned: 0.0, 0.02, -0.1
    np.testing.assert_array_equal(deployed, [[1, 0, 0], [-1, 0, 1]])
    fixed = np.array([[1, -1, 1], [-1, 1, -1]], np.int8)
    theta = np.array([[0.5, 0.4, -0.2], [0.1, 0.9, 0.3]])
    prune(theta, deployed, fixed, 1 / 6)  # one pruned (theta -0.2); theta <= 0 is pruned anyway
    np.testing.assert_array_equal(deployed, [[1, -1, 0], [-1, 1, -1]])


def test_balanced_pruning_shares_the_same_count_out_evenly() -> None:
    strength = np.array([[0.13, 0.13, 0.64, 0.10],
                         [0.54, 0.36, 1.30, 0.95],
                         [0.70, 1.27, 0.62, 0.04],
                         [2.33, 0.22, 1.25, 0.73],
                         [0.54, 0.32, 0.41, 1.04]])  # (in 5, out 4)
    deployed = np.zeros(strength.shape, np.int8)
    prune(strength, deployed, None, 0.55, fan_in_axis=0)  # floor(11) pruned, 9 kept: 2 each + 1
    assert np.count_nonzero(deployed == 0) == 11
    np.testing.assert_array_equal((deployed != 0).sum(axis=0), [2, 2, 2, 3])
    # each neuron keeps its strongest; the extra goes to the strongest runner-up (0.73)
    np.testing.assert_array_equal(deployed != 0, [[0, 0, 0, 0], [0, 1, 1, 1], [1, 1, 0, 0],
                                                  [1, 0, 1, 1], [0, 0, 0, 1]])
    transposed = np.zeros(strength.T.shape, np.int8)
    prune(strength.T.copy(), transposed, None, 0.55, fan_in_axis=1)
    np.testing.assert_array_equal(transposed, deployed.T)


def test_learning_rate_defaults_depend_on_the_pruning_mode() -> None:
    assert (BSTDGConfig().learning_rate, BSTDGConfig().final_learning_rate) == (0.1, 0.001)
    gradr = BSTDGConfig(target_sparsity=0.9, pruning="gradr")
    assert (gradr.learning_rate, gradr.final_learning_rate) == (0.01, 0.0001)
    assert BSTDGConfig(target_sparsity=0.9).learning_rate == 0.1
    chosen = BSTDGConfig(learning_rate=0.05)
    assert chosen.final_learning_rate == 0.0005
    assert BSTDGConfig(**chosen.to_json()) == chosen  # a stored config rebuilds exactly


def test_magnitude_schedule_trains_dense_then_ramps_cubically() -> None:
    config = BSTDGConfig(target_sparsity=0.8, prune_start=0.5, prune_ramp=0.2)
    assert config.sparsity_at(0.49) == 0.0
    assert config.sparsity_at(0.6) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert config.sparsity_at(0.7) == pytest.approx(0.8)
    assert config.sparsity_at(1.0) == pytest.approx(0.8)
    gradr = BSTDGConfig(target_sparsity=0.8, pruning="gradr")
    assert gradr.sparsity_at(0.0) == 0.8 and gradr.fixed_signs
    assert BSTDGConfig().sparsity_at(0.9) == 0.0


# ------------------------------------------------------------------------------------- training


def test_digits_training_is_fast_and_accurate(digits_result) -> None:
    accuracy = digits_result.test_accuracy
    assert accuracy is not None and accuracy > DIGITS_MIN_ACCURACY
    assert len(digits_result.history) == DIGITS_CONFIG["epochs"]
    assert all(record.hidden_spikes > 0 for record in digits_result.history)


def test_exported_network_runs_identically_in_both_simulators(digits, digits_result) -> None:
    _, test_set = digits
    model = to_model(digits_result, "digits")
    assert set(np.unique(model.weights[0])) <= {-1, 1}
    np.testing.assert_array_equal([t[0] for t in model.thresholds],
                                  np.ceil(digits_result.network.thresholds))
    from snncc.frontend.bstdg import to_graph

    graph = to_graph(model)
    event = simulate_ttfs(graph, test_set.images, labels=test_set.labels)
    assert event.accuracy == pytest.approx(digits_result.test_accuracy)
    np.testing.assert_array_equal(event.predictions[-1],
                                  digits_result.network.predict(test_set.images))
    step = simulate(graph, test_set.images[:60], timesteps=64, mode="integer")
    np.testing.assert_array_equal(step.predictions, event.predictions[:, :60])


def small_run(digits, tmp_path: Path | None = None, **overrides):
    train_set, test_set = digits
    config = BSTDGConfig(**{**DIGITS_CONFIG, "epochs": 3, "hidden": (32,), **overrides})
    return config, dict(train_images=train_set.images[:300], train_labels=train_set.labels[:300],
                        test_images=test_set.images[:50], test_labels=test_set.labels[:50])


def test_same_seed_same_network_other_seed_differs(digits) -> None:
    config, data = small_run(digits)
    first = train(config, **data).network
    second = train(config, **data).network
    other = train(BSTDGConfig(**{**DIGITS_CONFIG, "epochs": 3, "hidden": (32,), "seed": 1}),
                  **data).network
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.weights[0], other.weights[0])


def test_interrupted_run_resumes_bit_identically(digits, tmp_path: Path) -> None:
    config, data = small_run(digits)
    checkpoint = tmp_path / "run.ckpt.npz"
    straight = train(config, **data)
    partial = train(config, **data, checkpoint=checkpoint, stop_after=1)
    assert len(partial.history) == 1 and checkpoint.exists()
    resumed = train(config, **data, checkpoint=checkpoint, resume=True)
    assert [r.test_accuracy for r in resumed.history] == [r.test_accuracy for r in straight.history]
    for a, b in zip(straight.network.weights, resumed.network.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(straight.network.thresholds, resumed.network.thresholds)


def test_resume_errors(digits, tmp_path: Path) -> None:
    config, data = small_run(digits)
    checkpoint = tmp_path / "run.ckpt.npz"
    with pytest.raises(SnnccError, match="no checkpoint"):
        train(config, **data, checkpoint=checkpoint, resume=True)
    train(config, **data, checkpoint=checkpoint, stop_after=1)
    other = BSTDGConfig(**{**DIGITS_CONFIG, "epochs": 3, "hidden": (32,), "t_max": 32})
    with pytest.raises(SnnccError, match="t_max=64.*t_max=32"):
        train(other, **data, checkpoint=checkpoint, resume=True)
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    with pytest.raises(SnnccError, match="corrupt or truncated"):
        train(config, **data, checkpoint=checkpoint, resume=True)


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "epochs must be >= 1"),
    ("target_sparsity", 1.0, "target sparsity must be in \\[0, 1\\)"),
    ("target_sparsity", -0.1, "target sparsity must be in \\[0, 1\\)"),
    ("t_max", 1, "t_max must be in \\[2, 32767\\]"),
    ("pruning", "random", "pruning must be one of magnitude, gradr, got 'random'"),
    ("prune_start", 0.95, "start \\+ ramp <= 1"),
    ("final_learning_rate", 1.0, "final learning rate must be in"),
    ("backprop_window", -1, "backprop window must be >= 0"),
    ("hidden", (0,), "hidden sizes must be >= 1"),
    ("margin", 1.5, "margin must be in"),
    ("potential_margin", -1, "potential margin must be a whole number >= 0, got -1"),
    ("potential_margin", 1.5, "potential margin must be a whole number >= 0, got 1.5"),
])
def test_config_errors(field: str, value, message: str) -> None:
    with pytest.raises(SnnccError, match=message):
        BSTDGConfig(**{field: value})


# ------------------------------------------------------------------------------ pruning-aware


@pytest.mark.parametrize("pruning", ["magnitude", "gradr"])
def test_pruning_aware_training_meets_the_target_sparsity(digits, pruning) -> None:
    train_set, test_set = digits
    # without a frozen mask the last re-pruning ranks the final weights (frozen: tested below);
    # unbalanced, the layer's weakest synapses go wherever they are (balanced: tested below)
    config = BSTDGConfig(**{**DIGITS_CONFIG, "target_sparsity": 0.5, "pruning": pruning,
                            "freeze_mask": False, "balanced_fan_in": False})
    result = train(config, train_set.images, train_set.labels, test_set.images, test_set.labels)
    model = to_model(result, "digits")
    sizes = [w.shape[::-1] for w in model.weights]
    kept = sum(np.count_nonzero(w) for w in model.weights)
    connectivity = kept / sum(w.size for w in model.weights)
    assert result.history[-1].connectivity == connectivity
    network = result.network
    for index, sparsity in enumerate(layer_sparsities(sizes, 0.5)):
        weight, shadow = model.weights[index], network.weights[index]
        kept_mask = weight != 0
        budget = int(sparsity * weight.size)
        if pruning == "gradr":
            # kept synapses keep their initial sign; theta <= 0 is pruned too (ReLU)
            np.testing.assert_array_equal(weight[kept_mask],
                                          network.fixed_signs[index][kept_mask])
            assert np.count_nonzero(weight == 0) == max(budget, np.count_nonzero(shadow <= 0))
        else:  # the strongest synapses are kept and deploy sign(w)
            np.testing.assert_array_equal(weight[kept_mask],
                                          np.where(shadow[kept_mask] >= 0, 1, -1))
            assert np.count_nonzero(weight == 0) == budget
            if budget:
                assert np.abs(shadow[kept_mask]).min() >= np.abs(shadow[~kept_mask]).max()
    if pruning == "magnitude":
        assert connectivity == pytest.approx(0.5, abs=1e-3)
    else:
        assert 0.3 < connectivity <= 0.5 + 1e-3
    assert result.test_accuracy > 0.75
    from snncc.frontend.bstdg import to_graph

    graph = to_graph(model)
    event = simulate_ttfs(graph, test_set.images, labels=test_set.labels)
    assert event.accuracy == pytest.approx(result.test_accuracy)
    step = simulate(graph, test_set.images[:40], timesteps=64, mode="integer")
    np.testing.assert_array_equal(step.predictions, event.predictions[:, :40])
    np.testing.assert_array_equal(step.synops, event.synops[:40])


@pytest.mark.parametrize("freeze", [True, False])
def test_a_frozen_mask_stops_regrowth_after_the_ramp(digits, freeze) -> None:
    config, data = small_run(digits, target_sparsity=0.6, prune_start=0.0, prune_ramp=0.3,
                             epochs=4, freeze_mask=freeze)
    checkpoint_run = [train(config, **data, stop_after=n).network for n in (2, 4)]
    masks = [[d == 0 for d in network.deployed] for network in checkpoint_run]
    for early, late, early_net, late_net in zip(masks[0], masks[1], checkpoint_run[0].weights,
                                                checkpoint_run[1].weights, strict=True):
        assert early.any()
        if freeze:  # same mask, and pruned shadow weights untouched
            np.testing.assert_array_equal(early, late)
            np.testing.assert_array_equal(early_net[early], late_net[early])
        else:
            assert not np.array_equal(early_net[early], late_net[early])


@pytest.mark.parametrize("pruning", ["magnitude", "gradr"])
def test_balanced_runs_give_every_neuron_the_same_fan_in(digits, pruning) -> None:
    config, data = small_run(digits, target_sparsity=0.8, pruning=pruning, prune_start=0.0,
                             prune_ramp=0.5)
    result = train(config, **data)
    sizes = [w.shape[::-1] for w in result.network.weights]
    for deployed, sparsity in zip(result.network.deployed, layer_sparsities(sizes, 0.8),
                                  strict=True):
        fan_in = (deployed != 0).sum(axis=1)
        assert fan_in.max() - fan_in.min() <= 1 or pruning == "gradr"  # gradr: theta <= 0 too
        assert np.count_nonzero(deployed == 0) >= int(sparsity * deployed.size)
        if pruning == "magnitude":
            assert np.count_nonzero(deployed == 0) == int(sparsity * deployed.size)


def test_magnitude_runs_train_dense_before_they_prune(digits) -> None:
    config, data = small_run(digits, target_sparsity=0.6, prune_start=0.5, prune_ramp=0.2,
                             epochs=5)
    history = train(config, **data).history
    connectivity = [record.connectivity for record in history]
    assert connectivity[:2] == [1.0, 1.0]  # epochs 1-2 end before 50% of the run
    assert 0.4 < connectivity[2] < 1.0  # mid-ramp (cubic)
    assert connectivity[3:] == pytest.approx([0.4, 0.4], abs=2e-3)


@pytest.mark.parametrize("pruning", ["magnitude", "gradr"])
def test_pruned_run_resumes_bit_identically(digits, tmp_path: Path, pruning) -> None:
    config, data = small_run(digits, target_sparsity=0.5, pruning=pruning, prune_start=0.2)
    checkpoint = tmp_path / "pruned.ckpt.npz"
    straight = train(config, **data)
    train(config, **data, checkpoint=checkpoint, stop_after=2)
    resumed = train(config, **data, checkpoint=checkpoint, resume=True)
    for a, b in zip(straight.network.binary_weights(), resumed.network.binary_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(straight.network.weights, resumed.network.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_two_hidden_layers_train(digits) -> None:
    train_set, test_set = digits
    config = BSTDGConfig(**{**DIGITS_CONFIG, "hidden": (100, 50), "epochs": 10,
                            "learning_rate": 0.01, "final_learning_rate": 0.0001})
    result = train(config, train_set.images, train_set.labels, test_set.images, test_set.labels)
    assert result.test_accuracy > 0.6
    assert [w.shape for w in result.network.weights] == [(100, 64), (50, 100), (10, 50)]


# ------------------------------------------------------------------------------------------ CLI


def test_cli_trains_writes_and_resumes(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    output = tmp_path / "digits.bstdg.h5"
    arguments = ["train", "bstdg", "--dataset", "digits", "--hidden", "32", "--epochs", "2",
                 "--tmax", "32", "--learning-rate", "0.05", "--limit", "200", "-o", str(output)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output and "wrote" in result.output
    model = read_bstdg(output)
    assert model.metadata["dataset"] == "digits" and model.metadata["epochs"] == 2
    assert model.metadata["hyperparameters"]["hidden"] == [32]
    assert not checkpoint_path(output).exists()
    graph = load_bstdg(output)
    assert graph.input.t_max == 32
    result = CliRunner().invoke(app, arguments + ["--resume"])
    assert isinstance(result.exception, SnnccError)
    assert "cannot resume" in str(result.exception)
    result = CliRunner().invoke(app, arguments[:-2] + ["--tmax", "1", "-o", str(output)])
    assert isinstance(result.exception, SnnccError)
    assert "t_max must be in [2, 32767]" in str(result.exception)


# ------------------------------------------------------------------------ optional learning rules


def test_positive_initialisation_starts_every_weight_at_plus_one() -> None:
    config = BSTDGConfig(hidden=(5,), init_positive=True, init_scale=0.3)
    network = initial_network(config, (7,), 3)
    for weight, deployed in zip(network.weights, network.binary_weights(), strict=True):
        assert (weight >= 0).all() and (weight <= 0.3).all()
        assert (deployed == 1).all()
    mixed = initial_network(BSTDGConfig(hidden=(5,), init_scale=0.3, init_positive=False), (7,), 3)
    assert (mixed.weights[0] < 0).any()
    deep = initial_network(BSTDGConfig(hidden=(5, 5), init_positive=True), (40,), 3)
    assert all((w < 0).any() for w in deep.weights[:-1])  # deeper hidden layers start mixed
    assert (deep.weights[-1] >= 0).all() and (deep.binary_weights()[-1] == 1).all()
    symmetric = initial_network(BSTDGConfig(hidden=(5, 5), init_positive=False), (40,), 3)
    assert all((w < 0).any() for w in symmetric.weights)
    np.testing.assert_array_equal(deep.weights[0], symmetric.weights[0])


def test_cli_passes_every_option_to_the_run(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    output = tmp_path / "digits.bstdg.h5"
    result = CliRunner().invoke(app, [
        "train", "bstdg", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--tmax", "16",
        "--limit", "100", "--margin", "0.125", "--potential-margin", "3", "--symmetric-init",
        "--shift", "1",
        "--learning-rate", "0.05", "--threshold-learning-rate", "0.01",
        "--hidden-threshold", "3", "--output-threshold", "5", "--target-sparsity", "0.3",
        "--pruning", "gradr", "--unbalanced-fan-in", "-o", str(output)])
    assert result.exit_code == 0, result.output
    settings = read_bstdg(output).metadata["hyperparameters"]
    assert settings["margin"] == 0.125 and settings["init_positive"] is False
    assert settings["potential_margin"] == 3
    assert settings["shift"] == 1 and settings["learning_rate"] == 0.05
    assert settings["threshold_learning_rate"] == 0.01
    assert (settings["hidden_threshold"], settings["output_threshold"]) == (3, 5)
    assert (settings["target_sparsity"], settings["pruning"]) == (0.3, "gradr")
    assert settings["balanced_fan_in"] is False
    dense = tmp_path / "dense.bstdg.h5"
    result = CliRunner().invoke(app, [
        "train", "bstdg", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--tmax", "16",
        "--limit", "100", "-o", str(dense)])
    assert result.exit_code == 0, result.output
    settings = read_bstdg(dense).metadata["hyperparameters"]
    # options left out take the digits recipe, not the MNIST defaults
    assert (settings["hidden_threshold"], settings["output_threshold"]) == (6, 12)
    assert settings["potential_margin"] == 0 and settings["init_positive"] is False
    assert settings["learning_rate"] == 0.03
    assert settings == BSTDGConfig(**{**DIGITS_CONFIG, "hidden": (16,), "epochs": 1,
                                      "t_max": 16}).to_json()


def test_recipes_fill_in_what_the_user_left_out() -> None:
    assert recipe_config("mnist") == BSTDGConfig()
    fashion = recipe_config("fashion-mnist", epochs=3, output_threshold=None)
    assert (fashion.hidden_threshold, fashion.output_threshold, fashion.epochs) == (40, 60, 3)
    digits = recipe_config("digits", potential_margin=2, hidden=(8,))
    assert (digits.potential_margin, digits.hidden, digits.t_max) == (2, (8,), 64)
    assert digits.final_learning_rate == pytest.approx(0.0003)
    with pytest.raises(SnnccError, match="no training recipe for dataset 'cifar'; choose from"):
        recipe_config("cifar")


def test_shifted_images_translate_with_zero_fill() -> None:
    from snncc.train.bstdg import shifted_images

    images = np.arange(2 * 1 * 3 * 4).reshape(2, 1, 3, 4)
    out = shifted_images(images, np.array([[1, 0], [0, -2]]))
    # sample 0 moves down one row, sample 1 left two columns
    np.testing.assert_array_equal(out[0, 0], [[0, 0, 0, 0], [0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(out[1, 0], [[14, 15, 0, 0], [18, 19, 0, 0], [22, 23, 0, 0]])
    np.testing.assert_array_equal(shifted_images(images, np.zeros((2, 2), int)), images)


def test_negative_shift_is_rejected() -> None:
    with pytest.raises(SnnccError, match="shift must be >= 0 pixels, got -1"):
        BSTDGConfig(shift=-1)


def test_augmented_training_is_deterministic_and_differs_from_plain(digits) -> None:
    train_set, _ = digits
    config = dict(hidden=(20,), t_max=16, epochs=1, hidden_threshold=3,
                  output_threshold=4)
    images, labels = train_set.images[:256], train_set.labels[:256]
    runs = [train(BSTDGConfig(**config, shift=shift), images, labels).network.weights[0]
            for shift in (1, 1, 0)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_gradient_rewiring_runs_keep_mixed_fixed_signs_under_positive_init() -> None:
    config = BSTDGConfig(hidden=(50,), init_positive=True, target_sparsity=0.5, pruning="gradr")
    network = initial_network(config, (40,), 3)
    assert network.fixed_signs is not None
    for fixed, theta in zip(network.fixed_signs, network.weights, strict=True):
        assert (fixed == 1).any() and (fixed == -1).any()
        assert (theta >= 0).all()
    magnitude = initial_network(BSTDGConfig(hidden=(50,), target_sparsity=0.5), (40,), 3)
    assert magnitude.fixed_signs is None and all((d != 0).all() for d in magnitude.deployed)


def test_laplace_prior_pulls_strengths_down(digits) -> None:
    ends = []
    for prior in (0.0, 0.01):
        config, data = small_run(digits, target_sparsity=0.5, pruning="gradr",
                                 sparsity_prior=prior, epochs=1)
        ends.append(np.concatenate([w.ravel() for w in train(config, **data).network.weights]))
    # 300 samples at rate ~0.03 move every strength about 0.09 further towards 0 with the prior
    assert (np.abs(ends[1]) < np.abs(ends[0])).mean() > 0.9


# ------------------------------------------------------------------------------ full MNIST runs


@pytest.mark.slow
@pytest.mark.parametrize("hidden, sparsity, epochs, floor", [
    ((600,), 0.0, 3, 0.945), ((600,), 0.9, 5, 0.945), ((400, 200), 0.0, 1, 0.9)])
def test_mnist_training_reaches_its_floor(data_dir: Path, hidden, sparsity, epochs,
                                          floor) -> None:
    """Short MNIST runs of the default recipe: 95.35% dense in 3 epochs, 95.08% at 10% in 5.

    Both floors fail with earlier defaults: output threshold 30 and no potential margin (94.26%
    dense), or the pruning schedule before (dense for half the run, ramp over 10%: 94.45%).
    784-400-200-10 reaches 91.50% in one epoch; with a mixed-sign output layer it never fires
    at the default output threshold (10%).
    """
    train_set = load_dataset("mnist", "train", data_dir)
    test_set = load_dataset("mnist", "test", data_dir)
    config = BSTDGConfig(hidden=hidden, epochs=epochs, target_sparsity=sparsity)
    result = train(config, train_set.images, train_set.labels, test_set.images, test_set.labels)
    assert result.test_accuracy > floor
    assert result.history[-1].connectivity == pytest.approx(1 - sparsity, abs=1e-3)
