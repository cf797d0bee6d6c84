"""A layered layout of a small DAG (top to bottom), so a region's drawing reads like the graph runs.

Longest-path layers from the sources; an edge that skips layers gets a
virtual node in each layer it crosses (Sugiyama), so it takes a slot of
its own there instead of running through the boxes of that layer. Inside a
layer, a few barycenter sweeps (down and up, virtual nodes included) put
each node near its neighbours, which removes most crossings of small
graphs; then coordinates, each layer centred. Nodes are given in
topological order (an ONNX graph's order); an edge that points backwards
is ignored for layering and drawn straight.
"""

from __future__ import annotations

from dataclasses import dataclass

SWEEPS = 4
LANE = 10.0  # the width a virtual node takes in its layer


@dataclass
class Placed:
    """Where a node's box goes: top-left corner and size, in SVG user units."""

    x: float
    y: float
    width: float
    height: float


@dataclass
class Route:
    """How an edge is drawn: from the bottom of its source box to the top of its target, through `via`.

    `via` holds, for each layer the edge crosses, the x of its virtual node
    and the top and bottom of that layer; `drop` is the bottom of the
    source's layer (the edge runs straight down to it before it turns).
    """

    start: tuple[float, float]
    drop: float
    via: list[tuple[float, float, float]]
    end: tuple[float, float]


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


def split_long_edges(layer: list[int], edges: list[tuple[int, int]]) -> tuple[list[int], list[tuple[int, int]],
                                                                            dict[tuple[int, int], list[int]]]:
    """Virtual nodes for every edge that skips layers: (layers of all nodes, one-layer edges, edge -> its chain)."""
    full = list(layer)
    short: list[tuple[int, int]] = []
    chains: dict[tuple[int, int], list[int]] = {}
    for u, v in edges:
        if u >= v or (u, v) in chains:
            continue
        chain = []
        prev = u
        for d in range(layer[u] + 1, layer[v]):
            full.append(d)
            chain.append(len(full) - 1)
            short.append((prev, chain[-1]))
            prev = chain[-1]
        short.append((prev, v))
        chains[(u, v)] = chain
    return full, short, chains


def order_layers(layer: list[int], edges: list[tuple[int, int]]) -> list[list[int]]:
    """Nodes of each layer, left to right, after barycenter sweeps (edges go from a layer to a lower one)."""
    depth = max(layer, default=-1) + 1
    rows: list[list[int]] = [[] for _ in range(depth)]
    for v, d in enumerate(layer):
        rows[d].append(v)
    up: dict[int, list[int]] = {}
    down: dict[int, list[int]] = {}
    for u, v in edges:
        if layer[u] < layer[v]:
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
    boxes, _, width, height = place_routed(sizes, edges, hgap, vgap, margin)
    return boxes, width, height


def place_routed(sizes: list[tuple[float, float]], edges: list[tuple[int, int]], hgap: float = 24.0,
                 vgap: float = 36.0, margin: float = 12.0
                 ) -> tuple[list[Placed], dict[tuple[int, int], Route], float, float]:
    """`place`, and the route of each forward edge (a backward edge has none: it is drawn straight)."""
    count = len(sizes)
    layer, short, chains = split_long_edges(layers(count, edges), edges)
    every = [*sizes, *[(LANE, 0.0)] * (len(layer) - count)]
    rows = order_layers(layer, short)
    row_width = [sum(every[v][0] for v in row) + hgap * max(0, len(row) - 1) for row in rows]
    width = max(row_width, default=0.0) + 2 * margin
    placed: list[Placed | None] = [None] * len(every)
    bands: list[tuple[float, float]] = []
    y = margin
    for row, w in zip(rows, row_width):
        x = (width - w) / 2
        height = max((every[v][1] for v in row), default=0.0)
        bands.append((y, y + height))
        for v in row:
            placed[v] = Placed(x, y, every[v][0], every[v][1])
            x += every[v][0] + hgap
        y += height + vgap
    total_height = y - vgap + margin if rows else 2 * margin
    boxes = [p for p in placed if p is not None]
    routes: dict[tuple[int, int], Route] = {}
    for (u, v), chain in chains.items():
        a, b = boxes[u], boxes[v]
        via = [(boxes[c].x + LANE / 2, *bands[layer[c]]) for c in chain]
        routes[(u, v)] = Route((a.x + a.width / 2, a.y + a.height), bands[layer[u]][1], via,
                               (b.x + b.width / 2, b.y))
    return boxes[:count], routes, width, total_height
