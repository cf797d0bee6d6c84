"""`convrewrite check`: run two models (or one model and reference outputs) and compare.

Parses options, calls `checker.check`, renders. Exit 0 equivalent; 1 not
equivalent or a required provider unavailable; 2 cannot check (the original
does not run), a usage error or an unreadable model (one line on stderr,
never a traceback).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click

from .cli_common import OptionError, Progress, guarded, settings
from .interrupts import exit_on_interrupt

if TYPE_CHECKING:
    import onnx

    from .checker import BisectResult, CheckReport

# The checker (onnx, numpy, onnxruntime) loads inside the functions below, so that a usage error is
# reported at once.


# ------------------------------------------------------------------- parsing


def _split_named(text: str, option: str, example: str) -> tuple[str, str]:
    name, sep, value = text.rpartition("=")
    if not sep or not name:
        raise OptionError(f"{option} {text!r}: expected {example}")
    return name, value


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`x=1x64x128` -> ('x', (1, 64, 128)); `x=` is a scalar."""
    example = "NAME=DxDxD (e.g. x=1x64x128)"
    name, value = _split_named(text, "--shape", example)
    if not value.strip():
        return name, ()
    dims = []
    for part in value.replace(",", "x").split("x"):
        part = part.strip()
        if not part.isdigit():
            raise OptionError(f"--shape {text!r}: expected {example}")
        dims.append(int(part))
    return name, tuple(dims)


def parse_range(text: str) -> tuple[str, tuple[float, float]]:
    """`x=-1,1` -> ('x', (-1.0, 1.0))."""
    example = "NAME=LO,HI (e.g. x=-1,1)"
    name, value = _split_named(text, "--range", example)
    try:
        lo, hi = (float(p) for p in value.split(","))
    except ValueError:
        raise OptionError(f"--range {text!r}: expected {example}") from None
    return name, (lo, hi)  # bounds are validated by the checker


def parse_tolerances(values: tuple[str, ...], option: str) -> dict[str, float] | None:
    """`1e-4` sets the global value (key ''), `OUT=1e-3` one output's."""
    if not values:
        return None
    out: dict[str, float] = {}
    for text in values:
        name, sep, value = text.rpartition("=")
        if not sep:
            name, value = "", text
        elif not name:
            raise OptionError(f"{option} {text!r}: expected VALUE or OUTPUT=VALUE")
        try:
            out[name] = float(value)  # the range (finite, >= 0) is validated by the checker
        except ValueError:
            raise OptionError(f"{option} {text!r}: {value!r} is not a number") from None
    return out


def parse_int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise OptionError(f"{option}: {text!r} is not an integer") from None


def named_values(values: tuple[str, ...], parse: Callable[[str], tuple[str, Any]], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for text in values:
        name, value = parse(text)
        if name in out:
            raise OptionError(f"{option}: {name!r} given twice")
        out[name] = value
    return out


def _check_json_target(path: str | None, reads: list[tuple[str, str | None]], option: str = "--json") -> None:
    """Refuse, before spending time on the check, a --json (or --html) file that cannot be written or names a file read.

    The models' external data files count as read: finding them parses the
    models once more (their weights are not read).
    """
    if path is None or path == "-":
        return
    from .model import check_distinct, model_files, writable_target

    writable_target(path, option)
    check_distinct([(option, path)], [(label, p) for label, p in reads if p])
    for label, p in reads[:2]:  # ORIGINAL, CANDIDATE
        if p:
            check_distinct([(option, path)], [(f"{label}'s external data", f) for f in model_files(p)[1:]])


def check_options(
    *,
    providers: str | None = None,
    required: str | Iterable[str] | None = None,
    seed: int = 0,
    trials: int = 1,
    shapes: Iterable[str] = (),
    ranges: Iterable[str] = (),
    inputs_path: str | None = None,
    atols: Iterable[str] = (),
    rtols: Iterable[str] = (),
    ort_opt: str = "disabled",
    finite: bool = False,
    draws: str | None = None,
    ignore_interface: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:
    """The keyword arguments of `checker.check` from option strings as typed (shared with `rewrite --check`)."""
    if isinstance(required, str):
        required = [required]
    return dict(
        inputs=inputs_path,
        seed=seed,
        trials=trials,
        shapes=named_values(tuple(shapes), parse_shape, "--shape") or None,
        ranges=named_values(tuple(ranges), parse_range, "--range") or None,
        atol=parse_tolerances(tuple(atols), "--atol"),
        rtol=parse_tolerances(tuple(rtols), "--rtol"),
        providers=providers,
        require=list(required or []) or None,
        ort_opt=ort_opt,
        finite=finite,
        draws=draws,
        ignore_interface=ignore_interface,
        verbose=verbose,
    )


def check_and_render(
    original: onnx.ModelProto,
    candidate: onnx.ModelProto,
    *,
    quiet: bool = False,
    verbose: bool = False,
    err: bool = False,
    on_progress: Callable[[str], None] | None = None,
    layers: bool = False,
    tensor_map: list[dict[str, Any]] | None = None,
    tensors_gone: Iterable[str] | None = None,
    **options: Any,
) -> CheckReport:
    """`rewrite --check`: compare in-memory models, print the report (or its verdict line), return it.

    `options` are those of `check_options` (option strings as typed); `layers`, `tensor_map`: see `check`.
    """
    from . import runtime
    from .checker import check, render_text

    if not verbose:
        runtime.quiet_onnxruntime()
    report = check(
        original, candidate, original_label="original", candidate_label="rewritten", on_progress=on_progress,
        layers=layers, tensor_map=tensor_map, tensors_gone=tensors_gone, **check_options(verbose=verbose, **options),
    )
    click.echo(report.summary if quiet else render_text(report, verbose=verbose), err=err)
    return report


def bisect_and_render(
    original: onnx.ModelProto,
    order: list[str],
    rewrite_options: dict[str, Any],
    result: Any,
    *,
    quiet: bool = False,
    verbose: bool = False,
    err: bool = False,
    layers: bool = False,
    **options: Any,
) -> BisectResult:
    """`rewrite --check --bisect`: find the rewrite records that make the outputs differ and name them.

    Re-runs the passes `order` with `only=` subsets of the keys `result` rewrote. With `layers`, the model
    with only the culprits rewritten is compared layer by layer: the first layer where they show.
    """
    from .checker import bisect, render_text
    from .api import rewrite

    def rewrite_fn(only: set[str] | None = None) -> Any:
        return rewrite(original, order, only=only, **rewrite_options)

    keys = [r.key for r in result.records if r.status == "rewritten"]
    # A required provider that cannot run fails every subset alike: no rewrite to blame, so bisect without it.
    options = {**options, "required": None}
    found = bisect(original, rewrite_fn, keys, layers=layers, **check_options(verbose=verbose, **options))
    click.echo(found.describe(), err=err)
    if found.culprits and not quiet:
        click.echo(render_text(found.report, verbose=verbose), err=err)
    return found


# ------------------------------------------------------------------- command


def _check_batch(ctx: click.Context, folder: str, jobs: int, json_path: str | None, quiet: bool, verbose: bool) -> int:
    """Every model in `folder` against the outputs saved beside it (X.onnx with X.npz)."""
    from . import batch

    if json_path and json_path != "-":
        from .model import writable_target

        writable_target(json_path, "--json")
    options = batch.option_argv(ctx.command, ctx.params, {"original", "candidate", "expected_path", "json_path", "jobs",
                                                         "inputs_path"})
    work = []
    for model in batch.models_in([folder]):
        npz = os.path.splitext(model)[0] + ".npz"
        argv = ["check", model, "--expected", npz, *options] if os.path.isfile(npz) else [
            "check", model, "--expected", npz]  # the child says the .npz is missing
        job = batch.Job(model, argv, report_option="--json")
        work.append(job)

    def describe(job: batch.Job) -> str:
        data = job.result["report"]
        return data["summary"] if data else (job.result["error"] or "failed")

    return batch.run(work, jobs, json_path, quiet, verbose, describe)


@click.command("check")
@click.argument("original", metavar="ORIGINAL")
@click.argument("candidate", metavar="[CANDIDATE]", required=False)
@click.option("--inputs", "inputs_path", metavar="FILE.npz|DIR",
              help="Inputs to use instead of random ones: an .npz keyed by input name, or a folder of input_N.pb "
                   "(optionally in test_data_set_N/). Other keys are ignored.")
@click.option("--expected", "expected_path", metavar="FILE.npz|DIR",
              help="Reference outputs (keyed by output name) to compare ORIGINAL against, instead of a CANDIDATE. "
                   "Inputs default to the same file.")
@click.option("--seed", default="0", metavar="N", help="Seed of the random inputs (trial k uses N+k). Default 0.")
@click.option("--trials", default="1", metavar="N",
              help="Number of normal draws (the wide and special-values draws are added once each). Default 1.")
@click.option("--finite", is_flag=True, help="Leave out the special-values draw (Inf, NaN, -0, subnormals).")
@click.option("--draws", metavar="LIST", help="Which draws run: normal,wide,special (default: all three).")
@click.option("--shape", "shapes", multiple=True, metavar="NAME=1x64x128",
              help="Shape of an input with dynamic dimensions (repeatable). Default: chosen so the original runs.")
@click.option("--range", "ranges", multiple=True, metavar="NAME=LO,HI",
              help="Draw this input uniformly from [LO, HI] instead of a standard normal (repeatable).")
@click.option("--atol", "atols", multiple=True, metavar="[OUT=]VALUE",
              help="Absolute tolerance, for every output or one (repeatable). Default by dtype.")
@click.option("--rtol", "rtols", multiple=True, metavar="[OUT=]VALUE",
              help="Relative tolerance, for every output or one (repeatable). Default by dtype.")
@click.option("--providers", metavar="LIST",
              help="Comma list: cpu, cuda, tensorrt or full names. Default: every provider that really runs "
                   "(TensorRT only when named).")
@click.option("--require", "require", multiple=True, metavar="LIST",
              help="Providers that must run: unavailable is a failure (exit 1).")
@click.option("--ort-opt", "ort_opt", default="disabled", metavar="LEVEL",
              help="onnxruntime graph optimizations: disabled (default), basic, extended, all.")
@click.option("--ignore-interface", is_flag=True,
              help="Interface changes (names, types, dims of inputs and outputs) are warnings, not failures.")
@click.option("--layers", is_flag=True,
              help="Also compare intermediate tensors, layer by layer, and name the first pair that diverges: matched "
                   "by name and shape, or by --map.")
@click.option("--map", "map_path", metavar="REPORT.json",
              help="With --layers: the tensor map of a `rewrite --report` file that made CANDIDATE from ORIGINAL.")
@click.option("--json", "json_path", metavar="FILE",
              help="Also write the report as JSON ('-': stdout, no table); for a folder, one JSON line per model.")
@click.option("--html", "html_path", metavar="FILE",
              help="Also write a self-contained HTML report: verdict, per-output error histograms, and drawings of "
                   "the regions where CANDIDATE's graph differs from ORIGINAL's.")
@click.option("--jobs", type=int, default=1, show_default=True,
              help="ORIGINAL a folder: models checked at once, each in its own process.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the verdict line.")
@click.option("-v", "--verbose", is_flag=True, help="Details for every output and onnxruntime's own log lines.")
@guarded
def check_command(
    original: str,
    candidate: str | None,
    inputs_path: str | None,
    expected_path: str | None,
    seed: str,
    trials: str,
    shapes: tuple[str, ...],
    ranges: tuple[str, ...],
    atols: tuple[str, ...],
    rtols: tuple[str, ...],
    providers: str | None,
    require: tuple[str, ...],
    ort_opt: str,
    finite: bool,
    draws: str | None,
    ignore_interface: bool,
    layers: bool,
    map_path: str | None,
    json_path: str | None,
    html_path: str | None,
    jobs: int,
    quiet: bool,
    verbose: bool,
) -> None:
    """Run ORIGINAL and CANDIDATE on the same inputs and compare every output.

    With --expected, compare ORIGINAL against reference outputs (from the
    framework it was exported from) instead. ORIGINAL a folder: each X.onnx
    in it against the X.npz beside it (--jobs at once; one line per model;
    --json gets one JSON line per model; the exit code is the worst). Exit 0 equivalent, 1 not
    equivalent (or a --require'd provider unavailable), 2 cannot check (the
    original does not run on any input tried), bad usage or unreadable model.
    """
    if candidate is None and expected_path is None and os.path.isdir(original):
        if html_path:
            raise OptionError("--html takes one model (one report per check), not a folder")
        sys.exit(_check_batch(click.get_current_context(), original, jobs, json_path, quiet, verbose))
    with exit_on_interrupt():  # Ctrl-C while onnx and onnxruntime load: exit at once
        from . import runtime
        from .checker import CheckInputError, check, render_text
        from .model import write_text_target

    quiet = quiet or settings().quiet
    verbose = verbose or settings().verbose
    if not verbose:
        runtime.quiet_onnxruntime()
    if candidate is None and expected_path is None:
        raise CheckInputError("give CANDIDATE, or --expected FILE to compare ORIGINAL with reference outputs")
    if candidate is not None and expected_path is not None:
        raise CheckInputError("give either CANDIDATE or --expected, not both")
    _check_json_target(json_path, [("the input ORIGINAL", original), ("the input CANDIDATE", candidate),
                                   ("--inputs", inputs_path), ("--expected", expected_path)])
    _check_html_target(html_path, json_path, [("the input ORIGINAL", original), ("the input CANDIDATE", candidate),
                                              ("--inputs", inputs_path), ("--expected", expected_path)])
    options = check_options(
        providers=providers, required=require, seed=parse_int(seed, "--seed"),
        trials=parse_int(trials, "--trials"), shapes=shapes, ranges=ranges, inputs_path=inputs_path,
        atols=atols, rtols=rtols, ort_opt=ort_opt, finite=finite, draws=draws, ignore_interface=ignore_interface,
        verbose=verbose,
    )
    if map_path is not None and not layers:
        raise CheckInputError("--map needs --layers")
    if layers and candidate is None:
        raise CheckInputError("--layers compares two models: give CANDIDATE (not --expected)")
    layer_args: dict[str, Any] = {"layers": layers}
    if map_path is not None:
        from .checker import read_map

        layer_args["tensor_map"], layer_args["tensors_gone"] = read_map(map_path)
    with Progress(not quiet) as progress:
        report = check(original, candidate, expected=expected_path, on_progress=progress, **options, **layer_args)
    if json_path == "-":
        click.echo(report.to_json())
    else:
        if json_path is not None:
            write_text_target(json_path, report.to_json() + "\n", "--json")  # atomic: old file or whole new one
        click.echo(report.summary if quiet else render_text(report, verbose=verbose))
    if html_path is not None:
        _write_html(html_path, original, candidate, report, verbose)
    sys.exit(report.exit_code)


def _check_html_target(path: str | None, json_path: str | None, reads: list[tuple[str, str | None]]) -> None:
    """Refuse, before the check, an --html path that cannot be written or names a file read or --json."""
    if path is None:
        return
    from .cli_rewrite import html_target
    from .model import check_distinct

    html_target(path)
    _check_json_target(path, reads, "--html")
    check_distinct([("--json", json_path), ("--html", path)], [])


def _write_html(path: str, original: str, candidate: str | None, report: CheckReport, verbose: bool) -> None:
    """--html: the page, drawn from both models' graphs (read again, weights left on disk)."""
    from .checker import render_text
    from .model import parse, read_regular_bytes
    from .report_html import write_html_report

    def graph(p: str | None) -> onnx.ModelProto | None:
        return parse(read_regular_bytes(p, ""), p) if p else None

    write_html_report(path, graph(original), graph(candidate), check=report,
                      summary=render_text(report, verbose=verbose),
                      title=f"convrewrite check: {original} vs {candidate or report.expected}")
