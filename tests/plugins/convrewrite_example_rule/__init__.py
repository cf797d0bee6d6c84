"""An example third-party rule: drop a convolution's explicit all-zero `pads` attribute (the default).

It lives outside the convrewrite package on purpose: tests/engine/test_rule_api.py
registers it in-process with `convrewrite.register_rule` and, through the
`convrewrite.rules` entry point of a tiny installed distribution, in a fresh
CLI process. README, "Writing a rule", shows the same file.
"""

from __future__ import annotations

from convrewrite.graph import remove_attr
from convrewrite.engine import Conv, NotApplicable, Option, Rewritten, Rule, ViewRun


class DropZeroPads(Rule):
    name = "drop-zero-pads"
    description = "remove an explicit all-zero pads attribute (the default says the same)"
    phase = "fold"  # `--fold drop-zero-pads`, and part of `--fold all`
    order = 90  # after the built-in folds
    options = (Option("keep_transposed", bool, False, "leave ConvTranspose nodes alone"),)

    def match(self, run: ViewRun, conv: Conv) -> None:
        if run.options.keep_transposed and conv.attrs.transposed:
            raise NotApplicable("ConvTranspose kept (keep_transposed)")
        if "pads" not in conv.attrs.present:
            raise NotApplicable("no pads attribute")
        if conv.attrs.auto_pad != "NOTSET" or any(conv.attrs.pads):
            raise NotApplicable(f"pads {list(conv.attrs.pads)} are not all zero")

    def rewrite(self, run: ViewRun, conv: Conv, match: None) -> Rewritten:
        remove_attr(conv.node, "pads")
        run.count("zero_pads_dropped")
        return Rewritten(conv.attrs, "explicit zero pads removed")
