"""The Lava backend runs in lava-nc for real and matches the reference simulator spike for spike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snncc import ir
from snncc.engines import simulate
from snncc.errors import SnnccError, UnsupportedError

try:
    import lava.magma.core.run_configs  # noqa: F401

    HAVE_LAVA = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_LAVA = False

pytestmark = [
    pytest.mark.lava,
    pytest.mark.skipif(not HAVE_LAVA, reason="lava-nc is not installed "
                       "(pip install 'snncc[lava]', Python 3.10)"),
]

from snncc.backends import lava  # noqa: E402  (imports lava-nc lazily only)


def assert_matches_reference(graph: ir.Graph, raw: np.ndarray, timesteps: int,
                             batch_size: int = 4, **options) -> object:
    """Every raster, decision, readout state, spike count and synaptic event count agree."""
    reference = simulate(graph, raw, timesteps, mode="integer", record=True, count_neurons=True)
    result = lava.run(graph, raw, timesteps, record=True, batch_size=batch_size,
                      count_neurons=True, **options)
    assert set(result.rasters) == set(reference.rasters)
    for name, raster in reference.rasters.items():
        assert raster.shape == result.rasters[name].shape, name
        for sample in range(raster.shape[1]):
            mismatch = np.argwhere(raster[:, sample] != result.rasters[name][:, sample])
            assert mismatch.size == 0, f"{name}: sample {sample} differs at {mismatch[:3]}"
    np.testing.assert_array_equal(result.predictions, reference.predictions)
    np.testing.assert_array_equal(result.readout_state, reference.readout_state)
    np.testing.assert_array_equal(result.synops, reference.synops)
    assert result.spike_counts.keys() == reference.spike_counts.keys()
    for name, counts in reference.spike_counts.items():
        np.testing.assert_array_equal(result.spike_counts[name], counts)
    for name, counts in reference.neuron_counts.items():
        np.testing.assert_array_equal(result.neuron_counts[name], counts)
    if reference.decision_time is None:
        assert result.decision_time is None
    else:
        np.testing.assert_array_equal(result.decision_time, reference.decision_time)
    return result


def total_spikes(graph: ir.Graph, raw: np.ndarray, timesteps: int) -> dict[str, int]:
    result = simulate(graph, raw, timesteps, mode="integer")
    return {name: int(c.sum()) for name, c in result.spike_counts.items()}


# ------------------------------------------------------------------------------ hand-built graphs


def rate_mlp(seed: int = 0) -> ir.Graph:
    """Rate input -> Dense (bias) -> IF subtract, per-neuron thresholds and v_init -> Readout."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "test"})
    graph.chain(
        ("input", ir.Input(shape=(12,), coding="rate", scale=1 / 255, seed=3)),
        ("fc1", ir.Dense(weight=rng.integers(-60, 61, (16, 12)), bias=rng.integers(-6, 7, 16))),
        ("if1", ir.IF(threshold=rng.integers(40, 90, 16), v_init=rng.integers(0, 30, 16))),
        ("fc2", ir.Dense(weight=rng.integers(-120, 121, (10, 16)) * 2)),
        ("if2", ir.IF(threshold=np.array([150]), v_init=np.array([75]))),
        ("fc3", ir.Dense(weight=rng.integers(-100, 101, (4, 10)), bias=rng.integers(-3, 4, 4))),
        ("readout", ir.Readout()),
    )
    return graph


def direct_mlp(seed: int = 1) -> ir.Graph:
    """Direct coding: the raw uint8 pixels are graded spikes into the first Dense."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(10,), coding="direct")),
        ("fc1", ir.Dense(weight=rng.integers(-20, 21, (12, 10)), bias=rng.integers(-50, 50, 12))),
        ("if1", ir.IF(threshold=np.full(12, 3000), v_init=np.full(12, 1500))),
        ("fc2", ir.Dense(weight=rng.integers(-90, 91, (3, 12)))),
        ("readout", ir.Readout()),
    )
    return graph


def latency_cnn(seed: int = 2) -> ir.Graph:
    """Conv (symmetric pad, bias) -> IF -> SumPool -> Conv (asymmetric pad) -> IF -> MaxPool -> Dense."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 8, 8), coding="latency", scale=1 / 255)),
        ("conv1", ir.Conv2d(weight=rng.integers(-50, 80, (4, 2, 3, 3)),
                            bias=rng.integers(-4, 5, 4), padding=1)),
        ("if1", ir.IF(threshold=np.array([60, 70, 80, 90]), v_init=np.array([30, 35, 40, 45]))),
        ("pool1", ir.SumPool2d(kernel=2, stride=2)),
        ("conv2", ir.Conv2d(weight=rng.integers(-40, 60, (5, 4, 2, 3)), padding=(0, 1, 1, 0),
                            bias=rng.integers(-3, 4, 5))),
        ("if2", ir.IF(threshold=np.array([40]), v_init=np.array([20]))),
        ("pool2", ir.MaxPool2d(kernel=2, stride=2)),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.integers(-100, 101, (3, 10)), bias=rng.integers(-5, 6, 3))),
        ("readout", ir.Readout()),
    )
    return graph


def lif_mlp(seed: int = 3) -> ir.Graph:
    """Reset-to-zero IF layers with one threshold and no bias: Lava's own LIF runs them."""
    rng = np.random.default_rng(seed)
    weight = rng.integers(-40, 80, (10, 12))
    weight[0] = 35  # two input spikes reach the threshold exactly: v == 70 must fire (vth = 69)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(12,), coding="rate", scale=1 / 255)),
        ("fc1", ir.Dense(weight=weight)),
        ("if1", ir.IF(threshold=np.array([70]), v_init=np.array([0]), reset="zero")),
        ("fc2", ir.Dense(weight=rng.integers(-60, 90, (4, 10)))),
        ("readout", ir.Readout()),
    )
    return graph


def bstdg_like(seed: int = 4, inputs: int = 30, hidden: int = 20, classes: int = 4) -> ir.Graph:
    """The BSTDG shape: latency Input -> Dense +-1 -> IF fire-once reset-zero -> Dense +-1 -> first spike."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(inputs,), coding="latency", scale=1 / 255)),
        ("fc1", ir.Dense(weight=rng.choice([-1, 1], (hidden, inputs)))),
        ("if1", ir.IF(threshold=np.array([3]), v_init=np.array([0]), reset="zero", fire_once=True)),
        ("fc2", ir.Dense(weight=rng.choice([-1, 1], (classes, hidden)))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([2]))),
    )
    return graph


def pixels(shape: tuple[int, ...], count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count,) + shape).astype(np.uint8)


# ------------------------------------------------------------------------------ bit-exact runs


def test_rate_mlp_with_subtract_reset_matches_reference_every_spike():
    graph = rate_mlp()
    raw = pixels((12,), 6)
    spikes = total_spikes(graph, raw, 12)
    assert spikes["if1"] > 20 and spikes["if2"] > 5  # the comparison has spikes to compare
    # batch of 4 windows: the second Lava run reuses the network with new RingBuffer data
    assert_matches_reference(graph, raw, 12, batch_size=4)


def test_direct_coding_sends_pixels_as_graded_spikes():
    graph = direct_mlp()
    raw = pixels((10,), 3, seed=1)
    assert total_spikes(graph, raw, 8)["if1"] > 10
    network_plan = lava.plan(graph, 8)
    assert network_plan.nodes["input"].graded and network_plan.nodes["input"].bits == 8
    assert_matches_reference(graph, raw, 8)


def test_direct_inputs_outside_the_checked_range_are_rejected():
    with pytest.raises(SnnccError, match=r"inputs span \[291, 300\].*raw_range"):
        lava.encode(direct_mlp(), np.arange(291, 301).reshape(1, 10), 4)


def test_cnn_with_conv_sumpool_maxpool_matches_reference():
    graph = latency_cnn()
    raw = pixels((2, 8, 8), 3, seed=2)
    spikes = total_spikes(graph, raw, 10)
    assert spikes["if1"] > 20 and spikes["if2"] > 5 and spikes["pool2"] > 0
    network_plan = lava.plan(graph, 10)
    assert network_plan.nodes["conv1"].kind == "conv"
    assert network_plan.nodes["pool1"].kind == "conv"
    assert network_plan.nodes["conv2"].kind == "conv_sparse"  # asymmetric padding
    assert network_plan.nodes["fc"].depth == 4  # conv1, pool1, conv2, fc: one step each
    assert_matches_reference(graph, raw, 10)


def test_reset_to_zero_layers_run_on_lavas_lif():
    graph = lif_mlp()
    network_plan = lava.plan(graph, 10)
    assert network_plan.nodes["if1"].kind == "lif"
    raw = pixels((12,), 4, seed=3)
    assert total_spikes(graph, raw, 10)["if1"] > 10
    reference = simulate(graph, raw, 10, mode="integer", record=True)
    assert reference.rasters["if1"][:, :, 0].sum() > 0  # the equality case really happens
    assert_matches_reference(graph, raw, 10)


def test_bstdg_fire_once_first_spike_readout_matches_reference():
    graph = bstdg_like()
    raw = pixels((30,), 5, seed=4)
    reference = simulate(graph, raw, 12, mode="integer")
    assert (reference.decision_time < 12).any()
    assert lava.plan(graph, 12).nodes["if1"].kind == "if"  # fire-once needs the custom neuron
    assert_matches_reference(graph, raw, 12, batch_size=5)


def test_pruned_dense_layer_uses_lava_sparse():
    graph = rate_mlp()
    weight = graph.nodes["fc2"].weight.copy()
    weight[np.random.default_rng(0).random(weight.shape) < 0.7] = 0
    graph.nodes["fc2"].weight = weight
    assert lava.plan(graph, 6).nodes["fc2"].kind == "sparse"
    assert_matches_reference(graph, pixels((12,), 2), 6)


def test_direct_maxpool_on_graded_input():
    rng = np.random.default_rng(5)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(1, 6, 6), coding="direct")),
        ("pool", ir.MaxPool2d(kernel=2, stride=2)),
        ("conv", ir.Conv2d(weight=rng.integers(-8, 9, (2, 1, 3, 3)), padding=1)),
        ("if1", ir.IF(threshold=np.array([500]), v_init=np.array([0]))),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.integers(-50, 51, (3, 18)))),
        ("readout", ir.Readout()),
    )
    raw = pixels((1, 6, 6), 2, seed=5)
    assert_matches_reference(graph, raw, 5)


# ------------------------------------------------------------------------------- compile checks


def test_weights_encode_exactly_as_8_bit_mantissa_and_exponent():
    mixed = lava.encode_weights(np.array([[-3, 5], [127, -128]]), "fc")
    assert mixed.sign_mode == "mixed" and mixed.weight_exp == -1
    np.testing.assert_array_equal(mixed.mantissa, [[-6, 10], [254, -256]])
    scaled = lava.encode_weights(np.array([[-512, 4], [508, 0]]), "fc")
    assert scaled.weight_exp == 1
    np.testing.assert_array_equal(scaled.mantissa * 2 ** (scaled.weight_exp + 1) // 2,
                                  [[-512, 4], [508, 0]])
    excitatory = lava.encode_weights(np.array([[0, 255]]), "fc")
    assert excitatory.sign_mode == "excitatory" and excitatory.weight_exp == 0
    inhibitory = lava.encode_weights(np.array([[-1020, 0]]), "fc")
    assert inhibitory.sign_mode == "inhibitory" and inhibitory.weight_exp == 2
    with pytest.raises(UnsupportedError, match="layer 'fc'.*8-bit weight mantissa"):
        lava.encode_weights(np.array([[-3, 301]]), "fc")


def test_out_of_range_networks_fail_at_compile_time_naming_layer_and_limit():
    graph = rate_mlp()
    graph.nodes["fc1"].weight[0, 0] = 301
    with pytest.raises(UnsupportedError, match="'fc1'.*8-bit"):
        lava.plan(graph, 8)
    graph = rate_mlp()
    graph.nodes["if2"].threshold = np.array([2**17 + 1])
    with pytest.raises(UnsupportedError, match="'if2'.*17-bit"):
        lava.plan(graph, 8)
    graph = rate_mlp()
    graph.nodes["if2"].threshold = np.array([2**18])  # mantissa 1 times 2**18 fits
    lava.plan(graph, 8)
    graph.nodes["if2"].threshold = np.array([2**23])
    with pytest.raises(UnsupportedError, match="'if2'.*threshold 8388608.*24-bit"):
        lava.plan(graph, 8)
    graph = rate_mlp()
    graph.nodes["if1"].v_init = np.full(16, 2**23)
    with pytest.raises(UnsupportedError, match="'if1'.*v_init.*24-bit"):
        lava.plan(graph, 8)


def test_float_graph_is_rejected_before_lava_runs():
    graph = rate_mlp()
    graph.nodes["fc1"].weight = graph.nodes["fc1"].weight.astype(float) * 0.5
    with pytest.raises(SnnccError, match="non-integer"):
        lava.plan(graph, 8)


def test_add_of_branches_with_unequal_delays_gets_a_delay_line():
    """A residual-style Add: fc1 arrives after one synapse hop, fc2 after two."""
    rng = np.random.default_rng(0)
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(8,), coding="rate", scale=1 / 255))
    graph.add("fc1", ir.Dense(weight=rng.integers(-20, 60, (6, 8))), "input")
    graph.add("if1", ir.IF(threshold=np.array([60]), v_init=np.array([0])), "fc1")
    graph.add("fc2", ir.Dense(weight=rng.integers(-40, 60, (6, 6)), bias=np.arange(6)), "if1")
    graph.add("sum", ir.Add(), ["fc1", "fc2"])
    graph.add("if2", ir.IF(threshold=np.array([90]), v_init=np.array([45])), "sum")
    graph.add("fc3", ir.Dense(weight=rng.integers(-50, 50, (3, 6))), "if2")
    graph.add("readout", ir.Readout(), "fc3")
    network_plan = lava.plan(graph, 8)
    assert network_plan.nodes["sum"].delays == [1, 0] and network_plan.nodes["sum"].depth == 2
    raw = pixels((8,), 3, seed=7)
    spikes = total_spikes(graph, raw, 8)
    assert spikes["if1"] > 5 and spikes["if2"] > 5
    assert_matches_reference(graph, raw, 8)


def test_lif_is_used_only_where_it_is_exact():
    layer = ir.IF(threshold=np.array([70]), v_init=np.array([0]), reset="zero")
    assert lava.lif_expressible(layer, None, -10, 50, 32) == (True, "")
    cases = [
        (ir.IF(threshold=np.array([70]), v_init=np.array([0])), None, "subtraction"),
        (ir.IF(threshold=np.array([70]), v_init=np.array([0]), reset="zero", fire_once=True),
         None, "fire-once"),
        (ir.IF(threshold=np.array([70, 71]), v_init=np.array([0]), reset="zero"), None,
         "per-neuron"),
        (ir.IF(threshold=np.array([70]), v_init=np.array([3]), reset="zero"), None, "v_init"),
        (layer, np.array([0, 2]), "bias"),
    ]
    for node, bias, reason in cases:
        usable, why = lava.lif_expressible(node, bias, -10, 50, 32)
        assert not usable and reason in why
    # v may reach threshold - 1 + 131002 > 131071 = (2**23 - 1) >> 6: LIF would saturate
    assert lava.lif_expressible(layer, None, 0, 131003, 32)[0] is False
    assert lava.lif_expressible(layer, None, -4096, 10, 32)[0] is False  # 32 * 4096 > 131071


def test_large_conv_currents_fall_back_to_sparse():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(2, 5, 5), coding="direct")),
        ("conv", ir.Conv2d(weight=np.full((2, 2, 3, 3), 127 * 256), padding=1)),
        ("if1", ir.IF(threshold=np.array([2**20]), v_init=np.array([0]))),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=np.ones((2, 50), dtype=np.int64))),
        ("readout", ir.Readout()),
    )
    node_plan = lava.plan(graph, 4).nodes["conv"]
    assert node_plan.kind == "conv_sparse" and "24-bit" in node_plan.notes[0]


def test_range_limits_fail_at_compile_time():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(300,), coding="direct")),
        ("fc1", ir.Dense(weight=np.full((2, 300), 255 * 2**7))),  # 300 * 255 * 32640 > 2**31
        ("readout", ir.Readout()),
    )
    with pytest.raises(UnsupportedError, match="'fc1'.*int32 accumulator"):
        lava.plan(graph, 4)
    pool = ir.Graph()
    pool.chain(
        ("input", ir.Input(shape=(1, 4, 4), coding="direct")),
        ("pool", ir.MaxPool2d(kernel=2, stride=2)),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=np.ones((2, 4), dtype=np.int64))),
        ("readout", ir.Readout()),
    )
    lava.plan(pool, 100)
    with pytest.raises(UnsupportedError, match="'pool'.*24-bit counter"):
        lava.plan(pool, 40000)


def test_bias_feeding_a_synapse_is_rejected():
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(4,), coding="rate")),
        ("fc1", ir.Dense(weight=np.ones((4, 4), dtype=np.int64), bias=np.ones(4, dtype=np.int64))),
        ("fc2", ir.Dense(weight=np.ones((2, 4), dtype=np.int64))),
        ("readout", ir.Readout()),
    )
    with pytest.raises(UnsupportedError, match="'fc2'.*bias from 'fc1'"):
        lava.plan(graph, 4)


def test_add_of_equal_delay_branches_sums_in_the_inport():
    rng = np.random.default_rng(6)
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(8,), coding="rate", scale=1 / 255))
    graph.add("fc1", ir.Dense(weight=rng.integers(-30, 60, (6, 8))), "input")
    graph.add("fc2", ir.Dense(weight=rng.integers(-30, 60, (6, 8)), bias=np.arange(6)), "input")
    graph.add("sum", ir.Add(), ["fc1", "fc2"])
    graph.add("if1", ir.IF(threshold=np.array([90]), v_init=np.array([10])), "sum")
    graph.add("fc3", ir.Dense(weight=rng.integers(-50, 50, (3, 6))), "if1")
    graph.add("readout", ir.Readout(), "fc3")
    raw = pixels((8,), 3, seed=6)
    assert total_spikes(graph, raw, 8)["if1"] > 5
    assert_matches_reference(graph, raw, 8)


def test_missing_lava_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "lava.magma.core.run_configs", None)
    with pytest.raises(SnnccError, match=r"pip install 'snncc\[lava\]'"):
        lava.require_lava()


def test_missing_lava_fails_when_the_target_is_chosen():
    code = ("import sys; sys.modules['lava.magma.core.run_configs'] = None\n"
            "from snncc.backends import get_target\n"
            "from snncc.errors import SnnccError\n"
            "try:\n    get_target('lava')\nexcept SnnccError as error:\n    print(error)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.stdout.strip() == lava.LAVA_MISSING, done.stderr


def test_emit_writes_manifest_and_ir_and_netx_when_expressible(tmp_path):
    graph = lif_mlp()
    graph.metadata["timesteps"] = 10
    written = lava.emit(graph, tmp_path / "out")
    names = {p.name for p in written}
    assert {"manifest.json", "network.snn.npz", "network.net"} <= names
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["netx"] == "network.net" and manifest["timesteps"] == 10
    assert "reset_interval=12, reset_offset=1" in manifest["load"]
    assert manifest["input"]["coding"] == "rate" and "netx_readout" in manifest
    assert manifest["layers"][2]["lava"].endswith("LIFReset")
    written = lava.emit(rate_mlp(), tmp_path / "sub", timesteps=10)
    manifest = json.loads((tmp_path / "sub" / "manifest.json").read_text())
    assert manifest["netx"] is None
    assert any("subtraction" in problem for problem in manifest["netx_inexpressible"])
    assert not (tmp_path / "sub" / "network.net").exists()


def test_emit_fails_before_writing_anything(tmp_path):
    graph = rate_mlp()
    graph.nodes["fc2"].weight[0, 0] = 1001
    with pytest.raises(UnsupportedError, match="'fc2'"):
        lava.emit(graph, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- real ONNX pipelines


def integer_snn(models_dir, data_dir, model: str, timesteps: int) -> tuple[ir.Graph, object]:
    """The shipped checkpoint through the frontend, convert (rate coding), fold and quantize for
    Loihi (8-bit mantissas, one threshold per layer)."""
    onnx_import = pytest.importorskip("snncc.frontend.onnx_import",
                                      reason="needs the ONNX frontend (merge main)")
    pytest.importorskip("snncc.passes.quantize", reason="needs the quantize pass (merge main)")
    from snncc import datasets
    from snncc.passes import PassContext, run_passes

    ann = onnx_import.load_onnx(models_dir / model)
    train = datasets.load_dataset("mnist", "train", data_dir)
    calibration = datasets.arrange(train.images[:200], ann.input.shape)
    options = {"convert": {"coding": "rate", "per_channel": False},
               "fold": {"per_channel": False}, "quantize": {"target": "loihi"}}
    context = PassContext(calibration=calibration, timesteps=timesteps, options=options)
    snn, _ = run_passes(ann, ["convert", "fold", "quantize"], context)
    test = datasets.load_dataset("mnist", "test", data_dir)
    return snn, test


def test_mnist_mlp_pipeline_matches_reference_every_spike(models_dir, data_dir):
    snn, test = integer_snn(models_dir, data_dir, "mnist_mlp.onnx", 8)
    from snncc import datasets

    raw = datasets.arrange(test.images[:3], snn.input.shape)
    result = assert_matches_reference(snn, raw, 8, batch_size=3)
    assert sum(int(c.sum()) for c in result.spike_counts.values()) > 100


def test_mnist_cnn_pipeline_matches_reference_every_spike(models_dir, data_dir):
    snn, test = integer_snn(models_dir, data_dir, "mnist_cnn_bn_unfused.onnx", 6)
    from snncc import datasets

    kinds = {p.kind for p in lava.plan(snn, 6).nodes.values()}
    assert {"conv", "dense", "if"} <= kinds
    raw = datasets.arrange(test.images[:2], snn.input.shape)
    assert_matches_reference(snn, raw, 6, batch_size=2)


def test_spike_packing_round_trips():
    from snncc.backends.lava_procs import pack_spikes, unpack_spikes

    spikes = np.random.default_rng(0).integers(0, 2, (3, 7, 5))
    words = np.stack([pack_spikes(spikes), pack_spikes(1 - spikes)], axis=-1)
    assert words.shape == (3, 2) and words.max() < 2**48
    np.testing.assert_array_equal(unpack_spikes(words, 105)[:, 0], spikes.reshape(-1))
    np.testing.assert_array_equal(unpack_spikes(words.astype(np.float64), 105)[:, 1],
                                  1 - spikes.reshape(-1))


# ------------------------------------------------------------------------------ leaky neurons


@pytest.mark.parametrize("reset, reset_delay, comparison", [
    ("zero", False, ">"), ("subtract", False, ">="), ("subtract", True, ">")])
def test_leaky_neurons_match_reference(reset, reset_delay, comparison):
    rng = np.random.default_rng(3)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(10,))),
        ("fc1", ir.Dense(weight=rng.integers(-8, 10, (12, 10)) * 2,
                         bias=rng.integers(-3, 4, 12))),
        ("lif", ir.LIF(threshold=rng.integers(20, 60, 12), dv=rng.integers(0, 4097, 12),
                       v_init=rng.integers(-3, 4, 12), reset=reset, reset_delay=reset_delay,
                       comparison=comparison)),
        ("fc2", ir.Dense(weight=rng.integers(-6, 8, (6, 12)) * 2)),
        ("cuba", ir.CubaLIF(threshold=np.array([6]), du=rng.integers(1, 4097, 6),
                            dv=np.array([300]), reset=reset, reset_delay=reset_delay,
                            comparison=comparison)),
        ("readout", ir.Readout(dv=500)),
    )
    graph.metadata["input_range"] = (0, 40)
    raw = rng.integers(0, 40, (5, 10))
    assert_matches_reference(graph, raw, timesteps=12)


def test_snntorch_fixture_after_fold_quantize_matches_reference(data_dir):
    from snncc.datasets import load_dataset
    from snncc.pipeline import load_model, model_inputs, prepare

    path = Path(__file__).resolve().parents[2].parent / "shared" / "nir"
    if not path.is_dir():
        pytest.skip("shared NIR fixtures absent")
    graph = load_model(path / "snntorch_mnist_mlp_lif.nir")
    integer, _ = prepare(graph, ["fold", "quantize"], dataset="mnist", data_dir=str(data_dir),
                         timesteps=25, options={"quantize": {"target": "lava"}})
    test = load_dataset("mnist", "test", data_dir).take(8)
    assert_matches_reference(integer, model_inputs(integer, test), timesteps=25)


def test_leaky_layers_lava_lif_expresses_run_in_lifreset():
    rng = np.random.default_rng(7)
    graph = ir.Graph()
    graph.chain(
        ("input", ir.Input(shape=(10,))),
        ("fc1", ir.Dense(weight=rng.integers(-8, 10, (12, 10)) * 2,
                         bias=rng.integers(-20, 30, 12))),
        ("lif", ir.LIF(threshold=np.array([150]), dv=np.array([700]))),
        ("fc2", ir.Dense(weight=rng.integers(-6, 9, (6, 12)) * 2)),
        ("cuba", ir.CubaLIF(threshold=np.array([9]), du=np.array([1000]), dv=np.array([300]))),
        ("readout", ir.Readout()),
    )
    graph.metadata["input_range"] = (0, 40)
    plan = lava.plan(graph, 12)
    assert plan.nodes["lif"].kind == "leaky_lif" and plan.nodes["cuba"].kind == "leaky_lif"
    raw = rng.integers(0, 40, (5, 10))
    result = assert_matches_reference(graph, raw, timesteps=12)
    assert result.spike_counts["lif"].sum() > 0 and result.spike_counts["cuba"].sum() > 0
