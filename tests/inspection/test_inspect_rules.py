"""`inspect` asks the rules: per convolution, what each would do (their own match, dry) or why not."""

from __future__ import annotations

import json

from click.testing import CliRunner

import convrewrite
from convrewrite.cli import main
from convrewrite.inspection import rule_order
from util import MODELS


def test_every_rule_answers_for_every_conv_and_nothing_changes():
    model = convrewrite.load(str(MODELS / "tcn_chomp_ts13.onnx"))
    before = model.SerializeToString()
    report = convrewrite.inspect(model, rules=True)
    assert model.SerializeToString() == before
    for conv in report["convolutions"]:
        assert [v["rule"] for v in conv["rules"]] == rule_order()
        assert all(v["verdict"] in ("matches", "no") and (v["verdict"] == "matches" or v["reason"]) for v in conv["rules"])


def test_causal_verdict_agrees_with_the_fold():
    # What inspect says the causal fold would do is what the fold does.
    path = str(MODELS / "tcn_chomp_ts13.onnx")
    report = convrewrite.inspect(path, rules=True)
    result = convrewrite.rewrite(path, ["causal"])
    said = {c["name"]: next(v for v in c["rules"] if v["rule"] == "causal") for c in report["convolutions"]}
    for r in result.records:
        assert (said[r.node]["verdict"] == "matches") == r.rewritten, (r.node, said[r.node], r.reason)
        if not r.rewritten:
            assert said[r.node]["reason"] == r.reason


def test_inspect_json_and_verbose_show_the_verdicts():
    path = str(MODELS / "tcn_chomp_ts13.onnx")
    out = CliRunner().invoke(main, ["inspect", path, "--json"])
    assert out.exit_code == 0, out.output
    convs = json.loads(out.output)["convolutions"]
    assert all("rules" in c for c in convs)
    verbose = CliRunner().invoke(main, ["-v", "inspect", path])
    assert verbose.exit_code == 0 and "causal" in verbose.output and "no Pad before or Slice after it" in verbose.output
    plain = CliRunner().invoke(main, ["inspect", path])
    assert "no Pad before or Slice after it" not in plain.output
    assert "rules" not in convrewrite.inspect(path)["convolutions"][0]  # the API's default stays as it was


def test_kinds_come_from_the_rules_and_say_why_they_refuse():
    # The Pad feeds the conv, but also a graph output: the causal rule refuses it, so no "causal" kind,
    # and "pad-fed" carries the rule's own reason, in JSON and in text.
    path = str(MODELS / "pad_two_consumers_ts13.onnx")
    conv = convrewrite.inspect(path)["convolutions"][0]
    assert conv["kinds"] == ["pad-fed"]
    result = convrewrite.rewrite(path, ["causal"])
    assert conv["refused"] == {"pad-fed": result.records[0].reason} and not result.records[0].rewritten
    out = CliRunner().invoke(main, ["inspect", path])
    assert out.exit_code == 0, out.output
    assert f"pad-fed: not rewritten: {result.records[0].reason}" in out.output


def test_kinds_agree_with_the_folds_on_every_shipped_model():
    # Wherever inspect says pad-fed/sliced without a reason, the causal fold folds it; separable-pair without a
    # reason: the separable fold pairs (or already has) the two convs.
    for name in ("tcn_chomp_ts13", "wavenet_ts13", "sep_affine_between_ts13", "reflect_pad_conv_ts13"):
        path = str(MODELS / f"{name}.onnx")
        convs = convrewrite.inspect(path)["convolutions"]
        causal = {r.node: r for r in convrewrite.rewrite(path, ["causal"]).records}
        separable = {r.node: r for r in convrewrite.rewrite(path, ["separable"]).records}
        for c in convs:
            refused = c.get("refused", {})
            if ("pad-fed" in c["kinds"] or "sliced" in c["kinds"]) and not refused:
                assert causal[c["name"]].rewritten, (name, c["name"])
            if "separable-pair" in c["kinds"] and "separable-pair" not in refused:
                assert "pair" in separable[c["name"]].details, (name, c["name"])
