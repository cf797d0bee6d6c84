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
