"""Find and classify every convolution in a model: what `convrewrite inspect` shows.

Walks the main graph, every If/Loop/Scan body and every model-local function.
Each convolution gets its attributes normalized by ConvAttrs (defaults filled,
pads explicit where auto_pad can be resolved) and a list of `kinds` that says
which rewrites could apply to it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from ..conv import CONV_OPS, WEIGHT_INPUT, ConvAttrError, ConvAttrs
from ..errors import ModelInvalidError
from ..graph import (
    GraphView, ModelContext, attr, constant_node_tensor, iter_views, node_labels, slice_kept_range, slice_operands,
    unsqueeze_axes,
)
from .. import shapes as shape_inference

KINDS = (
    "depthwise", "pointwise", "grouped", "dilated", "strided", "transposed", "quantized", "causal",
    "pad-fed", "sliced", "separable-pair", "unit-axis", "wrapped-1d",
)

# Ops that move data without changing which values sit on the conv's axes.
_PASS_THROUGH_UNARY = {"Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "Gelu", "HardSigmoid", "Softplus", "Neg", "Abs"}
from .ports import ports
from .ports import render as render_ports


def inventory(model: onnx.ModelProto, name: str | None = None, rules: bool = False) -> dict[str, Any]:
    """`{"model", "opsets", "convolutions": [...]}` for every convolution in the model.

    `rules`: each convolution also gets `"rules"`, what every registered rule
    would do with it and why not (the rules' own match, nothing rewritten).
    """
    ctx = ModelContext(model, shape_inference.infer(model))
    convs: list[dict[str, Any]] = []
    for view in iter_views(model, ctx):
        labels = node_labels(view)
        for node in view.nodes:
            if node.op_type in CONV_OPS and node.domain in ("", "ai.onnx"):
                convs.append(describe(view, node, labels[id(node)]))
    if rules:
        from .verdicts import rule_verdicts

        verdicts = rule_verdicts(model)
        for c in convs:
            c["rules"] = verdicts.get((c["graph"], c["name"]), [])
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    return {
        "model": name if name is not None else (model.graph.name or ""),
        "ir_version": model.ir_version,
        "opsets": opsets,
        **ports(model),
        "convolutions": convs,
    }


def read_attrs(view: GraphView, node: onnx.NodeProto) -> ConvAttrs:
    """ConvAttrs of a node, the weight's shape supplying a missing kernel; one clear error otherwise."""
    w_index = WEIGHT_INPUT[node.op_type]
    weight_shape = None
    if len(node.input) > w_index and node.input[w_index]:
        s = view.shape(node.input[w_index])
        if s is not None and s.dims is not None:
            weight_shape = s.dims
        else:
            weight_shape = _constant_node_dims(view, node.input[w_index])
    try:
        return ConvAttrs.from_node(node, weight_shape)
    except ConvAttrError as exc:
        raise ModelInvalidError(f"{node.op_type} {node.name or '(unnamed)'} in {view.path}: {exc}") from None


def channels(view: GraphView, node: onnx.NodeProto, attrs: ConvAttrs) -> tuple[int | None, int | None]:
    """(in_channels, out_channels), from the weight when known, else from the input shape."""
    w_index = WEIGHT_INPUT[node.op_type]
    weight = node.input[w_index] if len(node.input) > w_index else ""
    ws = view.shape(weight) if weight else None
    dims = ws.dims if ws is not None and ws.dims is not None else _constant_node_dims(view, weight)
    first = dims[0] if dims and isinstance(dims[0], int) else None
    second = dims[1] if dims and len(dims) > 1 and isinstance(dims[1], int) else None
    if attrs.transposed:
        cin = first
        cout = second * attrs.group if second is not None else None
    else:
        cout = first
        cin = second * attrs.group if second is not None else None
    if cin is None:
        xs = view.shape(node.input[0])
        if xs is not None:
            cin = xs.static(1)
    return cin, cout


def _constant_node_dims(view: GraphView, name: str) -> list[int] | None:
    """Dims of a Constant node's tensor (a weight inside a function, where no shapes are inferred)."""
    tensor = constant_node_tensor(view, name) if name else None
    return [int(d) for d in tensor.dims] if tensor is not None else None


def describe(view: GraphView, node: onnx.NodeProto, label: str) -> dict[str, Any]:
    attrs = read_attrs(view, node)
    xs = view.shape(node.input[0])
    spatial = xs.dims[2:] if xs is not None and xs.dims is not None and len(xs.dims) == attrs.rank + 2 else None
    static = [d if isinstance(d, int) else None for d in spatial] if spatial is not None else None
    explicit = attrs.resolved(static) or attrs
    cin, cout = channels(view, node, attrs)
    entry: dict[str, Any] = {
        "name": label,
        "op_type": node.op_type,
        "graph": view.path,
        "rank": attrs.rank,
        "in_channels": cin,
        "out_channels": cout,
        "kernel_shape": list(attrs.kernel_shape),
        "strides": list(attrs.strides),
        "dilations": list(attrs.dilations),
        "pads": list(explicit.pads) if explicit.auto_pad == "NOTSET" else None,
        "group": attrs.group,
        "auto_pad": attrs.auto_pad,
    }
    if attrs.transposed:
        entry["output_padding"] = list(attrs.output_padding)
        if attrs.output_shape is not None:
            entry["output_shape"] = list(attrs.output_shape)
    entry["kinds"] = classify(view, node, attrs, explicit, cin, spatial)
    return entry


def classify(
    view: GraphView,
    node: onnx.NodeProto,
    attrs: ConvAttrs,
    explicit: ConvAttrs,
    cin: int | None,
    spatial: list | None,
) -> list[str]:
    kinds: set[str] = set()
    if is_depthwise(attrs, cin):
        kinds.add("depthwise")
    if is_pointwise(attrs):
        kinds.add("pointwise")
    if 1 < attrs.group and not is_depthwise(attrs, cin):
        kinds.add("grouped")
    if any(d > 1 for d in attrs.dilations):
        kinds.add("dilated")
    if any(s > 1 for s in attrs.strides):
        kinds.add("strided")
    if attrs.transposed:
        kinds.add("transposed")
    if node.op_type in ("QLinearConv", "ConvInteger") or _dequantized_weight(view, node):
        kinds.add("quantized")
    pad = pad_feeding(view, node)
    if pad is not None:
        kinds.add("pad-fed")
    trim = slice_after(view, node)
    if trim is not None:
        kinds.add("sliced")
    if _is_causal(view, node, attrs, explicit, pad, trim):
        kinds.add("causal")
    if "depthwise" in kinds and pointwise_consumer(view, node) is not None:
        kinds.add("separable-pair")
    if "pointwise" in kinds and depthwise_producer(view, node) is not None:
        kinds.add("separable-pair")
    if attrs.rank >= 2 and spatial is not None and any(d == 1 for d in spatial):
        kinds.add("unit-axis")
    if attrs.rank >= 2 and wrapped_axis(view, node) is not None:
        kinds.add("wrapped-1d")
        kinds.add("unit-axis")  # the Unsqueeze made that axis: size 1 even where inference lost the shape
    return [k for k in KINDS if k in kinds]


def is_depthwise(attrs: ConvAttrs, cin: int | None) -> bool:
    return cin is not None and attrs.group > 1 and attrs.group == cin


def is_pointwise(attrs: ConvAttrs) -> bool:
    return (
        not attrs.transposed
        and attrs.group == 1
        and all(k == 1 for k in attrs.kernel_shape)
        and all(s == 1 for s in attrs.strides)
        and all(p == 0 for p in attrs.pads)
        and attrs.auto_pad in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")
    )


def _dequantized_weight(view: GraphView, node: onnx.NodeProto) -> bool:
    if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
        return False
    producer = view.producer_of(node.input[1])
    return producer is not None and producer.op_type == "DequantizeLinear"


def pad_feeding(view: GraphView, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Pad that feeds this conv, directly or through Unsqueeze/Transpose wrappers."""
    name = node.input[0]
    for _ in range(4):
        producer = view.producer_of(name)
        if producer is None:
            return None
        if producer.op_type == "Pad":
            return producer
        if producer.op_type not in ("Unsqueeze", "Transpose", "Identity"):
            return None
        name = producer.input[0]
    return None


def slice_after(view: GraphView, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Slice that is this conv's sole consumer (directly or after a Squeeze).

    A Shape (or Size) reader does not count: it reads no values (TorchScript
    writes `y[:, :, :y.shape[-1] - p]` as Shape -> ... -> Slice end).
    """
    name = node.output[0]
    for _ in range(3):
        user = _sole_value_reader(view, name)
        if user is None:
            return None
        if user.op_type == "Slice":
            return user
        if user.op_type not in ("Squeeze", "Identity"):
            return None
        name = user.output[0]
    return None


def _sole_value_reader(view: GraphView, name: str) -> onnx.NodeProto | None:
    if view.is_graph_output(name):
        return None
    users = [u for u in view.consumers_of(name) if u.op_type not in ("Shape", "Size")]
    return users[0] if len(users) == 1 else None


def _time_axis(attrs: ConvAttrs) -> int | None:
    """The last spatial axis whose kernel spans more than one step (the sequence axis)."""
    for axis in range(attrs.rank - 1, -1, -1):
        if attrs.dilations[axis] * (attrs.kernel_shape[axis] - 1) > 0:
            return axis
    return None


def _is_causal(view, node, attrs, explicit, pad, trim) -> bool:
    """Pads only before the time axis, counting a feeding Pad and a trimming Slice."""
    axis = _time_axis(attrs)
    if axis is None or explicit.auto_pad != "NOTSET":
        return False
    begin, end = explicit.pads_begin[axis], explicit.pads_end[axis]
    if pad is not None and (attr(pad, "mode", "constant") or "constant") != "constant":
        return False  # reflect/edge/wrap padding reads future samples into the past
    if pad is not None:
        extra = _pad_amount_on_conv_axis(view, pad, node, axis, attrs.rank)
        if extra is not None:
            begin, end = begin + extra[0], end + extra[1]
    if trim is not None and not attrs.transposed:
        dropped = _slice_drop_on_axis(view, trim, node, axis, explicit)
        if dropped is not None:
            begin -= dropped[0] * attrs.strides[axis]
            end -= dropped[1] * attrs.strides[axis]
    return begin > 0 and end == 0


def _pad_amount_on_conv_axis(view, pad, conv, axis, rank) -> tuple[int, int] | None:
    """The Pad's (begin, end) on the tensor axis that becomes the conv's spatial `axis`."""
    if view.opset < 11:
        pads = attr(pad, "pads")
    else:
        pads = view.const_ints(pad.input[1]) if len(pad.input) > 1 else None
    if pads is None:
        return None
    n = len(pads) // 2
    # Follow the wrappers forward from the Pad to the conv, tracking where each axis goes.
    axes = list(range(n))
    name = pad.output[0]
    while name != conv.input[0]:
        user = view.sole_consumer(name)
        if user is None:
            return None
        if user.op_type == "Unsqueeze":
            ua = unsqueeze_axes(view, user)
            if ua is None:
                return None
            out_rank = len(axes) + len(ua)
            ua = sorted(a + out_rank if a < 0 else a for a in ua)
            for a in ua:
                axes.insert(a, None)
        elif user.op_type == "Transpose":
            perm = attr(user, "perm") or list(reversed(range(len(axes))))
            axes = [axes[p] for p in perm]
        elif user.op_type != "Identity":
            return None
        name = user.output[0]
    target = axes[2 + axis] if 2 + axis < len(axes) else None
    if target is None:
        return (0, 0)
    return pads[target], pads[n + target]


def _slice_drop_on_axis(view, trim, conv, axis, explicit: ConvAttrs) -> tuple[int, int] | None:
    rank = explicit.rank
    operands = slice_operands(view, trim)
    if operands is None:
        return _computed_slice_drop(view, trim, conv, axis, explicit)
    starts, ends, axes, steps = operands
    axes = axes if axes is not None else list(range(len(starts)))
    tensor_rank = rank + 2
    # A Squeeze between conv and Slice removes unit axes: map the Slice's axes back.
    producer = view.producer_of(trim.input[0])
    squeezed: list[int] = []
    if producer is not None and producer.op_type == "Squeeze":
        sq = unsqueeze_axes(view, producer)
        if sq is None:
            return None
        squeezed = sorted(a + tensor_rank if a < 0 else a for a in sq)
    kept = [a for a in range(tensor_rank) if a not in squeezed]
    out_shape = view.shape(trim.input[0])
    for i, a in enumerate(axes):
        rank_here = len(kept)
        a = a + rank_here if a < 0 else a
        if a >= len(kept) or kept[a] != 2 + axis:
            continue
        if steps is not None and steps[i] != 1:
            return None
        dim = out_shape.static(a) if out_shape is not None else None
        return slice_kept_range(starts[i], ends[i], dim)
    return None


def _computed_slice_drop(view, trim, conv, axis, explicit: ConvAttrs) -> tuple[int, int] | None:
    """(front, end) outputs dropped by a Slice whose end is computed from the conv's input or output length.

    Mamba-style code pads k-1 and keeps `[..., :L]` with L the input length;
    the causal pass proves such an end affine in L with the same helpers.
    """
    from ..symbolic import SYMBOLIC_DEPTH, Affine, NotAffine, output_affine, shape_symbols, static_operands, symbolic

    if trim.input[0] != conv.output[0] or len(trim.input) < 3:
        return None
    starts, axes, steps, reason = static_operands(view, trim)
    if reason:
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    tensor_rank = explicit.rank + 2
    lout = output_affine(explicit, axis)
    if lout is None:
        return None
    for i, a in enumerate(axes):
        a = a + tensor_rank if a < 0 else a
        if a != 2 + axis:
            continue
        if (steps is not None and steps[i] != 1) or starts[i] < 0:
            return None
        symbols = {
            conv.input[0]: shape_symbols(view.shape(conv.input[0]), a, Affine(1, 0)),
            conv.output[0]: shape_symbols(view.shape(conv.output[0]), a, lout),
        }
        try:
            value = symbolic(view, trim.input[2], symbols, [], SYMBOLIC_DEPTH)
        except (NotAffine, TypeError, ValueError, IndexError, np.exceptions.AxisError):
            return None
        flat = value.reshape(-1) if value is not None else None
        if flat is None or i >= flat.size or not isinstance(flat[i], Affine):
            return None
        end = flat[i]
        if end.a != lout.a or lout.b - end.b < 0:
            return None
        return starts[i], lout.b - end.b
    return None


def pointwise_consumer(view: GraphView, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """The pointwise Conv reading this conv's output alone (directly, or through a BatchNormalization)."""
    name = node.output[0]
    for _ in range(3):
        user = view.sole_consumer(name)
        if user is None:
            return None
        if user.op_type == "Conv" and user.input[0] == name:
            try:
                attrs = read_attrs(view, user)
            except ModelInvalidError:
                return None
            return user if is_pointwise(attrs) else None
        if user.op_type not in ("BatchNormalization", "Transpose"):
            return None
        name = user.output[0]
    return None


def depthwise_producer(view: GraphView, node: onnx.NodeProto) -> onnx.NodeProto | None:
    name = node.input[0]
    for _ in range(3):
        producer = view.producer_of(name)
        if producer is None:
            return None
        if producer.op_type == "Conv":
            if pointwise_consumer(view, producer) is not node:
                return None
            try:
                attrs = read_attrs(view, producer)
            except ModelInvalidError:
                return None
            cin, _ = channels(view, producer, attrs)
            return producer if is_depthwise(attrs, cin) else None
        if producer.op_type not in ("BatchNormalization", "Transpose"):
            return None
        name = producer.input[0]
    return None


def wrapped_axis(view: GraphView, node: onnx.NodeProto) -> int | None:
    """The conv's spatial axis that an Unsqueeze creates and a Squeeze removes (tf2onnx's Conv1D form)."""
    rank = None
    try:
        rank = read_attrs(view, node).rank
    except ModelInvalidError:
        return None
    tensor_rank = rank + 2
    # Backwards: which conv input axis did the Unsqueeze insert?
    position = list(range(tensor_rank))  # conv axis i holds the tensor axis position[i] of the current tensor
    name = node.input[0]
    inserted: int | None = None
    for _ in range(6):
        producer = view.producer_of(name)
        if producer is None:
            return None
        if producer.op_type == "Transpose":
            perm = attr(producer, "perm") or list(reversed(range(tensor_rank)))
            position = [perm[p] for p in position]
        elif producer.op_type == "Unsqueeze":
            axes = unsqueeze_axes(view, producer)
            if axes is None or len(axes) != 1:
                return None
            a = axes[0] + tensor_rank if axes[0] < 0 else axes[0]
            if a not in position:
                return None
            inserted = position.index(a)
            break
        elif producer.op_type in _PASS_THROUGH_UNARY or producer.op_type == "Pad":
            if producer.op_type == "Pad":
                return None
        elif producer.op_type == "Conv" and producer is not node:
            pass  # a conv feeding this one inside the same wrapper (separable pair)
        else:
            return None
        name = producer.input[0]
    if inserted is None or inserted < 2:
        return None
    # Forwards: does a Squeeze remove the same axis?
    position = list(range(tensor_rank))
    name = node.output[0]
    for _ in range(6):
        user = view.sole_consumer(name)
        if user is None:
            return None
        if user.op_type == "Transpose":
            perm = attr(user, "perm") or list(reversed(range(tensor_rank)))
            position = [perm.index(p) for p in position]
        elif user.op_type == "Squeeze":
            axes = unsqueeze_axes(view, user)
            if axes is None or len(axes) != 1:
                return None
            a = axes[0] + tensor_rank if axes[0] < 0 else axes[0]
            return inserted - 2 if position[inserted] == a else None
        elif user.op_type in ("Conv", "Add", "Mul", "BatchNormalization") or user.op_type in _PASS_THROUGH_UNARY:
            pass
        else:
            return None
        name = user.output[0]
    return None


# ---------------------------------------------------------------- rendering


def render_text(report: dict[str, Any]) -> str:
    """A readable table, one row per convolution, and a one-line summary."""
    convs = report["convolutions"]
    headers = ["name", "op", "graph", "rank", "in", "out", "kernel", "strides", "dilations", "pads", "group", "kinds"]
    rows = []
    for c in convs:
        pads = c["pads"] if c["pads"] is not None else c["auto_pad"]
        rows.append([
            c["name"], c["op_type"], c["graph"], str(c["rank"]), _s(c["in_channels"]), _s(c["out_channels"]),
            _ints(c["kernel_shape"]), _ints(c["strides"]), _ints(c["dilations"]),
            _ints(pads) if isinstance(pads, list) else str(pads), str(c["group"]), ",".join(c["kinds"]) or "-",
        ])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = render_ports(report) if "inputs" in report else []
    if rows:
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    for c in convs if any("rules" in c for c in convs) else ():
        lines.append(f"{c['graph']}:{c['name']}")
        for v in c.get("rules", []):
            lines.append(f"  {v['rule']:<20} {v['verdict']:<8} {v['reason']}".rstrip())
    lines.append(summary_line(report))
    return "\n".join(lines)


def summary_line(report: dict[str, Any]) -> str:
    convs = report["convolutions"]
    by_rank: dict[int, int] = {}
    by_kind: dict[str, int] = {}
    for c in convs:
        by_rank[c["rank"]] = by_rank.get(c["rank"], 0) + 1
        for k in c["kinds"]:
            by_kind[k] = by_kind.get(k, 0) + 1
    ranks = ", ".join(f"{n} x {r}D" for r, n in sorted(by_rank.items())) or "none"
    kinds = ", ".join(f"{k} {by_kind[k]}" for k in KINDS if k in by_kind) or "none"
    noun = "convolution" if len(convs) == 1 else "convolutions"
    return f"{len(convs)} {noun} ({ranks}); kinds: {kinds}"


def _ints(values) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def _s(v) -> str:
    return "?" if v is None else str(v)
