"""The pipeline: run rules in order on one model, re-infer shapes between them, repeat folds until stable."""

from __future__ import annotations

import copy
from typing import Callable, Iterable

import onnx

from .. import shapes as shape_inference
from ..graph import GraphView, ModelContext, iter_views
from .options import PassOptions
from .records import Record, RewriteResult, merge_round
from .registry import expand_pass_names, repeating, rule

MAX_FOLD_ROUNDS = 3  # repeats after the first round; each must rewrite something to go on


class PassContext:
    """Shared by the rules of one run: options, selection, counters, records."""

    def __init__(self, model: onnx.ModelProto, options: PassOptions, only: set[str] | None = None) -> None:
        self.model = model
        self.options = options
        self.only = only
        self.records: list[Record] = []
        self.counters: dict[str, int] = {}
        self.model_ctx = ModelContext(model, shape_inference.infer(model))

    def refresh_shapes(self) -> None:
        """Re-infer shapes (between passes: a pass sees the graph the previous one left)."""
        self.model_ctx = ModelContext(self.model, shape_inference.infer(self.model))

    def allowed(self, pass_name: str, graph: str, node: str) -> bool:
        return self.only is None or f"{pass_name}:{graph}:{node}" in self.only

    def record(self, record: Record) -> Record:
        self.records.append(record)
        return record

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def views(self) -> Iterable[GraphView]:
        """Every graph body; edits of each are committed before the next is visited."""
        for view in iter_views(self.model, self.model_ctx):
            yield view
            view.commit()


def run_passes(
    model: onnx.ModelProto,
    passes: Iterable[str],
    options: PassOptions | None = None,
    only: set[str] | None = None,
    copy_model: bool = True,
    on_pass: Callable[[str], None] | None = None,
) -> RewriteResult:
    """Run the named passes in order on (a copy of) `model`; `on_pass` is told each pass as it starts."""
    names = expand_pass_names(passes)
    if copy_model:
        model = copy.deepcopy(model)
    options = options or PassOptions()
    ctx = PassContext(model, options, only)
    steps: list[tuple[str, list[dict], list[str]]] = []
    for i, name in enumerate(names):
        if on_pass is not None:
            on_pass(name)
        if i:
            ctx.refresh_shapes()
        start = len(ctx.records)
        rule(name)().run(ctx)
        steps.append(_step(name, ctx.records[start:]))
    # Folds uncover work for each other (separable folds a BatchNorm and leaves the conv right before a Slice
    # that causal folds), so with more than one repeating rule they run again until a round rewrites nothing:
    # a second run then changes nothing. Each repeat's rewrites are merged into the first round's records.
    again = repeating(names)
    for _ in range(MAX_FOLD_ROUNDS if len(again) > 1 else 0):
        start = len(ctx.records)
        for name in again:  # not announced to `on_pass`: progress counts the passes named, once each
            ctx.refresh_shapes()
            first = len(ctx.records)
            rule(name)().run(ctx)
            steps.append(_step(name, ctx.records[first:]))
        if not merge_round(ctx.records, start):
            break
    steps = [s for s in steps if s[1] or s[2]]
    return RewriteResult(model, ctx.records, ctx.counters, names, steps=steps)


def _step(name: str, records: list[Record]) -> tuple[str, list[dict], list[str]]:
    """One pass run's tensor map (its rewrite records' entries) and the tensors it dropped."""
    entries = [e for r in records if r.rewritten for e in r.tensor_map]
    gone = [g for r in records if r.rewritten for g in r.tensors_gone]
    return name, entries, gone
