"""The .bstdg.h5 format: exact round trip, IR import, one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from snncc import ir
from snncc.engines import simulate
from snncc.engines.ttfs import is_ttfs_graph, simulate_ttfs
from snncc.errors import SnnccError
from snncc.frontend.bstdg import BSTDGModel, load_bstdg, read_bstdg, write_bstdg


def small_model(seed: int = 0) -> BSTDGModel:
    rng = np.random.default_rng(seed)
    return BSTDGModel(
        weights=[rng.choice(np.array([-1, 1], np.int8), (12, 16)),
                 rng.choice(np.array([-1, 0, 1], np.int8), (3, 12))],
        thresholds=[np.array([3]), np.array([2])],
        t_max=16,
        input_shape=(1, 4, 4),
        metadata={"dataset": "digits", "epochs": 2, "seed": seed, "test_accuracy": 0.5,
                  "hyperparameters": {"hidden": [12], "margin": 0.05}, "note": ""},
    )


def write_file(tmp_path: Path, model: BSTDGModel | None = None) -> Path:
    return write_bstdg(model or small_model(), tmp_path / "net.bstdg.h5")


def test_round_trip_is_exact(tmp_path: Path) -> None:
    model = small_model()
    back = read_bstdg(write_file(tmp_path, model))
    assert back.t_max == model.t_max and back.input_shape == model.input_shape
    assert back.input_scale == model.input_scale
    assert back.metadata == model.metadata
    for original, loaded in zip(model.weights + model.thresholds, back.weights + back.thresholds, strict=True):
        assert loaded.dtype == original.dtype
        np.testing.assert_array_equal(loaded, original)
    again = read_bstdg(write_bstdg(back, tmp_path / "again.bstdg.h5"))
    assert again.metadata == back.metadata
    np.testing.assert_array_equal(again.weights[0], model.weights[0])


def test_load_builds_the_integer_ttfs_graph(tmp_path: Path) -> None:
    graph = load_bstdg(write_file(tmp_path))
    kinds = [type(graph.nodes[n]).__name__ for n in graph.topological_order()]
    assert kinds == ["Input", "Flatten", "Dense", "IF", "Dense", "Readout"]
    graph.validate(integer=True)
    assert is_ttfs_graph(graph)
    source = graph.input
    assert source.coding == "latency" and source.t_max == 16 and source.shape == (1, 4, 4)
    hidden = graph.nodes["hidden1"]
    assert hidden.fire_once and hidden.reset == "zero" and hidden.threshold.dtype.kind == "i"
    assert graph.nodes["dense1"].bias is None
    assert graph.nodes["readout"].mode == "first_spike"
    assert graph.metadata["dataset"] == "digits"
    raw = np.random.default_rng(0).integers(0, 256, (20, 1, 4, 4)).astype(np.uint8)
    step = simulate(graph, raw, timesteps=16, mode="integer")
    np.testing.assert_array_equal(simulate_ttfs(graph, raw).predictions, step.predictions)
    # the graph survives the IR's own save/load
    reloaded = ir.Graph.load(graph.save(tmp_path / "graph.npz"))
    np.testing.assert_array_equal(reloaded.nodes["dense1"].weight, graph.nodes["dense1"].weight)


def test_write_is_atomic_and_checks_the_model(tmp_path: Path) -> None:
    model = small_model()
    model.weights[0] = model.weights[0].astype(np.int64) * 2
    with pytest.raises(SnnccError, match="layer 0: weights must be -1, 0 or \\+1"):
        write_bstdg(model, tmp_path / "bad.bstdg.h5")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SnnccError, match="does not exist"):
        write_bstdg(small_model(), tmp_path / "missing" / "net.bstdg.h5")


def _edit(path: Path, action) -> Path:
    with h5py.File(path, "r+") as handle:
        action(handle)
    return path


def _replace(handle: h5py.File, key: str, data: np.ndarray) -> None:
    del handle[key]
    handle[key] = data


@pytest.mark.parametrize("action, message", [
    (lambda h: h.attrs.__setitem__("format", "netx"), "not a BSTDG file"),
    (lambda h: h.attrs.__setitem__("version", 7), "version 7 is not supported"),
    (lambda h: h.attrs.__setitem__("coding", "rate"), "unsupported input coding"),
    (lambda h: h.attrs.__delitem__("t_max"), "missing attribute 't_max'"),
    (lambda h: h.attrs.__setitem__("t_max", 1), "t_max must be >= 2"),
    (lambda h: _replace(h, "layers/0/weight", np.full((12, 16), np.nan)), "layer 0: weight "
     "contains NaN"),
    (lambda h: _replace(h, "layers/1/weight", np.ones((3, 11), np.int8)), "layer 1: weight has 11 "
     "inputs but the previous layer has 12"),
    (lambda h: _replace(h, "layers/0/weight", np.ones((12, 15), np.int8)), "layer 0: weight has 15 "
     "inputs but the previous layer has 16"),
    (lambda h: _replace(h, "layers/0/threshold", np.array([0])), "thresholds must be >= 1"),
    (lambda h: _replace(h, "layers/0/threshold", np.array([2.5])), "thresholds must be integers"),
    (lambda h: _replace(h, "layers/0/threshold", np.array([np.nan])), "threshold contains NaN"),
    (lambda h: _replace(h, "layers/0/threshold", np.ones(5, np.int64)), "5 thresholds for 12"),
    (lambda h: h.__delitem__("layers/1/threshold"), "layer 1 has no 'threshold'"),
    (lambda h: h.__delitem__("layers"), "missing group 'layers'"),
])
def test_bad_files_give_one_line_errors(tmp_path: Path, action, message: str) -> None:
    path = _edit(write_file(tmp_path), action)
    with pytest.raises(SnnccError, match=message) as error:
        load_bstdg(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_corrupt_truncated_and_missing_files(tmp_path: Path) -> None:
    path = write_file(tmp_path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.bstdg.h5"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.bstdg.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    for bad in (truncated, garbage):
        with pytest.raises(SnnccError, match="corrupt or truncated") as error:
            read_bstdg(bad)
        assert "\n" not in str(error.value)
    with pytest.raises(SnnccError, match="no such file"):
        read_bstdg(tmp_path / "absent.bstdg.h5")


def test_example_network_reproduces_its_recorded_accuracy(data_dir: Path) -> None:
    from snncc.datasets import load_dataset

    example = Path(__file__).resolve().parents[2] / "examples" / "mnist_784_600_10.bstdg.h5"
    model = read_bstdg(example)
    graph = load_bstdg(example)
    test = load_dataset("mnist", "test", data_dir)
    result = simulate_ttfs(graph, test.images, labels=test.labels)
    assert result.accuracy == pytest.approx(model.metadata["test_accuracy"], abs=1e-12)
    step = simulate(graph, test.images[:20], timesteps=model.t_max, mode="integer")
    np.testing.assert_array_equal(step.predictions, result.predictions[:, :20])
