"""The separable pass: depthwise + pointwise pairs in one canonical form, BatchNorm/bias folds, fusion.

Every rewrite is checked by running: original vs rewritten on onnxruntime CPU
(float32 atol 1e-5; the fused form also rtol 1e-4), the framework outputs stored
with the model (1e-4), and structurally (the op sequence after the pass, no
BatchNormalization or bias Add left next to a conv that could absorb it, no
bias on the depthwise conv of a pair, nothing left over).
"""

from __future__ import annotations


import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from convrewrite import rewrite
from convrewrite.conv import CONV_OPS, output_length
from convrewrite.graph import FOLD_MAX_ELEMENTS
from convrewrite.inspection import inventory
from convrewrite.passes import PassContext, PassOptions, run_passes
from convrewrite.passes.separable import SeparablePass
from util import MODELS, SAMPLES, assert_same_outputs, feeds_for, init, make_model, run, vi
from util import load_with_inputs as load

FUSED_RTOL = 1e-4
LAYOUT = ("Identity", "Transpose", "Squeeze", "Unsqueeze")


# ----------------------------------------------------------------- helpers


def fold(model: onnx.ModelProto, **options):
    """The separable pass; fusing with a depth multiplier > 1 is finite-math: allowed here, its default is tested
    in test_special_values."""
    options.setdefault("assume_finite", True)
    return run_passes(model, ["separable"], PassOptions(**options))


def ops(model: onnx.ModelProto) -> str:
    return " ".join(n.op_type for n in model.graph.node if n.op_type != "Constant")


def inputs_of(model: onnx.ModelProto, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {i.name: data[i.name] for i in model.graph.input if i.name in data}


def records_by_node(result) -> dict[str, object]:
    by_node = {}
    for r in result.records:
        assert r.node not in by_node, f"two records for {r.node}"
        by_node[r.node] = r
    return by_node


def absorbable_followers(model: onnx.ModelProto) -> list[str]:
    """BatchNormalization / constant Add, Sub, Mul reached from a conv through layout ops (single readers)."""
    g = model.graph
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    constants = {t.name for t in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
    found = []
    for conv in g.node:
        if conv.op_type not in ("Conv", "ConvTranspose"):
            continue
        name = conv.output[0]
        while name not in outputs and len(consumers.get(name, [])) == 1:
            user = consumers[name][0]
            if user.op_type in LAYOUT:
                name = user.output[0]
                continue
            if user.op_type == "BatchNormalization" or (
                user.op_type in ("Add", "Sub", "Mul") and any(i in constants for i in user.input)
            ):
                found.append(f"{user.op_type} after {conv.name}")
            break
    return found


def separable_pairs(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto]]:
    """(depthwise, pointwise) convs directly connected, the depthwise output read by the pointwise conv only."""
    g = model.graph
    by_output = {n.output[0]: n for n in g.node if n.op_type == "Conv"}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in set(n.input):
            readers[i] = readers.get(i, 0) + 1
    pairs = []
    for pw in g.node:
        dw = by_output.get(pw.input[0]) if pw.op_type == "Conv" else None
        if dw is None or readers[pw.input[0]] != 1 or not any(a.name == "group" and a.i > 1 for a in dw.attribute):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pw.attribute}
        if all(v == 1 for v in attrs.get("kernel_shape", [])) and all(v == 1 for v in attrs.get("strides", [])):
            pairs.append((dw, pw))
    return pairs


def assert_idempotent_and_deterministic(model: onnx.ModelProto, result, **options) -> None:
    again = fold(result.model, **options)
    assert not again.rewritten, [r.to_dict() for r in again.rewritten]
    assert again.model.SerializeToString() == result.model.SerializeToString()
    assert fold(model, **options).model.SerializeToString() == result.model.SerializeToString()


def assert_no_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    unused = [t.name for t in model.graph.initializer if t.name not in used]
    assert not unused, unused


def assert_every_conv_recorded(model: onnx.ModelProto, result) -> None:
    convs = [n for n in model.graph.node if n.op_type in CONV_OPS]
    assert len(result.records) == len(convs), [r.to_dict() for r in result.records]
    records_by_node(result)  # one record per conv


# ----------------------------------------------------------------- real exporter output

# name -> (op sequence after --fold separable, after --fuse-separable, pairs in canonical form)
CASES = {
    # PyTorch
    "pt_dwsep1d": ("Conv Conv", "Conv", 1),
    "dwsep1d_m2_ts13": ("Conv Conv", "Conv", 1),
    "dwsep_bn_train_ts13": ("Conv Conv", "Conv", 1),
    "sep_dwsep_bn_dyn18noopt": ("Conv Conv", "Conv", 1),
    "sep_dwsep2d_bn_ts13": ("Conv Conv", "Conv Conv", 1),  # fusion costs 5.76x: refused without --force
    "sep_dwsep3d_m2_ts13": ("Conv Conv", "Conv", 1),
    "sep_affine_between_ts13": ("Conv Conv", "Conv", 1),
    "quartznet_block_ts13": ("Conv Conv Relu Conv Conv Conv Add Relu",) * 2 + (2,),
    "quartznet_block_dyn18": ("Conv Conv Relu Conv Conv Conv Add Relu",) * 2 + (2,),
    "mobilenet_v1_block_ts13": ("Conv Relu Conv Relu",) * 2 + (0,),
    "mobilenet_block_ts13": ("Conv Clip Conv Clip Conv Add",) * 2 + (0,),
    "mobilenet_block_dyn18": ("Conv Clip Conv Clip Conv Add",) * 2 + (0,),
    "conformer_conv_ts13": (
        "ReduceMean Sub Pow ReduceMean Add Sqrt Div Mul Add Transpose Conv Split Sigmoid Mul Conv Sigmoid Mul "
        "Conv Transpose Add",) * 2 + (0,),
    "conformer_conv_dyn18": (
        "LayerNormalization Transpose Conv Split Sigmoid Mul Conv Sigmoid Mul Conv Transpose Add",) * 2 + (0,),
    "sep_convtr_bn_ts13": ("ConvTranspose", "ConvTranspose", 0),
    "sep_pw_stride2_ts13": ("Conv Conv", "Conv Conv", 0),
    "sep_dw_two_consumers_ts13": ("Conv Conv Add", "Conv Conv Add", 0),
    # tf2onnx forms (Keras 3 / tf_keras), optimizer on and off
    "k3_sepconv1d": ("Unsqueeze Transpose Conv Conv Squeeze Transpose",
                     "Unsqueeze Transpose Conv Squeeze Transpose", 1),
    "k3_sepconv1d_m2": ("Unsqueeze Transpose Conv Conv Squeeze Transpose",
                        "Unsqueeze Transpose Conv Squeeze Transpose", 1),
    "k2_sepconv1d": ("Unsqueeze Transpose Conv Conv Squeeze Transpose",
                     "Unsqueeze Transpose Conv Squeeze Transpose", 1),
    "k2_sepconv1d_causal_d2": ("Pad Unsqueeze Transpose Conv Conv Squeeze Transpose",
                               "Pad Unsqueeze Transpose Conv Squeeze Transpose", 1),
    "k3_sepconv1d_noopt": (
        "Cast Reshape Unsqueeze Transpose Reshape Transpose Conv Conv Transpose Squeeze Identity Identity",
        "Cast Reshape Unsqueeze Transpose Conv Transpose Squeeze Identity Identity", 1),
    "k2_sepconv1d_noopt": (
        "Cast Reshape Unsqueeze Transpose Reshape Transpose Conv Conv Transpose Squeeze Identity Identity",
        "Cast Reshape Unsqueeze Transpose Conv Transpose Squeeze Identity Identity", 1),
    "k3_sepconv2d": ("Transpose Conv Conv Transpose", "Transpose Conv Transpose", 1),
    "k3_sepconv2d_noopt": ("Transpose Reshape Transpose Conv Conv Transpose Identity Identity",
                           "Transpose Conv Transpose Identity Identity", 1),
    "k3_dwconv1d": ("Unsqueeze Transpose Conv Squeeze Transpose",) * 2 + (0,),
    "k2_dwconv1d": ("Unsqueeze Transpose Conv Squeeze Transpose",) * 2 + (0,),
    "rank_k3_dwconv1d_noopt": (
        "Cast Reshape Unsqueeze Transpose Reshape Transpose Conv Transpose Squeeze Identity Identity",) * 2 + (0,),
    "k3_dwconv2d_m2_s2": ("Transpose Conv Transpose",) * 2 + (0,),
    "k2_sepconv2d": ("Transpose Conv Conv Transpose", "Transpose Conv Transpose", 1),
    "k2_sepconv2d_noopt": ("Transpose Reshape Transpose Conv Conv Transpose Identity Identity",
                           "Transpose Conv Transpose Identity Identity", 1),
    "k2_dwconv2d": ("Transpose Conv Transpose",) * 2 + (0,),
    # optimizer off: the depthwise bias is an Add on the channels-last tensor ([1,1,1,C*m] / [C*m]), folded
    "k3_dwconv2d_noopt": ("Transpose Reshape Transpose Conv Transpose Identity Identity",) * 2 + (0,),
    "k2_dwconv2d_noopt": ("Transpose Reshape Transpose Conv Transpose Identity Identity",) * 2 + (0,),
    "k2_dwconv1d_noopt": (  # tf_keras DepthwiseConv1D, optimizer off: the bias Add before the Squeeze
        "Cast Reshape Unsqueeze Transpose Reshape Transpose Conv Transpose Squeeze Identity Identity",) * 2 + (0,),
}
SAMPLE_CASES = {  # the real tf2onnx / torch exports next to their mirrors in models/
    "k3_sepconv1d": CASES["k3_sepconv1d"],
    "k3_sepconv2d": CASES["k3_sepconv2d"],
    "k3_dwconv1d": CASES["k3_dwconv1d"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_canonical_form_on_real_models(name):
    model, data = load(name)
    canonical_ops, _, pairs = CASES[name]
    result = fold(model)
    onnx.checker.check_model(result.model, full_check=True)
    assert ops(result.model) == canonical_ops
    assert result.counters["pairs_canonicalized"] <= pairs
    assert absorbable_followers(result.model) == []
    found = separable_pairs(result.model)
    assert len(found) == pairs
    for dw, pw in found:
        assert len(dw.input) == 2, f"{dw.name} kept its bias"
    kinds = {c["name"]: c["kinds"] for c in inventory(result.model)["convolutions"]}
    assert sorted(n for n, k in kinds.items() if "separable-pair" in k) == sorted(
        n.name for pair in found for n in pair)
    feeds = inputs_of(model, data)
    assert_same_outputs(model, result.model, feeds)
    got = run(result.model, feeds)
    for out, value in got.items():
        np.testing.assert_allclose(value, data[out], atol=1e-4, rtol=1e-4)
    assert_every_conv_recorded(model, result)
    assert_no_unused_initializers(result.model)
    assert_idempotent_and_deterministic(model, result)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_form_on_real_models(name):
    model, data = load(name)
    _, fused_ops, pairs = CASES[name]
    result = fold(model, fuse_separable=True)
    onnx.checker.check_model(result.model, full_check=True)
    assert ops(result.model) == fused_ops
    assert result.counters["pairs_fused"] == ops(model).split().count("Conv") - fused_ops.split().count("Conv")
    feeds = inputs_of(model, data)
    assert_same_outputs(model, result.model, feeds, rtol=FUSED_RTOL)
    for rec in result.records:
        if rec.rewritten and "fused" in rec.reason:
            macs = rec.details["macs_per_position"]
            assert macs["fused"] <= 4 * macs["pair"]
            assert f"{macs['pair']} -> {macs['fused']} multiply-adds per output position" in rec.reason
    assert_every_conv_recorded(model, result)
    assert_no_unused_initializers(result.model)
    assert_idempotent_and_deterministic(model, result, fuse_separable=True)


@pytest.mark.parametrize("name", sorted(SAMPLE_CASES))
def test_real_exporter_samples(name):
    path = SAMPLES / f"{name}.onnx"
    if not path.exists():
        pytest.skip("exporter samples not available")
    model, data = onnx.load(str(path)), dict(np.load(str(SAMPLES / f"{name}.npz")))
    canonical_ops, fused_ops, _ = SAMPLE_CASES[name]
    for fuse, expected, rtol in ((False, canonical_ops, 0.0), (True, fused_ops, FUSED_RTOL)):
        result = fold(model, fuse_separable=fuse)
        assert ops(result.model) == expected
        assert absorbable_followers(result.model) == []
        feeds = inputs_of(model, data)
        assert_same_outputs(model, result.model, feeds, rtol=rtol)
        for out, value in run(result.model, feeds).items():
            np.testing.assert_allclose(value, data[out], atol=1e-4, rtol=1e-4)


def test_reasons_on_real_models():
    reasons = {name: records_by_node(fold(load(name)[0])) for name in (
        "mobilenet_v1_block_ts13", "mobilenet_block_ts13", "conformer_conv_ts13", "sep_pw_stride2_ts13",
        "sep_dw_two_consumers_ts13", "k3_dwconv1d", "quartznet_block_ts13")}
    assert reasons["mobilenet_v1_block_ts13"]["/dw/Conv"].reason == "Relu between depthwise and pointwise"
    assert reasons["mobilenet_v1_block_ts13"]["/pw/Conv"].reason == "not depthwise"
    assert reasons["mobilenet_block_ts13"]["/dw/dw.0/Conv"].reason == "Clip between depthwise and pointwise"
    assert reasons["conformer_conv_ts13"]["/dw/Conv"].reason == "depthwise output has 2 consumers (Sigmoid, Mul)"
    assert reasons["sep_pw_stride2_ts13"]["/dw/Conv"].reason == "pointwise conv has stride 2"
    assert reasons["sep_dw_two_consumers_ts13"]["/dw/Conv"].reason == "depthwise output has 2 consumers (Conv, Add)"
    rec = reasons["k3_dwconv1d"]["functional_1/depthwise_conv1d_1/depthwise"]
    assert rec.rewritten and rec.reason.startswith("folded Add functional_1/depthwise_conv1d_1/BiasAdd into the bias")
    assert "is a graph output" in rec.reason
    for label in ("/dw1/Conv", "/pw1/Conv"):
        rec = reasons["quartznet_block_ts13"][label]
        assert not rec.rewritten and rec.reason.startswith("already a canonical separable pair")


def test_what_the_canonical_form_holds():
    """PyTorch pair with BN between: one bias, on the pointwise conv; names and initializers kept in place."""
    model, _ = load("dwsep_bn_train_ts13")
    result = fold(model)
    dw, pw = result.model.graph.node
    assert (dw.name, pw.name) == ("/dw/Conv", "/pw/Conv")
    assert list(dw.input) == ["x", "dw.weight"] and list(pw.input) == ["/dw/Conv_output_0", "pw.weight", "pw.bias"]
    assert sorted(t.name for t in result.model.graph.initializer) == ["dw.weight", "pw.bias", "pw.weight"]
    assert result.counters == {"pairs_canonicalized": 1, "pairs_fused": 0, "batchnorms_folded": 1,
                               "bias_adds_folded": 0, "scale_muls_folded": 0}
    rec = records_by_node(result)["/dw/Conv"]
    assert rec.details["pair"] == {"depthwise": "/dw/Conv", "pointwise": "/pw/Conv"}
    assert rec.details["depthwise_folded"] == ["BatchNormalization /bn/BatchNormalization"]


def test_keras3_add_moves_into_the_pointwise_bias():
    model, _ = load("k3_sepconv1d")
    result = fold(model)
    pw = [n for n in result.model.graph.node if n.op_type == "Conv"][1]
    bias = numpy_helper.to_array({t.name: t for t in result.model.graph.initializer}[pw.input[2]])
    add = next(n for n in model.graph.node if n.op_type == "Add")
    expected = numpy_helper.to_array({t.name: t for t in model.graph.initializer}[add.input[1]]).reshape(-1)
    np.testing.assert_array_equal(bias, expected)
    assert inventory(result.model)["convolutions"][0]["kinds"].count("separable-pair") == 1


def test_inventory_marks_canonical_pairs():
    model, _ = load("k3_sepconv1d_noopt")
    result = fold(model)
    kinds = [c["kinds"] for c in inventory(result.model)["convolutions"]]
    assert all("separable-pair" in k for k in kinds) and len(kinds) == 2


def test_force_fuses_the_expensive_pairs():
    """Through the public API (convrewrite.rewrite): over 4x the pair's multiply-adds needs force=True."""
    model, data = load("quartznet_block_ts13")
    result = rewrite(model, passes=["separable"], fuse_separable=True)
    assert result.counters["pairs_fused"] == 0
    assert result.model.SerializeToString() == model.SerializeToString()
    rec = records_by_node(result)["/dw1/Conv"]
    assert "not fused: fusion costs 216 -> 1408 multiply-adds per output position (6.52x)" in rec.reason
    assert "use --force" in rec.reason
    forced = rewrite(model, passes=["separable"], fuse_separable=True, force=True)
    assert forced.counters["pairs_fused"] == 2
    assert ops(forced.model) == "Conv Relu Conv Conv Add Relu"
    assert_same_outputs(model, forced.model, inputs_of(model, data), rtol=FUSED_RTOL)
    fused = next(n for n in forced.model.graph.node if n.op_type == "Conv")
    assert fused.name == "/pw1/Conv"
    attrs = {a.name: helper.get_attribute_value(a) for a in fused.attribute}
    assert attrs["group"] == 1 and attrs["kernel_shape"] == [11] and attrs["pads"] == [5, 5]


def test_fused_weight_is_the_documented_formula():
    """W[o, c, :] = sum_j P[o, c*m + j] * D[c*m + j, 0, :], bias Bp + P @ Bd (multiplier 2, both biases)."""
    model, data = load("dwsep1d_m2_ts13")
    values = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    dw, pw = model.graph.node
    d, bd, p, bp = (values[n] for n in (dw.input[1], dw.input[2], pw.input[1], pw.input[2]))
    c = {a.name: a.i for a in dw.attribute}["group"]
    mult = d.shape[0] // c
    want = np.zeros((p.shape[0], c, d.shape[2]))
    for o in range(p.shape[0]):
        for ch in range(c):
            for j in range(mult):
                want[o, ch] += p[o, ch * mult + j, 0] * d[ch * mult + j, 0]
    result = fold(model, fuse_separable=True)
    (fused,) = result.model.graph.node
    got = {t.name: numpy_helper.to_array(t) for t in result.model.graph.initializer}
    np.testing.assert_allclose(got[fused.input[1]], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[fused.input[2]], bp + p[:, :, 0] @ bd, rtol=1e-6, atol=1e-7)
    assert fused.name == pw.name
    assert {a.name: helper.get_attribute_value(a) for a in fused.attribute}["group"] == 1
    assert_same_outputs(model, result.model, inputs_of(model, data), rtol=FUSED_RTOL)


def test_cli_fuse_separable_and_force(tmp_path):
    """The CLI: --fold separable alone, --fuse-separable (refused over 4x), --fuse-separable --force, --fold all."""
    from click.testing import CliRunner
    import json

    from convrewrite.cli import main

    src = MODELS / "quartznet_block_ts13.onnx"
    model, data = load("quartznet_block_ts13")
    before = src.read_bytes()

    def cli(*args):
        out, report = tmp_path / f"out{len(list(tmp_path.iterdir()))}.onnx", tmp_path / "report.json"
        r = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(out), "--report", str(report), *args],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return onnx.load(str(out)), json.loads(report.read_text())

    refused, report = cli("--fold", "separable", "--fuse-separable")
    assert ops(refused) == ops(model)
    dw1 = next(r for r in report["records"] if r["node"] == "/dw1/Conv")
    assert dw1["details"]["macs_per_position"] == {"pair": 216, "fused": 1408}
    assert "more than 4x the pair (use --force)" in dw1["reason"]
    for args in (["--fold", "separable"], ["--fold", "all"]):
        forced, report = cli(*args, "--fuse-separable", "--force")
        assert ops(forced) == "Conv Relu Conv Conv Add Relu"
        assert report["summary"]["counters"]["pairs_fused"] == 2 and "separable" in report["passes"]
        assert_same_outputs(model, forced, inputs_of(model, data), rtol=FUSED_RTOL)
    assert src.read_bytes() == before


def test_fold_all_and_the_api():
    model, data = load("k3_sepconv1d_noopt")
    result = rewrite(model, passes=["all"], fuse_separable=True)
    assert "separable" in result.passes
    assert ops(result.model).count("Conv") == 1
    assert_same_outputs(model, result.model, inputs_of(model, data), rtol=FUSED_RTOL)


def test_selection_excludes_one_member_of_a_pair():
    model, _ = load("dwsep1d_m2_ts13")
    result = run_passes(model, ["separable"], only={"separable:main:/dw/Conv"})
    recs = records_by_node(result)
    assert recs["/dw/Conv"].reason == "pointwise conv /pw/Conv is excluded by selection"
    assert recs["/pw/Conv"].reason == "excluded by selection"
    assert result.model.SerializeToString() == model.SerializeToString()
    result = run_passes(model, ["separable"], only=set())
    assert all(r.reason == "excluded by selection" for r in result.records) and len(result.records) == 2


# ----------------------------------------------------------------- built graphs


def rand(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def bn_inits(rng, prefix, c, dtype=np.float32):
    return [init(f"{prefix}.s", (rng.random(c) + 0.5).astype(dtype)), init(f"{prefix}.b", rand(rng, c).astype(dtype)),
            init(f"{prefix}.m", rand(rng, c).astype(dtype)), init(f"{prefix}.v", (rng.random(c) + 0.5).astype(dtype))]


def bn_node(x, out, prefix, **attrs):
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}.{p}" for p in "sbmv"], [out],
                            name=prefix, **attrs)


def test_batchnorm_whose_output_is_a_graph_output():
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1]), bn_node("c", "y", "bn")]
    inits = [init("w", rand(rng, 6, 4, 3))] + bn_inits(rng, "bn", 6)
    model = make_model(nodes, [vi("x", [1, 4, 16])], [vi("y", [1, 6, 16])], inits)
    result = fold(model)
    assert ops(result.model) == "Conv" and result.model.graph.node[0].output[0] == "y"
    assert result.counters["batchnorms_folded"] == 1
    rec = records_by_node(result)["conv"]
    assert rec.rewritten and rec.reason == "folded BatchNormalization bn into the weights and bias; not depthwise"
    assert_same_outputs(model, result.model)
    assert_idempotent_and_deterministic(model, result)


@pytest.mark.parametrize("case", ["training_mode", "extra_outputs", "not_constant", "two_readers", "channels_moved",
                                  "conv_is_output"])
def test_batchnorm_left_alone(case):
    rng = np.random.default_rng(2)
    w = init("w", rand(rng, 4, 4, 3))
    inits = [w] + bn_inits(rng, "bn", 4)
    inputs, outputs = [vi("x", [1, 4, 16])], [vi("y", [1, 4, 16])]
    opset = 13
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1])
    if case == "training_mode":
        opset = 15
        nodes = [conv, bn_node("c", "y", "bn", training_mode=1)]
        expected = "training_mode=1"
    elif case == "extra_outputs":  # opset 9-13 training form: running and saved statistics as outputs
        bn = bn_node("c", "y", "bn")
        bn.output.extend(["mean", "var", "saved_mean", "saved_var"])
        nodes = [conv, bn]
        outputs += [vi(n, [4]) for n in ("mean", "var", "saved_mean", "saved_var")]
        expected = "BatchNormalization bn kept: it has running-statistics outputs (training mode)"
    elif case == "not_constant":
        inits = [t for t in inits if t.name != "bn.m"]
        inputs.append(vi("bn.m", [4]))
        nodes = [conv, bn_node("c", "y", "bn")]
        expected = "its mean is not a constant"
    elif case == "two_readers":
        nodes = [conv, bn_node("c", "y", "bn"), helper.make_node("Relu", ["c"], ["r"])]
        outputs.append(vi("r", [1, 4, 16]))
        expected = "not depthwise"
    elif case == "channels_moved":
        nodes = [conv, helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1]),
                 helper.make_node("BatchNormalization", ["t", "bs", "bb", "bm", "bv"], ["y"], name="bn")]
        inits = [w] + [init(n, (rng.random(16) + 0.5).astype(np.float32)) for n in ("bs", "bb", "bm", "bv")]
        outputs = [vi("y", [1, 16, 4])]
        expected = "where the conv's channels are on axis 2"
    else:
        nodes = [conv, bn_node("c", "y", "bn")]
        outputs.append(vi("c", [1, 4, 16]))
        expected = "not depthwise"
    model = make_model(nodes, inputs, outputs, inits, opset=opset)
    result = fold(model)
    assert "BatchNormalization" in ops(result.model)
    assert not result.rewritten
    assert expected in result.records[0].reason
    assert result.model.SerializeToString() == model.SerializeToString()


@pytest.mark.parametrize("op,const_shape,data_first", [
    ("Add", [1, 6, 1], True), ("Add", [6, 1], False), ("Add", [], True), ("Sub", [1, 6, 1], True),
    ("Sub", [6, 1], False), ("Mul", [1, 6, 1], True), ("Mul", [], False),
])
def test_per_channel_constant_after_a_conv(op, const_shape, data_first):
    rng = np.random.default_rng(3)
    const = (rng.random(const_shape) + 0.5).astype(np.float32)
    operands = ["c", "k"] if data_first else ["k", "c"]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node(op, operands, ["y"], name="follower")]
    inits = [init("w", rand(rng, 6, 4, 3)), init("b", rand(rng, 6)), init("k", const)]
    model = make_model(nodes, [vi("x", [1, 4, 16])], [vi("y", [1, 6, 16])], inits)
    result = fold(model)
    assert ops(result.model) == "Conv"
    counter = "scale_muls_folded" if op == "Mul" else "bias_adds_folded"
    assert result.counters[counter] == 1
    assert_same_outputs(model, result.model)
    assert_no_unused_initializers(result.model)
    assert_idempotent_and_deterministic(model, result)


@pytest.mark.parametrize("const_shape,length", [([1, 1, 16], 16), ([1, 6, 16], 16), ([2, 6, 1], 16), ([6], 6),
                                                 ([1, 1, 6, 1], 16)])
def test_constant_that_is_not_per_channel_stays(const_shape, length):
    """[6] on [1, 6, 6] broadcasts along the length axis, not the channels: not a bias."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("Add", ["c", "k"], ["y"], name="add")]
    out = [2 if const_shape[0] == 2 else 1, 6, length]
    if len(const_shape) == 4:
        out = [1] + out
    model = make_model(nodes, [vi("x", [1, 4, length])], [vi("y", out)],
                       [init("w", rand(rng, 6, 4, 3)), init("k", rand(rng, *const_shape))])
    result = fold(model)
    assert ops(result.model) == "Conv Add" and not result.rewritten
    assert f"Add add kept: its constant of shape {const_shape} is not per-channel" in result.records[0].reason
    assert result.model.SerializeToString() == model.SerializeToString()


@pytest.mark.parametrize("const_shape", [[6], [1, 1, 6]])
def test_per_channel_constant_after_a_layout_change(const_shape):
    """Conv -> Transpose to channels-last -> Add([C]): the channel axis is tracked, the Add becomes the bias."""
    rng = np.random.default_rng(15)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Add", ["t", "k"], ["y"], name="add")]
    model = make_model(nodes, [vi("x", [1, 4, 6])], [vi("y", [1, 6, 6])],
                       [init("w", rand(rng, 6, 4, 3)), init("b", rand(rng, 6)), init("k", rand(rng, *const_shape))])
    result = fold(model)
    assert ops(result.model) == "Conv Transpose" and result.counters["bias_adds_folded"] == 1
    assert_same_outputs(model, result.model)
    assert_idempotent_and_deterministic(model, result)


@pytest.mark.parametrize("group", [1, 2, 4])
def test_batchnorm_into_grouped_conv_transpose(group):
    rng = np.random.default_rng(5)
    cin, cout = 8, 12
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], name="up", group=group, strides=[2],
                              pads=[1, 1]),
             bn_node("c", "y", "bn")]
    inits = [init("w", rand(rng, cin, cout // group, 4)), init("b", rand(rng, cout))] + bn_inits(rng, "bn", cout)
    model = make_model(nodes, [vi("x", [1, cin, 8])], [vi("y", [1, cout, 16])], inits)
    result = fold(model)
    assert ops(result.model) == "ConvTranspose"
    assert_same_outputs(model, result.model)


def pair_model(rng, *, c=4, m=1, co=6, k=(3,), dw_bias=True, pw_bias=True, between=(), opset=13,
               dtype=np.float32, dw_attrs=None, length=12):
    """x -> depthwise conv -> [between ops] -> pointwise conv -> y (1-D, 2-D or 3-D)."""
    rank = len(k)
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    attrs = dw_attrs if dw_attrs is not None else {"pads": [kk // 2 for kk in k] * 2}
    inits = [init("dw.w", rand(rng, c * m, 1, *k).astype(dtype)),
             init("pw.w", rand(rng, co, c * m, *([1] * rank)).astype(dtype))]
    dw_in = ["x", "dw.w"]
    if dw_bias:
        inits.append(init("dw.b", rand(rng, c * m).astype(dtype)))
        dw_in.append("dw.b")
    nodes = [helper.make_node("Conv", dw_in, ["d"], name="dw", group=c, **attrs)]
    h = "d"
    for i, op in enumerate(between):
        out = f"h{i}"
        if op == "BN":
            inits += bn_inits(rng, f"bn{i}", c * m, dtype)
            nodes.append(bn_node(h, out, f"bn{i}"))
        elif op == "Relu":
            nodes.append(helper.make_node("Relu", [h], [out], name=f"relu{i}"))
        elif op.startswith("Transpose"):
            perm = [int(p) for p in op.split(":")[1]]
            nodes.append(helper.make_node("Transpose", [h], [out], name=f"t{i}", perm=perm))
        else:
            inits.append(init(f"k{i}", (rng.random((c * m,) + (1,) * rank) + 0.5).astype(dtype)))
            nodes.append(helper.make_node(op, [h, f"k{i}"], [out], name=f"{op.lower()}{i}"))
        h = out
    pw_in = [h, "pw.w"] + (["pw.b"] if pw_bias else [])
    if pw_bias:
        inits.append(init("pw.b", rand(rng, co).astype(dtype)))
    nodes.append(helper.make_node("Conv", pw_in, ["y"], name="pw"))
    x = vi("x", [1, c] + [length] * rank, elem)
    y = vi("y", [1, co] + out_lengths(length, k, attrs), elem)
    return make_model(nodes, [x], [y], inits, opset=opset)


def out_lengths(length: int, kernel, attrs: dict) -> list[int]:
    rank = len(kernel)
    strides = attrs.get("strides", [1] * rank)
    if attrs.get("auto_pad", "NOTSET").startswith("SAME"):
        return [-(-length // s) for s in strides]
    dilations, pads = attrs.get("dilations", [1] * rank), attrs.get("pads", [0] * 2 * rank)
    return [output_length(length, kk, s, d, pads[i], pads[rank + i])
            for i, (kk, s, d) in enumerate(zip(kernel, strides, dilations))]


def test_cancelling_transposes_are_removed_but_not_others():
    rng = np.random.default_rng(6)
    model = pair_model(rng, k=(3, 3), between=("Transpose:0231", "BN", "Transpose:0312"))
    result = fold(model)
    assert "BatchNormalization" in ops(result.model)  # BN reads channels on axis 3 there: not foldable
    model = pair_model(rng, k=(3, 3), between=("Transpose:0231", "Transpose:0312", "BN"))
    result = fold(model)
    assert ops(result.model) == "Conv Conv"
    assert "removed Transpose -> Transpose between the convs" in result.records[0].reason
    assert_same_outputs(model, result.model)
    model = pair_model(rng, c=4, co=4, k=(3, 3), length=4, between=("Transpose:0132",))
    result = fold(model)
    assert "do not cancel" in result.records[0].reason and not result.rewritten


def test_relu_between_blocks_the_pair():
    model = pair_model(np.random.default_rng(7), between=("Relu",))
    result = fold(model, fuse_separable=True)
    assert records_by_node(result)["dw"].reason == "Relu between depthwise and pointwise"
    assert result.model.SerializeToString() == model.SerializeToString()


def test_shared_weights_get_new_initializers():
    """Two pairs share every weight and bias: nothing shared is changed in place."""
    rng = np.random.default_rng(8)
    inits = [init("dw.w", rand(rng, 4, 1, 3)), init("dw.b", rand(rng, 4)), init("pw.w", rand(rng, 6, 4, 1)),
             init("pw.b", rand(rng, 6))]
    nodes = []
    for i in range(2):
        nodes += [helper.make_node("Conv", [f"x{i}", "dw.w", "dw.b"], [f"d{i}"], name=f"dw{i}", group=4, pads=[1, 1]),
                  helper.make_node("Conv", [f"d{i}", "pw.w", "pw.b"], [f"y{i}"], name=f"pw{i}")]
    nodes.append(helper.make_node("Conv", ["x0", "pw.w"], ["z"], name="user_of_pw_weight", kernel_shape=[1]))
    model = make_model(nodes, [vi("x0", [1, 4, 12]), vi("x1", [1, 4, 12])],
                       [vi("y0", [1, 6, 12]), vi("y1", [1, 6, 12]), vi("z", [1, 6, 12])], inits)
    result = fold(model)
    assert result.counters["pairs_canonicalized"] == 2
    names = [t.name for t in result.model.graph.initializer]
    assert len(names) == len(set(names))
    assert "dw.b" not in names  # no reader left
    pw_biases = [n.input[2] for n in result.model.graph.node if n.name.startswith("pw")]
    assert pw_biases == ["pw0_bias", "pw.b"]  # a new one while shared, then in place for the last reader
    original = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for t in result.model.graph.initializer:
        if t.name in ("dw.w", "pw.w"):
            np.testing.assert_array_equal(numpy_helper.to_array(t), original[t.name])
    assert_same_outputs(model, result.model)
    assert_idempotent_and_deterministic(model, result)


def test_depthwise_output_that_is_a_graph_output():
    model = pair_model(np.random.default_rng(9))
    model.graph.output.append(vi("d", [1, 4, 12]))
    result = fold(model)
    assert records_by_node(result)["dw"].reason == "depthwise output is a graph output"
    assert not result.rewritten


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_weights_keep_their_dtype(dtype):
    rng = np.random.default_rng(10)
    # float64 is checked with onnx's reference evaluator (onnxruntime CPU has no double Conv), whose
    # BatchNormalization does not follow the spec formula here: Mul/Add stand in for the BN there.
    model = pair_model(rng, between=("BN", "Mul") if dtype == np.float16 else ("Mul", "Add"), dtype=dtype)
    for fuse in (False, True):
        result = fold(model, fuse_separable=fuse)
        assert ops(result.model) == ("Conv" if fuse else "Conv Conv")
        wanted = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        assert {t.data_type for t in result.model.graph.initializer} == {wanted}
        note = result.records[0].details.get("arithmetic")
        assert note == (None if dtype == np.float64 else f"computed in float64, stored as {np.dtype(dtype)}")
        if dtype == np.float16:
            assert_same_outputs(model, result.model, atol=2e-2, rtol=1e-2)
        else:  # onnxruntime CPU has no double Conv: the reference evaluator checks the arithmetic
            x = {"x": np.random.default_rng(0).standard_normal((1, 4, 12))}
            want, got = ReferenceEvaluator(model).run(None, x)[0], ReferenceEvaluator(result.model).run(None, x)[0]
            np.testing.assert_allclose(got, want, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("with_bn", [True, False])
def test_computed_weight_too_large_to_fold(with_bn):
    """A depthwise weight computed by Reshape -> Transpose with more than FOLD_MAX_ELEMENTS elements."""
    rng = np.random.default_rng(11)
    c, k = 512, 129
    assert c * k > FOLD_MAX_ELEMENTS
    inits = [init("kernel", rand(rng, 1, k, c, 1, scale=0.05)), init("shape", np.array([1, k, 1, c], np.int64)),
             init("dw.b", rand(rng, c)), init("pw.w", rand(rng, 8, c, 1, 1, scale=0.05))] + bn_inits(rng, "bn", c)
    nodes = [helper.make_node("Reshape", ["kernel", "shape"], ["kr"]),
             helper.make_node("Transpose", ["kr"], ["kw"], perm=[3, 2, 0, 1]),
             helper.make_node("Conv", ["x", "kw", "dw.b"], ["d"], name="dw", group=c, kernel_shape=[1, k],
                              pads=[0, k // 2, 0, k // 2])]
    if with_bn:
        nodes.append(bn_node("d", "n", "bn"))
    else:
        inits = inits[:4]
    nodes.append(helper.make_node("Conv", ["n" if with_bn else "d", "pw.w"], ["y"], name="pw"))
    model = make_model(nodes, [vi("x", [1, c, 1, 8])], [vi("y", [1, 8, 1, 8])], inits)
    result = fold(model, fuse_separable=True, force=True)
    rec = records_by_node(result)["dw"]
    weight_reason = (f"the conv's weight is computed by Transpose and does not fold to a constant "
                     f"(chains are folded up to {FOLD_MAX_ELEMENTS} elements)")
    if with_bn:
        assert rec.reason == ("BatchNormalization between depthwise and pointwise; "
                              f"BatchNormalization bn kept: {weight_reason}")
        assert ops(result.model) == "Reshape Transpose Conv BatchNormalization Conv"
    else:  # the bias still moves (that needs the pointwise weight only); fusion needs the depthwise weight
        assert rec.rewritten and f"not fused: {weight_reason}" in rec.details["not_done"]
        assert ops(result.model) == "Reshape Transpose Conv Conv"
    assert_same_outputs(model, result.model)
    assert_idempotent_and_deterministic(model, result, fuse_separable=True, force=True)


def test_pair_inside_if_branch_and_function():
    rng = np.random.default_rng(12)
    inner = pair_model(rng, between=("BN",))
    then_graph = helper.make_graph(list(inner.graph.node), "then", [], [vi("y", [1, 6, 12])])
    else_graph = helper.make_graph([helper.make_node("Identity", ["alt"], ["e"])], "else", [], [vi("e", [1, 6, 12])])
    if_node = helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph)
    model = make_model([if_node], [vi("cond", [], TensorProto.BOOL), vi("x", [1, 4, 12])], [vi("out", [1, 6, 12])],
                       list(inner.graph.initializer) + [init("alt", rand(rng, 1, 6, 12))])
    result = fold(model)
    assert result.counters["pairs_canonicalized"] == 1 and result.counters["batchnorms_folded"] == 1
    body = next(a.g for a in result.model.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in body.node] == ["Conv", "Conv"] and len(body.node[0].input) == 2
    assert sorted(t.name for t in result.model.graph.initializer) == ["alt", "pw.w"]  # read by no one else
    assert sorted(t.name for t in body.initializer) == ["dw_weight", "pw_bias"]
    onnx.checker.check_model(result.model, full_check=True)
    x = feeds_for(model)["x"]
    for cond in (True, False):
        assert_same_outputs(model, result.model, {"cond": np.array(cond), "x": x})
    assert_idempotent_and_deterministic(model, result)

    # the same pair in a model-local function (weights are Constant nodes there)
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in inner.graph.initializer]
    fn = helper.make_function("local", "SepBlock", ["x"], ["y"], consts + list(inner.graph.node),
                              [helper.make_opsetid("", 13)])
    call = helper.make_node("SepBlock", ["x"], ["y"], domain="local")
    model = helper.make_model(helper.make_graph([call], "g", [vi("x", [1, 4, 12])], [vi("y", [1, 6, 12])]),
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
                              functions=[fn], ir_version=8)
    result = fold(model, fuse_separable=True)
    assert result.counters["pairs_fused"] == 1
    body = result.model.functions[0].node
    assert [n.op_type for n in body if n.op_type != "Constant"] == ["Conv"]
    assert len([n for n in body if n.op_type == "Constant"]) == 2  # the fused weight and bias only
    assert_same_outputs(model, result.model, rtol=FUSED_RTOL)
    assert_idempotent_and_deterministic(model, result, fuse_separable=True)


def test_auto_pad_pairs():
    rng = np.random.default_rng(13)
    model = pair_model(rng, k=(3, 3), dw_attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]}, length=9)
    result = fold(model, fuse_separable=True)
    assert ops(result.model) == "Conv"
    fused = result.model.graph.node[0]
    assert {a.name: helper.get_attribute_value(a) for a in fused.attribute}["auto_pad"] == b"SAME_UPPER"
    assert_same_outputs(model, result.model, rtol=FUSED_RTOL)


def test_quantized_convs_are_recorded():
    rng = np.random.default_rng(14)
    nodes = [helper.make_node("ConvInteger", ["x", "w"], ["y"], name="qconv")]
    model = make_model(nodes, [vi("x", [1, 2, 8], TensorProto.UINT8)], [vi("y", [1, 2, 6], TensorProto.INT32)],
                       [init("w", rng.integers(0, 5, (2, 2, 3)).astype(np.uint8))])
    result = fold(model)
    assert result.records[0].reason.startswith("quantized convolution (ConvInteger): its int32 output is dequantized")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rank=st.integers(1, 3), c=st.integers(1, 4), m=st.integers(1, 3), co=st.integers(1, 5),
    k=st.integers(1, 3), stride=st.integers(1, 2), dilation=st.integers(1, 2), dw_bias=st.booleans(),
    pw_bias=st.booleans(), between=st.lists(st.sampled_from(["BN", "Mul", "Add", "Sub"]), max_size=2),
    fuse=st.booleans(),
)
def test_random_pairs_stay_exact(rank, c, m, co, k, stride, dilation, dw_bias, pw_bias, between, fuse):
    c += 1  # group must be > 1 for a depthwise conv
    rng = np.random.default_rng(rank * 1000 + c * 100 + m * 10 + k)
    attrs = {"strides": [stride] * rank, "dilations": [dilation] * rank, "pads": [dilation * (k // 2)] * 2 * rank}
    model = pair_model(rng, c=c, m=m, co=co, k=(k,) * rank, dw_bias=dw_bias, pw_bias=pw_bias,
                       between=tuple(between), dw_attrs=attrs, length=6 if rank == 3 else 9)
    result = fold(model, fuse_separable=fuse, force=True)
    assert result.counters["pairs_fused" if fuse else "pairs_canonicalized"] + len(
        [r for r in result.records if not r.rewritten]) >= 1
    assert ops(result.model) == ("Conv" if fuse else "Conv Conv")
    assert_same_outputs(model, result.model, rtol=FUSED_RTOL if fuse else 1e-5)
    again = fold(result.model, fuse_separable=fuse, force=True)
    assert not again.rewritten


# ----------------------------------------------------------------- linear time


def chain_of_pairs(pairs: int, c: int = 4, bn: bool = True) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(pairs):
        inits += [init(f"dw{i}.w", rand(rng, c, 1, 3)), init(f"dw{i}.b", rand(rng, c)),
                  init(f"pw{i}.w", rand(rng, c, c, 1)), init(f"pw{i}.b", rand(rng, c))]
        nodes.append(helper.make_node("Conv", [x, f"dw{i}.w", f"dw{i}.b"], [f"d{i}"], name=f"dw{i}", group=c,
                                      pads=[1, 1]))
        h = f"d{i}"
        if bn:
            inits += bn_inits(rng, f"bn{i}", c)
            nodes.append(bn_node(h, f"n{i}", f"bn{i}"))
            h = f"n{i}"
        nodes.append(helper.make_node("Conv", [h, f"pw{i}.w", f"pw{i}.b"], [f"p{i}"], name=f"pw{i}"))
        x = f"p{i}"
    graph = helper.make_graph(nodes, "g", [vi("x", [1, c, 16])], [vi(x, [1, c, 16])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_5000_layer_chain():
    model = chain_of_pairs(2500, bn=False)
    ctx = PassContext(model, PassOptions())
    SeparablePass().run(ctx)  # its speed: benchmarks/bench_engine.py and bench_wide_dag.py, not a timed test
    assert ctx.counters["pairs_canonicalized"] == 2500 and len(ctx.records) == 5000


def test_chain_with_batchnorms():
    for pairs in (500, 2000):
        ctx = PassContext(chain_of_pairs(pairs), PassOptions(fuse_separable=True))
        SeparablePass().run(ctx)
        assert ctx.counters["pairs_fused"] == pairs and ctx.counters["batchnorms_folded"] == pairs
