"""The HTML report: one self-contained file (inline CSS, SVG and a little JS), readable without JavaScript.

A Content-Security-Policy forbids every load from outside the file, so the
page can neither fetch nor leak anything; JavaScript only sorts the tables.
"""

from __future__ import annotations

import math
from typing import Any

import onnx

from .charts import histogram_svg, layer_curve_svg, number
from .regions import Region, find_regions
from .style import CSS, SCRIPT
from .svg import esc, side_svg

MAX_REGIONS = 100  # regions drawn; the rest are listed by their nodes
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _as_records(records: Any) -> list[dict[str, Any]]:
    """Records as dicts, from a RewriteResult, Record objects or dicts (a --report file's "records")."""
    if records is None:
        return []
    if hasattr(records, "records"):
        records = records.records
    return [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in records]


def _as_check(check: Any) -> dict[str, Any] | None:
    if check is None:
        return None
    return check.to_dict() if hasattr(check, "to_dict") else dict(check)


def _fmt(value: Any) -> str:
    v = number(value)
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if math.isnan(v):
        return esc(value)
    if v == 0:
        return "0"
    return f"{v:.3g}" if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def _tensor_map(record: dict[str, Any]) -> list[Any]:
    found = record.get("tensor_map")
    if found is None:
        found = (record.get("details") or {}).get("tensor_map")
    return list(found) if isinstance(found, list) else []


def _map_entry(entry: Any) -> str:
    if isinstance(entry, dict):
        return "; ".join(f"{k}: {v}" for k, v in entry.items())
    return str(entry)


def _records_table(records: list[dict[str, Any]], region_of: dict[str, int]) -> str:
    if not records:
        return '<p class="note">no records</p>'
    show_map = any(_tensor_map(r) for r in records)
    head = ["#", "pass", "node", "op", "status", "what happened", "region"] + (["tensor map"] if show_map else [])
    rows = ['<table class="sortable records"><thead><tr>'
            + "".join(f'<th scope="col">{esc(h)}</th>' for h in head) + "</tr></thead><tbody>"]
    for i, r in enumerate(records, start=1):
        before, after = r.get("before") or {}, r.get("after") or {}
        change = "; ".join(f"{k}: {before.get(k)} → {after.get(k)}" for k in after if before.get(k) != after.get(k))
        what = r.get("reason") or ""
        if r.get("status") == "rewritten" and change:
            what = f"{what} ({change})" if what else change
        region = region_of.get(r.get("key", ""))
        cells = [(str(i), i), (r.get("pass", ""), None), (r.get("node", ""), None), (r.get("op_type", ""), None),
                 (r.get("status", ""), None), (what, None)]
        row = "".join(f'<td data-value="{esc(v if v is not None else t)}">{esc(t)}</td>' for t, v in cells)
        row += (f'<td data-value="{region}"><a href="#region-{region}">{region}</a></td>' if region
                else '<td data-value="0">-</td>')
        if show_map:
            entries = _tensor_map(r)
            row += (f'<td data-value="{len(entries)}"><details><summary>{len(entries)} tensors</summary><ul>'
                    + "".join(f"<li>{esc(_map_entry(e))}</li>" for e in entries) + "</ul></details></td>"
                    if entries else '<td data-value="0">-</td>')
        rows.append(f'<tr class="{esc(r.get("status", ""))}">{row}</tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _region_html(region: Region, first: dict[str, Any] | None = None) -> str:
    """One region's section; `first` (the first divergent layer pair) is marked where this region makes it."""
    counts = ", ".join(f"{v} {k}" for k, v in sorted(region.counts.items()))
    rewritten = [r for r in region.records if r.get("status") == "rewritten"]
    tied = "".join(f"<li>{esc(r.get('pass'))} {esc(r.get('node'))}"
                   + (f": {esc(r.get('reason'))}" if r.get("reason") else "") + "</li>" for r in rewritten)
    others = len(region.records) - len(rewritten)
    if others:
        tied += f'<li class="note">and {others} record{"s" if others != 1 else ""} that left a node of it alone</li>'
    where = f" in {esc(region.graph)}" if region.graph != "main" else ""
    before_mark = after_mark = None
    if first and region.graph == "main":
        before_mark, after_mark = first.get("original"), first.get("candidate")
    marked = any(m in n.outputs for side, m in ((region.before, before_mark), (region.after, after_mark))
                 for n in side.nodes if m)
    flag = (f'<p class="verdict bad first-divergent-note">the first divergent layer, {esc(before_mark)} '
            f'(candidate {esc(after_mark)}), is made here: its node is marked below</p>' if marked else "")
    return (f'<section class="region" id="region-{region.index}" data-region="{region.index}" '
            f'data-graph="{esc(region.graph)}">'
            f"<h3>Region {region.index}{where}: {esc(counts or 'no node changed')}</h3>"
            + (f'<ul class="tied">{tied}</ul>' if tied else '<p class="note">no record names a node of this region</p>')
            + flag + '<div class="pair">'
            + f'<figure><figcaption>before (original)</figcaption>'
            f'{side_svg(region.before, region.index, "before", before_mark)}</figure>'
            + f'<figure><figcaption>after (rewritten)</figcaption>'
            f'{side_svg(region.after, region.index, "after", after_mark)}</figure>'
            + "</div></section>")


def _outputs_html(check: dict[str, Any]) -> str:
    rows = []
    charts = []
    for r in check.get("results") or []:
        s = r.get("stats") or {}
        rows.append("<tr>" + "".join(f'<td data-value="{esc(v)}">{esc(t)}</td>' for t, v in [
            (r.get("provider", ""), r.get("provider", "")), (r.get("output", ""), r.get("output", "")),
            (r.get("status", ""), r.get("status", "")), (_fmt(s.get("max_abs")), number(s.get("max_abs"))),
            (_fmt(s.get("max_rel")), number(s.get("max_rel"))),
            (f"{s.get('beyond_count', '-')}/{s.get('size', '-')}", s.get("beyond_count", 0)),
            (_fmt(r.get("atol")), number(r.get("atol"))), (r.get("worst_trial") or "-", r.get("worst_trial") or "")])
            + "</tr>")
        if s.get("histogram"):
            label = f"{r.get('output', '')} on {r.get('provider', '')}"
            charts.append(f'<figure class="hist"><figcaption>|diff| of {esc(label)} ({esc(r.get("worst_trial") or "")})'
                          f'</figcaption>{histogram_svg(s["histogram"], r.get("atol"), label)}</figure>')
    if not rows:
        return '<p class="note">no output was compared</p>'
    head = ["provider", "output", "status", "max abs", "max rel", "beyond tol", "atol", "worst trial"]
    return ('<table class="sortable outputs"><thead><tr>' + "".join(f'<th scope="col">{h}</th>' for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            + (f'<div class="charts">{"".join(charts)}</div>' if charts else ""))


def tensor_regions(regions: list[Region]) -> dict[tuple[str, Any, bool], int]:
    """("before", original tensor, halo) / ("after", candidate tensor, halo) -> the first main-graph region whose
    drawing holds the node making it, as a changed node (halo False) or as an unchanged neighbour (halo True)."""
    found: dict[tuple[str, Any, bool], int] = {}
    for region in regions:
        if region.graph != "main":
            continue  # layer pairs name main-graph tensors
        for label, side in (("before", region.before), ("after", region.after)):
            for node in side.nodes:
                for t in node.outputs:
                    found.setdefault((label, t, node.status == "halo"), region.index)
    return found


def locate(found: dict[tuple[str, Any, bool], int], original: Any, candidate: Any) -> int | None:
    """The region a layer pair is drawn in (`found` from tensor_regions): where a changed node makes either of
    its tensors, else where an unchanged neighbour does."""
    for halo in (False, True):
        for key in (("before", original, halo), ("after", candidate, halo)):
            if isinstance(key[1], str) and key in found:
                return found[key]
    return None


def _layers_html(layers: dict[str, Any], regions: list[Region]) -> str:
    pairs = list(layers.get("pairs") or [])
    first = layers.get("first_divergent")
    head = ["#", "original", "candidate", "view", "shape", "dtype", "max abs", "max rel", "share beyond", "atol", "rtol",
            "diverges", "region"]
    found = tensor_regions(regions)
    rows = []
    for i, p in enumerate(pairs, start=1):
        cells = [(i, i), (p.get("original"), p.get("original")), (p.get("candidate"), p.get("candidate")),
                 (p.get("view") or "-", p.get("view")), (p.get("shape"), p.get("shape")), (p.get("dtype"), p.get("dtype")),
                 (_fmt(p.get("max_abs")), number(p.get("max_abs"))), (_fmt(p.get("max_rel")), number(p.get("max_rel"))),
                 (_fmt(p.get("beyond")), number(p.get("beyond"))), (_fmt(p.get("atol")), number(p.get("atol"))),
                 (_fmt(p.get("rtol")), number(p.get("rtol"))), ("yes" if p.get("diverges") else "no", int(bool(p.get("diverges"))))]
        region = locate(found, p.get("original"), p.get("candidate"))
        link = (f'<td data-value="{region}"><a href="#region-{region}">{region}</a></td>' if region
                else '<td data-value="0">-</td>')
        rows.append(f'<tr class="{"diverges" if p.get("diverges") else ""}">'
                    + "".join(f'<td data-value="{esc(v)}">{esc(t)}</td>' for t, v in cells) + link + "</tr>")
    where = locate(found, first.get("original"), first.get("candidate")) if isinstance(first, dict) else None
    named = (f'<p class="verdict bad">first divergent layer: {esc(first.get("original"))} '
             f'(candidate {esc(first.get("candidate"))})'
             + (f', drawn in <a href="#region-{where}">region {where}</a>' if where else "") + "</p>"
             if isinstance(first, dict) else '<p class="verdict good">no layer diverges</p>')
    meta = f'<p class="note">mode {esc(layers.get("mode", "-"))}, trial {esc(layers.get("trial", "-"))}</p>'
    return (named + meta + layer_curve_svg(layers) + '<table class="sortable layers"><thead><tr>'
            + "".join(f'<th scope="col">{h}</th>' for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def html_report(
    original: onnx.ModelProto | None,
    rewritten: onnx.ModelProto | None,
    *,
    records: Any = None,
    check: Any = None,
    summary: str = "",
    title: str = "convrewrite report",
) -> str:
    """The report page as text.

    `records`: a RewriteResult, its records or their dicts; `check`: a
    CheckReport or its `to_dict()` (with `layers` when the checker compared
    layers); `summary`: what the command printed. Regions are drawn when
    both models are given.
    """
    recs = _as_records(records)
    report = _as_check(check)
    regions: list[Region] = (find_regions(original, rewritten, recs)
                             if original is not None and rewritten is not None else [])
    drawn = regions[:MAX_REGIONS]  # links go only to regions the page draws
    region_of = {r.get("key", ""): reg.index for reg in drawn for r in reg.records}
    body: list[str] = [f"<h1>{esc(title)}</h1>"]
    if report is not None:
        good = "good" if report.get("ok") else "bad"
        body.append(f'<p class="verdict {good}" id="verdict">{esc(report.get("summary", ""))}</p>')
    toc = [("summary", "Summary"), ("records", f"Records ({len(recs)})"), ("regions", f"Regions ({len(regions)})")]
    if report is not None:
        toc.append(("outputs", "Outputs"))
        if report.get("layers"):
            toc.append(("layers", "Layers"))
    body.append("<nav><ul>" + "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t in toc) + "</ul></nav>")
    body.append(f'<section id="summary"><h2>Summary</h2><pre>{esc(summary or "(no summary)")}</pre></section>')
    body.append(f'<section id="records"><h2>Records</h2>{_records_table(recs, region_of)}</section>')
    body.append('<section id="regions"><h2>Rewritten regions</h2>'
                '<p class="legend"><span class="key removed">removed</span> <span class="key added">added</span> '
                '<span class="key changed">changed</span> <span class="key reshaped">same op, new shape</span> '
                '<span class="key halo">unchanged neighbour</span></p>')
    if not regions:
        body.append('<p class="note">' + ("the two graphs are the same" if original is not None and rewritten is not None
                                           else "no second model to compare with") + "</p>")
    layers = (report or {}).get("layers") or {}
    first = layers.get("first_divergent") if isinstance(layers, dict) else None
    body.extend(_region_html(r, first if isinstance(first, dict) else None) for r in regions[:MAX_REGIONS])
    if len(regions) > MAX_REGIONS:
        body.append(f'<p class="note">{len(regions) - MAX_REGIONS} more regions not drawn</p>')
    body.append("</section>")
    if report is not None:
        body.append(f'<section id="outputs"><h2>Outputs</h2>{_outputs_html(report)}</section>')
        if report.get("layers"):
            body.append(f'<section id="layers"><h2>Layer by layer</h2>{_layers_html(report["layers"], drawn)}'
                        "</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(body)
            + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


def write_html_report(path: str, original: onnx.ModelProto | None, rewritten: onnx.ModelProto | None,
                      **kwargs: Any) -> None:
    """`html_report` written to `path` atomically (the old file or the whole new one), for `--html`."""
    from ..model import write_text_target

    write_text_target(path, html_report(original, rewritten, **kwargs), "--html")


def region_count(original: onnx.ModelProto, rewritten: onnx.ModelProto) -> int:
    """How many regions a report of these two models draws (what a test counts in the rendered page)."""
    return min(MAX_REGIONS, len(find_regions(original, rewritten)))


__all__ = ["html_report", "write_html_report", "region_count"]
