"""The checker's own error: a bad option or input file (the CLI: one line, exit 2)."""

from __future__ import annotations

from ..errors import ConvRewriteError


class CheckInputError(ConvRewriteError):
    """A bad option or input file for the checker; the message names no CLI flag."""
