"""Static shapes for pattern checks, inferred on a weightless skeleton of the model.

Shape inference only needs each initializer's dims (and the values of small
operands such as Reshape shapes), so large initializers are swapped for
empty tensors with the same dims while the skeleton is serialized. That keeps
inference cheap on a multi-GB model and never copies weights.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from .graph import Shape, shape_from_value_info, subgraphs

SKELETON_MIN_BYTES = 4096


def infer(model: onnx.ModelProto) -> dict[str, Shape]:
    """Shapes of every value in the main graph and its subgraphs (functions keyed `function:NAME::value`)."""
    skeleton = _skeleton_bytes(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
    except Exception:  # noqa: BLE001 - fall back to what the model declares
        inferred = onnx.ModelProto()
        inferred.ParseFromString(skeleton)
    shapes: dict[str, Shape] = {}
    stack = [inferred.graph]
    while stack:
        g = stack.pop()
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            s = shape_from_value_info(vi)
            if s is not None:
                old = shapes.get(vi.name)
                if old is None or (old.dims is None and s.dims is not None):
                    shapes[vi.name] = s
        for n in g.node:
            stack.extend(b for _, b in subgraphs(n))
    for f in inferred.functions:
        for vi in getattr(f, "value_info", []):
            s = shape_from_value_info(vi)
            if s is not None:
                shapes[f"function:{f.name}::{vi.name}"] = s
    return shapes


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model whose large main-graph initializers keep their dims but no data."""
    sk = onnx.ModelProto()
    _copy_fields(model, sk, skip="graph")
    graph = model.graph
    _copy_fields(graph, sk.graph, skip="initializer")
    for t in graph.initializer:
        if t.HasField("raw_data") and len(t.raw_data) >= SKELETON_MIN_BYTES:
            stub = sk.graph.initializer.add()
            stub.name, stub.data_type = t.name, t.data_type
            stub.dims.extend(t.dims)
        else:
            sk.graph.initializer.append(t)
    return sk


def _copy_fields(src, dst, skip: str) -> None:
    for desc, value in src.ListFields():
        if desc.name == skip:
            continue
        if isinstance(value, (list, tuple)) or hasattr(value, "extend"):
            getattr(dst, desc.name).extend(value)
        elif desc.message_type:
            getattr(dst, desc.name).CopyFrom(value)
        else:
            setattr(dst, desc.name, value)


def _skeleton_bytes(model: onnx.ModelProto) -> bytes:
    return skeleton(model).SerializeToString()
