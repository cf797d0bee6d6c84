"""The shape interpreter: evaluates a graph's shape computations (Shape, Gather, Div, Slice, Concat...) on
affine forms over residue classes, so a pass can prove a shape-computed lowering exact for every length.

Why here: it is ~500 lines of symbolic arithmetic that knows nothing about
dilation; the dilated fold asks it questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

from ..graph import (
    CONCRETE_OPS, GraphView, attr, clamp_slice, constant_node_value, constant_of_shape_fill, eval_node, squeeze_array,
    unsqueeze_array,
)
from .residue import Domain, Lin, Unprovable, check_divisible, trunc_div

SHAPE_READERS = {"Shape", "Size"}
MAX_SHAPE_NODES = 4000  # nodes the shape interpreter may visit for one chain
MAX_VALUE_ELEMENTS = 4096  # shape tensors only
# What malformed shape computations raise inside numpy/int arithmetic: turned into Unprovable.
MALFORMED = (IndexError, ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError)


@dataclass
class Sym:
    """A small tensor of affine forms: kind "int", "bool" or "float" (floats only as constants)."""

    kind: str
    data: np.ndarray  # dtype object, elements Lin

    def ints(self, what: str) -> list[int]:
        out = []
        for x in self.data.reshape(-1):
            if not x.is_const() or self.kind == "float":
                raise Unprovable(f"{what} is not a constant")
            out.append(int(x.c))
        return out

    def is_const(self) -> bool:
        return all(x.is_const() for x in self.data.reshape(-1))


def sym_from_array(value: np.ndarray, domain: Domain) -> Sym:
    value = np.asarray(value)
    if value.size > MAX_VALUE_ELEMENTS:
        raise Unprovable("a shape operand is a large tensor")
    if value.dtype == np.bool_:
        kind, conv = "bool", int
    elif value.dtype.kind in "iu":
        kind, conv = "int", int
    elif value.dtype.kind == "f":
        kind, conv = "float", float
    else:
        raise Unprovable(f"a shape operand has dtype {value.dtype}")
    data = np.empty(value.shape, dtype=object)
    flat = data.reshape(-1)
    for i, v in enumerate(value.reshape(-1)):
        flat[i] = domain.const(conv(v))
    return Sym(kind, data)


def lins(values: Sequence[Lin]) -> np.ndarray:
    data = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        data[i] = v
    return data


def elementwise(fn: Callable, *arrays: np.ndarray) -> np.ndarray:
    out = np.frompyfunc(fn, len(arrays), 1)(*arrays)
    return np.asarray(out, dtype=object) if isinstance(out, np.ndarray) else scalar(out)


def scalar(value: Lin) -> np.ndarray:
    data = np.empty((), dtype=object)
    data[()] = value
    return data


INT_TYPES = {TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
             TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}


FLOAT_ONNX_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


class ShapeInterpreter:
    """Evaluates the integer subgraph that computes a chain's operands, exactly, on one Domain.

    `shape_of(name)` gives the dims of chain tensors and of x (forms), or None
    for other tensors (then a static inferred shape, or the value's own shape,
    is used).
    """

    def __init__(self, view: GraphView, domain: Domain, shape_of: Callable[[str], list[Lin] | None],
                 shared: dict[str, Sym] | None = None) -> None:
        self.view = view
        self.domain = domain
        self.shape_of = shape_of
        self.memo: dict[str, Sym] = {}
        # values that do not depend on the input size, shared by the residue classes of one chain
        self.shared = shared if shared is not None else {}
        self.visited: list[NodeProto] = []
        self._pushed: set[int] = set()

    # ------------------------------------------------------------ driving

    def value(self, name: str) -> Sym:
        if name in self.memo:
            return self.memo[name]
        stack = [name]
        while stack:
            current = stack[-1]
            if current in self.memo:
                stack.pop()
                continue
            if current in self.shared:  # computed (and visited) by an earlier residue class
                self.memo[current] = self.shared[current]
                stack.pop()
                continue
            leaf = self._leaf(current)
            if leaf is not None:
                self.memo[current] = self.shared[current] = leaf
                stack.pop()
                continue
            node = self.view.producer_of(current)
            if node is None:
                raise Unprovable(f"{current} is neither a constant nor computed from shapes")
            missing = [d for d in self._deps(node) if d not in self.memo]
            if missing:
                if id(node) in self._pushed:
                    raise Unprovable("cycle in the shape subgraph")
                self._pushed.add(id(node))
                stack.extend(missing)
                continue
            if len(self.visited) >= MAX_SHAPE_NODES:
                raise Unprovable("the shape subgraph is too large")
            self.visited.append(node)
            outs = self._eval(node)
            constant = node.op_type not in SHAPE_READERS and all(i in self.shared for i in node.input if i)
            for out_name, sym in zip(node.output, outs):
                if out_name:
                    if sym.data.size > MAX_VALUE_ELEMENTS:
                        raise Unprovable("a shape value is a large tensor")
                    self.memo[out_name] = sym
                    if constant:
                        self.shared[out_name] = sym
            if current not in self.memo:
                raise Unprovable(f"{node.op_type} gave no value for {current}")
            stack.pop()
        return self.memo[name]

    def _leaf(self, name: str) -> Sym | None:
        view = self.view
        t = view.initializer(name)
        if t is not None:
            if int(np.prod(t.dims)) > MAX_VALUE_ELEMENTS:
                raise Unprovable(f"{name} is a large initializer")
            return sym_from_array(numpy_helper.to_array(t), self.domain)
        if view.producer_of(name) is None:
            value = view.const_value(name)
            if value is None:
                raise Unprovable(f"{name} is neither a constant nor computed from shapes")
            return sym_from_array(value, self.domain)
        return None

    def _deps(self, node: NodeProto) -> list[str]:
        if node.domain not in ("", "ai.onnx"):
            raise Unprovable(f"{node.op_type} from domain {node.domain} in the shape subgraph")
        if node.op_type in SHAPE_READERS:
            return [] if self._dims(node.input[0]) is not None else [node.input[0]]
        if node.op_type == "Constant":
            return []
        return [i for i in node.input if i]

    def _dims(self, name: str) -> list[Lin] | None:
        dims = self.shape_of(name)
        if dims is not None:
            return dims
        s = self.view.shape(name)
        if s is not None and s.dims is not None and all(isinstance(d, int) for d in s.dims):
            return [self.domain.const(int(d)) for d in s.dims]
        return None

    # ------------------------------------------------------------ ops

    def _eval(self, node: NodeProto) -> list[Sym]:
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            return self._fallback(node)
        try:
            out = handler(node)
        except MALFORMED as exc:
            raise Unprovable(f"{node.op_type} {node.name} in the shape subgraph: {exc}") from None
        return out if isinstance(out, list) else [out]

    def _in(self, node: NodeProto, i: int) -> Sym | None:
        if len(node.input) <= i or not node.input[i]:
            return None
        return self.memo[node.input[i]]

    def _fallback(self, node: NodeProto) -> list[Sym]:
        """Any other op: computed by onnx's reference evaluator when every input is a constant."""
        inputs = [self._in(node, i) for i in range(len(node.input))]
        if not all(s is None or s.is_const() for s in inputs):
            raise Unprovable(f"{node.op_type} on a size-dependent value")
        arrays = []
        for s in inputs:
            if s is None:
                arrays.append(None)
            else:
                arrays.append(to_numpy(s))
        if node.op_type in CONCRETE_OPS and node.domain in ("", "ai.onnx"):  # graph/fold's table first: one evaluator
            try:
                results = eval_node(self.view, node, arrays)
            except MALFORMED as exc:
                raise Unprovable(f"{node.op_type} in the shape subgraph cannot be evaluated ({exc})") from None
            return [sym_from_array(np.asarray(r), self.domain) for r in results]
        try:
            from onnx.reference import ReferenceEvaluator

            feeds = {f"i{i}": a for i, a in enumerate(arrays) if a is not None}
            ins = [f"i{i}" if a is not None else "" for i, a in enumerate(arrays)]
            outs = [f"o{i}" for i in range(len(node.output))]
            clone = helper.make_node(node.op_type, ins, outs, domain=node.domain)
            clone.attribute.extend(node.attribute)
            graph = helper.make_graph(
                [clone], "fold",
                [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                 for k, v in feeds.items()],
                [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outs],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.view.opset)])
            results = ReferenceEvaluator(model).run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - an op we cannot evaluate makes the chain unprovable
            raise Unprovable(f"{node.op_type} in the shape subgraph cannot be evaluated ({exc})") from None
        return [sym_from_array(np.asarray(r), self.domain) for r in results]

    def _op_Constant(self, node: NodeProto) -> Sym:
        value = constant_node_value(node)  # graph/fold's reading: one for constants and shapes
        if value is None:
            raise Unprovable("Constant without a numeric value")
        return sym_from_array(value, self.domain)

    def _op_Identity(self, node: NodeProto) -> Sym:
        return self._in(node, 0)

    def _op_Shape(self, node: NodeProto) -> Sym:
        dims = self._dims(node.input[0])
        if dims is None:
            dims = [self.domain.const(int(d)) for d in self.memo[node.input[0]].data.shape]
        start, end = attr(node, "start", 0), attr(node, "end", None)
        r = len(dims)
        start = min(max(start + r if start < 0 else start, 0), r)
        end = r if end is None else min(max(end + r if end < 0 else end, 0), r)
        return Sym("int", lins(dims[start:end]))

    def _op_Size(self, node: NodeProto) -> Sym:
        dims = self._dims(node.input[0])
        if dims is None:
            dims = [self.domain.const(int(d)) for d in self.memo[node.input[0]].data.shape]
        return Sym("int", scalar(product(dims, self.domain, "a Size")))

    def _op_Cast(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        to = attr(node, "to")
        if to in INT_TYPES:
            if x.kind == "float":
                return Sym("int", elementwise(lambda v: Lin(int(v.c), v.k), x.data))
            if x.is_const():
                dtype = helper.tensor_dtype_to_np_dtype(to)
                vals = np.array([int(v.c) for v in x.data.reshape(-1)], dtype=np.int64).astype(dtype)
                return sym_from_array(vals.reshape(x.data.shape), self.domain)
            unsigned = helper.tensor_dtype_to_np_dtype(to).kind == "u"
            if unsigned and not all(self.domain.nonneg(v) for v in x.data.reshape(-1)):
                raise Unprovable("Cast of a value that may be negative to an unsigned type")
            return Sym("int", x.data)  # sizes stay below 2**31: no wrap-around
        if to == TensorProto.BOOL:
            if not x.is_const():
                raise Unprovable("Cast of a size to bool")
            return Sym("bool", elementwise(lambda v: self.domain.const(int(v.c != 0)), x.data))
        if to in FLOAT_ONNX_TYPES:
            if not x.is_const():
                raise Unprovable("Cast of a size to float")
            return Sym("float", elementwise(lambda v: self.domain.const(float(v.c)), x.data))
        raise Unprovable(f"Cast to type {to}")

    def _binary(self, node: NodeProto, fn: Callable[[Lin, Lin], Lin], kind: str | None = None) -> Sym:
        a, b = self._in(node, 0), self._in(node, 1)
        if a.kind != b.kind:
            raise Unprovable(f"{node.op_type} of {a.kind} and {b.kind}")
        return Sym(kind or a.kind, elementwise(fn, a.data, b.data))

    def _op_Add(self, node: NodeProto) -> Sym:
        return self._binary(node, lambda x, y: x + y)

    def _op_Sub(self, node: NodeProto) -> Sym:
        return self._binary(node, lambda x, y: x - y)

    def _op_Neg(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        return Sym(x.kind, elementwise(lambda v: -v, x.data))

    def _op_Mul(self, node: NodeProto) -> Sym:
        def mul(x: Lin, y: Lin) -> Lin:
            if x.is_const():
                return y.scale(x.c) if not y.is_const() else Lin(x.c * y.c, y.k)
            if y.is_const():
                return x.scale(y.c)
            raise Unprovable("a product of two sizes")

        return self._binary(node, mul)

    def _op_Div(self, node: NodeProto) -> Sym:
        if self._in(node, 0).kind != "int":
            return self._const_only(node)
        domain = self.domain

        def div(x: Lin, y: Lin) -> Lin:
            if not y.is_const() or y.c == 0:
                raise Unprovable("Div by a size or by zero")
            if x.is_const():
                return domain.const(trunc_div(int(x.c), int(y.c)))
            d = int(y.c)
            if d < 0:
                raise Unprovable("Div of a size by a negative constant")
            check_divisible(x, d)
            if not domain.nonneg(x):
                raise Unprovable("Div of a value that may be negative")
            return Lin(x.c // d, tuple(k // d for k in x.k))

        return self._binary(node, div)

    def _op_Mod(self, node: NodeProto) -> Sym:
        fmod = attr(node, "fmod", 0)
        domain = self.domain

        def mod(x: Lin, y: Lin) -> Lin:
            if not y.is_const() or y.c == 0:
                raise Unprovable("Mod by a size or by zero")
            d = int(y.c)
            if x.is_const():
                a = int(x.c)
                return domain.const(a - d * trunc_div(a, d) if fmod else a % d)
            if d < 0:
                raise Unprovable("Mod of a size by a negative constant")
            check_divisible(x, d)
            if fmod and not domain.nonneg(x):
                raise Unprovable("fmod of a value that may be negative")
            return domain.const(int(x.c) % d)

        if self._in(node, 0).kind != "int":
            return self._const_only(node)
        return self._binary(node, mod)

    def _const_only(self, node: NodeProto) -> Sym:
        return self._fallback(node)[0]

    def _op_Abs(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        zero = self.domain.const(0)
        return Sym(x.kind, elementwise(lambda v: v if self.domain.ge(v, zero, "Abs") else -v, x.data))

    def _minmax(self, node: NodeProto, want_max: bool) -> Sym:
        args = [self._in(node, i) for i in range(len(node.input)) if node.input[i]]
        out = args[0]
        for other in args[1:]:
            def pick(x: Lin, y: Lin) -> Lin:
                x_ge = self.domain.ge(x, y, node.op_type)
                return x if x_ge == want_max else y

            out = Sym(out.kind, elementwise(pick, out.data, other.data))
        return out

    def _op_Max(self, node: NodeProto) -> Sym:
        return self._minmax(node, True)

    def _op_Min(self, node: NodeProto) -> Sym:
        return self._minmax(node, False)

    def _compare(self, node: NodeProto, fn: Callable[[Lin, Lin], bool]) -> Sym:
        return self._binary(node, lambda x, y: self.domain.const(int(fn(x, y))), kind="bool")

    def _op_Equal(self, node: NodeProto) -> Sym:
        return self._compare(node, lambda x, y: self.domain.eq(x, y, "Equal"))

    def _op_Greater(self, node: NodeProto) -> Sym:
        return self._compare(node, lambda x, y: not self.domain.ge(y, x, "Greater"))

    def _op_Less(self, node: NodeProto) -> Sym:
        return self._compare(node, lambda x, y: not self.domain.ge(x, y, "Less"))

    def _op_GreaterOrEqual(self, node: NodeProto) -> Sym:
        return self._compare(node, lambda x, y: self.domain.ge(x, y, "GreaterOrEqual"))

    def _op_LessOrEqual(self, node: NodeProto) -> Sym:
        return self._compare(node, lambda x, y: self.domain.ge(y, x, "LessOrEqual"))

    def _op_Not(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        return Sym("bool", elementwise(lambda v: self.domain.const(1 - int(v.c)), x.data))

    def _op_And(self, node: NodeProto) -> Sym:
        return self._binary(node, lambda x, y: self.domain.const(int(x.c and y.c)))

    def _op_Or(self, node: NodeProto) -> Sym:
        return self._binary(node, lambda x, y: self.domain.const(int(x.c or y.c)))

    def _op_Where(self, node: NodeProto) -> Sym:
        cond, a, b = self._in(node, 0), self._in(node, 1), self._in(node, 2)
        if a.kind != b.kind:
            raise Unprovable("Where of mixed types")
        return Sym(a.kind, elementwise(lambda c, x, y: x if c.c else y, cond.data, a.data, b.data))

    # -- structure ops: their index operands must be constants

    def _axes(self, node: NodeProto, input_index: int) -> list[int] | None:
        if self.view.opset < 13:
            value = attr(node, "axes")
            return list(value) if value is not None else None
        s = self._in(node, input_index)
        return None if s is None else s.ints(f"{node.op_type} axes")

    def _op_Unsqueeze(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        return Sym(x.kind, unsqueeze_array(x.data, self._axes(node, 1) or []))

    def _op_Squeeze(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        return Sym(x.kind, squeeze_array(x.data, self._axes(node, 1)))

    def _op_Reshape(self, node: NodeProto) -> Sym:
        x, shape = self._in(node, 0), self._in(node, 1).ints("Reshape shape")
        if any(v < -1 for v in shape) or shape.count(-1) > 1:
            raise Unprovable("Reshape shape in the shape subgraph is not valid")
        if not attr(node, "allowzero", 0):
            shape = [x.data.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return Sym(x.kind, x.data.reshape(shape))

    def _op_Flatten(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        axis = attr(node, "axis", 1)
        axis = axis + x.data.ndim if axis < 0 else axis
        return Sym(x.kind, x.data.reshape(int(np.prod(x.data.shape[:axis])), -1))

    def _op_Transpose(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        perm = attr(node, "perm")
        return Sym(x.kind, np.transpose(x.data, perm))

    def _op_Concat(self, node: NodeProto) -> Sym:
        parts = [self._in(node, i) for i in range(len(node.input)) if node.input[i]]
        kinds = {p.kind for p in parts}
        if len(kinds) != 1:
            raise Unprovable("Concat of mixed types")
        axis = attr(node, "axis", 0)
        rank = parts[0].data.ndim
        return Sym(parts[0].kind, np.concatenate([p.data for p in parts], axis=axis + rank if axis < 0 else axis))

    def _op_Gather(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        idx_sym = self._in(node, 1)
        axis = attr(node, "axis", 0)
        axis = axis + x.data.ndim if axis < 0 else axis
        idx = np.array(idx_sym.ints("Gather indices"), dtype=np.int64).reshape(idx_sym.data.shape)
        idx = np.where(idx < 0, idx + x.data.shape[axis], idx)
        return Sym(x.kind, np.take(x.data, idx, axis=axis))

    def _op_Slice(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        if self.view.opset < 10:
            starts, ends, axes, steps = attr(node, "starts"), attr(node, "ends"), attr(node, "axes"), None
        else:
            starts = self._in(node, 1).ints("Slice starts")
            ends = self._in(node, 2).ints("Slice ends")
            axes = self._in(node, 3).ints("Slice axes") if self._in(node, 3) is not None else None
            steps = self._in(node, 4).ints("Slice steps") if self._in(node, 4) is not None else None
        axes = list(range(len(starts))) if axes is None else list(axes)
        steps = [1] * len(starts) if steps is None else steps
        index = [slice(None)] * x.data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            a = a + x.data.ndim if a < 0 else a
            index[a] = python_slice(s, e, st, x.data.shape[a])
        return Sym(x.kind, x.data[tuple(index)])

    def _op_Split(self, node: NodeProto) -> list[Sym]:
        x = self._in(node, 0)
        axis = attr(node, "axis", 0)
        axis = axis + x.data.ndim if axis < 0 else axis
        if self.view.opset >= 13:
            sizes = self._in(node, 1).ints("Split sizes") if self._in(node, 1) is not None else None
        else:
            sizes = attr(node, "split")
        n = len(node.output)
        dim = x.data.shape[axis]
        if sizes is None:
            chunk = -(-dim // n)
            sizes = [min(chunk, dim - i * chunk) for i in range(n)]
        bounds = np.cumsum([0] + list(sizes))
        outs = []
        for i in range(n):
            index = [slice(None)] * x.data.ndim
            index[axis] = slice(int(bounds[i]), int(bounds[i + 1]))
            outs.append(Sym(x.kind, x.data[tuple(index)]))
        return outs

    def _op_Pad(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        if (attr(node, "mode", "constant") or "constant") != "constant":
            raise Unprovable("non-constant Pad mode in the shape subgraph")
        if self.view.opset < 11:
            pads, fill = attr(node, "pads"), self.domain.const(attr(node, "value", 0.0))
            axes = None
        else:
            pads = self._in(node, 1).ints("Pad pads")
            value = self._in(node, 2)
            fill = value.data.reshape(-1)[0] if value is not None else self.domain.const(0)
            axes = self._in(node, 3).ints("Pad axes") if self._in(node, 3) is not None else None
        rank = x.data.ndim
        axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
        n = len(axes)
        begin, end = [0] * rank, [0] * rank
        for i, a in enumerate(axes):
            begin[a], end[a] = pads[i], pads[n + i]
        shape = [x.data.shape[a] + begin[a] + end[a] for a in range(rank)]
        out = np.empty(shape, dtype=object)
        out.reshape(-1)[:] = [fill] * int(np.prod(shape))
        src = tuple(slice(max(0, -begin[a]), x.data.shape[a] - max(0, -end[a])) for a in range(rank))
        dst = tuple(slice(max(0, begin[a]), max(0, begin[a]) + (src[a].stop - src[a].start)) for a in range(rank))
        out[dst] = x.data[src]
        return Sym(x.kind, out)

    def _op_ConstantOfShape(self, node: NodeProto) -> Sym:
        shape = self._in(node, 0).ints("ConstantOfShape shape")
        return sym_from_array(np.full(shape, constant_of_shape_fill(node)), self.domain)

    def _op_Expand(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        shape = self._in(node, 1).ints("Expand shape")
        target = np.broadcast_shapes(x.data.shape, tuple(shape))
        return Sym(x.kind, np.array(np.broadcast_to(x.data, target), dtype=object))

    def _op_Tile(self, node: NodeProto) -> Sym:
        x = self._in(node, 0)
        return Sym(x.kind, np.tile(x.data, self._in(node, 1).ints("Tile repeats")))

    def _op_Range(self, node: NodeProto) -> Sym:
        return self._const_only(node)


def to_numpy(s: Sym) -> np.ndarray:
    flat = [v.c for v in s.data.reshape(-1)]
    dtype = {"int": np.int64, "bool": np.bool_, "float": np.float32}[s.kind]
    return np.array(flat, dtype=dtype).reshape(s.data.shape)


def python_slice(start: int, end: int, step: int, dim: int) -> slice:
    if step == 0:
        raise Unprovable("Slice step 0")
    return slice(*clamp_slice(start, end, step, dim))  # graph/fold's clamping: one Slice semantics


def product(dims: Sequence[Lin], domain: Domain, what: str) -> Lin:
    const, var = 1, None
    for d in dims:
        if d.is_const():
            const *= d.c
        elif var is None:
            var = d
        else:
            raise Unprovable(f"{what} is a product of two sizes")
    return domain.const(const) if var is None else var.scale(const)
