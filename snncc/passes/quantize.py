"""quantize: N-bit weight mantissas with one power-of-two exponent per layer, within a target's limits.

Works on an integer graph (run fold first). Each synaptic layer is rescaled by one positive factor
``s`` (weights, bias, threshold and ``v_init`` alike, so the spikes keep their meaning) and its
weights become ``W = m * 2**e`` with a signed ``bits``-bit mantissa ``|m| <= 2**(bits-1) - 1`` and
one exponent ``e >= 0`` per layer (Loihi-style ``weight_exp``). Rules:

1. Options: ``bits`` (default 8) within the target's range, ``target`` (``generic`` or ``loihi``),
   ``weight_percentile`` (default 100: the largest ``|W|`` maps to the largest mantissa; below 100
   the weights above that percentile saturate at ``±(2**(bits-1) - 1) * 2**e``). Anything else is a
   one-line error.
2. Targets (:data:`TARGETS`): ``generic`` — bits 2..16, exponent 0..15, thresholds and states up
   to the simulator's 24-bit state, per-channel thresholds allowed. ``loihi`` — bits 2..8,
   exponent 0..7, ONE threshold per layer (a LIF process has one ``vth``), threshold mantissa at
   most 2**17 - 1, and every magnitude (threshold, ``v_init``, one step's current) at most 2**17 - 1
   in weight units because Loihi's 24-bit ``v`` holds weight units shifted left by 6; biases are
   ``b = mantissa * 2**k`` with a 13-bit signed mantissa and ``k`` in 0..1 (``bias_exp`` 6 or 7,
   net of the 6-bit shift). ``lava`` — snncc's Lava backend (custom IF processes with the IR's 24-bit
   state): bits 2..8, exponent 0..7, per-neuron thresholds rounded to the nearest 17-bit mantissa
   times a power of two (Loihi 2's ``vth`` format; relative error below 2**-17).
   ``loihi2-netx`` — what lava-dl's netx loader and Loihi 2's CUBA neurons hold
   (:data:`snncc.profiles.LOIHI2_NETX`): as ``loihi`` but exponent 0..1 (netx clips mixed-sign
   weights to [-256, 254]) and biases a 13-bit mantissa with ``k = 0`` (netx fixes ``bias_exp``).
3. For ``loihi`` and ``loihi2-netx`` (one threshold per layer), per-channel thresholds are first
   equalised: channel ``o`` is multiplied by
   ``max(threshold) / threshold[o]`` (weights, bias, ``v_init``), exact before rounding.
4. Exponent and scale: ``e`` is the largest exponent in the target's range for which
   ``s = (2**(bits-1) - 1) * 2**e / w`` (``w`` = the ``weight_percentile`` of ``|W|``) keeps the
   threshold at most the target maximum and a step beyond threshold inside the state limit
   (``s (|v_init| + threshold + B) <= limit`` with ``B`` the one-step current bound of
   :func:`snncc.passes.layers.step_currents`, as in fold) and the biases inside the bias range.
   A larger ``e`` buys threshold resolution. If even ``e = 0`` does not fit, ``s`` is lowered until
   it does and the layer uses fewer mantissa bits (``info`` reports ``effective_bits``). The layer
   feeding a Readout uses ``e = 0`` and ``s T B <= limit`` (``T = context.timesteps``); for
   ``loihi2-netx`` ``s T B <= 16 limit`` and ``s T |b| <= limit / 2``: netx writes each class as
   several output neurons over disjoint input ranges whose partial potentials each provably fit
   (:func:`snncc.backends.netx.readout_parts`), the potential being their sum (mnist_cnn_ratenorm
   at T=32: 3 of 8 weight bits in the output layer without it).
5. Rounding: ``m = rint(s W / 2**e)`` (half to even) then saturation to the mantissa range;
   thresholds ``clip(rint(s θ), 1, max)``; biases rounded to the target's bias grid and saturated;
   ``v_init`` rounded and clipped to the state limit.
6. Layers the binarize pass made ±1, and integer layers whose weights are all ±1 or 0 (a BSTDG
   network), keep their weights (1-bit mantissa, ``e = 0``); their
   thresholds are only checked against the target's limit (per-layer for loihi: equalised by
   scaling the bias, threshold and ``v_init`` never the ±1 weights, so unequal thresholds there
   are an error).
7. ``info["warnings"]`` names every layer left with fewer than about half its mantissa bits.
   On ``loihi`` this happens to a first layer fed direct-coded raw pixels (the 17-bit state cannot
   hold ``255 * sum|W|`` at full precision: use rate coding) and to layers with per-channel
   thresholds of a wide spread (convert and fold with ``per_channel=False`` for loihi).
8. Leaky neurons: the state limit is at most ``(2**23 - 1) / 64`` (their integer state counts
   ``2**-6`` input units, :func:`snncc.passes.layers.state_limit`), a CubaLIF's current counts
   ``4096 / du`` one-step currents, and decays stay whole ``2**-12`` steps.
9. ``graph.quantization`` (:class:`snncc.ir.Quantization`) records the target, bits and per layer ``weight_exponent``,
   ``bias_exponent`` and ``effective_bits`` so a backend can emit mantissa + exponent
   (``m = W >> e``, exact).

Never mutates its input; deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult
from snncc.passes.layers import (
    binarized_layers,
    channel_view,
    compact,
    current_growth,
    input_magnitude,
    layers,
    neuron_values,
    raw_input_bound,
    round_decays,
    rounding_slack,
    state_limit,
    step_currents,
)
from snncc.profiles import LOIHI2_NETX


@dataclass(frozen=True)
class TargetLimits:
    """Fixed-point limits of one hardware target, in the units of a layer's integer weights."""

    name: str
    bits: tuple[int, int]  # allowed mantissa widths (signed), inclusive
    exponent: tuple[int, int]  # allowed weight exponents, inclusive
    threshold_max: int
    state_max: int  # largest |v| (and one-step current) representable
    per_layer_threshold: bool
    bias_mantissa_bits: int | None  # signed; None: any integer within the state
    bias_exponent: tuple[int, int]
    threshold_mantissa_bits: int | None = None  # thresholds = mantissa * 2**k; None: any integer
    readout_parts: int = 1  # the readout potential may be the sum of this many partial states


TARGETS: dict[str, TargetLimits] = {
    "generic": TargetLimits("generic", (2, 16), (0, 15), ir.STATE_MAX, ir.STATE_MAX, False,
                            None, (0, 0)),
    # Loihi (lava-nc 0.10 fixed-point LIF/Dense, lava/proc/lif/models.py): vth 17-bit unsigned,
    # shifted left by 6 like the synaptic input, 24-bit v => 2**17 in weight units; bias_mant
    # 13-bit signed, bias_exp 0..7 applied to v directly (so 6..7 are integers in weight units);
    # Dense weights 8-bit with weight_exp (we use 0..7).
    "loihi": TargetLimits("loihi", (2, 8), (0, 7), 2**17 - 1, 2**17 - 1, True, 13, (0, 1)),
    # snncc's Lava backend (snncc/backends/lava.py): lava Dense/Sparse/Conv with 8-bit weight
    # mantissas and weight_exp, snncc's own fixed-point IF processes with the IR's 24-bit state and
    # per-neuron thresholds that are a 17-bit mantissa (Loihi 2 vth) times a power of two.
    "lava": TargetLimits("lava", (2, 8), (0, 7), ir.STATE_MAX, ir.STATE_MAX, False, None, (0, 0),
                         threshold_mantissa_bits=17),
    # lava-dl netx on Loihi 2 (snncc.profiles.LOIHI2_NETX, sources there): weights inside netx's
    # [-256, 254] (exponent <= 1), biases = 13-bit bias_mant (netx fixes bias_exp = 6), one vth.
    "loihi2-netx": TargetLimits(
        "loihi2-netx", (2, LOIHI2_NETX.weight_bits), LOIHI2_NETX.weight_exponent,
        LOIHI2_NETX.threshold_max, LOIHI2_NETX.state_max, LOIHI2_NETX.per_layer_threshold,
        13, (0, 0), readout_parts=16),
}
OPTIONS = {"bits": "int", "target": "str", "weight_percentile": "number"}


def quantize(graph: ir.Graph, context: PassContext) -> PassResult:
    """Quantize every synaptic layer to ``bits``-bit mantissas with a per-layer exponent."""
    options = context.options_for("quantize")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SnnccError(f"quantize: unknown option {unknown[0]!r}; available: {', '.join(OPTIONS)}")
    target_name = str(options.get("target", "generic"))
    if target_name not in TARGETS:
        raise SnnccError(f"quantize: unknown target {target_name!r}; choose from {', '.join(TARGETS)}")
    target = TARGETS[target_name]
    bits = int(options.get("bits", 8))
    if not target.bits[0] <= bits <= target.bits[1]:
        raise SnnccError(
            f"quantize: bits={bits} is outside {target.name}'s range {target.bits[0]}..{target.bits[1]}"
        )
    percentile = float(options.get("weight_percentile", 100.0))
    if not 0 < percentile <= 100:
        raise SnnccError(f"quantize: weight_percentile must be in (0, 100], got {percentile:g}")
    try:
        graph.check_integer()
    except SnnccError as error:
        raise SnnccError(f"quantize needs an integer graph (run fold first): {error}") from None

    graph = graph.copy()
    before = {n: graph.nodes[n].weight.copy() for n in graph.of_type(*ir.SYNAPTIC)}
    bounds = input_magnitude(graph, raw_input_bound(graph, context.calibration))
    shapes = graph.infer_shapes()
    # ±1 integer layers (binarize's, or a BSTDG network's) have no finer grid to move to
    binary = binarized_layers(graph) | {
        name for name in graph.of_type(*ir.SYNAPTIC)
        if ir.is_integer_array(graph.nodes[name].weight)
        and np.all(np.isin(graph.nodes[name].weight, (-1, 0, 1)))}
    report: dict[str, dict[str, Any]] = {}
    for layer in layers(graph, "quantize"):
        input_bound = bounds[graph.inputs_of(layer.name)[0]]
        if layer.name in binary:
            report[layer.name] = _keep_binary(layer, shapes[layer.target_name], target)
        else:
            current = step_currents(graph, layer.name, input_bound, context.calibration)
            rounding = rounding_slack(graph, layer.name, input_bound, context.calibration)
            report[layer.name] = _quantize_layer(layer, shapes[layer.target_name], current,
                                                 input_bound, bits, percentile, target,
                                                 context.timesteps, rounding)
    outputs = {layer.name for layer in ir.layers(graph) if layer.is_output}

    def hint(name: str) -> str:
        if not target.per_layer_threshold:
            return ""
        if name in outputs:
            return (f" (the readout accumulates T={context.timesteps} steps of its largest "
                    "current inside the state range: a smaller T leaves it more bits)")
        return " (direct-coded raw input: consider rate coding)" if (
            graph.input.coding == "direct") else ""

    warnings = [
        f"layer {name!r} keeps only {entry['effective_bits']} of {bits} mantissa bits: its "
        f"threshold, current or bias range does not fit {target.name}'s limits at full "
        f"precision{hint(name)}"
        for name, entry in report.items()
        if entry["weight_bits"] > 1 and entry["effective_bits"] < (bits + 1) // 2 + 1
    ]
    graph.quantization = ir.Quantization.from_dict(
        {"target": target.name, "bits": bits, "layers": report})
    changed = any(not np.array_equal(before[n], graph.nodes[n].weight) for n in before)
    graph.check_integer()
    return PassResult(graph, changed, {"layers": report, "warnings": warnings})


def _quantize_layer(layer: Any, shape: ir.Shape, current: np.ndarray, input_bound: float,
                    bits: int, percentile: float, target: TargetLimits,
                    timesteps: int, rounding: float) -> dict[str, Any]:
    node = layer.node
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = None if node.bias is None else np.asarray(node.bias, dtype=np.float64)
    mantissa_max = 2 ** (bits - 1) - 1
    view = (-1,) + (1,) * (weight.ndim - 1)
    fan_in = channel_view(node).shape[1]
    state_max = min(float(target.state_max), state_limit(layer.target))
    growth = float(np.max(current_growth(layer.target, layer.channels)))
    if layer.is_output:
        threshold = v_init = None
        peak_state = float(np.max(current)) * max(timesteps, 1)
        exponents = [0]
        slack = 0.5 * (fan_in * input_bound + 1) * max(timesteps, 1)
    else:
        threshold = neuron_values(layer.target.threshold, shape, "threshold")
        v_init = neuron_values(layer.target.v_init, shape, "v_init")
        if target.per_layer_threshold:
            per_channel = threshold.reshape(layer.channels, -1)
            if not np.all(per_channel == per_channel[:, :1]):
                raise SnnccError(f"quantize: layer {layer.target_name!r} has per-neuron thresholds; "
                                 f"{target.name} needs one threshold per layer")
            gain = per_channel[:, 0].max() / per_channel[:, 0]
            weight = weight * gain.reshape(view)
            current = current * gain
            bias = None if bias is None else bias * gain
            per_neuron = gain.reshape((-1,) + (1,) * (len(shape) - 1))
            threshold = threshold * per_neuron
            v_init = v_init * per_neuron
        extent = (threshold + np.abs(v_init)).reshape(layer.channels, -1).max(axis=1)
        peak_state = float(np.max(extent + current * growth))
        exponents = list(range(target.exponent[1], target.exponent[0] - 1, -1))
        slack = rounding * growth
    magnitudes = np.abs(weight[weight != 0])
    reference = float(np.percentile(magnitudes, percentile)) if magnitudes.size else 1.0
    # the largest scale each limit allows: state, threshold, bias range
    parts = target.readout_parts if layer.is_output else 1
    limit = max(state_max * parts - slack, 1.0) / max(peak_state, 1e-300)
    if threshold is not None:
        limit = min(limit, (target.threshold_max - 0.5) / float(np.max(threshold)))
    bias_peak = 0.0 if bias is None else float(np.max(np.abs(bias), initial=0.0))
    if bias_peak > 0:
        limit = min(limit, (_bias_max(target) - 0.5) / bias_peak)
        if parts > 1:  # the bias sits in one part and must leave it room
            limit = min(limit, state_max / 2 / (bias_peak * max(timesteps, 1)))
    chosen = None
    for exponent in exponents:
        scale = mantissa_max * 2.0**exponent / reference
        if scale <= limit:
            chosen = (exponent, scale)
            break
    if chosen is None:
        chosen = (target.exponent[0], limit)
    exponent, scale = chosen
    step = 2**exponent
    mantissa = np.clip(np.rint(weight * scale / step), -mantissa_max, mantissa_max)
    node.weight = mantissa.astype(np.int64) * step
    bias_exponent = 0
    if bias is not None:
        node.bias, bias_exponent = bias_grid(bias * scale, target)
    if threshold is not None:
        per_neuron_threshold = np.clip(np.rint(threshold * scale), 1, target.threshold_max)
        if target.threshold_mantissa_bits is not None:
            per_neuron_threshold = mantissa_grid(per_neuron_threshold,
                                                  target.threshold_mantissa_bits)
        layer.target.threshold = compact(per_neuron_threshold.astype(np.int64))
        layer.target.v_init = compact(np.clip(np.rint(v_init * scale), -state_max,
                                              state_max).astype(np.int64))
        round_decays(layer.target)
    elif isinstance(layer.target, ir.Readout) and layer.target.mode == "first_spike":
        layer.target.threshold = np.clip(np.rint(layer.target.threshold * scale), 1,
                                         target.state_max).astype(np.int64)
    largest = int(np.max(np.abs(mantissa))) if mantissa.size else 0
    return {
        "weight_exponent": exponent,
        "weight_bits": bits,
        "effective_bits": math.ceil(math.log2(largest + 1)) + 1,
        "bias_exponent": bias_exponent,
        "scale": scale,
        "saturated_weights": int(np.sum(np.abs(np.rint(weight * scale / step)) > mantissa_max)),
    }


def mantissa_grid(values: np.ndarray, mantissa_bits: int) -> np.ndarray:
    """Round positive integers to the nearest ``m * 2**k`` with an unsigned ``mantissa_bits`` m."""
    values = np.asarray(values, dtype=np.float64)
    limit = 2**mantissa_bits - 1
    shift = np.maximum(0, np.ceil(np.log2(np.maximum(values, 1) / limit))).astype(np.int64)
    step = 2.0**shift
    mantissa = np.rint(values / step)
    overflow = mantissa > limit  # rounding up past the mantissa: one more shift
    step = np.where(overflow, step * 2, step)
    return np.maximum(np.rint(values / step) * step, 1)


def _bias_max(target: TargetLimits) -> float:
    if target.bias_mantissa_bits is None:
        return float(target.state_max)
    return float((2 ** (target.bias_mantissa_bits - 1) - 1) * 2 ** target.bias_exponent[1])


def bias_grid(bias: np.ndarray, target: TargetLimits) -> tuple[np.ndarray, int]:
    """Round biases to the target's ``mantissa * 2**k`` grid (saturating); returns (bias, k)."""
    if target.bias_mantissa_bits is None:
        return np.clip(np.rint(bias), -target.state_max, target.state_max).astype(np.int64), 0
    mantissa_max = 2 ** (target.bias_mantissa_bits - 1) - 1
    peak = float(np.max(np.abs(bias))) if bias.size else 0.0
    exponent = target.bias_exponent[0]
    while exponent < target.bias_exponent[1] and peak > mantissa_max * 2**exponent:
        exponent += 1
    mantissa = np.clip(np.rint(bias / 2**exponent), -mantissa_max - 1, mantissa_max)
    return mantissa.astype(np.int64) * 2**exponent, exponent


def _keep_binary(layer: Any, shape: ir.Shape, target: TargetLimits) -> dict[str, Any]:
    if not layer.is_output:
        neurons: ir.IF = layer.target
        threshold = neuron_values(neurons.threshold, shape, "threshold")
        if target.per_layer_threshold and np.unique(threshold).size > 1:
            raise SnnccError(f"quantize: binarized layer {layer.name!r} has per-channel thresholds; "
                             f"{target.name} needs one threshold per layer")
        if threshold.max() > target.threshold_max:
            raise SnnccError(
                f"quantize: binarized layer {layer.name!r} threshold {int(threshold.max())} exceeds "
                f"{target.name}'s maximum {target.threshold_max}"
            )
    return {"weight_exponent": 0, "weight_bits": 1, "effective_bits": 1, "bias_exponent": 0,
            "scale": 1.0, "saturated_weights": 0}
