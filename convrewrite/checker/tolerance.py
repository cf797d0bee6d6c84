"""Default tolerances by dtype, dtype names, and per-output tolerance options."""

from __future__ import annotations

import math
from typing import Any, Mapping, Union

import numpy as np
from onnx import TensorProto

from .errors import CheckInputError

Tolerance = Union[float, Mapping[str, float], None]


def dtype_name(dtype: Any) -> str:
    """A readable name for a numpy dtype, a dtype name or an ONNX element type."""
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        try:
            return TensorProto.DataType.Name(dtype).lower()
        except ValueError:
            return str(dtype)
    if isinstance(dtype, str):
        return dtype.lower()
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).lower()


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """(atol, rtol) for outputs of `dtype`: loose enough for reordered float sums, exact for integers.

    `dtype` is a numpy dtype, a dtype name, or an ONNX TensorProto element type.
    """
    name = dtype_name(dtype)
    if name in ("float16", "bfloat16", "half"):
        return 1e-3, 1e-2
    if name in ("float64", "double"):
        return 1e-8, 1e-7
    if name in ("float32", "float", "single"):
        return 1e-5, 1e-4
    if name.startswith("float"):  # float8 variants
        return 1e-1, 1e-1
    return 0.0, 0.0


def split_tolerance(value: Tolerance, what: str) -> tuple[float | None, dict[str, float]]:
    """A float is global; a mapping holds per-output values, '' or '*' for the global one."""
    if value is None:
        return None, {}
    if isinstance(value, Mapping):
        per = {}
        glob = None
        for key, item in value.items():
            number = _nonneg(item, what, key)
            if key in ("", "*"):
                glob = number
            else:
                per[key] = number
        return glob, per
    return _nonneg(value, what, None), {}


def _nonneg(value: Any, what: str, name: str | None) -> float:
    label = f"{what} of output {name!r}" if name else what
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CheckInputError(f"{label}: not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise CheckInputError(f"{label}: must be a finite number >= 0, got {value!r}")
    return number
