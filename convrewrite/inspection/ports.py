"""A model's inputs and outputs as callers see them: names, types, dims, which dims are dynamic."""

from __future__ import annotations

from typing import Any

import onnx


def _dim(d: onnx.TensorShapeProto.Dimension) -> int | str:
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    if d.HasField("dim_param") and d.dim_param:
        return d.dim_param
    return "?"  # unnamed, 0 or negative (Paddle writes -1): dynamic


def _dtype(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name  # float32, int64, ... as numpy names them
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _port(vi: onnx.ValueInfoProto, overridable: bool = False) -> dict[str, Any]:
    tp = vi.type
    kind = tp.WhichOneof("value") or "unknown"
    while tp.WhichOneof("value") in ("sequence_type", "optional_type"):
        tp = tp.sequence_type.elem_type if tp.HasField("sequence_type") else tp.optional_type.elem_type
    elem = _dtype(tp.tensor_type.elem_type) if tp.HasField("tensor_type") else None
    dims = [_dim(d) for d in tp.tensor_type.shape.dim] if tp.HasField("tensor_type") and tp.tensor_type.HasField(
        "shape") else None
    out = {"name": vi.name, "kind": kind.replace("_type", ""), "dtype": elem, "dims": dims}
    if overridable:
        out["initializer"] = True  # has a default value; callers may feed it
    return out


def ports(model: onnx.ModelProto) -> dict[str, Any]:
    """`{"inputs": [...], "outputs": [...], "dynamic_dims": [...]}` of the main graph."""
    initialized = {t.name for t in model.graph.initializer}
    inputs = [_port(vi, vi.name in initialized) for vi in model.graph.input]
    outputs = [_port(vi) for vi in model.graph.output]
    dynamic: list[str] = []
    for p in inputs + outputs:
        for axis, d in enumerate(p["dims"] or []):
            key = f"{p['name']}[{axis}]" if d == "?" else d
            if isinstance(d, str) and key not in dynamic:
                dynamic.append(key)
    return {"inputs": inputs, "outputs": outputs, "dynamic_dims": dynamic}


def render(info: dict[str, Any]) -> list[str]:
    """One line per input and output: `x  float32 [batch, 8, L]`."""
    lines = []
    for side in ("inputs", "outputs"):
        for p in info[side]:
            dims = "[" + ", ".join(map(str, p["dims"])) + "]" if p["dims"] is not None else "(no shape)"
            kind = "" if p["kind"] == "tensor" else f"{p['kind']} of "
            extra = " (initializer: optional)" if p.get("initializer") else ""
            lines.append(f"{side[:-1]:<6} {p['name']}  {kind}{p['dtype'] or '?'} {dims}{extra}")
    if info["dynamic_dims"]:
        lines.append("dynamic dims: " + ", ".join(info["dynamic_dims"]))
    return lines
