"""End-to-end CLI behaviour: compile/validate/inspect, exit codes, one-line errors, atomic output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from snncc import ir

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "digits_mlp.onnx"


def snncc(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "CI": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "snncc", *args], capture_output=True, text=True,
                          env=environment, cwd=REPO, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_compile_sim_writes_reloadable_ir(tmp_path):
    out = tmp_path / "out"
    result = snncc("compile", str(EXAMPLE), "--target", "sim", "-T", "8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    graph = ir.Graph.load(out / "network.snn.npz")
    assert isinstance(graph.nodes[graph.output_name], ir.Readout)
    summary = json.loads((out / "compile.json").read_text())
    assert summary["passes"] == ["convert"] and summary["timesteps"] == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_validate_example_passes_and_gate_fails(tmp_path):
    report_path = tmp_path / "r.json"
    ok = snncc("validate", str(EXAMPLE), "-T", "16", "--min-accuracy", "0.8",
               "--json", str(report_path))
    assert ok.returncode == 0, ok.stderr
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["dataset"] == "digits" and report["samples"] == 360
    assert len(report["accuracy_curve"]) == 16
    assert report["ann_accuracy"] > 0.85 and report["snn_accuracy"] > 0.85
    failing = snncc("validate", str(EXAMPLE), "-T", "2", "--min-accuracy", "99.9")
    assert failing.returncode == 1
    assert "min-accuracy" in failing.stdout


def test_validate_integer_pipeline_via_passes():
    result = snncc("validate", str(EXAMPLE), "-T", "16", "--passes", "convert,fold",
                   "--min-accuracy", "0.8")
    assert result.returncode == 0, result.stderr
    assert "integer" in result.stdout


def test_inspect_table_and_json():
    table = snncc("inspect", str(EXAMPLE))
    assert table.returncode == 0 and "Dense" in table.stdout
    as_json = json.loads(snncc("inspect", str(EXAMPLE), "--json").stdout)
    assert [row["type"] for row in as_json["layers"]][:3] == ["Input", "Flatten", "Dense"]


def test_bad_inputs_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    assert_one_line_error(snncc("inspect", str(text)), "notes.onnx")
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(EXAMPLE.read_bytes()[:5000])
    assert_one_line_error(snncc("validate", str(truncated)), "cut.onnx")
    assert_one_line_error(snncc("inspect", str(tmp_path / "missing.onnx")), "no such file")
    assert_one_line_error(snncc("validate", str(EXAMPLE), "--dataset", "cifar"), "cifar")
    assert_one_line_error(
        snncc("validate", str(EXAMPLE), "--dataset", "mnist", "--data-dir", str(tmp_path)),
        "not found")
    assert_one_line_error(snncc("validate", str(EXAMPLE), "--mean", "0.1,0.2"), "channel")
    assert_one_line_error(snncc("validate", str(EXAMPLE), "--json", "/nonexistent/dir/r.json"),
                          "cannot write")
    assert_one_line_error(snncc("validate", str(EXAMPLE), "--passes", "convert,teleport"),
                          "teleport")
    assert_one_line_error(snncc("validate", str(EXAMPLE), "--option", "convert.colour=3"),
                          "unknown option")


def test_unsupported_op_names_node_op_and_supported_list(tmp_path):
    node = helper.make_node("Sin", ["x"], ["y"], name="trig")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "sin.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    assert_one_line_error(snncc("inspect", str(path)), "trig", "Sin", "Conv")


def test_compile_failure_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    result = snncc("compile", str(EXAMPLE), "-o", str(out), "--passes", "convert,teleport")
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []
    unwritable = snncc("compile", str(EXAMPLE), "-o", "/nonexistent/dir/out")
    assert_one_line_error(unwritable, "does not exist")


def test_unknown_target_and_missing_output():
    assert_one_line_error(snncc("compile", str(EXAMPLE), "--target", "tpu", "-o", "x"), "tpu")


@pytest.mark.slow
def test_validate_shared_mlp_full_test_set_beats_reference_at_t8(models_dir, data_dir):
    result = snncc("validate", str(models_dir / "mnist_mlp.onnx"), "--data-dir", str(data_dir),
                   "-T", "8", "--min-accuracy", "0.983")
    assert result.returncode == 0, result.stdout + result.stderr


def test_threads_option_and_environment(tmp_path):
    """--threads / SNNCC_THREADS cap the threads; the report is the same for every count."""
    reports = []
    for args, env in ((["--threads", "1"], None), ([], {"SNNCC_THREADS": "2"})):
        path = tmp_path / f"{len(reports)}.json"
        result = snncc(*args, "validate", str(EXAMPLE), "-T", "8", "--json", str(path), env=env)
        assert result.returncode == 0, result.stderr
        report = json.loads(path.read_text())
        reports.append({k: report[k] for k in ("accuracy_curve", "spikes_per_layer",
                                                "synops_per_sample")})
    assert reports[0] == reports[1]
    assert_one_line_error(snncc("--threads", "0", "inspect", str(EXAMPLE)), "--threads", ">= 1")
    assert_one_line_error(snncc("inspect", str(EXAMPLE), env={"SNNCC_THREADS": "many"}),
                          "SNNCC_THREADS", "whole number")


def test_every_target_option_is_documented():
    from pathlib import Path

    from snncc.backends import TARGETS, get_target
    from snncc.errors import SnnccError

    text = (Path(__file__).resolve().parents[1] / "docs" / "targets.md").read_text()
    for name in TARGETS:
        try:
            target = get_target(name)
        except SnnccError:  # a target whose optional dependency is missing
            continue
        assert f"| `{name}` |" in text
        for option in target.options:
            assert f"`{option}`" in text, (name, option)


def test_compile_refuses_an_option_its_target_does_not_declare(tmp_path):
    from typer.testing import CliRunner

    from snncc.cli import app

    model = Path(__file__).resolve().parents[1] / "examples" / "digits_mlp.onnx"
    result = CliRunner().invoke(app, ["compile", str(model), "--target", "sim", "-T", "4",
                                      "--target-option", "fpga_part=zynq-7020",
                                      "-o", str(tmp_path / "out")])
    from snncc.errors import SnnccError

    assert isinstance(result.exception, SnnccError)
    assert str(result.exception) == "target 'sim' has no option 'fpga_part'; available: engine"
    assert not (tmp_path / "out").exists()


def test_calibration_samples_below_one_is_a_one_line_error(tmp_path):
    for command in (["compile", str(EXAMPLE), "-o", str(tmp_path / "out")],
                    ["validate", str(EXAMPLE), "--limit", "4"]):
        result = snncc(*command, "--calibration-samples", "0")
        assert_one_line_error(result, "calibration samples must be an integer >= 1, got 0")
    assert not (tmp_path / "out").exists()
