"""The `convrewrite` command line: parse, call the API, render. No graph logic here.

Conventions shared by every command: a ConvRewriteError (bad input, bad
option) is one line on stderr and exit 2, never a traceback; onnxruntime's
own log lines are hidden unless --verbose; SIGTERM during a save cleans up
like Ctrl-C does (the output is written atomically, so the target holds
either the old file or the new one).

`main` is the console entry point (`convrewrite = convrewrite.cli:main`).
Importing it loads click and nothing heavy: each command's module (and so
onnx, numpy, onnxruntime) is imported only when that command runs. Imports
(click's here, a command's on first use) run under `exit_on_interrupt`:
Ctrl-C then ends the process at once with the usual line and exit code.
"""

from __future__ import annotations

from .interrupts import exit_on_interrupt

with exit_on_interrupt():  # Ctrl-C while the CLI loads: exit at once
    import importlib
    import signal
    import sys
    from typing import Any

    import click

    from . import __version__
    from .cli_common import Settings, interrupted, sigterm_as_interrupt

# Command name -> (module, attribute); imported when the command is looked up.
COMMANDS = {
    "inspect": ("cli_inspect", "inspect_command"),
    "rewrite": ("cli_rewrite", "rewrite_command"),
    "check": ("cli_check", "check_command"),
    "bench": ("cli_bench", "bench_command"),
}
# What `convrewrite --help` lists, without importing each command (and onnx) to ask it.
SHORT_HELP = {
    "inspect": "List every convolution in MODEL and how it is classified.",
    "rewrite": "Rewrite the convolutions of MODEL and write the result.",
    "check": "Run two models (or one and reference outputs) and compare every output.",
    "bench": "Time models side by side on the same inputs.",
}


class _Main(click.Group):
    """The command group: commands load lazily, and Ctrl-C anywhere is one line and exit 130."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, SHORT_HELP[name]) for name in COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        with exit_on_interrupt():
            return getattr(importlib.import_module(f".{module}", __package__), attr)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run; a usage error is one line on stderr and exit 2 (click's own is three lines)."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except KeyboardInterrupt as exc:
            interrupted(exc)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "convrewrite"
            click.echo(f"convrewrite: error: {exc.format_message()} (see '{where} --help')", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"convrewrite: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("convrewrite: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt as exc:
            interrupted(exc)
            raise  # not reached

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            interrupted(exc)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="convrewrite")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final verdict.")
@click.option("-v", "--verbose", is_flag=True, help="More detail, including onnxruntime's own log lines.")
@click.pass_context
def main(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Rewrite convolutions inside ONNX models and prove the result equivalent.

    Commands: inspect (list every convolution), rewrite (1D<->2D, fold causal,
    dilated and separable patterns), check (run two models in onnxruntime and
    compare their outputs), bench (time models side by side).
    """
    ctx.obj = Settings(quiet=quiet, verbose=verbose)
    # onnxruntime is imported (and quietened) only by the commands that run models.
    try:
        signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    except ValueError:  # not the main thread (embedded use)
        pass
