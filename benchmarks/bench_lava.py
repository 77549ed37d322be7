"""Lava backend benchmark: lava-nc CPU throughput vs the reference simulator, agreement, accuracy.

For each network (``mlp``: mnist_mlp.onnx; ``cnn``: mnist_cnn_bn_unfused.onnx with conv and
average pooling; both direct-coded unless ``--coding rate``; ``bstdg``: a latency-coded binary
single-spike network) it builds the integer graph (``--target lava --profile lava-cpu``:
convert, fold, quantize for snncc's Lava ProcessModels; ``bench_netx.py`` measures the netx
default), runs ``--limit`` MNIST test samples through the reference simulator's integer mode and
through lava-nc (``Loihi2SimCfg``, ``fixed_pt``) in the same process, and prints samples/s
of both (Lava's includes building and compiling one network per ``--batch-size`` samples; the
simulator is timed as the ``sim`` target runs on ``--sim-samples`` test samples, and again
recording rasters on the ``--limit`` samples Lava ran), the fraction of
samples whose every raster, decision and readout state agree (must be 100%), and the accuracies.

    PYTHONPATH=. python benchmarks/bench_lava.py --limit 100 --timesteps 32

``bstdg`` is the trained example network ``examples/mnist_784_600_10.bstdg.h5`` (``--bstdg``), its
latency code compressed to T steps; ``--bstdg ''`` uses a stand-in of the same IR shape whose +-1
hidden weights are the signs of MNIST class-mean deviations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snncc import datasets, ir  # noqa: E402
from snncc.engines import run_ann, simulate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ONNX_MODELS = {"mlp": "mnist_mlp.onnx", "cnn": "mnist_cnn_bn_unfused.onnx"}


def onnx_pipeline(model: Path, train: datasets.Dataset, timesteps: int,
                  calibration_samples: int, coding: str) -> tuple[ir.Graph, ir.Graph]:
    """(float ANN, integer SNN) for an ONNX checkpoint through the ``lava-cpu`` profile's
    pipeline (snncc's own ProcessModels): convert, fold, quantize (target ``lava``: 8-bit weight
    mantissas with a per-layer exponent, 17-bit-mantissa thresholds)."""
    from snncc.frontend.onnx_import import load_onnx
    from snncc.passes import PassContext, run_passes
    from snncc.profiles import get_profile

    ann = load_onnx(model)
    calibration = datasets.arrange(train.images[:calibration_samples], ann.input.shape)
    options = get_profile("lava-cpu").with_options({"convert": {"coding": coding}})
    context = PassContext(calibration=calibration, timesteps=timesteps, options=options)
    snn, _ = run_passes(ann, ["convert", "fold", "quantize"], context)
    return ann, snn


def bstdg_network(path: Path, timesteps: int) -> ir.Graph:
    """A trained BSTDG file, its latency code compressed to ``timesteps`` steps."""
    from snncc.frontend.bstdg import load_bstdg

    graph = load_bstdg(path)
    graph.input.t_max = timesteps
    return graph


def bstdg_standin(train: datasets.Dataset, timesteps: int, per_class: int = 3) -> ir.Graph:
    """A BSTDG-shaped integer network from class-mean templates (see the module docstring)."""
    images = train.images[:6000].reshape(6000, -1).astype(np.float64) / 255.0
    labels = train.labels[:6000]
    overall = images.mean(axis=0)
    rng = np.random.default_rng(0)
    rows, owners = [], []
    for digit in range(10):
        members = images[labels == digit]
        for part in np.array_split(rng.permutation(len(members)), per_class):
            rows.append(np.where(members[part].mean(axis=0) > overall, 1, -1))
            owners.append(digit)
    hidden = np.array(rows, dtype=np.int64)
    output = np.where(np.array(owners)[None, :] == np.arange(10)[:, None], 1, -1)
    graph = ir.Graph({"source": "bench_lava bstdg stand-in"})
    graph.chain(
        ("input", ir.Input(shape=(784,), coding="latency", scale=1 / 255)),
        ("fc1", ir.Dense(weight=hidden)),
        ("if1", ir.IF(threshold=np.array([25]), v_init=np.array([0]), reset="zero",
                      fire_once=True)),
        ("fc2", ir.Dense(weight=output.astype(np.int64))),
        ("readout", ir.Readout(mode="first_spike", threshold=np.array([1]))),
    )
    return graph


def agreement(reference, result) -> np.ndarray:
    """Per sample: every raster, every decision and the readout state are identical."""
    same = np.all(reference.predictions == result.predictions, axis=0)
    same &= np.all(reference.readout_state == result.readout_state, axis=1)
    for name, raster in reference.rasters.items():
        other = result.rasters[name]
        same &= np.all((raster == other).reshape(raster.shape[0], raster.shape[1], -1),
                       axis=(0, 2))
    return same


def bench(name: str, snn: ir.Graph, ann: ir.Graph | None, images: np.ndarray,
          labels: np.ndarray, timesteps: int, batch_size: int,
          sim_images: np.ndarray) -> dict[str, object]:
    from snncc.backends import lava, sim

    raw = datasets.arrange(images, snn.input.shape)
    sim_raw = datasets.arrange(sim_images, snn.input.shape)
    sim.run(snn, raw[:4], timesteps)  # warm-up: BLAS threads, numba compilation
    started = time.perf_counter()
    sim.run(snn, sim_raw, timesteps)  # the sim target: event-driven for TTFS chains
    sim_seconds = time.perf_counter() - started
    started = time.perf_counter()
    reference = simulate(snn, raw, timesteps, mode="integer", labels=labels, record=True)
    sim_recording_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = lava.run(snn, raw, timesteps, labels=labels, record=True, batch_size=batch_size)
    lava_seconds = time.perf_counter() - started
    agree = agreement(reference, result)
    row: dict[str, object] = {
        "network": name,
        "samples": len(raw),
        "timesteps": timesteps,
        "sim_samples": len(sim_raw),
        "lava_samples_per_s": len(raw) / lava_seconds,
        "sim_samples_per_s": len(sim_raw) / sim_seconds,
        "sim_recording_samples_per_s": len(raw) / sim_recording_seconds,
        "speedup_sim_over_lava": (len(sim_raw) / sim_seconds) / (len(raw) / lava_seconds),
        "agreement": float(agree.mean()),
        "lava_accuracy": result.accuracy,
        "sim_accuracy": reference.accuracy,
        "lava_processes": {n: p.kind for n, p in lava.plan(snn, timesteps).nodes.items()},
    }
    if ann is not None:
        logits = run_ann(ann, datasets.arrange(images, ann.input.shape))
        row["ann_accuracy"] = float((logits.argmax(axis=1) == labels).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="mlp,cnn,bstdg")
    parser.add_argument("--limit", type=int, default=100, help="MNIST test samples per network")
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=50, help="samples per Lava run")
    parser.add_argument("--calibration", type=int, default=1000, help="training samples")
    parser.add_argument("--data-dir", default=os.environ.get("SNNCC_DATA_DIR",
                                                             SHARED / "datasets"))
    parser.add_argument("--models-dir", default=SHARED / "models")
    parser.add_argument("--coding", default="direct", help="input coding of the ONNX networks")
    parser.add_argument("--bstdg", default=str(REPO / "examples" / "mnist_784_600_10.bstdg.h5"),
                        help="trained BSTDG file ('' for the class-mean stand-in)")
    parser.add_argument("--sim-samples", type=int, default=2000,
                        help="test samples the simulator's throughput is timed on (at least "
                             "--limit; more than Lava's, so fixed set-up costs do not dominate)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()

    train = datasets.load_dataset("mnist", "train", args.data_dir)
    full_test = datasets.load_dataset("mnist", "test", args.data_dir)
    test = full_test.take(args.limit)
    sim_images = full_test.images[:max(args.sim_samples, args.limit)]
    rows = []
    for name in args.networks.split(","):
        if name in ONNX_MODELS:
            ann, snn = onnx_pipeline(Path(args.models_dir) / ONNX_MODELS[name], train,
                                     args.timesteps, args.calibration, args.coding)
        elif name == "bstdg":
            ann, snn = None, (bstdg_network(Path(args.bstdg), args.timesteps) if args.bstdg
                              else bstdg_standin(train, args.timesteps))
        else:
            raise SystemExit(f"unknown network {name!r}")
        row = bench(name, snn, ann, test.images, test.labels, args.timesteps, args.batch_size,
                    sim_images)
        rows.append(row)
        print(f"{name:6s} N={row['samples']} T={row['timesteps']}: "
              f"lava {row['lava_samples_per_s']:.2f} samples/s, "
              f"sim {row['sim_samples_per_s']:.0f} samples/s on {row['sim_samples']} "
              f"({row['sim_recording_samples_per_s']:.0f} recording rasters) "
              f"(sim {row['speedup_sim_over_lava']:.0f}x faster), "
              f"agreement {100 * row['agreement']:.1f}%, "
              f"accuracy lava {100 * row['lava_accuracy']:.1f}% "
              f"sim {100 * row['sim_accuracy']:.1f}%"
              + (f" ann {100 * row['ann_accuracy']:.1f}%" if "ann_accuracy" in row else ""),
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
