"""The shared resource model: what each layer of a graph costs on hardware, and chip profiles.

Pure functions over the IR (no graph mutation, no backend imports). The partition report
(:mod:`snncc.passes.partition`), the Lava backend and the FPGA backend all count resources here, so
a report and an emitted artifact never disagree.

**Layer.** One synaptic node (``ir.SYNAPTIC``: :class:`~snncc.ir.Dense` or
:class:`~snncc.ir.Conv2d`) plus the neurons it feeds (the first :class:`~snncc.ir.IF`,
:class:`~snncc.ir.Readout` — or ``ReLU``/``Clip`` before conversion — reached through non-synaptic
nodes). Pooling and layout nodes are routing, not cores: a layer's input is whatever the synaptic
node reads. Conv synapses are counted *unrolled* (one synapse per (input neuron, output neuron)
pair that a kernel tap connects, padding excluded), which is what a crossbar or a Loihi core stores.

**Weight bits.** Bits to store one *nonzero* weight (a weight of 0 is an absent synapse, see
``ir.Dense``), after removing the layer's common power-of-two factor (:func:`weight_exponent`:
quantized weights are ``m * 2**e`` with one exponent per layer, stored once): integer-valued
weights whose mantissas are all ±1 need 1 bit; otherwise the smallest two's-complement width
holding every mantissa (unsigned when none is negative). Float weights need an
explicit bit width (the deployment precision), else :func:`weight_bits` raises.

**FPGA block RAM** (:func:`fpga_bram36`). Xilinx 7-series BRAM36 = 36 Kb with aspect ratios
32Kx1, 16Kx2, 8Kx4, 4Kx9, 2Kx18, 1Kx36, 512x72 (UG473, "7 Series FPGAs Memory Resources", table
1-7/1-9; 512x72 needs simple dual port). A memory of ``depth`` words of ``word_bits`` is tiled with
ONE aspect ratio: ``ceil(depth / d) * ceil(word_bits / w)`` blocks, minimised over the ratios.
Mixing ratios inside one memory (e.g. a 37-bit word as 36+1) and BRAM18 halves are not used, so the
estimate is an upper bound on what vendor tools achieve.

**Loihi synapse encoding** (:func:`loihi_synapse_bits`): nengo-loihi's cost model
(``SynapseConfig.bits_per_axon``, nengo-loihi 1.x ``nengo_loihi/block.py``): the weights one input
axon reaches on a core are stored in groups of up to ``n_synapses + 1 = 64``; each group costs
``n * (weight_bits + index_bits) + 4 + 6`` bits (synapse-format index and group-size fields) rounded
up to a 64-bit word. Dense encoding (``compression=3``) stores every weight with no index; sparse
encoding (``compression=0``) stores only nonzeros plus an index of 6..12 bits
(``INDEX_BITS_MAP``). Weight widths round up to ``WEIGHT_BITS_MAP = 0,1,2,3,4,5,6,8``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError
from snncc.safety import MAX_CHIPS, MAX_CORES_PER_CHIP, read_text

#: Bits of one membrane potential / accumulator (``ir.STATE_BITS``, Loihi's 24-bit ``v``).
STATE_BITS = ir.STATE_BITS

# ---------------------------------------------------------------------------------- FPGA block RAM

#: Xilinx 7-series BRAM36 capacity in bits (UG473 v1.14, "36 Kb block RAM").
BRAM36_BITS = 36 * 1024
#: BRAM36 (depth, width) configurations (UG473 table 1-7, true/simple dual port; 512x72 is SDP).
BRAM36_ASPECTS: tuple[tuple[int, int], ...] = (
    (32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36), (512, 72),
)


def fpga_bram36(depth: int, word_bits: int, memories: int = 1) -> int:
    """BRAM36 blocks for ``memories`` independent memories of ``depth`` words x ``word_bits``.

    Each memory uses one aspect ratio (see module docstring):
    ``min over (d, w) of ceil(depth / d) * ceil(word_bits / w)``. Zero depth or width costs 0.
    """
    depth, word_bits, memories = int(depth), int(word_bits), int(memories)
    if depth < 0 or word_bits < 0 or memories < 0:
        raise SnnccError(f"BRAM estimate needs non-negative sizes, got {depth}x{word_bits}")
    if depth == 0 or word_bits == 0 or memories == 0:
        return 0
    one = min(math.ceil(depth / d) * math.ceil(word_bits / w) for d, w in BRAM36_ASPECTS)
    return memories * one


# ------------------------------------------------------------------------------------ weight bits


def weight_exponent(values: np.ndarray) -> int:
    """Largest ``e`` with every value a multiple of ``2**e`` (0 for no nonzero values).

    Quantized layers hold ``W = m * 2**e`` with one exponent per layer (the quantize pass, Loihi's
    ``weight_exp``): only the mantissa ``m`` is stored per synapse.
    """
    magnitudes = np.abs(np.asarray(values, dtype=np.int64))
    magnitudes = magnitudes[magnitudes != 0]
    if magnitudes.size == 0:
        return 0
    lowest_bits = magnitudes & -magnitudes
    return int(lowest_bits.min()).bit_length() - 1


def weight_bits(weight: np.ndarray, bits: int | None = None, *, default: int | None = None,
                layer: str = "?") -> int:
    """Bits to store one nonzero weight of ``weight`` (see module docstring); ``bits`` overrides.

    Float (not integer-valued) weights take ``default`` (the deployment precision); without it
    :class:`SnnccError` names ``layer``.
    """
    if bits is not None:
        if int(bits) < 1:
            raise SnnccError(f"layer {layer!r}: weight bit width must be >= 1, got {bits}")
        return int(bits)
    values = np.asarray(weight)
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return 1
    if values.dtype.kind == "f" and not np.all(np.isfinite(nonzero) & (nonzero == np.round(nonzero))):
        if default is not None:
            return int(default)
        raise SnnccError(
            f"layer {layer!r} has float weights; quantize it or give a weight bit width"
        )
    integers = nonzero.astype(np.int64)
    exponent = weight_exponent(integers)
    integers = integers >> exponent
    if np.all(np.abs(integers) == 1):
        return 1
    low, high = int(integers.min()), int(integers.max())
    if low >= 0:
        return max(high.bit_length(), 1)
    return max(high.bit_length(), (-low - 1).bit_length()) + 1


# ------------------------------------------------------------------------------- Loihi encoding

#: nengo-loihi ``SynapseConfig.WEIGHT_BITS_MAP`` (stored weight widths).
LOIHI_WEIGHT_BITS_MAP = (0, 1, 2, 3, 4, 5, 6, 8)
#: nengo-loihi ``SynapseConfig.INDEX_BITS_MAP`` (index widths of the sparse encoding).
LOIHI_INDEX_BITS_MAP = (0, 6, 7, 8, 9, 10, 11, 12)
#: Weights per synapse group: nengo-loihi formats synapses with ``n_synapses=63`` (+1).
LOIHI_GROUP_SIZE = 64
#: Per-group header: ``SYNAPSE_FMT_IDX_BITS = 4`` + ``N_SYNAPSES_BITS = 6`` (nengo-loihi).
LOIHI_GROUP_HEADER_BITS = 10
#: Synapse memory word (nengo-loihi rounds each group up to one int64 word).
LOIHI_WORD_BITS = 64


def loihi_stored_weight_bits(bits: int) -> int:
    """The Loihi weight width (``WEIGHT_BITS_MAP``) that holds ``bits``; raises above 8."""
    for stored in LOIHI_WEIGHT_BITS_MAP[1:]:
        if stored >= bits:
            return stored
    raise SnnccError(f"Loihi stores at most 8-bit weights, the layer needs {bits}")


def loihi_index_bits(targets: int) -> int:
    """Sparse-encoding index width for ``targets`` compartments (``INDEX_BITS_MAP``, 6..12)."""
    needed = max(int(math.ceil(math.log2(max(targets, 1)))), 0)
    for stored in LOIHI_INDEX_BITS_MAP[1:]:
        if stored >= needed:
            return stored
    return needed  # beyond 12 bits the core is over its 4096-compartment range anyway


def loihi_synapse_bits(weights_per_axon: np.ndarray | list[int], bits_per_weight: int) -> int:
    """Synapse memory bits for axons reaching ``weights_per_axon[i]`` weights each (nengo-loihi).

    ``bits_per_axon(n) = sum over groups g of ceil64(n_g * bits_per_weight + 10)`` with groups of
    up to 64 weights; ``bits_per_weight`` is the stored weight width plus, for the sparse
    encoding, the index width. An axon reaching nothing costs nothing.
    """
    counts = np.asarray(weights_per_axon, dtype=np.int64)
    full, rest = np.divmod(counts, LOIHI_GROUP_SIZE)

    def words(bits: np.ndarray | int) -> np.ndarray | int:
        return -(-np.asarray(bits) // LOIHI_WORD_BITS) * LOIHI_WORD_BITS

    full_cost = words(LOIHI_GROUP_SIZE * bits_per_weight + LOIHI_GROUP_HEADER_BITS)
    rest_cost = np.where(rest > 0, words(rest * bits_per_weight + LOIHI_GROUP_HEADER_BITS), 0)
    return int(np.sum(full * full_cost + rest_cost))


def loihi_encoding_bits(weights_per_axon_dense: np.ndarray, weights_per_axon_nonzero: np.ndarray,
                        layer_bits: int, targets: int) -> tuple[int, str]:
    """The cheaper of nengo-loihi's dense and sparse encodings: ``(bits, "dense" | "sparse")``.

    Dense stores ``weights_per_axon_dense`` weights of the stored width; sparse stores only the
    nonzeros, each with an index over ``targets`` compartments. Layers wider than 8 bits are
    costed at 8 (the width itself is a separate violation in the partition report).
    """
    stored = loihi_stored_weight_bits(min(layer_bits, LOIHI_WEIGHT_BITS_MAP[-1]))
    dense = loihi_synapse_bits(weights_per_axon_dense, stored)
    sparse = loihi_synapse_bits(weights_per_axon_nonzero, stored + loihi_index_bits(targets))
    return (dense, "dense") if dense <= sparse else (sparse, "sparse")


# ---------------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LayerResources:
    """Resource figures of one layer (a synaptic node plus the neurons it feeds).

    ``synapses`` counts every connection (conv unrolled, padding excluded);
    ``nonzero_synapses`` only those with a nonzero weight (what a sparse encoding stores).
    ``parameters`` is the number of stored weight values (the kernel for a conv, shared across
    positions), ``weight_memory_bytes = ceil(parameters * weight_bits / 8)`` and
    ``sparse_weight_memory_bytes = ceil(nonzero_parameters * (weight_bits + index_bits) / 8)``
    with ``index_bits = ceil(log2(parameters per output neuron))``.
    ``state_memory_bytes = ceil(neurons * STATE_BITS / 8)``.
    ``fan_in``/``fan_out``: most synapses into one neuron / out of one input neuron (dense count).
    ``sources``: upstream layers (synaptic node names) or the graph input's name;
    ``spike_node``: the node whose spikes this layer receives (key into spike rates);
    ``kernel_input``: ``(channels, kH, kW)`` the layer reads as a convolution (a Dense after a
    Flatten of ``(C, H, W)`` reads ``(C, H, W)``; a plain Dense reads ``(in, 1, 1)``).
    ``stage_inputs``: neurons of ``spike_node`` (the inputs of the layer's stage, before any
    pooling); ``fpga_lane_bits``: see :func:`fpga_weight_memory`.
    """

    name: str
    kind: str
    neuron_node: str | None
    spike_node: str
    sources: tuple[str, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    neurons: int
    fan_in: int
    fan_out: int
    synapses: int
    nonzero_synapses: int
    parameters: int
    nonzero_parameters: int
    weight_bits: int
    weight_memory_bytes: int
    sparse_weight_memory_bytes: int
    state_memory_bytes: int
    kernel_input: tuple[int, int, int]
    stage_inputs: int = 0
    fpga_lane_bits: int = 8
    consumers: tuple[str, ...] = field(default=())

    @property
    def pruned(self) -> bool:
        return self.nonzero_parameters < self.parameters

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "neuron_node": self.neuron_node,
            "spike_node": self.spike_node, "sources": list(self.sources),
            "consumers": list(self.consumers),
            "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "neurons": self.neurons, "fan_in": self.fan_in, "fan_out": self.fan_out,
            "synapses": self.synapses, "nonzero_synapses": self.nonzero_synapses,
            "parameters": self.parameters, "nonzero_parameters": self.nonzero_parameters,
            "weight_bits": self.weight_bits, "weight_memory_bytes": self.weight_memory_bytes,
            "sparse_weight_memory_bytes": self.sparse_weight_memory_bytes,
            "state_memory_bytes": self.state_memory_bytes,
        }




def conv_hits(size: int, kernel: int, stride: int, pad_before: int, dilation: int,
              out_start: int, out_stop: int) -> np.ndarray:
    """Along one axis: ``hits[y, u] = 1`` when an output in ``[out_start, out_stop)`` reads real
    input position ``y`` through tap ``u`` (``y = i * stride + u * dilation - pad_before``)."""
    hits = np.zeros((size, kernel), dtype=np.int64)
    outputs = np.arange(out_start, out_stop)
    for tap in range(kernel):
        positions = outputs * stride + tap * dilation - pad_before
        valid = positions[(positions >= 0) & (positions < size)]
        np.add.at(hits[:, tap], valid, 1)
    return hits


def conv_tap_counts(size: int, kernel: int, stride: int, pad_before: int, dilation: int,
                    out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis: per tap ``u``, how many outputs read a real (unpadded) input through it,
    and per input position, how many (output, tap) pairs read it."""
    hits = conv_hits(size, kernel, stride, pad_before, dilation, 0, out_size)
    return hits.sum(axis=0), hits.sum(axis=1)


def conv_synapse_counts(node: ir.Conv2d, input_shape: tuple[int, ...],
                        output_shape: tuple[int, ...],
                        channels: np.ndarray | slice | None = None) -> tuple[int, int]:
    """Unrolled ``(synapses, nonzero_synapses)`` of a conv (optionally only output ``channels``).

    ``sum over (o, c, u, v) of n_h(u) * n_w(v)`` where ``n_h(u)`` counts output rows whose tap
    ``u`` lands on a real input row (padding excluded); nonzero counts only taps with ``W != 0``.
    """
    _, height, width = input_shape
    _, out_h, out_w = output_shape
    kernel_h, kernel_w = node.weight.shape[2:]
    taps_h, _ = conv_tap_counts(height, kernel_h, node.stride[0], node.padding[0],
                                node.dilation[0], out_h)
    taps_w, _ = conv_tap_counts(width, kernel_w, node.stride[1], node.padding[1],
                                node.dilation[1], out_w)
    weight = node.weight if channels is None else node.weight[channels]
    reach = np.outer(taps_h, taps_w)  # (kH, kW): outputs per tap
    dense = int(weight.shape[0] * weight.shape[1] * reach.sum())
    nonzero = int(((weight != 0).sum(axis=(0, 1)) * reach).sum())
    return dense, nonzero


def _kernel_input(graph: ir.Graph, name: str, shapes: dict[str, tuple[int, ...]]
                  ) -> tuple[int, int, int]:
    node = graph.nodes[name]
    source = graph.inputs_of(name)[0]
    if isinstance(node, ir.Conv2d):
        channels = node.weight.shape[1]
        return (channels, int(node.weight.shape[2]), int(node.weight.shape[3]))
    current = source
    while isinstance(graph.nodes[current], ir.LAYOUT):
        (current,) = graph.inputs_of(current)
        if len(shapes[current]) == 3:
            channels, height, width = shapes[current]
            return (channels, height, width)
    return (int(node.weight.shape[1]), 1, 1)


def analyze_layer(graph: ir.Graph, name: str, *, bits: int | None = None,
                  default_bits: int | None = None,
                  shapes: dict[str, tuple[int, ...]] | None = None,
                  view: list[ir.Layer] | None = None) -> LayerResources:
    """Resource figures of the layer whose synaptic node is ``name`` (see :class:`LayerResources`).

    ``bits`` forces the weight width; ``default_bits`` applies to float weights only. ``view``:
    the graph's :func:`snncc.ir.layers`, when the caller has it already.
    """
    shapes = shapes if shapes is not None else graph.infer_shapes()
    node = graph.nodes[name]
    if not isinstance(node, ir.SYNAPTIC):
        raise SnnccError(f"node {name!r} ({type(node).__name__}) is not a synaptic layer")
    view = graph.layers() if view is None else view
    layer = next(each for each in view if each.name == name)
    input_shape = shapes[graph.inputs_of(name)[0]]
    output_shape = shapes[name]
    weight = node.weight
    nonzero_weight = weight != 0
    neurons = int(np.prod(output_shape))
    if isinstance(node, ir.Dense):
        kind = "dense"
        synapses = int(weight.size)
        nonzero_synapses = int(nonzero_weight.sum())
        fan_in = int(weight.shape[1])
        fan_out = int(weight.shape[0])
        per_neuron = int(weight.shape[1])
    else:
        kind = "conv"
        synapses, nonzero_synapses = conv_synapse_counts(node, input_shape, output_shape)
        per_neuron = int(np.prod(weight.shape[1:]))
        fan_in = per_neuron
        _, height, width = input_shape
        _, hits_h = conv_tap_counts(height, weight.shape[2], node.stride[0], node.padding[0],
                                    node.dilation[0], output_shape[1])
        _, hits_w = conv_tap_counts(width, weight.shape[3], node.stride[1], node.padding[1],
                                    node.dilation[1], output_shape[2])
        fan_out = int(weight.shape[0] // node.groups * hits_h.max() * hits_w.max())
    layer_bits = weight_bits(weight, bits, default=default_bits, layer=name)
    nonzero_parameters = int(nonzero_weight.sum())
    index_bits = max(int(math.ceil(math.log2(max(per_neuron, 2)))), 1)
    spike_node = layer.spike_source
    if np.all(np.abs(weight) == 1):
        lane_bits = 1
    elif weight.dtype.kind == "f" and not np.all(weight == np.round(weight)):
        lane_bits = layer_bits
    else:
        lane_bits = signed_bits(weight) if bits is None else layer_bits
    consumers = tuple(other.name for other in view if name in other.upstream)
    return LayerResources(
        name=name, kind=kind, neuron_node=layer.target_name, spike_node=spike_node,
        sources=layer.upstream, input_shape=tuple(input_shape), output_shape=tuple(output_shape),
        neurons=neurons, fan_in=fan_in, fan_out=fan_out, synapses=synapses,
        nonzero_synapses=nonzero_synapses, parameters=int(weight.size),
        nonzero_parameters=nonzero_parameters, weight_bits=layer_bits,
        weight_memory_bytes=math.ceil(weight.size * layer_bits / 8),
        sparse_weight_memory_bytes=math.ceil(nonzero_parameters * (layer_bits + index_bits) / 8),
        state_memory_bytes=math.ceil(neurons * STATE_BITS / 8),
        kernel_input=_kernel_input(graph, name, shapes),
        stage_inputs=int(np.prod(shapes[spike_node])), fpga_lane_bits=lane_bits,
        consumers=consumers,
    )


def analyze_layers(graph: ir.Graph, *, bits: int | None = None,
                   default_bits: int | None = None) -> list[LayerResources]:
    """:class:`LayerResources` figures for every synaptic node, in topological order."""
    shapes = graph.infer_shapes()
    view = graph.layers()
    return [analyze_layer(graph, layer.name, bits=bits, default_bits=default_bits, shapes=shapes,
                          view=view) for layer in view]


def signed_bits(values: np.ndarray) -> int:
    """Fewest two's-complement bits holding every value (at least 2: a sign and one more bit)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return 2
    low, high = int(values.min()), int(values.max())
    return max(2, high.bit_length() + 1, (-low - 1).bit_length() + 1 if low < 0 else 0)


def fpga_weight_memory(layer: LayerResources) -> tuple[int, int]:
    """``(depth, word_bits)`` of a layer's weight memory in the FPGA bundle's layout.

    The bundle (``snncc.backends.fpga``) lowers a layer to a dense matrix (convolutions and sum
    pooling as Toeplitz matrices) and stores word ``i`` = stage input ``i`` with lane ``j`` = the
    weight to neuron ``j``: depth = the layer's stage inputs (neurons of its spike source),
    word = ``neurons x lane_bits``; lanes are 1 bit for ±1 layers, else the signed width
    (:func:`signed_bits`), 8 for float weights. Approximation: a sum pool folded into the stage
    can widen the lanes beyond the synaptic node's own weights.
    """
    return layer.stage_inputs, layer.neurons * layer.fpga_lane_bits


def layer_fpga_bram36(layer: LayerResources) -> int:
    """BRAM36 blocks of one layer's weight memory on an FPGA (:func:`fpga_weight_memory`).

    Neuron parameters (thresholds, initial potentials, biases) are not counted, as in the
    bundle's own BRAM figure.
    """
    return fpga_bram36(*fpga_weight_memory(layer))


# ----------------------------------------------------------------------------------- chip profiles

CHIPS_DIR = Path(__file__).with_name("chips")

#: Per-core resources a profile may limit (``core:`` keys) and what they count.
CORE_RESOURCES: dict[str, str] = {
    "neurons": "neurons (compartments) on one core",
    "input_axons": "distinct input neurons whose spikes reach one core",
    "output_axons": "output axons of one core (neurons x destination cores)",
    "synapses": "synapses stored on one core",
    "synapse_memory_bits": "synapse memory of one core in bits",
    "fan_in": "synapses into one neuron",
    "kernel_memory": "kernel memory entries of one core (DYNAP-CNN formula)",
    "neuron_memory": "neuron state entries of one core (DYNAP-CNN formula)",
    "bram36": "36 Kb block RAMs",
}

_TOP_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"),
    "title": (str, "a string"),
    "kind": (str, "one of 'neuromorphic', 'fpga'"),
    "estimate": (bool, "true or false"),
    "chips": (int, "a positive integer"),
    "cores_per_chip": (int, "a positive integer"),
    "split": (bool, "true or false"),
    "layers_per_core": ((int, type(None)), "a positive integer or null"),
    "weight_bits": (int, "a positive integer"),
    "state_bits": (int, "a positive integer"),
    "destinations": (int, "a positive integer"),
    "max_kernel": (int, "a positive integer"),
    "synapse_encoding": (str, "one of 'count', 'nengo-loihi'"),
    "core": (dict, "a mapping of per-core limits"),
    "notes": (str, "a string"),
    "energy": (dict, "a mapping of published energy and timing figures"),
}
_REQUIRED = ("name", "kind", "cores_per_chip", "core")
_ENCODINGS = ("count", "nengo-loihi")
_KINDS = ("neuromorphic", "fpga")


#: Published per-event figures an ``energy:`` table may give (SI units: joules, seconds, watts),
#: and what each one prices. ``null`` (or absent) means "not published": the estimate leaves the
#: term out and says so (:mod:`snncc.energy`).
ENERGY_FIGURES: dict[str, str] = {
    "synaptic_event_j": "energy of one synaptic event (one spike delivered over one synapse)",
    "neuron_update_j": "energy of one neuron's update in one timestep",
    "spike_j": "energy of routing one emitted spike",
    "static_w": "static (leakage / resting) power of the chip",
    "step_s": "fixed duration of one timestep (a global tick)",
    "synaptic_event_s": "time of one synaptic event on a core",
    "neuron_update_s": "time of one neuron update on a core",
    "sync_s": "time of the barrier synchronisation ending each timestep",
}


@dataclass(frozen=True)
class EnergyProfile:
    """A chip's published energy and timing figures (``energy:`` in a profile; see
    :data:`ENERGY_FIGURES`), each traced to its publication in ``sources`` (figure -> citation).

    A figure that is not published is ``None``; ``notes`` says what is missing and why.
    """

    synaptic_event_j: float | None = None
    neuron_update_j: float | None = None
    spike_j: float | None = None
    static_w: float | None = None
    step_s: float | None = None
    synaptic_event_s: float | None = None
    neuron_update_s: float | None = None
    sync_s: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    notes: str = ""

    def figures(self) -> dict[str, float | None]:
        """Every figure of :data:`ENERGY_FIGURES` (``None``: not published)."""
        return {name: getattr(self, name) for name in ENERGY_FIGURES}

    def as_dict(self) -> dict[str, Any]:
        return {**self.figures(), "sources": dict(self.sources), "notes": self.notes}


def energy_from_dict(data: dict[str, Any], where: str) -> EnergyProfile:
    """Validate a profile's ``energy:`` table: known figures, non-negative numbers or null, and a
    ``sources`` entry (a non-empty string) for every figure that is given."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        full_key = f"energy.{key}"
        if key == "sources":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and k in ENERGY_FIGURES and isinstance(v, str) and v.strip()
                for k, v in value.items()
            ):
                raise _type_error(where, full_key, "a mapping of figure names to citations",
                                  value)
            values[key] = dict(value)
        elif key == "notes":
            if not isinstance(value, str):
                raise _type_error(where, full_key, "a string", value)
            values[key] = value.strip()
        elif key in ENERGY_FIGURES:
            ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                   and math.isfinite(value) and value >= 0)
            if not ok:
                raise _type_error(where, full_key, "a non-negative number (SI units) or null",
                                  value)
            values[key] = None if value is None else float(value)
        else:
            raise SnnccError(f"chip profile {where}: unknown key {full_key!r}; known: "
                             f"{', '.join(list(ENERGY_FIGURES) + ['sources', 'notes'])}")
    sources = values.get("sources", {})
    unsourced = [key for key in ENERGY_FIGURES if values.get(key) is not None
                 and key not in sources]
    if unsourced:
        raise SnnccError(f"chip profile {where}: energy figure {unsourced[0]!r} has no entry in "
                         f"'energy.sources' (every published figure names its source)")
    return EnergyProfile(**values)


@dataclass(frozen=True)
class ChipProfile:
    """Resource limits of one target (read from ``snncc/chips/<name>.yaml`` or a user file).

    ``core`` maps a resource (:data:`CORE_RESOURCES`) to its per-core limit, or to a tuple of
    ``cores_per_chip`` limits for chips whose cores differ (DYNAP-CNN). ``chips`` is how many chips
    the system has (a board); ``split`` whether a layer may span cores; ``layers_per_core`` how many
    layers one core may hold (``None``: any number, packed until a limit is hit);
    ``destinations`` the most consumer layers one core may send to; ``max_kernel`` the largest
    kernel side; ``weight_bits`` the widest weight the synapses store. ``energy``: the published
    energy and timing figures (:class:`EnergyProfile`), ``None`` when the profile has none.
    """

    name: str
    kind: str
    cores_per_chip: int
    core: dict[str, int | tuple[int, ...]]
    title: str = ""
    estimate: bool = False
    chips: int = 1
    split: bool = True
    layers_per_core: int | None = 1
    weight_bits: int | None = None
    state_bits: int = STATE_BITS
    destinations: int | None = None
    max_kernel: int | None = None
    synapse_encoding: str = "count"
    notes: str = ""
    source: str = ""
    energy: EnergyProfile | None = None

    def core_limit(self, resource: str, core_index: int = 0) -> int | None:
        """Limit of ``resource`` on core ``core_index`` (None: unlimited)."""
        value = self.core.get(resource)
        if isinstance(value, tuple):
            return value[core_index % len(value)]
        return value

    @property
    def heterogeneous(self) -> bool:
        return any(isinstance(v, tuple) for v in self.core.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "kind": self.kind, "estimate": self.estimate,
            "chips": self.chips, "cores_per_chip": self.cores_per_chip, "split": self.split,
            "layers_per_core": self.layers_per_core, "weight_bits": self.weight_bits,
            "state_bits": self.state_bits, "destinations": self.destinations,
            "max_kernel": self.max_kernel, "synapse_encoding": self.synapse_encoding,
            "core": {k: list(v) if isinstance(v, tuple) else v for k, v in self.core.items()},
            "energy": None if self.energy is None else self.energy.as_dict(),
        }


def _type_error(where: str, key: str, expected: str, value: Any) -> SnnccError:
    shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
    return SnnccError(f"chip profile {where}: key {key!r} must be {expected}, got {shown}")


def chip_from_dict(data: Any, where: str = "<dict>") -> ChipProfile:
    """Validate a profile mapping (the YAML schema) and build a :class:`ChipProfile`.

    Errors name the file, the key and the expected type in one line.
    """
    if not isinstance(data, dict):
        raise SnnccError(f"chip profile {where}: expected a mapping at the top level, "
                         f"got {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise SnnccError(f"chip profile {where}: unknown key {key!r}; known keys: "
                             f"{', '.join(_TOP_KEYS)}")
    for key in _REQUIRED:
        if key not in data:
            raise SnnccError(f"chip profile {where}: missing required key {key!r} "
                             f"({_TOP_KEYS[key][1]})")
    values: dict[str, Any] = {}
    for key, value in data.items():
        expected_type, expected = _TOP_KEYS[key]
        ok = isinstance(value, expected_type)
        if expected_type is int or expected_type == (int, type(None)):
            ok = ok and not isinstance(value, bool) and (value is None or value >= 1)
        if not ok:
            raise _type_error(where, key, expected, value)
        values[key] = value
    if values["kind"] not in _KINDS:
        raise _type_error(where, "kind", _TOP_KEYS["kind"][1], values["kind"])
    if values.get("synapse_encoding", "count") not in _ENCODINGS:
        raise _type_error(where, "synapse_encoding", _TOP_KEYS["synapse_encoding"][1],
                          values["synapse_encoding"])
    for key, limit in (("cores_per_chip", MAX_CORES_PER_CHIP), ("chips", MAX_CHIPS)):
        if values.get(key, 1) > limit:  # placement walks every core
            raise SnnccError(f"chip profile {where}: {key} = {values[key]:,} is beyond snncc's "
                             f"limit of {limit:,}")
    cores = values["cores_per_chip"]
    core: dict[str, int | tuple[int, ...]] = {}
    for key, value in values["core"].items():
        full_key = f"core.{key}"
        if key not in CORE_RESOURCES:
            raise SnnccError(f"chip profile {where}: unknown key {full_key!r}; known per-core "
                             f"resources: {', '.join(CORE_RESOURCES)}")
        if isinstance(value, list):
            if len(value) != cores or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value
            ):
                raise _type_error(where, full_key,
                                  f"a positive integer or a list of {cores} positive integers "
                                  f"(one per core)", value)
            core[key] = tuple(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            core[key] = value
        else:
            raise _type_error(where, full_key, "a positive integer", value)
    if not core:
        raise SnnccError(f"chip profile {where}: key 'core' must list at least one limit")
    values["core"] = core
    if "energy" in values:
        values["energy"] = energy_from_dict(values["energy"], where)
    return ChipProfile(source=where, **values)


def load_chip_file(path: str | Path) -> ChipProfile:
    """Read and validate a chip profile YAML file (UTF-8, no aliases, see :func:`chip_from_dict`).

    YAML aliases are refused: a few hundred bytes of nested aliases expand to gigabytes
    (a "billion laughs"), and a profile has no need for them.
    """
    import yaml

    path = Path(path)
    text = read_text(path, "chip profile")
    try:
        data = yaml.load(text, Loader=_no_alias_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None)
        problem = problem if problem == ALIAS_PROBLEM else "not valid YAML"
        raise SnnccError(f"chip profile {path}: {problem}{line}") from None
    return chip_from_dict(data, str(path))


ALIAS_PROBLEM = "YAML aliases (*name) are not allowed in chip profiles"


@cache
def _no_alias_loader() -> type:
    """PyYAML's safe loader that refuses alias nodes while composing (built on first use)."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, ALIAS_PROBLEM,
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def builtin_chips() -> list[str]:
    """Names of the built-in chip profiles (``snncc/chips/*.yaml``)."""
    return sorted(p.stem for p in CHIPS_DIR.glob("*.yaml"))


@cache
def _builtin(name: str) -> ChipProfile:
    return load_chip_file(CHIPS_DIR / f"{name}.yaml")


def load_chip(name_or_path: str | Path | ChipProfile) -> ChipProfile:
    """A built-in profile by name (``loihi``, ``speck``, ``zynq-7020`` ...) or a YAML file path
    (a profile already loaded is returned as it is)."""
    if isinstance(name_or_path, ChipProfile):
        return name_or_path
    text = str(name_or_path)
    if text in builtin_chips():
        return _builtin(text)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_chip_file(path)
    raise SnnccError(f"unknown chip {text!r}; built-in chips: {', '.join(builtin_chips())} "
                     f"(or give a .yaml profile)")


# ------------------------------------------------------------------------------------- formulas


def ceil_log2(value: int) -> int:
    """``ceil(log2(value))`` for ``value >= 1`` (0 for 1)."""
    return max(int(value) - 1, 0).bit_length()


def dynapcnn_kernel_memory(in_channels: int, kernel_h: int, kernel_w: int,
                           out_channels: int) -> int:
    """DYNAP-CNN kernel memory entries: ``c * 2^(ceil(log2(kx*ky)) + ceil(log2(f)))``.

    Source: sinabs-dynapcnn documentation, "Chip memory constraints" (c input channels, f output
    features, kx*ky kernel).
    """
    return in_channels * 2 ** (ceil_log2(kernel_h * kernel_w) + ceil_log2(out_channels))


def dynapcnn_neuron_memory(out_channels: int, out_h: int, out_w: int) -> int:
    """DYNAP-CNN neuron memory entries: ``f * 2^(ceil(log2(fy)) + ceil(log2(fx)))``.

    Source: sinabs-dynapcnn documentation, "Chip memory constraints" (f output features, fy x fx
    output feature map).
    """
    return out_channels * 2 ** (ceil_log2(out_h) + ceil_log2(out_w))


# ------------------------------------------------------------------------------ blocks on cores


@dataclass(frozen=True)
class Block:
    """One piece of a layer placed on one core.

    ``channels`` is the output-channel range (conv) or output-neuron range (dense), half open;
    ``rows``/``cols`` the output rows/columns of a conv tile (``(0, 1)`` for dense layers).
    """

    layer: str
    index: int
    channels: tuple[int, int]
    rows: tuple[int, int] = (0, 1)
    cols: tuple[int, int] = (0, 1)

    @property
    def neurons(self) -> int:
        return ((self.channels[1] - self.channels[0]) * (self.rows[1] - self.rows[0])
                * (self.cols[1] - self.cols[0]))

    @property
    def label(self) -> str:
        return f"{self.layer}[{self.index}]"

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "index": self.index, "channels": list(self.channels),
                "rows": list(self.rows), "cols": list(self.cols), "neurons": self.neurons}


def whole_block(layer: LayerResources) -> Block:
    """The block covering a whole layer."""
    if layer.kind == "conv":
        channels, height, width = layer.output_shape
        return Block(layer.name, 0, (0, channels), (0, height), (0, width))
    return Block(layer.name, 0, (0, layer.neurons))


def axon_weight_counts(node: ir.Dense | ir.Conv2d, layer: LayerResources, block: Block
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per input neuron (axon) of the layer: weights it reaches inside ``block``.

    Returns ``(dense, nonzero)`` arrays over the layer's input neurons (flattened); ``dense``
    counts every connection, ``nonzero`` only nonzero weights. Exact, padding excluded.
    """
    low, high = block.channels
    if isinstance(node, ir.Dense):
        rows = node.weight[low:high]
        dense = np.full(rows.shape[1], high - low, dtype=np.int64)
        return dense, (rows != 0).sum(axis=0).astype(np.int64)
    in_channels, height, width = layer.input_shape
    kernel_h, kernel_w = node.weight.shape[2:]
    hits_h = conv_hits(height, kernel_h, node.stride[0], node.padding[0], node.dilation[0],
                       *block.rows)
    hits_w = conv_hits(width, kernel_w, node.stride[1], node.padding[1], node.dilation[1],
                       *block.cols)
    per_group_out = node.weight.shape[0] // node.groups
    per_group_in = node.weight.shape[1]
    dense_taps = np.zeros((in_channels, kernel_h, kernel_w), dtype=np.int64)
    nonzero_taps = np.zeros((in_channels, kernel_h, kernel_w), dtype=np.int64)
    for group in range(node.groups):
        first = max(low, group * per_group_out)
        last = min(high, (group + 1) * per_group_out)
        if first >= last:
            continue
        inputs = slice(group * per_group_in, (group + 1) * per_group_in)
        dense_taps[inputs] += last - first
        nonzero_taps[inputs] += (node.weight[first:last] != 0).sum(axis=0)
    dense = np.einsum("yu,xv,cuv->cyx", hits_h, hits_w, dense_taps)
    nonzero = np.einsum("yu,xv,cuv->cyx", hits_h, hits_w, nonzero_taps)
    return dense.reshape(-1), nonzero.reshape(-1)


def block_usage(node: ir.Dense | ir.Conv2d, layer: LayerResources, block: Block, chip: ChipProfile,
                reach: int = 1) -> dict[str, int]:
    """What ``block`` of ``layer`` uses of each per-core resource ``chip`` limits.

    * ``neurons``: neurons of the block.
    * ``input_axons``: input neurons with at least one nonzero weight into the block.
    * ``output_axons``: ``neurons * reach``, ``reach`` = destination cores per neuron.
    * ``synapses``: nonzero synapses into the block (conv unrolled).
    * ``fan_in``: most nonzero synapses into one neuron of the block.
    * ``synapse_memory_bits``: the chip's encoding — ``nengo-loihi`` (the cheaper of the dense
      and sparse encodings, :func:`loihi_encoding_bits`) or ``count`` (nonzero synapses x
      weight bits).
    * ``kernel_memory`` / ``neuron_memory``: the DYNAP-CNN formulas for the block, reading a dense
      layer as a convolution over :attr:`Layer.kernel_input` with a 1x1 output.
    * ``bram36``: :func:`layer_fpga_bram36` (the FPGA bundle's weight memory layout).
    """
    used: dict[str, int] = {}
    wanted = set(chip.core)
    if wanted & {"input_axons", "synapses", "synapse_memory_bits"}:
        dense_counts, nonzero_counts = axon_weight_counts(node, layer, block)
        used["input_axons"] = int(np.count_nonzero(nonzero_counts))
        used["synapses"] = int(nonzero_counts.sum())
        if chip.synapse_encoding == "nengo-loihi":
            used["synapse_memory_bits"] = loihi_encoding_bits(
                dense_counts, nonzero_counts, layer.weight_bits, block.neurons)[0]
        else:
            used["synapse_memory_bits"] = used["synapses"] * layer.weight_bits
    used["neurons"] = block.neurons
    used["output_axons"] = block.neurons * max(reach, 1)
    if "fan_in" in wanted:
        rows = node.weight[block.channels[0]:block.channels[1]]
        used["fan_in"] = int((rows != 0).reshape(rows.shape[0], -1).sum(axis=1).max())
    if wanted & {"kernel_memory", "neuron_memory"}:
        channels = block.channels[1] - block.channels[0]
        in_channels, kernel_h, kernel_w = layer.kernel_input
        used["kernel_memory"] = dynapcnn_kernel_memory(in_channels, kernel_h, kernel_w, channels)
        used["neuron_memory"] = dynapcnn_neuron_memory(
            channels, block.rows[1] - block.rows[0], block.cols[1] - block.cols[0])
    if "bram36" in wanted:
        used["bram36"] = layer_fpga_bram36(layer)
    return {resource: used[resource] for resource in chip.core}
