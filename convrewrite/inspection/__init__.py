"""`inspect`: every convolution, classified, and what each rule would do with it.

(Named `inspection`, not `inspect`: `convrewrite.inspect` is the public function.)
"""

from __future__ import annotations

from .inventory import KINDS, describe, inventory, render_text, summary_line
from .verdicts import rule_order, rule_verdicts

__all__ = ["KINDS", "describe", "inventory", "render_text", "summary_line", "rule_order", "rule_verdicts"]
