"""Pads before quantized convolutions: what a quantized conv pads with, and when a Pad matches it.

A quantized conv (ConvInteger, QLinearConv) pads its input with the input
zero point, not with 0: onnxruntime 1.31 gives the same integers for
`ConvInteger(pads=[2, 0], x_zero_point=z)` and `Pad(value=z) -> ConvInteger`
for z in {0, 3, 200}, and different ones for `Pad(value=0)` when z != 0
(tests/passes/causal/test_causal_quantized.py runs this). So a constant Pad folds into a
quantized conv's pads exactly when its fill equals that zero point.

## Pad(float, 0) -> DynamicQuantizeLinear -> ConvInteger

onnxruntime's quantize_dynamic writes this for a causal (left-padded) conv.
DynamicQuantizeLinear (DQL) computes, over its whole input x,

    lo = min(0, min x),  hi = max(0, max x)
    scale = (hi - lo) / 255   (1 when hi == lo)
    zp = saturate(round(0 - lo / scale)),  q = saturate(round(x / scale) + zp)

Padding x with zeros leaves lo and hi unchanged (the range always includes
0), so scale and zp are the same, and every original element quantizes to
the same q. A padded zero quantizes to saturate(round(0 / scale) + zp) = zp
whenever scale is finite and non-zero, or +Inf (0 / Inf = 0): exactly what
the conv's own padding (its x_zero_point, which is this DQL's zp) holds.
+-Inf and -0 inputs keep this (tested).

Two input classes break it, so the fold is a finite-math rewrite, done only
with `assume_finite` and recorded as such (without it the conv is left alone
with this reason):
- NaN: onnxruntime's min/max (SIMD, lane order) sees or skips a NaN
  depending on where it sits, and padding moves every element; seen: 4 of 30
  random NaN inputs gave another scale after the fold.
- a wholly subnormal range, hi - lo at most 127 * 2**-149: the scale
  underflows to 0 while hi != lo, onnxruntime computes zp = 255 from 0/0 and
  quantizes a padded zero to 0, so the folded conv (padding with 255) gives
  other integers than the original.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from ...graph import GraphView
from ...refusal import Refusal

QUANTIZED_CONVS = ("ConvInteger", "QLinearConv")

QUANTIZER = "DynamicQuantizeLinear"

# Why the DQL fold needs assume_finite (see the module docstring).
DQL_SUBNORMAL = ("a Pad before DynamicQuantizeLinear folds exactly except for NaN inputs (onnxruntime's min/max "
                 "see or skip a NaN depending on its position) and an input range that is wholly subnormal (at "
                 "most 127 * 2**-149: the scale underflows to 0, the zero point becomes 255 but the padded zeros "
                 "quantize to 0)")
DQL_LEFT = f"{DQL_SUBNORMAL}; left alone without --assume-finite"
DQL_DONE = f"finite-math rewrite under --assume-finite ({DQL_SUBNORMAL})"


def x_zero_point(view: GraphView, conv: NodeProto) -> int:
    """The quantized conv's input zero point as an int (absent: 0); Refusal saying why it is not known."""
    name = conv.input[2] if len(conv.input) > 2 else ""
    if not name:
        return 0
    zp = view.const_value(name)
    if zp is None:
        raise Refusal("the input zero point is computed at run time, so the conv's own padding is not known", [conv])
    if zp.size != 1:
        raise Refusal(f"the input zero point has {zp.size} values", [conv])
    return int(zp.reshape(-1)[0])


def check_fill(view: GraphView, conv: NodeProto, pad: NodeProto, value) -> None:
    """Refusal where a Pad filling with `value` differs from the quantized conv's own padding (its zero point)."""
    zp = x_zero_point(view, conv)
    if isinstance(value, float) and not value.is_integer():
        raise Refusal(f"the Pad fills with {value} but the input zero point is {zp}", [pad])
    if int(value) != zp:
        raise Refusal(f"the Pad fills with {int(value)} but the input zero point is {zp}", [pad])


def quantizer_behind(view: GraphView, conv: NodeProto, node: NodeProto | None) -> bool:
    """Whether `node` is the DynamicQuantizeLinear whose output and zero point this ConvInteger reads."""
    return (
        node is not None and node.op_type == QUANTIZER and node.domain in ("", "ai.onnx")
        and conv.op_type == "ConvInteger" and len(node.output) > 2
    )


def check_quantizer(conv: NodeProto, dql: NodeProto, pad: NodeProto, value, assume_finite: bool) -> None:
    """Refusal where a Pad (fill `value`) before `dql` -> `conv` cannot fold."""
    zp_name = conv.input[2] if len(conv.input) > 2 else ""
    if zp_name != dql.output[2]:
        raise Refusal("the conv's input zero point is not the DynamicQuantizeLinear's, so its padding is not what "
                      "the padded zeros quantize to", [dql, conv])
    if value != 0 or (isinstance(value, float) and np.isnan(value)):
        raise Refusal(f"the Pad before DynamicQuantizeLinear fills with {value}, not 0: it would change the range "
                      "the scale and zero point are computed from", [pad])
    if not assume_finite:
        raise Refusal(DQL_LEFT, [pad])


# What quantize_dynamic writes after a ConvInteger (Cast to float, Mul by the scales, Add of the bias), and
# quantize_static's QDQ format after a Conv (QuantizeLinear -> DequantizeLinear).
TAIL_OPS = ("Cast", "Mul", "Add", "QuantizeLinear", "DequantizeLinear")
MAX_TAIL = 4


def dequantizing_tail(view: GraphView, conv: NodeProto, rank: int) -> list[NodeProto]:
    """The elementwise ops after a ConvInteger (or QDQ Conv) that a chomp Slice behind them commutes with.

    A Slice on the spatial axes commutes with Cast, with QuantizeLinear/DequantizeLinear per tensor or per
    channel, and with Mul/Add whose other operand is constant along
    every spatial axis (its known shape has size 1 or no axis there, and adds no axis): each output position
    depends on the same position of the conv output alone, so slicing before or after gives the same values,
    bit for bit. Every tensor on the way must be read by the next op only.
    """
    tail: list[NodeProto] = []
    out = conv.output[0]
    while len(tail) < MAX_TAIL:
        users = view.consumers_of(out)
        if len(users) != 1 or view.is_graph_output(out):
            break
        user = users[0]
        if user.op_type not in TAIL_OPS or user.domain not in ("", "ai.onnx"):
            break
        if user.op_type in ("Mul", "Add") and not _constant_along_space(view, user, out, rank):
            break
        if user.op_type.endswith("Linear") and not _per_channel(view, user, rank):
            break
        tail.append(user)
        out = user.output[0]
    return tail


def _per_channel(view: GraphView, node: NodeProto, rank: int) -> bool:
    """A QuantizeLinear/DequantizeLinear with constant operands that are per tensor or per channel (axis 1)."""
    if any(a.name == "block_size" and a.i for a in node.attribute):
        return False
    operands = [view.const_value(n) for n in node.input[1:3] if n]
    if any(v is None for v in operands):
        return False
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return all(v.size == 1 for v in operands) or axis in (1, -rank - 1)


def _constant_along_space(view: GraphView, node: NodeProto, data: str, rank: int) -> bool:
    if len(node.input) != 2 or node.input[0] == node.input[1] or data not in node.input:
        return False
    other = node.input[1] if node.input[0] == data else node.input[0]
    shape = view.shape(other)
    if shape is None or shape.dims is None or len(shape.dims) > rank + 2:
        return False
    dims = list(shape.dims)
    return all(d == 1 for d in dims[max(0, len(dims) - rank):])  # the dims broadcast against the spatial axes


# ---------------------------------------------------------------- QDQ: Pad -> QuantizeLinear -> DequantizeLinear -> Conv

QDQ_EXACT = ("exact for every input: QuantizeLinear maps the padded zeros to its zero point and DequantizeLinear "
             "maps that back to 0.0, what the conv pads with")


def qdq_behind(view: GraphView, conv: NodeProto, node: NodeProto | None) -> list[NodeProto] | None:
    """[DequantizeLinear, QuantizeLinear] when `node` is a DequantizeLinear fed by a QuantizeLinear before a
    float Conv (quantize_static's QDQ format), conv side first; else None."""
    if node is None or node.op_type != "DequantizeLinear" or conv.op_type != "Conv" or not node.input:
        return None
    q = view.producer_of(node.input[0])
    if q is None or q.op_type != "QuantizeLinear" or q.domain not in ("", "ai.onnx"):
        return None
    return [node, q]


def check_qdq(view: GraphView, dq: NodeProto, q: NodeProto, pad: NodeProto, value, rank: int) -> None:
    """Refusal where a Pad (fill `value`) before `q` -> `dq` -> Conv does not become the conv's zero padding.

    Q(0) = saturate(round(0 / s) + zp) = zp for a constant finite non-zero scale s, and DQ(zp') = (zp' - zp) * s'
    is 0.0 when the two zero points are equal: padded zeros reach the conv as 0.0 for every input.
    """
    if value != 0 or (isinstance(value, float) and np.isnan(value)):
        raise Refusal(f"the Pad before QuantizeLinear -> DequantizeLinear fills with {value}, not 0", [pad])
    zero_points = []
    for node in (q, dq):
        if any(a.name == "block_size" and a.i for a in node.attribute):
            raise Refusal(f"{node.op_type} is blocked", [node])
        scale = view.const_value(node.input[1]) if len(node.input) > 1 else None
        if scale is None:
            raise Refusal(f"{node.op_type}'s scale is computed at run time", [node])
        if not np.all(np.isfinite(scale)) or np.any(scale == 0):
            raise Refusal(f"{node.op_type}'s scale is not finite and non-zero", [node])
        zp_name = node.input[2] if len(node.input) > 2 else ""
        zp = view.const_value(zp_name) if zp_name else np.zeros((), np.int64)
        if zp is None:
            raise Refusal(f"{node.op_type}'s zero point is computed at run time", [node])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if (scale.size > 1 or zp.size > 1) and axis not in (1, 1 - rank):
            raise Refusal(f"{node.op_type} quantizes per axis {axis}, not per channel", [node])
        zero_points.append(zp.astype(np.int64).reshape(-1))
    a, b = zero_points
    if not (a.size == b.size or 1 in (a.size, b.size)) or np.any(a != b):
        raise Refusal("QuantizeLinear's and DequantizeLinear's zero points differ, so padded zeros would not come "
                      "back as 0.0", [q, dq])
