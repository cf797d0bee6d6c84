"""The one shape of "no" inside the rules: a reason in words and the nodes it concerns.

Why one: helpers deep inside a rule (the symbolic proofs, a weight fold, a
region plan) refuse for reasons the record must carry word for word. Every
such refusal is a `Refusal` (the driver's `NotApplicable` is one), so one that
no helper catches still ends as the conv's skip record, with its reason.
"""

from __future__ import annotations

from typing import Any, Sequence

from onnx import NodeProto


class Refusal(Exception):
    """Why something cannot be done exactly (`reason`), and the nodes concerned (`nodes`)."""

    def __init__(self, reason: str = "", nodes: Sequence[NodeProto] = ()) -> None:
        # Kept in `args` only (no instance dict): some helpers raise one per node they look at.
        self.args = (reason, nodes)

    def __str__(self) -> str:
        return self.args[0]

    @property
    def reason(self) -> str:
        return self.args[0]

    @property
    def nodes(self) -> list[NodeProto]:
        return list(self.args[1])

    @property
    def details(self) -> dict[str, Any]:
        """What the skip record keeps besides the reason (none, unless a subclass says)."""
        return {}

    @property
    def with_before(self) -> bool:
        """Whether the skip record shows the conv's attributes."""
        return True
