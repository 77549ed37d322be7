"""ANN -> rate-coded SNN conversion with threshold balancing (rate-norm style).

Rules (one application is enough; the pass is deterministic):

1. Every activation becomes non-leaky IF neurons with reset by subtraction. ``ReLU`` gets a
   threshold ``λ`` from its activations over the calibration samples, per layer (default) or per
   channel (``per_channel``): ``threshold_method="mse"`` (default) picks, among the activation
   percentiles 90 … 100, the ``λ`` minimising the mean squared error between the activation and what
   ``T`` steps of an IF neuron deliver, ``λ/T · clip(floor(a·T/λ + v_init_fraction), 0, T)`` — the
   clipping-versus-resolution trade-off at the deployment ``T``; ``"percentile"`` uses the
   ``percentile`` option (default 99.9, rate-norm's robust normalisation; ``"max"`` for the maximum).
   ``Clip(0, c)`` (a rate-norm activation ``clamp(x/θ, 0, 1)`` arrives from the frontend as
   ``Clip(0, 1)`` with 1/θ folded into the weights) gets ``λ = c`` directly. A ``λ`` of 0 (a dead
   unit) becomes the layer's largest ``λ`` (the unit never fires either way). Ding et al. 2021:
   ``clamp(x/λ, 0, 1)·λ`` is what an IF neuron with threshold ``λ`` and reset by subtraction
   computes as its firing rate times ``λ``.
2. A spike stands for the value ``λ``: every Dense/Conv2d reading an IF layer (through pooling,
   Flatten or Add) gets its input weights multiplied by ``λ`` (per input channel or element).
   Branches meeting in an ``Add`` must carry equal ``λ`` (rule 1 then uses their maximum).
3. Membranes start at ``v_init = v_init_fraction · λ`` (default 0.5: rounding instead of flooring
   the activation, which removes the systematic under-estimate at small T; Bu et al. 2022).
4. The graph output gets a non-spiking ``Readout(mode="potential")``: it accumulates the last
   layer's current, and the prediction is its argmax.
5. ``coding``: ``"direct"`` (default, the preprocessed input as a constant current) or ``"rate"``
   (Bernoulli spikes with probability ``clip(x, 0, 1)``). For rate coding a per-channel
   normalisation ``(r * scale - mean) / std`` would be clipped away by the encoder, so it moves
   into the first synaptic layer (``W / std``, ``b - W mean / std``, as the fold pass does for
   direct coding, with the same note for a padded first Conv2d) and the encoder sees
   ``r * scale`` (in [0, 1] for 8-bit images); the ANN function is unchanged.
6. Max pooling stays a ``MaxPool2d`` node, whose SNN semantics (see :mod:`snncc.ir`) pass a spike
   whenever the largest *cumulative* input count in the window grows: the output count is exactly
   the max of the input counts, and for the constant currents of direct coding it is the plain max.
   Unlike replacing max by average pooling it keeps the trained function; unlike gating by a
   neuron's instantaneous spikes it never over- or under-counts.
7. Optional ``bias_correction`` (default on when calibration samples are given): layer by layer, the
   SNN's mean output rate·λ over the calibration set at the deployment T is compared with the ANN's
   clipped activation per channel and the difference is added to that layer's bias (Li et al. 2021,
   "A free lunch from ANN"); ``bias_correction_rounds`` repeats it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc import ir
from snncc.errors import SnnccError, UnsupportedError
from snncc.passes import PassContext, PassResult

DEFAULTS = {
    "threshold_method": "mse",
    "percentile": 99.9,
    "per_channel": False,
    "v_init_fraction": 0.5,
    "coding": "direct",
    "calibration_samples": 2000,
    "bias_correction": True,
    "bias_correction_rounds": 1,
}
#: Kinds of the options (see :data:`snncc.passes.OPTION_KINDS`).
OPTIONS = {"threshold_method": "str", "percentile": "number|max", "per_channel": "bool",
           "v_init_fraction": "number", "coding": "str", "calibration_samples": "int",
           "bias_correction": "bool", "bias_correction_rounds": "int"}
_PASS_THROUGH = (ir.SumPool2d, ir.MaxPool2d, ir.Flatten, ir.Reshape, ir.Transpose)


def convert(graph: ir.Graph, context: PassContext) -> PassResult:
    """Convert a float ANN graph (ReLU/Clip activations) into a float SNN graph."""
    options = {**DEFAULTS, **context.options_for("convert")}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise SnnccError(f"convert: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if options["coding"] not in ("direct", "rate"):
        raise SnnccError(f"convert: coding must be direct or rate, got {options['coding']!r}")
    if options["threshold_method"] not in ("percentile", "mse"):
        raise SnnccError("convert: threshold_method must be percentile or mse, "
                         f"got {options['threshold_method']!r}")
    percentile = options["percentile"]
    if percentile != "max" and not (0 < float(percentile) <= 100):
        raise SnnccError(f"convert: percentile must be in (0, 100] or 'max', got {percentile}")
    if any(isinstance(n, (ir.IF, ir.Readout)) for n in graph.nodes.values()):
        raise SnnccError("convert: the graph is already a spiking network")
    graph = graph.copy()
    shapes = graph.validate()
    activations = graph.of_type(ir.ReLU, ir.Clip)
    for name in activations:
        node = graph.nodes[name]
        if isinstance(node, ir.Clip) and (node.low != 0.0 or node.high <= 0):
            raise UnsupportedError(
                f"convert: activation {name!r} Clip({node.low}, {node.high}) has no IF equivalent "
                "(only Clip(0, c) with c > 0 and ReLU)"
            )

    calibration = context.calibration
    if calibration is not None:
        calibration = calibration[: int(options["calibration_samples"])]
    thresholds = _thresholds(graph, activations, calibration, options, context.timesteps)
    _unify_add_branches(graph, thresholds)

    for name in activations:
        threshold = thresholds[name]
        graph.replace(name, ir.IF(
            threshold=threshold,
            v_init=threshold * float(options["v_init_fraction"]),
            reset="subtract",
        ))
    _scale_consumers(graph, thresholds, shapes)
    output = graph.output_name
    graph.add("readout", ir.Readout(mode="potential"), [output])
    graph.input.coding = options["coding"]

    info: dict = {"thresholds": {n: t.tolist() for n, t in thresholds.items()}}
    if graph.input.coding == "rate":
        _normalisation_into_first_layer(graph, info)
    if options["bias_correction"] and calibration is not None and len(calibration):  # rule 7
        info["bias_correction"] = bias_correct(
            graph, calibration, context.timesteps, int(options["bias_correction_rounds"])
        )
    graph.metadata["timesteps"] = context.timesteps
    return PassResult(graph, changed=True, info=info)


#: Calibration samples per ANN evaluation: :func:`snncc.engines.run_ann`'s batch, so the chunked
#: values are those one run over all samples gives (BLAS sums depend on the product's shape).
ANN_CHUNK = 512
#: The MSE search evaluates at most about this many activations per row (a strided subsample).
MSE_SAMPLE = 200_000
MSE_PERCENTILES = [90, 95, 97, 98, 99, 99.5, 99.7, 99.9, 99.95, 99.99, 100]


def _ann_chunks(graph: ir.Graph, calibration: np.ndarray, outputs: list[str]):
    """``(start, {name: values})`` of ``outputs`` in ANN mode, ANN_CHUNK samples at a time."""
    from snncc.engines import run_ann

    for start in range(0, len(calibration), ANN_CHUNK):
        chunk = calibration[start:start + ANN_CHUNK]
        yield start, run_ann(graph, chunk, batch_size=ANN_CHUNK, outputs=outputs)


def _rows(activation: np.ndarray, per_channel: bool) -> np.ndarray:
    """A layer's activations ``(N, ...)`` as the rows one threshold is chosen from."""
    if per_channel:
        return np.moveaxis(activation, 1, 0).reshape(activation.shape[1], -1)
    return activation.reshape(1, -1)
def _normalisation_into_first_layer(graph: ir.Graph, info: dict) -> None:
    """Rule 5: a rate-coded input's mean/std folded into the layer reading it."""
    from snncc.passes.fold import _fold_forward

    node = graph.input
    if not np.any(node.mean) and np.all(node.std == 1.0):
        return
    notes: dict = {"approximations": [], "folded": []}
    if not _fold_forward(graph, graph.input_name, 1.0 / node.std, -node.mean / node.std,
                         "input normalisation", True, notes):
        raise UnsupportedError(
            "convert: rate coding needs the input normalisation folded into the first layer, "
            "but the input does not feed one Dense/Conv2d (directly or through Flatten)")
    node.mean, node.std = np.zeros(1), np.ones(1)
    info["input_normalisation"] = notes


def _thresholds(graph: ir.Graph, activations: list[str], calibration: np.ndarray | None,
                options: dict, timesteps: int) -> dict[str, np.ndarray]:
    """Per activation: λ as a (1,) or (C,) array (rule 1).

    The calibration activations are streamed ANN_CHUNK samples at a time, as often as the exact
    percentiles need (:mod:`snncc.passes.streaming`: two or three passes); the numbers are those
    ``np.percentile`` gives over all activations at once, in a memory bounded by the chunk.
    """
    from snncc.passes.streaming import StreamingPercentiles, run_passes

    need_data = [n for n in activations if isinstance(graph.nodes[n], ir.ReLU)]
    method, percentile = options["threshold_method"], options["percentile"]
    shapes = graph.infer_shapes()
    stats: list[StreamingPercentiles] = []
    maxima: dict[str, np.ndarray] = {}
    samples: dict[str, list[np.ndarray]] = {}
    steps: dict[str, int] = {}
    if need_data:
        if calibration is None or len(calibration) == 0:
            raise SnnccError("convert: ReLU thresholds need calibration samples (give a dataset)")
        per_channel = bool(options["per_channel"])
        wanted = MSE_PERCENTILES if method == "mse" else [] if percentile == "max" \
            else [float(percentile)]
        for name in need_data:
            shape = shapes[name]
            rows = shape[0] if per_channel else 1
            count = len(calibration) * int(np.prod(shape)) // rows
            stats.append(StreamingPercentiles(rows, count, wanted or [100]))
            maxima[name] = np.full(rows, -np.inf)
            samples[name] = []
            steps[name] = count // MSE_SAMPLE + 1 if count > MSE_SAMPLE else 1
        first = [True]

        def feed(add) -> None:
            # after the first pass only the layers whose percentiles are still open
            names = [n for i, n in enumerate(need_data) if first[0] or not stats[i].done]
            for start, values in _ann_chunks(graph, calibration, names):
                for name in names:
                    rows = _rows(values.pop(name), per_channel)
                    if wanted:
                        add(need_data.index(name), rows)
                    if first[0]:
                        maxima[name] = np.maximum(maxima[name], rows.max(axis=1))
                        column = start * rows.shape[1] // (len(calibration[start:start + ANN_CHUNK]))
                        samples[name].append(rows[:, (-column) % steps[name]::steps[name]].copy())
                    del rows
                del values
            first[0] = False

        if wanted:
            run_passes(stats, feed)
        else:
            feed(lambda index, rows: None)
    thresholds = {}
    for name in activations:
        node = graph.nodes[name]
        if isinstance(node, ir.Clip):
            thresholds[name] = np.array([float(node.high)])
            continue
        index = need_data.index(name)
        if method == "mse":
            threshold = _mse_threshold(stats[index].result(), np.concatenate(samples[name], axis=1),
                                       timesteps, float(options["v_init_fraction"]))
        elif percentile == "max":
            threshold = maxima[name]
        else:
            threshold = stats[index].result()[:, 0]
        largest = threshold.max(initial=0.0)
        threshold = np.where(threshold > 0, threshold, largest if largest > 0 else 1.0)
        thresholds[name] = threshold.astype(np.float64)
    return thresholds


def _mse_threshold(candidates: np.ndarray, sample: np.ndarray, timesteps: int,
                   v_init_fraction: float) -> np.ndarray:
    """Per row, the λ among ``candidates`` (rows, percentiles) minimising E[(q_T(a; λ) - a)^2]
    over the activations ``sample`` (rows, m; a strided subsample of at most about MSE_SAMPLE).

    ``q_T`` is what T steps of an IF neuron with constant input ``a`` deliver: ``λ/T`` times the
    spike count ``clip(floor(a·T/λ + v_init_fraction), 0, T)`` — clipping above λ traded against
    the 1/T resolution below it.
    """
    best = candidates[:, -1].copy()
    best_error = np.full(len(candidates), np.inf)
    for column in range(candidates.shape[1]):
        lam = np.maximum(candidates[:, column:column + 1], 1e-12)
        counts = np.clip(np.floor(sample * timesteps / lam + v_init_fraction), 0, timesteps)
        error = ((counts * lam / timesteps - sample) ** 2).mean(axis=1)
        better = error < best_error
        best[better] = candidates[better, column]
        best_error[better] = error[better]
    return best


def _unify_add_branches(graph: ir.Graph, thresholds: dict[str, np.ndarray]) -> None:
    """Rule 2: IF layers whose spikes meet in an Add share one λ (their maximum)."""
    for name in graph.of_type(ir.Add):
        sources = [_spiking_source(graph, s, thresholds) for s in graph.inputs_of(name)]
        if any(s is None for s in sources):
            if any(s is not None for s in sources):
                raise UnsupportedError(
                    f"convert: add {name!r} mixes spikes with analog values; put an activation "
                    "on every residual branch"
                )
            continue
        common = np.max([thresholds[s].max() for s in sources])  # type: ignore[index]
        for source in sources:
            thresholds[source] = np.array([common])  # type: ignore[index]


def _spiking_source(graph: ir.Graph, name: str, thresholds: dict[str, np.ndarray]) -> str | None:
    """The activation whose spikes reach ``name`` through pass-through nodes, if any."""
    while name not in thresholds:
        node = graph.nodes[name]
        if not isinstance(node, _PASS_THROUGH):
            return None
        (name,) = graph.inputs_of(name)
    return name


def _scale_consumers(graph: ir.Graph, thresholds: dict[str, np.ndarray],
                     shapes: dict[str, ir.Shape]) -> None:
    """Rule 2: multiply each synaptic node's input weights by the λ its input spikes stand for."""
    for name in graph.of_type(*ir.SYNAPTIC):
        (source,) = graph.inputs_of(name)
        scale = _value_scale(graph, source, thresholds, shapes)
        if scale is None:
            continue
        node = graph.nodes[name]
        if isinstance(node, ir.Dense):
            node.weight = node.weight * scale.reshape(1, -1)
        else:
            per_channel = scale.reshape(shapes[source][0], -1)
            if not np.allclose(per_channel, per_channel[:, :1]):
                raise UnsupportedError(f"convert: conv {name!r} input scale varies within a channel")
            group_in = node.weight.shape[1]
            group_out = node.weight.shape[0] // node.groups
            channel_scale = per_channel[:, 0]
            weight = node.weight.copy()
            for group in range(node.groups):
                block = slice(group * group_out, (group + 1) * group_out)
                weight[block] *= channel_scale[group * group_in:(group + 1) * group_in].reshape(
                    1, -1, 1, 1)
            node.weight = weight


def _value_scale(graph: ir.Graph, name: str, thresholds: dict[str, np.ndarray],
                 shapes: dict[str, ir.Shape]) -> np.ndarray | None:
    """The value one unit of ``name``'s output stands for, per output element (None: analog)."""
    node = graph.nodes[name]
    if name in thresholds:
        return np.array(ir.broadcast_per_neuron(thresholds[name], shapes[name]), dtype=np.float64)
    if isinstance(node, (ir.SumPool2d, ir.MaxPool2d)):
        inner = _value_scale(graph, graph.inputs_of(name)[0], thresholds, shapes)
        if inner is None:
            return None
        channel = inner.reshape(inner.shape[0], -1)[:, 0]
        return np.broadcast_to(channel.reshape(-1, 1, 1), shapes[name]).copy()
    if isinstance(node, (ir.Flatten, ir.Reshape)):
        inner = _value_scale(graph, graph.inputs_of(name)[0], thresholds, shapes)
        return None if inner is None else inner.reshape(shapes[name])
    if isinstance(node, ir.Transpose):
        inner = _value_scale(graph, graph.inputs_of(name)[0], thresholds, shapes)
        return None if inner is None else inner.transpose(node.perm)
    if isinstance(node, ir.Add):
        scales = [_value_scale(graph, s, thresholds, shapes) for s in graph.inputs_of(name)]
        return None if scales[0] is None else scales[0]
    return None


def bias_correct(graph: ir.Graph, calibration: np.ndarray, timesteps: int,
                 rounds: int = 1) -> dict[str, list[float]]:
    """Rule 7, in place: shift each IF layer's bias so its mean rate·λ matches the ANN's.

    Layers are corrected in topological order, each after the ones before it (the error a layer
    sees includes its predecessors' corrected behaviour). Returns the mean |shift| per layer.

    Incremental and streamed: the calibration samples go through the SNN in the engine's
    batches (:class:`snncc.engines.step.Segments`, the batches :func:`~snncc.engines.simulate`
    uses). Once a layer is corrected, the values that later nodes read from it and from the nodes
    before it (its spikes, in a chain) are stored per batch in a temporary directory, bit-packed
    when they are spikes; the next layer starts from them instead of from the input. Each node is
    thus computed twice per round (before and after its layer's correction) instead of once per
    layer, and memory holds one batch. The ANN targets come ANN_CHUNK samples at a time from the
    graph as it was before any correction. The shift is the mean, over samples and positions, of
    ``(ann - count / T) * λ`` per channel (per neuron for Dense), summed in the order of one
    ``mean`` over all samples at once (:class:`_ChannelMean`), so the biases are the same.
    """
    import tempfile

    from snncc.engines.step import Segments

    layers = graph.of_type(ir.IF)
    target_graph = graph.copy()  # IF in ANN mode: the target rate, from the uncorrected graph
    shapes = graph.infer_shapes()
    shifts: dict[str, list[float]] = {}
    order = graph.topological_order()
    for _ in range(rounds):
        segments = Segments(graph, calibration, timesteps)
        with tempfile.TemporaryDirectory(prefix="snncc-bias-") as folder:
            store = _BatchStore(Path(folder), timesteps)
            done: set[str] = set()  # nodes whose values are final for this round
            for name in layers:
                synapse = _feeding_synapse(graph, name)
                if synapse is None:
                    continue
                nodes = _ancestors(graph, name) - done
                node: ir.IF = graph.nodes[name]  # type: ignore[assignment]
                threshold = ir.broadcast_per_neuron(node.threshold, shapes[name])
                mean = _ChannelMean(shapes[name])
                rates = _ANNRates(target_graph, calibration, name)
                for batch, (start, stop) in enumerate(segments.batches):
                    _, counts = segments.run(batch, nodes, store.load(batch))
                    error = (rates.take(start, stop) - counts[name] / timesteps) * threshold
                    mean.add(error)
                shift = mean.result()
                synapse_node = graph.nodes[synapse]
                bias = synapse_node.bias if synapse_node.bias is not None else np.zeros(
                    synapse_node.weight.shape[0])
                synapse_node.bias = bias + shift
                shifts.setdefault(name, []).append(float(np.abs(shift).mean()))
                segments.refresh()
                done |= nodes
                later = [n for n in order if n not in done]
                if not any(isinstance(graph.nodes[n], ir.IF) for n in later):
                    break
                frontier = tuple(n for n in order if n in done and any(
                    c not in done for c in graph.consumers(n)))
                for batch in range(len(segments.batches)):
                    kept, _ = segments.run(batch, nodes, store.load(batch), keep=frontier)
                    store.save(batch, kept)
    return shifts


class _ANNRates:
    """One layer's ANN-mode values, computed ANN_CHUNK samples at a time and served by range."""

    def __init__(self, graph: ir.Graph, calibration: np.ndarray, name: str) -> None:
        self.chunks = _ann_chunks(graph, calibration, [name])
        self.name = name
        self.start, self.values = 0, np.zeros((0,))

    def take(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (consecutive calls ask for consecutive ranges)."""
        parts = []
        while start < stop:
            if start >= self.start + len(self.values):
                self.start, chunk = next(self.chunks)
                self.values = chunk[self.name]
            end = min(stop, self.start + len(self.values))
            parts.append(self.values[start - self.start:end - self.start])
            start = end
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _ancestors(graph: ir.Graph, name: str) -> set[str]:
    """``name`` and every node it reads from, directly or not."""
    found, todo = {name}, [name]
    while todo:
        for source in graph.inputs_of(todo.pop()):
            if source not in found:
                found.add(source)
                todo.append(source)
    return found


class _ChannelMean:
    """``error.mean(axis=(0, 2, 3, ...))`` of samples fed in order, summed as numpy sums it.

    numpy reduces a C-contiguous ``(N, C, *spatial)`` array over ``(0, *spatial)`` by adding,
    sample after sample, each sample's pairwise sum over its spatial positions (and a ``(N, F)``
    array over axis 0 sample after sample); this accumulator does the same on each batch, so the
    result does not depend on how the samples were batched (tests compare with ``np.mean``).
    """

    def __init__(self, shape: ir.Shape) -> None:
        self.total = np.zeros(shape[0])
        self.count = 0
        self.positions = int(np.prod(shape[1:]))

    def add(self, error: np.ndarray) -> None:
        # C order first: on a channels-last array numpy would sum the positions in another order
        per_sample = np.ascontiguousarray(error).reshape(len(error), error.shape[1], -1)
        sums = np.add.reduce(per_sample, axis=2) if per_sample.shape[2] > 1 else per_sample[..., 0]
        for row in sums:
            self.total = self.total + row
        self.count += len(error)

    def result(self) -> np.ndarray:
        return self.total / (self.count * self.positions)


class _BatchStore:
    """Node values per batch, one ``.npz`` file each; 0/1 spike trains bit-packed along time."""

    def __init__(self, folder: Path, timesteps: int) -> None:
        self.folder = folder
        self.timesteps = timesteps

    def save(self, batch: int, values: dict[str, np.ndarray]) -> None:
        arrays: dict[str, np.ndarray] = {"names": np.array(list(values), dtype=str)}
        for index, value in enumerate(values.values()):
            packed = value.dtype == np.uint8 and value.ndim >= 2 and value.max(initial=0) <= 1
            arrays[f"value{index}"] = np.packbits(value, axis=0) if packed else value
            arrays[f"packed{index}"] = np.array(packed)
        staging = self.folder / f"{batch}.partial.npz"
        np.savez(staging, **arrays)
        staging.replace(self.folder / f"{batch}.npz")

    def load(self, batch: int) -> dict[str, np.ndarray]:
        path = self.folder / f"{batch}.npz"
        if not path.exists():
            return {}
        values = {}
        with np.load(path) as data:
            for index, name in enumerate(data["names"]):
                value = data[f"value{index}"]
                if bool(data[f"packed{index}"]):
                    value = np.unpackbits(value, axis=0, count=self.timesteps)
                values[str(name)] = value
        return values


def _feeding_synapse(graph: ir.Graph, name: str) -> str | None:
    """The Dense/Conv2d directly feeding IF node ``name`` (None if something else does)."""
    (source,) = graph.inputs_of(name)
    return source if isinstance(graph.nodes[source], ir.SYNAPTIC) else None
