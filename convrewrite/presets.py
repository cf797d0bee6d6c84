"""Target presets, `rewrite --for ort-cpu|ort-cuda|tensorrt|npu`: the passes, layout and options a runtime wants.

Why presets: which form runs best is a property of the runtime, not of the
model, and users should not have to know that onnx-tensorrt lifts 1D convs to
`[N, C, L, 1]` or that NPUs want explicit pads. Each row below cites what it is
chosen from; where a provider can run here (`ort-cpu`, `ort-cuda`), the layout
is measured (`--layout auto`) instead of assumed. Explicit flags override a
preset: `--layout`, `--fold`, `--provider`, and a rank flag (`--to-2d`,
`--to-1d`, `--to-3d`) replace what the preset says; `--expand-dilations` adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConvRewriteError


@dataclass(frozen=True)
class Preset:
    """What one target implies."""

    name: str
    lift: str  # the rank pass: "to-2d"
    layout: str  # "h", "w" or "auto"
    folds: tuple[str, ...]
    provider: str | None  # where --layout auto measures
    fallback_layout: str | None  # the layout when that provider does not run here
    why: str


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("ort-cpu", "to-2d", "auto", ("all",), "cpu", None,
           "onnxruntime CPU runs 1D convs natively; lifting helped one model (0.66x with h) and hurt another "
           "(1.96x with w): measured, and 1D kept unless a 2D form is faster"),
    Preset("ort-cuda", "to-2d", "auto", ("all",), "cuda", "w",
           "the CUDA provider runs a 1D conv as [N,C,L,1] by default and [N,C,1,L] with "
           "cudnn_conv1d_pad_to_nc1d (faster for some models, slower for others): measured on CUDA; "
           "where CUDA does not run here, w, its default form"),
    Preset("tensorrt", "to-2d", "w", ("all",), None, None,
           "onnx-tensorrt lifts every 1D conv to [N,C,L,1] itself: the same form, explicit, with folds so "
           "its parser sees plain convs"),
    Preset("npu", "to-2d", "h", ("all",), None, None,
           "NPU compilers want every conv 2D with explicit pads (no auto_pad) and canonical depthwise + "
           "pointwise pairs; [N,C,1,W] was reported 20x faster than [N,C,H,1] on a Qualcomm NPU; dilations "
           "kept (--expand-dilations for targets without them)"),
)}


@dataclass
class Plan:
    """The rank pass, layout, folds and measuring provider after applying a preset and the explicit flags."""

    to_2d: bool
    to_1d: bool
    to_3d: bool
    layout: str
    folds: tuple[str, ...]
    provider: str
    fallback_layout: str | None = None
    preset: str | None = None


def resolve(target: str | None, to_2d: bool, to_1d: bool, to_3d: bool, layout: str | None,
            folds: tuple[str, ...], provider: str | None) -> Plan:
    """Merge `--for TARGET` with the explicit flags; the flags win (see the module docstring)."""
    if target is None:
        return Plan(to_2d, to_1d, to_3d, layout or "h", folds, provider or "cpu")
    try:
        preset = PRESETS[target]
    except KeyError:
        raise ConvRewriteError(f"unknown target {target!r} (known: {', '.join(PRESETS)})") from None
    rank_given = to_2d or to_1d or to_3d
    plan = Plan(to_2d if rank_given else preset.lift == "to-2d", to_1d, to_3d,
                layout or preset.layout, folds or preset.folds, provider or preset.provider or "cpu",
                preset.fallback_layout if layout is None and provider is None else None, preset.name)
    if plan.layout == "auto" and not plan.to_2d:
        plan.layout = "h"  # the user's rank flag replaced the lift that auto measures
    return plan


def table() -> str:
    """The presets as a Markdown table (the README's table is this)."""
    rows = ["| target | passes | layout | measured on | why |", "| --- | --- | --- | --- | --- |"]
    for p in PRESETS.values():
        layout = p.layout + (f" (where {p.provider} does not run: {p.fallback_layout})" if p.fallback_layout else "")
        passes = f"--{p.lift} " + " ".join(f"--fold {f}" for f in p.folds)
        rows.append(f"| `{p.name}` | `{passes}` | {layout} | {p.provider or '-'} | {p.why} |")
    return "\n".join(rows)
