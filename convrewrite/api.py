"""The public entry points behind `convrewrite.rewrite` and `convrewrite.inspect`."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import onnx

from .model import ModelSource, graphsurgeon, load
from .passes import PassOptions, RewriteResult, run_passes


def rewrite(
    model: ModelSource,
    passes: Iterable[str] = ("to-2d",),
    *,
    layout: str = "h",
    only: set[str] | None = None,
    fuse_separable: bool = False,
    force: bool = False,
    expand_dilations: bool = False,
    causal_target: str | None = None,
    copy: bool = True,
    on_pass: Callable[[str], None] | None = None,
    **extra: Any,
) -> RewriteResult:
    """Run the named passes (e.g. "to-2d", "to-1d", "causal", "all") and return the new model and records.

    `model`: a path, bytes, ModelProto or onnx_graphsurgeon Graph; given a Graph,
    the result's `graph` is the rewritten model as a Graph too. The input is never modified (`copy=False` lets a caller that owns the
    model skip the copy). `only` restricts the rewrite to candidates whose
    record key is in the set: everything else is left as it is. Other
    keywords are options declared by registered rules (third-party ones too);
    an undeclared one raises ConvRewriteError naming the known options.
    """
    if layout not in ("h", "w"):
        from .errors import ConvRewriteError

        raise ConvRewriteError(f"layout must be 'h' or 'w', not {layout!r}")
    given_graph = graphsurgeon.is_graph(model)
    loaded = model if isinstance(model, onnx.ModelProto) else load(model)
    # Every option is declared by a registered rule: an unknown keyword is an error naming the known ones.
    options = PassOptions(layout=layout, fuse_separable=fuse_separable, force=force,
                          expand_dilations=expand_dilations, causal_target=causal_target, **extra)
    result = run_passes(loaded, list(passes), options, only, copy_model=copy and loaded is model, on_pass=on_pass)
    if given_graph:
        result.graph = graphsurgeon.to_graph(result.model)
    return result


def inspect(model: ModelSource, rules: bool = False) -> dict[str, Any]:
    """Every convolution in the model (path, bytes, ModelProto or onnx_graphsurgeon Graph), classified.

    `rules=True` adds, per convolution, what each registered rule would do and why not.
    """
    from .inspection import inventory

    loaded = model if isinstance(model, onnx.ModelProto) else load(model)
    return inventory(loaded, rules=rules)
