"""Model builders shared by tests and benchmarks: the nested-bodies model and the wide residual DAG.

Kept out of the test modules so tests in other folders (tests/inspection) and
benchmarks (bench_wide_dag, bench_engine) import them without importing a test module.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from util import init, vi


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)

PASS_SETS = {
    "to-2d": ["to-2d"],
    "causal": ["causal"],
    "dilated": ["dilated"],
    "separable": ["separable"],
    "fold-all": ["causal", "dilated", "separable"],
    "fold-all+to-2d": ["causal", "dilated", "separable", "to-2d"],
}


C, L = 8, 24


def _w(g, *shape, zero_inserted: bool = False):
    fan_in = shape[1] * shape[-1] if len(shape) >= 3 else 1
    w = (g.standard_normal(shape) / fan_in).astype(np.float32)
    if zero_inserted:
        w[..., 1::2] = 0.0
    return w


def _every_fold(prefix: str, x: str, out: str, g, consts: bool = False):
    """Pad -> causal Conv, zero-inserted Conv, depthwise (bias) -> pointwise, Conv -> chomp Slice: nodes, tensors.

    `consts`: weights as Constant nodes (a function has no initializers).
    """
    p = prefix
    tensors = {
        f"{p}pads": np.array([0, 0, 2, 0, 0, 0], np.int64),
        f"{p}w0": _w(g, C, C, 3),
        f"{p}w1": _w(g, C, C, 5, zero_inserted=True),
        f"{p}wd": _w(g, C, 1, 3),
        f"{p}bd": g.standard_normal(C).astype(np.float32),
        f"{p}wp": _w(g, C, C, 1),
        f"{p}w2": _w(g, C, C, 3),
        f"{p}starts": np.array([0], np.int64),
        f"{p}ends": np.array([-2], np.int64),
        f"{p}axes": np.array([2], np.int64),
    }
    nodes = [
        helper.make_node("Pad", [x, f"{p}pads"], [f"{p}padded"], name=f"{p}pad"),
        helper.make_node("Conv", [f"{p}padded", f"{p}w0"], [f"{p}a"], name=f"{p}causal", kernel_shape=[3]),
        helper.make_node("Conv", [f"{p}a", f"{p}w1"], [f"{p}b"], name=f"{p}zero_inserted", kernel_shape=[5], pads=[2, 2]),
        helper.make_node("Conv", [f"{p}b", f"{p}wd", f"{p}bd"], [f"{p}d"], name=f"{p}depthwise", kernel_shape=[3],
                         pads=[1, 1], group=C),
        helper.make_node("Conv", [f"{p}d", f"{p}wp"], [f"{p}e"], name=f"{p}pointwise", kernel_shape=[1]),
        helper.make_node("Conv", [f"{p}e", f"{p}w2"], [f"{p}f"], name=f"{p}chomped", kernel_shape=[3], pads=[2, 2]),
        helper.make_node("Slice", [f"{p}f", f"{p}starts", f"{p}ends", f"{p}axes"], [out], name=f"{p}chomp"),
    ]
    if consts:
        nodes = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(v, n)) for n, v in tensors.items()] + nodes
        return nodes, []
    return nodes, [numpy_helper.from_array(v, n) for n, v in tensors.items()]


def nested_model() -> onnx.ModelProto:
    """The same convolutions in the main graph, both If branches, a Loop body, a Scan body and a function."""
    g = rng(11)
    main_nodes, main_inits = _every_fold("m_", "x", "m_out", g)
    then_nodes, then_inits = _every_fold("t_", "m_out", "t_out", g)
    else_nodes, else_inits = _every_fold("e_", "m_out", "e_out", g)
    then_g = helper.make_graph(then_nodes, "then", [], [vi("t_out", [1, C, L])], then_inits)
    else_g = helper.make_graph(else_nodes, "else", [], [vi("e_out", [1, C, L])], else_inits)
    loop_nodes, loop_inits = _every_fold("l_", "l_in", "l_out", g)
    loop_nodes.append(helper.make_node("Identity", ["l_cond_in"], ["l_cond_out"], name="l_cond"))
    loop_g = helper.make_graph(
        loop_nodes, "loop_body",
        [helper.make_tensor_value_info("l_iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("l_cond_in", TensorProto.BOOL, []), vi("l_in", [1, C, L])],
        [helper.make_tensor_value_info("l_cond_out", TensorProto.BOOL, []), vi("l_out", [1, C, L])], loop_inits)
    scan_nodes, scan_inits = _every_fold("s_", "s_x", "s_y", g)
    scan_nodes.append(helper.make_node("Identity", ["s_state_in"], ["s_state_out"], name="s_state"))
    scan_g = helper.make_graph(scan_nodes, "scan_body", [vi("s_state_in", [1]), vi("s_x", [1, C, L])],
                               [vi("s_state_out", [1]), vi("s_y", [1, C, L])], scan_inits)
    func_nodes, _ = _every_fold("f_", "fx", "fy", g, consts=True)
    func = helper.make_function("local", "EveryFold", ["fx"], ["fy"], func_nodes, [helper.make_opsetid("", 13)])
    nodes = main_nodes + [
        helper.make_node("If", ["cond"], ["if_out"], name="If_0", then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["trips", "", "if_out"], ["loop_out"], name="Loop_0", body=loop_g),
        helper.make_node("Unsqueeze", ["loop_out", "zero"], ["seq"], name="to_seq"),
        helper.make_node("Concat", ["seq", "seq"], ["seq2"], name="two_steps", axis=0),
        helper.make_node("Scan", ["state0", "seq2"], ["state", "scan_out"], name="Scan_0", body=scan_g,
                         num_scan_inputs=1),
        helper.make_node("ReduceSum", ["scan_out", "zero"], ["summed"], name="sum_steps", keepdims=0),
        helper.make_node("EveryFold", ["summed"], ["y"], name="func_call", domain="local"),
    ]
    inits = main_inits + [
        init("trips", np.array(2, np.int64)),
        init("zero", np.array([0], np.int64)),
        init("state0", np.zeros(1, np.float32)),
    ]
    graph = helper.make_graph(nodes, "nested", [vi("x", [1, C, L]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [vi("y", [1, C, L])], inits)
    model = helper.make_model(graph, functions=[func], ir_version=8,
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    onnx.checker.check_model(model, full_check=True)
    return model


BODIES = {"main": "m_", "main/If_0/then_branch": "t_", "main/If_0/else_branch": "e_", "main/Loop_0/body": "l_",
          "main/Scan_0/body": "s_", "function:EveryFold": "f_"}


def wide_dag(nodes: int = 10_000, lanes: int = 25, channels: int = 4, length: int = 16) -> onnx.ModelProto:
    """`lanes` parallel paths, each step one of four convolution patterns then a Mean with the next lane.

    Not a chain: every step reads two lanes, so each value has two readers
    and the graph is a wide DAG. Exporter-like sharing: one pads constant for
    every Pad, one set of Slice operands for every chomp. About 4 nodes per
    lane and step; steps are added until `nodes` is reached.
    """
    g = rng(21)
    c = channels
    inits = [
        init("pads", np.array([0, 0, 2, 0, 0, 0], np.int64)),
        init("starts", np.array([0], np.int64)),
        init("ends", np.array([-2], np.int64)),
        init("axes", np.array([2], np.int64)),
    ]
    out_nodes: list[onnx.NodeProto] = []
    lane = ["x"] * lanes
    counter = [0]

    def w(*shape, zero_inserted=False):
        counter[0] += 1
        name = f"w{counter[0]}"
        inits.append(init(name, _w(g, *shape, zero_inserted=zero_inserted)))
        return name

    def add(op, inputs, **kw):
        counter[0] += 1
        out = f"t{counter[0]}"
        out_nodes.append(helper.make_node(op, inputs, [out], name=f"n{counter[0]}", **kw))
        return out

    step = 0
    while len(out_nodes) + lanes + 1 <= nodes:
        new = []
        for i in range(lanes):
            if len(out_nodes) + 5 > nodes - 1:
                new.append(lane[i])
                continue
            h, kind = lane[i], (step + i) % 4
            if kind == 0:  # causal: Pad -> Conv
                h = add("Conv", [add("Pad", [h, "pads"]), w(c, c, 3)], kernel_shape=[3])
            elif kind == 1:  # causal: Conv -> chomp Slice
                h = add("Slice", [add("Conv", [h, w(c, c, 3)], kernel_shape=[3], pads=[2, 2]), "starts", "ends", "axes"])
            elif kind == 2:  # separable: depthwise (bias) -> pointwise
                bias = w(c)
                h = add("Conv", [add("Conv", [h, w(c, 1, 3), bias], kernel_shape=[3], pads=[1, 1], group=c),
                                 w(c, c, 1)], kernel_shape=[1])
            else:  # dilated: a zero-inserted kernel
                h = add("Tanh", [add("Conv", [h, w(c, c, 5, zero_inserted=True)], kernel_shape=[5], pads=[2, 2])])
            new.append(add("Mean", [add("Relu", [h]), lane[(i + 1) % lanes]]))
        lane = new
        step += 1
    last = add("Sum", lane)
    while len(out_nodes) < nodes:  # exactly `nodes`
        last = add("Relu", [last])
    graph = helper.make_graph(out_nodes, "wide", [vi("x", [1, c, length])], [vi(out_nodes[-1].output[0], [1, c, length])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
