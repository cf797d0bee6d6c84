"""Stable labels for nodes: the name, or op type and index among that op type for unnamed nodes.

Why: records, selection (`only`) and bisect key candidates by label, so every
rule and `inspect` must label a node the same way.
"""

from __future__ import annotations

from onnx import NodeProto

from .core import GraphView


def node_labels(view: GraphView) -> dict[int, str]:
    """The label of every node of a view, by id(node), in one linear sweep."""
    counts: dict[str, int] = {}
    labels: dict[int, str] = {}
    for node in view.nodes:
        i = counts.get(node.op_type, 0)
        counts[node.op_type] = i + 1
        labels[id(node)] = node.name or f"{node.op_type}_{i}"
    return labels


def node_label(view: GraphView, node: NodeProto) -> str:
    """One node's label (scans the view: use node_labels for many)."""
    if node.name:
        return node.name
    return node_labels(view).get(id(node), node.op_type)
