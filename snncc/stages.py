"""The per-stage accuracy ladder: ANN -> converted SNN -> binarized -> folded -> quantized -> pruned.

Each stage applies one more pass to the previous stage's graph and is measured on the same test
samples with the reference simulator (:mod:`snncc.engines`, integer mode once the graph is
integer): accuracy, spikes and synaptic operations per sample, weight memory and connectivity.
The ANN stage is onnxruntime for ONNX sources (the simulator's ANN mode otherwise).

When a stage loses accuracy the report names the layer where it first diverges: per IF layer, the
Pearson correlation between its per-neuron firing rates (spikes / T) and the previous stage's
(for the converted SNN: the ANN activations of the ReLU/Clip the IF layer replaced), over all test
samples and neurons; the first layer in topological order whose correlation falls below
``min_correlation`` (else the least correlated layer) is named.

Weight memory counts synaptic weights only: 32 bits per weight for float graphs; for integer
graphs the quantized mantissa width (``graph.quantization``), 1 bit for binarized layers,
otherwise the signed width of the largest weight; a layer is stored sparse (nonzero weights plus a
``ceil(log2(fan_in))``-bit index each) when that is smaller than dense.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from snncc import ir
from snncc.datasets import Dataset, load_dataset
from snncc.engines import SimResult, run_ann, simulate
from snncc.errors import SnnccError
from snncc.gates import drop_gate, parse_max_drop
from snncc.loading import (
    OnnxRuntimeUnavailable,
    calibration_samples,
    dataset_name,
    is_spiking,
    load_model,
    model_inputs,
    onnxruntime_logits,
    resolve_timesteps,
)
from snncc.passes import REGISTRY, PassContext, run_passes
from snncc.util import jsonable

__all__ = ["DEFAULT_STAGES", "LadderReport", "StageResult", "accuracy_ladder", "max_drop_failures",
           "parse_max_drop", "weight_memory_bytes"]

DEFAULT_STAGES = ("convert", "binarize", "fold", "quantize", "prune")
LADDER_SCHEMA = "snncc.stages/1"


@dataclass
class StageResult:
    """One rung of the ladder: the network after a stage (``ann``, then each pass)."""

    stage: str
    mode: str  # "ann", "float" or "integer"
    accuracy: float
    drop_pp: float  # accuracy of the previous stage minus this one, in percentage points
    spikes_per_sample: float | None
    synops_per_sample: float | None
    weight_memory_bytes: int
    connectivity: float
    layer_correlation: dict[str, float] = field(default_factory=dict)
    diverges_at: str | None = None
    pass_info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    accuracy_curve: list[float] | None = None  # accuracy after each step (spiking rungs)
    changed: bool = True  # the pass changed the graph

    def report_entry(self) -> dict[str, Any]:
        """The rung as the validate report states it (schema ``snncc.validate/1``, ``stages``)."""
        return {"name": self.stage, "mode": self.mode, "accuracy": self.accuracy,
                "accuracy_curve": self.accuracy_curve,
                "spikes_per_sample": self.spikes_per_sample,
                "synops_per_sample": self.synops_per_sample,
                "drop_pp": self.drop_pp,
                "weight_memory_bytes": self.weight_memory_bytes,
                "connectivity": self.connectivity, "diverges_at": self.diverges_at}


@dataclass
class LadderReport:
    """The whole ladder (JSON: :meth:`to_dict`, schema ``snncc.stages/1``).

    ``graph`` and ``last_result`` (the final graph and the last rung's simulation) are kept for
    callers that go on with them (``snncc validate --stages`` deploys that graph and reports that
    run); they are not part of the JSON.
    """

    model: str
    dataset: str
    samples: int
    timesteps: int
    stages: list[StageResult]
    schema: str = LADDER_SCHEMA
    graph: ir.Graph | None = field(default=None, repr=False)
    last_result: SimResult | None = field(default=None, repr=False)
    last_seconds: float = field(default=0.0, repr=False)

    def stage(self, name: str) -> StageResult:
        for result in self.stages:
            if result.stage == name:
                return result
        raise SnnccError(f"no stage {name!r} in this ladder; stages: "
                         f"{', '.join(s.stage for s in self.stages)}")

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("graph", "last_result", "last_seconds")}
        data["stages"] = [asdict(stage) for stage in self.stages]
        return jsonable(data)


def accuracy_ladder(
    source: str | Path | ir.Graph,
    dataset: str | Dataset | None = None,
    timesteps: int | None = None,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    stages: tuple[str, ...] | list[str] = DEFAULT_STAGES,
    options: dict[str, dict[str, Any]] | None = None,
    calibration: np.ndarray | None = None,
    calibration_count: int = 2000,
    min_correlation: float = 0.9,
    divergence_drop_pp: float = 0.1,
    progress: Any = None,
) -> LadderReport:
    """Run the ladder on ``source`` (an ONNX/IR/BSTDG path or a graph) and ``dataset``'s test set.

    ``dataset`` defaults to the model's (sidecar JSON); ``timesteps`` to the model's recorded T or
    32. ``stages`` are pass names applied in order (each a rung); ``options`` are per-pass options.
    Calibration samples come from ``calibration`` or the dataset's training split (never the test
    split). A drop of more than ``divergence_drop_pp`` triggers the divergence search.
    """
    for name in stages:
        if name not in REGISTRY:
            raise SnnccError(f"unknown stage {name!r}; stages are passes: {', '.join(REGISTRY)}")
    if limit is not None and limit < 1:
        raise SnnccError(f"--limit must be >= 1, got {limit}")
    model_path = None
    if isinstance(source, ir.Graph):
        graph = source
        model_name = str(graph.metadata.get("source", "graph"))
    else:
        model_path = Path(source)
        graph = load_model(model_path)
        model_name = str(model_path)
    timesteps = resolve_timesteps(graph, timesteps)
    if isinstance(dataset, Dataset):
        test = dataset.take(limit)
        name = dataset.name
    else:
        name = dataset_name(graph, dataset)
        if name is None:
            raise SnnccError("no dataset: pass --dataset (mnist, fashion-mnist or digits)")
        test = load_dataset(name, "test", data_dir).take(limit)
    inputs = model_inputs(graph, test)
    labels = test.labels
    if calibration is None:
        calibration = calibration_samples(graph, name, data_dir, calibration_count)
    context = PassContext(calibration=calibration, timesteps=timesteps, options=options or {})

    results: list[StageResult] = []
    previous_rates: dict[str, np.ndarray] = {}
    previous_accuracy: float | None = None
    if not is_spiking(graph):
        start = time.perf_counter()
        activations = [n for n in graph.of_type(ir.ReLU, ir.Clip)]
        values = run_ann(graph, inputs, outputs=activations + [graph.output_name])
        if model_path is not None and model_path.suffix.lower() == ".onnx":
            try:
                logits = onnxruntime_logits(model_path, graph, inputs)
            except OnnxRuntimeUnavailable:  # the simulator's ANN mode, as for other sources
                logits = values[graph.output_name]
        else:
            logits = values[graph.output_name]
        accuracy = float((logits.argmax(axis=1) == labels).mean())
        results.append(StageResult(
            stage="ann", mode="ann", accuracy=accuracy, drop_pp=0.0, spikes_per_sample=None,
            synops_per_sample=None, weight_memory_bytes=weight_memory_bytes(graph),
            connectivity=_connectivity(graph), seconds=time.perf_counter() - start,
        ))
        previous_rates = {n: values[n] for n in activations}
        previous_accuracy = accuracy
        if progress:
            progress(results[-1])

    for stage in stages:
        start = time.perf_counter()
        graph, applied = run_passes(graph, [stage], context)
        info, changed = applied[0][1].info, applied[0][1].changed
        integer = graph.is_integer()
        simulated = time.perf_counter()
        result = simulate(graph, inputs, timesteps, mode="integer" if integer else "float",
                          labels=labels, count_neurons=True)
        last_seconds = time.perf_counter() - simulated
        rates = {n: result.neuron_counts[n] / timesteps for n in graph.of_type(*ir.NEURONS)
                 if n in result.neuron_counts}
        correlations = _correlations(previous_rates, rates, info.get("kept_units", {}))
        accuracy = result.accuracy
        drop = 0.0 if previous_accuracy is None else 100 * (previous_accuracy - accuracy)
        diverges = None
        if drop > divergence_drop_pp and correlations:
            diverges = first_divergence(correlations, graph, min_correlation)
        results.append(StageResult(
            stage=stage, mode="integer" if integer else "float", accuracy=accuracy,
            drop_pp=drop, spikes_per_sample=result.spikes_per_sample,
            synops_per_sample=float(result.synops.mean()),
            weight_memory_bytes=weight_memory_bytes(graph), connectivity=_connectivity(graph),
            layer_correlation=correlations, diverges_at=diverges, pass_info=info,
            seconds=time.perf_counter() - start,
            accuracy_curve=[float(a) for a in result.accuracy_curve], changed=changed,
        ))
        previous_rates, previous_accuracy = rates, accuracy
        if progress:
            progress(results[-1])
    return LadderReport(model=model_name, dataset=name, samples=len(labels),
                        timesteps=timesteps, stages=results, graph=graph,
                        last_result=result if stages else None,
                        last_seconds=last_seconds if stages else 0.0)


def max_drop_failures(report: LadderReport, max_drop: dict[str, float]) -> list[str]:
    """The ``--max-drop STAGE=PP`` gates (:func:`snncc.gates.drop_gate`) that fail, one line each
    (empty: all pass). A stage's drop is the previous stage's accuracy minus its own, in
    percentage points (0 for the first rung); a stage not in the ladder is a one-line error.
    """
    failures = []
    for stage, limit in max_drop.items():
        rung = report.stage(stage)
        gate = drop_gate(stage, rung.drop_pp, "the previous stage", limit, rung.diverges_at)
        if not gate.passed:
            where = f"; first diverges at layer {rung.diverges_at!r}" if rung.diverges_at else ""
            failures.append(f"stage {stage!r} lost {rung.drop_pp:.2f} pp of accuracy "
                            f"(limit {limit:g} pp){where}")
    return failures


def first_divergence(correlations: dict[str, float], graph: ir.Graph,
                     min_correlation: float) -> str:
    """The first layer (topological order) below ``min_correlation``, else the least correlated."""
    order = [n for n in graph.topological_order() if n in correlations]
    for name in order:
        if correlations[name] < min_correlation:
            return name
    return min(order, key=lambda n: correlations[n])


def weight_memory_bytes(graph: ir.Graph) -> int:
    """Bytes to store every synaptic weight (see the module docstring for the rules)."""
    quantized = {} if graph.quantization is None else graph.quantization.layers
    binary = set(graph.metadata.get("binarize", {}).get("layers", {}))
    total_bits = 0
    for name in graph.of_type(*ir.SYNAPTIC):
        weight = graph.nodes[name].weight
        if weight.dtype.kind == "f":
            bits = 1 if name in binary and _is_binary(weight) else 32
        elif name in quantized:
            bits = int(quantized[name].weight_bits)
        elif name in binary and _is_binary(weight):
            bits = 1
        else:
            peak = int(np.max(np.abs(weight))) if weight.size else 0
            bits = math.ceil(math.log2(peak + 1)) + 1
        fan_in = int(np.prod(weight.shape[1:]))
        nonzero = int(np.count_nonzero(weight))
        dense = weight.size * bits
        sparse = nonzero * (bits + max(math.ceil(math.log2(max(fan_in, 2))), 1))
        total_bits += min(dense, sparse)
    return math.ceil(total_bits / 8)


def _is_binary(weight: np.ndarray) -> bool:
    return bool(np.all(np.isin(weight, (-1, 0, 1))))


def _connectivity(graph: ir.Graph) -> float:
    recorded = graph.metadata.get("prune", {}).get("total_connectivity")
    if recorded is not None:
        return float(recorded)
    sizes = [graph.nodes[n].weight for n in graph.of_type(*ir.SYNAPTIC)]
    total = sum(w.size for w in sizes)
    return sum(int(np.count_nonzero(w)) for w in sizes) / max(total, 1)


def _correlations(previous: dict[str, np.ndarray], current: dict[str, np.ndarray],
                  kept_units: dict[str, Any]) -> dict[str, float]:
    """Per layer present in both: Pearson correlation of the flattened per-neuron values."""
    correlations = {}
    for name, values in current.items():
        if name not in previous:
            continue
        before = previous[name]
        if name in kept_units and before.shape[1:] != values.shape[1:]:
            before = before[:, np.asarray(kept_units[name])]
        if before.shape != values.shape:
            continue
        a, b = before.reshape(-1).astype(np.float64), values.reshape(-1).astype(np.float64)
        if a.std() == 0 or b.std() == 0:
            correlations[name] = 1.0 if np.array_equal(a, b) else 0.0
        else:
            correlations[name] = float(np.corrcoef(a, b)[0, 1])
    return correlations


