"""The ``nir`` target: the graph as a NIR 1.x file (``network.nir``), written through ``nir``.

NIR is continuous-time, so the file says how snncc discretises: graph metadata ``producer``
(``snncc <version>``), ``convention``, ``dt``, ``numeric`` (``float``, or ``integer`` for a
graph in the integer mode, whose Loihi rules are snncc's ``docs/semantics.md``), ``timesteps``,
``dataset`` and ``input`` (coding and preprocessing, which NIR's ``Input`` cannot hold); node
metadata ``comparison`` (``>=`` where snncc spikes on equality; NIR's equations say ``>``),
``reset`` and ``reset_delay``. snncc's importer reads all of it back (round trip: the same IR).

Target option ``convention`` (``--target-option convention=...``; also ``dt``):

* ``spec`` (default): the NIR equations with Euler steps of ``dt`` (option ``dt``, default 1):
  ``LIF``: ``tau = 4096 dt / dv`` (written as the float64 for which ``(4096 dt) / tau`` gives
  ``dv`` back, exactly where a float64 can; ``dv = 0`` is ``tau = inf``), ``r = tau / dt`` (unit input gain),
  ``v_leak = 0``, ``v_reset = 0``; ``CubaLIF`` the same with ``tau_syn`` from ``du`` and
  ``w_in = tau_syn / dt``; ``IF``: ``r = 1 / dt``; a leaky readout: ``LI``. Neurons must reset
  to zero in the spiking step with ``v_init = 0``: a subtract reset (a converted ANN's default),
  ``v_init``, fire-once neurons, max pooling and first-spike readouts have no NIR form and are
  refused in one line (convert for a reset-to-zero profile).
* ``snntorch``: what snnTorch 1.0's ``export_to_nir`` writes (``dt = 1e-4``, ``v_reset = 0``
  whatever the reset): for networks with snnTorch's own update, LIF/CubaLIF neurons resetting by
  subtraction one step after the spike (``reset_delay``) with ``v > threshold``, such as imported
  snnTorch files. Anything else is refused.

Per-channel IR ``Affine`` nodes with zero bias become ``Scale``; several inputs of an ``Add``
become several edges into its reader (NIR sums fan-in); ``Reshape`` to a vector is ``Flatten``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from snncc import __version__, ir
from snncc.errors import SnnccError, UnsupportedError

CONVENTIONS = {"spec": 1.0, "snntorch": 1e-4}  #: convention -> default dt


def emit(graph: ir.Graph, out_dir: str | Path, *, timesteps: int | None = None,
         source_hash: str | None = None, convention: str = "spec",
         dt: float | None = None) -> list[Path]:
    """Write ``network.nir`` into ``out_dir`` (see the module docstring for the options)."""
    return [write_nir(graph, Path(out_dir) / "network.nir", convention=convention, dt=dt)]


def write_nir(graph: ir.Graph, path: str | Path, convention: str = "spec",
              dt: float | None = None) -> Path:
    """Write ``graph`` to ``path`` as NIR (temporary file, then rename); returns the path."""
    import nir

    from snncc.util import atomic_path

    network = to_nir(graph, convention, dt)
    path = Path(path)
    with atomic_path(path) as temporary:
        nir.write(temporary, network)
    return path


def time_constant(decay: np.ndarray, dt: float) -> np.ndarray:
    """The ``tau`` per element for which ``(4096 * dt) / tau`` is ``decay`` (``inf`` for 0): the
    float64 nearest to ``4096 dt / decay``, nudged by ulps until the division gives ``decay``
    back exactly where some float64 does (for the rest it lands one ulp away; an integer graph's
    import rounds its decays back to whole steps)."""
    numerator = ir.DECAY_UNITY * dt
    decay = np.asarray(decay, dtype=np.float64)
    with np.errstate(divide="ignore"):
        tau = numerator / decay
    for index in np.flatnonzero(decay.reshape(-1)):
        want = decay.reshape(-1)[index]
        candidate = tau.reshape(-1)[index]
        best = candidate
        for _ in range(8):
            got = numerator / candidate
            if got == want:
                best = candidate
                break
            if abs(got - want) < abs(numerator / best - want):
                best = candidate
            candidate = np.nextafter(candidate, np.inf if got > want else 0.0)
        tau.reshape(-1)[index] = best
    return tau


def to_nir(graph: ir.Graph, convention: str = "spec", dt: float | None = None) -> Any:
    """The graph as a type-checked ``nir.NIRGraph`` (refusals: one line naming the node)."""
    import nir

    if convention not in CONVENTIONS:
        raise SnnccError(f"target 'nir': unknown convention {convention!r}; choose from "
                         f"{', '.join(CONVENTIONS)}")
    step = CONVENTIONS[convention] if dt is None else float(dt)
    if not (math.isfinite(step) and step > 0):
        raise SnnccError(f"target 'nir': dt must be positive, got {dt}")
    if convention == "snntorch" and step != CONVENTIONS["snntorch"]:
        raise SnnccError("target 'nir': the snntorch convention has dt = 1e-4 (snnTorch "
                         "hard-codes it)")
    shapes = graph.validate()
    writer = _Writer(graph, shapes, convention, step)
    nodes: dict[str, Any] = {}
    for name in graph.topological_order():
        node = graph.nodes[name]
        if isinstance(node, ir.Add):
            continue
        nodes.update(writer.node(name, node))
    edges = []
    for name in graph.topological_order():
        if isinstance(graph.nodes[name], (ir.Add, ir.Input)):
            continue
        for source in writer.sources(name):
            edges.append((source, name))
    output = graph.output_name
    if writer.output_name != output:
        edges.append((output, writer.output_name))
    metadata = writer.metadata()
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)
    except Exception as error:  # nir's type check raises ValueError/AssertionError
        raise SnnccError(f"target 'nir': the NIR graph does not type-check ({error})") from None


class _Writer:
    """Per-node NIR conversion with the convention's refusals."""

    def __init__(self, graph: ir.Graph, shapes: dict[str, ir.Shape], convention: str,
                 dt: float) -> None:
        self.graph = graph
        self.shapes = shapes
        self.convention = convention
        self.dt = dt
        self.output_name = graph.output_name

    def sources(self, name: str) -> list[str]:
        """NIR nodes feeding ``name``: Add nodes dissolve into fan-in."""
        found = []
        for source in self.graph.inputs_of(name):
            if isinstance(self.graph.nodes[source], ir.Add):
                found += self.sources(source)
            else:
                found.append(source)
        return found

    def metadata(self) -> dict[str, Any]:
        node = self.graph.input
        stored: dict[str, Any] = {"coding": node.coding, "scale": float(node.scale),
                                  "mean": np.asarray(node.mean, np.float64),
                                  "std": np.asarray(node.std, np.float64), "seed": int(node.seed)}
        if node.t_max is not None:
            stored["t_max"] = int(node.t_max)
        metadata: dict[str, Any] = {
            "producer": f"snncc {__version__}",
            "convention": self.convention,
            "dt": self.dt,
            "numeric": "integer" if self.graph.is_integer() else "float",
            "input": stored,
            "semantics": "snncc docs/semantics.md (discrete steps of dt; integer numeric: "
                         "Loihi CUBA rules)",
        }
        for key in ("timesteps", "dataset"):
            value = self.graph.metadata.get(key)
            if isinstance(value, (int, float, str)):
                metadata[key] = value
        return metadata

    def refuse(self, name: str, node: ir.Node, why: str) -> UnsupportedError:
        return UnsupportedError(f"target 'nir': node {name!r} ({type(node).__name__}): {why}")

    def per_neuron(self, name: str, values: np.ndarray) -> np.ndarray:
        """Values per layer/channel/neuron as a full per-neuron array (NIR's shape), same dtype."""
        return np.array(ir.broadcast_per_neuron(np.asarray(values), self.shapes[name]))

    def node(self, name: str, node: ir.Node) -> dict[str, Any]:
        import nir

        shape = self.shapes[name]
        if isinstance(node, ir.Input):
            return {name: nir.Input(input_type=np.array(node.shape))}
        if isinstance(node, ir.Dense):
            if node.bias is None:
                return {name: nir.Linear(weight=node.weight)}
            return {name: nir.Affine(weight=node.weight, bias=node.bias)}
        if isinstance(node, ir.Conv2d):
            top, left, bottom, right = node.padding
            if (top, left) != (bottom, right):
                raise self.refuse(name, node, "asymmetric padding has no NIR form")
            in_shape = self.shapes[self.graph.inputs_of(name)[0]]
            bias = node.bias if node.bias is not None else np.zeros(node.weight.shape[0],
                                                                    node.weight.dtype)
            return {name: nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=node.weight,
                                     stride=tuple(node.stride), padding=(top, left),
                                     dilation=tuple(node.dilation), groups=node.groups,
                                     bias=bias)}
        if isinstance(node, ir.SumPool2d):
            top, left, bottom, right = node.padding
            if (top, left) != (bottom, right):
                raise self.refuse(name, node, "asymmetric padding has no NIR form")
            fields = dict(kernel_size=np.array(node.kernel), stride=np.array(node.stride),
                          padding=np.array((top, left)))
            if node.scale == 1.0:
                return {name: nir.SumPool2d(**fields)}
            if math.isclose(node.scale, 1.0 / (node.kernel[0] * node.kernel[1]), rel_tol=1e-12):
                return {name: nir.AvgPool2d(**fields)}
            raise self.refuse(name, node, f"scale {node.scale:g} is neither a sum nor an average")
        if isinstance(node, (ir.Flatten, ir.Reshape)):
            if len(shape) != 1:
                raise self.refuse(name, node, "NIR reshapes only by Flatten (to a vector)")
            in_shape = self.shapes[self.graph.inputs_of(name)[0]]
            return {name: nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0,
                                      end_dim=-1)}
        if isinstance(node, ir.Affine):
            if np.any(node.bias):
                raise self.refuse(name, node, "a per-channel shift has no NIR form (run fold)")
            scale = self.per_neuron(name, node.scale.reshape((-1,) + (1,) * (len(shape) - 1))
                                    if node.scale.size > 1 else node.scale)
            return {name: nir.Scale(scale=scale)}
        if isinstance(node, ir.IF):
            return {name: self.integrate_and_fire(name, node)}
        if isinstance(node, ir.LEAKY):
            return {name: self.leaky(name, node)}
        if isinstance(node, ir.Readout):
            return self.readout(name, node)
        if isinstance(node, ir.MaxPool2d):
            raise self.refuse(name, node, "max pooling over time has no NIR node")
        if isinstance(node, (ir.ReLU, ir.Clip)):
            raise self.refuse(name, node, "an ANN activation: convert the network first")
        raise self.refuse(name, node, "has no NIR form")

    def check_reset(self, name: str, node: Any, subtract_delayed_ok: bool) -> None:
        """The convention's reset rules (see the module docstring)."""
        if np.any(node.v_init):
            raise self.refuse(name, node, "an initial potential v_init != 0 has no NIR form")
        if self.convention == "snntorch":
            if not (node.reset == "subtract" and getattr(node, "reset_delay", False)
                    and getattr(node, "comparison", ">=") == ">" and subtract_delayed_ok):
                raise self.refuse(name, node, "the snntorch convention holds only snnTorch's "
                                  "update (subtract one step after the spike, v > threshold)")
        elif node.reset != "zero":
            raise self.refuse(name, node, "reset by subtraction has no NIR form (NIR resets to "
                              "v_reset): convert for a reset-to-zero profile")

    def neuron_metadata(self, node: Any) -> dict[str, Any]:
        return {"comparison": getattr(node, "comparison", ">="), "reset": node.reset,
                "reset_delay": int(bool(getattr(node, "reset_delay", False)))}

    def integrate_and_fire(self, name: str, node: ir.IF) -> Any:
        import nir

        if node.fire_once:
            raise self.refuse(name, node, "fire-once neurons have no NIR form")
        self.check_reset(name, node, subtract_delayed_ok=False)
        threshold = self.per_neuron(name, node.threshold)
        return nir.IF(r=np.full(threshold.shape, 1.0 / self.dt), v_threshold=threshold,
                      v_reset=np.zeros_like(threshold), metadata=self.neuron_metadata(node))

    def leaky(self, name: str, node: ir.LIF | ir.CubaLIF) -> Any:
        import nir

        self.check_reset(name, node, subtract_delayed_ok=True)
        threshold = self.per_neuron(name, node.threshold)
        tau_mem = time_constant(self.per_neuron(name, node.dv), self.dt)
        common = dict(r=tau_mem / self.dt, v_leak=np.zeros(threshold.shape),
                      v_threshold=threshold, v_reset=np.zeros_like(threshold),
                      metadata=self.neuron_metadata(node))
        if isinstance(node, ir.LIF):
            return nir.LIF(tau=tau_mem, **common)
        tau_syn = time_constant(self.per_neuron(name, node.du), self.dt)
        return nir.CubaLIF(tau_mem=tau_mem, tau_syn=tau_syn, w_in=tau_syn / self.dt, **common)

    def readout(self, name: str, node: ir.Readout) -> dict[str, Any]:
        import nir

        if node.mode != "potential":
            raise self.refuse(name, node, "a first-spike readout has no NIR form")
        shape = self.shapes[name]
        if not node.dv:
            return {name: nir.Output(output_type=np.array(shape))}
        self.output_name = f"{name}:output"
        tau = time_constant(np.full(shape, float(node.dv)), self.dt)
        return {name: nir.LI(tau=tau, r=tau / self.dt, v_leak=np.zeros(shape)),
                self.output_name: nir.Output(output_type=np.array(shape))}


def _declare() -> Any:
    from snncc.backends import Target

    return Target(name="nir", summary="a NIR 1.x file (network.nir) through the nir package",
                  emit=emit, options={"convention": "spec", "dt": None})


TARGET = _declare()
