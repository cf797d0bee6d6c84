"""`--layout auto` region by region: keep-1D, h or w for each region `--to-2d` lifts.

Why per region: one model can hold a front end that runs fastest as `h`
and a back end that runs fastest as `w` (or unlifted); a whole-model choice
then leaves time on the table or, worse, keeps 1D everywhere.

Regions come from the rank pass (`details.region` and `details.region_convs`
of its records): convolutions linked by region tensors, entries included, so
two regions share no wrapper and may take different layouts. They are used
only when they are *independent*: the `h` and `w` runs form the same regions,
and every candidate built from a per-region assignment (the pass's `layouts`
option) lifts exactly the convs its assignment says, each with its layout.
Otherwise the whole-model choice stands, and the records say why.

Search (cheap, stated): start from the whole-model winner (the first timing
round: 1d, h, w, 1d again); then one round per region, in order, timing the
original, the current form and the two forms that differ from it in that
region only (coordinate descent: 1 + R rounds, 2 new forms per region). A
region changes only when the alternative beats the current form by more than
the margin and, unless it is the original itself, beats the original too: so
the written form is never slower than the original beyond the margin, by the
numbers measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import onnx

from .engine import RewriteResult
from .errors import ConvRewriteError

PASS = "to-2d"
OPTION = {"1d": "keep", "h": "h", "w": "w"}  # a form's value in the rank pass's `layouts` option


class Dependent(ConvRewriteError):
    """Regions that cannot take layouts one by one (the whole-model choice is used)."""


@dataclass
class Region:
    """One region of `to-2d`: its convs (record keys and labels), and what its round measured and chose."""

    graph: str
    number: int
    convs: list[str]
    keys: list[str]
    chosen: str = ""
    medians_ms: dict[str, float] = field(default_factory=dict)  # "1d" (original), "current", and each alternative
    ratios: dict[str, float] = field(default_factory=dict)  # each alternative's median per-round ratio to the current form
    to_original: dict[str, float] = field(default_factory=dict)  # each alternative's ratio to the original
    reason: str = ""

    @property
    def name(self) -> str:
        return f"region {self.number}" if self.graph == "main" else f"region {self.number} of {self.graph}"

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.number, "graph": self.graph, "convs": list(self.convs), "chosen": self.chosen,
                "medians_ms": dict(self.medians_ms), "ratios_to_current": dict(self.ratios),
                "ratios_to_original": dict(self.to_original), "reason": self.reason}


def regions_of(result: RewriteResult) -> list[Region]:
    """The regions a lifting run formed, in record order (from its rewritten `to-2d` records)."""
    found: dict[tuple[str, int], Region] = {}
    for r in result.records:
        if r.pass_name != PASS or not r.rewritten or "region" not in r.details:
            continue
        region = found.setdefault((r.graph, r.details["region"]),
                                  Region(r.graph, r.details["region"], list(r.details["region_convs"]), []))
        region.keys.append(r.key)
    return list(found.values())


def partition(regions: Sequence[Region]) -> set[frozenset[str]]:
    return {frozenset(r.keys) for r in regions}


def layouts_for(regions: Sequence[Region], assignment: Mapping[int, str]) -> dict[str, str]:
    """The rank pass's `layouts` option for an assignment (index into `regions` -> form)."""
    return {key: OPTION[assignment[i]] for i, region in enumerate(regions) for key in region.keys}


def mismatch(result: RewriteResult, regions: Sequence[Region], assignment: Mapping[int, str]) -> str:
    """Why `result` is not exactly the assigned form ("" when it is): every lifted conv as assigned, regions kept."""
    want = {key: (i, assignment[i]) for i, region in enumerate(regions) for key in region.keys}
    groups = {key: frozenset(region.keys) for region in regions for key in region.keys}
    for r in result.records:
        if r.pass_name != PASS:
            continue
        if r.key not in want:
            if r.rewritten:
                return f"{r.node} lifted but in no region of the h run"
            continue
        form = want[r.key][1]
        if form == "1d" and r.rewritten:
            return f"{r.node} lifted though its region is kept 1D"
        if form != "1d" and (not r.rewritten or r.details.get("layout") != form):
            return f"{r.node} not lifted as {form} ({r.reason or r.details.get('layout')})"
        if form != "1d" and {f"{PASS}:{r.graph}:{c}" for c in r.details.get("region_convs", [])} != groups[r.key]:
            return f"{r.node}'s region changed with the other regions' layouts"
    return ""


Measure = Callable[[Sequence[onnx.ModelProto], Sequence[str]], Sequence[Sequence[float]]]
Ratio = Callable[[Sequence[float], Sequence[float]], float]
Median = Callable[[Sequence[float]], float]


@dataclass
class RegionSearch:
    """What the region search needs: the model, how to run passes and time forms, and the rules to compare."""

    model: onnx.ModelProto
    order: list[str]
    options: dict[str, Any]
    run: Callable[..., RewriteResult]
    measure: Measure
    ratio: Ratio
    median: Median
    margin: float

    def build(self, regions: Sequence[Region], assignment: Mapping[int, str]) -> RewriteResult:
        result = self.run(self.model, list(self.order), **{**self.options, "layouts": layouts_for(regions, assignment)})
        why = mismatch(result, regions, assignment)
        if why:
            raise Dependent(f"regions are not independent: {why}")
        return result

    def descend(self, regions: list[Region], start: str, original: RewriteResult,
                current: RewriteResult) -> tuple[dict[int, str], RewriteResult]:
        """Coordinate descent from all regions at `start`: one timing round per region (see the module doc)."""
        assignment = {i: start for i in range(len(regions))}
        for i, region in enumerate(regions):
            alternatives = [f for f in ("1d", "h", "w") if f != assignment[i]]
            built = {f: self.build(regions, {**assignment, i: f}) for f in alternatives}
            labels = ["1d", "current"] + alternatives
            samples = self.measure([original.model, current.model] + [built[f].model for f in alternatives], labels)
            region.medians_ms = {label: self.median(s) for label, s in zip(labels, samples)}
            region.ratios = {f: self.ratio(s, samples[1]) for f, s in zip(alternatives, samples[2:])}
            region.to_original = {f: self.ratio(s, samples[0]) for f, s in zip(alternatives, samples[2:])}
            best = min(alternatives, key=lambda f: region.ratios[f])
            everything_kept = all(assignment[j] == "1d" for j in assignment if j != i) and best == "1d"
            faster = region.ratios[best] < 1.0 - self.margin
            not_slower = everything_kept or region.to_original[best] < 1.0 - self.margin
            if faster and not_slower:
                region.reason = (f"{best} takes {region.ratios[best]:.3f}x the time of {assignment[i]} here "
                                 f"({region.to_original[best]:.3f}x the original): faster by more than the margin")
                assignment[i] = best
                current = built[best]
            else:
                why = "not faster than the current form" if not faster else "not faster than the original"
                region.reason = (f"kept {assignment[i]}: best alternative {best} takes {region.ratios[best]:.3f}x "
                                 f"the current time ({region.to_original[best]:.3f}x the original), {why} "
                                 "by more than the margin")
            region.chosen = assignment[i]
        return assignment, current


def region_path(search: RegionSearch, forms: Mapping[str, RewriteResult],
                start: str) -> tuple[list[Region], dict[int, str], RewriteResult] | str:
    """Per-region assignment and its result, or why the whole-model path is used instead."""
    regions = regions_of(forms["h"])
    if len(regions) < 2:
        return f"{len(regions)} region: nothing to choose region by region"
    if partition(regions) != partition(regions_of(forms["w"])):
        return "regions are not independent: the h and w runs form different regions"
    try:
        assignment, result = search.descend(regions, start, forms["1d"], forms[start])
    except Dependent as exc:
        return str(exc)
    return regions, assignment, result
