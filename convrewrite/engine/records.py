"""What a run did: one record per candidate per rule, and the result that carries them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import onnx


@dataclass
class Record:
    """What one pass did with one candidate (normally a convolution)."""

    pass_name: str
    node: str
    op_type: str
    graph: str
    status: str  # "rewritten" or "skipped"
    reason: str = ""
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Stable id of the candidate within one pipeline run (used to select and bisect)."""
        return f"{self.pass_name}:{self.graph}:{self.node}"

    @property
    def rewritten(self) -> bool:
        return self.status == "rewritten"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["pass"] = out.pop("pass_name")
        out["key"] = self.key
        return out


@dataclass
class RewriteResult:
    """The rewritten model and one record per candidate considered."""

    model: onnx.ModelProto
    records: list[Record]
    counters: dict[str, int]
    passes: list[str]

    @property
    def rewritten(self) -> list[Record]:
        return [r for r in self.records if r.rewritten]

    @property
    def skipped(self) -> list[Record]:
        return [r for r in self.records if not r.rewritten]

    @property
    def changed(self) -> bool:
        return bool(self.rewritten)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "summary": summarize(self),
            "records": [r.to_dict() for r in self.records],
        }


def summarize(result: RewriteResult) -> dict[str, Any]:
    """Counts by outcome and by skip reason, and the rules' counters."""
    reasons: dict[str, int] = {}
    for r in result.skipped:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    return {
        "considered": len(result.records),
        "rewritten": len(result.rewritten),
        "skipped": len(result.skipped),
        "skipped_by_reason": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "counters": dict(sorted(result.counters.items())),
    }


def merge_round(records: list[Record], start: int) -> bool:
    """Fold the records of a repeated round (from `start`) into the earlier ones; whether it rewrote anything."""
    earlier = {r.key: r for r in records[:start]}
    rewritten = [r for r in records[start:] if r.rewritten]
    del records[start:]
    for r in rewritten:
        old = earlier.get(r.key)
        if old is None:
            records.append(r)
            continue
        old.reason = "; ".join(x for x in (old.reason if old.rewritten else "", r.reason) if x)
        old.status = "rewritten"
        old.before = old.before if old.before is not None else r.before
        old.after = r.after
        old.details = {**old.details, **r.details}
    return bool(rewritten)
