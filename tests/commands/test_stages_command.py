"""``snncc stages`` through typer's CliRunner on an app built in the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from snncc import ir
from snncc.commands.stages import register
from snncc.errors import SnnccError


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing to a single command
        pass

    return app


@pytest.fixture
def snn_file(tmp_path):
    """A small spiking graph on 8x8 digits, saved as IR (no conversion needed)."""
    rng = np.random.default_rng(0)
    graph = ir.Graph({"dataset": "digits", "timesteps": 8})
    graph.chain(
        ("input", ir.Input(shape=(1, 8, 8), scale=1 / 255)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.normal(0, 0.3, (20, 64)))),
        ("if1", ir.IF(threshold=np.ones(1), v_init=np.full(1, 0.5))),
        ("fc2", ir.Dense(weight=rng.normal(0, 0.3, (10, 20)))),
        ("readout", ir.Readout()),
    )
    return graph.save(tmp_path / "net.snn.npz")


def test_stages_command_prints_writes_json_and_gates(snn_file, tmp_path):
    out = tmp_path / "ladder.json"
    result = CliRunner().invoke(_app(), [
        "stages", str(snn_file), "--stages", "fold,quantize", "--limit", "60",
        "--option", "quantize.bits=2", "--max-drop", "fold=100", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "net.snn.npz on digits (60 samples, T=8)" in result.output
    data = json.loads(out.read_text())
    assert [s["stage"] for s in data["stages"]] == ["fold", "quantize"]
    assert data["failures"] == []
    gated = CliRunner().invoke(_app(), [
        "stages", str(snn_file), "--stages", "fold,quantize", "--limit", "60",
        "--option", "quantize.bits=2", "--max-drop", "quantize=0", "--max-drop", "fold=0"])
    failing = json.loads(out.read_text())  # the first run's file is untouched
    assert failing["failures"] == []
    if gated.exit_code == 1:
        assert "FAIL: stage" in gated.output
    else:  # no stage lost accuracy at all
        assert gated.exit_code == 0


def test_bad_max_drop_is_a_one_line_error(snn_file):
    result = CliRunner().invoke(_app(), ["stages", str(snn_file), "--max-drop", "fold"])
    assert isinstance(result.exception, SnnccError)
    assert "expected STAGE=PP" in str(result.exception)
