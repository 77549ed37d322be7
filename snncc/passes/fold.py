"""fold: fuse affine scalings into synaptic weights, then make the network integer end to end.

Rules (applied in this order; one application is enough):

1. **Affine / BatchNorm.** An :class:`~snncc.ir.Affine` ``y = s[c] x + t[c]`` whose input is a
   Dense/Conv2d read by nothing else is fused backward: ``W[o] *= s[o]``, ``b = s b + t``.
   Otherwise it is fused forward into the Dense/Conv2d that reads it (directly or through
   Flatten): the input columns of channel ``c`` are multiplied by ``s[c]`` and ``W t`` is added to
   the bias. Forward fusion into a padded Conv2d with ``t != 0`` would be inexact (the zero padding
   would become ``t``), so such an Affine, like one with no Dense/Conv2d neighbour, is an error.
2. **Input preprocessing** (direct coding only): ``x = (r * scale - mean[c]) / std[c]`` is the
   affine ``s = scale / std``, ``t = -mean / std``, fused forward into the first synaptic layer as
   in rule 1; the Input becomes the identity, so raw integer samples feed the network. One
   documented approximation: when that layer is a padded Conv2d and ``mean != 0``, its padding now
   stands for raw 0 instead of normalised 0 (``info["approximations"]`` says so). Rate and latency
   coded inputs keep their preprocessing (it is the encoder's).
3. **SumPool2d scale** (average pooling's ``1/k^2``) moves into the weights of the Dense/Conv2d
   reading the pool (directly or through Flatten); the pool's scale becomes 1.
4. **Integerize** (option ``integerize``, default true; needs a converted SNN). Every synaptic
   layer feeding IF neurons is multiplied by a positive scale ``lam`` per output channel (option
   ``per_channel``, default true; else one per layer), applied to weights, bias, threshold and
   ``v_init`` alike, which leaves the spikes unchanged up to rounding. ``lam`` is the largest value
   with ``max|lam W[o]| <= 2**(weight_bits-1) - 1`` (``weight_bits`` default 16) and
   ``|lam v_init| + lam threshold + lam B[o] <= STATE_MAX`` where ``B[o]`` bounds the current one
   step delivers (:func:`snncc.passes.layers.step_currents`: ``sum |W[o]| * input bound + |b[o]|``,
   raw inputs bounded by option ``input_max``, default the calibration samples' maximum, else 255;
   for the layer reading direct-coded raw samples, twice the largest current seen on the
   calibration samples when that is smaller), so a neuron's membrane stays inside the 24-bit state
   for a step beyond its threshold. The layer feeding a Readout uses ONE
   scale for all classes (argmax and first-spike order are preserved) with ``T * lam B <= STATE_MAX``
   for ``T = context.timesteps`` steps of accumulation. Layers the binarize pass made ±1 get
   ``lam = 1 / |w|`` per channel so their weights are ±1 again after rules 1-3 scaled them
   (e.g. by a pool's 1/4); if those rules made a channel's magnitudes unequal (per-input-channel
   preprocessing), the layer is integerized like any other and ``info["warnings"]`` says so.
   Rounding: round half to even (``np.rint``) of ``lam * value`` for weights, biases, thresholds and
   ``v_init``; thresholds are at least 1; ``v_init`` is clipped to the state range. Results are
   ``int64`` arrays; thresholds and ``v_init`` become per channel when ``lam`` is.
   Leaky neurons (LIF, CubaLIF): their integer state counts ``2**-6`` input units, so the state
   limit above is ``(2**23 - 1) / 64`` (:func:`snncc.passes.layers.state_limit`); a CubaLIF's
   current can add up to ``4096 / du`` one-step currents, so ``B`` and the rounding slack
   (:func:`snncc.passes.layers.rounding_slack`: for a leaky layer reading raw samples only the
   bias, threshold and ``v_init`` share) count that many times; decays ``du``, ``dv`` (and a
   leaky readout's ``dv``) are rounded half to even to whole ``2**-12`` steps
   (:func:`snncc.passes.layers.round_decays`).

A graph whose synaptic weights are all integer already is not integerized again, so a second
application changes nothing. Never mutates its input; deterministic. ``info`` reports per layer
the scale range and the effective weight bits (``ceil(log2(max|W| + 1)) + 1``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from snncc import affine, ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult
from snncc.passes.layers import (
    binarized_layers,
    channel_view,
    compact,
    current_growth,
    expand_per_channel,
    input_magnitude,
    layers,
    neuron_values,
    raw_input_bound,
    round_decays,
    rounding_slack,
    sole_synaptic_reader,
    state_limit,
    step_currents,
)

DEFAULT_WEIGHT_BITS = 16
OPTIONS = {"weight_bits": "int", "per_channel": "bool", "input_max": "number|null",
           "integerize": "bool"}


def fold(graph: ir.Graph, context: PassContext) -> PassResult:
    """Fold Affine nodes, input preprocessing and pool scales, then integerize (see module doc)."""
    options = context.options_for("fold")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SnnccError(f"fold: unknown option {unknown[0]!r}; available: {', '.join(OPTIONS)}")
    weight_bits = int(options.get("weight_bits", DEFAULT_WEIGHT_BITS))
    if not 2 <= weight_bits <= 24:
        raise SnnccError(f"fold: weight_bits must be in 2..24, got {weight_bits}")
    graph = graph.copy()
    info: dict[str, Any] = {"approximations": [], "folded": []}
    changed = _fold_affines(graph, info)
    changed |= _fold_input(graph, info)
    changed |= _fold_pool_scales(graph, info)
    already_integer = all(ir.is_integer_array(graph.nodes[n].weight)
                          for n in graph.of_type(*ir.SYNAPTIC))
    if options.get("integerize", True) and not already_integer:
        input_max = options.get("input_max")
        if input_max is None:
            input_max = raw_input_bound(graph, context.calibration)
        changed |= _integerize(graph, context.timesteps, weight_bits,
                               bool(options.get("per_channel", True)), float(input_max),
                               context.calibration, info)
    if options.get("integerize", True):
        graph.check_integer()
    return PassResult(graph, changed, info)


# ----------------------------------------------------------------------------- affine folding


def _consumer_layer(graph: ir.Graph, name: str) -> tuple[str, bool] | None:
    """The Dense/Conv2d reading ``name`` alone (directly or through Flatten), and if via Flatten."""
    return sole_synaptic_reader(graph, name, lambda node: isinstance(node, ir.Flatten) or (
        isinstance(node, ir.Reshape) and len(node.shape) == 1))


def _fold_forward(graph: ir.Graph, source: str, scale: np.ndarray, shift: np.ndarray,
                  what: str, allow_padding_shift: bool, info: dict[str, Any]) -> bool:
    """Fuse ``y = scale[c] x + shift[c]`` applied to ``source``'s output into its reader."""
    found = _consumer_layer(graph, source)
    if found is None:
        return False
    consumer_name, _ = found
    shape = graph.infer_shapes()[source]
    channels = shape[0]
    scale = expand_per_channel(scale, channels, f"{what} scale")
    shift = expand_per_channel(shift, channels, f"{what} shift")
    consumer = graph.nodes[consumer_name]
    if isinstance(consumer, ir.Dense):
        spatial = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        weight, bias = affine.before(consumer, np.repeat(scale, spatial),
                                     np.repeat(shift, spatial), always_bias=True)
    else:
        if len(shape) != 3:
            return False
        if any(consumer.padding) and np.any(shift):
            if not allow_padding_shift:
                return False
            info["approximations"].append(
                f"{what}: {consumer_name!r} is padded, so its padding now stands for raw 0 "
                "instead of normalised 0")
        weight, bias = affine.before(consumer, scale, shift, always_bias=True)
    consumer.weight, consumer.bias = weight, bias
    info["folded"].append(f"{what} -> {consumer_name}")
    return True


def _fold_affines(graph: ir.Graph, info: dict[str, Any]) -> bool:
    changed = False
    for name in graph.of_type(ir.Affine):
        node: ir.Affine = graph.nodes[name]  # type: ignore[assignment]
        (producer,) = graph.inputs_of(name)
        producer_node = graph.nodes[producer]
        if isinstance(producer_node, ir.SYNAPTIC) and graph.consumers(producer) == [name]:
            channels = producer_node.weight.shape[0]
            scale = expand_per_channel(node.scale, channels, f"affine {name!r} scale")
            shift = expand_per_channel(node.bias, channels, f"affine {name!r} bias")
            producer_node.weight, producer_node.bias = affine.after(producer_node, scale, shift,
                                                                    always_bias=True)
            info["folded"].append(f"affine {name} -> {producer}")
        elif not _fold_forward(graph, name, node.scale, node.bias, f"affine {name}", False, info):
            raise SnnccError(
                f"fold: Affine {name!r} cannot be folded: it neither follows a Dense/Conv2d read "
                "only by it nor feeds one exactly (a padded Conv2d with a shift is inexact)"
            )
        graph.bypass(name)
        changed = True
    return changed


def _fold_input(graph: ir.Graph, info: dict[str, Any]) -> bool:
    name = graph.input_name
    node = graph.input
    if node.coding != "direct" or node.is_identity:
        return False
    scale = node.scale / node.std
    shift = -node.mean / node.std
    if not _fold_forward(graph, name, scale, shift, "input preprocessing", True, info):
        raise SnnccError(
            f"fold: input preprocessing of {name!r} cannot be folded: the input must feed one "
            "Dense/Conv2d (directly or through Flatten)"
        )
    node.scale, node.mean, node.std = 1.0, np.zeros(1), np.ones(1)
    return True


def _fold_pool_scales(graph: ir.Graph, info: dict[str, Any]) -> bool:
    changed = False
    for name in graph.of_type(ir.SumPool2d):
        node: ir.SumPool2d = graph.nodes[name]  # type: ignore[assignment]
        if node.scale == 1.0:
            continue
        channels = graph.infer_shapes()[name][0]
        if not _fold_forward(graph, name, np.full(channels, node.scale), np.zeros(channels),
                             f"pool {name} scale", False, info):
            raise SnnccError(
                f"fold: SumPool2d {name!r} scale {node.scale:g} cannot be folded: its output must "
                "feed one Dense/Conv2d (directly or through Flatten)"
            )
        node.scale = 1.0
        changed = True
    return changed


# ------------------------------------------------------------------------------- integerize


def _integerize(graph: ir.Graph, timesteps: int, weight_bits: int, per_channel: bool,
                input_max: float, calibration: np.ndarray | None, info: dict[str, Any]) -> bool:
    leftovers = [n for n, node in graph.nodes.items() if isinstance(node, (ir.ReLU, ir.Clip))]
    if leftovers:
        name = leftovers[0]
        raise SnnccError(
            f"fold: node {name!r} ({type(graph.nodes[name]).__name__}) has no integer form; "
            "integerize needs a converted SNN (run convert first)"
        )
    weight_max = 2 ** (weight_bits - 1) - 1
    bounds = input_magnitude(graph, input_max)
    binary = binarized_layers(graph)
    shapes = graph.infer_shapes()
    report: dict[str, Any] = {}
    for layer in layers(graph, "fold"):
        node = layer.node
        input_bound = bounds[graph.inputs_of(layer.name)[0]]
        current = step_currents(graph, layer.name, input_bound, calibration)
        weight_peak = np.abs(channel_view(node)).astype(np.float64).max(axis=1)
        binary_scale = None
        if layer.name in binary:
            binary_scale = _binary_scale(node, weight_peak)
            if binary_scale is None:
                info.setdefault("warnings", []).append(
                    f"binarized layer {layer.name!r} is no longer ±1 after folding (its input "
                    "scaling varies per input channel); integerized like any other layer")
        with np.errstate(divide="ignore"):
            by_weights = np.where(weight_peak > 0, weight_max / np.maximum(weight_peak, 1e-300),
                                  np.inf)
        if layer.is_output:
            readout: ir.Readout = layer.target  # type: ignore[assignment]
            threshold = np.abs(np.asarray(readout.threshold, dtype=np.float64))
            steps = max(timesteps, 1)
            peak = max(float(np.max(current)) * steps, float(np.max(threshold)), 1e-300)
            slack = 0.5 * (channel_view(node).shape[1] * input_bound + 1) * steps
            lam = min(float(np.min(by_weights)), (ir.STATE_MAX - slack) / peak)
            if binary_scale is not None:
                lam = float(np.max(binary_scale))
            scale = np.full(layer.channels, lam)
            if readout.mode == "first_spike":
                readout.threshold = np.maximum(np.rint(threshold * lam), 1).astype(np.int64)
        else:
            neurons: ir.IF = layer.target  # type: ignore[assignment]
            shape = shapes[layer.target_name]
            threshold = neuron_values(neurons.threshold, shape, "threshold")
            v_init = neuron_values(neurons.v_init, shape, "v_init")
            flat = (threshold + np.abs(v_init)).reshape(layer.channels, -1).max(axis=1)
            # rounding may add 1/2 per weight (times the input bound), bias, threshold and v_init
            slack = rounding_slack(graph, layer.name, input_bound, calibration)
            limit = state_limit(neurons)
            growth = current_growth(neurons, layer.channels)
            by_state = (limit - slack * growth) / (flat + current * growth)
            scale = np.minimum(by_weights, by_state)
            if binary_scale is not None:
                scale = binary_scale
            elif not per_channel:
                scale = np.full(layer.channels, float(np.min(scale)))
            per_neuron = scale.reshape((-1,) + (1,) * (len(shape) - 1))
            neurons.threshold = compact(np.maximum(np.rint(threshold * per_neuron), 1)
                                        .astype(np.int64))
            neurons.v_init = compact(np.clip(np.rint(v_init * per_neuron), -limit,
                                             limit).astype(np.int64))
            round_decays(neurons)
        view = (-1,) + (1,) * (node.weight.ndim - 1)
        node.weight = np.rint(np.asarray(node.weight, np.float64) * scale.reshape(view)).astype(
            np.int64)
        if node.bias is not None:
            node.bias = np.rint(np.asarray(node.bias, np.float64) * scale).astype(np.int64)
        peak_weight = int(np.max(np.abs(node.weight))) if node.weight.size else 0
        report[layer.name] = {
            "scale_min": float(np.min(scale)),
            "scale_max": float(np.max(scale)),
            "weight_bits": math.ceil(math.log2(peak_weight + 1)) + 1,
        }
    info["layers"] = report
    for name, node in graph.nodes.items():
        if isinstance(node, ir.NEURONS) and not node.integer_ready():
            raise SnnccError(f"fold: {type(node).__name__} {name!r} is not fed by a Dense/Conv2d; "
                             "cannot integerize")
        if isinstance(node, ir.Readout):
            round_decays(node)
    return True


def _binary_scale(node: ir.Dense | ir.Conv2d, weight_peak: np.ndarray) -> np.ndarray | None:
    """Per channel ``1 / |w|`` when every nonzero weight of a channel has the same magnitude."""
    magnitude = np.abs(channel_view(node)).astype(np.float64)
    peak = weight_peak[:, None]
    uniform = np.all((magnitude == 0) | np.isclose(magnitude, peak, rtol=1e-9, atol=0))
    if not uniform:
        return None
    return np.where(weight_peak > 0, 1.0 / np.maximum(weight_peak, 1e-300), 1.0)
