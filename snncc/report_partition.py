"""Rendering of a :class:`~snncc.passes.partition.PartitionReport`: rich table, JSON, Markdown."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from snncc.passes.partition import RESOURCE_NAMES, PartitionReport, format_amount
from snncc.util import atomic_write_text

JSON_SCHEMA = "snncc.partition/1"


def _utilization(report: PartitionReport, plan_index: int) -> list[str]:
    """Peak ``used / limit (percent)`` of each resource over the layer's blocks."""
    plan = report.layers[plan_index]
    cells = []
    for resource in report.chip.core:
        used = plan.peak(resource)
        limit = max((report.chip.core_limit(resource, c) or 0)
                    for c in range(report.chip.cores_per_chip))
        percent = 100.0 * used / limit if limit else math.nan
        cells.append(f"{format_amount(resource, used)} ({percent:.0f}%)")
    return cells


def summary_lines(report: PartitionReport) -> list[str]:
    """The facts below the table, one per line."""
    chip = report.chip
    per_chip = ", ".join(str(n) for n in report.cores_per_chip)
    lines = [
        f"chip: {chip.name} ({chip.title}){' [estimates]' if chip.estimate else ''}",
        f"cores used: {report.cores_used} (per chip: {per_chip}); chips needed: "
        f"{report.chips_needed} of {chip.chips} available",
    ]
    if report.placement is not None:
        placement = report.placement
        basis = "measured spike rates" if report.rates_measured else "rate 1.0 (not measured)"
        partitioned = ("n/a" if math.isnan(placement.partitioner_traffic)
                       else f"{placement.partitioner_traffic:.4g}")
        lines.append(
            f"placement: {placement.method}; inter-chip traffic {placement.traffic:.4g} "
            f"(greedy {placement.greedy_traffic:.4g}, partitioner {partitioned}, total "
            f"{placement.total_traffic:.4g}) synaptic events/step, {basis}")
    lines += [f"note: {note}" for note in report.notes]
    lines += [f"violation: {violation}" for violation in report.violations]
    lines.append(f"verdict: {report.verdict}")
    return lines


def print_report(report: PartitionReport, console: Any | None = None) -> None:
    """A rich table (one row per layer) and the summary lines."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{report.model or 'model'} on {report.chip.name}")
    for column in ("layer", "kind", "neurons", "fan-in", "synapses (nonzero)", "bits", "cores",
                   "split"):
        table.add_column(column, justify="left" if column in ("layer", "kind", "split")
                         else "right")
    for resource in report.chip.core:
        table.add_column(f"peak {RESOURCE_NAMES[resource]}", justify="right")
    for index, plan in enumerate(report.layers):
        layer = plan.layer
        table.add_row(layer.name, layer.kind, str(layer.neurons), str(layer.fan_in),
                      f"{layer.synapses} ({layer.nonzero_synapses})", str(layer.weight_bits),
                      str(plan.pieces), plan.split, *_utilization(report, index))
    console.print(table)
    for line in summary_lines(report):
        style = "green" if line == "verdict: fits" else ("red" if line.startswith(
            ("verdict", "violation")) else None)
        console.print(line, style=style, highlight=False, soft_wrap=True)


def to_json(report: PartitionReport) -> dict[str, Any]:
    """The report as plain JSON data (``schema: snncc.partition/1``)."""
    return {"schema": JSON_SCHEMA, **report.as_dict()}


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def write_json(report: PartitionReport, path: str | Path) -> Path:
    text = json.dumps(_finite(to_json(report)), indent=1, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _finite(value: Any) -> Any:
    """NaN (not computed) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def to_markdown(report: PartitionReport) -> str:
    """A GitHub-flavoured Markdown summary for CI (verdict first)."""
    mark = "fits" if report.fits else "does not fit"
    lines = [f"### {report.model or 'model'} on `{report.chip.name}`: **{mark}**", ""]
    header = ["layer", "kind", "neurons", "fan-in", "synapses (nonzero)", "bits", "cores", "split"]
    header += [f"peak {RESOURCE_NAMES[r]}" for r in report.chip.core]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join("---" for _ in header) + " |")
    for index, plan in enumerate(report.layers):
        layer = plan.layer
        row = [f"`{layer.name}`", layer.kind, str(layer.neurons), str(layer.fan_in),
               f"{layer.synapses} ({layer.nonzero_synapses})", str(layer.weight_bits),
               str(plan.pieces), plan.split, *_utilization(report, index)]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += [f"- {line}" for line in summary_lines(report)]
    return "\n".join(lines) + "\n"


def write_markdown(report: PartitionReport, path: str | Path) -> Path:
    return atomic_write_text(path, to_markdown(report))
