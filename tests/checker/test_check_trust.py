"""Issue 13: the check earns its verdict on real models.

Inputs on which the original runs (dims chosen from the model, grown, or a
"cannot check" verdict), draws that find differences (wide, batch, index
range, bool, special values), every output compared by what it is, the
interface compared first, tolerances from the model's dtype, messages that
show the difference. Models come from models/make_check_models.py (PyTorch
exports and Paddle-style -1 dims) and from small graphs built here.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from convrewrite.checker import CheckInputError, check, compare_arrays, compare_values, make_inputs
from convrewrite.cli import main
from convrewrite.errors import ConvRewriteError
from util import MODELS, init, make_model, vi

F, I64, B8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
RNG = np.random.default_rng(13)
W = RNG.standard_normal((4, 3, 3)).astype(np.float32)

# onnxruntime cannot run these models at all (SAME auto_pad with dilation is not implemented on CPU):
# the honest verdict is "cannot check", never "equivalent".
NOT_RUNNABLE = {"same_dilated_ts13.onnx"}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def saved(tmp_path, name, model):
    path = tmp_path / name
    onnx.save(model, path)
    return path


def graph(nodes, inputs, outputs, inits=None, opset=13):
    return make_model(nodes, inputs, outputs, [init(k, v) for k, v in (inits or {}).items()], opset=opset)


def conv_then(nodes_after, inputs=(("x", [1, 3, 16]),), out_shape=(1, 4, 16), inits=None, extra_inputs=()):
    """x -> Conv (4 out channels, pads 1) -> ... -> y: a conv model for rewrite --check."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1])] + list(nodes_after)
    return graph(nodes, [vi(n, s) for n, s in inputs] + list(extra_inputs), [vi("y", list(out_shape))],
                 {"w": W, **(inits or {})})


# ------------------------------------------------------- inputs the original runs on


@pytest.mark.parametrize("path", sorted(glob.glob(str(MODELS / "*.onnx"))), ids=os.path.basename)
def test_check_m_m_passes_on_every_shipped_model(path):
    report = check(path, path, providers="cpu")
    if os.path.basename(path) in NOT_RUNNABLE:
        assert report.verdict == "cannot check" and report.exit_code == 2
        assert report.cannot_check.node  # names the node onnxruntime stopped at
    else:
        assert report.verdict == "equivalent" and report.exit_code == 0, report.summary


@pytest.mark.parametrize("name, dims, why", [
    ("stft_reflect_dyn_ts13", {"batch": 2, "time": 1024}, "reflect pad"),
    ("stft_reflect_dyn_dyn18", {"time": 1024}, "reflect pad"),
    ("resize_dyn_ts13", {"h": 20, "w": 20}, "meets a fixed size 40"),
    ("broadcast_init_dyn", {"L": 100}, "meets a fixed size 100"),
    ("sym_fixed_elsewhere", {"T": 37}, "meets a fixed size 37"),
])
def test_dims_come_from_what_the_model_tells(name, dims, why):
    """At 16 these originals do not run (a reflect Pad, a broadcast with a fixed-size initializer)."""
    path = MODELS / f"{name}.onnx"
    report = check(path, path, providers="cpu")
    assert report.ok, report.summary
    assert {k: report.dims[k] for k in dims} == dims
    assert any(why in report.dim_reasons[k] for k in dims)
    assert "dims:" in str(report) and why in str(report)


def test_minus_one_dims_are_dynamic(tmp_path):
    path = MODELS / "paddle_minus1_dims.onnx"
    assert [d.dim_value for d in onnx.load(path).graph.input[0].type.tensor_type.shape.dim] == [-1, 3, 48, -1]
    assert cli("check", path, path).exit_code == 0
    given = cli("check", path, path, "--shape", "x=1x3x48x192")
    assert given.exit_code == 0 and "x: float32 [1x3x48x192]" in given.stdout
    npz = MODELS / "paddle_minus1_dims.npz"
    assert cli("check", path, path, "--inputs", npz).exit_code == 0
    assert cli("check", path, "--expected", npz).exit_code == 0
    assert make_inputs(path)["x"].shape[1:3] == (3, 48)


def test_rewrite_check_gives_a_verdict_where_16_does_not_run(tmp_path):
    out = tmp_path / "o.onnx"
    result = cli("rewrite", MODELS / "stft_reflect_dyn_ts13.onnx", "-o", out, "--fold", "all", "--to-2d", "--check")
    assert result.exit_code == 0, result.output
    assert "EQUIVALENT" in result.stdout and out.exists()


def unrunnable():
    """A conv model whose Reshape can never run (4*L elements into 5x5): the original fails on every input."""
    return conv_then([helper.make_node("Reshape", ["c", "s"], ["y"])], inputs=(("x", [1, 3, "L"]),),
                     inits={"s": np.array([5, 5], np.int64)}, out_shape=(5, 5))


def test_original_that_cannot_run_is_cannot_check_not_a_difference(tmp_path):
    model = unrunnable()
    report = check(model, model, providers="cpu")
    assert report.verdict == "cannot check" and report.exit_code == 2 and not report.ok
    c = report.cannot_check
    assert c.op_type == "Reshape" and "does not run" in report.summary and "--shape" in report.summary
    assert "differ" not in report.summary
    data = json.loads(report.to_json())
    assert data["verdict"] == "cannot check" and data["cannot_check"]["detail"].count("\n") >= 0
    assert "Status Message" in data["cannot_check"]["detail"] or "reshape" in data["cannot_check"]["detail"].lower()
    path = saved(tmp_path, "m.onnx", model)
    result = cli("check", path, path)
    assert result.exit_code == 2 and "CANNOT CHECK" in result.stdout
    verbose = cli("check", path, path, "-v")
    assert "onnxruntime:" in verbose.stdout  # the whole message under -v
    out = tmp_path / "o.onnx"
    rewritten = cli("rewrite", path, "-o", out, "--to-2d", "--check")
    assert rewritten.exit_code == 2 and not out.exists()
    assert "cannot check" in rewritten.stderr and "outputs differ" not in rewritten.output
    bisected = cli("rewrite", path, "-o", out, "--to-2d", "--check", "--bisect", "--force")
    assert bisected.exit_code == 2 and not out.exists() and "culprit" not in bisected.output


def test_dims_grow_until_the_original_runs():
    """TopK(k=100) needs 100 samples; no rule tells the planner, so the length grows until it runs."""
    model = graph([helper.make_node("TopK", ["x", "k"], ["y", "i"])], [vi("x", [1, "L"])],
                  [vi("y", [1, 100]), vi("i", [1, 100], I64)], {"k": np.array([100], np.int64)})
    report = check(model, model, providers="cpu")
    assert report.ok, report.summary
    assert report.dims["L"] == 256 and "grown to 256" in report.dim_reasons["L"]
    assert any("did not run with L=16; L=64" in n for n in report.notes)


def test_memory_budget_refuses_with_one_line(tmp_path):
    huge = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 10**9])], [vi("y", [1, 10**9])])
    with pytest.raises(CheckInputError, match=r"input 'x' \[1, 1000000000\].*memory budget"):
        check(huge, huge, providers="cpu", memory_budget=2**30)
    extreme = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 2**62])], [vi("y", [1, 2**62])])
    with pytest.raises(CheckInputError, match="memory budget"):
        check(extreme, extreme, providers="cpu")


def test_declared_gigantic_input_never_allocates(tmp_path):
    """[1, 10^9] float32 would take 4 GB: refused in one line by a process capped at 3 GB."""
    path = saved(tmp_path, "big.onnx", graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 10**9])],
                                           [vi("y", [1, 10**9])]))
    cap = 3 * 2**30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    proc = subprocess.run([sys.executable, "-m", "convrewrite", "check", str(path), str(path), "--providers", "cpu"],
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "input 'x' [1, 1000000000]" in proc.stderr and "memory budget" in proc.stderr


def test_negative_declared_dims_are_dynamic():
    model = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, -5])], [vi("y", [1, -5])])
    report = check(model, model, providers="cpu")
    assert report.ok and report.dims == {"x[1]": 16}


# ------------------------------------------------------- draws that find differences


def where_guarded(scale):
    """y = Where(x > 5, x * scale, x): normal draws never take the first branch."""
    nodes = [
        helper.make_node("Greater", ["x", "five"], ["g"]),
        helper.make_node("Mul", ["x", "k"], ["xk"]),
        helper.make_node("Where", ["g", "xk", "x"], ["y"]),
    ]
    return graph(nodes, [vi("x", [1, 64])], [vi("y", [1, 64])],
                 {"five": np.array(5, np.float32), "k": np.array(scale, np.float32)})


def test_where_guarded_difference_is_found_by_the_wide_draw():
    report = check(where_guarded(1.0), where_guarded(1.5), providers="cpu", finite=True)
    row = report.output("y")
    assert not report.ok and row.failed_trial_labels == ["wide (seed 1)"]
    assert "wide" in report.summary


def gather(table):
    return graph([helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)],
                 [vi("idx", [1, 6], I64)], [vi("y", [1, 6, 4])], {"table": table})


def test_gather_rows_beyond_the_small_range_are_reached():
    table = np.arange(400, dtype=np.float32).reshape(100, 4)
    changed = table.copy()
    changed[57:] += 1  # rows a draw in [0, 3] never reads
    report = check(gather(table), gather(changed), providers="cpu", trials=4)
    assert not report.ok
    assert report.inputs[0]["source"] == "indices in [-100, 99] (the whole range it indexes)"
    assert check(gather(table), gather(table), providers="cpu").ok


def batch_model(mixing):
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    if mixing:  # each sample replaced by the batch mean: equal at batch 1 only
        nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
                 helper.make_node("Shape", ["x"], ["s"]),
                 helper.make_node("Expand", ["m", "s"], ["y"])]
    return graph(nodes, [vi("x", ["N", 4])], [vi("y", ["N", 4])])


def test_batch_mixing_is_seen_with_two_samples():
    report = check(batch_model(False), batch_model(True), providers="cpu")
    assert not report.ok and report.dims["N"] == 2 and report.inputs[0]["shape"] == [2, 4]
    assert check(batch_model(False), batch_model(True), providers="cpu", shapes={"x": (1, 4)}).ok


def bool_model(otherwise):
    return graph([helper.make_node("Where", ["b", "x", "o"], ["y"])], [vi("b", [1], B8), vi("x", [4])],
                 [vi("y", [4])], {"o": np.array([otherwise], np.float32)})


def test_both_bool_values_are_drawn():
    report = check(bool_model(0.0), bool_model(1.0), providers="cpu")
    assert not report.ok  # differs only where b is False: the wide draw negates the normal one


def zero_tap(dilated):
    """The zero-inserted kernel and its dilated fold: equal for finite inputs, not under Inf/NaN."""
    w = np.random.default_rng(7).standard_normal((2, 1, 2)).astype(np.float32)
    if dilated:
        node = helper.make_node("Conv", ["x", "w"], ["y"], dilations=[2])
        kernel = w
    else:
        node = helper.make_node("Conv", ["x", "w"], ["y"])
        kernel = np.stack([w[..., 0], np.zeros_like(w[..., 0]), w[..., 1]], axis=-1)
    return graph([node], [vi("x", [1, 1, 16])], [vi("y", [1, 2, 14])], {"w": kernel})


def test_special_values_trial_finds_non_finite_differences():
    report = check(zero_tap(False), zero_tap(True), providers="cpu")
    row = report.output("y")
    assert not report.ok and report.special_only and row.special_only
    assert row.failed_trial_labels == ["special values (seed 2)"] and row.stats.mismatched_special > 0
    assert "only under special values" in report.summary
    finite = check(zero_tap(False), zero_tap(True), providers="cpu", finite=True)
    assert finite.ok and [t["kind"] for t in finite.trials] == ["normal", "wide"]
    result = cli("check", saved_tmp(zero_tap(False)), saved_tmp(zero_tap(True)), "--finite")
    assert result.exit_code == 0


def saved_tmp(model, _counter=[0]):
    import tempfile

    _counter[0] += 1
    folder = Path(tempfile.mkdtemp(prefix="trust-"))
    path = folder / f"m{_counter[0]}.onnx"
    onnx.save(model, path)
    return path


def test_special_values_keep_their_positions():
    x = make_inputs(zero_tap(False), seed=2, kind="special")["x"]
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    assert (x == 0).any() and np.signbit(x[x == 0]).any()


# ------------------------------------------------------- every output by what it is


def seq_model(scale):
    nodes = [helper.make_node("Mul", ["x", "k"], ["x2"]), helper.make_node("SequenceConstruct", ["x", "x2"], ["y"])]
    seq = helper.make_tensor_sequence_value_info("y", F, [1, 4])
    return graph(nodes, [vi("x", [1, 4])], [seq], {"k": np.array(scale, np.float32)})


def test_sequence_outputs_are_compared_element_by_element():
    assert check(seq_model(2.0), seq_model(2.0), providers="cpu").ok
    report = check(seq_model(2.0), seq_model(2.5), providers="cpu")
    row = report.output("y")
    assert not report.ok and row.stats.kind == "sequence" and row.stats.worst_index[0] == 1


def optional_model(present):
    node = (helper.make_node("Optional", ["x"], ["y"]) if present else
            helper.make_node("Optional", [], ["y"], type=helper.make_tensor_type_proto(F, [1, 4])))
    out = helper.make_value_info("y", helper.make_optional_type_proto(helper.make_tensor_type_proto(F, [1, 4])))
    return graph([node], [vi("x", [1, 4])], [out], opset=18)


def test_optional_outputs_compare_presence_and_value():
    assert check(optional_model(True), optional_model(True), providers="cpu").ok
    report = check(optional_model(True), optional_model(False), providers="cpu")
    assert not report.ok and report.output("y").status == "presence mismatch"


def string_model(scale):
    nodes = [helper.make_node("Mul", ["x", "k"], ["m"]), helper.make_node("Cast", ["m"], ["y"], to=TensorProto.STRING)]
    return graph(nodes, [vi("x", [3])], [vi("y", [3], TensorProto.STRING)], {"k": np.array(scale, np.float32)})


def test_string_outputs_compare_exactly():
    assert check(string_model(1.0), string_model(1.0), providers="cpu").ok
    report = check(string_model(1.0), string_model(2.0), providers="cpu", finite=True)
    assert not report.ok and report.output("y").stats.kind == "string" and "strings differ" in report.output("y").message


def test_integer_statistics_are_exact():
    big = np.array([2**62 + 1, 5, -(2**62), 7], np.int64)
    same = compare_values(big, big.copy())
    assert same.ok and same.max_abs == 0 and same.beyond_count == 0
    off = big.copy()
    off[0] -= 1
    stats = compare_values(big, off)
    assert not stats.ok and stats.max_abs == 1 and stats.beyond_count == 1 and stats.worst_index == (0,)
    extremes = compare_arrays(np.array([np.iinfo(np.int64).max], np.int64), np.array([np.iinfo(np.int64).min], np.int64))
    assert extremes.max_abs == 2**64 - 1
    u = compare_arrays(np.array([2**64 - 1], np.uint64), np.array([0], np.uint64))
    assert u.max_abs == 2**64 - 1


def test_worst_element_prints_exactly_enough_to_differ():
    stats = compare_arrays(np.array([-2.06], np.float32), np.array([-2.0600002], np.float32), 0.0, 0.0)
    assert "-2.0600002 vs -2.06" in stats.message


def test_an_output_that_cannot_be_compared_never_passes(tmp_path):
    model = conv_then([helper.make_node("Relu", ["c"], ["y"]), helper.make_node("Identity", ["c"], ["z"])])
    model.graph.output.append(vi("z", [1, 4, 16]))
    feed = make_inputs(model)
    npz = tmp_path / "io.npz"
    import onnxruntime as ort

    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], feed)[0]
    np.savez(npz, x=feed["x"], y=y)  # nothing for z
    report = check(model, expected=npz, providers="cpu")
    assert not report.ok and report.output("z").status == "no reference"


# ------------------------------------------------------- interface first


def test_dropped_overridable_input_fails():
    scale = helper.make_tensor_value_info("scale", F, [1])
    original = graph([helper.make_node("Mul", ["x", "scale"], ["y"])], [vi("x", [4]), scale], [vi("y", [4])],
                     {"scale": np.array([2.0], np.float32)})
    candidate = graph([helper.make_node("Mul", ["x", "scale"], ["y"])], [vi("x", [4])], [vi("y", [4])],
                      {"scale": np.array([2.0], np.float32)})
    report = check(original, candidate, providers="cpu")
    assert not report.ok and "the candidate has no input 'scale' (initializer-backed" in report.summary


def test_fixing_a_dynamic_input_to_the_default_draw_fails():
    def model(length):
        return graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 3, length])], [vi("y", [1, 3, length])])

    report = check(model("T"), model(16), providers="cpu")
    assert not report.ok
    assert "input 'x' dim 2: fixed to 16 in the candidate, dynamic (T) in the original" in report.problems
    assert check(model("T"), model(16), providers="cpu", ignore_interface=True).ok
    result = cli("check", saved_tmp(model("T")), saved_tmp(model(16)))
    assert result.exit_code == 1 and "problem: input 'x' dim 2" in result.stdout


def test_dtype_and_rank_changes_fail():
    a = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])], [vi("y", [1, 4])])
    b = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [4])], [vi("y", [4])])
    assert "input 'x': rank 1 in the candidate, 2 in the original" in check(a, b, providers="cpu").problems


# ------------------------------------------------------- --expected tolerances


def test_float64_references_use_the_model_dtype_tolerance(tmp_path):
    model = graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1])], [vi("x", [1, 3, 16])],
                  [vi("y", [1, 4, 16])], {"w": W})
    x = RNG.standard_normal((1, 3, 16)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1)))
    y64 = np.einsum("oik,bilk->bol", W.astype(np.float64),
                    np.stack([xp[:, :, k:k + 16] for k in range(3)], axis=-1).transpose(0, 1, 2, 3))
    npz = tmp_path / "io.npz"
    np.savez(npz, x=x, y=y64)  # float64 framework outputs, float32 model
    report = check(model, expected=npz, providers="cpu")
    row = report.output("y")
    assert report.ok, report.summary
    assert (row.atol, row.rtol) == (1e-5, 1e-4) and row.stats.max_abs > 1e-8  # float64 tolerances would fail


# ------------------------------------------------------- tensor files


def test_npz_errors_say_what_is_wrong(tmp_path):
    model = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])], [vi("y", [1, 4])])
    path = saved(tmp_path, "m.onnx", model)
    text = tmp_path / "inputs.npz"
    text.write_text("x = 1, 2, 3\n")
    result = cli("check", path, path, "--inputs", text)
    assert result.exit_code == 2 and "not an .npz/.npy file" in result.stderr and "pickled" not in result.stderr
    import zipfile

    notarray = tmp_path / "notarray.npz"
    with zipfile.ZipFile(notarray, "w") as zf:
        zf.writestr("x.npy", "hello, not an array")
    result = cli("check", path, path, "--inputs", notarray)
    assert result.exit_code == 2 and "not an array" in result.stderr and "Traceback" not in result.output
    big_endian = tmp_path / "be.npz"
    np.savez(big_endian, x=np.arange(4, dtype=">f4").reshape(1, 4))
    result = cli("check", path, path, "--inputs", big_endian, "-v")
    assert result.exit_code == 0 and "big-endian float32 converted" in result.stdout
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((1, 5), np.float32))
    result = cli("check", path, path, "--inputs", wrong)
    assert result.exit_code == 2 and "has shape [1, 5], the model wants [1, 4]" in result.stderr


def test_npz_member_larger_than_its_header_is_refused(tmp_path):
    import io
    import zipfile

    model = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])], [vi("y", [1, 4])])
    path = saved(tmp_path, "m.onnx", model)
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 4), np.float32))
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", buf.getvalue() + b"\0" * (64 * 2**20))  # 64 MB of zeros behind a 16-byte array
        zf.writestr("unused.npy", b"\0" * (64 * 2**20))  # never decompressed: the model has no input 'unused'
    assert bomb.stat().st_size < 2**20
    result = cli("check", path, path, "--inputs", bomb)
    assert result.exit_code == 2 and "header promises 16" in result.stderr


def test_draws_choose_which_trials_run(tmp_path):
    model = zero_tap(False)
    only = check(model, model, providers="cpu", draws="normal", trials=2)
    assert [t["kind"] for t in only.trials] == ["normal", "normal"] and only.ok
    assert [t["kind"] for t in check(model, model, providers="cpu", draws=["special", "wide"]).trials] == ["wide", "special"]
    with pytest.raises(CheckInputError, match="draws: bogus"):
        check(model, model, draws="bogus")
    with pytest.raises(CheckInputError, match="nothing left"):
        check(model, model, draws="special", finite=True)
    path = saved(tmp_path, "m.onnx", model)
    result = cli("check", path, path, "--draws", "normal,wide")
    assert result.exit_code == 0 and "trials: normal (seed 0), wide (seed 1)\n" in result.stdout
    out = tmp_path / "o.onnx"
    rewritten = cli("rewrite", path, "-o", out, "--to-2d", "--check", "--draws", "wide")
    assert rewritten.exit_code == 0 and "trials: wide (seed 0)" in rewritten.stdout


# ------------------------------------------------------- tensor files never hang or blow up


def run_cli(args, cap_bytes=None, timeout=30):
    """The CLI in a child process with a time limit (a hang fails) and optionally a memory cap."""
    import signal

    def setup():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if cap_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    return subprocess.run([sys.executable, "-m", "convrewrite", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=setup)


def relu_model(tmp_path):
    return saved(tmp_path, "m.onnx", graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4])],
                                          [vi("y", [1, 4])]))


def test_fifo_inputs_and_expected_are_refused_without_blocking(tmp_path):
    path = relu_model(tmp_path)
    fifo = tmp_path / "x.npz"
    os.mkfifo(fifo)
    for args in (["check", path, path, "--inputs", fifo], ["check", path, "--expected", fifo],
                 ["rewrite", path, "-o", tmp_path / "o.onnx", "--to-2d", "--check", "--inputs", fifo]):
        proc = run_cli(args)
        assert proc.returncode == 2 and "is a FIFO" in proc.stderr and "Traceback" not in proc.stderr
    folder = tmp_path / "sets"
    folder.mkdir()
    os.mkfifo(folder / "input_0.pb")
    proc = run_cli(["check", path, path, "--inputs", folder])
    assert proc.returncode == 2 and "is a FIFO" in proc.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_npz_bomb_is_never_decompressed_under_a_memory_cap(tmp_path):
    import io
    import zipfile

    path = relu_model(tmp_path)
    buf = io.BytesIO()
    np.save(buf, np.zeros((1, 4), np.float32))
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", buf.getvalue())
        zf.writestr("unused.npy", b"\0" * (1100 * 2**20))  # 1.1 GB for an input the model does not have
        big = io.BytesIO()
        np.lib.format.write_array_header_2_0(big, {"descr": "<f4", "fortran_order": False, "shape": (1, 4)})
        zf.writestr("y.npy", big.getvalue() + b"\0" * (800 * 2**20))  # an output whose header lies
    assert bomb.stat().st_size < 4 * 2**20
    proc = run_cli(["check", path, path, "--inputs", bomb], cap_bytes=3 * 2**30)
    assert proc.returncode == 0, proc.stderr  # 'unused' and 'y' were never decompressed
    proc = run_cli(["check", path, "--expected", bomb], cap_bytes=3 * 2**30)
    assert proc.returncode == 2 and "header promises 16" in proc.stderr and "Traceback" not in proc.stderr


def test_pb_external_data_is_read_from_its_own_folder(tmp_path, monkeypatch):
    from onnx import numpy_helper

    model = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 1024])], [vi("y", [1, 1024])])
    path = saved(tmp_path, "m.onnx", model)
    folder = tmp_path / "sets"
    folder.mkdir()
    x = np.linspace(-1, 1, 1024, dtype=np.float32).reshape(1, 1024)
    tensor = numpy_helper.from_array(x, "x")
    (folder / "x.bin").write_bytes(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "x.bin"), ("offset", "0"), ("length", str(x.nbytes))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    (folder / "input_0.pb").write_bytes(tensor.SerializeToString())
    monkeypatch.chdir(tmp_path)  # not the folder: the old code read x.bin relative to here
    report = check(path, path, inputs=folder, providers="cpu")
    assert report.ok and report.inputs[0]["shape"] == [1, 1024]
    for bad, message in (("../m.onnx", "points outside the tensor file's folder"), ("/etc/passwd", "absolute path"),
                         ("x.bin\0", "NUL byte")):
        tensor.external_data[0].value = bad
        (folder / "input_0.pb").write_bytes(tensor.SerializeToString())
        with pytest.raises(ConvRewriteError, match=message):
            check(path, path, inputs=folder, providers="cpu")
    tensor.external_data[0].value = "x.bin"
    for key, bad in ((2, "0x30"), (1, "\u0663")):  # hex, and an Arabic-Indic digit: decimal ASCII only
        tensor.external_data[key].value = bad
        (folder / "input_0.pb").write_bytes(tensor.SerializeToString())
        with pytest.raises(ConvRewriteError, match=f"{'length' if key == 2 else 'offset'} {bad!r} is not a non-negative "
                                                   "decimal integer"):
            check(path, path, inputs=folder, providers="cpu")
        tensor.external_data[key].value = str(x.nbytes) if key == 2 else "0"


# IR 3 lists every initializer as a graph input too; onnxruntime treats them as constants (not feedable).
IR3_MODEL = MODELS / "rank_chain_op7.onnx"


@pytest.mark.parametrize("passes", [["--fold", "all"], ["--to-2d"], ["--to-2d", "--fold", "all"], ["--to-1d"]])
def test_ir3_model_rewrites_pass_the_check_and_the_onnx_checker(tmp_path, passes):
    """New initializers (a folded BatchNorm's weights) are graph inputs too, and the check does not count
    IR-3 initializer-backed inputs as interface: they were refused before ('not in graph input', 'rank 4 in
    the candidate')."""
    out = tmp_path / "o.onnx"
    result = cli("rewrite", str(IR3_MODEL), str(out), *passes, "--check", "-q")
    assert result.exit_code == 0, result.output
    written = onnx.load(str(out))
    assert written.ir_version == 3
    onnx.checker.check_model(written, full_check=True)
    inputs = {i.name for i in written.graph.input}
    assert all(t.name in inputs for t in written.graph.initializer)


def test_ir3_initializer_inputs_are_not_interface():
    from convrewrite.checker.specs import interface
    model = onnx.load(str(IR3_MODEL))
    names = [p.name for p in interface(model)[0]]
    assert names == ["x"]
    model.ir_version = 4  # from IR 4 on they are overridable inputs, part of the interface
    assert len(interface(model)[0]) == len(model.graph.input)
