"""The one cleanup after a rule's edits of a graph body: dead operand nodes, unread initializers, stale value_info.

Why one: each pass had its own sweep, with op sets that had drifted apart. A
rule only says which names may have lost their last reader (`maybe_dead`) and
which tensors changed shape or disappeared (`forget_shape`); the driver runs
the cleanup once per body, before the edits are committed.
"""

from __future__ import annotations

from typing import Iterable

import onnx

from .attrs import outer_names_used, subgraphs
from .core import GraphView
from .fold import CONSTANT_CHAIN_OPS

STD_DOMAINS = ("", "ai.onnx")


class Cleanup:
    """What one rule left to clean in one graph body (and in the graphs enclosing it)."""

    def __init__(self, view: GraphView, outer: dict[int, tuple[onnx.GraphProto, set[str]]] | None = None) -> None:
        self.view = view
        self.dead: list[str] = []
        self.stale: set[str] = set()
        self.initializers: set[str] = set()
        # Initializers of enclosing graphs this body stopped reading: dropped after every body was visited.
        self.outer = outer if outer is not None else {}

    def maybe_dead(self, names: Iterable[str]) -> None:
        """Operand names whose producers (constant chains, initializers) may have lost their last reader."""
        self.dead.extend(n for n in names if n)

    def forget_shape(self, names: Iterable[str]) -> None:
        """Tensors that changed shape or disappeared: their declared value_info goes."""
        self.stale.update(n for n in names if n)

    def drop_initializers(self, names: Iterable[str]) -> None:
        """Initializers to remove if nothing reads them by the end."""
        self.initializers.update(n for n in names if n)

    def run(self) -> None:
        unused = sweep_dead(self.view, self.dead, self.stale, self.outer)
        self.dead.clear()
        names = list(unused) + sorted(self.initializers - set(unused))
        if names:
            self.view.drop_unused_initializers(names)
        drop_value_info(self.view, self.stale)


def sweep_dead(view: GraphView, candidates: list[str], stale: set[str],
               outer: dict[int, tuple[onnx.GraphProto, set[str]]]) -> dict[str, None]:
    """Remove constant-chain nodes nobody reads any more, walking back from the candidates.

    Returns this body's initializers that lost their last reader. Live-reader
    counts are taken once per name and decremented as readers go, so a
    constant shared by thousands of nodes costs its reader count once.
    """
    live: dict[str, int] = {}

    def readers(name: str) -> int:
        if name not in live:
            live[name] = len(view.consumers_of(name))
        return live[name]

    unused: dict[str, None] = {}
    stack = list(reversed(candidates))
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        if view.is_graph_output(name) or name in view.input_set or readers(name):
            continue
        if name in view.initializers:
            unused[name] = None
            continue
        if view.initializer(name) is not None:
            _outer_unread(view, name, outer)
            continue
        node = view.producer_of(name)
        if node is None or node.op_type not in CONSTANT_CHAIN_OPS or node.domain not in STD_DOMAINS:
            continue
        if any(True for _ in subgraphs(node)):
            continue
        if any(o and (view.is_graph_output(o) or readers(o)) for o in node.output):
            continue
        view.remove(node)
        stale.update(o for o in node.output if o)
        inputs = list(dict.fromkeys(i for i in node.input if i))
        for i in inputs:
            if i in live:
                live[i] -= 1
            seen.discard(i)
        stack.extend(reversed(inputs))
    return unused


def drop_if_unread(view: GraphView, names: Iterable[str]) -> None:
    """Remove now, not at the cleanup: each named constant (a Constant node or an initializer) nothing reads."""
    for name in names:
        if not name or view.consumers_of(name) or view.is_graph_output(name):
            continue
        producer = view.producer_of(name)
        if producer is not None and producer.op_type == "Constant":
            view.remove(producer)
        elif name in view.initializers:
            view.drop_unused_initializers([name])


def _outer_unread(view: GraphView, name: str, outer: dict[int, tuple[onnx.GraphProto, set[str]]]) -> None:
    owner = view.parent
    while owner is not None and name not in owner.initializers:
        owner = owner.parent
    if owner is not None and not owner.is_function:
        outer.setdefault(id(owner.body), (owner.body, set()))[1].add(name)


def drop_unread_initializers(body: onnx.GraphProto, names: set[str]) -> None:
    """Remove the given initializers of a graph that nothing in it (subgraphs included) reads any more."""
    read = {o.name for o in body.output} | {i.name for i in body.input}
    for node in body.node:
        read.update(node.input)
        for _, g in subgraphs(node):
            read.update(outer_names_used(g))
    doomed = names - read
    for i in range(len(body.initializer) - 1, -1, -1):
        if body.initializer[i].name in doomed:
            del body.initializer[i]


def drop_value_info(view_or_body, names: set[str]) -> None:
    """Forget declared shapes of the named tensors (one linear rebuild; kept entries copied, not moved)."""
    if not names:
        return
    body = getattr(view_or_body, "body", view_or_body)
    if not hasattr(body, "value_info"):
        return
    infos = body.value_info
    if not any(vi.name in names for vi in infos):
        return
    copies = []
    for vi in infos:
        if vi.name not in names:
            c = type(vi)()
            c.CopyFrom(vi)
            copies.append(c)
    del infos[:]
    infos.extend(copies)
