"""``snncc validate`` as a CI gate: config + overrides, exit codes, outputs, the example workflows."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml
from typer.testing import CliRunner

from snncc.cli import app
from snncc.errors import SnnccError

REPO = Path(__file__).resolve().parents[1]
CI = REPO / "examples" / "ci"
DIGITS = REPO / "examples" / "digits_mlp.onnx"
ENV = {"COLUMNS": "200", "CI": "true"}


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, ["validate", *args], env=ENV)


def outputs(tmp_path: Path) -> list[str]:
    return ["--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "j.xml"),
            "--markdown", str(tmp_path / "s.md"), "--plots", str(tmp_path / "plots")]


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "snncc.toml"
    path.write_text(f'model = "{DIGITS}"\ndataset = "digits"\ntimesteps = 8\nlimit = 100\n' + text)
    return path


def test_config_run_passes_and_writes_every_report(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[gates]\nmin_accuracy = 0.5\n[outputs]\n"
                                    'json = "out/r.json"\nmarkdown = "out/s.md"\n')
    (tmp_path / "out").mkdir()
    result = invoke("--config", str(config), "--junit", str(tmp_path / "cwd-relative.xml"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "r.json").read_text())  # relative to the config
    assert report["status"] == "passed" and report["samples"] == 100 and report["timesteps"] == 8
    assert report["config"] == str(config)
    assert (tmp_path / "out" / "s.md").read_text().startswith("## snncc validate")
    assert (tmp_path / "cwd-relative.xml").exists()
    assert "gate min-accuracy" in result.output and "wrote " in result.output


def test_flags_override_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[gates]\nmin_accuracy = 0.5\n")
    result = invoke("--config", str(config), "-T", "4", "--limit", "50", "--min-accuracy", "0.1",
                    "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["timesteps"] == 4 and report["samples"] == 50
    assert report["gates"][0]["limit"] == 0.1


def test_failing_gate_exits_1_and_is_named_in_every_output(tmp_path: Path) -> None:
    result = invoke(str(DIGITS), "-T", "8", "--limit", "100", "--min-accuracy", "99",
                    "--max-drop", "snn=100", *outputs(tmp_path))
    assert result.exit_code == 1, result.output
    assert "validation failed: 1 gate(s) failed: min-accuracy" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed_gates"] == ["min-accuracy"] and report["passed"] is False
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "j.xml"))))
    failed = [case.name for case in suite if not case.is_passed and not case.is_skipped]
    assert failed == ["min-accuracy"]
    assert "| FAIL | `min-accuracy` |" in (tmp_path / "s.md").read_text()
    assert (tmp_path / "plots" / "accuracy.png").stat().st_size > 1000


def test_baseline_regression_fails_the_gate(tmp_path: Path) -> None:
    first = invoke(str(DIGITS), "-T", "8", "--limit", "100", "--json", str(tmp_path / "b.json"))
    assert first.exit_code == 0, first.output
    baseline = json.loads((tmp_path / "b.json").read_text())
    same = invoke(str(DIGITS), "-T", "8", "--limit", "100", "--baseline", str(tmp_path / "b.json"),
                  "--tolerance", "0")
    assert same.exit_code == 0, same.output
    baseline["snn_accuracy"] = min(1.0, baseline["snn_accuracy"] + 0.02)
    baseline["spikes_per_sample"] /= 2
    (tmp_path / "b.json").write_text(json.dumps(baseline))
    worse = invoke(str(DIGITS), "-T", "8", "--limit", "100", "--baseline", str(tmp_path / "b.json"),
                   "--tolerance", "1", "--spikes-tolerance", "10", "--json", str(tmp_path / "r.json"))
    assert worse.exit_code == 1, worse.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed_gates"] == ["baseline-accuracy", "baseline-spikes"]


def test_stages_flag_adds_the_ladder_and_its_drop_gates(tmp_path: Path) -> None:
    result = invoke(str(DIGITS), "-T", "8", "--limit", "100", "--stages", "--max-drop",
                    "convert=100", "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert [s["name"] for s in report["stages"]] == ["ann", "convert"]
    assert report["gates"][0]["name"] == "max-drop:convert"
    assert "stage convert (float)" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--max-drop", "snn"], "bad --max-drop 'snn': expected STAGE=PP"),
    (["--max-drop", "quantize=1"], "no stage 'quantize'"),
    (["--min-accuracy", "150"], "min accuracy must be within"),
    (["--baseline", "/nonexistent/b.json"], "baseline /nonexistent/b.json: no such file"),
    (["--limit", "0"], "limit must be >= 1"),
])
def test_bad_input_raises_one_line_errors(args: list[str], message: str) -> None:
    result = invoke(str(DIGITS), "-T", "4", "--limit", "20", *args)
    assert isinstance(result.exception, SnnccError), result.output
    assert message in str(result.exception) and "\n" not in str(result.exception)


def test_no_model_anywhere_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "snncc.toml").write_text('dataset = "digits"\n')
    result = invoke("--config", str(tmp_path / "snncc.toml"))
    assert isinstance(result.exception, SnnccError)
    assert "no model" in str(result.exception)


def snncc_command() -> list[str]:
    """The installed ``snncc`` script beside this Python, else ``python -m snncc``."""
    script = Path(sys.executable).parent / "snncc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "snncc"]


def run_snncc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CI": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.run(snncc_command() + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_bad_config_and_bad_flags_exit_2(tmp_path: Path) -> None:
    (tmp_path / "snncc.toml").write_text("timesteps = 'many'\n")
    done = run_snncc(["validate", "--config", "snncc.toml"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: config snncc.toml: key 'timesteps' must be an "
                                   "integer, got a string 'many'")
    done = run_snncc(["validate", "--config", "snncc.toml", "--no-such-flag"], tmp_path)
    assert done.returncode == 2, done.stderr  # a usage error is never "a gate failed" (1)
    assert "No such option: --no-such-flag" in done.stderr and "Traceback" not in done.stderr


def workflow_commands() -> dict[str, str]:
    """The ``snncc validate`` line of each example CI file, exactly as written there."""
    github = yaml.safe_load((CI / "github-actions.yml").read_text())
    gitlab = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    lines = {
        "github": [step["run"] for job in github["jobs"].values() for step in job["steps"]
                   if "snncc validate" in step.get("run", "")],
        "gitlab": [line for job in gitlab.values() if isinstance(job, dict)
                   for line in job.get("script", []) if "snncc validate" in line],
    }
    for name, found in lines.items():
        assert len(found) == 1, f"{name}: expected one snncc validate line, found {found}"
    return {name: found[0].strip() for name, found in lines.items()}


def workflow_setup() -> list[str]:
    """GitHub workflow ``run`` lines between installing snncc and the gate (e.g. mkdir)."""
    steps = yaml.safe_load((CI / "github-actions.yml").read_text())["jobs"]["validate"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    install = next(i for i, run in enumerate(runs) if "pip install" in run)
    gate = next(i for i, run in enumerate(runs) if "snncc validate" in run)
    return runs[install + 1:gate]


def test_example_ci_files_upload_reports_and_run_one_gate_command() -> None:
    commands = workflow_commands()
    assert commands["github"] == commands["gitlab"]
    github = (CI / "github-actions.yml").read_text()
    gitlab = yaml.safe_load((CI / "gitlab-ci.yml").read_text())["snncc-gate"]
    assert "actions/upload-artifact" in github and "if: always()" in github
    assert 'python-version: "3.10"' in github and 'pip install -e ".[lava]"' in github
    assert gitlab["artifacts"]["when"] == "always"
    assert gitlab["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    assert gitlab["image"] == "python:3.10"
    assert workflow_setup() == ["mkdir -p reports"]
    assert gitlab["script"][-2] == "mkdir -p reports"


def test_example_ci_command_runs_as_the_workflow_writes_it(tmp_path: Path) -> None:
    """Runs the workflow's line in a checkout-like directory (examples/ linked into tmp_path)."""
    words = shlex.split(workflow_commands()["github"])
    assert words[:2] == ["snncc", "validate"]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    for line in workflow_setup():  # the steps before the gate that prepare the checkout
        subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    done = run_snncc(words[1:], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b[" not in done.stderr  # no progress bars in CI logs
    report = json.loads((tmp_path / "reports" / "validate.json").read_text())
    assert report["status"] == "passed" and report["dataset"] == "digits"
    assert {g["name"] for g in report["gates"]} >= {"min-accuracy", "max-drop:snn",
                                                    "fits:loihi2", "baseline-accuracy"}
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "reports" / "junit.xml"))))
    assert suite.tests == len(report["gates"]) and suite.failures == 0
    assert (tmp_path / "reports" / "summary.md").read_text().count("PASS") == len(report["gates"])
    assert sorted(p.name for p in (tmp_path / "reports" / "plots").iterdir()) == [
        "accuracy.png", "spikes.png"]


def test_failing_gate_exits_1_from_the_command_line(tmp_path: Path) -> None:
    done = run_snncc(["validate", str(DIGITS), "-T", "8", "--limit", "100", "--min-accuracy",
                      "99"], tmp_path)
    assert done.returncode == 1, done.stderr
    assert "validation failed: 1 gate(s) failed: min-accuracy" in " ".join(done.stdout.split())


def test_chip_that_is_too_small_fails_the_fit_gate(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[gates]\nfits = ["loihi2"]\nmax_cores = 1\n')
    result = invoke("--config", str(config), "--json", str(tmp_path / "r.json"))
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failed_gates"] == ["fits:loihi2"]
    (fit,) = report["fits"]
    assert not fit["fits"] and fit["cores_used"] > 1 and fit["violations"]
