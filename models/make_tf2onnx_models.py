"""Build, with onnx.helper, models that reproduce what tf2onnx 1.17 makes of Keras.

Run from anywhere:  python models/make_tf2onnx_models.py [NAME_SUBSTRING ...]
Needs onnx, numpy, onnxruntime and torch (torch only computes the reference outputs).

No TensorFlow here: each graph is written node for node as tf2onnx 1.17.0 writes
it for Keras 3 ("k3_*") or tf_keras 2 ("k2_*") at opset 13 (see
/work/shared/design/exporter-patterns.md sections 1, 2, 4, 5, 6): node order,
operand kinds (initializers, since tf2onnx's optimizer folds every constant),
attribute presence and order, NWC/NHWC graph inputs and outputs, opset_import
with ai.onnx.ml v2, producer "tf2onnx" version "1.17.0 None", IR version 7,
graph name "tf2onnx", graph doc_string "converted from <Keras model>" (all as in
the real exports). The weights are random and stored in Keras layout first; the ONNX
initializers are derived from them the way tf2onnx does it.

The "framework outputs" in each NAME.npz come from an independent reference:
the Keras layer semantics written with torch.nn.functional in float64, on the
channels-last input and the Keras-layout weights (TF 'same'/'causal' padding
rules included). onnxruntime must agree within 1e-4.

Where a real tf2onnx export of the same layer exists in the exporter samples
(SAMPLES, below), the built graph is also compared with it structurally: op
types, node wiring, attributes and their order, operand kinds, integer
constants, initializer shapes, graph input/output shapes and model metadata.
"""

import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from _common import make_all, save

OPSET = 13
# tf2onnx 1.17 stamps IR version 7 on its opset-13 models (every k3_* exporter sample
# has ir_version 7); onnxruntime 1.31 and onnx.checker accept it.
IR_VERSION = 7
# tf2onnx writes "<version> <git hash>"; a pip-installed 1.17.0 has no hash (as in the samples).
PRODUCER_VERSION = "1.17.0 None"
SAMPLES_DIR = os.environ.get("CONVREWRITE_EXPORTER_SAMPLES", "/work/shared/exporter-samples")
# built model -> real tf2onnx export of the same Keras layer (structure compared, weights not)
SAMPLES = {
    "k3_conv1d": "k3_conv1d_same.onnx",
    "k3_conv1d_causal_d2": "k3_conv1d_causal_d2.onnx",
    "k3_sepconv1d": "k3_sepconv1d.onnx",
    "k3_dwconv1d": "k3_dwconv1d.onnx",
    "k3_conv1dtr_s2": "k3_conv1dtr_s2.onnx",
    "k3_tcn": "k3_tcn.onnx",
    "k3_sepconv2d": "k3_sepconv2d.onnx",
}
I64 = np.int64


# --------------------------------------------------------------------------- graph builder


class TfGraph:
    """Collects nodes and initializers with tf2onnx's naming habits.

    Node outputs are "NODE_NAME:0" unless the node produces a graph output.
    Initializers with equal dtype, shape and bytes are shared, as tf2onnx's
    duplicate-merging optimizer does (e.g. one [2] tensor serves every Squeeze
    and the NCW Unsqueeze in k3_tcn); share=False for the optimizer-off forms.
    """

    def __init__(self, model_name, share=True):
        self.model_name = model_name  # the Keras model's name, e.g. "functional_1"
        self.share = share
        self.nodes, self.inits, self._shared = [], [], {}
        self._uid = 10

    def uid(self):
        self._uid += 1
        return self._uid

    def init(self, name, value, dtype=None):
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if self.share else name
        if key not in self._shared:
            self._shared[key] = name
            self.inits.append(numpy_helper.from_array(arr, name))
        return self._shared[key]

    def const(self, value, prefix="const_fold_opt"):
        """A small folded constant (int64 unless value is float32)."""
        arr = np.asarray(value)
        return self.init(f"{prefix}__{self.uid()}", arr, None if arr.dtype == np.float32 else I64)

    def node(self, op, inputs, name, output=None, **attrs):
        """Add a node; attributes are kept in the order given (tf2onnx's order)."""
        out = output or f"{name}:0"
        n = helper.make_node(op, inputs, [out], name=name)
        n.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items() if v is not None)
        self.nodes.append(n)
        return out

    def model(self, inputs, outputs):
        """inputs/outputs: lists of (name, shape); a str dim is symbolic."""
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


def tf_pads(size, k, stride=1, dilation=1, padding="valid"):
    """(begin, end) padding TF applies on one spatial axis."""
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return dilation * (k - 1), 0
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv_attrs(kernel_shape, strides, dilations, pads, group, depthwise=False, auto_pad=None):
    """Conv attributes in tf2onnx's order. pads None = no pads attribute. Depthwise
    convs get group before pads, the others after (as in the exporter samples)."""
    attrs = {"dilations": dilations, "strides": strides, "kernel_shape": kernel_shape}
    if depthwise:
        attrs.update(group=group, pads=pads)
    else:
        attrs.update(pads=pads, auto_pad=auto_pad, group=group)
    return attrs


def pads_1d(k, length, stride, dilation, padding):
    """tf2onnx's pads for a 1-D conv run as [1, k] 2-D: absent when all zero, except that
    the dilation rewriter always writes them ([0,0,0,0] for valid/causal)."""
    b, e = (0, 0) if padding == "causal" else tf_pads(length, k, stride, dilation, padding)
    pads = [0, b, 0, e]
    return pads if any(pads) or dilation > 1 else None


# --------------------------------------------------------------------------- Keras layers as tf2onnx writes them


def k_conv1d(g, x, layer, kernel, bias, length, *, strides=1, padding="same", dilation=1,
             in_layout="NWC", out_layout="NWC", output=None, flavor="k3", dynamic=False):
    """Keras Conv1D (k3 and tf_keras alike): [Pad] Unsqueeze Transpose Conv Squeeze Add Transpose.

    kernel [k, Ci, Co] (Keras layout). in_layout "NCW" is the form tf2onnx's transpose
    optimizer leaves when the previous conv's output Transpose was pushed through:
    the Pad works on axis 2, the Unsqueeze axis is [2] and the input Transpose is gone.
    out_layout "NCW" drops the final Transpose([0,2,1]) the same way.
    """
    k, _, co = kernel.shape
    scope = f"{g.model_name}/{layer}"
    conv = f"{scope}/convolution" if flavor == "k3" else f"{scope}/Conv1D"
    if padding == "causal":
        p = dilation * (k - 1)
        pads = [0, p, 0, 0, 0, 0] if in_layout == "NWC" else [0, 0, p, 0, 0, 0]
        x = g.node("Pad", [x, g.const(pads, "pad_const")], f"{scope}/Pad")
    if in_layout == "NWC":
        x = g.node("Unsqueeze", [x, g.const([-3])], f"{conv}/ExpandDims")
        x = g.node("Transpose", [x], f"{conv}__{g.uid()}", perm=[0, 3, 1, 2])
    else:
        x = g.node("Unsqueeze", [x, g.const([2])], f"{conv}/ExpandDims")
    w = g.init(f"{conv}/ExpandDims_1:0", kernel.transpose(2, 1, 0)[:, :, None, :])
    if dynamic and padding == "same":
        pads, auto_pad = None, "SAME_UPPER"  # dynamic-length 'same': tf2onnx keeps auto_pad
    else:
        pads, auto_pad = pads_1d(k, length, strides, dilation, padding), None
    x = g.node("Conv", [x, w], conv, **conv_attrs([1, k], [1, strides], [1, dilation], pads, 1,
                                                 auto_pad=auto_pad))
    x = g.node("Squeeze", [x, g.const([2], "axes_const")], f"{conv}/Squeeze")
    last = out_layout == "NCW"
    x = g.node("Add", [x, g.const(bias.reshape(1, co, 1))], f"{scope}/BiasAdd",
               output=output if last else None)
    if not last:
        x = g.node("Transpose", [x], f"Transpose__{g.uid()}", output=output, perm=[0, 2, 1])
    return x


def dw_weight(kernel):
    """Keras depthwise kernel [*k, C, m] -> ONNX [C*m, 1, *k] (output channel c*m + j)."""
    nd = kernel.ndim - 2
    flat = kernel.reshape(*kernel.shape[:nd], 1, -1)  # [*k, 1, C*m]
    return flat.transpose(nd + 1, nd, *range(nd))


def k_sepconv1d(g, x, layer, dw_kernel, pw_kernel, bias, length, *, padding="same", dilation=1,
                output=None, flavor="k3"):
    """Keras SeparableConv1D: [Pad] Unsqueeze([1]) Transpose Conv(group) Conv(1x1) Squeeze([2]) [Add] Transpose.
    k3: no bias on either Conv, bias as Add([1,Co,1]); tf_keras: bias is the pointwise Conv's 3rd input."""
    k, c, _ = dw_kernel.shape
    co = pw_kernel.shape[-1]
    scope = f"{g.model_name}/{layer}"
    if padding == "causal":
        x = g.node("Pad", [x, g.const([0, dilation * (k - 1), 0, 0, 0, 0], "pad_const")], f"{scope}/Pad")
    x = g.node("Unsqueeze", [x, g.const([1])], f"{scope}/ExpandDims")
    x = g.node("Transpose", [x], f"{scope}/separable_conv2d/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    dw = g.const(dw_weight(dw_kernel[None]).astype(np.float32))
    x = g.node("Conv", [x, dw], f"{scope}/separable_conv2d/depthwise",
               **conv_attrs([1, k], [1, 1], [1, dilation], pads_1d(k, length, 1, dilation, padding), c,
                            depthwise=True))
    pw = g.init(f"{scope}/ExpandDims_2:0", pw_kernel.T[:, :, None, None])
    if flavor == "k3":
        x = g.node("Conv", [x, pw], f"{scope}/separable_conv2d", **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
        x = g.node("Squeeze", [x, g.const([2], "axes_const")], f"{scope}/Squeeze")
        x = g.node("Add", [x, g.const(bias.reshape(1, co, 1))], f"{scope}/BiasAdd")
    else:
        b = g.init(f"{scope}/BiasAdd/ReadVariableOp:0", bias)
        x = g.node("Conv", [x, pw, b], f"{scope}/BiasAdd", **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
        x = g.node("Squeeze", [x, g.const([2], "axes_const")], f"{scope}/Squeeze")
    return g.node("Transpose", [x], f"Transpose__{g.uid()}", output=output, perm=[0, 2, 1])


def k_dwconv1d(g, x, layer, kernel, bias, length, *, padding="same", output=None, flavor="k3"):
    """Keras DepthwiseConv1D: Unsqueeze([1]) Transpose Conv(group=C) Squeeze([2]) [Add] Transpose.
    k3: bias as Add([1,C*m,1]); tf_keras: bias is the Conv's 3rd input."""
    k, c, m = kernel.shape
    scope = f"{g.model_name}/{layer}"
    x = g.node("Unsqueeze", [x, g.const([1])], f"{scope}/ExpandDims")
    x = g.node("Transpose", [x], f"{scope}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    w = g.const(dw_weight(kernel[None]).astype(np.float32))
    attrs = conv_attrs([1, k], [1, 1], [1, 1], pads_1d(k, length, 1, 1, padding), c, depthwise=True)
    if flavor == "k3":
        x = g.node("Conv", [x, w], f"{scope}/depthwise", **attrs)
        x = g.node("Squeeze", [x, g.const([2], "axes_const")], f"{scope}/Squeeze")
        x = g.node("Add", [x, g.const(bias.reshape(1, c * m, 1))], f"{scope}/BiasAdd")
    else:
        b = g.init(f"{scope}/BiasAdd/ReadVariableOp:0", bias)
        x = g.node("Conv", [x, w, b], f"{scope}/BiasAdd", **attrs)
        x = g.node("Squeeze", [x, g.const([2], "axes_const")], f"{scope}/Squeeze")
    return g.node("Transpose", [x], f"Transpose__{g.uid()}", output=output, perm=[0, 2, 1])


def k_conv2d(g, x, layer, kernel, bias, hw, *, strides=1, padding="same", depthwise=False, output=None,
             transpose_in=True):
    """Keras Conv2D / DepthwiseConv2D on NHWC: Transpose Conv(bias input) Transpose([0,2,3,1]).
    kernel [kh, kw, Ci, Co] (depthwise: [kh, kw, C, m])."""
    kh, kw, ci, _ = kernel.shape
    scope = f"{g.model_name}/{layer}"
    if transpose_in:
        x = g.node("Transpose", [x], f"{scope}/BiasAdd__{g.uid()}", perm=[0, 3, 1, 2])
    pads = [tf_pads(n, kk, strides, 1, padding) for n, kk in zip(hw, (kh, kw))]
    pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
    if depthwise:
        w, group = g.const(dw_weight(kernel).astype(np.float32)), ci
    else:
        w, group = g.init(f"{scope}/convolution/ReadVariableOp:0", kernel.transpose(3, 2, 0, 1)), 1
    b = g.init(f"{scope}/Squeeze:0", bias)
    x = g.node("Conv", [x, w, b], f"{scope}/BiasAdd",
               **conv_attrs([kh, kw], [strides] * 2, [1, 1], pads if any(pads) else None, group,
                            depthwise=depthwise))
    return g.node("Transpose", [x], f"{scope}/BiasAdd__{g.uid()}", output=output, perm=[0, 2, 3, 1])


# --------------------------------------------------------------------------- reference (Keras semantics in torch)


def _t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def ref_conv(x, kernel, bias=None, strides=1, padding="valid", dilation=1, depthwise=False):
    """Keras ConvND / DepthwiseConvND on a channels-last x. kernel in Keras layout:
    [*k, Ci, Co], or [*k, C, multiplier] when depthwise. Returns channels-last float64."""
    x = _t(x)
    nd = x.dim() - 2
    ks = kernel.shape[:nd]
    pads = [tf_pads(x.shape[1 + i], ks[i], strides, dilation, padding) for i in range(nd)]
    flat_pads = [p for b_e in reversed(pads) for p in b_e]  # F.pad: last axis first
    xc = F.pad(x.movedim(-1, 1), flat_pads)
    w, groups = _t(kernel), 1
    if depthwise:
        groups = kernel.shape[-2]
        w = w.reshape(*ks, 1, -1)
    w = w.permute(nd + 1, nd, *range(nd))  # [Co, Ci/groups, *k]
    conv = F.conv1d if nd == 1 else F.conv2d
    y = conv(xc, w, stride=strides, dilation=dilation, groups=groups).movedim(1, -1)
    return y if bias is None else y + _t(bias)


def ref_separable(x, dw_kernel, pw_kernel, bias, padding="same", dilation=1):
    h = ref_conv(x, dw_kernel, padding=padding, dilation=dilation, depthwise=True)
    pw = pw_kernel.reshape((1,) * (h.dim() - 2) + pw_kernel.shape)
    return ref_conv(h.numpy(), pw, bias)


def ref_conv1d_transpose(x, kernel, bias, strides):
    """Keras Conv1DTranspose(padding='same') on NWC x; kernel [k, Co, Ci]. Keeps
    length*strides outputs of the full transposed conv, cropping the surplus
    TF-style (begin = surplus // 2, so the odd one goes at the end)."""
    y = F.conv_transpose1d(_t(x).movedim(-1, 1), _t(kernel).permute(2, 1, 0), stride=strides)
    out = x.shape[1] * strides
    begin = (y.shape[-1] - out) // 2
    return y[..., begin:begin + out].movedim(1, -1) + _t(bias)


# --------------------------------------------------------------------------- helpers


def rand(rng, *shape, scale=0.5):
    return rng.uniform(-scale, scale, size=shape).astype(np.float32)


def finish(name, g, x, y_name, ref, in_shape=None, out_shape=None):
    """Save the model built in g: graph input "x" and one output y_name. The declared
    shapes are those of x and ref unless given (symbolic dims as str)."""
    ref = np.asarray(ref, dtype=np.float32)
    model = g.model([("x", in_shape or list(x.shape))], [(y_name, out_shape or list(ref.shape))])
    compare_with_sample(name, model)
    save(name, model, {"x": x}, {y_name: ref})


def compare_with_sample(name, model):
    """Assert that `model` has the structure of the real tf2onnx export SAMPLES[name]."""
    if name not in SAMPLES:
        return
    path = os.path.join(SAMPLES_DIR, SAMPLES[name])
    if not os.path.exists(path):
        print(f"  ({name}: exporter sample {path} not found, structure not compared)")
        return
    a, b = describe(model), describe(onnx.load(path))
    for key in a:
        if a[key] != b[key]:
            raise AssertionError(f"{name} differs from {SAMPLES[name]} in {key}:\n  built  {a[key]}\n  sample {b[key]}")
    print(f"  {name}: same structure as exporter sample {SAMPLES[name]}")


def describe(model):
    """Everything about a model except names and float weight values."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    graph_inputs = [i.name for i in g.input]
    producers = {o: (i, j) for i, n in enumerate(g.node) for j, o in enumerate(n.output)}

    def operand(name):
        if name == "":
            return ("empty",)
        if name in graph_inputs:
            return ("graph input", graph_inputs.index(name))
        if name in inits:
            v = inits[name]
            return ("init", v.dtype.str, v.shape) + ((v.tolist(),) if v.dtype != np.float32 else ())
        return ("node",) + producers[name]

    def dims(vi):
        return [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]

    return {
        "metadata": (model.ir_version, model.producer_name, model.producer_version, g.name,
                     sorted((o.domain, o.version) for o in model.opset_import)),
        "graph inputs": [dims(i) for i in g.input],
        "graph outputs": [dims(o) for o in g.output] + [operand(o.name) for o in g.output],
        "op types": [n.op_type for n in g.node],
        "attributes": [[(a.name, helper.get_attribute_value(a)) for a in n.attribute] for n in g.node],
        "operands": [[operand(i) for i in n.input] for n in g.node],
        "initializer count": len(g.initializer),
    }


# --------------------------------------------------------------------------- models (1-D, Keras 3 unless k2_)


def conv1d_model(seed, c=6, length=40, co=6, k=3, flavor="k3", **conv):
    """One Conv1D layer on [1, length, c]."""
    rng = np.random.default_rng(seed)
    kernel, bias, x = rand(rng, k, c, co), rand(rng, co), rng.standard_normal((1, length, c), np.float32)
    model_name, layer = ("functional_1", "conv1d_1") if flavor == "k3" else ("sequential", "conv1d")
    g = TfGraph(model_name)
    k_conv1d(g, "x", layer, kernel, bias, length, output="conv1d", flavor=flavor, **conv)
    ref = ref_conv(x, kernel, bias, conv.get("strides", 1), conv.get("padding", "same"), conv.get("dilation", 1))
    return g, x, ref


def k3_conv1d():
    """Keras 3 Conv1D(6, 3, padding='same')."""
    g, x, ref = conv1d_model(101)
    finish("k3_conv1d", g, x, "conv1d", ref)


def k2_conv1d():
    """tf_keras Conv1D(8, 3, padding='same'): the same graph as Keras 3 (bias as Add)."""
    g, x, ref = conv1d_model(102, c=8, co=8, flavor="k2")
    finish("k2_conv1d", g, x, "conv1d", ref)


def k3_conv1d_valid_s2():
    """Keras 3 Conv1D(6, 3, strides=2, padding='valid'): no pads attribute."""
    g, x, ref = conv1d_model(103, strides=2, padding="valid")
    finish("k3_conv1d_valid_s2", g, x, "conv1d", ref)


def k3_conv1d_causal():
    """Keras 3 Conv1D(6, 3, padding='causal'): NWC Pad [0,2,0,0,0,0], Conv without pads."""
    g, x, ref = conv1d_model(104, padding="causal")
    finish("k3_conv1d_causal", g, x, "conv1d", ref)


def k3_conv1d_causal_d2():
    """Keras 3 Conv1D(6, 3, padding='causal', dilation_rate=2): Conv pads [0,0,0,0]."""
    g, x, ref = conv1d_model(105, padding="causal", dilation=2)
    finish("k3_conv1d_causal_d2", g, x, "conv1d", ref)


def k3_conv1d_dyn():
    """Keras 3 Conv1D(6, 3, padding='same') with a dynamic length: Conv auto_pad=SAME_UPPER."""
    g, x, ref = conv1d_model(106, dynamic=True)
    finish("k3_conv1d_dyn", g, x, "conv1d", ref, in_shape=[1, "W", 6], out_shape=[1, "W", 6])


def sepconv1d_model(seed, c, co, k=3, flavor="k3", padding="same", dilation=1, length=40):
    rng = np.random.default_rng(seed)
    dw, pw, bias = rand(rng, k, c, 1), rand(rng, c, co), rand(rng, co)
    x = rng.standard_normal((1, length, c), np.float32)
    g = TfGraph("functional_1" if flavor == "k3" else "sequential")
    layer = "separable_conv1d_1" if flavor == "k3" else "separable_conv1d"
    k_sepconv1d(g, "x", layer, dw, pw, bias, length, padding=padding, dilation=dilation,
                output="separable_conv1d", flavor=flavor)
    return g, x, ref_separable(x, dw, pw, bias, padding, dilation)


def k3_sepconv1d():
    """Keras 3 SeparableConv1D(6, 3, padding='same')."""
    g, x, ref = sepconv1d_model(111, 6, 6)
    finish("k3_sepconv1d", g, x, "separable_conv1d", ref)


def k2_sepconv1d():
    """tf_keras SeparableConv1D(8, 3, padding='same'): bias is the pointwise Conv's 3rd input."""
    g, x, ref = sepconv1d_model(112, 8, 8, flavor="k2")
    finish("k2_sepconv1d", g, x, "separable_conv1d", ref)


def k2_sepconv1d_causal_d2():
    """tf_keras SeparableConv1D(8, 3, padding='causal', dilation_rate=2) (Keras 3 rejects causal here)."""
    g, x, ref = sepconv1d_model(113, 8, 8, flavor="k2", padding="causal", dilation=2)
    finish("k2_sepconv1d_causal_d2", g, x, "separable_conv1d", ref)


def dwconv1d_model(seed, c, flavor):
    rng = np.random.default_rng(seed)
    kernel, bias = rand(rng, 3, c, 1), rand(rng, c)
    x = rng.standard_normal((1, 40, c), np.float32)
    g = TfGraph("functional_1" if flavor == "k3" else "sequential")
    layer = "depthwise_conv1d_1" if flavor == "k3" else "depthwise_conv1d"
    k_dwconv1d(g, "x", layer, kernel, bias, 40, output="depthwise_conv1d", flavor=flavor)
    return g, x, ref_conv(x, kernel, bias, padding="same", depthwise=True)


def k3_dwconv1d():
    """Keras 3 DepthwiseConv1D(3, padding='same'): bias as Add."""
    g, x, ref = dwconv1d_model(121, 6, "k3")
    finish("k3_dwconv1d", g, x, "depthwise_conv1d", ref)


def k2_dwconv1d():
    """tf_keras DepthwiseConv1D(3, padding='same'): bias as the Conv's 3rd input."""
    g, x, ref = dwconv1d_model(122, 8, "k2")
    finish("k2_dwconv1d", g, x, "depthwise_conv1d", ref)


def k3_conv1dtr_s2():
    """Keras 3 Conv1DTranspose(6, 3, strides=2, padding='same'): ConvTranspose pads [0,0,0,1]."""
    rng = np.random.default_rng(131)
    kernel, bias = rand(rng, 3, 6, 6), rand(rng, 6)  # kernel [k, Co, Ci]
    x = rng.standard_normal((1, 40, 6), np.float32)
    g = TfGraph("functional_1")
    scope = "functional_1/conv1d_transpose_1/conv_transpose"
    h = g.node("Unsqueeze", ["x", g.const([1])], f"{scope}/ExpandDims")
    h = g.node("Transpose", [h], f"{scope}__{g.uid()}", perm=[0, 3, 1, 2])
    w = g.init(f"{scope}/ExpandDims_1:0", kernel.transpose(2, 1, 0)[:, :, None, :])  # [Ci, Co, 1, k]
    begin, end = tf_pads(80, 3, 2, 1, "same")  # the forward conv's pads: the crop
    h = g.node("ConvTranspose", [h, w], scope, dilations=[1, 1], strides=[1, 2], kernel_shape=[1, 3],
               pads=[0, begin, 0, end], auto_pad="NOTSET")
    h = g.node("Squeeze", [h, g.const([2], "axes_const")], f"{scope}/Squeeze")
    h = g.node("Add", [h, g.const(bias.reshape(1, 6, 1))], "functional_1/conv1d_transpose_1/BiasAdd")
    g.node("Transpose", [h], f"Transpose__{g.uid()}", output="conv1d_transpose", perm=[0, 2, 1])
    finish("k3_conv1dtr_s2", g, x, "conv1d_transpose", ref_conv1d_transpose(x, kernel, bias, 2))


def k3_tcn():
    """Keras 3 TCN as in the exporter sample: 2 residual blocks (d = 1, 2), each
    Conv1D(causal, relu) -> Conv1D(causal) -> Add(block input) -> ReLU. tf2onnx's
    transpose optimizer leaves the 2nd conv of each block in NCW layout."""
    rng = np.random.default_rng(141)
    x = rng.standard_normal((1, 40, 6), np.float32)
    g = TfGraph("functional_5_1")
    h, ref = "x", _t(x)
    for block, d in enumerate((1, 2)):
        ka, ba, kb, bb = rand(rng, 3, 6, 6), rand(rng, 6), rand(rng, 3, 6, 6), rand(rng, 6)
        a = k_conv1d(g, h, f"conv1d_{2 + 2 * block}_1", ka, ba, 40, padding="causal", dilation=d,
                     out_layout="NCW")
        a = g.node("Relu", [a], f"functional_5_1/conv1d_{2 + 2 * block}_1/Relu")
        b = k_conv1d(g, a, f"conv1d_{3 + 2 * block}_1", kb, bb, 40, padding="causal", dilation=d,
                     in_layout="NCW")
        suffix = "" if block == 0 else "_2"
        s = g.node("Add", [b, h], f"functional_5_1/add_1{suffix}/Add")
        h = g.node("Relu", [s], f"functional_5_1/activation_1{suffix}/Relu",
                   output="activation_1" if block == 1 else None)
        r = torch.relu(ref_conv(ref.numpy(), ka, ba, padding="causal", dilation=d))
        r = ref_conv(r.numpy(), kb, bb, padding="causal", dilation=d)
        ref = torch.relu(r + ref)
    finish("k3_tcn", g, x, "activation_1", ref)


# --------------------------------------------------------------------------- optimizer-off forms


def k3_conv1d_noopt():
    """Keras 3 Conv1D(6, 3, 'same') with tf2onnx optimizers={}: Unsqueeze axes computed by
    Cast -> Reshape, the Transposes stay, Squeeze(axes [-3]) in NHWC, Add(bias [Co]),
    then two Identity nodes."""
    rng = np.random.default_rng(151)
    kernel, bias = rand(rng, 3, 6, 6), rand(rng, 6)
    x = rng.standard_normal((1, 40, 6), np.float32)
    g = TfGraph("functional_1", share=False)
    scope = "functional_1/conv1d_1"
    conv = f"{scope}/convolution"
    axes = g.node("Cast", [g.init(f"{conv}/ExpandDims/dim:0", np.array(-3, np.int32))],
                  f"{conv}/ExpandDims__{g.uid()}", to=TensorProto.INT64)
    axes = g.node("Reshape", [axes, g.init(f"{conv}/ExpandDims__{g.uid()}__shape", [1], I64)],
                  f"{conv}/ExpandDims__{g.uid()}")
    h = g.node("Unsqueeze", ["x", axes], f"{conv}/ExpandDims")
    h = g.node("Transpose", [h], f"{conv}__{g.uid()}", perm=[0, 3, 1, 2])
    w = g.init(f"{conv}/ExpandDims_1:0", kernel.transpose(2, 1, 0)[:, :, None, :])
    h = g.node("Conv", [h, w], conv, **conv_attrs([1, 3], [1, 1], [1, 1], [0, 1, 0, 1], 1))
    h = g.node("Transpose", [h], f"{conv}__{g.uid()}", perm=[0, 2, 3, 1])
    h = g.node("Squeeze", [h, g.init(f"{conv}/Squeeze__{g.uid()}", [-3], I64)], f"{conv}/Squeeze")
    h = g.node("Add", [h, g.init(f"{scope}/Reshape:0", bias)], f"{scope}/BiasAdd")
    h = g.node("Identity", [h], "Identity")
    g.node("Identity", [h], f"Identity__{g.uid()}", output="conv1d")
    finish("k3_conv1d_noopt", g, x, "conv1d", ref_conv(x, kernel, bias, padding="same"))


def k3_sepconv1d_noopt():
    """Keras 3 SeparableConv1D(6, 3, 'same') with optimizers={}: Unsqueeze axes Cast(1) ->
    Reshape, depthwise weight Reshape(init [1,k,C,1] -> [1,k,1,C]) -> Transpose([3,2,0,1]),
    a Transpose pair between the two Convs, Squeeze(axes [1]), Add(bias [Co]), two Identity."""
    rng = np.random.default_rng(161)
    dw, pw, bias = rand(rng, 3, 6, 1), rand(rng, 6, 6), rand(rng, 6)
    x = rng.standard_normal((1, 40, 6), np.float32)
    g = TfGraph("functional_1", share=False)
    scope = "functional_1/separable_conv1d_1"
    sep = f"{scope}/separable_conv2d"
    axes = g.node("Cast", [g.init(f"{scope}/ExpandDims/dim:0", np.array(1, np.int32))],
                  f"{scope}/ExpandDims__{g.uid()}", to=TensorProto.INT64)
    axes = g.node("Reshape", [axes, g.init(f"{scope}/ExpandDims__{g.uid()}__shape", [1], I64)],
                  f"{scope}/ExpandDims__{g.uid()}")
    h = g.node("Unsqueeze", ["x", axes], f"{scope}/ExpandDims")
    h = g.node("Transpose", [h], f"{sep}/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    w = g.node("Reshape", [g.init(f"{scope}/ExpandDims_1:0", dw[None]),  # [1, k, C, 1]
                           g.init(f"{sep}/depthwise__{g.uid()}__shape", [1, 3, 1, 6], I64)],
               f"{sep}/depthwise__{g.uid()}")
    w = g.node("Transpose", [w], f"{sep}/depthwise__{g.uid()}", perm=[3, 2, 0, 1])
    h = g.node("Conv", [h, w], f"{sep}/depthwise",
               **conv_attrs([1, 3], [1, 1], [1, 1], [0, 1, 0, 1], 6, depthwise=True))
    h = g.node("Transpose", [h], f"{sep}/depthwise__{g.uid()}", perm=[0, 2, 3, 1])
    h = g.node("Transpose", [h], f"{sep}__{g.uid()}", perm=[0, 3, 1, 2])
    h = g.node("Conv", [h, g.init(f"{scope}/ExpandDims_2:0", pw.T[:, :, None, None])], sep,
               **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
    h = g.node("Transpose", [h], f"{sep}__{g.uid()}", perm=[0, 2, 3, 1])
    h = g.node("Squeeze", [h, g.init(f"{scope}/Squeeze__{g.uid()}", [1], I64)], f"{scope}/Squeeze")
    h = g.node("Add", [h, g.init(f"{scope}/Reshape:0", bias)], f"{scope}/BiasAdd")
    h = g.node("Identity", [h], "Identity")
    g.node("Identity", [h], f"Identity__{g.uid()}", output="separable_conv1d")
    finish("k3_sepconv1d_noopt", g, x, "separable_conv1d", ref_separable(x, dw, pw, bias))


# --------------------------------------------------------------------------- 2-D


def k3_conv2d_kinput():
    """Keras 3 Conv2D(16, (3, input_dim)) over the input reshaped to (steps, input_dim, 1),
    then Reshape((30, 16)): the C=1 NHWC->NCHW Transpose became a Reshape."""
    rng = np.random.default_rng(171)
    kernel, bias = rand(rng, 3, 8, 1, 16), rand(rng, 16)  # [kh, kw, Ci=1, Co]
    x = rng.standard_normal((1, 32, 8), np.float32)
    g = TfGraph("functional_1")
    h = g.node("Reshape", ["x", g.const([1, 1, 32, 8])], "functional_1/reshape_1/Reshape")
    h = k_conv2d(g, h, "conv2d_1", kernel, bias, (32, 8), padding="valid", transpose_in=False)
    g.node("Reshape", [h, g.const([1, 30, 16])], "functional_1/reshape_1_2/Reshape", output="reshape_1")
    ref = ref_conv(x.reshape(1, 32, 8, 1), kernel, bias, padding="valid").reshape(1, 30, 16)
    finish("k3_conv2d_kinput", g, x, "reshape_1", ref)


def k3_sepconv2d():
    """Keras 3 SeparableConv2D(6, 3, padding='same') on 12x12x6."""
    rng = np.random.default_rng(181)
    dw, pw, bias = rand(rng, 3, 3, 6, 1), rand(rng, 6, 6), rand(rng, 6)
    x = rng.standard_normal((1, 12, 12, 6), np.float32)
    g = TfGraph("functional_7_1")
    scope = "functional_7_1/separable_conv2d_1"
    h = g.node("Transpose", ["x"], f"{scope}/separable_conv2d/depthwise__{g.uid()}", perm=[0, 3, 1, 2])
    pw_w = g.init(f"{scope}/separable_conv2d/ReadVariableOp_1:0", pw.T[:, :, None, None])
    b = g.init(f"{scope}/Squeeze:0", bias)
    h = g.node("Conv", [h, g.const(dw_weight(dw).astype(np.float32))], f"{scope}/separable_conv2d/depthwise",
               **conv_attrs([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], 6, depthwise=True))
    h = g.node("Conv", [h, pw_w, b], f"{scope}/BiasAdd", **conv_attrs([1, 1], [1, 1], [1, 1], None, 1))
    g.node("Transpose", [h], f"{scope}/BiasAdd__{g.uid()}", output="separable_conv2d", perm=[0, 2, 3, 1])
    finish("k3_sepconv2d", g, x, "separable_conv2d", ref_separable(x, dw, pw, bias))


def k3_dwconv2d_m2_s2():
    """Keras 3 DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding='same') on 12x12x8:
    Conv(group=8, W[16,1,3,3], strides [2,2], pads [0,0,1,1])."""
    rng = np.random.default_rng(191)
    kernel, bias = rand(rng, 3, 3, 8, 2), rand(rng, 16)
    x = rng.standard_normal((1, 12, 12, 8), np.float32)
    g = TfGraph("functional_1")
    k_conv2d(g, "x", "depthwise_conv2d_1", kernel, bias, (12, 12), strides=2, depthwise=True,
             output="depthwise_conv2d")
    ref = ref_conv(x, kernel, bias, strides=2, padding="same", depthwise=True)
    finish("k3_dwconv2d_m2_s2", g, x, "depthwise_conv2d", ref)


def k3_conv2d_h1():
    """Keras 3 Conv2D(6, (1, 3), padding='same') on an H=1 NHWC input [1,1,40,6]."""
    rng = np.random.default_rng(201)
    kernel, bias = rand(rng, 1, 3, 6, 6), rand(rng, 6)
    x = rng.standard_normal((1, 1, 40, 6), np.float32)
    g = TfGraph("functional_1")
    k_conv2d(g, "x", "conv2d_1", kernel, bias, (1, 40), output="conv2d")
    finish("k3_conv2d_h1", g, x, "conv2d", ref_conv(x, kernel, bias, padding="same"))


MODELS = [
    k3_conv1d, k2_conv1d, k3_conv1d_valid_s2, k3_conv1d_causal, k3_conv1d_causal_d2,
    k3_sepconv1d, k2_sepconv1d, k2_sepconv1d_causal_d2, k3_dwconv1d, k2_dwconv1d,
    k3_conv1dtr_s2, k3_conv1d_noopt, k3_sepconv1d_noopt, k3_tcn, k3_conv2d_kinput,
    k3_sepconv2d, k3_dwconv2d_m2_s2, k3_conv2d_h1, k3_conv1d_dyn,
]


def main(filters):
    make_all(MODELS, filters)


if __name__ == "__main__":
    main(sys.argv[1:])
