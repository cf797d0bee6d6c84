"""Is a model fit to rewrite and run: onnx.checker plus what it lets through.

Used on every model read (bad input is refused once, up front) and on every
model written (nothing invalid is ever saved).
"""

from __future__ import annotations

import functools

import onnx
from onnx import ModelProto, TensorProto

from ..errors import ModelInvalidError, ModelLoadError
from .tensors import bodies, tensor_nbytes


def validate_structure(model: ModelProto, label: str) -> None:
    """Reject protobufs that parsed but are not models (empty, text, random bytes)."""
    if not model.ListFields():
        raise ModelLoadError(f"{label}: empty model (no graph, no opsets)")
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelLoadError(f"{label}: not an ONNX model (no IR version or no graph)")
    if model.ir_version >= 3 and not model.opset_import:
        raise ModelLoadError(f"{label}: not a valid ONNX model (no opset_import)")


def validate(model: ModelProto, label: str, *, output: bool = False) -> None:
    """onnx.checker with full_check (strict shape inference) on the weightless skeleton, plus every tensor's size.

    The checker reads only the graph from the skeleton (see
    `shapes.skeleton`), so its cost does not grow with the weights and no
    multi-GB copy is made; `check_tensor_sizes` checks what the checker would
    have checked of the weights themselves.
    """
    from ..shapes import skeleton

    prefix = f"{label}: output rejected by onnx.checker, nothing written" if output else f"{label}: rejected by onnx.checker"
    try:
        onnx.checker.check_model(skeleton(model).SerializeToString(), full_check=True)
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.shape_inference.InferenceError) as exc:
        raise ModelInvalidError(f"{prefix}: {_first_line(exc)}") from None
    problem = check_tensor_sizes(model)
    if problem:
        raise ModelInvalidError(f"{prefix}: {problem}")
    # What onnx.checker lets through but nothing could run or rewrite safely.
    problem = check_domains(model) or check_convolutions(model)
    if problem:
        what = "output is not a valid model, nothing written" if output else "not a valid model"
        raise ModelInvalidError(f"{label}: {what}: {problem}")


def check_tensor_sizes(model: ModelProto) -> str | None:
    """The first initializer whose stored bytes disagree with its dims and type, if any."""
    for t in model.graph.initializer:
        if not t.HasField("raw_data") or t.data_location == TensorProto.EXTERNAL:
            continue
        if any(d < 0 for d in t.dims):
            return f"initializer {t.name!r} has a negative dimension {list(t.dims)}"
        if t.data_type in (TensorProto.UNDEFINED, TensorProto.STRING):
            return f"initializer {t.name!r} has data type {t.data_type} with raw data"
        expected = tensor_nbytes(t)
        if expected and len(t.raw_data) != expected:
            return f"initializer {t.name!r} holds {len(t.raw_data)} bytes; dims {list(t.dims)} need {expected}"
    return None


# Operator domains onnxruntime implements beyond onnx's own (contrib, layout, extensions, aten fallback).
RUNTIME_DOMAINS = frozenset({
    "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.microsoft.mlfeaturizers",
    "com.microsoft.dml", "com.ms.internal.nhwc", "ai.onnx.contrib", "org.pytorch.aten",
})


@functools.lru_cache(maxsize=None)
def _onnx_domains() -> frozenset[str]:
    return frozenset({"", "ai.onnx"} | {s.domain for s in onnx.defs.get_all_schemas_with_history()})


def check_domains(model: ModelProto) -> str | None:
    """The first node whose operator comes from a domain nobody defines (not onnx, onnxruntime or a model function).

    onnx.checker skips nodes of unknown domains, so such a model passes it,
    yet nothing can run it or infer its shapes: convrewrite could neither
    prove a rewrite around that node nor check the result.
    """
    known = _onnx_domains() | RUNTIME_DOMAINS | {f.domain for f in model.functions}
    for body, where in bodies(model):
        for node in body.node:
            if node.domain not in known:
                name = node.name or node.op_type
                return (f"node {name!r} ({where}) uses {node.domain}::{node.op_type}, an operator of the unknown "
                        f"opset domain {node.domain!r}; refused")
    return None


def check_convolutions(model: ModelProto) -> str | None:
    """The first convolution whose attributes contradict its weight or its input, if any.

    onnx.checker takes `kernel_shape` on trust and does not know a weight's
    rank when the input's is unknown; every pass reads a convolution through
    ConvAttrs, so a contradiction here is reported once, as bad input.
    """
    from ..conv import CONV_OPS, WEIGHT_INPUT, ConvAttrError, ConvAttrs, attribute_refs

    for body, where in bodies(model):
        dims: dict[str, list[int | None]] = {}
        for t in getattr(body, "initializer", ()):
            dims[t.name] = list(t.dims)
        typed = isinstance(body, onnx.GraphProto)  # a function's inputs are bare names
        for group in (body.input if typed else (), getattr(body, "value_info", ())):
            for vi in group:
                if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                    dims.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else None
                                              for d in vi.type.tensor_type.shape.dim])
        for node in body.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                        dims[node.output[0]] = list(a.t.dims)
            if node.op_type not in CONV_OPS or node.domain not in ("", "ai.onnx") or attribute_refs(node):
                continue  # a function's @attribute takes its value per call site: nothing to contradict here
            w = WEIGHT_INPUT[node.op_type]
            weight = dims.get(node.input[w]) if len(node.input) > w and node.input[w] else None
            label = f"{node.op_type} {node.name or '(unnamed)'} ({where})"
            try:
                attrs = ConvAttrs.from_node(node, weight) if weight is not None or _has_attr(node, "kernel_shape") else None
            except ConvAttrError as exc:
                return f"{label}: {exc}"
            data = dims.get(node.input[0]) if node.input and node.input[0] else None
            if attrs is not None and data is not None and len(data) != attrs.rank + 2:
                return f"{label}: input has rank {len(data)} but the kernel has {attrs.rank} spatial axes"
            if weight is not None and data is not None and len(weight) != len(data):
                return f"{label}: weight has rank {len(weight)} but the input has rank {len(data)}"
            problem = _group_problem(node, weight, data)
            if problem:
                return f"{label}: {problem}"
    return None


def _group_problem(node: onnx.NodeProto, weight: list | None, data: list | None) -> str | None:
    """Why `group` contradicts the channels (onnx.checker and shape inference let these through)."""
    group = next((a.i for a in node.attribute if a.name == "group" and not a.ref_attr_name), 1)
    if group < 1:
        return f"group is {group}; it must be at least 1"
    channels = data[1] if data is not None and len(data) > 1 and isinstance(data[1], int) and data[1] > 0 else None
    if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
        m = weight[0] if weight is not None and weight and isinstance(weight[0], int) else None
        c = weight[1] if weight is not None and len(weight) > 1 and isinstance(weight[1], int) else None
        if channels is not None and channels % group:
            return f"group {group} does not divide the input's {channels} channels"
        if m is not None and m % group:
            return f"group {group} does not divide the weight's {m} output channels"
        if channels is not None and c is not None and c * group != channels:
            return f"the weight takes {c} channels per group, {c * group} in all, but the input has {channels}"
    elif node.op_type == "ConvTranspose":
        c = weight[0] if weight is not None and weight and isinstance(weight[0], int) else None
        if channels is not None and channels % group:
            return f"group {group} does not divide the input's {channels} channels"
        if channels is not None and c is not None and c != channels:
            return f"the weight takes {c} input channels but the input has {channels}"
    return None


def _has_attr(node: onnx.NodeProto, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
