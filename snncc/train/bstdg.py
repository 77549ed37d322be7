"""BSTDG: train binarized single-spike (time-to-first-spike) networks from spike timings.

The network (S4NN / BS4NN lineage) is a chain of fully connected layers of non-leaky
integrate-and-fire neurons without leak or bias. With presynaptic spike steps ``t_i`` and binary
weights ``s_ji = sign(w_ji)`` in {-1, +1} (``sign(0) = +1``; 0 for a pruned synapse), neuron ``j``
integrates::

    V_j(t) = sum_{i : t_i <= t} s_ji             (instantaneous synapses, no delay)
    t_j    = min { t : V_j(t) >= theta }          (first crossing; never -> t_j = t_max)

and spikes at most once. Inputs use the shared latency code
(:func:`snncc.coding.latency_spike_times`): ``t_i = floor((1 - x_i) (t_max - 1))``, ``x_i = 0``
never spikes. Because ``V`` is an integer, ``V >= theta`` equals ``V >= ceil(theta)``: training
runs the deployed integer network exactly. The output layer is read out first-spike-wins (ties:
larger potential, then lower index; no spike: largest final potential).

Learning is plain SGD, one sample at a time, as in S4NN and BS4NN: real "shadow" weights ``w`` in
[-1, 1] receive the updates and the forward pass uses ``sign(w)``; one trainable threshold per
layer. For each training sample, in this order:

* Forward pass of the deployed network, event-driven (``input spikes x fan-out`` additions).
* Output targets are relative (S4NN): with ``tau`` the earliest output spike and margin
  ``gamma = margin * t_max``, the correct neuron's target is ``T_c = min(tau, t_max - gamma)``,
  every other neuron's ``T_k = min(max(t_k, T_c + gamma), t_max)`` (fire at least ``gamma``
  later; a silent wrong neuron has no error). The error is ``delta_k = (t_k - T_k) / t_max``. A
  sample whose error is zero (right, with the margin) changes nothing.
* Potential margin ``m`` (``potential_margin``, default 3): the output spike times ``t_k`` that
  the error (and everything below it: the targets, the timing indicators of the output layer and
  of the hidden errors) sees are those the output neurons would have with the threshold raised
  to ``ceil(theta) + m`` for the correct class and lowered to ``max(1, ceil(theta) - m)`` for the
  others. The deployed network and the decision keep ``theta``. A sample then counts as learnt
  only when its decision survives a swing of ``2 m`` in potential, a margin in the units the
  binary weights move in, where the timing margin alone lets the decision hang on one synapse.
* Error normalisation (S4NN, ``normalize_error``): each layer's error vector is scaled to unit
  Euclidean norm, so every sample takes a step of the same size whatever the spread of its spike
  times, and hidden layers learn at the pace of the output layer.
* Backpropagation to the layer below goes through the timing indicator, widened by
  ``backprop_window = b`` steps: ``delta_i = sum_j delta_j s_ji [t_i <= t_j + b]`` (a later
  presynaptic spike delays ``t_j`` when ``s_ji = +1`` and advances it when ``s_ji = -1``; the
  window also reaches neurons that fired just after the postsynaptic spike and could still have
  moved it).
* Quiet neurons: the output error reaches a hidden neuron through its ``+1`` synapses to the
  wrong outputs more often than through the one to the correct output, so plain S4NN learning
  slowly silences the hidden layer. Each hidden neuron keeps a running firing rate ``r``
  (``r <- 0.999 r + 0.001 [fired]``, starting at 0.5); when it stays silent on a sample while
  ``r < min_firing_rate`` its (normalised) error gets an extra ``dead_push (1 - r /
  min_firing_rate)`` (a push to fire earlier), before it is passed further down.
* Spike-timing gradient: ``d t_j / d w_ji = -1`` when the presynaptic spike is not after the
  postsynaptic one (``t_i <= t_j``, silent neurons at ``t_max``; silent presynaptic neurons
  contribute nothing), so ``w_ji <- clip(w_ji + lr delta_j [t_i <= t_j], -1, 1)`` and
  ``theta <- max(1, theta - threshold_lr sum_j delta_j)``. Both rates follow one cosine from
  ``learning_rate`` to ``final_learning_rate`` over the run (the threshold rate scaled alike);
  every error of a sample is computed before any of its updates. Thresholds are trainable but
  their rate is 0 by default (a shared threshold moving under every sample's error destabilises
  the layer); sparse runs, whose fan-in falls, may need them.
* Initialisation: shadow weights ``U(0, init_scale)`` with ``init_positive`` (the default: every
  synapse starts excitatory, as in BS4NN, and turns inhibitory when its weight crosses 0), else
  ``U(-init_scale, init_scale)``. Gradient Rewiring runs always use the symmetric form, and so do
  the hidden layers of networks with more than one (from an all-positive start the first hidden
  layer fires in one step on the bright pixels, and the neurons of the next see one volley
  through equal signs, get equal errors and never diverge); their output layer starts positive.
* Augmentation (``shift = s > 0``): in every epoch each training image is translated by
  ``(dy, dx)`` drawn uniformly from ``{-s, ..., s}^2`` (zero fill, ``default_rng([seed, epoch,
  1])``) before latency coding; test images are never shifted.

Pruning-aware training (``target_sparsity = p > 0``) removes a global fraction ``p`` of the
synapses, shared out over the layers by :func:`layer_sparsities` (the ERK rule: small layers such
as the output layer keep more). Every :data:`PRUNE_INTERVAL` samples the ``floor(p_l * size)``
weakest synapses of layer ``l`` are pruned (deployed weight 0) and the others deployed; pruned
synapses still receive updates, so they can grow back. With ``balanced_fan_in`` (the default)
the layer's kept synapses are shared out evenly, each neuron keeping its own strongest (fan-ins
differ by at most one; :func:`prune`): one threshold per layer then suits every neuron, and
synapse memory per neuron is uniform (without it, at very low connectivity most hidden neurons
keep too few synapses to reach the shared threshold). Two modes:

* ``magnitude`` (the default): the strength is ``|w|`` and a kept synapse deploys ``sign(w)``.
  The run trains dense for ``prune_start`` of its length, ramps the sparsity cubically over
  ``prune_ramp`` (pruned synapses keep learning and can come back) and fine-tunes at the target
  for the rest (:meth:`BSTDGConfig.sparsity_at`). With ``freeze_mask`` (the default) the mask is
  fixed once the target is reached and only kept synapses learn: pruned synapses see the
  gradient of a synapse that is not there, the same for every input of a neuron, so they drift
  together and churn the kept set.
* ``gradr`` (Gradient Rewiring, Chen et al. 2021): each synapse keeps the sign ``s`` of its
  initial weight and learns a strength ``theta`` (deployed ``s`` where kept and ``theta > 0``);
  ``theta <- clip(theta + lr s delta, -1, 1)``, sparse from the first sample, plus an optional
  Laplace prior that shrinks every strength by ``lr * sparsity_prior`` per training sample
  (applied in bulk before each re-pruning).

Runs are deterministic for a seed (shuffling uses ``default_rng([seed, epoch])``) and resumable
from per-epoch checkpoints, which give bit-identical results to an uninterrupted run. Measured
figures for every rule and default above are in docs/bstdg-format.md ("Training").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numba.typed import List as TypedList

from snncc import coding
from snncc.engines.ttfs import decide_sample, fire_sample, fire_times, first_spike_decision
from snncc.errors import SnnccError
from snncc.frontend.bstdg import BSTDGModel, write_bstdg
from snncc.safety import check_size, read_npz
from snncc.train.config import BSTDGConfig
from snncc.util import atomic_path, check_writable, progress

CHECKPOINT_FORMAT = "snncc-bstdg-checkpoint"
CHECKPOINT_VERSION = 2

#: Samples between two re-prunings (and progress-bar updates) of a pruning-aware run.
PRUNE_INTERVAL = 1000


@dataclass
class BSTDGNetwork:
    """Shadow weights ``(out, in)`` per layer, one real threshold per layer, deployed weights.

    ``deployed`` holds the int8 weights the network runs with: ``sign(w)`` for a dense network
    (``sign(0) = +1``), 0 where a pruning-aware run pruned. ``fixed_signs`` (Gradient Rewiring)
    are the signs each synapse keeps; ``weights`` then hold strengths ``theta``.
    """

    weights: list[np.ndarray]
    thresholds: np.ndarray
    t_max: int
    input_shape: tuple[int, ...]
    scale: float = 1.0 / 255.0
    deployed: list[np.ndarray] | None = None
    fixed_signs: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.deployed is None:
            self.deployed = [np.where(w >= 0, 1, -1).astype(np.int8) for w in self.weights]

    def binary_weights(self) -> list[np.ndarray]:
        """The deployed weights, int8 in {-1, 0, +1}."""
        assert self.deployed is not None
        return [d.copy() for d in self.deployed]

    def integer_thresholds(self) -> np.ndarray:
        """Deployed thresholds ``ceil(theta)`` (exact for integer potentials)."""
        return np.ceil(self.thresholds).astype(np.int64)

    def input_times(self, raw: np.ndarray) -> np.ndarray:
        """Latency spike steps of flattened raw samples, ``t_max`` for no spike (int16)."""
        times = coding.latency_spike_times(np.asarray(raw, np.float64) * self.scale, self.t_max)
        times = times.reshape(len(raw), -1)
        return np.where(times == coding.NEVER, self.t_max, times).astype(np.int16)

    def forward(self, input_times: np.ndarray
                ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Spike times of every layer (input first; ``t_max`` = silent), output v at spike, final v."""
        assert self.deployed is not None
        times = [np.asarray(input_times)]
        v_fire = v_final = np.empty(0)
        for weight, threshold in zip(self.deployed, self.integer_thresholds(), strict=True):
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
def cosine_rate(initial: float, final: float, progress_done: float) -> float:
    """The learning rate after ``progress_done`` (0..1) of the run: cosine from initial to final."""
    decay = 0.5 * (1.0 + math.cos(math.pi * min(progress_done, 1.0)))
    return final + (initial - final) * decay


@numba.njit(cache=True, nogil=True)
def _sgd_kernel(inputs, labels, order, shadow, deployed, fixed, thresholds, rates, done, total,
                learning_rate, final_rate, threshold_rate, margin_steps, t_max, window,
                normalize, dead_push, min_rate, mode,
                potential_margin):  # pragma: no cover - compiled
    """Per-sample SGD over ``inputs[order]`` (see the module docstring); in place.

    ``shadow``/``deployed``/``fixed`` are per-layer ``(in, out)`` arrays; ``mode`` 0 dense, 1
    magnitude pruning (kept synapses follow ``sign(w)``, pruned ones stay 0 but learn), 2 fixed
    signs, 3 magnitude pruning with a frozen mask (pruned synapses do not learn).
    ``done`` samples of ``total`` came before this call (for the cosine schedule). Returns the
    number of correct first-spike decisions and of hidden spikes.
    """
    layers = len(shadow)
    widest = inputs.shape[1]
    for layer in range(layers):
        widest = max(widest, shadow[layer].shape[1])
    counts = np.zeros(t_max + 1, np.int64)
    order_buffer = np.zeros(widest, np.int64)
    times = [np.zeros(inputs.shape[1], np.int16)]
    potentials = []
    fired_at = []
    deltas = []
    for layer in range(layers):
        size = shadow[layer].shape[1]
        times.append(np.zeros(size, np.int16))
        potentials.append(np.zeros(size, np.int32))
        fired_at.append(np.zeros(size, np.int32))
        deltas.append(np.zeros(size))
    classes = shadow[layers - 1].shape[1]
    raised = np.zeros(classes, np.int16)  # output spikes at threshold + potential margin ...
    lowered = np.zeros(classes, np.int16)  # ... and at threshold - potential margin
    scratch_v = np.zeros(classes, np.int32)
    scratch_fire = np.zeros(classes, np.int32)
    correct = 0
    hidden_spikes = 0
    for position in range(order.shape[0]):
        sample = order[position]
        times[0][:] = inputs[sample]
        for layer in range(layers):
            fire_sample(times[layer], deployed[layer], math.ceil(thresholds[layer]), t_max,
                        times[layer + 1], potentials[layer], fired_at[layer], counts, order_buffer)
        out_times = times[layers]
        first = out_times.min()
        best = decide_sample(out_times, fired_at[layers - 1], potentials[layers - 1], t_max)
        label = labels[sample]
        correct += best == label
        if potential_margin > 0:
            # the error sees the correct neuron at a raised, the others at a lowered threshold
            below = layers - 1
            threshold = math.ceil(thresholds[below])
            fire_sample(times[below], deployed[below], threshold + potential_margin, t_max,
                        raised, scratch_v, scratch_fire, counts, order_buffer)
            fire_sample(times[below], deployed[below], max(1, threshold - potential_margin),
                        t_max, lowered, scratch_v, scratch_fire, counts, order_buffer)
            for k in range(classes):
                out_times[k] = raised[k] if k == label else lowered[k]
            first = out_times.min()
        for layer in range(layers - 1):
            rate = rates[layer]
            spikes = times[layer + 1]
            for j in range(spikes.shape[0]):
                fired = spikes[j] < t_max
                hidden_spikes += fired
                rate[j] = 0.999 * rate[j] + 0.001 * fired
        # output error (relative targets)
        target_correct = min(float(first), t_max - margin_steps)
        delta = deltas[layers - 1]
        norm = 0.0
        for k in range(classes):
            if k == label:
                target = target_correct
            else:
                target = min(max(float(out_times[k]), target_correct + margin_steps), float(t_max))
            delta[k] = (out_times[k] - target) / t_max
            norm += delta[k] * delta[k]
        if norm == 0.0:
            continue
        if normalize:
            norm = math.sqrt(norm)
            for k in range(classes):
                delta[k] /= norm
        # hidden errors, top down, through the (widened) timing indicator
        for layer in range(layers - 2, -1, -1):
            upper = deltas[layer + 1]
            upper_times = times[layer + 2]
            weight = deployed[layer + 1]
            own = times[layer + 1]
            delta = deltas[layer]
            norm = 0.0
            for j in range(own.shape[0]):
                total_error = 0.0
                limit = own[j] - window
                row = weight[j]
                for k in range(upper.shape[0]):
                    if upper[k] != 0.0 and upper_times[k] >= limit:
                        total_error += upper[k] * row[k]
                delta[j] = total_error
                norm += total_error * total_error
            if normalize and norm > 0.0:
                norm = math.sqrt(norm)
                for j in range(own.shape[0]):
                    delta[j] /= norm
            rate = rates[layer]
            for j in range(own.shape[0]):
                if own[j] == t_max and rate[j] < min_rate:
                    delta[j] += dead_push * (1.0 - rate[j] / min_rate)
        # updates, after every error is known
        rate_now = cosine_rate(learning_rate, final_rate, (done + position) / total)
        for layer in range(layers):
            pre = times[layer]
            post = times[layer + 1]
            delta = deltas[layer]
            weights = shadow[layer]
            signs = deployed[layer]
            kept_signs = fixed[layer]
            for i in range(pre.shape[0]):
                spike = pre[i]
                if spike >= t_max:
                    continue
                row = weights[i]
                sign_row = signs[i]
                for j in range(post.shape[0]):
                    if delta[j] == 0.0 or spike > post[j] or (mode == 3 and sign_row[j] == 0):
                        continue
                    step = rate_now * delta[j]
                    if mode == 2:
                        step *= kept_signs[i, j]
                    value = min(max(row[j] + step, -1.0), 1.0)
                    row[j] = value
                    if mode == 0 or (mode != 2 and sign_row[j] != 0):
                        sign_row[j] = 1 if value >= 0 else -1
            if threshold_rate > 0:
                error_sum = 0.0
                for j in range(post.shape[0]):
                    error_sum += delta[j]
                scaled = threshold_rate * rate_now / learning_rate
                thresholds[layer] = max(1.0, thresholds[layer] - scaled * error_sum)
    return correct, hidden_spikes


# ------------------------------------------------------------------------------------ pruning


def layer_sparsities(sizes: list[tuple[int, int]], sparsity: float) -> list[float]:
    """Per-layer sparsities for a global ``sparsity``, by the ERK rule (Evci et al. 2020).

    ``sizes`` are ``(fan_in, fan_out)`` per layer. Layer ``l`` keeps a density proportional to
    ``(fan_in + fan_out) / (fan_in * fan_out)``, capped at 1 (the cap's excess goes to the other
    layers), so that ``sum_l density_l * size_l = (1 - sparsity) * sum_l size_l``: small layers,
    such as a 10-neuron output layer, stay dense or nearly so while large hidden layers are
    pruned hard.
    """
    counts = np.array([fan_in * fan_out for fan_in, fan_out in sizes], np.float64)
    if sparsity == 0:
        return [0.0] * len(sizes)
    scores = np.array([(fan_in + fan_out) / (fan_in * fan_out) for fan_in, fan_out in sizes])
    budget = (1.0 - sparsity) * counts.sum()
    dense = np.zeros(len(sizes), bool)
    while True:
        free = budget - counts[dense].sum()
        scale = free / float((scores * counts)[~dense].sum())
        density = np.where(dense, 1.0, scale * scores)
        if not (density > 1.0).any():
            break
        dense |= density > 1.0
    return [float(1.0 - d) for d in density]


def prune(shadow: np.ndarray, deployed: np.ndarray, fixed: np.ndarray | None,
          sparsity: float, fan_in_axis: int | None = None) -> None:
    """Deploy one layer at ``sparsity``: the ``floor(sparsity * size)`` weakest synapses get 0.

    Strength is ``|w|`` with free signs (kept synapses deploy ``sign(w)``) and ``theta`` with
    ``fixed`` signs (kept synapses deploy the fixed sign; ``theta <= 0`` is pruned as well).
    With ``fan_in_axis`` (the axis of the presynaptic index) the count is the same but shared
    out evenly: every neuron keeps its ``k`` strongest synapses, ``k = kept // neurons``, and the
    ``kept % neurons`` strongest of the neurons' next-strongest synapses are kept as well, so
    fan-ins differ by at most one.
    """
    if fixed is None:
        strength = np.abs(shadow)
        deployed[...] = np.where(shadow >= 0, 1, -1)
    else:
        strength = shadow
        deployed[...] = np.where(shadow > 0, fixed, 0)
    pruned = int(sparsity * shadow.size)
    if fan_in_axis is not None and pruned:
        fan_in = shadow.shape[fan_in_axis]
        neurons = shadow.size // fan_in
        kept = shadow.size - pruned
        each, extra = divmod(kept, neurons)
        # rank every neuron's synapses strongest first (stable, so ties go to lower indices)
        ranked = np.argsort(-np.moveaxis(strength, fan_in_axis, -1), axis=-1, kind="stable")
        keep = np.zeros(ranked.shape, bool)
        np.put_along_axis(keep, ranked[:, :each], True, axis=-1)
        if extra:
            runner_up = ranked[:, each]
            runner_strength = np.take_along_axis(np.moveaxis(strength, fan_in_axis, -1),
                                                 runner_up[:, None], axis=-1)[:, 0]
            chosen = np.argsort(-runner_strength, kind="stable")[:extra]
            keep[chosen, runner_up[chosen]] = True
        deployed[~np.moveaxis(keep, -1, fan_in_axis)] = 0
        return
    if pruned:
        weakest = np.argpartition(strength.reshape(-1), pruned - 1)[:pruned]
        deployed.reshape(-1)[weakest] = 0


# ------------------------------------------------------------------------------------ training


@dataclass
class EpochRecord:
    epoch: int
    train_accuracy: float
    test_accuracy: float | None
    seconds: float
    hidden_spikes: float  # mean hidden spikes per training sample
    connectivity: float = 1.0  # fraction of synapses deployed at the end of the epoch
    thresholds: list[float] = field(default_factory=list)  # per layer, at the end of the epoch

    def line(self, epochs: int) -> str:
        test = "" if self.test_accuracy is None else f"  test {self.test_accuracy:.2%}"
        sparse = "" if self.connectivity == 1.0 else f"  connectivity {self.connectivity:.1%}"
        thresholds = "/".join(f"{t:.1f}" for t in self.thresholds)
        return (f"epoch {self.epoch}/{epochs}  train {self.train_accuracy:.2%}{test}  "
                f"hidden spikes {self.hidden_spikes:.1f}{sparse}  thresholds {thresholds}  "
                f"{self.seconds:.1f}s")


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

    Drawn from ``default_rng(seed)``. ``init_positive`` applies to the output layer, and to the
    hidden layer of networks with one (the BS4NN architecture); the hidden layers of deeper
    networks always start symmetric. Gradient Rewiring runs
    always draw ``U(-init_scale, init_scale)`` (their signs are fixed, so they must be mixed),
    fix each synapse's sign to that of its initial weight, start its strength ``theta`` at the
    initial weight's magnitude and are pruned to their layer's sparsity from the start.
    """
    rng = np.random.default_rng(config.seed)
    sizes = [int(np.prod(input_shape)), *config.hidden, classes]
    # the hidden layers of deeper networks never leave an all-positive start (MNIST
    # 784-400-200-10: 9.8% after 3 epochs, 88.2% from a symmetric one): the first fires in one
    # step on bright pixels, so the second sees one volley through equal signs and its neurons
    # move together. Their output layer does need it: from mixed signs and a sparse, symmetric
    # last hidden layer its neurons never reach threshold 40 (9.8% after 2 epochs, 89.4% after
    # one from a positive output layer)
    output_layer = len(sizes) - 2
    weights = []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        positive = (config.init_positive and not config.fixed_signs
                    and (layer == output_layer or len(config.hidden) == 1))
        low = 0.0 if positive else -config.init_scale
        weights.append(rng.uniform(low, config.init_scale, (fan_out, fan_in)))
    thresholds = np.array([config.hidden_threshold] * len(config.hidden)
                          + [config.output_threshold], dtype=np.float64)
    if not config.fixed_signs:
        return BSTDGNetwork(weights, thresholds, config.t_max, tuple(input_shape))
    fixed = [np.where(w >= 0, 1, -1).astype(np.int8) for w in weights]
    network = BSTDGNetwork([np.abs(w) for w in weights], thresholds, config.t_max,
                           tuple(input_shape), fixed_signs=fixed)
    targets = layer_sparsities([w.shape[::-1] for w in weights], config.target_sparsity)
    for theta, deployed, signs, sparsity in zip(network.weights, network.deployed, fixed,
                                                targets, strict=True):
        prune(theta, deployed, signs, sparsity, 1 if config.balanced_fan_in else None)
    return network


@dataclass
class Working:
    """A network's arrays in the training kernel's ``(in, out)`` layout (copied per epoch)."""

    shadow: list[np.ndarray]
    deployed: list[np.ndarray]
    fixed: list[np.ndarray] | None

    @classmethod
    def of(cls, network: BSTDGNetwork) -> Working:
        assert network.deployed is not None
        return cls([np.ascontiguousarray(w.T) for w in network.weights],
                   [np.ascontiguousarray(d.T) for d in network.deployed],
                   None if network.fixed_signs is None
                   else [np.ascontiguousarray(f.T) for f in network.fixed_signs])

    def store(self, network: BSTDGNetwork) -> None:
        network.weights = [np.ascontiguousarray(w.T) for w in self.shadow]
        network.deployed = [np.ascontiguousarray(d.T) for d in self.deployed]

    def prune(self, targets: list[float], shrink: float, balanced: bool) -> None:
        fixed = self.fixed or [None] * len(self.shadow)
        for shadow, deployed, signs, sparsity in zip(self.shadow, self.deployed, fixed, targets,
                                                     strict=True):
            if shrink:
                shadow -= shrink * np.sign(shadow)
            prune(shadow, deployed, signs, sparsity, 0 if balanced else None)

    def connectivity(self) -> float:
        kept = sum(int(np.count_nonzero(d)) for d in self.deployed)
        return kept / sum(d.size for d in self.deployed)


def _mask_frozen(config: BSTDGConfig, done: int, total: int) -> bool:
    """Whether a magnitude run's mask is fixed: pruned to the target by an earlier chunk."""
    return (config.freeze_mask and config.target_sparsity > 0 and not config.fixed_signs
            and done > 0 and config.sparsity_at(done / total) >= config.target_sparsity)


def sgd_samples(working: Working, thresholds: np.ndarray, rates: list[np.ndarray],
                input_times: np.ndarray, labels: np.ndarray, order: np.ndarray,
                config: BSTDGConfig, done: int, total: int) -> tuple[int, int]:
    """Per-sample SGD on ``input_times[order]``, in place; (correct decisions, hidden spikes).

    ``done`` of ``total`` training samples of the run came before (the cosine schedule's
    position). Every update rule is in the module docstring.
    """
    mode = 0 if config.target_sparsity == 0 else (2 if config.fixed_signs else 1)
    if _mask_frozen(config, done, total):
        mode = 3
    fixed = working.fixed or [np.zeros((0, 0), np.int8)] * len(working.shadow)
    correct, spikes = _sgd_kernel(
        input_times, np.asarray(labels, np.int64), np.asarray(order, np.int64),
        TypedList(working.shadow), TypedList(working.deployed), TypedList(fixed), thresholds,
        TypedList(rates) if rates else TypedList.empty_list(numba.float64[::1]), int(done),
        int(total), config.learning_rate, config.final_learning_rate,
        config.threshold_learning_rate, config.margin * config.t_max, config.t_max,
        config.backprop_window, config.normalize_error, config.dead_push,
        config.min_firing_rate, mode, config.potential_margin)
    return int(correct), int(spikes)


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

    After every epoch the state (network, firing rates, history) is written atomically to
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
    check_network_size(config, train_images.shape[1:], classes)
    network = initial_network(config, train_images.shape[1:], classes)
    rates = [np.full(size, 0.5) for size in config.hidden]
    history: list[EpochRecord] = []
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            raise SnnccError(f"cannot resume: no checkpoint at {checkpoint}")
        network, rates, history = load_checkpoint(checkpoint, config, network)
    samples = len(train_labels)
    input_times = None if config.shift else network.input_times(train_images)
    sizes = [w.shape[::-1] for w in network.weights]
    total = config.epochs * samples
    chunk = PRUNE_INTERVAL if config.target_sparsity > 0 else samples
    last_epoch = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(len(history), last_epoch):
        started = time.perf_counter()
        order = np.random.default_rng([config.seed, epoch]).permutation(samples)
        if input_times is None:
            augment = np.random.default_rng([config.seed, epoch, 1])
            offsets = augment.integers(-config.shift, config.shift + 1, (samples, 2))
            epoch_times = network.input_times(shifted_images(train_images, offsets))
        else:
            epoch_times = input_times
        working = Working.of(network)
        correct = spikes = 0
        with progress(f"epoch {epoch + 1}/{config.epochs}", samples) as advance:
            for start in range(0, samples, chunk):
                index = order[start:start + chunk]
                done = epoch * samples + start
                right, fired = sgd_samples(working, network.thresholds, rates, epoch_times,
                                           train_labels, index, config, done, total)
                correct += right
                spikes += fired
                if config.target_sparsity > 0 and not _mask_frozen(config, done, total):
                    progress_done = (done + len(index)) / total
                    shrink = (cosine_rate(config.learning_rate, config.final_learning_rate,
                                          progress_done) * config.sparsity_prior
                              * len(index) if config.fixed_signs else 0.0)
                    working.prune(layer_sparsities(sizes, config.sparsity_at(progress_done)),
                                  shrink, config.balanced_fan_in)
                advance(len(index))
        working.store(network)
        test_accuracy = None
        if test_images is not None and test_labels is not None and len(test_labels):
            test_accuracy = network.accuracy(test_images, test_labels)
        record = EpochRecord(epoch + 1, correct / samples, test_accuracy,
                             time.perf_counter() - started, spikes / samples,
                             working.connectivity(), [float(t) for t in network.thresholds])
        history.append(record)
        if checkpoint is not None:
            save_checkpoint(checkpoint, network, rates, config, history)
        if on_epoch is not None:
            on_epoch(record)
    return TrainResult(network, config, history)


def check_network_size(config: BSTDGConfig, input_shape: tuple[int, ...], classes: int) -> None:
    """Refuse, before allocating, layers past :data:`snncc.safety.MAX_ARRAY_VALUES` weights and
    augmentation shifts that do not fit the images (padding grows with ``shift``)."""
    sizes = [math.prod(input_shape), *config.hidden, classes]
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        check_size((fan_out, fan_in), f"layer {index} of {fan_out:,} x {fan_in:,} weights")
    side = min(input_shape[-2:]) if len(input_shape) >= 2 else 0
    if config.shift and config.shift >= side:
        raise SnnccError(f"--shift {config.shift} must be smaller than the images "
                         f"({' x '.join(map(str, input_shape[-2:]))} pixels)")


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


# --------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike[str], network: BSTDGNetwork, rates: list[np.ndarray],
                    config: BSTDGConfig, history: list[EpochRecord]) -> Path:
    """Write the full training state to one ``.npz`` file, atomically."""
    assert network.deployed is not None
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_json(),
        "history": [dataclasses.asdict(r) for r in history],
        "input_shape": list(network.input_shape),
        "scale": network.scale,
        "layers": len(network.weights),
    }
    arrays = {"state": np.frombuffer(json.dumps(state).encode(), np.uint8),
              "thresholds": network.thresholds}
    for index, (weight, deployed) in enumerate(zip(network.weights, network.deployed,
                                                   strict=True)):
        arrays[f"weight{index}"] = weight
        arrays[f"deployed{index}"] = deployed
    for index, fixed in enumerate(network.fixed_signs or []):
        arrays[f"fixed_sign{index}"] = fixed
    for index, rate in enumerate(rates):
        arrays[f"firing_rate{index}"] = rate
    path = Path(path)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def load_checkpoint(path: str | os.PathLike[str], config: BSTDGConfig,
                    expected: BSTDGNetwork | None = None
                    ) -> tuple[BSTDGNetwork, list[np.ndarray], list[EpochRecord]]:
    """Read a checkpoint written by :func:`save_checkpoint` for a run with ``config``.

    Everything is checked before the compiled kernel sees it: the state's keys and types, and
    every array's shape, dtype and values against ``expected`` (the run's fresh network: the
    kernel indexes by these shapes and would read outside them).
    """
    path = Path(path)
    arrays = read_npz(path, "BSTDG checkpoint")
    try:
        state = json.loads(bytes(arrays["state"]).decode()) if "state" in arrays else None
    except (ValueError, RecursionError):
        state = None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise SnnccError(f"{path}: not a BSTDG checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise SnnccError(f"{path}: checkpoint version {state.get('version')} is not "
                         f"supported (this snncc reads {CHECKPOINT_VERSION})")
    kinds = {"config": dict, "history": list, "input_shape": list, "scale": (int, float),
             "layers": int}
    for key, kind in kinds.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise SnnccError(f"{path}: corrupt BSTDG checkpoint (state {key!r} missing or of "
                             "the wrong type)")
    saved = state["config"]
    current = config.to_json()
    differing = sorted(k for k in current if saved.get(k) != current[k])
    if differing:
        key = differing[0]
        raise SnnccError(f"{path}: checkpoint was made with {key}={saved.get(key)!r}, "
                         f"this run has {key}={current[key]!r}; use the same settings "
                         "to resume")
    layers = state["layers"]
    if expected is not None:
        if layers != len(expected.weights):
            raise SnnccError(f"{path}: checkpoint has {layers} layers, this run "
                             f"{len(expected.weights)}")
        if tuple(state["input_shape"]) != tuple(expected.input_shape):
            raise SnnccError(f"{path}: checkpoint input shape {tuple(state['input_shape'])} "
                             f"differs from this run's {tuple(expected.input_shape)}")

    def array(name: str, shape: tuple[int, ...] | None, dtype: Any,
              values: tuple[int, ...] | None = None) -> np.ndarray:
        if name not in arrays:
            raise SnnccError(f"{path}: corrupt BSTDG checkpoint (no array {name!r})")
        found = arrays[name]
        if shape is not None and found.shape != shape:
            raise SnnccError(f"{path}: checkpoint array {name} has shape {found.shape}, this "
                             f"run needs {shape}")
        if found.dtype.kind not in "iuf" or not np.all(np.isfinite(found)):
            raise SnnccError(f"{path}: checkpoint array {name} is not finite numbers")
        if values is not None and not np.all(np.isin(found, values)):
            raise SnnccError(f"{path}: checkpoint array {name} holds values other than "
                             f"{', '.join(map(str, values))}")
        return np.ascontiguousarray(found, dtype=dtype)

    def shape_of(arrays_list: list[np.ndarray] | None, index: int) -> tuple[int, ...] | None:
        return None if arrays_list is None else tuple(arrays_list[index].shape)

    known = expected.weights if expected is not None else None
    weights = [array(f"weight{i}", shape_of(known, i), np.float64) for i in range(layers)]
    deployed = [array(f"deployed{i}", weights[i].shape, np.int8, (-1, 0, 1))
                for i in range(layers)]
    fixed = ([array(f"fixed_sign{i}", weights[i].shape, np.int8, (-1, 1)) for i in range(layers)]
             if config.fixed_signs else None)
    rates = [array(f"firing_rate{i}", weights[i].shape[:1], np.float64)
             for i in range(layers - 1)]
    thresholds = array("thresholds", (layers,), np.float64)
    try:
        history = [EpochRecord(**record) for record in state["history"]]
        network = BSTDGNetwork(weights, thresholds, config.t_max,
                               tuple(int(s) for s in state["input_shape"]),
                               float(state["scale"]), deployed=deployed, fixed_signs=fixed)
    except (TypeError, ValueError) as error:
        raise SnnccError(f"{path}: corrupt BSTDG checkpoint ({error})") from None
    return network, rates, history


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

    output = check_writable(output, "network file")  # before hours of training
    train_set = load_dataset(dataset, "train", data_dir).take(limit)
    test_set = load_dataset(dataset, "test", data_dir).take(limit)
    checkpoint = checkpoint_path(output)
    result = train(config, train_set.images, train_set.labels, test_set.images, test_set.labels,
                   checkpoint=checkpoint, resume=resume, on_epoch=on_epoch)
    write_bstdg(to_model(result, dataset), output)
    checkpoint.unlink(missing_ok=True)
    return result
