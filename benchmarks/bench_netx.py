"""netx benchmark: lava-dl's netx loader on lava-nc vs the reference simulator, same run.

For each ONNX model (default the four MNIST models) it compiles what ``snncc compile MODEL
--target lava`` writes (the loihi2-netx profile; ``--calibration`` training samples), loads the
emitted ``network.net`` with ``lava.lib.dl.netx.hdf5.Network`` and runs ``--limit`` MNIST test
samples in lava-nc (``Loihi2SimCfg``, ``fixed_pt``; :func:`snncc.backends.netx_lava.run_netx`),
then the same samples through the simulator's integer mode, in the same process. It prints
samples/s of both (lava-dl's includes building one network per ``--batch-size`` samples; the
simulator is timed as the ``sim`` target runs, recording rasters), the ratio, the spike
agreement (the fraction of samples whose every hidden-layer spike and every output potential
after every step are identical; must be 100%), the decision agreement and both accuracies.

    PYTHONPATH=. python benchmarks/bench_netx.py --limit 100 --timesteps 16

Needs the ``netx`` extra (lava-dl; ``scripts/setup.sh`` installs it) and ../shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snncc import datasets, pipeline  # noqa: E402
from snncc.engines import simulate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = "mnist_mlp,mnist_cnn_bn,mnist_cnn_bn_unfused,mnist_cnn_ratenorm"


def bench(model: Path, test: datasets.Dataset, timesteps: int, batch_size: int,
          calibration: int, data_dir: str) -> dict[str, object]:
    from snncc.backends.netx_lava import agreement, run_netx

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        graph = pipeline.compile_model(model, Path(out) / "lava", target="lava",
                                       data_dir=data_dir, timesteps=timesteps,
                                       calibration_count=calibration).graph
        compile_seconds = time.perf_counter() - started
        path = Path(out) / "lava" / "network.net"
        if not path.exists():
            raise SystemExit(f"{model.name}: no network.net was written")
        inputs = pipeline.model_inputs(graph, test)
        simulate(graph, inputs[:4], timesteps, mode="integer")  # warm-up: BLAS, numba
        started = time.perf_counter()
        reference = simulate(graph, inputs, timesteps, mode="integer", labels=test.labels,
                             record=True)
        sim_seconds = time.perf_counter() - started
        run = run_netx(path, graph, inputs, timesteps, batch_size=batch_size)
    agree = agreement(graph, reference, run)
    return {
        "model": model.stem,
        "samples": len(inputs),
        "timesteps": timesteps,
        "compile_seconds": compile_seconds,
        "netx_samples_per_s": len(inputs) / run.seconds,
        "sim_samples_per_s": len(inputs) / sim_seconds,
        "speedup_sim_over_netx": run.seconds / sim_seconds,
        "spike_agreement": float(agree.mean()),
        "decision_agreement": float(np.mean(run.predictions[-1] == reference.predictions[-1])),
        "netx_accuracy": float(np.mean(run.predictions[-1] == test.labels)),
        "sim_accuracy": reference.accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS, help="comma-separated ../shared/models names")
    parser.add_argument("--limit", type=int, default=100, help="MNIST test samples per model")
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=50, help="samples per Lava run")
    parser.add_argument("--calibration", type=int, default=2000, help="training samples")
    parser.add_argument("--data-dir", default=os.environ.get("SNNCC_DATA_DIR",
                                                             str(SHARED / "datasets")))
    parser.add_argument("--models-dir", default=str(SHARED / "models"))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    test = datasets.load_dataset("mnist", "test", args.data_dir).take(args.limit)
    rows = []
    for name in args.models.split(","):
        row = bench(Path(args.models_dir) / f"{name}.onnx", test, args.timesteps,
                    args.batch_size, args.calibration, args.data_dir)
        rows.append(row)
        print(f"{row['model']:22s} N={row['samples']} T={row['timesteps']}: "
              f"netx {row['netx_samples_per_s']:.2f} samples/s, "
              f"sim {row['sim_samples_per_s']:.0f} samples/s "
              f"(sim {row['speedup_sim_over_netx']:.0f}x faster), "
              f"spike agreement {100 * row['spike_agreement']:.1f}%, "
              f"decisions {100 * row['decision_agreement']:.1f}%, "
              f"accuracy netx {100 * row['netx_accuracy']:.1f}% "
              f"sim {100 * row['sim_accuracy']:.1f}%", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
