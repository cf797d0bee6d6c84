"""The verdict and everything behind it, as objects and as JSON (schema in `check/__init__.py`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import runtime
from .compare import ComparisonStats
from .formatting import fmt_number, json_number
from .sessions import ProviderStatus

SCHEMA = "convrewrite.check/2"
EQUIVALENT, NOT_EQUIVALENT, CANNOT_CHECK = "equivalent", "not equivalent", "cannot check"
EXIT_CODES = {EQUIVALENT: 0, NOT_EQUIVALENT: 1, CANNOT_CHECK: 2}


@dataclass
class OutputResult:
    """One provider x output row: the worst trial's comparison."""

    provider: str
    output: str
    status: str
    ok: bool | None
    candidate_output: str | None = None
    atol: float | None = None
    rtol: float | None = None
    stats: ComparisonStats | None = None
    trials: int = 0
    failed_trials: int = 0
    worst_trial: str | None = None
    failed_trial_labels: list[str] = field(default_factory=list)
    failed_kinds: list[str] = field(default_factory=list)
    message: str = ""
    detail: str = ""

    @property
    def special_only(self) -> bool:
        """Failed, but only under the special-values trial (Inf, NaN, +-0, subnormals...)."""
        return self.ok is False and bool(self.failed_kinds) and set(self.failed_kinds) == {"special"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider, "output": self.output, "candidate_output": self.candidate_output,
            "status": self.status, "ok": self.ok, "atol": json_number(self.atol), "rtol": json_number(self.rtol),
            "trials": self.trials, "failed_trials": self.failed_trials, "worst_trial": self.worst_trial,
            "failed_trial_labels": list(self.failed_trial_labels), "special_only": self.special_only,
            "message": self.message, "detail": self.detail or None,
            "stats": self.stats.to_dict() if self.stats is not None else None,
        }


@dataclass
class ProviderDifference:
    """Same model on another provider vs the baseline provider: information, not a verdict."""

    provider: str
    baseline: str
    model: str  # original | candidate (two models) | model (vs expected outputs)
    output: str
    max_abs: float
    max_rel: float
    bit_exact: bool
    trial: str

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "baseline": self.baseline, "model": self.model, "output": self.output,
                "max_abs": json_number(self.max_abs), "max_rel": json_number(self.max_rel),
                "bit_exact": self.bit_exact, "trial": self.trial}


@dataclass
class CannotCheck:
    """Why no verdict: the original itself did not run on any input tried."""

    message: str  # the key part, one line
    detail: str  # onnxruntime's whole message
    node: str | None
    op_type: str | None
    tried: list[str]  # the dims tried, in order
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "detail": self.detail, "node": self.node, "op_type": self.op_type,
                "tried": list(self.tried), "advice": self.advice}


@dataclass
class CheckReport:
    """The verdict and everything behind it; `.ok` is what a pipeline gates on, `.verdict` says which of three."""

    mode: str
    original: str
    candidate: str | None
    expected: str | None
    providers: list[ProviderStatus] = field(default_factory=list)
    results: list[OutputResult] = field(default_factory=list)
    provider_differences: list[ProviderDifference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cannot_check: CannotCheck | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    dims: dict[str, int] = field(default_factory=dict)
    dim_reasons: dict[str, str] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    layers: Any = None  # with --layers: a layers.LayerReport (information: it does not change the verdict)

    @property
    def ran(self) -> list[ProviderStatus]:
        return [p for p in self.providers if p.status == "ran"]

    @property
    def ok(self) -> bool:
        if self.cannot_check is not None or self.problems or not self.ran:
            return False
        if any(p.required and p.status != "ran" for p in self.providers):
            return False
        if any(p.requested and p.status == "error" for p in self.providers):
            return False
        if any(r.ok is False for r in self.results):
            return False
        compared = [r for r in self.results if r.output != "*" and r.provider in {p.name for p in self.ran}]
        return bool(compared) and all(r.ok for r in compared)

    @property
    def verdict(self) -> str:
        if self.cannot_check is not None:
            return CANNOT_CHECK
        return EQUIVALENT if self.ok else NOT_EQUIVALENT

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def bit_exact(self) -> bool:
        compared = [r for r in self.results if r.ok is not None and r.output != "*"]
        return bool(compared) and all(r.status == "bit-exact" for r in compared)

    @property
    def special_only(self) -> bool:
        """Not equivalent only because of the special-values trial."""
        failures = self.failures()
        return bool(failures) and not self.problems and all(r.special_only for r in failures)

    def failures(self) -> list[OutputResult]:
        return [r for r in self.results if r.ok is False]

    def output(self, name: str, provider: str = "CPUExecutionProvider") -> OutputResult | None:
        """The row for output `name` on `provider` (a short name like 'cpu' works too)."""
        full = runtime.provider_full_name(provider)
        return next((r for r in self.results if r.output == name and r.provider == full), None)

    @property
    def summary(self) -> str:
        """The one-line verdict (what `-q` prints)."""
        if self.cannot_check is not None:
            c = self.cannot_check
            return f"CANNOT CHECK: the original does not run ({c.message}); {c.advice}"
        unavailable = [p for p in self.providers if p.requested and p.status == "unavailable"]
        ran = ", ".join(p.short for p in self.ran) or "none"
        if self.ok:
            outputs = sorted({r.output for r in self.results if r.ok})
            exact = " (bit-exact)" if self.bit_exact else ""
            n = len(self.trials)
            text = (f"EQUIVALENT{exact}: {len(outputs)} output{'s' if len(outputs) != 1 else ''} on {ran}, "
                    f"{n} input set{'s' if n != 1 else ''}")
            if unavailable:
                text += "; not run: " + ", ".join(f"{p.short} (unavailable)" for p in unavailable)
            return text
        return ("NOT EQUIVALENT" + (" (only under special values: Inf/NaN/-0/subnormal/huge inputs)"
                                    if self.special_only else "") + ": " + "; ".join(self._reasons()))

    def _reasons(self) -> list[str]:
        reasons = []
        named = set()  # providers whose reason is already in the line
        for p in self.providers:
            if p.required and p.status != "ran":
                reasons.append(f"required provider {p.short} {p.status}: {p.reason}")
                named.add(p.name)
        if not self.ran and not reasons:
            reasons.append("no provider ran: " + "; ".join(f"{p.short}: {p.reason}" for p in self.providers if p.requested))
            named.update(p.name for p in self.providers if p.requested)
        reasons.extend(self.problems)
        for r in self.failures():
            if r.status == "unavailable" or (r.output == "*" and r.provider in named):
                continue
            where = f"{r.output!r} on {runtime.provider_short_name(r.provider)}"
            trial = f" in trial {r.worst_trial}" if r.worst_trial else ""
            if r.stats is not None and r.status == "failed":
                reasons.append(f"{where} differs{trial} (max abs {fmt_number(r.stats.max_abs)}, "
                               f"{r.stats.beyond_count}/{r.stats.size} beyond tolerance)")
            elif r.output == "*":
                reasons.append(f"{runtime.provider_short_name(r.provider)}: {r.message}")
            else:
                reasons.append(f"{where}: {r.status}" + (f" ({r.message})" if r.message else ""))
        if not reasons:
            reasons.append("nothing was compared")
        more = [f"(+{len(reasons) - 3} more)"] if len(reasons) > 3 else []
        return reasons[:3] + more

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "ok": self.ok, "verdict": self.verdict, "exit_code": self.exit_code,
            "summary": self.summary, "mode": self.mode, "original": self.original, "candidate": self.candidate,
            "expected": self.expected, "providers": [p.to_dict() for p in self.providers],
            "results": [r.to_dict() for r in self.results],
            "provider_differences": [d.to_dict() for d in self.provider_differences],
            "problems": list(self.problems), "special_only": self.special_only,
            "cannot_check": self.cannot_check.to_dict() if self.cannot_check else None,
            "inputs": list(self.inputs), "dims": dict(self.dims), "dim_reasons": dict(self.dim_reasons),
            "trials": list(self.trials), "settings": dict(self.settings), "notes": list(self.notes),
            "warnings": list(self.warnings),
            **({"layers": self.layers.to_dict()} if self.layers is not None else {}),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON; strict JSON, no NaN literals."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __str__(self) -> str:
        from .render import render_text

        return render_text(self)
