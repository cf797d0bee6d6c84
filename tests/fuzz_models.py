"""Random small conv graphs for the property-based fuzz tests, and the property every pass must keep.

A case is one Conv or ConvTranspose (rank 1-3, kernel 1-7, stride 1-3,
dilation 1-3, pads 0-3 asymmetric or any auto_pad, group 1 / depthwise /
2 groups, bias or not, float32 or float16, output_padding or output_shape,
sometimes a zero-inserted kernel) inside a small graph: an Unsqueeze/Squeeze
wrapper or a static unit axis, channels-last Transposes, a Pad before, and
after it in any order a BatchNormalization, an activation, a pointwise conv
(the depthwise + pointwise pair), a Slice; sometimes a residual Add, a twin
conv sharing the input and weights, an intermediate tensor that is also a
graph output or has a second reader. Opsets 9/11/13/18 (attribute and input
forms of Pad, Slice, Squeeze, Unsqueeze), constants as initializers or
Constant nodes, named or unnamed nodes, symbolic batch or length.

The parameters are drawn valid (input lengths computed from the kernel, pads
and strides), so the original runs on onnxruntime; the builder checks that
onnxruntime's output shape is the one computed here. What onnxruntime refuses
is not drawn: SAME with dilations on Conv, output_padding >= stride, a SAME
ConvTranspose whose total padding would be negative. ConvTranspose
output_shape cases that onnx 1.23 shape inference gets wrong (a lost dim), and
the rare SAME + output_padding ConvTranspose that onnxruntime cannot run at
all (it plans buffers with onnx's wrong length), are rejected with `assume`
(events in --hypothesis-show-statistics).

Tolerance (`Case.atol`): each output carries a forward error bound. A rewrite
may round differently from the original at every op (a folded BatchNorm or
bias rounds the new weights once, a fused pair its product, every op its
output), so with u the dtype's unit roundoff (2^-24 float32, 2^-11 float16),
M a bound on |value| and L the op's Lipschitz bound (a conv's largest
per-output-channel sum of |w|, a BatchNorm's largest |scale/sqrt(var+eps)|):

    E_out = L * E_in + ROUNDINGS * u * M_out,   E_input = 0,

and two models each within E of exact arithmetic differ by at most 2E. The
comparison allows |a - b| <= base_atol + 2E + base_rtol * |a| with base
(1e-5, 1e-4) for float32 and (1e-3, 1e-2) for float16. Inputs are uniform
in [-1, 1] and weights in [-1, 1]/sqrt(fan_in), so float32 bounds stay under
base_atol and float16 ones reach a few 1e-3 for large kernels.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from hypothesis import assume, currently_in_test_context, event, strategies as st
from onnx import TensorProto, helper, numpy_helper

from convrewrite import rewrite
from util import MAX_IR, run

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
UNIT_ROUNDOFF = {FLOAT: 2.0**-24, FLOAT16: 2.0**-11}
BASE_TOLERANCE = {FLOAT: (1e-5, 1e-4), FLOAT16: (1e-3, 1e-2)}  # (atol, rtol)
ROUNDINGS = 3  # roundings a rewrite may add or move per op: new weights, the op's output, one spare
CONV_OPS = ("Conv", "ConvTranspose")
ACTIVATIONS = ("Relu", "LeakyRelu", "Sigmoid", "Tanh")
INT64_MAX = 2**63 - 1
REJECTED: list[str] = []  # why onnxruntime refused a generated original (SAME + output_padding only)


@dataclass
class Case:
    """A model, the inputs to run it on, its outputs on onnxruntime CPU and the allowed error."""

    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    atol: float
    rtol: float
    summary: list[str] = field(default_factory=list)
    special: bool = False  # the feeds hold Inf/NaN/-0/subnormals: compared NaN-position-exact

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        return "Case(" + "; ".join(self.summary) + f"; atol={self.atol:.3g} rtol={self.rtol:.3g})"


# ----------------------------------------------------------------- building


class Builder:
    """Nodes and constants of one graph, with the value and error bounds of the current tensor."""

    def __init__(self, dtype: int, opset: int, constant_nodes: bool, weight_nodes: bool, named: bool) -> None:
        self.dtype, self.opset = dtype, opset
        self.np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
        self.constant_nodes, self.weight_nodes, self.named = constant_nodes, weight_nodes, named
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0
        self.u = UNIT_ROUNDOFF[dtype]
        self.bound, self.error = 1.0, 0.0  # |value| <= bound, |rewritten - exact| <= error

    def fresh(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, array: np.ndarray, base: str, weight: bool = False) -> str:
        name = self.fresh(base)
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if self.weight_nodes if weight else self.constant_nodes:
            self.nodes.append(helper.make_node("Constant", [], [name], value=tensor, name=self.fresh("Constant")))
        else:
            self.inits.append(tensor)
        return name

    def ints(self, values, base: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), base)

    def floats(self, values, base: str, weight: bool = True) -> str:
        return self.const(np.asarray(values, dtype=self.np_dtype), base, weight)

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.fresh(op.lower())
        name = self.fresh(op) if self.named else ""
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def rounded(self, lipschitz: float, bound: float) -> None:
        """Account for one op: errors so far grow by its Lipschitz bound, and it may round once more."""
        self.bound = bound
        self.error = lipschitz * self.error + ROUNDINGS * self.u * bound


@dataclass
class AxisPlan:
    kernel: int
    stride: int
    dilation: int
    pads: tuple[int, int]  # explicit pads (NOTSET only)
    output_padding: int
    zero_factor: int  # > 1: kernel stored zero-inserted (taps every zero_factor)
    unit: bool
    pre_pad: tuple[int, int]
    length: int = 0

    @property
    def effective(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


def conv_output_length(op: str, n: int, a: AxisPlan, auto_pad: str, output_shape: int | None) -> int:
    """The spec's output length (onnxruntime agrees for the parameters drawn here)."""
    if op == "Conv":
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return -(-n // a.stride)
        pads = 0 if auto_pad == "VALID" else sum(a.pads)
        return (n + pads - a.effective) // a.stride + 1
    if output_shape is not None:
        return output_shape
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return n * a.stride
    pads = 0 if auto_pad == "VALID" else sum(a.pads)
    return a.stride * (n - 1) + a.output_padding + a.effective - pads


def _weights(draw, builder: Builder, shape: tuple[int, ...], fan_in: int, zero_factors: list[int]) -> np.ndarray:
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.0, 1.0, size=shape) / math.sqrt(max(fan_in, 1))
    for axis, f in enumerate(zero_factors):
        if f > 1:
            keep = np.zeros(shape[2 + axis], dtype=bool)
            keep[::f] = True
            index = [slice(None)] * len(shape)
            index[2 + axis] = ~keep
            w[tuple(index)] = 0.0
    return w.astype(builder.np_dtype)


def _lipschitz(op: str, w: np.ndarray, group: int) -> float:
    """Largest sum of |w| feeding one output element (per output channel; ConvTranspose per group)."""
    a = np.abs(w.astype(np.float64))
    if op == "Conv":
        return float(a.reshape(a.shape[0], -1).sum(axis=1).max())
    c = a.shape[0] // group
    sums = [a[g * c:(g + 1) * c].sum(axis=tuple(i for i in range(a.ndim) if i != 1)) for g in range(group)]
    return float(max(s.max() for s in sums))


@st.composite
def conv_cases(draw) -> Case:
    """One valid model around a random convolution, its inputs, outputs and tolerance."""
    dtype = draw(st.sampled_from([FLOAT, FLOAT16]))
    opset = draw(st.sampled_from([13, 11, 18, 9]))
    b = Builder(dtype, opset, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))
    op = draw(st.sampled_from(CONV_OPS))
    rank = draw(st.integers(1, 3))
    unit_kind = draw(st.sampled_from(["none", "unsqueeze", "static"])) if rank >= 2 else "none"
    unit_axis = draw(st.integers(0, rank - 1)) if unit_kind != "none" else None
    auto_pad = draw(st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    pads_attr = auto_pad == "NOTSET" and draw(st.booleans())
    summary = [f"{op} rank {rank} {'fp16' if dtype == FLOAT16 else 'fp32'} opset {opset} auto_pad {auto_pad}"]

    group_kind = draw(st.sampled_from(["one", "depthwise", "two"]))
    if group_kind == "one":
        c_in, c_out, group = draw(st.integers(1, 3)), draw(st.integers(1, 3)), 1
    elif group_kind == "depthwise":
        c_in = draw(st.integers(1, 3))
        group, c_out = c_in, c_in * draw(st.integers(1, 2))
    else:
        c_in, c_out, group = 2 * draw(st.integers(1, 2)), 2 * draw(st.integers(1, 2)), 2
    summary.append(f"C {c_in} -> M {c_out} group {group}")

    # A Pad before the conv: its mode, and whether it sits before or after the Unsqueeze.
    pad_mode = draw(st.sampled_from(["none", "zero", "zero", "value", "reflect", "edge"]))
    # Sometimes the Pad also adds a channel (the graph input has one channel less): no fold may take it.
    pad_channels = c_in > 1 and pad_mode in ("zero", "value", "edge") and draw(st.integers(0, 9)) == 0
    pad_before_unsqueeze = unit_kind == "unsqueeze" and pad_mode != "none" and draw(st.booleans())

    axes: list[AxisPlan] = []
    same = auto_pad in ("SAME_UPPER", "SAME_LOWER")
    for i in range(rank):
        if i == unit_axis:
            stride = 1 if op == "ConvTranspose" and same else draw(st.integers(1, 3))
            dilation = 1 if op == "Conv" and same else draw(st.integers(1, 3))
            pads, out_pad = (0, 0), 0
            if draw(st.integers(0, 2)) == 0:  # the output may not be unit: no lowering, no Squeeze
                if op == "Conv" and pads_attr:
                    pads = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
                elif op == "ConvTranspose" and not same:
                    out_pad = draw(st.integers(0, stride - 1))
            axes.append(AxisPlan(1, stride, dilation, pads, out_pad, 1, True, (0, 0), 1))
            continue
        zero_factor = draw(st.sampled_from([1, 1, 1, 2, 3]))
        if zero_factor > 1:
            kernel = (draw(st.integers(2, 4 if zero_factor == 2 else 3)) - 1) * zero_factor + 1
            dilation = 1
        else:
            kernel = draw(st.integers(1, 7 if rank < 3 else 5))
            # onnxruntime refuses SAME_* with dilations on Conv.
            dilation = 1 if op == "Conv" and same else draw(st.integers(1, 3))
        stride = draw(st.integers(1, 3))
        pads = (draw(st.integers(0, 3)), draw(st.integers(0, 3))) if auto_pad == "NOTSET" and pads_attr else (0, 0)
        # onnxruntime wants output_padding < stride (the spec allows < max(stride, dilation)).
        out_pad = draw(st.integers(0, stride - 1)) if op == "ConvTranspose" else 0
        pre = (draw(st.integers(0, 3)), draw(st.integers(0, 3))) if pad_mode != "none" else (0, 0)
        a = AxisPlan(kernel, stride, dilation, pads, out_pad, zero_factor, False, pre)
        if op == "ConvTranspose" and same and a.effective + a.output_padding < stride:
            # onnxruntime clamps a negative SAME total padding (the output is then not L*stride).
            a.output_padding = 0
            a.stride = stride = max(1, min(stride, a.effective))
        # The shortest input the conv accepts, then a little more.
        added = sum(pre) + (sum(pads) if auto_pad == "NOTSET" else 0)
        if op == "Conv":
            need = 1 if same else a.effective - added
        else:
            shortfall = (sum(pads) if auto_pad == "NOTSET" else 0) + 1 - a.output_padding - a.effective
            need = 1 + max(0, -(-shortfall // stride)) - sum(pre)
        if pad_mode == "reflect":
            need = max(need, max(pre) + 1)
        a.length = max(1, need) + draw(st.integers(0, 3 if rank < 3 else 2))
        axes.append(a)

    output_shape = None
    if op == "ConvTranspose" and auto_pad == "NOTSET" and not pads_attr and draw(st.integers(0, 4)) == 0:
        output_shape = []
        for a in axes:
            n = a.length + sum(a.pre_pad)
            full = a.stride * (n - 1) + a.output_padding + a.effective
            output_shape.append(full - (0 if a.unit else draw(st.integers(0, min(2, full - 1)))))

    # Graph input: the conv's rank, or one less when an Unsqueeze makes the unit axis.
    batch = draw(st.integers(1, 2))
    in_shape = [batch, c_in - pad_channels] + [a.length for a in axes]
    declared: list = list(in_shape)
    if draw(st.integers(0, 3)) == 0:
        declared[0] = "N"
    dynamic_axes = [i for i, a in enumerate(axes) if not a.unit]
    if dynamic_axes and draw(st.integers(0, 4)) == 0:
        declared[2 + draw(st.sampled_from(dynamic_axes))] = "L"
    if unit_kind == "unsqueeze":
        del in_shape[2 + unit_axis]
        del declared[2 + unit_axis]
    feeds_rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x_name = "x"
    # Channels-last graphs (tf2onnx): the input is [N, spatial..., C], a Transpose makes it channels-first
    # and one at the end turns the result back.
    channels_last = draw(st.integers(0, 4)) == 0
    to_last = [0] + list(range(2, len(in_shape))) + [1]
    if channels_last:
        in_shape, declared = [in_shape[i] for i in to_last], [declared[i] for i in to_last]
    feeds = {x_name: feeds_rng.uniform(-1.0, 1.0, size=in_shape).astype(b.np_dtype)}
    special = draw(st.integers(0, 3)) == 0  # issue 16: +-Inf, NaN, -0 and subnormals, compared NaN-position-exact
    if special:
        flat = feeds[x_name].reshape(-1)
        picks = feeds_rng.integers(0, flat.size, size=draw(st.integers(1, 3)))
        values = np.array([np.inf, -np.inf, np.nan, -0.0, 1e-40, 1e-45, 6e-8], np.float64)
        flat[picks] = values[feeds_rng.integers(0, len(values), size=len(picks))].astype(b.np_dtype)
        summary.append(f"special values at {sorted(int(p) for p in picks)}")
    inputs = [helper.make_tensor_value_info(x_name, dtype, declared)]
    cur, shape = x_name, list(in_shape)
    taps: list[tuple[str, list[int], float, float]] = []  # (tensor, shape, error bound, value bound) to reuse
    if channels_last:
        to_first = [0, len(shape) - 1] + list(range(1, len(shape) - 1))
        cur = b.node("Transpose", [cur], perm=to_first)
        shape = [shape[i] for i in to_first]
        summary.append(f"channels-last input, Transpose {to_first}")

    def unsqueeze(t: str, axis: int) -> str:
        if opset >= 13:
            return b.node("Unsqueeze", [t, b.ints([axis], "axes")])
        return b.node("Unsqueeze", [t], axes=[axis])

    def squeeze(t: str, axis: int) -> str:
        if opset >= 13:
            return b.node("Squeeze", [t, b.ints([axis], "axes")])
        return b.node("Squeeze", [t], axes=[axis])

    def add_pad(t: str, shape: list[int], spatial: list[AxisPlan]) -> tuple[str, list[int]]:
        begins, ends = [0] * len(shape), [0] * len(shape)
        for k, a in enumerate(spatial):
            begins[2 + k], ends[2 + k] = a.pre_pad
        if pad_channels:
            begins[1] = draw(st.integers(0, 1))
            ends[1] = 1 - begins[1]
        mode = "constant" if pad_mode in ("zero", "value") else pad_mode
        value = draw(st.sampled_from([0.5, -1.0])) if pad_mode == "value" else 0.0
        if opset < 11:  # pads and value are attributes
            out = b.node("Pad", [t], mode=mode, pads=begins + ends, **({"value": value} if value else {}))
            b.bound = max(b.bound, abs(value))
            summary.append(f"Pad-{opset} {mode} value {value} pads {begins + ends}")
            return out, [n + p + q for n, p, q in zip(shape, begins, ends)]
        ins = [t]
        use_axes = opset >= 18 and draw(st.booleans())
        if use_axes:
            keep = [i for i in range(len(shape)) if begins[i] or ends[i]] or [2]
            ins.append(b.ints([begins[i] for i in keep] + [ends[i] for i in keep], "pads"))
        else:
            ins.append(b.ints(begins + ends, "pads"))
        if mode == "constant" and (value != 0.0 or draw(st.booleans())):
            ins.append(b.floats(np.array(value), "pad_value", weight=False))
        if use_axes:
            if len(ins) == 2:
                ins.append("")
            ins.append(b.ints([i - len(shape) if draw(st.booleans()) else i for i in keep], "pad_axes"))
        out = b.node("Pad", ins, mode=mode)
        b.bound = max(b.bound, abs(value))
        summary.append(f"Pad {mode} value {value} pads {begins + ends}")
        return out, [n + p + q for n, p, q in zip(shape, begins, ends)]

    spatial_small = [a for a in axes if not (unit_kind == "unsqueeze" and a.unit)]
    if pad_before_unsqueeze:
        cur, shape = add_pad(cur, shape, spatial_small)
        taps.append((cur, list(shape), b.error, b.bound))
    if unit_kind == "unsqueeze":
        cur = unsqueeze(cur, 2 + unit_axis)
        shape.insert(2 + unit_axis, 1)
        summary.append(f"Unsqueeze axis {2 + unit_axis}")
        taps.append((cur, list(shape), b.error, b.bound))
    if pad_mode != "none" and not pad_before_unsqueeze:
        cur, shape = add_pad(cur, shape, axes)
        taps.append((cur, list(shape), b.error, b.bound))

    # The convolution.
    kernel = [a.kernel for a in axes]
    if op == "Conv":
        w_shape = (c_out, c_in // group, *kernel)
        fan_in = (c_in // group) * int(np.prod(kernel))
    else:
        w_shape = (c_in, c_out // group, *kernel)
        fan_in = (c_in // group) * int(np.prod(kernel))
    w = _weights(draw, b, w_shape, fan_in, [a.zero_factor for a in axes])
    attrs: dict = {}
    if draw(st.booleans()):
        attrs["kernel_shape"] = kernel
    if any(a.stride != 1 for a in axes) or draw(st.booleans()):
        attrs["strides"] = [a.stride for a in axes]
    if any(a.dilation != 1 for a in axes) or draw(st.booleans()):
        attrs["dilations"] = [a.dilation for a in axes]
    if group != 1 or draw(st.booleans()):
        attrs["group"] = group
    if auto_pad != "NOTSET" or draw(st.integers(0, 3)) == 0:
        attrs["auto_pad"] = auto_pad
    if auto_pad == "NOTSET" and pads_attr:
        attrs["pads"] = [a.pads[0] for a in axes] + [a.pads[1] for a in axes]
    if op == "ConvTranspose" and any(a.output_padding for a in axes):
        attrs["output_padding"] = [a.output_padding for a in axes]
    if output_shape is not None:
        attrs["output_shape"] = output_shape
    conv_inputs = [cur, b.const(w, "w", weight=True)]
    bias = draw(st.booleans())
    bias_bound = 0.0
    if bias:
        bvals = feeds_rng.uniform(-0.5, 0.5, size=c_out).astype(b.np_dtype)
        bias_bound = float(np.abs(bvals.astype(np.float64)).max())
        conv_inputs.append(b.floats(bvals, "b"))
    lip = _lipschitz(op, w, group)
    b.rounded(lip, lip * b.bound + bias_bound)
    conv_in = cur
    cur = b.node(op, conv_inputs, **attrs)
    extra_outputs = []
    if draw(st.integers(0, 7)) == 0:  # a second conv sharing the input, weight and bias: neither may be edited
        extra_outputs.append((b.node(op, [conv_in] + conv_inputs[1:], **attrs), len(shape), b.error))
        summary.append("a twin conv shares its input, weight and bias")
    conv_shape = [shape[0], c_out]
    for k, a in enumerate(axes):
        conv_shape.append(conv_output_length(op, shape[2 + k], a, auto_pad, None if output_shape is None else output_shape[k]))
    shape = conv_shape
    summary.append(f"{op} {attrs} weight {list(w_shape)} bias {bias}")
    taps.append((cur, list(shape), b.error, b.bound))

    # What follows it, in a random order.
    post = ["bn", "act", "pointwise", "slice"]
    chosen = [p for p in post if draw(st.integers(0, 9)) < (6 if p == "pointwise" and group_kind == "depthwise" else 3)]
    if unit_kind == "unsqueeze" and shape[2 + unit_axis] == 1:
        chosen.append("squeeze")
    order = draw(st.permutations(chosen))
    for step in ("slice", "pointwise"):  # often right after the conv: the folds and pairs the passes look for
        if step in order and draw(st.booleans()):
            order.remove(step)
            order.insert(0, step)
    unit_pos = 2 + unit_axis if unit_axis is not None else None
    for step in order:
        channels = shape[1]
        if step == "bn":
            scale = feeds_rng.uniform(0.5, 1.5, channels)
            beta = feeds_rng.uniform(-0.5, 0.5, channels)
            mean = feeds_rng.uniform(-0.5, 0.5, channels)
            var = feeds_rng.uniform(0.5, 2.0, channels)
            ins = [cur] + [b.floats(v.astype(b.np_dtype), n) for v, n in
                           ((scale, "scale"), (beta, "beta"), (mean, "mean"), (var, "var"))]
            cur = b.node("BatchNormalization", ins, epsilon=1e-5)
            s = float(np.max(np.abs(scale / np.sqrt(var + 1e-5))))
            b.rounded(s, s * (b.bound + 0.5) + 0.5)
            summary.append("BatchNormalization")
        elif step == "act":
            act = draw(st.sampled_from(ACTIVATIONS))
            cur = b.node(act, [cur], **({"alpha": 0.1} if act == "LeakyRelu" else {}))
            b.rounded(1.0, b.bound)
            summary.append(act)
        elif step == "pointwise":
            m2 = draw(st.integers(1, 3))
            spatial = len(shape) - 2
            pw_attrs: dict = {}
            odd = draw(st.integers(0, 6)) == 0  # not a canonical pointwise conv: the pair must not be merged
            if odd:
                pw_attrs["strides"] = [2] + [1] * (spatial - 1)
            pw = _weights(draw, b, (m2, channels) + (1,) * spatial, channels, [])
            ins = [cur, b.const(pw, "pw", weight=True)]
            pbound = 0.0
            if draw(st.booleans()):
                pb = feeds_rng.uniform(-0.5, 0.5, m2).astype(b.np_dtype)
                pbound = float(np.abs(pb.astype(np.float64)).max())
                ins.append(b.floats(pb, "pb"))
            if draw(st.booleans()):
                pw_attrs["kernel_shape"] = [1] * spatial
            lip = _lipschitz("Conv", pw, 1)
            b.rounded(lip, lip * b.bound + pbound)
            cur = b.node("Conv", ins, **pw_attrs)
            shape = [shape[0], m2] + [(n - 1) // 2 + 1 if odd and k == 0 else n for k, n in enumerate(shape[2:])]
            summary.append(f"pointwise Conv -> {m2} {pw_attrs}")
        elif step == "slice":
            cur, shape = _add_slice(draw, b, cur, shape, unit_pos, summary)
        elif step == "squeeze":
            cur = squeeze(cur, unit_pos)
            del shape[unit_pos]
            unit_pos = None
            summary.append("Squeeze")
        taps.append((cur, list(shape), b.error, b.bound))

    same_shape = [t for t in taps[:-1] if t[1] == shape]
    # onnx infers SAME + output_padding as L*s + output_padding (onnxruntime: L*s): an Add would not check.
    onnx_disagrees = op == "ConvTranspose" and same and any(a.output_padding for a in axes)
    if same_shape and not onnx_disagrees and draw(st.integers(0, 4)) == 0:  # a residual Add: two readers
        tap = draw(st.sampled_from(same_shape))
        cur = b.node("Add", [cur, tap[0]])
        b.error += tap[2]
        b.rounded(1.0, b.bound + tap[3])
        summary.append(f"residual Add of {tap[0]}")
    if channels_last:
        back = [0] + list(range(2, len(shape))) + [1]
        cur = b.node("Transpose", [cur], perm=back)
        shape = [shape[i] for i in back]
        summary.append(f"Transpose {back} back to channels-last")
    outputs = [(cur, len(shape), b.error)] + extra_outputs
    tap_kind = draw(st.sampled_from(["none", "none", "output", "reader"]))
    if tap_kind != "none" and len(taps) > 1:
        tap = draw(st.sampled_from(taps[:-1]))
        if tap_kind == "output":
            outputs.append((tap[0], len(tap[1]), tap[2]))
        else:
            outputs.append((b.node("Neg", [tap[0]]), len(tap[1]), tap[2]))
        summary.append(f"{tap_kind} tap of {tap[0]}")

    declare_shapes = draw(st.integers(0, 3)) > 0
    out_infos = [helper.make_tensor_value_info(name, dtype, [None] * r) for name, r, _ in outputs]
    graph = helper.make_graph(b.nodes, "fuzz", inputs, out_infos, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=min(8, MAX_IR),
                              producer_name="fuzz")
    lie = any(isinstance(d, str) for d in declared) and draw(st.integers(0, 2)) == 0
    try:
        if lie:  # issue 16: every intermediate value_info claims the dims of a size the feeds do not have
            _add_lying_value_info(model, in_shape)
            try:
                onnx.checker.check_model(model, full_check=True)
                summary.append("value_info claims dynamic dims one larger than fed")
            except Exception:
                del model.graph.value_info[:]
        if declare_shapes:
            inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
            del model.graph.output[:]
            model.graph.output.extend(inferred.graph.output)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        if output_shape is not None:
            # onnx 1.23 infers some ConvTranspose output_shape cases with a dim lost (e.g. input
            # [N, 1, 1, 1, 2], output_shape [1, 3, 1] gives [N, 1, 1, 3]): no valid model to start from.
            event("rejected: onnx shape inference loses a dim of a ConvTranspose with output_shape")
            assume(False)
        raise AssertionError(f"generated an invalid model ({exc}): {summary}") from None

    if model.graph.value_info:  # onnxruntime plans buffers by value_info: a lie it cannot run with is dropped
        try:
            run(model, feeds)
        except Exception:
            del model.graph.value_info[:]
            summary.append("(value_info dropped: onnxruntime plans buffers by it)")
    try:
        expected = run(model, feeds)
    except Exception as exc:
        if not onnx_disagrees:  # a generator bug
            raise AssertionError(f"onnxruntime cannot run the generated model ({exc}): {summary}") from None
        # onnxruntime computes L*s but plans its buffers with onnx's L*s + output_padding: some such
        # originals do not run at all ("Shape mismatch attempting to re-use buffer").
        REJECTED.append(str(exc))
        event("rejected: onnxruntime cannot run this SAME + output_padding ConvTranspose")
        assume(False)
    final = expected[outputs[0][0]]
    assert list(final.shape) == shape, f"generator computed {shape}, onnxruntime gives {list(final.shape)}"
    base_atol, rtol = BASE_TOLERANCE[dtype]
    error = max(e for _, _, e in outputs)
    return Case(model, feeds, expected, base_atol + 2 * error, rtol, summary, special)


def _add_lying_value_info(model: onnx.ModelProto, fed: list[int]) -> None:
    """value_info for every intermediate, inferred with each dynamic input dim one larger than the feeds'."""
    fixed = copy.deepcopy(model)
    for d, n in zip(fixed.graph.input[0].type.tensor_type.shape.dim, fed):
        if d.dim_param:
            d.Clear()
            d.dim_value = n + 1
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
    except Exception:
        return
    outputs = {o.name for o in model.graph.output}
    model.graph.value_info.extend(v for v in inferred.graph.value_info if v.name not in outputs)


def _add_slice(draw, b: Builder, t: str, shape: list[int], unit_pos: int | None, summary: list[str]):
    """A Slice of one or two spatial axes (sometimes the channels, sometimes step 2), never empty."""
    rank = len(shape)
    candidates = [i for i in range(2, rank) if i != unit_pos]
    if not candidates or draw(st.integers(0, 9)) == 0:
        candidates = [1]
    axes = sorted(draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True)))
    starts, ends, steps = [], [], []
    new_shape = list(shape)
    for axis in axes:
        n = shape[axis]
        step = 2 if n > 2 and b.opset >= 10 and draw(st.integers(0, 9)) == 0 else 1
        cut_begin = draw(st.integers(0, min(3, n - 1)))
        cut_end = draw(st.integers(0, min(3, n - 1 - cut_begin)))
        start = cut_begin - n if draw(st.integers(0, 3)) == 0 else cut_begin
        if cut_end == 0:
            end = draw(st.sampled_from([n, INT64_MAX, n + 5]))
        else:
            end = -cut_end if draw(st.booleans()) else n - cut_end
        starts.append(start)
        ends.append(end)
        steps.append(step)
        new_shape[axis] = -(-(n - cut_begin - cut_end) // step)
    slice_axes = [a - rank if draw(st.integers(0, 3)) == 0 else a for a in axes]
    if b.opset < 10:  # attributes, no steps
        summary.append(f"Slice-{b.opset} axes {axes} starts {starts} ends {ends}")
        return b.node("Slice", [t], starts=starts, ends=ends, axes=slice_axes), new_shape
    ins = [t, b.ints(starts, "starts"), b.ints(ends, "ends"), b.ints(slice_axes, "slice_axes")]
    if any(s != 1 for s in steps) or draw(st.booleans()):
        ins.append(b.ints(steps, "steps"))
    summary.append(f"Slice axes {axes} starts {starts} ends {ends} steps {steps}")
    return b.node("Slice", ins), new_shape


# ----------------------------------------------------------------- the property


def node_labels(graph: onnx.GraphProto) -> list[str]:
    """How passes name a node in their records: its name, else op type and index among its kind."""
    seen: Counter = Counter()
    labels = []
    for node in graph.node:
        labels.append(node.name or f"{node.op_type}_{seen[node.op_type]}")
        seen[node.op_type] += 1
    return labels


def io_signature(model: onnx.ModelProto) -> list:
    return [[(v.name, v.type.SerializeToString(deterministic=True)) for v in vs]
            for vs in (model.graph.input, model.graph.output)]


def compare(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], atol: float, rtol: float) -> None:
    assert list(got) == list(expected), f"output names {list(got)} vs {list(expected)}"
    for name, want in expected.items():
        have = got[name]
        assert have.shape == want.shape, f"{name}: shape {have.shape} vs {want.shape}"
        assert have.dtype == want.dtype, f"{name}: dtype {have.dtype} vs {want.dtype}"
        a, b = want.astype(np.float64), have.astype(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{name}: NaN positions differ"
        inf = np.isinf(a)
        assert np.array_equal(inf, np.isinf(b)) and np.array_equal(a[inf], b[inf]), f"{name}: Inf positions differ"
        a, b = np.where(np.isfinite(a), a, 0.0), np.where(np.isfinite(b), b, 0.0)
        diff = np.abs(a - b)
        bad = diff > atol + rtol * np.abs(a)
        assert not bad.any(), (f"{name}: {int(bad.sum())} of {bad.size} elements differ, max abs error "
                               f"{float(diff.max()):.3g} (atol {atol:.3g}, rtol {rtol:.3g})")


def check_rewrite(case: Case, passes: list[str], **options) -> object:
    """Run the passes and assert the property; return the result (for statistics).

    With FUZZ_FAILURES=<folder> set, every failing example is saved there
    (model, inputs, passes): the last one saved is the shrunk one hypothesis reports.
    """
    try:
        return _check_rewrite(case, passes, **options)
    except Exception as exc:
        folder = os.environ.get("FUZZ_FAILURES")
        if folder:
            _save_failure(Path(folder), case, passes, options, exc)
        raise


def _save_failure(folder: Path, case: Case, passes: list[str], options: dict, exc: Exception) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{time.time_ns()}"
    onnx.save(case.model, str(stem) + ".onnx")
    np.savez(str(stem) + ".npz", **case.feeds)
    info = {"passes": passes, "options": options, "atol": case.atol, "rtol": case.rtol,
            "summary": case.summary, "error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
    (Path(str(stem) + ".json")).write_text(json.dumps(info, indent=1))


def _check_rewrite(case: Case, passes: list[str], **options) -> object:
    original = case.model.SerializeToString(deterministic=True)
    result = rewrite(case.model, passes=passes, **options)
    assert case.model.SerializeToString(deterministic=True) == original, "the input model was modified"
    new = result.model

    onnx.checker.check_model(new, full_check=True)
    onnx.shape_inference.infer_shapes(new, check_type=True, strict_mode=True, data_prop=True)
    assert io_signature(new) == io_signature(case.model), "graph inputs/outputs changed name, shape or dtype"
    if not (case.special and options.get("assume_finite")):  # finite-math rewrites may move NaNs
        compare(case.expected, run(new, case.feeds), case.atol, case.rtol)

    for r in result.records:
        assert r.rewritten or r.reason, f"{r.key}: skipped without a reason"
    if len(result.passes) == 1:
        convs = [label for label, n in zip(node_labels(case.model.graph), case.model.graph.node) if n.op_type in CONV_OPS]
        recorded = [r.node for r in result.records if r.op_type in CONV_OPS]
        assert Counter(recorded) == Counter(convs), f"records {sorted(recorded)} for convolutions {sorted(convs)}"
    if not result.changed:
        assert new.SerializeToString(deterministic=True) == original, "nothing rewritten, yet the model changed"

    again = rewrite(new, passes=passes, **options)
    assert again.model.SerializeToString(deterministic=True) == new.SerializeToString(deterministic=True), (
        "running the passes again changed the model: " + ", ".join(r.key for r in again.rewritten))
    if currently_in_test_context():
        for r in result.records:
            reason = re.sub(r"\d+", "#", r.reason.split(":")[0])[:70]
            event(f"{r.pass_name}: {r.status} {reason}".rstrip())
    return result


def describe(model: onnx.ModelProto) -> str:
    """The graph in one line per node (for regression tests written from a falsifying example)."""
    return "\n".join(f"{n.op_type}({', '.join(n.input)}) -> {', '.join(n.output)} "
                     f"{ {a.name: helper.get_attribute_value(a) for a in n.attribute} }" for n in model.graph.node)
