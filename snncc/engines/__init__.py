"""Fast engines that compute what :mod:`snncc.semantics` defines, each tested against it.

* :mod:`snncc.engines.step`: any feed-forward graph, layer-major over all steps (ANN mode
  :func:`run_ann`, SNN float and integer modes :func:`simulate`).
* :mod:`snncc.engines.ttfs`: single-spike (time-to-first-spike) chains, event-driven; cost
  proportional to spikes times fan-out.

:func:`choose` names the engine for a graph (``auto``: ``ttfs`` for a single-spike chain, else
``step``) and :func:`run` runs it; the chosen engine is recorded in ``SimResult.engine``, so a
report always says which one produced its figures.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from snncc import ir
from snncc.engines.result import SimResult
from snncc.engines.step import run_ann, simulate
from snncc.errors import SnnccError

ENGINES = ("auto", "step", "ttfs")

__all__ = ["ENGINES", "SimResult", "choose", "run", "run_ann", "simulate"]


def choose(graph: ir.Graph, engine: str = "auto") -> str:
    """The engine that runs ``graph``: ``step`` or ``ttfs`` (``auto`` picks ttfs when it can)."""
    from snncc.engines.ttfs import is_ttfs_graph

    if engine not in ENGINES:
        raise SnnccError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "auto":
        return "ttfs" if is_ttfs_graph(graph) else "step"
    if engine == "ttfs" and not is_ttfs_graph(graph):
        raise SnnccError("engine 'ttfs' runs single-spike chains only: Input(latency) -> Dense -> "
                         "IF(fire_once) ... -> Dense -> Readout(first_spike), no biases")
    return engine


def run(graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int, *, mode: str | None = None,
        labels: np.ndarray | None = None, record: bool = False, engine: str = "auto",
        progress: Callable[[int], None] | None = None, count_neurons: bool = False,
        batch_size: int | None = None, sample_offset: int = 0) -> SimResult:
    """Simulate ``graph`` with :func:`choose`'s engine; ``mode`` defaults to ``integer`` for an
    integer graph, else ``float``. Both engines give identical results where both apply.

    ``sample_offset``: the global index of ``raw_inputs[0]`` when this run is one shard of a set
    (rate coding seeds by the global index; the TTFS engine's latency coding draws nothing)."""
    mode = mode or ("integer" if graph.is_integer() else "float")
    name = choose(graph, engine)
    extra = {} if batch_size is None else {"batch_size": batch_size}
    if name == "ttfs":
        from snncc.engines.ttfs import simulate_ttfs

        result = simulate_ttfs(graph, raw_inputs, labels=labels, mode=mode, record=record,
                               timesteps=timesteps, count_neurons=count_neurons, **extra)
        if progress is not None:
            progress(len(raw_inputs))
    else:
        result = simulate(graph, raw_inputs, timesteps, mode=mode, labels=labels, record=record,
                          progress=progress, count_neurons=count_neurons,
                          sample_offset=sample_offset, **extra)
    result.engine = name
    return result
