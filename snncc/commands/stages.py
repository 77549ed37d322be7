"""``snncc stages MODEL``: the per-stage accuracy ladder (see :mod:`snncc.stages`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from snncc.stages import DEFAULT_STAGES


def register(app: typer.Typer) -> None:
    """Add the ``stages`` command to ``app``."""

    @app.command("stages")
    def stages_command(
        model: Path = typer.Argument(..., help="ONNX checkpoint, BSTDG file or saved IR graph."),
        dataset: str | None = typer.Option(None, "--dataset", help="mnist, fashion-mnist, digits."),
        data_dir: str | None = typer.Option(None, "--data-dir", help="Directory of IDX files."),
        timesteps: int | None = typer.Option(None, "-T", "--timesteps", help="Simulation steps."),
        limit: int | None = typer.Option(None, "--limit", help="Test samples (default: all)."),
        stages: str | None = typer.Option(
            None, "--passes", "--stages", help="Passes applied one after another, one rung each "
            f"(--stages is the same option; default: the profile's, else "
            f"{','.join(DEFAULT_STAGES)})."),
        profile: str | None = typer.Option(
            None, "--profile", help="Hardware profile: its passes are the rungs (one per "
            "hardware constraint: loihi2-netx has pool_fold, reset_zero, single_threshold, "
            "fold, quantize) and its pass options apply."),
        option: list[str] = typer.Option([], "--option",
                                         help="Pass option PASS.KEY=VALUE, repeatable."),
        max_drop: list[str] = typer.Option([], "--max-drop",
                                           help="Fail when STAGE loses more than PP points."),
        json_path: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
    ) -> None:
        """Accuracy, spikes, synops, memory and connectivity after each deployment pass."""
        from rich.console import Console
        from rich.table import Table

        from snncc.commands.arguments import parse_options
        from snncc.gates import parse_max_drop
        from snncc.stages import accuracy_ladder, max_drop_failures
        from snncc.util import atomic_write_text, check_writable

        limits = parse_max_drop(max_drop)
        if json_path is not None:
            check_writable(json_path, "json report")  # before the ladder, not after it
        options = parse_options(option)
        rungs = list(DEFAULT_STAGES)
        if profile is not None:
            from snncc.profiles import get_profile

            chosen = get_profile(profile)
            rungs = list(chosen.passes)
            options = chosen.with_options(options)
        if stages is not None:
            rungs = [s.strip() for s in stages.split(",") if s.strip()]
        report = accuracy_ladder(model, dataset, timesteps, data_dir=data_dir, limit=limit,
                                 stages=rungs, options=options)
        for stage in limits:
            report.stage(stage)  # unknown stage names fail before anything is printed
        table = Table(title=f"{model.name} on {report.dataset} ({report.samples} samples, "
                            f"T={report.timesteps})")
        for column in ("stage", "mode", "accuracy", "drop pp", "spikes/sample", "synops/sample",
                       "weights (bytes)", "connectivity", "diverges at"):
            table.add_column(column)
        for rung in report.stages:
            table.add_row(
                rung.stage, rung.mode, f"{100 * rung.accuracy:.2f}%", f"{rung.drop_pp:+.2f}",
                "-" if rung.spikes_per_sample is None else f"{rung.spikes_per_sample:.0f}",
                "-" if rung.synops_per_sample is None else f"{rung.synops_per_sample:.0f}",
                str(rung.weight_memory_bytes), f"{100 * rung.connectivity:.1f}%",
                rung.diverges_at or "",
            )
        console = Console()
        if not console.is_terminal:  # logs and CI: do not squeeze the table to 80 columns
            console = Console(width=160)
        console.print(table)
        failures = max_drop_failures(report, limits)
        data = report.to_dict()
        data["failures"] = failures
        if json_path is not None:
            atomic_write_text(json_path, json.dumps(data, indent=1))
        for line in failures:
            typer.echo(f"FAIL: {line}", err=True)
        if failures:
            raise typer.Exit(code=1)
