"""What `inspect` calls a conv by the separable rule's own partner search: separable-pair.

Why here: inspect once matched pairs with its own walker; this asks the
rule's `partner` (the pointwise conv `find_pointwise` would take once the
followers are folded; nothing edited) and says why not where it refuses.
"""

from __future__ import annotations

from typing import Any

from onnx import NodeProto

from ...engine import NotApplicable, ViewRun


def separable_kinds(run: ViewRun, node: NodeProto, state: Any) -> tuple[tuple[NodeProto, str, str], ...]:
    """A depthwise conv and the pointwise partner the rule would pair it with, or the pair it refuses and why."""
    if isinstance(state, NotApplicable) or not state.is_depthwise:
        return ()
    pw, why, candidate = run.state.partner(state)
    if pw is not None:
        return ((node, "separable-pair", ""), (pw.node, "separable-pair", ""))
    return ((node, "separable-pair", why), (candidate, "separable-pair", why)) if candidate is not None else ()
