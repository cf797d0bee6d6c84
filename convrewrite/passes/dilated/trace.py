"""Factor tracking along a space-to-batch chain: which axes carry which block factor, traced through every op of the chain on residue-class affine shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence
import numpy as np
from onnx import NodeProto

from ...conv import ConvAttrError, ConvAttrs
from ...graph import INT32_MAX, GraphView, attr
from ...symbolic import (
    MALFORMED, Domain, Lin, ShapeInterpreter, Sym, Unprovable, check_divisible, exact_quotient, product,
)
from .common import constant_operand


Axis = tuple  # tuple[Factor, ...], outer to inner; () is a unit axis


@dataclass(frozen=True)
class Factor:
    """One index of a tensor axis: kind x/p/q/j/o/m/y (see the module docstring), the input axis it comes from."""

    kind: str
    axis: int
    size: Lin


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
        value = constant_operand(self.view, other)
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
