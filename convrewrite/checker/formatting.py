"""Numbers as people and JSON read them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_number(value: Any) -> Any:
    """JSON-safe value: numpy scalars to Python, non-finite floats to 'inf'/'-inf'/'nan'."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def fmt_number(value: Any) -> str:
    """Three significant digits: for errors and tolerances, where the size is what matters."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.3g}"


def fmt_exact(value: Any) -> str:
    """The shortest text that reads back as the same value of its own dtype.

    Element values are printed this way so that two values that differ never
    print alike ("-2.06 vs -2.06" hid a difference in the seventh digit).
    """
    if value is None:
        return "-"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, np.floating):
        scalar = value
    else:
        scalar = np.float64(value)
    v = float(scalar)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    if 1e-4 <= abs(v) < 1e16:
        return np.format_float_positional(scalar, unique=True, trim="-")
    return np.format_float_scientific(scalar, unique=True, trim="-")
