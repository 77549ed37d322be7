"""ONNX frontend: every handler and fusion rule against onnxruntime, the shared models, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_factory import ModelBuilder, run_ort

from snncc import ir
from snncc.datasets import arrange, load_dataset
from snncc.engines import run_ann
from snncc.errors import SnnccError, UnsupportedError
from snncc.frontend.onnx_import import load_onnx, read_sidecar, supported_ops

SHARED_MODELS = ("fashion_cnn_maxpool", "mnist_cnn_bn", "mnist_cnn_bn_unfused",
                 "mnist_cnn_ratenorm", "mnist_mlp")
OPSETS = (8, 11, 13, 17, 20, 21)


def _inputs(shape: tuple[int, ...], count: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, *shape))


def _compare(tmp_path: Path, builder: ModelBuilder, output: str, x: np.ndarray | None = None,
             name: str = "model", output_shape: tuple[int, ...] | None = None) -> ir.Graph:
    """Save, import, and check run_ann against onnxruntime; returns the imported graph."""
    path = builder.save(tmp_path / f"{name}.onnx", output, output_shape=output_shape)
    graph = load_onnx(path)
    x = _inputs(builder.input_shape) if x is None else x
    batch = builder.batch if isinstance(builder.batch, int) else None
    np.testing.assert_allclose(run_ann(graph, x), run_ort(path, x, batch), rtol=1e-4, atol=1e-5)
    return graph


def _types(graph: ir.Graph) -> list[str]:
    return [type(graph.nodes[n]).__name__ for n in graph.topological_order()]


def _error(tmp_path: Path, builder: ModelBuilder, output: str,
           output_shape: tuple[int, ...] | None = None, **kwargs) -> str:
    path = builder.save(tmp_path / "bad.onnx", output, output_shape=output_shape)
    with pytest.raises(SnnccError) as caught:
        load_onnx(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def _small_cnn(opset: int, batch: str | int = "N") -> tuple[ModelBuilder, str]:
    """Conv-BN-Relu-AvgPool-Conv-Relu-MaxPool-Flatten-Gemm-Relu-Gemm in the torch legacy style."""
    b = ModelBuilder((2, 8, 8), opset=opset, batch=batch)
    y = b.op("Conv", ["x", b.random(4, 2, 3, 3), b.random(4)], kernel_shape=[3, 3],
             pads=[1, 1, 1, 1])
    y = b.op("BatchNormalization", [y, b.const([1.5, 0.5, 1.0, 2.0]), b.random(4),
                                    b.random(4), b.const([0.5, 1.0, 2.0, 0.7])], epsilon=1e-5)
    y = b.op("Relu", [y])
    y = b.op("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("Conv", [y, b.random(6, 4, 3, 3), b.random(6)], kernel_shape=[3, 3],
             pads=[1, 1, 1, 1])
    y = b.op("Relu", [y])
    y = b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])
    y = b.op("Flatten", [y], axis=1)
    y = b.op("Gemm", [y, b.random(10, 24), b.random(10)], transB=1)
    y = b.op("Relu", [y])
    return b, b.op("Gemm", [y, b.random(3, 10), b.random(3)], transB=1)


# ------------------------------------------------------------------------- models across opsets


@pytest.mark.parametrize("opset", OPSETS)
def test_cnn_matches_onnxruntime_across_opsets(tmp_path: Path, opset: int) -> None:
    builder, output = _small_cnn(opset)
    graph = _compare(tmp_path, builder, output)
    assert _types(graph) == ["Input", "Conv2d", "ReLU", "SumPool2d", "Conv2d", "ReLU", "MaxPool2d",
                             "Flatten", "Dense", "ReLU", "Dense"]
    assert graph.metadata["opset"] == opset


def test_legacy_ir3_model_lists_initializers_as_inputs(tmp_path: Path) -> None:
    builder = ModelBuilder((5,), opset=8, ir_version=3)
    output = builder.op("Gemm", ["x", builder.random(4, 5), builder.random(4)], transB=1)
    graph = _compare(tmp_path, builder, output)
    assert _types(graph) == ["Input", "Dense"]
    assert graph.metadata["ir_version"] == 3


def test_fixed_batch_with_shape_gather_concat_reshape(tmp_path: Path) -> None:
    """A dynamo-style fixed batch of 2 and a Shape->Gather->Unsqueeze->Concat->Reshape chain."""
    b = ModelBuilder((2, 4, 4), opset=13, batch=2)
    y = b.op("Relu", ["x"])
    shape = b.op("Shape", [y])
    batch = b.op("Gather", [shape, b.const(0, dtype=np.int64)], axis=0)
    batch = b.op("Unsqueeze", [batch, b.const([0], dtype=np.int64)])
    target = b.op("Concat", [batch, b.const([-1], dtype=np.int64)], axis=0)
    y = b.op("Reshape", [y, target])
    output = b.op("Gemm", [y, b.random(3, 32), b.random(3)], transB=1)
    graph = _compare(tmp_path, b, output, _inputs((2, 4, 4), count=6))
    assert graph.metadata["batch"] == 2
    assert _types(graph) == ["Input", "ReLU", "Flatten", "Dense"]


def test_fixed_batch_constants_with_equal_rows(tmp_path: Path) -> None:
    """Exporters with a fixed batch may materialise a bias per batch row; equal rows are fine."""
    b = ModelBuilder((4,), opset=13, batch=2)
    row = np.random.default_rng(2).normal(size=3)
    y = b.op("Gemm", ["x", b.random(3, 4), b.const(np.stack([row, row]))], transB=1)
    output = b.op("Add", [y, b.const(np.stack([row, row]))])
    graph = _compare(tmp_path, b, output)
    assert _types(graph) == ["Input", "Dense"]
    b = ModelBuilder((4,), opset=13, batch=2)
    y = b.op("Add", ["x", b.random(2, 4)], name="rowwise")
    assert "varies along the batch axis" in _error(tmp_path, b, y)


@pytest.mark.parametrize("opset", (8, 13))
def test_dynamic_batch_shape_chain(tmp_path: Path, opset: int) -> None:
    b = ModelBuilder((3, 4, 4), opset=opset)
    y = b.op("Relu", ["x"])
    shape = b.op("Shape", [y])
    batch = b.op("Slice", [shape, b.const([0], dtype=np.int64), b.const([1], dtype=np.int64)]) \
        if opset >= 10 else b.op("Slice", [shape], starts=[0], ends=[1])
    size = b.op("ReduceProd", [b.op("Slice", [shape], starts=[1], ends=[4])], keepdims=1) \
        if opset < 10 else b.op("ReduceProd", [b.op("Slice", [shape, b.const([1], dtype=np.int64),
                                                                b.const([4], dtype=np.int64)])],
                                keepdims=1)
    target = b.op("Concat", [batch, size], axis=0)
    output = b.op("Reshape", [y, target])
    graph = _compare(tmp_path, b, output, output_shape=(48,))
    assert graph.metadata["batch"] is None
    assert _types(graph) == ["Input", "ReLU", "Flatten"]


# ----------------------------------------------------------------------------- handlers one by one


@pytest.mark.parametrize("attrs", [
    {"pads": [1, 0, 2, 1], "strides": [2, 1]},
    {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
    {"group": 2},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "VALID"},
])
def test_conv_attributes(tmp_path: Path, attrs: dict) -> None:
    b = ModelBuilder((4, 9, 9), opset=11)
    groups = attrs.get("group", 1)
    output = b.op("Conv", ["x", b.random(6, 4 // groups, 3, 3), b.random(6)],
                  kernel_shape=[3, 3], **attrs)
    graph = _compare(tmp_path, b, output)
    assert _types(graph) == ["Input", "Conv2d"]


def test_conv_without_bias(tmp_path: Path) -> None:
    b = ModelBuilder((1, 6, 6))
    graph = _compare(tmp_path, b, b.op("Conv", ["x", b.random(2, 1, 3, 3)], kernel_shape=[3, 3]))
    assert graph.nodes[graph.of_type(ir.Conv2d)[0]].bias is None


@pytest.mark.parametrize("attrs,bias_shape", [
    ({"alpha": 0.5, "beta": 2.0, "transB": 1}, (4,)),
    ({"transB": 0}, (1, 4)),
    ({"alpha": 1.5}, ()),
    ({"transB": 1}, None),
])
def test_gemm_variants(tmp_path: Path, attrs: dict, bias_shape: tuple | None) -> None:
    b = ModelBuilder((5,), opset=13)
    weight = b.random(4, 5) if attrs.get("transB") else b.random(5, 4)
    inputs = ["x", weight] + ([] if bias_shape is None else [b.random(*bias_shape)])
    graph = _compare(tmp_path, b, b.op("Gemm", inputs, **attrs))
    assert _types(graph) == ["Input", "Dense"]


def test_keras_matmul_add_becomes_one_dense(tmp_path: Path) -> None:
    b = ModelBuilder((6,), opset=13)
    y = b.op("MatMul", ["x", b.random(6, 5)])
    y = b.op("Add", [y, b.random(5)])
    y = b.op("Relu", [y])
    y = b.op("MatMul", [y, b.random(5, 3)])
    output = b.op("Add", [b.random(3), y])
    graph = _compare(tmp_path, b, output)
    assert _types(graph) == ["Input", "Dense", "ReLU", "Dense"]
    assert all(graph.nodes[n].bias is not None for n in graph.of_type(ir.Dense))


def test_dense_dense_without_activation_fused(tmp_path: Path) -> None:
    b = ModelBuilder((6,), opset=13)
    y = b.op("Gemm", ["x", b.random(8, 6), b.random(8)], transB=1)
    y = b.op("Dropout", [y])
    y = b.op("Gemm", [y, b.random(4, 8), b.random(4)], transB=1)
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "Dense"]
    (dense,) = graph.of_type(ir.Dense)
    assert len(graph.metadata["onnx_nodes"][dense]) == 2


def test_keras_bn_as_mul_add_on_dense_features(tmp_path: Path) -> None:
    """Keras BatchNormalization often exports as Mul + Add after MatMul; it folds into the Dense."""
    b = ModelBuilder((6,), opset=13)
    y = b.op("MatMul", ["x", b.random(6, 5)])
    y = b.op("Mul", [y, b.random(5)])
    y = b.op("Add", [y, b.random(5)])
    y = b.op("Relu", [y])
    output = b.op("MatMul", [y, b.random(5, 2)])
    graph = _compare(tmp_path, b, output)
    assert _types(graph) == ["Input", "Dense", "ReLU", "Dense"]


def test_sub_mul_div_constants(tmp_path: Path) -> None:
    b = ModelBuilder((3, 5, 5), opset=13)
    y = b.op("Conv", ["x", b.random(4, 3, 3, 3), b.random(4)], kernel_shape=[3, 3])
    y = b.op("Sub", [y, b.random(1, 4, 1, 1)])
    y = b.op("Mul", [b.const(np.array([[[2.0]], [[3.0]], [[0.5]], [[-1.0]]])), y])
    y = b.op("Div", [y, b.const(4.0)])
    y = b.op("Sub", [b.const(1.0), y])
    output = b.op("Relu", [y])
    graph = _compare(tmp_path, b, output)
    assert _types(graph) == ["Input", "Conv2d", "ReLU"]


def test_constant_of_shape_zeros_added(tmp_path: Path) -> None:
    """``x + zeros_like(x)`` built from Shape/ConstantOfShape: a uniform constant is a scalar."""
    b = ModelBuilder((2, 3, 3), opset=13)
    zeros = b.op("ConstantOfShape", [b.op("Shape", ["x"])],
                 value=onnx.numpy_helper.from_array(np.array([0.5], dtype=np.float32)))
    graph = _compare(tmp_path, b, b.op("Relu", [b.op("Add", ["x", zeros])]))
    assert _types(graph) == ["Input", "ReLU"]


def test_residual_add_of_two_tensors(tmp_path: Path) -> None:
    b = ModelBuilder((2, 6, 6), opset=13)
    a = b.op("Relu", [b.op("Conv", ["x", b.random(2, 2, 3, 3), b.random(2)], kernel_shape=[3, 3],
                           pads=[1, 1, 1, 1])])
    c = b.op("Conv", [a, b.random(2, 2, 3, 3), b.random(2)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.op("Relu", [b.op("Add", [c, a])])
    output = b.op("GlobalAveragePool", [y])
    graph = _compare(tmp_path, b, output)
    assert "Add" in _types(graph)
    (add,) = graph.of_type(ir.Add)
    assert len(graph.inputs_of(add)) == 2


def test_clip_attribute_form_opset8(tmp_path: Path) -> None:
    b = ModelBuilder((5,), opset=8)
    output = b.op("Clip", ["x"], min=-0.5, max=0.7)
    graph = _compare(tmp_path, b, output)
    (clip,) = graph.of_type(ir.Clip)
    assert (graph.nodes[clip].low, graph.nodes[clip].high) == (-0.5, pytest.approx(0.7))


@pytest.mark.parametrize("opset", (11, 13))
def test_clip_input_form_and_relu6(tmp_path: Path, opset: int) -> None:
    b = ModelBuilder((5,), opset=opset)
    y = b.op("Clip", ["x", b.const(0.0), b.const(6.0)])
    y = b.op("Clip", [y, b.const(-1.0)])  # max omitted: no upper bound
    y = b.op("Clip", [y, "", b.const(5.0)])  # min omitted
    graph = _compare(tmp_path, b, y, _inputs((5,)) * 4)
    clips = [graph.nodes[n] for n in graph.of_type(ir.Clip)]
    assert [(c.low, c.high) for c in clips] == [(0.0, 6.0), (-1.0, np.inf), (-np.inf, 5.0)]


def test_clip_zero_to_inf_is_relu(tmp_path: Path) -> None:
    b = ModelBuilder((5,), opset=13)
    graph = _compare(tmp_path, b, b.op("Clip", ["x", b.const(0.0)]))
    assert _types(graph) == ["Input", "ReLU"]


def test_rate_norm_clip_of_div_folds_theta(tmp_path: Path) -> None:
    """Clip(Conv(x)/θ, 0, 1): 1/θ moves into the conv weights, the activation is Clip(0, 1)."""
    b = ModelBuilder((1, 6, 6), opset=13)
    weight = np.random.default_rng(3).normal(0, 0.5, (3, 1, 3, 3))
    y = b.op("Conv", ["x", b.const(weight)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.op("Div", [y, b.const(2.5)])
    y = b.op("Clip", [y, b.constant_node(0.0), b.constant_node(1.0)])
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "Conv2d", "Clip"]
    conv = graph.nodes[graph.of_type(ir.Conv2d)[0]]
    np.testing.assert_allclose(conv.weight, weight.astype(np.float32) / 2.5, rtol=1e-6)
    clip = graph.nodes[graph.of_type(ir.Clip)[0]]
    assert (clip.low, clip.high) == (0.0, 1.0)


def test_batchnorm_fused_into_conv_and_gemm(tmp_path: Path) -> None:
    b = ModelBuilder((2, 5, 5), opset=13)

    def batch_norm(y: str, channels: int) -> str:
        return b.op("BatchNormalization", [y, b.random(channels), b.random(channels),
                                           b.random(channels), b.const(np.full(channels, 0.8))])

    y = batch_norm(b.op("Conv", ["x", b.random(3, 2, 3, 3), b.random(3)], kernel_shape=[3, 3]), 3)
    y = b.op("Flatten", [b.op("Relu", [y])])
    y = batch_norm(b.op("Gemm", [y, b.random(4, 27)], transB=1), 4)
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "Conv2d", "ReLU", "Flatten", "Dense"]


def test_batchnorm_before_padded_conv_stays_affine(tmp_path: Path) -> None:
    b = ModelBuilder((2, 5, 5), opset=13)
    y = b.op("Relu", ["x"])
    y = b.op("BatchNormalization", [y, b.random(2), b.random(2), b.random(2), b.const([1.0, 2.0])])
    y = b.op("Conv", [y, b.random(3, 2, 3, 3), b.random(3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "ReLU", "Affine", "Conv2d"]


def test_batchnorm_before_unpadded_conv_folds_forward(tmp_path: Path) -> None:
    b = ModelBuilder((4, 5, 5), opset=13)
    y = b.op("Relu", ["x"])
    y = b.op("BatchNormalization", [y, b.random(4), b.random(4), b.random(4),
                                    b.const([1.0, 2.0, 0.5, 1.5])])
    y = b.op("Conv", [y, b.random(6, 2, 3, 3), b.random(6)], kernel_shape=[3, 3], group=2)
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "ReLU", "Conv2d"]


def test_scale_only_before_padded_conv_folds(tmp_path: Path) -> None:
    b = ModelBuilder((2, 5, 5), opset=13)
    y = b.op("Relu", ["x"])
    y = b.op("Mul", [y, b.const(np.array([2.0, -0.5]).reshape(2, 1, 1))])
    y = b.op("Conv", [y, b.random(3, 2, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "ReLU", "Conv2d"]


def test_batchnorm_before_flatten_dense_folds(tmp_path: Path) -> None:
    b = ModelBuilder((2, 3, 3), opset=13)
    y = b.op("Relu", ["x"])
    y = b.op("BatchNormalization", [y, b.random(2), b.random(2), b.random(2), b.const([1.0, 3.0])])
    y = b.op("Flatten", [y])
    y = b.op("Gemm", [y, b.random(4, 18), b.random(4)], transB=1)
    graph = _compare(tmp_path, b, y)
    assert _types(graph) == ["Input", "ReLU", "Flatten", "Dense"]


def test_normalization_after_input_moves_into_preprocessing(tmp_path: Path) -> None:
    """A Keras Rescaling/Normalization layer in the graph becomes Input preprocessing."""
    b = ModelBuilder((3, 4, 4), opset=13)
    y = b.op("Mul", ["x", b.const(1 / 255)])
    y = b.op("Sub", [y, b.const(np.array([0.5, 0.4, 0.3]).reshape(3, 1, 1))])
    y = b.op("Div", [y, b.const(np.array([0.2, 0.25, 0.3]).reshape(3, 1, 1))])
    y = b.op("Conv", [y, b.random(2, 3, 3, 3)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 4, 4)).astype(np.uint8)
    graph = _compare(tmp_path, b, y, x)
    assert _types(graph) == ["Input", "Conv2d"]
    np.testing.assert_allclose(graph.input.preprocess(x[:1]),
                               ((x[:1] / 255 - np.array([0.5, 0.4, 0.3])[:, None, None])
                                / np.array([0.2, 0.25, 0.3])[:, None, None]), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    {"kernel_shape": [3, 2], "strides": [2, 1], "count_include_pad": 0},
])
def test_average_pool(tmp_path: Path, attrs: dict) -> None:
    b = ModelBuilder((2, 6, 6), opset=11)
    graph = _compare(tmp_path, b, b.op("AveragePool", ["x"], **attrs))
    (pool,) = graph.of_type(ir.SumPool2d)
    kernel = attrs["kernel_shape"]
    assert graph.nodes[pool].scale == pytest.approx(1 / (kernel[0] * kernel[1]))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
])
def test_max_pool(tmp_path: Path, attrs: dict) -> None:
    b = ModelBuilder((2, 7, 7), opset=11)
    graph = _compare(tmp_path, b, b.op("MaxPool", ["x"], **attrs))
    assert _types(graph) == ["Input", "MaxPool2d"]


def test_global_average_pool_head(tmp_path: Path) -> None:
    b = ModelBuilder((3, 6, 6), opset=13)
    y = b.op("Relu", [b.op("Conv", ["x", b.random(5, 3, 3, 3), b.random(5)], kernel_shape=[3, 3])])
    y = b.op("GlobalAveragePool", [y])
    y = b.op("Flatten", [y])
    output = b.op("Gemm", [y, b.random(4, 5), b.random(4)], transB=1)
    graph = _compare(tmp_path, b, output)
    assert _types(graph) == ["Input", "Conv2d", "ReLU", "SumPool2d", "Flatten", "Dense"]


def test_global_max_pool(tmp_path: Path) -> None:
    b = ModelBuilder((3, 5, 4), opset=13)
    graph = _compare(tmp_path, b, b.op("GlobalMaxPool", ["x"]))
    assert _types(graph) == ["Input", "MaxPool2d"]


@pytest.mark.parametrize("opset", (8, 13))
def test_softmax_and_logsoftmax_heads_are_dropped(tmp_path: Path, opset: int) -> None:
    for op_type in ("Softmax", "LogSoftmax"):
        b = ModelBuilder((5,), opset=opset)
        logits = b.op("Gemm", ["x", b.random(3, 5), b.random(3)], transB=1)
        output = b.op("Identity", [b.op(op_type, [logits])])
        path = b.save(tmp_path / f"{op_type}.onnx", output)
        graph = load_onnx(path)
        assert _types(graph) == ["Input", "Dense"]
        x = _inputs((5,), count=20)
        np.testing.assert_array_equal(run_ann(graph, x).argmax(1), run_ort(path, x).argmax(1))


@pytest.mark.parametrize("shape,axis", [((2, 3, 4), 1), ((1, 3, 4), 2), ((1, 1, 4), -1)])
def test_flatten_axes(tmp_path: Path, shape: tuple, axis: int) -> None:
    """ONNX Flatten makes (outer, inner); the outer part must be the batch alone."""
    b = ModelBuilder(shape, opset=13)
    graph = _compare(tmp_path, b, b.op("Flatten", [b.op("Relu", ["x"])], axis=axis))
    assert graph.infer_shapes()[graph.output_name] == (int(np.prod(shape)),)


@pytest.mark.parametrize("target,expected", [
    ([0, -1], "Flatten"), ([-1, 24], "Flatten"), ([0, 6, -1], "Reshape"), ([0, 0, 12], "Reshape"),
    ([0, 2, 3, 4], None),
])
def test_reshape_targets(tmp_path: Path, target: list, expected: str | None) -> None:
    b = ModelBuilder((2, 3, 4), opset=13)
    y = b.op("Relu", ["x"])
    graph = _compare(tmp_path, b, b.op("Reshape", [y, b.const(target, dtype=np.int64)]))
    assert _types(graph)[2:] == ([expected] if expected else [])


def test_reshape_shape_from_constant_node(tmp_path: Path) -> None:
    b = ModelBuilder((2, 3, 4), opset=11)
    shape = b.constant_node([0, -1], dtype=np.int64)
    graph = _compare(tmp_path, b, b.op("Reshape", [b.op("Relu", ["x"]), shape]))
    assert _types(graph) == ["Input", "ReLU", "Flatten"]


def test_tf2onnx_style_nhwc_model(tmp_path: Path) -> None:
    """tf2onnx: NHWC input, Transpose to NCHW, conv, Transpose back, Reshape, MatMul + Add."""
    b = ModelBuilder((6, 6, 2), opset=13, input_name="input_1:0")
    y = b.op("Transpose", ["input_1:0"], perm=[0, 3, 1, 2], name="StatefulPartitionedCall/conv2d/Conv2D__6")
    y = b.op("Conv", [y, b.random(3, 2, 3, 3), b.random(3)], kernel_shape=[3, 3],
             auto_pad="SAME_UPPER", name="StatefulPartitionedCall/conv2d/Conv2D")
    y = b.op("Relu", [y], name="StatefulPartitionedCall/conv2d/Relu")
    y = b.op("Transpose", [y], perm=[0, 2, 3, 1], name="StatefulPartitionedCall/conv2d/Relu__8")
    y = b.op("Reshape", [y, b.const([-1, 108], dtype=np.int64)], name="flatten/Reshape")
    y = b.op("MatMul", [y, b.random(108, 4)], name="dense/MatMul")
    output = b.op("Add", [y, b.random(4)], name="dense/BiasAdd")
    graph = _compare(tmp_path, b, output)
    assert graph.metadata["layout"] == "NHWC"
    assert graph.input.shape == (6, 6, 2)
    assert _types(graph) == ["Input", "Transpose", "Conv2d", "ReLU", "Flatten", "Dense"]
    assert "StatefulPartitionedCall_conv2d_Conv2D" in graph.nodes
    assert graph.input_name == "input_1_0"


def test_tf2onnx_style_channels_last_batchnorm_and_global_mean(tmp_path: Path) -> None:
    """Keras BN as Mul/Add by (C,) constants on NHWC data, ReduceMean over H and W as the head."""
    b = ModelBuilder((6, 6, 3), opset=13, input_name="input_1")
    y = b.op("Transpose", ["input_1"], perm=[0, 3, 1, 2])
    y = b.op("Conv", [y, b.random(4, 3, 3, 3), b.random(4)], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.op("Transpose", [y], perm=[0, 2, 3, 1])
    y = b.op("Mul", [y, b.random(4)])
    y = b.op("Add", [y, b.random(4)])
    y = b.op("Relu", [y])
    y = b.op("ReduceMean", [y], axes=[1, 2], keepdims=0)
    y = b.op("MatMul", [y, b.random(4, 3)])
    output = b.op("Softmax", [b.op("Add", [y, b.random(3)])], axis=-1)
    path = b.save(tmp_path / "keras.onnx", output)
    graph = load_onnx(path)
    x = _inputs((6, 6, 3))
    logits = run_ann(graph, x)
    reference = run_ort(path, x)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), reference,
                               rtol=1e-4, atol=1e-6)
    assert _types(graph) == ["Input", "Transpose", "Conv2d", "ReLU", "SumPool2d", "Flatten",
                             "Dense"]


@pytest.mark.parametrize("keepdims", (0, 1))
@pytest.mark.parametrize("axes", ([2, 3], [-2, -1], [1, 2]))
def test_reduce_mean_over_space(tmp_path: Path, axes: list, keepdims: int) -> None:
    for opset in (13, 18):
        b = ModelBuilder((3, 4, 5), opset=opset)
        inputs, attrs = (["x", b.const(axes, dtype=np.int64)], {}) if opset >= 18 else \
            (["x"], {"axes": axes})
        _compare(tmp_path, b, b.op("ReduceMean", inputs, keepdims=keepdims, **attrs))


def test_pad_folds_into_conv_and_average_pool(tmp_path: Path) -> None:
    for opset in (8, 11, 18):
        b = ModelBuilder((2, 6, 6), opset=opset)
        pads = [0, 0, 1, 2, 0, 0, 2, 1]
        if opset < 11:
            y = b.op("Pad", ["x"], pads=pads, mode="constant", value=0.0)
        elif opset < 18:
            y = b.op("Pad", ["x", b.const(pads, dtype=np.int64)])
        else:
            y = b.op("Pad", ["x", b.const([1, 2, 2, 1], dtype=np.int64), b.const(0.0),
                             b.const([2, 3], dtype=np.int64)])
        y = b.op("Conv", [y, b.random(3, 2, 3, 3), b.random(3)], kernel_shape=[3, 3],
                 strides=[2, 2], pads=[1, 0, 0, 1])
        y = b.op("Pad", [y, b.const([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)]) if opset >= 11 \
            else b.op("Pad", [y], pads=[0, 0, 1, 1, 0, 0, 1, 1])
        output = b.op("AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])
        graph = _compare(tmp_path, b, output)
        assert _types(graph) == ["Input", "Conv2d", "SumPool2d"]
        assert graph.nodes[graph.of_type(ir.Conv2d)[0]].padding == (2, 2, 2, 2)
        assert graph.nodes[graph.of_type(ir.SumPool2d)[0]].padding == (1, 1, 1, 1)


def test_pad_before_max_pool_stays_exact(tmp_path: Path) -> None:
    b = ModelBuilder((2, 5, 5), opset=13)
    y = b.op("Pad", ["x", b.const([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)])
    graph = _compare(tmp_path, b, b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2]))
    assert _types(graph) == ["Input", "Conv2d", "MaxPool2d"]


def test_sum_of_tensors(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    a = b.op("Relu", ["x"])
    graph = _compare(tmp_path, b, b.op("Sum", [a, "x", a]))
    assert _types(graph) == ["Input", "ReLU", "Add"]


def test_cntk_style_model(tmp_path: Path) -> None:
    """CNTK (model-zoo mnist-8 style): fixed batch 1, SAME_UPPER conv without bias plus an Add
    of a (C, 1, 1) constant, Reshape of a weight initializer feeding MatMul, (1, K) bias Add."""
    b = ModelBuilder((1, 8, 8), opset=8, batch=1, input_name="Input3")
    y = b.op("Conv", ["Input3", b.random(4, 1, 5, 5)], kernel_shape=[5, 5], strides=[1, 1],
             auto_pad="SAME_UPPER", group=1, dilations=[1, 1], name="Convolution28")
    y = b.op("Add", [y, b.random(4, 1, 1)], name="Plus30")
    y = b.op("Relu", [y], name="ReLU32")
    y = b.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0],
             auto_pad="NOTSET", name="Pooling66")
    y = b.op("Reshape", [y, b.const([1, 64], dtype=np.int64)], name="Times212_reshape0")
    weight = b.op("Reshape", [b.random(4, 4, 4, 10), b.const([64, 10], dtype=np.int64)],
                  name="Times212_reshape1")
    y = b.op("MatMul", [y, weight], name="Times212")
    output = b.op("Add", [y, b.random(1, 10)], name="Plus214")
    graph = _compare(tmp_path, b, output, _inputs((1, 8, 8), count=5))
    assert _types(graph) == ["Input", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Dense"]
    assert list(graph.nodes) == ["Input3", "Convolution28", "ReLU32", "Pooling66",
                                 "Times212_reshape0", "Times212"]


def test_transpose_of_transpose_composes(tmp_path: Path) -> None:
    b = ModelBuilder((2, 3, 4), opset=13)
    y = b.op("Transpose", ["x"], perm=[0, 2, 3, 1])
    y = b.op("Transpose", [y], perm=[0, 3, 1, 2])
    graph = _compare(tmp_path, b, b.op("Relu", [y]))
    assert _types(graph) == ["Input", "ReLU"]


@pytest.mark.parametrize("opset", (11, 13))
def test_squeeze_unsqueeze(tmp_path: Path, opset: int) -> None:
    b = ModelBuilder((4, 1, 1), opset=opset)
    axes = {"axes": [2, 3]} if opset < 13 else {}
    extra = [] if opset < 13 else [b.const([2, -1], dtype=np.int64)]
    y = b.op("Squeeze", ["x", *extra], **axes)
    y = b.op("Gemm", [y, b.random(3, 4)], transB=1)
    extra = [] if opset < 13 else [b.const([-1], dtype=np.int64)]
    y = b.op("Unsqueeze", [y, *extra], **({"axes": [2]} if opset < 13 else {}))
    y = b.op("Relu", [y])
    extra = [] if opset < 13 else [b.const([2], dtype=np.int64)]
    output = b.op("Squeeze", [y, *extra], **({"axes": [2]} if opset < 13 else {}))
    graph = _compare(tmp_path, b, output)
    assert graph.infer_shapes()[graph.output_name] == (3,)


def test_identity_dropout_constant_cast(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    y = b.op("Identity", ["x"])
    y = b.op("Dropout", [y, b.const(0.3), b.const(False, dtype=np.bool_)], outputs=2)
    y = b.op("Cast", [y], to=TensorProto.DOUBLE)
    y = b.op("Cast", [y], to=TensorProto.FLOAT)
    y = b.op("Mul", [y, b.constant_node([1.0, 2.0, 3.0, 4.0])])
    graph = _compare(tmp_path, b, b.op("Relu", [y]))
    assert _types(graph) == ["Input", "ReLU"]  # the Mul moved into the preprocessing


def test_dropout_opset8_ratio_attribute(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=8)
    y = b.op("Dropout", ["x"], ratio=0.5)
    graph = _compare(tmp_path, b, b.op("Relu", [y]))
    assert _types(graph) == ["Input", "ReLU"]


def test_multi_output_constant_folding(tmp_path: Path) -> None:
    """A Split of a weight initializer folds to two constants feeding two Gemms and an Add."""
    b = ModelBuilder((4,), opset=13)
    first, second = "w_top", "w_bottom"
    b.nodes.append(helper.make_node("Split", [b.random(6, 4), b.const([3, 3], dtype=np.int64)],
                                    [first, second], axis=0, name="split_weights"))
    left = b.op("Relu", [b.op("Gemm", ["x", first], transB=1)])
    right = b.op("Gemm", ["x", second], transB=1)
    graph = _compare(tmp_path, b, b.op("Add", [left, right]))
    assert _types(graph) == ["Input", "Dense", "ReLU", "Dense", "Add"]


def test_dead_branches_are_pruned(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    b.op("Relu", ["x"])  # computed, never used
    graph = _compare(tmp_path, b, b.op("Gemm", ["x", b.random(2, 4)], transB=1))
    assert _types(graph) == ["Input", "Dense"]


# ---------------------------------------------------------------------- preprocessing, metadata


def test_preprocessing_from_sidecar_and_override(tmp_path: Path) -> None:
    b = ModelBuilder((3, 2, 2), opset=13)
    path = b.save(tmp_path / "net.onnx", b.op("Relu", ["x"]))
    assert read_sidecar(path) is None
    graph = load_onnx(path)
    assert graph.input.is_identity and graph.metadata["preprocess_source"] == "identity"
    sidecar = {"preprocess": {"scale": 0.5, "mean": [0.1, 0.2, 0.3], "std": 2.0},
               "input_shape": [3, 2, 2], "layout": "NCHW", "dataset": "digits",
               "ann_test_accuracy": 0.5}
    (tmp_path / "net.json").write_text(json.dumps(sidecar))
    assert read_sidecar(path) == sidecar
    graph = load_onnx(path)
    assert graph.input.scale == 0.5 and graph.input.mean.tolist() == [0.1, 0.2, 0.3]
    assert graph.metadata["dataset"] == "digits" and graph.metadata["ann_test_accuracy"] == 0.5
    graph = load_onnx(path, preprocess={"scale": 1.0, "std": [1.0, 2.0, 4.0]})
    assert graph.input.scale == 1.0 and graph.input.std.tolist() == [1.0, 2.0, 4.0]
    assert graph.input.mean.tolist() == [0.1, 0.2, 0.3]
    assert graph.metadata["preprocess_source"] == "sidecar+argument"


def test_external_weight_data(tmp_path: Path) -> None:
    builder, output = _small_cnn(13)
    path = tmp_path / "ext.onnx"
    onnx.save(builder.build(output), str(path), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.weights", size_threshold=0)
    graph = load_onnx(path)
    x = _inputs((2, 8, 8))
    np.testing.assert_allclose(run_ann(graph, x), run_ort(path, x), rtol=1e-4, atol=1e-5)
    (tmp_path / "ext.weights").unlink()
    with pytest.raises(SnnccError, match="external weight data"):
        load_onnx(path)


def test_metadata_provenance(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=17)
    path = b.save(tmp_path / "m.onnx", b.op("Relu", ["x"], name="/0/Relu"))
    graph = load_onnx(path)
    import hashlib

    assert graph.metadata["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert graph.metadata["source"] == str(path.resolve())
    assert graph.metadata["producer"] == "snncc-tests"
    assert (graph.metadata["opset"], graph.metadata["ir_version"]) == (17, b.ir_version)
    assert list(graph.nodes) == ["x", "0_Relu"]
    clone = ir.Graph.load(graph.save(tmp_path / "m.snncc"))
    assert clone.metadata == json.loads(json.dumps(graph.metadata))


# ---------------------------------------------------------------------------------- shared models


def _shared_comparison(models_dir: Path, data_dir: Path, stem: str, limit: int | None
                       ) -> tuple[ir.Graph, np.ndarray, np.ndarray, np.ndarray]:
    path = models_dir / f"{stem}.onnx"
    graph = load_onnx(path)
    dataset = load_dataset(graph.metadata["dataset"], "test", data_dir).take(limit)
    raw = arrange(dataset.images, graph.input.shape, graph.metadata["layout"])
    ours = run_ann(graph, raw)
    reference = run_ort(path, graph.input.preprocess(raw), graph.metadata["batch"])
    return graph, ours, reference, dataset.labels


@pytest.mark.parametrize("stem", SHARED_MODELS)
def test_shared_models_match_onnxruntime(models_dir: Path, data_dir: Path, stem: str) -> None:
    graph, ours, reference, _ = _shared_comparison(models_dir, data_dir, stem, 300)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))
    assert not graph.input.is_identity  # the sidecar's scale 1/255 at least


@pytest.mark.slow
@pytest.mark.parametrize("stem", SHARED_MODELS)
def test_shared_models_full_test_accuracy(models_dir: Path, data_dir: Path, stem: str) -> None:
    graph, ours, reference, labels = _shared_comparison(models_dir, data_dir, stem, None)
    np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))
    accuracy = float(np.mean(ours.argmax(1) == labels))
    assert accuracy == pytest.approx(graph.metadata["ann_test_accuracy"], abs=1e-9)


# ------------------------------------------------------------------------------------- bad input


def test_not_an_onnx_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(SnnccError, match="not an ONNX model file"):
        load_onnx(path)
    path.write_bytes(b"")
    with pytest.raises(SnnccError, match="empty file"):
        load_onnx(path)
    with pytest.raises(SnnccError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")
    with pytest.raises(SnnccError, match="is a directory"):
        load_onnx(tmp_path)


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n" + bytes(64), b'{"preprocess": {}}', b"PK\x03\x04" + bytes(40),
    bytes(range(256)) * 4,
])
def test_other_file_kinds_are_not_onnx(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(SnnccError, match="not an ONNX model file"):
        load_onnx(path)


def test_truncated_file_at_any_point(tmp_path: Path) -> None:
    """Every cut of a valid model is reported as one line, never as a crash."""
    builder, output = _small_cnn(13)
    data = builder.build(output).SerializeToString()
    path = tmp_path / "cut.onnx"
    cuts = sorted(set(np.linspace(1, len(data) - 1, 60).astype(int)) | {len(data) - 1, 2, 8})
    for cut in cuts:
        path.write_bytes(data[:cut])
        with pytest.raises(SnnccError, match="truncated|corrupt|invalid|inconsistent") as caught:
            load_onnx(path)
        assert "\n" not in str(caught.value)


def test_corrupt_bytes(tmp_path: Path) -> None:
    builder, output = _small_cnn(13)
    data = bytearray(builder.build(output).SerializeToString())
    data[10:40] = bytes(range(200, 230))
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(SnnccError):
        load_onnx(path)


def test_unsupported_op_names_node_type_and_supported_list(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    message = _error(tmp_path, b, b.op("Sigmoid", ["x"], name="act/sig"))
    assert "'act/sig'" in message and "Sigmoid" in message
    assert "supported ops:" in message and all(op in message for op in supported_ops())
    for op in ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "AveragePool", "MaxPool",
               "GlobalAveragePool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
               "Identity", "Dropout", "Constant", "Softmax", "LogSoftmax", "Clip", "Relu", "Div",
               "Mul", "Sub", "Shape"):
        assert op in supported_ops()


def test_foreign_domain_op(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    b.nodes.append(helper.make_node("FusedGemm", ["x"], ["y"], name="fg", domain="com.microsoft"))
    model = helper.make_model(
        helper.make_graph(b.nodes, "g", [helper.make_tensor_value_info("x", 1, ["N", 4])],
                          [helper.make_tensor_value_info("y", 1, ["N", 4])]),
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path = tmp_path / "ms.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(SnnccError, match="com.microsoft.FusedGemm"):
        load_onnx(path)


@pytest.mark.parametrize("op_type", ("If", "Loop", "Scan"))
def test_control_flow_is_rejected(tmp_path: Path, op_type: str) -> None:
    body_out = helper.make_tensor_value_info("body_y", TensorProto.FLOAT, None)
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["body_y"])], "body", [],
                             [body_out])
    if op_type == "If":
        node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=body,
                                else_branch=body)
        inits = [onnx.numpy_helper.from_array(np.array(True), "cond")]
    elif op_type == "Loop":
        body = helper.make_graph(
            [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Relu", ["v"], ["v_out"])],
            "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                     helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                     helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
        node = helper.make_node("Loop", ["n", "cond", "x"], ["y"], name="branch", body=body)
        inits = [onnx.numpy_helper.from_array(np.array(2, dtype=np.int64), "n"),
                 onnx.numpy_helper.from_array(np.array(True), "cond")]
    else:
        body = helper.make_graph(
            [helper.make_node("Add", ["s", "e"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["o"])],
            "body", [helper.make_tensor_value_info("s", TensorProto.FLOAT, [4]),
                     helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])],
            [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [4]),
             helper.make_tensor_value_info("o", TensorProto.FLOAT, [4])])
        node = helper.make_node("Scan", ["x", "x"], ["final", "y"], name="branch", body=body,
                                num_scan_inputs=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, [3, 4])],
                              [helper.make_tensor_value_info("y", 1, ["M", 4])],
                              inits if op_type != "Scan" else [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "flow.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedError, match="dynamic control flow") as caught:
        load_onnx(path)
    assert "'branch'" in str(caught.value) and op_type in str(caught.value)


def test_non_constant_weights(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    y = b.op("Relu", ["x"])
    message = _error(tmp_path, b, b.op("Gemm", [y, y], name="g"))
    assert "'g'" in message and "constant" in message
    b = ModelBuilder((4,), opset=13)
    message = _error(tmp_path, b, b.op("MatMul", [b.random(3, 1), "x"], name="mm"))
    assert "'mm'" in message and "non-constant weights" in message
    b = ModelBuilder((4,), opset=13)
    weight = helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4])
    output = b.op("Gemm", ["x", "w"], transB=1)
    path = tmp_path / "two.onnx"
    onnx.save(b.build(output, output_shape=(3,), extra_inputs=[weight]), str(path))
    with pytest.raises(UnsupportedError, match="2 data inputs.*constant weights"):
        load_onnx(path)


def test_elementwise_product_of_tensors(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    message = _error(tmp_path, b, b.op("Mul", ["x", b.op("Relu", ["x"])], name="gate"))
    assert "'gate'" in message and "two data tensors" in message


def test_preprocessing_channels_mismatch(tmp_path: Path) -> None:
    b = ModelBuilder((1, 4, 4), opset=13)
    path = b.save(tmp_path / "gray.onnx", b.op("Relu", ["x"]))
    with pytest.raises(SnnccError, match="mean has 3 values but the model input 'x'.*1 channel"):
        load_onnx(path, preprocess={"mean": [0.1, 0.2, 0.3]})
    with pytest.raises(SnnccError, match="unknown preprocessing key"):
        load_onnx(path, preprocess={"offset": 1})
    (tmp_path / "gray.json").write_text(json.dumps({"input_shape": [3, 4, 4]}))
    with pytest.raises(SnnccError, match="sidecar input_shape"):
        load_onnx(path)
    (tmp_path / "gray.json").write_text("{broken")
    with pytest.raises(SnnccError, match="unreadable sidecar"):
        load_onnx(path)


def test_channels_last_per_channel_preprocessing_rejected(tmp_path: Path) -> None:
    b = ModelBuilder((4, 4, 3), opset=13)
    y = b.op("Transpose", ["x"], perm=[0, 3, 1, 2])
    path = b.save(tmp_path / "rgb.onnx", b.op("Relu", [y]))
    with pytest.raises(UnsupportedError, match="channels-last"):
        load_onnx(path, preprocess={"std": [0.2, 0.3, 0.4]})


def test_non_4d_conv(tmp_path: Path) -> None:
    b = ModelBuilder((2, 10), opset=13)
    message = _error(tmp_path, b, b.op("Conv", ["x", b.random(3, 2, 3)], kernel_shape=[3],
                                       name="conv1d"))
    assert "'conv1d'" in message and "2-D" in message and "(N, 2, 10)" in message


def test_symbolic_non_batch_dimension(tmp_path: Path) -> None:
    b = ModelBuilder((3, 4), opset=13)
    model = b.build(b.op("Relu", ["x"]))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "width"
    path = tmp_path / "sym.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedError, match="symbolic dimension 'width' at axis 2"):
        load_onnx(path)


def test_softmax_not_at_output(tmp_path: Path) -> None:
    b = ModelBuilder((4,), opset=13)
    y = b.op("Softmax", ["x"], name="attention")
    message = _error(tmp_path, b, b.op("Gemm", [y, b.random(2, 4)], transB=1))
    assert "'attention'" in message and "only supported at the model output" in message


def test_average_pool_excluding_padding_rejected(tmp_path: Path) -> None:
    b = ModelBuilder((2, 6, 6), opset=13)
    message = _error(tmp_path, b, b.op("AveragePool", ["x"], kernel_shape=[3, 3],
                                       pads=[1, 1, 1, 1], count_include_pad=0))
    assert "count_include_pad=0" in message and "not exactly expressible" in message
    b = ModelBuilder((2, 5, 5), opset=13)
    message = _error(tmp_path, b, b.op("AveragePool", ["x"], kernel_shape=[2, 2],
                                       strides=[2, 2], ceil_mode=1))
    assert "ceil_mode=1" in message


@pytest.mark.parametrize("case", ["per-element", "batch-transpose", "batch-reshape",
                                  "flatten-batch", "pad-channels", "reduce-features",
                                  "gemm-transA", "divide-by-data", "divide-by-zero",
                                  "softmax-axis", "pad-reflect", "training-batchnorm",
                                  "two-outputs", "used-second-output", "opset"])
def test_other_unsupported_structures(tmp_path: Path, case: str) -> None:
    b = ModelBuilder((2, 3, 3), opset={"opset": 6, "training-batchnorm": 15}.get(case, 13))
    if case == "per-element":
        output, pattern = b.op("Add", ["x", b.random(2, 3, 3)]), "only scalar, per-channel"
    elif case == "gemm-transA":
        y = b.op("Flatten", ["x"])
        output, pattern = b.op("Gemm", [y, b.random(18, 2)], transA=1), "transA=1"
    elif case == "divide-by-data":
        output, pattern = b.op("Div", [b.const(1.0), "x"]), "division by a data tensor"
    elif case == "divide-by-zero":
        output, pattern = b.op("Div", ["x", b.const(np.array([1.0, 0.0]).reshape(2, 1, 1))]), "by zero"
    elif case == "softmax-axis":
        output, pattern = b.op("Softmax", ["x"], axis=1), "only over the classes"
    elif case == "reduce-features":
        output, pattern = b.op("ReduceMean", ["x"], axes=[1]), "two spatial axes"
    elif case == "pad-reflect":
        output = b.op("Pad", ["x", b.const([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)],
                      mode="reflect")
        pattern = "only constant zero padding"
    elif case == "training-batchnorm":
        output = b.op("BatchNormalization", ["x", b.random(2), b.random(2), b.random(2),
                                             b.const([1.0, 1.0])], training_mode=1, outputs=3)
        pattern = "training_mode=1"
    elif case == "pad-channels":
        output = b.op("Pad", ["x", b.const([0, 1, 0, 0, 0, 0, 0, 0], dtype=np.int64)])
        pattern = "pad only H and W"
    elif case == "batch-transpose":
        output, pattern = b.op("Transpose", ["x"], perm=[1, 0, 2, 3]), "moves the batch axis"
    elif case == "flatten-batch":
        output, pattern = b.op("Flatten", ["x"], axis=2), "flattens into the batch axis"
    elif case == "batch-reshape":
        output, pattern = b.op("Reshape", ["x", b.const([-1, 9], dtype=np.int64)]), "mixes the batch"
    elif case == "two-outputs":
        first = b.op("Relu", ["x"])
        model = b.build(b.op("Relu", [first]))
        model.graph.output.append(helper.make_tensor_value_info(first, TensorProto.FLOAT,
                                                                ["N", 2, 3, 3]))
        path = tmp_path / "bad.onnx"
        onnx.save(model, str(path))
        with pytest.raises(UnsupportedError, match="2 outputs"):
            load_onnx(path)
        return
    elif case == "used-second-output":
        pooled = b.op("MaxPool", ["x"], kernel_shape=[2, 2], outputs=2, name="mp")
        indices = pooled.replace("_out", "_out1")
        output = b.op("Cast", [indices], to=TensorProto.FLOAT)
        output = b.op("Add", [pooled, output])
        pattern = "only the first output"
    else:
        output, pattern = b.op("Relu", ["x"]), "opset 6 is not supported"
    shape = (2, 3, 3) if case == "training-batchnorm" else None
    assert pattern in _error(tmp_path, b, output, output_shape=shape)
