"""Target presets, `rewrite --for ort-cpu|ort-cuda|tensorrt|npu`: the passes, layout and options a runtime wants.

Why presets: which form runs best is a property of the runtime, not of the
model, and users should not have to know that onnx-tensorrt lifts 1D convs to
`[N, C, L, 1]` or that NPUs want explicit pads. Each row below cites what it is
chosen from; where a provider can run here (`ort-cpu`, `ort-cuda`), the layout
is measured (`--layout auto`) instead of assumed. Explicit flags override a
preset: `--layout`, `--fold`, `--provider`, and a rank flag (`--to-2d`,
`--to-1d`, `--to-3d`) replace what the preset says; `--expand-dilations` adds.

Sources (checked against the code, not only the docs; `source` in each row):
- onnxruntime CUDA: `onnxruntime/core/providers/cuda/nn/conv.cc` (microsoft/onnxruntime) pads a
  1D conv's `[N, C, L]` to `[N, C, L, 1]` (`push_back(1)`: our `w`) unless the provider option
  `cudnn_conv1d_pad_to_nc1d` is 1, then to `[N, C, 1, L]` (`insert(begin() + 2, 1)`: our `h`); its
  comment: `[N,C,1,D]` measured faster "especially on A100" and is PyTorch's choice, `[N,C,D,1]` kept
  as the default as "the sweet spot for all algo search options" (PRs #7348, #7702). The CUDA EP
  docs (docs/execution-providers/CUDA-ExecutionProvider.md, "Convolution Input Padding") say the
  same: default `[N, C, D, 1]`, the option for `[N, C, 1, D]`, default value 0.
- onnx-tensorrt: the Conv importer (`onnxOpImporters.cpp`, formerly `builtin_op_importers.cpp`)
  "Expand spatial dims from 1D to 2D" with `unsqueezeTensor(..., axes {3})` and a kernel `d[3] = 1`:
  `[N, C, L, 1]`, our `w`; pooling and BatchNorm likewise.
- Qualcomm NPU: pytorch/executorch issue #13091 ("QNN, the performance gap between nchw and ncwh is
  huge"): a conv lifted as `[N, C, 1, W]` ran 20x faster than as `[N, C, H, 1]` on the HTP backend.
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
    source: str  # where the row's facts come from (see the module docstring)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("ort-cpu", "to-2d", "auto", ("all",), "cpu", None,
           "onnxruntime CPU runs 1D convs natively; lifting helped one model (0.66x with h) and hurt another "
           "(1.96x with w): measured region by region, and 1D kept unless a 2D form is faster",
           "measurements (issue 17, benchmarks/bench_layout.py)"),
    Preset("ort-cuda", "to-2d", "auto", ("all",), "cuda", "w",
           "the CUDA provider pads a 1D conv's [N,C,L] to [N,C,L,1] (our w) by default and to [N,C,1,L] (our h) "
           "with the provider option cudnn_conv1d_pad_to_nc1d=1, faster on some GPUs (A100) and slower on others: "
           "timing h and w on CUDA covers both settings of the option without setting it; where CUDA does not run "
           "here, w: the same cuDNN convolutions as the 1D original with the option at its default (0)",
           "onnxruntime/core/providers/cuda/nn/conv.cc; CUDA-ExecutionProvider docs, Convolution Input Padding"),
    Preset("tensorrt", "to-2d", "w", ("all",), None, None,
           "onnx-tensorrt lifts every 1D conv to [N,C,L,1] itself: the same form, explicit, with folds so "
           "its parser sees plain convs",
           "onnx/onnx-tensorrt onnxOpImporters.cpp (Conv: unsqueeze axis 3)"),
    Preset("npu", "to-2d", "h", ("all",), None, None,
           "NPU compilers want every conv 2D with explicit pads (no auto_pad) and canonical depthwise + "
           "pointwise pairs; [N,C,1,W] was reported 20x faster than [N,C,H,1] on a Qualcomm NPU; dilations "
           "kept (--expand-dilations for targets without them)",
           "pytorch/executorch issue #13091 (QNN HTP)"),
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
    rows = ["| target | passes | layout | measured on | why | source |", "| --- | --- | --- | --- | --- | --- |"]
    for p in PRESETS.values():
        layout = p.layout + (f" (where {p.provider} does not run: {p.fallback_layout})" if p.fallback_layout else "")
        passes = f"--{p.lift} " + " ".join(f"--fold {f}" for f in p.folds)
        rows.append(f"| `{p.name}` | `{passes}` | {layout} | {p.provider or '-'} | {p.why} | {p.source} |")
    return "\n".join(rows)
