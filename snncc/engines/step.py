"""The step engine: fast, layer-major evaluation of any feed-forward graph (ANN and SNN modes).

It computes exactly what :mod:`snncc.semantics` (the golden model) defines, in another order:
there is no delay between layers and the graph is acyclic, so each node is evaluated over all T
steps at once, in topological order (static nodes once). Synaptic layers see ``T x N`` rows per
BLAS call; a Dense layer feeding only IF neurons runs fused with them in a compiled event-driven
kernel when its input is sparse (cost ~ spikes x fan-out), and a Conv2d layer with sparse input
scatters each nonzero input into the outputs it reaches (fused likewise with an IF consumer);
IF recurrences and spiking max/sum pools (event-driven: only spikes are visited) run in compiled
kernels; the pools also count the steps each output is nonzero, which is what a synaptic layer
after them needs for its event count and path choice (no pass over the values to count them).
An IF node read only by a sum pool that tiles its spikes (2 x 2 average pooling) pools them in
its own kernel, step by step while they are in cache, and keeps no spikes unless asked to.
The event-driven conv adds every output's terms in (c, y, x) input order.
Integer values are int32 wherever their bound allows. ``tests/engines/test_golden.py`` checks
every spike, decision and readout state against :func:`snncc.semantics.run`.

Modes (:mod:`snncc.ir`): ANN (:func:`run_ann`), SNN float and SNN integer (:func:`simulate`),
vectorised over the batch and deterministic. It records the decision after every step (the
accuracy-vs-T curve in one run), spikes per sample per layer, synaptic events per sample and, on
request, every layer's spike raster.

Integer mode is exact: synaptic sums are computed with BLAS in float32 when every partial sum is
provably below 2**24 (float64 below 2**53, else an error) and converted to int64, or accumulated
in int64 by the event-driven kernel, then added to int64 state with ``STATE_BITS`` saturation.
Since no integer result depends on how the samples are batched, integer mode runs larger batches
(:func:`batch_rows`). Float mode keeps float32 state; its sums may round differently on the two
paths, and BLAS's blocking of a product depends on its rows, so float batches are fixed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numba
import numpy as np

from snncc import ir, semantics
from snncc.engines import threads
from snncc.engines.leaky import run_leaky
from snncc.engines.result import SimResult
from snncc.errors import SnnccError

EXACT_FLOAT32 = 2**24
EXACT_FLOAT64 = 2**53
# a batch is sized so that one node's values over the whole run stay below this (at 8 bytes each)
ACTIVATION_BYTES = 2**26
# integer mode's sums are exact, so no result depends on where its batches split the samples:
# its batches may be larger (less per-batch overhead, samples spread more evenly over threads)
INTEGER_ACTIVATION_BYTES = 2**28


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
    """A Dense/Conv2d layer with its weights prepared once in one compute dtype.

    A Dense layer also keeps ``events``, its ``(in, out)`` weights for the event-driven kernel, in
    the state dtype (int64 in integer mode: exact whatever the sums).
    """

    # im2col columns per call are kept under this many elements (bounds the memory of big batches)
    COLUMN_ELEMENTS = 2**24

    def __init__(self, node: ir.Node, dtype: type, integer: bool = False) -> None:
        self.node = node
        self.dtype = dtype
        if isinstance(node, ir.Dense):
            self.matrix = np.ascontiguousarray(node.weight.T, dtype=dtype)
            self.bias = None if node.bias is None else node.bias.astype(dtype)
            state = np.int64 if integer else np.float32
            self.events = np.ascontiguousarray(node.weight.T, dtype=state)
            self.events_bias = None if node.bias is None else node.bias.astype(state)
        else:
            self.kernels = conv_kernels(node, dtype)  # type: ignore[arg-type]
            self.bias = None if node.bias is None else node.bias.astype(dtype).reshape(1, -1, 1, 1)

    def conv_events(self, dtype: type) -> tuple:
        """The event-driven conv kernels' weights (summing in ``dtype``) and geometry arguments,
        prepared once per dtype (see :func:`_conv_events_kernel`)."""
        cache = self.__dict__.setdefault("_conv_by_dtype", {})
        if dtype not in cache:
            node: ir.Conv2d = self.node  # type: ignore[assignment]
            out_channels, group_in, kernel_h, kernel_w = node.weight.shape
            group_out = out_channels // node.groups
            runs = node.groups == 1 and node.stride == (1, 1) and node.dilation == (1, 1)
            # weight_t[c, u, v, j] = W[g * group_out + j, c - g * group_in, u, v]
            blocks = node.weight.reshape((node.groups, group_out) + node.weight.shape[1:])
            weight_t = blocks.transpose(0, 2, 3, 4, 1).reshape(
                (node.groups * group_in, kernel_h, kernel_w, group_out))
            if runs:
                weight_t = weight_t[:, :, ::-1]
            weights = np.ascontiguousarray(weight_t, dtype=dtype).reshape(-1)
            cache[dtype] = (weights, runs, kernel_h, kernel_w, group_in, group_out, *node.stride,
                            node.padding[0], node.padding[1], *node.dilation)
        return cache[dtype]

    def events_conv(self, x: np.ndarray, dtype: type) -> np.ndarray:
        """The Conv2d layer on sparse ``x`` (M, C, H, W), event-driven, summed in ``dtype``."""
        node: ir.Conv2d = self.node  # type: ignore[assignment]
        _, out_h, out_w = node.output_shape([x.shape[1:]])
        out = np.empty((len(x), node.weight.shape[0], out_h, out_w), dtype)
        bias = np.zeros(0, dtype) if node.bias is None else node.bias.astype(dtype)
        _conv_events_kernel(np.ascontiguousarray(x), *self.conv_events(dtype), bias, out)
        return out

    def events_in(self, dtype: type) -> np.ndarray:
        """``events`` converted once per dtype."""
        cache = self.__dict__.setdefault("_events_by_dtype", {})
        if dtype not in cache:
            cache[dtype] = np.ascontiguousarray(self.events, dtype=dtype)
        return cache[dtype]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(self.dtype, copy=False)
        if isinstance(self.node, ir.Dense):
            out = x @ self.matrix
        else:
            node: ir.Conv2d = self.node  # type: ignore[assignment]
            _, height, width = node.output_shape([x.shape[1:]])
            per_image = height * width * node.weight[0].size
            chunk = max(1, self.COLUMN_ELEMENTS // max(per_image, 1))
            if len(x) <= chunk:
                out = conv2d(x, node, self.kernels)
            else:
                out = np.concatenate([conv2d(x[start:start + chunk], node, self.kernels)
                                      for start in range(0, len(x), chunk)])
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

    ReLU/Clip are functions, IF (and leaky) nodes act as ``clip(x / threshold, 0, 1)``, MaxPool2d is max, Readout
    is the identity and the input coding is ignored (preprocessed values go in). With ``outputs``
    (node names) it returns those nodes' values instead, as a dict. BLAS runs on one thread
    here: a multi-threaded BLAS splits the sums themselves, so values would change (in the last
    bits) with the thread count; with one thread they do not.
    """
    with threads.single_threaded_blas():
        return _run_ann(graph, raw_inputs, batch_size, outputs)


def _run_ann(graph: ir.Graph, raw_inputs: np.ndarray, batch_size: int,
             outputs: list[str] | None) -> np.ndarray | dict[str, np.ndarray]:
    graph.validate()
    raw_inputs = _check_inputs(graph, raw_inputs)
    order = graph.topological_order()
    wanted = [graph.output_name] if outputs is None else list(outputs)
    for name in wanted:
        if name not in graph.nodes:
            raise SnnccError(f"no node named {name!r}")
    # only what the wanted nodes read, each value dropped once its last reader has run: the memory
    # of a batch is a few layers' values, not the whole network's
    needed, todo = set(wanted), list(wanted)
    while todo:
        for source in graph.inputs_of(todo.pop()):
            if source not in needed:
                needed.add(source)
                todo.append(source)
    order = [name for name in order if name in needed]
    readers = {name: sum(c in needed for c in graph.consumers(name)) for name in order}
    collected: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    for start in range(0, len(raw_inputs), batch_size):
        values: dict[str, np.ndarray] = {}
        unread = dict(readers)
        for name in order:
            node = graph.nodes[name]
            inputs = [values[s] for s in graph.inputs_of(name)]
            if isinstance(node, ir.Input):
                values[name] = node.preprocess(raw_inputs[start:start + batch_size])
            elif isinstance(node, ir.NEURONS):
                threshold = ir.broadcast_per_neuron(node.threshold, inputs[0].shape[1:])
                values[name] = np.clip(inputs[0] / threshold, 0.0, 1.0)
            elif isinstance(node, ir.MaxPool2d):
                values[name] = max_pool(inputs[0], node)
            elif isinstance(node, ir.Readout):
                values[name] = inputs[0]
            else:
                values[name] = _stateless(node, inputs)
            del inputs
            for source in graph.inputs_of(name):
                unread[source] -= 1
                if unread[source] == 0 and source not in collected:
                    del values[source]
        for name in wanted:
            collected[name].append(values[name])
    result = {name: parts[0] if len(parts) == 1 else np.concatenate(parts)
              for name, parts in collected.items()}
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
        self.spiking = [n for n in self.order
                        if isinstance(graph.nodes[n], ir.NEURONS + (ir.MaxPool2d,))]
        if input_node.coding != "direct":
            self.spiking.insert(0, graph.input_name)
        # Dense/Conv2d layers read by nothing but one IF node: fused with it when their input
        # is sparse
        self.fusable = {n for n in self.order if isinstance(graph.nodes[n], ir.SYNAPTIC)
                        and n not in self.static and n != graph.output_name
                        and [type(graph.nodes[c]) for c in graph.consumers(n)] == [ir.IF]}
        # IF nodes read by nothing but a sum pool that tiles their spikes: pooled in the IF kernel
        self.pooled: dict[str, str] = {}
        for name in self.order:
            readers = graph.consumers(name)
            if (isinstance(graph.nodes[name], ir.IF) and len(readers) == 1
                    and _tiles(graph.nodes[readers[0]], self.integer)):
                self.pooled[name] = readers[0]
        self.fanout = {n: semantics.fanout(graph.nodes[n], self.shapes[self.sources[n][0]])
                       for n in self.order if isinstance(graph.nodes[n], ir.SYNAPTIC)}
        self.bounds: dict[str, float] = {}
        dtypes = self._exact_dtypes(max_input) if self.integer else {}
        # integer values of synaptic/pooling/Add nodes: int32 wherever their bound allows it
        self.value_dtypes = {name: np.float32 if not self.integer
                             else np.int32 if self.bounds.get(name, math.inf) < 2**31
                             else np.int64 for name in self.order}
        self.state_dtypes = {name: self._state_dtype(name) for name in self.order
                             if isinstance(graph.nodes[name], ir.IF)}
        self.synapses = {
            name: _Synapse(graph.nodes[name], dtypes.get(name, np.float32), self.integer)
            for name in self.order if isinstance(graph.nodes[name], ir.SYNAPTIC)
        }

    def _exact_dtypes(self, max_input: float) -> dict[str, type]:
        """Pick float32/float64 per synaptic node so BLAS sums are exact integers."""
        bound = {self.graph.input_name: max_input}
        dtypes: dict[str, type] = {}
        for name in self.order:
            node = self.graph.nodes[name]
            inputs = [bound[s] for s in self.sources[name]]
            if isinstance(node, ir.NEURONS + (ir.MaxPool2d,)):
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
        self.bounds = bound
        return dtypes

    def _state_dtype(self, name: str) -> type:
        """IF state dtype: int32 in integer mode when no sum can overflow it, else int64."""
        if not self.integer:
            return np.float32
        node: ir.IF = self.graph.nodes[name]  # type: ignore[assignment]
        largest = max(self.bounds[self.sources[name][0]], float(np.abs(node.threshold).max()),
                      float(np.abs(node.v_init).max()))
        return np.int32 if largest < 2**30 else np.int64


# ------------------------------------------------------------------------------------ kernels


@numba.njit(cache=True, nogil=True)
def _if_update(v, armed, current, threshold, low, high, subtract, fire_once, saturate, out,
               totals):  # pragma: no cover - compiled
    """One step of IF neurons (the rule of :class:`snncc.ir.IF`), branch-free so it vectorises.

    ``v += I`` (saturated to ``[low, high]`` when ``saturate``); spike where ``v >= theta`` and
    ``armed`` (uint8: 1, or 0 once a fire-once neuron has spiked); reset by subtraction or to
    zero. Spikes go to ``out`` (uint8) and are counted in ``totals``. The reset multiplies by the
    spike as a value of the state dtype (no float64 or int64 round trip), so float state runs on
    vector registers (2x faster than with mixed types).
    """
    one = v.dtype.type(1)
    for f in range(v.size):
        value = v[f] + current[f]
        if saturate:
            value = min(max(value, low), high)
        spike = np.uint8(value >= threshold[f])
        if fire_once:
            spike &= armed[f]
            armed[f] -= spike
        out[f] = spike
        totals[f] += spike
        crossed = v.dtype.type(spike)
        if subtract:
            v[f] = value - crossed * threshold[f]
        else:
            v[f] = value * (one - crossed)


@numba.njit(cache=True, nogil=True, parallel=True)
def _if_kernel(current, v_init, threshold, bounds, subtract, fire_once, saturate, spikes,
               totals, pool):  # pragma: no cover - compiled
    """IF neurons over all steps, sample by sample (samples spread over the threads).

    ``current`` (Tc, N, F) with ``Tc`` = T, or 1 for the same current every step; ``v_init``,
    ``threshold`` (F,) and ``bounds`` (2,) in the state dtype; ``spikes`` (T, N, F) uint8 and
    ``totals`` (N, F) int32 zeros receive the spikes and their counts (int32: a narrower
    add per neuron and step than int64's, 1.01-1.06x on the shared models). ``pool``: the sum pool
    that reads nothing but these spikes, pooled step by step (:func:`_pool_step`; empty arrays
    for none); with one, ``spikes`` may be ``(T, 0, F)``: the spikes are not kept.
    """
    steps, (samples, neurons) = spikes.shape[0], totals.shape
    keep = spikes.shape[1] > 0
    repeat = current.shape[0] == 1
    for n in numba.prange(samples):
        v = v_init.copy()
        armed = np.ones(neurons, np.uint8)
        scratch = np.empty(0 if keep else neurons, np.uint8)
        for t in range(steps):
            out = spikes[t, n] if keep else scratch
            _if_update(v, armed, current[0 if repeat else t, n], threshold, bounds[0], bounds[1],
                       subtract, fire_once, saturate, out, totals[n])
            _pool_step(out, pool, t, n)


@numba.njit(cache=True, nogil=True)
def _pool_step(spikes, pool, t, n):  # pragma: no cover - compiled
    """Sum pooling of sample ``n``'s spikes at step ``t`` (C * H * W,) by a pool that tiles them
    (stride = kernel, no padding), inside an IF kernel while the spikes are in cache.

    ``pool = (kernel_h, kernel_w, width, scale, out, active)``, nothing for an empty ``out``:
    window ``(i, j)`` sums rows ``i kH .. i kH + kH - 1`` and columns ``j kW .. j kW + kW - 1``,
    a whole number, times ``scale`` (in ``out``'s dtype) when that is not 1, into ``out[t, n]``
    (T, N, C, Ho * Wo); ``active[n]`` (N, C, Ho * Wo) int32 counts the steps each sum is
    nonzero: the values and counts :func:`_sum_pool_kernel` gives for the same spikes. A 2 x 2
    kernel (the common one) has its four loads written out (the loops of others ran 2x slower).
    """
    kernel_h, kernel_w, width, scale, out, active = pool
    if out.size == 0:
        return
    target, steps_active = out[t, n], active[n]
    channels, windows = target.shape
    out_w = width // kernel_w
    plane_size = spikes.size // channels
    square = kernel_h == 2 and kernel_w == 2
    for c in range(channels):
        plane = spikes[c * plane_size:(c + 1) * plane_size]
        sums, steps_nonzero = target[c], steps_active[c]
        for i in range(windows // out_w):
            for j in range(out_w):
                corner = i * kernel_h * width + j * kernel_w
                if square:
                    total = (np.int32(plane[corner]) + plane[corner + 1] + plane[corner + width]
                             + plane[corner + width + 1])
                else:
                    total = np.int32(0)
                    for u in range(kernel_h):
                        for v in range(kernel_w):
                            total += plane[corner + u * width + v]
                value = out.dtype.type(total)
                if scale != 1:
                    value = value * scale
                window = i * out_w + j
                sums[window] = value
                steps_nonzero[window] += total != 0


@numba.njit(cache=True, nogil=True, parallel=True)
def _dense_if_kernel(x, weight_t, bias, v_init, threshold, bounds, subtract, fire_once, saturate,
                     spikes, totals):  # pragma: no cover - compiled
    """A Dense layer feeding IF neurons, event-driven, sample by sample.

    Per step the current ``bias + sum_i x[t, n, i] weight_t[i]`` is accumulated over the nonzero
    inputs only (cost ~ input spikes x fan-out) in the state dtype, then :func:`_if_update` runs.
    ``x`` (T, N, D); ``weight_t`` (D, F); ``bias`` (F,); the rest as for :func:`_if_kernel`.
    """
    steps, samples, inputs = x.shape
    neurons = weight_t.shape[1]
    for n in numba.prange(samples):
        v = v_init.copy()
        armed = np.ones(neurons, np.uint8)
        current = np.empty(neurons, v.dtype)
        for t in range(steps):
            current[:] = bias
            row = x[t, n]
            for i in range(inputs):
                value = row[i]
                if value == 0:
                    continue
                column = weight_t[i]
                if value == 1:
                    for j in range(neurons):
                        current[j] += column[j]
                else:
                    for j in range(neurons):
                        current[j] += value * column[j]
            _if_update(v, armed, current, threshold, bounds[0], bounds[1], subtract, fire_once,
                       saturate, spikes[t, n], totals[n])


@numba.njit(cache=True, nogil=True)
def _conv_tables(height, width, kernel_h, kernel_w, stride_h, stride_w, top, left, dil_h, dil_w,
                 out_h, out_w):  # pragma: no cover - compiled
    """The output row (column) that input row ``y`` (column) reaches through kernel row ``u``
    (column ``v``), -1 for none: ``(y + top - u dil_h) / stride_h`` when that is a whole number
    inside the output. Tabulated once: the divisions would otherwise dominate an event's cost."""
    out_row = np.full((height, kernel_h), -1, np.int64)
    for y in range(height):
        for u in range(kernel_h):
            row = y + top - u * dil_h
            if row >= 0 and row % stride_h == 0 and row // stride_h < out_h:
                out_row[y, u] = row // stride_h
    out_col = np.full((width, kernel_w), -1, np.int64)
    for x_index in range(width):
        for v in range(kernel_w):
            col = x_index + left - v * dil_w
            if col >= 0 and col % stride_w == 0 and col // stride_w < out_w:
                out_col[x_index, v] = col // stride_w
    return out_row, out_col


@numba.njit(cache=True, nogil=True)
def _nonzero_columns(line, columns):  # pragma: no cover - compiled
    """Write the indices of ``line``'s nonzero entries to ``columns``; return how many (with no
    branch per entry: at spike densities a branch would be mispredicted at every spike)."""
    count = 0
    for index in range(line.size):
        columns[count] = index
        count += line[index] != 0
    return count


@numba.njit(cache=True, nogil=True)
def _conv_scatter(image, weights, runs, kernel_h, kernel_w, group_in, group_out, left, out_row,
                  out_col, out_w, out_channels, acc):  # pragma: no cover - compiled
    """Add every nonzero input of ``image`` (C, H, W) times its kernel into ``acc``, the outputs
    channels-last ``(Ho * Wo * C_out,)``: every output receives its terms in ``(c, y, x)`` input
    order (the loops run over ``c``, ``y``, the nonzero ``x``, then kernel row ``u``: one output
    meets one ``u`` per ``(c, y)``, so the order of ``u`` and ``x`` does not change any sum).

    ``weights`` is ``weight_t`` (see :func:`_conv_events_kernel`) flattened; with ``runs``
    (stride 1, dilation 1, one group) its kernel columns are reversed (``v -> kW - 1 - v``), so
    that an input reaches, per kernel row, one contiguous block of ``acc`` (kW neighbouring
    output positions, all channels), added in one loop.
    """
    if runs:
        _conv_scatter_runs(image, weights, kernel_h, kernel_w, group_out, left, out_row, out_w,
                           acc)
        return
    channels, height, width = image.shape
    nonzero = np.empty(width, np.int64)
    for c in range(channels):
        base = (c // group_in) * group_out
        for y in range(height):
            line = image[c, y]
            # u inside x: an input's kernel rows land in different output rows, so consecutive
            # blocks never overlap (consecutive x of one u often do; that order ran ~10% slower)
            for event in range(_nonzero_columns(line, nonzero)):
                x_index = nonzero[event]
                value = line[x_index]
                for u in range(kernel_h):
                    row = out_row[y, u]
                    if row < 0:
                        continue
                    for v in range(kernel_w):
                        col = out_col[x_index, v]
                        if col < 0:
                            continue
                        # slices, so that the innermost loop has provably non-negative
                        # indices and vectorises (2x faster than indexing base + j)
                        start = ((c * kernel_h + u) * kernel_w + v) * group_out
                        column = weights[start:start + group_out]
                        start = (row * out_w + col) * out_channels + base
                        _add_block(acc[start:start + group_out], column, value)


@numba.njit(cache=True, nogil=True, inline="always")
def _add_block(target, column, value):  # pragma: no cover - compiled
    """``target += value * column``, without multiplications for a spike (``value == 1``)."""
    if value == 1:
        for j in range(len(target)):
            target[j] += column[j]
    else:
        for j in range(len(target)):
            target[j] += value * column[j]


@numba.njit(cache=True, nogil=True)
def _conv_scatter_runs(image, weights, kernel_h, kernel_w, group_out, left, out_row, out_w,
                       acc):  # pragma: no cover - compiled
    """:func:`_conv_scatter` with ``runs``: one block of ``acc`` per input and kernel row."""
    channels, height, width = image.shape
    nonzero = np.empty(width, np.int64)
    for c in range(channels):
        for y in range(height):
            line = image[c, y]
            # u inside x, as in _conv_scatter
            for event in range(_nonzero_columns(line, nonzero)):
                x_index = nonzero[event]
                value = line[x_index]
                first = x_index + left - (kernel_w - 1)  # the output column of v = kW - 1
                lo = max(0, -first)
                length = (min(kernel_w, out_w - first) - lo) * group_out
                for u in range(kernel_h):
                    row = out_row[y, u]
                    if row < 0:
                        continue
                    start = ((c * kernel_h + u) * kernel_w + lo) * group_out
                    column = weights[start:start + length]
                    start = (row * out_w + first + lo) * group_out
                    _add_block(acc[start:start + length], column, value)


@numba.njit(cache=True, nogil=True, parallel=True)
def _conv_events_kernel(x, weights, runs, kernel_h, kernel_w, group_in, group_out, stride_h,
                        stride_w, top, left, dil_h, dil_w, bias, out):  # pragma: no cover - compiled
    """Event-driven Conv2d: every nonzero input adds its weighted kernel to the outputs it reaches.

    ``x`` (M, C, H, W); ``weights`` the flattened ``weight_t`` (C, kH, kW, C_out / G) with
    ``weight_t[c, u, v, j] = W[g * C_out / G + j, c - g * group_in, u, v]`` for ``g = c //
    group_in`` (kernel columns reversed with ``runs``, see :func:`_conv_scatter`); ``bias``
    (C_out,) or empty for none; ``out`` (M, C_out, Ho, Wo) receives ``bias + sum``. Rows are
    independent and spread over the threads; each accumulates in a channels-last buffer (the
    innermost loop contiguous), starting from zero and adding inputs in ``(c, y, x)`` order, the
    bias last, so every sum is the same whatever the thread count.
    """
    rows, channels, height, width = x.shape
    out_channels, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    out_row, out_col = _conv_tables(height, width, kernel_h, kernel_w, stride_h, stride_w, top,
                                    left, dil_h, dil_w, out_h, out_w)
    has_bias = bias.size > 0
    plane = out_h * out_w
    planes = out.reshape((rows, out_channels, plane))
    for m in numba.prange(rows):
        acc = np.zeros(plane * out_channels, out.dtype)
        _conv_scatter(x[m], weights, runs, kernel_h, kernel_w, group_in, group_out, left,
                      out_row, out_col, out_w, out_channels, acc)
        target = planes[m]
        # position outer: reading acc in order ran ~2x faster than reading it with a stride
        for position in range(plane):
            for j in range(out_channels):
                total = acc[position * out_channels + j]
                if has_bias:
                    total += bias[j]
                target[j, position] = total


@numba.njit(cache=True, nogil=True, parallel=True)
def _conv_if_kernel(x, weights, runs, kernel_h, kernel_w, group_in, group_out, stride_h,
                    stride_w, top, left, dil_h, dil_w, out_h, out_w, bias, v_init, threshold,
                    bounds, subtract, fire_once, saturate, spikes, totals,
                    pool):  # pragma: no cover - compiled
    """A Conv2d layer feeding IF neurons, event-driven, sample by sample (samples spread over
    the threads): per step the conv's output ``bias + sum`` exactly as
    :func:`_conv_events_kernel` computes it (in ``bias``'s dtype), then :func:`_if_update`.

    ``x`` (T, N, C, H, W); ``spikes`` (T, N, C_out * Ho * Wo); the rest as for
    :func:`_conv_events_kernel` and :func:`_if_kernel` (``bias`` is never empty here).
    """
    steps, samples, channels, height, width = x.shape
    out_channels = bias.size
    neurons = totals.shape[1]
    plane = out_h * out_w
    out_row, out_col = _conv_tables(height, width, kernel_h, kernel_w, stride_h, stride_w, top,
                                    left, dil_h, dil_w, out_h, out_w)
    keep = spikes.shape[1] > 0
    for n in numba.prange(samples):
        v = v_init.copy()
        armed = np.ones(neurons, np.uint8)
        current = np.empty(neurons, v.dtype)
        acc = np.empty(neurons, bias.dtype)
        scratch = np.empty(0 if keep else neurons, np.uint8)
        for t in range(steps):
            acc[:] = 0
            _conv_scatter(x[t, n], weights, runs, kernel_h, kernel_w, group_in, group_out, left,
                          out_row, out_col, out_w, out_channels, acc)
            for position in range(plane):  # position outer, as in _conv_events_kernel
                for j in range(out_channels):
                    total = acc[position * out_channels + j]
                    total += bias[j]
                    current[j * plane + position] = total
            out = spikes[t, n] if keep else scratch
            _if_update(v, armed, current, threshold, bounds[0], bounds[1], subtract, fire_once,
                       saturate, out, totals[n])
            _pool_step(out, pool, t, n)


@numba.njit(cache=True, nogil=True)
def _pool_reach(height, width, kernel_h, kernel_w, stride_h, stride_w, top, left, out_h,
                out_w):  # pragma: no cover - compiled
    """The windows of a pool that each input position lies in: ``reach[p, :count[p]]`` are the
    flat output positions (``row * out_w + col``) that input ``p = y * width + x`` reaches, in
    (kernel row, kernel column) order. Tabulated once, so that an input event costs one lookup
    per window."""
    out_row, out_col = _conv_tables(height, width, kernel_h, kernel_w, stride_h, stride_w, top,
                                    left, 1, 1, out_h, out_w)
    reach = np.zeros((height * width, kernel_h * kernel_w), np.int64)
    count = np.zeros(height * width, np.int64)
    for y in range(height):
        for x_index in range(width):
            position = y * width + x_index
            for u in range(kernel_h):
                for v in range(kernel_w):
                    row, col = out_row[y, u], out_col[x_index, v]
                    if row >= 0 and col >= 0:
                        reach[position, count[position]] = row * out_w + col
                        count[position] += 1
    return reach, count


@numba.njit(cache=True, nogil=True, parallel=True)
def _max_pool_spikes_kernel(x, reach, reach_count, out, totals):  # pragma: no cover - compiled
    """Spiking max-pool of spikes ``x`` (T, N, C, H * W) uint8 into ``out`` (T, N, C, Ho * Wo)
    uint8 zeros, event-driven (``reach``: :func:`_pool_reach`); ``totals`` (N, C, Ho * Wo) int64
    zeros receives each output's spike count.

    Per sample (samples spread over the threads) it keeps each input's count so far and each
    window's maximum ``M`` of those counts (positions inside the input only: padding never wins
    over a count >= 0, so ``M`` starts at 0); ``out[t] = M(t) - M(t-1)``
    (:func:`snncc.semantics.max_pool_step`), so ``totals`` is the final ``M``. A maximum
    changes only where an input spiked, so only the windows of this step's spikes are visited.
    """
    steps, samples, channels, positions = x.shape
    for n in numba.prange(samples):
        counts = np.zeros((channels, positions), np.int32)
        nonzero = np.empty(positions, np.int64)
        for t in range(steps):
            for c in range(channels):
                plane = x[t, n, c]
                seen = counts[c]
                largest = totals[n, c]
                result = out[t, n, c]
                for event in range(_nonzero_columns(plane, nonzero)):
                    position = nonzero[event]
                    total = seen[position] + plane[position]
                    seen[position] = total
                    for k in range(reach_count[position]):
                        window = reach[position, k]
                        if total > largest[window]:
                            result[window] += np.uint8(total - largest[window])
                            largest[window] = total


@numba.njit(cache=True, nogil=True, parallel=True)
def _sum_pool_kernel(x, reach, reach_count, scale, out, active):  # pragma: no cover - compiled
    """Sum pooling of non-negative small integers ``x`` (T, N, C, H * W) (zero padding) into
    ``out`` (T, N, C, Ho * Wo) zeros, event-driven: each nonzero input is added to the windows it
    lies in (``reach``: :func:`_pool_reach`). ``active`` (N, C, Ho * Wo) int64 zeros receives the
    number of steps each window sum is nonzero (a window turns nonzero at its first input, and
    no input is negative).

    The window sums are whole numbers, exact in ``out``'s dtype; when ``scale`` is not 1 they are
    then multiplied by ``scale`` (given in ``out``'s dtype): the very values :func:`sum_pool` and
    ``* node.scale`` give for the same inputs. Samples are spread over the threads.
    """
    steps, samples, channels, positions = x.shape
    scaled = scale != 1
    for n in numba.prange(samples):
        nonzero = np.empty(positions, np.int64)
        for t in range(steps):
            for c in range(channels):
                plane = x[t, n, c]
                target = out[t, n, c]
                steps_active = active[n, c]
                for event in range(_nonzero_columns(plane, nonzero)):
                    position = nonzero[event]
                    value = plane[position]
                    for k in range(reach_count[position]):
                        window = reach[position, k]
                        steps_active[window] += target[window] == 0
                        target[window] += value
            if scaled:
                flat = out[t, n].reshape(-1)
                for index in range(flat.size):
                    flat[index] = flat[index] * scale


# ---------------------------------------------------------------------------- layer-major steps
#
# There is no delay between layers and the graph is acyclic, so a node's outputs at all T steps
# depend only on its inputs at all T steps: the engine evaluates node by node (topological order)
# over the whole run at once. A value is ``(N, ...)`` for static nodes (the same every step) and
# ``(T, N, ...)`` otherwise; synaptic layers see ``T * N`` rows in one BLAS call or one
# event-driven pass; IF recurrences run in a compiled kernel.

_LAYOUT = (ir.Flatten, ir.Reshape, ir.Transpose)
# A Dense layer feeding IF neurons whose input is at most this dense runs fused with them in the
# event-driven kernel (cost ~ spikes x fan-out); denser inputs go through BLAS. A Conv2d input at
# most CONV_EVENT_DENSITY dense is scattered event by event (measured on mnist_cnn_bn_unfused,
# whose pooled spike maps are ~20% nonzero: 2.6x faster than im2col + BLAS in integer mode).
EVENT_DENSITY = 0.1
CONV_EVENT_DENSITY = 0.5
# In integer mode both Dense paths give the same exact sums, so the cheaper one is taken: the
# event-driven kernel up to this density (Dense 1568->128, 3136->256, 784->500 on inputs 1..4,
# T=32: it is faster below 0.2-0.3). Float mode keeps EVENT_DENSITY: its sums differ by path.
INTEGER_EVENT_DENSITY = 0.25


def _over_time(value: np.ndarray, static: bool, timesteps: int) -> np.ndarray:
    return np.broadcast_to(value[None], (timesteps,) + value.shape) if static else value


def _merged(value: np.ndarray) -> np.ndarray:
    """``(T, N, ...)`` as ``(T * N, ...)``: a whole run as one batch of a stateless op."""
    return value.reshape((value.shape[0] * value.shape[1],) + value.shape[2:])


@dataclass
class _Deferred:
    """A Dense or Conv2d layer's sparse input over the whole run, left for its IF consumer to
    fuse with it (summed in ``dtype``, the layer's value dtype, when a Conv2d)."""

    synapse: _Synapse
    spikes: np.ndarray  # (T, N, D) for a Dense layer, (T, N, C, H, W) for a Conv2d
    dtype: type = np.float32


def _run_synapse(synapse: _Synapse, x: np.ndarray, timed: bool, integer: bool,
                 fusable: bool, event_dtype: type, nonzero: int) -> np.ndarray | _Deferred:
    """The layer on ``x``, or its sparse input deferred to its IF consumer; ``nonzero``: how many
    entries of ``x`` are nonzero (picks the event-driven path for a timed ``x``)."""
    if timed and fusable and isinstance(synapse.node, ir.Dense):
        rows = x.reshape(x.shape[:2] + (-1,))
        if nonzero <= (INTEGER_EVENT_DENSITY if integer else EVENT_DENSITY) * rows.size:
            return _Deferred(synapse, rows)
    if timed and isinstance(synapse.node, ir.Conv2d):
        if nonzero <= CONV_EVENT_DENSITY * x.size:
            if fusable:
                return _Deferred(synapse, x, event_dtype)
            out = synapse.events_conv(_merged(x), event_dtype)
            return out.reshape(x.shape[:2] + out.shape[1:])
    out = synapse(_merged(x) if timed else x)
    if integer:
        out = (np.rint(out) if out.dtype == np.float64 else out).astype(np.int64)
    return out.reshape(x.shape[:2] + out.shape[1:]) if timed else out


def _run_if(node: ir.IF, shape: ir.Shape, current: np.ndarray | _Deferred, timed: bool,
            timesteps: int, integer: bool, dtype: type,
            pool: tuple[ir.SumPool2d, type] | None = None
            ) -> tuple[np.ndarray | None, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The IF node's spikes ``(T, N, *shape)`` uint8, spike counts per neuron ``(N, *shape)``, and
    what :func:`_run_sum_pool` would give for ``pool`` (a sum pool and its value dtype) on those
    spikes; with a pool, the spikes are pooled in the IF kernel and not kept (None).

    ``dtype`` holds state and currents (see :meth:`_Plan._state_dtype`; int32 only where exact).
    """
    size = int(np.prod(shape))
    batch = (current.spikes.shape[1] if isinstance(current, _Deferred)
             else current.shape[1] if timed else current.shape[0])
    spikes = np.zeros((timesteps, 0 if pool else batch, size), np.uint8)
    totals = np.zeros((batch, size), np.int32)
    pooled = _pool_buffers(pool, shape, timesteps, batch)
    bounds = (np.array([ir.STATE_MIN, ir.STATE_MAX], dtype) if integer
              else np.array([-np.inf, np.inf], dtype))
    v_init = np.ascontiguousarray(ir.broadcast_per_neuron(node.v_init, shape), dtype).reshape(-1)
    threshold = np.ascontiguousarray(ir.broadcast_per_neuron(node.threshold, shape),
                                     dtype).reshape(-1)
    rule = (bounds, node.reset == "subtract", node.fire_once, integer)
    if isinstance(current, _Deferred) and isinstance(current.synapse.node, ir.Conv2d):
        synapse, node_conv = current.synapse, current.synapse.node
        bias = (np.zeros(node_conv.weight.shape[0], current.dtype) if node_conv.bias is None
                else node_conv.bias.astype(current.dtype))
        _conv_if_kernel(np.ascontiguousarray(current.spikes), *synapse.conv_events(current.dtype),
                        *shape[1:], bias, v_init, threshold, *rule, spikes, totals, pooled)
    elif isinstance(current, _Deferred):
        assert pool is None, "a Dense layer's IF neurons have no spatial shape to pool"
        synapse = current.synapse
        bias = (np.zeros(size, dtype) if synapse.events_bias is None
                else synapse.events_bias.astype(dtype))
        _dense_if_kernel(np.ascontiguousarray(current.spikes), synapse.events_in(dtype),
                         bias, v_init, threshold, *rule, spikes, totals)
    else:
        steps = current if timed else current[None]
        steps = np.ascontiguousarray(steps.reshape(steps.shape[0], batch, size), dtype=dtype)
        _if_kernel(steps, v_init, threshold, *rule, spikes, totals, pooled)
    totals = totals.astype(np.int64).reshape((batch,) + tuple(shape))
    if pool is not None:
        _, out_h, out_w = pool[0].output_shape([shape])
        out, active = pooled[-2:]
        return None, totals, (out.reshape(out.shape[:3] + (out_h, out_w)),
                              active.astype(np.int64).reshape(active.shape[:2] + (out_h, out_w)))
    return spikes.reshape((timesteps, batch) + tuple(shape)), totals, None


def _pool_buffers(pool: tuple[ir.SumPool2d, type] | None, shape: ir.Shape, timesteps: int,
                  batch: int) -> tuple:
    """The ``pool`` argument of the IF kernels (see :func:`_pool_step`) for a sum pool and its
    value dtype over IF neurons of ``shape`` (C, H, W); an empty one for None."""
    if pool is None:
        return 1, 1, 1, np.float32(1), np.zeros((0, 0, 0, 0), np.float32), np.zeros((0, 0, 0),
                                                                                   np.int64)
    node, dtype = pool
    channels, out_h, out_w = node.output_shape([shape])
    return (*node.kernel, shape[2], dtype(node.scale),
            np.empty((timesteps, batch, channels, out_h * out_w), dtype),
            np.zeros((batch, channels, out_h * out_w), np.int32))


def _spike_sum_pool(node: ir.Node, integer: bool) -> bool:
    """Whether ``node`` is a sum pool that the compiled kernels compute on spikes: any sum pool
    in float mode; in integer mode one without a scale (scaled ones take the array path,
    :func:`_stateless`)."""
    return isinstance(node, ir.SumPool2d) and (not integer or node.scale == 1.0)


def _tiles(node: ir.Node, integer: bool) -> bool:
    """Whether ``node`` is a spike sum pool (:func:`_spike_sum_pool`) whose windows tile the
    input (stride = kernel, no padding): the pools :func:`_pool_step` computes."""
    return (_spike_sum_pool(node, integer) and node.stride == node.kernel
            and not any(node.padding))


def _run_max_pool(node: ir.MaxPool2d, x: np.ndarray,
                  dtype: type) -> tuple[np.ndarray, np.ndarray | None]:
    """Spiking max-pool: the per-step increase of the max of the cumulative input counts; and
    the spike count per output ``(N, C, Ho, Wo)`` when the inputs are spikes (else None).

    Spikes (uint8 0/1) go through a compiled kernel whose output is uint8 again (the max of
    counts grows by at most one per step); other values through cumsum, max-pool and diff.
    """
    if x.dtype == np.uint8 and x.ndim == 5:
        threads.current()
        _, out_h, out_w = node.output_shape([x.shape[2:]])
        out = np.zeros(x.shape[:3] + (out_h * out_w,), np.uint8)
        totals = np.zeros(out.shape[1:], np.int64)
        _max_pool_spikes_kernel(_planes(x), *_reach(node, x.shape[3:], (out_h, out_w)), out,
                                totals)
        return (out.reshape(x.shape[:3] + (out_h, out_w)),
                totals.reshape(x.shape[1:3] + (out_h, out_w)))
    totals = np.cumsum(x, axis=0, dtype=dtype)
    pooled = max_pool(_merged(totals), node)
    pooled = pooled.reshape(x.shape[:2] + pooled.shape[1:])
    return np.diff(pooled, axis=0, prepend=np.zeros((1,) + pooled.shape[1:], dtype)), None


def _run_sum_pool(node: ir.SumPool2d, x: np.ndarray,
                  dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Sum pooling of spikes ``x`` (T, N, C, H, W) uint8 over all steps, in the value ``dtype``;
    and the number of steps each output is nonzero ``(N, C, Ho, Wo)``."""
    threads.current()
    _, out_h, out_w = node.output_shape([x.shape[2:]])
    out = np.zeros(x.shape[:3] + (out_h * out_w,), dtype)
    active = np.zeros(out.shape[1:], np.int64)
    _sum_pool_kernel(_planes(x), *_reach(node, x.shape[3:], (out_h, out_w)), dtype(node.scale),
                     out, active)
    return (out.reshape(x.shape[:3] + (out_h, out_w)),
            active.reshape(x.shape[1:3] + (out_h, out_w)))


def _planes(x: np.ndarray) -> np.ndarray:
    """``(T, N, C, H, W)`` as contiguous ``(T, N, C, H * W)``."""
    return np.ascontiguousarray(x).reshape(x.shape[:3] + (-1,))


def _reach(node: ir.MaxPool2d | ir.SumPool2d, size: tuple[int, int],
           out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The pool's :func:`_pool_reach` tables for inputs of ``size`` (H, W)."""
    return _pool_reach(*size, *node.kernel, *node.stride, node.padding[0], node.padding[1],
                       *out_size)


def _simulate_batch(plan: _Plan, raw: np.ndarray, sample_indices: np.ndarray, timesteps: int,
                    labels: np.ndarray | None, record: bool, seed: int,
                    count_neurons: bool, given: dict[str, np.ndarray] | None = None,
                    only: set[str] | None = None, keep: tuple[str, ...] = ()
                    ) -> SimResult | tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One batch through the graph; a SimResult.

    A *segment* run (``only`` given, see :func:`simulate_segment`) evaluates only the nodes in
    ``only``, takes the values of ``given`` nodes as computed, skips synaptic event counting and
    returns ``(values of keep, neuron_counts)`` instead.
    """
    graph, integer = plan.graph, plan.integer
    threads.current()  # numba's threads, before any kernel launches them (see threads.configure)
    state_dtype = np.int64 if integer else np.float32
    batch = len(raw)
    input_node = graph.input

    values: dict[str, np.ndarray] = {}
    unread = {name: len(graph.consumers(name)) for name in plan.order}
    counts: dict[str, np.ndarray] = {}
    rasters: dict[str, np.ndarray] = {}
    neuron_counts: dict[str, np.ndarray] = {}
    synops = np.zeros(batch)
    readout_node = graph.nodes[graph.output_name]
    readout: dict[str, np.ndarray] = {}
    predictions = np.empty((timesteps, batch), np.int64)
    # spike counts per neuron (N, ...) of 0/1-valued nodes: IF, spiking inputs and their layouts
    totals: dict[str, np.ndarray] = {}
    # steps with a nonzero value per neuron (N, ...) of other nodes whose kernels count them
    active: dict[str, np.ndarray] = {}

    for name in plan.order:
        if given is not None and name in given:
            values[name] = given[name]
            continue
        if only is not None and name not in only:
            continue
        node = graph.nodes[name]
        sources = plan.sources[name]
        static = name in plan.static
        inputs = [values[s] for s in sources]
        timed = [s not in plan.static for s in sources]
        if name in values:  # computed by its source's kernel (a sum pool fused with IF)
            out = values[name]
        elif isinstance(node, ir.Input):
            if input_node.coding == "direct":  # the same value every step: kept static
                out = semantics.encode_input(input_node, raw, 1, integer=integer)[0]
            else:
                out = semantics.encode_input(replace(input_node, seed=seed), raw, timesteps,
                                             sample_indices)
                totals[name] = out.sum(axis=0, dtype=np.int64)
        elif isinstance(node, ir.IF):
            pool = plan.pooled.get(name)
            if pool is not None and (record or name in keep
                                     or (only is not None and pool not in only)
                                     or (given is not None and pool in given)):
                pool = None  # the spikes themselves are wanted
            out, totals[name], pooled = _run_if(
                node, plan.shapes[name], inputs[0], timed[0], timesteps, integer,
                plan.state_dtypes[name],
                None if pool is None else (graph.nodes[pool], plan.value_dtypes[pool]))
            if pool is not None:
                values[pool], active[pool] = pooled
        elif isinstance(node, ir.LEAKY):
            out, totals[name] = run_leaky(node, plan.shapes[name], inputs[0], timed[0], timesteps,
                                          integer)
        elif isinstance(node, ir.MaxPool2d):
            out, spike_totals = _run_max_pool(node, _over_time(inputs[0], not timed[0], timesteps),
                                              state_dtype)
            if spike_totals is not None:
                totals[name] = spike_totals
        elif isinstance(node, ir.Readout):
            current = _over_time(inputs[0], not timed[0], timesteps)
            readout = _run_readout(node, plan.shapes[name], current, integer, predictions)
            out = inputs[0]
        elif isinstance(node, ir.SYNAPTIC):
            # steps each input is nonzero: known from the kernels that made the input, else
            # counted per input where synaptic events are counted; a segment run needs only the
            # total (the path choice), one flat count
            steps_active = totals.get(sources[0], active.get(sources[0]))
            if steps_active is None and only is None:
                steps_active = (np.count_nonzero(inputs[0], axis=0) if timed[0]
                                else timesteps * (inputs[0] != 0))
            nonzero = (int(steps_active.sum()) if steps_active is not None
                       else int(np.count_nonzero(inputs[0])))
            out = _run_synapse(plan.synapses[name], inputs[0], timed[0], integer,
                               name in plan.fusable, plan.value_dtypes[name], nonzero)
            if only is None:  # a segment run counts no synaptic events
                synops += semantics.synaptic_events(steps_active, plan.fanout[name])
        elif (_spike_sum_pool(node, integer) and not static
              and inputs[0].dtype == np.uint8):
            out, active[name] = _run_sum_pool(node, inputs[0], plan.value_dtypes[name])
        else:
            if not isinstance(node, _LAYOUT):
                inputs = [i.astype(plan.value_dtypes[name], copy=False) for i in inputs]
            if not static:
                inputs = [_merged(_over_time(value, not is_timed, timesteps))
                          for value, is_timed in zip(inputs, timed, strict=True)]
            out = _stateless(node, inputs)
            if isinstance(node, _LAYOUT):
                for known in (totals, active):
                    if sources[0] in known:
                        known[name] = _stateless(node, [known[sources[0]]])
            if integer and not isinstance(node, _LAYOUT):
                out = out.astype(plan.value_dtypes[name], copy=False)
            if not static:
                out = out.reshape((timesteps, batch) + out.shape[1:])
        values[name] = out
        for source in sources:
            unread[source] -= 1
            if unread[source] == 0 and source != graph.output_name and source not in keep:
                del values[source]
        if name in plan.spiking:
            key = f"input:{name}" if name == graph.input_name else name
            per_neuron = totals[name] if name in totals else out.sum(axis=0, dtype=np.int64)
            counts[key] = per_neuron.reshape(batch, -1).sum(axis=1)
            if record:
                rasters[key] = out.astype(np.uint8, copy=False)
            if count_neurons:
                neuron_counts[key] = per_neuron

    if only is not None:
        return {name: values[name] for name in keep}, neuron_counts
    return SimResult(
        timesteps=timesteps,
        mode=plan.mode,
        predictions=predictions,
        labels=None if labels is None else np.asarray(labels),
        spike_counts=counts,
        synops=synops,
        readout_state=readout["v"].copy(),
        decision_time=readout["time"].copy() if readout_node.mode == "first_spike" else None,
        rasters=rasters,
        neuron_counts=neuron_counts,
    )


def _run_readout(node: ir.Readout, shape: ir.Shape, current: np.ndarray, integer: bool,
                 predictions: np.ndarray) -> dict[str, np.ndarray]:
    """Step the readout through ``current`` (T, N, C) with the golden rule, writing each step's
    decision into ``predictions``; returns the final state (``v``, ``winner``, ``time``)."""
    timesteps, batch = current.shape[:2]
    state = {"v": np.zeros((batch,) + tuple(shape), np.int64 if integer else np.float32),
             "winner": np.full(batch, -1, np.int64),
             "time": np.full(batch, timesteps, np.int64)}
    for t in range(timesteps):
        predictions[t] = semantics.readout_step(node, state, current[t], integer, t)
    return state


def batch_rows(shapes: dict[str, ir.Shape], timesteps: int, batch_size: int = 256,
               mode: str = "float") -> int:
    """Samples per batch of :func:`simulate`: ``batch_size``, shrunk so that the largest node's
    values over all ``timesteps`` stay below ``ACTIVATION_BYTES`` (``INTEGER_ACTIVATION_BYTES``
    in integer mode) at 8 bytes each, at least 1.

    A sharded run whose shards start at multiples of the float-mode number evaluates exactly the
    batches one whole run evaluates (float mode picks its summation path, and BLAS its blocking,
    per batch); integer mode gives the same results for any batches.
    """
    largest = max(int(np.prod(shape)) for shape in shapes.values())
    budget = INTEGER_ACTIVATION_BYTES if mode == "integer" else ACTIVATION_BYTES
    return max(1, min(batch_size, budget // (8 * timesteps * largest)))


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
    sample_offset: int = 0,
) -> SimResult:
    """Run the SNN for ``timesteps`` steps on ``raw_inputs`` ``(N, *input_shape)``.

    ``mode="integer"`` requires an integer graph (see :meth:`snncc.ir.Graph.check_integer`) and
    integer raw inputs. ``seed`` overrides the Input node's seed for rate coding. ``progress`` is
    called with the number of samples finished after each batch (batches shrink below
    ``batch_size`` when one node's whole run would exceed its activation budget, see
    :func:`batch_rows`). ``record`` keeps every spiking
    node's raster; ``count_neurons`` keeps per-neuron spike totals (``neuron_counts``).
    ``sample_offset``: the global index of ``raw_inputs[0]`` in the whole evaluated set, when
    this call runs one shard of it; rate coding seeds sample ``k`` by ``sample_offset + k``, so
    a sharded run draws exactly what one run over the whole set draws.
    """
    if timesteps < 1:
        raise SnnccError(f"timesteps must be >= 1, got {timesteps}")
    raw_inputs = _mode_inputs(graph, raw_inputs, mode)
    max_input = float(np.abs(raw_inputs).max(initial=0)) if len(raw_inputs) else 1.0
    plan = _Plan(graph, mode, max(max_input, 1.0))
    seed = graph.input.seed if seed is None else seed
    labels = None if labels is None else np.asarray(labels)
    batch_size = batch_rows(plan.shapes, timesteps, batch_size, mode)
    threads.current()  # numba's thread count from --threads / SNNCC_THREADS
    parts = []
    # one BLAS thread: float results then never depend on the thread count (see run_ann), and
    # integer mode's products are small (most sums are event-driven): waking BLAS's threads for
    # each cost more than they saved (measured on the shared CNNs)
    with threads.single_threaded_blas():
        for start in range(0, len(raw_inputs), batch_size):
            stop = min(start + batch_size, len(raw_inputs))
            parts.append(_simulate_batch(
                plan, raw_inputs[start:stop], np.arange(start, stop) + sample_offset, timesteps,
                None if labels is None else labels[start:stop], record, seed, count_neurons,
            ))
            if progress is not None:
                progress(stop - start)
    if not parts:
        raise SnnccError("no input samples to simulate")
    return SimResult.concatenate(parts)


def _mode_inputs(graph: ir.Graph, raw_inputs: np.ndarray, mode: str) -> np.ndarray:
    """Raw samples checked against the input shape; int64 in integer mode (which needs integers)."""
    raw_inputs = _check_inputs(graph, raw_inputs)
    if mode == "integer" and raw_inputs.dtype.kind not in "iub":
        if not np.array_equal(raw_inputs, np.rint(raw_inputs)):
            raise SnnccError("integer mode needs integer input samples")
        raw_inputs = raw_inputs.astype(np.int64)
    return raw_inputs


class Segments:
    """Part of a graph at a time, batch by batch: for calibration passes that change a layer and
    then need only what lies after it (:func:`snncc.passes.convert.bias_correct`).

    The batches are :func:`simulate`'s (same ``batch_size`` rule, same boundaries), float or
    integer mode, and each batch is computed exactly as :func:`simulate` would: a node's values
    are the same whether it was computed in one run of the whole graph or in a segment from the
    stored values of the nodes before it. ``run(batch, nodes, given, keep)`` evaluates ``nodes``
    (in topological order) from the values ``given`` and returns the values of ``keep`` and the
    spike counts per neuron of the spiking nodes among ``nodes``. Call :meth:`refresh` after
    changing a synaptic node's parameters.
    """

    def __init__(self, graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int,
                 mode: str = "float", batch_size: int = 256) -> None:
        self.graph = graph
        self.raw = _mode_inputs(graph, raw_inputs, mode)
        self.timesteps = timesteps
        self.mode = mode
        max_input = float(np.abs(self.raw).max(initial=0)) if len(self.raw) else 1.0
        self.max_input = max(max_input, 1.0)
        self.plan = _Plan(graph, mode, self.max_input)
        size = batch_rows(self.plan.shapes, timesteps, batch_size, mode)
        self.batches = [(start, min(start + size, len(self.raw)))
                        for start in range(0, len(self.raw), size)]

    def refresh(self) -> None:
        """Re-read the graph's parameters (after a pass changed them)."""
        self.plan = _Plan(self.graph, self.mode, self.max_input)

    def run(self, batch: int, nodes: set[str], given: dict[str, np.ndarray],
            keep: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        start, stop = self.batches[batch]
        threads.current()
        with threads.single_threaded_blas():
            return _simulate_batch(  # type: ignore[return-value]
                self.plan, self.raw[start:stop], np.arange(start, stop), self.timesteps, None,
                False, self.graph.input.seed, True, given=given, only=nodes, keep=keep)

