"""``snncc partition MODEL --chip NAME|FILE``: fit report against a chip's resource limits.

Exit codes: 0 the network fits (and every gate passes), 1 it does not fit or a gate fails,
2 bad input (the CLI's handling of :class:`~snncc.errors.SnnccError`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import typer

from snncc import ir


def measure_spike_rates(graph: ir.Graph, dataset: str | None, data_dir: str | None,
                        timesteps: int, limit: int) -> tuple[ir.Graph, dict[str, float]]:
    """Mean spikes per neuron per step of every spiking node, on ``limit`` calibration samples.

    Calibration samples come from the dataset's training split (never test data). An ANN is
    converted first (the ``convert`` pass, calibrated on the same ``limit`` samples); the
    converted graph is returned so that rate keys match its node names. The reference simulator
    runs in integer
    mode when the graph is integer, else in float mode.
    """
    from snncc.engines import simulate
    from snncc.pipeline import calibration_samples, dataset_name, is_spiking, prepare

    name = dataset_name(graph, dataset)
    if name is None:
        from snncc.errors import SnnccError

        raise SnnccError("measuring spike rates needs --dataset (or a sidecar JSON naming it)")
    if not is_spiking(graph):
        graph, _ = prepare(graph, ["convert"], dataset=name, data_dir=data_dir,
                           timesteps=timesteps, calibration_count=limit)
    samples = calibration_samples(graph, name, data_dir, limit)
    try:
        graph.check_integer()
        mode = "integer"
    except Exception:  # noqa: BLE001 - not integer-ready: float mode
        mode = "float"
    result = simulate(graph, samples, timesteps, mode=mode)
    shapes = graph.infer_shapes()
    rates = {
        node: float(np.mean(counts)) / (math.prod(shapes[node]) * timesteps)
        for node, counts in result.spike_counts.items()
    }
    return graph, rates


def register(app: typer.Typer) -> None:
    """Add the ``partition`` command to ``app``."""

    @app.command("partition")
    def partition_command(
        model: Path = typer.Argument(..., help="ONNX model, BSTDG .h5 file or saved IR "
                                     "(.snn.npz)."),
        chip: str = typer.Option(..., "--chip", help="Built-in chip (loihi, loihi2, "
                                 "kapoho-point, speck, truenorth, zynq-7020, ...) or a .yaml "
                                 "profile."),
        max_cores: int | None = typer.Option(None, "--max-cores", min=1,
                                             help="Gate: fail when more cores are needed."),
        max_chips: int | None = typer.Option(None, "--max-chips", min=1,
                                             help="Gate: fail when more chips are needed."),
        weight_bits: int | None = typer.Option(None, "--weight-bits", min=1,
                                               help="Count every layer's weights at this width."),
        json_path: Path | None = typer.Option(None, "--json", help="Write the report as JSON."),
        markdown_path: Path | None = typer.Option(None, "--markdown",
                                                  help="Write a Markdown summary (for CI)."),
        dataset: str | None = typer.Option(None, "--dataset", help="Measure spike rates on "
                                           "this dataset's training split (mnist, "
                                           "fashion-mnist, digits) for the traffic figures."),
        data_dir: str | None = typer.Option(None, "--data-dir", help="Directory with the IDX "
                                            "files (default: $SNNCC_DATA_DIR)."),
        timesteps: int = typer.Option(32, "--timesteps", "-T", min=1,
                                      help="Timesteps for the spike-rate measurement."),
        limit: int = typer.Option(256, "--limit", min=1,
                                  help="Calibration samples for the spike-rate measurement."),
    ) -> None:
        """Report whether MODEL fits CHIP: cores, chips, per-core use, placement, verdict."""
        from rich.console import Console

        from snncc.passes.partition import partition
        from snncc.pipeline import load_model
        from snncc.report_partition import print_report, write_json, write_markdown
        from snncc.resources import load_chip
        from snncc.safety import check_timesteps
        from snncc.util import check_writable

        check_timesteps(timesteps)
        for kind, path in (("json", json_path), ("markdown", markdown_path)):
            if path is not None:
                check_writable(path, f"{kind} report")  # before the analysis, not after it
        profile = load_chip(chip)
        graph = load_model(model)
        graph.metadata.setdefault("source", str(model))
        rates = None
        if dataset is not None:
            graph, rates = measure_spike_rates(graph, dataset, data_dir, timesteps, limit)
        report = partition(graph, profile, spike_rates=rates, max_cores=max_cores,
                           max_chips=max_chips, weight_bits=weight_bits)
        report.model = model.name
        print_report(report, Console(width=160))
        if json_path is not None:
            write_json(report, json_path)
        if markdown_path is not None:
            write_markdown(report, markdown_path)
        raise typer.Exit(0 if report.fits else 1)
