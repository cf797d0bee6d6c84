"""causal: fold padding into its convolution.

Causal convolutions reach ONNX as a zero `Pad` before the conv (TorchScript
`F.pad`, Keras `padding="causal"`), as a `Slice` after it that drops the
outputs the symmetric padding made (the TCN "chomp"), or as a trimmed
`ConvTranspose`. Each extra op costs a memory pass and breaks NPU fusions;
one Conv with explicit pads (`[d*(k-1), 0]` on the time axis) says the same
thing. This pass, for every convolution:

1. turns `auto_pad` into explicit pads when they do not depend on a dynamic
   size (this also makes `SAME_*` + dilation runnable on onnxruntime);
2. folds a zero constant `Pad` (directly before the conv, or behind
   `Unsqueeze`/`Transpose`/`Identity` wrappers, NWC layouts included) into the
   conv's pads;
3. folds a step-1 `Slice` of the conv's output on spatial axes into the pads
   (a conv loses begin/end padding, a ConvTranspose crops more);
4. optionally (`causal_target="CausalConvWithState"`) replaces
   `Concat(state, x) -> depthwise Conv -> Slice(new state)` with opset 27's
   `CausalConvWithState`.

Quantized convs (`quantized.py`): ConvInteger and QLinearConv pad with their
input zero point, so a Pad folds when its fill equals it; quantize_dynamic's
`Pad -> DynamicQuantizeLinear -> ConvInteger` folds under `assume_finite`;
QDQ's `Pad -> QuantizeLinear -> DequantizeLinear -> Conv` folds; a Slice after
a ConvInteger's dequantizing `Cast -> Mul -> Add` (or a QDQ Conv's Q -> DQ)
folds too, the tail kept.

Every rewrite is exact; whatever cannot be proven so is left alone with the
reason in its record. Every convolution gets exactly one record."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import numpy as np
import onnx
from onnx import NodeProto, helper

from ...conv import ConvAttrs
from ...graph import INT64_MAX, attr, axes_back, slice_kept_range, slice_operands, walk_up
from ...engine import ASSUME_FINITE, Conv, NotApplicable, Option, Refusal, Rewritten, Rule, ViewRun, register
from ...symbolic import (
    SYMBOLIC_DEPTH, Affine, NotAffine, output_affine, shape_symbols, static_operands, symbolic,
)
from .operands import (
    MAX_WRAPPERS, STD_DOMAINS, WRAPPERS, check_exclusive, describe, fold_axis, pad_amounts,
    pad_value, set_ints, unresolvable_reason,
)
from .quantized import (
    DQL_DONE, QDQ_EXACT, QUANTIZED_CONVS, check_fill, check_qdq, check_quantizer, dequantizing_tail, qdq_behind,
    quantizer_behind,
)
from .kinds import causal_kinds
from .state import STATE_OP, STATE_OPSET, exclusive_nodes, has_schema, state_match, state_runtime_note


PASS = "causal"


@register
class CausalPass(Rule):
    name = PASS
    no_match = ("no Pad before or Slice after it",)
    phase = "fold"
    order = 10
    repeat = True
    options = (Option("causal_target", str, None, "also fold streaming Concat->Conv->Slice into this op (opset 27)",
                      (STATE_OP,)), ASSUME_FINITE)
    description = (
        "fold a zero Pad before a conv and a Slice after it (TCN chomp, trimmed ConvTranspose) into the "
        "conv's pads; make auto_pad explicit where static"
    )

    def begin(self, run: ViewRun) -> None:
        run.state = _ViewFolder(run)

    def match(self, run: ViewRun, conv: Conv) -> "_Plan | NotApplicable":
        return run.state.plan(conv.node, conv.attrs)

    def rewrite(self, run: ViewRun, conv: Conv, plan: "_Plan") -> Rewritten:
        return run.state.apply(conv.node, conv.attrs, plan)

    kinds = ("causal", "pad-fed", "sliced")

    def kinds_found(self, run: ViewRun, node: NodeProto, conv: Conv | None, plan):
        return causal_kinds(node, conv, plan)

    def explain(self, run: ViewRun, conv: Conv, plan: "_Plan") -> str:
        if plan.state is not None:
            return f"Concat + {conv.node.op_type} + Slice would become {STATE_OP}"
        return "; ".join(plan.done + [f"not: {s}" for s in plan.skipped])


@dataclass(slots=True)
class _Plan:
    """What will be done to one conv: new attributes and the graph edits that go with them."""

    attrs: ConvAttrs
    source: str  # the conv's data input as the graph had it (its static sizes are known)
    spatial: list[int | None] | None = None  # sizes at the conv's data input, computed when first needed
    pad_shift: list[int] | None = None  # what a folded Pad took away from those sizes
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    pads: "list[_PadFold]" = field(default_factory=list)  # nearest to the conv first
    slices: "list[_SliceFold]" = field(default_factory=list)  # nearest to the conv first
    state: tuple | None = None  # (concat, state, x, slice): the CausalConvWithState rewrite instead


@dataclass
class _PadFold:
    pad: NodeProto
    first_reader: NodeProto  # the node that read the Pad's output (a wrapper or the conv)
    wrappers: list[NodeProto]


@dataclass
class _SliceFold:
    slice: NodeProto
    operand_nodes: list[NodeProto]  # run-time end computation that dies with the Slice
    tail: list[NodeProto] = field(default_factory=list)  # a ConvInteger's dequantizing ops the Slice moves above


class _ViewFolder:
    """Plans and applies the folds of one graph body's convolutions (the driver loops and records)."""

    def __init__(self, run: ViewRun) -> None:
        self.ctx = run.ctx
        self.view = run.view
        self.cleanup = run.cleanup
        self.stale_value_info = run.cleanup.stale
        self.labels = run.labels
        self.amounts_cache: dict[tuple, tuple] = {}

    # ------------------------------------------------------------ one conv

    def plan(self, conv: NodeProto, attrs: ConvAttrs) -> _Plan | NotApplicable:
        """What folding this conv takes, without changing the graph; NotApplicable when nothing can be done."""
        plan = _Plan(attrs, conv.input[0])
        if self.ctx.options.causal_target == STATE_OP:
            plan.state = self._state_plan(conv, attrs, plan)
            if plan.state is not None:
                return plan
        self._resolve_auto_pad(attrs, plan)
        self._plan_pad(conv, plan)
        self._plan_slice(conv, plan)
        if not plan.done:
            return NotApplicable("; ".join(plan.skipped) or "no Pad before or Slice after it", [conv],
                                 details=plan.details)
        return plan

    def apply(self, conv: NodeProto, before: ConvAttrs, plan: _Plan) -> Rewritten:
        if plan.state is not None:
            return self._apply_state(conv, before, plan.state)
        self._apply(conv, before, plan)
        if plan.skipped:
            plan.details["not_done"] = list(plan.skipped)
        # The wrappers between a folded Pad and the conv stay, on the unpadded tensor: their outputs changed.
        gone = [w.output[0] for fold in plan.pads for w in fold.wrappers]
        return Rewritten(plan.attrs, "; ".join(plan.done), plan.details, tensors_gone=gone)

    def _sizes(self, plan: _Plan) -> list[int | None]:
        """Static spatial sizes at the conv's data input (after a planned Pad fold), None where dynamic."""
        if plan.spatial is None:
            rank = plan.attrs.rank
            shape = self.view.shape(plan.source)
            if shape is None or shape.dims is None or len(shape.dims) != rank + 2:
                sizes: list[int | None] = [None] * rank
            else:
                sizes = [shape.static(2 + j) for j in range(rank)]
            if plan.pad_shift is not None:
                sizes = [None if d is None else d - t for d, t in zip(sizes, plan.pad_shift)]
            plan.spatial = sizes
        return plan.spatial

    # ------------------------------------------------------------ auto_pad

    def _resolve_auto_pad(self, attrs: ConvAttrs, plan: _Plan) -> None:
        if attrs.auto_pad == "NOTSET":
            return
        if attrs.output_shape is not None:
            plan.skipped.append(
                f"auto_pad {attrs.auto_pad} kept: an explicit output_shape decides the pads, and the ONNX spec "
                "text and its reference implementation place them differently"
            )
            return
        resolved = attrs.resolved(self._sizes(plan))
        if resolved is None:
            plan.skipped.append(f"auto_pad {attrs.auto_pad} kept: {unresolvable_reason(attrs, self._sizes(plan))}")
            return
        plan.attrs = resolved
        plan.done.append(f"auto_pad {attrs.auto_pad} made explicit pads {list(resolved.pads)}")
        plan.details["auto_pad"] = attrs.auto_pad
        self.ctx.count("auto_pads_resolved")

    # ----------------------------------------------------------------- Pad

    def _plan_pad(self, conv: NodeProto, plan: _Plan) -> None:
        """Fold the Pads before the conv, nearest first (stacked Pads all go, so a second run has nothing left)."""
        view = self.view
        wrappers: list[NodeProto] = []  # every wrapper between the conv and the Pad looked at, conv side first
        name = conv.input[0]
        quantizer: list[NodeProto] = []  # DynamicQuantizeLinear, or DequantizeLinear + QuantizeLinear, passed
        while True:
            node, layout = walk_up(view, name, MAX_WRAPPERS - len(wrappers), WRAPPERS)
            wrappers.extend(reversed(layout))
            passed = ([node] if quantizer_behind(view, conv, node) else qdq_behind(view, conv, node)) \
                if not quantizer else None
            if passed:
                behind, _ = walk_up(view, passed[-1].input[0], MAX_WRAPPERS - len(wrappers) - 1, WRAPPERS)
                if behind is None or behind.op_type != "Pad" or behind.domain not in STD_DOMAINS:
                    return
                quantizer = passed
                wrappers.extend(passed)
                name = passed[-1].input[0]
                continue
            if node is None or node.op_type != "Pad" or node.domain not in STD_DOMAINS:
                return
            plan.details.setdefault("pad", []).append(self.labels.get(id(node), node.name or "Pad"))
            try:
                self._fold_pad(conv, node, wrappers, plan, quantizer)
            except Refusal as no:
                plan.skipped.append(no.reason)
                return
            name = node.input[0]

    def _fold_pad(self, conv: NodeProto, pad: NodeProto, wrappers: list[NodeProto], plan: _Plan,
                  quantizer: list[NodeProto]) -> None:
        """Check the Pad before `conv` and fill the plan when it folds; Refusal saying why not."""
        view, attrs = self.view, plan.attrs
        if attrs.transposed:
            raise Refusal("Pad before a ConvTranspose is not its pads "
                          "(padding a transposed conv's input is not cropping its output)", [pad])
        readers = list(reversed(wrappers)) + [conv]  # from the Pad towards the conv
        tensor, producer_op = pad.output[0], "Pad"
        for reader in readers:
            check_exclusive(view, tensor, producer_op)
            producer_op, tensor = reader.op_type, reader.output[0]
        mode = attr(pad, "mode", "constant")
        if mode != "constant":
            raise Refusal(f"Pad mode is {mode}", [pad])
        value = pad_value(view, pad)
        if len(quantizer) == 1:  # Pad(float) -> DynamicQuantizeLinear -> ConvInteger (see quantized.py)
            check_quantizer(conv, quantizer[0], pad, value, bool(self.ctx.options.assume_finite))
        elif quantizer:  # Pad -> QuantizeLinear -> DequantizeLinear -> Conv (QDQ)
            check_qdq(view, quantizer[0], quantizer[1], pad, value, attrs.rank + 2)
        elif conv.op_type in QUANTIZED_CONVS:  # a quantized conv pads with its input zero point
            check_fill(view, conv, pad, value)
        elif value != 0:
            raise Refusal(f"Pad value is {value}, not 0", [pad])
        layout = [w for w in wrappers if all(w is not q for q in quantizer)]  # elementwise: no axis moves
        axis_map, pad_rank = axes_back(view, layout, attrs.rank + 2, " between the Pad and the conv")
        amounts = self._pad_amounts(pad, pad_rank)
        begins, ends = [0] * attrs.rank, [0] * attrs.rank
        for pad_axis, (b, e) in enumerate(amounts):
            if not (b or e):
                continue
            if pad_axis not in axis_map:
                raise Refusal("cannot map the Pad's axes onto the conv's", [pad])
            conv_axis = axis_map.index(pad_axis)
            if conv_axis < 2:
                raise Refusal(f"Pad pads the {'batch' if conv_axis == 0 else 'channel'} axis", [pad])
            begins[conv_axis - 2], ends[conv_axis - 2] = b, e
        if attrs.auto_pad != "NOTSET":
            raise Refusal(f"{conv.op_type} keeps auto_pad {attrs.auto_pad} (its pads depend on a dynamic size), "
                          "so the Pad cannot join them", [pad])
        plan.attrs = replace(
            attrs,
            pads_begin=tuple(p + b for p, b in zip(attrs.pads_begin, begins)),
            pads_end=tuple(p + e for p, e in zip(attrs.pads_end, ends)),
        )
        shift = [b + e for b, e in zip(begins, ends)]
        if plan.spatial is not None:
            plan.spatial = [None if d is None else d - t for d, t in zip(plan.spatial, shift)]
        else:
            plan.pad_shift = shift if plan.pad_shift is None else [a + b for a, b in zip(plan.pad_shift, shift)]
        # Earlier folds leave readers[0] reading this Pad's output by the time this one is applied.
        plan.pads.append(_PadFold(pad, readers[0], list(wrappers)))
        plan.done.append(f"folded Pad {plan.details['pad'][-1]} ({describe(begins, ends)}) into the pads")
        if len(quantizer) == 1:
            plan.done.append(DQL_DONE)
            plan.details["finite_math"] = True
        elif quantizer:
            plan.details["qdq"] = QDQ_EXACT
        elif conv.op_type in QUANTIZED_CONVS:
            plan.details["integer"] = "exact for every input: the Pad fills with the conv's input zero point"
        plan.details.setdefault("pad_added", []).append({"begin": begins, "end": ends})
        self.ctx.count("pads_folded")

    def _pad_amounts(self, pad: NodeProto, rank: int):
        """`pad_amounts`, remembered per operand names (exporters share one pads constant among many Pads)."""
        if self.view.opset < 11:
            return pad_amounts(self.view, pad, rank)
        key = (tuple(pad.input[1:2]) + tuple(pad.input[3:4]), rank)
        if key not in self.amounts_cache:
            try:
                self.amounts_cache[key] = pad_amounts(self.view, pad, rank)
            except Refusal as no:
                self.amounts_cache[key] = no.reason  # the reason, not the exception (a raised one keeps its frames)
        amounts = self.amounts_cache[key]
        if isinstance(amounts, str):
            raise Refusal(amounts, [pad])
        return amounts

    # --------------------------------------------------------------- Slice

    def _plan_slice(self, conv: NodeProto, plan: _Plan) -> None:
        """Fold the Slices after the conv, nearest first (chained Slices all go)."""
        view = self.view
        out = conv.output[0]
        tail = dequantizing_tail(view, conv, plan.attrs.rank) if conv.op_type in ("ConvInteger", "Conv") else []
        if conv.op_type == "Conv" and not any(n.op_type == "QuantizeLinear" for n in tail):
            tail = []  # a float Conv's tail is followed only in the QDQ format
        if tail and any(u.op_type == "Slice" for u in view.consumers_of(tail[-1].output[0])):
            out = tail[-1].output[0]  # ConvInteger -> Cast -> Mul -> Add -> Slice: the Slice moves above them
        else:
            tail = []
        while True:
            users = view.consumers_of(out)
            slices = [u for u in users if u.op_type == "Slice" and u.domain in STD_DOMAINS and u.input[0] == out]
            if not slices:
                return
            plan.details.setdefault("slice", []).append(self.labels.get(id(slices[0]), slices[0].name or "Slice"))
            try:
                self._fold_slice(conv, out, slices, users, plan)
            except Refusal as no:
                plan.skipped.append(no.reason)
                return
            if tail and len(plan.slices) == 1:
                plan.slices[0].tail = tail
                plan.done[-1] += f" (the Slice commutes with the {', '.join(n.op_type for n in tail)} after the conv)"
            out = plan.slices[-1].slice.output[0]

    def _fold_slice(self, conv: NodeProto, out: str, slices: list[NodeProto], users: list[NodeProto],
                    plan: _Plan) -> None:
        """Check a Slice of `out` (the conv's output, or what folded Slices left) and fill the plan; or Refusal."""
        view, attrs = self.view, plan.attrs
        if len(slices) > 1:
            raise Refusal(f"{conv.op_type} output feeds {len(slices)} Slices", slices)
        slc = slices[0]
        if view.is_graph_output(out):
            raise Refusal(f"{conv.op_type} output is also a graph output", slices)
        if attrs.auto_pad != "NOTSET":
            raise Refusal(f"{conv.op_type} keeps auto_pad {attrs.auto_pad}, so a Slice cannot be folded into its pads",
                          slices)
        if attrs.output_shape is not None:
            raise Refusal("ConvTranspose has an output_shape, which overrides its pads", slices)
        rank = attrs.rank + 2
        data_in = plan.pads[-1].pad.input[0] if plan.pads else conv.input[0]
        sizes = self._sizes(plan)
        bounds, operand_nodes = self._slice_bounds(out, slc, attrs, sizes, data_in, rank)
        others = [u for u in users if u is not slc and u not in operand_nodes]
        if others:
            raise Refusal(f"{conv.op_type} output has {len(users)} consumers", slices)
        begins, ends = list(attrs.pads_begin), list(attrs.pads_end)
        dropped_b, dropped_e = [0] * attrs.rank, [0] * attrs.rank
        for j, (q0, q1) in bounds.items():
            fold_axis(attrs, j, q0, q1, sizes[j], begins, ends)
            dropped_b[j], dropped_e[j] = q0, q1
        new_attrs = replace(attrs, pads_begin=tuple(begins), pads_end=tuple(ends))
        for j, (q0, q1) in bounds.items():
            size = sizes[j]
            if size is not None and new_attrs.output_length(j, size) != attrs.output_length(j, size) - q0 - q1:
                raise Refusal(f"cannot prove the folded output length on spatial axis {j}", slices)
        plan.attrs = new_attrs
        plan.slices.append(_SliceFold(slc, operand_nodes))
        dropped = describe(dropped_b, dropped_e)
        plan.done.append(f"folded Slice {plan.details['slice'][-1]} (drops {dropped}) into the pads")
        plan.details.setdefault("slice_dropped", []).append({"begin": dropped_b, "end": dropped_e})
        self.ctx.count("slices_folded")

    def _slice_bounds(self, out, slc, attrs, spatial, data_in, rank):
        """{spatial axis: (dropped at front, dropped at end)} and the run-time end nodes; or Refusal."""
        view = self.view
        operands = slice_operands(view, slc)
        operand_nodes: list[NodeProto] = []
        if operands is None:
            starts, axes, steps = static_operands(view, slc)
            ends_name = slc.input[2]
        else:
            starts, ends, axes, steps = operands
        if axes is None:
            axes = list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
        if not len(starts) == len(axes) == len(steps):
            raise Refusal("Slice operands have different lengths", [slc])
        out_shape = view.shape(out)
        bounds: dict[int, tuple[int, int]] = {}
        for i, (start, axis, step) in enumerate(zip(starts, axes, steps)):
            axis = axis + rank if axis < 0 else axis
            if not 0 <= axis < rank:
                raise Refusal(f"Slice axis {axes[i]} is outside rank {rank}", [slc])
            if step != 1:
                raise Refusal(f"Slice step is {step}, not 1", [slc])
            if operands is None:
                end, nodes = self._run_time_end(out, slc, ends_name, i, axis, attrs, data_in)
                operand_nodes.extend(n for n in nodes if n not in operand_nodes)
            else:
                end = ends[i]
            if axis < 2:
                dim = out_shape.static(axis) if out_shape is not None else None
                kept = slice_kept_range(start, end, dim)
                if kept != (0, 0):
                    raise Refusal(f"Slice crops the {'batch' if axis == 0 else 'channel'} axis", [slc])
                continue
            j = axis - 2
            length = attrs.output_length(j, spatial[j]) if spatial[j] is not None else None
            kept = slice_kept_range(start, end, length)
            if kept is None:
                raise Refusal(f"Slice bounds on spatial axis {j} depend on the dynamic length", [slc])
            if length is not None and length - kept[0] - kept[1] < 1:
                raise Refusal(f"Slice keeps no output on spatial axis {j}", [slc])
            bounds[j] = kept
        return bounds, operand_nodes

    def _run_time_end(self, out, slc, ends_name, index, axis, attrs, data_in):
        """Prove a computed `ends[index]` equals L_out - c for every input length: (c-based end, nodes); or Refusal."""
        view = self.view
        if axis < 2:
            raise Refusal("slice end is computed at run time", [slc])
        j = axis - 2
        lout = output_affine(attrs, j)
        if lout is None:
            raise Refusal("slice end is computed at run time", [slc])
        symbols = {
            data_in: shape_symbols(view.shape(data_in), axis, Affine(1, 0)),
            out: shape_symbols(view.shape(out), axis, lout),
        }
        visited: list[NodeProto] = []
        try:
            value = symbolic(view, ends_name, symbols, visited, SYMBOLIC_DEPTH)
        except (NotAffine, TypeError, ValueError, IndexError, np.exceptions.AxisError):
            value = None  # not an expression we can prove anything about
        if value is None:
            raise Refusal("slice end is computed at run time", [slc])
        flat = value.reshape(-1)
        if index >= flat.size or not isinstance(flat[index], Affine):
            raise Refusal("slice end is computed at run time", [slc])
        end = flat[index]
        if end.a != lout.a or end.a <= 0 or lout.b - end.b < 0 or end.a + end.b < 0:
            raise Refusal("slice end is computed at run time", [slc])
        # Every reader of the conv output other than the Slice must die with it (TorchScript's Shape chain).
        dying = exclusive_nodes(view, visited, slc)
        dropped = lout.b - end.b
        # As a constant end this is "-dropped" (or "to the end" when nothing is dropped).
        return (-dropped if dropped else INT64_MAX), dying

    # ------------------------------------------------ CausalConvWithState

    def _state_plan(self, conv: NodeProto, attrs: ConvAttrs, plan: _Plan) -> tuple | None:
        """Concat(state, x) -> depthwise Conv -> Slice(new state), when it can become CausalConvWithState."""
        view = self.view
        concat = view.producer_of(conv.input[0])
        if concat is None or concat.op_type != "Concat" or concat.domain not in STD_DOMAINS:
            return None
        try:
            match = state_match(view, conv, concat, attrs)
        except Refusal as no:
            plan.skipped.append(f"{STATE_OP}: {no.reason}")
            return None
        if view.opset < STATE_OPSET:
            plan.skipped.append(f"{STATE_OP} needs opset {STATE_OPSET}; the model imports opset {view.opset}")
            return None
        if not has_schema(STATE_OP):
            plan.skipped.append(f"{STATE_OP} is not in the installed onnx {onnx.__version__}")
            return None
        return (concat,) + tuple(match)

    def _apply_state(self, conv: NodeProto, attrs: ConvAttrs, planned: tuple) -> Rewritten:
        view = self.view
        concat, state, x, slc = planned
        bias = conv.input[2] if len(conv.input) > 2 else ""
        new = helper.make_node(
            STATE_OP,
            [x, conv.input[1], bias, state],
            # present_state is a required output: name it even when nothing reads it.
            [conv.output[0], slc.output[0] if slc is not None else view.ctx.fresh(conv.output[0] + "_present_state")],
            name=view.ctx.fresh((conv.name or "conv") + "_state"),
        )
        view.insert_before(conv, [new])
        view.remove(conv)
        view.remove(concat)
        if slc is not None:
            view.remove(slc)
            self.cleanup.maybe_dead(slc.input[1:])
        self.stale_value_info.add(concat.output[0])
        self.ctx.count("causal_convs_with_state")
        runtime = state_runtime_note()
        reason = f"Concat {concat.name or 'Concat'} + {conv.op_type} + Slice became {STATE_OP}"
        return Rewritten({"op_type": STATE_OP}, f"{reason} ({runtime})" if runtime else reason,
                         {"runtime": runtime} if runtime else {}, before=None)

    # --------------------------------------------------------------- edits

    def _apply(self, conv: NodeProto, before: ConvAttrs, plan: _Plan) -> None:
        view = self.view
        if plan.attrs.auto_pad == before.auto_pad:
            set_ints(conv, "pads", plan.attrs.pads)  # only the pads changed: same result as apply(), cheaper
        else:
            plan.attrs.apply(conv)
        for fold in plan.pads:  # nearest first: each leaves the next Pad's output read by its first reader
            view.replace_input(fold.first_reader, 0, fold.pad.input[0])
            view.remove(fold.pad)
            self.stale_value_info.add(fold.pad.output[0])
            self.stale_value_info.update(w.output[0] for w in fold.wrappers)
            self.cleanup.maybe_dead(fold.pad.input[1:])
        writer = conv
        for fold in plan.slices:  # nearest first: the conv (or its tail) ends up writing the last Slice's output
            if fold.tail:
                self.stale_value_info.update(n.output[0] for n in [conv] + fold.tail[:-1])
                writer = fold.tail[-1]
            slc = fold.slice
            old, new = writer.output[0], slc.output[0]
            view.remove(slc)
            view.set_output(writer, 0, new)
            self.stale_value_info.add(old)
            self.cleanup.maybe_dead(slc.input[1:])
