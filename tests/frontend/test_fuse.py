"""Linear fusion rules (snncc.frontend.fuse): each rule keeps run_ann's output and changes the IR."""

from __future__ import annotations

import numpy as np
import pytest

from snncc import ir
from snncc.engines import run_ann
from snncc.frontend.fuse import fuse_linear, is_zero_padding

RNG = np.random.default_rng(0)


def _random(*shape: int) -> np.ndarray:
    return RNG.normal(0, 0.5, shape)


def _fused(graph: ir.Graph, shape: tuple[int, ...]) -> tuple[ir.Graph, list[str]]:
    """Fuse a copy; assert the ANN output is unchanged; return the copy and the applied rules."""
    x = RNG.normal(0, 1, (5, *shape))
    before = run_ann(graph, x)
    fused = graph.copy()
    applied = fuse_linear(fused)
    np.testing.assert_allclose(run_ann(fused, x), before, rtol=1e-9, atol=1e-9)
    return fused, applied


def _types(graph: ir.Graph) -> list[str]:
    return [type(graph.nodes[n]).__name__ for n in graph.topological_order()]


def _chain(shape: tuple[int, ...], *nodes: ir.Node) -> ir.Graph:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=shape)),
                *((f"n{i}_{type(n).__name__.lower()}", n) for i, n in enumerate(nodes)))
    return graph


def test_identity_nodes_removed() -> None:
    graph = _chain((2, 3, 3), ir.ReLU(), ir.Affine(scale=np.ones(2), bias=np.zeros(2)),
                   ir.Reshape(shape=(2, 3, 3)), ir.Transpose(perm=(0, 1, 2)), ir.ReLU())
    fused, applied = _fused(graph, (2, 3, 3))
    assert _types(fused) == ["Input", "ReLU", "ReLU"] and len(applied) == 3


@pytest.mark.parametrize("producer", [
    ir.Dense(weight=_random(4, 6), bias=_random(4)),
    ir.Dense(weight=_random(4, 6)),
    ir.Affine(scale=_random(6), bias=_random(6)),
])
def test_affine_into_dense_or_affine_producer(producer: ir.Node) -> None:
    size = producer.weight.shape[0] if isinstance(producer, ir.Dense) else 6
    graph = _chain((6,), ir.ReLU(), producer, ir.Affine(scale=_random(size), bias=_random(1)))
    fused, _ = _fused(graph, (6,))
    assert _types(fused) == ["Input", "ReLU", type(producer).__name__]


def test_affine_into_conv_producer() -> None:
    graph = _chain((2, 5, 5), ir.Conv2d(weight=_random(4, 1, 3, 3), groups=2, padding=1),
                   ir.Affine(scale=_random(4), bias=_random(4)))
    fused, _ = _fused(graph, (2, 5, 5))
    assert _types(fused) == ["Input", "Conv2d"]


def test_dense_into_dense() -> None:
    graph = _chain((6,), ir.ReLU(), ir.Dense(weight=_random(5, 6), bias=_random(5)),
                   ir.Dense(weight=_random(3, 5)))
    fused, _ = _fused(graph, (6,))
    assert _types(fused) == ["Input", "ReLU", "Dense"]
    assert fused.nodes[fused.output_name].weight.shape == (3, 6)


def test_no_fusion_through_a_shared_intermediate() -> None:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(4,))), ("dense", ir.Dense(weight=_random(4, 4))))
    graph.add("scaled", ir.Affine(scale=_random(4), bias=_random(4)), ["dense"])
    graph.add("relu", ir.ReLU(), ["dense"])
    graph.add("join", ir.Add(), ["scaled", "relu"])
    fused, applied = _fused(graph, (4,))
    assert applied == [] and _types(fused) == _types(graph)


def test_affine_into_input_preprocessing() -> None:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(3, 2, 2), scale=0.5, mean=[0.1, 0.2, 0.3], std=2.0)),
                ("affine", ir.Affine(scale=np.array([2.0, -1.0, 0.5]), bias=_random(3))),
                ("relu", ir.ReLU()))
    fused, _ = _fused(graph, (3, 2, 2))
    assert _types(fused) == ["Input", "ReLU"] and fused.input.scale == 0.5


def test_scalar_affine_into_input_through_layout_only() -> None:
    graph = _chain((2, 3, 4), ir.Transpose(perm=(1, 2, 0)), ir.Affine(scale=np.array([3.0]),
                                                                      bias=np.array([1.0])),
                   ir.ReLU())
    fused, _ = _fused(graph, (2, 3, 4))
    assert _types(fused) == ["Input", "Transpose", "ReLU"]
    graph = _chain((2, 3, 4), ir.Transpose(perm=(1, 2, 0)),
                   ir.Affine(scale=np.array([3.0, 1.0, 2.0]), bias=np.zeros(1)), ir.ReLU())
    fused, applied = _fused(graph, (2, 3, 4))
    assert applied == []  # per-channel after a transpose: the Input's axis 0 is another axis


def test_affine_with_zero_scale_stays_out_of_the_input() -> None:
    graph = _chain((2,), ir.Affine(scale=np.array([0.0, 1.0]), bias=np.ones(2)), ir.ReLU())
    fused, applied = _fused(graph, (2,))
    assert applied == []


def test_affine_into_following_dense_directly_and_through_flatten() -> None:
    graph = _chain((4,), ir.ReLU(), ir.Affine(scale=_random(4), bias=_random(4)),
                   ir.Dense(weight=_random(3, 4), bias=_random(3)))
    fused, _ = _fused(graph, (4,))
    assert _types(fused) == ["Input", "ReLU", "Dense"]
    graph = _chain((2, 2, 2), ir.ReLU(), ir.Affine(scale=_random(2), bias=_random(2)),
                   ir.Flatten(), ir.Dense(weight=_random(3, 8)))
    fused, _ = _fused(graph, (2, 2, 2))
    assert _types(fused) == ["Input", "ReLU", "Flatten", "Dense"]


@pytest.mark.parametrize("padding,shift,foldable", [
    (0, True, True), (1, False, True), (1, True, False),
])
def test_affine_into_following_conv(padding: int, shift: bool, foldable: bool) -> None:
    graph = _chain((4, 5, 5), ir.ReLU(),
                   ir.Affine(scale=_random(4), bias=_random(4) if shift else np.zeros(1)),
                   ir.Conv2d(weight=_random(6, 2, 3, 3), bias=_random(6), groups=2,
                             padding=padding))
    fused, _ = _fused(graph, (4, 5, 5))
    expected = ["Input", "ReLU", "Conv2d"] if foldable else ["Input", "ReLU", "Affine", "Conv2d"]
    assert _types(fused) == expected


def test_transpose_flatten_dense_folds_into_columns() -> None:
    graph = _chain((2, 3, 4), ir.ReLU(), ir.Transpose(perm=(1, 2, 0)), ir.Flatten(),
                   ir.Dense(weight=_random(5, 24)))
    fused, _ = _fused(graph, (2, 3, 4))
    assert _types(fused) == ["Input", "ReLU", "Flatten", "Dense"]


def test_reshape_before_flatten_dropped() -> None:
    graph = _chain((2, 3, 4), ir.ReLU(), ir.Reshape(shape=(6, 4)), ir.Flatten())
    fused, _ = _fused(graph, (2, 3, 4))
    assert _types(fused) == ["Input", "ReLU", "Flatten"]


def test_transposes_compose_also_across_relu() -> None:
    graph = _chain((2, 3, 4), ir.Transpose(perm=(1, 2, 0)), ir.ReLU(), ir.Transpose(perm=(2, 0, 1)),
                   ir.Clip(low=0, high=1))
    fused, _ = _fused(graph, (2, 3, 4))
    assert _types(fused) == ["Input", "ReLU", "Clip"]
    graph = _chain((2, 3, 4), ir.Transpose(perm=(1, 2, 0)), ir.Transpose(perm=(1, 0, 2)))
    fused, _ = _fused(graph, (2, 3, 4))
    assert _types(fused) == ["Input", "Transpose"]
    assert fused.nodes[fused.output_name].perm == (2, 1, 0)


@pytest.mark.parametrize("consumer,merges", [
    (ir.Conv2d(weight=_random(3, 2, 3, 3), padding=(1, 0, 0, 1), stride=2), True),
    (ir.SumPool2d(kernel=2, stride=2, scale=0.25), True),
    (ir.MaxPool2d(kernel=2, stride=2), False),
])
def test_zero_padding_merges_into_conv_and_sum_pool(consumer: ir.Node, merges: bool) -> None:
    padding = ir.Conv2d(weight=np.ones((2, 1, 1, 1)), groups=2, padding=(1, 2, 1, 0))
    assert is_zero_padding(padding)
    graph = _chain((2, 5, 5), padding, consumer)
    fused, _ = _fused(graph, (2, 5, 5))
    assert len(fused.nodes) == (2 if merges else 3)
    if merges:
        assert fused.nodes[fused.output_name].padding[:2] == (1 + consumer.padding[0],
                                                              2 + consumer.padding[1])
