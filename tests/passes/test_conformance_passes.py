"""Every conformance case through every pass and pass combination, judged by the case's own expected outputs.

Cases (tests/conformance.py): the pytorch-converted/operator cases vendored in
tests/data/conformance, and the onnx wheel's node cases of Conv,
ConvTranspose, QLinearConv, ConvInteger and Pad, plus the expansions of
CausalConvWithState (Concat -> Conv -> Slice streaming graphs). Each goes
through each pass alone and through the combinations the CLI builds
(`--fold all`, `--to-2d --fold all`, `--to-1d --fold all`), in the CLI's order.

What must hold for every case and combination:
- the result passes onnx.checker (full_check) and keeps IR version, opsets and graph I/O;
- every pass records every convolution, a skip always with a reason;
- nothing recorded as rewritten -> the model comes out byte-identical;
  something rewritten -> the model differs;
- running the same passes again changes nothing;
- on onnxruntime CPU the rewritten model gives the case's expected outputs
  (same shape and dtype, np.testing.assert_allclose with the case's rtol/atol,
  as onnx's backend test runner judges them) and agrees with the original
  model within the same tolerance.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import onnx
import pytest

import convrewrite
import convrewrite.cli  # noqa: F401  (cli_rewrite is imported through it: the two import each other)
from convrewrite.cli_rewrite import pass_order
from convrewrite.conv import CONV_OPS
from conformance import CONFORMANCE_OPS, Case, node_cases, shared_cases
from util import run, runnable

FOLD_ALL = pass_order(False, False, False, ("all",), ())

# (id, passes, options): every registered pass alone, then what the CLI runs for its combinations.
COMBINATIONS = [
    ("to-2d", ["to-2d"], {"layout": "h"}),
    ("to-2d:w", ["to-2d"], {"layout": "w"}),
    ("to-3d", ["to-3d"], {"layout": "h"}),
    ("to-3d:w", ["to-3d"], {"layout": "w"}),
    ("to-1d", ["to-1d"], {}),
    ("3d-to-2d", ["3d-to-2d"], {}),
    ("causal", ["causal"], {}),
    ("dilated", ["dilated"], {}),
    ("dilated:expand", ["dilated"], {"expand_dilations": True}),
    ("separable", ["separable"], {}),
    ("channels-as-spatial", ["channels-as-spatial"], {}),
    ("spatial-as-channels", ["spatial-as-channels"], {}),
    ("fold-all", FOLD_ALL, {}),
    ("fold-all:fuse", FOLD_ALL, {"fuse_separable": True}),
    ("to-2d+fold-all", pass_order(True, False, False, ("all",), ()), {"layout": "h"}),
    ("to-2d:w+fold-all", pass_order(True, False, False, ("all",), ()), {"layout": "w"}),
    ("to-1d+fold-all", pass_order(False, True, False, ("all",), ()), {}),
    # The API lets a caller lift first and fold after: the folds then see 2-D convolutions.
    ("to-2d,fold-all", ["to-2d"] + FOLD_ALL, {"layout": "h"}),
    # Streaming Concat -> Conv -> Slice into CausalConvWithState (opset 27: onnxruntime
    # cannot run that op, so a model holding it is run by onnx's reference evaluator).
    ("causal:state", ["causal"], {"causal_target": "CausalConvWithState"}),
]

SHARED_CASES = list(shared_cases())
NODE_CASES = list(node_cases(CONFORMANCE_OPS, expanded_ops=CONV_OPS))
CASES = SHARED_CASES + NODE_CASES

# Cases whose original model onnxruntime CPU refuses: they still go through
# the structural checks, then are skipped with this reason (and the test
# fails if onnxruntime starts running them, so the list stays true).
ORT_CANNOT_RUN = {
    "test_convinteger_with_padding[0]":
        "onnxruntime CPU ConvInteger supports only a per-tensor weight zero point (this case has one per channel)",
}

# onnxruntime 1.31 loads default-domain opsets up to 26. CausalConvWithState's
# expansions are stamped opset 27 but use only ops whose schema is the same at 26.
ORT_MAX_OPSET = 26


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for a in node.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                yield from _nodes(g)


def ort_loadable(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy onnxruntime loads: IR capped, and a default-domain opset past ORT_MAX_OPSET
    stamped down to it when every op in the model has the same schema there (so it means the same)."""
    model = runnable(model)
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not default or default[0].version <= ORT_MAX_OPSET or len(model.functions):
        return model
    version = default[0].version
    for node in _nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            continue
        if onnx.defs.get_schema(node.op_type, version, node.domain).since_version > ORT_MAX_OPSET:
            return model
    model = copy.deepcopy(model)
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = ORT_MAX_OPSET
    return model


@functools.lru_cache(maxsize=None)
def original_outputs(name: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """The original model's outputs on onnxruntime CPU, or None and why it could not run."""
    case = next(c for c in CASES if c.name == name)
    try:
        return run(ort_loadable(case.model), case.feeds()), ""
    except Exception as exc:  # onnxruntime raises its own exception types
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"


def run_outputs(model: onnx.ModelProto, case: Case) -> dict[str, np.ndarray]:
    """onnxruntime CPU; onnx's reference evaluator only for a model holding an op past ORT_MAX_OPSET."""
    loadable = ort_loadable(model)
    if all(o.version <= ORT_MAX_OPSET for o in loadable.opset_import if o.domain in ("", "ai.onnx")):
        return run(loadable, case.feeds())
    from onnx.reference import ReferenceEvaluator

    names = [o.name for o in model.graph.output]
    return dict(zip(names, ReferenceEvaluator(model).run(None, case.feeds())))


def conv_count(model: onnx.ModelProto) -> int:
    return sum(n.op_type in CONV_OPS for n in _nodes(model.graph))


def conv_ranks(model: onnx.ModelProto) -> set[int]:
    """Spatial ranks of the model's convolutions, from their weights' declared shapes."""
    shapes = {t.name: len(t.dims) for t in model.graph.initializer}
    for v in list(model.graph.input) + list(model.graph.value_info):
        if v.type.tensor_type.HasField("shape"):
            shapes.setdefault(v.name, len(v.type.tensor_type.shape.dim))
    weight_slot = {"Conv": 1, "ConvTranspose": 1, "ConvInteger": 1, "QLinearConv": 3}
    return {shapes[n.input[weight_slot[n.op_type]]] - 2 for n in _nodes(model.graph)
            if n.op_type in weight_slot and n.input[weight_slot[n.op_type]] in shapes}


def assert_same_interface(model: onnx.ModelProto, out: onnx.ModelProto) -> None:
    """Graph inputs and outputs keep names, types and shapes.

    Exception, by design (reshapes.set_tensor_dims): under IR < 4 every
    initializer is also a graph input, and the passes treat those as the
    constants exporters meant (onnxruntime too: it lists none of them as
    overridable); a reshaped weight's declaration follows its initializer's
    new dims.
    """
    assert list(out.graph.output) == list(model.graph.output)
    assert [i.name for i in out.graph.input] == [i.name for i in model.graph.input]
    weights = {t.name: list(t.dims) for t in out.graph.initializer} if model.ir_version < 4 else {}
    for new, old in zip(out.graph.input, model.graph.input):
        if new.name in weights and new != old:
            assert new.type.tensor_type.elem_type == old.type.tensor_type.elem_type
            assert [d.dim_value for d in new.type.tensor_type.shape.dim] == weights[new.name]
        else:
            assert new == old, f"graph input {old.name} changed"


def assert_matches(got: dict[str, np.ndarray], reference: list[np.ndarray], case: Case, what: str) -> None:
    assert len(got) == len(reference), f"{len(got)} outputs, {what} has {len(reference)}"
    for (name, out), ref in zip(got.items(), reference):
        assert out.shape == ref.shape, f"{name}: shape {out.shape}, {what} {ref.shape}"
        assert out.dtype == ref.dtype, f"{name}: dtype {out.dtype}, {what} {ref.dtype}"
        np.testing.assert_allclose(out, ref, rtol=case.rtol, atol=case.atol, err_msg=f"{name} vs {what}")


def test_every_case_collected():
    """A missing data folder or an onnx wheel without node cases must fail here, not skip everything."""
    assert len(SHARED_CASES) >= 30, f"only {len(SHARED_CASES)} cases under tests/data/conformance"
    plain = [c for c in NODE_CASES if "_expanded" not in c.name]
    expanded = [c for c in NODE_CASES if "_expanded" in c.name]
    assert len(plain) >= 25, f"only {len(plain)} onnx node cases of {CONFORMANCE_OPS}"
    assert len(expanded) >= 10, f"only {len(expanded)} CausalConvWithState expansions"
    for op in CONFORMANCE_OPS:
        assert any(n.op_type == op for c in plain for n in c.model.graph.node), f"no node case holds {op}"
    for op in ("Conv", "ConvTranspose", "Pad"):
        assert any(n.op_type == op for c in SHARED_CASES for n in c.model.graph.node), f"no shared case holds {op}"
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique (they are the test ids)"
    assert len(COMBINATIONS) * len(CASES) >= 1000


@pytest.mark.parametrize("combo", COMBINATIONS, ids=[c[0] for c in COMBINATIONS])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_through_passes(case: Case, combo):
    _label, passes, options = combo
    before = case.model.SerializeToString()
    result = convrewrite.rewrite(case.model, passes=passes, **options)
    out = result.model
    assert case.model.SerializeToString() == before, "the input model was modified"

    onnx.checker.check_model(out, full_check=True)
    assert out.ir_version == case.model.ir_version
    assert list(out.opset_import) == list(case.model.opset_import)
    assert_same_interface(case.model, out)

    assert result.passes == passes
    convs = conv_count(case.model)
    for name in passes:
        records = [r for r in result.records if r.pass_name == name]
        assert len({r.node for r in records}) == len(records) == convs, f"{name}: {len(records)} records for {convs} convolutions"
        for r in records:
            assert r.status in ("rewritten", "skipped")
            assert r.rewritten or r.reason, f"{name} skipped {r.node} without a reason"
    if result.rewritten:
        assert out.graph != case.model.graph, "records say rewritten but the graph is unchanged"
    else:
        assert out.SerializeToString() == before, "nothing recorded as rewritten, yet the model changed"
    if passes == ["to-2d"]:
        assert bool(result.rewritten) == (1 in conv_ranks(case.model)), "to-2d rewrites exactly the cases with a 1-D convolution"

    again = convrewrite.rewrite(out, passes=passes, **options)
    assert not again.rewritten, f"a second run rewrote {[r.key for r in again.rewritten]}"
    assert again.model.SerializeToString() == out.SerializeToString()

    original, error = original_outputs(case.name)
    if case.name in ORT_CANNOT_RUN:
        assert original is None, "onnxruntime now runs this case: drop it from ORT_CANNOT_RUN"
        pytest.skip(f"onnxruntime CPU cannot run the original: {ORT_CANNOT_RUN[case.name]} ({error})")
    assert original is not None, f"onnxruntime CPU cannot run the original case: {error}"
    got = run_outputs(out, case)
    assert list(got) == list(original)
    assert_matches(got, case.outputs, case, "expected")
    assert_matches(got, list(original.values()), case, "original")
