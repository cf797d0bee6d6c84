"""onnxruntime plumbing shared by the checker and the CLI: quiet logging, IR limits,
provider names and probing, pinned session options."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import tempfile
from typing import Iterator


@functools.lru_cache(maxsize=1)
def distribution_conflict() -> str | None:
    """A warning when several onnxruntime distributions share this environment (one module folder: the last
    one installed wins, and uninstalling either breaks the other), else None."""
    from importlib import metadata

    found = []
    for name in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime-silicon"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    if len(found) < 2:
        return None
    return (f"{' and '.join(found)} are installed together; they share one 'onnxruntime' folder and the last "
            "installed wins: uninstall all of them, then install one")


def quiet_onnxruntime() -> None:
    """Keep onnxruntime's warnings (CUDA fallback, unused initializers) off stderr."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - a required dependency
        return
    ort.set_default_logger_severity(3)


@functools.lru_cache(maxsize=1)
def max_ir_version() -> int:
    """The highest model IR version the installed onnxruntime accepts."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        return 10
    version = tuple(int(p) for p in ort.__version__.split(".")[:2] if p.isdigit())
    # onnxruntime 1.20 -> IR 10, 1.22 -> 11, 1.30+ -> 13 (from its release notes);
    # older runtimes get a conservative answer.
    table = [((1, 30), 13), ((1, 23), 12), ((1, 22), 11), ((1, 16), 10), ((1, 14), 9), ((1, 10), 8)]
    for minimum, ir in table:
        if version >= minimum:
            return ir
    return 7


# ------------------------------------------------------------------ providers


PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "migraphx": "MIGraphXExecutionProvider",
    "dml": "DmlExecutionProvider",
    "directml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}

# Settings that make CUDA results repeatable run to run (architecture: "The checker").
DEFAULT_CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}

OPT_LEVELS = ("disabled", "basic", "extended", "all")


def provider_full_name(name: str) -> str:
    """`cuda` -> `CUDAExecutionProvider`; full names pass through (case-insensitive).

    Raises ValueError for a name that is neither an alias nor ends in ExecutionProvider.
    """
    key = name.strip()
    if key.lower() in PROVIDER_ALIASES:
        return PROVIDER_ALIASES[key.lower()]
    for full in PROVIDER_ALIASES.values():
        if key.lower() == full.lower():
            return full
    if key.endswith("ExecutionProvider"):
        return key
    raise ValueError(f"unknown execution provider {name!r} (use cpu, cuda, tensorrt or a full name like CUDAExecutionProvider)")


def provider_short_name(full: str) -> str:
    """`CUDAExecutionProvider` -> `cuda`, for tables."""
    for alias, name in PROVIDER_ALIASES.items():
        if name == full and alias not in ("trt", "directml"):
            return alias
    return full.replace("ExecutionProvider", "").lower() or full


def session_options(opt_level: str = "disabled", verbose: bool = False):
    """SessionOptions with graph optimizations pinned and logging at error level unless verbose."""
    import onnxruntime as ort

    levels = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if opt_level not in levels:
        raise ValueError(f"unknown graph optimization level {opt_level!r} (use {', '.join(OPT_LEVELS)})")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[opt_level]
    so.log_severity_level = 2 if verbose else 3  # warnings with --verbose; errors only otherwise
    return so


def provider_list(provider: str, options: dict[str, str] | None = None) -> list:
    """What InferenceSession gets for `provider`: it first, CPU after (for nodes it lacks)."""
    first = (provider, dict(options)) if options else provider
    return [first] if provider == "CPUExecutionProvider" else [first, "CPUExecutionProvider"]


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_SOURCE_PREFIX = re.compile(r"^\S+\.(?:cc|cpp|h):\d+\s+.*?\)\s+")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    """onnxruntime's text without terminal colour codes."""
    return _ANSI.sub("", text)


def ort_error_line(exc: BaseException | str) -> str:
    """onnxruntime's first line of an error, without its error-code and source-file prefixes."""
    text = _ANSI.sub("", str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0] if lines else (type(exc).__name__ if isinstance(exc, BaseException) else "error")
    line = _ORT_PREFIX.sub("", line)
    return _SOURCE_PREFIX.sub("", line)


def fallback_reason(log: str) -> str:
    """Why a provider was not created, from onnxruntime's captured log (best effort)."""
    text = _ANSI.sub("", log)
    lowered = text.lower()
    if "no cuda-capable device" in lowered or "cuda failure 100" in lowered:
        return "no CUDA device"
    match = re.search(r"Failed to load library (\S+) with error: ([^\n]+)", text)
    if match:
        library = os.path.basename(match.group(1))
        return f"{library} cannot be loaded ({match.group(2).strip()})"
    match = re.search(r"Failed to create (\w+)\.?", text)
    if match:
        return f"{match.group(1)} could not be created"
    return "the provider could not be created (run with --verbose for onnxruntime's log)"


@contextlib.contextmanager
def capture_native_stderr(passthrough: bool = False) -> Iterator[list[str]]:
    """Redirect file descriptor 2 so onnxruntime's C++ log lines do not reach the terminal.

    Yields a list that holds the captured text (one string) after the block.
    With `passthrough` the text is written back to stderr afterwards (--verbose).
    If fd 2 cannot be redirected, nothing is captured and nothing breaks.
    """
    holder: list[str] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield holder
        return
    tmp = tempfile.TemporaryFile()
    try:
        os.dup2(tmp.fileno(), 2)
        try:
            yield holder
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            tmp.seek(0)
            holder.append(tmp.read().decode("utf-8", errors="replace"))
            if passthrough and holder[0]:
                os.write(2, holder[0].encode("utf-8", errors="replace"))
    finally:
        os.close(saved)
        tmp.close()


_PROBE_CACHE: dict[tuple, tuple[bool, str]] = {}


def probe_provider(provider: str, options: dict[str, str] | None = None, verbose: bool = False) -> tuple[bool, str]:
    """Whether `provider` really runs here: build a one-node session and read get_providers().

    onnxruntime lists CUDA as available wherever the GPU wheel is installed and
    silently falls back to CPU when it cannot create it; only the session tells.
    Returns (runs, reason-if-not). Cached per process.
    """
    key = (provider, tuple(sorted((options or {}).items())))
    if key in _PROBE_CACHE:
        return _PROBE_CACHE[key]
    import onnxruntime as ort

    if provider == "CPUExecutionProvider":
        result = (True, "")
    elif provider not in ort.get_available_providers():
        result = (False, f"not built into this onnxruntime (it has {', '.join(ort.get_available_providers())})")
    else:
        import onnx.helper as oh
        from onnx import TensorProto

        x = oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y = oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
        graph = oh.make_graph([oh.make_node("Relu", ["x"], ["y"])], "probe", [x], [y])
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
        log: list[str] = []
        try:
            with capture_native_stderr(passthrough=verbose) as log:
                session = ort.InferenceSession(
                    model.SerializeToString(),
                    session_options("disabled", verbose),
                    providers=provider_list(provider, options),
                    enable_fallback=0,
                )
            used = session.get_providers()
            if provider in used:
                result = (True, "")
            else:
                result = (False, f"onnxruntime fell back to {used[0]}: {fallback_reason(log[0] if log else '')}")
        except Exception as exc:  # onnxruntime raises RuntimeError/Fail/...: all mean "cannot run"
            result = (False, f"onnxruntime cannot create it: {ort_error_line(exc)}")
    _PROBE_CACHE[key] = result
    return result
