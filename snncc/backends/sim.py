"""The ``sim`` target: the reference CPU simulator (engine in :mod:`snncc.simulator`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc import ir
from snncc.simulator import SimResult, run_ann, simulate

__all__ = ["SimResult", "emit", "run", "run_ann", "simulate"]



def emit(graph: ir.Graph, out_dir: Path, **options: object) -> list[Path]:
    """The ``sim`` target's artifact: the deployable graph as one IR file (``network.snn.npz``)."""
    path = graph.save(Path(out_dir) / "network.snn.npz")
    return [path]


def run(graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int, labels: np.ndarray | None = None,
        record: bool = False, **options: object) -> SimResult:
    """The ``sim`` target's runner (integer mode when the graph is integer, else float).

    Single-spike (TTFS) chains go to the event-driven simulator, which computes exactly what the
    step simulator computes (tested) at a cost proportional to spikes times fan-out.
    """
    from snncc.backends.ttfs import is_ttfs_graph, simulate_ttfs

    mode = "integer" if graph.is_integer() else "float"
    if is_ttfs_graph(graph):
        options.pop("progress", None)
        options.pop("sample_offset", None)  # latency coding draws nothing: shards need no offset
        return simulate_ttfs(graph, raw_inputs, labels=labels, mode=mode, record=record,
                             timesteps=timesteps)
    return simulate(graph, raw_inputs, timesteps, mode=mode, labels=labels, record=record,
                    **options)  # type: ignore[arg-type]


