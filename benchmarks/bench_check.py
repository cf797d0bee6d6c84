"""Benchmark `convrewrite check` against Polygraphy's two-run comparison on a big Conv1d chain (issue 13).

Builds, in a temporary folder, a float32 chain of N x [Conv1d(C, C, 3, pads 1,1) + Relu] whose
weights come to about --size-mb (input x [1, C, "L"], dynamic length), and its `--to-2d`
rewrite (`convrewrite rewrite IN -o OUT --to-2d`). Then, each command in a fresh process whose
wall time and peak RSS are measured (`os.wait4`: the child's own ru_maxrss):

  (a) convrewrite check ORIG CAND --shape x=1xCxL --providers cpu
  (b) polygraphy run ORIG --onnxrt --input-shapes x:[1,C,L] --save-inputs in.json --save-outputs out.json
      polygraphy run CAND --onnxrt --load-inputs in.json --load-outputs out.json
      (time: the sum of both runs; peak: the larger of the two)

--repeat rounds (default 3) run (a) and (b) interleaved; the fastest round's time and the
largest peak count.

Both use onnxruntime's CPU provider at the same graph optimization level (--ort-opt, default
`disabled`, convrewrite's default; Polygraphy is given the matching --graph-optimization-level)
and the same input shape. Prints the model file size, each time and peak, the ratios and the
issue's goals: convrewrite no slower than Polygraphy; its peak <= 2.5 x the model file.
Polygraphy is installed with `pip install polygraphy` if missing; if that fails, only
convrewrite is measured. Not a test: the numbers depend on the machine.

    python benchmarks/bench_check.py [--size-mb 600] [--length 64] [--ort-opt disabled] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BIN = Path(sys.executable).parent
GOAL_TIME_RATIO = 1.0  # convrewrite check time / Polygraphy's two runs
GOAL_PEAK_RATIO = 2.5  # convrewrite check peak RSS / model file size
ORT_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC",
              "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL"}


def conv_chain(size_mb: float, channels: int, seed: int = 0) -> onnx.ModelProto:
    """N x [Conv1d(C, C, 3, pads 1,1) + Relu], weights ~size_mb MB; x [1, C, "L"] -> y [1, C, "L"]."""
    layer_bytes = channels * channels * 3 * 4 + channels * 4
    layers = max(1, round(size_mb * 1e6 / layer_bytes))
    rng = np.random.default_rng(seed)
    scale = np.float32((2.0 / (channels * 3)) ** 0.5)  # He init: activations stay O(1) through Relu
    nodes, inits = [], []
    h = "x"
    for i in range(layers):
        w = rng.standard_normal((channels, channels, 3), dtype=np.float32) * scale
        b = rng.standard_normal(channels, dtype=np.float32) * np.float32(0.01)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        del w
        out = "y" if i == layers - 1 else f"c{i}"
        nodes.append(helper.make_node("Conv", [h, f"w{i}", f"b{i}"], [out], name=f"conv{i}",
                                      kernel_shape=[3], pads=[1, 1]))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            h = f"r{i}"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "L"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, "L"])
    graph = helper.make_graph(nodes, "conv1d_chain", [x], [y], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8,
                             producer_name="convrewrite bench_check.py")


# Runs argv[2:] and writes "wall_s peak_kib exit_code" to argv[1]. A fresh small interpreter
# starts each command: on Linux a child's ru_maxrss starts at its parent's RSS at fork time (the
# copied mm's high-water mark survives exec), so forking from this process, which held the
# built model, would inflate every peak.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:], stdout=sys.stdout, stderr=subprocess.STDOUT)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as f:
    f.write(f"{wall} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, int, str]:
    """Run cmd in a fresh process: (wall s, peak RSS MB of that process, exit code, output tail)."""
    log, result = cwd / "log.txt", cwd / "measure.txt"
    with open(log, "wb") as out:
        subprocess.run([sys.executable, "-c", LAUNCHER, str(result), *cmd], cwd=cwd, stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    wall, kib, rc = result.read_text().split()
    tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    return float(wall), int(kib) / 1024, int(rc), tail  # ru_maxrss is in KiB on Linux


def polygraphy_exe() -> Path | None:
    exe = BIN / "polygraphy"
    if not exe.exists():
        print("polygraphy not installed: pip install polygraphy")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "polygraphy"], check=False)
    return exe if exe.exists() else None


def last_line(tail: str) -> str:
    """The last output line, without the command line Polygraphy repeats there."""
    return tail.splitlines()[-1].split(" | Command: ")[0] if tail else ""


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=600.0, help="weights of the chain, MB (default 600)")
    parser.add_argument("--channels", type=int, default=512, help="C of every Conv1d (default 512)")
    parser.add_argument("--length", type=int, default=64, help="input length L both tools use (default 64)")
    parser.add_argument("--ort-opt", choices=sorted(ORT_LEVELS), default="disabled",
                        help="onnxruntime graph optimizations for both tools (default disabled)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the fastest time counts (default 3)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the models and logs here and keep them")
    args = parser.parse_args()

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="bench_check_"))
    try:
        return run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> int:
    orig, cand = work / "orig.onnx", work / "cand_2d.onnx"
    c, length = args.channels, args.length
    t = time.perf_counter()
    model = conv_chain(args.size_mb, c)
    layers = sum(n.op_type == "Conv" for n in model.graph.node)
    onnx.save(model, orig)
    del model
    size_mb = orig.stat().st_size / 1e6
    print(f"model: {layers} x [Conv1d({c}, {c}, 3) + Relu], x [1, {c}, L], L = {length}: "
          f"{size_mb:.1f} MB ({time.perf_counter() - t:.1f} s to build)")
    wall, peak, rc, tail = measure([str(BIN / "convrewrite"), "-q", "rewrite", str(orig), "-o", str(cand), "--to-2d"], work)
    if rc != 0:
        print(f"convrewrite rewrite --to-2d failed (exit {rc}):\n{tail}")
        return 1
    print(f"candidate: convrewrite rewrite --to-2d: {cand.stat().st_size / 1e6:.1f} MB, {wall:.2f} s, peak {peak:.0f} MB")
    print(f"onnxruntime: CPU provider, graph optimizations {args.ort_opt} for both tools; "
          f"{args.repeat} interleaved rounds: time = the fastest, peak = the largest\n")

    poly = polygraphy_exe()
    if poly is None:
        print("polygraphy could not be installed: measuring convrewrite only")
    check_cmd = [str(BIN / "convrewrite"), "check", str(orig), str(cand), "--shape", f"x=1x{c}x{length}",
                 "--providers", "cpu", "--ort-opt", args.ort_opt]
    common = ["--onnxrt", "--providers", "cpu", "--graph-optimization-level", ORT_LEVELS[args.ort_opt]]
    save_cmd = [str(poly), "run", str(orig), *common, "--input-shapes", f"x:[1,{c},{length}]",
                "--save-inputs", "in.json", "--save-outputs", "out.json"]
    load_cmd = [str(poly), "run", str(cand), *common, "--load-inputs", "in.json", "--load-outputs", "out.json"]
    one_cmd = check_cmd + ["--draws", "normal"]  # one input set: the work Polygraphy does
    failed = False
    cr_walls, cr_peaks, pg_walls, pg_peaks, one_walls, one_peaks = [], [], [], [], [], []
    for r in range(1, args.repeat + 1):
        wall, peak, rc, tail = measure(check_cmd, work)
        cr_walls.append(wall)
        cr_peaks.append(peak)
        print(f"round {r}: convrewrite check: exit {rc}, {wall:.2f} s, peak {peak:.0f} MB: {last_line(tail)}")
        failed |= rc != 0
        wall, peak, rc, tail = measure(one_cmd, work)
        one_walls.append(wall)
        one_peaks.append(peak)
        print(f"round {r}: convrewrite check --draws normal: exit {rc}, {wall:.2f} s, peak {peak:.0f} MB: "
              f"{last_line(tail)}")
        failed |= rc != 0
        if poly is None:
            continue
        w1, p1, rc1, tail1 = measure(save_cmd, work)
        w2, p2, rc2, tail2 = measure(load_cmd, work)
        pg_walls.append(w1 + w2)
        pg_peaks.append(max(p1, p2))
        print(f"round {r}: polygraphy run ORIG --save-*: exit {rc1}, {w1:.2f} s, peak {p1:.0f} MB: {last_line(tail1)}")
        print(f"round {r}: polygraphy run CAND --load-*: exit {rc2}, {w2:.2f} s, peak {p2:.0f} MB: {last_line(tail2)}")
        failed |= rc1 != 0 or rc2 != 0
    cr_wall, cr_peak = min(cr_walls), max(cr_peaks)
    one_wall, one_peak = min(one_walls), max(one_peaks)
    pg_wall, pg_peak = (min(pg_walls), max(pg_peaks)) if pg_walls else (None, None)

    print(f"\n| | wall s | peak RSS MB | peak / model file ({size_mb:.0f} MB) |")
    print("|---|---|---|---|")
    print(f"| convrewrite check (3 input sets: normal, wide, special) | {cr_wall:.2f} | {cr_peak:.0f} | "
          f"{cr_peak / size_mb:.2f} |")
    print(f"| convrewrite check --draws normal (1 input set) | {one_wall:.2f} | {one_peak:.0f} | "
          f"{one_peak / size_mb:.2f} |")
    if pg_wall is not None:
        print(f"| polygraphy, two runs | {pg_wall:.2f} | {pg_peak:.0f} | {pg_peak / size_mb:.2f} |")
    print()
    if pg_wall is not None:
        ratio = one_wall / pg_wall
        print(f"time convrewrite --draws normal / polygraphy (same work: one input set): {ratio:.2f} "
              f"(goal <= {GOAL_TIME_RATIO:.1f}): {verdict(ratio <= GOAL_TIME_RATIO)}")
        print(f"time convrewrite default (3 input sets) / polygraphy (1): {cr_wall / pg_wall:.2f}")
        print(f"peak convrewrite / polygraphy: {cr_peak / pg_peak:.2f}")
    else:
        print("time convrewrite / polygraphy: not measured (no polygraphy)")
    ratio = max(cr_peak, one_peak) / size_mb
    print(f"peak convrewrite / model file: {ratio:.2f} (goal <= {GOAL_PEAK_RATIO}): {verdict(ratio <= GOAL_PEAK_RATIO)}")
    if failed:
        print("a command failed (see the exit codes above): its numbers do not measure a comparison")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
