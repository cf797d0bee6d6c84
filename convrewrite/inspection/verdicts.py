"""What each rule would do with each convolution, and why not: `inspect` asks the rules themselves.

Why: a separate matcher can call a conv "pad-fed" where the causal fold
refuses it; the rules' own `match` (run by the driver in dry mode: nothing is
rewritten) cannot disagree with the rules.
"""

from __future__ import annotations

import copy
from typing import Any

import onnx

from ..engine import PassContext, PassOptions, rule, rule_names, run_rule
from ..engine.registry import PHASES


def rule_order() -> list[str]:
    """Every registered rule, by phase (lower, fold, lift, extra), then by its order."""
    return [name for phase in PHASES for name in rule_names(phase)]


def rule_verdicts(model: onnx.ModelProto, names: list[str] | None = None) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (graph, conv label): one entry per rule, `{"rule", "verdict": "matches"|"no", "reason"}`."""
    model = copy.deepcopy(model)  # dry runs edit nothing; a copy keeps a faulty plugin from touching the caller's
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    ctx = PassContext(model, PassOptions())
    for name in names if names is not None else rule_order():
        start = len(ctx.records)
        run_rule(ctx, rule(name)(), dry=True)
        for r in ctx.records[start:]:
            verdict = "matches" if r.status == "matches" else "no"
            out.setdefault((r.graph, r.node), []).append({"rule": name, "verdict": verdict, "reason": r.reason})
    return out
