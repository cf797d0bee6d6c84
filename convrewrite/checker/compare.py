"""Compare one output pair by what it is: float, integer and bool tensors, strings, sequences, optionals.

Pure numpy, no onnxruntime. Definitions (ref = the original's or the expected
value, act = the candidate's):

- a float element passes when it is equal (NaN equals NaN, Inf equals Inf of
  the same sign) or both are finite and ``|act - ref| <= atol + rtol * |ref|``;
  a NaN or Inf against anything else always fails. With atol == rtol == 0 (the
  default for integers and bool) only exact equality passes.
- ``abs_err = |act - ref|``; ``rel_err = abs_err / max(|ref|, tiny)`` with tiny
  the smallest normal number of the dtype (1 for integers); mismatched NaN/Inf
  elements have abs_err = rel_err = inf. Integer differences are exact (computed
  in unsigned 64-bit arithmetic, never through float64).
- `min_atol` / `min_rtol`: the smallest atol (at the given rtol) and rtol (at the
  given atol) that pass every element; inf when NaN/Inf elements mismatch.
- the worst element is the argmax of ``abs_err - (atol + rtol*|ref|)`` among
  failing elements, else the argmax of abs_err.
- strings and bools compare exactly; sequences element by element (the worst
  element's index starts with the sequence position); optionals by presence,
  then by value; maps by keys, then by value.
- bit-exact means same kind, dtype, shape and bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .formatting import fmt_exact, fmt_number, json_number
from .histogram import error_histogram, merge_histograms
from .tolerance import default_tolerance

# Statuses that carry no element statistics.
STRUCTURAL = ("shape mismatch", "dtype mismatch", "length mismatch", "presence mismatch", "type mismatch")


@dataclass
class ComparisonStats:
    """Everything one comparison learned; every number explains itself."""

    ok: bool
    status: str  # bit-exact | passed | failed | one of STRUCTURAL
    atol: float
    rtol: float
    ref_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    ref_dtype: str
    actual_dtype: str
    kind: str = "tensor"  # tensor | string | sequence | optional | map
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
    histogram: dict[str, Any] | None = None  # log-scale |diff| bins (histogram.py); None when nothing was compared

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ref_shape": list(self.ref_shape),
            "actual_shape": list(self.actual_shape),
            "ref_dtype": self.ref_dtype,
            "actual_dtype": self.actual_dtype,
            "size": self.size,
            "bit_exact": self.bit_exact,
            "max_abs": json_number(self.max_abs),
            "max_rel": json_number(self.max_rel),
            "mean_abs": json_number(self.mean_abs),
            "beyond_count": self.beyond_count,
            "beyond_share": json_number(self.beyond_share),
            "mismatched_special": self.mismatched_special,
            "worst_index": list(self.worst_index) if self.worst_index is not None else None,
            "worst_ref": json_number(self.worst_ref),
            "worst_actual": json_number(self.worst_actual),
            "min_atol": json_number(self.min_atol),
            "min_rtol": json_number(self.min_rtol),
            "histogram": self.histogram,
        }


def stats_rank(stats: ComparisonStats | None) -> tuple:
    """Sort key for 'worse': failing first, then more elements beyond, then larger error."""
    if stats is None:
        return (0, 0, 0.0)
    max_abs = float(stats.max_abs) if not math.isnan(float(stats.max_abs)) else math.inf
    return (0 if stats.ok else 1, stats.beyond_count, max_abs)


def value_kind(value: Any) -> str:
    """What onnxruntime returned: tensor, string (tensor), sequence, optional (absent), map."""
    if value is None:
        return "optional"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, (list, tuple)):
        return "sequence"
    arr = np.asarray(value)
    if arr.dtype.kind in ("O", "U", "S"):
        return "string"
    return "tensor"


def _describe(value: Any) -> tuple[tuple[int, ...], str]:
    kind = value_kind(value)
    if kind == "optional":
        return (), "absent"
    if kind in ("sequence", "map"):
        return (len(value),), kind
    arr = np.asarray(value)
    return tuple(int(d) for d in arr.shape), ("string" if kind == "string" else arr.dtype.name)


def _structural(status: str, message: str, atol: float, rtol: float, ref: Any, act: Any, kind: str) -> ComparisonStats:
    ref_shape, ref_dtype = _describe(ref)
    act_shape, act_dtype = _describe(act)
    return ComparisonStats(
        ok=False, status=status, atol=atol, rtol=rtol, ref_shape=ref_shape, actual_shape=act_shape,
        ref_dtype=ref_dtype, actual_dtype=act_dtype, kind=kind, message=message,
    )


def compare_values(
    reference: Any,
    actual: Any,
    atol: float | None = None,
    rtol: float | None = None,
    *,
    check_dtype: bool = True,
    tolerance_dtype: Any = None,
) -> ComparisonStats:
    """Compare any two output values (see the module docstring).

    `tolerance_dtype` picks the default tolerances and `tiny` (default: the
    reference's dtype); `check_dtype=False` compares floats of different widths
    by value (framework outputs saved in another width).
    """
    ref_kind, act_kind = value_kind(reference), value_kind(actual)
    if ref_kind == "optional" or act_kind == "optional":
        a, r = _defaults(atol, rtol, tolerance_dtype)
        if ref_kind == act_kind:
            return ComparisonStats(True, "bit-exact", a, r, (), (), "absent", "absent", kind="optional", bit_exact=True)
        present = "absent in the candidate, present in the reference" if act_kind == "optional" else (
            "present in the candidate, absent in the reference")
        return _structural("presence mismatch", f"optional value {present}", a, r, reference, actual, "optional")
    if ref_kind != act_kind and not {ref_kind, act_kind} <= {"tensor", "string"}:
        a, r = _defaults(atol, rtol, tolerance_dtype)
        return _structural("type mismatch", f"{act_kind} where the reference is a {ref_kind}", a, r, reference, actual, ref_kind)
    if ref_kind == "sequence":
        return _compare_sequence(list(reference), list(actual), atol, rtol, check_dtype, tolerance_dtype)
    if ref_kind == "map":
        return _compare_map(reference, actual, atol, rtol, check_dtype, tolerance_dtype)
    if ref_kind == "string" or act_kind == "string":
        return _compare_strings(np.asarray(reference), np.asarray(actual), atol, rtol, tolerance_dtype)
    return compare_arrays(reference, actual, atol, rtol, check_dtype=check_dtype, tolerance_dtype=tolerance_dtype)


def _defaults(atol: float | None, rtol: float | None, dtype: Any) -> tuple[float, float]:
    d_atol, d_rtol = default_tolerance(dtype if dtype is not None else "int64")
    return (d_atol if atol is None else float(atol)), (d_rtol if rtol is None else float(rtol))


def _compare_sequence(ref: list, act: list, atol, rtol, check_dtype, tolerance_dtype) -> ComparisonStats:
    if len(ref) != len(act):
        a, r = _defaults(atol, rtol, tolerance_dtype)
        return _structural("length mismatch", f"sequence of {len(act)} elements where the reference has {len(ref)}",
                           a, r, ref, act, "sequence")
    return _merge([compare_values(x, y, atol, rtol, check_dtype=check_dtype, tolerance_dtype=tolerance_dtype)
                   for x, y in zip(ref, act)], "sequence", len(ref), atol, rtol, tolerance_dtype)


def _compare_map(ref: dict, act: dict, atol, rtol, check_dtype, tolerance_dtype) -> ComparisonStats:
    if set(ref) != set(act):
        a, r = _defaults(atol, rtol, tolerance_dtype)
        missing = sorted(map(str, set(ref) - set(act)))[:3]
        extra = sorted(map(str, set(act) - set(ref)))[:3]
        return _structural("length mismatch", f"map keys differ (missing {missing}, extra {extra})", a, r, ref, act, "map")
    keys = sorted(ref, key=str)
    return _merge([compare_values(ref[k], act[k], atol, rtol, check_dtype=check_dtype, tolerance_dtype=tolerance_dtype)
                   for k in keys], "map", len(keys), atol, rtol, tolerance_dtype)


def _merge(parts: list[ComparisonStats], kind: str, length: int, atol, rtol, tolerance_dtype) -> ComparisonStats:
    """One summary of a sequence's (or map's) element comparisons; the worst element leads."""
    a, r = _defaults(atol, rtol, tolerance_dtype)
    if not parts:
        return ComparisonStats(True, "bit-exact", a, r, (0,), (0,), kind, kind, kind=kind, bit_exact=True)
    worst_pos = max(range(len(parts)), key=lambda i: stats_rank(parts[i]))
    worst = parts[worst_pos]
    size = sum(p.size for p in parts)
    beyond = sum(p.beyond_count for p in parts)
    ok = all(p.ok for p in parts)
    bit_exact = all(p.bit_exact for p in parts)
    status = "bit-exact" if bit_exact else ("passed" if ok else "failed")
    if not ok and worst.status in STRUCTURAL:
        status = worst.status
    stats = ComparisonStats(
        ok=ok, status=status, atol=worst.atol, rtol=worst.rtol, ref_shape=(length,), actual_shape=(length,),
        ref_dtype=worst.ref_dtype, actual_dtype=worst.actual_dtype, kind=kind, size=size, bit_exact=bit_exact,
        max_abs=max((p.max_abs for p in parts), key=_sortable), max_rel=max((p.max_rel for p in parts), key=_sortable),
        mean_abs=sum(float(p.mean_abs) * p.size for p in parts) / size if size else 0.0,
        beyond_count=beyond, beyond_share=beyond / size if size else 0.0,
        mismatched_special=sum(p.mismatched_special for p in parts),
        worst_index=(worst_pos, *(worst.worst_index or ())), worst_ref=worst.worst_ref, worst_actual=worst.worst_actual,
        min_atol=max((p.min_atol for p in parts), key=_sortable), min_rtol=max((p.min_rtol for p in parts), key=_sortable),
        histogram=merge_histograms([p.histogram for p in parts]),
    )
    if not ok:
        stats.message = f"{kind} element {worst_pos}: {worst.message}"
    return stats


def _sortable(value: Any) -> float:
    v = float(value)
    return math.inf if math.isnan(v) else v


def _compare_strings(ref: np.ndarray, act: np.ndarray, atol, rtol, tolerance_dtype) -> ComparisonStats:
    a, r = _defaults(atol, rtol, tolerance_dtype)
    base = dict(atol=a, rtol=r, ref_shape=tuple(ref.shape), actual_shape=tuple(act.shape),
                ref_dtype="string" if ref.dtype.kind in "OUS" else ref.dtype.name,
                actual_dtype="string" if act.dtype.kind in "OUS" else act.dtype.name, kind="string")
    if base["ref_dtype"] != base["actual_dtype"]:
        return ComparisonStats(ok=False, status="dtype mismatch",
                               message=f"dtype {base['actual_dtype']} where the reference has {base['ref_dtype']}", **base)
    if ref.shape != act.shape:
        return ComparisonStats(ok=False, status="shape mismatch",
                               message=f"shape {list(act.shape)} where the reference has {list(ref.shape)}", **base)
    size = int(ref.size)
    differ = np.array([str(x) != str(y) for x, y in zip(ref.ravel(), act.ravel())], dtype=bool)
    count = int(differ.sum()) if size else 0
    stats = ComparisonStats(ok=count == 0, status="bit-exact" if count == 0 else "failed", size=size,
                            bit_exact=count == 0, beyond_count=count, beyond_share=count / size if size else 0.0, **base)
    if count:
        flat = int(np.argmax(differ))
        stats.worst_index = tuple(int(i) for i in np.unravel_index(flat, ref.shape))
        stats.worst_ref, stats.worst_actual = str(ref.ravel()[flat]), str(act.ravel()[flat])
        stats.max_abs = stats.max_rel = stats.min_atol = stats.min_rtol = math.inf
        stats.mean_abs = math.inf
        stats.message = (f"{count} of {size} strings differ; first at {list(stats.worst_index)}: "
                         f"{stats.worst_actual!r} vs {stats.worst_ref!r}")
    return stats


def _tiny(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.floating):
        return float(np.finfo(dtype).tiny)
    return 1.0


def _int_abs_diff(ref: np.ndarray, act: np.ndarray) -> np.ndarray:
    """|act - ref| exactly, as uint64 (no overflow, no float rounding)."""
    if ref.dtype.kind == "u" and act.dtype.kind == "u":
        r, a = ref.astype(np.uint64), act.astype(np.uint64)
        return np.where(a >= r, a - r, r - a)
    r, a = ref.astype(np.int64), act.astype(np.int64)
    ru, au = r.view(np.uint64), a.view(np.uint64)
    return np.where(a >= r, au - ru, ru - au)  # modular subtraction gives the exact distance


def compare_arrays(
    reference: Any,
    actual: Any,
    atol: float | None = None,
    rtol: float | None = None,
    *,
    check_dtype: bool = True,
    tolerance_dtype: Any = None,
) -> ComparisonStats:
    """Compare two numeric or bool tensors element by element (see the module docstring)."""
    ref = np.asarray(reference)
    act = np.asarray(actual)
    tol_dtype = np.dtype(tolerance_dtype) if tolerance_dtype is not None else ref.dtype
    d_atol, d_rtol = default_tolerance(tol_dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    base = dict(atol=atol, rtol=rtol, ref_shape=tuple(int(d) for d in ref.shape),
                actual_shape=tuple(int(d) for d in act.shape), ref_dtype=ref.dtype.name, actual_dtype=act.dtype.name)
    if ref.shape != act.shape:
        return ComparisonStats(ok=False, status="shape mismatch",
                               message=f"shape {list(act.shape)} where the reference has {list(ref.shape)}", **base)
    if ref.dtype != act.dtype and (check_dtype or ref.dtype.kind != act.dtype.kind and not
                                   (ref.dtype.kind in "fiu" and act.dtype.kind in "fiu")):
        return ComparisonStats(ok=False, status="dtype mismatch",
                               message=f"dtype {act.dtype.name} where the reference has {ref.dtype.name}", **base)
    size = int(ref.size)
    bit_exact = ref.dtype == act.dtype and ref.tobytes() == act.tobytes()
    if size == 0:
        return ComparisonStats(ok=True, status="bit-exact" if bit_exact else "passed", bit_exact=bit_exact, **base)
    if ref.dtype.kind in "iub" and act.dtype.kind in "iub":
        stats = _compare_exact_ints(ref, act, atol, rtol, size, bit_exact, base)
    else:
        stats = _compare_floats(ref, act, atol, rtol, size, bit_exact, base, _tiny(tol_dtype))
    if not stats.ok:
        stats.message = (
            f"{stats.beyond_count} of {size} elements beyond atol {fmt_number(atol)} + rtol {fmt_number(rtol)}*|ref|; "
            f"worst at {list(stats.worst_index or ())}: {fmt_exact(stats.worst_actual)} vs {fmt_exact(stats.worst_ref)}"
        )
    return stats


def _compare_exact_ints(ref, act, atol, rtol, size, bit_exact, base) -> ComparisonStats:
    if ref.dtype.kind == "b" or act.dtype.kind == "b":
        diff = (ref.astype(np.uint8) != act.astype(np.uint8)).astype(np.uint64)
        abs_ref = ref.astype(np.uint8).astype(np.float64)
    else:
        diff = _int_abs_diff(ref, act)
        abs_ref = np.abs(ref.astype(np.float64))
    diff_f = diff.astype(np.float64)
    allowed = atol + rtol * abs_ref
    beyond = (diff > 0) & ((diff_f > allowed) | (allowed == 0))
    count = int(np.count_nonzero(beyond))
    if count:
        flat = int(np.argmax(np.where(beyond, diff_f - allowed, -np.inf)))
    else:
        flat = int(np.argmax(diff))
    max_abs = int(diff.max())
    need_rtol = np.where((diff > 0) & ((diff_f > atol) | (atol == 0)),
                         np.where(abs_ref > 0, (diff_f - atol) / np.maximum(abs_ref, 1), np.inf), 0.0)
    return ComparisonStats(
        ok=count == 0, status="bit-exact" if bit_exact else ("passed" if count == 0 else "failed"), size=size,
        bit_exact=bit_exact, max_abs=max_abs, max_rel=float((diff_f / np.maximum(abs_ref, 1.0)).max()),
        mean_abs=float(diff_f.mean()), beyond_count=count, beyond_share=count / size,
        worst_index=tuple(int(i) for i in np.unravel_index(flat, ref.shape)),
        worst_ref=ref.flat[flat], worst_actual=act.flat[flat],
        min_atol=max(0.0, float((diff_f - rtol * abs_ref).max())), min_rtol=max(0.0, float(need_rtol.max())),
        histogram=error_histogram(diff_f), **base,
    )


def _compare_floats(ref, act, atol, rtol, size, bit_exact, base, tiny) -> ComparisonStats:
    r = ref.astype(np.float64)
    a = act.astype(np.float64)
    with np.errstate(all="ignore"):
        finite = np.isfinite(r) & np.isfinite(a)
        equal = (r == a) | (np.isnan(r) & np.isnan(a))
        abs_ref = np.abs(r)
        abs_err = np.where(finite, np.abs(a - r), np.where(equal, 0.0, np.inf))
        rel_err = np.where(finite, abs_err / np.maximum(abs_ref, tiny), np.where(equal, 0.0, np.inf))
        allowed = atol + rtol * abs_ref
        beyond = ~equal & (~finite | (abs_err > allowed) | (allowed == 0))
        count = int(np.count_nonzero(beyond))
        if count:
            flat = int(np.argmax(np.where(beyond, np.where(finite, abs_err - allowed, np.inf), -np.inf)))
        else:
            flat = int(np.argmax(abs_err))
        need_atol = np.where(equal, 0.0, np.where(finite, abs_err - rtol * abs_ref, np.inf))
        over_atol = ~equal & (~finite | (abs_err > atol) | (atol == 0))
        need_rtol = np.where(over_atol, np.where(finite & (abs_ref > 0), (abs_err - atol) / abs_ref, np.inf), 0.0)
        return ComparisonStats(
            ok=count == 0, status="bit-exact" if bit_exact else ("passed" if count == 0 else "failed"), size=size,
            bit_exact=bit_exact, max_abs=float(abs_err.max()), max_rel=float(rel_err.max()),
            mean_abs=float(abs_err.mean()), beyond_count=count, beyond_share=count / size,
            mismatched_special=int(np.count_nonzero(~finite & ~equal)),
            worst_index=tuple(int(i) for i in np.unravel_index(flat, ref.shape)),
            worst_ref=ref.flat[flat], worst_actual=act.flat[flat],
            min_atol=max(0.0, float(need_atol.max())), min_rtol=max(0.0, float(need_rtol.max())),
            histogram=error_histogram(abs_err), **base,
        )
