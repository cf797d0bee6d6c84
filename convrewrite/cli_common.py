"""What every command shares: settings, the one-line error convention, interrupts.

Kept apart from `cli` (which registers the commands) so that a command module
can be imported on its own without a circular import.
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable

import click

from .errors import ConvRewriteError
from .interrupts import MESSAGE


class Progress:
    """One status line on a terminal (stderr), rewritten in place, with the elapsed time.

    Nothing at all when stderr is not a terminal (pipes, CI logs) or with -q;
    the line is cleared when the work ends, so the output that follows is the
    same as without it.
    """

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = enabled and tty
        self.start = time.monotonic()
        self.width = 0

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.monotonic() - self.start:6.1f} s] {text}"
        self.stream.write("\r" + line + " " * max(0, self.width - len(line)))
        self.stream.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


class OptionError(ConvRewriteError):
    """An option value the command line cannot use (one line, exit 2), raised before anything heavy loads."""


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
            interrupted(exc)
        except MemoryError:
            fail("out of memory")

    return wrapper


def interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C (exit 130) or SIGTERM (exit 143): one line, no traceback.

    Saves are atomic: the output holds the old file or the complete new one.
    """
    click.echo(MESSAGE, err=True)
    sys.exit(143 if isinstance(exc, Terminated) else 130)


def settings() -> Settings:
    """The shared options of this invocation (created on first use, so a command run alone has them too)."""
    return click.get_current_context().ensure_object(Settings)


def verbosity_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`-q`/`-v` after the subcommand as well as before it (`convrewrite rewrite -q ...`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, sub_quiet: bool = False, sub_verbose: bool = False, **kwargs: Any) -> Any:
        shared = settings()
        shared.quiet = shared.quiet or sub_quiet
        shared.verbose = shared.verbose or sub_verbose
        return fn(*args, **kwargs)

    wrapper = click.option("-v", "--verbose", "sub_verbose", is_flag=True,
                           help="More detail, including onnxruntime's own log lines.")(wrapper)
    return click.option("-q", "--quiet", "sub_quiet", is_flag=True, help="Print only errors and the verdict.")(wrapper)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs (exit 143 instead of 130)."""


def sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise Terminated

