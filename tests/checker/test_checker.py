"""The equivalence checker: comparison numbers, inputs, providers, planted faults, bisect."""

from __future__ import annotations

import glob
import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from convrewrite import runtime
from convrewrite.errors import ConvRewriteError, ModelLoadError
from convrewrite.testing import assert_equivalent
from convrewrite.checker import (
    BisectResult,
    CheckInputError,
    CheckReport,
    bisect,
    check,
    compare_arrays,
    default_tolerance,
    make_inputs,
    render_text,
)

F = TensorProto.FLOAT
RNG = np.random.default_rng(1234)
W = RNG.standard_normal((4, 3, 3)).astype(np.float32)
B = RNG.standard_normal(4).astype(np.float32)
W_OTHER = RNG.standard_normal((4, 3, 3)).astype(np.float32)
from util import SAMPLES, build_model  # noqa: E402  (tests/data: copied from ../shared)


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def conv1d(w=W, b=B, pads=(1, 1)):
    inits = {"w": w}
    ins = ["x", "w"]
    if b is not None:
        inits["b"] = b
        ins.append("b")
    return build_model([node("Conv", ins, ["y"], pads=list(pads))], [("x", F, [1, 3, 16])], [("y", F, [1, 4, 16])], inits)


def lifted(unsqueeze_axis=2, squeeze_axis=2, out_shape=(1, 4, 16)):
    """1D conv done as 2D: Unsqueeze -> Conv2D (kernel 1x3 along the last axis) -> Squeeze."""
    inits = {
        "ax_u": np.array([unsqueeze_axis], np.int64),
        "ax_s": np.array([squeeze_axis], np.int64),
        "w4": W.reshape(4, 3, 1, 3),
        "b": B,
    }
    nodes = [
        node("Unsqueeze", ["x", "ax_u"], ["x4"]),
        node("Conv", ["x4", "w4", "b"], ["y4"], pads=[0, 1, 0, 1]),
        node("Squeeze", ["y4", "ax_s"], ["y"]),
    ]
    return build_model(nodes, [("x", F, [1, 3, 16])], [("y", F, list(out_shape))], inits)


def two_outputs(order=("y1", "y2"), swap_values=False):
    wa, wb = (W_OTHER, W) if swap_values else (W, W_OTHER)
    nodes = [
        node("Conv", ["x", "wa", "b"], ["y1"], pads=[1, 1]),
        node("Conv", ["x", "wb", "b"], ["y2"], pads=[1, 1]),
    ]
    return build_model(
        nodes, [("x", F, [1, 3, 16])], [(n, F, [1, 4, 16]) for n in order], {"wa": wa, "wb": wb, "b": B}
    )


def weight_changed():
    w = W.copy()
    w[1, 2, 0] += np.float32(1e-2)
    return conv1d(w=w)


FAULTS = {
    "weight +1e-2": (conv1d, weight_changed, ["y"]),
    "pads shifted": (conv1d, lambda: conv1d(pads=(0, 2)), ["y"]),
    "bias dropped": (conv1d, lambda: conv1d(b=None), ["y"]),
    "lift wrong layout": (conv1d, lambda: lifted(unsqueeze_axis=3, squeeze_axis=3), ["y"]),
    "squeeze wrong axis": (conv1d, lambda: lifted(squeeze_axis=0, out_shape=(4, 1, 16)), ["y"]),
    "outputs swapped in order": (two_outputs, lambda: two_outputs(order=("y2", "y1")), ["y1", "y2"]),
    "output values swapped": (two_outputs, lambda: two_outputs(swap_values=True), ["y1", "y2"]),
}


def ort_run(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


# ------------------------------------------------------------------ tolerance


def test_default_tolerance_by_dtype():
    assert default_tolerance(np.float32) == (1e-5, 1e-4)
    assert default_tolerance("float16") == (1e-3, 1e-2)
    assert default_tolerance("bfloat16") == (1e-3, 1e-2)
    assert default_tolerance(np.float64) == (1e-8, 1e-7)
    assert default_tolerance(TensorProto.FLOAT) == (1e-5, 1e-4)
    for dtype in (np.int64, np.int32, np.uint8, np.bool_, TensorProto.INT64):
        assert default_tolerance(dtype) == (0.0, 0.0)


# ----------------------------------------------------------------- comparison


def numpy_stats(ref, act, atol, rtol):
    """The statistics written out with plain numpy, independently of compare_arrays."""
    r, a = ref.astype(np.float64), act.astype(np.float64)
    err = np.abs(a - r)
    tiny = np.finfo(ref.dtype).tiny
    rel = err / np.maximum(np.abs(r), tiny)
    allowed = atol + rtol * np.abs(r)
    beyond = err > allowed
    with np.errstate(divide="ignore", invalid="ignore"):
        need_rtol = np.where(err > atol, (err - atol) / np.abs(r), 0.0)
    return {
        "max_abs": err.max(),
        "max_rel": rel.max(),
        "mean_abs": err.mean(),
        "beyond_count": int(beyond.sum()),
        "min_atol": max(0.0, (err - rtol * np.abs(r)).max()),
        "min_rtol": max(0.0, need_rtol.max()),
        "worst": np.unravel_index(np.argmax(np.where(beyond, err - allowed, -np.inf)), ref.shape)
        if beyond.any()
        else np.unravel_index(np.argmax(err), ref.shape),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compare_numbers_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal((3, 5, 7)).astype(np.float32)
    ref[0, 0, :3] = 0.0  # ref == 0: relative error divides by float32's tiny
    act = (ref + rng.standard_normal(ref.shape).astype(np.float32) * 1e-4).astype(np.float32)
    atol, rtol = 1e-5, 1e-4
    stats = compare_arrays(ref, act, atol, rtol)
    want = numpy_stats(ref, act, atol, rtol)
    assert stats.max_abs == want["max_abs"]
    assert stats.max_rel == want["max_rel"]
    assert stats.mean_abs == pytest.approx(want["mean_abs"], rel=1e-12)
    assert stats.beyond_count == want["beyond_count"] > 0
    assert stats.beyond_share == want["beyond_count"] / ref.size
    assert stats.min_atol == want["min_atol"]
    assert stats.min_rtol == want["min_rtol"]  # inf: a zero reference element differs beyond atol
    assert stats.worst_index == tuple(int(i) for i in want["worst"])
    assert stats.worst_ref == ref[stats.worst_index].item()
    assert stats.worst_actual == act[stats.worst_index].item()
    assert not stats.ok and stats.status == "failed" and not stats.bit_exact


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(1, 40), elements=st.floats(-100, 100, width=32)),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 1e-4, 1e-2]),
)
def test_min_atol_is_the_boundary(ref, seed, rtol):
    noise = np.random.default_rng(seed).standard_normal(ref.shape).astype(np.float32) * 1e-3
    act = (ref + noise).astype(np.float32)
    stats = compare_arrays(ref, act, atol=0.0, rtol=rtol)
    assume_positive = stats.min_atol > 0
    # With the reported minimum (up to float64 rounding) every element passes...
    assert compare_arrays(ref, act, atol=stats.min_atol * (1 + 1e-9) + 1e-300, rtol=rtol).ok
    # ...and with clearly less, something fails.
    if assume_positive:
        assert not compare_arrays(ref, act, atol=stats.min_atol * (1 - 1e-6), rtol=rtol).ok


def test_nan_inf_semantics():
    ref = np.array([np.nan, np.inf, -np.inf, 1.0, 2.0], np.float32)
    same = ref.copy()
    s = compare_arrays(ref, same)
    assert s.ok and s.bit_exact and s.max_abs == 0
    act = np.array([np.nan, np.inf, np.inf, 1.0, 2.0], np.float32)  # -inf -> +inf
    s = compare_arrays(ref, act)
    assert not s.ok and s.beyond_count == 1 and s.mismatched_special == 1
    assert s.worst_index == (2,) and math.isinf(s.max_abs) and math.isinf(s.min_atol)
    act = np.array([np.nan, np.inf, -np.inf, np.nan, 2.0], np.float32)  # NaN vs number
    s = compare_arrays(ref, act)
    assert not s.ok and s.worst_index == (3,)
    act = np.array([1.0, np.inf, -np.inf, 1.0, 2.0], np.float32)  # number vs NaN reference
    assert not compare_arrays(ref, act).ok


def test_integers_and_bool_are_exact():
    ref = np.array([1, 2, 3], np.int64)
    assert compare_arrays(ref, ref.copy()).bit_exact
    s = compare_arrays(ref, np.array([1, 2, 4], np.int64))
    assert not s.ok and s.worst_index == (2,) and s.min_atol == 1
    big = np.array([2**60], np.int64)
    assert not compare_arrays(big, big + 1).ok  # float64 cannot tell them apart; exactness still can
    b = np.array([True, False])
    assert not compare_arrays(b, ~b).ok
    assert compare_arrays(np.array([1, 2]), np.array([1, 3]), atol=1).ok


def test_shape_dtype_and_signed_zero():
    a = np.zeros((2, 3), np.float32)
    assert compare_arrays(a, a.reshape(3, 2)).status == "shape mismatch"
    assert compare_arrays(a, a.astype(np.float64)).status == "dtype mismatch"
    assert compare_arrays(a, a.astype(np.float64), check_dtype=False).ok
    s = compare_arrays(a, -a)  # -0.0 equals 0.0 but is not the same bits
    assert s.ok and s.status == "passed" and not s.bit_exact
    empty = np.zeros((0, 4), np.float32)
    assert compare_arrays(empty, empty).ok


# --------------------------------------------------------------------- inputs


def dynamic_model():
    nodes = [node("Add", ["a", "b"], ["s"]), node("Cast", ["n"], ["nf"], to=F), node("Cast", ["m"], ["mf"], to=F)]
    inputs = [
        ("a", F, ["N", 3, "T"]),
        ("b", F, ["N", 3, "T"]),
        ("n", TensorProto.INT64, [2, None]),
        ("m", TensorProto.BOOL, [4]),
    ]
    outputs = [("s", F, ["N", 3, "T"]), ("nf", F, [2, None]), ("mf", F, [4])]
    return build_model(nodes, inputs, outputs)


def test_make_inputs_seeded_shapes_and_dtypes():
    model = dynamic_model()
    a = make_inputs(model, seed=0)
    assert a["a"].shape == a["b"].shape == (2, 3, 16)  # batch 2 (samples can mix), lengths 16, shared symbols equal
    assert a["n"].shape == (2, 16) and a["n"].dtype == np.int64 and 0 <= a["n"].min() and a["n"].max() <= 3
    assert a["m"].dtype == np.bool_
    again = make_inputs(model, seed=0)
    assert all(np.array_equal(a[k], again[k]) for k in a)
    other = make_inputs(model, seed=1)
    assert not np.array_equal(a["a"], other["a"])
    shaped = make_inputs(model, shapes={"a": (2, 3, 5)}, ranges={"b": (-1, 1)})
    assert shaped["a"].shape == shaped["b"].shape == (2, 3, 5)  # the symbols bound by --shape a=... reach b
    assert -1 <= shaped["b"].min() and shaped["b"].max() <= 1


@pytest.mark.parametrize(
    "shapes",
    [{"a": (1, 3)}, {"a": (1, 4, 5)}, {"zz": (1,)}, {"a": (1, 3, 5), "b": (1, 3, 6)}],
    ids=["rank", "fixed dim", "unknown input", "symbol conflict"],
)
def test_bad_shapes_are_usage_errors(shapes):
    with pytest.raises(CheckInputError):
        make_inputs(dynamic_model(), shapes=shapes)


def test_initializer_inputs_are_not_fed():
    # Old IR: weights listed as graph inputs too; the checker must not feed them.
    model = conv1d()
    model.graph.input.append(helper.make_tensor_value_info("w", F, [4, 3, 3]))
    model.graph.input.append(helper.make_tensor_value_info("b", F, [4]))
    model.ir_version = 3
    model.opset_import[0].version = 9
    assert list(make_inputs(model)) == ["x"]
    report = check(model, model, providers="cpu")
    assert report.ok and report.bit_exact
    assert [i["name"] for i in report.inputs] == ["x"]


# -------------------------------------------------------------- planted faults


def test_identical_models_are_bit_exact():
    report = check(conv1d(), conv1d(), providers="cpu")
    assert report.ok and report.bit_exact
    assert report.output("y", "cpu").status == "bit-exact"
    assert "bit-exact" in report.summary


def test_correct_lift_passes():
    report = check(conv1d(), lifted(), providers="cpu", trials=3)
    assert report.ok, render_text(report)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_planted_faults_are_caught(fault):
    make_original, make_candidate, outputs = FAULTS[fault]
    report = check(make_original(), make_candidate(), providers="cpu")
    assert not report.ok
    for name in outputs:
        assert repr(name) in report.summary or name in report.summary
    text = render_text(report)
    assert "NOT EQUIVALENT" in text


def test_fault_details():
    report = check(conv1d(), lifted(squeeze_axis=0, out_shape=(4, 1, 16)), providers="cpu")
    assert report.problems == ["output 'y' dim 0: fixed to 4 in the candidate, 1 in the original",
                               "output 'y' dim 1: fixed to 1 in the candidate, 4 in the original"]
    assert not report.ok and report.output("y") is None  # nothing ran: the interface is compared first
    report = check(conv1d(), lifted(squeeze_axis=0, out_shape=(4, 1, 16)), providers="cpu", ignore_interface=True)
    assert report.output("y").status == "shape mismatch" and report.warnings
    report = check(two_outputs(), two_outputs(order=("y2", "y1")), providers="cpu")
    assert report.problems and "output order changed" in report.problems[0]
    report = check(two_outputs(), two_outputs(swap_values=True), providers="cpu")
    assert report.output("y1").status == report.output("y2").status == "failed"
    report = check(conv1d(), weight_changed(), providers="cpu")
    row = report.output("y")
    assert row.stats.worst_index[1] == 1  # the changed weight feeds output channel 1 only


def test_report_numbers_equal_numpy_on_the_same_arrays():
    original, candidate = conv1d(), weight_changed()
    report = check(original, candidate, providers="cpu", seed=5)
    worst = next(t for t in report.trials if t["label"] == report.output("y").worst_trial)
    feed = make_inputs(original, seed=worst["seed"], kind=worst["kind"])
    ref = ort_run(original, feed)[0]
    act = ort_run(candidate, feed)[0]
    stats = report.output("y").stats
    atol, rtol = stats.atol, stats.rtol  # atol grows with the trial's input magnitude (the wide draw)
    assert (report.output("y").atol, rtol) == default_tolerance(np.float32) and atol >= report.output("y").atol
    want = numpy_stats(ref, act, atol, rtol)
    assert stats.max_abs == want["max_abs"]
    assert stats.max_rel == want["max_rel"]
    assert stats.mean_abs == pytest.approx(want["mean_abs"], rel=1e-12)
    assert stats.beyond_count == want["beyond_count"]
    assert stats.min_atol == want["min_atol"]
    assert stats.min_rtol == want["min_rtol"]
    # The reported minimum tolerance indeed passes the same check.
    scale = atol / report.output("y").atol
    again = check(original, candidate, providers="cpu", seed=5, atol=stats.min_atol / scale * (1 + 1e-9), rtol=rtol)
    assert worst["label"] not in again.output("y").failed_trial_labels  # that trial now passes


def test_tolerances_per_output_and_global():
    original, candidate = two_outputs(), two_outputs(swap_values=True)
    report = check(original, candidate, providers="cpu", atol={"": 1e-4, "y1": 1e6}, finite=True)
    assert report.output("y1").ok and report.output("y1").atol == 1e6
    assert not report.output("y2").ok and report.output("y2").atol == 1e-4
    assert report.output("y2").rtol == 1e-4
    with pytest.raises(CheckInputError, match="no output named 'nope'"):
        check(original, candidate, atol={"nope": 1.0})


def test_outputs_matched_by_position_when_renamed():
    renamed = conv1d()
    renamed.graph.node[0].output[0] = "z"
    renamed.graph.output[0].name = "z"
    report = check(conv1d(), renamed, providers="cpu")
    assert not report.ok and report.problems == ["the candidate has no output 'y'", "the candidate has an extra output 'z'"]
    report = check(conv1d(), renamed, providers="cpu", ignore_interface=True)
    assert report.ok
    assert report.output("y").candidate_output == "z"
    assert any("same position" in w for w in report.warnings)


# ------------------------------------------------------------------ providers


def test_cuda_without_gpu_is_unavailable_never_passed():
    runs, _ = runtime.probe_provider("CUDAExecutionProvider", runtime.DEFAULT_CUDA_OPTIONS)
    if runs:
        pytest.skip("a CUDA device is present")
    report = check(conv1d(), conv1d(), providers="cpu,cuda")
    cuda = next(p for p in report.providers if p.short == "cuda")
    assert cuda.status == "unavailable" and "fell back to CPUExecutionProvider" in cuda.reason
    assert report.ok
    assert all(r.status != "passed" and r.status != "bit-exact" for r in report.results if r.provider == cuda.name)
    assert "unavailable" in report.summary
    required = check(conv1d(), conv1d(), providers="cpu", require="cuda")
    assert not required.ok and "required provider cuda" in required.summary
    only_cuda = check(conv1d(), conv1d(), providers="CUDAExecutionProvider")
    assert not only_cuda.ok and "no provider ran" in only_cuda.summary
    trt = check(conv1d(), conv1d(), providers="cpu,tensorrt")
    assert trt.ok and any(p.short == "tensorrt" and p.status == "unavailable" for p in trt.providers)


def test_unknown_provider_and_opt_level_are_usage_errors():
    with pytest.raises(CheckInputError):
        check(conv1d(), conv1d(), providers="quantum")
    with pytest.raises(CheckInputError):
        check(conv1d(), conv1d(), ort_opt="max")


def test_sessions_built_once_per_model_and_provider(monkeypatch):
    created = []
    real = ort.InferenceSession

    def counting(source, sess_options, **kwargs):
        created.append((kwargs.get("providers"), sess_options.graph_optimization_level))
        return real(source, sess_options, **kwargs)

    runtime.probe_provider("CPUExecutionProvider")
    monkeypatch.setattr(ort, "InferenceSession", counting)
    report = check(conv1d(), conv1d(), providers="cpu", trials=4, ort_opt="all")
    assert report.ok and len(report.trials) == 6  # 4 normal, 1 wide, 1 special-values
    assert len(created) == 2
    assert all(level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL for _, level in created)
    created.clear()
    check(conv1d(), conv1d(), providers="cpu")
    assert [level for _, level in created] == [ort.GraphOptimizationLevel.ORT_DISABLE_ALL] * 2  # pinned by default


def test_big_in_memory_models_go_to_onnxruntime_by_path(monkeypatch):
    import convrewrite.checker.sessions as verify

    seen = []
    real = ort.InferenceSession

    def recording(source, *args, **kwargs):
        seen.append(source)
        return real(source, *args, **kwargs)

    def no_serialize(model):
        raise AssertionError("a model past the limit must not be serialized whole")

    runtime.probe_provider("CPUExecutionProvider")
    monkeypatch.setattr(ort, "InferenceSession", recording)
    monkeypatch.setattr(verify, "SERIALIZE_LIMIT", 100)  # conv1d's weights alone are past it
    monkeypatch.setattr(verify.cio, "serialized_chunks", no_serialize)
    report = check(conv1d(), weight_changed(), providers="cpu")
    assert not report.ok and report.output("y").status == "failed"
    assert len(seen) == 2 and all(isinstance(s, str) and s.endswith("model.onnx") for s in seen)
    assert not any(os.path.exists(s) for s in seen)  # temporary copies removed afterwards


def test_session_error_is_a_failed_result_not_a_traceback():
    # A domain onnxruntime knows (so loading accepts it) but an operator it has no kernel for.
    bad = conv1d()
    bad.graph.node[0].domain = "com.microsoft"
    bad.graph.node[0].op_type = "NoSuchConv"
    bad.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    report = check(conv1d(), bad, providers="cpu")
    assert not report.ok
    row = report.results[0]
    assert row.status == "error" and "candidate" in row.message and "onnxruntime" in row.message
    assert "\n" not in row.message


def test_new_ir_version_is_lowered_with_a_note():
    model = conv1d()
    model.ir_version = runtime.max_ir_version() + 1
    report = check(model, conv1d(), providers="cpu")
    assert report.ok and any("IR version" in n for n in report.notes)
    assert model.ir_version == runtime.max_ir_version() + 1  # the caller's model is untouched


def test_external_data_models_go_by_path(tmp_path, monkeypatch):
    model = conv1d()
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    seen = []
    real = ort.InferenceSession

    def recording(source, *args, **kwargs):
        seen.append(source)
        return real(source, *args, **kwargs)

    runtime.probe_provider("CPUExecutionProvider")
    monkeypatch.setattr(ort, "InferenceSession", recording)
    assert check(path, conv1d(), providers="cpu").bit_exact
    assert seen[0] == str(path)
    # A newer IR than onnxruntime accepts: a lowered copy is saved (with external data) to a temp folder.
    model.ir_version = runtime.max_ir_version() + 1
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    seen.clear()
    assert check(path, conv1d(), providers="cpu").bit_exact
    assert isinstance(seen[0], str) and seen[0] != str(path) and not os.path.exists(seen[0])


# --------------------------------------------------------------- user inputs


def test_npz_inputs_extra_keys_ignored_and_missing_named(tmp_path):
    feed = make_inputs(conv1d(), seed=3)
    path = tmp_path / "in.npz"
    np.savez(path, x=feed["x"], y=np.zeros(3), unrelated=np.ones(2))
    report = check(conv1d(), weight_changed(), inputs=path, providers="cpu")
    assert not report.ok and report.inputs[0]["source"].startswith("from ")
    np.savez(path, other=feed["x"])
    with pytest.raises(CheckInputError, match="no array for input 'x'"):
        check(conv1d(), conv1d(), inputs=path)
    np.savez(path, x=feed["x"].astype(np.float64))
    with pytest.raises(CheckInputError, match="float64"):
        check(conv1d(), conv1d(), inputs=path)
    with pytest.raises(ConvRewriteError, match="no such file"):
        check(conv1d(), conv1d(), inputs=tmp_path / "missing.npz")


def test_pickled_npz_is_refused_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckInputError, match="pickled"):
        check(conv1d(), conv1d(), inputs=path)
    raw = tmp_path / "raw.npz"
    import pickle

    raw.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckInputError, match="pickled"):
        check(conv1d(), conv1d(), inputs=raw)


def write_pb(folder: Path, prefix: str, arrays, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (arr, name) in enumerate(zip(arrays, names)):
        (folder / f"{prefix}_{i}.pb").write_bytes(numpy_helper.from_array(arr, name).SerializeToString())


def test_pb_folder_by_name_by_position_and_data_sets(tmp_path):
    model = conv1d()
    sets = [make_inputs(model, seed=s)["x"] for s in range(2)]
    for i, x in enumerate(sets):
        write_pb(tmp_path / "named" / f"test_data_set_{i}", "input", [x], ["x"])
        write_pb(tmp_path / "named" / f"test_data_set_{i}", "output", ort_run(model, {"x": x}), ["y"])
    report = check(model, weight_changed(), inputs=tmp_path / "named", providers="cpu")
    assert not report.ok and [t["label"] for t in report.trials] == ["test_data_set_0", "test_data_set_1"]
    assert check(model, expected=tmp_path / "named", providers="cpu").bit_exact
    write_pb(tmp_path / "flat", "input", [sets[0]], [""])
    report = check(model, model, inputs=tmp_path / "flat", providers="cpu")
    assert report.ok and len(report.trials) == 1
    with pytest.raises(CheckInputError, match="no input_N.pb"):
        check(model, model, inputs=tmp_path)


@pytest.mark.parametrize("onnx_path", sorted(glob.glob(str(SAMPLES / "*.onnx"))), ids=os.path.basename)
def test_exporter_samples_match_their_framework(onnx_path):
    # Framework vs onnxruntime differs up to ~1.1e-6 (README); default float32 tolerance holds.
    report = check(onnx_path, expected=onnx_path[:-5] + ".npz", providers="cpu")
    assert report.ok, render_text(report)
    assert report.mode == "expected" and report.results


def test_expected_without_values_for_an_output(tmp_path):
    model = conv1d()
    feed = make_inputs(model)
    path = tmp_path / "io.npz"
    np.savez(path, x=feed["x"])
    with pytest.raises(CheckInputError, match="no array named after an output"):
        check(model, expected=path)
    np.savez(path, x=feed["x"], y=ort_run(model, feed)[0] + 1)
    report = check(model, expected=path, providers="cpu")
    assert not report.ok and report.output("y").status == "failed"


# --------------------------------------------------------------------- report


def test_json_is_strict_and_complete():
    report = check(conv1d(), weight_changed(), providers="cpu,cuda", trials=2)
    data = json.loads(report.to_json())
    assert data["schema"] == "convrewrite.check/2" and data["ok"] is False and data["exit_code"] == 1
    assert data["verdict"] == "not equivalent"
    row = next(r for r in data["results"] if r["output"] == "y")
    assert row["status"] == "failed" and row["stats"]["beyond_count"] > 0
    assert len(row["stats"]["worst_index"]) == 3 and row["trials"] == 4
    assert {p["short"] for p in data["providers"]} >= {"cpu", "cuda"}
    assert data["inputs"][0] == {"name": "x", "dtype": "float32", "shape": [1, 3, 16],
                                 "source": "normal / wide uniform +-1000 / special values"}
    assert [(t["kind"], t["seed"]) for t in data["trials"]] == [("normal", 0), ("normal", 1), ("wide", 2), ("special", 3)]
    nan_report = check(conv1d(), conv1d(b=np.full(4, np.nan, np.float32)), providers="cpu")
    data = json.loads(nan_report.to_json())  # inf written as a string, not a bare Infinity
    assert data["results"][0]["stats"]["max_abs"] == "inf"


def test_text_report_table():
    text = render_text(check(conv1d(), weight_changed(), providers="cpu"))
    lines = text.splitlines()
    assert lines[1].split() == ["provider", "output", "status", "max", "abs", "max", "rel", "beyond", "tol", "verdict"]
    assert lines[2].split()[:3] == ["cpu", "y", "failed"] and lines[2].split()[-1] == "FAIL"
    assert "worst element" in text and "would pass with atol >=" in text
    assert "x: float32 [1x3x16] normal / wide uniform" in text
    assert "trials: normal (seed 0), wide (seed 1), special values (seed 2)" in text
    assert lines[-1].startswith("NOT EQUIVALENT")


def test_assert_equivalent():
    report = assert_equivalent(conv1d(), lifted(), providers="cpu")
    assert isinstance(report, CheckReport) and report.ok
    with pytest.raises(AssertionError) as info:
        assert_equivalent(conv1d(), conv1d(b=None), providers="cpu")
    assert "NOT EQUIVALENT" in str(info.value) and "worst element" in str(info.value)


def test_check_usage_errors():
    with pytest.raises(CheckInputError):
        check(conv1d())
    with pytest.raises(CheckInputError):
        check(conv1d(), conv1d(), expected={"y": np.zeros(1)})
    with pytest.raises(CheckInputError):
        check(conv1d(), conv1d(), trials=0)
    with pytest.raises(ModelLoadError):
        check("/nonexistent/model.onnx", conv1d())
    with pytest.raises(ConvRewriteError):
        check(conv1d(), conv1d(), ranges={"x": (1, -1)})


# --------------------------------------------------------------------- bisect


class FakeRewrite:
    """rewrite_fn for bisect: a chain of 8 Adds, one per key; faulty keys change their constant."""

    KEYS = [f"conv{i}" for i in range(8)]

    def __init__(self, faulty=(), together=()):
        self.faulty = set(faulty)
        self.together = set(together)
        self.calls = 0

    def __call__(self, only=None):
        self.calls += 1
        only = set(self.KEYS) if only is None else set(only)
        nodes, inits, prev = [], {}, "x"
        for i, key in enumerate(self.KEYS):
            value = 1.0
            if key in only and key in self.faulty:
                value += 1e-2
            if self.together and self.together <= only and key == min(self.together):
                value += 1e-2  # breaks only when all of `together` are rewritten
            inits[f"c{i}"] = np.array([value], np.float32)
            nodes.append(node("Mul", [prev, f"c{i}"], [f"t{i}"]))
            prev = f"t{i}"
        nodes.append(node("Identity", [prev], ["y"]))
        model = build_model(nodes, [("x", F, [1, 8])], [("y", F, [1, 8])], inits)
        records = [FakeRecord(k, "rewritten" if k in only else "skipped") for k in self.KEYS]
        return FakeResult(model, records)


class FakeRecord:
    def __init__(self, key, status):
        self.key, self.status = key, status
        self.op_type, self.pass_name = "Conv", "lift"
        self.node = type("N", (), {"name": key + "_node"})()


class FakeResult:
    def __init__(self, model, records):
        self.model, self.records = model, records


def original_chain():
    return FakeRewrite()(only=set())


def test_bisect_finds_a_single_culprit_by_halving():
    fake = FakeRewrite(faulty={"conv5"})
    result = bisect(original_chain().model, fake, FakeRewrite.KEYS, providers="cpu")
    assert isinstance(result, BisectResult)
    assert result.culprits == ["conv5"] and result.groups == [["conv5"]] and result.alone == {"conv5": True}
    assert not result.report.ok and not result.full_report.ok
    assert result.checks_run <= 10  # full, halves down to one key, rest, alone
    assert "conv5" in result.describe() and "conv5_node" in result.describe()


def test_bisect_finds_independent_culprits_and_groups():
    fake = FakeRewrite(faulty={"conv1", "conv6"})
    result = bisect(original_chain().model, fake, FakeRewrite.KEYS, providers="cpu")
    assert result.culprits == ["conv1", "conv6"] and all(result.alone.values())
    fake = FakeRewrite(together={"conv2", "conv6"})
    result = bisect(original_chain().model, fake, None, providers="cpu")  # keys from the records
    assert result.culprits == ["conv2", "conv6"] and result.groups == [["conv2", "conv6"]]
    assert result.alone == {"conv2": False, "conv6": False}


def test_bisect_on_an_equivalent_rewrite_finds_nothing():
    result = bisect(original_chain().model, FakeRewrite(), FakeRewrite.KEYS, providers="cpu")
    assert result.culprits == [] and result.report.ok and result.checks_run == 1
    assert "equivalent; no culprit" in result.describe()


def test_bisect_when_no_rewrite_is_to_blame():
    # The difference is there with none of the candidates rewritten: bisect blames none of them.
    def rewrite_fn(only=None):
        model = FakeRewrite(faulty={"conv0"})(only=set(FakeRewrite.KEYS))
        return FakeResult(model.model, [FakeRecord(k, "rewritten" if only is None or k in only else "skipped")
                                        for k in FakeRewrite.KEYS])

    result = bisect(original_chain().model, rewrite_fn, FakeRewrite.KEYS, providers="cpu")
    assert result.culprits == [] and not result.report.ok and not result.full_report.ok
    assert "even with none of the rewrites applied" in result.describe()
    assert "equivalent" not in result.describe().split(":")[1]


# ------------------------------------------------- CUDA path, simulated device


def fake_cuda(monkeypatch, corrupt_candidate=False):
    """onnxruntime with a pretend CUDA device: CPU underneath, outputs offset by 1e-6.

    This machine may have no GPU; the CUDA code path (options, per-provider rows,
    provider differences) is exercised all the same.
    """
    real = ort.InferenceSession
    options = []

    class Session:
        def __init__(self, source, sess_options=None, providers=None, **kwargs):
            first = providers[0]
            name = first[0] if isinstance(first, tuple) else first
            self.cuda = name == "CUDAExecutionProvider"
            if self.cuda:
                options.append(first[1])
            self.candidate = isinstance(source, bytes) and b"Unsqueeze" in source
            self.inner = real(source, sess_options, providers=["CPUExecutionProvider"], **kwargs)

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.cuda else ["CPUExecutionProvider"]

        def get_outputs(self):
            return self.inner.get_outputs()

        def run(self, names, feed):
            outs = self.inner.run(names, feed)
            if self.cuda:
                outs = [(o + np.float32(1e-6)).astype(o.dtype) for o in outs]
                if corrupt_candidate and self.candidate:
                    outs = [(o + np.float32(1e-2)).astype(o.dtype) for o in outs]
            return outs

    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(runtime, "_PROBE_CACHE", {})
    return options


def test_cuda_rows_and_provider_differences_with_a_simulated_device(monkeypatch):
    options = fake_cuda(monkeypatch)
    report = check(conv1d(), lifted(), providers="cpu,cuda", require="cuda", trials=2)
    assert report.ok, render_text(report)
    assert [(runtime.provider_short_name(r.provider), r.output) for r in report.results] == [("cpu", "y"), ("cuda", "y")]
    assert all(o == {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"} for o in options) and options
    assert len(options) == 3  # probe, original, candidate: one CUDA session each for both trials
    diff = report.provider_differences[0]
    assert diff.provider == "CUDAExecutionProvider" and diff.baseline == "CPUExecutionProvider"
    assert not diff.bit_exact and 0 < diff.max_abs < 1e-5
    assert [(d.model, d.output) for d in report.provider_differences] == [("original", "y"), ("candidate", "y")]
    assert "provider differences" in render_text(report) and "cuda vs cpu candidate y" in render_text(report)
    assert "EQUIVALENT" in report.summary and "cpu, cuda" in report.summary


def test_cuda_falling_back_for_the_model_is_never_passed(monkeypatch):
    # The probe session gets CUDA, the model's own session silently falls back: still unavailable.
    real = ort.InferenceSession

    class Session:
        def __init__(self, source, sess_options=None, providers=None, **kwargs):
            first = providers[0]
            wants_cuda = (first[0] if isinstance(first, tuple) else first) == "CUDAExecutionProvider"
            self.providers = ["CPUExecutionProvider"]
            if wants_cuda and isinstance(source, bytes) and b"probe" in source:
                self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            self.inner = real(source, sess_options, providers=["CPUExecutionProvider"], **kwargs)

        def get_providers(self):
            return self.providers

        def get_outputs(self):
            return self.inner.get_outputs()

        def run(self, names, feed):
            return self.inner.run(names, feed)

    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(runtime, "_PROBE_CACHE", {})
    report = check(conv1d(), conv1d(), providers="cpu,cuda")
    cuda = next(p for p in report.providers if p.short == "cuda")
    assert cuda.status == "unavailable" and "fell back to CPUExecutionProvider" in cuda.reason
    assert report.ok and "not run: cuda (unavailable)" in report.summary
    assert [(runtime.provider_short_name(r.provider), r.status) for r in report.results] == [
        ("cpu", "bit-exact"), ("cuda", "unavailable")
    ]
    assert not report.provider_differences
    required = check(conv1d(), conv1d(), providers="cpu,cuda", require="cuda")
    assert not required.ok and "required provider cuda unavailable" in required.summary


def test_a_fault_seen_on_cuda_only_fails(monkeypatch):
    fake_cuda(monkeypatch, corrupt_candidate=True)
    report = check(conv1d(), lifted(), providers="cpu,cuda")
    assert report.output("y", "cpu").ok and report.output("y", "cuda").ok is False
    assert not report.ok and "on cuda" in report.summary


# ---------------------------------------------------------- more failure modes


def reshaper(shape):
    return build_model(
        [node("Reshape", ["x", "s"], ["y"])],
        [("x", F, ["N", 3, "T"])],
        [("y", F, [None, None])],
        {"s": np.array(shape, np.int64)},
    )


def test_run_failure_is_an_error_row():
    report = check(reshaper([1, -1]), reshaper([7, -1]), providers="cpu")
    assert not report.ok and report.verdict == "not equivalent"
    assert report.results[0].status == "error" and "candidate: onnxruntime failed running it" in report.results[0].message
    assert "Reshape" in report.results[0].message and "reshaped" in report.results[0].detail
    nothing_ran = check(reshaper([7, -1]), reshaper([7, -1]), providers="cpu")
    # The original itself does not run: no verdict on the candidate, never "outputs differ".
    assert not nothing_ran.ok and nothing_ran.verdict == "cannot check" and nothing_ran.exit_code == 2
    assert nothing_ran.summary.startswith("CANNOT CHECK: the original does not run (original: onnxruntime failed")
    assert nothing_ran.cannot_check.op_type == "Reshape" and not nothing_ran.results


def test_changed_inputs_fail_without_exception():
    extra = build_model(
        [node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1]), node("Identity", ["z"], ["z2"])],
        [("x", F, [1, 3, 16]), ("z", F, [1])],
        [("y", F, [1, 4, 16]), ("z2", F, [1])],
        {"w": W, "b": B},
    )
    report = check(conv1d(), extra, providers="cpu")
    assert not report.ok and "the candidate has an extra input 'z' that callers must feed" in report.summary
    report = check(conv1d(), extra, providers="cpu", ignore_interface=True)
    assert not report.ok and "cannot be fed the same values" in report.summary


def test_expected_in_another_float_width_is_compared_by_value(tmp_path):
    model = conv1d()
    feed = make_inputs(model)
    path = tmp_path / "io.npz"
    np.savez(path, x=feed["x"], y=ort_run(model, feed)[0].astype(np.float64))
    report = check(model, expected=path, providers="cpu")
    assert report.ok and any("compared by value" in w for w in report.warnings)
