"""Validation gates: the pass/fail checks of ``snncc validate`` and how each is decided.

A gate compares one measured value with one limit. Kinds, by gate name:

- ``min-accuracy`` (``min-accuracy:<target>`` for extra targets): the deployed SNN's final test
  accuracy must be ``>= floor``. Floors above 1 are percentages (``98`` means ``0.98``).
- ``max-drop:<stage>``: accuracy lost at ``stage``, in percentage points, must be ``<= limit``.
  A ladder stage's drop is the accuracy of the rung before it minus its own (stages are ``ann``
  and then one per pass with ``--stages``; a non-``sim`` target adds a last rung named after
  it, measured from the reference simulator's final stage). ``snn`` is the deployed SNN measured
  against the ANN reference (onnxruntime); ``total`` is the first rung minus the deployed SNN.
- ``agreement:<target>``: a further target (``targets = ["sim", "lava"]``) must take the same
  final decision as the first target on at least ``min_agreement`` of the samples (a fraction,
  or percent above 1; ``1.0`` demands every decision, as bit-exact backends give). With a single
  target the gate is reported as ``agreement``, skipped.
- ``fits:<chip>``: the partition analysis (:mod:`snncc.passes.partition`) finds that the deployed
  graph fits ``chip`` (value: cores used, limit: the chip's cores). When that analysis is not part
  of this snncc, the gate is *skipped* (never passed silently): reports show it as skipped.
- ``baseline-accuracy`` (and ``baseline-accuracy:<stage>``): accuracy may fall at most
  ``tolerance`` percentage points below the stored baseline report's.
- ``baseline-spikes`` / ``baseline-synops``: spikes or synaptic operations per sample may grow at
  most ``spikes_tolerance`` / ``synops_tolerance`` percent over the baseline's (checked only when
  the tolerance is set).

Limits are inclusive: a value exactly at its limit passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snncc.errors import SnnccError
from snncc.safety import is_finite_number, read_text

#: Schema id of validation reports; the number after the slash is the major version.
REPORT_SCHEMA = "snncc.validate/1"
#: Accuracy differences below this (in percentage points) are rounding noise, not regressions.
EPSILON_PP = 1e-9


@dataclass
class Gate:
    """One check of a validation run: ``value`` against ``limit``, and whether it passed.

    ``skipped`` gates could not be evaluated (e.g. the analysis they need is missing); they count
    as not failed, and every report shows them as skipped.
    """

    name: str
    passed: bool
    value: float | None
    limit: float | None
    message: str
    skipped: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "passed" if self.passed else "failed"


@dataclass
class GateSpec:
    """The gates one run checks; every field is optional (an empty spec checks nothing).

    ``min_accuracy`` / ``min_agreement``: fraction or percentage (see module docstring). ``max_drop``: stage name ->
    percentage points. ``fits``: chip names or chip profile files (YAML). ``max_cores`` /
    ``max_chips``: extra limits for the fit gates. ``baseline``: a stored report (JSON);
    ``tolerance`` in percentage points; ``spikes_tolerance`` / ``synops_tolerance`` in percent.
    """

    min_accuracy: float | None = None
    min_agreement: float | None = None
    max_drop: dict[str, float] = field(default_factory=dict)
    fits: list[str] = field(default_factory=list)
    max_cores: int | None = None
    max_chips: int | None = None
    baseline: str | Path | None = None
    tolerance: float = 0.5
    spikes_tolerance: float | None = None
    synops_tolerance: float | None = None

    def check(self) -> None:
        """Raise SnnccError (one line) on limits that make no sense."""
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 100:
            raise SnnccError(f"min accuracy must be within 0..1 (or 0..100 %), "
                             f"got {self.min_accuracy}")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 100:
            raise SnnccError(f"min agreement must be within 0..1 (or 0..100 %), "
                             f"got {self.min_agreement}")
        for stage, limit in self.max_drop.items():
            if not stage:
                raise SnnccError("max drop: empty stage name")
            if limit < 0:
                raise SnnccError(f"max drop for stage {stage!r} must be >= 0 pp, got {limit}")
        for name, value in (("tolerance", self.tolerance),
                            ("spikes tolerance", self.spikes_tolerance),
                            ("synops tolerance", self.synops_tolerance)):
            if value is not None and value < 0:
                raise SnnccError(f"baseline {name} must be >= 0, got {value}")
        for name, value in (("max cores", self.max_cores), ("max chips", self.max_chips)):
            if value is not None and value < 1:
                raise SnnccError(f"{name} must be >= 1, got {value}")


def accuracy_floor(min_accuracy: float) -> float:
    """``0.98`` and ``98`` both mean a floor of 98 %."""
    return min_accuracy / 100 if min_accuracy > 1 else min_accuracy


def min_accuracy_gate(accuracy: float, min_accuracy: float, name: str = "min-accuracy") -> Gate:
    floor = accuracy_floor(min_accuracy)
    passed = accuracy >= floor
    return Gate(name, passed, accuracy, floor,
                f"SNN accuracy {accuracy:.2%} {'>=' if passed else '<'} floor {floor:.2%}")


def agreement_gate(target: str, reference: str, agreement: float,
                   min_agreement: float) -> Gate:
    floor = accuracy_floor(min_agreement)
    passed = agreement >= floor
    return Gate(f"agreement:{target}", passed, agreement, floor,
                f"{target} decides like {reference} on {agreement:.2%} of the samples "
                f"({'>=' if passed else '<'} {floor:.2%} required)")


def parse_max_drop(items: list[str] | None) -> dict[str, float]:
    """``["quantize=0.1", ...]`` -> ``{"quantize": 0.1}`` (the one ``--max-drop`` parser of every
    command); bad items raise a one-line error."""
    limits: dict[str, float] = {}
    for item in items or []:
        stage, sep, value = item.partition("=")
        if not sep or not stage.strip():
            raise SnnccError(f"bad --max-drop {item!r}: expected STAGE=PP (e.g. quantize=0.1)")
        try:
            limits[stage.strip()] = float(value)
        except ValueError:
            raise SnnccError(f"bad --max-drop {item!r}: {value!r} is not a number") from None
        if limits[stage.strip()] < 0:
            raise SnnccError(f"bad --max-drop {item!r}: the limit must be >= 0")
    return limits


def drop_gate(stage: str, drop: float, before: str, limit: float,
              diverges_at: str | None = None) -> Gate:
    """``max-drop:<stage>``: the stage may lose at most ``limit`` pp against ``before``."""
    passed = drop <= limit + EPSILON_PP
    where = f"; first diverges at layer {diverges_at!r}" if diverges_at and not passed else ""
    return Gate(f"max-drop:{stage}", passed, drop, limit,
                f"stage {stage} loses {drop:.2f} pp against {before} "
                f"({'<=' if passed else '>'} {limit:g} pp allowed){where}")


def drop_gates(ladder: list[tuple[str, float]], snn_accuracy: float, ann_accuracy: float | None,
               max_drop: dict[str, float],
               diverges_at: dict[str, str] | None = None) -> list[Gate]:
    """``max-drop:<stage>`` gates over an accuracy ladder ``[(stage, accuracy), ...]``.

    Each rung after the first is measured from the rung before it. ``snn`` is the deployed
    accuracy ``snn_accuracy`` measured from the ANN reference; ``total`` from the first rung
    (or the ANN when there is no ladder) to the deployed accuracy. ``diverges_at`` names, per
    stage, the layer where the ladder saw it first diverge; failing gates quote it.
    """
    drops: dict[str, tuple[float, str]] = {}
    for (before, previous), (stage, accuracy) in zip(ladder, ladder[1:], strict=False):
        drops[stage] = ((previous - accuracy) * 100, before)
    if ann_accuracy is not None:
        drops["snn"] = ((ann_accuracy - snn_accuracy) * 100, "ann")
    first = ladder[0] if ladder else None if ann_accuracy is None else ("ann", ann_accuracy)
    if first is not None:
        drops["total"] = ((first[1] - snn_accuracy) * 100, first[0])
    gates = []
    for stage, limit in max_drop.items():
        if stage not in drops:
            available = ", ".join(drops) or "none (no ANN reference to compare with)"
            raise SnnccError(f"max drop: no stage {stage!r} in this run; available: {available}"
                             + ("" if len(ladder) > 1 else " (per-pass stages need --stages)"))
        drop, before = drops[stage]
        gates.append(drop_gate(stage, drop, before, limit, (diverges_at or {}).get(stage)))
    return gates


# --------------------------------------------------------------------------------- chip fitting


def partition_available() -> bool:
    try:
        import snncc.passes.partition  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_chips(chips: list[str]) -> list[Any]:
    """Chip profiles for the fit gates (loaded before any work, so typos fail fast).

    Returns the names unchanged when the partition analysis is missing (the gates are skipped).
    """
    if not chips or not partition_available():
        return list(chips)
    from snncc.resources import load_chip

    return [load_chip(chip) for chip in chips]


def fit_gates(graph: Any, chips: list[Any], spike_rates: dict[str, float] | None,
              max_cores: int | None = None,
              max_chips: int | None = None) -> tuple[list[Gate], list[dict[str, Any]]]:
    """``fits:<chip>`` gates from the partition analysis, plus one summary per chip."""
    if not chips:
        return [], []
    if not partition_available():
        return [Gate(f"fits:{_chip_name(chip)}", True, None, None,
                     "skipped: the partition analysis (snncc.passes.partition) is not part of "
                     "this snncc version", skipped=True) for chip in chips], []
    from snncc.passes.partition import partition

    gates, summaries = [], []
    for chip in chips:
        report = partition(graph, chip, spike_rates=spike_rates, max_cores=max_cores,
                           max_chips=max_chips)
        total_cores = report.chip.cores_per_chip * report.chip.chips
        name = report.chip.name
        gates.append(Gate(
            f"fits:{name}", report.fits, float(report.cores_used), float(total_cores),
            f"{name}: {report.verdict} ({report.cores_used} cores on "
            f"{report.chips_needed} chip(s))"))
        summaries.append({"chip": name, "fits": report.fits, "verdict": report.verdict,
                          "cores_used": report.cores_used, "chips_needed": report.chips_needed,
                          "violations": list(report.violations),
                          "memory": report.memory_used})
    return gates, summaries


def _chip_name(chip: Any) -> str:
    return getattr(chip, "name", None) or Path(str(chip)).stem


# ------------------------------------------------------------------------------------ baseline


REQUIRED_BASELINE_KEYS = ("schema", "snn_accuracy", "spikes_per_sample", "synops_per_sample",
                          "dataset", "samples", "timesteps")


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A stored ``snncc validate`` JSON report, checked for a compatible schema."""
    path = Path(path)
    text = read_text(path, "baseline")
    try:
        data = json.loads(text)
    except RecursionError:
        raise SnnccError(f"baseline {path}: not JSON (nested too deeply)") from None
    except json.JSONDecodeError as error:
        raise SnnccError(f"baseline {path}: not JSON ({error.msg} at line {error.lineno})") \
            from None
    if not isinstance(data, dict):
        raise SnnccError(f"baseline {path}: expected a JSON object (a snncc validate report)")
    schema = data.get("schema")
    family, _, major = str(schema).partition("/")
    ours = REPORT_SCHEMA.partition("/")[2]
    if family != "snncc.validate" or major != ours:
        raise SnnccError(f"baseline {path}: schema {schema!r} is not {REPORT_SCHEMA!r}")
    missing = [key for key in REQUIRED_BASELINE_KEYS if key not in data]
    if missing:
        raise SnnccError(f"baseline {path}: missing key(s) {', '.join(missing)}")
    for key, (test, words) in BASELINE_KINDS.items():
        if (key in REQUIRED_BASELINE_KEYS or data.get(key) is not None) and not test(data[key]):
            shown = repr(data[key]) if len(repr(data[key])) <= 40 else type(data[key]).__name__
            raise SnnccError(f"baseline {path}: key {key!r} must be {words}, got {shown}")
    return data


#: What the keys of a baseline report hold (checked before any gate reads them).
BASELINE_KINDS: dict[str, tuple[Any, str]] = {
    "snn_accuracy": (is_finite_number, "a number"),
    "spikes_per_sample": (is_finite_number, "a number"),
    "synops_per_sample": (is_finite_number, "a number"),
    "dataset": (lambda v: isinstance(v, str), "a string"),
    "samples": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "timesteps": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "accuracy_curve": (lambda v: isinstance(v, list) and all(is_finite_number(x) for x in v),
                       "a list of numbers"),
    "stages": (lambda v: isinstance(v, list) and all(
        isinstance(x, dict) and isinstance(x.get("name"), str)
        and is_finite_number(x.get("accuracy")) for x in v), "a list of {name, accuracy} objects"),
    "model_sha256": (lambda v: isinstance(v, str), "a string"),
    "target": (lambda v: isinstance(v, str), "a string"),
}


def baseline_gates(current: dict[str, Any], baseline: dict[str, Any], tolerance: float,
                   spikes_tolerance: float | None = None,
                   synops_tolerance: float | None = None) -> tuple[list[Gate], list[str]]:
    """Regression gates of ``current`` (a report dict) against ``baseline``; plus notes.

    Notes say when the two runs are not like for like (different samples, T, target, model).
    """
    if current["dataset"] != baseline["dataset"]:
        raise SnnccError(f"baseline is on dataset {baseline['dataset']!r}, this run on "
                         f"{current['dataset']!r}: not comparable")
    notes = [f"baseline {key} {baseline.get(key)!r} differs from this run's {current[key]!r}"
             for key in ("samples", "timesteps", "target", "model_sha256")
             if key in baseline and baseline.get(key) != current.get(key)]
    gates = [_accuracy_regression("baseline-accuracy", "SNN accuracy", current["snn_accuracy"],
                                  baseline["snn_accuracy"], tolerance)]
    base_stages = {s["name"]: s["accuracy"] for s in baseline.get("stages") or []}
    for stage in current.get("stages") or []:
        if stage["name"] in base_stages:
            gates.append(_accuracy_regression(
                f"baseline-accuracy:{stage['name']}", f"stage {stage['name']} accuracy",
                stage["accuracy"], base_stages[stage["name"]], tolerance))
    for key, label, limit in (("spikes_per_sample", "spikes", spikes_tolerance),
                              ("synops_per_sample", "synops", synops_tolerance)):
        if limit is None:
            continue
        now, before = float(current[key]), float(baseline[key])
        if before > 0:
            growth: float | None = (now / before - 1) * 100
            passed = growth <= limit + EPSILON_PP
            change = f"{growth:+.1f} %"
        else:  # growth from zero has no percentage
            growth, passed, change = (0.0, True, "+0.0 %") if now == 0 else (None, False, "new")
        gates.append(Gate(
            f"baseline-{label}", passed, growth, limit,
            f"{label} per sample {now:,.1f} vs baseline {before:,.1f} ({change}, "
            f"{'<=' if passed else '>'} {limit:g} % growth allowed)"))
    return gates, notes


def _accuracy_regression(name: str, what: str, now: float, before: float,
                         tolerance: float) -> Gate:
    change = (now - before) * 100
    passed = -change <= tolerance + EPSILON_PP
    return Gate(name, passed, change, -tolerance,
                f"{what} {now:.2%} vs baseline {before:.2%} ({change:+.2f} pp, "
                f"{'within' if passed else 'beyond'} the {tolerance:g} pp tolerance)")
