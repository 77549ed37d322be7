"""Affine-fusion algebra: a per-channel ``y = scale * x + shift`` moved into a Dense or Conv2d.

Used by the ONNX frontend (fusing BatchNormalization, Mul/Add by constants) and the fold pass
(folding input preprocessing, leftover Affine nodes and pooling scales), so the rule is written
once. Both functions return new ``(weight, bias)`` arrays (float64); ``bias`` is ``None`` when the
layer had none and nothing is added, unless ``always_bias``.
"""

from __future__ import annotations

import numpy as np

from snncc import ir


def _bias(node: ir.Dense | ir.Conv2d, scale: np.ndarray | float, added: np.ndarray,
          always_bias: bool) -> np.ndarray | None:
    if node.bias is None and not np.any(added) and not always_bias:
        return None
    base = 0.0 if node.bias is None else np.asarray(node.bias, np.float64)
    return base * scale + added


def after(node: ir.Dense | ir.Conv2d, scale: np.ndarray, shift: np.ndarray,
          always_bias: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``scale[o] * node(x)[o] + shift[o]`` as one layer: ``W'[o] = scale[o] W[o]``,
    ``b'[o] = scale[o] b[o] + shift[o]``. ``scale``, ``shift``: one value or one per output."""
    outputs = node.weight.shape[0]
    scale = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), (outputs,))
    shift = np.broadcast_to(np.asarray(shift, np.float64).reshape(-1), (outputs,))
    weight = np.asarray(node.weight, np.float64) * scale.reshape((-1,) + (1,) * (node.weight.ndim - 1))
    return weight, _bias(node, scale, shift, always_bias)


def before(node: ir.Dense | ir.Conv2d, scale: np.ndarray, shift: np.ndarray,
           always_bias: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``node(scale * x + shift)`` as one layer.

    Dense: ``scale``/``shift`` per input element (``(in,)``): ``W'[:, i] = W[:, i] scale[i]``,
    ``b' = b + W @ shift``. Conv2d: per input channel (``(C_in,)``, grouped as the kernel is):
    ``W'[o, k] = W[o, k] scale[c]`` and ``b'[o] = b[o] + sum W[o, k, u, v] shift[c]`` with
    ``c = group(o) * C_in/G + k``; exact only where the convolution reads no padding or ``shift``
    is 0 (zero padding does not see the shift; callers check).
    """
    weight = np.asarray(node.weight, np.float64)
    scale = np.asarray(scale, np.float64).reshape(-1)
    shift = np.asarray(shift, np.float64).reshape(-1)
    if isinstance(node, ir.Dense):
        return weight * scale[None, :], _bias(node, 1.0, weight @ shift, always_bias)
    per_group_in, per_group_out = weight.shape[1], weight.shape[0] // node.groups
    group_of_output = np.arange(weight.shape[0]) // per_group_out
    channel = group_of_output[:, None] * per_group_in + np.arange(per_group_in)[None]
    added = np.einsum("okuv,ok->o", weight, shift[channel])
    return weight * scale[channel][:, :, None, None], _bias(node, 1.0, added, always_bias)
