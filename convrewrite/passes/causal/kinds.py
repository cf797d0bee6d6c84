"""What `inspect` calls a conv, by the causal rule's own plan: pad-fed, sliced, causal.

Why here: a separate matcher once called a conv "pad-fed" where this rule
refuses the Pad, with no reason shown. The kinds are read off the plan the
rule's `match` made (nothing rewritten): a Pad or Slice it found, folded or
refused with its reason, and whether the pads it would leave are causal.
"""

from __future__ import annotations

from typing import Any

from onnx import NodeProto

from ...conv import ConvAttrs
from ...engine import Conv, NotApplicable


def causal_kinds(node: NodeProto, conv: Conv | None, found: Any) -> list[tuple[NodeProto, str, str]]:
    """(node, kind, "" or why the rule refuses) for the plan (or NotApplicable) the causal match returned."""
    if conv is None or getattr(found, "state", None) is not None:
        return []
    if isinstance(found, NotApplicable):
        details, attrs, refused, pads, slices = found.details, conv.attrs, found.reason, 0, 0
    else:
        details, attrs, refused = found.details, found.attrs, "; ".join(found.skipped)
        pads, slices = len(details.get("pad_added", ())), len(details.get("slice_dropped", ()))
    out = []
    if "pad" in details:
        out.append((node, "pad-fed", "" if len(details["pad"]) == pads else refused))
    if "slice" in details:
        out.append((node, "sliced", "" if len(details["slice"]) == slices else refused))
    if is_causal(attrs):
        out.append((node, "causal", ""))
    return out


def is_causal(attrs: ConvAttrs) -> bool:
    """Explicit pads only before the time axis (the last spatial axis whose kernel spans more than one step)."""
    if attrs.auto_pad != "NOTSET":
        return False
    for axis in range(attrs.rank - 1, -1, -1):
        if attrs.dilations[axis] * (attrs.kernel_shape[axis] - 1) > 0:
            return attrs.pads_begin[axis] > 0 and attrs.pads_end[axis] == 0
    return False
