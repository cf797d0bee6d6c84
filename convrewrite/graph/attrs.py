"""Node attributes and the subgraphs a node holds (If/Loop/Scan bodies): read, set, remove, walk."""

from __future__ import annotations

from typing import Iterator

from onnx import AttributeProto, GraphProto, NodeProto, helper

def attr(node: NodeProto, name: str, default=None):
    """An attribute's value (strings decoded), or `default` when absent."""
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def set_attr(node: NodeProto, name: str, value) -> None:
    """Set (or replace) one attribute, keeping the others and their order."""
    new = helper.make_attribute(name, value)
    for i, a in enumerate(node.attribute):
        if a.name == name:
            node.attribute[i].CopyFrom(new)
            return
    node.attribute.append(new)


def remove_attr(node: NodeProto, name: str) -> None:
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            return


# Standard ops that hold subgraphs; ops of other domains are looked at one by one.
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def may_hold_subgraphs(node: NodeProto) -> bool:
    """Cheap filter: a standard-domain op holds a subgraph only if it is control flow."""
    return node.op_type in _CONTROL_FLOW or node.domain not in ("", "ai.onnx")


def subgraphs(node: NodeProto) -> Iterator[tuple[str, GraphProto]]:
    """(attribute name, body) for each subgraph a node holds (If/Loop/Scan...)."""
    if not may_hold_subgraphs(node):
        return
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.name, a.g
        elif a.type == AttributeProto.GRAPHS:
            for i, g in enumerate(a.graphs):
                yield f"{a.name}[{i}]", g


def outer_names_used(graph: GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes (iterative, any depth)."""
    used: set[str] = set()
    stack: list[tuple[GraphProto, frozenset[str]]] = [(graph, frozenset())]
    while stack:
        g, outer_defined = stack.pop()
        defined = set(outer_defined)
        defined.update(i.name for i in g.input)
        defined.update(t.name for t in g.initializer)
        defined.update(s.values.name for s in g.sparse_initializer)
        for node in g.node:
            for name in node.input:
                if name and name not in defined:
                    used.add(name)
            for _, body in subgraphs(node):
                stack.append((body, frozenset(defined)))
            defined.update(o for o in node.output if o)
        for o in g.output:
            if o.name not in defined:
                used.add(o.name)
    return used
