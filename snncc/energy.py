"""Energy and latency per inference on a chip, from its published per-event figures.

A pure function over measured activity (:func:`estimate`) and a chip profile's ``energy:`` table
(:class:`snncc.resources.EnergyProfile`; every figure there names its publication). Rules:

1. **Activity** of one inference (one sample of ``T`` timesteps), as the reference simulator
   measures it: ``synops`` synaptic events (each nonzero input of a synaptic layer in a step
   reaches its fan-out of nonzero synapses), ``spikes`` emitted by spiking layers (the input
   encoder excluded), ``neurons`` IF and readout neurons, and ``cores`` used (partition analysis).
2. **Energy** ``E = synops * synaptic_event_j + neurons * T * neuron_update_j
   + spikes * spike_j + static_w * latency``: every neuron is updated once per timestep (the
   synchronous model of Loihi and TrueNorth). A term whose figure is not published is left out
   and named in ``missing``; without ``synaptic_event_j`` there is no estimate (``None``), since
   synaptic events dominate every published breakdown.
3. **Latency** ``T * step_s`` when the chip has a fixed tick; else, from per-event times, each
   timestep lasts ``sync_s + (synops / T / cores) * synaptic_event_s
   + ceil(neurons / cores) * neuron_update_s``: cores work in parallel on an even share of the
   events and neurons (a balanced-load bound: the busiest core of a real placement is slower).
   Without either, latency is ``None``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from snncc.resources import ChipProfile

#: Energy terms by the figure that prices them (rule 2).
TERMS = {
    "synaptic_events": "synaptic_event_j",
    "neuron_updates": "neuron_update_j",
    "spikes": "spike_j",
    "static": "static_w",
}


@dataclass
class EnergyEstimate:
    """Energy (joules) and latency (seconds) of one inference on ``chip`` (module rules).

    ``terms``: joules per energy term that has a published figure; ``missing``: the terms left
    out (figure not published); ``sources``: the citation of every figure used.
    """

    chip: str
    energy_j: float | None
    latency_s: float | None
    terms: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(chip: ChipProfile, *, synops: float, spikes: float, neurons: int, timesteps: int,
             cores: int = 1) -> EnergyEstimate:
    """Energy and latency of one inference with the given activity on ``chip`` (module rules)."""
    profile = chip.energy
    if profile is None:
        return EnergyEstimate(chip.name, None, None, missing=list(TERMS),
                              notes="the chip profile has no energy figures")
    figures = profile.figures()
    used: set[str] = set()
    latency = None
    if figures["step_s"] is not None:
        latency = timesteps * figures["step_s"]
        used.add("step_s")
    elif figures["synaptic_event_s"] is not None and figures["neuron_update_s"] is not None:
        cores = max(int(cores), 1)
        per_step = (synops / timesteps / cores * figures["synaptic_event_s"]
                    + math.ceil(neurons / cores) * figures["neuron_update_s"])
        used |= {"synaptic_event_s", "neuron_update_s"}
        if figures["sync_s"] is not None:
            per_step += figures["sync_s"]
            used.add("sync_s")
        latency = timesteps * per_step
    counts = {"synaptic_events": synops, "neuron_updates": neurons * timesteps,
              "spikes": spikes, "static": latency}
    terms: dict[str, float] = {}
    missing: list[str] = []
    for term, figure in TERMS.items():
        if figures[figure] is None or counts[term] is None:
            missing.append(term)
        else:
            terms[term] = float(counts[term]) * figures[figure]
            used.add(figure)
    energy = None if "synaptic_events" not in terms else float(sum(terms.values()))
    sources = {name: profile.sources[name] for name in sorted(used) if name in profile.sources}
    return EnergyEstimate(chip.name, energy, latency, terms, missing, sources, profile.notes)
