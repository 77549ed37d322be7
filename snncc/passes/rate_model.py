"""Rate model of a graph: the steady-state firing rates an SNN approximates (used for calibration).

Not a simulator (that is :mod:`snncc.backends.sim`): one numpy evaluation per batch in which every
node maps its input to the quantity the SNN encodes over many steps:

* :class:`~snncc.ir.Input`: the preprocessed sample ``x`` (direct coding) or ``clip(x, 0, 1)``
  (rate and latency coding: the spike probability).
* :class:`~snncc.ir.IF`: the firing rate ``clip(z / threshold, 0, 1)`` of its input current ``z``
  (per channel or per neuron threshold), i.e. spikes per step.
* ``ReLU``, ``Clip``, ``Dense``, ``Conv2d``, ``SumPool2d``, ``MaxPool2d``, ``Affine``, ``Add`` and
  the layout nodes: their ANN-mode function. :class:`~snncc.ir.Readout` is the identity.

Passes use it to calibrate thresholds: the current ``z`` arriving at an IF node, recorded over
calibration samples, is compared before and after a pass (binarize, prune). Parameters may be
float or integer; everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from snncc import ir
from snncc.errors import UnsupportedError


def rate_forward(
    graph: ir.Graph,
    raw_inputs: np.ndarray,
    record: Iterable[str] = (),
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Evaluate the rate model on ``raw_inputs`` ``(N, *input_shape)``.

    Returns the outputs of the nodes named in ``record`` (and always the output node's under the
    key of its name), each ``(N, *shape)`` float64.
    """
    wanted = set(record) | {graph.output_name}
    order = graph.topological_order()
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
    raw_inputs = np.asarray(raw_inputs)
    for start in range(0, len(raw_inputs), batch_size):
        values: dict[str, np.ndarray] = {}
        for name in order:
            node = graph.nodes[name]
            args = [values[source] for source in graph.inputs_of(name)]
            if isinstance(node, ir.Input):
                values[name] = _input(node, raw_inputs[start:start + batch_size])
            else:
                values[name] = evaluate_node(node, args, name)
        for name in wanted:
            chunks[name].append(values[name])
    return {name: np.concatenate(parts) if parts else np.zeros((0,)) for name, parts in
            chunks.items()}


def if_input_currents(
    graph: ir.Graph, raw_inputs: np.ndarray, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """The current ``z`` reaching every IF node, keyed by the IF node's name."""
    sources = {name: graph.inputs_of(name)[0] for name in graph.of_type(ir.IF)}
    outputs = rate_forward(graph, raw_inputs, record=sources.values(), batch_size=batch_size)
    return {name: outputs[source] for name, source in sources.items()}


def _input(node: ir.Input, raw: np.ndarray) -> np.ndarray:
    x = node.preprocess(raw)
    return x if node.coding == "direct" else np.clip(x, 0.0, 1.0)


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a per-channel ``(C,)`` (or ``(1,)``) array to broadcast over ``(N, C, ...)``."""
    return np.asarray(values, dtype=np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def evaluate_node(node: ir.Node, args: list[np.ndarray], name: str = "?") -> np.ndarray:
    """One node of the rate model on a batch (``args`` are its inputs, batch axis first)."""
    if isinstance(node, ir.Dense):
        out = args[0] @ np.asarray(node.weight, dtype=np.float64).T
        return out if node.bias is None else out + np.asarray(node.bias, dtype=np.float64)
    if isinstance(node, ir.Conv2d):
        return conv2d(args[0], node)
    if isinstance(node, ir.IF):
        (x,) = args
        threshold = ir.broadcast_per_neuron(node.threshold, x.shape[1:], "threshold")
        return np.clip(x / threshold.astype(np.float64), 0.0, 1.0)
    if isinstance(node, ir.ReLU):
        return np.maximum(args[0], 0.0)
    if isinstance(node, ir.Clip):
        return np.clip(args[0], node.low, node.high)
    if isinstance(node, ir.SumPool2d):
        return _pool(args[0], node.kernel, node.stride, node.padding, 0.0, np.sum) * node.scale
    if isinstance(node, ir.MaxPool2d):
        return _pool(args[0], node.kernel, node.stride, node.padding, -np.inf, np.max)
    if isinstance(node, ir.Affine):
        (x,) = args
        return x * _per_channel(node.scale, x.ndim) + _per_channel(node.bias, x.ndim)
    if isinstance(node, ir.Add):
        return np.sum(args, axis=0)
    if isinstance(node, ir.Flatten):
        return args[0].reshape(len(args[0]), -1)
    if isinstance(node, ir.Reshape):
        return args[0].reshape((len(args[0]),) + node.shape)
    if isinstance(node, ir.Transpose):
        return args[0].transpose((0,) + tuple(p + 1 for p in node.perm))
    if isinstance(node, ir.Readout):
        return args[0]
    raise UnsupportedError(f"node {name!r}: the rate model has no rule for {type(node).__name__}")


def conv2d(x: np.ndarray, node: ir.Conv2d) -> np.ndarray:
    """``Conv2d`` on a batch ``(N, C, H, W)`` in float64 (zero padding, stride, dilation, groups)."""
    weight = np.asarray(node.weight, dtype=np.float64)
    top, left, bottom, right = node.padding
    x = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_channels, in_per_group, kernel_h, kernel_w = weight.shape
    dil_h, dil_w = node.dilation
    span_h, span_w = dil_h * (kernel_h - 1) + 1, dil_w * (kernel_w - 1) + 1
    windows = sliding_window_view(x, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, :: node.stride[0], :: node.stride[1], ::dil_h, ::dil_w]
    per_group = out_channels // node.groups
    outputs = []
    for group in range(node.groups):
        patch = windows[:, group * in_per_group:(group + 1) * in_per_group]
        kernel = weight[group * per_group:(group + 1) * per_group]
        outputs.append(np.einsum("nchwuv,ocuv->nohw", patch, kernel, optimize=True))
    out = np.concatenate(outputs, axis=1)
    if node.bias is not None:
        out = out + _per_channel(node.bias, 4)
    return out


def _pool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
          padding: tuple[int, int, int, int], fill: float, reduce: np.ufunc) -> np.ndarray:
    top, left, bottom, right = padding
    x = np.pad(np.asarray(x, dtype=np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)),
               constant_values=fill)
    windows = sliding_window_view(x, kernel, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    return reduce(windows, axis=(4, 5))
