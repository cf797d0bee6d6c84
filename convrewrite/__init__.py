"""convrewrite: rewrite convolutions inside ONNX models and prove the result equivalent.

Python API (the CLI is a thin layer over it):

    model = convrewrite.load("model.onnx")
    result = convrewrite.rewrite(model, passes=["to-2d"], layout="h")
    report = convrewrite.check(model, result.model)
    convrewrite.save(result.model, "out.onnx")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConvRewriteError, ModelInvalidError, ModelLoadError, OutputError

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
    "compare_values",
    "default_tolerance",
    "bench",
    "html_report",
    "write_html_report",
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


# Where each public name lives. Imported on first use: `import convrewrite` (and
# so the `convrewrite` command's start-up) stays light, onnx and onnxruntime
# load only when something needs them, and Ctrl-C is handled from the start.
_LAZY = {
    "load": "model", "save": "model",
    "inspect": "api", "rewrite": "api",
    "ConvAttrs": "conv",
    **{name: "engine" for name in ("Record", "RewriteResult", "register_rule", "Rule", "NotApplicable", "Rewritten",
                                    "Option")},
    "available_passes": "passes",
    **{name: "checker" for name in ("check", "bisect", "CheckReport", "BisectResult", "make_inputs",
                                     "compare_arrays", "compare_values", "default_tolerance", "render_text")},
    "bench": "timing",
    "html_report": "report_html", "write_html_report": "report_html",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'convrewrite' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
