"""Issue 16: decisions that depend on a dim use only what follows from the graph inputs, never value_info.

Each case declares an intermediate value_info that holds for one input size
of a dynamic dim and lies for the others; every pass must give the
original's outputs at the other sizes (or leave the conv alone).
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import convrewrite
from util import assert_same_outputs, feeds_for, run

PASS_SETS = [["to-2d"], ["to-1d"], ["causal"], ["dilated"], ["separable"], ["all"], ["all", "to-2d"],
             ["channels-as-spatial"], ["spatial-as-channels"], ["to-3d"], ["3d-to-2d"]]


def _model(nodes, x_shape, y_rank, inits, claims):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["d%d" % i for i in range(y_rank)])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()],
                          value_info=[helper.make_tensor_value_info(k, TensorProto.FLOAT, v) for k, v in claims.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def causal_same_stride() -> onnx.ModelProto:
    """x [1,2,L] -> causal Pad -> Conv(SAME_UPPER, stride 2); value_info says L = 16."""
    w = np.random.default_rng(0).standard_normal((3, 2, 3)).astype(np.float32)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
             helper.make_node("Conv", ["p", "w"], ["y"], name="conv", auto_pad="SAME_UPPER", strides=[2])]
    return _model(nodes, [1, 2, "L"], 3, {"w": w, "pads": np.array([0, 0, 2, 0, 0, 0], np.int64)},
                  {"p": [1, 2, 18], "y": [1, 3, 9]})


def unit_h_claim() -> onnx.ModelProto:
    """x [1,2,H,16] -> Relu -> Conv [1,3]; value_info says H = 1."""
    w = np.random.default_rng(1).standard_normal((3, 2, 1, 3)).astype(np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Conv", ["r", "w"], ["y"], name="conv", pads=[0, 1, 0, 1])]
    return _model(nodes, [1, 2, "H", 16], 4, {"w": w}, {"r": [1, 2, 1, 16], "y": [1, 3, 1, 16]})


def quantized_same_stride(**conv_attrs) -> onnx.ModelProto:
    """x [1,2,L] -> Pad -> DynamicQuantizeLinear -> ConvInteger(SAME_UPPER, stride 2) -> Cast -> Mul -> Slice
    (chomp 1); value_info says L = 16 (the quantized paths of the causal fold must not believe it either)."""
    w = np.random.default_rng(3).integers(0, 255, (3, 2, 3)).astype(np.uint8)
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
             helper.make_node("DynamicQuantizeLinear", ["p"], ["q", "qs", "qz"]),
             helper.make_node("ConvInteger", ["q", "w", "qz"], ["c"], name="conv", strides=[2],
                              **(conv_attrs or {"auto_pad": "SAME_UPPER"})),
             helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["cf", "qs"], ["m"]),
             helper.make_node("Slice", ["m", "st", "en", "ax"], ["y"])]
    inits = {"w": w, "pads": np.array([0, 0, 2, 0, 0, 0], np.int64), "st": np.array([0], np.int64),
             "en": np.array([-1], np.int64), "ax": np.array([2], np.int64)}
    model = _model(nodes, [1, 2, "L"], 3, inits, {"p": [1, 2, 18], "m": [1, 3, 9], "cf": [1, 3, 9]})
    model.graph.value_info.extend([helper.make_tensor_value_info("q", TensorProto.UINT8, [1, 2, 18]),
                                   helper.make_tensor_value_info("c", TensorProto.INT32, [1, 3, 9])])
    return model


def feeds(model, shape):
    return {"x": np.random.default_rng(2).standard_normal(shape).astype(np.float32)}


CASES = {
    "causal_same_stride": (causal_same_stride, [(1, 2, 16), (1, 2, 17), (1, 2, 5)]),
    "unit_h_claim": (unit_h_claim, [(1, 2, 1, 16), (1, 2, 3, 16)]),
    "quantized_same_stride": (quantized_same_stride, [(1, 2, 16), (1, 2, 17), (1, 2, 5)]),
    # end pad 1 < the chomp's 1 output * stride 2: whether the fold keeps the length depends on L
    "quantized_stride_chomp": (lambda: quantized_same_stride(pads=[2, 1]), [(1, 2, 16), (1, 2, 17), (1, 2, 5)]),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("passes", PASS_SETS, ids=["+".join(p) for p in PASS_SETS])
def test_lying_value_info(name, passes):
    make, shapes = CASES[name]
    model = make()
    for options in ({}, {"assume_finite": True}) if name.startswith("quantized") else ({},):
        result = convrewrite.rewrite(model, passes, **options)
        for shape in shapes:
            assert_same_outputs(model, result.model, feeds(model, shape))


MODEL_DIR = __import__("util").MODELS


def _dynamic(model: onnx.ModelProto) -> bool:
    inits = {t.name for t in model.graph.initializer}
    return any(d.dim_param or not d.HasField("dim_value") for v in model.graph.input if v.name not in inits
               for d in v.type.tensor_type.shape.dim)


def with_claims(model: onnx.ModelProto, size: int) -> onnx.ModelProto | None:
    """The model with every intermediate value_info claiming the dims that hold when dynamic dims are `size`."""
    fixed = copy.deepcopy(model)
    del fixed.graph.value_info[:]
    for v in fixed.graph.input:
        for i, d in enumerate(v.type.tensor_type.shape.dim):
            if d.dim_param or not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = 1 if i == 0 else size
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=True, data_prop=True)
    except Exception:
        return None
    lying = copy.deepcopy(model)
    del lying.graph.value_info[:]
    outputs = {o.name for o in model.graph.output}
    lying.graph.value_info.extend(v for v in inferred.graph.value_info if v.name not in outputs)
    try:
        onnx.checker.check_model(lying, full_check=True)
    except Exception:
        return None
    return lying


DYNAMIC = [p for p in sorted(MODEL_DIR.glob("*.onnx")) if _dynamic(onnx.load(str(p), load_external_data=False))]


@pytest.mark.parametrize("passes", PASS_SETS, ids=["+".join(p) for p in PASS_SETS])
def test_every_pass_ignores_lying_value_info_on_the_models(passes):
    """Claims made at size 16 (value_info of every intermediate); compared at 17 and 5 (where the original runs)."""
    compared = 0
    for path in DYNAMIC:
        model = onnx.load(str(path))
        lying = with_claims(model, 16)
        if lying is None:
            continue
        try:
            result = convrewrite.rewrite(lying, passes)
        except convrewrite.ConvRewriteError:
            continue
        if not result.changed:
            continue
        for size in (17, 5):
            dims = {d.dim_param: size for v in model.graph.input for d in v.type.tensor_type.shape.dim if d.dim_param}
            f = feeds_for(model, dims=dims)
            try:
                run(model, f)
            except Exception:
                continue  # the original does not run at this size
            try:
                assert_same_outputs(model, result.model, f, atol=1e-4, rtol=1e-4)
            except Exception as exc:
                raise AssertionError(f"{path.name} at size {size}: {exc}") from None
            compared += 1
    if not compared:
        pytest.skip("no dynamic model under models/ that this pass rewrites (the built cases above cover it)")
