"""Choose values for dynamic dims on which the original model can run.

A symbol set to 16 everywhere breaks many real models: a reflect Pad needs more
samples than it pads, a broadcast against a fixed-size initializer needs that
size, a Resize feeds a fixed-size Add. The planner asks ONNX shape inference
(on a weightless copy, with the input dims set to probe values) how each dim
flows into the graph, and reads off:

- equations: an operand whose dim follows the symbol meets, in a broadcast,
  Concat or MatMul, an operand with a fixed dim > 1 (`a*s + b == v`);
- lower bounds: a reflect Pad needs more samples than it pads, a Conv or
  pooling window needs the input to span its (dilated) kernel.

Lengths without an equation take the smallest of 16, 64, 256, ... that meets
their bounds; batch dims (the first dim of an input of rank >= 2) take 2, so
that samples can mix, then 1. The caller runs the original on each candidate
in turn until one runs; onnxruntime has the last word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import onnx
from onnx import ModelProto

from ..graph import GraphView, ModelContext
from ..shapes import skeleton
from .errors import CheckInputError
from .specs import InputSpec, dims_text

GROWTH = (16, 64, 256, 1024, 4096, 16384)
BATCH_CHOICES = (2, 1)
PROBES = (64, 128)
MAX_CANDIDATES = 8

BROADCAST_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Where", "Equal", "Less", "Greater", "LessOrEqual",
    "GreaterOrEqual", "And", "Or", "Xor", "BitShift", "Max", "Min", "Sum", "Mean", "PRelu", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor",
})
WINDOW_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "AveragePool", "MaxPool", "LpPool"})


@dataclass
class DimKey:
    """One dynamic dim to choose: a named symbol (shared by every place it appears) or one unnamed dim."""

    key: str
    places: list[tuple[str, int]]  # (input name, axis)
    batch: bool = False


@dataclass
class Candidate:
    """Concrete shapes for every fed input, and why each dynamic dim got its value."""

    values: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    reasons: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items()) or "no dynamic dims"


class DimPlanner:
    """Candidate shapes for the fed inputs, best first (see the module docstring)."""

    def __init__(self, model: ModelProto, specs: list[InputSpec], user: Mapping[str, Sequence[int]] | None) -> None:
        self.specs = specs
        self.user_shapes = self._validate_user(user or {})
        self.keys: dict[str, DimKey] = {}
        for spec in specs:
            if spec.name in self.user_shapes:
                continue
            if spec.dims is None:
                raise CheckInputError(f"input {spec.name!r} has no declared shape; give its shape")
            for axis, d in enumerate(spec.dims):
                if isinstance(d, int):
                    continue
                key = d if isinstance(d, str) else f"{spec.name}[{axis}]"
                entry = self.keys.setdefault(key, DimKey(key, []))
                entry.places.append((spec.name, axis))
                if axis == 0 and len(spec.dims) >= 2:
                    entry.batch = True
        self.fixed = self._symbols_fixed_by_user()
        self.probe_model = _probe_skeleton(model)
        self.view = GraphView(self.probe_model.graph, ModelContext(self.probe_model))

    # -- user shapes

    def _validate_user(self, user: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
        by_name = {s.name: s for s in self.specs}
        out = {}
        for name, dims in user.items():
            spec = by_name.get(name)
            if spec is None:
                raise CheckInputError(f"shape given for {name!r}, but the model has no such fed input "
                                      f"(inputs: {', '.join(by_name) or 'none'})")
            shape = tuple(int(v) for v in dims)
            if any(v < 0 for v in shape):
                raise CheckInputError(f"shape of input {name!r}: negative dimension in {list(shape)}")
            if spec.dims is not None:
                if len(shape) != len(spec.dims):
                    raise CheckInputError(f"shape of input {name!r}: rank {len(shape)} but the input has rank "
                                          f"{len(spec.dims)} {dims_text(spec.dims)}")
                for axis, (d, v) in enumerate(zip(spec.dims, shape)):
                    if isinstance(d, int) and d != v:
                        raise CheckInputError(f"shape of input {name!r}: dimension {axis} is fixed to {d} in the "
                                              f"model, not {v}")
            out[name] = shape
        return out

    def _symbols_fixed_by_user(self) -> dict[str, int]:
        fixed: dict[str, int] = {}
        for name, shape in self.user_shapes.items():
            spec = next(s for s in self.specs if s.name == name)
            for d, v in zip(spec.dims or [], shape):
                if isinstance(d, str):
                    if d in fixed and fixed[d] != v:
                        raise CheckInputError(f"dimension {d!r} is {fixed[d]} in one given shape but {v} in "
                                              f"the shape of input {name!r}")
                    fixed[d] = v
        return fixed

    # -- shapes

    def shapes_for(self, values: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for spec in self.specs:
            if spec.name in self.user_shapes:
                shapes[spec.name] = self.user_shapes[spec.name]
                continue
            dims = []
            for axis, d in enumerate(spec.dims or []):
                if isinstance(d, int):
                    dims.append(d)
                else:
                    key = d if isinstance(d, str) else f"{spec.name}[{axis}]"
                    dims.append(self.fixed.get(key, values.get(key, 1)))
            shapes[spec.name] = tuple(dims)
        return shapes

    def infer(self, values: Mapping[str, int]) -> dict[str, list[int | None]]:
        """Dims of every value in the main graph when the inputs take `values` (shape inference only)."""
        model = ModelProto()
        model.CopyFrom(self.probe_model)
        shapes = self.shapes_for(values)
        for vi in model.graph.input:
            if vi.name in shapes:
                dims = vi.type.tensor_type.shape.dim
                for d, v in zip(dims, shapes[vi.name]):
                    d.Clear()
                    d.dim_value = v
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
        except Exception:  # noqa: BLE001 - inference is a hint; onnxruntime decides
            return {}
        out: dict[str, list[int | None]] = {}
        for group in (inferred.graph.input, inferred.graph.value_info, inferred.graph.output):
            for vi in group:
                if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                    out[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                    for d in vi.type.tensor_type.shape.dim]
        for t in inferred.graph.initializer:
            out[t.name] = list(t.dims)
        return out

    # -- planning

    def candidates(self) -> Iterator[Candidate]:
        """Shapes to try, best first; each distinct, at most MAX_CANDIDATES."""
        base: dict[str, int] = {}
        reasons: dict[str, str] = {}
        lengths = [k for k in self.keys.values() if not k.batch and k.key not in self.fixed]
        batches = [k for k in self.keys.values() if k.batch and k.key not in self.fixed]
        for k in batches:
            base[k.key] = BATCH_CHOICES[0]
            reasons[k.key] = f"batch: {BATCH_CHOICES[0]} distinct samples"
        for k in lengths:
            base[k.key] = GROWTH[0]
        solved: set[str] = set()
        for k in lengths:
            value, why, bound = self._study(k.key, base)
            if value is not None:
                base[k.key], reasons[k.key] = value, why
                solved.add(k.key)
            else:
                start = next((g for g in GROWTH if g >= bound), bound)
                base[k.key] = start
                reasons[k.key] = (f"smallest of {', '.join(map(str, GROWTH[:3]))}, ... that meets {why}"
                                  if bound > GROWTH[0] else "default length")
        seen: list[dict[str, int]] = []
        growable = [k.key for k in lengths if k.key not in solved]
        levels = [dict(base)]
        for g in GROWTH:
            grown = {**base, **{k: max(base[k], g) for k in growable}}
            if grown not in levels:
                levels.append(grown)
        for level in levels:
            for b in BATCH_CHOICES if batches else (None,):
                values = dict(level)
                why = dict(reasons)
                if b is not None:
                    for k in batches:
                        values[k.key] = b
                        if b != BATCH_CHOICES[0]:
                            why[k.key] = f"batch: {b} (the original did not run with {BATCH_CHOICES[0]})"
                for k in growable:
                    if values[k] != base[k]:
                        why[k] = f"grown to {values[k]}: the original did not run with smaller lengths"
                if values in seen:
                    continue
                seen.append(values)
                given = {k: v for k, v in self.fixed.items()}
                why.update({k: "given shape" for k in given})
                yield Candidate({**given, **values}, self.shapes_for(values), why)
                if len(seen) >= MAX_CANDIDATES:
                    return

    def _study(self, key: str, base: dict[str, int]) -> tuple[int | None, str, int]:
        """(value from an equation or None, reason, lower bound) for one length key."""
        p1, p2 = PROBES
        low = self.infer({**base, key: p1})
        high = self.infer({**base, key: p2})
        if not low or not high:
            return None, "", GROWTH[0]
        fits = _affine_fits(low, high, p1, p2)
        equations: list[tuple[int, str]] = []
        bound, bound_why = 1, ""
        for node in self.probe_model.graph.node:
            for value, why in _equations(node, low, high, fits):
                equations.append((value, why))
            need, why = _lower_bound(node, low, fits, self.view.const_ints)
            if need > bound:
                bound, bound_why = need, why
        for value, why in equations:
            if value >= max(bound, 1):
                return value, f"{key}={value}: {why}", bound
        return None, bound_why, bound


# ------------------------------------------------------------------ helpers


def _probe_skeleton(model: ModelProto) -> ModelProto:
    """The weightless model shape inference probes: no claimed intermediate shapes, no claimed output dims."""
    sk = skeleton(model)
    del sk.graph.value_info[:]
    for vi in sk.graph.output:
        if vi.type.HasField("tensor_type"):
            vi.type.tensor_type.ClearField("shape")
    return sk


Fit = tuple[float, float]  # dim = a * s + b


def _affine_fits(low: dict, high: dict, p1: int, p2: int) -> dict[tuple[str, int], Fit]:
    """For every dim that moved between the two probes, its fitted line in the probed symbol."""
    fits = {}
    for name, d1 in low.items():
        d2 = high.get(name)
        if d2 is None or len(d1) != len(d2):
            continue
        for axis, (a, b) in enumerate(zip(d1, d2)):
            if a is not None and b is not None and a != b:
                slope = (b - a) / (p2 - p1)
                fits[(name, axis)] = (slope, a - slope * p1)
    return fits


def _solve(fit: Fit, target: float) -> float | None:
    slope, offset = fit
    if slope == 0:
        return None
    return (target - offset) / slope


def _aligned(node: onnx.NodeProto, low: dict) -> list[list[tuple[str, int, int | None]]]:
    """Per right-aligned axis of a broadcasting node: (input name, its axis, its dim at the low probe)."""
    shapes = [(i, low.get(i)) for i in node.input if i]
    shapes = [(i, s) for i, s in shapes if s is not None]
    if len(shapes) < 2:
        return []
    rank = max(len(s) for _, s in shapes)
    out = []
    for pos in range(1, rank + 1):
        column = [(i, len(s) - pos, s[len(s) - pos]) for i, s in shapes if len(s) >= pos]
        out.append(column)
    return out


def _equations(node: onnx.NodeProto, low: dict, high: dict, fits: dict) -> Iterator[tuple[int, str]]:
    columns: list[list[tuple[str, int, int | None]]] = []
    if node.op_type in BROADCAST_OPS:
        columns = _aligned(node, low)
    elif node.op_type == "Concat":
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        shapes = [(i, low.get(i)) for i in node.input if i and low.get(i) is not None]
        if shapes:
            rank = len(shapes[0][1])
            axis = axis % rank if rank else 0
            columns = [[(i, ax, s[ax]) for i, s in shapes if len(s) == rank] for ax in range(rank) if ax != axis]
    elif node.op_type == "MatMul" and len(node.input) == 2:
        a, b = low.get(node.input[0]), low.get(node.input[1])
        if a and b and len(a) >= 2 and len(b) >= 2:
            columns = [[(node.input[0], len(a) - 1, a[-1]), (node.input[1], len(b) - 2, b[-2])]]
    for column in columns:
        moving = [(i, ax) for i, ax, _ in column if (i, ax) in fits]
        fixed = [d for i, ax, d in column if (i, ax) not in fits and d is not None and d > 1]
        if not moving or not fixed:
            continue
        target = fixed[0]
        for i, ax in moving:
            s = _solve(fits[(i, ax)], target)
            if s is not None and s >= 1 and abs(s - round(s)) < 1e-6:
                yield int(round(s)), f"{node.op_type} {node.name or node.output[0]!r} meets a fixed size {target}"


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _lower_bound(node: onnx.NodeProto, low: dict, fits: dict, const_ints) -> tuple[int, str]:
    """The smallest symbol value this node accepts (1 when it sets no bound)."""
    if not node.input or not node.input[0]:
        return 1, ""
    x = node.input[0]
    shape = low.get(x)
    if shape is None:
        return 1, ""
    needs: list[tuple[int, int]] = []  # (axis, minimum dim)
    label = f"{node.op_type} {node.name or node.output[0]!r}"
    if node.op_type == "Pad" and _attr(node, "mode", b"constant") in (b"reflect", "reflect"):
        pads = _attr(node, "pads")
        if pads is None and len(node.input) > 1:
            pads = const_ints(node.input[1])
        axes = list(range(len(shape)))
        if len(node.input) > 3 and node.input[3]:
            given = const_ints(node.input[3])
            axes = [int(a) % len(shape) for a in given] if given is not None else axes
        if pads is not None and len(pads) == 2 * len(axes):
            for j, axis in enumerate(axes):
                needs.append((axis, max(pads[j], pads[j + len(axes)]) + 1))
        label += " (reflect pad)"
    elif node.op_type in WINDOW_OPS:
        kernel = _attr(node, "kernel_shape")
        if kernel is None and len(node.input) > 1:
            w = low.get(node.input[3 if node.op_type == "QLinearConv" else 1])
            kernel = w[2:] if w else None
        if kernel:
            rank = len(kernel)
            dil = _attr(node, "dilations") or [1] * rank
            pads = _attr(node, "pads") or [0] * (2 * rank)
            auto = _attr(node, "auto_pad", b"NOTSET")
            if auto in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                for j in range(rank):
                    if kernel[j] is None:
                        continue
                    span = dil[j] * (kernel[j] - 1) + 1
                    needs.append((len(shape) - rank + j, span - pads[j] - pads[j + rank]))
    best, why = 1, ""
    for axis, minimum in needs:
        fit = fits.get((x, axis))
        if fit is None or fit[0] <= 0:
            continue
        s = _solve(fit, minimum)
        if s is not None and math.ceil(s - 1e-9) > best:
            best, why = math.ceil(s - 1e-9), f"{label} needs {minimum} samples"
    return best, why
