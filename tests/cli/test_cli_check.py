"""`convrewrite check` on the command line: exit codes, one-line errors, quiet output, no onnxruntime noise."""

from __future__ import annotations

import glob
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from convrewrite import runtime
from convrewrite.cli_check import check_command
from convrewrite.checker import make_inputs

F = TensorProto.FLOAT
RNG = np.random.default_rng(99)
W = RNG.standard_normal((4, 3, 3)).astype(np.float32)
W2 = RNG.standard_normal((4, 3, 3)).astype(np.float32)
B = RNG.standard_normal(4).astype(np.float32)
from util import SAMPLES, build_model  # noqa: E402  (tests/data: copied from ../shared)


def conv1d(w=W, b=B, pads=(1, 1), shape=(1, 3, 16)):
    inits = {"w": w}
    ins = ["x", "w"]
    if b is not None:
        inits["b"], ins = b, ins + ["b"]
    out = [shape[0], 4, shape[2]]
    return build_model([helper.make_node("Conv", ins, ["y"], pads=list(pads))], [("x", F, list(shape))], [("y", F, out)], inits)


def lifted(unsqueeze_axis=2, squeeze_axis=2, out_shape=(1, 4, 16)):
    inits = {
        "au": np.array([unsqueeze_axis], np.int64),
        "as": np.array([squeeze_axis], np.int64),
        "w4": W.reshape(4, 3, 1, 3),
        "b": B,
    }
    nodes = [
        helper.make_node("Unsqueeze", ["x", "au"], ["x4"]),
        helper.make_node("Conv", ["x4", "w4", "b"], ["y4"], pads=[0, 1, 0, 1]),
        helper.make_node("Squeeze", ["y4", "as"], ["y"]),
    ]
    return build_model(nodes, [("x", F, [1, 3, 16])], [("y", F, list(out_shape))], inits)


def two_outputs(order=("y1", "y2"), swap=False):
    wa, wb = (W2, W) if swap else (W, W2)
    nodes = [
        helper.make_node("Conv", ["x", "wa", "b"], ["y1"], pads=[1, 1]),
        helper.make_node("Conv", ["x", "wb", "b"], ["y2"], pads=[1, 1]),
    ]
    return build_model(nodes, [("x", F, [1, 3, 16])], [(n, F, [1, 4, 16]) for n in order], {"wa": wa, "wb": wb, "b": B})


def weight_changed():
    w = W.copy()
    w[2, 0, 1] += np.float32(1e-2)
    return conv1d(w=w)


FAULTS = {
    "weight": (conv1d, weight_changed, "y"),
    "pads": (conv1d, lambda: conv1d(pads=(2, 0)), "y"),
    "bias": (conv1d, lambda: conv1d(b=None), "y"),
    "lift-layout": (conv1d, lambda: lifted(unsqueeze_axis=3, squeeze_axis=3), "y"),
    "squeeze-axis": (conv1d, lambda: lifted(squeeze_axis=0, out_shape=(4, 1, 16)), "y"),
    "swapped-order": (two_outputs, lambda: two_outputs(order=("y2", "y1")), "y2"),
    "swapped-values": (two_outputs, lambda: two_outputs(swap=True), "y1"),
}


def save(tmp_path, name, model):
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


def invoke(*args):
    return CliRunner().invoke(check_command, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convrewrite: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_planted_fault_exits_1_and_names_the_output(tmp_path, fault):
    make_original, make_candidate, output = FAULTS[fault]
    a = save(tmp_path, "a.onnx", make_original())
    b = save(tmp_path, "b.onnx", make_candidate())
    result = invoke(a, b, "--providers", "cpu")
    assert result.exit_code == 1, result.output
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("NOT EQUIVALENT") and output in last


def test_identical_models_exit_0_bit_exact(tmp_path):
    a = save(tmp_path, "a.onnx", conv1d())
    result = invoke(a, a)
    assert result.exit_code == 0, result.output
    assert "bit-exact" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("EQUIVALENT (bit-exact)")
    correct = save(tmp_path, "lift.onnx", lifted())
    assert invoke(a, correct, "--trials", "3").exit_code == 0


def test_cuda_unavailable_is_reported_and_required_fails(tmp_path):
    if runtime.probe_provider("CUDAExecutionProvider", runtime.DEFAULT_CUDA_OPTIONS)[0]:
        pytest.skip("a CUDA device is present")
    a = save(tmp_path, "a.onnx", conv1d())
    result = invoke(a, a, "--providers", "cpu,cuda")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("cuda"))
    assert "unavailable" in row and "PASS" not in row
    assert "fell back to CPUExecutionProvider" in result.stdout
    required = invoke(a, a, "--providers", "cpu,cuda", "--require", "cuda")
    assert required.exit_code == 1
    assert "required provider cuda unavailable" in required.stdout
    assert invoke(a, a, "--providers", "CPUExecutionProvider,CUDAExecutionProvider").exit_code == 0


def test_quiet_prints_only_the_verdict(tmp_path):
    a = save(tmp_path, "a.onnx", conv1d())
    b = save(tmp_path, "b.onnx", weight_changed())
    result = invoke(a, b, "-q")
    assert result.exit_code == 1
    assert len(result.stdout.strip().splitlines()) == 1 and result.stderr == ""
    assert invoke(a, a, "-q").stdout.strip().startswith("EQUIVALENT")


def test_json_report(tmp_path):
    a = save(tmp_path, "a.onnx", conv1d())
    b = save(tmp_path, "b.onnx", weight_changed())
    out = tmp_path / "report.json"
    result = invoke(a, b, "--json", out, "--seed", "7", "--trials", "2", "--atol", "1e-4", "--rtol", "y=1e-3")
    assert result.exit_code == 1
    data = json.loads(out.read_text())
    assert data["schema"] == "convrewrite.check/2" and data["ok"] is False
    row = next(r for r in data["results"] if r["output"] == "y")
    assert (row["atol"], row["rtol"]) == (1e-4, 1e-3)
    assert [t["seed"] for t in data["trials"]] == [7, 8, 9, 10]  # 2 normal, wide, special values
    to_stdout = invoke(a, a, "--json", "-")
    assert to_stdout.exit_code == 0 and json.loads(to_stdout.stdout)["ok"] is True


def test_shape_and_range_options(tmp_path):
    a = save(tmp_path, "a.onnx", conv1d(shape=("N", 3, "T")))
    result = invoke(a, a, "--shape", "x=2x3x40", "--range", "x=-1,1", "-v")
    assert result.exit_code == 0, result.output
    assert "x: float32 [2x3x40] uniform in [-1, 1]" in result.stdout
    assert "dims: N=2 (given shape), T=40 (given shape)" in result.stdout
    defaults = invoke(a, a)
    assert "dims: N=2 (batch: 2 distinct samples), T=16 (default length)" in defaults.stdout


@pytest.mark.parametrize("onnx_path", sorted(glob.glob(str(SAMPLES / "*.onnx"))), ids=os.path.basename)
def test_expected_outputs_from_the_framework(onnx_path):
    npz = onnx_path[:-5] + ".npz"
    result = invoke(onnx_path, "--inputs", npz, "--expected", npz, "--providers", "cpu")
    assert result.exit_code == 0, result.output
    assert invoke(onnx_path, "--expected", npz, "-q").exit_code == 0  # inputs default to the same file


def test_expected_mismatch_exits_1(tmp_path):
    model = conv1d()
    path = save(tmp_path, "m.onnx", model)
    feed = make_inputs(model)
    npz = tmp_path / "io.npz"
    np.savez(npz, x=feed["x"], y=np.zeros((1, 4, 16), np.float32))
    result = invoke(path, "--expected", npz)
    assert result.exit_code == 1 and "'y'" in result.stdout.splitlines()[-1]


def test_bad_inputs_are_one_line_exit_2(tmp_path):
    a = save(tmp_path, "a.onnx", conv1d())
    assert_one_line_error(invoke(tmp_path / "missing.onnx", a), "missing.onnx", "no such file")
    assert_one_line_error(invoke(a, a, "--inputs", tmp_path / "missing.npz"), "missing.npz")
    evil = tmp_path / "evil.npz"
    np.savez(evil, x=np.array([object()], dtype=object))
    assert_one_line_error(invoke(a, a, "--inputs", evil), "pickled")
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps([1, 2, 3]))
    assert_one_line_error(invoke(a, a, "--inputs", raw), "pickled")
    assert_one_line_error(invoke(a, a, "--atol", "nope=1e-3"), "atol: the model has no output", "'nope'")
    assert_one_line_error(invoke(a, a, "--shape", "x=1xbadx16"), "--shape")
    assert_one_line_error(invoke(a, a, "--shape", "1x3x16"), "--shape")
    assert_one_line_error(invoke(a, a, "--shape", "x=1x3"), "shape of input 'x'", "rank")
    assert_one_line_error(invoke(a, a, "--range", "x=1"), "--range")
    assert_one_line_error(invoke(a, a, "--providers", "quantum"), "quantum")
    assert_one_line_error(invoke(a, a, "--seed", "x"), "--seed")
    assert_one_line_error(invoke(a, a, "--ort-opt", "max"), "graph optimization level 'max'")
    assert_one_line_error(invoke(a), "CANDIDATE")
    assert_one_line_error(invoke(a, a, "--json", tmp_path / "no" / "r.json"), "--json")
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("hello")
    assert_one_line_error(invoke(not_onnx, a), "text.onnx")


def test_onnxruntime_log_lines_stay_out_unless_verbose(tmp_path):
    # A fresh process: onnxruntime prints its CUDA fallback warning (C++ level, fd 2)
    # only the first time a session asks for CUDA.
    a = save(tmp_path, "a.onnx", conv1d())
    code = (
        "import sys; from convrewrite.cli_check import check_command; "
        "check_command.main(sys.argv[1:], prog_name='convrewrite check')"
    )
    cmd = [sys.executable, "-c", code, a, a, "--providers", "cpu,cuda,tensorrt"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stderr == ""
    for noise in ("[W:onnxruntime", "[E:onnxruntime", "EP Error", "Falling back"):
        assert noise not in quiet.stdout
    cuda_runs = runtime.probe_provider("CUDAExecutionProvider", runtime.DEFAULT_CUDA_OPTIONS)[0]
    if not cuda_runs:
        verbose = subprocess.run(cmd + ["-v"], capture_output=True, text=True, timeout=120)
        assert verbose.returncode == 0
        assert "onnxruntime" in verbose.stderr  # its own lines, passed through with --verbose


# ------------------------------------------------ helpers `rewrite --check` calls


def test_check_and_render_for_rewrite(capsys):
    from convrewrite.cli_check import check_and_render

    assert check_and_render(conv1d(), lifted(), providers="cpu", required=None, seed=0, trials=2,
                            shapes=(), inputs_path=None, atols=(), rtols=(), quiet=False, verbose=False)
    out = capsys.readouterr().out
    assert "original vs rewritten" in out and out.strip().splitlines()[-1].startswith("EQUIVALENT")
    assert not check_and_render(conv1d(), weight_changed(), providers="cpu", quiet=True, atols=("y=1e-6",)).ok
    assert capsys.readouterr().out.strip().startswith("NOT EQUIVALENT")


def test_bisect_and_render_names_the_culprit(monkeypatch, capsys):
    import convrewrite.api
    from convrewrite.cli_check import bisect_and_render

    class Rec:
        def __init__(self, key, status):
            self.key, self.status, self.node, self.op_type, self.pass_name = key, status, key, "Conv", "to-2d"

    class Res:
        def __init__(self, model, records):
            self.model, self.records = model, records

    keys = ["to-2d:main:c0", "to-2d:main:c1", "to-2d:main:c2"]

    def fake_rewrite(model, order, only=None, **options):
        only = set(keys) if only is None else only
        bad = "to-2d:main:c1" in only
        return Res(weight_changed() if bad else conv1d(), [Rec(k, "rewritten" if k in only else "skipped") for k in keys])

    monkeypatch.setattr(convrewrite.api, "rewrite", fake_rewrite)
    full = fake_rewrite(conv1d(), ["to-2d"])
    found = bisect_and_render(conv1d(), ["to-2d"], {}, full, providers="cpu", seed=0, trials=1,
                              shapes=(), inputs_path=None, atols=(), rtols=())
    assert found.culprits == ["to-2d:main:c1"]
    out = capsys.readouterr().out
    assert "to-2d:main:c1 (Conv 'to-2d:main:c1', pass to-2d)" in out and "NOT EQUIVALENT" in out


def test_wired_into_the_convrewrite_group(tmp_path):
    from convrewrite.cli import main

    a = save(tmp_path, "a.onnx", conv1d())
    b = save(tmp_path, "b.onnx", weight_changed())
    result = CliRunner().invoke(main, ["-q", "check", a, b])
    assert result.exit_code == 1 and len(result.stdout.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["check", a, b, "--atol", "zz=1"])
    assert result.exit_code == 2 and result.stderr.startswith("convrewrite: error: atol: the model has no output named 'zz'")


# ------------------------------------------- `rewrite --check` end to end, with a planted fault


def faulty_rewrite(real, faulty_key):
    """`convrewrite.rewrite` that plants a 1e-2 weight error in the convolution of one record, when rewritten."""
    from onnx import numpy_helper

    def rewrite(model, passes, only=None, **options):
        result = real(model, passes, only=only, **options)
        target = next((r for r in result.records if r.key == faulty_key and r.status == "rewritten"), None)
        if target is not None:
            conv = next(n for n in result.model.graph.node if n.name == target.node)
            weight = next(t for t in result.model.graph.initializer if t.name == conv.input[1])
            array = numpy_helper.to_array(weight).copy()
            array.flat[0] += np.float32(1e-2)
            weight.CopyFrom(numpy_helper.from_array(array, weight.name))
        return result

    return rewrite


def test_rewrite_check_writes_nothing_on_failure_and_bisect_names_the_conv(tmp_path, monkeypatch):
    import hashlib

    from convrewrite.cli import main

    import convrewrite.api
    import convrewrite.cli_rewrite
    from util import MODELS

    source = MODELS / "wavenet_ts13.onnx"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    good_out = tmp_path / "good.onnx"
    good = CliRunner().invoke(main, ["rewrite", str(source), "--to-2d", "-o", str(good_out), "--check", "--providers", "cpu"])
    assert good.exit_code == 0, good.output
    assert good_out.exists() and "EQUIVALENT (bit-exact)" in good.stdout

    real = convrewrite.api.rewrite
    keys = [r.key for r in real(convrewrite.load(str(source)), ["to-2d"]).records if r.status == "rewritten"]
    culprit = keys[5]
    planted = faulty_rewrite(real, culprit)
    monkeypatch.setattr(convrewrite.cli_rewrite, "rewrite", planted)
    monkeypatch.setattr(convrewrite.api, "rewrite", planted)

    out = tmp_path / "bad.onnx"
    bad = CliRunner().invoke(
        main, ["rewrite", str(source), "--to-2d", "-o", str(out), "--check", "--bisect", "--providers", "cpu,cuda"]
    )
    assert bad.exit_code == 1, bad.output
    assert not out.exists() and list(tmp_path.iterdir()) == [good_out]  # nothing written, no temporary left
    assert "nothing written" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert "NOT EQUIVALENT" in bad.stdout and "'y' on cpu differs" in bad.stdout
    bisect_line = next(line for line in bad.stdout.splitlines() if line.startswith("bisect:"))
    assert bisect_line.startswith("bisect: 1 rewrite(s)")
    named = [line.strip() for line in bad.stdout.splitlines() if line.startswith("  to-2d:")]
    assert len(named) == 1 and named[0].startswith(culprit) and "pass to-2d" in named[0]

    in_place = CliRunner().invoke(main, ["rewrite", str(source), "--to-2d", "--in-place", "--check", "--providers", "cpu"])
    assert in_place.exit_code == 1
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # the input is never touched

    forced = CliRunner().invoke(main, ["-q", "rewrite", str(source), "--to-2d", "-o", str(out), "--check", "--force",
                                       "--providers", "cpu"])
    assert forced.exit_code == 0, forced.output
    assert out.exists() and forced.stdout.strip().startswith("NOT EQUIVALENT")


def test_rewrite_check_options_reach_the_checker(tmp_path):
    from convrewrite.cli import main
    from util import MODELS

    source = MODELS / "dynamic_conv1d_ts13.onnx"
    out = tmp_path / "o.onnx"
    model = onnx.load(source)
    name = model.graph.input[0].name
    result = CliRunner().invoke(main, ["rewrite", str(source), "--to-2d", "-o", str(out), "--check", "--providers", "cpu",
                                       "--range", f"{name}=-2,2", "--ort-opt", "all", "--trials", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "uniform in [-2, 2]" in result.stdout and "graph optimizations: all" in result.stdout
    assert "trials: normal (seed 3), normal (seed 4), wide (seed 5)" in result.stdout and out.exists()
    bad = CliRunner().invoke(main, ["rewrite", str(source), "--to-2d", "-o", str(out), "--check", "--ort-opt", "max"])
    assert bad.exit_code == 2 and bad.stderr.startswith("convrewrite: error: graph optimization level")


def test_rewrite_check_keeps_onnxruntime_log_lines_off_stderr(tmp_path):
    from util import MODELS

    out = tmp_path / "o.onnx"
    cmd = [sys.executable, "-m", "convrewrite", "rewrite", str(MODELS / "wavenet_ts13.onnx"), "--to-2d", "-o", str(out),
           "--check", "--providers", "cpu,cuda,tensorrt"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "" and out.exists()
    assert result.stdout.strip().splitlines()[-2].startswith("EQUIVALENT")
