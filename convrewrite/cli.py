"""The `convrewrite` command line: parse, call the API, render. No graph logic here.

Conventions shared by every command: a ConvRewriteError (bad input, bad
option) is one line on stderr and exit 2, never a traceback; onnxruntime's
own log lines are hidden unless --verbose; SIGTERM during a save cleans up
like Ctrl-C does (the output is written atomically, so the target holds
either the old file or the new one).
"""

from __future__ import annotations

import functools
import signal
import sys
from typing import Any, Callable

import click

from . import __version__
from .errors import ConvRewriteError


class Settings:
    """Options every command shares (set on the group, read by the commands)."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit: the only way a command reports bad input."""
    click.echo(f"convrewrite: error: {message}", err=True)
    sys.exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected errors into one line + exit 2; keep tracebacks for real bugs only."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConvRewriteError as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except KeyboardInterrupt as exc:
            # Saves are atomic: the output holds the old file or the complete new one.
            click.echo("convrewrite: interrupted; no partial file written", err=True)
            sys.exit(143 if isinstance(exc, Terminated) else 130)
        except MemoryError:
            fail("out of memory")

    return wrapper


def settings() -> Settings:
    ctx = click.get_current_context()
    obj = ctx.find_object(Settings)
    return obj if obj is not None else Settings()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs (exit 143 instead of 130)."""


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise Terminated


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
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
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
