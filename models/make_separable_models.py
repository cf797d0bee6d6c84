"""Make the separable-pass test models that the other scripts do not make (needs torch 2.13.0).

Run from anywhere:  python models/make_separable_models.py [NAME_SUBSTRING ...]

Same conventions as make_torch_models.py and make_tf2onnx_models.py (whose
helpers this reuses): models/NAME.onnx + NAME.npz (inputs and the framework's
outputs), checked with onnx.checker (full) and onnxruntime CPU (< 1e-4).

What these add, for `--fold separable`:
* PyTorch exports (TorchScript opset 13; dynamo opset 18 with its optimizer
  off, which keeps an eval-mode BatchNormalization as a node):
  - `sep_dwsep2d_bn_ts13`: depthwise Conv2d -> BatchNorm2d -> pointwise
    Conv2d -> BatchNorm2d, both BNs kept (`training=PRESERVE`,
    `do_constant_folding=False`, module in eval mode);
  - `sep_dwsep_bn_dyn18noopt`: the 1-D version of the same through dynamo;
  - `sep_dwsep3d_m2_ts13`: a 3-D pair with depth multiplier 2;
  - `sep_affine_between_ts13`: a per-channel `h * scale + shift` (Mul and Add
    with [C, 1] initializers) between the two convs;
  - `sep_convtr_bn_ts13`: ConvTranspose1d(groups=2) -> BatchNorm1d kept (the
    BN fold into a grouped transposed conv: output channels on weight axis 1);
  - negative cases: `sep_pw_stride2_ts13` (the 1x1 conv has stride 2) and
    `sep_dw_two_consumers_ts13` (the depthwise output also feeds a residual Add).
* tf2onnx forms built with onnx.helper like make_tf2onnx_models.py does:
  - `k3_sepconv1d_m2`: Keras 3 SeparableConv1D(depth_multiplier=2);
  - `k2_sepconv1d_noopt`: tf_keras SeparableConv1D with `optimizers={}`:
    computed depthwise weight (Reshape -> Transpose), the Transpose pair
    between the convs, the bias as the pointwise Conv's third input (tf2onnx's
    BiasAdd rewriter runs with the optimizers off), Transpose -> Squeeze([1])
    -> Identity -> Identity after;
  - `k3_sepconv2d_noopt`: Keras 3 SeparableConv2D with `optimizers={}`:
    computed depthwise weight, the Transpose pair between the convs, bias as
    the pointwise Conv's input, Identity -> Identity after;
  - `k2_sepconv2d`, `k2_sepconv2d_noopt`: the tf_keras SeparableConv2D forms
    (the same graphs as Keras 3: tf2onnx's BiasAdd rewriter puts the bias on
    the pointwise Conv with or without the optimizers);
  - `k2_dwconv2d`: tf_keras DepthwiseConv2D, bias as the Conv's input (the
    optimizer merges it);
  - `k3_dwconv2d_noopt`, `k2_dwconv2d_noopt`, `k2_dwconv1d_noopt`:
    DepthwiseConv2D/1D with `optimizers={}`. tf2onnx's BiasAdd rewriter
    matches Conv2D only, not DepthwiseConv2dNative, so the bias stays an Add
    on the channels-last tensor after the output Transpose: Keras 3 adds a
    reshaped bias `[1, 1, 1, C*m]`, tf_keras a BiasAdd `[C*m]` (before the 1-D
    layer's Squeeze). These are by analogy with the optimizer-off forms above
    (no TensorFlow here). `--to-1d` lowers the 1-D one and folds that
    Add-before-Squeeze bias into the conv (test_rank_keras.py).
"""

import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto

from _common import HERE, make_all
from make_tf2onnx_models import (
    I64, TfGraph, conv_attrs, dw_weight, finish, k_conv2d, k_sepconv1d, rand, ref_conv, ref_separable, tf_pads,
)
from make_torch_models import export_all, randomize_norms, seeded

KEEP_BN = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False}


# --------------------------------------------------------------------------- torch modules


class DwBnPwBn(nn.Module):
    """depthwise conv (bias) -> BN -> pointwise conv (bias) -> BN, 1-D or 2-D."""

    def __init__(self, dims, c=8, co=16, k=3):
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        self.dw = conv(c, c, k, padding=k // 2, groups=c)
        self.bn1 = norm(c)
        self.pw = conv(c, co, 1)
        self.bn2 = norm(co)

    def forward(self, x):
        return self.bn2(self.pw(self.bn1(self.dw(x))))


class DwSep3dM2(nn.Module):
    """Conv3d(4, 8, 3, p1, groups 4) -> Conv3d(8, 6, 1): a 3-D separable pair with multiplier 2."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv3d(4, 8, 3, padding=1, groups=4)
        self.pw = nn.Conv3d(8, 6, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class AffineBetween(nn.Module):
    """depthwise -> h * scale + shift (per-channel parameters [C, 1]) -> pointwise."""

    def __init__(self, c=8, co=12):
        super().__init__()
        self.dw = nn.Conv1d(c, c, 5, padding=2, groups=c)
        self.scale = nn.Parameter(torch.rand(c, 1) + 0.5)
        self.shift = nn.Parameter(torch.randn(c, 1) * 0.3)
        self.pw = nn.Conv1d(c, co, 1)

    def forward(self, x):
        return self.pw(self.dw(x) * self.scale + self.shift)


class ConvTrBn(nn.Module):
    """ConvTranspose1d(8, 8, 4, stride 2, padding 1, groups 2) -> BatchNorm1d."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose1d(8, 8, 4, stride=2, padding=1, groups=2)
        self.bn = nn.BatchNorm1d(8)

    def forward(self, x):
        return self.bn(self.up(x))


class PwStride2(nn.Module):
    """depthwise -> Conv1d(8, 16, 1, stride=2): the 1x1 conv subsamples, not a pointwise conv."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv1d(8, 16, 1, stride=2)

    def forward(self, x):
        return self.pw(self.dw(x))


class DwTwoConsumers(nn.Module):
    """h = depthwise(x); y = pointwise(h) + h: the depthwise output has two readers."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv1d(8, 8, 1)

    def forward(self, x):
        h = self.dw(x)
        return self.pw(h) + h


def sep_dwsep2d_bn():
    seeded(701)
    m, x = randomize_norms(DwBnPwBn(2)), torch.randn(1, 8, 12, 12)
    export_all(m, (x,), "sep_dwsep2d_bn", [("ts13", KEEP_BN)])
    _assert_ops("sep_dwsep2d_bn_ts13", "BatchNormalization", 2)


def sep_dwsep_bn():
    seeded(702)
    m, x = randomize_norms(DwBnPwBn(1)), torch.randn(1, 8, 64)
    export_all(m, (x,), "sep_dwsep_bn", ["dyn18noopt"])
    _assert_ops("sep_dwsep_bn_dyn18noopt", "BatchNormalization", 2)


def sep_dwsep3d_m2():
    seeded(703)
    export_all(DwSep3dM2(), (torch.randn(1, 4, 6, 6, 6),), "sep_dwsep3d_m2", ["ts13"])


def sep_affine_between():
    seeded(704)
    export_all(AffineBetween(), (torch.randn(1, 8, 64),), "sep_affine_between", ["ts13"])
    _assert_ops("sep_affine_between_ts13", "Mul", 1)


def sep_convtr_bn():
    seeded(705)
    m, x = randomize_norms(ConvTrBn()), torch.randn(1, 8, 32)
    export_all(m, (x,), "sep_convtr_bn", [("ts13", KEEP_BN)])
    _assert_ops("sep_convtr_bn_ts13", "BatchNormalization", 1)


def sep_pw_stride2():
    seeded(706)
    export_all(PwStride2(), (torch.randn(1, 8, 64),), "sep_pw_stride2", ["ts13"])


def sep_dw_two_consumers():
    seeded(707)
    export_all(DwTwoConsumers(), (torch.randn(1, 8, 64),), "sep_dw_two_consumers", ["ts13"])


def _assert_ops(name, op, count):
    ops = [n.op_type for n in onnx.load(os.path.join(HERE, name + ".onnx")).graph.node]
    assert ops.count(op) == count, (name, ops)


# --------------------------------------------------------------------------- tf2onnx forms


def k3_sepconv1d_m2():
    """Keras 3 SeparableConv1D(6, 3, padding='same', depth_multiplier=2) on 6 channels."""
    rng = np.random.default_rng(711)
    dw, pw, bias = rand(rng, 3, 6, 2), rand(rng, 12, 6), rand(rng, 6)
    x = rng.standard_normal((1, 40, 6), np.float32)
    g = TfGraph("functional_1")
    k_sepconv1d(g, "x", "separable_conv1d_1", dw, pw, bias, 40, output="separable_conv1d")
    finish("k3_sepconv1d_m2", g, x, "separable_conv1d", ref_separable(x, dw, pw, bias))


def _noopt_dw_weight(g, scope, dw, shape):
    """tf2onnx optimizer off: Reshape(init Keras kernel -> [*k, 1, C*m]) -> Transpose([3, 2, 0, 1])."""
    w = g.node("Reshape", [g.init(f"{scope}/ReadVariableOp:0", dw),
                           g.init(f"{scope}/depthwise__{g.uid()}__shape", shape, I64)],
               f"{scope}/depthwise__{g.uid()}")
    return g.node("Transpose", [w], f"{scope}/depthwise__{g.uid()}", perm=[3, 2, 0, 1])


def _noopt_expand_depthwise(g, scope, conv_scope, kernel):
    """tf_keras's 1-D depthwise step with the optimizer off: ExpandDims (axes Reshape(Cast(1))) of the NWC
    input, Transpose to NCHW, depthwise Conv([1, 3], 8 channels, 'same') on the computed weight,
    Transpose back to NHWC (before the Squeeze)."""
    axes = g.node("Cast", [g.init(f"{scope}/ExpandDims/dim:0", np.array(1, np.int32))],
                  f"{scope}/ExpandDims__{g.uid()}", to=TensorProto.INT64)
    axes = g.node("Reshape", [axes, g.init(f"{scope}/ExpandDims__{g.uid()}__shape", [1], I64)],
                  f"{scope}/ExpandDims__{g.uid()}")
    h = g.node("Unsqueeze", ["x", axes], f"{scope}/ExpandDims")
    h = g.node("Transpose", [h], f"{conv_scope}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    w = _noopt_dw_weight(g, conv_scope, kernel[None], [1, 3, 1, 8])
    h = g.node("Conv", [h, w], f"{conv_scope}/depthwise",
               **conv_attrs([1, 3], [1, 1], [1, 1], [0, 1, 0, 1], 8, depthwise=True))
    return g.node("Transpose", [h], f"{conv_scope}/depthwise__{g.uid()}", perm=[0, 2, 3, 1])


def k2_sepconv1d_noopt():
    """tf_keras SeparableConv1D(8, 3, 'same') with optimizers={}: axes Reshape(Cast(1)), computed
    depthwise weight, Transpose pair between the convs, bias as the pointwise Conv's input,
    Transpose([0,2,3,1]) -> Squeeze([1]) -> Identity -> Identity."""
    rng = np.random.default_rng(712)
    dw, pw, bias = rand(rng, 3, 8, 1), rand(rng, 8, 8), rand(rng, 8)
    x = rng.standard_normal((1, 40, 8), np.float32)
    g = TfGraph("sequential", share=False)
    scope = "sequential/separable_conv1d"
    sep = f"{scope}/separable_conv2d"
    h = _noopt_expand_depthwise(g, scope, sep, dw)
    h = g.node("Transpose", [h], f"{sep}__{g.uid()}", perm=[0, 3, 1, 2])
    h = g.node("Conv", [h, g.init(f"{scope}/ExpandDims_2:0", pw.T[:, :, None, None]),
                        g.init(f"{scope}/BiasAdd/ReadVariableOp:0", bias)],
               f"{scope}/BiasAdd", **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
    h = g.node("Transpose", [h], f"{scope}/BiasAdd__{g.uid()}", perm=[0, 2, 3, 1])
    h = g.node("Squeeze", [h, g.init(f"{scope}/Squeeze__{g.uid()}", [1], I64)], f"{scope}/Squeeze")
    h = g.node("Identity", [h], "Identity")
    g.node("Identity", [h], f"Identity__{g.uid()}", output="separable_conv1d")
    finish("k2_sepconv1d_noopt", g, x, "separable_conv1d", ref_separable(x, dw, pw, bias))


def k3_sepconv2d_noopt():
    """Keras 3 SeparableConv2D(6, 3, 'same') on 12x12x6 with optimizers={}: computed depthwise
    weight, Transpose pair between the convs, bias as the pointwise Conv's input, two Identity."""
    rng = np.random.default_rng(713)
    dw, pw, bias = rand(rng, 3, 3, 6, 1), rand(rng, 6, 6), rand(rng, 6)
    x = rng.standard_normal((1, 12, 12, 6), np.float32)
    g = TfGraph("functional_7_1", share=False)
    scope = "functional_7_1/separable_conv2d_1"
    sep = f"{scope}/separable_conv2d"
    h = g.node("Transpose", ["x"], f"{sep}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    w = _noopt_dw_weight(g, sep, dw, [3, 3, 1, 6])
    h = g.node("Conv", [h, w], f"{sep}/depthwise",
               **conv_attrs([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 6, depthwise=True))
    h = g.node("Transpose", [h], f"{sep}/depthwise__{g.uid()}", perm=[0, 2, 3, 1])
    h = g.node("Transpose", [h], f"{sep}__{g.uid()}", perm=[0, 3, 1, 2])
    h = g.node("Conv", [h, g.init(f"{sep}/ReadVariableOp_1:0", pw.T[:, :, None, None]),
                        g.init(f"{scope}/Squeeze:0", bias)],
               f"{scope}/BiasAdd", **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
    h = g.node("Transpose", [h], f"{scope}/BiasAdd__{g.uid()}", perm=[0, 2, 3, 1])
    h = g.node("Identity", [h], "Identity")
    g.node("Identity", [h], f"Identity__{g.uid()}", output="separable_conv2d")
    finish("k3_sepconv2d_noopt", g, x, "separable_conv2d", ref_separable(x, dw, pw, bias))


def _sepconv2d(name, seed, flavor, noopt):
    """SeparableConv2D(6, 3, 'same') on 12x12x6 (k3: Keras 3, k2: tf_keras); noopt: optimizers={}."""
    rng = np.random.default_rng(seed)
    dw, pw, bias = rand(rng, 3, 3, 6, 1), rand(rng, 6, 6), rand(rng, 6)
    x = rng.standard_normal((1, 12, 12, 6), np.float32)
    g = TfGraph("functional_7_1" if flavor == "k3" else "sequential", share=not noopt)
    scope = f"{g.model_name}/separable_conv2d{'_1' if flavor == 'k3' else ''}"
    sep = f"{scope}/separable_conv2d"
    h = g.node("Transpose", ["x"], f"{sep}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    if noopt:
        w = _noopt_dw_weight(g, sep, dw, [3, 3, 1, 6])
    else:
        w = g.const(dw_weight(dw).astype(np.float32))
    pw_w = g.init(f"{sep}/ReadVariableOp_1:0", pw.T[:, :, None, None])
    b = g.init(f"{scope}/Squeeze:0" if flavor == "k3" else f"{scope}/BiasAdd/ReadVariableOp:0", bias)
    h = g.node("Conv", [h, w], f"{sep}/depthwise",
               **conv_attrs([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 6, depthwise=True))
    if noopt:
        h = g.node("Transpose", [h], f"{sep}/depthwise__{g.uid()}", perm=[0, 2, 3, 1])
        h = g.node("Transpose", [h], f"{sep}__{g.uid()}", perm=[0, 3, 1, 2])
    h = g.node("Conv", [h, pw_w, b], f"{scope}/BiasAdd", **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
    last = None if noopt else "separable_conv2d"
    h = g.node("Transpose", [h], f"{scope}/BiasAdd__{g.uid()}", output=last, perm=[0, 2, 3, 1])
    if noopt:
        h = g.node("Identity", [h], "Identity")
        g.node("Identity", [h], f"Identity__{g.uid()}", output="separable_conv2d")
    finish(name, g, x, "separable_conv2d", ref_separable(x, dw, pw, bias))


def k2_sepconv2d():
    """tf_keras SeparableConv2D(6, 3, 'same'): the Keras 3 graph (bias on the pointwise Conv)."""
    _sepconv2d("k2_sepconv2d", 714, "k2", noopt=False)


def k2_sepconv2d_noopt():
    """tf_keras SeparableConv2D(6, 3, 'same') with optimizers={}: as k3_sepconv2d_noopt."""
    _sepconv2d("k2_sepconv2d_noopt", 715, "k2", noopt=True)


def k2_dwconv2d():
    """tf_keras DepthwiseConv2D(3, padding='same') on 12x12x8: Conv(group 8, bias input)."""
    rng = np.random.default_rng(716)
    kernel, bias = rand(rng, 3, 3, 8, 1), rand(rng, 8)
    x = rng.standard_normal((1, 12, 12, 8), np.float32)
    g = TfGraph("sequential")
    k_conv2d(g, "x", "depthwise_conv2d", kernel, bias, (12, 12), depthwise=True, output="depthwise_conv2d")
    finish("k2_dwconv2d", g, x, "depthwise_conv2d", ref_conv(x, kernel, bias, padding="same", depthwise=True))


def _dwconv2d_noopt(name, seed, flavor, c, mult, strides):
    """DepthwiseConv2D(3, strides, depth_multiplier=mult, 'same') on 12x12xc with optimizers={}:
    Transpose -> Conv(group c, computed weight, no bias) -> Transpose([0,2,3,1]) -> Add(bias)
    -> Identity -> Identity. Keras 3 adds the bias reshaped to [1,1,1,c*m], tf_keras as [c*m]."""
    rng = np.random.default_rng(seed)
    kernel, bias = rand(rng, 3, 3, c, mult), rand(rng, c * mult)
    x = rng.standard_normal((1, 12, 12, c), np.float32)
    g = TfGraph("functional_1" if flavor == "k3" else "sequential", share=False)
    scope = f"{g.model_name}/depthwise_conv2d{'_1' if flavor == 'k3' else ''}"
    h = g.node("Transpose", ["x"], f"{scope}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    w = _noopt_dw_weight(g, scope, kernel, [3, 3, 1, c * mult])
    pads = [tf_pads(12, 3, strides, 1, "same")] * 2
    h = g.node("Conv", [h, w], f"{scope}/depthwise",
               **conv_attrs([3, 3], [strides] * 2, [1, 1], [pads[0][0], pads[1][0], pads[0][1], pads[1][1]], c,
                            depthwise=True))
    h = g.node("Transpose", [h], f"{scope}/depthwise__{g.uid()}", perm=[0, 2, 3, 1])
    if flavor == "k3":
        h = g.node("Add", [h, g.init(f"{scope}/Reshape:0", bias.reshape(1, 1, 1, -1))], f"{scope}/Add")
    else:
        h = g.node("Add", [h, g.init(f"{scope}/BiasAdd/ReadVariableOp:0", bias)], f"{scope}/BiasAdd")
    h = g.node("Identity", [h], "Identity")
    g.node("Identity", [h], f"Identity__{g.uid()}", output="depthwise_conv2d")
    ref = ref_conv(x, kernel, bias, strides=strides, padding="same", depthwise=True)
    finish(name, g, x, "depthwise_conv2d", ref)


def k3_dwconv2d_noopt():
    """Keras 3 DepthwiseConv2D(3, depth_multiplier=2, 'same') on 12x12x4, optimizers={}."""
    _dwconv2d_noopt("k3_dwconv2d_noopt", 717, "k3", c=4, mult=2, strides=1)


def k2_dwconv2d_noopt():
    """tf_keras DepthwiseConv2D(3, strides=2, 'same') on 12x12x6, optimizers={}."""
    _dwconv2d_noopt("k2_dwconv2d_noopt", 718, "k2", c=6, mult=1, strides=2)


def k2_dwconv1d_noopt():
    """tf_keras DepthwiseConv1D(3, 'same') on 40x8 with optimizers={}: Unsqueeze axes
    Reshape(Cast(1)), computed depthwise weight, Conv(group 8, no bias), Transpose([0,2,3,1]),
    Add(bias [8]) (BiasAdd before the Squeeze), Squeeze([1]), Identity, Identity."""
    rng = np.random.default_rng(719)
    kernel, bias = rand(rng, 3, 8, 1), rand(rng, 8)
    x = rng.standard_normal((1, 40, 8), np.float32)
    g = TfGraph("sequential", share=False)
    scope = "sequential/depthwise_conv1d"
    h = _noopt_expand_depthwise(g, scope, scope, kernel)
    h = g.node("Add", [h, g.init(f"{scope}/BiasAdd/ReadVariableOp:0", bias)], f"{scope}/BiasAdd")
    h = g.node("Squeeze", [h, g.init(f"{scope}/Squeeze__{g.uid()}", [1], I64)], f"{scope}/Squeeze")
    h = g.node("Identity", [h], "Identity")
    g.node("Identity", [h], f"Identity__{g.uid()}", output="depthwise_conv1d")
    finish("k2_dwconv1d_noopt", g, x, "depthwise_conv1d", ref_conv(x, kernel, bias, padding="same", depthwise=True))


MODELS = [
    sep_dwsep2d_bn, sep_dwsep_bn, sep_dwsep3d_m2, sep_affine_between, sep_convtr_bn, sep_pw_stride2,
    sep_dw_two_consumers, k3_sepconv1d_m2, k2_sepconv1d_noopt, k3_sepconv2d_noopt,
    k2_sepconv2d, k2_sepconv2d_noopt, k2_dwconv2d, k3_dwconv2d_noopt, k2_dwconv2d_noopt, k2_dwconv1d_noopt,
]


def main(filters):
    make_all(MODELS, filters)


if __name__ == "__main__":
    main(sys.argv[1:])
