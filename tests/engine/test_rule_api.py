"""The public rule API: a rule written outside the package registers (in-process and through the
`convrewrite.rules` entry point) and runs through the CLI like a built-in one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import numpy as np

import convrewrite
from convrewrite.cli import main
from convrewrite.errors import ConvRewriteError
from convrewrite.engine import fold_order, known_options, register_rule, unregister_rule

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PLUGINS))

from convrewrite_example_rule import DropZeroPads  # noqa: E402


def two_convs() -> onnx.ModelProto:
    """conv_zero has pads [0, 0] written out; conv_one has pads [1, 1]."""
    w = numpy_helper.from_array(np.ones((4, 4, 3), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y0"], name="conv_zero", pads=[0, 0], kernel_shape=[3]),
        helper.make_node("Conv", ["y0", "w"], ["y1"], name="conv_one", pads=[1, 1], kernel_shape=[3]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])],
                              [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [1, 4, 14])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def pads_of(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    out = {}
    for n in model.graph.node:
        pads = [list(a.ints) for a in n.attribute if a.name == "pads"]
        out[n.name] = pads[0] if pads else None
    return out


@pytest.fixture
def registered():
    register_rule(DropZeroPads)
    try:
        yield
    finally:
        unregister_rule(DropZeroPads.name)


def test_registered_rule_runs_through_the_cli(registered, tmp_path):
    src, out, report = tmp_path / "m.onnx", tmp_path / "o.onnx", tmp_path / "r.json"
    onnx.save(two_convs(), src)
    result = CliRunner().invoke(main, ["rewrite", str(src), "--fold", "drop-zero-pads", "-o", str(out),
                                       "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert pads_of(onnx.load(out)) == {"conv_zero": None, "conv_one": [1, 1]}
    records = {r["node"]: r for r in json.loads(report.read_text())["records"]}
    assert records["conv_zero"]["status"] == "rewritten"
    assert records["conv_zero"]["reason"] == "explicit zero pads removed"
    assert records["conv_one"] == {**records["conv_one"], "status": "skipped", "reason": "pads [1, 1] are not all zero"}
    assert json.loads(report.read_text())["summary"]["counters"] == {"zero_pads_dropped": 1}


def test_registered_fold_joins_fold_all_help_and_options(registered):
    assert fold_order()[-1] == "drop-zero-pads"  # order 90: after the built-in folds
    help_text = CliRunner().invoke(main, ["rewrite", "--help"]).output
    assert "drop-zero-pads" in help_text
    assert "keep_transposed" in known_options()
    result = convrewrite.rewrite(two_convs(), ["all"], keep_transposed=False)
    assert "drop-zero-pads" in result.passes
    with pytest.raises(ConvRewriteError, match="keep_transposed"):
        convrewrite.rewrite(two_convs(), ["drop-zero-pads"], keep_transpose=True)  # a typo names the known ones


def test_unregistered_rule_is_gone():
    assert "drop-zero-pads" not in fold_order()
    with pytest.raises(ConvRewriteError, match="unknown option 'keep_transposed'"):
        convrewrite.rewrite(two_convs(), ["causal"], keep_transposed=True)


def test_rule_installed_through_the_entry_point_runs_in_a_fresh_cli_process(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(PLUGINS / "convrewrite_example_rule", site / "convrewrite_example_rule")
    dist = site / "convrewrite_example_rule-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: convrewrite-example-rule\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[convrewrite.rules]\ndrop-zero-pads = convrewrite_example_rule:DropZeroPads\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    which = subprocess.run([sys.executable, "-c", "import convrewrite; print(convrewrite.__file__)"], env=env,
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert Path(which.stdout.strip()).is_relative_to(ROOT)  # this checkout, not an installed copy
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(two_convs(), src)
    proc = subprocess.run([sys.executable, "-m", "convrewrite", "-v", "rewrite", str(src), "--fold", "all", "-o", str(out)],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "drop-zero-pads" in proc.stdout
    assert pads_of(onnx.load(out)) == {"conv_zero": None, "conv_one": [1, 1]}
    # Without the distribution on the path, the rule is unknown.
    bare = subprocess.run([sys.executable, "-m", "convrewrite", "rewrite", str(src), "--fold", "drop-zero-pads", "-o",
                           str(out)], env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert bare.returncode == 2 and "drop-zero-pads" in bare.stderr


def test_readme_shows_the_example_rule_as_it_is():
    source = (PLUGINS / "convrewrite_example_rule" / "__init__.py").read_text()
    assert source[source.index("from __future__"):] in (ROOT / "README.md").read_text()
