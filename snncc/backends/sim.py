"""The ``sim`` target: the deployable graph as one IR file, run by snncc's own engines.

Which engine runs a graph is :func:`snncc.engines.choose`'s decision (``auto``: the event-driven
TTFS engine for single-spike chains, else the step engine), overridable with ``engine``, and
recorded in the result (``SimResult.engine``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snncc import engines, ir
from snncc.backends import Target
from snncc.engines import SimResult


def emit(graph: ir.Graph, out_dir: Path, **context: object) -> list[Path]:
    """The ``sim`` target's artifact: the deployable graph as one IR file (``network.snn.npz``).

    The context (``timesteps``, ``source_hash``, ``engine``) does not change the file."""
    path = graph.save(Path(out_dir) / "network.snn.npz")
    return [path]


def run(graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int, *,
        labels: np.ndarray | None = None, record: bool = False, engine: str = "auto",
        **options: object) -> SimResult:
    """The ``sim`` target's runner (integer mode when the graph is integer, else float)."""
    return engines.run(graph, raw_inputs, timesteps, labels=labels, record=record, engine=engine,
                       **options)  # type: ignore[arg-type]


TARGET = Target(
    name="sim",
    summary="the reference simulator's network file (network.snn.npz), run by snncc's engines",
    emit=emit,
    run=run,
    options={"engine": "auto"},
    reference=True,
)
