"""The library behind ``snncc compile`` and ``snncc validate``: load, convert, run, report.

Everything here is plain functions over the IR; :mod:`snncc.cli` only parses flags and prints.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from snncc import __version__, ir
from snncc.datasets import DATASETS, Dataset, arrange, load_dataset
from snncc.errors import SnnccError
from snncc.gates import (
    REPORT_SCHEMA,
    Gate,
    GateSpec,
    agreement_gate,
    baseline_gates,
    drop_gates,
    fit_gates,
    load_baseline,
    min_accuracy_gate,
    resolve_chips,
)
from snncc.passes import REGISTRY, PassContext, run_passes
from snncc.profiles import HardwareProfile, get_profile
from snncc.util import progress

CALIBRATION_SEED = 0
CALIBRATION_COUNT = 2000


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


def target_profile(target: str, profile: str | None = None) -> HardwareProfile | None:
    """The hardware profile the passes obey: ``profile`` by name, else ``target``'s default
    (``snncc.backends.DEFAULT_PROFILES``); None when neither names one."""
    from snncc.backends import DEFAULT_PROFILES

    name = profile if profile is not None else DEFAULT_PROFILES.get(target)
    return None if name is None else get_profile(name)


def default_passes(graph: ir.Graph, target: str, profile: str | None = None) -> list[str]:
    """The profile's passes (without ``convert`` for a network that already spikes); without a
    profile ``convert`` for ANNs, plus ``fold`` and ``quantize`` for hardware targets."""
    chosen = target_profile(target, profile)
    if chosen is not None:
        return [p for p in chosen.passes if p != "convert" or not is_spiking(graph)]
    passes = [] if is_spiking(graph) else ["convert"]
    if target in ("lava", "fpga"):
        passes += [p for p in ("fold", "quantize") if p in REGISTRY]
    return passes


def with_target_defaults(target: str, options: dict[str, dict[str, Any]] | None,
                         profile: str | None = None) -> dict[str, dict[str, Any]]:
    """``options`` completed with the pass options of the target's profile (explicit win)."""
    chosen = target_profile(target, profile)
    if chosen is None:
        return {name: dict(values) for name, values in (options or {}).items()}
    return chosen.with_options(options)


def run_profile(targets: list[str], profile: str | None) -> tuple[str, str | None]:
    """For several targets: the one whose profile the passes obey and that profile's name (the
    explicit ``profile``, else the first target that has a default profile)."""
    from snncc.backends import DEFAULT_PROFILES

    for target in targets:
        if profile is not None or target in DEFAULT_PROFILES:
            return target, profile if profile is not None else DEFAULT_PROFILES[target]
    return targets[0], None


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
class StageResult:
    """One rung of the accuracy ladder: the network after a stage (``ann``, then each pass)."""

    name: str
    mode: str
    accuracy: float
    accuracy_curve: list[float] | None = None
    spikes_per_sample: float | None = None
    synops_per_sample: float | None = None
    drop_pp: float | None = None
    weight_memory_bytes: int | None = None
    connectivity: float | None = None
    diverges_at: str | None = None


@dataclass
class TargetRun:
    """The deployed graph run on a further target, and how often it decides like the first."""

    target: str
    mode: str
    accuracy: float
    accuracy_curve: list[float]
    spikes_per_sample: float
    synops_per_sample: float
    agreement: float
    wall_seconds: float


@dataclass
class ValidationReport:
    """Result of ``snncc validate`` (JSON schema ``snncc.validate/1``, see docs/reports.md).

    Accuracies are fractions; ``accuracy_curve[t]`` is the accuracy deciding after step ``t + 1``.
    ``target_runs``: the further targets (``agreement`` is the lowest of their agreements with
    the first target). ``stages`` is empty unless the accuracy ladder was asked for; ``fits`` holds one summary per
    chip of the fit gates; ``baseline`` describes the compared report (path, accuracy, notes).
    ``timings``: seconds per phase (``load``: model and test set; ``reference``: onnxruntime;
    ``passes``: passes with calibration, and the ladder's simulations with ``--stages``;
    ``simulation``: the deployed run; ``gates``).
    """

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
    stages: list[StageResult] = field(default_factory=list)
    target_runs: list[TargetRun] = field(default_factory=list)
    fits: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    config: str | None = None
    total_seconds: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    schema: str = REPORT_SCHEMA
    snncc_version: str = __version__

    @property
    def passed(self) -> bool:
        """True when no gate failed (skipped gates do not fail)."""
        return all(gate.passed or gate.skipped for gate in self.gates)

    @property
    def failed_gates(self) -> list[Gate]:
        return [gate for gate in self.gates if not (gate.passed or gate.skipped)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for gate, entry in zip(self.gates, data["gates"], strict=True):
            entry["status"] = gate.status
        data["passed"] = self.passed
        data["status"] = "passed" if self.passed else "failed"
        data["failed_gates"] = [gate.name for gate in self.failed_gates]
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
    gates: GateSpec | None = None,
    stages: bool = False,
    ann_reference: bool = True,
    config: str | Path | None = None,
    targets: list[str] | None = None,
    profile: str | None = None,
    require_netx: bool = False,
) -> tuple[ValidationReport, ir.Graph]:
    """Load, convert and run a model on a test set, then check ``gates``.

    Returns the report and the deployed graph. ``min_accuracy`` is a shortcut for
    ``gates.min_accuracy``. ``stages=True`` also simulates the network after every pass (the
    accuracy ladder, see :func:`accuracy_ladder`). Gate rules: :mod:`snncc.gates`. Long steps
    show progress bars (quiet when not interactive). Bad input raises SnnccError before any
    simulation where it can be known up front (gate limits, baseline file, chip names).

    ``targets`` (overrides ``target``): the first runs the deployed network for the report's
    headline figures; every further target runs the same graph and is reported in
    ``target_runs`` with its agreement with the first (the fraction of samples with the same
    final decision). Default passes are those of the most demanding target (fold and quantize
    when any target is a hardware one), so every target runs the same integer graph.

    ``profile`` names the hardware profile (:mod:`snncc.profiles`) whose passes and pass options
    apply (default: the first target's that has one, e.g. ``loihi2-netx`` for lava).
    ``require_netx`` fails (exit 2) when netx cannot express the deployed network.
    """
    started = time.perf_counter()
    targets = list(targets) if targets else [target]
    if len(set(targets)) != len(targets):
        raise SnnccError(f"targets {', '.join(targets)}: each target may appear once")
    target = targets[0]
    gates = GateSpec() if gates is None else replace(gates)
    if min_accuracy is not None:
        gates.min_accuracy = min_accuracy
    gates.check()
    if limit is not None and limit < 1:
        raise SnnccError(f"limit must be >= 1, got {limit}")
    baseline = load_baseline(gates.baseline) if gates.baseline is not None else None
    chips = resolve_chips(gates.fits)

    model = Path(model)
    source = load_model(model, preprocess, layout)
    name = dataset_name(source, dataset)
    if name is None:
        raise SnnccError("no dataset: pass --dataset (mnist, fashion-mnist or digits)")
    timesteps = resolve_timesteps(source, timesteps)
    profile_target, profile = run_profile(targets, profile)
    if profile is not None:
        get_profile(profile)  # an unknown name fails before any work
    if passes is None:
        passes = max((default_passes(source, each, profile) for each in targets), key=len)
    from snncc.backends import get_backend

    backends = {}
    for each in targets:
        try:
            backends[each] = get_backend(each)
        except ModuleNotFoundError as error:
            raise SnnccError(f"target {each!r} is not available in this snncc "
                             f"({error.name} is missing)") from None
        if not hasattr(backends[each], "run"):
            raise SnnccError(f"target {each!r} cannot run networks; validate with sim or lava")
    backend = backends[target]
    known = {"snn", "total"} | (set(passes) if stages else set())
    if stages and target != "sim":
        known.add(target)
    unknown = [stage for stage in gates.max_drop if stage not in known]
    if unknown:  # fail before the long steps, not after them
        raise SnnccError(f"max drop: no stage {unknown[0]!r} in this run; available: "
                         f"{', '.join(sorted(known))}"
                         + ("" if stages else " (per-pass stages need --stages)"))
    test = load_dataset(name, "test", data_dir).take(limit)

    timings = {"load": time.perf_counter() - started}
    ann_accuracy = None
    reference = None
    if ann_reference and model_kind(model) == "onnx":
        with progress("ANN reference (onnxruntime)", None):
            logits = onnxruntime_logits(model, source, model_inputs(source, test))
        ann_accuracy = float((logits.argmax(axis=1) == test.labels).mean())
        reference = "onnxruntime"

    timings["reference"] = time.perf_counter() - started - sum(timings.values())
    ladder: list[StageResult] = []
    last_run = None
    options = with_target_defaults(profile_target, options, profile)
    if stages:
        overridden = bool(preprocess) or layout is not None
        graph, pass_info, ladder, last_run = accuracy_ladder(
            source, passes, test, dataset=name, data_dir=data_dir, timesteps=timesteps,
            options=options, ann_accuracy=ann_accuracy,
            model_path=None if overridden else model)
    else:
        with progress(f"passes: {', '.join(passes) or 'none'} (calibration)", None):
            graph, pass_info = prepare(source, passes, dataset=name, data_dir=data_dir,
                                       timesteps=timesteps, options=options)
    timings["passes"] = time.perf_counter() - started - sum(timings.values())
    if require_netx:
        from snncc.backends.netx import require_expressible

        require_expressible(graph)
    inputs = model_inputs(graph, test)
    if last_run is not None and target == "sim":  # the ladder's last rung is this very run
        result, wall = last_run
    else:
        start = time.perf_counter()
        result = _run_backend(backend, target, graph, inputs, timesteps, test.labels)
        wall = max(time.perf_counter() - start, 1e-9)
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
        samples_per_second=len(test) / wall,
        wall_seconds=wall,
        ann_accuracy=ann_accuracy,
        ann_reference=reference,
        decision_time=None if result.decision_time is None
        else float(result.decision_time.mean()),
        pass_info=pass_info,
        stages=ladder,
        config=None if config is None else str(config),
    )
    for each in targets[1:]:
        report.target_runs.append(_target_run(backends[each], each, graph, inputs, timesteps,
                                              test.labels, result))
    if report.target_runs:
        report.agreement = min(run.agreement for run in report.target_runs)
    timings["simulation"] = time.perf_counter() - started - sum(timings.values())
    _check_gates(report, gates, graph, result, chips, baseline)
    timings["gates"] = time.perf_counter() - started - sum(timings.values())
    report.total_seconds = time.perf_counter() - started
    report.timings = timings
    return report, graph


def _target_run(backend: Any, target: str, graph: ir.Graph, inputs: np.ndarray, timesteps: int,
                labels: np.ndarray, reference: Any) -> TargetRun:
    start = time.perf_counter()
    result = _run_backend(backend, target, graph, inputs, timesteps, labels)
    wall = max(time.perf_counter() - start, 1e-9)
    curve = [float(a) for a in result.accuracy_curve]
    agreement = float(np.mean(result.predictions[-1] == reference.predictions[-1]))
    return TargetRun(target, result.mode, curve[-1], curve, result.spikes_per_sample,
                     float(result.synops.mean()), agreement, wall)


def _run_backend(backend: Any, target: str, graph: ir.Graph, inputs: np.ndarray, timesteps: int,
                 labels: np.ndarray) -> Any:
    import inspect

    reports_progress = "progress" in inspect.signature(backend.run).parameters
    total = len(inputs) if reports_progress else None  # else an indeterminate bar
    with progress(f"simulating ({target}, T={timesteps})", total) as advance:
        extra = {"progress": advance} if reports_progress else {}
        return backend.run(graph, inputs, timesteps, labels=labels, **extra)


def accuracy_ladder(source: ir.Graph, passes: list[str], test: Dataset, *, dataset: str,
                    data_dir: str | None, timesteps: int,
                    options: dict[str, dict[str, Any]] | None,
                    ann_accuracy: float | None,
                    model_path: Path | None = None) -> tuple[ir.Graph, list[dict[str, Any]],
                                                             list[StageResult], Any]:
    """Apply ``passes`` one at a time and measure the network after each on ``test``.

    Rungs: ``ann``, then one per pass, named after it, each measured with the reference
    simulator (integer mode once the graph is integer). Returns the final graph, the pass
    summaries, the rungs, and ``(SimResult, seconds)`` of the last rung when this function
    simulated it itself (else ``None``).

    With :mod:`snncc.stages` present (issue 5: weight memory, connectivity, the layer where a
    stage first diverges), that module measures the rungs (from ``model_path`` when given, so
    its ANN rung is onnxruntime's; else from ``source``) with the same calibration samples as
    :func:`prepare`. Without it, a minimal ladder: each pass applied with :func:`prepare` (one
    by one gives the same graph as all at once), a spiking graph simulated for ``timesteps``
    (with its accuracy curve), a graph that is still an ANN run in ANN mode, and ``ann`` the
    onnxruntime reference when there is one.
    """
    try:
        from snncc.stages import accuracy_ladder as measure_ladder
    except ImportError:
        measure_ladder = None
    if measure_ladder is not None:
        return _stages_ladder(measure_ladder, source, passes, test, dataset=dataset,
                              data_dir=data_dir, timesteps=timesteps, options=options,
                              model_path=model_path)
    from snncc.backends import sim

    ladder = [] if ann_accuracy is None else [StageResult("ann", "ann", ann_accuracy)]
    graph, summaries, last_run = source, [], None
    for pass_name in passes:
        with progress(f"pass {pass_name}", None):
            graph, info = prepare(graph, [pass_name], dataset=dataset, data_dir=data_dir,
                                  timesteps=timesteps, options=options)
        summaries += info
        inputs = model_inputs(graph, test)
        last_run = None
        if is_spiking(graph):
            start = time.perf_counter()
            result = _run_backend(sim, f"stage {pass_name}", graph, inputs, timesteps,
                                  test.labels)
            last_run = (result, max(time.perf_counter() - start, 1e-9))
            curve = [float(a) for a in result.accuracy_curve]
            ladder.append(StageResult(pass_name, result.mode, curve[-1], curve,
                                      result.spikes_per_sample, float(result.synops.mean())))
        else:
            logits = sim.run_ann(graph, inputs)
            ladder.append(StageResult(pass_name, "ann",
                                      float((logits.argmax(axis=1) == test.labels).mean())))
        if len(ladder) > 1:
            ladder[-1].drop_pp = (ladder[-2].accuracy - ladder[-1].accuracy) * 100
    return graph, summaries, ladder, last_run


def _stages_ladder(measure_ladder: Any, source: ir.Graph, passes: list[str], test: Dataset, *,
                   dataset: str, data_dir: str | None, timesteps: int,
                   options: dict[str, dict[str, Any]] | None,
                   model_path: Path | None) -> tuple[ir.Graph, list[dict[str, Any]],
                                                     list[StageResult], None]:
    """The ladder measured by :func:`snncc.stages.accuracy_ladder`, as report rungs."""
    calibration = calibration_samples(source, dataset, data_dir, CALIBRATION_COUNT)
    with progress("accuracy ladder", len(passes) + 1) as advance:
        measured = measure_ladder(
            source if model_path is None else model_path, test, timesteps, data_dir=data_dir,
            stages=passes, options=options, calibration=calibration,
            progress=lambda rung: advance(1))
    rungs = [StageResult(rung.stage, rung.mode, rung.accuracy,
                         getattr(rung, "accuracy_curve", None), rung.spikes_per_sample,
                         rung.synops_per_sample, rung.drop_pp, rung.weight_memory_bytes,
                         rung.connectivity, rung.diverges_at) for rung in measured.stages]
    graph = getattr(measured, "graph", None)
    if graph is None:  # the ladder keeps no graph: apply the (deterministic) passes once more
        with progress(f"passes: {', '.join(passes) or 'none'} (calibration)", None):
            graph, summaries = prepare(source, passes, dataset=dataset, data_dir=data_dir,
                                       timesteps=timesteps, options=options,
                                       calibration_count=CALIBRATION_COUNT)
    else:
        summaries = [{"pass": rung.stage, "changed": True, "info": _jsonable(rung.pass_info)}
                     for rung in measured.stages if rung.stage != "ann"]
    return graph, summaries, rungs, None


def spike_rates(graph: ir.Graph, result: Any) -> dict[str, float]:
    """Mean spikes per neuron per step by node name, from a simulation's spike counts."""
    shapes = graph.infer_shapes()
    rates = {}
    for key, counts in result.spike_counts.items():
        node = key.split(":", 1)[1] if key.startswith("input:") else key
        if node in shapes:
            neurons = int(np.prod(shapes[node]))
            rates[node] = float(np.mean(counts)) / (neurons * result.timesteps)
    return rates


def _check_gates(report: ValidationReport, gates: GateSpec, graph: ir.Graph, result: Any,
                 chips: list[Any], baseline: dict[str, Any] | None) -> None:
    """Append every gate of ``gates`` to ``report`` (rules in :mod:`snncc.gates`)."""
    if gates.min_accuracy is not None:
        report.gates.append(min_accuracy_gate(report.snn_accuracy, gates.min_accuracy))
        report.gates += [min_accuracy_gate(run.accuracy, gates.min_accuracy,
                                           f"min-accuracy:{run.target}")
                         for run in report.target_runs]
    if gates.min_agreement is not None:
        report.gates += [agreement_gate(run.target, report.target, run.agreement,
                                        gates.min_agreement) for run in report.target_runs]
        if not report.target_runs:
            report.gates.append(Gate("agreement", True, None, None, "skipped: one target only "
                                     "(set targets = [...] to compare backends)", skipped=True))
    if gates.max_drop:
        ladder = [(stage.name, stage.accuracy) for stage in report.stages]
        if ladder and report.target != "sim":
            ladder.append((report.target, report.snn_accuracy))
        elif not ladder and report.ann_accuracy is not None:
            ladder = [("ann", report.ann_accuracy)]
        diverges = {stage.name: stage.diverges_at for stage in report.stages
                    if stage.diverges_at}
        report.gates += drop_gates(ladder, report.snn_accuracy, report.ann_accuracy,
                                   gates.max_drop, diverges)
    fit, report.fits = fit_gates(graph, chips, spike_rates(graph, result),
                                 gates.max_cores, gates.max_chips)
    report.gates += fit
    if baseline is not None:
        regressions, notes = baseline_gates(report.to_dict(), baseline, gates.tolerance,
                                            gates.spikes_tolerance, gates.synops_tolerance)
        report.gates += regressions
        report.baseline = {
            "path": str(gates.baseline),
            "model_sha256": baseline.get("model_sha256"),
            "snn_accuracy": baseline["snn_accuracy"],
            "accuracy_curve": baseline.get("accuracy_curve"),
            "spikes_per_sample": baseline["spikes_per_sample"],
            "synops_per_sample": baseline["synops_per_sample"],
            "tolerance_pp": gates.tolerance,
            "notes": notes,
        }


def resolve_timesteps(graph: ir.Graph, timesteps: int | None) -> int:
    """Explicit T, else a latency input's ``t_max``, else the graph's recorded T, else 32.

    An explicit T on a latency-coded network re-encodes its input with ``t_max = T`` (the whole
    spike-time range compressed into T steps), which is how such a network is deployed faster.
    """
    if timesteps is not None:
        if timesteps < 1:
            raise SnnccError(f"timesteps must be >= 1, got {timesteps}")
        if graph.input.coding == "latency":
            graph.input.t_max = timesteps
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
    profile: str | None = None,
    calibration_count: int = CALIBRATION_COUNT,
) -> CompileResult:
    """Convert and lower ``model`` and write ``target``'s artifacts into ``out_dir`` atomically.

    ``out_dir`` also receives ``network.snn.npz`` (the deployed IR) and ``compile.json``.
    ``profile`` overrides the target's default hardware profile (:mod:`snncc.profiles`);
    ``calibration_count`` training samples calibrate the passes.
    """
    import json

    from snncc.backends import get_backend
    from snncc.util import atomic_directory

    model = Path(model)
    source = load_model(model, preprocess, layout)
    backend = get_backend(target)  # fail early, before any work, if the target is unavailable
    name = dataset_name(source, dataset)
    timesteps = resolve_timesteps(source, timesteps)
    chosen = target_profile(target, profile)
    passes = default_passes(source, target, profile) if passes is None else passes
    graph, pass_info = prepare(source, passes, dataset=name, data_dir=data_dir,
                               timesteps=timesteps,
                               options=with_target_defaults(target, options, profile),
                               calibration_count=calibration_count)
    graph.metadata.update({"timesteps": timesteps, "target": target})
    if chosen is not None:
        graph.metadata["profile"] = chosen.name
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as staging:
        target_options = dict(target_options or {})
        if target == "fpga":
            target_options.setdefault("source_hash", _sha256(model))
        files = list(backend.emit(graph, staging, **target_options))
        if not (staging / "network.snn.npz").exists():
            graph.save(staging / "network.snn.npz")
        summary = {
            "snncc_version": __version__,
            "model": str(model),
            "model_sha256": _sha256(model),
            "target": target,
            "profile": None if chosen is None else chosen.name,
            "timesteps": timesteps,
            "passes": passes,
            "pass_info": pass_info,
            "files": sorted(p.name for p in staging.iterdir()),
        }
        (staging / "compile.json").write_text(json.dumps(_jsonable(summary), indent=1))
    files = [out_dir / Path(f).relative_to(staging) for f in files]
    return CompileResult(target, out_dir, files, passes, pass_info, graph)
