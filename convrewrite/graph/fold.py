"""Constant folding of small operand chains (pads, axes, slice bounds, shapes), never weights.

Why apart from the view: it is the one evaluator of constant chains every
pass reads operands through (`GraphView.const_value`), with the one op table
(CONCRETE_OPS, `eval_node`) and the one op set the cleanup also uses
(CONSTANT_CHAIN_OPS). The symbolic interpreter (convrewrite/symbolic) reads
Constant nodes, ConstantOfShape fills and Slice bounds with the helpers here,
and hands an all-constant node it has no rule for to `eval_node` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from .attrs import attr
from .ops import squeeze_array, unsqueeze_array

if TYPE_CHECKING:
    from .core import GraphView

INT64_MAX = 2**63 - 1


INT32_MAX = 2**31 - 1


# Constant folding is for small operand chains (pads, axes, slice bounds), never weights.
FOLD_MAX_ELEMENTS = 1 << 16


# The one constant-chain op set: ops that only compute small operands (shapes, pads, axes, scales), never
# anything with effects. Constant folding follows them; the cleanup removes them once nothing reads them.
# (`CONSTANT_CHAIN_OPS`, below the one op table: its ops and the two shape readers.)


def fold_constant(view: GraphView, name: str, cache: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """Evaluate `name` if it depends on constants only (iterative; small tensors only)."""
    results: dict[str, np.ndarray | None] = {}
    stack: list[tuple[str, bool]] = [(name, False)]
    while stack:
        current, expanded = stack.pop()
        if current in results:
            continue
        cached = cache.get(current, ...) if current != name else ...
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
                outs = eval_node(view, node, args)
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
            cache[current] = value
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


def _eval_constant(view, node, args):
    return [constant_node_value(node)]


def _eval_cast(view, node, args):
    return [args[0].astype(helper.tensor_dtype_to_np_dtype(attr(node, "to")))]


def _eval_reshape(view, node, args):
    shape = [int(v) for v in args[1].reshape(-1)]
    if not attr(node, "allowzero", 0):
        shape = [args[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [args[0].reshape(shape)]


def _eval_flatten(view, node, args):
    axis = attr(node, "axis", 1)
    a = args[0]
    axis = axis + a.ndim if axis < 0 else axis
    return [a.reshape(int(np.prod(a.shape[:axis])), -1)]


def _eval_unsqueeze_squeeze(view, node, args):
    axes = attr(node, "axes") if view.opset < 13 else (
        [int(v) for v in args[1].reshape(-1)] if len(args) > 1 and args[1] is not None else None
    )
    if node.op_type == "Unsqueeze":
        return [unsqueeze_array(args[0], axes)]
    return [squeeze_array(args[0], axes)]


_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum,
           "Min": np.minimum}


def _eval_binary(view, node, args):
    a, b = args[0], args[1]
    if node.op_type == "Div" and a.dtype.kind in "iu":
        return [(a // b).astype(a.dtype)]
    return [_BINARY[node.op_type](a, b).astype(np.result_type(a, b))]


def _eval_constant_of_shape(view, node, args):
    fill = constant_of_shape_fill(node)
    return [np.full([int(v) for v in args[0].reshape(-1)], fill, dtype=np.asarray(fill).dtype)]


def _eval_expand(view, node, args):
    shape = [int(v) for v in args[1].reshape(-1)]
    return [args[0] * np.ones(shape, dtype=args[0].dtype)]


# The one table of concrete constant evaluation: op -> (view, node, input arrays) -> output arrays. Shape and
# Size read inferred shapes instead (`fold_constant`); the symbolic interpreter hands its all-constant nodes of
# ops it has no rule for to `eval_node` first.
CONCRETE_OPS: dict[str, Callable[[Any, NodeProto, list], list[np.ndarray | None]]] = {
    "Constant": _eval_constant,
    "Identity": lambda view, node, args: [args[0]],
    "Cast": _eval_cast,
    "Reshape": _eval_reshape,
    "Flatten": _eval_flatten,
    "Concat": lambda view, node, args: [np.concatenate([a for a in args if a is not None], axis=attr(node, "axis"))],
    "Transpose": lambda view, node, args: [np.transpose(args[0], attr(node, "perm"))],
    "ConstantOfShape": _eval_constant_of_shape,
    "Unsqueeze": _eval_unsqueeze_squeeze,
    "Squeeze": _eval_unsqueeze_squeeze,
    "Gather": lambda view, node, args: [np.take(args[0], args[1], axis=attr(node, "axis", 0))],
    **{op: _eval_binary for op in _BINARY},
    "Neg": lambda view, node, args: [-args[0]],
    "Abs": lambda view, node, args: [np.abs(args[0])],
    "Range": lambda view, node, args: [np.arange(args[0], args[1], args[2]).astype(args[0].dtype)],
    "Expand": _eval_expand,
    "Slice": lambda view, node, args: [_eval_slice(view, node, args)],
}


CONSTANT_CHAIN_OPS = frozenset(CONCRETE_OPS) | {"Shape", "Size"}


def eval_node(view: GraphView, node: NodeProto, args: list) -> list[np.ndarray | None] | None:
    """The node's outputs from its input arrays by the one table (None: an op it does not evaluate)."""
    fn = CONCRETE_OPS.get(node.op_type)
    return fn(view, node, args) if fn is not None else None


def constant_of_shape_fill(node: NodeProto):
    """The scalar a ConstantOfShape fills with (float32 0 by default)."""
    value = attr(node, "value")
    return numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)


def constant_node_value(node: NodeProto) -> np.ndarray | None:
    """A Constant node's numeric value (value, value_int(s), value_float(s)), or None."""
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
        index[a] = slice(*clamp_slice(s, e, st, dim))
    return data[tuple(index)]


def clamp_slice(start: int, end: int, step: int, dim: int) -> tuple[int | None, int | None, int]:
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
        s, e, _ = clamp_slice(start, end, 1, dim)
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
