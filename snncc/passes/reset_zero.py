"""reset_zero: IF neurons that reset to zero and start at zero, thresholds re-tuned for them.

For hardware whose neurons reset to zero and have no initial potential (Loihi's LIF, lava-dl netx
CUBA neurons; ``v`` is zeroed at each sample). Rules (one application is enough; deterministic;
never mutates its input):

1. Needs a converted SNN (IF neurons). Every IF layer gets ``reset = "zero"`` and ``v_init = 0``.
   There is no exact equivalent of ``v_init`` on such hardware, so convert's half-threshold start
   is dropped. Fire-once layers keep firing once (their reset never acts).
2. **Threshold tuning** (option ``tune``, default true; needs calibration samples): reset to zero
   drops the overshoot ``v - threshold`` at every spike, so a neuron fires less often than its
   activation asks. Layer by layer in topological order (each after the ones before it), the
   threshold ``θ`` is multiplied by the factor ``f`` among ``factors`` (default 1.0, 0.95 … 0.7)
   that minimises the mean squared error between what the layer delivers after ``T`` steps,
   ``f θ · count / T``, and the converted network's clipped ANN activation, over the first
   ``tune_samples`` (default 500) calibration samples simulated in float mode at the deployment
   ``T``; a spike then stands for ``f θ``, so every Dense/Conv2d reading the layer (through
   pooling, Flatten or Add) gets those input weights multiplied by ``f``. Ties keep the larger
   ``f``; the search stops at the first factor whose error exceeds the previous one's. IF layers
   whose spikes meet others in an Add share one λ and are not tuned.
3. **Bias correction** (option ``bias_correction``, default false): then the convert pass's rule 7
   (:func:`snncc.passes.convert.bias_correct`) at the deployment T for these neurons. On the MNIST
   models it lowered accuracy after tuning, hence off.

``info["factors"]`` gives each tuned layer's ``f`` and its error before and after.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult

DEFAULTS: dict[str, Any] = {
    "tune": True,
    "factors": [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7],
    "tune_samples": 500,
    "bias_correction": False,
}


def reset_zero(graph: ir.Graph, context: PassContext) -> PassResult:
    """Make every IF layer reset to zero from ``v = 0`` and re-tune thresholds (module doc)."""
    options = {**DEFAULTS, **context.options_for("reset_zero")}
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise SnnccError(f"reset_zero: unknown option {unknown[0]!r}; available: "
                         f"{', '.join(DEFAULTS)}")
    factors = [float(f) for f in np.atleast_1d(options["factors"])]
    if not factors or min(factors) <= 0:
        raise SnnccError("reset_zero: factors must be positive numbers")
    layers = graph.of_type(ir.IF)
    if not layers:
        raise SnnccError("reset_zero: the graph has no IF neurons (run convert first)")
    graph = graph.copy()
    changed = False
    for name in layers:
        neurons: ir.IF = graph.nodes[name]  # type: ignore[assignment]
        changed |= neurons.reset != "zero" or bool(np.any(neurons.v_init != 0))
        neurons.reset = "zero"
        neurons.v_init = np.zeros(1, dtype=neurons.v_init.dtype)
    info: dict[str, Any] = {}
    calibration = context.calibration
    if options["tune"] and calibration is not None and len(calibration):
        if graph.is_integer():
            raise SnnccError("reset_zero: threshold tuning needs a float graph; run it before fold "
                             "(or set reset_zero.tune=false)")
        samples = calibration[: int(options["tune_samples"])]
        info["factors"] = _tune(graph, samples, context.timesteps, factors)
        changed |= any(entry["factor"] != 1.0 for entry in info["factors"].values())
    if options["bias_correction"] and calibration is not None and len(calibration):
        from snncc.passes.convert import bias_correct

        info["bias_correction"] = bias_correct(graph, calibration, context.timesteps)
        changed = True
    return PassResult(graph, changed, info)


def _tune(graph: ir.Graph, samples: np.ndarray, timesteps: int,
          factors: list[float]) -> dict[str, dict[str, float]]:
    """Rule 2, in place: per IF layer the threshold factor with the smallest error."""
    from snncc.simulator import run_ann

    layers = graph.of_type(ir.IF)
    shapes = graph.infer_shapes()
    joined = _add_joined(graph, layers)
    # The target: the converted network's clipped ANN activation, fixed before any change.
    targets = run_ann(graph, samples, outputs=layers)
    report: dict[str, dict[str, float]] = {}
    for name in layers:
        if name in joined:
            continue
        neurons: ir.IF = graph.nodes[name]  # type: ignore[assignment]
        threshold = ir.broadcast_per_neuron(np.asarray(neurons.threshold, dtype=np.float64),
                                            shapes[name], "threshold")
        target = targets[name] * threshold
        errors: dict[float, float] = {}
        for factor in factors:
            errors[factor] = _error(graph, name, factor, samples, timesteps, target, shapes)
            if len(errors) > 1 and errors[factor] > list(errors.values())[-2]:
                break  # the error grows again: past the best factor
        best = min(errors, key=lambda f: (errors[f], -f))
        _apply(graph, name, best, shapes)
        report[name] = {"factor": best, "error_before": errors.get(1.0, float("nan")),
                        "error_after": errors[best]}
    return report


def _error(graph: ir.Graph, name: str, factor: float, samples: np.ndarray, timesteps: int,
           target: np.ndarray, shapes: dict[str, ir.Shape]) -> float:
    """Mean squared error of layer ``name``'s delivered value against ``target`` at ``factor``."""
    from snncc.simulator import simulate

    trial = graph.copy()
    _apply(trial, name, factor, shapes)
    counts = simulate(trial, samples, timesteps, mode="float",
                      count_neurons=True).neuron_counts[name]
    neurons: ir.IF = trial.nodes[name]  # type: ignore[assignment]
    threshold = ir.broadcast_per_neuron(np.asarray(neurons.threshold, dtype=np.float64),
                                        shapes[name], "threshold")
    return float(np.mean((counts / timesteps * threshold - target) ** 2))


def _apply(graph: ir.Graph, name: str, factor: float, shapes: dict[str, ir.Shape]) -> None:
    """Multiply IF ``name``'s threshold by ``factor`` and its readers' input weights alike."""
    from snncc.passes.convert import _scale_consumers

    if factor == 1.0:
        return
    neurons: ir.IF = graph.nodes[name]  # type: ignore[assignment]
    neurons.threshold = np.asarray(neurons.threshold, dtype=np.float64) * factor
    _scale_consumers(graph, {name: np.array([factor])}, shapes)


def _add_joined(graph: ir.Graph, layers: list[str]) -> set[str]:
    """IF layers whose spikes reach an Add (through pooling and layout nodes)."""
    from snncc.passes.convert import _spiking_source

    marks = {name: np.ones(1) for name in layers}
    joined: set[str] = set()
    for add in graph.of_type(ir.Add):
        for source in graph.inputs_of(add):
            found = _spiking_source(graph, source, marks)
            if found is not None:
                joined.add(found)
    return joined
