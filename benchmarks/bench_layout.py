"""Is `rewrite --to-2d --layout auto` never slower than the original, and close to the best form?

For each model: the original, its `--to-2d --layout h` and `--layout w` forms,
and what `--layout auto` chose (its own timing run, on onnxruntime CPU, with
the CLI's defaults: the whole-model round, then region by region where the
lift forms independent regions), then the original, h, w and auto timed side by side in one
`timing.bench` run (interleaved, same seeded inputs). Prints medians and ratios
to the original (the median of per-run ratios, as in benchmarks/README.md),
which path auto took (whole-model or regions) and its whole-model choice, and
per model whether auto's median ratio is <= 1.02 and within 3% of the best of
original/h/w. Each form runs in `--sessions` sessions (default 3), and each
ratio is the median over sessions: sub-millisecond models differ by percents
from one session of the same model to the next. The original again in
sessions of its own ("copy") is the floor under any other ratio; "(= original)"
marks an auto result byte-identical to the original. The machine is shared: the load average (`os.getloadavg`) is
printed before and after.

    python benchmarks/bench_layout.py [--runs 200] [--min-seconds 2] [--sessions 3] [--threads N] [--ort-opt all]
                                      [--smoke]

Models: `models/layout_float_ts13.onnx` (a PyTorch 1D conv stack) and
`models/layout_int8_dyn.onnx` (it through onnxruntime's `quantize_dynamic`:
ConvInteger: four regions, one per conv, apart at each DynamicQuantizeLinear) at length
4096, the PyTorch TCN `models/tcn_chomp_ts13.onnx` (fixed [1, 8, 64]) and the
PyTorch conv chain `models/conv1d_chain_ts13.onnx` (fixed [1, 16, 64]; two regions
apart at its MaxPool, which stays 1D without --assume-finite).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402

from convrewrite import api, runtime  # noqa: E402
from convrewrite.layout_choice import bench_measure, median, paired_ratio, rewrite_auto  # noqa: E402
from convrewrite.timing import bench  # noqa: E402

MODELS = [
    ("float 1D stack (torch), L=4096", ROOT / "models" / "layout_float_ts13.onnx", {"x": (1, 16, 4096)}),
    ("int8 quantize_dynamic (ConvInteger), L=4096", ROOT / "models" / "layout_int8_dyn.onnx", {"x": (1, 16, 4096)}),
    ("TCN, chomped causal (torch), L=64", ROOT / "models" / "tcn_chomp_ts13.onnx", None),
    ("conv chain, 2 regions (torch), L=64", ROOT / "models" / "conv1d_chain_ts13.onnx", None),
]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def one(label: str, path: Path, shapes, runs: int, threads: int | None, ort_opt: str, min_seconds: float,
        sessions: int) -> dict:
    model = onnx.load(path)
    forms = {f: api.rewrite(model, ["to-2d"], layout=f).model for f in ("h", "w")}
    timer = bench_measure("cpu", threads=threads, ort_opt=ort_opt, shapes=shapes)
    auto, choice, note = rewrite_auto(model, ["to-2d"], {}, api.rewrite, "cpu", measure=timer)
    original_ms = choice.medians_ms.get("1d") or 1.0
    runs = max(runs, min(20000, math.ceil(min_seconds * 1000.0 / original_ms)))  # tiny models: more runs
    print(f"  {label}: {note} [side by side: {runs} runs per form]", flush=True)
    # Each form in `sessions` sessions (one InferenceSession each), all interleaved in one run: a
    # sub-millisecond model differs by percents from one session to the next (placement, not the graph),
    # so each ratio is the median over sessions of the per-run ratios to the original's session of that
    # index. "copy" is the original again, in sessions of its own: the floor under any other ratio.
    names = ("original", "h", "w", "auto", "copy")
    models = {"original": model, "h": forms["h"], "w": forms["w"], "auto": auto.model, "copy": model}
    labels = [f"{name}#{i}" for i in range(sessions) for name in names]
    report = bench([models[label.split("#")[0]] for label in labels], providers="cpu", runs=runs, warmup=5,
                   threads=threads, ort_opt=ort_opt, shapes=shapes, labels=labels)
    samples = {label: report.timing(label).samples_ms for label in labels}
    med = {name: median([median(samples[f"{name}#{i}"]) for i in range(sessions)]) for name in names}
    ratio = {name: median([paired_ratio(samples[f"{name}#{i}"], samples[f"original#{i}"]) for i in range(sessions)])
             for name in names}
    chosen = choice.chosen if choice.chosen != "regions" else "/".join(r.chosen for r in choice.regions)
    return {"label": label, "runs": runs, "med": med, "ratio": ratio, "chosen": chosen, "margin": choice.margin,
            "path": f"{choice.path} ({len(choice.regions) or 1})", "whole": choice.settings.get("whole_model", "-"),
            "same": auto.model.SerializeToString() == model.SerializeToString(), "auto_ratio": ratio["auto"], "auto_vs_best": ratio["auto"] / min(1.0, ratio["h"], ratio["w"])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed runs per form in the side-by-side run")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its own)")
    parser.add_argument("--ort-opt", default="all", help="onnxruntime graph optimizations (default all)")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="at least this long per form side by side: more runs for sub-millisecond models")
    parser.add_argument("--sessions", type=int, default=3,
                        help="sessions per form (ratios: the median over sessions); sub-ms models vary by session")
    parser.add_argument("--smoke", action="store_true", help="few runs: check that the script works")
    args = parser.parse_args()
    runtime.quiet_onnxruntime()
    runs = 5 if args.smoke else args.runs
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, ort-opt {args.ort_opt}, threads "
          f"{args.threads or 'default'}, at least {runs} interleaved runs and {args.min_seconds:g} s per form "
          f"and session, {args.sessions} sessions per form; "
          f"{load_average()} (before)")
    print("auto's own choice:")
    min_seconds = 0.0 if args.smoke else args.min_seconds
    sessions = 1 if args.smoke else args.sessions
    rows = [one(label, path, shapes, runs, args.threads, args.ort_opt, min_seconds, sessions)
            for label, path, shapes in MODELS]
    print()
    print(f"{load_average()} (after)")
    print()
    print("| model | runs | original ms | h ms | w ms | auto ms (chose) | auto path (regions) | whole-model choice "
          "| h / orig | w / orig | auto / orig | auto / best | copy of orig / orig | auto <= 1.02 and within 3% of best |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in rows:
        m = r["med"]
        good = r["auto_ratio"] <= 1.02 and r["auto_vs_best"] <= 1.03
        ok &= good
        print(f"| {r['label']} | {r['runs']} | {m['original']:.3f} | {m['h']:.3f} | {m['w']:.3f} | {m['auto']:.3f} ({r['chosen']}, "
              f"margin {r['margin']:.1%}) | {r['path']} | {r['whole']} | {r['ratio']['h']:.3f} | {r['ratio']['w']:.3f} | "
              f"{r['auto_ratio']:.3f}{' (= original)' if r['same'] else ''} | {r['auto_vs_best']:.3f} | "
              f"{r['ratio']['copy']:.3f} | {'yes' if good else 'NO'} |")
    print()
    print("auto never slower than the original (<= 1.02) and within 3% of the best: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
