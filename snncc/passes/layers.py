"""Helpers shared by the deployment passes: walking synaptic layers and rescaling their channels.

A *layer* is :class:`snncc.ir.Layer` (a synaptic node and the neurons it feeds); the deployment
passes need each to feed IF neurons (a hidden layer) or a Readout (the output layer) directly.
"Channel" means axis 0 of a node's output: a Dense output neuron or a Conv2d output map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncc import ir
from snncc.errors import SnnccError


def layers(graph: ir.Graph, pass_name: str) -> list[ir.Layer]:
    """:func:`snncc.ir.layers`, requiring every layer to feed neurons or the readout directly.

    Raises a one-line error naming the layer when a synaptic node feeds anything else (these passes
    work on converted SNNs: ``Dense|Conv2d -> IF`` or ``Dense -> Readout``).
    """
    found = ir.layers(graph)
    for layer in found:
        if not (layer.direct and isinstance(layer.target, ir.NEURONS + (ir.Readout,))):
            consumers = graph.consumers(layer.name)
            kinds = ", ".join(f"{c} ({type(graph.nodes[c]).__name__})" for c in consumers) or "nothing"
            raise SnnccError(
                f"{pass_name}: layer {layer.name!r} feeds {kinds}; expected IF neurons or a Readout "
                "(run convert first)"
            )
    return found


def layer_names(graph: ir.Graph) -> list[str]:
    """Names of the synaptic nodes in topological order."""
    return graph.of_type(*ir.SYNAPTIC)


def channel_view(node: ir.Dense | ir.Conv2d) -> np.ndarray:
    """The weight as ``(channels, fan_in)`` (a reshaped view for Conv2d)."""
    return node.weight.reshape(node.weight.shape[0], -1)


def expand_per_channel(values: np.ndarray, channels: int, what: str = "parameter") -> np.ndarray:
    """A per-layer ``(1,)`` or per-channel ``(C,)`` array as ``(C,)`` float64."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 1:
        return np.full(channels, values[0])
    if values.size == channels:
        return values
    raise SnnccError(f"{what} has {values.size} values for {channels} channels")


def neuron_values(values: np.ndarray, shape: ir.Shape, what: str) -> np.ndarray:
    """A threshold/v_init array (per layer, channel or neuron) expanded to a per-neuron float array."""
    return np.array(ir.broadcast_per_neuron(values, shape, what), dtype=np.float64)


def compact(values: np.ndarray) -> np.ndarray:
    """Shrink a per-neuron array ``(C, ...)`` to ``(C,)`` or ``(1,)`` when it is that uniform."""
    values = np.asarray(values)
    flat = values.reshape(values.shape[0], -1)
    if np.all(flat == flat[:, :1]):
        per_channel = flat[:, 0]
        if np.all(per_channel == per_channel[0]):
            return per_channel[:1].copy()
        return per_channel.copy()
    return values.copy()


def raw_input_bound(graph: ir.Graph, calibration: np.ndarray | None) -> float:
    """The largest ``|raw sample value|`` the passes plan for: the calibration samples' maximum
    when there are any, else the bound of the Input's declared ``raw_range``."""
    if calibration is not None and len(calibration):
        return float(np.max(np.abs(calibration)))
    return float(max(abs(v) for v in graph.input.raw_range))


def input_magnitude(graph: ir.Graph, input_max: float) -> dict[str, float]:
    """An upper bound of ``|value|`` per node output for the nodes before synaptic layers.

    Raw samples are bounded by ``input_max`` (direct coding) or 1 (spike coding); IF and MaxPool
    outputs of spikes are 0/1 per step; SumPool2d multiplies by ``kernel_h * kernel_w * |scale|``;
    layout nodes keep the bound; Add sums; Affine uses ``|scale| * m + |bias|``. Synaptic nodes get
    ``inf`` (their currents are bounded by the passes separately).
    """
    bound: dict[str, float] = {}
    for name in graph.topological_order():
        node = graph.nodes[name]
        args = [bound[s] for s in graph.inputs_of(name)]
        if isinstance(node, ir.Input):
            bound[name] = float(input_max) if node.coding == "direct" else 1.0
        elif isinstance(node, ir.NEURONS):
            bound[name] = 1.0
        elif isinstance(node, ir.SumPool2d):
            bound[name] = args[0] * node.kernel[0] * node.kernel[1] * abs(node.scale)
        elif isinstance(node, ir.Add):
            bound[name] = float(sum(args))
        elif isinstance(node, ir.Affine):
            bound[name] = float(np.max(np.abs(node.scale)) * args[0] + np.max(np.abs(node.bias)))
        elif isinstance(node, (ir.MaxPool2d, ir.ReLU, ir.Clip, ir.Readout) + ir.LAYOUT):
            bound[name] = args[0]
        else:
            bound[name] = float("inf")
    return bound


def step_current_bound(node: ir.Dense | ir.Conv2d, input_bound: float) -> np.ndarray:
    """Per channel, the largest ``|W x + b|`` one step can produce when ``|x| <= input_bound``."""
    bound = np.abs(channel_view(node)).astype(np.float64).sum(axis=1) * input_bound
    if node.bias is not None:
        bound = bound + np.abs(np.asarray(node.bias, dtype=np.float64))
    return bound


#: Margin over the largest first-layer current seen on calibration samples (see ``step_currents``).
CALIBRATED_CURRENT_MARGIN = 2.0
CALIBRATION_LIMIT = 1000


def step_currents(graph: ir.Graph, name: str, input_bound: float,
                  calibration: np.ndarray | None) -> np.ndarray:
    """Per channel, the one-step current bound the passes keep inside the membrane state.

    For a layer reading the raw input directly (direct coding; :func:`reads_raw_input`) when
    calibration samples are given:
    ``CALIBRATED_CURRENT_MARGIN`` times the largest ``|W x + b|`` over (up to 1,000 of) them, as raw
    images are far from the worst case ``input_max * sum|W|``. Otherwise that worst case
    (:func:`step_current_bound`); spikes are 0/1, so for later layers it is not far off.
    """
    node = graph.nodes[name]
    worst = step_current_bound(node, input_bound)
    if not reads_raw_input(graph, name) or calibration is None or not len(calibration):
        return worst
    from snncc.engines import run_ann

    current = run_ann(graph, calibration[:CALIBRATION_LIMIT], outputs=[name])[name]
    peak = np.abs(current).reshape(len(current), current.shape[1], -1).max(axis=(0, 2))
    return np.minimum(worst, CALIBRATED_CURRENT_MARGIN * peak)


def state_limit(target: ir.Node) -> float:
    """The largest ``|v|`` a neuron's integer state holds, in units of its input current:
    ``2**23 - 1`` for IF and the readout; ``(2**23 - 1) / 2**6`` for leaky neurons, whose state
    counts ``2**-6`` input units (Loihi's shift, :class:`snncc.ir.LIF`)."""
    if isinstance(target, ir.LEAKY):
        return ir.LEAKY_V_MAX / 2**ir.LEAKY_SHIFT
    return float(ir.STATE_MAX)


def current_growth(target: ir.Node, channels: int) -> np.ndarray:
    """Per channel, how many one-step currents a neuron's synaptic state can add up to: a
    CubaLIF current ``u`` settles at ``x * 4096 / du`` for a constant ``x`` (``inf`` for
    ``du = 0``); 1 for every other neuron."""
    if not isinstance(target, ir.CubaLIF):
        return np.ones(channels)
    du = np.asarray(target.du, dtype=np.float64).reshape(-1)
    du = du if du.size in (1, channels) else du.reshape(channels, -1).min(axis=1)
    with np.errstate(divide="ignore"):
        return np.broadcast_to(ir.DECAY_UNITY / du, (channels,)).copy()


def reads_raw_input(graph: ir.Graph, name: str) -> bool:
    """Does synaptic node ``name`` read direct-coded raw samples? Directly; or, when it feeds
    leaky neurons, also through Flatten/Reshape (IF layers keep the direct-only rule their
    figures were measured with)."""
    if graph.input.coding != "direct":
        return False
    (source,) = graph.inputs_of(name)
    leaky = any(isinstance(graph.nodes[c], ir.LEAKY) for c in graph.consumers(name))
    while leaky and isinstance(graph.nodes[source], (ir.Flatten, ir.Reshape)):
        (source,) = graph.inputs_of(source)
    return isinstance(graph.nodes[source], ir.Input)


def rounding_slack(graph: ir.Graph, name: str, input_bound: float,
                   calibration: np.ndarray | None) -> float:
    """How far rounding a hidden layer's weights, bias, threshold and ``v_init`` to integers can
    move one step's state: ``0.5 * (fan_in * input_bound + 3)`` in the worst case.

    For leaky neurons (whose state is 64 times smaller, :func:`state_limit`) in a layer reading
    direct-coded raw samples, with calibration samples: ``0.5 * 3`` (bias, threshold and
    ``v_init``). The weights' share is left to the calibrated current bound of
    :func:`step_currents`, ``CALIBRATED_CURRENT_MARGIN`` times the largest current seen, whose
    margin dwarfs it (rounding ``lam W`` moves ``W x`` by about ``0.3 * |x|_2``, against a current
    of ``lam |W x|``), and a leaky membrane saturates rather than wraps. The worst case would
    spend most of Loihi's 17-bit state on it (``0.5 * 784 * 255`` for an MNIST image against
    ``131071``), leaving 3 bits of weight (measured: Fashion-MNIST IF fixture 84.6% instead of
    88.1% on 3,000 test images).
    """
    node = graph.nodes[name]
    worst = 0.5 * (channel_view(node).shape[1] * input_bound + 3)
    leaky = any(isinstance(graph.nodes[c], ir.LEAKY) for c in graph.consumers(name))
    if not (leaky and reads_raw_input(graph, name) and calibration is not None
            and len(calibration)):
        return worst
    return 0.5 * 3


def round_decays(target: ir.Node) -> None:
    """Integer mode's decays: ``du``/``dv`` of leaky neurons rounded half to even to whole
    ``2**-12`` steps (0..4096), in place; the readout's ``dv`` likewise."""
    for key in ("du", "dv"):
        if isinstance(target, ir.CubaLIF) or (isinstance(target, ir.LIF) and key == "dv"):
            values = np.clip(np.rint(np.asarray(getattr(target, key), np.float64)), 0,
                             ir.DECAY_UNITY).astype(np.int64)
            setattr(target, key, compact(values))
    if isinstance(target, ir.Readout):
        target.dv = int(np.rint(target.dv))


def scale_channels(node: ir.Dense | ir.Conv2d, factors: np.ndarray) -> None:
    """Multiply each output channel's weights and bias by ``factors`` (in place, float64)."""
    shape = (-1,) + (1,) * (node.weight.ndim - 1)
    node.weight = np.asarray(node.weight, dtype=np.float64) * factors.reshape(shape)
    if node.bias is not None:
        node.bias = np.asarray(node.bias, dtype=np.float64) * factors


def binarized_layers(graph: ir.Graph) -> set[str]:
    """Layers the binarize pass made ±1 (kept binary by fold, quantize and prune)."""
    return set(graph.metadata.get("binarize", {}).get("layers", {}))


def sole_synaptic_reader(graph: ir.Graph, name: str,
                         passes_through: Callable[[ir.Node], bool]) -> tuple[str, bool] | None:
    """The Dense/Conv2d that alone reads ``name``, through nodes ``passes_through`` accepts.

    Returns ``(reader, flattened)`` where ``flattened`` says a Flatten (or 1-D Reshape) lies on the
    way; None when some node on the way has several readers or is not accepted.
    """
    current, flattened = name, False
    while True:
        consumers = graph.consumers(current)
        if len(consumers) != 1:
            return None
        node = graph.nodes[consumers[0]]
        if isinstance(node, ir.SYNAPTIC):
            return consumers[0], flattened
        if not passes_through(node):
            return None
        if isinstance(node, (ir.Flatten, ir.Reshape)):
            flattened = True
        current = consumers[0]
