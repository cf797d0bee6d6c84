"""Every failure the fuzz tests (test_fuzz.py) found, minimized into a named test with an explicit model.

Each test checks the whole fuzz property (fuzz_models.check_rewrite: valid
model, same graph inputs/outputs, same outputs on onnxruntime CPU within
float32 atol 1e-5 rtol 1e-4, one record per conv, idempotent) and what the
fix is about.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fuzz_models import Case, check_rewrite
from util import init, make_model, op_types, run, vi

ATOL, RTOL = 1e-5, 1e-4


def case_of(model: onnx.ModelProto, seed: int = 0) -> Case:
    """Inputs uniform in [-1, 1] (symbolic dims 1), the original's outputs, float32 or float16 tolerance."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in model.graph.input:
        shape = [d.dim_value if d.HasField("dim_value") else 1 for d in v.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type)
        feeds[v.name] = rng.uniform(-1, 1, size=shape).astype(dtype)
    half = any(f.dtype == np.float16 for f in feeds.values())
    return Case(model, feeds, run(model, feeds), 1e-3 if half else ATOL, 1e-2 if half else RTOL)


def record(result, pass_name: str, node: str):
    [r] = [r for r in result.records if r.pass_name == pass_name and r.node == node]
    return r


# ------------------------------------------------ ConvTranspose SAME + output_padding


def convtranspose_same_output_padding(kernel: list[float]) -> onnx.ModelProto:
    """ConvTranspose SAME_UPPER, stride 2, output_padding 1 on a length-1 input.

    onnxruntime (and the spec) give length L*s = 2; onnx shape inference says
    L*s + output_padding = 3, and that is what exporters store as the output shape.
    """
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", auto_pad="SAME_UPPER",
                            strides=[2], output_padding=[1])
    w = np.asarray(kernel, dtype=np.float32).reshape(1, 1, -1)
    return make_model([node], [vi("x", [1, 1, 1])], [vi("y", [1, 1, 3])], [init("w", w)])


@pytest.mark.parametrize("passes", [["causal"], ["all"]])
def test_convtranspose_same_with_output_padding_keeps_its_auto_pad(passes):
    """Found by test_fuzz_causal: explicit pads made onnx infer 2 against the declared 3 (checker failed)."""
    model = convtranspose_same_output_padding([0.5, -1.0])
    result = check_rewrite(case_of(model), passes)
    r = record(result, "causal", "up")
    assert r.status == "skipped" and "output_padding 1 on spatial axis 0" in r.reason
    assert helper.get_attribute_value(result.model.graph.node[0].attribute[0]) == b"SAME_UPPER"


def test_zero_inserted_convtranspose_same_with_output_padding_is_not_compacted():
    """Found by test_fuzz_dilated: the compacted kernel's explicit pads broke the declared output shape."""
    model = convtranspose_same_output_padding([0.5, 0.0, -1.0])
    result = check_rewrite(case_of(model), ["dilated"], assume_finite=True)
    r = record(result, "dilated", "up")
    assert r.status == "skipped" and "output_padding" in r.reason


# ------------------------------------------------ separable: a Squeeze between the convs


def test_separable_pair_across_a_squeeze_of_the_unit_axis_is_not_merged():
    """Found by test_fuzz_pipelines: a 2-D depthwise conv, Squeeze(3), a 1-D pointwise conv.

    The Squeeze drops a trailing axis, so the axes left looked like "the same
    layout"; the pass removed it and fed a 4-D tensor to the 1-D pointwise conv.
    """
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes"], ["x4"]),
        helper.make_node("Conv", ["x4", "dw"], ["d"], name="depthwise", group=2),
        helper.make_node("Squeeze", ["d", "axes"], ["d3"]),
        helper.make_node("Conv", ["d3", "pw"], ["y"], name="pointwise"),
    ]
    inits = [init("axes", np.array([3], np.int64)), init("dw", np.array([0.5, -0.75], np.float32).reshape(2, 1, 1, 1)),
             init("pw", np.array([0.25, 1.0], np.float32).reshape(1, 2, 1))]
    model = make_model(nodes, [vi("x", [1, 2, 5])], [vi("y", [1, 1, 5])], inits)
    for fuse in (False, True):
        result = check_rewrite(case_of(model), ["separable"], fuse_separable=fuse)
        assert op_types(result.model) == ["Unsqueeze", "Conv", "Squeeze", "Conv"]
        assert "another layout" in record(result, "separable", "depthwise").reason


# ------------------------------------------------ fold all: BatchNorm between a conv and its Slice


@pytest.mark.parametrize("transposed", [False, True])
def test_fold_all_folds_a_slice_behind_a_batchnorm_in_one_run(transposed):
    """Found by test_fuzz_pipelines: `all` left the Slice that separable's BatchNorm fold put next to the conv,
    so a second run changed the model. The folds now repeat until a round rewrites nothing."""
    op = "ConvTranspose" if transposed else "Conv"
    attrs = dict(auto_pad="VALID", strides=[2]) if transposed else dict(pads=[2, 2])  # a TCN conv and its chomp
    nodes = [
        helper.make_node(op, ["x", "w"], ["c"], name="conv", **attrs),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Slice", ["n", "starts", "ends", "axes"], ["y"], name="chomp"),
    ]
    inits = [init("w", np.array([[[0.5, -0.25, 0.75]]], np.float32)),
             init("s", np.array([0.8], np.float32)), init("b", np.array([-0.4], np.float32)),
             init("m", np.array([-0.5], np.float32)), init("v", np.array([1.7], np.float32)),
             init("starts", np.array([0], np.int64)), init("ends", np.array([-1 if transposed else -2], np.int64)),
             init("axes", np.array([2], np.int64))]
    out_len = 2 * 4 + 3 - 1 if transposed else 9 + 4 - 2 - 2
    model = make_model(nodes, [vi("x", [1, 1, 5 if transposed else 9])], [vi("y", [1, 1, out_len])], inits)
    result = check_rewrite(case_of(model), ["all"])
    assert op_types(result.model) == [op]
    causal = record(result, "causal", "conv")
    assert causal.rewritten and "folded Slice chomp" in causal.reason
    assert record(result, "separable", "conv").rewritten
    assert sum(r.pass_name == "causal" for r in result.records) == 1  # the repeat merged into one record


# ------------------------------------------------ ConvTranspose output_shape: where the padding goes


@pytest.mark.parametrize("auto_pad, pads", [("NOTSET", [1, 0]), ("SAME_LOWER", [1, 0]), ("SAME_UPPER", [0, 1])])
def test_zero_inserted_convtranspose_with_output_shape_keeps_onnxruntimes_pads(auto_pad, pads):
    """Found by test_fuzz_pipelines: compacting the kernel resolved output_shape [2] (total padding 1) to pads
    [0, 1] for NOTSET. The spec and onnxruntime put the bigger half at the front unless auto_pad is SAME_UPPER."""
    attrs = {"output_shape": [2]} if auto_pad == "NOTSET" else {"output_shape": [2], "auto_pad": auto_pad}
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", **attrs)
    w = np.array([[[0.25, 0.0, -0.5]]], np.float32)  # taps every 2: dilation 2, kernel 2
    model = make_model([node], [vi("x", [1, 1, 1])], [vi("y", [1, 1, 2])], [init("w", w)])
    result = check_rewrite(case_of(model), ["dilated"], assume_finite=True)
    r = record(result, "dilated", "up")
    assert r.rewritten and r.after["dilations"] == [2] and r.after["pads"] == pads


# ------------------------------------------------ ConvTranspose SAME + output_padding: left alone by every pass


def same_output_padding_chain(expand_case: bool = False) -> onnx.ModelProto:
    """float16, opset 18: Unsqueeze -> Pad -> ConvTranspose(SAME_UPPER, output_padding) -> Slice -> Squeeze -> BN.

    onnx infers the ConvTranspose output as L*s + output_padding, onnxruntime computes L*s and plans its
    buffers with onnx's length. The original runs; after to-1d lowered it (exactly), onnxruntime failed with
    "Shape mismatch attempting to re-use buffer" (and ran it correctly with memory reuse off).
    """
    f16 = np.float16
    nodes = [
        helper.make_node("Unsqueeze", ["x", "ax"], ["x4"]),
        helper.make_node("Pad", ["x4", "pads"], ["xp"], mode="constant"),
        helper.make_node("ConvTranspose", ["xp", "w"], ["c"], name="up", auto_pad="SAME_UPPER",
                         dilations=[1, 2], output_padding=[0, 1], strides=[1, 3]),
        helper.make_node("Slice", ["c", "starts", "ends", "axes", "steps"], ["s"]),
        helper.make_node("Squeeze", ["s", "ax"], ["q"]),
        helper.make_node("BatchNormalization", ["q", "S", "B", "M", "V"], ["y"], name="bn"),
    ]
    w = [0.25, 0.0, -0.5] if expand_case else [0.1582, -0.2659, -0.5303]
    inits = [init("ax", np.array([2], np.int64)), init("pads", np.array([0, 0, 0, 0, 0, 0, 0, 2], np.int64)),
             init("w", np.array(w, f16).reshape(1, 1, 1, 3)),
             init("starts", np.array([-12], np.int64)), init("ends", np.array([9], np.int64)),
             init("axes", np.array([-1], np.int64)), init("steps", np.array([2], np.int64))]
    inits += [init(k, np.array([v], f16)) for k, v in zip("SBMV", [0.541, -0.4834, 0.3132, 1.869])]
    return make_model(nodes, [vi("x", ["N", 1, 2], TensorProto.FLOAT16)], [vi("y", [None] * 3, TensorProto.FLOAT16)],
                      inits, opset=18)


@pytest.mark.parametrize("passes, options", [
    (["to-1d"], {}), (["to-1d", "all"], {}), (["dilated"], {"expand_dilations": True}), (["dilated"], {}),
    (["separable"], {}), (["all"], {"expand_dilations": True}),
])
def test_convtranspose_same_with_output_padding_is_left_alone(passes, options):
    """Found by test_fuzz_pipelines (to-1d + all) and a focused run of test_fuzz_dilated (expand_dilations):
    rewrites next to such a conv made onnxruntime fail at run time. Every pass now leaves the conv alone."""
    model = same_output_padding_chain(expand_case="dilated" in passes)
    result = check_rewrite(case_of(model), passes, **options)
    for r in result.records:
        if r.node == "up":
            assert r.status == "skipped" and "output_padding" in r.reason, (r.pass_name, r.reason)
    assert "BatchNormalization" in op_types(result.model)  # not folded into the ambiguous conv
