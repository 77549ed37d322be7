"""The FPGA bundle: packing, file formats, manifest, errors, and Icarus Verilog against the simulator."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from snncc import ir, resources
from snncc.backends import fpga, fpga_hdl
from snncc.engines import run_ann, simulate
from snncc.errors import ResourceError, SnnccError, UnsupportedError

IVERILOG_MISSING = fpga_hdl.iverilog_missing()
requires_iverilog = pytest.mark.skipif(IVERILOG_MISSING is not None,
                                       reason=IVERILOG_MISSING or "")
ZERO = np.zeros(1, np.int64)


# ------------------------------------------------------------------------------- test networks


def binary_mlp(seed: int = 0) -> ir.Graph:
    """Direct-coded 16-12-4 network, ±1 weights, integer bias, per-neuron thresholds."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(16,), coding="direct")),
        ("fc1", ir.Dense(weight=rng.choice([-1, 1], (12, 16)), bias=rng.integers(-20, 20, 12))),
        ("if1", ir.IF(threshold=rng.integers(60, 200, 12), v_init=ZERO)),
        ("fc2", ir.Dense(weight=rng.choice([-1, 1], (4, 12)))),
        ("readout", ir.Readout(mode="potential", threshold=ZERO)),
    )
    return graph


def multibit_rate_net(seed: int = 1) -> ir.Graph:
    """Rate-coded (2,4,4) input, 8-bit and 3-bit weights, bias, v_init, reset zero, first spike."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "tests", "timesteps": 10})
    graph.chain(
        ("input", ir.Input(shape=(2, 4, 4), coding="rate", scale=1 / 255, seed=3)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.integers(-128, 128, (10, 32)), bias=rng.integers(-50, 50, 10))),
        ("if1", ir.IF(threshold=np.int64(300), v_init=rng.integers(-100, 100, 10), reset="zero")),
        ("fc2", ir.Dense(weight=rng.integers(-4, 4, (5, 10)))),
        ("readout", ir.Readout(mode="first_spike", threshold=rng.integers(3, 9, 5))),
    )
    return graph


def conv_net(seed: int = 2) -> ir.Graph:
    """Latency-coded 1x6x6 images: conv(pad 1) -> IF -> sum pool -> conv(stride 2) -> IF -> dense."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(1, 6, 6), coding="latency", scale=1 / 255, t_max=6)),
        ("conv1", ir.Conv2d(weight=rng.integers(-2, 3, (3, 1, 3, 3)), bias=rng.integers(-1, 2, 3),
                            padding=1)),
        ("if1", ir.IF(threshold=np.array([2, 3, 2]), v_init=ZERO)),
        ("pool1", ir.SumPool2d(kernel=2, stride=2)),
        ("conv2", ir.Conv2d(weight=rng.integers(-2, 3, (4, 3, 2, 2)), stride=2, padding=(0, 0, 1, 1))),
        ("if2", ir.IF(threshold=np.int64(2), v_init=ZERO, fire_once=True, reset="zero")),
        ("flatten", ir.Flatten()),
        ("fc", ir.Dense(weight=rng.integers(-3, 4, (3, 16)), bias=np.array([1, 0, -1]))),
        ("readout", ir.Readout(mode="potential", threshold=ZERO)),
    )
    return graph


def saturating_net() -> ir.Graph:
    """Rate input straight into IF neurons (an identity layer), currents that drive the 24-bit
    state to both rails, and single-spike neurons with reset by subtraction."""
    big = 2**23 - 1
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(3,), coding="rate", scale=1 / 255)),
        ("if0", ir.IF(threshold=np.int64(1), v_init=ZERO)),
        ("fc1", ir.Dense(weight=np.array([[127, 127, 127], [-128, -128, -128], [1, -1, 1]]),
                         bias=np.array([big, -big - 1, 0]))),
        ("if1", ir.IF(threshold=np.array([big, 5, 1]), v_init=np.array([big, -big - 1, 0]),
                      fire_once=True)),
        ("fc2", ir.Dense(weight=np.array([[100, -100, 1], [-100, 100, -1]]),
                         bias=np.array([big, -big]))),
        ("readout", ir.Readout(mode="potential", threshold=ZERO)),
    )
    return graph


def shifted_net(seed: int = 8) -> ir.Graph:
    """Weights that are multiples of a power of two (as quantize's mantissa * 2**exponent)."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(10,), coding="direct")),
        ("fc1", ir.Dense(weight=rng.integers(-8, 8, (6, 10)) * 256, bias=np.arange(6) * 100)),
        ("if1", ir.IF(threshold=np.int64(30000), v_init=ZERO)),
        ("fc2", ir.Dense(weight=rng.choice([-4, 4], (3, 6)))),
        ("readout", ir.Readout(mode="potential", threshold=ZERO)),
    )
    return graph


def tie_net() -> ir.Graph:
    """Readout neurons with identical inputs: ties must go to the lowest index, as in the IR."""
    rng = np.random.default_rng(6)
    row, other = rng.choice([-1, 1], 8), rng.choice([-1, 1], 8)
    graph = ir.Graph({"source": "tests"})
    graph.chain(
        ("input", ir.Input(shape=(6,), coding="rate", scale=1 / 255)),
        ("fc1", ir.Dense(weight=rng.choice([-1, 1], (8, 6)))),
        ("if1", ir.IF(threshold=np.int64(1), v_init=ZERO)),
        ("fc2", ir.Dense(weight=np.stack([other, row, row, other, row]))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([3, 2, 2, 3, 2]))),
    )
    return graph


def raw_inputs(graph: ir.Graph, count: int, seed: int = 0, high: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, (count,) + graph.input.shape)


def assert_hdl_equals_simulator(graph: ir.Graph, bundle: Path, inputs: np.ndarray,
                                timesteps: int) -> fpga_hdl.HdlResult:
    reference = simulate(graph, inputs, timesteps, mode="integer", record=True)
    hardware = fpga_hdl.simulate_hdl(bundle, inputs, timesteps)
    np.testing.assert_array_equal(hardware.predictions, reference.predictions)
    np.testing.assert_array_equal(hardware.readout_state, reference.readout_state)
    if reference.decision_time is None:
        assert hardware.decision_time is None
    else:
        np.testing.assert_array_equal(hardware.decision_time, reference.decision_time)
    spiking = [n for n in graph.of_type(ir.IF)]
    assert sorted(hardware.rasters) == sorted(spiking)
    for name in spiking:
        np.testing.assert_array_equal(hardware.rasters[name], reference.rasters[name],
                                      err_msg=f"spikes of {name}")
    return hardware


# ------------------------------------------------------------------------------------- packing


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 13, 16])
def test_pack_unpack_round_trip_twos_complement(bits: int) -> None:
    rng = np.random.default_rng(bits)
    values = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (7, 11))
    values[0, 0], values[0, 1] = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    memory = fpga.pack_memory("m", values, bits)
    assert memory.word_bits == 11 * bits
    assert all(0 <= w < (1 << memory.word_bits) for w in memory.words)
    np.testing.assert_array_equal(fpga.unpack_words(memory.words, 11, bits), values)


def test_pack_binary_is_one_bit_per_synapse() -> None:
    values = np.array([[1, -1, -1, 1, 1], [-1, -1, -1, -1, 1]])
    memory = fpga.pack_memory("m", values, 1, binary=True)
    assert memory.words == [0b11001, 0b10000]
    np.testing.assert_array_equal(fpga.unpack_words(memory.words, 5, 1, binary=True), values)


def test_pack_rejects_values_outside_the_width() -> None:
    with pytest.raises(SnnccError, match="do not fit 4-bit"):
        fpga.pack_memory("m", np.array([[8]]), 4)
    with pytest.raises(SnnccError, match="binary packing"):
        fpga.pack_memory("m", np.array([[1, 0]]), 1, binary=True)


# ------------------------------------------------------------------------------------- formats


def _words_from_mem(text: str) -> list[int]:
    return [int(line, 16) for line in text.splitlines() if line and not line.startswith("//")]


def _words_from_coe(text: str) -> list[int]:
    body = [line for line in text.splitlines() if line and not line.startswith(";")]
    assert body[0] == "memory_initialization_radix=16;"
    assert body[1] == "memory_initialization_vector="
    assert body[-1].endswith(";") and all(line.endswith(",") for line in body[2:-1])
    return [int(line.rstrip(",;"), 16) for line in body[2:]]


def _words_from_header(text: str, name: str) -> tuple[list[int], dict[str, int]]:
    defines = {k: int(v) for k, v in re.findall(rf"#define {name.upper()}_(\w+) (\d+)", text)}
    rows = re.findall(r"\{([^{}]*)\}", text.split(f"{name}[")[1])
    words = []
    for row in rows:
        limbs = [int(v.rstrip("u"), 16) for v in re.findall(r"0x[0-9a-f]+u", row)]
        words.append(sum(limb << (32 * i) for i, limb in enumerate(limbs)))
    return words, defines


def _words_from_npy(path: Path) -> list[int]:
    limbs = np.load(path)
    assert limbs.dtype == np.dtype("<u4")
    return [sum(int(v) << (32 * i) for i, v in enumerate(row)) for row in limbs]


@pytest.mark.parametrize("factory", [binary_mlp, multibit_rate_net, conv_net, shifted_net])
def test_every_format_holds_the_same_words_and_the_ir_values(factory, tmp_path: Path) -> None:
    graph = factory()
    fpga.emit(graph, tmp_path, timesteps=8)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    layers = fpga.lower_graph(graph)
    for layer, entry in zip(layers, manifest["layers"], strict=True):
        expected = {"weights": layer.weight.T}
        if isinstance(layer.neuron, ir.IF):
            expected["threshold"] = ir.broadcast_per_neuron(layer.neuron.threshold,
                                                            layer.output_shape).reshape(-1, 1)
            v_init = ir.broadcast_per_neuron(layer.neuron.v_init, layer.output_shape)
            if np.any(v_init):
                expected["v_init"] = v_init.reshape(-1, 1)
        elif layer.neuron.mode == "first_spike":
            expected["threshold"] = ir.broadcast_per_neuron(layer.neuron.threshold,
                                                            layer.output_shape).reshape(-1, 1)
        if layer.bias is not None:
            expected["bias"] = layer.bias.reshape(-1, 1)
        assert sorted(entry["memories"]) == sorted(expected)
        for role, values in expected.items():
            info = entry["memories"][role]
            files = {fmt: tmp_path / f["path"] for fmt, f in info["files"].items()}
            name = files["h"].stem
            mem_words = _words_from_mem(files["mem"].read_text())
            header_words, defines = _words_from_header(files["h"].read_text(), name)
            assert mem_words == _words_from_coe(files["coe"].read_text())
            assert mem_words == header_words == _words_from_npy(files["npy"])
            assert defines["DEPTH"] == info["depth"] == len(mem_words)
            assert defines["WORD_BITS"] == info["word_bits"] == info["lanes"] * info["lane_bits"]
            width = len(next(line for line in files["mem"].read_text().splitlines()
                             if not line.startswith("//")))
            assert width == -(-info["word_bits"] // 4)
            unpacked = fpga.unpack_words(mem_words, info["lanes"], info["lane_bits"],
                                         binary=info["packing"] == "binary")
            assert defines["SHIFT"] == info["shift"]
            np.testing.assert_array_equal(unpacked << info["shift"], values)


def test_dense_graph_weights_are_the_ir_matrix(tmp_path: Path) -> None:
    graph = multibit_rate_net()
    (fc1, fc2) = [graph.nodes[n].weight for n in ("fc1", "fc2")]
    layers = fpga.lower_graph(graph)
    np.testing.assert_array_equal(layers[0].weight, fc1)
    np.testing.assert_array_equal(layers[1].weight, fc2)


def test_power_of_two_weights_store_the_mantissa(tmp_path: Path) -> None:
    assert resources.weight_exponent(np.array([[0, 12, -40]])) == 2
    assert resources.weight_exponent(np.array([[0, 0]])) == 0
    assert resources.weight_exponent(np.array([[3, 256]])) == 0
    fpga.emit(shifted_net(), tmp_path, timesteps=4)
    layers = fpga.read_manifest(tmp_path)["layers"]
    assert [layer["weight_shift"] for layer in layers] == [8, 2]
    assert [layer["weight_bits"] for layer in layers] == [4, 1]
    assert [layer["weight_packing"] for layer in layers] == ["twos_complement", "binary"]


def test_binarized_layers_pack_one_bit_per_synapse(tmp_path: Path) -> None:
    fpga.emit(binary_mlp(), tmp_path, timesteps=4)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for entry in manifest["layers"]:
        assert entry["weight_packing"] == "binary" and entry["weight_bits"] == 1
        assert entry["memories"]["weights"]["word_bits"] == entry["outputs"]
    assert manifest["size"]["bits_per_synapse"] == 1.0


def test_conv_lowering_equals_the_linear_nodes() -> None:
    """The Toeplitz matrix of conv -> sum pool -> conv equals running those nodes (run_ann)."""
    graph = conv_net()
    chain = ir.Graph()
    chain.add("input", ir.Input(shape=(3, 6, 6)))
    previous = "input"
    for name in ("pool1", "conv2", "flatten"):
        chain.add(name, graph.nodes[name], [previous])
        previous = name
    matrix, offset = fpga.lower_linear_chain(chain, ["pool1", "conv2", "flatten"], (3, 6, 6), "t")
    x = np.random.default_rng(0).integers(0, 2, (20, 3, 6, 6))
    np.testing.assert_array_equal(x.reshape(20, -1) @ matrix.T + offset, run_ann(chain, x))


@pytest.mark.parametrize("layout", [
    [],
    [("flatten", ir.Flatten())],
    [("reshape", ir.Reshape(shape=(4, 6))), ("flatten", ir.Flatten())],
    [("transpose", ir.Transpose(perm=(2, 0, 1))), ("flatten", ir.Flatten())],
])
def test_layout_then_dense_lowering_equals_the_nodes(layout) -> None:
    rng = np.random.default_rng(4)
    chain = ir.Graph()
    chain.chain(("input", ir.Input(shape=(2, 3, 4) if layout else (24,))), *layout,
                ("fc", ir.Dense(weight=rng.integers(-9, 9, (5, 24)), bias=np.arange(5))))
    names = [name for name, _ in layout] + ["fc"]
    matrix, offset = fpga.lower_linear_chain(chain, names, chain.input.shape, "t")
    x = rng.integers(-3, 4, (10,) + chain.input.shape)
    np.testing.assert_array_equal(x.reshape(10, -1) @ matrix.T + offset, run_ann(chain, x))


# ------------------------------------------------------------------------------------ manifest


def test_manifest_describes_layers_and_hashes_every_file(tmp_path: Path) -> None:
    graph = multibit_rate_net()
    written = fpga.emit(graph, tmp_path, timesteps=10, source_hash="abc123",
                        options={"input_bits": 9})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    on_disk = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == on_disk
    assert sorted(manifest["files"]) == [p for p in on_disk if p != "manifest.json"]
    for relative, info in manifest["files"].items():
        data = (tmp_path / relative).read_bytes()
        assert info == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert manifest["format"] == fpga.BUNDLE_FORMAT and manifest["format_version"] == 1
    assert manifest["source_hash"] == "abc123" and len(manifest["graph_sha256"]) == 64
    assert manifest["compile_options"] == {"fpga_part": "zynq-7020", "strict": False,
                                           "timesteps": 10, "input_bits": 9}
    hidden, readout = manifest["layers"]
    assert hidden["neuron"] == {"type": "IF", "reset": "zero", "single_spike": False,
                                "coding": "spikes"}
    assert readout["neuron"]["mode"] == "first_spike" and readout["neuron"]["single_spike"]
    assert hidden["weight_bits"] == 8 and readout["weight_bits"] == 3
    assert hidden["timesteps"] == 10 and hidden["inputs"] == 32 and hidden["outputs"] == 10
    assert manifest["input"]["coding"] == "rate" and manifest["input"]["seed"] == 3
    used, capacity = manifest["resources"]["bram36"]
    assert capacity == 140 and used == sum(manifest["resources"]["bram36_per_layer"].values())
    assert used == sum(layer["bram36"] for layer in manifest["layers"])
    assert "lowered" in manifest["conv_lowering"]
    readme = (tmp_path / "README.txt").read_text()
    assert "Toeplitz" in readme and "$readmemh" in readme


def test_bram_estimate_uses_the_shared_resource_model(tmp_path: Path) -> None:
    from snncc.resources import fpga_bram36

    fpga.emit(binary_mlp(), tmp_path, timesteps=4)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for entry in manifest["layers"]:
        weights = entry["memories"]["weights"]
        assert entry["bram36"] == fpga_bram36(weights["depth"], weights["word_bits"])


@pytest.mark.parametrize("factory", [binary_mlp, multibit_rate_net])
def test_bram_estimate_equals_the_partition_model(factory, tmp_path: Path) -> None:
    """The shared resource model (partition report) and the bundle count the same BRAM36."""
    from snncc.resources import analyze_layers, layer_fpga_bram36

    graph = factory()
    fpga.emit(graph, tmp_path, timesteps=4)
    per_layer = fpga.read_manifest(tmp_path)["resources"]["bram36_per_layer"]
    predicted = {layer.neuron_node: layer_fpga_bram36(layer) for layer in analyze_layers(graph)}
    assert predicted == per_layer


def test_emit_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    fpga.emit(conv_net(), first, timesteps=6)
    fpga.emit(conv_net(), second, timesteps=6)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_read_manifest_detects_a_changed_file(tmp_path: Path) -> None:
    fpga.emit(binary_mlp(), tmp_path, timesteps=4)
    fpga.read_manifest(tmp_path)
    memory = tmp_path / "mem" / "if1_weights.mem"
    memory.write_text(memory.read_text().replace("0", "1", 1))
    with pytest.raises(SnnccError, match="if1_weights.mem does not match its sha256"):
        fpga.read_manifest(tmp_path)


# -------------------------------------------------------------------------------------- errors


def _assert_rejected(graph: ir.Graph, tmp_path: Path, error: type, pattern: str,
                     **kwargs) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(error, match=pattern) as info:
        fpga.emit(graph, out, **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists(), "no partial bundle may be left behind"


def test_unsupported_layer_kind_is_named(tmp_path: Path) -> None:
    graph = conv_net()
    graph.replace("pool1", ir.MaxPool2d(kernel=2, stride=2))
    _assert_rejected(graph, tmp_path, UnsupportedError, r"layer 'pool1' \(MaxPool2d\) is not "
                     r"supported by the FPGA engine; supported: Dense")


def test_branching_graph_is_rejected(tmp_path: Path) -> None:
    graph = ir.Graph()
    graph.add("input", ir.Input(shape=(4,), coding="rate"))
    graph.add("a", ir.Dense(weight=np.eye(4, dtype=np.int64)), ["input"])
    graph.add("b", ir.Dense(weight=np.eye(4, dtype=np.int64)), ["input"])
    graph.add("sum", ir.Add(), ["a", "b"])
    graph.add("readout", ir.Readout(threshold=ZERO), ["sum"])
    _assert_rejected(graph, tmp_path, UnsupportedError, r"'a' \(Dense\): node 'input' feeds 2")


def test_oversized_conv_lowering_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(fpga, "MAX_LOWERED_ENTRIES", 1000)
    _assert_rejected(conv_net(), tmp_path, UnsupportedError, r"layer 'if1': the FPGA engine stores "
                     r"convolutions as dense \(Toeplitz\) matrices and this one is 108x36, beyond "
                     r"the 1,000-entry limit")


def test_float_graph_needs_fold_first(tmp_path: Path) -> None:
    graph = binary_mlp()
    graph.replace("if1", ir.IF(threshold=np.array([1.5]), v_init=ZERO))
    _assert_rejected(graph, tmp_path, SnnccError, r"needs an integer graph \(run fold/quantize "
                     r"first\): node 'if1' \(IF\) has non-integer parameters")


def test_weights_wider_than_the_packing_are_named(tmp_path: Path) -> None:
    _assert_rejected(multibit_rate_net(), tmp_path, UnsupportedError,
                     r"layer 'if1': weights -12\d..12\d need 8 bits, beyond the 4-bit packing",
                     options={"weight_bits": 4})
    graph = binary_mlp()
    graph.replace("fc1", ir.Dense(weight=np.full((12, 16), 40001)))
    _assert_rejected(graph, tmp_path, UnsupportedError, r"layer 'if1': weights 40001..40001 need "
                     r"17 bits, beyond the 16-bit packing")


def test_thresholds_beyond_the_state_width_are_named(tmp_path: Path) -> None:
    graph = binary_mlp()
    graph.replace("if1", ir.IF(threshold=np.array([2**23]), v_init=ZERO))
    _assert_rejected(graph, tmp_path, UnsupportedError,
                     r"layer 'if1': threshold 8388608 needs 25 bits, beyond the 24-bit")


def test_strict_bram_limit_names_the_layer_and_the_limit(tmp_path: Path) -> None:
    part = tmp_path / "tiny-fpga.yaml"
    part.write_text("name: tiny-fpga\nkind: fpga\ncores_per_chip: 1\ncore:\n  bram36: 1\n")
    graph = binary_mlp()
    graph.replace("fc1", ir.Dense(weight=np.ones((12, 5000), np.int64)))
    graph.replace("input", ir.Input(shape=(5000,), coding="direct"))
    _assert_rejected(graph, tmp_path, ResourceError, r"needs 4 BRAM36, exceeding tiny-fpga's 1 by "
                     r"3 \(largest: layer 'if1' with 3\)", fpga_part=str(part), strict=True)
    fpga.emit(graph, tmp_path / "loose", fpga_part=str(part), strict=False)
    manifest = json.loads((tmp_path / "loose" / "manifest.json").read_text())
    assert manifest["resources"]["bram36"] == [4, 1] and manifest["resources"]["fits"] is False


def test_unknown_option_and_part_are_rejected(tmp_path: Path) -> None:
    _assert_rejected(binary_mlp(), tmp_path, SnnccError, "unknown fpga option", options={"x": 1})
    _assert_rejected(binary_mlp(), tmp_path, SnnccError, "unknown chip 'nope'", fpga_part="nope")
    _assert_rejected(binary_mlp(), tmp_path, SnnccError, "not an FPGA profile", fpga_part="loihi")


def test_forced_weight_width_packs_every_multibit_layer(tmp_path: Path) -> None:
    fpga.emit(multibit_rate_net(), tmp_path / "a", options={"weight_bits": 12})
    fpga.emit(binary_mlp(), tmp_path / "b", options={"weight_bits": 12})
    assert [layer["weight_bits"] for layer in
            fpga.read_manifest(tmp_path / "a")["layers"]] == [12, 12]
    assert [layer["weight_bits"] for layer in
            fpga.read_manifest(tmp_path / "b")["layers"]] == [1, 1]


def test_option_ranges_are_checked(tmp_path: Path) -> None:
    _assert_rejected(binary_mlp(), tmp_path, SnnccError, r"weight_bits=17 is outside 2..16",
                     options={"weight_bits": 17})
    _assert_rejected(binary_mlp(), tmp_path, SnnccError, r"input_bits=1 is outside 2..32",
                     options={"input_bits": 1})


def test_currents_beyond_the_accumulator_are_named(tmp_path: Path) -> None:
    graph = binary_mlp()
    graph.replace("fc1", ir.Dense(weight=np.full((12, 16), 2**15 - 1)))
    _assert_rejected(graph, tmp_path, UnsupportedError, r"layer 'if1': synaptic currents need "
                     r"51 bits, beyond the 48-bit accumulator", options={"input_bits": 32})


def test_read_manifest_rejects_foreign_directories(tmp_path: Path) -> None:
    with pytest.raises(SnnccError, match="no manifest.json"):
        fpga.read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": fpga.BUNDLE_FORMAT,
                                                        "format_version": 99}))
    with pytest.raises(SnnccError, match="bundle format version 99 is not supported"):
        fpga.read_manifest(tmp_path)


def test_a_failed_write_leaves_no_partial_files(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "npy").write_text("a file where the npy/ folder must go")
    with pytest.raises(SnnccError, match="cannot write the FPGA bundle"):
        fpga.emit(binary_mlp(), out, timesteps=4)
    assert sorted(p.name for p in out.iterdir()) == ["npy"]


def test_iverilog_missing_gives_a_reason(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "install the Debian package 'iverilog'" in fpga_hdl.iverilog_missing()


def test_simulate_hdl_checks_inputs(tmp_path: Path) -> None:
    fpga.emit(binary_mlp(), tmp_path, timesteps=4)
    with pytest.raises(SnnccError, match="do not fit the bundle's 9-bit signed inputs"):
        fpga_hdl.simulate_hdl(tmp_path, np.full((1, 16), 300), 4)
    with pytest.raises(SnnccError, match="do not match the bundle input"):
        fpga_hdl.simulate_hdl(tmp_path, np.zeros((1, 15), np.int64), 4)


# ------------------------------------------------------------------------- HDL vs simulator


@pytest.mark.hdl
@requires_iverilog
@pytest.mark.parametrize("factory, timesteps, high", [
    (binary_mlp, 8, 30),
    (multibit_rate_net, 10, 256),
    (conv_net, 7, 256),
    (saturating_net, 6, 256),
    (tie_net, 8, 256),
    (shifted_net, 8, 40),
])
def test_hdl_spikes_equal_the_integer_simulator(factory, timesteps: int, high: int,
                                                tmp_path: Path) -> None:
    graph = factory()
    fpga.emit(graph, tmp_path, timesteps=timesteps)
    inputs = raw_inputs(graph, 6, high=high)
    hardware = assert_hdl_equals_simulator(graph, tmp_path, inputs, timesteps)
    assert sum(int(r.sum()) for r in hardware.rasters.values()) > 0, "the test needs spikes"
    assert np.all(hardware.cycles > 0)


@pytest.mark.hdl
@requires_iverilog
def test_hdl_rate_seed_override_matches_the_simulator(tmp_path: Path) -> None:
    graph = multibit_rate_net()
    fpga.emit(graph, tmp_path, timesteps=10)
    inputs = raw_inputs(graph, 4)
    hardware = fpga_hdl.simulate_hdl(tmp_path, inputs, 10, seed=11)
    reference = simulate(graph, inputs, 10, mode="integer", record=True, seed=11)
    default = simulate(graph, inputs, 10, mode="integer", record=True)
    assert not np.array_equal(reference.rasters["if1"], default.rasters["if1"])
    assert fpga_hdl.agreeing_samples(graph, hardware, reference).all()


@pytest.mark.hdl
@requires_iverilog
def test_hdl_saturates_like_the_simulator(tmp_path: Path) -> None:
    graph = saturating_net()
    fpga.emit(graph, tmp_path, timesteps=6)
    inputs = raw_inputs(graph, 4)
    hardware = fpga_hdl.simulate_hdl(tmp_path, inputs, 6)
    assert set(hardware.readout_state[:, 0]) <= {ir.STATE_MAX}
    assert set(hardware.readout_state[:, 1]) <= {ir.STATE_MIN}


@pytest.mark.hdl
@pytest.mark.skipif(shutil.which("yosys") is None,
                    reason="yosys is not installed (optional synthesis check; Debian package 'yosys')")
@pytest.mark.parametrize("factory", [multibit_rate_net])
def test_generated_verilog_elaborates_for_synthesis(factory, tmp_path: Path) -> None:
    """yosys elaborates the engine with the bundle's parameters and memories and finds no
    undriven or multiply driven signals."""
    fpga.emit(factory(), tmp_path, timesteps=6)
    script = ("read_verilog -defer hdl/if_layer.v hdl/snn_network.v; "
              "hierarchy -check -top snn_network; proc; opt -fast; check -assert")
    run = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    problems = [line for line in (run.stdout + run.stderr).splitlines()
                if "ERROR" in line or "no driver" in line or "multiple drivers" in line.lower()]
    assert not problems


# ----------------------------------------------------------------------------- MNIST (slow)


def _load_fpga_models():
    """tests/backends/fpga_models.py, imported by path (works whatever pytest's import mode)."""
    path = Path(__file__).with_name("fpga_models.py")
    spec = importlib.util.spec_from_file_location("fpga_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist(data_dir: Path):
    from snncc.datasets import load_dataset

    train = load_dataset("mnist", "train", data_dir).take(2000)
    test = load_dataset("mnist", "test", data_dir).take(50)
    return train, test


@pytest.mark.slow
@pytest.mark.hdl
@requires_iverilog
def test_hdl_equals_simulator_on_50_mnist_samples_bstdg(mnist, models_dir: Path,
                                                        tmp_path: Path) -> None:
    """A BSTDG-style MNIST network (built by hand until a trained MNIST BSTDG file exists)."""
    train, test = mnist
    timesteps = 16
    graph = _load_fpga_models().bstdg_network(models_dir, train.images, t_max=timesteps)
    fpga.emit(graph, tmp_path, timesteps=timesteps)
    hardware = assert_hdl_equals_simulator(graph, tmp_path, test.images, timesteps)
    assert hardware.predictions.shape == (timesteps, 50)
    assert (hardware.predictions[-1] == test.labels).mean() > 0.6


@pytest.mark.slow
@pytest.mark.hdl
@requires_iverilog
@pytest.mark.parametrize("binarized", ["all", "hidden"])
def test_hdl_equals_simulator_on_the_compiled_mnist_mlp(binarized: str, mnist, models_dir: Path,
                                                        data_dir: Path, tmp_path: Path) -> None:
    """mnist_mlp.onnx through convert, binarize, fold and quantize, 50 test images: every layer
    binarized (``all``) or the hidden one only (``hidden``: 8-bit first and last layers)."""
    from snncc.passes import REGISTRY

    missing = [p for p in ("binarize", "fold", "quantize") if p not in REGISTRY]
    if missing:
        pytest.skip(f"passes {', '.join(missing)} are not registered yet")
    from snncc.pipeline import load_model, prepare

    timesteps = 16
    graph = load_model(models_dir / "mnist_mlp.onnx", None, None)
    graph, _ = prepare(graph, ["convert", "binarize", "fold", "quantize"], dataset="mnist",
                       data_dir=str(data_dir), timesteps=timesteps,
                       options={"binarize": {"layers": binarized}}, calibration_count=500)
    fpga.emit(graph, tmp_path, timesteps=timesteps)
    manifest = fpga.read_manifest(tmp_path)
    packings = [layer["weight_packing"] for layer in manifest["layers"]]
    assert packings[1] == "binary" and (binarized == "hidden" or set(packings) == {"binary"})
    _, test = mnist
    hardware = assert_hdl_equals_simulator(graph, tmp_path, test.images.reshape(-1, 1, 28, 28),
                                           timesteps)
    assert hardware.predictions.shape == (timesteps, 50)
    assert (hardware.predictions[-1] == test.labels).mean() > 0.8


@pytest.mark.hdl
@requires_iverilog
def test_hdl_equals_simulator_on_a_loaded_bstdg_file(tmp_path: Path) -> None:
    """A BSTDG file (ternary and binary layers) read by the BSTDG frontend, when it exists."""
    bstdg = pytest.importorskip("snncc.frontend.bstdg", reason="the BSTDG loader is not merged yet")
    rng = np.random.default_rng(5)
    hidden = rng.choice([-1, 1], (12, 20))
    output = rng.choice([-1, 0, 1], (4, 12))
    model = bstdg.BSTDGModel(weights=[hidden, output], thresholds=[np.array([3]), np.array([2])],
                             t_max=8, input_shape=(1, 4, 5))
    path = bstdg.write_bstdg(model, tmp_path / "net.bstdg.h5")
    graph = bstdg.load_bstdg(path)
    fpga.emit(graph, tmp_path / "bundle", timesteps=8)
    packings = [layer["weight_packing"] for layer in
                fpga.read_manifest(tmp_path / "bundle")["layers"]]
    assert packings == ["binary", "twos_complement"]
    assert_hdl_equals_simulator(graph, tmp_path / "bundle", raw_inputs(graph, 8), 8)


# ----------------------------------------------------------------------------------------- CLI


def _digits_bundle(tmp_path: Path) -> Path:
    """A single-spike digits network compiled for --target fpga through the pipeline."""
    from snncc.pipeline import compile_model

    rng = np.random.default_rng(7)
    graph = ir.Graph({"source": "tests", "dataset": "digits"})
    graph.chain(
        ("input", ir.Input(shape=(1, 8, 8), coding="latency", scale=1 / 255, t_max=8)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.choice([-1, 1], (24, 64)))),
        ("if1", ir.IF(threshold=np.int64(3), v_init=ZERO, reset="zero", fire_once=True)),
        ("fc2", ir.Dense(weight=rng.choice([-1, 1], (10, 24)))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([2], np.int64))),
    )
    model = graph.save(tmp_path / "digits.snn.npz")
    out = tmp_path / "bundle"
    compile_model(model, out, target="fpga", passes=[], timesteps=8,
                  target_options={"fpga_part": "zynq-7010", "strict": True})
    return out


@pytest.mark.hdl
@requires_iverilog
def test_hdl_check_command_agrees_and_catches_a_changed_weight(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from snncc.commands.fpga import register

    app = typer.Typer()
    register(app)
    app.command("unused")(lambda: None)  # keep hdl-check a named sub-command
    bundle = _digits_bundle(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["hdl-check", str(bundle), "--limit", "6"])
    assert result.exit_code == 0, result.output
    assert "6/6 digits test samples agree" in result.output

    # Flip one input's weights in the hidden layer (and re-sign the manifest): the check must
    # refuse the bundle, whose file now differs from what snncc generates (issue 21: hdl-check
    # simulates only HDL and memories that snncc itself regenerates from the bundle's graph).
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    memory = bundle / "mem" / "if1_weights.mem"
    lines = memory.read_text().splitlines()
    first_word = next(i for i, line in enumerate(lines) if not line.startswith("//"))
    index = first_word + 3 * 8 + 3  # pixel (3, 3), lit in these samples
    lines[index] = format(int(lines[index], 16) ^ ((1 << 24) - 1), f"0{len(lines[index])}x")
    memory.write_text("\n".join(lines) + "\n")
    manifest["files"]["mem/if1_weights.mem"]["sha256"] = hashlib.sha256(
        memory.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    result = runner.invoke(app, ["hdl-check", str(bundle), "--limit", "6"])
    assert isinstance(result.exception, SnnccError), result.output
    assert "mem/if1_weights.mem differs" in str(result.exception)


def test_hdl_check_refuses_a_graph_the_bundle_was_not_built_from(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from snncc.commands.fpga import register

    app = typer.Typer()
    register(app)
    app.command("unused")(lambda: None)
    bundle = _digits_bundle(tmp_path)
    other = binary_mlp().save(tmp_path / "other.snn.npz")
    result = CliRunner().invoke(app, ["hdl-check", str(bundle), "--graph", str(other)])
    assert result.exit_code != 0
    assert "is not the graph" in str(result.exception)
