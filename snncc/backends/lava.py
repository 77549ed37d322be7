"""Lava backend: the integer graph as lava-nc processes, run in ``Loihi2SimCfg(select_tag="fixed_pt")``.

Mapping (one Lava process per IR node unless said otherwise):

* :class:`~snncc.ir.Input` -> ``lava.proc.io.source.RingBuffer``. Rate/latency coding sends the 0/1
  spikes of :mod:`snncc.coding`; direct coding sends the raw integers themselves as *graded spikes*
  (the next synapse gets ``num_message_bits > 0`` and multiplies the payload by its weights,
  which is exact), so no bias trick is needed.
* :class:`~snncc.ir.Dense` -> ``lava.proc.dense.Dense`` (or ``lava.proc.sparse.Sparse`` when at
  most half the weights are nonzero, as after pruning). :class:`~snncc.ir.Conv2d` ->
  ``lava.proc.conv.Conv`` (weights laid out ``(C_out, W, H, C_in)`` and flipped spatially, since
  Lava's Conv is a true convolution; its fixed-point model applies no ``weight_exp``, so it gets
  the effective integer weights, already checked to be mantissa times ``2**weight_exp``), or
  ``Sparse`` with the unrolled matrix when the padding is asymmetric or the current could pass
  Lava Conv's 24-bit wrapping accumulator.
  :class:`~snncc.ir.SumPool2d` (scale 1) -> a grouped ``Conv`` with an all-ones kernel.
  Biases move into the neurons that consume the current.
* :class:`~snncc.ir.Flatten`, :class:`~snncc.ir.Reshape`, :class:`~snncc.ir.Transpose` -> Lava
  virtual ports (``reshape``/``transpose``); :class:`~snncc.ir.Add` -> several connections into one
  ``InPort`` (Lava sums them); an input that arrives after fewer synapse hops than another first
  passes identity ``Sparse`` delay lines, one step each.
* :class:`~snncc.ir.IF` -> ``lava.proc.lif.LIFReset`` when LIF expresses it exactly (see
  :func:`lif_expressible`), else :class:`snncc.backends.lava_procs.IntegrateAndFire`.
  :class:`~snncc.ir.LIF` / :class:`~snncc.ir.CubaLIF` -> ``LIFReset`` with their ``du``/``dv``
  when Lava's LIF expresses them exactly (:func:`leaky_lif_expressible`), else
  :class:`snncc.backends.lava_procs.LeakyIntegrateAndFire` (the same rules per neuron, with
  delayed subtraction, ``>=`` and ``v_init``).
  :class:`~snncc.ir.MaxPool2d` -> :class:`~snncc.backends.lava_procs.SpikingMaxPool`,
  :class:`~snncc.ir.Readout` -> :class:`~snncc.backends.lava_procs.Readout`.
* Monitors: the custom processes keep what they send in ring-buffer Vars, 0/1 spikes packed 48
  to a word (Lava's ``Var.get`` ships each element as its own message; a sink process per layer
  would also cost messages every step); LIF layers feed a
  :class:`~snncc.backends.lava_procs.SpikeRecorder`; the input raster is the encoded data the
  source RingBuffer sends.

**Delays.** The IR has no delay; Lava's Dense, Sparse and Conv send the *previous* step's
accumulation, so each synapse hop delays by one step. A node's *depth* is the number of synapse
hops between it and the input; IR step ``t`` of a node happens at Lava step ``t + depth`` of its
sample window. Each sample gets a window of ``timesteps + max depth`` Lava steps (the input is
silent in the last ``max depth`` of them), many samples run back to back in one Lava run, and the
custom neurons reset at each window start and act only during their ``timesteps`` active steps
(``lava_procs`` docstring); LIF layers reset through ``LIFReset`` and are silent outside their
active steps because they then get no input and have no bias. Rasters are read back shifted by
each node's depth, so every recorded raster is the IR raster step for step.

**Fixed-point limits** (checked at compile time, naming the layer): weights are an 8-bit Loihi
mantissa times ``2**weight_exp`` (mixed sign: even mantissas in [-256, 254]); thresholds are a
17-bit mantissa times a power of two within the 24-bit state; ``v_init`` and biases fit the
24-bit state; per-step synaptic currents fit Lava's int32 accumulators (24 bits for Conv).
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from snncc import ir, semantics
from snncc.backends import Target
from snncc.errors import SnnccError, UnsupportedError
from snncc.ir import STATE_BITS, STATE_MAX
from snncc.profiles import GRADED_BITS_MAX, graded_bits

LAVA_MISSING = "target 'lava' needs lava-nc: pip install 'snncc[lava]' (Python 3.10)"

# Loihi fixed-point constants (lava-nc 0.10: proc/lif/models.py, utils/weightutils.py).
WEIGHT_MANTISSA_BITS = 8  #: synaptic weight mantissa (sign mode mixed: even values in [-256, 254])
WEIGHT_EXP_RANGE = (-8, 7)  #: shared ``weight_exp`` per synapse process
THRESHOLD_MANTISSA_MAX = 2**17 - 1  #: ``vth`` is a 17-bit unsigned mantissa
LIF_SHIFT = 6  #: LIF left-shifts synaptic input and ``vth`` by 6 bits (MSB alignment)
LIF_VOLTAGE_MAX = (2 ** (STATE_BITS - 1) - 1) >> LIF_SHIFT  #: largest LIF potential in IR units
DECAY_UNITY = 4096  #: 12-bit decays; ``du = 4095`` forgets the current every step
BIAS_MANTISSA_MAX = 2**12 - 1  #: LIF ``bias_mant`` is a 13-bit signed mantissa
ACCUMULATOR_MAX = 2**31 - 1  #: Lava's Dense/Sparse CPU models accumulate in int32
CONV_ACCUMULATOR_MAX = 2**23 - 1  #: Lava's Conv clamps (wraps) its output to 24 bits
SPARSE_DENSITY = 0.5  #: Dense layers with at most this fraction of nonzero weights use Sparse
DEFAULT_BATCH = 32  #: samples per Lava run (one window each)


def require_lava() -> None:
    """Raise the one-line install hint when lava-nc is not installed (without importing it)."""
    try:
        spec = importlib.util.find_spec("lava.magma.core.run_configs")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise SnnccError(LAVA_MISSING)


# ``snncc.backends.get_target("lava")`` fails here, before any compile work, without lava-nc.
require_lava()


# ------------------------------------------------------------------------------------ the plan


@dataclass
class WeightCode:
    """An integer weight matrix as Lava stores it: ``effective = mantissa * 2**weight_exp``."""

    mantissa: np.ndarray
    weight_exp: int
    sign_mode: str  # "mixed" | "excitatory" | "inhibitory"


@dataclass
class NodePlan:
    """How one IR node maps to Lava: its kind, delay depth and what its output carries."""

    kind: str
    depth: int
    shape: tuple[int, ...]
    graded: bool  #: output is a graded value (current or raw input), not 0/1 spikes
    bits: int = 0  #: graded payload width
    low: float = 0.0  #: bounds of any output element (for range checks)
    high: float = 1.0
    bias: np.ndarray | None = None  #: bias current carried to the consuming neurons
    weights: WeightCode | None = None
    use_lif: bool = False
    delays: list[int] = field(default_factory=list)  #: Add: one-step hops to insert per input
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Compile-time result: per-node mapping, the sample window length and spiking layers."""

    graph: ir.Graph
    timesteps: int
    nodes: dict[str, NodePlan]
    window: int
    spiking: list[str]  #: nodes whose rasters are recorded (IF, MaxPool2d, spiking Input)
    readout: str


def encode_weights(weight: np.ndarray, layer: str) -> WeightCode:
    """Split integer weights into an 8-bit Loihi mantissa and a shared exponent, exactly.

    Excitatory/inhibitory layers use mantissas in [0, 255] / [-255, 0]; mixed-sign layers use even
    mantissas ``2m`` with ``m`` in [-128, 127] and the effective weight ``m * 2**(exp + 1)``.
    Raises naming the layer when no exponent in ``WEIGHT_EXP_RANGE`` represents every weight.
    """
    weight = np.asarray(weight).astype(np.int64)
    low, high = int(weight.min(initial=0)), int(weight.max(initial=0))
    if low >= 0 or high <= 0:
        sign_mode = "excitatory" if low >= 0 else "inhibitory"
        for exp in range(0, WEIGHT_EXP_RANGE[1] + 1):
            if np.all(weight % (1 << exp) == 0) and np.abs(weight).max(initial=0) >> exp <= 255:
                return WeightCode((weight >> exp).astype(np.int32), exp, sign_mode)
    else:
        for exp in range(-1, WEIGHT_EXP_RANGE[1] + 1):
            step = 1 << (exp + 1)
            if np.all(weight % step == 0) and -128 <= low // step and high // step <= 127:
                return WeightCode((2 * (weight // step)).astype(np.int32), exp, "mixed")
    largest = max(abs(low), abs(high))
    raise UnsupportedError(
        f"layer {layer!r}: weights up to {largest} do not fit Lava's {WEIGHT_MANTISSA_BITS}-bit "
        f"weight mantissa with a shared exponent <= {WEIGHT_EXP_RANGE[1]} "
        "(run the quantize pass for the lava target)"
    )


def threshold_misfit(threshold: np.ndarray) -> int | None:
    """The first threshold that is not a 17-bit mantissa times 2**k inside the 24-bit state."""
    for value in np.unique(np.asarray(threshold).astype(np.int64)):
        value = int(value)
        if value > STATE_MAX:
            return value
        shift = (value & -value).bit_length() - 1
        if value >> shift > THRESHOLD_MANTISSA_MAX:
            return value
    return None


def _check_state(values: np.ndarray | None, layer: str, what: str) -> None:
    if values is None:
        return
    values = np.asarray(values)
    if values.size and (values.min() < ir.STATE_MIN or values.max() > STATE_MAX):
        worst = int(values.max()) if values.max() > STATE_MAX else int(values.min())
        raise UnsupportedError(
            f"layer {layer!r}: {what} {worst} is outside Lava's 24-bit state "
            f"[{ir.STATE_MIN}, {STATE_MAX}]"
        )


def lif_expressible(node: ir.IF, bias: np.ndarray | None, low: float, high: float,
                    timesteps: int) -> tuple[bool, str]:
    """Can Lava's fixed-point LIF compute this IF layer exactly? Returns (yes, reason if not).

    LIF with ``du = 4095`` (current forgotten each step), ``dv = 0`` (no leak), ``bias = 0`` and
    ``vth = threshold - 1`` computes ``v += 64 * x; spike if v > 64 * vth; v = 0 on spike``, i.e.
    the IR's reset-to-zero IF in units of ``2**6``. That needs reset "zero", no fire-once, one
    threshold for the layer, ``v_init = 0``, no bias (a bias would act outside the sample's active
    steps) and potentials that provably stay within LIF's ``(2**23 - 1) >> 6`` (so neither LIF's
    nor the IR's saturation ever acts): ``threshold - 1 + max input <= 131071`` and
    ``timesteps * max negative input <= 131071``.
    """
    threshold = np.unique(np.asarray(node.threshold))
    if node.reset != "zero":
        return False, "reset by subtraction"
    if node.fire_once:
        return False, "fire-once"
    if threshold.size != 1:
        return False, "per-neuron thresholds"
    if np.any(np.asarray(node.v_init) != 0):
        return False, "nonzero v_init"
    if bias is not None and np.any(bias != 0):
        return False, "bias"
    if int(threshold[0]) - 1 > THRESHOLD_MANTISSA_MAX:
        return False, "threshold beyond the 17-bit vth"
    if int(threshold[0]) - 1 + high > LIF_VOLTAGE_MAX or -low * timesteps > LIF_VOLTAGE_MAX:
        return False, "potential may leave LIF's range"
    return True, ""


def leaky_lif_expressible(node: ir.LIF | ir.CubaLIF, bias: np.ndarray | None, low: float,
                          high: float) -> tuple[bool, str]:
    """Can Lava's own fixed-point ``LIFReset`` compute this leaky layer exactly? (yes, reason)

    Lava's LIF is the IR's integer leaky rule (:class:`snncc.ir.CubaLIF`) with one ``vth``,
    ``du`` (register ``du - 1``, so ``du >= 1``) and ``dv <= 4095`` per process, ``v > vth``,
    reset to zero in the spiking step, ``v`` starting at 0, and the bias added to ``v``
    (``bias_mant * 2**6``, 13-bit signed mantissa) instead of the current: the same as the IR's
    bias on a LIF's current (``du = 4096``) while ``64 * (|x| + |bias|)`` cannot wrap ``u``; a
    CubaLIF's current keeps its bias, so it needs none.
    """
    if node.reset != "zero":
        return False, "reset by subtraction"
    if node.comparison != ">":
        return False, "spikes on v >= threshold"
    if np.any(np.asarray(node.v_init) != 0):
        return False, "nonzero v_init"
    for what in ("threshold", "du", "dv"):
        if np.unique(np.asarray(getattr(node, what))).size != 1:
            return False, f"per-neuron {what}"
    if int(np.min(node.du)) < 1 or int(np.max(node.dv)) > DECAY_UNITY - 1:
        return False, "du = 0 or dv = 4096 (Lava's 12-bit registers)"
    if int(np.max(node.threshold)) > THRESHOLD_MANTISSA_MAX:
        return False, "threshold beyond the 17-bit vth"
    if bias is not None and np.any(bias != 0):
        if isinstance(node, ir.CubaLIF):
            return False, "a bias on the CubaLIF current"
        peak = float(np.abs(bias).max())
        if peak > BIAS_MANTISSA_MAX or (max(abs(low), abs(high)) + peak) > LIF_VOLTAGE_MAX:
            return False, "bias beyond the 13-bit mantissa or a current that may wrap"
    return True, ""


def _current_bounds(weight_rows: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """Bounds of ``W @ x`` over inputs in [low, high]; ``weight_rows`` is (out, fan-in)."""
    weights = weight_rows.astype(np.float64)
    upper = np.maximum(weights * low, weights * high).sum(axis=1)
    lower = np.minimum(weights * low, weights * high).sum(axis=1)
    return float(lower.min(initial=0)), float(upper.max(initial=0))


def _direct_range(graph: ir.Graph) -> tuple[float, float]:
    # Direct coding sends the raw integers themselves: the graded spikes must hold that range.
    return graph.input.raw_range


def conv_matrix(node: ir.Conv2d | ir.SumPool2d, in_shape: tuple[int, int, int],
                out_shape: tuple[int, int, int]) -> Any:
    """The layer as a sparse ``(out, in)`` matrix over row-major (C, H, W) neurons."""
    from scipy.sparse import coo_matrix

    if isinstance(node, ir.SumPool2d):
        channels = in_shape[0]
        weight = np.zeros((channels, 1) + node.kernel, dtype=np.int64)
        weight[:, 0] = 1
        stride, padding, dilation, groups = node.stride, node.padding, (1, 1), channels
    else:
        weight = np.asarray(node.weight).astype(np.int64)
        stride, padding, dilation, groups = node.stride, node.padding, node.dilation, node.groups
    c_out, c_in_group, k_h, k_w = weight.shape
    _, height, width = in_shape
    _, out_h, out_w = out_shape
    o, c, u, v, i, j = np.meshgrid(np.arange(c_out), np.arange(c_in_group), np.arange(k_h),
                                   np.arange(k_w), np.arange(out_h), np.arange(out_w),
                                   indexing="ij")
    row = i * stride[0] + u * dilation[0] - padding[0]
    col = j * stride[1] + v * dilation[1] - padding[1]
    channel = (o // (c_out // groups)) * c_in_group + c
    values = weight[o, c, u, v]
    keep = (row >= 0) & (row < height) & (col >= 0) & (col < width) & (values != 0)
    dst = (o * out_h + i) * out_w + j
    src = (channel * height + row) * width + col
    matrix = coo_matrix((values[keep], (dst[keep], src[keep])),
                        shape=(c_out * out_h * out_w, in_shape[0] * height * width))
    return matrix.tocsr()


def plan(graph: ir.Graph, timesteps: int, use_lif: bool = True) -> Plan:
    """Check that Lava can run ``graph`` exactly and decide every node's mapping (no lava needed)."""
    if timesteps < 1:
        raise SnnccError(f"timesteps must be >= 1, got {timesteps}")
    shapes = graph.validate(integer=True)
    nodes: dict[str, NodePlan] = {}
    spiking: list[str] = []
    readouts = graph.of_type(ir.Readout)
    if len(readouts) != 1 or graph.output_name != readouts[0]:
        raise UnsupportedError("target 'lava' needs a converted graph ending in one Readout")
    for name in graph.topological_order():
        node = graph.nodes[name]
        shape = shapes[name]
        sources = graph.inputs_of(name)
        inputs = [nodes[s] for s in sources]
        first = inputs[0] if inputs else None
        kind = type(node).__name__
        if isinstance(node, (ir.Dense, ir.Conv2d, ir.SumPool2d, ir.MaxPool2d)) and first.bias is not None:
            raise UnsupportedError(
                f"layer {name!r} ({kind}): its input carries a bias from {sources[0]!r}; Lava "
                "puts biases into neurons, so a bias must feed IF neurons or the readout directly"
            )
        if isinstance(node, ir.Input):
            if node.coding == "direct":
                low, high = _direct_range(graph)
                nodes[name] = NodePlan("source", 0, shape, True, graded_bits(low, high), low, high)
            else:
                nodes[name] = NodePlan("source", 0, shape, False)
                spiking.append(name)
        elif isinstance(node, ir.Dense):
            code = encode_weights(node.weight, name)
            low, high = _current_bounds(np.asarray(node.weight), first.low, first.high)
            mantissa_sum = max(abs(low), abs(high)) * (2 if code.weight_exp < 0 else 1)
            if mantissa_sum > ACCUMULATOR_MAX:
                raise UnsupportedError(
                    f"layer {name!r}: synaptic current may reach {mantissa_sum:.0f}, beyond Lava "
                    f"Dense's int32 accumulator ({ACCUMULATOR_MAX})"
                )
            density = np.count_nonzero(node.weight) / max(node.weight.size, 1)
            nodes[name] = NodePlan("sparse" if density <= SPARSE_DENSITY else "dense",
                                   first.depth + 1, shape, True, 24, low, high,
                                   bias=_bias(node.bias, shape), weights=code)
        elif isinstance(node, (ir.Conv2d, ir.SumPool2d)):
            if isinstance(node, ir.SumPool2d):
                fan = np.ones((1, node.kernel[0] * node.kernel[1]))
                code = WeightCode(np.ones(1, dtype=np.int32), 0, "excitatory")
                bias = None
            else:
                fan = np.asarray(node.weight).reshape(node.weight.shape[0], -1)
                code = encode_weights(node.weight, name)
                bias = _bias(node.bias, shape)
            low, high = _current_bounds(fan, first.low, first.high)
            top, left, bottom, right = node.padding
            symmetric = top == bottom and left == right
            fits = max(abs(low), abs(high)) <= CONV_ACCUMULATOR_MAX
            lava_kind = "conv" if symmetric and fits else "conv_sparse"
            plan_node = NodePlan(lava_kind, first.depth + 1, shape, True, 24, low, high,
                                 bias=bias, weights=code)
            if not symmetric:
                plan_node.notes.append("asymmetric padding: unrolled into Sparse")
            elif not fits:
                plan_node.notes.append("current may pass Conv's 24-bit accumulator: Sparse")
            if max(abs(low), abs(high)) > ACCUMULATOR_MAX:
                raise UnsupportedError(
                    f"layer {name!r}: synaptic current may reach {max(abs(low), abs(high)):.0f}, "
                    f"beyond Lava's int32 accumulator ({ACCUMULATOR_MAX})"
                )
            nodes[name] = plan_node
        elif isinstance(node, (ir.Flatten, ir.Reshape, ir.Transpose)):
            nodes[name] = NodePlan("layout", first.depth, shape, first.graded, first.bits,
                                   first.low, first.high,
                                   bias=_layout_bias(node, first.bias, shapes[sources[0]]))
        elif isinstance(node, ir.Add):
            depth = max(p.depth for p in inputs)
            biases = [p.bias for p in inputs if p.bias is not None]
            plan_node = NodePlan(
                "add", depth, shape, True, 24, sum(p.low for p in inputs),
                sum(p.high for p in inputs), bias=sum(biases) if biases else None,
                delays=[depth - p.depth for p in inputs])
            if any(plan_node.delays):
                plan_node.notes.append(f"identity Sparse delay lines of {plan_node.delays} steps")
            nodes[name] = plan_node
        elif isinstance(node, ir.IF):
            threshold = ir.broadcast_per_neuron(node.threshold, shape, "threshold")
            v_init = ir.broadcast_per_neuron(node.v_init, shape, "v_init")
            misfit = threshold_misfit(threshold)
            if misfit is not None:
                raise UnsupportedError(
                    f"layer {name!r}: threshold {misfit} is not a 17-bit mantissa "
                    f"(<= {THRESHOLD_MANTISSA_MAX}) times a power of two within the 24-bit state "
                    f"(<= {STATE_MAX})"
                )
            _check_state(v_init, name, "v_init")
            _check_state(first.bias, name, "bias")
            lif, reason = lif_expressible(node, first.bias, first.low, first.high, timesteps)
            plan_node = NodePlan("lif" if (use_lif and lif) else "if", first.depth, shape, False,
                                 use_lif=use_lif and lif)
            if not plan_node.use_lif:
                plan_node.notes.append(f"custom IntegrateAndFire ({reason or 'LIF disabled'})")
            nodes[name] = plan_node
            spiking.append(name)
        elif isinstance(node, ir.LEAKY):
            v_init = ir.broadcast_per_neuron(node.v_init, shape, "v_init")
            _check_state(np.asarray(v_init, np.int64) << ir.LEAKY_SHIFT, name, "v_init * 64")
            _check_state(first.bias, name, "bias")
            lif, reason = leaky_lif_expressible(node, first.bias, first.low, first.high)
            plan_node = NodePlan("leaky_lif" if (use_lif and lif) else "leaky", first.depth,
                                 shape, False, use_lif=use_lif and lif)
            if not plan_node.use_lif:
                plan_node.notes.append(f"custom LeakyIntegrateAndFire ({reason or 'LIF disabled'})")
            nodes[name] = plan_node
            spiking.append(name)
        elif isinstance(node, ir.MaxPool2d):
            if max(abs(first.low), abs(first.high)) * timesteps > STATE_MAX:
                raise UnsupportedError(
                    f"layer {name!r}: input counts may reach "
                    f"{max(abs(first.low), abs(first.high)) * timesteps:.0f} in {timesteps} steps, "
                    f"beyond the 24-bit counter ({STATE_MAX})"
                )
            nodes[name] = NodePlan("maxpool", first.depth, shape, first.graded, first.bits,
                                   first.low, first.high)
            spiking.append(name)
        elif isinstance(node, ir.Readout):
            _check_state(first.bias, name, "bias")
            threshold = ir.broadcast_per_neuron(node.threshold, shape, "threshold")
            if node.mode == "first_spike":
                _check_state(threshold, name, "threshold")
            nodes[name] = NodePlan("readout", first.depth, shape, True, 24)
        else:
            raise UnsupportedError(
                f"layer {name!r}: {kind} has no Lava mapping (supported: Input, Dense, Conv2d, "
                "SumPool2d, MaxPool2d, Flatten, Reshape, Transpose, Add, IF, LIF, CubaLIF, "
                "Readout)"
            )
    readout = readouts[0]
    depth = max(p.depth for p in nodes.values())
    return Plan(graph, timesteps, nodes, timesteps + depth, spiking, readout)


def _bias(bias: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if bias is None or not np.any(bias):
        return None
    return ir.broadcast_per_neuron(np.asarray(bias).astype(np.int64), shape, "bias").copy()


def _layout_bias(node: ir.Node, bias: np.ndarray | None,
                 in_shape: tuple[int, ...]) -> np.ndarray | None:
    if bias is None:
        return None
    if isinstance(node, ir.Transpose):
        return np.transpose(bias.reshape(in_shape), node.perm)
    return bias.reshape(node.output_shape([in_shape]))


# ----------------------------------------------------------------------------------- building


@dataclass
class Monitor:
    """A Var holding what a node sent each Lava step: ``(words, steps)`` packed 0/1 spikes or
    ``(*shape, steps)`` values."""

    var: Any
    packed: bool

    def read(self, shape: tuple[int, ...]) -> np.ndarray:
        """``(*shape, steps)`` values (one ``Var.get``; packing keeps it to few messages)."""
        from snncc.backends.lava_procs import unpack_spikes

        data = np.asarray(self.var.get())
        if self.packed:
            data = unpack_spikes(data, int(np.prod(shape)))
        return data.reshape(tuple(shape) + (data.shape[-1],))


@dataclass
class LavaNetwork:
    """Connected Lava processes for one batch of sample windows (see :func:`build`)."""

    plan: Plan
    batch: int
    source: Any  #: lava.proc.io.source.RingBuffer; its ``data`` is ``(*input shape, batch*window)``
    processes: dict[str, Any]  #: IR node name -> the Lava process computing it
    monitors: dict[str, Monitor]  #: spiking node (the input excluded) -> what it sent
    readout_state: Any  #: Var ``(classes, steps)``: the readout state after each Lava step
    readout_decision: Any  #: Var ``(1, steps)``: the decision after each Lava step

    @property
    def steps(self) -> int:
        """Lava steps for one batch."""
        return self.batch * self.plan.window


def _input_steps(plan: Plan, encoded: np.ndarray, batch: int) -> np.ndarray:
    """Lay ``encoded`` (T, n, *shape) out as RingBuffer data ``(*shape, batch * window)``."""
    timesteps, count = encoded.shape[:2]
    shape = encoded.shape[2:]
    data = np.zeros((batch, plan.window) + shape, dtype=np.int32)
    data[:count, :timesteps] = np.moveaxis(encoded, 0, 1)
    data = data.reshape((batch * plan.window,) + shape)
    return np.ascontiguousarray(np.moveaxis(data, 0, -1))


def build(graph: ir.Graph, timesteps: int, encoded: np.ndarray | None = None,
          batch: int = 1, use_lif: bool = True) -> LavaNetwork:
    """Build the Lava processes computing ``graph``, connected and ready to run.

    ``encoded`` is the batch of encoded inputs ``(timesteps, n <= batch, *input shape)`` (spikes,
    or raw integers for direct coding; see :func:`encode`); zeros when omitted. One run of
    ``network.steps`` Lava steps processes the ``batch`` sample windows.
    """
    require_lava()
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode
    from scipy.sparse import identity

    from snncc.backends import lava_procs

    lava_plan = plan(graph, timesteps, use_lif=use_lif)
    shapes = {name: p.shape for name, p in lava_plan.nodes.items()}
    window = lava_plan.window
    steps = batch * window
    input_name = graph.input_name
    if encoded is None:
        encoded = np.zeros((timesteps, batch) + shapes[input_name], dtype=np.int32)
    sign_modes = {"mixed": SignMode.MIXED, "excitatory": SignMode.EXCITATORY,
                  "inhibitory": SignMode.INHIBITORY}

    processes: dict[str, Any] = {}
    outputs: dict[str, list[Any]] = {}  # node -> ports (or virtual ports) carrying its output

    def connect(name: str, port: Any, shape: tuple[int, ...], layout: str = "chw") -> None:
        for source in outputs[name]:
            if layout == "whc":
                source = source.reshape(shapes[name]) if source.shape != shapes[name] else source
                source = source.transpose((2, 1, 0))
            elif tuple(source.shape) != tuple(shape):
                source = source.reshape(tuple(shape))
            source.connect(port)

    def windowed(name: str) -> dict[str, int]:
        return {"period": window, "active_start": lava_plan.nodes[name].depth,
                "active_steps": timesteps}

    for name in graph.topological_order():
        node = graph.nodes[name]
        node_plan = lava_plan.nodes[name]
        sources = graph.inputs_of(name)
        shape = shapes[name]
        message_bits = lava_plan.nodes[sources[0]].bits if sources else 0
        if sources and not lava_plan.nodes[sources[0]].graded:
            message_bits = 0
        if node_plan.kind == "source":
            process = Source(data=_input_steps(lava_plan, encoded, batch))
            outputs[name] = [process.s_out]
        elif node_plan.kind in ("dense", "sparse"):
            code = node_plan.weights
            kwargs = dict(weight_exp=code.weight_exp, num_weight_bits=WEIGHT_MANTISSA_BITS,
                          sign_mode=sign_modes[code.sign_mode], num_message_bits=message_bits,
                          name=name)
            if node_plan.kind == "dense":
                process = Dense(weights=code.mantissa, **kwargs)
            else:
                from scipy.sparse import csr_matrix

                process = Sparse(weights=csr_matrix(code.mantissa), **kwargs)
            connect(sources[0], process.s_in, (code.mantissa.shape[1],))
            outputs[name] = [process.a_out]
        elif node_plan.kind == "conv":
            in_shape = shapes[sources[0]]
            if isinstance(node, ir.SumPool2d):
                weight = np.zeros((in_shape[0],) + node.kernel[::-1] + (1,), dtype=np.int32)
                weight[...] = 1
                groups, dilation = in_shape[0], (1, 1)
            else:
                # Lava's Conv convolves (flips the kernel) on (W, H, C) maps: flip and transpose.
                weight = np.asarray(node.weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
                weight = np.ascontiguousarray(weight).astype(np.int32)
                groups, dilation = node.groups, node.dilation
            process = Conv(weight=weight, input_shape=in_shape[::-1],
                           padding=(node.padding[1], node.padding[0]),
                           stride=node.stride[::-1], dilation=dilation[::-1], groups=groups,
                           num_message_bits=message_bits, name=name)
            connect(sources[0], process.s_in, in_shape[::-1], layout="whc")
            outputs[name] = [process.a_out.transpose((2, 1, 0))]
        elif node_plan.kind == "conv_sparse":
            matrix = conv_matrix(node, shapes[sources[0]], shape)
            code = node_plan.weights
            if isinstance(node, ir.SumPool2d):
                kwargs = dict(weight_exp=0, sign_mode=SignMode.EXCITATORY)
            else:
                matrix.data = encode_weights(matrix.data, name).mantissa
                kwargs = dict(weight_exp=code.weight_exp, sign_mode=sign_modes[code.sign_mode])
            process = Sparse(weights=matrix, num_weight_bits=WEIGHT_MANTISSA_BITS,
                             num_message_bits=message_bits, name=name, **kwargs)
            connect(sources[0], process.s_in, (matrix.shape[1],))
            outputs[name] = [process.a_out.reshape(shape)]
        elif node_plan.kind == "layout":
            if isinstance(node, ir.Transpose):
                outputs[name] = [p.reshape(shapes[sources[0]]).transpose(node.perm)
                                 for p in outputs[sources[0]]]
            else:
                outputs[name] = [p.reshape(shape) for p in outputs[sources[0]]]
            continue
        elif node_plan.kind == "add":
            outputs[name] = []
            for source, delay in zip(sources, node_plan.delays, strict=True):
                ports = outputs[source]
                size = int(np.prod(shapes[source]))
                for hop in range(delay):
                    # Branches meet only when they arrive after the same number of synaptic
                    # delays: an identity Sparse is a one-step delay line.
                    graded = hop > 0 or lava_plan.nodes[source].graded
                    line = Sparse(weights=identity(size, dtype=np.int32, format="csr"),
                                  weight_exp=0, num_weight_bits=WEIGHT_MANTISSA_BITS,
                                  sign_mode=SignMode.EXCITATORY,
                                  num_message_bits=GRADED_BITS_MAX if graded else 0,
                                  name=f"{name}:delay{hop}:{source}")
                    for port in ports:
                        (port.reshape((size,)) if tuple(port.shape) != (size,) else port
                         ).connect(line.s_in)
                    ports = [line.a_out.reshape(shapes[source])]
                outputs[name] += [p.reshape(shape) if tuple(p.shape) != shape else p
                                  for p in ports]
            continue
        elif node_plan.kind == "lif":
            (threshold,) = np.unique(np.asarray(node.threshold))
            process = LIFReset(shape=shape, du=DECAY_UNITY - 1, dv=0, vth=int(threshold) - 1,
                               bias_mant=0, bias_exp=0, reset_interval=window,
                               reset_offset=1 % window, name=name)
            connect(sources[0], process.a_in, shape)
            outputs[name] = [process.s_out]
        elif node_plan.kind == "if":
            bias = lava_plan.nodes[sources[0]].bias
            process = lava_procs.IntegrateAndFire(
                shape=shape,
                threshold=ir.broadcast_per_neuron(node.threshold, shape, "threshold"),
                v_init=ir.broadcast_per_neuron(node.v_init, shape, "v_init"),
                bias=np.zeros(shape, dtype=np.int64) if bias is None else bias,
                reset=node.reset, fire_once=node.fire_once, record_steps=steps, name=name,
                **windowed(name))
            connect(sources[0], process.a_in, shape)
            outputs[name] = [process.s_out]
        elif node_plan.kind == "leaky_lif":
            bias = lava_plan.nodes[sources[0]].bias
            process = LIFReset(
                shape=shape, du=int(np.min(node.du)) - 1, dv=int(np.max(node.dv)),
                vth=int(np.max(node.threshold)),
                bias_mant=np.zeros(shape, np.int32) if bias is None else bias.astype(np.int32),
                bias_exp=ir.LEAKY_SHIFT, reset_interval=window,
                # reset at the first active step: a bias integrated before it is discarded
                reset_offset=(node_plan.depth + 1) % window, name=name)
            connect(sources[0], process.a_in, shape)
            outputs[name] = [process.s_out]
        elif node_plan.kind == "leaky":
            bias = lava_plan.nodes[sources[0]].bias
            process = lava_procs.LeakyIntegrateAndFire(
                shape=shape,
                **{key: ir.broadcast_per_neuron(getattr(node, key), shape, key)
                   for key in ("threshold", "du", "dv", "v_init")},
                bias=np.zeros(shape, dtype=np.int64) if bias is None else bias,
                reset=node.reset, reset_delay=node.reset_delay, comparison=node.comparison,
                record_steps=steps, name=name, **windowed(name))
            connect(sources[0], process.a_in, shape)
            outputs[name] = [process.s_out]
        elif node_plan.kind == "maxpool":
            process = lava_procs.SpikingMaxPool(
                in_shape=shapes[sources[0]], out_shape=shape, kernel=node.kernel,
                stride=node.stride, padding=node.padding, record_steps=steps,
                binary=not node_plan.graded, name=name,
                **windowed(name))
            connect(sources[0], process.a_in, shapes[sources[0]])
            outputs[name] = [process.s_out]
        elif node_plan.kind == "readout":
            bias = lava_plan.nodes[sources[0]].bias
            process = lava_procs.Readout(
                shape=shape, mode=node.mode,
                threshold=ir.broadcast_per_neuron(node.threshold, shape, "threshold"),
                bias=np.zeros(shape, dtype=np.int64) if bias is None else bias,
                record_steps=steps, dv=int(node.dv), name=name, **windowed(name))
            connect(sources[0], process.a_in, shape)
            outputs[name] = []
        else:  # pragma: no cover - plan() rejects everything else
            raise UnsupportedError(f"layer {name!r}: no Lava mapping")
        processes[name] = process

    # What each spiking node sent, per Lava step: the custom processes keep it in their own ring
    # buffer Var (0/1 spikes packed 48 per word, see lava_procs.pack_spikes), Lava's LIF feeds a
    # SpikeRecorder; the input raster is the encoded data the source RingBuffer sends.
    monitors = {}
    for name in lava_plan.spiking:
        process = processes[name]
        kind = lava_plan.nodes[name].kind
        if kind in ("lif", "leaky_lif"):
            recorder = lava_procs.SpikeRecorder(shape=shapes[name], record_steps=steps,
                                                name=f"{name}:monitor")
            process.s_out.connect(recorder.a_in)
            monitors[name] = Monitor(recorder.spikes, True)
        elif kind in ("if", "leaky", "maxpool"):
            monitors[name] = Monitor(process.spikes, not lava_plan.nodes[name].graded)
    readout = processes[lava_plan.readout]
    source = processes[input_name]
    return LavaNetwork(lava_plan, batch, source, processes, monitors, readout.states,
                       readout.decisions)


# ------------------------------------------------------------------------------------- running


def encode(graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int) -> np.ndarray:
    """What the network sees at each step, ``(timesteps, N, *shape)`` int32 (see :class:`ir.Input`).

    :func:`snncc.semantics.encode_input` in integer mode (direct coding: the raw integers at every
    step, checked against the range the mapping was built for; rate and latency coding: 0/1
    spikes, sample ``k`` drawing its rate uniforms from index ``k`` of ``raw_inputs``).
    """
    node = graph.input
    raw = np.asarray(raw_inputs)
    if raw.shape[1:] != node.shape:
        raise SnnccError(f"inputs have shape {raw.shape[1:]}, the graph expects {node.shape}")
    if node.coding == "direct":
        if raw.dtype.kind not in "iub" and not np.all(raw == np.round(raw)):
            raise SnnccError("direct-coded integer inputs must be integers")
        low, high = _direct_range(graph)
        if raw.size and (raw.min() < low or raw.max() > high):
            raise SnnccError(
                f"direct-coded inputs span [{raw.min()}, {raw.max()}] but the Lava mapping was "
                f"checked for [{low:.0f}, {high:.0f}] (the Input's raw_range)"
            )
    return semantics.encode_input(node, raw, timesteps, integer=True).astype(np.int32)


@dataclass
class LavaRun:
    """Everything read back from Lava for ``N`` samples (IR step order, depth shifts undone)."""

    rasters: dict[str, np.ndarray]  #: (T, N, *shape) uint8 per spiking node
    readout_state: np.ndarray  #: (T, N, classes) readout potentials after each step
    decisions: np.ndarray  #: (T, N) class decided after each step
    seconds: float  #: wall time of the Lava runs (building and compiling included)


def execute(graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int,
            batch_size: int = DEFAULT_BATCH, use_lif: bool = True,
            progress: Callable[[int], None] | None = None) -> LavaRun:
    """Run ``raw_inputs`` through Lava, ``batch_size`` sample windows per Lava network and run.

    Each batch gets a freshly built network whose source RingBuffer is initialised with that
    batch's inputs (``Var.set`` would ship every input value as its own message); after the run
    every monitor is read back once and the windows are cut apart, undoing each node's delay.
    """
    require_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    started = time.perf_counter()
    lava_plan = plan(graph, timesteps, use_lif=use_lif)
    encoded = encode(graph, raw_inputs, timesteps)
    count = encoded.shape[1]
    if count == 0:
        raise SnnccError("no input samples to run")
    window = lava_plan.window
    rasters = {name: np.zeros((timesteps, count) + lava_plan.nodes[name].shape, dtype=np.int64)
               for name in lava_plan.spiking}
    input_name = graph.input_name
    if input_name in rasters:
        rasters[input_name] = encoded.astype(np.int64)
    classes = lava_plan.nodes[lava_plan.readout].shape[0]
    states = np.zeros((timesteps, count, classes), dtype=np.int64)
    decisions = np.zeros((timesteps, count), dtype=np.int64)
    run_config = Loihi2SimCfg(select_tag="fixed_pt")
    depth = lava_plan.nodes[lava_plan.readout].depth
    batch = max(1, min(batch_size, count))
    for start in range(0, count, batch):
        stop = min(start + batch, count)
        network = build(graph, timesteps, encoded[:, start:stop], batch=stop - start,
                        use_lif=use_lif)
        try:
            with warnings.catch_warnings():
                # lava's compiler imports every module beside a Process's module looking for
                # ProcessModels and warns about the snncc modules that are not Lava code
                warnings.filterwarnings("ignore", message="Cannot import module",
                                        category=UserWarning)
                network.source.run(condition=RunSteps(num_steps=network.steps),
                                   run_cfg=run_config)
            for name, monitor in network.monitors.items():
                node_plan = lava_plan.nodes[name]
                rasters[name][:, start:stop] = _unwindow(
                    monitor.read(node_plan.shape), node_plan.depth, window, timesteps)
            states[:, start:stop] = _unwindow(network.readout_state.get(), depth, window,
                                              timesteps)
            decisions[:, start:stop] = _unwindow(network.readout_decision.get(), depth, window,
                                                 timesteps)[..., 0]
        finally:
            network.source.stop()
        if progress is not None:
            progress(stop - start)
    return LavaRun(rasters, states, decisions, time.perf_counter() - started)


def _unwindow(recorded: np.ndarray, depth: int, window: int, timesteps: int) -> np.ndarray:
    """Monitor data ``(*shape, batch*window)`` -> ``(T, batch, *shape)`` at IR steps."""
    steps = np.moveaxis(np.asarray(recorded), -1, 0)
    steps = steps.reshape((-1, window) + steps.shape[1:])[:, depth: depth + timesteps]
    return np.moveaxis(steps, 1, 0).astype(np.int64)


def run(graph: ir.Graph, raw_inputs: np.ndarray, timesteps: int, *,
        labels: np.ndarray | None = None, record: bool = False, batch_size: int = DEFAULT_BATCH,
        use_lif: bool = True,
        progress: Callable[[int], None] | None = None, count_neurons: bool = False) -> Any:
    """Run the integer graph in lava-nc (``Loihi2SimCfg``, ``fixed_pt``); return a ``SimResult``.

    The result has the reference simulator's fields and meaning (:class:`snncc.engines
    .SimResult`): per-step decisions made by the Lava readout process, spike counts per spiking
    node (the input raster keyed ``input:<name>``), synaptic events counted from the Lava rasters,
    the final readout state, first-spike decision times and, with ``record``, every raster.
    ``progress`` is called with the number of samples finished after each Lava run;
    ``count_neurons`` keeps per-neuron spike totals (``neuron_counts``), as the simulator does.
    """
    from snncc.engines import SimResult

    result = execute(graph, raw_inputs, timesteps, batch_size=batch_size, use_lif=use_lif,
                     progress=progress)
    input_name = graph.input_name
    rasters = {(f"input:{n}" if n == input_name else n): r for n, r in result.rasters.items()}
    spike_counts = {name: raster.reshape(timesteps, raster.shape[1], -1).sum(axis=(0, 2))
                    for name, raster in rasters.items()}
    readout = graph.nodes[graph.output_name]
    decision_time = None
    if readout.mode == "first_spike":
        shape = result.readout_state.shape[2:]
        threshold = ir.broadcast_per_neuron(readout.threshold, shape, "threshold")
        crossed = (result.readout_state >= threshold).any(axis=2)
        decision_time = np.where(crossed.any(axis=0), crossed.argmax(axis=0), timesteps)
    return SimResult(
        timesteps=timesteps,
        mode="integer",
        predictions=result.decisions,
        labels=None if labels is None else np.asarray(labels),
        spike_counts={n: c.astype(np.int64) for n, c in spike_counts.items()},
        synops=synaptic_events(graph, result.rasters, raw_inputs, timesteps),
        readout_state=result.readout_state[-1],
        decision_time=decision_time,
        rasters={n: r.astype(np.uint8) for n, r in rasters.items()} if record else {},
        neuron_counts={n: r.sum(axis=0) for n, r in rasters.items()} if count_neurons else {},
        engine="lava",
    )


def synaptic_events(graph: ir.Graph, rasters: dict[str, np.ndarray], raw_inputs: np.ndarray,
                    timesteps: int) -> np.ndarray:
    """Synaptic events per sample, as the reference simulator counts them, from Lava's rasters.

    Each nonzero element entering a Dense/Conv2d node at a step activates its fan-out (nonzero
    weights). The values entering a synaptic node are rebuilt from the recorded rasters (or the
    raw direct-coded input) through the layout and pooling nodes between them.
    """
    shapes = graph.infer_shapes()
    count = len(raw_inputs)
    events = np.zeros(count)
    cache: dict[str, np.ndarray] = {}

    def values(name: str, t: int) -> np.ndarray:
        key = f"{name}@{t}"
        if key not in cache:
            node = graph.nodes[name]
            if name in rasters:
                cache[key] = rasters[name][t].astype(np.int64)
            elif isinstance(node, ir.Input):
                cache[key] = np.asarray(raw_inputs).astype(np.int64)
            elif isinstance(node, (ir.Flatten, ir.Reshape, ir.Transpose, ir.SumPool2d, ir.Add)):
                cache[key] = semantics.apply_stateless(node, [values(s, t) for s in graph.inputs_of(name)])
            else:
                raise UnsupportedError(f"cannot count synaptic events after {name!r}")
        return cache[key]

    for name in graph.of_type(*ir.SYNAPTIC):
        (source,) = graph.inputs_of(name)
        fanout = semantics.fanout(graph.nodes[name], shapes[source])
        active = sum((values(source, t) != 0).astype(np.int64) for t in range(timesteps))
        events += semantics.synaptic_events(active, fanout)
        cache.clear()
    return events


# ------------------------------------------------------------------------------------ emitting


def emit(graph: ir.Graph, out_dir: str | Path, timesteps: int | None = None,
         source_hash: str | None = None, **options: Any) -> list[Path]:
    """Write the Lava deployment: ``network.net`` (netx HDF5) when netx can express the network,
    the integer IR ``network.snn.npz`` (``Graph.load`` it for :func:`run`), and ``manifest.json``.

    ``timesteps`` defaults to the graph's ``metadata["timesteps"]`` (else 32); option ``use_lif``
    (default true) maps eligible IF layers to Lava's LIF; option ``require_netx`` (default false)
    fails, naming netx's first reason, when no ``network.net`` can be written. Fails before
    writing anything when Lava cannot run the network exactly (see :func:`plan`). The manifest
    holds the Loihi 2 per-core fit of the network (:func:`loihi2_fit`).
    """
    from snncc.backends import netx

    TARGET.target_options(options)
    timesteps = int(timesteps or graph.metadata.get("timesteps", 32))
    if options.get("require_netx"):
        netx.require_expressible(graph)

    lava_plan = plan(graph, timesteps, use_lif=options.get("use_lif", True))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [graph.save(out_dir / "network.snn.npz")]
    problems = netx.inexpressible(graph)
    netx_file = None
    if not problems:
        netx_file = netx.write_netx(graph, out_dir / "network.net")
        written.append(netx_file)
        lint = netx.lint_netx(netx_file)
        if lint:
            raise SnnccError(f"{netx_file}: netx lint failed: {lint[0]}")
    layers = []
    for name in graph.topological_order():
        node_plan = lava_plan.nodes[name]
        layers.append({"node": name, "ir": type(graph.nodes[name]).__name__,
                       "lava": _LAVA_NAMES[node_plan.kind], "delay_steps": node_plan.depth,
                       "notes": node_plan.notes})
    manifest = {
        "format": "snncc-lava",
        "lava_nc": "0.10",
        "run_config": "Loihi2SimCfg(select_tag='fixed_pt')",
        "timesteps": timesteps,
        "source_sha256": source_hash,
        "window_steps": lava_plan.window,
        "netx": netx_file.name if netx_file else None,
        "netx_inexpressible": problems,
        "netx_readout": None if netx_file is None else (
            "the readout counts the last netx layer's spikes (prediction = argmax of the counts)"
            if isinstance(graph.nodes[graph.inputs_of(graph.output_name)[0]], ir.NEURONS) else
            "the last netx layer is a CUBA layer with vThMant=131071: its potential v >> 6 is the "
            "readout accumulator (prediction = argmax), which provably stays below 131071; with "
            "netx_readout_parts K > 1 class c is neurons c*K .. c*K+K-1 (each reading one range "
            "of the inputs) and its accumulator is the sum of their v >> 6; the IR's 24-bit "
            "saturating accumulator and first-spike tie-breaking are not expressible"),
        "netx_readout_parts": (None if netx_file is None or isinstance(
            graph.nodes[graph.inputs_of(graph.output_name)[0]], ir.NEURONS)
            else len(netx.readout_parts(graph) or [()])),
        "input": {
            "node": graph.input_name,
            "coding": graph.input.coding,
            "shape": list(graph.input.shape),
            "feed": ("raw integers as graded spikes (num_message_bits="
                     f"{lava_plan.nodes[graph.input_name].bits}) at every step"
                     if graph.input.coding == "direct" else
                     "0/1 spikes per step from snncc.coding (rate: seeded Bernoulli; latency: "
                     "one spike at floor((1 - x) * (t_max - 1)))"),
        },
        "load": ("snncc validate network.snn.npz --target lava (snncc.backends.lava.run); or, when "
                 "'netx' is set, lava.lib.dl.netx.hdf5.Network(net_config='network.net', "
                 f"reset_interval={lava_plan.window}, reset_offset=1, input_message_bits="
                 f"{netx.input_message_bits(graph)}): feed a sample's T input "
                 f"steps at the start of each {lava_plan.window}-step window; netx layer i "
                 "(0 = first synapse layer) emits IR step t at window step t + i + 1 (the reset "
                 "discards the bias its neurons integrate before the input arrives)"),
        "delays": ("every Dense/Sparse/Conv hop delays by one Lava step; node k's IR step t is "
                   "Lava step t + delay_steps of its sample window"),
        "layers": layers,
        "profile": graph.metadata.get("profile"),
        "loihi2_fit": loihi2_fit(graph),
    }
    from snncc.util import atomic_write_text

    written.append(atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1)))
    return written


def loihi2_fit(graph: ir.Graph) -> dict[str, Any]:
    """The network on one Loihi 2 chip, per core, from the shared resource model.

    :func:`snncc.passes.partition.partition` with the ``loihi2`` chip profile
    (:mod:`snncc.resources`: neurons and synapses per core, layers split over cores as needed);
    ``cores`` lists every core's ``{resource: [used, limit]}``. Loihi 2's per-core synapse limit
    is an estimate (the profile's ``estimate: true``; see its sources).
    """
    from snncc.passes.partition import partition

    report = partition(graph, "loihi2")
    return {
        "chip": report.chip.name,
        "fits": report.fits,
        "verdict": report.verdict,
        "cores_used": report.cores_used,
        "chips_needed": report.chips_needed,
        "notes": report.notes,
        "layers": {plan.layer.name: {"pieces": plan.pieces, "split": plan.split}
                   for plan in report.layers},
        "cores": [{"core": core.index, "blocks": core.blocks,
                   "utilization": {r: list(v) for r, v in core.utilization.items()}}
                  for core in report.cores],
    }


_LAVA_NAMES = {
    "source": "lava.proc.io.source.RingBuffer",
    "dense": "lava.proc.dense.process.Dense",
    "sparse": "lava.proc.sparse.process.Sparse",
    "conv": "lava.proc.conv.process.Conv",
    "conv_sparse": "lava.proc.sparse.process.Sparse",
    "layout": "virtual port (reshape/transpose)",
    "add": "InPort summation",
    "lif": "lava.proc.lif.process.LIFReset",
    "if": "snncc.backends.lava_procs.IntegrateAndFire",
    "leaky": "snncc.backends.lava_procs.LeakyIntegrateAndFire",
    "leaky_lif": "lava.proc.lif.process.LIFReset (CUBA du/dv)",
    "maxpool": "snncc.backends.lava_procs.SpikingMaxPool",
    "readout": "snncc.backends.lava_procs.Readout",
}


TARGET = Target(
    name="lava",
    summary="lava-nc processes (Loihi2SimCfg fixed_pt) + a lava-dl netx file when expressible",
    emit=emit,
    run=run,
    profile="loihi2-netx",
    options={"use_lif": True, "require_netx": False},
)
