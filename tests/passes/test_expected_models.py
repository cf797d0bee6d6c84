"""The pre-export validation step: every shipped model agrees with its framework's outputs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from convrewrite import check
from convrewrite.cli import main
from util import MODELS

# Exported as-is by TorchScript: onnxruntime refuses SAME_UPPER with dilation (the causal fold makes it runnable).
NOT_RUNNABLE = {"same_dilated_ts13"}
MODEL_FILES = sorted(p for p in MODELS.glob("*.onnx") if p.with_suffix(".npz").exists())


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_models_match_their_framework_outputs(path):
    npz = path.with_suffix(".npz")
    # Default float32 tolerances (atol 1e-5, rtol 1e-4): framework vs onnxruntime differ by < 3e-6 here.
    report = check(str(path), expected=str(npz), inputs=str(npz), providers=["cpu"])
    if path.stem in NOT_RUNNABLE:
        assert not report.ok and "Dilation not supported" in report.summary
        return
    assert report.ok, report.summary
    assert report.mode == "expected" and all(r.status in ("passed", "bit-exact") for r in report.results)


def test_expected_through_the_cli():
    path = MODELS / "tcn_chomp_ts13.onnx"
    npz = str(path.with_suffix(".npz"))
    result = CliRunner().invoke(main, ["check", str(path), "--inputs", npz, "--expected", npz, "--providers", "cpu"])
    assert result.exit_code == 0, result.output
