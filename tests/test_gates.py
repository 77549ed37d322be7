"""Gate rules (snncc.gates): floors, per-stage drops, chip fits, baseline regressions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from snncc.errors import SnnccError
from snncc.gates import (
    REPORT_SCHEMA,
    Gate,
    GateSpec,
    baseline_gates,
    drop_gates,
    fit_gates,
    load_baseline,
    min_accuracy_gate,
    partition_available,
    resolve_chips,
)


def test_min_accuracy_takes_fractions_or_percent_and_is_inclusive() -> None:
    assert min_accuracy_gate(0.9, 0.9).passed
    assert min_accuracy_gate(0.9, 90).passed and min_accuracy_gate(0.9, 90).limit == 0.9
    failed = min_accuracy_gate(0.8999, 90)
    assert not failed.passed and failed.status == "failed" and "< floor 90.00%" in failed.message


def test_drops_are_measured_from_the_previous_rung() -> None:
    ladder = [("ann", 0.99), ("convert", 0.985), ("fold", 0.985), ("quantize", 0.97)]
    gates = drop_gates(ladder, 0.97, 0.99, {"convert": 0.5, "quantize": 1.0, "fold": 0.0})
    by_name = {gate.name: gate for gate in gates}
    assert by_name["max-drop:convert"].passed  # 0.5 pp, limit inclusive
    assert by_name["max-drop:convert"].value == pytest.approx(0.5)
    assert by_name["max-drop:fold"].passed and by_name["max-drop:fold"].value == 0
    assert not by_name["max-drop:quantize"].passed
    assert "against fold" in by_name["max-drop:quantize"].message


def test_snn_and_total_drops_end_at_the_deployed_accuracy() -> None:
    gates = drop_gates([("ann", 0.99), ("convert", 0.98), ("lava", 0.975)], 0.975, 0.99,
                       {"snn": 1.0, "total": 2.0, "lava": 0.1})
    snn, total, lava = gates
    assert snn.value == pytest.approx(1.5) and not snn.passed
    assert total.value == pytest.approx(1.5) and total.passed
    assert lava.value == pytest.approx(0.5) and not lava.passed
    # without a ladder, snn and total are the ANN against the deployed SNN
    (only,) = drop_gates([], 0.97, 0.98, {"total": 1.0})
    assert only.value == pytest.approx(1.0) and only.passed


def test_unknown_stage_or_missing_reference_is_bad_input() -> None:
    with pytest.raises(SnnccError, match="no stage 'quantize'.*available: snn, total.*--stages"):
        drop_gates([("ann", 0.9)], 0.9, 0.9, {"quantize": 1})
    with pytest.raises(SnnccError, match="no stage 'snn'.*no ANN reference"):
        drop_gates([], 0.9, None, {"snn": 1})


@pytest.mark.parametrize(("spec", "message"), [
    (GateSpec(min_accuracy=101), "min accuracy must be within"),
    (GateSpec(max_drop={"snn": -1}), "max drop for stage 'snn' must be >= 0"),
    (GateSpec(tolerance=-0.1), "baseline tolerance must be >= 0"),
    (GateSpec(spikes_tolerance=-5), "baseline spikes tolerance must be >= 0"),
    (GateSpec(max_cores=0), "max cores must be >= 1"),
])
def test_nonsense_limits_are_rejected(spec: GateSpec, message: str) -> None:
    with pytest.raises(SnnccError, match=message):
        spec.check()


def test_fit_gates_are_skipped_not_passed_without_the_partition_analysis(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snncc.passes.partition", None)
    assert not partition_available()
    assert resolve_chips(["loihi2"]) == ["loihi2"]
    gates, summaries = fit_gates(object(), ["loihi2"], None)
    (gate,) = gates
    assert gate.name == "fits:loihi2" and gate.skipped and gate.status == "skipped"
    assert "partition analysis" in gate.message and summaries == []


def test_fit_gates_run_the_partition_analysis(tiny_mlp) -> None:  # noqa: ANN001
    if not partition_available():
        pytest.skip("snncc.passes.partition is not in this snncc (branch partition not merged)")
    chips = resolve_chips(["loihi2"])
    gates, summaries = fit_gates(tiny_mlp, chips, None)
    assert gates[0].name == "fits:loihi2" and gates[0].passed and summaries[0]["fits"]
    gates, _ = fit_gates(tiny_mlp, chips, None, max_cores=1)
    assert not gates[0].passed and "does not fit" in gates[0].message


def report(**changes: object) -> dict:
    data = {"schema": REPORT_SCHEMA, "dataset": "digits", "samples": 360, "timesteps": 16,
            "target": "sim", "model_sha256": "a" * 64, "snn_accuracy": 0.90,
            "spikes_per_sample": 500.0, "synops_per_sample": 40000.0, "stages": []}
    data.update(changes)
    return data


def test_baseline_accuracy_tolerance_is_in_percentage_points() -> None:
    gates, notes = baseline_gates(report(snn_accuracy=0.895), report(), tolerance=0.5)
    assert [g.name for g in gates] == ["baseline-accuracy"] and gates[0].passed and notes == []
    gates, _ = baseline_gates(report(snn_accuracy=0.894), report(), tolerance=0.5)
    assert not gates[0].passed and "beyond the 0.5 pp tolerance" in gates[0].message
    gates, _ = baseline_gates(report(snn_accuracy=0.95), report(), tolerance=0)
    assert gates[0].passed  # improvements never fail


def test_baseline_spikes_and_synops_growth_only_when_asked() -> None:
    current = report(spikes_per_sample=560.0, synops_per_sample=40000.0)
    gates, _ = baseline_gates(current, report(), 0.5, spikes_tolerance=10, synops_tolerance=0)
    spikes, synops = gates[1:]
    assert spikes.name == "baseline-spikes" and not spikes.passed
    assert spikes.value == pytest.approx(12.0)
    assert synops.name == "baseline-synops" and synops.passed
    gates, _ = baseline_gates(report(spikes_per_sample=1.0), report(spikes_per_sample=0.0), 0.5,
                              spikes_tolerance=100)
    assert not gates[1].passed and gates[1].value is None


def test_baseline_stages_are_compared_by_name() -> None:
    stage = {"name": "quantize", "accuracy": 0.88}
    gates, _ = baseline_gates(report(stages=[stage]),
                              report(stages=[{"name": "quantize", "accuracy": 0.90}]), 1.0)
    assert gates[1].name == "baseline-accuracy:quantize" and not gates[1].passed


def test_baseline_notes_runs_that_are_not_like_for_like() -> None:
    _, notes = baseline_gates(report(samples=100, timesteps=8), report(), 0.5)
    assert len(notes) == 2 and "samples" in notes[0] and "timesteps" in notes[1]
    with pytest.raises(SnnccError, match="dataset 'mnist'.*not comparable"):
        baseline_gates(report(), report(dataset="mnist"), 0.5)


def test_load_baseline_checks_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(report()))
    assert load_baseline(path)["snn_accuracy"] == 0.9
    for content, message in (("{", "not JSON"), ("[1]", "expected a JSON object"),
                             (json.dumps(report(schema="snncc.validate/2")), "schema"),
                             (json.dumps({"schema": REPORT_SCHEMA}), "missing key")):
        path.write_text(content)
        with pytest.raises(SnnccError, match=f"baseline {path}: .*{message}"):
            load_baseline(path)
    with pytest.raises(SnnccError, match="no such file"):
        load_baseline(tmp_path / "none.json")


def test_gate_status() -> None:
    assert Gate("g", True, 1.0, 1.0, "m").status == "passed"
    assert Gate("g", False, 1.0, 1.0, "m").status == "failed"
    assert Gate("g", True, None, None, "m", skipped=True).status == "skipped"


def test_agreement_gate() -> None:
    from snncc.gates import agreement_gate

    gate = agreement_gate("lava", "sim", 1.0, 100)
    assert gate.name == "agreement:lava" and gate.passed and gate.limit == 1.0
    gate = agreement_gate("lava", "sim", 0.999, 1.0)
    assert not gate.passed and "lava decides like sim on 99.90%" in gate.message
    with pytest.raises(SnnccError, match="min agreement must be within"):
        GateSpec(min_agreement=-1).check()


def test_failing_drop_gates_name_the_diverging_layer() -> None:
    ladder = [("ann", 0.99), ("quantize", 0.95)]
    (gate,) = drop_gates(ladder, 0.95, 0.99, {"quantize": 1}, {"quantize": "conv2"})
    assert not gate.passed and gate.message.endswith("first diverges at layer 'conv2'")
    (gate,) = drop_gates(ladder, 0.95, 0.99, {"quantize": 5}, {"quantize": "conv2"})
    assert gate.passed and "diverges" not in gate.message
