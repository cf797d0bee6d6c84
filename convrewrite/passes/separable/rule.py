"""separable: depthwise + pointwise pairs in one canonical form, optional fusion.

A separable convolution is a depthwise Conv (`group == C`, weight
`[C*m, 1, k...]`) whose only reader is a pointwise Conv (kernel 1, stride 1,
no pads, group 1). Exporters spread it differently: PyTorch gives both convs a
bias, tf_keras puts the one bias on the pointwise conv, Keras 3 writes it as an
`Add([1, C, 1])` after the 1-D wrapper's Squeeze, tf2onnx with its optimizer
off leaves a cancelling Transpose pair between the convs, and training-mode
PyTorch exports keep a BatchNormalization between them. Runtimes recognise the
pair in one shape only. This pass, for every convolution of every graph body:

1. folds what follows a conv and is an exact per-output-channel affine map
   into its weight and bias: an inference BatchNormalization, a constant
   per-channel Add/Sub/Mul, also behind layout-only ops (Identity, Transpose,
   Squeeze, Unsqueeze: the channel axis is tracked through them);
2. for a depthwise conv whose output reaches a pointwise conv (through
   layout ops that cancel), writes the canonical pair: the layout ops go, the
   depthwise conv loses its bias, the pointwise bias becomes `Bp + P @ Bd`;
3. with `fuse_separable`, replaces the pair by one dense Conv,
   `W[o, c] = sum_j P[o, c*m + j] * D[c*m + j, 0]`, unless that costs more than
   FUSE_COST_LIMIT times the pair's multiply-adds (then only with `force`).

Every conv gets exactly one record; whatever cannot be proven exact is left
alone with the reason in words."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, numpy_helper
from ...conv import ConvAttrs
from ...graph import LayoutPath, set_attr, walk_down
from ...engine.tensor_map import entry as map_entry
from ...engine import ASSUME_FINITE, Conv, NotApplicable, Option, Refusal, Rule, ViewRun, read_conv, register
from ..channel_layout import per_channel
from .quantized import dequantized_weight, quantized_reason
from .bound import ChainBound
from .kinds import separable_kinds
from .parts import (
    BIAS_SLOT, COUNTERS, CannotFold, ConvState, FLOAT_TYPES, FUSE_COST_LIMIT,
    PASS, STD_DOMAINS, batchnorm_affine, clean_name, constant_value, fuse_weights, check_pointwise,
    scale_out_channels, why_not_constant,
)


# With a depth multiplier m > 1 the fused weight sums m pointwise*depthwise products before the input multiplies
# it: (a + b) * Inf is one Inf where a*Inf + b*Inf can be Inf - Inf = NaN. Exact for finite inputs only.
FUSE_NAN = ("not fused: with a depth multiplier > 1 the fused kernel sums weights an Inf input would multiply "
            "one by one (Inf - Inf = NaN becomes finite); finite-math, needs --assume-finite")


@register
class SeparablePass(Rule):
    name = PASS
    no_match = ("not depthwise", "already a canonical separable pair")

    def not_applicable(self, reason: str) -> bool:
        """Exactly "no pair here"; a reason with more to say (a fusion refused, a bias kept) is shown."""
        return reason in self.no_match
    phase = "fold"
    order = 30
    repeat = True
    options = (Option("fuse_separable", bool, False, "fuse depthwise+pointwise pairs into one dense conv"),
               Option("force", bool, False, "fuse even when it costs more"), ASSUME_FINITE)
    description = (
        "depthwise + pointwise pairs in one canonical form (BatchNorm, bias Add and cancelling "
        "Transposes folded; depthwise bias moved into the pointwise conv); optional fusion"
    )

    counters = COUNTERS

    def begin(self, run: ViewRun) -> None:
        run.state = _ViewRewriter(run)

    def match(self, run: ViewRun, conv: Conv) -> "ConvState | NotApplicable":
        state = run.state.state_of(conv)
        if not state.is_depthwise and not run.state.has_follower(state):
            return NotApplicable("not depthwise", [conv.node])  # nothing follows it, no pair to form (common)
        return state

    def explain(self, run: ViewRun, conv: Conv, state: "ConvState") -> str:
        what = "depthwise" if state.is_depthwise else "float"
        return f"{what} conv: per-channel followers folded and a pointwise partner looked for when rewriting"

    kinds = ("separable-pair",)

    def kinds_found(self, run: ViewRun, node: NodeProto, conv: Conv | None, state):
        return separable_kinds(run, node, state)

    def rewrite(self, run: ViewRun, conv: Conv, state: "ConvState") -> None:
        """Folds followers, then rewrites the pair or the conv alone; records itself (a pair is two records)."""
        run.state.visit(state)
        return None


class _ViewRewriter:
    """Rewrites the convolutions of one graph body the driver hands it (it commits and cleans up)."""

    def __init__(self, run: ViewRun) -> None:
        self.run = run
        self.ctx = run.ctx
        self.view = run.view
        self.labels = run.labels
        self.dead = run.cleanup.dead
        self.stale = run.cleanup.stale
        # Tensor map: which input tensor's value each name now holds (a folded follower's output moves onto the
        # conv's side), the names each conv made hold something else, and the carriers each conv set.
        self.carries: dict[str, str] = {}
        self.gone: dict[int, list[str]] = {}
        self.carriers: dict[int, list[str]] = {}

    # ---------------------------------------------------------------- records

    def _record(self, node: NodeProto, status: str, reason: str, before=None, after=None, details=None) -> None:
        tensor_map, gone = self._tensor_map(node) if status == "rewritten" else (None, None)
        self.run.record(node, status, reason, before, after, details, tensor_map=tensor_map, tensors_gone=gone)

    def _tensor_map(self, node: NodeProto) -> tuple[list[dict], list[str]]:
        """The conv's output (unless its value changed) and the followers' outputs it now computes."""
        gone = self.gone.get(id(node), [])
        names = [] if self.view.is_removed(node) or not node.output else [node.output[0]]
        names += self.carriers.get(id(node), [])
        out: list[dict] = []
        for name in dict.fromkeys(names):
            original = self.carries.get(name, name)
            if original not in gone and self.view.producer_of(name) is not None:
                out.append(map_entry(original, name))
        return out, list(gone)

    def _moved(self, conv: ConvState, layout: list[NodeProto], user: NodeProto, keep: str) -> None:
        """Before a follower folds: the tensors from the conv to it will hold its value (their own is gone)."""
        drop = user.output[0]
        gone = self.gone.setdefault(id(conv.node), [])
        for name in [conv.node.output[0]] + [n.output[0] for n in layout]:
            gone.append(self.carries.pop(name, name))
        carrier = drop if self.view.is_graph_output(drop) else keep
        self.carries[carrier] = self.carries.pop(drop, drop)
        self.carriers.setdefault(id(conv.node), []).append(carrier)

    def _value_changed(self, conv: ConvState) -> None:
        """The conv's output no longer holds any input tensor's value (its bias moved to its partner)."""
        gone = self.gone.setdefault(id(conv.node), [])
        for name in [conv.node.output[0]] + self.carriers.pop(id(conv.node), []):
            gone.append(self.carries.pop(name, name))

    def _state(self, node: NodeProto) -> ConvState:
        """Another conv's state (the pointwise half of a pair); Refusal saying why it cannot be handled at all."""
        if node.op_type not in ("Conv", "ConvTranspose") or dequantized_weight(self.view, node):
            raise Refusal(quantized_reason(self.view, node, False), [node])  # asked for the pointwise half
        return self.state_of(read_conv(self.view, node, self.labels[id(node)]))

    def state_of(self, conv: Conv) -> ConvState:
        """The conv's state; NotApplicable (no attributes in the record) saying why it cannot be handled at all."""
        node = conv.node
        if node.op_type not in ("Conv", "ConvTranspose") or dequantized_weight(self.view, node):
            depthwise = conv.attrs.group > 1 and bool(conv.weight_shape) and conv.weight_shape[1] == 1
            raise NotApplicable(quantized_reason(self.view, node, depthwise), [node], with_before=False)
        dims = conv.weight_shape
        if dims is None or not conv.weight_static:
            raise NotApplicable("the weight's shape is not known", [node], with_before=False)
        attrs = conv.attrs
        if attrs.ambiguous_output_reason():
            raise NotApplicable(attrs.ambiguous_output_reason(), [node], with_before=False)
        dtype = FLOAT_TYPES.get(conv.weight_type)
        if dtype is None:
            raise NotApplicable(f"weights are {TensorProto.DataType.Name(conv.weight_type)}, not float16/float/double",
                                [node], with_before=False)
        return ConvState(node, conv.label, attrs, [int(d) for d in dims], np.dtype(dtype))

    # -------------------------------------------------------------- one conv

    def visit(self, conv: ConvState) -> None:
        before = conv.attrs.to_dict()
        self.fold_followers(conv)
        if not conv.is_depthwise:
            self._finish_single(conv, before, "not depthwise")
            return
        try:
            pw = self.find_pointwise(conv)
        except Refusal as no:
            self._finish_single(conv, before, no.reason)
            return
        self.run.claim(pw.node)
        self.rewrite_pair(conv, pw, before)

    def _finish_single(self, conv: ConvState, before: dict, why: str) -> None:
        """Write back and record a conv that is not (or cannot be) part of a pair."""
        self._write_back(conv)
        details: dict = {"folded": conv.folded} if conv.folded else {}
        if conv.notes:
            details["not_done"] = list(conv.notes)
        if conv.done:
            if conv.dtype != np.float64:
                details["arithmetic"] = f"computed in float64, stored as {conv.dtype}"
            reason = "; ".join(conv.done + [why])
            self._record(conv.node, "rewritten", reason, before=before, after=conv.attrs.to_dict(), details=details)
        else:
            self._record(conv.node, "skipped", "; ".join([why] + conv.notes), before=before, details=details)

    # -------------------------------------------------------------- followers

    def walk(self, conv: ConvState) -> LayoutPath:
        """Follow the conv's output through layout-only ops to the first other reader."""
        return walk_down(self.view, conv.node.output[0], conv.attrs.rank + 2)

    def has_follower(self, conv: ConvState) -> bool:
        """Whether a per-channel affine op (or one that says why it stays) follows the conv; no edits."""
        path = self.walk(conv)
        user = path.user
        if user is None or user.domain not in STD_DOMAINS:
            return False
        try:
            return self._affine(conv, path, user) is not None
        except Refusal:  # a follower that says why it stays
            return True

    def fold_followers(self, conv: ConvState) -> None:
        """Fold every per-channel affine op that follows the conv into its weight and bias, within the bound."""
        try:
            allowed = self._bounded_steps(conv)
        except Refusal as no:  # past the error bound: none folds, the first follower says why
            conv.notes.append(no.reason)
            return
        folded = 0
        while True:
            path = self.walk(conv)
            user = path.user
            if user is None or user.domain not in STD_DOMAINS:
                return
            try:
                affine = self._affine(conv, path, user)
            except Refusal as no:
                conv.notes.append(no.reason)
                return
            if affine is None or folded >= allowed:
                return
            folded += 1
            scale, shift, _ = affine
            try:
                self._apply_affine(conv, scale, shift)
            except CannotFold as exc:
                conv.notes.append(f"{user.op_type} {self._name(user)} kept: {exc}")
                return
            self._moved(conv, path.layout, user, path.name)
            self._remove_follower(user, path.name)
            what = f"{user.op_type} {self._name(user)}"
            conv.folded.append(what)
            if user.op_type == "BatchNormalization":
                conv.done.append(f"folded {what} into the weights and bias")
                self.ctx.count("batchnorms_folded")
            elif user.op_type == "Mul":
                conv.done.append(f"folded {what} into the weights and bias")
                self.ctx.count("scale_muls_folded")
            else:
                conv.done.append(f"folded {what} into the bias")
                self.ctx.count("bias_adds_folded")

    def _bounded_steps(self, conv: ConvState) -> int:
        """How many followers may fold: the chain's error bound must stay within tolerance, else none fold
        (a prefix folded before a cancelling follower is as far off): Refusal with the bound, naming the
        first follower. With force: all, with a warning."""
        steps, path = [], self.walk(conv)
        first = path.user
        while path.user is not None and path.user.domain in STD_DOMAINS:
            affine = self._step(conv, path, path.user)
            if affine is None:
                break
            steps.append(affine)
            if path.channel_axis != 1 or not path.user.output:
                break
            path = walk_down(self.view, path.user.output[0], len(path.axes))
            if path.layout:
                break
        n = len(steps)
        if not n:
            return 0
        try:  # read, not cached: the state's weight and bias stay as they are until a fold changes them
            w = conv.w if conv.w is not None else self._constant(conv.node.input[1], "weight").reshape(conv.wshape)
        except CannotFold:
            w = None
        try:
            b = conv.b if conv.b is not None else (
                self._constant(conv.node.input[BIAS_SLOT], "bias").reshape(conv.out_channels)
                if conv.has_bias and not conv.drop_bias else np.zeros(conv.out_channels))
            bound = ChainBound(w, b, conv.attrs, conv.dtype)
        except CannotFold:
            return 1 << 30  # the fold itself will say why
        for step in steps:
            bound.step(*step)
        problem = bound.problem() if n else None
        if problem is None:
            return n
        if self.ctx.options.force:
            conv.done.append(f"forced past the fold's error bound: {problem}")
            self.ctx.count("folds_forced_past_bound")
            return n
        raise Refusal(f"{first.op_type} {self._name(first)} kept: {problem}; --force folds it anyway", [first])

    def _step(self, conv: ConvState, path: LayoutPath, user: NodeProto):
        """`_affine`, None also where the follower stays (why is not needed here)."""
        try:
            return self._affine(conv, path, user)
        except Refusal:
            return None

    def _affine(self, conv: ConvState, path: LayoutPath, user: NodeProto):
        """(scale or None, shift, the size of the terms it rounds) per output channel of the follower;
        None: not a follower; Refusal: a follower that stays, and why."""
        view, m = self.view, conv.out_channels
        what = f"{user.op_type} {self._name(user)}"
        if user.op_type == "BatchNormalization":
            if user.input[0] != path.name:
                return None
            return batchnorm_affine(view, user, path.channel_axis, m, what)
        if user.op_type not in ("Add", "Sub", "Mul") or len(user.input) != 2:
            return None
        if user.input[0] == user.input[1]:
            return None
        data_first = user.input[0] == path.name
        other = user.input[1] if data_first else user.input[0]
        value = constant_value(view, other)
        if value is None:
            return None  # a residual or gate: not a constant, not ours
        if value.dtype.kind != "f":
            raise Refusal(f"{what} kept: its constant is {value.dtype}, not float", [user])
        values = per_channel(value, len(path.axes), path.channel_axis, m)
        if values is None:
            raise Refusal(f"{what} kept: its constant of shape {list(value.shape)} is not per-channel", [user])
        if user.op_type == "Mul":
            return values, None, 0.0
        if user.op_type == "Add":
            return None, values, values
        if data_first:  # x - c
            return None, -values, values
        return -np.ones(m), values, values  # c - x

    def _apply_affine(self, conv: ConvState, scale: np.ndarray | None, shift: np.ndarray | None) -> None:
        """y -> scale * y + shift per output channel, folded into the conv's state."""
        m = conv.out_channels
        bias = self._bias(conv) if scale is not None or shift is not None else None
        if scale is not None:
            w = self._weight(conv)
            conv.w = scale_out_channels(w, scale, conv.attrs)
            conv.w_changed = True
            bias = bias * scale
        if shift is not None:
            bias = bias + shift
        conv.b = bias.reshape(m)
        conv.b_changed = True

    def _remove_follower(self, user: NodeProto, keep: str) -> None:
        drop = user.output[0]
        self.dead.extend(i for i in user.input if i and i != keep)
        self.stale.add(drop)
        if self.view.is_graph_output(drop):
            self.stale.add(keep)
        self.view.bypass(user, keep, drop)

    # ----------------------------------------------------------------- pairs

    def partner(self, conv: ConvState) -> tuple[ConvState | None, str, NodeProto | None]:
        """Unedited: `find_pointwise` once the followers fold (inspect), and the pointwise conv it refused, if any."""
        path = self.walk(conv)
        while path.user is not None and path.user.domain in STD_DOMAINS and path.user.output and path.channel_axis == 1:
            affine = self._step(conv, path, path.user)
            if affine is None or (
                    path := walk_down(self.view, path.user.output[0], len(path.axes))).layout:
                break
        try:
            return self.find_pointwise(conv, path), "", None
        except Refusal as no:
            why = no.reason
        u = path.user
        shaped = u is not None and u.domain in STD_DOMAINS and u.input[0] == path.name and self._is_pointwise(u)
        return None, why, u if shaped else None

    def find_pointwise(self, conv: ConvState, path: LayoutPath | None = None) -> ConvState:
        """The pointwise conv reading this depthwise conv's output alone (or `path`'s end); Refusal if none."""
        path = self.walk(conv) if path is None else path
        where = "depthwise output"
        if path.layout:
            where += " (after " + " -> ".join(n.op_type for n in path.layout) + ")"
        if path.user is None:
            raise Refusal(f"{where} {path.stop}", [conv.node])
        user = path.user
        if user.op_type != "Conv" or user.domain not in STD_DOMAINS:
            if self._is_pointwise(self.view.sole_consumer(user.output[0]) if user.output else None, user):
                raise Refusal(f"{user.op_type} between depthwise and pointwise", [conv.node])
            raise Refusal(f"no pointwise conv after it: the {where} goes to {user.op_type}", [conv.node])
        if user.input[0] != path.name:
            raise Refusal(f"{where} is an operand of Conv {self._name(user)}, not its data", [conv.node])
        if not path.same_layout or len(path.axes) != conv.attrs.rank + 2:  # a Squeeze of a trailing axis
            raise Refusal(f"{where} reaches the next conv in another layout (the layout ops do not cancel)",
                          [conv.node])
        try:
            pw = self._state(user)
        except Refusal as no:
            raise Refusal(f"the conv after it cannot be handled: {no.reason}", [user]) from None
        check_pointwise(pw.attrs)
        if pw.wshape[1] != conv.out_channels:
            raise Refusal(f"pointwise conv reads {pw.wshape[1]} channels, the depthwise conv writes {conv.out_channels}",
                          [user])
        if not self.ctx.allowed(PASS, self.view.path, pw.label):
            raise Refusal(f"pointwise conv {pw.label} is excluded by selection", [conv.node])
        return pw

    def _is_pointwise(self, node: NodeProto | None, reader: NodeProto | None = None) -> bool:
        """Whether `node` is a float pointwise Conv (reading `reader`'s output as its data, when given)."""
        if node is None or node.op_type != "Conv" or (reader is not None and node.input[0] != reader.output[0]):
            return False
        try:
            return check_pointwise(self._state(node).attrs) is None
        except Refusal:
            return False

    def rewrite_pair(self, dw: ConvState, pw: ConvState, dw_before: dict) -> None:
        pw_before = pw.attrs.to_dict()
        self.fold_followers(pw)
        layout = self.walk(dw).layout  # cancelling layout ops between the convs (find_pointwise checked)
        actions: list[str] = []
        notes: list[str] = []
        mult = dw.out_channels // dw.attrs.group
        details: dict = {"pair": {"depthwise": dw.label, "pointwise": pw.label}, "multiplier": mult}

        bias_moved = self._move_depthwise_bias(dw, pw, notes)
        if bias_moved:
            actions.append("moved the depthwise bias into the pointwise bias")
        fused = False
        if self.ctx.options.fuse_separable and mult > 1 and not self.ctx.options.assume_finite:
            notes.append(FUSE_NAN)
        elif self.ctx.options.fuse_separable:
            fused = self._plan_fusion(dw, pw, bias_moved, details, actions, notes)

        changed = bool(dw.done or pw.done or layout or bias_moved or fused)
        if fused:
            self._fuse(dw, pw, layout)
            self.ctx.count("pairs_fused")
        else:
            for node in layout:
                self._drop_layout_op(node)
                self.view.bypass(node, node.input[0], node.output[0])
            if layout:
                actions.append("removed " + " -> ".join(n.op_type for n in layout) + " between the convs")
            self._write_back(dw)
            self._write_back(pw)
            if changed:
                self.ctx.count("pairs_canonicalized")

        details["depthwise_folded"] = dw.folded
        details["pointwise_folded"] = pw.folded
        not_done = notes + dw.notes + pw.notes
        if not_done:
            details["not_done"] = not_done
        if not changed:
            reason = "; ".join(["already a canonical separable pair"] + not_done)
            self._record(dw.node, "skipped", reason, before=dw_before, details=details)
            self._record(pw.node, "skipped", reason, before=pw_before, details=details)
            return
        if pw.dtype != np.float64:
            details["arithmetic"] = f"computed in float64, stored as {pw.dtype}"
        summary = "; ".join(dw.done + pw.done + actions)
        form = "fused separable pair" if fused else "canonical separable pair"
        if fused:
            dw_after = pw_after = ConvAttrs.from_node(pw.node, list(pw.w.shape)).to_dict()
            details["fused_node"] = pw.label
        else:
            dw_after, pw_after = dw.attrs.to_dict(), pw.attrs.to_dict()
        self._record(dw.node, "rewritten", f"{form} with pointwise {pw.label}: {summary}",
                     before=dw_before, after=dw_after, details=details)
        self._record(pw.node, "rewritten", f"{form} with depthwise {dw.label}: {summary}",
                     before=pw_before, after=pw_after, details=details)

    def _move_depthwise_bias(self, dw: ConvState, pw: ConvState, notes: list[str]) -> bool:
        """P (x + Bd) + Bp = P x + (Bp + P Bd): the depthwise bias goes into the pointwise bias."""
        if not dw.has_bias and dw.b is None:
            return False
        try:
            bd = self._bias(dw)
            if np.any(bd != 0):
                p = self._weight(pw).reshape(pw.wshape[0], -1)
                pw.b = self._bias(pw) + p @ bd
                pw.b_changed = True
        except CannotFold as exc:
            notes.append(f"depthwise bias kept: {exc}")
            return False
        dw.b, dw.b_changed, dw.drop_bias = None, False, True
        self._value_changed(dw)
        return True

    def _plan_fusion(self, dw: ConvState, pw: ConvState, bias_moved: bool, details: dict,
                     actions: list[str], notes: list[str]) -> bool:
        """Compute the dense weight into pw's state when fusion is asked, exact and affordable."""
        c, mult, k, m = dw.attrs.group, dw.out_channels // dw.attrs.group, dw.kernel_size, pw.out_channels
        pair_macs, fused_macs = c * mult * k + c * mult * m, c * m * k
        ratio = fused_macs / pair_macs
        details["macs_per_position"] = {"pair": pair_macs, "fused": fused_macs}
        cost = f"{pair_macs} -> {fused_macs} multiply-adds per output position ({ratio:.2f}x)"
        if not bias_moved and (dw.has_bias or dw.b is not None):
            notes.append("not fused: the depthwise bias could not be moved")
            return False
        if ratio > FUSE_COST_LIMIT and not self.ctx.options.force:
            notes.append(f"not fused: fusion costs {cost}, more than {FUSE_COST_LIMIT:g}x the pair (use --force)")
            return False
        try:
            pw.w = fuse_weights(self._weight(dw), self._weight(pw), c, mult, dw.wshape[2:])
        except CannotFold as exc:
            notes.append(f"not fused: {exc}")
            return False
        pw.w_changed = True
        actions.append(f"fused into one conv: {cost}")
        return True

    def _fuse(self, dw: ConvState, pw: ConvState, layout: list[NodeProto]) -> None:
        """The pointwise node becomes the dense conv: depthwise input and attributes, group 1."""
        view, node = self.view, pw.node
        view.replace_input(node, 0, dw.node.input[0])
        del node.attribute[:]
        node.attribute.extend(dw.node.attribute)
        set_attr(node, "group", 1)
        for n in layout:
            self._drop_layout_op(n)
            view.remove(n)
        self.dead.extend(i for i in dw.node.input[1:] if i)
        self.stale.add(dw.node.output[0])
        self.stale.add(node.input[1])
        view.remove(dw.node)
        self._write_back(pw)

    def _drop_layout_op(self, node: NodeProto) -> None:
        self.dead.extend(i for i in node.input[1:] if i)
        self.stale.add(node.output[0])

    # ------------------------------------------------------------- values

    def _name(self, node: NodeProto) -> str:
        return self.labels.get(id(node)) or node.name or node.op_type

    def _weight(self, conv: ConvState) -> np.ndarray:
        if conv.w is None:
            conv.w = self._constant(conv.node.input[1], "weight").reshape(conv.wshape)
        return conv.w

    def _bias(self, conv: ConvState) -> np.ndarray:
        if conv.b is None:
            if conv.has_bias and not conv.drop_bias:
                conv.b = self._constant(conv.node.input[BIAS_SLOT], "bias").reshape(conv.out_channels)
            else:
                conv.b = np.zeros(conv.out_channels)
        return conv.b

    def _constant(self, name: str, what: str) -> np.ndarray:
        value = constant_value(self.view, name)
        if value is None:
            raise CannotFold(f"the conv's {what} {why_not_constant(self.view, name)}")
        if value.dtype.kind != "f":
            raise CannotFold(f"the conv's {what} is {value.dtype}, not float")
        return value.astype(np.float64)

    # ---------------------------------------------------------- write back

    def _write_back(self, conv: ConvState) -> None:
        node = conv.node
        if conv.w_changed:
            self._store(conv, 1, conv.w, f"{conv.label}_weight")
        if conv.drop_bias and conv.has_bias:
            self.dead.append(node.input[BIAS_SLOT])
            self.view.drop_input(node, BIAS_SLOT)
        elif conv.b_changed:
            if not conv.has_bias:
                while len(node.input) < BIAS_SLOT + 1:
                    node.input.append("")
            self._store(conv, BIAS_SLOT, conv.b, f"{conv.label}_bias")
        conv.w_changed = conv.b_changed = False

    def _store(self, conv: ConvState, slot: int, value: np.ndarray, base: str) -> None:
        """Write a new weight/bias: in place when only this conv reads it, else as a new initializer."""
        view, node = self.view, conv.node
        array = np.ascontiguousarray(value.astype(conv.dtype))
        old = node.input[slot]
        tensor = view.initializers.get(old) if old and not view.is_function else None
        users = view.consumers_of(old) if tensor is not None else []
        if (tensor is not None and old not in view.input_set and not view.is_graph_output(old)
                and len(users) == 1 and users[0] is node):
            tensor.CopyFrom(numpy_helper.from_array(array, old))
            self.stale.add(old)
            return
        name = view.ctx.fresh(clean_name(base))
        view.add_initializer(numpy_helper.from_array(array, name))
        view.replace_input(node, slot, name)
        if old:
            self.dead.append(old)
