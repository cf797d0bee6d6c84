"""Which rewrites make the rewritten model differ: delta debugging over rewrite records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from onnx import ModelProto

from .. import model as cio
from .layers import layer_report
from .report import CheckReport
from .run import Checker


@dataclass
class BisectResult:
    """Which rewrite records make the rewritten model differ, and the proof."""

    culprits: list[str]
    groups: list[list[str]]  # each a minimal failing set; one key = that rewrite alone breaks it
    alone: dict[str, bool]  # key -> whether applying it alone already fails
    report: CheckReport  # check of the model with only the culprits rewritten
    full_report: CheckReport  # check of the model with every candidate key rewritten
    records: list[Any] = field(default_factory=list)  # rewrite records of the culprits, when known
    checks_run: int = 0

    @property
    def found(self) -> bool:
        return bool(self.culprits)

    def describe(self) -> str:
        """One line per culprit, naming the convolution."""
        if not self.culprits:
            if self.full_report.cannot_check is not None:
                return "bisect: the original does not run, so no rewrite can be blamed: " + self.full_report.summary
            if self.full_report.ok:
                return "bisect: the rewritten model is equivalent; no culprit"
            if not self.full_report.ran:
                return "bisect: nothing could run, so nothing to bisect: " + self.full_report.summary
            return ("bisect: the outputs differ even with none of the rewrites applied; no rewrite is to blame: "
                    + self.report.summary)
        by_key = {getattr(r, "key", None): r for r in self.records}
        lines = [f"bisect: {len(self.culprits)} rewrite(s) make the model differ ({self.checks_run} checks):"]
        for key in self.culprits:
            rec = by_key.get(key)
            what = ""
            if rec is not None:
                node = getattr(rec, "node", None)
                node_name = getattr(node, "name", node) if node is not None else None
                what = f" ({getattr(rec, 'op_type', '?')} {node_name!r}, pass {getattr(rec, 'pass_name', '?')})"
            lines.append(f"  {key}{what}" + ("" if self.alone.get(key) else " [only together with the others in its group]"))
        layers = getattr(self.report, "layers", None)
        if layers is not None:
            first = layers.first_divergent
            lines.append(f"  first layer where it shows: {first.original}" + (
                f" (candidate {first.candidate})" if first.candidate != first.original else "")
                if first is not None else "  no mapped layer diverges (only the outputs do)")
        return "\n".join(lines)


def _rewritten_model(result: Any) -> tuple[ModelProto, list[Any]]:
    if isinstance(result, ModelProto):
        return result, []
    return result.model, list(getattr(result, "records", []) or [])


def _layers(checker: Checker, report: CheckReport, original: cio.ModelSource, result: Any) -> Any:
    """The culprits-only model compared layer by layer (by its tensor map, else by names)."""
    model, _ = _rewritten_model(result)
    tensor_map, gone = None, ()
    if hasattr(result, "tensor_map"):
        proto = original if isinstance(original, ModelProto) else cio.load(original, check=False)
        tensor_map, gone = result.tensor_map(proto), result.tensors_gone()
    return layer_report(checker, report, original, model, tensor_map, gone)


def ddmin(items: list[str], fails: Callable[[list[str]], bool]) -> list[str]:
    """Zeller's delta debugging: a 1-minimal failing subset of `items` (which fails).

    Halves first (a single culprit is found by binary search), then finer
    chunks and complements when the failure needs several rewrites together.
    """
    n = 2
    while len(items) >= 2:
        size = len(items)
        bounds = [round(i * size / n) for i in range(n + 1)]
        chunks = [items[bounds[i]:bounds[i + 1]] for i in range(n) if bounds[i] < bounds[i + 1]]
        reduced = False
        for chunk in chunks:
            if fails(chunk):
                items, n, reduced = chunk, 2, True
                break
        if not reduced and len(chunks) > 2:
            for i in range(len(chunks)):
                complement = [k for j, c in enumerate(chunks) if j != i for k in c]
                if fails(complement):
                    items, n, reduced = complement, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= size:
                break
            n = min(size, 2 * n)
    return items


def bisect(
    original: cio.ModelSource,
    rewrite_fn: Callable[..., Any],
    candidate_keys: Sequence[str] | None = None,
    layers: bool = False,
    **check_options: Any,
) -> BisectResult:
    """Find the smallest set of rewrites that makes the rewritten model differ.

    `rewrite_fn(only=set_of_keys)` returns the model with only those candidates
    rewritten (a ModelProto, or a RewriteResult with `.model` and `.records`).
    `candidate_keys` defaults to the keys of the records `rewrite_fn(only=None)`
    marks rewritten. The original runs once; its outputs serve every subset.
    After one minimal group is found, the remaining keys are checked again so
    independent faults are all named. `check_options` are those of `check`.
    When the original does not run, nothing is bisected and nothing blamed.
    `layers=True`: the model with only the culprits rewritten is also compared layer by layer (its
    tensor map when `rewrite_fn` returns a RewriteResult): `report.layers` names the first layer where they show.
    """
    checker = Checker(original, **check_options)
    cache: dict[frozenset[str], CheckReport] = {}
    records_by_key: dict[str, Any] = {}
    try:
        if candidate_keys is None:
            _, records = _rewritten_model(rewrite_fn(only=None))
            candidate_keys = [r.key for r in records if getattr(r, "status", "rewritten") == "rewritten"]
        keys = list(dict.fromkeys(candidate_keys))

        def report_for(subset: Iterable[str]) -> CheckReport:
            frozen = frozenset(subset)
            if frozen not in cache:
                model, records = _rewritten_model(rewrite_fn(only=set(frozen)))
                for r in records:
                    if getattr(r, "key", None) in frozen:
                        records_by_key[r.key] = r
                cache[frozen] = checker.compare(model, "rewritten (" + (", ".join(sorted(frozen)) or "nothing") + ")")
            return cache[frozen]

        def fails(subset: Iterable[str]) -> bool:
            report = report_for(subset)
            return not report.ok and report.cannot_check is None

        full_report = report_for(keys)
        nothing = BisectResult([], [], {}, full_report, full_report, [], 0)
        if full_report.ok or not keys or not full_report.ran or full_report.cannot_check is not None:
            nothing.checks_run = len(cache)
            return nothing
        if fails([]):
            nothing.report = report_for([])
            nothing.checks_run = len(cache)
            return nothing
        groups: list[list[str]] = []
        remaining = list(keys)
        while remaining and fails(remaining):
            group = ddmin(list(remaining), fails)
            groups.append(group)
            remaining = [k for k in remaining if k not in group]
        culprits = [k for k in keys if any(k in g for g in groups)]
        alone = {k: fails([k]) for k in culprits}
        report = report_for(culprits)
        if layers:
            report.layers = _layers(checker, report, original, rewrite_fn(only=set(culprits)))
        records = [records_by_key[k] for k in culprits if k in records_by_key]
        return BisectResult(culprits, groups, alone, report, full_report, records, len(cache))
    finally:
        checker.close()
