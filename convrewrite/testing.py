"""Test helpers: assert in a pytest test that a rewritten model is equivalent.

    from convrewrite.testing import assert_equivalent
    assert_equivalent(original_model, rewritten_model, trials=3, shapes={"x": (1, 6, 40)})

On failure the assertion message is the checker's full report (every output,
the worst element, the tolerance that would have passed), so a red test says
what differs without re-running anything.
"""

from __future__ import annotations

from typing import Any

from .model import ModelSource
from .checker import CheckReport, check, render_text


def assert_equivalent(a: ModelSource, b: ModelSource | None = None, **options: Any) -> CheckReport:
    """Fail the calling test unless `b` computes what `a` computes (see `convrewrite.check`).

    `options` are those of `check` (inputs, seed, trials, shapes, ranges, atol,
    rtol, providers, require, expected, ...). With `expected=` and no `b`, `a`
    is compared with reference outputs. Returns the report when equivalent.
    """
    __tracebackhide__ = True
    report = check(a, b, **options)
    if not report.ok:
        raise AssertionError("models are not equivalent\n" + render_text(report, verbose=True))
    return report

