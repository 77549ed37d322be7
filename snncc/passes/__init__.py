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
from snncc.safety import is_finite_number


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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))




#: Kinds of pass option values, as each pass declares them in its ``OPTIONS`` mapping
#: (option name -> kind): a test and the words an error uses. Ranges stay the pass's own rules.
OPTION_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "bool": (lambda v: isinstance(v, (bool, np.bool_)), "true or false"),
    "int": (_is_int, "an integer"),
    "number": (is_finite_number, "a finite number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "number|max": (lambda v: is_finite_number(v) or v == "max", "a finite number or 'max'"),
    "number|null": (lambda v: v is None or is_finite_number(v), "a finite number"),
    "bool|auto": (lambda v: isinstance(v, bool) or v == "auto", "true, false or 'auto'"),
    "layers": (lambda v: isinstance(v, str) or (isinstance(v, (list, tuple)) and all(
        isinstance(item, str) for item in v)), "'all', 'hidden' or a list of layer names"),
    "sparsity": (lambda v: is_finite_number(v) or (isinstance(v, dict) and all(
        isinstance(key, str) and is_finite_number(item) for key, item in v.items())),
        "a number or a table of layer = number"),
}


def pass_options(name: str) -> dict[str, str]:
    """The options pass ``name`` declares (``OPTIONS`` in its module): option name -> kind
    (:data:`OPTION_KINDS`). Lets callers reject an unknown or mistyped ``PASS.OPTION`` before
    any work (the pass itself rejects an unknown one too, but only when it runs)."""
    if name not in REGISTRY:
        raise SnnccError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}")
    return dict(importlib.import_module(REGISTRY[name].split(":")[0]).OPTIONS)


def check_options(options: dict[str, dict[str, Any]] | None) -> None:
    """Every ``PASS.KEY = value`` names a registered pass, an option it declares and a value of
    the declared kind (:data:`OPTION_KINDS`); else one :class:`SnnccError` line, before any work.
    """
    for name, values in (options or {}).items():
        declared = pass_options(name)
        if not isinstance(values, dict):
            raise SnnccError(f"options of pass {name!r} must be a table of KEY = value")
        for key, value in values.items():
            if key not in declared:
                raise SnnccError(f"unknown option {name}.{key}; options of {name!r}: "
                                 f"{', '.join(declared)}")
            test, words = OPTION_KINDS[declared[key]]
            if not test(value):
                shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
                raise SnnccError(f"option {name}.{key} must be {words}, got {shown}")


def get_pass(name: str) -> Pass:
    if name not in REGISTRY:
        raise SnnccError(f"unknown pass {name!r}; available: {', '.join(REGISTRY)}")
    module, function = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), function)


def run_passes(
    graph: Graph, names: list[str], context: PassContext, cache: PassCache | None = None
) -> tuple[Graph, list[tuple[str, PassResult]]]:
    """Apply passes in order; returns the final graph and each pass's result.

    With a ``cache``, the longest leading run of ``names`` it holds for this graph and context
    is taken from it (copies, equal to what running those passes gives), and the results of
    leading runs it computes are stored in it (:class:`PassCache`).
    """
    check_options(context.options)
    results: list[tuple[str, PassResult]] = []
    keys = [] if cache is None else cache.keys(graph, names, context)
    for done in range(len(keys), 0, -1):
        found = cache.get(keys[done - 1]) if cache is not None else None
        if found is not None:
            results = found
            graph = results[-1][1].graph
            break
    for index in range(len(results), len(names)):
        name = names[index]
        result = get_pass(name)(graph, context)
        result.graph.validate()
        applied = list(result.graph.metadata.get("passes", []))
        result.graph.metadata["passes"] = applied + [name]
        results.append((name, result))
        graph = result.graph
        if cache is not None and index < len(keys):
            cache.put(keys[index], results)
    return graph, results


class PassCache:
    """The results of leading runs of passes, kept in memory for later runs that repeat them.

    A sweep's points differ in a few options: points with the same model, calibration samples,
    T and options of their first passes share those passes' results (a grid over
    ``prune.sparsity`` converts once per T and percentile). An entry is keyed by the input
    graph's :meth:`~snncc.ir.Graph.fingerprint`, the calibration samples' bytes, T, the seed and
    the names and options of the passes it ran (passes read only their own options); a
    pipeline's whole list is never stored (a different option of its last pass is a different
    run). Entries hold and hand out copies, so no caller can change what a later run gets. At
    most ``size`` entries, the least recently used dropped first. Use one cache under one BLAS
    thread count (LAPACK rounds differently with another): the sweep runs every point on one.
    """

    def __init__(self, size: int = 8) -> None:
        from collections import OrderedDict

        self.size = size
        self._entries: OrderedDict[str, list[tuple[str, PassResult]]] = OrderedDict()
        self.hits = 0  # entries handed out

    def keys(self, graph: Graph, names: list[str], context: PassContext) -> list[str]:
        """The keys of the leading runs ``names[:1]`` .. ``names[:-1]`` on this graph."""
        import hashlib
        import json

        calibration = context.calibration
        base = hashlib.sha256(graph.fingerprint().encode())
        if calibration is not None:
            base.update(f"{calibration.dtype.str}{calibration.shape}".encode())
            base.update(np.ascontiguousarray(calibration).tobytes())
        base.update(json.dumps([context.timesteps, context.seed]).encode())
        keys = []
        for count in range(1, len(names)):
            leading = [[name, context.options_for(name)] for name in names[:count]]
            prefix = base.copy()
            prefix.update(json.dumps(leading, sort_keys=True, default=repr).encode())
            keys.append(prefix.hexdigest())
        return keys

    def get(self, key: str) -> list[tuple[str, PassResult]] | None:
        """Copies of the stored results under ``key`` (``None`` when absent)."""
        stored = self._entries.get(key)
        if stored is None:
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return _copy_results(stored)

    def put(self, key: str, results: list[tuple[str, PassResult]]) -> None:
        self._entries[key] = _copy_results(results)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self.hits = 0


def _copy_results(results: list[tuple[str, PassResult]]) -> list[tuple[str, PassResult]]:
    import copy

    return [(name, PassResult(result.graph.copy(), result.changed, copy.deepcopy(result.info)))
            for name, result in results]
