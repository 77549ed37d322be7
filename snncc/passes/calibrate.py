"""Threshold re-calibration shared by binarize and prune: match a reference network's rates.

After a pass perturbs weights, IF layer ``l`` receives ``z'`` instead of the reference ``z``. In the
rate model (:func:`snncc.engines.run_ann`: an IF node outputs ``clip(z / threshold, 0, 1)``)
the layer's normalised input is ``u = z / threshold``. Layer by layer in topological order (each
seeing the already re-calibrated layers before it), per channel, a least-squares line
``u_ref ≈ a u' + c`` is fitted over the calibration samples and positions where either side is
positive (only there does the clipped rate depend on it). With ``a > 0`` the layer then gets::

    threshold'' = threshold' / a      bias'' = bias' + c threshold''      v_init'' = v_init' / a

so that ``z'' / threshold'' = a u' + c ≈ u_ref``: the rates match the reference's again while the
layer's weights (±1, pruned, quantized) are untouched. Channels with ``a <= 0`` or fewer than
two usable points are left alone. ``per_channel=False`` fits one ``a`` for the whole layer (targets
with one threshold per layer) and still one ``c`` per channel. Integer graphs stay integer
(``np.rint``, thresholds at least 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncc import ir
from snncc.passes.layers import compact, neuron_values

#: Calibration samples used at most (the fit is per channel: a few hundred samples suffice).
RECALIBRATION_SAMPLES = 1000


def recalibrate(
    graph: ir.Graph,
    reference: ir.Graph,
    calibration: np.ndarray,
    neuron_layers: list[str],
    per_channel: bool = True,
    kept_channels: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, float]]:
    """Re-fit thresholds and biases of the IF nodes ``neuron_layers`` of ``graph`` in place.

    ``reference`` is the graph before the perturbing pass; its IF nodes have the same names.
    ``kept_channels`` maps an IF name to the reference channels it still has (structured pruning).
    Returns per layer the mean slope ``a`` and mean |offset| ``c`` applied.
    """
    from snncc.engines import run_ann

    samples = calibration[:RECALIBRATION_SAMPLES]
    kept_channels = kept_channels or {}
    sources = {name: reference.inputs_of(name)[0] for name in neuron_layers}
    reference_currents = run_ann(reference, samples, outputs=list(sources.values()))
    report: dict[str, dict[str, float]] = {}
    for name in graph.topological_order():
        if name not in neuron_layers:
            continue
        synapse_name = graph.inputs_of(name)[0]
        synapse = graph.nodes[synapse_name]
        neurons: ir.IF = graph.nodes[name]  # type: ignore[assignment]
        if not isinstance(synapse, ir.SYNAPTIC):
            continue
        current = run_ann(graph, samples, outputs=[synapse_name])[synapse_name]
        shape = current.shape[1:]
        target_current = reference_currents[sources[name]]
        reference_threshold = neuron_values(reference.nodes[name].threshold,
                                            target_current.shape[1:], "threshold")
        if name in kept_channels:
            target_current = target_current[:, kept_channels[name]]
            reference_threshold = reference_threshold[kept_channels[name]]
        threshold = neuron_values(neurons.threshold, shape, "threshold")
        v_init = neuron_values(neurons.v_init, shape, "v_init")
        u_new = _by_channel(current / threshold)
        u_ref = _by_channel(target_current / reference_threshold)
        slope, offset = _fit(u_ref, u_new, per_channel)
        integer = neurons.threshold.dtype.kind in "iu"
        per_neuron = (-1,) + (1,) * (len(shape) - 1)
        new_threshold = threshold / slope.reshape(per_neuron)
        new_v_init = v_init / slope.reshape(per_neuron)
        bias = (np.zeros(synapse.weight.shape[0]) if synapse.bias is None
                else np.asarray(synapse.bias, dtype=np.float64))
        channel_threshold = new_threshold.reshape(len(slope), -1).mean(axis=1)
        new_bias = bias + offset * channel_threshold
        if integer:
            new_threshold = np.maximum(np.rint(new_threshold), 1).astype(np.int64)
            new_v_init = np.rint(new_v_init).astype(np.int64)
            new_bias = np.rint(new_bias).astype(np.int64)
        neurons.threshold = compact(new_threshold)
        neurons.v_init = compact(new_v_init)
        synapse.bias = new_bias
        report[name] = {"slope": float(np.mean(slope)), "offset": float(np.mean(np.abs(offset)))}
    return report


def _by_channel(values: np.ndarray) -> np.ndarray:
    """``(N, C, ...)`` -> ``(C, N * positions)``."""
    return np.moveaxis(values, 1, 0).reshape(values.shape[1], -1)


def _fit(target: np.ndarray, source: np.ndarray, per_channel: bool) -> tuple[np.ndarray, Any]:
    """Per channel ``target ≈ a source + c`` over points where either is positive."""
    channels = target.shape[0]
    slope = np.ones(channels)
    offset = np.zeros(channels)
    usable = (target > 0) | (source > 0)
    for channel in range(channels):
        mask = usable[channel]
        if mask.sum() < 2 or np.ptp(source[channel][mask]) == 0:
            continue
        a, c = np.polyfit(source[channel][mask], target[channel][mask], 1)
        if a > 0:
            slope[channel], offset[channel] = a, c
    if not per_channel:
        mask = usable
        points = mask.sum()
        if points >= 2:
            # one slope for the layer: least squares with per-channel offsets
            centred_source = np.where(mask, source - _masked_mean(source, mask), 0.0)
            centred_target = np.where(mask, target - _masked_mean(target, mask), 0.0)
            denominator = float(np.sum(centred_source**2))
            a = float(np.sum(centred_source * centred_target)) / denominator if denominator else 1
            a = a if a > 0 else 1.0
            slope = np.full(channels, a)
            offset = np.where(mask.sum(axis=1) > 0,
                              _masked_mean(target, mask)[:, 0] - a * _masked_mean(source, mask)[:, 0],
                              0.0)
    return slope, offset


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    counts = np.maximum(mask.sum(axis=1, keepdims=True), 1)
    return np.where(mask, values, 0.0).sum(axis=1, keepdims=True) / counts
