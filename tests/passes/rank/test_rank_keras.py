"""tf2onnx's Keras 1D forms lowered to the 1D convs they are; the Keras channels-as-spatial equivalence.

exporter-patterns.md section 1: every Keras Conv1D / SeparableConv1D /
DepthwiseConv1D / Conv1DTranspose arrives as
`Unsqueeze -> Transpose(0,3,1,2) -> Conv(1 x k) -> Squeeze(2) -> Add(bias) -> Transpose(0,2,1)`
(optimizer off: computed axes and weights, Transposes not cancelled,
`Transpose(0,2,3,1) -> Squeeze(-3)`). After `to-1d` only 1D convs remain,
with no Unsqueeze or Squeeze and no bias Add, and only the 3D Transposes the
NWC graph input and output need.
"""

from __future__ import annotations

import onnx
import pytest
from onnx import helper

from test_rank import conv_nodes, conv_rank, data_ops, load_case, ops, rewrite_checked
from util import MODELS, SAMPLES

FORMS_1D = ("conv1d", "sepconv1d", "dwconv1d", "conv1dtr", "tcn")
# TF's SpaceToBatch lowering of dilated 'same' convs on dynamic shapes (exporter-patterns.md section 3) is
# the dilated pass's to fold: there the unit axis hides behind computed Reshapes and cannot be proven.
SPACE_TO_BATCH = ("same_dyn", "norewrite")
KERAS = sorted(p for p in list(MODELS.glob("k[23]_*.onnx")) + list(MODELS.glob("rank_k3_*.onnx")) + list(SAMPLES.glob("k3_*.onnx"))
               if any(f in p.stem for f in FORMS_1D) and not any(f in p.stem for f in SPACE_TO_BATCH))
IDS = [p.parent.name[:7] + "/" + p.stem for p in KERAS]


def constant_operands(model: onnx.ModelProto) -> set[str]:
    return {t.name for t in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}


@pytest.mark.parametrize("path", KERAS, ids=IDS)
def test_keras_1d_forms_lower_to_1d_convs(path):
    model, feeds = load_case(path)
    result = rewrite_checked(model, ["to-1d"], "h", feeds)
    errors = result.errors
    assert all(e == 0.0 for e in errors.values()), errors  # bit-exact on onnxruntime CPU
    assert all(r.rewritten for r in result.records), [(r.node, r.reason) for r in result.skipped]
    assert all(conv_rank(n, result.model) == 1 for n in conv_nodes(result.model))
    kinds = ops(result.model)
    assert "Unsqueeze" not in kinds and "Squeeze" not in kinds
    assert kinds.count("Transpose") <= ops(model).count("Transpose")
    g = result.model.graph
    consts = constant_operands(result.model)
    producers = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:
        if n.op_type == "Add":  # every bias Add is folded; residual Adds stay
            assert not any(i in consts for i in n.input), f"bias Add {n.name} left"
        if n.op_type == "Transpose":
            assert list(helper.get_attribute_value(n.attribute[0])) == [0, 2, 1]
            # NWC <-> NCW next to a conv: the layout change the NWC graph I/O needs.
            near_conv = producers.get(n.input[0]) is not None and producers[n.input[0]].op_type in ("Conv", "ConvTranspose")
            near_conv = near_conv or any(c.op_type in ("Conv", "ConvTranspose") for c in consumers.get(n.output[0], []))
            assert near_conv, n.name
    assert result.counters.get("bias_adds_folded", 0) == sum(
        1 for n in model.graph.node if n.op_type == "Add" and any(i in constant_operands(model) for i in n.input))


@pytest.mark.parametrize("name, expected", [
    ("k3_conv1d_noopt", ["Transpose", "Conv", "Transpose", "Identity", "Identity"]),
    ("k3_sepconv1d_noopt", ["Transpose", "Conv", "Conv", "Transpose", "Identity", "Identity"]),
    ("rank_k3_dwconv1d_noopt", ["Transpose", "Conv", "Transpose", "Identity", "Identity"]),
    ("rank_k3_conv1dtr_noopt", ["Transpose", "ConvTranspose", "Transpose", "Identity", "Identity"]),
    ("k3_conv1d", ["Transpose", "Conv", "Transpose"]),
    ("k3_conv1d_causal", ["Pad", "Transpose", "Conv", "Transpose"]),
    ("k3_tcn", ["Pad", "Transpose", "Conv", "Relu", "Pad", "Conv", "Transpose", "Add", "Relu",
                "Pad", "Transpose", "Conv", "Relu", "Pad", "Conv", "Transpose", "Add", "Relu"]),
])
def test_keras_forms_exact_sequences(name, expected):
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{name} not built yet")
    model, feeds = load_case(path)
    result = rewrite_checked(model, ["to-1d"], "h", feeds)
    assert data_ops(result.model) == expected
    assert not result.model.graph.value_info or all(
        v.name in {o for n in result.model.graph.node for o in n.output} for v in result.model.graph.value_info)


def test_pytorch_unsqueeze_conv2d_squeeze_is_lowered():
    for stem in ("rank_unsq2_conv2d_ts13", "rank_unsq2_conv2d_ts9", "rank_unsqm1_conv2d_ts13", "rank_unsqm1_conv2d_dyn18"):
        model, feeds = load_case(MODELS / f"{stem}.onnx")
        result = rewrite_checked(model, ["to-1d"], "h", feeds)
        assert data_ops(result.model) == ["Conv", "Relu", "Conv"], stem
        assert result.counters["pairs_cancelled"] == 2


def test_real_h1_conv2d_keeps_its_io():
    path = MODELS / "k3_conv2d_h1.onnx"
    if not path.exists():
        pytest.skip("k3_conv2d_h1 not built yet")
    model, feeds = load_case(path)
    result = rewrite_checked(model, ["to-1d"], "h", feeds)
    assert all(conv_rank(n, result.model) == 1 for n in conv_nodes(result.model))


# ------------------------------------------------------------ channels as spatial


def test_spatial_as_channels_lowers_keras_kernel_spanning_input_dim():
    path = MODELS / "k3_conv2d_kinput.onnx"
    if not path.exists():
        pytest.skip("k3_conv2d_kinput not built yet")
    model, feeds = load_case(path)
    result = rewrite_checked(model, ["spatial-as-channels"], "h", feeds)
    assert data_ops(result.model) == ["Transpose", "Conv", "Transpose"]
    (record,) = result.records
    assert record.rewritten and record.after["kernel_shape"] == [3]
    conv = next(n for n in result.model.graph.node if n.op_type == "Conv")
    weight = next(t for t in result.model.graph.initializer if t.name == conv.input[1])
    assert list(weight.dims) == [16, 8, 3]
    back = rewrite_checked(result.model, ["channels-as-spatial"], "h", feeds)
    assert data_ops(back.model) == ["Transpose", "Unsqueeze", "Conv", "Squeeze", "Transpose"]


@pytest.mark.parametrize("stem", ["conv1d_chain_ts13", "whisper_frontend_ts13", "rank_chain_op13", "rank_chain_op7"])
def test_channels_as_spatial_round_trip(stem):
    model, feeds = load_case(MODELS / f"{stem}.onnx")
    result = rewrite_checked(model, ["channels-as-spatial"], "h", feeds)
    for record, node in zip(result.records, conv_nodes(model)):
        if record.rewritten:
            assert record.after["kernel_shape"][1:] == record.before["kernel_shape"]
            assert record.after["pads"] == [0, record.before["pads"][0], 0, record.before["pads"][1]]
    convs = conv_nodes(result.model)
    assert all(conv_rank(n, result.model) == 2 for n in convs)
    back = rewrite_checked(result.model, ["spatial-as-channels"], "h", feeds)
    assert data_ops(back.model) == data_ops(model)


def test_channels_as_spatial_reasons():
    model, feeds = load_case(MODELS / "quartznet_block_ts13.onnx")
    result = rewrite_checked(model, ["channels-as-spatial"], "h", feeds)
    reasons = {r.reason for r in result.skipped}
    assert any(r.startswith("group is") for r in reasons)
