"""Exact fusion of consecutive linear operators in a freshly imported float ANN graph.

Frontends emit one IR node per source operator; this module merges the ones that compose into a
single synaptic layer with no activation in between. Every rule is exact in real arithmetic (float
results differ only by rounding); rules that would not be exact are not applied. Rules, applied
until none matches (one call reaches the fixed point):

* **identity**: an :class:`~snncc.ir.Affine` with scale 1 and bias 0, a Flatten/Reshape that does
  not change the shape and a Transpose with the identity permutation are removed.
* **affine into producer**: ``Affine(Dense|Conv2d|Affine)`` → one node (``W' = s·W``,
  ``b' = s·b + t`` per output channel), when the producer feeds nothing else (Conv→BN,
  Gemm→Mul/Add, the ``1/θ`` of a rate-norm ``Clip(x/θ, 0, 1)``).
* **dense into dense**: ``Dense2(Dense1(x))`` → ``W = W2·W1``, ``b = W2·b1 + b2``.
* **affine into the input**: an Affine right after the :class:`~snncc.ir.Input` (or after layout
  nodes only, for a scalar Affine) becomes part of the preprocessing:
  ``s·(r·scale − m)/d + t = (r·scale − (m − t·d/s)) / (d/s)``; needs ``s ≠ 0``.
* **affine into consumer**: ``Dense(Affine(x))`` → ``W' = W·diag(s)``, ``b' = b + W·t`` (also
  through a Flatten, expanding per-channel ``s, t`` to per-element);
  ``Conv2d(Affine(x))`` likewise per input channel, but only when the convolution has no padding
  or ``t = 0``: a zero-padded border would see ``t`` where the original saw 0, so BatchNorm before
  a zero-padded convolution stays an Affine.
* **transpose into dense**: ``Dense(Flatten(Transpose(x)))`` → the Dense's columns permuted, so the
  Flatten reads ``x`` directly (channels-last exports flatten NHWC).
* **reshape before flatten**: ``Flatten(Reshape(x))`` → ``Flatten(x)`` (both row-major).
* **transpose of transpose**: composed into one permutation; a ReLU/Clip between two Transposes
  moves before the first (elementwise ops commute with permutations), so they can compose.
* **zero padding**: a padding-only depthwise convolution (1x1, weight 1, no bias; what frontends
  emit for an explicit ``Pad``) feeding a Conv2d or SumPool2d adds its padding to theirs (both pad
  with zeros, and SumPool2d's scale counts padded elements).

Every rule needs the intermediate node to feed nothing else.
"""

from __future__ import annotations

import numpy as np

from snncc import affine as affine_algebra
from snncc import ir


def fuse_linear(graph: ir.Graph, origins: dict[str, list[str]] | None = None) -> list[str]:
    """Apply the module's rules in place until none matches; return one line per applied rule.

    ``origins`` (optional) maps IR node names to the source operators they stand for; merged nodes
    pool their origins under the surviving name.
    """
    origins = origins if origins is not None else {}
    applied: list[str] = []
    while True:
        shapes = graph.infer_shapes()
        for name in graph.topological_order():
            message = _fuse_at(graph, name, shapes, origins)
            if message:
                applied.append(message)
                break
        else:
            return applied


def _only_consumer(graph: ir.Graph, name: str) -> str | None:
    consumers = graph.consumers(name)
    return consumers[0] if len(consumers) == 1 else None


def _merge_origins(origins: dict[str, list[str]], keep: str, gone: str) -> None:
    merged = origins.get(keep, [keep]) + origins.get(gone, [gone])
    origins[keep] = sorted(set(merged), key=merged.index)
    origins.pop(gone, None)


def _remove_into(graph: ir.Graph, origins: dict[str, list[str]], keep: str, gone: str) -> None:
    """Bypass the single-input node ``gone``; its origins move to ``keep``."""
    graph.bypass(gone)
    _merge_origins(origins, keep, gone)


def _fuse_at(graph: ir.Graph, name: str, shapes: dict[str, ir.Shape],
             origins: dict[str, list[str]]) -> str | None:
    node = graph.nodes[name]
    sources = graph.inputs_of(name)
    source = sources[0] if len(sources) == 1 else None
    producer = graph.nodes[source] if source is not None else None
    single = source is not None and _only_consumer(graph, source) == name

    if isinstance(node, ir.Affine):
        if np.all(node.scale == 1) and not np.any(node.bias):
            graph.bypass(name)
            if source is not None:
                _merge_origins(origins, source, name)
            return f"removed identity affine {name!r}"
        if single and isinstance(producer, (ir.Dense, ir.Conv2d, ir.Affine)):
            graph.replace(source, _affine_after(producer, node, shapes[source]))
            _remove_into(graph, origins, source, name)
            return f"fused affine {name!r} into {source!r}"
        target = _input_for_affine(graph, name, node)
        if target is not None:
            graph.replace(target, _affine_into_input(graph.nodes[target], node))
            _remove_into(graph, origins, target, name)
            return f"fused affine {name!r} into input preprocessing"
        consumer = _only_consumer(graph, name)
        if consumer is not None:
            return _affine_before(graph, name, node, consumer, shapes, origins)
        return None

    if isinstance(node, (ir.Conv2d, ir.SumPool2d)) and single and is_zero_padding(producer):
        padding = tuple(a + b for a, b in zip(node.padding, producer.padding, strict=True))
        graph.replace(name, _with_padding(node, padding))
        graph.set_inputs(name, graph.inputs_of(source))
        graph.remove(source)
        _merge_origins(origins, name, source)
        return f"moved zero padding {source!r} into {name!r}"

    if isinstance(node, (ir.ReLU, ir.Clip)) and single and isinstance(producer, ir.Transpose):
        consumer = _only_consumer(graph, name)
        if consumer is not None and isinstance(graph.nodes[consumer], ir.Transpose):
            graph.set_inputs(name, graph.inputs_of(source))
            graph.set_inputs(source, [name])
            graph.set_inputs(consumer, [source])
            return f"moved {name!r} before transpose {source!r}"

    if isinstance(node, ir.Dense) and single and isinstance(producer, ir.Dense):
        bias_first = producer.bias if producer.bias is not None else np.zeros(producer.weight.shape[0])
        bias = node.weight @ bias_first + (node.bias if node.bias is not None else 0.0)
        if producer.bias is None and node.bias is None:
            bias = None
        graph.replace(name, ir.Dense(weight=node.weight @ producer.weight, bias=bias))
        graph.set_inputs(name, graph.inputs_of(source))
        graph.remove(source)
        _merge_origins(origins, name, source)
        return f"fused dense {source!r} into {name!r}"

    if isinstance(node, (ir.Flatten, ir.Reshape)) and source is not None:
        if shapes[name] == shapes[source]:
            graph.bypass(name)
            _merge_origins(origins, source, name)
            return f"removed no-op reshape {name!r}"
        if isinstance(node, ir.Flatten) and single and isinstance(producer, (ir.Reshape, ir.Flatten)):
            graph.set_inputs(name, graph.inputs_of(source))
            graph.remove(source)
            _merge_origins(origins, name, source)
            return f"dropped reshape {source!r} before flatten {name!r}"

    if isinstance(node, ir.Transpose) and source is not None:
        if node.perm == tuple(range(len(node.perm))):
            graph.bypass(name)
            _merge_origins(origins, source, name)
            return f"removed identity transpose {name!r}"
        if single and isinstance(producer, ir.Transpose):
            perm = tuple(producer.perm[p] for p in node.perm)
            graph.replace(name, ir.Transpose(perm=perm))
            graph.set_inputs(name, graph.inputs_of(source))
            graph.remove(source)
            _merge_origins(origins, name, source)
            return f"composed transposes {source!r} and {name!r}"
        flatten = _only_consumer(graph, name)
        dense = _only_consumer(graph, flatten) if flatten is not None else None
        if (flatten is not None and dense is not None
                and isinstance(graph.nodes[flatten], ir.Flatten)
                and isinstance(graph.nodes[dense], ir.Dense)):
            layer: ir.Dense = graph.nodes[dense]  # type: ignore[assignment]
            original = shapes[source]
            order = np.arange(int(np.prod(original))).reshape(original).transpose(node.perm)
            weight = np.zeros_like(layer.weight)
            weight[:, order.reshape(-1)] = layer.weight
            graph.replace(dense, ir.Dense(weight=weight, bias=layer.bias))
            graph.bypass(name)
            _merge_origins(origins, dense, name)
            return f"folded transpose {name!r} into the columns of {dense!r}"
    return None


def _per_output(values: np.ndarray, count: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64).reshape(-1), (count,)).copy() \
        if np.asarray(values).size == 1 else np.asarray(values, dtype=np.float64).reshape(-1)


def _affine_after(producer: ir.Node, affine_node: ir.Affine, shape: ir.Shape) -> ir.Node:
    """``affine_node(producer(x))`` as one node of the producer's kind."""
    if isinstance(producer, ir.Affine):
        return ir.Affine(scale=affine_node.scale * producer.scale,
                         bias=affine_node.scale * producer.bias + affine_node.bias)
    assert isinstance(producer, (ir.Dense, ir.Conv2d))
    weight, bias = affine_algebra.after(producer, affine_node.scale, affine_node.bias)
    if isinstance(producer, ir.Dense):
        return ir.Dense(weight=weight, bias=bias)
    return ir.Conv2d(weight=weight, bias=bias, stride=producer.stride, padding=producer.padding,
                     dilation=producer.dilation, groups=producer.groups)


def _input_for_affine(graph: ir.Graph, name: str, affine: ir.Affine) -> str | None:
    """The Input node that ``affine`` can be folded into, or ``None``."""
    if np.any(affine.scale == 0):
        return None
    scalar = affine.scale.size == 1 and affine.bias.size == 1
    current = name
    while True:
        (source,) = graph.inputs_of(current)
        if _only_consumer(graph, source) != current:
            return None
        node = graph.nodes[source]
        if isinstance(node, ir.Input):
            if node.coding != "direct":
                return None
            channels = node.shape[0]
            sizes = {affine.scale.size, affine.bias.size, node.mean.size, node.std.size}
            if current == name and sizes <= {1, channels}:
                return source
            return source if scalar and {node.mean.size, node.std.size} == {1} else None
        if not (isinstance(node, ir.LAYOUT) and scalar):
            return None
        current = source


def _affine_into_input(node: ir.Input, affine: ir.Affine) -> ir.Input:
    size = max(affine.scale.size, affine.bias.size, node.mean.size, node.std.size)
    scale = _per_output(affine.scale, size)
    shift = _per_output(affine.bias, size)
    std = _per_output(node.std, size) / scale
    mean = _per_output(node.mean, size) - shift * std
    return ir.Input(shape=node.shape, coding=node.coding, scale=node.scale, mean=mean, std=std,
                    t_max=node.t_max, seed=node.seed)


def _affine_before(graph: ir.Graph, name: str, affine: ir.Affine, consumer: str,
                   shapes: dict[str, ir.Shape], origins: dict[str, list[str]]) -> str | None:
    """Fold ``affine`` into the Dense or Conv2d reading it (directly or through one Flatten)."""
    shape = shapes[name]
    target = graph.nodes[consumer]
    if isinstance(target, ir.Flatten):
        dense_name = _only_consumer(graph, consumer)
        if dense_name is None or not isinstance(graph.nodes[dense_name], ir.Dense):
            return None
        scale = ir.broadcast_per_neuron(affine.scale, shape, "affine scale").reshape(-1)
        shift = ir.broadcast_per_neuron(affine.bias, shape, "affine bias").reshape(-1)
        graph.replace(dense_name, _dense_after_affine(graph.nodes[dense_name], scale, shift))
        _remove_into(graph, origins, dense_name, name)
        return f"fused affine {name!r} into {dense_name!r} through flatten {consumer!r}"
    if isinstance(target, ir.Dense):
        scale = ir.broadcast_per_neuron(affine.scale, shape, "affine scale").reshape(-1)
        shift = ir.broadcast_per_neuron(affine.bias, shape, "affine bias").reshape(-1)
        graph.replace(consumer, _dense_after_affine(target, scale, shift))
        _remove_into(graph, origins, consumer, name)
        return f"fused affine {name!r} into the following {consumer!r}"
    if isinstance(target, ir.Conv2d):
        if any(target.padding) and np.any(affine.bias):
            return None  # zero padding would not see the shift: not exact
        channels = shape[0]
        weight, bias = affine_algebra.before(target, _per_output(affine.scale, channels),
                                             _per_output(affine.bias, channels))
        graph.replace(consumer, ir.Conv2d(weight=weight, bias=bias, stride=target.stride,
                                          padding=target.padding, dilation=target.dilation,
                                          groups=target.groups))
        _remove_into(graph, origins, consumer, name)
        return f"fused affine {name!r} into the following {consumer!r}"
    return None


def _dense_after_affine(dense: ir.Dense, scale: np.ndarray, shift: np.ndarray) -> ir.Dense:
    weight, bias = affine_algebra.before(dense, scale, shift)
    return ir.Dense(weight=weight, bias=bias)


def is_zero_padding(node: ir.Node | None) -> bool:
    """True for a Conv2d that only zero-pads its input (depthwise 1x1, weight 1, no bias)."""
    return (isinstance(node, ir.Conv2d) and node.bias is None and node.weight.shape[1:] == (1, 1, 1)
            and node.groups == node.weight.shape[0] and node.stride == (1, 1)
            and bool(np.all(node.weight == 1)))


def _with_padding(node: ir.Conv2d | ir.SumPool2d, padding: tuple[int, ...]) -> ir.Node:
    if isinstance(node, ir.SumPool2d):
        return ir.SumPool2d(kernel=node.kernel, stride=node.stride, padding=padding, scale=node.scale)
    return ir.Conv2d(weight=node.weight, bias=node.bias, stride=node.stride, padding=padding,
                     dilation=node.dilation, groups=node.groups)
