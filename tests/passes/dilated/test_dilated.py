"""The dilated pass: SpaceToBatch/BatchToSpace lowerings and zero-inserted kernels become one dilated Conv.

Every fold is checked by running (original vs rewritten on onnxruntime CPU,
float32 atol 1e-5, at several input sizes, multiples of the block and not;
the framework reference stored with each model), structurally (no
SpaceToDepth/DepthToSpace/Pad, no blocking Reshape or Slice next to the conv,
the conv dilated), and through its records (one per conv, with a reason when
skipped). The lowerings are tested both as real TF 2.21 / Keras 3 / tf2onnx 1.17
exports (`tf2onnx_*`, models/export_tf2onnx_dilated.py) and as the hand-built
forms of models/make_dilated_models.py; variations of the real arithmetic
(other blocks, crops, pads, interleavings, every small constant changed) must
either be refused with a reason or fold into a conv that equals them wherever
they run.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from convrewrite.conv import CONV_OPS
from convrewrite.graph import subgraphs
from convrewrite.passes import PassContext, PassOptions, run_passes
from convrewrite.passes.dilated import NO_PATTERN, DilatedPass
from convrewrite.symbolic import Domain, Lin, NeedPeriod, Unprovable, exact_quotient
from util import CONFORMANCE, MODELS, SAMPLES, assert_same_outputs, feeds_for, init, make_model, run, runnable, vi

BLOCKING = {"SpaceToDepth", "DepthToSpace", "Pad", "Reshape", "Slice"}

# model -> (expected dilations, expected pads, sizes to run at: {dim symbol: size})
CHAINS = {
    "k3_conv1d_d2_same_dyn": ([1, 2], [0, 2, 0, 2], [{"N": 2, "W": 37}, {"N": 1, "W": 40}, {"N": 3, "W": 5}]),
    "k3_conv1d_d4_same_dyn": ([1, 4], [0, 4, 0, 4], [{"N": 2, "W": 37}, {"N": 1, "W": 64}, {"N": 1, "W": 3}]),
    "k3_sepconv1d_d2_same_dyn": ([1, 2], [0, 2, 0, 2], [{"N": 2, "W": 37}, {"N": 1, "W": 16}]),
    "k3_sepconv1d_d4_same_dyn": ([1, 4], [0, 4, 0, 4], [{"N": 2, "W": 37}, {"N": 1, "W": 13}]),
    "k3_conv2d_d2_same_dyn": ([2, 2], [2, 2, 2, 2], [{"N": 2, "H": 11, "W": 14}, {"N": 1, "H": 8, "W": 7}]),
    "tf_atrous_conv2d_r3_same_dyn": ([3, 3], [1, 1, 2, 2], [{"N": 2, "H": 10, "W": 13}, {"N": 1, "H": 9, "W": 5}]),
    "tf_atrous_conv2d_r2_valid_dyn": ([2, 2], [0, 0, 0, 0], [{"N": 2, "H": 11, "W": 14}, {"N": 1, "H": 8, "W": 9}]),
    "k3_conv2d_d2_same_norewrite": ([2, 2], [2, 2, 2, 2], [{}]),
    "tf_s2b_conv2d_static": ([2, 2], [2, 2, 2, 2], [{}]),
    "k3_conv1d_d2_same_norewrite": ([1, 2], [0, 2, 0, 2], [{}]),
}


# ----------------------------------------------------------------- helpers


def fold(model: onnx.ModelProto, **options):
    """The dilated pass; finite-math kernel changes allowed unless a test says otherwise (tested below)."""
    options.setdefault("assume_finite", True)
    return run_passes(model, ["dilated"], PassOptions(**options))


def load(name: str) -> onnx.ModelProto:
    return onnx.load(str(MODELS / f"{name}.onnx"))


def convs(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    return [n for n in graph.node if n.op_type in CONV_OPS]


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def neighbours(graph: onnx.GraphProto, conv: onnx.NodeProto, hops: int = 3) -> list[str]:
    """Op types within `hops` producers before and consumers after the conv's data path."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    ops = []
    name = conv.input[0]
    for _ in range(hops):
        node = producer.get(name)
        if node is None:
            break
        ops.append(node.op_type)
        name = node.input[0]
    frontier = [conv.output[0]]
    for _ in range(hops):
        nxt = []
        for name in frontier:
            for node in consumers.get(name, []):
                ops.append(node.op_type)
                nxt.extend(node.output)
        frontier = nxt
    return ops


def records_by_node(result) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in result.records:
        out.setdefault(r.node, []).append(r)
    return out


def _builders():
    """models/make_dilated_models.py (its builders need only onnx and numpy)."""
    import sys

    if str(MODELS) not in sys.path:
        sys.path.insert(0, str(MODELS))
    import make_dilated_models

    return make_dilated_models


class Runner:
    """One onnxruntime session per model, reused across many input sizes."""

    def __init__(self, model: onnx.ModelProto) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(runnable(model).SerializeToString(), opts,
                                         providers=["CPUExecutionProvider"])

    def __call__(self, feeds):
        return self.sess.run(None, feeds)


def assert_same_on(original, rewritten, shapes, atol=1e-5):
    """Original and rewritten agree on inputs of each shape in `shapes` (one session each)."""
    a, b = Runner(original), Runner(rewritten)
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        ya, yb = a({"x": x}), b({"x": x})
        for u, v in zip(ya, yb):
            assert u.shape == v.shape, (shape, u.shape, v.shape)
            assert np.max(np.abs(u - v), initial=0.0) <= atol, (shape, np.max(np.abs(u - v)))


# ----------------------------------------------------------------- the tf2onnx lowerings


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_lowering_folds_into_one_dilated_conv(name):
    model = load(name)
    dilations, pads, sizes = CHAINS[name]
    result = fold(model)
    out = result.model
    onnx.checker.check_model(out, full_check=True)
    ops = [n.op_type for n in out.graph.node]
    assert "SpaceToDepth" not in ops and "DepthToSpace" not in ops and "Pad" not in ops
    dilated = [c for c in convs(out.graph) if any(d > 1 for d in attrs(c).get("dilations", []))]
    assert len(dilated) == 1
    conv = dilated[0]
    assert attrs(conv)["dilations"] == dilations and attrs(conv).get("pads", [0] * len(pads)) == pads
    assert not BLOCKING & set(neighbours(out.graph, conv)), neighbours(out.graph, conv)
    assert result.counters["s2b_folded"] == 1
    dynamic = any(sizes[0])
    if dynamic:
        assert result.counters["shape_nodes_removed"] >= 50
        assert not {"Shape", "Size", "Mod", "Div", "Gather", "Concat"} & set(ops), ops
    rec = [r for r in result.records if r.rewritten]
    assert len(rec) == 1 and rec[0].details["pattern"] == "space_to_batch"
    assert rec[0].details["formula"] == ("valid" if "valid" in name else "tf_same")
    for dims in sizes:
        assert_same_outputs(model, out, feeds_for(model, 1, dims))
    expected = np.load(MODELS / f"{name}.npz")
    feeds = {i.name: expected[i.name] for i in model.graph.input}
    got = run(out, feeds)
    for key, value in got.items():
        np.testing.assert_allclose(value, expected[key], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,block", [("k3_conv1d_d2_same_dyn", 2), ("k3_conv1d_d4_same_dyn", 4),
                                        ("k3_sepconv1d_d4_same_dyn", 4)])
def test_dynamic_1d_every_length(name, block):
    """The proof covers every length: check lengths 1..4*block+3 and a few large ones, batch 1 and 3."""
    model = load(name)
    out = fold(model).model
    lengths = list(range(1, 4 * block + 4)) + [97, 256, 1000]
    assert_same_on(model, out, [(n, w, 6) for n in (1, 3) for w in lengths])


@pytest.mark.parametrize("name,low", [("k3_conv2d_d2_same_dyn", 1), ("tf_atrous_conv2d_r3_same_dyn", 1),
                                      ("tf_atrous_conv2d_r2_valid_dyn", 5)])
def test_dynamic_2d_many_sizes(name, low):
    model = load(name)
    out = fold(model).model
    sizes = range(low, low + 8)
    assert_same_on(model, out, [(2, h, w, 4) for h, w in itertools.product(sizes, sizes)])


def test_keras_stack_folds_every_layer():
    """4 stacked dynamic Conv1D(dilation 2, 4, 8, 16) + ReLU (the benchmark model, small): every layer
    folds, though shape inference loses the rank after the first lowering."""
    model, _ = _builders().conv1d_dilated_model(seed=3, c=5, co=5, dilations=(2, 4, 8, 16), relu=True)
    result = fold(model)
    assert result.counters["s2b_folded"] == 4
    assert [attrs(c)["dilations"] for c in convs(result.model.graph)] == [[1, 2], [1, 4], [1, 8], [1, 16]]
    assert len(result.model.graph.node) == 4 * 7
    assert_same_on(model, result.model, [(1, w, 5) for w in (1, 2, 15, 16, 17, 33, 100)])


def test_generic_lowering_with_unequal_blocks():
    """tf2onnx's generic converter with a 2-D block [2, 3] (6-D Reshape/Transpose) folds into dilations [2, 3]."""
    mk = _builders()
    rng = np.random.default_rng(0)
    g = mk.TfGraph("m")
    paddings, crops = mk.tf_required_paddings(g, "s", "x", [1, 2], [2, 3], [mk.tf_same(3, 2), mk.tf_same(2, 3)])
    h = mk.s2b_generic(g, "s2b", "x", [2, 3], paddings, 4)
    h = g.node("Transpose", [h], "t1", perm=[0, 3, 1, 2])
    w = g.init("w", mk.rand(rng, 3, 2, 4, 5).transpose(3, 2, 0, 1))
    h = g.node("Conv", [h, w], "conv", dilations=[1, 1], strides=[1, 1], kernel_shape=[3, 2], group=1)
    h = g.node("Transpose", [h], "t2", perm=[0, 2, 3, 1])
    mk.b2s_generic(g, "b2s", h, [2, 3], crops, 4, output="y")
    model = g.model([("x", ["N", "H", "W", 4])], [("y", ["N", "H", "W", 5])])
    result = fold(model)
    assert [n.op_type for n in result.model.graph.node] == ["Transpose", "Conv", "Transpose"]
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["dilations"] == [2, 3] and attrs(conv)["pads"] == [2, 1, 2, 2]
    assert result.records[0].details["residue_classes"] == 6
    assert_same_on(model, result.model, [(2, h, w, 4) for h in range(1, 8) for w in range(1, 9)])


def test_padded_unit_axis_of_the_input_becomes_a_conv_axis():
    """x [N, 1, W, C] whose unit H axis the chain pads (2, 0) for a kernel of height 2 (block [1, 2]), so y has
    H = 2: that axis of x is a spatial axis of the folded conv, not a unit axis to drop (it used to crash
    the rewrite after the chain was removed)."""
    mk = _builders()
    rng = np.random.default_rng(1)
    g = mk.TfGraph("m")
    paddings, crops = mk.tf_required_paddings(g, "s", "x", [1, 2], [1, 2], [(2, 0), mk.tf_same(3, 2)])
    h = mk.s2b_generic(g, "s2b", "x", [1, 2], paddings, 4)
    h = g.node("Transpose", [h], "t1", perm=[0, 3, 1, 2])
    w = g.init("w", mk.rand(rng, 2, 3, 4, 5).transpose(3, 2, 0, 1))
    h = g.node("Conv", [h, w], "conv", dilations=[1, 1], strides=[1, 1], kernel_shape=[2, 3], group=1)
    h = g.node("Transpose", [h], "t2", perm=[0, 2, 3, 1])
    mk.b2s_generic(g, "b2s", h, [1, 2], crops, 4, output="y")
    model = g.model([("x", ["N", 1, "W", 4])], [("y", ["N", 2, "W", 5])])
    result = fold(model)
    onnx.checker.check_model(result.model, full_check=True)
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["dilations"] == [1, 2] and attrs(conv)["pads"] == [2, 2, 0, 2]
    assert_same_on(model, result.model, [(n, 1, w, 4) for n in (1, 2) for w in range(1, 12)])


def test_after_the_causal_pass():
    """`--fold all` runs causal first; the lowering still folds."""
    model = load("k3_conv1d_d2_same_dyn")
    result = run_passes(model, ["causal", "dilated"])
    assert result.counters["s2b_folded"] == 1
    assert_same_outputs(model, result.model, feeds_for(model, 0, {"N": 2, "W": 37}))


def test_idempotent_and_deterministic():
    for name in CHAINS:
        model = load(name)
        first, again = fold(model), fold(model)
        assert first.model.SerializeToString() == again.model.SerializeToString(), name
        second = fold(first.model)
        assert not second.rewritten, name
        assert second.model.SerializeToString() == first.model.SerializeToString(), name


def test_one_record_per_conv_and_reasons():
    result = fold(load("k3_sepconv1d_d2_same_dyn"))
    by_node = records_by_node(result)
    assert all(len(v) == 1 for v in by_node.values())
    assert len(by_node) == 2
    pointwise = by_node["functional_1/separable_conv1d_1/separable_conv2d"][0]
    assert pointwise.status == "skipped" and pointwise.reason == "no dilation pattern"


def test_selection_excludes():
    model = load("k3_conv1d_d2_same_dyn")
    result = run_passes(model, ["dilated"], only=set())
    assert [r.reason for r in result.records] == ["excluded by selection"]
    assert result.model.SerializeToString() == model.SerializeToString()


def test_expand_after_fold():
    """expand_dilations folds the lowering, then stores the kernel zero-inserted (dilations 1)."""
    model = load("k3_conv1d_d2_same_dyn")
    result = fold(model, expand_dilations=True)
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["dilations"] == [1, 1] and attrs(conv)["kernel_shape"] == [1, 5]
    assert attrs(conv)["pads"] == [0, 2, 0, 2]
    assert result.counters["s2b_folded"] == 1 and result.counters["kernels_expanded"] == 1
    for w in (5, 37, 40):
        assert_same_outputs(model, result.model, feeds_for(model, 2, {"N": 2, "W": w}))


# ----------------------------------------------------------------- real tf2onnx exports (export_tf2onnx_dilated.py)

# model -> (dilations and pads of each folded conv, shapes to run at); the shapes include sizes that are
# not multiples of the block, sizes below the kernel's span, and batch 1 and 2.
REAL_1D = [(n, w) for n in (1, 2) for w in list(range(1, 14)) + [37, 64]]
REAL_2D = [(2, h, w) for h in (1, 2, 3, 5, 8, 11) for w in (1, 2, 4, 7, 9, 14)]
REAL = {
    "tf2onnx_k3_conv1d_d2_same_dyn": ([([1, 2], [0, 2, 0, 2])], [s + (6,) for s in REAL_1D]),
    "tf2onnx_k3_conv1d_d4_same_dyn": ([([1, 4], [0, 4, 0, 4])], [s + (6,) for s in REAL_1D]),
    "tf2onnx_k3_sepconv1d_d2_same_dyn": ([([1, 2], [0, 2, 0, 2])], [s + (6,) for s in REAL_1D]),
    "tf2onnx_k3_sepconv1d_d4_same_dyn": ([([1, 4], [0, 4, 0, 4])], [s + (6,) for s in REAL_1D]),
    "tf2onnx_tf_convolution1d_d3_same_dyn": ([([1, 3], [0, 3, 0, 3])], [s + (6,) for s in REAL_1D]),
    "tf2onnx_k3_conv1d_stack_dyn": ([([1, d], [0, d, 0, d]) for d in (2, 4, 8, 16)], [s + (8,) for s in REAL_1D]),
    "tf2onnx_k3_conv2d_d2_same_dyn": ([([2, 2], [2, 2, 2, 2])], [s + (4,) for s in REAL_2D]),
    "tf2onnx_tf_atrous_conv2d_r3_same_dyn": ([([3, 3], [1, 1, 2, 2])], [s + (4,) for s in REAL_2D]),
    "tf2onnx_tf_s2b_conv2d_static": ([([2, 2], [2, 2, 2, 2])], [(2, 12, 12, 4)]),
}
FOLDED_OPS = {"Conv", "Transpose", "Unsqueeze", "Squeeze", "Add", "Relu"}  # the conv, its wrappers, bias, activation


def assert_exact_where_original_runs(original, rewritten, shapes, atol=1e-5, least=2):
    """Wherever the original runs, the rewritten model gives the same output (shape and values)."""
    a, b = Runner(original), Runner(rewritten)
    rng = np.random.default_rng(0)
    ran = 0
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        try:
            ya = a({"x": x})
        except Exception:  # noqa: BLE001 - sizes the original itself refuses
            continue
        yb = b({"x": x})
        for u, v in zip(ya, yb):
            assert u.shape == v.shape, (shape, u.shape, v.shape)
            assert np.max(np.abs(u - v), initial=0.0) <= atol, (shape, np.max(np.abs(u - v)))
        ran += 1
    assert ran >= least, f"the original ran at only {ran} of the sizes"


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_tf2onnx_export_folds(name):
    """TF 2.21 / Keras 3 / tf2onnx 1.17 output: the lowering becomes one dilated conv per layer, with TF's
    SAME pads, the shape arithmetic is gone, and the result equals the original at every size tried
    (multiples of the block and not) and TensorFlow's own output."""
    model = load(name)
    expected, shapes = REAL[name]
    result = fold(model)
    out = result.model
    onnx.checker.check_model(out, full_check=True)
    ops = [n.op_type for n in out.graph.node]
    assert set(ops) <= FOLDED_OPS, ops
    got = [(attrs(c)["dilations"], attrs(c)["pads"]) for c in convs(out.graph) if max(attrs(c)["dilations"]) > 1]
    assert got == expected
    for conv in convs(out.graph):
        assert not BLOCKING & set(neighbours(out.graph, conv)), neighbours(out.graph, conv)
    assert result.counters["s2b_folded"] == len(expected)
    folded = [r for r in result.records if r.rewritten]
    assert len(folded) == len(expected) and all(r.details["formula"] == "tf_same" for r in folded)
    if any(isinstance(d.dim_param, str) and d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim):
        assert all(r.details["dynamic"] and r.details["shape_nodes_removed"] >= 50 for r in folded)
    assert_exact_where_original_runs(model, out, shapes, least=min(2, len(shapes)))
    data = np.load(MODELS / f"{name}.npz")
    for key, value in run(out, {"x": data["x"]}).items():
        np.testing.assert_allclose(value, data[key], atol=1e-5, rtol=0)


def test_real_valid_dynamic_atrous_is_already_dilated():
    """tf2onnx folds a VALID atrous conv itself even with a dynamic size: nothing to do, said why."""
    model = load("tf2onnx_tf_atrous_conv2d_r2_valid_dyn")
    result = fold(model)
    assert not result.rewritten and [r.reason for r in result.records] == [NO_PATTERN]
    assert attrs(convs(model.graph)[0])["dilations"] == [2, 2]


def _mutated(model, edits):
    """A copy with node inputs replaced: (node name, input index, new value or tensor name), or
    (node name, attribute name, new value)."""
    model = copy.deepcopy(model)
    nodes = {n.name: n for n in model.graph.node}
    inits = {t.name: t for t in model.graph.initializer}
    for i, (node_name, where, value) in enumerate(edits):
        node = nodes[node_name]
        if isinstance(where, str):
            a = next(a for a in node.attribute if a.name == where)
            a.CopyFrom(helper.make_attribute(where, value))
        elif isinstance(value, str):
            node.input[where] = value
        else:
            old = inits[node.input[where]]
            dtype = helper.tensor_dtype_to_np_dtype(old.data_type)
            name = f"mutation_{i}"
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
            node.input[where] = name
    return model


P1 = "model_1/conv1d_1/convolution/"
S1 = P1 + "required_space_to_batch_paddings/"
BLOCK_USES_1D = [("Div__15", 1), ("Mul__16", 1), (S1 + "sub", 0), ("Div__17", 1), ("Mul__18", 1)]

# Variations of the arithmetic of the real 1-D lowering (Keras Conv1D(k3, d2, 'same')): what is still one
# dilated conv folds (and is checked at every size), what is not is refused with the reason.
MUTATIONS_1D = {
    # pad to a multiple of 4 but block by 2: still exact, the extra padding is cropped again
    "pad_to_multiple_of_4": ([(n, i, [4]) for n, i in BLOCK_USES_1D], ("fold", [0, 2, 0, 2], "tf_same")),
    # pad to a multiple of 3 but block by 2: the padded length is not always even
    "pad_to_multiple_of_3": ([(n, i, [3]) for n, i in BLOCK_USES_1D], ("refuse", "not a block split")),
    # crop = b - W % b without the final % b: crops 2 where TF pads 0, the output is 2 short (empty) for even W
    "crop_without_final_mod": ([(S1 + "strided_slice_4", 0, S1 + "sub:0")], ("refuse", "empty")),
    # crop one more at the front: the output is one short and empty at W = 1, where the fold would fail
    "crop_begin_1": ([(S1 + "crops/0_Concat__28", 0, [1])], ("refuse", "empty")),
    # pads computed from the batch size instead of the length
    "pads_from_the_batch_dim": ([(P1 + "strided_slice", 1, [0]), (P1 + "strided_slice", 2, [1])],
                                ("refuse", "space-to-batch chain not folded")),
    # the SAME pads split the other way round (3, 1): still one conv, with those pads
    "pads_split_3_1": ([(S1 + "paddings/0_Concat__38", 0, [3]), (S1 + "add_2", 0, [1])],
                       ("fold", [0, 3, 0, 1], "explicit")),
    # BatchToSpace with block 4 after SpaceToBatch with block 2
    "batch_to_space_block_4": ([(P1 + "BatchToSpaceND_mul__115", 1, [4]), (P1 + "BatchToSpaceND_concat__116", 1, [4])],
                               ("refuse", "space-to-batch chain not folded")),
    # BatchToSpace interleaving offset-major (j*T + t) instead of position-major (t*b + j)
    "batch_to_space_wrong_interleave": ([(P1 + "BatchToSpaceND_transpose__126", "perm", [1, 0, 2, 3])],
                                        ("refuse", "space-to-batch chain not folded")),
    # SpaceToBatch moving the offsets behind the batch (n*b + j) while BatchToSpace expects (j*N + n)
    "space_to_batch_batch_major": ([(P1 + "SpaceToBatchND_transpose__89", "perm", [0, 2, 1, 3])],
                                   ("refuse", "space-to-batch chain not folded")),
}

P2 = "model_1/conv2d_1/convolution/"
MUTATIONS_2D = {
    # "to the end" written as 1000 (cuts inputs larger than that): the crop cannot be proven, and without it
    # the pads (TF's pad to a multiple of the block) depend on the size
    "slice_end_1000": ([("Mul__1494", 0, [1000]), ("Mul__1502", 0, [1000])], ("refuse", "differ between input sizes")),
    # end = +crop instead of -crop
    "crop_end_positive": ([("Mul__1493", 1, "Cast__1491:0"), ("Mul__1501", 1, "Cast__1499:0")],
                          ("refuse", "space-to-batch chain not folded")),
    # H padded to a multiple of 4, W to a multiple of 2, both blocked by 2: exact
    "pad_h_to_multiple_of_4": ([("Div__1379", 1, [4, 2]), ("Mul__1380", 1, [4, 2]),
                                (P2 + "required_space_to_batch_paddings/sub", 0, [4, 2]),
                                ("Div__1381", 1, [4, 2]), ("Mul__1382", 1, [4, 2])], ("fold", [2, 2, 2, 2], "tf_same")),
    # SpaceToDepth/DepthToSpace by 4 with pads computed for 2
    "space_to_depth_4": ([("SpaceToDepth__1451", "blocksize", 4), ("DepthToSpace__1477", "blocksize", 4)],
                         ("refuse", "space-to-batch chain not folded")),
}


@pytest.mark.parametrize("base,mutation", [("tf2onnx_k3_conv1d_d2_same_dyn", m) for m in MUTATIONS_1D]
                         + [("tf2onnx_k3_conv2d_d2_same_dyn", m) for m in MUTATIONS_2D])
def test_real_lowering_with_different_arithmetic(base, mutation):
    edits, (outcome, *expect) = {**MUTATIONS_1D, **MUTATIONS_2D}[mutation]
    model = _mutated(load(base), edits)
    onnx.checker.check_model(model)
    shapes = [s + (6,) for s in REAL_1D] if "conv1d" in base else [s + (4,) for s in REAL_2D]
    result = fold(model)
    if outcome == "refuse":
        rec = check_skipped(model, "space-to-batch chain not folded")
        assert expect[0] in rec.reason, rec.reason
        return
    conv = next(c for c in convs(result.model.graph) if max(attrs(c)["dilations"]) > 1)
    assert attrs(conv)["pads"] == expect[0]
    assert result.records[0].details["formula"] == expect[1]
    assert_exact_where_original_runs(model, result.model, shapes, least=10)


@pytest.mark.parametrize("name", ["tf2onnx_k3_conv1d_d2_same_dyn", "tf2onnx_k3_conv2d_d2_same_dyn"])
def test_real_lowering_every_small_constant_changed(name):
    """Each small integer constant of the lowering changed by -1, +1 or +2: the pass either refuses or
    folds into a conv that equals the changed model wherever that model runs."""
    model = load(name)
    shapes = ([(n, w, 6) for n in (1, 2) for w in range(1, 12)] if "conv1d" in name
              else [(2, h, w, 4) for h in (1, 2, 3, 6, 7) for w in (1, 2, 5, 8)])
    folded = refused = 0
    for t in model.graph.initializer:
        if t.data_type not in (TensorProto.INT32, TensorProto.INT64) or np.prod(t.dims) > 8:
            continue
        value = numpy_helper.to_array(t)
        if np.any(np.abs(value) >= 2**30):  # "to the end" markers: changing them changes nothing
            continue
        for pos, delta in itertools.product(range(value.size), (-1, 1, 2)):
            changed = value.copy().reshape(-1)
            changed[pos] += delta
            m = copy.deepcopy(model)
            next(x for x in m.graph.initializer if x.name == t.name).CopyFrom(
                numpy_helper.from_array(changed.reshape(value.shape), t.name))
            result = fold(m)
            if not result.counters["s2b_folded"]:
                refused += 1
                continue
            try:
                Runner(m)
            except Exception:  # noqa: BLE001 - the change made the model invalid; nothing to compare
                continue
            folded += 1
            assert_exact_where_original_runs(m, result.model, shapes, least=0)
    assert folded >= 5 and refused >= 30, (folded, refused)  # the sweep did reach both outcomes



# ----------------------------------------------------------------- hand-built static chains (negative cases)


def static_chain(*, pads=(0, 2, 2, 0, 0, 2, 2, 0), starts=(0, 0), ends=(2**31 - 1, 2**31 - 1), conv_pads=None,
                 stride=1, c=4, mode=None, n=2, hw=12, extra_output=False, k=3, relu=False, d2s_block=2,
                 extra_consumer=False, conv_attrs=None):
    """Pad -> Transpose([3,0,1,2]) -> SpaceToDepth(2) -> Transpose -> Conv -> Transpose -> DepthToSpace(2)
    -> Slice -> Transpose([1,2,3,0]) on NHWC x [n, hw, hw, c]; the channel count the conv sees follows the pads."""
    rng = np.random.default_rng(5)
    cin = c + pads[3] + pads[7]
    w = rng.standard_normal((3, cin, k, k)).astype(np.float32)
    conv_attrs = {"kernel_shape": [k, k], "strides": [stride, stride], **(conv_attrs or {})}
    if conv_pads:
        conv_attrs["pads"] = conv_pads
    d2s = {"blocksize": d2s_block} if mode is None else {"blocksize": d2s_block, "mode": mode}
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"]),
        helper.make_node("Transpose", ["p"], ["t1"], perm=[3, 0, 1, 2]),
        helper.make_node("SpaceToDepth", ["t1"], ["s2d"], blocksize=2),
        helper.make_node("Transpose", ["s2d"], ["t2"], perm=[1, 0, 2, 3]),
        helper.make_node("Relu" if relu else "Identity", ["t2"], ["t2r"], name="between"),
        helper.make_node("Conv", ["t2r", "w"], ["c"], name="conv", **conv_attrs),
        helper.make_node("Transpose", ["c"], ["t3"], perm=[1, 0, 2, 3]),
        helper.make_node("DepthToSpace", ["t3"], ["d2s"], **d2s),
        helper.make_node("Slice", ["d2s", "starts", "ends", "axes"], ["sl"]),
        helper.make_node("Transpose", ["sl"], ["y"], perm=[1, 2, 3, 0]),
    ]
    outputs = [vi("y", ["d0", "d1", "d2", "d3"])]
    if extra_output:
        outputs.append(vi("s2d", ["e0", "e1", "e2", "e3"]))
    if extra_consumer:  # the conv's output also read by another node
        nodes.append(helper.make_node("Relu", ["c"], ["other"], name="other"))
        outputs.append(vi("other", ["e0", "e1", "e2", "e3"]))
    inits = [init("pads", np.array(pads, np.int64)), init("w", w), init("starts", np.array(starts, np.int64)),
             init("ends", np.array(ends, np.int64)), init("axes", np.array([2, 3], np.int64))]
    return make_model(nodes, [vi("x", [n, hw, hw, c])], outputs, inits, opset=13, ir_version=8)


def check_skipped(model, fragment):
    result = fold(model)
    rec = result.records
    assert len(rec) == 1 and rec[0].status == "skipped", rec[0].to_dict()
    assert fragment in rec[0].reason, rec[0].reason
    assert result.model.SerializeToString() == model.SerializeToString()
    return rec[0]


def test_static_chain_with_inner_pads_folds_exactly():
    model = static_chain(pads=(0, 2, 2, 0, 0, 2, 2, 0), conv_pads=[1, 1, 1, 1], ends=(-2, -2))
    result = fold(model)
    conv = convs(result.model.graph)[0]
    # inner pad 1 on the block grid = 2 on the input; crop 2 at the end
    assert attrs(conv)["dilations"] == [2, 2] and attrs(conv)["pads"] == [4, 4, 2, 2]
    assert_same_outputs(model, result.model, feeds_for(model))


def test_static_chain_crop_beyond_pads_is_refused():
    check_skipped(static_chain(pads=(0, 1, 1, 0, 0, 3, 3, 0), starts=(2, 2)), "negative")


def test_static_chain_channel_pad_is_refused():
    check_skipped(static_chain(pads=(0, 2, 2, 1, 0, 2, 2, 1)), "channel axis")


def test_static_chain_strided_inner_conv_is_refused():
    check_skipped(static_chain(stride=2, pads=(0, 2, 2, 0, 0, 4, 4, 0), hw=14), "stride 2")


def test_static_chain_crd_depth_to_space_is_refused():
    """CRD interleaves the batch offsets differently (with N = 2 = block the sizes even match)."""
    model = static_chain(mode="CRD")
    run(model, feeds_for(model))  # the original runs
    check_skipped(model, "space-to-batch chain not folded")


def test_static_chain_with_an_op_between_is_refused():
    check_skipped(static_chain(relu=True), "Relu between sits between the lowering and the conv")


def test_static_chain_shared_tensor_is_refused():
    check_skipped(static_chain(extra_output=True), "graph output")


def test_static_chain_tensor_with_another_consumer_is_refused():
    model = static_chain(extra_consumer=True)
    run(model, feeds_for(model))
    check_skipped(model, "has another consumer (Relu other)")


def test_static_chain_batch_pad_is_refused():
    """Padding N moves extra zero images into the batch: no conv pads express that."""
    model = static_chain(pads=(1, 2, 2, 0, 0, 2, 2, 0))
    run(model, feeds_for(model))
    check_skipped(model, "batch axis")


def test_static_chain_unequal_blocks_are_refused():
    """SpaceToDepth by 2, DepthToSpace by 4 (N = 4 makes the sizes fit): not a dilated conv."""
    model = static_chain(d2s_block=4, n=4)
    run(model, feeds_for(model))
    check_skipped(model, "DepthToSpace block 4 does not match the block offsets")


def test_static_chain_dilated_inner_conv_multiplies():
    """An inner conv with dilation 2 on the block-2 grid is a dilation-4 conv on the input."""
    model = static_chain(conv_attrs={"dilations": [2, 2]}, pads=(0, 4, 4, 0, 0, 4, 4, 0), hw=12)
    result = fold(model)
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["dilations"] == [4, 4] and attrs(conv)["pads"] == [4, 4, 4, 4]
    assert_same_outputs(model, result.model, feeds_for(model))


def test_static_chain_same_inner_conv_folds_its_pads():
    """A SAME_UPPER inner conv (stride 1: pads 1, 1 on the grid, whatever the size) is 2, 2 on the input."""
    model = static_chain(conv_attrs={"auto_pad": "SAME_UPPER"}, pads=(0, 0, 0, 0, 0, 0, 0, 0))
    result = fold(model)
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["dilations"] == [2, 2] and attrs(conv)["pads"] == [2, 2, 2, 2]
    assert attrs(conv).get("auto_pad", b"NOTSET") == b"NOTSET"
    assert_same_outputs(model, result.model, feeds_for(model))


def _edit(model, node_name_part, index, new_value):
    """Replace input `index` of the node whose name contains node_name_part by a new int32 initializer."""
    model = copy.deepcopy(model)
    node = next(n for n in model.graph.node if node_name_part in n.name)
    name = f"{node.name}_edited"
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(new_value), name))
    node.input[index] = name
    return model


def test_dynamic_pads_not_a_multiple_of_the_block_are_refused():
    """A broken formula (Mod by 3 instead of the block 2): the padded length is not always even."""
    model = _edit(load("k3_conv1d_d2_same_dyn"), "convolution/mod", 1, np.array([3], np.int32))
    rec = check_skipped(model, "space-to-batch chain not folded")
    assert "block" in rec.reason or "match" in rec.reason


def test_dynamic_pads_from_data_are_refused():
    """Pads that depend on a value of x, not on its shape, cannot be proven."""
    model = copy.deepcopy(load("k3_conv1d_d2_same_dyn"))
    g = model.graph
    shape_node = next(n for n in g.node if n.op_type == "Shape" and n.input[0] == "x")
    # Shape(x) -> Cast(int32): make it Cast(ReduceMax(x) > 0) * Shape(x) instead, data-dependent
    g.node.extend([
        helper.make_node("ReduceMax", ["x"], ["xmax"], keepdims=0),
        helper.make_node("Cast", ["xmax"], ["xmax_i"], to=TensorProto.INT64),
        helper.make_node("Add", [shape_node.output[0], "xmax_i"], ["shape_plus"]),
    ])
    cast = next(n for n in g.node if list(n.input) == [shape_node.output[0]] and n.op_type == "Cast")
    cast.input[0] = "shape_plus"
    from convrewrite.graph import toposort

    order = toposort(list(g.node), {"x"} | {t.name for t in g.initializer})
    del g.node[:]
    g.node.extend(order)
    check_skipped(model, "space-to-batch chain not folded")


# ----------------------------------------------------------------- zero-inserted kernels


def test_zero_inserted_conv1d_compacts_and_expands_back():
    model = load("zero_inserted_conv1d_ts13")
    compact = fold(model)
    conv = convs(compact.model.graph)[0]
    assert attrs(conv)["kernel_shape"] == [3] and attrs(conv)["dilations"] == [2] and attrs(conv)["pads"] == [2, 2]
    w0 = numpy_helper.to_array(model.graph.initializer[0])
    w1 = numpy_helper.to_array(next(t for t in compact.model.graph.initializer if t.name == conv.input[1]))
    np.testing.assert_array_equal(w1, w0[:, :, ::2])
    assert compact.counters["kernels_compacted"] == 1
    assert_same_outputs(model, compact.model, feeds_for(model))
    back = fold(compact.model, expand_dilations=True)
    assert back.counters["kernels_expanded"] == 1
    c0, c2 = convs(model.graph)[0], convs(back.model.graph)[0]
    assert attrs(c0) == attrs(c2)
    w2 = numpy_helper.to_array(next(t for t in back.model.graph.initializer if t.name == c2.input[1]))
    np.testing.assert_array_equal(w2, w0)
    assert_same_outputs(model, back.model, feeds_for(model))
    assert back.model == model  # the same model, field for field
    assert not fold(compact.model).rewritten  # compact again: nothing left


def test_zero_inserted_conv2d_multiplies_existing_dilation():
    model = load("zero_inserted_conv2d_ts13")
    result = fold(model)
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["kernel_shape"] == [3, 3] and attrs(conv)["dilations"] == [2, 4]
    assert attrs(conv)["pads"] == [2, 4, 2, 4]
    assert_same_outputs(model, result.model, feeds_for(model))
    back = fold(result.model, expand_dilations=True)
    assert attrs(convs(back.model.graph)[0])["kernel_shape"] == [5, 9]  # expansion also expands the old dilation
    assert_same_outputs(model, back.model, feeds_for(model))
    assert fold(back.model).model == result.model  # and compacting that gives the compact model again


def test_zero_inserted_conv_transpose():
    model = load("zero_inserted_convtr1d_ts13")
    result = fold(model)
    conv = convs(result.model.graph)[0]
    assert conv.op_type == "ConvTranspose"
    assert attrs(conv)["kernel_shape"] == [3] and attrs(conv)["dilations"] == [3]
    assert attrs(conv)["output_padding"] == [1] and attrs(conv)["strides"] == [2]
    assert_same_outputs(model, result.model, feeds_for(model))
    back = fold(result.model, expand_dilations=True)
    assert attrs(convs(back.model.graph)[0]) == attrs(convs(model.graph)[0])
    assert_same_outputs(model, back.model, feeds_for(model))
    assert back.model == model


def test_cli_compact_then_expand_gives_the_same_model(tmp_path):
    """`rewrite --fold dilated`, then `--fold dilated --expand-dilations`: the file read back is the original
    model (the input file is untouched)."""
    from click.testing import CliRunner

    from convrewrite.cli import main

    src = MODELS / "zero_inserted_conv1d_ts13.onnx"
    before = src.read_bytes()
    compact, back = tmp_path / "compact.onnx", tmp_path / "back.onnx"
    runner = CliRunner()
    # Dropping (or adding) zero taps changes what Inf/NaN inputs give: without --assume-finite the conv is
    # left alone, and the record says why.
    left = tmp_path / "left.onnx"
    r0 = runner.invoke(main, ["rewrite", str(src), "-o", str(left), "--fold", "dilated", "--check"])
    assert r0.exit_code == 0, r0.output
    assert "left alone without --assume-finite" in r0.output
    assert onnx.load(str(left)).graph.node == onnx.load(str(src)).graph.node
    r1 = runner.invoke(main, ["rewrite", str(src), "-o", str(compact), "--fold", "dilated", "--check",
                              "--assume-finite"])
    assert r1.exit_code == 0, r1.output
    assert attrs(convs(onnx.load(str(compact)).graph)[0])["dilations"] == [2]
    r2 = runner.invoke(main, ["rewrite", str(compact), "-o", str(back), "--fold", "dilated", "--expand-dilations",
                              "--check"])
    assert r2.exit_code == 0 and "left alone without --assume-finite" in r2.output, r2.output
    r2 = runner.invoke(main, ["rewrite", str(compact), "-o", str(back), "--fold", "dilated", "--expand-dilations",
                              "--check", "--assume-finite"])
    assert r2.exit_code == 0, r2.output
    assert onnx.load(str(back)) == onnx.load(str(src))
    assert src.read_bytes() == before


def test_near_zero_taps_are_not_compacted():
    result = fold(load("near_zero_kernel_ts13"))
    assert not result.rewritten and result.records[0].reason == "no dilation pattern"


def _conv_model(w, *, shared=False, **conv_attrs):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **conv_attrs)]
    outputs = [vi("y", ["d0", "d1", "d2"])]
    if shared:
        nodes.append(helper.make_node("Conv", ["y", "w"], ["y2"], name="conv2", **conv_attrs))
        outputs = [vi("y2", ["d0", "d1", "d2"])]
    c = w.shape[1]
    return make_model(nodes, [vi("x", [1, c, 20])], outputs, [init("w", w)], opset=13, ir_version=8)


def _zero_inserted(rng, c=4, k=5, d=2):
    w = rng.standard_normal((c, c, k)).astype(np.float32)
    w[:, :, np.arange(k) % d != 0] = 0.0
    return w


def test_shared_zero_inserted_weight_is_copied():
    model = _conv_model(_zero_inserted(np.random.default_rng(1)), shared=True, pads=[2, 2])
    result = fold(model)
    assert result.counters["kernels_compacted"] == 2
    weights = {c.input[1] for c in convs(result.model.graph)}
    assert len(weights) == 2  # one copy, one changed in place
    assert {t.name for t in result.model.graph.initializer} == weights
    assert_same_outputs(model, result.model, feeds_for(model))


def test_same_auto_pad_is_made_explicit():
    model = _conv_model(_zero_inserted(np.random.default_rng(2)), auto_pad="SAME_UPPER")
    result = fold(model)
    conv = convs(result.model.graph)[0]
    assert attrs(conv)["dilations"] == [2] and attrs(conv)["pads"] == [2, 2]
    assert attrs(conv).get("auto_pad", b"NOTSET") == b"NOTSET"
    assert_same_outputs(model, result.model, feeds_for(model))


def test_same_auto_pad_with_stride_and_dynamic_size_is_refused():
    w = _zero_inserted(np.random.default_rng(3))
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", auto_pad="SAME_UPPER", strides=[2])]
    model = make_model(nodes, [vi("x", [1, 4, "L"])], [vi("y", ["d0", "d1", "d2"])], [init("w", w)],
                       opset=13, ir_version=8)
    rec = fold(model).records[0]
    assert rec.status == "skipped" and "auto_pad" in rec.reason


def test_expand_leaves_undilated_convs():
    result = fold(load("near_zero_kernel_ts13"), expand_dilations=True)
    assert result.records[0].reason == "no dilations to expand" and not result.rewritten


# ----------------------------------------------------------------- subgraphs and functions


def test_chain_inside_if_branches_and_kernel_inside_function():
    chain = load("tf_s2b_conv2d_static")
    body = copy.deepcopy(chain.graph)
    del body.input[:]
    then_g = copy.deepcopy(body)
    then_g.name = "then"
    else_g = copy.deepcopy(body)
    else_g.name = "else"
    for g, suffix in ((then_g, "_t"), (else_g, "_e")):  # names unique across the model
        rename = {o: o + suffix for n in g.node for o in n.output}
        rename.update({t.name: t.name + suffix for t in g.initializer})
        for t in g.initializer:
            t.name = rename[t.name]
        for n in g.node:
            n.name += suffix
            n.input[:] = [rename.get(i, i) for i in n.input]
            n.output[:] = [rename.get(o, o) for o in n.output]
        g.output[0].name = rename[g.output[0].name]
    w = _zero_inserted(np.random.default_rng(4), c=5)
    fn_nodes = [
        helper.make_node("Constant", [], ["fw"], value=numpy_helper.from_array(w[:, :, None, :], "fw")),
        helper.make_node("Conv", ["fx", "fw"], ["fy"], name="fconv", pads=[0, 2, 0, 2]),
    ]
    fn = helper.make_function("local", "ZeroInserted", ["fx"], ["fy"], fn_nodes, [helper.make_opsetid("", 13)])
    nodes = [
        helper.make_node("If", ["cond"], ["h"], then_branch=then_g, else_branch=else_g),
        helper.make_node("Transpose", ["h"], ["hc"], perm=[0, 3, 1, 2]),
        helper.make_node("ZeroInserted", ["hc"], ["y"], domain="local"),
    ]
    graph = helper.make_graph(nodes, "g", [vi("cond", [], TensorProto.BOOL), vi("x", [2, 12, 12, 4])],
                              [vi("y", ["d0", "d1", "d2", "d3"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
                              ir_version=8, functions=[fn])
    onnx.checker.check_model(model)
    result = fold(model)
    rewritten = {r.node: r for r in result.records if r.rewritten}
    assert set(rewritten) == {"Conv2D_t", "Conv2D_e", "fconv"}, [r.to_dict() for r in result.records]
    onnx.checker.check_model(result.model)
    for views_graph in (result.model.graph.node[0].attribute[0].g, result.model.graph.node[0].attribute[1].g):
        assert "SpaceToDepth" not in [n.op_type for n in views_graph.node]
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 4)).astype(np.float32)
    for cond in (True, False):
        feeds = {"cond": np.array(cond), "x": x}
        assert_same_outputs(model, result.model, feeds)
    assert not fold(result.model).rewritten


# ----------------------------------------------------------------- every model: one record per conv, same outputs


def _all_convs(model):
    count = 0
    stack = [model.graph] + [f for f in model.functions]
    while stack:
        g = stack.pop()
        for n in g.node:
            if n.op_type in CONV_OPS:
                count += 1
            stack.extend(b for _, b in subgraphs(n))
    return count


MODEL_FILES = (sorted(MODELS.glob("*.onnx")) + sorted(SAMPLES.glob("*.onnx"))
               + sorted(CONFORMANCE.glob("**/model.onnx")))
NOT_RUNNABLE = {"same_dilated_ts13"}  # onnxruntime refuses SAME_UPPER with dilations (as exported)


def _model_id(path):
    return path.parent.name if path.name == "model.onnx" else path.stem


@pytest.mark.parametrize("expand", [False, True], ids=["compact", "expand"])
@pytest.mark.parametrize("path", MODEL_FILES, ids=_model_id)
def test_every_model_one_record_per_conv(path, expand):
    """Every conv of every shipped, sample and conformance model gets one record; what is rewritten
    passes the checker, runs the same, and a second run changes nothing."""
    model = onnx.load(str(path))
    result = fold(model, expand_dilations=expand)
    assert len(result.records) == _all_convs(model)
    keys = [r.key for r in result.records]
    assert len(keys) == len(set(keys))
    assert all(r.reason for r in result.records if not r.rewritten)
    again = fold(result.model, expand_dilations=expand)
    assert not again.rewritten and again.model.SerializeToString() == result.model.SerializeToString()
    if not result.rewritten:
        assert result.model.SerializeToString() == model.SerializeToString()
        return
    onnx.checker.check_model(result.model, full_check=True)
    if path.stem in NOT_RUNNABLE:
        return
    npz = path.with_suffix(".npz")
    feeds = None
    if npz.exists():
        data = np.load(npz)
        feeds = {i.name: data[i.name] for i in model.graph.input if i.name in data}
    assert_same_outputs(model, result.model, feeds)


# ----------------------------------------------------------------- linear time


def test_5000_layer_chain():
    rng = np.random.default_rng(0)
    n = 5000
    nodes, inits = [], []
    w = rng.standard_normal((4, 4, 3)).astype(np.float32)
    for i in range(n):
        inits.append(init(f"w{i}", w))
        nodes.append(helper.make_node("Conv", [f"h{i}", f"w{i}"], [f"h{i + 1}"], pads=[1, 1]))
    graph = helper.make_graph(nodes, "g", [vi("h0", [1, 4, 16])], [vi(f"h{n}", [1, 4, 16])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    ctx = PassContext(model, PassOptions())
    DilatedPass().run(ctx)  # its speed: benchmarks/bench_engine.py and bench_wide_dag.py, not a timed test
    assert len(ctx.records) == n and not any(r.rewritten for r in ctx.records)


# ----------------------------------------------------------------- the interpreter's arithmetic


def test_domain_decisions():
    d = Domain((2,), (1,), [0])  # W = 2q + 1, q >= 0
    w = d.var(0)
    assert d.ge(w, d.const(1)) and not d.ge(d.const(0), w)
    assert d.eq(w, d.const(0)) is False
    with pytest.raises(Unprovable):
        d.ge(w, d.const(5))  # true for large W only
    with pytest.raises(Unprovable):
        d.eq(w, d.const(5))
    assert exact_quotient(w.scale(4) + d.const(8), d.const(4)) == w + d.const(2)
    assert exact_quotient(w.scale(3), w) == d.const(3)
    assert exact_quotient(w, d.const(2)) is None  # 2q + 1 is odd


def test_mod_asks_for_a_longer_period():
    """(W + 4) % 2 is constant only per residue class of W modulo 2: period 1 is refined."""
    from convrewrite.symbolic import check_divisible

    d1 = Domain((1,), (0,), [1])
    with pytest.raises(NeedPeriod) as info:
        check_divisible(d1.var(0) + d1.const(4), 2)
    assert (info.value.var, info.value.factor) == (0, 2)
    d2 = Domain((2,), (1,), [0])
    check_divisible(d2.var(0) + d2.const(4) - d2.const(1), 2)
    assert Lin(3, (2,)).scale(2) == Lin(6, (4,))


def test_quantized_export_expands_and_compacts_bit_exact():
    """Issue 16: the dynamically quantized torch export (DynamicQuantizeLinear -> ConvInteger): the dilated
    ConvInteger expands to a kernel whose inserted taps hold the weight's zero point and compacts back; integer
    arithmetic is exact for every input, so no --assume-finite; bit-exact on onnxruntime, also after --to-2d."""
    model = load("quant_dynamic_conv1d_dyn")
    expanded = run_passes(model, ["dilated"], PassOptions(expand_dilations=True))
    assert expanded.counters["kernels_expanded"] == 1
    rec = next(r for r in expanded.rewritten if r.op_type == "ConvInteger")
    assert "integer" in rec.details["kernel"]
    feeds = {"x": np.random.default_rng(3).standard_normal((1, 4, 29)).astype(np.float32)}
    assert_same_outputs(model, expanded.model, feeds, atol=0.0)
    back = run_passes(expanded.model, ["dilated"], PassOptions())
    assert back.counters["kernels_compacted"] == 1
    assert_same_outputs(model, back.model, feeds, atol=0.0)
    lifted = run_passes(model, ["all", "to-2d"], PassOptions(expand_dilations=True))
    assert lifted.counters["kernels_expanded"] == 1 and lifted.counters["unsqueeze_inserted"] >= 1
    assert_same_outputs(model, lifted.model, feeds, atol=0.0)


def test_cli_quantized_export_fold_all_to_2d_check(tmp_path):
    from click.testing import CliRunner

    from convrewrite.cli import main

    out = tmp_path / "q2d.onnx"
    r = CliRunner().invoke(main, ["rewrite", str(MODELS / "quant_dynamic_conv1d_dyn.onnx"), "-o", str(out),
                                  "--fold", "all", "--expand-dilations", "--to-2d", "--check", "--providers", "cpu"])
    assert r.exit_code == 0 and "EQUIVALENT (bit-exact)" in r.output and "kernels expanded 1" in r.output, r.output
