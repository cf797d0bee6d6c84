"""Editing the graph for a settled region: operands reshaped or routed, wrappers at its edges, dead operands dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing import Iterable, Sequence
import numpy as np
from onnx import NodeProto, TensorProto, numpy_helper

from ...graph import (
    CONSTANT_CHAIN_OPS, attr, constant_node_tensor, make_squeeze, make_unsqueeze, set_attr, sweep_dead,
)
from .plans import NodePlan, const_dims, is_insert_wrapper, is_remove_wrapper, normalize, set_tensor_dims

if TYPE_CHECKING:
    from .engine import RegionEngine


class RegionRewrite:
    """The second half of a region's life: once every node's plan is settled, edit the graph.

    A mixin of RegionEngine (it reads the engine's plans, view and counters).
    """

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
        if producer is None or producer.op_type in ("Constant", "DequantizeLinear") or producer.op_type not in CONSTANT_CHAIN_OPS:
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
        """Remove constant operands (and the chains computing them) that nothing reads any more, now.

        The graph's one cleanup sweep; run at once (not deferred to the driver) because later
        region edits look at these operands' readers. Value_info is left as the region engine
        manages it (its own `dropped_value_info`).
        """
        unused = sweep_dead(self.view, [n for n in names if n], set(), {})
        if unused:
            self.view.drop_unused_initializers(list(unused))

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
