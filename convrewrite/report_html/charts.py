"""SVG charts: an output's |diff| histogram (decade bins) and the per-layer error curve.

Values come from report JSON, where non-finite numbers are the strings
'inf' / 'nan' (checker/formatting.json_number): `number` reads both forms.
"""

from __future__ import annotations

import math
from typing import Any

from .svg import cut, esc

FLOOR = 1e-13  # where zero sits on a log axis


def number(value: Any) -> float:
    """A JSON number or 'inf'/'-inf'/'nan' as a float; anything else is nan."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _exp(v: float) -> str:
    return f"1e{int(round(math.log10(v)))}"


def histogram_svg(hist: dict[str, Any], atol: Any, label: str) -> str:
    """Bars: exact zeros, each decade of |diff|, NaN/Inf mismatches; a dashed line at atol."""
    edges = [float(e) for e in hist.get("edges", [])]
    counts = [int(c) for c in hist.get("counts", [])]
    if len(counts) != len(edges) + 1:
        return '<p class="note">histogram not available</p>'
    names = ["0"] + [f"<{_exp(edges[0])}"] + [_exp(e) for e in edges[:-1]] + [f"≥{_exp(edges[-1])}"] + ["NaN/Inf"]
    values = [int(hist.get("zero", 0))] + counts + [int(hist.get("nonfinite", 0))]
    top = max(values) or 1
    bar, gap, left, base, height = 30.0, 4.0, 44.0, 150.0, 120.0
    width = left + len(values) * (bar + gap) + 30
    parts = [f'<svg class="histogram" data-output="{esc(label)}" width="{width:.0f}" height="228" '
             f'viewBox="0 0 {width:.0f} 228" role="img" aria-label="|diff| histogram of {esc(label)}">',
             f'<text class="tick" x="{left}" y="222">bin: |diff| from the decade named (log scale); '
             'bar height: square root of the count</text>',
             f'<line class="axis" x1="{left - 4}" y1="{base}" x2="{width - 6:.0f}" y2="{base}"/>',
             f'<text class="tick" x="4" y="{base - height + 4:.0f}">{top}</text>',
             f'<text class="tick" x="4" y="{base:.0f}">0</text>']
    for i, (name, value) in enumerate(zip(names, values)):
        x = left + i * (bar + gap)
        h = height * math.sqrt(value / top) if value else 0.0  # square root: small bins stay visible
        cls = "bar special" if name == "NaN/Inf" else ("bar zero" if name == "0" else "bar")
        parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{base - h:.1f}" width="{bar}" height="{h:.1f}">'
                     f'<title>{esc(name)}: {value}</title></rect>')
        if value:
            parts.append(f'<text class="count" x="{x + bar / 2:.1f}" y="{base - h - 3:.1f}">{value}</text>')
        parts.append(f'<text class="bin" transform="translate({x + bar / 2 + 4:.1f},{base + 6}) rotate(60)">'
                     f'{esc(name)}</text>')
    tol = number(atol)
    if math.isfinite(tol) and tol > 0 and edges:
        # Bin i+1 (i >= 1) spans [edges[i-1], edges[i]): place atol inside the decade it falls in.
        pos = math.log10(tol) - math.log10(edges[0])  # 0 at edges[0], which is the left side of bin 2
        x = left + (2 + pos) * (bar + gap) - gap / 2
        x = min(max(x, left), width - 10)
        parts.append(f'<line class="tol" x1="{x:.1f}" y1="{base - height - 8:.0f}" x2="{x:.1f}" y2="{base:.0f}"/>'
                     f'<text class="tol-label" x="{x + 3:.1f}" y="{base - height - 10:.0f}">atol {esc(f"{tol:.3g}")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def layer_curve_svg(layers: dict[str, Any]) -> str:
    """max_abs of each mapped pair in order (log scale), its atol dashed, divergent points red, the first one named."""
    pairs = list(layers.get("pairs") or [])
    if not pairs:
        return '<p class="note">no layer pairs were compared</p>'
    first = layers.get("first_divergent") or None
    first_name = first.get("original") if isinstance(first, dict) else None
    ys = [number(p.get("max_abs")) for p in pairs]
    tols = [number(p.get("atol")) for p in pairs]
    finite = [v for v in ys + tols if math.isfinite(v) and v > 0]
    lo = math.floor(math.log10(min(finite))) if finite else -8
    hi = math.ceil(math.log10(max(finite))) if finite else 0
    lo, hi = min(lo, hi - 1), max(hi, lo + 1)
    left, top, plot_h = 60.0, 24.0, 200.0
    step = max(8.0, min(80.0, 760.0 / max(1, len(pairs))))
    width = max(left + step * len(pairs) + 30, 440.0)
    bottom = top + plot_h

    def y_of(v: float) -> float:
        if math.isnan(v):
            return top - 8
        if v == math.inf or (v > 0 and math.log10(v) > hi):
            return top
        v = max(v, 10.0 ** lo)
        return bottom - plot_h * (math.log10(v) - lo) / (hi - lo)

    xs = [left + step * (i + 0.5) for i in range(len(pairs))]
    parts = [f'<svg class="layer-curve" data-pairs="{len(pairs)}" width="{width:.0f}" height="{bottom + 40:.0f}" '
             f'viewBox="0 0 {width:.0f} {bottom + 40:.0f}" role="img" aria-label="max abs error per layer">',
             f'<line class="axis" x1="{left}" y1="{bottom}" x2="{width - 10:.0f}" y2="{bottom}"/>',
             f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>']
    for k in range(lo, hi + 1):
        y = bottom - plot_h * (k - lo) / (hi - lo)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - 10:.0f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="6" y="{y + 4:.1f}">1e{k}</text>')
    tol_points = [(x, y_of(t)) for x, t in zip(xs, tols) if math.isfinite(t)]
    if tol_points:
        parts.append('<polyline class="tol" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in tol_points) + '"/>')
    parts.append('<polyline class="curve" points="' + " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in zip(xs, ys)) + '"/>')
    for i, (p, x, v) in enumerate(zip(pairs, xs, ys)):
        cls = "point diverges" if p.get("diverges") else "point"
        is_first = first_name is not None and p.get("original") == first_name
        parts.append(f'<circle class="{cls}{" first" if is_first else ""}" cx="{x:.1f}" cy="{y_of(v):.1f}" '
                     f'r="{5 if is_first else 3}"><title>{i + 1}. {esc(p.get("original"))} → '
                     f'{esc(p.get("candidate"))}: max abs {esc(p.get("max_abs"))}, atol {esc(p.get("atol"))}</title></circle>')
        if is_first:
            parts.append(f'<line class="first-mark" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>'
                         f'<text class="first-label" x="{min(x + 4, width - 200):.1f}" y="{top - 8:.0f}">first divergent: '
                         f'{esc(cut(str(first_name), 36))}</text>')
    parts.append(f'<text class="tick" x="{left}" y="{bottom + 16:.0f}">layer 1</text>'
                 + (f'<text class="tick" x="{xs[-1] - 3:.0f}" y="{bottom + 16:.0f}">{len(pairs)}</text>'
                    if len(pairs) > 1 else "")
                 + f'<text class="tick" x="{left}" y="{bottom + 32:.0f}">solid: max |diff| per layer (0 on the '
                 'bottom axis); dashed: atol</text>')
    parts.append("</svg>")
    return "".join(parts)
