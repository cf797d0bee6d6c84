"""The rule engine: the driver every rule runs under, records, options, the registry and the pipeline.

The public rule API (what a third-party rule imports):

    from convrewrite.rewrite import Rule, NotApplicable, Rewritten, Option, register_rule
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .driver import Conv, NotApplicable, Rewritten, Rule, ViewRun, convolutions, read_conv, run_rule, weight_info
from .options import ASSUME_FINITE, Option, PassOptions
from .pipeline import MAX_FOLD_ROUNDS, PassContext, run_passes
from .records import Record, RewriteResult, merge_round, summarize
from .registry import (
    ENTRY_POINT_GROUP, PHASES, describe_rules, expand_pass_names, fold_order, known_options, load_rules,
    register, register_rule, reload_entry_points, rule, rule_names, unregister_rule,
)

__all__ = [
    "Conv", "NotApplicable", "Rewritten", "Rule", "ViewRun", "convolutions", "read_conv", "run_rule", "weight_info",
    "ASSUME_FINITE", "Option", "PassOptions", "MAX_FOLD_ROUNDS", "PassContext", "run_passes", "Record", "RewriteResult",
    "merge_round", "summarize", "ENTRY_POINT_GROUP", "PHASES", "describe_rules", "expand_pass_names", "fold_order",
    "known_options", "load_rules", "register", "register_rule", "reload_entry_points", "rule", "rule_names",
    "unregister_rule",
]


class _CallableModule(types.ModuleType):
    """`convrewrite.rewrite` names both this package and the API function `convrewrite.rewrite(model, ...)`.

    Python binds a package's attribute to a subpackage when the subpackage is
    first imported, which would shadow the function after, say,
    `from convrewrite.rewrite import Rule`; calling the package rewrites, so
    both spellings keep working whatever was imported first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from ..api import rewrite

        return rewrite(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
