"""Read a model file's graph without its weights.

The checker needs a model's graph (inputs, outputs, nodes, initializer names
and dims), never its weights: onnxruntime reads those itself from the file.
Parsing a 600 MB model only to look at its graph cost a second and a copy of
the weights, so this reader walks the protobuf wire format, seeks past the
`raw_data` of large initializers (recording their sizes for the size check)
and parses the rest. Anything it does not expect (external data, a malformed
file) makes it return None, and the caller uses the ordinary loader, whose
errors explain the problem.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from onnx import ModelProto, TensorProto

from .. import model as cio
from .. import runtime
from ..errors import ModelInvalidError

SKIP_MIN_BYTES = 4096
MODEL_GRAPH, GRAPH_INITIALIZER, TENSOR_RAW_DATA, TENSOR_DATA_LOCATION = 7, 5, 9, 14


class _Malformed(Exception):
    """Not what a well-formed ONNX file holds here: let the ordinary loader explain."""


def _varint(fh: BinaryIO) -> tuple[int, bytes]:
    value, shift, raw = 0, 0, bytearray()
    while True:
        b = fh.read(1)
        if not b:
            raise _Malformed("truncated varint")
        raw += b
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value, bytes(raw)
        shift += 7
        if shift > 63:
            raise _Malformed("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(fh: BinaryIO, end: int):
    """(field number, wire type, tag bytes) until `end`; the caller consumes each value."""
    while fh.tell() < end:
        tag, raw = _varint(fh)
        yield tag >> 3, tag & 7, raw
    if fh.tell() != end:
        raise _Malformed("field overruns its message")


def _copy_value(fh: BinaryIO, wire: int) -> bytes:
    if wire == 0:
        return _varint(fh)[1]
    if wire == 1:
        return _read(fh, 8)
    if wire == 5:
        return _read(fh, 4)
    if wire == 2:
        length, raw = _varint(fh)
        return raw + _read(fh, length)
    raise _Malformed(f"wire type {wire}")


def _read(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise _Malformed("truncated")
    return data


def _tensor(fh: BinaryIO, end: int, stripped: list[int]) -> bytes:
    out = bytearray()
    for number, wire, tag in _fields(fh, end):
        if number == TENSOR_DATA_LOCATION:
            raise _Malformed("external data: the ordinary loader validates it")
        if number == TENSOR_RAW_DATA and wire == 2:
            length, raw = _varint(fh)
            if length >= SKIP_MIN_BYTES:
                fh.seek(length, os.SEEK_CUR)
                stripped.append(length)
                continue
            out += tag + raw + _read(fh, length)
            continue
        out += tag + _copy_value(fh, wire)
    return bytes(out)


def _graph(fh: BinaryIO, end: int, sizes: list[tuple[bytes, int]]) -> bytes:
    out = bytearray()
    for number, wire, tag in _fields(fh, end):
        if number == GRAPH_INITIALIZER and wire == 2:
            length, _ = _varint(fh)
            stripped: list[int] = []
            body = _tensor(fh, fh.tell() + length, stripped)
            if stripped:
                sizes.append((body, stripped[-1]))
            out += tag + _encode_varint(len(body)) + body
            continue
        out += tag + _copy_value(fh, wire)
    return bytes(out)


def read_weightless(path: Path) -> tuple[ModelProto, dict[str, int]] | None:
    """(the model without large raw weights, their byte counts by initializer name), or None."""
    try:
        size = os.path.getsize(path)
        sizes: list[tuple[bytes, int]] = []
        out = bytearray()
        with open(path, "rb") as fh:
            for number, wire, tag in _fields(fh, size):
                if number == MODEL_GRAPH and wire == 2:
                    length, _ = _varint(fh)
                    body = _graph(fh, fh.tell() + length, sizes)
                    out += tag + _encode_varint(len(body)) + body
                    continue
                out += tag + _copy_value(fh, wire)
        model = ModelProto()
        model.ParseFromString(bytes(out))
    except Exception:  # noqa: BLE001 - any surprise (malformed, external data): the ordinary loader explains
        return None
    raw_sizes = {}
    for body, length in sizes:
        t = TensorProto()
        t.ParseFromString(body)
        raw_sizes[t.name] = length
    if not model.ListFields() or not model.HasField("graph") or not raw_sizes:
        return None  # nothing worth skipping, or not a model: the ordinary loader explains
    return model, raw_sizes


def load_for_check(path: Path, label: str) -> cio.LoadedModel | None:
    """A model loaded and validated as `io.load_with_info` would, without its large weights; None to fall back."""
    found = read_weightless(path)
    if found is None:
        return None
    model, raw_sizes = found
    for t in model.graph.initializer:
        if t.name in raw_sizes:
            expected = cio.tensor_nbytes(t)
            if raw_sizes[t.name] != expected:
                raise ModelInvalidError(f"{label}: rejected by onnx.checker: initializer {t.name!r} holds "
                                        f"{raw_sizes[t.name]} bytes; dims {list(t.dims)} need {expected}")
    cio.validate(_with_placeholders(model, raw_sizes), label)
    return cio.LoadedModel(model, path, False, [])


def _with_placeholders(model: ModelProto, raw_sizes: dict[str, int]) -> ModelProto:
    """The weightless model as validation sees it: stripped initializers become typed inputs (as in `skeleton`)."""
    sk = ModelProto()
    sk.CopyFrom(model)
    keep = [t for t in sk.graph.initializer if t.name not in raw_sizes]
    declared = {i.name for i in sk.graph.input}
    for t in sk.graph.initializer:
        if t.name in raw_sizes and t.name not in declared:
            vi = sk.graph.input.add()
            vi.name = t.name
            vi.type.tensor_type.elem_type = t.data_type
            for d in t.dims:
                vi.type.tensor_type.shape.dim.add().dim_value = d
    del sk.graph.initializer[:]
    sk.graph.initializer.extend(keep)
    return sk  # `validate` makes its own skeleton of what remains


def load_model(source: cio.ModelSource) -> cio.LoadedModel:
    """A model as the checker needs it: from a file, its graph without the weights onnxruntime reads itself."""
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
        loaded = load_for_check(Path(source), str(source))
        if loaded is not None and loaded.model.ir_version <= runtime.max_ir_version():
            return loaded
    return cio.load_with_info(source, check=True)
