"""The accuracy ladder (snncc/stages.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snncc import ir
from snncc.datasets import Dataset
from snncc.engines import run_ann
from snncc.errors import SnnccError
from snncc.stages import (
    LadderReport,
    StageResult,
    accuracy_ladder,
    first_divergence,
    max_drop_failures,
    parse_max_drop,
    weight_memory_bytes,
)


def _dataset(graph: ir.Graph, count: int, seed: int) -> Dataset:
    """Random uint8 images labelled by the ANN itself (so the ANN scores 100%)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 1, 2, 4), dtype=np.uint8)
    labels = run_ann(graph, images.reshape(count, 8)).argmax(axis=1)
    return Dataset("digits", "test", images, labels)


@pytest.fixture
def mlp(tiny_mlp: ir.Graph) -> ir.Graph:
    """``tiny_mlp`` with output biases centring the logits, so every class occurs as a label."""
    graph = tiny_mlp.copy()
    images = _dataset(graph, 200, seed=9).images.reshape(200, 8)
    graph.nodes["fc2"].bias = -run_ann(graph, images).mean(axis=0)
    return graph


def _ladder(graph: ir.Graph, **kwargs) -> LadderReport:
    calibration = _dataset(graph, 200, seed=1).images.reshape(200, 8)
    return accuracy_ladder(graph, _dataset(graph, 120, seed=2), 32, calibration=calibration,
                           **kwargs)


def test_ladder_measures_every_stage(mlp):
    report = _ladder(mlp, options={"binarize": {"layers": ["fc1"]},
                                        "prune": {"sparsity": {"fc1": 0.5, "fc2": 0.5}}})
    assert [s.stage for s in report.stages] == ["ann", "convert", "binarize", "fold", "quantize",
                                                "prune"]
    assert [s.mode for s in report.stages] == ["ann", "float", "float", "integer", "integer",
                                               "integer"]
    assert report.stages[0].accuracy == 1.0
    for previous, rung in zip(report.stages, report.stages[1:], strict=False):
        assert rung.drop_pp == pytest.approx(100 * (previous.accuracy - rung.accuracy))
        assert rung.spikes_per_sample > 0 and rung.synops_per_sample > 0
        assert set(rung.layer_correlation) == {"relu1"}
    memory = [s.weight_memory_bytes for s in report.stages]
    assert memory[0] == memory[1] == (16 * 8 + 4 * 16) * 4  # float32
    assert memory[2] < memory[1]  # binarized: 1 bit per weight
    assert report.stage("prune").connectivity <= 0.55
    json.dumps(report.to_dict())  # JSON-serialisable


def test_divergence_is_named_when_a_stage_loses_accuracy(mlp):
    # 99% of the synapses gone without any repair: the ladder must point at the damaged layer
    assert len(np.unique(_dataset(mlp, 120, seed=2).labels)) >= 3
    report = _ladder(mlp, stages=["convert", "prune"],
                     options={"prune": {"sparsity": 0.95, "reconstruct": False,
                                        "recalibrate": False, "criterion": "magnitude",
                                        "layers": ["fc1"]}})
    prune_stage = report.stage("prune")
    assert prune_stage.drop_pp > 0.1
    assert prune_stage.diverges_at == "relu1"
    assert prune_stage.layer_correlation["relu1"] < 0.9


def test_first_divergence_prefers_the_earliest_layer_below_the_bar(tiny_cnn):
    graph = tiny_cnn
    assert first_divergence({"relu1": 0.95, "relu2": 0.5}, graph, 0.9) == "relu2"
    assert first_divergence({"relu1": 0.7, "relu2": 0.5}, graph, 0.9) == "relu1"
    assert first_divergence({"relu1": 0.97, "relu2": 0.95}, graph, 0.9) == "relu2"


def _report(drops: dict[str, float]) -> LadderReport:
    stages = [StageResult(stage=name, mode="float", accuracy=0.9, drop_pp=drop,
                          spikes_per_sample=1.0, synops_per_sample=1.0, weight_memory_bytes=1,
                          connectivity=1.0, diverges_at="conv2" if drop > 0.1 else None)
              for name, drop in drops.items()]
    return LadderReport(model="m", dataset="mnist", samples=10, timesteps=8, stages=stages)


def test_max_drop_gates():
    report = _report({"convert": 0.05, "quantize": 0.4})
    assert max_drop_failures(report, {"convert": 0.1}) == []
    failures = max_drop_failures(report, {"convert": 0.1, "quantize": 0.1})
    assert failures == ["stage 'quantize' lost 0.40 pp of accuracy (limit 0.1 pp); first diverges "
                        "at layer 'conv2'"]
    with pytest.raises(SnnccError, match="no stage 'prune' in this ladder"):
        max_drop_failures(report, {"prune": 1})


@pytest.mark.parametrize("items, message", [
    (["quantize"], "expected STAGE=PP"),
    (["quantize=lots"], "'lots' is not a number"),
    (["quantize=-1"], "must be >= 0"),
])
def test_parse_max_drop(items, message):
    assert parse_max_drop(["quantize=0.1", "prune = 0.5"]) == {"quantize": 0.1, "prune": 0.5}
    with pytest.raises(SnnccError, match=message):
        parse_max_drop(items)


def test_unknown_stage_is_an_error(tiny_mlp):
    with pytest.raises(SnnccError, match="unknown stage 'shrink'"):
        _ladder(tiny_mlp, stages=["convert", "shrink"])


def test_weight_memory_rules():
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(100,))),
                ("fc", ir.Dense(weight=np.ones((10, 100)))),
                ("if", ir.IF()), ("out", ir.Dense(weight=np.ones((2, 10)))), ("readout", ir.Readout()))
    assert weight_memory_bytes(graph) == (1000 + 20) * 4
    graph.metadata["binarize"] = {"layers": {"fc": {}}}
    assert weight_memory_bytes(graph) == 1000 // 8 + 20 * 4
    integer = graph.copy()
    integer.nodes["fc"].weight = np.full((10, 100), 100, np.int64)  # 8-bit signed
    integer.nodes["out"].weight = np.ones((2, 10), np.int64)
    assert weight_memory_bytes(integer) == (1000 * 8 + 20 * 2) // 8
    integer.quantization = ir.Quantization("generic", 4, {"fc": ir.LayerQuantization(0, 4),
                                                         "out": ir.LayerQuantization(0, 4)})
    assert weight_memory_bytes(integer) == (1000 * 4 + 20 * 4) // 8
    integer.nodes["fc"].weight[:, 1:] = 0  # 10 nonzero of 1000: sparse (4 + 7 index bits) wins
    assert weight_memory_bytes(integer) == int(np.ceil((10 * (4 + 7) + 20 * 4) / 8))


@pytest.mark.slow
def test_ladder_on_the_mnist_mlp_fixture(models_dir, data_dir):
    report = accuracy_ladder(models_dir / "mnist_mlp.onnx", "mnist", 32, data_dir=data_dir,
                             limit=300, stages=["convert", "fold", "quantize"],
                             calibration_count=500)
    assert report.stages[0].accuracy >= 0.97  # onnxruntime
    assert report.stage("quantize").accuracy >= report.stage("convert").accuracy - 0.01
