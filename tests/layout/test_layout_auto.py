"""`rewrite --layout auto` (timed choice of keep-1D, h, w) and the target presets `--for`.

Which form wins is decided by an injected timer, never by this machine's
clock; one real CPU run checks only the invariant that holds whatever the
clock says: the written form is never slower than the original beyond the
margin, by the numbers it measured.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper

from convrewrite import api, layout_choice, runtime
from convrewrite.cli import main
from convrewrite.errors import ConvRewriteError
from convrewrite.layout_choice import MIN_MARGIN, choose_layout, decide, rewrite_auto
from convrewrite.presets import PRESETS, resolve, table
from util import MODELS, assert_same_outputs, feeds_for, init, make_model, vi

CHAIN = MODELS / "conv1d_chain_ts13.onnx"


def conv_forms(model: onnx.ModelProto) -> list[str]:
    """Each Conv's form: 1d, h ([.., 1, k] kernel) or w ([.., k, 1])."""
    ws = {t.name: list(t.dims) for t in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type == "Conv":
            dims = ws[n.input[1]]
            out.append("1d" if len(dims) == 3 else "h" if dims[2] == 1 else "w")
    return out


def fake_timer(medians: dict[str, float], spread: float = 0.0):
    """A timer giving each form fixed samples: the mean over its convs of medians[form of the conv] (so a
    whole-model form takes medians[form]); '1d-again' is 1d times (1 + spread)."""
    seen: list[list[str]] = []

    def measure(models, labels):
        seen.append(list(labels))
        out = []
        for model, label in zip(models, labels):
            forms = conv_forms(model)
            m = sum(medians[f] for f in forms) / len(forms)
            m = m * (1 + spread) if label == "1d-again" else m
            out.append([m * 0.99, m, m * 1.01])
        return out

    measure.seen = seen  # type: ignore[attr-defined]
    return measure


def conv_ranks(model: onnx.ModelProto) -> list[int]:
    weights = {t.name: len(t.dims) for t in model.graph.initializer}
    return [weights[n.input[1]] - 2 for n in model.graph.node if n.op_type == "Conv"]


def kernels(model: onnx.ModelProto) -> list[list[int]]:
    ws = {t.name: list(t.dims) for t in model.graph.initializer}
    return [ws[n.input[1]][2:] for n in model.graph.node if n.op_type == "Conv"]


@pytest.mark.parametrize("winner,medians", [
    ("1d", {"1d": 1.0, "h": 1.2, "w": 1.3}),
    ("h", {"1d": 1.0, "h": 0.7, "w": 1.3}),
    ("w", {"1d": 1.0, "h": 0.9, "w": 0.6}),
])
def test_each_form_wins_when_it_is_fastest(winner, medians):
    model = onnx.load(CHAIN)
    timer = fake_timer(medians)
    result, choice = choose_layout(model, ["to-2d"], {}, api.rewrite, timer)
    assert choice.chosen == winner
    # the whole-model round, then one round per region of the chain (two, apart at its MaxPool): none changes
    assert timer.seen[0] == ["1d", "h", "w", "1d-again"] and len(timer.seen) == 3
    assert choice.path == "regions" and [r.chosen for r in choice.regions] == [winner, winner]
    if winner == "1d":
        assert conv_ranks(result.model) == conv_ranks(model) and set(conv_ranks(model)) == {1}
        assert all(r.status == "skipped" and r.reason.startswith("layout auto kept 1D") for r in result.records)
    else:
        assert set(conv_ranks(result.model)) == {2}
        unit = [1, 0] if winner == "h" else [0, 1]
        assert all(k[unit.index(1)] == 1 for k in kernels(result.model))
    assert_same_outputs(model, result.model, feeds_for(model))
    for r in result.records:  # the measured times are in every to-2d record
        info = r.details["layout_auto"]
        assert info["chosen"] == winner and info["medians_ms"]["h"] == pytest.approx(medians["h"])
        assert info["ratios"] == {"h": pytest.approx(medians["h"]), "w": pytest.approx(medians["w"])}
        assert info["margin"] == pytest.approx(MIN_MARGIN)


def test_a_small_win_within_the_margin_keeps_the_original():
    assert decide({"h": 0.985, "w": 1.1}, noise=0.0)[0] == "1d"  # 1.5% < 2% margin
    assert decide({"h": 0.97, "w": 1.1}, noise=0.0)[0] == "h"
    form, margin, reason = decide({"h": 0.9, "w": 1.1}, noise=0.06)
    assert (form, margin) == ("1d", pytest.approx(0.12)) and "margin" in reason  # noisy: 10% is not enough
    model = onnx.load(CHAIN)
    _, choice = choose_layout(model, ["to-2d"], {}, api.rewrite, fake_timer({"1d": 1.0, "h": 0.9, "w": 0.95}, 0.08))
    assert choice.chosen == "1d" and choice.noise == pytest.approx(0.08) and choice.margin == pytest.approx(0.16)


def test_nothing_to_lift_is_not_timed():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [1, 4, 8])], [vi("y", [1, 4, 8])])

    def never(models, labels):
        raise AssertionError("timed a model with nothing to lift")

    result, choice, note = rewrite_auto(model, ["to-2d"], {}, api.rewrite, measure=never)
    assert choice is not None and "not timed" in note and not result.rewritten


def test_real_cpu_run_never_writes_a_slower_form_beyond_the_margin():
    model = onnx.load(CHAIN)
    result, choice, note = rewrite_auto(model, ["to-2d"], {}, api.rewrite, provider="cpu")
    assert set(choice.ratios) == {"h", "w"} and all(r > 0 for r in choice.ratios.values())
    whole = choice.settings["whole_model"]
    if whole != "1d":  # a lifted form only when measured faster than the original by more than the margin
        assert choice.ratios[whole] < 1 - choice.margin
    else:
        assert min(choice.ratios.values()) >= 1 - choice.margin
    for region in choice.regions:  # each change of a region beat the current form and the original by the margin
        if not region.reason.startswith("kept"):
            assert region.ratios[region.chosen] < 1 - choice.margin
            assert region.chosen == "1d" or region.to_original[region.chosen] < 1 - choice.margin
    assert choice.margin >= max(MIN_MARGIN, 2 * choice.noise) - 1e-12
    assert choice.settings["runs"] == 20 and "margin" in note
    assert_same_outputs(model, result.model, feeds_for(model))


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("winner", ["1d", "h", "w"])
def test_cli_auto_writes_the_winner_checks_it_and_reports_the_times(tmp_path, monkeypatch, winner):
    medians = {"1d": 1.0, "h": 1.1, "w": 1.2}
    medians[winner] = 0.5 if winner != "1d" else 1.0
    monkeypatch.setattr(layout_choice, "MEASURE", fake_timer(medians))
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    res = invoke(["rewrite", CHAIN, "-o", out, "--to-2d", "--layout", "auto", "--check", "--finite", "--providers", "cpu",
                  "--report", report])
    assert res.exit_code == 0, res.output
    assert f"layout auto on cpu: chose {winner}" in res.output and "margin 2.0%" in res.output
    assert "EQUIVALENT" in res.output
    written = onnx.load(out)
    assert set(conv_ranks(written)) == ({1} if winner == "1d" else {2})
    records = json.loads(report.read_text())["records"]
    assert records and all(r["details"]["layout_auto"]["chosen"] == winner for r in records)
    assert records[0]["details"]["layout_auto"]["medians_ms"]["1d"] == 1.0


def test_cli_auto_needs_to_2d_and_a_running_provider(tmp_path, monkeypatch):
    res = invoke(["rewrite", CHAIN, "-o", tmp_path / "o.onnx", "--layout", "auto"])
    assert res.exit_code == 2 and "--layout auto chooses the form of --to-2d" in res.output
    if not runtime.probe_provider("CUDAExecutionProvider")[0]:
        res = invoke(["rewrite", CHAIN, "-o", tmp_path / "o.onnx", "--to-2d", "--layout", "auto",
                      "--provider", "cuda"])
        assert res.exit_code == 2 and "cannot time" in res.output and len(res.output.strip().splitlines()) == 1
        assert not (tmp_path / "o.onnx").exists()


# ------------------------------------------------------------------ presets


def same_pad_model() -> onnx.ModelProto:
    """A 1D conv with auto_pad SAME_UPPER and a depthwise + pointwise pair (what an NPU wants made plain)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], auto_pad="SAME_UPPER"),
             helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w1"], ["c"], group=4, pads=[1, 1]),
             helper.make_node("Conv", ["c", "w2"], ["y"])]
    inits = [init("w0", rng.standard_normal((4, 4, 3)).astype(np.float32)),
             init("w1", rng.standard_normal((4, 1, 3)).astype(np.float32)),
             init("w2", rng.standard_normal((4, 4, 1)).astype(np.float32))]
    return make_model(nodes, [vi("x", [1, 4, 16])], [vi("y", [1, 4, 16])], inits)


def test_preset_table_and_resolution():
    assert set(PRESETS) == {"ort-cpu", "ort-cuda", "tensorrt", "npu"}
    assert (resolve("tensorrt", False, False, False, None, (), None).layout,
            resolve("npu", False, False, False, None, (), None).layout) == ("w", "h")
    cpu = resolve("ort-cpu", False, False, False, None, (), None)
    assert (cpu.to_2d, cpu.layout, cpu.folds, cpu.provider) == (True, "auto", ("all",), "cpu")
    cuda = resolve("ort-cuda", False, False, False, None, (), None)
    assert (cuda.layout, cuda.provider, cuda.fallback_layout) == ("auto", "cuda", "w")
    # explicit flags win
    assert resolve("npu", False, False, False, "w", (), None).layout == "w"
    assert resolve("tensorrt", False, False, False, None, ("causal",), None).folds == ("causal",)
    lowered = resolve("ort-cpu", False, True, False, None, (), None)
    assert (lowered.to_1d, lowered.to_2d, lowered.layout) == (True, False, "h")
    assert resolve("ort-cuda", False, False, False, None, (), "cpu").fallback_layout is None
    assert resolve(None, True, False, False, None, (), None).layout == "h"
    with pytest.raises(ConvRewriteError, match="unknown target"):
        resolve("gpu", False, False, False, None, (), None)
    for name in PRESETS:
        assert f"`{name}`" in table()


@pytest.mark.parametrize("preset,unit", [("npu", "h"), ("tensorrt", "w")])
def test_cli_static_presets(tmp_path, preset, unit):
    model = same_pad_model()
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, src)
    res = invoke(["rewrite", src, "-o", out, "--for", preset])
    assert res.exit_code == 0, res.output
    written = onnx.load(out)
    assert set(conv_ranks(written)) == {2}
    assert all(k[0 if unit == "h" else 1] == 1 for k in kernels(written))
    for n in written.graph.node:
        if n.op_type == "Conv":
            attrs = {a.name: a for a in n.attribute}
            assert "auto_pad" not in attrs or attrs["auto_pad"].s == b"NOTSET"
    assert_same_outputs(model, written, feeds_for(model))


def test_cli_measured_presets_and_override(tmp_path, monkeypatch):
    monkeypatch.setattr(layout_choice, "MEASURE", fake_timer({"1d": 1.0, "h": 0.5, "w": 0.9}))
    out = tmp_path / "o.onnx"
    for preset in ("ort-cpu", "ort-cuda"):  # the injected timer stands for the provider
        res = invoke(["rewrite", CHAIN, "-o", out, "--for", preset])
        assert res.exit_code == 0 and "chose h" in res.output, res.output
        assert all(k[0] == 1 for k in kernels(onnx.load(out)))
    res = invoke(["rewrite", CHAIN, "-o", out, "--for", "ort-cpu", "--layout", "w"])  # explicit wins, no timing
    assert res.exit_code == 0 and "layout auto" not in res.output
    assert all(k[1] == 1 for k in kernels(onnx.load(out)))
    res = invoke(["rewrite", CHAIN, "-o", out, "--for", "tensorrt", "--fold", "causal"])
    assert res.exit_code == 0 and "passes: causal, to-2d" in res.output


def test_ort_cuda_falls_back_to_its_documented_layout_where_cuda_does_not_run(tmp_path):
    if runtime.probe_provider("CUDAExecutionProvider")[0]:
        pytest.skip("CUDA runs here: the preset measures")
    out = tmp_path / "o.onnx"
    res = invoke(["rewrite", CHAIN, "-o", out, "--for", "ort-cuda", "--report", tmp_path / "r.json"])
    assert res.exit_code == 0 and "layout w (not measured" in res.output, res.output
    records = json.loads((tmp_path / "r.json").read_text())["records"]
    assert {r["details"]["layout_auto"]["measured"] for r in records if r["pass"] == "to-2d"} == {False}
    assert all(k[1] == 1 for k in kernels(onnx.load(out)))


def test_readme_holds_the_preset_table():
    from util import ROOT

    assert table() in (ROOT / "README.md").read_text()
