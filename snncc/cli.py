"""The ``snncc`` command line: a thin layer over :mod:`snncc.pipeline` and friends.

Exit codes: 0 success (all gates pass), 1 a gate failed (or a network does not fit), 2 bad input.
Errors print one line on stderr; set ``SNNCC_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from snncc import __version__, ir
from snncc.errors import SnnccError

app = typer.Typer(
    name="snncc",
    help="Neuromorphic deployment compiler: ONNX and BSTDG networks to spiking backends "
    "(reference simulator, Lava, FPGA).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

TARGET_HELP = "Backend: sim (reference simulator), lava (lava-nc processes + netx), fpga (bundle)."
DATASET_HELP = "Dataset: mnist, fashion-mnist or digits (default: the model's sidecar JSON)."
DATA_DIR_HELP = "Directory with the IDX files (default: $SNNCC_DATA_DIR)."
PASSES_HELP = ("Comma-separated passes to apply (default: convert for ANNs, plus fold,quantize "
               "for lava/fpga). Use '' for none.")
OPTION_HELP = "Pass option PASS.KEY=VALUE, repeatable (e.g. convert.percentile=99.99)."
PROFILE_HELP = ("Hardware profile whose passes and options apply (default: the target's; lava: "
                "loihi2-netx for lava-dl netx / Loihi 2; lava-cpu: snncc's own CPU "
                "ProcessModels with reset by subtraction, no netx file).")
REQUIRE_NETX_HELP = "lava: fail (exit 2) with the reason when no netx network.net can be written."


def _version(value: bool) -> None:
    if value:
        console.print(f"snncc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Neuromorphic deployment compiler."""


# ------------------------------------------------------------------------------------ parsing


def parse_passes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["convert.percentile=99.9", ...]`` -> ``{"convert": {"percentile": 99.9}}``."""
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        pass_name, dot, option = key.partition(".")
        if not sep or not dot or not pass_name or not option:
            raise SnnccError(f"bad --option {item!r}: expected PASS.KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(pass_name, {})[option] = value
    return options


def parse_preprocess(scale: float | None, mean: str | None,
                     std: str | None) -> dict[str, Any] | None:
    def floats(text: str | None, what: str) -> list[float] | None:
        if text is None:
            return None
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            raise SnnccError(f"--{what} must be comma-separated numbers, got {text!r}") from None

    values = {"scale": scale, "mean": floats(mean, "mean"), "std": floats(std, "std")}
    values = {k: v for k, v in values.items() if v is not None}
    return values or None


# ----------------------------------------------------------------------------------- commands


@app.command()
def compile(  # noqa: A001 - the user-facing verb
    model: Path = typer.Argument(..., help="ONNX model, BSTDG .h5 file or saved IR (.snn.npz)."),
    target: str = typer.Option("sim", "--target", "-t", help=TARGET_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Output directory (written atomically)."),
    timesteps: int | None = typer.Option(None, "--timesteps", "-T",
                                            help="Deployment timesteps (default 32; t_max for TTFS)."),
    dataset: str | None = typer.Option(None, "--dataset", help=DATASET_HELP),
    data_dir: str | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    passes: str | None = typer.Option(None, "--passes", help=PASSES_HELP),
    option: list[str] | None = typer.Option(None, "--option", help=OPTION_HELP),
    scale: float | None = typer.Option(None, help="Input preprocessing scale (x*scale-mean)/std."),
    mean: str | None = typer.Option(None, help="Input mean (one value or one per channel)."),
    std: str | None = typer.Option(None, help="Input std (one value or one per channel)."),
    layout: str | None = typer.Option(None, help="Dataset layout for the model input: NCHW|NHWC."),
    fpga_part: str = typer.Option("zynq-7020", "--fpga-part", help="FPGA part for --target fpga."),
    strict: bool = typer.Option(False, "--strict", help="fpga: fail when the part's BRAM is exceeded."),
    profile: str | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    require_netx: bool = typer.Option(False, "--require-netx", help=REQUIRE_NETX_HELP),
) -> None:
    """Compile MODEL for a target and write its artifacts to OUTPUT."""
    from snncc.pipeline import compile_model

    target_options: dict[str, Any] = {}
    if target == "fpga":
        target_options = {"fpga_part": fpga_part, "strict": strict}
    if require_netx:
        if target != "lava":
            raise SnnccError("--require-netx applies to --target lava")
        target_options["require_netx"] = True
    result = compile_model(
        model, output, target=target, dataset=dataset, data_dir=data_dir, timesteps=timesteps,
        passes=parse_passes(passes), options=parse_options(option),
        preprocess=parse_preprocess(scale, mean, std), target_options=target_options,
        layout=layout, profile=profile,
    )
    console.print(f"compiled [bold]{model}[/] for [bold]{target}[/] "
                  f"(passes: {', '.join(result.passes) or 'none'}) -> {result.out_dir}")
    for path in sorted(result.out_dir.iterdir()):
        console.print(f"  {path.name}  ({path.stat().st_size:,} bytes)")
    if target == "lava":
        manifest = json.loads((result.out_dir / "manifest.json").read_text())
        reasons = manifest["netx_inexpressible"]
        console.print("netx: network.net written (lava.lib.dl.netx.hdf5.Network loads it; see "
                      "manifest.json 'load')" if manifest["netx"] else
                      f"netx: no network.net: {reasons[0]}", highlight=False, soft_wrap=True)


@app.command()
def validate(
    model: Path | None = typer.Argument(
        None, help="ONNX model, BSTDG .h5 file or saved IR (.snn.npz); default: the config's."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Project config (snncc.toml, see docs/ci.md); every flag "
        "given on the command line overrides it."),
    dataset: str | None = typer.Option(None, "--dataset", help=DATASET_HELP),
    data_dir: str | None = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    timesteps: int | None = typer.Option(None, "--timesteps", "-T",
                                            help="Timesteps (default 32; t_max for TTFS)."),
    target: str | None = typer.Option(
        None, "--target", "-t", help="sim (default) or lava; replaces the config's targets."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Use the first N test samples."),
    min_accuracy: float | None = typer.Option(
        None, "--min-accuracy", help="Gate: fail (exit 1) below this accuracy (0.98 or 98)."),
    min_agreement: float | None = typer.Option(
        None, "--min-agreement", help="Gate: further config targets must decide like the first "
        "on this fraction of samples (1.0: all)."),
    max_drop: list[str] | None = typer.Option(
        None, "--max-drop", help="Gate STAGE=PP: a stage may lose at most PP percentage points "
        "(stages: snn, total, and with --stages each pass). Repeatable."),
    fits: list[str] | None = typer.Option(
        None, "--fits", help="Gate: the deployed network must fit this chip (name or profile "
        "YAML; partition analysis). Repeatable."),
    stages: bool | None = typer.Option(
        None, "--stages/--no-stages", help="Measure the accuracy ladder: the network after "
        "every pass."),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="Compare with a stored JSON report; regressions fail gates."),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Baseline accuracy tolerance in percentage points (0.5)."),
    spikes_tolerance: float | None = typer.Option(
        None, "--spikes-tolerance", help="Baseline gate: spikes/sample may grow by this %."),
    synops_tolerance: float | None = typer.Option(
        None, "--synops-tolerance", help="Baseline gate: synops/sample may grow by this %."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
    junit_path: Path | None = typer.Option(
        None, "--junit", help="Write JUnit XML (one test case per gate)."),
    markdown_path: Path | None = typer.Option(
        None, "--markdown", help="Write a Markdown summary (CI job summaries, PR comments)."),
    plots_dir: Path | None = typer.Option(
        None, "--plots", help="Write accuracy.png and spikes.png into this directory."),
    passes: str | None = typer.Option(None, "--passes", help=PASSES_HELP),
    option: list[str] | None = typer.Option(None, "--option", help=OPTION_HELP),
    scale: float | None = typer.Option(None, help="Input preprocessing scale (x*scale-mean)/std."),
    mean: str | None = typer.Option(None, help="Input mean (one value or one per channel)."),
    std: str | None = typer.Option(None, help="Input std (one value or one per channel)."),
    layout: str | None = typer.Option(None, help="Dataset layout for the model input: NCHW|NHWC."),
    profile: str | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    require_netx: bool | None = typer.Option(
        None, "--require-netx/--no-require-netx",
        help="Fail (exit 2) with the reason when netx cannot express the deployed network."),
) -> None:
    """Convert MODEL, run it on a test set, check the gates and write the reports.

    Exit codes: 0 every gate passed, 1 a gate failed, 2 bad input or configuration.
    """
    from snncc.config import ProjectConfig, load_config
    from snncc.pipeline import validate as run_validation
    from snncc.reports import check_outputs, write_reports

    settings = load_config(config) if config is not None else ProjectConfig()
    settings = settings.override(
        model=model, dataset=dataset, data_dir=data_dir, timesteps=timesteps, target=target,
        limit=limit, passes=parse_passes(passes), options=parse_options(option),
        preprocess=parse_preprocess(scale, mean, std), layout=layout, stages=stages,
        min_accuracy=min_accuracy, min_agreement=min_agreement, max_drop=parse_drops(max_drop), fits=fits or None,
        baseline=baseline, tolerance=tolerance, spikes_tolerance=spikes_tolerance,
        synops_tolerance=synops_tolerance, json=json_path, junit=junit_path,
        markdown=markdown_path, plots=plots_dir, profile=profile, require_netx=require_netx,
    )
    if settings.model is None:
        raise SnnccError("no model: give MODEL or set 'model' in the --config file")
    check_outputs(settings.outputs)
    report, _ = run_validation(
        settings.model, targets=settings.run_targets(), dataset=settings.dataset,
        data_dir=None if settings.data_dir is None else str(settings.data_dir),
        timesteps=settings.timesteps, limit=settings.limit, passes=settings.passes,
        options=settings.options, preprocess=settings.preprocess or None,
        layout=settings.layout, gates=settings.gates, stages=bool(settings.stages),
        config=settings.path, profile=settings.profile,
        require_netx=bool(settings.require_netx),
    )
    print_report(report)
    outputs = settings.outputs
    written = write_reports(report.to_dict(), json_path=outputs.get("json"),
                            junit_path=outputs.get("junit"),
                            markdown_path=outputs.get("markdown"), plots_dir=outputs.get("plots"))
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    if not report.passed:
        failed = report.failed_gates
        console.print(f"[red]validation failed[/]: {len(failed)} gate(s) failed: "
                      + "; ".join(f"{gate.name} ({gate.message})" for gate in failed),
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def parse_drops(items: list[str] | None) -> dict[str, float] | None:
    """``["snn=1.5", "quantize=0.1"]`` -> ``{"snn": 1.5, "quantize": 0.1}``."""
    if not items:
        return None
    drops = {}
    for item in items:
        stage, sep, raw = item.partition("=")
        try:
            drops[stage.strip()] = float(raw)
        except ValueError:
            sep = ""
        if not sep or not stage.strip():
            raise SnnccError(f"bad --max-drop {item!r}: expected STAGE=PP (e.g. snn=1.5)")
    return drops


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="ONNX model, BSTDG .h5 file or saved IR (.snn.npz)."),
    json_output: bool = typer.Option(False, "--json", help="Print the layer table as JSON."),
) -> None:
    """Print MODEL's layers as imported into the snncc IR."""
    from snncc.pipeline import load_model

    graph = load_model(model)
    rows = describe(graph)
    if json_output:
        print(json.dumps({"model": str(model), "metadata": graph.metadata, "layers": rows},
                         indent=1, default=str))
        return
    table = Table(title=f"{model.name}  ({len(rows)} nodes)")
    for column in ("node", "type", "inputs", "output shape", "parameters", "details"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for row in rows:
        table.add_row(row["name"], row["type"], ", ".join(row["inputs"]),
                      "x".join(map(str, row["shape"])), f"{row['parameters']:,}", row["details"])
    console.print(table)


def describe(graph: ir.Graph) -> list[dict[str, Any]]:
    """One row per node: name, type, inputs, output shape, parameter count, short details."""
    shapes = graph.infer_shapes()
    rows = []
    for name in graph.topological_order():
        node = graph.nodes[name]
        arrays = {k: v for k, v in node.arrays().items() if not isinstance(node, ir.Input)}
        rows.append({
            "name": name,
            "type": type(node).__name__,
            "inputs": graph.inputs_of(name),
            "shape": list(shapes[name]),
            "parameters": int(sum(a.size for a in arrays.values())),
            "details": _details(node),
        })
    return rows


def _details(node: ir.Node) -> str:
    if isinstance(node, ir.Input):
        return f"coding={node.coding} scale={node.scale:.4g} mean={node.mean.tolist()} " \
               f"std={node.std.tolist()}" + (f" t_max={node.t_max}" if node.t_max else "")
    if isinstance(node, ir.Conv2d):
        return (f"kernel={node.weight.shape[2]}x{node.weight.shape[3]} stride={node.stride} "
                f"pad={node.padding} groups={node.groups} bias={node.bias is not None}")
    if isinstance(node, ir.Dense):
        nonzero = np.count_nonzero(node.weight) / node.weight.size
        return f"bias={node.bias is not None} connectivity={nonzero:.1%} dtype={node.weight.dtype}"
    if isinstance(node, ir.IF):
        threshold = node.threshold
        return (f"threshold[{threshold.size}] {threshold.min():.4g}..{threshold.max():.4g} "
                f"reset={node.reset}" + (" fire_once" if node.fire_once else ""))
    if isinstance(node, (ir.SumPool2d, ir.MaxPool2d)):
        extra = f" scale={node.scale:.4g}" if isinstance(node, ir.SumPool2d) else ""
        return f"kernel={node.kernel} stride={node.stride}{extra}"
    if isinstance(node, ir.Readout):
        return f"mode={node.mode}"
    if isinstance(node, ir.Clip):
        return f"[{node.low:g}, {node.high:g}]"
    return ""


def print_report(report: Any) -> None:
    """The validation report as a table for people."""
    table = Table(title=f"snncc validate: {Path(report.model).name} on {report.dataset} "
                        f"({report.samples} samples, target {report.target}, {report.mode})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    if report.ann_accuracy is not None:
        table.add_row(f"ANN accuracy ({report.ann_reference})", f"{report.ann_accuracy:.2%}")
    curve = report.accuracy_curve
    for step in sorted({s for s in (8, 16, 32, 64, 128, 256) if s < len(curve)} | {len(curve)}):
        table.add_row(f"SNN accuracy at T={step}", f"{curve[step - 1]:.2%}")
    table.add_row("spikes per sample", f"{report.spikes_per_sample:,.1f}")
    table.add_row("synaptic ops per sample", f"{report.synops_per_sample:,.0f}")
    if report.decision_time is not None:
        table.add_row("mean decision time (steps)", f"{report.decision_time:.1f}")
    table.add_row("throughput (samples/s)", f"{report.samples_per_second:,.1f}")
    table.add_row("passes", ", ".join(report.passes) or "none")
    for stage in report.stages:
        table.add_row(f"stage {stage.name} ({stage.mode})", f"{stage.accuracy:.2%}")
    marks = {"passed": "[green]pass[/] ", "failed": "[red]FAIL[/] ", "skipped": "[yellow]skip[/] "}
    for gate in report.gates:
        table.add_row(f"gate {gate.name}", marks[gate.status] + gate.message)
    console.print(table)


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise SnnccError(f"cannot write {path}: directory {parent} is missing or not writable")


# ------------------------------------------------------------------------- helpers' commands


def _register_commands() -> None:
    """Command groups that live beside their library code (each module has ``register(app)``)."""
    from snncc.commands import fpga, partition, stages, train

    for module in (train, partition, stages, fpga):
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point: run the app, turning SnnccError into one line and exit code 2."""
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except SnnccError as error:
        err_console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
        try:
            import click
        except ModuleNotFoundError:  # typer >= 0.16 vendors click as typer._click
            from typer import _click as click

        if isinstance(error, click.exceptions.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if os.environ.get("SNNCC_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/] {type(error).__name__}: {error} "
                          "(set SNNCC_DEBUG=1 for a traceback)", highlight=False, soft_wrap=True)
        sys.exit(3)
