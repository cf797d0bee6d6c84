"""Finding the space-to-batch chain around a conv and planning its fold (without editing the graph)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from onnx import NodeProto

from ...graph import GraphView, walk_up
from ...refusal import Refusal
from ...symbolic import SHAPE_READERS, Domain, NeedPeriod, Sym, Unprovable
from .common import (
    AFTER_CONV_OPS, BEFORE_CONV_OPS, MAX_CHAIN, MAX_CLASSES, MAX_PERIOD, NO_PATTERN, constant_operand, conv_weight_shape,
)
from .trace import ChainTrace


def _data_consumers(view: GraphView, name: str) -> list[NodeProto]:
    return [n for n in view.consumers_of(name) if n.op_type not in SHAPE_READERS]


@dataclass
class ChainSide:
    """The layout ops on one side of the conv, in graph order, and why the walk stopped short, if it did.

    Not a refusal: `stop` (a tensor read elsewhere, an op that is not a layout op) only explains a chain
    that then fails to fold; the ops before it may still fold on their own.
    """

    nodes: list[NodeProto]
    stop: str | None = None


def walk_back(view: GraphView, conv: NodeProto) -> ChainSide:
    """The layout ops feeding the conv, in graph order (each output read by the next one only; Shape/Size
    readers do not count: they die with the chain). graph/layout's `walk_up`, then why it stopped."""
    node, nodes = walk_up(view, conv.input[0], MAX_CHAIN, BEFORE_CONV_OPS, reader=conv, ignored=SHAPE_READERS)
    stop = None
    if node is not None and len(nodes) < MAX_CHAIN:  # stopped before the limit: at another op, or a shared tensor
        if node.op_type not in BEFORE_CONV_OPS or node.domain not in ("", "ai.onnx"):
            stop = f"{node.op_type} {node.name} sits between the lowering and the conv (only layout ops may)"
        else:
            try:
                check_unshared(view, nodes[0].input[0] if nodes else conv.input[0])
            except Refusal as no:
                stop = no.reason
    for i, node in enumerate(nodes):  # start at the first Pad, else the first blocking op
        if node.op_type == "Pad":
            return ChainSide(nodes[i:], stop)
    for i, node in enumerate(nodes):
        if node.op_type in ("SpaceToDepth", "Reshape"):
            return ChainSide(nodes[i:], stop)
    return ChainSide(nodes, stop)


def walk_forward(view: GraphView, conv: NodeProto) -> ChainSide:
    """The layout ops (and per-channel constant Adds) reading the conv's output, in graph order.

    Not graph/layout's `walk_down`: that one tracks axis positions, which a Reshape, DepthToSpace or Slice
    here does not keep (the fold tracks factors instead, trace.py), passes an elementwise op reading the
    tensor as any input where a bias Add here needs a constant other operand, and counts Shape/Size readers.
    """
    nodes: list[NodeProto] = []
    name = conv.output[0]
    while len(nodes) < MAX_CHAIN:
        users = _data_consumers(view, name)
        if any(u.op_type in AFTER_CONV_OPS for u in users):
            try:
                check_unshared(view, name)
            except Refusal as no:
                return ChainSide(nodes, no.reason)
        if len(users) != 1 or view.is_graph_output(name):
            break
        node = users[0]
        if node.op_type not in AFTER_CONV_OPS or node.domain not in ("", "ai.onnx"):
            break
        if node.op_type == "Add":
            if view.ctx.ir_version < 4:  # moving a bias needs a new initializer, a graph input before IR 4
                break
            others = [i for i in node.input if i != name]
            if len(others) != 1 or constant_operand(view, others[0]) is None:
                break
        elif node.input[0] != name or name in list(node.input)[1:]:
            break
        nodes.append(node)
        name = node.output[0]
    return ChainSide(nodes)


def check_unshared(view: GraphView, name: str) -> None:
    """Refusal where a tensor cannot be absorbed into a chain (read by more than the next op)."""
    if view.is_graph_output(name):
        raise Refusal(f"{name} is a graph output")
    users = _data_consumers(view, name)
    if len(users) > 1:
        raise Refusal(f"{name} has another consumer ({users[1].op_type} {users[1].name})".replace(" )", ")"),
                      users)


def is_candidate(back: list[NodeProto], forward: list[NodeProto]) -> bool:
    ops_back = {n.op_type for n in back}
    ops_fwd = {n.op_type for n in forward}
    if "SpaceToDepth" in ops_back or "DepthToSpace" in ops_fwd:
        return True
    return "Reshape" in ops_back and "Reshape" in ops_fwd





@dataclass
class FoldPlan:
    """Everything needed to replace one chain by one dilated conv."""

    x: str
    y: str
    chain: list[NodeProto]
    dead: list[NodeProto]
    axes: dict[int, tuple[int, int, int]]  # input axis -> (dilation, pad begin, pad end)
    conv_axes: list[int | None]
    x_roles: list
    conv_in_roles: list
    conv_out_roles: list
    y_roles: list
    details: dict = field(default_factory=dict)
    moved: list = field(default_factory=list)  # (Add node, per-channel values) to apply after the new conv


ELEMENTWISE = {
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
    "HardSwish", "Gelu", "Mish", "Clip", "Identity", "Neg", "Abs", "Exp", "Log", "Sqrt", "Erf", "Cast",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "PRelu", "Where",
}


MAX_SHAPE_WALK = 32


def _static_dims(view: GraphView, name: str, derived: dict[str, list[int | None]]) -> list[int | None] | None:
    """Dims of a tensor (int, or None where dynamic): from shape inference, from an earlier fold in this
    pass, or by broadcasting through elementwise ops (shape inference loses the rank after a
    shape-computed Reshape, so a second chain in a stack needs this)."""
    todo, order = [name], []
    seen: set[str] = set()
    while todo and len(order) <= MAX_SHAPE_WALK:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        order.append(current)
        if _known_dims(view, current, derived) is not None:
            continue
        node = view.producer_of(current)
        if node is None or node.op_type not in ELEMENTWISE or node.domain not in ("", "ai.onnx"):
            return None
        todo.extend(i for i in node.input if i)
    if todo:
        return None
    for current in reversed(order):
        if _known_dims(view, current, derived) is not None:
            continue
        node = view.producer_of(current)
        shapes = [derived.get(i) or _known_dims(view, i, derived) for i in node.input if i]
        if any(sh is None for sh in shapes):
            return None
        derived[current] = _broadcast(shapes)
    return _known_dims(view, name, derived)


def _known_dims(view: GraphView, name: str, derived: dict[str, list[int | None]]) -> list[int | None] | None:
    if name in derived:
        return derived[name]
    s = view.shape(name)
    if s is None or s.dims is None:
        return None
    return [d if isinstance(d, int) and d >= 0 else None for d in s.dims]


def _broadcast(shapes: list[list[int | None]]) -> list[int | None]:
    rank = max(len(sh) for sh in shapes)
    out: list[int | None] = []
    for i in range(rank):
        dims = [sh[i - rank + len(sh)] for sh in shapes if i - rank + len(sh) >= 0]
        static = {d for d in dims if d is not None and d != 1}
        if static:
            out.append(static.pop() if len(static) == 1 else None)
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return out


def _x_dims(view: GraphView, x: str, derived: dict[str, list[int | None]]) -> tuple[list[int | None], list[int]]:
    """Static dims of x (None where dynamic) and the indices of its dynamic dims."""
    dims = _static_dims(view, x, derived)
    if dims is None:
        raise Unprovable(f"the rank of {x} is unknown")
    return dims, [i for i, d in enumerate(dims) if d is None]


def _run_trace(view, domain, x, static_dims, dynamic, back, conv, weight_shape, later, shared) -> ChainTrace:
    """Follow the chain from x through the conv on one domain."""
    dims = [domain.const(d) if d is not None else domain.var(dynamic.index(a)) for a, d in enumerate(static_dims)]
    trace = ChainTrace(view, domain, x, dims, later, shared)
    for node in back:
        trace.step(node)
    if not trace.saw_block:
        raise Unprovable(NO_PATTERN)
    trace.conv(conv, weight_shape)
    return trace


def plan_fold(view: GraphView, conv: NodeProto, back: list[NodeProto], forward: list[NodeProto],
               derived: dict[str, list[int | None]]) -> FoldPlan:
    """Prove the chain around `conv` is one dilated conv on every residue class; raise Unprovable if not."""
    weight_shape = conv_weight_shape(view, conv.input[1]) if len(conv.input) > 1 else None
    if weight_shape is None:
        raise Unprovable("the conv weight's shape is unknown")
    x = back[0].input[0] if back else conv.input[0]
    static_dims, dynamic = _x_dims(view, x, derived)
    later = {n.output[0] for n in back} | {conv.output[0]} | {n.output[0] for n in forward}
    periods = [1] * len(dynamic)
    traces: list[ChainTrace] = []
    end = None
    for _ in range(64):
        try:
            traces, end = _trace_all_classes(view, x, static_dims, dynamic, periods, back, conv, weight_shape,
                                             forward, later)
            break
        except NeedPeriod as need:
            periods[need.var] *= need.factor
            if periods[need.var] > MAX_PERIOD or math.prod(periods) > MAX_CLASSES:
                raise Unprovable("the shape arithmetic needs too many residue classes") from None
    if not traces:
        raise Unprovable("the shape arithmetic needs too many residue classes")
    first = traces[0]
    results = [t.result() for t in traces]
    axes, conv_axes = results[0]
    if any(r != results[0] for r in results[1:]):
        raise Unprovable("the folded pads differ between input sizes")
    used = forward[: end + 1]
    y = used[-1].output[0] if used else conv.output[0]
    dead = _dead_shape_nodes(view, back + used, traces, x, conv)
    _check_other_consumers(view, back, conv, used, dead)
    n_role = "n" if first.n_axis is not None else None
    spatial = [("s", a) if a is not None else None for a in conv_axes]
    conv_in = [n_role, "c" if first.c_axis is not None else None] + spatial
    conv_out = [n_role, "m" if first.out_channels != 1 else None] + spatial
    x_roles: list = []
    for a, d in enumerate(static_dims):
        if a == first.n_axis:
            x_roles.append("n")
        elif a == first.c_axis:
            x_roles.append("c")
        elif a in conv_axes:  # a unit axis of x too, when the chain pads it into a spatial axis
            x_roles.append(("s", a))
        elif d == 1:
            x_roles.append(None)
        else:
            raise Unprovable(f"axis {a} of the chain input does not reach the conv")
    details = {
        "pattern": "space_to_batch",
        "dynamic": bool(dynamic),
        "blocks": [first.blocks.get(a, 1) if a is not None else 1 for a in conv_axes],
        "residue_classes": len(traces),
        "chain_nodes_removed": len(back) + len(used),
        "shape_nodes_removed": len(dead),
    }
    y_roles = first.roles()
    for src, dst in ((x_roles, conv_in), (conv_out, y_roles)):  # checked before the graph is touched
        if {r for r in src if r is not None} != {r for r in dst if r is not None}:
            raise Unprovable("the chain's input or output layout does not hold the conv's axes")
    y_dims = []
    for role in y_roles:
        if role is None:
            y_dims.append(1)
        elif role == "n":
            y_dims.append(static_dims[first.n_axis])
        elif role == "m":
            y_dims.append(first.out_channels)
        else:
            a = role[1]
            dilation, begin, end_pad = axes[a]
            kk = first.inner[a][0]
            size = static_dims[a]
            y_dims.append(None if size is None else size + begin + end_pad - dilation * (kk - 1))
    derived[y] = y_dims
    return FoldPlan(x, y, back + used, dead, axes, conv_axes, x_roles, conv_in, conv_out, y_roles, details,
                    first.moved)


def _trace_all_classes(view, x, static_dims, dynamic, periods, back, conv, weight_shape, forward, later):
    """Run the chain on every residue class; the first class decides where the chain ends."""
    traces: list[ChainTrace] = []
    shared: dict[str, Sym] = {}
    end = None
    for combo in itertools.product(*[range(p) for p in periods]):
        def fresh() -> ChainTrace:
            domain = Domain(tuple(periods), tuple(combo), [1 if r == 0 else 0 for r in combo])
            return _run_trace(view, domain, x, static_dims, dynamic, back, conv, weight_shape, later, shared)

        trace = fresh()
        if end is None:
            end = _find_end(trace, forward)
            trace = fresh()
        for node in forward[: end + 1]:
            trace.step(node)
        if trace.roles() is None:
            raise Unprovable("the chain does not come back to a plain layout for every input size")
        traces.append(trace)
    return traces, end


def _find_end(trace: ChainTrace, forward: list[NodeProto]) -> int:
    """Index of the last forward node after which the layout is plain again."""
    end = None
    error: Unprovable | None = None
    for i, node in enumerate(forward):
        try:
            trace.step(node)
        except Unprovable as exc:
            error = exc
            break
        if trace.roles() is not None:
            end = i
    if end is None:
        raise error or Unprovable("the conv output is not brought back to the input's layout")
    return end


def _dead_shape_nodes(view: GraphView, chain: list[NodeProto], traces: list[ChainTrace], keep: str,
                      conv: NodeProto) -> list[NodeProto]:
    """Nodes left without a reader once the chain is gone (iterative dead-code removal, linear).

    It starts from the nodes the shape interpreter visited and the Shape/Size
    readers of chain tensors, and follows producers of whatever dies; `keep`
    (the chain input, read by the folded conv) and the conv itself stay (a
    Shape reader of the conv's output, as tf2onnx's transpose optimizer
    writes it, dies, and must not take the conv with it).
    """
    removed = {id(n) for n in chain}
    work: list[NodeProto] = []
    seen: set[int] = set()
    for trace in traces:
        for node in trace.interp.visited:
            if id(node) not in seen:
                seen.add(id(node))
                work.append(node)
    for node in chain:
        for o in node.output:
            for user in view.consumers_of(o):
                if user.op_type in SHAPE_READERS and id(user) not in seen:
                    seen.add(id(user))
                    work.append(user)

    def unused(node: NodeProto) -> bool:
        for o in node.output:
            if not o:
                continue
            if o == keep or view.is_graph_output(o):
                return False
            if any(id(u) not in removed for u in view.consumers_of(o)):
                return False
        return True

    dead: list[NodeProto] = []
    work.reverse()
    while work:
        node = work.pop()
        if id(node) in removed or node is conv or not unused(node):
            continue
        removed.add(id(node))
        dead.append(node)
        for i in node.input:
            p = view.producer_of(i) if i else None
            if p is not None and id(p) not in removed:
                work.append(p)
    order = {id(n): i for i, n in enumerate(view.nodes)}
    dead.sort(key=lambda n: order.get(id(n), 0))
    return dead


def _check_other_consumers(view, back, conv, forward, dead) -> None:
    gone = {id(n) for n in back} | {id(n) for n in forward} | {id(n) for n in dead} | {id(conv)}
    tensors = [n.output[0] for n in back] + [conv.output[0]] + [n.output[0] for n in forward[:-1]]
    if not forward:
        tensors = tensors[:-1]
    for name in tensors:
        if view.is_graph_output(name):
            raise Unprovable(f"{name} is a graph output")
        for user in view.consumers_of(name):
            if id(user) not in gone:
                raise Unprovable(f"{name} has another consumer ({user.op_type} {user.name})")
