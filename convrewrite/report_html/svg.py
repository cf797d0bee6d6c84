"""Inline SVG of one side of a region: boxes (op type, name, output shapes, changed attributes) and edges.

Every string from the model goes through `esc` (names can hold markup);
the full name is in each box's <title> (a tooltip), the box shows a cut one.
"""

from __future__ import annotations

import html

from .layout import Route, place_routed
from .regions import DrawNode, Side

BOX_WIDTH = 210.0
LINE = 14.0
CHARS = 30  # what fits in a box line at the report's font size


def esc(value: object) -> str:
    """Text or attribute value, safe inside HTML and SVG."""
    return html.escape(str(value), quote=True)


def cut(text: str, chars: int = CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _lines(node: DrawNode) -> list[tuple[str, str]]:
    """(css class, text) of each line of a box."""
    lines = [("op", node.op_type), ("name", cut(node.name or "(no name)"))]
    lines.append(("shape", cut("→ " + ", ".join(node.shapes)) if node.shapes else "→ (no output)"))
    lines.extend(("chg", cut(c)) for c in node.changes[:4])
    if len(node.changes) > 4:
        lines.append(("chg", f"+{len(node.changes) - 4} more changed"))
    lines.extend(("attr", cut(a)) for a in node.attrs[:4])
    return lines


def edge_path(route: Route) -> str:
    """SVG path data: straight down to the bottom of the source's layer, then a curve across each gap between
    layers and a straight run through each crossed layer's virtual slot, so no part of it enters a box."""
    x, y = route.start
    d = [f"M{x:.1f},{y:.1f}"]
    if route.drop > y:
        y = route.drop
        d.append(f"V{y:.1f}")
    for tx, top, bottom in [*route.via, (route.end[0], route.end[1] - 1, None)]:
        mid = (y + top) / 2
        d.append(f"C{x:.1f},{mid:.1f} {tx:.1f},{mid:.1f} {tx:.1f},{top:.1f}")
        x, y = tx, top
        if bottom is not None and bottom > top:
            y = bottom
            d.append(f"V{y:.1f}")
    return " ".join(d)


def side_svg(side: Side, region: int, label: str, marked: str | None = None) -> str:
    """One drawing; `data-region`, `data-side` and `data-nodes` let a test count them in the rendered page.

    The node that makes tensor `marked` (the first divergent layer) gets a red frame and a line saying so.
    """
    if not side.nodes:
        return (f'<svg class="region-drawing empty" data-region="{region}" data-side="{esc(label)}" data-nodes="0" '
                f'width="{BOX_WIDTH + 24:.0f}" height="50" role="img" aria-label="{esc(label)}: no nodes">'
                f'<text x="12" y="28" class="note">no nodes on this side</text></svg>')
    flagged = [bool(marked) and marked in n.outputs for n in side.nodes]
    texts = [[*_lines(n), *([("first", "▲ first divergent layer")] if f else [])] for n, f in zip(side.nodes, flagged)]
    sizes = [(BOX_WIDTH, 10 + LINE * len(t)) for t in texts]
    boxes, routes, width, height = place_routed(sizes, side.edges)
    extra = 22.0 if side.hidden else 0.0
    parts = [f'<svg class="region-drawing" data-region="{region}" data-side="{esc(label)}" '
             f'data-nodes="{len(side.nodes)}" width="{width:.0f}" height="{height + extra:.0f}" '
             f'viewBox="0 0 {width:.0f} {height + extra:.0f}" role="img" aria-label="region {region} {esc(label)}">']
    arrow = f"arrow-{region}-{label}"
    parts.append(f'<defs><marker id="{arrow}" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" '
                 'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>')
    for u, v in side.edges:
        route = routes.get((u, v))
        if route is None:  # a backward edge: straight
            a, b = boxes[u], boxes[v]
            route = Route((a.x + a.width / 2, a.y + a.height), a.y + a.height, [], (b.x + b.width / 2, b.y))
        parts.append(f'<path class="edge" d="{edge_path(route)}" marker-end="url(#{arrow})"/>')
    for node, box, lines, flag in zip(side.nodes, boxes, texts, flagged):
        parts.append(f'<g class="node {node.status}{" first-divergent" if flag else ""}" data-node="{esc(node.key)}">'
                     f'<title>{esc(node.name or node.key)} ({esc(node.op_type)}, {esc(node.status)}'
                     f'{", makes the first divergent layer" if flag else ""})</title>'
                     f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="5"/>')
        for i, (cls, text) in enumerate(lines):
            parts.append(f'<text class="{cls}" x="{box.x + 7:.1f}" y="{box.y + 16 + i * LINE:.1f}">{esc(text)}</text>')
        parts.append("</g>")
    if side.hidden:
        parts.append(f'<text class="note" x="12" y="{height + 14:.0f}">+{side.hidden} more nodes in this region, '
                     f'not drawn</text>')
    parts.append("</svg>")
    return "".join(parts)
