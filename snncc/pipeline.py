"""The library behind ``snncc compile`` and ``snncc validate``: load, convert, run, report.

Everything here is plain functions over the IR; :mod:`snncc.cli` only parses flags and prints.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snncc import __version__, ir
from snncc.datasets import DATASETS, Dataset, arrange, load_dataset
from snncc.errors import SnnccError
from snncc.passes import REGISTRY, PassContext, run_passes

REPORT_SCHEMA = "snncc.validate/1"
CALIBRATION_SEED = 0


# ------------------------------------------------------------------------------------- loading


def model_kind(path: Path) -> str:
    """``onnx``, ``ir`` (a saved snncc graph) or ``bstdg`` (HDF5), from the name and magic bytes."""
    name = path.name.lower()
    if name.endswith(".onnx"):
        return "onnx"
    if name.endswith((".snn.npz", ".npz")):
        return "ir"
    if name.endswith((".h5", ".hdf5")):
        return "bstdg"
    try:
        head = path.open("rb").read(8)
    except FileNotFoundError:
        raise SnnccError(f"{path}: no such file") from None
    except OSError as error:
        raise SnnccError(f"{path}: cannot read ({error.strerror})") from None
    if head.startswith(b"PK"):
        return "ir"
    if head.startswith(b"\x89HDF"):
        return "bstdg"
    return "onnx"


def load_model(path: str | Path, preprocess: dict[str, Any] | None = None,
               layout: str | None = None) -> ir.Graph:
    """Load an ONNX checkpoint, a BSTDG network file or a saved IR graph as a graph.

    ``preprocess`` overrides the input preprocessing; ``layout`` (NCHW/NHWC) says how dataset
    images are laid out for the model's input.
    """
    graph = _load(Path(path), preprocess)
    if layout is not None:
        if layout.upper() not in ("NCHW", "NHWC"):
            raise SnnccError(f"unknown layout {layout!r}; choose NCHW or NHWC")
        graph.metadata["layout"] = layout.upper()
    return graph


def _load(path: Path, preprocess: dict[str, Any] | None) -> ir.Graph:
    if not path.exists():
        raise SnnccError(f"{path}: no such file")
    if path.is_dir():
        raise SnnccError(f"{path}: is a directory, expected a model file")
    kind = model_kind(path)
    if kind == "onnx":
        from snncc.frontend.onnx_import import load_onnx

        return load_onnx(path, preprocess=preprocess)
    if kind == "bstdg":
        from snncc.frontend.bstdg import load_bstdg

        graph = load_bstdg(path)
    else:
        graph = ir.Graph.load(path)
    if preprocess:
        node = graph.input
        for key in ("scale", "mean", "std"):
            if key in preprocess and preprocess[key] is not None:
                setattr(node, key, preprocess[key])
        node.__post_init__()
    graph.validate()
    return graph


def is_spiking(graph: ir.Graph) -> bool:
    return any(isinstance(node, (ir.IF, ir.Readout)) for node in graph.nodes.values())


def default_passes(graph: ir.Graph, target: str) -> list[str]:
    """``convert`` for ANNs; plus ``fold`` and ``quantize`` for hardware targets (when available)."""
    passes = [] if is_spiking(graph) else ["convert"]
    if target in ("lava", "fpga"):
        passes += [p for p in ("fold", "quantize") if p in REGISTRY]
    return passes


def dataset_name(graph: ir.Graph, requested: str | None) -> str | None:
    name = requested or graph.metadata.get("dataset")
    if name is not None and name not in DATASETS:
        raise SnnccError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return name


def model_inputs(graph: ir.Graph, data: Dataset) -> np.ndarray:
    """Dataset images laid out as the model's input."""
    return arrange(data.images, graph.input.shape, graph.metadata.get("layout", "NCHW"))


def calibration_samples(graph: ir.Graph, name: str, data_dir: str | None,
                        count: int) -> np.ndarray:
    """``count`` training samples (seeded random choice) for calibration; never test data."""
    train = load_dataset(name, "train", data_dir)
    rng = np.random.default_rng(CALIBRATION_SEED)
    chosen = np.sort(rng.choice(len(train), size=min(count, len(train)), replace=False))
    return model_inputs(graph, Dataset(name, "train", train.images[chosen], train.labels[chosen]))


def prepare(graph: ir.Graph, passes: list[str], *, dataset: str | None, data_dir: str | None,
            timesteps: int, options: dict[str, dict[str, Any]] | None = None,
            calibration_count: int = 2000) -> tuple[ir.Graph, list[dict[str, Any]]]:
    """Run ``passes`` on ``graph`` with calibration data from ``dataset``'s training split."""
    for name in passes:
        if name not in REGISTRY:
            raise SnnccError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}")
    calibration = None
    if passes and dataset is not None:
        calibration = calibration_samples(graph, dataset, data_dir, calibration_count)
    elif "convert" in passes and not is_spiking(graph):
        raise SnnccError("converting an ANN needs calibration data: pass --dataset "
                         "(or a sidecar JSON naming it)")
    context = PassContext(calibration=calibration, timesteps=timesteps, options=options or {})
    graph, results = run_passes(graph, passes, context)
    summaries = [{"pass": name, "changed": result.changed, "info": _jsonable(result.info)}
                 for name, result in results]
    return graph, summaries


# ------------------------------------------------------------------------------------ reports


@dataclass
class Gate:
    """One pass/fail check of a validation run."""

    name: str
    passed: bool
    value: float
    limit: float
    message: str


@dataclass
class ValidationReport:
    """Result of ``snncc validate`` (JSON schema ``snncc.validate/1``, see docs/reports.md)."""

    model: str
    model_sha256: str
    target: str
    mode: str
    dataset: str
    samples: int
    timesteps: int
    passes: list[str]
    snn_accuracy: float
    accuracy_curve: list[float]
    spikes_per_sample: float
    spikes_per_layer: dict[str, float]
    synops_per_sample: float
    samples_per_second: float
    wall_seconds: float
    ann_accuracy: float | None = None
    ann_reference: str | None = None
    decision_time: float | None = None
    agreement: float | None = None
    gates: list[Gate] = field(default_factory=list)
    pass_info: list[dict[str, Any]] = field(default_factory=list)
    schema: str = REPORT_SCHEMA
    snncc_version: str = __version__

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def onnxruntime_logits(model_path: Path, graph: ir.Graph, raw_inputs: np.ndarray,
                       batch_size: int = 512) -> np.ndarray:
    """The original ONNX model's outputs from onnxruntime on the same preprocessed inputs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    fixed_batch = model_input.shape[0] if isinstance(model_input.shape[0], int) else None
    step = fixed_batch or batch_size
    outputs = []
    for start in range(0, len(raw_inputs), step):
        chunk = graph.input.preprocess(raw_inputs[start:start + step]).astype(np.float32)
        count = len(chunk)
        if fixed_batch and count < fixed_batch:
            chunk = np.concatenate([chunk, np.zeros((fixed_batch - count,) + chunk.shape[1:],
                                                    np.float32)])
        outputs.append(session.run(None, {model_input.name: chunk})[0][:count])
    return np.concatenate(outputs)


def validate(
    model: str | Path,
    *,
    target: str = "sim",
    dataset: str | None = None,
    data_dir: str | None = None,
    timesteps: int | None = None,
    limit: int | None = None,
    passes: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    preprocess: dict[str, Any] | None = None,
    layout: str | None = None,
    min_accuracy: float | None = None,
    ann_reference: bool = True,
    progress: Any = None,
) -> tuple[ValidationReport, ir.Graph]:
    """Load, convert and run a model on a test set; returns the report and the deployed graph."""
    model = Path(model)
    source = load_model(model, preprocess, layout)
    name = dataset_name(source, dataset)
    if name is None:
        raise SnnccError("no dataset: pass --dataset (mnist, fashion-mnist or digits)")
    timesteps = resolve_timesteps(source, timesteps)
    passes = default_passes(source, target) if passes is None else passes
    graph, pass_info = prepare(source, passes, dataset=name, data_dir=data_dir,
                               timesteps=timesteps, options=options)
    test = load_dataset(name, "test", data_dir).take(limit)
    inputs = model_inputs(graph, test)

    ann_accuracy = None
    reference = None
    if ann_reference and model_kind(model) == "onnx":
        logits = onnxruntime_logits(model, source, inputs)
        ann_accuracy = float((logits.argmax(axis=1) == test.labels).mean())
        reference = "onnxruntime"

    from snncc.backends import get_backend

    backend = get_backend(target)
    if not hasattr(backend, "run"):
        raise SnnccError(f"target {target!r} cannot run networks; validate with sim or lava")
    import inspect

    extra = {"progress": progress} if progress is not None and "progress" in inspect.signature(
        backend.run).parameters else {}
    start = time.perf_counter()
    result = backend.run(graph, inputs, timesteps, labels=test.labels, **extra)
    wall = time.perf_counter() - start
    curve = result.accuracy_curve
    report = ValidationReport(
        model=str(model),
        model_sha256=_sha256(model),
        target=target,
        mode=result.mode,
        dataset=name,
        samples=len(test),
        timesteps=timesteps,
        passes=passes,
        snn_accuracy=float(curve[-1]),
        accuracy_curve=[float(a) for a in curve],
        spikes_per_sample=result.spikes_per_sample,
        spikes_per_layer={k: float(v.mean()) for k, v in result.spike_counts.items()},
        synops_per_sample=float(result.synops.mean()),
        samples_per_second=len(test) / wall if wall > 0 else float("inf"),
        wall_seconds=wall,
        ann_accuracy=ann_accuracy,
        ann_reference=reference,
        decision_time=None if result.decision_time is None
        else float(result.decision_time.mean()),
        pass_info=pass_info,
    )
    if min_accuracy is not None:
        floor = min_accuracy / 100 if min_accuracy > 1 else min_accuracy
        report.gates.append(Gate(
            name="min-accuracy",
            passed=report.snn_accuracy >= floor,
            value=report.snn_accuracy,
            limit=floor,
            message=f"SNN accuracy {report.snn_accuracy:.2%} "
                    f"{'>=' if report.snn_accuracy >= floor else '<'} floor {floor:.2%}",
        ))
    return report, graph


def resolve_timesteps(graph: ir.Graph, timesteps: int | None) -> int:
    """Explicit T, else a latency input's ``t_max``, else the graph's recorded T, else 32."""
    if timesteps is not None:
        if timesteps < 1:
            raise SnnccError(f"timesteps must be >= 1, got {timesteps}")
        return timesteps
    if graph.input.coding == "latency" and graph.input.t_max:
        return int(graph.input.t_max)
    return int(graph.metadata.get("timesteps", 32))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ compile


@dataclass
class CompileResult:
    target: str
    out_dir: Path
    files: list[Path]
    passes: list[str]
    pass_info: list[dict[str, Any]]
    graph: ir.Graph


def compile_model(
    model: str | Path,
    out_dir: str | Path,
    *,
    target: str = "sim",
    dataset: str | None = None,
    data_dir: str | None = None,
    timesteps: int | None = None,
    passes: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    preprocess: dict[str, Any] | None = None,
    layout: str | None = None,
    target_options: dict[str, Any] | None = None,
) -> CompileResult:
    """Convert and lower ``model`` and write ``target``'s artifacts into ``out_dir`` atomically.

    ``out_dir`` also receives ``network.snn.npz`` (the deployed IR) and ``compile.json``.
    """
    import json

    from snncc.backends import get_backend
    from snncc.util import atomic_directory

    model = Path(model)
    source = load_model(model, preprocess, layout)
    backend = get_backend(target)  # fail early, before any work, if the target is unavailable
    name = dataset_name(source, dataset)
    timesteps = resolve_timesteps(source, timesteps)
    passes = default_passes(source, target) if passes is None else passes
    graph, pass_info = prepare(source, passes, dataset=name, data_dir=data_dir,
                               timesteps=timesteps, options=options)
    graph.metadata.update({"timesteps": timesteps, "target": target})
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as staging:
        files = list(backend.emit(graph, staging, **(target_options or {})))
        if not (staging / "network.snn.npz").exists():
            graph.save(staging / "network.snn.npz")
        summary = {
            "snncc_version": __version__,
            "model": str(model),
            "model_sha256": _sha256(model),
            "target": target,
            "timesteps": timesteps,
            "passes": passes,
            "pass_info": pass_info,
            "files": sorted(p.name for p in staging.iterdir()),
        }
        (staging / "compile.json").write_text(json.dumps(_jsonable(summary), indent=1))
    files = [out_dir / Path(f).relative_to(staging) for f in files]
    return CompileResult(target, out_dir, files, passes, pass_info, graph)
