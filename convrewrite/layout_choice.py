"""`rewrite --layout auto`: pick keep-1D, `h` or `w` by timing them on the target provider.

Why measure: the fastest 2D layout depends on the runtime (a ConvInteger
model ran 1.96x slower on onnxruntime CPU after `--layout w`, a VAD model
1.5x faster after `h`), and no documentation predicts it per model.

Whole-model variants: the three forms are made by the same passes (the
pipeline without `to-2d`, with `to-2d --layout h`, with `--layout w`) and
timed side by side, interleaved, on the same seeded inputs (`timing.bench`),
and compared by the median of per-round ratios (drift on a busy machine hits
both sides of a round alike).
The keep-1D form is timed twice (two sessions, each round in a random order);
how far their per-round ratio's median is from 1 is the measured noise, and the margin is
`max(MIN_MARGIN, 2 x noise)`. A lifted form is chosen only when its median is
below the keep-1D median by more than the margin; otherwise nothing is lifted.

Then, where the lift forms two or more independent regions, each region
gets its own form, starting from that whole-model choice (layout_regions.py:
one more timing round per region, each change beaten by the margin); where
regions are not independent, the whole-model choice stands. `path` in the
records says which was used, and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import onnx

from .errors import ConvRewriteError
from .engine import RewriteResult
from .layout_regions import Region, RegionSearch, layouts_for, region_path

MIN_MARGIN = 0.02  # below this, medians of one model on a busy machine already differ run to run
FORMS = ("1d", "h", "w")

class ProviderUnavailable(ConvRewriteError):
    """The measuring provider does not really run here (a preset may then fall back to its documented layout)."""


# measure(models, labels) -> per model, its timed samples in ms (same order); raises ConvRewriteError.
Measure = Callable[[Sequence[onnx.ModelProto], Sequence[str]], Sequence[Sequence[float]]]


@dataclass
class LayoutChoice:
    """What was measured and what was chosen."""

    chosen: str  # "1d", "h" or "w"
    medians_ms: dict[str, float]  # per form; "1d" is the first keep-1D run, "1d-again" the repeat
    noise: float  # |median over rounds of 1d-again / 1d - 1|: two timings of the same model
    margin: float  # a lifted form must be faster than 1d by more than this fraction
    provider: str
    reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)  # per lifted form: median of per-round ratios to 1d
    path: str = "whole-model"  # or "regions": each independent region got its own form
    path_reason: str = ""  # why that path
    regions: list[Region] = field(default_factory=list)  # the region path's rounds, in order
    layouts: dict[str, str] = field(default_factory=dict)  # the region path's `layouts` option (record key -> form)

    def rewrite_options(self) -> dict[str, Any]:
        """Options that rebuild the chosen form with the same pass order (plus to-2d unless 1d): for bisect."""
        if self.layouts:
            return {"layout": "h", "layouts": dict(self.layouts)}
        return {} if self.chosen == "1d" else {"layout": self.chosen}

    def to_dict(self) -> dict[str, Any]:
        out = {"chosen": self.chosen, "provider": self.provider, "medians_ms": dict(self.medians_ms),
               "ratios": dict(self.ratios),
               "noise": self.noise, "margin": self.margin, "reason": self.reason, "settings": dict(self.settings),
               "path": self.path, "path_reason": self.path_reason}
        if self.regions:
            out["regions"] = [r.to_dict() for r in self.regions]
        return out

    def summary(self) -> str:
        times = ", ".join(f"{f} {self.medians_ms[f]:.3f} ms" for f in FORMS if f in self.medians_ms)
        head = f"layout auto on {self.provider}: "
        tail = f"; noise {self.noise:.1%}, margin {self.margin:.1%}"
        if self.chosen == "regions":
            parts = "; ".join(f"{r.name} ({', '.join(r.convs)}): {r.chosen}" for r in self.regions)
            return (f"{head}chose per region ({len(self.regions)} independent regions, from whole-model "
                    f"{self.settings.get('whole_model', '?')}): {parts}; whole-model medians {times}{tail}")
        return f"{head}chose {self.chosen} ({self.reason}; {self.path}: {self.path_reason}); medians {times}{tail}"


def decide(ratios: Mapping[str, float], noise: float, min_margin: float = MIN_MARGIN) -> tuple[str, float, str]:
    """(form, margin, reason): the fastest lifted form if it beats keep-1D by more than the margin, else 1d.

    `ratios`: each lifted form's time over the keep-1D time ("h", "w").
    """
    margin = max(min_margin, 2.0 * noise)
    lifted = [f for f in ("h", "w") if f in ratios]
    if not lifted:
        return "1d", margin, "nothing to lift"
    best = min(lifted, key=lambda f: ratios[f])
    ratio = ratios[best]
    if ratio < 1.0 - margin:
        return best, margin, f"{best} takes {ratio:.3f}x the 1D time, faster by more than the margin"
    return "1d", margin, f"best lifted form {best} takes {ratio:.3f}x the 1D time: not faster by more than the margin"


def paired_ratio(samples: Sequence[float], base: Sequence[float]) -> float:
    """The median of per-round ratios: rounds are interleaved, so drift on a busy machine cancels."""
    return median([a / b for a, b in zip(samples, base) if b > 0])


def bench_measure(provider: str = "cpu", runs: int = 20, warmup: int = 3, threads: int | None = None,
                  ort_opt: str = "all", shapes: Mapping[str, Sequence[int]] | None = None, inputs: Any = None,
                  seed: int = 0) -> Measure:
    """The real timer: `timing.bench` on one provider; an unavailable provider is an error, never timed."""

    def measure(models: Sequence[onnx.ModelProto], labels: Sequence[str]) -> list[list[float]]:
        from .checker.errors import CheckInputError
        from .timing import bench

        try:
            report = bench(list(models), providers=provider, runs=runs, warmup=warmup, threads=threads,
                           ort_opt=ort_opt, shapes=shapes, inputs=inputs, seed=seed, labels=list(labels))
        except CheckInputError as exc:
            raise ConvRewriteError(f"--layout auto cannot time the model: {exc}") from None
        out = []
        for label in labels:
            t = report.timing(label, provider)
            if t is None or t.status != "ran":
                why = t.reason if t is not None else next((p.reason for p in report.providers), "not run")
                raise ProviderUnavailable(f"--layout auto cannot time {label} on {provider}: {why}")
            out.append(list(t.samples_ms))
        return out

    return measure


def median(samples: Sequence[float]) -> float:
    """The middle sample (the mean of the two middle ones for an even count)."""
    s = sorted(samples)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def choose_layout(model: onnx.ModelProto, order: Sequence[str], options: Mapping[str, Any],
                  run: Callable[..., RewriteResult], measure: Measure, provider: str = "cpu",
                  min_margin: float = MIN_MARGIN) -> tuple[RewriteResult, LayoutChoice]:
    """Make the keep-1D, h and w forms of `order` (which holds "to-2d"), time them, return the chosen one;
    then, where the lift forms independent regions, choose region by region from there (layout_regions.py).

    `run(model, order, **options)` runs passes (the API's `rewrite`). The
    chosen result's records carry the measurement: each `to-2d` record gets
    `details["layout_auto"]`; when 1D is kept, the `to-2d` records of the `h`
    form are kept as `skipped` with the reason, so every conv still says what
    happened to it.
    """
    base_order = [p for p in order if p != "to-2d"]
    forms: dict[str, RewriteResult] = {}
    for layout in ("h", "w"):
        forms[layout] = run(model, list(order), **{**options, "layout": layout})
    lifted = [f for f in ("h", "w") if any(r.pass_name == "to-2d" and r.rewritten for r in forms[f].records)]
    forms["1d"] = run(model, base_order, **options) if base_order else RewriteResult(model, [], {}, [])
    if not lifted:
        choice = LayoutChoice("h", {}, 0.0, max(min_margin, 0.0), provider, "no 1D convolution to lift: not timed")
        return _annotate(forms["h"], choice, forms), choice
    labels = ["1d"] + lifted + ["1d-again"]
    samples = measure([forms[f].model for f in ["1d"] + lifted + ["1d"]], labels)
    medians = {label: median(s) for label, s in zip(labels, samples)}
    ratios = {label: paired_ratio(s, samples[0]) for label, s in zip(labels[1:], samples[1:])}
    noise = abs(ratios.pop("1d-again") - 1.0)
    chosen, margin, reason = decide(ratios, noise, min_margin)
    choice = LayoutChoice(chosen, medians, noise, margin, provider, reason,
                          {"runs": len(samples[0]), "forms": labels, "whole_model": chosen}, ratios)
    search = RegionSearch(model, list(order), dict(options), run, measure, paired_ratio, median, margin)
    found = region_path(search, forms, chosen)
    if isinstance(found, str):
        choice.path_reason = found
        return _annotate(forms[chosen], choice, forms), choice
    regions, assignment, result = found
    choice.path, choice.regions = "regions", regions
    picked = set(assignment.values())
    if len(picked) == 1:  # every region ended on one form: the whole-model form of it
        choice.chosen = picked.pop()
        choice.path_reason = f"{len(regions)} independent regions, each chose {choice.chosen}"
        choice.reason = f"region by region: {choice.chosen} everywhere"
        return _annotate(forms[choice.chosen], choice, forms), choice
    choice.chosen, choice.layouts = "regions", layouts_for(regions, assignment)
    choice.path_reason = f"{len(regions)} independent regions"
    choice.reason = "region by region: " + ", ".join(f"{r.name} {r.chosen}" for r in regions)
    return _annotate(result, choice, forms), choice


def _annotate(result: RewriteResult, choice: LayoutChoice, forms: Mapping[str, RewriteResult]) -> RewriteResult:
    """Write the measurement into the records of the chosen form (see choose_layout)."""
    info = choice.to_dict()
    if choice.chosen == "1d":
        kept = [r for r in forms["h"].records if r.pass_name == "to-2d"]
        for r in kept:
            if r.rewritten:
                r.status, r.reason, r.after = "skipped", f"layout auto kept 1D: {choice.reason}", None
            region = {k: r.details[k] for k in ("region", "region_convs") if k in r.details}
            r.details = {**region, "layout_auto": info}  # the h form's unit axis and weight notes no longer apply
        result = RewriteResult(result.model, list(result.records) + kept, dict(result.counters),
                               list(result.passes) + ["to-2d"])
    else:
        where = {key: r for r in choice.regions for key in r.keys}
        for r in result.records:
            if r.pass_name != "to-2d":
                continue
            region = where.get(r.key)
            if region is not None and not r.rewritten:  # kept 1D in a mixed form: say which region and why
                r.reason = f"layout auto kept 1D: {region.name} ({', '.join(region.convs)}): {region.reason}"
                r.details = {**r.details, "region": region.number, "region_convs": list(region.convs)}
            r.details = {**r.details, "layout_auto": info}
    return result


MEASURE: Measure | None = None  # a test's timer; None: `bench_measure` on the chosen provider


def rewrite_auto(model: onnx.ModelProto, order: Sequence[str], options: Mapping[str, Any],
                 run: Callable[..., RewriteResult], provider: str = "cpu", fallback_layout: str | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None, inputs: Any = None, seed: int = 0,
                 measure: Measure | None = None) -> tuple[RewriteResult, LayoutChoice | None, str]:
    """`choose_layout` with the real timer (or `measure`, or the module's MEASURE hook).

    Returns (result, choice, note). Where `provider` does not run here and a
    preset gave `fallback_layout`, that layout is used unmeasured (choice
    None, the note says why); without a fallback that is an error.
    """
    timer = measure or MEASURE or bench_measure(provider, shapes=shapes, inputs=inputs, seed=seed)
    try:
        result, choice = choose_layout(model, order, options, run, timer, provider)
    except ProviderUnavailable as exc:
        if fallback_layout is None:
            raise
        result = run(model, list(order), **{**options, "layout": fallback_layout})
        for r in result.records:
            if r.pass_name == "to-2d":
                r.details = {**r.details, "layout_auto": {"chosen": fallback_layout, "provider": provider,
                                                          "measured": False, "reason": str(exc)}}
        return result, None, f"layout {fallback_layout} (not measured: {exc})"
    return result, choice, choice.summary()
