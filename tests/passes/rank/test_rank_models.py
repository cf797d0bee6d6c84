"""Every model in models/ and /work/shared/exporter-samples through the rank passes, on onnxruntime CPU.

For each model: the rewritten model passes onnx.checker (full), keeps IR
version, opsets and graph I/O, records every convolution once, agrees with
the original (float32 max abs error <= 1e-5), is left unchanged by a second
run (byte-identical), and is the same bytes when rewritten twice. After
`to-2d` no 1D convolution remains unless its record says why; `to-2d` then
`to-1d` gives back the original's op sequence (constant-only operand chains
aside: they are folded into initializers).

Which results are not bit-exact, and why, is listed in NOT_BIT_EXACT; any
other difference fails.
"""

from __future__ import annotations

import pytest

import convrewrite
from test_rank import (
    assert_idempotent, conv_nodes, conv_rank, data_ops, load_case, rewrite_checked, runnable,
)
from util import MODELS, SAMPLES

PATHS = sorted(MODELS.glob("*.onnx")) + sorted(SAMPLES.glob("*.onnx"))
IDS = [p.parent.name[:7] + "/" + p.stem for p in PATHS]

# (model stem, passes) -> why the rewritten model is not bit-exact (still within 1e-5).
NOT_BIT_EXACT: dict[tuple[str, str], str] = {}

_CASES: dict = {}


def case(path):
    if path not in _CASES:
        model, feeds = load_case(path)
        _CASES[path] = (model, feeds, runnable(model, feeds))
    return _CASES[path]


def check_exactness(path, passes, result):
    errors = getattr(result, "errors", None) or {}
    if any(e > 0 for e in errors.values()):
        assert (path.stem, passes) in NOT_BIT_EXACT, f"{path.stem} {passes}: not bit-exact {errors}"


@pytest.mark.parametrize("layout", ["h", "w"])
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_to_2d(path, layout):
    model, feeds, ok = case(path)
    result = rewrite_checked(model, ["to-2d"], layout, feeds, compare=ok)
    check_exactness(path, "to-2d", result)
    left_1d = sum(conv_rank(n, result.model) == 1 for n in conv_nodes(result.model))
    explained = [r for r in result.skipped if r.before and len(r.before["kernel_shape"]) == 1 and r.reason]
    assert left_1d == len(explained)
    assert_idempotent(result, ["to-2d"], layout)
    again = convrewrite.rewrite(model, passes=["to-2d"], layout=layout)
    assert again.model.SerializeToString() == result.model.SerializeToString()
    if not any(r.rewritten for r in convrewrite.rewrite(model, passes=["to-1d"]).records):
        back = rewrite_checked(result.model, ["to-1d"], layout, feeds, compare=ok)
        assert data_ops(back.model) == data_ops(model)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_to_1d(path):
    model, feeds, ok = case(path)
    result = rewrite_checked(model, ["to-1d"], "h", feeds, compare=ok)
    check_exactness(path, "to-1d", result)
    assert_idempotent(result, ["to-1d"])
    again = convrewrite.rewrite(model, passes=["to-1d"])
    assert again.model.SerializeToString() == result.model.SerializeToString()


@pytest.mark.parametrize("passes", [["to-3d"], ["3d-to-2d"]], ids=["to-3d", "3d-to-2d"])
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_to_3d_and_3d_to_2d(path, passes):
    model, feeds, ok = case(path)
    result = rewrite_checked(model, passes, "h", feeds, compare=ok)
    check_exactness(path, passes[0], result)
    assert_idempotent(result, passes)
