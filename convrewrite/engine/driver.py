"""The one driver: every rule's loop over the convolutions of every graph body.

A rule says only what is specific to it (`match`, then `rewrite`); the driver
owns the rest, the same way for every rule: stable labels for unnamed nodes,
selection (`only`, for bisect), reading the convolution (one `read_conv`, with
the one weight-shape fallback), turning a `NotApplicable` into a skip record
and a `Rewritten` into a rewrite record, committing each graph body's edits,
and the cleanup after it (dead operand nodes, unread initializers, stale
value_info).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Sequence

import onnx
from onnx import NodeProto

from ..conv import CONV_OPS, WEIGHT_INPUT, ConvAttrError, ConvAttrs
from ..graph import Cleanup, GraphView, node_labels
from ..graph.cleanup import drop_unread_initializers
from .options import Option
from .records import Record
from ..refusal import Refusal
from .tensor_map import entry as map_entry

STD_DOMAINS = ("", "ai.onnx")


class NotApplicable(Refusal):
    """The one way a rule says no: the reason in words, the nodes it concerns, and what to keep in the record.

    `with_before=False` leaves the conv's attributes out of the skip record
    (for reasons about the node itself rather than its attributes).
    """

    def __init__(self, reason: str, nodes: Sequence[NodeProto] = (), details: dict[str, Any] | None = None,
                 with_before: bool = True) -> None:
        # Kept in `args` only (no instance dict): rules raise this once per convolution they decline.
        self.args = (reason, nodes, details, with_before)

    @property
    def details(self) -> dict[str, Any]:
        return self.args[2] if self.args[2] is not None else {}

    @property
    def with_before(self) -> bool:
        return self.args[3]


@dataclass
class Rewritten:
    """What a rule's `rewrite` did: the attributes after it, a note, details for the record."""

    after: ConvAttrs | dict[str, Any] | None = None
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None  # when the rule changed what `before` should say (rare)
    # Where the tensors went (engine/tensor_map.py). None: the conv's output now carries the value of the tensor
    # of the same name in the pass's input (what an exact fold leaves); rules that rename or reshape say so.
    tensor_map: list[dict[str, Any]] | None = None
    tensors_gone: list[str] = field(default_factory=list)  # input tensors folded away or changed in value


@dataclass(slots=True)
class Conv:
    """One convolution as the driver read it: node, label, attributes, weight shape and element type."""

    node: NodeProto
    label: str
    attrs: ConvAttrs
    weight_shape: list[Any] | None
    weight_type: int | None
    weight_static: bool = False  # every weight dim is a known int


def weight_of(view: GraphView, node: NodeProto) -> tuple[list[Any] | None, int | None, bool]:
    """The conv weight's (dims, element type, every dim a known int): the one place a weight's shape is read.

    From shape inference, else (the one fallback, e.g. a Constant node inside a function body) from its
    constant value. Runs once per convolution per rule: kept flat.
    """
    slot = WEIGHT_INPUT[node.op_type]
    name = node.input[slot] if len(node.input) > slot else ""
    dims, elem_type, static = None, None, False
    if name:
        s = view.shape(name)
        if s is not None:
            elem_type = s.elem_type
            if s.dims is not None:
                dims, static = list(s.dims), True
                for d in dims:
                    if d.__class__ is not int:
                        static = False
                        break
        if not static:
            value = view.const_value(name)
            if value is not None:
                dims, elem_type, static = list(value.shape), onnx.helper.np_dtype_to_tensor_dtype(value.dtype), True
    return dims, elem_type, static


def read_conv(view: GraphView, node: NodeProto, label: str) -> Conv:
    """The convolution's normalized attributes and weight shape (`weight_of`), or NotApplicable saying why
    they cannot be read."""
    dims, elem_type, static = weight_of(view, node)
    try:
        attrs = ConvAttrs.from_node(node, dims)
    except ConvAttrError as exc:
        raise NotApplicable(f"attributes cannot be read: {exc}", [node], with_before=False) from None
    return Conv(node, label, attrs, dims, elem_type, static)


class ViewRun:
    """One rule on one graph body: the view, labels, records, and what the cleanup must look at."""

    def __init__(self, ctx, view: GraphView, rule: "Rule", outer: dict | None = None) -> None:
        self.ctx = ctx
        self.view = view
        self.rule = rule
        self.labels = node_labels(view)
        self.claimed: set[int] = set()
        self.records = ctx.records
        # Rules that add no conv-only conditions skip the call (this loop runs once per convolution).
        self.check_conv = rule.check_conv if type(rule).check_conv is not Rule.check_conv else None
        self.cleanup = Cleanup(view, outer)
        self.state: Any = None  # the rule's own per-body state, set by `begin`
        self.found: Callable[["ViewRun", NodeProto, Conv | None, Any], None] | None = None  # dry runs for `inspect`

    @property
    def options(self):
        return self.ctx.options

    def label(self, node: NodeProto) -> str:
        return self.labels[id(node)]

    def claim(self, node: NodeProto) -> None:
        """Another conv this rewrite took care of (and recorded): the driver will not visit it."""
        self.claimed.add(id(node))

    def record(self, node: NodeProto, status: str, reason: str = "", before: dict | None = None,
               after: dict | None = None, details: dict | None = None, tensor_map: list[dict] | None = None,
               tensors_gone: list[str] | None = None) -> Record:
        """Record one candidate; a rewrite without `tensor_map` maps the conv's output to itself (see Rewritten)."""
        details = dict(details) if details is not None else {}
        if status == "skipped" and self.rule.not_applicable(reason):
            details["not_applicable"] = True
        record = Record(self.rule.name, self.labels[id(node)], node.op_type, self.view.path, status, reason, before,
                        after, details)
        if status == "rewritten":
            if tensor_map is None:
                tensor_map = [] if self.view.is_removed(node) else [map_entry(o, o) for o in node.output[:1] if o]
            record.tensor_map = list(tensor_map)
            record.tensors_gone = list(tensors_gone or [])
        self.records.append(record)
        return record

    def count(self, name: str, n: int = 1) -> None:
        self.ctx.count(name, n)

    def visit(self, node: NodeProto, dry: bool = False) -> None:
        """Read, select, match, rewrite one convolution; exactly one record either way.

        `dry`: match only, and record "matches" (with the rule's `explain`) instead of rewriting (inspect);
        with `self.found` set, hand it what the match found (or the NotApplicable) instead of recording.
        """
        rule, label = self.rule, self.labels[id(node)]
        conv: Conv | None = None
        try:
            conv = read_conv(self.view, node, label)
            if self.check_conv is not None:
                self.check_conv(self, conv)
            if self.ctx.only is not None and not self.ctx.allowed(rule.name, self.view.path, label):
                raise NotApplicable("excluded by selection")
            match = rule.match(self, conv)
            if isinstance(match, Refusal):  # returned, not raised: the same answer, no unwinding
                no = match
            elif dry:
                if self.found is not None:
                    self.found(self, node, conv, match)
                    return
                self.record(node, "matches", rule.explain(self, conv, match), before=conv.attrs.to_dict())
                return
            else:
                no = None
                done = rule.rewrite(self, conv, match)
        except Refusal as raised:  # NotApplicable, or a helper's refusal no one caught
            # Recorded here, not kept: a caught exception held past its block is a reference cycle
            # (exception -> traceback -> this frame), left for the GC, which the rank passes turn off.
            self._skip(node, conv, raised)
            return
        if no is not None:
            self._skip(node, conv, no)
            return
        if done is None:  # the rule recorded it itself
            return
        before = done.before if done.before is not None else conv.attrs.to_dict()
        after = done.after.to_dict() if isinstance(done.after, ConvAttrs) else done.after
        self.record(node, "rewritten", done.reason, before=before, after=after, details=done.details,
                    tensor_map=done.tensor_map, tensors_gone=done.tensors_gone)

    def _skip(self, node: NodeProto, conv: Conv | None, no: Refusal) -> None:
        if self.found is not None:
            self.found(self, node, conv, no)
            return
        before = conv.attrs.to_dict() if conv is not None and no.with_before else None
        self.record(node, "skipped", no.reason, before=before, details=no.details)


class Rule:
    """A rewrite rule: what it declares, and `match` / `rewrite` for one convolution.

    Declarations (class attributes): `name`; `description` (help text);
    `phase` (lower, fold, lift or extra); `order` within the phase; `options`
    (the typed options it reads from `run.options`); `repeat` (run again with
    the other repeating rules until a round rewrites nothing); `ops` (which
    convolution op types it visits).

    `match` finds the pattern and checks every condition that makes the
    rewrite exact, without changing the graph: it returns whatever `rewrite`
    needs, or raises `NotApplicable(reason)`. `rewrite` edits the graph
    through the view and returns `Rewritten`. Both may raise NotApplicable;
    `rewrite` only before it changes anything. `match` may also return the
    NotApplicable instead of raising it (cheaper where most convs are declined).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    phase: ClassVar[str] = "extra"
    order: ClassVar[int] = 100
    options: ClassVar[tuple[Option, ...]] = ()
    repeat: ClassVar[bool] = False
    ops: ClassVar[tuple[str, ...]] = CONV_OPS
    counters: ClassVar[tuple[str, ...]] = ()  # reported as 0 when nothing happened
    no_match: ClassVar[tuple[str, ...]] = ()  # skip reasons that mean "the pattern is not there" (prefixes)
    kinds: ClassVar[tuple[str, ...]] = ()  # the `inspect` kinds this rule's match answers for (`kinds_found`)

    def not_applicable(self, reason: str) -> bool:
        """Whether a skip only says the pattern is absent (summaries show those with -v only)."""
        return bool(self.no_match) and reason.startswith(self.no_match)

    def run(self, ctx) -> None:
        """Run the rule on every graph body of the context's model (the driver loop)."""
        run_rule(ctx, self)

    def begin(self, run: ViewRun) -> None:
        """Per graph body, before its first convolution (set `run.state`)."""

    def check_conv(self, run: ViewRun, conv: Conv) -> None:
        """Conditions on the conv alone, checked before selection (raise NotApplicable)."""

    def match(self, run: ViewRun, conv: Conv) -> Any:
        raise NotImplementedError

    def rewrite(self, run: ViewRun, conv: Conv, match: Any) -> Rewritten | None:
        raise NotImplementedError

    def explain(self, run: ViewRun, conv: Conv, match: Any) -> str:
        """What the rewrite would do, in words, given what `match` found (shown by `inspect -v`)."""
        return "would rewrite"

    def end(self, run: ViewRun) -> None:
        """Per graph body, after its last convolution (before the cleanup and the commit)."""

    def kinds_found(self, run: ViewRun, node: NodeProto, conv: Conv | None,
                    match: Any) -> Iterable[tuple[NodeProto, str, str]]:
        """The `inspect` kinds (declared in `kinds`) that `match` found, a match or a NotApplicable:
        `(node, kind, reason)`, the reason empty when the rule would rewrite it, else why it refuses."""
        return ()


def convolutions(view: GraphView, ops: Sequence[str] = CONV_OPS) -> list[NodeProto]:
    """The convolutions of one graph body a rule visits (standard domain only)."""
    return [n for n in view.nodes if n.op_type in ops and n.domain in STD_DOMAINS]


def run_rule(ctx, rule: Rule, dry: bool = False, found: Callable | None = None) -> None:
    """The driver loop: every graph body, every convolution, one record each, then cleanup and commit.

    `dry`: only match, never rewrite (what `inspect` asks each rule); nothing is edited.
    `found` (dry only): called with (run, node, conv, match or NotApplicable) instead of recording.
    """
    for counter in rule.counters:
        ctx.count(counter, 0)
    outer: dict = {}
    for view in ctx.views():
        convs = convolutions(view, rule.ops)
        if not convs:
            continue
        run = ViewRun(ctx, view, rule, outer)
        run.found = found if dry else None
        rule.begin(run)
        for node in convs:
            if id(node) in run.claimed or view.is_removed(node):
                continue
            run.visit(node, dry)
        if not dry:
            rule.end(run)
            run.cleanup.run()
        run.state = None  # a rule's state may point back at the run: leave no cycle for the (maybe disabled) GC
    for body, names in outer.values():
        drop_unread_initializers(body, names)


def rule_kinds(ctx, rule: Rule) -> dict[tuple[str, str], dict[str, str]]:
    """What `inspect` calls each conv, by this rule's own match (a dry run: nothing is rewritten).

    Per (graph, conv label): {kind: "" where the rule would rewrite it, else the reason it refuses}.
    """
    out: dict[tuple[str, str], dict[str, str]] = {}

    def found(run: ViewRun, node: NodeProto, conv: Conv | None, match: Any) -> None:
        for other, kind, reason in rule.kinds_found(run, node, conv, match):
            slot = out.setdefault((run.view.path, run.label(other)), {})
            if slot.get(kind, reason) or kind not in slot:  # a rewrite found anywhere wins over a refusal
                slot[kind] = reason

    run_rule(ctx, rule, dry=True, found=found)
    return out
