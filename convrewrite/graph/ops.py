"""Opset-correct readers and builders of Unsqueeze/Squeeze (axes as an attribute before opset 13, an input after)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from onnx import NodeProto, TensorProto, helper

from .attrs import attr

if TYPE_CHECKING:
    from .core import GraphView

def unsqueeze_axes(view: GraphView, node: NodeProto) -> list[int] | None:
    """Axes of an Unsqueeze/Squeeze in either opset form (None: unknown or all-unit squeeze)."""
    if view.opset < 13:
        value = attr(node, "axes")
        return list(value) if value is not None else None
    if len(node.input) < 2 or not node.input[1]:
        return None
    return view.const_ints(node.input[1])


def squeeze_array(a: np.ndarray, axes: Sequence[int] | None) -> np.ndarray:
    """Squeeze on an array (numbers, or symbolic objects): `axes` may be negative; None drops every unit axis.

    Why here: the constant folder, both symbolic evaluators and the Keras kernel trace apply it alike.
    """
    return np.squeeze(a) if axes is None else np.squeeze(a, axis=tuple(x + a.ndim if x < 0 else x for x in axes))


def unsqueeze_array(a: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Unsqueeze on an array: `axes` (may be negative) index the output, so they are placed in ascending order."""
    rank = a.ndim + len(axes)
    for x in sorted(x + rank if x < 0 else x for x in axes):
        a = np.expand_dims(a, x)
    return a


def make_unsqueeze(view: GraphView, data: str, output: str, axes: Sequence[int], name: str) -> NodeProto:
    """An Unsqueeze in the form of the graph's opset (axes attribute before 13, input from 13)."""
    return _make_axes_node(view, "Unsqueeze", data, output, axes, name)


def make_squeeze(view: GraphView, data: str, output: str, axes: Sequence[int], name: str) -> NodeProto:
    return _make_axes_node(view, "Squeeze", data, output, axes, name)


def _make_axes_node(view: GraphView, op: str, data: str, output: str, axes: Sequence[int], name: str) -> NodeProto:
    if view.opset < 13:
        return helper.make_node(op, [data], [output], name=name, axes=list(axes))
    axes_name = view.int64_const(list(axes), f"{op.lower()}_axes_{'_'.join(str(a) for a in axes)}")
    return helper.make_node(op, [data, axes_name], [output], name=name)


def tensor_elem_count(t: TensorProto) -> int:
    return int(np.prod(t.dims)) if t.dims else 1
