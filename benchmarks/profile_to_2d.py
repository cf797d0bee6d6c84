"""Where the time goes in `rewrite --to-2d` of a big Conv1D chain: stages, then the pass's top functions.

Why: a 10^6-node model took 71 s and 3.8 GB (issue 15); this shows which
stage and which functions dominate, on a chain small enough to run often.
Builds an N-layer Conv1D + Relu chain (2N nodes; narrow weights so the model
stays small), then in one process: load and check, the pass under cProfile,
the output check, serialize and write. Prints stage times, peak RSS and the
pass's top functions by cumulative and by own time.

    python benchmarks/profile_to_2d.py [--layers 50000] [--channels 8] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_rank  # noqa: E402
import convrewrite  # noqa: E402
from convrewrite.model import load_with_info, save, validate  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=50000)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile_to_2d_") as tmp:
        src, out = Path(tmp) / "chain.onnx", Path(tmp) / "out.onnx"
        onnx.save(bench_rank.build_chain(args.layers, channels=args.channels), src)
        size = src.stat().st_size
        stages = {}
        t = time.perf_counter()
        loaded = load_with_info(str(src))
        stages["load + input check"] = time.perf_counter() - t
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        result = convrewrite.rewrite(loaded.model, ["to-2d"], copy=False)
        prof.disable()
        stages["pass (under cProfile)"] = time.perf_counter() - t
        t = time.perf_counter()
        validate(result.model, "out", output=True)
        stages["output check"] = time.perf_counter() - t
        t = time.perf_counter()
        save(result.model, str(out), check=False)
        stages["serialize + write"] = time.perf_counter() - t
    nodes = 2 * args.layers
    print(f"{args.layers} layers ({nodes} nodes, {size / 2**20:.0f} MB), peak RSS {peak_mb():.0f} MB; "
          f"{len(result.rewritten)} convs lifted")
    for name, s in stages.items():
        print(f"  {name:<24} {s:7.2f} s  ({s / nodes * 1e6:.1f} us/node)")
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
        lines = [l for l in buf.getvalue().splitlines() if l.strip()]
        start = next(i for i, l in enumerate(lines) if l.lstrip().startswith("ncalls"))
        print(f"\npass, top {args.top} by {key}:")
        for l in lines[start:start + args.top + 1]:
            print("  " + l.replace(str(ROOT) + "/", "").replace(sys.prefix, "<venv>"))


if __name__ == "__main__":
    main()
