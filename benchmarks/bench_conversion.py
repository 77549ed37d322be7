"""ANN -> SNN conversion benchmark on the shared ONNX fixtures (issue 2's figures).

For every model in ``../shared/models`` (or ``--models``): the ANN's test accuracy from onnxruntime,
the converted SNN's accuracy at each T (each T converted and calibrated for itself, on training
samples), and throughput at T=32 — the reference simulator against onnxruntime's ANN forward pass,
measured in the same run on the same inputs.

    python benchmarks/bench_conversion.py                       # full test sets, T = 8,16,32,64
    python benchmarks/bench_conversion.py --limit 1000 --models mnist_mlp --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from snncc.datasets import load_dataset
from snncc.engines import simulate
from snncc.pipeline import load_model, model_inputs, onnxruntime_logits, prepare

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def throughput(function, repeats: int = 1) -> float:
    """Best-of-``repeats`` wall seconds of ``function()``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def bench_model(path: Path, data_dir: Path, timesteps: list[int], limit: int | None,
                speed_samples: int, options: dict) -> dict:
    graph = load_model(path)
    name = graph.metadata["dataset"]
    test = load_dataset(name, "test", data_dir).take(limit)
    inputs = model_inputs(graph, test)
    logits = onnxruntime_logits(path, graph, inputs)
    row: dict = {"model": path.stem, "samples": len(test),
                 "ann_accuracy": float((logits.argmax(1) == test.labels).mean()), "snn": {}}
    for steps in timesteps:
        snn, _ = prepare(graph, ["convert"], dataset=name, data_dir=str(data_dir),
                         timesteps=steps, options={"convert": options})
        result = simulate(snn, inputs, steps, labels=test.labels)
        row["snn"][steps] = {"accuracy": result.accuracy,
                             "spikes_per_sample": result.spikes_per_sample,
                             "synops_per_sample": float(result.synops.mean())}
    # throughput at T=32, same inputs, same process
    speed_inputs = inputs[:speed_samples]
    snn, _ = prepare(graph, ["convert"], dataset=name, data_dir=str(data_dir), timesteps=32,
                     options={"convert": {**options, "bias_correction": False}})
    sim_seconds = throughput(lambda: simulate(snn, speed_inputs, 32, batch_size=512), 2)
    ort_seconds = throughput(lambda: onnxruntime_logits(path, graph, speed_inputs), 3)
    row["sim_samples_per_s"] = len(speed_inputs) / sim_seconds
    row["ort_samples_per_s"] = len(speed_inputs) / ort_seconds
    row["sim_cost_vs_ort"] = sim_seconds / ort_seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated model stems")
    parser.add_argument("--timesteps", default="8,16,32,64")
    parser.add_argument("--limit", type=int, default=None, help="test samples (default all)")
    parser.add_argument("--speed-samples", type=int, default=2000)
    parser.add_argument("--data-dir", default=str(SHARED / "datasets"))
    parser.add_argument("--option", action="append", default=[],
                        help="convert option KEY=VALUE (JSON value)")
    parser.add_argument("--json", default=None, help="write the results as JSON")
    args = parser.parse_args()
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    stems = args.models.split(",") if args.models else sorted(
        p.stem for p in (SHARED / "models").glob("*.onnx"))
    timesteps = [int(t) for t in args.timesteps.split(",")]
    console = Console()
    rows = []
    for stem in stems:
        row = bench_model(SHARED / "models" / f"{stem}.onnx", Path(args.data_dir), timesteps,
                          args.limit, args.speed_samples, options)
        rows.append(row)
        console.print(f"{stem}: ANN {row['ann_accuracy']:.2%} "
                      + " ".join(f"T{t}:{v['accuracy']:.2%}" for t, v in row["snn"].items())
                      + f"  sim {row['sim_samples_per_s']:.0f}/s vs ORT "
                      f"{row['ort_samples_per_s']:.0f}/s = {row['sim_cost_vs_ort']:.1f}x")
    table = Table(title="snncc conversion: accuracy (full test set unless --limit) and speed")
    table.add_column("model")
    table.add_column("ANN (ORT)", justify="right")
    for steps in timesteps:
        table.add_column(f"SNN T={steps}", justify="right")
    table.add_column("spikes/sample T=32", justify="right")
    table.add_column("sim/s T=32", justify="right")
    table.add_column("ORT/s", justify="right")
    table.add_column("cost vs ORT", justify="right")
    for row in rows:
        table.add_row(
            row["model"], f"{row['ann_accuracy']:.2%}",
            *[f"{row['snn'][t]['accuracy']:.2%}" for t in timesteps],
            f"{row['snn'].get(32, {}).get('spikes_per_sample', float('nan')):,.0f}",
            f"{row['sim_samples_per_s']:,.0f}", f"{row['ort_samples_per_s']:,.0f}",
            f"{row['sim_cost_vs_ort']:.1f}x",
        )
    console.print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
