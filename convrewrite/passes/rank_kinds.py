"""What `inspect` calls a conv by the lowering rules' own proofs: unit-axis, wrapped-1d.

Why here: inspect once read these off the inventory's own shape reads and
walks, so it could call an axis a unit axis where `to-1d` cannot prove it.
Both kinds now come from the proof the lowering passes use (`unit_proven`,
the region engine's), per spatial axis; the whole region is decided only when
the pass runs (`RankPass.end`), so a kind without a reason says the conv
itself can drop that axis, not that its region will.
"""

from __future__ import annotations

from onnx import NodeProto

from ..conv import ConvAttrs
from ..engine import Conv, NotApplicable
from ..graph import GraphView, attr, unsqueeze_axes, walk_down, walk_up
from .reshapes import unit_proven

DATA_INPUT = 0
# Ops that move data without changing which values sit on the conv's axes (walked past to the wrapper's
# Unsqueeze and Squeeze; a conv feeding or reading this one inside the same wrapper too).
_PASS_THROUGH_UNARY = ("Identity", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "Gelu", "HardSigmoid",
                       "Softplus", "Neg", "Abs")
_KEEPS_LAYOUT_UP = _PASS_THROUGH_UNARY + ("Conv",)
_KEEPS_LAYOUT_DOWN = frozenset(_PASS_THROUGH_UNARY + ("Conv", "Add", "Mul", "BatchNormalization"))
WRAPPER_WALK = 5


def rank_kinds(view: GraphView, node: NodeProto, conv: Conv | None, found, source_rank: int
               ) -> list[tuple[NodeProto, str, str]]:
    """(node, kind, "" or why refused) for a conv of the lowering pass's source rank.

    unit-axis: some spatial axis is proven 1 (`unit_proven`); refused with the conv's own reason (the rule's
    NotApplicable, else why no proven axis can be dropped). wrapped-1d: that axis is the one an Unsqueeze
    before the conv inserts and a Squeeze after it removes (tf2onnx's Conv1D form).
    """
    if conv is None or conv.attrs.rank != source_rank:
        return []
    attrs, big_rank = conv.attrs, source_rank + 2
    x = node.input[DATA_INPUT]
    proven = [j for j in range(source_rank) if unit_proven(view, x, 2 + j, big_rank)]
    if not proven:
        return []
    refused = found.reason if isinstance(found, NotApplicable) else ""
    why = [attrs.droppable_axis_reason(j) for j in proven]
    out = [(node, "unit-axis", refused or ("" if not all(why) else "; ".join(why)))]
    wrapped = wrapped_axis(view, node, attrs)
    if wrapped is not None and wrapped in proven:
        out.append((node, "wrapped-1d", refused or why[proven.index(wrapped)]))
    return out


def wrapped_axis(view: GraphView, node: NodeProto, attrs: ConvAttrs) -> int | None:
    """The conv's spatial axis that an Unsqueeze creates and a Squeeze removes (tf2onnx's Conv1D form).

    Both walks are graph/layout's: up through Transposes and ops that keep the layout to the Unsqueeze, down
    likewise to the Squeeze, at most 5 ops between each and the conv.
    """
    tensor_rank = attrs.rank + 2
    unsqueeze, passed = walk_up(view, node.input[DATA_INPUT], WRAPPER_WALK, ("Transpose",) + _KEEPS_LAYOUT_UP)
    if unsqueeze is None or unsqueeze.op_type != "Unsqueeze":
        return None
    position = list(range(tensor_rank))  # conv axis i holds the tensor axis position[i] of the current tensor
    for t in reversed(passed):  # from the conv back to the Unsqueeze
        if t.op_type == "Transpose":
            perm = attr(t, "perm") or list(reversed(range(tensor_rank)))
            position = [perm[p] for p in position]
    axes = unsqueeze_axes(view, unsqueeze)
    if axes is None or len(axes) != 1:
        return None
    a = axes[0] + tensor_rank if axes[0] < 0 else axes[0]
    if a not in position or position.index(a) < 2:
        return None
    inserted = position.index(a)
    path = walk_down(view, node.output[0], tensor_rank, WRAPPER_WALK, keep=_KEEPS_LAYOUT_DOWN,
                     stop=("Squeeze", "Unsqueeze"))
    squeeze = path.user
    if squeeze is None or squeeze.op_type != "Squeeze" or squeeze.domain not in ("", "ai.onnx"):
        return None
    axes = unsqueeze_axes(view, squeeze)
    if axes is None or len(axes) != 1:
        return None
    a = axes[0] + tensor_rank if axes[0] < 0 else axes[0]
    return inserted - 2 if path.axes.index(inserted) == a else None
