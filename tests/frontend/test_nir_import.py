"""NIR import: the producer conventions, the shared snnTorch fixtures, and bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest

from snncc import engines, ir
from snncc.datasets import load_dataset
from snncc.errors import SnnccError
from snncc.frontend.nir_import import describe_convention, load_nir
from snncc.pipeline import load_model, model_inputs

FIXTURES = ["snntorch_mnist_mlp_lif", "snntorch_fashion_mlp_if", "snntorch_mnist_cnn_lif"]


def write_graph(path: Path, nodes: dict, edges: list, metadata: dict | None = None) -> Path:
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata or {}, type_check=False)
    nir.write(path, graph)
    return path


def small_lif_file(path: Path, *, tau: float = 1e-3, r: float | None = None, v_reset=0.0,
                   v_leak=0.0, metadata: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    r = tau / 1e-3 if r is None else r
    nodes = {
        "in": nir.Input(input_type=np.array([4])),
        "fc": nir.Affine(weight=rng.normal(size=(3, 4)), bias=np.zeros(3)),
        "lif": nir.LIF(tau=np.full(3, tau), r=np.full(3, r), v_leak=np.full(3, v_leak),
                       v_threshold=np.ones(3), v_reset=np.full(3, v_reset)),
        "out": nir.Output(output_type=np.array([3])),
    }
    return write_graph(path, nodes, [("in", "fc"), ("fc", "lif"), ("lif", "out")], metadata)


# ------------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_agrees_with_snntorch_on_first_1000(name, nir_dir, data_dir):
    graph = load_model(nir_dir / f"{name}.nir")
    assert graph.metadata["nir_convention"] == "snntorch"  # from the sidecar's producer
    reference = np.load(nir_dir / f"{name}.npz")
    test = load_dataset(graph.metadata["dataset"], "test", data_dir).take(1000)
    result = engines.run(graph, model_inputs(graph, test), int(graph.metadata["timesteps"]))
    agreement = np.mean(result.predictions[-1] == reference["pred"])
    assert agreement >= 0.995
    # snnTorch's update replayed: the output spike counts themselves agree
    assert np.mean(np.all(result.readout_state == reference["counts"], axis=1)) >= 0.995


@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_full_test_accuracy_within_0_2_pp(name, nir_dir, data_dir):
    graph = load_model(nir_dir / f"{name}.nir")
    test = load_dataset(graph.metadata["dataset"], "test", data_dir)
    result = engines.run(graph, model_inputs(graph, test), int(graph.metadata["timesteps"]),
                         labels=test.labels)
    assert abs(result.accuracy - graph.metadata["producer_test_accuracy"]) <= 0.002


def test_fixture_read_literally_disagrees(nir_dir, data_dir):
    # the trap the issue measured: the IF file read by the NIR equations (reset to v_reset in the
    # spiking step) is a different network from what snnTorch executed
    graph = load_model(nir_dir / "snntorch_fashion_mlp_if.nir", nir={"convention": "spec",
                                                                     "dt": 1e-4})
    assert graph.nodes["2"].reset == "zero"
    reference = np.load(nir_dir / "snntorch_fashion_mlp_if.npz")
    test = load_dataset("fashion-mnist", "test", data_dir).take(200)
    result = engines.run(graph, model_inputs(graph, test), 25)
    same_counts = np.all(result.readout_state == reference["counts"][:200], axis=1)
    assert np.mean(same_counts) < 0.5


def test_fixture_import_is_snntorch_update(nir_dir):
    graph = load_nir(nir_dir / "snntorch_mnist_mlp_lif.nir")
    lif = graph.nodes["2"]
    assert isinstance(lif, ir.LIF)
    assert (lif.reset, lif.reset_delay, lif.comparison) == ("subtract", True, ">")
    np.testing.assert_allclose(1 - lif.dv / 4096, 0.9, rtol=1e-6)
    assert graph.input.coding == "direct" and graph.input.scale == pytest.approx(1 / 255)
    assert graph.metadata["timesteps"] == 25
    assert "snntorch" in describe_convention(graph)
    assert "sidecar" in graph.metadata["nir_convention_source"]


# ---------------------------------------------------------------------------- conventions


def test_conventions_discretise_differently(tmp_path):
    path = small_lif_file(tmp_path / "n.nir", tau=2e-3, r=2.0)  # r = tau/dt with dt = 1e-3
    spec = load_nir(path, convention="spec", dt=1e-3)
    assert spec.nodes["lif"].dv[0] == pytest.approx(2048)  # dt/tau = 1/2
    assert "lif:gain" not in spec.nodes  # gain r*dt/tau = 1
    norse = load_nir(path, convention="norse")  # Norse's dt = 1e-3
    assert norse.nodes["lif"].dv[0] == pytest.approx(2048)
    assert norse.nodes["lif"].reset == "zero" and not norse.nodes["lif"].reset_delay
    torch = load_nir(path, convention="snntorch")  # dt = 1e-4: beta = 0.95, gain 0.1
    assert torch.nodes["lif"].dv[0] == pytest.approx(204.8)
    assert torch.nodes["lif"].reset_delay
    np.testing.assert_allclose(torch.nodes["lif:gain"].scale, 0.1)


def test_spec_needs_a_time_step(tmp_path):
    path = small_lif_file(tmp_path / "n.nir")
    with pytest.raises(SnnccError, match="--nir-dt"):
        load_nir(path)  # no producer, no dt: spec, which needs dt
    graph = load_nir(small_lif_file(tmp_path / "m.nir", metadata={"dt": 1e-3}))
    assert graph.metadata["nir_dt"] == 1e-3


def test_nonzero_v_reset_and_leak_become_a_shifted_membrane(tmp_path):
    path = small_lif_file(tmp_path / "n.nir", tau=4e-3, v_reset=-0.5, v_leak=0.25)
    graph = load_nir(path, convention="norse")
    lif = graph.nodes["lif"]
    np.testing.assert_allclose(lif.threshold, 1.5)  # v_th - v_reset
    np.testing.assert_allclose(lif.v_init, 0.5)
    np.testing.assert_allclose(graph.nodes["lif:gain"].bias, 0.25 * (0.25 + 0.5))


def test_li_readout_and_fan_in_sum(tmp_path):
    rng = np.random.default_rng(1)
    nodes = {
        "in": nir.Input(input_type=np.array([4])),
        "a": nir.Linear(weight=rng.normal(size=(3, 4))),
        "b": nir.Linear(weight=rng.normal(size=(3, 4))),
        "li": nir.LI(tau=np.full(3, 4e-3), r=np.full(3, 4.0), v_leak=np.zeros(3)),
        "out": nir.Output(output_type=np.array([3])),
    }
    edges = [("in", "a"), ("in", "b"), ("a", "li"), ("b", "li"), ("li", "out")]
    graph = load_nir(write_graph(tmp_path / "li.nir", nodes, edges), convention="norse")
    assert isinstance(graph.nodes["li:sum"], ir.Add)
    assert isinstance(graph.nodes["li"], ir.Readout) and graph.nodes["li"].dv == 1024
    assert graph.output_name == "li"


def test_rate_and_latency_coding(tmp_path):
    path = small_lif_file(tmp_path / "n.nir", metadata={"dt": 1e-3})
    assert load_nir(path, coding="rate").input.coding == "rate"
    assert load_nir(path, coding="latency").input.coding == "latency"


# ------------------------------------------------------------------------------ bad input


def _bad_files(tmp_path: Path, nir_dir: Path) -> dict[str, tuple[Path, str]]:
    good = (nir_dir / "snntorch_mnist_mlp_lif.nir").read_bytes()
    files: dict[str, tuple[Path, str]] = {}
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good[: len(good) // 2])
    files["truncated"] = (truncated, "corrupt or truncated")
    corrupt = tmp_path / "corrupt.nir"
    corrupt.write_bytes(good[:8] + bytes(64) + good[72:])
    files["corrupt"] = (corrupt, "corrupt or truncated")
    text = tmp_path / "text.nir"
    text.write_text("not a network\n")
    files["not hdf5"] = (text, "not a NIR file")
    other = tmp_path / "other.nir"
    with h5py.File(other, "w") as handle:
        handle.create_dataset("weights", data=np.ones(3))
    files["hdf5, not nir"] = (other, "not a NIR file")
    version = tmp_path / "version.nir"
    small_lif_file(version)
    with h5py.File(version, "r+") as handle:
        del handle["version"]
        handle.create_dataset("version", data="7.1.0", dtype=h5py.string_dtype())
    files["unknown version"] = (version, "version '7.1.0' is not supported")
    files["nan tau"] = (small_lif_file(tmp_path / "nan.nir", tau=float("nan"),
                                       metadata={"dt": 1e-3}), "tau is NaN")
    files["negative tau"] = (small_lif_file(tmp_path / "neg.nir", tau=-1e-3, r=1.0,
                                            metadata={"dt": 1e-3}), "must be > 0")
    rng = np.random.default_rng(0)
    mismatch = write_graph(tmp_path / "mismatch.nir", {
        "in": nir.Input(input_type=np.array([4])),
        "fc": nir.Affine(weight=rng.normal(size=(3, 5)), bias=np.zeros(3)),
        "out": nir.Output(output_type=np.array([3]))}, [("in", "fc"), ("fc", "out")])
    files["shape mismatch"] = (mismatch, "edge into node 'fc'")
    cycle = write_graph(tmp_path / "cycle.nir", {
        "in": nir.Input(input_type=np.array([3])),
        "a": nir.Linear(weight=np.eye(3)), "b": nir.Linear(weight=np.eye(3)),
        "out": nir.Output(output_type=np.array([3]))},
        [("in", "a"), ("a", "b"), ("b", "a"), ("b", "out")])
    files["cycle"] = (cycle, "recurrent edges")
    delay = write_graph(tmp_path / "delay.nir", {
        "in": nir.Input(input_type=np.array([3])), "d": nir.Delay(delay=np.ones(3)),
        "out": nir.Output(output_type=np.array([3]))}, [("in", "d"), ("d", "out")])
    files["delay"] = (delay, "node 'd' (Delay)")
    linked = tmp_path / "linked.nir"
    small_lif_file(linked, metadata={"dt": 1e-3})
    with h5py.File(linked, "r+") as handle:
        handle["node/nodes/fc/extra"] = h5py.ExternalLink(str(tmp_path / "secret.h5"), "/x")
    files["external link"] = (linked, "external link")
    external = tmp_path / "external.nir"
    small_lif_file(external, metadata={"dt": 1e-3})
    (tmp_path / "raw.bin").write_bytes(np.zeros(3).tobytes())
    with h5py.File(external, "r+") as handle:
        del handle["node/nodes/fc/bias"]
        handle.create_dataset("node/nodes/fc/bias", shape=(3,), dtype="<f8",
                              external=[(str(tmp_path / "raw.bin"), 0, 24)])
    files["external storage"] = (external, "external file")
    return files


def test_bad_input_raises_one_line(tmp_path, nir_dir):
    for what, (path, message) in _bad_files(tmp_path, nir_dir).items():
        with pytest.raises(SnnccError) as caught:
            load_model(path)
        text = str(caught.value)
        assert message in text, (what, text)
        assert "\n" not in text, what


def test_bad_input_cli_exit_2_and_nothing_written(tmp_path, nir_dir):
    for what, (path, _) in _bad_files(tmp_path, nir_dir).items():
        out = tmp_path / f"out-{path.stem}"
        done = subprocess.run([sys.executable, "-m", "snncc", "compile", str(path), "--target",
                               "nir", "-o", str(out)], capture_output=True, text=True)
        assert done.returncode == 2, (what, done.stderr)
        assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr, what
        assert not out.exists(), what


def test_inspect_prints_the_convention(nir_dir):
    done = subprocess.run([sys.executable, "-m", "snncc", "inspect",
                           str(nir_dir / "snntorch_mnist_mlp_lif.nir")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "NIR convention snntorch" in done.stdout
    done = subprocess.run([sys.executable, "-m", "snncc", "inspect", "--nir-convention", "norse",
                           str(nir_dir / "snntorch_mnist_mlp_lif.nir")],
                          capture_output=True, text=True)
    assert "NIR convention norse (chosen with --nir-convention)" in done.stdout


def test_conv1d_scale_and_pooling_match_their_definitions(tmp_path):
    rng = np.random.default_rng(2)
    weight = rng.normal(size=(3, 2, 3))
    nodes = {
        "in": nir.Input(input_type=np.array([2, 9])),
        "conv": nir.Conv1d(input_shape=9, weight=weight, stride=2, padding=1, dilation=1,
                           groups=1, bias=np.array([0.5, 0.0, -0.5])),
        "flat": nir.Flatten(input_type={"input": np.array([3, 5])}, start_dim=0, end_dim=-1),
        "scale": nir.Scale(scale=np.full(15, 2.0)),
        "out": nir.Output(output_type=np.array([15])),
    }
    edges = [("in", "conv"), ("conv", "flat"), ("flat", "scale"), ("scale", "out")]
    graph = load_nir(write_graph(tmp_path / "c.nir", nodes, edges), convention="spec", dt=1.0)
    x = rng.normal(size=(4, 2, 9))
    got = engines.run_ann(graph, x)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    expected = np.stack([np.einsum("ncl,ocl->no", padded[:, :, 2 * j:2 * j + 3], weight)
                         for j in range(5)], axis=2) + np.array([0.5, 0.0, -0.5])[None, :, None]
    np.testing.assert_allclose(got, 2.0 * expected.reshape(4, -1), rtol=1e-10)
