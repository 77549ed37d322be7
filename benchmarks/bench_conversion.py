"""ANN -> SNN conversion benchmark on the shared ONNX fixtures: speed ratios measured in one run.

For every model in ``../shared/models`` (or ``--models``), in the same process and on the same
inputs, at T=32 (best of ``--repeats``, the three engines taking turns):

* onnxruntime's ANN forward pass (the cost floor; its default threads),
* snncc's step engine in both modes: float (the sim target's graph) and integer (the lava
  target's graph: convert, fold, quantize),
* the convert pass's time (threshold calibration and bias correction on 2,000 training samples),
* SpikingJelly's ann2snn on the same ONNX model and inputs, when a side Python with torch and
  spikingjelly is given (``--spikingjelly-python`` or ``$SNNCC_SPIKINGJELLY_PYTHON``; see
  ``benchmarks/peer_spikingjelly.py``), on torch's default threads,

and prints ratios (absolute times on a shared machine are noise; ratios from one run are not),
with the machine's load (``os.getloadavg``) before and after. Accuracies: the ANN's, and the
SNN's at each of ``--timesteps`` (each T converted for itself) on ``--limit`` test samples.

    python benchmarks/bench_conversion.py --models mnist_cnn_bn_unfused,fashion_cnn_maxpool
    SNNCC_SPIKINGJELLY_PYTHON=/path/to/py311/bin/python python benchmarks/bench_conversion.py
    python benchmarks/bench_conversion.py --models mnist_mlp --timesteps 8,32 --limit 10000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from snncc.backends import get_target
from snncc.datasets import load_dataset
from snncc.engines import simulate, threads
from snncc.loading import calibration_samples, load_model, model_inputs, onnxruntime_logits
from snncc.pipeline import default_passes, hardware_profile, pass_defaults, prepare

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PEER_ENV = "SNNCC_SPIKINGJELLY_PYTHON"
SPEED_T = 32


def best_seconds(functions: dict, repeats: int) -> dict:
    """Best-of-``repeats`` wall seconds of each of ``functions`` (name -> callable), called in
    turn, round after round: a slow spell of a shared machine then falls on all of them, not on
    whichever happened to run during it."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def spikingjelly(python: str, model: Path, graph, inputs: np.ndarray, labels: np.ndarray,
                 name: str, data_dir: Path, repeats: int) -> dict:
    """The peer's figures from ``peer_spikingjelly.py`` run by ``python`` (a JSON line)."""
    calibration = calibration_samples(graph, name, str(data_dir), 2000)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "inputs.npz"
        np.savez(data, test=graph.input.preprocess(inputs).astype(np.float32), labels=labels,
                 calibration=graph.input.preprocess(calibration).astype(np.float32))
        done = subprocess.run([python, str(REPO / "benchmarks" / "peer_spikingjelly.py"),
                               str(model), str(data), str(SPEED_T), str(repeats)],
                              capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def bench_model(path: Path, data_dir: Path, timesteps: list[int], limit: int | None,
                speed_samples: int, repeats: int, peer: str | None) -> dict:
    graph = load_model(path)
    name = graph.metadata["dataset"]
    test = load_dataset(name, "test", str(data_dir)).take(limit)
    inputs = model_inputs(graph, test)
    row: dict = {"model": path.stem, "samples": len(test), "load_before": load()}
    logits = onnxruntime_logits(path, graph, inputs)
    row["ann_accuracy"] = float((logits.argmax(1) == test.labels).mean())

    start = time.perf_counter()
    sim, lava = [get_target("sim")], [get_target("lava")]
    sim_graph, _ = prepare(graph, default_passes(graph, sim), dataset=name,
                           data_dir=str(data_dir), timesteps=SPEED_T)
    row["convert_seconds"] = time.perf_counter() - start
    cpu = hardware_profile(lava, "lava-cpu")  # convert, fold, quantize (reset by subtraction)
    lava_graph, _ = prepare(sim_graph, default_passes(sim_graph, lava, cpu), dataset=name,
                            data_dir=str(data_dir), timesteps=SPEED_T,
                            options=pass_defaults(lava, None, cpu))

    speed = inputs[:speed_samples]
    simulate(sim_graph, speed[:8], SPEED_T)  # compile the kernels before timing
    simulate(lava_graph, speed[:8], SPEED_T, mode="integer")
    seconds = best_seconds({
        "ort": lambda: onnxruntime_logits(path, graph, speed),
        "float": lambda: simulate(sim_graph, speed, SPEED_T),
        "integer": lambda: simulate(lava_graph, speed, SPEED_T, mode="integer"),
    }, repeats)
    row.update({f"{key}_samples_per_s": len(speed) / value for key, value in seconds.items()})
    row["float_cost_vs_ort"] = seconds["float"] / seconds["ort"]
    row["integer_cost_vs_ort"] = seconds["integer"] / seconds["ort"]
    if peer:
        row["spikingjelly"] = spikingjelly(peer, path, graph, speed, test.labels[:speed_samples],
                                           name, data_dir, repeats)
        peer_rate = row["spikingjelly"].get("samples_per_second")
        if peer_rate:
            row["float_vs_spikingjelly"] = row["float_samples_per_s"] / peer_rate
            row["integer_vs_spikingjelly"] = row["integer_samples_per_s"] / peer_rate

    row["snn"] = {}
    for steps in timesteps:
        snn = sim_graph if steps == SPEED_T else prepare(
            graph, default_passes(graph, sim), dataset=name, data_dir=str(data_dir),
            timesteps=steps)[0]
        result = simulate(snn, inputs, steps, labels=test.labels)
        row["snn"][steps] = {"accuracy": result.accuracy,
                             "spikes_per_sample": result.spikes_per_sample,
                             "synops_per_sample": float(result.synops.mean())}
    row["load_after"] = load()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated model stems")
    parser.add_argument("--timesteps", default="32", help="T values for the accuracy columns")
    parser.add_argument("--limit", type=int, default=1000, help="test samples for accuracy")
    parser.add_argument("--speed-samples", type=int, default=500,
                        help="test samples each speed measurement runs")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap snncc's threads (default: $SNNCC_THREADS, else every core)")
    parser.add_argument("--spikingjelly-python", default=os.environ.get(PEER_ENV),
                        help=f"Python with torch + spikingjelly (default: ${PEER_ENV})")
    parser.add_argument("--data-dir", default=str(SHARED / "datasets"))
    parser.add_argument("--json", default=None, help="write the results as JSON")
    args = parser.parse_args()
    used = threads.configure(args.threads)
    stems = args.models.split(",") if args.models else sorted(
        p.stem for p in (SHARED / "models").glob("*.onnx"))
    timesteps = [int(t) for t in args.timesteps.split(",") if t]
    console = Console(width=180)  # the table is wide; a pipe would otherwise get 80 columns
    console.print(f"snncc threads: {used}; {load()}; T={SPEED_T}; best of {args.repeats}; "
                  f"{args.speed_samples} samples per speed run")
    rows = []
    for stem in stems:
        row = bench_model(SHARED / "models" / f"{stem}.onnx", Path(args.data_dir), timesteps,
                          args.limit, args.speed_samples, args.repeats, args.spikingjelly_python)
        rows.append(row)
        peer = row.get("spikingjelly", {})
        console.print(
            f"{stem}: ORT {row['ort_samples_per_s']:,.0f}/s; snncc float "
            f"{row['float_samples_per_s']:,.0f}/s ({row['float_cost_vs_ort']:.1f}x ORT's cost), "
            f"integer {row['integer_samples_per_s']:,.0f}/s "
            f"({row['integer_cost_vs_ort']:.1f}x); convert {row['convert_seconds']:.1f} s"
            + (f"; SpikingJelly {peer['samples_per_second']:,.0f}/s "
               f"(snncc float {row['float_vs_spikingjelly']:.2f}x, integer "
               f"{row['integer_vs_spikingjelly']:.2f}x)" if "samples_per_second" in peer
               else f"; SpikingJelly: {peer['error']}" if "error" in peer else "")
            + f"  [{row['load_before']} -> {row['load_after']}]")
    table = Table(title=f"snncc vs onnxruntime{' and SpikingJelly' if args.spikingjelly_python else ''}"
                  f" (T={SPEED_T}; ratios from one run)")
    for column in ["model", "ANN acc", *[f"SNN T={t}" for t in timesteps], "ORT/s",
                   "float/s", "int/s", "float cost vs ORT", "int cost vs ORT", "SJ/s",
                   "float vs SJ", "int vs SJ", "convert s"]:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        peer = row.get("spikingjelly", {})
        table.add_row(
            row["model"], f"{row['ann_accuracy']:.2%}",
            *[f"{row['snn'][t]['accuracy']:.2%}" for t in timesteps],
            f"{row['ort_samples_per_s']:,.0f}", f"{row['float_samples_per_s']:,.0f}",
            f"{row['integer_samples_per_s']:,.0f}", f"{row['float_cost_vs_ort']:.1f}x",
            f"{row['integer_cost_vs_ort']:.1f}x",
            f"{peer['samples_per_second']:,.0f}" if "samples_per_second" in peer else "-",
            f"{row['float_vs_spikingjelly']:.2f}x" if "float_vs_spikingjelly" in row else "-",
            f"{row['integer_vs_spikingjelly']:.2f}x" if "integer_vs_spikingjelly" in row else "-",
            f"{row['convert_seconds']:.1f}",
        )
    console.print(table)
    console.print(load())
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
