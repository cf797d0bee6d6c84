"""Rewriting a planned chain into one dilated conv, and zero-inserted kernels into compact ones (or back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
from dataclasses import dataclass, replace
import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from ...conv import WEIGHT_INPUT, ConvAttrs
from ...graph import GraphView, make_squeeze, make_unsqueeze
from ...refusal import Refusal
from ...symbolic import Unprovable
from .common import FLOAT_TYPES
from .qdq import QDQ_WEIGHT, check_dequantized, dequantized_zero_point, weight_dequantizer

if TYPE_CHECKING:
    from .chain import FoldPlan


def _adapter(view: GraphView, src: str, src_roles: list, dst_roles: list, base: str, out: str | None):
    """Squeeze/Transpose/Unsqueeze nodes taking a tensor laid out as src_roles to dst_roles."""
    if {r for r in src_roles if r is not None} != {r for r in dst_roles if r is not None}:
        raise Unprovable("internal: layouts do not hold the same axes")
    su = [i for i, r in enumerate(src_roles) if r is None]
    du = [i for i, r in enumerate(dst_roles) if r is None]
    pair = min(len(su), len(du))
    squeeze_axes, unsqueeze_axes = su[pair:], du[pair:]
    mid_src = [r for i, r in enumerate(src_roles) if i not in squeeze_axes]
    mid_dst = [r for i, r in enumerate(dst_roles) if i not in unsqueeze_axes]
    units = iter([i for i, r in enumerate(mid_src) if r is None])
    where = {r: i for i, r in enumerate(mid_src) if r is not None}
    perm = [next(units) if r is None else where[r] for r in mid_dst]
    steps = []
    if squeeze_axes:
        steps.append(("Squeeze", squeeze_axes))
    if perm != list(range(len(perm))):
        steps.append(("Transpose", perm))
    if unsqueeze_axes:
        steps.append(("Unsqueeze", unsqueeze_axes))
    nodes: list[NodeProto] = []
    current = src
    for i, (op, arg) in enumerate(steps):
        last = i == len(steps) - 1
        name = view.ctx.fresh(f"{base}_{op.lower()}")
        output = out if (last and out is not None) else view.ctx.fresh(f"{base}_{op.lower()}_out")
        if op == "Squeeze":
            node = make_squeeze(view, current, output, arg, name)
        elif op == "Unsqueeze":
            node = make_unsqueeze(view, current, output, arg, name)
        else:
            node = helper.make_node("Transpose", [current], [output], name=name, perm=arg)
        nodes.append(node)
        current = output
    return nodes, current


def _relaid_constant(view: GraphView, user: NodeProto, name: str, value: np.ndarray,
                     reshaped: dict[str, list[int]]) -> str:
    """`value` as a constant: the initializer `name` reshaped in place (dims only) when `user`, now removed,
    was its only reader, else a new initializer."""
    t = view.initializers.get(name)
    if t is not None and view.initializer(name) is t and not view.consumers_of(name) and not view.is_graph_output(name):
        del t.dims[:]
        t.dims.extend(value.shape)
        reshaped[name] = list(value.shape)
        return name
    return view.add_initializer(numpy_helper.from_array(value, view.ctx.fresh(f"{user.name or 'add'}_value")))


def apply_fold(view: GraphView, conv: NodeProto, plan: FoldPlan, before: ConvAttrs,
                removed_names: set[str], reshaped: dict[str, list[int]]) -> ConvAttrs:
    base = conv.name or "conv"
    for node in plan.chain + plan.dead:
        view.remove(node)
        removed_names.update(o for o in node.output if o)
    pre, pre_out = _adapter(view, plan.x, plan.x_roles, plan.conv_in_roles, f"{base}/dilated_in", None)
    if pre:
        view.insert_before(conv, pre)
    view.replace_input(conv, 0, pre_out)
    if conv.output[0] != plan.y:
        removed_names.add(conv.output[0])
    conv_out = view.ctx.fresh(f"{base}/dilated_out")
    moved = []
    current = conv_out
    rank = len(plan.conv_out_roles)
    for add, operand, values in plan.moved:  # per-channel constants, laid out for the conv output
        shape = [1] * rank
        if values.size > 1:
            shape[1] = values.size
        const = _relaid_constant(view, add, operand, values.reshape(shape), reshaped)
        out = view.ctx.fresh(f"{add.name or 'add'}_out")
        moved.append(helper.make_node("Add", [current, const], [out], name=view.ctx.fresh(add.name or "add")))
        current = out
    post, _ = _adapter(view, current, plan.conv_out_roles, plan.y_roles, f"{base}/dilated_out", plan.y)
    if not post:
        if moved:
            moved[-1].output[0] = plan.y
        else:
            conv_out = plan.y
    view.set_output(conv, 0, conv_out)
    if moved or post:
        view.insert_after(conv, moved + post)
    dilations, begins, ends = list(before.dilations), list(before.pads_begin), list(before.pads_end)
    for k, a in enumerate(plan.conv_axes):
        if a is None:
            continue
        dilations[k], begins[k], ends[k] = plan.axes[a]
    after = replace(before, dilations=tuple(dilations), pads_begin=tuple(begins), pads_end=tuple(ends),
                    auto_pad="NOTSET")
    after.apply(conv)
    return after





def weight_zero_point(view: GraphView, node: NodeProto, w: np.ndarray) -> np.ndarray | None:
    """What a tap holds when it contributes nothing, broadcastable to the weight: 0, or a quantized conv's weight
    zero point (ConvInteger's input 3, QLinearConv's input 5; scalar or one per output channel); None when that
    zero point is not a constant."""
    slot = ZERO_POINT_INPUT.get(node.op_type)
    if slot is None or len(node.input) <= slot or not node.input[slot]:
        return np.zeros((1,) * w.ndim, dtype=w.dtype)
    zp = _weight_array(view, node.input[slot])
    if zp is None or zp.size not in (1, w.shape[0]):
        return None
    return zp.astype(w.dtype).reshape((-1,) + (1,) * (w.ndim - 1))


# The weight zero point's input of each quantized conv (integer kernels: a tap holding it contributes nothing).
ZERO_POINT_INPUT = {"ConvInteger": 3, "QLinearConv": 5}


def _kernel(view: GraphView, node: NodeProto, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel array, the tap value that contributes nothing) of a float or quantized conv's weight, or of the
    integer tensor behind a QDQ Conv's DequantizeLinear (see qdq.py); Refusal saying why there is none."""
    dq = weight_dequantizer(view, node)
    if dq is None:
        w = _weight_array(view, node.input[WEIGHT_INPUT[node.op_type]])
        if w is None or w.ndim != ndim:
            raise Refusal("the weight is not a constant", [node])
        zp = weight_zero_point(view, node, w)
        if zp is None:
            raise Refusal("the weight's zero point is not a constant", [node])
        if node.op_type not in ZERO_POINT_INPUT and w.dtype.type not in FLOAT_TYPES:
            raise Refusal("the weight is not float", [node])
        return w, zp
    w = _weight_array(view, dq.input[0])
    if w is None or w.ndim != ndim:
        raise Refusal("the weight is not a constant", [node])
    check_dequantized(view, node, dq, w)
    zp = dequantized_zero_point(view, dq, w)
    if zp is None:
        raise Refusal(f"{QDQ_WEIGHT}the weight's zero point is not a constant", [node, dq])
    return w, zp


def _weight_array(view: GraphView, name: str) -> np.ndarray | None:
    t = view.initializer(name)
    if t is not None:
        if t.data_location == TensorProto.EXTERNAL:
            return None
        return numpy_helper.to_array(t)
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant":
        return view.const_value(name)
    return None


def store_weight(view: GraphView, node: NodeProto, array: np.ndarray, dropped: set[str],
                  reshaped: dict[str, list[int]]) -> None:
    """Put the new kernel in place: in the initializer when only this node reads it, else in a copy."""
    dq = weight_dequantizer(view, node)
    if dq is not None:  # QDQ: the integer tensor changes in place (qdq.check_dequantized: read by the DQ alone)
        name = dq.input[0]
        view.initializers[name].CopyFrom(numpy_helper.from_array(array, name))
        view.tensor_changed(name)
        reshaped[name] = reshaped[dq.output[0]] = list(array.shape)
        return
    slot = WEIGHT_INPUT[node.op_type]
    name = node.input[slot]
    t = view.initializers.get(name)
    sole = (
        t is not None
        and view.initializer(name) is t
        and [id(u) for u in view.consumers_of(name)] == [id(node)]
        and not view.is_graph_output(name)
    )
    if sole:
        t.CopyFrom(numpy_helper.from_array(array, name))
        view.tensor_changed(name)
        reshaped[name] = list(array.shape)
        return
    new_name = view.ctx.fresh(f"{name}_dilated")
    view.add_initializer(numpy_helper.from_array(array, new_name))
    view.replace_input(node, slot, new_name)
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant" and not view.consumers_of(name) \
            and not view.is_graph_output(name):
        view.remove(producer)
    dropped.add(name)


@dataclass
class KernelChange:
    after: ConvAttrs
    array: np.ndarray
    details: dict
    counter: str


def _input_sizes(view: GraphView, node: NodeProto, rank: int) -> list[int | None]:
    s = view.shape(node.input[0])
    if s is None or s.dims is None or len(s.dims) != rank + 2:
        return [None] * rank
    return [d if isinstance(d, int) else None for d in s.dims[2:]]


def compact(view: GraphView, node: NodeProto, attrs: ConvAttrs) -> KernelChange | None:
    """The compact kernel of a zero-inserted one; None when there is none, Refusal when it cannot be made."""
    if all(k < 3 for k in attrs.kernel_shape):
        return None
    try:
        w, zp = _kernel(view, node, attrs.rank + 2)
    except Refusal as no:  # a QDQ weight says why; a weight that is not a constant float has no such kernel
        if no.reason.startswith(QDQ_WEIGHT):
            raise
        return None
    nz = w != zp  # the taps that contribute: 0.0 in a float kernel, the zero point in an integer one
    factors = []
    for a, K in enumerate(attrs.kernel_shape):
        if K < 3:
            factors.append(1)
            continue
        if np.any(np.take(nz, 1, axis=a + 2)):  # tap 1 must be zero for any d >= 2 (the usual early exit)
            factors.append(1)
            continue
        other = tuple(i for i in range(w.ndim) if i != a + 2)
        nonzero = np.flatnonzero(np.any(nz, axis=other))
        if nonzero.size == 0:
            factors.append(1)
            continue
        g = K - 1
        for i in nonzero:
            g = math.gcd(g, int(i))
        factors.append(g)
    if all(f == 1 for f in factors):
        return None
    index = (slice(None), slice(None)) + tuple(slice(None, None, f) for f in factors)
    compact = np.ascontiguousarray(w[index])
    after = replace(
        attrs,
        kernel_shape=tuple((K - 1) // f + 1 for K, f in zip(attrs.kernel_shape, factors)),
        dilations=tuple(d * f for d, f in zip(attrs.dilations, factors)),
    )
    if after.auto_pad != "NOTSET" or after.output_shape is not None:
        resolved = after.resolved(_input_sizes(view, node, attrs.rank))
        if resolved is None:
            raise Refusal(f"zero-inserted kernel (taps every {factors}), but auto_pad {attrs.auto_pad} pads depend "
                          "on a dynamic input size and onnxruntime refuses SAME with dilations", [node])
        after = resolved
    details = {"pattern": "zero_inserted_kernel", "factors": factors}
    return KernelChange(after, compact, details, "kernels_compacted")


def expand(view: GraphView, node: NodeProto, attrs: ConvAttrs) -> KernelChange:
    """The zero-inserted kernel of a dilated conv (dilations reset to 1); Refusal when it cannot be made."""
    if all(d == 1 for d in attrs.dilations):
        raise Refusal("no dilations to expand", [node])
    w, zp = _kernel(view, node, attrs.rank + 2)
    shape = list(w.shape[:2]) + [d * (k - 1) + 1 for d, k in zip(attrs.dilations, attrs.kernel_shape)]
    expanded = np.empty(shape, dtype=w.dtype)
    expanded[...] = zp  # inserted taps contribute nothing: 0.0, or an integer kernel's zero point
    index = (slice(None), slice(None)) + tuple(slice(None, None, d) for d in attrs.dilations)
    expanded[index] = w
    after = replace(attrs, kernel_shape=tuple(shape[2:]), dilations=(1,) * attrs.rank)
    details = {"pattern": "expanded_dilations", "factors": list(attrs.dilations)}
    return KernelChange(after, expanded, details, "kernels_expanded")
