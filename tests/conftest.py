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
