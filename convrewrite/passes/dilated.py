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
second run finds nothing. Exact for finite inputs (a removed 0.0 tap no longer
turns an inf/NaN input into NaN). SAME auto_pad is made explicit when
dilations appear (onnxruntime refuses SAME with dilations), or the kernel is
left alone when the pads depend on a dynamic size. `expand_dilations` does
the inverse for targets without dilation support: every dilated conv gets
the zero-inserted kernel and dilations 1 (a folded chain is folded first,
then expanded). The weight is changed in place when only this conv reads it,
else copied; before IR version 4 weights are graph inputs, so they are left
alone there.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import onnx
from onnx import NodeProto, TensorProto, helper, numpy_helper

from ..conv import ConvAttrError, ConvAttrs
from ..graph import INT32_MAX, GraphView, attr, make_squeeze, make_unsqueeze
from ..rewrite import Conv, NotApplicable, Option, Rewritten, Rule, ViewRun, register
from ..symbolic import (
    MALFORMED, MAX_VALUE_ELEMENTS, SHAPE_READERS, Domain, Lin, NeedPeriod, ShapeInterpreter, Sym, Unprovable,
    check_divisible, exact_quotient, product,
)

PASS_NAME = "dilated"
COUNTERS = ("s2b_folded", "kernels_compacted", "kernels_expanded", "shape_nodes_removed")
NO_PATTERN = "no dilation pattern"

LAYOUT_OPS = {"Reshape", "Transpose", "Unsqueeze", "Squeeze", "Identity"}
BEFORE_CONV_OPS = LAYOUT_OPS | {"Pad", "SpaceToDepth"}
AFTER_CONV_OPS = LAYOUT_OPS | {"Slice", "DepthToSpace", "Add"}  # Add: a per-channel constant (the bias)
MAX_CHAIN = 64  # layout ops followed on each side of a conv
MAX_PERIOD = 64  # residue-class period per dynamic dim
MAX_CLASSES = 1024  # residue classes per chain
FLOAT_TYPES = (np.float16, np.float32, np.float64)


# ------------------------------------------------------------------ affine forms over residue classes


# ------------------------------------------------------------------ the shape interpreter


# ------------------------------------------------------------------ factor tracking along a chain


@dataclass(frozen=True)
class Factor:
    """One index of a tensor axis: kind x/p/q/j/o/m/y (see the module docstring), the input axis it comes from."""

    kind: str
    axis: int
    size: Lin


Axis = tuple  # tuple[Factor, ...], outer to inner; () is a unit axis


class ChainTrace:
    """Follows one chain on one Domain, keeping the factors of every axis and the exact operands."""

    def __init__(self, view: GraphView, domain: Domain, x_name: str, x_dims: list[Lin], later: set[str],
                 shared: dict[str, Sym] | None = None) -> None:
        self.view = view
        self.domain = domain
        self.x_name = x_name
        self.later = set(later)  # chain tensors not computed yet
        self.state: list[Axis] = [() if _is_one(d) else (Factor("x", a, d),) for a, d in enumerate(x_dims)]
        self.known: dict[str, list[Lin | None]] = {x_name: list(x_dims)}
        self.pads: dict[int, tuple[Lin, Lin]] = {}
        self.blocks: dict[int, int] = {}
        self.crops: dict[int, tuple[Lin, Lin]] = {}
        self.inner: dict[int, tuple[int, int, int, int]] = {}
        self.conv_axes: list[int | None] = []
        self.n_axis: int | None = None
        self.c_axis: int | None = None
        self.out_channels = 1
        self.after_conv = False
        self.current = x_name
        self.moved: list[tuple[NodeProto, str, np.ndarray]] = []  # per-channel Adds, re-applied after the conv
        self.saw_block = False
        self.interp = ShapeInterpreter(view, domain, self._shape_of, shared)

    def _shape_of(self, name: str) -> list[Lin] | None:
        if name in self.known:
            dims = self.known[name]
            if any(d is None for d in dims):
                raise Unprovable(f"the shape of {name} is a product of two sizes")
            return dims  # type: ignore[return-value]
        if name in self.later:
            raise Unprovable(f"an operand depends on {name}, computed later in the chain")
        return None

    def _record(self, name: str) -> None:
        self.current = name
        self.later.discard(name)
        self.known[name] = [_axis_size(ax, self.domain) for ax in self.state]

    def operand(self, node: NodeProto, index: int) -> Sym | None:
        if len(node.input) <= index or not node.input[index]:
            return None
        return self.interp.value(node.input[index])

    # ------------------------------------------------------------ steps

    def step(self, node: NodeProto) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise Unprovable(f"{node.op_type} from domain {node.domain}")
        try:
            getattr(self, f"_{node.op_type}")(node)
        except MALFORMED as exc:  # operands that do not fit the tensor: not a chain we understand
            raise Unprovable(f"{node.op_type} {node.name}: {exc}") from None
        self._record(node.output[0])

    def _Identity(self, node: NodeProto) -> None:
        pass

    def _Add(self, node: NodeProto) -> None:
        """A constant added per output channel (a bias) commutes with the layout moves: it moves after the conv."""
        if not self.after_conv or self.current not in node.input:
            raise Unprovable("Add inside the chain")
        other = node.input[1] if node.input[0] == self.current else node.input[0]
        value = _constant_operand(self.view, other)
        if value is None or value.dtype.kind != "f" or value.ndim > len(self.state):
            raise Unprovable("Add of a value that is not a constant")
        shape = [1] * (len(self.state) - value.ndim) + list(value.shape)
        for dim, ax in zip(shape, self.state):
            if dim != 1 and not (len(ax) == 1 and ax[0].kind == "m" and dim == self.out_channels):
                raise Unprovable("Add of a constant that is not one value per output channel")
        self.moved.append((node, other, value.reshape(-1)))

    def _Transpose(self, node: NodeProto) -> None:
        perm = attr(node, "perm")
        perm = list(range(len(self.state)))[::-1] if perm is None else list(perm)
        if sorted(perm) != list(range(len(self.state))):
            raise Unprovable("Transpose perm does not match the rank")
        self.state = [self.state[p] for p in perm]

    def _Unsqueeze(self, node: NodeProto) -> None:
        axes = self._axes_of(node)
        if axes is None:
            raise Unprovable("Unsqueeze without axes")
        rank = len(self.state) + len(axes)
        for a in sorted(a + rank if a < 0 else a for a in axes):
            self.state.insert(a, ())

    def _Squeeze(self, node: NodeProto) -> None:
        axes = self._axes_of(node)
        rank = len(self.state)
        if axes is None:
            if any(not f.size.is_const() for ax in self.state for f in ax):
                raise Unprovable("Squeeze without axes on a tensor with dynamic dims")
            self.state = [ax for ax in self.state if ax]
            return
        axes = {a + rank if a < 0 else a for a in axes}
        if any(self.state[a] for a in axes):
            raise Unprovable("Squeeze of an axis that is not 1")
        self.state = [ax for a, ax in enumerate(self.state) if a not in axes]

    def _axes_of(self, node: NodeProto) -> list[int] | None:
        if self.view.opset < 13:
            value = attr(node, "axes")
            return list(value) if value is not None else None
        s = self.operand(node, 1)
        return None if s is None else s.ints(f"{node.op_type} axes")

    def _Pad(self, node: NodeProto) -> None:
        if self.after_conv:
            raise Unprovable("Pad after the conv")
        mode = attr(node, "mode", "constant") or "constant"
        if mode != "constant":
            raise Unprovable(f"Pad mode is {mode}")
        rank = len(self.state)
        if self.view.opset < 11:
            pads = [self.domain.const(int(p)) for p in attr(node, "pads")]
            value = float(attr(node, "value", 0.0))
            axes = None
        else:
            pads = list(self.operand(node, 1).data.reshape(-1))
            v = self.operand(node, 2)
            value = 0.0 if v is None else float(v.data.reshape(-1)[0].c) if v.is_const() else None
            a = self.operand(node, 3)
            axes = a.ints("Pad axes") if a is not None else None
        if value != 0.0:
            raise Unprovable(f"Pad value is {value}, not 0")
        axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
        if len(pads) != 2 * len(axes):
            raise Unprovable("Pad pads do not match the rank")
        n = len(axes)
        zero = self.domain.const(0)
        for i, a in enumerate(axes):
            begin, end = pads[i], pads[n + i]
            if begin == zero and end == zero:
                continue
            if not (self.domain.nonneg(begin) and self.domain.nonneg(end)):
                raise Unprovable("Pad pads may be negative")
            ax = self.state[a]
            if not ax and node.input[0] == self.x_name:
                x_axis, size, old = a, self.domain.const(1), (zero, zero)
            elif len(ax) == 1 and ax[0].kind in ("x", "p"):
                x_axis, size = ax[0].axis, ax[0].size
                old = self.pads.get(x_axis, (zero, zero))
            else:
                raise Unprovable(f"Pad on axis {a}, which is not one spatial axis of the input")
            self.pads[x_axis] = (old[0] + begin, old[1] + end)
            self.state[a] = (Factor("p", x_axis, size + begin + end),)

    def _split(self, f: Factor, outer: Lin, block: int) -> tuple[Factor, Factor]:
        """Split a spatial factor into (block index q of size outer, offset j of size block)."""
        if self.after_conv or f.kind not in ("x", "p"):
            raise Unprovable("a reshape splits an axis that is not a padded spatial axis")
        if f.axis in self.blocks:
            raise Unprovable("a spatial axis is split twice")
        self.blocks[f.axis] = block
        self.saw_block = True
        return Factor("q", f.axis, outer), Factor("j", f.axis, self.domain.const(block))

    def _Reshape(self, node: NodeProto) -> None:
        target = list(self.operand(node, 1).data.reshape(-1))
        if self.operand(node, 1).kind != "int":
            raise Unprovable("Reshape shape is not an integer tensor")
        allowzero = attr(node, "allowzero", 0)
        sizes = [_axis_size(ax, self.domain) for ax in self.state]
        for i, t in enumerate(target):
            if t.is_const() and t.c == 0:
                if allowzero:
                    raise Unprovable("Reshape to a zero-size dim")
                if i >= len(sizes) or sizes[i] is None:
                    raise Unprovable("Reshape copies a dim that is a product of two sizes")
                target[i] = sizes[i]
        minus = [i for i, t in enumerate(target) if t.is_const() and t.c == -1]
        if len(minus) > 1 or any(t.is_const() and t.c < -1 for t in target):
            raise Unprovable("Reshape shape has more than one -1")
        factors = [f for ax in self.state for f in ax]
        stop = minus[0] if minus else len(target)
        out: list[Axis] = [()] * len(target)
        for i in range(stop):
            out[i], factors = self._take(factors, target[i], front=True)
        if minus:
            for i in range(len(target) - 1, stop, -1):
                out[i], factors = self._take(factors, target[i], front=False)
            out[stop], factors = tuple(factors), []
        if factors:
            raise Unprovable("Reshape sizes do not match its input")
        self.state = out

    def _take(self, factors: list[Factor], size: Lin, front: bool) -> tuple[Axis, list[Factor]]:
        """The factors that make up one target dim of `size`, from the front or the back."""
        if size.is_const() and size.c == 1:
            return (), factors
        if size.is_const() and size.c < 1:
            raise Unprovable("Reshape to a dim below 1")
        factors = list(factors)
        taken: list[Factor] = []
        rem = size
        while True:
            if not factors:
                raise Unprovable("Reshape sizes do not match its input")
            f = factors[0] if front else factors[-1]
            if f.size == rem:
                taken.append(f)
                factors.pop(0 if front else -1)
                break
            quotient = exact_quotient(rem, f.size)
            if quotient is not None and not (quotient.is_const() and quotient.c < 2):
                taken.append(f)
                factors.pop(0 if front else -1)
                rem = quotient
                continue
            if front:  # rem is the outer part: f = rem * block
                inner = exact_quotient(f.size, rem)
                if inner is None or not inner.is_const() or inner.c < 2:
                    raise Unprovable("a reshape splits an axis into parts that are not a block split")
                hi, lo = self._split(f, rem, int(inner.c))
                taken.append(hi)
                factors[0] = lo
            else:  # rem is the inner part: f = outer * rem
                if rem.is_const() and rem.c >= 2:
                    check_divisible(f.size, int(rem.c))
                outer = exact_quotient(f.size, rem)
                if outer is None or not rem.is_const() or rem.c < 2:
                    raise Unprovable("a reshape splits an axis into parts that are not a block split")
                hi, lo = self._split(f, outer, int(rem.c))
                taken.append(lo)
                factors[-1] = hi
            break
        return tuple(taken if front else taken[::-1]), factors

    def _SpaceToDepth(self, node: NodeProto) -> None:
        b = int(attr(node, "blocksize"))
        if len(self.state) != 4:
            raise Unprovable("SpaceToDepth on a tensor that is not 4-D")
        parts = []
        for a in (2, 3):
            ax = self.state[a]
            if len(ax) != 1:
                raise Unprovable("SpaceToDepth on an axis that is not one spatial axis")
            check_divisible(ax[0].size, b)
            outer = exact_quotient(ax[0].size, self.domain.const(b))
            if outer is None:
                raise Unprovable("SpaceToDepth on a size that is not a multiple of the block")
            parts.append(self._split(ax[0], outer, b))
        (qh, jh), (qw, jw) = parts
        self.state = [self.state[0], (jh, jw) + self.state[1], (qh,), (qw,)]

    def _DepthToSpace(self, node: NodeProto) -> None:
        b = int(attr(node, "blocksize"))
        mode = attr(node, "mode", "DCR") or "DCR"
        if len(self.state) != 4:
            raise Unprovable("DepthToSpace on a tensor that is not 4-D")
        chan = list(self.state[1])
        block = self.domain.const(b)
        if len(chan) < 2:
            raise Unprovable("DepthToSpace channels do not hold two block offsets")
        if mode == "DCR":
            fh, fw, rest = chan[0], chan[1], tuple(chan[2:])
        else:
            fh, fw, rest = chan[-2], chan[-1], tuple(chan[:-2])
        if fh.size != block or fw.size != block:
            raise Unprovable(f"DepthToSpace block {b} does not match the block offsets")
        self.state = [self.state[0], rest, self.state[2] + (fh,), self.state[3] + (fw,)]

    def _Slice(self, node: NodeProto) -> None:
        rank = len(self.state)
        if self.view.opset < 10:
            starts = [self.domain.const(v) for v in attr(node, "starts")]
            ends = [self.domain.const(v) for v in attr(node, "ends")]
            axes = attr(node, "axes")
            steps = None
        else:
            starts = list(self.operand(node, 1).data.reshape(-1))
            ends = list(self.operand(node, 2).data.reshape(-1))
            a = self.operand(node, 3)
            axes = a.ints("Slice axes") if a is not None else None
            s = self.operand(node, 4)
            steps = s.ints("Slice steps") if s is not None else None
        axes = list(range(len(starts))) if axes is None else [a + rank if a < 0 else a for a in axes]
        if steps is not None and any(st != 1 for st in steps):
            raise Unprovable("Slice with a step other than 1")
        for start, end, a in zip(starts, ends, axes):
            ax = self.state[a]
            size = _axis_size(ax, self.domain)
            if size is None:
                raise Unprovable("Slice of an axis whose size is a product of two sizes")
            begin, stop = self._slice_bounds(start, end, size)
            zero = self.domain.const(0)
            dropped_front, dropped_end = begin, size - stop
            if dropped_front == zero and dropped_end == zero:
                continue
            spatial = self._output_axis(ax)
            if spatial is None:
                raise Unprovable(f"Slice crops axis {a}, which is not an output spatial axis")
            old = self.crops.get(spatial, (zero, zero))
            self.crops[spatial] = (old[0] + dropped_front, old[1] + dropped_end)
            self.state[a] = (Factor("y", spatial, stop - begin),)

    def _slice_bounds(self, start: Lin, end: Lin, size: Lin) -> tuple[Lin, Lin]:
        """(first kept, one past the last kept) of a step-1 Slice on an axis of `size`."""
        d = self.domain
        zero = d.const(0)
        if start.is_const() and start.c < 0:
            start = size + start
        if not (d.ge(start, zero, "a Slice start") and d.ge(size, start, "a Slice start")):
            raise Unprovable("Slice start is clamped")
        if end.is_const() and end.c >= INT32_MAX:
            end = size  # dims stay below 2**31: "to the end"
        elif end.is_const() and end.c < 0:
            end = size + end
        if not d.ge(end, start, "a Slice end"):
            raise Unprovable("Slice keeps nothing")
        if not d.ge(size, end, "a Slice end"):
            end = size
        return start, end

    def _output_axis(self, ax: Axis) -> int | None:
        """The input spatial axis this tensor axis is the complete output of, if it is one."""
        if len(ax) == 2 and ax[0].kind == "o" and ax[1].kind == "j" and ax[0].axis == ax[1].axis:
            return ax[0].axis
        if len(ax) == 1 and ax[0].kind == "y":
            return ax[0].axis
        if len(ax) == 1 and ax[0].kind == "o" and self.blocks.get(ax[0].axis, 1) == 1:
            return ax[0].axis
        return None

    # ------------------------------------------------------------ the conv

    def conv(self, node: NodeProto, weight_shape: Sequence[int]) -> None:
        if node.op_type != "Conv":
            raise Unprovable(f"{node.op_type} inside a space-to-batch chain")
        try:
            attrs = ConvAttrs.from_node(node, weight_shape).resolved(None)
        except ConvAttrError as exc:
            raise Unprovable(str(exc)) from None
        if attrs is None:
            raise Unprovable("the inner conv's SAME pads depend on the input size")
        if len(self.state) != attrs.rank + 2:
            raise Unprovable("the conv input's rank does not match its kernel")
        batch, chan, *spatial = self.state
        if any(f.kind not in ("x", "j") for f in batch) or sum(f.kind == "x" for f in batch) > 1:
            raise Unprovable("the conv's batch axis holds more than the batch and the block offsets")
        if chan and not (len(chan) == 1 and chan[0].kind == "x"):
            raise Unprovable("the conv's channel axis is not the input's channel axis")
        self.n_axis = next((f.axis for f in batch if f.kind == "x"), None)
        self.c_axis = chan[0].axis if chan else None
        blocked: set[int] = set()
        out_spatial: list[Axis] = []
        for k, ax in enumerate(spatial):
            kk, s, d = attrs.kernel_shape[k], attrs.strides[k], attrs.dilations[k]
            pb, pe = attrs.pads_begin[k], attrs.pads_end[k]
            if not ax:
                if kk != 1 or pb or pe:
                    raise Unprovable(f"kernel {kk} or pads on the conv's unit spatial axis {k}")
                self.conv_axes.append(None)
                out_spatial.append(())
                continue
            if len(ax) != 1 or ax[0].kind not in ("q", "p", "x"):
                raise Unprovable(f"the conv's spatial axis {k} is not one spatial axis of the input")
            f = ax[0]
            if s != 1:
                raise Unprovable(f"stride {s} on the conv's spatial axis {k}")
            if f.kind == "q":
                blocked.add(f.axis)
            size = f.size + self.domain.const(pb + pe - d * (kk - 1))
            self.domain.require_positive(size, "the inner conv's output")
            if size.is_const() and size.c == 1:
                raise Unprovable(f"the inner conv has a single output position on its spatial axis {k}")
            self.inner[f.axis] = (kk, d, pb, pe)
            self.conv_axes.append(f.axis)
            out_spatial.append((Factor("o", f.axis, size),))
        offsets = [f.axis for f in batch if f.kind == "j"]
        if sorted(offsets) != sorted(blocked):
            raise Unprovable("the block offsets on the batch axis do not match the blocked spatial axes")
        self.out_channels = int(weight_shape[0])
        m = (Factor("m", -1, self.domain.const(self.out_channels)),) if self.out_channels != 1 else ()
        self.state = [batch, m, *out_spatial]
        self.after_conv = True
        self._record(node.output[0])

    def roles(self) -> list | None:
        """Roles of the current axes if the chain is back in a plain layout: 'n', 'm', ('s', axis) or None (unit)."""
        roles: list = []
        for ax in self.state:
            if not ax:
                roles.append(None)
                continue
            if len(ax) == 1 and ax[0].kind == "x" and ax[0].axis == self.n_axis:
                role = "n"
            elif len(ax) == 1 and ax[0].kind == "m":
                role = "m"
            else:
                a = self._output_axis(ax)
                if a is None:
                    return None
                role = ("s", a)
            if role in roles:
                return None
            roles.append(role)
        wanted = {("s", a) for a in self.conv_axes if a is not None}
        if self.n_axis is not None:
            wanted.add("n")
        if self.out_channels != 1:
            wanted.add("m")
        return roles if set(r for r in roles if r is not None) == wanted else None

    def result(self) -> tuple[dict[int, tuple[int, int, int]], list[int | None]]:
        """Per blocked/convolved input axis: (dilation, pad begin, pad end), proven constant."""
        out: dict[int, tuple[int, int, int]] = {}
        zero = self.domain.const(0)
        for a in self.conv_axes:
            if a is None:
                continue
            kk, d, pb, pe = self.inner[a]
            b = self.blocks.get(a, 1)
            begin_pad, end_pad = self.pads.get(a, (zero, zero))
            crop_begin, crop_end = self.crops.get(a, (zero, zero))
            begin = begin_pad + self.domain.const(b * pb) - crop_begin
            end = end_pad + self.domain.const(b * pe) - crop_end
            if not (begin.is_const() and end.is_const()):
                raise Unprovable("the folded pads depend on the input size")
            if begin.c < 0 or end.c < 0:
                raise Unprovable(f"the folded pads ({begin.c}, {end.c}) are negative")
            # The chain may crop its output to nothing at sizes where its inner conv is not empty: the
            # original then returns an empty tensor while the folded conv fails, so that is not exact.
            length = self.known[self.x_name][a] + begin + end - self.domain.const(b * d * (kk - 1))
            low, _ = self.domain.bounds(length)
            if low is None or low < 1:
                raise Unprovable("the chain's output is empty for some input sizes (the folded conv would fail)")
            out[a] = (b * d, int(begin.c), int(end.c))
        return out, list(self.conv_axes)


def _is_one(d: Lin) -> bool:
    return d.is_const() and d.c == 1


def _axis_size(ax: Axis, domain: Domain) -> Lin | None:
    try:
        return product([f.size for f in ax], domain, "an axis")
    except Unprovable:
        return None


# ------------------------------------------------------------------ finding a chain around a conv


def _data_consumers(view: GraphView, name: str) -> list[NodeProto]:
    return [n for n in view.consumers_of(name) if n.op_type not in SHAPE_READERS]


def _walk_back(view: GraphView, conv: NodeProto) -> tuple[list[NodeProto], str | None]:
    """The layout ops feeding the conv, in graph order (each output read by the next one only).

    Also says why the walk stopped (a tensor read elsewhere, an op that is not a layout op), if it did.
    """
    nodes: list[NodeProto] = []
    name = conv.input[0]
    stop = None
    while len(nodes) < MAX_CHAIN:
        node = view.producer_of(name)
        if node is None:
            break
        if node.op_type not in BEFORE_CONV_OPS or node.domain not in ("", "ai.onnx"):
            stop = f"{node.op_type} {node.name} sits between the lowering and the conv (only layout ops may)"
            break
        stop = _shared_reason(view, name)
        if stop or not node.input:
            break
        nodes.append(node)
        name = node.input[0]
    nodes.reverse()
    for i, node in enumerate(nodes):  # start at the first Pad, else the first blocking op
        if node.op_type == "Pad":
            return nodes[i:], stop
    for i, node in enumerate(nodes):
        if node.op_type in ("SpaceToDepth", "Reshape"):
            return nodes[i:], stop
    return nodes, stop


def _walk_forward(view: GraphView, conv: NodeProto) -> tuple[list[NodeProto], str | None]:
    nodes: list[NodeProto] = []
    name = conv.output[0]
    while len(nodes) < MAX_CHAIN:
        users = _data_consumers(view, name)
        if any(u.op_type in AFTER_CONV_OPS for u in users):
            stop = _shared_reason(view, name)
            if stop:
                return nodes, stop
        if len(users) != 1 or view.is_graph_output(name):
            break
        node = users[0]
        if node.op_type not in AFTER_CONV_OPS or node.domain not in ("", "ai.onnx"):
            break
        if node.op_type == "Add":
            if view.ctx.ir_version < 4:  # moving a bias needs a new initializer, a graph input before IR 4
                break
            others = [i for i in node.input if i != name]
            if len(others) != 1 or _constant_operand(view, others[0]) is None:
                break
        elif node.input[0] != name or name in list(node.input)[1:]:
            break
        nodes.append(node)
        name = node.output[0]
    return nodes, None


def _shared_reason(view: GraphView, name: str) -> str | None:
    """Why a tensor cannot be absorbed into a chain (read by more than the next op), or None."""
    if view.is_graph_output(name):
        return f"{name} is a graph output"
    users = _data_consumers(view, name)
    if len(users) > 1:
        return f"{name} has another consumer ({users[1].op_type} {users[1].name})".replace(" )", ")")
    return None


def _is_candidate(back: list[NodeProto], forward: list[NodeProto]) -> bool:
    ops_back = {n.op_type for n in back}
    ops_fwd = {n.op_type for n in forward}
    if "SpaceToDepth" in ops_back or "DepthToSpace" in ops_fwd:
        return True
    return "Reshape" in ops_back and "Reshape" in ops_fwd


def _constant_operand(view: GraphView, name: str) -> np.ndarray | None:
    """A small constant (initializer or Constant node), or None."""
    t = view.initializer(name)
    if t is not None:
        return numpy_helper.to_array(t) if int(np.prod(t.dims)) <= MAX_VALUE_ELEMENTS else None
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant":
        return view.const_value(name)
    return None


@dataclass
class FoldPlan:
    """Everything needed to replace one chain by one dilated conv."""

    x: str
    y: str
    chain: list[NodeProto]
    dead: list[NodeProto]
    axes: dict[int, tuple[int, int, int]]  # input axis -> (dilation, pad begin, pad end)
    conv_axes: list[int | None]
    x_roles: list
    conv_in_roles: list
    conv_out_roles: list
    y_roles: list
    details: dict = field(default_factory=dict)
    moved: list = field(default_factory=list)  # (Add node, per-channel values) to apply after the new conv


ELEMENTWISE = {
    "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
    "HardSwish", "Gelu", "Mish", "Clip", "Identity", "Neg", "Abs", "Exp", "Log", "Sqrt", "Erf", "Cast",
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "PRelu", "Where",
}
MAX_SHAPE_WALK = 32


def _static_dims(view: GraphView, name: str, derived: dict[str, list[int | None]]) -> list[int | None] | None:
    """Dims of a tensor (int, or None where dynamic): from shape inference, from an earlier fold in this
    pass, or by broadcasting through elementwise ops (shape inference loses the rank after a
    shape-computed Reshape, so a second chain in a stack needs this)."""
    todo, order = [name], []
    seen: set[str] = set()
    while todo and len(order) <= MAX_SHAPE_WALK:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        order.append(current)
        if _known_dims(view, current, derived) is not None:
            continue
        node = view.producer_of(current)
        if node is None or node.op_type not in ELEMENTWISE or node.domain not in ("", "ai.onnx"):
            return None
        todo.extend(i for i in node.input if i)
    if todo:
        return None
    for current in reversed(order):
        if _known_dims(view, current, derived) is not None:
            continue
        node = view.producer_of(current)
        shapes = [derived.get(i) or _known_dims(view, i, derived) for i in node.input if i]
        if any(sh is None for sh in shapes):
            return None
        derived[current] = _broadcast(shapes)
    return _known_dims(view, name, derived)


def _known_dims(view: GraphView, name: str, derived: dict[str, list[int | None]]) -> list[int | None] | None:
    if name in derived:
        return derived[name]
    s = view.shape(name)
    if s is None or s.dims is None:
        return None
    return [d if isinstance(d, int) and d >= 0 else None for d in s.dims]


def _broadcast(shapes: list[list[int | None]]) -> list[int | None]:
    rank = max(len(sh) for sh in shapes)
    out: list[int | None] = []
    for i in range(rank):
        dims = [sh[i - rank + len(sh)] for sh in shapes if i - rank + len(sh) >= 0]
        static = {d for d in dims if d is not None and d != 1}
        if static:
            out.append(static.pop() if len(static) == 1 else None)
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return out


def _x_dims(view: GraphView, x: str, derived: dict[str, list[int | None]]) -> tuple[list[int | None], list[int]]:
    """Static dims of x (None where dynamic) and the indices of its dynamic dims."""
    dims = _static_dims(view, x, derived)
    if dims is None:
        raise Unprovable(f"the rank of {x} is unknown")
    return dims, [i for i, d in enumerate(dims) if d is None]


def _run_trace(view, domain, x, static_dims, dynamic, back, conv, weight_shape, later, shared) -> ChainTrace:
    """Follow the chain from x through the conv on one domain."""
    dims = [domain.const(d) if d is not None else domain.var(dynamic.index(a)) for a, d in enumerate(static_dims)]
    trace = ChainTrace(view, domain, x, dims, later, shared)
    for node in back:
        trace.step(node)
    if not trace.saw_block:
        raise Unprovable(NO_PATTERN)
    trace.conv(conv, weight_shape)
    return trace


def _plan_fold(view: GraphView, conv: NodeProto, back: list[NodeProto], forward: list[NodeProto],
               derived: dict[str, list[int | None]]) -> FoldPlan:
    """Prove the chain around `conv` is one dilated conv on every residue class; raise Unprovable if not."""
    weight_shape = _weight_shape(view, conv.input[1]) if len(conv.input) > 1 else None
    if weight_shape is None:
        raise Unprovable("the conv weight's shape is unknown")
    x = back[0].input[0] if back else conv.input[0]
    static_dims, dynamic = _x_dims(view, x, derived)
    later = {n.output[0] for n in back} | {conv.output[0]} | {n.output[0] for n in forward}
    periods = [1] * len(dynamic)
    traces: list[ChainTrace] = []
    end = None
    for _ in range(64):
        try:
            traces, end = _trace_all_classes(view, x, static_dims, dynamic, periods, back, conv, weight_shape,
                                             forward, later)
            break
        except NeedPeriod as need:
            periods[need.var] *= need.factor
            if periods[need.var] > MAX_PERIOD or math.prod(periods) > MAX_CLASSES:
                raise Unprovable("the shape arithmetic needs too many residue classes") from None
    if not traces:
        raise Unprovable("the shape arithmetic needs too many residue classes")
    first = traces[0]
    results = [t.result() for t in traces]
    axes, conv_axes = results[0]
    if any(r != results[0] for r in results[1:]):
        raise Unprovable("the folded pads differ between input sizes")
    used = forward[: end + 1]
    y = used[-1].output[0] if used else conv.output[0]
    dead = _dead_shape_nodes(view, back + used, traces, x, conv)
    _check_other_consumers(view, back, conv, used, dead)
    n_role = "n" if first.n_axis is not None else None
    spatial = [("s", a) if a is not None else None for a in conv_axes]
    conv_in = [n_role, "c" if first.c_axis is not None else None] + spatial
    conv_out = [n_role, "m" if first.out_channels != 1 else None] + spatial
    x_roles: list = []
    for a, d in enumerate(static_dims):
        if a == first.n_axis:
            x_roles.append("n")
        elif a == first.c_axis:
            x_roles.append("c")
        elif a in conv_axes:  # a unit axis of x too, when the chain pads it into a spatial axis
            x_roles.append(("s", a))
        elif d == 1:
            x_roles.append(None)
        else:
            raise Unprovable(f"axis {a} of the chain input does not reach the conv")
    details = {
        "pattern": "space_to_batch",
        "dynamic": bool(dynamic),
        "blocks": [first.blocks.get(a, 1) if a is not None else 1 for a in conv_axes],
        "residue_classes": len(traces),
        "chain_nodes_removed": len(back) + len(used),
        "shape_nodes_removed": len(dead),
    }
    y_roles = first.roles()
    for src, dst in ((x_roles, conv_in), (conv_out, y_roles)):  # checked before the graph is touched
        if {r for r in src if r is not None} != {r for r in dst if r is not None}:
            raise Unprovable("the chain's input or output layout does not hold the conv's axes")
    y_dims = []
    for role in y_roles:
        if role is None:
            y_dims.append(1)
        elif role == "n":
            y_dims.append(static_dims[first.n_axis])
        elif role == "m":
            y_dims.append(first.out_channels)
        else:
            a = role[1]
            dilation, begin, end_pad = axes[a]
            kk = first.inner[a][0]
            size = static_dims[a]
            y_dims.append(None if size is None else size + begin + end_pad - dilation * (kk - 1))
    derived[y] = y_dims
    return FoldPlan(x, y, back + used, dead, axes, conv_axes, x_roles, conv_in, conv_out, y_roles, details,
                    first.moved)


def _trace_all_classes(view, x, static_dims, dynamic, periods, back, conv, weight_shape, forward, later):
    """Run the chain on every residue class; the first class decides where the chain ends."""
    traces: list[ChainTrace] = []
    shared: dict[str, Sym] = {}
    end = None
    for combo in itertools.product(*[range(p) for p in periods]):
        def fresh() -> ChainTrace:
            domain = Domain(tuple(periods), tuple(combo), [1 if r == 0 else 0 for r in combo])
            return _run_trace(view, domain, x, static_dims, dynamic, back, conv, weight_shape, later, shared)

        trace = fresh()
        if end is None:
            end = _find_end(trace, forward)
            trace = fresh()
        for node in forward[: end + 1]:
            trace.step(node)
        if trace.roles() is None:
            raise Unprovable("the chain does not come back to a plain layout for every input size")
        traces.append(trace)
    return traces, end


def _find_end(trace: ChainTrace, forward: list[NodeProto]) -> int:
    """Index of the last forward node after which the layout is plain again."""
    end = None
    error: Unprovable | None = None
    for i, node in enumerate(forward):
        try:
            trace.step(node)
        except Unprovable as exc:
            error = exc
            break
        if trace.roles() is not None:
            end = i
    if end is None:
        raise error or Unprovable("the conv output is not brought back to the input's layout")
    return end


def _dead_shape_nodes(view: GraphView, chain: list[NodeProto], traces: list[ChainTrace], keep: str,
                      conv: NodeProto) -> list[NodeProto]:
    """Nodes left without a reader once the chain is gone (iterative dead-code removal, linear).

    It starts from the nodes the shape interpreter visited and the Shape/Size
    readers of chain tensors, and follows producers of whatever dies; `keep`
    (the chain input, read by the folded conv) and the conv itself stay (a
    Shape reader of the conv's output, as tf2onnx's transpose optimizer
    writes it, dies, and must not take the conv with it).
    """
    removed = {id(n) for n in chain}
    work: list[NodeProto] = []
    seen: set[int] = set()
    for trace in traces:
        for node in trace.interp.visited:
            if id(node) not in seen:
                seen.add(id(node))
                work.append(node)
    for node in chain:
        for o in node.output:
            for user in view.consumers_of(o):
                if user.op_type in SHAPE_READERS and id(user) not in seen:
                    seen.add(id(user))
                    work.append(user)

    def unused(node: NodeProto) -> bool:
        for o in node.output:
            if not o:
                continue
            if o == keep or view.is_graph_output(o):
                return False
            if any(id(u) not in removed for u in view.consumers_of(o)):
                return False
        return True

    dead: list[NodeProto] = []
    work.reverse()
    while work:
        node = work.pop()
        if id(node) in removed or node is conv or not unused(node):
            continue
        removed.add(id(node))
        dead.append(node)
        for i in node.input:
            p = view.producer_of(i) if i else None
            if p is not None and id(p) not in removed:
                work.append(p)
    order = {id(n): i for i, n in enumerate(view.nodes)}
    dead.sort(key=lambda n: order.get(id(n), 0))
    return dead


def _check_other_consumers(view, back, conv, forward, dead) -> None:
    gone = {id(n) for n in back} | {id(n) for n in forward} | {id(n) for n in dead} | {id(conv)}
    tensors = [n.output[0] for n in back] + [conv.output[0]] + [n.output[0] for n in forward[:-1]]
    if not forward:
        tensors = tensors[:-1]
    for name in tensors:
        if view.is_graph_output(name):
            raise Unprovable(f"{name} is a graph output")
        for user in view.consumers_of(name):
            if id(user) not in gone:
                raise Unprovable(f"{name} has another consumer ({user.op_type} {user.name})")


# ------------------------------------------------------------------ rewriting a chain


def _adapter(view: GraphView, src: str, src_roles: list, dst_roles: list, base: str, out: str | None):
    """Squeeze/Transpose/Unsqueeze nodes taking a tensor laid out as src_roles to dst_roles."""
    if {r for r in src_roles if r is not None} != {r for r in dst_roles if r is not None}:
        raise Unprovable("internal: layouts do not hold the same axes")
    su = [i for i, r in enumerate(src_roles) if r is None]
    du = [i for i, r in enumerate(dst_roles) if r is None]
    pair = min(len(su), len(du))
    squeeze_axes, unsqueeze_axes = su[pair:], du[pair:]
    mid_src = [r for i, r in enumerate(src_roles) if i not in squeeze_axes]
    mid_dst = [r for i, r in enumerate(dst_roles) if i not in unsqueeze_axes]
    units = iter([i for i, r in enumerate(mid_src) if r is None])
    where = {r: i for i, r in enumerate(mid_src) if r is not None}
    perm = [next(units) if r is None else where[r] for r in mid_dst]
    steps = []
    if squeeze_axes:
        steps.append(("Squeeze", squeeze_axes))
    if perm != list(range(len(perm))):
        steps.append(("Transpose", perm))
    if unsqueeze_axes:
        steps.append(("Unsqueeze", unsqueeze_axes))
    nodes: list[NodeProto] = []
    current = src
    for i, (op, arg) in enumerate(steps):
        last = i == len(steps) - 1
        name = view.ctx.fresh(f"{base}_{op.lower()}")
        output = out if (last and out is not None) else view.ctx.fresh(f"{base}_{op.lower()}_out")
        if op == "Squeeze":
            node = make_squeeze(view, current, output, arg, name)
        elif op == "Unsqueeze":
            node = make_unsqueeze(view, current, output, arg, name)
        else:
            node = helper.make_node("Transpose", [current], [output], name=name, perm=arg)
        nodes.append(node)
        current = output
    return nodes, current


def _relaid_constant(view: GraphView, user: NodeProto, name: str, value: np.ndarray,
                     reshaped: dict[str, list[int]]) -> str:
    """`value` as a constant: the initializer `name` reshaped in place (dims only) when `user`, now removed,
    was its only reader, else a new initializer."""
    t = view.initializers.get(name)
    if t is not None and view.initializer(name) is t and not view.consumers_of(name) and not view.is_graph_output(name):
        del t.dims[:]
        t.dims.extend(value.shape)
        reshaped[name] = list(value.shape)
        return name
    return view.add_initializer(numpy_helper.from_array(value, view.ctx.fresh(f"{user.name or 'add'}_value")))


def _apply_fold(view: GraphView, conv: NodeProto, plan: FoldPlan, before: ConvAttrs,
                removed_names: set[str], reshaped: dict[str, list[int]]) -> ConvAttrs:
    base = conv.name or "conv"
    for node in plan.chain + plan.dead:
        view.remove(node)
        removed_names.update(o for o in node.output if o)
    pre, pre_out = _adapter(view, plan.x, plan.x_roles, plan.conv_in_roles, f"{base}/dilated_in", None)
    if pre:
        view.insert_before(conv, pre)
    view.replace_input(conv, 0, pre_out)
    if conv.output[0] != plan.y:
        removed_names.add(conv.output[0])
    conv_out = view.ctx.fresh(f"{base}/dilated_out")
    moved = []
    current = conv_out
    rank = len(plan.conv_out_roles)
    for add, operand, values in plan.moved:  # per-channel constants, laid out for the conv output
        shape = [1] * rank
        if values.size > 1:
            shape[1] = values.size
        const = _relaid_constant(view, add, operand, values.reshape(shape), reshaped)
        out = view.ctx.fresh(f"{add.name or 'add'}_out")
        moved.append(helper.make_node("Add", [current, const], [out], name=view.ctx.fresh(add.name or "add")))
        current = out
    post, _ = _adapter(view, current, plan.conv_out_roles, plan.y_roles, f"{base}/dilated_out", plan.y)
    if not post:
        if moved:
            moved[-1].output[0] = plan.y
        else:
            conv_out = plan.y
    view.set_output(conv, 0, conv_out)
    if moved or post:
        view.insert_after(conv, moved + post)
    dilations, begins, ends = list(before.dilations), list(before.pads_begin), list(before.pads_end)
    for k, a in enumerate(plan.conv_axes):
        if a is None:
            continue
        dilations[k], begins[k], ends[k] = plan.axes[a]
    after = replace(before, dilations=tuple(dilations), pads_begin=tuple(begins), pads_end=tuple(ends),
                    auto_pad="NOTSET")
    after.apply(conv)
    return after


# ------------------------------------------------------------------ zero-inserted kernels


def _weight_shape(view: GraphView, name: str) -> list[int] | None:
    s = view.shape(name)
    if s is not None and s.dims is not None and all(isinstance(d, int) for d in s.dims):
        return list(s.dims)
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant":
        value = view.const_value(name)
        return None if value is None else list(value.shape)
    return None


def _weight_array(view: GraphView, name: str) -> np.ndarray | None:
    t = view.initializer(name)
    if t is not None:
        if t.data_location == TensorProto.EXTERNAL:
            return None
        return numpy_helper.to_array(t)
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant":
        return view.const_value(name)
    return None


def _store_weight(view: GraphView, node: NodeProto, array: np.ndarray, dropped: set[str],
                  reshaped: dict[str, list[int]]) -> None:
    """Put the new kernel in place: in the initializer when only this node reads it, else in a copy."""
    name = node.input[1]
    t = view.initializers.get(name)
    sole = (
        t is not None
        and view.initializer(name) is t
        and [id(u) for u in view.consumers_of(name)] == [id(node)]
        and not view.is_graph_output(name)
    )
    if sole:
        t.CopyFrom(numpy_helper.from_array(array, name))
        view.tensor_changed(name)
        reshaped[name] = list(array.shape)
        return
    new_name = view.ctx.fresh(f"{name}_dilated")
    view.add_initializer(numpy_helper.from_array(array, new_name))
    view.replace_input(node, 1, new_name)
    producer = view.producer_of(name)
    if producer is not None and producer.op_type == "Constant" and not view.consumers_of(name) \
            and not view.is_graph_output(name):
        view.remove(producer)
    dropped.add(name)


@dataclass
class KernelChange:
    after: ConvAttrs
    array: np.ndarray
    details: dict
    counter: str


def _input_sizes(view: GraphView, node: NodeProto, rank: int) -> list[int | None]:
    s = view.shape(node.input[0])
    if s is None or s.dims is None or len(s.dims) != rank + 2:
        return [None] * rank
    return [d if isinstance(d, int) else None for d in s.dims[2:]]


def _compact(view: GraphView, node: NodeProto, attrs: ConvAttrs) -> tuple[KernelChange | None, str | None]:
    """The compact kernel of a zero-inserted one, or (None, reason or None)."""
    if all(k < 3 for k in attrs.kernel_shape):
        return None, None
    w = _weight_array(view, node.input[1])
    if w is None or w.dtype.type not in FLOAT_TYPES or w.ndim != attrs.rank + 2:
        return None, None
    factors = []
    for a, K in enumerate(attrs.kernel_shape):
        if K < 3:
            factors.append(1)
            continue
        if np.any(np.take(w, 1, axis=a + 2)):  # tap 1 must be zero for any d >= 2 (the usual early exit)
            factors.append(1)
            continue
        other = tuple(i for i in range(w.ndim) if i != a + 2)
        nonzero = np.flatnonzero(np.any(w != 0, axis=other))
        if nonzero.size == 0:
            factors.append(1)
            continue
        g = K - 1
        for i in nonzero:
            g = math.gcd(g, int(i))
        factors.append(g)
    if all(f == 1 for f in factors):
        return None, None
    index = (slice(None), slice(None)) + tuple(slice(None, None, f) for f in factors)
    compact = np.ascontiguousarray(w[index])
    after = replace(
        attrs,
        kernel_shape=tuple((K - 1) // f + 1 for K, f in zip(attrs.kernel_shape, factors)),
        dilations=tuple(d * f for d, f in zip(attrs.dilations, factors)),
    )
    if after.auto_pad != "NOTSET" or after.output_shape is not None:
        resolved = after.resolved(_input_sizes(view, node, attrs.rank))
        if resolved is None:
            return None, (f"zero-inserted kernel (taps every {factors}), but auto_pad {attrs.auto_pad} pads depend "
                          "on a dynamic input size and onnxruntime refuses SAME with dilations")
        after = resolved
    details = {"pattern": "zero_inserted_kernel", "factors": factors}
    return KernelChange(after, compact, details, "kernels_compacted"), None


def _expand(view: GraphView, node: NodeProto, attrs: ConvAttrs) -> tuple[KernelChange | None, str | None]:
    """The zero-inserted kernel of a dilated conv (dilations reset to 1)."""
    if all(d == 1 for d in attrs.dilations):
        return None, "no dilations to expand"
    w = _weight_array(view, node.input[1])
    if w is None or w.ndim != attrs.rank + 2:
        return None, "the weight is not a constant"
    shape = list(w.shape[:2]) + [d * (k - 1) + 1 for d, k in zip(attrs.dilations, attrs.kernel_shape)]
    expanded = np.zeros(shape, dtype=w.dtype)
    index = (slice(None), slice(None)) + tuple(slice(None, None, d) for d in attrs.dilations)
    expanded[index] = w
    after = replace(attrs, kernel_shape=tuple(shape[2:]), dilations=(1,) * attrs.rank)
    details = {"pattern": "expanded_dilations", "factors": list(attrs.dilations)}
    return KernelChange(after, expanded, details, "kernels_expanded"), None


# ------------------------------------------------------------------ the pass


@register
class DilatedPass(Rule):
    name = PASS_NAME
    phase = "fold"
    order = 20
    repeat = True
    options = (Option("expand_dilations", bool, False, "turn dilations into zero-inserted kernels"),)
    description = ("fold SpaceToBatch/BatchToSpace lowerings (static or shape-computed) and zero-inserted "
                   "kernels into one Conv with dilations; expand_dilations does the inverse for kernels")

    counters = COUNTERS

    def begin(self, run: ViewRun) -> None:
        run.state = _BodyState()

    def check_conv(self, run: ViewRun, conv: Conv) -> None:
        if conv.node.op_type not in ("Conv", "ConvTranspose"):
            raise NotApplicable(f"{NO_PATTERN} (quantized convolutions are not handled)", with_before=False)
        ambiguous = conv.attrs.ambiguous_output_reason()
        if ambiguous:
            raise NotApplicable(ambiguous)

    def match(self, run: ViewRun, conv: Conv) -> tuple:
        """The fold plan for the space-to-batch chain around the conv, else the kernel change alone; no edits."""
        view, node = run.view, conv.node
        plan, chain_reason = None, None
        if node.op_type == "Conv":
            (back, back_stop), (forward, forward_stop) = _walk_back(view, node), _walk_forward(view, node)
            if _is_candidate(back, forward):
                plan, chain_reason = _try_plan(view, node, back, forward, run.state.derived)
                stop = back_stop or forward_stop
                if plan is None and chain_reason == NO_PATTERN and stop:
                    chain_reason = stop
                elif plan is None and forward_stop:  # the walk after the conv stopped at a shared tensor: say so
                    chain_reason = f"{chain_reason} ({forward_stop})"
        if plan is not None:
            return plan, chain_reason, None
        change, kernel_reason = _kernel_change(run, node, conv.attrs)
        if change is None:
            if chain_reason and chain_reason != NO_PATTERN:
                reason = f"space-to-batch chain not folded: {chain_reason}"
            elif kernel_reason and kernel_reason != "no dilations to expand":
                reason = kernel_reason
            else:
                reason = kernel_reason or NO_PATTERN
            raise NotApplicable(reason, [node])
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
            current = _apply_fold(view, node, plan, before, state.removed_names, state.reshaped)
            run.count("s2b_folded")
            run.count("shape_nodes_removed", len(plan.dead))
            details.update(plan.details)
            details["formula"] = _formula(plan, current)
            change, _ = _kernel_change(run, node, current)
        if change is not None:
            _store_weight(view, node, change.array, state.dropped, state.reshaped)
            change.after.apply(node)
            current = change.after
            run.count(change.counter)
            details["kernel"] = change.details
            if chain_reason and chain_reason != NO_PATTERN:
                details["space_to_batch"] = f"not folded: {chain_reason}"
        return Rewritten(current, "", details)

    def end(self, run: ViewRun) -> None:
        state, view = run.state, run.view
        if state.removed_names or state.dropped:
            run.cleanup.drop_initializers(state.dropped | _inputs_of_removed(view))
        if not view.is_function and (state.removed_names or state.reshaped):
            run.cleanup.forget_shape(state.removed_names | set(state.reshaped))


def _kernel_change(run: ViewRun, node: NodeProto, current: ConvAttrs) -> tuple["KernelChange | None", str | None]:
    """The zero-inserted kernel compaction (or, with expand_dilations, the expansion), or why not; no edits."""
    view = run.view
    change, kernel_reason = (_expand if run.options.expand_dilations else _compact)(view, node, current)
    if change is not None and view.ctx.ir_version < 4 and view.initializer(node.input[1]) is not None:
        change, kernel_reason = None, (f"{change.details['pattern'].replace('_', ' ')}, but IR version "
                                       f"{view.ctx.ir_version} lists weights as graph inputs: a new kernel "
                                       "would change the graph's inputs")
    return change, kernel_reason


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


def _try_plan(view, node, back, forward, derived) -> tuple[FoldPlan | None, str | None]:
    try:
        return _plan_fold(view, node, back, forward, derived), None
    except Unprovable as exc:
        return None, str(exc)


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
