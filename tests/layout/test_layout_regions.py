"""`--layout auto` region by region, and the rank pass's per-region `layouts` option.

Which form wins is decided by an injected timer that prices each conv by its
form (never by this machine's clock), so a model's time is the sum over its
regions: the search must find the per-region optimum.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper

from convrewrite import api, layout_choice
from convrewrite.cli import main
from convrewrite.errors import ConvRewriteError
from convrewrite.layout_choice import choose_layout
from util import assert_same_outputs, feeds_for, init, make_model, vi

C, L = 4, 16


def two_regions(shared_input: bool = False) -> onnx.ModelProto:
    """Region a (convs a1, a2) -> MatMul over L (stays 1D) -> region b (convs b1, b2).

    `shared_input`: instead, a and b both read the graph input (one entry wrapper serves both: one region).
    """
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "wa1"], ["a1"], name="a1", pads=[1, 1]),
             helper.make_node("Relu", ["a1"], ["a1r"]),
             helper.make_node("Conv", ["a1r", "wa2"], ["a2"], name="a2", pads=[1, 1])]
    if shared_input:
        nodes += [helper.make_node("Conv", ["x", "wb1"], ["b1"], name="b1", pads=[1, 1])]
    else:
        nodes += [helper.make_node("MatMul", ["a2", "m"], ["mm"]),
                  helper.make_node("Conv", ["mm", "wb1"], ["b1"], name="b1", pads=[1, 1])]
    nodes += [helper.make_node("Tanh", ["b1"], ["b1t"]),
              helper.make_node("Conv", ["b1t", "wb2"], ["y" if not shared_input else "b2"], name="b2", pads=[1, 1])]
    if shared_input:
        nodes.append(helper.make_node("Add", ["a2", "b2"], ["y"]))
    inits = [init(n, rng.standard_normal((C, C, 3)).astype(np.float32)) for n in ("wa1", "wa2", "wb1", "wb2")]
    inits.append(init("m", rng.standard_normal((L, L)).astype(np.float32)))
    return make_model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, L])], inits)


def forms(model: onnx.ModelProto) -> dict[str, str]:
    """Conv name -> 1d, h ([.., 1, k] kernel) or w ([.., k, 1])."""
    ws = {t.name: list(t.dims) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type == "Conv":
            dims = ws[n.input[1]]
            out[n.name] = "1d" if len(dims) == 3 else "h" if dims[2] == 1 else "w"
    return out


def priced_timer(prices: dict[str, dict[str, float]]):
    """Each model takes the sum of its convs' prices (prices[region letter][form]); '1d-again' as '1d'."""
    seen: list[list[str]] = []

    def cost(model):
        return sum(prices[name[0]][form] for name, form in forms(model).items())

    def measure(models, labels):
        seen.append(list(labels))
        return [[cost(m) * 0.99, cost(m), cost(m) * 1.01] for m in models]

    measure.seen = seen  # type: ignore[attr-defined]
    measure.cost = cost  # type: ignore[attr-defined]
    return measure


A_H_B_W = {"a": {"1d": 1.0, "h": 0.5, "w": 0.8}, "b": {"1d": 1.0, "h": 0.9, "w": 0.4}}
A_H_B_1D = {"a": {"1d": 1.0, "h": 0.5, "w": 0.8}, "b": {"1d": 1.0, "h": 1.6, "w": 1.3}}


def test_the_rank_pass_lifts_each_region_with_its_own_layout_and_says_which_convs_it_covers():
    model = two_regions()
    keys = {r.node: r.key for r in api.rewrite(model, ["to-2d"]).records}
    for a, b in (("h", "w"), ("w", "keep"), ("keep", "h")):
        result = api.rewrite(model, ["to-2d"], layouts={keys["a1"]: a, keys["a2"]: a, keys["b1"]: b, keys["b2"]: b})
        want = {"keep": "1d"}
        assert forms(result.model) == {"a1": want.get(a, a), "a2": want.get(a, a), "b1": want.get(b, b),
                                       "b2": want.get(b, b)}
        assert_same_outputs(model, result.model, feeds_for(model), atol=0.0)  # exact: bit for bit
        for r in result.records:
            if r.rewritten:
                assert r.details["region_convs"] == (["a1", "a2"] if r.node[0] == "a" else ["b1", "b2"])
            else:
                assert "kept at its rank" in r.reason
    with pytest.raises(ConvRewriteError, match="not one of h, w, keep"):
        api.rewrite(model, ["to-2d"], layouts={keys["a1"]: "1d"})


def test_a_region_cannot_be_split_between_layouts():
    model = two_regions()
    keys = {r.node: r.key for r in api.rewrite(model, ["to-2d"]).records}
    result = api.rewrite(model, ["to-2d"], layouts={keys["a1"]: "h", keys["a2"]: "w"})
    by_node = {r.node: r for r in result.records}
    assert by_node["a1"].rewritten and not by_node["a2"].rewritten  # a2 stays 1D behind wrappers
    assert "differs from its region's" in by_node["a2"].reason or "unit axis at 2, not 3" in by_node["a2"].reason
    assert_same_outputs(model, result.model, feeds_for(model), atol=0.0)


@pytest.mark.parametrize("prices,want", [(A_H_B_W, {"a": "h", "b": "w"}), (A_H_B_1D, {"a": "h", "b": "1d"})])
def test_auto_picks_each_regions_fastest_form(prices, want):
    model = two_regions()
    timer = priced_timer(prices)
    result, choice = choose_layout(model, ["to-2d"], {}, api.rewrite, timer)
    assert forms(result.model) == {f"{r}{i}": want[r] for r in "ab" for i in (1, 2)}
    assert choice.path == "regions" and choice.chosen == "regions"
    assert [(r.convs, r.chosen) for r in choice.regions] == [(["a1", "a2"], want["a"]), (["b1", "b2"], want["b"])]
    assert len(timer.seen) == 3 and all(len(labels) == 4 for labels in timer.seen)  # 1 + R rounds
    assert timer.cost(result.model) < timer.cost(model)  # never slower than the original
    assert_same_outputs(model, result.model, feeds_for(model), atol=0.0)
    for r in result.records:
        info = r.details["layout_auto"]
        assert info["path"] == "regions" and [x["chosen"] for x in info["regions"]] == [want["a"], want["b"]]
        assert info["regions"][1]["medians_ms"]["current"] > 0 and "ratios_to_original" in info["regions"][1]
        region = 0 if r.node[0] == "a" else 1
        assert r.details["region"] == region and r.details["region_convs"] == info["regions"][region]["convs"]
        if want[r.node[0]] == "1d":
            assert not r.rewritten and r.reason.startswith("layout auto kept 1D: region 1 (b1, b2)")
        else:
            assert r.rewritten and r.details["layout"] == want[r.node[0]]
    assert choice.rewrite_options()["layouts"]  # bisect rebuilds the same form
    again = api.rewrite(model, ["to-2d"], **choice.rewrite_options())
    assert forms(again.model) == forms(result.model)


def test_regions_meeting_at_a_shared_tensor_take_the_whole_model_path():
    model = two_regions(shared_input=True)
    result, choice = choose_layout(model, ["to-2d"], {}, api.rewrite, priced_timer(A_H_B_W))
    assert choice.path == "whole-model" and "1 region" in choice.path_reason
    assert len({r.details["region"] for r in result.records}) == 1
    assert set(forms(result.model).values()) == {choice.chosen}
    assert all(r.details["layout_auto"]["path"] == "whole-model" for r in result.records)


def test_a_region_change_must_beat_the_original_of_its_round_too():
    """Each region round times the original beside the current form: a change that beats the current form
    but not the original as timed in that round is refused (here the original times faster after round 1)."""
    model = two_regions()
    priced = priced_timer(A_H_B_1D)  # whole model: 1d 4.0, h 4.2, w 4.2 -> 1d; region a as h alone: 3.0

    def drifting(models, labels):
        out = priced(models, labels)
        if len(priced.seen) > 1:  # the region rounds: the original ("1d") now times at 0.6x
            out = [[t * 0.6 for t in s] if label == "1d" else s for s, label in zip(out, labels)]
        return out

    result, choice = choose_layout(model, ["to-2d"], {}, api.rewrite, drifting)
    assert choice.settings["whole_model"] == "1d" and choice.chosen == "1d"
    assert set(forms(result.model).values()) == {"1d"}
    a = choice.regions[0]
    assert a.ratios["h"] == pytest.approx(0.75) and a.to_original["h"] == pytest.approx(1.25)
    assert a.chosen == "1d" and "not faster than the original" in a.reason
    baseline = priced_timer(A_H_B_1D)  # a plain run of the same prices lifts region a
    assert forms(choose_layout(model, ["to-2d"], {}, api.rewrite, baseline)[0].model)["a1"] == "h"


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_writes_the_per_region_form_checks_it_and_reports_each_region(tmp_path, monkeypatch):
    model = two_regions()
    src, out, report = tmp_path / "m.onnx", tmp_path / "o.onnx", tmp_path / "r.json"
    onnx.save(model, src)
    monkeypatch.setattr(layout_choice, "MEASURE", priced_timer(A_H_B_W))
    res = invoke(["rewrite", src, "-o", out, "--to-2d", "--layout", "auto", "--check", "--providers", "cpu",
                  "--report", report])
    assert res.exit_code == 0, res.output
    assert "chose per region (2 independent regions" in res.output and "region 1 (b1, b2): w" in res.output
    assert "EQUIVALENT" in res.output
    assert forms(onnx.load(out)) == {"a1": "h", "a2": "h", "b1": "w", "b2": "w"}
    records = json.loads(report.read_text())["records"]
    assert {(r["node"], r["details"]["layout"], r["details"]["region"]) for r in records} == {
        ("a1", "h", 0), ("a2", "h", 0), ("b1", "w", 1), ("b2", "w", 1)}
    assert all(r["details"]["layout_auto"]["path"] == "regions" for r in records)
