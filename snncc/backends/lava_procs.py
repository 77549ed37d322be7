"""Custom Lava Processes with fixed-point CPU models for what Lava's LIF cannot express.

Imported only by :mod:`snncc.backends.lava` (it imports lava-nc at module level).

Every process here computes exactly the integer semantics of one IR node (:mod:`snncc.ir`), in
the IR's own units: state is 24-bit (``STATE_BITS``) and saturates after every addition, like the
reference simulator's integer mode. Lava's built-in LIF instead scales synaptic input and threshold
by ``2**6`` and resets to zero; see :mod:`snncc.backends.lava` for when LIF is used instead.

**Sample windows.** Many samples run back to back in one Lava run: sample ``i`` owns the
``period`` steps ``i*period .. (i+1)*period - 1`` (Lava's ``time_step`` counts from 1). Each
process resets its state at the start of a window and is *active* only for the ``active_steps``
steps starting ``active_start`` steps into the window; outside that range it consumes its input,
leaves its state alone and emits zeros. ``active_start`` is the number of one-step synapse hops
(Lava's Dense/Sparse/Conv send the previous step's accumulation) between the network input and
this process, so an active process sees exactly the input of IR step ``t = local - active_start``.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from snncc import semantics
from snncc.ir import LEAKY_SHIFT


class _Windowed(AbstractProcess):
    """Common parameters: the sample window (``period``) and the active range inside it."""

    def __init__(self, *, period: int, active_start: int, active_steps: int, **kwargs) -> None:
        super().__init__(period=period, active_start=active_start, active_steps=active_steps,
                         **kwargs)

    def _recorder(self, shape: tuple[int, ...], record_steps: int, packed: bool) -> Var:
        """A ring buffer Var of what the process sent each step (see :func:`pack_spikes`)."""
        rows = (packed_words(int(np.prod(shape))),) if packed else tuple(shape)
        buffer = rows + (max(record_steps, 1),)
        return Var(shape=buffer, init=np.zeros(buffer, dtype=np.int64))


class _WindowedModel(PyLoihiProcessModel):
    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.period = int(proc_params["period"])
        self.active_start = int(proc_params["active_start"])
        self.active_steps = int(proc_params["active_steps"])

    def record(self, buffer: np.ndarray, values: np.ndarray | int, packed: bool = False) -> None:
        """Keep this step's output in ``buffer`` (column ``(time_step - 1) % length``)."""
        buffer[..., (self.time_step - 1) % buffer.shape[-1]] = (
            pack_spikes(values) if packed else values)

    def window_position(self) -> tuple[bool, bool]:
        """(window starts now, process is active now) for the current ``time_step``."""
        local = (self.time_step - 1) % self.period
        active = self.active_start <= local < self.active_start + self.active_steps
        return local == 0, active


#: Spikes packed per recorded word. Lava's ``Var.get`` ships every element as its own float64
#: message, so 0/1 rasters are packed 48 to an integer word (exact in float64) before reading.
BITS_PER_WORD = 48
_BIT_VALUES = np.left_shift(np.int64(1), np.arange(BITS_PER_WORD, dtype=np.int64))


def packed_words(count: int) -> int:
    return -(-count // BITS_PER_WORD)


def pack_spikes(spikes: np.ndarray) -> np.ndarray:
    """0/1 values (any shape, row-major) -> int64 words of 48 bits, bit ``i`` = element ``i``."""
    flat = np.asarray(spikes, dtype=np.int64).reshape(-1)
    padded = np.zeros(packed_words(flat.size) * BITS_PER_WORD, dtype=np.int64)
    padded[: flat.size] = flat
    return padded.reshape(-1, BITS_PER_WORD) @ _BIT_VALUES


def unpack_spikes(words: np.ndarray, count: int) -> np.ndarray:
    """Inverse of :func:`pack_spikes` along axis 0: ``(words, *rest)`` -> ``(count, *rest)``."""
    words = np.asarray(words).astype(np.int64)
    bits = (words[:, None] >> np.arange(BITS_PER_WORD).reshape((1, -1) + (1,) * (words.ndim - 1))) & 1
    return bits.reshape((-1,) + words.shape[1:])[:count]


# ------------------------------------------------------------------------------------------- IF


class IntegrateAndFire(_Windowed):
    """Non-leaky integrate-and-fire neurons with per-neuron integer threshold, bias and ``v_init``.

    Per active step, with synaptic input ``a`` (already scaled to IR units)::

        v = clip(v + a + bias, -2**23, 2**23 - 1)
        s = v >= threshold                     (and not yet fired, with fire_once)
        reset "subtract": v -= s * threshold;  reset "zero": v *= 1 - s

    ``v`` restarts from ``v_init`` at each window start. Spikes are sent as 0/1 int32 and kept in
    the ``spikes`` Var (a ring buffer of ``record_steps`` steps; a monitor without an extra Lava
    process).
    """

    def __init__(self, *, shape: tuple[int, ...], threshold: np.ndarray, v_init: np.ndarray,
                 bias: np.ndarray, reset: str, fire_once: bool, period: int, active_start: int,
                 active_steps: int, record_steps: int = 0, name: str | None = None) -> None:
        super().__init__(period=period, active_start=active_start, active_steps=active_steps,
                         reset=reset, fire_once=bool(fire_once), name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.threshold = Var(shape=shape, init=np.broadcast_to(threshold, shape).astype(np.int32))
        self.v_init = Var(shape=shape, init=np.broadcast_to(v_init, shape).astype(np.int32))
        self.bias = Var(shape=shape, init=np.broadcast_to(bias, shape).astype(np.int32))
        self.v = Var(shape=shape, init=np.broadcast_to(v_init, shape).astype(np.int32))
        self.fired = Var(shape=shape, init=np.zeros(shape, dtype=np.int32))
        self.spikes = self._recorder(shape, record_steps, packed=True)


@implements(proc=IntegrateAndFire, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyIntegrateAndFireFixed(_WindowedModel):
    """Fixed-point model of :class:`IntegrateAndFire` (24-bit saturating state, IR units)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    fired: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=48)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.reset = proc_params["reset"]
        self.fire_once = bool(proc_params["fire_once"])

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        window_start, active = self.window_position()
        if window_start:
            self.v[:] = self.v_init
            self.fired[:] = 0
        spikes = np.zeros(self.v.shape, dtype=np.int32)
        if active:
            v, crossed, armed = semantics.if_update(
                self.v.astype(np.int64), a_in + self.bias, self.threshold, self.fired == 0,
                self.reset, self.fire_once, integer=True)
            self.v[:] = v
            self.fired[:] = ~armed
            spikes = crossed.astype(np.int32)
        self.record(self.spikes, spikes, packed=True)
        self.s_out.send(spikes)


# ---------------------------------------------------------------------------------------- leaky


class LeakyIntegrateAndFire(_Windowed):
    """Leaky neurons (the IR's LIF and CubaLIF) with Loihi's fixed-point CUBA rules, in IR units.

    Per active step, with synaptic input ``a`` plus the carried ``bias`` (the IR adds a synapse's
    bias to its current), :func:`snncc.semantics.leaky_update` in integer mode: ``u`` wraps,
    ``v`` saturates at ``+-(2**23 - 1)``, both in units of ``2**-6`` of the input, decays truncate
    toward zero. Per-neuron thresholds, ``du``, ``dv`` and ``v_init``, either comparison, reset
    to zero or by subtraction, in the spiking step or one step later: what Lava's own ``LIF``
    cannot express (one ``vth``, ``du``, ``dv`` per process, ``v > vth``, reset to zero, the bias
    on ``v``). ``u``, ``v`` and the pending reset restart at each window start.
    """

    def __init__(self, *, shape: tuple[int, ...], threshold: np.ndarray, du: np.ndarray,
                 dv: np.ndarray, v_init: np.ndarray, bias: np.ndarray, reset: str,
                 reset_delay: bool, comparison: str, period: int, active_start: int,
                 active_steps: int, record_steps: int = 0, name: str | None = None) -> None:
        super().__init__(period=period, active_start=active_start, active_steps=active_steps,
                         reset=reset, reset_delay=bool(reset_delay), comparison=comparison,
                         name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        for field, values in (("threshold", threshold), ("du", du), ("dv", dv),
                              ("v_init", v_init), ("bias", bias)):
            setattr(self, field, Var(shape=shape,
                                     init=np.broadcast_to(values, shape).astype(np.int32)))
        self.v = Var(shape=shape, init=np.zeros(shape, dtype=np.int32))
        self.u = Var(shape=shape, init=np.zeros(shape, dtype=np.int32))
        self.pending = Var(shape=shape, init=np.zeros(shape, dtype=np.int32))
        self.spikes = self._recorder(shape, record_steps, packed=True)


@implements(proc=LeakyIntegrateAndFire, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLeakyIntegrateAndFireFixed(_WindowedModel):
    """Fixed-point model of :class:`LeakyIntegrateAndFire` (the golden rule, 24-bit state)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    v_init: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    pending: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=48)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.reset = proc_params["reset"]
        self.reset_delay = bool(proc_params["reset_delay"])
        self.comparison = proc_params["comparison"]

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        window_start, active = self.window_position()
        if window_start:
            self.v[:] = self.v_init.astype(np.int64) << LEAKY_SHIFT
            self.u[:] = 0
            self.pending[:] = 0
        spikes = np.zeros(self.v.shape, dtype=np.int32)
        if active:
            v, u, crossed = semantics.leaky_update(
                self.v.astype(np.int64), self.u.astype(np.int64), self.pending != 0,
                a_in + self.bias, self.threshold, self.du, self.dv, self.reset, self.reset_delay,
                self.comparison, integer=True)
            self.v[:] = v
            self.u[:] = u
            self.pending[:] = crossed
            spikes = crossed.astype(np.int32)
        self.record(self.spikes, spikes, packed=True)
        self.s_out.send(spikes)


# ------------------------------------------------------------------------------------- MaxPool2d


class SpikingMaxPool(_Windowed):
    """The IR's MaxPool2d over time-accumulated input: ``y(t) = M(t) - M(t-1)``.

    ``C(t) = sum_{tau <= t} x(tau)`` per input element (a 24-bit counter: the compiler checks it
    cannot overflow in ``active_steps`` steps), ``M = maxpool(C)``
    with ``-inf`` padding, ``M(-1) = 0``. Binary inputs give binary outputs; graded inputs
    (direct coding) give graded outputs.
    """

    def __init__(self, *, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int],
                 kernel: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int, int, int], period: int, active_start: int,
                 active_steps: int, record_steps: int = 0, binary: bool = True,
                 name: str | None = None) -> None:
        super().__init__(period=period, active_start=active_start, active_steps=active_steps,
                         kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
                         binary=bool(binary), name=name)
        self.a_in = InPort(shape=in_shape)
        self.s_out = OutPort(shape=out_shape)
        self.counts = Var(shape=in_shape, init=np.zeros(in_shape, dtype=np.int32))
        self.pooled = Var(shape=out_shape, init=np.zeros(out_shape, dtype=np.int32))
        self.spikes = self._recorder(out_shape, record_steps, packed=binary)


@implements(proc=SpikingMaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikingMaxPoolFixed(_WindowedModel):
    """Fixed-point model of :class:`SpikingMaxPool`."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    pooled: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=48)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.kernel = tuple(proc_params["kernel"])
        self.stride = tuple(proc_params["stride"])
        self.padding = tuple(proc_params["padding"])
        self.binary = bool(proc_params["binary"])

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        window_start, active = self.window_position()
        if window_start:
            self.counts[:] = 0
            self.pooled[:] = 0
        out = np.zeros(self.pooled.shape, dtype=np.int32)
        if active:
            counts = self.counts.astype(np.int64) + a_in
            pooled = semantics.pool(counts[None], self.kernel, self.stride, self.padding,
                                    np.maximum)[0]
            out = (pooled - self.pooled).astype(np.int32)
            self.counts[:] = counts
            self.pooled[:] = pooled
        self.record(self.spikes, out, packed=self.binary)
        self.s_out.send(out)


# --------------------------------------------------------------------------------------- Readout


class Readout(_Windowed):
    """The IR's Readout: potential accumulators or fire-once first-spike neurons, plus the decision.

    ``potential``: ``a = clip(a + x + bias)`` (a leaky readout decays ``a`` first by ``dv``,
    :func:`snncc.semantics.decay`); decision ``argmax a`` (lowest index on ties).
    ``first_spike``: ``v = clip(v + x + bias)``, a neuron spikes once when ``v >= threshold``; the
    decision is the first neuron to spike (ties: largest ``v``, then lowest index), ``argmax v``
    until any spikes. Each step's state and decision (class index; ``-1`` when inactive) are kept
    in the ``states`` and ``decisions`` Vars (ring buffers of ``record_steps`` steps).
    """

    def __init__(self, *, shape: tuple[int], mode: str, threshold: np.ndarray, bias: np.ndarray,
                 period: int, active_start: int, active_steps: int, record_steps: int = 0,
                 dv: int = 0, name: str | None = None) -> None:
        super().__init__(period=period, active_start=active_start, active_steps=active_steps,
                         mode=mode, dv=int(dv), name=name)
        self.a_in = InPort(shape=shape)
        self.threshold = Var(shape=shape, init=np.broadcast_to(threshold, shape).astype(np.int32))
        self.bias = Var(shape=shape, init=np.broadcast_to(bias, shape).astype(np.int32))
        self.v = Var(shape=shape, init=np.zeros(shape, dtype=np.int32))
        self.winner = Var(shape=(1,), init=np.full(1, -1, dtype=np.int32))
        self.states = self._recorder(shape, record_steps, packed=False)
        self.decisions = self._recorder((1,), record_steps, packed=False)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(_WindowedModel):
    """Fixed-point model of :class:`Readout`."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    threshold: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    winner: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    states: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)
    decisions: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=24)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self.first_spike = proc_params["mode"] == "first_spike"
        self.dv = int(proc_params.get("dv", 0))

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        window_start, active = self.window_position()
        if window_start:
            self.v[:] = 0
            self.winner[:] = -1
        if not active:
            self.record(self.states, 0)
            self.record(self.decisions, -1)
            return
        previous = self.v.astype(np.int64)
        if self.dv:
            previous = semantics.decay(previous, self.dv, integer=True)
        v = semantics.saturate(previous + a_in + self.bias)
        self.v[:] = v
        if self.first_spike and self.winner[0] < 0:
            self.winner[0] = int(semantics.first_spike_winner(v[None] >= self.threshold, v[None])[0])
        decision = (int(self.winner[0]) if self.winner[0] >= 0
                    else int(semantics.potential_decision(v[None])[0]))
        self.record(self.states, v)
        self.record(self.decisions, decision)


# -------------------------------------------------------------------------------- spike monitor


class SpikeRecorder(AbstractProcess):
    """A monitor for 0/1 spikes (used for Lava's LIF): keeps every step's spikes, 48 per word."""

    def __init__(self, *, shape: tuple[int, ...], record_steps: int,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.a_in = InPort(shape=shape)
        words = (packed_words(int(np.prod(shape))), max(record_steps, 1))
        self.spikes = Var(shape=words, init=np.zeros(words, dtype=np.int64))


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderFixed(PyLoihiProcessModel):
    """Fixed-point model of :class:`SpikeRecorder`."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=1)
    spikes: np.ndarray = LavaPyType(np.ndarray, np.int64, precision=48)

    def run_spk(self) -> None:
        self.spikes[:, (self.time_step - 1) % self.spikes.shape[-1]] = pack_spikes(
            self.a_in.recv())
