"""Editing ONNX graphs in place, linearly, with exact opset-aware readers and builders.

Passes work on the protobuf itself rather than on a re-imported copy: a
weight reshape then changes a TensorProto's `dims` only (no data copied),
untouched nodes stay byte-identical, and nothing the passes do not touch
(doc strings, metadata, value_info, node names) can be lost in a round trip.

`GraphView` indexes one graph body (the main graph, an If/Loop/Scan body, or
a model-local function): producers, consumers (a node whose subgraph reads an
outer tensor counts as its consumer), constants, static shapes. Edits are
queued (insert before/after a node, remove a node, rename a use) and applied
by `commit()` in one linear sweep, followed by a stable topological sort only
when the sweep left the order invalid.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import onnx
from onnx import GraphProto, FunctionProto, NodeProto, TensorProto, helper, numpy_helper

from .attrs import outer_names_used, subgraphs
from .fold import fold_constant


@dataclass
class Shape:
    """A tensor's static knowledge: element type and dims (int, symbol name, or None)."""

    elem_type: int
    dims: list[int | str | None] | None  # None: rank unknown

    @property
    def rank(self) -> int | None:
        return None if self.dims is None else len(self.dims)

    def static(self, axis: int) -> int | None:
        if self.dims is None or not -len(self.dims) <= axis < len(self.dims):
            return None
        d = self.dims[axis]
        return d if isinstance(d, int) else None


def shape_from_value_info(vi: onnx.ValueInfoProto) -> Shape | None:
    t = vi.type
    if not t.HasField("tensor_type"):
        return None
    tt = t.tensor_type
    if not tt.HasField("shape"):
        return Shape(tt.elem_type, None)
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return Shape(tt.elem_type, dims)


class ModelContext:
    """What all graph views of one model share: opsets, IR version, names in use, shapes."""

    def __init__(self, model: onnx.ModelProto, shapes: dict[str, Shape] | None = None) -> None:
        self.model = model
        self.ir_version = model.ir_version
        self.opsets = {o.domain or "": o.version for o in model.opset_import}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 1))
        self.shapes: dict[str, Shape] = shapes if shapes is not None else {}
        self._names: set[str] | None = None
        self._counter = 0

    def names(self) -> set[str]:
        if self._names is None:
            self._names = collect_names(self.model)
        return self._names

    def fresh(self, base: str) -> str:
        """A name used nowhere in the model, derived from `base` (deterministic)."""
        names = self.names()
        if base not in names:
            names.add(base)
            return base
        i = 1
        while f"{base}_{i}" in names:
            i += 1
        name = f"{base}_{i}"
        names.add(name)
        return name


def collect_names(model: onnx.ModelProto) -> set[str]:
    names: set[str] = set()
    graphs: list[GraphProto] = [model.graph]
    for f in model.functions:
        names.update(f.input)
        names.update(f.output)
        for n in f.node:
            names.update(n.output)
            names.add(n.name)
            graphs.extend(g for _, g in subgraphs(n))
    while graphs:
        g = graphs.pop()
        names.update(i.name for i in g.input)
        names.update(o.name for o in g.output)
        names.update(t.name for t in g.initializer)
        names.update(v.name for v in g.value_info)
        for n in g.node:
            names.update(n.output)
            names.update(n.input)
            if n.name:
                names.add(n.name)
            graphs.extend(g2 for _, g2 in subgraphs(n))
    names.discard("")
    return names


class GraphView:
    """An editable index over one graph body (GraphProto or FunctionProto)."""

    def __init__(
        self,
        body: GraphProto | FunctionProto,
        ctx: ModelContext,
        path: str = "main",
        parent: "GraphView | None" = None,
    ) -> None:
        self.body = body
        self.ctx = ctx
        self.path = path
        self.parent = parent
        self.is_function = isinstance(body, FunctionProto)
        self.opset = ctx.opset
        if self.is_function:
            for o in body.opset_import:
                if (o.domain or "") in ("", "ai.onnx"):
                    self.opset = o.version
        self._reindex()

    # ---------------------------------------------------------------- index

    def _reindex(self) -> None:
        body = self.body
        self.nodes: list[NodeProto] = list(body.node)
        self.producer: dict[str, NodeProto] = {}
        self.consumers: dict[str, list[NodeProto]] = {}
        for node in self.nodes:
            for o in node.output:
                if o:
                    self.producer[o] = node
            seen: set[str] = set()
            for i in node.input:
                if i and i not in seen:
                    seen.add(i)
                    self.consumers.setdefault(i, []).append(node)
            for _, g in subgraphs(node):
                for name in outer_names_used(g):
                    if name not in seen:
                        seen.add(name)
                        self.consumers.setdefault(name, []).append(node)
        if self.is_function:
            self.inputs = list(body.input)
            self.outputs = list(body.output)
            self.initializers: dict[str, TensorProto] = {}
        else:
            self.inputs = [i.name for i in body.input]
            self.outputs = [o.name for o in body.output]
            self.initializers = {t.name: t for t in body.initializer}
        self.output_set = set(self.outputs)
        self.input_set = set(self.inputs)
        self._before: dict[int, list[NodeProto]] = {}
        self._after: dict[int, list[NodeProto]] = {}
        self._removed: set[int] = set()
        self._dirty = False
        self._const_cache: dict[str, np.ndarray | None] = {}

    # ------------------------------------------------------------- queries

    def consumers_of(self, name: str) -> list[NodeProto]:
        return [n for n in self.consumers.get(name, []) if id(n) not in self._removed]

    def sole_consumer(self, name: str) -> NodeProto | None:
        """The one node reading `name`, when it is not also a graph output."""
        if name in self.output_set:
            return None
        users = self.consumers_of(name)
        return users[0] if len(users) == 1 else None

    def producer_of(self, name: str) -> NodeProto | None:
        node = self.producer.get(name)
        if node is not None and id(node) in self._removed:
            return None
        return node

    def is_graph_output(self, name: str) -> bool:
        return name in self.output_set

    def initializer(self, name: str) -> TensorProto | None:
        """The initializer of this name in this graph or an enclosing one (not overridable)."""
        view: GraphView | None = self
        while view is not None:
            t = view.initializers.get(name)
            if t is not None:
                if name in view.input_set and self.ctx.ir_version >= 4:
                    return None  # an input with a default: the caller may override it
                return t
            if name in view.producer or name in view.input_set:
                return None  # defined here by something else: shadows outer scopes
            view = view.parent
        return None

    def is_overridable_initializer(self, name: str) -> bool:
        view: GraphView | None = self
        while view is not None:
            if name in view.initializers:
                return name in view.input_set
            view = view.parent
        return False

    def shape(self, name: str) -> Shape | None:
        t = self.initializer(name)
        if t is not None:
            return Shape(t.data_type, [int(d) for d in t.dims])
        node = self.producer_of(name)
        if node is not None and node.op_type == "Constant" and not self.is_function:
            value = self.const_value(name)
            if value is not None:
                return Shape(onnx.helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))
        return self.ctx.shapes.get(self._shape_key(name))

    def _shape_key(self, name: str) -> str:
        # Functions have their own namespace: their value names are keyed by path.
        view: GraphView | None = self
        while view is not None:
            if view.is_function:
                return f"{view.path}::{name}"
            view = view.parent
        return name

    def rank(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else s.rank

    def const_value(self, name: str) -> np.ndarray | None:
        """The value of `name` when it is a constant: initializer, Constant, or a small constant chain."""
        if not name:
            return None
        if name in self._const_cache:
            return self._const_cache[name]
        result = fold_constant(self, name, self._const_cache)
        self._const_cache[name] = result
        return result

    def const_ints(self, name: str) -> list[int] | None:
        value = self.const_value(name)
        if value is None or value.dtype.kind not in "iu":
            return None
        return [int(v) for v in value.reshape(-1)]

    def elem_type(self, name: str) -> int | None:
        s = self.shape(name)
        return None if s is None else s.elem_type

    # --------------------------------------------------------------- edits

    def insert_before(self, anchor: NodeProto, nodes: Sequence[NodeProto]) -> None:
        self._before.setdefault(id(anchor), []).extend(nodes)
        self._register(nodes)

    def insert_after(self, anchor: NodeProto, nodes: Sequence[NodeProto]) -> None:
        self._after.setdefault(id(anchor), []).extend(nodes)
        self._register(nodes)

    def _register(self, nodes: Sequence[NodeProto]) -> None:
        self._dirty = True
        for node in nodes:
            for o in node.output:
                if o:
                    self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers.setdefault(i, []).append(node)

    def set_output(self, node: NodeProto, index: int, name: str) -> None:
        """Make `node` write `name` as its output `index` (the index follows)."""
        node.output[index] = name
        self.producer[name] = node

    def tensor_changed(self, name: str) -> None:
        """A stored tensor's value was replaced in place: forget what was computed from it."""
        self._const_cache.pop(name, None)

    def remove(self, node: NodeProto) -> None:
        self._removed.add(id(node))
        self._dirty = True

    def is_removed(self, node: NodeProto) -> bool:
        return id(node) in self._removed

    def replace_input(self, node: NodeProto, index: int, new: str) -> None:
        old = node.input[index]
        node.input[index] = new
        users = self.consumers.get(old)
        if users is not None and old not in node.input:
            self.consumers[old] = [n for n in users if n is not node]
        if node not in self.consumers.setdefault(new, []):
            self.consumers[new].append(node)
        self._const_cache.pop(new, None)

    def drop_input(self, node: NodeProto, index: int) -> None:
        """Remove a node's optional input `index` (with any empty inputs then trailing), keeping the index right."""
        old = node.input[index]
        node.input[index] = ""
        while node.input and not node.input[-1]:
            del node.input[-1]
        users = self.consumers.get(old)
        if old and users is not None and old not in node.input:
            self.consumers[old] = [n for n in users if n is not node]
        self._const_cache.pop(old, None)

    def rename_uses(self, old: str, new: str) -> None:
        """Make every reader of `old` read `new` (subgraph bodies included)."""
        for node in list(self.consumers.get(old, [])):
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
            for _, g in subgraphs(node):
                _rename_in_subgraph(g, old, new)
            self.consumers.setdefault(new, []).append(node)
        self.consumers.pop(old, None)
        self._dirty = True

    def bypass(self, node: NodeProto, keep: str, drop: str) -> None:
        """Remove a one-in one-out node: readers of its output `drop` read `keep`.

        When `drop` is a graph output its name must survive, so the producer of
        `keep` is renamed to write `drop` instead (only when `keep` has no other
        reader and is not a graph input/output itself).
        """
        self.remove(node)
        if drop in self.output_set:
            producer = self.producer_of(keep)
            if producer is None or keep in self.output_set or keep in self.input_set:
                raise ValueError("cannot bypass a node between a graph input/output and a graph output")
            for i, o in enumerate(producer.output):
                if o == keep:
                    producer.output[i] = drop
            self.producer[drop] = producer
            self.rename_uses(keep, drop)
        else:
            self.rename_uses(drop, keep)

    def add_initializer(self, tensor: TensorProto) -> str:
        """Add a constant: an initializer in a graph, a Constant node in a function."""
        if self.is_function:
            node = helper.make_node("Constant", [], [tensor.name], name=self.ctx.fresh(tensor.name + "_const"), value=tensor)
            self.pending_constants.append(node)
            self.producer[tensor.name] = node
        else:
            self.body.initializer.append(tensor)
            self.initializers[tensor.name] = self.body.initializer[-1]
            if self.ctx.ir_version < 4:
                # IR 3 requires every initializer to be a graph input too (its default value).
                self.body.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
                self.input_set.add(tensor.name)
        self._const_cache.pop(tensor.name, None)
        return tensor.name

    @property
    def pending_constants(self) -> list[NodeProto]:
        if not hasattr(self, "_pending_constants"):
            self._pending_constants: list[NodeProto] = []
            self._dirty = True
        return self._pending_constants

    def int64_const(self, values: Sequence[int], base: str) -> str:
        """A named int64 constant holding `values` (shared per graph and value)."""
        key = ("i64", tuple(int(v) for v in values))
        cache = self.__dict__.setdefault("_int_consts", {})
        if key in cache:
            return cache[key]
        name = self.ctx.fresh(base)
        self.add_initializer(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        cache[key] = name
        self._dirty = True
        return name

    def commit(self) -> bool:
        """Apply queued edits in one sweep; returns whether anything changed."""
        if not self._dirty:
            return False
        order: list[NodeProto] = list(getattr(self, "_pending_constants", []))
        for node in self.nodes:
            key = id(node)
            order.extend(self._before.get(key, ()))
            if key not in self._removed:
                order.append(node)
            order.extend(self._after.get(key, ()))
        order = [n for n in order if id(n) not in self._removed]
        if not _is_topological(order, self._available_names()):
            order = toposort(order, self._available_names())
        del self.body.node[:]
        self.body.node.extend(order)
        if not self.is_function:
            used = set()
            for n in self.body.node:
                used.update(n.input)
        self._pending_constants = []
        self._reindex()
        return True

    def _available_names(self) -> set[str]:
        names = set(self.inputs)
        if not self.is_function:
            names.update(self.initializers)
        view = self.parent
        while view is not None:  # outer scopes are all available to a body
            names.update(view.producer)
            names.update(view.inputs)
            names.update(view.initializers)
            view = view.parent
        names.add("")
        return names

    def drop_unused_initializers(self, names: Iterable[str]) -> None:
        """Remove the given initializers if nothing reads them any more."""
        if self.is_function:
            return
        names = set(names)
        doomed = {n for n in names if not self.consumers_of(n) and n not in self.output_set and n not in self.input_set}
        if not doomed:
            return
        kept = [t for t in self.body.initializer if t.name not in doomed]
        if len(kept) != len(self.body.initializer):
            # Rebuild by removal in place: avoids copying tensors that stay.
            for i in range(len(self.body.initializer) - 1, -1, -1):
                if self.body.initializer[i].name in doomed:
                    del self.body.initializer[i]
            self.initializers = {t.name: t for t in self.body.initializer}


def _rename_in_subgraph(graph: GraphProto, old: str, new: str) -> None:
    stack = [graph]
    while stack:
        g = stack.pop()
        if any(i.name == old for i in g.input) or any(t.name == old for t in g.initializer):
            continue  # shadowed
        for n in g.node:
            for i, name in enumerate(n.input):
                if name == old:
                    n.input[i] = new
            stack.extend(b for _, b in subgraphs(n))
        for o in g.output:
            if o.name == old:
                o.name = new


def _is_topological(nodes: Sequence[NodeProto], available: set[str]) -> bool:
    seen = set(available)
    for n in nodes:
        for i in n.input:
            if i not in seen:
                return False
        for _, g in subgraphs(n):
            pass  # outer references are checked by ONNX at the body level; keep order stable
        seen.update(n.output)
    return True


def toposort(nodes: Sequence[NodeProto], available: set[str]) -> list[NodeProto]:
    """Stable Kahn sort: keeps the given order wherever the dependencies allow."""
    producer_index: dict[str, int] = {}
    for idx, n in enumerate(nodes):
        for o in n.output:
            if o:
                producer_index[o] = idx
    deps: list[set[int]] = []
    users: list[list[int]] = [[] for _ in nodes]
    for idx, n in enumerate(nodes):
        needed = set()
        names = list(n.input)
        for _, g in subgraphs(n):
            names.extend(outer_names_used(g))
        for name in names:
            p = producer_index.get(name)
            if p is not None and p != idx and name not in available:
                needed.add(p)
        deps.append(needed)
        for p in needed:
            users[p].append(idx)
    remaining = [len(d) for d in deps]
    heap = [i for i, r in enumerate(remaining) if r == 0]
    heapq.heapify(heap)
    out: list[NodeProto] = []
    while heap:
        i = heapq.heappop(heap)
        out.append(nodes[i])
        for u in users[i]:
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(heap, u)
    if len(out) != len(nodes):
        raise ValueError("graph has a cycle after rewriting")
    return out


# ------------------------------------------------------------ constant folding


@dataclass
class Walk:
    """One graph body found in a model: its view and where it lives."""

    view: GraphView
    owner: NodeProto | None = None
    children: list["Walk"] = field(default_factory=list)


def iter_views(model: onnx.ModelProto, ctx: ModelContext) -> Iterator[GraphView]:
    """Views over the main graph, every subgraph (If/Loop/Scan, any depth) and model-local functions.

    Parents come before their bodies, so a body's view can see its parent's
    index. Iterative, so a deep nesting cannot exhaust the recursion limit.
    """
    roots: list[tuple[GraphProto | FunctionProto, str, GraphView | None]] = [(model.graph, "main", None)]
    for f in model.functions:
        roots.append((f, f"function:{f.name}", None))
    stack = list(reversed(roots))
    while stack:
        body, path, parent = stack.pop()
        view = GraphView(body, ctx, path, parent)
        yield view
        children = []
        for node in view.nodes:
            label = node.name or node.op_type
            for attr_name, g in subgraphs(node):
                children.append((g, f"{path}/{label}/{attr_name}", view))
        stack.extend(reversed(children))


def run_on_views(
    model: onnx.ModelProto, ctx: ModelContext, fn: Callable[[GraphView], None]
) -> None:
    """Apply `fn` to every graph body; each body's edits are committed after `fn` returns."""
    for view in iter_views(model, ctx):
        fn(view)
        view.commit()
