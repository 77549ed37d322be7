"""BSTDG training: gradient rules, a fast digits run, determinism, resume, export, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from snncc.backends.ttfs import simulate_ttfs
from snncc.commands.train import register
from snncc.datasets import load_dataset
from snncc.errors import SnnccError
from snncc.frontend.bstdg import load_bstdg, read_bstdg
from snncc.simulator import simulate
from snncc.train.bstdg import (
    BSTDGConfig,
    BSTDGNetwork,
    _Adam,
    checkpoint_path,
    normalized_rows,
    output_error,
    quiet_push,
    timing_backprop,
    timing_gradient,
    to_model,
    train,
    train_step,
)

#: The fast digits run of the CI: 1,437 training images, 360 test images, a few seconds.
DIGITS_CONFIG = dict(hidden=(200,), t_max=64, epochs=10, batch_size=16, hidden_threshold=6,
                     output_threshold=12)
DIGITS_MIN_ACCURACY = 0.80


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="module")
def digits_result(digits):
    train_set, test_set = digits
    return train(BSTDGConfig(**DIGITS_CONFIG), train_set.images, train_set.labels,
                 test_set.images, test_set.labels)


# -------------------------------------------------------------------------------- gradient rules


def test_timing_gradient_counts_presynaptic_spikes_not_after_the_postsynaptic_one() -> None:
    t_max = 10
    pre = np.array([[1, 5, t_max]])  # third input never spikes
    post = np.array([[3, t_max]])  # second neuron never spikes: all spiking inputs precede it
    delta = np.array([[2.0, -1.0]])
    grad = timing_gradient(pre, post, delta, t_max)
    # dL/dw_ji = -delta_j [t_i <= t_j] for spiking i
    np.testing.assert_array_equal(grad, [[-2.0, 0.0, 0.0], [1.0, 1.0, 0.0]])


def test_timing_gradient_includes_simultaneous_spikes_and_averages_nothing() -> None:
    grad = timing_gradient(np.array([[4], [4]]), np.array([[4], [3]]), np.array([[1.0], [1.0]]), 8)
    np.testing.assert_array_equal(grad, [[-1.0]])


def test_backprop_goes_through_the_timing_indicator_and_the_weight_sign() -> None:
    pre = np.array([[1, 6, 10]])  # hidden times; 10 = silent (t_max)
    post = np.array([[5, 10]])  # output 1 silent
    delta = np.array([[1.0, 0.5]])
    weight = np.array([[1, -1, 1], [-1, 1, 1]], np.int8)
    out = timing_backprop(pre, post, delta, weight)
    # i=0 precedes both: 1*1 + 0.5*(-1); i=1 precedes only the silent one: 0.5*1;
    # i=2 (silent) counts only for the silent output: 0.5*1
    np.testing.assert_array_equal(out, [[0.5, 0.5, 0.5]])


def test_relative_targets() -> None:
    t_max, margin = 100, 10.0
    times = np.array([
        [20, 25, 50],    # correct (0) first, class 1 within the margin -> pushed to 30
        [40, 30, 100],   # class 1 first: correct targets 30, class 1 -> 40, silent 2 no error
        [100, 100, 100],  # nothing fires: correct pushed to t_max - margin, others no error
    ])
    delta = output_error(times, np.array([0, 0, 0]), t_max, margin) * t_max
    np.testing.assert_allclose(delta, [[0, -5, 0], [10, -10, 0], [10, 0, 0]])


def test_dead_hidden_neurons_are_pushed_to_fire() -> None:
    rng = np.random.default_rng(0)
    weights = [np.full((2, 4), 0.5), np.full((2, 2), 0.5)]
    weights[0][1] = -0.5  # hidden neuron 1 can never reach the threshold
    raw = rng.integers(1, 256, (8, 4)).astype(np.uint8)
    labels = np.zeros(8, np.int64)
    moved = []
    for push in (0.0, 0.1):
        network = BSTDGNetwork([w.copy() for w in weights], np.array([2.0, 1.0]), 16, (4,))
        config = BSTDGConfig(hidden=(2,), t_max=16, dead_push=push, threshold_learning_rate=0)
        times = network.input_times(raw)
        assert (network.forward(times)[0][1][:, 1] == 16).all()
        optimizer = _Adam.like(network.weights + [network.thresholds])
        train_step(network, optimizer, config, times, labels, rate=0.01)
        moved.append(network.weights[0][1] - weights[0][1])
    np.testing.assert_array_equal(moved[0], 0.0)
    assert (moved[1] > 0).all()


def test_quiet_push_grows_as_the_firing_rate_falls_below_the_minimum() -> None:
    # four samples; neuron 0 fires in 0/4, neuron 1 in 1/4, neuron 2 in 2/4, neuron 3 in 4/4
    silent = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0]], bool)
    push = quiet_push(silent, 0.1, min_rate=0.5)
    expected = np.array([0.1, 0.05, 0.0, 0.0])  # push * (1 - rate / min_rate), clipped at 0
    np.testing.assert_allclose(push, expected[None, :] * silent)
    # min_rate 0: only neurons silent for the whole batch are pushed
    np.testing.assert_allclose(quiet_push(silent, 0.1, min_rate=0.0),
                               np.array([0.1, 0, 0, 0])[None, :] * silent)


def test_error_rows_are_normalised_to_unit_length() -> None:
    delta = np.array([[3.0, -4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalized_rows(delta), [[0.6, -0.8], [0.0, 0.0]])


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
    ("t_max", 1, "t_max must be >= 2"),
    ("hidden", (0,), "hidden sizes must be >= 1"),
    ("margin", 1.5, "margin must be in"),
])
def test_config_errors(field: str, value, message: str) -> None:
    with pytest.raises(SnnccError, match=message):
        BSTDGConfig(**{field: value})


# ------------------------------------------------------------------------------ pruning-aware


def test_pruning_aware_training_meets_the_target_sparsity(digits) -> None:
    train_set, test_set = digits
    config = BSTDGConfig(**{**DIGITS_CONFIG, "target_sparsity": 0.9})
    result = train(config, train_set.images, train_set.labels, test_set.images, test_set.labels)
    model = to_model(result, "digits")
    for weight in model.weights:
        assert np.count_nonzero(weight == 0) == int(0.9 * weight.size)
    # kept synapses keep the sign they were given at initialisation
    fixed = result.network.fixed_signs
    for weight, sign in zip(model.weights, fixed, strict=True):
        np.testing.assert_array_equal(weight[weight != 0], sign[weight != 0])
    assert result.test_accuracy > 0.65
    from snncc.frontend.bstdg import to_graph

    graph = to_graph(model)
    event = simulate_ttfs(graph, test_set.images, labels=test_set.labels)
    assert event.accuracy == pytest.approx(result.test_accuracy)
    step = simulate(graph, test_set.images[:40], timesteps=64, mode="integer")
    np.testing.assert_array_equal(step.predictions, event.predictions[:, :40])
    np.testing.assert_array_equal(step.synops, event.synops[:40])


def test_pruned_run_resumes_bit_identically(digits, tmp_path: Path) -> None:
    config, data = small_run(digits, target_sparsity=0.5)
    checkpoint = tmp_path / "pruned.ckpt.npz"
    straight = train(config, **data)
    train(config, **data, checkpoint=checkpoint, stop_after=2)
    resumed = train(config, **data, checkpoint=checkpoint, resume=True)
    for a, b in zip(straight.network.binary_weights(), resumed.network.binary_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_trains_writes_and_resumes(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    output = tmp_path / "digits.bstdg.h5"
    arguments = ["train", "bstdg", "--dataset", "digits", "--hidden", "32", "--epochs", "2",
                 "--tmax", "32", "--batch-size", "16", "--limit", "200", "-o", str(output)]
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
    assert "t_max must be >= 2" in str(result.exception)


# ------------------------------------------------------------------------ optional learning rules


def test_positive_initialisation_starts_every_weight_at_plus_one() -> None:
    from snncc.train.bstdg import initial_network

    config = BSTDGConfig(hidden=(5,), init_positive=True, init_scale=0.3)
    network = initial_network(config, (7,), 3)
    for weight, deployed in zip(network.weights, network.binary_weights(), strict=True):
        assert (weight >= 0).all() and (weight <= 0.3).all()
        assert (deployed == 1).all()
    mixed = initial_network(BSTDGConfig(hidden=(5,), init_scale=0.3, init_positive=False), (7,), 3)
    assert (mixed.weights[0] < 0).any()


RECIPE_FIELDS = ("batch_size", "learning_rate", "threshold_learning_rate", "margin",
                 "init_positive")


def test_recipe_takes_the_pruning_settings_only_for_pruning_aware_runs() -> None:
    from snncc.train.config import PRUNING_RECIPE

    dense = BSTDGConfig.recipe(0.0, epochs=3, margin=None)
    assert dense == BSTDGConfig(epochs=3)
    pruned = BSTDGConfig.recipe(0.9, batch_size=16)
    assert pruned.target_sparsity == 0.9 and pruned.batch_size == 16
    for key, value in PRUNING_RECIPE.items():
        if key != "batch_size":
            assert getattr(pruned, key) == value
        assert getattr(BSTDGConfig(), key) != value  # else the recipe would change nothing


def test_cli_defaults_follow_the_recipe(tmp_path: Path) -> None:
    from snncc.train.config import PRUNING_RECIPE

    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    base = ["train", "bstdg", "--dataset", "digits", "--hidden", "16", "--epochs", "1",
            "--tmax", "16", "--limit", "100"]
    runs = {"dense": [], "pruned": ["--target-sparsity", "0.5"],
            "pruned-override": ["--target-sparsity", "0.5", "--batch-size", "8",
                                "--positive-init"]}
    settings = {}
    for name, extra in runs.items():
        output = tmp_path / f"{name}.bstdg.h5"
        result = CliRunner().invoke(app, base + extra + ["-o", str(output)])
        assert result.exit_code == 0, result.output
        settings[name] = read_bstdg(output).metadata["hyperparameters"]
    defaults = BSTDGConfig()
    for key in RECIPE_FIELDS:
        assert settings["dense"][key] == getattr(defaults, key)
        assert settings["pruned"][key] == PRUNING_RECIPE[key]
    assert settings["pruned-override"]["batch_size"] == 8
    assert settings["pruned-override"]["init_positive"] is True
    assert settings["pruned-override"]["margin"] == PRUNING_RECIPE["margin"]


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
    config = dict(hidden=(20,), t_max=16, epochs=1, batch_size=64, hidden_threshold=3,
                  output_threshold=4)
    images, labels = train_set.images[:256], train_set.labels[:256]
    runs = [train(BSTDGConfig(**config, shift=shift), images, labels).network.weights[0]
            for shift in (1, 1, 0)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_pruning_aware_runs_keep_mixed_fixed_signs_under_positive_init() -> None:
    from snncc.train.bstdg import initial_network

    config = BSTDGConfig(hidden=(50,), init_positive=True, target_sparsity=0.5)
    network = initial_network(config, (40,), 3)
    assert network.fixed_signs is not None
    for fixed in network.fixed_signs:
        assert (fixed == 1).any() and (fixed == -1).any()


def test_cli_passes_margin_initialisation_and_shift(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)

    @app.callback()
    def main() -> None:
        """Test app."""

    output = tmp_path / "digits.bstdg.h5"
    result = CliRunner().invoke(app, [
        "train", "bstdg", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--tmax", "16",
        "--limit", "100", "--margin", "0.125", "--symmetric-init", "--shift", "1",
        "-o", str(output)])
    assert result.exit_code == 0, result.output
    settings = read_bstdg(output).metadata["hyperparameters"]
    assert settings["margin"] == 0.125 and settings["init_positive"] is False
    assert settings["shift"] == 1


def test_laplace_prior_pulls_strengths_down() -> None:
    from snncc.train.bstdg import initial_network

    rng = np.random.default_rng(3)
    times = rng.integers(0, 16, (32, 20)).astype(np.int16)
    labels = rng.integers(0, 3, 32)
    ends = []
    for prior in (0.0, 0.5):
        config = BSTDGConfig(hidden=(8,), t_max=16, hidden_threshold=2, output_threshold=2,
                             target_sparsity=0.5, sparsity_prior=prior)
        network = initial_network(config, (20,), 3)
        optimizer = _Adam.like(network.weights + [network.thresholds])
        for _ in range(5):
            train_step(network, optimizer, config, times, labels, config.learning_rate)
        ends.append(np.concatenate([w.ravel() for w in network.weights]))
    # a prior this strong dominates the timing gradient: every positive strength falls faster
    assert (ends[1] < ends[0]).mean() > 0.9
