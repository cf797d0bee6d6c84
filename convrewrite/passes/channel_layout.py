"""Which constants act per channel: the part of moving a per-channel affine op into a conv that is not layout.

Shared by separable's followers and keras_lowering's bias Adds: a constant
folds into the conv's bias only when it broadcasts over the channel axis
alone, as that axis sits in the layout the op sees (where the axis goes
through layout ops is graph/layout.py's).
"""

from __future__ import annotations

import numpy as np



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
