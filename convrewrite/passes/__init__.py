"""The built-in rules, one module per family: rank (lift/lower), causal, dilated, separable, channels_spatial.

The engine they run under (driver, records, options, registry, pipeline) is
`convrewrite.rewrite`; the names below are re-exported for callers that import
them from here.
"""

from __future__ import annotations

from ..graph import node_label
from ..engine import (
    MAX_FOLD_ROUNDS, PassContext, PassOptions, Record, RewriteResult, expand_pass_names, fold_order, register,
    rule_names, run_passes, summarize,
)


def available_passes() -> list[str]:
    """Every registered rule name, sorted."""
    return rule_names()


__all__ = [
    "MAX_FOLD_ROUNDS", "PassContext", "PassOptions", "Record", "RewriteResult", "available_passes",
    "expand_pass_names", "fold_order", "node_label", "register", "rule_names", "run_passes", "summarize",
]
