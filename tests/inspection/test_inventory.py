"""Inventory: every convolution found (subgraphs and functions too), attributes exact, kinds right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from convrewrite import inspect
from convrewrite.graph import subgraphs
from conformance import node_cases, shared_cases
from util import MODELS, SAMPLES, init, make_model, vi

CONV_OPS = {"Conv", "ConvTranspose", "QLinearConv", "ConvInteger"}


def conv_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    found = []
    stack = [model.graph] + [f for f in model.functions]
    while stack:
        body = stack.pop()
        for n in body.node:
            if n.op_type in CONV_OPS:
                found.append(n)
            stack.extend(g for _, g in subgraphs(n))
    return found


def assert_attributes_match_nodes(model, report):
    nodes = {n.name: n for n in conv_nodes(model) if n.name}
    for entry in report["convolutions"]:
        node = nodes.get(entry["name"])
        if node is None:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        n = entry["rank"]
        assert entry["op_type"] == node.op_type
        assert entry["strides"] == list(attrs.get("strides", [1] * n))
        assert entry["dilations"] == list(attrs.get("dilations", [1] * n))
        assert entry["group"] == attrs.get("group", 1)
        if "kernel_shape" in attrs:
            assert entry["kernel_shape"] == list(attrs["kernel_shape"])
        if attrs.get("auto_pad", b"NOTSET") in (b"NOTSET",) and "output_shape" not in attrs:
            assert entry["pads"] == list(attrs.get("pads", [0] * 2 * n))


ALL_MODELS = sorted(MODELS.glob("*.onnx")) + sorted(SAMPLES.glob("*.onnx"))


@pytest.mark.parametrize("path", ALL_MODELS, ids=lambda p: p.name)
def test_inventory_lists_exactly_the_convolutions(path):
    model = onnx.load(str(path))
    report = inspect(model)
    assert len(report["convolutions"]) == len(conv_nodes(model))
    assert report["opsets"]
    assert_attributes_match_nodes(model, report)
    json.dumps(report)


@pytest.mark.parametrize("case", list(node_cases()) + list(shared_cases()), ids=lambda c: c.name)
def test_inventory_on_conformance(case):
    report = inspect(case.model)
    assert len(report["convolutions"]) == len(conv_nodes(case.model))
    assert_attributes_match_nodes(case.model, report)


# name -> kinds of each convolution, in graph order, for every model in models/ (reviewed by hand
# against the graphs: op, attributes, the ops before and after each convolution). A model added
# to models/ without an entry fails test_every_model_has_expected_kinds.
EXPECTED_KINDS_FILE = Path(__file__).with_name("expected_kinds.json")
EXPECTED_KINDS = json.loads(EXPECTED_KINDS_FILE.read_text())


def test_every_model_has_expected_kinds():
    missing = {}
    for path in sorted(MODELS.glob("*.onnx")):
        if path.stem not in EXPECTED_KINDS:
            missing[path.stem] = [c["kinds"] for c in inspect(onnx.load(str(path)))["convolutions"]]
    assert not missing, (
        f"models without expected kinds in {EXPECTED_KINDS_FILE.name}; check these against the graph, then add them: "
        + json.dumps(missing)
    )
    stale = sorted(name for name in EXPECTED_KINDS if not (MODELS / f"{name}.onnx").exists())
    assert not stale, f"{EXPECTED_KINDS_FILE.name} lists models that are not in models/: {stale}"


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_kinds_on_models(name):
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.fail(f"models/{name}.onnx is missing")
    report = inspect(onnx.load(str(path)))
    assert [c["kinds"] for c in report["convolutions"]] == EXPECTED_KINDS[name]


def _conv(name, x, w, y, **kw):
    return helper.make_node("Conv", [x, w], [y], name=name, **kw)


def test_subgraphs_and_functions_are_walked():
    w = init("w", np.ones((4, 4, 3), np.float32))
    then_g = helper.make_graph([_conv("then_conv", "x", "w", "t", pads=[1, 1])], "then", [], [vi("t", [1, 4, 8])])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [vi("e", [1, 4, 8])])
    cond = init("cond", np.array(True))
    func = helper.make_function(
        "local", "ConvBlock", ["fx", "fw"], ["fy"],
        [helper.make_node("Conv", ["fx", "fw"], ["fc"], name="func_conv", kernel_shape=[3], pads=[2, 0], dilations=[1]),
         helper.make_node("Relu", ["fc"], ["fy"])],
        opset_imports=[helper.make_opsetid("", 13)],
    )
    nodes = [
        helper.make_node("If", ["cond"], ["i"], name="If_3", then_branch=then_g, else_branch=else_g),
        helper.make_node("ConvBlock", ["i", "w"], ["y"], domain="local"),
    ]
    graph = helper.make_graph(nodes, "g", [vi("x", [1, 4, 8])], [vi("y", [1, 4, 8])], [w, cond])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)],
                              functions=[func], ir_version=8)
    report = inspect(model)
    where = {c["name"]: c["graph"] for c in report["convolutions"]}
    assert where == {"then_conv": "main/If_3/then_branch", "func_conv": "function:ConvBlock"}
    func_entry = [c for c in report["convolutions"] if c["name"] == "func_conv"][0]
    assert func_entry["pads"] == [2, 0] and "causal" in func_entry["kinds"]


def test_quantized_and_grouped_kinds():
    x = vi("x", [1, 4, 8], onnx.TensorProto.UINT8)
    w = init("w", np.ones((4, 2, 3), np.uint8))
    node = helper.make_node("ConvInteger", ["x", "w"], ["y"], name="ci", group=2, strides=[2])
    model = make_model([node], [x], [vi("y", [1, 4, 3], onnx.TensorProto.INT32)], [w])
    entry = inspect(model)["convolutions"][0]
    assert entry["kinds"] == ["grouped", "strided", "quantized"]
    assert entry["in_channels"] == 4 and entry["out_channels"] == 4


def test_every_body_kind_is_listed_with_its_path_and_kinds():
    """The same five convolutions in the main graph, both If branches, a Loop body, a Scan body and a function."""
    from big_models import BODIES, nested_model

    model = nested_model()
    report = inspect(model)
    assert len(report["convolutions"]) == len(conv_nodes(model)) == 5 * len(BODIES)
    expected = {
        "causal": ["causal", "pad-fed"],
        "zero_inserted": ["zero-inserted"],
        "depthwise": ["depthwise", "separable-pair"],
        "pointwise": ["pointwise", "separable-pair"],
        "chomped": ["causal", "sliced"],
    }
    for graph, prefix in BODIES.items():
        rows = {c["name"]: c for c in report["convolutions"] if c["graph"] == graph}
        assert {name: c["kinds"] for name, c in rows.items()} == {prefix + k: v for k, v in expected.items()}, graph
        # Channels known everywhere, also where the weights are Constant nodes (the function).
        assert all(c["in_channels"] == 8 and c["out_channels"] == 8 for c in rows.values()), graph
