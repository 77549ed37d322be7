"""FPGA bundle figures: bundle size, bits per synapse, BRAM36 vs capacity, HDL agreement and speed.

    PYTHONPATH=. python benchmarks/bench_fpga.py [--samples 100] [--timesteps 16]

Networks: the hand-built integer MNIST networks of ``tests/backends/fpga_models.py`` (a binarized
MLP and a BSTDG-style single-spike network), plus ``mnist_mlp.onnx`` (binarized: all layers or the
hidden one; and the default 8-bit ``convert,fold,quantize``) and ``mnist_cnn_bn.onnx`` compiled by
the pass pipeline. Each is emitted as a bundle, then the first ``--samples`` MNIST test images run through
the bundle's Verilog in Icarus Verilog and through the reference simulator (integer mode); a sample
agrees when every spike of every layer, every per-step prediction and the final readout state are
equal. HDL time is the ``vvp`` run (wall and CPU) divided by the samples; cycles are the engine's
clock cycles per sample (at 100 MHz, cycles / 100 = microseconds).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "backends"))

from fpga_models import binarized_mlp, bstdg_network  # noqa: E402

from snncc import ir  # noqa: E402
from snncc.backends import fpga, fpga_hdl  # noqa: E402
from snncc.datasets import load_dataset  # noqa: E402
from snncc.engines import simulate  # noqa: E402
from snncc.errors import SnnccError  # noqa: E402
from snncc.passes import REGISTRY  # noqa: E402
from snncc.resources import load_chip  # noqa: E402

SHARED = REPO.parent / "shared"
PARTS = ("zynq-7010", "zynq-7020", "artix7-35t")


def pipeline_model(onnx_path: Path, passes: list[str], options: dict, data_dir: Path,
                   timesteps: int) -> Callable[[], ir.Graph]:
    def build() -> ir.Graph:
        from snncc.pipeline import load_model, prepare

        missing = [p for p in passes if p not in REGISTRY]
        if missing:
            raise SnnccError(f"passes {', '.join(missing)} are not registered on this branch")
        graph = load_model(onnx_path, None, None)
        graph, _ = prepare(graph, passes, dataset="mnist", data_dir=str(data_dir),
                           timesteps=timesteps, options=options)
        return graph
    return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, default=SHARED / "datasets")
    parser.add_argument("--models-dir", type=Path, default=SHARED / "models")
    parser.add_argument("--skip-hdl", action="store_true", help="bundle figures only")
    args = parser.parse_args()
    reason = fpga_hdl.iverilog_missing()
    if reason and not args.skip_hdl:
        sys.exit(f"cannot run the HDL figures: {reason}")

    train = load_dataset("mnist", "train", args.data_dir).take(2000)
    test = load_dataset("mnist", "test", args.data_dir).take(args.samples)
    timesteps = args.timesteps
    models: dict[str, Callable[[], ir.Graph]] = {
        "binarized MLP (hand-built)": lambda: binarized_mlp(args.models_dir, train.images),
        "BSTDG-style (hand-built)": lambda: bstdg_network(args.models_dir, train.images,
                                                          t_max=timesteps),
        "mnist_mlp binarize=all": pipeline_model(
            args.models_dir / "mnist_mlp.onnx", ["convert", "binarize", "fold", "quantize"],
            {"binarize": {"layers": "all"}}, args.data_dir, timesteps),
        "mnist_mlp binarize=hidden": pipeline_model(
            args.models_dir / "mnist_mlp.onnx", ["convert", "binarize", "fold", "quantize"], {}, args.data_dir,
            timesteps),
        "mnist_mlp default 8-bit": pipeline_model(
            args.models_dir / "mnist_mlp.onnx", ["convert", "fold", "quantize"], {},
            args.data_dir, timesteps),
        "mnist_cnn_bn 8-bit": pipeline_model(
            args.models_dir / "mnist_cnn_bn.onnx", ["convert", "fold", "quantize"], {}, args.data_dir, timesteps),
    }
    capacities = {part: load_chip(part).core_limit("bram36") for part in PARTS}
    print(f"MNIST, T={timesteps}, {args.samples} test samples; BRAM36 capacity: "
          + ", ".join(f"{p} {c}" for p, c in capacities.items()))
    header = (f"{'network':<28} {'synapses':>10} {'bits/syn':>8} {'mem KiB':>8} "
              f"{'bundle KiB':>10} {'BRAM36':>7} {'fits 7020':>9} {'agree':>9} {'sim acc':>7} "
              f"{'HDL s/smp':>9} {'CPU s/smp':>9} {'cycles':>8}")
    print(header)
    print("-" * len(header))
    for label, build in models.items():
        try:
            graph = build()
        except SnnccError as error:
            print(f"{label:<28} skipped: {error}")
            continue
        with tempfile.TemporaryDirectory(prefix="bench-fpga-") as scratch:
            bundle = Path(scratch) / "bundle"
            try:
                fpga.emit(graph, bundle, timesteps=timesteps)
            except SnnccError as error:
                print(f"{label:<28} rejected: {error}")
                continue
            manifest = fpga.read_manifest(bundle)
            size = manifest["size"]
            used, capacity = manifest["resources"]["bram36"]
            bundle_bytes = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
            row = (f"{label:<28} {size['synapses']:>10,} {size['bits_per_synapse']:>8.2f} "
                   f"{size['memory_bits'] / 8192:>8.1f} {bundle_bytes / 1024:>10.1f} "
                   f"{used:>7} {str(used <= capacity):>9}")
            if args.skip_hdl:
                print(row)
                continue
            reference = simulate(graph, test.images.reshape((len(test),) + graph.input.shape),
                                 timesteps, mode="integer", labels=test.labels, record=True)
            hardware = fpga_hdl.simulate_hdl(bundle, test.images.reshape(
                (len(test),) + graph.input.shape), timesteps)
            agree = fpga_hdl.agreeing_samples(graph, hardware, reference)
            print(f"{row} {agree.sum():>4}/{len(agree):<4} {reference.accuracy:>7.3f} "
                  f"{hardware.seconds_per_sample:>9.3f} {hardware.cpu_seconds_per_sample:>9.3f} "
                  f"{hardware.cycles.mean():>8.0f}")
            formats = {}
            for entry in manifest["files"]:
                kind = entry.split("/")[0] if "/" in entry else "other"
                formats[kind] = formats.get(kind, 0) + manifest["files"][entry]["bytes"]
            print(f"{'':<28} files KiB: " + ", ".join(f"{k} {v / 1024:.1f}"
                                                      for k, v in sorted(formats.items()))
                  + "; BRAM36 per layer: " + ", ".join(
                      f"{name} {count}" for name, count in
                      manifest["resources"]["bram36_per_layer"].items()))


if __name__ == "__main__":
    main()
