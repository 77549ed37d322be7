"""Validation reports for people and CI systems: JSON, JUnit XML, Markdown and PNG plots.

Every format is rendered from the same dictionary, :meth:`snncc.pipeline.ValidationReport.to_dict`
(JSON schema ``snncc/schemas/validate-report.schema.json``), so a stored JSON report renders the
same as a fresh run. Files are written atomically (:mod:`snncc.util`) into existing directories;
the plots directory is created when its parent exists. Formats are described in
``docs/reports.md``.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from snncc.errors import SnnccError
from snncc.util import atomic_path, atomic_write_text

SCHEMA_FILE = Path(__file__).parent / "schemas" / "validate-report.schema.json"
STATUS_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def report_schema() -> dict[str, Any]:
    """The JSON Schema of validation reports."""
    return json.loads(SCHEMA_FILE.read_text())


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, allow_nan=False) + "\n"


# -------------------------------------------------------------------------------------- JUnit


def to_junit(report: dict[str, Any]) -> str:
    """JUnit XML: one ``testsuite``, one ``testcase`` per gate.

    A failed gate carries ``<failure message="...">``, a skipped one ``<skipped message="...">``.
    The suite's ``properties`` hold the headline measures; ``system-out`` the Markdown summary.
    """
    model = Path(report["model"]).name
    gates = report["gates"]
    failures = sum(gate["status"] == "failed" for gate in gates)
    skipped = sum(gate["status"] == "skipped" for gate in gates)
    seconds = f"{report.get('total_seconds') or report['wall_seconds']:.3f}"
    root = ElementTree.Element("testsuites", name="snncc validate", tests=str(len(gates)),
                               failures=str(failures), errors="0", skipped=str(skipped),
                               time=seconds)
    suite = ElementTree.SubElement(
        root, "testsuite", name=f"snncc validate {model}", tests=str(len(gates)),
        failures=str(failures), errors="0", skipped=str(skipped), time=seconds)
    properties = ElementTree.SubElement(suite, "properties")
    for key in ("model", "model_sha256", "target", "mode", "dataset", "samples", "timesteps",
                "snn_accuracy", "ann_accuracy", "spikes_per_sample", "synops_per_sample",
                "schema", "snncc_version"):
        if report.get(key) is not None:
            ElementTree.SubElement(properties, "property", name=key, value=str(report[key]))
    classname = f"snncc.validate.{Path(report['model']).stem}"
    for gate in gates:
        case = ElementTree.SubElement(suite, "testcase", classname=classname, name=gate["name"],
                                      time="0")
        if gate["status"] == "failed":
            failure = ElementTree.SubElement(case, "failure", type="GateFailed",
                                             message=f"{gate['name']}: {gate['message']}")
            failure.text = _gate_detail(gate)
        elif gate["status"] == "skipped":
            ElementTree.SubElement(case, "skipped", message=gate["message"])
        else:
            ElementTree.SubElement(case, "system-out").text = gate["message"]
    ElementTree.SubElement(suite, "system-out").text = to_markdown(report)
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode") + "\n"


def _gate_detail(gate: dict[str, Any]) -> str:
    return f"gate {gate['name']} failed: {gate['message']} (value {_number(gate['value'])}, " \
           f"limit {_number(gate['limit'])})"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


# ------------------------------------------------------------------------------------ Markdown


def to_markdown(report: dict[str, Any]) -> str:
    """A summary for CI job summaries and pull-request comments (GitHub-flavoured Markdown)."""
    model = Path(report["model"]).name
    failed = report["failed_gates"]
    verdict = ("all gates passed" if report["passed"] else
               f"{len(failed)} gate(s) failed: {', '.join(failed)}")
    lines = [f"## snncc validate: {model} {'passed' if report['passed'] else 'FAILED'}", "",
             f"**{verdict}** - {report['dataset']}, {report['samples']} samples, "
             f"T={report['timesteps']}, target `{report['target']}` ({report['mode']}), "
             f"passes: {', '.join(report['passes']) or 'none'}", ""]
    if report["gates"]:
        lines += ["| | gate | value | limit | result |", "|---|---|---:|---:|---|"]
        for gate in report["gates"]:
            lines.append(f"| {STATUS_MARK[gate['status']]} | `{gate['name']}` | "
                         f"{gate_amount(gate['name'], gate['value'])} | "
                         f"{gate_amount(gate['name'], gate['limit'])} | "
                         f"{_escape(gate['message'])} |")
        lines.append("")
    else:
        lines += ["No gates configured.", ""]
    lines += ["| measure | value |", "|---|---:|"]
    if report.get("ann_accuracy") is not None:
        lines.append(f"| ANN accuracy ({report['ann_reference']}) | {report['ann_accuracy']:.2%} |")
    curve = report["accuracy_curve"]
    for step in checkpoints(len(curve)):
        lines.append(f"| SNN accuracy at T={step} | {curve[step - 1]:.2%} |")
    lines += [f"| spikes per sample | {report['spikes_per_sample']:,.1f} |",
              f"| synaptic ops per sample | {report['synops_per_sample']:,.0f} |"]
    if report.get("decision_time") is not None:
        lines.append(f"| mean decision time (steps) | {report['decision_time']:.1f} |")
    lines += [f"| simulation wall time | {report['wall_seconds']:.2f} s |", ""]
    if report.get("target_runs"):
        lines += [f"### Targets (agreement with `{report['target']}`)", "",
                  "| target | mode | accuracy | agreement | spikes/sample | wall time |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {run['target']} | {run['mode']} | {run['accuracy']:.2%} | "
                  f"{run['agreement']:.2%} | {run['spikes_per_sample']:,.1f} | "
                  f"{run['wall_seconds']:.2f} s |" for run in report["target_runs"]]
        lines.append("")
    if report.get("stages"):
        lines += ["### Accuracy ladder", "", "| stage | mode | accuracy | drop (pp) | "
                  "spikes/sample | synops/sample | weights (bytes) | connectivity | diverges at |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        previous = None
        for stage in report["stages"]:
            drop = "" if previous is None else f"{(previous - stage['accuracy']) * 100:.2f}"
            connectivity = stage.get("connectivity")
            lines.append(f"| {stage['name']} | {stage['mode']} | {stage['accuracy']:.2%} | {drop} "
                         f"| {_optional(stage['spikes_per_sample'], ',.1f')} "
                         f"| {_optional(stage['synops_per_sample'], ',.0f')} "
                         f"| {_optional(stage.get('weight_memory_bytes'), ',')} "
                         f"| {'' if connectivity is None else f'{connectivity:.1%}'} "
                         f"| {stage.get('diverges_at') or ''} |")
            previous = stage["accuracy"]
        lines.append("")
    if report.get("spikes_per_layer"):
        lines += ["<details><summary>Spikes per layer</summary>", "",
                  "| layer | spikes per sample |", "|---|---:|"]
        lines += [f"| {name} | {count:,.1f} |" for name, count in report["spikes_per_layer"].items()]
        lines += ["", "</details>", ""]
    for fit in report.get("fits") or []:
        lines.append(f"- chip `{fit['chip']}`: {fit['verdict']} ({fit['cores_used']} cores, "
                     f"{fit['chips_needed']} chip(s))")
    baseline = report.get("baseline")
    if baseline:
        lines.append(f"- baseline `{baseline['path']}`: SNN accuracy "
                     f"{baseline['snn_accuracy']:.2%}, tolerance {baseline['tolerance_pp']:g} pp")
        lines += [f"  - note: {note}" for note in baseline["notes"]]
    if report.get("fits") or baseline:
        lines.append("")
    lines.append(f"<sub>snncc {report['snncc_version']}, report schema `{report['schema']}`, "
                 f"model sha256 `{report['model_sha256'][:12]}`</sub>")
    return "\n".join(lines) + "\n"


def gate_amount(name: str, value: float | None) -> str:
    """A gate's value or limit in its unit: % for accuracies, pp for drops, % growth, cores."""
    if value is None:
        return "n/a"
    kind = name.split(":", 1)[0]
    if kind in ("min-accuracy", "agreement"):
        return f"{value:.2%}"
    if kind in ("max-drop", "baseline-accuracy"):
        return f"{value:+.2f} pp" if kind == "baseline-accuracy" else f"{value:.2f} pp"
    if kind in ("baseline-spikes", "baseline-synops"):
        return f"{value:+.1f} %"
    if kind == "fits":
        return f"{value:.0f} cores"
    return _number(value)


def checkpoints(timesteps: int) -> list[int]:
    """The timesteps worth a row: powers of two from 8 below ``timesteps``, and ``timesteps``."""
    return sorted({s for s in (8, 16, 32, 64, 128, 256, 512) if s < timesteps} | {timesteps})


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _optional(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


# --------------------------------------------------------------------------------------- plots


def write_plots(report: dict[str, Any], directory: str | Path) -> list[Path]:
    """``accuracy.png`` (accuracy vs timesteps) and ``spikes.png`` (spikes per layer).

    The accuracy plot shows the deployed SNN's curve (and further targets'), the ANN reference as a horizontal line,
    one curve per simulated stage of the ladder (a point at the final step when only the final
    accuracy is known; ANN-mode stages as horizontal lines), the
    stored baseline's curve when compared with one, and the ``min-accuracy`` floor.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    directory = Path(directory)
    _make_directory(directory)
    written = []

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    curve = report["accuracy_curve"]
    steps = list(range(1, len(curve) + 1))
    for index, stage in enumerate(report.get("stages") or []):
        color, label = f"C{index % 10}", f"stage {stage['name']} ({stage['mode']})"
        if stage["accuracy_curve"]:
            axes.plot(steps[:len(stage["accuracy_curve"])], _percent(stage["accuracy_curve"]),
                      lw=1, alpha=0.8, color=color, label=label)
        elif stage["mode"] == "ann":
            if stage["name"] != "ann" or report.get("ann_accuracy") is None:
                axes.axhline(stage["accuracy"] * 100, lw=1, ls=":", color=color, label=label)
        else:  # measured at the final step only
            axes.plot([len(curve)], [stage["accuracy"] * 100], marker="o", ls="none",
                      color=color, label=label)
    if report.get("baseline") and report["baseline"].get("accuracy_curve"):
        base = report["baseline"]["accuracy_curve"]
        axes.plot(range(1, len(base) + 1), _percent(base), color="grey", ls="--", lw=1,
                  label="baseline SNN")
    axes.plot(steps, _percent(curve), color="black", lw=2,
              label=f"SNN ({report['target']}, {report['mode']})")
    for run in report.get("target_runs") or []:
        axes.plot(steps, _percent(run["accuracy_curve"]), lw=1.2, ls="--",
                  label=f"SNN ({run['target']}, {run['mode']})")
    if report.get("ann_accuracy") is not None:
        axes.axhline(report["ann_accuracy"] * 100, color="dimgray", ls="--", lw=1.2,
                     label=f"ANN ({report['ann_reference']})")
    for gate in report["gates"]:
        if gate["name"] == "min-accuracy" and gate["limit"] is not None:
            axes.axhline(gate["limit"] * 100, color="C1", ls="-.", lw=1, label="accuracy floor")
    axes.set_xlabel("timesteps")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"{Path(report['model']).name} on {report['dataset']} "
                   f"({report['samples']} samples)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    written.append(_save(figure, directory / "accuracy.png"))
    plt.close(figure)

    layers = report["spikes_per_layer"]
    figure, axes = plt.subplots(figsize=(max(5.0, 0.6 * len(layers) + 2), 4), dpi=110)
    axes.bar(range(len(layers)), list(layers.values()), color="C0")
    axes.set_xticks(range(len(layers)), list(layers.keys()), rotation=45, ha="right",
                    fontsize=8)
    axes.set_ylabel("spikes per sample")
    axes.set_title(f"spikes per layer (T={report['timesteps']}, "
                   f"total {report['spikes_per_sample']:,.0f} per sample)")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    written.append(_save(figure, directory / "spikes.png"))
    plt.close(figure)
    return written


def _percent(values: list[float]) -> list[float]:
    return [100 * v if v is not None and math.isfinite(v) else math.nan for v in values]


def _save(figure: Any, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


# -------------------------------------------------------------------------------------- output


def write_reports(report: dict[str, Any], *, json_path: str | Path | None = None,
                  junit_path: str | Path | None = None,
                  markdown_path: str | Path | None = None,
                  plots_dir: str | Path | None = None) -> list[Path]:
    """Write the requested formats (each atomically); returns the files written."""
    written = []
    for path, render in ((json_path, to_json), (junit_path, to_junit),
                         (markdown_path, to_markdown)):
        if path is not None:
            written.append(atomic_write_text(path, render(report)))
    if plots_dir is not None:
        written += write_plots(report, plots_dir)
    return written


def _make_directory(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise SnnccError(f"cannot write plots into {directory}: it is a file")
    try:
        directory.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise SnnccError(f"cannot write plots into {directory}: directory {directory.parent} "
                         "does not exist") from None
    except OSError as error:
        raise SnnccError(f"cannot write plots into {directory}: {error.strerror}") from None


def check_outputs(outputs: dict[str, str | Path]) -> None:
    """Fail before any work when a report path cannot be written.

    Report files need an existing directory that accepts a new file (probed by
    :func:`snncc.util.check_writable`); the plots directory may be missing when its parent
    exists (it is created).
    """
    from snncc.util import check_writable

    for kind, path in outputs.items():
        path = Path(path)
        if kind == "plots":
            if path.exists() and not path.is_dir():
                raise SnnccError(f"cannot write plots into {path}: it is a file")
            check_writable(path / "accuracy.png" if path.is_dir() else path, "plots directory")
        else:
            check_writable(path, f"{kind} report")
