"""Backends consume IR. Each target is declared once, as ``TARGET``, in its own backend module.

A :class:`Target` says everything the pipeline and the CLI need to know about it: its default
hardware profile, or else the passes a network needs for it (after conversion) and their default
options, the target options its
``emit``/``run`` accept (with defaults), how it emits, how it runs (if it can) and whether its run
is snncc's own engine. The pipeline and CLI read these fields; they never test a target's name.
Modules are imported lazily, so the core never imports lava.

``emit(graph, out_dir, *, timesteps, source_hash, **options) -> list[Path]`` writes the target's
artifacts into ``out_dir`` (the caller makes it atomic). ``run(graph, raw_inputs, timesteps, *,
labels, record, progress, **options) -> SimResult`` runs the deployed graph on raw samples.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from snncc.errors import SnnccError

#: Target name -> the backend module that declares it.
TARGETS: dict[str, str] = {
    "sim": "snncc.backends.sim",
    "lava": "snncc.backends.lava",
    "fpga": "snncc.backends.fpga",
    "nir": "snncc.backends.nir",
}

@dataclass(frozen=True)
class Target:
    """One target's declaration (see the module docstring)."""

    name: str
    summary: str
    emit: Callable[..., list[Any]]
    run: Callable[..., Any] | None = None
    #: The hardware profile (:mod:`snncc.profiles`) whose passes and pass options this target
    #: runs by default; when set it replaces ``passes`` and ``pass_options``.
    profile: str | None = None
    #: Passes every network needs for this target, after conversion (``convert`` for ANNs).
    passes: tuple[str, ...] = ()
    #: Default options of those passes (explicit options win).
    pass_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Target options (``emit``/``run`` keyword arguments) and their defaults.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: ``run`` is snncc's own engine: the accuracy ladder's last rung is this very run.
    reference: bool = False

    def pass_defaults(self, options: Mapping[str, Mapping[str, Any]] | None
                      ) -> dict[str, dict[str, Any]]:
        """``options`` completed with this target's pass defaults (explicit options win)."""
        merged = {name: dict(values) for name, values in (options or {}).items()}
        for name, defaults in self.pass_options.items():
            merged[name] = {**defaults, **merged.get(name, {})}
        return merged

    def target_options(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """``given`` checked against the declared options (one-line error for an unknown one)."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            available = ", ".join(self.options) or "none"
            raise SnnccError(f"target {self.name!r} has no option {unknown[0]!r}; "
                             f"available: {available}")
        return given

    def require_run(self) -> Callable[..., Any]:
        """``run``, or a one-line error for a target that only emits artifacts."""
        if self.run is None:
            raise SnnccError(f"target {self.name!r} cannot run networks; validate with a target "
                             "that can (e.g. sim)")
        return self.run


def get_target(name: str) -> Target:
    """The declaration of target ``name`` (imports its backend module)."""
    if name not in TARGETS:
        raise SnnccError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    try:
        module = importlib.import_module(TARGETS[name])
    except ModuleNotFoundError as error:
        raise SnnccError(f"target {name!r} is not available in this snncc "
                         f"({error.name} is missing)") from None
    return module.TARGET
