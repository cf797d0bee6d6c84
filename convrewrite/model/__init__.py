"""Model files in and out: read and validate, external data, atomic writes, path safety.

One job per module: `read` (path, bytes or proto to a checked ModelProto),
`external` (external data references, validated before any read),
`validate` (onnx.checker and what it lets through), `write` (checked, atomic
saves and report files), `paths` (regular files only, writable targets,
no write over a read), `tensors` (graph and tensor walks, sizes).
"""

from __future__ import annotations

from .paths import check_distinct, read_regular_bytes, require_regular_file, same_file, writable_target
from .read import LoadedModel, ModelSource, load, load_with_info, model_files, parse
from .tensors import all_tensors, estimated_size, tensor_nbytes
from .validate import check_convolutions, check_domains, check_tensor_sizes, validate
from .write import (
    EXTERNAL_DATA_THRESHOLD,
    atomic_write_bytes,
    needs_external_data,
    output_paths,
    save,
    serialized_chunks,
    write_text_target,
)

__all__ = [
    "EXTERNAL_DATA_THRESHOLD",
    "LoadedModel",
    "ModelSource",
    "all_tensors",
    "atomic_write_bytes",
    "check_convolutions",
    "check_distinct",
    "check_domains",
    "check_tensor_sizes",
    "estimated_size",
    "load",
    "load_with_info",
    "model_files",
    "needs_external_data",
    "output_paths",
    "parse",
    "read_regular_bytes",
    "require_regular_file",
    "same_file",
    "save",
    "serialized_chunks",
    "tensor_nbytes",
    "validate",
    "write_text_target",
]
