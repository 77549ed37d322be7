"""Design-space sweeps: every point of a grid compiled, validated, partitioned and priced.

:func:`plan_sweep` checks a :class:`SweepSpec` before any work; :func:`run_sweep` runs its points on
an :class:`~snncc.cluster.Executor` (serially, on a local Dask cluster or on a scheduler) and
writes the results (:mod:`snncc.sweep_report`). Rules:

1. **Grid.** ``KEY=V1,V2,...`` per axis. ``KEY`` is ``T`` (or ``timesteps``) or ``PASS.OPTION``
   with ``PASS`` a registered pass and ``OPTION`` one it accepts
   (:func:`snncc.passes.pass_options`). Values are read as JSON where they parse (numbers,
   ``true``/``false``), else kept as strings. Points are the cartesian product of the axes in
   the order given, the last axis varying fastest. An empty grid, an axis without values, a
   repeated key or a ``T`` that is not a positive integer is an error.
2. **Passes.** With ``passes`` given, every pass a grid key names must be among them. By default
   the ``sim`` target's passes (``convert`` for an ANN) run, followed by the passes the grid names
   that are not among them, in the order of the grid keys (so ``prune.sparsity`` adds ``prune``
   after ``convert``). A grid over ``convert.percentile`` sets ``convert.threshold_method`` to
   ``percentile`` unless the options name a method (the default method, ``mse``, ignores the
   percentile); the results say so in ``notes``.
3. **A point** is one :func:`snncc.pipeline.validate` of the model with the point's options and
   T on the test set, with one BLAS thread wherever it runs (so its results do not depend on
   the executor) (the ``sim`` target; accuracy, accuracy curve, spikes and synaptic events
   per sample, decision time) with a fit gate per chip (the partition analysis with this run's
   spike rates: cores, chips, memory, fits), then priced per chip from the chip profile's
   published figures (:func:`snncc.energy.estimate`: energy and latency per inference, each
   figure with its source). Points that one process runs share their leading passes when those
   passes' options and T are equal (:data:`PASS_CACHE`, a :class:`snncc.passes.PassCache`: a
   grid over ``prune.sparsity`` converts once per T and percentile in each process), and the
   dataset's files are read once per process; the results are those of running every pass.
4. **Cache and resume.** A finished point is stored in ``OUT/cache/KEY.json`` (written to a
   temporary file and renamed), ``KEY`` the SHA-256 of the model's bytes (and its sidecar's), the
   dataset, sample limit, passes, the point's options and T, the chip profiles and the snncc
   version. A run finds its finished points there and computes only the rest, so a killed sweep
   resumes where it stopped. Failed points are not cached (a rerun tries them again).
5. **Failures.** A point whose worker dies is retried once, then reported failed with the
   others kept (:mod:`snncc.cluster` rule 4); an exception other than bad input fails the point
   alone. Bad input found on a worker (:class:`SnnccError`, e.g. a data directory missing there)
   ends the sweep with that message; the points finished so far stay in the cache.
6. **Pareto fronts** (per chip): a finished point is on the accuracy-energy front when no other
   point has at least its accuracy at no more energy, one of the two strictly better; likewise for
   cores. Points without an energy estimate are on no energy front.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snncc import __version__, ir
from snncc.cluster import Executor, Outcome
from snncc.errors import SnnccError
from snncc.passes import PassCache
from snncc.util import jsonable

SCHEMA = "snncc.sweep/1"
TIMESTEP_KEYS = ("T", "timesteps")
RESULT_FILES = ("sweep.json", "sweep.csv", "sweep.md")


# ---------------------------------------------------------------------------------------- grid


def add_axis(grid: dict[str, list[Any]], key: str, values: list[Any]) -> None:
    """Add one axis, refusing repeated keys (``T`` and ``timesteps`` are the same key)."""
    canonical = "T" if key in TIMESTEP_KEYS else key
    if canonical in grid:
        raise SnnccError(f"grid key {key!r} given twice")
    if not values:
        raise SnnccError(f"grid key {key!r} has no values")
    grid[canonical] = list(values)


# ---------------------------------------------------------------------------------------- plan


@dataclass
class SweepSpec:
    """What to sweep: the model, the grid (rule 1), the chips to partition and price on, and the
    settings every point shares (``timesteps`` when the grid has no ``T``)."""

    model: Path
    grid: dict[str, list[Any]]
    chips: list[str] = field(default_factory=list)
    dataset: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    passes: list[str] | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    timesteps: int | None = None
    preprocess: dict[str, Any] | None = None
    layout: str | None = None


@dataclass
class ModelFiles:
    """A model and its sidecar JSON as bytes, so that workers need no copy of the model."""

    name: str
    data: bytes
    sidecar: bytes | None
    path: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @classmethod
    def read(cls, path: Path) -> ModelFiles:
        sidecar = path.with_suffix(".json")
        return cls(path.name, path.read_bytes(),
                   sidecar.read_bytes() if sidecar.is_file() and sidecar != path else None,
                   str(path.resolve()))

    def local_path(self) -> Path:
        """The model on this machine: the original file when it holds these bytes, else a copy
        (with its sidecar) in a temporary directory named after its hash."""
        original = Path(self.path)
        if original.is_file() and original.read_bytes() == self.data:
            return original
        folder = Path(tempfile.gettempdir()) / "snncc-models" / self.sha256[:16]
        target = folder / self.name
        if not target.exists():
            from snncc.util import atomic_write_bytes

            folder.mkdir(parents=True, exist_ok=True)
            if self.sidecar is not None:
                atomic_write_bytes(target.with_suffix(".json"), self.sidecar)
            atomic_write_bytes(target, self.data)
        return target


@dataclass
class PointTask:
    """One point as a worker runs it (rule 3)."""

    index: int
    key: str
    params: dict[str, Any]
    timesteps: int | None
    options: dict[str, dict[str, Any]]
    passes: list[str]
    dataset: str
    data_dir: str | None
    limit: int | None
    chips: list[Any]
    preprocess: dict[str, Any] | None = None
    layout: str | None = None


@dataclass
class SweepPlan:
    """A checked sweep: its points, chip profiles, model bytes and notes."""

    spec: SweepSpec
    model: ModelFiles
    dataset: str
    passes: list[str]
    options: dict[str, dict[str, Any]]
    chips: list[Any]
    points: list[PointTask]
    notes: list[str] = field(default_factory=list)


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Check ``spec`` (rules 1-2) and list its points; raises SnnccError before any work."""
    from snncc.backends import get_target
    from snncc.loading import dataset_name, load_model
    from snncc.passes import REGISTRY, check_options, pass_options
    from snncc.pipeline import default_passes
    from snncc.resources import load_chip
    from snncc.safety import check_timesteps

    if not spec.grid:
        raise SnnccError("empty grid: give at least one --grid KEY=V1,V2,... "
                         "(or [sweep.grid] in the config)")
    grid = {}
    for key, values in spec.grid.items():
        add_axis(grid, key, list(values))
    for key, values in grid.items():
        if key == "T":
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1]
            if bad:
                raise SnnccError(f"grid key 'T': timesteps must be positive integers, "
                                 f"got {bad[0]!r}")
            for value in values:
                check_timesteps(value, "grid key 'T'")
            continue
        pass_name, dot, option = key.partition(".")
        if not dot or not option:
            raise SnnccError(f"unknown grid key {key!r}: expected T or PASS.OPTION "
                             f"(passes: {', '.join(REGISTRY)})")
        if pass_name not in REGISTRY:
            raise SnnccError(f"unknown grid key {key!r}: no pass {pass_name!r}; available: "
                             f"{', '.join(REGISTRY)}")
        known = pass_options(pass_name)
        if option not in known:
            raise SnnccError(f"unknown grid key {key!r}: pass {pass_name!r} has no option "
                             f"{option!r}; options: {', '.join(known)}")
        for value in values:  # each value of the declared kind, before any point runs
            check_options({pass_name: {option: value}})
    for pass_name, values in spec.options.items():
        if pass_name not in REGISTRY:
            raise SnnccError(f"unknown pass {pass_name!r} in options; available: "
                             f"{', '.join(REGISTRY)}")
        unknown = sorted(set(values) - set(pass_options(pass_name)))
        if unknown:
            raise SnnccError(f"unknown option {pass_name}.{unknown[0]}; options of "
                             f"{pass_name!r}: {', '.join(pass_options(pass_name))}")
    check_options(spec.options)
    if spec.limit is not None and spec.limit < 1:
        raise SnnccError(f"limit must be >= 1, got {spec.limit}")
    chips = [load_chip(chip) for chip in spec.chips]
    names = [chip.name for chip in chips]
    if len(set(names)) != len(names):
        raise SnnccError(f"chips {', '.join(names)}: each chip may appear once")

    model_path = Path(spec.model)
    graph = load_model(model_path, spec.preprocess, spec.layout)
    dataset = dataset_name(graph, spec.dataset)
    if dataset is None:
        raise SnnccError("no dataset: pass --dataset (mnist, fashion-mnist or digits)")
    gridded = [key.partition(".")[0] for key in grid if key != "T"]
    if spec.passes is None:
        passes = default_passes(graph, [get_target("sim")])
        passes += [name for name in dict.fromkeys(gridded) if name not in passes]
    else:
        passes = list(spec.passes)
        for name in passes:
            if name not in REGISTRY:
                raise SnnccError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}")
        missing = [key for key in grid if key != "T" and key.partition(".")[0] not in passes]
        if missing:
            raise SnnccError(f"grid key {missing[0]!r}: pass {missing[0].partition('.')[0]!r} "
                             f"is not among the passes ({', '.join(passes) or 'none'})")
    options = {name: dict(values) for name, values in spec.options.items()}
    notes = []
    if "convert.percentile" in grid and "threshold_method" not in options.get("convert", {}):
        options.setdefault("convert", {})["threshold_method"] = "percentile"
        notes.append("convert.threshold_method=percentile set by the convert.percentile grid "
                     "(the default method, mse, ignores the percentile)")

    model = ModelFiles.read(model_path)
    points = []
    keys = list(grid)
    for index, values in enumerate(itertools.product(*(grid[key] for key in keys))):
        params = dict(zip(keys, values, strict=True))
        point_options = {name: dict(values) for name, values in options.items()}
        for key, value in params.items():
            if key != "T":
                pass_name, _, option = key.partition(".")
                point_options.setdefault(pass_name, {})[option] = value
        timesteps = params.get("T", spec.timesteps)
        task = PointTask(index, "", params, timesteps, point_options, passes, dataset,
                         spec.data_dir, spec.limit, chips, spec.preprocess, spec.layout)
        task.key = point_key(model, task)
        points.append(task)
    return SweepPlan(spec, model, dataset, passes, options, chips, points, notes)


def point_key(model: ModelFiles, task: PointTask) -> str:
    """The cache key of a point (rule 4)."""
    sidecar = None if model.sidecar is None else hashlib.sha256(model.sidecar).hexdigest()
    identity = {
        "snncc": __version__, "model": model.sha256, "sidecar": sidecar,
        "dataset": task.dataset, "limit": task.limit, "passes": task.passes,
        "options": task.options, "timesteps": task.timesteps,
        "chips": [chip.as_dict() for chip in task.chips],
        "preprocess": task.preprocess, "layout": task.layout,
    }
    text = json.dumps(identity, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------------- a point


def neuron_count(graph: ir.Graph) -> int:
    """IF and readout neurons of a spiking graph (what a chip updates every timestep)."""
    shapes = graph.infer_shapes()
    return int(sum(int(np.prod(shapes[name])) for name, node in graph.nodes.items()
                   if isinstance(node, (ir.IF, ir.Readout))))


#: Leading passes shared by the points a process runs (rule 3), this one's or a worker's.
PASS_CACHE = PassCache()


def evaluate_point(task: PointTask, model: ModelFiles) -> dict[str, Any]:
    """Validate and partition one point (rule 3); the measurements, without energy.

    Runs with one BLAS/OpenMP thread wherever it runs (this process or a worker): LAPACK
    routines in the passes round differently with another thread count, and a point's results
    must not depend on where it ran. (The engines' thread setting is made first: made inside,
    by the first engine call of a process, it lifted BLAS to every core for the rest of that
    point.) Leading passes come from :data:`PASS_CACHE` when an earlier point of this process
    ran them with the same T and options.
    """
    from threadpoolctl import threadpool_limits

    from snncc.engines import threads
    from snncc.gates import GateSpec
    from snncc.pipeline import validate

    threads.current()
    with threadpool_limits(limits=1):
        report, graph = validate(
            model.local_path(), dataset=task.dataset, data_dir=task.data_dir,
            timesteps=task.timesteps, limit=task.limit, passes=task.passes,
            options=task.options, preprocess=task.preprocess, layout=task.layout,
            gates=GateSpec(fits=list(task.chips)), ann_reference=False,
            pass_cache=PASS_CACHE)
    return {
        "accuracy": report.snn_accuracy,
        "accuracy_curve": report.accuracy_curve,
        "mode": report.mode,
        "samples": report.samples,
        "timesteps": report.timesteps,
        "spikes_per_sample": report.spikes_per_sample,
        "spikes_per_layer": report.spikes_per_layer,
        "synops_per_sample": report.synops_per_sample,
        "decision_time": report.decision_time,
        "neurons": neuron_count(graph),
        "fits": report.fits,
        "wall_seconds": report.total_seconds,
    }


# ----------------------------------------------------------------------------------------- run


@dataclass
class SweepRun:
    """What :func:`run_sweep` did: the results dictionary and the files it wrote."""

    results: dict[str, Any]
    files: list[Path]
    computed: int
    cached: int
    failed: int


def run_sweep(plan: SweepPlan, out_dir: str | Path, executor: Executor, *,
              evaluate: Callable[[PointTask, ModelFiles], dict[str, Any]] = evaluate_point,
              plots: bool = True) -> SweepRun:
    """Run ``plan``'s points not yet in ``out_dir``'s cache on ``executor`` and write the results
    (``sweep.json``, ``sweep.csv``, ``sweep.md``, plots) into ``out_dir`` (rules 3-6).

    ``evaluate`` computes one point (the default validates it); tests swap it to simulate
    failures. Progress: one bar over the points (cached ones count at once).
    """
    from snncc.sweep_report import write_results
    from snncc.util import atomic_write_text, progress

    started = time.perf_counter()
    out_dir = Path(out_dir)
    cache = prepare_output(out_dir)
    records: dict[int, dict[str, Any]] = {}
    for task in plan.points:
        stored = read_cached(cache / f"{task.key}.json")
        if stored is not None:
            records[task.index] = {"status": "ok", "cached": True, "attempts": 0, "error": None,
                                   "metrics": stored}
    todo = [task for task in plan.points if task.index not in records]
    cached = len(records)
    failed = 0
    with progress(f"sweep ({executor.describe()})", len(plan.points)) as advance:
        advance(cached)
        outcomes = executor.run(evaluate, todo, plan.model, progress=advance)
        try:
            for outcome in outcomes:
                task = todo[outcome.index]
                records[task.index] = _record(outcome)
                if outcome.ok:
                    atomic_write_text(cache / f"{task.key}.json",
                                      json.dumps(jsonable(outcome.value), allow_nan=False))
                else:
                    failed += 1
        except SnnccError as error:
            kept = sum(1 for record in records.values() if record["status"] == "ok")
            raise SnnccError(f"{error} ({kept} finished point(s) kept in {cache}; run the "
                             f"sweep again to resume)") from None
    results = build_results(plan, records, executor.describe(), time.perf_counter() - started)
    files = write_results(results, out_dir, plots=plots)
    return SweepRun(results, files, len(todo) - failed, cached, failed)


def prepare_output(out_dir: Path) -> Path:
    """Create ``out_dir`` (its parent must exist) and its ``cache`` folder; return the latter."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SnnccError(f"cannot write the sweep into {out_dir}: a file of that name exists")
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    if not parent.is_dir():
        raise SnnccError(f"cannot write the sweep into {out_dir}: directory {parent} does not "
                         "exist")
    cache = out_dir / "cache"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SnnccError(f"cannot write the sweep into {out_dir} ({error.strerror})") from None
    if not os.access(cache, os.W_OK):
        raise SnnccError(f"cannot write the sweep into {out_dir}: not writable")
    return cache


def read_cached(path: Path) -> dict[str, Any] | None:
    """A cached point's measurements, or ``None`` when absent or unreadable (then recomputed)."""
    from snncc.safety import read_text

    try:
        data = json.loads(read_text(path, "cached point"))  # regular files only: no FIFO
    except (SnnccError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and "accuracy" in data else None


def _record(outcome: Outcome) -> dict[str, Any]:
    return {"status": "ok" if outcome.ok else "failed", "cached": False,
            "attempts": outcome.attempts, "error": outcome.error,
            "metrics": jsonable(outcome.value) if outcome.ok else None}


# ------------------------------------------------------------------------------------- results


def build_results(plan: SweepPlan, records: dict[int, dict[str, Any]], executor: str,
                  wall_seconds: float) -> dict[str, Any]:
    """The results dictionary (JSON schema ``snncc/schemas/sweep-results.schema.json``)."""
    from snncc.energy import estimate

    points = []
    for task in plan.points:
        record = records.get(task.index, {"status": "failed", "cached": False, "attempts": 0,
                                          "error": "not run", "metrics": None})
        metrics = record["metrics"]
        chips = []
        if metrics is not None:
            fits = {fit["chip"]: fit for fit in metrics.get("fits", [])}
            for chip in plan.chips:
                fit = fits.get(chip.name, {})
                cores = fit.get("cores_used", 1)
                energy = estimate(chip, synops=metrics["synops_per_sample"],
                                  spikes=metrics["spikes_per_sample"],
                                  neurons=metrics["neurons"], timesteps=metrics["timesteps"],
                                  cores=max(cores, 1))
                chips.append({
                    "chip": chip.name, "fits": fit.get("fits"), "verdict": fit.get("verdict"),
                    "cores_used": fit.get("cores_used"), "chips_needed": fit.get("chips_needed"),
                    "memory": fit.get("memory", {}),
                    "energy_j": energy.energy_j, "latency_s": energy.latency_s,
                    "energy_terms": energy.terms, "energy_missing": energy.missing,
                    "pareto_energy": False, "pareto_cores": False,
                })
        points.append({"index": task.index, "key": task.key, "params": task.params,
                       "status": record["status"], "cached": record["cached"],
                       "attempts": record["attempts"], "error": record["error"],
                       "metrics": metrics, "chips": chips})
    mark_pareto(points, [chip.name for chip in plan.chips])
    ok = sum(point["status"] == "ok" for point in points)
    return jsonable({
        "schema": SCHEMA,
        "snncc_version": __version__,
        "model": str(plan.spec.model),
        "model_sha256": plan.model.sha256,
        "dataset": plan.dataset,
        "limit": plan.spec.limit,
        "passes": plan.passes,
        "options": plan.options,
        "grid": {key: list(values) for key, values in plan.spec.grid.items()},
        "chips": [{"name": chip.name, "title": chip.title,
                   "energy": None if chip.energy is None else chip.energy.as_dict()}
                  for chip in plan.chips],
        "points": points,
        "summary": {"points": len(points), "ok": ok, "failed": len(points) - ok,
                    "cached": sum(point["cached"] for point in points)},
        "executor": executor,
        "wall_seconds": wall_seconds,
        "notes": plan.notes,
    })


def pareto_front(costs: list[float], accuracies: list[float]) -> list[bool]:
    """Rule 6: ``True`` where no other point has accuracy >= and cost <=, one strictly."""
    front = []
    for index, (cost, accuracy) in enumerate(zip(costs, accuracies, strict=True)):
        dominated = any(
            other_cost <= cost and other_accuracy >= accuracy
            and (other_cost < cost or other_accuracy > accuracy)
            for other, (other_cost, other_accuracy) in enumerate(zip(costs, accuracies,
                                                                      strict=True))
            if other != index)
        front.append(not dominated)
    return front


def mark_pareto(points: list[dict[str, Any]], chips: list[str]) -> None:
    """Set each finished point's ``pareto_energy`` / ``pareto_cores`` per chip (rule 6)."""
    for position, _ in enumerate(chips):
        for cost_key, flag in (("energy_j", "pareto_energy"), ("cores_used", "pareto_cores")):
            members = [point for point in points if point["status"] == "ok"
                       and point["chips"][position][cost_key] is not None]
            front = pareto_front([point["chips"][position][cost_key] for point in members],
                                 [point["metrics"]["accuracy"] for point in members])
            for point, on_front in zip(members, front, strict=True):
                point["chips"][position][flag] = on_front
