"""Record (or compare) sha256 of every rewrite output: shipped models and conformance cases x pass combinations.

Why: a refactor of the passes must not change a single output byte. Run it
before the change (`--write BASE.json`) and after (`--compare BASE.json`).
Per (model, combination) it stores the sha256 of the rewritten model's
serialization and of its records JSON (or the error text), and per model the
sha256 of the `inspect` JSON.

    PYTHONPATH=. python benchmarks/golden_hashes.py --write benchmarks/golden_hashes.json
    PYTHONPATH=. python benchmarks/golden_hashes.py --compare benchmarks/golden_hashes.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import convrewrite  # noqa: E402
import convrewrite.cli  # noqa: E402,F401
from convrewrite.cli_rewrite import pass_order  # noqa: E402

FOLD_ALL = pass_order(False, False, False, ("all",), ())
# The combinations tests/ exercises: every pass alone, the CLI's combinations and options.
COMBINATIONS: list[tuple[str, list[str], dict]] = [
    ("to-2d", ["to-2d"], {"layout": "h"}),
    ("to-2d:w", ["to-2d"], {"layout": "w"}),
    ("to-3d", ["to-3d"], {"layout": "h"}),
    ("to-3d:w", ["to-3d"], {"layout": "w"}),
    ("to-1d", ["to-1d"], {}),
    ("3d-to-2d", ["3d-to-2d"], {}),
    ("causal", ["causal"], {}),
    ("causal:state", ["causal"], {"causal_target": "CausalConvWithState"}),
    ("dilated", ["dilated"], {}),
    ("dilated:expand", ["dilated"], {"expand_dilations": True}),
    ("separable", ["separable"], {}),
    ("separable:fuse", ["separable"], {"fuse_separable": True}),
    ("separable:fuse:force", ["separable"], {"fuse_separable": True, "force": True}),
    ("channels-as-spatial", ["channels-as-spatial"], {}),
    ("spatial-as-channels", ["spatial-as-channels"], {}),
    ("fold-all", FOLD_ALL, {}),
    ("fold-all:fuse", FOLD_ALL, {"fuse_separable": True}),
    ("fold-all:expand", FOLD_ALL, {"expand_dilations": True}),
    ("to-2d+fold-all", pass_order(True, False, False, ("all",), ()), {"layout": "h"}),
    ("to-2d:w+fold-all", pass_order(True, False, False, ("all",), ()), {"layout": "w"}),
    ("to-3d+fold-all", pass_order(False, False, True, ("all",), ()), {"layout": "h"}),
    ("to-1d+fold-all", pass_order(False, True, False, ("all",), ()), {}),
    ("to-2d,fold-all", ["to-2d"] + FOLD_ALL, {"layout": "h"}),
    ("to-1d+causal", pass_order(False, True, False, ("causal",), ()), {}),
    ("to-2d+dilated", pass_order(True, False, False, ("dilated",), ()), {"layout": "h"}),
]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sources() -> list[tuple[str, onnx.ModelProto]]:
    from conformance import CONFORMANCE_OPS, CONV_OPS, node_cases, shared_cases

    out = [(f"models/{p.name}", onnx.load(str(p))) for p in sorted((ROOT / "models").glob("*.onnx"))]
    samples = ROOT / "tests" / "data" / "exporter-samples"
    out += [(f"samples/{p.relative_to(samples)}", onnx.load(str(p))) for p in sorted(samples.rglob("*.onnx"))]
    out += [(f"shared/{c.name}", c.model) for c in shared_cases()]
    out += [(f"node/{c.name}", c.model) for c in node_cases(CONFORMANCE_OPS, expanded_ops=CONV_OPS)]
    return out


def run_one(model: onnx.ModelProto, passes: list[str], options: dict) -> dict[str, str]:
    try:
        result = convrewrite.rewrite(copy.deepcopy(model), passes, **options)
    except Exception as exc:  # the error text is part of the behaviour
        return {"error": f"{type(exc).__name__}: {exc}"}
    records = json.dumps(result.to_dict(), sort_keys=True, default=str).encode()
    return {"model": digest(result.model.SerializeToString()), "records": digest(records)}


def inspect_one(model: onnx.ModelProto) -> str:
    try:
        report = convrewrite.inspect(copy.deepcopy(model))
    except Exception as exc:
        return f"error {type(exc).__name__}: {exc}"
    return digest(json.dumps(report, sort_keys=True, default=str).encode())


def collect() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name, model in sources():
        entry = {"inspect": inspect_one(model)}
        for combo, passes, options in COMBINATIONS:
            entry[combo] = run_one(model, passes, options)
        out[name] = entry
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path)
    group.add_argument("--compare", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    now = collect()
    n = sum(len(v) for v in now.values())
    if args.write:
        args.write.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"wrote {n} digests for {len(now)} models in {time.perf_counter() - t0:.0f} s")
        return 0
    base = json.loads(args.compare.read_text())
    same = differ = 0
    for model, entry in sorted(base.items()):
        for combo, value in sorted(entry.items()):
            if now.get(model, {}).get(combo) == value:
                same += 1
            else:
                differ += 1
                print(f"DIFF {model} {combo}: {value} -> {now.get(model, {}).get(combo)}")
    extra = sum(1 for m, e in now.items() for c in e if c not in base.get(m, {}))
    print(f"identical {same}, differing {differ}, new {extra} ({time.perf_counter() - t0:.0f} s)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
