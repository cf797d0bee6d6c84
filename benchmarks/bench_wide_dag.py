"""Benchmark every pass on a wide residual DAG (not a chain) of 2000 and 10000 nodes: is any step quadratic?

The graph is `tests/big_models.py`'s `wide_dag`: 25 parallel lanes, each
step one of four convolution patterns (Pad -> Conv, Conv -> chomp Slice,
depthwise + pointwise, zero-inserted kernel) and a Mean with the next lane,
about a third of the nodes convolutions. For each pass set it times, in this
process, `convrewrite.rewrite` (fastest of `--repeat` runs) and prints the
10000 / 2000 ratio: about 5 when the time grows linearly, 25 when quadratic.
Also times load (input checks) and save (output checks, serialization).
Not a test: the numbers depend on the machine.

    python benchmarks/bench_wide_dag.py [--sizes 2000 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import convrewrite  # noqa: E402
from big_models import PASS_SETS, wide_dag  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[2000, 10000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    small, large = args.sizes
    rows: dict[str, list[float]] = {}
    convrewrite.rewrite(wide_dag(200), PASS_SETS["fold-all+to-2d"])  # warm up: imports, schema tables
    with tempfile.TemporaryDirectory() as tmp:
        for size in (small, large):
            model = wide_dag(size)
            path = Path(tmp) / f"wide{size}.onnx"
            convrewrite.save(model, path)
            rows.setdefault("load", []).append(best(lambda: convrewrite.load(path), args.repeat))
            for name, passes in PASS_SETS.items():
                rows.setdefault(name, []).append(best(lambda: convrewrite.rewrite(model, passes), args.repeat))
            result = convrewrite.rewrite(model, PASS_SETS["fold-all+to-2d"]).model
            rows.setdefault("save", []).append(best(lambda: convrewrite.save(result, Path(tmp) / "out.onnx"), args.repeat))
    print(f"| step | {small} nodes s | {large} nodes s | ratio (linear ~{large / small:.0f}, quadratic ~{(large / small) ** 2:.0f}) |")
    print("|---|---|---|---|")
    for name, (a, b) in rows.items():
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.1f} |")


if __name__ == "__main__":
    main()
