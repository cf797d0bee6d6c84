"""Issue 19: the CLI behaves as people expect (options anywhere, one-line usage errors, implied folds,
`rewrite IN OUT`, pass names in help, a summary per convolution, a report with a schema)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from convrewrite.cli import main
from util import MODELS

TCN = MODELS / "tcn_chomp_ts13.onnx"
CONFORMER = MODELS / "conformer_conv_ts13.onnx"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_and_verbose_before_or_after_the_subcommand(tmp_path, where):
    out = tmp_path / "o.onnx"
    args = ["rewrite", TCN, "-o", out, "--to-2d"]
    quiet = cli("-q", *args) if where == "before" else cli(*args, "-q")
    assert quiet.exit_code == 0 and quiet.output == ""
    inspect = cli("-q", "inspect", TCN) if where == "before" else cli("inspect", TCN, "-q")
    assert inspect.exit_code == 0 and len(inspect.stdout.strip().splitlines()) == 1
    verbose = cli("-v", "rewrite", CONFORMER, "-o", out, "--fold", "all") if where == "before" else cli(
        "rewrite", CONFORMER, "-o", out, "--fold", "all", "-v")
    assert "not applicable: not depthwise" in verbose.output


def test_usage_errors_are_one_line_and_exit_2():
    for args, fragment in ((["rewrite", TCN, "--nope"], "No such option '--nope'"),
                           (["rewrite"], "Missing argument 'MODEL"),
                           (["frobnicate"], "No such command 'frobnicate'"),
                           (["check", TCN, TCN, "--trials"], "requires an argument")):
        proc = subprocess.run([sys.executable, "-m", "convrewrite", *map(str, args)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("convrewrite: error: ") and fragment in lines[0], proc.stderr
        assert "--help" in lines[0] and proc.stdout == ""


def test_help_and_version_still_work():
    assert cli("--help").exit_code == 0 and "Commands:" in cli("--help").output
    assert cli("--version").exit_code == 0


def test_options_that_need_a_fold_imply_it(tmp_path):
    out = tmp_path / "o.onnx"
    r = cli("rewrite", TCN, "-o", out, "--fuse-separable")
    assert r.exit_code == 0, r.output
    assert "note: --fuse-separable implies --fold separable" in r.stderr and "passes: separable" in r.stdout
    r = cli("rewrite", TCN, "-o", out, "--expand-dilations")
    assert r.exit_code == 0 and "passes: dilated" in r.stdout
    r = cli("rewrite", TCN, "-o", out, "--causal-target", "CausalConvWithState")
    assert r.exit_code == 0 and "passes: causal" in r.stdout
    r = cli("rewrite", TCN, "-o", out, "--fold", "all", "--fuse-separable")
    assert "implies" not in r.output  # already there


def test_rewrite_in_out_positional(tmp_path):
    out = tmp_path / "o.onnx"
    r = cli("rewrite", TCN, out, "--to-2d")
    assert r.exit_code == 0 and out.exists(), r.output
    both = cli("rewrite", TCN, out, "-o", tmp_path / "p.onnx", "--to-2d")
    assert both.exit_code == 2 and "give OUT or -o OUT (or --in-place), not both" in both.stderr
    same = cli("rewrite", TCN, TCN, "--to-2d")
    assert same.exit_code == 2 and "input" in same.stderr


def test_rewrite_help_lists_the_registered_passes():
    text = cli("rewrite", "--help").output
    for name in ("causal", "dilated", "separable", "to-2d", "to-1d", "to-3d", "3d-to-2d", "channels-as-spatial"):
        assert f"  {name}:" in text


def test_summary_per_convolution_and_nothing_rewritten(tmp_path):
    out = tmp_path / "o.onnx"
    r = cli("rewrite", TCN, "-o", out, "--fold", "all", "--to-2d")
    lines = r.stdout.splitlines()
    assert "5 convolutions: 5 rewritten, 0 left alone" in lines
    assert "     4 rewritten by causal + to-2d" in lines and "     1 rewritten by to-2d" in lines
    assert not any("not depthwise" in line for line in lines)  # not-applicable skips only with -v
    assert not any(" 0" in line and "folded 0" in line for line in lines)  # no counters of zero
    r = cli("rewrite", CONFORMER, "-o", out, "--fold", "all")
    assert "1 x refused by separable: depthwise output has 2 consumers (Sigmoid, Mul)" in r.stdout
    assert "nothing was rewritten: every convolution was left alone" in r.stdout


def test_report_has_a_schema_and_the_check(tmp_path):
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    r = cli("rewrite", TCN, "-o", out, "--to-2d", "--check", "--providers", "cpu", "--report", report)
    assert r.exit_code == 0, r.output
    data = json.loads(report.read_text())
    assert data["schema"] == "convrewrite.rewrite/1"
    assert data["check"]["schema"] == "convrewrite.check/2" and data["check"]["verdict"] == "equivalent"
    s = data["summary"]
    assert (s["convolutions"], s["convolutions_rewritten"], s["by_passes"]) == (5, 5, {"to-2d": 5})
    r = cli("rewrite", TCN, "-o", out, "--to-2d", "--report", report)
    assert "check" not in json.loads(report.read_text())


def run_on_a_terminal(args, timeout=60):
    """The CLI with stderr on a pseudo-terminal: what a person at a terminal sees there."""
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "convrewrite", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=slave, text=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.communicate(timeout=timeout)[0]
    os.close(master)
    return proc.returncode, out, seen.decode(errors="replace")


def test_progress_on_a_terminal_only(tmp_path):
    out = tmp_path / "o.onnx"
    code, stdout, terminal = run_on_a_terminal(["rewrite", TCN, "-o", out, "--fold", "all", "--to-2d", "--check",
                                                "--providers", "cpu"])
    assert code == 0, terminal
    for step in (f"loading {TCN}", "rewriting: causal (1/4 passes)", "rewriting: to-2d (4/4 passes)",
                 "original on cpu: normal (seed 0)", "candidate on cpu: special values (seed 2)",
                 f"writing {out}"):
        assert step in terminal, terminal
    assert " s] " in terminal and "\r" in terminal  # elapsed time, one line rewritten in place
    assert "EQUIVALENT" in stdout and "s] " not in stdout  # the report itself is unchanged
    code, _, terminal = run_on_a_terminal(["-q", "rewrite", TCN, "-o", out, "--to-2d", "--check", "--providers", "cpu"])
    assert code == 0 and "s] " not in terminal  # -q: nothing extra
    piped = subprocess.run([sys.executable, "-m", "convrewrite", "check", TCN, TCN, "--providers", "cpu"],
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ""  # not a terminal: nothing extra


def test_batch_rewrite_over_models_and_a_folder(tmp_path):
    import shutil

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("tcn_chomp_ts13", "wavenet_ts13"):
        shutil.copy(MODELS / f"{name}.onnx", zoo)
    (zoo / "broken.onnx").write_bytes(b"not a model")
    out, report = tmp_path / "out", tmp_path / "r.jsonl"
    proc = subprocess.run([sys.executable, "-m", "convrewrite", "rewrite", str(zoo), str(CONFORMER), "-o", str(out),
                           "--fold", "all", "--to-2d", "--jobs", "2", "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr  # the worst: broken.onnx is bad input
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[-1] == "4 models: 3 ok, 1 failed"
    assert any(line.startswith("exit 2") and "broken.onnx" in line and "not an ONNX model" in line for line in lines)
    assert any(line.startswith("ok") and "tcn_chomp_ts13.onnx: 5 convolutions, 5 rewritten" in line for line in lines)
    assert sorted(p.name for p in out.iterdir()) == ["conformer_conv_ts13.onnx", "tcn_chomp_ts13.onnx",
                                                     "wavenet_ts13.onnx"]
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert [r["exit_code"] for r in rows] == [2, 0, 0, 0] and rows[1]["report"]["schema"] == "convrewrite.rewrite/1"
    assert rows[0]["report"] is None and "not an ONNX model" in rows[0]["error"]
    refused = cli("rewrite", zoo, "--to-2d")
    assert refused.exit_code == 2 and "give -o OUTDIR" in refused.stderr


def test_batch_check_against_the_outputs_beside_each_model(tmp_path):
    import shutil

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("tcn_chomp_ts13", "wavenet_ts13"):
        shutil.copy(MODELS / f"{name}.onnx", zoo)
        shutil.copy(MODELS / f"{name}.npz", zoo)
    proc = subprocess.run([sys.executable, "-m", "convrewrite", "check", str(zoo), "--providers", "cpu", "--jobs", "2",
                           "--json", str(tmp_path / "c.jsonl")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [r["report"]["verdict"] for r in rows] == ["equivalent", "equivalent"]
    assert all(r["report"]["mode"] == "expected" for r in rows)
    (zoo / "wavenet_ts13.npz").unlink()
    proc = subprocess.run([sys.executable, "-m", "convrewrite", "check", str(zoo), "--providers", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "wavenet_ts13.npz: no such file" in proc.stdout


def test_inspect_shows_inputs_outputs_and_dynamic_dims():
    text = cli("inspect", MODELS / "stft_reflect_dyn_ts13.onnx").stdout.splitlines()
    assert text[0].split() == ["input", "x", "float32", "[batch,", "time]"]
    assert text[2] == "dynamic dims: batch, time, frames"
    data = json.loads(cli("inspect", MODELS / "paddle_minus1_dims.onnx", "--json").stdout)
    assert data["inputs"] == [{"name": "x", "kind": "tensor", "dtype": "float32", "dims": ["?", 3, 48, "?"]}]
    assert data["dynamic_dims"][:2] == ["x[0]", "x[3]"]


def test_refused_fusions_are_shown(tmp_path):
    r = cli("rewrite", MODELS / "quartznet_block_ts13.onnx", tmp_path / "o.onnx", "--fuse-separable")
    assert r.exit_code == 0, r.output
    assert "more than 4x the pair (use --force)" in r.stdout  # a refusal is never hidden with the not-applicable skips


@pytest.mark.parametrize("args", [["--help"], ["rewrite", "--nope"], ["check", "--nope"], ["inspect"], ["bench"],
                                  ["frobnicate"]])
def test_help_and_usage_errors_load_no_onnx(args):
    """What makes them fast (0.1 s, not 1 s): neither onnx, numpy nor onnxruntime is imported."""
    code = ("import sys\nfrom convrewrite.cli import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('onnx', 'numpy', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_cuda_check_script_stops_with_one_line_without_cuda(tmp_path):
    from pathlib import Path

    from convrewrite import runtime

    if runtime.probe_provider("CUDAExecutionProvider")[0]:
        pytest.skip("CUDA runs here: the script runs its checks")
    script = Path(__file__).resolve().parents[2] / "scripts" / "cuda_check.sh"
    proc = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "PYTHON": sys.executable})
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("RESULT: CUDA does not run on this machine")
    assert sum(line.startswith("RESULT") for line in lines) == 1 and len(lines) < 30
    assert "onnxruntime:Default" not in proc.stdout + proc.stderr  # no per-run CUDA library noise
