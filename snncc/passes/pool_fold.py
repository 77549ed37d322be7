"""pool_fold: fold sum/average pooling into the Dense or Conv2d that reads it (exactly).

Pooling is linear, so a :class:`~snncc.ir.SumPool2d` whose output feeds one synaptic layer and
nothing else is that layer applied to the unpooled map with a pooled kernel. With pool kernel
``(kh, kw)``, stride ``(sh, sw)`` and scale ``s``: ``P[c, a, b] = s * sum_{du < kh, dv < kw}
X[c, sh*a + du, sw*b + dv]``. Rules (one application folds every foldable pool; deterministic;
never mutates its input):

1. **Dense** (through an optional :class:`~snncc.ir.Flatten`): the weight column of pooled element
   ``(c, a, b)`` is spread over its window, ``W'[o, c, sh*a + du, sw*b + dv] += s * W[o, c, a, b]``;
   map elements no window covers get weight 0. The Flatten now flattens the unpooled map.
2. **Conv2d** (stride ``(tx, ty)``, dilation ``d``, padding ``p``): a strided convolution over the
   unpooled map with ``K[o, c, sh*d*u + du, sw*d*v + dv] += s * W[o, c, u, v]``, stride
   ``(sh*tx, sw*ty)``, dilation 1, padding ``sh*p`` (``sw*p``), same groups and bias. Exact when
   the pool has no padding and the conv's zero padding maps onto the unpooled map's zero padding:
   a padded top/left needs ``kh <= sh`` (``kw <= sw``); a padded bottom/right needs every row
   (column) of the map inside a pool window. The bottom/right padding grows by the rows
   (columns) beyond the last window, so the output shape stays the same.
3. A pool that is also read by anything else, feeds no synaptic layer, has padding or breaks a
   condition of rule 2 stays; ``info["kept"]`` names it with the reason (netx then reports it).
   :class:`~snncc.ir.MaxPool2d` is nonlinear and never folds.

Every mode keeps its meaning: ANN outputs, float and integer spikes are the same before and after
(integer sums are exact; float sums only change their order). An integer graph stays integer (the
pool's scale is 1 there). ``info["folded"]`` maps each folded pool to the layer it joined.
"""

from __future__ import annotations

import numpy as np

from snncc import ir
from snncc.passes import PassContext, PassResult
from snncc.passes.layers import sole_synaptic_reader

#: This pass has no options (:data:`snncc.passes.OPTION_KINDS`).
OPTIONS: dict[str, str] = {}


def pool_fold(graph: ir.Graph, context: PassContext) -> PassResult:
    """Fold every SumPool2d that feeds one Dense/Conv2d into it (see the module docstring)."""
    graph = graph.copy()
    folded: dict[str, str] = {}
    kept: dict[str, str] = {}
    # Later pools first: folding one never changes the pools before it.
    for name in reversed(graph.of_type(ir.SumPool2d)):
        reader, reason = _fold_one(graph, name)
        if reader is not None:
            folded[name] = reader
        else:
            kept[name] = reason
    if folded:
        graph.validate()
    return PassResult(graph, bool(folded), {"folded": folded, "kept": kept})


def _fold_one(graph: ir.Graph, name: str) -> tuple[str | None, str]:
    """Fold pool ``name`` into its reader: ``(reader, "")``, or ``(None, why it stays)``."""
    pool: ir.SumPool2d = graph.nodes[name]  # type: ignore[assignment]
    found = sole_synaptic_reader(graph, name, lambda node: isinstance(node, ir.Flatten))
    if found is None:
        return None, "its output does not feed exactly one Dense/Conv2d (through Flatten at most)"
    if any(pool.padding):
        return None, "the pool is padded"
    reader_name = found[0]
    reader = graph.nodes[reader_name]
    shapes = graph.infer_shapes()
    source_shape = shapes[graph.inputs_of(name)[0]]
    pooled_shape = shapes[name]
    if isinstance(reader, ir.Dense):
        reader.weight = _spread_dense(np.asarray(reader.weight), pool, source_shape, pooled_shape)
    else:
        folded = _pooled_conv(reader, pool, source_shape, pooled_shape)
        if isinstance(folded, str):
            return None, folded
        if folded.output_shape([source_shape]) != shapes[reader_name]:
            return None, "the folded convolution would change the output shape"
        graph.replace(reader_name, folded)
    graph.bypass(name)
    return reader_name, ""


def _spread_dense(weight: np.ndarray, pool: ir.SumPool2d, source_shape: ir.Shape,
                  pooled_shape: ir.Shape) -> np.ndarray:
    """Rule 1: the Dense weight over the unpooled map."""
    channels, height, width = source_shape
    _, pooled_h, pooled_w = pooled_shape
    (kernel_h, kernel_w), (stride_h, stride_w) = pool.kernel, pool.stride
    columns = weight.reshape(weight.shape[0], channels, pooled_h, pooled_w)
    if pool.scale != 1:  # keeps integer weights integer (integer graphs have scale 1)
        columns = columns * pool.scale
    spread = np.zeros((weight.shape[0], channels, height, width), dtype=columns.dtype)
    for du in range(kernel_h):
        for dv in range(kernel_w):
            rows = slice(du, du + stride_h * (pooled_h - 1) + 1, stride_h)
            cols = slice(dv, dv + stride_w * (pooled_w - 1) + 1, stride_w)
            spread[:, :, rows, cols] += columns
    return spread.reshape(weight.shape[0], -1)


def _pooled_conv(conv: ir.Conv2d, pool: ir.SumPool2d, source_shape: ir.Shape,
                 pooled_shape: ir.Shape) -> ir.Conv2d | str:
    """Rule 2: the Conv2d over the unpooled map, or why it cannot be exact."""
    _, height, width = source_shape
    _, pooled_h, pooled_w = pooled_shape
    (kernel_h, kernel_w), (stride_h, stride_w) = pool.kernel, pool.stride
    top, left, bottom, right = conv.padding
    if (top and kernel_h > stride_h) or (left and kernel_w > stride_w):
        return "its windows overlap the padding of the Conv2d that reads it"
    beyond_h, beyond_w = height - stride_h * pooled_h, width - stride_w * pooled_w
    if (bottom and beyond_h > 0) or (right and beyond_w > 0):
        return "map rows or columns outside every pool window meet the Conv2d's padding"
    weight = np.asarray(conv.weight)
    out_channels, group_in, taps_h, taps_w = weight.shape
    dil_h, dil_w = conv.dilation
    size_h = stride_h * dil_h * (taps_h - 1) + kernel_h
    size_w = stride_w * dil_w * (taps_w - 1) + kernel_w
    scaled = weight * pool.scale if pool.scale != 1 else weight
    kernel = np.zeros((out_channels, group_in, size_h, size_w), dtype=scaled.dtype)
    for u in range(taps_h):
        for v in range(taps_w):
            row, col = stride_h * dil_h * u, stride_w * dil_w * v
            kernel[:, :, row:row + kernel_h, col:col + kernel_w] += scaled[:, :, u, v][:, :, None,
                                                                                         None]
    padding = (stride_h * top, stride_w * left,
               stride_h * bottom - beyond_h if bottom else 0,
               stride_w * right - beyond_w if right else 0)
    return ir.Conv2d(weight=kernel, bias=None if conv.bias is None else conv.bias.copy(),
                     stride=(stride_h * conv.stride[0], stride_w * conv.stride[1]),
                     padding=padding, dilation=(1, 1), groups=conv.groups)

