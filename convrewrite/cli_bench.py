"""`convrewrite bench`: latency of models side by side on the same inputs.

Exit 0 when every model ran on every provider used; 1 when one failed, or a
`--require`d provider is unavailable; 2 for bad usage or an unreadable model.
"""

from __future__ import annotations

import sys

import click

from .cli_check import named_values, parse_int, parse_shape
from .cli_common import guarded, settings
from .interrupts import exit_on_interrupt


@click.command("bench")
@click.argument("models", nargs=-1, required=True, metavar="MODEL [MODEL ...]")
@click.option("--providers", metavar="LIST",
              help="Comma list: cpu, cuda, tensorrt or full names. Default: every provider that really runs.")
@click.option("--require", "require", multiple=True, metavar="LIST", help="Providers that must run (exit 1 if not).")
@click.option("--runs", default="20", metavar="N", help="Timed runs per model and provider. Default 20.")
@click.option("--warmup", default="3", metavar="N", help="Untimed runs first. Default 3.")
@click.option("--threads", default=None, metavar="N", help="onnxruntime intra-op threads. Default: its own choice.")
@click.option("--ort-opt", "ort_opt", default="all", metavar="LEVEL",
              help="onnxruntime graph optimizations: disabled, basic, extended, all (default, as deployed).")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x64x128", help="Shape of a dynamic input.")
@click.option("--inputs", "inputs_path", metavar="FILE.npz|DIR", help="Inputs to time with instead of random ones.")
@click.option("--seed", default="0", metavar="N", help="Seed of the random inputs. Default 0.")
@click.option("--json", "json_path", metavar="FILE", help="Also write the timings as JSON ('-': stdout, no table).")
@click.option("-q", "--quiet", is_flag=True, help="No progress, only the table.")
@click.option("-v", "--verbose", is_flag=True, help="onnxruntime's own log lines too.")
@guarded
def bench_command(models: tuple[str, ...], providers: str | None, require: tuple[str, ...], runs: str, warmup: str,
                  threads: str | None, ort_opt: str, shapes: tuple[str, ...], inputs_path: str | None, seed: str,
                  json_path: str | None, quiet: bool, verbose: bool) -> None:
    """Time MODEL(s) side by side: median, p90, p99, min, and the ratio to the first."""
    with exit_on_interrupt():  # Ctrl-C while onnx and onnxruntime load: exit at once
        from . import runtime
        from .model import check_distinct, writable_target, write_text_target
        from .timing import bench

    quiet = quiet or settings().quiet
    verbose = verbose or settings().verbose
    if not verbose:
        runtime.quiet_onnxruntime()
    if json_path and json_path != "-":
        writable_target(json_path, "--json")
        check_distinct([("--json", json_path)], [("MODEL", m) for m in models] +
                       ([("--inputs", inputs_path)] if inputs_path else []))
    options = dict(
        providers=providers, require=list(require) or None, runs=parse_int(runs, "--runs"),
        warmup=parse_int(warmup, "--warmup"), threads=parse_int(threads, "--threads") if threads else None,
        ort_opt=ort_opt, shapes=named_values(shapes, parse_shape, "--shape") or None, inputs=inputs_path,
        seed=parse_int(seed, "--seed"), verbose=verbose,
    )
    if quiet or not sys.stderr.isatty():
        report = bench(list(models), **options)
    else:
        with click.progressbar(length=1, label="timing", file=sys.stderr) as bar:
            def progress(done: int, total: int, what: str) -> None:
                bar.length = total
                bar.label = f"timing {what}"
                bar.update(done - bar.pos)

            report = bench(list(models), on_progress=progress, **options)
    if json_path == "-":
        click.echo(report.to_json())
    else:
        if json_path:
            write_text_target(json_path, report.to_json() + "\n", "--json")
        click.echo(report.render())
    sys.exit(0 if report.ok else 1)
