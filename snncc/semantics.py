"""The golden model: what a deployed snncc network computes, step by step, in plain numpy.

This module is the executable form of ``docs/semantics.md``. It is written to be read, not to be
fast: every rule is one short function, and :func:`run` steps every node of a graph once per time
step in topological order, exactly as the semantics are stated. The fast engines
(:mod:`snncc.engines`) compute the same thing in other orders and are tested against :func:`run`
spike for spike; backends (Lava, the FPGA engine) are tested against the engines' integer mode, and
call the rules here (encoders, tie-break, saturation) instead of writing their own.

Rules, in the order a sample meets them:

* **Encoders** (:func:`encode_input`): raw samples -> what the network input sees at each step.
* **Synapses and other stateless nodes** (:func:`apply_stateless`): ``W x + b`` and friends, the
  bias added at every step; exact integer arithmetic in integer mode.
* **Neurons** (:func:`neuron_step`): integrate, compare, reset, fire once; membrane potentials
  saturate to ``STATE_BITS`` after every addition in integer mode (:func:`saturate`). Leaky
  neurons (:func:`leaky_update`) decay first (:func:`decay`), with Loihi's integer rules.
* **Max pooling over time** (:func:`max_pool_step`).
* **Readout and decision** (:func:`readout_step`, :func:`first_spike_winner`): the class decision
  after every step, with its tie-break.

Numeric modes: ``integer`` (deployed: integer parameters, int64 arithmetic, saturation) and
``float`` (float64 here; the engines keep float32 state, so float results agree with this module
to rounding only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncc import coding, ir
from snncc.errors import SnnccError

# ------------------------------------------------------------------------------ numeric rules


def saturate(v: np.ndarray) -> np.ndarray:
    """Clip potentials to the signed ``STATE_BITS`` range (integer mode, after every addition)."""
    return np.clip(v, ir.STATE_MIN, ir.STATE_MAX)


# ----------------------------------------------------------------------------------- encoders


def encode_input(node: ir.Input, raw: np.ndarray, timesteps: int,
                 sample_indices: np.ndarray | None = None, integer: bool = False) -> np.ndarray:
    """What the network input emits at each step: ``(timesteps, N, *shape)``.

    * ``direct``: the preprocessed sample at every step (float mode); in integer mode the raw
      integers themselves (the fold pass has moved the preprocessing into the first layer).
    * ``rate``: Bernoulli spikes ``u < clip(x, 0, 1)``; sample ``k`` of the evaluated set (its
      *global* index ``sample_indices[k]``, default ``0..N-1``) draws its uniforms from
      ``default_rng([seed, k])`` (:func:`snncc.coding.rate_uniforms`).
    * ``latency``: one spike at ``floor((1 - clip(x, 0, 1)) * (t_max - 1))``, none for ``x == 0``
      (:func:`snncc.coding.latency_spikes`).
    """
    raw = np.asarray(raw)
    if node.coding == "direct":
        values = raw.astype(np.int64) if integer else node.preprocess(raw)
        return np.broadcast_to(values[None], (timesteps,) + values.shape)
    x = node.preprocess(raw)
    if node.coding == "rate":
        indices = np.arange(len(raw)) if sample_indices is None else np.asarray(sample_indices)
        return coding.rate_spikes(x, coding.rate_uniforms(indices, node.shape, timesteps,
                                                          node.seed))
    return coding.latency_spikes(x, timesteps, node.t_max)


# ---------------------------------------------------------------------------- stateless nodes


def _padded(x: np.ndarray, padding: tuple[int, int, int, int], value: float = 0) -> np.ndarray:
    top, left, bottom, right = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _window_slices(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                   dilation: tuple[int, int], out_hw: tuple[int, int]):
    """Yield ``(u, v, x[:, :, rows(u), cols(v)])``: the input each kernel offset meets."""
    out_h, out_w = out_hw
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            rows = slice(u * dilation[0], u * dilation[0] + stride[0] * (out_h - 1) + 1, stride[0])
            cols = slice(v * dilation[1], v * dilation[1] + stride[1] * (out_w - 1) + 1, stride[1])
            yield u, v, x[:, :, rows, cols]


def conv2d(x: np.ndarray, node: ir.Conv2d) -> np.ndarray:
    """Grouped cross-correlation ``(N, C, H, W) -> (N, C_out, Ho, Wo)`` plus bias (see ir.Conv2d)."""
    _, out_h, out_w = node.output_shape([x.shape[1:]])
    weight = node.weight
    group_in, group_out = weight.shape[1], weight.shape[0] // node.groups
    out = np.zeros((len(x), weight.shape[0], out_h, out_w), np.result_type(x, weight))
    padded = _padded(x, node.padding)
    for g in range(node.groups):
        block = padded[:, g * group_in:(g + 1) * group_in]
        kernels = weight[g * group_out:(g + 1) * group_out]
        for u, v, piece in _window_slices(block, weight.shape[2:], node.stride, node.dilation,
                                          (out_h, out_w)):
            out[:, g * group_out:(g + 1) * group_out] += np.einsum(
                "nchw,oc->nohw", piece, kernels[:, :, u, v])
    if node.bias is not None:
        out = out + node.bias.reshape(1, -1, 1, 1)
    return out


def pool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
         padding: tuple[int, int, int, int], combine: np.ufunc) -> np.ndarray:
    """Per-channel window reduction (``np.add`` or ``np.maximum``); max pads with ``-inf``."""
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(np.int64).min
    padded = _padded(x.astype(np.float64 if x.dtype.kind == "f" else np.int64), padding,
                     0 if combine is np.add else lowest)
    out_h = (padded.shape[2] - kernel[0]) // stride[0] + 1
    out_w = (padded.shape[3] - kernel[1]) // stride[1] + 1
    pieces = [piece for _, _, piece in _window_slices(padded, kernel, stride, (1, 1),
                                                      (out_h, out_w))]
    return combine.reduce(np.stack(pieces), axis=0)


def apply_stateless(node: ir.Node, inputs: list[np.ndarray]) -> np.ndarray:
    """One evaluation of a node without state on a batch (``(N, ...)`` arrays)."""
    x = inputs[0]
    if isinstance(node, ir.Dense):
        out = x @ node.weight.T
        return out if node.bias is None else out + node.bias
    if isinstance(node, ir.Conv2d):
        return conv2d(x, node)
    if isinstance(node, ir.SumPool2d):
        total = pool(x, node.kernel, node.stride, node.padding, np.add)
        return total if node.scale == 1.0 else total * node.scale
    if isinstance(node, ir.Affine):
        extra = (1,) * (x.ndim - 2)
        return x * node.scale.reshape((1, -1) + extra) + node.bias.reshape((1, -1) + extra)
    if isinstance(node, ir.Add):
        return sum(inputs[1:], inputs[0])
    if isinstance(node, ir.Flatten):
        return x.reshape(len(x), -1)
    if isinstance(node, ir.Reshape):
        return x.reshape((len(x),) + node.shape)
    if isinstance(node, ir.Transpose):
        return x.transpose((0,) + tuple(p + 1 for p in node.perm))
    if isinstance(node, ir.ReLU):
        return np.maximum(x, 0)
    if isinstance(node, ir.Clip):
        return np.clip(x, node.low, node.high)
    raise SnnccError(f"the golden model has no rule for {type(node).__name__}")


# ----------------------------------------------------------------------------- synaptic events


def fanout(node: ir.Node, input_shape: ir.Shape) -> np.ndarray:
    """Synapses (nonzero weights) leaving each input element of a Dense/Conv2d node, shaped like
    the input."""
    if isinstance(node, ir.Dense):
        return (node.weight != 0).sum(axis=0).astype(np.float64)
    assert isinstance(node, ir.Conv2d)
    channels, height, width = input_shape
    group_in = node.weight.shape[1]
    group_out = node.weight.shape[0] // node.groups
    nonzero = np.zeros((channels,) + node.weight.shape[2:])
    for group in range(node.groups):
        block = node.weight[group * group_out:(group + 1) * group_out] != 0
        nonzero[group * group_in:(group + 1) * group_in] = block.sum(axis=0)
    top, left, bottom, right = node.padding
    _, out_h, out_w = node.output_shape([input_shape])
    padded = np.zeros((channels, height + top + bottom, width + left + right))
    for u in range(node.weight.shape[2]):
        for v in range(node.weight.shape[3]):
            rows = slice(u * node.dilation[0], u * node.dilation[0] + out_h * node.stride[0],
                         node.stride[0])
            cols = slice(v * node.dilation[1], v * node.dilation[1] + out_w * node.stride[1],
                         node.stride[1])
            padded[:, rows, cols] += nonzero[:, u, v][:, None, None]
    return padded[:, top:top + height, left:left + width]


def synaptic_events(active_counts: np.ndarray, fan_out: np.ndarray) -> np.ndarray:
    """Per-sample synaptic events: each time an input element is nonzero, its fan-out fires."""
    return active_counts.reshape(len(active_counts), -1) @ fan_out.reshape(-1)


# ------------------------------------------------------------------------------------ neurons


def initial_state(node: ir.Node, shape: ir.Shape, batch: int, integer: bool) -> dict:
    """A neuron node's state at the start of every sample."""
    dtype = np.int64 if integer else np.float64
    full = (batch,) + tuple(shape)
    if isinstance(node, ir.IF):
        v_init = ir.broadcast_per_neuron(node.v_init, shape, "v_init")
        return {"v": np.broadcast_to(v_init, full).astype(dtype), "armed": np.ones(full, bool)}
    if isinstance(node, ir.LEAKY):
        v_init = ir.broadcast_per_neuron(node.v_init, shape, "v_init").astype(dtype)
        if integer:
            v_init = v_init << ir.LEAKY_SHIFT
        return {"v": np.broadcast_to(v_init, full).astype(dtype), "u": np.zeros(full, dtype),
                "pending": np.zeros(full, bool)}
    raise SnnccError(f"{type(node).__name__} is not a neuron node")


def decay(x: np.ndarray, d: np.ndarray, integer: bool) -> np.ndarray:
    """One step of decay by ``d / 4096``: ``x * (1 - d/4096)``; in integer mode Loihi's
    ``sign(x) * ((|x| * (4096 - d)) >> 12)`` (truncation toward zero)."""
    if not integer:
        return x * (1.0 - np.asarray(d, np.float64) / ir.DECAY_UNITY)
    x = np.asarray(x, np.int64)
    kept = ir.DECAY_UNITY - np.asarray(d, np.int64)
    return np.sign(x) * ((np.abs(x) * kept) >> ir.DECAY_SHIFT)


def wrap_current(u: np.ndarray) -> np.ndarray:
    """Loihi's 24-bit current wrap, applied once: ``u - 2**24`` above ``2**23``, ``u + 2**24`` at
    or below ``-2**23`` (lava-nc 0.10 ``AbstractPyLifModelFixed.subthr_dynamics``)."""
    wrap = ir.LEAKY_U_WRAP
    return np.where(u > wrap, u - 2 * wrap, np.where(u <= -wrap, u + 2 * wrap, u))


def leaky_update(v: np.ndarray, u: np.ndarray, pending: np.ndarray, current: np.ndarray,
                 threshold: np.ndarray, du: np.ndarray, dv: np.ndarray, reset: str,
                 reset_delay: bool, comparison: str, integer: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The leaky (LIF/CubaLIF) rule on arrays: returns ``(v, u, spikes)`` after one step.

    Float: ``u = u (1 - du/4096) + x``, ``v = v (1 - dv/4096) + u`` (minus ``threshold`` where the
    previous step spiked, with ``reset_delay``), spike where ``v > threshold`` (``>=``), then the
    same-step reset (subtract or zero) unless delayed. Integer: Loihi's rules (see
    :class:`snncc.ir.CubaLIF`): the input and the threshold count ``2**6`` state units,
    :func:`decay` truncates toward zero, ``u`` wraps (:func:`wrap_current`) and ``v`` saturates
    to ``+-(2**23 - 1)``. ``pending`` holds the previous step's spikes (used with ``reset_delay``).
    A LIF node is the case ``du = 4096``.
    """
    if integer:
        threshold = np.asarray(threshold, np.int64) << ir.LEAKY_SHIFT
        u = wrap_current(decay(u, du, True) + (np.asarray(current, np.int64) << ir.LEAKY_SHIFT))
    else:
        u = decay(u, du, False) + current
    v = decay(v, dv, integer) + u
    if reset_delay:
        v = v - pending * threshold
    if integer:
        v = np.clip(v, -ir.LEAKY_V_MAX, ir.LEAKY_V_MAX)
    spikes = v > threshold if comparison == ">" else v >= threshold
    if not reset_delay:
        v = v - spikes * threshold if reset == "subtract" else np.where(spikes, 0, v)
    return v, u, spikes


def leaky_step(node: ir.LIF | ir.CubaLIF, state: dict, current: np.ndarray,
               integer: bool) -> np.ndarray:
    """One step of :class:`snncc.ir.LIF` / :class:`snncc.ir.CubaLIF` (:func:`leaky_update`)."""
    shape = current.shape[1:]
    per_neuron = {name: ir.broadcast_per_neuron(getattr(node, name), shape, name)
                  for name in ("threshold", "du", "dv")}
    v, u, spikes = leaky_update(state["v"], state["u"], state["pending"], current,
                                per_neuron["threshold"], per_neuron["du"], per_neuron["dv"],
                                node.reset, node.reset_delay, node.comparison, integer)
    state["v"], state["u"], state["pending"] = v.astype(state["v"].dtype), u.astype(
        state["u"].dtype), spikes
    return spikes.astype(np.uint8)


def if_update(v: np.ndarray, current: np.ndarray, threshold: np.ndarray, armed: np.ndarray,
              reset: str, fire_once: bool, integer: bool
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The IF rule on arrays: returns ``(v, spikes, armed)`` after one step.

    ``v += x`` (saturated in integer mode); spike where ``v >= threshold`` and the neuron is armed
    (fire-once neurons disarm after their spike and keep integrating); reset by subtracting the
    threshold from spiking neurons (``reset="subtract"``), or to zero (``"zero"``).
    """
    v = v + current
    if integer:
        v = saturate(v)
    spikes = (v >= threshold) & armed
    if fire_once:
        armed = armed & ~spikes
    v = v - spikes * threshold if reset == "subtract" else np.where(spikes, 0, v)
    return v, spikes, armed


def if_step(node: ir.IF, state: dict, current: np.ndarray, integer: bool) -> np.ndarray:
    """One step of :class:`snncc.ir.IF` (:func:`if_update`); returns 0/1 spikes, updates ``state``."""
    threshold = ir.broadcast_per_neuron(node.threshold, current.shape[1:], "threshold")
    v, spikes, state["armed"] = if_update(state["v"], current, threshold, state["armed"],
                                          node.reset, node.fire_once, integer)
    state["v"] = v.astype(state["v"].dtype)
    return spikes.astype(np.uint8)


#: Neuron node type -> its step rule. A new neuron model adds one entry (and its IR node).
NEURON_RULES = {ir.IF: if_step, ir.LIF: leaky_step, ir.CubaLIF: leaky_step}


def neuron_step(node: ir.Node, state: dict, current: np.ndarray, integer: bool) -> np.ndarray:
    """One step of any neuron node (see :data:`NEURON_RULES`)."""
    return NEURON_RULES[type(node)](node, state, current, integer)


# ------------------------------------------------------------------------------- max pooling


def max_pool_step(node: ir.MaxPool2d, state: dict, x: np.ndarray) -> np.ndarray:
    """Spiking max pool: ``M(t) - M(t-1)`` with ``M(t) = maxpool(sum of inputs up to t)``."""
    state["total"] = state["total"] + x
    pooled = pool(state["total"], node.kernel, node.stride, node.padding, np.maximum)
    out, state["previous"] = pooled - state["previous"], pooled
    return out


# ----------------------------------------------------------------------------------- readout


def first_spike_winner(crossing: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The first-spike tie-break: per sample, among ``crossing`` neurons the one with the largest
    ``v``, then the lowest index; ``-1`` where no neuron crosses. ``crossing``, ``v``: ``(N, C)``.
    """
    crossing = np.asarray(crossing, bool)
    lowest = np.iinfo(np.int64).min if np.asarray(v).dtype.kind in "iub" else -np.inf
    candidates = np.where(crossing, np.asarray(v, np.int64 if lowest != -np.inf else np.float64),
                          lowest)
    return np.where(crossing.any(axis=1), np.argmax(candidates, axis=1), -1)


def potential_decision(v: np.ndarray) -> np.ndarray:
    """The potential readout's decision: ``argmax v`` per sample, lowest index on ties."""
    return np.argmax(v, axis=1)


def readout_step(node: ir.Readout, state: dict, current: np.ndarray, integer: bool,
                 t: int) -> np.ndarray:
    """Accumulate one step and return the decision after it (see :class:`snncc.ir.Readout`).

    ``potential``: ``argmax a`` (a leaky readout decays ``a`` first, :func:`decay`). ``first_spike``: the fire-once neuron that crossed its threshold
    first (:func:`first_spike_winner` among those crossing at the same step); before any crossing,
    ``argmax v``. ``state["time"]`` keeps the step of the first crossing (``T`` until then).
    """
    v = (decay(state["v"], node.dv, integer) if node.dv else state["v"]) + current
    state["v"] = saturate(v) if integer else v
    if node.mode == "potential":
        return potential_decision(state["v"])
    threshold = ir.broadcast_per_neuron(node.threshold, current.shape[1:], "threshold")
    undecided = state["winner"] < 0
    winners = first_spike_winner((state["v"] >= threshold) & undecided[:, None], state["v"])
    newly = winners >= 0
    state["winner"] = np.where(newly, winners, state["winner"])
    state["time"] = np.where(newly, t, state["time"])
    return np.where(state["winner"] >= 0, state["winner"], potential_decision(state["v"]))


# ------------------------------------------------------------------------------ whole network


@dataclass
class GoldenRun:
    """What :func:`run` observed: rasters ``(T, N, *shape)`` of every spiking node (the spiking
    input as ``input:<name>``), decisions ``(T, N)``, final readout state ``(N, C)`` and the first
    output crossing step ``(N,)`` (``T`` if none; first-spike readouts only) and synaptic events
    per sample ``(N,)`` (:func:`synaptic_events`)."""

    rasters: dict[str, np.ndarray]
    decisions: np.ndarray
    readout_state: np.ndarray
    decision_time: np.ndarray | None
    synops: np.ndarray


def run(graph: ir.Graph, raw: np.ndarray, timesteps: int, mode: str = "integer",
        sample_indices: np.ndarray | None = None) -> GoldenRun:
    """Step ``graph`` through ``timesteps`` steps on raw samples ``(N, *input_shape)``.

    Every sample starts from the initial state; at each step every node is evaluated once in
    topological order with no delay between nodes (a spike at step ``t`` reaches the next layer at
    step ``t``). ``mode="integer"`` needs an integer graph and integer samples.
    """
    integer = mode == "integer"
    shapes = graph.validate(integer=integer)
    order = graph.topological_order()
    raw = np.asarray(raw)
    batch = len(raw)
    value_dtype = np.int64 if integer else np.float64
    inputs = encode_input(graph.input, raw, timesteps, sample_indices, integer)
    state: dict[str, dict] = {}
    for name in order:
        node = graph.nodes[name]
        if type(node) in NEURON_RULES:
            state[name] = initial_state(node, shapes[name], batch, integer)
        elif isinstance(node, ir.MaxPool2d):
            source = graph.inputs_of(name)[0]
            state[name] = {"total": np.zeros((batch,) + shapes[source], value_dtype),
                           "previous": np.zeros((batch,) + shapes[name], value_dtype)}
        elif isinstance(node, ir.Readout):
            state[name] = {"v": np.zeros((batch,) + shapes[name], value_dtype),
                           "winner": np.full(batch, -1), "time": np.full(batch, timesteps)}
    spiking = [n for n in order if type(graph.nodes[n]) in NEURON_RULES
               or isinstance(graph.nodes[n], ir.MaxPool2d)]
    input_key = f"input:{graph.input_name}"
    rasters: dict[str, list[np.ndarray]] = {name: [] for name in spiking}
    if graph.input.coding != "direct":
        rasters[input_key] = []
    fan_outs = {name: fanout(graph.nodes[name], shapes[graph.inputs_of(name)[0]])
                for name in order if isinstance(graph.nodes[name], ir.SYNAPTIC)}
    synops = np.zeros(batch)
    decisions = []
    for t in range(timesteps):
        values: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            args = [values[s] for s in graph.inputs_of(name)]
            if isinstance(node, ir.Input):
                out = inputs[t].astype(value_dtype)
                if input_key in rasters:
                    rasters[input_key].append(inputs[t].astype(np.uint8))
            elif type(node) in NEURON_RULES:
                out = neuron_step(node, state[name], args[0], integer).astype(value_dtype)
            elif isinstance(node, ir.MaxPool2d):
                out = max_pool_step(node, state[name], args[0])
            elif isinstance(node, ir.Readout):
                decisions.append(readout_step(node, state[name], args[0], integer, t))
                out = args[0]
            else:
                out = apply_stateless(node, args)
                if name in fan_outs:
                    synops += synaptic_events((args[0] != 0).astype(np.int64), fan_outs[name])
            values[name] = out
            if name in rasters:
                rasters[name].append(out.astype(np.uint8))
    readout = state[graph.output_name]
    first_spike = graph.nodes[graph.output_name].mode == "first_spike"
    return GoldenRun(
        rasters={name: np.stack(steps) for name, steps in rasters.items()},
        decisions=np.stack(decisions),
        readout_state=readout["v"],
        decision_time=readout["time"] if first_spike else None,
        synops=synops,
    )
