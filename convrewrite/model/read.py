"""Read a model: from a path, bytes or a ModelProto, refused with one line when it is not a usable model.

A path is read only when it is a regular file, and no further than its size;
external data is validated in full before the first byte of it is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from google.protobuf.message import DecodeError
from onnx import ModelProto

from ..errors import ModelLoadError
from . import external, graphsurgeon
from .paths import read_regular_bytes, show
from .validate import validate, validate_structure

ModelSource = Union[str, os.PathLike, bytes, ModelProto]


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
    if graphsurgeon.is_graph(source):
        source = graphsurgeon.to_model(source)
    if isinstance(source, ModelProto):
        validate_structure(source, "model")
        if check:
            validate(source, "model")
        return LoadedModel(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        model = parse(bytes(source), "bytes")
        if check:
            validate(model, "bytes")
        return LoadedModel(model)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        model, spans = _read_path(path)
        label = show(path)
        external.load(spans, label)
        if check:
            validate(model, label)
        return LoadedModel(model, path, bool(spans), external.files(spans))
    raise ModelLoadError(
        f"cannot load a model from {type(source).__name__}: give a path, bytes, an onnx.ModelProto or an "
        "onnx_graphsurgeon Graph"
    )


def model_files(path: str | os.PathLike) -> list[Path]:
    """The files a model at `path` is read from: itself and its external data files (validated, not read)."""
    _, spans = _read_path(Path(path))
    return [Path(path)] + external.files(spans)


def _read_path(path: Path) -> tuple[ModelProto, list[external.Span]]:
    label = show(path)
    data = read_regular_bytes(path, "")
    model = parse(data, label)
    del data  # the proto holds its own copy: keep peak memory near one model
    try:
        base = path.resolve().parent
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"{label}: {exc}") from None
    return model, external.plan(model, base, label)


def parse(data: bytes, label: str) -> ModelProto:
    """The ModelProto in `data`, or one line saying why these bytes are not a model."""
    if not data:
        raise ModelLoadError(f"{label}: empty file, not an ONNX model")
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        kind = "truncated or corrupt" if data[:1] == b"\x08" else "not an ONNX model"  # ir_version's tag opens a model
        raise ModelLoadError(f"{label}: {kind} (protobuf parse failed: {exc})") from None
    validate_structure(model, label)
    return model
