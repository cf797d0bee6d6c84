"""Write models and reports atomically, and only over regular files.

Every write goes to a temporary file beside the real target (through a
symlink: beside the file it points to) and is renamed over it, so an
interrupted run leaves the old file or the new one, never a part. A model is
serialized once and checked by onnx.checker (full) before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Iterator

import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from ..errors import OutputError
from .paths import PathLike, check_distinct, oserror_text, show, writable_target
from .tensors import all_tensors, estimated_size, tensor_nbytes
from .validate import validate

PROTOBUF_LIMIT = 2**31 - 1
# Leave room for the proto's own overhead: past this, save with external data.
EXTERNAL_DATA_THRESHOLD = 2**31 - 64 * 2**20
# Tensors at least this large go to the external data file.
EXTERNAL_TENSOR_MIN_BYTES = 1024


def save(
    model: ModelProto,
    path: str | os.PathLike,
    *,
    external_data: bool | None = None,
    source: str | os.PathLike | None = None,
    in_place: bool = False,
    check: bool = True,
    source_files: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write `model` to `path` atomically, after onnx.checker (full) accepts it; return the file written.

    external_data: True to write weights to `<name>.data` beside the model,
    None to decide by size (past protobuf's 2 GB limit). `source` is the input
    file and `source_files` its external data files (`LoadedModel.external_files`):
    writing over any of them is refused unless `in_place`. A symlink is
    written through (the file it points to is replaced, the link kept). Any
    failure to write (folder gone, read-only, disk full) is an OutputError
    and leaves nothing behind.
    """
    target = writable_target(path, "")
    if external_data is None:
        external_data = needs_external_data(model)
    written = output_paths(path, external_data, "output")
    if not in_place:
        read = [("the input model", source)] if source is not None else []
        read += [("the input's external data", f) for f in source_files]
        check_distinct(written, read)
    if check:
        validate(model, show(path), output=True)
    try:
        if external_data:
            _save_external(model, target)
        else:
            _atomic_write(target, serialized_chunks(model))
    except OSError as exc:
        raise OutputError(f"{show(path)}: cannot write: {oserror_text(exc)}; nothing written") from None
    return target


def needs_external_data(model: ModelProto) -> bool:
    """Whether the model is too big for one protobuf file (past about 2 GB): its weights must go to `.data`."""
    return estimated_size(model) > EXTERNAL_DATA_THRESHOLD


def output_paths(path: PathLike, external_data: bool, what: str = "-o") -> list[tuple[str, Path]]:
    """(label, path) of every file a save to `path` writes, each checked writable: the model and its `.data`.

    For `check_distinct` before any work. The `.data` file goes beside the
    real model file and must itself be absent or a plain regular file (not a
    symlink: the model names it relative to its own folder).
    """
    target = writable_target(path, what)
    written: list[tuple[str, Path]] = [(what, Path(path))]
    if external_data:
        data = target.parent / (target.name + ".data")
        if data.is_symlink():
            raise OutputError(f"{show(data)}: the output's external data file is a symbolic link; refusing to replace it")
        written.append(("the output's external data", writable_target(data, "the output's external data")))
    return written


def atomic_write_bytes(target: PathLike, chunks: Iterable[bytes], what: str) -> None:
    """Write `chunks` to `target` atomically (through a symlink); refuse a target that is not a regular file."""
    real = writable_target(target, what)
    try:
        _atomic_write(real, chunks)
    except OSError as exc:
        label = f"{what} {show(target)}" if what else show(target)
        raise OutputError(f"{label}: cannot write: {oserror_text(exc)}; nothing written") from None


def write_text_target(target: str, text: str, what: str) -> None:
    """Write `text` to `target`, or to standard output when `target` is `-` (for --report, --json)."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    atomic_write_bytes(target, [text.encode("utf-8")], what)


def _mode_for(target: Path) -> int:
    """The replaced file's permission bits, or the umask's default for a new file."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _temp_prefix(name: str) -> str:
    # Short enough that the temporary name fits where a 255-byte target name fits.
    return "." + name[:64] + "."


def _atomic_write(target: Path, chunks: Iterable[bytes]) -> None:
    """Write to a temporary file beside `target`, then rename it over `target`.

    The rename is atomic, so an interrupted run (Ctrl-C, SIGTERM, an error)
    leaves the old file or the new one, never a part. No fsync: it would
    double the time of a multi-GB save and only matters for power loss.
    """
    folder = target.parent if str(target.parent) else Path(".")
    mode = _mode_for(target)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            for i, chunk in enumerate(chunks):
                fh.write(chunk)
                if i == 0:
                    _test_pause("write", fh)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(message_type, field_name: str) -> bytes:
    """Wire key of a length-delimited field (field number << 3 | 2)."""
    return _varint(message_type.DESCRIPTOR.fields_by_name[field_name].number << 3 | 2)


def serialized_chunks(model: ModelProto) -> Iterator[bytes]:
    """The model's protobuf bytes in pieces, each initializer serialized on its own.

    `SerializeToString` of a whole model builds the bytes once inside protobuf
    and copies them once more into Python: two model-sized buffers on top of
    the model. Writing the graph's initializers one at a time keeps the
    extra memory to one tensor. The pieces parse to the same model (fields of
    one message may come in any order; repeated fields keep theirs).
    """
    from ..shapes import copy_fields

    graph = model.graph
    if len(graph.initializer) < 2:
        yield model.SerializeToString()
        return
    shell = ModelProto()
    copy_fields(model, shell, skip="graph")
    graph_shell = onnx.GraphProto()
    copy_fields(graph, graph_shell, skip="initializer")
    graph_head = graph_shell.SerializeToString()
    init_key = _key(onnx.GraphProto, "initializer")
    sizes = [t.ByteSize() for t in graph.initializer]
    graph_len = len(graph_head) + sum(len(init_key) + len(_varint(n)) + n for n in sizes)
    yield shell.SerializeToString()
    yield _key(ModelProto, "graph") + _varint(graph_len)
    yield graph_head
    for t, n in zip(graph.initializer, sizes):
        yield init_key + _varint(n)
        yield t.SerializeToString()


# Private test hook, not an interface: `_CONVREWRITE_TEST_PAUSE=PHASE:SECONDS:MARKER`
# makes a save stop at PHASE ("write": part of the temporary file written and
# flushed; "rename": between the two renames of an external-data save),
# create the file MARKER and sleep SECONDS there, so that tests/model/test_hostile.py
# can send SIGINT/SIGTERM at a known point of the save.
_PAUSE_ENV = "_CONVREWRITE_TEST_PAUSE"


def _test_pause(phase: str, fh=None) -> None:
    spec = os.environ.get(_PAUSE_ENV)
    if not spec:
        return
    try:
        want, seconds, marker = spec.split(":", 2)
        pause = float(seconds)
    except ValueError:
        return
    if want != phase:
        return
    if fh is not None:
        fh.flush()
    Path(marker).touch()
    # Short sleeps, as a real write runs bytecode between chunks: a signal that the kernel hands to
    # another thread (BLAS, onnxruntime) does not interrupt the main thread's sleep, and Python runs
    # its handler only when the main thread next runs bytecode.
    deadline = time.monotonic() + pause
    while time.monotonic() < deadline:
        time.sleep(0.05)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block, then deliver them; a no-op outside the main thread.

    Masking the signals would not do: a process-directed signal goes to any
    thread that does not block it (onnxruntime and BLAS start threads), and
    Python runs its handler in the main thread all the same. So the handlers
    are swapped for ones that only note the signal, and the signal is raised
    again once the block is done.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def note(signum: int, frame) -> None:
        received.append(signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, note)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if received:
            signal.raise_signal(received[0])


def _save_external(model: ModelProto, target: Path) -> None:
    """Write weights to `<name>.data` and the graph to `<name>`, both atomically.

    Both files are first written into a private temporary folder beside the
    target, then renamed into place (data first, then the model). Tensors are
    swapped to external references only while the proto is serialized, then
    restored: the caller's model is left as it was and no weight is copied
    beyond one tensor at a time.
    """
    folder = target.parent if str(target.parent) else Path(".")
    data_name = target.name + ".data"
    modes = _mode_for(folder / data_name), _mode_for(target)
    tmpdir = tempfile.mkdtemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=folder)
    data_tmp = os.path.join(tmpdir, data_name)
    model_tmp = os.path.join(tmpdir, target.name)
    swapped: list[tuple[TensorProto, bytes | None, TensorProto | None]] = []
    try:
        try:
            with open(data_tmp, "wb") as fh:
                _write_tensors(model, fh, data_name, swapped)
            graph_bytes = model.SerializeToString()
        finally:
            _restore(swapped)
        with open(model_tmp, "wb") as fh:
            fh.write(graph_bytes)
        for tmp, mode in zip((data_tmp, model_tmp), modes):
            os.chmod(tmp, mode)
        with _signals_deferred():
            # The two renames go together: a Ctrl-C or SIGTERM between them
            # would leave an old model beside new weights.
            os.replace(data_tmp, folder / data_name)
            _test_pause("rename")
            os.replace(model_tmp, target)
    finally:
        for leftover in (data_tmp, model_tmp):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        try:
            os.rmdir(tmpdir)
        except OSError:
            pass


def _write_tensors(model: ModelProto, fh, data_name: str, swapped: list) -> None:
    """Append each large tensor's bytes to `fh` (4 KiB aligned) and point the tensor at them."""
    offset = 0
    for t in all_tensors(model):
        if t.data_location == TensorProto.EXTERNAL:
            continue
        if t.HasField("raw_data"):
            raw = t.raw_data
            if len(raw) < EXTERNAL_TENSOR_MIN_BYTES:
                continue
            backup = None
        else:
            if tensor_nbytes(t) < EXTERNAL_TENSOR_MIN_BYTES or t.data_type == TensorProto.STRING:
                continue
            raw = numpy_helper.to_array(t).tobytes()
            backup = TensorProto()
            backup.CopyFrom(t)
        pad = (-offset) % 4096
        if pad:
            fh.write(b"\0" * pad)
            offset += pad
        fh.write(raw)
        if not swapped:
            _test_pause("write", fh)
        swapped.append((t, raw if backup is None else None, backup))
        _make_external(t, data_name, offset, len(raw))
        offset += len(raw)


def _make_external(t: TensorProto, location: str, offset: int, length: int) -> None:
    t.ClearField("raw_data")
    for name in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        t.ClearField(name)
    del t.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    t.data_location = TensorProto.EXTERNAL


def _restore(swapped) -> None:
    for t, raw, backup in swapped:
        if backup is not None:
            t.CopyFrom(backup)
        else:
            del t.external_data[:]
            t.data_location = TensorProto.DEFAULT
            t.raw_data = raw
