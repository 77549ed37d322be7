"""The reference simulator engine: the golden model every other backend must match.

It lives in the core (not under ``backends/``) because passes calibrate with it; the ``sim`` target
(:mod:`snncc.backends.sim`) wraps it.

Implements the three execution modes defined in :mod:`snncc.ir` — ANN (:func:`run_ann`), SNN float
and SNN integer (:func:`simulate`) — vectorised over the batch and deterministic. It records the
decision after every step (the accuracy-vs-T curve in one run), spikes per sample per layer,
synaptic events per sample and, on request, every layer's spike raster.

Integer mode is exact: synaptic sums are computed with BLAS in float32 when every partial sum is
provably below 2**24 (float64 below 2**53, else an error) and converted to int64, then added to
int64 state with ``STATE_BITS`` saturation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from snncc import coding, ir
from snncc.errors import SnnccError

EXACT_FLOAT32 = 2**24
EXACT_FLOAT64 = 2**53


# ------------------------------------------------------------------------------------- results


@dataclass
class SimResult:
    """What a simulation run observed (``N`` samples, ``T`` steps)."""

    timesteps: int
    mode: str
    predictions: np.ndarray  # (T, N) decision after each step
    labels: np.ndarray | None
    spike_counts: dict[str, np.ndarray]  # spiking node -> (N,) spikes per sample
    synops: np.ndarray  # (N,) synaptic events per sample over all steps
    readout_state: np.ndarray  # (N, classes) final accumulators / potentials
    decision_time: np.ndarray | None = None  # (N,) first output spike step (T if none)
    rasters: dict[str, np.ndarray] = field(default_factory=dict)  # node -> (T, N, *shape) uint8
    neuron_counts: dict[str, np.ndarray] = field(default_factory=dict)  # node -> (N, *shape)

    @property
    def accuracy_curve(self) -> np.ndarray:
        """Accuracy after each step, shape ``(T,)``."""
        if self.labels is None:
            raise SnnccError("no labels were given, so there is no accuracy")
        return (self.predictions == self.labels[None]).mean(axis=1)

    @property
    def accuracy(self) -> float:
        return float(self.accuracy_curve[-1])

    @property
    def spikes_per_sample(self) -> float:
        """Mean total spikes per sample over all spiking layers (the input encoder excluded)."""
        counts = [c for name, c in self.spike_counts.items() if not name.startswith("input:")]
        return float(np.sum([c.mean() for c in counts])) if counts else 0.0

    @staticmethod
    def concatenate(parts: list[SimResult]) -> SimResult:
        """Join results of consecutive batches."""
        first = parts[0]

        def cat(values: list[np.ndarray], axis: int = 0) -> np.ndarray:
            return np.concatenate(values, axis=axis)

        return SimResult(
            timesteps=first.timesteps,
            mode=first.mode,
            predictions=cat([p.predictions for p in parts], axis=1),
            labels=None if first.labels is None else cat([p.labels for p in parts]),
            spike_counts={k: cat([p.spike_counts[k] for p in parts]) for k in first.spike_counts},
            synops=cat([p.synops for p in parts]),
            readout_state=cat([p.readout_state for p in parts]),
            decision_time=None if first.decision_time is None
            else cat([p.decision_time for p in parts]),
            rasters={k: cat([p.rasters[k] for p in parts], axis=1) for k in first.rasters},
            neuron_counts={k: cat([p.neuron_counts[k] for p in parts])
                           for k in first.neuron_counts},
        )


# ---------------------------------------------------------------------------------- array ops


def _pad(x: np.ndarray, padding: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    top, left, bottom, right = padding
    if not any(padding):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """View ``(N, C, H, W)`` as ``(N, C, Ho, Wo, kH, kW)`` windows."""
    span_h = dilation[0] * (kernel[0] - 1) + 1
    span_w = dilation[1] * (kernel[1] - 1) + 1
    view = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def conv2d(x: np.ndarray, node: ir.Conv2d, kernels: list[np.ndarray] | None = None) -> np.ndarray:
    """Grouped 2-D cross-correlation without bias (im2col + BLAS).

    ``kernels`` are the per-group ``(C_in/G * kH * kW, C_out/G)`` matrices (see
    :func:`conv_kernels`), prepared once when the same layer runs many times.
    """
    kernels = conv_kernels(node, node.weight.dtype) if kernels is None else kernels
    windows = _windows(_pad(x, node.padding), node.weight.shape[2:], node.stride, node.dilation)
    batch, _, out_h, out_w = windows.shape[:4]
    group_in = node.weight.shape[1]
    outputs = []
    for group, kernel in enumerate(kernels):
        patch = windows[:, group * group_in:(group + 1) * group_in]
        columns = patch.transpose(0, 2, 3, 1, 4, 5).reshape(batch * out_h * out_w, -1)
        outputs.append(columns @ kernel)
    result = np.concatenate(outputs, axis=1) if len(kernels) > 1 else outputs[0]
    return result.reshape(batch, out_h, out_w, -1).transpose(0, 3, 1, 2)


def conv_kernels(node: ir.Conv2d, dtype: type) -> list[np.ndarray]:
    group_out = node.weight.shape[0] // node.groups
    return [
        np.ascontiguousarray(
            node.weight[g * group_out:(g + 1) * group_out].reshape(group_out, -1).T, dtype=dtype
        )
        for g in range(node.groups)
    ]


def _pool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
          padding: tuple[int, int, int, int], combine: np.ufunc, pad_value: float) -> np.ndarray:
    """Window reduction as a loop over kernel offsets of strided views (fast, any geometry)."""
    padded = _pad(x, padding, pad_value)
    out_h = (padded.shape[2] - kernel[0]) // stride[0] + 1
    out_w = (padded.shape[3] - kernel[1]) // stride[1] + 1
    result = None
    for u in range(kernel[0]):
        for v in range(kernel[1]):
            piece = padded[:, :, u:u + stride[0] * (out_h - 1) + 1:stride[0],
                           v:v + stride[1] * (out_w - 1) + 1:stride[1]]
            if result is None:
                result = piece.copy()
            else:
                combine(result, piece, out=result)
    return result


def sum_pool(x: np.ndarray, node: ir.SumPool2d) -> np.ndarray:
    return _pool(x, node.kernel, node.stride, node.padding, np.add, 0)


def max_pool(x: np.ndarray, node: ir.MaxPool2d) -> np.ndarray:
    lowest = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    return _pool(x, node.kernel, node.stride, node.padding, np.maximum, lowest)


def _channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a per-channel (C,) or scalar (1,) array to broadcast over (N, C, ...)."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _stateless(node: ir.Node, inputs: list[np.ndarray]) -> np.ndarray:
    """One evaluation of a stateless node (ANN mode and SNN layout/pooling nodes)."""
    if isinstance(node, ir.SYNAPTIC):
        return _Synapse(node, np.float64)(inputs[0])
    if isinstance(node, ir.SumPool2d):
        out = sum_pool(inputs[0], node)
        return out if node.scale == 1.0 else out * node.scale
    if isinstance(node, ir.Affine):
        x = inputs[0]
        return x * _channel(node.scale, x.ndim) + _channel(node.bias, x.ndim)
    if isinstance(node, ir.Add):
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total
    if isinstance(node, ir.Flatten):
        return inputs[0].reshape(len(inputs[0]), -1)
    if isinstance(node, ir.Reshape):
        return inputs[0].reshape((len(inputs[0]),) + node.shape)
    if isinstance(node, ir.Transpose):
        return inputs[0].transpose((0,) + tuple(p + 1 for p in node.perm))
    if isinstance(node, ir.ReLU):
        return np.maximum(inputs[0], 0)
    if isinstance(node, ir.Clip):
        return np.clip(inputs[0], node.low, node.high)
    raise SnnccError(f"the simulator has no rule for {type(node).__name__}")


class _Synapse:
    """A Dense/Conv2d layer with its weights prepared once in one compute dtype."""

    def __init__(self, node: ir.Node, dtype: type) -> None:
        self.node = node
        self.dtype = dtype
        if isinstance(node, ir.Dense):
            self.matrix = np.ascontiguousarray(node.weight.T, dtype=dtype)
            self.bias = None if node.bias is None else node.bias.astype(dtype)
        else:
            self.kernels = conv_kernels(node, dtype)  # type: ignore[arg-type]
            self.bias = None if node.bias is None else node.bias.astype(dtype).reshape(1, -1, 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(self.dtype, copy=False)
        if isinstance(self.node, ir.Dense):
            out = x @ self.matrix
        else:
            out = conv2d(x, self.node, self.kernels)  # type: ignore[arg-type]
        if self.bias is not None:
            out += self.bias
        return out


# ------------------------------------------------------------------------------------- ANN mode


def _check_inputs(graph: ir.Graph, raw_inputs: np.ndarray) -> np.ndarray:
    raw_inputs = np.asarray(raw_inputs)
    shape = graph.input.shape
    if raw_inputs.shape[1:] != tuple(shape):
        raise SnnccError(
            f"inputs of shape {raw_inputs.shape[1:]} do not match the model input {tuple(shape)}"
        )
    return raw_inputs


def run_ann(graph: ir.Graph, raw_inputs: np.ndarray, batch_size: int = 512,
            outputs: list[str] | None = None) -> np.ndarray | dict[str, np.ndarray]:
    """Evaluate the graph once as an ANN; returns the output node's values ``(N, ...)`` (float64).

    ReLU/Clip are functions, IF nodes act as ``clip(x / threshold, 0, 1)``, MaxPool2d is max, Readout
    is the identity and the input coding is ignored (preprocessed values go in). With ``outputs``
    (node names) it returns those nodes' values instead, as a dict.
    """
    graph.validate()
    raw_inputs = _check_inputs(graph, raw_inputs)
    order = graph.topological_order()
    wanted = [graph.output_name] if outputs is None else list(outputs)
    for name in wanted:
        if name not in graph.nodes:
            raise SnnccError(f"no node named {name!r}")
    collected: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for start in range(0, len(raw_inputs), batch_size):
        values: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            inputs = [values[s] for s in graph.inputs_of(name)]
            if isinstance(node, ir.Input):
                values[name] = node.preprocess(raw_inputs[start:start + batch_size])
            elif isinstance(node, ir.IF):
                threshold = ir.broadcast_per_neuron(node.threshold, inputs[0].shape[1:])
                values[name] = np.clip(inputs[0] / threshold, 0.0, 1.0)
            elif isinstance(node, ir.MaxPool2d):
                values[name] = max_pool(inputs[0], node)
            elif isinstance(node, ir.Readout):
                values[name] = inputs[0]
            else:
                values[name] = _stateless(node, inputs)
        for name in wanted:
            collected[name].append(values[name])
    result = {name: np.concatenate(parts) for name, parts in collected.items()}
    return result[graph.output_name] if outputs is None else result


# ------------------------------------------------------------------------------------- SNN mode


class _Plan:
    """A graph prepared for stepping: per-node rules, static nodes, dtypes and synaptic fan-outs."""

    def __init__(self, graph: ir.Graph, mode: str, max_input: float) -> None:
        if mode not in ("float", "integer"):
            raise SnnccError(f"unknown simulation mode {mode!r}; choose float or integer")
        self.graph = graph
        self.mode = mode
        self.integer = mode == "integer"
        self.shapes = graph.validate(integer=self.integer)
        self.order = graph.topological_order()
        self.sources = {name: graph.inputs_of(name) for name in self.order}
        if not isinstance(graph.nodes[graph.output_name], ir.Readout):
            raise SnnccError("an SNN needs a Readout output node; run the convert pass first")
        input_node = graph.input
        self.static = {graph.input_name} if input_node.coding == "direct" else set()
        for name in self.order:
            node = graph.nodes[name]
            if not node.stateful and not isinstance(node, ir.Input) and all(
                s in self.static for s in self.sources[name]
            ):
                self.static.add(name)
        self.spiking = [n for n in self.order if isinstance(graph.nodes[n], (ir.IF, ir.MaxPool2d))]
        if input_node.coding != "direct":
            self.spiking.insert(0, graph.input_name)
        self.fanout = {n: _fanout(graph.nodes[n], self.shapes[self.sources[n][0]])
                       for n in self.order if isinstance(graph.nodes[n], ir.SYNAPTIC)}
        dtypes = self._exact_dtypes(max_input) if self.integer else {}
        self.synapses = {
            name: _Synapse(graph.nodes[name], dtypes.get(name, np.float32))
            for name in self.order if isinstance(graph.nodes[name], ir.SYNAPTIC)
        }

    def _exact_dtypes(self, max_input: float) -> dict[str, type]:
        """Pick float32/float64 per synaptic node so BLAS sums are exact integers."""
        bound = {self.graph.input_name: max_input}
        dtypes: dict[str, type] = {}
        for name in self.order:
            node = self.graph.nodes[name]
            inputs = [bound[s] for s in self.sources[name]]
            if isinstance(node, (ir.IF, ir.MaxPool2d)):
                bound[name] = 1.0
            elif isinstance(node, ir.Input):
                bound[name] = max_input if node.coding == "direct" else 1.0
            elif isinstance(node, ir.SYNAPTIC):
                weight = np.abs(node.weight.astype(np.float64))
                row_sum = weight.reshape(weight.shape[0], -1).sum(axis=1).max(initial=0.0)
                bias = 0.0 if node.bias is None else float(np.abs(node.bias).max(initial=0))
                bound[name] = row_sum * inputs[0] + bias
                if bound[name] < EXACT_FLOAT32:
                    dtypes[name] = np.float32
                elif bound[name] < EXACT_FLOAT64:
                    dtypes[name] = np.float64
                else:
                    raise SnnccError(
                        f"node {name!r}: synaptic sums up to {bound[name]:.3g} exceed exact 2**53"
                    )
            elif isinstance(node, ir.SumPool2d):
                bound[name] = inputs[0] * node.kernel[0] * node.kernel[1]
            elif isinstance(node, ir.Add):
                bound[name] = sum(inputs)
            else:
                bound[name] = inputs[0] if inputs else max_input
        return dtypes


def _fanout(node: ir.Node, input_shape: ir.Shape) -> np.ndarray:
    """Synapses (nonzero weights) leaving each input element of a Dense/Conv2d node."""
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


def _synaptic_events(active_counts: np.ndarray, fanout: np.ndarray) -> np.ndarray:
    """Per-sample synaptic events: each time an input element is nonzero, its fan-out fires."""
    return active_counts.reshape(len(active_counts), -1) @ fanout.reshape(-1)


def _saturate(v: np.ndarray) -> np.ndarray:
    return np.clip(v, ir.STATE_MIN, ir.STATE_MAX, out=v)


def _simulate_batch(plan: _Plan, raw: np.ndarray, sample_indices: np.ndarray, timesteps: int,
                    labels: np.ndarray | None, record: bool, seed: int,
                    count_neurons: bool) -> SimResult:
    graph, integer = plan.graph, plan.integer
    state_dtype = np.int64 if integer else np.float32
    batch = len(raw)
    input_node = graph.input

    # -- encoder -------------------------------------------------------------------------------
    if input_node.coding == "direct":
        encoded = (raw.astype(np.int64) if integer else input_node.preprocess(raw))
        step_input: Callable[[int], np.ndarray] = lambda t: encoded  # noqa: E731
    else:
        x = input_node.preprocess(raw)
        if input_node.coding == "rate":
            raster = coding.rate_spikes(x, coding.rate_uniforms(sample_indices, input_node.shape,
                                                                timesteps, seed))
        else:
            raster = coding.latency_spikes(x, timesteps, input_node.t_max)
        raster = raster.astype(state_dtype)
        step_input = lambda t: raster[t]  # noqa: E731

    # -- state ---------------------------------------------------------------------------------
    state: dict[str, dict[str, np.ndarray]] = {}
    for name in plan.order:
        node = graph.nodes[name]
        shape = (batch,) + plan.shapes[name]
        if isinstance(node, ir.IF):
            threshold = ir.broadcast_per_neuron(node.threshold, plan.shapes[name])
            v_init = ir.broadcast_per_neuron(node.v_init, plan.shapes[name])
            state[name] = {
                "v": np.broadcast_to(v_init, shape).astype(state_dtype),
                "threshold": threshold.astype(state_dtype),
                "fired": np.zeros(shape, bool),
            }
        elif isinstance(node, ir.MaxPool2d):
            in_shape = (batch,) + plan.shapes[plan.sources[name][0]]
            state[name] = {"total": np.zeros(in_shape, state_dtype),
                           "previous": np.zeros(shape, state_dtype)}
        elif isinstance(node, ir.Readout):
            threshold = ir.broadcast_per_neuron(node.threshold, plan.shapes[name])
            state[name] = {"v": np.zeros(shape, state_dtype),
                           "threshold": threshold.astype(state_dtype),
                           "winner": np.full(batch, -1, np.int64),
                           "time": np.full(batch, timesteps, np.int64)}

    predictions = np.empty((timesteps, batch), np.int64)
    counts = {name: np.zeros(batch, np.int64) for name in plan.spiking}
    synops = np.zeros(batch)
    rasters = {name: np.zeros((timesteps, batch) + plan.shapes[name], np.uint8)
               for name in plan.spiking} if record else {}
    neuron_counts = {name: np.zeros((batch,) + plan.shapes[name], np.int64)
                     for name in plan.spiking} if count_neurons else {}
    static_values: dict[str, np.ndarray] = {}
    # per synaptic node, how often each input element was nonzero; events = counts · fan-out.
    # A static layer (constant input) still delivers its input, so fires its synapses, every step.
    active_counts: dict[str, np.ndarray] = {}
    static_active: dict[str, np.ndarray] = {}

    for t in range(timesteps):
        values: dict[str, np.ndarray] = {}
        for name in plan.order:
            node = graph.nodes[name]
            if name in static_values:
                values[name] = static_values[name]
                continue
            inputs = [values[s] for s in plan.sources[name]]
            if isinstance(node, ir.Input):
                out = step_input(t)
            elif isinstance(node, ir.IF):
                out = _if_step(node, state[name], inputs[0], integer)
            elif isinstance(node, ir.MaxPool2d):
                node_state = state[name]
                node_state["total"] += inputs[0].astype(state_dtype, copy=False)
                current = max_pool(node_state["total"], node)
                out = current - node_state["previous"]
                node_state["previous"] = current
            elif isinstance(node, ir.Readout):
                _readout_step(node, state[name], inputs[0], integer, t)
                out = inputs[0]
            elif isinstance(node, ir.SYNAPTIC):
                out = plan.synapses[name](inputs[0])
                if integer:
                    out = (np.rint(out) if out.dtype == np.float64 else out).astype(np.int64)
            else:
                out = _stateless(node, inputs)
                if integer:
                    out = out.astype(np.int64, copy=False)
            if isinstance(node, ir.SYNAPTIC):
                active = inputs[0] != 0
                if name in plan.static:
                    static_active[name] = active
                elif name in active_counts:
                    active_counts[name] += active
                else:
                    active_counts[name] = active.astype(np.int32)
            if name in plan.static:
                static_values[name] = out
            values[name] = out
            if name in counts:
                counts[name] += out.reshape(batch, -1).sum(axis=1).astype(np.int64)
                if record:
                    rasters[name][t] = out
                if count_neurons:
                    neuron_counts[name] += out.astype(np.int64, copy=False)
        readout = state[graph.output_name]
        if graph.nodes[graph.output_name].mode == "first_spike":
            predictions[t] = np.where(readout["winner"] >= 0, readout["winner"],
                                      np.argmax(readout["v"], axis=1))
        else:
            predictions[t] = np.argmax(readout["v"], axis=1)

    for name, counts_in in active_counts.items():
        synops += _synaptic_events(counts_in, plan.fanout[name])
    for name, active in static_active.items():
        synops += timesteps * _synaptic_events(active, plan.fanout[name])
    readout_node = graph.nodes[graph.output_name]
    readout = state[graph.output_name]
    return SimResult(
        timesteps=timesteps,
        mode=plan.mode,
        predictions=predictions,
        labels=None if labels is None else np.asarray(labels),
        spike_counts={(f"input:{n}" if n == graph.input_name else n): c for n, c in counts.items()},
        synops=synops,
        readout_state=readout["v"].copy(),
        decision_time=readout["time"].copy() if readout_node.mode == "first_spike" else None,
        rasters={(f"input:{n}" if n == graph.input_name else n): r for n, r in rasters.items()},
        neuron_counts={(f"input:{n}" if n == graph.input_name else n): c
                       for n, c in neuron_counts.items()},
    )


def _if_step(node: ir.IF, state: dict[str, np.ndarray], current: np.ndarray,
             integer: bool) -> np.ndarray:
    v = state["v"]
    v += current
    if integer:
        _saturate(v)
    spikes = v >= state["threshold"]
    if node.fire_once:
        spikes &= ~state["fired"]
        state["fired"] |= spikes
    if node.reset == "subtract":
        np.subtract(v, state["threshold"], out=v, where=spikes)
    else:
        v[spikes] = 0
    return spikes.astype(v.dtype)


def _readout_step(node: ir.Readout, state: dict[str, np.ndarray], current: np.ndarray,
                  integer: bool, t: int) -> None:
    v = state["v"]
    v += current
    if integer:
        _saturate(v)
    if node.mode != "first_spike":
        return
    undecided = state["winner"] < 0
    crossing = (v >= state["threshold"]) & undecided[:, None]
    decided_now = crossing.any(axis=1)
    if decided_now.any():
        masked = np.where(crossing, v, np.iinfo(np.int64).min if integer else -np.inf)
        state["winner"][decided_now] = np.argmax(masked[decided_now], axis=1)
        state["time"][decided_now] = t


def simulate(
    graph: ir.Graph,
    raw_inputs: np.ndarray,
    timesteps: int,
    mode: str = "float",
    labels: np.ndarray | None = None,
    record: bool = False,
    batch_size: int = 256,
    seed: int | None = None,
    progress: Callable[[int], None] | None = None,
    count_neurons: bool = False,
) -> SimResult:
    """Run the SNN for ``timesteps`` steps on ``raw_inputs`` ``(N, *input_shape)``.

    ``mode="integer"`` requires an integer graph (see :meth:`snncc.ir.Graph.check_integer`) and
    integer raw inputs. ``seed`` overrides the Input node's seed for rate coding. ``progress`` is
    called with the number of samples finished after each batch. ``record`` keeps every spiking
    node's raster; ``count_neurons`` keeps per-neuron spike totals (``neuron_counts``).
    """
    if timesteps < 1:
        raise SnnccError(f"timesteps must be >= 1, got {timesteps}")
    raw_inputs = _check_inputs(graph, raw_inputs)
    if mode == "integer" and raw_inputs.dtype.kind not in "iub":
        if not np.array_equal(raw_inputs, np.rint(raw_inputs)):
            raise SnnccError("integer mode needs integer input samples")
        raw_inputs = raw_inputs.astype(np.int64)
    max_input = float(np.abs(raw_inputs).max(initial=0)) if len(raw_inputs) else 1.0
    plan = _Plan(graph, mode, max(max_input, 1.0))
    seed = graph.input.seed if seed is None else seed
    labels = None if labels is None else np.asarray(labels)
    parts = []
    for start in range(0, len(raw_inputs), batch_size):
        stop = min(start + batch_size, len(raw_inputs))
        parts.append(_simulate_batch(
            plan, raw_inputs[start:stop], np.arange(start, stop), timesteps,
            None if labels is None else labels[start:stop], record, seed, count_neurons,
        ))
        if progress is not None:
            progress(stop - start)
    if not parts:
        raise SnnccError("no input samples to simulate")
    return SimResult.concatenate(parts)
