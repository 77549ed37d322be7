"""lava-dl netx HDF5 network files: writer, reader and linter (h5py only, never imports lava).

The schema is the one ``lava.lib.dl.netx.hdf5.Network`` reads (lava-dl 0.6): every value is a
dataset under ``/layer/<i>/`` for ``i = 0 .. n-1``, wired in order:

* ``type``: ``b"input" | b"dense" | b"conv" | b"flatten"`` (stored ``S10``, shape ``(1,)``);
* ``shape``: ``(C, H, W)`` or ``(N,)`` (netx reverses it to Lava's ``(W, H, C)``);
* ``weight``: float32 integers, dense ``(out, in)`` over PyTorch NCHW flatten order, conv
  ``(out, in / groups, kH, kW)`` as a cross-correlation kernel (netx flips it for Lava's Conv);
  optional ``bias`` (neuron bias in IR units: netx uses ``bias_exp = 6``); conv ``stride``,
  ``padding``, ``dilation`` as ``(y, x)`` plus ``groups``;
* ``neuron/``: ``type = b"CUBA"``, ``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``. netx builds
  ``LIF(vth=vThMant, du=iDecay - 1, dv=vDecay, bias_exp=6)``.

An IR IF layer is exactly a CUBA neuron with ``iDecay = 4096`` (the current is forgotten each step),
``vDecay = 0`` (no leak) and ``vThMant = threshold - 1`` (LIF fires on ``v > vth``, the IR on
``v >= threshold``), *if* it resets to zero, has one threshold, ``v_init = 0`` and no fire-once.
netx cannot express: reset by subtraction, fire-once neurons, per-neuron or per-channel
thresholds, nonzero ``v_init``, pooling of any kind (netx raises NotImplementedError for
``pool``/``average``), Add/Transpose/Reshape, a first-spike readout's tie-breaking and the
potential readout's 24-bit saturating accumulator (the output layer is written as a CUBA layer whose
potential ``v >> 6`` is the accumulator while it stays below ``vThMant = 131071``; see the manifest).

Delays and biases: each netx layer adds one step of synaptic delay, and its neurons integrate
their bias from Lava step 0, before any input arrives. The file is exact when loaded with
``hdf5.Network(..., reset_interval=W, reset_offset=1)`` for a window ``W >= T + layers``: layer
``i`` (0-based over synapse layers) then resets right before its first real input and emits IR
step ``t`` at window step ``t + i + 1`` (checked against lava-dl 0.6's loader).

netx packs dense weights into 8-bit mantissas itself: mixed-sign weights must lie in [-256, 254]
and be even beyond [-128, 127] (netx drops the lowest bit there), so the writer rejects others.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from snncc import ir
from snncc.errors import SnnccError

# netx / Loihi limits, with their sources, live in snncc.profiles (one place for the passes that
# aim at netx and for this writer and linter).
from snncc.profiles import (  # noqa: F401 - re-exported: the netx constants by their usual names
    BIAS_MANT_MAX,
    DECAY_MAX,
    DELAY_MAX,
    LIF_STATE_MAX,
    NETX_ODD_LIMIT,
    NETX_WEIGHT_RANGE,
    VTH_MANT_MAX,
    graded_bits,
)

READOUT_VTH = VTH_MANT_MAX  #: the output layer's threshold (never reached while exact)

#: Why netx cannot hold fire-once neurons (BSTDG networks), in one line.
FIRE_ONCE_REASON = (
    "fire-once neurons: netx builds lava LIF neurons, which have no refractory period (netx does "
    "not read refDelay), and a self-inhibiting dense_rec synapse holds at most -256 weight units "
    "(netx's 8-bit range) against the up to {positive} positive inputs that may follow a spike")
LAYER_TYPES = ("input", "dense", "dense_rec", "dense_comp", "conv", "flatten")
#: Most parts one class's readout potential may be split into (see :func:`readout_parts`).
READOUT_PARTS_MAX = 64


def readout_parts(graph: ir.Graph) -> list[tuple[int, int]] | None:
    """How the output layer's inputs are split so every partial potential fits Loihi's state.

    A potential readout accumulates ``T`` steps of ``W s + b``; on Loihi 2 it is a CUBA neuron's
    ``v``, which holds ``+-131071`` units. When ``T * (sum|W| + |b|)`` of a class exceeds that,
    the class is written as several output neurons, each reading one contiguous range of the
    inputs (the bias goes to the first), and the potential is their sum (exact: no part can
    leave the state range, whatever the input spikes). Ranges are filled greedily in input order;
    one range means no split. ``None``: some range would need more than READOUT_PARTS_MAX parts,
    or one input (or the bias) alone does not fit. Only Dense output layers reading spikes or
    graded inputs of known bound are split; a conv output layer is one part.
    """
    from snncc.passes.layers import input_magnitude

    synapse = graph.inputs_of(graph.output_name)[0]
    node = graph.nodes[synapse]
    if not isinstance(graph.nodes[graph.output_name], ir.Readout) or not isinstance(node,
                                                                                    ir.Dense):
        return [(0, int(np.prod(np.shape(getattr(node, "weight", np.zeros((1, 1))))[1:])))]
    bound = input_magnitude(graph, 255.0)[graph.inputs_of(synapse)[0]]
    timesteps = max(int(graph.metadata.get("timesteps", 1)), 1)
    capacity = LIF_STATE_MAX / timesteps
    magnitude = np.abs(np.asarray(node.weight, dtype=np.float64)) * bound
    filled = (np.zeros(len(magnitude)) if node.bias is None
              else np.abs(np.asarray(node.bias, dtype=np.float64)))
    if np.any(filled > capacity):
        return None
    parts, start = [], 0
    for index in range(magnitude.shape[1]):
        column = magnitude[:, index]
        if np.any(filled + column > capacity):
            if index == start:
                return None
            parts.append((start, index))
            start, filled = index, np.zeros(len(magnitude))
            if np.any(column > capacity):
                return None
        filled = filled + column
    parts.append((start, magnitude.shape[1]))
    return parts if len(parts) <= READOUT_PARTS_MAX else None


def split_readout(weight: np.ndarray, bias: np.ndarray | None,
                  parts: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray | None]:
    """The output layer as written: row ``c * K + k`` holds class ``c``'s weights on input range
    ``k`` (zero elsewhere), the bias on ``k = 0``; unchanged for one part."""
    if len(parts) == 1:
        return weight, bias
    classes, count = weight.shape[0], len(parts)
    split = np.zeros((classes * count, weight.shape[1]), dtype=weight.dtype)
    for part, (start, stop) in enumerate(parts):
        split[part::count, start:stop] = weight[:, start:stop]
    if bias is None:
        return split, None
    split_bias = np.zeros(classes * count, dtype=np.asarray(bias).dtype)
    split_bias[::count] = bias
    return split, split_bias


def _layers(graph: ir.Graph) -> list[tuple[str, list[str]]]:
    """The graph as netx layers: (kind, IR node names), or raise SnnccError with the reason."""
    order = graph.topological_order()
    layers: list[tuple[str, list[str]]] = []
    index = 0
    if not isinstance(graph.nodes[order[0]], ir.Input):
        raise SnnccError("the graph does not start with its Input")
    layers.append(("input", [order[0]]))
    index = 1
    while index < len(order):
        name = order[index]
        node = graph.nodes[name]
        if len(graph.consumers(name)) > 1 or len(graph.inputs_of(name)) > 1:
            raise SnnccError(f"node {name!r}: netx networks are plain chains (no branches or Add)")
        if isinstance(node, ir.Flatten):
            layers.append(("flatten", [name]))
            index += 1
            continue
        if isinstance(node, (ir.Dense, ir.Conv2d)):
            following = order[index + 1] if index + 1 < len(order) else None
            after = graph.nodes.get(following)
            if not isinstance(after, ir.NEURONS + (ir.Readout,)):
                raise SnnccError(
                    f"node {name!r}: netx needs neurons right after each synapse layer, found "
                    f"{type(after).__name__ if after else 'nothing'}"
                )
            layers.append(("dense" if isinstance(node, ir.Dense) else "conv", [name, following]))
            index += 2
            continue
        if (isinstance(node, ir.Readout) and index == len(order) - 1
                and isinstance(graph.nodes[order[index - 1]], ir.NEURONS)):
            index += 1  # counts the last layer's spikes: netx emits those spikes
            continue
        kind = type(node).__name__
        why = {
            "SumPool2d": "average pooling (netx has no pooling layer; the pool_fold pass folds "
                         "it into the next Dense/Conv2d when that is exact)",
            "MaxPool2d": "max pooling (netx has no pooling layer, and a max is not linear, so it "
                         "cannot fold into the next layer)",
        }.get(kind, f"{kind} (netx layers are input, dense, conv and flatten)")
        raise SnnccError(f"node {name!r}: netx cannot express {why}")
    return layers


def input_message_bits(graph: ir.Graph) -> int:
    """The loader's ``input_message_bits``: 0 (binary spikes) for rate and latency coding; for
    direct coding the raw integers are graded spikes, as wide as the Lava processes send them
    (:func:`snncc.profiles.graded_bits` of the Input's ``raw_range``)."""
    if graph.input.coding != "direct":
        return 0
    return graded_bits(*graph.input.raw_range)


def inexpressible(graph: ir.Graph) -> list[str]:
    """Why ``graph`` cannot be written as an exact netx file (empty when it can)."""
    problems: list[str] = []
    from snncc.passes.layers import input_magnitude, step_current_bound

    try:
        layers = _layers(graph)
    except SnnccError as error:
        return [str(error)]
    if graph.input.coding == "direct" and graph.input.raw_range[0] < 0:
        problems.append(f"input {graph.input_name!r}: direct coding of negative raw values "
                        f"{graph.input.raw_range} (netx's graded input spikes are unsigned)")
    bounds = input_magnitude(graph, 255.0)
    timesteps = int(graph.metadata.get("timesteps", 1))
    for kind, names in layers[1:]:
        if kind == "flatten":
            continue
        synapse, neuron_name = names
        node = graph.nodes[synapse]
        neuron = graph.nodes[neuron_name]
        problems += [f"layer {synapse!r}: {p}" for p in _weight_problems(np.asarray(node.weight))]
        step = float(np.max(step_current_bound(node, bounds[graph.inputs_of(synapse)[0]]),
                            initial=0))
        if isinstance(neuron, ir.IF):
            reach = float(np.max(neuron.threshold)) - 1 + step
        elif isinstance(neuron, ir.Readout) and isinstance(node, ir.Dense):
            parts = readout_parts(graph)
            reach = 0.0 if parts is not None else step * timesteps
        else:
            reach = step * timesteps
        if reach > LIF_STATE_MAX:
            problems.append(f"layer {synapse!r}: potentials may reach {reach:.0f}, beyond the "
                            f"{LIF_STATE_MAX} that Loihi's 24-bit v holds (inputs shifted by 6 bits)")
        if node.bias is not None and np.abs(node.bias).max(initial=0) > BIAS_MANT_MAX:
            problems.append(f"layer {synapse!r}: bias beyond the 13-bit mantissa ({BIAS_MANT_MAX})")
        if isinstance(node, ir.Conv2d):
            top, left, bottom, right = node.padding
            if top != bottom or left != right:
                problems.append(f"layer {synapse!r}: asymmetric padding")
        if isinstance(neuron, ir.IF):
            if neuron.reset != "zero":
                problems.append(f"neuron {neuron_name!r}: reset by subtraction (netx LIF resets "
                                "to zero)")
            if neuron.fire_once:
                positive = int((np.asarray(node.weight) > 0).reshape(
                    node.weight.shape[0], -1).sum(axis=1).max(initial=0))
                problems.append(f"neuron {neuron_name!r}: "
                                + FIRE_ONCE_REASON.format(positive=positive))
            if np.unique(neuron.threshold).size != 1:
                problems.append(f"neuron {neuron_name!r}: per-neuron or per-channel thresholds")
            elif int(np.unique(neuron.threshold)[0]) - 1 > VTH_MANT_MAX:
                problems.append(f"neuron {neuron_name!r}: threshold beyond vThMant {VTH_MANT_MAX}")
            if np.any(neuron.v_init != 0):
                problems.append(f"neuron {neuron_name!r}: nonzero initial potential v_init")
        elif isinstance(neuron, ir.LEAKY):
            problems += [f"neuron {neuron_name!r}: {p}" for p in _leaky_problems(neuron)]
            if isinstance(neuron, ir.CubaLIF) and node.bias is not None and np.any(node.bias):
                problems.append(f"layer {synapse!r}: a bias into a CubaLIF current (netx adds "
                                "biases to v)")
        elif neuron.mode == "first_spike":
            problems.append(f"readout {neuron_name!r}: first-spike readout (the netx output "
                            "layer is written as an accumulator read by argmax; first-spike "
                            "decisions from its potentials are not implemented)")
    return problems


def _leaky_problems(neuron: ir.LIF | ir.CubaLIF) -> list[str]:
    """What a netx CUBA neuron (Lava's LIF: one vth, du, dv per layer, ``v > vth``, reset to
    zero in the spiking step, ``du = iDecay - 1 >= 0``) cannot express of a leaky IR neuron."""
    problems = []
    if neuron.reset != "zero":
        problems.append("reset by subtraction (netx LIF resets to zero)")
    if neuron.comparison != ">":
        problems.append("spikes on v >= threshold (netx LIF: v > threshold)")
    if np.any(neuron.v_init != 0):
        problems.append("nonzero initial potential v_init")
    for what, values in (("threshold", neuron.threshold), ("du", neuron.du), ("dv", neuron.dv)):
        if np.unique(values).size != 1:
            problems.append(f"per-neuron or per-channel {what}")
    if np.max(neuron.threshold) > VTH_MANT_MAX:
        problems.append(f"threshold beyond vThMant {VTH_MANT_MAX}")
    if np.min(neuron.du) < 1 or np.max(neuron.dv) > DECAY_MAX - 1:
        problems.append("du = 0 or dv = 4096 (netx: du = iDecay - 1, dv = vDecay <= 4095)")
    return problems
def require_expressible(graph: ir.Graph) -> None:
    """Raise (exit 2) with netx's first reason when ``graph`` cannot be an exact netx file."""
    problems = inexpressible(graph)
    if problems:
        raise SnnccError(f"netx file required (--require-netx) but netx cannot express this "
                         f"network: {problems[0]}")


def _weight_problems(weight: np.ndarray) -> list[str]:
    problems = []
    low, high = weight.min(initial=0), weight.max(initial=0)
    mixed = low < 0 < high
    if mixed and (low < NETX_WEIGHT_RANGE[0] or high > NETX_WEIGHT_RANGE[1]):
        problems.append(f"weights in [{low}, {high}] outside netx's {list(NETX_WEIGHT_RANGE)}")
    elif not mixed and max(abs(low), abs(high)) > 255:
        problems.append(f"weights in [{low}, {high}] outside netx's 8-bit range")
    if mixed:
        odd = (np.abs(weight) > NETX_ODD_LIMIT) & (weight % 2 != 0)
        if odd.any():
            problems.append(f"{int(odd.sum())} odd weights beyond +-{NETX_ODD_LIMIT} where netx "
                            "expects even values (it drops their lowest bit)")
    return problems


def _string(group, key: str, value: str) -> None:
    group.create_dataset(key, (1,), "S10", np.bytes_(value))


def write_netx(graph: ir.Graph, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` as a netx HDF5 file (atomically); raise SnnccError when it is not exact."""
    import h5py

    from snncc.util import atomic_path

    problems = inexpressible(graph)
    if problems:
        raise SnnccError(f"netx cannot express this network: {problems[0]}")
    shapes = graph.infer_shapes()
    path = Path(path)
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        root = handle.create_group("layer")
        for index, (kind, names) in enumerate(_layers(graph)):
            group = root.create_group(str(index))
            _string(group, "type", kind)
            group.create_dataset("shape", data=np.asarray(shapes[names[-1]], dtype=np.int64))
            if kind in ("input", "flatten"):
                continue
            synapse = graph.nodes[names[0]]
            weight, bias = np.asarray(synapse.weight), synapse.bias
            if bias is not None and np.any(bias):
                bias = ir.broadcast_per_neuron(bias, shapes[names[0]], "bias")
                if kind == "conv":
                    bias = np.asarray(synapse.bias).reshape(-1)
            else:
                bias = None
            if isinstance(graph.nodes[names[1]], ir.Readout) and kind == "dense":
                weight, bias = split_readout(weight, bias, readout_parts(graph) or [])
                del group["shape"]
                group.create_dataset("shape", data=np.asarray([len(weight)], dtype=np.int64))
            group.create_dataset("weight", data=np.asarray(weight, dtype=np.float32))
            if bias is not None:
                group.create_dataset("bias", data=np.asarray(bias, dtype=np.float32))
            if kind == "conv":
                group.create_dataset("stride", data=np.asarray(synapse.stride, dtype=np.int64))
                group.create_dataset("padding", data=np.asarray(synapse.padding[:2], dtype=np.int64))
                group.create_dataset("dilation", data=np.asarray(synapse.dilation, dtype=np.int64))
                group.create_dataset("groups", data=np.int64(synapse.groups))
                group.create_dataset("inChannels", data=np.int64(synapse.weight.shape[1]
                                                                 * synapse.groups))
                group.create_dataset("outChannels", data=np.int64(synapse.weight.shape[0]))
                group.create_dataset("kernelSize", data=np.asarray(synapse.weight.shape[2:],
                                                                   dtype=np.int64))
            neuron = graph.nodes[names[1]]
            cell = group.create_group("neuron")
            _string(cell, "type", "CUBA")
            leaky = isinstance(neuron, ir.LEAKY)  # CUBA decays as they are (see ir.CubaLIF)
            cell.create_dataset("iDecay", data=np.int64(neuron.du[0] if leaky else DECAY_MAX))
            cell.create_dataset("vDecay", data=np.int64(neuron.dv[0] if leaky else 0))
            threshold = (int(np.unique(neuron.threshold)[0]) - 1 if isinstance(neuron, ir.IF)
                         else int(neuron.threshold.reshape(-1)[0]) if leaky else READOUT_VTH)
            cell.create_dataset("vThMant", data=np.int64(threshold))
            cell.create_dataset("refDelay", data=np.int64(1))
            cell.create_dataset("gradedSpike", data=np.bool_(False))
    return path


def read_netx(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """The layers of a netx file as plain dicts (strings decoded, arrays as numpy).

    Opened with :func:`snncc.safety.open_hdf5` (no links, no external or virtual datasets).
    """
    import h5py

    from snncc.safety import open_hdf5, read_dataset

    def load(group) -> dict[str, object]:
        result: dict[str, object] = {}
        for key, item in group.items():
            if isinstance(item, h5py.Group):
                result[key] = load(item)
                continue
            value = read_dataset(item)
            if value.ndim == 0:
                value = value[()]
            if isinstance(value, np.ndarray) and value.dtype.kind == "S":
                value = value[0]
            result[key] = value.decode("ascii") if isinstance(value, bytes) else value
        return result

    try:
        with open_hdf5(path, "netx file") as handle:
            if "layer" not in handle:
                raise SnnccError(f"{path}: not a netx file (no /layer group)")
            layer_group = handle["layer"]
            count = len(layer_group)
            missing = [i for i in range(count) if str(i) not in layer_group]
            if missing:
                raise SnnccError(f"{path}: layers are not numbered 0..{count - 1} ({missing})")
            return [load(layer_group[str(i)]) for i in range(count)]
    except OSError as error:
        raise SnnccError(f"{path}: cannot read netx HDF5 file ({error})") from None


def lint_netx(path: str | os.PathLike[str], graph: ir.Graph | None = None) -> list[str]:
    """Problems netx users hit with this file (empty list: clean).

    Checks every layer for: unknown ``type``; weights outside [-256, 254] or odd beyond +-127 in
    mixed-sign layers (netx clips / drops the lowest bit); ``vThMant`` > 131071; delays > 62;
    ``iDecay``/``vDecay`` outside 0..4096; biases beyond the 13-bit mantissa; shapes that do not
    chain; a dense layer after a conv map without ``flatten``; conv kernels not in
    ``(out, in / groups, kH, kW)`` layout. With the source ``graph`` it also compares the weights
    with the IR, naming a dense layer stored in HWC instead of NCHW flatten order and a conv kernel
    stored flipped or transposed.
    """
    problems: list[str] = []
    layers = read_netx(path)
    previous_shape: tuple[int, ...] | None = None
    flattened = False
    synapses = iter(graph.of_type(ir.Dense, ir.Conv2d)) if graph is not None else None
    for index, layer in enumerate(layers):
        where = f"layer {index}"
        kind = layer.get("type")
        if kind not in LAYER_TYPES:
            problems.append(f"{where}: unknown type {kind!r} (netx knows {', '.join(LAYER_TYPES)})")
            continue
        shape = tuple(int(s) for s in np.atleast_1d(layer.get("shape", ())))
        if kind == "flatten":
            flattened = True
            previous_shape = (int(np.prod(previous_shape)),) if previous_shape else shape
            continue
        if kind == "input":
            previous_shape = shape
            continue
        weight = np.asarray(layer.get("weight", np.zeros((0, 0))))
        problems += [f"{where}: {p}" for p in _weight_problems(weight)]
        if np.any(weight != np.round(weight)):
            problems.append(f"{where}: non-integer weights")
        neuron = layer.get("neuron", {})
        if not isinstance(neuron, dict) or "vThMant" not in neuron:
            problems.append(f"{where}: missing neuron/vThMant")
        else:
            vth = int(neuron["vThMant"])
            if not 0 <= vth <= VTH_MANT_MAX:
                problems.append(f"{where}: vThMant {vth} outside 0..{VTH_MANT_MAX}")
            for key in ("iDecay", "vDecay"):
                value = int(neuron.get(key, 0))
                if not 0 <= value <= DECAY_MAX:
                    problems.append(f"{where}: {key} {value} outside 0..{DECAY_MAX}")
        if "delay" in layer and np.max(layer["delay"]) > DELAY_MAX:
            problems.append(f"{where}: delay {int(np.max(layer['delay']))} beyond {DELAY_MAX}")
        if "bias" in layer and np.abs(layer["bias"]).max(initial=0) > BIAS_MANT_MAX:
            problems.append(f"{where}: bias beyond the 13-bit mantissa ({BIAS_MANT_MAX})")
        if kind == "dense":
            if previous_shape is not None and len(previous_shape) == 3 and not flattened:
                problems.append(f"{where}: dense layer after a conv map without a flatten layer")
            fan_in = int(np.prod(previous_shape)) if previous_shape else weight.shape[-1]
            if weight.ndim != 2 or weight.shape != (shape[0], fan_in):
                problems.append(f"{where}: dense weight shape {weight.shape}, expected "
                                f"({shape[0]}, {fan_in})")
        if kind == "conv":
            groups = int(layer.get("groups", 1))
            channels = previous_shape[0] if previous_shape and len(previous_shape) == 3 else None
            if weight.ndim != 4 or weight.shape[0] != shape[0]:
                problems.append(f"{where}: conv weight shape {weight.shape} is not "
                                f"(out={shape[0]}, in, kH, kW)")
            elif channels is not None and weight.shape[1] * groups != channels:
                hint = (" (kernel stored channels-last)" if weight.shape[3] * groups == channels
                        else "")
                problems.append(f"{where}: conv weight {weight.shape} does not take "
                                f"{channels} input channels in (out, in, kH, kW) layout{hint}")
        if synapses is not None:
            name = next(synapses, None)
            if name is not None:
                problems += _compare_with_ir(where, kind, weight, graph, name)
        flattened = False
        previous_shape = shape
    return problems


def _compare_with_ir(where: str, kind: str, weight: np.ndarray, graph: ir.Graph,
                     name: str) -> list[str]:
    expected = np.asarray(graph.nodes[name].weight, dtype=np.float64)
    parts = readout_parts(graph) if graph.inputs_of(graph.output_name)[0] == name else None
    if parts is not None and kind == "dense":
        expected = split_readout(expected, None, parts)[0]
    if weight.shape == expected.shape and np.array_equal(weight, expected):
        return []
    if kind == "conv" and weight.shape == expected.shape:
        if np.array_equal(weight, expected[:, :, ::-1, ::-1]):
            return [f"{where}: conv kernel of {name!r} is stored flipped (netx flips it itself)"]
        if np.array_equal(weight, expected.transpose(0, 1, 3, 2)):
            return [f"{where}: conv kernel of {name!r} is stored transposed (kW, kH)"]
    if kind == "dense" and weight.shape == expected.shape:
        source = graph.inputs_of(name)[0]
        if isinstance(graph.nodes[source], ir.Flatten):
            channels, height, width = graph.infer_shapes()[graph.inputs_of(source)[0]]
            hwc = expected.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
            if np.array_equal(weight, hwc.reshape(expected.shape)):
                return [f"{where}: dense weights of {name!r} follow HWC flatten order; netx "
                        "expects PyTorch NCHW order"]
    return [f"{where}: weights differ from IR node {name!r}"]
