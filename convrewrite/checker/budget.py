"""How much memory the inputs and one run may take, and how big inputs are."""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np


def memory_budget() -> int:
    """Bytes the inputs and one run may take: well under the free memory (and the address-space limit)."""
    budget = 4 * 2**30
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    budget = int(int(line.split()[1]) * 1024 * 0.6)
    except (OSError, ValueError, IndexError):
        try:
            budget = int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.6)
        except (ValueError, OSError, AttributeError):
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = 0
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmSize:"):
                        used = int(line.split()[1]) * 1024
            budget = min(budget, int(max(soft - used, 0) * 0.6))
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return budget


def nbytes(dtype: np.dtype, shape: Sequence[int]) -> int:
    return math.prod(shape) * (64 if dtype == np.dtype(object) else dtype.itemsize)


def finite_magnitude(feed: Mapping[str, np.ndarray]) -> float:
    """The largest finite |value| among the float inputs (1 when there are none)."""
    largest = 1.0
    for arr in feed.values():
        if arr.dtype.kind == "f" and arr.size:
            finite = np.abs(arr[np.isfinite(arr)], dtype=np.float64)
            if finite.size:
                largest = max(largest, float(finite.max()))
    return largest
