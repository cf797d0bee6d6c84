"""convrewrite: rewrite convolutions inside ONNX models and prove the result equivalent.

Python API (the CLI is a thin layer over it):

    model = convrewrite.load("model.onnx")
    result = convrewrite.rewrite(model, passes=["to-2d"], layout="h")
    report = convrewrite.check(model, result.model)
    convrewrite.save(result.model, "out.onnx")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import inspect, rewrite
from .conv import ConvAttrs
from .errors import ConvRewriteError, ModelInvalidError, ModelLoadError, OutputError
from .io import load, save
from .passes import available_passes
from .engine import NotApplicable, Option, Record, RewriteResult, Rewritten, Rule, register_rule

__all__ = [
    "__version__",
    "load",
    "save",
    "inspect",
    "rewrite",
    "check",
    "bisect",
    "CheckReport",
    "BisectResult",
    "make_inputs",
    "compare_arrays",
    "default_tolerance",
    "ConvAttrs",
    "Record",
    "RewriteResult",
    "available_passes",
    "register_rule",
    "Rule",
    "NotApplicable",
    "Rewritten",
    "Option",
    "ConvRewriteError",
    "ModelLoadError",
    "ModelInvalidError",
    "OutputError",
]


_CHECKER_NAMES = (
    "check", "bisect", "CheckReport", "BisectResult", "make_inputs", "compare_arrays", "default_tolerance", "render_text",
)


def __getattr__(name: str):
    # The checker pulls in onnxruntime: import it only when asked for.
    if name in _CHECKER_NAMES:
        from . import verify

        return getattr(verify, name)
    raise AttributeError(f"module 'convrewrite' has no attribute {name!r}")
