"""ONNX conformance cases through the rank passes: expected outputs and the original on onnxruntime CPU.

Two sources (tests/conformance.py): the pytorch-converted/operator cases under
/work/shared/conformance (IR 3, opset 6: Unsqueeze/Squeeze with an axes
attribute, weights that are initializers and graph inputs), and the onnx
wheel's node cases of Conv, ConvTranspose, QLinearConv and ConvInteger (the
weight is a graph input there: it is routed through Unsqueeze/Squeeze).
"""

from __future__ import annotations

import numpy as np
import pytest

from conformance import node_cases, shared_cases
from test_rank import assert_idempotent, conv_nodes, conv_rank, rewrite_checked
from util import run

CASES = list(shared_cases()) + list(node_cases())
CONFIGS = [(["to-2d"], "h"), (["to-2d"], "w"), (["to-3d"], "h"), (["to-3d"], "w"), (["to-1d"], "h"),
           (["to-2d", "to-1d"], "h"), (["to-3d", "3d-to-2d"], "w")]

# (case, passes) whose rewritten outputs are not bit-exact on onnxruntime CPU, and why. None today:
# every case and configuration below gives the original's outputs bit for bit.
NOT_BIT_EXACT: dict[tuple[str, str], str] = {}

# Cases onnxruntime CPU cannot run at all (the original fails the same way): checked structurally only.
ORT_CANNOT_RUN = {
    "test_convinteger_with_padding[0]": "onnxruntime ConvInteger supports only a per-tensor weight zero point",
}


@pytest.mark.parametrize("passes, layout", CONFIGS, ids=["+".join(p) + ":" + l for p, l in CONFIGS])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance_case(case, passes, layout):
    can_run = case.name not in ORT_CANNOT_RUN
    result = rewrite_checked(case.model, passes, layout, compare=False)
    if passes == ["to-2d"]:
        assert all(conv_rank(n, result.model) != 1 for n in conv_nodes(result.model))
    assert_idempotent(result, passes, layout)
    if not can_run:
        return
    feeds = case.feeds()
    original = run(case.model, feeds)
    rewritten = run(result.model, feeds)
    assert list(original) == list(rewritten)
    for (name, got), expected in zip(rewritten.items(), case.outputs):
        np.testing.assert_allclose(got, expected, rtol=case.rtol, atol=case.atol)
        ref = original[name]
        assert got.shape == ref.shape and got.dtype == ref.dtype
        if got.dtype.kind == "f":
            assert np.max(np.abs(got.astype(np.float64) - ref)) <= 1e-5
        if (case.name, "+".join(passes)) not in NOT_BIT_EXACT:
            assert np.array_equal(got, ref), f"{name}: not bit-exact"
