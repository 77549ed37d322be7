"""Sweep results for people and tools: JSON, CSV, Markdown and PNG plots.

Every format is rendered from the results dictionary of :func:`snncc.sweep.build_results` (JSON
schema ``snncc/schemas/sweep-results.schema.json``), each file written to a temporary name and
renamed (:mod:`snncc.util`), so a reader never sees half a file. Plots:

- ``accuracy_vs_T.png``: accuracy against T, one line per configuration (the other grid keys);
  without a ``T`` axis, accuracy per configuration.
- ``pareto_energy.png``: accuracy against energy per inference (log scale), one colour per chip
  with a published energy figure, the Pareto front joined by a line.
- ``pareto_cores.png``: accuracy against cores used, likewise per chip.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from snncc.passes.partition import RESOURCE_NAMES, format_amount
from snncc.reports import _make_directory, _save
from snncc.util import atomic_write_text

SCHEMA_FILE = Path(__file__).parent / "schemas" / "sweep-results.schema.json"


def results_schema() -> dict[str, Any]:
    """The JSON Schema of sweep results."""
    return json.loads(SCHEMA_FILE.read_text())


def write_results(results: dict[str, Any], out_dir: str | Path, *, plots: bool = True
                  ) -> list[Path]:
    """``sweep.json``, ``sweep.csv``, ``sweep.md`` and (``plots``) ``plots/*.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    written = [
        atomic_write_text(out_dir / "sweep.json", json.dumps(results, indent=1, allow_nan=False)
                          + "\n"),
        atomic_write_text(out_dir / "sweep.csv", to_csv(results)),
        atomic_write_text(out_dir / "sweep.md", to_markdown(results)),
    ]
    if plots:
        written += write_plots(results, out_dir / "plots")
    return written


def _label(params: dict[str, Any], skip: str | None = None) -> str:
    text = ", ".join(f"{key}={value}" for key, value in params.items() if key != skip)
    return text or "all points"


def memory_text(memory: dict[str, int]) -> str:
    """``synapse memory 12.5 KiB; block RAM 3 BRAM36`` (names and units of partition reports)."""
    return "; ".join(f"{RESOURCE_NAMES.get(resource, resource)} "
                     f"{format_amount(resource, amount)}" for resource, amount in memory.items())


# ------------------------------------------------------------------------------------------ CSV


def to_csv(results: dict[str, Any]) -> str:
    """One row per point: grid values, measurements, then per chip fit, cores, chips, memory,
    energy (J) and latency (s); an empty cell where there is no value."""
    keys = list(results["grid"])
    chips = [chip["name"] for chip in results["chips"]]
    header = (["index", "status"] + keys
              + ["accuracy", "spikes_per_sample", "synops_per_sample", "decision_time",
                 "neurons"]
              + [f"{chip}:{column}" for chip in chips
                 for column in ("fits", "cores", "chips", "memory", "energy_j", "latency_s")]
              + ["error"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for point in results["points"]:
        metrics = point["metrics"] or {}
        row: list[Any] = [point["index"], point["status"]]
        row += [point["params"].get(key) for key in keys]
        row += [_cell(metrics.get(name)) for name in
                ("accuracy", "spikes_per_sample", "synops_per_sample", "decision_time",
                 "neurons")]
        by_chip = {chip["chip"]: chip for chip in point["chips"]}
        for chip in chips:
            entry = by_chip.get(chip)
            if entry is None:
                row += [""] * 6
                continue
            row += [_cell(entry["fits"]), _cell(entry["cores_used"]),
                    _cell(entry["chips_needed"]), memory_text(entry["memory"]),
                    _cell(entry["energy_j"]), _cell(entry["latency_s"])]
        row.append(point["error"] or "")
        writer.writerow(row)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


# ------------------------------------------------------------------------------------- Markdown


def to_markdown(results: dict[str, Any]) -> str:
    """A summary table per point and chip, the energy figures with their sources, failures."""
    summary = results["summary"]
    keys = list(results["grid"])
    lines = [f"## snncc sweep: {Path(results['model']).name} on {results['dataset']}", "",
             f"{summary['points']} points ({summary['ok']} finished, {summary['failed']} failed, "
             f"{summary['cached']} from the cache), passes: "
             f"{', '.join(results['passes']) or 'none'}, samples: "
             f"{results['limit'] or 'all'}, run on {results['executor']} in "
             f"{results['wall_seconds']:.1f} s", ""]
    lines += [f"- note: {note}" for note in results["notes"]]
    if results["notes"]:
        lines.append("")
    header = keys + ["accuracy", "spikes/sample", "synops/sample"]
    for chip in results["chips"]:
        name = chip["name"]
        header += [f"{name} cores", f"{name} energy (uJ)", f"{name} latency (ms)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in results["points"]:
        if point["status"] != "ok":
            continue
        metrics = point["metrics"]
        cells = [str(point["params"][key]) for key in keys]
        cells += [f"{metrics['accuracy']:.2%}", f"{metrics['spikes_per_sample']:,.0f}",
                  f"{metrics['synops_per_sample']:,.0f}"]
        for entry in point["chips"]:
            fits = "" if entry["fits"] else " (no fit)"
            star = "*" if entry["pareto_energy"] else ""
            cells += [f"{entry['cores_used']}{fits}",
                      "not published" if entry["energy_j"] is None
                      else f"{entry['energy_j'] * 1e6:.3g}{star}",
                      "not published" if entry["latency_s"] is None
                      else f"{entry['latency_s'] * 1e3:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "`*`: on the chip's accuracy-energy Pareto front.", ""]
    lines += ["### Energy figures and their sources", "",
              "| chip | figure | value | source |", "|---|---|---:|---|"]
    for chip in results["chips"]:
        energy = chip["energy"] or {}
        given = {name: value for name, value in energy.items()
                 if name not in ("sources", "notes") and value is not None}
        if not given:
            lines.append(f"| {chip['name']} | - | not published | "
                         f"{_escape(energy.get('notes') or 'no energy figures in the profile')} |")
        for name, value in given.items():
            lines.append(f"| {chip['name']} | {name} | {value:.4g} | "
                         f"{_escape(energy['sources'].get(name, ''))} |")
    failed = [point for point in results["points"] if point["status"] != "ok"]
    if failed:
        lines += ["", "### Failed points", ""]
        lines += [f"- {_label(point['params'])}: {point['error']} ({point['attempts']} "
                  f"attempt(s))" for point in failed]
    lines += ["", f"<sub>snncc {results['snncc_version']}, results schema "
              f"`{results['schema']}`, model sha256 `{results['model_sha256'][:12]}`</sub>"]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------- plots


def write_plots(results: dict[str, Any], directory: Path) -> list[Path]:
    """The three plots of the module docstring, in ``directory`` (created)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    _make_directory(directory)
    done = [point for point in results["points"] if point["status"] == "ok"]
    title = f"{Path(results['model']).name} on {results['dataset']}"
    written = []

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    if "T" in results["grid"]:
        series: dict[str, list[tuple[int, float]]] = {}
        for point in done:
            label = _label(point["params"], skip="T")
            series.setdefault(label, []).append((point["params"]["T"],
                                                 point["metrics"]["accuracy"] * 100))
        for label, values in series.items():
            values.sort()
            axes.plot([v[0] for v in values], [v[1] for v in values], marker="o", lw=1.2,
                      label=label)
        axes.set_xscale("log", base=2)
        steps = sorted(results["grid"]["T"])
        axes.set_xticks(steps, [str(step) for step in steps])
        axes.minorticks_off()
        axes.set_xlabel("timesteps T")
    else:
        labels = [_label(point["params"]) for point in done]
        axes.plot(range(len(done)), [p["metrics"]["accuracy"] * 100 for p in done], "o")
        axes.set_xticks(range(len(done)), labels, rotation=45, ha="right", fontsize=7)
        axes.set_xlabel("configuration")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"accuracy vs T: {title}")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    written.append(_save(figure, directory / "accuracy_vs_T.png"))
    plt.close(figure)

    for cost, flag, name, xlabel, log in (
            ("energy_j", "pareto_energy", "pareto_energy.png", "energy per inference (J)", True),
            ("cores_used", "pareto_cores", "pareto_cores.png", "cores used", False)):
        figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
        for position, chip in enumerate(results["chips"]):
            entries = [(point["chips"][position][cost], point["metrics"]["accuracy"] * 100,
                        point["chips"][position][flag]) for point in done
                       if point["chips"][position][cost] is not None]
            if not entries:
                continue
            color = f"C{position % 10}"
            axes.plot([e[0] for e in entries], [e[1] for e in entries], "o", color=color,
                      alpha=0.45, label=chip["name"])
            front = sorted((e[0], e[1]) for e in entries if e[2])
            axes.plot([f[0] for f in front], [f[1] for f in front], "-", drawstyle="steps-post",
                      color=color, lw=1.5)
        if log and axes.get_legend_handles_labels()[0]:
            axes.set_xscale("log")
        if not axes.get_legend_handles_labels()[0]:
            axes.text(0.5, 0.5, "no chip with published figures" if log else "no chips",
                      ha="center", va="center", transform=axes.transAxes)
        else:
            axes.legend(fontsize=8, loc="lower right")
        axes.set_xlabel(xlabel)
        axes.set_ylabel("test accuracy (%)")
        axes.set_title(f"Pareto front, accuracy vs {xlabel.split(' (')[0]}: {title}",
                       fontsize=10)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        written.append(_save(figure, directory / name))
        plt.close(figure)
    return written
