"""Static shapes for pattern checks, inferred on a weightless skeleton of the model.

Shape inference only needs each initializer's dims (and the values of small
operands such as Reshape shapes), so large initializers are swapped for
empty tensors with the same dims while the skeleton is serialized. That keeps
inference cheap on a multi-GB model and never copies weights.
"""

from __future__ import annotations

import onnx

from .graph import shape_from_value_info, subgraphs
from .model.tensors import tensor_nbytes

SKELETON_MIN_BYTES = 4096


class Shapes(dict):
    """Inferred shapes by value name, converted from ValueInfoProto on first use.

    A big model has tens of thousands of values and a pass asks about a few
    of them per convolution: converting them all up front would cost more
    than the pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self._raw: dict[str, onnx.ValueInfoProto] = {}

    def add(self, key: str, vi: onnx.ValueInfoProto) -> None:
        old = self._raw.get(key)
        if old is None or (not _has_shape(old) and _has_shape(vi)):
            self._raw[key] = vi

    def get(self, key, default=None):  # type: ignore[override]
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        vi = self._raw.get(key)
        if vi is None:
            return default
        shape = shape_from_value_info(vi)
        dict.__setitem__(self, key, shape)
        return shape if shape is not None else default

    def __getitem__(self, key):
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        return len(self._raw)


def _has_shape(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape")


def infer(model: onnx.ModelProto) -> Shapes:
    """Shapes of every value in the main graph and its subgraphs (functions keyed `function:NAME::value`).

    Inferred from the graph inputs, initializers and op semantics only: the
    model's value_info and its declared output shapes are claims (an exporter
    or an edit can leave a wrong one), and a rewrite decided on a wrong dim is
    wrong for the inputs the graph really takes, so they are dropped first.
    """
    skeleton = _claims_dropped(_skeleton_bytes(model))
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
    except Exception:  # noqa: BLE001 - fall back to what the model declares
        inferred = onnx.ModelProto()
        inferred.ParseFromString(skeleton)
    shapes = Shapes()
    stack = [inferred.graph]
    while stack:
        g = stack.pop()
        for group in (g.input, g.output, g.value_info):
            for vi in group:
                if vi.type.HasField("tensor_type"):
                    shapes.add(vi.name, vi)
        for n in g.node:
            stack.extend(b for _, b in subgraphs(n))
    for f in inferred.functions:
        for vi in getattr(f, "value_info", []):
            if vi.type.HasField("tensor_type"):
                shapes.add(f"function:{f.name}::{vi.name}", vi)
    return shapes


def _claims_dropped(data: bytes) -> bytes:
    """The serialized model without value_info anywhere and without the main graph's declared output dims."""
    m = onnx.ModelProto()
    m.ParseFromString(data)
    for out in m.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    stack = [m.graph]
    while stack:
        g = stack.pop()
        del g.value_info[:]
        for n in g.node:
            stack.extend(b for _, b in subgraphs(n))
    for f in m.functions:
        del f.value_info[:]
        for n in f.node:
            stack.extend(b for _, b in subgraphs(n))
    while stack:
        g = stack.pop()
        del g.value_info[:]
        for n in g.node:
            stack.extend(b for _, b in subgraphs(n))
    return m.SerializeToString()


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model in which large main-graph initializers become typed graph inputs.

    Same nodes, same names, same dims, no weight bytes: onnx.checker and
    shape inference judge the graph exactly as they would the full model
    (an input with the initializer's type and shape is what inference sees
    either way), at a cost independent of the weights' size. The weights'
    own consistency is checked separately (`model.validate.check_tensor_sizes`).
    """
    sk = onnx.ModelProto()
    copy_fields(model, sk, skip="graph")
    graph = model.graph
    copy_fields(graph, sk.graph, skip="initializer")
    declared = {i.name for i in graph.input}
    for t in graph.initializer:
        # The size from dims: reading raw_data would copy the bytes.
        if t.HasField("raw_data") and tensor_nbytes(t) >= SKELETON_MIN_BYTES:
            if t.name not in declared:
                vi = sk.graph.input.add()
                vi.name = t.name
                tensor_type = vi.type.tensor_type
                tensor_type.elem_type = t.data_type
                dims = tensor_type.shape.dim
                for d in t.dims:
                    dims.add().dim_value = d
        else:
            sk.graph.initializer.append(t)
    return sk


def copy_fields(src, dst, skip: str) -> None:
    """Copy every set field of one message into another of its type, except `skip`."""
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
