"""The one layout walker: axis maps through layout-only ops (Identity, Transpose, Squeeze, Unsqueeze).

Why one: the folds that move something across layout ops (separable's
followers, the Keras bias Add) must agree on where an axis goes through each
op and on how far to walk; the walk says why it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from onnx import NodeProto

from ..refusal import Refusal
from .attrs import attr
from .core import GraphView
from .ops import unsqueeze_axes

LAYOUT_OPS = ("Identity", "Transpose", "Squeeze", "Unsqueeze")
MAX_LAYOUT_OPS = 8
STD_DOMAINS = ("", "ai.onnx")


def axes_through(view: GraphView, node: NodeProto, axes: list[int | None]) -> list[int | None] | None:
    """The conv-output axes after a layout op, or None when the op is not followed (channel axis lost)."""
    rank = len(axes)
    if node.op_type == "Identity":
        return list(axes)
    if node.op_type == "Transpose":
        perm = attr(node, "perm")
        perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(rank)):
            return None
        return [axes[p] for p in perm]
    given = unsqueeze_axes(view, node)
    if given is None:
        return None
    if node.op_type == "Squeeze":
        drop = {a + rank if a < 0 else a for a in given}
        if any(not 0 <= a < rank for a in drop) or any(axes[a] == 1 for a in drop):
            return None
        return [a for i, a in enumerate(axes) if i not in drop]
    out_rank = rank + len(given)
    inserted = {a + out_rank if a < 0 else a for a in given}
    if len(inserted) != len(given) or any(not 0 <= a < out_rank for a in inserted):
        return None
    rest = iter(axes)
    return [None if i in inserted else next(rest) for i in range(out_rank)]


@dataclass
class LayoutPath:
    """Where a tensor goes through layout-only ops (each read once, none a graph output)."""

    layout: list[NodeProto]
    name: str  # the tensor the next op reads
    axes: list[int | None]  # axes[i]: which axis of the start tensor sits at position i (None: inserted)
    user: NodeProto | None  # the sole reader of `name`; None when the walk stopped
    stop: str = ""  # why it stopped when `user` is None

    @property
    def channel_axis(self) -> int:
        return self.axes.index(1)

    @property
    def same_layout(self) -> bool:
        return self.axes == list(range(len(self.axes)))


def walk_down(view: GraphView, name: str, rank: int, limit: int = MAX_LAYOUT_OPS,
              keep: frozenset[str] | tuple[str, ...] = (), stop: tuple[str, ...] = ()) -> LayoutPath:
    """Follow `name` (of rank `rank`) through sole-reader layout ops to the first other reader, tracking its axes.

    `keep`: other ops to pass (reading `name` as any input) whose output keeps the layout (elementwise ops,
    a conv in the same wrapper); they join `layout`. `stop`: layout ops not to pass (`user` is the first one).
    """
    axes: list[int | None] = list(range(rank))
    layout: list[NodeProto] = []
    while True:
        if view.is_graph_output(name):
            return LayoutPath(layout, name, axes, None, "is a graph output")
        users = view.consumers_of(name)
        if len(users) != 1:
            kinds = ", ".join(u.op_type for u in users)
            stop_reason = f"has {len(users)} consumers ({kinds})" if users else "is not read"
            return LayoutPath(layout, name, axes, None, stop_reason)
        user = users[0]
        if keep and user.op_type in keep and user.domain in STD_DOMAINS and user.output and len(layout) < limit:
            layout.append(user)
            name = user.output[0]
            continue
        if (user.op_type not in LAYOUT_OPS or user.op_type in stop or user.domain not in STD_DOMAINS
                or user.input[0] != name):
            return LayoutPath(layout, name, axes, user)
        moved = axes_through(view, user, axes)
        if moved is None or len(layout) >= limit:
            return LayoutPath(layout, name, axes, user)
        layout.append(user)
        axes = moved
        name = user.output[0]


def walk_up(view: GraphView, name: str, limit: int = MAX_LAYOUT_OPS, ops: tuple[str, ...] | frozenset[str] = LAYOUT_OPS,
            reader: NodeProto | None = None, ignored: tuple[str, ...] | frozenset[str] | set[str] = ()
            ) -> tuple[NodeProto | None, list[NodeProto]]:
    """The first producer behind `name` that is not one of `ops` (or the one where `limit` ops were passed),
    and the ops from it to `name`, in data order.

    `reader` (the node reading `name`): pass an op only while its output is read by the next node on the walk
    alone (and is not a graph output); the first op that is shared is returned, not passed. `ignored`: readers
    of these op types do not count as sharing (Shape/Size readers that go with the walked ops).
    """
    layout: list[NodeProto] = []
    node = view.producer_of(name)
    while node is not None and node.op_type in ops and node.domain in STD_DOMAINS and len(layout) < limit:
        if reader is not None:
            if not read_by(view, name, reader, ignored):
                break
            reader, name = node, (node.input[0] if node.input else "")
        layout.append(node)
        node = view.producer_of(node.input[0]) if node.input else None
    return node, layout[::-1]


def read_by(view: GraphView, name: str, reader: NodeProto, ignored: tuple[str, ...] | frozenset[str] | set[str] = ()
            ) -> bool:
    """Whether `reader` alone reads `name` (not a graph output); readers of `ignored` op types do not count."""
    if not ignored:
        return view.sole_consumer(name) is reader
    if view.is_graph_output(name):
        return False
    users = [u for u in view.consumers_of(name) if u.op_type not in ignored]
    return len(users) == 1 and users[0] is reader


def axes_back(view: GraphView, nodes: list[NodeProto], rank: int, where: str = ""):
    """Walking `nodes` back from the last tensor (of rank `rank`): for each of its axes, the axis of the first
    tensor it comes from (None for an inserted axis).

    Returns (map, the first tensor's rank), or raises Refusal saying why the walk stops; `where` says where
    the ops sit, for the reason.
    """
    current: list[int | None] = list(range(rank))
    for node in nodes:  # from the last tensor back towards the first
        if node.op_type == "Identity":
            continue
        if node.op_type == "Transpose":
            perm = attr(node, "perm")
            perm = list(perm) if perm is not None else list(reversed(range(rank)))
            if sorted(perm) != list(range(rank)):
                raise Refusal("Transpose perm does not match the tensor's rank", [node])
            current = [None if c is None else perm[c] for c in current]
            continue
        if node.op_type != "Unsqueeze":
            raise Refusal(f"{node.op_type}{where} is not followed back", [node])
        axes = unsqueeze_axes(view, node)
        if axes is None:
            raise Refusal(f"Unsqueeze axes{where} are computed at run time", [node])
        inserted = sorted(a + rank if a < 0 else a for a in axes)
        if len(set(inserted)) != len(inserted) or any(not 0 <= a < rank for a in inserted):
            raise Refusal("Unsqueeze axes do not match the tensor's rank", [node])
        inserted_set = set(inserted)
        current = [
            None if c is None or c in inserted_set else c - sum(1 for a in inserted if a < c) for c in current
        ]
        rank -= len(inserted)
    return current, rank
