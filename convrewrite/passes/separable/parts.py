"""What the separable rule works with: a conv's weight and bias as it changes them, the layout path to its reader, and the weight arithmetic (scaling output channels, fusing a pair)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence
import numpy as np
from onnx import NodeProto, TensorProto, numpy_helper
from ...conv import ConvAttrs
from ...engine import Refusal
from ...graph import FOLD_MAX_ELEMENTS, GraphView, attr


PASS = "separable"


STD_DOMAINS = ("", "ai.onnx")


BIAS_SLOT = 2


# Fusion that costs more than this many times the pair's multiply-adds needs `force`.
FUSE_COST_LIMIT = 4.0


FLOAT_TYPES = {
    TensorProto.FLOAT: np.float32,
    TensorProto.FLOAT16: np.float16,
    TensorProto.DOUBLE: np.float64,
}


COUNTERS = ("pairs_canonicalized", "pairs_fused", "batchnorms_folded", "bias_adds_folded", "scale_muls_folded")


class CannotFold(Refusal):
    """A value this rewrite needs is not available; the message says why."""


@dataclass
class ConvState:
    """One convolution's weight and bias as this pass changes them (float64, written back once)."""

    node: NodeProto
    label: str
    attrs: ConvAttrs
    wshape: list[int]
    dtype: np.dtype
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    w_changed: bool = False
    b_changed: bool = False
    drop_bias: bool = False
    done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)

    @property
    def out_channels(self) -> int:
        if self.attrs.transposed:
            return self.wshape[1] * self.attrs.group
        return self.wshape[0]

    @property
    def has_bias(self) -> bool:
        return len(self.node.input) > BIAS_SLOT and bool(self.node.input[BIAS_SLOT])

    @property
    def is_depthwise(self) -> bool:
        return not self.attrs.transposed and self.attrs.group > 1 and self.wshape[1] == 1

    @property
    def kernel_size(self) -> int:
        return int(np.prod(self.attrs.kernel_shape))


def scale_out_channels(w: np.ndarray, scale: np.ndarray, attrs: ConvAttrs) -> np.ndarray:
    """Multiply each output channel's filter by its scale (ConvTranspose: axis 1 within each group)."""
    spatial = w.shape[2:]
    if not attrs.transposed:
        return w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    g = attrs.group
    cin, per_group = w.shape[0], w.shape[1]
    grouped = w.reshape((g, cin // g, per_group) + spatial)
    factors = scale.reshape((g, 1, per_group) + (1,) * len(spatial))
    return (grouped * factors).reshape(w.shape)


def fuse_weights(d: np.ndarray, p: np.ndarray, c: int, mult: int, kernel: Sequence[int]) -> np.ndarray:
    """W[o, c, :] = sum_j P[o, c*m + j] * D[c*m + j, 0, :]."""
    d2 = d.reshape((c, mult, -1))
    p2 = p.reshape((p.shape[0], c, mult))
    return np.einsum("ocj,cjk->ock", p2, d2).reshape((p.shape[0], c) + tuple(kernel))


def check_pointwise(attrs: ConvAttrs) -> None:
    """Refusal saying why a conv is not a pointwise conv (nothing when it is)."""
    if attrs.transposed:
        raise Refusal("the conv after it is a ConvTranspose")
    if any(k != 1 for k in attrs.kernel_shape):
        raise Refusal(f"the conv after it has kernel {list(attrs.kernel_shape)}, not a pointwise conv")
    if attrs.group != 1:
        raise Refusal(f"pointwise conv has group {attrs.group}")
    if any(s != 1 for s in attrs.strides):
        raise Refusal(f"pointwise conv has stride {_one_or_list(attrs.strides)}")
    if attrs.auto_pad == "NOTSET" and any(attrs.pads):
        raise Refusal(f"pointwise conv has pads {list(attrs.pads)}")
    if any(d != 1 for d in attrs.dilations):
        raise Refusal(f"pointwise conv has dilation {_one_or_list(attrs.dilations)}")


def _one_or_list(values: Sequence[int]) -> str:
    distinct = set(values)
    return str(next(iter(distinct))) if len(distinct) == 1 else str(list(values))


def constant_value(view: GraphView, name: str) -> np.ndarray | None:
    """A constant's value; initializers are read directly (the common case, and the cheap one)."""
    t = view.initializer(name) if name else None
    if t is not None and t.data_location != TensorProto.EXTERNAL:
        return numpy_helper.to_array(t)
    return view.const_value(name)


def why_not_constant(view: GraphView, name: str) -> str:
    if not name:
        return "is missing"
    if view.is_overridable_initializer(name):
        return "is an initializer that is also a graph input (it can be overridden)"
    if name in view.input_set:
        return "is a graph input"
    node = view.producer_of(name)
    if node is not None:
        return (f"is computed by {node.op_type} and does not fold to a constant "
                f"(chains are folded up to {FOLD_MAX_ELEMENTS} elements)")
    return "is not a constant"


def clean_name(base: str) -> str:
    return base.replace("/", "_").strip("_") or "separable"


def batchnorm_affine(view: GraphView, bn: NodeProto, channel_axis: int, m: int, what: str):
    """(scale, shift, the size of the terms it rounds) per output channel of an inference BatchNormalization
    after the conv (its channels on `channel_axis`); Refusal saying why it stays."""
    if len([o for o in bn.output if o]) != 1:
        raise Refusal(f"{what} kept: it has running-statistics outputs (training mode)", [bn])
    if attr(bn, "training_mode", 0):
        raise Refusal(f"{what} kept: training_mode=1", [bn])
    if attr(bn, "spatial", 1) == 0:
        raise Refusal(f"{what} kept: spatial=0 normalizes per element, not per channel", [bn])
    if channel_axis != 1:
        raise Refusal(f"{what} kept: it normalizes axis 1, where the conv's channels are on axis {channel_axis}", [bn])
    params = []
    for label, name in zip(("scale", "B", "mean", "var"), list(bn.input[1:5]) + [""] * 4):
        value = constant_value(view, name)
        if value is None:
            raise Refusal(f"{what} kept: its {label} is not a constant", [bn])
        if value.size != m:
            raise Refusal(f"{what} kept: its {label} has {value.size} values for {m} channels", [bn])
        params.append(value.astype(np.float64).reshape(m))
    gamma, beta, mean, var = params
    eps = float(attr(bn, "epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale, np.abs(mean * scale) + np.abs(beta)
