"""Issue 16, valid models kept and invalid ones refused: function @attributes, invalid groups, swapped operands.

A model-local function's `@name` attribute takes its value per call site:
the node is left alone with the reason (never a crash, never "invalid
model"). A convolution whose group contradicts its channels is refused as
bad input with one line and exit 2.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import convrewrite
from convrewrite.cli import main
from util import assert_same_outputs, assert_same_special, feeds_for, special_feeds

PASS_SETS = [["to-2d"], ["to-1d"], ["all"], ["all", "to-2d"], ["channels-as-spatial"], ["to-3d"]]


def function_model(conv_ref: bool, softmax_ref: bool) -> onnx.ModelProto:
    """main calls local.F(x, w); F's Conv may take dilations=@dilations, its Softmax axis=@axis."""
    conv = helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3], **({} if conv_ref else {"dilations": [2]}))
    if conv_ref:
        conv.attribute.append(helper.make_attribute_ref("dilations", onnx.AttributeProto.INTS))
    sm = helper.make_node("Softmax", ["c"], ["y"], **({} if softmax_ref else {"axis": 1}))
    if softmax_ref:
        sm.attribute.append(helper.make_attribute_ref("axis", onnx.AttributeProto.INT))
    names = (["dilations"] if conv_ref else []) + (["axis"] if softmax_ref else [])
    f = helper.make_function("local", "F", ["x", "w"], ["y"], [conv, sm], [helper.make_opsetid("", 17)],
                             attributes=names)
    call_attrs = {**({"dilations": [2]} if conv_ref else {}), **({"axis": 1} if softmax_ref else {})}
    call = helper.make_node("F", ["x", "w"], ["y"], domain="local", **call_attrs)
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3)).astype(np.float32), "w")
    g = helper.make_graph([call], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 12])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
                              functions=[f], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("conv_ref, softmax_ref", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("passes", PASS_SETS, ids=["+".join(p) for p in PASS_SETS])
def test_function_attribute_references_are_left_alone(conv_ref, softmax_ref, passes):
    model = function_model(conv_ref, softmax_ref)
    result = convrewrite.rewrite(convrewrite.load(model), passes)
    convrewrite.load(result.model)  # valid
    for r in result.records:
        if conv_ref and r.op_type == "Conv":
            assert not r.rewritten and "dilations=@dilations set per call site" in r.reason, r
    assert_same_outputs(model, result.model, feeds_for(model))
    assert_same_special(model, result.model, special_feeds(model))


def test_function_attribute_reference_cli(tmp_path):
    src, out = tmp_path / "f.onnx", tmp_path / "out.onnx"
    onnx.save(function_model(True, True), src)
    r = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(out), "--to-2d", "--fold", "all"])
    assert r.exit_code == 0, r.output
    assert "set per call site" in r.output


def conv_model(group: int, channels: int, weight_shape, kernel=None) -> onnx.ModelProto:
    attrs = {"group": group, **({"kernel_shape": kernel} if kernel else {})}
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", **attrs)
    w = numpy_helper.from_array(np.ones(weight_shape, np.float32), "w")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "m", "l"])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("group, channels, weight, message", [
    (3, 4, (3, 1, 3), "group 3 does not divide the input's 4 channels"),
    (0, 4, (4, 4, 3), "group is 0"),
    (2, 4, (3, 2, 3), "group 2 does not divide the weight's 3 output channels"),
    (2, 4, (4, 1, 3), "the weight takes 1 channels per group, 2 in all, but the input has 4"),
    (1, 4, (4, 4, 3, 3), "spatial dimensions in the weight tensor (2) does not match"),  # onnx.checker's line
])
def test_invalid_groups_are_bad_input(tmp_path, group, channels, weight, message):
    src = tmp_path / "bad.onnx"
    onnx.save(conv_model(group, channels, weight), src)
    for args in (["rewrite", str(src), "-o", str(tmp_path / "o.onnx"), "--to-2d"], ["inspect", str(src)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, r.output
        assert message in r.output and "convrewrite: error:" in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    with pytest.raises(convrewrite.ConvRewriteError, match=re.escape(message)):
        convrewrite.load(str(src))


def test_data_initializer_and_weight_input_do_not_crash():
    """The Conv's data is an initializer and its weight a graph input (KeyError in --to-2d before)."""
    x = numpy_helper.from_array(np.random.default_rng(1).standard_normal((1, 3, 16)).astype(np.float32), "x")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[3])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 14])], [x])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    for passes in PASS_SETS:
        result = convrewrite.rewrite(model, passes)
        convrewrite.load(result.model)
        assert all(r.rewritten or r.reason for r in result.records)
        assert_same_outputs(model, result.model, feeds_for(model))
