"""Issue 21, defects 9 and 11: models onnxruntime cannot run, nodes not in topological order."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
from hostile import assert_refused, onnx_maxpool_pads, onnx_mlp, run_cli


def test_validate_runs_the_ann_reference_without_onnxruntime(tmp_path):
    """IR version 14 (what this onnx writes) is beyond onnxruntime 1.23; snncc imports it."""
    model = onnx_mlp(tmp_path / "m.onnx", ir_version=14)
    report = tmp_path / "r.json"
    run = run_cli("validate", model, "-n", "20", "-T", "4", "--json", report)
    assert run.returncode == 0, run.describe()
    assert not run.error_lines, run.describe()
    data = json.loads(report.read_text())
    assert data["ann_reference"].startswith("snncc ANN mode")
    assert "Unsupported model IR version: 14" in data["ann_reference"]  # says why
    assert data["ann_accuracy"] is not None


def test_pool_pads_reaching_the_kernel_are_refused(tmp_path):
    """onnxruntime refuses them; snncc's import did not (windows of padding only: -inf)."""
    model = onnx_maxpool_pads(tmp_path / "m.onnx")
    assert_refused(run_cli("validate", model, "-n", "20", "-T", "4"), "pads", "kernel")


def test_unsorted_nodes_import_and_match_onnxruntime(tmp_path):
    model = onnx_mlp(tmp_path / "m.onnx", reverse=True)
    run = run_cli("inspect", model)
    assert run.returncode == 0, run.describe()
    from snncc.engines import run_ann
    from snncc.frontend.onnx_import import load_onnx

    graph = load_onnx(model)
    x = np.random.default_rng(0).integers(0, 256, (7, 1, 8, 8)).astype(np.float32)
    ours = run_ann(graph, x)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"image": x / 255})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_node_cycle_is_refused(tmp_path):
    import onnx

    model = onnx_mlp(tmp_path / "m.onnx")
    proto = onnx.load(str(model))
    proto.graph.node[1].input[0] = "r"  # fc0 reads relu0, which reads fc0
    model.write_bytes(proto.SerializeToString())
    assert_refused(run_cli("inspect", model), "cycle")
