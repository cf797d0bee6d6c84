"""dilated: one Conv with `dilations` for SpaceToBatch/BatchToSpace lowerings and zero-inserted kernels.

TensorFlow runs a dilated convolution as `SpaceToBatchND -> Conv -> BatchToSpaceND`
and, with a dynamic spatial size, tf2onnx leaves that lowering in the ONNX
graph: Pad, Reshape/Transpose (or SpaceToDepth/DepthToSpace) around an
undilated conv, their shapes computed from `Shape(x)` by dozens of nodes. This
pass folds such a chain into the one Conv it stands for, and turns a kernel
stored with zeros between its taps into the compact kernel with `dilations`
(or, with `expand_dilations`, the other way round).

## The index algebra of a space-to-batch chain

One spatial axis of the chain input `x` (size W), block b. Pad gives
`xp[u] = x[u - A]` (zero outside `0 <= u - A < W`), length `P = W + A + B`, a
multiple of b. SpaceToBatch splits `u = t*b + j` (`t < P/b`, `j < b`) and
moves the offset j to the batch axis: sub-sequence j is `x_j[t] = xp[t*b + j]`.
An undilated conv with kernel k, dilation d and pads (pb, pe) on each
sub-sequence gives
    z_j[t] = sum_i w[i] x_j[t + i*d - pb] = sum_i w[i] xp[t*b + j + i*(b*d) - pb*b],
and BatchToSpace interleaves them back, `y[t*b + j] = z_j[t]`, so with
`u = t*b + j`:
    y[u] = sum_i w[i] xp[u + i*(b*d) - pb*b],
a dilation-(b*d) conv over xp with pads (pb*b, pe*b) added at its ends. The
crop drops cb outputs at the front and ce at the end, which is the same conv
with cb fewer zeros in front and ce fewer at the end. On x itself that is ONE
Conv with
    dilation = b*d,  pads = (A + b*pb - cb,  B + b*pe - ce),
required constant and >= 0. Its output length `W + pads - b*d*(k-1)` equals the
chain's `(P/b + pb + pe - d*(k-1))*b - cb - ce` by the same algebra. The
other axes (batch, channels, unblocked spatial axes with b = 1) pass through
unchanged; channels are never mixed, so grouped and depthwise convs fold too.

## How a chain is recognised: factor tracking

The pass does not match fixed node sequences. It walks the layout ops around
the conv (Pad, Reshape, Transpose, Unsqueeze, Squeeze, Identity, SpaceToDepth
before it; Reshape, Transpose, Unsqueeze, Squeeze, Identity, DepthToSpace,
Slice after it) and tracks, for every axis of every tensor, which *factors* it
holds, outer to inner: an axis of x ("x"), a padded spatial axis ("p"), its
block index t ("q", size P/b) and offset j ("j", size b), a conv output
position ("o"), the output channels ("m"), a cropped output axis ("y"). A
Reshape is followed exactly (row-major): it may merge adjacent factors, drop
or add unit axes, and split a padded spatial axis into (q, j) with a
constant block b (nothing else may be split); SpaceToDepth and DepthToSpace
(DCR or CRD) are the same splits and merges. At the conv the batch axis must
hold only the batch factor and the block offsets j, the channel axis only
the channel factor, each spatial axis one q (or an unblocked p/x); after it
every output spatial axis must come back as (o, j) in that order (position
`t*b + j`) or as y after a crop, next to the batch and channel axes. That is
exactly the algebra above, whatever order of Transposes and Reshapes (1-D
tf2onnx generic `Reshape([-1, P/b, b, C]) -> Transpose([2,0,1,3]) -> Reshape`,
2-D `Transpose([3,0,1,2]) -> SpaceToDepth -> Transpose([1,0,2,3])`, a
Transpose turned into a Reshape on a unit axis, the 6-D form of a [1, d]
block) got there. A constant Add after the conv with one value per output
channel (Keras' bias, which tf2onnx leaves between the crop and the last
Transpose) is carried along: it commutes with the layout moves. The chain is
replaced by the conv with the new attributes between a Transpose/Squeeze/
Unsqueeze adapter from x's layout and one to the chain output's layout
(emitted only when not identities), the carried Adds right after the conv.
Every tensor inside the chain must be read by the next op only (Shape/Size
readers aside, which must die with the chain); x stays.

## Why the computed operands are proven, not sampled

Every operand of the chain (pads, Reshape shapes, Slice bounds, axes) is
evaluated by a small abstract interpreter over the shape subgraph; its only
non-constant leaves may be the shapes of x and of the chain's own tensors
(whose dims the factor tracking knows as forms). Each dynamic dim of x is a
variable, split into residue classes `W = L*q + r` (q >= 0, W >= 1; L starts
at 1), and every integer in the subgraph is kept as an exact affine form
`c + sum k_v*q_v`. Add/Sub/Neg and Mul by a constant keep forms affine; Div
and Mod by a constant d are exact on a class when d divides every
q-coefficient (floor and C truncation agree because the dividend is shown
non-negative there), and otherwise the period L is refined (L *= d, all
classes evaluated again); comparisons, Max/Min/Abs/Where are allowed only
when their outcome is the same for every q of the class (the form's
coefficients and its value at the smallest q decide that); anything else (a
product of two sizes, a value that is not a shape of x or of the chain, a
data-dependent op) makes the chain unprovable and it is left alone. Constants
of the graph enter as constants; an op whose inputs are all constants is
evaluated by onnx's reference evaluator. So for each class the interpreter
computes the operands for all input sizes of the class at once, and the
classes cover every size: the fold is exact for every input size at which the
chain's inner conv has a non-empty output (smaller sizes make the original
model fail, and are excluded by raising the smallest q). A chain that crops
its output to nothing at some such size is refused: the original returns an
empty tensor there, where the folded conv would fail.

The only assumptions are that dims stay below 2**31 (an end bound of
INT32_MAX/INT64_MAX means "to the end", and int32 shape arithmetic does not
wrap), that the static dims of x that shape inference reports are right, and
that the graph is valid. When shape inference lost x's rank, as it does after
a shape-computed Reshape, the dims come from the fold of the lowering before
it, broadcast through elementwise ops such as the bias Add and the activation.

The resulting pads must be the same constant in every class. They are
reported as TF's SAME split (`total = d*(k-1)`, `begin = total // 2`) when they
are, but any proven constant pads are exact and accepted. The nodes that
become dead are removed: starting from the nodes the interpreter visited and
the Shape/Size readers of chain tensors, following the producers of whatever
dies (a worklist, linear).

## Zero-inserted kernels

A Conv/ConvTranspose kernel that on some spatial axis has length K,
`(K-1) % d == 0`, and is exactly 0.0 on every tap whose index is not a
multiple of d (over all other axes and channels) is the compact kernel
`W[..., ::d, ...]` with that axis' dilation multiplied by d: the span
`d*(k-1)+1` is unchanged, so pads, auto_pad and output sizes are too. The
largest such d (the gcd of K-1 and the non-zero tap indices) is used, so a
second run finds nothing. Exact for finite inputs only (a removed 0.0 tap no
longer turns an inf/NaN input into NaN), so it is done only with
`assume_finite` (`--assume-finite`) and recorded as finite-math. ConvInteger and
QLinearConv kernels are integers: a tap contributes nothing when it holds the
weight zero point (per tensor or per output channel), and integer arithmetic
is exact, so their compaction and expansion are exact for every input. SAME auto_pad is made explicit when
dilations appear (onnxruntime refuses SAME with dilations), or the kernel is
left alone when the pads depend on a dynamic size. `expand_dilations` does
the inverse for targets without dilation support: every dilated conv gets
the zero-inserted kernel and dilations 1 (a folded chain is folded first,
then expanded). The weight is changed in place when only this conv reads it,
else copied; before IR version 4 weights are graph inputs, so they are left
alone there."""

from __future__ import annotations

from dataclasses import dataclass, field
from onnx import NodeProto

from ...conv import WEIGHT_INPUT, ConvAttrs
from ...graph import GraphView
from ...engine.tensor_map import entry as map_entry
from ...engine import ASSUME_FINITE, Conv, NotApplicable, Option, Refusal, Rewritten, Rule, ViewRun, register
from ...symbolic import Unprovable
from .apply import ZERO_POINT_INPUT, KernelChange, apply_fold, compact, expand, store_weight
from .qdq import FINITE_INPUT, finite_input, weight_dequantizer
from .chain import FoldPlan, is_candidate, plan_fold, walk_back, walk_forward
from .common import COUNTERS, NO_PATTERN, PASS_NAME




@register
class DilatedPass(Rule):
    no_match = (NO_PATTERN,)
    name = PASS_NAME
    phase = "fold"
    order = 20
    repeat = True
    options = (Option("expand_dilations", bool, False, "turn dilations into zero-inserted kernels"),
               ASSUME_FINITE)
    description = ("fold SpaceToBatch/BatchToSpace lowerings (static or shape-computed) and zero-inserted "
                   "kernels into one Conv with dilations; expand_dilations does the inverse for kernels")

    counters = COUNTERS
    kinds = ("zero-inserted",)

    def begin(self, run: ViewRun) -> None:
        run.state = _BodyState()

    def kinds_found(self, run: ViewRun, node: NodeProto, conv: Conv | None, match):
        """zero-inserted: a kernel `compact` would shorten, "" where this match compacts it, else why not
        (without --assume-finite, a float kernel's finite-math reason)."""
        if conv is None or node.op_type not in ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv") \
                or run.options.expand_dilations:
            return ()
        if isinstance(match, NotApplicable) and match.reason == NO_PATTERN:
            return ()  # the match asked `compact` already: no zero-inserted kernel there
        try:
            if compact(run.view, node, conv.attrs) is None:
                return ()
        except Refusal as no:  # a zero-inserted kernel whose compact form cannot be made, or a QDQ weight
            return ((node, "zero-inserted", no.reason),) if ZERO_INSERTED in no.reason else ()
        if isinstance(match, NotApplicable):
            return ((node, "zero-inserted", match.reason),)
        if match[2] is not None:
            return ((node, "zero-inserted", ""),)
        try:  # a chain fold comes first; the kernel is then compacted on the folded attributes
            _kernel_change(run, node, conv.attrs)
        except Refusal as no:
            return ((node, "zero-inserted", no.reason),)
        return ((node, "zero-inserted", ""),)

    def check_conv(self, run: ViewRun, conv: Conv) -> None:
        if conv.node.op_type not in ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv"):
            raise NotApplicable(f"{NO_PATTERN} ({conv.node.op_type} is not handled)", with_before=False)
        ambiguous = conv.attrs.ambiguous_output_reason()
        if ambiguous:
            raise NotApplicable(ambiguous)

    def match(self, run: ViewRun, conv: Conv) -> "tuple | NotApplicable":
        """The fold plan for the space-to-batch chain around the conv, else the kernel change alone; no edits."""
        view, node = run.view, conv.node
        plan, chain_reason = None, None
        if node.op_type == "Conv":
            back, forward = walk_back(view, node), walk_forward(view, node)
            back_stop, forward_stop = back.stop, forward.stop
            if is_candidate(back.nodes, forward.nodes):
                try:
                    plan = plan_fold(view, node, back.nodes, forward.nodes, run.state.derived)
                except Unprovable as no:
                    chain_reason = no.reason
                stop = back_stop or forward_stop
                if plan is None and chain_reason == NO_PATTERN and stop:
                    chain_reason = stop
                elif plan is None and forward_stop:  # the walk after the conv stopped at a shared tensor: say so
                    chain_reason = f"{chain_reason} ({forward_stop})"
        if plan is not None:
            return plan, chain_reason, None
        try:
            change, kernel_reason = _kernel_change(run, node, conv.attrs), None
        except Refusal as no:
            change, kernel_reason = None, no.reason
        if change is None:
            if chain_reason and chain_reason != NO_PATTERN:
                reason = f"space-to-batch chain not folded: {chain_reason}"
            elif kernel_reason and kernel_reason != "no dilations to expand":
                reason = kernel_reason
            else:
                reason = kernel_reason or NO_PATTERN
            return NotApplicable(reason, [node])  # returned: most convs have no dilation pattern
        return plan, chain_reason, change

    def explain(self, run: ViewRun, conv: Conv, match: tuple) -> str:
        plan, _, change = match
        if plan is not None:
            dilations = {a: d for a, (d, _, _) in sorted(plan.axes.items())}
            return f"fold the space-to-batch chain of {len(plan.chain)} ops (dilation by input axis: {dilations})"
        return f"kernel: {change.details.get('pattern', 'change').replace('_', ' ')}"

    def rewrite(self, run: ViewRun, conv: Conv, match: tuple) -> Rewritten:
        """Apply the fold, then compact (or expand) the kernel."""
        view, node, before, state = run.view, conv.node, conv.attrs, run.state
        plan, chain_reason, change = match
        current = before
        details: dict = {}
        if plan is not None:
            current = apply_fold(view, node, plan, before, state.removed_names, state.reshaped)
            run.count("s2b_folded")
            run.count("shape_nodes_removed", len(plan.dead))
            details.update(plan.details)
            details["formula"] = _formula(plan, current)
            try:
                change = _kernel_change(run, node, current)
            except Refusal as no:
                change = None
                if FINITE_MATH_LEFT in no.reason:
                    details["kernel"] = no.reason
        if change is not None:
            store_weight(view, node, change.array, state.dropped, state.reshaped)
            change.after.apply(node)
            current = change.after
            run.count(change.counter)
            details["kernel"] = change.details
            details["finite_math"] = not ({"integer", "qdq"} & set(change.details))
            if chain_reason and chain_reason != NO_PATTERN:
                details["space_to_batch"] = f"not folded: {chain_reason}"
        reason = FINITE_MATH_DONE if details.get("finite_math") else ""
        # A folded chain's output keeps its name and value (the conv now writes it, or the adapter after it).
        tensor_map = [map_entry(plan.y, plan.y)] if plan is not None else None
        return Rewritten(current, reason, details, tensor_map=tensor_map)

    def end(self, run: ViewRun) -> None:
        state, view = run.state, run.view
        if state.removed_names or state.dropped:
            run.cleanup.drop_initializers(state.dropped | _inputs_of_removed(view))
        if not view.is_function and (state.removed_names or state.reshaped):
            run.cleanup.forget_shape(state.removed_names | set(state.reshaped))


def _kernel_change(run: ViewRun, node: NodeProto, current: ConvAttrs) -> "KernelChange | None":
    """The zero-inserted kernel compaction (or, with expand_dilations, the expansion); None when there is no such
    kernel, Refusal saying why it cannot be changed; no edits."""
    view = run.view
    change = (expand if run.options.expand_dilations else compact)(view, node, current)
    if change is None:
        return None
    if view.ctx.ir_version < 4 and view.initializer(node.input[WEIGHT_INPUT[node.op_type]]) is not None:
        raise Refusal(f"{change.details['pattern'].replace('_', ' ')}, but IR version {view.ctx.ir_version} lists "
                      "weights as graph inputs: a new kernel would change the graph's inputs", [node])
    if node.op_type in ZERO_POINT_INPUT:
        change.details["integer"] = "exact for every input: the taps hold the weight's zero point"
    elif weight_dequantizer(view, node) is not None and finite_input(view, node):
        change.details["qdq"] = FINITE_INPUT
    elif not run.options.assume_finite:
        raise Refusal(f"{change.details['pattern'].replace('_', ' ')}: {FINITE_MATH_LEFT}", [node])
    return change


ZERO_INSERTED = "zero-inserted kernel"  # how compact's own refusals begin

# Why a kernel change is opt-in: x*0.0 is NaN for x = +-Inf or NaN, so removing a 0.0 tap (compaction) makes
# NaN outputs finite and adding one (expansion) makes finite outputs NaN; exact only for finite inputs.
FINITE_MATH_LEFT = ("finite-math rewrite (a 0.0 tap removed or added changes what Inf/NaN inputs give); "
                    "left alone without --assume-finite")
FINITE_MATH_DONE = "finite-math rewrite under --assume-finite (Inf/NaN inputs may give other outputs)"


@dataclass
class _BodyState:
    """What the rule learns and changes across one graph body's convolutions."""

    removed_names: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    derived: dict[str, list[int | None]] = field(default_factory=dict)  # dims shape inference lost, learnt here
    reshaped: dict[str, list[int]] = field(default_factory=dict)  # initializers whose dims changed in place


def _inputs_of_removed(view: GraphView) -> set[str]:
    names: set[str] = set()
    for node in view.nodes:
        if view.is_removed(node):
            names.update(i for i in node.input if i)
    return names


def _formula(plan: FoldPlan, after: ConvAttrs) -> str:
    """'tf_same' when the folded pads are TF's SAME split of d*(k-1), 'valid' when zero, else 'explicit'."""
    kinds = set()
    for k, a in enumerate(plan.conv_axes):
        if a is None:
            continue
        total = after.dilations[k] * (after.kernel_shape[k] - 1)
        pads = (after.pads_begin[k], after.pads_end[k])
        if pads == (0, 0):
            kinds.add("valid")
        elif pads == (total // 2, total - total // 2):
            kinds.add("tf_same")
        else:
            kinds.add("explicit")
    return kinds.pop() if len(kinds) == 1 else "explicit"
