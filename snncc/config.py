"""Project configuration: ``snncc.toml`` pins what ``snncc validate --config`` checks.

The file is TOML (format and every key in ``docs/ci.md``)::

    model = "model.onnx"            # paths are relative to this file's directory
    dataset = "mnist"
    data_dir = "data"
    target = "sim"                  # or targets = ["sim", "lava"]: the first is the reference
    timesteps = 16
    limit = 1000
    passes = ["convert"]
    stages = false
    profile = "loihi2-netx"         # hardware profile (default: the first target's, if any)
    require_netx = true             # exit 2 when netx cannot express the deployed network
    calibration_samples = 6000      # training samples that calibrate the passes (default: profile's)

    [preprocess]                    # overrides the model's own input preprocessing
    scale = 0.00392156862745098
    mean = [0.1307]
    std = [0.3081]

    [options.convert]               # per-pass options
    percentile = 99.99

    [gates]
    min_accuracy = 0.98             # fraction, or percent when above 1
    min_agreement = 1.0             # further targets decide like the first on this fraction
    max_drop = { snn = 1.0 }        # percentage points per stage
    fits = ["loihi2"]               # chip names or chip profile files
    max_cores = 128
    max_chips = 1

    [baseline]
    report = "baseline.json"
    tolerance = 0.5                 # percentage points
    spikes_tolerance = 10           # percent growth
    synops_tolerance = 10

    [outputs]
    json = "reports/validate.json"
    junit = "reports/junit.xml"
    markdown = "reports/summary.md"
    plots = "reports/plots"

    [sweep]                         # snncc sweep --config (see snncc.sweep)
    grid = { T = [8, 16, 32], "convert.percentile" = [99.9, 99.99] }
    chips = ["loihi", "loihi2"]
    output = "sweep"
    workers = 2                     # or scheduler = "tcp://HOST:PORT"
    scheduler_timeout = 10          # seconds
    plots = true

Rules: unknown keys and wrongly typed values raise SnnccError naming the key and the expected type
(one line, exit 2). Integers are accepted where a number is expected; booleans never are. Relative
paths resolve against the config file's directory (command-line paths against the working
directory). A command-line flag overrides the config's value (:meth:`ProjectConfig.override`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from snncc.errors import SnnccError
from snncc.gates import GateSpec
from snncc.passes import check_options
from snncc.safety import read_text

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# Expected types, by dotted key. Kinds: str, path, int, number, bool, strings (list of str),
# numbers (a number or a list of numbers), table (any table), drops (table of numbers).
TOP_KEYS = {
    "model": "path", "dataset": "str", "data_dir": "path", "layout": "str", "target": "str",
    "targets": "targets",
    "timesteps": "int", "limit": "int", "passes": "strings", "stages": "bool",
    "profile": "str", "require_netx": "bool", "calibration_samples": "int",
    "preprocess": "section", "options": "options", "gates": "section", "baseline": "section",
    "outputs": "section", "sweep": "section",
}
SECTION_KEYS = {
    "preprocess": {"scale": "number", "mean": "numbers", "std": "numbers"},
    "gates": {"min_accuracy": "number", "min_agreement": "number", "max_drop": "drops", "fits": "chips", "max_cores": "int",
              "max_chips": "int"},
    "baseline": {"report": "path", "tolerance": "number", "spikes_tolerance": "number",
                 "synops_tolerance": "number"},
    "outputs": {"json": "path", "junit": "path", "markdown": "path", "plots": "path"},
    "sweep": {"grid": "grid", "chips": "chips", "output": "path", "workers": "int",
              "scheduler": "str", "scheduler_timeout": "number", "plots": "bool"},
}
TYPE_NAMES = {
    "str": "a string", "path": "a path string", "int": "an integer", "number": "a number",
    "bool": "true or false", "strings": "a list of strings", "numbers":
    "a number or a list of numbers", "section": "a table", "options": "a table of tables",
    "drops": "a table of numbers (stage = percentage points)",
    "chips": "a chip name or a list of chip names/profile files",
    "targets": "a non-empty list of target names",
    "grid": "a table of non-empty lists (T = [8, 16], \"convert.percentile\" = [99.9, 99.99])",
}


@dataclass
class ProjectConfig:
    """Everything one ``snncc validate`` run needs; ``None`` means "the default"."""

    model: Path | None = None
    dataset: str | None = None
    data_dir: Path | None = None
    layout: str | None = None
    target: str | None = None
    targets: list[str] | None = None
    timesteps: int | None = None
    limit: int | None = None
    passes: list[str] | None = None
    stages: bool | None = None
    profile: str | None = None
    require_netx: bool | None = None
    calibration_samples: int | None = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    gates: GateSpec = field(default_factory=GateSpec)
    outputs: dict[str, Path] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def run_targets(self) -> list[str]:
        """The targets to run: ``targets``, else ``[target]``, else ``["sim"]``."""
        return list(self.targets) if self.targets else [self.target or "sim"]

    def override(self, **values: Any) -> ProjectConfig:
        """A copy where every value that is not ``None`` replaces the config's.

        Keys: the fields of this class; ``preprocess`` and ``options`` merge key by key; gate
        keys (the fields of :class:`GateSpec`) go into ``gates``; ``target`` replaces ``targets`` (``max_drop`` merges by stage);
        ``json``/``junit``/``markdown``/``plots`` go into ``outputs``.
        """
        merged = replace(self, preprocess=dict(self.preprocess),
                         options={k: dict(v) for k, v in self.options.items()},
                         gates=replace(self.gates, max_drop=dict(self.gates.max_drop),
                                       fits=list(self.gates.fits)),
                         outputs=dict(self.outputs))
        own = {f.name for f in fields(self)}
        gate_keys = {f.name for f in fields(GateSpec)}
        for key, value in values.items():
            if value is None:
                continue
            if key == "preprocess":
                merged.preprocess.update(value)
            elif key == "options":
                for pass_name, pass_options in value.items():
                    merged.options.setdefault(pass_name, {}).update(pass_options)
            elif key == "target":
                merged.target, merged.targets = value, None
            elif key == "max_drop":
                merged.gates.max_drop.update(value)
            elif key in gate_keys:
                setattr(merged.gates, key, value)
            elif key in SECTION_KEYS["outputs"]:
                merged.outputs[key] = Path(value)
            elif key in own:
                setattr(merged, key, value)
            else:
                raise KeyError(key)
        return merged


def load_config(path: str | Path) -> ProjectConfig:
    """Read and check ``snncc.toml`` (see the module docstring for the format)."""
    path = Path(path)
    text = read_text(path, "config")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SnnccError(f"config {path}: not valid TOML ({error})") from None
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path) -> ProjectConfig:
    """A :class:`ProjectConfig` from parsed TOML; relative paths resolve against ``path``'s dir."""
    base = path.parent
    where = f"config {path}"
    config = ProjectConfig(path=path)
    for key, value in data.items():
        kind = _kind(where, key, TOP_KEYS)
        if kind == "section":
            section = _check(where, key, value, "section")
            for inner, inner_value in section.items():
                dotted = f"{key}.{inner}"
                inner_kind = _kind(where, dotted, SECTION_KEYS[key], prefix=f"{key}.")
                checked = _resolve(_check(where, dotted, inner_value, inner_kind), inner_kind,
                                   base)
                _store(config, key, inner, checked)
        elif kind == "options":
            for pass_name, pass_options in _check(where, key, value, "section").items():
                config.options[pass_name] = dict(
                    _check(where, f"options.{pass_name}", pass_options, "section"))
        else:
            setattr(config, key, _resolve(_check(where, key, value, kind), kind, base))
    if config.target is not None and config.targets is not None:
        raise SnnccError(f"{where}: give either 'target' or 'targets', not both")
    try:
        check_options(config.options)
    except SnnccError as error:
        raise SnnccError(f"{where}: {error}") from None
    return config



def _kind(where: str, key: str, known: dict[str, str], prefix: str = "") -> str:
    name = key[len(prefix):] if prefix else key
    if name not in known:
        raise SnnccError(f"{where}: unknown key {key!r}; expected one of "
                         f"{', '.join(prefix + k for k in known)}")
    return known[name]


def _check(where: str, key: str, value: Any, kind: str) -> Any:
    """``value`` when it has the type ``kind`` (see TYPE_NAMES), else a one-line SnnccError."""
    def is_number(item: Any) -> bool:
        return isinstance(item, (int, float)) and not isinstance(item, bool)

    ok = {
        "str": lambda v: isinstance(v, str) and v != "",
        "path": lambda v: isinstance(v, str) and v != "",
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": is_number,
        "bool": lambda v: isinstance(v, bool),
        "strings": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "targets": lambda v: isinstance(v, list) and len(v) > 0 and all(
            isinstance(i, str) and i for i in v),
        "chips": lambda v: isinstance(v, str) or (
            isinstance(v, list) and all(isinstance(i, str) and i for i in v)),
        "numbers": lambda v: is_number(v) or (
            isinstance(v, list) and len(v) > 0 and all(is_number(i) for i in v)),
        "section": lambda v: isinstance(v, dict),
        "options": lambda v: isinstance(v, dict),
        "drops": lambda v: isinstance(v, dict) and all(is_number(i) for i in v.values()),
        "grid": lambda v: isinstance(v, dict) and all(
            isinstance(i, list) and len(i) > 0 for i in _flat_grid(v).values()),
    }[kind](value)
    if not ok:
        raise SnnccError(f"{where}: key {key!r} must be {TYPE_NAMES[kind]}, "
                         f"got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 40 else ""
    return f"{names.get(type(value), type(value).__name__)} {shown}".rstrip()


def _resolve(value: Any, kind: str, base: Path) -> Any:
    if kind == "path":
        return _path(value, base)
    if kind == "chips":
        chips = [value] if isinstance(value, str) else list(value)
        return [str(_path(chip, base)) if chip.endswith((".yaml", ".yml")) else chip
                for chip in chips]
    if kind == "numbers" and isinstance(value, list):
        return [float(v) for v in value]
    if kind == "drops":
        return {stage: float(limit) for stage, limit in value.items()}
    if kind == "grid":
        return _flat_grid(value)
    return value


def _flat_grid(table: dict[str, Any]) -> dict[str, Any]:
    """``{"convert": {"percentile": [...]}}`` (TOML's unquoted dotted key) as
    ``{"convert.percentile": [...]}``; other entries unchanged."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


def _path(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def _store(config: ProjectConfig, section: str, key: str, value: Any) -> None:
    if section == "preprocess":
        config.preprocess[key] = value
    elif section == "outputs":
        config.outputs[key] = value
    elif section == "gates":
        setattr(config.gates, key, value)
    elif section == "sweep":
        config.sweep[key] = value
    else:  # baseline
        setattr(config.gates, "baseline" if key == "report" else key, value)
