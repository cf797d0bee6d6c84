"""Input and reference tensors from disk: .npz/.npy files and ONNX test-data folders of .pb files.

Nothing here can hang or blow up memory: only regular files are opened (a FIFO
or device is refused before any open), an .npz member's header (dtype, shape,
byte order) is read and checked before a byte of its data is decompressed,
members the model does not use are never decompressed, and no member may hold
more than its header promises or more than the memory budget. Nothing is ever
unpickled.
"""

from __future__ import annotations

import ast
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import CheckInputError
from ..model import external, read_regular_bytes, require_regular_file

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_PB_INDEX = re.compile(r"^(input|output)_(\d+)\.pb$")


@dataclass
class TensorSets:
    """Named arrays per set, as read from one source."""

    source: str
    sets: list[tuple[str, dict[str, np.ndarray]]]
    notes: list[str]


# Checks a member's header before its data is read: (name, dtype, shape) -> None or raises.
HeaderCheck = Callable[[str, np.dtype, tuple[int, ...]], None]


def read_tensor_sets(
    source: Any,
    names: list[str],
    kind: str,
    *,
    budget: int,
    check_header: HeaderCheck | None = None,
    warnings: list[str] | None = None,
) -> TensorSets:
    """Input sets (kind 'input') or reference output sets (kind 'output') from a path or arrays.

    Keys that are not graph names of that kind are ignored (and, in an .npz,
    never decompressed), so one .npz may hold both inputs and expected outputs.
    """
    what = "inputs" if kind == "input" else "expected outputs"
    notes: list[str] = []
    if isinstance(source, Mapping):
        return TensorSets("given arrays", [("given", _given(source, names, what))], notes)
    if isinstance(source, (list, tuple)):
        return TensorSets("given arrays", [(f"set {i}", _given(s, names, what)) for i, s in enumerate(source)], notes)
    path = Path(os.fspath(source))
    if path.is_dir():
        sets = [(label, _match_tensors(t, names, f"{path}/{label}", warnings if warnings is not None else notes))
                for label, t in _pb_sets(path, kind, budget)]
        return TensorSets(str(path), sets, notes)
    arrays = read_npz(path, names, what, budget=budget, check_header=check_header, notes=notes)
    if "" in arrays and len(arrays) == 1:  # a single .npy
        if len(names) != 1:
            raise CheckInputError(f"{path}: one array, but the model has {len(names)} {kind}s; use an .npz keyed by name")
        arrays = {names[0]: arrays[""]}
    return TensorSets(str(path), [(path.name, {k: v for k, v in arrays.items() if k in names})], notes)


def _given(source: Mapping[str, Any], names: list[str], what: str) -> dict[str, np.ndarray]:
    out = {}
    for key, value in source.items():
        if key not in names:
            continue
        arr = np.asarray(value)
        if arr.dtype.kind == "O":
            raise CheckInputError(f"{what}: {key!r} is not a numeric array")
        out[key] = arr
    return out


# ------------------------------------------------------------------------ npz


def read_npz(
    path: Path,
    wanted: list[str],
    what: str,
    *,
    budget: int,
    check_header: HeaderCheck | None = None,
    notes: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """The wanted arrays of an .npz (or the one array of an .npy, under the key '')."""
    require_regular_file(path, what)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(NPY_MAGIC):
        with open(path, "rb") as fh:
            name = wanted[0] if len(wanted) == 1 else ""
            return {"": _read_member(fh, os.path.getsize(path), f"{path}", name, budget, check_header, notes)}
    if any(magic.startswith(m) for m in ZIP_MAGICS):
        return _read_zip(path, wanted, budget, check_header, notes)
    if magic[:1] == b"\x80":
        raise CheckInputError(f"{path}: holds pickled data; refused (only plain arrays are read, never unpickled)")
    if not magic:
        raise CheckInputError(f"{path}: empty file, not an .npz/.npy file ({what})")
    raise CheckInputError(f"{path}: not an .npz/.npy file ({what}); save arrays with numpy.savez")


def _read_zip(path: Path, wanted: list[str], budget: int, check_header, notes) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if key not in wanted or info.is_dir():
                    continue  # never decompressed
                with zf.open(info) as fh:
                    arr = _read_member(fh, info.file_size, f"{path}: array {key!r}", key, budget, check_header, notes)
                budget -= arr.nbytes
                arrays[key] = arr
    except zipfile.BadZipFile as exc:
        raise CheckInputError(f"{path}: corrupt .npz ({exc})") from None
    except (zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise CheckInputError(f"{path}: cannot read this .npz ({exc})") from None
    except OSError as exc:
        raise CheckInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except EOFError:
        raise CheckInputError(f"{path}: truncated .npz") from None
    return arrays


def _read_header(fh: BinaryIO, where: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, fortran order, header length) from an .npy header; data not touched."""
    magic = fh.read(8)
    if len(magic) < 8 or not magic.startswith(NPY_MAGIC):
        if magic[:1] == b"\x80":
            raise CheckInputError(f"{where}: holds pickled data; refused (never unpickled)")
        raise CheckInputError(f"{where}: not an array (.npy data expected)")
    major = magic[6]
    size_bytes = 2 if major == 1 else 4
    raw = fh.read(size_bytes)
    if len(raw) < size_bytes:
        raise CheckInputError(f"{where}: truncated array header")
    length = int.from_bytes(raw, "little")
    if length > 1 << 20:
        raise CheckInputError(f"{where}: array header of {length} bytes; not a plain array")
    text = fh.read(length)
    try:
        header = ast.literal_eval(text.decode("latin1" if major == 1 else "utf-8"))
        descr, fortran, shape = header["descr"], bool(header["fortran_order"]), tuple(int(d) for d in header["shape"])
        dtype = np.dtype(descr)
    except (ValueError, SyntaxError, KeyError, TypeError, UnicodeDecodeError, MemoryError, RecursionError):
        raise CheckInputError(f"{where}: unreadable array header") from None
    if dtype.hasobject:
        raise CheckInputError(f"{where}: holds pickled objects; refused (never unpickled)")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise CheckInputError(f"{where}: a structured array, not a plain one")
    if any(d < 0 for d in shape):
        raise CheckInputError(f"{where}: negative dimension in {list(shape)}")
    return dtype, shape, fortran, 8 + size_bytes + length


def _read_member(fh: BinaryIO, stored_size: int, where: str, name: str, budget: int, check_header, notes) -> np.ndarray:
    dtype, shape, fortran, header_len = _read_header(fh, where)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > budget:
        raise CheckInputError(
            f"{where}: {dtype.name} {list(shape)} needs {nbytes / 2**30:.2f} GiB, over the memory budget "
            f"({budget / 2**30:.2f} GiB)")
    if stored_size > header_len + nbytes:
        raise CheckInputError(f"{where}: holds {stored_size - header_len} bytes of data but its header "
                              f"promises {nbytes} ({dtype.name} {list(shape)}); refused")
    native = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
    if check_header is not None:
        check_header(name, native, shape)
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    got = 0
    while got < nbytes:
        n = fh.readinto(view[got:])
        if not n:
            raise CheckInputError(f"{where}: truncated ({got} of {nbytes} data bytes)")
        got += n
    arr = np.frombuffer(buffer, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if dtype != native and dtype.itemsize > 1:
        arr = arr.astype(native)
        if notes is not None:
            notes.append(f"{where}: big-endian {native.name} converted to this machine's byte order")
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


# ------------------------------------------------------------------------ .pb


def _pb_sets(path: Path, prefix: str, budget: int) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """(label, [(tensor name, array)...]) per data set of an ONNX test-data folder."""
    subdirs = sorted(
        (p for p in path.iterdir() if p.is_dir() and not p.is_symlink() and p.name.startswith("test_data_set_")),
        key=lambda p: (len(p.name), p.name),
    )
    folders = subdirs or [path]
    sets = []
    for folder in folders:
        files = []
        for f in folder.iterdir():
            m = _PB_INDEX.match(f.name)
            if m and m.group(1) == prefix:
                files.append((int(m.group(2)), f))
        tensors = []
        for _, f in sorted(files):
            tensors.append(_read_pb(f, budget))
        sets.append((folder.name if subdirs else path.name, tensors))
    if not any(t for _, t in sets):
        raise CheckInputError(f"{path}: no {prefix}_N.pb files (in the folder or its test_data_set_N/ folders)")
    return sets


def _read_pb(f: Path, budget: int) -> tuple[str, np.ndarray]:
    data = read_regular_bytes(f, "tensor file", limit=budget)
    proto = onnx.TensorProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf decode errors have no common base class
        raise CheckInputError(f"{f}: not a TensorProto file ({type(exc).__name__}: {exc})") from None
    if proto.data_location == onnx.TensorProto.EXTERNAL:
        _load_pb_external(proto, f, budget)
    try:
        return proto.name, numpy_helper.to_array(proto)
    except Exception as exc:  # noqa: BLE001 - a malformed tensor of any kind
        raise CheckInputError(f"{f}: unreadable tensor ({type(exc).__name__}: {exc})") from None


def _load_pb_external(proto: onnx.TensorProto, f: Path, budget: int) -> None:
    """External data of a .pb tensor, read relative to the .pb file's own folder, never outside it
    (validated as a model's external data is: decimal fields, a span inside a regular file)."""
    spans = external.plan_tensors([proto], f.parent.resolve(), str(f), "the tensor file's folder")
    if spans and spans[0].length > budget:
        raise CheckInputError(f"{f}: external data of tensor {proto.name!r}: {spans[0].length} bytes, over the "
                              f"memory budget ({budget} bytes)")
    external.load(spans, str(f))


def _match_tensors(
    tensors: list[tuple[str, np.ndarray]], names: list[str], where: str, warnings: list[str]
) -> dict[str, np.ndarray]:
    """Match TensorProto files to graph names: by the TensorProto's name, else by position."""
    if tensors and all(n in names for n, _ in tensors):
        return {n: a for n, a in tensors}
    if any(n for n, _ in tensors):
        warnings.append(f"{where}: tensor names do not match the graph's; matched by position")
    return {name: arr for name, (_, arr) in zip(names, tensors)}
