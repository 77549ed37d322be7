"""BSTDG: train binarized single-spike (time-to-first-spike) networks from spike timings.

The network (S4NN / BS4NN lineage) is a chain of fully connected layers of non-leaky
integrate-and-fire neurons without leak or bias. With presynaptic spike steps ``t_i`` and binary
weights ``s_ji = sign(w_ji)`` in {-1, +1} (``sign(0) = +1``), neuron ``j`` integrates::

    V_j(t) = sum_{i : t_i <= t} s_ji             (instantaneous synapses, no delay)
    t_j    = min { t : V_j(t) >= theta }          (first crossing; never -> t_j = t_max)

and spikes at most once. Inputs use the shared latency code
(:func:`snncc.coding.latency_spike_times`): ``t_i = floor((1 - x_i) (t_max - 1))``, ``x_i = 0``
never spikes. Because ``V`` is an integer, ``V >= theta`` equals ``V >= ceil(theta)``: training
runs the deployed integer network exactly. The output layer is read out first-spike-wins (ties:
larger potential, then lower index; no spike: largest final potential).

Learning (real "shadow" weights ``w`` in [-1, 1] receive the updates, the forward pass uses
``sign(w)``; one trainable threshold per layer):

* Output targets are relative (S4NN): with ``tau`` the earliest output spike and margin
  ``gamma = margin * t_max``, the correct neuron's target is ``T_c = min(tau, t_max - gamma)``,
  every other neuron's ``T_k = min(max(t_k, T_c + gamma), t_max)`` (fire at least ``gamma``
  later; a silent wrong neuron has no error). The error is ``delta_k = (t_k - T_k) / t_max``,
  the gradient of ``L = sum_k (t_k - T_k)^2 / (2 t_max)`` with respect to ``t_k``. The default
  margin is one step (BS4NN's ``gamma = 1``): after error normalisation (below) even a one-step
  violation, a tie included, gives a full-size update. That suits MNIST; Fashion-MNIST trains
  better with ``margin = 0.15``, and pruning-aware runs take that margin among the other
  settings of :data:`snncc.train.config.PRUNING_RECIPE` (``docs/bstdg-format.md``).
* Spike-timing gradient: ``d t_j / d w_ji = -1`` when the presynaptic spike is not after the
  postsynaptic one (``t_i <= t_j``, with silent neurons at ``t_max``), else 0; so
  ``dL/dw_ji = -delta_j [t_i <= t_j]`` and ``dL/dtheta = +sum_j delta_j``.
* Backpropagation to the layer below goes through the same timing indicator:
  ``delta_i = sum_j delta_j s_ji [t_i <= t_j]`` (a later presynaptic spike delays ``t_j`` when
  ``s_ji = +1`` and advances it when ``s_ji = -1``).
* Error normalisation (S4NN, ``normalize_error``): before a layer's update each sample's error
  vector ``delta[n, :]`` is scaled to unit norm, so every sample contributes a step of the same
  size whatever the spread of its spike times, and the hidden layer learns at the same pace as
  the output layer. Without it the few samples with large timing errors dominate the minibatch
  and training stalls near 90% on MNIST.
* Quiet neurons: the output error reaches a hidden neuron through its ``+1`` synapses to the nine
  wrong outputs more often than through the one to the correct output, so plain S4NN learning
  slowly silences the hidden layer (on MNIST the hidden spikes per sample fall from ~240 to ~10
  within 15 epochs and accuracy collapses). A hidden neuron firing for a fraction ``r`` of the
  minibatch below ``min_firing_rate`` therefore gets an extra ``delta = dead_push (1 - r /
  min_firing_rate)`` on the samples where it was silent (pushes it to fire earlier); a neuron
  silent for the whole batch gets ``dead_push``.
* Initialisation: shadow weights ``U(0, init_scale)`` with ``init_positive`` (the default: every
  synapse starts excitatory, as in BS4NN, and turns inhibitory when its weight crosses 0), else
  ``U(-init_scale, init_scale)``; pruning-aware runs always use the symmetric form.
* Augmentation (``shift = s > 0``): in every epoch each training image is translated by
  ``(dy, dx)`` drawn uniformly from ``{-s, ..., s}^2`` (zero fill, ``default_rng([seed, epoch,
  1])``) before latency coding; test images are never shifted.
* Adam on shadow weights (clipped to [-1, 1]) and thresholds (kept >= 1), cosine learning-rate
  decay over the run, minibatch averages.
* Pruning-aware training (``target_sparsity = p > 0``, in the style of Gradient Rewiring): each
  synapse keeps the sign ``s`` of its initial weight and learns a strength ``theta``; per layer the
  ``floor(p * size)`` smallest ``theta`` are pruned (deployed weight 0), the others deploy ``s``.
  ``dL/dtheta = s * dL/dw`` also for pruned synapses (so they can grow back) plus a Laplace prior
  term ``sparsity_prior * sign(theta)`` that shrinks unused strengths (0 by default: the
  top-k ranking already sets the sparsity, and the prior measured worse).

Per sample the work is event-driven: ``input spikes x fan-out`` additions forward
(:func:`snncc.backends.ttfs.fire_times`) and the same for the gradient. Runs are deterministic for a
seed (shuffling uses ``default_rng([seed, epoch])``) and resumable from per-epoch checkpoints,
which give bit-identical results to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from snncc import coding
from snncc.backends.ttfs import fire_times, first_spike_decision
from snncc.errors import SnnccError
from snncc.frontend.bstdg import BSTDGModel, write_bstdg
from snncc.train.config import BSTDGConfig
from snncc.util import atomic_path, progress

CHECKPOINT_FORMAT = "snncc-bstdg-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class BSTDGNetwork:
    """Shadow weights ``(out, in)`` per layer and one real threshold per layer.

    Without ``fixed_signs`` the deployed weight is ``sign(w)``. With ``fixed_signs`` (pruning-aware
    training) ``weights`` hold connection strengths ``theta`` and the deployed weight is
    ``fixed_sign`` where the synapse is kept and 0 where pruned: per layer, the
    ``floor(sparsity * size)`` smallest ``theta`` are pruned.
    """

    weights: list[np.ndarray]
    thresholds: np.ndarray
    t_max: int
    input_shape: tuple[int, ...]
    scale: float = 1.0 / 255.0
    fixed_signs: list[np.ndarray] | None = None
    sparsity: float = 0.0

    _signs: list[np.ndarray] | None = field(default=None, repr=False, compare=False)

    def sign_cache(self) -> list[np.ndarray]:
        """Cached deployed weights, kept current by the optimizer (which writes into them)."""
        if self._signs is None or [s.shape for s in self._signs] != [w.shape for w in
                                                                        self.weights]:
            if self.fixed_signs is None:
                self._signs = [np.where(w >= 0, 1, -1).astype(np.int8) for w in self.weights]
            else:
                self._signs = [s.copy() for s in self.fixed_signs]
                self.refresh_pruning()
        return self._signs

    def refresh_pruning(self) -> None:
        """Recompute the deployed weights of a pruning-aware network from ``theta``."""
        assert self.fixed_signs is not None and self._signs is not None
        for theta, fixed, deployed in zip(self.weights, self.fixed_signs, self._signs,
                                          strict=True):
            pruned = int(self.sparsity * theta.size)
            deployed[...] = fixed
            if pruned:
                smallest = np.argpartition(theta.reshape(-1), pruned - 1)[:pruned]
                deployed.reshape(-1)[smallest] = 0

    def binary_weights(self) -> list[np.ndarray]:
        """The deployed weights: ``sign(w)`` as int8 in {-1, +1} (``sign(0) = +1``)."""
        return [s.copy() for s in self.sign_cache()]

    def integer_thresholds(self) -> np.ndarray:
        """Deployed thresholds ``ceil(theta)`` (exact for integer potentials)."""
        return np.ceil(self.thresholds).astype(np.int64)

    def input_times(self, raw: np.ndarray) -> np.ndarray:
        """Latency spike steps of flattened raw samples, ``t_max`` for no spike (int16)."""
        times = coding.latency_spike_times(np.asarray(raw, np.float64) * self.scale, self.t_max)
        times = times.reshape(len(raw), -1)
        return np.where(times == coding.NEVER, self.t_max, times).astype(np.int16)

    def forward(self, input_times: np.ndarray, signs: list[np.ndarray] | None = None
                ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Spike times of every layer (input first; ``t_max`` = silent), output v at spike, final v."""
        times = [np.asarray(input_times)]
        thresholds = self.integer_thresholds()
        v_fire = v_final = np.empty(0)
        for weight, threshold in zip(signs or self.sign_cache(), thresholds, strict=True):
            out, v_fire, v_final, _ = fire_times(times[-1], weight, threshold, self.t_max)
            times.append(out)
        return times, v_fire, v_final

    def predict(self, raw: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """First-spike-wins class decisions for raw samples ``(N, *input_shape)``."""
        predictions = []
        for start in range(0, len(raw), batch_size):
            times, v_fire, v_final = self.forward(self.input_times(raw[start:start + batch_size]))
            predictions.append(first_spike_decision(times[-1], v_fire, v_final, self.t_max))
        return np.concatenate(predictions) if predictions else np.zeros(0, np.int64)

    def accuracy(self, raw: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(raw) == np.asarray(labels)))


# ------------------------------------------------------------------------------------ kernels


@numba.njit(cache=True, nogil=True)
def _timing_gradient_kernel(pre_times, post_times, delta, horizon, grad_t):  # pragma: no cover
    """``grad_t[i, j] += sum_n delta[n, j] [pre_n,i < horizon and pre_n,i <= post_n,j]``."""
    samples, inputs = pre_times.shape
    neurons = post_times.shape[1]
    for n in range(samples):
        post = post_times[n]
        error = delta[n]
        for i in range(inputs):
            t = pre_times[n, i]
            if t >= horizon:
                continue
            row = grad_t[i]
            for j in range(neurons):
                if t <= post[j]:
                    row[j] += error[j]


@numba.njit(cache=True, nogil=True)
def _timing_backprop_kernel(pre_times, post_times, delta, weight, out):  # pragma: no cover
    """``out[n, i] = sum_j delta[n, j] weight[j, i] [pre_n,i <= post_n,j]``."""
    samples, inputs = pre_times.shape
    neurons = post_times.shape[1]
    for n in range(samples):
        for j in range(neurons):
            error = delta[n, j]
            if error == 0.0:
                continue
            post = post_times[n, j]
            row = weight[j]
            for i in range(inputs):
                if pre_times[n, i] <= post:
                    out[n, i] += error * row[i]


def timing_gradient(pre_times: np.ndarray, post_times: np.ndarray, delta: np.ndarray,
                    horizon: int) -> np.ndarray:
    """``dL/dw (out, in)`` from ``dL/dt_post``: ``-sum_n delta[n, j] [t_i <= t_j]``, spiking ``i``.

    ``d t_j / d w_ji = -1`` when presynaptic ``i`` spiked no later than ``j`` (a silent ``j`` counts
    as ``horizon``); silent presynaptic neurons contribute nothing.
    """
    grad_t = np.zeros((pre_times.shape[1], post_times.shape[1]))
    _timing_gradient_kernel(np.ascontiguousarray(pre_times),
                            np.ascontiguousarray(post_times),
                            np.ascontiguousarray(delta, np.float64), int(horizon), grad_t)
    return -grad_t.T


def timing_backprop(pre_times: np.ndarray, post_times: np.ndarray, delta: np.ndarray,
                    weight: np.ndarray) -> np.ndarray:
    """``dL/dt_pre (N, in)``: ``sum_j delta[n, j] weight[j, i] [t_i <= t_j]``."""
    out = np.zeros(pre_times.shape)
    _timing_backprop_kernel(np.ascontiguousarray(pre_times),
                            np.ascontiguousarray(post_times),
                            np.ascontiguousarray(delta, np.float64),
                            np.ascontiguousarray(weight, np.float64), out)
    return out


def shifted_images(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Images ``(N, ..., H, W)`` translated by ``offsets[n] = (dy, dx)`` pixels, zero filled.

    Pixel ``(y, x)`` of the result is pixel ``(y - dy, x - dx)`` of the original (0 outside).
    """
    images = np.asarray(images)
    if images.ndim < 2:
        raise SnnccError(f"cannot shift images of shape {images.shape}: need (N, ..., H, W)")
    offsets = np.asarray(offsets, np.int64)
    reach = int(np.abs(offsets).max(initial=0))
    height, width = images.shape[-2:]
    pad = [(0, 0)] * (images.ndim - 2) + [(reach, reach), (reach, reach)]
    padded = np.pad(images, pad)
    out = np.empty_like(images)
    for index, (dy, dx) in enumerate(offsets):
        out[index] = padded[index, ..., reach - dy:reach - dy + height,
                            reach - dx:reach - dx + width]
    return out


def quiet_push(silent: np.ndarray, push: float, min_rate: float) -> np.ndarray:
    """Extra ``dL/dt`` (N, H) that makes hidden neurons firing too rarely fire earlier.

    ``silent`` (N, H) marks the samples of the minibatch where a neuron did not spike. A neuron
    that fires for a fraction ``r < min_rate`` of them gets ``push * (1 - r / min_rate)`` on every
    sample where it was silent (so a neuron silent for the whole batch gets ``push``); with
    ``min_rate = 0`` only wholly silent neurons are pushed.
    """
    rate = 1.0 - silent.mean(axis=0)
    if min_rate > 0:
        strength = push * np.clip(1.0 - rate / min_rate, 0.0, 1.0)
    else:
        strength = push * (rate == 0)
    return strength[None, :] * silent


def normalized_rows(delta: np.ndarray) -> np.ndarray:
    """Each sample's error vector scaled to unit Euclidean norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(delta, axis=1, keepdims=True)
    return delta / np.where(norms > 0, norms, 1.0)


def output_error(output_times: np.ndarray, labels: np.ndarray, t_max: int,
                 margin_steps: float) -> np.ndarray:
    """``dL/dt`` of the output layer for relative targets (see the module docstring)."""
    times = output_times.astype(np.float64)
    rows = np.arange(len(times))
    earliest = times.min(axis=1)
    target_correct = np.minimum(earliest, t_max - margin_steps)
    target = np.minimum(np.maximum(times, target_correct[:, None] + margin_steps), t_max)
    target[rows, labels] = target_correct
    return (times - target) / t_max


# ---------------------------------------------------------------------------------- optimizer


@numba.njit(cache=True, nogil=True)
def _adam_kernel(param, grad, first, second, rate, correction1, correction2, low, high,
                 signs):  # pragma: no cover - compiled
    """Adam step fused with the clip to [low, high] and the sign refresh, over flat arrays."""
    for k in range(param.size):
        g = grad[k]
        m = 0.9 * first[k] + 0.1 * g
        u = 0.999 * second[k] + 0.001 * g * g
        first[k] = m
        second[k] = u
        value = param[k] - rate * (m / correction1) / (np.sqrt(u / correction2) + 1e-8)
        value = min(max(value, low), high)
        param[k] = value
        if signs.size:
            signs[k] = 1 if value >= 0 else -1


@dataclass
class _Adam:
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8) over a list of arrays, with box constraints."""

    first: list[np.ndarray]
    second: list[np.ndarray]
    step: int = 0

    @classmethod
    def like(cls, arrays: list[np.ndarray]) -> _Adam:
        return cls([np.zeros_like(a) for a in arrays], [np.zeros_like(a) for a in arrays])

    def update(self, params: list[np.ndarray], grads: list[np.ndarray], rates: list[float],
               bounds: list[tuple[float, float]], signs: list[np.ndarray | None]) -> None:
        """One step; ``params[k]`` is clipped to ``bounds[k]``; ``signs[k]`` gets sign(param)."""
        self.step += 1
        correction1 = 1 - 0.9 ** self.step
        correction2 = 1 - 0.999 ** self.step
        empty = np.zeros(0, np.int8)
        for param, grad, first, second, rate, (low, high), sign in zip(
                params, grads, self.first, self.second, rates, bounds, signs, strict=True):
            _adam_kernel(param.reshape(-1), np.ascontiguousarray(grad, np.float64).reshape(-1),
                         first.reshape(-1), second.reshape(-1), float(rate), correction1,
                         correction2, float(low), float(high),
                         empty if sign is None else sign.reshape(-1))


# ------------------------------------------------------------------------------------ training


@dataclass
class EpochRecord:
    epoch: int
    train_accuracy: float
    test_accuracy: float | None
    seconds: float
    hidden_spikes: float  # mean hidden spikes per training sample

    def line(self, epochs: int) -> str:
        test = "" if self.test_accuracy is None else f"  test {self.test_accuracy:.2%}"
        return (f"epoch {self.epoch}/{epochs}  train {self.train_accuracy:.2%}{test}  "
                f"hidden spikes {self.hidden_spikes:.1f}  {self.seconds:.1f}s")


@dataclass
class TrainResult:
    network: BSTDGNetwork
    config: BSTDGConfig
    history: list[EpochRecord] = field(default_factory=list)

    @property
    def test_accuracy(self) -> float | None:
        return self.history[-1].test_accuracy if self.history else None


def initial_network(config: BSTDGConfig, input_shape: tuple[int, ...], classes: int
                    ) -> BSTDGNetwork:
    """Shadow weights ``U(-init_scale, init_scale)`` (``U(0, init_scale)`` with ``init_positive``).

    Drawn from ``default_rng(seed)``. Pruning-aware runs (``target_sparsity > 0``) always draw
    ``U(-init_scale, init_scale)`` (their signs are fixed, so they must be mixed), fix each
    synapse's sign to that of its initial weight and start its strength ``theta`` at the initial
    weight's magnitude.
    """
    rng = np.random.default_rng(config.seed)
    sizes = [int(np.prod(input_shape)), *config.hidden, classes]
    positive = config.init_positive and config.target_sparsity == 0
    low = 0.0 if positive else -config.init_scale
    weights = [rng.uniform(low, config.init_scale, (fan_out, fan_in))
               for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)]
    thresholds = np.array([config.hidden_threshold] * len(config.hidden)
                          + [config.output_threshold], dtype=np.float64)
    if config.target_sparsity == 0:
        return BSTDGNetwork(weights, thresholds, config.t_max, tuple(input_shape))
    fixed = [np.where(w >= 0, 1, -1).astype(np.int8) for w in weights]
    return BSTDGNetwork([np.abs(w) for w in weights], thresholds, config.t_max,
                        tuple(input_shape), fixed_signs=fixed, sparsity=config.target_sparsity)


def _learning_rate(config: BSTDGConfig, epoch: int, fraction: float) -> float:
    """Cosine decay from ``learning_rate`` to ``final_learning_rate`` over the whole run."""
    progress_done = (epoch + fraction) / config.epochs
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress_done, 1.0)))
    return config.final_learning_rate + (config.learning_rate - config.final_learning_rate) * cosine


def train_step(network: BSTDGNetwork, optimizer: _Adam, config: BSTDGConfig,
               input_times: np.ndarray, labels: np.ndarray, rate: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """One minibatch update; returns the batch's predictions and hidden spike counts."""
    t_max = network.t_max
    signs = network.sign_cache()
    batch = len(labels)
    times, v_fire, v_final = network.forward(input_times)
    predictions = first_spike_decision(times[-1], v_fire, v_final, t_max)
    delta = output_error(times[-1], labels, t_max, config.margin * t_max)
    weight_grads: list[np.ndarray] = [np.empty(0)] * len(signs)
    threshold_grads = np.zeros(len(signs))
    for layer in range(len(signs) - 1, -1, -1):
        if config.normalize_error:
            delta = normalized_rows(delta)
        if layer < len(signs) - 1:
            delta = delta + quiet_push(times[layer + 1] >= t_max, config.dead_push,
                                       config.min_firing_rate)
        weight_grads[layer] = timing_gradient(times[layer], times[layer + 1], delta, t_max) / batch
        threshold_grads[layer] = delta.sum() / batch
        if layer > 0:
            delta = timing_backprop(times[layer], times[layer + 1], delta, signs[layer])
    if network.fixed_signs is not None:
        # d w / d theta = fixed sign, also where pruned (the synapse can grow back); the Laplace
        # prior exp(-|theta| / b) adds sparsity_prior * sign(theta) and shrinks unused synapses
        weight_grads = [fixed * grad + config.sparsity_prior * np.sign(theta)
                        for fixed, grad, theta in zip(network.fixed_signs, weight_grads,
                                                      network.weights, strict=True)]
    params = network.weights + [network.thresholds]
    rates = [rate] * len(signs) + [config.threshold_learning_rate * rate / config.learning_rate]
    bounds = [(-1.0, 1.0)] * len(signs) + [(1.0, math.inf)]
    pruning = network.fixed_signs is not None
    optimizer.update(params, weight_grads + [threshold_grads], rates, bounds,
                     [None] * len(signs) + [None] if pruning else network.sign_cache() + [None])
    if pruning:
        network.refresh_pruning()
    hidden_spikes = sum((t < t_max).sum(axis=1) for t in times[1:-1])
    return predictions, np.asarray(hidden_spikes)


def train(
    config: BSTDGConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train a BSTDG network on raw images ``(N, *input_shape)`` (uint8) with labels 0..C-1.

    After every epoch the state (network, optimizer, history) is written atomically to
    ``checkpoint``; with ``resume`` a run continues from it (the config must match) and ends
    bit-identical to an uninterrupted run. ``stop_after`` ends the call after that many epochs in
    total (used to simulate an interruption). ``on_epoch`` receives each epoch's record.
    """
    train_images = np.asarray(train_images)
    train_labels = np.asarray(train_labels, np.int64)
    if len(train_images) != len(train_labels) or len(train_labels) == 0:
        raise SnnccError(f"{len(train_images)} training images for {len(train_labels)} labels")
    classes = int(train_labels.max()) + 1
    if test_labels is not None and len(test_labels) and int(np.max(test_labels)) >= classes:
        classes = int(np.max(test_labels)) + 1
    network = initial_network(config, train_images.shape[1:], classes)
    optimizer = _Adam.like(network.weights + [network.thresholds])
    history: list[EpochRecord] = []
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise SnnccError(f"cannot resume: no checkpoint at {checkpoint}")
        network, optimizer, history = load_checkpoint(checkpoint, config)
    input_times = None if config.shift else network.input_times(train_images)
    batches = math.ceil(len(train_labels) / config.batch_size)
    last_epoch = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(len(history), last_epoch):
        started = time.perf_counter()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_labels))
        augment = np.random.default_rng([config.seed, epoch, 1])
        correct = 0
        spikes = 0
        with progress(f"epoch {epoch + 1}/{config.epochs}", batches) as advance:
            for batch in range(batches):
                index = order[batch * config.batch_size:(batch + 1) * config.batch_size]
                rate = _learning_rate(config, epoch, batch / batches)
                if input_times is None:
                    offsets = augment.integers(-config.shift, config.shift + 1, (len(index), 2))
                    batch_times = network.input_times(shifted_images(train_images[index],
                                                                     offsets))
                else:
                    batch_times = input_times[index]
                predictions, hidden = train_step(network, optimizer, config, batch_times,
                                                 train_labels[index], rate)
                correct += int((predictions == train_labels[index]).sum())
                spikes += int(hidden.sum())
                advance(1)
        test_accuracy = None
        if test_images is not None and test_labels is not None and len(test_labels):
            test_accuracy = network.accuracy(test_images, test_labels)
        record = EpochRecord(epoch + 1, correct / len(train_labels), test_accuracy,
                             time.perf_counter() - started, spikes / len(train_labels))
        history.append(record)
        if checkpoint is not None:
            save_checkpoint(checkpoint, network, optimizer, config, history)
        if on_epoch is not None:
            on_epoch(record)
    return TrainResult(network, config, history)


# --------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike[str], network: BSTDGNetwork, optimizer: _Adam,
                    config: BSTDGConfig, history: list[EpochRecord]) -> Path:
    """Write the full training state to one ``.npz`` file, atomically."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_json(),
        "history": [dataclasses.asdict(r) for r in history],
        "optimizer_step": optimizer.step,
        "input_shape": list(network.input_shape),
        "scale": network.scale,
        "layers": len(network.weights),
    }
    arrays = {"state": np.frombuffer(json.dumps(state).encode(), np.uint8),
              "thresholds": network.thresholds}
    for index, weight in enumerate(network.weights):
        arrays[f"weight{index}"] = weight
    for index, fixed in enumerate(network.fixed_signs or []):
        arrays[f"fixed_sign{index}"] = fixed
    for index, (first, second) in enumerate(zip(optimizer.first, optimizer.second, strict=True)):
        arrays[f"adam_first{index}"] = first
        arrays[f"adam_second{index}"] = second
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def load_checkpoint(path: str | os.PathLike[str], config: BSTDGConfig
                    ) -> tuple[BSTDGNetwork, _Adam, list[EpochRecord]]:
    """Read a checkpoint written by :func:`save_checkpoint` for a run with ``config``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = json.loads(bytes(archive["state"]).decode())
            if state.get("format") != CHECKPOINT_FORMAT:
                raise SnnccError(f"{path}: not a BSTDG checkpoint")
            if state.get("version") != CHECKPOINT_VERSION:
                raise SnnccError(f"{path}: checkpoint version {state.get('version')} is not "
                                 f"supported (this snncc reads {CHECKPOINT_VERSION})")
            saved = state["config"]
            current = config.to_json()
            differing = sorted(k for k in current if saved.get(k) != current[k])
            if differing:
                key = differing[0]
                raise SnnccError(f"{path}: checkpoint was made with {key}={saved.get(key)!r}, "
                                 f"this run has {key}={current[key]!r}; use the same settings "
                                 "to resume")
            layers = int(state["layers"])
            weights = [archive[f"weight{i}"].copy() for i in range(layers)]
            fixed = ([archive[f"fixed_sign{i}"].copy() for i in range(layers)]
                     if config.target_sparsity > 0 else None)
            thresholds = archive["thresholds"].copy()
            moments = [(archive[f"adam_first{i}"].copy(), archive[f"adam_second{i}"].copy())
                       for i in range(layers + 1)]
    except SnnccError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise SnnccError(f"{path}: corrupt or truncated BSTDG checkpoint ({error})") from None
    network = BSTDGNetwork(weights, thresholds, config.t_max, tuple(state["input_shape"]),
                           float(state["scale"]), fixed_signs=fixed,
                           sparsity=config.target_sparsity)
    optimizer = _Adam([m[0] for m in moments], [m[1] for m in moments], int(state["optimizer_step"]))
    history = [EpochRecord(**record) for record in state["history"]]
    return network, optimizer, history


# ------------------------------------------------------------------------------- whole runs


def to_model(result: TrainResult, dataset: str | None = None) -> BSTDGModel:
    """The deployable file contents of a trained network (integer weights and thresholds)."""
    import snncc

    network, config = result.network, result.config
    last = result.history[-1] if result.history else None
    metadata: dict[str, Any] = {
        "producer": f"snncc {snncc.__version__} bstdg",
        "dataset": dataset or "",
        "epochs": len(result.history),
        "seed": config.seed,
        "train_accuracy": last.train_accuracy if last else float("nan"),
        "test_accuracy": (last.test_accuracy if last and last.test_accuracy is not None
                          else float("nan")),
        "hyperparameters": config.to_json(),
        "trained_thresholds": [float(t) for t in network.thresholds],
        "history": [dataclasses.asdict(r) for r in result.history],
    }
    return BSTDGModel(
        weights=network.binary_weights(),
        thresholds=[np.array([t]) for t in network.integer_thresholds()],
        t_max=network.t_max,
        input_shape=network.input_shape,
        input_scale=network.scale,
        metadata=metadata,
    )


def checkpoint_path(output: str | os.PathLike[str]) -> Path:
    """Where a run writing ``output`` keeps its checkpoint: ``<output>.ckpt.npz``."""
    return Path(f"{output}.ckpt.npz")


def train_dataset(config: BSTDGConfig, dataset: str, output: str | os.PathLike[str],
                  data_dir: str | os.PathLike[str] | None = None, resume: bool = False,
                  limit: int | None = None,
                  on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """Train on a named dataset's train split, test on its test split, write ``output``.

    The checkpoint ``<output>.ckpt.npz`` is updated after every epoch and removed once the
    network file has been written. ``limit`` keeps only the first samples of each split.
    """
    from snncc.datasets import load_dataset

    output = Path(output)
    if output.parent and not output.parent.exists():
        raise SnnccError(f"cannot write {output}: directory {output.parent} does not exist")
    train_set = load_dataset(dataset, "train", data_dir).take(limit)
    test_set = load_dataset(dataset, "test", data_dir).take(limit)
    checkpoint = checkpoint_path(output)
    result = train(config, train_set.images, train_set.labels, test_set.images, test_set.labels,
                   checkpoint=checkpoint, resume=resume, on_epoch=on_epoch)
    write_bstdg(to_model(result, dataset), output)
    checkpoint.unlink(missing_ok=True)
    return result
