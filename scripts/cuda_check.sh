#!/usr/bin/env bash
# The CUDA half of the checker's acceptance (issue 4), for a machine with an NVIDIA GPU.
#
#   scripts/cuda_check.sh [OUTDIR]        # from anywhere; ~2-4 minutes
#
# Needs no network and no `pip install`: it runs the package from this checkout
# (PYTHONPATH=<repo>). It prints the onnxruntime build and its providers, whether
# CUDA really runs (session.get_providers(), not get_available_providers()), then
# `convrewrite check --providers cpu,cuda --require cuda` on shipped models vs
# their rewritten forms and vs their framework outputs, and the CPU-vs-CUDA
# differences of each model. When onnx or click is missing, convrewrite cannot
# run: the script says what is missing and compares CPU with CUDA using
# onnxruntime alone on the shipped models and their .npz inputs.
# Exit status: 0 when every CUDA check passed, 1 when a check failed, 2 when nothing could run,
# 3 when CUDA does not run here (one RESULT line after the environment; no check is attempted).
# Environment: PYTHON (default: the checkout's .venv/bin/python when it exists, else python3),
# CUDA_CHECK_PYTEST=0 to skip the test files.

set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
# The package's Python: the checkout's virtual environment (what .ci/run and the README make) when there
# is one, so that onnx and click are found without activating it.
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/cuda_check.XXXXXX")}
mkdir -p "$OUT" || exit 2
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
TIMEOUT=""
command -v timeout >/dev/null 2>&1 && TIMEOUT="timeout 300"

# model : rewrite options (small shipped models whose rewrites are exact on CPU)
SPECS=(
  "wavenet_ts13:--fold all --to-2d"
  "tcn_chomp_dyn18:--fold causal --to-2d"
  "hifigan_upsampler_ts13:--fold all --to-2d"
  "conformer_conv_ts13:--fold all --to-2d"
  "k3_sepconv1d:--fold separable --to-2d"
  "mobilenet_block_ts13:--to-3d"
)

echo "== environment (results in $OUT)"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>&1 | head -4 || echo "nvidia-smi: not found"
"$PY" - "$OUT/env.sh" <<'EOF'
import glob, importlib, os, sys, warnings
warnings.simplefilter("ignore")  # e.g. click's deprecated __version__
env_file = sys.argv[1]
print("python", sys.version.split()[0], sys.executable)
missing, have = [], {}
for name in ("numpy", "onnxruntime", "onnx", "click", "onnx_graphsurgeon", "pytest", "hypothesis"):
    try:
        mod = importlib.import_module(name)
        have[name] = getattr(mod, "__version__", "?")
    except Exception as exc:  # ImportError, or a broken install
        missing.append(name)
        have[name] = f"MISSING ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
for name, version in have.items():
    print(f"  {name:18} {version}")
# One-node model as raw bytes, so the probe needs no onnx: Relu on x: float[1], opset 13, IR 7.
PROBE = bytes.fromhex("080712003a370a0c0a0178120179220452656c75120570726f62655a0f0a0178120a0a08080112040a"
                      "020801620f0a0179120a0a08080112040a02080142040a00100d")
with open(os.path.join(os.path.dirname(env_file), "probe.onnx"), "wb") as fh:
    fh.write(PROBE)
cuda_runs, reason, nvlibs = 0, "", []
if "onnxruntime" not in missing:
    import onnxruntime as ort
    ort.set_default_logger_severity(4)  # its CUDA-library errors: the reason is printed once below
    print("onnxruntime", ort.__version__, "from", os.path.dirname(ort.__file__))
    print("get_available_providers():", ort.get_available_providers())
    print("get_device():", ort.get_device())
    for attr in ("get_build_info", "get_version_string"):
        if hasattr(ort, attr):
            try:
                print(f"{attr}():", getattr(ort, attr)())
            except Exception as exc:
                print(f"{attr}(): {exc}")
    # pip-installed CUDA libraries (nvidia-*-cu12/13 wheels): the loader finds them only via LD_LIBRARY_PATH
    for base in sys.path:
        nvlibs += sorted(glob.glob(os.path.join(base, "nvidia", "*", "lib")))
    if "CUDAExecutionProvider" in ort.get_available_providers():
        import numpy as np
        model = PROBE
        try:
            so = ort.SessionOptions(); so.log_severity_level = 3
            s = ort.InferenceSession(model, so, providers=[("CUDAExecutionProvider",
                                     {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}), "CPUExecutionProvider"])
            used = s.get_providers()
            s.run(None, {"x": np.ones((1,), np.float32)})
            cuda_runs = int("CUDAExecutionProvider" in used)
            reason = f"session.get_providers() = {used}"
        except Exception as exc:
            reason = f"session creation failed: {str(exc).splitlines()[0]}"
    else:
        reason = "this onnxruntime build has no CUDAExecutionProvider"
    print("CUDA really runs:", bool(cuda_runs), "-", reason)
with open(env_file, "w") as fh:
    fh.write(f"MISSING='{' '.join(missing)}'\nCUDA_RUNS={cuda_runs}\nNVLIBS='{':'.join(nvlibs)}'\n")
EOF
[ -f "$OUT/env.sh" ] || { echo "RESULT: python could not run ($PY)"; exit 2; }
. "$OUT/env.sh"
missing() { case " $MISSING " in *" $1 "*) return 0;; esac; return 1; }
if missing numpy || missing onnxruntime; then echo "RESULT: cannot run: missing $MISSING"; exit 2; fi
if [ "$CUDA_RUNS" != 1 ] && [ -n "$NVLIBS" ]; then
  echo "CUDA did not run; retrying with the pip CUDA libraries on LD_LIBRARY_PATH: $NVLIBS"
  export LD_LIBRARY_PATH="$NVLIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  "$PY" - "$OUT/env.sh" <<'EOF' >/dev/null 2>&1 && . "$OUT/env.sh"
import os, sys, numpy as np, onnxruntime as ort
model = os.path.join(os.path.dirname(sys.argv[1]), "probe.onnx")
s = ort.InferenceSession(model, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
s.run(None, {"x": np.ones((1,), np.float32)})
ok = "CUDAExecutionProvider" in s.get_providers()
text = open(sys.argv[1]).read().replace("CUDA_RUNS=0", f"CUDA_RUNS={int(ok)}")
open(sys.argv[1], "w").write(text)
EOF
  echo "CUDA really runs with LD_LIBRARY_PATH set: $([ "$CUDA_RUNS" = 1 ] && echo yes || echo no)"
fi
if [ "$CUDA_RUNS" != 1 ]; then
  echo "RESULT: CUDA does not run on this machine (see 'CUDA really runs' above): nothing to check"
  exit 3
fi

FAILS=0
if ! missing onnx && ! missing click; then
  echo
  echo "== convrewrite check --providers cpu,cuda --require cuda (original vs rewritten, then vs framework outputs)"
  for spec in "${SPECS[@]}"; do
    m=${spec%%:*}; opts=${spec#*:}
    src="models/$m.onnx"; npz="models/$m.npz"
    [ -f "$src" ] || { echo "-- $m: not in this checkout, skipped"; continue; }
    echo; echo "-- $m: rewrite $opts"
    # shellcheck disable=SC2086
    $TIMEOUT "$PY" -m convrewrite -q rewrite "$src" $opts -o "$OUT/${m}_rw.onnx" --check --providers cpu
    rc=$?; [ $rc = 0 ] || { echo "   rewrite failed (exit $rc)"; FAILS=$((FAILS + 1)); continue; }
    $TIMEOUT "$PY" -m convrewrite check "$src" "$OUT/${m}_rw.onnx" --providers cpu,cuda --require cuda \
        --trials 3 --json "$OUT/${m}_check.json"
    rc=$?; echo "   exit $rc"; [ $rc = 0 ] || FAILS=$((FAILS + 1))
    if [ -f "$npz" ]; then
      $TIMEOUT "$PY" -m convrewrite check "$src" --expected "$npz" --providers cpu,cuda --require cuda \
          -q --json "$OUT/${m}_expected.json"
      rc=$?; echo "   vs framework outputs: exit $rc"; [ $rc = 0 ] || FAILS=$((FAILS + 1))
    fi
  done
  echo
  echo "== summary: CUDA status and CPU-vs-CUDA provider differences (same model, information only)"
  "$PY" - "$OUT" <<'EOF'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    data = json.load(open(path))
    cuda = next((p for p in data["providers"] if p["short"] == "cuda"), None)
    print(f"{os.path.basename(path)}: {data['verdict']}; cuda {cuda['status'] if cuda else 'absent'}"
          + (f" ({cuda['reason']})" if cuda and cuda["reason"] else ""))
    for r in data["results"]:
        if r["provider"] == "CUDAExecutionProvider" and r["stats"]:
            s = r["stats"]
            print(f"   cuda {r['output']}: {r['status']}, original vs candidate max abs {s['max_abs']} max rel {s['max_rel']}")
    for d in data["provider_differences"]:
        what = "bit-exact" if d["bit_exact"] else f"max abs {d['max_abs']}, max rel {d['max_rel']}"
        print(f"   {d['model']:9} {d['output']}: cuda vs cpu {what}")
EOF
  if [ "${CUDA_CHECK_PYTEST:-1}" != 0 ] && ! missing pytest && ! missing hypothesis; then
    echo
    echo "== checker test files with CUDA present (tests that need 'no GPU' skip themselves)"
    $TIMEOUT "$PY" -m pytest -q -p no:cacheprovider tests/checker/test_checker.py tests/cli/test_cli_check.py tests/checker/test_check_trust.py 2>&1 | tail -15
    rc=${PIPESTATUS[0]}; echo "   pytest exit $rc"; [ $rc = 0 ] || FAILS=$((FAILS + 1))
  fi
else
  echo
  echo "== convrewrite cannot run here: missing $MISSING (onnx and click are required; onnx_graphsurgeon is not imported)"
  echo "== fallback: onnxruntime alone, CPU vs CUDA on shipped models and their framework outputs (no rewritten forms)"
  "$PY" - "${SPECS[@]}" <<'EOF' || FAILS=$((FAILS + 1))
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
so.log_severity_level = 3
cuda = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}), "CPUExecutionProvider"]
bad = 0
for spec in sys.argv[1:]:
    m = spec.split(":")[0]
    try:
        cpu_s = ort.InferenceSession(f"models/{m}.onnx", so, providers=["CPUExecutionProvider"])
        gpu_s = ort.InferenceSession(f"models/{m}.onnx", so, providers=cuda)
        data = np.load(f"models/{m}.npz", allow_pickle=False)
    except Exception as exc:
        print(f"{m}: cannot run: {str(exc).splitlines()[0]}"); bad += 1; continue
    feed = {i.name: data[i.name] for i in cpu_s.get_inputs()}
    names = [o.name for o in cpu_s.get_outputs()]
    ran = "CUDAExecutionProvider" in gpu_s.get_providers()
    a, b = cpu_s.run(None, feed), gpu_s.run(None, feed)
    for n, x, y in zip(names, a, b):
        ref = data[n] if n in data.files else None
        vs = "" if ref is None else f", cuda vs framework max abs {np.abs(y.astype(np.float64) - ref).max():.3g}"
        print(f"{m} {n}: cuda ran={ran}; cuda vs cpu max abs {np.abs(y.astype(np.float64) - x).max():.3g}"
              f" (bit-exact {np.array_equal(x, y)}){vs}")
    bad += not ran
sys.exit(1 if bad else 0)
EOF
fi

echo
if [ "$FAILS" = 0 ]; then echo "RESULT: every CUDA check passed"; exit 0; fi
echo "RESULT: $FAILS check(s) failed (see above)"; exit 1
