"""Benchmark the causal fold: model latency before/after, and the pass's own time.

Run:  python benchmarks/bench_causal.py [--rounds N] [--layers 1000,2000,5000] [--repeats N] [--part latency|pass]
      python benchmarks/bench_causal.py --smoke   (tiny models and chains: checks the script works, in seconds)

1. onnxruntime CPU latency of causal TCNs in the Pad -> Conv form (as
   TorchScript and tf2onnx export them), before and after `--fold causal`,
   measured side by side in one run (runs interleaved, medians compared):
   8 dense layers of 64 channels at length 4096, and 8 depthwise layers of 256
   channels at length 1024 (kernel 3, dilations 1, 2, 4, ... ; ReLU between).
   Both with onnxruntime's graph optimizations disabled (what the tests pin)
   and at its default level (ORT_ENABLE_ALL, what users run; it has its own
   Pad-into-Conv fusion), single-threaded and with the default thread pool.
2. The pass's time on a long Pad -> Conv chain (the pass alone:
   `run_passes(model, ["causal"], copy_model=False)`, which includes the shape
   inference every pipeline starts with; that inference is also timed on its
   own), against onnxoptimizer's `fuse_pad_into_conv` on the same model when
   onnxoptimizer is installed. It is not a dependency of convrewrite: install
   it only in the environment that runs this benchmark, e.g.
       python -m venv /tmp/bench && . /tmp/bench/bin/activate
       pip install -e . onnxoptimizer
   Without it that column says "not installed" and the rest runs as usual.

Targets (from the issue): the folded model is never slower (median
after/before <= 1.02, marked "SLOWER" otherwise), and the pass stays linear
and well under a second at 5000 layers (CPU us/layer roughly flat across
the chain lengths; the last line says whether both hold).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from convrewrite import shapes  # noqa: E402
from convrewrite.passes import run_passes  # noqa: E402


def causal_tcn(layers: int, channels: int, length: int, depthwise: bool, seed: int = 0) -> onnx.ModelProto:
    """x -> [Pad(d*(k-1), 0) -> Conv(k3, dilation d) -> Relu] * layers, opset 13, pads as initializers."""
    rng = np.random.default_rng(seed)
    k = 3
    nodes, inits = [], []
    prev = "x"
    for i in range(layers):
        d = 2 ** (i % 4)
        inits.append(numpy_helper.from_array(np.array([0, 0, d * (k - 1), 0, 0, 0], np.int64), f"pads{i}"))
        w_shape = (channels, 1, k) if depthwise else (channels, channels, k)
        scale = 1.0 / np.sqrt(w_shape[1] * k)
        inits.append(numpy_helper.from_array((rng.standard_normal(w_shape) * scale).astype(np.float32), f"w{i}"))
        inits.append(numpy_helper.from_array((rng.standard_normal(channels) * 0.1).astype(np.float32), f"b{i}"))
        nodes.append(helper.make_node("Pad", [prev, f"pads{i}"], [f"p{i}"], name=f"pad{i}", mode="constant"))
        nodes.append(helper.make_node("Conv", [f"p{i}", f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}",
                                      kernel_shape=[k], dilations=[d], group=channels if depthwise else 1))
        out = "y" if i == layers - 1 else f"r{i}"
        nodes.append(helper.make_node("Relu", [f"c{i}"], [out], name=f"relu{i}"))
        prev = out
    graph = helper.make_graph(
        nodes, "tcn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, length])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, length])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def pad_conv_chain(layers: int, channels: int = 4, length: int = 64) -> onnx.ModelProto:
    """A long Pad -> Conv chain for timing the pass (small weights, one shared pads initializer each)."""
    rng = np.random.default_rng(1)
    nodes = []
    inits = [numpy_helper.from_array(np.array([0, 0, 2, 0, 0, 0], np.int64), "pads"),
             numpy_helper.from_array((rng.standard_normal((channels, channels, 3)) * 0.3).astype(np.float32), "w")]
    prev = "x"
    for i in range(layers):
        nodes.append(helper.make_node("Pad", [prev, "pads"], [f"p{i}"], name=f"pad{i}", mode="constant"))
        out = "y" if i == layers - 1 else f"c{i}"
        nodes.append(helper.make_node("Conv", [f"p{i}", "w"], [out], name=f"conv{i}", kernel_shape=[3]))
        prev = out
    graph = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, length])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, length])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def session(model: onnx.ModelProto, level: ort.GraphOptimizationLevel, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def latency_pair(before, after, feeds, level, threads: int, rounds: int) -> tuple[float, float, float]:
    """(median s before, median s after, median of per-pair after/before ratios).

    Each round runs both models back to back, alternating which goes first, so
    load changes on a shared machine hit both alike; the median of the
    per-pair ratios is the number to read.
    """
    a, b = session(before, level, threads), session(after, level, threads)
    ya, yb = a.run(None, feeds)[0], b.run(None, feeds)[0]
    err = float(np.max(np.abs(ya - yb)))
    assert err <= 1e-4, f"folded model differs by {err}"
    for _ in range(5):  # warm up
        a.run(None, feeds)
        b.run(None, feeds)
    ta, tb, ratios = [], [], []
    for i in range(rounds):
        order = (a, b) if i % 2 == 0 else (b, a)
        times = {}
        for sess in order:
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times[id(sess)] = time.perf_counter() - t0
        ta.append(times[id(a)])
        tb.append(times[id(b)])
        ratios.append(tb[-1] / ta[-1])
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


MAX_RATIO = 1.02  # the folded model must never be slower than this
# (layers, channels, length) of the two TCNs the issue names, and tiny ones for --smoke.
SIZES = {"full": ((8, 64, 4096), (8, 256, 1024)), "smoke": ((8, 8, 256), (8, 16, 128))}


def bench_latency(rounds: int, sizes: str = "full") -> None:
    print(f"onnxruntime {ort.__version__}, CPUExecutionProvider, {rounds} interleaved pairs per row")
    print(f"{'model':52s} {'ORT opt level':14s} {'threads':>7s} {'before ms':>10s} {'after ms':>9s} "
          f"{'median after/before':>20s}")
    (dn, dc, dl), (wn, wc, wl) = SIZES[sizes]
    cases = [
        (f"dense TCN {dn} x Conv({dc}->{dc}, k3), L={dl}", causal_tcn(dn, dc, dl, depthwise=False), (1, dc, dl)),
        (f"depthwise TCN {wn} x Conv({wc}, group {wc}, k3), L={wl}", causal_tcn(wn, wc, wl, depthwise=True),
         (1, wc, wl)),
    ]
    levels = [("disabled", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
              ("all (default)", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)]
    for label, model, shape in cases:
        result = run_passes(model, ["causal"])
        assert result.counters.get("pads_folded") == shape_layers(model), result.counters
        assert not any(n.op_type == "Pad" for n in result.model.graph.node)
        feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        for threads in (1, 0):
            for level_name, level in levels:
                before, after, ratio = latency_pair(model, result.model, feeds, level, threads, rounds)
                verdict = "" if ratio <= MAX_RATIO else f"  SLOWER (> {MAX_RATIO})"
                print(f"{label:52s} {level_name:14s} {threads or 'default':>7} {before * 1e3:10.2f} "
                      f"{after * 1e3:9.2f} {ratio:20.3f}{verdict}")


def shape_layers(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "Pad" for n in model.graph.node)


def best_of(repeats: int, fn) -> tuple[float, float, object]:
    """Shortest wall and CPU time of `repeats` calls (as timeit does: the rest is the machine's noise).

    CPU time (this process) is reported too: on a shared machine the wall time
    also counts other processes' turns on the cores.
    """
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu, out


def bench_pass_time(layer_counts: list[int], repeats: int) -> None:
    try:
        import onnxoptimizer
    except ImportError:
        onnxoptimizer = None
        print("\nonnxoptimizer is not installed: skipping its fuse_pad_into_conv comparison "
              "(install it only in the benchmark's environment: see this script's docstring)")
    print(f"\nPad -> Conv chain, best of {repeats} (onnxoptimizer: one run above 2000 layers); seconds as wall / CPU")
    print(f"{'layers':>7s} {'causal pass':>14s} {'of which shape inference':>25s} {'CPU us/layer':>13s} "
          f"{'onnxoptimizer fuse_pad_into_conv':>33s} {'ratio (CPU)':>12s}")
    run_passes(pad_conv_chain(10), ["causal"])  # warm up (imports, first-call costs) outside the timings
    per_layer: list[tuple[int, float]] = []
    for layers in layer_counts:
        model = pad_conv_chain(layers)
        infer_wall, infer_cpu, _ = best_of(repeats, lambda: shapes.infer(model))
        copies = [onnx.ModelProto() for _ in range(repeats)]
        for work in copies:
            work.CopyFrom(model)  # the copies are made outside the timed region
        results = []
        pass_wall, pass_cpu, _ = best_of(
            repeats, lambda: results.append(run_passes(copies[len(results)], ["causal"], copy_model=False)))
        assert all(r.counters == {"pads_folded": layers} for r in results)
        other, ratio = ("-", "-") if onnxoptimizer is not None else ("not installed", "-")
        if onnxoptimizer is not None:
            other_wall, other_cpu, optimized = best_of(
                repeats if layers <= 2000 else 1, lambda: onnxoptimizer.optimize(model, ["fuse_pad_into_conv"]))
            left = sum(n.op_type == "Pad" for n in optimized.graph.node)
            other = f"{other_wall:.3f} / {other_cpu:.3f}" + (f" ({left} Pads left)" if left else "")
            ratio = f"{other_cpu / pass_cpu:.1f}x"
        print(f"{layers:7d} {pass_wall:6.3f} / {pass_cpu:5.3f} {infer_wall:14.3f} / {infer_cpu:5.3f} "
              f"{pass_cpu / layers * 1e6:13.1f} {other:>33s} {ratio:>12s}")
        per_layer.append((layers, pass_cpu))
    (n0, t0), (n1, t1) = min(per_layer), max(per_layer)
    growth = (t1 / n1) / (t0 / n0)
    linear = len(per_layer) < 2 or growth < 2.0
    print(f"pass CPU time per layer grows {growth:.2f}x from {n0} to {n1} layers "
          f"({'linear' if linear else 'NOT linear'}); {t1:.3f} s CPU at {n1} layers"
          + ("" if n1 < 5000 else (" (under 1 s)" if t1 < 1.0 else " (NOT under 1 s)")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--layers", default="1000,2000,5000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny TCNs, 3 rounds, 50- and 200-layer chains: only checks that the script works")
    parser.add_argument("--part", choices=["latency", "pass", "all"], default="all",
                        help="run only the model latency part or only the pass-time part")
    args = parser.parse_args()
    if args.smoke:
        print("--smoke: tiny sizes; the timings (and any SLOWER mark) are noise, not results")
    if args.part in ("latency", "all"):
        bench_latency(min(args.rounds, 3) if args.smoke else args.rounds, "smoke" if args.smoke else "full")
    if args.part in ("pass", "all"):
        if args.smoke:
            bench_pass_time([50, 200], 1)
        else:
            bench_pass_time([int(v) for v in args.layers.split(",")], args.repeats)


if __name__ == "__main__":
    main()
