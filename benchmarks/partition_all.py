"""Fit reports for every shared model (and a BSTDG network) on every built-in chip.

    PYTHONPATH=. python benchmarks/partition_all.py [--models-dir DIR] [--chips a,b]
        [--sparsity 0.9] [--bstdg FILE.bstdg.h5 ...] [--markdown OUT.md]

Each ONNX model goes through the lava/fpga pipeline (convert, fold, quantize; calibrated on
``--calibration`` training samples) and, when the ``prune`` pass is registered, through the same
pipeline with ``prune`` (``--sparsity``) after ``convert``. A spiking network (BSTDG) is reported
as given and pruned (every layer named, no re-calibration). Without a ``--bstdg`` file, a
BSTDG-shaped network is built in the IR (784-600-10, ternary weights, single-spike IF layers,
first-spike readout; random weights, since resource use depends only on shapes, widths and the
nonzero pattern). Prints a Markdown matrix (rows: model/variant, columns: chips; cells: verdict,
cores, chips) and the first violation of every cell that does not fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from snncc import ir  # noqa: E402
from snncc.passes import REGISTRY, PassContext, get_pass  # noqa: E402
from snncc.passes.partition import partition  # noqa: E402
from snncc.pipeline import dataset_name, is_spiking, load_model, prepare  # noqa: E402
from snncc.profiles import get_profile  # noqa: E402
from snncc.resources import builtin_chips, load_chip  # noqa: E402


def bstdg_shaped(hidden: int = 600, seed: int = 0) -> ir.Graph:
    """Latency input -> Flatten -> Dense(±1) -> IF(fire_once) -> Dense(±1) -> Readout."""
    rng = np.random.default_rng(seed)
    graph = ir.Graph({"source": f"bstdg-shaped 784-{hidden}-10 (random ternary weights)"})
    graph.chain(
        ("input", ir.Input(shape=(1, 28, 28), coding="latency", scale=1 / 255, t_max=64)),
        ("flatten", ir.Flatten()),
        ("fc1", ir.Dense(weight=rng.choice(np.array([-1, 1], dtype=np.int8), (hidden, 784)))),
        ("if1", ir.IF(threshold=np.array([40]), reset="zero", fire_once=True)),
        ("fc2", ir.Dense(weight=rng.choice(np.array([-1, 1], dtype=np.int8), (10, hidden)))),
        ("out", ir.Readout(mode="first_spike", threshold=np.array([20]))),
    )
    return graph


def deployed(graph: ir.Graph, prune: float | None, data_dir: str | None,
             calibration: int) -> ir.Graph:
    """The lava/fpga pipeline: convert, (prune,) fold, quantize, calibrated on training data."""
    name = dataset_name(graph, None)
    # the lava-cpu profile: the pipeline docs/partition.md was measured with
    profile = get_profile("lava-cpu")
    passes = [p for p in profile.passes if p != "convert" or not is_spiking(graph)]
    options = {}
    if prune is not None:
        passes.insert(passes.index("convert") + 1 if "convert" in passes else 0, "prune")
        options["prune"] = {"sparsity": prune}
    graph, _ = prepare(graph, passes, dataset=name, data_dir=data_dir, timesteps=32,
                       options=options, calibration_count=calibration)
    return graph


def pruned_spiking(graph: ir.Graph, sparsity: float) -> ir.Graph:
    """Prune an already spiking, integer network (BSTDG); every layer named (±1 layers too)."""
    context = PassContext(options={"prune": {"sparsity": sparsity, "recalibrate": False,
                                             "layers": graph.of_type(*ir.SYNAPTIC)}})
    return get_pass("prune")(graph, context).graph


def cell(report) -> str:
    mark = "fits" if report.fits else "**no**"
    return f"{mark} {report.cores_used}c/{report.chips_needed}ch"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default=str(REPO.parent / "shared" / "models"))
    parser.add_argument("--chips", default=",".join(builtin_chips()))
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--bstdg", nargs="*", default=[])
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--calibration", type=int, default=128,
                        help="training samples calibrating convert/prune/quantize")
    args = parser.parse_args()
    chips = [load_chip(name) for name in args.chips.split(",")]

    models: list[tuple[str, ir.Graph]] = []
    for path in sorted(Path(args.models_dir).glob("*.onnx")):
        models.append((path.stem, load_model(path)))
    for path in args.bstdg:
        models.append((Path(path).name, load_model(path)))
    if not args.bstdg:
        models.append(("bstdg-shaped 784-600-10", bstdg_shaped()))

    variants: list[tuple[str, ir.Graph]] = []
    notes = []
    if "prune" not in REGISTRY:
        notes.append("the prune pass is not registered on this branch: no after-pruning rows")
    for name, graph in models:
        if graph.metadata.get("dataset") is None and any(
                isinstance(n, ir.IF) for n in graph.nodes.values()):
            variants.append((name, graph))
            if "prune" in REGISTRY:
                variants.append((f"{name}, pruned {args.sparsity:.0%}",
                                 pruned_spiking(graph, args.sparsity)))
            continue
        variants.append((f"{name}, int8", deployed(graph, None, args.data_dir, args.calibration)))
        if "prune" in REGISTRY:
            variants.append((f"{name}, pruned {args.sparsity:.0%} + int8",
                             deployed(graph, args.sparsity, args.data_dir, args.calibration)))

    lines = ["| model | " + " | ".join(c.name for c in chips) + " |",
             "| --- | " + " | ".join("---" for _ in chips) + " |"]
    failures = []
    started = time.perf_counter()
    for name, graph in variants:
        cells = []
        for chip in chips:
            report = partition(graph, chip)
            cells.append(cell(report))
            if not report.fits:
                failures.append(f"- {name} on {chip.name}: {report.violations[0]}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    elapsed = time.perf_counter() - started
    text = "\n".join(
        ["cells: verdict, cores used / chips needed. ONNX models: convert + fold + quantize "
         f"(8-bit), calibrated on {args.calibration} training samples; pruned rows add the "
         "prune pass after convert. Traffic is not measured here (see `snncc partition "
         "--dataset`).", ""]
        + lines + ["", "first violation per cell that does not fit:", ""] + failures
        + [""] + [f"note: {n}" for n in notes]
        + [f"({len(variants) * len(chips)} reports in {elapsed:.1f} s)"])
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
