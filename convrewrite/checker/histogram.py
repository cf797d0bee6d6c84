"""Log-scale bins of |act - ref|, so a report can draw where the errors lie (not only the worst one).

Fixed decade edges (1e-12 .. 1e3) make histograms of different trials and
sequence elements add up bin by bin. `counts` has one more entry than
`edges`: counts[0] is 0 < d < edges[0], counts[i] is edges[i-1] <= d <
edges[i], the last is d >= edges[-1]; exact zeros and NaN/Inf mismatches are
counted apart (`zero`, `nonfinite`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

EDGES = [float(f"1e{k}") for k in range(-12, 4)]  # exactly the decimal literals 1e-12 .. 1e3
_EDGES = np.asarray(EDGES)


def error_histogram(abs_err: np.ndarray) -> dict[str, Any]:
    """Bin counts of an array of absolute errors (inf marks a NaN/Inf mismatch); one pass, no copy of the data."""
    flat = np.asarray(abs_err, dtype=np.float64).ravel()
    zero = int(np.count_nonzero(flat == 0))
    finite = np.isfinite(flat)
    nonfinite = int(flat.size - np.count_nonzero(finite))
    positive = flat[finite & (flat > 0)]
    counts = np.bincount(np.searchsorted(_EDGES, positive, side="right"), minlength=len(EDGES) + 1)
    return {"edges": list(EDGES), "counts": [int(c) for c in counts], "zero": zero, "nonfinite": nonfinite}


def merge_histograms(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Bin-by-bin sum (a sequence's or map's elements); None when no part has one."""
    given = [p for p in parts if p]
    if not given:
        return None
    counts = [sum(p["counts"][i] for p in given) for i in range(len(EDGES) + 1)]
    return {"edges": list(EDGES), "counts": counts, "zero": sum(p["zero"] for p in given),
            "nonfinite": sum(p["nonfinite"] for p in given)}
