"""Graph passes, registered by explicit name (``--passes convert,fold,quantize``).

Every pass has one signature: ``pass_fn(graph, context) -> PassResult``. A pass never mutates its
input graph (it works on ``graph.copy()``) and never imports a backend. Analyses (partition,
statistics) are plain functions elsewhere in this package; they are not registered here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snncc.errors import SnnccError
from snncc.ir import Graph


@dataclass
class PassContext:
    """What passes may need besides the graph.

    ``calibration``: raw calibration samples shaped ``(N, *input_shape)`` (training data, never test
    data). ``timesteps``: the deployment T the network is tuned for. ``options``: per-pass options,
    keyed by pass name, e.g. ``{"convert": {"percentile": 99.9}, "quantize": {"bits": 8}}``.
    """

    calibration: np.ndarray | None = None
    timesteps: int = 32
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0

    def options_for(self, name: str) -> dict[str, Any]:
        return dict(self.options.get(name, {}))

    def require_calibration(self, name: str) -> np.ndarray:
        if self.calibration is None or len(self.calibration) == 0:
            raise SnnccError(f"pass {name!r} needs calibration samples (give a dataset)")
        return self.calibration


@dataclass
class PassResult:
    """A pass's output graph, whether it changed anything, and facts worth reporting."""

    graph: Graph
    changed: bool
    info: dict[str, Any] = field(default_factory=dict)


Pass = Callable[[Graph, PassContext], PassResult]

#: name -> "module:function". Explicit on purpose: no import-time discovery, lazy imports.
REGISTRY: dict[str, str] = {
    "convert": "snncc.passes.convert:convert",
    "binarize": "snncc.passes.binarize:binarize",
    "fold": "snncc.passes.fold:fold",
    "quantize": "snncc.passes.quantize:quantize",
    "prune": "snncc.passes.prune:prune",
    "pool_fold": "snncc.passes.pool_fold:pool_fold",
    "reset_zero": "snncc.passes.reset_zero:reset_zero",
    "single_threshold": "snncc.passes.single_threshold:single_threshold",
}


def get_pass(name: str) -> Pass:
    if name not in REGISTRY:
        raise SnnccError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}")
    module, function = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), function)


def run_passes(
    graph: Graph, names: list[str], context: PassContext
) -> tuple[Graph, list[tuple[str, PassResult]]]:
    """Apply passes in order; returns the final graph and each pass's result."""
    results = []
    for name in names:
        result = get_pass(name)(graph, context)
        result.graph.validate()
        applied = list(result.graph.metadata.get("passes", []))
        result.graph.metadata["passes"] = applied + [name]
        results.append((name, result))
        graph = result.graph
    return graph, results
