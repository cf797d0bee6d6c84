"""`to-1d` folds the bias Add that tf_keras writes before the 1-D layer's Squeeze.

tf_keras DepthwiseConv1D with tf2onnx's optimizer off (models/k2_dwconv1d_noopt,
exporter-patterns.md sections 1 and 5) calls bias_add on the channels-last 4D
tensor: `Conv -> Transpose(0,2,3,1) -> Add(bias [C]) -> Squeeze(1)`. After the
lowering the Add sits on the conv's output behind a Transpose; it folds into the
conv's bias when its constant broadcasts over the channel axis alone (the last
axis there), and stays, with the reason on the conv's record, otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_rank import data_ops, load_case, rewrite_checked
from util import MODELS, init, make_model, vi

C, L = 8, 40


def keras_dw1d_noopt(add_shape, *, op="Conv", conv_bias=False, const_first=False, seed=0):
    """`Unsqueeze(1) -> Transpose(0,3,1,2) -> Conv(1x3) -> Transpose(0,2,3,1) -> Add(const) -> Squeeze(1)`.

    Conv: depthwise (group C, C out); ConvTranspose: group 1, 6 out. Returns (model, Add constant, old bias).
    """
    rng = np.random.default_rng(seed)
    out_c = C if op == "Conv" else 6
    if op == "Conv":
        w = rng.standard_normal((C, 1, 1, 3)).astype(np.float32)
        attrs = {"group": C}
    else:
        w = rng.standard_normal((C, out_c, 1, 3)).astype(np.float32)
        attrs = {}
    add_shape = [out_c if d == "C" else d for d in add_shape]
    const = rng.standard_normal(add_shape).astype(np.float32)
    bias = rng.standard_normal(out_c).astype(np.float32) if conv_bias else None
    inits = [init("axes1", np.array([1], np.int64)), init("w", w), init("bias_add", const)]
    conv_inputs = ["t0", "w"]
    if conv_bias:
        inits.append(init("b", bias))
        conv_inputs.append("b")
    add_inputs = ["bias_add", "t1"] if const_first else ["t1", "bias_add"]
    nodes = [
        helper.make_node("Unsqueeze", ["x", "axes1"], ["u"], name="ExpandDims"),
        helper.make_node("Transpose", ["u"], ["t0"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node(op, conv_inputs, ["c"], name="conv", kernel_shape=[1, 3], pads=[0, 1, 0, 1], **attrs),
        helper.make_node("Transpose", ["c"], ["t1"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Add", add_inputs, ["a"], name="BiasAdd"),
        helper.make_node("Squeeze", ["a", "axes1"], ["y"], name="Squeeze"),
    ]
    model = make_model(nodes, [vi("x", [1, L, C])], [vi("y", [1, L, out_c])], inits)
    return model, const, bias


def conv_bias(model):
    conv = next(n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose"))
    inits = {t.name: t for t in model.graph.initializer}
    assert len(conv.input) == 3 and conv.input[2] in inits, list(conv.input)
    weight = inits[conv.input[1]]
    tensor = inits[conv.input[2]]
    assert tensor.data_type == weight.data_type  # the conv's dtype
    return numpy_helper.to_array(tensor)


def only_record(result):
    (record,) = result.records
    assert record.rewritten and len(record.after["kernel_shape"]) == 1
    return record


def test_k2_dwconv1d_noopt_bias_add_folds_into_the_conv():
    model, feeds = load_case(MODELS / "k2_dwconv1d_noopt.onnx")
    add = next(n for n in model.graph.node if n.op_type == "Add")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    result = rewrite_checked(model, ["to-1d"], "h", feeds)
    assert all(e == 0.0 for e in result.errors.values()), result.errors  # bit-exact on onnxruntime CPU
    assert data_ops(result.model) == ["Transpose", "Conv", "Transpose", "Identity", "Identity"]
    np.testing.assert_array_equal(conv_bias(result.model), inits[add.input[1]])  # no bias before: the Add's [C]
    assert result.counters["bias_adds_folded"] == 1
    assert only_record(result).details["bias_add"] == "folded Add sequential/depthwise_conv1d/BiasAdd into the bias"


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("has_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("add_shape, const_first", [
    (["C"], False), ([1, 1, "C"], False), ([1, 1, 1, "C"], False), ([1], False), (["C"], True),
], ids=["C", "11C", "111C", "1", "const-first"])
def test_per_channel_add_folds(op, has_bias, add_shape, const_first):
    model, const, bias = keras_dw1d_noopt(add_shape, op=op, conv_bias=has_bias, const_first=const_first)
    result = rewrite_checked(model, ["to-1d"])
    if not has_bias:
        assert all(e == 0.0 for e in result.errors.values()), result.errors
    assert data_ops(result.model) == ["Transpose", op, "Transpose"]
    channels = 8 if op == "Conv" else 6
    expected = np.broadcast_to(const.reshape(-1), (channels,)) + (bias if has_bias else 0)
    np.testing.assert_array_equal(conv_bias(result.model), expected.astype(np.float32))
    assert result.counters["bias_adds_folded"] == 1
    assert only_record(result).details["bias_add"] == "folded Add BiasAdd into the bias"
    assert not {"bias_add", "b"} & {t.name for t in result.model.graph.initializer}  # old constants dropped


# The shapes in the reasons are the lowered constants' (the unit axis dropped with the region's).
@pytest.mark.parametrize("add_shape, why", [
    ([1, L, 1], "its constant of shape [40, 1] is not per-channel (the 8 channels are on axis 2 there)"),
    ([L, "C"], "its constant of shape [40, 8] is not per-channel (the 8 channels are on axis 2 there)"),
], ids=["over-time", "per-position"])
def test_add_that_is_not_per_channel_is_kept_with_the_reason(add_shape, why):
    model, const, _ = keras_dw1d_noopt(add_shape, conv_bias=True)
    result = rewrite_checked(model, ["to-1d"])
    ops = data_ops(result.model)
    assert "Add" in ops and "Unsqueeze" not in ops and "Squeeze" not in ops, ops  # still lowered
    assert result.counters.get("bias_adds_folded", 0) == 0
    assert only_record(result).details["bias_add"] == f"Add BiasAdd kept: {why}"
    kept = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    assert "b" in kept  # the conv's own bias untouched


@pytest.mark.parametrize("reader, why", [
    ("Relu", "t1, between the conv and the Add, has other readers"),
    (None, "y2, between the conv and the Add, is also a graph output"),  # t1 itself leaves the graph as y2
])
def test_conv_output_read_elsewhere_keeps_the_add(reader, why):
    model, _, _ = keras_dw1d_noopt(["C"])
    g = model.graph
    source = "t1"
    if reader:
        g.node.append(helper.make_node(reader, ["t1"], ["r"], name="second_reader"))
        source = "r"
    g.node.append(helper.make_node("Squeeze", [source, "axes1"], ["y2"], name="second_squeeze"))
    g.output.append(vi("y2", [1, L, C]))
    result = rewrite_checked(model, ["to-1d"])
    assert all(e == 0.0 for e in result.errors.values()), result.errors
    assert "Add" in data_ops(result.model) and result.counters.get("bias_adds_folded", 0) == 0
    assert only_record(result).details["bias_add"] == f"Add BiasAdd kept: {why}"


@pytest.mark.parametrize("has_bias", [False, True], ids=["no-bias", "bias"])
def test_float16_bias_keeps_the_conv_dtype(has_bias):
    model, const, bias = keras_dw1d_noopt(["C"], conv_bias=has_bias)
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    # float16 outputs of magnitude < 8: the Add's own rounding (half an ulp, <= 2e-3) may be gone, plus one of the bias sum.
    result = rewrite_checked(model, ["to-1d"], atol=8e-3)
    assert data_ops(result.model) == ["Transpose", "Conv", "Transpose"]
    folded = conv_bias(result.model)
    assert folded.dtype == np.float16
    expected = const.astype(np.float16) + (bias.astype(np.float16) if has_bias else np.float16(0))
    np.testing.assert_array_equal(folded, expected)


def cancelling_bias(model):
    """The conv's bias +1e6 and the Keras bias Add -1e6 (+ a small per-channel part): ill-conditioned."""
    inits = {t.name: t for t in model.graph.initializer}
    small = np.linspace(-1, 1, C).astype(np.float32)
    inits["b"].CopyFrom(init("b", np.full(C, 1e6, np.float32)))
    inits["bias_add"].CopyFrom(init("bias_add", (small - 1e6).astype(np.float32)))
    return model


def test_cancelling_bias_adds_are_kept_with_the_bound():
    """Issue 16: the original rounds conv + 1e6 (ulp 0.0625), the fold adds the cancelled bias once: outputs of
    size ~1 would move by ~0.03. The bias fold is bounded like the separable folds: kept, with the reason."""
    model, _, _ = keras_dw1d_noopt(["C"], conv_bias=True)
    model = cancelling_bias(model)
    result = rewrite_checked(model, ["to-1d"], atol=0.1)
    assert result.counters.get("bias_adds_folded", 0) == 0
    note = only_record(result).details["bias_add"]
    assert note.startswith("Add BiasAdd kept: folding could move outputs by up to ") and \
        note.endswith("beyond float32's tolerance atol 1e-05 rtol 0.0001); --force folds it anyway"), note
    assert "Add" in data_ops(result.model)
    from util import assert_same_outputs, feeds_for

    assert_same_outputs(model, result.model, feeds_for(model), atol=0)  # kept: bit-exact


def test_cancelling_bias_adds_fold_with_force_and_a_warning():
    from convrewrite.cli_rewrite import render_summary
    from convrewrite.passes import PassOptions, run_passes

    model, _, _ = keras_dw1d_noopt(["C"], conv_bias=True)
    model = cancelling_bias(model)
    result = run_passes(model, ["to-1d"], PassOptions(force=True))
    assert result.counters["bias_adds_folded"] == 1 and result.counters["folds_forced_past_bound"] == 1
    assert "forced past the fold's error bound" in only_record(result).details["bias_add"]
    assert "warning: 1 fold(s) forced past their error bound (--force)" in render_summary(result)
    from util import assert_same_outputs, feeds_for

    errors = assert_same_outputs(model, result.model, feeds_for(model), atol=0.1)
    assert max(errors.values()) > 1e-3  # the bound was right: outputs did move beyond tolerance
