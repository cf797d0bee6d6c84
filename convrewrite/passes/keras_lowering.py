"""What is left of tf2onnx's Keras wrappers once a region is lowered: bias Adds and Transposes.

tf2onnx writes a Keras Conv1D as
`Unsqueeze -> Transpose(0,3,1,2) -> Conv -> Squeeze(2) -> Add(bias [1,C,1]) -> Transpose(0,2,1)`
(optimizer off: `... Conv -> Transpose(0,2,3,1) -> Squeeze(-3) -> Add(bias [C])`; tf_keras
DepthwiseConv1D adds its bias before the Squeeze: `... -> Add(bias [C]) -> Squeeze(1)`). Lowering the
region cancels the Unsqueeze and Squeeze and turns the 4D Transposes into 3D
ones; these helpers then fold the bias Add into the conv when its constant is
per output channel (exact in real arithmetic: the same constant added to every
output position of a channel; otherwise the Add stays and why is noted) and remove
Transposes that became identities or cancel in pairs. They run only on the
tensors the lowering touched, never over the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from onnx import NodeProto, helper, numpy_helper

from ..conv import WEIGHT_INPUT, ConvAttrs
from ..graph import GraphView, attr, axes_through, drop_if_unread, walk_up
from .channel_layout import per_channel
from .separable.bound import ChainBound

BIAS_SLOT = 2
STD_DOMAINS = ("", "ai.onnx")


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


@dataclass
class BiasFold:
    """One bias Add the lowering met: folded into `conv`'s bias, or kept with the reason in `note`."""

    conv: NodeProto
    folded: bool
    note: str
    changed: tuple[str, ...] = ()  # folded: the tensors from the conv to the Add, which now hold the sum
    moved: tuple[str, str] = ("", "")  # folded: (the Add's output, the tensor that holds its value now)
    forced: bool = False  # folded past its error bound (force)


def fold_bias_adds(view: GraphView, names: Iterable[str], force: bool = False) -> list[BiasFold]:
    """Fold the bias Add next to each lowered exit into its conv's bias.

    The Add may read the exit (Keras Conv1D: `Conv -> Squeeze(2) -> Add(bias [1,C,1])`) or
    write it (tf_keras DepthwiseConv1D with the optimizer off calls bias_add before the
    Squeeze: `Conv -> Transpose(0,2,3,1) -> Add(bias [C]) -> Squeeze(1)`). Bounded like the
    separable folds (separable/bound.py): an Add that cancels a large conv bias is kept with
    the bound in words, unless `force` (then folded, and `forced` says so).
    """
    results: list[BiasFold] = []
    seen: set[int] = set()
    for name in names:
        for found in (_bias_add_reading(view, name), _bias_add_writing(view, name)):
            if found is None or id(found[0]) in seen:
                continue
            seen.add(id(found[0]))
            result = fold_bias_add(view, *found, force=force)
            if result is not None:
                results.append(result)
    return results


def _bias_add_reading(view: GraphView, name: str) -> tuple[NodeProto, str] | None:
    adds = [n for n in view.consumers_of(name) if not view.is_removed(n) and _constant_operand(view, n, name)]
    return (adds[0], name) if len(adds) == 1 else None


def _bias_add_writing(view: GraphView, name: str) -> tuple[NodeProto, str] | None:
    add = view.producer_of(name)
    if add is None:
        return None
    for data in dict.fromkeys(add.input):
        if _constant_operand(view, add, data) is not None:
            return add, data
    return None


def _constant_operand(view: GraphView, node: NodeProto, data: str) -> str | None:
    """The constant operand of a two-input Add that reads `data` (a residual Add: None)."""
    if node.op_type != "Add" or node.domain not in STD_DOMAINS or len(node.input) != 2 or data not in node.input:
        return None
    if node.input[0] == node.input[1]:
        return None
    other = node.input[1] if node.input[0] == data else node.input[0]
    return other if view.const_value(other) is not None and view.const_value(data) is None else None


def fold_bias_add(view: GraphView, add: NodeProto, name: str, force: bool = False) -> BiasFold | None:
    """Fold `add` (name + a constant) into the conv behind `name` when the constant is per output channel.

    `name` is a conv output or reaches one through layout-only ops (Transpose, Identity, and
    Squeeze/Unsqueeze of unit axes); the constant must broadcast over the channel axis alone, as
    that axis sits where the Add reads it. None when no conv is behind `name` (not a bias Add).
    Exact in real arithmetic; with a bias already on the conv the two are summed once, in the conv's dtype.
    """
    chain = _layout_chain(view, name)
    if chain is None:
        return None
    conv, layout = chain
    what = f"Add {add.name or add.output[0]}"
    other = _constant_operand(view, add, name)
    if other is None:
        return None

    def kept(reason: str) -> BiasFold:
        return BiasFold(conv, False, f"{what} kept: {reason}")

    if view.opset < 7 and attr(add, "broadcast", 0):
        return kept("it uses the legacy broadcast attribute")
    tensors = [conv.output[0]] + [n.output[0] for n in layout]
    for tensor, reader in zip(tensors, layout + [add]):
        if view.is_graph_output(tensor):
            return kept(f"{tensor}, between the conv and the Add, is also a graph output")
        if view.sole_consumer(tensor) is not reader:
            return kept(f"{tensor}, between the conv and the Add, has other readers")
    weight = view.shape(conv.input[WEIGHT_INPUT[conv.op_type]])
    if weight is None or weight.dims is None or not all(isinstance(d, int) for d in weight.dims):
        return kept("the conv's weight shape is not known")
    group = int(attr(conv, "group", 1))
    channels = weight.dims[0] if conv.op_type == "Conv" else weight.dims[1] * group
    axes: list[int | None] = list(range(len(weight.dims)))
    for node in layout:
        moved = axes_through(view, node, axes)
        if moved is None:
            return kept(f"the channel axis cannot be followed through {node.op_type} {node.name or node.output[0]}")
        axes = moved
    value = view.const_value(other)
    dtype = helper.tensor_dtype_to_np_dtype(weight.elem_type)
    if value.dtype != dtype:
        return kept(f"its constant is {value.dtype}, the conv {np.dtype(dtype)}")
    channel_axis = axes.index(1)
    shift = per_channel(value, len(axes), channel_axis, channels)
    if shift is None:
        return kept(f"its constant of shape {list(value.shape)} is not per-channel "
                    f"(the {channels} channels are on axis {channel_axis} there)")
    bias = shift.astype(dtype)
    old_bias = conv.input[BIAS_SLOT] if len(conv.input) > BIAS_SLOT and conv.input[BIAS_SLOT] else ""
    old_value = np.zeros(channels, dtype)
    if old_bias:
        old_value = view.const_value(old_bias)
        if old_value is None or old_value.shape != (channels,) or old_value.dtype != dtype:
            return kept("the conv's bias is not a constant of one value per channel")
        bias = (old_value + bias).astype(dtype)
    problem = _bound_problem(view, conv, old_value, shift.astype(np.float64), dtype)
    forced = ""
    if problem and not force:
        return kept(f"{problem}; --force folds it anyway")
    if problem:
        forced = f" (forced past the fold's error bound: {problem})"
    if not _bypassable(view, add, source=name):
        return kept(f"its output is a graph output and {name} cannot take its name")
    base = (conv.name or conv.output[0]) + "_bias"
    bias_name = view.add_initializer(numpy_helper.from_array(np.ascontiguousarray(bias), view.ctx.fresh(base)))
    if old_bias:
        view.replace_input(conv, BIAS_SLOT, bias_name)
    else:
        while len(conv.input) < BIAS_SLOT:
            conv.input.append("")
        conv.input.append(bias_name)
        view.consumers.setdefault(bias_name, []).append(conv)
    added = add.output[0]
    carrier = added if view.is_graph_output(added) else name
    view.bypass(add, name, added)
    drop_if_unread(view, [other, old_bias])
    return BiasFold(conv, True, f"folded {what} into the bias{forced}", tuple(tensors), (added, carrier), bool(forced))


def _bound_problem(view: GraphView, conv: NodeProto, old: np.ndarray, shift: np.ndarray, dtype) -> str | None:
    """Why adding `shift` to the conv's bias `old` may move outputs beyond the dtype's tolerance, or None.

    The original rounds conv + old at the size of `old` and then the Add at the size of `shift`; the fold
    rounds old + shift once. Bounded with separable/bound.py's ChainBound (the weights' norms per channel);
    a weight that is not a constant counts as norm 0, which only makes the bound smaller than |bias| terms.
    """
    w = view.const_value(conv.input[WEIGHT_INPUT[conv.op_type]])
    attrs = ConvAttrs.from_node(conv, list(w.shape)) if w is not None else None
    bound = ChainBound(w.astype(np.float64) if w is not None else None, old, attrs, np.dtype(dtype))
    bound.step(None, shift, np.abs(shift))
    return bound.problem()


def _layout_chain(view: GraphView, name: str) -> tuple[NodeProto, list[NodeProto]] | None:
    """The Conv/ConvTranspose behind `name` and the layout-only ops from it to `name`, or None."""
    node, layout = walk_up(view, name)
    if node is None or node.op_type not in ("Conv", "ConvTranspose") or node.domain not in STD_DOMAINS:
        return None
    return node, layout
