"""Conformance data: the onnx wheel's node test cases and ../shared/conformance."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from util import CONFORMANCE

CONV_OPS = ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger")
# The ops whose node cases go through every pass (tests/passes/test_conformance_passes.py).
CONFORMANCE_OPS = CONV_OPS + ("Pad",)


@dataclass
class Case:
    name: str
    model: onnx.ModelProto
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    rtol: float
    atol: float

    def feeds(self) -> dict[str, np.ndarray]:
        inits = {t.name for t in self.model.graph.initializer}
        names = [i.name for i in self.model.graph.input if i.name not in inits]
        return dict(zip(names, self.inputs))


@functools.lru_cache(maxsize=None)
def _collected_node_testcases() -> tuple:
    """The onnx wheel's node test cases, built once (a few seconds) for every selection below."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(node.collect_testcases(None))


@functools.lru_cache(maxsize=None)
def node_cases(ops: tuple[str, ...] = CONV_OPS, expanded_ops: tuple[str, ...] = ()) -> tuple[Case, ...]:
    """ONNX node conformance cases whose graph holds one of `ops`.

    The *_expanded cases (another op's function body written out) are left
    out, except those holding one of `expanded_ops`: CausalConvWithState's
    expansions are Concat -> Conv -> Slice streaming graphs, the causal fold's
    own pattern.
    """
    out = []
    for c in _collected_node_testcases():
        if c.model is None:
            continue
        wanted = expanded_ops if c.name.endswith("_expanded") else ops
        if not any(n.op_type in wanted for n in c.model.graph.node):
            continue
        for i, (ins, outs) in enumerate(c.data_sets):
            model = onnx.ModelProto()
            model.CopyFrom(c.model)
            model.ir_version = min(model.ir_version, 13)
            out.append(Case(f"{c.name}[{i}]", model, [np.asarray(a) for a in ins], [np.asarray(a) for a in outs], float(c.rtol), float(c.atol)))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def shared_cases() -> tuple[Case, ...]:
    """Cases under ../shared/conformance (model.onnx + test_data_set_0/*.pb)."""
    out = []
    for model_path in sorted(Path(CONFORMANCE).glob("*/*/model.onnx")):
        model = onnx.load(str(model_path))
        data = model_path.parent / "test_data_set_0"
        ins = [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in sorted(data.glob("input_*.pb"))]
        outs = [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in sorted(data.glob("output_*.pb"))]
        out.append(Case(model_path.parent.name, model, ins, outs, 1e-3, 1e-7))
    return tuple(out)
