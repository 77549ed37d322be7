"""Issue 21, defect 10: malformed files and values get one line and exit 2, never exit 3."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import (
    EXAMPLE_ONNX,
    assert_refused,
    idx_overflow_header,
    ir_graph_with,
    mnist_dir,
    onnx_mlp,
    run_cli,
)


def test_idx_header_overflowing_int64(tmp_path):
    data = mnist_dir(tmp_path, images=idx_overflow_header())
    run = run_cli("validate", EXAMPLE_ONNX, "--dataset", "mnist", "--data-dir", data)
    assert_refused(run, "t10k-images")


def test_non_utf8_chip_profile(tmp_path):
    profile = tmp_path / "chip.yaml"
    profile.write_bytes(b"name: \xff\xfe\nkind: fpga\n")
    assert_refused(run_cli("partition", EXAMPLE_ONNX, "--chip", profile), "UTF-8")


def test_non_utf8_config(tmp_path):
    config = tmp_path / "snncc.toml"
    config.write_bytes(b'model = "\xff"\n')
    assert_refused(run_cli("validate", "--config", config), "UTF-8")


@pytest.mark.parametrize("change", [{"snn_accuracy": "abc"}, {"spikes_per_sample": [1]},
                                    {"accuracy_curve": "x"}, {"samples": None}])
def test_malformed_baseline(tmp_path, change):
    baseline = {"schema": "snncc.validate/1", "snn_accuracy": 0.5, "spikes_per_sample": 10.0,
                "synops_per_sample": 100.0, "dataset": "digits", "samples": 5, "timesteps": 4,
                **change}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    run = run_cli("validate", EXAMPLE_ONNX, "-n", "5", "-T", "4", "--baseline", path)
    assert_refused(run, "baseline")
    assert "SNN accuracy" not in run.stdout  # refused before the run


def test_stages_limit_zero():
    assert_refused(run_cli("stages", EXAMPLE_ONNX, "--limit", "0", "--stages", "convert"),
                   "limit")


def test_zero_sized_onnx_layer(tmp_path):
    model = onnx_mlp(tmp_path / "m.onnx", hidden=0)
    assert_refused(run_cli("compile", model, "-T", "4", "-o", tmp_path / "out"), "fc0")


def test_zero_sized_ir_layer(tmp_path):
    from snncc import ir

    def build():
        graph = ir.Graph({"dataset": "digits"})
        graph.chain(("input", ir.Input(shape=(1, 8, 8))), ("flatten", ir.Flatten()),
                    ("dense1", ir.Dense(weight=np.zeros((0, 64), np.int64))),
                    ("hidden1", ir.IF(threshold=np.ones(1, np.int64),
                                      v_init=np.zeros(1, np.int64))),
                    ("dense2", ir.Dense(weight=np.zeros((10, 0), np.int64))),
                    ("readout", ir.Readout()))
        return graph

    model = ir_graph_with(tmp_path / "m.snn.npz", build)
    assert_refused(run_cli("validate", model, "-n", "5", "-T", "4"), "dense1")
