"""``snncc sweep MODEL --grid KEY=V1,V2 ... --chip NAME -o DIR``: a design-space sweep on Dask.

Exit codes: 0 every point finished, 1 some points failed (reported in the results, the rest
kept), 2 bad input (the CLI's handling of :class:`~snncc.errors.SnnccError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

GRID_HELP = ("Grid axis KEY=V1,V2,...: T (timesteps) or PASS.OPTION (e.g. convert.percentile, "
             "prune.sparsity, quantize.bits). Repeatable; points are all combinations.")
WORKERS_HELP = ("Local Dask worker processes (default: the machine's cores; 1 runs the points "
                "in this process).")
SCHEDULER_HELP = ("Run on an existing Dask cluster, tcp://HOST:PORT (default: "
                  "$SNNCC_SCHEDULER). Its workers need snncc and the data directory.")
TIMEOUT_HELP = "Seconds to wait for the scheduler before giving up (10)."


def register(app: typer.Typer) -> None:
    """Add the ``sweep`` command to ``app``."""

    @app.command("sweep")
    def sweep_command(
        model: Path | None = typer.Argument(
            None, help="ONNX model, BSTDG .h5 file or saved IR (.snn.npz); default: the "
            "config's."),
        grid: list[str] | None = typer.Option(None, "--grid", "-g", help=GRID_HELP),
        chip: list[str] | None = typer.Option(
            None, "--chip", help="Chip to partition and price each point on (name or profile "
            "YAML). Repeatable."),
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Results directory (sweep.json, sweep.csv, sweep.md, "
            "plots/, cache/); created if missing."),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="Project config (snncc.toml): model, dataset, "
            "options and the sweep table (see docs/sweep.md); flags override it."),
        dataset: str | None = typer.Option(
            None, "--dataset", help="Dataset: mnist, fashion-mnist or digits (default: the "
            "model's sidecar JSON)."),
        data_dir: str | None = typer.Option(
            None, "--data-dir", help="Directory with the IDX files, as the workers see it "
            "(default: $SNNCC_DATA_DIR)."),
        limit: int | None = typer.Option(None, "--limit", "-n",
                                         help="Use the first N test samples."),
        timesteps: int | None = typer.Option(
            None, "--timesteps", "-T", help="Timesteps of every point when the grid has no T."),
        passes: str | None = typer.Option(
            None, "--passes", help="Comma-separated passes (default: convert for ANNs, plus "
            "the passes the grid keys name)."),
        option: list[str] | None = typer.Option(
            None, "--option", help="Pass option PASS.KEY=VALUE for every point, repeatable."),
        workers: int | None = typer.Option(None, "--workers", "-w", help=WORKERS_HELP),
        scheduler: str | None = typer.Option(None, "--scheduler", help=SCHEDULER_HELP),
        scheduler_timeout: float | None = typer.Option(None, "--scheduler-timeout",
                                                       help=TIMEOUT_HELP),
        plots: bool | None = typer.Option(None, "--plots/--no-plots",
                                          help="Write the plots (default: yes)."),
    ) -> None:
        """Compile, validate, partition and price MODEL at every point of a grid.

        Finished points are cached under OUTPUT/cache: run the same command again after an
        interruption and only the missing points are computed.
        """
        from rich.console import Console

        from snncc.cluster import SCHEDULER_TIMEOUT, Executor, machine_workers, resolve_scheduler
        from snncc.commands.arguments import parse_grid, parse_options, parse_passes
        from snncc.config import ProjectConfig, load_config
        from snncc.errors import SnnccError
        from snncc.sweep import SweepSpec, plan_sweep, run_sweep

        settings = load_config(config) if config is not None else ProjectConfig()
        settings = settings.override(model=model, dataset=dataset, data_dir=data_dir,
                                     limit=limit, timesteps=timesteps,
                                     passes=parse_passes(passes),
                                     options=parse_options(option))
        table: dict[str, Any] = settings.sweep
        axes = parse_grid(grid) if grid else dict(table.get("grid", {}))
        if settings.model is None:
            raise SnnccError("no model: give MODEL or set 'model' in the --config file")
        out_dir = output or table.get("output")
        if out_dir is None:
            raise SnnccError("no output directory: give -o DIR or set 'sweep.output' in the "
                             "--config file")
        if workers is None and scheduler is None:  # flags first, then the config, then $ENV
            scheduler = table.get("scheduler") or resolve_scheduler(None)
            if scheduler is None:
                workers = table.get("workers", machine_workers())
        plan = plan_sweep(SweepSpec(
            model=settings.model, grid=axes, chips=list(chip or table.get("chips", [])),
            dataset=settings.dataset,
            data_dir=None if settings.data_dir is None else str(settings.data_dir),
            limit=settings.limit, passes=settings.passes, options=settings.options,
            timesteps=settings.timesteps, preprocess=settings.preprocess or None,
            layout=settings.layout))
        timeout = scheduler_timeout or table.get("scheduler_timeout", SCHEDULER_TIMEOUT)
        executor = Executor(workers=workers, scheduler=scheduler, timeout=timeout)
        console = Console()
        todo = len(plan.points)
        console.print(f"sweep: {todo} point(s) of {settings.model} on {plan.dataset} "
                      f"(passes: {', '.join(plan.passes) or 'none'}) on {executor.describe()}",
                      highlight=False)
        with executor:
            run = run_sweep(plan, out_dir, executor,
                            plots=plots if plots is not None else table.get("plots", True))
        print_summary(run.results, console)
        console.print(f"{run.computed} point(s) computed, {run.cached} from the cache, "
                      f"{run.failed} failed", highlight=False)
        for path in run.files:
            console.print(f"wrote {path}", highlight=False)
        raise typer.Exit(1 if run.failed else 0)


def print_summary(results: dict[str, Any], console: Any) -> None:
    """The results as a table for people: one row per point, accuracy and per chip figures."""
    from rich.table import Table

    table = Table(title=f"snncc sweep: {Path(results['model']).name} on {results['dataset']}")
    keys = list(results["grid"])
    for key in keys:
        table.add_column(key)
    table.add_column("accuracy", justify="right")
    table.add_column("synops/sample", justify="right")
    for chip in results["chips"]:
        table.add_column(f"{chip['name']} cores", justify="right")
        table.add_column(f"{chip['name']} uJ", justify="right")
    for point in results["points"]:
        cells = [str(point["params"][key]) for key in keys]
        if point["status"] != "ok":
            table.add_row(*cells, f"[red]failed[/]: {point['error']}",
                          *[""] * (1 + 2 * len(results["chips"])))
            continue
        metrics = point["metrics"]
        cells += [f"{metrics['accuracy']:.2%}", f"{metrics['synops_per_sample']:,.0f}"]
        for entry in point["chips"]:
            cells.append(f"{entry['cores_used']}" + ("" if entry["fits"] else " (no fit)"))
            cells.append("n/p" if entry["energy_j"] is None else f"{entry['energy_j'] * 1e6:.3g}")
        table.add_row(*cells)
    console.print(table)
    if any(chip["energy_j"] is None for point in results["points"] for chip in point["chips"]):
        console.print("n/p: energy not published for that chip (see sweep.md for the sources)",
                      highlight=False)
