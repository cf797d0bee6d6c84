"""Issue 18 part A: tensor maps in the records, `check --layers`, `--map`, name matching, `--layers --bisect`.

The maps are checked against the real tensors with onnxruntime directly (tests/util.py style, not through
the checker): a rewrite's map applied to the rewritten model's tensors gives the original's, bit for bit
where the rewrite is exact.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from convrewrite.api import rewrite
from convrewrite.checker import bisect, check
from convrewrite.cli_check import check_command
from convrewrite.engine import NotApplicable, Rewritten, Rule, register_rule, rule_names, unregister_rule
from convrewrite.engine.tensor_map import apply_view, compose

from util import MODELS, feeds_for, runnable

CHAIN = "conv1d_chain_ts13"  # 6 x Conv1d -> ReLU, residual Adds, a MaxPool: the lifted 1D chain

# One model per registered rule on which it rewrites; exact: the map gives the original's tensors bit for bit.
RULE_CASES = {
    "to-2d": ("conv1d_chain_ts13", ["to-2d"], True),
    "to-3d": ("rank_conv2d_chain_op13", ["to-3d"], True),
    "to-1d": ("k3_conv1d", ["to-1d"], True),  # tf2onnx Keras Conv1D: wrappers removed, bias Add folded
    "3d-to-2d": ("rank_conv3d_unit_op13", ["3d-to-2d"], True),
    "causal": ("tcn_chomp_ts13", ["causal"], True),
    "dilated": ("tf_s2b_conv2d_static", ["dilated"], True),
    "separable": ("sep_dwsep2d_bn_ts13", ["separable"], False),  # BatchNorm folded: rounding differs
    "channels-as-spatial": ("conv1d_chain_ts13", ["channels-as-spatial"], True),
    "spatial-as-channels": ("k3_conv2d_kinput", ["spatial-as-channels"], False),  # another summation order
}
PIPELINES = [
    ("k3_tcn", ["all", "to-2d"]),  # tf2onnx: bias Adds folded through a Squeeze (the conv's own output changes)
    ("k3_sepconv1d", ["to-1d", "all", "to-2d"]),  # lowered, folded, lifted again: the maps compose
    ("wavenet_ts13", ["all", "to-2d"]),
    ("k3_dwconv1d", ["to-1d"]),  # tf_keras DepthwiseConv1D: the bias Add before the Squeeze
]


def load(name: str) -> onnx.ModelProto:
    return onnx.load(str(MODELS / f"{name}.onnx"))


def tensors(model: onnx.ModelProto, names, feeds) -> dict[str, np.ndarray]:
    """Run a copy of `model` with `names` as extra outputs (typed by onnx shape inference)."""
    import onnxruntime as ort

    m = runnable(model)
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(inferred.graph.value_info) + list(m.graph.output)}
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, types[n], None))
            have.add(n)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
    outs = [o.name for o in sess.get_outputs()]
    return dict(zip(outs, sess.run(None, feeds)))


def assert_map_holds(original: onnx.ModelProto, result, exact: bool) -> int:
    """Every explicit entry of the composed map, applied to the rewritten model's tensor, gives the original's."""
    entries = result.tensor_map()
    assert entries, "the rewrite mapped no tensor"
    computed = {o for n in original.graph.node for o in n.output}
    entries = [e for e in entries if e["original"] in computed]
    feeds = feeds_for(original)
    ref = tensors(original, [e["original"] for e in entries], feeds)
    act = tensors(result.model, [e["rewritten"] for e in entries], feeds)
    for e in entries:
        got = apply_view(act[e["rewritten"]], e["view"])
        want = ref[e["original"]]
        assert got.shape == want.shape, e
        if exact:
            assert got.tobytes() == want.tobytes(), e
        else:
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))
    return len(entries)


def perturbed(model: onnx.ModelProto, conv_index: int, delta: float = 0.5) -> tuple[onnx.ModelProto, str]:
    """A copy with one weight element of the conv_index-th Conv changed; that conv's output name."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    conv = [n for n in m.graph.node if n.op_type == "Conv"][conv_index]
    for i, t in enumerate(m.graph.initializer):
        if t.name == conv.input[1]:
            a = numpy_helper.to_array(t).copy()
            a.flat[0] += delta
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
            return m, conv.output[0]
    raise AssertionError("weight is not an initializer")


def conv_outputs(model: onnx.ModelProto) -> list[str]:
    return [n.output[0] for n in model.graph.node if n.op_type == "Conv"]


# ------------------------------------------------------------------ the map survives every pass


def test_every_registered_rule_has_a_case():
    assert set(rule_names()) <= set(RULE_CASES), "a new rule needs a tensor-map case here"


@pytest.mark.parametrize("rule", sorted(RULE_CASES))
def test_each_rule_maps_its_conv_outputs(rule):
    name, passes, exact = RULE_CASES[rule]
    original = load(name)
    result = rewrite(original, passes, assume_finite=True)
    done = [r for r in result.records if r.rewritten]
    assert done, f"{rule} rewrote nothing on {name}"
    if rule == "separable":  # a pair: the depthwise output may hold another value now (its bias moved)
        assert any(r.tensor_map for r in done)
    else:
        assert all(r.tensor_map for r in done), [r.key for r in done if not r.tensor_map]
    assert assert_map_holds(original, result, exact) >= 1
    data = json.loads(json.dumps(result.to_dict(), default=str))  # kept in --report JSON
    assert all("tensor_map" in r for r in data["records"]) and data["tensor_map"] == result.tensor_map()


@pytest.mark.parametrize("name,passes", PIPELINES)
def test_maps_compose_across_a_pipeline(name, passes):
    original = load(name)
    result = rewrite(original, passes, assume_finite=True)
    assert result.changed
    assert assert_map_holds(original, result, exact=True) >= 1


@pytest.mark.parametrize("name,passes", PIPELINES + [(m, p) for m, p, _ in RULE_CASES.values()])
def test_no_layer_diverges_after_an_equivalent_rewrite(name, passes):
    """Survivors paired by name are only those no pass changed: a folded bias makes the conv's output another value."""
    original = load(name)
    result = rewrite(original, passes, assume_finite=True)
    report = check(original, result.model, layers=True, tensor_map=result.tensor_map(original), draws="normal",
                   finite=True)
    assert report.ok and report.layers is not None and report.layers.pairs
    assert report.layers.first_divergent is None, report.layers.first_divergent


def test_lift_maps_the_whole_region():
    original = load(CHAIN)
    result = rewrite(original, ["to-2d"])
    mapped = {e["original"]: e for e in result.tensor_map()}
    for out in conv_outputs(original):
        assert mapped[out]["view"] == [{"op": "squeeze", "axes": [2]}]
    assert len(result.rewritten) == 6


def test_compose_renames_and_views():
    steps = [([{"original": "a", "rewritten": "a", "view": [{"op": "squeeze", "axes": [2]}]}], []),
             ([{"original": "a", "rewritten": "a2", "view": [{"op": "transpose", "perm": [0, 2, 1, 3]}]},
               {"original": "b", "rewritten": "b", "view": []}], ["c"])]
    entries, gone = compose(steps)
    by = {e["original"]: e for e in entries}
    assert by["a"] == {"original": "a", "rewritten": "a2",
                       "view": [{"op": "transpose", "perm": [0, 2, 1, 3]}, {"op": "squeeze", "axes": [2]}]}
    assert by["b"]["rewritten"] == "b" and gone == {"c"}


# ------------------------------------------------------------------ check --layers


def test_planted_fault_named_at_its_layer():
    original = load(CHAIN)
    result = rewrite(original, ["to-2d"])
    bad, _ = perturbed(result.model, 2)  # conv 3 of 6, in the rewritten (lifted) model
    report = check(original, bad, layers=True, tensor_map=result.tensor_map(original), draws="normal")
    assert not report.ok
    layers = report.layers
    assert layers.mode == "map" and layers.trial == "normal" and layers.trial_label == "normal (seed 0)"
    third = conv_outputs(original)[2]
    first = layers.first_divergent
    assert first is not None and first.original == third
    before = layers.pairs[:[p.original for p in layers.pairs].index(third)]
    assert before and all(p.max_abs == 0 and not p.diverges for p in before)
    for out in conv_outputs(original)[:2]:
        assert out in [p.original for p in before]
    data = report.to_dict()["layers"]
    assert data["first_divergent"] == {"original": third, "candidate": first.candidate}
    assert {"original", "candidate", "view", "shape", "dtype", "max_abs", "max_rel", "beyond", "atol", "rtol",
            "diverges"} <= set(data["pairs"][0])
    assert 0 < data["pairs"][[p["original"] for p in data["pairs"]].index(third)]["beyond"] <= 1


def test_equivalent_rewrite_has_no_divergent_layer():
    original = load(CHAIN)
    result = rewrite(original, ["to-2d"])
    report = check(original, result.model, layers=True, tensor_map=result.tensor_map(original), draws="normal")
    assert report.ok and report.layers.first_divergent is None
    assert len(report.layers.pairs) >= 12 and all(p.max_abs == 0 for p in report.layers.pairs)
    assert report.to_dict()["layers"]["first_divergent"] is None


def test_layers_do_not_change_the_output_verdict():
    original = load(CHAIN)
    result = rewrite(original, ["to-2d"])
    plain = check(original, result.model, draws="normal")
    layered = check(original, result.model, layers=True, tensor_map=result.tensor_map(original), draws="normal")
    assert [r.to_dict() for r in plain.results] == [r.to_dict() for r in layered.results]
    assert "layers" not in plain.to_dict()


def test_names_match_two_exports_of_one_network():
    a, b = load("layers_twin_ts13"), load("layers_twin_ts17")
    report = check(a, b, layers=True, draws="normal")
    layers = report.layers
    assert report.ok and layers.mode == "names"
    assert len(layers.pairs) == len([n for n in a.graph.node if n.op_type != "Constant"])
    assert all(p.candidate == p.original and p.max_abs == 0 for p in layers.pairs)
    bad, out = perturbed(b, 1)
    layers = check(a, bad, layers=True, draws="normal").layers
    assert layers.first_divergent.original == out
    assert all(p.max_abs == 0 for p in layers.pairs[:2])


def test_names_mode_pairs_nothing_renamed_or_reshaped():
    """Lifted tensors keep their names but not their shapes: without the map they are not paired."""
    original = load(CHAIN)
    lifted = rewrite(original, ["to-2d"]).model
    layers = check(original, lifted, layers=True, draws="normal").layers
    assert layers.mode == "names"
    assert not set(conv_outputs(original)) & {p.original for p in layers.pairs}


def test_map_file_for_files_rewritten_earlier(tmp_path):
    from convrewrite.cli import main

    src = MODELS / f"{CHAIN}.onnx"
    out, rep = tmp_path / "lifted.onnx", tmp_path / "report.json"
    res = CliRunner().invoke(main, ["rewrite", str(src), "-o", str(out), "--to-2d", "--report", str(rep), "-q"])
    assert res.exit_code == 0, res.output
    bad, _ = perturbed(onnx.load(str(out)), 2)
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    res = CliRunner().invoke(check_command, [str(src), str(tmp_path / "bad.onnx"), "--layers", "--map", str(rep),
                                             "--draws", "normal", "--json", "-"])
    assert res.exit_code == 1, res.output
    layers = json.loads(res.output)["layers"]
    third = conv_outputs(load(CHAIN))[2]
    assert layers["mode"] == "map" and layers["first_divergent"]["original"] == third
    text = CliRunner().invoke(check_command, [str(src), str(tmp_path / "bad.onnx"), "--layers", "--map", str(rep),
                                              "--draws", "normal"]).output
    assert f"first divergent layer: {third}" in text and "DIVERGES" in text


def test_map_needs_layers_and_a_report(tmp_path):
    src = str(MODELS / f"{CHAIN}.onnx")
    res = CliRunner().invoke(check_command, [src, src, "--map", src])
    assert res.exit_code == 2 and "--map needs --layers" in res.output
    junk = tmp_path / "x.json"
    junk.write_text("{}")
    res = CliRunner().invoke(check_command, [src, src, "--layers", "--map", str(junk)])
    assert res.exit_code == 2 and "not a `convrewrite rewrite --report` file" in res.output


# ------------------------------------------------------------------ --layers --bisect


class _Broken(Rule):
    """A faulty rule for the test: it changes one weight of the conv it is pointed at."""

    name = "test-broken"
    target = ""

    def match(self, run, conv):
        if conv.node.output[0] != self.target:
            raise NotApplicable("not the target")
        return None

    def rewrite(self, run, conv, match):
        w = run.view.initializer(conv.node.input[1])
        a = numpy_helper.to_array(w).copy()
        a.flat[0] += 0.5
        w.CopyFrom(numpy_helper.from_array(a, w.name))
        return Rewritten({"broken": True})


@pytest.fixture
def broken():
    original = load(CHAIN)
    _Broken.target = conv_outputs(original)[2]
    register_rule(_Broken)
    try:
        yield original
    finally:
        unregister_rule(_Broken.name)


def test_layers_bisect_names_the_rewrite_and_the_layer(broken):
    original = broken

    def rewrite_fn(only=None):
        return rewrite(original, ["test-broken", "to-2d"], only=only)

    found = bisect(original, rewrite_fn, layers=True, draws="normal")
    assert len(found.culprits) == 1 and found.culprits[0].startswith("test-broken:")
    assert found.report.layers.first_divergent.original == _Broken.target
    assert f"first layer where it shows: {_Broken.target}" in found.describe()


def test_rewrite_check_layers_bisect_cli(broken, tmp_path):
    from convrewrite.cli import main

    res = CliRunner().invoke(main, ["rewrite", str(MODELS / f"{CHAIN}.onnx"), "-o", str(tmp_path / "o.onnx"),
                                    "--to-2d", "--pass", "test-broken", "--check", "--layers", "--bisect",
                                    "--draws", "normal"])
    assert res.exit_code == 1
    assert "test-broken" in res.output and f"first layer where it shows: {_Broken.target}" in res.output


def test_many_tensors_are_compared_in_groups_within_the_budget():
    from convrewrite.checker import compare_layers

    original = load(CHAIN)
    result = rewrite(original, ["to-2d"])
    bad, _ = perturbed(result.model, 2)
    feed = feeds_for(original)
    entries = result.tensor_map(original)
    whole = compare_layers(original, bad, feed, entries=entries)
    parts = compare_layers(original, bad, feed, entries=entries, budget=3 * 16 * 64 * 4)  # a few tensors per run
    assert any("compared in" in n for n in parts.notes) and not whole.notes
    assert [p.to_dict() for p in parts.pairs] == [p.to_dict() for p in whole.pairs]
    assert whole.first_divergent.original == conv_outputs(original)[2]
    assert [o.name for o in original.graph.output] == ["y"]  # the caller's model is left as it was
