"""onnx-graphsurgeon interop: pipelines around TensorRT hold graphs as `onnx_graphsurgeon.Graph`.

convrewrite takes such a graph wherever it takes a model, and `rewrite` hands
one back. onnx-graphsurgeon is not a dependency: a caller who has a Graph has
it installed, and nothing here imports it otherwise.
"""

from __future__ import annotations

from typing import Any

from onnx import ModelProto

from ..errors import ModelLoadError


def is_graph(obj: Any) -> bool:
    """Whether `obj` is an onnx_graphsurgeon Graph (checked without importing onnx_graphsurgeon)."""
    return type(obj).__name__ == "Graph" and type(obj).__module__.startswith("onnx_graphsurgeon")


def to_model(graph: Any) -> ModelProto:
    """The graph as a ModelProto, with the opsets and IR version graphsurgeon keeps for it."""
    import onnx_graphsurgeon as gs

    try:
        return gs.export_onnx(graph)
    except Exception as exc:  # noqa: BLE001 - graphsurgeon raises plain exceptions of several kinds
        raise ModelLoadError(f"onnx_graphsurgeon Graph: cannot export it to ONNX: {exc}") from None


def to_graph(model: ModelProto) -> Any:
    import onnx_graphsurgeon as gs

    return gs.import_onnx(model)
