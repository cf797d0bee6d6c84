"""unit-axis, wrapped-1d and zero-inserted come from the lowering and dilated rules' own proofs, with their reasons."""

from __future__ import annotations

import numpy as np
from onnx import helper

import convrewrite
from convrewrite import inspect
from util import MODELS, init, make_model, vi

FINITE = "left alone without --assume-finite"


def test_zero_inserted_kind_agrees_with_the_dilated_fold():
    # Without --assume-finite a float kernel is refused (with the fold's own reason); an integer or QDQ kernel
    # with finite inputs is compacted, so no reason.
    for name in ("zero_inserted_conv1d_ts13", "zero_inserted_conv2d_ts13", "zero_inserted_convtr1d_ts13",
                 "quant_dynamic_tcn_ts13", "quant_static_qdq_tcn_ts13"):
        path = str(MODELS / f"{name}.onnx")
        convs = inspect(path)["convolutions"]
        records = {r.node: r for r in convrewrite.rewrite(path, ["dilated"]).records}
        assert any("zero-inserted" in c["kinds"] for c in convs), name
        for c in convs:
            if "zero-inserted" not in c["kinds"]:
                continue
            refused = c.get("refused", {}).get("zero-inserted", "")
            record = records[c["name"]]
            assert record.rewritten == (not refused), (name, c["name"], refused)
            if refused:
                assert refused == record.reason and FINITE in refused
                assert convrewrite.rewrite(path, ["dilated"], assume_finite=True).records[0].rewritten


def _unit_axis_model(pads):
    w = init("w", np.ones((4, 4, 1, 3), np.float32))
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[1, 3], pads=pads)
    return make_model([conv], [vi("x", [1, 4, 1, 8])], [vi("y", [1, 4, 1 + pads[0] + pads[2], 8])], [w])


def test_unit_axis_is_the_lowering_proof_and_says_why_it_is_refused():
    ok = inspect(_unit_axis_model([0, 1, 0, 1]))["convolutions"][0]
    assert "unit-axis" in ok["kinds"] and "refused" not in ok
    # Padding the unit axis makes the output 3 high there: to-1d cannot drop it, and inspect says why.
    padded = _unit_axis_model([1, 1, 1, 1])
    conv = inspect(padded)["convolutions"][0]
    assert "unit-axis" in conv["kinds"]
    reason = conv["refused"]["unit-axis"]
    record = convrewrite.rewrite(padded, ["to-1d"]).records[0]
    assert not record.rewritten and reason in record.reason


def test_wrapped_1d_on_the_keras_models_is_what_to_1d_lowers():
    for name in ("k2_conv1d", "k2_sepconv1d", "k3_conv1d", "causal_unsq_conv2d_ts13"):
        path = MODELS / f"{name}.onnx"
        convs = inspect(str(path))["convolutions"]
        records = {r.node: r for r in convrewrite.rewrite(str(path), ["to-1d"]).records}
        for c in convs:
            if "wrapped-1d" in c["kinds"] and "wrapped-1d" not in c.get("refused", {}):
                assert "unit-axis" in c["kinds"] and records[c["name"]].rewritten, (name, c["name"])
