"""Prove by running them that two models compute the same thing.

`check(original, candidate)` feeds both models the same inputs on each
onnxruntime execution provider that really runs, and compares their outputs
output by output, on the same provider. `check(model, expected=...)` compares
one model against reference outputs from its training framework. The design
follows Polygraphy's comparator: seeded inputs with a value range per input,
per-output atol/rtol, statistics that explain themselves (the worst element,
the minimum tolerance that would have passed), NaN equal to NaN.

Rules that make the verdict trustworthy:

- A provider counts only if it really ran: onnxruntime lists CUDA wherever the
  GPU wheel is installed and silently falls back to CPU when it cannot create
  it; the session's `get_providers()` tells, and such a provider is reported
  `unavailable` with the reason, never `passed`.
- Graph optimizations are pinned (default: disabled), and on CUDA
  `cudnn_conv_algo_search=HEURISTIC`, `use_tf32=0`, so onnxruntime's own fusions
  and algorithm choices neither hide nor cause a difference.
- Original and candidate are compared on the same provider. A CPU-vs-CUDA
  difference of the same model is a provider difference: reported apart, for
  information, never a failure.

Comparison of one output (`compare_arrays`), with ref = the original's (or the
expected) output and act = the candidate's, both widened to float64:

- element passes when it is equal (NaN equals NaN, Inf equals Inf of the same
  sign) or both are finite and ``|act - ref| <= atol + rtol * |ref|``; a NaN or
  Inf against anything else always fails. With atol == rtol == 0 (the default
  for integers and bool) only exact equality passes.
- ``abs_err = |act - ref|``; ``rel_err = abs_err / max(|ref|, tiny)`` with
  tiny the smallest normal number of the reference dtype (1 for integers), so
  ref == 0 gives a huge but finite relative error, not a division by zero;
  mismatched NaN/Inf elements have abs_err = rel_err = inf.
- `min_atol` is the smallest atol that passes every element with the given
  rtol: ``max(abs_err - rtol*|ref|, 0)``; `min_rtol` is the smallest rtol that
  passes with the given atol: ``max((abs_err - atol)/|ref|)`` over elements
  beyond atol (inf when such an element has ref == 0). Both are inf when
  NaN/Inf elements mismatch.
- the worst element is the argmax of ``abs_err - (atol + rtol*|ref|)`` among
  failing elements, else the argmax of abs_err.
- bit-exact means same dtype, same shape, same bytes.

Default tolerances by dtype (`default_tolerance`): float32 atol 1e-5 rtol 1e-4;
float16 and bfloat16 atol 1e-3 rtol 1e-2; float64 atol 1e-8 rtol 1e-7;
integers and bool exact.

JSON report (`CheckReport.to_json()`, `convrewrite check --json FILE`),
schema "convrewrite.check/1". Non-finite numbers are written as the strings
"inf", "-inf", "nan" (JSON has no literal for them)::

    {
      "schema": "convrewrite.check/1",
      "ok": bool,                       # the verdict; exit code 0 iff true
      "verdict": "equivalent" | "not equivalent",
      "summary": str,                   # the one-line verdict the CLI prints
      "mode": "models" | "expected",    # two models, or one model vs reference outputs
      "original": str, "candidate": str | null, "expected": str | null,
      "providers": [{"name": "CUDAExecutionProvider", "short": "cuda",
                     "requested": bool, "required": bool,
                     "status": "ran" | "unavailable" | "error",
                     "reason": str | null}],
      "results": [{                     # one per provider x output (worst trial)
          "provider": str,
          "output": str,                # "*": a row for the whole provider (unavailable, error)
          "candidate_output": str | null,   # when matched by position under another name
          "status": "bit-exact" | "passed" | "failed" | "shape mismatch" |
                    "dtype mismatch" | "missing" | "no reference" | "not compared" |
                    "error" | "unavailable",
          "ok": bool | null,            # null: not compared and not counted
          "atol": float | null, "rtol": float | null,
          "trials": int, "failed_trials": int, "worst_trial": str | null,
          "message": str,
          "stats": null | {
              "ref_shape": [int], "actual_shape": [int],
              "ref_dtype": str, "actual_dtype": str, "size": int,
              "bit_exact": bool, "max_abs": float, "max_rel": float,
              "mean_abs": float, "beyond_count": int, "beyond_share": float,
              "mismatched_special": int,      # NaN/Inf elements that differ
              "worst_index": [int] | null, "worst_ref": number | null,
              "worst_actual": number | null,
              "min_atol": float, "min_rtol": float}}],
      "provider_differences": [{        # informational: same model, other provider
          "provider": str, "baseline": str, "model": "original" | "candidate" | "model",
          "output": str, "max_abs": float, "max_rel": float,
          "bit_exact": bool, "trial": str}],
      "problems": [str],                # interface changes that fail the check
      "inputs": [{"name": str, "dtype": str, "shape": [int], "source": str}],
      "dims": {"symbol": int},          # values chosen for symbolic dimensions
      "trials": [{"label": str, "seed": int | null}],
      "settings": {"ort_opt": str, "cuda_options": {str: str}},
      "notes": [str], "warnings": [str]
    }
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, numpy_helper

from . import model as cio
from . import runtime
from .errors import ConvRewriteError

__all__ = [
    "BisectResult",
    "CheckInputError",
    "CheckReport",
    "ComparisonStats",
    "OutputResult",
    "ProviderDifference",
    "ProviderStatus",
    "bisect",
    "check",
    "compare_arrays",
    "default_tolerance",
    "make_inputs",
    "render_text",
]

SCHEMA = "convrewrite.check/1"

# Past this size a model goes to onnxruntime by path, never as serialized bytes.
SERIALIZE_LIMIT = 1_900_000_000

# Providers tried when none are named: ones whose results can be pinned.
# TensorRT is used only when asked for (its tactic choice and TF32 are not pinned).
DEFAULT_PROVIDER_CANDIDATES = ("CPUExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider")

DEFAULT_INT_RANGE = (0, 3)

Tolerance = Union[float, Mapping[str, float], None]
TensorSets = Union[str, os.PathLike, Mapping[str, np.ndarray], Sequence[Mapping[str, np.ndarray]], None]


class CheckInputError(ConvRewriteError):
    """A bad option or input file for the checker (the CLI: one line, exit 2)."""


# ------------------------------------------------------------------ tolerance


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        try:
            return TensorProto.DataType.Name(dtype).lower()
        except ValueError:
            return str(dtype)
    if isinstance(dtype, str):
        return dtype.lower()
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).lower()


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """(atol, rtol) for outputs of `dtype`: loose enough for reordered float sums, exact for integers.

    `dtype` is a numpy dtype, a dtype name, or an ONNX TensorProto element type.
    """
    name = _dtype_name(dtype)
    if name in ("float16", "bfloat16", "half"):
        return 1e-3, 1e-2
    if name in ("float64", "double"):
        return 1e-8, 1e-7
    if name in ("float32", "float", "single"):
        return 1e-5, 1e-4
    if name.startswith("float"):  # float8 variants
        return 1e-1, 1e-1
    return 0.0, 0.0


# ----------------------------------------------------------------- comparison


@dataclass
class ComparisonStats:
    """Everything `compare_arrays` learned about one output pair; every number explains itself."""

    ok: bool
    status: str  # bit-exact | passed | failed | shape mismatch | dtype mismatch
    atol: float
    rtol: float
    ref_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    ref_dtype: str
    actual_dtype: str
    size: int = 0
    bit_exact: bool = False
    max_abs: float = 0.0
    max_rel: float = 0.0
    mean_abs: float = 0.0
    beyond_count: int = 0
    beyond_share: float = 0.0
    mismatched_special: int = 0
    worst_index: tuple[int, ...] | None = None
    worst_ref: Any = None
    worst_actual: Any = None
    min_atol: float = 0.0
    min_rtol: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref_shape": list(self.ref_shape),
            "actual_shape": list(self.actual_shape),
            "ref_dtype": self.ref_dtype,
            "actual_dtype": self.actual_dtype,
            "size": self.size,
            "bit_exact": self.bit_exact,
            "max_abs": _num(self.max_abs),
            "max_rel": _num(self.max_rel),
            "mean_abs": _num(self.mean_abs),
            "beyond_count": self.beyond_count,
            "beyond_share": _num(self.beyond_share),
            "mismatched_special": self.mismatched_special,
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "worst_ref": _num(self.worst_ref),
            "worst_actual": _num(self.worst_actual),
            "min_atol": _num(self.min_atol),
            "min_rtol": _num(self.min_rtol),
        }


def _tiny(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).tiny)
    return 1.0


def compare_arrays(
    reference: Any,
    actual: Any,
    atol: float | None = None,
    rtol: float | None = None,
    *,
    check_dtype: bool = True,
) -> ComparisonStats:
    """Compare `actual` against `reference` element by element (pure numpy, no onnxruntime).

    Tolerances default by the reference's dtype (`default_tolerance`). With
    `check_dtype=False` a dtype difference is compared by value instead of failing
    (framework outputs saved in another float width). See the module docstring
    for the exact definitions of every statistic.
    """
    ref = np.asarray(reference)
    act = np.asarray(actual)
    d_atol, d_rtol = default_tolerance(ref.dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    base = dict(
        atol=atol,
        rtol=rtol,
        ref_shape=tuple(int(d) for d in ref.shape),
        actual_shape=tuple(int(d) for d in act.shape),
        ref_dtype=ref.dtype.name,
        actual_dtype=act.dtype.name,
    )
    if ref.shape != act.shape:
        return ComparisonStats(
            ok=False,
            status="shape mismatch",
            message=f"shape {list(act.shape)} where the reference has {list(ref.shape)}",
            **base,
        )
    if ref.dtype != act.dtype and check_dtype:
        return ComparisonStats(
            ok=False,
            status="dtype mismatch",
            message=f"dtype {act.dtype.name} where the reference has {ref.dtype.name}",
            **base,
        )
    size = int(ref.size)
    bit_exact = ref.dtype == act.dtype and ref.tobytes() == act.tobytes()
    if size == 0:
        return ComparisonStats(ok=True, status="bit-exact" if bit_exact else "passed", bit_exact=bit_exact, **base)

    r = ref.astype(np.float64)
    a = act.astype(np.float64)
    with np.errstate(all="ignore"):
        finite = np.isfinite(r) & np.isfinite(a)
        equal = (ref == act) | (np.isnan(r) & np.isnan(a))
        abs_ref = np.abs(r)
        abs_err = np.where(finite, np.abs(a - r), np.where(equal, 0.0, np.inf))
        rel_err = np.where(finite, abs_err / np.maximum(abs_ref, _tiny(ref.dtype)), np.where(equal, 0.0, np.inf))
        allowed = atol + rtol * abs_ref
        beyond = ~equal & (~finite | (abs_err > allowed) | (allowed == 0))
        beyond_count = int(np.count_nonzero(beyond))
        if beyond_count:
            violation = np.where(beyond, np.where(finite, abs_err - allowed, np.inf), -np.inf)
            flat = int(np.argmax(violation))
        else:
            flat = int(np.argmax(abs_err))
        need_atol = np.where(equal, 0.0, np.where(finite, abs_err - rtol * abs_ref, np.inf))
        over_atol = ~equal & (~finite | (abs_err > atol) | (atol == 0))
        need_rtol = np.where(
            over_atol,
            np.where(finite & (abs_ref > 0), (abs_err - atol) / abs_ref, np.inf),
            0.0,
        )
        stats = ComparisonStats(
            ok=beyond_count == 0,
            status="bit-exact" if bit_exact else ("passed" if beyond_count == 0 else "failed"),
            size=size,
            bit_exact=bit_exact,
            max_abs=float(abs_err.max()),
            max_rel=float(rel_err.max()),
            mean_abs=float(abs_err.mean()),
            beyond_count=beyond_count,
            beyond_share=beyond_count / size,
            mismatched_special=int(np.count_nonzero(~finite & ~equal)),
            worst_index=tuple(int(i) for i in np.unravel_index(flat, ref.shape)),
            worst_ref=ref.flat[flat].item(),
            worst_actual=act.flat[flat].item(),
            min_atol=max(0.0, float(need_atol.max())),
            min_rtol=max(0.0, float(need_rtol.max())),
            **base,
        )
    if not stats.ok:
        stats.message = (
            f"{beyond_count} of {size} elements beyond atol {_fmt(atol)} + rtol {_fmt(rtol)}*|ref|; "
            f"worst at {list(stats.worst_index or ())}: {_fmt(stats.worst_actual)} vs {_fmt(stats.worst_ref)}"
        )
    return stats


def _stats_rank(stats: ComparisonStats | None) -> tuple:
    """Sort key for 'worse': failing first, then more elements beyond, then larger error."""
    if stats is None:
        return (0, 0, 0.0)
    max_abs = stats.max_abs if not math.isnan(stats.max_abs) else math.inf
    return (0 if stats.ok else 1, stats.beyond_count, max_abs)


# --------------------------------------------------------------------- inputs


@dataclass
class _InputSpec:
    name: str
    elem_type: int
    dims: list[int | str | None] | None  # None: rank unknown


def _np_dtype(elem_type: int, name: str) -> np.dtype:
    if elem_type in (TensorProto.STRING, TensorProto.BFLOAT16) or elem_type == TensorProto.UNDEFINED:
        raise CheckInputError(
            f"input {name!r}: element type {_dtype_name(elem_type)} is not supported by the checker"
        )
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        raise CheckInputError(f"input {name!r}: element type {elem_type} is not supported by the checker") from None


def _fed_inputs(model: ModelProto) -> list[_InputSpec]:
    """Graph inputs that need a value: those without an initializer of the same name (old IR)."""
    initialized = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in initialized:
            continue
        if not vi.type.HasField("tensor_type"):
            raise CheckInputError(f"input {vi.name!r} is not a tensor; the checker feeds tensors only")
        tt = vi.type.tensor_type
        dims: list[int | str | None] | None = None
        if tt.HasField("shape"):
            dims = []
            for d in tt.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                elif d.dim_param:
                    dims.append(d.dim_param)
                else:
                    dims.append(None)
        specs.append(_InputSpec(vi.name, tt.elem_type, dims))
    return specs


@dataclass
class _ShapePlan:
    shapes: dict[str, tuple[int, ...]]
    dims: dict[str, int]  # symbol (or input[i] for unnamed dims) -> value
    defaulted: list[str]


def _plan_shapes(specs: list[_InputSpec], user: Mapping[str, Sequence[int]] | None) -> _ShapePlan:
    """Choose a concrete shape per input: --shape first, shared symbols alike, then defaults.

    Defaults: 1 for the first dimension (batch), 16 for every other symbolic one.
    """
    user = dict(user or {})
    by_name = {s.name: s for s in specs}
    for name in user:
        if name not in by_name:
            raise CheckInputError(f"--shape: the model has no input named {name!r} (inputs: {', '.join(by_name) or 'none'})")
    dims: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    defaulted: list[str] = []

    def bind(symbol: str, value: int, where: str) -> None:
        if symbol in dims and dims[symbol] != value:
            raise CheckInputError(
                f"--shape: dimension {symbol!r} is {dims[symbol]} elsewhere but {value} in {where}"
            )
        dims[symbol] = value

    for spec in sorted(specs, key=lambda s: s.name not in user):  # user-shaped inputs bind symbols first
        if spec.name in user:
            shape = tuple(int(v) for v in user[spec.name])
            if any(v < 0 for v in shape):
                raise CheckInputError(f"--shape {spec.name}: negative dimension in {list(shape)}")
            if spec.dims is not None:
                if len(shape) != len(spec.dims):
                    raise CheckInputError(
                        f"--shape {spec.name}: rank {len(shape)} but the input has rank {len(spec.dims)} ({_dims_text(spec.dims)})"
                    )
                for i, (d, v) in enumerate(zip(spec.dims, shape)):
                    if isinstance(d, int) and d != v:
                        raise CheckInputError(
                            f"--shape {spec.name}: dimension {i} is fixed to {d} in the model, not {v}"
                        )
                    if isinstance(d, str):
                        bind(d, v, spec.name)
            shapes[spec.name] = shape
            continue
        if spec.dims is None:
            raise CheckInputError(f"input {spec.name!r} has no declared shape; give one with --shape {spec.name}=DxD...")
        shape_list = []
        for i, d in enumerate(spec.dims):
            if isinstance(d, int):
                shape_list.append(d)
                continue
            default = 1 if i == 0 else 16
            if isinstance(d, str):
                if d not in dims:
                    dims[d] = default
                    defaulted.append(d)
                shape_list.append(dims[d])
            else:
                key = f"{spec.name}[{i}]"
                dims[key] = default
                defaulted.append(key)
                shape_list.append(default)
        shapes[spec.name] = tuple(shape_list)
    return _ShapePlan(shapes, dims, defaulted)


def _dims_text(dims: Sequence[int | str | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def _random_array(
    rng: np.random.Generator, dtype: np.dtype, shape: tuple[int, ...], value_range: tuple[float, float] | None
) -> np.ndarray:
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.floating):
        if value_range is None:
            return rng.standard_normal(size=shape).astype(dtype)
        return rng.uniform(value_range[0], value_range[1], size=shape).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        lo, hi = value_range if value_range is not None else DEFAULT_INT_RANGE
        info = np.iinfo(dtype)
        lo, hi = max(int(math.ceil(lo)), info.min), min(int(math.floor(hi)), info.max)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    raise CheckInputError(f"cannot make random values of dtype {dtype}")


def _input_source(dtype: np.dtype, value_range: tuple[float, float] | None) -> str:
    if dtype == np.bool_:
        return "random bool"
    if np.issubdtype(dtype, np.floating):
        return "normal(0, 1)" if value_range is None else f"uniform[{_fmt(value_range[0])}, {_fmt(value_range[1])})"
    lo, hi = value_range if value_range is not None else DEFAULT_INT_RANGE
    return f"integers in [{_fmt(lo)}, {_fmt(hi)}]"


def _validate_ranges(specs: list[_InputSpec], ranges: Mapping[str, tuple[float, float]] | None) -> dict:
    names = {s.name for s in specs}
    out = {}
    for name, value in (ranges or {}).items():
        if name not in names:
            raise CheckInputError(f"--range: the model has no input named {name!r} (inputs: {', '.join(sorted(names)) or 'none'})")
        lo, hi = float(value[0]), float(value[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise CheckInputError(f"--range {name}: need finite LO <= HI, got {value[0]},{value[1]}")
        out[name] = (lo, hi)
    return out


def make_inputs(
    model: cio.ModelSource,
    *,
    seed: int = 0,
    shapes: Mapping[str, Sequence[int]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, np.ndarray]:
    """Seeded random inputs for every graph input that needs feeding, keyed by input name.

    The same seed gives the same arrays, so a failure can be replayed. Floats:
    standard normal, or uniform in `ranges[name]`; integers in [0, 3] (or the
    range); bool uniform. Dynamic dimensions come from `shapes`, else 1 for the
    first dimension and 16 for the others, equal symbols getting equal values.
    """
    proto = model if isinstance(model, ModelProto) else cio.load(model, check=False)
    specs = _fed_inputs(proto)
    return _random_feed(specs, _plan_shapes(specs, shapes), _validate_ranges(specs, ranges), seed)


def _random_feed(
    specs: list[_InputSpec], plan: _ShapePlan, ranges: Mapping[str, tuple[float, float]], seed: int
) -> dict[str, np.ndarray]:
    if int(seed) < 0:
        raise CheckInputError(f"--seed: must be >= 0, got {seed}")
    rng = np.random.default_rng(int(seed))
    return {
        s.name: _random_array(rng, _np_dtype(s.elem_type, s.name), plan.shapes[s.name], ranges.get(s.name))
        for s in specs
    }


# ------------------------------------------------------------ tensors on disk


def _load_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Arrays of an .npz (or one .npy), never unpickling anything."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckInputError(f"{path}: holds pickled data; refused (only plain arrays are read, never unpickled)") from None
        raise CheckInputError(f"{path}: cannot read {what}: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckInputError(f"{path}: cannot read {what}: not an .npz/.npy file ({exc})") from None
    if isinstance(data, np.ndarray):
        return {"": data}
    arrays = {}
    try:
        with data:
            for key in data.files:
                arrays[key] = data[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CheckInputError(f"{path}: array {key!r} holds pickled objects; refused (never unpickled)") from None
        raise CheckInputError(f"{path}: cannot read array {key!r}: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckInputError(f"{path}: cannot read {what}: corrupt .npz ({exc})") from None
    return arrays


_PB_INDEX = re.compile(r"^(input|output)_(\d+)\.pb$")


def _pb_sets(path: Path, prefix: str) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """(label, [(tensor name, array)...]) per data set of an ONNX test-data folder."""
    subdirs = sorted(
        (p for p in path.iterdir() if p.is_dir() and p.name.startswith("test_data_set_")),
        key=lambda p: (len(p.name), p.name),
    )
    folders = subdirs or [path]
    sets = []
    for folder in folders:
        files = []
        for f in folder.iterdir():
            m = _PB_INDEX.match(f.name)
            if m and m.group(1) == prefix:
                files.append((int(m.group(2)), f))
        tensors = []
        for _, f in sorted(files):
            try:
                proto = onnx.load_tensor(str(f))
                tensors.append((proto.name, numpy_helper.to_array(proto)))
            except Exception as exc:  # protobuf decode errors have no common base class
                raise CheckInputError(f"{f}: not a TensorProto file ({type(exc).__name__}: {exc})") from None
        label = folder.name if subdirs else path.name
        sets.append((label, tensors))
    if not any(t for _, t in sets):
        raise CheckInputError(f"{path}: no {prefix}_N.pb files (in the folder or its test_data_set_N/ folders)")
    return sets


def _match_tensors(
    tensors: list[tuple[str, np.ndarray]], names: list[str], where: str, warnings: list[str]
) -> dict[str, np.ndarray]:
    """Match TensorProto files to graph names: by the TensorProto's name, else by position."""
    if tensors and all(n in names for n, _ in tensors):
        return {n: a for n, a in tensors}
    if any(n for n, _ in tensors):
        warnings.append(f"{where}: tensor names do not match the graph's; matched by position")
    return {name: arr for name, (_, arr) in zip(names, tensors)}


def _read_sets(source: TensorSets, names: list[str], kind: str, warnings: list[str]) -> tuple[str, list[tuple[str, dict[str, np.ndarray]]]]:
    """Load input sets (kind 'input') or reference output sets (kind 'output').

    Keys that are not graph names of that kind are ignored, so one .npz may hold
    both the inputs and the expected outputs.
    """
    what = "inputs" if kind == "input" else "expected outputs"
    if isinstance(source, Mapping):
        return "given arrays", [("given", {k: np.asarray(v) for k, v in source.items() if k in names})]
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return "given arrays", [
            (f"set {i}", {k: np.asarray(v) for k, v in s.items() if k in names}) for i, s in enumerate(source)
        ]
    path = Path(os.fspath(source))  # type: ignore[arg-type]
    if not path.exists():
        raise CheckInputError(f"{path}: no such file or folder ({what})")
    if path.is_dir():
        sets = [(label, _match_tensors(t, names, f"{path}/{label}", warnings)) for label, t in _pb_sets(path, kind)]
        return str(path), sets
    arrays = _load_npz(path, what)
    if "" in arrays and len(arrays) == 1:  # a single .npy
        if len(names) != 1:
            raise CheckInputError(f"{path}: one array, but the model has {len(names)} {kind}s; use an .npz keyed by name")
        arrays = {names[0]: arrays[""]}
    return str(path), [(path.name, {k: v for k, v in arrays.items() if k in names})]


def _check_user_inputs(
    sets: list[tuple[str, dict[str, np.ndarray]]], specs: list[_InputSpec], source: str
) -> dict[str, int]:
    """Every input present, of the model's dtype, rank and fixed dims; returns symbols seen."""
    dims: dict[str, int] = {}
    for label, feed in sets:
        where = source if len(sets) == 1 else f"{source} ({label})"
        for spec in specs:
            if spec.name not in feed:
                have = ", ".join(sorted(feed)) or "nothing usable"
                raise CheckInputError(f"{where}: no array for input {spec.name!r} (found: {have})")
            arr = feed[spec.name]
            want = _np_dtype(spec.elem_type, spec.name)
            if arr.dtype != want:
                raise CheckInputError(f"{where}: input {spec.name!r} is {arr.dtype.name}, the model wants {want.name}")
            if spec.dims is None:
                continue
            if arr.ndim != len(spec.dims):
                raise CheckInputError(
                    f"{where}: input {spec.name!r} has shape {list(arr.shape)}, the model wants {_dims_text(spec.dims)}"
                )
            for d, v in zip(spec.dims, arr.shape):
                if isinstance(d, int) and d != v:
                    raise CheckInputError(
                        f"{where}: input {spec.name!r} has shape {list(arr.shape)}, the model wants {_dims_text(spec.dims)}"
                    )
                if isinstance(d, str):
                    dims.setdefault(d, int(v))
    return dims


# ---------------------------------------------------------------- onnxruntime


@contextmanager
def _ir_lowered(model: ModelProto, ir: int) -> Iterator[ModelProto]:
    """The model with its IR version at most `ir`, restored afterwards (no copy of the weights)."""
    original = model.ir_version
    if original > ir:
        model.ir_version = ir
    try:
        yield model
    finally:
        model.ir_version = original


class _OrtModel:
    """One model as onnxruntime gets it (bytes, or a path for big/external-data models),
    and its sessions, built once per provider and reused across trials."""

    def __init__(
        self,
        loaded: cio.LoadedModel,
        role: str,
        stack: ExitStack,
        opt_level: str,
        provider_options: Mapping[str, Mapping[str, str]],
        verbose: bool,
        notes: list[str],
    ) -> None:
        self.role = role
        self.model = loaded.model
        self.opt_level = opt_level
        self.provider_options = provider_options
        self.verbose = verbose
        self.sessions: dict[str, Any] = {}
        self.failures: dict[str, tuple[str, str]] = {}  # provider -> (status, reason)
        limit = runtime.max_ir_version()
        lowered = self.model.ir_version > limit
        if lowered:
            notes.append(
                f"{role}: IR version {self.model.ir_version} is newer than this onnxruntime accepts ({limit}); "
                f"run with the IR version lowered to {limit} on a copy"
            )
        self.source: str | bytes
        big = cio.estimated_size(self.model) > SERIALIZE_LIMIT
        if loaded.had_external_data and loaded.path is not None and not lowered:
            self.source = str(loaded.path)
        elif big or loaded.had_external_data:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="convrewrite-check-")))
            target = folder / "model.onnx"
            with _ir_lowered(self.model, limit) as m:
                cio.save(m, target, external_data=True, check=False)
            self.source = str(target)
        else:
            with _ir_lowered(self.model, limit) as m:
                self.source = m.SerializeToString()
        self.output_names = [o.name for o in self.model.graph.output]
        self.input_names = [s.name for s in _fed_inputs(self.model)]

    def session(self, provider: str) -> Any | None:
        """The session on `provider`, or None (then `failures[provider]` says why)."""
        if provider in self.sessions:
            return self.sessions[provider]
        if provider in self.failures:
            return None
        import onnxruntime as ort

        log: list[str] = []
        try:
            with runtime.capture_native_stderr(passthrough=self.verbose) as log:
                sess = ort.InferenceSession(
                    self.source,
                    runtime.session_options(self.opt_level, self.verbose),
                    providers=runtime.provider_list(provider, self.provider_options.get(provider)),
                    enable_fallback=0,
                )
        except Exception as exc:  # onnxruntime's exception types share no useful base
            self.failures[provider] = ("error", f"{self.role}: onnxruntime cannot load it: {runtime.ort_error_line(exc)}")
            return None
        used = sess.get_providers()
        if provider not in used:
            reason = runtime.fallback_reason(log[0] if log else "")
            self.failures[provider] = ("unavailable", f"onnxruntime fell back to {used[0]}: {reason}")
            return None
        self.sessions[provider] = sess
        return sess

    def run(self, provider: str, feed: Mapping[str, np.ndarray]) -> dict[str, Any] | None:
        sess = self.session(provider)
        if sess is None:
            return None
        try:
            with runtime.capture_native_stderr(passthrough=self.verbose):
                values = sess.run(None, dict(feed))
        except Exception as exc:  # a run failure is a result of this model on this provider
            self.failures[provider] = ("error", f"{self.role}: onnxruntime failed running it: {runtime.ort_error_line(exc)}")
            return None
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, values))


# --------------------------------------------------------------------- report


@dataclass
class ProviderStatus:
    """Whether a provider ran, and if not, why (never 'passed' when it did not run)."""

    name: str
    requested: bool
    required: bool
    status: str  # ran | unavailable | error
    reason: str | None = None

    @property
    def short(self) -> str:
        return runtime.provider_short_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "short": self.short,
            "requested": self.requested,
            "required": self.required,
            "status": self.status,
            "reason": self.reason,
        }


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
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "output": self.output,
            "candidate_output": self.candidate_output,
            "status": self.status,
            "ok": self.ok,
            "atol": _num(self.atol),
            "rtol": _num(self.rtol),
            "trials": self.trials,
            "failed_trials": self.failed_trials,
            "worst_trial": self.worst_trial,
            "message": self.message,
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
        return {
            "provider": self.provider,
            "baseline": self.baseline,
            "model": self.model,
            "output": self.output,
            "max_abs": _num(self.max_abs),
            "max_rel": _num(self.max_rel),
            "bit_exact": self.bit_exact,
            "trial": self.trial,
        }


@dataclass
class CheckReport:
    """The verdict and everything behind it; `.ok` is what a pipeline gates on."""

    mode: str
    original: str
    candidate: str | None
    expected: str | None
    providers: list[ProviderStatus] = field(default_factory=list)
    results: list[OutputResult] = field(default_factory=list)
    provider_differences: list[ProviderDifference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    dims: dict[str, int] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ran(self) -> list[ProviderStatus]:
        return [p for p in self.providers if p.status == "ran"]

    @property
    def ok(self) -> bool:
        if self.problems or not self.ran:
            return False
        if any(p.required and p.status != "ran" for p in self.providers):
            return False
        if any(p.requested and p.status == "error" for p in self.providers):
            return False
        if any(r.ok is False for r in self.results):
            return False
        return any(r.ok for r in self.results)

    @property
    def bit_exact(self) -> bool:
        compared = [r for r in self.results if r.ok is not None]
        return bool(compared) and all(r.status == "bit-exact" for r in compared)

    def failures(self) -> list[OutputResult]:
        return [r for r in self.results if r.ok is False]

    def output(self, name: str, provider: str = "CPUExecutionProvider") -> OutputResult | None:
        """The row for output `name` on `provider` (a short name like 'cpu' works too)."""
        full = runtime.provider_full_name(provider)
        for r in self.results:
            if r.output == name and r.provider == full:
                return r
        return None

    @property
    def summary(self) -> str:
        """The one-line verdict (what `-q` prints)."""
        unavailable = [p for p in self.providers if p.requested and p.status == "unavailable"]
        ran = ", ".join(p.short for p in self.ran) or "none"
        if self.ok:
            outputs = sorted({r.output for r in self.results if r.ok})
            exact = " (bit-exact)" if self.bit_exact else ""
            trials = len(self.trials)
            text = (
                f"EQUIVALENT{exact}: {len(outputs)} output{'s' if len(outputs) != 1 else ''} on {ran}, "
                f"{trials} input set{'s' if trials != 1 else ''}"
            )
            if unavailable:
                text += "; not run: " + ", ".join(f"{p.short} (unavailable)" for p in unavailable)
            return text
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
                continue  # named above
            where = f"{r.output!r} on {runtime.provider_short_name(r.provider)}"
            if r.stats is not None and r.status == "failed":
                reasons.append(
                    f"{where} differs (max abs {_fmt(r.stats.max_abs)}, {r.stats.beyond_count}/{r.stats.size} beyond tolerance)"
                )
            elif r.output == "*":
                reasons.append(f"{runtime.provider_short_name(r.provider)}: {r.message}")
            else:
                reasons.append(f"{where}: {r.status}" + (f" ({r.message})" if r.message else ""))
        if not reasons:
            reasons.append("nothing was compared")
        more = f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""
        return "NOT EQUIVALENT: " + "; ".join(reasons[:3]) + more

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "verdict": "equivalent" if self.ok else "not equivalent",
            "summary": self.summary,
            "mode": self.mode,
            "original": self.original,
            "candidate": self.candidate,
            "expected": self.expected,
            "providers": [p.to_dict() for p in self.providers],
            "results": [r.to_dict() for r in self.results],
            "provider_differences": [d.to_dict() for d in self.provider_differences],
            "problems": list(self.problems),
            "inputs": list(self.inputs),
            "dims": dict(self.dims),
            "trials": list(self.trials),
            "settings": dict(self.settings),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (schema in this module's docstring); strict JSON, no NaN literals."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __str__(self) -> str:
        return render_text(self)


def _num(value: Any) -> Any:
    """JSON-safe number: numpy scalars to Python, non-finite floats to 'inf'/'-inf'/'nan'."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if v == 0:
        return "0"
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.3g}"


def _beyond_text(stats: ComparisonStats | None) -> str:
    if stats is None or stats.status in ("shape mismatch", "dtype mismatch"):
        return "-"
    if stats.beyond_count == 0:
        return f"0/{stats.size}"
    return f"{stats.beyond_count}/{stats.size} ({100 * stats.beyond_share:.3g}%)"


def _verdict_cell(row: OutputResult, required: bool) -> str:
    if row.ok is None:
        return "FAIL" if required else "-"
    return "PASS" if row.ok else "FAIL"


def _details(row: OutputResult, report: CheckReport) -> list[str]:
    s = row.stats
    names = ("original", "candidate") if report.mode == "models" else ("expected", "model")
    out = []
    if row.candidate_output:
        out.append(f"compared with candidate output {row.candidate_output!r} (matched by position)")
    if s is None:
        if row.message:
            out.append(row.message)
        return out
    if s.status in ("shape mismatch", "dtype mismatch"):
        out.append(f"{names[1]} {s.actual_dtype}{list(s.actual_shape)} vs {names[0]} {s.ref_dtype}{list(s.ref_shape)}")
        return out
    if s.worst_index is not None:
        out.append(
            f"worst element {list(s.worst_index)}: {names[0]} {_fmt(s.worst_ref)}, {names[1]} {_fmt(s.worst_actual)}"
            + (f" (trial {row.worst_trial})" if row.trials > 1 else "")
        )
    out.append(
        f"max abs {_fmt(s.max_abs)}, max rel {_fmt(s.max_rel)}, mean abs {_fmt(s.mean_abs)}"
        + (f", {s.mismatched_special} NaN/Inf mismatches" if s.mismatched_special else "")
    )
    if s.mismatched_special:
        passing = "no tolerance passes: NaN/Inf elements differ"
    else:
        by_rtol = f"rtol >= {_fmt(s.min_rtol)}" if math.isfinite(s.min_rtol) else "no rtol (a zero reference differs)"
        passing = f"would pass with atol >= {_fmt(s.min_atol)} (at rtol {_fmt(s.rtol)}) or {by_rtol} (at atol {_fmt(s.atol)})"
    out.append(f"tolerance atol {_fmt(s.atol)} rtol {_fmt(s.rtol)}; {passing}")
    if row.trials > 1 and row.failed_trials:
        out.append(f"failed in {row.failed_trials} of {row.trials} input sets")
    return out


def render_text(report: CheckReport, verbose: bool = False) -> str:
    """The human report: one row per provider x output, then inputs, notes, the verdict last."""
    lines: list[str] = []
    if report.mode == "models":
        lines.append(f"check: {report.original} vs {report.candidate}")
    else:
        lines.append(f"check: {report.original} vs expected outputs in {report.expected}")
    header = ("provider", "output", "status", "max abs", "max rel", "beyond tol", "verdict")
    required = {p.name for p in report.providers if p.required}
    rows = []
    for r in report.results:
        s = r.stats
        numbers = s is not None and s.status not in ("shape mismatch", "dtype mismatch")
        rows.append(
            (
                runtime.provider_short_name(r.provider),
                r.output if not r.candidate_output else f"{r.output}->{r.candidate_output}",
                r.status,
                _fmt(s.max_abs) if numbers else "-",
                _fmt(s.max_rel) if numbers else "-",
                _beyond_text(s),
                _verdict_cell(r, r.provider in required),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines.append(fmt.format(*header).rstrip())
    for row in rows:
        lines.append(fmt.format(*row).rstrip())
    for r in report.results:
        if r.ok is False or verbose or r.status == "unavailable":
            details = _details(r, report) if r.status != "unavailable" else [r.message]
            if details:
                lines.append(f"  {runtime.provider_short_name(r.provider)} {r.output}:")
                lines.extend(f"    {d}" for d in details)
    for p in report.providers:
        if not p.requested and p.status != "ran":
            lines.append(f"provider {p.short} not used: {p.reason}")
    if report.inputs:
        lines.append("inputs:")
        for spec in report.inputs:
            shape = "x".join(str(d) for d in spec["shape"]) or "scalar"
            lines.append(f"  {spec['name']}: {spec['dtype']} [{shape}] {spec['source']}")
    if report.dims:
        lines.append("dims: " + ", ".join(f"{k}={v}" for k, v in report.dims.items()))
    seeds = [t["seed"] for t in report.trials if t.get("seed") is not None]
    if seeds:
        lines.append(f"trials: {len(report.trials)} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})")
    elif report.trials:
        lines.append(f"trials: {len(report.trials)} ({', '.join(t['label'] for t in report.trials)})")
    lines.append(f"onnxruntime graph optimizations: {report.settings.get('ort_opt', 'disabled')}")
    if report.provider_differences and (verbose or any(not d.bit_exact for d in report.provider_differences)):
        lines.append("provider differences (same model, information only):")
        for d in report.provider_differences:
            lines.append(
                f"  {runtime.provider_short_name(d.provider)} vs {runtime.provider_short_name(d.baseline)} "
                f"{d.model} {d.output}: "
                + ("bit-exact" if d.bit_exact else f"max abs {_fmt(d.max_abs)}, max rel {_fmt(d.max_rel)}")
            )
    for problem in report.problems:
        lines.append(f"problem: {problem}")
    for note in report.notes:
        lines.append(f"note: {note}")
    for warning in report.warnings:
        lines.append(f"warning: {warning}")
    lines.append(report.summary)
    return "\n".join(lines)


# ---------------------------------------------------------------------- check


def _label(source: Any, default: str) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return default


def _load(source: cio.ModelSource) -> cio.LoadedModel:
    return cio.load_with_info(source, check=True)


def _split_tolerance(value: Tolerance, what: str) -> tuple[float | None, dict[str, float]]:
    """A float is global; a mapping holds per-output values, '' or '*' for the global one."""
    if value is None:
        return None, {}
    if isinstance(value, Mapping):
        per = {}
        glob = None
        for k, v in value.items():
            number = _nonneg(v, what, k)
            if k in ("", "*"):
                glob = number
            else:
                per[k] = number
        return glob, per
    return _nonneg(value, what, None), {}


def _nonneg(value: Any, what: str, name: str | None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CheckInputError(f"{what}{' ' + name if name else ''}: not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise CheckInputError(f"{what}{' ' + name if name else ''}: must be a finite number >= 0, got {value!r}")
    return number


def _resolve_providers(
    providers: Iterable[str] | str | None, require: Iterable[str] | str | None
) -> tuple[list[str], set[str], set[str]]:
    """(providers to try in order, the ones the user named, the required ones)."""

    def names(value: Iterable[str] | str | None) -> list[str]:
        if value is None:
            return []
        items = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
        out = []
        for item in items:
            if not item.strip():
                continue
            try:
                full = runtime.provider_full_name(item)
            except ValueError as exc:
                raise CheckInputError(str(exc)) from None
            if full not in out:
                out.append(full)
        return out

    named = names(providers)
    required = names(require)
    if providers is not None and not named:
        raise CheckInputError("--providers: empty list")
    requested = list(named) if named else list(DEFAULT_PROVIDER_CANDIDATES)
    for r in required:
        if r not in requested:
            requested.append(r)
    # CPU first: it is the baseline for provider differences.
    requested.sort(key=lambda p: p != "CPUExecutionProvider")
    return requested, set(named) | set(required), set(required)


class _Checker:
    """Everything about the original side of a check, built once: bisect reuses it."""

    def __init__(
        self,
        original: cio.ModelSource,
        *,
        expected: TensorSets = None,
        inputs: TensorSets = None,
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
        keep_reference: bool = False,
    ) -> None:
        self.stack = ExitStack()
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.verbose = verbose
        if ort_opt not in runtime.OPT_LEVELS:
            raise CheckInputError(f"--ort-opt: {ort_opt!r} is not one of {', '.join(runtime.OPT_LEVELS)}")
        self.ort_opt = ort_opt
        if int(trials) < 1:
            raise CheckInputError(f"--trials: must be at least 1, got {trials}")
        self.cuda_options = dict(runtime.DEFAULT_CUDA_OPTIONS)
        self.cuda_options.update({str(k): str(v) for k, v in (cuda_options or {}).items()})
        self.provider_options = {"CUDAExecutionProvider": self.cuda_options}
        self.order, self.named, self.required = _resolve_providers(providers, require)
        self.atol_global, self.atol_per = _split_tolerance(atol, "--atol")
        self.rtol_global, self.rtol_per = _split_tolerance(rtol, "--rtol")

        self.loaded = _load(original)
        self.original_label = original_label or _label(original, "original")
        model = self.loaded.model
        self.output_names = [o.name for o in model.graph.output]
        for what, per in (("--atol", self.atol_per), ("--rtol", self.rtol_per)):
            for name in per:
                if name not in self.output_names:
                    raise CheckInputError(
                        f"{what}: the model has no output named {name!r} (outputs: {', '.join(self.output_names)})"
                    )
        self.specs = _fed_inputs(model)
        self._plan_inputs(inputs, seed, int(trials), shapes, ranges)
        self.expected_label: str | None = None
        self.expected_sets: list[dict[str, np.ndarray]] | None = None
        if expected is not None:
            self._load_expected(expected)
        self.providers = self._probe()
        self.original = _OrtModel(
            self.loaded, "original" if expected is None else "model", self.stack, ort_opt,
            self.provider_options, verbose, self.notes,
        )
        self.keep_reference = keep_reference
        self._reference_cache: dict[tuple[int, str], dict[str, Any] | None] = {}

    def close(self) -> None:
        self.stack.close()

    # -- planning

    def _plan_inputs(self, inputs: TensorSets, seed: int, trials: int, shapes, ranges) -> None:
        self.input_sets: list[tuple[str, dict[str, np.ndarray]]] = []
        self.trial_info: list[dict[str, Any]] = []
        self.input_info: list[dict[str, Any]] = []
        names = [s.name for s in self.specs]
        if inputs is not None:
            if shapes:
                raise CheckInputError("--shape is for random inputs; the shapes come from --inputs here")
            if trials != 1:
                self.warnings.append("--trials ignored: the input sets come from --inputs")
            source, sets = _read_sets(inputs, names, "input", self.warnings)
            self.dims = _check_user_inputs(sets, self.specs, source)
            self.input_sets = sets
            self.trial_info = [{"label": label, "seed": None} for label, _ in sets]
            first = sets[0][1]
            self.input_info = [
                {"name": n, "dtype": first[n].dtype.name, "shape": list(first[n].shape), "source": f"from {source}"}
                for n in names
            ]
            return
        plan = _plan_shapes(self.specs, shapes)
        checked = _validate_ranges(self.specs, ranges)
        self.dims = plan.dims
        dtypes = {s.name: _np_dtype(s.elem_type, s.name) for s in self.specs}
        for t in range(trials):
            self.input_sets.append((f"seed {seed + t}", _random_feed(self.specs, plan, checked, seed + t)))
            self.trial_info.append({"label": f"seed {seed + t}", "seed": seed + t})
        self.input_info = [
            {
                "name": s.name,
                "dtype": dtypes[s.name].name,
                "shape": list(plan.shapes[s.name]),
                "source": _input_source(dtypes[s.name], checked.get(s.name)),
            }
            for s in self.specs
        ]
        if plan.defaulted:
            self.notes.append(
                f"dynamic dimensions {', '.join(plan.defaulted)} not given: defaults used "
                "(1 for the first dimension, 16 for others; choose with --shape)"
            )

    def _load_expected(self, expected: TensorSets) -> None:
        label, sets = _read_sets(expected, self.output_names, "output", self.warnings)
        if len(sets) != len(self.input_sets):
            raise CheckInputError(
                f"{label}: {len(sets)} sets of expected outputs for {len(self.input_sets)} input sets"
            )
        for out in self.output_names:
            if all(out not in s for _, s in sets):
                self.warnings.append(f"{label}: no expected values for output {out!r}; not compared")
        if not any(s for _, s in sets):
            raise CheckInputError(
                f"{label}: holds no array named after an output (outputs: {', '.join(self.output_names)})"
            )
        self.expected_label = label
        self.expected_sets = [s for _, s in sets]

    def _probe(self) -> list[ProviderStatus]:
        """Which providers really run. Unnamed default candidates count as requested
        only when they run; the ones this onnxruntime build lacks are left out."""
        import onnxruntime as ort

        built = set(ort.get_available_providers())
        statuses = []
        for p in self.order:
            runs, reason = runtime.probe_provider(p, self.provider_options.get(p), self.verbose)
            named = p in self.named
            if not runs and not named and p not in built:
                continue
            statuses.append(
                ProviderStatus(
                    name=p,
                    requested=named or (not self.named and runs),
                    required=p in self.required,
                    status="ran" if runs else "unavailable",
                    reason=None if runs else reason,
                )
            )
        return statuses

    def tolerance(self, output: str, dtype: Any) -> tuple[float, float]:
        d_atol, d_rtol = default_tolerance(dtype)
        atol = self.atol_per.get(output, self.atol_global if self.atol_global is not None else d_atol)
        rtol = self.rtol_per.get(output, self.rtol_global if self.rtol_global is not None else d_rtol)
        return atol, rtol

    # -- running

    def reference(self, trial: int, provider: str) -> dict[str, Any] | None:
        key = (trial, provider)
        if key in self._reference_cache:
            return self._reference_cache[key]
        out = self.original.run(provider, self.input_sets[trial][1])
        if self.keep_reference:
            self._reference_cache[key] = out
        return out

    def compare(self, candidate: cio.ModelSource | None, candidate_label: str | None = None) -> CheckReport:
        """Run the candidate (or, in expected mode, the model) and build the report."""
        expected_mode = self.expected_sets is not None
        report = CheckReport(
            mode="expected" if expected_mode else "models",
            original=self.original_label,
            candidate=None if expected_mode else (candidate_label or _label(candidate, "candidate")),
            expected=self.expected_label,
            providers=[ProviderStatus(p.name, p.requested, p.required, p.status, p.reason) for p in self.providers],
            inputs=list(self.input_info),
            dims=dict(self.dims),
            trials=list(self.trial_info),
            settings={"ort_opt": self.ort_opt, "cuda_options": dict(self.cuda_options)},
            notes=list(self.notes),
            warnings=list(self.warnings),
        )
        with ExitStack() as stack:
            feed_map: dict[str, str] | None = None  # None: expected mode, the model gets the inputs as they are
            if expected_mode:
                subject = self.original
                pairs = [(o, o) for o in self.output_names]
            else:
                loaded = _load(candidate)  # type: ignore[arg-type]
                subject = _OrtModel(
                    loaded, "candidate", stack, self.ort_opt, self.provider_options, self.verbose, report.notes
                )
                pairs = self._match_outputs(subject, report)
                feed_map = self._match_inputs(subject, report)
                if feed_map is None:
                    return report
            self._run_all(subject, pairs, feed_map, report)
        return report

    def _match_outputs(self, subject: _OrtModel, report: CheckReport) -> list[tuple[str, str | None]]:
        ours, theirs = self.output_names, subject.output_names
        if ours == theirs:
            return [(o, o) for o in ours]
        if set(ours) == set(theirs):
            report.problems.append(
                f"output order changed: original {ours}, candidate {theirs} (a caller reading outputs by position gets them swapped)"
            )
            return [(o, o) for o in ours]
        pairs: list[tuple[str, str | None]] = []
        taken = set(ours) & set(theirs)
        for i, name in enumerate(ours):
            if name in theirs:
                pairs.append((name, name))
            elif i < len(theirs) and theirs[i] not in taken:
                report.warnings.append(
                    f"original output {name!r} has no namesake in the candidate; compared with candidate output {theirs[i]!r} (same position)"
                )
                pairs.append((name, theirs[i]))
                taken.add(theirs[i])
            else:
                pairs.append((name, None))
        extra = [t for t in theirs if t not in taken]
        if extra:
            report.warnings.append(f"candidate outputs not in the original, not compared: {', '.join(extra)}")
        return pairs

    def _match_inputs(self, subject: _OrtModel, report: CheckReport) -> dict[str, str] | None:
        """Candidate input name -> original input name whose values it gets (None: no match)."""
        ours = [s.name for s in self.specs]
        theirs = subject.input_names
        if set(ours) == set(theirs):
            return {n: n for n in theirs}
        if len(ours) != len(theirs):
            report.problems.append(
                f"the candidate takes inputs {theirs}, the original {ours}: they cannot be fed the same values"
            )
            return None
        report.warnings.append(f"input names differ (original {ours}, candidate {theirs}); fed by position")
        return dict(zip(theirs, ours))

    def _run_all(
        self,
        subject: _OrtModel,
        pairs: list[tuple[str, str | None]],
        feed_map: dict[str, str] | None,
        report: CheckReport,
    ) -> None:
        """Trials outer, providers inner: only one trial's outputs are held at a time."""
        expected_mode = feed_map is None
        active = [p for p in report.providers if p.status == "ran"]
        rows: dict[tuple[str, str], OutputResult] = {}
        for p in report.providers:
            if p.requested and p.status == "unavailable":
                rows[(p.name, "*")] = OutputResult(
                    provider=p.name, output="*", status="unavailable", ok=False if p.required else None, message=p.reason or ""
                )
        baseline: str | None = None
        diffs: dict[tuple[str, str, str], ProviderDifference] = {}
        for t, (label, feed) in enumerate(self.input_sets):
            base_outputs: dict[str, dict[str, Any]] | None = None
            for status in active:
                provider = status.name
                if status.status != "ran":
                    continue
                if expected_mode:
                    assert self.expected_sets is not None
                    reference = self.expected_sets[t]
                    actual = subject.run(provider, feed)
                else:
                    assert feed_map is not None
                    reference = self.reference(t, provider)
                    actual = None
                    if reference is not None:
                        actual = subject.run(provider, {k: feed[v] for k, v in feed_map.items()})
                if reference is None or actual is None:
                    self._mark_failed(status, subject, report, rows)
                    continue
                for ours, theirs in pairs:
                    self._compare_one(provider, ours, theirs, reference, actual, label, rows, report)
                # Provider differences: each model (original and candidate, or vs expected the
                # model) on each provider against itself on the first provider that ran.
                own = {"model": actual} if expected_mode else {"original": reference, "candidate": actual}
                if baseline is None:
                    baseline = provider
                if provider == baseline:
                    base_outputs = own
                elif base_outputs is not None:
                    for which, outputs in own.items():
                        self._provider_diff(provider, baseline, outputs, base_outputs[which], label, diffs, which)
        order = {p.name: i for i, p in enumerate(report.providers)}
        outputs = {name: i for i, (name, _) in enumerate(pairs)}
        report.results.extend(
            sorted(rows.values(), key=lambda r: (order.get(r.provider, len(order)), outputs.get(r.output, -1)))
        )
        report.provider_differences.extend(diffs.values())

    def _mark_failed(self, status: ProviderStatus, subject: _OrtModel, report: CheckReport, rows) -> None:
        failure = self.original.failures.get(status.name) or subject.failures.get(status.name)
        kind, reason = failure if failure else ("error", "no outputs")
        status.status = kind
        status.reason = reason
        for key in [k for k in rows if k[0] == status.name]:
            del rows[key]
        row = OutputResult(provider=status.name, output="*", status=kind, ok=None, message=reason)
        if kind == "error" or status.required:
            row.ok = False
        rows[(status.name, "*")] = row

    def _compare_one(
        self,
        provider: str,
        ours: str,
        theirs: str | None,
        reference: Mapping[str, Any],
        actual: Mapping[str, Any],
        label: str,
        rows: dict[tuple[str, str], OutputResult],
        report: CheckReport,
    ) -> None:
        expected_mode = report.mode == "expected"
        key = (provider, ours)
        row = rows.get(key)
        if row is None:
            row = rows[key] = OutputResult(
                provider=provider, output=ours, status="passed", ok=True,
                candidate_output=theirs if theirs not in (None, ours) else None,
            )
        row.trials += 1
        if theirs is None or theirs not in actual:
            row.status, row.ok, row.failed_trials = "missing", False, row.failed_trials + 1
            row.message = "the candidate has no such output"
            return
        if ours not in reference:
            if row.ok is not False:
                row.status, row.ok = "no reference", None
                row.message = "no expected values for this output"
            return
        ref, act = reference[ours], actual[theirs]
        if not isinstance(ref, np.ndarray) or not isinstance(act, np.ndarray):
            row.status, row.ok = "not compared", None
            row.message = "not a tensor"
            return
        atol, rtol = self.tolerance(ours, ref.dtype)
        check_dtype = not (expected_mode and ref.dtype.kind == "f" and act.dtype.kind == "f")
        stats = compare_arrays(ref, act, atol, rtol, check_dtype=check_dtype)
        if expected_mode and ref.dtype != act.dtype and stats.status not in ("dtype mismatch", "shape mismatch"):
            msg = f"output {ours!r}: expected values are {ref.dtype.name}, the model gives {act.dtype.name}; compared by value"
            if msg not in report.warnings:
                report.warnings.append(msg)
        if not stats.ok:
            row.failed_trials += 1
        if row.stats is None or _stats_rank(stats) > _stats_rank(row.stats):
            row.stats, row.worst_trial = stats, label
            row.atol, row.rtol = atol, rtol
        row.status = row.stats.status
        row.ok = row.failed_trials == 0 and row.status != "missing"
        row.message = row.stats.message

    def _provider_diff(self, provider, baseline, own, base, label, diffs, which: str) -> None:
        for name, value in own.items():
            ref = base.get(name)
            if not isinstance(value, np.ndarray) or not isinstance(ref, np.ndarray):
                continue
            stats = compare_arrays(ref, value, 0.0, 0.0)
            key = (provider, which, name)
            max_abs = stats.max_abs if stats.status not in ("shape mismatch", "dtype mismatch") else math.inf
            max_rel = stats.max_rel if stats.status not in ("shape mismatch", "dtype mismatch") else math.inf
            old = diffs.get(key)
            if old is None or max_abs > old.max_abs:
                diffs[key] = ProviderDifference(
                    provider, baseline, which, name,
                    max_abs, max_rel, stats.bit_exact and (old is None or old.bit_exact), label,
                )
            elif not stats.bit_exact:
                old.bit_exact = False


def check(
    original: cio.ModelSource,
    candidate: cio.ModelSource | None = None,
    *,
    expected: TensorSets = None,
    inputs: TensorSets = None,
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
    candidate_label: str | None = None,
) -> CheckReport:
    """Run `original` and `candidate` on the same inputs and compare every output.

    With `expected` (an .npz / test-data folder / mapping of output arrays) and no
    candidate, compare `original` against reference outputs from its framework.
    Models are paths, bytes or ModelProtos. `atol`/`rtol`: a float for every
    output, or a mapping of output name to value ('' for the global value).
    `providers`: names like 'cpu', 'cuda' or full names; default every one that
    really runs here (TensorRT only when named). `require`: providers whose
    absence fails the check. Raises CheckInputError (a ConvRewriteError) for bad
    options, ModelLoadError/ModelInvalidError for unreadable models; a model that
    onnxruntime refuses is a failed result, not an exception.
    """
    if candidate is None and expected is None:
        raise CheckInputError("give a candidate model to compare with, or expected outputs (--expected)")
    if candidate is not None and expected is not None:
        raise CheckInputError("give either a candidate model or expected outputs, not both")
    if expected is not None and inputs is None:
        inputs = expected  # one .npz / test-data folder may hold the inputs and the outputs
    checker = _Checker(
        original, expected=expected, inputs=inputs, seed=seed, trials=trials, shapes=shapes, ranges=ranges,
        atol=atol, rtol=rtol, providers=providers, require=require, ort_opt=ort_opt,
        cuda_options=cuda_options, verbose=verbose, original_label=original_label,
    )
    try:
        return checker.compare(candidate, candidate_label)
    finally:
        checker.close()


# --------------------------------------------------------------------- bisect


@dataclass
class BisectResult:
    """Which rewrite records make the rewritten model differ, and the proof."""

    culprits: list[str]
    groups: list[list[str]]  # each a minimal failing set; one key = that rewrite alone breaks it
    alone: dict[str, bool]  # key -> whether applying it alone already fails
    report: CheckReport  # check of the model with only the culprits rewritten
    full_report: CheckReport  # check of the model with every candidate key rewritten
    records: list[Any] = field(default_factory=list)  # rewrite records of the culprits, when known
    checks_run: int = 0

    @property
    def found(self) -> bool:
        return bool(self.culprits)

    def describe(self) -> str:
        """One line per culprit, naming the convolution."""
        if not self.culprits:
            if self.full_report.ok:
                return "bisect: the rewritten model is equivalent; no culprit"
            if not self.full_report.ran:
                return "bisect: nothing could run, so nothing to bisect: " + self.full_report.summary
            return (
                "bisect: the outputs differ even with none of the rewrites applied; no rewrite is to blame: "
                + self.report.summary
            )
        by_key = {getattr(r, "key", None): r for r in self.records}
        lines = [f"bisect: {len(self.culprits)} rewrite(s) make the model differ ({self.checks_run} checks):"]
        for key in self.culprits:
            rec = by_key.get(key)
            what = ""
            if rec is not None:
                node = getattr(rec, "node", None)
                node_name = getattr(node, "name", node) if node is not None else None
                what = f" ({getattr(rec, 'op_type', '?')} {node_name!r}, pass {getattr(rec, 'pass_name', '?')})"
            lines.append(f"  {key}{what}" + ("" if self.alone.get(key) else " [only together with the others in its group]"))
        return "\n".join(lines)


def _rewritten_model(result: Any) -> tuple[ModelProto, list[Any]]:
    if isinstance(result, ModelProto):
        return result, []
    return result.model, list(getattr(result, "records", []) or [])


def _ddmin(items: list[str], fails: Callable[[list[str]], bool]) -> list[str]:
    """Zeller's delta debugging: a 1-minimal failing subset of `items` (which fails).

    Halves first (a single culprit is found by binary search), then finer
    chunks and complements when the failure needs several rewrites together.
    """
    n = 2
    while len(items) >= 2:
        size = len(items)
        bounds = [round(i * size / n) for i in range(n + 1)]
        chunks = [items[bounds[i]:bounds[i + 1]] for i in range(n) if bounds[i] < bounds[i + 1]]
        reduced = False
        for chunk in chunks:
            if fails(chunk):
                items, n, reduced = chunk, 2, True
                break
        if not reduced and len(chunks) > 2:
            for i in range(len(chunks)):
                complement = [k for j, c in enumerate(chunks) if j != i for k in c]
                if fails(complement):
                    items, n, reduced = complement, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= size:
                break
            n = min(size, 2 * n)
    return items


def bisect(
    original: cio.ModelSource,
    rewrite_fn: Callable[..., Any],
    candidate_keys: Sequence[str] | None = None,
    **check_options: Any,
) -> BisectResult:
    """Find the smallest set of rewrites that makes the rewritten model differ.

    `rewrite_fn(only=set_of_keys)` returns the model with only those candidates
    rewritten (a ModelProto, or a RewriteResult with `.model` and `.records`).
    `candidate_keys` defaults to the keys of the records `rewrite_fn(only=None)`
    marks rewritten. The original's outputs are computed once and reused for every
    subset. After one minimal group is found, the remaining keys are checked again
    so independent faults are all named. `check_options` are those of `check`.
    """
    checker = _Checker(original, keep_reference=True, **check_options)
    cache: dict[frozenset[str], CheckReport] = {}
    records_by_key: dict[str, Any] = {}
    try:
        if candidate_keys is None:
            _, records = _rewritten_model(rewrite_fn(only=None))
            candidate_keys = [r.key for r in records if getattr(r, "status", "rewritten") == "rewritten"]
        keys = list(dict.fromkeys(candidate_keys))

        def report_for(subset: Iterable[str]) -> CheckReport:
            frozen = frozenset(subset)
            if frozen not in cache:
                model, records = _rewritten_model(rewrite_fn(only=set(frozen)))
                for r in records:
                    if getattr(r, "key", None) in frozen:
                        records_by_key[r.key] = r
                cache[frozen] = checker.compare(model, "rewritten (" + (", ".join(sorted(frozen)) or "nothing") + ")")
            return cache[frozen]

        def fails(subset: Iterable[str]) -> bool:
            return not report_for(subset).ok

        full_report = report_for(keys)
        nothing = BisectResult([], [], {}, full_report, full_report, [], 0)
        if full_report.ok or not keys or not full_report.ran:
            nothing.checks_run = len(cache)
            return nothing  # equivalent, nothing to bisect, or nothing could run
        if fails([]):
            # The model differs with no candidate rewritten: no rewrite is to blame.
            nothing.report = report_for([])
            nothing.checks_run = len(cache)
            return nothing
        groups: list[list[str]] = []
        remaining = list(keys)
        while remaining and fails(remaining):
            group = _ddmin(list(remaining), fails)
            groups.append(group)
            remaining = [k for k in remaining if k not in group]
        culprits = [k for k in keys if any(k in g for g in groups)]
        alone = {k: fails([k]) for k in culprits}
        report = report_for(culprits)
        records = [records_by_key[k] for k in culprits if k in records_by_key]
        return BisectResult(culprits, groups, alone, report, full_report, records, len(cache))
    finally:
        checker.close()
