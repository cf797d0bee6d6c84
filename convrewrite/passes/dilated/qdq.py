"""QDQ-wrapped Conv in the dilated fold: the kernel is `DequantizeLinear(integer initializer)`.

quantize_static (QDQ format) stores a Conv's weight as an int8/uint8 tensor q
with a scale s and zero point z (per tensor, or per output channel: axis 0)
behind a DequantizeLinear, `w = (q - z) * s`. A tap with q == z is exactly
0.0 after dequantization, so a kernel whose taps between every d-th hold z
is the zero-inserted kernel of a dilated one: the integer tensor is
compacted (or expanded with z) in place; s and z are per tensor or per
output channel, so they stay as they are. The conv itself is float, so the
change is what it is for a float kernel (a removed 0.0 tap no longer turns
an Inf/NaN input into NaN) unless the conv's input is itself a
DequantizeLinear output with a finite constant scale, which is finite for
every input: then Inf and NaN never reach the conv and the rewrite needs no
--assume-finite (the float sums may still round differently, as for every
float kernel change; onnxruntime's QDQ fusion runs it as an integer conv).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto

from ...graph import GraphView, attr
from ...refusal import Refusal

QDQ_WEIGHT = "QDQ weight: "  # how the refusals about a QDQ Conv's integer weight begin


def weight_dequantizer(view: GraphView, node: NodeProto) -> NodeProto | None:
    """The DequantizeLinear writing a Conv/ConvTranspose's weight, or None."""
    if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
        return None
    producer = view.producer_of(node.input[1])
    if producer is None or producer.op_type != "DequantizeLinear" or producer.domain not in ("", "ai.onnx"):
        return None
    return producer


def check_dequantized(view: GraphView, node: NodeProto, dq: NodeProto, w: np.ndarray) -> None:
    """Refusal where the integer kernel behind `dq` cannot be compacted or expanded in place."""
    if attr(dq, "block_size", 0):
        raise Refusal(QDQ_WEIGHT + "the weight's DequantizeLinear is blocked", [node, dq])
    if [id(u) for u in view.consumers_of(dq.output[0])] != [id(node)] or view.is_graph_output(dq.output[0]):
        raise Refusal(QDQ_WEIGHT + "the dequantized weight is read by other nodes too", [node, dq])
    if len(view.consumers_of(dq.input[0])) != 1 or view.initializer(dq.input[0]) is None:
        raise Refusal(QDQ_WEIGHT + "the integer weight is not an initializer read by its DequantizeLinear alone",
                      [node, dq])
    axis = attr(dq, "axis", 1)
    axis = axis + w.ndim if axis < 0 else axis
    for name in dq.input[1:3]:
        value = view.const_value(name) if name else None
        if name and value is None:
            raise Refusal(QDQ_WEIGHT + "the weight's scale or zero point is computed at run time", [node, dq])
        if value is not None and value.size > 1 and axis >= 2:
            raise Refusal(QDQ_WEIGHT + f"the weight is quantized per spatial axis {axis - 2}", [node, dq])


def dequantized_zero_point(view: GraphView, dq: NodeProto, w: np.ndarray) -> np.ndarray | None:
    """The integer tap that dequantizes to 0.0, broadcastable to `w` (per tensor or along DQ's axis)."""
    name = dq.input[2] if len(dq.input) > 2 else ""
    if not name:
        return np.zeros((1,) * w.ndim, dtype=w.dtype)
    zp = view.const_value(name)
    if zp is None:
        return None
    if zp.size == 1:
        return zp.astype(w.dtype).reshape((1,) * w.ndim)
    axis = attr(dq, "axis", 1)
    axis = axis + w.ndim if axis < 0 else axis
    shape = [1] * w.ndim
    shape[axis] = -1
    return zp.astype(w.dtype).reshape(shape)


def finite_input(view: GraphView, node: NodeProto) -> bool:
    """Whether the conv's data input is a DequantizeLinear output with a finite constant scale (never Inf/NaN:
    |q - z| < 2**33 for every integer type DequantizeLinear reads, times the scale, stays finite)."""
    producer = view.producer_of(node.input[0])
    if producer is None or producer.op_type != "DequantizeLinear" or len(producer.input) < 2:
        return False
    scale = view.const_value(producer.input[1])
    return scale is not None and bool(np.all(np.isfinite(scale.astype(np.float64) * 2.0 ** 33)))


FINITE_INPUT = ("exact for every input as a float kernel change: the conv reads a DequantizeLinear output, "
                "which is never Inf or NaN")
