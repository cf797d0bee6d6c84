"""Helpers shared by make_torch_models.py and make_tf2onnx_models.py.

save() checks one model (onnx.checker full_check, onnxruntime CPU run against
the framework outputs) and writes NAME.npz next to NAME.onnx.
"""

import os

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 1e-4
MAX_ORT_IR = 13  # onnxruntime 1.31 accepts IR versions up to 13

# Models onnxruntime cannot run as exported: name -> why. save() then asserts that it
# really fails and records the failure instead of a difference.
NOT_RUNNABLE = {
    "same_dilated_ts13": "auto_pad=SAME_UPPER with dilations=[2], which onnxruntime refuses",
}

RESULTS = []  # rows (name, op sequence, input shapes, max diff or note)


def op_sequence(model):
    """Op types in graph order, Constant nodes left out."""
    return " ".join(n.op_type for n in model.graph.node if n.op_type != "Constant")


def run_ort(path, inputs, quiet=False):
    """Run a model on onnxruntime CPU with graph optimizations disabled."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if quiet:
        opts.log_severity_level = 4
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))


def save(name, model_or_path, inputs, outputs):
    """Check, run and record one model; write models/NAME.npz.

    model_or_path: a ModelProto (saved to models/NAME.onnx) or the path an
    exporter already wrote (must be models/NAME.onnx). inputs / outputs: dicts
    graph name -> array; outputs are the framework's (or the reference's).
    """
    path = os.path.join(HERE, name + ".onnx")
    if isinstance(model_or_path, onnx.ModelProto):
        onnx.save(model_or_path, path)
    elif os.path.abspath(model_or_path) != path:
        raise ValueError(f"{name}: written to {model_or_path}, expected {path}")
    model = onnx.load(path)
    assert model.ir_version <= MAX_ORT_IR, (name, model.ir_version)
    onnx.checker.check_model(model, full_check=True)

    graph_in = [i.name for i in model.graph.input]
    graph_out = [o.name for o in model.graph.output]
    assert sorted(graph_in) == sorted(inputs), (name, graph_in, list(inputs))
    assert sorted(graph_out) == sorted(outputs), (name, graph_out, list(outputs))
    inputs = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in inputs.items()}
    outputs = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in outputs.items()}
    np.savez(os.path.join(HERE, name + ".npz"), **inputs, **outputs)

    ops = op_sequence(model)
    shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in inputs.items())
    if name in NOT_RUNNABLE:
        try:
            run_ort(path, inputs, quiet=True)
        except Exception as e:  # expected: onnxruntime refuses the model
            note = "does not run: " + str(e).split("Status Message: ")[-1].strip()
        else:
            raise AssertionError(f"{name} was expected to fail in onnxruntime but ran")
        RESULTS.append((name, ops, shapes, note))
        print(f"{name:28s} NOT RUNNABLE, as expected: {note}")
        return
    got = run_ort(path, inputs)
    diff = max(float(np.max(np.abs(got[k] - outputs[k]))) for k in graph_out)
    RESULTS.append((name, ops, shapes, f"{diff:.1e}"))
    print(f"{name:28s} max abs diff {diff:.2e} | {ops}")
    assert diff < TOL, (name, diff)


def print_table():
    """The README table rows for everything saved in this run."""
    print("\n| file | op sequence (Constant nodes omitted) | inputs | max abs diff |")
    print("|---|---|---|---|")
    for name, ops, shapes, diff in RESULTS:
        print(f"| `{name}.onnx` | {ops} | {shapes} | {diff} |")


def make_all(makers, filters) -> None:
    """Run every maker whose name contains one of `filters` (all when none), then print the table rows."""
    for make in makers:
        if not filters or any(f in make.__name__ for f in filters):
            make()
    print_table()
