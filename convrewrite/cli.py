"""The `convrewrite` command line: parse, call the API, render. No graph logic here.

Conventions shared by every command: a ConvRewriteError (bad input, bad
option) is one line on stderr and exit 2, never a traceback; onnxruntime's
own log lines are hidden unless --verbose; SIGTERM during a save cleans up
like Ctrl-C does (the output is written atomically, so the target holds
either the old file or the new one).
"""

from __future__ import annotations

import signal

import click

from . import __version__
from .cli_common import Settings, sigterm_as_interrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="convrewrite")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final verdict.")
@click.option("-v", "--verbose", is_flag=True, help="More detail, including onnxruntime's own log lines.")
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Rewrite convolutions inside ONNX models and prove the result equivalent.

    Commands: inspect (list every convolution), rewrite (1D<->2D, fold causal,
    dilated and separable patterns), check (run two models in onnxruntime and
    compare their outputs).
    """
    ctx.obj = Settings(quiet=quiet, verbose=verbose)
    # onnxruntime is imported (and quietened) only by the commands that run models.
    try:
        signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    except ValueError:  # not the main thread (embedded use)
        pass


def _register() -> None:
    """Attach the commands; each lives beside the API it renders."""
    from .cli_check import check_command
    from .cli_inspect import inspect_command
    from .cli_rewrite import rewrite_command

    main.add_command(inspect_command)
    main.add_command(rewrite_command)
    main.add_command(check_command)


_register()
