"""The one layout walker (convrewrite/graph/layout.py): axis maps through layout ops, walks with a stop reason."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from convrewrite.refusal import Refusal
from convrewrite.graph import GraphView, ModelContext, axes_back, axes_through, read_by, walk_down, walk_up


def view_of(nodes, outputs=("z",)):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return GraphView(model.graph, ModelContext(model)), model


def test_axes_follow_transpose_unsqueeze_and_squeeze():
    axes_node = helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", TensorProto.INT64, [1], [2]))
    t = helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])
    u = helper.make_node("Unsqueeze", ["t", "ax"], ["u"])
    view, _ = view_of([axes_node, t, u, helper.make_node("Relu", ["u"], ["z"])])
    assert axes_through(view, t, [0, 1, 2]) == [0, 2, 1]
    assert axes_through(view, u, [0, 2, 1]) == [0, 2, None, 1]
    s = helper.make_node("Squeeze", ["u", "ax"], ["s"])
    assert axes_through(view, s, [0, 2, None, 1]) == [0, 2, 1]
    assert axes_through(view, s, [0, 2, 1, None]) is None  # would drop the channel axis (1)


def test_walk_down_stops_at_the_first_other_reader_or_says_why():
    t = helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])
    relu = helper.make_node("Relu", ["t"], ["z"])
    view, _ = view_of([t, relu])
    path = walk_down(view, "x", 3)
    assert [n.op_type for n in path.layout] == ["Transpose"] and path.user.op_type == "Relu" and path.axes == [0, 2, 1]
    assert path.channel_axis == 2 and not path.same_layout
    view, _ = view_of([t, helper.make_node("Relu", ["t"], ["z"]), helper.make_node("Neg", ["t"], ["w"])], ("z", "w"))
    stopped = walk_down(view, "x", 3)
    assert stopped.user is None and stopped.stop == "has 2 consumers (Relu, Neg)"
    view, _ = view_of([t], ("t",))
    assert walk_down(view, "t", 3).stop == "is a graph output"


def test_walk_up_returns_the_producer_and_the_layout_in_data_order():
    conv = helper.make_node("Conv", ["x", "w"], ["c"])
    t = helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 1])
    i = helper.make_node("Identity", ["t"], ["z"])
    view, _ = view_of([conv, t, i])
    producer, layout = walk_up(view, "z")
    assert producer.op_type == "Conv" and [n.op_type for n in layout] == ["Transpose", "Identity"]


def test_axes_back_maps_each_axis_to_where_it_came_from_or_says_why_not():
    axes_node = helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", TensorProto.INT64, [1], [2]))
    u = helper.make_node("Unsqueeze", ["x", "ax"], ["u"])  # [1, 4, 8] -> [1, 4, 1, 8]
    t = helper.make_node("Transpose", ["u"], ["t"], perm=[0, 1, 3, 2])  # -> [1, 4, 8, 1]
    view, _ = view_of([axes_node, u, t, helper.make_node("Relu", ["t"], ["z"])])
    assert axes_back(view, [t, u], 4) == ([0, 1, 2, None], 3)
    bad = helper.make_node("Transpose", ["u"], ["t2"], perm=[0, 1])
    with pytest.raises(Refusal, match="^Transpose perm does not match the tensor's rank$"):
        axes_back(view, [bad], 4, " here")
    computed = helper.make_node("Unsqueeze", ["x", "runtime_axes"], ["u2"])
    with pytest.raises(Refusal, match="^Unsqueeze axes here are computed at run time$") as no:
        axes_back(view, [computed], 4, " here")
    assert no.value.nodes == [computed]


def test_walk_down_passes_layout_keeping_ops_and_stops_where_told():
    relu = helper.make_node("Relu", ["x"], ["r"])
    t = helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1])
    axes = helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", TensorProto.INT64, [1], [1]))
    sq = helper.make_node("Squeeze", ["t", "ax"], ["s"])
    view, _ = view_of([relu, t, axes, sq, helper.make_node("Relu", ["s"], ["z"])])
    plain = walk_down(view, "x", 3)
    assert plain.user.output[0] == "r" and plain.layout == []
    path = walk_down(view, "x", 3, keep=("Relu",), stop=("Squeeze",))
    assert [n.output[0] for n in path.layout] == ["r", "t"] and path.user.output[0] == "s" and path.axes == [0, 2, 1]
    through = walk_down(view, "x", 3, keep=("Relu",))  # Squeeze is a layout op: passed when not told to stop
    assert through.user is None and through.stop == "is a graph output" and through.axes == [0, 1]


def test_walk_up_with_a_reader_passes_only_ops_read_by_the_walk_alone():
    t = helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])
    i = helper.make_node("Identity", ["t"], ["i"])
    c = helper.make_node("Relu", ["i"], ["z"])
    view, _ = view_of([t, i, c])
    reader = [n for n in view.nodes if n.op_type == "Relu"][0]
    assert [n.op_type for n in walk_up(view, "i", reader=reader)[1]] == ["Transpose", "Identity"]
    shared, _ = view_of([t, i, c, helper.make_node("Neg", ["t"], ["n"])], outputs=("z", "n"))
    reader = [n for n in shared.nodes if n.op_type == "Relu"][0]
    stop, passed = walk_up(shared, "i", reader=reader)
    assert [n.op_type for n in passed] == ["Identity"] and stop.op_type == "Transpose"  # t is read twice


def test_walk_up_ignores_the_readers_it_is_told_to():
    # A Shape reading a tensor on the walk does not share it when `ignored` names Shape (the dilated chain walk:
    # the shape subgraph dies with the chain); a graph output always does.
    t = helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1])
    i = helper.make_node("Identity", ["t"], ["i"])
    c = helper.make_node("Relu", ["i"], ["z"])
    shape = helper.make_node("Shape", ["t"], ["s"])
    view, _ = view_of([t, i, c, shape], outputs=("z", "s"))
    reader = [n for n in view.nodes if n.op_type == "Relu"][0]
    assert [n.op_type for n in walk_up(view, "i", reader=reader)[1]] == ["Identity"]
    assert [n.op_type for n in walk_up(view, "i", reader=reader, ignored=("Shape",))[1]] == ["Transpose", "Identity"]
    identity = [n for n in view.nodes if n.op_type == "Identity"][0]
    assert read_by(view, "t", identity, ("Shape",)) and not read_by(view, "t", identity)
    out, _ = view_of([t, i, c], outputs=("z", "t"))
    identity = [n for n in out.nodes if n.op_type == "Identity"][0]
    assert not read_by(out, "t", identity, ("Shape",))  # a graph output is shared
