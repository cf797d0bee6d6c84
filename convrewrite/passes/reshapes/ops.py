"""Per-op rules of the region engine: how each op joins a region whose rank changes, and the edit it then needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from onnx import NodeProto, numpy_helper

from ...graph import attr, set_attr
from .plans import Block, NodePlan, OpRule, SOFTMAXES, Wait, normalize, to_big, to_small, transpose_perm

if TYPE_CHECKING:
    from .engine import RegionEngine


def data_plan(eng: RegionEngine, node: NodeProto, a: int, pull: bool | None, edit=None) -> NodePlan | Block | Wait:
    """The plan of an op whose data input (slot 0) carries the unit axis `a` to its first output, the shared
    tail of most rules: the data operand joins (pulled into the region when `pull`; None: never, its rank read)."""
    plan = NodePlan(node, edit=edit)
    result = (eng.operand(node, 0, a, plan, enter=False) if pull is None
              else eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank))
    if result is not None:
        return result
    plan.outs[0] = a
    return plan


def rule_shape_preserving(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side == "in" and slot != 0:
        return Block(f"{node.op_type} reads the region tensor as a parameter")
    plan = NodePlan(node)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    if node.op_type == "CastLike" or node.op_type == "Clip" or node.op_type == "Dropout":
        pass  # parameters are scalars or type carriers: unchanged
    plan.outs[0] = a
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        plan.outs[1] = a  # the mask has the data's shape
    return plan


def rule_elementwise(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if eng.view.opset < 7 and attr(node, "broadcast", 0):
        return Block("legacy broadcast attribute (opset < 7)")
    if node.op_type == "PRelu" and eng.view.opset < 7:
        return Block("PRelu before opset 7 does not broadcast")
    plan = NodePlan(node)
    for i in range(len(node.input)):
        result = eng.operand(node, i, a, plan, enter=False)
        if result is not None:
            return result
    if not plan.data:
        return Block("no operand in the region")
    plan.outs[0] = a
    return plan


def rule_channel_norm(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block(f"{node.op_type} touches the region through a parameter")
    if node.op_type == "BatchNormalization" and attr(node, "spatial", 1) == 0:
        return Block("BatchNormalization with spatial=0 normalizes per position")
    return data_plan(eng, node, a, pull)


def rule_qdq(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side == "in" and slot != 0:
        return Block(f"{node.op_type} reads the region tensor as a parameter")
    if attr(node, "block_size", 0):
        return Block("blocked quantization")
    plan = NodePlan(node)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a
    scale = node.input[1] if len(node.input) > 1 else ""
    scale_rank = eng.rank_of(scale) if scale else 0
    if scale_rank is None:
        return Block("rank of the scale is unknown")
    if scale_rank >= 1 and eng.view.opset >= 13:
        edit = _axis_attr_edit(eng, node, "axis", 1, a)
        if isinstance(edit, Block):
            return edit
        plan.edit = edit
    return plan


def _axis_attr_edit(eng: RegionEngine, node: NodeProto, name: str, default: int, a: int):
    """Edit that remaps an axis attribute (the default counts when absent); Block if it is the unit axis."""
    value = attr(node, name, None)
    old = default if value is None else int(value)
    new = eng.remap_value(old, a)
    if new is None:
        return Block(f"{node.op_type} works on the unit axis ({name}={old})")

    def edit(_eng: RegionEngine) -> None:
        if new != old:
            set_attr(node, name, new)

    return edit


def rule_axis_op(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    """Single-data-input ops with an axis attribute: Softmax family, LpNormalization, ArgMax/ArgMin."""
    if side == "in" and slot != 0:
        return Block(f"{node.op_type} reads the region tensor as a parameter")
    op = node.op_type
    if op in ("ArgMax", "ArgMin") and attr(node, "keepdims", 1) == 0:
        return Block(f"{op} with keepdims=0 drops an axis")
    if op in SOFTMAXES:
        default = 1 if eng.view.opset < 13 else -1
    elif op == "LpNormalization":
        default = -1
    else:
        default = 0
    edit = _axis_attr_edit(eng, node, "axis", default, a)
    if isinstance(edit, Block):
        return edit
    return data_plan(eng, node, a, None, edit)


def rule_concat(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side != "in":
        return Block("Concat reached from its output")
    edit = _axis_attr_edit(eng, node, "axis", 0, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    for i, name in enumerate(node.input):
        if not name:
            continue
        if eng.rank_of(name) not in (None, eng.old_rank) and name not in eng.axis:
            return Block(f"Concat operand {name} has another rank")
        result = eng.operand(node, i, a, plan, enter=False)
        if result is not None:
            return result
        if i in plan.bcasts:
            return Block("Concat operand of another rank")
    plan.outs[0] = a
    return plan


def rule_split(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side == "in" and slot != 0:
        return Block("Split reads the region tensor as its sizes")
    edit = _axis_attr_edit(eng, node, "axis", 0, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=False)
    if result is not None:
        return result
    for i, o in enumerate(node.output):
        if o:
            plan.outs[i] = a
    return plan


def rule_transpose(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    old_rank = eng.old_rank
    perm = transpose_perm(node, old_rank)
    if len(perm) != old_rank:
        return Block("Transpose perm has another rank")
    if eng.lift:
        a_in = a_out = a  # the unit axis stays where the region keeps it

        def edit(_eng: RegionEngine) -> None:
            big = [0] * eng.big_rank
            for i in range(eng.big_rank):
                if i == a:
                    big[i] = a
                else:
                    big[i] = to_big(perm[to_small(i, a)], a)
            set_attr(node, "perm", big)
    else:
        if side == "in":
            a_in = a
            a_out = perm.index(a)
        else:
            a_out = a
            a_in = perm[a]

        def edit(_eng: RegionEngine) -> None:
            small = []
            for i in range(old_rank):
                if i == a_out:
                    continue
                small.append(to_small(perm[i], a_in))
            set_attr(node, "perm", small)

    plan = NodePlan(node, edit=edit, info={"a_in": a_in, "a_out": a_out})
    result = eng.operand(node, 0, a_in, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    plan.outs[0] = a_out
    return plan


def _spatial_attr_edit(eng: RegionEngine, node: NodeProto, a: int):
    """Edit inserting/removing the unit axis in a pool's per-axis attributes (Block if not exact)."""
    j = a - 2
    rank = eng.small_rank - 2 if eng.lift else eng.big_rank - 2  # spatial axes before the edit
    kernel = attr(node, "kernel_shape", None)
    if kernel is None or len(kernel) != rank:
        return Block("kernel_shape missing or of another rank")
    if not eng.lift:
        if kernel[j] != 1:
            return Block(f"kernel is {kernel[j]} on spatial axis {j}, not 1")
        pads = attr(node, "pads", None)
        if pads is not None and (len(pads) != 2 * rank or pads[j] or pads[rank + j]):
            return Block(f"pads on spatial axis {j} are not 0")
    return lambda _eng: edit_spatial_attrs(node, j, eng.lift, rank)


def edit_spatial_attrs(node: NodeProto, j: int, lift: bool, rank: int) -> None:
    """Insert (lift) or drop (lower) spatial axis j in every per-axis attribute the node has.

    For a conv, the same change as `ConvAttrs.with_axis`/`without_axis` + `apply`,
    done on the attribute lists in place: absent attributes keep their
    defaults, which stay right at the new rank (strides 1, pads 0, kernel from
    the weight). `rank` is the number of spatial axes before the edit.
    """
    for a in node.attribute:
        if a.name in ("kernel_shape", "strides", "dilations", "output_padding", "output_shape"):
            values = list(a.ints)
            i = j + len(values) - rank  # output_shape may hold N and C too
            unit = 0 if a.name == "output_padding" else 1
            new = values[:i] + [unit] + values[i:] if lift else values[:i] + values[i + 1 :]
        elif a.name == "pads":
            values = list(a.ints)
            n = len(values) // 2
            begin, end = values[:n], values[n:]
            if lift:
                new = begin[:j] + [0] + begin[j:] + end[:j] + [0] + end[j:]
            else:
                new = begin[:j] + begin[j + 1 :] + end[:j] + end[j + 1 :]
        else:
            continue
        del a.ints[:]
        a.ints.extend(new)


MAXPOOL_NAN = ("MaxPool stays at its rank: onnxruntime's MaxPool kernels of different ranks give different "
               "outputs for NaN inputs (finite-math; --assume-finite lets it join)")


def rule_pool(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("pool reached through its indices")
    if node.op_type == "MaxPool" and not eng.assume_finite:
        return Block(MAXPOOL_NAN)
    edit = _spatial_attr_edit(eng, node, a)
    if isinstance(edit, Block):
        return edit
    plan = NodePlan(node, edit=edit)
    result = eng.operand(node, 0, a, plan, enter=pull, rank=eng.old_rank)
    if result is not None:
        return result
    for i, o in enumerate(node.output):
        if o:
            plan.outs[i] = a  # MaxPool indices index the flattened tensor: unit axes change nothing
    return plan


def rule_global_pool(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("global pool reached through a parameter")
    return data_plan(eng, node, a, pull)


def rule_reduce(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if side != "in" or slot != 0:
        return Block(f"{node.op_type} reached through its axes")
    if attr(node, "keepdims", 1) == 0:
        return Block(f"{node.op_type} with keepdims=0 drops axes")
    view = eng.view
    axes_from_input = len(node.input) > 1 and node.input[1]
    if axes_from_input:
        axes = view.const_ints(node.input[1])
        if axes is None:
            return Block(f"{node.op_type} axes are computed")
    else:
        axes = attr(node, "axes", None)
    new_axes = None
    if axes is not None:
        # Reducing over a set of axes that includes a size-1 axis reads the same
        # elements as reducing over the others: the unit axis simply leaves the list.
        new_axes = [m for m in (eng.remap_value(int(x), a) for x in axes) if m is not None]
        if len(axes) and not new_axes:
            return Block(f"{node.op_type} reduces the unit axis alone")

    def edit(_eng: RegionEngine) -> None:
        if new_axes is None or new_axes == list(axes):
            return
        if axes_from_input:
            eng.replace_operand(node, 1, new_axes, "reduce_axes")
        else:
            set_attr(node, "axes", new_axes)

    return data_plan(eng, node, a, None, edit)


def rule_pad(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("Pad reached through an operand")
    view = eng.view
    rank = eng.old_rank
    if view.opset < 11:
        pads = attr(node, "pads", None) if view.opset >= 2 else attr(node, "paddings", None)
        from_input = False
    else:
        pads = view.const_ints(node.input[1]) if len(node.input) > 1 and node.input[1] else None
        from_input = True
    if pads is None:
        return Block("Pad pads are not constant")
    pads = list(pads)
    axes_input = len(node.input) > 3 and node.input[3]
    if axes_input:
        axes = view.const_ints(node.input[3])
        if axes is None:
            return Block("Pad axes are not constant")
        new_axes = [eng.remap_value(x, a) for x in axes]
        if any(x is None for x in new_axes):
            return Block("Pad pads the unit axis")

        def edit(_eng: RegionEngine) -> None:
            if new_axes != list(axes):
                eng.replace_operand(node, 3, new_axes, "pad_axes")
    else:
        if len(pads) != 2 * rank:
            return Block("Pad pads have another rank")
        begin, end = pads[:rank], pads[rank:]
        if eng.lift:
            new_pads = begin[:a] + [0] + begin[a:] + end[:a] + [0] + end[a:]
        else:
            if begin[a] or end[a]:
                return Block("Pad pads the unit axis")
            new_pads = begin[:a] + begin[a + 1 :] + end[:a] + end[a + 1 :]

        def edit(_eng: RegionEngine) -> None:
            if from_input:
                eng.replace_operand(node, 1, new_pads, "pads")
            else:
                set_attr(node, "pads" if view.opset >= 2 else "paddings", new_pads)

    return data_plan(eng, node, a, pull, edit)


def rule_slice(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    if slot != 0:
        return Block("Slice reached through an operand")
    view = eng.view
    attr_form = view.opset < 10
    if attr_form:
        starts = attr(node, "starts", None)
        axes = attr(node, "axes", None)
        if starts is None:
            return Block("Slice without starts")
        axes = list(axes) if axes is not None else list(range(len(starts)))
    else:
        if len(node.input) > 3 and node.input[3]:
            axes = view.const_ints(node.input[3])
            if axes is None:
                return Block("Slice axes are computed")
        else:
            starts = view.const_ints(node.input[1])
            n = len(starts) if starts is not None else None
            if n is None:
                s = view.shape(node.input[1])
                n = s.static(0) if s is not None and s.rank == 1 else None
            if n is None:
                return Block("Slice has no axes and its starts have unknown length")
            axes = list(range(n))
    new_axes = [eng.remap_value(int(x), a) for x in axes]
    if any(x is None for x in new_axes):
        return Block("Slice slices the unit axis")
    has_axes_input = not attr_form and len(node.input) > 3 and node.input[3]

    def edit(_eng: RegionEngine) -> None:
        if attr_form:
            if new_axes != list(axes) or attr(node, "axes", None) is None:
                set_attr(node, "axes", new_axes)
        elif new_axes != list(axes) or not has_axes_input:
            eng.replace_operand(node, 3, new_axes, "slice_axes")

    return data_plan(eng, node, a, pull, edit)


def rule_shape(eng: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
    """Shape gives the same values once its range (start/end), or the constant indices of the
    Gathers that read it, are remapped past the unit axis; Size never changes."""
    if side != "in":
        return Block("Shape reached from its output")
    plan = NodePlan(node)
    plan.data[0] = a
    if node.op_type == "Size":
        return plan
    if attr(node, "start", None) is not None or attr(node, "end", None) is not None:
        edit = _shape_range_edit(eng, node, a)
        if isinstance(edit, Block):
            return edit
        plan.edit = edit
        return plan
    view = eng.view
    out = node.output[0]
    if view.is_graph_output(out):
        return Block("Shape is a graph output")
    users = view.consumers_of(out)
    if not users:
        return Block("Shape is unused")
    remapped: list[tuple[NodeProto, np.ndarray]] = []
    for user in users:
        if user.op_type != "Gather" or attr(user, "axis", 0) != 0 or user.input[0] != out or user.input[1] == out:
            return Block("Shape is read by something other than a Gather of its values")
        idx = view.const_value(user.input[1])
        if idx is None or idx.dtype.kind not in "iu":
            return Block("Shape is gathered at computed indices")
        new = []
        for i in idx.reshape(-1).tolist():
            n = normalize(int(i), eng.old_rank)
            m = eng.remap(n, a) if n is not None else None
            if m is None:
                return Block("Shape is gathered at the unit axis" if n is not None else "Gather index out of range")
            new.append(m if i >= 0 else m - eng.new_rank)
        if new != idx.reshape(-1).tolist():
            remapped.append((user, np.asarray(new, dtype=idx.dtype).reshape(idx.shape)))

    def edit(_eng: RegionEngine) -> None:
        for user, value in remapped:
            old = user.input[1]
            name = view.add_initializer(numpy_helper.from_array(value, view.ctx.fresh("shape_index")))
            view.replace_input(user, 1, name)
            eng.drop_dead([old])

    plan.edit = edit
    return plan


def _shape_range_edit(eng: RegionEngine, node: NodeProto, a: int):
    """Shape(start, end) (opset 15): the same axes in the new rank; Block when the range holds the unit axis."""
    start, end = attr(node, "start", None), attr(node, "end", None)

    def resolve(value: int | None, default: int, rank: int) -> int:
        if value is None:
            return default
        value = int(value) + rank if value < 0 else int(value)
        return min(max(value, 0), rank)

    old_rank, new_rank = eng.old_rank, eng.new_rank
    s, e = resolve(start, 0, old_rank), resolve(end, old_rank, old_rank)
    if e <= s:
        new_s, new_e = 0, 0  # reads nothing, at any rank
    elif e <= a:
        new_s, new_e = s, e  # every axis it reads lies before the unit axis
    elif eng.lift and s >= a:
        new_s, new_e = s + 1, e + 1
    elif not eng.lift and s > a:
        new_s, new_e = s - 1, e - 1
    else:
        return Block("Shape range holds the unit axis" if not eng.lift else "Shape range spans the unit axis")
    if (resolve(start, 0, new_rank), resolve(end, new_rank, new_rank)) == (new_s, new_e):
        return lambda _eng: None  # the attributes already say it at the new rank

    def edit(_eng: RegionEngine) -> None:
        set_attr(node, "start", new_s)
        if end is not None or new_e != new_rank:
            set_attr(node, "end", new_e)

    return edit


RULES: dict[str, OpRule] = {}
