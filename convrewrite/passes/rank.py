"""Change the rank of convolutions by one unit spatial axis, region by region.

Passes (all exact by construction; see conv-semantics.md "1D -> 2D" and "2D -> 1D"):

- `to-2d`: lift every 1D Conv/ConvTranspose/QLinearConv/ConvInteger (and QDQ
  convs) to 2D. `layout="h"` gives `[N, C, 1, L]`, `layout="w"` `[N, C, L, 1]`.
- `to-3d`: lift every 2D convolution to 3D (`h`: `[N, C, 1, H, W]`, `w`: `[N, C, H, W, 1]`).
- `to-1d`: lower every 2D convolution with a unit spatial axis (known from
  static shapes, or from the Unsqueeze that makes it) to 1D, removing the
  Unsqueeze/Transpose/Squeeze wrappers exporters put around it (tf2onnx's
  Keras Conv1D form included) and folding their per-channel bias Add into
  the conv (after the Squeeze, or before it as tf_keras DepthwiseConv1D writes it).
- `3d-to-2d`: lower every 3D convolution with a unit spatial axis to 2D by the same rules.
  For the lowering passes `layout` only breaks ties (a 1x1 conv on `[N, C, 1, 1]`):
  `h` drops the first unit spatial axis, `w` the last.
- `channels-as-spatial` / `spatial-as-channels` (channels_spatial.py): the Keras
  equivalence between a Conv1D and a one-channel Conv2D whose kernel spans C.

Each pass works on regions, not single convs (see passes/reshapes/): a 1D network of
convs, activations, norms, residual adds and pools gets one Unsqueeze per
tensor entering it and one Squeeze per tensor leaving it.

Every convolution in the model gets one record per pass: `rewritten` with the
attributes before and after, or `skipped` with the reason (for a lifting pass,
convolutions already of the target rank are recorded as "already 2D").
"""

from __future__ import annotations

import re

import gc
from dataclasses import dataclass

from onnx import NodeProto

from ..conv import WEIGHT_INPUT, ConvAttrs
from ..errors import ConvRewriteError
from ..graph import GraphView, drop_value_info, node_labels
from ..engine import ASSUME_FINITE, Conv, NotApplicable, Option, PassContext, Record, Rule, ViewRun, register, run_rule
from ..engine.tensor_map import entry as map_entry, squeeze, unsqueeze
from .keras_lowering import fold_bias_adds, remove_transposes
from .rank_kinds import rank_kinds
from .reshapes import MAXPOOL_NAN, Block, NodePlan, RegionEngine, Wait, edit_spatial_attrs, unit_proven

DATA_INPUT = 0
FORCE = Option("force", bool, False, "fold a Keras bias Add past its error bound")  # separable declares it too
LAYOUT = Option("layout", str, "h", "where lifting puts the unit axis: h = [N,C,1,L], w = [N,C,L,1]", ("h", "w"))
# Per-region layouts (`--layout auto` region by region): record key -> "h", "w" or "keep" (left at its rank).
# A conv not named gets `layout`; a region whose convs disagree lifts none of them (see `LiftPass.fill`).
LAYOUTS = Option("layouts", dict, None, "lifting passes: per-conv layout by record key (h, w or keep); others use layout")
LAYOUT_VALUES = ("h", "w", "keep")


@dataclass
class Candidate:
    """A convolution a pass considers, with what it needs to rewrite it."""

    node: NodeProto
    label: str
    attrs: ConvAttrs
    after: ConvAttrs | None = None
    layout: str = ""  # lifting: "h", "w" or "keep" (from `layouts`, else `layout`)


_NOT_UNIT = re.compile(r"(spatial axis \d+ has size \d+, not 1(; spatial axis \d+ has size -?\d+, not 1)*$"
                       r"|kernel is \d+ on spatial axis \d+, not 1)")


class RankPass(Rule):
    """What the four rank passes share: candidates, records, the region engine.

    The driver hands over each convolution of the source rank (`match` makes
    it a candidate); the region engine then decides, for all candidates of a
    graph body at once, which can change rank, and `end` records them.
    """

    name = ""
    description = ""
    lift = True
    source_rank = 1  # spatial rank of the convolutions this pass rewrites
    options = (LAYOUT, LAYOUTS, ASSUME_FINITE, FORCE)

    def not_applicable(self, reason: str) -> bool:
        """Another rank, or an axis that is plainly not a unit axis: nothing for this pass to do."""
        return reason.startswith("already ") or " rewrites " in reason or bool(_NOT_UNIT.match(reason))

    @property
    def target_rank(self) -> int:
        return self.source_rank + (1 if self.lift else -1)

    def run(self, ctx: PassContext) -> None:
        # The fill and rewrite allocate many small objects and free none of them in
        # cycles: the cyclic GC would only rescan them, more often as the graph grows.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            run_rule(ctx, self)
        finally:
            if was_enabled:
                gc.enable()

    def begin(self, run: ViewRun) -> None:
        run.state = {}  # id(node) -> Candidate, in visiting order

    def check_conv(self, run: ViewRun, conv: Conv) -> None:
        if conv.attrs.rank != self.source_rank:
            raise NotApplicable(self.wrong_rank_reason(conv.attrs.rank))
        ambiguous = conv.attrs.ambiguous_output_reason()
        if ambiguous:
            raise NotApplicable(ambiguous)

    def match(self, run: ViewRun, conv: Conv) -> Candidate:
        return Candidate(conv.node, conv.label, conv.attrs)

    def explain(self, run: ViewRun, conv: Conv, cand: Candidate) -> str:
        return f"candidate: {self.name} if its whole region can change rank (decided per graph body)"

    def rewrite(self, run: ViewRun, conv: Conv, cand: Candidate) -> None:
        run.state[id(conv.node)] = cand  # decided for the whole body at once, in `end`, which records it
        return None

    def end(self, run: ViewRun) -> None:
        ctx, view, candidates = run.ctx, run.view, run.state
        if not candidates:
            return
        small_rank = (self.source_rank if self.lift else self.target_rank) + 2
        engine = RegionEngine(view, self.lift, small_rank, self.conv_rule(candidates), ctx.count)
        engine.assume_finite = bool(ctx.options.assume_finite)
        reasons = self.fill(ctx, view, engine, candidates)
        transposes = [p.node for p in engine.plans.values() if p.node.op_type == "Transpose"]
        outputs_before = {id(p.node): list(p.node.output) for p in engine.plans.values()}
        regions = region_of(engine, candidates) if self.lift else {}
        engine.rewrite()
        rewritten: dict[str, Record] = {}  # by label: tidy adds what it did next to each conv
        labels = node_labels(view) if any(r == MAXPOOL_NAN for r in engine.blocked.values()) else {}
        kept = sorted(labels[id(n)] for n in view.nodes if engine.blocked.get(id(n)) == MAXPOOL_NAN)
        for cand in candidates.values():
            plan = engine.plans.get(id(cand.node))
            if plan is None:
                reason = reasons.get(id(cand.node)) or engine.blocked.get(id(cand.node)) or "not reached"
                run.record(cand.node, "skipped", reason, before=cand.attrs.to_dict())
                continue
            details = {"unit_axis": plan.data.get(DATA_INPUT, plan.outs.get(0)), "weight": engine.weight_notes.get(id(cand.node), "")}
            if self.lift:
                details["layout"] = cand.layout or ctx.options.layout
                details["region"], details["region_convs"] = regions[id(cand.node)]
            if kept:
                details["finite_math_left"] = f"{MAXPOOL_NAN}: {', '.join(kept)}"
            rewritten[cand.label] = run.record(cand.node, "rewritten", before=cand.attrs.to_dict(),
                                               after=cand.after.to_dict(), details=details, tensor_map=[])
        transpose_outputs = [t.output[0] for t in transposes]
        entries = self.region_map(engine, outputs_before)
        view.commit()
        drop_value_info(view, engine.dropped_value_info)
        if not self.lift:
            self.tidy(ctx, view, engine.cancelled_exits, transpose_outputs, rewritten, entries)
        self.attach_map(view, candidates, rewritten, entries)

    def region_map(self, engine: RegionEngine, outputs_before: dict[int, list[str]]) -> list[tuple[int, dict]]:
        """(producer id, entry) for every tensor the region changed in rank: its new name and the unit axis to undo."""
        out = []
        for plan in engine.plans.values():
            old = outputs_before.get(id(plan.node), [])
            for slot, a in plan.outs.items():
                if slot < len(old) and old[slot] and slot < len(plan.node.output):
                    undo = squeeze([a]) if self.lift else unsqueeze([a])
                    out.append((id(plan.node), map_entry(old[slot], plan.node.output[slot], [undo])))
        return out

    def attach_map(self, view: GraphView, candidates: dict[int, Candidate], rewritten: dict[str, Record],
                   entries: list[tuple[int, dict]]) -> None:
        """Each conv's record maps its own outputs; the region's other tensors go with the body's first record."""
        live = {o for n in view.nodes for o in n.output if o} | set(view.input_set)
        by_node: dict[int, Record] = {id(c.node): rewritten[c.label] for c in candidates.values() if c.label in rewritten}
        first = next(iter(rewritten.values()), None)
        for producer, e in entries:
            record = by_node.get(producer, first)
            if record is None:
                continue
            if e["rewritten"] in live:
                record.tensor_map.append(e)
            else:
                record.tensors_gone.append(e["original"])

    # --------------------------------------------------------- hooks

    def wrong_rank_reason(self, rank: int) -> str:
        if rank == self.target_rank:
            return f"already {rank}D"
        return f"{rank}D convolution; {self.name} rewrites {self.source_rank}D"

    def fill(self, ctx: PassContext, view: GraphView, engine: RegionEngine, candidates: dict[int, Candidate]) -> dict[int, str]:
        raise NotImplementedError

    def tidy(self, ctx: PassContext, view: GraphView, cancelled: list[str], transposes: list[str],
             rewritten: dict[str, Record], entries: list[tuple[int, dict]]) -> None:
        pass

    def conv_rule(self, candidates: dict[int, Candidate]):
        lift = self.lift

        def rule(engine: RegionEngine, node: NodeProto, side: str, slot: int, a: int, pull: bool):
            cand = candidates.get(id(node))
            if cand is None:
                return Block(f"{node.op_type} is not a candidate of this pass")
            if side != "in" or slot != DATA_INPUT:
                return Block("convolution reached through its weight or output")
            j = a - 2
            if lift and cand.layout == "keep":
                return Block(KEPT)
            if lift and cand.layout and lift_axis(cand.layout, self.source_rank) != a:
                return Block(f"its layout {cand.layout} differs from its region's (per-region layouts)")
            if lift:
                after = cand.attrs.with_axis(j)
            else:
                reason = cand.attrs.droppable_axis_reason(j)
                if reason:
                    return Block(reason)
                after = cand.attrs.without_axis(j)
            plan = NodePlan(node)
            result = engine.operand(node, DATA_INPUT, a, plan, enter=True, rank=engine.old_rank)
            if result is not None:
                return result if not isinstance(result, Wait) else Block(f"input is not known to be 1 on axis {a}")
            plan.outs[0] = a
            plan.weights[WEIGHT_INPUT[node.op_type]] = a
            cand.after = after

            def edit(_engine: RegionEngine) -> None:
                edit_spatial_attrs(node, j, lift, cand.attrs.rank)

            plan.edit = edit
            return plan

        return rule


KEPT = "kept at its rank: its region's layout is keep (per-region layouts)"


def lift_axis(layout: str, source_rank: int) -> int:
    """The unit axis (index in the lifted form) a layout puts first (h) or last (w)."""
    return 2 + (0 if layout == "h" else source_rank)


def region_of(engine: RegionEngine, candidates: dict[int, Candidate]) -> dict[int, tuple[int, list[str]]]:
    """id(conv) -> (region number, labels of its convs): the planned nodes joined by the tensors they share.

    Two convs are in one region when a chain of region tensors (entries
    included: one wrapper serves all readers) links them; regions apart can
    take different layouts. Numbered by their first conv, in visiting order.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for plan in engine.plans.values():
        node = plan.node
        names = [node.input[i] for i in plan.data] + [node.output[i] for i in plan.outs if node.output[i]]
        names.append(f"node:{id(node)}")
        for name in names[1:]:
            parent[find(name)] = find(names[0])
    groups: dict[str, list[Candidate]] = {}
    for cand in candidates.values():
        if id(cand.node) in engine.plans:
            groups.setdefault(find(f"node:{id(cand.node)}"), []).append(cand)
    out: dict[int, tuple[int, list[str]]] = {}
    for n, members in enumerate(groups.values()):
        labels = [c.label for c in members]
        for c in members:
            out[id(c.node)] = (n, labels)
    return out


class LiftPass(RankPass):
    lift = True

    def fill(self, ctx, view, engine, candidates):
        chosen = ctx.options.layouts or {}
        bad = sorted(str(v) for v in chosen.values() if v not in LAYOUT_VALUES)
        if bad:
            raise ConvRewriteError(f"option layouts: {bad[0]!r} is not one of {', '.join(LAYOUT_VALUES)}")
        for cand in candidates.values():
            cand.layout = chosen.get(f"{self.name}:{view.path}:{cand.label}", ctx.options.layout)
        reasons = {}
        for cand in candidates.values():
            if cand.layout == "keep":
                reasons[id(cand.node)] = KEPT
                continue
            result = engine.seed(cand.node, lift_axis(cand.layout, self.source_rank))
            if isinstance(result, (Block, Wait)):
                reasons[id(cand.node)] = getattr(result, "reason", "input not ready")
        engine.settle()
        return reasons


class LowerPass(RankPass):
    lift = False
    kinds = ("unit-axis", "wrapped-1d")

    def kinds_found(self, run: ViewRun, node: NodeProto, conv: Conv | None, cand):
        return rank_kinds(run.view, node, conv, cand, self.source_rank)

    def fill(self, ctx, view, engine, candidates):
        big_rank = self.source_rank + 2
        reasons: dict[int, str] = {}
        choices: list[tuple[Candidate, list[int]]] = []
        for cand in candidates.values():
            valid, why = [], []
            x = cand.node.input[DATA_INPUT]
            for j in range(self.source_rank):
                reason = self.unit_reason(view, x, j, big_rank) or cand.attrs.droppable_axis_reason(j)
                if reason:
                    why.append(reason)
                else:
                    valid.append(j)
            if not valid:
                reasons[id(cand.node)] = "; ".join(why)
                continue
            if ctx.options.layout == "w":
                valid.reverse()
            choices.append((cand, valid))
        # Unambiguous convs first: their regions then decide the axis of 1x1 convs they reach.
        choices.sort(key=lambda cv: len(cv[1]) > 1)
        for cand, valid in choices:
            result = None
            for j in valid:
                result = engine.seed(cand.node, 2 + j)
                if isinstance(result, NodePlan):
                    break
            if not isinstance(result, NodePlan):
                reasons[id(cand.node)] = getattr(result, "reason", "input is not known to be 1")
        engine.settle()
        return reasons

    @staticmethod
    def unit_reason(view: GraphView, x: str, j: int, big_rank: int) -> str:
        if unit_proven(view, x, 2 + j, big_rank):
            return ""
        s = view.shape(x)
        size = s.static(2 + j) if s is not None and s.rank == big_rank else None
        if size is not None:
            return f"spatial axis {j} has size {size}, not 1"
        return f"spatial axis {j} has a size not known to be 1"

    def tidy(self, ctx, view, cancelled, transposes, rewritten, entries):
        removed = remove_transposes(view, transposes)
        if removed:
            ctx.count("transposes_removed", removed)
        view.commit()
        folds = fold_bias_adds(view, cancelled, force=bool(ctx.options.force))
        folded = sum(f.folded for f in folds)
        if folded:
            ctx.count("bias_adds_folded", folded)
        self.map_bias_folds(folds, entries, rewritten)
        forced = sum(f.forced for f in folds)
        if forced:
            ctx.count("folds_forced_past_bound", forced)
        labels = node_labels(view) if folds else {}  # convs keep their labels: none is added or removed
        for fold in folds:
            record = rewritten.get(labels.get(id(fold.conv), ""))
            if record is not None:
                notes = [record.details["bias_add"]] if "bias_add" in record.details else []
                record.details["bias_add"] = "; ".join(notes + [fold.note])


    @staticmethod
    def map_bias_folds(folds, entries: list[tuple[int, dict]], rewritten: dict[str, Record]) -> None:
        """A folded bias Add: the tensors from the conv to it now hold the sum (gone), its output moved."""
        for fold in folds:
            if not fold.folded:
                continue
            added, carrier = fold.moved
            hit = False
            for producer, e in entries:
                if e["rewritten"] == added:
                    e["rewritten"], hit = carrier, True
                elif e["rewritten"] in fold.changed:
                    e["rewritten"] = None  # gone: attach_map lists it so
            if not hit and added != carrier:
                entries.append((id(fold.conv), map_entry(added, carrier)))


@register
class To2D(LiftPass):
    name = "to-2d"
    phase = "lift"
    order = 10
    description = "Lift 1D convolutions (and the regions around them) to 2D; layout h: [N,C,1,L], w: [N,C,L,1]."
    source_rank = 1


@register
class To3D(LiftPass):
    name = "to-3d"
    phase = "lift"
    order = 20
    description = "Lift 2D convolutions (and the regions around them) to 3D; layout h: [N,C,1,H,W], w: [N,C,H,W,1]."
    source_rank = 2


@register
class To1D(LowerPass):
    name = "to-1d"
    phase = "lower"
    order = 10
    description = "Lower 2D convolutions with a unit spatial axis to 1D, removing exporter Unsqueeze/Transpose/Squeeze wrappers."
    source_rank = 2


@register
class ThreeDTo2D(LowerPass):
    name = "3d-to-2d"
    phase = "lower"
    order = 20
    description = "Lower 3D convolutions with a unit spatial axis to 2D."
    source_rank = 3

