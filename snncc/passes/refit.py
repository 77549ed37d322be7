"""Least-squares refit of synaptic layers to the ANN, on the SNN's own spike rates.

A calibration step for neurons whose delivered rate is not the ANN's activation (reset to zero
drops the overshoot at every spike, so a neuron's rate bends below the clipped-ReLU line, more
the faster it fires: a per-channel bias cannot undo a distortion that differs per neuron and
rate). The layer *after* such neurons sees their real rates, so its weights can be refitted to
them: for every Dense or Conv2d (one group) that reads the spikes of IF neurons and feeds IF
neurons or a potential readout, in topological order,

    W', b' = argmin_{W, b}  sum_rows |W x_snn + b - z_ann|^2  +  lam |W - W0|^2

where ``x_snn`` is the layer's input averaged over the T steps (each spike worth the λ convert
folded into the weights), ``z_ann`` the ANN's pre-activation of the same layer on the same
calibration sample (from ``ann``, the graph before any correction), one row per sample (Dense)
or per sample and output position (Conv2d, at most REFIT_ROWS rows, strided over positions),
and ``W0`` the current weights. ``lam = ridge * trace(X^T X) / d``: the fit cannot move far from
the trained weights on directions the calibration set does not excite (a 6,272-input Dense fitted
on a few thousand samples; the loihi2-netx profile calibrates on 6,000 for this fit). The bias is not regularised. Each layer is fitted on the rates its predecessors
deliver after their own refit, so the mean current a layer receives matches the ANN's linear
estimate of it; the readout's potential, which decides, matches the ANN's logits best.

Incremental and streamed like :func:`snncc.passes.convert.bias_correct`: the values later layers
read are stored per batch in a temporary directory, each node is computed once per refit, the
normal equations are summed batch by batch (memory: one batch plus ``d x d``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from snncc import ir

#: At most this many regression rows per layer (conv output positions are strided to fit).
REFIT_ROWS = 2**18
#: Column chunks of at most this many elements are multiplied at a time.
CHUNK_ELEMENTS = 2**22


def refittable(graph: ir.Graph) -> list[ir.Layer]:
    """The layers :func:`refit_layers` fits: Dense or one-group Conv2d reading IF spikes and
    feeding IF neurons or a potential readout directly."""
    spiking = set(graph.of_type(ir.IF))
    chosen = []
    for layer in ir.layers(graph):
        node, target = layer.node, layer.target
        if layer.spike_source not in spiking or not layer.direct:
            continue
        if isinstance(node, ir.Conv2d) and node.groups != 1:
            continue
        if isinstance(target, ir.IF) or (isinstance(target, ir.Readout)
                                         and target.mode == "potential"):
            chosen.append(layer)
    return chosen


def refit_layers(graph: ir.Graph, ann: ir.Graph, calibration: np.ndarray, timesteps: int,
                 ridge: float) -> dict[str, float]:
    """Refit every :func:`refittable` layer of ``graph`` in place (module doc); returns, per
    layer, the relative change ``|W' - W0| / |W0|``."""
    from snncc.engines.step import Segments
    from snncc.passes.convert import _ancestors, _ANNRates, _BatchStore

    chosen = refittable(graph)
    changes: dict[str, float] = {}
    if not chosen:
        return changes
    order = graph.topological_order()
    segments = Segments(graph, calibration, timesteps)
    strides = _row_strides(graph, chosen, len(calibration))
    with tempfile.TemporaryDirectory(prefix="snncc-refit-") as folder:
        store = _BatchStore(Path(folder), timesteps)
        done: set[str] = set()
        for layer in chosen:
            nodes = _ancestors(graph, layer.source) - done
            done |= nodes
            frontier = tuple(n for n in order if n in done and any(
                c not in done for c in graph.consumers(n)))
            equations = _NormalEquations(layer.node, strides[layer.name])
            targets = _ANNRates(ann, calibration, layer.name)
            for batch, (start, stop) in enumerate(segments.batches):
                kept, _ = segments.run(batch, nodes, store.load(batch), keep=frontier)
                rates = kept[layer.source].mean(axis=0, dtype=np.float32)
                equations.add(rates, targets.take(start, stop))
                store.save(batch, kept)
            changes[layer.name] = equations.solve(ridge)
            segments.refresh()
    return changes


def _row_strides(graph: ir.Graph, chosen: list[ir.Layer], samples: int
                          ) -> dict[str, int]:
    """The stride over a layer's output positions that keeps its rows under REFIT_ROWS."""
    shapes = graph.infer_shapes()
    strides = {}
    for layer in chosen:
        positions = int(np.prod(shapes[layer.name][1:])) if isinstance(layer.node,
                                                                        ir.Conv2d) else 1
        strides[layer.name] = max(1, -(-positions * samples // REFIT_ROWS))
    return strides


class _NormalEquations:
    """``X^T X`` and ``X^T Z`` of one layer's regression, summed batch by batch."""

    def __init__(self, node: ir.Dense | ir.Conv2d, stride: int) -> None:
        self.node = node
        self.stride = stride
        self.inputs = int(np.prod(node.weight.shape[1:]))
        size = self.inputs + 1  # the bias is the last column
        self.gram = np.zeros((size, size))
        self.cross = np.zeros((size, node.weight.shape[0]))

    def add(self, rates: np.ndarray, target: np.ndarray) -> None:
        columns, values = self._rows(rates, target)
        step = max(1, CHUNK_ELEMENTS // (self.inputs + 1))
        for start in range(0, len(columns), step):
            chunk = columns[start:start + step]
            chunk = np.hstack([chunk, np.ones((len(chunk), 1), np.float32)])
            self.gram += (chunk.T @ chunk).astype(np.float64)
            self.cross += chunk.T.astype(np.float64) @ values[start:start + step]

    def _rows(self, rates: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        node = self.node
        if isinstance(node, ir.Dense):
            return rates.reshape(len(rates), -1), target.reshape(len(target), -1)
        from snncc.engines.step import _pad, _windows

        windows = _windows(_pad(rates, node.padding), node.weight.shape[2:], node.stride,
                           node.dilation)
        count, channels, height, width = windows.shape[:4]
        columns = windows.transpose(0, 2, 3, 1, 4, 5).reshape(count * height * width, -1)
        values = np.moveaxis(target, 1, -1).reshape(count * height * width, -1)
        return columns[::self.stride], values[::self.stride].astype(np.float64)

    def solve(self, ridge: float) -> float:
        node = self.node
        before = node.weight.reshape(len(node.weight), -1).astype(np.float64)
        bias = np.zeros(len(before)) if node.bias is None else np.asarray(node.bias, np.float64)
        current = np.hstack([before, bias[:, None]])
        penalty = np.full(self.inputs + 1, ridge * np.trace(self.gram) / (self.inputs + 1))
        penalty[-1] = 0.0
        if not np.trace(self.gram) > 0:
            return 0.0
        system = self.gram + np.diag(penalty)
        right = self.cross + penalty[:, None] * current.T
        try:
            solved = np.linalg.solve(system, right).T
        except np.linalg.LinAlgError:  # an input no calibration sample excites, unpenalised
            solved = np.linalg.lstsq(system, right, rcond=None)[0].T
        node.weight = solved[:, :-1].reshape(node.weight.shape)
        node.bias = solved[:, -1]
        return float(np.linalg.norm(solved[:, :-1] - before) / max(np.linalg.norm(before), 1e-300))
