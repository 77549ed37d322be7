"""Hardware profiles: what a deployment target's neurons and synapses can hold, in one place.

A :class:`HardwareProfile` names the constraints a target puts on the IR (reset mode, initial
potentials, thresholds per layer, weight and bias grids, state range, pooling) and the passes,
with their options, that bring a network inside them. A target selects its default profile
(``Target.profile`` in :mod:`snncc.backends`); ``--profile`` picks another. The passes obey a profile
through the options it gives them; every number lives here, with its source, and the backends
read it from here (:mod:`snncc.backends.netx` checks files against the same constants).

Numbers are in IR units: one unit is one integer weight step. Loihi's fixed-point LIF shifts the
synaptic input, ``vth`` and (in netx) the bias left by 6 bits into a 24-bit ``v`` and ``u``, so
potentials and one step's current must stay within ``(2**23 - 1) >> 6 = 131071`` units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from snncc.errors import SnnccError

# ---------------------------------------------------- lava-dl 0.6 netx on lava-nc 0.10 / Loihi 2
# Sources: lava-dl 0.6.0 lava/lib/dl/netx/hdf5.py (Network.get_neuron_params: CUBA -> LIF or
# LIFReset with vth=vThMant, du=iDecay-1, dv=vDecay, bias_exp=6; no refractory period, refDelay is
# not read) and netx/utils.py (optimize_weight_bits: mixed-sign weights clipped to [-256, 254]);
# lava-nc 0.10 lava/proc/lif/models.py (AbstractPyLifModelFixed: 24-bit u and v, input and vth
# shifted left by 6, v = 0 on a spike, 13-bit bias_mant) and lava/proc/dense/models.py.

#: netx clips mixed-sign dense weights to this range (an 8-bit mantissa with exponent <= 1).
NETX_WEIGHT_RANGE = (-256, 254)
#: Mixed-sign weights above this magnitude lose their lowest bit in netx's 8-bit mantissa.
NETX_ODD_LIMIT = 127
#: ``vThMant`` is a 17-bit unsigned mantissa.
VTH_MANT_MAX = 2**17 - 1
#: Largest ``|v|`` and one step's ``|current|`` in IR units: 24-bit state shifted by 6 bits.
LIF_STATE_MAX = (2**23 - 1) >> 6
#: ``bias_mant`` is 13-bit signed and netx fixes ``bias_exp = 6`` (the input's shift): IR units.
BIAS_MANT_MAX = 2**12 - 1
#: Synaptic delays a netx layer may carry.
DELAY_MAX = 62
#: 12-bit decays; ``iDecay = 4096`` forgets the current every step, ``vDecay = 0`` never leaks.
DECAY_MAX = 4096
#: Loihi 2 graded spike payload (bits).
GRADED_BITS_MAX = 24


def graded_bits(low: float, high: float) -> int:
    """Message bits a graded spike needs to carry integers in ``[low, high]`` (a sign bit when
    ``low < 0``), at most :data:`GRADED_BITS_MAX`: the Lava processes' ``num_message_bits`` and
    the netx loader's ``input_message_bits`` for direct-coded input."""
    magnitude = max(abs(low), abs(high), 1)
    return min(GRADED_BITS_MAX, math.ceil(math.log2(magnitude + 1)) + (1 if low < 0 else 0))


@dataclass(frozen=True)
class HardwareProfile:
    """The constraints one deployment target puts on a converted network, and how to meet them.

    ``None`` in a constraint field means the target accepts anything the IR allows. ``passes``
    is the pass list a target with this profile runs by default (``convert`` is skipped for
    networks that already spike); ``pass_options`` are the options those passes get unless the
    user sets them. ``runtime`` says what runs the emitted network.
    """

    name: str
    description: str
    runtime: str
    passes: tuple[str, ...]
    pass_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    reset: str | None = None  #: the only IF reset the target has ("zero" | "subtract")
    initial_potential: bool = True  #: nonzero ``v_init`` representable
    per_layer_threshold: bool = False  #: one threshold per layer (one ``vth`` per process)
    weight_bits: int | None = None  #: signed weight mantissa width
    weight_exponent: tuple[int, int] = (0, 0)  #: shared power-of-two weight exponent range
    threshold_max: int | None = None
    state_max: int | None = None  #: largest ``|v|`` and one step's ``|current|``
    bias_max: int | None = None  #: largest ``|bias|``
    pooling: bool = True  #: pooling layers exist (else they must fold into the next layer)
    fire_once: bool = True  #: fire-once neurons exist
    input_coding: tuple[str, ...] | None = None  #: input codings the target can feed
    #: training samples that calibrate the passes (None: ``loading.CALIBRATION_COUNT``)
    calibration_samples: int | None = None
    sources: tuple[str, ...] = ()

    def with_options(self, options: dict[str, dict[str, Any]] | None
                     ) -> dict[str, dict[str, Any]]:
        """``options`` (per pass) completed with this profile's pass options; explicit win."""
        merged = {name: dict(values) for name, values in (options or {}).items()}
        for name, defaults in self.pass_options.items():
            merged[name] = {**defaults, **merged.get(name, {})}
        return merged


LOIHI2_NETX = HardwareProfile(
    name="loihi2-netx",
    description="Loihi 2 through lava-dl netx: CUBA neurons reset to zero, one vth per layer, "
                "8-bit weights with exponent <= 1, 13-bit biases, 17-bit state, no pooling",
    runtime="lava-dl netx (lava.lib.dl.netx.hdf5.Network) on lava-nc's Loihi2SimCfg or Loihi 2",
    passes=("convert", "pool_fold", "reset_zero", "single_threshold", "fold", "quantize"),
    pass_options={
        # Binary input spikes: raw 8-bit pixels as graded spikes would need 255 * sum|W| to fit
        # the 17-bit state, which leaves the first layer 2-3 bits of weight (measured: the
        # mnist_mlp falls to 12.5%).
        "convert": {"coding": "rate"},
        "fold": {"per_channel": False},
        "quantize": {"target": "loihi2-netx"},
    },
    reset="zero",
    initial_potential=False,
    per_layer_threshold=True,
    weight_bits=8,
    weight_exponent=(0, 1),
    threshold_max=min(VTH_MANT_MAX + 1, LIF_STATE_MAX),
    state_max=LIF_STATE_MAX,
    bias_max=BIAS_MANT_MAX,
    pooling=False,
    fire_once=False,
    input_coding=("rate", "latency"),
    # reset_zero's refit is a regression with up to 6,272 inputs per layer: on 2,000 samples it
    # decides like the ANN on 99.8% of them and on 99.2% of others (mnist_cnn_ratenorm, T=16);
    # 6,000 samples: 97.35% -> 97.47% on the 10k test set, at 2.5x the pass time.
    calibration_samples=6000,
    sources=(
        "lava-dl 0.6.0 netx/hdf5.py Network.get_neuron_params, create_dense, create_conv",
        "lava-dl 0.6.0 netx/utils.py optimize_weight_bits",
        "lava-nc 0.10 proc/lif/models.py AbstractPyLifModelFixed",
    ),
)

LAVA_CPU = HardwareProfile(
    name="lava-cpu",
    description="snncc's own fixed-point Lava ProcessModels on the CPU (Loihi2SimCfg): reset "
                "by subtraction, per-neuron thresholds and v_init, pooling; no netx file",
    runtime="snncc.backends.lava (lava-nc Loihi2SimCfg, custom CPU ProcessModels)",
    passes=("convert", "fold", "quantize"),
    pass_options={"quantize": {"target": "lava"}},
    weight_bits=8,
    weight_exponent=(0, 7),
    sources=("snncc/backends/lava.py module docstring",),
)

PROFILES: dict[str, HardwareProfile] = {p.name: p for p in (LOIHI2_NETX, LAVA_CPU)}


def get_profile(name: str) -> HardwareProfile:
    """The profile called ``name``; unknown names raise a one-line error listing the known."""
    if name not in PROFILES:
        raise SnnccError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]
