"""The rewritten regions: what the original and the rewritten graph do differently, grouped for drawing.

Every graph body is diffed on its own: the main graph, each If/Loop/Scan
body (any depth) and each model-local function, matched between the two
models by their path ("main/If_0/then_branch", "function:Name", as the
records' `graph` field names them). Inside a body, nodes are matched by
name (a nameless node by op type and first output).
A node is removed, added, changed (op, attributes, inputs or outputs differ)
or reshaped (only its inferred output shapes differ, e.g. a lifted Relu).
Changed nodes that touch a common tensor (initializers aside) belong to one
region; each region is drawn before and after with its unchanged direct
neighbours (the halo) and tied to the records naming one of its nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import onnx
from onnx import helper

from ..graph.attrs import subgraphs

# A side with more nodes than this is drawn in part (the first ones in graph order), with a count of the rest.
MAX_DRAWN = 40
MAX_HALO = 6


@dataclass
class DrawNode:
    """One box of a drawing."""

    key: str
    op_type: str
    name: str
    status: str  # removed | added | changed | reshaped | halo
    shapes: list[str]
    outputs: list[str] = field(default_factory=list)  # tensor names, to find the node a layer pair names
    changes: list[str] = field(default_factory=list)  # "pads: [2, 2] -> [2, 0]"
    attrs: list[str] = field(default_factory=list)  # a few attributes, for added and removed nodes


@dataclass
class Side:
    """One drawing: the region's nodes in one graph, the edges between them (by index) and what was left out."""

    nodes: list[DrawNode]
    edges: list[tuple[int, int]]
    hidden: int = 0


@dataclass
class Region:
    """A connected group of differences, before and after, and the records that name its nodes."""

    index: int
    before: Side
    after: Side
    records: list[dict[str, Any]]
    counts: dict[str, int]
    graph: str = "main"  # the body's path, as records name it


class _Graph:
    """A graph body's nodes by key, with producers, consumers and inferred shapes."""

    def __init__(self, body: onnx.GraphProto | onnx.FunctionProto | None, shapes: dict[str, str]) -> None:
        inits = [*body.initializer, *(s.values for s in body.sparse_initializer)] \
            if isinstance(body, onnx.GraphProto) else []
        self.initializers = {t.name for t in inits}
        self.nodes: dict[str, onnx.NodeProto] = {}
        self.order: dict[str, int] = {}
        seen: dict[str, int] = {}
        for i, node in enumerate(body.node if body is not None else []):
            base = node.name or f"{node.op_type}:{node.output[0] if node.output else i}"
            seen[base] = seen.get(base, 0) + 1
            key = base if seen[base] == 1 else f"{base}#{seen[base]}"
            self.nodes[key] = node
            self.order[key] = i
        self.producer: dict[str, str] = {}
        self.consumers: dict[str, list[str]] = {}
        for key, node in self.nodes.items():
            for t in node.output:
                if t:
                    self.producer[t] = key
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(key)
        self.shapes = shapes

    def tensors(self, key: str) -> list[str]:
        node = self.nodes[key]
        return [t for t in [*node.input, *node.output] if t and t not in self.initializers]

    def out_shapes(self, key: str) -> list[str]:
        return [self.shapes.get(t, "?") for t in self.nodes[key].output if t]


def bodies(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.GraphProto | onnx.FunctionProto]]:
    """(path, body) of the main graph, every subgraph at any depth and every model-local function, parents first.

    Paths are built as the rule engine builds them (graph/core.iter_views):
    a body is "<parent>/<node name or op type>/<attribute>".
    """
    stack: list[tuple[str, Any]] = [(f"function:{f.name}", f) for f in reversed(model.functions)]
    stack.append(("main", model.graph))
    while stack:
        path, body = stack.pop()
        yield path, body
        children = [(f"{path}/{node.name or node.op_type}/{name}", g)
                    for node in body.node for name, g in subgraphs(node)]
        stack.extend(reversed(children))


def _inferred_shapes(model: onnx.ModelProto) -> dict[tuple[str, int], dict[str, str]]:
    """Body (path, n) -> tensor name -> '1x16x64' from shape inference (what the model declares when inference fails)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model shape inference rejects still gets drawn, without the shapes it cannot give
        inferred = model
    out: dict[tuple[str, int], dict[str, str]] = {}
    for key, body in _numbered(inferred).items():
        known = out.setdefault(key, {})
        infos = [*body.input, *body.value_info, *body.output] if isinstance(body, onnx.GraphProto) \
            else list(getattr(body, "value_info", []))
        for vi in infos:
            t = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and t.HasField("shape"):
                known[vi.name] = "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                                          for d in t.shape.dim) or "scalar"
    return out


def _attr_values(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            continue  # a body is diffed as a graph of its own, not as one changed attribute of its owner
        value = helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            value = f"<{type(value).__name__} {len(value.SerializeToString())} bytes>#{hash(value.SerializeToString())}"
        elif isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value]
        out[a.name] = value
    return out


def _short(value: Any) -> str:
    text = str(value).split(">#")[0] + (">" if ">#" in str(value) else "")
    return text if len(text) <= 40 else text[:39] + "…"


def _compare(a: onnx.NodeProto, b: onnx.NodeProto, ga: _Graph, gb: _Graph, ka: str, kb: str) -> tuple[str | None, list[str]]:
    """(status or None when equal, the changed attributes as text)."""
    va, vb = _attr_values(a), _attr_values(b)
    changes = [f"{k}: {_short(va.get(k, '-'))} -> {_short(vb.get(k, '-'))}" for k in sorted(set(va) | set(vb))
               if va.get(k) != vb.get(k)]
    if changes or a.op_type != b.op_type or a.domain != b.domain or list(a.input) != list(b.input) or \
            list(a.output) != list(b.output):
        return "changed", changes
    if ga.out_shapes(ka) != gb.out_shapes(kb):
        return "reshaped", []
    return None, []


def _find(parent: dict[str, str], x: str) -> str:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _strings(value: Any, depth: int = 0) -> Iterable[str]:
    """Every string in a record's details (node names it mentions), two levels deep."""
    if isinstance(value, str):
        yield value
    elif depth < 3 and isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, depth + 1)
    elif depth < 3 and isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v, depth + 1)


def find_regions(original: onnx.ModelProto, rewritten: onnx.ModelProto,
                 records: list[dict[str, Any]] | None = None) -> list[Region]:
    """The regions where `rewritten` differs from `original`, body by body (main graph first, then each body in
    walk order), in graph order inside a body, each tied to the records of its body naming one of its nodes."""
    shapes_a, shapes_b = _inferred_shapes(original), _inferred_shapes(rewritten)
    found_a, found_b = _numbered(original), _numbered(rewritten)
    regions: list[Region] = []
    for key in [*found_a, *(k for k in found_b if k not in found_a)]:
        path = key[0]
        ga = _Graph(found_a.get(key), shapes_a.get(key, {}))
        gb = _Graph(found_b.get(key), shapes_b.get(key, {}))
        mine = [r for r in records or [] if (r.get("graph") or "main") == path]
        regions.extend(_body_regions(path, ga, gb, mine, len(regions) + 1))
    return regions


def _numbered(model: onnx.ModelProto) -> dict[tuple[str, int], Any]:
    """Bodies by (path, n): two nameless If nodes give their bodies one path; the n-th of a path meets the n-th."""
    out: dict[tuple[str, int], Any] = {}
    seen: dict[str, int] = {}
    for path, body in bodies(model):
        seen[path] = seen.get(path, 0) + 1
        out[(path, seen[path])] = body
    return out


def _body_regions(path: str, ga: _Graph, gb: _Graph, records: list[dict[str, Any]], start: int) -> list[Region]:
    """The regions of one body, numbered from `start`."""
    status_a: dict[str, str] = {}
    status_b: dict[str, str] = {}
    changes: dict[str, list[str]] = {}
    for key in ga.nodes:
        if key not in gb.nodes:
            status_a[key] = "removed"
            continue
        status, diff = _compare(ga.nodes[key], gb.nodes[key], ga, gb, key, key)
        if status:
            status_a[key] = status_b[key] = status
            changes[key] = diff
    for key in gb.nodes:
        if key not in ga.nodes:
            status_b[key] = "added"
    # Side-qualified ids: "a:" + key in the original, "b:" + key in the rewritten; a matched key is one element.
    ids = {f"a:{k}" for k in status_a} | {f"b:{k}" for k in status_b}
    parent = {i: i for i in ids}

    def union(x: str, y: str) -> None:
        rx, ry = _find(parent, x), _find(parent, y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)

    for key in status_a:
        if key in status_b:
            union(f"a:{key}", f"b:{key}")
    for side, graph, status in (("a", ga, status_a), ("b", gb, status_b)):
        by_tensor: dict[str, str] = {}
        for key in status:
            for t in graph.tensors(key):
                if t in by_tensor:
                    union(by_tensor[t], f"{side}:{key}")
                else:
                    by_tensor[t] = f"{side}:{key}"
        # The other graph's tensors of the same name (a removed Slice's output now made by the changed Conv).
        other, other_status = (gb, status_b) if side == "a" else (ga, status_a)
        other_side = "b" if side == "a" else "a"
        for key in other_status:
            for t in other.tensors(key):
                if t in by_tensor:
                    union(by_tensor[t], f"{other_side}:{key}")
    groups: dict[str, list[str]] = {}
    for i in sorted(ids):
        groups.setdefault(_find(parent, i), []).append(i)

    def first(group: list[str]) -> tuple[int, int]:
        a = [ga.order[i[2:]] for i in group if i.startswith("a:")]
        b = [gb.order[i[2:]] for i in group if i.startswith("b:")]
        return (min(a) if a else 1 << 60, min(b) if b else 1 << 60)

    regions = []
    for n, group in enumerate(sorted(groups.values(), key=first), start=start):
        keys_a = sorted({i[2:] for i in group if i.startswith("a:")}, key=ga.order.__getitem__)
        keys_b = sorted({i[2:] for i in group if i.startswith("b:")}, key=gb.order.__getitem__)
        before = _side(ga, keys_a, status_a, changes)
        after = _side(gb, keys_b, status_b, changes)
        names = set(keys_a) | set(keys_b) | {ga.nodes[k].name for k in keys_a} | {gb.nodes[k].name for k in keys_b}
        names.discard("")
        tied = [r for r in records if r.get("node") in names or
                (r.get("status") == "rewritten" and any(s in names for s in _strings(r.get("details"))))]
        counts: dict[str, int] = {}
        for k in keys_a:
            counts[status_a[k]] = counts.get(status_a[k], 0) + (status_a[k] == "removed")
        for k in keys_b:
            counts[status_b[k]] = counts.get(status_b[k], 0) + 1
        regions.append(Region(n, before, after, tied, {k: v for k, v in counts.items() if v}, path))
    return regions


def _side(graph: _Graph, keys: list[str], status: dict[str, str], changes: dict[str, list[str]]) -> Side:
    """The drawing of `keys` in `graph`: the first MAX_DRAWN of them, their halo, the edges among them."""
    hidden = max(0, len(keys) - MAX_DRAWN)
    keys = keys[:MAX_DRAWN]
    inside = set(keys)
    halo: list[str] = []
    for key in keys:
        node = graph.nodes[key]
        near = [graph.producer.get(t) for t in node.input if t] + \
               [c for t in node.output if t for c in graph.consumers.get(t, [])]
        for k in near:
            if k is not None and k not in inside and k not in status and k not in halo:
                halo.append(k)
    halo = sorted(halo, key=graph.order.__getitem__)[:MAX_HALO]
    drawn = sorted([*keys, *halo], key=graph.order.__getitem__)
    # A Constant feeding only drawn nodes is a line in its consumers' boxes, not a box of its own.
    folded: dict[str, list[str]] = {}
    for k in list(drawn):
        node = graph.nodes[k]
        users = {c for t in node.output if t for c in graph.consumers.get(t, [])}
        if node.op_type == "Constant" and users and users <= set(drawn):
            drawn.remove(k)
            for c in users:
                folded.setdefault(c, []).append(status.get(k, "unchanged"))
    index = {k: i for i, k in enumerate(drawn)}
    nodes = []
    for k in drawn:
        node = graph.nodes[k]
        st = status.get(k, "halo")
        attrs = [] if st not in ("added", "removed") else [f"{a}: {_short(v)}" for a, v in _attr_values(node).items()
                                                         if a in ("kernel_shape", "pads", "dilations", "strides",
                                                                  "group", "axes", "perm")]
        for how in sorted(set(folded.get(k, []))):
            n = folded[k].count(how)
            attrs.append(f"+{n} Constant input{'s' if n != 1 else ''} ({how})")
        nodes.append(DrawNode(k, node.op_type, node.name, st, graph.out_shapes(k), [t for t in node.output if t],
                              changes.get(k, []), attrs))
    edges = []
    for k in drawn:
        for t in graph.nodes[k].input:
            p = graph.producer.get(t)
            if t and p in index and (index[p], index[k]) not in edges:
                edges.append((index[p], index[k]))
    return Side(nodes, edges, hidden)
