"""The report as a person reads it: one row per provider x output, details, inputs, the verdict last."""

from __future__ import annotations

import math
from typing import Any

from .. import runtime
from .compare import STRUCTURAL
from .formatting import fmt_exact, fmt_number
from .report import CheckReport, OutputResult


def _beyond_text(row: OutputResult) -> str:
    s = row.stats
    if s is None or s.status in STRUCTURAL:
        return "-"
    if s.beyond_count == 0:
        return f"0/{s.size}"
    return f"{s.beyond_count}/{s.size} ({100 * s.beyond_share:.3g}%)"


def _verdict_cell(row: OutputResult, required: bool) -> str:
    if row.ok is None:
        return "FAIL" if required else "-"
    return "PASS" if row.ok else "FAIL"


def _details(row: OutputResult, report: CheckReport, verbose: bool) -> list[str]:
    s = row.stats
    names = ("original", "candidate") if report.mode == "models" else ("expected", "model")
    out = []
    if row.candidate_output:
        out.append(f"compared with candidate output {row.candidate_output!r} (matched by position)")
    if s is None:
        if row.message:
            out.append(row.message)
        if row.detail and verbose:
            out.extend("onnxruntime: " + line for line in row.detail.splitlines() if line.strip())
        return out
    if s.status in STRUCTURAL:
        out.append(s.message or f"{names[1]} {s.actual_dtype}{list(s.actual_shape)} vs {names[0]} "
                   f"{s.ref_dtype}{list(s.ref_shape)}")
        return out
    if s.worst_index is not None:
        out.append(f"worst element {list(s.worst_index)}: {names[0]} {fmt_exact(s.worst_ref)}, "
                   f"{names[1]} {fmt_exact(s.worst_actual)}" + (f" (trial {row.worst_trial})" if row.worst_trial else ""))
    out.append(f"max abs {fmt_number(s.max_abs)}, max rel {fmt_number(s.max_rel)}, mean abs {fmt_number(s.mean_abs)}"
               + (f", {s.mismatched_special} NaN/Inf mismatches" if s.mismatched_special else ""))
    if s.kind != "string":
        if s.mismatched_special:
            passing = "no tolerance passes: NaN/Inf elements differ"
        else:
            by_rtol = f"rtol >= {fmt_number(s.min_rtol)}" if math.isfinite(s.min_rtol) else "no rtol (a zero reference differs)"
            passing = (f"would pass with atol >= {fmt_number(s.min_atol)} (at rtol {fmt_number(s.rtol)}) "
                       f"or {by_rtol} (at atol {fmt_number(s.atol)})")
        out.append(f"tolerance atol {fmt_number(s.atol)} rtol {fmt_number(s.rtol)}; {passing}")
    if row.failed_trials:
        out.append(f"failed in {row.failed_trials} of {row.trials} input sets: {', '.join(row.failed_trial_labels)}"
                   + (" (only the special-values trial: the models differ on Inf/NaN/-0/subnormal inputs)"
                      if row.special_only else ""))
    return out


def render_text(report: CheckReport, verbose: bool = False) -> str:
    """The human report; `verbose` adds details for passing rows and onnxruntime's whole messages."""
    lines: list[str] = []
    if report.mode == "models":
        lines.append(f"check: {report.original} vs {report.candidate}")
    else:
        lines.append(f"check: {report.original} vs expected outputs in {report.expected}")
    if report.cannot_check is None:
        lines.extend(_table(report))
        for r in report.results:
            if r.ok is False or verbose or r.status == "unavailable":
                details = _details(r, report, verbose) if r.status != "unavailable" else [r.message]
                if details:
                    lines.append(f"  {runtime.provider_short_name(r.provider)} {r.output}:")
                    lines.extend(f"    {d}" for d in details)
    else:
        c = report.cannot_check
        lines.append(f"the original does not run: {c.message}")
        if c.tried:
            lines.append("  dims tried: " + "; ".join(c.tried))
        if verbose and c.detail:
            lines.extend("  onnxruntime: " + line for line in c.detail.splitlines() if line.strip())
    for p in report.providers:
        if not p.requested and p.status != "ran":
            lines.append(f"provider {p.short} not used: {p.reason}")
    if report.inputs:
        lines.append("inputs:")
        for spec in report.inputs:
            shape = "x".join(str(d) for d in spec["shape"]) or "scalar"
            lines.append(f"  {spec['name']}: {spec['dtype']} [{shape}] {spec['source']}")
    if report.dims:
        lines.append("dims: " + ", ".join(
            f"{k}={v}" + (f" ({report.dim_reasons[k]})" if k in report.dim_reasons else "") for k, v in report.dims.items()))
    if report.trials:
        lines.append(f"trials: {', '.join(t['label'] for t in report.trials)}")
    lines.append(f"onnxruntime graph optimizations: {report.settings.get('ort_opt', 'disabled')}")
    if report.provider_differences and (verbose or any(not d.bit_exact for d in report.provider_differences)):
        lines.append("provider differences (same model, information only):")
        for d in report.provider_differences:
            lines.append(
                f"  {runtime.provider_short_name(d.provider)} vs {runtime.provider_short_name(d.baseline)} {d.model} {d.output}: "
                + ("bit-exact" if d.bit_exact else f"max abs {fmt_number(d.max_abs)}, max rel {fmt_number(d.max_rel)}"))
    if report.layers is not None:
        lines.extend(render_layers(report.layers, verbose))
    for problem in report.problems:
        lines.append(f"problem: {problem}")
    for note in report.notes:
        lines.append(f"note: {note}")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    lines.append(report.summary)
    return "\n".join(lines)


def _table(report: CheckReport) -> list[str]:
    header = ("provider", "output", "status", "max abs", "max rel", "beyond tol", "verdict")
    required = {p.name for p in report.providers if p.required}
    rows = []
    for r in report.results:
        s = r.stats
        numbers = s is not None and s.status not in STRUCTURAL
        rows.append((
            runtime.provider_short_name(r.provider),
            r.output if not r.candidate_output else f"{r.output}->{r.candidate_output}",
            r.status,
            fmt_number(s.max_abs) if numbers else "-",
            fmt_number(s.max_rel) if numbers else "-",
            _beyond_text(r),
            _verdict_cell(r, r.provider in required),
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip()] + [fmt.format(*row).rstrip() for row in rows]


def render_layers(layers: Any, verbose: bool = False) -> list[str]:
    """The per-layer table of `check --layers` (the original's node order) and the first divergent pair."""
    how = "by tensor map" if layers.mode == "map" else "by name and shape"
    lines = [f"layers ({len(layers.pairs)} pairs matched {how}, {layers.trial_label or layers.trial} trial on "
             f"{runtime.provider_short_name(layers.provider) if layers.provider else '-'}):"]
    header = ("#", "original", "candidate", "view", "max abs", "max rel", "beyond tol", "")
    rows = []
    for i, p in enumerate(layers.pairs):
        view = ",".join(v.get("op", "?") for v in p.view) or "-"
        rows.append((str(i + 1), p.original, p.candidate if p.candidate != p.original else "=", view,
                     fmt_number(p.max_abs) if p.max_abs is not None else "-",
                     fmt_number(p.max_rel) if p.max_rel is not None else "-",
                     f"{100 * p.beyond:.2f}%" if p.beyond is not None else "-",
                     "DIVERGES" if p.diverges else (p.note if p.note else "")))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  " + "  ".join(f"{{:<{w}}}" for w in widths)
    lines += [fmt.format(*header).rstrip()] + [fmt.format(*row).rstrip() for row in rows]
    first = layers.first_divergent
    if first is not None:
        lines.append(f"  first divergent layer: {first.original}" +
                     (f" (candidate {first.candidate})" if first.candidate != first.original else "") +
                     (f": {first.note}" if first.note else ""))
    elif layers.pairs:
        lines.append("  no layer diverges")
    lines.extend(f"  note: {n}" for n in layers.notes)
    return lines
