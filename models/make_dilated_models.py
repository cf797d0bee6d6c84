"""Build the dilated-convolution models the `dilated` pass is tested on.

Run from anywhere:  python models/make_dilated_models.py [NAME_SUBSTRING ...]
Needs onnx, numpy, onnxruntime and torch (torch computes the reference outputs
and exports the zero-inserted-kernel models; the builders used by
benchmarks/bench_dilated.py import nothing beyond onnx and numpy).

Two kinds of model:

* tf2onnx forms (`k3_*`, `tf_*`), built with onnx.helper the way tf2onnx 1.17
  converts TensorFlow's lowering of a dilated convolution
  (`SpaceToBatchND -> Conv2D -> BatchToSpaceND`, see
  /work/shared/design/exporter-patterns.md sections 0, 1 and 3). With a dynamic
  spatial size tf2onnx cannot fold the lowering back, and the ONNX graph holds:
  - the shape arithmetic of TF's `required_space_to_batch_paddings` on
    `Shape(x)` (int32, as TF computes it): `pad_end_extra = (b - (W + base_begin
    + base_end) % b) % b`, `paddings = [[base_begin, base_end + extra]]`,
    `crops = [[0, extra]]`, stacked with Unsqueeze/Concat;
  - tf2onnx's SpaceToBatchND / BatchToSpaceND converters: the generic one for a
    3-D input or a non-square block (Pad with a pads tensor built by two Pads of
    the paddings, then Reshape/Transpose/Reshape with shapes computed from
    `Shape` of the padded tensor, and on the way back Gather/Reshape/Transpose/
    Reshape and a Slice whose end is computed from the crops), and the square
    2-D one (Pad, Transpose, SpaceToDepth, Transpose ... Transpose,
    DepthToSpace, Slice with `ends = -crop or INT32_MAX`), after tf2onnx's
    transpose optimizer moved the layout Transposes (the Pad then works in NHWC
    with its computed pads permuted through Split/Concat, as its Pad handler does).
  The static `*_norewrite` / hand-written forms have the same lowering with
  constant operands. These are written by hand from TF's lowering and
  tf2onnx's converters and differ in detail from what tf2onnx 1.17 really
  writes (models/export_tf2onnx_dilated.py exports the real ones, the
  `tf2onnx_*` models): the real graphs compute TF's floormod as Div/Mul/Sub
  (not Mod), read `Shape` of the inner conv's output through a `Gather` (the
  transpose optimizer), order and share their constants differently, and
  tf2onnx folds a VALID atrous conv itself even with a dynamic size (so
  `tf_atrous_conv2d_r2_valid_dyn` is a hypothetical graph, kept as one more
  form of the lowering). Both kinds are tested. Metadata as in the real
  exports: opset 13 plus `ai.onnx.ml` v2, IR version 7 (what tf2onnx 1.17 writes at opset 13, see
  the exporter samples), producer `tf2onnx 1.17.0 None`, graph name `tf2onnx`,
  NWC/NHWC graph inputs and outputs, every constant an initializer.
* torch exports (`*_ts13`) of convolutions whose kernel has zeros inserted
  between taps (what tools for hardware without dilation support store).

The framework outputs in each NAME.npz come from an independent reference: the
Keras/TF layer semantics written with torch.nn.functional (float64, dilated
conv with TF 'same' pads) on the channels-last input and Keras-layout weights.
Each dynamic model is also checked against that reference at several lengths,
multiples of the block and not.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13
IR_VERSION = 7
PRODUCER_VERSION = "1.17.0 None"
I32, I64 = np.int32, np.int64
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- graph builder


class TfGraph:
    """Nodes and initializers with tf2onnx's naming habits ("NODE:0" outputs, shared equal constants)."""

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._shared: dict = {}
        self._uid = 100

    def uid(self) -> int:
        self._uid += 1
        return self._uid

    def init(self, name, value, dtype=None) -> str:
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._shared:
            self._shared[key] = name
            self.inits.append(numpy_helper.from_array(arr, name))
        return self._shared[key]

    def const(self, value, dtype=I64, prefix="const_fold_opt") -> str:
        return self.init(f"{prefix}__{self.uid()}", value, dtype)

    def node(self, op, inputs, name, output=None, n_out=1, **attrs):
        outs = [output or f"{name}:{i}" for i in range(n_out)] if n_out > 1 else [output or f"{name}:0"]
        n = helper.make_node(op, inputs, outs, name=name)
        n.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items() if v is not None)
        self.nodes.append(n)
        return outs if n_out > 1 else outs[0]

    def model(self, inputs, outputs) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "tf2onnx",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            initializer=self.inits, doc_string=f"converted from {self.model_name}",
        )
        return helper.make_model(
            graph, producer_name="tf2onnx", producer_version=PRODUCER_VERSION, ir_version=IR_VERSION,
            opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 2)],
        )


def tf_same(k: int, d: int) -> tuple[int, int]:
    """TF SAME pads of a stride-1 dilated conv: total d*(k-1), the odd one at the end."""
    total = d * (k - 1)
    return total // 2, total - total // 2


# --------------------------------------------------------------------------- TF's lowering, as tf2onnx converts it


def tf_required_paddings(g: TfGraph, scope: str, x: str, axes, block, base):
    """TF `required_space_to_batch_paddings(shape(x)[axes], block, base)` in int32, as tf2onnx writes it.

    Returns the paddings and crops tensors, both int32 [m, 2].
    """
    m = len(block)
    shape = g.node("Shape", [x], f"{scope}/Shape")
    shape = g.node("Cast", [shape], f"{scope}/Shape__{g.uid()}", to=TensorProto.INT32)
    dims = []
    for i, a in enumerate(axes):
        s = g.node("Slice", [shape, g.const([a]), g.const([a + 1]), g.const([0])], f"{scope}/strided_slice_{i}")
        s = g.node("Squeeze", [s, g.const([0])], f"{scope}/strided_slice_{i}__{g.uid()}")
        dims.append(g.node("Unsqueeze", [s, g.const([0])], f"{scope}/stack_{i}__{g.uid()}"))
    size = dims[0] if m == 1 else g.node("Concat", dims, f"{scope}/stack", axis=0)
    base = np.asarray(base, I32).reshape(m, 2)
    blk = g.const(block, I32)
    full = g.node("Add", [size, g.const(base[:, 0], I32)], f"{scope}/add")
    full = g.node("Add", [full, g.const(base[:, 1], I32)], f"{scope}/add_1")
    rem = g.node("Mod", [full, blk], f"{scope}/mod", fmod=0)
    extra = g.node("Sub", [blk, rem], f"{scope}/sub")
    extra = g.node("Mod", [extra, blk], f"{scope}/mod_1", fmod=0)
    pad_end = g.node("Add", [g.const(base[:, 1], I32), extra], f"{scope}/add_2")
    rows_p, rows_c = [], []
    for i in range(m):
        at = [g.const([i]), g.const([i + 1]), g.const([0])]
        pe = g.node("Slice", [pad_end, *at], f"{scope}/strided_slice_{m + 2 * i}")
        ex = g.node("Slice", [extra, *at], f"{scope}/strided_slice_{m + 2 * i + 1}")
        row = g.node("Concat", [g.const([base[i, 0]], I32), pe], f"{scope}/paddings/{i}", axis=0)
        rows_p.append(g.node("Unsqueeze", [row, g.const([0])], f"{scope}/paddings__{g.uid()}"))
        row = g.node("Concat", [g.const([0], I32), ex], f"{scope}/crops/{i}", axis=0)
        rows_c.append(g.node("Unsqueeze", [row, g.const([0])], f"{scope}/crops__{g.uid()}"))
    paddings = rows_p[0] if m == 1 else g.node("Concat", rows_p, f"{scope}/paddings", axis=0)
    crops = rows_c[0] if m == 1 else g.node("Concat", rows_c, f"{scope}/crops", axis=0)
    return paddings, crops


def s2b_generic(g: TfGraph, name: str, x: str, block, paddings: str, rank: int) -> str:
    """tf2onnx's SpaceToBatchND converter for a non-4D input or a non-square block (dynamic pads)."""
    m = len(block)
    c = g.const
    int_max, zero, one, minus1 = c([INT64_MAX]), c([0]), c([1]), c([-1])
    resize, blp1 = c([-1, m]), c([m + 1])
    filltop, fillbottom, blk = c([1, 0, 0, 0]), c([0, 0, 1, 0]), c(block)
    x_shape = g.node("Shape", [x], f"{name}__{g.uid()}")
    x_rank = g.node("Size", [x_shape], f"{name}_size__{g.uid()}")
    pad = g.node("Cast", [paddings], f"{name}_cast__{g.uid()}", to=TensorProto.INT64)
    pad_shape = g.node("Shape", [pad], f"{name}_shape__{g.uid()}")
    pad_rank = g.node("Slice", [pad_shape, zero, one], f"{name}_slice__{g.uid()}")
    gap = g.node("Sub", [x_rank, pad_rank], f"{name}_sub__{g.uid()}")
    gap1 = g.node("Sub", [gap, one], f"{name}_sub__{g.uid()}")
    fillbot = g.node("Mul", [fillbottom, gap1], f"{name}_mul__{g.uid()}")
    pad = g.node("Pad", [pad, filltop], f"{name}_pad__{g.uid()}")
    pad = g.node("Pad", [pad, fillbot], f"{name}_pad__{g.uid()}")
    pad = g.node("Transpose", [pad], f"{name}_transpose__{g.uid()}")
    pad = g.node("Reshape", [pad, minus1], f"{name}_reshape__{g.uid()}")
    x1 = g.node("Pad", [x, pad], f"{name}_pad__{g.uid()}")
    x1_shape = g.node("Shape", [x1], f"{name}_shape__{g.uid()}")
    spatial = g.node("Slice", [x1_shape, one, blp1], f"{name}_slice__{g.uid()}")
    depth = g.node("Slice", [x1_shape, blp1, int_max], f"{name}_slice__{g.uid()}")
    reduced = g.node("Div", [spatial, blk], f"{name}_div__{g.uid()}")
    ccat = g.node("Concat", [reduced, blk], f"{name}_concat__{g.uid()}", axis=0)
    r1 = g.node("Reshape", [ccat, resize], f"{name}_reshape__{g.uid()}")
    t1 = g.node("Transpose", [r1], f"{name}_transpose__{g.uid()}")
    inter = g.node("Reshape", [t1, minus1], f"{name}_reshape__{g.uid()}")
    shape1 = g.node("Concat", [minus1, inter, depth], f"{name}_concat__{g.uid()}", axis=0)
    x2 = g.node("Reshape", [x1, shape1], f"{name}_reshape__{g.uid()}")
    perm = list(range(2, 2 * m + 1, 2)) + [0] + list(range(1, 2 * m + 1, 2)) + list(range(2 * m + 1, rank + m))
    t2 = g.node("Transpose", [x2], f"{name}_transpose__{g.uid()}", perm=perm)
    shape2 = g.node("Concat", [minus1, reduced, depth], f"{name}_concat__{g.uid()}", axis=0)
    return g.node("Reshape", [t2, shape2], name)


def b2s_generic(g: TfGraph, name: str, x: str, block, crops: str, rank: int, output=None) -> str:
    """tf2onnx's BatchToSpaceND converter for a non-4D input or a non-square block (dynamic crops)."""
    m = len(block)
    c = g.const
    int_max, one, minus1, resize, blp1, blk = c([INT64_MAX]), c([1]), c([-1]), c([-1, m]), c([m + 1]), c(block)
    x_shape = g.node("Shape", [x], f"{name}__{g.uid()}")
    spatial = g.node("Slice", [x_shape, one, blp1], f"{name}_slice__{g.uid()}")
    depth = g.node("Slice", [x_shape, blp1, int_max], f"{name}_slice__{g.uid()}")
    target = g.node("Mul", [spatial, blk], f"{name}_mul__{g.uid()}")
    ccat = g.node("Concat", [spatial, blk], f"{name}_concat__{g.uid()}", axis=0)
    r1 = g.node("Reshape", [ccat, resize], f"{name}_reshape__{g.uid()}")
    t1 = g.node("Transpose", [r1], f"{name}_transpose__{g.uid()}")
    inter = g.node("Reshape", [t1, minus1], f"{name}_reshape__{g.uid()}")
    shape1 = g.node("Concat", [minus1, inter, depth], f"{name}_concat__{g.uid()}", axis=0)
    gidx = list(range(2, 2 * m + 1, 2)) + [0] + list(range(1, 2 * m + 1, 2)) + list(range(2 * m + 1, rank + m))
    gathered = g.node("Gather", [shape1, c(gidx)], f"{name}_gather__{g.uid()}")
    x2 = g.node("Reshape", [x, gathered], f"{name}_reshape__{g.uid()}")
    p = list(range(rank + m))
    p[0], p[1], p[2] = m, m + 1, 0
    for i in range(3, 2 * m + 1):
        p[i] = p[i - 2] + 1
    t2 = g.node("Transpose", [x2], f"{name}_transpose__{g.uid()}", perm=p)
    shape2 = g.node("Concat", [minus1, target, depth], f"{name}_concat__{g.uid()}", axis=0)
    x3 = g.node("Reshape", [t2, shape2], f"{name}_reshape__{g.uid()}")
    crop = g.node("Cast", [crops], f"{name}_cast__{g.uid()}", to=TensorProto.INT64)
    crop_t = g.node("Transpose", [crop], f"{name}_transpose__{g.uid()}")
    starts = g.node("Slice", [crop_t, c([0, 0]), c([1, INT64_MAX])], f"{name}_slice__{g.uid()}")
    ends = g.node("Slice", [crop_t, c([1, 0]), c([2, INT64_MAX])], f"{name}_slice__{g.uid()}")
    starts = g.node("Squeeze", [starts, c([0])], f"{name}_squeeze__{g.uid()}")
    ends = g.node("Squeeze", [ends, c([0])], f"{name}_squeeze__{g.uid()}")
    end_range = g.node("Sub", [target, ends], f"{name}_sub__{g.uid()}")
    return g.node("Slice", [x3, starts, end_range, c(list(range(1, m + 1)))], name, output=output)


def s2b_square_nhwc(g: TfGraph, name: str, x: str, block: int, paddings: str) -> str:
    """tf2onnx's square-block SpaceToBatchND converter on NHWC with dynamic pads, after the transpose
    optimizer: Pad(NHWC, pads via Split/Concat) -> Transpose([3,0,1,2]) -> SpaceToDepth -> Transpose([1,0,2,3])."""
    c = g.const
    flat = g.node("Reshape", [paddings, c([-1])], f"{name}_reshape__{g.uid()}")
    flat = g.node("Cast", [flat], f"{name}_cast__{g.uid()}", to=TensorProto.INT64)
    p = g.node("Split", [flat], f"{name}_split__{g.uid()}", n_out=4, axis=0)
    zero = c([0])
    cnhw = g.node("Concat", [zero, zero, p[0], p[2], zero, zero, p[1], p[3]], f"{name}_concat__{g.uid()}", axis=0)
    # the transpose optimizer's Pad handler: pads permuted through Split + Concat (perm_inv of [3,0,1,2])
    q = g.node("Split", [cnhw], f"Split__{g.uid()}", n_out=8, axis=0)
    nhwc = g.node("Concat", [q[1], q[2], q[3], q[0], q[5], q[6], q[7], q[4]], f"Concat__{g.uid()}", axis=0)
    h = g.node("Pad", [x, nhwc], f"{name}_pad__{g.uid()}")
    h = g.node("Transpose", [h], f"{name}__{g.uid()}", perm=[3, 0, 1, 2])
    h = g.node("SpaceToDepth", [h], f"{name}_s2d__{g.uid()}", blocksize=block)
    return g.node("Transpose", [h], f"{name}__{g.uid()}", perm=[1, 0, 2, 3])


def b2s_square_cnhw(g: TfGraph, name: str, x: str, block: int, crops: str) -> str:
    """tf2onnx's square-block BatchToSpaceND converter (dynamic crops), input in [N*b*b, C, h, w]:
    Transpose([1,0,2,3]) -> DepthToSpace -> Slice(starts, ends = -crop or INT32_MAX, axes [2,3]); CNHW out."""
    c = g.const
    h = g.node("Transpose", [x], f"{name}__{g.uid()}", perm=[1, 0, 2, 3])
    h = g.node("DepthToSpace", [h], f"{name}_d2s__{g.uid()}", blocksize=block)
    flat = g.node("Reshape", [crops, c([-1])], f"{name}_reshape__{g.uid()}")
    flat = g.node("Cast", [flat], f"{name}_cast__{g.uid()}", to=TensorProto.INT64)
    cr = g.node("Split", [flat], f"{name}_split__{g.uid()}", n_out=4, axis=0)
    zero, int32_max = c([0]), c([INT32_MAX])

    def crop_to_end(crop):
        eq = g.node("Equal", [crop, zero], f"{name}_equal__{g.uid()}")
        not_eq = g.node("Not", [eq], f"{name}_not__{g.uid()}")
        cast_eq = g.node("Cast", [eq], f"{name}_cast__{g.uid()}", to=TensorProto.INT64)
        cast_not = g.node("Cast", [not_eq], f"{name}_cast__{g.uid()}", to=TensorProto.INT64)
        neg = g.node("Neg", [cast_not], f"{name}_neg__{g.uid()}")
        a = g.node("Mul", [crop, neg], f"{name}_mul__{g.uid()}")
        b = g.node("Mul", [int32_max, cast_eq], f"{name}_mul__{g.uid()}")
        return g.node("Add", [a, b], f"{name}_add__{g.uid()}")

    starts = g.node("Concat", [cr[0], cr[2]], f"{name}_concat__{g.uid()}", axis=0)
    ends = g.node("Concat", [crop_to_end(cr[1]), crop_to_end(cr[3])], f"{name}_concat__{g.uid()}", axis=0)
    return g.node("Slice", [h, starts, ends, c([2, 3])], name)


# --------------------------------------------------------------------------- Keras layers with a dynamic size


def k_conv1d_dilated_dyn(g: TfGraph, x: str, layer: str, kernel, bias, dilation: int, output=None, relu=False) -> str:
    """Keras 3 Conv1D(padding='same', dilation_rate=d) on a dynamic-length NWC input.
    kernel [k, Ci, Co] (Keras layout); bias [Co]."""
    k, _, co = kernel.shape
    scope = f"{g.model_name}/{layer}/convolution"
    paddings, crops = tf_required_paddings(g, scope, x, [1], [dilation], [tf_same(k, dilation)])
    h = s2b_generic(g, f"{scope}/SpaceToBatchND", x, [dilation], paddings, 3)
    h = g.node("Unsqueeze", [h, g.const([-3])], f"{scope}/Conv1D/ExpandDims")
    h = g.node("Transpose", [h], f"{scope}/Conv1D__{g.uid()}", perm=[0, 3, 1, 2])
    w = g.init(f"{scope}/Conv1D/ExpandDims_1:0", kernel.transpose(2, 1, 0)[:, :, None, :])
    h = g.node("Conv", [h, w], f"{scope}/Conv1D", dilations=[1, 1], strides=[1, 1], kernel_shape=[1, k], group=1)
    h = g.node("Squeeze", [h, g.const([2], prefix="axes_const")], f"{scope}/Conv1D/Squeeze")
    h = g.node("Transpose", [h], f"Transpose__{g.uid()}", perm=[0, 2, 1])
    h = b2s_generic(g, f"{scope}/BatchToSpaceND", h, [dilation], crops, 3)
    last = not relu
    h = g.node("Add", [h, g.const(bias.reshape(1, 1, co), np.float32)], f"{g.model_name}/{layer}/BiasAdd",
               output=output if last else None)
    if relu:
        h = g.node("Relu", [h], f"{g.model_name}/{layer}/Relu", output=output)
    return h


def k_sepconv1d_dilated_dyn(g: TfGraph, x: str, layer: str, dw_kernel, pw_kernel, bias, dilation: int, output=None):
    """Keras 3 SeparableConv1D(padding='same', dilation_rate=d), dynamic length: ExpandDims(1), then
    tf.nn.separable_conv2d with rate (1, d): SpaceToBatchND with block [1, d] around the depthwise conv
    (tf2onnx's generic converter: a non-square block), the pointwise conv after BatchToSpaceND."""
    k, c, _ = dw_kernel.shape
    co = pw_kernel.shape[-1]
    scope = f"{g.model_name}/{layer}"
    x4 = g.node("Unsqueeze", [x, g.const([1])], f"{scope}/ExpandDims")
    sc = f"{scope}/separable_conv2d"
    paddings, crops = tf_required_paddings(g, sc, x4, [1, 2], [1, dilation], [(0, 0), tf_same(k, dilation)])
    h = s2b_generic(g, f"{sc}/SpaceToBatchND", x4, [1, dilation], paddings, 4)
    h = g.node("Transpose", [h], f"{sc}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    dw = g.const(dw_kernel.reshape(k, 1, c).transpose(2, 1, 0)[:, :, None, :].astype(np.float32), np.float32)
    h = g.node("Conv", [h, dw], f"{sc}/depthwise", dilations=[1, 1], strides=[1, 1], kernel_shape=[1, k], group=c)
    h = g.node("Transpose", [h], f"{sc}/depthwise__{g.uid()}", perm=[0, 2, 3, 1])
    h = b2s_generic(g, f"{sc}/BatchToSpaceND", h, [1, dilation], crops, 4)
    h = g.node("Transpose", [h], f"{sc}__{g.uid()}", perm=[0, 3, 1, 2])
    pw = g.init(f"{scope}/ExpandDims_2:0", pw_kernel.T[:, :, None, None])
    h = g.node("Conv", [h, pw], sc, dilations=[1, 1], strides=[1, 1], kernel_shape=[1, 1], group=1)
    h = g.node("Squeeze", [h, g.const([2], prefix="axes_const")], f"{scope}/Squeeze")
    h = g.node("Add", [h, g.const(bias.reshape(1, co, 1), np.float32)], f"{scope}/BiasAdd")
    return g.node("Transpose", [h], f"Transpose__{g.uid()}", output=output, perm=[0, 2, 1])


def k_conv2d_dilated_dyn(g: TfGraph, x: str, layer: str, kernel, bias, dilation: int, output=None, padding="same"):
    """Keras 3 Conv2D(dilation_rate=d) / tf.nn.atrous_conv2d on a dynamic NHWC input (bias None: no Add).
    kernel [kh, kw, Ci, Co]."""
    kh, kw, _, co = kernel.shape
    scope = f"{g.model_name}/{layer}/convolution"
    base = [tf_same(kh, dilation), tf_same(kw, dilation)] if padding == "same" else [(0, 0), (0, 0)]
    paddings, crops = tf_required_paddings(g, scope, x, [1, 2], [dilation, dilation], base)
    h = s2b_square_nhwc(g, f"{scope}/SpaceToBatchND", x, dilation, paddings)
    w = g.init(f"{scope}/ReadVariableOp:0", kernel.transpose(3, 2, 0, 1))
    h = g.node("Conv", [h, w], scope, dilations=[1, 1], strides=[1, 1], kernel_shape=[kh, kw], group=1)
    h = b2s_square_cnhw(g, f"{scope}/BatchToSpaceND", h, dilation, crops)
    if bias is not None:
        h = g.node("Add", [h, g.const(bias.reshape(co, 1, 1, 1), np.float32)], f"{g.model_name}/{layer}/BiasAdd")
    return g.node("Transpose", [h], f"Transpose__{g.uid()}", output=output, perm=[1, 2, 3, 0])


# --------------------------------------------------------------------------- reference (TF semantics in torch)


def ref_conv(x, kernel, bias=None, dilation=1, padding="same", depthwise=False, pads=None):
    """TF ConvND on a channels-last x (float64). kernel [*k, Ci, Co] or depthwise [*k, C, m]."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.asarray(x, np.float64))
    nd = t.dim() - 2
    ks = kernel.shape[:nd]
    if pads is None:
        pads = [tf_same(k, dilation) if padding == "same" else (0, 0) for k in ks]
    flat = [p for be in reversed(pads) for p in be]
    xc = F.pad(t.movedim(-1, 1), flat)
    w, groups = torch.from_numpy(np.asarray(kernel, np.float64)), 1
    if depthwise:
        groups = kernel.shape[-2]
        w = w.reshape(*ks, 1, -1)
    w = w.permute(nd + 1, nd, *range(nd))
    conv = F.conv1d if nd == 1 else F.conv2d
    y = conv(xc, w, dilation=dilation, groups=groups).movedim(1, -1)
    if bias is not None:
        y = y + torch.from_numpy(np.asarray(bias, np.float64))
    return y.numpy()


def rand(rng, *shape, scale=0.5):
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


# --------------------------------------------------------------------------- model builders (no torch)


def conv1d_dilated_model(seed=0, c=6, co=8, k=3, dilations=(2,), relu=False, name="functional_1"):
    """Keras 3 stack of Conv1D(co, k, padding='same', dilation_rate=d) on [N, W, c], dynamic N and W.
    Returns (model, weights) with weights = [(kernel, bias, d), ...] for the reference."""
    rng = np.random.default_rng(seed)
    g = TfGraph(name)
    h, weights, ci = "x", [], c
    for i, d in enumerate(dilations):
        kernel, bias = rand(rng, k, ci, co), rand(rng, co)
        out = "conv1d" if i == len(dilations) - 1 else None
        h = k_conv1d_dilated_dyn(g, h, f"conv1d_{i + 1}", kernel, bias, d, output=out, relu=relu)
        weights.append((kernel, bias, d))
        ci = co
    return g.model([("x", ["N", "W", c])], [("conv1d", ["N", "W", co])]), weights


def sepconv1d_dilated_model(seed=0, c=6, co=8, k=3, dilation=2):
    rng = np.random.default_rng(seed)
    dw, pw, bias = rand(rng, k, c, 1), rand(rng, c, co), rand(rng, co)
    g = TfGraph("functional_1")
    k_sepconv1d_dilated_dyn(g, "x", "separable_conv1d_1", dw, pw, bias, dilation, output="separable_conv1d")
    return g.model([("x", ["N", "W", c])], [("separable_conv1d", ["N", "W", co])]), (dw, pw, bias)


def conv2d_dilated_model(seed=0, c=4, co=6, k=(3, 3), dilation=2, bias=True, padding="same", out="conv2d"):
    rng = np.random.default_rng(seed)
    kernel = rand(rng, *k, c, co)
    b = rand(rng, co) if bias else None
    g = TfGraph("functional_1")
    k_conv2d_dilated_dyn(g, "x", "conv2d_1", kernel, b, dilation, output=out, padding=padding)
    return g.model([("x", ["N", "H", "W", c])], [(out, ["N", "H", "W", co])]), (kernel, b)


# --------------------------------------------------------------------------- saving


def _ort_run(model, feeds):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def check_sizes(name, model, make_x, reference, sizes):
    """The built model agrees with the reference at every size (multiples of the block and not)."""
    for size in sizes:
        x = make_x(size)
        got, ref = _ort_run(model, {"x": x}), reference(x)
        diff = float(np.max(np.abs(got - ref))) if got.size else 0.0
        assert got.shape == ref.shape and diff < 1e-4, (name, size, got.shape, ref.shape, diff)
    print(f"  {name}: matches the reference at sizes {sizes}")


def save_model(name, model, x, ref, out_name):
    from _common import save

    save(name, model, {"x": x}, {out_name: np.asarray(ref, np.float32)})


LENGTHS = [1, 2, 3, 4, 5, 7, 8, 13, 16, 37, 64]


def k3_conv1d_dilated(d):
    def make():
        name = f"k3_conv1d_d{d}_same_dyn"
        model, [(kernel, bias, _)] = conv1d_dilated_model(seed=600 + d, dilations=(d,))
        rng = np.random.default_rng(d)

        def make_x(w):
            return rng.standard_normal((2, w, 6)).astype(np.float32)

        def ref(x):
            return ref_conv(x, kernel, bias, d)

        check_sizes(name, model, make_x, ref, LENGTHS)
        x = make_x(37)
        save_model(name, model, x, ref(x), "conv1d")

    make.__name__ = f"k3_conv1d_d{d}_same_dyn"
    return make


def k3_sepconv1d_dilated(d):
    def make():
        name = f"k3_sepconv1d_d{d}_same_dyn"
        model, (dw, pw, bias) = sepconv1d_dilated_model(seed=610 + d, dilation=d)
        rng = np.random.default_rng(10 + d)

        def make_x(w):
            return rng.standard_normal((2, w, 6)).astype(np.float32)

        def ref(x):
            h = ref_conv(x, dw, None, d, depthwise=True)
            return ref_conv(h, pw[None], bias)

        check_sizes(name, model, make_x, ref, LENGTHS)
        x = make_x(37)
        save_model(name, model, x, ref(x), "separable_conv1d")

    make.__name__ = f"k3_sepconv1d_d{d}_same_dyn"
    return make


def _conv2d_dyn(name, seed, k, d, bias, padding, out, sizes, npz_hw):
    model, (kernel, b) = conv2d_dilated_model(seed=seed, k=k, dilation=d, bias=bias, padding=padding, out=out)
    rng = np.random.default_rng(seed)

    def make_x(hw):
        h, w = hw if isinstance(hw, tuple) else (hw, hw)
        return rng.standard_normal((2, h, w, 4)).astype(np.float32)

    def ref(x):
        return ref_conv(x, kernel, b, d, padding)

    check_sizes(name, model, make_x, ref, sizes)
    x = make_x(npz_hw)
    save_model(name, model, x, ref(x), out)


def k3_conv2d_d2_same_dyn():
    """Keras 3 Conv2D(6, 3, dilation_rate=2, padding='same') on a dynamic NHWC input."""
    _conv2d_dyn("k3_conv2d_d2_same_dyn", 620, (3, 3), 2, True, "same", "conv2d",
                [1, 2, 3, (4, 7), (5, 8), (9, 6), 12, 13], (11, 14))


def tf_atrous_conv2d_r3_same_dyn():
    """tf.nn.atrous_conv2d(x, filters 2x2, rate=3, padding='SAME'), no bias: TF SAME pads
    (1, 2) per axis, block 3; dynamic NHWC input."""
    _conv2d_dyn("tf_atrous_conv2d_r3_same_dyn", 630, (2, 2), 3, False, "same", "atrous_conv2d",
                [1, 2, 3, 4, (5, 7), (6, 8), 9, 10, 11], (10, 13))


def tf_atrous_conv2d_r2_valid_dyn():
    """tf.nn.atrous_conv2d(x, filters 3x3, rate=2, padding='VALID'), no bias, dynamic NHWC input
    (sizes below the dilated kernel's span 5 do not run). tf2onnx 1.17 itself folds this one into a
    dilated conv (see tf2onnx_tf_atrous_conv2d_r2_valid_dyn); the lowering here is what it would be
    if it did not."""
    _conv2d_dyn("tf_atrous_conv2d_r2_valid_dyn", 640, (3, 3), 2, False, "valid", "atrous_conv2d",
                [5, 6, (7, 10), 8, 9, 12], (11, 14))


def k3_conv2d_d2_same_norewrite():
    """The static 2-D lowering tf2onnx leaves when its rewriter is off (*_norewrite in
    exporter-patterns.md §3): every operand constant, N=1 so Transpose([1,0,2,3]) became Reshape."""
    rng = np.random.default_rng(650)
    kernel, bias = rand(rng, 3, 3, 8, 8), rand(rng, 8)
    x = rng.standard_normal((1, 16, 16, 8)).astype(np.float32)
    g = TfGraph("functional_1")
    scope = "functional_1/conv2d_1/convolution"
    c = g.const
    h = g.node("Pad", ["x", c([0, 2, 2, 0, 0, 2, 2, 0])], f"{scope}/SpaceToBatchND")
    h = g.node("Transpose", [h], f"{scope}/SpaceToBatchND__{g.uid()}", perm=[0, 3, 1, 2])
    h = g.node("Reshape", [h, c([8, 1, 20, 20])], f"{scope}/SpaceToBatchND__{g.uid()}")
    h = g.node("SpaceToDepth", [h], f"{scope}/SpaceToBatchND__{g.uid()}", blocksize=2)
    h = g.node("Transpose", [h], f"{scope}__{g.uid()}", perm=[1, 0, 2, 3])
    w = g.init(f"{scope}/ReadVariableOp:0", kernel.transpose(3, 2, 0, 1))
    h = g.node("Conv", [h, w], scope, dilations=[1, 1], strides=[1, 1], kernel_shape=[3, 3], group=1)
    h = g.node("Transpose", [h], f"{scope}/BatchToSpaceND__{g.uid()}", perm=[1, 0, 2, 3])
    h = g.node("DepthToSpace", [h], f"{scope}/BatchToSpaceND__{g.uid()}", blocksize=2)
    h = g.node("Slice", [h, c([0, 0]), c([INT32_MAX, INT32_MAX]), c([2, 3])], f"{scope}/BatchToSpaceND")
    h = g.node("Add", [h, g.const(bias.reshape(8, 1, 1, 1), np.float32)], "functional_1/conv2d_1/BiasAdd")
    h = g.node("Reshape", [h, c([1, 8, 16, 16])], f"functional_1/conv2d_1/BiasAdd__{g.uid()}")
    g.node("Transpose", [h], f"Transpose__{g.uid()}", output="conv2d", perm=[0, 2, 3, 1])
    model = g.model([("x", [1, 16, 16, 8])], [("conv2d", [1, 16, 16, 8])])
    save_model("k3_conv2d_d2_same_norewrite", model, x, ref_conv(x, kernel, bias, 2), "conv2d")


def tf_s2b_conv2d_static():
    """Hand-written `space_to_batch_nd(x, [2, 2], [[2, 4], [2, 4]]) -> conv2d(3x3, VALID) ->
    batch_to_space_nd(crops [[0, 2], [0, 2]])` on a static [2, 12, 12, 4] input (a dilation-2
    conv with pads 2 on every side); tf2onnx's square converter with constant operands."""
    rng = np.random.default_rng(660)
    kernel = rand(rng, 3, 3, 4, 5)
    x = rng.standard_normal((2, 12, 12, 4)).astype(np.float32)
    g = TfGraph("tf_function")
    c = g.const
    h = g.node("Pad", ["x", c([0, 2, 2, 0, 0, 4, 4, 0])], "SpaceToBatchND__1")
    h = g.node("Transpose", [h], f"SpaceToBatchND__{g.uid()}", perm=[3, 0, 1, 2])
    h = g.node("SpaceToDepth", [h], f"SpaceToBatchND__{g.uid()}", blocksize=2)
    h = g.node("Transpose", [h], f"Conv2D__{g.uid()}", perm=[1, 0, 2, 3])
    w = g.init("Conv2D/ReadVariableOp:0", kernel.transpose(3, 2, 0, 1))
    h = g.node("Conv", [h, w], "Conv2D", dilations=[1, 1], strides=[1, 1], kernel_shape=[3, 3], group=1)
    h = g.node("Transpose", [h], f"BatchToSpaceND__{g.uid()}", perm=[1, 0, 2, 3])
    h = g.node("DepthToSpace", [h], f"BatchToSpaceND__{g.uid()}", blocksize=2)
    h = g.node("Slice", [h, c([0, 0]), c([-2, -2]), c([2, 3])], "BatchToSpaceND")
    g.node("Transpose", [h], f"Transpose__{g.uid()}", output="y", perm=[1, 2, 3, 0])
    model = g.model([("x", [2, 12, 12, 4])], [("y", [2, 12, 12, 5])])
    save_model("tf_s2b_conv2d_static", model, x, ref_conv(x, kernel, None, 2, pads=[(2, 2), (2, 2)]), "y")


def k3_conv1d_d2_same_norewrite():
    """The static 1-D lowering (tf2onnx's generic converter with every shape folded): Pad(init) ->
    Reshape([-1, 21, 2, 6]) -> Transpose([2,0,1,3]) -> Reshape([-1, 21, 6]) -> Conv1D wrappers ->
    Reshape([2, -1, 19, 8]) -> Transpose([1,2,0,3]) -> Reshape([-1, 38, 8]) -> Slice(ends [37]) -> Add."""
    rng = np.random.default_rng(670)
    kernel, bias = rand(rng, 3, 6, 8), rand(rng, 8)
    x = rng.standard_normal((1, 37, 6)).astype(np.float32)
    g = TfGraph("functional_1")
    scope = "functional_1/conv1d_1/convolution"
    c = g.const
    h = g.node("Pad", ["x", c([0, 2, 0, 0, 3, 0])], f"{scope}/SpaceToBatchND_pad")
    h = g.node("Reshape", [h, c([-1, 21, 2, 6])], f"{scope}/SpaceToBatchND_reshape")
    h = g.node("Transpose", [h], f"{scope}/SpaceToBatchND_transpose", perm=[2, 0, 1, 3])
    h = g.node("Reshape", [h, c([-1, 21, 6])], f"{scope}/SpaceToBatchND")
    h = g.node("Unsqueeze", [h, c([-3])], f"{scope}/Conv1D/ExpandDims")
    h = g.node("Transpose", [h], f"{scope}/Conv1D__{g.uid()}", perm=[0, 3, 1, 2])
    w = g.init(f"{scope}/Conv1D/ExpandDims_1:0", kernel.transpose(2, 1, 0)[:, :, None, :])
    h = g.node("Conv", [h, w], f"{scope}/Conv1D", dilations=[1, 1], strides=[1, 1], kernel_shape=[1, 3], group=1)
    h = g.node("Squeeze", [h, c([2], prefix="axes_const")], f"{scope}/Conv1D/Squeeze")
    h = g.node("Transpose", [h], f"Transpose__{g.uid()}", perm=[0, 2, 1])
    h = g.node("Reshape", [h, c([2, -1, 19, 8])], f"{scope}/BatchToSpaceND_reshape")
    h = g.node("Transpose", [h], f"{scope}/BatchToSpaceND_transpose", perm=[1, 2, 0, 3])
    h = g.node("Reshape", [h, c([-1, 38, 8])], f"{scope}/BatchToSpaceND_reshape_1")
    h = g.node("Slice", [h, c([0]), c([37]), c([1])], f"{scope}/BatchToSpaceND")
    g.node("Add", [h, g.const(bias.reshape(1, 1, 8), np.float32)], "functional_1/conv1d_1/BiasAdd", output="conv1d")
    model = g.model([("x", [1, 37, 6])], [("conv1d", [1, 37, 8])])
    save_model("k3_conv1d_d2_same_norewrite", model, x, ref_conv(x, kernel, bias, 2), "conv1d")


# --------------------------------------------------------------------------- zero-inserted kernels (torch exports)


def _torch_export(name, module, x, **kw):
    import torch

    path = os.path.join(HERE, name + ".onnx")
    torch.onnx.export(module, (x,), path, opset_version=13, dynamo=False, input_names=["x"],
                      output_names=["y"], **kw)
    with torch.no_grad():
        y = module(x).numpy()
    from _common import save

    save(name, path, {"x": x.numpy()}, {"y": y})


def _zero_taps(weight, axis, d):
    """Zero every tap not on a multiple of d along `axis` (weight in torch layout)."""
    import torch

    idx = torch.arange(weight.shape[axis])
    mask = (idx % d != 0).view([-1 if i == axis else 1 for i in range(weight.dim())])
    with torch.no_grad():
        weight.masked_fill_(mask.expand_as(weight), 0.0)


def zero_inserted_conv1d_ts13():
    """Conv1d(8, 8, 5, padding=2) whose taps 1 and 3 are zero: a k3 dilation-2 conv stored expanded."""
    import torch

    torch.manual_seed(700)
    conv = torch.nn.Conv1d(8, 8, 5, padding=2)
    _zero_taps(conv.weight, 2, 2)
    _torch_export("zero_inserted_conv1d_ts13", conv.eval(), torch.randn(1, 8, 32))


def zero_inserted_conv2d_ts13():
    """Conv2d(6, 8, (5, 5), padding=(2, 4), dilation=(1, 2)): taps 1, 3 zero on both axes, so the
    compact kernel is 3x3 with dilations (2, 4)."""
    import torch

    torch.manual_seed(701)
    conv = torch.nn.Conv2d(6, 8, (5, 5), padding=(2, 4), dilation=(1, 2))
    _zero_taps(conv.weight, 2, 2)
    _zero_taps(conv.weight, 3, 2)
    _torch_export("zero_inserted_conv2d_ts13", conv.eval(), torch.randn(1, 6, 12, 14))


def zero_inserted_convtr1d_ts13():
    """ConvTranspose1d(8, 6, 7, stride=2, padding=3, output_padding=1) with taps != 0 mod 3 zero:
    a k3 dilation-3 transposed conv stored expanded."""
    import torch

    torch.manual_seed(702)
    conv = torch.nn.ConvTranspose1d(8, 6, 7, stride=2, padding=3, output_padding=1)
    _zero_taps(conv.weight, 2, 3)
    _torch_export("zero_inserted_convtr1d_ts13", conv.eval(), torch.randn(1, 8, 20))


def near_zero_kernel_ts13():
    """Negative case: Conv1d(8, 8, 5, padding=2) whose taps 1 and 3 are 1e-30, not exactly zero."""
    import torch

    torch.manual_seed(703)
    conv = torch.nn.Conv1d(8, 8, 5, padding=2)
    _zero_taps(conv.weight, 2, 2)
    with torch.no_grad():
        conv.weight[:, :, 1] += 1e-30
    _torch_export("near_zero_kernel_ts13", conv.eval(), torch.randn(1, 8, 32))


MODELS = [
    k3_conv1d_dilated(2),
    k3_conv1d_dilated(4),
    k3_sepconv1d_dilated(2),
    k3_sepconv1d_dilated(4),
    k3_conv2d_d2_same_dyn,
    tf_atrous_conv2d_r3_same_dyn,
    tf_atrous_conv2d_r2_valid_dyn,
    k3_conv2d_d2_same_norewrite,
    tf_s2b_conv2d_static,
    k3_conv1d_d2_same_norewrite,
    zero_inserted_conv1d_ts13,
    zero_inserted_conv2d_ts13,
    zero_inserted_convtr1d_ts13,
    near_zero_kernel_ts13,
]


def main(filters):
    sys.path.insert(0, HERE)
    from _common import make_all

    make_all(MODELS, filters)


if __name__ == "__main__":
    main(sys.argv[1:])
