"""The rule engine: the driver every rule runs under, records, options, the registry and the pipeline.

The public rule API (what a third-party rule imports):

    from convrewrite.engine import Rule, NotApplicable, Rewritten, Option, register_rule

(the same names are also on `convrewrite` itself). Named `engine`, not
`rewrite`: `convrewrite.rewrite` is the function that runs rules.
"""

from __future__ import annotations

from .driver import (
    Conv, NotApplicable, Rewritten, Rule, ViewRun, convolutions, read_conv, rule_kinds, run_rule, weight_of,
)
from .options import ASSUME_FINITE, Option, PassOptions
from .pipeline import MAX_FOLD_ROUNDS, PassContext, run_passes
from .records import Record, RewriteResult, merge_round, summarize
from ..refusal import Refusal
from .registry import (
    ENTRY_POINT_GROUP, PHASES, describe_rules, expand_pass_names, fold_order, known_options, load_rules,
    register, register_rule, reload_entry_points, rule, rule_names, unregister_rule,
)

__all__ = [
    "Conv", "NotApplicable", "Rewritten", "Rule", "ViewRun", "convolutions", "read_conv", "rule_kinds", "run_rule",
    "weight_of", "Refusal",
    "ASSUME_FINITE", "Option", "PassOptions", "MAX_FOLD_ROUNDS", "PassContext", "run_passes", "Record", "RewriteResult",
    "merge_round", "summarize", "ENTRY_POINT_GROUP", "PHASES", "describe_rules", "expand_pass_names", "fold_order",
    "known_options", "load_rules", "register", "register_rule", "reload_entry_points", "rule", "rule_names",
    "unregister_rule",
]
