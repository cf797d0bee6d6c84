"""Log-scale bins of |act - ref|, so a report can draw where the errors lie (not only the worst one).

Fixed decade edges (1e-12 .. 1e3) make histograms of different trials and
sequence elements add up bin by bin. `counts` has one more entry than
`edges`: counts[0] is 0 < d < edges[0], counts[i] is edges[i-1] <= d <
edges[i], the last is d >= edges[-1]; exact zeros and NaN/Inf mismatches are
counted apart (`zero`, `nonfinite`).

Cheap: one look-up per element instead of a binary search. A float64's
exponent field puts it in a binade [2^k, 2^(k+1)), and a binade holds at most
one decade edge (2 < 10), so a table per exponent (the bin where the binade
starts, the edge inside it or none) bins an element with one comparison.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EDGES = [float(f"1e{k}") for k in range(-12, 4)]  # exactly the decimal literals 1e-12 .. 1e3
_BINS = len(EDGES) + 1
_NONFINITE = _BINS  # the extra bin the table gives Inf and NaN (exponent field all ones)


def _tables() -> tuple[np.ndarray, np.ndarray]:
    start_bin = np.zeros(2048, np.int8)  # exponent 0: zero and subnormals, below the first edge
    edge_inside = np.full(2048, np.inf)
    for e in range(1, 2047):
        lo = math.ldexp(1.0, e - 1023)
        hi = math.ldexp(1.0, e - 1022) if e < 2046 else math.inf
        start_bin[e] = sum(1 for x in EDGES if x <= lo)
        inside = [x for x in EDGES if lo < x < hi]
        if inside:
            edge_inside[e] = inside[0]
    start_bin[2047], edge_inside[2047] = _NONFINITE, np.nan  # NaN >= nan is false: Inf and NaN stay put
    return start_bin, edge_inside


_START_BIN, _EDGE_INSIDE = _tables()


def error_histogram(abs_err: np.ndarray) -> dict[str, Any]:
    """Bin counts of an array of absolute errors (>= 0; inf or nan marks a NaN/Inf mismatch)."""
    flat = np.ascontiguousarray(abs_err, dtype=np.float64).ravel()
    exponent = (flat.view(np.uint64) >> np.uint64(52)) & np.uint64(0x7FF)
    bins = _START_BIN[exponent] + (flat >= _EDGE_INSIDE[exponent])
    counts = np.bincount(bins, minlength=_BINS + 1)
    zero = int(np.count_nonzero(flat == 0))
    out = [int(c) for c in counts[:_BINS]]
    out[0] -= zero  # zeros share the first bin's exponent range
    return {"edges": list(EDGES), "counts": out, "zero": zero, "nonfinite": int(counts[_NONFINITE])}


def merge_histograms(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Bin-by-bin sum (a sequence's or map's elements); None when no part has one."""
    given = [p for p in parts if p]
    if not given:
        return None
    counts = [sum(p["counts"][i] for p in given) for i in range(_BINS)]
    return {"edges": list(EDGES), "counts": counts, "zero": sum(p["zero"] for p in given),
            "nonfinite": sum(p["nonfinite"] for p in given)}
