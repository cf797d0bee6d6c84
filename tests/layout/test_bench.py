"""`convrewrite bench`: latency side by side, same inputs, fallback reported, JSON."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper

from convrewrite import runtime
from convrewrite.timing import SCHEMA, bench
from convrewrite.checker import CheckInputError
from convrewrite.cli import main
from util import MODELS, make_model, vi

A = MODELS / "tcn_chomp_ts13.onnx"
B = MODELS / "tcn_chomp_ts11.onnx"
CUDA_RUNS = runtime.probe_provider("CUDAExecutionProvider")[0] if "CUDAExecutionProvider" in __import__(
    "onnxruntime").get_available_providers() else False


def test_two_shipped_models_side_by_side():
    report = bench([A, B], providers="cpu", runs=5, warmup=1)
    assert report.ok and report.models == [str(A), str(B)]
    first, second = report.timing(0), report.timing(1)
    assert first.status == second.status == "ran" and len(first.samples_ms) == len(second.samples_ms) == 5
    assert first.ratio == 1.0 and second.ratio == pytest.approx(second.median / first.median)
    assert report.inputs == [{"name": "x", "dtype": "float32", "shape": [1, 8, 64],
                              "source": "normal / wide uniform +-1000 / special values"}]
    data = json.loads(report.to_json())
    assert data["schema"] == SCHEMA and data["ok"] is True
    row = data["timings"][0]
    assert set(row) == {"model", "provider", "status", "reason", "runs", "median_ms", "p90_ms", "p99_ms", "min_ms",
                        "mean_ms", "ratio"}
    assert row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
    assert data["settings"] == {"runs": 5, "warmup": 1, "threads": None, "ort_opt": "all", "seed": 0}


@pytest.mark.skipif(CUDA_RUNS, reason="CUDA really runs here: no fallback to report")
def test_a_provider_that_fell_back_is_unavailable_never_timed():
    report = bench([A, B], providers="cpu,cuda", runs=2, warmup=0)
    cuda = report.timing(0, "cuda")
    assert cuda.status == "unavailable" and not cuda.samples_ms
    assert "fell back" in cuda.reason or "not built" in cuda.reason
    assert report.ok  # asked for, not required
    required = bench([A], providers="cpu", require="cuda", runs=1, warmup=0)
    assert not required.ok
    assert "unavailable" in required.render()


def test_models_must_take_the_same_inputs(tmp_path):
    other = make_model([helper.make_node("Relu", ["z"], ["y"])], [vi("z", [1, 8, 64])], [vi("y", [1, 8, 64])])
    path = tmp_path / "other.onnx"
    onnx.save(other, path)
    with pytest.raises(CheckInputError, match="cannot be fed the same values"):
        bench([A, path], providers="cpu", runs=1)
    with pytest.raises(CheckInputError, match="runs must be >= 1"):
        bench([A], runs=0)


def test_dims_are_those_the_first_model_runs_on():
    report = bench([MODELS / "stft_reflect_dyn_ts13.onnx"], providers="cpu", runs=1, warmup=0)
    assert report.dims == {"batch": 2, "time": 1024}


def test_cli_table_json_and_progress(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["bench", str(A), str(B), "--providers", "cpu", "--runs", "3", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["provider", "model", "median"] and "timing" not in result.stderr
    assert lines[1].split()[-1] == "1.000"
    as_json = runner.invoke(main, ["bench", str(A), "--providers", "cpu", "--runs", "2", "--json", "-"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["schema"] == SCHEMA
    out = tmp_path / "t.json"
    written = runner.invoke(main, ["bench", str(A), "--providers", "cpu", "--runs", "2", "--json", str(out)])
    assert written.exit_code == 0 and json.loads(out.read_text())["timings"][0]["runs"] == 2
    clash = runner.invoke(main, ["bench", str(A), "--json", str(A)])
    assert clash.exit_code == 2 and A.read_bytes()[:2] != b"{\n"
    bad = runner.invoke(main, ["bench", str(A), "--runs", "x"])
    assert bad.exit_code == 2 and "--runs" in bad.stderr


@pytest.mark.skipif(CUDA_RUNS, reason="CUDA really runs here: no fallback to report")
def test_only_a_provider_that_fell_back_reports_it_instead_of_failing():
    report = bench([A, B], providers="cuda", runs=2, warmup=0)
    assert [t.status for t in report.timings] == ["unavailable", "unavailable"]
    assert all(not t.samples_ms and "fell back" in t.reason or "not built" in t.reason for t in report.timings)
    assert json.loads(report.to_json())["timings"][0]["median_ms"] is None
    assert "unavailable" in report.render()
