"""Orchestration: plan inputs on which the original runs, run it once, then compare candidates.

The original side is built once and reused (bisect compares many candidates
against it): its outputs for every trial and provider are kept, its sessions
are released before a candidate is loaded, so only one model's weights are in
onnxruntime at a time.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np
from onnx import ModelProto

from .. import model as cio
from .. import runtime
from . import draws
from .compare import compare_values, stats_rank
from .dims import Candidate, DimPlanner
from .draws import draw_kinds
from .errors import CheckInputError
from .report import CannotCheck, CheckReport, OutputResult, ProviderDifference
from .sessions import OrtModel, ProviderStatus, RunFailure, probe, resolve_providers
from .specs import dims_text, fed_inputs, interface, interface_problems, np_dtype
from .tensor_files import read_tensor_sets
from .budget import finite_magnitude, memory_budget, nbytes
from .tolerance import Tolerance, default_tolerance, split_tolerance
from .weightless import load_model

TensorSource = Union[str, os.PathLike, Mapping[str, np.ndarray], Sequence[Mapping[str, np.ndarray]], None]
FEED_CACHE_LIMIT = 64 * 2**20
ADVICE = "give the input shapes or real inputs (CLI: --shape NAME=DxD..., --inputs FILE.npz; Python: shapes=, inputs=)"


def _label(source: Any, default: str) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else default


def _output_dtypes(model: ModelProto) -> dict[str, np.dtype | None]:
    """The tensor element dtype of each output (inside sequences and optionals too)."""
    out: dict[str, np.dtype | None] = {}
    for vi in model.graph.output:
        tp = vi.type
        while tp.WhichOneof("value") in ("sequence_type", "optional_type"):
            tp = tp.sequence_type.elem_type if tp.HasField("sequence_type") else tp.optional_type.elem_type
        dtype = None
        if tp.HasField("tensor_type"):
            try:
                dtype = np_dtype(tp.tensor_type.elem_type, vi.name)
            except CheckInputError:
                dtype = None
        out[vi.name] = dtype
    return out


class Checker:
    """Everything about the original side of a check, built once."""

    def __init__(
        self,
        original: cio.ModelSource,
        *,
        expected: TensorSource = None,
        inputs: TensorSource = None,
        seed: int = 0,
        trials: int = 1,
        shapes: Mapping[str, Sequence[int]] | None = None,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        atol: Tolerance = None,
        rtol: Tolerance = None,
        providers: Iterable[str] | str | None = None,
        require: Iterable[str] | str | None = None,
        ort_opt: str = "disabled",
        cuda_options: Mapping[str, str] | None = None,
        verbose: bool = False,
        original_label: str | None = None,
        finite: bool = False,
        draws: Iterable[str] | str | None = None,
        ignore_interface: bool = False,
        budget: int | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.stack = ExitStack()
        self.progress = progress
        self.notes: list[str] = []
        self.warnings: list[str] = []
        conflict = runtime.distribution_conflict()
        if conflict:
            self.warnings.append(conflict)
        self.verbose = verbose
        self.finite = finite
        self.ignore_interface = ignore_interface
        if ort_opt not in runtime.OPT_LEVELS:
            raise CheckInputError(f"graph optimization level {ort_opt!r} is not one of {', '.join(runtime.OPT_LEVELS)}")
        self.ort_opt = ort_opt
        if int(trials) < 1:
            raise CheckInputError(f"trials: must be at least 1, got {trials}")
        if int(seed) < 0:
            raise CheckInputError(f"seed: must be >= 0, got {seed}")
        self.seed, self.normal_trials = int(seed), int(trials)
        self.draws = draw_kinds(draws, finite)
        self.budget = int(budget) if budget is not None else memory_budget()
        self.cuda_options = dict(runtime.DEFAULT_CUDA_OPTIONS)
        self.cuda_options.update({str(k): str(v) for k, v in (cuda_options or {}).items()})
        self.provider_options = {"CUDAExecutionProvider": self.cuda_options}
        self.order, self.named, self.required = resolve_providers(providers, require)
        self.atol_global, self.atol_per = split_tolerance(atol, "atol")
        self.rtol_global, self.rtol_per = split_tolerance(rtol, "rtol")

        self.loaded = load_model(original)
        self.original_label = original_label or _label(original, "original")
        model = self.loaded.model
        self.interface = interface(model)
        self.output_names = [o.name for o in model.graph.output]
        self.output_dtypes = _output_dtypes(model)
        for what, per in (("atol", self.atol_per), ("rtol", self.rtol_per)):
            for name in per:
                if name not in self.output_names:
                    raise CheckInputError(f"{what}: the model has no output named {name!r} "
                                          f"(outputs: {', '.join(self.output_names)})")
        self.specs = fed_inputs(model)
        for spec in self.specs:
            spec.dtype  # noqa: B018 - refuses an input numpy cannot feed, before any work
        self.ranges = self._validate_ranges(ranges)
        self.given: list[tuple[str, dict[str, np.ndarray]]] | None = None
        self.planner: DimPlanner | None = None
        if inputs is not None:
            if shapes:
                raise CheckInputError("shapes are for drawn inputs; with given inputs the shapes are theirs")
            if trials != 1:
                self.warnings.append("trials ignored: the input sets are given")
            self._read_given(inputs)
        else:
            self.planner = DimPlanner(model, self.specs, shapes)
        self.expected_label: str | None = None
        self.expected_sets: list[dict[str, np.ndarray]] | None = None
        if expected is not None:
            self._read_expected(expected)
        self.providers = probe(self.order, self.named, self.required, self.provider_options, verbose)
        self.original = OrtModel(self.loaded, "original" if expected is None else "model", self.stack, ort_opt,
                                 self.provider_options, verbose, self.notes)
        if self.loaded.path is not None and isinstance(self.original.source, str):
            self.loaded.model = ModelProto()  # onnxruntime reads the file: hold no second copy of the weights
        self.trials: list[draws.Trial] = []
        self.chosen: Candidate | None = None
        self.index_ranges: dict[str, tuple[int, int]] = {}
        self.references: dict[tuple[int, str], dict[str, Any]] = {}
        self.cannot: CannotCheck | None = None
        self._feeds: dict[int, dict[str, np.ndarray]] = {}
        self._magnitudes: dict[int, float] = {}
        self._ran = False

    def tell(self, role: str, provider: str, t: int, dims: str | None = None) -> None:
        """Say what runs next (progress on a terminal)."""
        if self.progress is not None:
            what = self.trials[t].label if t < len(self.trials) else f"input set {t}"
            self.progress(f"{role} on {runtime.provider_short_name(provider)}: {what}" + (f" ({dims})" if dims else ""))

    def close(self) -> None:
        self.original.release()
        self.stack.close()

    # -- options and files

    def _validate_ranges(self, ranges: Mapping[str, tuple[float, float]] | None) -> dict[str, tuple[float, float]]:
        names = {s.name for s in self.specs}
        out = {}
        for name, value in (ranges or {}).items():
            if name not in names:
                raise CheckInputError(f"range given for {name!r}, but the model has no such fed input "
                                      f"(inputs: {', '.join(sorted(names)) or 'none'})")
            lo, hi = float(value[0]), float(value[1])
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise CheckInputError(f"range of input {name!r}: need finite LO <= HI, got {value[0]},{value[1]}")
            out[name] = (lo, hi)
        return out

    def _check_header(self, name: str, dtype: np.dtype, shape: tuple[int, ...], where: str) -> None:
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            return
        want = spec.dtype
        if dtype != want:
            raise CheckInputError(f"{where}: input {name!r} is {dtype.name}, the model wants {want.name}")
        if spec.dims is None:
            return
        if len(shape) != len(spec.dims) or any(isinstance(d, int) and d != v for d, v in zip(spec.dims, shape)):
            raise CheckInputError(f"{where}: input {name!r} has shape {list(shape)}, the model wants {dims_text(spec.dims)}")

    def _read_given(self, inputs: TensorSource) -> None:
        names = [s.name for s in self.specs]
        label = _label(inputs, "given arrays")
        sets = read_tensor_sets(inputs, names, "input", budget=self.budget, warnings=self.warnings,
                                check_header=lambda n, d, s: self._check_header(n, d, s, label))
        self.notes.extend(sets.notes)
        for set_label, feed in sets.sets:
            where = sets.source if len(sets.sets) == 1 else f"{sets.source} ({set_label})"
            for spec in self.specs:
                if spec.name not in feed:
                    have = ", ".join(sorted(feed)) or "nothing usable"
                    raise CheckInputError(f"{where}: no array for input {spec.name!r} (found: {have})")
                arr = feed[spec.name]
                self._check_header(spec.name, arr.dtype, tuple(arr.shape), where)
        self.given = sets.sets
        self.given_source = sets.source

    def _read_expected(self, expected: TensorSource) -> None:
        sets = read_tensor_sets(expected, self.output_names, "output", budget=self.budget, warnings=self.warnings)
        self.notes.extend(sets.notes)
        count = len(self.given) if self.given is not None else 1
        if len(sets.sets) != count:
            raise CheckInputError(f"{sets.source}: {len(sets.sets)} sets of expected outputs for {count} input sets")
        if not any(s for _, s in sets.sets):
            raise CheckInputError(f"{sets.source}: holds no array named after an output "
                                  f"(outputs: {', '.join(self.output_names)})")
        for out in self.output_names:
            if all(out not in s for _, s in sets.sets):
                self.warnings.append(f"{sets.source}: no expected values for output {out!r}")
        self.expected_label = sets.source
        self.expected_sets = [s for _, s in sets.sets]

    # -- inputs

    def tolerance(self, output: str, dtype: Any) -> tuple[float, float]:
        d_atol, d_rtol = default_tolerance(dtype)
        atol = self.atol_per.get(output, self.atol_global if self.atol_global is not None else d_atol)
        rtol = self.rtol_per.get(output, self.rtol_global if self.rtol_global is not None else d_rtol)
        return atol, rtol

    def feed(self, t: int) -> dict[str, np.ndarray]:
        if self.given is not None:
            return self.given[t][1]
        if t in self._feeds:
            return self._feeds[t]
        assert self.chosen is not None
        trial = self.trials[t]
        first = self.trials[0].seed or 0
        feed = {
            s.name: draws.draw(s, i, self.chosen.shapes[s.name], trial, first, self.ranges.get(s.name),
                               self.index_ranges.get(s.name))
            for i, s in enumerate(self.specs)
        }
        if sum(a.nbytes for a in feed.values()) <= FEED_CACHE_LIMIT:
            self._feeds[t] = feed
        if t not in self._magnitudes:
            self._magnitudes[t] = finite_magnitude(feed)
        return feed

    def atol_scale(self, t: int) -> float:
        """How much larger than the first trial's this trial's inputs are: rounding errors grow alike.

        The wide and special-values draws feed values up to 1000 and 1.8e19; an
        absolute tolerance made for N(0, 1) inputs would call a reordered sum a
        difference there. NaN/Inf positions and exact equality are unaffected.
        """
        if self.given is not None or t == 0:
            return 1.0
        if t not in self._magnitudes:
            self.feed(t)
        return max(1.0, self._magnitudes[t] / max(self._magnitudes.get(0, 1.0), 1.0))

    def _run_bytes(self, candidate: Candidate, inferred: Mapping[str, list[int | None]]) -> int:
        """About what the inputs and one run take for a candidate's shapes (its three largest values)."""
        inputs = sum(nbytes(s.dtype, candidate.shapes[s.name]) for s in self.specs)
        sizes = sorted((math.prod(dims) * 4 for dims in inferred.values() if dims and all(d is not None for d in dims)),
                       reverse=True)
        return inputs + sum(sizes[:3])

    # -- the original, once

    def run_original(self) -> None:
        """Find inputs the original runs on, then keep its outputs for every trial and provider."""
        if self._ran:
            return
        self._ran = True
        ran = [p for p in self.providers if p.status == "ran"]
        if not ran:
            return
        baseline = ran[0].name
        first = self._first_run(baseline)
        if first is None:
            self.original.release()
            return
        self.references[(0, baseline)] = first
        kept = [0]
        for t in range(1, len(self.trials)):
            self.tell("original", baseline, t)
            out = self.original.run(baseline, self.feed(t))
            if isinstance(out, RunFailure):
                self.notes.append(f"trial {self.trials[t].label} left out: {out.message}")
                self._feeds.pop(t, None)
                continue
            self.references[(t, baseline)] = out
            kept.append(t)
        if len(kept) != len(self.trials):
            self._renumber(kept)
        for status in ran[1:]:
            for t in range(len(self.trials)):
                self.tell("original", status.name, t)
                out = self.original.run(status.name, self.feed(t))
                if isinstance(out, RunFailure):
                    status.status, status.reason, status.detail = out.kind, out.message, out.detail or None
                    break
                self.references[(t, status.name)] = out
        self.original.release()

    def _renumber(self, kept: list[int]) -> None:
        self.trials = [self.trials[t] for t in kept]
        self.references = {(kept.index(t), p): v for (t, p), v in self.references.items() if t in kept}
        self._feeds = {kept.index(t): v for t, v in self._feeds.items() if t in kept}
        self._magnitudes = {kept.index(t): v for t, v in self._magnitudes.items() if t in kept}
        if self.given is not None:
            self.given = [self.given[t] for t in kept]
            if self.expected_sets is not None:
                self.expected_sets = [self.expected_sets[t] for t in kept]

    def _first_run(self, baseline: str) -> dict[str, Any] | None:
        if self.given is not None:
            self.trials = [draws.Trial(label, "given") for label, _ in self.given]
            self.tell("original", baseline, 0)
            out = self.original.run(baseline, self.feed(0))
            if isinstance(out, RunFailure):
                if self.expected_sets is not None:  # the model under test fails on its framework's inputs
                    status = next(p for p in self.providers if p.name == baseline)
                    status.status, status.reason, status.detail = out.kind, out.message, out.detail or None
                else:
                    self._cannot(out, [f"the given inputs ({self.given_source})"],
                                 "check that the inputs are what the model expects")
                return None
            return out
        assert self.planner is not None
        self.trials = draws.plan_trials(self.seed, self.normal_trials, self.draws)
        tried: list[str] = []
        last: RunFailure | None = None
        for n, candidate in enumerate(self.planner.candidates()):
            inferred = self.planner.infer(candidate.values)  # one shape inference: the budget and the index ranges
            run_bytes = self._run_bytes(candidate, inferred)
            if run_bytes > self.budget:
                if n == 0:
                    big = max(self.specs, key=lambda s: nbytes(s.dtype, candidate.shapes[s.name]))
                    raise CheckInputError(
                        f"input {big.name!r} {list(candidate.shapes[big.name])} ({big.dtype.name}): the inputs and one "
                        f"run need about {run_bytes / 2**30:.2f} GiB, over the memory budget of "
                        f"{self.budget / 2**30:.2f} GiB; give smaller shapes or your own inputs")
                self.notes.append(f"stopped growing dims at {candidate.describe()}: over the memory budget")
                break
            self.chosen = candidate
            self.index_ranges = draws.index_ranges(self.planner.probe_model, self.specs, inferred)
            self._feeds.clear()
            self._magnitudes.clear()
            self.tell("original", baseline, 0, candidate.describe())
            out = self.original.run(baseline, self.feed(0))
            if not isinstance(out, RunFailure):
                if tried:
                    self.notes.append(f"the original did not run with {'; '.join(tried)} ({last.message if last else ''}); "
                                      f"ran with {candidate.describe()}")
                return out
            if out.kind != "error" or self.original.failures.get(baseline):
                self._cannot(out, [candidate.describe()], ADVICE)
                return None
            tried.append(candidate.describe())
            last = out
        assert last is not None or not tried
        self._cannot(last or RunFailure("error", "no candidate dims fit the memory budget"), tried, ADVICE)
        return None

    def _cannot(self, failure: RunFailure, tried: list[str], advice: str) -> None:
        self.cannot = CannotCheck(failure.message, failure.detail, failure.node, failure.op_type, tried, advice)

    # -- reports

    def new_report(self, candidate_label: str | None) -> CheckReport:
        expected_mode = self.expected_sets is not None
        report = CheckReport(
            mode="expected" if expected_mode else "models", original=self.original_label,
            candidate=None if expected_mode else candidate_label, expected=self.expected_label,
            providers=[ProviderStatus(p.name, p.requested, p.required, p.status, p.reason, p.detail)
                       for p in self.providers],
            trials=[t.to_dict() for t in self.trials],
            settings={"ort_opt": self.ort_opt, "cuda_options": dict(self.cuda_options), "finite": self.finite,
                      "draws": list(self.draws), "memory_budget": self.budget},
            notes=list(self.notes), warnings=list(self.warnings), cannot_check=self.cannot,
        )
        if self.chosen is not None:
            report.dims = dict(self.chosen.values)
            report.dim_reasons = {k: v for k, v in self.chosen.reasons.items() if k in self.chosen.values}
        for s in self.specs:
            if self.given is not None:
                arr = self.given[0][1][s.name]
                report.inputs.append({"name": s.name, "dtype": arr.dtype.name, "shape": list(arr.shape),
                                      "source": f"from {self.given_source}"})
            elif self.chosen is not None:
                report.inputs.append({"name": s.name, "dtype": s.dtype.name, "shape": list(self.chosen.shapes[s.name]),
                                      "source": draws.describe(s, self.ranges.get(s.name), self.index_ranges.get(s.name))})
        return report

    def compare(self, candidate: cio.ModelSource | None, candidate_label: str | None = None) -> CheckReport:
        """Compare a candidate (or, with expected outputs, the model itself) with the reference."""
        if self.expected_sets is None and candidate is None:
            raise CheckInputError("give a candidate model to compare with")
        candidate_interface = None
        loaded = None
        if candidate is not None and self.expected_sets is None:
            loaded = load_model(candidate)
            candidate_interface = interface(loaded.model)
        self.run_original()
        report = self.new_report(candidate_label or _label(candidate, "candidate"))
        if self.cannot is not None:
            return report
        rows: dict[tuple[str, str], OutputResult] = {}
        for p in report.providers:
            if p.requested and p.status == "unavailable":
                rows[(p.name, "*")] = OutputResult(p.name, "*", "unavailable", False if p.required else None,
                                                   message=p.reason or "")
            elif p.status == "error":
                rows[(p.name, "*")] = OutputResult(p.name, "*", "error", False, message=p.reason or "",
                                                   detail=p.detail or "")
        if self.expected_sets is not None:
            self._compare_expected(report, rows)
        else:
            assert loaded is not None and candidate_interface is not None
            with ExitStack() as stack:
                self._compare_candidate(loaded, candidate_interface, report, rows, stack)
        order = {p.name: i for i, p in enumerate(report.providers)}
        outputs = {name: i for i, name in enumerate(self.output_names)}
        report.results.extend(sorted(rows.values(), key=lambda r: (order.get(r.provider, len(order)),
                                                                   outputs.get(r.output, -1))))
        return report

    def _compare_expected(self, report: CheckReport, rows) -> None:
        assert self.expected_sets is not None
        for p in report.ran:
            for t in range(len(self.trials)):
                actual = self.references.get((t, p.name))
                if actual is None:
                    continue
                for name in self.output_names:
                    self._compare_one(p.name, name, name, self.expected_sets[t], actual, t, rows, report, True)
        self._provider_differences(report, {"model": self.references})

    def _compare_candidate(self, loaded: cio.LoadedModel, candidate_interface, report: CheckReport, rows, stack) -> None:
        problems = interface_problems(self.interface, candidate_interface)
        (report.warnings if self.ignore_interface else report.problems).extend(problems)
        if problems and not self.ignore_interface:
            return  # an interface change fails the check before anything runs
        pairs = self._match_outputs([p.name for p in candidate_interface[1]], report)
        feed_map = self._match_inputs(loaded.model, report)
        if feed_map is None:
            return
        subject = OrtModel(loaded, "candidate", stack, self.ort_opt, self.provider_options, self.verbose, report.notes)
        if loaded.path is not None and isinstance(subject.source, str):
            loaded.model = ModelProto()
        own: dict[tuple[int, str], dict[str, Any]] = {}
        try:
            for p in report.ran:
                for t in range(len(self.trials)):
                    reference = self.references.get((t, p.name))
                    if reference is None:
                        break
                    feed = self.feed(t)
                    self.tell("candidate", p.name, t)
                    actual = subject.run(p.name, {k: feed[v] for k, v in feed_map.items()})
                    if isinstance(actual, RunFailure):
                        self._mark_failed(p, actual, rows)
                        break
                    for ours, theirs in pairs:
                        self._compare_one(p.name, ours, theirs, reference, actual, t, rows, report, False)
                    own[(t, p.name)] = actual
        finally:
            subject.release()
        self._provider_differences(report, {"original": self.references, "candidate": own})

    def _mark_failed(self, status: ProviderStatus, failure: RunFailure, rows) -> None:
        status.status, status.reason, status.detail = failure.kind, failure.message, failure.detail or None
        for key in [k for k in rows if k[0] == status.name]:
            del rows[key]
        rows[(status.name, "*")] = OutputResult(status.name, "*", failure.kind, False, message=failure.message,
                                                detail=failure.detail)

    def _match_outputs(self, theirs: list[str], report: CheckReport) -> list[tuple[str, str | None]]:
        ours = self.output_names
        if set(ours) <= set(theirs):
            return [(o, o) for o in ours]
        pairs: list[tuple[str, str | None]] = []
        taken = set(ours) & set(theirs)
        for i, name in enumerate(ours):
            if name in theirs:
                pairs.append((name, name))
            elif i < len(theirs) and theirs[i] not in taken:
                report.warnings.append(f"original output {name!r} has no namesake in the candidate; compared with "
                                       f"candidate output {theirs[i]!r} (same position)")
                pairs.append((name, theirs[i]))
                taken.add(theirs[i])
            else:
                pairs.append((name, None))
        return pairs

    def _match_inputs(self, candidate: ModelProto, report: CheckReport) -> dict[str, str] | None:
        """Candidate input name -> original input name whose values it gets (None: no match)."""
        ours = [s.name for s in self.specs]
        theirs = [s.name for s in fed_inputs(candidate)]
        if set(ours) == set(theirs):
            return {n: n for n in theirs}
        if len(ours) != len(theirs):
            report.problems.append(f"the candidate takes inputs {theirs}, the original {ours}: "
                                   "they cannot be fed the same values")
            return None
        report.warnings.append(f"input names differ (original {ours}, candidate {theirs}); fed by position")
        return dict(zip(theirs, ours))

    def _compare_one(self, provider, ours, theirs, reference, actual, t, rows, report, expected_mode) -> None:
        trial = self.trials[t]
        key = (provider, ours)
        row = rows.get(key)
        if row is None:
            row = rows[key] = OutputResult(provider, ours, "passed", True,
                                           candidate_output=theirs if theirs not in (None, ours) else None)
        row.trials += 1
        if theirs is None or theirs not in actual:
            row.status, row.ok = "missing", False
            row.failed_trials += 1
            row.failed_trial_labels.append(trial.label)
            row.failed_kinds.append(trial.kind)
            row.message = "the candidate has no such output"
            return
        if ours not in reference:
            row.status, row.ok = "no reference", False
            row.message = "no expected values for this output: it cannot be compared"
            return
        ref, act = reference[ours], actual[theirs]
        dtype = self.output_dtypes.get(ours)
        if expected_mode:
            dtype = np.asarray(act).dtype if not isinstance(act, (list, dict)) and act is not None else dtype
        atol, rtol = self.tolerance(ours, dtype if dtype is not None else np.asarray(ref).dtype
                                    if not isinstance(ref, (list, dict)) and ref is not None else "int64")
        stats = compare_values(ref, act, atol * self.atol_scale(t), rtol, check_dtype=not expected_mode,
                               tolerance_dtype=dtype)
        if expected_mode and isinstance(ref, np.ndarray) and isinstance(act, np.ndarray) and ref.dtype != act.dtype:
            msg = (f"output {ours!r}: expected values are {ref.dtype.name}, the model gives {act.dtype.name}; "
                   f"compared by value with {act.dtype.name} tolerances")
            if msg not in report.warnings:
                report.warnings.append(msg)
        if not stats.ok:
            row.failed_trials += 1
            row.failed_trial_labels.append(trial.label)
            row.failed_kinds.append(trial.kind)
        if row.stats is None or stats_rank(stats) > stats_rank(row.stats):
            row.stats, row.worst_trial = stats, trial.label
            row.atol, row.rtol = atol, rtol
        row.status = row.stats.status if row.status not in ("missing", "no reference") else row.status
        row.ok = row.failed_trials == 0 and row.status not in ("missing", "no reference")
        row.message = row.stats.message

    def _provider_differences(self, report: CheckReport, sides: dict[str, dict[tuple[int, str], dict[str, Any]]]) -> None:
        ran = [p.name for p in report.ran]
        if len(ran) < 2:
            return
        baseline = ran[0]
        diffs: dict[tuple[str, str, str], ProviderDifference] = {}
        for which, outputs in sides.items():
            for (t, provider), values in outputs.items():
                base = outputs.get((t, baseline))
                if provider == baseline or base is None:
                    continue
                for name, value in values.items():
                    if name not in base:
                        continue
                    stats = compare_values(base[name], value, 0.0, 0.0)
                    structural = stats.status not in ("bit-exact", "passed", "failed")
                    max_abs = math.inf if structural else float(stats.max_abs)
                    max_rel = math.inf if structural else float(stats.max_rel)
                    key = (provider, which, name)
                    old = diffs.get(key)
                    if old is None or max_abs > old.max_abs:
                        diffs[key] = ProviderDifference(provider, baseline, which, name, max_abs, max_rel,
                                                        stats.bit_exact and (old is None or old.bit_exact),
                                                        self.trials[t].label)
                    elif not stats.bit_exact:
                        old.bit_exact = False
        report.provider_differences.extend(diffs.values())
