"""The shared resource model: hand-computed figures for each formula in snncc/resources.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from snncc import ir, resources
from snncc.errors import SnnccError
from snncc.resources import (
    fpga_bram36,
    loihi_encoding_bits,
    loihi_synapse_bits,
    weight_bits,
)

# ---------------------------------------------------------------------------------------- BRAM36


@pytest.mark.parametrize(
    ("depth", "width", "blocks"),
    [
        (32768, 1, 1),      # exactly one 32Kx1
        (32769, 1, 2),      # one word over
        (1024, 36, 1),      # 1Kx36
        (512, 72, 1),       # 512x72 (simple dual port)
        (1024, 37, 2),      # 37 bits: two 1Kx36 (or two 512x72 would need 4): min is 2
        (1000, 8, 1),       # 4Kx9 holds 1000 x 8
        (5000, 8, 2),       # 8Kx4 x2 = 2, 4Kx9 x2 = 2
        (0, 8, 0),
        (100, 0, 0),
    ],
)
def test_bram36_packing(depth: int, width: int, blocks: int) -> None:
    assert fpga_bram36(depth, width) == blocks


def test_bram36_memories_multiply_and_reject_negative() -> None:
    assert fpga_bram36(1000, 8, memories=3) == 3
    with pytest.raises(SnnccError, match="non-negative"):
        fpga_bram36(-1, 8)


def test_layer_fpga_bram36_in_the_bundle_layout() -> None:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(64,))),
                ("fc", ir.Dense(weight=np.ones((1024, 64), dtype=np.int8))),
                ("if", ir.IF(threshold=np.array([1]))))
    layer = resources.analyze_layer(graph, "fc")
    # Word i = input i, lane j = 1-bit weight to neuron j: 64 words of 1024 bits;
    # 512x72 tiles it with ceil(64 / 512) * ceil(1024 / 72) = 15 blocks (1Kx36 would need 29).
    assert resources.fpga_weight_memory(layer) == (64, 1024)
    assert resources.layer_fpga_bram36(layer) == 15


def test_fpga_lane_bits_follow_the_bundle() -> None:
    def lanes(weight: np.ndarray) -> int:
        graph = ir.Graph()
        graph.chain(("input", ir.Input(shape=(weight.shape[1],))), ("fc", ir.Dense(weight=weight)))
        return resources.analyze_layer(graph, "fc", default_bits=8).fpga_lane_bits

    assert lanes(np.array([[1, -1]])) == 1          # ±1: binary lanes
    assert lanes(np.array([[1, 0]])) == 2           # a zero needs a signed 2-bit lane
    assert lanes(np.array([[0, 127]])) == 8         # signed: 127 needs 8 bits
    assert lanes(np.array([[0.5, 0.25]])) == 8      # float: the default width
    assert resources.signed_bits(np.array([-128, 127])) == 8


# ---------------------------------------------------------------------------------- weight bits


@pytest.mark.parametrize(
    ("values", "bits"),
    [
        ([1, -1, 1], 1),          # ±1 layer
        ([1, 0, -1], 1),          # zeros are absent synapses
        ([0, 1], 1),
        ([0, 127], 7),            # unsigned
        ([-128, 127], 8),
        ([-1, 2], 3),             # 2 needs 2 magnitude bits + sign
        ([-4, 3], 3),
        ([0, 0], 1),
        ([4, -8, 12], 3),         # = 4 x [1, -2, 3]: the exponent is stored once per layer
        ([0, 256, -512], 2),      # = 256 x [0, 1, -2]
        ([6, 5], 3),              # odd values: no common factor
    ],
)
def test_weight_bits_from_integer_range(values: list[int], bits: int) -> None:
    assert weight_bits(np.array(values)) == bits


def test_weight_exponent() -> None:
    assert resources.weight_exponent(np.array([4, -8, 12])) == 2
    assert resources.weight_exponent(np.array([0, 3])) == 0
    assert resources.weight_exponent(np.array([0, 0])) == 0


def test_weight_bits_float_needs_a_width() -> None:
    with pytest.raises(SnnccError, match="layer 'fc3' has float weights"):
        weight_bits(np.array([0.5, -0.25]), layer="fc3")
    assert weight_bits(np.array([0.5, -0.25]), default=8) == 8
    assert weight_bits(np.array([3.0, -2.0])) == 3  # integer-valued floats count as integers
    assert weight_bits(np.array([0.5]), 4) == 4


# ------------------------------------------------------------------------------ Loihi encoding


def test_loihi_synapse_bits_groups_of_64_rounded_to_words() -> None:
    # 64 weights x 8 bits + 10 header bits = 522 -> 576 (9 words).
    assert loihi_synapse_bits([64], 8) == 576
    # 65 weights: a full group (576) and a group of 1 (8 + 10 = 18 -> 64).
    assert loihi_synapse_bits([65], 8) == 640
    # 30 weights x 8 + 10 = 250 -> 256; an axon with no weights costs nothing.
    assert loihi_synapse_bits([30, 0, 30], 8) == 512


def test_loihi_encoding_picks_sparse_for_pruned_axons() -> None:
    dense_counts = np.full(10, 64)
    nonzero = np.full(10, 2)
    bits, encoding = loihi_encoding_bits(dense_counts, nonzero, 8, 64)
    # sparse: 2 x (8 + 6 index bits) + 10 = 38 -> 64 per axon.
    assert (bits, encoding) == (640, "sparse")
    bits, encoding = loihi_encoding_bits(dense_counts, dense_counts, 8, 64)
    assert (bits, encoding) == (5760, "dense")


def test_loihi_stored_widths() -> None:
    assert resources.loihi_stored_weight_bits(7) == 8
    assert resources.loihi_stored_weight_bits(1) == 1
    with pytest.raises(SnnccError, match="at most 8-bit"):
        resources.loihi_stored_weight_bits(9)
    assert resources.loihi_index_bits(1024) == 10
    assert resources.loihi_index_bits(3) == 6


# ---------------------------------------------------------------------------------------- layers


def _dense_graph(weight: np.ndarray) -> ir.Graph:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(weight.shape[1],))),
                ("fc", ir.Dense(weight=weight)),
                ("if", ir.IF(threshold=np.array([1]))))
    return graph


def test_dense_layer_figures() -> None:
    weight = np.array([[1, -3, 0], [2, 0, 0]], dtype=np.int32)
    layer = resources.analyze_layer(_dense_graph(weight), "fc")
    assert (layer.neurons, layer.fan_in, layer.fan_out) == (2, 3, 2)
    assert (layer.synapses, layer.nonzero_synapses) == (6, 3)
    assert layer.weight_bits == 3                       # -3..2
    assert layer.weight_memory_bytes == 3               # ceil(6 x 3 / 8)
    assert layer.sparse_weight_memory_bytes == 2        # ceil(3 x (3 + 2) / 8)
    assert layer.state_memory_bytes == 6                # 2 neurons x 24 bits
    assert layer.neuron_node == "if" and layer.spike_node == "input"
    assert layer.pruned


def test_conv_synapses_are_unrolled_without_padding() -> None:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(1, 4, 4))),
                ("conv", ir.Conv2d(weight=np.ones((2, 1, 3, 3), dtype=np.int8), padding=1)),
                ("if", ir.IF(threshold=np.array([1]))))
    layer = resources.analyze_layer(graph, "conv")
    # Per axis, taps reach 3, 4, 3 outputs (edges lose one): 10 x 10 per (o, c), 2 channels.
    assert layer.synapses == 200
    assert layer.fan_in == 9
    assert layer.fan_out == 2 * 3 * 3
    assert layer.parameters == 18 and layer.kernel_input == (1, 3, 3)


def test_dense_after_flatten_reads_a_kernel() -> None:
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(2, 3, 3))), ("flatten", ir.Flatten()),
                ("fc", ir.Dense(weight=np.ones((4, 18), dtype=np.int8))))
    assert resources.analyze_layer(graph, "fc").kernel_input == (2, 3, 3)


def test_dynapcnn_memory_formulas() -> None:
    # c * 2^(ceil(log2(kx*ky)) + ceil(log2 f)): 2 * 2^(4 + 3) = 256.
    assert resources.dynapcnn_kernel_memory(2, 3, 3, 5) == 256
    # f * 2^(ceil(log2 fy) + ceil(log2 fx)): 5 * 2^(3 + 3) = 320.
    assert resources.dynapcnn_neuron_memory(5, 6, 5) == 320
    assert resources.ceil_log2(1) == 0 and resources.ceil_log2(16) == 4


def test_analysis_does_not_mutate_the_graph(tiny_cnn: ir.Graph) -> None:
    before = {n: {k: v.copy() for k, v in node.arrays().items()} for n, node in tiny_cnn.nodes.items()}
    resources.analyze_layers(tiny_cnn, default_bits=8)
    for name, node in tiny_cnn.nodes.items():
        for key, value in node.arrays().items():
            np.testing.assert_array_equal(value, before[name][key])


# ---------------------------------------------------------------------------------- chip profiles


def test_builtin_profiles_load_and_cite_sources() -> None:
    names = resources.builtin_chips()
    for required in ("loihi", "loihi2", "kapoho-point", "speck", "truenorth", "zynq-7020"):
        assert required in names
    for name in names:
        chip = resources.load_chip(name)
        assert chip.name == name
        text = (resources.CHIPS_DIR / f"{name}.yaml").read_text()
        # Every per-core limit (and a neuromorphic chip's core count) carries a source comment.
        for line in text.splitlines():
            counted = line.startswith("cores_per_chip") and chip.kind == "neuromorphic"
            if re.match(r"\s+(\w+): \[?\d", line) or counted:
                assert "#" in line and "[" in line.split("#", 1)[1], f"{name}: {line!r} unsourced"


def test_builtin_numbers_match_the_public_figures() -> None:
    loihi = resources.load_chip("loihi")
    assert loihi.cores_per_chip == 128 and loihi.core["neurons"] == 1024
    assert loihi.core["synapse_memory_bits"] == 16384 * 64
    assert resources.load_chip("kapoho-point").chips == 8
    assert resources.load_chip("loihi2").estimate
    speck = resources.load_chip("speck")
    assert speck.core["kernel_memory"] == tuple(k * 1024 for k in (16, 16, 16, 32, 32, 64, 64, 16, 16))
    assert speck.core["neuron_memory"] == tuple(k * 1024 for k in (64, 64, 64, 32, 32, 16, 16, 16, 16))
    truenorth = resources.load_chip("truenorth")
    assert (truenorth.cores_per_chip, truenorth.core["neurons"], truenorth.core["input_axons"]) == (
        4096, 256, 256)
    assert resources.load_chip("zynq-7020").core["bram36"] == 140


def _profile(**overrides: object) -> dict:
    data = {"name": "mine", "kind": "neuromorphic", "cores_per_chip": 4, "core": {"neurons": 10}}
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_profile(core={"neurons": "many"}), "key 'core.neurons' must be a positive integer, got 'many'"),
        (_profile(cores_per_chip=0), "key 'cores_per_chip' must be a positive integer, got 0"),
        (_profile(split="yes"), "key 'split' must be true or false, got 'yes'"),
        (_profile(kind="gpu"), "key 'kind' must be one of 'neuromorphic', 'fpga', got 'gpu'"),
        (_profile(core={"neurons": [1, 2]}), "key 'core.neurons' must be a positive integer or a "
                                              "list of 4 positive integers"),
        (_profile(core={"flux": 3}), "unknown key 'core.flux'"),
        (_profile(colour="red"), "unknown key 'colour'"),
        ({"name": "x", "kind": "fpga", "core": {"bram36": 1}}, "missing required key 'cores_per_chip'"),
        (_profile(synapse_encoding="zip"), "key 'synapse_encoding' must be one of"),
        ([1, 2], "expected a mapping at the top level"),
    ],
)
def test_profile_validation_names_key_and_type(data: object, message: str) -> None:
    with pytest.raises(SnnccError, match=re.escape(message)):
        resources.chip_from_dict(data, "my-chip.yaml")


def test_user_profile_file(tmp_path) -> None:
    path = tmp_path / "my-chip.yaml"
    path.write_text("name: mine\nkind: neuromorphic\ncores_per_chip: 2\ncore:\n  neurons: 8\n")
    chip = resources.load_chip(str(path))
    assert chip.core == {"neurons": 8} and chip.layers_per_core == 1
    path.write_text("name: [unclosed\n")
    with pytest.raises(SnnccError, match="not valid YAML"):
        resources.load_chip(str(path))
    with pytest.raises(SnnccError, match="no such file"):
        resources.load_chip(str(tmp_path / "absent.yaml"))
    with pytest.raises(SnnccError, match="unknown chip 'loihi9'"):
        resources.load_chip("loihi9")
