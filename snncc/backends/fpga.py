"""The ``fpga`` target: a weight bundle an FPGA design consumes, plus the Verilog engine that reads it.

**What the engine runs.** A chain of layers; each layer is ONE dense integer weight matrix (plus
an optional bias) feeding integrate-and-fire neurons (:class:`~snncc.ir.IF`) or the readout
(:class:`~snncc.ir.Readout`). The engine (``snncc/hdl/if_layer.v``) consumes dense layers
only, so every run of stateless linear nodes between two neuron stages — ``Dense``, ``Conv2d``,
``SumPool2d`` (scale 1), ``Flatten``, ``Reshape``, ``Transpose`` — is *lowered* to one equivalent
dense (Toeplitz) matrix ``A`` and offset ``c``, with ``y = A @ x + c`` for the row-major flattened
input ``x``. In the integer mode these nodes are exact integer affine maps without rounding or
saturation (:mod:`snncc.ir`), so their composition is exactly equivalent (tests check it against
the reference simulator). ``A`` is built by pushing the identity basis through the reference
step engine's own operators (:func:`snncc.engines.step.conv2d`, :func:`~snncc.engines.step.sum_pool`).
``MaxPool2d``, ``Add`` (branches) and float-only nodes are rejected.

**Packing** (:func:`pack_memory`, the one packing every file format renders). A memory is a
``(depth, lanes)`` integer array; word ``d`` packs lane ``k`` into bits ``[k*bits, (k+1)*bits)``
(lane 0 in the least significant bits). Weight memories have one word per *input* (presynaptic
neuron) ``i`` with lane ``j`` = ``A[j, i]`` (the weight to output neuron ``j``): reading word ``i``
when input ``i`` spikes gives every neuron's weight at once. A layer whose weights are all ±1
packs 1 bit per synapse (bit 1 = +1, bit 0 = -1); any other layer packs ``bits``-bit two's
complement with the fewest bits that hold every weight (at least 2, at most
:data:`MAX_WEIGHT_BITS`, or exactly ``options["weight_bits"]``). When every weight is a multiple
of ``2**k`` (:func:`snncc.resources.weight_exponent`; quantized layers are ``mantissa * 2**exponent``) the lanes hold
``W / 2**k`` and the engine shifts each input event left by ``k``, which is exact. Thresholds, biases and initial
potentials are memories of depth ``neurons`` with one lane, two's complement, at most
:data:`PARAM_BITS` bits (they live in the 24-bit state).

**Formats.** ``mem/*.mem`` (``$readmemh``: one word per line, most significant hex digit first),
``coe/*.coe`` (Xilinx, radix 16, same words), ``include/*.h`` (C: ``uint32_t`` limbs per word,
least significant limb first) and ``npy/*.npy`` (the same limbs, ``uint32`` array
``(depth, limbs)``). ``manifest.json`` records everything with sha256 hashes, and ``hdl/`` holds
the engine, a generated top level (``snn_network.v``) and a file-driven testbench.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import snncc
from snncc import ir, resources
from snncc.backends import Target
from snncc.engines import step
from snncc.errors import ResourceError, SnnccError, UnsupportedError

BUNDLE_FORMAT = "snncc-fpga-bundle"
BUNDLE_VERSION = 1

#: Widest packed weight. The engine multiplies a weight by an input value in one DSP48E1
#: (25 x 18-bit signed multiplier, Xilinx UG479); 16 bits leave room for the sign-extended operand.
MAX_WEIGHT_BITS = 16
#: Thresholds, biases and initial potentials are stored in the IR's 24-bit state width.
PARAM_BITS = ir.STATE_BITS
#: Widest exact synaptic-current accumulator (the DSP48E1 accumulator is 48 bits, UG479).
MAX_CURRENT_BITS = 48
#: Direct-coded inputs are raw integers; by default 8-bit pixels carried as signed 9-bit values.
DEFAULT_INPUT_BITS = 9
#: C header limb width.
LIMB_BITS = 32
#: Lowered dense matrices larger than this are refused (the Toeplitz form of a big conv).
MAX_LOWERED_ENTRIES = 1 << 26

HDL_DIR = Path(__file__).resolve().parents[1] / "hdl"
ENGINE_FILE = "if_layer.v"
TESTBENCH_FILE = "tb_network.v"
NETWORK_FILE = "snn_network.v"
CONFIG_FILE = "network_config.vh"

_LINEAR = (ir.Dense, ir.Conv2d, ir.SumPool2d, ir.Flatten, ir.Reshape, ir.Transpose)
_NEURONS = (ir.IF, ir.Readout)
SUPPORTED = "Dense, Conv2d, SumPool2d, Flatten, Reshape, Transpose, IF, Readout"
CONV_POLICY = (
    "Conv2d, SumPool2d, Flatten, Reshape and Transpose are lowered to dense (Toeplitz) matrices: "
    "each layer's memory holds the exact integer matrix of all linear nodes between two neuron "
    "stages"
)


# ------------------------------------------------------------------------------------- packing


@dataclass
class PackedMemory:
    """One memory image: ``depth`` words of ``lanes * bits`` bits (see the module docstring)."""

    name: str
    values: np.ndarray  # (depth, lanes) int64, the logical values
    bits: int
    binary: bool
    words: list[int]
    description: str = ""
    shift: int = 0  # a lane holds value / 2**shift (the engine shifts it back)

    @property
    def depth(self) -> int:
        return int(self.values.shape[0])

    @property
    def lanes(self) -> int:
        return int(self.values.shape[1])

    @property
    def word_bits(self) -> int:
        return self.lanes * self.bits

    @property
    def hex_digits(self) -> int:
        return max(1, math.ceil(self.word_bits / 4))

    @property
    def limbs(self) -> int:
        return max(1, math.ceil(self.word_bits / LIMB_BITS))


def pack_memory(name: str, values: np.ndarray, bits: int, *, binary: bool = False,
                description: str = "", shift: int = 0) -> PackedMemory:
    """Pack ``values`` ``(depth, lanes)`` into words: lane ``k`` at bits ``[k*bits, (k+1)*bits)``.

    ``binary``: ``bits`` must be 1 and every value ±1 (+1 -> bit 1, -1 -> bit 0). Otherwise each
    value is stored as ``bits``-bit two's complement and must fit.
    """
    values = np.asarray(values, dtype=np.int64)
    if values.ndim != 2:
        raise SnnccError(f"memory {name!r}: expected (depth, lanes) values, got {values.shape}")
    if binary:
        if bits != 1 or not np.all(np.abs(values) == 1):
            raise SnnccError(f"memory {name!r}: binary packing needs 1 bit and only ±1 values")
        fields = (values > 0).astype(np.uint64)
    else:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if values.size and (values.min() < low or values.max() > high):
            raise SnnccError(
                f"memory {name!r}: values {values.min()}..{values.max()} do not fit {bits}-bit "
                f"two's complement ({low}..{high})"
            )
        fields = (values & ((1 << bits) - 1)).astype(np.uint64)
    # Build each word from 64-bit chunks of lanes, so Python integers only see a few big ops.
    lanes_per_chunk = max(1, 64 // bits)
    words = [0] * values.shape[0]
    for chunk_start in range(0, values.shape[1], lanes_per_chunk):
        chunk = fields[:, chunk_start:chunk_start + lanes_per_chunk]
        shifts = (np.arange(chunk.shape[1], dtype=np.uint64) * np.uint64(bits))
        packed = np.bitwise_or.reduce(chunk << shifts[None], axis=1) if chunk.size else chunk
        offset = chunk_start * bits
        for row, part in enumerate(packed.tolist() if chunk.size else []):
            words[row] |= int(part) << offset
    return PackedMemory(name, values, bits, binary, words, description, shift)


def unpack_words(words: list[int], lanes: int, bits: int, *, binary: bool = False) -> np.ndarray:
    """Inverse of :func:`pack_memory`: ``(depth, lanes)`` int64 values from packed words."""
    mask = (1 << bits) - 1
    out = np.empty((len(words), lanes), dtype=np.int64)
    for row, word in enumerate(words):
        for lane in range(lanes):
            field_value = (word >> (lane * bits)) & mask
            if binary:
                out[row, lane] = 1 if field_value else -1
            else:
                out[row, lane] = field_value - (1 << bits) if field_value >> (bits - 1) else field_value
    return out


def word_limbs(memory: PackedMemory) -> np.ndarray:
    """The words as ``uint32`` limbs ``(depth, limbs)``, least significant limb first."""
    limbs = np.zeros((memory.depth, memory.limbs), dtype=np.uint32)
    for row, word in enumerate(memory.words):
        for limb in range(memory.limbs):
            limbs[row, limb] = (word >> (limb * LIMB_BITS)) & 0xFFFFFFFF
    return limbs


def render_mem(memory: PackedMemory) -> str:
    """``$readmemh`` text: a comment header, then one word per line (hex, MSB first)."""
    lines = [f"// {line}" for line in _memory_header(memory)]
    lines += [format(word, f"0{memory.hex_digits}x") for word in memory.words]
    return "\n".join(lines) + "\n"


def render_coe(memory: PackedMemory) -> str:
    """Xilinx ``.coe`` text (radix 16) holding the same words as the ``.mem`` file."""
    lines = [f"; {line}" for line in _memory_header(memory)]
    lines += ["memory_initialization_radix=16;", "memory_initialization_vector="]
    digits = [format(word, f"0{memory.hex_digits}x") for word in memory.words]
    lines += [f"{word}{';' if i == len(digits) - 1 else ','}" for i, word in enumerate(digits)]
    return "\n".join(lines) + "\n"


def render_header(memory: PackedMemory) -> str:
    """A C header: ``uint32_t NAME[DEPTH][LIMBS]`` (least significant limb first) and its sizes."""
    symbol = memory.name.upper()
    guard = f"SNNCC_{symbol}_H"
    limbs = word_limbs(memory)
    rows = ",\n".join(
        "    {" + ", ".join(f"0x{int(v):08x}u" for v in row) + "}" for row in limbs
    )
    header = "\n".join(f" * {line}" for line in _memory_header(memory))
    return (
        f"/*\n{header}\n * Word d is {symbol}[d][0..{memory.limbs - 1}], least significant 32-bit "
        f"limb first.\n */\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n"
        f"#define {symbol}_DEPTH {memory.depth}\n"
        f"#define {symbol}_WORD_BITS {memory.word_bits}\n"
        f"#define {symbol}_LANES {memory.lanes}\n"
        f"#define {symbol}_LANE_BITS {memory.bits}\n"
        f"#define {symbol}_BINARY {int(memory.binary)}\n"
        f"#define {symbol}_SHIFT {memory.shift}\n"
        f"#define {symbol}_LIMBS {memory.limbs}\n\n"
        f"static const uint32_t {memory.name}[{memory.depth}][{memory.limbs}] = {{\n{rows}\n}};\n\n"
        f"#endif /* {guard} */\n"
    )


def render_npy(memory: PackedMemory) -> bytes:
    """The limbs of :func:`word_limbs` as a ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, word_limbs(memory).astype("<u4"), allow_pickle=False)
    return buffer.getvalue()


def _memory_header(memory: PackedMemory) -> list[str]:
    encoding = ("1 bit per lane: 1 = +1, 0 = -1" if memory.binary
                else f"{memory.bits}-bit two's complement per lane")
    lines = [
        f"snncc {memory.name}: {memory.description}".rstrip(": "),
        f"{memory.depth} words x {memory.word_bits} bits; lane k = bits [k*{memory.bits} +: "
        f"{memory.bits}] (lane 0 = least significant); {encoding}",
    ]
    if memory.shift:
        lines.append(f"value = lane * 2**{memory.shift} (every value is a multiple of "
                     f"2**{memory.shift}; the engine shifts the input event instead)")
    return lines


# ------------------------------------------------------------------------------------- lowering


@dataclass
class BundleLayer:
    """One engine layer: a lowered dense matrix feeding a neuron stage."""

    name: str  # the IR neuron node (IF or Readout)
    ident: str  # file-name / C identifier
    neuron: ir.Node
    source: str  # the upstream neuron stage or the Input node
    synapse_nodes: list[str]
    lowered_kinds: list[str]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weight: np.ndarray  # (outputs, inputs) int64
    bias: np.ndarray | None  # (outputs,) int64
    memories: dict[str, PackedMemory] = field(default_factory=dict)
    spike_input: bool = True
    input_bits: int = 1
    current_bits: int = 2

    @property
    def inputs(self) -> int:
        return int(self.weight.shape[1])

    @property
    def outputs(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kind(self) -> str:
        return "if" if isinstance(self.neuron, ir.IF) else "readout"


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_") or "layer"
    if ident[0].isdigit():
        ident = f"l_{ident}"
    base, index = ident, 1
    while ident.lower() in taken:
        index += 1
        ident = f"{base}_{index}"
    taken.add(ident.lower())
    return ident


def _exact_matmul(left: np.ndarray, right: np.ndarray, where: str) -> np.ndarray:
    """Integer ``left @ right`` through float64 BLAS when provably exact (every sum < 2**53)."""
    bound = float(np.abs(left).max(initial=0)) * float(np.abs(right).max(initial=0)) * left.shape[-1]
    if bound >= 2.0**53:
        raise UnsupportedError(f"layer {where!r}: lowered weights reach {bound:.3g}, beyond exact "
                               f"integer arithmetic")
    return np.rint(left.astype(np.float64) @ right.astype(np.float64)).astype(np.int64)


def _apply_linear(node: ir.Node, batch: np.ndarray, with_bias: bool, where: str) -> np.ndarray:
    """One linear node on a batch ``(n, *shape)`` (int64), with or without its bias."""
    if isinstance(node, ir.Dense):
        out = _exact_matmul(batch.reshape(len(batch), -1), node.weight.astype(np.int64).T, where)
        if with_bias and node.bias is not None:
            out = out + node.bias.astype(np.int64)
        return out
    if isinstance(node, ir.Conv2d):
        out = step.conv2d(batch, node, step.conv_kernels(node, np.int64)).astype(np.int64)
        if with_bias and node.bias is not None:
            out = out + node.bias.astype(np.int64).reshape(1, -1, 1, 1)
        return out
    if isinstance(node, ir.SumPool2d):
        return step.sum_pool(batch, node).astype(np.int64)
    if isinstance(node, ir.Flatten):
        return batch.reshape(len(batch), -1)
    if isinstance(node, ir.Reshape):
        return batch.reshape((len(batch),) + node.shape)
    assert isinstance(node, ir.Transpose)
    return batch.transpose((0,) + tuple(p + 1 for p in node.perm))


def lower_linear_chain(graph: ir.Graph, names: list[str], input_shape: tuple[int, ...],
                       where: str) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``(A, c)`` with ``chain(x) = A @ x.ravel() + c`` for linear nodes ``names``."""
    inputs = math.prod(input_shape)
    shapes = graph.infer_shapes()
    outputs = math.prod(shapes[names[-1]]) if names else inputs
    if inputs * outputs > MAX_LOWERED_ENTRIES:
        raise UnsupportedError(
            f"layer {where!r}: the FPGA engine stores convolutions as dense (Toeplitz) matrices "
            f"and this one is {outputs}x{inputs}, beyond the {MAX_LOWERED_ENTRIES:,}-entry limit"
        )
    # The image of every basis vector, (inputs, *shape); None while it is still the identity
    # (row-major reshapes keep it so, and a Dense on the identity is its own weight matrix).
    basis: np.ndarray | None = None
    shape = tuple(input_shape)
    offset = np.zeros((1,) + shape, dtype=np.int64)
    for name in names:
        node = graph.nodes[name]
        if basis is None and isinstance(node, (ir.Flatten, ir.Reshape)):
            pass
        elif basis is None and isinstance(node, ir.Dense):
            basis = node.weight.astype(np.int64).T
        else:
            if basis is None:
                basis = np.eye(inputs, dtype=np.int64)
            basis = _apply_linear(node, basis.reshape((inputs,) + shape), False, where)
        offset = _apply_linear(node, offset, True, where)
        shape = tuple(offset.shape[1:])
    if basis is None:
        basis = np.eye(inputs, dtype=np.int64)
    matrix = np.ascontiguousarray(basis.reshape(inputs, -1).T)
    return matrix, offset.reshape(-1)


def lower_graph(graph: ir.Graph) -> list[BundleLayer]:
    """Split an integer chain graph into engine layers (see the module docstring).

    Raises :class:`UnsupportedError` naming the first node the engine cannot run.
    """
    try:
        shapes = graph.validate(integer=True)
    except SnnccError as error:
        raise SnnccError(f"the FPGA bundle needs an integer graph (run fold/quantize first): "
                         f"{error}") from None
    taken: set[str] = set()
    layers: list[BundleLayer] = []
    source = graph.input_name
    pending: list[str] = []
    for name in graph.topological_order():
        node = graph.nodes[name]
        if isinstance(node, ir.Input):
            continue
        kind = type(node).__name__
        if isinstance(node, ir.LEAKY):
            raise UnsupportedError(f"layer {name!r} ({kind}): the FPGA engine's neurons do not "
                                   "leak (no decay datapath); leaky neurons are not supported")
        if not isinstance(node, _LINEAR + _NEURONS):
            raise UnsupportedError(f"layer {name!r} ({kind}) is not supported by the FPGA "
                                   f"engine; supported: {SUPPORTED}")
        (predecessor,) = graph.inputs_of(name)
        if len(graph.consumers(predecessor)) != 1:
            raise UnsupportedError(f"layer {name!r} ({kind}): node {predecessor!r} feeds "
                                   f"{len(graph.consumers(predecessor))} nodes; the FPGA engine "
                                   f"runs a chain of layers only")
        if isinstance(node, _LINEAR):
            pending.append(name)
            continue
        matrix, offset = lower_linear_chain(graph, pending, shapes[source], name)
        layers.append(BundleLayer(
            name=name, ident=_identifier(name, taken), neuron=node, source=source,
            synapse_nodes=list(pending),
            lowered_kinds=[type(graph.nodes[n]).__name__ for n in pending],
            input_shape=tuple(shapes[source]), output_shape=tuple(shapes[name]),
            weight=matrix, bias=offset if np.any(offset) else None,
        ))
        source, pending = name, []
    if not layers or not isinstance(layers[-1].neuron, ir.Readout):
        raise UnsupportedError("the FPGA engine needs a Readout output node; run convert first")
    return layers


# ------------------------------------------------------------------------------------- bundle


def _neuron_values(values: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    return np.asarray(ir.broadcast_per_neuron(values, shape, what), dtype=np.int64).reshape(-1)


def _param_memory(layer: BundleLayer, what: str, values: np.ndarray) -> PackedMemory:
    bits = resources.signed_bits(values)
    if bits > PARAM_BITS:
        worst = int(values[np.argmax(np.abs(values))])
        raise UnsupportedError(
            f"layer {layer.name!r}: {what} {worst} needs {bits} bits, beyond the {PARAM_BITS}-bit "
            f"parameter packing"
        )
    return pack_memory(f"{layer.ident}_{what}", values.reshape(-1, 1), bits,
                       description=f"{what} of layer '{comment_text(layer.name)}', one word per "
                                   "neuron")


def _weight_memory(layer: BundleLayer, forced_bits: int | None) -> PackedMemory:
    shift = resources.weight_exponent(layer.weight)
    stored = layer.weight >> shift  # exact: every weight is a multiple of 2**shift
    description = (f"weights of layer '{comment_text(layer.name)}', word i = input i, lane j = "
                   "weight to neuron j")
    name = f"{layer.ident}_weights"
    if stored.size and np.all(np.abs(stored) == 1):
        return pack_memory(name, stored.T, 1, binary=True, description=description, shift=shift)
    needed = resources.signed_bits(stored)
    limit = forced_bits if forced_bits is not None else MAX_WEIGHT_BITS
    if needed > limit:
        low, high = int(layer.weight.min()), int(layer.weight.max())
        scaled = f" (stored / 2**{shift})" if shift else ""
        raise UnsupportedError(
            f"layer {layer.name!r}: weights {low}..{high}{scaled} need {needed} bits, beyond "
            f"the {limit}-bit packing"
        )
    return pack_memory(name, stored.T, forced_bits or needed, description=description,
                       shift=shift)


def _current_bits(layer: BundleLayer, input_max: int) -> int:
    """Signed width of the exact per-step current ``|A| @ max|x| + |c|``."""
    bound = np.abs(layer.weight).sum(axis=1) * input_max
    if layer.bias is not None:
        bound = bound + np.abs(layer.bias)
    return resources.signed_bits(np.array([int(bound.max(initial=0))]))


def comment_text(text: str) -> str:
    """``text`` (a node name from the graph file) safe inside a Verilog, C, .coe or .mem comment:
    printable ASCII only, so no line break ends the comment and no ``*/`` closes it."""
    return re.sub(r"[^ -~]", "?", text).replace("*/", "*?")


def graph_sha256(graph: ir.Graph) -> str:
    """sha256 over the graph's structure, arrays, metadata and quantization
    (:meth:`snncc.ir.Graph.fingerprint`; stable across saves, unlike the zip)."""
    return graph.fingerprint()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_bundle(graph: ir.Graph, *, fpga_part: str = "zynq-7020", strict: bool = False,
                 timesteps: int | None = None, source_hash: str | None = None,
                 options: dict[str, Any] | None = None) -> dict[str, bytes]:
    """Every file of the bundle by relative path, built in memory (nothing is written).

    ``options``: ``weight_bits`` (pack every non-binary layer at exactly this width; a layer
    needing more fails) and ``input_bits`` (signed width of direct-coded input values, default
    :data:`DEFAULT_INPUT_BITS`). Raises :class:`SnnccError` naming the layer and the limit.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - {"weight_bits", "input_bits"})
    if unknown:
        raise SnnccError(f"unknown fpga option(s) {', '.join(unknown)}; known: weight_bits, "
                         f"input_bits")
    forced_bits = options.get("weight_bits")
    if forced_bits is not None and not 2 <= int(forced_bits) <= MAX_WEIGHT_BITS:
        raise SnnccError(f"fpga option weight_bits={forced_bits} is outside 2..{MAX_WEIGHT_BITS}")
    input_bits = int(options.get("input_bits", DEFAULT_INPUT_BITS))
    if not 2 <= input_bits <= 32:
        raise SnnccError(f"fpga option input_bits={input_bits} is outside 2..32")
    chip = resources.load_chip(fpga_part)
    if chip.kind != "fpga" or chip.core_limit("bram36") is None:
        raise SnnccError(f"part {fpga_part!r} is not an FPGA profile with a bram36 limit")
    capacity = int(chip.core_limit("bram36"))  # type: ignore[arg-type]

    layers = lower_graph(graph)
    input_node = graph.input
    timesteps = timesteps or graph.metadata.get("timesteps") or input_node.t_max
    direct = input_node.coding == "direct"
    for index, layer in enumerate(layers):
        layer.spike_input = index > 0 or not direct
        layer.input_bits = 1 if layer.spike_input else input_bits
        input_max = 1 if layer.spike_input else 1 << (input_bits - 1)
        layer.current_bits = _current_bits(layer, input_max)
        if layer.current_bits > MAX_CURRENT_BITS:
            raise UnsupportedError(
                f"layer {layer.name!r}: synaptic currents need {layer.current_bits} bits, beyond "
                f"the {MAX_CURRENT_BITS}-bit accumulator"
            )
        layer.memories["weights"] = _weight_memory(layer, forced_bits)
        neuron = layer.neuron
        if isinstance(neuron, ir.IF):
            layer.memories["threshold"] = _param_memory(
                layer, "threshold", _neuron_values(neuron.threshold, layer.output_shape,
                                                   "threshold"))
            v_init = _neuron_values(neuron.v_init, layer.output_shape, "v_init")
            if np.any(v_init):
                layer.memories["v_init"] = _param_memory(layer, "v_init", v_init)
        elif neuron.mode == "first_spike":
            layer.memories["threshold"] = _param_memory(
                layer, "threshold", _neuron_values(neuron.threshold, layer.output_shape,
                                                   "threshold"))
        if layer.bias is not None:
            layer.memories["bias"] = _param_memory(layer, "bias", layer.bias)

    bram = {layer.name: resources.fpga_bram36(layer.memories["weights"].depth,
                                              layer.memories["weights"].word_bits)
            for layer in layers}
    total_bram = sum(bram.values())
    if strict and total_bram > capacity:
        largest = max(bram, key=bram.get)
        raise ResourceError(
            f"the bundle needs {total_bram} BRAM36, exceeding {chip.name}'s {capacity} by "
            f"{total_bram - capacity} (largest: layer {largest!r} with {bram[largest]})"
        )

    files: dict[str, bytes] = {}
    manifest_layers = []
    for layer in layers:
        entry = _layer_manifest(layer, bram[layer.name], timesteps)
        for role, memory in layer.memories.items():
            paths = {
                "mem": f"mem/{memory.name}.mem",
                "coe": f"coe/{memory.name}.coe",
                "h": f"include/{memory.name}.h",
                "npy": f"npy/{memory.name}.npy",
            }
            files[paths["mem"]] = render_mem(memory).encode()
            files[paths["coe"]] = render_coe(memory).encode()
            files[paths["h"]] = render_header(memory).encode()
            files[paths["npy"]] = render_npy(memory)
            entry["memories"][role] = {
                "depth": memory.depth, "lanes": memory.lanes, "lane_bits": memory.bits,
                "word_bits": memory.word_bits,
                "packing": "binary" if memory.binary else "twos_complement",
                "shift": memory.shift,
                "files": {fmt: {"path": path, "sha256": _sha256(files[path])}
                          for fmt, path in paths.items()},
            }
        manifest_layers.append(entry)

    files[f"hdl/{ENGINE_FILE}"] = (HDL_DIR / ENGINE_FILE).read_bytes()
    files[f"hdl/{TESTBENCH_FILE}"] = (HDL_DIR / TESTBENCH_FILE).read_bytes()
    files[f"hdl/{NETWORK_FILE}"] = render_network(layers).encode()
    files[f"hdl/{CONFIG_FILE}"] = render_config(layers).encode()

    total_bits = sum(m.depth * m.word_bits for layer in layers for m in layer.memories.values())
    synapses = sum(layer.weight.size for layer in layers)
    weight_bits_total = sum(layer.memories["weights"].depth * layer.memories["weights"].word_bits
                            for layer in layers)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "snncc_version": snncc.__version__,
        "source_hash": source_hash,
        "graph_sha256": graph_sha256(graph),
        "compile_options": {"fpga_part": fpga_part, "strict": strict, "timesteps": timesteps,
                            **options},
        "timesteps": timesteps,
        "state_bits": ir.STATE_BITS,
        "conv_lowering": CONV_POLICY,
        "input": {
            "node": graph.input_name, "shape": list(input_node.shape),
            "coding": input_node.coding, "scale": input_node.scale,
            "mean": input_node.mean.tolist(), "std": input_node.std.tolist(),
            "t_max": input_node.t_max, "seed": input_node.seed,
            "value_bits": input_bits if direct else 1,
            "events": ("the sample's nonzero raw integers as signed values, sent once during "
                       "step 0 (the first layer keeps that current for every step)" if direct
                       else "the nonzero spikes of every step"),
        },
        "readout": {"node": layers[-1].name, "mode": layers[-1].neuron.mode,
                    "classes": layers[-1].outputs},
        "layers": manifest_layers,
        "resources": {
            "part": chip.name, "part_title": chip.title,
            "bram36": [total_bram, capacity],
            "bram36_per_layer": bram,
            "bram_model": "snncc.resources.fpga_bram36 (weight memories; one aspect ratio each)",
            "fits": total_bram <= capacity,
        },
        "size": {"memory_bits": total_bits, "weight_memory_bits": weight_bits_total,
                 "synapses": int(synapses),
                 "bits_per_synapse": weight_bits_total / synapses if synapses else 0.0},
        "hdl": {"engine": f"hdl/{ENGINE_FILE}", "top": f"hdl/{NETWORK_FILE}",
                "config": f"hdl/{CONFIG_FILE}", "testbench": f"hdl/{TESTBENCH_FILE}",
                "top_module": "snn_network"},
    }
    files["README.txt"] = render_readme(manifest).encode()
    manifest["files"] = {path: {"sha256": _sha256(data), "bytes": len(data)}
                         for path, data in sorted(files.items())}
    files["manifest.json"] = (json.dumps(manifest, indent=1) + "\n").encode()
    return files


def _layer_manifest(layer: BundleLayer, bram36: int, timesteps: int | None) -> dict[str, Any]:
    neuron = layer.neuron
    if isinstance(neuron, ir.IF):
        model = {"type": "IF", "reset": neuron.reset, "single_spike": bool(neuron.fire_once),
                 "coding": "spikes"}
    else:
        model = {"type": "Readout", "mode": neuron.mode, "reset": "none",
                 "single_spike": neuron.mode == "first_spike",
                 "coding": "first spike" if neuron.mode == "first_spike" else "potential"}
    return {
        "name": layer.name, "identifier": layer.ident, "kind": layer.kind,
        "source": layer.source, "synapse_nodes": layer.synapse_nodes,
        "lowered_from": layer.lowered_kinds,
        "input_shape": list(layer.input_shape), "output_shape": list(layer.output_shape),
        "inputs": layer.inputs, "outputs": layer.outputs,
        "input_events": "spikes" if layer.spike_input else f"signed {layer.input_bits}-bit values",
        "neuron": model, "timesteps": timesteps,
        "weight_bits": layer.memories["weights"].bits,
        "weight_packing": "binary" if layer.memories["weights"].binary else "twos_complement",
        "weight_shift": layer.memories["weights"].shift,
        "current_bits": layer.current_bits,
        "nonzero_weights": int(np.count_nonzero(layer.weight)),
        "bram36": bram36,
        "memories": {},
    }


# ------------------------------------------------------------------------------------------ HDL


def _verilog_bits(count: int) -> int:
    return max(1, (count - 1).bit_length())


def render_network(layers: list[BundleLayer]) -> str:
    """The generated top level ``snn_network``: the layers chained by their event streams."""
    spiking = [layer for layer in layers if layer.kind == "if"]
    trace = max(1, len(spiking))
    readout = layers[-1]
    class_bits = _verilog_bits(readout.outputs)
    first = layers[0]
    lines = [
        "// snn_network: generated by snncc; chains snn_if_layer instances (see README.txt).",
        "// Memory paths are relative to the bundle root: run simulation and synthesis from there.",
        "`default_nettype none",
        "",
        "module snn_network (",
        "    input  wire clk,",
        "    input  wire start,",
        "    input  wire in_valid,",
        f"    input  wire [{_verilog_bits(first.inputs) - 1}:0] in_addr,",
        f"    input  wire signed [{first.input_bits - 1}:0] in_value,",
        "    input  wire in_last,",
        f"    output wire [{trace - 1}:0] spike_valid,",
        f"    output wire [{trace * 32 - 1}:0] spike_addr,",
        "    output wire step_done,",
        f"    output wire [{class_bits - 1}:0] prediction,",
        "    output wire decided,",
        "    output wire [31:0] decision_step,",
        f"    input  wire [{class_bits - 1}:0] peek_addr,",
        "    output wire signed [23:0] peek_v",
        ");",
    ]
    if not spiking:
        lines += ["    assign spike_valid = 1'b0;", "    assign spike_addr = 32'd0;"]
    upstream = None
    for index, layer in enumerate(layers):
        out_bits = _verilog_bits(layer.outputs)
        prefix = f"l{index}"
        neuron = layer.neuron
        if isinstance(neuron, ir.IF):
            code, reset_zero, fire_once = 0, int(neuron.reset == "zero"), int(neuron.fire_once)
        else:
            code = 2 if neuron.mode == "first_spike" else 1
            reset_zero, fire_once = 0, 0
        memories = layer.memories
        weights = memories["weights"]

        def path(role: str, memories: dict[str, PackedMemory] = memories) -> str:
            return f"mem/{memories[role].name}.mem" if role in memories else ""

        def bits(role: str, memories: dict[str, PackedMemory] = memories) -> int:
            return memories[role].bits if role in memories else 2

        parameters = {
            "N_IN": layer.inputs, "N_OUT": layer.outputs, "W_BITS": weights.bits,
            "BINARY": int(weights.binary), "W_SHIFT": weights.shift,
            "SPIKE_INPUT": int(layer.spike_input),
            "IN_BITS": layer.input_bits, "ACC_BITS": layer.current_bits,
            "TH_BITS": bits("threshold"), "BIAS_BITS": bits("bias"), "VINIT_BITS": bits("v_init"),
            "HAS_BIAS": int("bias" in memories), "HAS_VINIT": int("v_init" in memories),
            "NEURON": code, "RESET_ZERO": reset_zero, "FIRE_ONCE": fire_once,
            "STATIC_INPUT": int(index == 0 and not layer.spike_input),
        }
        strings = {"WEIGHT_FILE": path("weights"), "THRESHOLD_FILE": path("threshold"),
                   "BIAS_FILE": path("bias"), "VINIT_FILE": path("v_init")}
        lines += [
            "",
            f"    // layer {index}: '{comment_text(layer.name)}' ({layer.inputs} -> "
            f"{layer.outputs}), from {comment_text(', '.join(layer.synapse_nodes)) or 'identity'}",
            f"    wire {prefix}_valid, {prefix}_last;",
            f"    wire [{out_bits - 1}:0] {prefix}_addr;",
        ]
        if isinstance(neuron, ir.IF):
            lines += [
                f"    wire [{out_bits - 1}:0] {prefix}_prediction;",
                f"    wire {prefix}_decided;",
                f"    wire [31:0] {prefix}_decision_step;",
                f"    wire signed [23:0] {prefix}_peek_v;",
            ]
        assignments = [f".{k}({v})" for k, v in parameters.items()]
        assignments += [f'.{k}("{v}")' for k, v in strings.items()]
        lines.append("    snn_if_layer #(")
        lines.append(",\n".join(f"        {a}" for a in assignments))
        lines.append(f"    ) {prefix}_{layer.ident} (")
        if upstream is None:
            inputs = ["in_valid", "in_addr", "in_value", "in_last"]
        else:
            inputs = [f"{upstream}_valid", f"{upstream}_addr", "1'b1", f"{upstream}_last"]
        if isinstance(neuron, ir.IF):
            outputs = [f"{prefix}_prediction", f"{prefix}_decided", f"{prefix}_decision_step",
                       f"{{{out_bits}{{1'b0}}}}", f"{prefix}_peek_v"]
        else:
            outputs = ["prediction", "decided", "decision_step", "peek_addr", "peek_v"]
        ports = [
            ".clk(clk)", ".start(start)", f".in_valid({inputs[0]})", f".in_addr({inputs[1]})",
            f".in_value({inputs[2]})", f".in_last({inputs[3]})", f".out_valid({prefix}_valid)",
            f".out_addr({prefix}_addr)", f".out_last({prefix}_last)",
            f".prediction({outputs[0]})", f".decided({outputs[1]})",
            f".decision_step({outputs[2]})", f".peek_addr({outputs[3]})", f".peek_v({outputs[4]})",
        ]
        lines.append(",\n".join(f"        {p}" for p in ports))
        lines.append("    );")
        if isinstance(neuron, ir.IF):
            position = spiking.index(layer)
            lines.append(f"    assign spike_valid[{position}] = {prefix}_valid;")
            lines.append(f"    assign spike_addr[{position * 32} +: 32] = "
                         f"{{{{{32 - out_bits}{{1'b0}}}}, {prefix}_addr}};")
        else:
            lines.append(f"    assign step_done = {prefix}_last;")
        upstream = prefix
    lines += ["endmodule", "", "`default_nettype wire", ""]
    return "\n".join(lines)


def _step_cycle_limit(layers: list[BundleLayer]) -> int:
    """Generous bound on the clocks of one step: every input and neuron event plus pipeline slack."""
    return 4 * sum(layer.inputs + layer.outputs + 8 for layer in layers)


def render_config(layers: list[BundleLayer]) -> str:
    """``network_config.vh``: the sizes the testbench needs."""
    first, readout = layers[0], layers[-1]
    spiking = sum(1 for layer in layers if layer.kind == "if")
    return "\n".join([
        "// generated by snncc: sizes of snn_network for tb_network.v",
        f"`define SNN_IN_ADDR_BITS {_verilog_bits(first.inputs)}",
        f"`define SNN_IN_BITS {first.input_bits}",
        f"`define SNN_TRACE_LAYERS {max(1, spiking)}",
        f"`define SNN_CLASSES {readout.outputs}",
        f"`define SNN_CLASS_BITS {_verilog_bits(readout.outputs)}",
        f"`define SNN_STEP_CYCLE_LIMIT {_step_cycle_limit(layers)}",
        "",
    ])


def render_readme(manifest: dict[str, Any]) -> str:
    """The bundle's README.txt: memory layout and how a core consumes it."""
    layer_lines = []
    for layer in manifest["layers"]:
        weights = layer["memories"]["weights"]
        layer_lines.append(
            f"  {layer['identifier']:<16} {layer['kind']:<8} {layer['inputs']:>6} -> "
            f"{layer['outputs']:<6} weights {weights['depth']} x {weights['word_bits']} bits "
            f"({layer['weight_packing']}, {layer['weight_bits']} bit), {layer['bram36']} BRAM36"
        )
    used, capacity = manifest["resources"]["bram36"]
    return f"""snncc FPGA bundle (format {manifest['format']} v{manifest['format_version']}, snncc {manifest['snncc_version']})

Network: {manifest['input']['coding']}-coded input {tuple(manifest['input']['shape'])}, {manifest['timesteps']} timesteps,
readout '{manifest['readout']['node']}' ({manifest['readout']['mode']}, {manifest['readout']['classes']} classes).
Block RAM: {used} of {capacity} BRAM36 on {manifest['resources']['part']} (estimate, weight memories).

Layers (bundle order; every layer is a dense matrix feeding neurons):
{chr(10).join(layer_lines)}

Conv layers: {manifest['conv_lowering']}.
MaxPool2d and branching graphs are rejected.

Memory files (one packing, four renderings; manifest.json lists them with sha256):
  mem/NAME.mem      $readmemh text, one word per line, most significant hex digit first
  coe/NAME.coe      Xilinx coefficient file, radix 16, the same words
  include/NAME.h    C header: uint32_t NAME[DEPTH][LIMBS], least significant 32-bit limb first
  npy/NAME.npy      the same uint32 limbs as a NumPy array (DEPTH, LIMBS)
Word layout: a word is LANES lanes of LANE_BITS bits; lane k sits in bits [k*LANE_BITS +: LANE_BITS]
(lane 0 = least significant bits). Binary packing (1 bit): 1 = +1, 0 = -1. Otherwise lanes are
LANE_BITS-bit two's complement.
  NAME_weights    DEPTH = inputs (word i = presynaptic input i), LANES = outputs (lane j = W[j][i]).
                  Input i is the row-major flat index of the source layer's (C, H, W) output.
                  When every weight is a multiple of 2**weight_shift (manifest), lanes hold
                  W / 2**weight_shift and the engine shifts each input event left by weight_shift.
  NAME_threshold  one word per neuron (lane 0), two's complement.
  NAME_bias       one word per neuron: the constant current added every step (absent = 0).
  NAME_v_init     one word per neuron: the potential at the start of a sample (absent = 0).

How a core consumes it (hdl/if_layer.v, one instance per layer, chained in hdl/snn_network.v):
  per step t, for each input event (address i, value x; x = 1 for spikes):
      read weight word i; current[j] += W[j][i] * x for all neurons j in parallel
  at the end of the step (the in_last marker), for every neuron j:
      v[j] = clip(v[j] + current[j] + bias[j], -2**23, 2**23 - 1)     (24-bit state)
      IF:  spike if v[j] >= threshold[j] (and not fired before, for single-spike layers);
           reset 'subtract': v[j] -= threshold[j]; reset 'zero': v[j] = 0
  then the spiking neurons are sent, one per clock, as the next layer's input events of the
  same step (no delay between layers). The readout accumulates v the same way and reports the
  class: argmax v (potential mode) or the first neuron to reach its threshold (first-spike mode,
  largest v among simultaneous crossings, lowest index on ties). Exact currents are
  current_bits wide (manifest); the state is 24 bits.
Input: the host encodes each sample with the coding in manifest.json ('input') and streams the
nonzero inputs of every step as events. Direct coding (the input is the same at every step) sends
the raw integers as signed values once, during step 0, and empty later steps: the first layer
keeps that current for the whole sample.

Simulate (Icarus Verilog), from this directory:
  iverilog -g2005 -I hdl -o /tmp/tb.vvp hdl/tb_network.v hdl/snn_network.v hdl/if_layer.v
  vvp /tmp/tb.vvp +in=EVENTS.txt +out=TRACE.txt      (formats: see hdl/tb_network.v)
or from Python: snncc.backends.fpga_hdl.simulate_hdl(bundle_dir, raw_inputs, timesteps).
"""


# ----------------------------------------------------------------------------------------- emit


def emit(graph: ir.Graph, out_dir: str | Path, *, fpga_part: str = "zynq-7020",
         strict: bool = False, timesteps: int | None = None, source_hash: str | None = None,
         options: dict[str, Any] | None = None) -> list[Path]:
    """Write the bundle into ``out_dir``; returns the written paths.

    Every check happens before the first write (the bundle is built in memory), and a failed
    write removes what it wrote, so ``out_dir`` never holds a partial bundle.
    """
    files = build_bundle(graph, fpga_part=fpga_part, strict=strict, timesteps=timesteps,
                         source_hash=source_hash, options=options)
    out_dir = Path(out_dir)
    created_root = not out_dir.exists()
    written: list[Path] = []
    created_dirs: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for relative, data in files.items():
            path = out_dir / relative
            if not path.parent.exists():
                path.parent.mkdir(parents=True)
                created_dirs.append(path.parent)
            path.write_bytes(data)
            written.append(path)
    except BaseException as error:
        for path in written:
            path.unlink(missing_ok=True)
        for directory in reversed(created_dirs):
            shutil.rmtree(directory, ignore_errors=True)
        if created_root:
            shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(error, OSError):
            raise SnnccError(f"cannot write the FPGA bundle to {out_dir}: {error.strerror}") from None
        raise
    return written


def read_manifest(bundle_dir: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """Load ``manifest.json`` of a bundle; ``verify`` checks every listed file's sha256.

    The manifest is untrusted: its structure is checked, and every path it lists must be a
    relative path to a regular file inside the bundle (:func:`bundle_file`).
    """
    from snncc.loading import file_sha256
    from snncc.safety import read_text

    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "manifest.json").exists():
        raise SnnccError(f"{bundle_dir}: no manifest.json (not an snncc FPGA bundle)")
    text = read_text(bundle_dir / "manifest.json", "bundle manifest")
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise SnnccError(f"{bundle_dir}/manifest.json: unreadable ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise SnnccError(f"{bundle_dir}: not an snncc FPGA bundle (manifest.json is not a "
                         "bundle manifest)")
    if manifest.get("format_version") != BUNDLE_VERSION:
        raise SnnccError(f"{bundle_dir}: bundle format version {manifest.get('format_version')} "
                         f"is not supported (this snncc reads {BUNDLE_VERSION})")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(info, dict) and isinstance(info.get("sha256"), str)
            for info in files.values()):
        raise SnnccError(f"{bundle_dir}/manifest.json: malformed manifest ('files' must map "
                         "paths to {sha256, bytes})")
    for key, kind in (("graph_sha256", str), ("compile_options", dict), ("input", dict),
                      ("layers", list), ("readout", dict)):
        if not isinstance(manifest.get(key), kind):
            raise SnnccError(f"{bundle_dir}/manifest.json: malformed manifest ({key!r} missing "
                             "or of the wrong type)")
    timesteps = manifest.get("timesteps")
    if timesteps is not None and (not isinstance(timesteps, int) or isinstance(timesteps, bool)):
        raise SnnccError(f"{bundle_dir}/manifest.json: malformed manifest ('timesteps' must be "
                         "an integer)")
    for relative, info in files.items():
        path = bundle_file(bundle_dir, relative)
        if verify and file_sha256(path) != info["sha256"]:
            raise SnnccError(f"{bundle_dir}: bundle file {relative} does not match its "
                             f"sha256 in manifest.json")
    return manifest


def bundle_file(bundle_dir: str | Path, relative: str) -> Path:
    """The regular file ``relative`` names inside ``bundle_dir``; anything that would leave the
    bundle (an absolute path, ``..``, a symbolic link pointing out) is refused."""
    bundle_dir = Path(bundle_dir)
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts:
        raise SnnccError(f"{bundle_dir}: manifest path {relative!r} points outside the bundle")
    path = bundle_dir / relative
    root = bundle_dir.resolve()
    if root not in path.resolve().parents:
        raise SnnccError(f"{bundle_dir}: manifest path {relative!r} points outside the bundle "
                         "(through a symbolic link)")
    if not path.is_file():
        raise SnnccError(f"{bundle_dir}: bundle file {relative} is missing")
    return path


TARGET = Target(
    name="fpga",
    summary="an FPGA weight bundle (.mem/.coe/.h/.npy) + the Verilog engine (snncc hdl-check runs it)",
    emit=emit,
    passes=("fold", "quantize"),
    options={"fpga_part": "zynq-7020", "strict": False, "options": None},
)
