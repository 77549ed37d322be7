"""prune: magnitude pruning to a target sparsity, optional structured pruning, dead-unit removal.

Rules (deterministic; the input graph is never mutated):

1. ``sparsity`` (default 0.5) is the fraction of synapses removed, a number in [0, 1) or a dict
   ``{layer: fraction}``; anything else (``>= 1``, ``< 0``, an unknown layer) is a one-line error.
   ``layers`` chooses the layers (``"all"``, the default, ``"hidden"`` or a list of names); layers
   the binarize pass made ±1 are skipped unless named (their magnitudes are all equal).
2. Unstructured (default): in each chosen layer the ``round(sparsity * size)`` weights of smallest
   score become exact zeros (absent synapses, see :class:`snncc.ir.Dense`); ties go to the lower
   flat index; weights that are already zero count as pruned (and go first). The score
   (``criterion``) is ``|W|`` (``"magnitude"``) or ``|W| * rms(input)`` over the calibration
   samples (``"activation"``, :func:`activation_scores`); the default ``"auto"`` is activation
   when calibration samples are given, else magnitude. ``scope="global"`` instead ranks all chosen
   layers' scores together, each divided by its layer's RMS score (magnitudes made comparable
   across layers whose integer units differ) and removes the overall ``sparsity`` fraction;
   ``scope="erk"`` gives each layer its own sparsity by the Erdős–Rényi-Kernel rule
   (:func:`erk_sparsity`: small layers such as the output stay denser) with the same total.
3. ``structured=True`` removes whole output units (Dense neurons, Conv2d channels) of hidden
   layers instead: the ``round(sparsity * units)`` units with the smallest ``sum|W[o]| /
   threshold[o]`` (their influence relative to their threshold). The Readout layer is never
   structurally pruned.
4. Dead units are removed (``remove_dead``, default true): an IF unit that can never fire
   (its inputs are never negative — spikes, pooled spikes or raw unnormalised samples — and
   ``bias + sum of its positive weights * input bound <= 0`` and ``v_init < threshold``) or whose
   outgoing weights are all zero. Removing a unit deletes its row, its threshold/``v_init``
   entries and the matching input columns/channels of the next Dense/Conv2d (through pooling and
   Flatten); units feeding anything else (Add, Reshape, grouped conv) are kept.
   ``rounds=k`` (default 1) reaches the target in ``k`` steps of geometrically shrinking density,
   re-scoring (and reconstructing, rule 5) after each.
5. Weight reconstruction (``reconstruct``: default on when calibration samples are given, an
   error when asked for without them): the surviving weights and the bias of every pruned layer
   are refitted by least squares to the unpruned graph's currents (:func:`reconstruct`); the
   sparsity pattern does not change. Then re-calibration (``recalibrate``, same default and
   error): every IF layer's threshold and bias are re-fitted to the unpruned
   graph's rates (:func:`snncc.passes.calibrate.recalibrate`), one slope per layer on a graph
   quantized for a per-layer-threshold target; there, biases and thresholds are put back on the
   target's grid and limits. Integer graphs stay integer.
6. ``info`` and ``graph.metadata["prune"]`` report connectivity (nonzero synapses over the
   unpruned graph's dense count) per layer and overall and the units removed per layer;
   ``info["kept_units"]`` maps each shrunk IF layer to the indices of the units it kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult
from snncc.passes.binarize import select_layers
from snncc.passes.calibrate import recalibrate
from snncc.passes.layers import (
    binarized_layers,
    channel_view,
    input_magnitude,
    layers,
    neuron_values,
    raw_input_bound,
    sole_synaptic_reader,
)

OPTIONS = {"sparsity": "sparsity", "layers": "layers", "scope": "str", "criterion": "str",
           "rounds": "int", "structured": "bool", "remove_dead": "bool", "reconstruct": "bool|auto",
           "recalibrate": "bool|auto"}
#: Ridge term of the weight reconstruction, relative to the mean diagonal of the Gram matrix.
RIDGE = 1e-4
#: Weight of calibration rows whose reference current is negative in the Dense reconstruction.
NEGATIVE_WEIGHT = 0.1


def prune(graph: ir.Graph, context: PassContext) -> PassResult:
    """Prune the chosen layers to the requested sparsity (see module doc)."""
    options = context.options_for("prune")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SnnccError(f"prune: unknown option {unknown[0]!r}; available: {', '.join(OPTIONS)}")
    reference = graph
    graph = graph.copy()
    all_layers = layers(graph, "prune")
    names = [layer.name for layer in all_layers]
    requested = options.get("sparsity", 0.5)
    choice = options.get("layers", "all")
    if isinstance(requested, dict):
        choice = list(requested)
    chosen = select_layers(names, choice, "prune")
    binary = binarized_layers(graph)
    if choice in ("all", "hidden"):
        chosen = [name for name in chosen if name not in binary]
    sparsity = {name: _check_sparsity(requested[name] if isinstance(requested, dict) else requested,
                                      name) for name in chosen}
    scope = options.get("scope", "layer")
    if scope not in ("layer", "global", "erk"):
        raise SnnccError(f"prune: scope must be 'layer', 'global' or 'erk', got {scope!r}")
    if scope == "erk":
        if isinstance(requested, dict):
            raise SnnccError("prune: scope 'erk' takes one overall sparsity, not a dict")
        sparsity = erk_sparsity(graph, chosen, _check_sparsity(requested, "all layers"))
    recalibrate_option = options.get("recalibrate", "auto")
    reconstruct_option = options.get("reconstruct", "auto")
    if recalibrate_option is True or reconstruct_option is True:
        context.require_calibration("prune")
    by_name = {layer.name: layer for layer in all_layers}

    criterion = options.get("criterion", "auto")
    if criterion not in ("auto", "magnitude", "activation"):
        raise SnnccError(f"prune: criterion must be magnitude or activation, got {criterion!r}")
    has_data = context.calibration is not None and len(context.calibration) > 0
    by_activation = criterion == "activation" or (criterion == "auto" and has_data)
    rounds = options.get("rounds", 1)
    if not isinstance(rounds, int) or rounds < 1:
        raise SnnccError(f"prune: rounds must be a positive integer, got {rounds!r}")
    do_reconstruct = reconstruct_option is True or (reconstruct_option == "auto" and has_data)
    calibration = context.require_calibration("prune") if by_activation or do_reconstruct \
        else None

    info: dict[str, Any] = {}
    kept_channels: dict[str, np.ndarray] = {}
    if options.get("structured", False):
        for name in chosen:
            if not by_name[name].is_output:
                _prune_units(graph, by_name[name], sparsity[name], kept_channels)
        rounds = 1
    for round_index in range(1, rounds + 1):
        # cumulative sparsity of this round: the density shrinks geometrically to the target
        step = {name: 1 - (1 - value) ** (round_index / rounds) for name, value in sparsity.items()}
        if by_activation:
            scores = activation_scores(graph, calibration, chosen)
        else:
            scores = {name: np.abs(graph.nodes[name].weight.astype(np.float64)) for name in chosen}
        if options.get("structured", False):
            pass
        elif scope == "global":
            _prune_global(graph, chosen, step, scores)
        else:
            for name in chosen:
                _prune_layer(by_name[name].node, step[name], scores[name])
        if do_reconstruct:
            info["reconstruction"] = reconstruct(graph, reference, calibration, chosen,
                                                 kept_channels)
    if options.get("remove_dead", True):
        _remove_dead_units(graph, context, kept_channels)
    if recalibrate_option is True or (recalibrate_option == "auto" and has_data):
        info["recalibration"] = _recalibrate(graph, reference, calibration, kept_channels)
    report = connectivity(graph, reference)
    report["removed_units"] = {
        name: int(reference.nodes[name].weight.shape[0] - graph.nodes[name].weight.shape[0])
        for name in graph.of_type(*ir.SYNAPTIC)
        if graph.nodes[name].weight.shape[0] != reference.nodes[name].weight.shape[0]
    }
    graph.metadata["prune"] = report
    info.update(report)
    info["kept_units"] = {name: kept.tolist() for name, kept in kept_channels.items()}
    changed = any(
        graph.nodes[n].weight.shape != reference.nodes[n].weight.shape
        or not np.array_equal(graph.nodes[n].weight, reference.nodes[n].weight)
        for n in graph.of_type(*ir.SYNAPTIC)
    )
    return PassResult(graph, changed, info)


def erk_sparsity(graph: ir.Graph, chosen: list[str], sparsity: float) -> dict[str, float]:
    """Per-layer sparsities with the overall ``sparsity``, densities ∝ (fan_in + fan_out) / size.

    The Erdős–Rényi-Kernel allocation (Evci et al. 2020, "RigL"): small layers (e.g. the output
    layer) stay denser, large ones are pruned harder; a layer whose density would exceed 1 stays
    dense and the others share the rest.
    """
    sizes, ratios = {}, {}
    for name in chosen:
        weight = graph.nodes[name].weight
        fan_out, fan_in = weight.shape[0], int(np.prod(weight.shape[1:]))
        sizes[name] = weight.size
        ratios[name] = (fan_in + fan_out + sum(weight.shape[2:])) / weight.size
    budget = (1 - sparsity) * sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [n for n in chosen if n not in dense]
        remaining = budget - sum(sizes[n] for n in dense)
        if not free:
            break
        epsilon = remaining / sum(ratios[n] * sizes[n] for n in free)
        over = [n for n in free if epsilon * ratios[n] > 1]
        if not over:
            break
        dense.update(over)
    densities = {n: 1.0 if n in dense else max(min(epsilon * ratios[n], 1.0), 0.0) for n in chosen}
    return {n: 1.0 - d for n, d in densities.items()}


def connectivity(graph: ir.Graph, reference: ir.Graph | None = None) -> dict[str, Any]:
    """Nonzero synapses over dense synapses, per synaptic layer and overall.

    With ``reference`` (the graph before pruning) the dense counts are the reference's, so units
    removed by structured or dead-unit pruning count as pruned synapses.
    """
    per_layer = {}
    nonzero = total = 0
    for name in graph.of_type(*ir.SYNAPTIC):
        weight = graph.nodes[name].weight
        dense = (reference or graph).nodes[name].weight.size
        per_layer[name] = float(np.count_nonzero(weight) / max(dense, 1))
        nonzero += int(np.count_nonzero(weight))
        total += int(dense)
    return {"connectivity": per_layer, "total_connectivity": nonzero / max(total, 1),
            "nonzero_synapses": nonzero}


def _check_sparsity(value: Any, name: str) -> float:
    try:
        sparsity = float(value)
    except (TypeError, ValueError):
        raise SnnccError(f"prune: sparsity for {name!r} must be a number, got {value!r}") from None
    if not 0 <= sparsity < 1:
        raise SnnccError(f"prune: sparsity for {name!r} must be in [0, 1), got {sparsity:g}")
    return sparsity


def _smallest(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` smallest scores; ties go to the lower index."""
    return np.argsort(scores, kind="stable")[:count]


def activation_scores(graph: ir.Graph, calibration: np.ndarray,
                      chosen: list[str]) -> dict[str, np.ndarray]:
    """``|W[o, j]| * rms(x_j)``: a weight's size times how strongly its input is driven.

    ``x_j`` is input ``j`` of the layer (the im2col column for convolutions) in the rate model
    over the calibration samples (Sun et al. 2023, "Wanda"); inputs that never fire (e.g. image
    borders that are always 0) make their synapses the first to go.
    """
    from snncc.engines import run_ann

    sources = {name: graph.inputs_of(name)[0] for name in chosen}
    inputs = run_ann(graph, calibration[:1000], outputs=sorted(set(sources.values())))
    scores = {}
    for name in chosen:
        node = graph.nodes[name]
        columns = _patches(inputs[sources[name]], node)
        rms = np.sqrt(np.mean(columns**2, axis=0))
        weight = channel_view(node).astype(np.float64)
        scores[name] = (np.abs(weight) * rms[None, :]).reshape(node.weight.shape)
    return scores


def _prune_layer(node: ir.Dense | ir.Conv2d, sparsity: float, scores: np.ndarray) -> None:
    flat = node.weight.reshape(-1).copy()
    order_scores = np.where(flat == 0, -1.0, scores.reshape(-1))  # absent synapses go first
    flat[_smallest(order_scores, int(round(sparsity * flat.size)))] = 0
    node.weight = flat.reshape(node.weight.shape)


def _prune_global(graph: ir.Graph, chosen: list[str], sparsity: dict[str, float],
                  layer_scores: dict[str, np.ndarray]) -> None:
    if len(set(sparsity.values())) > 1:
        raise SnnccError("prune: scope 'global' takes one sparsity for all layers")
    fraction = next(iter(sparsity.values()), 0.0)
    scores, owners = [], []
    for name in chosen:
        score = layer_scores[name].reshape(-1)
        rms = float(np.sqrt(np.mean(score**2))) or 1.0
        scores.append(score / rms)
        owners.append(np.full(score.size, len(owners)))
    if not scores:
        return
    all_scores, all_owners = np.concatenate(scores), np.concatenate(owners)
    offsets = np.cumsum([0] + [s.size for s in scores])
    removed = _smallest(all_scores, int(round(fraction * all_scores.size)))
    for index, name in enumerate(chosen):
        node = graph.nodes[name]
        mine = removed[all_owners[removed] == index] - offsets[index]
        flat = node.weight.reshape(-1).copy()
        flat[mine] = 0
        node.weight = flat.reshape(node.weight.shape)


def _prune_units(graph: ir.Graph, layer: ir.Layer, sparsity: float,
                 kept_channels: dict[str, np.ndarray]) -> None:
    shape = graph.infer_shapes()[layer.target_name]
    threshold = neuron_values(layer.target.threshold, shape, "threshold")
    per_channel = threshold.reshape(layer.channels, -1).mean(axis=1)
    influence = np.abs(channel_view(layer.node)).astype(np.float64).sum(axis=1) / per_channel
    drop = _smallest(influence, int(round(sparsity * layer.channels)))
    keep = np.ones(layer.channels, bool)
    keep[drop] = False
    _remove_units(graph, layer, keep, kept_channels)


def _reader_path(graph: ir.Graph, name: str) -> tuple[str, bool] | None:
    """The Dense/Conv2d reading IF ``name`` through pools/Flatten, and whether Flatten is on the way.

    None when the spikes go anywhere else (several readers, Add, Reshape, Transpose).
    """
    found = sole_synaptic_reader(graph, name, lambda node: isinstance(
        node, (ir.Flatten, ir.SumPool2d, ir.MaxPool2d)))
    if found is None:
        return None
    reader, flattened = found
    node = graph.nodes[reader]
    if isinstance(node, ir.Conv2d) and (flattened or node.groups != 1):
        return None
    return found


def _remove_units(graph: ir.Graph, layer: ir.Layer, keep: np.ndarray,
                  kept_channels: dict[str, np.ndarray]) -> bool:
    """Delete the units of ``layer`` where ``keep`` is false (rule 4); False if impossible."""
    if keep.all() or layer.is_output or not keep.any():
        return False
    path = _reader_path(graph, layer.target_name)
    if path is None:
        return False
    reader_name, _ = path
    node = layer.node
    node.weight = node.weight[keep]
    if node.bias is not None:
        node.bias = node.bias[keep]
    neurons: ir.IF = layer.target  # type: ignore[assignment]
    for field_name in ("threshold", "v_init"):
        values = getattr(neurons, field_name)
        if values.size > 1:
            setattr(neurons, field_name, values[keep])
    reader = graph.nodes[reader_name]
    if isinstance(reader, ir.Conv2d):
        reader.weight = reader.weight[:, keep]
    else:
        # Flatten after pooling: each channel owns a block of (pooled) positions
        reader.weight = reader.weight[:, np.repeat(keep, reader.weight.shape[1] // len(keep))]
    previous = kept_channels.get(layer.target_name, np.arange(len(keep)))
    kept_channels[layer.target_name] = previous[keep]
    return True


def _remove_dead_units(graph: ir.Graph, context: PassContext,
                       kept_channels: dict[str, np.ndarray]) -> None:
    input_max = raw_input_bound(graph, context.calibration)
    for layer in layers(graph, "prune"):
        if layer.is_output:
            continue
        bounds = input_magnitude(graph, input_max)
        input_bound = bounds[graph.inputs_of(layer.name)[0]]
        shape = graph.infer_shapes()[layer.target_name]
        weights = channel_view(layer.node).astype(np.float64)
        bias = (np.zeros(layer.channels) if layer.node.bias is None
                else np.asarray(layer.node.bias, dtype=np.float64))
        best_step = bias + np.clip(weights, 0, None).sum(axis=1) * input_bound
        threshold = neuron_values(layer.target.threshold, shape, "threshold")
        v_init = neuron_values(layer.target.v_init, shape, "v_init")
        starts_below = (v_init < threshold).reshape(layer.channels, -1).all(axis=1)
        silent = (best_step <= 0) & starts_below & _nonnegative_input(graph, layer.name)
        path = _reader_path(graph, layer.target_name)
        if path is None:
            continue
        reader = graph.nodes[path[0]]
        if isinstance(reader, ir.Conv2d):
            outgoing = np.abs(reader.weight).sum(axis=(0, 2, 3))
        else:
            outgoing = np.abs(reader.weight).sum(axis=0).reshape(layer.channels, -1).sum(1)
        unused = outgoing == 0
        _remove_units(graph, layer, ~(silent | unused), kept_channels)


def _nonnegative_input(graph: ir.Graph, name: str) -> bool:
    """Whether ``name`` only ever reads values >= 0 (spikes, counts, raw unnormalised samples)."""
    source = graph.inputs_of(name)[0]
    while isinstance(graph.nodes[source], ir.LAYOUT):
        source = graph.inputs_of(source)[0]
    node = graph.nodes[source]
    if isinstance(node, ir.Input):
        return node.coding != "direct" or node.is_identity
    return isinstance(node, (ir.IF, ir.MaxPool2d, ir.SumPool2d))


def _recalibrate(graph: ir.Graph, reference: ir.Graph, calibration: np.ndarray,
                 kept_channels: dict[str, np.ndarray]) -> dict[str, Any]:
    from snncc.passes.quantize import TARGETS, bias_grid, mantissa_grid

    quantized = graph.quantization
    target = TARGETS.get(quantized.target) if quantized else None
    per_channel = not (target and target.per_layer_threshold)
    neuron_layers = [layer.target_name for layer in layers(graph, "prune") if not layer.is_output]
    report = recalibrate(graph, reference, calibration, neuron_layers, per_channel, kept_channels)
    if target is not None:
        for layer in layers(graph, "prune"):
            if layer.is_output:
                continue
            neurons: ir.IF = layer.target  # type: ignore[assignment]
            neurons.threshold = np.clip(neurons.threshold, 1, target.threshold_max)
            if target.threshold_mantissa_bits is not None:
                neurons.threshold = mantissa_grid(neurons.threshold,
                                                   target.threshold_mantissa_bits).astype(np.int64)
            neurons.v_init = np.clip(neurons.v_init, -target.state_max, target.state_max)
            if layer.node.bias is not None:
                layer.node.bias, exponent = bias_grid(layer.node.bias.astype(np.float64), target)
                quantized.layers[layer.name].bias_exponent = exponent
    return report


def reconstruct(graph: ir.Graph, reference: ir.Graph, calibration: np.ndarray,
                chosen: list[str], kept_channels: dict[str, np.ndarray]) -> dict[str, float]:
    """Rule 5: refit each pruned layer's surviving weights and bias to the unpruned currents.

    Layer by layer in topological order, with the inputs the (already reconstructed) pruned graph
    produces in the rate model, each output unit solves the ridge least-squares problem
    ``min ||X[:, kept] w + b - z_ref||^2`` over the calibration samples (and positions, for
    convolutions) on its own nonzero support only, so the sparsity pattern is unchanged. Integer
    graphs are rounded back (to the ``m * 2**e`` grid and mantissa range of a quantized layer).
    Returns per layer the relative current error after the fit.
    """
    from snncc.engines import run_ann

    samples = calibration[:1000]
    quantized = {} if graph.quantization is None else graph.quantization.layers
    report = {}
    for name in graph.of_type(*ir.SYNAPTIC):
        if name not in chosen:
            continue
        node = graph.nodes[name]
        (source,) = graph.inputs_of(name)
        inputs = run_ann(graph, samples, outputs=[source])[source]
        target = run_ann(reference, samples, outputs=[name])[name]
        consumer = graph.consumers(name)[0]
        consumer_is_if = isinstance(graph.nodes[consumer], ir.IF)
        if consumer in kept_channels:
            target = target[:, kept_channels[consumer]]
        columns = _patches(inputs, node)  # (rows, fan_in)
        targets = np.moveaxis(target, 1, -1).reshape(-1, target.shape[1])  # (rows, channels)
        design = np.concatenate([columns, np.ones((len(columns), 1))], axis=1)
        gram = design.T @ design
        ridge = RIDGE * float(np.mean(np.diag(gram))) + 1e-12
        moments = design.T @ targets
        weights = channel_view(node).astype(np.float64)
        bias = (np.zeros(weights.shape[0]) if node.bias is None
                else np.asarray(node.bias, dtype=np.float64))
        new_weights, new_bias = weights.copy(), bias.copy()
        fan_in = weights.shape[1]
        weighted = isinstance(node, ir.Dense) and consumer_is_if
        for channel in range(weights.shape[0]):
            support = np.flatnonzero(weights[channel] != 0)
            index = np.append(support, fan_in)  # the bias column
            if weighted:
                # errors below zero only matter near the firing region: down-weight them
                row_weight = np.where(targets[:, channel] > 0, 1.0, NEGATIVE_WEIGHT)
                chosen_columns = design[:, index]
                system = chosen_columns.T @ (chosen_columns * row_weight[:, None])
                right = chosen_columns.T @ (targets[:, channel] * row_weight)
                system += ridge * np.eye(len(index))
                solution = np.linalg.solve(system, right)
            else:
                system = gram[np.ix_(index, index)] + ridge * np.eye(len(index))
                solution = np.linalg.solve(system, moments[index, channel])
            new_weights[channel, support] = solution[:-1]
            new_bias[channel] = solution[-1]
        if node.weight.dtype.kind in "iu":
            layer_format = quantized.get(name, ir.LayerQuantization(0, 0))
            step = 2**layer_format.weight_exponent
            mantissa = np.rint(new_weights / step)
            if layer_format.weight_bits > 1:
                limit = 2 ** (layer_format.weight_bits - 1) - 1
                mantissa = np.clip(mantissa, -limit, limit)
            mantissa[weights == 0] = 0
            new_weights = mantissa.astype(np.int64) * step
            new_bias = layer_format.round_bias(new_bias)
        node.weight = new_weights.reshape(node.weight.shape)
        node.bias = new_bias
        fitted = design @ np.concatenate([channel_view(node).astype(np.float64).T,
                                          np.asarray(node.bias, np.float64)[None]], axis=0)
        error = np.linalg.norm(fitted - targets) / max(np.linalg.norm(targets), 1e-300)
        report[name] = float(error)
    return report


def _patches(inputs: np.ndarray, node: ir.Dense | ir.Conv2d) -> np.ndarray:
    """The rows a synaptic node multiplies: ``(N, fan_in)`` or im2col ``(N*Ho*Wo, C*kH*kW)``."""
    if isinstance(node, ir.Dense):
        return inputs.reshape(len(inputs), -1).astype(np.float64)
    if node.groups != 1:
        raise SnnccError("prune: weight reconstruction does not support grouped convolutions")
    top, left, bottom, right = node.padding
    padded = np.pad(inputs.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    kernel_h, kernel_w = node.weight.shape[2:]
    span = (node.dilation[0] * (kernel_h - 1) + 1, node.dilation[1] * (kernel_w - 1) + 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))
    windows = windows[:, :, :: node.stride[0], :: node.stride[1], :: node.dilation[0],
                      :: node.dilation[1]]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(-1, np.prod(node.weight.shape[1:]))
