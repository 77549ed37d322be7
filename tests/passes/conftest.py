"""Graphs in the form the convert pass produces, built by hand for the deployment-pass tests.

``Input(direct, preprocessing) -> Dense|Conv2d -> IF(threshold, v_init=threshold/2, subtract) ->
[SumPool2d(1/k^2) | MaxPool2d | Flatten] -> Dense|Conv2d (weights times the previous threshold)
-> IF ... -> Dense -> Readout(potential)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.passes.rate_model import rate_forward


def raw_samples(graph: ir.Graph, count: int = 64, seed: int = 1) -> np.ndarray:
    """Random uint8 samples shaped like the graph's input."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, *graph.input.shape), dtype=np.uint8)


def convert_by_hand(ann: ir.Graph, raw: np.ndarray, per_channel: bool = False) -> ir.Graph:
    """ReLU -> IF with threshold = max activation on ``raw``; next layer's weights times threshold."""
    graph = ann.copy()
    for name in graph.of_type(ir.ReLU):
        source = graph.inputs_of(name)[0]
        current = rate_forward(graph, raw, record=[source])[source]
        axes = (0,) + tuple(range(2, current.ndim)) if per_channel else None
        threshold = np.maximum(np.max(current, axis=axes), 1e-3)
        threshold = np.atleast_1d(threshold).astype(np.float64)
        graph.replace(name, ir.IF(threshold=threshold, v_init=threshold / 2))
        # every reader layer downstream (through pools / flatten) gets weights * threshold
        frontier = graph.consumers(name)
        while frontier:
            reader = frontier.pop()
            node = graph.nodes[reader]
            if isinstance(node, ir.SYNAPTIC):
                shape = graph.infer_shapes()[name]
                if threshold.size == 1:
                    node.weight = node.weight * threshold[0]
                elif isinstance(node, ir.Conv2d):
                    node.weight = node.weight * threshold[None, :, None, None]
                else:
                    spatial = int(np.prod(shape[1:])) if len(shape) > 1 else 1
                    node.weight = node.weight * np.repeat(threshold, spatial)[None, :]
            else:
                frontier.extend(graph.consumers(reader))
    graph.add("readout", ir.Readout(mode="potential"), [graph.output_name])
    return graph


def converted_mlp(ann: ir.Graph, hidden: int = 16) -> ir.Graph:
    """``tiny_mlp`` with a second hidden layer (so a hidden layer sits between first and last)."""
    rng = np.random.default_rng(7)
    ann = ann.copy()
    ann.input.mean = np.array([0.1])
    ann.input.std = np.array([0.3])
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ann.input),
        ("fc1", ann.nodes["fc1"]),
        ("relu1", ir.ReLU()),
        ("fc_mid", ir.Dense(weight=rng.normal(0, 0.4, (hidden, hidden)),
                            bias=rng.normal(0, 0.05, hidden))),
        ("relu_mid", ir.ReLU()),
        ("fc2", ann.nodes["fc2"]),
    )
    return convert_by_hand(graph, raw_samples(graph))


def converted_cnn(ann: ir.Graph, per_channel: bool = True, mean: float = 0.13) -> ir.Graph:
    """``tiny_cnn`` converted, per-channel thresholds by default."""
    ann = ann.copy()
    ann.input.mean = np.array([mean])
    ann.input.std = np.array([0.31])
    return convert_by_hand(ann, raw_samples(ann), per_channel=per_channel)


@pytest.fixture
def snn_mlp(tiny_mlp: ir.Graph) -> ir.Graph:
    return converted_mlp(tiny_mlp)


@pytest.fixture
def snn_cnn(tiny_cnn: ir.Graph) -> ir.Graph:
    return converted_cnn(tiny_cnn)


@pytest.fixture
def snn_cnn_no_mean(tiny_cnn: ir.Graph) -> ir.Graph:
    """Zero-mean preprocessing: folding the input into the padded first conv is exact."""
    return converted_cnn(tiny_cnn, mean=0.0)
