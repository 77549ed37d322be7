"""The snncc graph IR: what a network computes, ANN or SNN, float or integer.

A :class:`Graph` is a directed acyclic graph of named nodes. Every node is a small dataclass whose
docstring states exactly what it computes. Shapes never include the batch dimension; images are
``(C, H, W)`` (NCHW without N), vectors are ``(N,)``.

Three ways of executing one graph (defined step by step in :mod:`snncc.semantics`; fast engines
in :mod:`snncc.engines`):

* **ANN** — one evaluation; :class:`ReLU` and :class:`Clip` are functions, :class:`MaxPool2d` is max.
  Used to check a frontend against onnxruntime and to calibrate conversion.
* **SNN, float** — ``timesteps`` discrete steps ``t = 0 .. T-1``. Every node is evaluated once per step
  in topological order with *no delay*: a spike emitted at step ``t`` reaches the next layer at step
  ``t``. Stateless nodes (Dense, Conv2d, SumPool2d, Affine, Flatten, Reshape, Transpose, Add) are
  applied to their input at that step. Stateful nodes are :class:`IF`, the leaky :class:`LIF`
  and :class:`CubaLIF`, :class:`MaxPool2d` (cumulative max) and :class:`Readout`.
* **SNN, integer** (the deployed numeric mode; every hardware backend must match it bit for bit) —
  the same step semantics with every weight, bias, threshold and state an integer. Additions are exact;
  membrane potentials saturate to the signed range of ``STATE_BITS`` bits after every addition
  (``v = clip(v + x, -2**23, 2**23 - 1)``). There is no other rounding inside the network: all
  rounding happens once, in the passes that produce integer parameters (see ``docs/semantics.md``),
  except the leaky neurons' decays, which truncate as Loihi's do (:class:`CubaLIF`).

Input coding (:class:`Input`) is the boundary: the encoder maps raw samples to what the network sees
at each step (constant analog values, Bernoulli rate spikes or latency spikes), identically in every
mode and every backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from snncc.errors import SnnccError

IR_FORMAT = "snncc-ir"
IR_VERSION = 1

#: Width of membrane potentials and readout accumulators in integer mode (Loihi: 24-bit ``v``).
STATE_BITS = 24
STATE_MIN = -(2 ** (STATE_BITS - 1))
STATE_MAX = 2 ** (STATE_BITS - 1) - 1

# Leaky neurons in integer mode follow Loihi's CUBA rules as lava-nc 0.10 implements them
# (lava/proc/lif/models.py, AbstractPyLifModelFixed): decays are 12-bit fractions of 2**12, and
# u, v hold 24-bit values in units of 2**-LEAKY_SHIFT of the input current (the hardware
# left-shifts synaptic input and the threshold by 6 bits to align them with the state's MSBs).
#: Decay constants count 2**-12 steps: ``d = 4096`` forgets the state every step, ``d = 0`` keeps it.
DECAY_UNITY = 4096
DECAY_SHIFT = 12
#: Integer-mode leaky state is the input scaled by ``2**LEAKY_SHIFT`` (Loihi's act/vth shift).
LEAKY_SHIFT = 6
#: Integer-mode leaky ``v`` saturates to ``[-LEAKY_V_MAX, LEAKY_V_MAX]`` (Loihi: +-(2**23 - 1)).
LEAKY_V_MAX = 2 ** (STATE_BITS - 1) - 1
#: Integer-mode synaptic current ``u`` wraps once past ``+-2**23`` (see :class:`CubaLIF`).
LEAKY_U_WRAP = 2 ** (STATE_BITS - 1)

Shape = tuple[int, ...]

_NODE_TYPES: dict[str, type[Node]] = {}


def _array(value: Any, dtype: Any = None) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.dtype.kind not in "iuf b":
        raise SnnccError(f"expected a numeric array, got dtype {array.dtype}")
    return array


def _pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise SnnccError(f"expected 2 values, got {values}")
    return values  # type: ignore[return-value]


def _quad(value: int | tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right)."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * 4  # type: ignore[return-value]
    values = tuple(int(v) for v in value)
    if len(values) == 2:
        return (values[0], values[1], values[0], values[1])
    if len(values) != 4:
        raise SnnccError(f"padding needs 2 or 4 values, got {values}")
    return values  # type: ignore[return-value]


def is_integer_array(array: np.ndarray | None) -> bool:
    """True when ``array`` has an integer dtype (the integer mode's requirement)."""
    return array is None or np.asarray(array).dtype.kind in "iub"


@dataclass
class Node:
    """Base class. Subclasses define ``output_shape(input_shapes)`` and document their math."""

    #: Number of inputs the node takes (``None``: any number >= 1).
    arity: ClassVar[int | None] = 1
    #: Node keeps state across timesteps.
    stateful: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _NODE_TYPES[cls.__name__] = cls

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The node's array-valued parameters by field name."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }

    def integer_ready(self) -> bool:
        """True when every array parameter is integer-typed (required by the integer mode)."""
        return all(is_integer_array(a) for a in self.arrays().values())


# --------------------------------------------------------------------------------------------- I/O


@dataclass
class Input(Node):
    """Graph input and spike encoder.

    A raw sample ``r`` (e.g. uint8 pixels) is first preprocessed, per channel ``c`` (axis 0)::

        x = (r * scale - mean[c]) / std[c]

    then encoded for step ``t`` of ``T`` (``coding``):

    * ``"direct"``: ``x`` itself at every step (constant-current coding). In integer mode the
      preprocessing must be the identity (``scale=1, mean=0, std=1``; the fold pass moves it into
      the first layer) and ``r`` must be integer: the network receives the raw integers.
    * ``"rate"``: Bernoulli spikes, ``s = u < clip(x, 0, 1)`` with ``u ~ U[0,1)``; sample ``k`` of
      the evaluated set draws its ``(T, *shape)`` uniforms from ``default_rng([seed, k])`` (see
      :mod:`snncc.coding`), the same in every mode, backend and batching.
    * ``"latency"``: time-to-first-spike. ``x`` is clipped to [0, 1]; the input spikes once at step
      ``floor((1 - x) * (t_max - 1))`` and never if ``x == 0``. ``t_max`` defaults to ``T``.

    Spikes are 0/1 in both float and integer mode. ``raw_range`` ``(low, high)``: the range of
    raw sample values the network is built for (8-bit pixels by default); passes bound currents
    with it when no calibration data says more, and hardware backends size input words by it and
    refuse samples outside it.
    """

    shape: Shape = ()
    coding: str = "direct"
    scale: float = 1.0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(1))
    std: np.ndarray = field(default_factory=lambda: np.ones(1))
    t_max: int | None = None
    seed: int = 0
    raw_range: tuple[float, float] = (0.0, 255.0)
    arity: ClassVar[int | None] = 0

    CODINGS: ClassVar[tuple[str, ...]] = ("direct", "rate", "latency")

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)
        if not self.shape or any(s <= 0 for s in self.shape):
            raise SnnccError(f"input shape must be positive, got {self.shape}")
        if self.coding not in self.CODINGS:
            raise SnnccError(f"unknown input coding {self.coding!r}; choose from {self.CODINGS}")
        self.mean = _array(self.mean, np.float64).reshape(-1)
        self.std = _array(self.std, np.float64).reshape(-1)
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, self.shape[0]):
                raise SnnccError(
                    f"preprocessing {name} has {values.size} values but the input has "
                    f"{self.shape[0]} channels (shape {self.shape})"
                )
        if np.any(self.std == 0):
            raise SnnccError("preprocessing std must not be zero")
        if self.t_max is not None and self.t_max < 1:
            raise SnnccError(f"t_max must be >= 1, got {self.t_max}")
        low, high = (float(v) for v in self.raw_range)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise SnnccError(f"raw input range must be finite with low <= high, got "
                             f"{self.raw_range}")
        self.raw_range = (low, high)

    @property
    def is_identity(self) -> bool:
        """Preprocessing is ``x = r``."""
        return self.scale == 1.0 and not np.any(self.mean) and np.all(self.std == 1.0)

    def preprocess(self, raw: np.ndarray) -> np.ndarray:
        """Apply ``(r * scale - mean) / std`` per channel; ``raw`` is ``(batch, *shape)``."""
        extra = (1,) * (len(self.shape) - 1)
        mean = self.mean.reshape((-1,) + extra)
        std = self.std.reshape((-1,) + extra)
        return (np.asarray(raw, dtype=np.float64) * self.scale - mean) / std

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return self.shape

    def integer_ready(self) -> bool:
        """Preprocessing belongs to the encoder; integer mode checks it separately."""
        return True


@dataclass
class Readout(Node):
    """Network output: turns the current arriving at the output neurons into a class decision.

    ``mode="potential"`` (rate-coded networks): non-spiking accumulators, ``a(t) = a(t-1) + x(t)``
    with ``a(-1) = 0`` (saturating in integer mode). The prediction after step ``t`` is
    ``argmax a(t)`` (lowest index on ties). In ANN mode the readout is the identity (logits).

    ``mode="first_spike"`` (single-spike networks): the readout holds non-leaky integrate-and-fire
    neurons that fire at most once, ``v(t) = v(t-1) + x(t)``, spiking when ``v(t) >= threshold``.
    The prediction after step ``t`` is the neuron that spiked first; among neurons first crossing
    at the same step the one with the largest ``v``, then the lowest index. Until any neuron spikes
    the prediction falls back to ``argmax v(t)``.

    ``dv`` (potential mode only; default 0, no leak) makes the accumulators leaky integrators,
    the readout of networks that end in NIR ``LI`` neurons: ``a(t) = a(t-1) * (1 - dv/4096) + x(t)``
    in float mode and ``a(t) = sat(trunc(a(t-1) * (4096 - dv) / 4096) + x(t))`` in integer mode
    (truncation toward zero, as Loihi decays; ``dv`` an integer in 0..4096 there).
    """

    mode: str = "potential"
    threshold: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    dv: float = 0.0
    stateful: ClassVar[bool] = True

    MODES: ClassVar[tuple[str, ...]] = ("potential", "first_spike")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            raise SnnccError(f"unknown readout mode {self.mode!r}; choose from {self.MODES}")
        self.threshold = _array(self.threshold).reshape(-1)
        if isinstance(self.dv, (np.integer, np.floating)):
            self.dv = self.dv.item()
        if not (isinstance(self.dv, (int, float)) and 0 <= self.dv <= DECAY_UNITY):
            raise SnnccError(f"readout decay dv must be in 0..{DECAY_UNITY}, got {self.dv!r}")
        if self.dv and self.mode != "potential":
            raise SnnccError("a leaky readout (dv > 0) needs mode 'potential'")

    def integer_ready(self) -> bool:
        return super().integer_ready() and float(self.dv).is_integer()

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 1:
            raise SnnccError(f"readout expects a vector input, got shape {shape}")
        if self.mode == "first_spike" and self.threshold.size not in (1, shape[0]):
            raise SnnccError(f"readout threshold has {self.threshold.size} values for {shape[0]}")
        return shape


# ------------------------------------------------------------------------------ synaptic operators


@dataclass
class Dense(Node):
    """Fully connected synapses: ``y = W @ x + b``.

    ``weight`` is ``(out_features, in_features)``; ``bias`` is ``(out_features,)`` or ``None``.
    In SNN modes the bias is added at *every* step (a constant current; hardware puts it into the
    neuron's bias). A weight of exactly 0 is an absent synapse (sparse layers store only nonzeros).
    """

    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.weight = _array(self.weight)
        if self.weight.ndim != 2:
            raise SnnccError(f"dense weight must be 2-D, got shape {self.weight.shape}")
        if self.bias is not None:
            self.bias = _array(self.bias).reshape(-1)
            if self.bias.shape[0] != self.weight.shape[0]:
                raise SnnccError(
                    f"dense bias has {self.bias.shape[0]} values for {self.weight.shape[0]} outputs"
                )

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 1 or shape[0] != self.weight.shape[1]:
            raise SnnccError(
                f"dense layer expects ({self.weight.shape[1]},) inputs, got {shape}"
            )
        return (self.weight.shape[0],)


@dataclass
class Conv2d(Node):
    """2-D convolution (cross-correlation, as in ONNX and PyTorch) on ``(C, H, W)`` maps::

        y[o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xpad[g(o)*C/G + c,
                                                            i*stride_h + u*dil_h,
                                                            j*stride_w + v*dil_w]

    ``weight`` is ``(C_out, C_in / groups, kH, kW)``; zero padding ``(top, left, bottom, right)``.
    Output size ``floor((H + top + bottom - dil_h*(kH-1) - 1) / stride_h) + 1``. Bias as in
    :class:`Dense` (added every step).
    """

    weight: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 1, 1)))
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    def __post_init__(self) -> None:
        self.weight = _array(self.weight)
        if self.weight.ndim != 4:
            raise SnnccError(f"conv weight must be 4-D, got shape {self.weight.shape}")
        self.stride = _pair(self.stride)
        self.padding = _quad(self.padding)
        self.dilation = _pair(self.dilation)
        self.groups = int(self.groups)
        if self.groups < 1 or self.weight.shape[0] % self.groups:
            raise SnnccError(f"conv groups {self.groups} do not divide {self.weight.shape[0]}")
        if self.bias is not None:
            self.bias = _array(self.bias).reshape(-1)
            if self.bias.shape[0] != self.weight.shape[0]:
                raise SnnccError("conv bias length differs from output channels")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if len(shape) != 3:
            raise SnnccError(f"conv expects (C, H, W) inputs, got {shape}")
        channels, height, width = shape
        if channels != self.weight.shape[1] * self.groups:
            raise SnnccError(
                f"conv expects {self.weight.shape[1] * self.groups} input channels, got {channels}"
            )
        kernel_h, kernel_w = self.weight.shape[2:]
        out_h = _window_out(height, kernel_h, self.stride[0], self.padding[0] + self.padding[2],
                            self.dilation[0])
        out_w = _window_out(width, kernel_w, self.stride[1], self.padding[1] + self.padding[3],
                            self.dilation[1])
        return (self.weight.shape[0], out_h, out_w)


def _window_out(size: int, kernel: int, stride: int, pad_total: int, dilation: int = 1) -> int:
    out = (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise SnnccError(f"window of {kernel} does not fit an input of {size} (+{pad_total} pad)")
    return out


@dataclass
class SumPool2d(Node):
    """Per-channel window sum: ``y[c, i, j] = scale * sum_{u, v} xpad[c, i*s_h + u, j*s_w + v]``.

    Average pooling is ``SumPool2d`` with ``scale = 1 / (kH * kW)`` (padding counted, as ONNX's
    ``count_include_pad=1``). In integer mode ``scale`` must be 1 (the fold pass moves it into the
    next layer's weights).
    """

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.kernel = _pair(self.kernel)
        self.stride = _pair(self.stride)
        self.padding = _quad(self.padding)
        self.scale = float(self.scale)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return _pool_shape(input_shapes, self.kernel, self.stride, self.padding)


def _pool_shape(input_shapes: list[Shape], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int, int, int]) -> Shape:
    (shape,) = input_shapes
    if len(shape) != 3:
        raise SnnccError(f"pooling expects (C, H, W) inputs, got {shape}")
    channels, height, width = shape
    return (
        channels,
        _window_out(height, kernel[0], stride[0], padding[0] + padding[2]),
        _window_out(width, kernel[1], stride[1], padding[1] + padding[3]),
    )


@dataclass
class MaxPool2d(Node):
    """Max pooling over time-accumulated input (exact max of rates; plain max in ANN mode).

    With ``C(t) = sum_{tau <= t} x(tau)`` the node emits ``y(t) = M(t) - M(t-1)`` where
    ``M(t) = maxpool(C(t))`` and ``M(-1) = 0``. For spike inputs ``y(t)`` is 0/1 (each count grows by
    at most 1 per step, so their max does too) and after ``T`` steps the output count equals the
    largest input count in the window exactly. For a constant input (direct coding) ``y(t)`` is the
    ordinary max pool. Padding is ``-inf`` (never selected).
    """

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    stateful: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self.kernel = _pair(self.kernel)
        self.stride = _pair(self.stride)
        self.padding = _quad(self.padding)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return _pool_shape(input_shapes, self.kernel, self.stride, self.padding)


@dataclass
class Affine(Node):
    """Per-channel scale and shift: ``y[c, ...] = scale[c] * x[c, ...] + bias[c]`` (channel = axis 0).

    Produced for BatchNormalization or Mul/Add by constants that cannot be fused into a neighbouring
    Dense/Conv2d; the fold pass fuses it where possible. Not allowed in integer mode.
    """

    scale: np.ndarray = field(default_factory=lambda: np.ones(1))
    bias: np.ndarray = field(default_factory=lambda: np.zeros(1))

    def __post_init__(self) -> None:
        self.scale = _array(self.scale).reshape(-1)
        self.bias = _array(self.bias).reshape(-1)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        for name, values in (("scale", self.scale), ("bias", self.bias)):
            if values.size not in (1, shape[0]):
                raise SnnccError(f"affine {name} has {values.size} values for {shape[0]} channels")
        return shape


@dataclass
class Add(Node):
    """Elementwise sum of all inputs (residual connections). Inputs must have equal shapes."""

    arity: ClassVar[int | None] = None

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if len(input_shapes) < 2:
            raise SnnccError("add needs at least two inputs")
        if any(s != input_shapes[0] for s in input_shapes):
            raise SnnccError(f"add inputs differ in shape: {input_shapes}")
        return input_shapes[0]


# ----------------------------------------------------------------------------------------- layout


@dataclass
class Flatten(Node):
    """Row-major (C, H, W) -> (C*H*W,), the PyTorch/ONNX NCHW flatten order."""

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        return (int(np.prod(shape)),)


@dataclass
class Reshape(Node):
    """Row-major reshape to ``shape`` (batch excluded); sizes must agree."""

    shape: Shape = ()

    def __post_init__(self) -> None:
        self.shape = tuple(int(s) for s in self.shape)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if math.prod(shape) != math.prod(self.shape):
            raise SnnccError(f"cannot reshape {shape} to {self.shape}")
        return self.shape


@dataclass
class Transpose(Node):
    """Axis permutation ``y = x.transpose(perm)`` over the non-batch axes."""

    perm: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.perm = tuple(int(p) for p in self.perm)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        if sorted(self.perm) != list(range(len(shape))):
            raise SnnccError(f"transpose perm {self.perm} does not fit shape {shape}")
        return tuple(shape[p] for p in self.perm)


# ------------------------------------------------------------------------------ ANN activations


@dataclass
class ReLU(Node):
    """ANN activation ``max(x, 0)``. The convert pass replaces it with :class:`IF` neurons."""

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return input_shapes[0]


@dataclass
class Clip(Node):
    """ANN activation ``clip(x, low, high)`` (clipped ReLU when ``low = 0``; ``high`` may be inf).

    The convert pass maps ``Clip(0, c)`` to IF neurons with threshold ``c`` (rate-norm activations).
    """

    low: float = 0.0
    high: float = math.inf

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        if self.low > self.high:
            raise SnnccError(f"clip low {self.low} exceeds high {self.high}")
        return input_shapes[0]


# ----------------------------------------------------------------------------------------- neurons


@dataclass
class IF(Node):
    """Non-leaky integrate-and-fire neurons, one per input element.

    Per step ``t`` with input current ``x(t)`` (already including any bias)::

        v = v + x(t)                    # saturating to STATE_BITS in integer mode
        s(t) = v >= threshold           # 0/1 spike (firing is not strict: equality fires)
        reset "subtract":  v = v - s(t) * threshold
        reset "zero":      v = v * (1 - s(t))

    ``v`` starts at ``v_init``. With ``fire_once`` a neuron spikes at most once per sample (later
    crossings are ignored; ``v`` keeps integrating). ``threshold`` and ``v_init`` hold one value
    (whole layer), one per channel (axis 0 of the shape) or one per neuron; thresholds are > 0.
    In integer mode both must be integer arrays. The output is the spike tensor ``s(t)``.
    In ANN mode an IF node acts as ``clip(x / threshold, 0, 1)``: the firing rate it approximates
    (Ding et al. 2021), so a converted graph evaluated as an ANN is the clipped ANN it came from.
    """

    threshold: np.ndarray = field(default_factory=lambda: np.ones(1))
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(1))
    reset: str = "subtract"
    fire_once: bool = False
    stateful: ClassVar[bool] = True

    RESETS: ClassVar[tuple[str, ...]] = ("subtract", "zero")

    def __post_init__(self) -> None:
        self.threshold = _array(self.threshold)
        self.v_init = _array(self.v_init)
        if self.threshold.ndim == 0:
            self.threshold = self.threshold.reshape(1)
        if self.v_init.ndim == 0:
            self.v_init = self.v_init.reshape(1)
        if self.reset not in self.RESETS:
            raise SnnccError(f"unknown reset {self.reset!r}; choose from {self.RESETS}")
        if self.threshold.size and not np.all(self.threshold > 0):
            raise SnnccError("IF thresholds must be positive")
        if not np.all(np.isfinite(self.threshold)) or not np.all(np.isfinite(self.v_init)):
            raise SnnccError("IF thresholds and initial potentials must be finite")

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        for name, values in (("threshold", self.threshold), ("v_init", self.v_init)):
            broadcast_per_neuron(values, shape, name)
        return shape


@dataclass
class LIF(Node):
    """Leaky integrate-and-fire neurons (membrane decay only), one per input element.

    ``dv`` is the membrane decay in steps of ``2**-12`` (``beta = 1 - dv / 4096``: ``dv = 0`` never
    leaks, ``dv = 4096`` forgets ``v`` every step). Per step ``t`` with input current ``x(t)``
    (already including any bias), **float mode**::

        v = v * (1 - dv / 4096) + x(t)
        v = v - threshold * s(t-1)          # only with reset_delay (snnTorch's delayed subtract)
        s(t) = v > threshold                # comparison ">" (or v >= threshold with ">=")
        reset "subtract" (not delayed):  v = v - s(t) * threshold
        reset "zero":                    v = v * (1 - s(t))

    ``v`` starts at ``v_init`` and ``s(-1) = 0``. With ``reset_delay`` the threshold is subtracted
    at the step *after* the spike, after that step's decay (so it is not scaled by beta): the
    update snnTorch's ``Leaky(reset_mechanism="subtract")`` executes. For reset "zero" the two
    timings coincide (decaying 0 gives 0), so ``reset_delay`` is stored False there.

    **Integer mode** (Loihi CUBA, bit-exact with lava-nc 0.10's fixed-point ``LIF``): ``dv`` is an
    integer in 0..4096, ``threshold``, ``v_init`` and the input are integers, and the state ``v``
    is a 24-bit integer in units of ``2**-6`` of the input (``LEAKY_SHIFT``)::

        u = wrap(64 * x(t))                                     # see CubaLIF (du = 4096)
        v = clip(trunc(v * (4096 - dv) / 4096) + u - [64 * threshold * s(t-1)],
                 -(2**23 - 1), 2**23 - 1)                         # [..]: reset_delay only
        s(t) = v > 64 * threshold          (">=": v >= 64 * threshold)
        reset "subtract": v = v - 64 * threshold * s(t);  "zero": v = v * (1 - s(t))

    ``trunc`` rounds toward zero (Loihi: ``sign(x) * (|x| * (4096 - d) >> 12)``); ``v`` starts at
    ``64 * v_init``. This is :class:`CubaLIF` with ``du = 4096`` (the current is forgotten every
    step). ``threshold``, ``dv`` and ``v_init`` hold one value (whole layer), one per channel
    (axis 0) or one per neuron; thresholds are > 0. The output is the spike tensor ``s(t)``.
    """

    threshold: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    dv: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    reset: str = "zero"
    reset_delay: bool = False
    comparison: str = ">"
    stateful: ClassVar[bool] = True

    RESETS: ClassVar[tuple[str, ...]] = ("subtract", "zero")
    COMPARISONS: ClassVar[tuple[str, ...]] = (">", ">=")

    def __post_init__(self) -> None:
        _check_leaky(self)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        return _leaky_shape(self, input_shapes)

    @property
    def du(self) -> np.ndarray:
        """The current decay of the equivalent :class:`CubaLIF`: 4096 (no current state)."""
        return np.full(1, DECAY_UNITY, dtype=np.int64)


@dataclass
class CubaLIF(Node):
    """Current-based leaky integrate-and-fire neurons: a decaying synaptic current ``u`` feeds a
    leaky membrane ``v``.

    Decays count ``2**-12`` steps: ``du`` for the current (``alpha = 1 - du / 4096``), ``dv`` for
    the membrane (``beta = 1 - dv / 4096``). Per step ``t``, **float mode**::

        u = u * (1 - du / 4096) + x(t)
        v = v * (1 - dv / 4096) + u
        v = v - threshold * s(t-1)          # only with reset_delay
        s(t) = v > threshold                # or >= with comparison ">="
        reset "subtract" (not delayed): v = v - s(t) * threshold;  "zero": v = v * (1 - s(t))

    ``u`` starts at 0, ``v`` at ``v_init``; the reset never touches ``u``. The membrane reads the
    current *after* this step's update (no delay: as Loihi, snnTorch's ``Synaptic`` and NIR read
    by Norse's importer do).

    **Integer mode** (Loihi CUBA, bit-exact with lava-nc 0.10's fixed-point ``LIF`` with
    ``du_lava = du - 1``, ``dv_lava = dv``): ``du``, ``dv`` integers in 0..4096; ``u`` and ``v``
    24-bit integers in units of ``2**-6`` of the input::

        u = trunc(u * (4096 - du) / 4096) + 64 * x(t)
        u = u - 2**24 if u > 2**23;  u = u + 2**24 if u <= -2**23     # Loihi wraps u (once)
        v = clip(trunc(v * (4096 - dv) / 4096) + u - [64 * threshold * s(t-1)],
                 -(2**23 - 1), 2**23 - 1)                           # v saturates
        s(t) = v > 64 * threshold   (">=": v >= 64 * threshold);  resets as in float mode, x64

    ``trunc`` rounds toward zero. Parameters broadcast as for :class:`LIF`.
    """

    threshold: np.ndarray = field(default_factory=lambda: np.ones(1, np.int64))
    du: np.ndarray = field(default_factory=lambda: np.full(1, DECAY_UNITY, np.int64))
    dv: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    v_init: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    reset: str = "zero"
    reset_delay: bool = False
    comparison: str = ">"
    stateful: ClassVar[bool] = True

    RESETS: ClassVar[tuple[str, ...]] = ("subtract", "zero")
    COMPARISONS: ClassVar[tuple[str, ...]] = (">", ">=")

    def __post_init__(self) -> None:
        self.du = _array(self.du)
        if self.du.ndim == 0:
            self.du = self.du.reshape(1)
        _check_decay(self.du, "du")
        _check_leaky(self)

    def output_shape(self, input_shapes: list[Shape]) -> Shape:
        (shape,) = input_shapes
        broadcast_per_neuron(self.du, shape, "du")
        return _leaky_shape(self, input_shapes)


def _check_decay(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > DECAY_UNITY):
        raise SnnccError(f"decay {what} must be in 0..{DECAY_UNITY} (steps of 2**-12)")


def _check_leaky(node: LIF | CubaLIF) -> None:
    """Shared validation of :class:`LIF` and :class:`CubaLIF` fields."""
    for name in ("threshold", "dv", "v_init"):
        values = _array(getattr(node, name))
        setattr(node, name, values.reshape(1) if values.ndim == 0 else values)
    kind = type(node).__name__
    if node.reset not in node.RESETS:
        raise SnnccError(f"unknown reset {node.reset!r}; choose from {node.RESETS}")
    if node.comparison not in node.COMPARISONS:
        raise SnnccError(f"unknown comparison {node.comparison!r}; choose from {node.COMPARISONS}")
    node.reset_delay = bool(node.reset_delay) and node.reset == "subtract"
    if not np.all(np.isfinite(node.threshold)) or not np.all(np.isfinite(node.v_init)):
        raise SnnccError(f"{kind} thresholds and initial potentials must be finite")
    if node.threshold.size and not np.all(node.threshold > 0):
        raise SnnccError(f"{kind} thresholds must be positive")
    _check_decay(node.dv, "dv")


def _leaky_shape(node: LIF | CubaLIF, input_shapes: list[Shape]) -> Shape:
    (shape,) = input_shapes
    for name in ("threshold", "dv", "v_init"):
        broadcast_per_neuron(getattr(node, name), shape, name)
    return shape


def broadcast_per_neuron(values: np.ndarray, shape: Shape, what: str = "parameter") -> np.ndarray:
    """Expand a per-layer ``(1,)``, per-channel ``(C,)`` or per-neuron ``shape`` array to ``shape``."""
    values = np.asarray(values)
    if values.shape == tuple(shape):
        return values
    if values.size == 1:
        return np.broadcast_to(values.reshape(()), shape)
    if values.ndim == 1 and values.shape[0] == shape[0]:
        return np.broadcast_to(values.reshape((-1,) + (1,) * (len(shape) - 1)), shape)
    raise SnnccError(f"{what} of shape {values.shape} does not fit neurons of shape {tuple(shape)}")


# ------------------------------------------------------------------------------------------- graph

#: Nodes that carry synaptic weights (the ones passes quantize, prune and backends map to synapses).
SYNAPTIC = (Dense, Conv2d)
#: Nodes that only move data around.
LAYOUT = (Flatten, Reshape, Transpose)
#: Leaky spiking neurons (membrane decay; integer mode with Loihi's CUBA rules).
LEAKY: tuple[type[Node], ...] = (LIF, CubaLIF)
#: Spiking neuron models (a membrane that integrates, fires and resets).
NEURONS: tuple[type[Node], ...] = (IF, LIF, CubaLIF)
#: What a synaptic layer can feed: neurons, the readout, or (before conversion) an activation.
LAYER_TARGETS: tuple[type[Node], ...] = NEURONS + (Readout, ReLU, Clip)
#: Nodes whose output is a layer's input events: neurons, spiking pools, the input, activations.
SPIKE_SOURCES: tuple[type[Node], ...] = NEURONS + (MaxPool2d, Input, ReLU, Clip)


@dataclass(frozen=True)
class Layer:
    """One layer: a synaptic node and the neurons it feeds (the one view every pass and backend uses).

    ``name``/``node``: the Dense or Conv2d. ``target_name``/``target``: the first node of
    :data:`LAYER_TARGETS` downstream of it through non-synaptic nodes (an Affine, an Add of a
    residual branch, ...), ``None`` when there is none; ``direct`` is True when that target reads
    the synapse itself and is its only reader (``Dense|Conv2d -> IF|Readout``, what the
    deployment passes and netx require). ``source``: the node the synapse reads.
    ``spike_source``: the nearest node upstream whose output is the layer's input events
    (:data:`SPIKE_SOURCES`, found through layout and pooling nodes). ``upstream``: the synaptic
    nodes (or the Input) whose outputs reach the synapse through non-synaptic nodes.
    """

    name: str
    node: Dense | Conv2d
    target_name: str | None
    target: Node | None
    direct: bool
    source: str
    spike_source: str
    upstream: tuple[str, ...]

    @property
    def is_output(self) -> bool:
        """The layer feeds the readout."""
        return isinstance(self.target, Readout)

    @property
    def channels(self) -> int:
        """Output channels (Dense outputs or Conv2d maps): axis 0 of the weight."""
        return int(self.node.weight.shape[0])


def layers(graph: Graph) -> list[Layer]:
    """Every synaptic node of ``graph`` as a :class:`Layer`, in topological order."""
    found = []
    for name in graph.of_type(*SYNAPTIC):
        target = _downstream_target(graph, name)
        consumers = graph.consumers(name)
        upstream, spike_source = _upstream(graph, name)
        found.append(Layer(
            name=name, node=graph.nodes[name],  # type: ignore[arg-type]
            target_name=target, target=None if target is None else graph.nodes[target],
            direct=consumers == [target], source=graph.inputs_of(name)[0],
            spike_source=spike_source, upstream=tuple(upstream),
        ))
    return found


def _downstream_target(graph: Graph, name: str) -> str | None:
    frontier = graph.consumers(name)
    seen: set[str] = set()
    while frontier:
        current = frontier.pop(0)
        if current in seen:
            continue
        seen.add(current)
        node = graph.nodes[current]
        if isinstance(node, LAYER_TARGETS):
            return current
        if not isinstance(node, SYNAPTIC):
            frontier.extend(graph.consumers(current))
    return None


def _upstream(graph: Graph, name: str) -> tuple[list[str], str]:
    sources: list[str] = []
    spike_source: str | None = None
    stack = list(graph.inputs_of(name))
    seen: set[str] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        node = graph.nodes[current]
        if spike_source is None and isinstance(node, SPIKE_SOURCES):
            spike_source = current
        if isinstance(node, SYNAPTIC + (Input,)):
            if current not in sources:
                sources.append(current)
            continue
        stack.extend(graph.inputs_of(current))
    if spike_source is None:
        spike_source = sources[0] if sources else graph.input_name
    return sources, spike_source


@dataclass
class LayerQuantization:
    """How one synaptic layer's integers are stored (what the quantize pass chose).

    Weights are ``mantissa * 2**weight_exponent`` with ``weight_bits``-bit signed mantissas
    (``weight_bits = 1``: binary +-1 weights); biases are ``m * 2**bias_exponent``.
    ``effective_bits``: the mantissa bits the largest weight really uses.
    """

    weight_exponent: int
    weight_bits: int
    bias_exponent: int = 0
    effective_bits: int | None = None

    def round_bias(self, bias: np.ndarray) -> np.ndarray:
        """``bias`` rounded to this layer's bias grid (integer multiples of ``2**bias_exponent``)."""
        step = 2**self.bias_exponent
        return (np.rint(np.asarray(bias, np.float64) / step) * step).astype(np.int64)


@dataclass
class Quantization:
    """The integer format of a quantized graph: the limits it was quantized for (``target``, a
    name of :data:`snncc.passes.quantize.TARGETS`), the mantissa ``bits`` asked for, and one
    :class:`LayerQuantization` per synaptic layer."""

    target: str
    bits: int
    layers: dict[str, LayerQuantization] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quantization:
        layers = {name: LayerQuantization(**{k: v for k, v in entry.items()
                                             if k in _LAYER_QUANTIZATION_FIELDS})
                  for name, entry in dict(data.get("layers", {})).items()}
        return cls(str(data.get("target", "generic")), int(data.get("bits", 8)), layers)


_LAYER_QUANTIZATION_FIELDS = {f.name for f in dataclasses.fields(LayerQuantization)}


class Graph:
    """A DAG of named IR nodes with ordered inputs.

    ``graph.inputs_of(name)`` lists a node's predecessors in argument order. The graph has exactly
    one :class:`Input` and one output node (a :class:`Readout` after conversion; any sink before).
    ``quantization``: the integer format the quantize pass chose (``None`` before it), read by
    the passes and reports that need it. ``metadata`` carries provenance only (source file,
    producer, dataset hints, applied passes).
    """

    def __init__(self, metadata: dict[str, Any] | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self._inputs: dict[str, list[str]] = {}
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.quantization: Quantization | None = None

    # -- construction ----------------------------------------------------------------------------
    def add(self, name: str, node: Node, inputs: list[str] | str | None = None) -> str:
        """Add ``node`` as ``name`` fed by ``inputs`` (names already in the graph)."""
        if name in self.nodes:
            raise SnnccError(f"duplicate node name {name!r}")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        for source in inputs:
            if source not in self.nodes:
                raise SnnccError(f"node {name!r} reads unknown node {source!r}")
        self.nodes[name] = node
        self._inputs[name] = inputs
        return name

    def chain(self, *named_nodes: tuple[str, Node]) -> Graph:
        """Append nodes one after another, each fed by the previous one (convenience for tests)."""
        previous = next(reversed(self.nodes)) if self.nodes else None
        for name, node in named_nodes:
            self.add(name, node, [previous] if previous is not None else [])
            previous = name
        return self

    def remove(self, name: str) -> None:
        """Remove a node whose output nobody reads."""
        if self.consumers(name):
            raise SnnccError(f"cannot remove {name!r}: {self.consumers(name)} read it")
        del self.nodes[name]
        del self._inputs[name]

    def bypass(self, name: str) -> None:
        """Remove a single-input node, rewiring its consumers to its input."""
        (source,) = self._inputs[name]
        for consumer in self.consumers(name):
            self._inputs[consumer] = [source if s == name else s for s in self._inputs[consumer]]
        del self.nodes[name]
        del self._inputs[name]

    def replace(self, name: str, node: Node) -> None:
        """Swap the node stored under ``name`` keeping its edges."""
        self.nodes[name] = node

    def insert_after(self, name: str, new_name: str, node: Node) -> str:
        """Insert ``node`` between ``name`` and all its consumers."""
        consumers = self.consumers(name)
        self.add(new_name, node, [name])
        for consumer in consumers:
            self._inputs[consumer] = [new_name if s == name else s for s in self._inputs[consumer]]
        return new_name

    def set_inputs(self, name: str, inputs: list[str]) -> None:
        self._inputs[name] = list(inputs)

    def copy(self) -> Graph:
        """Deep copy (arrays included)."""
        clone = Graph(json.loads(json.dumps(self.metadata)))
        if self.quantization is not None:
            clone.quantization = Quantization.from_dict(self.quantization.to_dict())
        for name, node in self.nodes.items():
            clone.nodes[name] = _copy_node(node)
            clone._inputs[name] = list(self._inputs[name])
        return clone

    def fingerprint(self) -> str:
        """SHA-256 of everything the graph holds: nodes with their edges and parameters (arrays by
        dtype, shape and bytes), metadata and quantization. Equal graphs have equal fingerprints."""
        digest = hashlib.sha256(json.dumps(
            [self.metadata, None if self.quantization is None else self.quantization.to_dict()],
            sort_keys=True, default=_json_default).encode())
        for name, node in self.nodes.items():
            digest.update(json.dumps([name, type(node).__name__, self._inputs[name]]).encode())
            for f in dataclasses.fields(node):
                value = getattr(node, f.name)
                if isinstance(value, np.ndarray):
                    digest.update(f"{f.name}:{value.dtype.str}{value.shape}".encode())
                    digest.update(np.ascontiguousarray(value).tobytes())
                else:
                    digest.update(f"{f.name}={value!r}".encode())
        return digest.hexdigest()

    # -- queries ---------------------------------------------------------------------------------
    def inputs_of(self, name: str) -> list[str]:
        return list(self._inputs[name])

    def consumers(self, name: str) -> list[str]:
        return [n for n, sources in self._inputs.items() if name in sources]

    def to_networkx(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        for name, node in self.nodes.items():
            graph.add_node(name, node=node)
        for name, sources in self._inputs.items():
            for source in sources:
                graph.add_edge(source, name)
        return graph

    def topological_order(self) -> list[str]:
        """Node names so that every node comes after its inputs (stable: insertion order)."""
        order_index = {name: i for i, name in enumerate(self.nodes)}
        try:
            return list(
                nx.lexicographical_topological_sort(self.to_networkx(), key=order_index.__getitem__)
            )
        except nx.NetworkXUnfeasible as error:
            raise SnnccError("graph has a cycle") from error

    @property
    def input_name(self) -> str:
        names = [n for n, node in self.nodes.items() if isinstance(node, Input)]
        if len(names) != 1:
            raise SnnccError(f"graph must have exactly one Input node, found {len(names)}")
        return names[0]

    @property
    def input(self) -> Input:
        return self.nodes[self.input_name]  # type: ignore[return-value]

    @property
    def output_name(self) -> str:
        sinks = [n for n in self.nodes if not self.consumers(n)]
        if len(sinks) != 1:
            raise SnnccError(f"graph must have exactly one output, found {sinks}")
        return sinks[0]

    def layers(self) -> list[Layer]:
        """Every synaptic layer with the neurons it feeds (:func:`layers`)."""
        return layers(self)

    def of_type(self, *types: type[Node]) -> list[str]:
        """Names of nodes of the given types, in topological order."""
        return [n for n in self.topological_order() if isinstance(self.nodes[n], types)]

    def infer_shapes(self) -> dict[str, Shape]:
        """Output shape of every node; raises :class:`SnnccError` naming the first bad node."""
        shapes: dict[str, Shape] = {}
        for name in self.topological_order():
            node = self.nodes[name]
            try:
                shapes[name] = tuple(node.output_shape([shapes[s] for s in self._inputs[name]]))
            except SnnccError as error:
                raise SnnccError(f"node {name!r} ({type(node).__name__}): {error}") from None
        return shapes

    def validate(self, integer: bool = False) -> dict[str, Shape]:
        """Check structure and shapes (and integer parameters when ``integer``); return shapes."""
        input_name = self.input_name
        for name, node in self.nodes.items():
            arity = type(node).arity
            count = len(self._inputs[name])
            if arity is not None and count != arity:
                raise SnnccError(f"node {name!r} ({type(node).__name__}) needs {arity} inputs, has {count}")
            if arity is None and count < 2:
                raise SnnccError(f"node {name!r} ({type(node).__name__}) needs 2 or more inputs")
        self.output_name  # noqa: B018 - raises when there is not exactly one sink
        reachable = nx.descendants(self.to_networkx(), input_name) | {input_name}
        unreachable = sorted(set(self.nodes) - reachable)
        if unreachable:
            raise SnnccError(f"nodes not fed by the input: {unreachable}")
        shapes = self.infer_shapes()
        if integer:
            self.check_integer()
        return shapes

    def is_integer(self) -> bool:
        """True when the graph can run in the integer mode (:meth:`check_integer` passes)."""
        try:
            self.check_integer()
        except SnnccError:
            return False
        return True

    def check_integer(self) -> None:
        """Raise unless the graph can run in the integer mode (see module docstring)."""
        for name, node in self.nodes.items():
            kind = type(node).__name__
            if isinstance(node, (ReLU, Clip, Affine)):
                raise SnnccError(f"node {name!r} ({kind}) has no integer semantics; convert/fold first")
            if isinstance(node, SumPool2d) and node.scale != 1.0:
                raise SnnccError(f"node {name!r}: integer mode needs SumPool2d scale 1 (run fold)")
            if isinstance(node, Input) and node.coding == "direct" and not node.is_identity:
                raise SnnccError("integer mode needs identity input preprocessing (run fold)")
            if not node.integer_ready():
                raise SnnccError(f"node {name!r} ({kind}) has non-integer parameters; run fold/quantize")

    def __repr__(self) -> str:
        body = ", ".join(f"{n}:{type(v).__name__}" for n, v in self.nodes.items())
        return f"Graph({body})"

    # -- serialisation ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the graph to one ``.npz`` file: ``manifest.json`` + one ``.npy`` per array.

        Written to a temporary file and renamed, so a failed save leaves nothing behind.
        """
        manifest: dict[str, Any] = {
            "format": IR_FORMAT,
            "version": IR_VERSION,
            "metadata": self.metadata,
            "quantization": None if self.quantization is None else self.quantization.to_dict(),
            "nodes": [],
        }
        arrays: dict[str, np.ndarray] = {}
        for index, (name, node) in enumerate(self.nodes.items()):
            params: dict[str, Any] = {}
            for f in dataclasses.fields(node):
                value = getattr(node, f.name)
                if isinstance(value, np.ndarray):
                    key = f"a{index}_{f.name}"
                    arrays[key] = value
                    params[f.name] = {"array": key}
                elif isinstance(value, float) and not math.isfinite(value):
                    params[f.name] = {"float": repr(value)}
                else:
                    params[f.name] = value
            manifest["nodes"].append(
                {"name": name, "type": type(node).__name__, "inputs": self._inputs[name],
                 "params": params}
            )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", json.dumps(manifest, indent=1, default=_json_default))
            for key, value in arrays.items():
                array_bytes = io.BytesIO()
                np.save(array_bytes, value, allow_pickle=False)
                archive.writestr(f"{key}.npy", array_bytes.getvalue())
        from snncc.util import atomic_write_bytes

        return atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Graph:
        """Read a graph written by :meth:`save`; corrupt or foreign files raise :class:`SnnccError`."""
        from snncc.safety import open_zip, read_member, read_npy

        path = Path(path)
        try:
            with open_zip(path, "snncc IR file") as archive:
                manifest = json.loads(read_member(archive, "manifest.json"))
                if manifest.get("format") != IR_FORMAT:
                    raise SnnccError(f"{path}: not an snncc IR file")
                if manifest.get("version") != IR_VERSION:
                    raise SnnccError(
                        f"{path}: IR version {manifest.get('version')} is not supported "
                        f"(this snncc reads version {IR_VERSION})"
                    )
                graph = cls(manifest.get("metadata"))
                # files before the typed field kept the format under metadata["quantize"]
                recorded = manifest.get("quantization") or graph.metadata.pop("quantize", None)
                if recorded:
                    graph.quantization = Quantization.from_dict(recorded)
                for entry in manifest["nodes"]:
                    node_type = _NODE_TYPES.get(entry["type"])
                    if node_type is None:
                        raise SnnccError(f"{path}: unknown node type {entry['type']!r}")
                    params = {}
                    for key, value in entry["params"].items():
                        if isinstance(value, dict) and "array" in value:
                            params[key] = read_npy(archive, f"{value['array']}.npy")
                        elif isinstance(value, dict) and "float" in value:
                            params[key] = float(value["float"])
                        elif isinstance(value, list):
                            params[key] = tuple(value)
                        else:
                            params[key] = value
                    graph.add(entry["name"], node_type(**params), entry["inputs"])
        except SnnccError:
            raise
        except FileNotFoundError:
            raise SnnccError(f"{path}: no such file") from None
        except (zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError, OSError,
                AttributeError, RecursionError) as error:
            raise SnnccError(f"{path}: corrupt or truncated snncc IR file ({error})") from None
        return graph


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _copy_node(node: Node) -> Node:
    values = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        values[f.name] = value.copy() if isinstance(value, np.ndarray) else value
    return type(node)(**values)


def node_types() -> dict[str, type[Node]]:
    """All IR node classes by name."""
    return dict(_NODE_TYPES)
