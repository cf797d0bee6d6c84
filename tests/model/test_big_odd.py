"""Big and odd models through every pass (issue 8, item 5).

External data in and out, a model past protobuf's 2 GB limit, float16 and
bfloat16 weights, convolutions inside If/Loop/Scan bodies and model-local
functions, and a 10 000-node graph that is not a chain. Every rewrite is run:
original and rewritten model in onnxruntime CPU on the same inputs, outputs
compared with a stated tolerance.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import convrewrite
import convrewrite.model as cio
from convrewrite.cli import main
from big_models import BODIES, PASS_SETS, nested_model, rng, wide_dag
from util import assert_same_outputs, feeds_for, init, make_model, vi

PY = [sys.executable, "-m", "convrewrite"]
CONV_OPS = ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger")

# Pass combinations a user runs (what `rewrite` would run for the flags).


def conv_ranks(model: onnx.ModelProto) -> list[int]:
    """Spatial rank of every convolution, subgraphs and functions included, in a stable order."""
    ranks = []
    bodies = [model.graph] + list(model.functions)
    while bodies:
        body = bodies.pop(0)
        for node in body.node:
            if node.op_type in CONV_OPS:
                ks = [a for a in node.attribute if a.name == "kernel_shape"]
                ranks.append(len(ks[0].ints) if ks else -1)
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    bodies.append(a.g)
    return ranks


def rewritten_where(result) -> set[str]:
    return {r.graph for r in result.records if r.rewritten}


# ------------------------------------------------------------ external data


def small_net(seed: int = 0) -> onnx.ModelProto:
    """Causal Pad -> Conv, zero-inserted (dilated) kernel, depthwise (with bias) + pointwise: every fold applies."""
    g = rng(seed)
    c = 16  # every weight past io.EXTERNAL_TENSOR_MIN_BYTES, so each goes to the data file
    dil = np.zeros((c, c, 5), np.float32)
    dil[:, :, ::2] = g.standard_normal((c, c, 3)) / 16
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="constant"),
        helper.make_node("Conv", ["p", "w0"], ["a"], name="causal", kernel_shape=[3]),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w1"], ["b"], name="zero_inserted", kernel_shape=[5], pads=[2, 2]),
        helper.make_node("Conv", ["b", "wd", "bd"], ["d"], name="depthwise", kernel_shape=[16], pads=[8, 7], group=c),
        helper.make_node("Conv", ["d", "wp", "bp"], ["y"], name="pointwise", kernel_shape=[1]),
    ]
    inits = [
        init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)),
        init("w0", g.standard_normal((c, c, 3)).astype(np.float32) / 8),
        init("w1", dil),
        init("wd", g.standard_normal((c, 1, 16)).astype(np.float32) / 16),
        init("bd", g.standard_normal(c).astype(np.float32)),  # the separable fold moves it into the pointwise bias
        init("wp", g.standard_normal((c, c, 1)).astype(np.float32) / 8),
        init("bp", g.standard_normal(c).astype(np.float32)),
    ]
    return make_model(nodes, [vi("x", [1, c, 32])], [vi("y", [1, c, 32])], inits)


def save_external(model: onnx.ModelProto, path: Path, location: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save(copy, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path


def external_locations(path: Path) -> set[str]:
    model = onnx.load(str(path), load_external_data=False)
    return {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}


@pytest.mark.parametrize("flags", [["--to-2d"], ["--fold", "all"], ["--fold", "all", "--to-2d"]],
                         ids=["to-2d", "fold-all", "fold-all+to-2d"])
def test_external_data_in_external_data_out(tmp_path, flags):
    model = small_net()
    src = save_external(model, tmp_path / "in" / "net.onnx", "weights.bin")
    out = tmp_path / "out" / "net2.onnx"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(out)] + flags, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["net2.onnx", "net2.onnx.data"]
    assert external_locations(out) == {"net2.onnx.data"}
    assert out.stat().st_size < 4096 < (out.parent / "net2.onnx.data").stat().st_size
    rewritten = cio.load(out)
    assert rewritten.graph.node != model.graph.node  # something was rewritten
    assert_same_outputs(model, rewritten, atol=1e-5)


def test_external_data_can_be_turned_off_and_on(tmp_path):
    model = small_net()
    src = save_external(model, tmp_path / "in" / "net.onnx", "weights.bin")
    single = tmp_path / "single.onnx"
    r = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(single), "--to-2d", "--no-external-data"])
    assert r.exit_code == 0, r.output
    assert not single.with_name("single.onnx.data").exists()
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    ext = tmp_path / "ext.onnx"
    r = CliRunner().invoke(main, ["rewrite", str(plain), "-o", str(ext), "--to-2d", "--external-data"])
    assert r.exit_code == 0, r.output
    assert external_locations(ext) == {"ext.onnx.data"}
    assert_same_outputs(model, cio.load(single), atol=1e-5)
    assert_same_outputs(model, cio.load(ext), atol=1e-5)


def test_past_the_limit_goes_external_by_itself(tmp_path, monkeypatch):
    """The > 2 GB decision, shown cheaply: with the threshold lowered, a plain model comes out with external data."""
    model = small_net()
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    monkeypatch.setattr(cio.write, "EXTERNAL_DATA_THRESHOLD", 1024)
    out = tmp_path / "o.onnx"
    r = CliRunner().invoke(main, ["rewrite", str(plain), "-o", str(out), "--fold", "all", "--to-2d"])
    assert r.exit_code == 0, r.output
    assert external_locations(out) == {"o.onnx.data"}
    assert_same_outputs(model, cio.load(out), atol=1e-5)
    monkeypatch.setattr(cio.write, "EXTERNAL_DATA_THRESHOLD", 2**40)
    out2 = tmp_path / "o2.onnx"
    r = CliRunner().invoke(main, ["rewrite", str(plain), "-o", str(out2), "--fold", "all", "--to-2d"])
    assert r.exit_code == 0 and external_locations(out2) == set()


# --------------------------------------------------------------- past 2 GB


GIB = 2**30
BIG_LAYERS = 33  # x 64 MiB of weights: 2.06 GiB, past protobuf's 2 GiB limit


def _available_ram() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def write_big(path: Path, layers: int = BIG_LAYERS, channels: int = 512, kernel: int = 64) -> None:
    """A chain of causal Conv1d layers whose weights are one small pattern repeated to 64 MiB each.

    Written straight to disk as a model plus its external data file, one
    chunk at a time: the test process never holds the 2 GiB itself.
    """
    pattern = (rng(3).standard_normal(4096).astype(np.float32) / (channels * 4)).tobytes()
    nbytes = channels * channels * kernel * 4
    block = pattern * (4 * 2**20 // len(pattern))
    nodes, inits, name = [], [], "x"
    data = path.with_name(path.name + ".data")
    with open(data, "wb") as fh:
        for i in range(layers):
            t = TensorProto()
            t.name, t.data_type = f"w{i}", TensorProto.FLOAT
            t.dims.extend([channels, channels, kernel])
            t.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data.name), ("offset", str(fh.tell())), ("length", str(nbytes))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            for _ in range(nbytes // len(block)):
                fh.write(block)
            inits.append(t)
            nodes.append(helper.make_node("Conv", [name, f"w{i}"], [f"h{i}"], name=f"conv{i}", kernel_shape=[kernel],
                                          pads=[kernel - 1, 0]))
            name = f"h{i}"
    graph = helper.make_graph(nodes, "big", [vi("x", [1, channels, 4])], [vi(name, [1, channels, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path.write_bytes(model.SerializeToString())


def test_a_model_past_2_gb(tmp_path):
    """A > 2 GiB model from one repeated weight: rewritten to 2D by the CLI, saved with external data, both run.

    Needs about 8 GiB of free memory (the CLI process holds the model, the
    rewrite and one tensor being written) and 5 GiB of disk; skipped where
    the machine has less. About 30 s on the 2-core development machine.
    """
    if _available_ram() < 8 * GIB:
        pytest.skip(f"needs 8 GiB of free memory, {_available_ram() / GIB:.1f} GiB available")
    if shutil.disk_usage(tmp_path).free < 5 * GIB:
        pytest.skip("needs 5 GiB of free disk")
    src = tmp_path / "in" / "big.onnx"
    src.parent.mkdir()
    write_big(src)
    assert (src.parent / "big.onnx.data").stat().st_size > 2**31
    out = tmp_path / "out" / "big2d.onnx"
    out.parent.mkdir()
    proc = subprocess.run(PY + ["-q", "rewrite", str(src), "--to-2d", "-o", str(out)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["big2d.onnx", "big2d.onnx.data"]
    assert (out.parent / "big2d.onnx.data").stat().st_size > 2**31
    assert out.stat().st_size < 2**20
    skeleton = onnx.load(str(out), load_external_data=False)
    assert conv_ranks(skeleton) == [2] * BIG_LAYERS
    x = rng(4).standard_normal((1, 512, 4)).astype(np.float32)
    outputs = []
    for path in (src, out):  # by path: onnxruntime maps the external data itself
        sess = session_from_path(path)
        outputs.append(sess.run(None, {"x": x})[0])
        del sess
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5, rtol=1e-5)


def session_from_path(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# ------------------------------------------------------- float16, bfloat16


def typed_net(dtype: str) -> onnx.ModelProto:
    """`small_net` in float16 (data and weights), or float32 data with bfloat16 weights behind Casts.

    onnxruntime's CPU Conv runs float16 but has no bfloat16 kernel, so bfloat16
    appears as exporters write it for CPU: weights stored in bfloat16, a Cast
    to float before each convolution.
    """
    base = small_net(5)
    if dtype == "float16":
        model = onnx.ModelProto()
        model.CopyFrom(base)
        for t in model.graph.initializer:
            if t.data_type == TensorProto.FLOAT:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
        for v in list(model.graph.input) + list(model.graph.output):
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
        onnx.checker.check_model(model, full_check=True)
        return model
    model = onnx.ModelProto()
    model.CopyFrom(base)
    graph = model.graph
    casts = []
    for t in list(graph.initializer):
        if t.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(t)
        bf = helper.make_tensor(t.name + "_bf16", TensorProto.BFLOAT16, values.shape, values.ravel().tolist())
        graph.initializer.remove(t)
        graph.initializer.append(bf)
        casts.append(helper.make_node("Cast", [bf.name], [t.name], name=f"cast_{t.name}", to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    return model


# These tests are about scale and dtypes: the finite-math kernel compaction is allowed (assume_finite).
EXPECTED_REWRITES = {
    "to-2d": ["causal", "zero_inserted", "depthwise", "pointwise"],
    "causal": ["causal"],
    "dilated": ["zero_inserted"],
    "separable": ["depthwise", "pointwise"],
}


def weight_types(model: onnx.ModelProto) -> set[int]:
    """Storage types of the convolution weights (rank >= 3; a recomputed bias may take the conv's compute type)."""
    return {t.data_type for t in model.graph.initializer if len(t.dims) >= 3}


@pytest.mark.parametrize("passes", list(PASS_SETS), ids=list(PASS_SETS))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_float16_and_bfloat16_weights_through_every_pass(dtype, passes):
    model = typed_net(dtype)
    result = convrewrite.rewrite(model, PASS_SETS[passes], assume_finite=True)
    done = {(r.pass_name, r.node) for r in result.rewritten}
    expected = {(p, n) for p in PASS_SETS[passes] for n in EXPECTED_REWRITES[p]}
    if dtype == "bfloat16":
        # The dilated fold reads a kernel's zeros from an initializer; behind a Cast it leaves it alone, and says so.
        expected.discard(("dilated", "zero_inserted"))
        reasons = {r.reason for r in result.records if (r.pass_name, r.node) == ("dilated", "zero_inserted")}
        assert reasons <= {"no dilation pattern"}
    assert done == expected, [(r.pass_name, r.node, r.status, r.reason) for r in result.records]
    new = convrewrite.load(result.model)  # valid: checker and shape inference pass
    expected_type = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.BFLOAT16
    assert weight_types(new) == {expected_type}  # weights keep their storage type: nothing silently widened
    # float16: products rounded to 11 bits; a folded or re-laid kernel may round differently in the last place.
    assert_same_outputs(model, new, feeds_for(model, seed=1), atol=2e-2 if dtype == "float16" else 1e-5,
                        rtol=1e-2 if dtype == "float16" else 1e-5)


# ------------------------------------------------- subgraphs and functions




NESTED_REWRITES = {
    "to-2d": ["causal", "zero_inserted", "depthwise", "pointwise", "chomped"],
    "causal": ["causal", "chomped"],
    "dilated": ["zero_inserted"],
    "separable": ["depthwise", "pointwise"],
}


@pytest.fixture(scope="module")
def nested():
    return nested_model()


def _nested_feeds(model, cond: bool):
    feeds = feeds_for(model, seed=2)
    feeds["cond"] = np.array(cond)
    return feeds


@pytest.mark.parametrize("passes", list(PASS_SETS), ids=list(PASS_SETS))
def test_convs_in_if_loop_scan_and_functions_through_every_pass(nested, passes):
    result = convrewrite.rewrite(nested, PASS_SETS[passes], assume_finite=True)
    done = {(r.pass_name, r.graph, r.node[2:]) for r in result.rewritten}
    expected = {(p, body, node) for p in PASS_SETS[passes] for body in BODIES for node in NESTED_REWRITES[p]}
    assert done == expected
    for r in result.records:  # the node names say which body they are in
        assert r.node.startswith(BODIES[r.graph]), (r.graph, r.node)
    new = convrewrite.load(result.model)
    if "to-2d" in passes:
        assert set(conv_ranks(new)) == {2}
    for cond in (True, False):  # both branches of the If
        assert_same_outputs(nested, new, _nested_feeds(nested, cond), atol=1e-5)
    again = convrewrite.rewrite(new, [p for p in PASS_SETS[passes] if p != "to-2d"], assume_finite=True)
    assert not again.rewritten, [(r.pass_name, r.graph, r.node, r.reason) for r in again.rewritten]


def test_convs_in_subgraphs_and_functions_back_to_1d(nested):
    lifted = convrewrite.rewrite(nested, ["causal", "dilated", "separable", "to-2d"], assume_finite=True).model
    lowered = convrewrite.rewrite(lifted, ["to-1d"])
    assert {r.graph for r in lowered.rewritten} == set(BODIES)
    new = convrewrite.load(lowered.model)
    assert set(conv_ranks(new)) == {1}
    for cond in (True, False):
        assert_same_outputs(nested, new, _nested_feeds(nested, cond), atol=1e-5)


# ------------------------------------------------------ a wide residual DAG


WIDE_REWRITES = {"to-2d": 3124, "causal": 1250, "dilated": 624, "separable": 1250}


@pytest.fixture(scope="module")
def wide():
    return wide_dag()


def test_the_wide_dag_is_wide(wide):
    assert len(wide.graph.node) == 10_000
    readers: dict[str, int] = {}
    for n in wide.graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    produced = [o for n in wide.graph.node for o in n.output]
    assert sum(readers.get(o, 0) >= 2 for o in produced) > 2000  # thousands of values with two readers: not a chain
    assert readers["x"] == 50  # every lane starts from x, and every Mean of the first step reads it too


@pytest.mark.parametrize("passes", list(PASS_SETS), ids=list(PASS_SETS))
def test_a_10000_node_wide_dag_through_every_pass(wide, passes):
    """Completes (benchmarks/bench_wide_dag.py shows the time grows linearly), rewrites every candidate, stays equal."""
    result = convrewrite.rewrite(wide, PASS_SETS[passes], assume_finite=True)
    counts: dict[str, int] = {}
    for r in result.rewritten:
        counts[r.pass_name] = counts.get(r.pass_name, 0) + 1
    assert counts == {p: WIDE_REWRITES[p] for p in PASS_SETS[passes]}
    new = convrewrite.load(result.model)
    assert_same_outputs(wide, new, atol=1e-5)
