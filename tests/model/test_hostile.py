"""Broken and hostile inputs, and nothing lost (issue 8, items 3 and 4; issue 14 adds special files and
external-data fields to the matrix, and tests/model/test_file_safety.py the rest of that issue).

Every bad input, for every command that reads it, gives exactly one line on
stderr and exit code 2, writes nothing (no output, no temporary file left in
any folder) and leaves the input's bytes as they were. Saves are atomic and
survive SIGINT/SIGTERM; the same input and options give the same bytes in
every process.

The CLI runs in a child process wherever the claim is about the process (exit
code, stderr, signals, hash seeds); the matrix of bad inputs runs in-process
through click's runner (same code path, a fraction of the time), with
`catch_exceptions=False` so that any traceback fails the test.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper

from convrewrite.cli import main
from util import MODELS, init, make_model, run, vi

PY = [sys.executable, "-m", "convrewrite"]


# ------------------------------------------------------------------ helpers


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(*folders: Path) -> dict[Path, dict[str, str]]:
    """Every file in the folders (recursively) with its hash: what 'nothing written' compares."""
    out = {}
    for folder in folders:
        files = {}
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.is_symlink():
                files[str(p.relative_to(folder))] = sha(p)
            elif p.is_dir() or p.is_symlink():
                files[str(p.relative_to(folder))] = "dir" if p.is_dir() else "link"
        out[folder] = files
    return out


def conv_model(weight=None, **attrs) -> onnx.ModelProto:
    w = np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3) / 48 if weight is None else weight
    attrs = attrs or {"kernel_shape": [3], "pads": [2, 0]}
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)
    return make_model([node], [vi("x", [1, 4, 16])], [vi("y", [1, 4, 16])], [init("w", w)])


def write(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def external(folder: Path, location: str = "m.weights") -> Path:
    """A model whose weight lives in `location` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    model = conv_model(np.arange(4 * 4 * 40, dtype=np.float32).reshape(4, 4, 40) / 640, kernel_shape=[40], pads=[39, 0])
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return folder / "m.onnx"


def relocate(path: Path, location: str) -> None:
    """Point the model's external data at `location` (without loading the data)."""
    set_external_field(path, "location", location)


def set_external_field(path: Path, key: str, value: str) -> None:
    """Set (or add) one external-data field of the model's weight, without loading the data."""
    model = onnx.load(str(path), load_external_data=False)
    entries = model.graph.initializer[0].external_data
    for entry in entries:
        if entry.key == key:
            entry.value = value
            break
    else:
        entries.add(key=key, value=value)
    path.write_bytes(model.SerializeToString())


# Each builder makes one bad model under `tmp` and returns (path, files that belong to it, expected message).
def _missing(tmp):
    return tmp / "missing.onnx", [], "no such file"


def _folder(tmp):
    (tmp / "folder.onnx").mkdir()
    return tmp / "folder.onnx", [], "is a folder"


def _empty(tmp):
    (tmp / "empty.onnx").write_bytes(b"")
    return tmp / "empty.onnx", [], "empty file"


def _text(tmp):
    (tmp / "text.onnx").write_text("ir_version: 8\nthis is a text file, not a model\n")
    return tmp / "text.onnx", [], "not an ONNX model"


def _random(tmp):
    (tmp / "random.onnx").write_bytes(np.random.default_rng(7).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    return tmp / "random.onnx", [], "not an ONNX model|truncated"


def _truncated(tmp):
    data = conv_model().SerializeToString()
    (tmp / "truncated.onnx").write_bytes(data[: len(data) * 2 // 3])
    return tmp / "truncated.onnx", [], "truncated|not an ONNX"


def _checker(tmp):
    model = conv_model()
    model.graph.node[0].input[1] = "no_such_weight"
    return write(tmp / "checker.onnx", model), [], "onnx.checker"


def _unknown_domain(tmp):
    model = conv_model()
    model.graph.node.append(helper.make_node("Frobnicate", ["y"], ["z"], domain="com.evil", name="frob"))
    model.graph.output[0].CopyFrom(vi("z", [1, 4, 16]))
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    return write(tmp / "domain.onnx", model), [], "unknown opset domain 'com.evil'"


def _weight_rank(tmp):
    model = conv_model(np.ones((4, 4, 3, 3), np.float32), pads=[1, 1, 1, 1])
    return write(tmp / "wrank.onnx", model), [], r"spatial dimensions in the weight|rank"


def _kernel_shape_in_function(tmp):
    # Inside a model-local function, where onnx.checker infers nothing: convrewrite's own check must see it.
    weight = helper.make_node("Constant", [], ["fw"], value=init("fw_value", np.ones((4, 4, 3), np.float32)))
    conv = helper.make_node("Conv", ["fx", "fw"], ["fy"], name="fconv", kernel_shape=[5], pads=[4, 0])
    func = helper.make_function("local", "Block", ["fx"], ["fy"], [weight, conv], [helper.make_opsetid("", 13)])
    graph = helper.make_graph([helper.make_node("Block", ["x"], ["y"], domain="local")], "g",
                              [vi("x", [1, 4, 16])], [vi("y", [1, 4, 16])])
    model = helper.make_model(graph, functions=[func], ir_version=8,
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("local", 1)])
    return write(tmp / "kshape_func.onnx", model), [], r"fconv \(function Block\): kernel_shape \[5\] disagrees"


def _kernel_shape(tmp):
    return write(tmp / "kshape.onnx", conv_model(kernel_shape=[5], pads=[4, 0])), [], r"kernel_shape \[5\] disagrees"


def _ext_parent(tmp):
    path = external(tmp / "model")
    (tmp / "secret.bin").write_bytes(b"\0" * 4096)
    relocate(path, "../../etc/passwd")
    return path, [path.parent / "m.weights"], "outside the model's folder"


def _ext_parent_existing(tmp):
    path = external(tmp / "model")
    (tmp / "secret.bin").write_bytes(b"\1" * 4096)
    relocate(path, "../secret.bin")  # exists and is long enough: only the location is wrong
    return path, [path.parent / "m.weights", tmp / "secret.bin"], "outside the model's folder"


def _ext_absolute(tmp):
    path = external(tmp / "model")
    relocate(path, "/etc/passwd")
    return path, [path.parent / "m.weights"], "absolute path"


def _ext_symlink(tmp):
    path = external(tmp / "model")
    (tmp / "secret.bin").write_bytes(b"\1" * 4096)
    (path.parent / "link.bin").symlink_to(tmp / "secret.bin")
    relocate(path, "link.bin")  # inside by name, outside once resolved
    return path, [path.parent / "m.weights", tmp / "secret.bin"], "outside the model's folder"


def _ext_missing(tmp):
    path = external(tmp / "model")
    (path.parent / "m.weights").unlink()
    return path, [], "missing"


def _ext_short(tmp):
    path = external(tmp / "model")
    data = path.parent / "m.weights"
    data.write_bytes(data.read_bytes()[:100])
    return path, [data], "too short"


def _ext_field(key: str, value: str, message: str):
    def build(tmp):
        path = external(tmp / "model")
        set_external_field(path, key, value)
        return path, [path.parent / "m.weights"], message
    return build


def _ext_big_length(tmp):
    # Within the file (a sparse 64 MiB), but not what the tensor's dims need: refused before reading.
    path = external(tmp / "model")
    with open(path.parent / "m.weights", "r+b") as fh:
        fh.truncate(64 * 2**20)
    set_external_field(path, "length", str(64 * 2**20))
    return path, [path.parent / "m.weights"], r"tensor 'w' external data length 67108864 disagrees"


def _ext_char_device(tmp):
    path = external(tmp / "model")
    data = path.parent / "m.weights"
    data.unlink()
    try:
        os.mknod(data, 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # a copy of /dev/zero
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot create a character device here: {exc}")
    return path, [], "is a character device, not a regular file"


def _model_char_device(tmp):
    try:
        os.mknod(tmp / "null.onnx", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a copy of /dev/null
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot create a character device here: {exc}")
    return tmp / "null.onnx", [], "null.onnx: is a character device, not a regular file"


def _model_socket(tmp):
    import socket

    path = tmp / "sock.onnx"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the socket file stays
    return path, [], "sock.onnx: is a socket, not a regular file"


BAD_MODELS = {
    "missing": _missing,
    "folder": _folder,
    "empty": _empty,
    "text": _text,
    "random-bytes": _random,
    "truncated": _truncated,
    "checker-fails": _checker,
    "unknown-domain": _unknown_domain,
    "weight-rank": _weight_rank,
    "kernel-shape": _kernel_shape,
    "kernel-shape-in-function": _kernel_shape_in_function,
    "external-../../etc/passwd": _ext_parent,
    "external-../existing": _ext_parent_existing,
    "external-absolute": _ext_absolute,
    "external-symlink-out": _ext_symlink,
    "external-missing": _ext_missing,
    "external-too-short": _ext_short,
    "external-offset-abc": _ext_field("offset", "abc", r"tensor 'w' external data offset 'abc' is not a non-negative"),
    "external-offset--1": _ext_field("offset", "-1", r"tensor 'w' external data offset '-1' is not a non-negative"),
    "external-length-0x30": _ext_field("length", "0x30", r"tensor 'w' external data length '0x30' is not a"),
    "external-length--1": _ext_field("length", "-1", r"tensor 'w' external data length '-1' is not a"),
    "external-length-+8": _ext_field("length", "+8", r"tensor 'w' external data length '\+8' is not a"),
    "external-offset-arabic-digit": _ext_field("offset", "\u0661", r"tensor 'w' external data offset '.' is not a"),
    "external-offset-past-end": _ext_field("offset", "4096", r"too short for tensor 'w' \(needs 6656 bytes, has 2560\)"),
    "external-length-too-big": _ext_big_length,
    "external-location-NUL": _ext_field("location", "m.weights\0/../../etc/passwd", r"tensor 'w' .*contains a NUL byte"),
    "external-character-device": _ext_char_device,
    "model-character-device": _model_char_device,
    "model-socket": _model_socket,
}

COMMANDS = {
    # command -> argv for the bad model `bad`, a good model `good` and an output folder `out`
    "inspect": lambda bad, good, out: ["inspect", str(bad)],
    "inspect --json": lambda bad, good, out: ["inspect", "--json", str(bad)],
    "rewrite": lambda bad, good, out: ["rewrite", str(bad), "-o", str(out / "o.onnx"), "--fold", "all", "--to-2d",
                                       "--report", str(out / "r.json")],
    "rewrite --check": lambda bad, good, out: ["rewrite", str(bad), "-o", str(out / "o.onnx"), "--to-2d", "--check",
                                               "--providers", "cpu"],
    "check (original)": lambda bad, good, out: ["check", str(bad), str(good), "--providers", "cpu",
                                                "--json", str(out / "r.json")],
    "check (candidate)": lambda bad, good, out: ["check", str(good), str(bad), "--providers", "cpu"],
}


def invoke(args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_exit_2(code: int, stderr: str, pattern: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, (code, stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("convrewrite: error: "), lines[0]
    assert "Traceback" not in stderr
    assert re.search(pattern, lines[0]), (pattern, lines[0])


def _bad_case(tmp_path, kind):
    """Folders `in` (the bad model, its files and a good model) and `out`, and a snapshot of both."""
    work, out = tmp_path / "in", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    bad, files, message = BAD_MODELS[kind](work)
    good = write(work / "good.onnx", conv_model())
    return work, out, bad, files, message, good, snapshot(work, out)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_bad_model_one_line_exit_2_nothing_written_input_unchanged(tmp_path, kind, command):
    work, out, bad, files, message, good, before = _bad_case(tmp_path, kind)
    hashes = {p: sha(p) for p in ([bad] if bad.is_file() else []) + files}
    code, _, stderr = invoke(COMMANDS[command](bad, good, out))
    assert_one_line_exit_2(code, stderr, message)
    assert snapshot(work, out) == before  # nothing written anywhere, no temporary left, nothing changed
    assert {p: sha(p) for p in hashes} == hashes


@pytest.mark.parametrize("command", ["inspect", "rewrite", "check (candidate)"])
@pytest.mark.parametrize("kind", ["truncated", "unknown-domain", "kernel-shape", "external-../../etc/passwd"])
def test_bad_model_in_a_real_process(tmp_path, kind, command):
    """The same, as a user's shell sees it: the process's own exit code and stderr."""
    work, out, bad, files, message, good, before = _bad_case(tmp_path, kind)
    proc = subprocess.run(PY + COMMANDS[command](bad, good, out), capture_output=True, text=True, timeout=120)
    assert_one_line_exit_2(proc.returncode, proc.stderr, message)
    assert snapshot(work, out) == before


# ------------------------------------------------------------ pickled .npz


class Payload:
    """Unpickling this creates `marker`: the proof that something was (or was not) unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("form", ["object-array-npz", "raw-pickle"])
@pytest.mark.parametrize("command", ["check --inputs", "check --expected", "rewrite --check --inputs"])
def test_pickled_npz_is_refused_and_never_unpickled(tmp_path, form, command):
    model = write(tmp_path / "m.onnx", conv_model())
    marker = tmp_path / "UNPICKLED"
    evil = tmp_path / "evil.npz"
    if form == "object-array-npz":
        np.savez(evil, x=np.array([Payload(marker), 1], dtype=object))
    else:
        evil.write_bytes(pickle.dumps({"x": Payload(marker)}))
    out = tmp_path / "out.onnx"
    args = {
        "check --inputs": ["check", model, model, "--inputs", evil, "--providers", "cpu"],
        "check --expected": ["check", model, "--expected", evil, "--providers", "cpu"],
        "rewrite --check --inputs": ["rewrite", model, "-o", out, "--to-2d", "--check", "--inputs", evil,
                                     "--providers", "cpu"],
    }[command]
    before, evil_hash = snapshot(tmp_path), sha(evil)
    proc = subprocess.run(PY + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    assert_one_line_exit_2(proc.returncode, proc.stderr, "pickled")
    assert not marker.exists(), "the payload was unpickled"
    assert snapshot(tmp_path) == before and sha(evil) == evil_hash
    # The payload is live: loading it the unsafe way does create the marker.
    if form == "object-array-npz":
        np.load(evil, allow_pickle=True)["x"]
    else:
        pickle.loads(evil.read_bytes())
    assert marker.exists()


# ---------------------------------------------------------- output folders


def _drop_dac_capabilities() -> None:
    """In the child, before exec: drop CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH from the bounding set.

    root ignores file permissions through these two capabilities; without them
    (and with an empty inheritable set, the default) the exec'd program obeys
    a folder's mode bits like any user, while keeping uid 0.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP = 24
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(args, **kw) -> subprocess.CompletedProcess:
    """Run the CLI so that file permissions apply, also when the tests run as root."""
    preexec = _drop_dac_capabilities if os.geteuid() == 0 else None
    return subprocess.run(PY + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          preexec_fn=preexec, **kw)


@pytest.fixture
def read_only(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "old.onnx").write_bytes(b"old contents")
    folder.chmod(0o555)
    probe = run_unprivileged(["--version"])  # the child must start at all without the capabilities
    if probe.returncode != 0:
        pytest.skip(f"cannot run a child that obeys file permissions here: {probe.stderr.strip()[:200]}")
    check = subprocess.run([sys.executable, "-c", f"import os; print(os.access({str(folder)!r}, os.W_OK))"],
                           capture_output=True, text=True, preexec_fn=_drop_dac_capabilities if os.geteuid() == 0 else None)
    if check.stdout.strip() != "False":
        folder.chmod(0o755)
        pytest.skip("this user can write into a read-only folder even without CAP_DAC_OVERRIDE")
    yield folder
    folder.chmod(0o755)


@pytest.mark.parametrize("target", ["o.onnx", "old.onnx"])
def test_output_in_a_read_only_folder(tmp_path, read_only, target):
    model = write(tmp_path / "m.onnx", conv_model())
    before, model_hash = snapshot(read_only), sha(model)
    proc = run_unprivileged(["rewrite", model, "--to-2d", "-o", read_only / target])
    assert_one_line_exit_2(proc.returncode, proc.stderr, "not writable")
    assert snapshot(read_only) == before and sha(model) == model_hash


def test_report_and_json_in_a_read_only_folder(tmp_path, read_only):
    model = write(tmp_path / "m.onnx", conv_model())
    before = snapshot(tmp_path)
    proc = run_unprivileged(["rewrite", model, "--to-2d", "-o", tmp_path / "o.onnx", "--report", read_only / "r.json"])
    assert_one_line_exit_2(proc.returncode, proc.stderr, "not writable")
    proc = run_unprivileged(["check", model, model, "--providers", "cpu", "--json", read_only / "r.json"])
    assert_one_line_exit_2(proc.returncode, proc.stderr, "--json")
    assert snapshot(tmp_path) == before


def test_unwritable_place_found_only_when_writing(tmp_path):
    """A folder that says it is writable but refuses the file (here /proc, even for root): still one line."""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    model = write(tmp_path / "m.onnx", conv_model())
    before = snapshot(tmp_path)
    code, _, stderr = invoke(["rewrite", model, "--to-2d", "-o", "/proc/convrewrite-test.onnx"])
    assert_one_line_exit_2(code, stderr, "/proc/convrewrite-test.onnx")
    assert snapshot(tmp_path) == before
    assert not Path("/proc/convrewrite-test.onnx").exists()


@pytest.mark.parametrize("option", ["-o", "--report", "--json"])
def test_output_in_a_missing_folder(tmp_path, option):
    model = write(tmp_path / "m.onnx", conv_model())
    missing = tmp_path / "no" / "such" / "out.onnx"
    args = {
        "-o": ["rewrite", model, "--to-2d", "-o", missing],
        "--report": ["rewrite", model, "--to-2d", "-o", tmp_path / "o.onnx", "--report", missing],
        "--json": ["check", model, model, "--providers", "cpu", "--json", missing],
    }[option]
    before = snapshot(tmp_path)
    code, _, stderr = invoke(args)
    assert_one_line_exit_2(code, stderr, "does not exist")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------ the input is sacred


def test_output_naming_the_input_is_refused_in_every_spelling(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    model = write(folder / "m.onnx", conv_model())
    (tmp_path / "link.onnx").symlink_to(model)
    os.link(model, tmp_path / "hard.onnx")
    spellings = [
        str(model),
        str(folder / "." / "m.onnx"),
        str(tmp_path / "d" / ".." / "d" / "m.onnx"),
        str(tmp_path / "link.onnx"),
        str(tmp_path / "hard.onnx"),
    ]
    before = snapshot(tmp_path)
    for spelling in spellings:
        code, _, stderr = invoke(["rewrite", str(model), "--to-2d", "-o", spelling])
        assert_one_line_exit_2(code, stderr, "input model")
        code, _, stderr = invoke(["rewrite", str(model), "--to-2d", "-o", str(model), "--report", spelling])
        assert_one_line_exit_2(code, stderr, "--report|input model")
    # Relative spelling from the model's folder.
    proc = subprocess.run(PY + ["rewrite", "m.onnx", "--to-2d", "-o", "./m.onnx"], cwd=folder, capture_output=True,
                          text=True, timeout=120)
    assert_one_line_exit_2(proc.returncode, proc.stderr, "input model")
    assert snapshot(tmp_path) == before


def test_check_json_naming_an_input_is_refused(tmp_path):
    model = write(tmp_path / "m.onnx", conv_model())
    other = write(tmp_path / "n.onnx", conv_model())
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.zeros((1, 4, 16), np.float32))
    (tmp_path / "link.onnx").symlink_to(other)
    before = snapshot(tmp_path)
    for target in (model, other, tmp_path / "." / "n.onnx", tmp_path / "link.onnx", npz):
        code, _, stderr = invoke(["check", model, other, "--inputs", npz, "--providers", "cpu", "--json", target])
        assert_one_line_exit_2(code, stderr, "--json .*is the input|--json .*is --inputs")
    assert snapshot(tmp_path) == before


def test_in_place_rewrites_the_input_atomically(tmp_path):
    model = write(tmp_path / "m.onnx", conv_model())
    original = onnx.load(str(model))
    code, stdout, stderr = invoke(["rewrite", str(model), "--to-2d", "--in-place"])
    assert code == 0, stderr
    rewritten = onnx.load(str(model))
    assert [len(a.ints) for n in rewritten.graph.node if n.op_type == "Conv" for a in n.attribute
            if a.name == "kernel_shape"] == [2]
    x = {"x": np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)}
    np.testing.assert_array_equal(run(original, x)["y"], run(rewritten, x)["y"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary left


def test_output_over_the_inputs_external_data_is_refused(tmp_path):
    """`-o` whose data file (`OUT.data`), or OUT itself, is the input's external data: refused."""
    folder = tmp_path / "model"
    path = external(folder, location="w.onnx.data")
    before = snapshot(tmp_path)
    for target in (folder / "w.onnx", folder / "w.onnx.data"):
        code, _, stderr = invoke(["rewrite", str(path), "--to-2d", "-o", str(target), "--external-data"])
        assert_one_line_exit_2(code, stderr, "external data")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------- interrupted saves


def big_model(path: Path, mb: int = 24) -> Path:
    """A model whose save writes a few tens of MB (several initializers, so the write comes in pieces)."""
    rng = np.random.default_rng(0)
    c = 256
    k = mb * 2**20 // (4 * c * c * 4)
    nodes, inits, name = [], [], "x"
    for i in range(4):
        w = rng.standard_normal((c, c, k)).astype(np.float32) / (c * k)
        inits.append(init(f"w{i}", w))
        nodes.append(helper.make_node("Conv", [name, f"w{i}"], [f"h{i}"], name=f"conv{i}", kernel_shape=[k],
                                      pads=[k - 1, 0]))
        name = f"h{i}"
    model = make_model(nodes, [vi("x", [1, c, 8])], [vi(name, [1, c, 8])], inits)
    onnx.save(model, str(path))
    return path


def default_sigint() -> None:
    """preexec_fn: SIGINT as by default in the child; pytest run as a background job starts it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before reaching the pause: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run never reached the pause")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    return big_model(tmp_path_factory.mktemp("big") / "big.onnx")


@pytest.mark.parametrize("external_data", [False, True], ids=["one-file", "external-data"])
@pytest.mark.parametrize("old_output", [False, True], ids=["new-output", "over-old-output"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_writing_leaves_the_old_file(tmp_path, big_input, sig, old_output, external_data):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "o.onnx"
    if old_output:
        target.write_bytes(b"the previous output")
        (out_dir / "o.onnx.data").write_bytes(b"its previous data")
    before = snapshot(out_dir)
    input_hash = sha(big_input)
    marker = tmp_path / "paused"
    env = dict(os.environ, _CONVREWRITE_TEST_PAUSE=f"write:60:{marker}")
    args = ["rewrite", str(big_input), "--to-2d", "-o", str(target)]
    args += ["--external-data"] if external_data else []
    proc = subprocess.Popen(PY + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_sigint)
    _wait_for(marker, proc)
    # Mid-write: a partial temporary file (or folder) sits beside the target.
    assert any(p.name.startswith(".o.onnx.") for p in out_dir.iterdir())
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
    assert stderr.strip().splitlines() == ["convrewrite: interrupted; no partial file written"]
    assert snapshot(out_dir) == before  # the old file(s), or none; no temporary left
    assert sha(big_input) == input_hash


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_between_the_renames_is_held_until_both_are_done(tmp_path, big_input, sig):
    """External data: model and data are renamed as a pair; a signal between them waits, then both are new."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "o.onnx"
    target.write_bytes(b"old model")
    (out_dir / "o.onnx.data").write_bytes(b"old data")
    marker = tmp_path / "paused"
    env = dict(os.environ, _CONVREWRITE_TEST_PAUSE=f"rename:1.5:{marker}")
    args = ["rewrite", str(big_input), "--to-2d", "-o", str(target), "--external-data"]
    proc = subprocess.Popen(PY + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_sigint)
    _wait_for(marker, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["o.onnx", "o.onnx.data"]
    new = onnx.load(str(target))  # the new model with its new data: consistent
    x = {"x": np.random.default_rng(1).standard_normal((1, 256, 8)).astype(np.float32)}
    np.testing.assert_allclose(run(onnx.load(str(big_input)), x)["h3"], run(new, x)["h3"], atol=1e-5)


def test_signals_at_random_moments_leave_old_or_new_never_partial(tmp_path, big_input):
    """No hook: SIGTERM at several moments of a real run; the target is always the old bytes or the whole new model."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "o.onnx"
    done = subprocess.run(PY + ["rewrite", str(big_input), "--to-2d", "-o", str(tmp_path / "ref.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    new_hash = sha(tmp_path / "ref.onnx")
    outcomes = set()
    for delay in (0.4, 0.8, 1.2, 2.0):
        target.write_bytes(b"old")
        proc = subprocess.Popen(PY + ["rewrite", str(big_input), "--to-2d", "-o", str(target)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert "Traceback" not in stderr
        state = "old" if target.read_bytes() == b"old" else ("new" if sha(target) == new_hash else "PARTIAL")
        assert state != "PARTIAL"
        assert proc.returncode in (0, 143, -signal.SIGTERM), (proc.returncode, stderr)
        assert sorted(p.name for p in out_dir.iterdir()) == ["o.onnx"]
        outcomes.add(state)
    print("outcomes:", sorted(outcomes))


# -------------------------------------------------------------- determinism


DETERMINISM_RUNS = [
    ("tcn_chomp_ts13", ["--fold", "all", "--to-2d"]),
    ("k3_sepconv1d", ["--to-1d", "--fold", "all", "--fuse-separable"]),
    ("wavenet_ts13", ["--fold", "causal", "--to-2d", "--layout", "w"]),
    ("conv1d_chain_ts13", ["--to-2d"]),
    ("rank_subgraph_op13", ["--to-2d"]),
    ("k3_conv1d_d2_same_dyn", ["--fold", "all"]),
]


@pytest.mark.parametrize("name, options", DETERMINISM_RUNS, ids=[n for n, _ in DETERMINISM_RUNS])
def test_byte_identical_output_across_processes_and_hash_seeds(tmp_path, name, options):
    outputs = []
    for seed in ("1", "12345"):
        out = tmp_path / f"o{seed}.onnx"
        report = tmp_path / f"r{seed}.json"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(PY + ["rewrite", str(MODELS / f"{name}.onnx"), "-o", str(out), "--report", str(report)]
                              + options, capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        outputs.append((out.read_bytes(), report.read_bytes()))
    assert all(o == outputs[0] for o in outputs[1:])
    assert outputs[0][0] != (MODELS / f"{name}.onnx").read_bytes()  # something was rewritten


def test_byte_identical_output_within_one_process(tmp_path):
    import convrewrite

    for name, passes in [("quartznet_block_ts13", ["all", "to-2d"]), ("k3_tcn", ["to-1d", "all"])]:
        model = convrewrite.load(MODELS / f"{name}.onnx")
        files = []
        for run_id in ("a", "b"):
            folder = tmp_path / name / run_id
            folder.mkdir(parents=True)
            result = convrewrite.rewrite(model, passes).model
            one = convrewrite.save(result, folder / "one.onnx")
            ext = convrewrite.save(result, folder / "ext.onnx", external_data=True)
            files.append([one.read_bytes(), ext.read_bytes(), (folder / "ext.onnx.data").read_bytes()])
        assert files[0] == files[1]
