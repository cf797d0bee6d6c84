"""The report's inline CSS and its only script (table sorting); no fonts, images or URLs."""

from __future__ import annotations

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;border-bottom:1px solid #d0d5dd;padding-bottom:4px;margin-top:28px}
h3{font-size:15px;margin:18px 0 6px}
pre{background:#f5f6f8;border:1px solid #e1e4e8;padding:10px;overflow:auto;white-space:pre-wrap;font:12px/1.4 ui-monospace,monospace}
nav ul{list-style:none;padding:0;display:flex;gap:16px;flex-wrap:wrap}
.verdict{font-weight:600;padding:8px 12px;border-radius:6px}.verdict.good{background:#e6f4ea;color:#135d2b}
.verdict.bad{background:#fdecea;color:#8a1c12}
.note{color:#667085}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #e1e4e8;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f6f8}th.sortable-js{cursor:pointer}th.sortable-js:after{content:" \\2195";color:#98a2b3}
tr.rewritten td:nth-child(5){color:#135d2b;font-weight:600}tr.diverges td{background:#fdecea}
.pair{display:flex;gap:20px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0;border:1px solid #e1e4e8;border-radius:6px;padding:6px;overflow:auto;max-width:100%}
figcaption{font-size:12px;color:#475467;margin-bottom:4px}
svg text{font:11px system-ui,sans-serif;fill:#1d2330}
svg text.op{font-weight:700;font-size:12px}svg text.name{fill:#475467}svg text.shape{fill:#175cd3}
svg text.chg{fill:#b54708;font-weight:700}svg text.attr{fill:#344054}svg text.note{fill:#667085}
.node rect{fill:#fff;stroke:#98a2b3;stroke-width:1.2}
.node.removed rect{fill:#fdecea;stroke:#d92d20;stroke-width:2}.node.added rect{fill:#e6f4ea;stroke:#12b76a;stroke-width:2}
.node.changed rect{fill:#fff4e5;stroke:#f79009;stroke-width:2}.node.reshaped rect{fill:#eef4ff;stroke:#2e90fa}
.node.halo rect{fill:#f9fafb;stroke:#d0d5dd;stroke-dasharray:4 3}.node.halo text{fill:#98a2b3}
.edge{fill:none;stroke:#667085;stroke-width:1.2}.arrowhead{fill:#667085}
.legend .key{display:inline-block;padding:1px 8px;border-radius:4px;border:2px solid;font-size:12px}
.key.removed{background:#fdecea;border-color:#d92d20}.key.added{background:#e6f4ea;border-color:#12b76a}
.key.changed{background:#fff4e5;border-color:#f79009}.key.reshaped{background:#eef4ff;border-color:#2e90fa}
.key.halo{background:#f9fafb;border-color:#d0d5dd;border-style:dashed}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.bar{fill:#2e90fa}.bar.zero{fill:#12b76a}.bar.special{fill:#d92d20}.axis{stroke:#475467}.grid{stroke:#eaecf0}
svg text.count,svg text.bin,svg text.tick{font-size:10px;fill:#475467}svg text.count{text-anchor:middle}
.tol{stroke:#d92d20;stroke-dasharray:5 4;fill:none;stroke-width:1.5}svg text.tol-label{fill:#d92d20;font-size:10px}
.curve{fill:none;stroke:#175cd3;stroke-width:1.8}.point{fill:#175cd3}.point.diverges{fill:#d92d20}
.point.first{stroke:#1d2330;stroke-width:2}.first-mark{stroke:#d92d20;stroke-width:1}
svg text.first-label{fill:#d92d20;font-weight:700}
.node.first-divergent rect{stroke:#d92d20;stroke-width:3.5}svg text.first{fill:#d92d20;font-weight:700}
"""

# Sorting only: every row is in the HTML already. Marks <html data-js="ready"> when done (tests read it).
SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    var raw = cell.getAttribute("data-value");
    var text = raw === null ? cell.textContent : raw;
    var n = Number(text);
    return text !== "" && !isNaN(n) ? [0, n, ""] : [1, 0, text.toLowerCase()];
  }
  function compare(a, b) {
    if (a[0] !== b[0]) { return a[0] - b[0]; }
    if (a[0] === 0) { return a[1] - b[1]; }
    return a[2] < b[2] ? -1 : (a[2] > b[2] ? 1 : 0);
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(heads, function (th, column) {
      th.classList.add("sortable-js");
      th.setAttribute("title", "sort");
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var descending = th.getAttribute("data-sorted") === "asc";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-sorted"); });
        th.setAttribute("data-sorted", descending ? "desc" : "asc");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var c = compare(key(r1.cells[column]), key(r2.cells[column]));
          return descending ? -c : c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute("data-js", "ready");
}());
"""
