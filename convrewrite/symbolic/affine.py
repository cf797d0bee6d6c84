"""Affine forms a*L + b over one dynamic length: the run-time slice ends a causal fold must prove.

Why here: the causal fold and `inventory` both evaluate small int expressions
over `Shape(conv input/output)` (Shape -> Gather -> Sub -> Unsqueeze) to learn
how much a Slice drops; one evaluator, public names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import NodeProto

from ..conv import ConvAttrs, effective_kernel
from ..refusal import Refusal
from ..graph import GraphView, attr, squeeze_array, unsqueeze_array

STD_DOMAINS = ("", "ai.onnx")
# Depth of the run-time slice-end expressions we try to prove (Shape -> Gather -> Sub -> Unsqueeze is 4).
SYMBOLIC_DEPTH = 12


def static_operands(view: GraphView, slc: NodeProto):
    """starts, axes, steps of an opset >= 10 Slice whose ends alone is computed; Refusal saying why not."""
    if view.opset < 10:
        raise Refusal("Slice bounds are missing", [slc])
    starts = view.const_ints(slc.input[1]) if len(slc.input) > 1 and slc.input[1] else None
    if starts is None:
        raise Refusal("slice start is computed at run time", [slc])
    axes = steps = None
    if len(slc.input) > 3 and slc.input[3]:
        axes = view.const_ints(slc.input[3])
        if axes is None:
            raise Refusal("slice axes are computed at run time", [slc])
    if len(slc.input) > 4 and slc.input[4]:
        steps = view.const_ints(slc.input[4])
        if steps is None:
            raise Refusal("slice steps are computed at run time", [slc])
    return starts, axes, steps


@dataclass(frozen=True)
class Affine:
    """a * L + b, L the conv input's (dynamic) length on the sliced axis."""

    a: int
    b: int

    def _lift(self, other):
        if isinstance(other, Affine):
            return other
        if isinstance(other, (int, np.integer)):
            return Affine(0, int(other))
        raise NotAffine

    def __add__(self, other):
        o = self._lift(other)
        return Affine(self.a + o.a, self.b + o.b)

    __radd__ = __add__

    def __sub__(self, other):
        o = self._lift(other)
        return Affine(self.a - o.a, self.b - o.b)

    def __rsub__(self, other):
        return self._lift(other) - self

    def __neg__(self):
        return Affine(-self.a, -self.b)

    def __mul__(self, other):
        o = self._lift(other)
        if self.a and o.a:
            raise NotAffine
        return Affine(self.a * o.b + o.a * self.b, self.b * o.b)

    __rmul__ = __mul__


class NotAffine(Refusal):
    """The expression is not a known affine function of the length."""


def output_affine(attrs: ConvAttrs, j: int) -> Affine | None:
    """The conv's output length on spatial axis j as a*L + b, when it is affine in L."""
    k, s, d = attrs.kernel_shape[j], attrs.strides[j], attrs.dilations[j]
    pb, pe, span = attrs.pads_begin[j], attrs.pads_end[j], effective_kernel(k, d)
    if attrs.transposed:
        return Affine(s, attrs.output_padding[j] + span - s - pb - pe)
    if s == 1:
        return Affine(1, pb + pe - span + 1)
    return None


def shape_symbols(shape, axis: int, symbol: Affine) -> np.ndarray | None:
    """A Shape() result: static dims as constants, the sliced axis as `symbol`, other dynamic dims unknown."""
    if shape is None or shape.dims is None:
        return None
    out = np.empty(len(shape.dims), dtype=object)
    for i, d in enumerate(shape.dims):
        out[i] = symbol if i == axis else (Affine(0, d) if isinstance(d, int) else None)
    return out


def symbolic(view: GraphView, name: str, symbols: dict, visited: list[NodeProto], depth: int):
    """Evaluate a small int expression over Shape(conv input/output) as an object array of Affine."""
    if depth <= 0:
        return None
    const = view.const_value(name)
    if const is not None:
        if const.dtype.kind not in "iu":
            return None
        if not const.size:
            return const.astype(object)
        return np.vectorize(lambda v: Affine(0, int(v)), otypes=[object])(const)
    node = view.producer_of(name)
    if node is None or node.domain not in STD_DOMAINS:
        return None
    visited.append(node)
    op = node.op_type
    if op == "Shape":
        vec = symbols.get(node.input[0])
        if vec is None:
            return None
        start, end = attr(node, "start", 0), attr(node, "end", None)
        return vec[start:end] if end is not None else vec[start:]
    args = []
    for i in node.input:
        if not i:
            args.append(None)
            continue
        v = symbolic(view, i, symbols, visited, depth - 1)
        if v is None:
            return None
        args.append(v)
    result = symbolic_op(view, node, args)
    return None if result is None else np.asarray(result, dtype=object)


def symbolic_op(view: GraphView, node: NodeProto, args: list):
    op = node.op_type
    if op in ("Identity",):
        return args[0]
    if op == "Cast":
        to = attr(node, "to")
        return args[0] if to in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) else None
    if op in ("Add", "Sub", "Mul", "Neg"):
        try:
            if op == "Neg":
                return -args[0]
            fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op]
            return fn(args[0], args[1])
        except (TypeError, ValueError):
            return None
    if op == "Gather":
        idx = _ints(args[1])
        if idx is None:
            return None
        return np.take(args[0], idx.astype(np.int64), axis=attr(node, "axis", 0))
    if op in ("Unsqueeze", "Squeeze"):
        axes = attr(node, "axes") if view.opset < 13 else (
            _ints(args[1]).reshape(-1).tolist() if len(args) > 1 and args[1] is not None else None)
        if op == "Squeeze":
            return squeeze_array(args[0], axes)
        return None if axes is None else unsqueeze_array(args[0], axes)
    if op == "Reshape":
        shape = _ints(args[1])
        if shape is None:
            return None
        shape = [args[0].shape[i] if v == 0 else int(v) for i, v in enumerate(shape.reshape(-1))]
        return args[0].reshape(shape)
    if op == "Concat":
        return np.concatenate([a for a in args if a is not None], axis=attr(node, "axis"))
    if op == "Slice" and view.opset >= 10:
        starts, ends = _ints(args[1]), _ints(args[2])
        axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else None
        steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else None
        if starts is None or ends is None or args[0].ndim != 1:
            return None
        if (axes is not None and axes.reshape(-1).tolist() not in ([0], [-1])) or starts.size != 1:
            return None
        step = int(steps.reshape(-1)[0]) if steps is not None else 1
        return args[0][int(starts.reshape(-1)[0]):int(ends.reshape(-1)[0]):step]
    return None


def _ints(value) -> np.ndarray | None:
    """An object array of constant Affine as ints (None if any element depends on the length)."""
    if value is None:
        return None
    flat = value.reshape(-1)
    out = []
    for v in flat:
        if not isinstance(v, Affine) or v.a != 0:
            return None
        out.append(v.b)
    return np.asarray(out, dtype=np.int64).reshape(value.shape)
