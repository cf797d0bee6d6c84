"""Load and save ONNX models safely.

Loading accepts a path, bytes or a ModelProto, validates external-data
locations before touching them (no path traversal), and rejects files that are
empty or not ONNX with one clear message. Saving serializes once, runs
onnx.checker (full check: shape inference included) on exactly the bytes to be
written, and writes atomically: a temporary file in the target folder, then a
rename. Large models go out with external data; IR version, opsets, producer,
metadata, doc strings and value_info are kept because the proto is written as
it is.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Union

import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto, TensorProto, numpy_helper

from .errors import ModelInvalidError, ModelLoadError, OutputError

ModelSource = Union[str, os.PathLike, bytes, ModelProto]

PROTOBUF_LIMIT = 2**31 - 1
# Leave room for the proto's own overhead: past this, save with external data.
EXTERNAL_DATA_THRESHOLD = 2**31 - 64 * 2**20
# Tensors at least this large go to the external data file.
EXTERNAL_TENSOR_MIN_BYTES = 1024


@dataclass
class LoadedModel:
    """A model and where it came from (what `save` needs to write it back alike)."""

    model: ModelProto
    path: Path | None = None
    had_external_data: bool = False
    external_files: list[Path] = field(default_factory=list)


def load(source: ModelSource, *, check: bool = True) -> ModelProto:
    """Load a model from a path, bytes or ModelProto (external data included)."""
    return load_with_info(source, check=check).model


def load_with_info(source: ModelSource, *, check: bool = True) -> LoadedModel:
    """Like `load`, also telling whether the model used external data and from where."""
    if isinstance(source, ModelProto):
        _validate_structure(source, "model")
        if check:
            validate(source, "model")
        return LoadedModel(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        model = _parse(bytes(source), "bytes")
        if check:
            validate(model, "bytes")
        return LoadedModel(model)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(Path(source), check)
    raise ModelLoadError(
        f"cannot load a model from {type(source).__name__}: give a path, bytes or an onnx.ModelProto"
    )


def _load_path(path: Path, check: bool) -> LoadedModel:
    label = str(path)
    if not path.exists():
        raise ModelLoadError(f"{label}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{label}: is a folder, not an ONNX model file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{label}: cannot read: {exc.strerror or exc}") from None
    model = _parse(data, label)
    del data  # the proto holds its own copy: keep peak memory near one model
    base = path.resolve().parent
    external = list(_external_tensors(model))
    files: list[Path] = []
    if external:
        files = _validate_external_data(external, base, label)
        _load_external(external, base, label)
    if check:
        validate(model, label)
    return LoadedModel(model, path, bool(external), files)


def _parse(data: bytes, label: str) -> ModelProto:
    if not data:
        raise ModelLoadError(f"{label}: empty file, not an ONNX model")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        kind = "truncated or corrupt" if _looks_like_onnx_prefix(data) else "not an ONNX model"
        raise ModelLoadError(f"{label}: {kind} (protobuf parse failed: {exc})") from None
    _validate_structure(model, label)
    return model


def _looks_like_onnx_prefix(data: bytes) -> bool:
    # ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
    return data[:1] == b"\x08"


def _validate_structure(model: ModelProto, label: str) -> None:
    """Reject protobufs that parsed but are not models (empty, text, random bytes)."""
    if not model.ListFields():
        raise ModelLoadError(f"{label}: empty model (no graph, no opsets)")
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelLoadError(f"{label}: not an ONNX model (no IR version or no graph)")
    if model.ir_version >= 3 and not model.opset_import:
        raise ModelLoadError(f"{label}: not a valid ONNX model (no opset_import)")


def validate(model: ModelProto, label: str, *, output: bool = False) -> None:
    """onnx.checker with full_check (strict shape inference) on the weightless skeleton, plus every tensor's size.

    The checker reads only the graph from the skeleton (see
    `shapes.skeleton`), so its cost does not grow with the weights and no
    multi-GB copy is made; `check_tensor_sizes` checks what the checker would
    have checked of the weights themselves.
    """
    from .shapes import skeleton

    prefix = f"{label}: output rejected by onnx.checker, nothing written" if output else f"{label}: rejected by onnx.checker"
    try:
        onnx.checker.check_model(skeleton(model).SerializeToString(), full_check=True)
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.shape_inference.InferenceError) as exc:
        raise ModelInvalidError(f"{prefix}: {_first_line(exc)}") from None
    problem = check_tensor_sizes(model)
    if problem:
        raise ModelInvalidError(f"{prefix}: {problem}")
    # What onnx.checker lets through but nothing could run or rewrite safely.
    problem = check_domains(model) or check_convolutions(model)
    if problem:
        what = "output is not a valid model, nothing written" if output else "not a valid model"
        raise ModelInvalidError(f"{label}: {what}: {problem}")


def check_tensor_sizes(model: ModelProto) -> str | None:
    """The first initializer whose stored bytes disagree with its dims and type, if any."""
    for t in model.graph.initializer:
        if not t.HasField("raw_data") or t.data_location == TensorProto.EXTERNAL:
            continue
        if any(d < 0 for d in t.dims):
            return f"initializer {t.name!r} has a negative dimension {list(t.dims)}"
        if t.data_type in (TensorProto.UNDEFINED, TensorProto.STRING):
            return f"initializer {t.name!r} has data type {t.data_type} with raw data"
        expected = tensor_nbytes(t)
        if expected and len(t.raw_data) != expected:
            return f"initializer {t.name!r} holds {len(t.raw_data)} bytes; dims {list(t.dims)} need {expected}"
    return None


# Operator domains onnxruntime implements beyond onnx's own (contrib, layout, extensions, aten fallback).
RUNTIME_DOMAINS = frozenset({
    "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.microsoft.mlfeaturizers",
    "com.microsoft.dml", "com.ms.internal.nhwc", "ai.onnx.contrib", "org.pytorch.aten",
})


@functools.lru_cache(maxsize=None)
def _onnx_domains() -> frozenset[str]:
    return frozenset({"", "ai.onnx"} | {s.domain for s in onnx.defs.get_all_schemas_with_history()})


def check_domains(model: ModelProto) -> str | None:
    """The first node whose operator comes from a domain nobody defines (not onnx, onnxruntime or a model function).

    onnx.checker skips nodes of unknown domains, so such a model passes it,
    yet nothing can run it or infer its shapes: convrewrite could neither
    prove a rewrite around that node nor check the result.
    """
    known = _onnx_domains() | RUNTIME_DOMAINS | {f.domain for f in model.functions}
    for body, where in _bodies(model):
        for node in body.node:
            if node.domain not in known:
                name = node.name or node.op_type
                return (f"node {name!r} ({where}) uses {node.domain}::{node.op_type}, an operator of the unknown "
                        f"opset domain {node.domain!r}; refused")
    return None


def check_convolutions(model: ModelProto) -> str | None:
    """The first convolution whose attributes contradict its weight or its input, if any.

    onnx.checker takes `kernel_shape` on trust and does not know a weight's
    rank when the input's is unknown; every pass reads a convolution through
    ConvAttrs, so a contradiction here is reported once, as bad input.
    """
    from .conv import CONV_OPS, WEIGHT_INPUT, ConvAttrError, ConvAttrs

    for body, where in _bodies(model):
        dims: dict[str, list[int | None]] = {}
        for t in getattr(body, "initializer", ()):
            dims[t.name] = list(t.dims)
        typed = isinstance(body, onnx.GraphProto)  # a function's inputs are bare names
        for group in (body.input if typed else (), getattr(body, "value_info", ())):
            for vi in group:
                if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                    dims.setdefault(vi.name, [d.dim_value if d.HasField("dim_value") else None
                                              for d in vi.type.tensor_type.shape.dim])
        for node in body.node:
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                        dims[node.output[0]] = list(a.t.dims)
            if node.op_type not in CONV_OPS or node.domain not in ("", "ai.onnx"):
                continue
            w = WEIGHT_INPUT[node.op_type]
            weight = dims.get(node.input[w]) if len(node.input) > w and node.input[w] else None
            label = f"{node.op_type} {node.name or '(unnamed)'} ({where})"
            try:
                attrs = ConvAttrs.from_node(node, weight) if weight is not None or _has_attr(node, "kernel_shape") else None
            except ConvAttrError as exc:
                return f"{label}: {exc}"
            data = dims.get(node.input[0]) if node.input and node.input[0] else None
            if attrs is not None and data is not None and len(data) != attrs.rank + 2:
                return f"{label}: input has rank {len(data)} but the kernel has {attrs.rank} spatial axes"
    return None


def _has_attr(node: onnx.NodeProto, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


def _bodies(model: ModelProto) -> Iterator[tuple[object, str]]:
    """Every node list with a readable place: the main graph, subgraphs, model-local functions."""
    for g in _all_graphs(model.graph):
        yield g, "graph " + (g.name or "main") if g is not model.graph else "main graph"
    for func in model.functions:
        yield func, f"function {func.name}"
        for g in _function_graphs(func):
            yield g, f"graph {g.name or '?'} in function {func.name}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------- external data


def _all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Every graph: the main one and all subgraphs, iteratively (no recursion limit)."""
    stack = [graph]
    while stack:
        g = stack.pop()
        yield g
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)


def _model_graphs(model: ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph, its subgraphs, and the subgraphs inside model-local functions."""
    yield from _all_graphs(model.graph)
    for func in model.functions:
        yield from _function_graphs(func)


def _function_graphs(func: onnx.FunctionProto) -> Iterator[onnx.GraphProto]:
    """The subgraphs (any depth) of a model-local function's nodes."""
    for node in func.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _all_graphs(g)


def all_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Initializers and Constant/attribute tensors, in every graph and function."""
    for g in _model_graphs(model):
        yield from g.initializer
        for s in g.sparse_initializer:
            yield s.values
        yield from _attribute_tensors(g.node)
    for func in model.functions:
        yield from _attribute_tensors(func.node)


def _attribute_tensors(nodes) -> Iterator[TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.TENSORS:
                yield from attr.tensors


def _external_tensors(model: ModelProto) -> Iterator[TensorProto]:
    for t in all_tensors(model):
        if t.data_location == TensorProto.EXTERNAL:
            yield t


def _external_info(t: TensorProto) -> dict[str, str]:
    return {e.key: e.value for e in t.external_data}


def _validate_external_data(tensors: list[TensorProto], base: Path, label: str) -> list[Path]:
    """Every location must stay inside the model's folder, exist and be long enough."""
    files: dict[Path, int] = {}
    for t in tensors:
        info = _external_info(t)
        location = info.get("location", "")
        if not location:
            raise ModelLoadError(f"{label}: tensor {t.name!r} has external data without a location")
        if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location[:3]:
            raise ModelLoadError(
                f"{label}: tensor {t.name!r} external data location {location!r} is an absolute path; refused"
            )
        target = (base / location).resolve()
        if base != target and base not in target.parents:
            raise ModelLoadError(
                f"{label}: tensor {t.name!r} external data location {location!r} points outside the model's folder; refused"
            )
        if not target.is_file():
            raise ModelLoadError(f"{label}: external data file {location!r} (tensor {t.name!r}) is missing")
        size = files.setdefault(target, target.stat().st_size)
        offset = int(info.get("offset", "0") or 0)
        length = info.get("length")
        needed = offset + (int(length) if length else tensor_nbytes(t))
        if needed > size:
            raise ModelLoadError(
                f"{label}: external data file {location!r} is too short for tensor {t.name!r} "
                f"(needs {needed} bytes, has {size})"
            )
    return sorted(files)


def tensor_nbytes(t: TensorProto) -> int:
    """A tensor's data size in bytes from its dims and type (0 when the type has no fixed size)."""
    count = math.prod(t.dims)
    itemsize = _ITEMSIZE.get(t.data_type)
    if itemsize is None:
        try:
            itemsize = _ITEMSIZE[t.data_type] = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except (KeyError, ValueError, TypeError):
            return 0
    if t.data_type in _PACKED_4BIT:
        return (count + 1) // 2
    if t.data_type in _PACKED_2BIT:
        return (count + 3) // 4
    return count * itemsize


_ITEMSIZE: dict[int, int] = {}
_PACKED_4BIT = frozenset(getattr(TensorProto, n) for n in ("INT4", "UINT4", "FLOAT4E2M1") if hasattr(TensorProto, n))
_PACKED_2BIT = frozenset(getattr(TensorProto, n) for n in ("INT2", "UINT2") if hasattr(TensorProto, n))


def _load_external(tensors: list[TensorProto], base: Path, label: str) -> None:
    handles: dict[Path, object] = {}
    try:
        for t in tensors:
            info = _external_info(t)
            target = (base / info["location"]).resolve()
            fh = handles.get(target)
            if fh is None:
                fh = handles[target] = open(target, "rb")
            offset = int(info.get("offset", "0") or 0)
            length = int(info["length"]) if info.get("length") else tensor_nbytes(t)
            fh.seek(offset)
            t.raw_data = fh.read(length)
            del t.external_data[:]
            t.data_location = TensorProto.DEFAULT
    except OSError as exc:
        raise ModelLoadError(f"{label}: cannot read external data: {exc}") from None
    finally:
        for fh in handles.values():
            fh.close()


# ---------------------------------------------------------------------- saving


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
    """Write `model` to `path` atomically, after onnx.checker (full) accepts it.

    external_data: True to write weights to `<name>.data` beside the model,
    None to decide by size (past protobuf's 2 GB limit). `source` is the input
    file and `source_files` its external data files (`LoadedModel.external_files`):
    writing over any of them is refused unless `in_place`. Any failure to
    write (folder gone, read-only, disk full) is an OutputError and leaves
    nothing behind.
    """
    target = writable_target(path, str(path))
    folder = target.parent
    if source is not None and not in_place and same_file(target, source):
        raise OutputError(f"{target}: is the input model; refusing to overwrite it (use --in-place)")
    if check:
        validate(model, str(target), output=True)
    if external_data is None:
        external_data = estimated_size(model) > EXTERNAL_DATA_THRESHOLD
    if not in_place:
        written = [target, folder / (target.name + ".data")] if external_data else [target]
        for src in source_files:
            for out in written:
                if same_file(out, src):
                    raise OutputError(
                        f"{target}: writing it would overwrite {out.name}, the input's external data; refused"
                    )
    try:
        if external_data:
            _save_external(model, target, folder)
        else:
            _atomic_write(folder, target, serialized_chunks(model))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write: {exc.strerror or exc}; nothing written") from None
    return target


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
    from .shapes import copy_fields

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


def estimated_size(model: ModelProto) -> int:
    """Serialized size, from the tensors' dims (ModelProto.ByteSize serializes the whole model to count)."""
    total = 0
    for t in all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            total += tensor_nbytes(t)
    return total + 64 * len(model.graph.node)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (any spelling, symlink or hard link); by absolute path when one is missing."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def writable_target(path: str | os.PathLike, label: str) -> Path:
    """`path` as a Path, after refusing one that cannot be written: a folder, or in a missing or read-only folder.

    Run before any work, so a bad -o/--report/--json fails at once rather
    than after a long rewrite or check.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputError(f"{label}: is a folder; give a file name")
    if not folder.is_dir():
        raise OutputError(f"{label}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"{label}: folder {str(folder)!r} is not writable")
    return target


def _atomic_write(folder: Path, target: Path, chunks, mode: int | None = None) -> None:
    """Write to a temporary file beside `target`, then rename it over `target`.

    The rename is atomic, so an interrupted run (Ctrl-C, SIGTERM, an error)
    leaves the old file or the new one, never a part. No fsync: it would
    double the time of a multi-GB save and only matters for power loss.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            for i, chunk in enumerate(chunks):
                fh.write(chunk)
                if i == 0:
                    _test_pause("write", fh)
        os.chmod(tmp, mode if mode is not None else _default_mode())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# Private test hook, not an interface: `_CONVREWRITE_TEST_PAUSE=PHASE:SECONDS:MARKER`
# makes a save stop at PHASE ("write": part of the temporary file written and
# flushed; "rename": between the two renames of an external-data save),
# create the file MARKER and sleep SECONDS there, so that tests/test_hostile.py
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
    time.sleep(pause)


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


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _save_external(model: ModelProto, target: Path, folder: Path) -> None:
    """Write weights to `<name>.data` and the graph to `<name>`, both atomically.

    Both files are first written into a private temporary folder beside the
    target, then renamed into place (data first, then the model). Tensors are swapped to external references only
    while the proto is serialized, then restored: the caller's model is left
    as it was and no weight is copied beyond one tensor at a time.
    """
    data_name = target.name + ".data"
    tmpdir = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
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
        for tmp in (data_tmp, model_tmp):
            os.chmod(tmp, _default_mode())
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
