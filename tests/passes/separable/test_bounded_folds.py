"""Issue 16: BatchNorm, scale and bias folds bounded: beyond the dtype's tolerance they are left alone.

The original computes each follower in float32 on the conv's output; a fold
rounds the folded weights and bias once. With large terms that cancel (a
BatchNorm's mean 1e5 over activations near 1e5 with variance 1e-6, bias Adds of
+1e6 and -1e6) the two differ far beyond float32's tolerance although each
fold is algebraically exact: the fold is left alone with the bound in the
reason, and `force` folds it with a warning.
"""

from __future__ import annotations

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import convrewrite
from convrewrite.cli import main
from util import assert_same_outputs, feeds_for, run


def _model(nodes, inits):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32])],
                          [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def conv_inits(bias: float):
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((4, 4, 3)) * 0.5, "b": np.full(4, bias)}


def batchnorm_model(mean: float, var: float, bias: float) -> onnx.ModelProto:
    inits = {**conv_inits(bias), "s": np.ones(4), "o": np.zeros(4), "m": np.full(4, mean), "v": np.full(4, var)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["y"], name="bn")]
    return _model(nodes, inits)


def cancelling_adds_model() -> onnx.ModelProto:
    inits = {**conv_inits(0.1), "up": np.full((1, 4, 1), 1e6), "down": np.full((1, 4, 1), -1e6)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1]),
             helper.make_node("Add", ["c", "up"], ["a"], name="add_up"),
             helper.make_node("Add", ["a", "down"], ["y"], name="add_down")]
    return _model(nodes, inits)


def _max_diff(a, b, feeds):
    ya, yb = run(a, feeds)["y"], run(b, feeds)["y"]
    return float(np.abs(ya.astype(np.float64) - yb).max())


def test_ill_conditioned_batchnorm_is_left_alone():
    model = batchnorm_model(1e5, 1e-6, 1e5)
    result = convrewrite.rewrite(model, ["separable"])
    assert [n.op_type for n in result.model.graph.node] == ["Conv", "BatchNormalization"]
    reason = " ".join(r.reason for r in result.records)
    assert "BatchNormalization bn kept: folding could move outputs" in reason and "--force" in reason, reason
    assert_same_outputs(model, result.model, feeds_for(model), atol=0.0)
    forced = convrewrite.rewrite(model, ["separable"], force=True)
    assert [n.op_type for n in forced.model.graph.node] == ["Conv"]
    assert forced.counters["folds_forced_past_bound"] == 1
    # the bound is not idle: the forced fold is beyond float32's tolerance on these inputs
    assert _max_diff(model, forced.model, feeds_for(model)) > 1e-2


def test_well_conditioned_batchnorm_still_folds():
    for mean, var, bias in [(0.1, 1.0, 0.0), (0.0, 1e-6, 0.0), (1e5, 1e-6, 0.0)]:
        model = batchnorm_model(mean, var, bias)
        result = convrewrite.rewrite(model, ["separable"])
        assert [n.op_type for n in result.model.graph.node] == ["Conv"], (mean, var, bias)
        out = np.abs(run(model, feeds_for(model))["y"]).max()
        assert_same_outputs(model, result.model, feeds_for(model), atol=1e-5 + 1e-4 * float(out))


def test_cancelling_bias_adds_are_left_alone():
    model = cancelling_adds_model()
    result = convrewrite.rewrite(model, ["separable"])
    assert [n.op_type for n in result.model.graph.node] == ["Conv", "Add", "Add"]
    assert "Add add_up kept: folding could move outputs" in " ".join(r.reason for r in result.records)
    forced = convrewrite.rewrite(model, ["separable"], force=True)
    assert [n.op_type for n in forced.model.graph.node] == ["Conv"]
    assert _max_diff(model, forced.model, feeds_for(model)) > 1e-3


def test_force_warns_in_the_summary(tmp_path):
    src = tmp_path / "bn.onnx"
    onnx.save(batchnorm_model(1e5, 1e-6, 1e5), src)
    runner = CliRunner()
    r = runner.invoke(main, ["rewrite", str(src), "-o", str(tmp_path / "a.onnx"), "--fold", "separable"])
    assert r.exit_code == 0 and "warning" not in r.output and "folding could move outputs" in r.output, r.output
    r = runner.invoke(main, ["rewrite", str(src), "-o", str(tmp_path / "b.onnx"), "--fold", "separable", "--force"])
    assert r.exit_code == 0 and "warning: 1 fold(s) forced past their error bound" in r.output, r.output
