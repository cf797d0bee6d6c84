"""Nothing lost, nothing hangs: every file the tool reads or writes is handled safely (issue 14).

Reads: a FIFO, device, socket or folder given as a model (or as its external
data) is refused before it is opened, in one line; nothing is read past a
file's size. Writes: only regular files are replaced (a symlink is written
through), `-` is standard output, and no written path may name a read one in
any spelling. Start-up: Ctrl-C at any moment is one line and exit 130.

Where a bug would hang or eat memory the CLI runs in a child process with a
time limit (a hang fails the test instead of stalling it) and, for the
blow-up cases, a cap on its address space; the rest runs in-process through
click's runner with `catch_exceptions=False` (any traceback fails the test).
Every case compares the state of every file involved before and after: kind
(a device stays a device, a link a link), bytes of the regular ones, and no
temporary file left.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import convrewrite
from convrewrite.errors import ModelLoadError, OutputError
from convrewrite.model import paths as mpaths
from convrewrite.model import write as mwrite
from test_hostile import (
    assert_one_line_exit_2,
    conv_model,
    external,
    invoke,
    run_unprivileged,
    set_external_field,
    sha,
    write,
)
from util import ROOT

# The child runs this checkout's convrewrite, whatever is installed.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
PY = [sys.executable, "-m", "convrewrite"]
TIMEOUT = 30  # seconds: a child that hangs on a FIFO fails the test instead of stalling it
GiB = 2**30


# ------------------------------------------------------------------ helpers


def child_setup(mem_cap: int | None = None):
    """preexec_fn: default SIGINT (pytest may run as a background job, with SIGINT ignored) and a memory cap."""

    def setup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if mem_cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))

    return setup


def start(args, mem_cap: int | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(PY + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, preexec_fn=child_setup(mem_cap), **kw)


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{proc.args[3:]} still running after {timeout} s: it hangs") from None
    return proc.returncode, out, err


def run_all(commands: dict[str, list], mem_cap: int | None = None) -> dict[str, tuple[int, str, str]]:
    """Run the commands side by side (they are independent), each under the time limit."""
    procs = {name: start(args, mem_cap) for name, args in commands.items()}
    return {name: finish(p) for name, p in procs.items()}


def state(*folders: Path) -> dict[str, str]:
    """Every entry under the folders: its kind, and the hash of a regular file's bytes (never opens anything else)."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                kind = f"link -> {os.readlink(p)}"
            elif stat.S_ISREG(st.st_mode):
                kind = sha(p)
            elif stat.S_ISCHR(st.st_mode):
                kind = f"char {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                kind = mpaths.file_kind(st.st_mode)
            out[str(p)] = kind
    return out


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def make_char_device(path: Path, major: int, minor: int) -> Path:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot create a character device here: {exc}")
    return path


def make_socket(path: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the socket file stays
    return path


def commands_for(model: Path, good: Path, out: Path, only: tuple[str, ...] = ()) -> dict[str, list]:
    """The four commands that read a model (`only` some of them), `model` in the place under test."""
    every = {
        "inspect": ["inspect", model],
        "rewrite": ["rewrite", model, "-o", out / "o.onnx", "--to-2d", "--report", out / "r.json"],
        "rewrite --check": ["rewrite", model, "-o", out / "o.onnx", "--to-2d", "--check", "--providers", "cpu"],
        "check (original)": ["check", model, good, "--providers", "cpu", "--json", out / "c.json"],
        "check (candidate)": ["check", good, model, "--providers", "cpu"],
    }
    return {name: args for name, args in every.items() if not only or name in only}


@pytest.fixture
def work(tmp_path):
    """Folders `in` (with a good model) and `out`."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    write(tmp_path / "in" / "good.onnx", conv_model())
    return tmp_path


# ------------------------------------------------- reads: special files, hangs


def test_fifo_as_model_is_refused_without_blocking(work):
    fifo = make_fifo(work / "in" / "m.onnx")
    before = state(work)
    results = run_all(commands_for(fifo, work / "in" / "good.onnx", work / "out"))
    for name, (code, _, stderr) in results.items():
        assert_one_line_exit_2(code, stderr, r"m\.onnx: is a FIFO, not a regular file")
    assert state(work) == before


def test_fifo_as_external_data_is_refused_without_blocking(work):
    model = external(work / "in" / "ext")
    (model.parent / "m.weights").unlink()
    make_fifo(model.parent / "m.weights")
    before = state(work)
    results = run_all(commands_for(model, work / "in" / "good.onnx", work / "out",
                                   only=("inspect", "rewrite --check", "check (candidate)")))
    for name, (code, _, stderr) in results.items():
        assert_one_line_exit_2(code, stderr, r"external data file 'm.weights' \(tensor 'w'\) is a FIFO")
    assert state(work) == before


def test_dev_zero_is_refused_without_reading(work):
    """`inspect /dev/zero` used to read until memory ran out: capped at 2 GiB, it must be refused at once."""
    if not Path("/dev/zero").exists():
        pytest.skip("needs /dev/zero")
    results = run_all(commands_for(Path("/dev/zero"), work / "in" / "good.onnx", work / "out",
                                   only=("inspect", "rewrite", "check (original)")), mem_cap=2 * GiB)
    for name, (code, _, stderr) in results.items():
        assert_one_line_exit_2(code, stderr, r"/dev/zero: is a character device, not a regular file")
    assert state(work / "out") == {}


@pytest.mark.parametrize("length", ["-1", str(3 * GiB)])
def test_external_length_past_the_tensor_is_refused_before_reading(work, length):
    """A 3 GiB (sparse) data file and a length of -1 or of the whole file: refused, nothing read (1.5 GiB cap)."""
    model = external(work / "in" / "ext")
    data = model.parent / "m.weights"
    with open(data, "r+b") as fh:
        fh.truncate(3 * GiB)
    set_external_field(model, "length", length)
    hashes = {model: sha(model)}
    size = data.stat().st_size
    only = ("inspect", "rewrite --check", "check (original)") if length == "-1" else ("inspect", "rewrite")
    results = run_all(commands_for(model, work / "in" / "good.onnx", work / "out", only), mem_cap=3 * GiB // 2)
    message = "length '-1' is not a non-negative decimal integer" if length == "-1" else f"length {length} disagrees"
    for name, (code, _, stderr) in results.items():
        assert_one_line_exit_2(code, stderr, f"tensor 'w' external data {message}")
    assert {p: sha(p) for p in hashes} == hashes and data.stat().st_size == size
    assert state(work / "out") == {}


@pytest.mark.parametrize("kind", ["char-device", "socket", "folder"])
def test_special_file_as_model(work, kind):
    """In-process (none of these can block): one line naming what the file is."""
    path = work / "in" / "m.onnx"
    if kind == "char-device":
        make_char_device(path, 1, 3)  # a copy of /dev/null
        message = "is a character device, not a regular file"
    elif kind == "socket":
        make_socket(path)
        message = "is a socket, not a regular file"
    else:
        path.mkdir()
        message = "is a folder"
    before = state(work)
    for name, args in commands_for(path, work / "in" / "good.onnx", work / "out").items():
        code, _, stderr = invoke(args)
        assert_one_line_exit_2(code, stderr, message)
    assert state(work) == before


# ------------------------------------------------ writes: only regular files


def _write_args(option: str, model: Path, target: Path, out: Path) -> list:
    return {
        "-o": ["rewrite", model, "--to-2d", "-o", target],
        "--report": ["rewrite", model, "--to-2d", "-o", out / "o.onnx", "--report", target],
        "--json": ["check", model, model, "--providers", "cpu", "--json", target],
    }[option]


def _special_target(kind: str, folder: Path) -> tuple[Path, str]:
    """A write target of the given kind in `folder`, and the expected message."""
    path = folder / "target"
    if kind == "char-device":
        make_char_device(path, 1, 3)  # a copy of /dev/null: replacing it was the bug
        return path, "is a character device, not a regular file; refusing to replace it"
    if kind == "fifo":
        return make_fifo(path), "is a FIFO, not a regular file; refusing to replace it"
    if kind == "socket":
        return make_socket(path), "is a socket, not a regular file; refusing to replace it"
    if kind == "folder":
        path.mkdir()
        return path, "is a folder; give a file name"
    if kind == "link-to-char-device":
        make_char_device(folder / "null", 1, 3)
        path.symlink_to(folder / "null")  # like a link to /dev/stdout or /dev/null
        return path, "is a character device, not a regular file; refusing to replace it"
    if kind == "dangling-link":
        path.symlink_to(folder / "nowhere")
        return path, "is a symbolic link to a missing file; refused"
    raise AssertionError(kind)


@pytest.mark.parametrize("option", ["-o", "--report", "--json"])
@pytest.mark.parametrize("kind", ["char-device", "fifo", "socket", "folder", "link-to-char-device", "dangling-link"])
def test_write_target_that_is_not_a_regular_file_is_refused(work, option, kind):
    model = work / "in" / "good.onnx"
    target, message = _special_target(kind, work / "out")
    before = state(work)
    code, _, stderr = invoke(_write_args(option, model, target, work / "out"))
    assert_one_line_exit_2(code, stderr, f"{option} .*target: {message}")
    assert state(work) == before  # the device is still a device, the link still the same link, nothing else


@pytest.mark.parametrize("external_data", [False, True], ids=["one-file", "external-data"])
@pytest.mark.parametrize("how", ["-o", "--in-place"])
def test_symlink_target_is_written_through(work, how, external_data):
    """The file a link points to is replaced (atomically, in its own folder); the link stays a link."""
    real_dir = work / "real"
    real_dir.mkdir()
    real = real_dir / "model.onnx"
    link = work / "out" / "link.onnx"
    if how == "-o":
        real.write_bytes(b"old output")
        args = ["rewrite", work / "in" / "good.onnx", "--to-2d", "-o", link]
    else:
        write(real, conv_model())
        args = ["rewrite", link, "--to-2d", "--in-place"]
    link.symlink_to(real)
    real.chmod(0o640)
    args += ["--external-data"] if external_data else ["--no-external-data"]
    code, stdout, stderr = invoke(args)
    assert code == 0, stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    rewritten = convrewrite.load(real)
    assert [len(a.ints) for n in rewritten.graph.node for a in n.attribute if a.name == "kernel_shape"] == [2]
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # the replaced file keeps its permissions
    expected = ["model.onnx", "model.onnx.data"] if external_data else ["model.onnx"]
    assert sorted(p.name for p in real_dir.iterdir()) == expected  # beside the real file, no temporary left
    assert sorted(p.name for p in (work / "out").iterdir()) == ["link.onnx"]


@pytest.mark.parametrize("command", ["rewrite --report -", "check --json -"])
def test_dash_is_standard_output(work, command):
    model = work / "in" / "good.onnx"
    if command.startswith("rewrite"):
        args = ["rewrite", model, "--to-2d", "-o", work / "out" / "o.onnx", "--report", "-"]
    else:
        args = ["check", model, model, "--providers", "cpu", "--json", "-"]
    code, stdout, stderr = invoke(args)
    assert code == 0, stderr
    report = json.loads(stdout)  # standard output holds the JSON and nothing else
    if command.startswith("rewrite"):
        assert report["passes"] == ["to-2d"] and report["summary"]["rewritten"] == 1
        assert "wrote" in stderr and (work / "out" / "o.onnx").is_file()
    else:
        assert report["schema"] == "convrewrite.check/2" and report["ok"] is True
    assert not (work / "out" / "-").exists() and not Path("-").exists()


# ------------------------------------------------ every written path is distinct


def test_output_data_over_the_input_model_is_refused(work):
    """`rewrite w.onnx.data -o w.onnx --external-data`: the output's weights would replace the input."""
    model = write(work / "in" / "w.onnx.data", conv_model())
    before = state(work)
    code, _, stderr = invoke(["rewrite", model, "--to-2d", "-o", work / "in" / "w.onnx", "--external-data"])
    assert_one_line_exit_2(code, stderr, r"the output's external data .*w\.onnx\.data: is the input model .*w\.onnx\.data")
    assert state(work) == before


def test_report_over_the_inputs_external_data_is_refused(work):
    """`rewrite e.onnx -o o.onnx --report e.onnx.data`."""
    model = external(work / "in" / "ext", location="e.onnx.data")
    before = state(work)
    code, _, stderr = invoke(["rewrite", model, "--to-2d", "-o", work / "out" / "o.onnx",
                              "--report", model.parent / "e.onnx.data"])
    assert_one_line_exit_2(code, stderr, r"--report .*e\.onnx\.data: is the input's external data")
    assert state(work) == before


def test_json_over_a_models_external_data_is_refused(work):
    """`check m.onnx e.onnx --json e.onnx.data`."""
    model = external(work / "in" / "ext", location="e.onnx.data")
    before = state(work)
    code, _, stderr = invoke(["check", work / "in" / "good.onnx", model, "--providers", "cpu",
                              "--json", model.parent / "." / "e.onnx.data"])
    assert_one_line_exit_2(code, stderr, r"--json .*e\.onnx\.data: is the input CANDIDATE's external data")
    assert state(work) == before


def test_report_over_the_outputs_data_is_refused(work):
    """`rewrite m.onnx -o o.onnx --external-data --report o.onnx.data` printed 'wrote o.onnx' over broken weights."""
    before = state(work)
    code, _, stderr = invoke(["rewrite", work / "in" / "good.onnx", "--to-2d", "-o", work / "out" / "o.onnx",
                              "--external-data", "--report", work / "out" / "o.onnx.data"])
    assert_one_line_exit_2(code, stderr, r"--report .*o\.onnx\.data: is also the output's external data")
    assert state(work) == before


def test_written_paths_differ_in_every_spelling(work):
    model = work / "in" / "good.onnx"
    out = work / "out"
    inputs = work / "in" / "x.npz"
    np.savez(inputs, x=np.zeros((1, 4, 16), np.float32))
    (out / "o.onnx").write_bytes(b"old output")
    os.link(out / "o.onnx", out / "hard.json")
    (out / "link.json").symlink_to(out / "o.onnx")
    os.link(inputs, work / "in" / "x-hard.json")
    pb_dir = work / "in" / "pb"
    pb_dir.mkdir()
    cases = [
        # --report naming -o: by `..`, a hard link, a symlink
        (["rewrite", model, "--to-2d", "-o", out / "o.onnx", "--report", out / ".." / "out" / "o.onnx"],
         "--report .*: is also -o"),
        (["rewrite", model, "--to-2d", "-o", out / "o.onnx", "--report", out / "hard.json"], "--report .*: is also -o"),
        (["rewrite", model, "--to-2d", "-o", out / "o.onnx", "--report", out / "link.json"], "--report .*: is also -o"),
        # --report naming --inputs (hard link), or inside an --inputs folder
        (["rewrite", model, "--to-2d", "-o", out / "n.onnx", "--check", "--providers", "cpu", "--inputs", inputs,
          "--report", work / "in" / "x-hard.json"], "--report .*x-hard.json: is --inputs"),
        (["rewrite", model, "--to-2d", "-o", out / "n.onnx", "--check", "--providers", "cpu", "--inputs", pb_dir,
          "--report", pb_dir / "input_0.pb"], "--report .*: is inside --inputs"),
        # -o naming --inputs
        (["rewrite", model, "--to-2d", "-o", inputs, "--check", "--providers", "cpu", "--inputs", inputs],
         "-o .*x.npz: is --inputs"),
        # --json naming --expected or --inputs
        (["check", model, "--expected", inputs, "--providers", "cpu", "--json", work / "in" / "x-hard.json"],
         "--json .*: is --expected"),
        (["check", model, model, "--inputs", inputs, "--providers", "cpu", "--json", inputs], "--json .*: is --inputs"),
    ]
    before = state(work)
    for args, message in cases:
        code, _, stderr = invoke(args)
        assert_one_line_exit_2(code, stderr, message)
    assert state(work) == before


def test_case_folding_filesystems_count_as_one_name(tmp_path, monkeypatch):
    """Two written names that differ only in case name one file where the folder folds case (simulated here)."""
    a, b = tmp_path / "Report.json", tmp_path / "report.json"
    mpaths.check_distinct([("-o", a), ("--report", b)], [])  # ext4 and tmpfs keep case: two files
    monkeypatch.setattr(mpaths, "_folds_case", lambda folder: True)
    with pytest.raises(OutputError, match=r"--report .*report.json: is also -o .*Report.json"):
        mpaths.check_distinct([("-o", a), ("--report", b)], [])


def test_in_place_may_replace_the_model_and_its_data_but_not_via_report(work):
    model = external(work / "in" / "ext", location="m.onnx.data")
    before = state(work)
    code, _, stderr = invoke(["rewrite", model, "--to-2d", "--in-place", "--report", model.parent / "m.onnx.data"])
    assert_one_line_exit_2(code, stderr, r"--report .*m\.onnx\.data: is also the output's external data")
    assert state(work) == before
    code, _, stderr = invoke(["rewrite", model, "--to-2d", "--in-place"])
    assert code == 0, stderr
    assert sorted(p.name for p in model.parent.iterdir()) == ["m.onnx", "m.onnx.data"]
    assert [len(a.ints) for n in convrewrite.load(model).graph.node for a in n.attribute
            if a.name == "kernel_shape"] == [2]


# ------------------------------------------------ names, NUL bytes, permissions


LONG = "x" * 251 + ".onnx"  # 256 bytes: one more than a file name may have


@pytest.mark.parametrize("where", ["model", "-o", "--report", "--json", "check CANDIDATE", "external data"])
def test_long_names_are_one_line(work, where):
    good, out = work / "in" / "good.onnx", work / "out"
    args = {
        "model": ["inspect", work / "in" / LONG],
        "-o": ["rewrite", good, "--to-2d", "-o", out / LONG],
        "--report": ["rewrite", good, "--to-2d", "-o", out / "o.onnx", "--report", out / LONG],
        "--json": ["check", good, good, "--providers", "cpu", "--json", out / LONG],
        "check CANDIDATE": ["check", good, work / "in" / LONG, "--providers", "cpu"],
        "external data": None,
    }[where]
    if args is None:
        model = external(work / "in" / "ext")
        set_external_field(model, "location", LONG)
        args = ["rewrite", model, "--to-2d", "-o", out / "o.onnx"]
    before = state(work)
    code, _, stderr = invoke(args)
    assert_one_line_exit_2(code, stderr, "file name too long")
    assert state(work) == before


def test_nul_bytes_in_paths_are_one_line_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="NUL byte"):
        convrewrite.load(str(tmp_path / "m\0.onnx"))
    with pytest.raises(OutputError, match="NUL byte"):
        convrewrite.save(conv_model(), str(tmp_path / "o\0.onnx"))
    with pytest.raises(OutputError, match="NUL byte"):
        mpaths.check_distinct([("--report", "r\0.json")], [])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("what", ["model", "external data"])
def test_unreadable_files_are_one_line(tmp_path, what):
    if what == "model":
        model = write(tmp_path / "m.onnx", conv_model())
        locked = model
    else:
        model = external(tmp_path / "ext")
        locked = model.parent / "m.weights"
    locked.chmod(0o000)
    try:
        proc = run_unprivileged(["inspect", model])
        if proc.returncode == 0:
            pytest.skip("this user reads a mode-000 file even without CAP_DAC_OVERRIDE")
        assert_one_line_exit_2(proc.returncode, proc.stderr, "permission denied")
    finally:
        locked.chmod(0o644)


# ------------------------------------------------ the helpers the checker shares


def test_require_regular_file_never_opens(tmp_path):
    fifo = make_fifo(tmp_path / "f")
    with pytest.raises(ModelLoadError, match=r"^--inputs .*f: is a FIFO, not a regular file$"):
        mpaths.require_regular_file(fifo, "--inputs")  # would block forever if it opened the FIFO
    with pytest.raises(ModelLoadError, match=r"^--inputs .*nope: no such file$"):
        mpaths.require_regular_file(tmp_path / "nope", "--inputs")
    with pytest.raises(ModelLoadError, match=r"is a folder, not a regular file$"):
        mpaths.require_regular_file(tmp_path, "--inputs")
    with pytest.raises(ModelLoadError, match=r"file name too long$"):
        mpaths.require_regular_file(tmp_path / LONG, "--inputs")
    (tmp_path / "r").write_bytes(b"abc")
    assert mpaths.require_regular_file(tmp_path / "r", "--inputs").st_size == 3


def test_read_regular_bytes_reads_at_most_the_size_and_the_limit(tmp_path):
    path = tmp_path / "r"
    path.write_bytes(b"x" * 100)
    assert mpaths.read_regular_bytes(path, "--expected") == b"x" * 100
    assert mpaths.read_regular_bytes(path, "--expected", limit=100) == b"x" * 100
    with pytest.raises(ModelLoadError, match=r"^--expected .*r: 100 bytes, more than the 99 allowed$"):
        mpaths.read_regular_bytes(path, "--expected", limit=99)
    if Path("/dev/zero").exists():
        with pytest.raises(ModelLoadError, match="is a character device"):
            mpaths.read_regular_bytes("/dev/zero", "--inputs")


def test_atomic_write_bytes_and_write_text_target(tmp_path, capsys):
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o600)
    (tmp_path / "link.json").symlink_to(real)
    mwrite.atomic_write_bytes(tmp_path / "link.json", [b"new ", b"bytes"], "--json")
    assert real.read_bytes() == b"new bytes" and (tmp_path / "link.json").is_symlink()
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    mwrite.write_text_target("-", "to stdout\n", "--json")
    assert capsys.readouterr().out == "to stdout\n"
    mwrite.write_text_target(str(tmp_path / "t.txt"), "text\n", "--report")
    assert (tmp_path / "t.txt").read_text() == "text\n"
    with pytest.raises(OutputError, match=r"^--json .*missing/x: folder .* does not exist$"):
        mwrite.atomic_write_bytes(tmp_path / "missing" / "x", [b""], "--json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json", "t.txt"]


def test_check_distinct_names_both(tmp_path):
    a = tmp_path / "a.npz"
    a.write_bytes(b"a")
    with pytest.raises(OutputError, match=r"^--json .*a.npz: is --inputs .*a.npz; refusing to overwrite it$"):
        mpaths.check_distinct([("--json", str(tmp_path / "." / "a.npz"))], [("--inputs", str(a))])
    mpaths.check_distinct([("--json", "-"), ("--report", "-")], [("--inputs", str(a))])  # stdout is not a file
    mpaths.check_distinct([("--json", str(tmp_path / "b.json"))], [("--inputs", str(a)), ("--expected", None)])


# ------------------------------------------------ Ctrl-C from the first instant


def test_importing_the_entry_point_is_light():
    """`convrewrite.cli:main` loads neither onnx nor numpy: they load inside the Ctrl-C handler."""
    code = ("import sys, convrewrite, convrewrite.cli\n"
            "print(sorted(m for m in ('onnx', 'numpy', 'onnxruntime', 'google.protobuf') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, env=ENV)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def _mapped(pid: int, needle: str) -> bool:
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return needle in fh.read()
    except OSError:
        return False


# The console script pip generates for `convrewrite = convrewrite.cli:main`, verbatim in substance.
CONSOLE_SCRIPT = "import sys\nfrom convrewrite.cli import main\nsys.argv[0] = 'convrewrite'\nsys.exit(main())\n"


@pytest.mark.parametrize("entry, moment", [
    ("python -m convrewrite", "importing numpy"),
    ("python -m convrewrite", "importing onnx"),
    ("console script", "importing numpy"),
    ("console script", "importing onnx"),
    ("console script", "0.3 s"),  # during `check`, which loads onnxruntime and runs both models
])
def test_ctrl_c_at_start_up_is_one_line_exit_130(tmp_path, entry, moment):
    if not Path("/proc/self/maps").exists():
        pytest.skip("needs Linux /proc")
    model = write(tmp_path / "m.onnx", conv_model())
    argv = ["rewrite", str(model), "--to-2d", "-o", str(tmp_path / "o.onnx")]
    if moment.endswith(" s"):
        argv = ["check", str(model), str(model), "--providers", "cpu", "--json", str(tmp_path / "r.json")]
    cmd = PY + argv if entry == "python -m convrewrite" else [sys.executable, "-c", CONSOLE_SCRIPT] + argv
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=child_setup())
    if moment.endswith(" s"):
        time.sleep(float(moment.split()[0]))
    else:
        needle = {"importing numpy": "numpy", "importing onnx": "onnx_cpp2py_export"}[moment]
        deadline = time.monotonic() + TIMEOUT
        while not _mapped(proc.pid, needle) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    code, _, stderr = finish(proc)
    assert "Traceback" not in stderr, stderr
    if code == 0:
        pytest.skip(f"the run finished before the signal ({moment})")
    assert code == 130, (code, stderr)
    assert stderr.strip().splitlines() == ["convrewrite: interrupted; no partial file written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
