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
