"""Converted SNN graphs (the convert pass's output form) for the deployment-pass tests.

``Input(direct, preprocessing) -> Dense|Conv2d -> IF(threshold, v_init=threshold/2, subtract) ->
[SumPool2d(1/k^2) | MaxPool2d | Flatten] -> Dense|Conv2d (weights times the previous threshold)
-> IF ... -> Dense -> Readout(potential)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.passes import PassContext
from snncc.passes.convert import convert


def raw_samples(graph: ir.Graph, count: int = 64, seed: int = 1) -> np.ndarray:
    """Random uint8 samples shaped like the graph's input."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, *graph.input.shape), dtype=np.uint8)


def converted(ann: ir.Graph, per_channel: bool = True, timesteps: int = 32) -> ir.Graph:
    """``ann`` through the convert pass, calibrated on random samples (no bias correction)."""
    context = PassContext(calibration=raw_samples(ann), timesteps=timesteps,
                          options={"convert": {"per_channel": per_channel,
                                               "bias_correction": False}})
    return convert(ann, context).graph


def mlp_with_hidden_layer(ann: ir.Graph, hidden: int = 16) -> ir.Graph:
    """``tiny_mlp`` with normalising preprocessing and a second hidden layer (first, mid, last)."""
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
    return graph


def cnn_with_mean(ann: ir.Graph, mean: float) -> ir.Graph:
    ann = ann.copy()
    ann.input.mean = np.array([mean])
    ann.input.std = np.array([0.31])
    return ann


@pytest.fixture
def ann_mlp(tiny_mlp: ir.Graph) -> ir.Graph:
    return mlp_with_hidden_layer(tiny_mlp)


@pytest.fixture
def snn_mlp(ann_mlp: ir.Graph) -> ir.Graph:
    return converted(ann_mlp)


@pytest.fixture
def snn_cnn(tiny_cnn: ir.Graph) -> ir.Graph:
    """Per-channel thresholds; the padded first conv reads mean-normalised input."""
    return converted(cnn_with_mean(tiny_cnn, 0.13))


@pytest.fixture
def snn_cnn_no_mean(tiny_cnn: ir.Graph) -> ir.Graph:
    """Zero-mean preprocessing: folding the input into the padded first conv is exact."""
    return converted(cnn_with_mean(tiny_cnn, 0.0))


@pytest.fixture
def samples():
    """``samples(graph, count, seed)``: random uint8 inputs for ``graph``."""
    return raw_samples
