"""``snncc hdl-check``: run an FPGA bundle's Verilog on test samples and compare with the simulator."""

from __future__ import annotations

from pathlib import Path

import typer


def hdl_check(
    bundle: Path = typer.Argument(..., help="FPGA bundle directory (from --target fpga)."),
    dataset: str | None = typer.Option(None, "--dataset", help="mnist, fashion-mnist or digits "
                                       "(default: the model's dataset)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Directory with the IDX files "
                                        "(default: $SNNCC_DATA_DIR)."),
    limit: int = typer.Option(50, "--limit", "-n", help="Test samples to simulate."),
    timesteps: int | None = typer.Option(None, "--timesteps", "-T",
                                         help="Steps per sample (default: the bundle's)."),
    graph_path: Path | None = typer.Option(None, "--graph", help="Deployed IR the bundle was made "
                                           "from (default: BUNDLE/network.snn.npz)."),
) -> None:
    """Simulate BUNDLE in Icarus Verilog and compare every spike with the reference simulator.

    The bundle is untrusted: every file snncc generates for its graph must equal the bundle's,
    and the simulation runs those regenerated files in a scratch directory (never HDL from the
    bundle). Exits 1 when any sample differs.
    """
    import tempfile

    from snncc import ir
    from snncc.backends import fpga, fpga_hdl
    from snncc.datasets import load_dataset
    from snncc.engines import simulate
    from snncc.errors import SnnccError
    from snncc.pipeline import dataset_name, model_inputs
    from snncc.safety import check_graph, check_timesteps

    manifest = fpga.read_manifest(bundle)
    graph_path = graph_path or bundle / "network.snn.npz"
    graph = ir.Graph.load(graph_path)
    check_graph(graph, str(graph_path))
    graph.validate()
    if fpga.graph_sha256(graph) != manifest["graph_sha256"]:
        raise SnnccError(f"{graph_path} is not the graph {bundle} was built from "
                         f"(graph_sha256 differs from the manifest's)")
    files = fpga_hdl.regenerate_bundle(bundle, graph, manifest)
    name = dataset_name(graph, dataset)
    if name is None:
        raise SnnccError("give --dataset: the model does not name one")
    if limit < 1:
        raise SnnccError(f"--limit must be >= 1, got {limit}")
    data = load_dataset(name, "test", data_dir).take(limit)
    inputs = model_inputs(graph, data)
    steps = int(timesteps or manifest.get("timesteps") or 0)
    if steps < 1:
        raise SnnccError("give --timesteps: the bundle does not record them")
    check_timesteps(steps)
    with tempfile.TemporaryDirectory(prefix="snncc-hdl-check-") as scratch:
        for relative, content in files.items():
            (Path(scratch) / relative).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / relative).write_bytes(content)
        hardware = fpga_hdl.simulate_hdl(scratch, inputs, steps)
    reference = simulate(graph, inputs, steps, mode="integer", labels=data.labels, record=True)
    agree = fpga_hdl.agreeing_samples(graph, hardware, reference)
    hdl_accuracy = float((hardware.predictions[-1] == data.labels).mean())
    typer.echo(
        f"{bundle}: {int(agree.sum())}/{len(agree)} {name} test samples agree with the reference "
        f"simulator (every spike, prediction and readout state); accuracy HDL {hdl_accuracy:.4f}, "
        f"simulator {reference.accuracy:.4f}; T={steps}; HDL {hardware.seconds_per_sample:.3f} s "
        f"per sample ({hardware.cpu_seconds_per_sample:.3f} s CPU), "
        f"{hardware.cycles.mean():.0f} clock cycles per sample"
    )
    if not agree.all():
        first = int((~agree).nonzero()[0][0])
        typer.echo(f"mismatch: {int((~agree).sum())} samples differ, first: {first}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``hdl-check`` to the CLI."""
    app.command("hdl-check")(hdl_check)
