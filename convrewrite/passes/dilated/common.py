"""What the dilated fold's modules share: its name, the op sets it walks through, its limits."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from ...graph import GraphView
from ...symbolic import MAX_VALUE_ELEMENTS



PASS_NAME = "dilated"


COUNTERS = ("s2b_folded", "kernels_compacted", "kernels_expanded", "shape_nodes_removed")


NO_PATTERN = "no dilation pattern"


LAYOUT_OPS = {"Reshape", "Transpose", "Unsqueeze", "Squeeze", "Identity"}


BEFORE_CONV_OPS = LAYOUT_OPS | {"Pad", "SpaceToDepth"}


AFTER_CONV_OPS = LAYOUT_OPS | {"Slice", "DepthToSpace", "Add"}  # Add: a per-channel constant (the bias)


MAX_CHAIN = 64  # layout ops followed on each side of a conv


MAX_PERIOD = 64  # residue-class period per dynamic dim


MAX_CLASSES = 1024  # residue classes per chain


FLOAT_TYPES = (np.float16, np.float32, np.float64)


def constant_operand(view: GraphView, name: str) -> np.ndarray | None:
    """A small constant (initializer or Constant node), or None."""
    t = view.initializer(name)
    if t is not None:
        return numpy_helper.to_array(t) if int(np.prod(t.dims)) <= MAX_VALUE_ELEMENTS else None
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant":
        return view.const_value(name)
    return None


def conv_weight_shape(view: GraphView, name: str) -> list[int] | None:
    s = view.shape(name)
    if s is not None and s.dims is not None and all(isinstance(d, int) for d in s.dims):
        return list(s.dims)
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant":
        value = view.const_value(name)
        return None if value is None else list(value.shape)
    return None
