"""Shared fixtures: the ../shared data when present (skipped with a reason otherwise), small graphs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from snncc import ir

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the ../shared fixtures are absent)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Directory holding mnist/ and fashion-mnist/ IDX files (../shared/datasets or $SNNCC_DATA_DIR)."""
    env = os.environ.get("SNNCC_DATA_DIR")
    return _require(Path(env) if env else SHARED / "datasets", "IDX datasets")


@pytest.fixture(scope="session")
def nir_dir() -> Path:
    """Directory of the shared snnTorch NIR fixtures (.nir, .json sidecar, .npz predictions)."""
    return _require(SHARED / "nir", "shared NIR fixtures")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Directory of the shared ONNX checkpoints and their JSON sidecars."""
    return _require(SHARED / "models", "shared ONNX models")


def tiny_mlp_graph(seed: int = 0, hidden: int = 16, inputs: int = 8, classes: int = 4) -> ir.Graph:
    """A float ANN: Input(8) -> Dense -> ReLU -> Dense (logits)."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(inputs,), scale=1 / 255)),
        ("fc1", ir.Dense(weight=rng.normal(0, 0.5, (hidden, inputs)), bias=rng.normal(0, 0.1, hidden))),
        ("relu1", ir.ReLU()),
        ("fc2", ir.Dense(weight=rng.normal(0, 0.5, (classes, hidden)), bias=np.zeros(classes))),
    )
    return graph


def tiny_cnn_graph(seed: int = 0) -> ir.Graph:
    """A float ANN on 1x8x8 images: conv -> relu -> avgpool -> conv -> relu -> maxpool -> dense."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(1, 8, 8), scale=1 / 255)),
        ("conv1", ir.Conv2d(weight=rng.normal(0, 0.5, (4, 1, 3, 3)), bias=rng.normal(0, 0.1, 4),
                            padding=1)),
        ("relu1", ir.ReLU()),
        ("pool1", ir.SumPool2d(kernel=2, stride=2, scale=0.25)),
        ("conv2", ir.Conv2d(weight=rng.normal(0, 0.3, (6, 4, 3, 3)), bias=rng.normal(0, 0.1, 6),
                            padding=1)),
        ("relu2", ir.ReLU()),
        ("pool2", ir.MaxPool2d(kernel=2, stride=2)),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.normal(0, 0.3, (3, 24)), bias=np.zeros(3))),
    )
    return graph


@pytest.fixture
def tiny_mlp() -> ir.Graph:
    return tiny_mlp_graph()


@pytest.fixture
def tiny_cnn() -> ir.Graph:
    return tiny_cnn_graph()


# ------------------------------------------- converted SNNs for the deployment-pass tests (issue 5)
# The convert pass's output form: Input(direct, preprocessing) -> Dense|Conv2d -> IF(threshold,
# v_init=threshold/2, subtract) -> [SumPool2d(1/k^2) | MaxPool2d | Flatten] -> Dense|Conv2d (weights
# times the previous threshold) -> IF ... -> Dense -> Readout(potential).


def raw_samples(graph: ir.Graph, count: int = 64, seed: int = 1) -> np.ndarray:
    """Random uint8 samples shaped like the graph's input."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, *graph.input.shape), dtype=np.uint8)


def converted(ann: ir.Graph, per_channel: bool = True, timesteps: int = 32) -> ir.Graph:
    """``ann`` through the convert pass, calibrated on random samples (no bias correction)."""
    from snncc.passes import PassContext
    from snncc.passes.convert import convert

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
