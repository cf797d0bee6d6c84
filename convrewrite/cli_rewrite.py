"""`convrewrite rewrite`: run passes, optionally check the result, write it atomically."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import guarded, settings
from .errors import ConvRewriteError
from .io import load_with_info, same_file, save, writable_target
from .passes import available_passes
from .engine import RewriteResult, describe_rules, fold_order, summarize
from .api import rewrite


class RegistryChoice(click.Choice):
    """A click.Choice whose values are read from the rule registry when used (plugins included)."""

    def __init__(self, phase: str, extra: tuple[str, ...] = ()) -> None:
        self.phase = phase
        self.extra = extra
        super().__init__([])

    @property
    def choices(self):  # type: ignore[override]
        return [name for name, _ in describe_rules(self.phase)] + list(self.extra)

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ assigns it; the registry is the source
        pass


def _fold_help() -> str:
    folds = "; ".join(f"{name}: {text.split(';')[0].split('(')[0].strip()}" for name, text in describe_rules("fold"))
    return f"Fold a pattern into canonical convolutions (repeatable; 'all' = every fold, in this order). {folds}."


def pass_order(to_2d: bool, to_1d: bool, to_3d: bool, folds: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    """The passes to run, in an order that lets each see the form it matches best.

    Folds match causal/dilated/separable patterns in their 1D (or native)
    form, so they run after lowering (`--to-1d`) and before lifting
    (`--to-2d`, `--to-3d`).
    """
    if sum((to_2d, to_1d, to_3d)) > 1:
        raise ConvRewriteError("choose at most one of --to-2d, --to-1d, --to-3d")
    fold_names: list[str] = []
    for f in folds:
        for name in (fold_order() if f == "all" else [f]):
            if name not in fold_names:
                fold_names.append(name)
    order: list[str] = []
    if to_1d:
        order.append("to-1d")
    order.extend(fold_names)
    if to_2d:
        order.append("to-2d")
    if to_3d:
        order.append("to-3d")
    order.extend(e for e in extra if e not in order)
    if not order:
        raise ConvRewriteError("nothing to do: give --to-2d, --to-1d, --to-3d, --fold NAME or --pass NAME")
    return order


def render_summary(result: RewriteResult) -> str:
    """Counts of what happened: rewritten, skipped by reason, wrappers inserted and cancelled."""
    s = summarize(result)
    lines = [f"passes: {', '.join(result.passes)}"]
    lines.append(f"considered {s['considered']}: rewritten {s['rewritten']}, skipped {s['skipped']}")
    for reason, n in s["skipped_by_reason"].items():
        lines.append(f"  skipped {n:>4} x {reason}")
    counters = s["counters"]
    if counters:
        lines.append("  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counters.items()))
    return "\n".join(lines)


def render_records(result: RewriteResult) -> str:
    rows = []
    for r in result.records:
        detail = r.reason if not r.rewritten else _attr_change(r.before, r.after)
        rows.append(f"  {r.status:<9} {r.pass_name:<10} {r.node}  {detail}".rstrip())
    return "\n".join(rows)


def _attr_change(before: dict | None, after: dict | None) -> str:
    if not before or not after:
        return ""
    changed = [f"{k}: {before.get(k)} -> {after.get(k)}" for k in after if before.get(k) != after.get(k)]
    return "; ".join(changed)


@click.command("rewrite")
@click.argument("model", type=click.Path(dir_okay=True, path_type=str))
@click.option("-o", "--output", type=click.Path(path_type=str), help="Where to write the rewritten model.")
@click.option("--in-place", is_flag=True, help="Overwrite MODEL itself (atomically).")
@click.option("--to-2d", "to_2d", is_flag=True, help="Lift 1D convolutions (and their regions) to 2D.")
@click.option("--to-1d", "to_1d", is_flag=True, help="Lower 2D convolutions with a unit axis (and exporter wrappers) to 1D.")
@click.option("--to-3d", "to_3d", is_flag=True, help="Lift 2D convolutions to 3D.")
@click.option("--layout", type=click.Choice(["h", "w"]), default="h", show_default=True,
              help="Where lifting puts the unit axis: h = [N,C,1,L], w = [N,C,L,1].")
@click.option("--fold", "folds", multiple=True, type=RegistryChoice("fold", ("all",)), help=_fold_help())
@click.option("--pass", "extra_passes", multiple=True, metavar="NAME",
              help="Run another registered pass by name, after the others: "
                   + ", ".join(name for name, _ in describe_rules("extra")) + ".")
@click.option("--fuse-separable", is_flag=True, help="Fuse depthwise+pointwise pairs into one dense conv.")
@click.option("--expand-dilations", is_flag=True, help="Turn dilations into zero-inserted kernels (for targets without dilation).")
@click.option("--causal-target", type=click.Choice(["CausalConvWithState"]), default=None,
              help="Also fold streaming Concat->Conv->Slice into this op (opset 27).")
@click.option("--force", is_flag=True, help="Fuse even when it costs more; write even when --check fails.")
@click.option("--report", "report_path", type=click.Path(path_type=str), help="Write every record as JSON here.")
@click.option("--check", "run_check", is_flag=True, help="Run original and result in onnxruntime and compare before writing.")
@click.option("--bisect", is_flag=True, help="With --check: when outputs differ, find the rewrite(s) that cause it.")
@click.option("--providers", default=None, help="With --check: providers to compare on (cpu,cuda). Default: all that can run.")
@click.option("--require", "required", default=None, help="With --check: providers that must run (e.g. cuda).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --check: seed for random inputs.")
@click.option("--trials", type=int, default=1, show_default=True, help="With --check: number of input sets.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x64x128", help="With --check: size of dynamic input dims.")
@click.option("--range", "ranges", multiple=True, metavar="NAME=LO,HI",
              help="With --check: draw this input uniformly from [LO, HI] instead of a standard normal.")
@click.option("--ort-opt", "ort_opt", default="disabled", metavar="LEVEL",
              help="With --check: onnxruntime graph optimizations: disabled (default), basic, extended, all.")
@click.option("--inputs", "inputs_path", type=click.Path(path_type=str), default=None,
              help="With --check: inputs from an .npz or a folder of .pb tensors.")
@click.option("--atol", "atols", multiple=True, metavar="[OUT=]VALUE", help="With --check: absolute tolerance.")
@click.option("--rtol", "rtols", multiple=True, metavar="[OUT=]VALUE", help="With --check: relative tolerance.")
@click.option("--external-data/--no-external-data", default=None,
              help="Write weights to a .data file beside the output (default: as the input, or when > 2 GB).")
@guarded
def rewrite_command(model: str, output: str | None, in_place: bool, to_2d: bool, to_1d: bool, to_3d: bool,
                    layout: str, folds: tuple[str, ...], extra_passes: tuple[str, ...], fuse_separable: bool,
                    expand_dilations: bool, causal_target: str | None, force: bool, report_path: str | None,
                    run_check: bool, bisect: bool, providers: str | None, required: str | None, seed: int,
                    trials: int, shapes: tuple[str, ...], ranges: tuple[str, ...], ort_opt: str,
                    inputs_path: str | None, atols: tuple[str, ...], rtols: tuple[str, ...],
                    external_data: bool | None) -> None:
    """Rewrite the convolutions of MODEL and write the result to -o OUT.

    Every convolution considered gets a record (rewritten, or skipped with the
    reason); --report writes them all. The output is written only after it
    passes onnx.checker and shape inference (and --check, when asked).
    """
    opts = settings()
    if output is None and not in_place:
        raise ConvRewriteError("give -o OUT (or --in-place to overwrite the input)")
    if output is not None and in_place and not same_file(output, model):
        raise ConvRewriteError("--in-place writes over MODEL; do not give a different -o")
    if bisect and not run_check:
        raise ConvRewriteError("--bisect needs --check")
    target = output if output is not None else model
    order = pass_order(to_2d, to_1d, to_3d, folds, extra_passes)
    unknown = [p for p in order if p not in available_passes()]
    if unknown:
        raise ConvRewriteError(f"unknown pass {unknown[0]!r} (known: {', '.join(available_passes())})")
    writable_target(target, target)
    if report_path:
        _check_report_path(report_path, model, target)

    loaded = load_with_info(model)
    options: dict[str, Any] = dict(layout=layout, fuse_separable=fuse_separable, force=force,
                                   expand_dilations=expand_dilations, causal_target=causal_target)
    original = loaded.model
    result = _run_with_progress(original, order, options, quiet=opts.quiet, copy=run_check)

    if not opts.quiet:
        click.echo(render_summary(result))
        if opts.verbose:
            click.echo(render_records(result))

    if run_check:
        from .cli_check import check_and_render  # the checker pulls in onnxruntime

        check_args = dict(providers=providers, required=required, seed=seed, trials=trials, shapes=shapes,
                          ranges=ranges, ort_opt=ort_opt, inputs_path=inputs_path, atols=atols, rtols=rtols,
                          quiet=opts.quiet, verbose=opts.verbose)
        ok = check_and_render(original, result.model, **check_args)
        if not ok:
            if bisect:
                from .cli_check import bisect_and_render

                bisect_and_render(original, order, options, result, **check_args)
            if not force:
                if report_path:
                    _write_json(report_path, result.to_dict())  # the records say what to look at (not the model)
                click.echo("convrewrite: outputs differ; nothing written (use --force to write anyway)", err=True)
                sys.exit(1)
    if external_data is None:
        external_data = True if loaded.had_external_data else None
    written = save(result.model, target, external_data=external_data, source=model, in_place=in_place,
                   source_files=loaded.external_files)
    if report_path:
        _write_json(report_path, result.to_dict())
    if not opts.quiet:
        click.echo(f"wrote {written}")


def _run_with_progress(model, order: list[str], options: dict[str, Any], quiet: bool, copy: bool) -> RewriteResult:
    """Run the passes; a progress bar on stderr when it is a terminal."""
    if quiet or not sys.stderr.isatty() or len(order) < 2:
        return rewrite(model, order, copy=copy, **options)
    with click.progressbar(length=len(order), label="rewriting", file=sys.stderr) as bar:
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                bar.update(1)
            seen.append(name)
            bar.label = f"rewriting: {name}"

        result = rewrite(model, order, copy=copy, on_pass=step, **options)
        bar.update(1)
    return result


def _check_report_path(report: str, model: str, target: str) -> None:
    """Refuse a --report path that cannot be written or would replace the input or the output."""
    writable_target(report, f"--report {report}")
    for other, what in ((model, "the input model"), (target, "the output model")):
        if same_file(report, other):
            raise ConvRewriteError(f"--report {report}: is {what}; give another file name")


def _write_json(path: str, data: dict[str, Any]) -> None:
    from .io import _atomic_write

    target = writable_target(path, f"--report {path}")
    try:
        _atomic_write(target.parent if str(target.parent) else Path("."), target, [json.dumps(data, indent=2, default=str).encode() + b"\n"])
    except OSError as exc:
        raise ConvRewriteError(f"--report {path}: cannot write: {exc.strerror or exc}") from None
