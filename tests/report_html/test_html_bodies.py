"""The --html report's drawings beyond the main graph and their ties: regions inside If/Loop/Scan bodies and
model-local functions, edges routed around boxes, and layer rows linked to the region that makes their tensor.

(test_html_browser.py loads the nested model's page in headless Chromium.)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

import convrewrite
from convrewrite.report_html import find_regions, html_report
from convrewrite.report_html.regions import DrawNode, Side
from convrewrite.report_html.svg import side_svg

from big_models import BODIES, PASS_SETS, nested_model

MODELS = Path(__file__).resolve().parents[2] / "models"
TCN = MODELS / "tcn_chomp_ts13.onnx"


# ------------------------------------------------------------------ bodies


def test_every_rewritten_conv_in_every_body_has_a_drawing():
    original = nested_model()
    result = convrewrite.rewrite(original, PASS_SETS["fold-all+to-2d"])
    records = [r.to_dict() for r in result.records]
    regions = find_regions(original, result.model, records)
    convs = [r for r in records if r["status"] == "rewritten" and r["op_type"] == "Conv"]
    assert {r["graph"] for r in convs} == set(BODIES)  # the rewrite reached every body
    for record in convs:
        holding = [g for g in regions if g.graph == record["graph"] and record in g.records]
        assert holding, f"no region of {record['graph']} is tied to {record['key']}"
        drawn = {n.name: n.status for g in holding for n in g.after.nodes}
        assert drawn.get(record["node"]) in ("changed", "added"), (record["key"], drawn)
    # A body's regions name only its own nodes: no drawing mixes two bodies.
    for g in regions:
        prefix = BODIES[g.graph]
        assert all(n.name.startswith(prefix) or n.status != "changed" for n in [*g.before.nodes, *g.after.nodes])
    page = html_report(original, result.model, records=result)
    for path in BODIES:
        assert f'data-graph="{path}"' in page
        if path != "main":
            assert re.search(rf"<h3>Region \d+ in {re.escape(path)}: ", page)
    # Each conv record's row links to a region of its own body.
    table = page.split('<table class="sortable records">')[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]
    assert len(rows) == len(records)
    graph_of = {g.index: g.graph for g in regions}
    for row, record in zip(rows, records):
        if record in convs:
            link = re.search(r'<a href="#region-(\d+)">', row)
            assert link and graph_of[int(link.group(1))] == record["graph"], record["key"]
    # The container nodes' bodies are not "changed attributes" of If/Loop/Scan in the main graph.
    main_nodes = {n.name for g in regions if g.graph == "main" for n in g.after.nodes if n.status == "changed"}
    assert not main_nodes & {"If_0", "Loop_0", "Scan_0"}


def test_a_body_only_one_side_has_is_drawn_whole():
    """A body that disappears (its If node removed) is all removed nodes, not an error."""
    original = nested_model()
    gone = onnx.ModelProto()
    gone.CopyFrom(original)
    if_node = next(n for n in gone.graph.node if n.op_type == "If")
    if_node.name = "If_renamed"
    regions = find_regions(original, gone)
    by_graph = {g.graph for g in regions}
    assert {"main/If_0/then_branch", "main/If_renamed/then_branch", "main"} <= by_graph
    old = next(g for g in regions if g.graph == "main/If_0/then_branch")
    assert old.after.nodes == [] and {n.status for n in old.before.nodes} == {"removed"}


# ------------------------------------------------------------------ edges around boxes


def _residual_side() -> Side:
    """conv -> relu -> conv -> relu -> add, with the skip edge conv -> add over three layers."""
    ops = ["Conv", "Relu", "Conv", "Relu", "Add"]
    nodes = [DrawNode(f"n{i}", op, f"n{i}", "changed", ["1x8x24"], [f"t{i}"]) for i, op in enumerate(ops)]
    return Side(nodes, [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)])


def _boxes(svg: str) -> list[tuple[float, float, float, float]]:
    return [tuple(float(v) for v in m) for m in
            re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', svg)]


def _segments(d: str) -> list[list[tuple[float, float]]]:
    """Each drawing command's points (with the pen position it starts from): a curve lies in their hull."""
    out, pen = [], (0.0, 0.0)
    for cmd, args in re.findall(r"([MVC])([^MVC]*)", d):
        nums = [float(v) for v in re.findall(r"-?[\d.]+", args)]
        if cmd == "M":
            pen = (nums[0], nums[1])
            continue
        pts = [(pen[0], nums[0])] if cmd == "V" else list(zip(nums[0::2], nums[1::2]))
        out.append([pen, *pts])
        pen = pts[-1]
    return out


def _enters(points: list[tuple[float, float]], box: tuple[float, float, float, float], eps: float = 0.5) -> bool:
    """Whether the hull's bounding box of `points` overlaps the inside of `box` (its border excluded)."""
    x, y, w, h = box
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs) < x + w - eps and max(xs) > x + eps and min(ys) < y + h - eps and max(ys) > y + eps


def test_a_skip_edge_goes_around_the_boxes_it_skips():
    side = _residual_side()
    svg = side_svg(side, 1, "after")
    boxes = _boxes(svg)
    paths = re.findall(r'<path class="edge" d="([^"]+)"', svg)
    assert len(boxes) == 5 and len(paths) == 5
    for d in paths:
        for seg in _segments(d):
            for box in boxes:
                assert not _enters(seg, box), (d, box)
    # The situation is a real one: the skip edge drawn straight would cross the boxes between its ends.
    skip = max(paths, key=len)
    start, end = _segments(skip)[0][0], _segments(skip)[-1][-1]
    assert sum(_enters([start, end], b) for b in boxes[1:4]) == 3
    assert skip.count("C") == 4  # a curve across each of the 4 gaps (3 virtual slots between)


def test_a_real_residual_model_region_draws_no_edge_through_a_box():
    """The TCN's residual blocks lifted by --to-2d: every drawn edge of every region misses every box."""
    original = onnx.load(str(TCN))
    result = convrewrite.rewrite(original, PASS_SETS["fold-all+to-2d"])
    for region in find_regions(original, result.model):
        for side in (region.before, region.after):
            svg = side_svg(side, region.index, "x")
            boxes = _boxes(svg)
            for d in re.findall(r'<path class="edge" d="([^"]+)"', svg):
                for seg in _segments(d):
                    assert not any(_enters(seg, b) for b in boxes), d


# ------------------------------------------------------------------ layers linked to regions


def _faulty_causal_fold():
    """The TCN folded by causal, a weight of the second rewritten conv off by 0.25, and the layer check."""
    original = onnx.load(str(TCN))
    result = convrewrite.rewrite(original, ["causal"])
    target = [r for r in result.records if r.to_dict()["status"] == "rewritten"][1].to_dict()
    bad = onnx.ModelProto()
    bad.CopyFrom(result.model)
    conv = next(n for n in bad.graph.node if n.name == target["node"])
    weight = next(t for t in bad.graph.initializer if t.name == conv.input[1])
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += np.float32(0.25)
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    report = convrewrite.check(original, bad, layers=True, tensor_map=result.tensor_map(original), draws="normal",
                               providers="cpu", trials=1)
    return original, bad, result, report, conv


def test_layer_rows_link_to_their_region_and_the_first_divergent_node_is_marked():
    original, bad, result, report, conv = _faulty_causal_fold()
    layers = report.to_dict()["layers"]
    first = layers["first_divergent"]
    assert first is not None and first["original"] == conv.output[0]
    regions = find_regions(original, bad, [r.to_dict() for r in result.records])
    home = next(g.index for g in regions if any(n.name == conv.name for n in g.after.nodes if n.status == "changed"))
    page = html_report(original, bad, records=result, check=report)
    table = page.split('<table class="sortable layers">')[1].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table)[1:]
    assert len(rows) == len(layers["pairs"])
    linked = 0
    for row, pair in zip(rows, layers["pairs"]):
        region = re.search(r'<a href="#region-(\d+)">', row)
        makers = [g.index for g in regions for n in [*g.before.nodes, *g.after.nodes]
                  if pair["original"] in n.outputs or pair["candidate"] in n.outputs]
        if pair["original"] == first["original"]:
            assert region and int(region.group(1)) == home
        if region:
            linked += 1
            assert int(region.group(1)) in makers
        else:
            assert not makers and row.endswith('<td data-value="0">-</td>')
    assert linked >= 4  # every folded conv's output at least
    # The mark: in the home region only, on the box that makes the tensor on each side; the verdict links there.
    assert page.count('first-divergent" data-node') == 2
    section = page.split(f'id="region-{home}"')[1].split("</section>")[0]
    assert section.count('first-divergent" data-node') == 2 and "▲ first divergent layer" in section
    marked = re.findall(r'<g class="node (\w+) first-divergent" data-node="([^"]+)"', section)
    maker = next(n.name for n in original.graph.node if first["original"] in n.output)  # the chomp Slice, before
    assert marked == [("removed", maker), ("changed", conv.name)]
    assert f'drawn in <a href="#region-{home}">region {home}</a>' in page


def test_no_mark_without_a_divergent_layer():
    original = onnx.load(str(TCN))
    result = convrewrite.rewrite(original, ["causal"])
    report = convrewrite.check(original, result.model, layers=True, tensor_map=result.tensor_map(original),
                               draws="normal", providers="cpu", trials=1)
    page = html_report(original, result.model, records=result, check=report)
    body = page.split("</style>")[1]
    assert report.ok and "first-divergent" not in body and "▲" not in body
    assert '<a href="#region-1">1</a>' in page.split('<table class="sortable layers">')[1]


def test_a_hostile_body_path_is_escaped():
    """A body's path holds its owner's name: a markup name stays text in the title and the data attribute."""
    evil = '<script>alert("x")</script>&"\''
    original = nested_model()
    next(n for n in original.graph.node if n.op_type == "If").name = evil
    result = convrewrite.rewrite(original, ["causal"])
    assert any(r.to_dict()["graph"] == f"main/{evil}/then_branch" for r in result.records)
    page = html_report(original, result.model, records=result)
    assert page.count("<script") == 1 and 'alert("x")' not in page
    assert 'data-graph="main/&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;&#x27;/then_branch"' in page
    assert {g.graph for g in find_regions(original, result.model)} >= {f"main/{evil}/then_branch"}
