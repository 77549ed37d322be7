"""The ``snncc`` command line: a thin layer over :mod:`snncc.pipeline` and friends.

Exit codes: 0 success (all gates pass), 1 a gate failed (or a network does not fit), 2 bad input.
Errors print one line on stderr; set ``SNNCC_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import contextlib
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
from snncc.backends import TARGETS
from snncc.commands.arguments import (
    parse_key_values,
    parse_options,
    parse_passes,
    parse_preprocess,
)
from snncc.errors import SnnccError
from snncc.gates import parse_max_drop

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

TARGET_HELP = "Backend: " + ", ".join(TARGETS) + " (docs/targets.md)."
DATASET_HELP = "Dataset: mnist, fashion-mnist or digits (default: the model's sidecar JSON)."
DATA_DIR_HELP = "Directory with the IDX files (default: $SNNCC_DATA_DIR)."
PASSES_HELP = ("Comma-separated passes to apply (default: convert for ANNs, plus fold,quantize "
               "for lava/fpga). Use '' for none.")
OPTION_HELP = ("Pass option PASS.KEY=VALUE, repeatable (e.g. convert.percentile=99.99); "
               "TARGET.KEY=VALUE goes to the target (e.g. nir.dt=1e-4).")
NIR_CONVENTION_HELP = ("NIR files: how the producer discretised (snntorch|norse|spec; default: "
                       "what the file or its sidecar JSON says, else spec).")
NIR_DT_HELP = "NIR files: time step in seconds (overrides the convention's and the file's)."
NIR_CODING_HELP = "NIR files: input coding direct (constant current, default), rate or latency."


def nir_choices(convention: str | None, dt: float | None, coding: str | None
                ) -> dict[str, Any] | None:
    """The ``--nir-*`` flags as :func:`snncc.pipeline.load_model`'s ``nir`` argument."""
    values = {"convention": convention, "dt": dt, "coding": coding}
    return values if any(v is not None for v in values.values()) else None
PROFILE_HELP = ("Hardware profile whose passes and options apply (default: the target's; lava: "
                "loihi2-netx for lava-dl netx / Loihi 2; lava-cpu: snncc's own CPU "
                "ProcessModels with reset by subtraction, no netx file).")
CALIBRATION_HELP = ("Training samples that calibrate the passes (default: the profile's; "
                    "loihi2-netx 6000, else 2000).")
REQUIRE_NETX_HELP = "lava: fail (exit 2) with the reason when no netx network.net can be written."


def _version(value: bool) -> None:
    if value:
        console.print(f"snncc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    threads: str = typer.Option(None, "--threads", metavar="<int>",
                                help="CPU threads for simulation, calibration and BLAS "
                                "(default: $SNNCC_THREADS, else every core). Results do not "
                                "depend on it."),
) -> None:
    """Neuromorphic deployment compiler."""
    if threads is None and not os.environ.get("SNNCC_THREADS"):
        return  # every core; nothing to import yet
    from snncc.engines import threads as engine_threads

    chosen = engine_threads.parse_threads(threads, "--threads")
    if chosen is None:
        chosen = engine_threads.parse_threads(os.environ.get(engine_threads.THREADS_ENV))
    if chosen is not None:
        os.environ[engine_threads.THREADS_ENV] = str(chosen)  # child processes too
        engine_threads.configure(chosen)


# ------------------------------------------------------------------------------------ parsing


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
    target_option: list[str] | None = typer.Option(
        None, "--target-option", help="Target option KEY=VALUE, repeatable (each target's "
        "options: docs/targets.md; e.g. fpga_part=zynq-7020, use_lif=false)."),
    fpga_part: str | None = typer.Option(
        None, "--fpga-part", help="fpga: the part (default zynq-7020); = --target-option fpga_part=."),
    strict: bool | None = typer.Option(
        None, "--strict", help="fpga: fail when the part's BRAM is exceeded; = strict=true."),
    nir_convention: str | None = typer.Option(None, "--nir-convention", help=NIR_CONVENTION_HELP),
    nir_dt: float | None = typer.Option(None, "--nir-dt", help=NIR_DT_HELP),
    nir_coding: str | None = typer.Option(None, "--nir-coding", help=NIR_CODING_HELP),
    force: bool = typer.Option(False, "--force", help="Replace OUTPUT even when it is not an "
                               "earlier compile output (never the current directory or one "
                               "holding MODEL)."),
    profile: str | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    require_netx: bool | None = typer.Option(
        None, "--require-netx", help=REQUIRE_NETX_HELP + " = --target-option require_netx=true."),
    calibration_samples: int | None = typer.Option(
        None, "--calibration-samples", help=CALIBRATION_HELP),
) -> None:
    """Compile MODEL for a target and write its artifacts to OUTPUT.

    An existing OUTPUT is replaced only when it is empty or an earlier snncc compile output
    (it holds the marker file .snncc-output), unless --force is given.
    """
    from snncc.pipeline import compile_model

    target_options = parse_key_values(target_option, "--target-option")
    if fpga_part is not None:
        target_options["fpga_part"] = fpga_part
    if strict is not None:
        target_options["strict"] = strict
    if require_netx is not None:
        target_options["require_netx"] = require_netx
    result = compile_model(
        model, output, target=target, dataset=dataset, data_dir=data_dir, timesteps=timesteps,
        passes=parse_passes(passes), options=parse_options(option),
        preprocess=parse_preprocess(scale, mean, std), target_options=target_options,
        layout=layout, nir=nir_choices(nir_convention, nir_dt, nir_coding), force=force,
        profile=profile, calibration_count=calibration_samples,
    )
    console.print(f"compiled [bold]{model}[/] for [bold]{target}[/] "
                  f"(passes: {', '.join(result.passes) or 'none'}) -> {result.out_dir}")
    for path in sorted(result.out_dir.iterdir()):
        console.print(f"  {path.name}  ({path.stat().st_size:,} bytes)")
    print_pass_warnings(result.pass_info)
    manifest_path = result.out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if "netx_inexpressible" in manifest:  # a target that can write a netx file
        reasons = manifest["netx_inexpressible"]
        console.print("netx: network.net written (lava.lib.dl.netx.hdf5.Network loads it; see "
                      "manifest.json 'load')" if manifest["netx"] else
                      f"netx: no network.net: {reasons[0]}", highlight=False, soft_wrap=True)


def print_pass_warnings(pass_info: list[dict[str, Any]]) -> None:
    """Each pass's ``info["warnings"]`` as one line on stderr (e.g. quantize keeping fewer
    mantissa bits than asked because a hardware limit leaves no room)."""
    for entry in pass_info:
        info = entry.get("info")
        for warning in info.get("warnings", []) if isinstance(info, dict) else []:
            typer.echo(f"warning: {entry['pass']}: {warning}", err=True)


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
    nir_convention: str | None = typer.Option(None, "--nir-convention", help=NIR_CONVENTION_HELP),
    nir_dt: float | None = typer.Option(None, "--nir-dt", help=NIR_DT_HELP),
    nir_coding: str | None = typer.Option(None, "--nir-coding", help=NIR_CODING_HELP),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Shard the sim run over N local Dask worker processes "
        "(identical results; 1: this process)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Shard the sim run over an existing Dask cluster, "
        "tcp://HOST:PORT (its workers need snncc and the data directory)."),
    scheduler_timeout: float = typer.Option(
        10.0, "--scheduler-timeout", help="Seconds to wait for the scheduler before giving up."),
    profile: str | None = typer.Option(None, "--profile", help=PROFILE_HELP),
    require_netx: bool | None = typer.Option(
        None, "--require-netx/--no-require-netx",
        help="Fail (exit 2) with the reason when netx cannot express the deployed network."),
    calibration_samples: int | None = typer.Option(
        None, "--calibration-samples", help=CALIBRATION_HELP),
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
        min_accuracy=min_accuracy, min_agreement=min_agreement, max_drop=parse_max_drop(max_drop) or None, fits=fits or None,
        baseline=baseline, tolerance=tolerance, spikes_tolerance=spikes_tolerance,
        synops_tolerance=synops_tolerance, json=json_path, junit=junit_path,
        markdown=markdown_path, plots=plots_dir, profile=profile, require_netx=require_netx,
        calibration_samples=calibration_samples,
    )
    if settings.model is None:
        raise SnnccError("no model: give MODEL or set 'model' in the --config file")
    check_outputs(settings.outputs)
    executor = None
    if scheduler is not None or (workers is not None and workers != 1):
        from snncc.backends import get_target
        from snncc.cluster import Executor

        first = settings.run_targets()[0]
        if not get_target(first).reference:  # checked before a cluster starts
            raise SnnccError(f"--workers/--scheduler shard snncc's own engines (the sim "
                             f"target) only, not {first!r}")
        executor = Executor(workers=workers, scheduler=scheduler, timeout=scheduler_timeout)
    with executor if executor is not None else contextlib.nullcontext():
        report, _ = run_validation(
            settings.model, targets=settings.run_targets(), dataset=settings.dataset,
            data_dir=None if settings.data_dir is None else str(settings.data_dir),
            timesteps=settings.timesteps, limit=settings.limit, passes=settings.passes,
            options=settings.options, preprocess=settings.preprocess or None,
            layout=settings.layout, gates=settings.gates, stages=bool(settings.stages),
            config=settings.path, nir=nir_choices(nir_convention, nir_dt, nir_coding),
            executor=executor, profile=settings.profile,
            require_netx=bool(settings.require_netx),
            calibration_count=settings.calibration_samples,
        )
    print_pass_warnings(report.pass_info)
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


@app.command()
def inspect(
    model: Path = typer.Argument(
        ..., help="ONNX model, NIR file, BSTDG .h5 file or saved IR (.snn.npz)."),
    json_output: bool = typer.Option(False, "--json", help="Print the layer table as JSON."),
    nir_convention: str | None = typer.Option(None, "--nir-convention", help=NIR_CONVENTION_HELP),
    nir_dt: float | None = typer.Option(None, "--nir-dt", help=NIR_DT_HELP),
    nir_coding: str | None = typer.Option(None, "--nir-coding", help=NIR_CODING_HELP),
) -> None:
    """Print MODEL's layers as imported into the snncc IR (for NIR: the convention in force)."""
    from snncc.frontend.nir_import import describe_convention
    from snncc.pipeline import load_model

    graph = load_model(model, nir=nir_choices(nir_convention, nir_dt, nir_coding))
    rows = describe(graph)
    convention = describe_convention(graph)
    if json_output:
        print(json.dumps({"model": str(model), "metadata": graph.metadata, "layers": rows},
                         indent=1, default=str))
        return
    if convention:
        console.print(convention, highlight=False)
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
    if isinstance(node, ir.LEAKY):
        threshold = node.threshold
        decays = (f"du={node.du.min():.4g}..{node.du.max():.4g} "
                  if isinstance(node, ir.CubaLIF) else "")
        return (f"threshold[{threshold.size}] {threshold.min():.4g}..{threshold.max():.4g} "
                f"{decays}dv={node.dv.min():.4g}..{node.dv.max():.4g} spike if v "
                f"{node.comparison} threshold, reset={node.reset}"
                + (" (delayed)" if node.reset_delay else ""))
    if isinstance(node, (ir.SumPool2d, ir.MaxPool2d)):
        extra = f" scale={node.scale:.4g}" if isinstance(node, ir.SumPool2d) else ""
        return f"kernel={node.kernel} stride={node.stride}{extra}"
    if isinstance(node, ir.Readout):
        return f"mode={node.mode}" + (f" dv={node.dv:g}" if node.dv else "")
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
        table.add_row(f"stage {stage.stage} ({stage.mode})", f"{stage.accuracy:.2%}")
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
    from snncc.commands import fpga, partition, stages, sweep, train

    for module in (train, partition, stages, fpga, sweep):
        module.register(app)


_register_commands()


#: The signal that stopped a run, by the message and exit code main() reports for it.
_STOPPED: dict[str, tuple[str, int]] = {}
_SIGNALS = {"SIGINT": ("interrupted", 130), "SIGTERM": ("terminated", 143)}
_MAIN_PID: list[int] = []


def _stop(signum: int, frame: Any) -> None:
    """SIGINT and SIGTERM unwind the run as a KeyboardInterrupt, so every ``finally`` and
    ``except BaseException`` removes its temporary output; main() then reports the signal
    (typer itself turns a KeyboardInterrupt into a silent exit 130). Forked workers (lava-nc's
    runtime) that inherited the handler get the default action instead."""
    import signal

    if os.getpid() not in _MAIN_PID:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _STOPPED.setdefault("signal", _SIGNALS[signal.Signals(signum).name])
    raise KeyboardInterrupt


def _click_exceptions() -> tuple[type, ...]:
    """Usage-error classes: typer >= 0.16 vendors click as ``typer._click``, and a separately
    installed click (a dependency of dask) is then a different module with its own classes."""
    classes = []
    try:
        from typer import _click

        classes.append(_click.exceptions.ClickException)
    except ImportError:
        pass
    try:
        import click

        classes.append(click.exceptions.ClickException)
    except ModuleNotFoundError:
        pass
    return tuple(classes)


def main() -> None:
    """Entry point: run the app, turning SnnccError into one line and exit code 2.

    SIGINT ends a run with ``error: interrupted`` (exit 130), SIGTERM with ``error: terminated``
    (exit 143), after the temporary outputs are removed.
    """
    import signal

    _MAIN_PID[:] = [os.getpid()]
    for name in _SIGNALS:
        signal.signal(getattr(signal, name), _stop)
    try:
        code = app(standalone_mode=False)
        if "signal" in _STOPPED:
            raise KeyboardInterrupt
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
        message, code = _STOPPED.get("signal", _SIGNALS["SIGINT"])
        err_console.print(f"[red]error:[/] {message}", highlight=False)
        sys.exit(code)
    except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
        if isinstance(error, _click_exceptions()):
            error.show()
            sys.exit(error.exit_code)
        if os.environ.get("SNNCC_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/] {type(error).__name__}: {error} "
                          "(set SNNCC_DEBUG=1 for a traceback)", highlight=False, soft_wrap=True)
        sys.exit(3)
