"""Errors convrewrite raises on purpose: the CLI turns each into one line and exit 2."""

from __future__ import annotations


class ConvRewriteError(Exception):
    """A user-facing problem with the input or the options (never a bug)."""


class ModelLoadError(ConvRewriteError):
    """The model cannot be read: missing, empty, not ONNX, truncated, unsafe external data."""


class ModelInvalidError(ConvRewriteError):
    """The model (input or produced) fails onnx.checker or shape inference."""


class OutputError(ConvRewriteError):
    """The output cannot be written where asked (folder missing, read-only, would overwrite the input)."""
