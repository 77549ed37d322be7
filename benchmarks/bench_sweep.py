"""Sweeps and sharded validation on Dask: serial against local workers, in the same run.

    PYTHONPATH=. python benchmarks/bench_sweep.py [--section sweep|validate|energy|all]
        [--workers 2] [--limit N] [--data-dir ../shared/datasets] [--models-dir ../shared/models]

* ``sweep``: a 16-point sweep of ``mnist_mlp`` (T 8/16 x convert.percentile 99.9/99.99 x
  prune.sparsity 0/0.5/0.8/0.9, partitioned on Loihi and TrueNorth), run serially in this
  process and then on a local cluster of ``--workers`` processes, each into a fresh directory
  (no cache). Prints both wall times (the cluster's start included), the speed-up and whether
  every point measured the same.
* ``validate``: the full 10k test set of ``fashion_cnn_maxpool`` at T=32, converted once, then
  run in one process with one BLAS thread (one worker's share) and sharded over ``--workers``
  processes (what ``snncc validate --workers`` runs). Prints wall and CPU times and whether the
  predictions at every step and the spike and synaptic-event counts are identical.
* ``energy``: energy and latency per inference of ``mnist_mlp`` and ``mnist_cnn_bn_unfused`` at
  T=32 on Loihi, Loihi 2, TrueNorth and Speck, from the chips' published figures, each with its
  source (``not published`` where a chip has none).

Workers run one BLAS/OpenMP/numba thread each (snncc.cluster.WORKER_ENV), so N workers use N
cores; a sweep point runs with one BLAS thread wherever it runs (snncc.sweep rule 3), and so does
the single-process validation run here. Run ``uptime`` beside it: on a shared machine the wall
ratio moves with the load (and with Linux's per-session CPU sharing, parallel processes of one
session gain nothing while other sessions keep every core busy); the busiest process's CPU time
is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snncc.cluster import Executor  # noqa: E402
from snncc.sweep import SweepSpec, plan_sweep, run_sweep  # noqa: E402

SWEEP_GRID = {"T": [8, 16], "convert.percentile": [99.9, 99.99],
              "prune.sparsity": [0.0, 0.5, 0.8, 0.9]}
SWEEP_CHIPS = ["loihi", "truenorth"]
ENERGY_CHIPS = ["loihi", "loihi2", "truenorth", "speck"]


def load() -> str:
    return os.getloadavg().__repr__() if hasattr(os, "getloadavg") else "n/a"


def cpu_seconds(executor: Executor) -> list[float]:
    """CPU seconds (user + system) each worker process has used so far; this process's when
    serial. On a shared machine wall time follows the load, CPU time much less."""
    def used() -> float:
        times = os.times()
        return times.user + times.system

    if executor.serial:
        return [used()]
    return list(executor.client.run(used).values())


def measured(results: dict) -> list[dict]:
    return [{key: value for key, value in point["metrics"].items() if key != "wall_seconds"}
            | {"params": point["params"], "chips": point["chips"]}
            for point in results["points"]]


def bench_sweep(args: argparse.Namespace) -> None:
    spec = SweepSpec(model=Path(args.models_dir) / "mnist_mlp.onnx", grid=SWEEP_GRID,
                     chips=SWEEP_CHIPS, data_dir=args.data_dir, limit=args.limit)
    plan = plan_sweep(spec)
    print(f"sweep: {len(plan.points)} points of mnist_mlp (passes {', '.join(plan.passes)}), "
          f"{args.limit or 'all'} test samples, chips {', '.join(SWEEP_CHIPS)}; "
          f"load before {load()}")
    runs, seconds, busiest = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch:
        for workers in (1, args.workers):
            started = time.perf_counter()
            with Executor(workers=workers) as executor:
                before = cpu_seconds(executor)
                runs[workers] = run_sweep(plan, Path(scratch) / f"w{workers}", executor,
                                          plots=False).results
                used = [a - b for a, b in zip(cpu_seconds(executor), before, strict=True)]
            seconds[workers] = time.perf_counter() - started
            busiest[workers] = max(used)
            print(f"  {executor.describe():>8}: {seconds[workers]:7.1f} s wall, CPU s per "
                  f"process {', '.join(f'{u:.1f}' for u in used)} "
                  f"({runs[workers]['summary']['ok']} points ok)", flush=True)
    same = measured(runs[1]) == measured(runs[args.workers])
    for first, second in zip(measured(runs[1]), measured(runs[args.workers]), strict=True):
        for key in first:
            if first[key] != second[key]:
                print(f"  differs at {first['params']}: {key}: {str(first[key])[:70]} vs "
                      f"{str(second[key])[:70]}")
    print(f"  speed-up {args.workers} workers vs serial: wall "
          f"{seconds[1] / seconds[args.workers]:.2f}x, busiest process's CPU "
          f"{busiest[1] / busiest[args.workers]:.2f}x; identical results: {same}; "
          f"load after {load()}")
    best = max(runs[1]["points"], key=lambda point: point["metrics"]["accuracy"])
    print(f"  best point {best['params']}: {best['metrics']['accuracy']:.2%}")


def bench_validate(args: argparse.Namespace) -> None:
    """Passes once, then the deployed run in one process (one BLAS thread, as one worker has)
    and sharded over the workers (what ``snncc validate --workers`` runs)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from snncc import engines
    from snncc.cluster import simulate_sharded
    from snncc.datasets import load_dataset
    from snncc.engines import threads
    from snncc.loading import load_model, model_inputs
    from snncc.pipeline import prepare

    model = Path(args.models_dir) / "fashion_cnn_maxpool.onnx"
    print(f"validate: fashion_cnn_maxpool, T=32, {args.limit or 'all'} test samples; "
          f"load before {load()}", flush=True)
    graph, _ = prepare(load_model(model), ["convert"], dataset="fashion-mnist",
                       data_dir=args.data_dir, timesteps=32)
    test = load_dataset("fashion-mnist", "test", args.data_dir).take(args.limit)
    results, seconds, busiest = {}, {}, {}
    every_core = threads.current()
    for workers in (1, args.workers, "threads"):
        with Executor(workers=1 if workers == "threads" else workers) as executor, \
                threadpool_limits(limits=1):
            # 1: one worker's share, one process with one thread; "threads": one process with
            # every core through the engines' own threads (snncc validate without --workers)
            threads.configure(every_core if workers == "threads" else 1)
            before = cpu_seconds(executor)
            started = time.perf_counter()
            if executor.serial:
                results[workers] = engines.run(graph, model_inputs(graph, test), 32,
                                               labels=test.labels)
            else:
                results[workers] = simulate_sharded(
                    executor, graph, dataset="fashion-mnist", data_dir=args.data_dir,
                    samples=len(test), timesteps=32)
            seconds[workers] = time.perf_counter() - started
            used = [a - b for a, b in zip(cpu_seconds(executor), before, strict=True)]
        threads.configure(every_core)
        busiest[workers] = max(used)
        label = f"1 process, {every_core} threads" if workers == "threads" else (
            f"{executor.describe()}, 1 thread" if executor.serial else executor.describe())
        print(f"  {label:>22}: {seconds[workers]:7.1f} s wall, CPU s per process "
              f"{', '.join(f'{u:.1f}' for u in used)}, accuracy "
              f"{results[workers].accuracy:.2%}, spikes/sample "
              f"{results[workers].spikes_per_sample:,.1f}", flush=True)
    first, second = results[1], results[args.workers]
    same = (np.array_equal(first.predictions, second.predictions)
            and np.array_equal(first.synops, second.synops)
            and all(np.array_equal(first.spike_counts[k], second.spike_counts[k])
                    for k in first.spike_counts))
    print(f"  speed-up {args.workers} workers vs 1: wall {seconds[1] / seconds[args.workers]:.2f}x,"
          f" busiest process's CPU {busiest[1] / busiest[args.workers]:.2f}x; identical "
          f"predictions at every step, spike and synaptic-event counts: {same}; "
          f"load after {load()}")
    print(f"  {args.workers} workers vs one process on {every_core} threads: wall "
          f"{seconds['threads'] / seconds[args.workers]:.2f}x (on one machine the engines' "
          "threads already use every core; workers pay off across machines)")


def bench_energy(args: argparse.Namespace) -> None:
    print(f"energy per inference at T=32 ({args.limit or 'all'} test samples), from published "
          "figures:")
    sources: dict[str, dict[str, str]] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-energy-") as scratch:
        for name in ("mnist_mlp", "mnist_cnn_bn_unfused"):
            spec = SweepSpec(model=Path(args.models_dir) / f"{name}.onnx", grid={"T": [32]},
                             chips=ENERGY_CHIPS, data_dir=args.data_dir, limit=args.limit)
            with Executor(workers=1) as executor:
                results = run_sweep(plan_sweep(spec), Path(scratch) / name, executor,
                                    plots=False).results
            point = results["points"][0]
            metrics = point["metrics"]
            for chip in results["chips"]:
                energy = chip["energy"] or {}
                sources[chip["name"]] = {**energy.get("sources", {}),
                                         "notes": energy.get("notes", "")}
            for entry in point["chips"]:
                rows.append((name, f"{metrics['accuracy']:.2%}",
                             f"{metrics['synops_per_sample']:,.0f}",
                             f"{metrics['spikes_per_sample']:,.0f}", str(metrics["neurons"]),
                             entry["chip"], str(entry["cores_used"])
                             + ("" if entry["fits"] else " (no fit)"),
                             "not published" if entry["energy_j"] is None
                             else f"{entry['energy_j'] * 1e6:.3f} uJ",
                             "not published" if entry["latency_s"] is None
                             else f"{entry['latency_s'] * 1e3:.3f} ms"))
    header = ("model", "accuracy", "synops", "spikes", "neurons", "chip", "cores",
              "energy/inference", "latency/inference")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                              strict=True)))
    print("sources:")
    for chip, figures in sources.items():
        for figure, citation in figures.items():
            if figure != "notes":
                print(f"  {chip} {figure}: {citation}")
        if not [figure for figure in figures if figure != "notes"]:
            print(f"  {chip}: {figures['notes']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=("sweep", "validate", "energy", "all"),
                        default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None,
                        help="test samples per run (default: all 10,000)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--models-dir", default=str(ROOT.parent / "shared" / "models"))
    args = parser.parse_args()
    sections = ("sweep", "validate", "energy") if args.section == "all" else (args.section,)
    for section in sections:
        {"sweep": bench_sweep, "validate": bench_validate, "energy": bench_energy}[section](args)


if __name__ == "__main__":  # worker processes of the local cluster import this file again
    main()
