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
from util import assert_same_outputs, feeds_for, init, make_model, vi

PY = [sys.executable, "-m", "convrewrite"]
CONV_OPS = ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger")

# Pass combinations a user runs (what `rewrite` would run for the flags).
PASS_SETS = {
    "to-2d": ["to-2d"],
    "causal": ["causal"],
    "dilated": ["dilated"],
    "separable": ["separable"],
    "fold-all": ["causal", "dilated", "separable"],
    "fold-all+to-2d": ["causal", "dilated", "separable", "to-2d"],
}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


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

C, L = 8, 24


def _w(g, *shape, zero_inserted: bool = False):
    fan_in = shape[1] * shape[-1] if len(shape) >= 3 else 1
    w = (g.standard_normal(shape) / fan_in).astype(np.float32)
    if zero_inserted:
        w[..., 1::2] = 0.0
    return w


def _every_fold(prefix: str, x: str, out: str, g, consts: bool = False):
    """Pad -> causal Conv, zero-inserted Conv, depthwise (bias) -> pointwise, Conv -> chomp Slice: nodes, tensors.

    `consts`: weights as Constant nodes (a function has no initializers).
    """
    p = prefix
    tensors = {
        f"{p}pads": np.array([0, 0, 2, 0, 0, 0], np.int64),
        f"{p}w0": _w(g, C, C, 3),
        f"{p}w1": _w(g, C, C, 5, zero_inserted=True),
        f"{p}wd": _w(g, C, 1, 3),
        f"{p}bd": g.standard_normal(C).astype(np.float32),
        f"{p}wp": _w(g, C, C, 1),
        f"{p}w2": _w(g, C, C, 3),
        f"{p}starts": np.array([0], np.int64),
        f"{p}ends": np.array([-2], np.int64),
        f"{p}axes": np.array([2], np.int64),
    }
    nodes = [
        helper.make_node("Pad", [x, f"{p}pads"], [f"{p}padded"], name=f"{p}pad"),
        helper.make_node("Conv", [f"{p}padded", f"{p}w0"], [f"{p}a"], name=f"{p}causal", kernel_shape=[3]),
        helper.make_node("Conv", [f"{p}a", f"{p}w1"], [f"{p}b"], name=f"{p}zero_inserted", kernel_shape=[5], pads=[2, 2]),
        helper.make_node("Conv", [f"{p}b", f"{p}wd", f"{p}bd"], [f"{p}d"], name=f"{p}depthwise", kernel_shape=[3],
                         pads=[1, 1], group=C),
        helper.make_node("Conv", [f"{p}d", f"{p}wp"], [f"{p}e"], name=f"{p}pointwise", kernel_shape=[1]),
        helper.make_node("Conv", [f"{p}e", f"{p}w2"], [f"{p}f"], name=f"{p}chomped", kernel_shape=[3], pads=[2, 2]),
        helper.make_node("Slice", [f"{p}f", f"{p}starts", f"{p}ends", f"{p}axes"], [out], name=f"{p}chomp"),
    ]
    if consts:
        nodes = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(v, n)) for n, v in tensors.items()] + nodes
        return nodes, []
    return nodes, [numpy_helper.from_array(v, n) for n, v in tensors.items()]


def nested_model() -> onnx.ModelProto:
    """The same convolutions in the main graph, both If branches, a Loop body, a Scan body and a function."""
    g = rng(11)
    main_nodes, main_inits = _every_fold("m_", "x", "m_out", g)
    then_nodes, then_inits = _every_fold("t_", "m_out", "t_out", g)
    else_nodes, else_inits = _every_fold("e_", "m_out", "e_out", g)
    then_g = helper.make_graph(then_nodes, "then", [], [vi("t_out", [1, C, L])], then_inits)
    else_g = helper.make_graph(else_nodes, "else", [], [vi("e_out", [1, C, L])], else_inits)
    loop_nodes, loop_inits = _every_fold("l_", "l_in", "l_out", g)
    loop_nodes.append(helper.make_node("Identity", ["l_cond_in"], ["l_cond_out"], name="l_cond"))
    loop_g = helper.make_graph(
        loop_nodes, "loop_body",
        [helper.make_tensor_value_info("l_iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("l_cond_in", TensorProto.BOOL, []), vi("l_in", [1, C, L])],
        [helper.make_tensor_value_info("l_cond_out", TensorProto.BOOL, []), vi("l_out", [1, C, L])], loop_inits)
    scan_nodes, scan_inits = _every_fold("s_", "s_x", "s_y", g)
    scan_nodes.append(helper.make_node("Identity", ["s_state_in"], ["s_state_out"], name="s_state"))
    scan_g = helper.make_graph(scan_nodes, "scan_body", [vi("s_state_in", [1]), vi("s_x", [1, C, L])],
                               [vi("s_state_out", [1]), vi("s_y", [1, C, L])], scan_inits)
    func_nodes, _ = _every_fold("f_", "fx", "fy", g, consts=True)
    func = helper.make_function("local", "EveryFold", ["fx"], ["fy"], func_nodes, [helper.make_opsetid("", 13)])
    nodes = main_nodes + [
        helper.make_node("If", ["cond"], ["if_out"], name="If_0", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "", "if_out"], ["loop_out"], name="Loop_0", body=loop_g),
        helper.make_node("Unsqueeze", ["loop_out", "zero"], ["seq"], name="to_seq"),
        helper.make_node("Concat", ["seq", "seq"], ["seq2"], name="two_steps", axis=0),
        helper.make_node("Scan", ["state0", "seq2"], ["state", "scan_out"], name="Scan_0", body=scan_g,
                         num_scan_inputs=1),
        helper.make_node("ReduceSum", ["scan_out", "zero"], ["summed"], name="sum_steps", keepdims=0),
        helper.make_node("EveryFold", ["summed"], ["y"], name="func_call", domain="local"),
    ]
    inits = main_inits + [
        init("trips", np.array(2, np.int64)),
        init("zero", np.array([0], np.int64)),
        init("state0", np.zeros(1, np.float32)),
    ]
    graph = helper.make_graph(nodes, "nested", [vi("x", [1, C, L]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [vi("y", [1, C, L])], inits)
    model = helper.make_model(graph, functions=[func], ir_version=8,
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    onnx.checker.check_model(model, full_check=True)
    return model


BODIES = {"main": "m_", "main/If_0/then_branch": "t_", "main/If_0/else_branch": "e_", "main/Loop_0/body": "l_",
          "main/Scan_0/body": "s_", "function:EveryFold": "f_"}

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


def wide_dag(nodes: int = 10_000, lanes: int = 25, channels: int = 4, length: int = 16) -> onnx.ModelProto:
    """`lanes` parallel paths, each step one of four convolution patterns then a Mean with the next lane.

    Not a chain: every step reads two lanes, so each value has two readers
    and the graph is a wide DAG. Exporter-like sharing: one pads constant for
    every Pad, one set of Slice operands for every chomp. About 4 nodes per
    lane and step; steps are added until `nodes` is reached.
    """
    g = rng(21)
    c = channels
    inits = [
        init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)),
        init("starts", np.array([0], np.int64)),
        init("ends", np.array([-2], np.int64)),
        init("axes", np.array([2], np.int64)),
    ]
    out_nodes: list[onnx.NodeProto] = []
    lane = ["x"] * lanes
    counter = [0]

    def w(*shape, zero_inserted=False):
        counter[0] += 1
        name = f"w{counter[0]}"
        inits.append(init(name, _w(g, *shape, zero_inserted=zero_inserted)))
        return name

    def add(op, inputs, **kw):
        counter[0] += 1
        out = f"t{counter[0]}"
        out_nodes.append(helper.make_node(op, inputs, [out], name=f"n{counter[0]}", **kw))
        return out

    step = 0
    while len(out_nodes) + lanes + 1 <= nodes:
        new = []
        for i in range(lanes):
            if len(out_nodes) + 5 > nodes - 1:
                new.append(lane[i])
                continue
            h, kind = lane[i], (step + i) % 4
            if kind == 0:  # causal: Pad -> Conv
                h = add("Conv", [add("Pad", [h, "pads"]), w(c, c, 3)], kernel_shape=[3])
            elif kind == 1:  # causal: Conv -> chomp Slice
                h = add("Slice", [add("Conv", [h, w(c, c, 3)], kernel_shape=[3], pads=[2, 2]), "starts", "ends", "axes"])
            elif kind == 2:  # separable: depthwise (bias) -> pointwise
                bias = w(c)
                h = add("Conv", [add("Conv", [h, w(c, 1, 3), bias], kernel_shape=[3], pads=[1, 1], group=c),
                                 w(c, c, 1)], kernel_shape=[1])
            else:  # dilated: a zero-inserted kernel
                h = add("Tanh", [add("Conv", [h, w(c, c, 5, zero_inserted=True)], kernel_shape=[5], pads=[2, 2])])
            new.append(add("Mean", [add("Relu", [h]), lane[(i + 1) % lanes]]))
        lane = new
        step += 1
    last = add("Sum", lane)
    while len(out_nodes) < nodes:  # exactly `nodes`
        last = add("Relu", [last])
    graph = helper.make_graph(out_nodes, "wide", [vi("x", [1, c, length])], [vi(out_nodes[-1].output[0], [1, c, length])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


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
