"""`convrewrite rewrite --to-2d / --to-1d / --to-3d`: the summary a user reads and the JSON report.

The summary says how many convolutions were rewritten and skipped (grouped by
reason) and how many Unsqueeze/Squeeze were inserted and cancelled; the report
holds one record per convolution considered. The written model is checked on
onnxruntime against the input.
"""

from __future__ import annotations

import json

import onnx
from click.testing import CliRunner

from convrewrite.cli import main
from test_rank import conv_nodes, conv_rank, count, load_case
from util import MODELS, assert_same_outputs


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_to_2d_summary_report_and_model(tmp_path):
    source = MODELS / "conv1d_chain_ts13.onnx"
    before = source.read_bytes()
    out, report = tmp_path / "lifted.onnx", tmp_path / "report.json"
    # The chain's MaxPool joins the region only with --assume-finite (onnxruntime's MaxPool kernels of
    # different ranks treat NaN differently); without it the MaxPool stays 1D between a Squeeze/Unsqueeze pair.
    plain = cli("rewrite", source, "-o", tmp_path / "plain.onnx", "--to-2d", "--layout", "w")
    assert plain.exit_code == 0 and "squeeze inserted 2, unsqueeze inserted 2" in plain.output, plain.output
    r = cli("rewrite", source, "-o", out, "--to-2d", "--layout", "w", "--assume-finite", "--report", report)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "passes: to-2d" in lines
    assert "6 convolutions: 6 rewritten, 0 left alone" in lines and "     6 rewritten by to-2d" in lines
    assert any("unsqueeze inserted 1" in line and "squeeze inserted 1" in line for line in lines), r.output
    assert source.read_bytes() == before  # the input is never modified

    data = json.loads(report.read_text())
    assert data["schema"] == "convrewrite.rewrite/1" and data["passes"] == ["to-2d"]
    assert data["summary"]["counters"] == {"squeeze_inserted": 1, "unsqueeze_inserted": 1}
    records = data["records"]
    model, feeds = load_case(source)
    assert len(records) == len(conv_nodes(model)) == 6
    for rec in records:
        assert rec["status"] == "rewritten" and rec["pass"] == "to-2d" and rec["key"] == f"to-2d:main:{rec['node']}"
        assert len(rec["after"]["kernel_shape"]) == 2 and rec["after"]["kernel_shape"][1] == 1  # layout w: [N, C, L, 1]
        assert rec["details"]["layout"] == "w" and rec["details"]["weight"] == "reshaped in place"

    lifted = onnx.load(str(out))
    assert all(conv_rank(n, lifted) == 2 for n in conv_nodes(lifted))
    assert count(lifted, "Unsqueeze") == 1 and count(lifted, "Squeeze") == 1
    errors = assert_same_outputs(model, lifted, feeds)
    assert errors and all(e == 0.0 for e in errors.values()), errors

    back = tmp_path / "back.onnx"
    r = cli("rewrite", out, "-o", back, "--to-1d", "--layout", "w", "--assume-finite")
    assert r.exit_code == 0, r.output
    assert "6 convolutions: 6 rewritten, 0 left alone" in r.output and "pairs cancelled 2" in r.output
    lowered = onnx.load(str(back))
    assert count(lowered, "Unsqueeze") == 0 and count(lowered, "Squeeze") == 0
    assert_same_outputs(model, lowered, feeds)


def test_skipped_grouped_by_reason(tmp_path):
    """Skips are counted per reason, in words; --verbose lists each convolution."""
    source = MODELS / "rank_conv3d_unit_op13.onnx"
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    r = cli("-v", "rewrite", source, "-o", out, "--pass", "3d-to-2d", "--report", report)
    assert r.exit_code == 0, r.output
    assert "3 convolutions: 2 rewritten, 1 left alone" in r.output
    assert "1 x not applicable: kernel is 3 on spatial axis 0, not 1" in r.output
    assert "Conv3d_deep" in r.output  # verbose: one line per record
    summary = json.loads(report.read_text())["summary"]
    ((reason, n),) = summary["skipped_by_reason"].items()
    assert n == 1 and reason.startswith("kernel is 3 on spatial axis 0, not 1")

    r = cli("rewrite", source, "-o", out, "--to-2d")
    assert r.exit_code == 0, r.output
    assert "3 convolutions: 0 rewritten, 3 left alone" in r.output
    assert "(3 pass x convolution pairs had no pattern to rewrite; -v lists them)" in r.output
    assert "nothing was rewritten: every convolution was left alone" in r.output


def test_to_3d_and_keras_lowering_from_the_cli(tmp_path):
    model, feeds = load_case(MODELS / "rank_conv2d_chain_op13.onnx")
    out = tmp_path / "3d.onnx"
    r = cli("rewrite", MODELS / "rank_conv2d_chain_op13.onnx", "-o", out, "--to-3d")
    assert r.exit_code == 0, r.output
    lifted = onnx.load(str(out))
    assert all(conv_rank(n, lifted) == 3 for n in conv_nodes(lifted))
    assert_same_outputs(model, lifted, feeds)

    model, feeds = load_case(MODELS / "k3_conv1d_noopt.onnx")
    out = tmp_path / "k3.onnx"
    r = cli("rewrite", MODELS / "k3_conv1d_noopt.onnx", "-o", out, "--to-1d")
    assert r.exit_code == 0, r.output
    assert "bias adds folded 1" in r.output and "pairs cancelled 2" in r.output and "transposes removed" not in r.output
    lowered = onnx.load(str(out))
    assert count(lowered, "Unsqueeze") == 0 and count(lowered, "Squeeze") == 0
    assert_same_outputs(model, lowered, feeds)


def test_two_rank_directions_at_once_is_a_one_line_error(tmp_path):
    out = tmp_path / "out.onnx"
    r = cli("rewrite", MODELS / "conv1d_chain_ts13.onnx", "-o", out, "--to-2d", "--to-1d")
    assert r.exit_code == 2
    assert "choose at most one of --to-2d, --to-1d, --to-3d" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists()
