"""What the region engine decides per node (NodePlan, Block, Wait), the op families it knows, and axis helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass, field
from typing import Callable, Sequence
from onnx import NodeProto, TensorProto

from ...engine import Refusal
from ...conv import CONV_OPS, WEIGHT_INPUT, ConvAttrError, ConvAttrs
from ...graph import GraphView, attr, constant_node_tensor, unsqueeze_axes

if TYPE_CHECKING:
    from .engine import RegionEngine


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


class Block(Refusal):
    """The node cannot join the region, and why (`reason`); returned as a plan value, one shape with every refusal."""


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


OpRule = Callable[["RegionEngine", NodeProto, str, int, int, bool], "NodePlan | Block | Wait"]


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

    Not graph/layout's `walk_up`: that follows one chain of single-input ops to the first other op; this is
    a search over (tensor, axis) pairs that branches at every multi-input op (elementwise, Concat) and needs
    all branches proven, through ops (pools, convs, Slice, Pad) that change sizes but keep a 1 on the axis.
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
