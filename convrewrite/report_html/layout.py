"""A layered layout of a small DAG (top to bottom), so a region's drawing reads like the graph runs.

Longest-path layers from the sources; inside a layer, a few barycenter
sweeps (down and up) put each node near its neighbours, which removes most
crossings of small graphs; then coordinates, each layer centred. Nodes are
given in topological order (an ONNX graph's order); an edge that points
backwards is ignored for layering.
"""

from __future__ import annotations

from dataclasses import dataclass

SWEEPS = 4


@dataclass
class Placed:
    """Where a node's box goes: top-left corner and size, in SVG user units."""

    x: float
    y: float
    width: float
    height: float


def layers(count: int, edges: list[tuple[int, int]]) -> list[int]:
    """Each node's layer: one below its lowest predecessor (0 for a source)."""
    layer = [0] * count
    preds: list[list[int]] = [[] for _ in range(count)]
    for u, v in edges:
        if u < v:
            preds[v].append(u)
    succs: list[list[int]] = [[] for _ in range(count)]
    for u, v in edges:
        if u < v:
            succs[u].append(v)
    for v in range(count):
        if preds[v]:
            layer[v] = max(layer[u] for u in preds[v]) + 1
    # A source (a weight-like input, a Constant) sits just above its first consumer, not in the top row.
    for v in range(count - 1, -1, -1):
        if not preds[v] and succs[v]:
            layer[v] = max(0, min(layer[s] for s in succs[v]) - 1)
    return layer


def order_layers(layer: list[int], edges: list[tuple[int, int]]) -> list[list[int]]:
    """Nodes of each layer, left to right, after barycenter sweeps."""
    depth = max(layer, default=-1) + 1
    rows: list[list[int]] = [[] for _ in range(depth)]
    for v, d in enumerate(layer):
        rows[d].append(v)
    up: dict[int, list[int]] = {}
    down: dict[int, list[int]] = {}
    for u, v in edges:
        if u < v:
            up.setdefault(v, []).append(u)
            down.setdefault(u, []).append(v)
    for sweep in range(SWEEPS):
        position = {v: i / max(1, len(row)) for row in rows for i, v in enumerate(row)}
        neighbours = up if sweep % 2 == 0 else down
        sequence = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        for d in sequence:
            row = rows[d]

            def centre(v: int, row: list[int] = row) -> float:
                near = [position[u] for u in neighbours.get(v, [])]
                return sum(near) / len(near) if near else position[v]

            rows[d] = sorted(row, key=lambda v: (centre(v), v))
            position.update({v: i / max(1, len(rows[d])) for i, v in enumerate(rows[d])})
    return rows


def place(sizes: list[tuple[float, float]], edges: list[tuple[int, int]], hgap: float = 24.0,
          vgap: float = 36.0, margin: float = 12.0) -> tuple[list[Placed], float, float]:
    """Boxes of the given (width, height) laid out in layers; also the total width and height."""
    layer = layers(len(sizes), edges)
    rows = order_layers(layer, edges)
    row_width = [sum(sizes[v][0] for v in row) + hgap * max(0, len(row) - 1) for row in rows]
    width = max(row_width, default=0.0) + 2 * margin
    placed: list[Placed | None] = [None] * len(sizes)
    y = margin
    for row, w in zip(rows, row_width):
        x = (width - w) / 2
        height = max((sizes[v][1] for v in row), default=0.0)
        for v in row:
            placed[v] = Placed(x, y, sizes[v][0], sizes[v][1])
            x += sizes[v][0] + hgap
        y += height + vgap
    total_height = y - vgap + margin if rows else 2 * margin
    return [p for p in placed if p is not None], width, total_height
