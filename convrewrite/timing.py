"""Latency of models side by side: `convrewrite bench A.onnx B.onnx`.

Every model gets the same inputs: the checker's (dims on which the first model
runs, seeded normal draws) or the user's. On each provider that really runs
(a provider onnxruntime silently fell back from is reported unavailable, never
timed), each model runs `warmup` times, then `runs` timed rounds, interleaved
across models so that drift on a busy machine hits all alike, each round in
its own seeded random order, so that no model always runs first or last, nor
always right after the same neighbour (a model that always follows a big one
finds its caches evicted: +2-3% on a 40 us model, measured). Reported per
model and provider: median, p90, p99, min and mean in milliseconds, and the
ratio of its median to the first model's.

JSON (`BenchReport.to_json()`), schema "convrewrite.bench/1"::

    {"schema": "convrewrite.bench/1", "models": [str],
     "providers": [{"name", "short", "requested", "required", "status", "reason", "detail"}],
     "timings": [{"model": str, "provider": str, "status": "ran" | "unavailable" | "error",
                  "reason": str | null, "runs": int, "median_ms", "p90_ms", "p99_ms", "min_ms",
                  "mean_ms", "ratio": float | null}],     # ratio: median / the first model's median
     "inputs": [{"name", "dtype", "shape", "source"}], "dims": {str: int},
     "settings": {"runs", "warmup", "threads", "ort_opt", "seed"}, "notes": [str]}
"""

from __future__ import annotations

import json
import os
import random
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from . import model as cio
from . import runtime
from .checker.errors import CheckInputError
from .checker.run import Checker, load_model
from .checker.sessions import OrtModel, ProviderStatus, run_failure
from .checker.specs import fed_inputs

SCHEMA = "convrewrite.bench/1"


@dataclass
class Timing:
    """One model on one provider."""

    model: str
    provider: str
    status: str  # ran | unavailable | error
    reason: str | None = None
    samples_ms: list[float] = field(default_factory=list)
    ratio: float | None = None

    def stat(self, q: float) -> float | None:
        return float(np.percentile(self.samples_ms, q)) if self.samples_ms else None

    @property
    def median(self) -> float | None:
        return self.stat(50)

    def to_dict(self) -> dict[str, Any]:
        ms = self.samples_ms
        return {"model": self.model, "provider": self.provider, "status": self.status, "reason": self.reason,
                "runs": len(ms), "median_ms": self.stat(50), "p90_ms": self.stat(90), "p99_ms": self.stat(99),
                "min_ms": min(ms) if ms else None, "mean_ms": float(np.mean(ms)) if ms else None,
                "ratio": self.ratio}


@dataclass
class BenchReport:
    """Every model's latency on every provider, and what they were fed."""

    models: list[str]
    providers: list[ProviderStatus]
    timings: list[Timing]
    inputs: list[dict[str, Any]]
    dims: dict[str, int]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every model ran on every provider that was available, and every required one ran."""
        if any(p.required and p.status != "ran" for p in self.providers):
            return False
        ran = {p.name for p in self.providers if p.status == "ran"}
        return all(t.status == "ran" for t in self.timings if t.provider in ran)

    def timing(self, model: int | str, provider: str = "cpu") -> Timing | None:
        name = self.models[model] if isinstance(model, int) else model
        full = runtime.provider_full_name(provider)
        return next((t for t in self.timings if t.model == name and t.provider == full), None)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "ok": self.ok, "models": list(self.models),
                "providers": [p.to_dict() for p in self.providers],
                "timings": [t.to_dict() for t in self.timings], "inputs": list(self.inputs), "dims": dict(self.dims),
                "settings": dict(self.settings), "notes": list(self.notes)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def render(self) -> str:
        """A table per provider: median, p90, p99, min and the ratio to the first model."""
        lines = []
        header = ("provider", "model", "median ms", "p90 ms", "p99 ms", "min ms", "ratio")
        rows = []
        for t in self.timings:
            short = runtime.provider_short_name(t.provider)
            if t.status != "ran":
                rows.append((short, t.model, t.status, "-", "-", "-", "-"))
                continue
            d = t.to_dict()
            rows.append((short, t.model, f"{d['median_ms']:.3f}", f"{d['p90_ms']:.3f}", f"{d['p99_ms']:.3f}",
                         f"{d['min_ms']:.3f}", f"{t.ratio:.3f}" if t.ratio is not None else "-"))
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines.append(fmt.format(*header).rstrip())
        lines.extend(fmt.format(*r).rstrip() for r in rows)
        for t in self.timings:
            if t.status != "ran" and t.reason:
                lines.append(f"  {runtime.provider_short_name(t.provider)} {t.model}: {t.reason}")
        for p in self.providers:
            if not p.requested and p.status != "ran":
                lines.append(f"provider {p.short} not used: {p.reason}")
        if self.inputs:
            lines.append("inputs: " + ", ".join(f"{i['name']} {i['dtype']} [{'x'.join(map(str, i['shape']))}]"
                                                for i in self.inputs))
        s = self.settings
        lines.append(f"{s['runs']} timed runs after {s['warmup']} warm-up runs, interleaved; onnxruntime graph "
                     f"optimizations: {s['ort_opt']}; threads: {s['threads'] or 'onnxruntime default'}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _label(source: Any, index: int) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else f"model {index}"


def bench(
    models: Sequence[cio.ModelSource],
    *,
    providers: Iterable[str] | str | None = None,
    require: Iterable[str] | str | None = None,
    runs: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    ort_opt: str = "all",
    shapes: Mapping[str, Sequence[int]] | None = None,
    inputs: Any = None,
    seed: int = 0,
    labels: Sequence[str] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    verbose: bool = False,
) -> BenchReport:
    """Time `models` side by side on the same inputs (see the module docstring).

    `ort_opt` defaults to `all`, as deployments run; `threads` sets
    onnxruntime's intra-op threads. `on_progress(done, total, what)` is called
    after each run. Raises CheckInputError for bad options or when the first
    model does not run on any input tried.
    """
    if not models:
        raise CheckInputError("give at least one model to time")
    if int(runs) < 1 or int(warmup) < 0:
        raise CheckInputError(f"runs must be >= 1 and warm-up >= 0, got {runs} and {warmup}")
    if threads is not None and int(threads) < 0:
        raise CheckInputError(f"threads must be >= 0, got {threads}")
    names = list(labels) if labels else [_label(m, i) for i, m in enumerate(models)]
    settings = {"runs": int(runs), "warmup": int(warmup), "threads": threads, "ort_opt": ort_opt, "seed": seed}
    planner = Checker(models[0], inputs=inputs, shapes=shapes, seed=seed, draws="normal", providers=providers,
                      require=require, ort_opt=ort_opt, verbose=verbose)
    try:
        planner.run_original()
        statuses = planner.providers
        if not any(p.status == "ran" for p in statuses):  # every provider asked for fell back: nothing to time
            return BenchReport(names, statuses, [Timing(n, p.name, p.status, p.reason) for p in statuses
                                                 for n in names], [], {}, settings)
        if planner.cannot is not None:
            raise CheckInputError(f"{names[0]} does not run: {planner.cannot.message}; {planner.cannot.advice}")
        feed = planner.feed(0)
        info = planner.new_report(None)
    finally:
        planner.close()
    report = BenchReport(names, statuses, [], info.inputs, info.dims, settings, list(info.notes))
    loaded = [load_model(m) for m in models]
    wanted = {s.name: s.dtype for s in fed_inputs(loaded[0].model)}
    for name, model in zip(names[1:], loaded[1:]):
        theirs = {s.name: s.dtype for s in fed_inputs(model.model)}
        if theirs != wanted:
            raise CheckInputError(f"{name} takes inputs {sorted(theirs)}, {names[0]} takes {sorted(wanted)}: "
                                  "they cannot be fed the same values")
    ran = [p for p in statuses if p.status == "ran"]
    for p in statuses:
        if p.status != "ran" and p.requested:
            report.timings.extend(Timing(n, p.name, p.status, p.reason) for n in names)
    total = len(ran) * len(models) * (int(runs) + int(warmup))
    done = 0
    for p in ran:
        with ExitStack() as stack:
            subjects = [OrtModel(m, n, stack, ort_opt, {"CUDAExecutionProvider": dict(runtime.DEFAULT_CUDA_OPTIONS)},
                                 verbose, report.notes, threads=threads) for n, m in zip(names, loaded)]
            timings = [Timing(n, p.name, "ran") for n in names]
            shuffle = random.Random(seed)
            pairs = list(zip(subjects, timings))
            for round_ in range(int(warmup) + int(runs)):
                # Each round in its own order: no model always first (cold), last, or after the same neighbour.
                for subject, timing in shuffle.sample(pairs, len(pairs)):
                    if timing.status != "ran":
                        continue
                    sess = subject.session(p.name)
                    if sess is None:
                        failure = subject.failures[p.name]
                        timing.status, timing.reason = failure.kind, failure.message
                        continue
                    try:
                        start = time.perf_counter()
                        sess.run(None, feed)  # directly: no log capture inside the timed span
                        elapsed = (time.perf_counter() - start) * 1000.0
                    except Exception as exc:  # noqa: BLE001 - onnxruntime's errors share no base
                        failure = run_failure(timing.model, "failed running it", exc)
                        timing.status, timing.reason = failure.kind, failure.message
                        continue
                    if round_ >= int(warmup):
                        timing.samples_ms.append(elapsed)
                    done += 1
                    if on_progress is not None:
                        on_progress(done, total, f"{runtime.provider_short_name(p.name)} {timing.model}")
            for subject in subjects:
                subject.release()
        base = timings[0].median if timings[0].status == "ran" else None
        for t in timings:
            if t.status == "ran" and base:
                t.ratio = t.median / base  # type: ignore[operator]
            elif t.status == "ran" and t.samples_ms:
                t.ratio = None
        report.timings.extend(timings)
    order = {p.name: i for i, p in enumerate(statuses)}
    report.timings.sort(key=lambda t: (order.get(t.provider, len(order)), names.index(t.model)))
    return report
