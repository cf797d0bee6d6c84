"""Rank passes and convolution weights: reshaped in place (no data copied), quantization axes kept right.

A weight that is an initializer or a Constant is reshaped by editing its dims
only; a quantized weight behind DequantizeLinear (QDQ) is reshaped the same
way and its per-channel `axis` follows the channel axis, whatever sign it is
written with; a weight computed at run time reaches the conv through an
Unsqueeze (lift) that lowering cancels again. Every rewrite is checked on
onnxruntime against the original.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import convrewrite
from test_rank import assert_idempotent, count, ops, rewrite_checked
from util import init, make_model, vi


def _wide_chain():
    """Two convs sharing one 9 MB weight: big enough that a copy of it would show."""
    c = 512
    w = np.random.default_rng(0).standard_normal((c, c, 9)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c0", kernel_shape=[9], pads=[4, 4]),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w"], ["y"], name="c1", kernel_shape=[9], pads=[4, 4]),
    ]
    return make_model(nodes, [vi("x", [1, c, 16])], [vi("y", [1, c, 16])], [init("w", w)]), w


@pytest.mark.parametrize("passes, dims", [(["to-2d"], [512, 512, 1, 9]), (["to-2d", "to-1d"], [512, 512, 9]),
                                          (["to-2d", "to-3d"], [512, 512, 1, 1, 9])])
def test_weight_reshape_is_a_view_not_a_copy(passes, dims):
    model, w = _wide_chain()
    convrewrite.rewrite(_wide_chain()[0], passes=passes)  # warm up: imports and caches are not the pass's cost
    before = model.graph.initializer[0].raw_data
    tracemalloc.start()
    try:
        result = convrewrite.rewrite(model, passes=passes, copy=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < w.nbytes / 8, f"{peak} bytes traced while rewriting a {w.nbytes}-byte weight"
    assert result.model is model  # copy=False: edited where it lies
    weight = next(t for t in model.graph.initializer if t.name == "w")
    assert list(weight.dims) == dims and weight.raw_data == before
    assert {r.details["weight"] for r in result.rewritten} == {"reshaped in place"}
    np.testing.assert_array_equal(numpy_helper.to_array(weight), w.reshape(dims))


def _qdq_conv(op: str, axis: int | None, opset: int = 13):
    """x -> Q -> DQ -> Conv/ConvTranspose <- DQ(per-channel int8 weight, `axis` as given)."""
    rng = np.random.default_rng(1)
    c, m = 4, 6
    shape = (m, c, 3) if op == "Conv" else (c, m, 3)
    inits = [init("wq", rng.integers(-100, 100, shape).astype(np.int8)), init("ws", rng.uniform(0.01, 0.02, m).astype(np.float32)),
             init("wz", np.zeros(m, np.int8)), init("xs", np.float32(0.05)), init("xz", np.int8(0))]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dqw", **({} if axis is None else {"axis": axis})),
        helper.make_node(op, ["xd", "w"], ["y"], name="conv", kernel_shape=[3], pads=[1, 1]),
    ]
    return make_model(nodes, [vi("x", [1, c, 10])], [vi("y", [1, m, 10])], inits, opset=opset)


def _dq_axis(model) -> int | None:
    dq = next(n for n in model.graph.node if n.name == "dqw")
    return next((a.i for a in dq.attribute if a.name == "axis"), None)


# (op, axis as written) -> axis after lifting. Conv weights are [M, C, k] (channel axis 0);
# ConvTranspose weights are [C, M, k] (channel axis 1, the default when absent).
@pytest.mark.parametrize("op, axis, lifted_axis", [
    ("Conv", 0, 0), ("Conv", -3, -4), ("ConvTranspose", 1, 1), ("ConvTranspose", -2, -3), ("ConvTranspose", None, None),
])
@pytest.mark.parametrize("layout", ["h", "w"])
def test_qdq_per_channel_axis_follows_the_weight(op, axis, lifted_axis, layout):
    model = _qdq_conv(op, axis)
    result = rewrite_checked(model, ["to-2d"], layout)
    assert max(result.errors.values()) == 0.0
    assert _dq_axis(result.model) == lifted_axis
    weight = next(t for t in result.model.graph.initializer if t.name == "wq")
    unit = 2 if layout == "h" else 3
    assert weight.dims[unit] == 1 and len(weight.dims) == 4 and weight.data_type == TensorProto.INT8
    assert {t.name: list(t.dims) for t in result.model.graph.initializer}["ws"] == [6]  # scales untouched
    assert result.records[0].details["weight"] == "quantized weight reshaped in place behind DequantizeLinear"
    assert count(result.model, "Unsqueeze") == 1  # the data path only: the weight needs none
    assert_idempotent(result, ["to-2d"], layout)
    back = rewrite_checked(result.model, ["to-1d"], layout)
    assert _dq_axis(back.model) == axis and ops(back.model) == ops(model)


def test_weight_computed_at_run_time_is_routed_through_unsqueeze():
    inits = [init("k", np.float32(0.5))]
    nodes = [helper.make_node("Mul", ["win", "k"], ["w"], name="scale_w"),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3], pads=[1, 1])]
    model = make_model(nodes, [vi("x", [1, 4, 9]), vi("win", [4, 4, 3])], [vi("y", [1, 4, 9])], inits)
    for layout, axis in (("h", 2), ("w", 3)):
        result = rewrite_checked(model, ["to-2d"], layout)
        (record,) = result.records
        assert record.details["weight"] == "routed through Unsqueeze: weight is computed at run time"
        g = result.model.graph
        producers = {o: n for n in g.node for o in n.output}
        conv = next(n for n in g.node if n.op_type == "Conv")
        unsq = producers[conv.input[1]]
        assert unsq.op_type == "Unsqueeze" and unsq.input[0] == "w"
        axes = next(t for t in g.initializer if t.name == unsq.input[1])
        assert list(numpy_helper.to_array(axes)) == [axis]
        back = rewrite_checked(result.model, ["to-1d"], layout)
        assert ops(back.model) == ["Mul", "Conv"]
        assert back.counters["pairs_cancelled"] == 3  # data in, data out, and the weight's Unsqueeze
