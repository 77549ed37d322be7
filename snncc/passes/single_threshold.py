"""single_threshold: one threshold per IF layer, per-channel thresholds folded into the weights.

Hardware with one threshold register per neuron group (Loihi's LIF: one ``vth`` per process; netx:
one ``vThMant`` per layer) needs every IF layer to share one threshold. Rules (one application is
enough; deterministic; never mutates its input):

1. An IF layer whose threshold varies per channel (axis 0: a Dense output neuron or a Conv2d
   output map) gets ``max(threshold)``: channel ``o`` of the synaptic node feeding it is scaled by
   ``g[o] = max(threshold) / threshold[o]`` — weights, bias, and the layer's ``v_init`` alike.
   Every potential of the channel is then ``g[o]`` times what it was, so the neuron crosses
   ``g[o] threshold[o]`` exactly when it crossed ``threshold[o]``: spikes are unchanged in the ANN
   and float modes (up to float rounding). In an integer graph the scaled values are rounded half
   to even, which is no longer exact (``info["rounded"]`` names those layers): run this pass
   before ``fold``.
2. Thresholds that vary *within* a Conv2d channel cannot be equalised by scaling a shared kernel:
   one-line error naming the layer. An IF layer not fed directly by a Dense/Conv2d with varying
   thresholds is an error too.
3. Layers with one threshold already are left alone; ``info["scaled"]`` lists the layers changed
   with their smallest and largest ``g``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult
from snncc.passes.layers import compact, neuron_values, scale_channels

#: This pass has no options (:data:`snncc.passes.OPTION_KINDS`).
OPTIONS: dict[str, str] = {}


def single_threshold(graph: ir.Graph, context: PassContext) -> PassResult:
    """Give every IF layer one threshold (see the module docstring)."""
    if context.options_for("single_threshold"):
        raise SnnccError("single_threshold: takes no options")
    graph = graph.copy()
    shapes = graph.infer_shapes()
    scaled: dict[str, dict[str, float]] = {}
    rounded: list[str] = []
    integer = graph.is_integer()
    for name in graph.of_type(ir.IF):
        neurons: ir.IF = graph.nodes[name]  # type: ignore[assignment]
        if np.unique(neurons.threshold).size <= 1:
            continue
        (source,) = graph.inputs_of(name)
        synapse = graph.nodes[source]
        if not isinstance(synapse, ir.SYNAPTIC):
            raise SnnccError(f"single_threshold: IF {name!r} has several thresholds but is fed by "
                             f"{source!r} ({type(synapse).__name__}), not a Dense/Conv2d")
        shape = shapes[name]
        threshold = neuron_values(neurons.threshold, shape, "threshold")
        per_channel = threshold.reshape(shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            raise SnnccError(f"single_threshold: IF {name!r} has thresholds that vary within a "
                             "channel; a shared kernel cannot equalise them")
        gain = per_channel[:, 0].max() / per_channel[:, 0]
        scale_channels(synapse, gain)
        per_neuron = gain.reshape((-1,) + (1,) * (len(shape) - 1))
        v_init = neuron_values(neurons.v_init, shape, "v_init") * per_neuron
        neurons.threshold = np.array([per_channel[:, 0].max()], dtype=np.float64)
        neurons.v_init = compact(v_init)
        if integer:
            _round_layer(synapse, neurons)
            rounded.append(name)
        scaled[name] = {"gain_min": float(gain.min()), "gain_max": float(gain.max())}
    info: dict[str, Any] = {"scaled": scaled}
    if rounded:
        info["rounded"] = rounded
    return PassResult(graph, bool(scaled), info)


def _round_layer(synapse: ir.Dense | ir.Conv2d, neurons: ir.IF) -> None:
    """Back to integers (rule 1): round half to even, thresholds at least 1."""
    synapse.weight = np.rint(synapse.weight).astype(np.int64)
    if synapse.bias is not None:
        synapse.bias = np.rint(synapse.bias).astype(np.int64)
    neurons.threshold = np.maximum(np.rint(neurons.threshold), 1).astype(np.int64)
    neurons.v_init = np.clip(np.rint(neurons.v_init), ir.STATE_MIN, ir.STATE_MAX).astype(np.int64)
