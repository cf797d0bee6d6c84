"""Passes: the protocol, the registry by name, and the pipeline that runs them.

A pass looks at every candidate in every graph body, and for each one either
rewrites it or says why not: `PassContext.record` is the only way a pass
reports, so the report lists every convolution considered. A pass may run on
only a subset of its candidates (`only`), which is how the checker's bisect
finds the rewrite that broke a model.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Protocol

import onnx

from .. import shapes as shape_inference
from ..graph import GraphView, ModelContext, iter_views


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
class PassOptions:
    """Every option any pass reads; passes ignore the ones that are not theirs."""

    layout: str = "h"  # to-2d / to-3d: where the unit axis goes ("h": [N,C,1,L], "w": [N,C,L,1])
    fuse_separable: bool = False
    force: bool = False
    expand_dilations: bool = False
    causal_target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PassContext:
    """Shared by the passes of one run: options, selection, counters, records."""

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


class Pass(Protocol):
    name: str
    description: str

    def run(self, ctx: PassContext) -> None:
        """Rewrite what can be proven exact; record every candidate."""


REGISTRY: dict[str, Callable[[], Pass]] = {}
# `--fold all` runs these, in this order: padding first (it makes pads
# explicit for the others), then dilation, then separable pairs.
FOLD_ORDER = ["causal", "dilated", "separable"]


def register(cls):
    """Class decorator: make a pass available by its `name`."""
    REGISTRY[cls.name] = cls
    return cls


def node_label(view: GraphView, node: onnx.NodeProto) -> str:
    """A node's name, or a stable stand-in for unnamed nodes (op type and position)."""
    if node.name:
        return node.name
    same = [n for n in view.nodes if n.op_type == node.op_type]
    for i, n in enumerate(same):
        if n is node:
            return f"{node.op_type}_{i}"
    return node.op_type


def _load_builtin_passes() -> None:
    import importlib

    for module in ("rank", "causal", "dilated", "separable"):
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{module}":
                raise


def available_passes() -> list[str]:
    _load_builtin_passes()
    return sorted(REGISTRY)


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


def expand_pass_names(passes: Iterable[str]) -> list[str]:
    """Resolve names (and 'all' = every fold) into the pass order to run."""
    _load_builtin_passes()
    out: list[str] = []
    for name in passes:
        names = FOLD_ORDER if name == "all" else [name]
        for n in names:
            if n not in REGISTRY:
                from ..errors import ConvRewriteError

                known = ", ".join(sorted(REGISTRY)) or "none"
                raise ConvRewriteError(f"unknown pass {n!r} (known: {known})")
            if n not in out:
                out.append(n)
    return out


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
    for i, name in enumerate(names):
        if on_pass is not None:
            on_pass(name)
        if i:
            ctx.refresh_shapes()
        REGISTRY[name]().run(ctx)
    # Folds uncover work for each other (separable folds a BatchNorm and leaves the conv right before a Slice
    # that causal folds), so with more than one fold they run again until a round rewrites nothing: a second
    # run then changes nothing. Each repeat's rewrites are merged into the first round's records.
    folds = [n for n in names if n in FOLD_ORDER]
    for _ in range(MAX_FOLD_ROUNDS if len(folds) > 1 else 0):
        start = len(ctx.records)
        for name in folds:  # not announced to `on_pass`: progress counts the passes named, once each
            ctx.refresh_shapes()
            REGISTRY[name]().run(ctx)
        if not _merge_round(ctx.records, start):
            break
    return RewriteResult(model, ctx.records, ctx.counters, names)


MAX_FOLD_ROUNDS = 3  # repeats after the first round; each must rewrite something to go on


def _merge_round(records: list[Record], start: int) -> bool:
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
