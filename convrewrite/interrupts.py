"""Ctrl-C while the CLI only loads code: end at once, with the usual line, never a traceback.

Imports nothing beyond `os` and `signal`, so that it can guard the CLI's own
first imports from the first line of `convrewrite.cli`.
"""

from __future__ import annotations

import os
import signal

MESSAGE = "convrewrite: interrupted; no partial file written"


def _exit_now(signum, frame) -> None:
    os.write(2, MESSAGE.encode() + b"\n")
    os._exit(143 if signum == signal.SIGTERM else 130)


class exit_on_interrupt:
    """`with exit_on_interrupt():` for a block that only imports (nothing written yet): Ctrl-C or SIGTERM exits at once.

    A KeyboardInterrupt raised while a C extension (onnx, onnxruntime)
    initialises can crash the interpreter; exiting from the handler cannot.
    A signal that is ignored stays ignored; outside the main thread it does
    nothing (signal handlers can only be set there).
    """

    def __enter__(self) -> "exit_on_interrupt":
        self.previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self.previous[sig] = signal.signal(sig, _exit_now)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
