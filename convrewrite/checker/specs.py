"""What a model asks to be fed, and what its interface promises callers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import ModelProto, TensorProto

from .errors import CheckInputError
from .tolerance import dtype_name

Dim = "int | str | None"  # int > 0: fixed; str: a named symbol; None: unnamed dynamic (no dim, 0 or negative)


@dataclass
class InputSpec:
    """A graph input that needs a value (no initializer behind it)."""

    name: str
    elem_type: int
    dims: list[int | str | None] | None  # None: rank unknown

    @property
    def dtype(self) -> np.dtype:
        return np_dtype(self.elem_type, self.name)


def np_dtype(elem_type: int, name: str) -> np.dtype:
    """The numpy dtype fed for an ONNX element type (strings as Python objects)."""
    if elem_type == TensorProto.STRING:
        return np.dtype(object)
    if elem_type in (TensorProto.BFLOAT16, TensorProto.UNDEFINED):
        raise CheckInputError(f"input {name!r}: element type {dtype_name(elem_type)} cannot be fed from numpy")
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise CheckInputError(f"input {name!r}: element type {dtype_name(elem_type)} cannot be fed from numpy") from None


def declared_dims(tensor_type: onnx.TypeProto.Tensor) -> list[int | str | None] | None:
    """Dims as declared: a positive value is fixed; a name, nothing, 0 or a negative value is dynamic."""
    if not tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def fed_inputs(model: ModelProto) -> list[InputSpec]:
    """Graph inputs that need a value: those without an initializer of the same name (old IR)."""
    initialized = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in initialized:
            continue
        if not vi.type.HasField("tensor_type"):
            raise CheckInputError(f"input {vi.name!r} is not a tensor; only tensors can be fed")
        specs.append(InputSpec(vi.name, vi.type.tensor_type.elem_type, declared_dims(vi.type.tensor_type)))
    return specs


def dims_text(dims: list[int | str | None] | None) -> str:
    if dims is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


# ------------------------------------------------------------------ interface


@dataclass
class Port:
    """One graph input or output as a caller sees it."""

    name: str
    type_text: str  # tensor(float) | seq(tensor(float)) | optional(...) | ...
    dims: list[int | str | None] | None
    overridable: bool = False  # an input with an initializer behind it


def _type_text(tp: onnx.TypeProto) -> str:
    which = tp.WhichOneof("value")
    if which == "tensor_type":
        return f"tensor({dtype_name(tp.tensor_type.elem_type)})"
    if which == "sparse_tensor_type":
        return f"sparse_tensor({dtype_name(tp.sparse_tensor_type.elem_type)})"
    if which == "sequence_type":
        return f"seq({_type_text(tp.sequence_type.elem_type)})"
    if which == "optional_type":
        return f"optional({_type_text(tp.optional_type.elem_type)})"
    if which == "map_type":
        return f"map({dtype_name(tp.map_type.key_type)}, {_type_text(tp.map_type.value_type)})"
    return "unknown"


def interface(model: ModelProto) -> tuple[list[Port], list[Port]]:
    """(inputs, outputs) of the main graph, initializer-backed inputs included and marked.

    Below IR 4 every initializer must also be listed as an input, and onnxruntime
    treats them as constants (not feedable): there they are not interface.
    """
    initialized = {t.name for t in model.graph.initializer}

    def port(vi: onnx.ValueInfoProto, overridable: bool = False) -> Port:
        dims = declared_dims(vi.type.tensor_type) if vi.type.HasField("tensor_type") else None
        return Port(vi.name, _type_text(vi.type), dims, overridable)

    inputs = [vi for vi in model.graph.input if model.ir_version >= 4 or vi.name not in initialized]
    return ([port(vi, vi.name in initialized) for vi in inputs], [port(vi) for vi in model.graph.output])


def interface_problems(original: tuple[list[Port], list[Port]], candidate: tuple[list[Port], list[Port]]) -> list[str]:
    """Every way a caller of the original could notice the candidate is different, before running."""
    problems: list[str] = []
    for side, ours, theirs in (("input", original[0], candidate[0]), ("output", original[1], candidate[1])):
        by_name = {p.name: p for p in theirs}
        for p in ours:
            other = by_name.get(p.name)
            if other is None:
                extra = " (initializer-backed: callers can feed it)" if p.overridable else ""
                problems.append(f"the candidate has no {side} {p.name!r}{extra}")
                continue
            problems.extend(_port_problems(side, p, other))
        names = {p.name for p in ours}
        for p in theirs:
            if p.name not in names:
                need = "" if p.overridable else " that callers must feed" if side == "input" else ""
                problems.append(f"the candidate has an extra {side} {p.name!r}{need}")
        common_ours = [p.name for p in ours if p.name in by_name]
        common_theirs = [p.name for p in theirs if p.name in names]
        if common_ours != common_theirs:
            problems.append(f"{side} order changed: original {common_ours}, candidate {common_theirs} "
                            "(a caller reading them by position gets them swapped)")
    return problems


def _port_problems(side: str, ours: Port, theirs: Port) -> list[str]:
    label = f"{side} {ours.name!r}"
    if ours.overridable != theirs.overridable:
        how = "initializer-backed (optional to feed)"
        return [f"{label}: {how} in the {'original' if ours.overridable else 'candidate'} only"]
    if ours.type_text != theirs.type_text:
        return [f"{label}: type {theirs.type_text} in the candidate, {ours.type_text} in the original"]
    if ours.dims is None or theirs.dims is None:
        if (ours.dims is None) != (theirs.dims is None):
            return [f"{label}: shape {dims_text(theirs.dims)} in the candidate, {dims_text(ours.dims)} in the original"]
        return []
    if len(ours.dims) != len(theirs.dims):
        return [f"{label}: rank {len(theirs.dims)} in the candidate, {len(ours.dims)} in the original"]
    out = []
    for axis, (a, b) in enumerate(zip(ours.dims, theirs.dims)):
        fixed_a, fixed_b = isinstance(a, int), isinstance(b, int)
        if fixed_a and fixed_b and a != b:
            out.append(f"{label} dim {axis}: fixed to {b} in the candidate, {a} in the original")
        elif fixed_a != fixed_b:
            what = lambda d: f"fixed to {d}" if isinstance(d, int) else f"dynamic ({d or '?'})"  # noqa: E731
            out.append(f"{label} dim {axis}: {what(b)} in the candidate, {what(a)} in the original")
    return out
