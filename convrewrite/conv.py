"""ConvAttrs: one normalized view of Conv, ConvTranspose, QLinearConv and ConvInteger.

Every pass reads a convolution's attributes through `ConvAttrs.from_node`
(defaults filled, kernel taken from the weight when the attribute is absent,
pads split into begin/end) and writes them back with `ConvAttrs.apply`, which
touches only what changed so untouched attributes stay byte-identical. The
math that makes rewrites exact (output length, SAME pads, adding or dropping
a spatial axis) lives here as pure functions, tested without any graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import onnx
from onnx import helper

CONV_OPS = ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger")

# Where the data input and the weight sit for each op.
WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "QLinearConv": 3, "ConvInteger": 1}
BIAS_INPUT = {"Conv": 2, "ConvTranspose": 2, "QLinearConv": 8}

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def attribute_refs(node: onnx.NodeProto) -> str:
    """'dilations=@d, ...' for a function body's node whose attributes refer to the function's; '' when none."""
    return ", ".join(f"{a.name}=@{a.ref_attr_name}" for a in node.attribute if a.ref_attr_name)


class ConvAttrError(ValueError):
    """The node's attributes contradict each other or its weight."""


@dataclass(frozen=True)
class ConvAttrs:
    """The attributes of one convolution, explicit and per spatial axis."""

    op_type: str
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    group: int = 1
    auto_pad: str = "NOTSET"
    output_padding: tuple[int, ...] = ()
    output_shape: tuple[int, ...] | None = None
    present: frozenset[str] = field(default=frozenset(), compare=False)

    # ------------------------------------------------------------ building

    @property
    def rank(self) -> int:
        return len(self.kernel_shape)

    @property
    def transposed(self) -> bool:
        return self.op_type == "ConvTranspose"

    @property
    def pads(self) -> tuple[int, ...]:
        """ONNX layout: all begins, then all ends."""
        return self.pads_begin + self.pads_end

    @classmethod
    def from_node(cls, node: onnx.NodeProto, weight_shape: Sequence[int] | None = None) -> "ConvAttrs":
        """Read a node's attributes; `weight_shape` supplies the kernel when the attribute is absent."""
        if node.op_type not in CONV_OPS:
            raise ConvAttrError(f"{node.op_type} is not a convolution")
        refs = attribute_refs(node)
        if refs:
            raise ConvAttrError(f"{refs} set per call site of the function (not resolved here)")
        attrs = _read_attributes(node)
        present = frozenset(attrs)
        kernel = attrs.get("kernel_shape")
        if weight_shape is not None and len(weight_shape) < 3:
            raise ConvAttrError(f"weight has rank {len(weight_shape)}; a convolution weight has rank >= 3")
        if kernel is None:
            if weight_shape is None:
                raise ConvAttrError("kernel_shape is absent and the weight's shape is unknown")
            kernel = list(weight_shape[2:])
        kernel = tuple(int(k) for k in kernel)
        if weight_shape is not None:
            wk = tuple(weight_shape[2:])
            if len(wk) != len(kernel) or any(isinstance(w, int) and w != k for w, k in zip(wk, kernel)):
                raise ConvAttrError(f"kernel_shape {list(kernel)} disagrees with the weight's shape {list(weight_shape)}")
        n = len(kernel)
        if n == 0:
            raise ConvAttrError("a convolution needs at least one spatial axis")
        strides = _per_axis(attrs.get("strides"), n, 1, "strides")
        dilations = _per_axis(attrs.get("dilations"), n, 1, "dilations")
        pads = attrs.get("pads")
        if pads is None:
            pads = [0] * (2 * n)
        if len(pads) != 2 * n:
            raise ConvAttrError(f"pads has {len(pads)} values; expected {2 * n}")
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        if auto_pad not in AUTO_PADS:
            raise ConvAttrError(f"unknown auto_pad {auto_pad!r}")
        output_padding: tuple[int, ...] = ()
        output_shape = None
        if node.op_type == "ConvTranspose":
            output_padding = _per_axis(attrs.get("output_padding"), n, 0, "output_padding")
            if "output_shape" in attrs:
                shape = tuple(int(v) for v in attrs["output_shape"])
                # The spec allows the full [N, C, ...] shape too; keep the spatial part.
                output_shape = shape[-n:] if len(shape) >= n else shape
        if any(s < 1 for s in strides) or any(d < 1 for d in dilations) or any(k < 1 for k in kernel):
            raise ConvAttrError("kernel_shape, strides and dilations must be positive")
        return cls(
            op_type=node.op_type,
            kernel_shape=kernel,
            strides=strides,
            dilations=dilations,
            pads_begin=tuple(int(p) for p in pads[:n]),
            pads_end=tuple(int(p) for p in pads[n:]),
            group=int(attrs.get("group", 1)),
            auto_pad=auto_pad,
            output_padding=output_padding,
            output_shape=output_shape,
            present=present,
        )

    def apply(self, node: onnx.NodeProto) -> None:
        """Write these attributes onto `node`, keeping attributes that did not change.

        An attribute is written when its value changed or when the node had it;
        it is removed only when it was present and now holds its default in a
        way the old form could not express (e.g. pads after auto_pad resolved).
        """
        old = {a.name: a for a in node.attribute}
        n = self.rank
        wanted: dict[str, object] = {}
        wanted["kernel_shape"] = list(self.kernel_shape)
        wanted["strides"] = list(self.strides)
        wanted["dilations"] = list(self.dilations)
        wanted["pads"] = list(self.pads)
        wanted["group"] = self.group
        wanted["auto_pad"] = self.auto_pad
        if self.transposed:
            wanted["output_padding"] = list(self.output_padding)
            if self.output_shape is not None:
                wanted["output_shape"] = list(self.output_shape)
        defaults = {
            "strides": [1] * n,
            "dilations": [1] * n,
            "pads": [0] * (2 * n),
            "group": 1,
            "auto_pad": "NOTSET",
            "output_padding": [0] * n,
        }
        if self.auto_pad != "NOTSET":
            wanted.pop("pads")  # pads and SAME/VALID auto_pad are exclusive
        new_attrs = []
        for name, value in wanted.items():
            if name not in old and name in defaults and value == defaults[name]:
                continue
            if name in old and helper.get_attribute_value(old[name]) == _encode(value):
                new_attrs.append(old[name])
                continue
            new_attrs.append(helper.make_attribute(name, value))
        kept_names = {a.name for a in new_attrs}
        # Attributes we do not model (none in the spec today) are kept as they were.
        modelled = set(defaults) | {"kernel_shape", "output_shape"}
        extra = [a for a in node.attribute if a.name not in modelled and a.name not in kept_names]
        order = {a.name: i for i, a in enumerate(node.attribute)}
        merged = sorted(new_attrs + extra, key=lambda a: (order.get(a.name, len(order)), a.name))
        del node.attribute[:]
        node.attribute.extend(merged)

    # ---------------------------------------------------------------- math

    def output_length(self, axis: int, size: int) -> int:
        """Output size on spatial `axis` for input size `size` (explicit pads only)."""
        return output_length(
            size,
            self.kernel_shape[axis],
            self.strides[axis],
            self.dilations[axis],
            self.pads_begin[axis],
            self.pads_end[axis],
            transposed=self.transposed,
            output_padding=self.output_padding[axis] if self.transposed else 0,
        )

    def resolved(self, spatial: Sequence[int | None] | None = None) -> "ConvAttrs | None":
        """These attributes with `auto_pad`/`output_shape` turned into explicit pads.

        `spatial` holds the static input sizes (None where dynamic). Returns None
        when the pads depend on a size that is not known.
        """
        if self.auto_pad == "NOTSET" and self.output_shape is None:
            return self
        n = self.rank
        spatial = list(spatial) if spatial is not None else [None] * n
        begins, ends = [], []
        for i in range(n):
            pads = axis_pads(self, i, spatial[i] if i < len(spatial) else None)
            if pads is None:
                return None
            begins.append(pads[0])
            ends.append(pads[1])
        return replace(
            self,
            auto_pad="NOTSET",
            pads_begin=tuple(begins),
            pads_end=tuple(ends),
            output_shape=None,
        )

    def with_axis(self, position: int) -> "ConvAttrs":
        """Insert a unit spatial axis at spatial `position` (exact by construction)."""
        if not 0 <= position <= self.rank:
            raise ValueError(f"axis position {position} outside 0..{self.rank}")

        def ins(values: tuple[int, ...], unit: int) -> tuple[int, ...]:
            return values[:position] + (unit,) + values[position:]

        output_shape = self.output_shape
        if output_shape is not None:
            output_shape = ins(output_shape, 1)
        return replace(
            self,
            kernel_shape=ins(self.kernel_shape, 1),
            strides=ins(self.strides, 1),
            dilations=ins(self.dilations, 1),
            pads_begin=ins(self.pads_begin, 0),
            pads_end=ins(self.pads_end, 0),
            output_padding=ins(self.output_padding, 0) if self.transposed else (),
            output_shape=output_shape,
        )

    def ambiguous_output_reason(self) -> str | None:
        """Why tools disagree on this conv's output shape (so no rewrite can be checked), or None."""
        if self.transposed and self.auto_pad in ("SAME_UPPER", "SAME_LOWER") and any(self.output_padding):
            return ("SAME auto_pad with output_padding: onnx shape inference makes the output D*s + output_padding, "
                    "onnxruntime D*s but plans its buffers with onnx's length, so a rewritten graph may not run")
        return None

    def droppable_axis_reason(self, axis: int) -> str | None:
        """Why spatial `axis` cannot be dropped assuming the input is 1 there; None when it can."""
        if self.kernel_shape[axis] != 1:
            return f"kernel is {self.kernel_shape[axis]} on spatial axis {axis}, not 1"
        if self.auto_pad == "NOTSET":
            if self.pads_begin[axis] or self.pads_end[axis]:
                return f"pads on spatial axis {axis} are {self.pads_begin[axis]},{self.pads_end[axis]}, not 0"
        elif self.auto_pad.startswith("SAME") and self.transposed and self.strides[axis] != 1:
            return f"SAME padding with stride {self.strides[axis]} on spatial axis {axis} of a transposed conv"
        if self.transposed:
            if self.strides[axis] != 1:
                return f"stride {self.strides[axis]} on spatial axis {axis} of a transposed conv grows that axis"
            if self.output_padding[axis]:
                return f"output_padding {self.output_padding[axis]} on spatial axis {axis}"
            if self.output_shape is not None and self.output_shape[axis] != 1:
                return f"output_shape {self.output_shape[axis]} on spatial axis {axis}"
        return None

    def without_axis(self, axis: int) -> "ConvAttrs":
        """Drop spatial `axis` (callers check `droppable_axis_reason` first)."""
        reason = self.droppable_axis_reason(axis)
        if reason:
            raise ValueError(reason)

        def drop(values: tuple[int, ...]) -> tuple[int, ...]:
            return values[:axis] + values[axis + 1 :]

        output_shape = self.output_shape
        if output_shape is not None:
            output_shape = drop(output_shape)
        return replace(
            self,
            kernel_shape=drop(self.kernel_shape),
            strides=drop(self.strides),
            dilations=drop(self.dilations),
            pads_begin=drop(self.pads_begin),
            pads_end=drop(self.pads_end),
            output_padding=drop(self.output_padding) if self.transposed else (),
            output_shape=output_shape,
        )

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kernel_shape": list(self.kernel_shape),
            "strides": list(self.strides),
            "dilations": list(self.dilations),
            "pads": list(self.pads),
            "group": self.group,
            "auto_pad": self.auto_pad,
        }
        if self.transposed:
            out["output_padding"] = list(self.output_padding)
            if self.output_shape is not None:
                out["output_shape"] = list(self.output_shape)
        return out


def _read_attributes(node: onnx.NodeProto) -> dict[str, object]:
    """A node's attributes by name (ints and strings read directly: this runs once per conv)."""
    out: dict[str, object] = {}
    for a in node.attribute:
        if a.type == onnx.AttributeProto.INTS:
            out[a.name] = list(a.ints)
        elif a.type == onnx.AttributeProto.INT:
            out[a.name] = a.i
        elif a.type == onnx.AttributeProto.STRING:
            out[a.name] = a.s
        else:
            out[a.name] = helper.get_attribute_value(a)
    return out


def _per_axis(values, n: int, default: int, name: str) -> tuple[int, ...]:
    if values is None:
        return (default,) * n
    values = tuple(int(v) for v in values)
    if len(values) != n:
        raise ConvAttrError(f"{name} has {len(values)} values; the kernel has {n} spatial axes")
    return values


def _encode(value: object) -> object:
    """What helper.get_attribute_value returns for a value we would write."""
    if isinstance(value, str):
        return value.encode()
    return value


# -------------------------------------------------------------------- pure math


def effective_kernel(k: int, d: int) -> int:
    """The span of a dilated kernel: d*(k-1)+1."""
    return d * (k - 1) + 1


def output_length(
    size: int,
    k: int,
    s: int = 1,
    d: int = 1,
    pb: int = 0,
    pe: int = 0,
    *,
    transposed: bool = False,
    output_padding: int = 0,
) -> int:
    """ONNX output size on one axis with explicit pads."""
    if transposed:
        return s * (size - 1) + output_padding + effective_kernel(k, d) - pb - pe
    return (size + pb + pe - effective_kernel(k, d)) // s + 1


def same_pads(size: int | None, k: int, s: int, d: int, lower: bool) -> tuple[int, int] | None:
    """Explicit (begin, end) pads of a SAME_UPPER / SAME_LOWER Conv; None if they depend on an unknown size."""
    span = effective_kernel(k, d)
    if s == 1:
        total = span - 1
    elif size is None:
        return None
    else:
        out = -(-size // s)
        total = max(0, (out - 1) * s + span - size)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def same_pads_transposed(
    size: int | None, k: int, s: int, d: int, output_padding: int, out: int | None, lower: bool
) -> tuple[int, int] | None:
    """Pads of a ConvTranspose with SAME auto_pad or an output_shape (ONNX spec formula)."""
    if size is None:
        return None
    if out is None:
        out = size * s
    total = s * (size - 1) + output_padding + effective_kernel(k, d) - out
    if total < 0:
        return None
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def axis_pads(attrs: ConvAttrs, axis: int, size: int | None) -> tuple[int, int] | None:
    """Explicit pads for one axis, resolving auto_pad/output_shape; None when not static."""
    k, s, d = attrs.kernel_shape[axis], attrs.strides[axis], attrs.dilations[axis]
    if attrs.transposed:
        if attrs.output_shape is not None:
            # The spec (and onnxruntime): the bigger half at the end only for SAME_UPPER, else at the front.
            lower = attrs.auto_pad != "SAME_UPPER"
            return same_pads_transposed(size, k, s, d, attrs.output_padding[axis], attrs.output_shape[axis], lower)
        if attrs.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if attrs.output_padding[axis]:
                # The spec and onnxruntime give D*s, onnx shape inference D*s + output_padding: explicit pads
                # would change the shapes the checker infers for the model, so the auto_pad stays.
                return None
            lower = attrs.auto_pad == "SAME_LOWER"
            if s == 1:
                total = attrs.output_padding[axis] + effective_kernel(k, d) - 1
                small, big = total // 2, total - total // 2
                return (big, small) if lower else (small, big)
            return same_pads_transposed(size, k, s, d, attrs.output_padding[axis], None, lower)
        if attrs.auto_pad == "VALID":
            return (0, 0)
        return attrs.pads_begin[axis], attrs.pads_end[axis]
    if attrs.auto_pad == "VALID":
        return (0, 0)
    if attrs.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return same_pads(size, k, s, d, attrs.auto_pad == "SAME_LOWER")
    return attrs.pads_begin[axis], attrs.pads_end[axis]
