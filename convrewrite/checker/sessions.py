"""Models as onnxruntime gets them, their sessions, and which providers really run."""

from __future__ import annotations

import gc
import re
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from onnx import ModelProto

from .. import model as cio
from .. import runtime
from .errors import CheckInputError

# Past this size a model goes to onnxruntime by path, never as serialized bytes.
SERIALIZE_LIMIT = 1_900_000_000

# Providers tried when none are named: ones whose results can be pinned.
# TensorRT is used only when asked for (its tactic choice and TF32 are not pinned).
DEFAULT_PROVIDER_CANDIDATES = ("CPUExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider")

_NODE = re.compile(r"running (\S+) node\. Name:'([^']*)'")
_STATUS = re.compile(r"Status Message:\s*(.*)", re.S)


@dataclass
class RunFailure:
    """Why onnxruntime could not load or run a model: the key part and every word it said."""

    kind: str  # error | unavailable
    message: str  # the key part, one line
    detail: str = ""  # onnxruntime's whole message
    node: str | None = None  # the failing node's name, when onnxruntime names it
    op_type: str | None = None


def run_failure(role: str, doing: str, exc: BaseException) -> RunFailure:
    """onnxruntime's exception as a RunFailure naming the node it stopped at."""
    full = runtime.strip_ansi(str(exc)).strip()
    node = op = None
    match = _NODE.search(full)
    if match:
        op, node = match.group(1), match.group(2)
    status = _STATUS.search(full)
    key = status.group(1).strip() if status else runtime.ort_error_line(exc)
    key_line = " ".join(key.split())
    if len(key_line) > 300:
        key_line = key_line[:297] + "..."
    where = f" at {op} node {node!r}" if node is not None else ""
    return RunFailure("error", f"{role}: onnxruntime {doing}{where}: {key_line}", full, node, op)


@contextmanager
def _ir_lowered(model: ModelProto, ir: int) -> Iterator[ModelProto]:
    """The model with its IR version at most `ir`, restored afterwards (no copy of the weights)."""
    original = model.ir_version
    if original > ir:
        model.ir_version = ir
    try:
        yield model
    finally:
        model.ir_version = original


class OrtModel:
    """One model as onnxruntime gets it (a path where possible, else bytes) and its sessions,
    built once per provider, reused across trials, released as soon as the model is done."""

    def __init__(
        self,
        loaded: cio.LoadedModel,
        role: str,
        stack: ExitStack,
        opt_level: str,
        provider_options: Mapping[str, Mapping[str, str]],
        verbose: bool,
        notes: list[str],
        threads: int | None = None,
    ) -> None:
        self.role = role
        self.threads = threads  # onnxruntime's intra-op threads; None: its default
        self.opt_level = opt_level
        self.provider_options = provider_options
        self.verbose = verbose
        self.sessions: dict[str, Any] = {}
        self.failures: dict[str, RunFailure] = {}
        model = loaded.model
        limit = runtime.max_ir_version()
        lowered = model.ir_version > limit
        if lowered:
            notes.append(
                f"{role}: IR version {model.ir_version} is newer than this onnxruntime accepts ({limit}); "
                f"run with the IR version lowered to {limit} on a copy"
            )
        self.source: str | bytes
        if loaded.path is not None and not lowered:
            self.source = str(loaded.path)  # onnxruntime reads the file itself: no copy held here
        elif cio.estimated_size(model) > SERIALIZE_LIMIT or loaded.had_external_data:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="convrewrite-check-")))
            target = folder / "model.onnx"
            with _ir_lowered(model, limit) as m:
                cio.save(m, target, external_data=True, check=False)
            self.source = str(target)
        else:
            with _ir_lowered(model, limit) as m:
                self.source = m.SerializeToString()

    def session(self, provider: str) -> Any | None:
        """The session on `provider`, or None (then `failures[provider]` says why)."""
        if provider in self.sessions:
            return self.sessions[provider]
        if provider in self.failures:
            return None
        import onnxruntime as ort

        log: list[str] = []
        try:
            options = runtime.session_options(self.opt_level, self.verbose)
            if self.threads:
                options.intra_op_num_threads = int(self.threads)
            with runtime.capture_native_stderr(passthrough=self.verbose) as log:
                sess = ort.InferenceSession(
                    self.source,
                    options,
                    providers=runtime.provider_list(provider, self.provider_options.get(provider)),
                    enable_fallback=0,
                )
        except Exception as exc:  # onnxruntime's exception types share no useful base
            self.failures[provider] = run_failure(self.role, "cannot load it", exc)
            return None
        used = sess.get_providers()
        if provider not in used:
            reason = runtime.fallback_reason(log[0] if log else "")
            self.failures[provider] = RunFailure("unavailable", f"onnxruntime fell back to {used[0]}: {reason}",
                                                 log[0] if log else "")
            return None
        self.sessions[provider] = sess
        return sess

    def run(self, provider: str, feed: Mapping[str, np.ndarray]) -> dict[str, Any] | RunFailure:
        """Every output by name, or why it could not run (a run failure does not stick to the provider)."""
        sess = self.session(provider)
        if sess is None:
            return self.failures[provider]
        try:
            with runtime.capture_native_stderr(passthrough=self.verbose):
                values = sess.run(None, dict(feed))
        except Exception as exc:  # a run failure is a result of this model on these inputs
            return run_failure(self.role, "failed running it", exc)
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, values))

    def release(self) -> None:
        """Drop the sessions (and their copy of the weights) once this model has run."""
        self.sessions.clear()
        self.source = b""
        gc.collect()


@dataclass
class ProviderStatus:
    """Whether a provider ran, and if not, why (never 'passed' when it did not run)."""

    name: str
    requested: bool
    required: bool
    status: str  # ran | unavailable | error
    reason: str | None = None
    detail: str | None = None

    @property
    def short(self) -> str:
        return runtime.provider_short_name(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "short": self.short, "requested": self.requested, "required": self.required,
                "status": self.status, "reason": self.reason, "detail": self.detail}


def resolve_providers(
    providers: Iterable[str] | str | None, require: Iterable[str] | str | None
) -> tuple[list[str], set[str], set[str]]:
    """(providers to try in order, the ones the user named, the required ones)."""

    def names(value: Iterable[str] | str | None) -> list[str]:
        if value is None:
            return []
        items = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
        out = []
        for item in items:
            if not item.strip():
                continue
            try:
                full = runtime.provider_full_name(item)
            except ValueError as exc:
                raise CheckInputError(str(exc)) from None
            if full not in out:
                out.append(full)
        return out

    named = names(providers)
    required = names(require)
    if providers is not None and not named:
        raise CheckInputError("providers: empty list")
    requested = list(named) if named else list(DEFAULT_PROVIDER_CANDIDATES)
    for r in required:
        if r not in requested:
            requested.append(r)
    requested.sort(key=lambda p: p != "CPUExecutionProvider")  # CPU first: the baseline for provider differences
    return requested, set(named) | set(required), set(required)


def probe(order: list[str], named: set[str], required: set[str], options, verbose: bool) -> list[ProviderStatus]:
    """Which providers really run. Unnamed default candidates count as requested only when
    they run; the ones this onnxruntime build lacks are left out."""
    import onnxruntime as ort

    built = set(ort.get_available_providers())
    statuses = []
    for p in order:
        runs, reason = runtime.probe_provider(p, options.get(p), verbose)
        if not runs and p not in named and p not in built:
            continue
        statuses.append(ProviderStatus(
            name=p, requested=p in named or (not named and runs), required=p in required,
            status="ran" if runs else "unavailable", reason=None if runs else reason,
        ))
    return statuses
