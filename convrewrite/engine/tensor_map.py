"""Tensor maps: which tensors of a pass's input model live on in its output, under which names, in which layout.

An entry is `{"original": name, "rewritten": name, "view": [ops]}`; `view`
turns the rewritten tensor back into the original's layout, ops applied in
order: `{"op": "squeeze", "axes": [..]}`, `{"op": "unsqueeze", "axes": [..]}`,
`{"op": "transpose", "perm": [..]}`, `{"op": "slice", "axis": a, "start": s,
"end": e}`, `{"op": "reshape", "shape": [..]}`. The checker's `--layers`
compares mapped pairs; tensors a rewrite folds away are simply absent.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

View = list[dict[str, Any]]


def entry(original: str, rewritten: str, view: View | None = None) -> dict[str, Any]:
    """One map entry (an empty view: same layout)."""
    return {"original": original, "rewritten": rewritten, "view": [dict(op) for op in (view or [])]}


def squeeze(axes: Sequence[int]) -> dict[str, Any]:
    return {"op": "squeeze", "axes": [int(a) for a in axes]}


def unsqueeze(axes: Sequence[int]) -> dict[str, Any]:
    return {"op": "unsqueeze", "axes": [int(a) for a in axes]}


def transpose(perm: Sequence[int]) -> dict[str, Any]:
    return {"op": "transpose", "perm": [int(p) for p in perm]}


def apply_view(value: np.ndarray, view: Iterable[dict[str, Any]]) -> np.ndarray:
    """The rewritten tensor in the original's layout (numpy; ValueError when an op does not fit the value)."""
    out = np.asarray(value)
    for op in view:
        kind = op.get("op")
        if kind == "squeeze":
            out = np.squeeze(out, axis=tuple(op["axes"]))
        elif kind == "unsqueeze":
            out = np.expand_dims(out, axis=tuple(op["axes"]))
        elif kind == "transpose":
            out = np.transpose(out, op["perm"])
        elif kind == "slice":
            index = [slice(None)] * out.ndim
            index[op["axis"]] = slice(op.get("start"), op.get("end"))
            out = out[tuple(index)]
        elif kind == "reshape":
            out = out.reshape(op["shape"])
        else:
            raise ValueError(f"unknown view op {kind!r}")
    return out


def compose(steps: Iterable[tuple[list[dict[str, Any]], Iterable[str]]]) -> tuple[list[dict[str, Any]], set[str]]:
    """One map from the first model's names to the last's, given each step's (entries, names it dropped).

    A name no step mentions is left out (identity when it survives unchanged:
    the caller decides, by shape). Returns the entries and the names of the first
    model that some step folded away or changed (never to be identity-mapped).
    """
    current: dict[str, tuple[str, View]] = {}  # first-model name -> (name now, view back to the first model)
    gone: set[str] = set()
    for entries, dropped in steps:
        by_name: dict[str, dict[str, Any]] = {}
        for e in entries:
            by_name.setdefault(e["original"], e)
        now_of = {now: o for o, (now, _) in current.items()}
        dropped = set(dropped)
        nxt: dict[str, tuple[str, View]] = {}
        for o, (now, view) in current.items():
            e = by_name.get(now)
            if e is not None:
                nxt[o] = (e["rewritten"], list(e["view"]) + view)
            elif now in dropped:
                gone.add(o)
            else:
                nxt[o] = (now, view)
        for name, e in by_name.items():
            if name not in now_of and name not in current and name not in gone:
                nxt[name] = (e["rewritten"], list(e["view"]))
        for name in dropped:
            if name not in now_of and name not in current and name not in by_name:
                gone.add(name)
        current = nxt
    return [entry(o, now, view) for o, (now, view) in current.items()], gone


def activations(model) -> list[str]:
    """The main graph's computed tensors in node order (topological for a valid model): no constants."""
    seen: set[str] = set()
    out: list[str] = []
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            continue
        for name in node.output:
            if name and name not in seen:
                seen.add(name)
                out.append(name)
    return out


def same_shape(a, b) -> bool:
    """Both inferred, same element type, same rank and every dim equal (a symbolic dim only to the same symbol)."""
    if a is None or b is None or a.dims is None or b.dims is None or a.elem_type != b.elem_type:
        return False
    return len(a.dims) == len(b.dims) and all(x is not None and x == y for x, y in zip(a.dims, b.dims))


def identity_survivors(original, final, entries: list[dict[str, Any]], gone: set[str]) -> list[dict[str, Any]]:
    """`entries` plus an identity entry for each untouched tensor of `original` that `final` computes with the
    same inferred shape and type; in `original`'s node order (entries for other names last)."""
    from .. import shapes as shape_inference

    mapped = {e["original"]: e for e in entries}
    ours, theirs = shape_inference.infer(original), shape_inference.infer(final)
    computed = set(activations(final))
    out: list[dict[str, Any]] = []
    for name in activations(original):
        if name in mapped:
            out.append(mapped.pop(name))
        elif name not in gone and name in computed and same_shape(ours.get(name), theirs.get(name)):
            out.append(entry(name, name))
    return out + list(mapped.values())
