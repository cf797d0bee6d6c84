"""What is left of tf2onnx's Keras wrappers once a region is lowered: bias Adds and Transposes.

tf2onnx writes a Keras Conv1D as
`Unsqueeze -> Transpose(0,3,1,2) -> Conv -> Squeeze(2) -> Add(bias [1,C,1]) -> Transpose(0,2,1)`
(optimizer off: `... Conv -> Transpose(0,2,3,1) -> Squeeze(-3) -> Add(bias [C])`). Lowering the
region cancels the Unsqueeze and Squeeze and turns the 4D Transposes into 3D
ones; these helpers then fold the bias Add into the conv (exact in real
arithmetic: per-channel constant added to every output position) and remove
Transposes that became identities or cancel in pairs. They run only on the
tensors the lowering touched, never over the whole graph.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from onnx import NodeProto, helper, numpy_helper

from ..conv import WEIGHT_INPUT
from ..graph import GraphView, attr
from .reshapes import transpose_perm

BIAS_SLOT = 2


def remove_transposes(view: GraphView, names: Iterable[str]) -> int:
    """Remove lowered Transposes that are identities, and adjacent pairs that compose to one."""
    removed = 0
    done: set[int] = set()
    for name in names:
        t = view.producer_of(name)
        if t is None or t.op_type != "Transpose" or id(t) in done:
            continue
        perm = attr(t, "perm")
        if perm is not None and list(perm) == list(range(len(perm))):
            if _bypassable(view, t):
                view.bypass(t, t.input[0], t.output[0])
                done.add(id(t))
                removed += 1
            continue
        for first, second in (( view.producer_of(t.input[0]), t), (t, view.sole_consumer(t.output[0]))):
            if first is None or second is None or id(first) in done or id(second) in done:
                continue
            if first.op_type != "Transpose" or second.op_type != "Transpose" or first.domain or second.domain:
                continue
            if view.sole_consumer(first.output[0]) is not second:
                continue
            p1, p2 = attr(first, "perm"), attr(second, "perm")
            if p1 is None or p2 is None or len(p1) != len(p2):
                continue
            if [p1[i] for i in p2] != list(range(len(p1))):
                continue
            if not _bypassable(view, second, source=first.input[0]):
                continue
            view.remove(first)
            view.bypass(second, first.input[0], second.output[0])
            done.update((id(first), id(second)))
            removed += 2
            break
    return removed


def _bypassable(view: GraphView, node: NodeProto, source: str | None = None) -> bool:
    """bypass() needs a producer it can rename when the dropped tensor is a graph output."""
    source = source if source is not None else node.input[0]
    if not view.is_graph_output(node.output[0]):
        return True
    producer = view.producer_of(source)
    return producer is not None and not view.is_graph_output(source) and source not in view.input_set and len(view.consumers_of(source)) == 1


def fold_bias_adds(view: GraphView, names: Iterable[str]) -> int:
    """Fold `Conv -> [Transpose] -> Add(per-channel constant)` into the conv's bias, for each name given."""
    folded = 0
    for name in names:
        if fold_bias_add(view, name):
            folded += 1
    return folded


def fold_bias_add(view: GraphView, name: str) -> bool:
    """`name` is a conv output, or a Transpose of one; its sole reader may be an Add of a bias."""
    add = view.sole_consumer(name)
    if add is None or add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.input) != 2:
        return False
    if view.opset < 7 and attr(add, "broadcast", 0):
        return False
    if add.input[0] == add.input[1]:
        return False
    other = add.input[1] if add.input[0] == name else add.input[0]
    producer = view.producer_of(name)
    transpose = None
    conv = producer
    if producer is not None and producer.op_type == "Transpose":
        transpose = producer
        conv_out = producer.input[0]
        if view.sole_consumer(conv_out) is not producer:
            return False
        conv = view.producer_of(conv_out)
    if conv is None or conv.op_type not in ("Conv", "ConvTranspose") or conv.domain not in ("", "ai.onnx"):
        return False
    weight = view.shape(conv.input[WEIGHT_INPUT[conv.op_type]])
    if weight is None or weight.dims is None or not all(isinstance(d, int) for d in weight.dims):
        return False
    group = int(attr(conv, "group", 1))
    channels = weight.dims[0] if conv.op_type == "Conv" else weight.dims[1] * group
    rank = len(weight.dims)
    value = view.const_value(other)
    if value is None or value.ndim > rank:
        return False
    dtype = helper.tensor_dtype_to_np_dtype(weight.elem_type)
    if value.dtype != dtype:
        return False
    full = value.reshape((1,) * (rank - value.ndim) + value.shape)
    if transpose is not None:
        perm = transpose_perm(transpose, rank)
        if sorted(perm) != list(range(rank)):
            return False
        full = np.transpose(full, np.argsort(perm))  # back to the conv's [N, C, ...] layout
    if any(d != 1 for i, d in enumerate(full.shape) if i != 1) or full.shape[1] not in (1, channels):
        return False
    bias = np.broadcast_to(full.reshape(-1), (channels,)).astype(dtype)
    old_bias = conv.input[BIAS_SLOT] if len(conv.input) > BIAS_SLOT and conv.input[BIAS_SLOT] else ""
    if old_bias:
        old_value = view.const_value(old_bias)
        if old_value is None or old_value.shape != (channels,):
            return False
        bias = (old_value + bias).astype(dtype)
    if not _bypassable(view, add, source=name):
        return False
    base = (conv.name or conv.output[0]) + "_bias"
    bias_name = view.add_initializer(numpy_helper.from_array(np.ascontiguousarray(bias), view.ctx.fresh(base)))
    if old_bias:
        view.replace_input(conv, BIAS_SLOT, bias_name)
    else:
        while len(conv.input) < BIAS_SLOT:
            conv.input.append("")
        conv.input.append(bias_name)
        view.consumers.setdefault(bias_name, []).append(conv)
    view.bypass(add, name, add.output[0])
    _drop_if_unused(view, [other, old_bias])
    return True


def _drop_if_unused(view: GraphView, names: list[str]) -> None:
    for name in names:
        if not name or view.consumers_of(name) or view.is_graph_output(name):
            continue
        producer = view.producer_of(name)
        if producer is not None and producer.op_type == "Constant":
            view.remove(producer)
        elif name in view.initializers:
            view.drop_unused_initializers([name])
