"""The causal pass: Pad -> Conv, Conv -> Slice, trimmed ConvTranspose, auto_pad -> explicit pads.

Every rewrite is checked by running: original vs rewritten on onnxruntime CPU
(float32, atol 1e-5), the framework outputs stored with the model (1e-4), and
structurally (no Pad feeds a conv, no Slice trims one, nothing left over).
"""

from __future__ import annotations

import json
import time

import numpy as np
import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from conformance import node_cases
from convrewrite.conv import CONV_OPS, output_length
from convrewrite.passes import PassOptions, run_passes
from util import MODELS, assert_same_outputs, feeds_for, init, make_model, run, vi
from util import load_with_inputs as load

WRAPPERS = ("Unsqueeze", "Transpose", "Identity")
NOTHING = "no Pad before or Slice after it"


# ----------------------------------------------------------------- helpers


def fold(model: onnx.ModelProto, **options):
    return run_passes(model, ["causal"], PassOptions(**options))


def conv_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    return [n for n in graph.node if n.op_type in CONV_OPS]


def pads_feeding_convs(model: onnx.ModelProto) -> list[str]:
    """Pads that reach a conv directly or through layout-only wrappers."""
    producer = {o: n for n in model.graph.node for o in n.output}
    found = []
    for conv in conv_nodes(model.graph):
        node = producer.get(conv.input[0])
        while node is not None and node.op_type in WRAPPERS:
            node = producer.get(node.input[0])
        if node is not None and node.op_type == "Pad":
            found.append(node.name)
    return found


def slices_after_convs(model: onnx.ModelProto) -> list[str]:
    outs = {c.output[0] for c in conv_nodes(model.graph)}
    return [n.name for n in model.graph.node if n.op_type == "Slice" and n.input[0] in outs]


def record_of(result, node: str | None = None):
    recs = [r for r in result.records if node is None or r.node == node]
    assert len(recs) == 1, [r.to_dict() for r in result.records]
    return recs[0]


def inputs_of(model: onnx.ModelProto, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: data[i.name] for i in model.graph.input if i.name in data}


def assert_idempotent_and_deterministic(model: onnx.ModelProto, result) -> None:
    again = fold(result.model)
    assert not again.rewritten, [r.to_dict() for r in again.rewritten]
    assert again.model.SerializeToString() == result.model.SerializeToString()
    assert fold(model).model.SerializeToString() == result.model.SerializeToString()


# ------------------------------------------------------- real exporter output

# name -> (pads folded, slices folded, auto_pads resolved)
FOLDED = {
    "causal_fpad_ts13": (1, 0, 0),
    "causal_fpad_ts11": (1, 0, 0),
    "causal_fpad_ts9": (1, 0, 0),
    "causal_fpad_dyn18noopt": (1, 0, 0),
    "causal_constpad_ts13": (1, 0, 0),
    "causal_constpad_ts11": (1, 0, 0),
    "causal_constpad_ts9": (1, 0, 0),  # Pad-2 with a value attribute 0.0
    "causal_constpad_dyn18noopt": (1, 0, 0),  # constant_value a Constant 0.0
    "causal_unsq_conv2d_ts13": (1, 0, 0),
    "causal_unsq_conv2d_ts11": (1, 0, 0),
    "causal_unsq_conv2d_dyn18": (1, 0, 0),
    "strided_causal_ts13": (1, 0, 0),
    "strided_causal_dyn18noopt": (1, 0, 0),
    "wavenet_ts13": (4, 0, 0),
    "wavenet_ts11": (4, 0, 0),
    "wavenet_dyn18noopt": (4, 0, 0),
    "wavenet_ts9": (4, 0, 0),
    "tcn_chomp_ts13": (0, 4, 0),
    "tcn_chomp_ts11": (0, 4, 0),
    "tcn_chomp_ts9": (0, 4, 0),
    "tcn_chomp_dyn18": (0, 4, 0),
    "tcn_chomp_dyn18noopt": (0, 4, 0),
    "tcn_chomp_dynlen_ts13": (0, 4, 0),
    "tcn_chomp_dynlen_dyn18": (0, 4, 0),
    "convtr_causal_trim_ts13": (0, 1, 0),
    "convtr_causal_trim_dyn18": (0, 1, 0),
    "convtr_causal_trim_ts11": (0, 1, 0),
    "convtr_causal_trim_ts9": (0, 1, 0),
    "convtr_causal_trim_dyn18noopt": (0, 1, 0),
    "convtr_trim_to_input_ts13": (0, 1, 0),  # static ends 64 = 2 * 32
    "convtr_causal_trim_dynlen_ts13": (0, 1, 0),
    "convtr_causal_trim_dynlen_dyn18": (0, 1, 0),
    "convtr_trim_from_output_dynlen_ts13": (0, 1, 0),
    "convtr_trim_from_output_dynlen_dyn18": (0, 1, 0),
    "convtr_trim_to_input_dynlen_ts13": (0, 1, 0),
    "convtr_trim_to_input_dynlen_dyn18": (0, 1, 0),
    "mamba_conv_ts13": (0, 1, 0),
    "mamba_conv_dyn18": (0, 1, 0),
    "mamba_conv_dynlen_ts13": (0, 1, 0),
    "mamba_conv_dynlen_dyn18": (0, 1, 0),
    "k3_conv1d_causal": (1, 0, 0),
    "k3_conv1d_causal_d2": (1, 0, 0),
    "k2_sepconv1d_causal_d2": (1, 0, 0),
    "k3_tcn": (4, 0, 0),
    "pt_causal_fpad": (1, 0, 0),
    "pt_tcn_chomp": (0, 2, 0),
    "same_dilated_ts13": (0, 0, 1),
    "k3_conv1d_dyn": (0, 0, 1),
}


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_real_exports_fold_exactly(name):
    model, data = load(name)
    result = fold(model)
    pads, slices, auto = FOLDED[name]
    assert result.counters.get("pads_folded", 0) == pads
    assert result.counters.get("slices_folded", 0) == slices
    assert result.counters.get("auto_pads_resolved", 0) == auto
    assert len(result.records) == len(conv_nodes(model.graph))  # every conv reported, once
    assert not pads_feeding_convs(result.model)
    if name not in ("wavenet_ts13", "wavenet_ts11"):  # their Slices are the channel chunk, not a trim
        assert not slices_after_convs(result.model)
    ops = [n.op_type for n in result.model.graph.node]
    assert "Pad" not in ops or pads == 0
    if pads:
        # The TorchScript pads chain (ConstantOfShape ... Cast) died with its Pad.
        assert "ConstantOfShape" not in ops
    onnx.checker.check_model(result.model, full_check=True)
    feeds = inputs_of(model, data)
    if name != "same_dilated_ts13":  # onnxruntime refuses the original (SAME_UPPER + dilation)
        assert_same_outputs(model, result.model, feeds, atol=1e-5)
    got = run(result.model, feeds)
    for out, value in got.items():
        np.testing.assert_allclose(value, data[out], atol=1e-4, rtol=0)
    assert_idempotent_and_deterministic(model, result)


@pytest.mark.parametrize("name", [n for n in sorted(FOLDED) if "dynlen" in n])
@pytest.mark.parametrize("length", [4, 9, 33, 100])
def test_dynamic_length_models_fold_for_every_length(name, length):
    model, _ = load(name)
    result = fold(model)
    assert result.rewritten
    assert_same_outputs(model, result.model, feeds_for(model, seed=length, dims={"length": length}))


def test_computed_slice_end_chain_is_removed():
    model, _ = load("convtr_trim_from_output_dynlen_ts13")  # ends = Unsqueeze(Sub(Gather(Shape(y), 2), 2))
    result = fold(model)
    assert [n.op_type for n in result.model.graph.node] == ["ConvTranspose"]
    conv = result.model.graph.node[0]
    assert {a.name: helper.get_attribute_value(a) for a in conv.attribute}["pads"] == [0, 2]
    assert conv.output[0] == "y"


def test_keras_nwc_pad_moves_away_and_wrappers_read_its_input():
    model, _ = load("k3_tcn")
    result = fold(model)
    g = result.model.graph
    producer = {o: n for n in g.node for o in n.output}
    for conv in conv_nodes(g):
        a = {x.name: helper.get_attribute_value(x) for x in conv.attribute}
        assert a["pads"][:2] == [0, a["dilations"][1] * 2] and a["pads"][2:] == [0, 0]
        node = producer[conv.input[0]]
        assert node.op_type in ("Unsqueeze", "Transpose")


NOT_FOLDED = {
    "reflect_pad_conv_ts13": "Pad mode is reflect",
    "pad_value1_conv_ts13": "Pad value is 1.0, not 0",
    "pad_two_consumers_ts13": "Pad output has 2 consumers",
    "chomp_too_large_ts13": "slice drops 5 outputs but end pad is 2",
}


@pytest.mark.parametrize("name", sorted(NOT_FOLDED))
def test_inexact_folds_are_left_alone_with_the_reason(name):
    model, _ = load(name)
    result = fold(model)
    rec = record_of(result)
    assert rec.status == "skipped" and rec.reason == NOT_FOLDED[name]
    assert result.model.SerializeToString() == model.SerializeToString()


@pytest.mark.parametrize("name", [
    "streaming_cache_ts13", "streaming_cache_ts11", "streaming_cache_ts9", "streaming_cache_dyn18",
    "streaming_cache_dyn18noopt",  # the Concat is not a Pad; the new-state Slice is not a trim
    "wavenet_dyn18", "causal_fpad_dyn18", "causal_constpad_dyn18",  # the dynamo optimizer already fused the Pads
    "quartznet_block_ts13",
])
def test_models_without_padding_ops_stay_as_they_are(name):
    model, _ = load(name)
    result = fold(model)
    assert not result.rewritten
    assert all(r.reason == NOTHING for r in result.records)
    assert len(result.records) == len(conv_nodes(model.graph))
    assert result.model.SerializeToString() == model.SerializeToString()


def test_same_dilated_becomes_runnable_with_torch_outputs():
    model, data = load("same_dilated_ts13")
    with pytest.raises(Exception, match="Dilation not supported"):
        run(model, inputs_of(model, data))
    result = fold(model)
    rec = record_of(result)
    assert rec.rewritten and rec.before["auto_pad"] == "SAME_UPPER"
    assert rec.after["pads"] == [2, 2] and rec.after["auto_pad"] == "NOTSET"
    np.testing.assert_allclose(run(result.model, inputs_of(model, data))["y"], data["y"], atol=1e-4, rtol=0)


# ------------------------------------------------------------ auto_pad


def test_auto_pad_conformance_cases_match_the_spec_outputs():
    checked = 0
    for case in node_cases():
        node = case.model.graph.node[0]
        if "auto_pad" not in {a.name for a in node.attribute}:
            continue
        result = fold(case.model)
        assert result.counters.get("auto_pads_resolved") == 1, case.name
        got = list(run(result.model, case.feeds()).values())[0]
        np.testing.assert_allclose(got, case.outputs[0], rtol=case.rtol, atol=case.atol)
        checked += 1
    assert checked >= 2  # test_conv_with_autopad_same, test_convtranspose_autopad_same


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_resolution_matches_onnx_reference(op, mode):
    """Explicit pads reproduce the ONNX reference implementation (onnxruntime refuses SAME + dilation)."""
    rng = np.random.default_rng(0)
    kept = expected_kept = 0
    for s in (1, 2, 3):
        for k in (1, 2, 3, 4):
            for d in (1, 2):
                for size in (3, 4, 5):
                    w = rng.standard_normal((2, 2, k)).astype(np.float32)
                    node = helper.make_node(op, ["x", "w"], ["y"], auto_pad=mode, strides=[s], kernel_shape=[k], dilations=[d])
                    model = make_model([node], [vi("x", [1, 2, size])], [vi("y", [1, 2, None])], [init("w", w)])
                    x = rng.standard_normal((1, 2, size)).astype(np.float32)
                    if op == "Conv" and mode == "VALID" and d * (k - 1) + 1 > size:
                        continue  # no output at all
                    result = fold(model)
                    rec = record_of(result)
                    expected_kept += op == "ConvTranspose" and mode != "VALID" and d * (k - 1) + 1 < s
                    if not rec.rewritten:
                        # Only a ConvTranspose whose kernel is shorter than its stride: SAME needs negative pads.
                        assert op == "ConvTranspose" and d * (k - 1) + 1 < s and "negative pads" in rec.reason
                        kept += 1
                        continue
                    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
                    got = run(result.model, {"x": x})["y"]
                    assert got.shape == expected.shape, (s, k, d, size)
                    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert kept == expected_kept


def test_auto_pad_with_dynamic_length():
    w = init("w", np.ones((2, 2, 3), np.float32))
    for stride, resolved in ((1, True), (2, False)):
        node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[stride], dilations=[2])
        model = make_model([node], [vi("x", [1, 2, "L"])], [vi("y", [1, 2, None])], [w])
        rec = record_of(fold(model))
        assert rec.rewritten == resolved
        if resolved:
            assert rec.after["pads"] == [2, 2]
        else:
            assert rec.reason == "auto_pad SAME_UPPER kept: its pads depend on the dynamic size of spatial axis 0 (stride 2)"


# ------------------------------------------------------------ Pad -> Conv


def pad_conv_model(pads, *, mode=None, value=None, opset=13, conv_attrs=None, x_shape=(1, 3, 16), pad_axes=None,
                   conv_op="Conv", extra_nodes=(), outputs=None):
    """x -> Pad -> Conv(k3) -> y, the Pad in the form of `opset`."""
    rank = len(x_shape) - 2
    w = np.random.default_rng(1).standard_normal((3, 3) + (3,) * rank).astype(np.float32)
    inits = [init("w", w)]
    pad_kw = {} if mode is None else {"mode": mode}
    if opset < 11:
        pad_kw["pads"] = list(pads)
        if value is not None:
            pad_kw["value"] = float(value)
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", **pad_kw)
    else:
        inputs = ["x", "pads"]
        inits.append(init("pads", np.array(pads, np.int64)))
        if value is not None or pad_axes is not None:
            inputs.append("" if value is None else "value")
            if value is not None:
                inits.append(init("value", np.array(value, np.float32)))
        if pad_axes is not None:
            inputs.append("axes")
            inits.append(init("axes", np.array(pad_axes, np.int64)))
        pad = helper.make_node("Pad", inputs, ["p"], name="pad", **pad_kw)
    conv = helper.make_node(conv_op, ["p", "w"], ["y"], name="conv", kernel_shape=[3] * rank, **(conv_attrs or {}))
    outs = outputs or [vi("y", [x_shape[0], 3] + [None] * rank)]
    return make_model([pad, conv, *extra_nodes], [vi("x", list(x_shape))], outs, inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 11, 13, 18, 19])
def test_zero_pad_folds_in_every_opset_form(opset):
    model = pad_conv_model([0, 0, 2, 0, 0, 1], opset=opset, value=0.0 if opset != 13 else None)
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.rewritten and rec.after["pads"] == [2, 1]
    assert [n.op_type for n in result.model.graph.node] == ["Conv"]
    assert not result.model.graph.initializer[1:]  # pads / value initializers dropped with the Pad
    assert_same_outputs(model, result.model)


def test_pad_axes_input_is_honoured():
    model = pad_conv_model([3, 1], opset=18, pad_axes=[-1], x_shape=(1, 3, 8, 16))
    result = fold(model)
    assert record_of(result, "conv").after["pads"] == [0, 3, 0, 1]
    assert_same_outputs(model, result.model)


def test_pad_adds_to_the_convs_own_pads_with_stride_and_dilation():
    model = pad_conv_model([0, 0, 4, 0, 0, 0], opset=13, conv_attrs={"pads": [1, 2], "strides": [2], "dilations": [2]})
    result = fold(model)
    assert record_of(result, "conv").after["pads"] == [5, 2]
    assert_same_outputs(model, result.model)


def test_pad_before_a_static_same_conv_resolves_first():
    model = pad_conv_model([0, 0, 2, 0, 0, 0], conv_attrs={"auto_pad": "SAME_UPPER", "strides": [2]}, x_shape=(1, 3, 15))
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.rewritten and result.counters == {"auto_pads_resolved": 1, "pads_folded": 1}
    assert_same_outputs(model, result.model)


def test_pad_before_a_dynamic_strided_same_conv_is_kept():
    model = pad_conv_model([0, 0, 2, 0, 0, 0], conv_attrs={"auto_pad": "SAME_UPPER", "strides": [2]}, x_shape=(1, 3, "L"))
    rec = record_of(fold(model), "conv")
    assert not rec.rewritten
    assert "Pad cannot join them" in rec.reason and "auto_pad SAME_UPPER kept" in rec.reason


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"pads": [0, 0, 2, 0, 0, 0], "mode": "edge"}, "Pad mode is edge"),
        ({"pads": [0, 0, 2, 0, 0, 0], "mode": "reflect", "opset": 9}, "Pad mode is reflect"),
        ({"pads": [0, 0, 2, 0, 0, 0], "mode": "wrap", "opset": 19}, "Pad mode is wrap"),
        ({"pads": [0, 0, 2, 0, 0, 0], "value": 0.5}, "Pad value is 0.5, not 0"),
        ({"pads": [0, 0, 2, 0, 0, 0], "value": 2.0, "opset": 9}, "Pad value is 2.0, not 0"),
        ({"pads": [0, 1, 2, 0, 0, 0]}, "Pad pads the channel axis"),
        ({"pads": [1, 0, 2, 0, 0, 0]}, "Pad pads the batch axis"),
        ({"pads": [0, 0, 2, 0, 0, -1]}, "Pad has negative amounts (it crops)"),
        ({"pads": [0, 0, 2, 0, 0, 0], "conv_op": "ConvTranspose"},
         "Pad before a ConvTranspose is not its pads (padding a transposed conv's input is not cropping its output)"),
    ],
)
def test_pads_that_are_not_the_convs_padding_are_left_alone(kwargs, reason):
    pads = kwargs.pop("pads")
    model = pad_conv_model(pads, **kwargs)
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.status == "skipped" and rec.reason == reason
    assert result.model.SerializeToString() == model.SerializeToString()


def test_pad_output_used_twice_or_as_graph_output_is_left_alone():
    relu = helper.make_node("Relu", ["p"], ["r"])
    model = pad_conv_model([0, 0, 2, 0, 0, 0], extra_nodes=[relu], outputs=[vi("y", [1, 3, None]), vi("r", [1, 3, 18])])
    assert record_of(fold(model), "conv").reason == "Pad output has 2 consumers"
    model = pad_conv_model([0, 0, 2, 0, 0, 0], outputs=[vi("y", [1, 3, None]), vi("p", [1, 3, 18])])
    assert record_of(fold(model), "conv").reason == "Pad output is a graph output"


def test_pad_amounts_computed_at_run_time_are_left_alone():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "two"], ["len"], axis=0),
        helper.make_node("Mul", ["len", "zero"], ["z"]),
        helper.make_node("Concat", ["zeros2", "z", "zeros3"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["p"]),
        helper.make_node("Conv", ["p", "w"], ["y"], name="conv"),
    ]
    inits = [init("two", np.array([2], np.int64)), init("zero", np.array([0], np.int64)),
             init("zeros2", np.zeros(2, np.int64)), init("zeros3", np.zeros(3, np.int64)),
             init("w", np.ones((3, 3, 3), np.float32))]
    model = make_model(nodes, [vi("x", [1, 3, "L"])], [vi("y", [1, 3, None])], inits)
    assert record_of(fold(model), "conv").reason == "Pad amounts are computed at run time"


def keras_nwc_separable(transpose: bool = True, unsqueeze_axis: int = 1):
    """tf_keras SeparableConv1D(causal): NWC Pad -> Unsqueeze -> Transpose -> depthwise Conv -> 1x1 Conv -> Squeeze -> Transpose."""
    rng = np.random.default_rng(2)
    c = 4
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
        helper.make_node("Unsqueeze", ["p", "uaxes"], ["u"]),
    ]
    if transpose:
        nodes.append(helper.make_node("Transpose", ["u"], ["t"], perm=[0, 3, 1, 2]))
    nodes += [
        helper.make_node("Conv", ["t" if transpose else "u", "dw"], ["d"], name="depthwise", group=c,
                         kernel_shape=[1, 3], dilations=[1, 2], pads=[0, 0, 0, 0]),
        helper.make_node("Conv", ["d", "pw", "b"], ["q"], name="pointwise", kernel_shape=[1, 1]),
        helper.make_node("Squeeze", ["q", "saxes"], ["sq"]),
        helper.make_node("Transpose", ["sq"], ["y"], perm=[0, 2, 1]),
    ]
    inits = [
        init("pads", np.array([0, 4, 0, 0, 0, 0], np.int64)),
        init("uaxes", np.array([unsqueeze_axis], np.int64)),
        init("saxes", np.array([2], np.int64)),
        init("dw", rng.standard_normal((c, 1, 1, 3)).astype(np.float32)),
        init("pw", rng.standard_normal((6, c, 1, 1)).astype(np.float32)),
        init("b", rng.standard_normal(6).astype(np.float32)),
    ]
    return make_model(nodes, [vi("x", [1, 20, c])], [vi("y", [1, 20, 6])], inits)


def test_keras_nwc_pad_through_unsqueeze_and_transpose():
    model = keras_nwc_separable()
    result = fold(model)
    rec = record_of(result, "depthwise")
    assert rec.rewritten and rec.after["pads"] == [0, 4, 0, 0]
    assert record_of(result, "pointwise").reason == NOTHING
    assert [n.op_type for n in result.model.graph.node][:2] == ["Unsqueeze", "Transpose"]
    assert result.model.graph.node[0].input[0] == "x"
    assert_same_outputs(model, result.model)


def test_unsqueeze_that_inserts_the_padded_position_is_mapped_right():
    # Unsqueeze(axes=[-3]) on NWC [1, 20, 4] gives [1, 1, 20, 4]; the Pad's axis 1 becomes conv axis 3.
    model = keras_nwc_separable(unsqueeze_axis=-3)
    result = fold(model)
    assert record_of(result, "depthwise").after["pads"] == [0, 4, 0, 0]
    assert_same_outputs(model, result.model)


def test_keras_optimizer_off_unsqueeze_axes_computed_by_cast_reshape():
    # tf2onnx with optimizers={}: Unsqueeze axes = Reshape(Cast(init -3), [1]) (exporter-patterns section 1).
    model = keras_nwc_separable(unsqueeze_axis=-3)
    unsqueeze = next(i for i, n in enumerate(model.graph.node) if n.op_type == "Unsqueeze")
    model.graph.node[unsqueeze].input[1] = "axes_reshaped"
    model.graph.node.insert(unsqueeze, helper.make_node("Reshape", ["axes_cast", "one"], ["axes_reshaped"]))
    model.graph.node.insert(unsqueeze, helper.make_node("Cast", ["axes_scalar"], ["axes_cast"], to=TensorProto.INT64))
    model.graph.initializer.extend([init("axes_scalar", np.array(-3, np.int32)), init("one", np.array([1], np.int64))])
    onnx.checker.check_model(model, full_check=True)
    result = fold(model)
    assert record_of(result, "depthwise").after["pads"] == [0, 4, 0, 0]
    assert not pads_feeding_convs(result.model)
    assert_same_outputs(model, result.model)


def test_wrapper_with_two_consumers_blocks_the_fold():
    model = keras_nwc_separable()
    extra = helper.make_node("Identity", ["u"], ["u2"])
    model.graph.node.append(extra)
    model.graph.output.append(vi("u2", [1, 1, 24, 4]))
    assert record_of(fold(model), "depthwise").reason == "Unsqueeze output has 2 consumers"


def quantized_model(op: str, x_zero_point: int | None):
    rng = np.random.default_rng(3)
    w = rng.integers(0, 255, size=(3, 3, 3)).astype(np.uint8)
    nodes = [helper.make_node("Pad", ["x", "pads", "pv"], ["p"], name="pad")]
    inits = [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("pv", np.array(0, np.uint8)), init("w", w)]
    if op == "QLinearConv":
        inits += [init("xs", np.array(0.05, np.float32)), init("xz", np.array(x_zero_point, np.uint8)),
                  init("ws", np.array(0.02, np.float32)), init("wz", np.array(128, np.uint8)),
                  init("ys", np.array(0.5, np.float32)), init("yz", np.array(100, np.uint8))]
        nodes.append(helper.make_node("QLinearConv", ["p", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="conv"))
        out = vi("y", [1, 3, None], TensorProto.UINT8)
    else:
        inputs = ["p", "w"] + (["xz"] if x_zero_point is not None else [])
        if x_zero_point is not None:
            inits.append(init("xz", np.array(x_zero_point, np.uint8)))
        nodes.append(helper.make_node("ConvInteger", inputs, ["y"], name="conv"))
        out = vi("y", [1, 3, None], TensorProto.INT32)
    return make_model(nodes, [vi("x", [1, 3, 16], TensorProto.UINT8)], [out], inits)


@pytest.mark.parametrize("op, zp, folds", [("QLinearConv", 0, True), ("QLinearConv", 3, False),
                                           ("ConvInteger", None, True), ("ConvInteger", 0, True),
                                           ("ConvInteger", 7, False)])
def test_quantized_convs_fold_a_zero_pad_only_with_a_zero_zero_point(op, zp, folds):
    model = quantized_model(op, zp)
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.rewritten == folds
    if folds:
        assert_same_outputs(model, result.model, feeds_for(model), atol=0)
    else:
        assert rec.reason.startswith(f"the Pad fills with 0 but the input zero point is {zp}")


# ----------------------------------------------------------- Conv -> Slice


def conv_slice_model(k, s, d, pb, pe, starts, ends, *, length=24, axes=(2,), steps=None, op="Conv",
                     opset=13, extra=None, output_padding=None):
    rng = np.random.default_rng(4)
    c = 2
    attrs = dict(kernel_shape=[k], strides=[s], dilations=[d], pads=[pb, pe])
    if output_padding is not None:
        attrs["output_padding"] = [output_padding]
    nodes = [helper.make_node(op, ["x", "w", "b"], ["c"], name="conv", **attrs)]
    inits = [init("w", rng.standard_normal((c, c, k)).astype(np.float32)), init("b", rng.standard_normal(c).astype(np.float32))]
    if opset < 10:
        nodes.append(helper.make_node("Slice", ["c"], ["y"], name="slice", starts=list(starts), ends=list(ends), axes=list(axes)))
    else:
        inputs = ["c", "starts", "ends", "axes"]
        inits += [init("starts", np.array(starts, np.int64)), init("ends", np.array(ends, np.int64)),
                  init("axes", np.array(axes, np.int64))]
        if steps is not None:
            inputs.append("steps")
            inits.append(init("steps", np.array(steps, np.int64)))
        nodes.append(helper.make_node("Slice", inputs, ["y"], name="slice"))
    nodes += list(extra or [])
    return make_model(nodes, [vi("x", [1, c, length])], [vi("y", [1, c, None])], inits, opset=opset)


def exact_fold_exists(k, s, d, pb, pe, q0, q1, size) -> bool:
    """Brute force: some pads pb - q0*s >= 0 and 0 <= e <= pe keep the sliced length (then the fold is exact)."""
    full = output_length(size, k, s, d, pb, pe)
    if pb < q0 * s or full - q0 - q1 < 1:
        return False
    return any(output_length(size, k, s, d, pb - q0 * s, pe - e) == full - q0 - q1 for e in range(pe + 1))


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2), pb=st.integers(0, 6), pe=st.integers(0, 6),
       q0=st.integers(0, 3), q1=st.integers(0, 3), size=st.integers(5, 14))
def test_chomp_folds_exactly_when_a_fold_exists(k, s, d, pb, pe, q0, q1, size):
    full = output_length(size, k, s, d, pb, pe)
    if full - q0 - q1 < 1:
        return
    model = conv_slice_model(k, s, d, pb, pe, [q0], [full - q1], length=size)
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.rewritten == exact_fold_exists(k, s, d, pb, pe, q0, q1, size), rec.reason
    if rec.rewritten:
        assert [n.op_type for n in result.model.graph.node] == ["Conv"]
        assert_same_outputs(model, result.model)


def test_strided_chomp_uses_the_slack_of_floor_division():
    # k3 s2 pads [1, 1] on 63 steps: 32 outputs, (63 + 2 - 3) % 2 == 0, so dropping 1 at the end needs only 1 pad.
    model = conv_slice_model(3, 2, 1, 1, 1, [0], [-1], length=63)
    result = fold(model)
    assert record_of(result, "conv").after["pads"] == [1, 0]
    assert_same_outputs(model, result.model)
    # On 64 steps there is no slack: the same Slice cannot be folded.
    rec = record_of(fold(conv_slice_model(3, 2, 1, 1, 1, [0], [-1], length=64)), "conv")
    assert rec.reason == "slice drops 1 outputs at the end (stride 2) but end pad is 1, needs 2"


def test_strided_chomp_on_a_dynamic_length_needs_a_full_stride_per_output():
    def model(pe):
        m = conv_slice_model(3, 2, 1, 1, pe, [0], [-1])
        m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "L"
        return m

    assert record_of(fold(model(1)), "conv").reason == (
        "slice drops 1 outputs at the end (stride 2) but end pad is 1 < 2, and the length is dynamic")
    result = fold(model(3))
    assert record_of(result, "conv").after["pads"] == [1, 1]
    for length in (5, 8, 9, 30, 31):
        assert_same_outputs(model(3), result.model, feeds_for(result.model, dims={"L": length}))


@pytest.mark.parametrize("ends", [[-2], [24], [2**63 - 1], [2**31 - 1]])
def test_chomp_end_forms(ends):
    # Conv k3 pads [2, 2] on 24 steps: 26 outputs. Keep [2, end).
    model = conv_slice_model(3, 1, 1, 2, 2, [2], ends)
    result = fold(model)
    dropped_end = {-2: 2, 24: 2}.get(ends[0], 0)
    assert record_of(result, "conv").after["pads"] == [0, 2 - dropped_end]
    assert_same_outputs(model, result.model)


def test_opset9_slice_attributes():
    model = conv_slice_model(3, 1, 2, 4, 4, [0], [-4], opset=9)
    result = fold(model)
    assert record_of(result, "conv").after["pads"] == [4, 0]
    assert_same_outputs(model, result.model)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"starts": [0], "ends": [-2], "steps": [2]}, "Slice step is 2, not 1"),
        ({"starts": [1], "ends": [2], "axes": [1]}, "Slice crops the channel axis"),
        ({"starts": [3], "ends": [2**63 - 1]}, "slice drops 3 outputs at the front but begin pad is 2"),
    ],
)
def test_slices_that_are_not_a_chomp_are_left_alone(kwargs, reason):
    model = conv_slice_model(3, 1, 1, 2, 2, **kwargs)
    rec = record_of(fold(model), "conv")
    assert rec.reason == reason


def test_conv_output_read_by_more_than_the_slice_is_left_alone():
    relu = helper.make_node("Relu", ["c"], ["r"])
    model = conv_slice_model(3, 1, 1, 2, 2, [0], [-2], extra=[relu])
    model.graph.output.append(vi("r", [1, 2, 26]))
    assert record_of(fold(model), "conv").reason == "Conv output has 2 consumers"


def test_convtranspose_trim_at_both_ends_any_stride_and_output_padding():
    # ConvTranspose k5 s3 output_padding 1 on 10 steps: 3*9 + 1 + 5 = 33 outputs; keep [2, 30).
    model = conv_slice_model(5, 3, 1, 0, 0, [2], [-3], length=10, op="ConvTranspose", output_padding=1)
    result = fold(model)
    assert record_of(result, "conv").after["pads"] == [2, 3]
    assert_same_outputs(model, result.model)


def test_convtranspose_with_output_shape_keeps_its_slice():
    model = conv_slice_model(4, 2, 1, 0, 0, [0], [-2], length=10, op="ConvTranspose")
    model.graph.node[0].attribute.append(helper.make_attribute("output_shape", [22]))
    rec = record_of(fold(model), "conv")
    assert rec.reason == "ConvTranspose has an output_shape, which overrides its pads"


def test_convtranspose_2d_trim_on_two_axes():
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="conv", strides=[2, 2], kernel_shape=[3, 3]),
             helper.make_node("Slice", ["c", "starts", "ends", "axes"], ["y"])]
    inits = [init("w", rng.standard_normal((2, 3, 3, 3)).astype(np.float32)), init("starts", np.array([0, 1], np.int64)),
             init("ends", np.array([-1, 2**31 - 1], np.int64)), init("axes", np.array([2, 3], np.int64))]
    model = make_model(nodes, [vi("x", [1, 2, 5, 6])], [vi("y", [1, 3, None, None])], inits)
    result = fold(model)
    assert record_of(result, "conv").after["pads"] == [0, 1, 1, 0]
    assert_same_outputs(model, result.model)


def test_run_time_slice_end_that_is_not_output_minus_constant_is_left_alone():
    # ConvTranspose s2 on a dynamic length ends at Shape(x)[2] = L, not 2L - c: only some of the output is kept.
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w"], ["c"], name="conv", strides=[2], kernel_shape=[4]),
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "two"], ["len"], axis=0),
        helper.make_node("Slice", ["c", "zero", "len", "two"], ["y"]),
    ]
    inits = [init("w", np.ones((2, 2, 4), np.float32)), init("two", np.array([2], np.int64)),
             init("zero", np.array([0], np.int64))]
    model = make_model(nodes, [vi("x", [1, 2, "L"])], [vi("y", [1, 2, None])], inits)
    rec = record_of(fold(model), "conv")
    assert rec.reason == "slice end is computed at run time"


def test_pad_conv_and_chomp_on_the_same_conv():
    # Pad 2 at the front, Conv k3 pads [0, 2], chomp 2 at the end: one Conv with pads [2, 0].
    pad = helper.make_node("Pad", ["x", "pads"], ["p"])
    conv = helper.make_node("Conv", ["p", "w"], ["c"], name="conv", pads=[0, 2])
    slc = helper.make_node("Slice", ["c", "zero", "minus2", "two"], ["y"])
    inits = [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("w", np.ones((2, 2, 3), np.float32)),
             init("zero", np.array([0], np.int64)), init("minus2", np.array([-2], np.int64)), init("two", np.array([2], np.int64))]
    model = make_model([pad, conv, slc], [vi("x", [1, 2, 10])], [vi("y", [1, 2, 10])], inits)
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.after["pads"] == [2, 0] and result.counters == {"pads_folded": 1, "slices_folded": 1}
    assert [n.op_type for n in result.model.graph.node] == ["Conv"] and not result.model.graph.initializer[1:]
    assert_same_outputs(model, result.model)


def test_stacked_pads_and_slices_all_fold_in_one_run():
    # Keras ZeroPadding1D((2, 0)) then padding='causal' (NWC, behind Unsqueeze), plus a chained double chomp.
    nodes = [
        helper.make_node("Pad", ["x", "nwc_pads"], ["p1"], name="zeropad"),
        helper.make_node("Pad", ["p1", "nwc_pads"], ["p2"], name="causal_pad"),
        helper.make_node("Unsqueeze", ["p2", "one"], ["u"]),
        helper.make_node("Pad", ["u", "nchw_pads"], ["p3"], name="inner_pad"),
        helper.make_node("Transpose", ["p3"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w"], ["c"], name="conv", kernel_shape=[1, 3], pads=[0, 0, 0, 3]),
        helper.make_node("Slice", ["c", "zero", "minus1", "three"], ["s1"], name="chomp1"),
        helper.make_node("Slice", ["s1", "zero", "minus2", "three"], ["y"], name="chomp2"),
    ]
    inits = [init("nwc_pads", np.array([0, 2, 0, 0, 0, 0], np.int64)), init("one", np.array([1], np.int64)),
             init("nchw_pads", np.array([0, 0, 1, 0, 0, 0, 0, 0], np.int64)),  # NHWC: 1 more step on W
             init("w", np.random.default_rng(10).standard_normal((3, 4, 1, 3)).astype(np.float32)),
             init("zero", np.array([0], np.int64)), init("minus1", np.array([-1], np.int64)),
             init("minus2", np.array([-2], np.int64)), init("three", np.array([3], np.int64))]
    model = make_model(nodes, [vi("x", [1, 12, 4])], [vi("y", [1, 3, 1, 15])], inits)
    onnx.checker.check_model(model, full_check=True)
    result = fold(model)
    rec = record_of(result, "conv")
    assert result.counters == {"pads_folded": 3, "slices_folded": 2}
    assert rec.after["pads"] == [0, 5, 0, 0]
    assert [n.op_type for n in result.model.graph.node] == ["Unsqueeze", "Transpose", "Conv"]
    assert_same_outputs(model, result.model)
    assert_idempotent_and_deterministic(model, result)


def test_a_reflect_pad_behind_a_zero_pad_stays_and_the_second_run_agrees():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p1"], name="reflect", mode="reflect"),
             helper.make_node("Pad", ["p1", "pads"], ["p2"], name="zero"),
             helper.make_node("Conv", ["p2", "w"], ["y"], name="conv", kernel_shape=[3])]
    inits = [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("w", np.ones((2, 2, 3), np.float32))]
    model = make_model(nodes, [vi("x", [1, 2, 8])], [vi("y", [1, 2, 10])], inits)
    result = fold(model)
    rec = record_of(result, "conv")
    assert rec.rewritten and rec.details["not_done"] == ["Pad mode is reflect"]
    assert [n.op_type for n in result.model.graph.node] == ["Pad", "Conv"]
    assert_same_outputs(model, result.model)
    assert_idempotent_and_deterministic(model, result)


# ---------------------------------------------------- bodies, selection, scale


def test_folds_inside_if_branches_and_functions():
    def branch(name):
        pad = helper.make_node("Pad", ["x", "pads"], [f"{name}_p"])
        conv = helper.make_node("Conv", [f"{name}_p", "w"], [f"{name}_y"], name=f"{name}_conv")
        return helper.make_graph([pad, conv], name, [], [vi(f"{name}_y", [1, 2, 10])])

    fn = helper.make_function(
        "local", "chomp", ["fx", "fw"], ["fy"],
        [helper.make_node("Conv", ["fx", "fw"], ["fc"], name="fn_conv", kernel_shape=[3], pads=[2, 2]),
         helper.make_node("Constant", [], ["fs"], value=numpy_helper.from_array(np.array([0], np.int64))),
         helper.make_node("Constant", [], ["fe"], value=numpy_helper.from_array(np.array([-2], np.int64))),
         helper.make_node("Constant", [], ["fa"], value=numpy_helper.from_array(np.array([2], np.int64))),
         helper.make_node("Slice", ["fc", "fs", "fe", "fa"], ["fy"])],
        opset_imports=[helper.make_opsetid("", 13)],
    )
    nodes = [helper.make_node("If", ["cond"], ["b"], then_branch=branch("then"), else_branch=branch("else")),
             helper.make_node("chomp", ["b", "w"], ["y"], domain="local")]
    inits = [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)),
             init("w", np.random.default_rng(6).standard_normal((2, 2, 3)).astype(np.float32))]
    graph = helper.make_graph(nodes, "g", [vi("cond", [], TensorProto.BOOL), vi("x", [1, 2, 10])], [vi("y", [1, 2, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
                              functions=[fn], ir_version=8)
    onnx.checker.check_model(model)
    result = fold(model)
    assert {r.node: r.status for r in result.records} == {
        "then_conv": "rewritten", "else_conv": "rewritten", "fn_conv": "rewritten"}
    assert [n.op_type for n in result.model.functions[0].node] == ["Conv"]
    for cond in (True, False):
        feeds = {"cond": np.array(cond), "x": np.random.default_rng(7).standard_normal((1, 2, 10)).astype(np.float32)}
        assert_same_outputs(model, result.model, feeds)


def test_excluded_convs_are_recorded_and_left_alone():
    model, _ = load("tcn_chomp_ts13")
    result = run_passes(model, ["causal"], only=set())
    assert len(result.records) == 5 and all(r.reason == "excluded by selection" for r in result.records)
    assert result.model.SerializeToString() == model.SerializeToString()
    keys = {"causal:main:/block1/conv1/Conv"}
    result = run_passes(model, ["causal"], only=keys)
    assert [r.node for r in result.rewritten] == ["/block1/conv1/Conv"]
    assert_same_outputs(model, result.model)


def test_long_chain_folds_without_recursion_and_fast():
    n, c = 2000, 2
    nodes, inits = [], [init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)), init("w", np.full((c, c, 3), 0.3, np.float32))]
    prev = "x"
    for i in range(n):
        nodes.append(helper.make_node("Pad", [prev, "pads"], [f"p{i}"]))
        nodes.append(helper.make_node("Conv", [f"p{i}", "w"], [f"c{i}"]))
        prev = f"c{i}"
    nodes[-1].output[0] = "y"
    model = make_model(nodes, [vi("x", [1, c, 16])], [vi("y", [1, c, 16])], inits)
    start = time.perf_counter()
    result = run_passes(model, ["causal"], copy_model=False)
    elapsed = time.perf_counter() - start
    assert result.counters == {"pads_folded": n}
    assert [r.node for r in result.records[:2]] == ["Conv_0", "Conv_1"]
    assert elapsed < 10, elapsed  # about 0.3 s here; quadratic behaviour would take minutes


# --------------------------------------------------------- CausalConvWithState


def streaming_model(opset: int, *, channels=4, k=4, groups=None, with_slice=True):
    rng = np.random.default_rng(8)
    groups = channels if groups is None else groups
    nodes = [helper.make_node("Concat", ["state", "x"], ["h"], axis=2),
             helper.make_node("Conv", ["h", "w", "b"], ["y"], name="conv", group=groups, kernel_shape=[k])]
    inits = [init("w", rng.standard_normal((channels, channels // groups, k)).astype(np.float32)),
             init("b", rng.standard_normal(channels).astype(np.float32))]
    outputs = [vi("y", [1, channels, 16])]
    if with_slice:
        nodes.append(helper.make_node("Slice", ["h", "st", "en", "ax"], ["new_state"]))
        inits += [init("st", np.array([-(k - 1)], np.int64)), init("en", np.array([2**63 - 1], np.int64)),
                  init("ax", np.array([2], np.int64))]
        outputs.append(vi("new_state", [1, channels, k - 1]))
    ir = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    return make_model(nodes, [vi("x", [1, channels, 16]), vi("state", [1, channels, k - 1])], outputs, inits,
                      opset=opset, ir_version=max(ir, 8))


@pytest.mark.parametrize("with_slice", [True, False])
def test_causal_conv_with_state_target(with_slice):
    model = streaming_model(27, with_slice=with_slice)
    result = fold(model, causal_target="CausalConvWithState")
    rec = record_of(result, "conv")
    assert rec.rewritten and result.counters == {"causal_convs_with_state": 1}
    assert [n.op_type for n in result.model.graph.node] == ["CausalConvWithState"]
    assert "cannot run it" in rec.details["runtime"]  # onnxruntime 1.31 stops at opset 26
    onnx.checker.check_model(result.model, full_check=True)
    rng = np.random.default_rng(9)
    feeds = {"x": rng.standard_normal((1, 4, 16)).astype(np.float32), "state": rng.standard_normal((1, 4, 3)).astype(np.float32)}
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = ReferenceEvaluator(result.model).run(None, feeds)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=0)
    assert not fold(result.model, causal_target="CausalConvWithState").rewritten


def test_causal_conv_with_state_is_not_default_and_needs_opset_27():
    assert record_of(fold(streaming_model(27)), "conv").reason == NOTHING
    rec = record_of(fold(streaming_model(18), causal_target="CausalConvWithState"), "conv")
    assert rec.reason == "CausalConvWithState needs opset 27; the model imports opset 18"
    rec = record_of(fold(streaming_model(27, groups=1), causal_target="CausalConvWithState"), "conv")
    assert rec.reason == "CausalConvWithState: the conv is not depthwise with one output per channel"


def test_streaming_cache_export_stays_with_the_target_too():
    model, _ = load("streaming_cache_ts13")
    result = fold(model, causal_target="CausalConvWithState")
    assert not result.rewritten
    assert result.model.SerializeToString() == model.SerializeToString()


# ------------------------------------------------------------------- CLI


def cli(*args: str):
    from click.testing import CliRunner

    from convrewrite.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("fold_name", ["causal", "all"])
def test_cli_fold_causal_writes_the_folded_model_and_every_record(tmp_path, fold_name):
    src = MODELS / "tcn_chomp_ts13.onnx"
    before = src.read_bytes()
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    r = cli("rewrite", str(src), "-o", str(out), "--fold", fold_name, "--report", str(report), "--check")
    assert r.exit_code == 0, r.output
    assert src.read_bytes() == before  # the input is never modified
    model, folded = onnx.load(str(src)), onnx.load(str(out))
    assert not slices_after_convs(folded)
    records = [rec for rec in json.loads(report.read_text())["records"] if rec["pass"] == "causal"]
    assert len(records) == len(conv_nodes(model.graph))
    assert sorted(rec["status"] for rec in records) == ["rewritten"] * 4 + ["skipped"]
    data = dict(np.load(str(src.with_suffix(".npz"))))
    assert_same_outputs(model, folded, inputs_of(model, data), atol=1e-5)


@pytest.mark.parametrize("name", sorted(NOT_FOLDED))
def test_cli_report_gives_the_reason_for_each_refusal(tmp_path, name):
    src = MODELS / f"{name}.onnx"
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    r = cli("rewrite", str(src), "-o", str(out), "--fold", "causal", "--report", str(report))
    assert r.exit_code == 0, r.output
    (rec,) = json.loads(report.read_text())["records"]
    assert rec["status"] == "skipped" and rec["reason"] == NOT_FOLDED[name]
    assert NOT_FOLDED[name] in r.output  # the summary names the reason too
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == [n.op_type for n in onnx.load(str(src)).graph.node]


def test_cli_causal_target_is_offered_and_says_no_runtime_runs_it(tmp_path):
    src, out, report = tmp_path / "streaming.onnx", tmp_path / "out.onnx", tmp_path / "report.json"
    model = streaming_model(27)
    onnx.save(model, str(src))
    r = cli("rewrite", str(src), "-o", str(out), "--fold", "causal", "--report", str(report))
    assert r.exit_code == 0 and json.loads(report.read_text())["records"][0]["reason"] == NOTHING  # not default
    r = cli("rewrite", str(src), "-o", str(out), "--fold", "causal", "--causal-target", "CausalConvWithState",
            "--report", str(report))
    assert r.exit_code == 0, r.output
    (rec,) = json.loads(report.read_text())["records"]
    assert rec["status"] == "rewritten" and "became CausalConvWithState" in rec["reason"]
    assert "onnxruntime" in rec["reason"] and "cannot run it" in rec["reason"]
    folded = onnx.load(str(out))
    assert [n.op_type for n in folded.graph.node] == ["CausalConvWithState"]
    rng = np.random.default_rng(11)
    feeds = {"x": rng.standard_normal((1, 4, 16)).astype(np.float32),
             "state": rng.standard_normal((1, 4, 3)).astype(np.float32)}
    for e, g in zip(ReferenceEvaluator(model).run(None, feeds), ReferenceEvaluator(folded).run(None, feeds)):
        np.testing.assert_allclose(g, e, atol=1e-5, rtol=0)
    r = cli("rewrite", str(src), "-o", str(tmp_path / "bad.onnx"), "--causal-target", "Concat")
    assert r.exit_code == 2 and "--causal-target" in r.output and not (tmp_path / "bad.onnx").exists()
