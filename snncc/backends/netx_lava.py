"""Run a netx file in lava-dl's own loader (``lava.lib.dl.netx.hdf5.Network``) on lava-nc.

This is the proof path for ``network.net``: lava-dl builds the network from the file alone and
lava-nc runs it in ``Loihi2SimCfg(select_tag="fixed_pt")``; snncc only feeds the encoded input
and reads back what every layer sent. Needs the ``netx`` extra (lava-dl 0.6, which needs torch).

Samples run back to back in windows of ``W = T + L`` Lava steps (``L`` synapse layers), the
network built with ``reset_interval=W, reset_offset=1`` as the manifest says: netx layer ``i``
(0 = first synapse layer) resets right before its first input of a window and emits IR step
``t`` at window step ``t + i + 1``. Hidden layers' spikes are kept by snncc's packed
:class:`~snncc.backends.lava_procs.SpikeRecorder`; the output layer (a CUBA layer that never
reaches ``vThMant``) is read through a Lava ``Monitor`` on its ``v``, which holds the readout
accumulator shifted left by 6 bits (the sum of a class's neurons when the output layer is split,
:func:`snncc.backends.netx.readout_parts`). When the IR readout counts the spikes of a neuron layer
(networks trained as SNNs), that layer's spikes are recorded too and the "potentials" are its
running spike counts. Direct-coded inputs are fed as graded spikes (``input_message_bits``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncc import ir
from snncc.errors import SnnccError

LAVA_DL_MISSING = "running netx files needs lava-dl: pip install 'snncc[netx]' (Python 3.10)"
POTENTIAL_SHIFT = 6  #: LIF keeps ``v`` shifted left by 6 bits (lava-nc 0.10 AbstractPyLifModelFixed)


@dataclass
class NetxRun:
    """What lava-dl's network sent, in IR step order (window offsets undone)."""

    rasters: dict[str, np.ndarray]  #: IF node -> (T, N, *shape) 0/1 spikes
    #: (T, N, classes) the output layer's ``v >> 6`` after each step, or, for a counted neuron
    #: layer, its running spike counts
    potentials: np.ndarray
    seconds: float  #: wall time of building and running the Lava networks

    @property
    def predictions(self) -> np.ndarray:
        """``(T, N)`` argmax of the potentials (lowest index on ties, as the IR readout)."""
        return self.potentials.argmax(axis=-1)


def run_netx(path: str | os.PathLike[str], graph: ir.Graph, raw_inputs: np.ndarray,
             timesteps: int, batch_size: int = 25) -> NetxRun:
    """Run the netx file ``path`` (written from ``graph``) on ``raw_inputs`` in lava-dl.

    ``graph`` supplies the input encoder (:func:`snncc.backends.lava.encode`: the same spikes as
    the reference simulator) and the names of the layers; everything the network computes comes
    from the file. ``batch_size`` samples share one Lava run.
    """
    try:
        from lava.lib.dl.netx import hdf5
    except ImportError as error:
        raise SnnccError(f"{LAVA_DL_MISSING} ({error})") from None
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    from snncc.backends import lava_procs
    from snncc.backends.lava import encode
    from snncc.backends.netx import _layers, input_message_bits, readout_parts

    started = time.perf_counter()
    synapse_layers = [names for kind, names in _layers(graph) if kind in ("dense", "conv")]
    neurons = [names[1] for names in synapse_layers]
    shapes = graph.infer_shapes()
    window = timesteps + len(synapse_layers)
    encoded = encode(graph, raw_inputs, timesteps)  # (T, N, *input shape)
    count = encoded.shape[1]
    if count == 0:
        raise SnnccError("no input samples to run")
    flat_input = _layers(graph)[1][0] == "flatten" or len(graph.input.shape) == 1
    message_bits = input_message_bits(graph)
    counted = spike_count_output(graph)
    recorded = neurons if counted else neurons[:-1]
    rasters = {name: np.zeros((timesteps, count) + shapes[name], dtype=np.uint8)
               for name in recorded}
    parts = 1 if counted else len(readout_parts(graph) or [()])
    classes = shapes[neurons[-1]]
    potentials = np.zeros((timesteps, count, int(np.prod(classes)) * parts), dtype=np.int64)
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        steps = (stop - start) * window
        data = np.zeros((stop - start, window) + encoded.shape[2:], dtype=np.int32)
        data[:, :timesteps] = np.moveaxis(encoded[:, start:stop], 0, 1)
        data = data.reshape((steps,) + encoded.shape[2:])
        if flat_input:  # the first dense layer reads the (C, H, W) row-major vector
            data = data.reshape(steps, -1)
        else:  # netx maps are (W, H, C)
            data = data.transpose(0, 3, 2, 1)
        network = hdf5.Network(net_config=str(Path(path)), reset_interval=window, reset_offset=1,
                               input_message_bits=message_bits)
        source = Source(data=np.ascontiguousarray(np.moveaxis(data, 0, -1)))
        source.s_out.connect(network.inp)
        recorders = []
        for layer in network.layers[:len(recorded)]:
            recorder = lava_procs.SpikeRecorder(shape=layer.out.shape, record_steps=steps)
            layer.out.connect(recorder.a_in)
            recorders.append(recorder)
        monitor = Monitor()
        if not counted:
            monitor.probe(network.layers[-1].neuron.v, steps)
        try:
            network.run(condition=RunSteps(num_steps=steps),
                        run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            for index, (name, recorder) in enumerate(zip(neurons, recorders, strict=False)):
                shape = tuple(network.layers[index].out.shape)
                sent = lava_procs.unpack_spikes(recorder.spikes.get(), int(np.prod(shape)))
                sent = sent.reshape(shape + (steps,))
                if len(shape) == 3:
                    sent = sent.transpose(2, 1, 0, 3)  # (W, H, C) -> (C, H, W)
                rasters[name][:, start:stop] = _unwindow(sent, index + 1, window, timesteps)
            if not counted:
                (probed,) = monitor.get_data().values()
                values = np.asarray(next(iter(probed.values())))  # (steps, classes)
                potentials[:, start:stop] = _unwindow(np.moveaxis(values, 0, -1),
                                                      len(synapse_layers), window, timesteps)
        finally:
            network.stop()
    if counted:
        potentials = running_counts(rasters[neurons[-1]])
    else:  # each part's v is exact; a class's potential is the sum of its parts
        potentials = (potentials >> POTENTIAL_SHIFT).reshape((timesteps, count) + classes
                                                             + (parts,)).sum(axis=-1)
    return NetxRun(rasters, potentials, time.perf_counter() - started)


def _unwindow(sent: np.ndarray, offset: int, window: int, timesteps: int) -> np.ndarray:
    """``(*shape, batch * window)`` -> ``(T, batch, *shape)``: window steps ``offset .. + T``."""
    steps = np.moveaxis(np.asarray(sent), -1, 0)
    steps = steps.reshape((-1, window) + steps.shape[1:])[:, offset: offset + timesteps]
    return np.moveaxis(steps, 1, 0)


def running_counts(raster: np.ndarray) -> np.ndarray:
    """``(T, N, neurons)`` spike counts up to each step of a ``(T, N, ...)`` raster."""
    return np.cumsum(raster.reshape(raster.shape[:2] + (-1,)), axis=0, dtype=np.int64)


def spike_count_output(graph: ir.Graph) -> bool:
    """The readout counts a neuron layer's spikes (netx then emits that layer's spikes)."""
    (source,) = graph.inputs_of(graph.output_name)
    return isinstance(graph.nodes[source], ir.NEURONS)


def reference_potentials(graph: ir.Graph, result) -> np.ndarray:
    """The IR readout accumulator after every step ``(T, N, classes)``, from a simulator run
    with ``record=True`` (its last hidden raster through the output layer, saturating), or the
    running spike counts of the counted layer (:func:`spike_count_output`)."""
    if spike_count_output(graph):
        (counted,) = graph.inputs_of(graph.output_name)
        return running_counts(result.rasters[counted])
    (synapse,) = graph.inputs_of(graph.output_name)
    node = graph.nodes[synapse]
    # the spikes it reads, through a Flatten if there is one (a row-major view of the raster)
    source = next(layer.spike_source for layer in ir.layers(graph) if layer.name == synapse)
    spikes = result.rasters[source].reshape(result.rasters[source].shape[:2] + (-1,))
    current = np.einsum("tni,oi->tno", spikes.astype(np.int64), np.asarray(node.weight))
    if node.bias is not None:
        current = current + np.asarray(node.bias)
    return np.clip(np.cumsum(current, axis=0), ir.STATE_MIN, ir.STATE_MAX)


def agreement(graph: ir.Graph, reference, run: NetxRun) -> np.ndarray:
    """Per sample: every hidden layer's spikes and the output potentials after every step equal
    the simulator's (``reference``: an integer-mode run with ``record=True``)."""
    same = np.all(run.potentials == reference_potentials(graph, reference), axis=(0, 2))
    for name, raster in run.rasters.items():
        other = reference.rasters[name]
        same &= np.all((raster == other).reshape(raster.shape[0], raster.shape[1], -1),
                       axis=(0, 2))
    return same
