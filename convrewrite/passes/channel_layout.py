"""Where a conv's output channels sit after layout-only ops, and which constants act per channel.

Shared by the folds that move a per-channel affine op into a conv (separable.py's
followers, keras_lowering.py's bias Adds): a constant folds into the conv's
bias only when it broadcasts over the channel axis alone, as that axis sits
in the layout the op sees (a Transpose between them moves it).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from ..graph import GraphView, attr, unsqueeze_axes


def layout_axes(view: GraphView, node: NodeProto, axes: list[int | None]) -> list[int | None] | None:
    """The conv-output axes after a layout op, or None when the op is not followed (channel axis lost)."""
    rank = len(axes)
    if node.op_type == "Identity":
        return list(axes)
    if node.op_type == "Transpose":
        perm = attr(node, "perm")
        perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(rank)):
            return None
        return [axes[p] for p in perm]
    given = unsqueeze_axes(view, node)
    if given is None:
        return None
    if node.op_type == "Squeeze":
        drop = {a + rank if a < 0 else a for a in given}
        if any(not 0 <= a < rank for a in drop) or any(axes[a] == 1 for a in drop):
            return None
        return [a for i, a in enumerate(axes) if i not in drop]
    out_rank = rank + len(given)
    inserted = {a + out_rank if a < 0 else a for a in given}
    if len(inserted) != len(given) or any(not 0 <= a < out_rank for a in inserted):
        return None
    rest = iter(axes)
    return [None if i in inserted else next(rest) for i in range(out_rank)]


def per_channel(value: np.ndarray, rank: int, channel_axis: int, channels: int) -> np.ndarray | None:
    """The per-channel vector of a constant that broadcasts over `channel_axis` only, else None."""
    if value.ndim > rank:
        return None
    shape = [1] * (rank - value.ndim) + list(value.shape)
    for i, d in enumerate(shape):
        if i == channel_axis:
            if d not in (1, channels):
                return None
        elif d != 1:
            return None
    flat = value.astype(np.float64).reshape(-1)
    return flat if flat.size == channels else np.full(channels, flat[0])
