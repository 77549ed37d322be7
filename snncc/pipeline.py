"""The library behind ``snncc compile`` and ``snncc validate``: load, convert, run, report.

Everything here is plain functions over the IR; :mod:`snncc.cli` only parses flags and prints.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from snncc import __version__, ir
from snncc.backends import Target, get_target
from snncc.datasets import load_dataset
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
from snncc.loading import (
    CALIBRATION_COUNT,
    ann_reference_logits,
    calibration_samples,
    dataset_name,
    file_sha256,
    is_spiking,
    load_model,
    model_inputs,
    model_kind,
    onnxruntime_logits,  # noqa: F401 - re-exported (tests, benchmarks import it from here)
    resolve_timesteps,
)
from snncc.passes import REGISTRY, PassCache, PassContext, run_passes
from snncc.profiles import HardwareProfile, get_profile
from snncc.stages import StageResult, accuracy_ladder
from snncc.util import atomic_directory, check_output_directory, jsonable, progress

__all__ = ["CompileResult", "TargetRun", "ValidationReport", "compile_model", "default_passes",
           "hardware_profile", "load_model", "pass_defaults", "prepare", "validate"]

# ------------------------------------------------------------------------------------- passes


def hardware_profile(targets: list[Target], profile: str | None = None
                     ) -> HardwareProfile | None:
    """The hardware profile the passes obey: ``profile`` by name, else the first target's
    declared default (``Target.profile``, e.g. ``loihi2-netx`` for lava); None when neither
    names one. An unknown name fails here, before any work."""
    name = profile if profile is not None else next(
        (target.profile for target in targets if target.profile is not None), None)
    return None if name is None else get_profile(name)


def resolve_calibration_count(profile: HardwareProfile | None, requested: int | None = None
                              ) -> int:
    """Training samples that calibrate the passes: ``requested`` (``--calibration-samples``),
    else the profile's (:attr:`snncc.profiles.HardwareProfile.calibration_samples`), else
    :data:`snncc.loading.CALIBRATION_COUNT`."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, (int, np.integer)) \
                or requested < 1:
            raise SnnccError(f"calibration samples must be an integer >= 1, got {requested!r}")
        return int(requested)
    if profile is not None and profile.calibration_samples is not None:
        return profile.calibration_samples
    return CALIBRATION_COUNT


def default_passes(graph: ir.Graph, targets: list[Target],
                   profile: HardwareProfile | None = None) -> list[str]:
    """The profile's passes when there is one (``convert`` only for ANNs); else ``convert`` for
    ANNs, then the passes the targets declare (the longest list: every target then runs the
    same graph)."""
    if profile is not None:
        return [name for name in profile.passes if name != "convert" or not is_spiking(graph)]
    passes = [] if is_spiking(graph) else ["convert"]
    needed = max((list(target.passes) for target in targets), key=len, default=[])
    return passes + [name for name in needed if name in REGISTRY]


def pass_defaults(targets: list[Target], options: dict[str, dict[str, Any]] | None,
                  profile: HardwareProfile | None = None) -> dict[str, dict[str, Any]]:
    """``options`` completed with the profile's pass options when there is one, else with the
    targets' declared pass defaults (explicit options win, then the first target's)."""
    if profile is not None:
        return profile.with_options(options)
    merged = {name: dict(values) for name, values in (options or {}).items()}
    for target in reversed(targets):
        merged = target.pass_defaults(merged)
    return merged


def prepare(graph: ir.Graph, passes: list[str], *, dataset: str | None, data_dir: str | None,
            timesteps: int, options: dict[str, dict[str, Any]] | None = None,
            calibration_count: int = CALIBRATION_COUNT, cache: PassCache | None = None
            ) -> tuple[ir.Graph, list[dict[str, Any]]]:
    """Run ``passes`` on ``graph`` with calibration data from ``dataset``'s training split
    (leading passes taken from and kept in ``cache``, see :class:`snncc.passes.PassCache`)."""
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
    graph, results = run_passes(graph, passes, context, cache)
    summaries = [{"pass": name, "changed": result.changed, "info": jsonable(result.info)}
                 for name, result in results]
    return graph, summaries


# ------------------------------------------------------------------------------------ reports


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
    engine: str | None = None
    profile: str | None = None
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
        data["stages"] = [stage.report_entry() for stage in self.stages]
        for gate, entry in zip(self.gates, data["gates"], strict=True):
            entry["status"] = gate.status
        data["passed"] = self.passed
        data["status"] = "passed" if self.passed else "failed"
        data["failed_gates"] = [gate.name for gate in self.failed_gates]
        return jsonable(data)


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
    nir: dict[str, Any] | None = None,
    executor: Any = None,
    profile: str | None = None,
    require_netx: bool = False,
    pass_cache: PassCache | None = None,
    calibration_count: int | None = None,
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

    ``executor`` (a started :class:`snncc.cluster.Executor`): the first target, which must be
    the one snncc's own engines run (``sim``), runs in shards on its workers
    (:func:`snncc.cluster.simulate_sharded`; identical results to one run).
    ``profile`` names the hardware profile (:mod:`snncc.profiles`) whose passes and pass options
    apply (default: the first target's that has one, e.g. ``loihi2-netx`` for lava).
    ``require_netx`` fails (exit 2) when netx cannot express the deployed network.
    ``calibration_count`` training samples calibrate the passes (default: the profile's, see
    :func:`resolve_calibration_count`).
    ``pass_cache`` (without ``stages``): leading passes already run on the same model,
    calibration samples, T and options come from it (:class:`snncc.passes.PassCache`).
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
    declared = {each: get_target(each) for each in targets}
    for each in declared.values():
        each.require_run()
    first = declared[target]
    if executor is not None and not first.reference:
        raise SnnccError(f"sharded validation (workers, scheduler) runs snncc's own engines "
                         f"(the sim target) only, not {target!r}")

    model = Path(model)
    source = load_model(model, preprocess, layout, nir)  # nir: NIR import choices
    name = dataset_name(source, dataset)
    if name is None:
        raise SnnccError("no dataset: pass --dataset (mnist, fashion-mnist or digits)")
    timesteps = resolve_timesteps(source, timesteps)
    chosen = hardware_profile(list(declared.values()), profile)
    count = resolve_calibration_count(chosen, calibration_count)
    if passes is None:
        passes = default_passes(source, list(declared.values()), chosen)
    known = {"snn", "total"} | (set(passes) if stages else set())
    if stages and not first.reference:
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
            logits, reference = ann_reference_logits(model, source, model_inputs(source, test))
        ann_accuracy = float((logits.argmax(axis=1) == test.labels).mean())

    timings["reference"] = time.perf_counter() - started - sum(timings.values())
    ladder: list[StageResult] = []
    last_run = None
    options = pass_defaults(list(declared.values()), options, chosen)
    if stages:
        overridden = bool(preprocess) or layout is not None or model_kind(model) == "nir"
        calibration = calibration_samples(source, name, data_dir, count)
        with progress("accuracy ladder", len(passes) + 1) as advance:
            measured = accuracy_ladder(
                source if overridden else model, test, timesteps, data_dir=data_dir,
                stages=passes, options=options, calibration=calibration,
                progress=lambda rung: advance(1))
        graph, ladder = measured.graph, measured.stages
        pass_info = [{"pass": rung.stage, "changed": rung.changed, "info": jsonable(rung.pass_info)}
                     for rung in ladder if rung.stage != "ann"]
        if passes and first.reference:  # the ladder's last rung is this very run
            last_run = (measured.last_result, ladder[-1].seconds)
    else:
        with progress(f"passes: {', '.join(passes) or 'none'} (calibration)", None):
            graph, pass_info = prepare(source, passes, dataset=name, data_dir=data_dir,
                                       timesteps=timesteps, options=options,
                                       calibration_count=count, cache=pass_cache)
    timings["passes"] = time.perf_counter() - started - sum(timings.values())
    if require_netx:
        from snncc.backends.netx import require_expressible

        require_expressible(graph)
    inputs = model_inputs(graph, test)
    if last_run is not None:
        result, wall = last_run
    else:
        start = time.perf_counter()
        if executor is not None:
            result = _run_sharded(executor, graph, name, data_dir, len(test), timesteps)
        else:
            result = _run_target(first, target, graph, inputs, timesteps, test.labels)
        wall = max(time.perf_counter() - start, 1e-9)
    curve = result.accuracy_curve
    report = ValidationReport(
        model=str(model),
        model_sha256=file_sha256(model),
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
        engine=result.engine,
        profile=None if chosen is None else chosen.name,
        decision_time=None if result.decision_time is None
        else float(result.decision_time.mean()),
        pass_info=pass_info,
        stages=ladder,
        config=None if config is None else str(config),
    )
    for each in targets[1:]:
        report.target_runs.append(_target_run(declared[each], each, graph, inputs, timesteps,
                                              test.labels, result))
    if report.target_runs:
        report.agreement = min(run.agreement for run in report.target_runs)
    timings["simulation"] = time.perf_counter() - started - sum(timings.values())
    _check_gates(report, gates, graph, result, chips, baseline, first.reference)
    timings["gates"] = time.perf_counter() - started - sum(timings.values())
    report.total_seconds = time.perf_counter() - started
    report.timings = timings
    return report, graph


def _target_run(declared: Target, target: str, graph: ir.Graph, inputs: np.ndarray,
                timesteps: int, labels: np.ndarray, reference: Any) -> TargetRun:
    start = time.perf_counter()
    result = _run_target(declared, target, graph, inputs, timesteps, labels)
    wall = max(time.perf_counter() - start, 1e-9)
    curve = [float(a) for a in result.accuracy_curve]
    agreement = float(np.mean(result.predictions[-1] == reference.predictions[-1]))
    return TargetRun(target, result.mode, curve[-1], curve, result.spikes_per_sample,
                     float(result.synops.mean()), agreement, wall)


def _run_target(declared: Target, target: str, graph: ir.Graph, inputs: np.ndarray,
                timesteps: int, labels: np.ndarray) -> Any:
    with progress(f"simulating ({target}, T={timesteps})", len(inputs)) as advance:
        return declared.require_run()(graph, inputs, timesteps, labels=labels, progress=advance)


def _run_sharded(executor: Any, graph: ir.Graph, dataset: str, data_dir: str | None,
                 samples: int, timesteps: int) -> Any:
    from snncc.cluster import simulate_sharded

    with progress(f"simulating (sim, T={timesteps}, {executor.describe()})", samples) as advance:
        return simulate_sharded(executor, graph, dataset=dataset, data_dir=data_dir,
                                samples=samples, timesteps=timesteps, progress=advance)


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
                 chips: list[Any], baseline: dict[str, Any] | None,
                 reference_target: bool) -> None:
    """Append every gate of ``gates`` to ``report`` (rules in :mod:`snncc.gates`).

    ``reference_target``: the deployed run was snncc's own engine, so the ladder's last rung is
    that run; otherwise the target is one more rung after the ladder."""
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
        ladder = [(stage.stage, stage.accuracy) for stage in report.stages]
        if ladder and not reference_target:
            ladder.append((report.target, report.snn_accuracy))
        elif not ladder and report.ann_accuracy is not None:
            ladder = [("ann", report.ann_accuracy)]
        diverges = {stage.stage: stage.diverges_at for stage in report.stages
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
    nir: dict[str, Any] | None = None,
    force: bool = False,
    profile: str | None = None,
    calibration_count: int | None = None,
) -> CompileResult:
    """Convert and lower ``model`` and write ``target``'s artifacts into ``out_dir`` atomically.

    ``out_dir`` also receives ``network.snn.npz`` (the deployed IR) and ``compile.json``.
    ``target_options`` are checked against the target's declared options before any work, and
    so is ``out_dir`` (:func:`snncc.util.check_output_directory`: an existing directory is
    replaced only when it is a previous compile output or ``force`` is set, never when it holds
    the model).
    ``profile`` overrides the target's default hardware profile (:mod:`snncc.profiles`);
    ``calibration_count`` training samples calibrate the passes (default: the profile's, see
    :func:`resolve_calibration_count`).
    """
    model = Path(model)
    check_output_directory(out_dir, "compile", force=force, inputs=(model,))
    source = load_model(model, preprocess, layout, nir)  # nir: NIR import choices
    declared = get_target(target)  # fail early, before any work, if the target is unavailable
    target_options = declared.target_options(target_options)
    name = dataset_name(source, dataset)
    timesteps = resolve_timesteps(source, timesteps)
    chosen = hardware_profile([declared], profile)
    count = resolve_calibration_count(chosen, calibration_count)
    passes = default_passes(source, [declared], chosen) if passes is None else passes
    graph, pass_info = prepare(source, passes, dataset=name, data_dir=data_dir,
                               timesteps=timesteps,
                               options=pass_defaults([declared], options, chosen),
                               calibration_count=count)
    graph.metadata.update({"timesteps": timesteps, "target": target})
    if chosen is not None:
        graph.metadata["profile"] = chosen.name
    out_dir = Path(out_dir)
    source_hash = file_sha256(model)
    with atomic_directory(out_dir, "compile", force=force, inputs=(model,)) as staging:
        files = list(declared.emit(graph, staging, timesteps=timesteps, source_hash=source_hash,
                                   **target_options))
        if not (staging / "network.snn.npz").exists():
            graph.save(staging / "network.snn.npz")
        summary = {
            "snncc_version": __version__,
            "model": str(model),
            "model_sha256": source_hash,
            "target": target,
            "profile": None if chosen is None else chosen.name,
            "timesteps": timesteps,
            "passes": passes,
            "pass_info": pass_info,
            "files": sorted(p.name for p in staging.iterdir()),
        }
        (staging / "compile.json").write_text(json.dumps(jsonable(summary), indent=1))
    files = [out_dir / Path(f).relative_to(staging) for f in files]
    return CompileResult(target, out_dir, files, passes, pass_info, graph)
