"""Why the separable fold leaves quantized convolutions alone, in the words of what follows them.

Folding a follower (BatchNorm, scale Mul, bias Add) into a conv changes its
weights and bias; fusing a depthwise conv into its pointwise conv multiplies
the two kernels. Neither is exact for a quantized conv: a ConvInteger's
int32 output is dequantized (Cast, Mul by the input and weight scales)
before any float follower, so folding the follower would round new integer
weights; a QLinearConv (or a QDQ-wrapped Conv) requantizes its output, so
the pointwise conv reads rounded integers, and a fused kernel would skip
that rounding. Nothing here is provably exact, so every such conv is left
alone with the reason naming the requantization it would change.
"""

from __future__ import annotations

from onnx import NodeProto

from ...graph import GraphView

QUANTIZED = ("ConvInteger", "QLinearConv")
MAX_HOPS = 6  # nodes followed from a conv to the next conv (Cast, Mul, Add, Relu, DynamicQuantizeLinear, ...)


def dequantized_weight(view: GraphView, node: NodeProto) -> bool:
    """Whether a Conv's weight is a DequantizeLinear output (QDQ format)."""
    producer = view.producer_of(node.input[1]) if len(node.input) > 1 else None
    return producer is not None and producer.op_type == "DequantizeLinear"


def _next_conv(view: GraphView, node: NodeProto) -> tuple[NodeProto | None, list[str]]:
    """The conv reached from `node`'s output through single readers, and the op types passed on the way."""
    passed: list[str] = []
    out = node.output[0]
    for _ in range(MAX_HOPS):
        users = view.consumers_of(out)
        if len(users) != 1:
            return None, passed
        user = users[0]
        if user.op_type in QUANTIZED + ("Conv",):
            return user, passed
        passed.append(user.op_type)
        if not user.output:
            return None, passed
        out = user.output[0]
    return None, passed


def quantized_reason(view: GraphView, node: NodeProto, depthwise: bool) -> str:
    """Why the separable fold cannot touch this quantized conv (ConvInteger, QLinearConv, QDQ Conv)."""
    kind = node.op_type if node.op_type in QUANTIZED else "QDQ Conv"
    nxt, passed = _next_conv(view, node)
    requantizers = [op for op in passed if op in ("DynamicQuantizeLinear", "QuantizeLinear")]
    if depthwise and nxt is not None and (node.op_type == "QLinearConv" or requantizers):
        how = (f"by {requantizers[0]}" if requantizers else "by its own y_scale and y_zero_point")
        return (f"quantized convolution ({kind}): the depthwise output is requantized ({how}) before the pointwise "
                "conv, so fusing the pair changes the requantization rounding (not exact)")
    if node.op_type == "ConvInteger":
        return ("quantized convolution (ConvInteger): its int32 output is dequantized (Cast, Mul by the scales) "
                "before any float BatchNormalization/Mul/Add, so folding one would round new integer weights "
                "(not exact)")
    if node.op_type == "QLinearConv":
        return ("quantized convolution (QLinearConv): it requantizes its output (y_scale, y_zero_point), so a "
                "follower acts on rounded integers and cannot move into the integer weights (not exact)")
    return ("quantized convolution (QDQ Conv): its weight is DequantizeLinear of an integer tensor, so folding a "
            "follower would requantize the weight (not exact)")
