"""Batch runs: one command over many models, in parallel processes, one line each, a JSON-lines report.

For the pre-export validation step in CI over a whole model zoo:
`convrewrite rewrite A.onnx B.onnx DIR/ -o OUTDIR/ --jobs 4` and
`convrewrite check DIR/` (each model against the .npz beside it). Each model
runs in its own `python -m convrewrite` process (a crash or a hang in one
model cannot take the others down, and its memory is returned when it ends);
the exit code is the worst of all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

from .errors import ConvRewriteError


@dataclass
class Job:
    """One model's run: the command line after `convrewrite`, and where its JSON report goes."""

    model: str
    argv: list[str]
    output: str | None = None
    report_option: str = "--report"
    result: dict[str, Any] = field(default_factory=dict)


def models_in(paths: list[str]) -> list[str]:
    """The .onnx files named or found directly in the named folders, in a stable order."""
    found: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            models = [str(f) for f in sorted(Path(p).glob("*.onnx")) if f.is_file()]
            if not models:
                raise ConvRewriteError(f"{p}: is a folder with no .onnx model in it")
            found.extend(models)
        else:
            found.append(p)
    return list(dict.fromkeys(found))


def option_argv(command: click.Command, params: dict[str, Any], skip: set[str]) -> list[str]:
    """The options a command was given, as a command line again (for the per-model processes)."""
    argv: list[str] = []
    for p in command.params:
        if not isinstance(p, click.Option) or p.name in skip or p.name not in params:
            continue
        value = params[p.name]
        if value is None or value == () or (value == p.default and not p.multiple):
            continue
        if p.is_flag and p.secondary_opts:
            argv.append(p.opts[0] if value else p.secondary_opts[0])
        elif p.is_flag:
            if value:
                argv.append(p.opts[0])
        elif p.multiple:
            for v in value:
                argv.extend([p.opts[0], str(v)])
        else:
            argv.extend([p.opts[0], str(value)])
    return argv


def run(jobs: list[Job], n_jobs: int, report_path: str | None, quiet: bool, verbose: bool,
        describe: Callable[[Job], str]) -> int:
    """Run every job (at most `n_jobs` at once); print one line each; write the JSON lines; the worst exit code."""
    if n_jobs < 1:
        raise ConvRewriteError(f"--jobs must be at least 1, got {n_jobs}")
    with tempfile.TemporaryDirectory(prefix="convrewrite-batch-") as tmp:
        def one(index_job: tuple[int, Job]) -> Job:
            index, job = index_job
            report = os.path.join(tmp, f"{index}.json")
            cmd = [sys.executable, "-m", "convrewrite", "-q", *(["-v"] if verbose else []), *job.argv,
                   job.report_option, report]
            proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            data = None
            if os.path.exists(report):
                with open(report) as fh:
                    data = json.load(fh)
            error = [ln for ln in proc.stderr.splitlines() if ln.startswith("convrewrite: ")]
            job.result = {"model": job.model, "output": job.output, "exit_code": proc.returncode,
                          "error": error[-1][len("convrewrite: "):] if error and proc.returncode else None,
                          "report": data}
            return job

        worst = 0
        lines: list[str] = []
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for job in pool.map(one, list(enumerate(jobs))):
                code = job.result["exit_code"]
                worst = max(worst, code)
                status = "ok" if code == 0 else f"exit {code}"
                if not quiet or code:
                    click.echo(f"{status:<7} {job.model}: {describe(job)}")
                lines.append(json.dumps(job.result, default=str, allow_nan=False))
    if report_path:
        from .model import write_text_target

        write_text_target(report_path, "\n".join(lines) + "\n", "--report")
    if not quiet:
        failed = sum(1 for j in jobs if j.result["exit_code"])
        click.echo(f"{len(jobs)} model{'s' if len(jobs) != 1 else ''}: {len(jobs) - failed} ok, {failed} failed")
    return worst
