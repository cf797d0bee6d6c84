"""Benchmark `convrewrite rewrite --to-2d` on a synthetic Conv1D chain against onnx.load + onnx.save.

Builds chains of N Conv1D(64 -> 64, k3, pads 1) + Relu layers (5000 layers is
about 250 MB of weights), then measures, in one run and in fresh processes:

- baseline: a Python process doing `onnx.load` + `onnx.save` of the model;
- rewrite: the whole CLI process, `python -m convrewrite -q rewrite IN -o OUT --to-2d`
  (load, input check, pass, output check, atomic save);
- the stages of the rewrite inside one process, to show where the time goes.

Each measurement is repeated (`--repeat`, default 3) and the fastest run kept,
which is the least disturbed by other work on the machine. Prints the ratios
the issue asks for: rewrite / baseline time (target <= 1.5), time growth from
1000 to 5000 layers (target <= 6), peak memory of the rewrite process / model
size (target <= 2.5). Not a test: the numbers depend on the machine.

    python benchmarks/bench_rank.py [--layers 1000 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

BASELINE = "import sys, onnx; onnx.save(onnx.load(sys.argv[1]), sys.argv[2])"

STAGES = r"""
import json, sys, time
t0 = time.perf_counter()
import convrewrite
from convrewrite.model import load_with_info, save, validate
from convrewrite.passes import expand_pass_names
expand_pass_names(["to-2d"])
t1 = time.perf_counter()
loaded = load_with_info(sys.argv[1])
t2 = time.perf_counter()
result = convrewrite.rewrite(loaded.model, passes=["to-2d"], copy=False)
t3 = time.perf_counter()
validate(result.model, "out", output=True)
t4 = time.perf_counter()
save(result.model, sys.argv[2], check=False)
t5 = time.perf_counter()
ops = [n.op_type for n in result.model.graph.node]
print(json.dumps({"import": t1 - t0, "load_and_check": t2 - t1, "pass": t3 - t2, "output_check": t4 - t3,
                  "serialize_and_write": t5 - t4, "unsqueeze": ops.count("Unsqueeze"), "squeeze": ops.count("Squeeze")}))
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


def run_process(args: list[str]) -> tuple[float, int]:
    """Wall time and peak resident memory (bytes) of one child process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    os.sync()  # start each run with no dirty pages left by the previous one (not timed)
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, _, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = 0
    return elapsed, usage.ru_maxrss * 1024


def measure(layers: int, folder: Path, repeat: int) -> dict:
    src = folder / f"chain{layers}.onnx"
    # Built in a child: a forked process starts with its parent's peak memory,
    # so the parent must never hold a model for the children's peaks to be theirs.
    build = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_rank, onnx; " \
            f"onnx.save(bench_rank.build_chain({layers}), {str(src)!r})"
    subprocess.run([sys.executable, "-c", build], check=True)
    size = src.stat().st_size
    base, cli = [], []
    for i in range(repeat):  # interleaved, so drifting machine load hits both alike
        base.append(run_process([sys.executable, "-c", BASELINE, str(src), str(folder / f"base{i}.onnx")]))
        cli.append(run_process([sys.executable, "-m", "convrewrite", "-q", "rewrite", str(src), "-o",
                                str(folder / f"out{i}.onnx"), "--to-2d"]))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    os.sync()
    stages = [json.loads(subprocess.run([sys.executable, "-c", STAGES, str(src), str(folder / "s.onnx")], env=env,
                                        check=True, capture_output=True, text=True).stdout) for _ in range(repeat)]
    ops = json.loads(subprocess.run(
        [sys.executable, "-c", "import sys, json, onnx; print(json.dumps([n.op_type for n in onnx.load(sys.argv[1]).graph.node]))",
         str(folder / "out0.onnx")], check=True, capture_output=True, text=True).stdout)
    return {
        "size": size,
        "baseline": min(t for t, _ in base),
        "baseline_rss": min(m for _, m in base),
        "rewrite": min(t for t, _ in cli),
        "rewrite_rss": min(m for _, m in cli),
        "stages": min(stages, key=lambda s: s["pass"]),
        "unsqueeze": ops.count("Unsqueeze"),
        "squeeze": ops.count("Squeeze"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.setrecursionlimit(1000)  # the pass must not need more than Python's default
    with tempfile.TemporaryDirectory(prefix="bench_rank_", dir=os.environ.get("TMPDIR")) as tmp:
        results = {n: measure(n, Path(tmp), args.repeat) for n in args.layers}
    for n, r in results.items():
        mb = r["size"] / 2**20
        s = r["stages"]
        print(f"{n} layers, {mb:.0f} MB (best of {args.repeat}):")
        print(f"  onnx.load + onnx.save process        {r['baseline']:.2f} s, peak {r['baseline_rss'] / r['size']:.2f}x size")
        print(f"  convrewrite rewrite --to-2d process  {r['rewrite']:.2f} s, peak {r['rewrite_rss'] / r['size']:.2f}x size")
        print(f"    stages: import {s['import']:.2f}, load+check {s['load_and_check']:.2f}, pass {s['pass']:.2f}, "
              f"output check {s['output_check']:.2f}, serialize+write {s['serialize_and_write']:.2f}")
        print(f"  Unsqueeze {r['unsqueeze']}, Squeeze {r['squeeze']} in the output")
        print(f"  time ratio rewrite / (load + save)   {r['rewrite'] / r['baseline']:.2f}  (target <= 1.5)")
        print(f"  peak memory / model size            {r['rewrite_rss'] / r['size']:.2f}  (target <= 2.5)")
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        growth = results[hi]["rewrite"] / results[lo]["rewrite"]
        pass_growth = results[hi]["stages"]["pass"] / results[lo]["stages"]["pass"]
        print(f"growth {lo} -> {hi} layers: whole process {growth:.2f}x, pass alone {pass_growth:.2f}x (target <= 6x)")


if __name__ == "__main__":
    main()
