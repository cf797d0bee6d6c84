"""Graph helpers: the editable view of one graph body, attribute and opset readers, labels, cleanup."""

from __future__ import annotations

from .attrs import attr, may_hold_subgraphs, outer_names_used, remove_attr, set_attr, subgraphs
from .cleanup import Cleanup, drop_if_unread, drop_unread_initializers, drop_value_info, sweep_dead
from .core import GraphView, ModelContext, Shape, Walk, collect_names, iter_views, run_on_views, shape_from_value_info, toposort
from .fold import (
    CONCRETE_OPS, CONSTANT_CHAIN_OPS, FOLD_MAX_ELEMENTS, INT32_MAX, INT64_MAX, clamp_slice, constant_node_tensor,
    constant_node_value, constant_of_shape_fill, eval_node, fold_constant, slice_kept_range, slice_operands,
)
from .ops import make_squeeze, make_unsqueeze, squeeze_array, tensor_elem_count, unsqueeze_array, unsqueeze_axes
from .labels import node_label, node_labels
from .layout import LAYOUT_OPS, MAX_LAYOUT_OPS, LayoutPath, axes_back, axes_through, read_by, walk_down, walk_up

__all__ = [
    "CONSTANT_CHAIN_OPS", "Cleanup", "drop_if_unread", "drop_unread_initializers", "drop_value_info", "sweep_dead", "FOLD_MAX_ELEMENTS", "INT32_MAX", "INT64_MAX", "GraphView",
    "ModelContext", "Shape", "Walk", "attr", "collect_names", "constant_node_tensor", "iter_views", "make_squeeze",
    "make_unsqueeze", "may_hold_subgraphs", "outer_names_used", "remove_attr", "run_on_views", "set_attr",
    "shape_from_value_info", "slice_kept_range", "slice_operands", "subgraphs", "tensor_elem_count", "toposort",
    "unsqueeze_axes", "squeeze_array", "unsqueeze_array", "node_label", "node_labels", "fold_constant", "CONCRETE_OPS", "clamp_slice", "constant_node_value",
    "constant_of_shape_fill", "eval_node",
    "LAYOUT_OPS", "MAX_LAYOUT_OPS", "LayoutPath", "axes_back", "axes_through", "read_by", "walk_down", "walk_up",
]
