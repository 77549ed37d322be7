"""Figures for the deployment passes (issue 5), on the full test sets by default.

    PYTHONPATH=. python benchmarks/bench_passes.py [--section quantize|prune|order|binarize|all]
        [--timesteps 32] [--limit N] [--data-dir ../shared/datasets] [--models-dir ../shared/models]

* ``quantize``: int8 (generic target) versus the float SNN at the same T on the MNIST CNN
  fixtures (convert -> fold -> quantize; the fold stage, 16-bit integers, is shown too).
* ``prune``: ``mnist_mlp`` pruned post-training (ERK allocation, activation criterion, 7 rounds
  with weight reconstruction and threshold re-calibration) at 50/80/90/95/99% sparsity.
* ``order``: ``mnist_mlp`` at 90/95% sparsity, int8, pruned before fold/quantize versus after
  quantize (the ladder's order).
* ``binarize``: hidden layers of ANN fixtures binarized without retraining, with and without
  threshold re-calibration, in float and after fold (integer, ±1 weights).

Conversion uses the convert pass's defaults except ``bias_correction`` (off: it costs a
simulation of the calibration set per layer and affects every stage alike); calibration uses
2,000 training samples. Every number comes from the reference simulator.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snncc.datasets import load_dataset  # noqa: E402
from snncc.engines import simulate  # noqa: E402
from snncc.passes import PassContext, run_passes  # noqa: E402
from snncc.pipeline import calibration_samples, load_model, model_inputs  # noqa: E402
from snncc.stages import weight_memory_bytes  # noqa: E402

CONVERT = {"bias_correction": False}
CNN_FIXTURES = ("mnist_cnn_bn", "mnist_cnn_bn_unfused", "mnist_cnn_ratenorm")
SPARSITIES = (0.5, 0.8, 0.9, 0.95, 0.99)


def _setup(model: str, args: argparse.Namespace):
    graph = load_model(Path(args.models_dir) / f"{model}.onnx")
    name = graph.metadata.get("dataset", "mnist")
    test = load_dataset(name, "test", args.data_dir).take(args.limit)
    inputs = model_inputs(graph, test)
    calibration = calibration_samples(graph, name, args.data_dir, 2000)
    return graph, inputs, test.labels, calibration


def _accuracy(graph, inputs, labels, timesteps: int) -> float:
    mode = "integer" if _integer(graph) else "float"
    return simulate(graph, inputs, timesteps, mode=mode, labels=labels).accuracy


def _integer(graph) -> bool:
    try:
        graph.check_integer()
    except Exception:
        return False
    return True


def _line(*fields: object) -> None:
    print(" | ".join(str(f) for f in fields), flush=True)


def bench_quantize(args: argparse.Namespace) -> None:
    _line("model", "samples", "T", "float SNN %", "fold int16 %", "int8 %", "int8 loss pp",
          "memory float -> int8 (bytes)", "seconds")
    for model in args.quantize_models.split(","):
        start = time.perf_counter()
        graph, inputs, labels, calibration = _setup(model, args)
        context = PassContext(calibration=calibration, timesteps=args.timesteps,
                              options={"convert": CONVERT, "quantize": {"bits": 8}})
        snn, _ = run_passes(graph, ["convert"], context)
        folded, _ = run_passes(snn, ["fold"], context)
        quantized, _ = run_passes(folded, ["quantize"], context)
        reference = _accuracy(snn, inputs, labels, args.timesteps)
        fold_accuracy = _accuracy(folded, inputs, labels, args.timesteps) if args.fold else None
        int8 = _accuracy(quantized, inputs, labels, args.timesteps)
        _line(model, len(labels), args.timesteps, f"{100 * reference:.2f}",
              "-" if fold_accuracy is None else f"{100 * fold_accuracy:.2f}",
              f"{100 * int8:.2f}", f"{100 * (reference - int8):+.2f}",
              f"{weight_memory_bytes(snn)} -> {weight_memory_bytes(quantized)}",
              f"{time.perf_counter() - start:.0f}")


def bench_prune(args: argparse.Namespace) -> None:
    graph, inputs, labels, calibration = _setup("mnist_mlp", args)
    context = PassContext(calibration=calibration, timesteps=args.timesteps,
                          options={"convert": CONVERT})
    snn, _ = run_passes(graph, ["convert"], context)
    reference = _accuracy(snn, inputs, labels, args.timesteps)
    _line("mnist_mlp", "samples", len(labels), "T", args.timesteps,
          f"float SNN {100 * reference:.2f}%")
    _line("sparsity", "connectivity", "per layer", "accuracy %", "loss pp",
          "no reconstruction/re-calibration %", "seconds")
    for sparsity in SPARSITIES:
        start = time.perf_counter()
        context.options["prune"] = {"sparsity": sparsity, "scope": "erk", "rounds": 7}
        pruned, results = run_passes(snn, ["prune"], context)
        info = results[0][1].info
        accuracy = _accuracy(pruned, inputs, labels, args.timesteps)
        context.options["prune"] = {"sparsity": sparsity, "scope": "erk", "reconstruct": False,
                                    "recalibrate": False, "criterion": "magnitude"}
        plain, _ = run_passes(snn, ["prune"], context)
        plain_accuracy = _accuracy(plain, inputs, labels, args.timesteps)
        per_layer = ", ".join(f"{k} {100 * v:.1f}%" for k, v in info["connectivity"].items())
        _line(f"{100 * sparsity:.0f}%", f"{100 * info['total_connectivity']:.2f}%", per_layer,
              f"{100 * accuracy:.2f}", f"{100 * (reference - accuracy):+.2f}",
              f"{100 * plain_accuracy:.2f}", f"{time.perf_counter() - start:.0f}")


def bench_order(args: argparse.Namespace) -> None:
    """Where pruning goes in the pipeline: before fold/quantize or after (the ladder's order)."""
    graph, inputs, labels, calibration = _setup("mnist_mlp", args)
    _line("mnist_mlp", "samples", len(labels), "T", args.timesteps, "int8, ERK, 7 rounds")
    _line("sparsity", "pipeline", "accuracy %", "seconds")
    for sparsity in (0.9, 0.95):
        for passes in (["convert", "prune", "fold", "quantize"],
                       ["convert", "fold", "quantize", "prune"]):
            start = time.perf_counter()
            context = PassContext(calibration=calibration, timesteps=args.timesteps,
                                  options={"convert": CONVERT, "quantize": {"bits": 8},
                                           "prune": {"sparsity": sparsity, "scope": "erk",
                                                     "rounds": 7}})
            deployed, _ = run_passes(graph, passes, context)
            accuracy = _accuracy(deployed, inputs, labels, args.timesteps)
            _line(f"{100 * sparsity:.0f}%", " -> ".join(passes), f"{100 * accuracy:.2f}",
                  f"{time.perf_counter() - start:.0f}")


def bench_binarize(args: argparse.Namespace) -> None:
    _line("model", "samples", "T", "hidden layers", "float SNN %", "binarized %",
          "+ re-calibration %", "after fold (int, ±1) %", "seconds")
    for model in args.binarize_models.split(","):
        start = time.perf_counter()
        graph, inputs, labels, calibration = _setup(model, args)
        context = PassContext(calibration=calibration, timesteps=args.timesteps,
                              options={"convert": CONVERT})
        snn, _ = run_passes(graph, ["convert"], context)
        reference = _accuracy(snn, inputs, labels, args.timesteps)
        plain, results = run_passes(snn, ["binarize"], context)
        layers = ",".join(results[0][1].info["layers"])
        plain_accuracy = _accuracy(plain, inputs, labels, args.timesteps)
        context.options["binarize"] = {"recalibrate": True}
        tuned, _ = run_passes(snn, ["binarize"], context)
        tuned_accuracy = _accuracy(tuned, inputs, labels, args.timesteps)
        folded, _ = run_passes(tuned, ["fold"], context)
        folded_accuracy = _accuracy(folded, inputs, labels, args.timesteps)
        context.options.pop("binarize")
        _line(model, len(labels), args.timesteps, layers, f"{100 * reference:.2f}",
              f"{100 * plain_accuracy:.2f}", f"{100 * tuned_accuracy:.2f}",
              f"{100 * folded_accuracy:.2f}", f"{time.perf_counter() - start:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", default="all", choices=("all", "quantize", "prune",
                                                             "order", "binarize"))
    parser.add_argument("--timesteps", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="test samples (default: all)")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--models-dir", default=str(ROOT.parent / "shared" / "models"))
    parser.add_argument("--binarize-models", default="mnist_mlp,mnist_cnn_bn")
    parser.add_argument("--quantize-models", default=",".join(CNN_FIXTURES))
    parser.add_argument("--no-fold", dest="fold", action="store_false",
                        help="skip the separate fold (int16) measurement in the quantize section")
    args = parser.parse_args()
    np.seterr(all="ignore")
    for section, run in (("quantize", bench_quantize), ("prune", bench_prune),
                         ("order", bench_order), ("binarize", bench_binarize)):
        if args.section in ("all", section):
            print(f"## {section}", flush=True)
            run(args)


if __name__ == "__main__":
    main()
