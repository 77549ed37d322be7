"""binarize: ±1 weights with the per-channel scale α folded into the neurons (no retraining).

Rules (one application is enough; deterministic; the input graph is never mutated):

1. Which layers: option ``layers`` — ``"hidden"`` (default: every Dense/Conv2d except the first
   and the last, which usually keep higher precision), ``"all"``, or a list of synaptic node
   names. An unknown name is a one-line error listing the layers there are.
2. A chosen layer's weights become ``sign(W)`` in {-1, 0, +1}: a zero weight (an absent synapse)
   stays absent. Its scale ``α[o]`` = mean ``|W[o]|`` over the channel's nonzero weights (the
   least-squares optimal scale for fixed signs, XNOR-Net), one per output channel (option
   ``per_channel``, default true) or one for the layer; an all-zero channel gets ``α = 1``.
3. ``W ≈ α sign(W)``, so ``α`` is folded into what the layer feeds: IF neurons get
   ``threshold / α``, ``v_init / α`` and the bias becomes ``bias / α`` (exact: the spikes of
   ``α sign(W) x + b`` against ``θ`` equal those of ``sign(W) x + b / α`` against ``θ / α``). A
   layer feeding the Readout always uses one ``α`` for all classes (the argmax is invariant to
   one positive scale) and its bias becomes ``bias / α``.
4. Optional ``recalibrate`` (default false; needs ``context.calibration``): afterwards the
   thresholds and biases of the binarized IF layers and of every IF layer after the first of them
   are re-fitted so their rates match the graph before binarization
   (:func:`snncc.passes.calibrate.recalibrate`).
5. ``graph.metadata["binarize"]["layers"]`` lists the binarized layers with their mean α, so fold
   and quantize keep them ±1 and prune leaves them alone unless named.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult
from snncc.passes.calibrate import recalibrate
from snncc.passes.layers import channel_view, compact, layers, neuron_values

OPTIONS = {"layers": "layers", "per_channel": "bool", "recalibrate": "bool"}


def binarize(graph: ir.Graph, context: PassContext) -> PassResult:
    """Replace the chosen layers' weights by their signs; fold the scales into the neurons."""
    options = context.options_for("binarize")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SnnccError(f"binarize: unknown option {unknown[0]!r}; available: {', '.join(OPTIONS)}")
    reference = graph
    graph = graph.copy()
    all_layers = layers(graph, "binarize")
    chosen = select_layers([layer.name for layer in all_layers], options.get("layers", "hidden"),
                           "binarize")
    per_channel = bool(options.get("per_channel", True))
    record: dict[str, Any] = dict(graph.metadata.get("binarize", {}).get("layers", {}))
    for layer in all_layers:
        if layer.name not in chosen:
            continue
        node = layer.node
        weights = channel_view(node).astype(np.float64)
        magnitude = np.abs(weights)
        nonzero = (weights != 0).sum(axis=1)
        alpha = np.where(nonzero > 0, magnitude.sum(axis=1) / np.maximum(nonzero, 1), 1.0)
        if not per_channel or layer.is_output:
            alpha = np.full(layer.channels, magnitude.sum() / max(int((weights != 0).sum()), 1))
        node.weight = np.sign(np.asarray(node.weight, dtype=np.float64))
        if node.bias is not None:
            node.bias = np.asarray(node.bias, dtype=np.float64) / alpha
        if not layer.is_output:
            neurons: ir.IF = layer.target  # type: ignore[assignment]
            shape = graph.infer_shapes()[layer.target_name]
            per_neuron = alpha.reshape((-1,) + (1,) * (len(shape) - 1))
            threshold = neuron_values(neurons.threshold, shape, "threshold")
            v_init = neuron_values(neurons.v_init, shape, "v_init")
            neurons.threshold = compact(threshold / per_neuron)
            neurons.v_init = compact(v_init / per_neuron)
        record[layer.name] = {"alpha_mean": float(alpha.mean())}
    graph.metadata["binarize"] = {"layers": record}
    info: dict[str, Any] = {"layers": sorted(chosen)}
    if options.get("recalibrate", False):
        calibration = context.require_calibration("binarize")
        names = [layer.target_name for layer in all_layers if not layer.is_output]
        first = min((names.index(layer.target_name) for layer in all_layers
                     if layer.name in chosen and not layer.is_output), default=len(names))
        info["recalibration"] = recalibrate(graph, reference, calibration, names[first:])
    return PassResult(graph, bool(chosen), info)


def select_layers(available: list[str], choice: Any, pass_name: str) -> list[str]:
    """Resolve ``"hidden"``, ``"all"`` or a list of names against the synaptic layers."""
    if choice == "all":
        return list(available)
    if choice == "hidden":
        return list(available[1:-1])
    names = [choice] if isinstance(choice, str) else list(choice)
    for name in names:
        if name not in available:
            raise SnnccError(
                f"{pass_name}: no layer named {name!r}; layers are {', '.join(available)}"
            )
    return names

