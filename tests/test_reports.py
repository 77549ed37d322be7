"""Reports (snncc.reports): JSON against its schema, JUnit parsed by junitparser, Markdown, PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from junitparser import Failure, JUnitXml, Skipped

from snncc.errors import SnnccError
from snncc.gates import GateSpec
from snncc.pipeline import validate
from snncc.reports import (
    check_outputs,
    report_schema,
    to_json,
    to_junit,
    to_markdown,
    write_plots,
    write_reports,
)

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits_mlp.onnx"


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A digits run with the ladder, one failing gate, one passing and a baseline comparison."""
    base = tmp_path_factory.mktemp("base") / "baseline.json"
    first, _ = validate(DIGITS, timesteps=8, limit=120)
    base.write_text(to_json(first.to_dict()))
    gates = GateSpec(min_accuracy=0.99, max_drop={"snn": 50.0}, baseline=base, tolerance=0.5,
                     spikes_tolerance=5, fits=["loihi2"])
    report, _ = validate(DIGITS, timesteps=8, limit=120, gates=gates, stages=True)
    return report.to_dict()


def check_schema(report: dict) -> None:
    jsonschema.validate(report, report_schema(), cls=jsonschema.Draft202012Validator)


def test_schema_is_a_valid_json_schema_with_the_report_id() -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"] == {"const": "snncc.validate/1"}


def test_json_report_matches_its_schema(failing: dict) -> None:
    parsed = json.loads(to_json(failing))
    check_schema(parsed)
    assert parsed["status"] == "failed" and parsed["failed_gates"] == ["min-accuracy"]
    names = [gate["name"] for gate in parsed["gates"]]
    assert names[:2] == ["min-accuracy", "max-drop:snn"] and names[2].startswith("fits:")
    assert "baseline-accuracy" in names and "baseline-spikes" in names
    assert [stage["name"] for stage in parsed["stages"]] == ["ann", "convert"]
    assert parsed["baseline"]["snn_accuracy"] == parsed["snn_accuracy"]


def test_schema_rejects_broken_reports(failing: dict) -> None:
    for broken in ({**failing, "snn_accuracy": 1.5}, {**failing, "schema": "snncc.validate/2"},
                   {**failing, "extra_key": 1},
                   {k: v for k, v in failing.items() if k != "gates"},
                   {**failing, "gates": [{**failing["gates"][0], "status": "maybe"}]}):
        with pytest.raises(jsonschema.ValidationError):
            check_schema(broken)


def test_the_ladder_ends_at_the_deployed_network(failing: dict) -> None:
    ann, convert = failing["stages"]
    assert ann["accuracy"] == pytest.approx(failing["ann_accuracy"], abs=0.01)
    assert ann["accuracy_curve"] is None
    assert convert["accuracy"] == failing["snn_accuracy"]
    assert convert["drop_pp"] == pytest.approx((ann["accuracy"] - convert["accuracy"]) * 100)
    if convert["weight_memory_bytes"] is None:  # the minimal ladder (no snncc.stages)
        assert convert["accuracy_curve"] == failing["accuracy_curve"]
    else:
        assert convert["connectivity"] == 1.0 and convert["weight_memory_bytes"] > 0


def test_junit_has_one_case_per_gate_and_names_the_failure(failing: dict, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(to_junit(failing))
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    cases = {case.name: case for case in suites[0]}
    assert list(cases) == [gate["name"] for gate in failing["gates"]]
    assert suites[0].tests == len(failing["gates"]) and suites[0].failures == 1
    (failure,) = cases["min-accuracy"].result
    assert isinstance(failure, Failure) and failure.message.startswith("min-accuracy: ")
    assert "floor 99.00%" in failure.message
    assert cases["max-drop:snn"].is_passed and cases["baseline-accuracy"].is_passed
    fit = next(case for name, case in cases.items() if name.startswith("fits:"))
    gate = next(g for g in failing["gates"] if g["name"].startswith("fits:"))
    assert fit.is_skipped == gate["skipped"]
    if gate["skipped"]:
        assert isinstance(fit.result[0], Skipped)
    properties = {p.name: p.value for p in suites[0].properties()}
    assert properties["dataset"] == "digits" and properties["samples"] == "120"


def test_junit_without_failures(failing: dict) -> None:
    passing = {**failing, "gates": [g for g in failing["gates"] if g["status"] == "passed"],
               "failed_gates": [], "passed": True, "status": "passed"}
    xml = JUnitXml.fromstring(to_junit(passing).split("\n", 1)[1])
    assert sum(1 for suite in xml for case in suite if not case.is_passed) == 0


def test_markdown_names_the_failing_gate(failing: dict) -> None:
    text = to_markdown(failing)
    assert text.startswith("## snncc validate: digits_mlp.onnx FAILED")
    assert "**1 gate(s) failed: min-accuracy**" in text
    assert "| FAIL | `min-accuracy` |" in text and "| PASS | `max-drop:snn` |" in text
    assert f"| {failing['snn_accuracy']:.2%} | 99.00% |" in text  # values in their units
    assert "| 50.00 pp |" in text
    assert "### Accuracy ladder" in text and "| convert | float |" in text
    assert f"| SNN accuracy at T=8 | {failing['snn_accuracy']:.2%} |" in text
    assert "- baseline " in text


def test_markdown_escapes_table_cells(failing: dict) -> None:
    gate = {**failing["gates"][0], "message": "a | b\nc"}
    text = to_markdown({**failing, "gates": [gate]})
    assert "a \\| b c" in text


def test_plots_are_non_empty_png_images(failing: dict, tmp_path: Path) -> None:
    import matplotlib.image

    files = write_plots(failing, tmp_path / "plots")
    assert [f.name for f in files] == ["accuracy.png", "spikes.png"]
    for path in files:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert np.ptp(pixels[..., :3]) > 0.5  # something is drawn, not a blank canvas
    assert not list((tmp_path / "plots").glob(".*"))  # no temporary files left behind


def test_write_reports_writes_each_format(failing: dict, tmp_path: Path) -> None:
    out = tmp_path / "a"
    out.mkdir()
    written = write_reports(failing, json_path=out / "r.json", junit_path=out / "j.xml",
                            markdown_path=out / "s.md", plots_dir=out / "plots")
    assert {p.name for p in written} == {"r.json", "j.xml", "s.md", "accuracy.png", "spikes.png"}
    assert json.loads((out / "r.json").read_text()) == json.loads(to_json(failing))
    assert sorted(p.name for p in out.iterdir()) == ["j.xml", "plots", "r.json", "s.md"]


def test_unwritable_outputs_fail_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SnnccError, match="json report .* is a directory"):
        check_outputs({"json": tmp_path})
    with pytest.raises(SnnccError, match="cannot write plots into .*: it is a file"):
        check_outputs({"plots": tmp_path / "file"})
    with pytest.raises(SnnccError, match="directory .*file/deeper does not exist"):
        check_outputs({"junit": tmp_path / "file" / "deeper" / "j.xml"})
    with pytest.raises(SnnccError, match="directory .*new does not exist"):
        check_outputs({"json": tmp_path / "new" / "r.json"})
    with pytest.raises(SnnccError, match="directory .*new does not exist"):
        check_outputs({"plots": tmp_path / "new" / "plots"})
    check_outputs({"json": tmp_path / "r.json", "plots": tmp_path / "plots"})  # plots: created


def test_the_example_baseline_matches_the_schema() -> None:
    check_schema(json.loads((REPO / "examples" / "ci" / "baseline.json").read_text()))


def test_timings_cover_the_run(failing: dict) -> None:
    assert set(failing["timings"]) == {"load", "reference", "passes", "simulation", "gates"}
    assert sum(failing["timings"].values()) == pytest.approx(failing["total_seconds"], abs=1e-3)


def test_further_targets_are_reported_with_their_agreement(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    from snncc import backends

    # the reference simulator under a second name: a further target that must agree fully
    monkeypatch.setitem(backends.TARGETS, "sim-copy", "snncc.backends.sim")
    report, _ = validate(DIGITS, targets=["sim", "sim-copy"], timesteps=4, limit=60,
                         gates=GateSpec(min_accuracy=0.5, min_agreement=1.0))
    data = report.to_dict()
    check_schema(data)
    (run,) = data["target_runs"]
    assert run["target"] == "sim-copy" and run["agreement"] == 1.0 and data["agreement"] == 1.0
    assert run["accuracy_curve"] == data["accuracy_curve"]
    assert [g["name"] for g in data["gates"]] == ["min-accuracy", "min-accuracy:sim-copy",
                                                  "agreement:sim-copy"]
    assert "### Targets (agreement with `sim`)" in to_markdown(data)
    write_plots(data, tmp_path)


def test_targets_must_exist_and_be_distinct() -> None:
    with pytest.raises(SnnccError, match="each target may appear once"):
        validate(DIGITS, targets=["sim", "sim"], limit=10)
    with pytest.raises(SnnccError, match="unknown target 'tpu'"):
        validate(DIGITS, targets=["sim", "tpu"], limit=10)


@pytest.mark.lava
def test_lava_agrees_with_the_reference_simulator() -> None:
    pytest.importorskip("lava", reason="lava-nc is not installed")
    from snncc.passes import REGISTRY

    try:
        import snncc.backends.lava  # noqa: F401
    except ModuleNotFoundError:
        pytest.skip("the lava backend (snncc.backends.lava) is not in this snncc")
    if not {"fold", "quantize"} <= set(REGISTRY):
        pytest.skip("fold/quantize passes are not in this snncc")
    report, _ = validate(DIGITS, targets=["sim", "lava"], timesteps=8, limit=20,
                         passes=["convert", "fold", "quantize"],
                         options={"convert": {"per_channel": False},
                                  "quantize": {"target": "loihi"}},
                         gates=GateSpec(min_agreement=1.0))
    assert report.passed and report.target_runs[0].agreement == 1.0


def test_agreement_gate_is_skipped_with_one_target() -> None:
    report, _ = validate(DIGITS, timesteps=4, limit=30, gates=GateSpec(min_agreement=1.0))
    (gate,) = report.gates
    assert gate.name == "agreement" and gate.skipped and report.passed
    check_schema(report.to_dict())


def test_gate_amounts_are_shown_in_their_units() -> None:
    from snncc.reports import gate_amount

    assert gate_amount("min-accuracy", 0.98765) == "98.77%"
    assert gate_amount("agreement:lava", 1.0) == "100.00%"
    assert gate_amount("max-drop:quantize", 0.25) == "0.25 pp"
    assert gate_amount("baseline-accuracy", -0.5) == "-0.50 pp"
    assert gate_amount("baseline-spikes", 12.34) == "+12.3 %"
    assert gate_amount("fits:loihi2", 3.0) == "3 cores"
    assert gate_amount("fits:loihi2", None) == "n/a"


def test_the_report_names_the_engine_that_ran_the_deployed_network(tmp_path: Path) -> None:
    from snncc import ir

    report, _ = validate(DIGITS, timesteps=4, limit=40)
    assert report.to_dict()["engine"] == "step"
    check_schema(report.to_dict())
    rng = np.random.default_rng(0)
    graph = ir.Graph({"dataset": "digits"})
    graph.chain(
        ("input", ir.Input(shape=(1, 8, 8), coding="latency", t_max=16, scale=1 / 16)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.choice(np.array([-1, 1]), (30, 64)))),
        ("if1", ir.IF(threshold=np.array([3]), v_init=np.array([0]), reset="zero",
                      fire_once=True)),
        ("fc2", ir.Dense(weight=rng.choice(np.array([-1, 1]), (10, 30)))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([2]))),
    )
    report, _ = validate(graph.save(tmp_path / "ttfs.snn.npz"), limit=40)
    assert report.engine == "ttfs"
