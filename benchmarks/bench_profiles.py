"""Hardware-profile accuracy: what deploying for Loihi 2 through netx costs, per model and T.

For each ONNX model (default the four MNIST models) and each T it runs ``snncc validate`` three
ways on the same test images, in the same process:

* ``loihi2-netx``: the lava target's default profile (rate coding, pooling folded, reset to zero
  with bias correction, one threshold per layer, 8-bit weights with exponent <= 1): the network
  ``snncc compile --target lava`` writes as ``network.net``, run in the simulator's integer mode
  (bit-exact with lava-dl's netx, see ``bench_netx.py``);
* ``lava-cpu``: the previous Lava pipeline (convert, fold, quantize; reset by subtraction,
  half-threshold start, per-neuron thresholds, direct coding), integer mode;
* the ANN in onnxruntime.

It prints one table row per model and T (accuracies, the netx column minus the subtract-reset
column, the netx column minus the ANN) and whether the netx file could be written.

    PYTHONPATH=. python benchmarks/bench_profiles.py --timesteps 16,32            # full 10k
    PYTHONPATH=. python benchmarks/bench_profiles.py --limit 2000 --json rows.json

Needs ../shared (models and MNIST).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snncc import pipeline  # noqa: E402
from snncc.backends import netx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = "mnist_mlp,mnist_cnn_bn,mnist_cnn_bn_unfused,mnist_cnn_ratenorm"
PROFILES = ("loihi2-netx", "lava-cpu")


def bench(model: Path, timesteps: int, limit: int | None, data_dir: str) -> dict[str, object]:
    row: dict[str, object] = {"model": model.stem, "timesteps": timesteps}
    for profile in PROFILES:
        started = time.perf_counter()
        report, graph = pipeline.validate(model, dataset="mnist", data_dir=data_dir,
                                          timesteps=timesteps, limit=limit, target="sim",
                                          profile=profile, ann_reference=profile == PROFILES[0])
        row[profile] = report.snn_accuracy
        row[f"{profile}_seconds"] = time.perf_counter() - started
        row["samples"] = report.samples
        if profile == "loihi2-netx":
            row["ann"] = report.ann_accuracy
            row["netx_written"] = not netx.inexpressible(graph)
    row["netx_minus_subtract_pp"] = 100 * (row["loihi2-netx"] - row["lava-cpu"])
    row["netx_minus_ann_pp"] = 100 * (row["loihi2-netx"] - row["ann"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="comma-separated ../shared/models names")
    parser.add_argument("--timesteps", default="16,32", help="comma-separated T values")
    parser.add_argument("--limit", type=int, default=None, help="test samples (default: all)")
    parser.add_argument("--data-dir", default=os.environ.get("SNNCC_DATA_DIR",
                                                             str(SHARED / "datasets")))
    parser.add_argument("--models-dir", default=str(SHARED / "models"))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    print(f"{'model':22s} {'T':>3s} {'N':>6s} {'ANN':>7s} {'netx':>7s} {'subtract':>8s} "
          f"{'netx-sub':>8s} {'netx-ANN':>8s}  network.net", flush=True)
    rows = []
    for name in args.models.split(","):
        for timesteps in (int(t) for t in args.timesteps.split(",")):
            row = bench(Path(args.models_dir) / f"{name}.onnx", timesteps, args.limit,
                        args.data_dir)
            rows.append(row)
            print(f"{row['model']:22s} {timesteps:3d} {row['samples']:6d} "
                  f"{100 * row['ann']:6.2f}% {100 * row['loihi2-netx']:6.2f}% "
                  f"{100 * row['lava-cpu']:7.2f}% {row['netx_minus_subtract_pp']:+7.2f}pp "
                  f"{row['netx_minus_ann_pp']:+7.2f}pp  "
                  f"{'written' if row['netx_written'] else 'NOT WRITTEN'}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
