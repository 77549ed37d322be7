"""What an engine run observed: :class:`SimResult`, shared by every engine and backend runner."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snncc.errors import SnnccError


@dataclass
class SimResult:
    """What a simulation run observed (``N`` samples, ``T`` steps)."""

    timesteps: int
    mode: str
    predictions: np.ndarray  # (T, N) decision after each step
    labels: np.ndarray | None
    spike_counts: dict[str, np.ndarray]  # spiking node -> (N,) spikes per sample
    synops: np.ndarray  # (N,) synaptic events per sample over all steps
    readout_state: np.ndarray  # (N, classes) final accumulators / potentials
    decision_time: np.ndarray | None = None  # (N,) first output spike step (T if none)
    rasters: dict[str, np.ndarray] = field(default_factory=dict)  # node -> (T, N, *shape) uint8
    neuron_counts: dict[str, np.ndarray] = field(default_factory=dict)  # node -> (N, *shape)
    engine: str = "step"  # what computed it: an engine of snncc.engines, or a backend's runner

    @property
    def accuracy_curve(self) -> np.ndarray:
        """Accuracy after each step, shape ``(T,)``."""
        if self.labels is None:
            raise SnnccError("no labels were given, so there is no accuracy")
        return (self.predictions == self.labels[None]).mean(axis=1)

    @property
    def accuracy(self) -> float:
        return float(self.accuracy_curve[-1])

    @property
    def spikes_per_sample(self) -> float:
        """Mean total spikes per sample over all spiking layers (the input encoder excluded)."""
        counts = [c for name, c in self.spike_counts.items() if not name.startswith("input:")]
        return float(np.sum([c.mean() for c in counts])) if counts else 0.0

    @staticmethod
    def concatenate(parts: list[SimResult]) -> SimResult:
        """Join results of consecutive batches."""
        first = parts[0]

        def cat(values: list[np.ndarray], axis: int = 0) -> np.ndarray:
            return np.concatenate(values, axis=axis)

        return SimResult(
            timesteps=first.timesteps,
            mode=first.mode,
            predictions=cat([p.predictions for p in parts], axis=1),
            labels=None if first.labels is None else cat([p.labels for p in parts]),
            spike_counts={k: cat([p.spike_counts[k] for p in parts]) for k in first.spike_counts},
            synops=cat([p.synops for p in parts]),
            readout_state=cat([p.readout_state for p in parts]),
            decision_time=None if first.decision_time is None
            else cat([p.decision_time for p in parts]),
            rasters={k: cat([p.rasters[k] for p in parts], axis=1) for k in first.rasters},
            neuron_counts={k: cat([p.neuron_counts[k] for p in parts])
                           for k in first.neuron_counts},
            engine=first.engine,
        )


