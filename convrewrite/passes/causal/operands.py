"""Reading what a causal fold folds: Pad amounts and value, Slice bounds per axis, the axis map through layout wrappers, auto_pad that cannot be resolved."""

from __future__ import annotations

from typing import Sequence
import onnx
from onnx import NodeProto

from ...conv import ConvAttrs, effective_kernel
from ...graph import GraphView, attr, remove_attr
from ...refusal import Refusal


STD_DOMAINS = ("", "ai.onnx")


# Layout-only ops allowed between a Pad and its conv (tf2onnx wraps Keras convs in them).
WRAPPERS = ("Unsqueeze", "Transpose", "Identity")


MAX_WRAPPERS = 4


def unresolvable_reason(attrs: ConvAttrs, spatial: Sequence[int | None]) -> str:
    """Why `attrs.resolved(spatial)` found no explicit pads."""
    for j, size in enumerate(spatial):
        if attrs.strides[j] != 1 and size is None:
            return f"its pads depend on the dynamic size of spatial axis {j} (stride {attrs.strides[j]})"
    if attrs.transposed:
        for j, op in enumerate(attrs.output_padding):
            if op and attrs.auto_pad != "NOTSET":
                return (f"output_padding {op} on spatial axis {j}: onnx shape inference makes the SAME output "
                        "D*s + output_padding, onnxruntime D*s, so explicit pads would change the inferred shapes")
        for j, s in enumerate(attrs.strides):
            span = effective_kernel(attrs.kernel_shape[j], attrs.dilations[j])
            if span + attrs.output_padding[j] < s:
                # Seen with onnx 1.23 / onnxruntime 1.31: the reference grows the output to D*s (an extra
                # bias-only step at the front for SAME_UPPER, at the end for SAME_LOWER); onnxruntime does not.
                return (f"kernel span {span} is shorter than stride {s} on spatial axis {j}, so SAME needs "
                        "negative pads, which explicit pads cannot express (the ONNX reference and onnxruntime "
                        "also disagree on this case)")
    return "no explicit pads give the same output"


def check_exclusive(view: GraphView, tensor: str, op: str) -> None:
    """Refusal when `tensor` (written by `op`) is read by more than the next node of the pattern."""
    if view.is_graph_output(tensor):
        raise Refusal(f"{op} output is a graph output")
    n = len(view.consumers_of(tensor))
    if n != 1:
        raise Refusal(f"{op} output has {n} consumers")


def pad_value(view: GraphView, pad: NodeProto):
    """The Pad's constant value as a Python number; Refusal when it is not one."""
    if view.opset < 11:
        return attr(pad, "value", 0.0)
    if len(pad.input) < 3 or not pad.input[2]:
        return 0
    value = view.const_value(pad.input[2])
    if value is None:
        raise Refusal("Pad value is computed at run time", [pad])
    if value.size != 1:
        raise Refusal(f"Pad value has {value.size} elements", [pad])
    return value.reshape(-1)[0].item()  # NaN compares unequal to 0 and is reported as such


def pad_amounts(view: GraphView, pad: NodeProto, rank: int):
    """[(begin, end)] per axis of the Pad's input; Refusal saying why they cannot be read."""
    if view.opset < 11:
        pads = attr(pad, "pads", attr(pad, "paddings"))
        pads = list(pads) if pads is not None else None
    else:
        pads = view.const_ints(pad.input[1]) if len(pad.input) > 1 and pad.input[1] else None
    if pads is None:
        raise Refusal("Pad amounts are computed at run time", [pad])
    axes = list(range(rank))
    if view.opset >= 18 and len(pad.input) > 3 and pad.input[3]:
        given = view.const_ints(pad.input[3])
        if given is None:
            raise Refusal("Pad axes are computed at run time", [pad])
        axes = [a + rank if a < 0 else a for a in given]
        if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
            raise Refusal(f"Pad axes {given} do not fit rank {rank}", [pad])
    if len(pads) != 2 * len(axes):
        raise Refusal(f"Pad has {len(pads)} amounts for {len(axes)} axes", [pad])
    if any(p < 0 for p in pads):
        raise Refusal("Pad has negative amounts (it crops)", [pad])
    amounts = [(0, 0)] * rank
    for i, a in enumerate(axes):
        amounts[a] = (pads[i], pads[len(axes) + i])
    return amounts


def describe(begins: Sequence[int], ends: Sequence[int]) -> str:
    parts = []
    for j, (b, e) in enumerate(zip(begins, ends)):
        if b or e:
            parts.append(f"{b} at the front and {e} at the end of spatial axis {j}")
    return ", ".join(parts) or "nothing"


def fold_axis(
    attrs: ConvAttrs, j: int, q0: int, q1: int, size: int | None, begins: list[int], ends: list[int]
) -> None:
    """Adjust begins/ends[j] for a Slice dropping q0 outputs at the front and q1 at the end; or Refusal."""
    if attrs.transposed:
        # A ConvTranspose's pads crop its full output: dropping more is more pads, at any stride.
        begins[j] += q0
        ends[j] += q1
        return
    s, pb, pe = attrs.strides[j], begins[j], ends[j]
    if q0:
        if pb < q0 * s:
            stride = f" (stride {s})" if s != 1 else ""
            raise Refusal(f"slice drops {q0} outputs at the front{stride} but begin pad is {pb}")
        begins[j] = pb - q0 * s
    if q1:
        if pe >= q1 * s:
            ends[j] = pe - q1 * s  # exact for every input length
        elif s == 1:
            raise Refusal(f"slice drops {q1} outputs but end pad is {pe}")
        elif size is None:
            raise Refusal(f"slice drops {q1} outputs at the end (stride {s}) but end pad is {pe} < {q1 * s}, "
                          "and the length is dynamic")
        else:
            # floor division leaves slack r: any end reduction in [q1*s - s + r + 1, q1*s + r] keeps the length.
            span = effective_kernel(attrs.kernel_shape[j], attrs.dilations[j])
            slack = (size + pb + pe - span) % s
            lowest = q1 * s - s + slack + 1
            if pe < lowest:
                raise Refusal(f"slice drops {q1} outputs at the end (stride {s}) but end pad is {pe}, needs {lowest}")
            ends[j] = 0


def set_ints(node: NodeProto, name: str, values: Sequence[int]) -> None:
    """Set an INTS attribute in place (what helper.make_attribute builds, without its cost)."""
    for a in node.attribute:
        if a.name == name and a.type == onnx.AttributeProto.INTS:
            del a.ints[:]
            a.ints.extend(values)
            return
    remove_attr(node, name)
    a = node.attribute.add()
    a.name = name
    a.type = onnx.AttributeProto.INTS
    a.ints.extend(values)
