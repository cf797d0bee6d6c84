"""dilated: one Conv with `dilations` for SpaceToBatch/BatchToSpace lowerings and zero-inserted kernels.

The rule and the index algebra it relies on are in `rule.py`; `chain` finds
and plans a space-to-batch chain, `trace` follows block factors through it,
`apply` rewrites it (and the kernels), `common` holds what they share.
"""

from __future__ import annotations

from .common import COUNTERS, NO_PATTERN, PASS_NAME
from .rule import DilatedPass

__all__ = ["COUNTERS", "NO_PATTERN", "PASS_NAME", "DilatedPass"]
