"""Issue 19: onnx_graphsurgeon Graphs go in wherever a model does, and `rewrite` gives one back."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import convrewrite
from util import MODELS, assert_same_outputs, feeds_for

gs = pytest.importorskip("onnx_graphsurgeon")
TCN = MODELS / "tcn_chomp_ts13.onnx"


def test_rewrite_takes_and_gives_a_graph():
    graph = gs.import_onnx(onnx.load(TCN))
    result = convrewrite.rewrite(graph, ["causal", "to-2d"])
    assert isinstance(result.graph, gs.Graph) and isinstance(result.model, onnx.ModelProto)
    assert all(len(n.attrs["kernel_shape"]) == 2 for n in result.graph.nodes if n.op == "Conv")
    original = onnx.load(TCN)
    errors = assert_same_outputs(original, gs.export_onnx(result.graph), feeds_for(original))
    assert errors and max(errors.values()) == 0.0
    assert len([n for n in graph.nodes if n.op == "Slice"]) == 4  # the caller's graph is untouched


def test_check_and_inspect_take_a_graph():
    graph = gs.import_onnx(onnx.load(TCN))
    rewritten = convrewrite.rewrite(graph, ["to-2d"]).graph
    report = convrewrite.check(graph, rewritten, providers="cpu")
    assert report.ok, report.summary
    found = convrewrite.inspect(graph)["convolutions"]
    assert len(found) == 5 and {c["rank"] for c in found} == {1}


def test_not_a_model_says_what_it_takes():
    with pytest.raises(convrewrite.ModelLoadError, match="onnx_graphsurgeon Graph"):
        convrewrite.rewrite(np.zeros(3), ["to-2d"])
