"""The Keras equivalence: a Conv1D over C channels is a one-channel Conv2D whose kernel spans C.

conv-semantics.md, "Channels as a spatial axis": Conv1D with `W [M, C, k]`
(group 1) on `X [N, C, L]` equals Conv2D with one input channel on `X` viewed
as `[N, 1, C, L]`, weight `[M, 1, C, k]`, pads `[0, b, 0, e]`, output
`[N, M, 1, L']` squeezed on axis 2. Keras users write the 2D form directly
(`Conv2D(kernel=(k, input_dim))` over `(steps, input_dim, 1)`), which tf2onnx
exports as `Reshape -> Conv -> Transpose -> Reshape`.

- `channels-as-spatial` rewrites group-1 Conv1Ds into that Conv2D (optional:
  some 2D-only targets want it).
- `spatial-as-channels` is the inverse: a one-input-channel Conv2D whose
  kernel spans a whole spatial axis (no padding on it) is the Conv1D it
  stands for. The layout ops around it (Reshape/Transpose/Squeeze/Unsqueeze
  chains with static shapes) are replaced by the single Transpose, or nothing,
  they amount to, found by pushing an index array through them.
"""

from __future__ import annotations

import itertools

import numpy as np
from onnx import NodeProto, helper, numpy_helper

from ..conv import ConvAttrs
from ..graph import (
    GraphView, attr, constant_node_tensor, drop_if_unread, make_squeeze, make_unsqueeze, squeeze_array, unsqueeze_array,
    unsqueeze_axes, walk_down, walk_up,
)
from ..engine import Conv, PassContext, Refusal, Rewritten, Rule, ViewRun, register
from ..engine.tensor_map import entry as map_entry, squeeze, transpose, unsqueeze
from .reshapes import set_tensor_dims

LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Flatten"})
MAX_CHAIN = 8
MAX_INDEX_ELEMENTS = 1 << 22


def _static(view: GraphView, name: str) -> list[int] | None:
    s = view.shape(name)
    if s is None or s.dims is None or not all(isinstance(d, int) for d in s.dims):
        return None
    return list(s.dims)


def _local_weight(view: GraphView, name: str, reader: NodeProto):
    """The weight tensor itself when only `reader` uses it and it lives in this body (editable in place)."""
    users = view.consumers_of(name)
    if len(users) != 1 or users[0] is not reader or view.is_graph_output(name):
        return None
    if name in view.initializers and view.initializer(name) is not None:
        return view.initializers[name]
    return constant_node_tensor(view, name)


class _KerasEquivalence(Rule):
    """What both directions share: `check` raises Refusal with the reason; the rewrite given the stale-shape set."""

    phase = "extra"

    def match(self, run: ViewRun, conv: Conv) -> None:
        self.check(run.view, conv.node, conv.attrs)  # a Refusal is the skip record, reason and all

    def rewrite(self, run: ViewRun, conv: Conv, match: None) -> Rewritten:
        out = conv.node.output[0]
        after, details = self.rewrite_conv(run.ctx, run.view, conv.node, conv.attrs, run.cleanup.stale)
        return Rewritten(after, details=details, tensor_map=self.tensor_map(run.view, conv.node, out))

    def tensor_map(self, view: GraphView, node: NodeProto, out: str) -> list[dict] | None:
        """The conv's output, viewed back through the layout op that restores the tensor the graph had."""
        new = node.output[0]
        if new == out:
            return [map_entry(out, out)]
        readers = view.consumers_of(new)
        if len(readers) != 1 or not readers[0].output or readers[0].input[0] != new:
            return None  # the conv writes an original tensor itself (the default identity entry)
        op, target = readers[0], readers[0].output[0]
        if op.op_type == "Transpose":
            return [map_entry(target, new, [transpose(attr(op, "perm"))])]
        if op.op_type in ("Squeeze", "Unsqueeze"):
            axes = attr(op, "axes")
            if axes is None and len(op.input) > 1:
                axes = [int(a) for a in view.const_value(op.input[1])]
            make = squeeze if op.op_type == "Squeeze" else unsqueeze
            return [map_entry(target, new, [make(axes)])]
        return None

    def check(self, view: GraphView, node: NodeProto, attrs: ConvAttrs) -> None:
        raise NotImplementedError

    def rewrite_conv(self, ctx, view, node, attrs, dropped):
        raise NotImplementedError


@register
class ChannelsAsSpatial(_KerasEquivalence):
    name = "channels-as-spatial"
    description = "Rewrite group-1 Conv1D [M,C,k] as a one-channel Conv2D with kernel (C, k) over [N,1,C,L] (the Keras equivalence)."

    def check(self, view, node, attrs):
        if node.op_type != "Conv":
            raise Refusal(f"{node.op_type}: only Conv has this equivalence", [node])
        if attrs.rank != 1:
            raise Refusal(f"{attrs.rank}D convolution; channels-as-spatial rewrites 1D", [node])
        if attrs.group != 1:
            raise Refusal(f"group is {attrs.group}, not 1: channels are not all read together", [node])
        w = _static(view, node.input[1])
        if w is None:
            raise Refusal("weight shape is not static", [node])
        x = view.shape(node.input[0])
        length = x.static(2) if x is not None and x.rank == 3 else None
        if attrs.resolved([length]) is None:
            raise Refusal("auto_pad SAME with stride > 1 on a dynamic length", [node])

    def rewrite_conv(self, ctx, view, node, attrs, dropped):
        x = view.shape(node.input[0])
        length = x.static(2) if x is not None and x.rank == 3 else None
        attrs1 = attrs.resolved([length])
        channels = _static(view, node.input[1])[1]
        after = ConvAttrs(
            op_type="Conv",
            kernel_shape=(channels,) + attrs1.kernel_shape,
            strides=(1,) + attrs1.strides,
            dilations=(1,) + attrs1.dilations,
            pads_begin=(0,) + attrs1.pads_begin,
            pads_end=(0,) + attrs1.pads_end,
            group=1,
            auto_pad="NOTSET",
        )
        details = {}
        viewed = view.ctx.fresh(node.input[0] + "_as_image")
        view.insert_before(node, [make_unsqueeze(view, node.input[0], viewed, [1], view.ctx.fresh(viewed + "_Unsqueeze"))])
        view.replace_input(node, 0, viewed)
        ctx.count("unsqueeze_inserted")
        weight = node.input[1]
        tensor = _local_weight(view, weight, node)
        if tensor is not None:
            dims = list(tensor.dims)
            set_tensor_dims(view, tensor, weight, [dims[0], 1] + dims[1:])
            dropped.add(weight)
            details["weight"] = "reshaped in place"
        else:
            new = view.ctx.fresh(weight + "_as_image")
            view.insert_before(node, [make_unsqueeze(view, weight, new, [1], view.ctx.fresh(new + "_Unsqueeze"))])
            view.replace_input(node, 1, new)
            ctx.count("unsqueeze_inserted")
            details["weight"] = "routed through Unsqueeze"
        out = node.output[0]
        image = view.ctx.fresh(out + "_image")
        node.output[0] = image
        view.insert_after(node, [make_squeeze(view, image, out, [2], view.ctx.fresh(out + "_Squeeze"))])
        ctx.count("squeeze_inserted")
        after.apply(node)
        return after, details


@register
class SpatialAsChannels(_KerasEquivalence):
    name = "spatial-as-channels"
    description = "Lower a one-input-channel Conv2D whose kernel spans a whole spatial axis to the Conv1D it is (inverse of channels-as-spatial)."

    def spanned_axis(self, view: GraphView, node: NodeProto, attrs: ConvAttrs) -> int:
        """The spatial axis the kernel spans whole (unpadded, undilated); Refusal saying why there is none."""
        x = _static(view, node.input[0])
        w = _static(view, node.input[1])
        if x is None or len(x) != 4:
            raise Refusal("input shape is not static", [node])
        if w is None:
            raise Refusal("weight shape is not static", [node])
        if x[1] != 1 or w[1] != 1:
            raise Refusal(f"{x[1]} input channels, not 1", [node])
        resolved = attrs.resolved(x[2:])
        if resolved is None:
            raise Refusal("auto_pad depends on unknown sizes", [node])
        why = []
        for s in (1, 0):
            k, d = resolved.kernel_shape[s], resolved.dilations[s]
            if k != x[2 + s]:
                why.append(f"kernel {k} does not span spatial axis {s} (size {x[2 + s]})")
            elif resolved.pads_begin[s] or resolved.pads_end[s]:
                why.append(f"spatial axis {s} is padded")
            elif d != 1 and k > 1:
                why.append(f"dilation {d} on spatial axis {s}")
            else:
                return s
        raise Refusal("; ".join(why), [node])

    def check(self, view, node, attrs):
        if node.op_type != "Conv":
            raise Refusal(f"{node.op_type}: only Conv has this equivalence", [node])
        if attrs.rank != 2:
            raise Refusal(f"{attrs.rank}D convolution; spatial-as-channels rewrites 2D", [node])
        if attrs.group != 1:
            raise Refusal(f"group is {attrs.group}, not 1", [node])
        self.spanned_axis(view, node, attrs)

    def rewrite_conv(self, ctx, view, node, attrs, dropped):
        s = self.spanned_axis(view, node, attrs)
        o = 1 - s
        x_shape = _static(view, node.input[0])
        y_shape = _static(view, node.output[0])
        resolved = attrs.resolved(x_shape[2:])
        after = ConvAttrs(
            op_type="Conv",
            kernel_shape=(resolved.kernel_shape[o],),
            strides=(resolved.strides[o],),
            dilations=(resolved.dilations[o],),
            pads_begin=(resolved.pads_begin[o],),
            pads_end=(resolved.pads_end[o],),
            group=1,
            auto_pad="NOTSET",
        )
        details = {"spanned_axis": s}
        # Data: [N, 1, H, W] -> [N, C, L] with C the spanned axis.
        want_in = lambda idx: idx[:, 0] if s == 0 else idx[:, 0].transpose(0, 2, 1)  # noqa: E731
        new_in = _adapt_input(view, ctx, node, want_in)
        view.replace_input(node, 0, new_in)
        # Weight: [M, 1, KH, KW] -> [M, C, k].
        weight = node.input[1]
        tensor = _local_weight(view, weight, node)
        if s == 0 and tensor is not None:
            dims = list(tensor.dims)
            set_tensor_dims(view, tensor, weight, [dims[0]] + dims[2:])
            dropped.add(weight)
            details["weight"] = "reshaped in place"
        else:
            value = view.const_value(weight) if view.initializer(weight) is not None or tensor is not None else None
            if value is not None:
                value = value[:, 0] if s == 0 else value[:, 0].transpose(0, 2, 1)
                new = view.add_initializer(numpy_helper.from_array(np.ascontiguousarray(value), view.ctx.fresh(weight + "_1d")))
                details["weight"] = "transposed into a new initializer"
            else:
                new = view.ctx.fresh(weight + "_1d")
                nodes = [make_squeeze(view, weight, new if s == 0 else new + "_sq", [1], view.ctx.fresh(new + "_Squeeze"))]
                if s == 1:
                    nodes.append(helper.make_node("Transpose", [new + "_sq"], [new], name=view.ctx.fresh(new + "_Transpose"), perm=[0, 2, 1]))
                view.insert_before(node, nodes)
                details["weight"] = "routed through Squeeze/Transpose"
            view.replace_input(node, 1, new)
            if tensor is not None:
                drop_if_unread(view, [weight])
        # Output: [N, M, L'] -> what the original [N, M, H', W'] fed.
        out = node.output[0]
        unit = 2 + s
        _adapt_output(view, ctx, node, out, y_shape, unit)
        after.apply(node)
        return after, details


# ---------------------------------------------------------------- layout chains


def _remove_chain(view: GraphView, nodes: list[NodeProto]) -> None:
    """Remove layout ops replaced by one Transpose (or none), and their now unused shape/axes operands."""
    for node in nodes:
        view.remove(node)
    for node in nodes:
        for operand in node.input[1:]:
            if operand:
                drop_if_unread(view, [operand])


def _simulate(view: GraphView, node: NodeProto, value: np.ndarray) -> np.ndarray | None:
    """Apply one layout op to an index array (None when its operands are not constant)."""
    op = node.op_type
    try:
        if op == "Identity":
            return value
        if op == "Transpose":
            perm = attr(node, "perm")
            return np.transpose(value, perm) if perm is not None else value.T
        if op == "Reshape":
            shape = view.const_ints(node.input[1])
            if shape is None:
                return None
            if not attr(node, "allowzero", 0):
                shape = [value.shape[i] if v == 0 else v for i, v in enumerate(shape)]
            return value.reshape(shape)
        if op == "Flatten":
            axis = attr(node, "axis", 1)
            axis = axis + value.ndim if axis < 0 else axis
            return value.reshape(int(np.prod(value.shape[:axis])), -1)
        if op == "Squeeze":
            return squeeze_array(value, unsqueeze_axes(view, node))
        if op == "Unsqueeze":
            axes = unsqueeze_axes(view, node)
            return None if axes is None else unsqueeze_array(value, axes)
    except ValueError:
        return None
    return None


def _find_perm(source: np.ndarray, target: np.ndarray) -> list[int] | None:
    """A permutation p with source.transpose(p) == target (the identity first)."""
    if source.ndim != target.ndim or source.size != target.size:
        return None
    for perm in itertools.permutations(range(source.ndim)):
        moved = source.transpose(perm)
        if moved.shape == target.shape and np.array_equal(moved, target):
            return list(perm)
    return None


def _adapt_input(view: GraphView, ctx: PassContext, conv: NodeProto, want) -> str:
    """The Conv1D input: the source of a layout chain (through one Transpose at most), or adapters."""
    chain = walk_up(view, conv.input[0], MAX_CHAIN, LAYOUT_OPS, reader=conv)[1][::-1]  # conv side first
    for start in range(len(chain), -1, -1):
        source = chain[start - 1].input[0] if start else conv.input[0]
        shape = _static(view, source)
        if shape is None or len(shape) != 3 or int(np.prod(shape)) > MAX_INDEX_ELEMENTS:
            continue
        index = np.arange(int(np.prod(shape))).reshape(shape)
        value = index
        for node in reversed(chain[:start]):
            value = _simulate(view, node, value)
            if value is None:
                break
        if value is None or value.ndim != 4:
            continue
        perm = _find_perm(index, want(value))
        if perm is None:
            continue
        _remove_chain(view, chain[:start])
        if perm == [0, 1, 2]:
            return source
        out = view.ctx.fresh(source + "_ncl")
        view.insert_before(conv, [helper.make_node("Transpose", [source], [out], name=view.ctx.fresh(out + "_Transpose"), perm=perm)])
        return out
    x = conv.input[0]
    squeezed = view.ctx.fresh(x + "_ncl")
    nodes = [make_squeeze(view, x, squeezed, [1], view.ctx.fresh(squeezed + "_Squeeze"))]
    ctx.count("squeeze_inserted")
    if want(np.zeros((1, 1, 2, 3))).shape != (1, 2, 3):
        moved = view.ctx.fresh(x + "_ncl_t")
        nodes.append(helper.make_node("Transpose", [squeezed], [moved], name=view.ctx.fresh(moved + "_Transpose"), perm=[0, 2, 1]))
        squeezed = moved
    view.insert_before(conv, nodes)
    return squeezed


def _adapt_output(view: GraphView, ctx: PassContext, conv: NodeProto, out: str, y_shape: list[int] | None, unit: int) -> None:
    """Give the consumers of the Conv2D output what they read, from the Conv1D output."""
    chain = walk_down(view, out, len(y_shape or ()), MAX_CHAIN, keep=LAYOUT_OPS).layout  # axes not needed: simulated
    if y_shape is not None and int(np.prod(y_shape)) <= MAX_INDEX_ELEMENTS:
        small = y_shape[:unit] + y_shape[unit + 1 :]
        index = np.arange(int(np.prod(small))).reshape(small)
        values = []
        value = index.reshape(y_shape)
        for node in chain:
            value = _simulate(view, node, value)
            if value is None:
                break
            values.append(value)
        for end in range(len(values), 0, -1):
            perm = _find_perm(index, values[end - 1])
            if perm is None:
                continue
            target = chain[end - 1].output[0]
            _remove_chain(view, chain[:end])
            if perm == [0, 1, 2]:
                conv.output[0] = target
            else:
                mid = view.ctx.fresh(out + "_ncl")
                conv.output[0] = mid
                view.insert_after(conv, [helper.make_node("Transpose", [mid], [target], name=view.ctx.fresh(target + "_Transpose"), perm=perm)])
            return
    mid = view.ctx.fresh(out + "_ncl")
    conv.output[0] = mid
    view.insert_after(conv, [make_unsqueeze(view, mid, out, [unit], view.ctx.fresh(out + "_Unsqueeze"))])
    ctx.count("unsqueeze_inserted")
