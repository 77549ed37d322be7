"""Event-driven simulation of single-spike (time-to-first-spike) networks.

A TTFS graph (see :func:`is_ttfs_graph`) is a chain ``Input(coding="latency") -> [layout] ->
(Dense -> IF(fire_once))* -> Dense -> Readout(mode="first_spike")`` without biases. Each neuron
spikes at most once, so a layer is fully described by its spike times, and one sample costs
``input spikes x fan-out`` additions instead of ``timesteps x neurons``: the presynaptic spikes are
sorted by time and the weight columns of each same-step group are added to the potentials; only
after a whole group (one step of the golden model) are thresholds compared. This is exactly the
semantics of :func:`snncc.semantics.run` for such graphs (same spikes, same decisions, same
decision times; ``tests/engines/test_golden.py``). :mod:`snncc.train.bstdg` evaluates networks with it, and its tests check the
trainer's own per-sample forward pass against it.

Spike times are integer steps in ``[0, timesteps)``; inside this module a neuron that never spikes
has the time ``timesteps`` (the "fires at t_max" convention); in results it is ``coding.NEVER``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from snncc import coding, ir, semantics
from snncc.engines.result import SimResult
from snncc.errors import SnnccError


@dataclass
class TTFSResult(SimResult):
    """A :class:`SimResult` plus every spiking node's spike times ``(N, *shape)`` (NEVER = -1)."""

    spike_times: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mean_decision_time(self) -> float:
        """Mean step of the first output spike (``timesteps`` for samples with none)."""
        return float(np.mean(self.decision_time))


@dataclass
class TTFSLayer:
    """One synaptic stage of a TTFS chain: the Dense node and the neurons it feeds."""

    dense: str
    neurons: str
    weight: np.ndarray  # (out, in)
    threshold: np.ndarray  # (out,)
    readout: bool


# ------------------------------------------------------------------------------------ kernels


@numba.njit(cache=True, nogil=True)
def _fire_kernel(pre_times, weight_t, threshold, disarmed, horizon, saturate, state_min,
                 state_max, out_times, out_v_fire, out_v, curve, fanout,
                 out_synops):  # pragma: no cover - compiled
    """Per sample: add weight columns in spike-time order, compare after each same-step group.

    ``pre_times`` (N, D) integers; steps outside ``[0, horizon)`` mean no spike; ``weight_t``
    (D, H); ``threshold`` (H,); ``disarmed`` a value no potential reaches (marks spiked neurons);
    ``out_times`` (N, H) int32 preset to ``horizon``; ``out_v`` (N, H) preset to zero receives the
    final potentials, ``out_v_fire`` the potential at the spike. ``curve`` (N, horizon) or (N, 0):
    when non-empty, the first-spike readout decision after every step. ``out_synops[n]`` adds
    ``fanout[i]`` for every input spike delivered (when ``fanout`` is non-empty).
    """
    samples, inputs = pre_times.shape
    neurons = weight_t.shape[1]
    with_curve = curve.shape[1] > 0
    counts = np.zeros(horizon + 1, np.int64)
    order = np.zeros(inputs, np.int64)
    spiking = np.zeros(inputs + 1, np.int64)
    armed = np.empty(neurons, threshold.dtype)
    for n in range(samples):
        row = pre_times[n]
        # branch-free compaction of the spiking inputs, then a counting sort of those by step
        # (silent inputs, often most of them, would all hit one counter: a serial chain)
        spikes = 0
        for i in range(inputs):
            t = row[i]
            spiking[spikes] = i
            spikes += 1 if 0 <= t < horizon else 0
        counts[:] = 0
        for k in range(spikes):
            counts[row[spiking[k]] + 1] += 1
        for t in range(horizon):
            counts[t + 1] += counts[t]
        for k in range(spikes):
            i = spiking[k]
            t = row[i]
            order[counts[t]] = i
            counts[t] += 1
        # now counts[t] is the end of step t's group (and the start of step t + 1's)
        v = out_v[n]
        times = out_times[n]
        v_fire = out_v_fire[n]
        armed[:] = threshold
        winner = -1
        prediction = 0
        last_step = 0
        begin = 0
        for step_index in range(horizon):
            step = np.int32(step_index)
            finish = counts[step]
            if finish == begin:
                continue
            if fanout.size:
                for k in range(begin, finish):
                    out_synops[n] += fanout[order[k]]
            k = begin
            while k + 4 <= finish - 1:  # four columns per pass over v
                first, second = weight_t[order[k]], weight_t[order[k + 1]]
                third, fourth = weight_t[order[k + 2]], weight_t[order[k + 3]]
                for j in range(neurons):
                    v[j] += (first[j] + second[j]) + (third[j] + fourth[j])
                k += 4
            for rest in range(k, finish - 1):
                column = weight_t[order[rest]]
                for j in range(neurons):
                    v[j] += column[j]
            # the group's last column is added in the same pass that counts new crossings (a
            # vectorised count: most steps cross nothing new)
            column = weight_t[order[finish - 1]]
            crossings = 0
            if saturate:
                for j in range(neurons):
                    v[j] = min(max(v[j] + column[j], state_min), state_max)
                    crossings += v[j] >= armed[j]
            else:
                for j in range(neurons):
                    v[j] += column[j]
                    crossings += v[j] >= armed[j]
            begin = finish
            if crossings:
                for j in range(neurons):  # branch-free blend so that it vectorises too
                    crossed = 1 if v[j] >= armed[j] else 0
                    times[j] += crossed * (step - times[j])
                    v_fire[j] += crossed * (v[j] - v_fire[j])
                    armed[j] += crossed * (disarmed - armed[j])
            if with_curve:
                for t in range(last_step, step):
                    curve[n, t] = prediction
                if winner < 0:
                    best = -1
                    for j in range(neurons):
                        if times[j] == step and (best < 0 or v[j] > v[best]):
                            best = j
                    if best >= 0:
                        winner = best
                        prediction = best
                    else:
                        prediction = 0
                        for j in range(1, neurons):
                            if v[j] > v[prediction]:
                                prediction = j
                last_step = step
        if with_curve:
            for t in range(last_step, horizon):
                curve[n, t] = prediction


def fire_times(pre_times: np.ndarray, weight: np.ndarray, threshold: np.ndarray, horizon: int,
               integer: bool = True, with_curve: bool = False,
               synops: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """First spike step of each neuron of a single-spike layer, event-driven.

    ``pre_times`` ``(N, D)``: presynaptic spike steps, ``horizon`` (or anything outside
    ``[0, horizon)``) for none. ``weight`` ``(H, D)``, ``threshold`` ``(H,)``. Neurons integrate
    ``v(t) = sum of w[j, i] over spikes i with t_i <= t`` and spike at the first step with
    ``v >= threshold``; integer mode adds exactly and saturates ``v`` to ``ir.STATE_BITS`` after each
    step. Returns ``(times (N, H) int32 with horizon = never, v at the spike, final v, curve)``
    (potentials int32 or int64 in integer mode, float64 in float mode) where
    ``curve`` (only with ``with_curve``) is the first-spike readout decision after every step
    ``(N, horizon)``: the neuron that crossed first (largest ``v``, then lowest index, on ties),
    before that ``argmax v``. ``synops`` ``(N,)``, when given, is increased by each sample's
    synaptic events (delivered spikes times their nonzero fan-out).
    """
    pre_times = np.ascontiguousarray(pre_times)
    if pre_times.dtype.kind not in "iu":
        pre_times = pre_times.astype(np.int64)
    neurons = weight.shape[0]
    if integer:
        weight_t = np.ascontiguousarray(weight.T)
        if weight_t.dtype.kind not in "iub":
            raise SnnccError("integer TTFS simulation needs integer weights")
        if weight_t.dtype.kind == "b":
            weight_t = weight_t.astype(np.int8)
        state_dtype, saturate, bound = _integer_state(weight_t)
    else:
        saturate, bound = False, 0
        weight_t = np.ascontiguousarray(weight.T, dtype=np.float64)
        state_dtype = np.float64
    # thresholds above every reachable potential never fire; clamping keeps them in the dtype
    threshold = np.broadcast_to(threshold, (neurons,))
    if integer:
        threshold = np.minimum(threshold, min(bound, ir.STATE_MAX) + 1)
    threshold = np.ascontiguousarray(threshold, dtype=state_dtype)
    samples = len(pre_times)
    times = np.full((samples, neurons), horizon, np.int32)
    v_fire = np.zeros((samples, neurons), state_dtype)
    v_final = np.zeros((samples, neurons), state_dtype)
    curve = np.zeros((samples, horizon if with_curve else 0), np.int64)
    # larger than any potential (|v| <= min(bound, 2**23)), small enough not to overflow
    disarmed = {np.int16: 2**15 - 1, np.int32: 2**30, np.int64: 2**62}.get(state_dtype, 1e300)
    _fire_kernel(pre_times, weight_t, threshold,
                 threshold.dtype.type(disarmed), int(horizon), saturate, ir.STATE_MIN,
                 ir.STATE_MAX, times, v_fire, v_final, curve,
                 np.zeros(0) if synops is None else (weight != 0).sum(axis=0).astype(np.float64),
                 np.zeros(samples) if synops is None else synops)
    return times, v_fire, v_final, (curve if with_curve else None)


def _integer_state(weight_t: np.ndarray) -> tuple[type, bool, int]:
    """Potential dtype, whether saturation can trigger, and the largest reachable ``|v|``.

    ``bound`` is the largest total absolute input of any neuron. int16 potentials when it stays
    below 2**15 - 1 (then saturation never triggers), int32 when no step's sum can overflow it
    before saturation, else int64; saturation is only applied when ``bound`` exceeds the
    ``STATE_BITS`` range.
    """
    wide = np.int16 if weight_t.dtype.itemsize == 1 else np.int64  # |int8| fits int16
    bound = int(np.abs(weight_t.astype(wide)).sum(axis=0, dtype=np.int64).max(initial=0))
    if bound < 2**15 - 1:
        dtype = np.int16
    elif bound + 2 ** (ir.STATE_BITS - 1) < 2 ** 31:
        dtype = np.int32
    else:
        dtype = np.int64
    return dtype, bound > ir.STATE_MAX, bound


def first_spike_decision(times: np.ndarray, v_fire: np.ndarray, v_final: np.ndarray,
                         horizon: int) -> np.ndarray:
    """The first-spike readout's final decision from the output layer's spike times.

    The neurons spiking earliest compete with :func:`snncc.semantics.first_spike_winner` (their
    potential at that step, then the lower index); samples where nothing spiked take the potential
    decision on the final potential.
    """
    first = times.min(axis=1)
    winner = semantics.first_spike_winner((times == first[:, None]) & (first < horizon)[:, None],
                                          v_fire)
    return np.where(winner >= 0, winner, semantics.potential_decision(v_final))


@numba.njit(cache=True, nogil=True)
def fire_sample(pre, weight_t, threshold, t_max, times, v, v_fire, counts,
                order):  # pragma: no cover - compiled
    """One sample through one single-spike layer, for callers inside compiled loops (training).

    The rule of :func:`fire_times` without saturation (callers keep ``|v|`` small): ``pre``
    (inputs,) spike steps, ``t_max`` for none; ``weight_t`` ``(in, out)``; spikes are bucketed by
    step (counting sort), each delivered spike adds its weight row, and neurons are compared with
    ``threshold`` after every step with input. Writes ``times`` (``t_max`` = silent), ``v_fire``
    and the final ``v``; ``counts`` ``(t_max + 1,)`` and ``order`` ``(in,)`` are scratch.
    """
    inputs, neurons = weight_t.shape
    counts[:] = 0
    for i in range(inputs):
        if pre[i] < t_max:
            counts[pre[i] + 1] += 1
    for step in range(t_max):
        counts[step + 1] += counts[step]
    for i in range(inputs):
        step = pre[i]
        if step < t_max:
            order[counts[step]] = i
            counts[step] += 1
    v[:] = 0
    v_fire[:] = 0
    times[:] = t_max
    begin = 0
    for step in range(t_max):
        end = counts[step]
        if end == begin:
            continue
        for k in range(begin, end):
            row = weight_t[order[k]]
            for j in range(neurons):
                v[j] += row[j]
        begin = end
        for j in range(neurons):
            if times[j] == t_max and v[j] >= threshold:
                times[j] = step
                v_fire[j] = v[j]


@numba.njit(cache=True, nogil=True)
def decide_sample(times, v_fire, v_final, t_max):  # pragma: no cover - compiled
    """:func:`first_spike_decision` for one sample, for callers inside compiled loops."""
    first = times.min()
    best = 0
    if first < t_max:
        best = -1
        for k in range(times.shape[0]):
            if times[k] == first and (best < 0 or v_fire[k] > v_fire[best]):
                best = k
    else:
        for k in range(1, v_final.shape[0]):
            if v_final[k] > v_final[best]:
                best = k
    return best


# ------------------------------------------------------------------------------- graph chains


def ttfs_chain(graph: ir.Graph) -> list[TTFSLayer] | None:
    """The synaptic stages of a TTFS graph in order, or ``None`` when the graph is not one.

    A TTFS graph is ``Input(latency) -> [Flatten|Reshape]* -> (Dense -> IF(fire_once,
    v_init 0))* -> Dense -> Readout(first_spike)``: a chain of :func:`snncc.ir.layers` without
    biases, each feeding its neurons directly and reading the previous layer's neurons.
    """
    try:
        graph.validate()
    except SnnccError:
        return None
    if graph.input.coding != "latency":
        return None
    view = graph.layers()
    source = graph.input_name
    while len(graph.consumers(source)) == 1 and isinstance(
            graph.nodes[graph.consumers(source)[0]], (ir.Flatten, ir.Reshape)):
        source = graph.consumers(source)[0]
    layers: list[TTFSLayer] = []
    for layer in view:
        node, target = layer.node, layer.target
        if (layers and layers[-1].readout) or layer.source != source or not layer.direct \
                or not isinstance(node, ir.Dense) or node.bias is not None \
                or graph.consumers(source) != [layer.name]:
            return None
        if isinstance(target, ir.IF) and target.fire_once and not np.any(target.v_init != 0):
            readout = False
        elif isinstance(target, ir.Readout) and target.mode == "first_spike" \
                and np.all(target.threshold > 0):
            readout = True
        else:
            return None
        layers.append(_layer(graph, layer.name, layer.target_name, target.threshold, readout))
        source = layer.target_name
    if not layers or not layers[-1].readout:
        return None
    return layers


def _layer(graph: ir.Graph, dense: str, neurons: str, threshold: np.ndarray,
           readout: bool) -> TTFSLayer:
    weight = graph.nodes[dense].weight  # type: ignore[attr-defined]
    return TTFSLayer(dense, neurons, weight,
                     np.asarray(ir.broadcast_per_neuron(threshold, (weight.shape[0],))), readout)


def is_ttfs_graph(graph: ir.Graph) -> bool:
    """True when the graph is a single-spike chain this event-driven simulator runs exactly."""
    return ttfs_chain(graph) is not None


def input_spike_times(graph: ir.Graph, raw_inputs: np.ndarray) -> np.ndarray:
    """Latency spike steps of the flattened input ``(N, D)`` (``coding.NEVER`` = no spike)."""
    input_node = graph.input
    raw_inputs = np.asarray(raw_inputs)
    if raw_inputs.shape[1:] != tuple(input_node.shape):
        raise SnnccError(f"inputs of shape {raw_inputs.shape[1:]} do not match the model input "
                         f"{tuple(input_node.shape)}")
    t_max = input_node.t_max
    if t_max is None:
        raise SnnccError("a TTFS graph's latency input needs t_max")
    if raw_inputs.dtype == np.uint8:
        # the same function of each pixel, tabulated once for the 256 values (per position when
        # the preprocessing is per channel)
        flat = raw_inputs.reshape(len(raw_inputs), -1)
        if input_node.mean.size == 1 and input_node.std.size == 1:
            levels = np.arange(256).reshape((256,) + (1,) * len(input_node.shape))
            table = coding.latency_spike_times(input_node.preprocess(levels), t_max).reshape(-1)
            return np.take(table.astype(np.int32), flat)
        levels = np.broadcast_to(np.arange(256).reshape((256,) + (1,) * len(input_node.shape)),
                                 (256,) + tuple(input_node.shape))
        table = coding.latency_spike_times(input_node.preprocess(levels), t_max).reshape(256, -1)
        return table.astype(np.int32)[flat, np.arange(flat.shape[1])]
    times = coding.latency_spike_times(input_node.preprocess(raw_inputs), t_max)
    return times.reshape(len(raw_inputs), -1)


@numba.njit(cache=True, nogil=True)
def _store_times_kernel(times, horizon, never, out, counts):  # pragma: no cover - compiled
    for n in range(times.shape[0]):
        spikes = 0
        for i in range(times.shape[1]):
            t = times[n, i]
            fired = 0 <= t < horizon
            out[n, i] = t if fired else never
            spikes += fired
        counts[n] = spikes


def _store_times(times: np.ndarray, horizon: int, out: np.ndarray, counts: np.ndarray) -> None:
    """Copy one batch's spike times into ``out`` with ``coding.NEVER`` for silent, count spikes."""
    _store_times_kernel(np.ascontiguousarray(times).reshape(out.shape), int(horizon),
                        coding.NEVER, out, counts)


def simulate_ttfs(graph: ir.Graph, raw_inputs: np.ndarray, labels: np.ndarray | None = None,
                  mode: str = "integer", record: bool = False,
                  timesteps: int | None = None, count_neurons: bool = False,
                  batch_size: int = 1000) -> TTFSResult:
    """Simulate a TTFS graph event-driven; equals :func:`snncc.semantics.run` (and the step engine).

    ``timesteps`` defaults to the input's ``t_max``; input or hidden spikes at steps
    ``>= timesteps`` do not happen. Per sample the work is the number of spikes times their
    fan-out. ``record`` adds rasters ``(T, N, *shape)`` like the step simulator (memory grows with
    ``T x N x neurons``: use it on small sets); ``count_neurons`` adds per-neuron spike counts.
    """
    chain = ttfs_chain(graph)
    if chain is None:
        raise SnnccError("graph is not a single-spike (TTFS) chain: Input(latency) -> Dense -> "
                         "IF(fire_once) ... -> Dense -> Readout(first_spike), no biases")
    if mode not in ("float", "integer"):
        raise SnnccError(f"unknown simulation mode {mode!r}; choose float or integer")
    integer = mode == "integer"
    raw_inputs = np.asarray(raw_inputs)
    if integer:
        graph.check_integer()
        if raw_inputs.dtype.kind not in "iub" and not np.array_equal(raw_inputs,
                                                                      np.rint(raw_inputs)):
            raise SnnccError("integer mode needs integer input samples")
    if len(raw_inputs) == 0:
        raise SnnccError("no input samples to simulate")
    horizon = int(timesteps or graph.input.t_max)
    if horizon < 1:
        raise SnnccError(f"timesteps must be >= 1, got {horizon}")
    samples = len(raw_inputs)
    shapes = graph.infer_shapes()
    input_key = f"input:{graph.input_name}"
    names = [input_key] + [layer.neurons for layer in chain if not layer.readout]
    node_shapes = {input_key: tuple(graph.input.shape)}
    node_shapes.update({name: shapes[name] for name in names[1:]})
    # every result is written batch by batch into its slice, while the batch is in cache
    spike_times = {name: np.empty((samples, int(np.prod(node_shapes[name]))), np.int32)
                   for name in names}
    spike_counts = {name: np.empty(samples, np.int64) for name in names}
    synops = np.zeros(samples)
    v_final = np.empty((samples, chain[-1].weight.shape[0]),
                       np.int64 if integer else np.float64)
    curve = np.empty((samples, horizon), np.int64)
    decision_time = np.empty(samples, np.int64)
    for start in range(0, samples, batch_size):
        stop = min(start + batch_size, samples)
        times = input_spike_times(graph, raw_inputs[start:stop])
        _store_times(times, horizon, spike_times[input_key][start:stop],
                     spike_counts[input_key][start:stop])
        for layer in chain:
            times, _, final, batch_curve = fire_times(times, layer.weight, layer.threshold,
                                                      horizon, integer,
                                                      with_curve=layer.readout,
                                                      synops=synops[start:stop])
            if not layer.readout:
                _store_times(times, horizon, spike_times[layer.neurons][start:stop],
                             spike_counts[layer.neurons][start:stop])
        v_final[start:stop] = final
        curve[start:stop] = batch_curve
        decision_time[start:stop] = times.min(axis=1)
    spike_times = {name: t.reshape((samples,) + node_shapes[name])
                   for name, t in spike_times.items()}
    rasters = {}
    if record:
        for name, node_times in spike_times.items():
            raster = np.zeros((horizon,) + node_times.shape, np.uint8)
            flat = node_times.reshape(samples, -1)
            sample_index, neuron_index = np.nonzero(flat >= 0)
            raster.reshape(horizon, samples, -1)[flat[sample_index, neuron_index], sample_index,
                                                 neuron_index] = 1
            rasters[name] = raster
    return TTFSResult(
        timesteps=horizon,
        mode=mode,
        predictions=curve.T,
        labels=None if labels is None else np.asarray(labels),
        spike_counts=spike_counts,
        synops=synops,
        readout_state=v_final,
        decision_time=decision_time,
        rasters=rasters,
        neuron_counts={name: (t >= 0).astype(np.int64)
                       for name, t in spike_times.items()} if count_neurons else {},
        spike_times=spike_times,
    )
