"""The --html report without a browser: histograms in the checker, region diffing, escaping, the CLI's rules.

(test_html_browser.py loads the pages in headless Chromium.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

import convrewrite
from convrewrite.checker.compare import compare_values
from convrewrite.checker.histogram import EDGES, error_histogram
from convrewrite.report_html import find_regions, html_report, region_count
from convrewrite.report_html.regions import MAX_DRAWN

from util import init, make_model, vi

MODELS = Path(__file__).resolve().parents[2] / "models"
TCN = MODELS / "tcn_chomp_ts13.onnx"
EVIL = '<script>alert("x")</script>&"\''


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convrewrite", *args], capture_output=True, text=True, cwd=cwd)


def conv_chain(n: int, name_prefix: str = "c") -> onnx.ModelProto:
    """x [1,4,32] -> n x (Conv1d k3 p1) with distinct weights; IR 8, opset 13."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        w = f"w{i}"
        inits.append(init(w, rng.standard_normal((4, 4, 3)).astype(np.float32) * 0.3))
        out = "y" if i == n - 1 else f"t{i}"
        nodes.append(helper.make_node("Conv", [prev, w], [out], name=f"{name_prefix}{i}", kernel_shape=[3], pads=[1, 1]))
        prev = out
    return make_model(nodes, [vi("x", [1, 4, 32])], [vi("y", [1, 4, 32])], inits)


# ------------------------------------------------------------------ histogram (checker)


def test_histogram_counts_every_element_once_in_decade_bins():
    ref = np.zeros(10)
    act = np.array([0, 0, 1e-13, 1e-12, 5e-7, 1e-6, 0.5, 2e3, np.nan, np.inf])
    h = compare_values(ref, act, 1e-5, 0.0).histogram
    assert h["edges"] == EDGES and len(h["counts"]) == len(EDGES) + 1
    assert h["zero"] == 2 and h["nonfinite"] == 2
    assert h["zero"] + h["nonfinite"] + sum(h["counts"]) == 10
    idx = {e: i for i, e in enumerate(EDGES)}
    assert h["counts"][0] == 1  # 1e-13: below the first edge
    assert h["counts"][idx[1e-12] + 1] == 1  # an edge starts its bin
    assert h["counts"][idx[1e-7] + 1] == 1 and h["counts"][idx[1e-6] + 1] == 1
    assert h["counts"][idx[0.1] + 1] == 1 and h["counts"][-1] == 1  # 0.5; 2e3 >= the last edge


def test_histogram_table_lookup_matches_a_binary_search():
    """The exponent-table binning gives what searchsorted over the edges gives, edges and extremes included."""
    edges = np.asarray(EDGES)
    rng = np.random.default_rng(1)
    with np.errstate(over="ignore"):
        x = np.abs(rng.standard_normal(20000)) * 10.0 ** rng.integers(-320, 310, 20000).astype(np.float64)
    x[rng.integers(0, x.size, 200)] = 0
    x[rng.integers(0, x.size, 20)] = np.inf
    x[rng.integers(0, x.size, 20)] = np.nan
    x = np.concatenate([x, edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf), [5e-324, 2.2e-308, 1.7e308]])
    finite = np.isfinite(x)
    positive = x[finite & (x > 0)]
    expected = np.bincount(np.searchsorted(edges, positive, side="right"), minlength=len(EDGES) + 1)
    h = error_histogram(x)
    assert h["counts"] == expected.tolist()
    assert h["zero"] == int(np.count_nonzero(x == 0)) and h["nonfinite"] == int(np.count_nonzero(~finite))


def test_histogram_in_report_json_and_merged_over_sequences():
    a = np.arange(6, dtype=np.float32)
    stats = compare_values([a, a], [a, a + 1])
    assert stats.histogram["zero"] == 6 and sum(stats.histogram["counts"]) == 6
    assert json.loads(json.dumps(stats.to_dict()))["histogram"] == stats.histogram
    ints = compare_values(np.arange(4), np.arange(4) + 3).histogram
    assert ints["counts"][EDGES.index(1.0) + 1] == 4  # |diff| 3 lies in [1, 10)
    assert error_histogram(np.array([]))["counts"] == [0] * (len(EDGES) + 1)


def test_check_report_carries_histograms():
    model = onnx.load(str(TCN))
    report = convrewrite.check(model, model, providers="cpu", trials=1, draws="normal")
    row = report.to_dict()["results"][0]
    h = row["stats"]["histogram"]
    assert h["zero"] == row["stats"]["size"]


# ------------------------------------------------------------------ regions


def test_causal_fold_gives_one_region_per_conv_tied_to_its_record():
    original = onnx.load(str(TCN))
    result = convrewrite.rewrite(original, ["causal"])
    records = [r.to_dict() for r in result.records]
    regions = find_regions(original, result.model, records)
    rewritten = [r for r in records if r["status"] == "rewritten"]
    assert len(regions) == len(rewritten) == 4
    for region, record in zip(regions, rewritten):
        assert [r["key"] for r in region.records] == [record["key"]]
        before = {n.key: n.status for n in region.before.nodes}
        after = {n.key: n.status for n in region.after.nodes}
        assert before[record["node"]] == after[record["node"]] == "changed"
        assert "removed" in before.values() and "halo" in after.values()
        conv = next(n for n in region.after.nodes if n.key == record["node"])
        assert any(c.startswith("pads:") for c in conv.changes)  # the changed attribute is named


def test_lifting_groups_the_chain_and_shows_new_shapes():
    original = onnx.load(str(TCN))
    result = convrewrite.rewrite(original, ["to-2d"])
    (region,) = find_regions(original, result.model)
    statuses = {n.status for n in region.after.nodes}
    assert {"added", "changed", "reshaped"} <= statuses
    relu = next(n for n in region.after.nodes if n.key == "/block1/Relu")
    assert relu.status == "reshaped" and relu.shapes == ["1x16x1x64"]


def test_identical_graphs_have_no_region_and_big_regions_are_bounded():
    chain = conv_chain(3)
    assert find_regions(chain, chain) == []
    big = conv_chain(MAX_DRAWN + 15)
    lifted = convrewrite.rewrite(big, ["to-2d"]).model
    (region,) = find_regions(big, lifted)
    assert len(region.before.nodes) == MAX_DRAWN and region.before.hidden == 15
    page = html_report(big, lifted)
    assert "15 more nodes in this region, not drawn" in page
    assert region_count(big, lifted) == 1


# ------------------------------------------------------------------ the page


def evil_models() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """A Conv and a Relu whose names, and a tensor's, are markup; the rewrite changes the Conv's pads."""
    w = init("w", np.ones((2, 2, 3), np.float32))
    before = make_model([helper.make_node("Conv", ["x", "w"], [EVIL], name=EVIL, kernel_shape=[3], pads=[1, 1]),
                         helper.make_node("Relu", [EVIL], ["y"], name="<b>relu</b>")],
                        [vi("x", [1, 2, 8])], [vi("y", [1, 2, 8])], [w])
    after = onnx.ModelProto()
    after.CopyFrom(before)
    after.graph.node[0].attribute[1].ints[:] = [2, 0]
    return before, after


def test_every_model_string_is_escaped():
    before, after = evil_models()
    records = [{"pass": "causal", "node": EVIL, "op_type": "Conv", "status": "rewritten", "reason": EVIL,
                "before": {"pads": [1, 1]}, "after": {"pads": [2, 0]}, "key": f"causal:main:{EVIL}",
                "tensor_map": [{"original": EVIL, "candidate": "<i>t</i>", "view": "squeeze(2)"}]}]
    check = {"ok": False, "summary": EVIL, "results": [
        {"provider": "CPUExecutionProvider", "output": EVIL, "status": "failed", "atol": 1e-5, "worst_trial": EVIL,
         "stats": {"max_abs": 0.5, "max_rel": "inf", "beyond_count": 1, "size": 16,
                   "histogram": error_histogram(np.array([0, 1e-6, 0.5, np.inf]))}}],
             "layers": {"mode": "map", "trial": EVIL, "pairs": [
                 {"original": EVIL, "candidate": EVIL, "view": EVIL, "shape": [1, 2, 8], "dtype": "float32",
                  "max_abs": 0.5, "max_rel": 1.0, "beyond": 0.25, "atol": 1e-5, "rtol": 1e-4, "diverges": True}],
                 "first_divergent": {"original": EVIL, "candidate": EVIL}}}
    page = html_report(before, after, records=records, check=check, summary=EVIL, title=EVIL)
    assert page.count("<script") == 1 and "<b>relu" not in page and "<i>t</i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # No attribute value is left open by a quote in a name.
    for value in re.findall(r'data-node="([^"]*)"', page):
        assert "<" not in value and "'" not in value


def test_page_is_self_contained():
    before, after = evil_models()
    page = html_report(before, after, summary="s")
    assert not re.search(r"(?i)\b(src|href)\s*=\s*[\"'](?!#)", page)  # only in-page anchors
    assert not re.search(r"(?i)https?:|@import|url\((?!#)", page.replace("http-equiv", ""))
    assert "default-src 'none'" in page


def test_layers_and_tensor_map_render_when_present():
    before, after = evil_models()
    pairs = [{"original": f"t{i}", "candidate": f"t{i}_2d", "view": "squeeze axis 2", "shape": [1, 2, 8],
              "dtype": "float32", "max_abs": v, "max_rel": v, "beyond": 0.0 if v < 1e-5 else 0.5, "atol": 1e-5,
              "rtol": 1e-4, "diverges": v >= 1e-5} for i, v in enumerate([0.0, 1e-7, 3e-3, 0.2])]
    check = {"ok": False, "summary": "NOT EQUIVALENT", "results": [],
             "layers": {"mode": "map", "trial": "normal (seed 0)", "pairs": pairs,
                        "first_divergent": pairs[2]}}
    records = [{"pass": "to-2d", "node": "n", "status": "rewritten", "key": "k",
                "tensor_map": [{"original": "t0", "candidate": "t0_2d", "view": "squeeze axis 2"}]}]
    page = html_report(before, after, records=records, check=check)
    assert 'data-pairs="4"' in page and "first divergent: t2" in page
    assert page.count('class="point diverges') == 2 and 'class="point diverges first"' in page
    assert "1 tensors" in page and "squeeze axis 2" in page
    plain = html_report(before, after, check={"ok": True, "summary": "EQUIVALENT", "results": []})
    assert 'id="layers"' not in plain and "tensor map" not in plain


# ------------------------------------------------------------------ the commands


def test_rewrite_check_html_and_its_safety_rules(tmp_path: Path):
    out, page = tmp_path / "o.onnx", tmp_path / "r.html"
    done = cli("rewrite", str(TCN), str(out), "--fold", "all", "--to-2d", "--check", "--html", str(page), "-q")
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert "EQUIVALENT" in text and text.count('class="region-drawing') == 2 and 'class="histogram"' in text
    original_bytes = TCN.read_bytes()
    for bad, says in [(str(TCN), "is the input model"), (str(out), "is also -o"), ("-", "needs a file name")]:
        refused = cli("rewrite", str(TCN), str(out), "--to-2d", "--html", bad)
        assert refused.returncode == 2 and says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert TCN.read_bytes() == original_bytes
    batch = cli("rewrite", str(TCN), str(MODELS / "k3_conv1d.onnx"), "-o", str(tmp_path / "d") + "/", "--to-2d",
                "--html", str(page))
    assert batch.returncode == 2 and "--html takes one MODEL" in batch.stderr


def test_check_html_on_a_failing_pair(tmp_path: Path):
    original = onnx.load(str(TCN))
    broken = onnx.ModelProto()
    broken.CopyFrom(original)
    w = next(t for t in broken.graph.initializer if t.name == "block2.conv2.bias")
    arr = onnx.numpy_helper.to_array(w).copy()
    arr[0] += 0.25
    w.CopyFrom(onnx.numpy_helper.from_array(arr, w.name))
    cand, page = tmp_path / "cand.onnx", tmp_path / "c.html"
    onnx.save(broken, str(cand))
    done = cli("check", str(TCN), str(cand), "--html", str(page), "--draws", "normal", "--providers", "cpu")
    assert done.returncode == 1
    text = page.read_text()
    assert "NOT EQUIVALENT" in text and 'class="verdict bad"' in text and 'class="histogram"' in text
    assert "the two graphs are the same" in text  # only a weight changed: no region
    same = cli("check", str(TCN), str(cand), "--html", str(cand))
    assert same.returncode == 2 and "is the input CANDIDATE" in same.stderr
    folder = cli("check", str(MODELS), "--html", str(page))
    assert folder.returncode == 2 and "--html takes one model" in folder.stderr


def test_api_names():
    assert convrewrite.html_report is html_report
    assert callable(convrewrite.write_html_report)


def test_rewrite_without_check_and_a_failed_check_still_write_the_page(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner
    from onnx import numpy_helper

    import convrewrite.api
    import convrewrite.cli_rewrite
    from convrewrite.cli import main

    plain = tmp_path / "plain.html"
    done = CliRunner().invoke(main, ["rewrite", str(TCN), "-o", str(tmp_path / "p.onnx"), "--fold", "causal",
                                     "--html", str(plain)])
    assert done.exit_code == 0, done.output
    text = plain.read_text()
    assert text.count('data-side="before"') == 4 and 'id="outputs"' not in text  # no check: no outputs

    real = convrewrite.api.rewrite

    def planted(model, passes, only=None, **options):  # a 1e-2 weight error in the first conv
        result = real(model, passes, only=only, **options)
        weight = next(t for t in result.model.graph.initializer if t.name == "block1.conv1.weight")
        array = numpy_helper.to_array(weight).copy()
        array.flat[0] += np.float32(1e-2)
        weight.CopyFrom(numpy_helper.from_array(array, weight.name))
        return result

    monkeypatch.setattr(convrewrite.cli_rewrite, "rewrite", planted)
    out, page = tmp_path / "bad.onnx", tmp_path / "bad.html"
    bad = CliRunner().invoke(main, ["rewrite", str(TCN), "-o", str(out), "--fold", "causal", "--check",
                                    "--providers", "cpu", "--html", str(page)])
    assert bad.exit_code == 1 and not out.exists()
    text = page.read_text()
    assert "NOT EQUIVALENT" in text and 'class="verdict bad"' in text and 'class="histogram"' in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
