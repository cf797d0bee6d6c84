"""onnxruntime CPU latency of a dynamic Keras Conv1D dilated stack before and after `--fold dilated`.

The model is what tf2onnx makes of 4 x Keras `Conv1D(64, 3, padding='same',
dilation_rate=d, activation='relu')` (d = 2, 4, 8, 16) with a dynamic length:
each layer a SpaceToBatch/BatchToSpace lowering with its shape arithmetic.
By default it is the real export models/tf2onnx_k3_conv1d_stack_dyn.onnx
(TF 2.21 / Keras 3 / tf2onnx 1.17, 8 channels) with its weights replaced by
random ones of the requested channel count (nothing else in that graph
depends on it); `--form built` uses models/make_dilated_models.py's
hand-built form instead. Both models (before and after the fold) run in one
process on the same input ([1, 4096, 64]), interleaved, with onnxruntime's
default graph optimizations and with them disabled; the script prints the
medians and the ratios.
Run:  python benchmarks/bench_dilated.py [--length 4096] [--runs 50] [--threads N] [--form tf2onnx|built]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))

from make_dilated_models import conv1d_dilated_model  # noqa: E402

from convrewrite import rewrite  # noqa: E402


def real_stack(channels: int, seed: int = 1) -> onnx.ModelProto:
    """The real tf2onnx export of the stack with `channels` channels: weights [8, 8, 1, 3] -> [C, C, 1, 3],
    biases [8] -> [C], the channel dim of the graph input and output -> C."""
    model = onnx.load(os.path.join(ROOT, "models", "tf2onnx_k3_conv1d_stack_dyn.onnx"))
    rng = np.random.default_rng(seed)
    for t in model.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        shape = [channels if d == 8 else d for d in t.dims]
        value = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
        t.CopyFrom(numpy_helper.from_array(value, t.name))
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.shape.dim[-1].dim_value = channels
    return model


def session(model, level, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def measure(sessions, feeds, runs):
    """Median latency (ms) per session, runs interleaved so drift hits all alike."""
    times = [[] for _ in sessions]
    for sess in sessions:  # warm-up
        for _ in range(3):
            sess.run(None, feeds)
    for _ in range(runs):
        for i, sess in enumerate(sessions):
            t = time.perf_counter()
            sess.run(None, feeds)
            times[i].append((time.perf_counter() - t) * 1e3)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--form", choices=["tf2onnx", "built"], default="tf2onnx",
                        help="the real tf2onnx export (resized) or the hand-built form")
    args = parser.parse_args()

    if args.form == "tf2onnx":
        original = real_stack(args.channels)
    else:
        original, _ = conv1d_dilated_model(seed=1, c=args.channels, co=args.channels, dilations=(2, 4, 8, 16),
                                           relu=True)
    t = time.perf_counter()
    result = rewrite(original, ["dilated"])
    fold_s = time.perf_counter() - t
    folded = result.model
    x = np.random.default_rng(0).standard_normal((1, args.length, args.channels)).astype(np.float32)
    feeds = {"x": x}

    print(f"Conv1D dilated stack ({args.form} form): 4 layers, {args.channels} channels, length {args.length}, "
          f"onnxruntime {ort.__version__} CPU ({args.threads or 'default'} threads), {args.runs} runs each (median)")
    print(f"nodes: {len(original.graph.node)} before, {len(folded.graph.node)} after "
          f"(counters {result.counters}); fold took {fold_s * 1e3:.0f} ms")
    for label, level in (("default optimizations", ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                         ("optimizations disabled", ort.GraphOptimizationLevel.ORT_DISABLE_ALL)):
        a, b = session(original, level, args.threads), session(folded, level, args.threads)
        ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
        diff = float(np.max(np.abs(ya - yb)))
        before, after = measure([a, b], feeds, args.runs)
        print(f"{label:24s} before {before:8.2f} ms   after {after:8.2f} ms   "
              f"speed-up x{before / after:.2f}   (max abs diff {diff:.1e})")


if __name__ == "__main__":
    main()
