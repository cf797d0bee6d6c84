"""causal: fold padding into its convolution (see `rule.py` for what and why).

`rule` plans and applies the folds, `operands` reads Pad and Slice operands
and the axis map through layout wrappers, `state` matches the streaming
pattern that becomes CausalConvWithState.
"""

from __future__ import annotations

from .rule import PASS, CausalPass
from .state import STATE_OP, STATE_OPSET

__all__ = ["PASS", "CausalPass", "STATE_OP", "STATE_OPSET"]
