"""Walk a model's graphs and tensors, and size tensors from their dims.

Shared by reading (external data, validation), writing (what goes to the
`.data` file) and the shape skeleton: one copy of each walk.
"""

from __future__ import annotations

import math
from typing import Iterator

import onnx
from onnx import ModelProto, TensorProto


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Every graph: the main one and all subgraphs, iteratively (no recursion limit)."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)


def function_graphs(func: onnx.FunctionProto) -> Iterator[onnx.GraphProto]:
    """The subgraphs (any depth) of a model-local function's nodes."""
    for node in func.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from all_graphs(g)


def model_graphs(model: ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph, its subgraphs, and the subgraphs inside model-local functions."""
    yield from all_graphs(model.graph)
    for func in model.functions:
        yield from function_graphs(func)


def bodies(model: ModelProto) -> Iterator[tuple[object, str]]:
    """Every node list with a readable place: the main graph, subgraphs, model-local functions."""
    for g in all_graphs(model.graph):
        yield g, "graph " + (g.name or "main") if g is not model.graph else "main graph"
    for func in model.functions:
        yield func, f"function {func.name}"
        for g in function_graphs(func):
            yield g, f"graph {g.name or '?'} in function {func.name}"


def all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Initializers and Constant/attribute tensors, in every graph and function."""
    for g in model_graphs(model):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
        yield from _attribute_tensors(g.node)
    for func in model.functions:
        yield from _attribute_tensors(func.node)


def _attribute_tensors(nodes) -> Iterator[TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors


def external_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """The tensors whose bytes live in an external data file."""
    for t in all_tensors(model):
        if t.data_location == TensorProto.EXTERNAL:
            yield t


def tensor_nbytes(t: TensorProto) -> int:
    """A tensor's data size in bytes from its dims and type (0 when the type has no fixed size)."""
    count = math.prod(t.dims)
    itemsize = _ITEMSIZE.get(t.data_type)
    if itemsize is None:
        try:
            itemsize = _ITEMSIZE[t.data_type] = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except (KeyError, ValueError, TypeError):
            return 0
    if t.data_type in _PACKED_4BIT:
        return (count + 1) // 2
    if t.data_type in _PACKED_2BIT:
        return (count + 3) // 4
    return count * itemsize


_ITEMSIZE: dict[int, int] = {}
_PACKED_4BIT = frozenset(getattr(TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(TensorProto, n))
_PACKED_2BIT = frozenset(getattr(TensorProto, n) for n in ("INT2", "UINT2") if hasattr(TensorProto, n))


def estimated_size(model: ModelProto) -> int:
    """Serialized size, from the tensors' dims (ModelProto.ByteSize serializes the whole model to count)."""
    total = 0
    for t in all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            total += tensor_nbytes(t)
    return total + 64 * len(model.graph.node)
