"""Prove by running them that two models compute the same thing.

`check(original, candidate)` runs both models in onnxruntime on the same
inputs, on each execution provider that really runs, and compares every
output on the same provider. `check(model, expected=...)` compares one model
with reference outputs from its training framework. Three verdicts:

- **equivalent** (exit 0): every output of every trial matched within tolerance;
- **not equivalent** (exit 1): an output differs, an interface changed, the
  candidate does not run, or a required provider is unavailable;
- **cannot check** (exit 2): the original itself does not run on any input
  tried; no rewrite is blamed, nothing is written.

One job per module: `specs` (what a model is fed, its interface), `dims`
(dynamic dims on which the original runs), `draws` (the trials), `tensor_files`
(.npz and .pb inputs, read safely), `sessions` (onnxruntime, providers),
`compare` (one output pair), `report` and `render` (the verdict), `run` (the
orchestration), `bisect` (which rewrite is to blame).

Rules that make the verdict trustworthy:

- Inputs on which the original runs: dims from the model (equations with
  fixed-size operands, lower bounds from reflect Pads and conv windows), else
  grown (16, 64, 256, ... 16384) until the original runs, within a memory
  budget. The original runs alone first.
- Trials that find differences: normal, wide uniform, special values (+-0,
  +-Inf, NaN, subnormals, huge, tiny; left out with `finite=True`), a batch of
  2 distinct samples where batch is dynamic, index inputs over their whole
  range, both bool values.
- The interface is compared before anything runs: input and output names,
  types, ranks, fixed/dynamic dims, initializer-backed inputs.
- A provider counts only if it really ran (onnxruntime-gpu falls back to CPU
  silently; the session's `get_providers()` tells).
- Graph optimizations are pinned (default: disabled); on CUDA
  `cudnn_conv_algo_search=HEURISTIC`, `use_tf32=0`.

JSON report (`CheckReport.to_json()`), schema "convrewrite.check/2".
Non-finite numbers are the strings "inf", "-inf", "nan"::

    {
      "schema": "convrewrite.check/2",
      "ok": bool, "verdict": "equivalent" | "not equivalent" | "cannot check", "exit_code": 0 | 1 | 2,
      "summary": str, "mode": "models" | "expected",
      "original": str, "candidate": str | null, "expected": str | null,
      "providers": [{"name", "short", "requested", "required",
                     "status": "ran" | "unavailable" | "error", "reason": str | null, "detail": str | null}],
      "results": [{"provider", "output" ("*": the whole provider), "candidate_output",
                   "status": "bit-exact" | "passed" | "failed" | "shape mismatch" | "dtype mismatch" |
                             "length mismatch" | "presence mismatch" | "type mismatch" | "missing" |
                             "no reference" | "error" | "unavailable",
                   "ok": bool | null, "atol", "rtol", "trials", "failed_trials", "worst_trial",
                   "failed_trial_labels": [str], "special_only": bool, "message": str,
                   "detail": str | null,        # onnxruntime's whole message
                   "stats": null | {"kind": "tensor" | "string" | "sequence" | "optional" | "map",
                                    "ref_shape", "actual_shape", "ref_dtype", "actual_dtype", "size",
                                    "bit_exact", "max_abs", "max_rel", "mean_abs", "beyond_count",
                                    "beyond_share", "mismatched_special", "worst_index", "worst_ref",
                                    "worst_actual", "min_atol", "min_rtol",
                                    "histogram": null | {"edges", "counts", "zero", "nonfinite"}}}],
                                    # |diff| in decade bins, of the worst trial (checker/histogram.py)
      "provider_differences": [{"provider", "baseline", "model", "output", "max_abs", "max_rel",
                                "bit_exact", "trial"}],
      "problems": [str],                # interface changes: fail the check unless ignored
      "special_only": bool,             # the only differences are under special values
      "cannot_check": null | {"message", "detail", "node", "op_type", "tried": [str], "advice"},
      "inputs": [{"name", "dtype", "shape", "source"}],
      "dims": {key: int}, "dim_reasons": {key: str},
      "trials": [{"label", "kind": "normal" | "wide" | "special" | "given", "seed"}],
      "settings": {"ort_opt", "cuda_options", "finite", "draws", "memory_budget"},
      "notes": [str], "warnings": [str],
      "layers": {"mode": "map" | "names", "trial": "normal" | "given", "trial_label", "provider",          # only with layers=True (--layers)
                 "pairs": [{"original", "candidate", "view", "shape", "dtype", "max_abs", "max_rel",
                            "beyond", "atol", "rtol", "diverges", "note"}],
                 "first_divergent": {"original", "candidate"} | null, "notes": [str]} | null
    }
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from onnx import ModelProto

from .. import model as cio
from . import draws
from .bisect import BisectResult, bisect
from .compare import ComparisonStats, compare_arrays, compare_values
from .dims import DimPlanner
from .errors import CheckInputError
from .layers import LayerPair, LayerReport, compare_layers, layer_report, read_map
from .render import render_text
from .report import CANNOT_CHECK, EQUIVALENT, NOT_EQUIVALENT, CheckReport, OutputResult, ProviderDifference
from .run import Checker, TensorSource
from .sessions import ProviderStatus
from .specs import fed_inputs
from .tolerance import Tolerance, default_tolerance

__all__ = [
    "BisectResult", "CANNOT_CHECK", "CheckInputError", "LayerPair", "LayerReport", "compare_layers", "read_map", "CheckReport", "ComparisonStats", "EQUIVALENT",
    "NOT_EQUIVALENT", "OutputResult", "ProviderDifference", "ProviderStatus", "bisect", "check",
    "compare_arrays", "compare_values", "default_tolerance", "make_inputs", "render_text",
]


def check(
    original: cio.ModelSource,
    candidate: cio.ModelSource | None = None,
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
    finite: bool = False,
    draws: Iterable[str] | str | None = None,
    ignore_interface: bool = False,
    memory_budget: int | None = None,
    verbose: bool = False,
    original_label: str | None = None,
    candidate_label: str | None = None,
    on_progress: Callable[[str], None] | None = None,
    layers: bool = False,
    tensor_map: Sequence[Mapping[str, Any]] | None = None,
    tensors_gone: Iterable[str] | None = None,
) -> CheckReport:
    """Run `original` and `candidate` on the same inputs and compare every output.

    With `expected` (an .npz / test-data folder / mapping of output arrays) and
    no candidate, compare `original` with reference outputs from its framework
    (inputs default to the same file). Models are paths, bytes or ModelProtos.
    `trials`: how many normal draws (a wide and a special-values draw are always
    added; `finite=True` drops the special one; `draws` picks among normal, wide
    and special). `shapes`/`ranges`: per input.
    `atol`/`rtol`: a float for every output, or a mapping of output name to
    value ('' for the global value). `providers`: 'cpu', 'cuda', ... (default:
    every one that really runs; TensorRT only when named); `require`: providers
    whose absence fails the check. `report.verdict` is equivalent, not
    equivalent or cannot check. `on_progress(text)` is told what runs next. Raises CheckInputError for bad options and
    ModelLoadError/ModelInvalidError for unreadable models.
    `layers=True` also compares intermediate tensors (`report.layers`, checker/layers.py): those of
    `tensor_map` (a rewrite's `RewriteResult.tensor_map(original)`, used as it is), else matched by name and
    shape. With `tensors_gone` too (a `--report` file's composed map, `checker.read_map`), names the map does not
    mention and `tensors_gone` does not list are paired with themselves where their shapes agree.
    """
    if candidate is None and expected is None:
        raise CheckInputError("give a candidate model to compare with, or expected outputs")
    if candidate is not None and expected is not None:
        raise CheckInputError("give either a candidate model or expected outputs, not both")
    if expected is not None and inputs is None:
        inputs = expected  # one .npz / test-data folder may hold the inputs and the outputs
    checker = Checker(
        original, expected=expected, inputs=inputs, seed=seed, trials=trials, shapes=shapes, ranges=ranges,
        atol=atol, rtol=rtol, providers=providers, require=require, ort_opt=ort_opt, cuda_options=cuda_options,
        verbose=verbose, original_label=original_label, finite=finite, draws=draws, ignore_interface=ignore_interface,
        budget=memory_budget, progress=on_progress,
    )
    if tensor_map is not None and not layers:
        raise CheckInputError("a tensor map is for layers=True (--map needs --layers)")
    if layers and candidate is None:
        raise CheckInputError("layers compare two models: give a candidate (not expected outputs)")
    try:
        report = checker.compare(candidate, candidate_label)
        if layers:
            report.layers = layer_report(checker, report, original, candidate, tensor_map, tensors_gone)
        return report
    finally:
        checker.close()


def make_inputs(
    model: cio.ModelSource,
    *,
    seed: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    kind: str = "normal",
) -> dict[str, np.ndarray]:
    """One seeded input set (the checker's first choice of dims, not run), keyed by input name.

    `kind`: normal, wide or special (see `checker.draws`). The same seed gives the same arrays.
    """
    proto: ModelProto = model if isinstance(model, ModelProto) else cio.load(model, check=False)
    specs = fed_inputs(proto)
    planner = DimPlanner(proto, specs, shapes)
    candidate = next(planner.candidates())
    index = draws.index_ranges(planner.probe_model, specs, planner.infer(candidate.values))
    trial = draws.Trial(kind, kind, int(seed))
    if int(seed) < 0:
        raise CheckInputError(f"seed: must be >= 0, got {seed}")
    for name in ranges or {}:
        if name not in {s.name for s in specs}:
            raise CheckInputError(f"range given for {name!r}, but the model has no such fed input")
    return {s.name: draws.draw(s, i, candidate.shapes[s.name], trial, int(seed), (ranges or {}).get(s.name),
                               index.get(s.name)) for i, s in enumerate(specs)}


