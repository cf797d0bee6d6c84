"""Rewrite speed and memory of this tree against another git revision, measured in one run.

Why: the rule engine (issue 15) reshaped every pass; this says whether it cost
time or memory. For each workload it runs `convrewrite.rewrite` in a fresh
child process per tree (this checkout, and REF extracted with `git archive`
into a temp folder), interleaved, best of `--repeat`, and prints the pass time
(in-process, model already loaded; wall and CPU time: on a shared machine the
CPU time is the steadier), the child's peak RSS, and after / before.

Workloads: the 5000-layer Conv1D chain of bench_rank.py under --to-2d,
--fold causal and --fold all; the 10^4-node wide DAG of bench_wide_dag.py
under fold-all + to-2d; a 10^5-node chain (50 000 narrow layers) under
--to-2d and --fold all; with --million also a 10^6-node chain (500 000 narrow
layers) under --to-2d (slow to build; for where its time goes, run
profile_to_2d.py --layers 500000).

    python benchmarks/bench_engine.py [--ref main] [--repeat 3] [--layers 5000] [--dag 10000] [--only WORD]
                                      [--million]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import gc, json, resource, sys, time
import onnx, convrewrite
passes = sys.argv[2].split(",")
model = onnx.load(sys.argv[1])
gc.collect()
t, c = time.perf_counter(), time.process_time()
result = convrewrite.rewrite(model, passes, copy=False)
dt, dc = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"pass": dt, "cpu": dc, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "rewritten": len(result.rewritten)}))
"""

WORKLOADS = [
    ("5000-layer chain --to-2d", "chain", "to-2d"),
    ("5000-layer chain --fold causal", "chain", "causal"),
    ("5000-layer chain --fold all", "chain", "causal,dilated,separable"),
    ("wide DAG fold-all + to-2d", "dag", "causal,dilated,separable,to-2d"),
    ("10^5-node chain --to-2d", "big", "to-2d"),
    ("10^5-node chain --fold all", "big", "causal,dilated,separable"),
]
MILLION = [("10^6-node chain --to-2d", "million", "to-2d")]  # with --million


def build(folder: Path, layers: int, dag: int, million: bool = False) -> dict[str, Path]:
    code = (f"import sys; sys.path[:0] = [{str(ROOT / 'benchmarks')!r}, {str(ROOT / 'tests')!r}]; import onnx, bench_rank; "
            f"from big_models import wide_dag; onnx.save(bench_rank.build_chain({layers}), {str(folder / 'chain.onnx')!r}); "
            f"onnx.save(wide_dag({dag}), {str(folder / 'dag.onnx')!r}); "
            f"onnx.save(bench_rank.build_chain(50000, channels=8), {str(folder / 'big.onnx')!r})"
            + (f"; onnx.save(bench_rank.build_chain(500000, channels=8), {str(folder / 'million.onnx')!r})"
               if million else ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return {"chain": folder / "chain.onnx", "dag": folder / "dag.onnx", "big": folder / "big.onnx",
            "million": folder / "million.onnx"}


def run(tree: Path, model: Path, passes: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run([sys.executable, "-c", CHILD, str(model), passes], env=env, cwd=str(tree),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="main", help="the 'before' revision (git ref) or a folder holding a tree")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layers", type=int, default=5000)
    ap.add_argument("--dag", type=int, default=10000)
    ap.add_argument("--only", default="", help="run only the workloads whose name contains this")
    ap.add_argument("--million", action="store_true", help="also the 10^6-node chain under --to-2d (slow)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        folder = Path(tmp)
        if Path(args.ref).is_dir():
            before = Path(args.ref)
        else:
            before = folder / "before"
            before.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.ref], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        models = build(folder, args.layers, args.dag, args.million)
        print(f"before: {args.ref}; after: {ROOT}; best of {args.repeat}; python {sys.version.split()[0]}")
        print("| workload | before s | after s | after/before | before CPU s | after CPU s | after/before "
              "| before peak MB | after peak MB | after/before |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, which, passes in WORKLOADS + (MILLION if args.million else []):
            if args.only not in name:
                continue
            b, a = [], []
            for _ in range(args.repeat):  # interleaved: drifting load hits both alike
                b.append(run(before, models[which], passes))
                a.append(run(ROOT, models[which], passes))
            if {x["rewritten"] for x in b} != {x["rewritten"] for x in a}:
                print(f"  warning: {name}: rewritten counts differ: {b[0]['rewritten']} vs {a[0]['rewritten']}")
            tb, ta = min(x["pass"] for x in b), min(x["pass"] for x in a)
            cb, ca = min(x["cpu"] for x in b), min(x["cpu"] for x in a)
            mb, ma = min(x["rss"] for x in b) / 2**20, min(x["rss"] for x in a) / 2**20
            print(f"| {name} | {tb:.3f} | {ta:.3f} | {ta / tb:.3f} | {cb:.3f} | {ca:.3f} | {ca / cb:.3f} "
                  f"| {mb:.0f} | {ma:.0f} | {ma / mb:.3f} |")


if __name__ == "__main__":
    main()
