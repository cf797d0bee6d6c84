"""The --html report in a real browser: headless Chromium loads each page from disk with JavaScript off and
on (tests/browser.py drives it over the DevTools pipe), and every page must

- log nothing to the console and throw nothing (console calls, uncaught
  exceptions and error/warning log entries are all collected);
- request nothing but itself (the page is self-contained);
- show every region drawing (two SVGs per region, counted in the rendered
  DOM) and a histogram per compared output, with and without JavaScript,
  including the regions inside If/Loop/Scan bodies and a model-local
  function (tests/big_models.py's nested model: every rewritten conv's box
  is in an after drawing of its body);
- run its script only when JavaScript is on (the sort works then);
- give a screenshot of the asked size that is not blank.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import convrewrite
from convrewrite.checker.histogram import error_histogram
from convrewrite.report_html import region_count, write_html_report

import browser
from big_models import BODIES, nested_model

MODELS = Path(__file__).resolve().parents[2] / "models"
TCN = MODELS / "tcn_chomp_ts13.onnx"
CHROMIUM = browser.find_chromium()
# CI (.ci/run) installs chromium and sets this, so a missing browser fails there instead of skipping.
if CHROMIUM is None and os.environ.get("CONVREWRITE_REQUIRE_BROWSER") == "1":
    raise RuntimeError("CONVREWRITE_REQUIRE_BROWSER=1 but no chromium was found (Debian package `chromium`)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package `chromium`; "
                                                          ".ci/run installs it)")
WIDTH, HEIGHT = 1280, 1800


def _pages(tmp: Path) -> list[tuple[Path, int, int]]:
    """(page, regions drawn, histograms) for: rewrite --check --html on a shipped model (CLI), a causal fold
    with one region per conv plus synthetic layers and hostile names (API)."""
    cli_page = tmp / "rewrite.html"
    done = subprocess.run([sys.executable, "-m", "convrewrite", "rewrite", str(TCN), str(tmp / "o.onnx"), "--fold",
                           "all", "--to-2d", "--check", "--html", str(cli_page), "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lifted = onnx.load(str(tmp / "o.onnx"))
    original = onnx.load(str(TCN))
    pages = [(cli_page, region_count(original, lifted), 1)]

    hostile = onnx.ModelProto()
    hostile.CopyFrom(original)
    for node in hostile.graph.node:
        node.name = node.name.replace("/block1/", '/<script>throw new Error("x")</script>/')
    result = convrewrite.rewrite(hostile, ["causal"])
    pairs = [{"original": f"<img src=x onerror=alert(1)>{i}", "candidate": f"t{i}", "view": "squeeze(2)",
              "shape": [1, 16, 64], "dtype": "float32", "max_abs": v, "max_rel": v, "beyond": 0.0, "atol": 1e-5,
              "rtol": 1e-4, "diverges": v > 1e-5} for i, v in enumerate([0.0, 2e-7, 4e-2, 1.5])]
    check = {"ok": False, "summary": "NOT EQUIVALENT (synthetic)", "results": [
        {"provider": "CPUExecutionProvider", "output": f"y{k}", "status": "failed", "atol": 1e-5,
         "worst_trial": "normal (seed 0)", "stats": {"max_abs": 1.5, "max_rel": 2.0, "beyond_count": 3, "size": 1024,
                                                     "histogram": error_histogram(np.geomspace(1e-9, 2, 1024))}}
        for k in range(2)], "layers": {"mode": "map", "trial": "normal (seed 0)", "pairs": pairs,
                                        "first_divergent": pairs[2]}}
    api_page = tmp / "api.html"
    write_html_report(str(api_page), hostile, result.model, records=result, check=check, summary="causal only")
    pages.append((api_page, region_count(hostile, result.model), 2))

    nested, nested_page = tmp / "nested.onnx", tmp / "nested.html"
    onnx.save(nested_model(), str(nested))
    done = subprocess.run([sys.executable, "-m", "convrewrite", "rewrite", str(nested), str(tmp / "n.onnx"), "--fold",
                           "all", "--to-2d", "--check", "--html", str(nested_page), "--report",
                           str(tmp / "nested.json"), "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pages.append((nested_page, region_count(onnx.load(str(nested)), onnx.load(str(tmp / "n.onnx"))), 1))
    return pages


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, int, int]]:
    return _pages(tmp_path_factory.mktemp("html"))


SORT = """(function () {
  var th = document.querySelector("table.records thead th:nth-child(3)");
  th.click(); th.click();  // node, descending
  var rows = document.querySelectorAll("table.records tbody tr");
  var first = rows[0].cells[2].textContent, last = rows[rows.length - 1].cells[2].textContent;
  return [first, last, th.getAttribute("data-sorted")];
}())"""


@pytest.mark.parametrize("javascript", [False, True], ids=["js-off", "js-on"])
def test_pages_load_cleanly_and_show_every_drawing(pages, tmp_path: Path, javascript: bool):
    for page, regions, histograms in pages:
        load = browser.load_page(page, javascript, WIDTH, HEIGHT, CHROMIUM, evaluate=SORT if javascript else None)
        assert load.console == [], f"{page.name}: {load.console}"
        assert load.requests == [page.resolve().as_uri()], load.requests
        assert regions >= 1
        assert len(re.findall(r'<svg class="region-drawing[^"]*" data-region="\d+" data-side="before"', load.html)) \
            == regions
        assert len(re.findall(r'<svg class="region-drawing[^"]*" data-region="\d+" data-side="after"', load.html)) \
            == regions
        assert len(re.findall(r'<section class="region" id="region-\d+"', load.html)) == regions
        assert load.html.count('<svg class="histogram"') == histograms
        assert "<script>throw" not in load.html and "<img src=x" not in load.html
        assert load.js_ready is javascript
        if javascript:
            first, last, order = load.evaluated
            assert order == "desc" and first >= last
        width, height = browser.png_size(load.screenshot)
        assert (width, height) == (WIDTH, HEIGHT)
        assert len(load.screenshot) > 30_000  # a rendered page, not a blank one (blank: ~5 KB)
        shot = tmp_path / f"{page.stem}-{'js' if javascript else 'nojs'}.png"
        shot.write_bytes(load.screenshot)
    api = next(p for p, _, _ in pages if p.name == "api.html")
    assert 'data-pairs="4"' in browser.load_page(api, javascript, 800, 600, CHROMIUM).html
    # The nested model: every body has its regions, and every rewritten conv's box is in an after drawing of its body.
    nested = next(p for p, _, _ in pages if p.name == "nested.html")
    dom = browser.load_page(nested, javascript, 800, 600, CHROMIUM).html
    sections = re.findall(r'<section class="region" id="region-\d+" data-region="\d+" data-graph="([^"]+)">(.*?)</section>',
                          dom, re.S)
    assert {graph for graph, _ in sections} == set(BODIES)
    records = json.loads((nested.parent / "nested.json").read_text())["records"]
    convs = [r for r in records if r["status"] == "rewritten" and r["op_type"] == "Conv"]
    assert {r["graph"] for r in convs} == set(BODIES)
    for r in convs:
        afters = [html.split('data-side="after"', 1)[1] for graph, html in sections if graph == r["graph"]]
        assert any(f'data-node="{r["node"]}"' in a for a in afters), r["key"]


def test_the_checker_flags_a_page_that_errs(tmp_path: Path):
    """The harness itself: a console call, an exception and an outside request are all seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><img src="file:///nonexistent-convrewrite/x.png">'
                   '<script>console.error("boom"); undefinedFunction();</script></body></html>')
    load = browser.load_page(bad, True, 400, 300, CHROMIUM)
    assert any("boom" in c for c in load.console) and any("undefinedFunction" in c for c in load.console)
    assert any(u.startswith("file:///nonexistent-convrewrite") for u in load.requests)
    off = browser.load_page(bad, False, 400, 300, CHROMIUM)
    assert not any("boom" in c for c in off.console)
