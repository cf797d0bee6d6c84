"""separable: depthwise + pointwise pairs in one canonical form, optional fusion (see `rule.py`).

`rule` holds the rule and the per-body rewriter; `parts` the conv state it
edits, the layout path, and the weight arithmetic.
"""

from __future__ import annotations

from .parts import COUNTERS, FUSE_COST_LIMIT, PASS
from .rule import SeparablePass

__all__ = ["COUNTERS", "FUSE_COST_LIMIT", "PASS", "SeparablePass"]
