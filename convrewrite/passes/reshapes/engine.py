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
joins. No recursion."""

from __future__ import annotations

from collections import deque
from typing import Callable
from onnx import NodeProto

from ...conv import CONV_OPS, attribute_refs
from ...graph import CONSTANT_CHAIN_OPS, GraphView
from .ops import (
    RULES, rule_axis_op, rule_channel_norm, rule_concat, rule_elementwise, rule_global_pool, rule_pad,
    rule_pool, rule_qdq, rule_reduce, rule_shape, rule_shape_preserving, rule_slice, rule_split, rule_transpose,
)
from .plans import (
    Block, CHANNEL_NORMS, ELEMENTWISE, GLOBAL_POOLS, NodePlan, OpRule, POOLS, PULLABLE, QDQ, REDUCES,
    SHAPE_PRESERVING, SOFTMAXES, Wait, const_dims, is_insert_wrapper, is_remove_wrapper, normalize, to_big,
    to_small, unit_proven,
)
from .rewriting import RegionRewrite


class RegionEngine(RegionRewrite):
    """Flood-fills one region kind (lift or lower) over one graph body, then rewrites it."""

    def __init__(self, view: GraphView, lift: bool, small_rank: int, conv_rule: OpRule, count: Callable[[str, int], None]) -> None:
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
        self.assume_finite = False  # MaxPool joins a region only then (its NaN handling depends on the rank)

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
        if producer is None or producer.op_type not in CONSTANT_CHAIN_OPS or producer.domain not in ("", "ai.onnx"):
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
        refs = attribute_refs(node)
        if refs:
            return Block(f"{node.op_type} has {refs}, set per call site of the function (not resolved here)")
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


# Which rule places each op in a region (the one table; the op sets do not overlap).
RULE_TABLE: tuple[tuple[frozenset[str] | set[str], OpRule], ...] = (
    (SHAPE_PRESERVING, rule_shape_preserving),
    (ELEMENTWISE, rule_elementwise),
    (CHANNEL_NORMS, rule_channel_norm),
    (QDQ, rule_qdq),
    (SOFTMAXES | {"LpNormalization", "ArgMax", "ArgMin"}, rule_axis_op),
    (POOLS, rule_pool),
    (GLOBAL_POOLS, rule_global_pool),
    (REDUCES, rule_reduce),
    ({"Concat"}, rule_concat),
    ({"Split"}, rule_split),
    ({"Transpose"}, rule_transpose),
    ({"Pad"}, rule_pad),
    ({"Slice"}, rule_slice),
    ({"Shape", "Size"}, rule_shape),
)
RULES.update({op: rule for ops, rule in RULE_TABLE for op in ops})
