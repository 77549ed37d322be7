"""reset_zero: IF neurons that reset to zero from a zero start, bias-corrected for them.

For hardware whose neurons reset to zero and have no initial potential (Loihi's LIF, lava-dl netx
CUBA neurons; ``v`` is zeroed at each sample). Rules (one application is enough; deterministic;
never mutates its input):

1. Needs a converted SNN (IF neurons). Every IF layer gets ``reset = "zero"`` and ``v_init = 0``.
   There is no exact equivalent of ``v_init`` on such hardware, so convert's half-threshold start
   is dropped. Fire-once layers keep firing once (their reset never acts).
2. **Bias correction for these neurons** (option ``bias_correction``, default true; needs
   calibration samples): reset to zero drops the overshoot ``v - threshold`` at every spike and
   the missing half-threshold start costs about half a spike per neuron, so layers deliver less
   than their activations ask (on mnist_cnn_bn at T=16 the three layers' rates fell by 35-70% and
   accuracy from 99.0% to 92.8% on 500 test images). The convert pass's rule 7
   (:func:`snncc.passes.convert.bias_correct`) then runs at the deployment T on the reset-to-zero
   network: layer by layer, the mean shortfall against the clipped ANN activation, per channel,
   is added to the bias (``bias_correction_rounds`` times, default 1). Scaling the thresholds
   instead (by 0.7 … 0.95) never lowered a layer's squared error on mnist_mlp or mnist_cnn_bn;
   spreading ``v_init`` over the bias (``v_init / T`` per step) recovered less (98.6% vs 99.4%).
3. **Refit** (option ``refit``, default true; needs calibration samples; after rule 2): every
   Dense/Conv2d that reads IF spikes is refitted by ridge regression from the rates its input
   neurons really deliver to the ANN's pre-activation (:mod:`snncc.passes.refit`, ridge
   ``refit_ridge``, default 0.02): a neuron's reset-to-zero rate bends below the clipped-ReLU
   line, more the faster it fires, which no per-channel bias undoes, but the next layer can
   weigh each input for the rates it really sends. Measured on 2,000 MNIST test images
   (integer mode, loihi2-netx profile): mnist_cnn_ratenorm T=16 95.45% -> 96.60% (subtract
   reset 97.05%), mnist_cnn_bn T=32 98.20% -> 98.75% (subtract reset 98.65%); ridge 0.001 gave
   95.95% and 0.05 96.60% on the former. The fit has up to 6,272 inputs per layer: on 2,000
   calibration samples it decides like the ANN on 99.8% of them but 99.2% of other training
   samples, so the loihi2-netx profile calibrates on 6,000 (``--calibration-samples``;
   mnist_cnn_ratenorm on the 10k test set: T=16 97.35% -> 97.47%, T=32 97.40% -> 97.51%).
4. A network whose IF layers all reset to zero from zero already (a BSTDG network, a second
   application) is returned unchanged, without bias correction.
5. Leaky layers (``LIF``, ``CubaLIF``: networks trained as SNNs, e.g. NIR imports) keep their
   reset and initial potential: changing them changes what the network was trained to compute,
   and there is no ANN activation to correct against. ``info["leaky_kept"]`` names them; netx
   then states why it cannot hold a subtract reset, and ``--profile lava-cpu`` runs them.

``info["bias_correction"]`` gives the mean |shift| per layer, ``info["refit"]`` each refitted
layer's relative weight change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.passes import PassContext, PassResult
from snncc.passes.refit import refit_layers

DEFAULTS: dict[str, Any] = {"bias_correction": True, "bias_correction_rounds": 1, "refit": True,
                            "refit_ridge": 0.02}
#: Declared option kinds (:data:`snncc.passes.OPTION_KINDS`).
OPTIONS = {"bias_correction": "bool", "bias_correction_rounds": "int", "refit": "bool",
           "refit_ridge": "number"}


def reset_zero(graph: ir.Graph, context: PassContext) -> PassResult:
    """Make every IF layer reset to zero from ``v = 0``, then bias-correct it (module doc)."""
    options = {**DEFAULTS, **context.options_for("reset_zero")}
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise SnnccError(f"reset_zero: unknown option {unknown[0]!r}; available: "
                         f"{', '.join(DEFAULTS)}")
    layers = graph.of_type(ir.IF)
    leaky = graph.of_type(*ir.LEAKY)
    if not layers and not leaky:
        raise SnnccError("reset_zero: the graph has no spiking neurons (run convert first)")
    graph = graph.copy()
    changed = False
    for name in layers:
        neurons: ir.IF = graph.nodes[name]  # type: ignore[assignment]
        changed |= neurons.reset != "zero" or bool(np.any(neurons.v_init != 0))
        neurons.reset = "zero"
        neurons.v_init = np.zeros(1, dtype=neurons.v_init.dtype)
    info: dict[str, Any] = {"leaky_kept": leaky} if leaky else {}
    calibration = context.calibration
    correct = options["bias_correction"] or options["refit"]
    if changed and correct and calibration is not None and len(calibration):
        if graph.is_integer():
            raise SnnccError("reset_zero: bias correction needs a float graph; run it before fold "
                             "(or set reset_zero.bias_correction=false, reset_zero.refit=false)")
        ann = graph.copy()  # ANN mode ignores resets: the targets, before any correction
        if options["bias_correction"]:
            from snncc.passes.convert import bias_correct

            info["bias_correction"] = bias_correct(graph, calibration, context.timesteps,
                                                   int(options["bias_correction_rounds"]))
        if options["refit"]:
            ridge = float(options["refit_ridge"])
            if not ridge >= 0:
                raise SnnccError(f"reset_zero: refit_ridge must be >= 0, got {ridge}")
            info["refit"] = refit_layers(graph, ann, calibration, context.timesteps, ridge)
    return PassResult(graph, changed, info)
