"""Backends consume IR. Each is a module imported lazily (so the core never imports lava).

A backend module defines ``emit(graph, out_dir, **options) -> list[Path]`` writing its artifacts
into ``out_dir`` (the caller makes it atomic), and may define
``run(graph, raw_inputs, timesteps, labels=None, record=False, **options) -> SimResult``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from snncc.errors import SnnccError

TARGETS: dict[str, str] = {
    "sim": "snncc.backends.sim",
    "lava": "snncc.backends.lava",
    "fpga": "snncc.backends.fpga",
}

#: The hardware profile (:mod:`snncc.profiles`) whose passes and options a target runs by default.
DEFAULT_PROFILES: dict[str, str] = {
    "lava": "loihi2-netx",
}


def get_backend(name: str) -> ModuleType:
    if name not in TARGETS:
        raise SnnccError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    return importlib.import_module(TARGETS[name])
