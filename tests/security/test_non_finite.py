"""Issue 21, defect 5: NaN/Inf weights, biases and scales are refused at import, by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import assert_refused, ir_model, onnx_mlp, run_cli


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_onnx_initializer(tmp_path, value):
    def patch(weight):
        weight[3, 5] = value

    model = onnx_mlp(tmp_path / "m.onnx", weight_patch=patch)
    out = tmp_path / "out"
    assert_refused(run_cli("compile", model, "-T", "4", "-o", out), "fc0.weight", "NaN or inf")
    assert not out.exists()


def test_onnx_constant_node(tmp_path):
    from onnx import helper, numpy_helper

    constant = helper.make_node("Constant", [], ["c"], name="scale_const",
                                value=numpy_helper.from_array(np.array([np.inf], np.float32)))
    scale = helper.make_node("Mul", ["logits_raw", "c"], ["logits"], name="scale")
    model = onnx_mlp(tmp_path / "m.onnx", extra_nodes=[constant, scale])
    # rewire: fc1 writes logits_raw, the Mul produces the output
    import onnx

    proto = onnx.load(str(model))
    for node in proto.graph.node:
        if node.name == "fc1":
            node.output[0] = "logits_raw"
    model.write_bytes(proto.SerializeToString())
    assert_refused(run_cli("inspect", model), "NaN or inf")


def test_ir_arrays(tmp_path):
    weight = np.ones((8, 64))
    weight[0, 0] = np.inf
    model = ir_model(tmp_path / "m.snn.npz", weight=weight)
    out = tmp_path / "out"
    assert_refused(run_cli("compile", model, "-o", out), "dense1", "NaN or inf")
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--scale", "nan"], ["--mean", "inf"], ["--std", "nan"]])
def test_preprocessing_flags(tmp_path, flag):
    model = ir_model(tmp_path / "m.snn.npz")
    out = tmp_path / "out"
    assert_refused(run_cli("compile", model, *flag, "-o", out), "finite")
    assert not out.exists()


def test_sidecar_preprocessing(tmp_path):
    model = onnx_mlp(tmp_path / "m.onnx")
    model.with_suffix(".json").write_text(
        json.dumps({"dataset": "digits", "preprocess": {"scale": float("nan")}}))
    assert_refused(run_cli("inspect", model), "finite")
