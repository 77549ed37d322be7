"""ONNX frontend: a float ANN exported to ONNX (opsets 8-21 tested) becomes an :class:`snncc.ir.Graph`.

The importer walks the ONNX nodes in order, tracking every tensor as either a *constant* (numpy
array: initializers, Constant nodes and anything computed from constants only, evaluated with
onnx's reference implementation; this includes ``Shape -> Gather -> Concat -> Reshape`` chains,
since the shape of a runtime tensor is known) or a *runtime tensor* (an IR node plus its shape
without the batch axis). One handler per ONNX op type, registered with :func:`onnx_op`, lowers a
node with runtime inputs to IR nodes named after the ONNX node (sanitised). Nodes that do not feed
the output are dropped. Then :func:`snncc.frontend.fuse.fuse_linear` fuses consecutive linear
operators (Conv→BatchNorm, Gemm→Mul/Add, MatMul+Add, Dense→Dense, the rate-norm ``1/θ``), so the
IR holds one synaptic layer per layer; ``graph.metadata["onnx_nodes"]`` maps every IR node to the
ONNX nodes it stands for and ``metadata["fusions"]`` lists the fusions.

Conventions:

* The batch is axis 0 of the model's single input, either symbolic or a fixed size (for example a
  dynamo export with batch 2). It must stay axis 0 everywhere: an op that moves, merges or
  varies along it is rejected (a constant with one equal row per fixed-batch sample is accepted).
  Every other input dimension must be a fixed size. A folded ``Shape`` reports a symbolic batch
  as ``SYMBOLIC_BATCH``.
* Constants combined with a runtime tensor (``Add``, ``Sub``, ``Mul``, ``Div``) must be scalars,
  per-channel (vary along IR axis 0 only: ``(C, 1, 1)`` for images, ``(F,)`` for vectors) or vary
  along the last axis only (channels-last data: emitted between two Transposes that fusion
  cancels); they become :class:`~snncc.ir.Affine` nodes and are fused into neighbours where exact.
* ``Softmax``/``LogSoftmax`` over the classes are dropped when they produce the model output (the
  argmax, hence the class decision, is unchanged); anywhere else they are an error.
* ``AveragePool`` becomes :class:`~snncc.ir.SumPool2d` with ``scale = 1/(kH*kW)``; with
  ``count_include_pad=0`` and nonzero padding the border windows would need other divisors, so
  that case is rejected, as is ``ceil_mode=1`` when it changes the output size. ``MaxPool`` with
  ``ceil_mode=1`` gets extra ``-inf`` padding at the bottom/right, which is exact.
  ``GlobalAveragePool`` and ``ReduceMean`` over H and W are one-window SumPool2d nodes.
* ``Pad`` (constant zero, H/W only) becomes a padding-only depthwise 1x1 Conv2d with weight 1,
  which fusion merges into the next Conv2d or SumPool2d (not into MaxPool2d: its padding is -inf).

Preprocessing ``(r * scale - mean) / std`` per channel is stored in the :class:`~snncc.ir.Input`
node. It comes from the ``preprocess`` argument, else from the sidecar JSON beside the model
(:func:`read_sidecar`), else it is the identity; ``preprocess`` keys override sidecar keys one by
one. Mean/std must have one value or one per input channel (channels-last inputs: one value).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from snncc import ir
from snncc.errors import SnnccError, UnsupportedError
from snncc.frontend.fuse import fuse_linear
from snncc.safety import (
    MAX_ONNX_BYTES,
    check_finite,
    check_size,
    read_bytes,
    read_text,
    regular_file,
)

#: Opsets whose operator semantics the handlers implement (tests cover 8, 11, 13, 17, 20, 21).
MIN_OPSET = 7
MAX_OPSET = 22
#: Ops that need dynamic control flow; always rejected.
CONTROL_FLOW = ("If", "Loop", "Scan")
#: Keys of a ``preprocess`` mapping.
PREPROCESS_KEYS = ("scale", "mean", "std")
#: Stand-in for a symbolic batch size inside folded shape computations (see ``_reshape``).
SYMBOLIC_BATCH = 1


@dataclass(frozen=True)
class Tensor:
    """A runtime tensor: produced by IR node ``node``, shape ``shape`` without the batch axis."""

    node: str
    shape: ir.Shape


Value = Tensor | np.ndarray
#: What a handler returns: IR node(s) applied to the ONNX node's runtime inputs (a list is a
#: chain), a constant, or an existing tensor (the op is the identity here).
Lowered = ir.Node | list[ir.Node] | np.ndarray | Tensor
Handler = Callable[["_Importer", onnx.NodeProto], Lowered]

_HANDLERS: dict[str, Handler] = {}


def onnx_op(*op_types: str) -> Callable[[Handler], Handler]:
    """Register a handler for the given ONNX op types (default domain)."""

    def register(handler: Handler) -> Handler:
        for op_type in op_types:
            if op_type in _HANDLERS:
                raise ValueError(f"ONNX op {op_type} registered twice")
            _HANDLERS[op_type] = handler
        return handler

    return register


def supported_ops() -> list[str]:
    """ONNX op types the frontend lowers (any op also works when all its inputs are constant)."""
    return sorted(_HANDLERS)


# ------------------------------------------------------------------------------------ public API


def read_sidecar(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON beside ``model_path`` with the same stem (``model.onnx`` -> ``model.json``).

    Returns ``None`` when there is none. Format (all keys optional): ``preprocess`` ``{scale, mean,
    std}``, ``input_shape`` (without batch), ``layout`` (``NCHW``/``NHWC``), ``dataset``,
    ``ann_test_accuracy``, ...
    """
    sidecar = Path(model_path).with_suffix(".json")
    if not sidecar.is_file():
        return None
    text = read_text(sidecar, "sidecar JSON")
    try:
        content = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise SnnccError(f"{sidecar}: unreadable sidecar JSON ({error})") from None
    if not isinstance(content, dict):
        raise SnnccError(f"{sidecar}: sidecar must be a JSON object, got {type(content).__name__}")
    if "preprocess" in content and not isinstance(content["preprocess"], dict):
        raise SnnccError(f"{sidecar}: 'preprocess' must be an object with scale, mean, std")
    return content


def load_onnx(path: str | os.PathLike[str], *,
              preprocess: dict[str, Any] | None = None) -> ir.Graph:
    """Import the ONNX model at ``path`` as a float ANN graph (see the module docstring).

    ``preprocess`` ``{scale, mean, std}`` (any subset) overrides the sidecar's values; with
    neither, preprocessing is the identity. Bad input raises :class:`SnnccError` (one line).
    """
    path = Path(path)
    raw = _read_bytes(path)
    model = _parse_model(path, raw)
    sidecar = read_sidecar(path)
    importer = _Importer(model, path.name)
    graph = importer.build(_resolve_preprocess(path, sidecar, preprocess), sidecar)
    graph.metadata.update(
        {
            "source": str(path.resolve()),
            "source_format": "onnx",
            "sha256": hashlib.sha256(raw).hexdigest(),
            "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p),
            "opset": importer.opset,
            "ir_version": int(model.ir_version),
        }
    )
    if sidecar:
        for key in ("dataset", "ann_test_accuracy"):
            if key in sidecar:
                graph.metadata[key] = sidecar[key]
    return graph


# ------------------------------------------------------------------------------ file and checks


def _read_bytes(path: Path) -> bytes:
    raw = read_bytes(path, "ONNX model", MAX_ONNX_BYTES)
    if not raw:
        raise SnnccError(f"{path}: empty file, not an ONNX model")
    return raw


def _parse_model(path: Path, raw: bytes) -> onnx.ModelProto:
    # Serializers write ModelProto field 1 (ir_version, a varint) first: byte 0x08. A file that
    # does not start so and does not parse is something else; one that does is damaged.
    looks_like_onnx = raw[0] == 0x08
    try:
        model = onnx.load_model_from_string(raw)
    except Exception as error:  # protobuf's DecodeError and friends
        if not looks_like_onnx:
            raise SnnccError(f"{path}: not an ONNX model file") from None
        raise SnnccError(f"{path}: truncated or corrupt ONNX file ({_first_line(error)})") from None
    if model.ir_version < 3 or not model.HasField("graph") or not model.graph.node:
        what = "truncated ONNX file (no graph)" if looks_like_onnx else "not an ONNX model file"
        raise SnnccError(f"{path}: {what}")
    _sort_nodes(model, path)
    for node in model.graph.node:
        if node.op_type in CONTROL_FLOW and node.domain in ("", "ai.onnx"):
            raise UnsupportedError(
                f"node {node.name or node.output[0]!r} (op {node.op_type}): dynamic control flow "
                f"(If/Loop/Scan) is not supported; export a static graph"
            )
    external = [t for t in model.graph.initializer
                if onnx.external_data_helper.uses_external_data(t)]
    for tensor in external:  # declared size and a regular file, before onnx reads it
        check_size(tensor.dims, f"{path}: initializer {tensor.name!r}")
        location = onnx.external_data_helper.ExternalDataInfo(tensor).location
        candidate = path.parent / location
        if location and (candidate.exists() or candidate.is_symlink()):
            regular_file(candidate, "external weight data")
    try:
        if external:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as error:  # OSError, ValueError, onnx's ValidationError
        raise SnnccError(f"{path}: cannot load external weight data ({_first_line(error)})") from None
    try:
        onnx.checker.check_model(model)
    except Exception as error:
        raise SnnccError(f"{path}: invalid or truncated ONNX model ({_first_line(error)})") from None
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as error:
        raise SnnccError(f"{path}: inconsistent ONNX model ({_first_line(error)})") from None
    return model


def _sort_nodes(model: onnx.ModelProto, path: Path) -> None:
    """Put the nodes in topological order when they are not (keras2onnx wrote such files and
    onnxruntime runs them); the order among independent nodes stays the file's."""
    nodes = list(model.graph.node)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    needs = [{producer[name] for name in node.input if name in producer} - {index}
             for index, node in enumerate(nodes)]
    if all(max(need, default=-1) < index for index, need in enumerate(needs)):
        return
    readers: dict[int, list[int]] = {index: [] for index in range(len(nodes))}
    for index, need in enumerate(needs):
        for source in need:
            readers[source].append(index)
    waiting = [len(need) for need in needs]
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for reader in readers[index]:
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) < len(nodes):
        stuck = next(nodes[i] for i in range(len(nodes)) if waiting[i])
        raise SnnccError(f"{path}: the ONNX nodes form a cycle (through node "
                         f"{stuck.name or stuck.output[0]!r}, op {stuck.op_type})")
    sorted_nodes = [nodes[index] for index in order]
    del model.graph.node[:]
    model.graph.node.extend(sorted_nodes)


def _check_constant(model: onnx.ModelProto, name: str, array: np.ndarray, what: str) -> None:
    """Constants must be finite; ``±inf`` is allowed only as a Clip bound (``max = inf``)."""
    if array.dtype.kind not in "fc" or np.all(np.isfinite(array)):
        return
    bound_only = not np.any(np.isnan(array)) and all(
        node.op_type == "Clip" and list(node.input).index(name) > 0
        for node in model.graph.node if name in node.input)
    if not bound_only:
        check_finite(array, f"{what} {name!r}")


def _ort_reason(error: BaseException) -> str:
    """onnxruntime's message without its error-code prefix and C++ source locations."""
    text = _first_line(error) if not str(error).startswith("[ONNXRuntimeError]") else \
        str(error).strip().splitlines()[0]
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    if "onnxruntime::" in text:
        tail = text.rsplit("onnxruntime::", 1)[1]
        text = tail.split(") ", 1)[1] if ") " in tail else text
    return text.strip()[:160]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("[ONNXRuntimeError]"):
            return line[:300]
    return text.splitlines()[0][:300]


def _resolve_preprocess(path: Path, sidecar: dict[str, Any] | None,
                        preprocess: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    merged: dict[str, Any] = {"scale": 1.0, "mean": 0.0, "std": 1.0}
    source = "identity"
    for origin, values in (("sidecar", (sidecar or {}).get("preprocess")),
                           ("argument", preprocess)):
        if not values:
            continue
        unknown = sorted(set(values) - set(PREPROCESS_KEYS))
        if unknown:
            where = f"{path.with_suffix('.json')}" if origin == "sidecar" else "preprocess"
            raise SnnccError(f"{where}: unknown preprocessing key(s) {unknown}; "
                             f"use {', '.join(PREPROCESS_KEYS)}")
        for key, value in values.items():
            if value is not None:
                merged[key] = value
        source = origin if source == "identity" else f"{source}+{origin}"
    try:
        merged["scale"] = float(merged["scale"])
        merged["mean"] = np.asarray(merged["mean"], dtype=np.float64).reshape(-1)
        merged["std"] = np.asarray(merged["std"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise SnnccError(f"preprocessing values must be numbers or lists of numbers ({error})") \
            from None
    if not (np.all(np.isfinite(merged["mean"])) and np.all(np.isfinite(merged["std"]))
            and math.isfinite(merged["scale"])):
        raise SnnccError("preprocessing scale/mean/std must be finite")
    return merged, source


# -------------------------------------------------------------------------------------- importer


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        values[attribute.name] = value
    return values


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")


class _Importer:
    """State of one import: ONNX tensor values, the IR graph under construction, naming."""

    def __init__(self, model: onnx.ModelProto, label: str) -> None:
        self.model = model
        self.label = label
        self.opset = next(
            (int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0
        )
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise UnsupportedError(
                f"{label}: ONNX opset {self.opset} is not supported (supported: "
                f"{MIN_OPSET}-{MAX_OPSET})"
            )
        self.graph = ir.Graph()
        self.values: dict[str, Value] = {}
        self.origins: dict[str, list[str]] = {}
        self.batch: int | None = None
        self.terminal: set[str] = set()

    # -- helpers for handlers ----------------------------------------------------------------------
    def where(self, node: onnx.NodeProto) -> str:
        return f"node {node.name or node.output[0]!r} (op {node.op_type})"

    def onnx_shape(self, tensor: Tensor) -> str:
        batch = "N" if self.batch is None else str(self.batch)
        return "(" + ", ".join([batch, *map(str, tensor.shape)]) + ")"

    def has_input(self, node: onnx.NodeProto, index: int) -> bool:
        return index < len(node.input) and bool(node.input[index])

    def value(self, node: onnx.NodeProto, index: int) -> Value:
        name = node.input[index]
        if name not in self.values:
            raise SnnccError(f"{self.where(node)} reads undefined tensor {name!r}")
        return self.values[name]

    def tensor(self, node: onnx.NodeProto, index: int = 0) -> Tensor:
        value = self.value(node, index)
        if not isinstance(value, Tensor):
            raise SnnccError(f"{self.where(node)}: input {index} is a constant, expected data")
        return value

    def constant(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        if not self.has_input(node, index):
            raise SnnccError(f"{self.where(node)}: missing {what} input")
        value = self.value(node, index)
        if isinstance(value, Tensor):
            raise UnsupportedError(
                f"{self.where(node)}: {what} {node.input[index]!r} is computed from the network "
                f"input; snncc needs constant weights and parameters (initializers or Constant nodes)"
            )
        return value

    def optional_constant(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
        return self.constant(node, index, what) if self.has_input(node, index) else None

    def per_channel(self, node: onnx.NodeProto, constant: np.ndarray, shape: ir.Shape
                    ) -> tuple[np.ndarray, int]:
        """A constant broadcast against a ``(batch, *shape)`` tensor as ``(values, axis)``.

        ``values`` has one entry (scalar) or one per index of IR axis ``axis``: the channel axis 0,
        or the last axis (channels-last data from tf2onnx/keras2onnx).
        """
        values = np.asarray(constant, dtype=np.float64)
        rank = len(shape) + 1
        description = f"constant of shape {tuple(values.shape)}"
        if values.ndim > rank:
            raise UnsupportedError(f"{self.where(node)}: {description} has more axes than the data")
        values = values.reshape((1,) * (rank - values.ndim) + values.shape)
        values = self.unbatched(node, values, description)
        for axis, (size, data_size) in enumerate(zip(values.shape, shape, strict=True)):
            if size not in (1, data_size):
                raise UnsupportedError(
                    f"{self.where(node)}: {description} does not broadcast to the data shape "
                    f"(axis {axis + 1}: {size} vs {data_size})"
                )
        if values.size == 1 or np.all(values == values.flat[0]):
            return values.reshape(-1)[:1], 0
        if all(size == 1 for size in values.shape[1:]):
            return values.reshape(-1), 0
        if all(size == 1 for size in values.shape[:-1]):
            return values.reshape(-1), len(shape) - 1
        raise UnsupportedError(
            f"{self.where(node)}: {description} varies along axes other than the channel axis of "
            f"data {(('N',) + tuple(shape))}; only scalar, per-channel or last-axis constants "
            f"are supported"
        )

    def unbatched(self, node: onnx.NodeProto, values: np.ndarray, description: str) -> np.ndarray:
        """Drop axis 0 (the batch) of a constant: size 1, or the fixed batch with equal rows."""
        if values.shape[0] != 1 and not (values.shape[0] == self.batch
                                         and np.all(values == values[:1])):
            raise UnsupportedError(f"{self.where(node)}: {description} varies along the batch axis")
        return values[0]

    # -- the walk ----------------------------------------------------------------------------------
    def build(self, preprocess: tuple[dict[str, Any], str], sidecar: dict[str, Any] | None) -> ir.Graph:
        onnx_graph = self.model.graph
        for initializer in onnx_graph.initializer:
            check_size(initializer.dims, f"initializer {initializer.name!r}")
            value = numpy_helper.to_array(initializer)
            _check_constant(self.model, initializer.name, value, "initializer")
            self.values[initializer.name] = value
        data_inputs = [i for i in onnx_graph.input if i.name not in self.values]
        if len(data_inputs) != 1:
            names = [i.name for i in data_inputs]
            raise UnsupportedError(
                f"{self.label}: the model has {len(names)} data inputs {names}; snncc needs exactly "
                f"one input and constant weights (initializers)"
            )
        if len(onnx_graph.output) != 1:
            names = [o.name for o in onnx_graph.output]
            raise UnsupportedError(f"{self.label}: the model has {len(names)} outputs {names}; "
                                   f"snncc needs exactly one")
        self._add_input(data_inputs[0], preprocess, sidecar)
        self._find_terminal()
        used = {name for node in onnx_graph.node for name in node.input if name}
        used.add(onnx_graph.output[0].name)
        for index, node in enumerate(onnx_graph.node):
            self._lower(node, index, used)
        output_name = onnx_graph.output[0].name
        output = self.values.get(output_name)
        if not isinstance(output, Tensor):
            raise UnsupportedError(f"{self.label}: the model output {output_name!r} does not depend "
                                   f"on the input")
        self._prune(output.node)
        fused = fuse_linear(self.graph, self.origins)
        self.graph.validate()
        self._check_output_shape(onnx_graph.output[0])
        self.graph.metadata.update(
            {
                "onnx_input": data_inputs[0].name,
                "onnx_output": output_name,
                "batch": self.batch,
                "onnx_nodes": {name: self.origins.get(name, []) for name in self.graph.nodes},
                "fusions": fused,
            }
        )
        return self.graph

    def _add_input(self, value_info: onnx.ValueInfoProto, preprocess: tuple[dict[str, Any], str],
                   sidecar: dict[str, Any] | None) -> None:
        dims = value_info.type.tensor_type.shape.dim
        name = value_info.name
        if not value_info.type.tensor_type.HasField("shape") or len(dims) < 2:
            raise UnsupportedError(f"input {name!r} needs a known shape with a batch axis first")
        sizes: list[int] = []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                sizes.append(int(dim.dim_value))
            elif axis == 0:
                sizes.append(0)
            else:
                label = dim.dim_param or "unknown"
                raise UnsupportedError(
                    f"input {name!r} has a symbolic dimension {label!r} at axis {axis}; snncc needs "
                    f"fixed sizes except for the batch axis"
                )
        self.batch = sizes[0] or None
        shape = tuple(sizes[1:])
        values, source = preprocess
        layout = self._layout(value_info.name, shape, sidecar)
        if sidecar and "input_shape" in sidecar:
            expected = tuple(int(s) for s in sidecar["input_shape"])
            if expected != shape:
                raise SnnccError(
                    f"sidecar input_shape {list(expected)} does not match the model input {name!r} "
                    f"of shape {list(shape)} (batch excluded)"
                )
        channel_axis = len(shape) - 1 if layout == "NHWC" else 0
        channels = shape[channel_axis]
        for key in ("mean", "std"):
            count = values[key].size
            if count == 1:
                continue
            if count != channels:
                raise SnnccError(
                    f"preprocessing {key} has {count} values but the model input {name!r} "
                    f"{('N',) + shape} has {channels} channel{'s' * (channels != 1)}"
                )
            if channel_axis != 0:
                raise UnsupportedError(
                    f"per-channel preprocessing {key} on the channels-last input {name!r} "
                    f"{('N',) + shape} is not supported; give a single value"
                )
        node_name = self._unique(_sanitize(name) or "input")
        self.graph.add(node_name, ir.Input(shape=shape, scale=values["scale"], mean=values["mean"],
                                           std=values["std"]))
        self.graph.metadata.update({"layout": layout, "preprocess_source": source})
        self.values[name] = Tensor(node_name, shape)

    def _layout(self, name: str, shape: ir.Shape, sidecar: dict[str, Any] | None) -> str:
        consumers = [n for n in self.model.graph.node if name in n.input]
        nhwc = len(shape) == 3 and bool(consumers) and all(
            n.op_type == "Transpose" and list(_attributes(n).get("perm", [])) == [0, 3, 1, 2]
            for n in consumers
        )
        detected = "NHWC" if nhwc else "NCHW"
        declared = (sidecar or {}).get("layout")
        if declared is not None and len(shape) == 3:
            if declared not in ("NCHW", "NHWC"):
                raise SnnccError(f"sidecar layout {declared!r} must be NCHW or NHWC")
            if nhwc and declared != "NHWC":
                raise SnnccError(
                    f"sidecar layout {declared} but the model transposes its input {name!r} from "
                    f"NHWC to NCHW"
                )
            return declared
        return detected

    def _find_terminal(self) -> None:
        """Tensors that reach the model output through Identity/Dropout/Softmax nodes only."""
        nodes = self.model.graph.node
        consumers: dict[str, int] = {}
        for node in nodes:
            for name in node.input:
                consumers[name] = consumers.get(name, 0) + 1
        producer = {out: node for node in nodes for out in node.output}
        current = self.model.graph.output[0].name
        while current not in self.terminal:
            self.terminal.add(current)
            node = producer.get(current)
            passthrough = ("Identity", "Dropout", "Softmax", "LogSoftmax")
            if node is None or node.op_type not in passthrough or not node.input:
                break
            source = node.input[0]
            if consumers.get(source, 0) != 1:
                break
            current = source

    def _unique(self, base: str) -> str:
        name = base
        counter = 1
        while name in self.graph.nodes:
            counter += 1
            name = f"{base}_{counter}"
        return name

    def _lower(self, node: onnx.NodeProto, index: int, used: set[str]) -> None:
        label = node.name or node.output[0]
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedError(
                f"node {label!r} (op {node.domain}.{node.op_type}) is not supported; supported "
                f"ops: {', '.join(supported_ops())}"
            )
        inputs = [self.value(node, i) if name else None for i, name in enumerate(node.input)]
        runtime = [v for v in inputs if isinstance(v, Tensor)]
        if not runtime and node.op_type != "Constant":
            for output, value in zip(node.output, self._fold(node), strict=False):
                if output:
                    self.values[output] = value
            return
        for extra in node.output[1:]:
            if extra and extra in used:
                raise UnsupportedError(
                    f"{self.where(node)}: its output {extra!r} is used; only the first output of "
                    f"an {node.op_type} is supported"
                )
        handler = _HANDLERS.get(node.op_type)
        if handler is None:
            raise UnsupportedError(
                f"node {label!r} (op {node.op_type}) is not supported; supported ops: "
                f"{', '.join(supported_ops())}"
            )
        lowered = handler(self, node)
        if isinstance(lowered, (Tensor, np.ndarray)):
            self.values[node.output[0]] = lowered
            return
        chain = lowered if isinstance(lowered, list) else [lowered]
        base = _sanitize(node.name) or f"{node.op_type.lower()}_{index}"
        sources = [v.node for v in runtime]
        shapes = [v.shape for v in runtime]
        for position, ir_node in enumerate(chain):
            name = self._unique(base if position == 0 else f"{base}_{type(ir_node).__name__.lower()}")
            try:
                shape = tuple(ir_node.output_shape(shapes))
            except SnnccError as error:
                raise SnnccError(f"{self.where(node)}: {error}") from None
            self.graph.add(name, ir_node, sources)
            self.origins[name] = [label]
            sources, shapes = [name], [shape]
        self.values[node.output[0]] = Tensor(sources[0], shapes[0])

    def _fold(self, node: onnx.NodeProto) -> list[np.ndarray]:
        """Evaluate a node whose inputs are all constant with onnx's reference implementation."""
        from onnx.reference import ReferenceEvaluator

        feeds = {name: self.values[name] for name in node.input if name}
        self._check_fold_size(node, feeds)
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in feeds],
            [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None)
             for n in node.output if n],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            results = ReferenceEvaluator(model).run(None, feeds)
        except Exception as error:
            raise SnnccError(
                f"{self.where(node)}: cannot evaluate on constant inputs ({_first_line(error)})"
            ) from None
        return [np.asarray(result) for result in results]

    def _check_fold_size(self, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> None:
        """Refuse a constant node whose outputs would pass the array limits, before computing
        them (``ConstantOfShape``/``Expand``/``Tile`` turn a few bytes into gigabytes).

        Shapes come from onnx's shape inference with the small inputs given as values (shape
        vectors, repeats, ranges) and the others by type and shape only; an output it cannot
        size is computed as before.
        """
        inputs, initializers = [], []
        for name, value in feeds.items():
            if value.size <= 4096:
                initializers.append(numpy_helper.from_array(value, name))
            else:
                inputs.append(helper.make_tensor_value_info(
                    name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
        outputs = [helper.make_value_info(name, onnx.TypeProto()) for name in node.output if name]
        model = helper.make_model(
            helper.make_graph([node], "size", inputs, outputs, initializers),
            opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            # without data propagation: it materialises large inputs' values as shape data
            # (a Concat of a 2M-value constant: std::bad_alloc); the values shape inference
            # needs are the small initializers, which it reads directly
            inferred = onnx.shape_inference.infer_shapes(model).graph.output
        except Exception:  # noqa: BLE001 - inference could not size it: evaluate as before
            return
        for output in inferred:
            tensor = output.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            if not tensor.HasField("shape") or None in dims:
                continue
            try:
                itemsize = helper.tensor_dtype_to_np_dtype(tensor.elem_type).itemsize
            except (KeyError, TypeError, ValueError):
                itemsize = 8
            check_size(dims, f"{self.where(node)} output {output.name!r}", itemsize)

    def _prune(self, output: str) -> None:
        """Drop IR nodes that do not feed the output (dead branches of the ONNX graph)."""
        keep = {output}
        for name in reversed(self.graph.topological_order()):
            if name in keep:
                keep.update(self.graph.inputs_of(name))
        for name in reversed(self.graph.topological_order()):
            if name not in keep:
                self.graph.remove(name)
                self.origins.pop(name, None)

    def _check_output_shape(self, value_info: onnx.ValueInfoProto) -> None:
        dims = value_info.type.tensor_type.shape.dim
        declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                    for d in dims][1:]
        actual = self.graph.infer_shapes()[self.graph.output_name]
        if declared and None not in declared and tuple(declared) != tuple(actual):
            raise SnnccError(
                f"{self.label}: imported output shape {actual} differs from the declared output "
                f"{value_info.name!r} shape {tuple(declared)} (batch excluded)"
            )


# -------------------------------------------------------------------------------------- handlers


def _int_list(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def _spatial(ctx: _Importer, node: onnx.NodeProto, x: Tensor, what: str) -> tuple[int, int]:
    if len(x.shape) != 3:
        raise UnsupportedError(
            f"{ctx.where(node)}: only 2-D {what} on 4-D (N, C, H, W) tensors is supported, got "
            f"input {ctx.onnx_shape(x)}"
        )
    return x.shape[1], x.shape[2]


def _window(ctx: _Importer, node: onnx.NodeProto, attrs: dict[str, Any], size: tuple[int, int],
            kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], list[int]]:
    """Strides, dilations and pads ``[top, left, bottom, right]`` of a 2-D window op."""
    strides = tuple(attrs.get("strides", [1, 1]))
    dilations = tuple(attrs.get("dilations", [1, 1]))
    if len(strides) != 2 or len(dilations) != 2 or len(kernel) != 2:
        raise UnsupportedError(f"{ctx.where(node)}: only 2-D windows are supported")
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for axis in range(2):
            out = -(-size[axis] // strides[axis])
            total = max(0, (out - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1
                        - size[axis])
            small, large = total // 2, total - total // 2
            begin, end = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
            pads[axis], pads[axis + 2] = begin, end
    else:
        raise UnsupportedError(f"{ctx.where(node)}: unknown auto_pad {auto_pad!r}")
    if len(pads) != 4 or min(pads) < 0:
        raise UnsupportedError(f"{ctx.where(node)}: pads {pads} are not 4 non-negative values")
    return (int(strides[0]), int(strides[1])), (int(dilations[0]), int(dilations[1])), \
        [int(p) for p in pads]


def _ceil_extra(size: int, kernel: int, stride: int, dilation: int, begin: int, end: int) -> int:
    """Extra end padding that turns the floor output size into ONNX's ``ceil_mode=1`` size."""
    span = size + begin + end - ((kernel - 1) * dilation + 1)
    floor_out = span // stride + 1
    ceil_out = -(-span // stride) + 1
    if ceil_out > floor_out and (ceil_out - 1) * stride >= size + begin:
        ceil_out -= 1  # the last window would start in the end padding: ONNX drops it
    return max(0, (ceil_out - 1) * stride - span)


@onnx_op("Conv")
def _conv(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    x = ctx.tensor(node, 0)
    size = _spatial(ctx, node, x, "convolution")
    weight = np.asarray(ctx.constant(node, 1, "weight"), dtype=np.float64)
    if weight.ndim != 4:
        raise UnsupportedError(f"{ctx.where(node)}: only 2-D convolutions (4-D weights) are "
                               f"supported, weight has shape {weight.shape}")
    bias = ctx.optional_constant(node, 2, "bias")
    attrs = _attributes(node)
    strides, dilations, pads = _window(ctx, node, attrs, size, weight.shape[2:])
    return ir.Conv2d(weight=weight,
                     bias=None if bias is None else np.asarray(bias, dtype=np.float64),
                     stride=strides, padding=tuple(pads), dilation=dilations,
                     groups=int(attrs.get("group", 1)))


@onnx_op("Gemm")
def _gemm(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """``Y = alpha * A' @ B' + beta * C`` with the data ``A`` (N, K) and constant ``B``, ``C``."""
    attrs = _attributes(node)
    x = ctx.tensor(node, 0)
    if len(x.shape) != 1:
        raise UnsupportedError(f"{ctx.where(node)}: expects (N, K) data, got {ctx.onnx_shape(x)}")
    if attrs.get("transA", 0):
        raise UnsupportedError(f"{ctx.where(node)}: transA=1 would transpose the batch axis")
    matrix = np.asarray(ctx.constant(node, 1, "weight B"), dtype=np.float64)
    if matrix.ndim != 2:
        raise UnsupportedError(f"{ctx.where(node)}: weight B must be 2-D, got {matrix.shape}")
    weight = float(attrs.get("alpha", 1.0)) * (matrix if attrs.get("transB", 0) else matrix.T)
    bias = ctx.optional_constant(node, 2, "bias C")
    if bias is not None:
        bias = float(attrs.get("beta", 1.0)) * np.asarray(bias, dtype=np.float64)
        if bias.ndim == 2:
            bias = ctx.unbatched(node, bias, f"bias C of shape {bias.shape}")
        bias = np.broadcast_to(bias.reshape(-1), (weight.shape[0],)).copy() \
            if bias.size in (1, weight.shape[0]) else bias.reshape(-1)
    return ir.Dense(weight=weight, bias=bias)


@onnx_op("MatMul")
def _matmul(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """``Y = A @ B`` with data ``A`` (N, K) and a constant ``B`` (K, M): a Dense without bias."""
    if not isinstance(ctx.value(node, 0), Tensor):
        raise UnsupportedError(
            f"{ctx.where(node)}: the data must be the left operand; the right operand "
            f"{node.input[1]!r} is computed from the network input (non-constant weights)"
        )
    x = ctx.tensor(node, 0)
    matrix = np.asarray(ctx.constant(node, 1, "weight"), dtype=np.float64)
    if len(x.shape) != 1 or matrix.ndim != 2:
        raise UnsupportedError(
            f"{ctx.where(node)}: only (N, K) @ (K, M) is supported, got {ctx.onnx_shape(x)} @ "
            f"{matrix.shape}"
        )
    return ir.Dense(weight=matrix.T.copy(), bias=None)


@onnx_op("Add", "Sub", "Mul", "Div")
def _arithmetic(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Binary arithmetic: with a constant operand an Affine; Add of two tensors an ``ir.Add``."""
    left, right = ctx.value(node, 0), ctx.value(node, 1)
    if isinstance(left, Tensor) and isinstance(right, Tensor):
        if node.op_type != "Add":
            raise UnsupportedError(f"{ctx.where(node)}: {node.op_type} of two data tensors is "
                                   f"not supported (only Add, for residual connections)")
        if left.shape != right.shape:
            raise UnsupportedError(f"{ctx.where(node)}: residual Add of different shapes "
                                   f"{ctx.onnx_shape(left)} and {ctx.onnx_shape(right)}")
        return ir.Add()
    data_first = isinstance(left, Tensor)
    x = left if data_first else right
    assert isinstance(x, Tensor)
    values, axis = ctx.per_channel(node, right if data_first else left, x.shape)
    ones, zeros = np.ones(1), np.zeros(1)
    if node.op_type == "Add":
        affine = ir.Affine(scale=ones, bias=values)
    elif node.op_type == "Sub":
        affine = ir.Affine(scale=ones, bias=-values) if data_first else \
            ir.Affine(scale=-ones, bias=values)
    elif node.op_type == "Mul":
        affine = ir.Affine(scale=values, bias=zeros)
    elif not data_first:
        raise UnsupportedError(f"{ctx.where(node)}: division by a data tensor is not supported")
    elif np.any(values == 0):
        raise SnnccError(f"{ctx.where(node)}: division by zero")
    else:
        affine = ir.Affine(scale=1.0 / values, bias=zeros)
    if axis == 0:
        return affine
    # Affine acts on axis 0: move the last axis there and back (fusion cancels the transposes
    # against the ones a channels-last exporter put around its convolutions).
    rank = len(x.shape)
    to_front = (rank - 1,) + tuple(range(rank - 1))
    return [ir.Transpose(perm=to_front), affine,
            ir.Transpose(perm=tuple(range(1, rank)) + (0,))]


@onnx_op("Relu")
def _relu(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    return ir.ReLU()


def _scalar(ctx: _Importer, node: onnx.NodeProto, index: int, what: str) -> float | None:
    if not ctx.has_input(node, index):
        return None
    value = np.asarray(ctx.constant(node, index, what))
    if value.size != 1:
        raise UnsupportedError(f"{ctx.where(node)}: {what} must be a scalar, got shape {value.shape}")
    return float(value.reshape(()))


@onnx_op("Clip")
def _clip(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """``clip(x, min, max)``; ``Clip(x/θ, 0, 1)`` (rate-norm) keeps ``1/θ`` as a fusable Affine."""
    if ctx.opset < 11:
        attrs = _attributes(node)
        low, high = attrs.get("min"), attrs.get("max")
    else:
        low, high = _scalar(ctx, node, 1, "min"), _scalar(ctx, node, 2, "max")
    low = -math.inf if low is None or low <= -3.4e38 else float(low)
    high = math.inf if high is None or high >= 3.4e38 else float(high)
    x = ctx.tensor(node, 0)
    if low == -math.inf and high == math.inf:
        return x
    if low == 0.0 and high == math.inf:
        return ir.ReLU()
    if low > high:
        raise SnnccError(f"{ctx.where(node)}: min {low} exceeds max {high}")
    return ir.Clip(low=low, high=high)


@onnx_op("BatchNormalization")
def _batch_norm(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Inference BatchNorm ``s (x - m) / sqrt(v + eps) + b`` as a per-channel Affine."""
    attrs = _attributes(node)
    if attrs.get("training_mode", 0):
        raise UnsupportedError(f"{ctx.where(node)}: training_mode=1 is not an inference graph")
    if not attrs.get("spatial", 1):
        raise UnsupportedError(f"{ctx.where(node)}: spatial=0 (per-activation BatchNorm) is not "
                               f"supported")
    x = ctx.tensor(node, 0)
    scale, bias, mean, variance = (
        np.asarray(ctx.constant(node, i, what), dtype=np.float64).reshape(-1)
        for i, what in enumerate(("scale", "B", "mean", "var"), start=1)
    )
    channels = x.shape[0]
    if not all(a.size == channels for a in (scale, bias, mean, variance)):
        raise SnnccError(f"{ctx.where(node)}: parameters do not have {channels} values")
    factor = scale / np.sqrt(variance + float(attrs.get("epsilon", 1e-5)))
    return ir.Affine(scale=factor, bias=bias - mean * factor)


def _pool_geometry(ctx: _Importer, node: onnx.NodeProto, x: Tensor
                   ) -> tuple[tuple[int, int], tuple[int, int], list[int], list[int] | None]:
    """Kernel, strides, pads and (with ``ceil_mode=1`` changing the size) the enlarged pads."""
    size = _spatial(ctx, node, x, "pooling")
    attrs = _attributes(node)
    kernel = tuple(int(k) for k in attrs.get("kernel_shape", []))
    if len(kernel) != 2:
        raise UnsupportedError(f"{ctx.where(node)}: needs a 2-D kernel_shape, got {kernel}")
    strides, dilations, pads = _window(ctx, node, attrs, size, kernel)
    if dilations != (1, 1):
        raise UnsupportedError(f"{ctx.where(node)}: dilated pooling is not supported")
    if any(pads[a] >= kernel[a] or pads[a + 2] >= kernel[a] for a in range(2)):
        # a window could hold padding only (a max of -inf); onnxruntime refuses these too
        raise UnsupportedError(f"{ctx.where(node)}: pads {pads} must be smaller than the "
                               f"kernel {list(kernel)}")
    extra = [0, 0]
    if attrs.get("ceil_mode", 0):
        extra = [_ceil_extra(size[a], kernel[a], strides[a], 1, pads[a], pads[a + 2])
                 for a in range(2)]
    if not any(extra):
        return kernel, strides, pads, None
    return kernel, strides, pads, [pads[0], pads[1], pads[2] + extra[0], pads[3] + extra[1]]


@onnx_op("AveragePool")
def _average_pool(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Mean over each window: a SumPool2d scaled by ``1/(kH*kW)`` (zero padding counted)."""
    x = ctx.tensor(node, 0)
    kernel, strides, pads, ceil_pads = _pool_geometry(ctx, node, x)
    if ceil_pads:
        raise UnsupportedError(f"{ctx.where(node)}: ceil_mode=1 adds partial windows whose "
                               f"divisor differs; not exactly expressible")
    if any(pads) and not _attributes(node).get("count_include_pad", 0):
        raise UnsupportedError(
            f"{ctx.where(node)}: count_include_pad=0 with padding {pads} divides border windows by "
            f"fewer elements; not exactly expressible (export with count_include_pad=1 or no padding)"
        )
    return ir.SumPool2d(kernel=kernel, stride=strides, padding=tuple(pads),
                        scale=1.0 / (kernel[0] * kernel[1]))


@onnx_op("MaxPool")
def _max_pool(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    x = ctx.tensor(node, 0)
    kernel, strides, pads, ceil_pads = _pool_geometry(ctx, node, x)
    return ir.MaxPool2d(kernel=kernel, stride=strides, padding=tuple(ceil_pads or pads))


@onnx_op("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """One window over the whole map, output ``(C, 1, 1)``."""
    x = ctx.tensor(node, 0)
    height, width = _spatial(ctx, node, x, "pooling")
    if node.op_type == "GlobalMaxPool":
        return ir.MaxPool2d(kernel=(height, width), stride=(height, width))
    return ir.SumPool2d(kernel=(height, width), stride=(height, width),
                        scale=1.0 / (height * width))


def _reshaped(ctx: _Importer, x: Tensor, shape: tuple[int, ...]) -> Lowered:
    if shape == x.shape:
        return x
    if len(shape) == 1:
        return ir.Flatten()
    return ir.Reshape(shape=shape)


@onnx_op("Flatten")
def _flatten(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    x = ctx.tensor(node, 0)
    rank = len(x.shape) + 1
    axis = int(_attributes(node).get("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if axis == 0 or math.prod(x.shape[:axis - 1]) != 1:
        raise UnsupportedError(f"{ctx.where(node)}: axis={axis} of {ctx.onnx_shape(x)} flattens "
                               f"into the batch axis")
    return _reshaped(ctx, x, (math.prod(x.shape),))


@onnx_op("Reshape")
def _reshape(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Row-major reshape; ``0`` copies the input size, ``-1`` is inferred, the batch stays axis 0.

    A folded ``Shape`` of a dynamic-batch tensor reports the batch as ``SYMBOLIC_BATCH`` (1), so a
    target's leading entry may be 0, -1 or the batch size; everything else must keep the
    per-sample size.
    """
    x = ctx.tensor(node, 0)
    target = _int_list(ctx.constant(node, 1, "shape"))
    allow_zero = int(_attributes(node).get("allowzero", 0))
    full = (ctx.batch or SYMBOLIC_BATCH,) + x.shape
    if not target:
        raise UnsupportedError(f"{ctx.where(node)}: reshape to a scalar drops the batch axis")
    if allow_zero and 0 in target:
        raise UnsupportedError(f"{ctx.where(node)}: allowzero=1 with a 0 in {target} makes an "
                               f"empty tensor")
    resolved = [full[i] if size == 0 and i < len(full) else size for i, size in enumerate(target)]
    lead, rest = resolved[0], resolved[1:]
    per_sample = math.prod(x.shape)
    message = f"{ctx.where(node)}: reshape of {ctx.onnx_shape(x)} to {target} mixes the batch axis"
    if lead == -1:
        if -1 in rest or math.prod(rest) != per_sample:
            raise UnsupportedError(message)
    elif lead != full[0]:
        raise UnsupportedError(message)
    elif rest.count(-1) == 1:
        known = math.prod(s for s in rest if s != -1)
        if known == 0 or per_sample % known:
            raise SnnccError(f"{ctx.where(node)}: cannot reshape {ctx.onnx_shape(x)} to {target}")
        rest = [per_sample // known if s == -1 else s for s in rest]
    if rest.count(-1) or math.prod(rest) != per_sample:
        raise SnnccError(f"{ctx.where(node)}: cannot reshape {ctx.onnx_shape(x)} to {target}")
    return _reshaped(ctx, x, tuple(rest))


@onnx_op("Transpose")
def _transpose(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    x = ctx.tensor(node, 0)
    rank = len(x.shape) + 1
    perm = list(_attributes(node).get("perm", list(range(rank))[::-1]))
    if sorted(perm) != list(range(rank)):
        raise SnnccError(f"{ctx.where(node)}: perm {perm} does not fit {ctx.onnx_shape(x)}")
    if perm[0] != 0:
        raise UnsupportedError(f"{ctx.where(node)}: perm {perm} moves the batch axis")
    inner = tuple(p - 1 for p in perm[1:])
    if inner == tuple(range(rank - 1)):
        return x
    return ir.Transpose(perm=inner)


def _axes(ctx: _Importer, node: onnx.NodeProto, rank: int) -> list[int] | None:
    if ctx.opset >= 13:
        values = ctx.optional_constant(node, 1, "axes")
        axes = None if values is None else _int_list(values)
    else:
        attribute = _attributes(node).get("axes")
        axes = None if attribute is None else [int(a) for a in attribute]
    if axes is None:
        return None
    normalized = sorted(a + rank if a < 0 else a for a in axes)
    if any(a < 0 or a >= rank for a in normalized) or len(set(normalized)) != len(normalized):
        raise SnnccError(f"{ctx.where(node)}: axes {axes} are invalid for rank {rank}")
    if 0 in normalized:
        raise UnsupportedError(f"{ctx.where(node)}: axes {axes} include the batch axis")
    return normalized


@onnx_op("Squeeze")
def _squeeze(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    x = ctx.tensor(node, 0)
    axes = _axes(ctx, node, len(x.shape) + 1)
    if axes is None:
        axes = [i + 1 for i, size in enumerate(x.shape) if size == 1]
    for axis in axes:
        if x.shape[axis - 1] != 1:
            raise SnnccError(f"{ctx.where(node)}: cannot squeeze axis {axis} of size "
                             f"{x.shape[axis - 1]}")
    shape = tuple(size for i, size in enumerate(x.shape) if i + 1 not in axes)
    if not shape:
        raise UnsupportedError(f"{ctx.where(node)}: squeezing to one value per sample")
    return _reshaped(ctx, x, shape)


@onnx_op("Unsqueeze")
def _unsqueeze(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    x = ctx.tensor(node, 0)
    axes_count = len(ctx.constant(node, 1, "axes").reshape(-1)) if ctx.opset >= 13 \
        else len(_attributes(node).get("axes", []))
    axes = _axes(ctx, node, len(x.shape) + 1 + axes_count) or []
    shape = list(x.shape)
    for axis in axes:
        shape.insert(axis - 1, 1)
    return _reshaped(ctx, x, tuple(shape))


@onnx_op("Identity")
def _identity(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    return ctx.tensor(node, 0)


@onnx_op("Dropout")
def _dropout(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Inference dropout is the identity (``training_mode`` must not be true)."""
    training = _scalar(ctx, node, 2, "training_mode") if ctx.opset >= 12 else None
    if training:
        raise UnsupportedError(f"{ctx.where(node)}: training_mode=true is not an inference graph")
    return ctx.tensor(node, 0)


@onnx_op("Cast")
def _cast(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Casts between float types are the identity here (the IR computes in float64)."""
    to = int(_attributes(node).get("to", 0))
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
              onnx.TensorProto.BFLOAT16)
    if to not in floats:
        raise UnsupportedError(f"{ctx.where(node)}: cast of data to "
                               f"{onnx.TensorProto.DataType.Name(to)} is not supported")
    return ctx.tensor(node, 0)


@onnx_op("Constant")
def _constant(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    attrs = {a.name: a for a in node.attribute}
    if "value" in attrs:
        check_size(attrs["value"].t.dims, ctx.where(node))
        value = numpy_helper.to_array(attrs["value"].t)
        _check_constant(ctx.model, node.output[0], value, f"{ctx.where(node)} constant")
        return value
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(helper.get_attribute_value(attrs[key]), dtype=dtype)
    raise UnsupportedError(f"{ctx.where(node)}: constant kind {sorted(attrs)} is not supported")


@onnx_op("Shape")
def _shape(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """The shape of a data tensor is a constant (batch: its fixed size or ``SYMBOLIC_BATCH``)."""
    x = ctx.tensor(node, 0)
    full = np.array((ctx.batch or SYMBOLIC_BATCH,) + x.shape, dtype=np.int64)
    attrs = _attributes(node)
    start, end = int(attrs.get("start", 0)), attrs.get("end")
    return full[start:None if end is None else int(end)]


@onnx_op("Softmax", "LogSoftmax")
def _softmax(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Dropped at the model output (monotonic per sample: the argmax is unchanged)."""
    x = ctx.tensor(node, 0)
    if node.output[0] not in ctx.terminal:
        raise UnsupportedError(f"{ctx.where(node)}: {node.op_type} is only supported at the model "
                               f"output (where it is dropped)")
    axis = int(_attributes(node).get("axis", 1 if ctx.opset < 13 else -1))
    if len(x.shape) != 1 or axis not in (1, -1):
        raise UnsupportedError(f"{ctx.where(node)}: {node.op_type} over axis {axis} of "
                               f"{ctx.onnx_shape(x)}; only over the classes of (N, K) logits")
    return x


@onnx_op("Sum")
def _sum(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Variadic sum of data tensors (residual joins)."""
    values = [ctx.value(node, i) for i in range(len(node.input))]
    if not all(isinstance(v, Tensor) for v in values):
        raise UnsupportedError(f"{ctx.where(node)}: Sum with constant operands is not supported")
    if len(values) == 1:
        return values[0]
    if len({v.shape for v in values}) != 1:  # type: ignore[union-attr]
        raise UnsupportedError(f"{ctx.where(node)}: Sum of tensors of different shapes")
    return ir.Add()


def zero_padding(channels: int, padding: tuple[int, int, int, int]) -> ir.Conv2d:
    """Exact zero padding as a depthwise 1x1 convolution with weight 1 (fused into the next
    convolution or sum pooling when possible)."""
    return ir.Conv2d(weight=np.ones((channels, 1, 1, 1)), bias=None, padding=padding,
                     groups=channels)


@onnx_op("Pad")
def _pad(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Constant zero padding of H and W (Keras ZeroPadding2D, TF explicit SAME padding)."""
    x = ctx.tensor(node, 0)
    attrs = _attributes(node)
    mode = attrs.get("mode", "constant")
    if ctx.opset < 11:
        pads, value = [int(p) for p in attrs.get("pads", [])], float(attrs.get("value", 0.0))
    else:
        pads = _int_list(ctx.constant(node, 1, "pads"))
        value = _scalar(ctx, node, 2, "constant_value") or 0.0
        if ctx.has_input(node, 3):
            axes = _int_list(ctx.constant(node, 3, "axes"))
            rank = len(x.shape) + 1
            full = [0] * (2 * rank)
            for position, axis in enumerate(axes):
                axis = axis + rank if axis < 0 else axis
                full[axis], full[axis + rank] = pads[position], pads[position + len(axes)]
            pads = full
    if mode != "constant" or value != 0.0:
        raise UnsupportedError(f"{ctx.where(node)}: only constant zero padding is supported "
                               f"(mode {mode!r}, value {value})")
    _spatial(ctx, node, x, "padding")
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
        raise UnsupportedError(f"{ctx.where(node)}: pads {pads} must be non-negative and pad only "
                               f"H and W of (N, C, H, W) data")
    if not any(pads):
        return x
    return zero_padding(x.shape[0], (pads[2], pads[3], pads[6], pads[7]))


@onnx_op("ReduceMean")
def _reduce_mean(ctx: _Importer, node: onnx.NodeProto) -> Lowered:
    """Mean over the spatial axes (a global average pool): (2, 3) of NCHW or (1, 2) of NHWC."""
    x = ctx.tensor(node, 0)
    attrs = _attributes(node)
    rank = len(x.shape) + 1
    if ctx.opset >= 18:
        values = ctx.optional_constant(node, 1, "axes")
        axes = None if values is None else _int_list(values)
    else:
        axes = attrs.get("axes")
    normalized = sorted({a + rank if a < 0 else a for a in (axes or [])})
    keep = int(attrs.get("keepdims", 1))
    if len(x.shape) != 3 or normalized not in ([2, 3], [1, 2]):
        raise UnsupportedError(f"{ctx.where(node)}: only a mean over the two spatial axes of 4-D "
                               f"data is supported, got axes {axes} of {ctx.onnx_shape(x)}")
    chain: list[ir.Node] = []
    if normalized == [1, 2]:  # channels-last: (H, W, C) -> (C, H, W)
        chain.append(ir.Transpose(perm=(2, 0, 1)))
        height, width = x.shape[0], x.shape[1]
    else:
        height, width = x.shape[1], x.shape[2]
    chain.append(ir.SumPool2d(kernel=(height, width), stride=(height, width),
                              scale=1.0 / (height * width)))
    if not keep:
        chain.append(ir.Flatten())
    elif normalized == [1, 2]:
        chain.append(ir.Transpose(perm=(1, 2, 0)))
    return chain
