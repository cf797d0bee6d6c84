"""Find and classify every convolution in a model: what `convrewrite inspect` shows.

Walks the main graph, every If/Loop/Scan body and every model-local function.
Each convolution gets its attributes normalized by ConvAttrs (defaults filled,
pads explicit where auto_pad can be resolved) and a list of `kinds` that says
which rewrites could apply to it. The kinds of a rule's pattern (causal,
pad-fed, sliced, separable-pair, unit-axis, wrapped-1d, zero-inserted) come
from that rule's own `match` and proofs (a dry run of the driver: nothing
rewritten), with the reason where the rule found the pattern but refuses it;
the structural ones are attribute reads.
"""

from __future__ import annotations

import copy
from typing import Any

import onnx

from ..conv import CONV_OPS, ConvAttrError, ConvAttrs
from ..engine import PassContext, PassOptions, rule, rule_kinds, weight_of
from ..errors import ModelInvalidError
from ..graph import GraphView, iter_views, node_labels
from .ports import ports
from .ports import render as render_ports
from .verdicts import rule_order

STRUCTURAL = ("depthwise", "pointwise", "grouped", "dilated", "strided", "transposed", "quantized")
# Declared by the rules (`Rule.kinds`), found by their own match: causal, separable, to-1d/3d-to-2d, dilated.
RULE_KINDS = ("causal", "pad-fed", "sliced", "separable-pair", "unit-axis", "wrapped-1d", "zero-inserted")
KINDS = STRUCTURAL + RULE_KINDS

Found = dict[tuple[str, str], dict[str, str]]


def inventory(model: onnx.ModelProto, name: str | None = None, rules: bool = False) -> dict[str, Any]:
    """`{"model", "opsets", "convolutions": [...]}` for every convolution in the model.

    `rules`: each convolution also gets `"rules"`, what every registered rule
    would do with it and why not (the rules' own match, nothing rewritten).
    """
    # Dry runs edit nothing; the copy keeps a faulty plugin rule from touching the caller's model.
    ctx = PassContext(copy.deepcopy(model), PassOptions())
    found = rules_found(ctx)
    convs: list[dict[str, Any]] = []
    for view in iter_views(ctx.model, ctx.model_ctx):
        labels = node_labels(view)
        for node in view.nodes:
            if node.op_type in CONV_OPS and node.domain in ("", "ai.onnx"):
                label = labels[id(node)]
                convs.append(describe(view, node, label, found.get((view.path, label), {})))
    if rules:
        from .verdicts import rule_verdicts

        verdicts = rule_verdicts(model)
        for c in convs:
            c["rules"] = verdicts.get((c["graph"], c["name"]), [])
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    return {
        "model": name if name is not None else (model.graph.name or ""),
        "ir_version": model.ir_version,
        "opsets": opsets,
        **ports(model),
        "convolutions": convs,
    }


def rules_found(ctx: PassContext) -> Found:
    """Per (graph, conv label): {kind: "" or why the rule refuses} from every rule that declares kinds."""
    found: Found = {}
    for name in rule_order():
        cls = rule(name)
        if not getattr(cls, "kinds", ()):
            continue
        for key, kinds in rule_kinds(ctx, cls()).items():
            slot = found.setdefault(key, {})
            for kind, reason in kinds.items():
                if slot.get(kind, reason) or kind not in slot:
                    slot[kind] = reason
    return found


def read_attrs(view: GraphView, node: onnx.NodeProto) -> tuple[ConvAttrs, list | None]:
    """ConvAttrs of a node and its weight's dims (the driver's `weight_of`); one clear error otherwise."""
    dims = weight_of(view, node)[0]
    try:
        return ConvAttrs.from_node(node, dims), dims
    except ConvAttrError as exc:
        raise ModelInvalidError(f"{node.op_type} {node.name or '(unnamed)'} in {view.path}: {exc}") from None


def channels(view: GraphView, node: onnx.NodeProto, attrs: ConvAttrs, dims: list | None) -> tuple[int | None, int | None]:
    """(in_channels, out_channels), from the weight when known, else from the input shape."""
    first = dims[0] if dims and isinstance(dims[0], int) else None
    second = dims[1] if dims and len(dims) > 1 and isinstance(dims[1], int) else None
    if attrs.transposed:
        cin = first
        cout = second * attrs.group if second is not None else None
    else:
        cout = first
        cin = second * attrs.group if second is not None else None
    if cin is None:
        xs = view.shape(node.input[0])
        if xs is not None:
            cin = xs.static(1)
    return cin, cout


def describe(view: GraphView, node: onnx.NodeProto, label: str, found: dict[str, str] | None = None) -> dict[str, Any]:
    """One convolution's row; `found`: the kinds the rules' matches gave it ({kind: "" or why refused})."""
    attrs, dims = read_attrs(view, node)
    xs = view.shape(node.input[0])
    spatial = xs.dims[2:] if xs is not None and xs.dims is not None and len(xs.dims) == attrs.rank + 2 else None
    static = [d if isinstance(d, int) else None for d in spatial] if spatial is not None else None
    explicit = attrs.resolved(static) or attrs
    cin, cout = channels(view, node, attrs, dims)
    entry: dict[str, Any] = {
        "name": label,
        "op_type": node.op_type,
        "graph": view.path,
        "rank": attrs.rank,
        "in_channels": cin,
        "out_channels": cout,
        **attrs.to_dict(),  # the records' form of the attributes; pads explicit where auto_pad resolves
    }
    entry["pads"] = list(explicit.pads) if explicit.auto_pad == "NOTSET" else None
    found = found or {}
    entry["kinds"] = classify(view, node, attrs, cin, found)
    refused = {k: found[k] for k in entry["kinds"] if found.get(k)}
    if refused:
        entry["refused"] = refused
    return entry


def classify(view: GraphView, node: onnx.NodeProto, attrs: ConvAttrs, cin: int | None, found: dict[str, str]) -> list[str]:
    """Structural kinds from the attributes, the rules' kinds from `found`, in KINDS order (plugins' after)."""
    kinds: set[str] = set(found)
    depthwise = cin is not None and attrs.group > 1 and attrs.group == cin
    if depthwise:
        kinds.add("depthwise")
    if is_pointwise(attrs):
        kinds.add("pointwise")
    if 1 < attrs.group and not depthwise:
        kinds.add("grouped")
    if any(d > 1 for d in attrs.dilations):
        kinds.add("dilated")
    if any(s > 1 for s in attrs.strides):
        kinds.add("strided")
    if attrs.transposed:
        kinds.add("transposed")
    if node.op_type in ("QLinearConv", "ConvInteger") or _dequantized_weight(view, node):
        kinds.add("quantized")
    return [k for k in KINDS if k in kinds] + sorted(kinds.difference(KINDS))


def is_pointwise(attrs: ConvAttrs) -> bool:
    return (
        not attrs.transposed
        and attrs.group == 1
        and all(k == 1 for k in attrs.kernel_shape)
        and all(s == 1 for s in attrs.strides)
        and all(p == 0 for p in attrs.pads)
        and attrs.auto_pad in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")
    )


def _dequantized_weight(view: GraphView, node: onnx.NodeProto) -> bool:
    if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
        return False
    producer = view.producer_of(node.input[1])
    return producer is not None and producer.op_type == "DequantizeLinear"


# ---------------------------------------------------------------- rendering


def render_text(report: dict[str, Any]) -> str:
    """A readable table, one row per convolution, and a one-line summary."""
    convs = report["convolutions"]
    headers = ["name", "op", "graph", "rank", "in", "out", "kernel", "strides", "dilations", "pads", "group", "kinds"]
    rows = []
    for c in convs:
        pads = c["pads"] if c["pads"] is not None else c["auto_pad"]
        rows.append([
            c["name"], c["op_type"], c["graph"], str(c["rank"]), _s(c["in_channels"]), _s(c["out_channels"]),
            _ints(c["kernel_shape"]), _ints(c["strides"]), _ints(c["dilations"]),
            _ints(pads) if isinstance(pads, list) else str(pads), str(c["group"]), ",".join(c["kinds"]) or "-",
        ])
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = render_ports(report) if "inputs" in report else []
    if rows:
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    for c in convs:
        for kind, reason in c.get("refused", {}).items():
            lines.append(f"{c['graph']}:{c['name']}  {kind}: not rewritten: {reason}")
    for c in convs if any("rules" in c for c in convs) else ():
        lines.append(f"{c['graph']}:{c['name']}")
        for v in c.get("rules", []):
            lines.append(f"  {v['rule']:<20} {v['verdict']:<8} {v['reason']}".rstrip())
    lines.append(summary_line(report))
    return "\n".join(lines)


def summary_line(report: dict[str, Any]) -> str:
    convs = report["convolutions"]
    by_rank: dict[int, int] = {}
    by_kind: dict[str, int] = {}
    for c in convs:
        by_rank[c["rank"]] = by_rank.get(c["rank"], 0) + 1
        for k in c["kinds"]:
            by_kind[k] = by_kind.get(k, 0) + 1
    ranks = ", ".join(f"{n} x {r}D" for r, n in sorted(by_rank.items())) or "none"
    order = list(KINDS) + sorted(set(by_kind).difference(KINDS))  # a plugin rule's kinds after the built-in ones
    kinds = ", ".join(f"{k} {by_kind[k]}" for k in order if k in by_kind) or "none"
    noun = "convolution" if len(convs) == 1 else "convolutions"
    return f"{len(convs)} {noun} ({ranks}); kinds: {kinds}"


def _ints(values) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def _s(v) -> str:
    return "?" if v is None else str(v)
