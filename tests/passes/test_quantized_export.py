"""Issue 16: our own dynamically quantized TCN export (models/quant_dynamic_tcn_ts13, made by
models/make_quantized_models.py: torch export + onnxruntime quantize_dynamic) goes through the folds without
--expand-dilations: the chomps after ConvInteger -> Cast -> Mul -> Add fold into the pads, the zero-inserted
ConvInteger kernel compacts (exact: its zero taps hold the weight zero point), the causal Pad before
DynamicQuantizeLinear folds under --assume-finite; onnxruntime gives the same outputs bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import convrewrite
from convrewrite.cli import main
from util import MODELS, assert_same_outputs, assert_same_special, special_feeds

PATH = MODELS / "quant_dynamic_tcn_ts13.onnx"


def feeds(length, seed=0):
    return {"x": np.random.default_rng(seed).standard_normal((1, 4, length)).astype(np.float32)}


@pytest.mark.parametrize("assume_finite", [False, True])
def test_fold_all_to_2d_rewrites_the_convinteger_folds_bit_exact(assume_finite):
    model = onnx.load(str(PATH))
    result = convrewrite.rewrite(model, ["all", "to-2d"], assume_finite=assume_finite)
    folds = {(r.node, r.pass_name): r for r in result.records if r.pass_name in ("causal", "dilated")}
    causal = {node: r for (node, p), r in folds.items() if p == "causal"}
    assert causal["/b/Conv_quant"].rewritten and "the Slice commutes with the Cast, Mul, Add" in causal["/b/Conv_quant"].reason
    assert causal["/c/Conv_quant"].rewritten
    assert folds[("/c/Conv_quant", "dilated")].rewritten
    assert "integer" in folds[("/c/Conv_quant", "dilated")].details["kernel"]
    assert causal["/a/Conv_quant"].rewritten == assume_finite
    if not assume_finite:
        assert causal["/a/Conv_quant"].reason.endswith("left alone without --assume-finite")
    ops = [n.op_type for n in result.model.graph.node]
    producer = {o: n.op_type for n in result.model.graph.node for o in n.output}
    assert not [n for n in result.model.graph.node if n.op_type == "Slice" and producer.get(n.input[0]) == "Add"]
    assert ("Pad" not in ops) == assume_finite
    for length, seed in ((16, 0), (5, 1), (40, 2)):
        assert_same_outputs(model, result.model, feeds(length, seed), atol=0)
    if not assume_finite:  # every fold here is exact for Inf/NaN/-0/subnormal inputs too
        for seed in range(3):
            assert_same_special(model, result.model, special_feeds(model, seed, {"L": 24}), atol=0, rtol=0)


def test_cli_fold_all_to_2d_check_is_bit_exact(tmp_path):
    out = tmp_path / "tcn2d.onnx"
    r = CliRunner().invoke(main, ["rewrite", str(PATH), "-o", str(out), "--fold", "all", "--to-2d", "--check",
                                  "--providers", "cpu"])
    assert r.exit_code == 0, r.output
    assert "EQUIVALENT (bit-exact)" in r.output and "kernels compacted 1" in r.output and "slices folded 2" in r.output
    assert "3 rewritten, 0 left alone" in r.output


def test_qdq_export_folds_bit_exact_without_assume_finite():
    """The quantize_static (QDQ) export of the same net: the Pad before Q -> DQ, the chomps after Conv -> Q -> DQ
    and the zero-inserted int8 kernel behind DequantizeLinear all fold; every input of the convs is a
    DequantizeLinear output, so no fold is finite-math; bit-exact on onnxruntime, special values included."""
    model = onnx.load(str(MODELS / "quant_static_qdq_tcn_ts13.onnx"))
    result = convrewrite.rewrite(model, ["all", "to-2d"])
    by = {(r.node, r.pass_name): r for r in result.records}
    for conv in ("/a/Conv", "/b/Conv", "/c/Conv"):
        assert by[(conv, "causal")].rewritten, by[(conv, "causal")].reason
        assert by[(conv, "to-2d")].rewritten
    assert "qdq" in by[("/a/Conv", "causal")].details
    dilated = by[("/c/Conv", "dilated")]
    assert dilated.rewritten and "qdq" in dilated.details["kernel"] and not dilated.details["finite_math"]
    assert result.counters["slices_folded"] == 2 and result.counters["kernels_compacted"] == 1
    for length, seed in ((16, 0), (5, 1), (40, 2)):
        assert_same_outputs(model, result.model, feeds(length, seed), atol=0)
    for seed in range(3):
        assert_same_special(model, result.model, special_feeds(model, seed, {"L": 24}), atol=0, rtol=0)
