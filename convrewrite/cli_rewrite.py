"""`convrewrite rewrite`: run passes, optionally check the result, write it atomically."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from .cli_common import Progress, guarded, settings, verbosity_options
from .errors import ConvRewriteError
from .interrupts import exit_on_interrupt
from .presets import PRESETS, resolve

if TYPE_CHECKING:
    from .model import LoadedModel
    from .engine import RewriteResult

# onnx, numpy and the rules load only when a rewrite runs or --help lists the passes, so that a usage
# error is reported at once (imports inside the functions below).


def describe_rules(phase: str | None = None) -> list[tuple[str, str]]:
    from .engine import describe_rules as describe

    return describe(phase)


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


class _RewriteCommand(click.Command):
    """`rewrite --help` ends with the registered passes (read from the registry only when help is shown)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.epilog = _passes_epilog()
        super().format_epilog(ctx, formatter)


# Options that act inside a fold: each implies its fold.
IMPLIED_FOLDS = (("fuse_separable", "--fuse-separable", "separable"), ("expand_dilations", "--expand-dilations", "dilated"),
                 ("causal_target", "--causal-target", "causal"))


def _implied_folds(folds: tuple[str, ...], fuse_separable: bool, expand_dilations: bool, causal_target: str | None,
                   quiet: bool) -> tuple[str, ...]:
    """Add the fold an option needs (`--fuse-separable` alone means `--fold separable --fuse-separable`)."""
    given = {"fuse_separable": fuse_separable, "expand_dilations": expand_dilations, "causal_target": causal_target}
    out = list(folds)
    for key, flag, fold in IMPLIED_FOLDS:
        if given[key] and "all" not in out and fold not in out:
            out.append(fold)
            if not quiet:
                click.echo(f"note: {flag} implies --fold {fold}", err=True)
    return tuple(out)


def _passes_epilog() -> str:
    """The registered passes, for `rewrite --help` (from the registry, so third-party rules show too)."""
    lines = ["Passes (--fold NAME, --pass NAME, or the --to-* flags):"]
    for name, description in describe_rules():
        first = (description or "").strip().splitlines()[0] if description else ""
        lines.append(f"  {name}: {first}" if first else f"  {name}")
    return "\b\n" + "\n".join(lines)


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
        from .engine import fold_order

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


def render_summary(result: RewriteResult, verbose: bool = False) -> str:
    """What happened to the convolutions, as a person reads it: rewritten by which passes, refused and why.

    Skips that only say a pattern is absent ("not depthwise") are counted, and
    listed with -v; counters show only when non-zero.
    """
    from .engine import summarize

    s = summarize(result)
    lines = [f"passes: {', '.join(result.passes)}"]
    n = s["convolutions"]
    lines.append(f"{n} convolution{'s' if n != 1 else ''}: {s['convolutions_rewritten']} rewritten, "
                 f"{s['convolutions_left_alone']} left alone")
    for passes, count in s["by_passes"].items():
        lines.append(f"  {count:>4} rewritten by {passes}")
    for reason, count in s["refused_by_reason"].items():
        lines.append(f"  {count:>4} x refused by {reason}")
    for note, count in s["notes"].items():
        lines.append(f"  {count:>4} x rewritten, but {note}")
    if s["not_applicable"]:
        if verbose:
            shown = {k: v for k, v in s["skipped_by_reason"].items()
                     if not any(k == r.split(": ", 1)[1] for r in s["refused_by_reason"])}
            for reason, count in shown.items():
                lines.append(f"  {count:>4} x not applicable: {reason}")
        else:
            lines.append(f"  ({s['not_applicable']} pass x convolution pairs had no pattern to rewrite; -v lists them)")
    counters = {k: v for k, v in s["counters"].items() if v}
    if counters:
        lines.append("  " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counters.items()))
    forced = counters.get("folds_forced_past_bound", 0)
    if forced:
        lines.append(f"warning: {forced} fold(s) forced past their error bound (--force): outputs may differ "
                     "beyond the dtype's default tolerance")
    if not s["convolutions_rewritten"]:
        lines.append("nothing was rewritten" + (": the model has no convolution" if not n else
                                                 ": every convolution was left alone (see above)"))
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


@click.command("rewrite", cls=_RewriteCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str, readable=False),
                metavar="MODEL [OUT] | MODEL... DIR...")
@click.option("-o", "--output", type=click.Path(path_type=str, readable=False), help="Where to write the rewritten model.")
@click.option("--in-place", is_flag=True, help="Overwrite MODEL itself (atomically).")
@click.option("--to-2d", "to_2d", is_flag=True, help="Lift 1D convolutions (and their regions) to 2D.")
@click.option("--to-1d", "to_1d", is_flag=True, help="Lower 2D convolutions with a unit axis (and exporter wrappers) to 1D.")
@click.option("--to-3d", "to_3d", is_flag=True, help="Lift 2D convolutions to 3D.")
@click.option("--layout", type=click.Choice(["h", "w", "auto"]), default=None,
              help="Where lifting puts the unit axis: h = [N,C,1,L] (default), w = [N,C,L,1], auto = keep 1D, h or "
                   "w, whichever runs fastest on --provider (1D unless faster by more than the measured noise), "
                   "region by region where the lifted regions are independent.")
@click.option("--for", "preset_name", type=click.Choice(list(PRESETS)), default=None,
              help="Target preset: the passes, layout and options that runtime wants (README: choosing a layout); "
                   "explicit flags override it.")
@click.option("--provider", default=None, metavar="NAME",
              help="With --layout auto: the provider to time the forms on (cpu, cuda, tensorrt). Default cpu.")
@click.option("--fold", "folds", multiple=True, type=RegistryChoice("fold", ("all",)),
              help="Fold a pattern into canonical convolutions (repeatable; 'all' = every fold, in the order "
                   "listed under Passes below).")
@click.option("--pass", "extra_passes", multiple=True, metavar="NAME",
              help="Run another registered pass by name, after the others (see Passes below).")
@click.option("--fuse-separable", is_flag=True, help="Fuse depthwise+pointwise pairs into one dense conv.")
@click.option("--expand-dilations", is_flag=True, help="Turn dilations into zero-inserted kernels (for targets without dilation).")
@click.option("--assume-finite", is_flag=True,
              help="Allow finite-math rewrites (zero-inserted kernels <-> dilations, a Pad moved across "
                   "DynamicQuantizeLinear): outputs may differ for Inf/NaN inputs or an all-subnormal input "
                   "(implies --finite for --check).")
@click.option("--causal-target", type=click.Choice(["CausalConvWithState"]), default=None,
              help="Also fold streaming Concat->Conv->Slice into this op (opset 27).")
@click.option("--force", is_flag=True, help="Fuse even when it costs more; write even when --check fails.")
@click.option("--report", "report_path", type=click.Path(path_type=str, readable=False), help="Write every record as JSON here.")
@click.option("--html", "html_path", type=click.Path(path_type=str, readable=False),
              help="Write a self-contained HTML report here: summary, records, before/after drawings of each "
                   "rewritten region, and with --check the error histograms.")
@click.option("--check", "run_check", is_flag=True, help="Run original and result in onnxruntime and compare before writing.")
@click.option("--bisect", is_flag=True, help="With --check: when outputs differ, find the rewrite(s) that cause it.")
@click.option("--layers", is_flag=True,
              help="With --check: also compare the intermediate tensors the rewrite maps, layer by layer, and name the "
                   "first that diverges (with --bisect: the first layer where the culprit shows).")
@click.option("--providers", default=None, help="With --check: providers to compare on (cpu,cuda). Default: all that can run.")
@click.option("--require", "required", default=None, help="With --check: providers that must run (e.g. cuda).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --check: seed for random inputs.")
@click.option("--trials", type=int, default=1, show_default=True,
              help="With --check: number of normal draws (the wide and special-values draws are added once each).")
@click.option("--finite", is_flag=True, help="With --check: leave out the special-values draw (Inf, NaN, -0, subnormals).")
@click.option("--draws", metavar="LIST", help="With --check: which draws run: normal,wide,special (default: all).")
@click.option("--ignore-interface", is_flag=True, help="With --check: interface changes are warnings, not failures.")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x64x128", help="With --check: size of dynamic input dims.")
@click.option("--range", "ranges", multiple=True, metavar="NAME=LO,HI",
              help="With --check: draw this input uniformly from [LO, HI] instead of a standard normal.")
@click.option("--ort-opt", "ort_opt", default="disabled", metavar="LEVEL",
              help="With --check: onnxruntime graph optimizations: disabled (default), basic, extended, all.")
@click.option("--inputs", "inputs_path", type=click.Path(path_type=str, readable=False), default=None,
              help="With --check: inputs from an .npz or a folder of .pb tensors.")
@click.option("--atol", "atols", multiple=True, metavar="[OUT=]VALUE", help="With --check: absolute tolerance.")
@click.option("--rtol", "rtols", multiple=True, metavar="[OUT=]VALUE", help="With --check: relative tolerance.")
@click.option("--external-data/--no-external-data", default=None,
              help="Write weights to a .data file beside the output (default: as the input, or when > 2 GB).")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="Batch (several models, or a folder, with -o OUTDIR): models rewritten at once, each in its own process.")
@verbosity_options
@guarded
def rewrite_command(paths: tuple[str, ...], output: str | None, in_place: bool, to_2d: bool, to_1d: bool, to_3d: bool,
                    layout: str | None, preset_name: str | None, provider: str | None,
                    folds: tuple[str, ...], extra_passes: tuple[str, ...], fuse_separable: bool,
                    expand_dilations: bool, assume_finite: bool, causal_target: str | None, force: bool,
                    report_path: str | None, html_path: str | None,
                    run_check: bool, bisect: bool, layers: bool, providers: str | None, required: str | None, seed: int,
                    trials: int, finite: bool, draws: str | None, ignore_interface: bool, shapes: tuple[str, ...],
                    ranges: tuple[str, ...], ort_opt: str,
                    inputs_path: str | None, atols: tuple[str, ...], rtols: tuple[str, ...],
                    external_data: bool | None, jobs: int) -> None:
    """Rewrite the convolutions of MODEL and write the result to OUT (or -o OUT).

    Batch: several models and folders (their *.onnx) with -o OUTDIR write
    OUTDIR/NAME for each, --jobs at once; one line per model, --report FILE
    gets one JSON line per model, the exit code is the worst of all.

    Every convolution considered gets a record (rewritten, or skipped with the
    reason); --report writes them all. The output is written only after it
    passes onnx.checker and shape inference (and --check, when asked).
    """
    with exit_on_interrupt():  # Ctrl-C while onnx and the rules load: exit at once
        from . import api  # noqa: F401 - the rules and onnx load now, under the interrupt guard
        from .model import check_distinct, load_with_info, needs_external_data, same_file, save, writable_target
        from .passes import available_passes

    opts = settings()
    model, out, batch = _split_paths(paths, output, in_place)
    if batch:
        if html_path:
            raise ConvRewriteError("--html takes one MODEL (one report per model): rewrite them one at a time")
        ctx = click.get_current_context()
        sys.exit(_rewrite_batch(ctx, paths, output, jobs, report_path, opts))
    if out is not None and (output is not None or in_place):
        raise ConvRewriteError("give OUT or -o OUT (or --in-place), not both")
    output = output if output is not None else out
    folds = _implied_folds(folds, fuse_separable, expand_dilations, causal_target, quiet=opts.quiet)
    if output is None and not in_place:
        raise ConvRewriteError("give -o OUT (or --in-place to overwrite the input)")
    if output is not None and in_place and not same_file(output, model):
        raise ConvRewriteError("--in-place writes over MODEL; do not give a different -o")
    if bisect and not run_check:
        raise ConvRewriteError("--bisect needs --check")
    if layers and not run_check:
        raise ConvRewriteError("--layers needs --check")
    plan = resolve(preset_name, to_2d, to_1d, to_3d, layout, folds, provider)
    if plan.layout == "auto" and not plan.to_2d:
        raise ConvRewriteError("--layout auto chooses the form of --to-2d; give --to-2d")
    target = output if output is not None else model
    order = pass_order(plan.to_2d, plan.to_1d, plan.to_3d, plan.folds, extra_passes)
    unknown = [p for p in order if p not in available_passes()]
    if unknown:
        raise ConvRewriteError(f"unknown pass {unknown[0]!r} (known: {', '.join(available_passes())})")
    target_option = "--in-place" if output is None else "-o"
    writable_target(target, target_option)
    if report_path and report_path != "-":
        writable_target(report_path, "--report")
    if html_path is not None:
        html_target(html_path)
    inputs = [("--inputs", inputs_path)] if run_check and inputs_path else []
    # What can be checked without reading the model, before reading it.
    check_distinct(([] if in_place else [(target_option, target)]) + [("--report", report_path), ("--html", html_path)],
                   [("the input model", model)] + inputs)

    with Progress(not opts.quiet) as progress:
        progress(f"loading {model}")
        loaded = load_with_info(model)
    original = loaded.model
    want_external = external_data
    if want_external is None:
        want_external = loaded.had_external_data or needs_external_data(original)
    _check_written_paths(loaded, target, target_option, want_external, in_place, report_path, inputs, html_path)
    options: dict[str, Any] = dict(layout="h" if plan.layout == "auto" else plan.layout,
                                   fuse_separable=fuse_separable, force=force,
                                   expand_dilations=expand_dilations, assume_finite=assume_finite,
                                   causal_target=causal_target)
    auto_note = ""
    if plan.layout == "auto":
        result, order, options, auto_note = _choose_layout(original, order, options, plan, shapes, inputs_path, seed)
    else:
        result = _run_with_progress(original, order, options, quiet=opts.quiet, copy=run_check or bool(html_path))

    # With --report -, standard output is the report: everything else goes to stderr.
    to_stderr = report_path == "-"
    if not opts.quiet:
        click.echo(render_summary(result, opts.verbose), err=to_stderr)
        if auto_note:
            click.echo(auto_note, err=to_stderr)
        if opts.verbose:
            click.echo(render_records(result), err=to_stderr)

    report = None
    if run_check:
        with exit_on_interrupt():  # the checker pulls in onnxruntime; nothing is written yet
            from .cli_check import check_and_render

        check_args = dict(providers=providers, required=required, seed=seed, trials=trials, shapes=shapes,
                          ranges=ranges, ort_opt=ort_opt, inputs_path=inputs_path, atols=atols, rtols=rtols,
                          finite=finite or assume_finite, draws=draws, ignore_interface=ignore_interface,
                          quiet=opts.quiet, verbose=opts.verbose, err=to_stderr)
        with Progress(not opts.quiet) as progress:
            report = check_and_render(original, result.model, on_progress=progress, layers=layers,
                                      tensor_map=result.tensor_map(original) if layers else None,
                                      tensors_gone=result.tensors_gone() if layers else (), **check_args)
        if report.cannot_check is not None:
            if report_path:
                _write_report(report_path, result, report)
            _write_html(html_path, original, result, report, opts.verbose, f"{model} -> {target}")
            click.echo("convrewrite: cannot check: the original does not run on the inputs tried; nothing written "
                       "(give --shape or --inputs, or drop --check)", err=True)
            sys.exit(2)
        if not report.ok:
            if bisect:
                from .cli_check import bisect_and_render

                bisect_and_render(original, order, options, result, layers=layers, **check_args)
            if not force:
                if report_path:
                    _write_report(report_path, result, report)  # the records say what to look at (not the model)
                _write_html(html_path, original, result, report, opts.verbose, f"{model} -> {target}")
                click.echo("convrewrite: outputs differ; nothing written (use --force to write anyway)", err=True)
                sys.exit(1)
    if not want_external and external_data is None and needs_external_data(result.model):
        want_external = True  # the rewrite grew the model past protobuf's limit: its .data must be checked too
        _check_written_paths(loaded, target, target_option, want_external, in_place, report_path, inputs, html_path)
    with Progress(not opts.quiet) as progress:
        progress(f"writing {target}")
        save(result.model, target, external_data=want_external, source=model, in_place=in_place,
             source_files=loaded.external_files)
    if report_path:
        _write_report(report_path, result, report)
    _write_html(html_path, original, result, report, opts.verbose, f"{model} -> {target}")
    if not opts.quiet:
        click.echo(f"wrote {target}", err=to_stderr)


def _choose_layout(original, order: list[str], options: dict[str, Any], plan, shapes: tuple[str, ...],
                   inputs_path: str | None, seed: int) -> tuple[RewriteResult, list[str], dict[str, Any], str]:
    """--layout auto: time keep-1D, h and w, then region by region (layout_choice.py); the chosen form's order
    and options, for bisect."""
    with exit_on_interrupt():
        from .cli_check import named_values, parse_shape
        from .layout_choice import rewrite_auto

    result, choice, note = rewrite_auto(original, order, options, rewrite, plan.provider, plan.fallback_layout,
                                        named_values(shapes, parse_shape, "--shape") or None, inputs_path, seed)
    if choice is None:
        return result, order, {**options, "layout": plan.fallback_layout}, note
    if choice.chosen == "1d":
        return result, [p for p in order if p != "to-2d"], options, note
    return result, order, {**options, **choice.rewrite_options()}, note  # a per-region form: its `layouts` too


def _check_written_paths(loaded: LoadedModel, target: str, target_option: str, external: bool, in_place: bool,
                         report_path: str | None, inputs: list[tuple[str, str]], html_path: str | None = None) -> None:
    """Refuse, before any work, a written path (output, its .data, --report) that names a read one or another.

    --in-place may replace the model and its external data, nothing else.
    """
    from .model import check_distinct, output_paths

    outs = output_paths(target, external, target_option)
    model_reads = [("the input model", loaded.path)]
    model_reads += [("the input's external data", f) for f in loaded.external_files]
    report = [("--report", report_path), ("--html", html_path)]
    if in_place:
        check_distinct(outs + report, inputs)
        check_distinct(report, model_reads)
    else:
        check_distinct(outs + report, model_reads + inputs)


def _split_paths(paths: tuple[str, ...], output: str | None, in_place: bool) -> tuple[str, str | None, bool]:
    """(model, positional OUT, batch?): `MODEL`, `MODEL OUT`, or several models and folders (a batch)."""
    import os

    dirs = any(os.path.isdir(p) for p in paths)
    if len(paths) == 1 and not dirs:
        return paths[0], None, False
    to_folder = output is not None and (os.path.isdir(output) or output.endswith(("/", os.sep)))
    if len(paths) == 2 and not dirs and not to_folder:
        return paths[0], paths[1], False  # MODEL OUT (a clash with -o or --in-place is reported later)
    if in_place:
        raise ConvRewriteError("--in-place takes one MODEL; for several, give -o OUTDIR")
    if output is None:
        raise ConvRewriteError("several models (or a folder): give -o OUTDIR, the folder to write them to")
    return paths[0], None, True


def _rewrite_batch(ctx: click.Context, paths: tuple[str, ...], outdir: str, jobs: int, report_path: str | None,
                   opts: Any) -> int:
    """Each model in its own process: OUTDIR/NAME; the worst exit code."""
    import os

    from . import batch

    models = batch.models_in(list(paths))
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise ConvRewriteError(f"-o {outdir}: not a folder (several models go to a folder)")
    names = [os.path.basename(m) for m in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConvRewriteError(f"two models named {twice[0]!r}: they would be written to the same OUTDIR file")
    if report_path and report_path != "-":
        from .model import writable_target

        writable_target(report_path, "--report")
    os.makedirs(outdir, exist_ok=True)
    options = batch.option_argv(ctx.command, ctx.params, {"paths", "output", "jobs", "report_path", "in_place"})
    work = [batch.Job(m, ["rewrite", m, "-o", os.path.join(outdir, n), *options], os.path.join(outdir, n))
            for m, n in zip(models, names)]

    def describe(job: batch.Job) -> str:
        data = job.result["report"]
        if job.result["exit_code"] or data is None:
            return job.result["error"] or "failed"
        s = data["summary"]
        return f"{s['convolutions']} convolutions, {s['convolutions_rewritten']} rewritten -> {job.output}"

    return batch.run(work, jobs, report_path, opts.quiet, opts.verbose, describe)


def rewrite(*args: Any, **kwargs: Any) -> RewriteResult:
    """The API's `rewrite`, looked up when called (tests plant a faulty rewrite by replacing this name)."""
    from .api import rewrite as run

    return run(*args, **kwargs)


def _run_with_progress(model, order: list[str], options: dict[str, Any], quiet: bool, copy: bool) -> RewriteResult:
    """Run the passes; on a terminal, the status line names the pass running, with the elapsed time."""
    with Progress(not quiet) as progress:
        if not progress.enabled:
            return rewrite(model, order, copy=copy, **options)
        seen: list[str] = []

        def step(name: str) -> None:
            seen.append(name)
            progress(f"rewriting: {name} ({len(seen)}/{len(order)} passes)")

        return rewrite(model, order, copy=copy, on_pass=step, **options)


def _write_report(path: str, result: RewriteResult, check: Any = None) -> None:
    """--report: every record as JSON (schema convrewrite.rewrite/1; with --check, the check report under
    "check"), atomically (or to standard output for `-`)."""
    from .model import write_text_target

    data = result.to_dict()
    if check is not None:
        data["check"] = check.to_dict()
    write_text_target(path, json.dumps(data, indent=2, default=str) + "\n", "--report")


def html_target(path: str) -> None:
    """Refuse, before any work, an --html path that cannot be written (standard output is not a page's place)."""
    from .model import writable_target

    if path == "-":
        raise ConvRewriteError("--html needs a file name (the page is not written to standard output)")
    writable_target(path, "--html")


def _write_html(path: str | None, original: Any, result: RewriteResult, check: Any, verbose: bool, what: str) -> None:
    """--html: the page (report_html/), atomically; its summary is what the command prints."""
    if not path:
        return
    from .report_html import write_html_report

    summary = render_summary(result, verbose=True)
    if check is not None:
        from .checker import render_text

        summary += "\n\n" + render_text(check, verbose=verbose)
    write_html_report(path, original, result.model, records=result, check=check, summary=summary,
                      title=f"convrewrite rewrite: {what}")
