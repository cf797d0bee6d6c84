"""The one driver (convrewrite/engine/driver.py): loop, read_conv, selection, records, cleanup, dry runs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import convrewrite
from convrewrite.graph import GraphView, ModelContext, node_labels
from convrewrite.engine import (
    NotApplicable, PassContext, PassOptions, Rewritten, Rule, read_conv, register_rule, run_rule, unregister_rule,
)


def chain(n: int = 3, named: bool = True) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((2, 2, 1), np.float32), "w")
    nodes, x = [], "x"
    for i in range(n):
        nodes.append(helper.make_node("Conv", [x, "w"], [f"y{i}"], name=f"c{i}" if named else ""))
        x = f"y{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 2, 8])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


class EveryOther(Rule):
    """Says no to c1 (with the nodes involved), writes kernel_shape on the others."""

    name = "test-every-other"

    def match(self, run, conv):
        if conv.label == "c1":
            raise NotApplicable("c1 is not for me", [conv.node], details={"why": "test"})
        return "planned"

    def rewrite(self, run, conv, match):
        assert match == "planned"
        conv.attrs.apply(conv.node)
        return Rewritten(conv.attrs, "done", {"n": 1})


@pytest.fixture
def every_other():
    register_rule(EveryOther)
    yield
    unregister_rule(EveryOther.name)


def test_one_record_per_conv_skips_carry_the_reason_and_details(every_other):
    result = convrewrite.rewrite(chain(), ["test-every-other"])
    assert [(r.node, r.status, r.reason) for r in result.records] == [
        ("c0", "rewritten", "done"), ("c1", "skipped", "c1 is not for me"), ("c2", "rewritten", "done")]
    assert result.records[1].details == {"why": "test"} and result.records[1].before["kernel_shape"] == [1]
    assert result.records[0].after["kernel_shape"] == [1]


def test_selection_excludes_before_match(every_other):
    result = convrewrite.rewrite(chain(), ["test-every-other"], only={"test-every-other:main:c2"})
    assert [(r.node, r.reason) for r in result.records] == [
        ("c0", "excluded by selection"), ("c1", "excluded by selection"), ("c2", "done")]


def test_dry_run_matches_without_editing(every_other):
    model = chain()
    before = model.SerializeToString()
    ctx = PassContext(model, PassOptions())
    run_rule(ctx, EveryOther(), dry=True)
    assert [(r.node, r.status) for r in ctx.records] == [("c0", "matches"), ("c1", "skipped"), ("c2", "matches")]
    assert model.SerializeToString() == before


def test_unreadable_attributes_are_one_reason_for_every_rule():
    model = chain(1)
    model.graph.node[0].attribute.extend([helper.make_attribute("kernel_shape", [3])])  # disagrees with the weight
    result = convrewrite.rewrite(model, ["causal", "dilated", "separable", "to-2d", "channels-as-spatial"])
    reasons = {r.reason for r in result.records}
    assert len(reasons) == 1 and reasons.pop().startswith("attributes cannot be read: kernel_shape [3] disagrees")
    assert all(r.before is None for r in result.records)


def test_read_conv_falls_back_to_the_constant_weight_in_a_function_body():
    # A weight computed by a Constant inside a function has no inferred shape: its value supplies it.
    w = numpy_helper.from_array(np.ones((2, 2, 3), np.float32), "wc")
    fn = helper.make_function("local", "f", ["x"], ["y"], [
        helper.make_node("Constant", [], ["wc"], value=w), helper.make_node("Conv", ["x", "wc"], ["y"], name="fc")],
        opset_imports=[helper.make_opsetid("", 13)])
    graph = helper.make_graph([helper.make_node("f", ["x"], ["y"], domain="local")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, functions=[fn], ir_version=8,
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    view = GraphView(fn, ModelContext(model), path="f")
    conv = read_conv(view, fn.node[1], "fc")
    assert conv.weight_shape == [2, 2, 3] and conv.attrs.kernel_shape == (3,)


def test_unnamed_nodes_get_the_same_labels_everywhere():
    model = chain(2, named=False)
    view = GraphView(model.graph, ModelContext(model))
    assert list(node_labels(view).values()) == ["Conv_0", "Conv_1"]
    assert [r.node for r in convrewrite.rewrite(model, ["causal"]).records] == ["Conv_0", "Conv_1"]
    report = convrewrite.inspect(model, rules=True)
    assert [c["name"] for c in report["convolutions"]] == ["Conv_0", "Conv_1"]


def test_cleanup_removes_dead_constant_chains_once_for_every_rule():
    # Pad -> Conv whose pads come from a Constant -> Identity chain: the fold leaves the chain unread.
    pads = numpy_helper.from_array(np.array([0, 0, 2, 0, 0, 0], np.int64), "pads_c")
    w = numpy_helper.from_array(np.ones((2, 2, 3), np.float32), "w")
    nodes = [helper.make_node("Constant", [], ["p0"], value=pads), helper.make_node("Identity", ["p0"], ["p1"]),
             helper.make_node("Pad", ["x", "p1"], ["xp"], name="pad"), helper.make_node("Conv", ["xp", "w"], ["y"], name="c")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    result = convrewrite.rewrite(model, ["causal"])
    assert result.records[0].rewritten
    assert [n.op_type for n in result.model.graph.node] == ["Conv"]


class HelperRefuses(Rule):
    """Its match calls helpers that refuse the one way (a Refusal subclass) and does not catch them."""

    name = "test-helper-refuses"

    def match(self, run, conv):
        from convrewrite.symbolic import Unprovable
        from convrewrite.passes.reshapes.plans import Block

        if conv.label == "c0":
            raise Unprovable("a size is not provable")
        if conv.label == "c1":
            return Block("blocked by a region plan")  # a returned refusal is the same answer
        return "planned"

    def rewrite(self, run, conv, match):
        return Rewritten(conv.attrs, "done")


def test_an_uncaught_refusal_from_a_helper_is_the_skip_record():
    from convrewrite.engine import Refusal
    from convrewrite.passes.separable.parts import CannotFold
    from convrewrite.symbolic import NotAffine, Unprovable

    assert all(issubclass(e, Refusal) for e in (NotApplicable, Unprovable, NotAffine, CannotFold))
    register_rule(HelperRefuses)
    try:
        result = convrewrite.rewrite(chain(), ["test-helper-refuses"])
    finally:
        unregister_rule(HelperRefuses.name)
    assert [(r.node, r.status, r.reason) for r in result.records] == [
        ("c0", "skipped", "a size is not provable"), ("c1", "skipped", "blocked by a region plan"),
        ("c2", "rewritten", "done")]
    assert result.records[0].before is not None
