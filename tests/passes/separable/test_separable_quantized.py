"""The separable fold leaves quantized convolutions alone, saying which requantization a fold would change
(issue 16): a float follower after a ConvInteger, a depthwise ConvInteger/QLinearConv/QDQ Conv requantized before
its pointwise conv. The models stay as they were (run on onnxruntime: bit-exact)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from convrewrite.passes import PassOptions, run_passes
from util import assert_same_outputs, init, make_model, vi

C, L = 4, 12
RNG = np.random.default_rng(21)


def fold(model):
    return run_passes(model, ["separable"], PassOptions(fuse_separable=True, force=True))


def reasons(result):
    return {r.node: r.reason for r in result.records}


def uint8_weights(*shape):
    return RNG.integers(0, 255, size=shape).astype(np.uint8)


def dynamic_pair(follower: str | None):
    """DQL -> depthwise ConvInteger -> Cast -> Mul -> [DQL -> pointwise ConvInteger -> Cast | BatchNorm]."""
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"]),
        helper.make_node("ConvInteger", ["q", "wd", "qz"], ["c"], name="dw", group=C, pads=[1, 1]),
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["cf", "qs"], ["h"]),
    ]
    inits = [init("wd", uint8_weights(C, 1, 3))]
    if follower == "pointwise":
        nodes += [helper.make_node("DynamicQuantizeLinear", ["h"], ["q2", "qs2", "qz2"]),
                  helper.make_node("ConvInteger", ["q2", "wp", "qz2"], ["c2"], name="pw"),
                  helper.make_node("Cast", ["c2"], ["y"], to=TensorProto.FLOAT)]
        inits.append(init("wp", uint8_weights(C, C, 1)))
    else:
        nodes.append(helper.make_node("BatchNormalization", ["h", "g", "b", "m", "v"], ["y"], name="bn"))
        inits += [init(n, RNG.random(C).astype(np.float32) + 0.5) for n in ("g", "b", "m", "v")]
    return make_model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, L])], inits)


def test_a_float_batchnorm_after_a_convinteger_is_not_folded():
    model = dynamic_pair("bn")
    result = fold(model)
    assert reasons(result)["dw"].startswith("quantized convolution (ConvInteger): its int32 output is dequantized")
    assert not result.changed
    assert_same_outputs(model, result.model, atol=0)


def test_a_requantized_convinteger_pair_is_not_fused():
    model = dynamic_pair("pointwise")
    result = fold(model)
    assert reasons(result)["dw"] == (
        "quantized convolution (ConvInteger): the depthwise output is requantized (by DynamicQuantizeLinear) before "
        "the pointwise conv, so fusing the pair changes the requantization rounding (not exact)")
    assert not result.changed
    assert_same_outputs(model, result.model, atol=0)


def qlinear(name, data, out, w, **attrs):
    return helper.make_node("QLinearConv", [data, "s", "z", w, "s", "z", "s", "z"], [out], name=name, **attrs)


@pytest.mark.parametrize("depthwise", [True, False])
def test_qlinearconv_pair(depthwise):
    nodes = [qlinear("dw", "x", "h", "wd", group=C if depthwise else 1, pads=[1, 1]), qlinear("pw", "h", "y", "wp")]
    inits = [init("s", np.array(0.05, np.float32)), init("z", np.array(128, np.uint8)),
             init("wd", uint8_weights(C, 1 if depthwise else C, 3)), init("wp", uint8_weights(C, C, 1))]
    model = make_model(nodes, [vi("x", [1, C, L], TensorProto.UINT8)], [vi("y", [1, C, L], TensorProto.UINT8)], inits)
    result = fold(model)
    reason = reasons(result)["dw"]
    if depthwise:
        assert "the depthwise output is requantized (by its own y_scale and y_zero_point)" in reason
    else:
        assert reason.startswith("quantized convolution (QLinearConv): it requantizes its output")
    assert not result.changed
    feeds = {"x": RNG.integers(0, 256, size=(1, C, L)).astype(np.uint8)}
    assert_same_outputs(model, result.model, feeds, atol=0)


@pytest.mark.parametrize("depthwise", [True, False])
def test_qdq_conv_pair(depthwise):
    """quantize_static's QDQ format: DequantizeLinear(int weight) -> Conv, Q -> DQ between the convs."""
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wdq", "s", "z"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd"], ["h"], name="dw", group=C if depthwise else 1, pads=[1, 1]),
        helper.make_node("QuantizeLinear", ["h", "s", "z"], ["hq"]),
        helper.make_node("DequantizeLinear", ["hq", "s", "z"], ["hd"]),
        helper.make_node("DequantizeLinear", ["wpq", "s", "z"], ["wp"]),
        helper.make_node("Conv", ["hd", "wp"], ["y"], name="pw"),
    ]
    inits = [init("s", np.array(0.05, np.float32)), init("z", np.array(128, np.uint8)),
             init("wdq", uint8_weights(C, 1 if depthwise else C, 3)), init("wpq", uint8_weights(C, C, 1))]
    model = make_model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, L])], inits)
    result = fold(model)
    reason = reasons(result)["dw"]
    if depthwise:
        assert "the depthwise output is requantized (by QuantizeLinear) before the pointwise conv" in reason
    else:
        assert reason.startswith("quantized convolution (QDQ Conv): its weight is DequantizeLinear")
    assert not result.changed
    assert_same_outputs(model, result.model, atol=0)
