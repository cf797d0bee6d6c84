"""Benchmark `to-2d` on a synthetic Conv1D chain: whole process vs onnx.load + onnx.save.

Builds chains of N Conv1D(64 -> 64, k3, pads 1) + Relu layers (5000 layers is
about 250 MB of weights), then measures in fresh subprocesses, in one run:

- baseline: `onnx.load` + `onnx.save` of the model;
- rewrite: `convrewrite.io.load_with_info` + `convrewrite.rewrite(["to-2d"], copy=False)`
  + `convrewrite.io.save` (which runs onnx.checker with full_check before writing),
  with the time of each stage and the peak memory (ru_maxrss) of the subprocess.

Prints the ratios the issue asks for: rewrite / baseline time (target <= 1.5),
time growth from 1000 to 5000 layers (target <= 6), peak memory / model size
(target <= 2.5). Not a test: numbers depend on the machine.

    python benchmarks/bench_rank.py [--layers 1000 5000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD_BASELINE = r"""
import json, resource, sys, time
import onnx
src, dst = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
m = onnx.load(src)
t1 = time.perf_counter()
onnx.save(m, dst)
t2 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "save": t2 - t1, "total": t2 - t0,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

CHILD_REWRITE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import convrewrite
from convrewrite.io import load_with_info, save
from convrewrite.passes import PassContext, PassOptions
src, dst = sys.argv[1], sys.argv[2]
t1 = time.perf_counter()
loaded = load_with_info(src)
t2 = time.perf_counter()
result = convrewrite.rewrite(loaded.model, passes=["to-2d"], copy=False)
t3 = time.perf_counter()
save(result.model, dst)
t4 = time.perf_counter()
ops = [n.op_type for n in result.model.graph.node]
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "rewrite": t3 - t2, "save": t4 - t3,
                  "total": t4 - t1, "unsqueeze": ops.count("Unsqueeze"), "squeeze": ops.count("Squeeze"),
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

CHILD_PASS_ONLY = r"""
import json, sys, time
import onnx
from convrewrite.passes import PassContext, PassOptions, REGISTRY, expand_pass_names
m = onnx.load(sys.argv[1])
expand_pass_names(["to-2d"])
t0 = time.perf_counter()
onnx.checker.check_model(m)
t1 = time.perf_counter()
ctx = PassContext(m, PassOptions())
t2 = time.perf_counter()
REGISTRY["to-2d"]().run(ctx)
t3 = time.perf_counter()
data = m.SerializeToString()
t4 = time.perf_counter()
onnx.checker.check_model(data, full_check=True)
t5 = time.perf_counter()
print(json.dumps({"load_check": t1 - t0, "shape_inference": t2 - t1, "pass": t3 - t2,
                  "serialize": t4 - t3, "save_check": t5 - t4}))
"""


def build_chain(layers: int, channels: int = 64, kernel: int = 3, length: int = 256):
    """A Conv1D + Relu chain with random float32 weights (onnx.helper, opset 13)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = "x"
    for i in range(layers):
        w = rng.standard_normal((channels, channels, kernel), dtype=np.float32) * np.float32(0.05)
        inits.append(numpy_helper.from_array(w, f"conv{i}.weight"))
        inits.append(numpy_helper.from_array(np.zeros(channels, np.float32), f"conv{i}.bias"))
        nodes.append(helper.make_node("Conv", [x, f"conv{i}.weight", f"conv{i}.bias"], [f"conv{i}"],
                                      name=f"conv{i}", kernel_shape=[kernel], pads=[1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"relu{i}"))
        x = f"relu{i}"
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, length])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, length])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def child(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(layers: int, folder: Path, repeat: int) -> dict:
    import onnx

    src = folder / f"chain{layers}.onnx"
    onnx.save(build_chain(layers), src)
    size = src.stat().st_size
    best: dict = {}
    for _ in range(repeat):
        base = child(CHILD_BASELINE, str(src), str(folder / "base.onnx"))
        rew = child(CHILD_REWRITE, str(src), str(folder / "out.onnx"))
        only = child(CHILD_PASS_ONLY, str(src))
        if not best or rew["total"] < best["rewrite"]["total"]:
            best = {"baseline": base, "rewrite": rew, "pass_only": only}
    best["size"] = size
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_rank_") as tmp:
        results = {n: measure(n, Path(tmp), args.repeat) for n in args.layers}
    for n, r in results.items():
        b, w, p = r["baseline"], r["rewrite"], r["pass_only"]
        mb = r["size"] / 2**20
        print(f"{n} layers, {mb:.0f} MB:")
        print(f"  onnx.load + onnx.save        {b['total']:.2f} s (load {b['load']:.2f}, save {b['save']:.2f})")
        print(f"  load + to-2d + save (checked) {w['total']:.2f} s (load {w['load']:.2f}, rewrite {w['rewrite']:.2f}, "
              f"save {w['save']:.2f})")
        print(f"    of which: checker on load {p['load_check']:.2f}, shape inference {p['shape_inference']:.2f}, "
              f"pass alone {p['pass']:.2f}, serialize {p['serialize']:.2f}, checker(full) on save {p['save_check']:.2f}")
        print(f"  Unsqueeze {w['unsqueeze']}, Squeeze {w['squeeze']}")
        print(f"  time ratio rewrite / (load + save)  {w['total'] / b['total']:.2f}  (target <= 1.5)")
        print(f"  peak memory / model size           {w['maxrss'] / r['size']:.2f}  (target <= 2.5; "
              f"baseline process {b['maxrss'] / r['size']:.2f})")
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        growth = results[hi]["rewrite"]["total"] / results[lo]["rewrite"]["total"]
        pass_growth = results[hi]["pass_only"]["pass"] / results[lo]["pass_only"]["pass"]
        print(f"growth {lo} -> {hi} layers: whole process {growth:.2f}x, pass alone {pass_growth:.2f}x "
              f"(target <= {hi / lo * 1.2:.0f}x)")


if __name__ == "__main__":
    main()
