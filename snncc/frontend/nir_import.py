"""NIR frontend: a spiking network in the Neuromorphic Intermediate Representation (the ``nir``
package's HDF5 files, NIR 1.x) becomes an :class:`snncc.ir.Graph`.

NIR is continuous-time and stores no time step, and producers discretise its equations in their
own ways, so the importer reads every neuron through a **convention** (:data:`CONVENTIONS`): the
time step ``dt``, when and how the reset applies, and how decays and input gains come from
``tau``, ``r`` and ``w_in``. Decays become the IR's 12-bit steps ``d = 4096 * dt / tau``
(``beta = 1 - dt / tau``; ``tau = inf`` is no leak); the input gain of a neuron (``r * dt / tau``,
``w_in * dt / tau_syn``; ``r = tau = inf`` counts as 1, the limit ``r = tau / dt`` that snnTorch
writes for ``beta = 1``; a gain within ``GAIN_TOLERANCE`` of 1 is 1, since producers write ``tau``
and ``r = tau / dt`` in float32) and a constant drive ``(dt / tau) * v_leak`` become an
:class:`~snncc.ir.Affine` node before the neuron when they are not 1 and 0 (the fold pass fuses
it into the synapses). Spikes always compare strictly, ``v > v_threshold``, as NIR, snnTorch,
Norse and Loihi do, unless a node's metadata says ``comparison: ">="`` (snncc's export).

* ``snntorch`` (snnTorch 1.0's ``export_to_nir``): ``dt = 1e-4`` hard-coded; reset by subtraction
  one step after the spike, after the decay (``reset_delay``; the file's ``v_reset = 0`` is not
  the reset mechanism); IF has gain ``r``; CubaLIF as ``Synaptic`` (``alpha = 1 - dt/tau_syn``).
* ``norse`` (what ``norse.torch.from_nir`` builds): ``dt = 1e-3``; forward Euler
  ``v += dt/tau (v_leak - v + r x)``, reset to ``v_reset`` in the spiking step; IF (Norse's IAF)
  ``v += r x`` without ``dt``; CubaLIF as a leaky synapse feeding a LIF in the same step.
* ``spec`` (the NIR equations read literally): Euler steps of ``dt`` (from the file's ``dt``
  metadata, else ``dt`` given by the caller: the file has none otherwise), reset to ``v_reset`` in
  the spiking step, IF ``v += dt r x``; CubaLIF updates the current first and the membrane from it.

A nonzero ``v_reset`` (norse, spec) is read as a shifted membrane ``v' = v - v_reset`` (threshold
``v_threshold - v_reset``, ``v_init = -v_reset``, reset to zero). The convention comes from the
``convention`` argument, else from the file (graph metadata ``convention``/``producer``, as
snncc's ``--target nir`` writes), else from the sidecar JSON's ``producer``, else ``spec``;
``graph.metadata`` records it (``nir_convention``, ``nir_convention_source``, ``nir_dt``).

Node mapping: ``Input`` -> Input (coding ``direct``: the preprocessed sample as a constant current
every step, as snnTorch and Norse feed images; or snncc's ``rate``/``latency`` encoders),
``Affine``/``Linear`` -> Dense, ``Scale`` -> Affine, ``Conv2d`` -> Conv2d, ``Conv1d`` -> Conv2d
between Reshapes, ``SumPool2d``/``AvgPool2d`` -> SumPool2d, ``Flatten`` -> Flatten/Reshape,
``LIF``/``CubaLIF`` -> LIF/CubaLIF, ``IF`` -> IF where it spikes on ``>=`` (snncc's export), else a
non-leaky LIF (``dv = 0``, ``v > threshold``), ``LI``/``I`` feeding the ``Output`` ->
a (leaky) potential Readout, any other node feeding the ``Output`` -> a potential Readout (spike
counts or accumulated current; the class is its argmax, lowest index on ties), several edges
into one node -> an Add. Anything else (Delay, Threshold, CubaLI, nested graphs, recurrent
edges) is refused in one line naming the node.

Files are opened with :func:`snncc.safety.open_hdf5`, following hard links only: external
links, soft links, external or virtual dataset storage are refused (a NIR file cannot make
snncc read other files), as are declared shapes past snncc's limits; every node is then built by the ``nir`` package (``nir.dict2NIRNode``), so its checks
apply, before snncc maps it. Preprocessing, dataset, ``T`` and the producer come from a sidecar JSON beside the file
(``NAME.json``: ``preprocess`` ``{scale, mean, std}`` or ``preprocessing`` with a scale such as
``"1/255"``), as for ONNX models.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snncc import ir
from snncc.errors import SnnccError, UnsupportedError
from snncc.frontend.onnx_import import read_sidecar
from snncc.passes.layers import compact

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: NIR file format versions this importer reads (major version).
SUPPORTED_MAJOR = 1
#: Input gains this close to 1 are 1 (producers write tau and r = tau/dt in float32).
GAIN_TOLERANCE = 1e-6
CODINGS = ("direct", "rate", "latency")
SUPPORTED_NODES = ("Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d",
                   "SumPool2d", "AvgPool2d", "Flatten", "IF", "LIF", "CubaLIF", "LI", "I")


@dataclass(frozen=True)
class Convention:
    """How a producer discretised NIR's continuous-time neurons (see the module docstring)."""

    name: str
    dt: float | None  #: default time step (None: the file or the caller must give it)
    delayed_subtract: bool  #: snnTorch: subtract the threshold the step after a spike
    if_gain_has_dt: bool  #: IF integrates ``dt * r * x`` (spec) or ``r * x`` (snnTorch, Norse)


CONVENTIONS: dict[str, Convention] = {
    "snntorch": Convention("snntorch", 1e-4, True, False),
    "norse": Convention("norse", 1e-3, False, False),
    "spec": Convention("spec", None, False, True),
}


def load_nir(path: str | Path, *, convention: str | None = None, dt: float | None = None,
             coding: str | None = None, preprocess: dict[str, Any] | None = None) -> ir.Graph:
    """Import the NIR file at ``path`` as a float SNN graph (see the module docstring).

    ``convention`` (snntorch|norse|spec) and ``dt`` override what the file and its sidecar say;
    ``coding`` picks the input encoder (default ``direct``); ``preprocess`` ``{scale, mean, std}``
    overrides the sidecar's. Bad input raises :class:`SnnccError` (one line).
    """
    path = Path(path)
    raw = _read_bytes(path)
    tree = read_tree(path, raw)
    sidecar = read_sidecar(path) or {}
    version = tree.get("version")
    if not isinstance(version, str):
        raise SnnccError(f"{path}: not a NIR file (no 'version' string)")
    major = version.split(".")[0]
    if not major.isdigit() or int(major) != SUPPORTED_MAJOR:
        raise SnnccError(f"{path}: NIR version {version!r} is not supported "
                         f"(snncc reads NIR {SUPPORTED_MAJOR}.x)")
    node = tree.get("node")
    if not isinstance(node, dict) or node.get("type") != "NIRGraph":
        raise SnnccError(f"{path}: not a NIR graph file (the root node is not a NIRGraph)")
    chosen, source = _choose_convention(convention, node.get("metadata", {}), sidecar)
    metadata = node.get("metadata", {}) or {}
    step = dt if dt is not None else _number(metadata.get("dt"))
    if step is None:
        step = chosen.dt
    if step is not None and not (math.isfinite(step) and step > 0):
        raise SnnccError(f"{path}: the time step dt must be positive, got {step}")
    builder = _Builder(path, chosen, step, metadata)
    graph = builder.build(node, _input_settings(path, metadata, sidecar, coding, preprocess))
    graph.metadata.update({
        "source": str(path.resolve()),
        "source_format": "nir",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "nir_version": version,
        "nir_convention": chosen.name,
        "nir_convention_source": source,
        "nir_dt": step,
    })
    producer = metadata.get("producer") or sidecar.get("producer")
    if producer:
        graph.metadata["producer"] = str(producer)
    for key, value in (("dataset", sidecar.get("dataset") or metadata.get("dataset")),
                       ("timesteps", sidecar.get("T") or metadata.get("timesteps")),
                       ("producer_test_accuracy", sidecar.get("producer_test_accuracy_10k"))):
        if value is not None:
            graph.metadata[key] = value.item() if isinstance(value, np.generic) else value
    if metadata.get("numeric") == "integer":
        _restore_integers(graph)
    graph.validate()
    return graph


def describe_convention(graph: ir.Graph) -> str | None:
    """One line on how a NIR graph was read (``None`` for other sources)."""
    if graph.metadata.get("source_format") != "nir":
        return None
    dt = graph.metadata.get("nir_dt")
    return (f"NIR convention {graph.metadata.get('nir_convention')} "
            f"({graph.metadata.get('nir_convention_source')}), dt = "
            + ("none (no time constants)" if dt is None else f"{dt:g}"))


# --------------------------------------------------------------------------------- safe reading


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SnnccError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SnnccError(f"{path}: is a directory, not a NIR file") from None
    except OSError as error:
        raise SnnccError(f"{path}: cannot read ({error.strerror})") from None
    return raw


def read_tree(path: Path, raw: bytes | None = None) -> dict[str, Any]:
    """The HDF5 file as nested dicts of numpy values and strings, following hard links only.

    Refuses (one line) a file that is not HDF5, a corrupt or truncated one, a hard-link cycle,
    and everything :func:`snncc.safety.open_hdf5` refuses (soft or external links, external or
    virtual dataset storage, declared shapes past the limits): nothing outside the file is read.
    """
    from snncc.safety import open_hdf5

    raw = path.read_bytes() if raw is None else raw
    if not raw.startswith(HDF5_SIGNATURE):
        raise SnnccError(f"{path}: not a NIR file (not HDF5)")
    try:
        with open_hdf5(path, "NIR file") as handle:
            return _walk(path, handle, "", frozenset())
    except SnnccError:
        raise
    except Exception as error:  # h5py raises OSError, KeyError, ValueError, RuntimeError
        raise SnnccError(f"{path}: corrupt or truncated HDF5 file ({_first_line(error)})") \
            from None


def _walk(path: Path, group: Any, where: str, above: frozenset) -> dict[str, Any]:
    import h5py

    from snncc.safety import read_dataset

    tree: dict[str, Any] = {}
    for key in group.keys():
        item = group[key]  # open_hdf5 admitted hard links only
        location = f"{where}/{key}"
        if isinstance(item, h5py.Group):
            if item.id in above:
                raise SnnccError(f"{path}: {location!r} links back to a group above it")
            tree[key] = _walk(path, item, location, above | {item.id})
            continue
        value = read_dataset(item)
        if value.ndim == 0:
            value = value[()]
        if isinstance(value, bytes):
            value = value.decode("utf8", errors="replace")
        elif isinstance(value, np.ndarray) and value.dtype.kind in "OS":
            value = np.array([v.decode("utf8", errors="replace") if isinstance(v, bytes) else v
                              for v in value.reshape(-1)], dtype=object).reshape(value.shape)
        tree[key] = value
    return tree


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]


# -------------------------------------------------------------------------------- conventions


def _choose_convention(requested: str | None, metadata: dict[str, Any],
                       sidecar: dict[str, Any]) -> tuple[Convention, str]:
    if requested is not None:
        if requested not in CONVENTIONS:
            raise SnnccError(f"unknown NIR convention {requested!r}; choose from "
                             f"{', '.join(CONVENTIONS)}")
        return CONVENTIONS[requested], "chosen with --nir-convention"
    declared = metadata.get("convention")
    if isinstance(declared, str) and declared in CONVENTIONS:
        return CONVENTIONS[declared], f"declared by the file ({metadata.get('producer', '?')})"
    for where, producer in (("the file's metadata", metadata.get("producer")),
                            ("the sidecar JSON", sidecar.get("producer"))):
        if isinstance(producer, str):
            for name in ("snntorch", "norse"):
                if name in producer.lower():
                    return CONVENTIONS[name], f"producer {producer!r} in {where}"
    return CONVENTIONS["spec"], "the file does not say who wrote it"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None


def _input_settings(path: Path, metadata: dict[str, Any], sidecar: dict[str, Any],
                    coding: str | None, preprocess: dict[str, Any] | None) -> dict[str, Any]:
    """Input node fields: snncc's own metadata, then the sidecar, then the arguments."""
    settings: dict[str, Any] = {"coding": "direct", "scale": 1.0, "mean": 0.0, "std": 1.0}
    stored = metadata.get("input")
    if isinstance(stored, dict):
        for key in ("coding", "scale", "mean", "std", "t_max", "seed"):
            if key in stored:
                settings[key] = stored[key]
    values = sidecar.get("preprocess") or sidecar.get("preprocessing")
    if isinstance(values, dict):
        for key in ("scale", "mean", "std"):
            if key in values:
                settings[key] = _sidecar_number(path, key, values[key])
    for key, value in (preprocess or {}).items():
        if value is not None:
            settings[key] = value
    if coding is not None:
        if coding not in CODINGS:
            raise SnnccError(f"unknown input coding {coding!r}; choose from {', '.join(CODINGS)}")
        settings["coding"] = coding
    if settings.get("t_max") is not None:
        settings["t_max"] = int(settings["t_max"])
        if settings["t_max"] <= 0:
            settings.pop("t_max")
    if "seed" in settings:
        settings["seed"] = int(settings["seed"])
    settings["coding"] = str(settings["coding"])
    return settings


def _sidecar_number(path: Path, key: str, value: Any) -> Any:
    """A sidecar value: a number, a list of numbers, or text starting with one (``"1/255 ..."``)."""
    if isinstance(value, str):
        match = re.match(r"\s*([-+0-9.eE]+)(?:\s*/\s*([-+0-9.eE]+))?", value)
        try:
            number = float(match.group(1)) if match else None
            if match and match.group(2):
                number = number / float(match.group(2))  # type: ignore[operator]
        except (ValueError, ZeroDivisionError):
            number = None
        if number is None or not math.isfinite(number):
            raise SnnccError(f"{path.with_suffix('.json')}: preprocessing {key} {value!r} is not "
                             "a number")
        return number
    return value


# ------------------------------------------------------------------------------------ building


_INTEGRATORS = ("LI", "I")
_NEURONS = ("IF", "LIF", "CubaLIF")


class _Builder:
    """Turns the NIR node dicts and edges into IR nodes, in topological order."""

    def __init__(self, path: Path, convention: Convention, dt: float | None,
                 metadata: dict[str, Any]) -> None:
        self.path = path
        self.convention = convention
        self.dt = dt
        self.graph = ir.Graph()
        self.shapes: dict[str, ir.Shape] = {}
        self.output_of: dict[str, str] = {}  # NIR node -> IR node carrying its output
        self.node_metadata: dict[str, Any] = {}

    # -- structure ------------------------------------------------------------------------------
    def build(self, root: dict[str, Any], input_settings: dict[str, Any]) -> ir.Graph:
        import networkx as nx

        nodes = root.get("nodes")
        edges = root.get("edges")
        if not isinstance(nodes, dict) or edges is None:
            raise SnnccError(f"{self.path}: not a NIR graph file (no nodes or edges)")
        pairs = _edge_list(self.path, edges)
        self.node_metadata = {name: node.get("metadata") for name, node in nodes.items()
                              if isinstance(node, dict)}
        kinds = {}
        for name, node in nodes.items():
            kind = node.get("type") if isinstance(node, dict) else None
            if not isinstance(kind, str):
                raise SnnccError(f"{self.path}: node {name!r} has no type")
            kinds[name] = kind
        for source, target in pairs:
            for end in (source, target):
                if end not in nodes:
                    raise SnnccError(f"{self.path}: edge {source!r} -> {target!r} names no "
                                     f"node {end!r}")
        for name, kind in kinds.items():
            if kind not in SUPPORTED_NODES:
                what = "nested graphs are" if kind == "NIRGraph" else f"{kind} is"
                raise UnsupportedError(f"node {name!r} ({kind}): {what} not supported by snncc; "
                                       f"supported: {', '.join(SUPPORTED_NODES)}")
            _check_with_nir(self.path, name, kind, nodes[name])
        network = nx.DiGraph()
        network.add_nodes_from(nodes)
        network.add_edges_from(pairs)
        try:
            cycle = nx.find_cycle(network)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([cycle[0][0]] + [edge[1] for edge in cycle])
            raise UnsupportedError(f"{self.path}: recurrent edges ({path}) are not supported: "
                                   "snncc takes feed-forward networks")
        inputs = [n for n, kind in kinds.items() if kind == "Input"]
        outputs = [n for n, kind in kinds.items() if kind == "Output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedError(f"{self.path}: snncc takes one Input and one Output node, "
                                   f"found {len(inputs)} and {len(outputs)}")
        order = list(nx.lexicographical_topological_sort(network, key=str))
        predecessors = {name: [s for s, t in pairs if t == name] for name in nodes}
        successors = {name: [t for s, t in pairs if s == name] for name in nodes}
        for name in order:
            kind = kinds[name]
            node = nodes[name]
            sources = predecessors[name]
            if kind == "Input":
                if sources:
                    raise UnsupportedError(f"node {name!r} (Input) has incoming edges")
                self._input(name, node, input_settings)
                continue
            if not sources:
                raise SnnccError(f"{self.path}: node {name!r} ({kind}) has no input")
            source = self._fan_in(name, sources)
            if kind in _INTEGRATORS and successors[name] != outputs:
                raise UnsupportedError(
                    f"node {name!r} ({kind}): snncc reads LI/I only as the network's readout "
                    "(feeding the Output node alone)")
            if kind == "Output":
                if successors[name]:
                    raise UnsupportedError(f"node {name!r} (Output) has outgoing edges")
                self._output(name, source)
            else:
                try:
                    self._node(name, kind, node, source)
                except SnnccError:
                    raise
                except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
                    raise SnnccError(f"{self.path}: node {name!r} ({kind}) has malformed "
                                     f"parameters ({_first_line(error)})") from None
        return self.graph

    def _fan_in(self, name: str, sources: list[str]) -> str:
        """The IR node feeding ``name``: its source, or an Add of several (NIR sums fan-in)."""
        carried = [self.output_of[s] for s in sources]
        if len(carried) == 1:
            return carried[0]
        return self._add(f"{name}:sum", ir.Add(), carried, name)

    def _add(self, ir_name: str, node: ir.Node, inputs: list[str], nir_name: str) -> str:
        """Add an IR node, checking the shapes of the edges into it (one line naming them)."""
        try:
            shape = node.output_shape([self.shapes[s] for s in inputs])
        except SnnccError as error:
            raise SnnccError(f"{self.path}: edge into node {nir_name!r} "
                             f"({type(node).__name__}): {error}") from None
        self.graph.add(ir_name, node, inputs)
        self.shapes[ir_name] = tuple(int(s) for s in shape)
        return ir_name

    # -- nodes ----------------------------------------------------------------------------------
    def _input(self, name: str, node: dict[str, Any], settings: dict[str, Any]) -> None:
        shape = tuple(int(s) for s in np.asarray(node["shape"]).reshape(-1))
        fields = {k: v for k, v in settings.items() if k in ("coding", "scale", "mean", "std",
                                                             "t_max", "seed")}
        self.graph.add(name, ir.Input(shape=shape, **fields))
        self.shapes[name] = self.graph.nodes[name].shape
        self.output_of[name] = name

    def _output(self, name: str, source: str) -> None:
        if isinstance(self.graph.nodes[source], ir.Readout):
            self.output_of[name] = source  # an LI/I readout already
            return
        self.output_of[name] = self._add(name, ir.Readout(mode="potential"), [source], name)

    def _node(self, name: str, kind: str, node: dict[str, Any], source: str) -> None:
        shape = self.shapes[source]
        array = _arrays(self.path, name, kind, node)
        if kind in ("Affine", "Linear"):
            weight = array("weight")
            if weight.ndim != 2:
                raise UnsupportedError(f"node {name!r} ({kind}): weight of {weight.ndim} "
                                       "dimensions; snncc takes (out, in) matrices")
            bias = array("bias") if kind == "Affine" else None
            out = self._add(name, ir.Dense(weight=weight, bias=bias), [source], name)
        elif kind == "Scale":
            scale = array("scale")
            per_channel = _per_channel(name, kind, "scale", scale, shape)
            out = self._add(name, ir.Affine(scale=per_channel, bias=np.zeros(1)), [source], name)
        elif kind == "Conv2d":
            out = self._conv2d(name, node, array, source)
        elif kind == "Conv1d":
            out = self._conv1d(name, node, array, source)
        elif kind in ("SumPool2d", "AvgPool2d"):
            kernel = _pair(array("kernel_size"))
            stride = _pair(array("stride"))
            padding = _pair(array("padding"))
            scale = 1.0 if kind == "SumPool2d" else 1.0 / (kernel[0] * kernel[1])
            out = self._add(name, ir.SumPool2d(kernel=kernel, stride=stride,
                                               padding=padding, scale=scale), [source], name)
        elif kind == "Flatten":
            out = self._flatten(name, node, source)
        else:
            out = self._neuron(name, kind, array, source)
        self.output_of[name] = out

    def _conv2d(self, name: str, node: dict[str, Any], array: Any, source: str) -> str:
        weight = array("weight")
        if weight.ndim != 4:
            raise SnnccError(f"{self.path}: node {name!r} (Conv2d): weight must be 4-D")
        padding = _conv_padding(name, node.get("padding"), weight.shape[2:],
                                _pair(array("dilation")), _pair(array("stride")))
        bias = array("bias")
        conv = ir.Conv2d(weight=weight, bias=None if not np.any(bias) else bias,
                         stride=_pair(array("stride")), padding=padding,
                         dilation=_pair(array("dilation")), groups=int(array("groups")))
        return self._add(name, conv, [source], name)

    def _conv1d(self, name: str, node: dict[str, Any], array: Any, source: str) -> str:
        weight = array("weight")
        shape = self.shapes[source]
        if weight.ndim != 3 or len(shape) != 2:
            raise SnnccError(f"{self.path}: node {name!r} (Conv1d) needs a 3-D weight and "
                             f"(C, L) input, got {weight.shape} and {shape}")
        stride, dilation = int(array("stride")), int(array("dilation"))
        (pad,) = _conv_padding(name, node.get("padding"), weight.shape[2:], (dilation,),
                               (stride,), one_d=True)
        to_2d = self._add(f"{name}:to2d", ir.Reshape(shape=(shape[0], 1, shape[1])), [source],
                          name)
        bias = array("bias")
        conv = ir.Conv2d(weight=weight[:, :, None, :], bias=None if not np.any(bias) else bias,
                         stride=(1, stride), padding=(0, pad[0], 0, pad[1]),
                         dilation=(1, dilation), groups=int(array("groups")))
        out = self._add(f"{name}:conv", conv, [to_2d], name)
        channels, _, length = self.shapes[out]
        return self._add(name, ir.Reshape(shape=(channels, length)), [out], name)

    def _flatten(self, name: str, node: dict[str, Any], source: str) -> str:
        shape = self.shapes[source]
        start, end = int(node.get("start_dim", 1)), int(node.get("end_dim", -1))
        rank = len(shape)
        start, end = start % rank if rank else 0, end % rank if rank else 0
        if start > end:
            raise SnnccError(f"{self.path}: node {name!r} (Flatten): start_dim after end_dim "
                             f"for input shape {shape}")
        flat = shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]
        node_ir: ir.Node = ir.Flatten() if len(flat) == 1 else ir.Reshape(shape=flat)
        return self._add(name, node_ir, [source], name)

    # -- neurons --------------------------------------------------------------------------------
    def _neuron(self, name: str, kind: str, array: Any, source: str) -> str:
        shape = self.shapes[source]
        params = self._neuron_parameters(name, kind, array, shape)
        gain, bias = params.pop("gain"), params.pop("bias")
        if np.any(gain != 1) or np.any(bias != 0):
            scale = _per_channel(name, kind, "input gain", gain, shape)
            shift = _per_channel(name, kind, "constant drive", bias, shape)
            source = self._add(f"{name}:gain", ir.Affine(scale=scale, bias=shift), [source],
                               name)
        if kind in _INTEGRATORS:
            return self._add(name, ir.Readout(mode="potential", dv=params["dv"]), [source],
                             name)
        values = {key: compact(np.asarray(value)) if np.ndim(value) else value
                  for key, value in params.items()}
        if kind == "IF" and values["comparison"] == ">=" and not values["reset_delay"]:
            # the IR's IF spikes on equality: an exact fit (snncc's own export of IF)
            neuron_if = ir.IF(threshold=values["threshold"], v_init=values["v_init"],
                              reset=values["reset"])
            return self._add(name, neuron_if, [source], name)
        if kind == "CubaLIF":
            neuron: ir.Node = ir.CubaLIF(**values)
        else:
            neuron = ir.LIF(**values)
        return self._add(name, neuron, [source], name)

    def _require_dt(self, name: str, kind: str) -> float:
        if self.dt is None:
            raise SnnccError(f"node {name!r} ({kind}): the file stores no time step and the "
                             "spec convention needs one: pass --nir-dt (or --nir-convention "
                             "snntorch|norse)")
        return self.dt

    def _neuron_parameters(self, name: str, kind: str, array: Any,
                           shape: ir.Shape) -> dict[str, Any]:
        """IR neuron fields plus the input ``gain`` and constant ``bias`` (per neuron arrays)."""
        convention = self.convention
        size = (1,) + tuple(shape)

        def param(key: str, default: float | None = None) -> np.ndarray:
            value = array(key) if default is None else array(key, default)
            value = np.asarray(value, dtype=np.float64)
            if np.any(np.isnan(value)):
                raise SnnccError(f"node {name!r} ({kind}): {key} is NaN")
            try:
                return np.broadcast_to(value, size)[0].copy()
            except ValueError:
                raise SnnccError(f"{self.path}: node {name!r} ({kind}): {key} of shape "
                                 f"{value.shape} does not fit its input {shape}") from None

        def decay_of(key: str) -> np.ndarray:
            """The decay ``4096 * dt / tau`` in 12-bit steps (0 for tau = inf), computed as
            ``(4096 * dt) / tau``, the expression snncc's export inverts exactly."""
            tau = param(key)
            if np.any(tau <= 0):
                raise SnnccError(f"node {name!r} ({kind}): time constant {key} must be > 0 "
                                 f"(got {float(tau.min()):g})")
            step = self._require_dt(name, kind)
            value = (ir.DECAY_UNITY * step) / tau
            # tau = dt written in float32 may land a hair below dt: that is a full decay
            value = np.where(value <= ir.DECAY_UNITY * (1 + GAIN_TOLERANCE),
                             np.minimum(value, ir.DECAY_UNITY), value)
            if np.any(value > ir.DECAY_UNITY):
                raise SnnccError(f"node {name!r} ({kind}): {key} = {float(tau.min()):g} is "
                                 f"shorter than dt = {step:g}: the Euler step is unstable")
            return value

        def fraction(key: str) -> np.ndarray:
            """``dt / tau`` for time constant ``key``."""
            return decay_of(key) / ir.DECAY_UNITY

        def gain(numerator: np.ndarray, tau: np.ndarray, with_dt: bool = True) -> np.ndarray:
            step = self._require_dt(name, kind) if with_dt else 1.0
            with np.errstate(invalid="ignore", divide="ignore"):
                value = numerator * step / tau
            value = np.where(np.isinf(numerator) & np.isinf(tau), 1.0, value)
            if not np.all(np.isfinite(value)):
                raise SnnccError(f"node {name!r} ({kind}): input gain r*dt/tau is not finite")
            return np.where(np.abs(value - 1) <= GAIN_TOLERANCE, 1.0, value)

        zero = np.zeros(tuple(shape))
        if kind == "I":
            r = param("r")
            return {"dv": 0.0, "gain": gain(r, np.ones_like(r), convention.if_gain_has_dt),
                    "bias": zero}
        if kind == "LI":
            decay = decay_of("tau")
            _uniform(name, kind, "tau", decay)
            return {"dv": float(decay.reshape(-1)[0]), "gain": gain(param("r"), param("tau")),
                    "bias": fraction("tau") * param("v_leak")}
        threshold = param("v_threshold")
        v_reset = zero if convention.delayed_subtract else param("v_reset", 0.0)
        fields: dict[str, Any] = {"comparison": self.comparison(name)}
        if convention.delayed_subtract:
            fields.update(reset="subtract", reset_delay=True)
        else:
            fields.update(reset="zero", reset_delay=False)
        if kind == "IF":
            r = param("r")
            fields["dv"] = np.zeros(tuple(shape))
            input_gain = gain(r, np.ones_like(r), convention.if_gain_has_dt)
            drive = zero
        elif kind == "LIF":
            fields["dv"] = decay_of("tau")
            input_gain = gain(param("r"), param("tau"))
            drive = fraction("tau") * (param("v_leak") - v_reset)
        else:
            fields["du"] = decay_of("tau_syn")
            fields["dv"] = decay_of("tau_mem")
            input_gain = gain(param("w_in", 1.0), param("tau_syn")) * gain(param("r"),
                                                                           param("tau_mem"))
            drive = fraction("tau_mem") * (param("v_leak") - v_reset)
            if np.any(drive != 0):
                raise UnsupportedError(f"node {name!r} (CubaLIF): v_leak != v_reset drives the "
                                       "membrane directly, which snncc's CubaLIF cannot express")
        fields["threshold"] = threshold - v_reset
        fields["v_init"] = 0.0 - v_reset  # 0.0 - 0.0 is +0.0 (-v_reset would print -0.)
        if np.any(fields["threshold"] <= 0) or not np.all(np.isfinite(fields["threshold"])):
            raise SnnccError(f"node {name!r} ({kind}): v_threshold must be finite and above "
                             "v_reset")
        fields["gain"], fields["bias"] = input_gain, drive
        return fields

    def comparison(self, name: str) -> str:
        """``>`` unless the node's metadata (snncc's export) says ``>=``."""
        metadata = self.node_metadata.get(name)
        return ">=" if isinstance(metadata, dict) and metadata.get("comparison") == ">=" else ">"


def _check_with_nir(path: Path, name: str, kind: str, node: dict[str, Any]) -> None:
    """Let the ``nir`` package build the node from the file's fields: its own checks (parameter
    shapes that agree, known fields) apply before snncc reads the values."""
    import nir

    try:
        nir.dict2NIRNode(dict(node))
    except Exception as error:  # nir raises AssertionError, TypeError, ValueError, KeyError
        raise SnnccError(f"{path}: node {name!r} ({kind}) is not a valid NIR {kind} "
                         f"({_first_line(error) or type(error).__name__})") from None


def _arrays(path: Path, name: str, kind: str, node: dict[str, Any]) -> Any:
    def array(key: str, default: float | None = None) -> np.ndarray:
        if key not in node:
            if default is not None:
                return np.asarray(default)
            raise SnnccError(f"{path}: node {name!r} ({kind}) has no {key!r}")
        value = np.asarray(node[key])
        if value.dtype.kind not in "biuf":
            raise SnnccError(f"{path}: node {name!r} ({kind}): {key} is not numeric")
        return value

    return array


def _edge_list(path: Path, edges: Any) -> list[tuple[str, str]]:
    values = np.asarray(edges, dtype=object)
    if values.size == 0:
        return []
    if values.ndim != 2 or values.shape[1] != 2:
        raise SnnccError(f"{path}: edges must be (source, target) pairs")
    return [(str(a), str(b)) for a, b in values]


def _pair(value: Any) -> tuple[int, int]:
    values = np.asarray(value).reshape(-1)
    if values.size == 1:
        return (int(values[0]), int(values[0]))
    return (int(values[0]), int(values[1]))


def _conv_padding(name: str, padding: Any, kernel: tuple[int, ...], dilation: tuple[int, ...],
                  stride: tuple[int, ...], one_d: bool = False) -> Any:
    """NIR padding (ints per axis, ``"valid"`` or ``"same"``) as (top, left, bottom, right), or
    ``[(before, after)]`` for Conv1d."""
    axes = len(kernel)
    if isinstance(padding, str) and padding in ("valid", "same"):
        if padding == "valid":
            pads = [(0, 0)] * axes
        else:
            if any(s != 1 for s in stride):
                raise UnsupportedError(f"node {name!r}: padding 'same' with stride > 1")
            totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            pads = [(t // 2, t - t // 2) for t in totals]
    else:
        values = np.asarray(padding).reshape(-1).astype(int)
        values = np.repeat(values, axes) if values.size == 1 else values
        pads = [(int(p), int(p)) for p in values[:axes]]
    if one_d:
        return pads
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _per_channel(name: str, kind: str, what: str, values: np.ndarray,
                 shape: ir.Shape) -> np.ndarray:
    """Per-neuron values as one per channel (axis 0); refuse values varying inside a channel."""
    values = np.broadcast_to(np.asarray(values, dtype=np.float64), tuple(shape))
    flat = values.reshape(values.shape[0], -1) if values.ndim else values.reshape(1, 1)
    if not np.all(flat == flat[:, :1]):
        raise UnsupportedError(f"node {name!r} ({kind}): {what} varies inside a channel of "
                               f"{tuple(shape)}; snncc scales whole channels")
    return compact(flat[:, 0])


def _uniform(name: str, kind: str, what: str, values: np.ndarray) -> None:
    if np.unique(values).size > 1:
        raise UnsupportedError(f"node {name!r} ({kind}): a readout needs one {what} for all "
                               "its neurons")


def _restore_integers(graph: ir.Graph) -> None:
    """snncc wrote an integer graph: its decays are whole 12-bit steps (written as tau), its
    thresholds and initial potentials integers (read as floats like every NIR parameter)."""
    for node in graph.nodes.values():
        for key in ("du", "dv", "threshold", "v_init"):
            value = getattr(node, key, None)
            # a decay d comes back as (4096 dt) / tau, which for some d no float64 tau makes
            # exact (it lands an ulp away): whole numbers within 1e-9 are those integers
            if isinstance(value, np.ndarray) and np.allclose(value, np.rint(value), rtol=1e-9,
                                                             atol=0):
                setattr(node, key, np.rint(value).astype(np.int64))
        if isinstance(node, ir.Readout) and math.isclose(node.dv, round(node.dv), rel_tol=1e-9):
            node.dv = int(round(node.dv))
