"""Seeded input draws that reach the differences a plain normal draw misses.

Every check runs these trials (unless inputs are given):

- `normal`: floats from N(0, 1); integers in [0, 3]; random bools.
- `wide`: floats uniform in [-1000, 1000] ([-100, 100] for 16-bit floats), so a
  branch behind `Where(x > 5)` is taken; bools are the normal trial's, negated,
  so every bool element takes both values.
- `special`: the normal draw with +-0, +-Inf, NaN, subnormals, huge and tiny
  values sprinkled in (each kind at least once when the input has room);
  `finite=True` leaves this trial out.

In every trial an integer input that indexes (Gather, GatherElements,
GatherND, ScatterND, ScatterElements, OneHot) is drawn over the whole valid
index range of what it indexes, negative indices included where the opset
allows them; an input with a user range is drawn uniformly from it, never
with special values. Dynamic batch dims are 2 (see `dims`), so samples that
mix are seen. Draws are reproducible: each input has its own stream seeded by
(seed, input position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import onnx
from onnx import ModelProto

from .errors import CheckInputError
from .specs import InputSpec

WIDE = {2: 100.0, 4: 1000.0, 8: 1000.0}  # by float item size
SMALL_INT_RANGE = (0, 3)
INDEX_OPS = {"Gather": (1, 0), "GatherElements": (1, 0), "GatherND": (1, 0), "ScatterND": (1, 0),
             "ScatterElements": (1, 0), "OneHot": (0, None)}  # op -> (indices input, data input)
PASS_THROUGH = {"Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Expand"}


@dataclass
class Trial:
    """One input set to run: how it is drawn (or given), and its seed."""

    label: str
    kind: str  # normal | wide | special | given
    seed: int | None = None

    def to_dict(self) -> dict:
        return {"label": self.label, "kind": self.kind, "seed": self.seed}


DRAWS = ("normal", "wide", "special")


def plan_trials(seed: int, normal: int, draws: tuple[str, ...] = DRAWS) -> list[Trial]:
    """The trials to run: `normal` draws of N(0, 1), then the wide and special-values draws if asked for."""
    trials = [Trial(f"normal (seed {seed + t})", "normal", seed + t) for t in range(normal)] if "normal" in draws else []
    next_seed = seed + (normal if "normal" in draws else 0)
    if "wide" in draws:
        trials.append(Trial(f"wide (seed {next_seed})", "wide", next_seed))
        next_seed += 1
    if "special" in draws:
        trials.append(Trial(f"special values (seed {next_seed})", "special", next_seed))
    return trials


def draw_kinds(value: Iterable[str] | str | None, finite: bool) -> tuple[str, ...]:
    """Which draws run, in their fixed order; `finite` drops the special-values one."""
    if value is None:
        chosen = set(DRAWS)
    else:
        items = value.split(",") if isinstance(value, str) else list(value)
        chosen = {str(v).strip() for v in items if str(v).strip()}
        unknown = chosen - set(DRAWS)
        if unknown or not chosen:
            raise CheckInputError(f"draws: {', '.join(sorted(unknown)) or 'none given'}; choose from "
                                  f"{', '.join(DRAWS)}")
    if finite:
        chosen.discard("special")
    if not chosen:
        raise CheckInputError("draws: nothing left to run")
    return tuple(d for d in DRAWS if d in chosen)


def special_values(dtype: np.dtype) -> np.ndarray:
    """+-0, +-Inf, NaN, +-smallest subnormal, +-huge, +-tiny of `dtype`."""
    info = np.finfo(dtype)
    huge = float(info.max) ** 0.5
    return np.array([0.0, -0.0, np.inf, -np.inf, np.nan, info.smallest_subnormal, -info.smallest_subnormal,
                     huge, -huge, info.tiny, -info.tiny], dtype=dtype)


def draw(
    spec: InputSpec,
    position: int,
    shape: tuple[int, ...],
    trial: Trial,
    first_seed: int,
    value_range: tuple[float, float] | None,
    index_range: tuple[int, int] | None,
) -> np.ndarray:
    """One input's values for one trial."""
    dtype = spec.dtype
    rng = np.random.default_rng([int(trial.seed or 0), position])
    if dtype == np.bool_:
        if trial.kind == "wide":
            return ~np.random.default_rng([first_seed, position]).integers(0, 2, size=shape).astype(np.bool_)
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if dtype == np.dtype(object):
        return np.array([f"s{v}" for v in rng.integers(0, 8, size=int(np.prod(shape)))], dtype=object).reshape(shape)
    if np.issubdtype(dtype, np.integer):
        lo, hi = index_range or (value_range if value_range is not None else SMALL_INT_RANGE)
        info = np.iinfo(dtype)
        lo, hi = max(int(np.ceil(lo)), info.min), min(int(np.floor(hi)), info.max)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if value_range is not None:
        return rng.uniform(value_range[0], value_range[1], size=shape).astype(dtype)
    if trial.kind == "wide":
        bound = WIDE.get(dtype.itemsize, 1000.0)
        return rng.uniform(-bound, bound, size=shape).astype(dtype)
    values = rng.standard_normal(size=shape).astype(dtype)
    if trial.kind == "special" and values.size:
        flat = values.reshape(-1)
        specials = special_values(dtype)
        count = max(min(len(specials), flat.size), flat.size // 32)
        where = rng.choice(flat.size, size=count, replace=False)
        picks = np.concatenate([np.arange(len(specials)), rng.integers(0, len(specials), size=count)])[:count]
        flat[where] = specials[picks]
    return values


def describe(spec: InputSpec, value_range, index_range) -> str:
    dtype = spec.dtype
    if dtype == np.bool_:
        return "bools (wide trial: the normal one negated)"
    if dtype == np.dtype(object):
        return "short strings"
    if np.issubdtype(dtype, np.integer):
        if index_range is not None:
            return f"indices in [{index_range[0]}, {index_range[1]}] (the whole range it indexes)"
        lo, hi = value_range if value_range is not None else SMALL_INT_RANGE
        return f"integers in [{lo:g}, {hi:g}]"
    if value_range is not None:
        return f"uniform in [{value_range[0]:g}, {value_range[1]:g}]"
    return f"normal / wide uniform +-{WIDE.get(dtype.itemsize, 1000.0):g} / special values"


def index_ranges(model: ModelProto, specs: list[InputSpec], dims: Mapping[str, list[int | None]]) -> dict[str, tuple[int, int]]:
    """Integer inputs that index something, with the valid index range of the smallest thing they index."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    constants = {t.name: t for t in model.graph.initializer}
    out: dict[str, tuple[int, int]] = {}
    for spec in specs:
        if not np.issubdtype(spec.dtype, np.integer):
            continue
        extents = []
        frontier, seen = [spec.name], set()
        while frontier:
            value = frontier.pop()
            if value in seen:
                continue
            seen.add(value)
            for node in consumers.get(value, []):
                if node.op_type in PASS_THROUGH and node.input[0] == value:
                    frontier.extend(node.output)
                    continue
                rule = INDEX_OPS.get(node.op_type)
                if rule is None or node.input[rule[0]] != value:
                    continue
                extent = _extent(node, rule, dims, constants)
                if extent:
                    extents.append(extent)
        if extents:
            n = min(extents)
            out[spec.name] = (-n if opset >= 11 else 0, n - 1)
    return out


def _extent(node: onnx.NodeProto, rule: tuple[int, int | None], dims, constants) -> int | None:
    if node.op_type == "OneHot":
        depth = constants.get(node.input[1]) if len(node.input) > 1 else None
        if depth is not None:
            return int(onnx.numpy_helper.to_array(depth).reshape(-1)[0])
        return None
    data = dims.get(node.input[rule[1]]) if rule[1] is not None else None
    if not data:
        return None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    if node.op_type in ("GatherND", "ScatterND"):
        batch = next((a.i for a in node.attribute if a.name == "batch_dims"), 0)
        known = [d for d in data[batch:] if d]
        return min(known) if known else None
    d = data[axis % len(data)]
    return d if d else None
