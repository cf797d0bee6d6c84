"""The causal fold on quantized convolutions (issue 16): ConvInteger and QLinearConv pad with their input zero
point, so a Pad folds when its fill equals it; Pad(float, 0) -> DynamicQuantizeLinear -> ConvInteger folds under
--assume-finite (exact unless the input's range is wholly subnormal); a chomp Slice after either folds. Every
fold runs on onnxruntime, original vs rewritten on the same inputs, bit-exact."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from convrewrite.passes import PassOptions, run_passes
from util import assert_same_outputs, assert_same_special, init, make_model, run, special_feeds, vi

W = np.random.default_rng(3).integers(0, 255, size=(3, 3, 3)).astype(np.uint8)


def fold(model, **options):
    return run_passes(model, ["causal"], PassOptions(**options))


def record(result, node="conv"):
    recs = [r for r in result.records if r.node == node]
    assert len(recs) == 1, [r.to_dict() for r in result.records]
    return recs[0]


def qconv(op: str, data: str, zp: int | None, out: str = "y", **attrs):
    """A ConvInteger or QLinearConv reading `data`, its operands, and its output's value_info."""
    inits = [init("w", W)]
    if op == "QLinearConv":
        inits += [init("xs", np.array(0.05, np.float32)), init("xz", np.array(zp, np.uint8)),
                  init("ws", np.array(0.02, np.float32)), init("wz", np.array(128, np.uint8)),
                  init("ys", np.array(0.5, np.float32)), init("yz", np.array(100, np.uint8))]
        node = helper.make_node(op, [data, "xs", "xz", "w", "ws", "wz", "ys", "yz"], [out], name="conv", **attrs)
        return node, inits, vi(out, [1, 3, None], TensorProto.UINT8)
    inputs = [data, "w"] + (["xz"] if zp is not None else [])
    if zp is not None:
        inits.append(init("xz", np.array(zp, np.uint8)))
    return helper.make_node(op, inputs, [out], name="conv", **attrs), inits, vi(out, [1, 3, None], TensorProto.INT32)


def padded(op: str, zp: int | None, fill: int):
    node, inits, out = qconv(op, "p", zp)
    pad = helper.make_node("Pad", ["x", "pads", "pv"], ["p"], name="pad")
    inits += [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("pv", np.array(fill, np.uint8))]
    return make_model([pad, node], [vi("x", [1, 3, 16], TensorProto.UINT8)], [out], inits)


def uint8_feeds(seed=0):
    return {"x": np.random.default_rng(seed).integers(0, 256, size=(1, 3, 16)).astype(np.uint8)}


@pytest.mark.parametrize("op", ["ConvInteger", "QLinearConv"])
@pytest.mark.parametrize("zp", [0, 3, 200])
def test_onnxruntime_pads_quantized_convs_with_the_zero_point(op, zp):
    """Run, not assumed: the conv's own pads hold x_zero_point (a Pad of zp gives the same integers, of 0 not)."""
    own = padded(op, zp, zp)
    own.graph.node.remove(own.graph.node[0])
    own.graph.node[0].input[0] = "x"
    own.graph.node[0].attribute.append(helper.make_attribute("pads", [2, 0]))
    feeds = uint8_feeds()
    mine = run(own, feeds)["y"]
    assert np.array_equal(mine, run(padded(op, zp, zp), feeds)["y"])
    assert np.array_equal(mine, run(padded(op, zp, 0), feeds)["y"]) == (zp == 0)


@pytest.mark.parametrize("op", ["ConvInteger", "QLinearConv"])
@pytest.mark.parametrize("zp", [0, 3, 200])
def test_a_pad_filling_with_the_zero_point_folds_bit_exact(op, zp):
    model = padded(op, zp, zp)
    result = fold(model)
    rec = record(result)
    assert rec.rewritten and rec.after["pads"] == [2, 0] and "zero point" in rec.details["integer"]
    assert [n.op_type for n in result.model.graph.node] == [op]
    for seed in range(3):
        assert_same_outputs(model, result.model, uint8_feeds(seed), atol=0)


@pytest.mark.parametrize("op, zp, fill", [("ConvInteger", 0, 3), ("ConvInteger", 7, 0), ("QLinearConv", 3, 0),
                                          ("QLinearConv", 0, 5)])
def test_a_pad_filling_with_another_value_is_left_with_the_reason(op, zp, fill):
    rec = record(fold(padded(op, zp, fill)))
    assert not rec.rewritten
    assert rec.reason == f"the Pad fills with {fill} but the input zero point is {zp}"


def test_convinteger_without_zero_point_pads_with_0():
    model = padded("ConvInteger", None, 0)
    result = fold(model)
    assert record(result).rewritten
    assert_same_outputs(model, result.model, uint8_feeds(), atol=0)
    assert record(fold(padded("ConvInteger", None, 1))).reason == "the Pad fills with 1 but the input zero point is 0"


def test_a_run_time_zero_point_is_left_alone():
    node, inits, out = qconv("ConvInteger", "p", None)
    node.input.append("xz")
    pad = helper.make_node("Pad", ["x", "pads", "pv"], ["p"], name="pad")
    inits += [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("pv", np.array(0, np.uint8))]
    model = make_model([pad, node], [vi("x", [1, 3, 16], TensorProto.UINT8), vi("xz", [], TensorProto.UINT8)],
                       [out], inits)
    assert "computed at run time" in record(fold(model)).reason


@pytest.mark.parametrize("op", ["ConvInteger", "QLinearConv"])
def test_a_chomp_slice_after_a_quantized_conv_folds_bit_exact(op):
    node, inits, _ = qconv(op, "x", 5, out="c", pads=[2, 2])
    slc = helper.make_node("Slice", ["c", "st", "en", "ax"], ["y"], name="chomp")
    inits += [init("st", np.array([0], np.int64)), init("en", np.array([-2], np.int64)), init("ax", np.array([2], np.int64))]
    elem = TensorProto.UINT8 if op == "QLinearConv" else TensorProto.INT32
    model = make_model([node, slc], [vi("x", [1, 3, None], TensorProto.UINT8)], [vi("y", [1, 3, None], elem)], inits)
    result = fold(model)
    rec = record(result)
    assert rec.rewritten and rec.after["pads"] == [2, 0]
    for length in (5, 16, 17):
        feeds = {"x": np.random.default_rng(length).integers(0, 256, size=(1, 3, length)).astype(np.uint8)}
        assert_same_outputs(model, result.model, feeds, atol=0)


# ------------------------------------------------ Pad(float, 0) -> DynamicQuantizeLinear -> ConvInteger


def dynamic(fill: float = 0.0, wrap: bool = False, own_zero_point: bool = False):
    """The form quantize_dynamic writes for a left-padded conv: DQL -> ConvInteger -> Cast -> Mul(scales)."""
    nodes = [helper.make_node("Pad", ["x", "pads", "pv"], ["p"], name="pad")]
    data = "p"
    if wrap:
        nodes.append(helper.make_node("Identity", ["p"], ["pi"], name="wrap"))
        data = "pi"
    nodes += [
        helper.make_node("DynamicQuantizeLinear", [data], ["q", "qs", "qz"], name="dql"),
        helper.make_node("ConvInteger", ["q", "w", "wz" if own_zero_point else "qz", "wz"], ["c"], name="conv"),
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["qs", "wscale"], ["scale"]),
        helper.make_node("Mul", ["cf", "scale"], ["y"]),
    ]
    inits = [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("pv", np.array(fill, np.float32)),
             init("w", W), init("wz", np.array(128, np.uint8)), init("wscale", np.array(0.01, np.float32))]
    return make_model(nodes, [vi("x", [1, 3, None])], [vi("y", [1, 3, None])], inits)


def float_feeds(seed=0, length=16):
    return {"x": np.random.default_rng(seed).standard_normal((1, 3, length)).astype(np.float32)}


def test_dynamic_quantized_pad_is_left_alone_without_assume_finite():
    rec = record(fold(dynamic()))
    assert not rec.rewritten
    assert "except for NaN inputs" in rec.reason and "wholly subnormal (at most 127 * 2**-149" in rec.reason
    assert rec.reason.endswith("left alone without --assume-finite")


@pytest.mark.parametrize("wrap", [False, True])
def test_dynamic_quantized_pad_folds_under_assume_finite(wrap):
    model = dynamic(wrap=wrap)
    result = fold(model, assume_finite=True)
    rec = record(result)
    assert rec.rewritten and rec.after["pads"] == [2, 0] and rec.details["finite_math"]
    assert "Pad" not in [n.op_type for n in result.model.graph.node]
    for seed, length in ((0, 16), (1, 3), (2, 40)):
        assert_same_outputs(model, result.model, float_feeds(seed, length), atol=0)
    # All-zero, one-signed and +-Inf/-0 inputs: the range includes 0, 0 quantizes to the zero point.
    cases = [np.zeros((1, 3, 9)), np.abs(float_feeds(3)["x"]), -np.abs(float_feeds(4)["x"])]
    for x in cases:
        assert_same_outputs(model, result.model, {"x": x.astype(np.float32)}, atol=0)
    for seed in range(4):
        feeds = special_feeds(model, seed, fraction=0.2)
        x = feeds["x"]
        x[np.isnan(x) | (np.abs(x) < 1e-30)] = -0.0  # NaN and subnormal ranges: the documented exceptions
        assert np.isinf(x).any()
        assert_same_special(model, result.model, feeds, atol=0, rtol=0)


def test_dynamic_quantized_pad_differs_on_a_subnormal_range():
    """Why the fold needs --assume-finite: a wholly subnormal input makes DQL's scale 0 and its zero point 255,
    while the padded zeros quantize to 0 (onnxruntime 1.31). The integers differ; the scale is 0."""
    model = dynamic()
    model.graph.output.append(vi("c", [1, 3, None], TensorProto.INT32))
    result = fold(model, assume_finite=True)
    feeds = {"x": np.full((1, 3, 8), 1e-45, np.float32)}
    a, b = run(model, feeds)["c"], run(result.model, feeds)["c"]
    assert record(result).rewritten and not np.array_equal(a, b)
    assert np.array_equal(run(model, feeds)["y"], run(result.model, feeds)["y"])  # the 0 scale hides it in y


@pytest.mark.parametrize("kwargs, reason", [
    ({"fill": 1.0}, "the Pad before DynamicQuantizeLinear fills with 1.0, not 0"),
    ({"own_zero_point": True}, "the conv's input zero point is not the DynamicQuantizeLinear's"),
])
def test_dynamic_quantized_pad_refusals(kwargs, reason):
    rec = record(fold(dynamic(**kwargs), assume_finite=True))
    assert not rec.rewritten and rec.reason.startswith(reason)


@pytest.mark.parametrize("bias_shape", [[1, 3, 1], [3, 1], None])
def test_a_chomp_after_the_dequantizing_tail_folds_bit_exact(bias_shape):
    """quantize_dynamic's ConvInteger -> Cast -> Mul(scales) -> Add(bias) -> Slice: the Slice commutes with the
    elementwise tail (its operands are constant along time), so it folds into the conv's pads."""
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "qs", "qz"], name="dql"),
        helper.make_node("ConvInteger", ["q", "w", "qz", "wz"], ["c"], name="conv", pads=[2, 2]),
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["qs", "wscale"], ["scale"]),
        helper.make_node("Mul", ["cf", "scale"], ["m"]),
    ]
    inits = [init("w", W), init("wz", np.array(128, np.uint8)), init("wscale", np.array(0.01, np.float32)),
             init("st", np.array([0], np.int64)), init("en", np.array([-2], np.int64)), init("ax", np.array([2], np.int64))]
    last = "m"
    if bias_shape is not None:
        inits.append(init("bias", np.arange(3, dtype=np.float32).reshape(bias_shape)))
        nodes.append(helper.make_node("Add", ["m", "bias"], ["a"]))
        last = "a"
    nodes.append(helper.make_node("Slice", [last, "st", "en", "ax"], ["y"], name="chomp"))
    model = make_model(nodes, [vi("x", [1, 3, None])], [vi("y", [1, 3, None])], inits)
    result = fold(model)
    rec = record(result)
    assert rec.rewritten and rec.after["pads"] == [2, 0], rec.reason
    assert "the Slice commutes with the Cast, Mul" in rec.reason
    assert "Slice" not in [n.op_type for n in result.model.graph.node]
    for seed, length in ((0, 16), (1, 1), (2, 33)):
        assert_same_outputs(model, result.model, float_feeds(seed, length), atol=0)
    for seed in range(3):
        assert_same_special(model, result.model, special_feeds(model, seed, fraction=0.2), atol=0, rtol=0)


def test_a_bias_varying_along_time_keeps_the_chomp():
    nodes = [
        helper.make_node("ConvInteger", ["x", "w"], ["c"], name="conv", pads=[2, 2]),
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["cf", "bias"], ["a"]),
        helper.make_node("Slice", ["a", "st", "en", "ax"], ["y"], name="chomp"),
    ]
    inits = [init("w", W), init("bias", np.arange(18, dtype=np.float32).reshape(1, 1, 18)),
             init("st", np.array([0], np.int64)), init("en", np.array([-2], np.int64)), init("ax", np.array([2], np.int64))]
    model = make_model(nodes, [vi("x", [1, 3, 16], TensorProto.UINT8)], [vi("y", [1, 3, 16])], inits)
    assert not record(fold(model)).rewritten


# ------------------------------------------------ QDQ: Pad -> Q -> DQ -> Conv(DQ(w)) -> Q -> DQ -> Slice


def qdq_model(fill=0.0, zps=(128, 128), per_channel=False, chomp=True, pad=True):
    """quantize_static's QDQ format around a causal conv: its activations through QuantizeLinear ->
    DequantizeLinear, its weight DequantizeLinear of a uint8 initializer."""
    w_zp = np.array([120, 125, 130], np.uint8) if per_channel else np.array(128, np.uint8)
    w_scale = np.array([0.01, 0.02, 0.03], np.float32) if per_channel else np.array(0.02, np.float32)
    nodes = []
    data = "x"
    if pad:
        nodes.append(helper.make_node("Pad", ["x", "pads", "pv"], ["p"], name="pad"))
        data = "p"
    nodes += [
        helper.make_node("QuantizeLinear", [data, "s", "zq"], ["pq"]),
        helper.make_node("DequantizeLinear", ["pq", "s", "zd"], ["pd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("Conv", ["pd", "wd"], ["c"], name="conv", pads=[0, 2] if chomp else [0, 0]),
        helper.make_node("QuantizeLinear", ["c", "s", "zq"], ["cq"]),
        helper.make_node("DequantizeLinear", ["cq", "s", "zq"], ["y" if not chomp else "cd"]),
    ]
    inits = [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("pv", np.array(fill, np.float32)),
             init("s", np.array(0.05, np.float32)), init("zq", np.array(zps[0], np.uint8)),
             init("zd", np.array(zps[1], np.uint8)), init("w", W), init("ws", w_scale), init("wz", w_zp)]
    if chomp:
        nodes.append(helper.make_node("Slice", ["cd", "st", "en", "ax"], ["y"], name="chomp"))
        inits += [init("st", np.array([0], np.int64)), init("en", np.array([-2], np.int64)),
                  init("ax", np.array([2], np.int64))]
    return make_model(nodes, [vi("x", [1, 3, None])], [vi("y", [1, 3, None])], inits)


@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_pad_and_chomp_fold_bit_exact(per_channel):
    model = qdq_model(per_channel=per_channel)
    result = fold(model)
    rec = record(result)
    assert rec.rewritten and rec.after["pads"] == [2, 0], rec.reason
    assert "DequantizeLinear maps that back to 0.0" in rec.details["qdq"] and not rec.details.get("finite_math")
    assert "the Slice commutes with the QuantizeLinear, DequantizeLinear" in rec.reason
    assert not {"Pad", "Slice"} & {n.op_type for n in result.model.graph.node}
    for seed, length in ((0, 16), (1, 2), (2, 37)):
        assert_same_outputs(model, result.model, float_feeds(seed, length), atol=0)
    for seed in range(4):
        assert_same_special(model, result.model, special_feeds(model, seed, fraction=0.2), atol=0, rtol=0)


@pytest.mark.parametrize("kwargs, reason", [
    ({"fill": 0.5}, "the Pad before QuantizeLinear -> DequantizeLinear fills with 0.5, not 0"),
    ({"zps": (128, 100)}, "QuantizeLinear's and DequantizeLinear's zero points differ"),
])
def test_qdq_pad_refusals(kwargs, reason):
    rec = record(fold(qdq_model(chomp=False, **kwargs)))
    assert not rec.rewritten and rec.reason.startswith(reason)
