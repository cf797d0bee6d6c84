"""Rank regions: lift a connected set of ops by one unit axis, or lower it, as a whole.

Lifting a 1D network to 2D one convolution at a time leaves an `Unsqueeze`
before and a `Squeeze` after every conv. Instead, the region engine decides
first which nodes change rank together (a flood fill from the convolutions
through ops that do not care about rank: activations, normalizations, pools,
residual adds, channel concat/split, ...), then rewrites every node of the
region and wraps only the tensors that cross its border: one `Unsqueeze` per
tensor entering, one `Squeeze` per tensor leaving. Lowering is the same walk
backwards: a region of tensors with a unit axis, entered through the
`Unsqueeze`s exporters put there, loses that axis, and the wrappers cancel.

Vocabulary: the *small* form of a tensor has rank S, the *big* form rank S+1
with a unit axis at position `a` (an index in the big form). Lifting turns
small into big, lowering big into small. Each region tensor carries its own
`a` (a Transpose moves it); lifting keeps one `a` for the whole region.

Everything here is linear: each node joins at most once, each tensor is
assigned once, a node waiting for an operand is retried only when that operand
joins. No recursion.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from onnx import NodeProto, TensorProto, numpy_helper

from ..conv import CONV_OPS, WEIGHT_INPUT, ConvAttrError, ConvAttrs
from ..graph import GraphView, attr, constant_node_tensor, make_squeeze, make_unsqueeze, set_attr, unsqueeze_axes

# Ops whose output has the input's shape, with one data input (slot 0) and
# scalar or shape-free parameters in the other slots.
SHAPE_PRESERVING = frozenset({
    "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil",
    "Round", "Erf", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
    "Atanh", "Sign", "Not", "IsNaN", "IsInf", "Gelu", "Mish", "ThresholdedRelu", "Shrink",
    "Identity", "Cast", "CastLike", "Clip", "Dropout", "BitwiseNot",
})
# Elementwise ops with numpy broadcasting over every input.
ELEMENTWISE = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "Mod", "BitShift", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor", "PRelu",
})
# Per-channel normalizations: data in slot 0, per-channel parameters elsewhere.
CHANNEL_NORMS = frozenset({"BatchNormalization", "InstanceNormalization", "LRN", "GroupNormalization"})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
GLOBAL_POOLS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
REDUCES = frozenset({
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
})
SOFTMAXES = frozenset({"Softmax", "LogSoftmax", "Hardmax"})
QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
# Ops a region may pull in backwards (their output is an entry only region nodes read):
# the entry then moves to their input. Shape-preserving, so the unit axis stays put.
PULLABLE = SHAPE_PRESERVING | QDQ | CHANNEL_NORMS | POOLS | GLOBAL_POOLS | frozenset({"Transpose", "Pad", "Slice"})


# ------------------------------------------------------------------ results


@dataclass
class Block:
    """The node cannot join the region, and why."""

    reason: str


@dataclass
class Wait:
    """The node can join once `tensor` is in the region (it would cost a wrapper now)."""

    tensor: str


@dataclass
class NodePlan:
    """How one node joins a region.

    data: input slot -> unit axis of a region-form operand.
    consts: input slot -> local axis to insert/remove in a constant operand.
    bcasts: input slot -> local axis of a lower-rank, non-constant operand (own wrapper).
    weights: input slot -> axis of a convolution weight (reshaped in place when possible).
    outs: output slot -> unit axis.
    edit: attribute/operand changes of the node itself, run at rewrite time.
    """

    node: NodeProto
    data: dict[int, int] = field(default_factory=dict)
    outs: dict[int, int] = field(default_factory=dict)
    consts: dict[int, int] = field(default_factory=dict)
    bcasts: dict[int, int] = field(default_factory=dict)
    weights: dict[int, int] = field(default_factory=dict)
    edit: Callable[["RegionEngine"], None] | None = None
    info: dict = field(default_factory=dict)


Rule = Callable[["RegionEngine", NodeProto, str, int, int, bool], "NodePlan | Block | Wait"]


# ------------------------------------------------------------- axis helpers


def normalize(axis: int, rank: int) -> int | None:
    n = axis + rank if axis < 0 else axis
    return n if 0 <= n < rank else None


def to_big(i: int, a: int) -> int:
    """Small-form axis i in the big form with the unit axis at a."""
    return i if i < a else i + 1


def to_small(i: int, a: int) -> int | None:
    """Big-form axis i in the small form (None for the unit axis itself)."""
    if i == a:
        return None
    return i if i < a else i - 1


def wrapper_axes(view: GraphView, node: NodeProto, big_rank: int) -> list[int] | None:
    """Normalized axes of an Unsqueeze (against its output rank) or Squeeze (its input rank)."""
    if node.op_type not in ("Unsqueeze", "Squeeze") or node.domain not in ("", "ai.onnx"):
        return None
    axes = unsqueeze_axes(view, node)
    if axes is None:
        return None
    out = [normalize(x, big_rank) for x in axes]
    return None if any(x is None for x in out) else sorted(out)


def is_insert_wrapper(view: GraphView, node: NodeProto | None, a: int, big_rank: int) -> bool:
    """An Unsqueeze that inserts exactly axis `a` into a rank big_rank-1 tensor."""
    return node is not None and node.op_type == "Unsqueeze" and wrapper_axes(view, node, big_rank) == [a]


def is_remove_wrapper(view: GraphView, node: NodeProto | None, a: int, big_rank: int) -> bool:
    """A Squeeze that removes exactly axis `a` of a rank big_rank tensor."""
    return node is not None and node.op_type == "Squeeze" and wrapper_axes(view, node, big_rank) == [a]


def transpose_perm(node: NodeProto, rank: int) -> list[int]:
    perm = attr(node, "perm")
    return list(perm) if perm is not None else list(range(rank - 1, -1, -1))


def unit_proven(view: GraphView, name: str, a: int, big_rank: int) -> bool:
    """Whether `name` (rank big_rank) has size 1 on axis `a`: from shapes, or from the Unsqueeze that made it.

    Walks back through ops that keep a size of 1 on that axis (shape-preserving
    ops, norms, Slice/Pad that leave it alone, pools and convs with a unit
    kernel there, Split/Concat on another axis, broadcasting elementwise ops);
    every branch must end at a known size of 1. Bounded and iterative.
    """
    pending = [(name, a)]
    seen: set[tuple[str, int]] = set()
    while pending:
        name, a = pending.pop()
        if (name, a) in seen:
            continue
        seen.add((name, a))
        if len(seen) > 64:
            return False
        s = view.shape(name)
        if s is not None and s.dims is not None and len(s.dims) == big_rank and s.dims[a] == 1:
            continue
        p = view.producer_of(name)
        if p is None or p.domain not in ("", "ai.onnx"):
            return False
        if is_insert_wrapper(view, p, a, big_rank):
            continue
        sources = _unit_sources(view, p, name, a, big_rank)
        if sources is None:
            return False
        pending.extend(sources)
    return True


def _unit_sources(view: GraphView, node: NodeProto, out: str, a: int, rank: int) -> list[tuple[str, int]] | None:
    """The (tensor, axis) pairs that must all be 1 for `node`'s output `out` to be 1 on axis `a`; None: unknown."""
    op = node.op_type
    if op == "Transpose":
        perm = transpose_perm(node, rank)
        return [(node.input[0], perm[a])] if len(perm) == rank else None
    if op in SHAPE_PRESERVING or op in QDQ or op in CHANNEL_NORMS:
        return [(node.input[0], a)]
    if op in ("Slice", "Pad"):
        return [(node.input[0], a)] if _keeps_axis_size(view, node, a, rank) else None
    if op in GLOBAL_POOLS:
        return [] if a >= 2 else None
    if op in POOLS:
        kernel, pads = attr(node, "kernel_shape", None), attr(node, "pads", None)
        j = a - 2
        if j < 0 or kernel is None or len(kernel) != rank - 2 or kernel[j] != 1:
            return None
        if pads is not None and (len(pads) != 2 * (rank - 2) or pads[j] or pads[rank - 2 + j]):
            return None
        return [(node.input[0], a)] if node.output[0] == out else None
    if op in CONV_OPS:
        w = view.shape(node.input[WEIGHT_INPUT[op]])
        try:
            attrs = ConvAttrs.from_node(node, w.dims if w is not None and w.dims is not None else None)
        except ConvAttrError:
            return None
        j = a - 2
        if j < 0 or attrs.rank != rank - 2 or attrs.droppable_axis_reason(j):
            return None
        return [(node.input[0], a)]
    if op in ("Split", "Concat"):
        axis = normalize(int(attr(node, "axis", 0)), rank)
        if axis is None or axis == a:
            return None
        return [(node.input[0], a)] if op == "Split" else [(i, a) for i in node.input if i]
    if op in ELEMENTWISE:
        sources = []
        for i in node.input:
            if not i:
                continue
            s = view.shape(i)
            if s is None or s.dims is None or len(s.dims) > rank:
                return None
            local = a - (rank - len(s.dims))  # broadcasting aligns operands to the last axes
            if local < 0 or s.dims[local] == 1:
                continue
            if len(s.dims) != rank:
                return None
            sources.append((i, a))
        return sources
    return None


def _keeps_axis_size(view: GraphView, node: NodeProto, a: int, rank: int) -> bool:
    """A Slice that does not slice axis `a`, or a Pad that pads it by 0 (both with constant operands)."""
    if node.op_type == "Slice":
        if view.opset < 10:
            starts, axes = attr(node, "starts", None), attr(node, "axes", None)
        else:
            starts = view.const_ints(node.input[1]) if len(node.input) > 1 else None
            axes = view.const_ints(node.input[3]) if len(node.input) > 3 and node.input[3] else None
            if axes is None and len(node.input) > 3 and node.input[3]:
                return False
        if axes is None:
            if starts is None:
                return False
            axes = list(range(len(starts)))
        return all(normalize(int(x), rank) not in (a, None) for x in axes)
    if view.opset < 11:
        pads = attr(node, "pads", None) if view.opset >= 2 else attr(node, "paddings", None)
    else:
        pads = view.const_ints(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    if pads is None:
        return False
    if len(node.input) > 3 and node.input[3]:
        axes = view.const_ints(node.input[3])
        if axes is None:
            return False
        axes = [normalize(int(x), rank) for x in axes]
        if None in axes or len(pads) != 2 * len(axes):
            return False
        return a not in axes or (pads[axes.index(a)] == 0 and pads[len(axes) + axes.index(a)] == 0)
    return len(pads) == 2 * rank and pads[a] == 0 and pads[rank + a] == 0


def const_dims(view: GraphView, name: str) -> list[int] | None:
    """Dims of a constant this view may edit or copy: an initializer, or a Constant node here."""
    t = view.initializer(name)
    if t is not None:
        return [int(d) for d in t.dims]
    tensor = constant_node_tensor(view, name)
    if tensor is not None:
        return [int(d) for d in tensor.dims]
    p = view.producer_of(name)
    if p is not None and p.op_type == "Constant":
        value = view.const_value(name)
        return list(value.shape) if value is not None else None
    return None


def set_tensor_dims(view: GraphView, tensor: TensorProto, name: str, dims: Sequence[int]) -> None:
    """Reshape a constant in place (its dims only: no data is copied).

    Under IR < 4 every initializer is also declared as a graph input; that
    declaration is updated too, so the model stays valid.
    """
    del tensor.dims[:]
    tensor.dims.extend(dims)
    if not view.is_function and name in view.input_set:
        for vi in view.body.input:
            if vi.name == name and vi.type.HasField("tensor_type"):
                shape = vi.type.tensor_type.shape
                del shape.dim[:]
                for d in dims:
                    shape.dim.add().dim_value = d


# ----------------------------------------------------------------- the engine


class RegionEngine:
    """Flood-fills one region kind (lift or lower) over one graph body, then rewrites it."""

    def __init__(self, view: GraphView, lift: bool, small_rank: int, conv_rule: Rule, count: Callable[[str, int], None]) -> None:
        self.view = view
        self.lift = lift
        self.small_rank = small_rank
        self.big_rank = small_rank + 1
        self.conv_rule = conv_rule
        self.count = count
        self.axis: dict[str, int] = {}
        self.plans: dict[int, NodePlan] = {}
        self.blocked: dict[int, str] = {}
        self.waiting: dict[str, list[tuple[NodeProto, str, int, int]]] = {}
        self.queue: deque[str] = deque()
        self.dropped_value_info: set[str] = set()
        self.cancelled_exits: list[str] = []  # lowered names that replaced a cancelled exit wrapper
        self.weight_notes: dict[int, str] = {}  # id(conv) -> how its weight was reshaped
        self.eager = False  # settle(): accept operands that need a wrapper of their own
        self.last_route = ""  # how _route_constant handled its last operand
        self.produced: set[str] = set()  # tensors written by region nodes
        self.order = {id(n): i for i, n in enumerate(view.nodes)}

    # ------------------------------------------------------------ ranks

    @property
    def old_rank(self) -> int:
        return self.small_rank if self.lift else self.big_rank

    @property
    def new_rank(self) -> int:
        return self.big_rank if self.lift else self.small_rank

    def remap(self, i: int, a: int) -> int | None:
        """An old-form axis index in the new form (None: it is the unit axis, gone)."""
        return to_big(i, a) if self.lift else to_small(i, a)

    def remap_value(self, value: int, a: int) -> int | None:
        """An axis attribute value (maybe negative) in the new form, same sign convention."""
        n = normalize(value, self.old_rank)
        if n is None:
            return None
        m = self.remap(n, a)
        if m is None:
            return None
        return m - self.new_rank if value < 0 else m

    def rank_of(self, name: str) -> int | None:
        if name in self.axis:
            return self.old_rank
        dims = self.constant_dims(name)
        if dims is not None:
            return len(dims)
        return self.view.rank(name)

    def constant_dims(self, name: str) -> list[int] | None:
        """Dims of a constant operand: an initializer, a Constant, or a small chain of ops on constants."""
        dims = const_dims(self.view, name)
        if dims is not None:
            return dims
        producer = self.view.producer_of(name)
        if producer is None or producer.op_type not in _CONSTANT_CHAIN_OPS or producer.domain not in ("", "ai.onnx"):
            return None
        value = self.view.const_value(name)
        return None if value is None else list(value.shape)

    def is_constant(self, name: str) -> bool:
        return self.constant_dims(name) is not None

    def cheap_entry(self, name: str, a: int) -> bool:
        """An outside tensor that enters for free: made by the inverse wrapper (which then cancels)."""
        p = self.view.producer_of(name)
        if self.lift:
            return is_remove_wrapper(self.view, p, a, self.big_rank)
        return is_insert_wrapper(self.view, p, a, self.big_rank)

    def may_enter(self, name: str, a: int) -> bool:
        """Whether an outside same-rank tensor can be wrapped exactly (lowering needs a proven unit axis)."""
        return self.lift or unit_proven(self.view, name, a, self.big_rank)

    # ------------------------------------------------------------ fill

    def seed(self, node: NodeProto, a: int) -> NodePlan | Block | Wait:
        """Start (or extend) a region at a convolution whose data input gets unit axis `a`."""
        result = self.try_join(node, "in", 0, a)
        self.drain()
        return result

    def try_join(self, node: NodeProto, side: str, slot: int, a: int, pull: bool = False) -> NodePlan | Block | Wait:
        key = id(node)
        if key in self.plans:
            return self.plans[key]
        if key in self.blocked:
            return Block(self.blocked[key])
        result = self.plan(node, side, slot, a, pull)
        if isinstance(result, Wait):
            self.waiting.setdefault(result.tensor, []).append((node, side, slot, a))
            return result
        if isinstance(result, Block):
            if not pull and node.op_type not in CONV_OPS:  # a conv may still seed a region on another axis
                self.blocked[key] = result.reason
            return result
        for i, out_axis in result.outs.items():
            name = node.output[i]
            if name and name in self.axis and self.axis[name] != out_axis:
                reason = f"output {name} already has its unit axis at {self.axis[name]}"
                self.blocked[key] = reason
                return Block(reason)
        self._join(node, result)
        return result

    def _join(self, node: NodeProto, plan: NodePlan) -> None:
        self.plans[id(node)] = plan
        for i, in_axis in plan.data.items():
            self.assign(node.input[i], in_axis)
        for i, out_axis in plan.outs.items():
            if node.output[i]:
                self.produced.add(node.output[i])
                self.assign(node.output[i], out_axis)
        for i in plan.data:
            if node.input[i] not in self.produced:
                self.consider_pull(node.input[i])

    def settle(self) -> None:
        """Join waiting nodes whose outputs already enter the region, when that saves wrappers.

        `a = Add(region_tensor, z)` waits for `z` to join; when `a` is then
        read by a region node anyway, joining costs one wrapper on `z` and
        saves the one on `a` (and the exit of the region tensor, if `a` was
        its only reader outside): worth it when it does not add wrappers.
        """
        candidates: dict[int, tuple[NodeProto, str, int, int]] = {}
        for entries in self.waiting.values():
            for node, side, slot, a in entries:
                if id(node) not in self.plans and id(node) not in self.blocked:
                    candidates.setdefault(id(node), (node, side, slot, a))
        for node, side, slot, a in sorted(candidates.values(), key=lambda c: self.order.get(id(c[0]), 0)):
            if id(node) in self.plans:
                continue
            outs = [o for o in node.output if o]
            if not outs or not all(o in self.axis and self.axis[o] == a for o in outs):
                continue
            self.eager = True
            try:
                plan = self.plan(node, side, slot, a, False)
            finally:
                self.eager = False
            if not isinstance(plan, NodePlan) or any(plan.outs.get(i) != self.axis.get(o) for i, o in enumerate(node.output) if o):
                continue
            new_entries = {node.input[i] for i in plan.data if node.input[i] not in self.axis}
            saved = len(outs) + sum(1 for i in plan.data if self._only_outside_reader(node, node.input[i]))
            if len(new_entries) <= saved:
                self._join(node, plan)
                self.drain()

    def _only_outside_reader(self, node: NodeProto, name: str) -> bool:
        """Whether `node` is the one reason region tensor `name` needs an exit wrapper."""
        producer = self.view.producer_of(name)
        if name not in self.axis or producer is None or id(producer) not in self.plans or self.view.is_graph_output(name):
            return False
        for user in self.view.consumers_of(name):
            if user is node:
                continue
            plan = self.plans.get(id(user))
            if plan is None or any(x == name and i not in plan.data for i, x in enumerate(user.input)):
                return False
        return True

    def plan(self, node: NodeProto, side: str, slot: int, a: int, pull: bool) -> NodePlan | Block | Wait:
        if node.domain not in ("", "ai.onnx"):
            return Block(f"{node.op_type} is in domain {node.domain}")
        if node.op_type in CONV_OPS:
            return self.conv_rule(self, node, side, slot, a, pull)
        rule = RULES.get(node.op_type)
        if rule is None:
            return Block(f"{node.op_type} is not rank-agnostic")
        return rule(self, node, side, slot, a, pull)

    def assign(self, name: str, a: int) -> None:
        if name in self.axis:
            return
        self.axis[name] = a
        self.queue.append(name)

    def consider_pull(self, name: str) -> None:
        """Pull the producer of an entry into the region when only region nodes read the entry."""
        view = self.view
        producer = view.producer_of(name)
        if producer is None or id(producer) in self.plans or producer.op_type not in PULLABLE:
            return
        if view.is_graph_output(name):
            return
        if self.lift and producer.op_type == "Transpose":
            return  # lifting keeps layout changes outside: the Unsqueeze stays next to the conv
        for user in view.consumers_of(name):
            plan = self.plans.get(id(user))
            if plan is None or any(x == name for i, x in enumerate(user.input) if i not in plan.data):
                return
        out_slot = list(producer.output).index(name)
        self.try_join(producer, "out", out_slot, self.axis[name], pull=True)

    def drain(self) -> None:
        view = self.view
        while self.queue:
            name = self.queue.popleft()
            a = self.axis[name]
            for user, side, slot, wa in self.waiting.pop(name, []):
                self.try_join(user, side, slot, wa)
            for user in view.consumers_of(name):
                if id(user) in self.plans or id(user) in self.blocked:
                    continue
                slots = [i for i, x in enumerate(user.input) if x == name]
                if slots:
                    self.try_join(user, "in", slots[0], a)
            if name not in self.produced:
                self.consider_pull(name)

    # ------------------------------------------------------ operand classes

    def operand(self, node: NodeProto, slot: int, a: int, plan: NodePlan, enter: bool, rank: int | None = None) -> Block | Wait | None:
        """Classify input `slot` of an elementwise-like node whose output has unit axis `a`.

        Same-rank operands are region tensors (or entries), constants get
        reshaped, lower-rank operands are reshaped only when numpy
        broadcasting would otherwise align them differently.
        """
        name = node.input[slot]
        if not name:
            return None
        if name in self.axis:
            if self.axis[name] != a:
                return Block(f"operand {name} has its unit axis at {self.axis[name]}, not {a}")
            plan.data[slot] = a
            return None
        rank = rank if rank is not None else self.rank_of(name)
        if rank is None:
            return Block(f"rank of operand {name} is unknown")
        old = self.old_rank
        if rank > old:
            return Block(f"operand {name} has rank {rank} > {old}")
        constant = self.is_constant(name)
        if rank == old:
            if constant:
                if not self.lift and not self._const_unit(name, a):
                    return Block(f"constant {name} is not 1 on axis {a}")
                plan.consts[slot] = a
                return None
            if self.cheap_entry(name, a) or ((enter or self.eager) and self.may_enter(name, a)):
                plan.data[slot] = a
                return None
            return Wait(name)  # joining now would cost a wrapper; a region neighbour may bring it in
        start = old - rank  # broadcasting aligns the operand to the last `rank` axes
        if self.lift:
            if start >= a:
                return None  # every axis it covers shifts by one: still right-aligned
            local = a - start
        else:
            if start > a:
                return None
            local = a - start
        if constant:
            if not self.lift and not self._const_unit(name, local):
                return Block(f"constant {name} is not 1 on its axis {local}")
            plan.consts[slot] = local
            return None
        if not self.lift:
            s = self.view.shape(name)
            if s is None or s.dims is None or s.dims[local] != 1:
                return Block(f"operand {name} is not known to be 1 on its axis {local}")
        plan.bcasts[slot] = local
        return None

    def _const_unit(self, name: str, local: int) -> bool:
        dims = self.constant_dims(name)
        return dims is not None and 0 <= local < len(dims) and dims[local] == 1

    # ----------------------------------------------------------- rewrite

    def rewrite(self) -> list[NodeProto]:
        """Apply the region: node edits, operand reshapes, then entry and exit wrappers."""
        view = self.view
        nodes = sorted((p.node for p in self.plans.values()), key=lambda n: self.order.get(id(n), len(self.order)))
        plans = [self.plans[id(n)] for n in nodes]
        self._reshape_operands(plans, lambda p: p.weights, weights=True)
        self._reshape_operands(plans, lambda p: p.consts, weights=False)
        for plan in plans:
            for slot, local in plan.bcasts.items():
                name = plan.node.input[slot]
                view.replace_input(plan.node, slot, self._route_constant(name, local, plan.node, allow_copy=False))
                self.drop_dead([name])
            if plan.edit is not None:
                plan.edit(self)
        self._wire_tensors(plans)
        return nodes

    def _reshape_operands(self, plans: list[NodePlan], slots_of, weights: bool) -> None:
        """Reshape constants (and conv weights) by one unit axis: in place when only the region reads them."""
        view = self.view
        uses: dict[str, list[tuple[NodePlan, int, int]]] = {}
        for plan in plans:
            for slot, local in slots_of(plan).items():
                uses.setdefault(plan.node.input[slot], []).append((plan, slot, local))
        for name, group in uses.items():
            locals_ = {local for _, _, local in group}
            readers = {id(p.node) for p, _, _ in group}
            sole = len(locals_) == 1 and not view.is_graph_output(name) and all(
                id(u) in readers and all(x != name or i in slots_of(self.plans[id(u)]) for i, x in enumerate(u.input))
                for u in view.consumers_of(name)
            )
            if sole:
                how = self._reshape_in_place(name, next(iter(locals_)), weights)
                if how:
                    for plan, _, _ in group:
                        self.weight_notes[id(plan.node)] = how
                    continue
            routed: dict[int, str] = {}
            folded = weights and len(locals_) == 1 and self._fold_computed(name, next(iter(locals_)))
            if folded:
                routed[next(iter(locals_))] = folded
            for plan, slot, local in group:
                if local not in routed:
                    routed[local] = self._route_constant(name, local, plan.node, allow_copy=not weights,
                                                         rank=self.old_rank if weights else None)
                view.replace_input(plan.node, slot, routed[local])
                if weights and folded:
                    self.weight_notes[id(plan.node)] = "constant chain computing the weight folded into an initializer"
                elif weights and self.last_route == "cancelled":
                    op = "Squeeze" if self.lift else "Unsqueeze"
                    self.weight_notes[id(plan.node)] = f"the {op} on its path cancelled"
                elif weights:
                    op = "Unsqueeze" if self.lift else "Squeeze"
                    self.weight_notes[id(plan.node)] = f"routed through {op}: {self._why_not_in_place(name)}"
            if folded or name not in routed.values():
                self.drop_dead([name])

    def _new_dims(self, dims: Sequence[int], local: int) -> list[int]:
        dims = list(dims)
        if self.lift:
            return dims[:local] + [1] + dims[local:]
        return dims[:local] + dims[local + 1 :]

    def _fold_computed(self, name: str, local: int) -> str:
        """A weight computed from constants only (tf2onnx with its optimizer off): fold it to an initializer."""
        view = self.view
        producer = view.producer_of(name)
        if producer is None or producer.op_type in ("Constant", "DequantizeLinear") or producer.op_type not in _CONSTANT_CHAIN_OPS:
            return ""
        if not (view.is_function or view.ctx.ir_version >= 4):
            return ""
        value = view.const_value(name)
        if value is None:
            return ""
        new = view.ctx.fresh(f"{name}_{'lifted' if self.lift else 'lowered'}")
        view.add_initializer(numpy_helper.from_array(value.reshape(self._new_dims(value.shape, local)), new))
        return new

    def _why_not_in_place(self, name: str) -> str:
        view = self.view
        if view.is_overridable_initializer(name):
            return "weight is an overridable initializer"
        if name in view.input_set:
            return "weight is a graph input"
        if (name in view.initializers and view.initializer(name) is not None) or constant_node_tensor(view, name) is not None:
            return "weight is shared with other readers"
        if view.initializer(name) is not None:
            return "weight is an initializer of an enclosing graph"
        if view.producer_of(name) is None:
            return "weight comes from an enclosing graph"
        return "weight is computed at run time"

    def _reshape_in_place(self, name: str, local: int, weights: bool) -> str:
        """Change a tensor's dims (no data copied); says how, or "" when it cannot.

        Weights may sit behind a DequantizeLinear (QDQ): then its integer input is reshaped.
        """
        view = self.view
        tensor = view.initializers.get(name) if view.initializer(name) is not None else None
        if tensor is None:
            tensor = constant_node_tensor(view, name)
        if tensor is not None:
            self._set_dims(tensor, self._new_dims(tensor.dims, local), name)
            return "reshaped in place"
        if weights and self._reshape_dequantized(name, local):
            return "quantized weight reshaped in place behind DequantizeLinear"
        if weights and self._reshape_behind_cast(name, local):
            return "stored weight reshaped in place behind its Cast (its storage type kept)"
        return ""

    def _reshape_behind_cast(self, name: str, local: int) -> bool:
        """A weight stored in another type (bfloat16, float16) and Cast before the conv: reshape the stored
        tensor, so that the model keeps its storage type instead of a folded float32 copy."""
        view = self.view
        cast = view.producer_of(name)
        if cast is None or cast.op_type != "Cast" or cast.domain not in ("", "ai.onnx") or view.is_graph_output(name):
            return False
        stored = cast.input[0]
        tensor = self._sole_stored_tensor(stored)
        if tensor is None:
            return False
        self._set_dims(tensor, self._new_dims(tensor.dims, local), stored)
        self.dropped_value_info.add(name)
        return True

    def _sole_stored_tensor(self, name: str) -> TensorProto | None:
        """The initializer or Constant tensor `name`, when one op reads it and it is no graph output (safe to reshape)."""
        view = self.view
        if len(view.consumers_of(name)) != 1 or view.is_graph_output(name):
            return None
        tensor = view.initializers.get(name) if view.initializer(name) is not None else None
        return tensor if tensor is not None else constant_node_tensor(view, name)

    def _set_dims(self, tensor: TensorProto, dims: list[int], name: str) -> None:
        set_tensor_dims(self.view, tensor, name, dims)
        self.dropped_value_info.add(name)

    def _reshape_dequantized(self, name: str, local: int) -> bool:
        """QDQ weight: reshape the integer tensor behind DequantizeLinear and keep its axis right."""
        view = self.view
        dq = view.producer_of(name)
        if dq is None or dq.op_type != "DequantizeLinear" or attr(dq, "block_size", 0):
            return False
        if view.is_graph_output(name):
            return False
        quantized = dq.input[0]
        tensor = self._sole_stored_tensor(quantized)
        if tensor is None:
            return False
        scale_dims = const_dims(view, dq.input[1]) if len(dq.input) > 1 else None
        per_axis = scale_dims is not None and len(scale_dims) == 1 and scale_dims[0] != 1
        if per_axis:
            old_rank = len(tensor.dims)
            axis = attr(dq, "axis", 1)
            n = normalize(axis, old_rank)
            if n is None or (not self.lift and n == local):
                return False
            m = n if n < local else (n + 1 if self.lift else n - 1)
            new_value = m - (old_rank + (1 if self.lift else -1)) if axis < 0 else m
            if new_value != axis:
                set_attr(dq, "axis", new_value)
        self._set_dims(tensor, self._new_dims(tensor.dims, local), quantized)
        self.dropped_value_info.add(name)
        return True

    def _route_constant(self, name: str, local: int, anchor: NodeProto, allow_copy: bool, rank: int | None = None) -> str:
        """The operand in its new rank: the input of an inverse wrapper (which cancels), a
        reshaped copy of a small constant, or the tensor routed through Unsqueeze/Squeeze."""
        view = self.view
        rank = rank if rank is not None else self.rank_of(name)
        producer = view.producer_of(name)
        self.last_route = "wrapped"
        if rank is not None and producer is not None:
            big = rank + 1 if self.lift else rank
            undo = is_remove_wrapper if self.lift else is_insert_wrapper
            if undo(view, producer, local, big):
                self.count("pairs_cancelled", 1)
                self.last_route = "cancelled"
                return producer.input[0]
        dims = self.constant_dims(name)
        small = dims is not None and int(np.prod(dims)) <= 4096
        can_add = view.is_function or view.ctx.ir_version >= 4
        if allow_copy and small and can_add:
            value = view.const_value(name)
            if value is not None:
                new = view.ctx.fresh(f"{name}_{'lifted' if self.lift else 'lowered'}")
                view.add_initializer(numpy_helper.from_array(value.reshape(self._new_dims(value.shape, local)), new))
                return new
        return self._wrap(name, local, anchor_before=anchor, base=name)

    def _wrap(self, name: str, local: int, anchor_before: NodeProto | None = None, anchor_after: NodeProto | None = None, base: str = "", out: str | None = None) -> str:
        """Insert Unsqueeze (lift) or Squeeze (lower) of `name` on axis `local`; returns its output."""
        view = self.view
        out = out or view.ctx.fresh(f"{base or name}_{'lifted' if self.lift else 'lowered'}")
        op = "Unsqueeze" if self.lift else "Squeeze"
        node_name = view.ctx.fresh(f"{out}_{op}")
        maker = make_unsqueeze if self.lift else make_squeeze
        node = maker(view, name, out, [local], node_name)
        if anchor_after is not None:
            view.insert_after(anchor_after, [node])
        else:
            view.insert_before(anchor_before, [node])
        self.count("unsqueeze_inserted" if self.lift else "squeeze_inserted", 1)
        return out

    def _exit_wrap(self, source: str, target: str, local: int, anchor: NodeProto) -> None:
        """The inverse wrapper for a tensor leaving the region: back to the old rank, under the old name."""
        view = self.view
        op = "Squeeze" if self.lift else "Unsqueeze"
        maker = make_squeeze if self.lift else make_unsqueeze
        node = maker(view, source, target, [local], view.ctx.fresh(f"{target}_{op}"))
        view.insert_after(anchor, [node])
        self.count("squeeze_inserted" if self.lift else "unsqueeze_inserted", 1)

    def _is_exit_cancel(self, user: NodeProto, name: str, a: int) -> bool:
        """A reader that undoes the region's rank change (lift: Unsqueeze at a; lower: Squeeze at a)."""
        if id(user) in self.plans or user.input[0] != name or list(user.input).count(name) != 1:
            return False
        if self.lift:
            return is_insert_wrapper(self.view, user, a, self.big_rank)
        return is_remove_wrapper(self.view, user, a, self.big_rank)

    def _wire_tensors(self, plans: list[NodePlan]) -> None:
        region_uses: dict[str, list[tuple[NodeProto, int]]] = {}
        for plan in plans:
            for slot in plan.data:
                region_uses.setdefault(plan.node.input[slot], []).append((plan.node, slot))
        produced: dict[str, NodeProto] = {}
        for plan in plans:
            for slot in plan.outs:
                if plan.node.output[slot]:
                    produced[plan.node.output[slot]] = plan.node
        for name, a in self.axis.items():
            producer = produced.get(name)
            uses = region_uses.get(name, [])
            if producer is None:
                if uses:
                    self._wire_entry(name, a, uses)
            else:
                self._wire_exit(name, a, producer, uses)

    def _wire_entry(self, name: str, a: int, uses: list[tuple[NodeProto, int]]) -> None:
        view = self.view
        producer = view.producer_of(name)
        local = a
        cancel = self.cheap_entry(name, a)
        if cancel:
            source = producer.input[0]
            for node, slot in uses:
                view.replace_input(node, slot, source)
            self.count("pairs_cancelled", 1)
            if not view.consumers_of(name) and not view.is_graph_output(name):
                view.remove(producer)
                self.drop_dead(producer.input[1:] if len(producer.input) > 1 else [])
            return
        first = min((n for n, _ in uses), key=lambda n: self.order.get(id(n), 0))
        if producer is not None and not view.is_removed(producer) and id(producer) in self.order:
            new = self._wrap(name, local, anchor_after=producer)
        else:
            new = self._wrap(name, local, anchor_before=first)
        for node, slot in uses:
            view.replace_input(node, slot, new)

    def _wire_exit(self, name: str, a: int, producer: NodeProto, uses: list[tuple[NodeProto, int]]) -> None:
        view = self.view
        outside = []
        for user in view.consumers_of(name):
            plan = self.plans.get(id(user))
            if plan is None or any(x == name and i not in plan.data for i, x in enumerate(user.input)):
                outside.append(user)
        is_output = view.is_graph_output(name)
        if not outside and not is_output:
            self.dropped_value_info.add(name)  # internal: keeps its name, changes rank
            return
        cancels = [u for u in outside if self._is_exit_cancel(u, name, a)]
        cancel_ids = {id(u) for u in cancels}
        others = [u for u in outside if id(u) not in cancel_ids]
        to_graph_output = [u for u in cancels if view.is_graph_output(u.output[0])]
        if is_output or others or len(to_graph_output) > 1:
            lowered = view.ctx.fresh(f"{name}_{'lifted' if self.lift else 'lowered'}")
            keep_wrapped = {id(u) for u in to_graph_output}
        elif to_graph_output:
            lowered = to_graph_output[0].output[0]
            keep_wrapped = set()
        else:
            lowered = name
            keep_wrapped = set()
        if lowered != name:
            for i, o in enumerate(producer.output):
                if o == name:
                    producer.output[i] = lowered
            for node, slot in uses:
                view.replace_input(node, slot, lowered)
        if lowered == name or lowered in {u.output[0] for u in cancels}:
            self.dropped_value_info.add(lowered)
        wrapped_needed = is_output or others or keep_wrapped
        for user in cancels:
            if id(user) in keep_wrapped:
                continue
            out = user.output[0]
            view.remove(user)
            if out != lowered:
                view.rename_uses(out, lowered)
            self.drop_dead(user.input[1:])
            self.dropped_value_info.add(out)
            self.cancelled_exits.append(lowered)
            self.count("pairs_cancelled", 1)
        if wrapped_needed:
            self._exit_wrap(lowered, name, a, producer)

    def drop_dead(self, names: Iterable[str]) -> None:
        """Remove constant operands (and the chains computing them) that nothing reads any more."""
        view = self.view
        stack = [n for n in names if n]
        dead_inits = []
        while stack:
            name = stack.pop()
            if view.consumers_of(name) or view.is_graph_output(name):
                continue
            producer = view.producer_of(name)
            if producer is None:
                if name in view.initializers and name not in view.input_set:
                    dead_inits.append(name)
                continue
            if view.is_removed(producer):
                continue
            if any(view.consumers_of(o) or view.is_graph_output(o) for o in producer.output if o):
                continue
            if producer.op_type not in _CONSTANT_CHAIN_OPS:
                continue
            view.remove(producer)
            stack.extend(i for i in producer.input if i)
        if dead_inits:
            view.drop_unused_initializers(dead_inits)

    def replace_operand(self, node: NodeProto, slot: int, values: Sequence[int], base: str) -> None:
        """Point an int64 operand (pads, axes) at a new constant and drop the old one if now unused."""
        view = self.view
        old = node.input[slot] if slot < len(node.input) else ""
        new = view.int64_const(list(values), base)
        if slot < len(node.input):
            view.replace_input(node, slot, new)
        else:
            while len(node.input) < slot:
                node.input.append("")
            node.input.append(new)
            view.consumers.setdefault(new, []).append(node)
        if old:
            self.drop_dead([old])


# Producers of small operands that may be removed once unused (never anything with effects).
_CONSTANT_CHAIN_OPS = frozenset({
    "Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze",
    "Squeeze", "Gather", "Shape", "Size", "Add", "Sub", "Mul", "Div", "Neg", "Range", "Identity",
    "Expand", "Flatten", "Abs", "Max", "Min",
})


# ---------------------------------------------------------------------- rules


def rule_shape_preserving(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side == "in" and slot != 0:
        return Block(f"{node.op_type} reads the region tensor as a parameter")
    plan = NodePlan(node)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    if node.op_type == "CastLike" or node.op_type == "Clip" or node.op_type == "Dropout":
        pass  # parameters are scalars or type carriers: unchanged
    plan.outs[0] = a
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        plan.outs[1] = a  # the mask has the data's shape
    return plan


def rule_elementwise(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if eng.view.opset < 7 and attr(node, "broadcast", 0):
        return Block("legacy broadcast attribute (opset < 7)")
    if node.op_type == "PRelu" and eng.view.opset < 7:
        return Block("PRelu before opset 7 does not broadcast")
    plan = NodePlan(node)
    for i in range(len(node.input)):
        result = eng.operand(node, i, a, plan, enter=False)
        if result is not None:
            return result
    if not plan.data:
        return Block("no operand in the region")
    plan.outs[0] = a
    return plan


def rule_channel_norm(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block(f"{node.op_type} touches the region through a parameter")
    if node.op_type == "BatchNormalization" and attr(node, "spatial", 1) == 0:
        return Block("BatchNormalization with spatial=0 normalizes per position")
    plan = NodePlan(node)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_qdq(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side == "in" and slot != 0:
        return Block(f"{node.op_type} reads the region tensor as a parameter")
    if attr(node, "block_size", 0):
        return Block("blocked quantization")
    plan = NodePlan(node)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a
    scale = node.input[1] if len(node.input) > 1 else ""
    scale_rank = eng.rank_of(scale) if scale else 0
    if scale_rank is None:
        return Block("rank of the scale is unknown")
    if scale_rank >= 1 and eng.view.opset >= 13:
        edit = _axis_attr_edit(eng, node, "axis", 1, a)
        if isinstance(edit, Block):
            return edit
        plan.edit = edit
    return plan


def _axis_attr_edit(eng: RegionEngine, node: NodeProto, name: str, default: int, a: int):
    """Edit that remaps an axis attribute (the default counts when absent); Block if it is the unit axis."""
    value = attr(node, name, None)
    old = default if value is None else int(value)
    new = eng.remap_value(old, a)
    if new is None:
        return Block(f"{node.op_type} works on the unit axis ({name}={old})")

    def edit(_eng: RegionEngine) -> None:
        if new != old:
            set_attr(node, name, new)

    return edit


def rule_axis_op(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    """Single-data-input ops with an axis attribute: Softmax family, LpNormalization, ArgMax/ArgMin."""
    if side == "in" and slot != 0:
        return Block(f"{node.op_type} reads the region tensor as a parameter")
    op = node.op_type
    if op in ("ArgMax", "ArgMin") and attr(node, "keepdims", 1) == 0:
        return Block(f"{op} with keepdims=0 drops an axis")
    if op in SOFTMAXES:
        default = 1 if eng.view.opset < 13 else -1
    elif op == "LpNormalization":
        default = -1
    else:
        default = 0
    edit = _axis_attr_edit(eng, node, "axis", default, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=False)
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_concat(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side != "in":
        return Block("Concat reached from its output")
    edit = _axis_attr_edit(eng, node, "axis", 0, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    for i, name in enumerate(node.input):
        if not name:
            continue
        if eng.rank_of(name) not in (None, eng.old_rank) and name not in eng.axis:
            return Block(f"Concat operand {name} has another rank")
        result = eng.operand(node, i, a, plan, enter=False)
        if result is not None:
            return result
        if i in plan.bcasts:
            return Block("Concat operand of another rank")
    plan.outs[0] = a
    return plan


def rule_split(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side == "in" and slot != 0:
        return Block("Split reads the region tensor as its sizes")
    edit = _axis_attr_edit(eng, node, "axis", 0, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=False)
    if result is not None:
        return result
    for i, o in enumerate(node.output):
        if o:
            plan.outs[i] = a
    return plan


def rule_transpose(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    old_rank = eng.old_rank
    perm = transpose_perm(node, old_rank)
    if len(perm) != old_rank:
        return Block("Transpose perm has another rank")
    if eng.lift:
        a_in = a_out = a  # the unit axis stays where the region keeps it

        def edit(_eng: RegionEngine) -> None:
            big = [0] * eng.big_rank
            for i in range(eng.big_rank):
                if i == a:
                    big[i] = a
                else:
                    big[i] = to_big(perm[to_small(i, a)], a)
            set_attr(node, "perm", big)
    else:
        if side == "in":
            a_in = a
            a_out = perm.index(a)
        else:
            a_out = a
            a_in = perm[a]

        def edit(_eng: RegionEngine) -> None:
            small = []
            for i in range(old_rank):
                if i == a_out:
                    continue
                small.append(to_small(perm[i], a_in))
            set_attr(node, "perm", small)

    plan = NodePlan(node, edit=edit, info={"a_in": a_in, "a_out": a_out})
    result = eng.operand(node, 0, a_in, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a_out
    return plan


def _spatial_attr_edit(eng: RegionEngine, node: NodeProto, a: int):
    """Edit inserting/removing the unit axis in a pool's per-axis attributes (Block if not exact)."""
    j = a - 2
    rank = eng.small_rank - 2 if eng.lift else eng.big_rank - 2  # spatial axes before the edit
    kernel = attr(node, "kernel_shape", None)
    if kernel is None or len(kernel) != rank:
        return Block("kernel_shape missing or of another rank")
    if not eng.lift:
        if kernel[j] != 1:
            return Block(f"kernel is {kernel[j]} on spatial axis {j}, not 1")
        pads = attr(node, "pads", None)
        if pads is not None and (len(pads) != 2 * rank or pads[j] or pads[rank + j]):
            return Block(f"pads on spatial axis {j} are not 0")
    return lambda _eng: edit_spatial_attrs(node, j, eng.lift, rank)


def edit_spatial_attrs(node: NodeProto, j: int, lift: bool, rank: int) -> None:
    """Insert (lift) or drop (lower) spatial axis j in every per-axis attribute the node has.

    For a conv, the same change as `ConvAttrs.with_axis`/`without_axis` + `apply`,
    done on the attribute lists in place: absent attributes keep their
    defaults, which stay right at the new rank (strides 1, pads 0, kernel from
    the weight). `rank` is the number of spatial axes before the edit.
    """
    for a in node.attribute:
        if a.name in ("kernel_shape", "strides", "dilations", "output_padding", "output_shape"):
            values = list(a.ints)
            i = j + len(values) - rank  # output_shape may hold N and C too
            unit = 0 if a.name == "output_padding" else 1
            new = values[:i] + [unit] + values[i:] if lift else values[:i] + values[i + 1 :]
        elif a.name == "pads":
            values = list(a.ints)
            n = len(values) // 2
            begin, end = values[:n], values[n:]
            if lift:
                new = begin[:j] + [0] + begin[j:] + end[:j] + [0] + end[j:]
            else:
                new = begin[:j] + begin[j + 1 :] + end[:j] + end[j + 1 :]
        else:
            continue
        del a.ints[:]
        a.ints.extend(new)


def rule_pool(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("pool reached through its indices")
    edit = _spatial_attr_edit(eng, node, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    for i, o in enumerate(node.output):
        if o:
            plan.outs[i] = a  # MaxPool indices index the flattened tensor: unit axes change nothing
    return plan


def rule_global_pool(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("global pool reached through a parameter")
    plan = NodePlan(node)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_reduce(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side != "in" or slot != 0:
        return Block(f"{node.op_type} reached through its axes")
    if attr(node, "keepdims", 1) == 0:
        return Block(f"{node.op_type} with keepdims=0 drops axes")
    view = eng.view
    axes_from_input = len(node.input) > 1 and node.input[1]
    if axes_from_input:
        axes = view.const_ints(node.input[1])
        if axes is None:
            return Block(f"{node.op_type} axes are computed")
    else:
        axes = attr(node, "axes", None)
    new_axes = None
    if axes is not None:
        # Reducing over a set of axes that includes a size-1 axis reads the same
        # elements as reducing over the others: the unit axis simply leaves the list.
        new_axes = [m for m in (eng.remap_value(int(x), a) for x in axes) if m is not None]
        if len(axes) and not new_axes:
            return Block(f"{node.op_type} reduces the unit axis alone")

    def edit(_eng: RegionEngine) -> None:
        if new_axes is None or new_axes == list(axes):
            return
        if axes_from_input:
            eng.replace_operand(node, 1, new_axes, "reduce_axes")
        else:
            set_attr(node, "axes", new_axes)

    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=False)
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_pad(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("Pad reached through an operand")
    view = eng.view
    rank = eng.old_rank
    if view.opset < 11:
        pads = attr(node, "pads", None) if view.opset >= 2 else attr(node, "paddings", None)
        from_input = False
    else:
        pads = view.const_ints(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        from_input = True
    if pads is None:
        return Block("Pad pads are not constant")
    pads = list(pads)
    axes_input = len(node.input) > 3 and node.input[3]
    if axes_input:
        axes = view.const_ints(node.input[3])
        if axes is None:
            return Block("Pad axes are not constant")
        new_axes = [eng.remap_value(x, a) for x in axes]
        if any(x is None for x in new_axes):
            return Block("Pad pads the unit axis")

        def edit(_eng: RegionEngine) -> None:
            if new_axes != list(axes):
                eng.replace_operand(node, 3, new_axes, "pad_axes")
    else:
        if len(pads) != 2 * rank:
            return Block("Pad pads have another rank")
        begin, end = pads[:rank], pads[rank:]
        if eng.lift:
            new_pads = begin[:a] + [0] + begin[a:] + end[:a] + [0] + end[a:]
        else:
            if begin[a] or end[a]:
                return Block("Pad pads the unit axis")
            new_pads = begin[:a] + begin[a + 1 :] + end[:a] + end[a + 1 :]

        def edit(_eng: RegionEngine) -> None:
            if from_input:
                eng.replace_operand(node, 1, new_pads, "pads")
            else:
                set_attr(node, "pads" if view.opset >= 2 else "paddings", new_pads)

    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_slice(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("Slice reached through an operand")
    view = eng.view
    attr_form = view.opset < 10
    if attr_form:
        starts = attr(node, "starts", None)
        axes = attr(node, "axes", None)
        if starts is None:
            return Block("Slice without starts")
        axes = list(axes) if axes is not None else list(range(len(starts)))
    else:
        if len(node.input) > 3 and node.input[3]:
            axes = view.const_ints(node.input[3])
            if axes is None:
                return Block("Slice axes are computed")
        else:
            starts = view.const_ints(node.input[1])
            n = len(starts) if starts is not None else None
            if n is None:
                s = view.shape(node.input[1])
                n = s.static(0) if s is not None and s.rank == 1 else None
            if n is None:
                return Block("Slice has no axes and its starts have unknown length")
            axes = list(range(n))
    new_axes = [eng.remap_value(int(x), a) for x in axes]
    if any(x is None for x in new_axes):
        return Block("Slice slices the unit axis")
    has_axes_input = not attr_form and len(node.input) > 3 and node.input[3]

    def edit(_eng: RegionEngine) -> None:
        if attr_form:
            if new_axes != list(axes) or attr(node, "axes", None) is None:
                set_attr(node, "axes", new_axes)
        elif new_axes != list(axes) or not has_axes_input:
            eng.replace_operand(node, 3, new_axes, "slice_axes")

    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_shape(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    """Shape gives the same values once its range (start/end), or the constant indices of the
    Gathers that read it, are remapped past the unit axis; Size never changes."""
    if side != "in":
        return Block("Shape reached from its output")
    plan = NodePlan(node)
    plan.data[0] = a
    if node.op_type == "Size":
        return plan
    if attr(node, "start", None) is not None or attr(node, "end", None) is not None:
        edit = _shape_range_edit(eng, node, a)
        if isinstance(edit, Block):
            return edit
        plan.edit = edit
        return plan
    view = eng.view
    out = node.output[0]
    if view.is_graph_output(out):
        return Block("Shape is a graph output")
    users = view.consumers_of(out)
    if not users:
        return Block("Shape is unused")
    remapped: list[tuple[NodeProto, np.ndarray]] = []
    for user in users:
        if user.op_type != "Gather" or attr(user, "axis", 0) != 0 or user.input[0] != out or user.input[1] == out:
            return Block("Shape is read by something other than a Gather of its values")
        idx = view.const_value(user.input[1])
        if idx is None or idx.dtype.kind not in "iu":
            return Block("Shape is gathered at computed indices")
        new = []
        for i in idx.reshape(-1).tolist():
            n = normalize(int(i), eng.old_rank)
            m = eng.remap(n, a) if n is not None else None
            if m is None:
                return Block("Shape is gathered at the unit axis" if n is not None else "Gather index out of range")
            new.append(m if i >= 0 else m - eng.new_rank)
        if new != idx.reshape(-1).tolist():
            remapped.append((user, np.asarray(new, dtype=idx.dtype).reshape(idx.shape)))

    def edit(_eng: RegionEngine) -> None:
        for user, value in remapped:
            old = user.input[1]
            name = view.add_initializer(numpy_helper.from_array(value, view.ctx.fresh("shape_index")))
            view.replace_input(user, 1, name)
            eng.drop_dead([old])

    plan.edit = edit
    return plan


def _shape_range_edit(eng: RegionEngine, node: NodeProto, a: int):
    """Shape(start, end) (opset 15): the same axes in the new rank; Block when the range holds the unit axis."""
    start, end = attr(node, "start", None), attr(node, "end", None)

    def resolve(value: int | None, default: int, rank: int) -> int:
        if value is None:
            return default
        value = int(value) + rank if value < 0 else int(value)
        return min(max(value, 0), rank)

    old_rank, new_rank = eng.old_rank, eng.new_rank
    s, e = resolve(start, 0, old_rank), resolve(end, old_rank, old_rank)
    if e <= s:
        new_s, new_e = 0, 0  # reads nothing, at any rank
    elif e <= a:
        new_s, new_e = s, e  # every axis it reads lies before the unit axis
    elif eng.lift and s >= a:
        new_s, new_e = s + 1, e + 1
    elif not eng.lift and s > a:
        new_s, new_e = s - 1, e - 1
    else:
        return Block("Shape range holds the unit axis" if not eng.lift else "Shape range spans the unit axis")
    if (resolve(start, 0, new_rank), resolve(end, new_rank, new_rank)) == (new_s, new_e):
        return lambda _eng: None  # the attributes already say it at the new rank

    def edit(_eng: RegionEngine) -> None:
        set_attr(node, "start", new_s)
        if end is not None or new_e != new_rank:
            set_attr(node, "end", new_e)

    return edit


RULES: dict[str, Rule] = {}
for _op in SHAPE_PRESERVING:
    RULES[_op] = rule_shape_preserving
for _op in ELEMENTWISE:
    RULES[_op] = rule_elementwise
for _op in CHANNEL_NORMS:
    RULES[_op] = rule_channel_norm
for _op in QDQ:
    RULES[_op] = rule_qdq
for _op in SOFTMAXES | {"LpNormalization", "ArgMax", "ArgMin"}:
    RULES[_op] = rule_axis_op
for _op in POOLS:
    RULES[_op] = rule_pool
for _op in GLOBAL_POOLS:
    RULES[_op] = rule_global_pool
for _op in REDUCES:
    RULES[_op] = rule_reduce
RULES["Concat"] = rule_concat
RULES["Split"] = rule_split
RULES["Transpose"] = rule_transpose
RULES["Pad"] = rule_pad
RULES["Slice"] = rule_slice
RULES["Shape"] = rule_shape
RULES["Size"] = rule_shape


def drop_value_info(view: GraphView, names: set[str]) -> None:
    """Forget declared shapes of tensors whose rank changed (one linear rebuild)."""
    if not names:
        return
    body = view.body
    if not hasattr(body, "value_info"):
        return
    infos = body.value_info
    if not any(vi.name in names for vi in infos):
        return
    kept = [vi for vi in infos if vi.name not in names]
    copies = []
    for vi in kept:
        c = type(vi)()
        c.CopyFrom(vi)
        copies.append(c)
    del infos[:]
    infos.extend(copies)
