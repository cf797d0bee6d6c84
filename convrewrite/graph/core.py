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
from onnx import AttributeProto, GraphProto, FunctionProto, NodeProto, TensorProto, helper, numpy_helper

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
# Constant folding is for small operand chains (pads, axes, slice bounds), never weights.
FOLD_MAX_ELEMENTS = 1 << 16


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
        result = _fold(self, name)
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

# The one constant-chain op set: ops that only compute small operands (shapes, pads, axes, scales), never
# anything with effects. Constant folding follows them; the cleanup removes them once nothing reads them.
CONSTANT_CHAIN_OPS = frozenset({
    "Constant", "Identity", "Cast", "Reshape", "Concat", "Slice", "Transpose", "ConstantOfShape",
    "Unsqueeze", "Squeeze", "Gather", "Add", "Sub", "Mul", "Div", "Neg", "Shape", "Size", "Range",
    "Flatten", "Expand", "Abs", "Max", "Min",
})


def _fold(view: GraphView, name: str) -> np.ndarray | None:
    """Evaluate `name` if it depends on constants only (iterative; small tensors only)."""
    results: dict[str, np.ndarray | None] = {}
    stack: list[tuple[str, bool]] = [(name, False)]
    while stack:
        current, expanded = stack.pop()
        if current in results:
            continue
        cached = view._const_cache.get(current, ...) if current != name else ...
        if cached is not ...:
            results[current] = cached
            continue
        t = view.initializer(current)
        if t is not None:
            results[current] = _small_array(t)
            continue
        node = view.producer_of(current)
        if node is None:
            parent = view.parent
            results[current] = parent.const_value(current) if parent is not None and current not in view.input_set else None
            continue
        if node.op_type not in CONSTANT_CHAIN_OPS or node.domain not in ("", "ai.onnx"):
            results[current] = None
            continue
        inputs = [i for i in node.input if i]
        if node.op_type == "Shape":
            results[current] = _fold_shape(view, node)
            continue
        if node.op_type == "Size":
            s = view.shape(node.input[0])
            if s is None or s.dims is None or not all(isinstance(d, int) for d in s.dims):
                results[current] = None
            else:
                results[current] = np.array(int(np.prod(s.dims)), dtype=np.int64)
            continue
        if not expanded:
            stack.append((current, True))
            for i in inputs:
                if i not in results:
                    stack.append((i, False))
            continue
        args = [results.get(i) if i else None for i in node.input]
        if any(a is None for a, i in zip(args, node.input) if i):
            value = None
        else:
            try:
                outs = _eval_node(view, node, args)
            except Exception:  # noqa: BLE001 - an unfoldable chain is simply not a constant
                outs = None
            value = None
            if outs is not None:
                for o, v in zip(node.output, outs):
                    if o == current:
                        value = v
        if value is not None and value.size > FOLD_MAX_ELEMENTS:
            value = None
        results[current] = value
        if current != name:
            view._const_cache[current] = value
    return results.get(name)


def _small_array(t: TensorProto) -> np.ndarray | None:
    count = int(np.prod(t.dims)) if t.dims else 1
    if t.data_location == TensorProto.EXTERNAL:
        return None
    if count > FOLD_MAX_ELEMENTS:
        return numpy_helper.to_array(t)  # weights: callers asked for the value itself
    return numpy_helper.to_array(t)


def _fold_shape(view: GraphView, node: NodeProto) -> np.ndarray | None:
    s = view.shape(node.input[0])
    if s is None or s.dims is None:
        return None
    dims = s.dims
    start = attr(node, "start", 0)
    end = attr(node, "end", None)
    sel = dims[start:end] if end is not None else dims[start:]
    if not all(isinstance(d, int) for d in sel):
        return None
    return np.asarray(sel, dtype=np.int64)


def _eval_node(view: GraphView, node: NodeProto, args: list) -> list[np.ndarray] | None:
    op = node.op_type
    opset = view.opset
    if op == "Constant":
        return [_constant_node_value(node)]
    if op == "Identity":
        return [args[0]]
    if op == "Cast":
        to = attr(node, "to")
        return [args[0].astype(helper.tensor_dtype_to_np_dtype(to))]
    if op == "Reshape":
        shape = [int(v) for v in args[1].reshape(-1)]
        allowzero = attr(node, "allowzero", 0)
        if not allowzero:
            shape = [args[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return [args[0].reshape(shape)]
    if op == "Flatten":
        axis = attr(node, "axis", 1)
        a = args[0]
        axis = axis + a.ndim if axis < 0 else axis
        return [a.reshape(int(np.prod(a.shape[:axis])), -1)]
    if op == "Concat":
        return [np.concatenate([a for a in args if a is not None], axis=attr(node, "axis"))]
    if op == "Transpose":
        perm = attr(node, "perm")
        return [np.transpose(args[0], perm)]
    if op == "ConstantOfShape":
        value = attr(node, "value")
        fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
        shape = [int(v) for v in args[0].reshape(-1)]
        return [np.full(shape, fill, dtype=np.asarray(fill).dtype)]
    if op in ("Unsqueeze", "Squeeze"):
        axes = attr(node, "axes") if opset < 13 else (
            [int(v) for v in args[1].reshape(-1)] if len(args) > 1 and args[1] is not None else None
        )
        a = args[0]
        if op == "Unsqueeze":
            out_rank = a.ndim + len(axes)
            axes = sorted(x + out_rank if x < 0 else x for x in axes)
            for x in axes:
                a = np.expand_dims(a, x)
            return [a]
        if axes is None:
            return [np.squeeze(a)]
        return [np.squeeze(a, axis=tuple(x + a.ndim if x < 0 else x for x in axes))]
    if op == "Gather":
        return [np.take(args[0], args[1], axis=attr(node, "axis", 0))]
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        a, b = args[0], args[1]
        if op == "Div" and a.dtype.kind in "iu":
            return [(a // b).astype(a.dtype)]
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum, "Min": np.minimum}[op]
        return [fn(a, b).astype(np.result_type(a, b))]
    if op == "Neg":
        return [-args[0]]
    if op == "Abs":
        return [np.abs(args[0])]
    if op == "Range":
        return [np.arange(args[0], args[1], args[2]).astype(args[0].dtype)]
    if op == "Expand":
        shape = [int(v) for v in args[1].reshape(-1)]
        return [args[0] * np.ones(shape, dtype=args[0].dtype)]
    if op == "Slice":
        return [_eval_slice(view, node, args)]
    return None


def _constant_node_value(node: NodeProto) -> np.ndarray | None:
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    return None


def slice_operands(view: GraphView, node: NodeProto) -> tuple[list[int], list[int], list[int] | None, list[int] | None] | None:
    """(starts, ends, axes or None, steps or None) of a Slice, in either opset form."""
    if view.opset < 10 or not (len(node.input) > 1 and node.input[1]):
        starts, ends, axes = attr(node, "starts"), attr(node, "ends"), attr(node, "axes")
        if starts is None or ends is None:
            return None
        return list(starts), list(ends), (list(axes) if axes is not None else None), None
    starts = view.const_ints(node.input[1])
    ends = view.const_ints(node.input[2]) if len(node.input) > 2 else None
    if starts is None or ends is None:
        return None
    axes = None
    if len(node.input) > 3 and node.input[3]:
        axes = view.const_ints(node.input[3])
        if axes is None:
            return None
    steps = None
    if len(node.input) > 4 and node.input[4]:
        steps = view.const_ints(node.input[4])
        if steps is None:
            return None
    return starts, ends, axes, steps


def _eval_slice(view: GraphView, node: NodeProto, args: list) -> np.ndarray:
    data = args[0]
    if view.opset < 10:
        starts, ends, axes = attr(node, "starts"), attr(node, "ends"), attr(node, "axes")
        steps = None
    else:
        starts = [int(v) for v in args[1].reshape(-1)]
        ends = [int(v) for v in args[2].reshape(-1)]
        axes = [int(v) for v in args[3].reshape(-1)] if len(args) > 3 and args[3] is not None else None
        steps = [int(v) for v in args[4].reshape(-1)] if len(args) > 4 and args[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = a + data.ndim if a < 0 else a
        dim = data.shape[a]
        index[a] = slice(*_clamp_slice(s, e, st, dim))
    return data[tuple(index)]


def _clamp_slice(start: int, end: int, step: int, dim: int) -> tuple[int | None, int | None, int]:
    """ONNX Slice bounds to Python's, clamped as the spec says."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        return start, end, step
    start = min(max(start, -1), dim - 1)
    end = min(max(end, -1), dim - 1)
    return start, (None if end < 0 else end), step


def slice_kept_range(start: int, end: int, dim: int | None) -> tuple[int, int | None] | None:
    """For a step-1 Slice on an axis of size `dim`: (dropped at front, dropped at end or None if unknown).

    Works with a dynamic `dim` when the bounds make it unnecessary: start >= 0
    and end negative (drop |end| at the end) or clamped to INT32/INT64 max.
    """
    if dim is not None:
        s, e, _ = _clamp_slice(start, end, 1, dim)
        e = max(e, s)
        return s, dim - e
    if start < 0:
        return None
    if end >= INT32_MAX:
        return start, 0
    if end < 0:
        return start, -end
    return None


def constant_node_tensor(view: GraphView, name: str) -> TensorProto | None:
    """The `value` tensor of the Constant node (in this view) that produces `name`."""
    p = view.producer_of(name)
    if p is None or p.op_type != "Constant" or p.domain not in ("", "ai.onnx"):
        return None
    for a in p.attribute:
        if a.name == "value" and a.HasField("t"):
            return a.t
    return None


def unsqueeze_axes(view: GraphView, node: NodeProto) -> list[int] | None:
    """Axes of an Unsqueeze/Squeeze in either opset form (None: unknown or all-unit squeeze)."""
    if view.opset < 13:
        value = attr(node, "axes")
        return list(value) if value is not None else None
    if len(node.input) < 2 or not node.input[1]:
        return None
    return view.const_ints(node.input[1])


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
