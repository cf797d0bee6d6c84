"""External data: validate every reference before any read, then read exactly what was validated.

A tensor's `location`, `offset` and `length` come from the model file and are
not trusted: offset and length must be decimal integers, the span must lie
inside the file and match the tensor's dims, and the location must be a
relative path that stays inside the model's folder and names a regular file.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from onnx import ModelProto, TensorProto

from ..errors import ModelLoadError
from .paths import file_kind, oserror_text, open_regular, read_at
from .tensors import external_tensors, tensor_nbytes

_DECIMAL = re.compile(r"[0-9]{1,19}\Z")  # 19 digits: beyond any file size, within int64


@dataclass(frozen=True)
class Span:
    """Where one tensor's bytes are: a validated file, offset and length."""

    tensor: TensorProto
    file: Path
    offset: int
    length: int


def _field(t: TensorProto, info: dict[str, str], key: str, label: str) -> int | None:
    value = info.get(key)
    if value is None:
        return None
    if not _DECIMAL.match(value):
        raise ModelLoadError(f"{label}: tensor {t.name!r} external data {key} {value!r} is not a non-negative "
                             "decimal integer; refused")
    return int(value)


def _location(t: TensorProto, info: dict[str, str], base: Path, label: str, folder: str) -> Path:
    location = info.get("location", "")
    where = f"{label}: tensor {t.name!r} external data location {location!r}"
    if not location:
        raise ModelLoadError(f"{label}: tensor {t.name!r} has external data without a location")
    if "\0" in location:
        raise ModelLoadError(f"{where} contains a NUL byte; refused")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location[:3]:
        raise ModelLoadError(f"{where} is an absolute path; refused")
    try:
        target = (base / location).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{where}: {exc}") from None
    if base != target and base not in target.parents:
        raise ModelLoadError(f"{where} points outside {folder}; refused")
    return target


def plan(model: ModelProto, base: Path, label: str) -> list[Span]:
    """Every external tensor's span, validated against the files as they are now; opens nothing."""
    return plan_tensors(list(external_tensors(model)), base, label)


def plan_tensors(tensors: list[TensorProto], base: Path, label: str, folder: str = "the model's folder") -> list[Span]:
    """The spans of these external tensors (a model's, or one .pb tensor file's), validated; opens nothing.

    `base` is the folder locations are relative to and must stay inside (`folder` names it in messages).
    """
    sizes: dict[Path, int] = {}
    spans = []
    for t in tensors:
        info = {e.key: e.value for e in t.external_data}
        target = _location(t, info, base, label, folder)
        location = info["location"]
        offset = _field(t, info, "offset", label) or 0
        length = _field(t, info, "length", label)
        expected = tensor_nbytes(t)
        if length is None:
            length = expected
        elif expected > 0 and length != expected:
            raise ModelLoadError(f"{label}: tensor {t.name!r} external data length {length} disagrees with its dims "
                                 f"{list(t.dims)} and type (needs {expected} bytes); refused")
        if target not in sizes:
            try:
                st = os.stat(target)
            except FileNotFoundError:
                raise ModelLoadError(f"{label}: external data file {location!r} (tensor {t.name!r}) is missing") from None
            except OSError as exc:
                raise ModelLoadError(f"{label}: external data file {location!r} (tensor {t.name!r}): "
                                     f"{oserror_text(exc)}") from None
            if not stat.S_ISREG(st.st_mode):
                raise ModelLoadError(f"{label}: external data file {location!r} (tensor {t.name!r}) is "
                                     f"{file_kind(st.st_mode)}, not a regular file")
            sizes[target] = st.st_size
        if offset + length > sizes[target]:
            raise ModelLoadError(
                f"{label}: external data file {location!r} is too short for tensor {t.name!r} "
                f"(needs {offset + length} bytes, has {sizes[target]})"
            )
        spans.append(Span(t, target, offset, length))
    return spans


def files(spans: list[Span]) -> list[Path]:
    """The distinct data files of the spans, sorted."""
    return sorted({s.file for s in spans})


def load(spans: list[Span], label: str) -> None:
    """Read each span into its tensor (which then holds its bytes like any other)."""
    fds: dict[Path, tuple[int, int]] = {}
    try:
        for s in spans:
            if s.file not in fds:
                fd, st = open_regular(s.file, f"{label}: external data file")
                fds[s.file] = (fd, st.st_size)
            fd, size = fds[s.file]
            if s.offset + s.length > size:  # changed since `plan` looked
                raise ModelLoadError(f"{label}: external data file {s.file.name!r} shrank while being read")
            data = read_at(fd, s.length, s.offset)
            if len(data) != s.length:
                raise ModelLoadError(f"{label}: external data file {s.file.name!r} shrank while being read")
            s.tensor.raw_data = data
            del s.tensor.external_data[:]
            s.tensor.data_location = TensorProto.DEFAULT
    except OSError as exc:
        raise ModelLoadError(f"{label}: cannot read external data: {oserror_text(exc)}") from None
    finally:
        for fd, _ in fds.values():
            os.close(fd)
