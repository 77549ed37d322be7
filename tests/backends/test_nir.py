"""--target nir: NIR written through the nir package, read back by nir.read and snncc's import."""

from __future__ import annotations

import subprocess
import sys

import nir
import numpy as np
import pytest

from snncc import engines, ir
from snncc.backends.nir import time_constant, write_nir
from snncc.datasets import load_dataset
from snncc.errors import SnnccError
from snncc.frontend.nir_import import load_nir
from snncc.pipeline import load_model, model_inputs, prepare

FIXTURES = ["snntorch_mnist_mlp_lif", "snntorch_fashion_mlp_if", "snntorch_mnist_cnn_lif"]


def assert_same_ir(original: ir.Graph, imported: ir.Graph) -> None:
    """Same node names, types, inputs, fields and arrays (values and dtypes)."""
    assert set(original.nodes) == set(imported.nodes)
    for name, node in original.nodes.items():
        other = imported.nodes[name]
        assert type(node) is type(other), name
        assert original.inputs_of(name) == imported.inputs_of(name), name
        for field in node.__dataclass_fields__:
            mine, theirs = getattr(node, field), getattr(other, field)
            if isinstance(mine, np.ndarray):
                assert mine.dtype == theirs.dtype, (name, field)
                np.testing.assert_array_equal(mine, theirs, err_msg=f"{name}.{field}")
            else:
                assert mine == theirs, (name, field, mine, theirs)


def round_trip(graph: ir.Graph, tmp_path, **options) -> ir.Graph:
    path = write_nir(graph, tmp_path / "network.nir", **options)
    nir.read(path, type_check=True)  # the nir package itself accepts and type-checks it
    return load_nir(path)


def assert_identical_spikes(first: ir.Graph, second: ir.Graph, raw: np.ndarray,
                            timesteps: int) -> None:
    a = engines.run(first, raw, timesteps, record=True)
    b = engines.run(second, raw, timesteps, record=True)
    assert set(a.rasters) == set(b.rasters)
    for name, raster in a.rasters.items():
        np.testing.assert_array_equal(raster, b.rasters[name], err_msg=name)
    np.testing.assert_array_equal(a.predictions, b.predictions)


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_round_trip_same_ir_identical_spikes(name, nir_dir, data_dir, tmp_path):
    graph = load_model(nir_dir / f"{name}.nir")
    back = round_trip(graph, tmp_path, convention="snntorch")
    assert back.metadata["nir_convention"] == "snntorch"
    assert_same_ir(graph, back)
    test = load_dataset(graph.metadata["dataset"], "test", data_dir).take(1000)
    assert_identical_spikes(graph, back, model_inputs(graph, test), 25)


@pytest.fixture(scope="module")
def mnist_mlp_zero(models_dir, data_dir) -> ir.Graph:
    """mnist_mlp converted for reset to zero: the loihi2-netx profile's reset_zero pass (IF
    neurons reset to zero from 0, as NIR's neurons do, bias-corrected at T = 32)."""
    source = load_model(models_dir / "mnist_mlp.onnx")
    graph, _ = prepare(source, ["convert", "reset_zero"], dataset="mnist",
                       data_dir=str(data_dir), timesteps=32, calibration_count=500)
    return graph


def test_mnist_mlp_reset_zero_round_trip(mnist_mlp_zero, data_dir, tmp_path):
    back = round_trip(mnist_mlp_zero, tmp_path)
    assert back.metadata["nir_convention"] == "spec" and back.metadata["nir_dt"] == 1.0
    assert_same_ir(mnist_mlp_zero, back)  # IF nodes come back as IF (comparison >= in metadata)
    test = load_dataset("mnist", "test", data_dir).take(1000)
    assert_identical_spikes(mnist_mlp_zero, back, model_inputs(mnist_mlp_zero, test), 32)


def test_integer_graph_round_trip(mnist_mlp_zero, data_dir, tmp_path):
    integer, _ = prepare(mnist_mlp_zero, ["fold", "quantize"], dataset="mnist",
                         data_dir=str(data_dir), timesteps=32)
    back = round_trip(integer, tmp_path)
    assert back.is_integer()
    assert_same_ir(integer, back)


def test_leaky_integer_round_trip_exact_decays(tmp_path):
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(5,))),
                ("fc", ir.Dense(weight=np.arange(15).reshape(3, 5) - 7, bias=np.ones(3, int))),
                ("cuba", ir.CubaLIF(threshold=np.array([9, 7, 5]), du=np.array([49, 93, 4096]),
                                    dv=np.array([0, 98, 4095]))),
                ("fc2", ir.Dense(weight=np.eye(3, dtype=np.int64))),
                ("readout", ir.Readout(dv=103)))
    back = round_trip(graph, tmp_path)
    assert_same_ir(graph, back)


def test_time_constants_invert_exactly():
    decays = np.concatenate([np.arange(0, 4097), np.random.default_rng(0).uniform(0, 4096, 500)])
    for dt in (1.0, 1e-4, 1e-3):
        tau = time_constant(decays, dt)
        back = (4096 * dt) / tau
        np.testing.assert_allclose(back, decays, rtol=4e-16, atol=0)  # exact or one ulp off
        np.testing.assert_array_equal(np.rint(back[:4097]), decays[:4097])


@pytest.mark.parametrize("change, message", [
    (lambda g: setattr(g.nodes["if"], "reset", "subtract"), "reset by subtraction"),
    (lambda g: setattr(g.nodes["if"], "v_init", np.array([1.0])), "v_init"),
    (lambda g: setattr(g.nodes["if"], "fire_once", True), "fire-once"),
    (lambda g: setattr(g.nodes["readout"], "mode", "first_spike"), "first-spike"),
])
def test_refusals_are_one_line(change, message, tmp_path):
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(4,))), ("fc", ir.Dense(weight=np.ones((3, 4)))),
                ("if", ir.IF(threshold=np.ones(1), reset="zero")),
                ("fc2", ir.Dense(weight=np.ones((2, 3)))), ("readout", ir.Readout()))
    change(graph)
    with pytest.raises(SnnccError, match=message) as caught:
        write_nir(graph, tmp_path / "x.nir")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "x.nir").exists()


def test_cli_refuses_subtract_reset_with_exit_2(models_dir, data_dir, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "snncc", "compile",
                           str(models_dir / "mnist_mlp.onnx"), "--target", "nir", "-o", str(out),
                           "--data-dir", str(data_dir)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "has no NIR form" in done.stderr and done.stderr.strip().count("\n") == 0
    assert not out.exists()
