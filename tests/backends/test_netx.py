"""netx HDF5 files: written from the IR, read back with h5py, linted for the known bug classes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from snncc import ir
from snncc.backends import netx
from snncc.errors import SnnccError


def conv_net(seed: int = 0) -> ir.Graph:
    """Conv -> IF (reset zero, one threshold) -> Flatten -> Dense -> IF -> Dense -> Readout."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 6, 5), coding="rate", scale=1 / 255)),
        ("conv", ir.Conv2d(weight=rng.integers(-128, 128, (3, 2, 3, 2)), padding=1,
                           bias=rng.integers(-9, 9, 3))),
        ("if1", ir.IF(threshold=np.array([100]), v_init=np.array([0]), reset="zero")),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=2 * rng.integers(-128, 128, (7, 3 * 6 * 6)))),
        ("if2", ir.IF(threshold=np.array([300]), v_init=np.array([0]), reset="zero")),
        ("fc2", ir.Dense(weight=rng.integers(-100, 100, (4, 7)), bias=rng.integers(-9, 9, 4))),
        ("readout", ir.Readout()),
    )
    return graph


@pytest.fixture
def netx_file(tmp_path):
    graph = conv_net()
    return graph, netx.write_netx(graph, tmp_path / "net.net")


def test_written_file_reads_back_as_the_ir(netx_file):
    graph, path = netx_file
    with h5py.File(path, "r") as handle:
        layers = handle["layer"]
        assert sorted(layers, key=int) == [str(i) for i in range(5)]
        types = [layers[str(i)]["type"][0].decode() for i in range(5)]
        assert types == ["input", "conv", "flatten", "dense", "dense"]
        assert layers["1/weight"].dtype == np.float32
    layers = netx.read_netx(path)
    assert [layer["type"] for layer in layers] == ["input", "conv", "flatten", "dense", "dense"]
    assert tuple(layers[0]["shape"]) == (2, 6, 5)
    conv = layers[1]
    np.testing.assert_array_equal(conv["weight"], graph.nodes["conv"].weight)
    np.testing.assert_array_equal(conv["bias"], graph.nodes["conv"].bias)
    assert tuple(conv["shape"]) == (3, 6, 6)
    assert tuple(conv["padding"]) == (1, 1) and tuple(conv["stride"]) == (1, 1)
    assert conv["neuron"]["type"] == "CUBA"
    assert conv["neuron"]["vThMant"] == 99  # LIF fires on v > vth, the IR on v >= threshold
    assert conv["neuron"]["iDecay"] == 4096 and conv["neuron"]["vDecay"] == 0
    np.testing.assert_array_equal(layers[3]["weight"], graph.nodes["fc1"].weight)
    assert layers[3]["neuron"]["vThMant"] == 299
    np.testing.assert_array_equal(layers[4]["weight"], graph.nodes["fc2"].weight)
    assert layers[4]["neuron"]["vThMant"] == netx.READOUT_VTH


def test_clean_file_lints_clean(netx_file):
    graph, path = netx_file
    assert netx.lint_netx(path) == []
    assert netx.lint_netx(path, graph) == []


def _rewrite(path, layer: int, key: str, value) -> None:
    with h5py.File(path, "r+") as handle:
        group = handle[f"layer/{layer}"]
        del group[key]
        group.create_dataset(key, data=value)


@pytest.mark.parametrize("layer, key, value, message", [
    (3, "weight", None, "outside netx's"),  # 255 in a mixed-sign layer
    (4, "weight", None, "odd weights"),
    (1, "neuron/vThMant", np.int64(131072), "vThMant 131072"),
    (1, "neuron/iDecay", np.int64(5000), "iDecay 5000"),
    (3, "delay", np.full(7, 63), "delay 63 beyond 62"),
    (1, "bias", np.array([5000.0, 0, 0]), "13-bit"),
])
def test_lint_catches_known_bug_classes(netx_file, layer, key, value, message):
    graph, path = netx_file
    if key == "weight" and layer == 3:
        value = np.asarray(graph.nodes["fc1"].weight, dtype=np.float32).copy()
        value[0, 0] = 255
    elif key == "weight":
        value = np.asarray(graph.nodes["fc2"].weight, dtype=np.float32).copy()
        value[0, 0] = 201
    if key == "delay":
        with h5py.File(path, "r+") as handle:
            handle[f"layer/{layer}"].create_dataset("delay", data=value)
    else:
        _rewrite(path, layer, key, value)
    problems = netx.lint_netx(path)
    assert any(message in p and f"layer {layer}" in p for p in problems), problems


def test_lint_names_flipped_and_channels_last_conv_kernels(netx_file):
    graph, path = netx_file
    weight = np.asarray(graph.nodes["conv"].weight, dtype=np.float32)
    _rewrite(path, 1, "weight", weight[:, :, ::-1, ::-1])
    assert any("stored flipped" in p for p in netx.lint_netx(path, graph))
    _rewrite(path, 1, "weight", weight.transpose(0, 2, 3, 1))
    assert any("channels-last" in p for p in netx.lint_netx(path))


def test_lint_names_hwc_flatten_order_and_missing_flatten(netx_file):
    graph, path = netx_file
    weight = np.asarray(graph.nodes["fc1"].weight, dtype=np.float32)
    hwc = weight.reshape(7, 3, 6, 6).transpose(0, 2, 3, 1).reshape(7, -1)
    _rewrite(path, 3, "weight", hwc)
    assert any("HWC flatten order" in p for p in netx.lint_netx(path, graph))
    with h5py.File(path, "r+") as handle:
        handle.copy(handle["layer/3"], "layer/5")
        handle.copy(handle["layer/1"], "layer/6")
        handle.copy(handle["layer/5"], "layer/7")
    assert any(p.startswith("layer 7: dense layer after a conv map without a flatten")
               for p in netx.lint_netx(path))
    with h5py.File(path, "r+") as handle:
        del handle["layer/2"]
    with pytest.raises(SnnccError, match="not numbered"):
        netx.lint_netx(path)


def test_lint_rejects_a_file_that_is_not_netx(tmp_path):
    path = tmp_path / "junk.net"
    path.write_bytes(b"not hdf5")
    with pytest.raises(SnnccError, match="cannot read netx"):
        netx.lint_netx(path)
    with h5py.File(tmp_path / "empty.net", "w"):
        pass
    with pytest.raises(SnnccError, match="no /layer group"):
        netx.read_netx(tmp_path / "empty.net")


@pytest.mark.parametrize("change, reason", [
    (lambda g: setattr(g.nodes["if1"], "reset", "subtract"), "reset by subtraction"),
    (lambda g: setattr(g.nodes["if2"], "fire_once", True), "fire-once"),
    (lambda g: setattr(g.nodes["if1"], "threshold", np.array([100, 90, 80])), "per-neuron"),
    (lambda g: setattr(g.nodes["if2"], "v_init", np.array([5])), "v_init"),
    (lambda g: g.insert_after("if1", "pool", ir.MaxPool2d(kernel=2, stride=2)), "max pooling"),
    (lambda g: g.insert_after("if1", "pool", ir.SumPool2d(kernel=2, stride=2)), "average pool"),
    (lambda g: g.nodes["fc2"].weight.__setitem__((0, 0), 301), "outside netx"),
])
def test_inexpressible_parts_are_named_and_nothing_is_written(tmp_path, change, reason):
    graph = conv_net()
    change(graph)
    problems = netx.inexpressible(graph)
    assert any(reason in p for p in problems), problems
    with pytest.raises(SnnccError, match="netx cannot express"):
        netx.write_netx(graph, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def test_netx_round_trip_runs_in_lava_dl_spike_for_spike(netx_file):
    """lava-dl's own loader builds the network; with ``reset_interval`` = the sample window and
    ``reset_offset = 1`` (the manifest's instructions) layer ``i`` reproduces the IR raster ``i+1``
    Lava steps late (one synaptic delay per layer; the reset discards bias integrated earlier)."""
    try:
        from lava.lib.dl.netx import hdf5
    except ImportError as error:
        pytest.skip(f"lava-dl's netx is not importable ({error}); it needs torch, which the "
                    "snncc environment does not ship")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from snncc import coding
    from snncc.engines import simulate

    graph, path = netx_file
    timesteps, layers = 12, 3
    window = timesteps + layers
    raw = np.random.default_rng(1).integers(0, 256, (1, 2, 6, 5)).astype(np.uint8)
    reference = simulate(graph, raw, timesteps, mode="integer", record=True)
    spikes = coding.rate_spikes(graph.input.preprocess(raw), coding.rate_uniforms(
        np.arange(1), (2, 6, 5), timesteps, graph.input.seed))[:, 0]
    data = np.zeros((5, 6, 2, window), dtype=np.int32)  # netx input layout (W, H, C)
    data[..., :timesteps] = np.moveaxis(spikes.transpose(0, 3, 2, 1), 0, -1)
    network = hdf5.Network(net_config=str(path), reset_interval=window, reset_offset=1)
    source = Source(data=data)
    source.s_out.connect(network.inp)
    sinks = []
    for layer in network.layers:
        sinks.append(Sink(shape=layer.out.shape, buffer=window))
        layer.out.connect(sinks[-1].a_in)
    network.run(condition=RunSteps(num_steps=window), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    recorded = [np.moveaxis(sink.data.get(), -1, 0) for sink in sinks]
    network.stop()
    conv = recorded[0].transpose(0, 3, 2, 1)[1: timesteps + 1]  # (W, H, C) -> (C, H, W)
    np.testing.assert_array_equal(conv, reference.rasters["if1"][:, 0])
    np.testing.assert_array_equal(recorded[1][2: timesteps + 2], reference.rasters["if2"][:, 0])


def _leaky_chain(**changes) -> ir.Graph:
    rng = np.random.default_rng(4)
    lif = dict(threshold=np.array([40]), dv=np.array([300]))
    lif.update(changes)
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(6,))),
                ("fc1", ir.Dense(weight=rng.integers(-8, 9, (5, 6)) * 2)),
                ("lif", ir.LIF(**lif)),
                ("fc2", ir.Dense(weight=rng.integers(-8, 9, (3, 5)) * 2)),
                ("cuba", ir.CubaLIF(threshold=np.array([20]), du=np.array([512]),
                                    dv=np.array([100]))),
                ("readout", ir.Readout()))
    return graph


def test_leaky_layers_are_cuba_neurons_with_their_decays(tmp_path):
    graph = _leaky_chain()
    assert netx.inexpressible(graph) == []
    layers = netx.read_netx(netx.write_netx(graph, tmp_path / "leaky.net"))
    hidden, last = layers[1]["neuron"], layers[2]["neuron"]
    assert (hidden["iDecay"], hidden["vDecay"], hidden["vThMant"]) == (4096, 300, 40)
    assert (last["iDecay"], last["vDecay"], last["vThMant"]) == (512, 100, 20)


@pytest.mark.parametrize("changes, reason", [
    ({"reset": "subtract"}, "reset by subtraction"),
    ({"comparison": ">="}, "v >= threshold"),
    ({"dv": np.array([1, 2, 3, 4, 5])}, "per-neuron or per-channel dv"),
])
def test_leaky_parts_netx_cannot_express_are_named(changes, reason):
    problems = netx.inexpressible(_leaky_chain(**changes))
    assert any(reason in problem for problem in problems), problems


def test_a_readout_beyond_the_state_is_split_into_parts_that_each_fit(tmp_path):
    """At a long T the output layer is written as several neurons per class over disjoint input
    ranges; every part provably stays inside Loihi's state and lava-dl's summed potentials equal
    the simulator's readout."""
    graph = conv_net()
    weight, bias = graph.nodes["fc2"].weight, graph.nodes["fc2"].bias
    graph.metadata["timesteps"] = 12
    assert netx.readout_parts(graph) == [(0, 7)]
    graph.metadata["timesteps"] = timesteps = 400
    parts = netx.readout_parts(graph)
    assert len(parts) > 1 and parts[0][0] == 0 and parts[-1][1] == weight.shape[1]
    assert all(before[1] == after[0] for before, after in zip(parts, parts[1:], strict=False))
    split, split_bias = netx.split_readout(weight, bias, parts)
    np.testing.assert_array_equal(split.reshape(4, len(parts), -1).sum(axis=1), weight)
    np.testing.assert_array_equal(split_bias.reshape(4, -1).sum(axis=1), bias)
    worst = timesteps * (np.abs(split).sum(axis=1) + np.abs(split_bias))
    assert worst.max() <= netx.LIF_STATE_MAX  # whatever the spikes
    path = netx.write_netx(graph, tmp_path / "net.net")
    assert netx.lint_netx(path, graph) == []
    assert list(netx.read_netx(path)[-1]["shape"]) == [4 * len(parts)]
    try:
        import lava.lib.dl.netx  # noqa: F401
    except ImportError as error:
        pytest.skip(f"lava-dl's netx is not importable ({error})")
    from snncc.backends.netx_lava import reference_potentials, run_netx
    from snncc.engines import simulate

    raw = np.random.default_rng(2).integers(0, 256, (2, 2, 6, 5)).astype(np.uint8)
    reference = simulate(graph, raw, timesteps, mode="integer", record=True)
    run = run_netx(path, graph, raw, timesteps)
    np.testing.assert_array_equal(run.potentials, reference_potentials(graph, reference))
    # one neuron per class could not be proven to fit
    assert timesteps * (np.abs(weight).sum(axis=1) + np.abs(bias)).max() > netx.LIF_STATE_MAX


def test_a_readout_weight_beyond_one_steps_share_cannot_be_split():
    graph = conv_net()
    graph.metadata["timesteps"] = netx.LIF_STATE_MAX // 50  # 50 units a step; weights up to 99
    assert netx.readout_parts(graph) is None
    assert any("layer 'fc2': potentials may reach" in p for p in netx.inexpressible(graph))
