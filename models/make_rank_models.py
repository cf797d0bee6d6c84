"""Build the models the rank passes (to-2d, to-1d, to-3d, 3d-to-2d) are tested on.

Run from anywhere:  python models/make_rank_models.py [NAME_SUBSTRING ...]

Two kinds, all named `rank_*`:

* hand-built with onnx.helper, for what exporters rarely write but the passes
  must get right: every region op (BatchNormalization, pools, residual Add,
  channel Concat/Split, LpNormalization, Softmax, constants of every
  broadcasting rank), QDQ / QLinearConv / ConvInteger 1D convs, If/Loop bodies
  and model-local functions, ConvTranspose with output_padding / output_shape
  / auto_pad, old opsets (7, 9, 11: axes as attributes), 2D chains for to-3d,
  and tf2onnx optimizer-off forms of DepthwiseConv1D and Conv1DTranspose. Their
  reference outputs come from an independent numpy/torch evaluation where
  that is cheap (`torch.nn.functional`, float64), else from onnxruntime (the
  README row says which).
* PyTorch exports (torch 2.13.0, TorchScript `_ts*` and dynamo `_dyn18`) of
  explicit 1D-as-2D user code (`x.unsqueeze(2)` / `x.unsqueeze(-1)` + Conv2d
  + squeeze) and a mixed 1D block whose BatchNorm is kept (training=PRESERVE).

Deterministic: two runs write byte-identical files. Uses `_common.save` (checker
full_check, onnxruntime CPU run against the reference, NAME.npz beside NAME.onnx).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, MAX_ORT_IR, TOL, op_sequence, run_ort  # noqa: E402

RESULTS = []  # (name, ops, input shapes, max diff)


def save(name, model_or_path, inputs, outputs):
    """Check, run and record one model; write models/NAME.npz (like _common.save, but IR 3
    models may list initializers as graph inputs)."""
    path = os.path.join(HERE, name + ".onnx")
    if isinstance(model_or_path, onnx.ModelProto):
        onnx.save(model_or_path, path)
    model = onnx.load(path)
    assert model.ir_version <= MAX_ORT_IR, (name, model.ir_version)
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name for t in model.graph.initializer}
    graph_in = [i.name for i in model.graph.input if i.name not in inits]
    graph_out = [o.name for o in model.graph.output]
    assert sorted(graph_in) == sorted(inputs), (name, graph_in, list(inputs))
    assert sorted(graph_out) == sorted(outputs), (name, graph_out, list(outputs))
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    np.savez(os.path.join(HERE, name + ".npz"), **inputs, **outputs)
    got = run_ort(path, inputs)
    diff = max(float(np.max(np.abs(got[k].astype(np.float64) - outputs[k]))) for k in graph_out)
    ops = op_sequence(model)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in inputs.items())
    RESULTS.append((name, ops, shapes, f"{diff:.1e}"))
    print(f"{name:28s} max abs diff {diff:.2e} | {ops}")
    assert diff < TOL, (name, diff)


def print_table():
    print("\n| file | op sequence (Constant nodes omitted) | inputs | max abs diff |")
    print("|---|---|---|---|")
    for name, ops, shapes, diff in RESULTS:
        print(f"| `{name}.onnx` | {ops} | {shapes} | {diff} |")

F32 = TensorProto.FLOAT


def init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def vi(name, shape, elem=F32):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=13, ir_version=8, functions=(), extra_opsets=()):
    if ir_version < 4:  # IR 3: every initializer is also a graph input (as old exporters wrote them)
        inputs = list(inputs) + [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "rank", inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=opsets, ir_version=ir_version, functions=list(functions),
                          producer_name="convrewrite make_rank_models.py")
    onnx.checker.check_model(m, full_check=True)
    return m


def ort_reference(m, inputs):
    """Outputs of onnxruntime for hand-built models without a cheap independent reference."""
    path = os.path.join(HERE, "_tmp_rank.onnx")
    onnx.save(m, path)
    try:
        return run_ort(path, inputs)
    finally:
        os.remove(path)


def rng_for(seed):
    return np.random.default_rng(seed)


def randn(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------- 1D blocks


def chain_1d(opset: int, name: str):
    """Conv/BN/Relu/residual Add/MaxPool/AveragePool/Concat/Split/LpNorm/GlobalAveragePool, one 1D region.

    Two outputs: the final GlobalAveragePool and a tensor in the middle of the region.
    """
    rng = rng_for(opset)
    C, L = 8, 32
    nodes, inits = [], []
    x = "x"

    def conv(i, inp, k=3, pads=(1, 1), out=None, **kw):
        inits.append(init(f"w{i}", randn(rng, C, C, k, scale=0.3)))
        inits.append(init(f"b{i}", randn(rng, C)))
        out = out or f"conv{i}"
        nodes.append(helper.make_node("Conv", [inp, f"w{i}", f"b{i}"], [out], name=f"Conv{i}", kernel_shape=[k], pads=list(pads), **kw))
        return out

    def bn(i, inp):
        inits.extend([init(f"bn{i}_s", rng.uniform(0.5, 1.5, C).astype(np.float32)),
                      init(f"bn{i}_b", randn(rng, C)),
                      init(f"bn{i}_m", randn(rng, C)),
                      init(f"bn{i}_v", rng.uniform(0.5, 1.5, C).astype(np.float32))])
        extra = {"spatial": 1} if opset < 9 else {}
        nodes.append(helper.make_node("BatchNormalization", [inp, f"bn{i}_s", f"bn{i}_b", f"bn{i}_m", f"bn{i}_v"], [f"bn{i}"], name=f"BN{i}", **extra))
        return f"bn{i}"

    for block in range(2):
        c1 = conv(2 * block, x)
        r = f"relu{block}"
        nodes.append(helper.make_node("Relu", [bn(block, c1)], [r], name=f"Relu{block}"))
        c2 = conv(2 * block + 1, r, dilations=[2], pads=(2, 2))
        a = f"res{block}"
        nodes.append(helper.make_node("Add", [c2, x], [a], name=f"Res{block}"))
        x = f"act{block}"
        nodes.append(helper.make_node("LeakyRelu", [a], [x], name=f"Act{block}", alpha=0.1))
    nodes.append(helper.make_node("MaxPool", [x], ["pool0"], name="MaxPool0", kernel_shape=[2], strides=[2]))
    nodes.append(helper.make_node("AveragePool", ["pool0"], ["pool1"], name="AvgPool1", kernel_shape=[3], pads=[1, 1], strides=[1]))
    # Channel split / concat around a conv, per-channel constants of every rank.
    if opset >= 13:
        inits.append(init("split_sizes", np.asarray([4, 4], np.int64)))
        nodes.append(helper.make_node("Split", ["pool1", "split_sizes"], ["s0", "s1"], name="Split", axis=1))
    else:
        nodes.append(helper.make_node("Split", ["pool1"], ["s0", "s1"], name="Split", axis=1, split=[4, 4]))
    nodes.append(helper.make_node("Sigmoid", ["s1"], ["s1g"], name="Sigmoid"))
    nodes.append(helper.make_node("Mul", ["s0", "s1g"], ["glu"], name="GLU"))
    nodes.append(helper.make_node("Concat", ["glu", "s1"], ["cat"], name="Concat", axis=1))
    inits.append(init("chan_scale", randn(rng, 1, C, 1) + 1))
    nodes.append(helper.make_node("Mul", ["cat", "chan_scale"], ["scaled"], name="ChanScale"))
    inits.append(init("pos_bias", randn(rng, L // 2)))
    nodes.append(helper.make_node("Add", ["scaled", "pos_bias"], ["posb"], name="PosBias"))
    nodes.append(helper.make_node("LpNormalization", ["posb"], ["mid"], name="LpNorm", axis=1, p=2))
    c = conv(9, "mid", k=1, pads=(0, 0))
    nodes.append(helper.make_node("Softmax", [c], ["soft"], name="Softmax", axis=1 if opset < 13 else -1))
    nodes.append(helper.make_node("GlobalAveragePool", ["soft"], ["y"], name="GAP"))
    m = model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, 1]), vi("mid", [1, C, L // 2])], inits, opset=opset,
              ir_version={7: 3, 9: 4, 11: 6}.get(opset, 8))
    inputs = {"x": randn(rng, 1, C, L, scale=1.0)}
    save(name, m, inputs, ort_reference(m, inputs))


def rank_chain_op13():
    chain_1d(13, "rank_chain_op13")


def rank_chain_op11():
    chain_1d(11, "rank_chain_op11")


def rank_chain_op9():
    chain_1d(9, "rank_chain_op9")


def rank_chain_op7():
    chain_1d(7, "rank_chain_op7")


def rank_broadcast_op13():
    """Constants of every broadcasting rank: [L], [C,1], scalar, [1,C,1], [1,1,L], PRelu slope [C,1];
    a lower-rank non-constant operand ([L] graph input) and a rank-3 operand that is not a region tensor."""
    rng = rng_for(21)
    C, L = 6, 20
    inits = [init("w0", randn(rng, C, C, 3)), init("w1", randn(rng, C, C, 3)),
             init("pos", randn(rng, L)), init("chan", randn(rng, C, 1)), init("half", np.float32(0.5)),
             init("b3", randn(rng, 1, C, 1)), init("t3", randn(rng, 1, 1, L) + 2), init("slope", randn(rng, C, 1))]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="Conv0", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Add", ["c0", "pos"], ["a"], name="AddPos"),
        helper.make_node("Mul", ["chan", "a"], ["b"], name="MulChan"),
        helper.make_node("Add", ["b", "half"], ["c"], name="AddScalar"),
        helper.make_node("Sub", ["c", "b3"], ["d"], name="SubBias"),
        helper.make_node("PRelu", ["d", "slope"], ["e"], name="PRelu"),
        helper.make_node("Div", ["e", "t3"], ["f"], name="DivTime"),
        helper.make_node("Mul", ["f", "g"], ["h"], name="MulInput"),  # g: [L] graph input
        helper.make_node("Add", ["h", "z"], ["i"], name="AddOther"),  # z: [1,C,L] graph input
        helper.make_node("Conv", ["i", "w1"], ["y"], name="Conv1", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Max", ["y", "z", "pos"], ["m"], name="Max3"),
    ]
    m = model(nodes, [vi("x", [1, C, L]), vi("g", [L]), vi("z", [1, C, L])], [vi("y", [1, C, L]), vi("m", [1, C, L])], inits)
    inputs = {"x": randn(rng, 1, C, L, scale=1), "g": randn(rng, L, scale=1), "z": randn(rng, 1, C, L, scale=1)}
    save("rank_broadcast_op13", m, inputs, ort_reference(m, inputs))


def rank_convtr_op13():
    """ConvTranspose1d with output_padding, group/dilation, auto_pad SAME_UPPER, output_shape; a weight used twice."""
    rng = rng_for(31)
    C, L = 4, 11
    inits = [init("wt0", randn(rng, C, 6, 3)), init("bt0", randn(rng, 6)),
             init("wt1", randn(rng, 6, 2, 4)),
             init("wt2", randn(rng, 6, C, 3)),
             init("wt3", randn(rng, C, C, 2)),
             init("wshared", randn(rng, C, C, 3))]
    nodes = [
        helper.make_node("ConvTranspose", ["x", "wt0", "bt0"], ["t0"], name="CT_op", kernel_shape=[3], strides=[2], pads=[1, 1], output_padding=[1]),
        helper.make_node("ConvTranspose", ["t0", "wt1"], ["t1"], name="CT_group", group=3, dilations=[2], strides=[1]),
        helper.make_node("ConvTranspose", ["t1", "wt2"], ["t2"], name="CT_same", auto_pad="SAME_UPPER", strides=[2]),
        helper.make_node("ConvTranspose", ["t2", "wt3"], ["t3"], name="CT_shape", strides=[2], output_shape=[111]),
        helper.make_node("Conv", ["t3", "wshared"], ["c0"], name="Conv_shared0", kernel_shape=[3], auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c0"], ["r0"], name="Relu"),
        helper.make_node("Conv", ["r0", "wshared"], ["y"], name="Conv_shared1", kernel_shape=[3], auto_pad="VALID"),
    ]
    m = model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, 109])], inits)
    inputs = {"x": randn(rng, 1, C, L, scale=1)}
    out = ort_reference(m, inputs)
    save("rank_convtr_op13", m, inputs, out)


def rank_qdq_op13():
    """QDQ 1D network: Q -> DQ -> Conv(weight DQ(int8, per-channel axis=0)) -> Relu -> Q -> DQ -> Conv -> output."""
    rng = rng_for(41)
    C, M, L = 4, 8, 16
    w0 = rng.integers(-60, 60, (M, C, 3)).astype(np.int8)
    w1 = rng.integers(-60, 60, (C, M, 1)).astype(np.int8)
    inits = [init("xs", np.float32(0.05)), init("xz", np.uint8(128)),
             init("w0q", w0), init("w0s", rng.uniform(0.002, 0.01, M).astype(np.float32)), init("w0z", np.zeros(M, np.int8)),
             init("b0", randn(rng, M)),
             init("w1q", w1), init("w1s", rng.uniform(0.002, 0.01, C).astype(np.float32)), init("w1z", np.zeros(C, np.int8)),
             init("hs", np.float32(0.02)), init("hz", np.uint8(0))]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="Qx"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="DQx"),
        helper.make_node("DequantizeLinear", ["w0q", "w0s", "w0z"], ["w0d"], name="DQw0", axis=0),
        helper.make_node("Conv", ["xd", "w0d", "b0"], ["c0"], name="Conv0", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="Relu0"),
        helper.make_node("QuantizeLinear", ["r0", "hs", "hz"], ["hq"], name="Qh"),
        helper.make_node("DequantizeLinear", ["hq", "hs", "hz"], ["hd"], name="DQh"),
        helper.make_node("DequantizeLinear", ["w1q", "w1s", "w1z"], ["w1d"], name="DQw1", axis=-3),
        helper.make_node("Conv", ["hd", "w1d"], ["y"], name="Conv1", kernel_shape=[1]),
    ]
    m = model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, L])], inits)
    inputs = {"x": randn(rng, 1, C, L, scale=1)}
    save("rank_qdq_op13", m, inputs, ort_reference(m, inputs))


def rank_qlinear_op13():
    """QLinearConv 1D (per-channel weight scales) and ConvInteger 1D, between Quantize/DequantizeLinear."""
    rng = rng_for(51)
    C, M, L = 4, 6, 16
    inits = [init("xs", np.float32(0.05)), init("xz", np.uint8(128)),
             init("wq", rng.integers(-50, 50, (M, C, 3)).astype(np.int8)),
             init("ws", rng.uniform(0.002, 0.01, M).astype(np.float32)), init("wz", np.zeros(M, np.int8)),
             init("ys", np.float32(0.03)), init("yz", np.uint8(100)),
             init("bq", rng.integers(-100, 100, M).astype(np.int32)),
             init("wi", rng.integers(0, 20, (M, C, 2)).astype(np.uint8)), init("wiz", np.uint8(3))]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="Qx"),
        helper.make_node("QLinearConv", ["xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "bq"], ["yq"], name="QConv", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"], name="DQy"),
        helper.make_node("ConvInteger", ["xq", "wi", "xz", "wiz"], ["yi"], name="ConvInt", kernel_shape=[2], strides=[2]),
        helper.make_node("Cast", ["yi"], ["z"], name="CastZ", to=F32),
    ]
    m = model(nodes, [vi("x", [1, C, L])], [vi("y", [1, M, L]), vi("z", [1, M, L // 2])], inits)
    inputs = {"x": randn(rng, 1, C, L, scale=1)}
    save("rank_qlinear_op13", m, inputs, ort_reference(m, inputs))


def rank_subgraph_op13():
    """1D convs inside If branches (reading outer-scope x and weights) and a Loop body; a region tensor read by a subgraph."""
    rng = rng_for(61)
    C, L = 4, 12
    inits = [init("w_then", randn(rng, C, C, 3)), init("w_else", randn(rng, C, C, 1)), init("w_loop", randn(rng, C, C, 3)),
             init("w_main", randn(rng, C, C, 3)), init("trip", np.int64(2)), init("cond_true", np.bool_(True))]
    then_g = helper.make_graph(
        [helper.make_node("Conv", ["h", "w_then"], ["t0"], name="ThenConv", kernel_shape=[3], pads=[1, 1]),
         helper.make_node("Relu", ["t0"], ["then_out"], name="ThenRelu")],
        "then", [], [vi("then_out", [1, C, L])])
    else_g = helper.make_graph(
        [helper.make_node("Conv", ["h", "w_else"], ["else_out"], name="ElseConv", kernel_shape=[1])],
        "else", [], [vi("else_out", [1, C, L])])
    body = helper.make_graph(
        [helper.make_node("Conv", ["v_in", "w_loop"], ["b0"], name="LoopConv", kernel_shape=[3], pads=[1, 1]),
         helper.make_node("Tanh", ["b0"], ["v_out"], name="LoopTanh"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="LoopCond")],
        "body", [vi("iter", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL), vi("v_in", [1, C, L])],
        [vi("cond_out", [], TensorProto.BOOL), vi("v_out", [1, C, L])])
    nodes = [
        helper.make_node("Conv", ["x", "w_main"], ["h"], name="MainConv", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("If", ["flag"], ["branch"], name="If", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trip", "cond_true", "branch"], ["y"], name="Loop", body=body),
    ]
    m = model(nodes, [vi("x", [1, C, L]), vi("flag", [], TensorProto.BOOL)], [vi("y", [1, C, L])], inits)
    inputs = {"x": randn(rng, 1, C, L, scale=1), "flag": np.array(True)}
    save("rank_subgraph_op13", m, inputs, ort_reference(m, inputs))


def rank_function_op13():
    """Model-local functions: ConvRelu(x, w) with the weight a function input, and ConvConst(x) with a Constant weight."""
    rng = rng_for(71)
    C, L = 4, 10
    fn1 = helper.make_function(
        "rank.local", "ConvRelu", ["fx", "fw"], ["fy"],
        [helper.make_node("Conv", ["fx", "fw"], ["fc"], name="FConv", kernel_shape=[3], pads=[1, 1]),
         helper.make_node("Relu", ["fc"], ["fy"], name="FRelu")],
        [helper.make_opsetid("", 13)])
    wconst = numpy_helper.from_array(randn(rng, C, C, 3), "cw")
    fn2 = helper.make_function(
        "rank.local", "ConvConst", ["gx"], ["gy"],
        [helper.make_node("Constant", [], ["gw"], name="GW", value=wconst),
         helper.make_node("Conv", ["gx", "gw"], ["gc"], name="GConv", kernel_shape=[3], pads=[1, 1]),
         helper.make_node("Sigmoid", ["gc"], ["gy"], name="GSig")],
        [helper.make_opsetid("", 13)])
    inits = [init("w", randn(rng, C, C, 3))]
    nodes = [helper.make_node("ConvRelu", ["x", "w"], ["a"], name="Call1", domain="rank.local"),
             helper.make_node("ConvConst", ["a"], ["y"], name="Call2", domain="rank.local")]
    m = model(nodes, [vi("x", [1, C, L])], [vi("y", [1, C, L])], inits, functions=[fn1, fn2], extra_opsets=[("rank.local", 1)])
    inputs = {"x": randn(rng, 1, C, L, scale=1)}
    save("rank_function_op13", m, inputs, ort_reference(m, inputs))


def rank_dynamic_op13():
    """Dynamic batch and length: Conv -> InstanceNormalization -> Relu -> Conv(stride 2) -> MaxPool(SAME_UPPER), weight a graph input."""
    rng = rng_for(81)
    C = 4
    inits = [init("w0", randn(rng, C, C, 5)), init("in_s", rng.uniform(0.5, 1.5, C).astype(np.float32)), init("in_b", randn(rng, C))]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="Conv0", kernel_shape=[5], pads=[2, 2]),
        helper.make_node("InstanceNormalization", ["c0", "in_s", "in_b"], ["n0"], name="IN"),
        helper.make_node("Relu", ["n0"], ["r0"], name="Relu"),
        helper.make_node("Conv", ["r0", "wdyn"], ["c1"], name="Conv1", kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER"),
        helper.make_node("MaxPool", ["c1"], ["y"], name="Pool", kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER"),
    ]
    m = model(nodes, [vi("x", ["batch", C, "length"]), vi("wdyn", [C, C, 3])], [vi("y", ["batch", C, None])], inits)
    inputs = {"x": randn(rng, 2, C, 37, scale=1), "wdyn": randn(rng, C, C, 3)}
    save("rank_dynamic_op13", m, inputs, ort_reference(m, inputs))


def rank_conv2d_chain_op13():
    """A 2D region for to-3d / 3d-to-2d: Conv -> BN -> Relu -> depthwise Conv -> Add -> MaxPool -> Conv."""
    rng = rng_for(91)
    C, H, W = 4, 6, 8
    inits = [init("w0", randn(rng, C, C, 3, 3)), init("b0", randn(rng, C)),
             init("s", rng.uniform(0.5, 1.5, C).astype(np.float32)), init("bb", randn(rng, C)), init("m", randn(rng, C)),
             init("v", rng.uniform(0.5, 1.5, C).astype(np.float32)),
             init("wd", randn(rng, C, 1, 3, 3)), init("w2", randn(rng, 2 * C, C, 1, 1))]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="Conv0", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c0", "s", "bb", "m", "v"], ["n0"], name="BN"),
        helper.make_node("Relu", ["n0"], ["r0"], name="Relu"),
        helper.make_node("Conv", ["r0", "wd"], ["d0"], name="DW", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=C),
        helper.make_node("Add", ["d0", "x"], ["a0"], name="Res"),
        helper.make_node("MaxPool", ["a0"], ["p0"], name="Pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p0", "w2"], ["y"], name="PW", kernel_shape=[1, 1]),
    ]
    m = model(nodes, [vi("x", [1, C, H, W])], [vi("y", [1, 2 * C, H // 2, W // 2])], inits)
    inputs = {"x": randn(rng, 1, C, H, W, scale=1)}
    save("rank_conv2d_chain_op13", m, inputs, ort_reference(m, inputs))


def rank_conv3d_unit_op13():
    """3D convs over [N, C, 1, H, W] (a unit depth axis), for 3d-to-2d."""
    rng = rng_for(101)
    C, H, W = 3, 5, 6
    inits = [init("w0", randn(rng, C, C, 1, 3, 3)), init("w1", randn(rng, C, C, 1, 1, 3)), init("w2", randn(rng, C, C, 3, 1, 1))]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="Conv3d0", kernel_shape=[1, 3, 3], pads=[0, 1, 1, 0, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="Relu"),
        helper.make_node("Conv", ["r0", "w1"], ["y"], name="Conv3d1", kernel_shape=[1, 1, 3], pads=[0, 0, 1, 0, 0, 1]),
        helper.make_node("Conv", ["x", "w2"], ["z"], name="Conv3d_deep", kernel_shape=[3, 1, 1], pads=[1, 0, 0, 1, 0, 0]),
    ]
    m = model(nodes, [vi("x", [1, C, 1, H, W])], [vi("y", [1, C, 1, H, W]), vi("z", [1, C, 1, H, W])], inits)
    inputs = {"x": randn(rng, 1, C, 1, H, W, scale=1)}
    save("rank_conv3d_unit_op13", m, inputs, ort_reference(m, inputs))


# ------------------------------------------------- tf2onnx optimizer-off forms


def _nwc_reference(x, kernel, bias, stride=1, transpose=False, groups=1, pad=(1, 1)):
    """Keras semantics in float64 with torch.nn.functional (NWC in, NWC out)."""
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(x.astype(np.float64)).permute(0, 2, 1)
    w = torch.from_numpy(kernel.astype(np.float64))
    if transpose:
        y = F.conv_transpose1d(xt, w, stride=stride, groups=groups)
        y = y[:, :, : x.shape[1] * stride]  # Keras 'same': crop the surplus at the end
    else:
        y = F.conv1d(F.pad(xt, pad), w, stride=stride, groups=groups)
    y = y + torch.from_numpy(bias.astype(np.float64))[None, :, None]
    return y.permute(0, 2, 1).numpy().astype(np.float32)


def _noopt_axes(nodes, inits, prefix, value):
    """Optimizer-off Unsqueeze axes: Cast(init scalar) -> Reshape([1])."""
    inits.append(init(prefix + "_scalar", np.int32(value)))
    inits.append(init(prefix + "_shape", np.asarray([1], np.int64)))
    nodes.append(helper.make_node("Cast", [prefix + "_scalar"], [prefix + "_cast"], name=prefix + "/Cast", to=TensorProto.INT64))
    nodes.append(helper.make_node("Reshape", [prefix + "_cast", prefix + "_shape"], [prefix + "_axes"], name=prefix + "/Reshape"))
    return prefix + "_axes"


def rank_k3_dwconv1d_noopt():
    """tf2onnx DepthwiseConv1D with the optimizer off: computed axes, computed depthwise weight, Transposes kept, Identities."""
    rng = rng_for(111)
    C, L = 6, 20
    nodes, inits = [], []
    axes = _noopt_axes(nodes, inits, "dw/ExpandDims", 1)
    kernel = randn(rng, 3, C, 1)  # Keras [k, C, multiplier]
    bias = randn(rng, C)
    inits.append(init("dw/kernel", kernel.reshape(1, 3, C, 1)))
    inits.append(init("dw/kshape", np.asarray([1, 3, 1, C], np.int64)))
    inits.append(init("sq_axes", np.asarray([-3], np.int64)))
    inits.append(init("dw/bias", bias))
    nodes += [
        helper.make_node("Unsqueeze", ["x", axes], ["u"], name="dw/ExpandDims"),
        helper.make_node("Transpose", ["u"], ["ut"], name="dw/Transpose_in", perm=[0, 3, 1, 2]),
        helper.make_node("Reshape", ["dw/kernel", "dw/kshape"], ["kr"], name="dw/kernel_reshape"),
        helper.make_node("Transpose", ["kr"], ["kw"], name="dw/kernel_transpose", perm=[3, 2, 0, 1]),
        helper.make_node("Conv", ["ut", "kw"], ["c"], name="dw/depthwise", kernel_shape=[1, 3], group=C, pads=[0, 1, 0, 1],
                         strides=[1, 1], dilations=[1, 1]),
        helper.make_node("Transpose", ["c"], ["ct"], name="dw/Transpose_out", perm=[0, 2, 3, 1]),
        helper.make_node("Squeeze", ["ct", "sq_axes"], ["s"], name="dw/Squeeze"),
        helper.make_node("Add", ["s", "dw/bias"], ["b"], name="dw/BiasAdd"),
        helper.make_node("Identity", ["b"], ["i0"], name="Identity0"),
        helper.make_node("Identity", ["i0"], ["depthwise_conv1d"], name="Identity1"),
    ]
    m = model(nodes, [vi("x", [1, L, C])], [vi("depthwise_conv1d", [1, L, C])], inits, ir_version=7, extra_opsets=[("ai.onnx.ml", 2)])
    x = randn(rng, 1, L, C, scale=1)
    w = kernel.transpose(1, 2, 0)  # [C, 1, k]
    save("rank_k3_dwconv1d_noopt", m, {"x": x}, {"depthwise_conv1d": _nwc_reference(x, w, bias, groups=C)})


def rank_k3_conv1dtr_noopt():
    """tf2onnx Conv1DTranspose (stride 2, 'same') with the optimizer off."""
    rng = rng_for(121)
    C, Co, L = 4, 6, 10
    nodes, inits = [], []
    axes = _noopt_axes(nodes, inits, "ct/ExpandDims", 1)
    kernel = randn(rng, 3, Co, C)  # Keras [k, out, in]
    bias = randn(rng, Co)
    w = kernel.transpose(2, 1, 0)[:, :, None, :]  # ONNX ConvTranspose [C, Co, 1, k]
    inits += [init("ct/kernel", np.ascontiguousarray(w)), init("sq_axes", np.asarray([1], np.int64)), init("ct/bias", bias)]
    nodes += [
        helper.make_node("Unsqueeze", ["x", axes], ["u"], name="ct/ExpandDims"),
        helper.make_node("Transpose", ["u"], ["ut"], name="ct/Transpose_in", perm=[0, 3, 1, 2]),
        helper.make_node("ConvTranspose", ["ut", "ct/kernel"], ["c"], name="ct/conv_transpose", auto_pad="NOTSET",
                         dilations=[1, 1], kernel_shape=[1, 3], pads=[0, 0, 0, 1], strides=[1, 2]),
        helper.make_node("Transpose", ["c"], ["ct"], name="ct/Transpose_out", perm=[0, 2, 3, 1]),
        helper.make_node("Squeeze", ["ct", "sq_axes"], ["s"], name="ct/Squeeze"),
        helper.make_node("Add", ["s", "ct/bias"], ["b"], name="ct/BiasAdd"),
        helper.make_node("Identity", ["b"], ["i0"], name="Identity0"),
        helper.make_node("Identity", ["i0"], ["conv1d_transpose"], name="Identity1"),
    ]
    m = model(nodes, [vi("x", [1, L, C])], [vi("conv1d_transpose", [1, 2 * L, Co])], inits, ir_version=7, extra_opsets=[("ai.onnx.ml", 2)])
    x = randn(rng, 1, L, C, scale=1)
    ref = _nwc_reference(x, kernel.transpose(2, 1, 0), bias, stride=2, transpose=True)
    save("rank_k3_conv1dtr_noopt", m, {"x": x}, {"conv1d_transpose": ref})


# ------------------------------------------------------------- PyTorch exports


def _torch_export(module, x, name, opset, dynamo=False, dynamic=None, **kw):
    import torch

    path = os.path.join(HERE, name + ".onnx")
    if dynamo:
        prog = torch.onnx.export(module, (x,), dynamo=True, opset_version=opset, input_names=["x"], output_names=["y"],
                                 dynamic_shapes=dynamic, **kw)
        prog.save(path)
    else:
        torch.onnx.export(module, (x,), path, dynamo=False, opset_version=opset, input_names=["x"], output_names=["y"],
                          dynamic_axes=dynamic, **kw)
    with torch.no_grad():
        y = module(x).numpy()
    save(name, path, {"x": x.numpy()}, {"y": y})


def _unsq_module(axis):
    import torch
    import torch.nn as nn

    class Unsq(nn.Module):
        """User code that runs a Conv1d as a Conv2d: x.unsqueeze(axis) -> Conv2d -> ReLU -> Conv2d -> squeeze(axis)."""

        def __init__(self):
            super().__init__()
            k1, k2 = ((1, 3), (1, 5)) if axis == 2 else ((3, 1), (5, 1))
            p1, p2 = ((0, 1), (0, 2)) if axis == 2 else ((1, 0), (2, 0))
            self.c1 = nn.Conv2d(8, 8, k1, padding=p1)
            self.c2 = nn.Conv2d(8, 8, k2, padding=p2, groups=8)

        def forward(self, x):
            h = x.unsqueeze(axis)
            return self.c2(torch.relu(self.c1(h))).squeeze(axis)

    return Unsq()


def rank_unsq2_conv2d_ts13():
    import torch

    torch.manual_seed(131)
    _torch_export(_unsq_module(2).eval(), torch.randn(1, 8, 32), "rank_unsq2_conv2d_ts13", 13)


def rank_unsq2_conv2d_ts9():
    import torch

    torch.manual_seed(132)
    _torch_export(_unsq_module(2).eval(), torch.randn(1, 8, 32), "rank_unsq2_conv2d_ts9", 9)


def rank_unsqm1_conv2d_dyn18():
    import torch

    torch.manual_seed(133)
    _torch_export(_unsq_module(-1).eval(), torch.randn(1, 8, 32), "rank_unsqm1_conv2d_dyn18", 18, dynamo=True)


def rank_unsqm1_conv2d_ts13():
    import torch

    torch.manual_seed(134)
    _torch_export(_unsq_module(-1).eval(), torch.randn(1, 8, 32), "rank_unsqm1_conv2d_ts13", 13)


def rank_bn_block_ts13():
    """Conv1d -> BatchNorm1d (kept: training=PRESERVE) -> PReLU -> MaxPool1d -> ConvTranspose1d(output_padding=1)
    -> AvgPool1d -> residual; dynamic batch and length."""
    import torch
    import torch.nn as nn

    torch.manual_seed(135)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(6, 6, 3, padding=1)
            self.bn = nn.BatchNorm1d(6)
            self.act = nn.PReLU(6)
            self.pool = nn.MaxPool1d(2)
            self.up = nn.ConvTranspose1d(6, 6, 3, stride=2, padding=1, output_padding=1)
            self.avg = nn.AvgPool1d(3, stride=1, padding=1)

        def forward(self, x):
            h = self.pool(self.act(self.bn(self.conv(x))))
            return self.avg(self.up(h)) + x

    block = Block()
    with torch.no_grad():
        block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.uniform_(-0.5, 0.5)
        block.bn.running_mean.uniform_(-0.5, 0.5)
        block.bn.running_var.uniform_(0.5, 1.5)
        block.act.weight.uniform_(0.0, 0.5)
    block.eval()
    _torch_export(block, torch.randn(2, 6, 24), "rank_bn_block_ts13", 13, dynamic={"x": {0: "batch", 2: "length"}, "y": {0: "batch", 2: "length"}},
                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)


BUILDERS = [
    rank_chain_op13, rank_chain_op11, rank_chain_op9, rank_chain_op7, rank_broadcast_op13, rank_convtr_op13,
    rank_qdq_op13, rank_qlinear_op13, rank_subgraph_op13, rank_function_op13, rank_dynamic_op13,
    rank_conv2d_chain_op13, rank_conv3d_unit_op13, rank_k3_dwconv1d_noopt, rank_k3_conv1dtr_noopt,
    rank_unsq2_conv2d_ts13, rank_unsq2_conv2d_ts9, rank_unsqm1_conv2d_dyn18, rank_unsqm1_conv2d_ts13, rank_bn_block_ts13,
]


def main(filters):
    for build in BUILDERS:
        if filters and not any(f in build.__name__ for f in filters):
            continue
        build()
    print_table()


if __name__ == "__main__":
    main(sys.argv[1:])
