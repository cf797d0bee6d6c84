"""Test helpers: run models in onnxruntime CPU and compare, build small graphs.

Tests use these instead of the checker so that a bug in the checker cannot
hide a bug in a pass (the checker has its own tests).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
# Copies of ../shared/exporter-samples and ../shared/conformance, so a clean
# clone (CI) tests against them too rather than skipping them.
SHARED = ROOT / "tests" / "data"
SAMPLES = SHARED / "exporter-samples"
CONFORMANCE = SHARED / "conformance" / "onnx-pytorch-converted"
MAX_IR = 13

ort.set_default_logger_severity(3)


def runnable(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy onnxruntime accepts (IR version capped)."""
    if model.ir_version > MAX_IR:
        model = copy.deepcopy(model)
        model.ir_version = MAX_IR
    return model


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(runnable(model).SerializeToString(), opts, providers=["CPUExecutionProvider"])


def feeds_for(model: onnx.ModelProto, seed: int = 0, dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs; symbolic dims from `dims` (default 1 for the first axis, else 16)."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            else:
                shape.append((dims or {}).get(d.dim_param, 1 if i == 0 else 16))
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if dtype.kind == "f":
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[vi.name] = rng.integers(0, 8, size=shape).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = session(model)
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    return dict(zip(names, sess.run(None, {k: v for k, v in feeds.items() if k in wanted})))


def assert_same_outputs(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: dict[str, np.ndarray] | None = None,
    atol: float = 1e-5,
    rtol: float = 0.0,
) -> dict[str, float]:
    """Run both on the same inputs; outputs must keep names/shapes/dtypes and agree within atol + rtol*|ref|.

    Returns the max abs error per output (0.0 means bit-exact).
    """
    feeds = feeds if feeds is not None else feeds_for(original)
    a, b = run(original, feeds), run(rewritten, feeds)
    assert list(a) == list(b), f"output names differ: {list(a)} vs {list(b)}"
    errors = {}
    for name in a:
        assert a[name].shape == b[name].shape, f"{name}: shape {a[name].shape} vs {b[name].shape}"
        assert a[name].dtype == b[name].dtype, f"{name}: dtype {a[name].dtype} vs {b[name].dtype}"
        diff = np.abs(a[name].astype(np.float64) - b[name].astype(np.float64))
        bound = atol + rtol * np.abs(a[name].astype(np.float64))
        worst = float(diff.max()) if diff.size else 0.0
        assert np.all(diff <= bound), f"{name}: max abs error {worst:.3g} beyond atol {atol} rtol {rtol}"
        errors[name] = worst
    return errors


def op_types(model: onnx.ModelProto, graph: onnx.GraphProto | None = None) -> list[str]:
    g = graph if graph is not None else model.graph
    return [n.op_type for n in g.node]


def count_ops(model: onnx.ModelProto, op: str) -> int:
    return op_types(model).count(op)


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 13, ir_version: int = 8, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version, **kw)
    onnx.checker.check_model(model)
    return model


def init(name: str, array) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def vi(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


SPECIALS = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, -1e-40, 1e-45], np.float64)


def special_feeds(model: onnx.ModelProto, seed: int = 0, dims: dict[str, int] | None = None,
                  fraction: float = 0.1) -> dict[str, np.ndarray]:
    """feeds_for's inputs with about `fraction` of each float input replaced by +-Inf, NaN, +-0, subnormals."""
    rng = np.random.default_rng(seed + 1000)
    feeds = feeds_for(model, seed, dims)
    for name, x in feeds.items():
        if x.dtype.kind != "f" or not x.size:
            continue
        x = x.copy()
        flat = x.reshape(-1)
        where = rng.random(flat.size) < fraction
        where[rng.integers(flat.size)] = True
        flat[where] = SPECIALS[rng.integers(0, len(SPECIALS), int(where.sum()))].astype(x.dtype)
        feeds[name] = x
    return feeds


def assert_same_special(original: onnx.ModelProto, rewritten: onnx.ModelProto, feeds: dict[str, np.ndarray],
                        atol: float = 1e-5, rtol: float = 1e-4) -> int:
    """NaN positions equal, +-Inf positions and signs equal, finite values within atol + rtol*|ref|.

    Returns how many output elements were non-finite (so a test can see its inputs reached the outputs).
    """
    a, b = run(original, feeds), run(rewritten, feeds)
    assert list(a) == list(b), f"output names differ: {list(a)} vs {list(b)}"
    special = 0
    for name in a:
        u, v = a[name], b[name]
        assert u.shape == v.shape and u.dtype == v.dtype, f"{name}: {u.shape}/{u.dtype} vs {v.shape}/{v.dtype}"
        if u.dtype.kind != "f":
            assert np.array_equal(u, v), f"{name}: integer outputs differ"
            continue
        u, v = u.astype(np.float64), v.astype(np.float64)
        nan_u, nan_v = np.isnan(u), np.isnan(v)
        assert np.array_equal(nan_u, nan_v), f"{name}: NaN at {int(nan_u.sum())} vs {int(nan_v.sum())} positions"
        inf_u, inf_v = np.isinf(u), np.isinf(v)
        assert np.array_equal(inf_u, inf_v) and np.array_equal(u[inf_u], v[inf_v]), f"{name}: Inf positions differ"
        fin = np.isfinite(u)
        diff = np.abs(u[fin] - v[fin])
        assert np.all(diff <= atol + rtol * np.abs(u[fin])), f"{name}: max abs error {diff.max():.3g}"
        special += int((~fin).sum())
    return special


def build_model(nodes, inputs, outputs, initializers=None):
    """make_model from (name, elem type, shape) tuples and a name -> array mapping."""
    return make_model(
        nodes,
        [vi(n, s, t) for n, t, s in inputs],
        [vi(n, s, t) for n, t, s in outputs],
        [init(k, v) for k, v in (initializers or {}).items()],
    )


def load_with_inputs(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A shipped model (models/, else the exporter samples) and the inputs saved beside it (NAME.npz)."""
    base = MODELS if (MODELS / f"{name}.onnx").exists() else SAMPLES
    path = base / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{name}.onnx is not in models/ or the exporter samples")
    return onnx.load(str(path)), dict(np.load(str(base / f"{name}.npz")))
