"""Benchmark the separable pass: canonical vs original, fused vs pair (onnxruntime CPU latency).

Run:  python benchmarks/bench_separable.py [--rounds N] [--fused-rounds N] [--no-sweep]

1. A QuartzNet-like 1-D stack (5 blocks, 256 channels, kernel 33, length 1024;
   each block `depthwise conv -> BN -> pointwise conv -> BN -> + input -> ReLU`)
   in two exported forms:
   - "torch train export": the BatchNormalization nodes kept between and after
     the convs, a bias on both convs (TorchScript with `training=PRESERVE`);
   - "tf2onnx noopt": the Keras 1-D-as-2-D form with tf2onnx's optimizer off:
     `Unsqueeze -> Conv(dw) -> Transpose -> Transpose -> Conv(pw) -> Squeeze ->
     Add(bias [1, C, 1])`, BN folded by Keras.
   Each against its `--fold separable` result (canonical pairs), then the
   canonical pairs against `--fuse-separable --force` (one dense conv per block:
   256*256*33 multiply-adds per position instead of 256*33 + 256*256, 29x).
2. A sweep (unless --no-sweep) of fused-vs-pair stacks over channels and
   kernel sizes (single-threaded: steadier on a shared machine), so users can
   see where fusion pays on their CPU.

Every comparison runs both models in one process, interleaved (alternating
which goes first), and reports medians and the median of per-pair ratios; both
with onnxruntime's graph optimizations disabled (what the tests pin) and at its
default level (ORT_ENABLE_ALL, what users run; it fuses Conv+BN and Conv+Add
itself), single-threaded and with its default thread pool.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convrewrite.passes import PassOptions, run_passes  # noqa: E402

LEVELS = [("disabled", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
          ("all (default)", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)]


# ----------------------------------------------------------------- models


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name: str, *shape: int, fan_in: int) -> str:
        return self.const(name, (self.rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32))

    def vector(self, name: str, c: int, low: float, high: float) -> str:
        return self.const(name, self.rng.uniform(low, high, c).astype(np.float32))

    def node(self, op: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def batchnorm(self, x: str, out: str, c: int) -> str:
        params = [self.vector(f"{out}.scale", c, 0.5, 1.5), self.vector(f"{out}.bias", c, -0.3, 0.3),
                  self.vector(f"{out}.mean", c, -0.3, 0.3), self.vector(f"{out}.var", c, 0.5, 1.5)]
        return self.node("BatchNormalization", [x] + params, out, epsilon=1e-5)

    def model(self, x_shape: list[int], out: str, y_shape: list[int]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, y_shape)], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def torch_train_stack(blocks: int, c: int, k: int, length: int, seed: int = 0) -> onnx.ModelProto:
    """[dw conv (bias) -> BN -> pw conv (bias) -> BN -> + input -> ReLU] x blocks, as a training-mode export."""
    b = _Builder(seed)
    x = "x"
    for i in range(blocks):
        h = b.node("Conv", [x, b.weight(f"dw{i}.w", c, 1, k, fan_in=k), b.vector(f"dw{i}.b", c, -0.1, 0.1)],
                   f"dw{i}", group=c, kernel_shape=[k], pads=[k // 2, k // 2])
        h = b.batchnorm(h, f"bn{i}a", c)
        h = b.node("Conv", [h, b.weight(f"pw{i}.w", c, c, 1, fan_in=c), b.vector(f"pw{i}.b", c, -0.1, 0.1)],
                   f"pw{i}", kernel_shape=[1])
        h = b.batchnorm(h, f"bn{i}b", c)
        h = b.node("Add", [h, x], f"res{i}")
        x = b.node("Relu", [h], "y" if i == blocks - 1 else f"relu{i}")
    return b.model([1, c, length], x, [1, c, length])


def tf2onnx_noopt_stack(blocks: int, c: int, k: int, length: int, seed: int = 1) -> onnx.ModelProto:
    """Keras SeparableConv1D blocks in tf2onnx's optimizer-off 1-D-as-2-D form (NCW between blocks)."""
    b = _Builder(seed)
    axes = b.const("axes2", np.array([2], np.int64))
    x = "x"
    for i in range(blocks):
        h = b.node("Unsqueeze", [x, axes], f"expand{i}")
        h = b.node("Conv", [h, b.weight(f"dw{i}.w", c, 1, 1, k, fan_in=k)], f"dw{i}", group=c,
                   kernel_shape=[1, k], pads=[0, k // 2, 0, k // 2])
        h = b.node("Transpose", [h], f"to_nhwc{i}", perm=[0, 2, 3, 1])
        h = b.node("Transpose", [h], f"to_nchw{i}", perm=[0, 3, 1, 2])
        h = b.node("Conv", [h, b.weight(f"pw{i}.w", c, c, 1, 1, fan_in=c)], f"pw{i}", kernel_shape=[1, 1])
        h = b.node("Squeeze", [h, axes], f"squeeze{i}")
        h = b.node("Add", [h, b.const(f"bias{i}", b.rng.uniform(-0.1, 0.1, (1, c, 1)).astype(np.float32))],
                   f"bias_add{i}")
        h = b.node("Add", [h, x], f"res{i}")
        x = b.node("Relu", [h], "y" if i == blocks - 1 else f"relu{i}")
    return b.model([1, c, length], x, [1, c, length])


# ----------------------------------------------------------------- timing


def session(model: onnx.ModelProto, level: ort.GraphOptimizationLevel, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def latency_pair(before, after, feeds, level, threads: int, rounds: int, rtol: float) -> tuple[float, float, float]:
    """(median s before, median s after, median of per-pair after/before ratios), runs interleaved."""
    a, b = session(before, level, threads), session(after, level, threads)
    ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
    bound = 1e-4 + rtol * np.abs(ya)
    assert np.all(np.abs(ya - yb) <= bound), f"rewritten model differs by {float(np.max(np.abs(ya - yb)))}"
    for _ in range(2):  # warm up
        a.run(None, feeds)
        b.run(None, feeds)
    ta, tb, ratios = [], [], []
    for i in range(rounds):
        times = {}
        for sess in ((a, b) if i % 2 == 0 else (b, a)):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times[id(sess)] = time.perf_counter() - t0
        ta.append(times[id(a)])
        tb.append(times[id(b)])
        ratios.append(tb[-1] / ta[-1])
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def separable(model: onnx.ModelProto, **options):
    return run_passes(model, ["separable"], PassOptions(**options))


def header(before: str, after: str) -> None:
    print(f"{'model':44s} {'ORT opt level':14s} {'threads':>7s} {before + ' ms':>12s} {after + ' ms':>11s} "
          f"{'median ' + after + '/' + before:>22s}")


def row(label: str, level_name: str, threads: int, before: float, after: float, ratio: float) -> None:
    print(f"{label:44s} {level_name:14s} {threads or 'default':>7} {before * 1e3:12.2f} {after * 1e3:11.2f} "
          f"{ratio:22.3f}")


def bench_stack(args) -> None:
    blocks, c, k, length = 5, 256, 33, 1024
    feeds = {"x": np.random.default_rng(0).standard_normal((1, c, length)).astype(np.float32)}
    originals = [("torch train export (BN nodes)", torch_train_stack(blocks, c, k, length)),
                 ("tf2onnx noopt (Transposes, bias Add)", tf2onnx_noopt_stack(blocks, c, k, length))]
    print(f"QuartzNet-like stack: {blocks} blocks, {c} channels, kernel {k}, length {length}")
    print(f"\n1. canonical (--fold separable) vs original, {args.rounds} interleaved pairs per row")
    header("original", "canonical")
    canonical = None
    for label, model in originals:
        result = separable(model)
        assert result.counters["pairs_canonicalized"] == blocks, result.counters
        canonical = canonical or result.model
        for threads in (1, 0):
            for level_name, level in LEVELS:
                before, after, ratio = latency_pair(model, result.model, feeds, level, threads, args.rounds, 1e-5)
                row(label, level_name, threads, before, after, ratio)

    fused = separable(canonical, fuse_separable=True, force=True)
    assert fused.counters["pairs_fused"] == blocks, fused.counters
    macs = fused.records[0].details["macs_per_position"]
    print(f"\n2. fused (--fuse-separable --force) vs canonical pair, {args.fused_rounds} interleaved pairs per row; "
          f"multiply-adds per output position: pair {macs['pair']}, fused {macs['fused']} "
          f"({macs['fused'] / macs['pair']:.1f}x)")
    header("pair", "fused")
    for threads in (1, 0):
        for level_name, level in LEVELS:
            before, after, ratio = latency_pair(canonical, fused.model, feeds, level, threads, args.fused_rounds, 1e-4)
            row("QuartzNet-like stack", level_name, threads, before, after, ratio)


def bench_sweep(args) -> None:
    print(f"\n3. where fusion pays: 5 canonical pairs (torch form) vs fused, length 1024, ORT default level, "
          f"1 thread, {args.sweep_rounds} interleaved pairs each")
    print(f"{'channels':>8s} {'kernel':>6s} {'MACs fused/pair':>16s} {'pair ms':>9s} {'fused ms':>9s} "
          f"{'median fused/pair':>18s}")
    for c in (32, 64, 256):
        for k in (3, 9, 33):
            canonical = separable(torch_train_stack(5, c, k, 1024, seed=c + k)).model
            fused = separable(canonical, fuse_separable=True, force=True)
            macs = fused.records[0].details["macs_per_position"]
            feeds = {"x": np.random.default_rng(0).standard_normal((1, c, 1024)).astype(np.float32)}
            rounds = args.sweep_rounds if c * k < 256 * 33 else max(3, args.sweep_rounds // 4)
            before, after, ratio = latency_pair(canonical, fused.model, feeds, LEVELS[1][1], 1, rounds, 1e-4)
            print(f"{c:8d} {k:6d} {macs['fused'] / macs['pair']:16.2f} {before * 1e3:9.2f} {after * 1e3:9.2f} "
                  f"{ratio:18.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--fused-rounds", type=int, default=8)
    parser.add_argument("--sweep-rounds", type=int, default=20)
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}, CPUExecutionProvider, {os.cpu_count()} CPU cores visible")
    bench_stack(args)
    if not args.no_sweep:
        bench_sweep(args)


if __name__ == "__main__":
    main()
