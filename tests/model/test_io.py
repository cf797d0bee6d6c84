"""Model I/O: sources, external data (and its safety), atomic checked saves."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import onnx
import pytest
from onnx import helper

import convrewrite.model as cio
from convrewrite.errors import ModelInvalidError, ModelLoadError, OutputError
from util import init, make_model, run, vi


def small_model(weight_elems: int = 8 * 8 * 3) -> onnx.ModelProto:
    w = np.arange(weight_elems, dtype=np.float32).reshape(8, 8, -1) / weight_elems
    k = w.shape[2]
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[k], pads=[k // 2, k - 1 - k // 2])
    model = make_model([node], [vi("x", [1, 8, 16])], [vi("y", [1, 8, 16])], [init("w", w)], producer_name="tests",
                       doc_string="kept")
    model.metadata_props.add(key="origin", value="test")
    return model


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_load_from_path_bytes_and_proto(tmp_path):
    model = small_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    for source in (str(path), path, path.read_bytes(), model):
        loaded = cio.load(source)
        assert loaded.graph.node[0].name == "conv"


def test_save_keeps_everything(tmp_path):
    model = small_model()
    model.graph.value_info.append(vi("y", [1, 8, 16]))
    out = cio.save(model, tmp_path / "o.onnx")
    back = onnx.load(str(out))
    assert back.ir_version == model.ir_version == 8
    assert [(o.domain, o.version) for o in back.opset_import] == [(o.domain, o.version) for o in model.opset_import]
    assert back.producer_name == "tests" and back.doc_string == "kept"
    assert back.metadata_props[0].key == "origin"
    assert back.graph.value_info[0].name == "y"
    assert back.SerializeToString() == model.SerializeToString()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"hello, this is a text file\nwith two lines\n", "not an ONNX model"),
        (bytes(range(256)) * 4, "not an ONNX model"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        cio.load(path)


def test_missing_folder_truncated(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        cio.load(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="is a folder"):
        cio.load(tmp_path)
    data = small_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated|not an ONNX"):
        cio.load(path)


def test_checker_rejection_is_an_error(tmp_path):
    model = small_model()
    model.graph.node[0].input[1] = "missing_weight"
    path = tmp_path / "invalid.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelInvalidError, match="onnx.checker"):
        cio.load(path)


def _external_copy(tmp_path, location="m.onnx.data"):
    model = small_model(8 * 8 * 5)
    folder = tmp_path / "model"
    folder.mkdir()
    saved = onnx.ModelProto()
    saved.CopyFrom(model)  # onnx.save turns the tensors it writes out into references
    onnx.save(saved, str(folder / "m.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return model, folder / "m.onnx"


def test_external_data_loads_and_saves_back_external(tmp_path):
    model, path = _external_copy(tmp_path)
    info = cio.load_with_info(path)
    assert info.had_external_data
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(info.model.graph.initializer[0]),
        onnx.numpy_helper.to_array(model.graph.initializer[0]),
    )
    out = tmp_path / "out" / "o.onnx"
    out.parent.mkdir()
    before = info.model.SerializeToString()
    cio.save(info.model, out, external_data=True)
    assert info.model.SerializeToString() == before, "save must not change the caller's model"
    assert (out.parent / "o.onnx.data").exists()
    assert os.path.getsize(out) < 1024
    back = cio.load(out)
    x = {"x": np.ones((1, 8, 16), np.float32)}
    np.testing.assert_array_equal(run(back, x)["y"], run(model, x)["y"])


@pytest.mark.parametrize("location", ["../secret.data", "/etc/passwd", "../../etc/passwd", "sub/../../x.data"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    _, path = _external_copy(tmp_path)
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    (tmp_path / "secret.data").write_bytes(b"\0" * 4096)
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelLoadError, match="absolute path|outside the model's folder"):
        cio.load(path)


def test_external_data_missing_or_short(tmp_path):
    _, path = _external_copy(tmp_path)
    data = path.parent / "m.onnx.data"
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ModelLoadError, match="too short"):
        cio.load(path)
    data.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        cio.load(path)


def test_large_models_take_the_external_data_path(tmp_path, monkeypatch):
    """Past the protobuf limit the save goes external; shown with a lowered threshold."""
    monkeypatch.setattr(cio.write, "EXTERNAL_DATA_THRESHOLD", 1000)
    model = small_model(8 * 8 * 7)
    out = cio.save(model, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").exists()
    assert onnx.load(str(out), load_external_data=False).graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    x = {"x": np.ones((1, 8, 16), np.float32)}
    np.testing.assert_array_equal(run(cio.load(out), x)["y"], run(model, x)["y"])


def test_save_refuses_to_overwrite_the_input_unless_in_place(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(small_model(), str(path))
    before = digest(path)
    with pytest.raises(OutputError, match="refusing to overwrite"):
        cio.save(small_model(), path, source=path)
    assert digest(path) == before
    cio.save(small_model(), path, source=path, in_place=True)


def test_invalid_output_is_never_written(tmp_path):
    model = small_model()
    model.graph.node[0].input[1] = "nowhere"
    target = tmp_path / "o.onnx"
    with pytest.raises(ModelInvalidError, match="nothing written"):
        cio.save(model, target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_output_folder_problems(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        cio.save(small_model(), tmp_path / "no" / "o.onnx")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):
            with pytest.raises(OutputError, match="not writable"):
                cio.save(small_model(), ro / "o.onnx")
        else:
            # root ignores the mode bits: save from a child process that lost CAP_DAC_OVERRIDE (tests/model/test_hostile.py).
            import subprocess
            import sys

            from test_hostile import _drop_dac_capabilities

            onnx.save(small_model(), str(tmp_path / "m.onnx"))
            code = ("import sys, onnx, convrewrite.model as cio, convrewrite.errors as errors\n"
                    "try:\n    cio.save(onnx.load(sys.argv[1]), sys.argv[2])\n"
                    "except errors.OutputError as exc:\n    print(exc)\n")
            child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.onnx"), str(ro / "o.onnx")],
                                   capture_output=True, text=True, timeout=60, preexec_fn=_drop_dac_capabilities)
            assert "not writable" in child.stdout, child.stdout + child.stderr
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_save_is_deterministic(tmp_path):
    a = cio.save(small_model(), tmp_path / "a.onnx")
    b = cio.save(small_model(), tmp_path / "b.onnx")
    assert digest(a) == digest(b)
