"""What a run did: one record per candidate per rule, and the result that carries them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import onnx

from .tensor_map import compose

REPORT_SCHEMA = "convrewrite.rewrite/1"


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
    # Where this rewrite's tensors went: {"original", "rewritten", "view"} entries (engine/tensor_map.py), and
    # the tensors of the pass's input it folded away or changed in value (never identity-mapped).
    tensor_map: list[dict[str, Any]] = field(default_factory=list)
    tensors_gone: list[str] = field(default_factory=list)

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
    graph: Any = None  # the model as an onnx_graphsurgeon Graph, when `rewrite` was given one
    # Per pass run, in order: (pass, its records' map entries, the names it dropped); see `tensor_map`.
    steps: list[tuple[str, list[dict[str, Any]], list[str]]] = field(default_factory=list)

    @property
    def rewritten(self) -> list[Record]:
        return [r for r in self.records if r.rewritten]

    @property
    def skipped(self) -> list[Record]:
        return [r for r in self.records if not r.rewritten]

    @property
    def changed(self) -> bool:
        return bool(self.rewritten)

    def tensor_map(self, original: onnx.ModelProto | None = None) -> list[dict[str, Any]]:
        """The passes' maps composed: ORIGINAL model's tensor names -> the final model's, with the view back.

        A later pass may rename or lift a tensor an earlier pass mapped; the
        views compose. Given the `original` model, names that no pass touched
        and that keep their inferred shape and type in the final model are added
        as identity entries; entries come in the original's node order then.
        """
        entries, gone = compose((e, g) for _, e, g in self.steps)
        if original is None:
            return entries
        from .tensor_map import identity_survivors

        return identity_survivors(original, self.model, entries, gone)

    def tensors_gone(self) -> list[str]:
        """Names of the original model some pass folded away or changed in value (never identity-mapped)."""
        return sorted(compose((e, g) for _, e, g in self.steps)[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": REPORT_SCHEMA,
            "passes": self.passes,
            "summary": summarize(self),
            "records": [r.to_dict() for r in self.records],
            # the passes' maps composed (original -> final names); `check --map` reads these two
            "tensor_map": self.tensor_map(),
            "tensors_gone": self.tensors_gone(),
        }


def summarize(result: RewriteResult) -> dict[str, Any]:
    """Counts per record (pass x candidate) and per convolution, skip reasons, and the rules' counters.

    `by_passes` groups convolutions by the passes that rewrote them;
    `refused_by_reason` counts skips where a rule found its pattern but could
    not prove the rewrite exact (or was told not to); `not_applicable` counts
    skips that only say the pattern is absent.
    """
    reasons: dict[str, int] = {}
    refused: dict[str, int] = {}
    not_applicable = 0
    convs: dict[tuple[str, str], list[str]] = {}
    notes: dict[str, int] = {}
    for r in result.records:
        done = convs.setdefault((r.graph, r.node), [])
        if r.rewritten:
            if r.pass_name not in done:
                done.append(r.pass_name)
            for part in r.reason.split("; "):
                if part.startswith("not "):  # what a rewrite left undone: "not fused: costs 5x", ...
                    key = f"{r.pass_name}: {part}"
                    notes[key] = notes.get(key, 0) + 1
            continue
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
        if r.details.get("not_applicable"):
            not_applicable += 1
        else:
            key = f"{r.pass_name}: {r.reason}"
            refused[key] = refused.get(key, 0) + 1
    by_passes: dict[str, int] = {}
    for passes in convs.values():
        if passes:
            key = " + ".join(passes)
            by_passes[key] = by_passes.get(key, 0) + 1
    rewritten_convs = sum(1 for p in convs.values() if p)
    ordered = lambda d: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))  # noqa: E731
    return {
        "considered": len(result.records),
        "rewritten": len(result.rewritten),
        "skipped": len(result.skipped),
        "skipped_by_reason": ordered(reasons),
        "convolutions": len(convs),
        "convolutions_rewritten": rewritten_convs,
        "convolutions_left_alone": len(convs) - rewritten_convs,
        "by_passes": ordered(by_passes),
        "refused_by_reason": ordered(refused),
        "notes": ordered(notes),
        "not_applicable": not_applicable,
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
        old.tensor_map = old.tensor_map + r.tensor_map  # per-step maps are kept in the result's `steps`
        old.tensors_gone = old.tensors_gone + r.tensors_gone
    return bool(rewritten)
