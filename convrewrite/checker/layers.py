"""`check --layers`: where two models part ways, intermediate tensor by intermediate tensor.

Pairs come from a tensor map (a rewrite's records, composed across its passes:
engine/tensor_map.py), or, for two unrelated files, from names and inferred
shapes as Polygraphy matches them. The mapped tensors become extra outputs of
in-memory copies of both models (the real outputs are compared by the normal
check on the unmodified models, so the added outputs cannot change that
verdict); both copies run once, on the normal trial's inputs, on the first
provider that ran. Each candidate tensor is turned into the original's layout by
its view and compared. Tolerance per pair: the outputs' rtol, and their atol
scaled by the pair's reference magnitude (max |ref|, at least 1): rounding
errors of a layer grow with its values, and the output atol is made for values
of order 1. Pairs are reported in the original's node order; the first that
diverges is named.
"""

from __future__ import annotations

import copy
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import ModelProto

from .. import model as cio
from .. import shapes as shape_inference
from ..engine.tensor_map import activations, apply_view, identity_survivors, same_shape
from .compare import compare_arrays
from .formatting import json_number
from .sessions import OrtModel, RunFailure
from .tolerance import default_tolerance


@dataclass
class LayerPair:
    """One mapped tensor pair and how far apart the two are."""

    original: str
    candidate: str
    view: list[dict[str, Any]]
    shape: list[int] = field(default_factory=list)
    dtype: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    beyond: float | None = None  # share of elements beyond tolerance, 0..1
    atol: float | None = None
    rtol: float | None = None
    diverges: bool = False
    note: str = ""  # why a pair was not compared (then diverges is False and the numbers None)

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original, "candidate": self.candidate, "view": [dict(v) for v in self.view],
                "shape": list(self.shape), "dtype": self.dtype, "max_abs": json_number(self.max_abs),
                "max_rel": json_number(self.max_rel), "beyond": json_number(self.beyond),
                "atol": json_number(self.atol), "rtol": json_number(self.rtol), "diverges": self.diverges,
                "note": self.note or None}


@dataclass
class LayerReport:
    """Every compared pair in the original's node order, and the first that diverges."""

    mode: str  # "map" | "names"
    trial: str = "normal"  # the kind of input set: "normal" (the first normal draw) or "given"
    provider: str = ""
    trial_label: str = ""  # which one, e.g. "normal (seed 0)"
    pairs: list[LayerPair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def first_divergent(self) -> LayerPair | None:
        return next((p for p in self.pairs if p.diverges), None)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_divergent
        return {"mode": self.mode, "trial": self.trial, "trial_label": self.trial_label, "provider": self.provider,
                "pairs": [p.to_dict() for p in self.pairs],
                "first_divergent": {"original": first.original, "candidate": first.candidate} if first else None,
                "notes": list(self.notes)}


def name_pairs(original: onnx.ModelProto, candidate: onnx.ModelProto) -> list[dict[str, Any]]:
    """Polygraphy's matching: every computed tensor of the original the candidate computes under the same name,
    with the same inferred shape and element type."""
    ours, theirs = shape_inference.infer(original), shape_inference.infer(candidate)
    computed = set(activations(candidate))
    return [{"original": n, "rewritten": n, "view": []} for n in activations(original)
            if n in computed and same_shape(ours.get(n), theirs.get(n))]


def read_map(path: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The composed tensor map and dropped names of a `rewrite --report` file (`check --map`)."""
    import json

    from .errors import CheckInputError

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckInputError(f"--map {path}: cannot read it as JSON: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("convrewrite.rewrite/"):
        raise CheckInputError(f"--map {path}: not a `convrewrite rewrite --report` file")
    entries = data.get("tensor_map")
    if entries is None:  # an older report: its records' maps, in record order
        entries = [e for r in data.get("records", []) if isinstance(r, dict) for e in r.get("tensor_map", [])]
    ok = isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("original"), str) and isinstance(e.get("rewritten"), str)
        and isinstance(e.get("view", []), list) for e in entries)
    if not ok:
        raise CheckInputError(f"--map {path}: its tensor_map is not a list of {{original, rewritten, view}} entries")
    gone = [g for g in data.get("tensors_gone", []) if isinstance(g, str)]
    return [{"original": e["original"], "rewritten": e["rewritten"], "view": list(e.get("view", []))}
            for e in entries], gone


def _ordered(original: onnx.ModelProto, candidate: onnx.ModelProto, entries: list[dict[str, Any]],
             notes: list[str]) -> list[dict[str, Any]]:
    """Map entries for tensors both models compute, in the original's node order (one per original name)."""
    by_name: dict[str, dict[str, Any]] = {}
    for e in entries:
        by_name.setdefault(e["original"], e)
    computed = set(activations(candidate))
    out, missing = [], 0
    for name in activations(original):
        e = by_name.get(name)
        if e is None:
            continue
        if e["rewritten"] in computed:
            out.append(e)
        else:
            missing += 1
    if missing:
        notes.append(f"{missing} mapped tensor(s) not computed by the candidate: left out")
    return out


def _with_outputs(model: onnx.ModelProto, names: list[str], owned: bool = False) -> tuple[onnx.ModelProto, list[str]]:
    """`model` (a copy unless `owned`) with `names` as extra graph outputs (typed from shape inference); the names
    it could add."""
    inferred = shape_inference.infer(model)
    out = model if owned else copy.deepcopy(model)
    have = {o.name for o in out.graph.output}
    added = []
    for name in names:
        if name in have:
            added.append(name)
            continue
        shape = inferred.get(name)
        if shape is None or not shape.elem_type:
            continue
        out.graph.output.append(onnx.helper.make_tensor_value_info(name, shape.elem_type, None))
        have.add(name)
        added.append(name)
    return out, added


def _run(model: onnx.ModelProto, outputs: set[str], role: str, provider: str, feed: Mapping[str, np.ndarray],
         opt_level: str, provider_options, notes: list[str]) -> dict[str, Any] | RunFailure:
    """Run `model` (a copy) with only the graph outputs in `outputs`: swapped in while onnxruntime's copy is made."""
    full = list(model.graph.output)
    with ExitStack() as stack:
        del model.graph.output[:]
        model.graph.output.extend(o for o in full if o.name in outputs)
        try:
            ort_model = OrtModel(cio.LoadedModel(model), role, stack, opt_level, provider_options, False, notes)
        finally:
            del model.graph.output[:]
            model.graph.output.extend(full)
        try:
            return ort_model.run(provider, dict(feed))
        finally:
            ort_model.release()


def compare_layers(
    original: onnx.ModelProto,
    candidate: onnx.ModelProto,
    feed: Mapping[str, np.ndarray],
    *,
    entries: list[dict[str, Any]] | None = None,
    tolerance: Callable[[Any], tuple[float | None, float | None]] = lambda dtype: (None, None),
    provider: str = "CPUExecutionProvider",
    opt_level: str = "disabled",
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
    trial: str = "normal",
    budget: int | None = None,
    owned: bool = False,
) -> LayerReport:
    """Compare the mapped intermediate tensors of two models on one input set (see the module docstring).

    `entries`: a tensor map (None: match by name and shape). `tolerance(dtype)`
    gives the outputs' (atol, rtol) for a dtype (None: the dtype's default).
    `budget`: bytes the compared tensors may take at once; more are compared in
    several runs (each model once per group), never all held together.
    `owned`: the models are the caller's own copies, edited in place (no third copy of the weights).
    """
    report = LayerReport("names" if entries is None else "map", trial, provider)
    pairs = name_pairs(original, candidate) if entries is None else _ordered(original, candidate, entries, report.notes)
    ours, our_names = _with_outputs(original, [e["original"] for e in pairs], owned)
    theirs, their_names = _with_outputs(candidate, [e["rewritten"] for e in pairs], owned)
    ok_ours, ok_theirs = set(our_names), set(their_names)
    pairs = [e for e in pairs if e["original"] in ok_ours and e["rewritten"] in ok_theirs]
    groups = _groups(ours, pairs, feed, budget)
    if len(groups) > 1:
        report.notes.append(f"the tensors exceed the memory budget together: compared in {len(groups)} runs")
    options = dict(provider_options or {})
    real = {o.name for o in original.graph.output}, {o.name for o in candidate.graph.output}
    for group in groups:  # each group: one run of each model, its arrays dropped before the next
        ref = _run(ours, real[0] | {e["original"] for e in group}, "original", provider, feed, opt_level, options,
                   report.notes)
        if isinstance(ref, RunFailure):
            report.notes.append(f"the original with its intermediate tensors as outputs did not run: {ref.message}")
            return report
        act = _run(theirs, real[1] | {e["rewritten"] for e in group}, "candidate", provider, feed, opt_level,
                   options, report.notes)
        if isinstance(act, RunFailure):
            report.notes.append(f"the candidate with its intermediate tensors as outputs did not run: {act.message}")
            return report
        for e in group:
            report.pairs.append(_compare_pair(e, ref.get(e["original"]), act.get(e["rewritten"]), tolerance))
        del ref, act
    return report


def _groups(model: onnx.ModelProto, pairs: list[dict[str, Any]], feed: Mapping[str, np.ndarray],
            budget: int | None) -> list[list[dict[str, Any]]]:
    """The pairs split so that one group's tensors (both sides: twice the original's) fit `budget` bytes."""
    if not pairs:
        return []
    if budget is None:
        return [pairs]
    sizes = _tensor_bytes(model, feed)
    known = [b for b in sizes.values() if b is not None]
    fallback = max(known) if known else 0
    groups: list[list[dict[str, Any]]] = [[]]
    used = 0
    for e in pairs:
        size = 2 * (sizes.get(e["original"]) or fallback)
        if groups[-1] and used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(e)
        used += size
    return groups


def _tensor_bytes(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> dict[str, int | None]:
    """Bytes of each value for these inputs: shape inference with the inputs' dims fixed to the feed's."""
    saved = {}
    for vi in model.graph.input:
        if vi.name in feed and vi.type.HasField("tensor_type"):
            saved[vi.name] = onnx.TypeProto()
            saved[vi.name].CopyFrom(vi.type)
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in np.shape(feed[vi.name]):
                dims.add().dim_value = int(d)
    try:
        inferred = shape_inference.infer(model)
    finally:
        for vi in model.graph.input:
            if vi.name in saved:
                vi.type.CopyFrom(saved[vi.name])
    out: dict[str, int | None] = {}
    for name in activations(model):
        s = inferred.get(name)
        if s is None or s.dims is None or not all(isinstance(d, int) for d in s.dims):
            out[name] = None
            continue
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(s.elem_type).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 8
        out[name] = int(np.prod(s.dims, dtype=np.int64)) * itemsize
    return out


def _compare_pair(e: dict[str, Any], ref: Any, act: Any, tolerance) -> LayerPair:
    pair = LayerPair(e["original"], e["rewritten"], list(e["view"]))
    if not isinstance(ref, np.ndarray) or not isinstance(act, np.ndarray):
        pair.note = "not a tensor on both sides"
        return pair
    pair.shape, pair.dtype = [int(d) for d in ref.shape], ref.dtype.name
    try:
        viewed = apply_view(act, e["view"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        pair.note = f"the view does not fit the candidate's tensor {list(act.shape)}: {exc}"
        return pair
    if viewed.shape != ref.shape:
        pair.note = f"viewed candidate has shape {list(viewed.shape)}, the original {list(ref.shape)}"
        pair.diverges = True
        return pair
    atol, rtol = tolerance(ref.dtype)
    d_atol, d_rtol = default_tolerance(ref.dtype)
    atol = d_atol if atol is None else atol
    rtol = d_rtol if rtol is None else rtol
    if ref.dtype.kind == "f" and ref.size:
        finite = np.abs(ref[np.isfinite(ref)])
        atol *= max(1.0, float(finite.max()) if finite.size else 1.0)
    stats = compare_arrays(ref, viewed, atol, rtol, check_dtype=False)
    pair.atol, pair.rtol = atol, rtol
    pair.max_abs, pair.max_rel, pair.beyond = stats.max_abs, stats.max_rel, stats.beyond_share
    pair.diverges = not stats.ok
    if stats.message and not stats.ok:
        pair.note = stats.message
    return pair


def layer_report(checker: Any, report: Any, original: cio.ModelSource, candidate: cio.ModelSource,
                 tensor_map: Sequence[Mapping[str, Any]] | None,
                 tensors_gone: Iterable[str] | None = None) -> LayerReport | None:
    """The per-layer comparison on the first normal (or given) trial's inputs, on the first provider that ran."""
    ran = report.ran
    if report.cannot_check is not None or not ran or not checker.trials or report.problems:
        return None
    t = next((i for i, tr in enumerate(checker.trials) if tr.kind in ("normal", "given")), 0)
    # Models given as files are loaded here, and edited in place; given protos are the caller's: copied.
    ours = copy.deepcopy(original) if isinstance(original, ModelProto) else cio.load(original, check=False)
    theirs = copy.deepcopy(candidate) if isinstance(candidate, ModelProto) else cio.load(candidate, check=False)
    glob = (checker.atol_global, checker.rtol_global)
    entries = None
    if tensor_map is not None:
        entries = [dict(e) for e in tensor_map]
        if tensors_gone is not None:  # a composed map of renamed tensors only: add the untouched survivors
            entries = identity_survivors(ours, theirs, entries, set(tensors_gone))
    out = compare_layers(ours, theirs, checker.feed(t), entries=entries, tolerance=lambda dtype: glob,
                         provider=ran[0].name, opt_level=checker.ort_opt, provider_options=checker.provider_options,
                         trial=checker.trials[t].kind, budget=getattr(checker, "budget", None), owned=True)
    out.trial_label = checker.trials[t].label
    return out
