"""The CLI as a user meets it: help, version, inspect, and one clear line for every bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper

from convrewrite.cli import main
from util import MODELS, init, make_model, vi


def cli(*args, **kw):
    runner = CliRunner()
    return runner.invoke(main, list(args), catch_exceptions=False, **kw)


def small(tmp_path, name="m.onnx"):
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[3], pads=[1, 1])
    model = make_model([node], [vi("x", [1, 4, 8])], [vi("y", [1, 4, 8])], [init("w", np.ones((4, 4, 3), np.float32))])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_help_and_version():
    for args in (["--help"], ["inspect", "--help"], ["rewrite", "--help"], ["check", "--help"]):
        r = cli(*args)
        assert r.exit_code == 0 and "Usage" in r.output
    r = cli("--version")
    assert r.exit_code == 0 and "0.1.0" in r.output


def test_inspect_text_and_json(tmp_path):
    path = MODELS / "tcn_chomp_ts13.onnx"
    r = cli("inspect", str(path))
    assert r.exit_code == 0
    assert "5 convolutions (5 x 1D)" in r.output and "/block1/conv1/Conv" in r.output
    r = cli("inspect", "--json", str(path))
    data = json.loads(r.output)
    assert set(data) >= {"model", "opsets", "convolutions"}
    assert len(data["convolutions"]) == 5
    assert set(data["convolutions"][0]) >= {
        "name", "op_type", "graph", "rank", "in_channels", "out_channels", "kernel_shape", "strides",
        "dilations", "pads", "group", "auto_pad", "kinds",
    }
    r = cli("-q", "inspect", str(path))
    assert r.output.strip().startswith("5 convolutions")


def _bad_inputs(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "missing.onnx", "no such file")
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    cases["folder"] = (folder, "is a folder|no .onnx model in")  # rewrite takes a folder of models (a batch)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    cases["empty"] = (empty, "empty file")
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n")
    cases["text"] = (text, "not an ONNX model")
    rnd = tmp_path / "random.onnx"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases["random"] = (rnd, "not an ONNX model|truncated")
    good = small(tmp_path, "good.onnx").read_bytes()
    cut = tmp_path / "truncated.onnx"
    cut.write_bytes(good[: len(good) - 20])
    cases["truncated"] = (cut, "truncated|not an ONNX")
    bad = onnx.load(str(tmp_path / "good.onnx"))
    bad.graph.node[0].input[1] = "nowhere"
    badp = tmp_path / "checker.onnx"
    badp.write_bytes(bad.SerializeToString())
    cases["checker"] = (badp, "onnx.checker")
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    ext = onnx.load(str(tmp_path / "good.onnx"))
    onnx.save(ext, str(ext_dir / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
    ext = onnx.load(str(ext_dir / "m.onnx"), load_external_data=False)
    for e in ext.graph.initializer[0].external_data:
        if e.key == "location":
            e.value = "../../etc/passwd"
    (ext_dir / "m.onnx").write_bytes(ext.SerializeToString())
    cases["traversal"] = (ext_dir / "m.onnx", "outside the model's folder")
    return cases


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "text", "random", "truncated", "checker", "traversal"])
@pytest.mark.parametrize("command", ["inspect", "rewrite"])
def test_bad_inputs_one_line_exit_2_nothing_written(tmp_path, kind, command):
    path, message = _bad_inputs(tmp_path)[kind]
    before = sha(path) if path.is_file() else None
    out = tmp_path / "out.onnx"
    args = [command, str(path)] + (["-o", str(out), "--fold", "all"] if command == "rewrite" else [])
    proc = subprocess.run([sys.executable, "-m", "convrewrite", *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()
    if before is not None:
        assert sha(path) == before


def _run_with_stderr_on_a_terminal(args, cwd=None):
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); return (exit code, stdout, terminal text)."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "convrewrite", *args], stdout=subprocess.PIPE, stderr=slave,
                                cwd=cwd)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        stdout = proc.stdout.read().decode()
        proc.wait(timeout=120)
    finally:
        os.close(master)
    return proc.returncode, stdout, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_stderr_only_when_it_is_a_terminal(tmp_path):
    model = str(MODELS / "tcn_chomp_ts13.onnx")
    args = ["rewrite", model, "--fold", "all", "--to-2d", "-o", str(tmp_path / "o.onnx")]
    code, stdout, terminal = _run_with_stderr_on_a_terminal(args)
    assert code == 0, terminal
    assert "rewriting" in terminal and "to-2d" in terminal  # click's bar, labelled with the pass it is in
    assert "rewriting" not in stdout  # the bar never pollutes stdout
    piped = subprocess.run([sys.executable, "-m", "convrewrite", *args], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""  # not a terminal: no bar
    code, _, terminal = _run_with_stderr_on_a_terminal(["-q", *args])
    assert code == 0 and "rewriting" not in terminal  # --quiet: no bar either


def test_rewrite_check_hides_onnxruntime_log_lines_unless_verbose(tmp_path):
    """Asking for CUDA where it cannot run makes onnxruntime log at C++ level (fd 2): hidden unless --verbose."""
    from convrewrite import runtime

    model = str(MODELS / "tcn_chomp_ts13.onnx")
    args = [sys.executable, "-m", "convrewrite", "rewrite", model, "--to-2d", "-o", str(tmp_path / "o.onnx"),
            "--check", "--providers", "cpu,cuda"]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stderr == ""
    for noise in ("[W:onnxruntime", "[E:onnxruntime", "EP Error", "Falling back"):
        assert noise not in quiet.stdout
    if not runtime.probe_provider("CUDAExecutionProvider", runtime.DEFAULT_CUDA_OPTIONS)[0]:
        verbose = subprocess.run(args[:3] + ["-v"] + args[3:], capture_output=True, text=True, timeout=300)
        assert verbose.returncode == 0
        assert "onnxruntime" in verbose.stderr  # its own lines, passed through with --verbose
