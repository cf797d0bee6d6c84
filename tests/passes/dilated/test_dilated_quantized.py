"""The dilated fold on quantized convolutions (issue 16): a ConvInteger or QLinearConv kernel whose taps between
every d-th hold the weight zero point is the compact kernel with dilation d, and expand_dilations does the inverse;
integer arithmetic is exact, so both are done without --assume-finite and compared bit-exact on onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from convrewrite.passes import PassOptions, run_passes
from util import assert_same_outputs, init, make_model, vi

C, K, D = 4, 7, 3  # a zero-inserted kernel of length 7 holding taps 0, 3, 6


def zero_inserted(w_dtype, zp: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(5)
    info = np.iinfo(w_dtype)
    w = np.empty((C, C, K), w_dtype)
    w[...] = zp.reshape(-1, 1, 1)
    w[:, :, ::D] = rng.integers(info.min, info.max + 1, size=(C, C, K // D + 1)).astype(w_dtype)
    return w


def model(op: str, w_dtype=np.uint8, zp=(128,), kernel=None, **attrs):
    zp = np.array(zp, w_dtype)
    w = zero_inserted(w_dtype, zp) if kernel is None else kernel
    zp_init = zp if zp.size > 1 else zp.reshape(())
    attrs.setdefault("pads", [3, 3])
    if op == "QLinearConv":
        scales = np.full(zp.size, 0.02, np.float32) if zp.size > 1 else np.array(0.02, np.float32)
        inits = [init("w", w), init("xs", np.array(0.05, np.float32)), init("xz", np.array(7, np.uint8)),
                 init("ws", scales), init("wz", zp_init), init("ys", np.array(0.5, np.float32)),
                 init("yz", np.array(100, np.uint8)), init("b", np.arange(C, dtype=np.int32) * 50)]
        node = helper.make_node(op, ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"], name="conv", **attrs)
        out = vi("y", [1, C, None], TensorProto.UINT8)
    else:
        inits = [init("w", w), init("xz", np.array(7, np.uint8)), init("wz", zp_init)]
        node = helper.make_node(op, ["x", "w", "xz", "wz"], ["y"], name="conv", **attrs)
        out = vi("y", [1, C, None], TensorProto.INT32)
    return make_model([node], [vi("x", [1, C, None], TensorProto.UINT8)], [out], inits)


def feeds(length, seed=0):
    return {"x": np.random.default_rng(seed).integers(0, 256, size=(1, C, length)).astype(np.uint8)}


CASES = [("ConvInteger", np.uint8, (128,)), ("QLinearConv", np.uint8, (128,)), ("QLinearConv", np.int8, (0,)),
         ("QLinearConv", np.int8, (0,) * C)]


@pytest.mark.parametrize("op, dtype, zp", CASES)
def test_zero_point_inserted_kernel_compacts_bit_exact(op, dtype, zp):
    m = model(op, dtype, zp)
    result = run_passes(m, ["dilated"], PassOptions())  # no assume_finite: integer taps are exact
    (rec,) = result.records
    assert rec.rewritten, rec.reason
    assert rec.after["dilations"] == [D] and rec.after["kernel_shape"] == [K // D + 1]
    assert "integer" in rec.details["kernel"] and not rec.details["finite_math"]
    for length in (7, 16, 31):
        assert_same_outputs(m, result.model, feeds(length, length), atol=0)
    back = run_passes(result.model, ["dilated"], PassOptions(expand_dilations=True))
    assert back.records[0].after["kernel_shape"] == [K] and back.records[0].after["dilations"] == [1]
    assert_same_outputs(m, back.model, feeds(20), atol=0)


def test_a_kernel_padded_with_another_value_than_the_zero_point_is_not_compacted():
    zp = np.array([120, 121, 122, 123], np.uint8)
    m = model("ConvInteger", np.uint8, (128,), kernel=zero_inserted(np.uint8, zp))
    m.graph.initializer[2].CopyFrom(init("wz", np.array(128, np.uint8)))  # the kernel's padding is not the zp
    assert not run_passes(m, ["dilated"], PassOptions()).records[0].rewritten


def test_a_nonzero_tap_between_blocks_the_compaction():
    w = zero_inserted(np.uint8, np.array([128], np.uint8))
    w[0, 0, 1] = 3
    m = model("QLinearConv", np.uint8, (128,), kernel=w)
    assert not run_passes(m, ["dilated"], PassOptions()).records[0].rewritten


# ------------------------------------------------ QDQ: DequantizeLinear(integer initializer) -> Conv


def qdq_model(per_channel: bool, qdq_input: bool = True, shared: bool = False):
    zp = np.array([120, 124, 128, 132], np.uint8) if per_channel else np.array(128, np.uint8)
    scale = np.array([0.01, 0.02, 0.03, 0.04], np.float32) if per_channel else np.array(0.02, np.float32)
    w = zero_inserted(np.uint8, zp.reshape(-1))
    nodes, data = [], "x"
    if qdq_input:
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        data = "xd"
    nodes += [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
              helper.make_node("Conv", [data, "wd"], ["y"], name="conv", pads=[3, 3])]
    outputs = [vi("y", [1, C, None])]
    if shared:
        nodes.append(helper.make_node("Conv", [data, "wd"], ["y2"], name="other", pads=[3, 3]))
        outputs.append(vi("y2", [1, C, None]))
    inits = [init("s", np.array(0.05, np.float32)), init("z", np.array(128, np.uint8)), init("w", w),
             init("ws", scale), init("wz", zp)]
    return make_model(nodes, [vi("x", [1, C, None])], outputs, inits)


def float_feeds(length, seed=0):
    return {"x": np.random.default_rng(seed).standard_normal((1, C, length)).astype(np.float32)}


@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_kernel_compacts_and_expands(per_channel):
    """The integer tensor behind DequantizeLinear is compacted in place (taps holding the zero point are 0.0);
    the conv reads a DequantizeLinear output, never Inf/NaN, so no --assume-finite is needed."""
    from util import assert_same_special, special_feeds

    m = qdq_model(per_channel)
    result = run_passes(m, ["dilated"], PassOptions())
    (rec,) = [r for r in result.records if r.node == "conv"]
    assert rec.rewritten, rec.reason
    assert rec.after["dilations"] == [D] and rec.after["kernel_shape"] == [K // D + 1]
    assert "DequantizeLinear output" in rec.details["kernel"]["qdq"] and not rec.details["finite_math"]
    inits = {t.name: t for t in result.model.graph.initializer}
    assert list(inits["w"].dims) == [C, C, K // D + 1] and inits["w"].data_type == 2  # still uint8, in place
    for length in (7, 16, 31):
        assert_same_outputs(m, result.model, float_feeds(length, length), atol=1e-6)
    for seed in range(3):
        assert_same_special(m, result.model, special_feeds(m, seed, {"unk__0": 20}, fraction=0.2), atol=1e-6)
    back = run_passes(result.model, ["dilated"], PassOptions(expand_dilations=True))
    assert back.records[0].after["kernel_shape"] == [K] and back.records[0].after["dilations"] == [1]
    assert np.array_equal(np.frombuffer(
        {t.name: t for t in back.model.graph.initializer}["w"].raw_data, np.uint8).reshape(C, C, K),
        zero_inserted(np.uint8, np.frombuffer(inits["wz"].raw_data, np.uint8) if per_channel else
                      np.array([128], np.uint8)))
    assert_same_outputs(m, back.model, float_feeds(20), atol=1e-6)


def test_qdq_kernel_on_a_float_input_is_finite_math():
    m = qdq_model(False, qdq_input=False)
    (rec,) = run_passes(m, ["dilated"], PassOptions()).records
    assert not rec.rewritten and "left alone without --assume-finite" in rec.reason
    result = run_passes(m, ["dilated"], PassOptions(assume_finite=True))
    assert result.records[0].rewritten and result.records[0].details["finite_math"]
    assert_same_outputs(m, result.model, float_feeds(16), atol=1e-6)


def test_a_shared_qdq_weight_is_left_with_the_reason():
    m = qdq_model(False, shared=True)
    recs = run_passes(m, ["dilated"], PassOptions()).records
    assert all(not r.rewritten for r in recs)
    assert {r.reason for r in recs} == {"QDQ weight: the dequantized weight is read by other nodes too"}
