"""Rank passes (to-2d, to-1d, to-3d, 3d-to-2d) on hand-built graphs: regions, weights, records, opsets.

The helpers at the top are shared by the other test_rank_*.py files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import convrewrite
from convrewrite.conv import CONV_OPS
from convrewrite.graph import subgraphs
from convrewrite.passes import available_passes

from util import MODELS, assert_same_outputs, feeds_for, init, make_model, run, vi

RANK_PASSES = ("to-2d", "to-1d", "to-3d", "3d-to-2d")


# ---------------------------------------------------------------- shared helpers


def all_graphs(model: onnx.ModelProto):
    """(graph or function, path-ish label) for every body, iteratively."""
    stack = [model.graph] + [f for f in model.functions]
    while stack:
        g = stack.pop()
        yield g
        for n in g.node:
            stack.extend(b for _, b in subgraphs(n))


def conv_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for g in all_graphs(model) for n in g.node if n.op_type in CONV_OPS and n.domain in ("", "ai.onnx")]


def conv_rank(node: onnx.NodeProto, model: onnx.ModelProto) -> int | None:
    ks = [a for a in node.attribute if a.name == "kernel_shape"]
    if ks:
        return len(ks[0].ints)
    slot = 3 if node.op_type == "QLinearConv" else 1
    for g in all_graphs(model):
        for t in getattr(g, "initializer", []):
            if t.name == node.input[slot]:
                return len(t.dims) - 2
    return None


def ops(model: onnx.ModelProto, graph=None) -> list[str]:
    g = graph if graph is not None else model.graph
    return [n.op_type for n in g.node if n.op_type != "Constant"]


def count(model: onnx.ModelProto, op: str) -> int:
    return sum(n.op_type == op for g in all_graphs(model) for n in g.node)


def data_ops(model: onnx.ModelProto) -> list[str]:
    """Op types of the main graph, leaving out nodes that only compute constants (folded operand chains)."""
    from convrewrite.graph import GraphView, ModelContext

    view = GraphView(model.graph, ModelContext(model))
    return [n.op_type for n in view.nodes if not all(view.const_value(o) is not None for o in n.output if o)]


def io_signature(model: onnx.ModelProto):
    inits = {t.name for t in model.graph.initializer}

    def sig(vis):
        out = []
        for v in vis:
            if v.name in inits:
                continue
            tt = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tt.shape.dim] if tt.HasField("shape") else None
            out.append((v.name, tt.elem_type, dims))
        return out

    return sig(model.graph.input), sig(model.graph.output)


def load_case(path: Path) -> tuple[onnx.ModelProto, dict[str, np.ndarray] | None]:
    model = onnx.load(str(path))
    npz = path.with_suffix(".npz")
    feeds = None
    if npz.exists():
        data = np.load(npz)
        names = {i.name for i in model.graph.input}
        feeds = {k: data[k] for k in data.files if k in names}
    return model, feeds


def runnable(model: onnx.ModelProto, feeds) -> bool:
    try:
        run(model, feeds)
        return True
    except Exception:  # noqa: BLE001 - e.g. onnxruntime refuses SAME_UPPER with dilations
        return False


def rewrite_checked(model, passes, layout="h", feeds=None, atol=1e-5, compare=True, **kw):
    """Rewrite, then check what every rank rewrite must keep: validity, IR/opsets, graph I/O, records, outputs."""
    result = convrewrite.rewrite(model, passes=list(passes), layout=layout, **kw)
    out = result.model
    onnx.checker.check_model(out, full_check=True)
    assert out.ir_version == model.ir_version
    assert [(o.domain, o.version) for o in out.opset_import] == [(o.domain, o.version) for o in model.opset_import]
    assert io_signature(out) == io_signature(model)
    if len(passes) == 1:
        names = [r.node for r in result.records if r.pass_name == passes[0]]
        assert len(names) == len(conv_nodes(model)), "every convolution gets exactly one record"
        for r in result.records:
            assert r.status in ("rewritten", "skipped")
            assert r.rewritten or r.reason, f"{r.node}: skipped without a reason"
    if compare:
        feeds = feeds if feeds is not None else feeds_for(model)
        result.errors = assert_same_outputs(model, out, feeds, atol=atol)
    return result


def assert_idempotent(result, passes, layout="h"):
    again = convrewrite.rewrite(result.model, passes=list(passes[-1:]), layout=layout)
    assert not again.rewritten, [r.node for r in again.rewritten]
    assert again.model.SerializeToString() == result.model.SerializeToString()


# ------------------------------------------------------------------ builders


def conv1d_chain(n: int, c: int = 4, length: int = 16, opset: int = 13, seed: int = 0, pool_every: int = 0):
    """n blocks of Conv1d -> BatchNormalization -> Relu -> Conv1d -> residual Add [-> MaxPool]."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "x"
    for i in range(n):
        for j in range(2):
            inits += [init(f"w{i}_{j}", (rng.standard_normal((c, c, 3)) * 0.3).astype(np.float32)),
                      init(f"b{i}_{j}", rng.standard_normal(c).astype(np.float32))]
        inits += [init(f"s{i}", rng.uniform(0.5, 1.5, c).astype(np.float32)), init(f"o{i}", rng.standard_normal(c).astype(np.float32)),
                  init(f"m{i}", rng.standard_normal(c).astype(np.float32)), init(f"v{i}", rng.uniform(0.5, 1.5, c).astype(np.float32))]
        extra = {"spatial": 1} if opset < 9 else {}
        nodes += [
            helper.make_node("Conv", [x, f"w{i}_0", f"b{i}_0"], [f"c{i}"], name=f"conv{i}a", kernel_shape=[3], pads=[1, 1]),
            helper.make_node("BatchNormalization", [f"c{i}", f"s{i}", f"o{i}", f"m{i}", f"v{i}"], [f"n{i}"], name=f"bn{i}", **extra),
            helper.make_node("Relu", [f"n{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node("Conv", [f"r{i}", f"w{i}_1", f"b{i}_1"], [f"d{i}"], name=f"conv{i}b", kernel_shape=[3], pads=[1, 1]),
            helper.make_node("Add", [f"d{i}", x], [f"a{i}"], name=f"add{i}"),
        ]
        x = f"a{i}"
        if pool_every and (i + 1) % pool_every == 0:
            nodes.append(helper.make_node("MaxPool", [x], [f"p{i}"], name=f"pool{i}", kernel_shape=[2], strides=[2]))
            x = f"p{i}"
            length //= 2
    nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    inputs = [vi("x", [1, c, 16])]
    ir_version = 3 if opset < 8 else 7
    if ir_version < 4:  # IR 3: initializers are graph inputs too
        inputs += [vi(t.name, list(t.dims)) for t in inits]
    return make_model(nodes, inputs, [vi("y", [1, c, length])], inits, opset=opset, ir_version=ir_version)


# ---------------------------------------------------------------------- tests


def test_passes_are_registered():
    names = available_passes()
    for name in RANK_PASSES + ("channels-as-spatial", "spatial-as-channels"):
        assert name in names


@pytest.mark.parametrize("opset", [7, 9, 11, 13, 18])
@pytest.mark.parametrize("layout", ["h", "w"])
def test_chain_has_one_unsqueeze_and_one_squeeze(opset, layout):
    model = conv1d_chain(3, opset=opset, pool_every=2)
    lifted = rewrite_checked(model, ["to-2d"], layout, assume_finite=True)  # MaxPool joins regions only so (issue 16)
    assert count(lifted.model, "Unsqueeze") == 1 and count(lifted.model, "Squeeze") == 1
    assert all(conv_rank(n, lifted.model) == 2 for n in conv_nodes(lifted.model))
    assert lifted.counters == {"unsqueeze_inserted": 1, "squeeze_inserted": 1}
    unsq = next(n for n in lifted.model.graph.node if n.op_type == "Unsqueeze")
    axis = 2 if layout == "h" else 3
    if opset < 13:
        assert list(helper.get_attribute_value(unsq.attribute[0])) == [axis]
    else:
        assert len(unsq.input) == 2
    pools = [n for n in lifted.model.graph.node if n.op_type == "MaxPool"]
    assert {tuple(a.ints) for n in pools for a in n.attribute if a.name == "kernel_shape"} == {(1, 2) if layout == "h" else (2, 1)}
    assert_idempotent(lifted, ["to-2d"], layout)
    lowered = rewrite_checked(lifted.model, ["to-1d"], layout, assume_finite=True)
    assert count(lowered.model, "Unsqueeze") == 0 and count(lowered.model, "Squeeze") == 0
    assert ops(lowered.model) == ops(model)
    assert lowered.counters["pairs_cancelled"] == 2
    assert_idempotent(lowered, ["to-1d"], layout)


def test_torch_chain_round_trip():
    model = onnx.load(str(MODELS / "conv1d_chain_ts13.onnx"))
    for layout in "hw":
        lifted = rewrite_checked(model, ["to-2d"], layout, assume_finite=True)  # MaxPool joins regions only so (issue 16)
        assert count(lifted.model, "Unsqueeze") == 1 and count(lifted.model, "Squeeze") == 1
        back = rewrite_checked(lifted.model, ["to-1d"], layout, assume_finite=True)  # MaxPool joins regions only so (issue 16)
        assert count(back.model, "Unsqueeze") == 0 and count(back.model, "Squeeze") == 0
        assert data_ops(back.model) == data_ops(model)


def test_same_input_same_bytes():
    model = conv1d_chain(2)
    a = convrewrite.rewrite(model, passes=["to-2d"]).model.SerializeToString()
    b = convrewrite.rewrite(model, passes=["to-2d"]).model.SerializeToString()
    assert a == b


def _single_conv(op="Conv", w_shape=(6, 4, 3), x_shape=(1, 4, 11), opset=13, **attrs):
    rng = np.random.default_rng(3)
    w = init("w", rng.standard_normal(w_shape).astype(np.float32))
    node = helper.make_node(op, ["x", "w"], ["y"], name="c", **attrs)
    graph = helper.make_graph([node], "g", [vi("x", list(x_shape))], [helper.make_empty_tensor_value_info("y")], [w])
    draft = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(draft)
    y = next(v for v in list(inferred.graph.output) + list(inferred.graph.value_info) if v.name == "y")
    return make_model([node], [vi("x", list(x_shape))], [y], [w], opset=opset)


@pytest.mark.parametrize("layout, expected", [
    ("h", {"kernel_shape": [1, 3], "strides": [1, 2], "dilations": [1, 2], "pads": [0, 2, 0, 1]}),
    ("w", {"kernel_shape": [3, 1], "strides": [2, 1], "dilations": [2, 1], "pads": [2, 0, 1, 0]}),
])
def test_conv_attributes_are_mapped_exactly(layout, expected):
    model = _single_conv(kernel_shape=[3], strides=[2], dilations=[2], pads=[2, 1])
    result = rewrite_checked(model, ["to-2d"], layout)
    conv = next(n for n in result.model.graph.node if n.op_type == "Conv")
    got = {a.name: list(a.ints) for a in conv.attribute if a.ints}
    assert got == expected
    (record,) = result.records
    assert record.status == "rewritten" and record.after["kernel_shape"] == expected["kernel_shape"]
    assert record.before["kernel_shape"] == [3] and record.details["layout"] == layout


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [3], "strides": [2], "pads": [1, 1], "output_padding": [1]},
    {"kernel_shape": [3], "strides": [2], "auto_pad": "SAME_UPPER"},
    {"kernel_shape": [3], "strides": [2], "auto_pad": "SAME_LOWER", "output_padding": [1]},
    {"kernel_shape": [3], "strides": [3], "output_shape": [30]},
    {"kernel_shape": [3], "strides": [3], "output_shape": [30], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [3], "dilations": [2], "group": 2},
])
@pytest.mark.parametrize("layout", ["h", "w"])
def test_conv_transpose_attributes(attrs, layout):
    w_shape = (4, 3, 3)
    model = _single_conv("ConvTranspose", w_shape=w_shape, x_shape=(1, 4, 10), **attrs)
    result = rewrite_checked(model, ["to-2d"], layout)
    if attrs.get("auto_pad", "").startswith("SAME") and "output_padding" in attrs:
        # onnx and onnxruntime disagree on its output length: every pass leaves it alone (test_fuzz_regressions.py)
        assert not result.changed and "output_padding" in result.records[0].reason
        return
    conv = next(n for n in result.model.graph.node if n.op_type == "ConvTranspose")
    got = {a.name: list(a.ints) for a in conv.attribute if a.ints}
    p = 0 if layout == "h" else 1
    for name, unit in (("output_padding", 0), ("output_shape", 1)):
        if name in attrs:
            assert got[name][1 - p] == attrs[name][0] and got[name][p] == unit
    back = rewrite_checked(result.model, ["to-1d"], layout)
    assert all(conv_rank(n, back.model) == 1 for n in conv_nodes(back.model))
    assert ops(back.model) == ops(model)


def test_auto_pad_same_on_unit_axis_and_strides():
    model = _single_conv(w_shape=(6, 4, 4), kernel_shape=[4], strides=[3], auto_pad="SAME_LOWER", x_shape=(2, 4, 17))
    for layout in "hw":
        rewrite_checked(model, ["to-2d"], layout)


def test_every_convolution_is_recorded():
    rng = np.random.default_rng(1)
    inits = [init("w1", rng.standard_normal((4, 4, 3)).astype(np.float32)),
             init("w2", rng.standard_normal((4, 4, 3, 3)).astype(np.float32)),
             init("w3", rng.standard_normal((4, 4, 1, 1, 1)).astype(np.float32))]
    nodes = [
        helper.make_node("Conv", ["x1", "w1"], ["y1"], name="one", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Conv", ["x2", "w2"], ["y2"], name="two", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x3", "w3"], ["y3"], name="three", kernel_shape=[1, 1, 1]),
    ]
    model = make_model(nodes, [vi("x1", [1, 4, 8]), vi("x2", [1, 4, 5, 7]), vi("x3", [1, 4, 1, 2, 3])],
                       [vi("y1", [1, 4, 8]), vi("y2", [1, 4, 5, 7]), vi("y3", [1, 4, 1, 2, 3])], inits)
    expected = {
        "to-2d": {"one": "rewritten", "two": "already 2D", "three": "3D convolution; to-2d rewrites 1D"},
        "to-3d": {"one": "1D convolution; to-3d rewrites 2D", "two": "rewritten", "three": "already 3D"},
        "to-1d": {"one": "already 1D", "two": "spatial axis 0 has size 5, not 1; spatial axis 1 has size 7, not 1",
                  "three": "3D convolution; to-1d rewrites 2D"},
        "3d-to-2d": {"one": "1D convolution; 3d-to-2d rewrites 3D", "two": "already 2D", "three": "rewritten"},
    }
    for name, want in expected.items():
        result = rewrite_checked(model, [name])
        got = {r.node: ("rewritten" if r.rewritten else r.reason) for r in result.records}
        assert got == want, name


def test_selection_excludes_a_conv():
    model = conv1d_chain(1)
    result = rewrite_checked(model, ["to-2d"], only={"to-2d:main:conv0a"})
    status = {r.node: (r.status, r.reason) for r in result.records}
    assert status["conv0a"] == ("rewritten", "")
    assert status["conv0b"] == ("skipped", "excluded by selection")


def test_lowering_reasons_in_words():
    model = _single_conv(w_shape=(4, 4, 3, 1), x_shape=(1, 4, 7, 5), kernel_shape=[3, 1], pads=[1, 0, 1, 0])
    (record,) = rewrite_checked(model, ["to-1d"]).records
    assert record.reason == "spatial axis 0 has size 7, not 1; spatial axis 1 has size 5, not 1"
    model = _single_conv(w_shape=(4, 4, 1, 3), x_shape=(1, 4, 1, 5), kernel_shape=[1, 3], pads=[1, 1, 0, 1])
    (record,) = rewrite_checked(model, ["to-1d"]).records
    assert record.reason.startswith("pads on spatial axis 0 are 1,0, not 0")
    model = _single_conv(w_shape=(4, 4, 1, 3), x_shape=(1, 4, "h", 5), kernel_shape=[1, 3])
    (record,) = rewrite_checked(model, ["to-1d"]).records
    assert record.reason.startswith("spatial axis 0 has a size not known to be 1")


def test_native_h1_conv2d_is_lowered_with_wrappers():
    model = _single_conv(w_shape=(4, 4, 1, 3), x_shape=(2, 4, 1, 9), kernel_shape=[1, 3], pads=[0, 1, 0, 1])
    result = rewrite_checked(model, ["to-1d"])
    assert ops(result.model) == ["Squeeze", "Conv", "Unsqueeze"]
    assert result.records[0].details["unit_axis"] == 2


def test_weights_in_place_shared_routed():
    """In place when only lifted convs read it (once, even when shared); routed through Unsqueeze otherwise."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 4, 3)).astype(np.float32)
    inits = [init("shared", w), init("also_added", w[:, :, :1].copy()), init("overridable", w), init("wc", w)]
    nodes = [
        helper.make_node("Conv", ["x", "shared"], ["a"], name="a", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Conv", ["a", "shared"], ["b"], name="b", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Conv", ["b", "also_added"], ["c"], name="c", kernel_shape=[1]),
        helper.make_node("Conv", ["c", "overridable"], ["d"], name="d", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Conv", ["d", "wdyn"], ["e"], name="e", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Constant", [], ["wconst"], name="wconst", value=numpy_helper.from_array(w, "wconst")),
        helper.make_node("Conv", ["e", "wconst"], ["f"], name="f", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Add", ["also_added", "also_added"], ["g"], name="g"),
    ]
    model = make_model(nodes, [vi("x", [1, 4, 9]), vi("wdyn", [4, 4, 3]), vi("overridable", [4, 4, 3])],
                       [vi("f", [1, 4, 9]), vi("g", [4, 4, 1])], inits)
    feeds = feeds_for(model)
    feeds["overridable"] = w * 2
    result = rewrite_checked(model, ["to-2d"], feeds=feeds)
    notes = {r.node: r.details["weight"] for r in result.records}
    assert notes["a"] == notes["b"] == notes["f"] == "reshaped in place"
    assert notes["c"] == "routed through Unsqueeze: weight is shared with other readers"
    assert notes["d"] == "routed through Unsqueeze: weight is an overridable initializer"
    assert notes["e"] == "routed through Unsqueeze: weight is a graph input"
    dims = {t.name: list(t.dims) for t in result.model.graph.initializer}
    assert dims["shared"] == [4, 4, 1, 3] and dims["also_added"] == [4, 4, 1] and dims["overridable"] == [4, 4, 3]
    assert count(result.model, "Unsqueeze") == 4  # x, also_added, overridable, wdyn


def test_ir3_initializer_inputs_are_constants():
    model = conv1d_chain(1, opset=7)
    assert model.ir_version == 3
    inputs_before = {i.name for i in model.graph.input}
    result = rewrite_checked(model, ["to-2d"])
    assert {i.name for i in result.model.graph.input} == inputs_before
    decl = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in result.model.graph.input}
    assert decl["w0_0"] == [4, 4, 1, 3]  # the declaration follows the reshaped weight
    assert {r.details["weight"] for r in result.records} == {"reshaped in place"}


def test_qdq_weight_and_data_path():
    model, feeds = load_case(MODELS / "rank_qdq_op13.onnx")
    for layout in "hw":
        result = rewrite_checked(model, ["to-2d"], layout, feeds)
        g = result.model.graph
        assert ops(result.model)[0] == "Unsqueeze" and ops(result.model)[-1] == "Squeeze"
        producers = {o: n for n in g.node for o in n.output}
        for conv in (n for n in g.node if n.op_type == "Conv"):
            assert producers[conv.input[0]].op_type == "DequantizeLinear"  # QDQ stays fusable
            dq = producers[conv.input[1]]
            assert dq.op_type == "DequantizeLinear"
            q = next(t for t in g.initializer if t.name == dq.input[0])
            assert len(q.dims) == 4 and q.data_type == TensorProto.INT8
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            assert axis in (0, -4)  # per-channel axis still on M
        assert {r.details["weight"] for r in result.records} == {"quantized weight reshaped in place behind DequantizeLinear"}
        back = rewrite_checked(result.model, ["to-1d"], layout, feeds)
        assert ops(back.model) == ops(model)


def test_qlinearconv_and_convinteger():
    model, feeds = load_case(MODELS / "rank_qlinear_op13.onnx")
    for layout in "hw":
        result = rewrite_checked(model, ["to-2d"], layout, feeds)
        assert [r.status for r in result.records] == ["rewritten", "rewritten"]
        g = result.model.graph
        weights = {t.name: list(t.dims) for t in g.initializer}
        assert weights["wq"] == ([6, 4, 1, 3] if layout == "h" else [6, 4, 3, 1])
        assert weights["ws"] == [6]  # per-channel scales untouched
        back = rewrite_checked(result.model, ["to-1d"], layout, feeds)
        assert ops(back.model) == ops(model)


@pytest.mark.parametrize("layout", ["h", "w"])
def test_broadcast_constants_of_every_rank(layout):
    model, feeds = load_case(MODELS / "rank_broadcast_op13.onnx")
    result = rewrite_checked(model, ["to-2d"], layout, feeds)
    dims = {t.name: list(t.dims) for t in result.model.graph.initializer}
    # [1,C,1] and [C,1] constants gain the unit axis; [L] keeps its shape only where L stays last.
    assert dims["b3"] == [1, 6, 1, 1]
    assert dims["chan"] == dims["slope"] == [6, 1, 1]
    assert dims["pos"] == ([20] if layout == "h" else [20, 1])  # [L] stays valid only while L is last
    assert dims["t3"] == ([1, 1, 1, 20] if layout == "h" else [1, 1, 20, 1])
    assert dims["half"] == []
    assert count(result.model, "Unsqueeze") == (2 if layout == "h" else 3)  # x, z (and the [L] input g for w)
    back = rewrite_checked(result.model, ["to-1d"], layout, feeds)
    assert count(back.model, "Unsqueeze") == 0 and count(back.model, "Squeeze") == 0


def test_region_exits_keep_graph_outputs():
    """A region tensor that is a graph output and also read inside; one read by a rank-sensitive op."""
    rng = np.random.default_rng(4)
    inits = [init("w", rng.standard_normal((4, 4, 3)).astype(np.float32)), init("shape", np.asarray([1, -1], np.int64))]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c0", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Relu", ["a"], ["mid"], name="relu"),
        helper.make_node("Conv", ["mid", "w"], ["b"], name="c1", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Reshape", ["b", "shape"], ["flat"], name="flatten"),
        helper.make_node("Sigmoid", ["b"], ["y"], name="sig"),
    ]
    model = make_model(nodes, [vi("x", [1, 4, 8])], [vi("mid", [1, 4, 8]), vi("flat", [1, 32]), vi("y", [1, 4, 8])], inits)
    for layout in "hw":
        result = rewrite_checked(model, ["to-2d"], layout)
        assert count(result.model, "Unsqueeze") == 1 and count(result.model, "Squeeze") == 3
        back = rewrite_checked(result.model, ["to-1d"], layout)
        assert ops(back.model) == ops(model)


def test_existing_squeeze_unsqueeze_pairs_cancel():
    """Conv2d -> Squeeze(2) -> Conv1d -> Unsqueeze(2) -> Conv2d: lifting the middle conv cancels both."""
    rng = np.random.default_rng(5)
    inits = [init("w2", rng.standard_normal((4, 4, 1, 3)).astype(np.float32)), init("w1", rng.standard_normal((4, 4, 3)).astype(np.float32)),
             init("ax", np.asarray([2], np.int64))]
    nodes = [
        helper.make_node("Conv", ["x", "w2"], ["a"], name="c2a", kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
        helper.make_node("Squeeze", ["a", "ax"], ["s"], name="sq"),
        helper.make_node("Conv", ["s", "w1"], ["b"], name="c1", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Unsqueeze", ["b", "ax"], ["u"], name="unsq"),
        helper.make_node("Conv", ["u", "w2"], ["y"], name="c2b", kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
    ]
    model = make_model(nodes, [vi("x", [1, 4, 1, 8])], [vi("y", [1, 4, 1, 8])], inits)
    result = rewrite_checked(model, ["to-2d"])
    assert ops(result.model) == ["Conv", "Conv", "Conv"]
    assert result.counters == {"pairs_cancelled": 2}
    assert "ax" not in {t.name for t in result.model.graph.initializer}
    lowered = rewrite_checked(model, ["to-1d"])
    assert count(lowered.model, "Squeeze") + count(lowered.model, "Unsqueeze") == 2  # only the graph's own I/O


def test_axis_ops_are_remapped_and_reshape_closes_the_region():
    rng = np.random.default_rng(6)
    inits = [init("w", rng.standard_normal((4, 4, 3)).astype(np.float32)), init("flat", np.asarray([1, -1], np.int64))]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c0", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Softmax", ["a"], ["s"], name="softmax", axis=2),
        helper.make_node("Transpose", ["s"], ["t"], name="t0", perm=[0, 2, 1]),
        helper.make_node("LogSoftmax", ["t"], ["u"], name="logsoftmax", axis=-1),
        helper.make_node("Transpose", ["u"], ["v"], name="t1", perm=[0, 2, 1]),
        helper.make_node("Conv", ["v", "w"], ["b"], name="c1", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Reshape", ["b", "flat"], ["y"], name="reshape"),
    ]
    model = make_model(nodes, [vi("x", [1, 4, 8])], [vi("y", [1, 32])], inits)
    for layout in "hw":
        result = rewrite_checked(model, ["to-2d"], layout)
        assert ops(result.model) == ["Unsqueeze", "Conv", "Softmax", "Transpose", "LogSoftmax", "Transpose", "Conv", "Squeeze", "Reshape"]
        attrs = {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute} for n in result.model.graph.node}
        if layout == "h":
            assert attrs["softmax"]["axis"] == 3 and attrs["t0"]["perm"] == [0, 3, 2, 1] and attrs["logsoftmax"]["axis"] == -1
        else:
            assert attrs["softmax"]["axis"] == 2 and attrs["t0"]["perm"] == [0, 2, 1, 3] and attrs["logsoftmax"]["axis"] == -2
        back = rewrite_checked(result.model, ["to-1d"], layout)
        assert ops(back.model) == ops(model)
        assert [a for n in back.model.graph.node for a in n.attribute] == [a for n in model.graph.node for a in n.attribute]


@pytest.mark.parametrize("name", ["rank_subgraph_op13.onnx", "rank_function_op13.onnx"])
@pytest.mark.parametrize("layout", ["h", "w"])
def test_subgraphs_and_functions(name, layout):
    model, feeds = load_case(MODELS / name)
    result = rewrite_checked(model, ["to-2d"], layout, feeds)
    assert all(r.rewritten for r in result.records)
    assert all(conv_rank(n, result.model) in (2, None) for n in conv_nodes(result.model))
    graphs = {r.graph for r in result.records}
    assert len(graphs) > 1  # bodies / functions have their own records
    if "flag" in feeds:
        other = dict(feeds, flag=np.array(False))
        assert_same_outputs(model, result.model, other)
    back = rewrite_checked(result.model, ["to-1d"], layout, feeds)
    assert count(back.model, "Unsqueeze") == 0 and count(back.model, "Squeeze") == 0
    bodies = lambda m: [[n.op_type for n in g.node] for g in all_graphs(m)]  # noqa: E731
    assert bodies(back.model) == bodies(model)  # every body and function gets its op sequence back


def test_dynamic_batch_and_length():
    model, feeds = load_case(MODELS / "rank_dynamic_op13.onnx")
    for layout in "hw":
        result = rewrite_checked(model, ["to-2d"], layout, feeds)
        for dims in ({"batch": 3, "length": 50}, {"batch": 1, "length": 8}):
            assert_same_outputs(model, result.model, feeds_for(model, seed=1, dims=dims))
        back = rewrite_checked(result.model, ["to-1d"], layout, feeds)
        assert ops(back.model) == ops(model)


def test_to_3d_and_back():
    model, feeds = load_case(MODELS / "rank_conv2d_chain_op13.onnx")
    for layout in "hw":
        lifted = rewrite_checked(model, ["to-3d"], layout, feeds, assume_finite=True)  # MaxPool joins regions only so (issue 16)
        assert count(lifted.model, "Unsqueeze") == 1 and count(lifted.model, "Squeeze") == 1
        pool = next(n for n in lifted.model.graph.node if n.op_type == "MaxPool")
        assert list(pool.attribute[0].ints) == ([1, 2, 2] if layout == "h" else [2, 2, 1])
        back = rewrite_checked(lifted.model, ["3d-to-2d"], layout, feeds, assume_finite=True)  # MaxPool joins regions only so (issue 16)
        assert ops(back.model) == ops(model)


def test_3d_to_2d_reasons():
    model, feeds = load_case(MODELS / "rank_conv3d_unit_op13.onnx")
    result = rewrite_checked(model, ["3d-to-2d"], "h", feeds)
    status = {r.node: r.reason or r.status for r in result.records}
    assert status["Conv3d0"] == status["Conv3d1"] == "rewritten"
    assert status["Conv3d_deep"].startswith("kernel is 3 on spatial axis 0, not 1")


def _big_chain(layers: int):
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = "x"
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.standard_normal((2, 2, 3)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], name=f"conv{i}", kernel_shape=[3], pads=[1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        x = f"r{i}"
    graph = helper.make_graph(nodes, "chain", [vi("x", [1, 2, 8])], [vi(x, [1, 2, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_5000_layer_chain_is_iterative_and_linear():
    """No recursion that a deep graph can exhaust; time grows about linearly (loose bound, not a benchmark)."""
    times = {}
    limit = sys.getrecursionlimit()
    for layers in (1000, 5000):
        model = _big_chain(layers)
        sys.setrecursionlimit(400)
        try:
            t = time.perf_counter()
            lifted = convrewrite.rewrite(model, passes=["to-2d"], copy=False)
            times[layers] = time.perf_counter() - t
            assert count(lifted.model, "Unsqueeze") == 1 and count(lifted.model, "Squeeze") == 1
            assert len(lifted.records) == layers
            lowered = convrewrite.rewrite(lifted.model, passes=["to-1d"], copy=False)
        finally:
            sys.setrecursionlimit(limit)
        assert count(lowered.model, "Unsqueeze") == 0 and count(lowered.model, "Squeeze") == 0
    assert times[5000] < 12 * times[1000] + 1.0, times


@pytest.mark.parametrize("opset", [13, 18])
def test_squeeze_excitation_block_lowers_with_reduce_over_the_unit_axis(opset):
    """[N,C,1,W] -> Conv(1x3) -> ReduceMean(axes=[2,3]) -> Conv(1x1) -> Sigmoid -> Mul: one 1D region."""
    rng = np.random.default_rng(7)
    inits = [init("w0", rng.standard_normal((4, 4, 1, 3)).astype(np.float32)), init("w1", rng.standard_normal((4, 4, 1, 1)).astype(np.float32))]
    if opset >= 18:
        inits.append(init("axes", np.asarray([2, 3], np.int64)))
        reduce = helper.make_node("ReduceMean", ["a", "axes"], ["m"], name="mean")
    else:
        reduce = helper.make_node("ReduceMean", ["a"], ["m"], name="mean", axes=[2, 3])
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], name="c0", kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
        reduce,
        helper.make_node("Conv", ["m", "w1"], ["s"], name="c1", kernel_shape=[1, 1]),
        helper.make_node("Sigmoid", ["s"], ["g"], name="gate"),
        helper.make_node("Mul", ["a", "g"], ["y"], name="scale"),
    ]
    model = make_model(nodes, [vi("x", [2, 4, 1, 9])], [vi("y", [2, 4, 1, 9])], inits, opset=opset)
    result = rewrite_checked(model, ["to-1d"])
    assert [r.status for r in result.records] == ["rewritten", "rewritten"]
    assert ops(result.model) == ["Squeeze", "Conv", "ReduceMean", "Conv", "Sigmoid", "Mul", "Unsqueeze"]
    back = rewrite_checked(result.model, ["to-2d"])
    assert ops(back.model) == ops(model)  # the graph's own Squeeze/Unsqueeze cancel against the lift


def test_scan_body():
    """A 1D conv inside a Scan body (per-step [1, C, L] slices of a [T, 1, C, L] input)."""
    rng = np.random.default_rng(8)
    inits = [init("w", rng.standard_normal((4, 4, 3)).astype(np.float32))]
    body = helper.make_graph(
        [helper.make_node("Conv", ["step", "w"], ["c"], name="ScanConv", kernel_shape=[3], pads=[1, 1]),
         helper.make_node("Relu", ["c"], ["step_out"], name="ScanRelu"),
         helper.make_node("Identity", ["acc_in"], ["acc_out"], name="Carry")],
        "body", [vi("acc_in", [1]), vi("step", [1, 4, 10])], [vi("acc_out", [1]), vi("step_out", [1, 4, 10])])
    nodes = [helper.make_node("Scan", ["acc", "xs"], ["acc_final", "ys"], name="Scan", body=body, num_scan_inputs=1)]
    model = make_model(nodes, [vi("acc", [1]), vi("xs", [3, 1, 4, 10])], [vi("acc_final", [1]), vi("ys", [3, 1, 4, 10])], inits)
    for layout in "hw":
        result = rewrite_checked(model, ["to-2d"], layout)
        (record,) = result.records
        assert record.rewritten and record.graph.endswith("/Scan/body")
        back = rewrite_checked(result.model, ["to-1d"], layout)
        assert count(back.model, "Unsqueeze") == 0 and count(back.model, "Squeeze") == 0
