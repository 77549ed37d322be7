"""Graph IR: construction, shape inference, validation, integer checks, save/load."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_cnn_graph, tiny_mlp_graph

from snncc import ir
from snncc.errors import SnnccError


def test_infer_shapes_of_cnn():
    shapes = tiny_cnn_graph().infer_shapes()
    assert shapes["conv1"] == (4, 8, 8)
    assert shapes["pool1"] == (4, 4, 4)
    assert shapes["pool2"] == (6, 2, 2)
    assert shapes["flatten"] == (24,)
    assert shapes["fc"] == (3,)


def test_conv_output_size_formula_with_stride_dilation_padding():
    conv = ir.Conv2d(weight=np.zeros((2, 3, 3, 3)), stride=2, padding=(1, 0, 1, 0), dilation=2)
    # H: (9 + 2 - 2*2 - 1) // 2 + 1 = 4 ; W: (9 + 0 - 4 - 1) // 2 + 1 = 3
    assert conv.output_shape([(3, 9, 9)]) == (2, 4, 3)


def test_shape_mismatch_names_the_node():
    graph = tiny_mlp_graph()
    graph.nodes["fc2"].weight = np.zeros((4, 99))
    with pytest.raises(SnnccError, match="'fc2'.*expects \\(99,\\)"):
        graph.validate()


def test_validate_rejects_cycles_and_dangling_nodes():
    graph = tiny_mlp_graph()
    graph.add("extra", ir.ReLU(), ["fc1"])
    with pytest.raises(SnnccError, match="exactly one output"):
        graph.validate()


def test_bad_parameters_rejected():
    with pytest.raises(SnnccError, match="positive"):
        ir.IF(threshold=np.array([0.0]))
    with pytest.raises(SnnccError, match="coding"):
        ir.Input(shape=(3,), coding="morse")
    with pytest.raises(SnnccError, match="channels"):
        ir.Input(shape=(3, 2, 2), mean=[0.1, 0.2])
    with pytest.raises(SnnccError, match="reset"):
        ir.IF(reset="sideways")


def test_broadcast_per_neuron_layer_channel_neuron():
    shape = (2, 3, 3)
    assert ir.broadcast_per_neuron(np.array([5]), shape).shape == shape
    per_channel = ir.broadcast_per_neuron(np.array([1, 2]), shape)
    assert per_channel[1, 2, 2] == 2 and per_channel[0, 0, 0] == 1
    with pytest.raises(SnnccError):
        ir.broadcast_per_neuron(np.array([1, 2, 3]), shape)


def test_check_integer_requires_integer_parameters():
    graph = tiny_mlp_graph()
    graph.replace("relu1", ir.IF(threshold=np.array([3]), v_init=np.array([1])))
    graph.add("readout", ir.Readout(), ["fc2"])
    with pytest.raises(SnnccError, match="preprocessing"):
        graph.check_integer()
    graph.input.scale = 1.0
    with pytest.raises(SnnccError, match="'fc1'.*non-integer"):
        graph.check_integer()
    for name in ("fc1", "fc2"):
        node = graph.nodes[name]
        node.weight = np.rint(node.weight * 10).astype(np.int64)
        node.bias = np.rint(node.bias * 10).astype(np.int64)
    graph.check_integer()


def test_save_load_roundtrip_is_exact(tmp_path):
    graph = tiny_cnn_graph()
    graph.metadata["note"] = "x"
    graph.add("readout", ir.Readout(mode="first_spike", threshold=np.array([7])), ["fc"])
    path = graph.save(tmp_path / "g.snn.npz")
    loaded = ir.Graph.load(path)
    assert list(loaded.nodes) == list(graph.nodes)
    assert loaded.metadata["note"] == "x"
    for name, node in graph.nodes.items():
        other = loaded.nodes[name]
        assert type(other) is type(node)
        assert loaded.inputs_of(name) == graph.inputs_of(name)
        for key, value in node.arrays().items():
            np.testing.assert_array_equal(other.arrays()[key], value)
            assert other.arrays()[key].dtype == value.dtype
    assert loaded.nodes["conv1"].padding == (1, 1, 1, 1)


def test_load_rejects_corrupt_truncated_and_foreign_files(tmp_path):
    path = tiny_mlp_graph().save(tmp_path / "g.snn.npz")
    data = path.read_bytes()
    (tmp_path / "cut.snn.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SnnccError, match="corrupt or truncated"):
        ir.Graph.load(tmp_path / "cut.snn.npz")
    (tmp_path / "junk.snn.npz").write_bytes(b"hello")
    with pytest.raises(SnnccError, match="corrupt or truncated"):
        ir.Graph.load(tmp_path / "junk.snn.npz")
    with pytest.raises(SnnccError, match="no such file"):
        ir.Graph.load(tmp_path / "missing.snn.npz")


def test_save_is_atomic_on_unwritable_directory(tmp_path):
    with pytest.raises(SnnccError, match="does not exist"):
        tiny_mlp_graph().save(tmp_path / "nope" / "g.snn.npz")


def test_graph_editing_helpers():
    graph = tiny_mlp_graph()
    graph.insert_after("fc1", "clip", ir.Clip(0, 1))
    assert graph.inputs_of("relu1") == ["clip"]
    graph.bypass("clip")
    assert graph.inputs_of("relu1") == ["fc1"]
    copy = graph.copy()
    copy.nodes["fc1"].weight[0, 0] = 123.0
    assert graph.nodes["fc1"].weight[0, 0] != 123.0


def test_quantization_format_and_raw_range_are_typed_and_saved(tmp_path):
    graph = ir.Graph({"source": "test"})
    graph.chain(
        ("input", ir.Input(shape=(4,), raw_range=(-8, 7))),
        ("fc", ir.Dense(weight=np.array([[2, -4, 6, 8]]), bias=np.array([12]))),
        ("readout", ir.Readout()),
    )
    graph.quantization = ir.Quantization("lava", 8, {"fc": ir.LayerQuantization(1, 8, 2, 4)})
    loaded = ir.Graph.load(graph.save(tmp_path / "g.snn.npz"))
    assert loaded.quantization == graph.quantization
    assert loaded.input.raw_range == (-8.0, 7.0)
    assert loaded.copy().quantization == graph.quantization
    np.testing.assert_array_equal(loaded.quantization.layers["fc"].round_bias(np.array([5, -7])),
                                  [4, -8])
    with pytest.raises(SnnccError, match="raw input range"):
        ir.Input(shape=(4,), raw_range=(3, 1))


def test_files_with_the_old_quantize_metadata_load_as_the_typed_format(tmp_path):
    graph = ir.Graph({"quantize": {"target": "generic", "bits": 4,
                                   "layers": {"fc": {"weight_exponent": 0, "weight_bits": 4,
                                                     "bias_exponent": 0, "scale": 1.0}}}})
    graph.chain(("input", ir.Input(shape=(2,))), ("fc", ir.Dense(weight=np.ones((1, 2)))),
                ("readout", ir.Readout()))
    loaded = ir.Graph.load(graph.save(tmp_path / "old.snn.npz"))
    assert "quantize" not in loaded.metadata
    assert loaded.quantization.layers["fc"].weight_bits == 4


def test_leaky_nodes_save_and_load(tmp_path):
    graph = ir.Graph()
    graph.chain(("input", ir.Input(shape=(3,))), ("fc", ir.Dense(weight=np.ones((2, 3)))),
                ("lif", ir.CubaLIF(threshold=np.array([1.5]), du=np.array([100.0, 7.5]),
                                   dv=np.array([409.6]), reset="subtract", reset_delay=True,
                                   comparison=">=")),
                ("fc2", ir.Dense(weight=np.ones((2, 2)))), ("readout", ir.Readout(dv=12.5)))
    back = ir.Graph.load(graph.save(tmp_path / "g.snn.npz"))
    lif = back.nodes["lif"]
    assert (lif.reset, lif.reset_delay, lif.comparison) == ("subtract", True, ">=")
    np.testing.assert_array_equal(lif.du, [100.0, 7.5])
    assert back.nodes["readout"].dv == 12.5


def test_leaky_node_rules_are_checked():
    with pytest.raises(SnnccError, match="decay dv"):
        ir.LIF(dv=np.array([5000]))
    with pytest.raises(SnnccError, match="comparison"):
        ir.LIF(comparison="<")
    assert ir.LIF(reset="zero", reset_delay=True).reset_delay is False  # same timing for zero


def test_fingerprint_follows_every_value_the_graph_holds():
    graph = tiny_mlp_graph()
    assert graph.copy().fingerprint() == graph.fingerprint() == tiny_mlp_graph().fingerprint()
    for change in (lambda g: g.nodes["fc1"].weight.__setitem__((0, 0), 1.5),
                   lambda g: setattr(g.nodes["fc1"], "weight", g.nodes["fc1"].weight.astype("f4")),
                   lambda g: g.metadata.__setitem__("passes", ["convert"]),
                   lambda g: setattr(g.nodes["input"], "scale", 1.0)):
        changed = graph.copy()
        change(changed)
        assert changed.fingerprint() != graph.fingerprint()
